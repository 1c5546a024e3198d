//! Traffic rules on the bundled clips through `canh replay`, with the site files in
//! `samples/sites/`: red light against the hand-counted crossings under a recorded signal feed,
//! wrong way, no parking and speeding; and every alert's evidence image.
//!
//! Each clip is replayed once per test binary; the tests read that one result.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// What a replay printed: violation payloads in order, evidence images by topic, the summary.
struct Replay {
    violations: Vec<Value>,
    evidence: BTreeMap<String, Vec<u8>>,
    /// The violation lines as printed, to check the alert size.
    violation_lines: Vec<String>,
    summary: Value,
}

impl Replay {
    fn alerts(&self, rule: &str) -> Vec<&Value> {
        self.violations.iter().filter(|v| v["rule"] == rule && v["type"] == "alert").collect()
    }
}

fn replay(clip: &str, site: &str, extra: &[&str]) -> Replay {
    let config = common::repo_root().join("samples/sites").join(site);
    let input = common::sample(clip);
    let run = common::replay(&[&["--config", config.to_str().unwrap(), "--input", input.to_str().unwrap()], extra].concat());
    let violations = run.payloads("violation");
    let violation_lines = violations.iter().map(|v| serde_json::to_string(v).unwrap()).collect();
    Replay { evidence: run.evidence(), violations, violation_lines, summary: run.summary }
}

fn arterial() -> &'static Replay {
    static RESULT: OnceLock<Replay> = OnceLock::new();
    RESULT.get_or_init(|| replay("opencv4nodejs_traffic.mp4", "arterial.toml", &["--signal-log", "samples/sites/arterial-signal.jsonl"]))
}

/// Where the street replay renders its frames.
fn street_render_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("canh-test-render-{}", std::process::id()))
}

fn street() -> &'static Replay {
    static RESULT: OnceLock<Replay> = OnceLock::new();
    RESULT.get_or_init(|| {
        let dir = street_render_dir();
        let _ = std::fs::remove_dir_all(&dir);
        replay("ozlu_input_video.mp4", "street.toml", &["--render", dir.to_str().unwrap()])
    })
}

fn truth(clip: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(common::repo_root().join("samples/groundtruth").join(format!("{clip}.json"))).unwrap()).unwrap()
}

