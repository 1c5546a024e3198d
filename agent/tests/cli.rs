//! `canh check` and bad input on the command line: clear errors with key paths, exit code 2,
//! never a password, never a panic.

mod common;

use std::process::Command;

fn canh(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_canh")).args(args).env("CANH_LOG", "warn").output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn check_accepts_the_bundled_configs() {
    // The examples meant for the service read the broker's password as a systemd credential.
    let credentials = common::temp_dir("credentials");
    std::fs::write(credentials.join("mqtt-password"), "change-me\n").unwrap();
    for config in ["configs/demo.toml", "configs/example-site.toml", "configs/intersection.toml", "samples/sites/arterial.toml", "samples/sites/street.toml", "configs/forest-watch.toml", "configs/rice-field.toml"] {
        let path = common::repo_root().join(config);
        let (code, stdout, stderr) = canh(&["check", "--config", path.to_str().unwrap(), "--credentials", credentials.to_str().unwrap()]);
        assert_eq!(code, 0, "{config}: {stdout}{stderr}");
        assert!(stdout.contains(": ok"), "{stdout}");
    }
}

#[test]
fn check_lists_every_error_with_its_key_path_and_hides_passwords() {
    let dir = common::temp_dir("check");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        r#"
site = "hue"
[[cameras]]
id = "cam1"
source = "rtsp://admin:hunter2@10.0.0.5/sub"
analytics_fps = 500
[[cameras.lines]]
id = "a"
p1 = [1.5, 0.2]
p2 = [0.5, 0.5]
[[cameras]]
id = "cam1"
source = "rtsp://admin:hunter2@10.0.0.6/sub"
"#,
    )
    .unwrap();
    let (code, stdout, stderr) = canh(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    for expected in [
        "cameras[0].analytics_fps: 500 is more than 120",
        "cameras[0].lines[0].p1: x must be within 0..1",
        "cameras[1].id: 'cam1' is used by another camera",
    ] {
        assert!(stderr.contains(expected), "missing '{expected}' in:\n{stderr}");
    }
    assert!(!stdout.contains("hunter2") && !stderr.contains("hunter2"), "{stdout}{stderr}");
}

