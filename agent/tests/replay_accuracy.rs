//! `canh replay` counts on the hand-counted clips (samples/groundtruth), at 5 analysed fps and
//! at every frame (the arterial at 4 fps too): each direction and each class group
//! (two-wheelers; cars, buses and trucks) within ±10 % of the hand count, and at least ±1. The same rule as `benches/accuracy/run.sh`.
//! The Vietnamese junction encoded again at other sizes is held to that rule in most runs, the
//! clips played backwards in all runs but one.

mod common;

use std::path::PathBuf;

/// Class groups whose counts are held to the hand count separately: a motorbike counted as a
/// car is an error even when the total is right.
const GROUPS: [(&str, &[&str]); 2] = [("two-wheelers", &["motorcycle", "bicycle"]), ("cars, buses and trucks", &["car", "bus", "truck"])];

/// The clip of a ground-truth file: bundled in samples/clips, or (for clips that may not ship)
/// in ../shared/clips/traffic; `None`, with a note, when it is absent.
fn clip_of(name: &str) -> Option<PathBuf> {
    let bundled = std::fs::read_dir(common::repo_root().join("samples/clips")).unwrap().filter_map(|e| e.ok()).map(|e| e.path());
    let shared = std::fs::read_dir(common::repo_root().join("../shared/clips/traffic")).into_iter().flatten().filter_map(|e| e.ok()).map(|e| e.path());
    let found = bundled.chain(shared).find(|p| p.file_stem().is_some_and(|s| s == name));
    if found.is_none() {
        println!("skipped: the clip of samples/groundtruth/{name}.json is absent (it may not ship; it is read from ../shared)");
    }
    found
}

/// Counts per (direction, group) of `canh replay` and of the hand count. A crossing by hand after
/// the clip's last analysed frame at `fps` is not expected (one analysed frame past the line is
/// enough at the clip's end: `LineCounter::end`), nor at 5 fps one in the clip's last 0.2 s.
fn counts(name: &str, fps: u32) -> Option<Vec<(String, u64, u64)>> {
    Some(counts_on(name, &clip_of(name)?, fps))
}

/// The hand count of `name` (samples/groundtruth).
fn truth_of(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(common::repo_root().join(format!("samples/groundtruth/{name}.json"))).unwrap()).unwrap()
}

/// As [`counts`], on `clip`: the hand-counted clip of `name`, or a copy of it made another way.
fn counts_on(name: &str, clip: &std::path::Path, fps: u32) -> Vec<(String, u64, u64)> {
    let (rows, look) = counts_against(name, &truth_of(name), clip, fps);
    // Each hand-counted view is counted with the whole frame (`detect_zoom`): the closer look
    // finds at most 1.38 times their vehicles (configs/README.md).
    assert_ne!(look, "closer", "{name} at fps {fps}");
    rows
}