fn bottom_centre(v: &Value) -> (f64, f64) {
    let b: Vec<f64> = v["box"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    ((b[0] + b[2]) / 2.0, b[3])
}

#[test]
fn red_light_violations_are_the_hand_counted_crossings_inside_the_red_window() {
    // The signal log: red from 5 s to 12 s. The stop line is the hand-counted line.
    let (red_from, red_until) = (5.0, 12.0);
    let truth = truth("opencv4nodejs_traffic");
    let expected = truth["crossings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["direction"] == "in" && (red_from..red_until).contains(&c["t"].as_f64().unwrap()))
        .count();
    let alerts = arterial().alerts("stop_east");
    println!("red light: {} violations, {expected} hand-counted crossings in the red window", alerts.len());
    assert!((alerts.len() as i64 - expected as i64).abs() <= 1, "{} violations, {expected} crossings by hand", alerts.len());
    for alert in &alerts {
        assert_eq!(alert["kind"], "red_light");
        assert_eq!(alert["measured"]["signal"], "red");
        assert_eq!(alert["measured"]["direction"], "in");
        let red_for = alert["measured"]["red_for_s"].as_f64().unwrap();
        assert!((0.0..red_until - red_from).contains(&red_for), "{alert}");
        // Confirmed a frame or two after the crossing.
        let t = alert["stream_time_s"].as_f64().unwrap();
        assert!(t >= red_from && t < red_until + 0.5, "a violation outside the red window: {alert}");
    }
}

#[test]
fn wrong_way_flags_each_eastbound_car_once_when_its_lanes_are_declared_westbound() {
    let replay = arterial();
    let alerts = replay.alerts("east_lanes_declared_westbound");
    let by_hand = 17.0;
    println!("wrong way: {} alerts, {by_hand} eastbound cars by hand", alerts.len());
    assert!((alerts.len() as f64 - by_hand).abs() <= 0.15 * by_hand, "{} alerts for {by_hand} eastbound cars", alerts.len());
    let tracks: BTreeSet<u64> = alerts.iter().map(|a| a["track_id"].as_u64().unwrap()).collect();
    assert_eq!(tracks.len(), alerts.len(), "one alert per car");
    for alert in &alerts {
        let heading = alert["measured"]["heading_deg"].as_f64().unwrap();
        assert!(!(60.0..=300.0).contains(&heading), "eastbound cars head about 0 degrees: {alert}");
        assert!(bottom_centre(alert).1 > 0.45, "inside the eastbound lanes: {alert}");
    }
    assert!(replay.alerts("east_lanes_declared_eastbound").is_empty(), "declared as they run, no car is wrong-way");
}

#[test]
fn speeding_on_the_arterial_flags_moving_vehicles_with_their_speeds() {
    let alerts = arterial().alerts("speed_20");
    let speeds: Vec<f64> = alerts.iter().map(|a| a["measured"]["speed_kmh"].as_f64().unwrap()).collect();
    println!("arterial speeds (km/h): {speeds:?}");
    // 26 vehicles cross by hand; the westbound ones, a third cut off by the top edge, and a few
    // at the frame edges are never measured for a full window (14 measured here).
    assert!(alerts.len() >= 14, "{} speeding alerts", alerts.len());
    assert!(speeds.iter().all(|&s| s > 20.0 && s < 80.0), "town speeds over the 20 km/h limit: {speeds:?}");
    let tracks: BTreeSet<u64> = alerts.iter().map(|a| a["track_id"].as_u64().unwrap()).collect();
    assert_eq!(tracks.len(), alerts.len(), "one alert per vehicle");
}

/// Where the two parked cars of the street clip stand (bottom-centre, normalized).
const SEDAN_BY_THE_ISLAND: (f64, f64) = (0.60, 0.46);
const CAR_BY_THE_HOUSE: (f64, f64) = (0.965, 0.54);

fn near(p: (f64, f64), q: (f64, f64)) -> bool {
    (p.0 - q.0).abs() < 0.05 && (p.1 - q.1).abs() < 0.05
}

#[test]
fn no_parking_alerts_for_the_parked_cars_after_dwell_s_and_none_for_passing_cars() {
    let replay = street();
    for (rule, spot) in [("kerb_island", SEDAN_BY_THE_ISLAND), ("kerb_house", CAR_BY_THE_HOUSE)] {
        let alerts = replay.alerts(rule);
        assert_eq!(alerts.len(), 1, "{rule}: {alerts:#?}");
        let alert = alerts[0];
        assert!(near(bottom_centre(alert), spot), "{rule}: {alert}");
        let dwell = alert["measured"]["dwell_s"].as_f64().unwrap();
        assert!((10.0..11.0).contains(&dwell), "alerted once dwell_s = 10 had passed: {alert}");
        assert!(alert["stream_time_s"].as_f64().unwrap() >= 10.0);
    }
    // The sedan drives off at about 22 s: its stop ends, with the whole time it stood.
    let end = replay.violations.iter().find(|v| v["rule"] == "kerb_island" && v["type"] == "end").expect("an end for the sedan");
    assert_eq!(end["alert_id"], replay.alerts("kerb_island")[0]["id"]);
    let stood = end["measured"]["dwell_s"].as_f64().unwrap();
    assert!((18.0..24.0).contains(&stood), "{end}");
    // The car by the house is still parked when the clip ends: its alert is closed with the
    // stream, as of the last frame, not left open for good.
    let house = replay.alerts("kerb_house")[0];
    let ends: Vec<&Value> = replay.violations.iter().filter(|v| v["rule"] == "kerb_house" && v["type"] == "end").collect();
    assert!(ends.len() == 1 && ends[0]["alert_id"] == house["id"], "{ends:#?}");
    assert!(ends[0]["stream_time_s"].as_f64().unwrap() > end["stream_time_s"].as_f64().unwrap(), "{}", ends[0]);
    assert!(replay.alerts("carriageway").is_empty(), "eight cars drive through; none stops: {:#?}", replay.alerts("carriageway"));
}

#[test]
fn congestion_alerts_once_for_the_standing_cars_and_ends_when_the_queue_clears() {
    let replay = street();
    let alerts = replay.alerts("kerbside_queue");
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let alert = alerts[0];
    assert_eq!((alert["kind"].as_str(), alert["track_id"].as_u64()), (Some("congestion"), Some(0)));
    assert_eq!(alert["measured"]["vehicles"], 2, "the sedan and the car by the house: {alert}");
    // Judged once the cars have 2 s of history, alerted 5 s later.
    let t = alert["stream_time_s"].as_f64().unwrap();
    assert!((7.0..10.0).contains(&t), "{alert}");
    // The queue's extent spans both parked cars.
    let extent: Vec<f64> = alert["measured"]["extent"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(extent[0] < SEDAN_BY_THE_ISLAND.0 && extent[2] > CAR_BY_THE_HOUSE.0, "{extent:?}");
    assert_eq!(alert["box"], alert["measured"]["extent"]);
    // The sedan drives off at about 22 s: one vehicle is no queue; 3 s later, the end.
    let ends: Vec<&Value> = replay.violations.iter().filter(|v| v["rule"] == "kerbside_queue" && v["type"] == "end").collect();
    assert_eq!(ends.len(), 1, "{ends:#?}");
    assert_eq!(ends[0]["alert_id"], alert["id"]);
    assert!((22.0..28.0).contains(&ends[0]["stream_time_s"].as_f64().unwrap()), "{}", ends[0]);
}

#[test]
fn speeding_on_the_street_flags_moving_cars_only() {
    let alerts = street().alerts("speed_20");
    let speeds: Vec<f64> = alerts.iter().map(|a| a["measured"]["speed_kmh"].as_f64().unwrap()).collect();
    println!("street speeds (km/h): {speeds:?}");
    for alert in &alerts {
        let p = bottom_centre(alert);
        assert!(!near(p, SEDAN_BY_THE_ISLAND) && !near(p, CAR_BY_THE_HOUSE), "a parked car flagged: {alert}");
    }
    // Eight cars drive through; at 5 analysed fps a fast one may cross the zone too quickly.
    assert!((5..=8).contains(&alerts.len()), "{} speeding alerts: {speeds:?}", alerts.len());
}

#[test]
fn every_alert_is_small_and_has_a_verifiable_evidence_image() {
    for replay in [arterial(), street()] {
        assert!(!replay.violations.is_empty());
        for (alert, line) in replay.violations.iter().zip(&replay.violation_lines).filter(|(v, _)| v["type"] == "alert") {
            assert!(line.len() < 1024, "alert of {} bytes: {line}", line.len());
            assert_eq!(alert["v"], 2);
            let evidence = &alert["evidence"];
            let jpeg = replay.evidence.get(evidence["topic"].as_str().unwrap()).expect("the evidence image was published");
            assert!(jpeg.len() <= 40 * 1024 && jpeg.starts_with(&[0xff, 0xd8]), "{} bytes", jpeg.len());
            assert_eq!(evidence["bytes"].as_u64().unwrap() as usize, jpeg.len());
            let digest: String = Sha256::digest(jpeg).iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(evidence["sha256"], digest.as_str());
            assert!(evidence["topic"].as_str().unwrap().ends_with(alert["id"].as_str().unwrap()));
        }
    }
}

#[test]
fn render_writes_every_analysed_frame_with_the_rules_drawn() {
    let replay = street();
    let dir = street_render_dir();
    let mut frames: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    frames.sort();
    assert_eq!(frames.len() as u64, replay.summary["frames"].as_u64().unwrap(), "one PNG per analysed frame");
    assert!(frames.iter().all(|f| f.extension().is_some_and(|e| e == "png")));
    // PNG header: signature, then the IHDR chunk with width and height.
    let png = std::fs::read(&frames[60]).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert!(width >= 800, "frames are enlarged for readable labels: {width} px");
    // The left edge of the `kerb_house` zone (x = 0.88, y from 0.40 to 0.60) is drawn in the
    // rules' yellow.
    use opencv::prelude::*;
    let image = opencv::imgcodecs::imread(frames[60].to_str().unwrap(), opencv::imgcodecs::IMREAD_COLOR).unwrap();
    let (x, y) = ((0.88 * image.cols() as f64) as i32, (0.55 * image.rows() as f64) as i32);
    let yellow = (x - 3..=x + 3).any(|x| {
        let p = image.at_2d::<opencv::core::Vec3b>(y, x).unwrap();
        p[0] < 80 && p[1] > 170 && p[2] > 200
    });
    assert!(yellow, "no zone edge drawn at ({x}, {y})");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Vietnamese junction (from ../shared; it may not ship): dense motorbikes and cars leave the
/// stop line up the screen, riders side by side. Declared the right way, none is flagged; declared
/// the wrong way, nearly every vehicle that drives off is, motorbikes included.
#[test]
fn wrong_way_in_dense_two_wheelers_flags_none_riding_with_the_flow() {
    let Some(clip) = common::shared("traffic", "vn_thanglm20_traffic_ptz.mp4") else { return };
    let alerts = |heading: u32, fps: u32| {
        let dir = common::temp_dir(&format!("wrong-way-vn-{heading}-{fps}"));
        let rule = format!("[[cameras.rules]]\nid = \"flow\"\n[cameras.rules.wrong_way]\nzone = [[0.0, 0.3], [1.0, 0.3], [1.0, 1.0], [0.0, 1.0]]\nheading_deg = {heading}");
        let config = common::SiteFile::new("vn").camera("junction", &clip.display().to_string(), "").with(&rule).write(&dir);
        let run = common::replay(&["--config", config.to_str().unwrap(), "--input", clip.to_str().unwrap(), "--fps", &fps.to_string()]);
        run.payloads("violation").into_iter().filter(|v| v["type"] == "alert").collect::<Vec<_>>()
    };
    for fps in [5, 0] {
        let with_the_flow = alerts(270, fps);
        assert!(with_the_flow.is_empty(), "at fps {fps}: {with_the_flow:#?}");
        // 13 vehicles cross the hand-counted line, 7 of them motorbikes.
        let against = alerts(90, fps);
        let motorbikes = against.iter().filter(|a| a["class"] == "motorcycle").count();
        assert!(against.len() >= 12 && motorbikes >= 6, "at fps {fps}: {} alerts, {motorbikes} motorbikes", against.len());
    }
}
