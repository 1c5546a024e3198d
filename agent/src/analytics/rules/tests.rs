//! Each rule on synthetic tracks at 5 frames per second: it fires exactly when it should.

use std::time::Duration;

use super::*;
use crate::analytics::history::TrackHistory;
use crate::analytics::signal::SignalState;
use crate::types::BBox;

const CAR: ClassId = 2;
const TRUCK: ClassId = 7;
const FRAME: Duration = Duration::from_millis(200);

/// A camera's rules as the agent runs them, with the track history they share.
pub(super) struct Rules {
    rules: Vec<Rule>,
    history: TrackHistory,
}

impl Rules {
    pub(super) fn update(&mut self, objects: &[TrackedObject], now: Duration, aspect: f32) -> Vec<Violation> {
        self.history.update(objects, now);
        let frame = test_frame(aspect);
        let ctx = FrameContext::new(now, &frame, &[], objects, &self.history);
        self.rules.iter_mut().flat_map(|r| r.update(&ctx)).collect()
    }

    /// The stream ended: what the rules close.
    fn end(&mut self) -> Vec<Violation> {
        let ends = self.rules.iter_mut().flat_map(|r| r.end().unwrap());
        ends.map(|f| match f {
            Finding::Violation(v) => v,
            other => panic!("a rule's end gave {other:?}"),
        })
        .collect()
    }

    fn signal_message(&mut self, topic: &str, payload: &[u8], now: Duration) -> Result<(), String> {
        self.rules.iter_mut().try_for_each(|r| r.signal(topic, payload, now))
    }

    fn speed_kmh(&self, track: u64) -> Option<f32> {
        self.rules.iter().find_map(|r| r.speed_kmh(track))
    }
}

/// A frame of the given width / height; the rules read only its shape.
fn test_frame(aspect: f32) -> crate::types::Frame {
    gstreamer::init().unwrap();
    let height = 100;
    crate::types::Frame {
        camera: "test".into(),
        seq: 0,
        pts: Duration::ZERO,
        source_run: 0,
        width: (height as f32 * aspect) as u32,
        height,
        stride: 0,
        buffer: gstreamer::Buffer::new(),
        native: None,
        arrived: std::time::Instant::now(),
    }
}

pub(super) fn rules(toml_rules: &str) -> Rules {
    #[derive(Deserialize)]
    struct File {
        rules: Vec<RuleConfig>,
    }
    let file: File = toml::from_str(toml_rules).unwrap();
    for (i, rule) in file.rules.iter().enumerate() {
        let mut errors = Vec::new();
        rule.validate(&format!("rules[{i}]"), &check_context(), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
    }
    let classes = |names: Option<&[String]>| match names {
        Some(names) if names.iter().any(|n| n == "truck") => vec![TRUCK],
        _ => vec![CAR, TRUCK],
    };
    let rules: Vec<Rule> = file.rules.iter().map(|c| c.rule("test", classes(c.classes.as_deref())).unwrap()).collect();
    let keep = rules.iter().map(Analyzer::history).fold(Duration::from_secs(2), Duration::max);
    Rules { rules, history: TrackHistory::new(keep) }
}

/// Rules checked as on a site with a broker, without a model's labels.
fn check_context() -> CheckContext<'static> {
    CheckContext { labels: None, broker: true, model: &|name| Err(crate::detect::ManifestError::Invalid { path: name.into(), message: "no models in unit tests".into() }) }
}

/// A car whose reference point (bottom-centre) is at (x, y).
pub(super) fn car(id: u64, x: f32, y: f32) -> TrackedObject {
    TrackedObject { id, bbox: BBox { x1: x - 0.04, y1: y - 0.08, x2: x + 0.04, y2: y }, class: CAR, score: 0.8, velocity: [0.0; 2], origin: None, hidden: false }
}

/// Plays frames; `place(frame)` gives the objects seen in that frame.
pub(super) fn play(rules: &mut Rules, frames: std::ops::Range<u32>, place: impl Fn(u32) -> Vec<TrackedObject>) -> Vec<(u32, Violation)> {
    let mut out = Vec::new();
    for f in frames {
        for v in rules.update(&place(f), FRAME * f, 1.0) {
            out.push((f, v));
        }
    }
    out
}

