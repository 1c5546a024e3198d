//! A full disk degrades, it does not stop delivery: the state directory on a small tmpfs, filled
//! while the agent runs. With the broker there, every crossing and alert reaches the IOC; through
//! a broker outage on top, what the disk cannot hold waits in memory and is delivered (the broker
//! acknowledges it) when the broker is back, nothing counted lost; the loss of room is reported
//! (`stats`, `/healthz`), the publisher goes on, and it recovers once there is room again. Mounting a tmpfs needs root (as CI runs); elsewhere the test passes with a note.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const PREFIX: &str = "canh/v1/diskfull";

/// A tmpfs of `size`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir).status().is_ok_and(|s| s.success());
        mounted.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir` with a file, to its last byte.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 4096];
    while file.write_all(&block).is_ok() {}
    while file.write_all(&block[..1]).is_ok() {}
    let _ = file.sync_all();
    path
}

fn total(metrics: &str, kind: &str) -> f64 {
    samples(metrics, "canh_camera_events_total").get(&format!("{{camera=\"arterial\",kind=\"{kind}\"}}")).copied().unwrap_or(0.0)
}

#[test]
fn a_full_disk_loses_no_alert_reports_itself_and_recovers() {
    let dir = temp_dir("disk-full");
    let Some(state) = Tmpfs::mount(&dir.join("state"), "1m") else {
        println!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let mut broker = Mosquitto::start_persistent();
    let (rtsp_port, metrics_port) = (free_port(), free_port());
    let _server = RtspServer::start(rtsp_port, &sample("opencv4nodejs_traffic.mp4"));
    let site = SiteFile::new("diskfull")
        .with(&format!("stats_interval_s = 1\nstate_dir = \"{}\"", state.0.display()))
        .mqtt(broker.port, "")
        .with(&format!("[metrics]\nlisten = \"127.0.0.1:{metrics_port}\""))
        .camera("arterial", &format!("rtsp://127.0.0.1:{rtsp_port}/clip"), "")
        .vertical_line("middle", 0.5)
        .with("[[cameras.rules]]\nid = \"speed\"\n[cameras.rules.speeding]\nlimit_kmh = 20\ncalibration = { image = [[0.1, 0.417], [0.9, 0.417], [0.9, 0.603], [0.1, 0.603]], ground_m = [[0, 0], [16.5, 0], [16.5, 3.6], [0, 3.6]] }\nzone = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]")
        .write(&dir);
    let listener = Listener::start(broker.port, PREFIX, &dir);
    let mut agent = Agent::start(&["run", "--config", site.to_str().unwrap()], dir.join("canh.log"));
    listener.wait_until(Duration::from_secs(30), "a first crossing", |l| !l.events("crossing").is_empty());
    let filler = fill(&state.0);
    let stats = |l: &Listener| l.latest(&format!("{PREFIX}/stats")).unwrap_or_default();
    let warned = |l: &Listener| stats(l)["warnings"].as_array().is_some_and(|w| w.iter().any(|w| w == "disk_full"));
    listener.wait_until(Duration::from_secs(15), "the disk_full warning", warned);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (code, body) = get(metrics_port, "/healthz");
        if code == 503 && body.contains("disk full") && body.contains("outbox.sqlite") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the outbox's full disk is not reported: {code} {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // With the broker there, every crossing and alert the agent makes reaches the IOC.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        let metrics = get(metrics_port, "/metrics").1;
        let made = total(&metrics, "crossing") >= 15.0 && total(&metrics, "violation") >= 10.0;
        let delivered = listener.events("crossing").len() as f64 == total(&metrics, "crossing") && listener.events("violation").len() as f64 == total(&metrics, "violation");
        if made && delivered {
            break metrics;
        }
        assert!(std::time::Instant::now() < deadline, "not everything delivered: {} crossings and {} alerts of\n{metrics}\n{}", listener.events("crossing").len(), listener.events("violation").len(), agent.log_text());
        std::thread::sleep(Duration::from_millis(250));
    };
    println!(
        "disk full: {} crossings and {} alerts made, {} and {} delivered, {} evidence images not kept",
        total(&metrics, "crossing"),
        total(&metrics, "violation"),
        listener.events("crossing").len(),
        listener.events("violation").len(),
        metric_value(&metrics, "canh_evidence_lost_total")
    );
    assert!(metric_value(&metrics, "canh_evidence_lost_total") > 0.0, "the disk was full for the evidence archive too:\n{metrics}");
    // A broker outage on top: what the disk cannot hold waits in memory, and goes out (the broker
    // acknowledges it) when the broker is back.
    let events_before = total(&metrics, "crossing") + total(&metrics, "violation");
    broker.stop();
    std::thread::sleep(Duration::from_secs(6));
    let metrics = get(metrics_port, "/metrics").1;
    let held = metric_value(&metrics, "canh_outbox_messages");
    let made_meanwhile = total(&metrics, "crossing") + total(&metrics, "violation") - events_before;
    broker.resume();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let metrics = get(metrics_port, "/metrics").1;
        if metric_value(&metrics, "canh_mqtt_connected") == 1.0 && metric_value(&metrics, "canh_outbox_messages") <= 3.0 {
            break metrics;
        }
        assert!(std::time::Instant::now() < deadline, "what was held is not delivered:\n{metrics}");
        std::thread::sleep(Duration::from_millis(250));
    };
    println!("broker outage on a full disk: {made_meanwhile} events made, {held} messages held, then delivered");
    assert!(made_meanwhile > 0.0 && held >= made_meanwhile, "{made_meanwhile} events, {held} held");
    let lost: f64 = samples(&metrics, "canh_outbox_lost_total").values().sum();
    assert_eq!(lost, 0.0, "{metrics}");
    assert!(warned(&listener), "still full, still said: {}", stats(&listener));
    // Room again: the warning goes, by itself.
    std::fs::remove_file(filler).unwrap();
    listener.wait_until(Duration::from_secs(15), "the disk_full warning to clear", |l| !warned(l) && stats(l)["disk_full"].is_null());
    let (_, body) = get(metrics_port, "/healthz");
    assert!(!body.contains("disk"), "{body}");
    assert!(agent.terminate().success(), "{}", agent.log_text());
    listener.stop();
}
