//! Soak: one camera that flaps (an RTSP server on 127.0.0.1 whose 0.73-s clip ends every session)
//! beside three healthy ones, until the flapping camera has reconnected RECONNECTS times (default
//! 2,000, about an hour). Every 10 s: the flapping camera's reconnects and abandoned pipelines,
//! and the agent's RSS, threads and open file descriptors. A wedge is a minute without a
//! reconnect. Ends with SIGTERM, timed. JSON in `target/bench-soak.json`.
//!
//! `cargo bench -p canh --bench soak [-- RECONNECTS]` (build the release binary first).

#[path = "../agent/tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;

const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// This long without a reconnect of the flapping camera is a wedge.
const WEDGED_AFTER: Duration = Duration::from_secs(60);

/// One line of `/proc/PID/status`, as a number (`VmRSS` in kB, `Threads`).
fn proc_status(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix(&format!("{key}:"))?.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

fn main() {
    let target: f64 = std::env::args().skip(1).find(|a| a != "--bench").and_then(|a| a.parse().ok()).unwrap_or(2000.0);
    let flap_port = free_port();
    let _flapping = RtspServer::start(flap_port, &sample("degirum_TrafficHD_short.mp4"));
    let healthy: Vec<(u16, RtspServer)> = ["ozlu_input_video.mp4", "opencv4nodejs_traffic.mp4", "intel_car-detection.mp4"]
        .iter()
        .map(|clip| {
            let port = free_port();
            (port, RtspServer::start(port, &sample(clip)))
        })
        .collect();
    let metrics_port = free_port();
    let dir = temp_dir("soak");
    let mut site = SiteFile::new("soak").with(&format!("[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"")).camera("flap", &format!("rtsp://127.0.0.1:{flap_port}/clip"), "no_frames_timeout_s = 2");
    for (i, (port, _)) in healthy.iter().enumerate() {
        site = site.camera(&format!("healthy{i}"), &format!("rtsp://127.0.0.1:{port}/clip"), "");
    }
    let config = site.write(&dir);
    let mut agent = Agent::start(&["run", "--config", config.to_str().unwrap()], dir.join("agent.log"));
    let pid = agent.child.id();
    let started = Instant::now();
    let (mut rows, mut wedges) = (Vec::new(), 0);
    let (mut last_reconnects, mut last_progress) = (0.0, Instant::now());
    loop {
        std::thread::sleep(SAMPLE_EVERY);
        let metrics = get(metrics_port, "/metrics").1;
        let reconnects = camera_metric(&metrics, "canh_camera_reconnects_total", "flap");
        if reconnects > last_reconnects {
            (last_reconnects, last_progress) = (reconnects, Instant::now());
        } else if last_progress.elapsed() >= WEDGED_AFTER {
            wedges += 1;
            last_progress = Instant::now();
        }
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
        let row = serde_json::json!({
            "t_s": started.elapsed().as_secs(),
            "reconnects": reconnects,
            "abandoned": camera_metric(&metrics, "canh_camera_abandoned_pipelines_total", "flap"),
            "rss_mb": proc_status(pid, "VmRSS") as f64 / 1024.0,
            "threads": proc_status(pid, "Threads"),
            "fds": fds,
            "healthy_frames": (0..healthy.len()).map(|i| camera_metric(&metrics, "canh_camera_frames_analysed_total", &format!("healthy{i}"))).sum::<f64>(),
        });
        println!("{row}");
        rows.push(row);
        if reconnects >= target {
            break;
        }
    }
    let asked = Instant::now();
    let status = agent.terminate();
    let stop_s = asked.elapsed().as_secs_f64();
    let rss: Vec<f64> = rows.iter().map(|r| r["rss_mb"].as_f64().unwrap()).collect();
    let summary = serde_json::json!({
        "reconnects": last_reconnects,
        "seconds": started.elapsed().as_secs(),
        "wedges": wedges,
        "abandoned": rows.last().map(|r| r["abandoned"].clone()),
        "rss_mb_min": rss.iter().copied().fold(f64::MAX, f64::min),
        "rss_mb_max": rss.iter().copied().fold(0.0, f64::max),
        "threads_first": rows.first().map(|r| r["threads"].clone()),
        "threads_last": rows.last().map(|r| r["threads"].clone()),
        "fds_first": rows.first().map(|r| r["fds"].clone()),
        "fds_last": rows.last().map(|r| r["fds"].clone()),
        "stop_s": stop_s,
        "exit": status.code(),
        "samples": rows,
    });
    let out = repo_root().join("target/bench-soak.json");
    std::fs::write(&out, serde_json::to_string_pretty(&summary).unwrap()).unwrap();
    let mut brief = summary.clone();
    brief.as_object_mut().unwrap().remove("samples");
    println!("{brief}\nwrote {}", out.display());
}