const RED_LIGHT: &str = r#"
[[rules]]
id = "stop"
[rules.red_light]
p1 = [0.5, 1.0]
p2 = [0.5, 0.0]
grace_s = 0.5
signal = { topic = "junction/phase" }
"#;

#[test]
fn red_light_only_for_crossings_after_red_and_grace() {
    let mut r = rules(RED_LIGHT);
    // Each car moves right by 0.05 a frame; car k crosses x = 0.5 between frames.
    let moving = |id: u64, start_frame: u32, x0: f32| move |f: u32| (f >= start_frame).then(|| car(id, x0 + 0.05 * (f - start_frame) as f32, 0.5));
    let before = moving(1, 0, 0.3); // crosses at frame 4-5, before red
    let past = moving(2, 0, 0.45); // past the line at frame 2, red starts at frame 10
    let in_grace = moving(3, 9, 0.4); // crosses at frame 11-12, 0.4 s after red
    let violator = moving(4, 12, 0.3); // crosses at frame 16-17, over 1 s after red
    let backwards = |f: u32| (f >= 10).then(|| car(5, 0.7 - 0.05 * (f - 10) as f32, 0.5));
    let mut found = Vec::new();
    for f in 0..30 {
        if f == 10 {
            r.signal_message("junction/phase", br#"{"state":"red"}"#, FRAME * f).unwrap();
        }
        let objects: Vec<TrackedObject> = [before(f), past(f), in_grace(f), violator(f), backwards(f)].into_iter().flatten().collect();
        found.extend(r.update(&objects, FRAME * f, 1.0));
    }
    assert_eq!(found.len(), 1, "{found:#?}");
    let v = &found[0];
    assert_eq!((v.object.id, v.kind, v.rule.as_str()), (4, RuleKind::RedLight, "stop"));
    assert_eq!(v.measured.signal, Some(SignalState::Red));
    // Exactly on the line at frame 16, past it at frame 17: 1.4 s after red began at frame 10.
    assert_eq!(v.measured.red_for_s, Some(1.4));
}

#[test]
fn red_light_ignores_other_topics_and_reports_bad_messages() {
    let mut r = rules(RED_LIGHT);
    r.signal_message("other/phase", b"red", Duration::ZERO).unwrap();
    let err = r.signal_message("junction/phase", b"blue", Duration::ZERO).unwrap_err();
    assert!(err.contains("rule stop") && err.contains("blue"), "{err}");
    let got = play(&mut r, 0..10, |f| vec![car(1, 0.3 + 0.05 * f as f32, 0.5)]);
    assert!(got.is_empty(), "no red phase was ever set");
}

/// A wrong-way rule `id` over the frame below `zone_top`, with `extra` rule keys (TOML lines).
fn wrong_way(id: &str, zone_top: f32, heading_deg: u32, extra: &str) -> Rules {
    rules(&format!(
        "[[rules]]\nid = \"{id}\"\n{extra}\n[rules.wrong_way]\nzone = [[0.0, {zone_top}], [1.0, {zone_top}], [1.0, 1.0], [0.0, 1.0]]\nheading_deg = {heading_deg}\n"
    ))
}

#[test]
fn wrong_way_once_per_track_and_never_for_traffic_going_the_right_way() {
    let mut r = wrong_way("eastbound", 0.4, 0, "");
    let got = play(&mut r, 0..40, |f| {
        vec![
            car(1, 0.95 - 0.02 * f as f32, 0.7), // against: west
            car(2, 0.05 + 0.02 * f as f32, 0.8), // with the heading
            car(3, 0.5 + if f % 2 == 0 { 0.01 } else { -0.01 }, 0.6), // jitter in place
            car(4, 0.3, 0.41 + 0.012 * f as f32), // crossing the road (perpendicular)
            car(5, 0.95 - 0.02 * f as f32, 0.2), // against, but outside the zone
        ]
    });
    assert_eq!(got.len(), 1, "{got:#?}");
    let (frame, v) = &got[0];
    assert_eq!(v.object.id, 1);
    assert_eq!(*frame, 5, "alert once 1 s of motion is seen");
    assert_eq!(v.measured.heading_deg, Some(180.0));
    assert_eq!(v.measured.allowed_heading_deg, Some(0.0));
}

#[test]
fn no_wrong_way_for_riders_with_the_flow_whose_boxes_swap_or_jitter() {
    // Dense two-wheelers riding up the screen (allowed heading 270°, "up"), side by side.
    let mut r = wrong_way("northbound", 0.0, 270, "");
    let got = play(&mut r, 0..30, |f| {
        let y = 0.9 - 0.01 * f as f32;
        vec![
            // Its identity swaps to the rider beside it and back: a sideways jump, then a
            // step down the screen, that two endpoints would read as riding the wrong way.
            car(1, if (8..16).contains(&f) { 0.56 } else { 0.50 }, if (8..16).contains(&f) { y + 0.08 } else { y }),
            car(2, 0.60, y + 0.003 * (f % 3) as f32),
            // A cyclist riding against the flow along the kerb.
            car(3, 0.05, 0.3 + 0.012 * f as f32),
        ]
    });
    let flagged: Vec<u64> = got.iter().map(|(_, v)| v.object.id).collect();
    assert_eq!(flagged, vec![3], "{got:#?}");
}

#[test]
fn a_long_wrong_way_run_is_one_alert() {
    let mut r = wrong_way("eastbound", 0.0, 0, "");
    // 80 s westbound, round and round the frame.
    let got = play(&mut r, 0..400, |f| vec![car(1, 0.95 - (0.02 * f as f32) % 0.9, 0.7)]);
    assert_eq!(got.len(), 1, "{got:#?}");
}

#[test]
fn cooldown_lets_a_track_raise_the_rule_again() {
    let mut r = wrong_way("eastbound", 0.0, 0, "cooldown_s = 2.0");
    let got = play(&mut r, 0..40, |f| vec![car(1, 0.95 - 0.02 * f as f32, 0.7)]);
    let frames: Vec<u32> = got.iter().map(|(f, _)| *f).collect();
    assert_eq!(frames, vec![5, 15, 25, 35]);
}

const NO_PARKING: &str = r#"
[[rules]]
id = "kerb"
[rules.no_parking]
zone = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]
dwell_s = 10
"#;

