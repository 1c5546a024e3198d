//! Bad input, tried for real. Malformed site files, each refused by `canh check` (exit code 2)
//! with a message naming the key at fault; broken streams, each reported in its camera's status
//! while the agent and a good camera beside them keep running; and a stream of unknown frame
//! rate, analysed as any other.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// A valid site: one camera with a line, a rule, a fire watch and a broker.
const GOOD: &str = r#"site = "bad-input"
counts_interval_s = 60

[mqtt]
url = "mqtt://127.0.0.1:1883"

[[cameras]]
id = "cam"
source = "rtsp://10.0.0.5/sub"

[[cameras.lines]]
id = "stop"
p1 = [0.1, 0.5]
p2 = [0.9, 0.5]

[[cameras.rules]]
id = "lanes"
[cameras.rules.wrong_way]
zone = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]
heading_deg = 0
"#;

/// (what is wrong, the site file, what the message must name).
fn cases(dir: &Path) -> Vec<(&'static str, String, String)> {
    let replace = |from: &str, to: &str| {
        assert!(GOOD.contains(from), "{from}");
        GOOD.replacen(from, to, 1)
    };
    let append = |extra: &str| format!("{GOOD}{extra}");
    let unreadable = dir.join("no-such-password-file");
    let not_a_certificate = dir.join("not-a-certificate.pem");
    std::fs::write(&not_a_certificate, "hello").unwrap();
    let s = |x: &str| x.to_string();
    vec![
        ("TOML syntax", replace("site = \"bad-input\"", "site = \"bad-input"), s("line 1")),
        ("missing site", replace("site = \"bad-input\"\n", ""), s("site")),
        ("site of the wrong type", replace("site = \"bad-input\"", "site = 5"), s("site")),
        ("site id with a space", replace("site = \"bad-input\"", "site = \"bad input\""), s("site")),
        ("unknown top-level key", replace("counts_interval_s = 60", "counts_interval_s = 60\ncolour = \"red\""), s("colour")),
        ("zero counts interval", replace("counts_interval_s = 60", "counts_interval_s = 0"), s("counts_interval_s")),
        ("negative counts interval", replace("counts_interval_s = 60", "counts_interval_s = -5"), s("counts_interval_s")),
        ("stats interval as a word", replace("counts_interval_s = 60", "counts_interval_s = 60\nstats_interval_s = \"often\""), s("stats_interval_s")),
        ("no cameras", s("site = \"bad-input\"\ncameras = []\n"), s("cameras")),
        ("camera without id", replace("id = \"cam\"\n", ""), s("cameras[0]")),
        ("camera without source", replace("source = \"rtsp://10.0.0.5/sub\"\n", ""), s("source")),
        ("duplicate camera ids", append("\n[[cameras]]\nid = \"cam\"\nsource = \"rtsp://10.0.0.6/sub\"\n"), s("cameras[1].id")),
        ("camera id with a slash", replace("id = \"cam\"", "id = \"cam/1\""), s("cameras[0].id")),
        ("analytics_fps as a word", replace("source = \"rtsp://10.0.0.5/sub\"", "source = \"rtsp://10.0.0.5/sub\"\nanalytics_fps = \"five\""), s("analytics_fps")),
        ("analytics_fps too high", replace("source = \"rtsp://10.0.0.5/sub\"", "source = \"rtsp://10.0.0.5/sub\"\nanalytics_fps = 500"), s("cameras[0].analytics_fps")),
        ("unknown pipeline", replace("source = \"rtsp://10.0.0.5/sub\"", "source = \"rtsp://10.0.0.5/sub\"\npipeline = \"quantum\""), s("cameras[0].pipeline")),
        ("unknown model", replace("source = \"rtsp://10.0.0.5/sub\"", "source = \"rtsp://10.0.0.5/sub\"\nmodel = \"yolo_giant\""), s("cameras[0].model")),
        ("empty source", replace("source = \"rtsp://10.0.0.5/sub\"", "source = \"\""), s("cameras[0].source")),
        ("source file missing", replace("source = \"rtsp://10.0.0.5/sub\"", "source = \"/no/such/clip.mp4\""), s("cameras[0].source")),
        ("line point outside the frame", replace("p1 = [0.1, 0.5]", "p1 = [1.5, 0.5]"), s("cameras[0].lines[0].p1")),
        ("line point with one coordinate", replace("p1 = [0.1, 0.5]", "p1 = [0.1]"), s("p1")),
        ("line of zero length", replace("p2 = [0.9, 0.5]", "p2 = [0.1, 0.5]"), s("cameras[0].lines[0]")),
        ("duplicate line ids", replace("\n[[cameras.rules]]", "\n[[cameras.lines]]\nid = \"stop\"\np1 = [0.1, 0.6]\np2 = [0.9, 0.6]\n\n[[cameras.rules]]"), s("cameras[0].lines")),
        ("line class the model lacks", replace("p2 = [0.9, 0.5]", "p2 = [0.9, 0.5]\nclasses = [\"spaceship\"]"), s("cameras[0].lines[0].classes")),
        ("rule with no kind", replace("[cameras.rules.wrong_way]\nzone = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]\nheading_deg = 0\n", ""), s("cameras[0].rules[0]")),
        ("rule with two kinds", append("[cameras.rules.no_parking]\nzone = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0]]\ndwell_s = 60\n"), s("cameras[0].rules[0]")),
        ("zone of two points", replace("zone = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]", "zone = [[0.0, 0.5], [1.0, 0.5]]"), s("cameras[0].rules[0].wrong_way.zone")),
        ("self-crossing zone", replace("zone = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]", "zone = [[0.0, 0.5], [1.0, 1.0], [1.0, 0.5], [0.0, 1.0]]"), s("cameras[0].rules[0].wrong_way.zone")),
        ("zone whose points lie on one line", replace("zone = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]", "zone = [[0.0, 0.5], [0.5, 0.5], [1.0, 0.5]]"), s("cameras[0].rules[0].wrong_way.zone")),
        ("heading as a word", replace("heading_deg = 0", "heading_deg = \"east\""), s("heading_deg")),
        ("negative dwell", replace("[cameras.rules.wrong_way]\nzone = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]\nheading_deg = 0\n", "[cameras.rules.no_parking]\nzone = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0]]\ndwell_s = -1\n"), s("dwell_s")),
        ("degenerate speed calibration", replace("[cameras.rules.wrong_way]\nzone = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]\nheading_deg = 0\n", "[cameras.rules.speeding]\nlimit_kmh = 50\ncalibration = { image = [[0.1, 0.5], [0.2, 0.5], [0.3, 0.5], [0.4, 0.5]], ground_m = [[0, 0], [10, 0], [10, 3], [0, 3]] }\n"), s("cameras[0].rules[0].speeding.calibration")),
        ("red light without a signal", replace("[cameras.rules.wrong_way]\nzone = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]\nheading_deg = 0\n", "[cameras.rules.red_light]\np1 = [0.1, 0.5]\np2 = [0.9, 0.5]\n"), s("signal")),
        ("fire classifier that is a detector", append("\n[cameras.fire]\nclassifier = \"yolox_nano\"\n"), s("cameras[0].fire.classifier")),
        ("smoke model that is a flame classifier", append("\n[cameras.fire]\nsmoke_model = \"onfire_shufflenetv2\"\n"), s("cameras[0].fire.smoke_model")),
        ("smoke model that does not exist", append("\n[cameras.fire]\nsmoke_model = \"smoke_v9\"\n"), s("cameras[0].fire.smoke_model")),
        ("smoke baseline judging before it keeps enough maps", append("\n[cameras.fire]\nsmoke_baseline_maps = 5\nsmoke_baseline_min_maps = 10\n"), s("cameras[0].fire.smoke_baseline_min_maps")),
        ("negative smoke baseline margin", append("\n[cameras.fire]\nsmoke_baseline_margin_logit = -1\n"), s("cameras[0].fire.smoke_baseline_margin_logit")),
        ("dwell beyond what a duration holds", replace("[cameras.rules.wrong_way]\nzone = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]\nheading_deg = 0\n", "[cameras.rules.no_parking]\nzone = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0]]\ndwell_s = 1e30\n"), s("cameras[0].rules[0].no_parking.dwell_s")),
        ("a confirmed fire's update on every frame", append("\n[cameras.fire]\nupdate_interval_s = 0\n"), s("cameras[0].fire.update_interval_s")),
        ("fire time beyond what a duration holds", append("\n[cameras.fire]\ncooldown_s = 1e30\n"), s("cameras[0].fire.cooldown_s")),
        ("smoke model alone confirming sooner than both cues", append("\n[cameras.fire]\nsmoke_rooted_confirm_after_s = 5\n"), s("cameras[0].fire.smoke_rooted_confirm_after_s")),
        ("broker URL with another scheme", replace("url = \"mqtt://127.0.0.1:1883\"", "url = \"http://127.0.0.1:1883\""), s("mqtt.url")),
        ("keep-alive too short", replace("url = \"mqtt://127.0.0.1:1883\"", "url = \"mqtt://127.0.0.1:1883\"\nkeep_alive_s = 1"), s("mqtt.keep_alive_s")),
        ("unreadable password file", replace("url = \"mqtt://127.0.0.1:1883\"", &format!("url = \"mqtt://127.0.0.1:1883\"\nusername = \"canh\"\npassword_file = \"{}\"", unreadable.display())), s("mqtt.password")),
        ("CA file that holds no certificate", replace("url = \"mqtt://127.0.0.1:1883\"", &format!("url = \"mqtts://127.0.0.1:8883\"\nca_file = \"{}\"", not_a_certificate.display())), s("ca_file")),
        ("negative outbox size", replace("url = \"mqtt://127.0.0.1:1883\"", "url = \"mqtt://127.0.0.1:1883\"\noutbox_max_mb = -1"), s("mqtt.outbox_max_mb")),
        ("metrics address without a port", replace("[mqtt]", "[metrics]\nlisten = \"localhost\"\n\n[mqtt]"), s("metrics.listen")),
        ("more frames at once than cameras", replace("[mqtt]", "[detector]\nparallel_frames = 1000\n\n[mqtt]"), s("detector.parallel_frames")),
        ("tracker score above 1", replace("[mqtt]", "[tracker]\nhigh_score = 2.0\n\n[mqtt]"), s("tracker.high_score")),
    ]
}

