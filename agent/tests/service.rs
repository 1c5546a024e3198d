//! The agent as a service, for real: systemd's notify protocol on a Unix datagram socket the test
//! creates (`NOTIFY_SOCKET`, `WATCHDOG_USEC`), `/metrics` and `/healthz` scraped over HTTP, live
//! reload on SIGHUP with two cameras on a loopback RTSP server, and a stream that stalls.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// A site with cameras `east` and `west` on the same RTSP stream, each with one line.
fn site(rtsp_port: u16, metrics_port: u16, east_line_x: f32) -> String {
    let source = format!("rtsp://127.0.0.1:{rtsp_port}/clip");
    SiteFile::new("service")
        .with(&format!("[metrics]\nlisten = \"127.0.0.1:{metrics_port}\""))
        .camera("east", &source, "no_frames_timeout_s = 60")
        .vertical_line("middle", east_line_x)
        .camera("west", &source, "no_frames_timeout_s = 60")
        .vertical_line("middle", 0.5)
        .text()
        .to_string()
}

fn analysed(metrics: &str, camera: &str) -> f64 {
    samples(metrics, "canh_camera_frames_analysed_total")[&format!("{{camera=\"{camera}\"}}")]
}

/// Notifications received on the socket, with when they came.
struct Notifications {
    socket: UnixDatagram,
    received: Vec<(Instant, String)>,
}

impl Notifications {
    fn bind(path: &Path) -> Notifications {
        let socket = UnixDatagram::bind(path).unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        Notifications { socket, received: Vec::new() }
    }

    /// Reads for `duration`; returns what came in that time.
    fn read_for(&mut self, duration: Duration) -> Vec<String> {
        let until = Instant::now() + duration;
        let mut new = Vec::new();
        let mut buffer = [0u8; 4096];
        while Instant::now() < until {
            if let Ok(n) = self.socket.recv(&mut buffer) {
                let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
                self.received.push((Instant::now(), message.clone()));
                new.push(message);
            }
        }
        new
    }

    /// Reads until a message contains `what`.
    fn wait_for(&mut self, what: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(found) = self.read_for(Duration::from_millis(200)).into_iter().find(|m| m.contains(what)) {
                return found;
            }
        }
        panic!("no {what} within {timeout:?}; received {:?}", self.received.iter().map(|(_, m)| m).collect::<Vec<_>>());
    }
}

fn pings(messages: &[String]) -> usize {
    messages.iter().filter(|m| m.lines().any(|l| l == "WATCHDOG=1")).count()
}