#[test]
fn dwell_alerts_after_dwell_s_and_ends_when_the_vehicle_leaves() {
    let mut r = rules(NO_PARKING);
    // Parks at frame 0 for 14 s (70 frames) with box jitter, then drives off at 0.05 a frame.
    let got = play(&mut r, 0..90, |f| {
        let x = if f < 70 { 0.5 + 0.004 * (f % 3) as f32 } else { 0.5 + 0.05 * (f - 69) as f32 };
        (x < 1.0).then(|| car(1, x, 0.7)).into_iter().collect()
    });
    assert_eq!(got.len(), 2, "{got:#?}");
    let (alert_frame, alert) = &got[0];
    assert_eq!((*alert_frame, alert.kind, alert.ends.as_deref()), (50, RuleKind::NoParking, None));
    assert_eq!(alert.measured.dwell_s, Some(10.0));
    let (end_frame, end) = &got[1];
    assert_eq!(*end_frame, 75, "ends once it has been away from its spot for 1 s");
    assert_eq!(end.ends.as_deref(), Some(alert.id.as_str()));
    assert_eq!(end.measured.dwell_s, Some(13.8));
}

/// A stream that ends (or reconnects, which starts its tracks again) under a parked car's open
/// alert closes it as of the last frame: nothing else could, and the IOC would keep it open.
#[test]
fn dwell_and_congestion_alerts_still_open_end_with_the_stream() {
    let mut r = rules(&format!("{NO_PARKING}{}", super::congestion::tests::JAM));
    // Car 1 parked for 14 s; five cars queued, creeping, in the same zone; a car parked 2 s.
    let got = play(&mut r, 0..70, |f| {
        let mut objects: Vec<TrackedObject> = (0..5).map(|i| car(10 + i, 0.1 + 0.1 * i as f32 + 0.001 * f as f32, 0.9)).collect();
        objects.push(car(1, 0.5, 0.7));
        if f >= 60 {
            objects.push(car(2, 0.8, 0.6));
        }
        objects
    });
    let alerts: Vec<(&str, u64)> = got.iter().map(|(_, v)| (v.rule.as_str(), v.object.id)).collect();
    assert_eq!(alerts, vec![("kerb", 1), ("jam", 0)], "{got:#?}");
    let ends = r.end();
    let closed: Vec<(&str, Option<&str>)> = ends.iter().map(|v| (v.rule.as_str(), v.ends.as_deref())).collect();
    assert_eq!(closed, vec![("kerb", Some(got[0].1.id.as_str())), ("jam", Some(got[1].1.id.as_str()))]);
    assert_eq!(ends[0].measured.dwell_s, Some(13.8));
    assert!(r.end().is_empty(), "closed once");
}