#[test]
fn malformed_site_files_are_refused_naming_the_key() {
    let dir = temp_dir("malformed");
    let cases = cases(&dir);
    assert!(cases.len() >= 30);
    let good = dir.join("good.toml");
    std::fs::write(&good, GOOD).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_canh")).args(["check", "--config", good.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "the base file is valid: {}", String::from_utf8_lossy(&out.stderr));
    let mut failures = Vec::new();
    for (i, (what, text, key)) in cases.iter().enumerate() {
        let path = dir.join(format!("case-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_canh")).args(["check", "--config", path.to_str().unwrap()]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().nth(1).unwrap_or_default().trim().to_string();
        println!("{what}: {first}");
        if out.status.code() != Some(2) || !stderr.contains(key.as_str()) || stderr.contains("panicked") {
            failures.push(format!("{what} (exit {:?}, expected '{key}'):\n{stderr}", out.status.code()));
        }
    }
    // Files that cannot be read at all.
    for (what, path) in [("a folder", dir.clone()), ("a missing file", dir.join("nowhere.toml"))] {
        let out = Command::new(env!("CARGO_BIN_EXE_canh")).args(["check", "--config", path.to_str().unwrap()]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(2) || !stderr.contains("cannot read the file") {
            failures.push(format!("{what}: {stderr}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} refused badly:\n{}", failures.len(), cases.len() + 2, failures.join("\n"));
}

/// A TCP port that accepts connections and never says anything: a camera that hangs.
fn silent_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

#[test]
fn broken_streams_are_reported_per_camera_while_the_others_run() {
    let dir = temp_dir("broken-streams");
    let clip = sample("opencv4nodejs_traffic.mp4");
    let (good_port, secure_port, stalling_port) = (free_port(), free_port(), free_port());
    let _good = RtspServer::start(good_port, &clip);
    let _secure = RtspServer::start_secure(secure_port, &clip);
    let stalling = RtspServer::start(stalling_port, &clip);
    let corrupt = dir.join("corrupt.mp4");
    let mut bytes = std::fs::read(&clip).unwrap();
    for i in (64..bytes.len()).step_by(997) {
        bytes[i] ^= 0x5A;
    }
    std::fs::write(&corrupt, bytes).unwrap();
    let notes = dir.join("notes.mp4");
    std::fs::write(&notes, "meeting notes, not a video\n".repeat(100)).unwrap();
    let broker = Mosquitto::start();
    // (camera, source, the state it must reach, words its reason must hold)
    let cameras = [
        ("good", format!("rtsp://127.0.0.1:{good_port}/clip"), "streaming", ""),
        ("unreachable", format!("rtsp://127.0.0.1:{}/clip", free_port()), "reconnecting", "Could not open resource"),
        ("wrong_path", format!("rtsp://127.0.0.1:{good_port}/nope"), "reconnecting", "Not found"),
        ("wrong_password", format!("rtsp://viewer:not-the-password@127.0.0.1:{secure_port}/clip"), "reconnecting", "Unauthorized"),
        ("corrupt_file", corrupt.display().to_string(), "error", "invalid"),
        ("not_a_video", notes.display().to_string(), "error", "text file"),
        ("hangs", format!("rtsp://127.0.0.1:{}/clip", silent_server()), "reconnecting", ""),
        ("stops_sending", format!("rtsp://127.0.0.1:{stalling_port}/clip"), "reconnecting", "no frame for 3 s"),
    ];
    let metrics_port = free_port();
    let mut site = format!("site = \"broken\"\n\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nkeep_alive_s = 5\n", broker.port);
    for (id, source, _, _) in &cameras {
        site += &format!("\n[[cameras]]\nid = \"{id}\"\nsource = \"{source}\"\nno_frames_timeout_s = 3\n");
    }
    let config = dir.join("site.toml");
    std::fs::write(&config, site).unwrap();
    let prefix = "canh/v1/broken";
    let listener = Listener::start(broker.port, prefix, &dir);
    let mut agent = Agent::start(&["run", "--config", config.to_str().unwrap()], dir.join("canh.log"));
    listener.wait_until(Duration::from_secs(30), "stops_sending streaming", |l| l.latest(&format!("{prefix}/stops_sending/status")).is_some_and(|s| s["state"] == "streaming"));
    stalling.stall();

    let reached = |l: &Listener, (id, _, state, reason): &(&str, String, &str, &str)| {
        l.latest(&format!("{prefix}/{id}/status")).is_some_and(|s| s["state"] == *state && s["reason"].as_str().unwrap_or_default().contains(reason))
    };
    listener.wait_until(Duration::from_secs(45), "every camera's expected state", |l| cameras.iter().all(|c| reached(l, c)));
    for (id, _, _, _) in &cameras {
        let status = listener.latest(&format!("{prefix}/{id}/status")).unwrap();
        println!("{id}: {} {}", status["state"], status["reason"]);
        assert!(!status.to_string().contains("not-the-password"), "{status}");
    }
    // Health says which cameras are in trouble.
    let (code, health) = get(metrics_port, "/healthz");
    assert_eq!(code, 503, "{health}");
    assert!(health.contains("camera wrong_password: reconnecting") && health.contains("camera not_a_video: error") && !health.contains("camera good"), "{health}");
    // The good camera kept analysing through all of it, and the agent is still up.
    let before = frames_analysed(metrics_port, "good");
    std::thread::sleep(Duration::from_secs(2));
    assert!(frames_analysed(metrics_port, "good") > before, "the good camera stopped");
    assert!(agent.child.try_wait().unwrap().is_none(), "the agent died:\n{}", agent.log_text());
    assert!(agent.terminate().success(), "{}", agent.log_text());
    assert!(!agent.log_text().contains("not-the-password"));
    assert!(!agent.log_text().contains("panicked"));
}

/// A stream that gives no frame rate and no frame durations (an H.264 camera without timing
/// information in its stream sends that, and some tools write such files) is analysed at the
/// analysis rate. `videorate` took such a stream's own rate, and aborted the process on its first
/// frame without a duration.
#[test]
fn a_stream_of_unknown_frame_rate_is_analysed_at_the_analysis_rate() {
    use gstreamer as gst;
    use gstreamer::prelude::*;
    let clip = temp_dir("unknown-rate").join("ball.mkv");
    // 2 s at 30 frames a second: Motion JPEG whose caps say no rate, each frame's duration taken
    // off, so that Matroska keeps the timestamps alone.
    gst::init().unwrap();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=60 pattern=ball ! video/x-raw,framerate=30/1,width=320,height=240 ! jpegenc \
         ! capssetter caps=image/jpeg,framerate=(fraction)0/1 ! identity name=strip ! matroskamux ! filesink location={}",
        clip.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    pipeline.by_name("strip").unwrap().static_pad("src").unwrap().add_probe(gst::PadProbeType::BUFFER, |_, probe| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = probe.data.as_mut() {
            buffer.make_mut().set_duration(gst::ClockTime::NONE);
        }
        gst::PadProbeReturn::Ok
    });
    pipeline.set_state(gst::State::Playing).unwrap();
    let ended = pipeline.bus().unwrap().timed_pop_filtered(gst::ClockTime::from_seconds(30), &[gst::MessageType::Eos, gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(matches!(ended.as_ref().map(|m| m.view()), Some(gst::MessageView::Eos(_))), "{ended:?}");

    let at_5_fps = replay(&["--input", clip.to_str().unwrap(), "--fps", "5"]);
    assert_eq!(at_5_fps.summary["frames"], 10, "{}", at_5_fps.summary);
    // Every frame (no rate limit): the clip holds the 60 frames it was made of.
    let every_frame = replay(&["--input", clip.to_str().unwrap(), "--fps", "0"]);
    assert_eq!(every_frame.summary["frames"], 60, "{}", every_frame.summary);
}