#[test]
fn notify_watchdog_metrics_and_live_reload() {
    let rtsp_port = free_port();
    let server = RtspServer::start(rtsp_port, &sample("opencv4nodejs_traffic.mp4"));
    let dir = temp_dir("service");
    let metrics_port = free_port();
    let config = dir.join("site.toml");
    std::fs::write(&config, site(rtsp_port, metrics_port, 0.5)).unwrap();
    let socket_path = dir.join("notify.sock");
    let mut notifications = Notifications::bind(&socket_path);
    // A 2 s watchdog: pings every second while the pipeline makes progress.
    let env = [("NOTIFY_SOCKET", socket_path.as_os_str()), ("WATCHDOG_USEC", "2000000".as_ref())];
    let mut agent = Agent::spawn(&["run", "--config", config.to_str().unwrap()], dir.join("canh.log"), &env, Stdio::null());

    // Ready once both cameras stream, with a status line saying so.
    let ready = notifications.wait_for("READY=1", Duration::from_secs(30));
    assert!(ready.contains("STATUS=cameras: 2 streaming"), "{ready}");
    assert!(pings(&notifications.read_for(Duration::from_secs(3))) >= 2, "pings while frames flow: {:?}", notifications.received);

    // Metrics: counters grow between scrapes, under the documented names; healthy.
    let first = get(metrics_port, "/metrics").1;
    std::thread::sleep(Duration::from_secs(2));
    let (code, second) = get(metrics_port, "/metrics");
    assert_eq!(code, 200);
    for camera in ["east", "west"] {
        assert!(analysed(&second, camera) > analysed(&first, camera), "{camera} frames grow:\n{second}");
    }
    for name in ["canh_camera_frames_in_total", "canh_camera_frames_dropped_total", "canh_camera_reconnects_total", "canh_camera_inference_ms_count", "canh_camera_quality", "canh_outbox_messages", "canh_mqtt_connected"] {
        assert!(second.contains(name), "{name} missing:\n{second}");
    }
    assert!(samples(&second, "canh_camera_inference_ms_count")["{camera=\"east\"}"] > 0.0);
    // Cameras with a line find out how to look: both ways at first, then the whole frame for
    // the arterial's large cars, never closer.
    let look = samples(&second, "canh_camera_detect_look")["{camera=\"east\"}"];
    assert!(look == 0.0 || look == 1.0, "east looks {look}:\n{second}");
    assert_eq!(get(metrics_port, "/healthz"), (200, "ok\n".to_string()));

    // Reload with one camera's line moved: only that camera restarts.
    let west_before = frames_analysed(metrics_port, "west");
    std::fs::write(&config, site(rtsp_port, metrics_port, 0.6)).unwrap();
    signal(&agent.child, "HUP");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !agent.log_text().contains("configuration reloaded") {
        assert!(Instant::now() < deadline, "no reload:\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    notifications.wait_for("READY=1", Duration::from_secs(30));
    let mut west = west_before;
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(500));
        let now = frames_analysed(metrics_port, "west");
        assert!(now >= west, "west's frame counter went back from {west} to {now}: it was restarted");
        west = now;
    }
    assert!(west > west_before, "west kept analysing");
    let log_text = agent.log_text();
    assert!(log_text.contains("stopping the camera (removed or changed) camera=east"), "{log_text}");
    assert!(!log_text.contains("stopping the camera (removed or changed) camera=west"), "{log_text}");
    assert!(log_text.contains("unchanged=1"), "{log_text}");

    // A broken config is refused and the running one kept.
    std::fs::write(&config, site(rtsp_port, metrics_port, 0.6).replace("no_frames_timeout_s = 60\n[[cameras.lines]]\nid = \"middle\"\np1 = [0.5", "no_frames_timeout_s = \"a minute\"\n[[cameras.lines]]\nid = \"middle\"\np1 = [0.5")).unwrap();
    signal(&agent.child, "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !agent.log_text().contains("the new configuration is refused") {
        assert!(Instant::now() < deadline, "the broken config was not refused:\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(agent.log_text().contains("no_frames_timeout_s"), "the error names the key:\n{}", agent.log_text());
    let before = frames_analysed(metrics_port, "west");
    std::thread::sleep(Duration::from_secs(1));
    assert!(frames_analysed(metrics_port, "west") > before, "still running after the refused reload");

    // The streams stall (connections open, no video): the pings stop.
    server.stall();
    notifications.read_for(Duration::from_secs(2));
    let during_stall = notifications.read_for(Duration::from_secs(4));
    assert_eq!(pings(&during_stall), 0, "pings while nothing is analysed: {during_stall:?}");

    assert!(agent.terminate().success(), "{}", agent.log_text());
    let last = notifications.read_for(Duration::from_millis(500));
    assert!(notifications.received.iter().any(|(_, m)| m.contains("STOPPING=1")), "{last:?}");
}

/// A model no camera runs after a reload is freed with the last camera that ran it, not kept
/// until the whole site restarts: a later reload that puts a camera on it again loads it afresh.
/// A camera a reload changes keeps its model loaded.
#[test]
fn a_model_no_camera_runs_after_a_reload_is_freed() {
    let rtsp_port = free_port();
    let _server = RtspServer::start(rtsp_port, &sample("opencv4nodejs_traffic.mp4"));
    let dir = temp_dir("service-models");
    let config = dir.join("site.toml");
    let site = |model: &str, timeout_s: u32| {
        let keys = format!("model = \"{model}\"\nno_frames_timeout_s = {timeout_s}");
        SiteFile::new("models").camera("arterial", &format!("rtsp://127.0.0.1:{rtsp_port}/clip"), &keys).text().to_string()
    };
    std::fs::write(&config, site("yolox_nano_int8", 10)).unwrap();
    let mut agent = Agent::start(&["run", "--config", config.to_str().unwrap()], dir.join("canh.log"));
    let loads = |agent: &Agent, model: &str| agent.log_text().matches(&format!("loading model model={model} ")).count();
    let reloads = |agent: &Agent| agent.log_text().matches("configuration reloaded").count();
    let wait = |agent: &Agent, what: &str, done: &dyn Fn(&Agent) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(agent) {
            assert!(Instant::now() < deadline, "{what}:\n{}", agent.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let reload = |agent: &Agent, text: String, count: usize| {
        std::fs::write(&config, text).unwrap();
        signal(&agent.child, "HUP");
        wait(agent, "the reload", &|a| reloads(a) == count);
    };
    wait(&agent, "the first model", &|a| loads(a, "yolox_nano_int8") == 1 && a.log_text().contains("source state camera=arterial state=Streaming"));
    reload(&agent, site("yolox_nano_int8", 30), 1);
    assert_eq!(loads(&agent, "yolox_nano_int8"), 1, "the changed camera kept its model:\n{}", agent.log_text());
    // The camera moves to another model: the first is no camera's once its old analysis ends
    // (within a frame or two of its source stopping; 3 s to spare).
    reload(&agent, site("yolox_nano", 30), 2);
    assert_eq!(loads(&agent, "yolox_nano"), 1);
    std::thread::sleep(Duration::from_secs(3));
    reload(&agent, site("yolox_nano_int8", 30), 3);
    assert_eq!(loads(&agent, "yolox_nano_int8"), 2, "loaded afresh, so it had been freed:\n{}", agent.log_text());
    assert!(agent.terminate().success(), "{}", agent.log_text());
}