#[test]
fn bad_replay_input_is_an_error_not_a_panic() {
    let (code, _, stderr) = canh(&["replay", "--input", "/no/such/clip.mp4", "--line", "0,0,1,1"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cameras[0].source: file /no/such/clip.mp4 does not exist"), "{stderr}");
    let (code, _, stderr) = canh(&["replay", "--input", common::sample("ozlu_input_video.mp4").to_str().unwrap(), "--line", "0,0,1"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("expected four numbers"), "{stderr}");
    assert!(!stderr.contains("panicked"));
    // A file that is not video: the source fails with a clear reason and the run still ends.
    let not_video = common::temp_dir("notvideo").join("notes.mp4");
    std::fs::write(&not_video, "not a video").unwrap();
    let (code, _, stderr) = canh(&["replay", "--input", not_video.to_str().unwrap(), "--line", "0,0,1,1"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(&format!("error: {}: ", not_video.display())), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn rule_errors_name_the_rule_key_and_bad_signal_logs_name_the_line() {
    let dir = common::temp_dir("rules");
    let path = dir.join("rules.toml");
    std::fs::write(
        &path,
        format!(
            r#"
site = "hue"
[[cameras]]
id = "cam1"
source = "{}"
[[cameras.rules]]
id = "stop"
classes = ["tractor"]
red_light = {{ p1 = [0.1, 0.5], p2 = [0.9, 0.5], signal = {{ topic = "junction/phase" }} }}
[cameras.fire]
classifier = "yolox_nano"
flame_threshold = 2.0
masks = [[[0.1, 0.1], [0.2, 0.2]]]
[[cameras.rules]]
id = "stop"
speeding = {{ limit_kmh = -5, calibration = {{ image = [[0, 0], [1, 0], [1, 1], [0, 1]], ground_m = [[0, 0], [10, 0], [10, 10], [0, 10]] }} }}
"#,
            common::sample("ozlu_input_video.mp4").display()
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = canh(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    for expected in [
        "cameras[0].rules[0].classes[0]: 'tractor' is not a class this camera's model reports (see its manifest's labels and read_as)",
        "cameras[0].rules[0].red_light.signal.topic: the signal controller's feed is read over MQTT: configure [mqtt]",
        "cameras[0].rules[1].id: 'stop' is used by another rule of this camera",
        "cameras[0].rules[1].speeding.limit_kmh: must be a positive speed, got -5",
        "cameras[0].fire.classifier: model 'yolox_nano' is not an image classifier",
        "cameras[0].fire.flame_threshold: must be within 0..1, got 2",
        "cameras[0].fire.masks[0]: a zone needs at least 3 points",
    ] {
        assert!(stderr.contains(expected), "missing '{expected}' in:\n{stderr}");
    }

    let log = dir.join("signal.jsonl");
    std::fs::write(&log, "{\"t_s\": 1.0, \"topic\": \"junction/phase\", \"state\": \"red\"}\n\n{\"t_s\": 2.0, \"topic\": \"junction/phase\", \"state\": \"purple\"}\n").unwrap();
    let clip = common::sample("ozlu_input_video.mp4");
    let (code, _, stderr) = canh(&["replay", "--input", clip.to_str().unwrap(), "--signal-log", log.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(&format!("--signal-log {}:3: unknown signal state 'purple'", log.display())), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_password_from_a_file_is_used_but_never_printed() {
    let dir = common::temp_dir("password-file");
    std::fs::write(dir.join("mqtt-password"), "s3cret-from-file\n").unwrap();
    let config = |extra: &str| {
        let path = dir.join("site.toml");
        std::fs::write(
            &path,
            format!(
                "site = \"hue\"\n{extra}\n[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\nusername = \"canh\"\npassword_file = \"mqtt-password\"\n[[cameras]]\nid = \"c\"\nsource = \"rtsp://viewer:s3cret-in-url@10.0.0.5/sub\"\n"
            ),
        )
        .unwrap();
        path
    };
    let (code, stdout, stderr) = canh(&["check", "--config", config("").to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, stdout, stderr) = canh(&["check", "--config", config("counts_interval_s = 0").to_str().unwrap()]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    for output in [&stdout, &stderr] {
        assert!(!output.contains("s3cret"), "{output}");
    }
    std::fs::remove_file(dir.join("mqtt-password")).unwrap();
    let (code, _, stderr) = canh(&["check", "--config", config("").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("mqtt.password: cannot read") && stderr.contains("mqtt-password"), "{stderr}");
}

#[test]
fn logs_are_json_lines_under_journald_and_text_on_request() {
    let clip = common::sample("opencv4nodejs_traffic.mp4");
    let args = ["replay", "--input", clip.to_str().unwrap(), "--line", "0.5,1,0.5,0", "--fps", "1"];
    // Under systemd, stderr goes to journald, which sets JOURNAL_STREAM.
    let out = Command::new(env!("CARGO_BIN_EXE_canh")).args(args).env("CANH_LOG", "info").env("JOURNAL_STREAM", "8:12345").env_remove("CANH_LOG_FORMAT").output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    assert!(lines.iter().any(|l| l["level"] == "INFO" && l["message"] == "loading model" && l["model"] == "yolox_nano"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_canh")).args(args).env("CANH_LOG", "info").env("JOURNAL_STREAM", "8:12345").env("CANH_LOG_FORMAT", "text").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(" INFO ") && serde_json::from_str::<serde_json::Value>(stderr.lines().next().unwrap()).is_err(), "{stderr}");
}

/// The README's first command, as a new user sees it: the crossings as JSON lines on stdout, no
/// warning about the broker the demo has none of, no empty counts tail, and a summary for a
/// person on stderr whose totals are the crossings printed.
#[test]
fn the_demo_prints_crossings_then_a_summary_for_a_person() {
    let config = common::repo_root().join("configs/demo.toml");
    let (code, stdout, stderr) = canh(&["run", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let messages: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))).collect();
    let of = |kind: &str| messages.iter().filter(|m| m["topic"].as_str().unwrap().ends_with(kind)).map(|m| &m["payload"]).collect::<Vec<_>>();
    for stats in of("/stats") {
        assert_eq!(stats["warnings"], serde_json::json!([]), "no broker is configured, so none is missing: {stats}");
    }
    let crossings = of("/crossing");
    let counted = |direction: &str| crossings.iter().filter(|c| c["direction"] == direction).count();
    let (into, out) = (counted("in"), counted("out"));
    assert!(into >= 10 && out >= 5, "{into} in, {out} out");
    let counts = of("/counts");
    let last = counts.last().expect("counts");
    assert_ne!(last["lines"][0], serde_json::json!({"id": "middle", "in": {}, "out": {}}), "an empty tail: {last}");
    let summed = |direction: &str| counts.iter().flat_map(|c| c["lines"][0][direction].as_object().unwrap().values()).map(|n| n.as_u64().unwrap() as usize).sum::<usize>();
    assert_eq!((summed("in"), summed("out")), (into, out), "the counts add up to the crossings");

    let summary = stderr.lines().skip_while(|l| !l.starts_with("site demo: 1 camera,")).collect::<Vec<_>>();
    assert!(summary.len() >= 3, "a summary at the end:\n{stderr}");
    assert!(summary[0].contains("100 frames analysed in"), "{}", summary[0]);
    assert_eq!(summary[1], "camera arterial:");
    assert!(summary[2].starts_with(&format!("  line middle: in {into} (")) && summary[2].contains(&format!("; out {out} (")), "{}", summary[2]);
}