/// As [`counts_on`], against `truth` (the hand count of `name`, or of a copy played another way);
/// with the look the camera chose (`detect_look`).
fn counts_against(name: &str, truth: &serde_json::Value, clip: &std::path::Path, fps: u32) -> (Vec<(String, u64, u64)>, serde_json::Value) {
    let (p1, p2) = (&truth["line"]["p1"], &truth["line"]["p2"]);
    let line = format!("{},{},{},{}", p1[0], p1[1], p2[0], p2[1]);
    let run = common::replay(&["--input", clip.to_str().unwrap(), "--line", &line, "--fps", &fps.to_string()]);
    let summary = &run.summary;
    let total = |dir: &str| summary["lines"][0][dir].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>();
    assert_eq!(run.lines.len() as u64, total("in") + total("out"), "one crossing event per counted crossing");
    let (clip_fps, last_frame) = (truth["fps"].as_f64().unwrap(), truth["frames"].as_f64().unwrap() - 1.0);
    // The first analysed frame at or after the crossing must be in the clip: at `fps`, one
    // analysis period before its last frame (the analysed frames' phase is not known here).
    let observable = |c: &serde_json::Value| {
        let at_s = c["frame"].as_f64().unwrap() / clip_fps;
        let first_s = if fps == 0 { at_s } else { (at_s * fps as f64).ceil() / fps as f64 + 1.0 / fps as f64 };
        first_s <= last_frame / clip_fps + 1e-6
    };
    let mut rows = Vec::new();
    for dir in ["in", "out"] {
        for (group, classes) in GROUPS {
            let by_hand = truth["crossings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["direction"] == dir && classes.contains(&c["class"].as_str().unwrap()) && observable(c))
                .count() as u64;
            let got = summary["lines"][0][dir].as_object().unwrap().iter().filter(|(class, _)| classes.contains(&class.as_str())).map(|(_, n)| n.as_u64().unwrap()).sum();
            rows.push((format!("{dir} {group}"), by_hand, got));
        }
    }
    println!("{name} ({}) at fps {fps}: {rows:?} (what, by hand, counted), look {}", clip.display(), summary["detect_look"]);
    (rows, summary["detect_look"].clone())
}

/// Whether every row is within ±10 % of the hand count, and at least ±1.
fn within_tolerance(rows: &[(String, u64, u64)]) -> bool {
    rows.iter().all(|(_, by_hand, got)| (*got as f64 - *by_hand as f64).abs() <= (0.1 * *by_hand as f64).max(1.0))
}

fn assert_close(name: &str, fps: u32) {
    let Some(rows) = counts(name, fps) else { return };
    assert!(within_tolerance(&rows), "{name} at fps {fps}: {rows:?} (what, by hand, counted)");
}

#[test]
fn arterial_at_5_fps() {
    assert_close("opencv4nodejs_traffic", 5);
}

/// Below the 5 fps the counts are promised at: a white car at dusk, scored under the high score
/// while it crosses the line, is counted from where its faint boxes lead back to (14 of 16
/// eastbound before, outside ±10 %).
#[test]
fn arterial_at_4_fps() {
    assert_close("opencv4nodejs_traffic", 4);
}

#[test]
fn arterial_at_every_frame() {
    assert_close("opencv4nodejs_traffic", 0);
}

/// A vehicle that crosses in a clip's last frames is counted at its end, where no frame is left
/// to confirm its crossing (`LineCounter::end`): the arterial's red sedan, past the line 2 frames
/// before the end by hand, published as of the last frame (20.06 s). It was not counted before.
#[test]
fn a_crossing_in_the_clips_last_frames_is_counted_at_its_end() {
    let run = common::replay(&["--input", "samples/clips/opencv4nodejs_traffic.mp4", "--line", "0.5,1,0.5,0", "--fps", "0"]);
    let crossings = run.payloads("crossing");
    let last = crossings.last().expect("crossings");
    assert_eq!(last["direction"], "in", "{last}");
    assert!(last["stream_time_s"].as_f64().unwrap() > 20.0, "{last}");
}

#[test]
fn residential_street_with_parked_cars_at_5_fps() {
    assert_close("ozlu_input_video", 5);
}

#[test]
fn residential_street_with_parked_cars_at_every_frame() {
    assert_close("ozlu_input_video", 0);
}

#[test]
fn highway_cctv_at_5_fps() {
    assert_close("bgslibrary_video02", 5);
}

#[test]
fn highway_cctv_at_every_frame() {
    assert_close("bgslibrary_video02", 0);
}

#[test]
fn vietnamese_junction_with_motorbikes_at_5_fps() {
    assert_close("vn_thanglm20_traffic_ptz", 5);
}

#[test]
fn vietnamese_junction_with_motorbikes_at_every_frame() {
    assert_close("vn_thanglm20_traffic_ptz", 0);
}

/// How far the counts move with a camera's compression alone, a stand-in for footage the project
/// was not tuned on: the Vietnamese junction decoded and encoded again at three sizes with two
/// x264 settings (`benches/accuracy/variants.sh` makes the same files), each at 5 fps and at
/// every frame against the same hand count. 11 of the 12 runs were within the tolerance on
/// 2026-12-03 (10 before the stream's end counted a crossing it cut short and a low-score box had
/// to overlap its track's prediction); 5 before the day's tracker rules (a box round tracked objects side by side starts
/// no track; a vehicle boxed with its neighbour goes on hidden in their box; a rider's track,
/// once the motorbike, matches motorbikes first), 9 with them, before the told-apart rider and
/// the own place in a joint box. One run of slack: a change that
/// trades one run for another is not a loss.
#[test]
fn the_junction_encoded_again_holds_in_most_runs() {
    let Some(junction) = common::shared("traffic", "vn_thanglm20_traffic_ptz.mp4") else { return };
    let dir = common::temp_dir("encoded-again");
    let mut within = Vec::new();
    for (width, height) in [(1280, 720), (960, 540), (640, 360)] {
        for (preset, kbps) in [("fast", 2000), ("faster", 4000)] {
            // The same pipeline as benches/accuracy/variants.sh: the same files.
            let clip = dir.join(format!("vn_{width}_{preset}_{kbps}k.mp4"));
            common::gst_launch(&format!(
                "filesrc location={} ! decodebin ! videoconvert ! videoscale ! video/x-raw,width={width},height={height} ! x264enc speed-preset={preset} bitrate={kbps} threads=1 ! mp4mux ! filesink location={}",
                junction.display(),
                clip.display()
            ));
            for fps in [5, 0] {
                within.push(within_tolerance(&counts_on("vn_thanglm20_traffic_ptz", &clip, fps)));
            }
        }
    }
    let held = within.iter().filter(|&&w| w).count();
    assert!(held >= 8, "{held} of {} runs within the tolerance", within.len());
}

/// The hand-counted clips played backwards, made as `benches/accuracy/variants.sh` makes them:
/// each crossing goes the other way at the mirrored time, so traffic that drove away comes towards
/// the camera (the junction's motorbikes among it) and the other way round, footage of a kind the
/// project was not tuned on. At 5 fps and at every frame, against the hand count mirrored
/// (`benches/accuracy/reversed.py`). On 2026-12-03 every run was within the tolerance but the
/// junction's at every frame (9 of 7 motorbikes: a rider's track took the box round it and the
/// rider ahead of it, crossed at that box's bottom, and the rider was counted again on its own).
/// One run of slack. Whichever look the camera chooses (played backwards, the junction's first
/// vehicles are its last ones and it looks closer). The mirrored hand count is made by
/// the bench's script (python3, which `scripts/setup.sh` installs); the junction's frames take
/// about 1 GB while it is encoded again.
#[test]
fn the_clips_played_backwards_hold_in_all_runs_but_one() {
    let dir = common::temp_dir("played-backwards");
    let mut within = Vec::new();
    for name in ["bgslibrary_video02", "opencv4nodejs_traffic", "ozlu_input_video", "vn_thanglm20_traffic_ptz"] {
        let Some(clip) = clip_of(name) else { continue };
        let (backwards, truth) = played_backwards(name, &clip, &dir);
        for fps in [5, 0] {
            within.push(within_tolerance(&counts_against(name, &truth, &backwards, fps).0));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let held = within.iter().filter(|&&w| w).count();
    assert!(held + 1 >= within.len(), "{held} of {} runs within the tolerance", within.len());
}

/// `clip`, the hand-counted clip of `name`, played backwards into `dir` (decoded frame by frame
/// at the hand count's size, the frames encoded again in reverse order at its rate), and the hand
/// count mirrored to it.
fn played_backwards(name: &str, clip: &std::path::Path, dir: &std::path::Path) -> (PathBuf, serde_json::Value) {
    let truth = truth_of(name);
    let frames_dir = dir.join(format!("{name}.frames"));
    std::fs::create_dir_all(&frames_dir).unwrap();
    let raw = format!("video/x-raw,format=I420,width={},height={}", truth["width"], truth["height"]);
    common::gst_launch(&format!("filesrc location={} ! decodebin ! videoconvert ! videoscale ! {raw} ! multifilesink location={}/f%06d", clip.display(), frames_dir.display()));
    let frames = std::fs::read_dir(&frames_dir).unwrap().count();
    for i in 0..frames {
        std::fs::rename(frames_dir.join(format!("f{i:06}")), frames_dir.join(format!("r{:06}", frames - 1 - i))).unwrap();
    }
    let out = dir.join(format!("{name}_reversed.mp4"));
    let rate = format!("{}/1000", (truth["fps"].as_f64().unwrap() * 1000.0).round());
    common::gst_launch(&format!(
        "multifilesrc location={}/r%06d index=0 caps={raw},framerate={rate} ! rawvideoparse use-sink-caps=true ! x264enc speed-preset=fast bitrate=4000 threads=1 ! mp4mux ! filesink location={}",
        frames_dir.display(),
        out.display()
    ));
    std::fs::remove_dir_all(&frames_dir).unwrap();
    let mirrored = std::process::Command::new("python3")
        .arg(common::repo_root().join("benches/accuracy/reversed.py"))
        .arg(common::repo_root().join(format!("samples/groundtruth/{name}.json")))
        .arg(frames.to_string())
        .output()
        .unwrap();
    assert!(mirrored.status.success(), "reversed.py: {}", String::from_utf8_lossy(&mirrored.stderr));
    (out, serde_json::from_slice(&mirrored.stdout).unwrap())
}

/// The top-down view shows cars the COCO model was never trained to see from above: reported,
/// not held to a threshold.
#[test]
fn top_down_asphalt_is_reported() {
    for fps in [5, 0] {
        assert!(counts("intel_car-detection", fps).is_some_and(|rows| rows.len() == 4));
    }
}

#[test]
fn a_line_that_only_counts_publishes_no_crossings_and_counts_the_same() {
    let clip = common::sample("opencv4nodejs_traffic.mp4");
    let site = common::SiteFile::new("t").camera("arterial", &clip.display().to_string(), "").vertical_line("published", 0.5).vertical_line("counted", 0.5).with("publish_crossings = false");
    let config = site.write(&common::temp_dir("counted-only"));
    let run = common::replay(&["--config", config.to_str().unwrap(), "--input", clip.to_str().unwrap()]);
    let (summary, crossings) = (&run.summary, &run.messages);
    assert!(crossings.len() > 20, "{} crossings", crossings.len());
    assert!(crossings.iter().all(|c| c["payload"]["line"] == "published"), "a crossing of the counted-only line was published");
    let total = |i: usize| ["in", "out"].iter().flat_map(|d| summary["lines"][i][*d].as_object().unwrap().values()).map(|v| v.as_u64().unwrap()).sum::<u64>();
    assert_eq!(summary["lines"][1]["id"], "counted");
    assert_eq!((total(0), total(1)), (crossings.len() as u64, crossings.len() as u64));
}

/// The Vietnamese junction as a camera twice as far away would film it: two copies at half size
/// side by side (1920x540), made with GStreamer from `../shared`. Each copy's crossings are the
/// junction's hand count: 7 motorbikes and 6 four-wheelers.
fn junction_at_half_size(junction: &std::path::Path) -> PathBuf {
    let out = common::temp_dir("half-size").join("vn_junction_half_size_pair.mp4");
    let half = "videoscale ! video/x-raw,width=960,height=540";
    let launch = format!(
        "compositor name=c sink_1::xpos=960 ! video/x-raw,width=1920,height=540 ! videoconvert ! x264enc speed-preset=faster bitrate=4000 threads=1 ! mp4mux ! filesink location={out} \
         filesrc location={clip} ! decodebin ! {half} ! c.sink_0 filesrc location={clip} ! decodebin ! {half} ! c.sink_1",
        out = out.display(),
        clip = junction.display()
    );
    common::gst_launch(&launch);
    out
}

/// Distant motorbikes, 6 to 8 px wide in the whole frame scaled to 416 px, are found in the
/// road around the lines cut at the stream's resolution with the pixels of a 640-px frame
/// (`configs/README.md`, *Small and distant vehicles*): on each copy's line, each class group
/// within ±10 % (at least ±1) of the hand count at 5 analysed fps, as on the junction itself.
/// Set by hand, and found out by the camera itself (`detect_zoom`).
#[test]
fn distant_motorbikes_are_counted_in_the_detection_region_at_5_fps() {
    let Some(junction) = common::shared("traffic", "vn_thanglm20_traffic_ptz.mp4") else { return };
    let clip = junction_at_half_size(&junction);
    let args = ["--input", clip.to_str().unwrap(), "--line", "0.015,0.44,0.5,0.44", "0.515,0.44,1,0.44", "--fps", "5"];
    let by_hand = common::replay(&[&args[..], &["--detect-region", "auto", "--detect-width", "640"]].concat());
    assert_eq!(by_hand.summary["detect_look"], "as set", "a camera told where and how to look does not find out");
    assert_half_size_counts(&by_hand);
    let found_out = common::replay(&args);
    assert_eq!(found_out.summary["detect_look"], "closer", "the closer look finds more vehicles");
    assert_half_size_counts(&found_out);
}

fn assert_half_size_counts(run: &common::Replay) {
    for line in run.summary["lines"].as_array().unwrap() {
        for (group, classes) in GROUPS {
            let counted = |dir: &str| -> u64 { line[dir].as_object().unwrap().iter().filter(|(class, _)| classes.contains(&class.as_str())).map(|(_, n)| n.as_u64().unwrap()).sum() };
            let by_hand = if group == "two-wheelers" { 7.0 } else { 6.0 };
            let got = counted("out") as f64;
            println!("half-size junction, {}, {group}: {got} of {by_hand}; in: {}", line["id"], counted("in"));
            assert!((got - by_hand).abs() <= (0.1 * by_hand).max(1.0), "{}, {group}: {got} counted, {by_hand} by hand", line["id"]);
            assert_eq!(counted("in"), 0, "{group}: nothing crosses the other way");
        }
    }
}
