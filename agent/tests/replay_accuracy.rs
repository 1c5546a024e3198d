//! `canh replay` counts on the hand-counted clips, at 5 analysed fps and at every frame: each
//! direction's total within ±15% of the hand count.

mod common;

fn replay(clip: &str, fps: u32) -> (u64, u64, serde_json::Value) {
    let truth: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo_root().join("samples/groundtruth").join(format!("{}.json", clip.split('.').next().unwrap()))).unwrap(),
    )
    .unwrap();
    let (p1, p2) = (&truth["line"]["p1"], &truth["line"]["p2"]);
    let line = format!("{},{},{},{}", p1[0], p1[1], p2[0], p2[1]);
    let run = common::replay(&["--input", common::sample(clip).to_str().unwrap(), "--line", &line, "--fps", &fps.to_string()]);
    let summary = run.summary;
    let sum = |dir: &str| summary["lines"][0][dir].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>();
    let crossings = run.lines.len() as u64;
    assert_eq!(crossings, sum("in") + sum("out"), "one crossing event per counted crossing");
    (sum("in"), sum("out"), truth)
}

fn assert_close(clip: &str, fps: u32) {
    let (got_in, got_out, truth) = replay(clip, fps);
    let by_hand = |dir: &str| truth["crossings"].as_array().unwrap().iter().filter(|c| c["direction"] == dir).count() as f64;
    for (dir, got) in [("in", got_in), ("out", got_out)] {
        let want = by_hand(dir);
        let tolerance = 0.15 * want;
        assert!((got as f64 - want).abs() <= tolerance, "{clip} at fps {fps}: {dir} {got}, by hand {want} (±15%)");
    }
}

#[test]
fn arterial_at_5_fps() {
    assert_close("opencv4nodejs_traffic.mp4", 5);
}

#[test]
fn arterial_at_every_frame() {
    assert_close("opencv4nodejs_traffic.mp4", 0);
}

#[test]
fn residential_street_with_parked_cars_at_5_fps() {
    assert_close("ozlu_input_video.mp4", 5);
}

#[test]
fn residential_street_with_parked_cars_at_every_frame() {
    assert_close("ozlu_input_video.mp4", 0);
}

#[test]
fn highway_cctv_at_5_fps() {
    assert_close("bgslibrary_video02.avi", 5);
}

#[test]
fn highway_cctv_at_every_frame() {
    assert_close("bgslibrary_video02.avi", 0);
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