#[test]
fn dwell_ignores_short_stops_slow_drift_and_vehicles_outside_the_zone() {
    let mut r = rules(NO_PARKING);
    let got = play(&mut r, 0..150, |f| {
        let mut objects = vec![
            car(2, 0.8, 0.3), // parked, outside the zone
            car(3, 0.1 + 0.002 * f as f32, 0.9), // creeping 0.01 per second: never still for 10 s
        ];
        if f < 40 {
            objects.push(car(1, 0.5, 0.7)); // stops 8 s, then is gone
        }
        objects
    });
    assert!(got.is_empty(), "{got:#?}");
}

#[test]
fn dwell_end_when_the_track_is_lost() {
    let mut r = rules(NO_PARKING);
    let got = play(&mut r, 0..120, |f| if f < 60 { vec![car(1, 0.5, 0.7)] } else { vec![] });
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].0, 109, "over 10 s after it was last seen at frame 59");
    assert_eq!(got[1].1.measured.dwell_s, Some(11.8));
}

#[test]
fn dwell_is_one_stop_when_the_tracker_loses_a_parked_car_and_finds_it_again() {
    let mut r = rules(NO_PARKING);
    // A parked car: track 1, hidden behind a bus for 3 s, found again as track 2 on the same spot.
    // A second detection of the same car (a box inside its box) starts no stop of its own.
    let got = play(&mut r, 0..150, |f| match f {
        0..60 => vec![car(1, 0.5, 0.7), TrackedObject { bbox: BBox { x1: 0.47, y1: 0.63, x2: 0.52, y2: 0.69 }, ..car(3, 0.0, 0.0) }],
        60..75 => vec![],
        75..120 => vec![car(2, 0.505, 0.702)],
        _ => vec![car(2, 0.505 + 0.05 * (f - 119) as f32, 0.702)],
    });
    let kinds: Vec<(u32, bool)> = got.iter().map(|(f, v)| (*f, v.ends.is_some())).collect();
    assert_eq!(kinds, vec![(50, false), (125, true)], "{got:#?}");
    assert_eq!(got[1].1.measured.dwell_s, Some(23.8));
    assert_eq!(got[1].1.object.id, 2);
}

#[test]
fn solid_line_in_one_direction_and_for_its_classes_only() {
    let config = r#"
[[rules]]
id = "centre"
classes = ["truck"]
[rules.solid_line]
p1 = [0.0, 0.5]
p2 = [1.0, 0.5]
direction = "in"
"#;
    let mut r = rules(config);
    let truck = |id: u64, x: f32, y: f32| TrackedObject { class: TRUCK, ..car(id, x, y) };
    let got = play(&mut r, 0..20, |f| {
        let down = 0.3 + 0.03 * f as f32;
        let up = 0.8 - 0.03 * f as f32;
        vec![truck(1, 0.2, down), truck(2, 0.4, up), car(3, 0.6, down)]
    });
    // Walking p1 → p2 (left to right), the walker's right is down: moving down is `in`.
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].1.object.id, 1);
    assert_eq!(got[0].1.measured.direction, Some(Direction::In));
}

#[test]
fn speeding_on_a_known_homography() {
    // 0.8 of the width is 16 m along the road, 0.2 of the height 4 m across it.
    let config = |limit: f32| {
        format!(
            r#"
[[rules]]
id = "limit"
[rules.speeding]
limit_kmh = {limit}
calibration = {{ image = [[0.1, 0.4], [0.9, 0.4], [0.9, 0.6], [0.1, 0.6]], ground_m = [[0, 0], [16, 0], [16, 4], [0, 4]] }}
"#
        )
    };
    // 0.01 of the width per frame = 0.2 m per 0.2 s = 1 m/s = 3.6 km/h; this car does 5x that.
    let moving = |f: u32| {
        // One bent box (an occlusion) makes one wild estimate, which the median ignores.
        let parked_y = if f == 8 { 0.58 } else { 0.55 };
        vec![car(1, 0.15 + 0.05 * f as f32, 0.5), car(2, 0.5, parked_y)]
    };
    let mut r = rules(&config(15.0));
    let got = play(&mut r, 0..12, moving);
    assert_eq!(got.len(), 1, "{got:#?}");
    let (frame, v) = &got[0];
    assert_eq!((*frame, v.object.id), (7, 1), "three estimates, the first once the 1 s window is full");
    assert_eq!(v.measured.speed_kmh, Some(18.0));
    assert_eq!(v.measured.limit_kmh, Some(15.0));
    assert!(r.speed_kmh(2).unwrap() < 0.1, "the parked car stands still");

    let mut r = rules(&config(20.0));
    assert!(play(&mut r, 0..12, moving).is_empty());
}

#[test]
fn config_errors_name_the_rule_and_key() {
    let config = r#"
[[rules]]
id = "two kinds"
wrong_way = { zone = [[0, 0], [1, 0]], heading_deg = 0 }
no_parking = { zone = [[0, 0], [1, 0], [1, 1]], dwell_s = 0 }

[[rules]]
id = "bad"
speeding = { limit_kmh = 50, window_s = 0.2, calibration = { image = [[0, 0], [0.5, 0.5], [1, 1], [0, 1]], ground_m = [[0, 0], [1, 0], [1, 1], [0, 1]] } }

[[rules]]
id = "light"
red_light = { p1 = [0.5, 0.5], p2 = [0.5, 0.5], signal = { } }

# A lane 4 m wide and 40 m long, seen in perspective: the ground's horizon is at y 0.33.
[[rules]]
id = "far"
speeding = { limit_kmh = 50, zone = [[0.4, 0.3], [0.6, 0.3], [0.9, 0.9], [0.1, 0.9]], calibration = { image = [[0.45, 0.4], [0.55, 0.4], [0.9, 0.9], [0.1, 0.9]], ground_m = [[0, 40], [4, 40], [4, 0], [0, 0]] } }

# The same lane with its near corners listed the other way round on the ground.
[[rules]]
id = "folded"
speeding = { limit_kmh = 50, calibration = { image = [[0.45, 0.4], [0.55, 0.4], [0.9, 0.9], [0.1, 0.9]], ground_m = [[0, 40], [4, 40], [0, 0], [4, 0]] } }

[[rules]]
id = "queue"
congestion = { max_vehicles = 3, max_speed_kmh = 5, zone = [[0.4, 0.2], [0.6, 0.2], [0.9, 0.9], [0.1, 0.9]], calibration = { image = [[0.45, 0.4], [0.55, 0.4], [0.9, 0.9], [0.1, 0.9]], ground_m = [[0, 40], [4, 40], [4, 0], [0, 0]] } }
"#;
    #[derive(Deserialize)]
    struct File {
        rules: Vec<RuleConfig>,
    }
    let file: File = toml::from_str(config).unwrap();
    let mut errors = Vec::new();
    for (i, rule) in file.rules.iter().enumerate() {
        rule.validate(&format!("rules[{i}]"), &check_context(), &mut errors);
    }
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let has = |needle: &str| text.iter().any(|t| t.contains(needle));
    assert!(has("rules[0].id: 'two kinds'"), "{text:#?}");
    assert!(has("rules[0]: needs exactly one of") && has("found wrong_way, no_parking"), "{text:#?}");
    assert!(has("rules[0].wrong_way.zone: a zone needs at least 3 points"), "{text:#?}");
    assert!(has("rules[0].no_parking.dwell_s: must be more than 0"), "{text:#?}");
    assert!(has("rules[1].speeding.calibration: three of the four points lie on one line"), "{text:#?}");
    assert!(has("rules[1].speeding.window_s: must be at least 0.5"), "{text:#?}");
    assert!(has("rules[2].red_light.p2: must differ from p1"), "{text:#?}");
    assert!(has("rules[2].red_light.signal: give exactly one of topic"), "{text:#?}");
    assert!(has("rules[3].speeding.zone[0]: lies beyond the horizon") && has("rules[3].speeding.zone[1]: lies beyond"), "{text:#?}");
    assert!(!has("rules[3].speeding.zone[2]"), "{text:#?}");
    assert!(has("rules[4].speeding.calibration: the image and ground points are not listed in the same order"), "{text:#?}");
    assert!(has("rules[5].congestion.zone[0]: lies beyond the horizon"), "{text:#?}");
}
