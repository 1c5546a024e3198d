//! The IOC's commands, for real: a camera on a loopback RTSP server (it never ends: the agent
//! reconnects each time the clip does), mosquitto, and `canh listen` as the IOC. A snapshot comes
//! back as a JPEG, an event's evidence is sent again unchanged, bad commands get error replies,
//! a broken config is refused on reload while the agent keeps running, a good one is taken, and
//! `stats` arrive every `stats_interval_s`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const PREFIX: &str = "canh/v1/commands";

fn site_file(rtsp_port: u16, mqtt_port: u16, heading_deg: u32) -> String {
    SiteFile::new("commands")
        .with("stats_interval_s = 1")
        .mqtt(mqtt_port, "")
        .camera("arterial", &format!("rtsp://127.0.0.1:{rtsp_port}/clip"), "")
        .with(&format!(
            r#"
# The eastbound lanes declared westbound: every eastbound car is an alert with evidence.
[[cameras.rules]]
id = "east_lanes"
[cameras.rules.wrong_way]
zone = [[0.0, 0.45], [1.0, 0.45], [1.0, 1.0], [0.0, 1.0]]
heading_deg = {heading_deg}
"#
        ))
        .text()
        .to_string()
}

/// Sends a command and waits for its reply.
fn command(listener: &Listener, port: u16, name: &str, payload: &str, request_id: &str) -> Value {
    publish(port, &format!("{PREFIX}/cmd/{name}"), payload, false);
    let key = format!("{PREFIX}/reply/{request_id}");
    listener.wait_until(Duration::from_secs(15), &format!("reply to {request_id}"), |l| l.latest(&key).is_some());
    listener.latest(&key).unwrap()
}

#[test]
fn commands_are_answered_and_bad_ones_refused_without_stopping_the_agent() {
    let broker = Mosquitto::start();
    let rtsp_port = free_port();
    let _server = RtspServer::start(rtsp_port, &sample("opencv4nodejs_traffic.mp4"));
    let dir = temp_dir("commands");
    let config = dir.join("site.toml");
    std::fs::write(&config, site_file(rtsp_port, broker.port, 180)).unwrap();
    let listener = Listener::start(broker.port, PREFIX, &dir);
    let mut agent = Agent::start(&["run", "--config", config.to_str().unwrap()], dir.join("canh.log"));
    listener.wait_until(Duration::from_secs(60), "wrong-way alert", |l| !l.events("violation").is_empty());
    let alert = listener.events("violation").remove(0);

    // A snapshot of the camera, as a JPEG the reply describes.
    let reply = command(&listener, broker.port, "snapshot", r#"{"request_id":"snap-1","camera":"arterial"}"#, "snap-1");
    assert_eq!(reply["ok"], true, "{reply}");
    let snapshot_topic = format!("{PREFIX}/arterial/snapshot/snap-1");
    assert_eq!(reply["snapshot"]["topic"], snapshot_topic.as_str());
    let images = listener.images();
    let (_, file, sha256) = images.iter().find(|(t, _, _)| *t == snapshot_topic).expect("the snapshot image arrived");
    assert_eq!(reply["snapshot"]["sha256"], sha256.as_str());
    let jpeg = std::fs::read(file).unwrap();
    assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.len() <= 40 * 1024, "{} bytes", jpeg.len());

    // The alert's evidence, again, byte for byte.
    let event_id = alert["id"].as_str().unwrap();
    let payload = format!(r#"{{"request_id":"ev-1","event_id":"{event_id}"}}"#);
    let reply = command(&listener, broker.port, "evidence", &payload, "ev-1");
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["evidence"]["sha256"], alert["evidence"]["sha256"], "{reply}\n{alert}");
    assert_eq!(reply["evidence"]["topic"], alert["evidence"]["topic"]);

    // Bad commands: each answered with an error naming the fault.
    publish(broker.port, &format!("{PREFIX}/cmd/snapshot"), "{not json", false);
    listener.wait_until(Duration::from_secs(15), "reply without request id", |l| l.latest(&format!("{PREFIX}/reply")).is_some());
    let reply = listener.latest(&format!("{PREFIX}/reply")).unwrap();
    assert!(reply["ok"] == false && reply["error"].as_str().unwrap().contains("not JSON"), "{reply}");
    let cases = [
        ("reboot", r#"{"request_id":"bad-1"}"#, "bad-1", "unknown command 'reboot'"),
        ("snapshot", r#"{"request_id":"bad-2","camera":"nope"}"#, "bad-2", "no camera 'nope'"),
        ("snapshot", r#"{"request_id":"bad-3"}"#, "bad-3", "camera"),
        ("evidence", r#"{"request_id":"bad-4","event_id":"01a20000-0000-7000-8000-000000000000"}"#, "bad-4", "no evidence kept"),
    ];
    for (name, payload, id, expected) in cases {
        let reply = command(&listener, broker.port, name, payload, id);
        assert_eq!(reply["ok"], false, "{reply}");
        assert!(reply["error"].as_str().unwrap().contains(expected), "{id}: {reply}");
    }

    // A broken config is refused on reload, naming the key; the agent keeps running it as it was.
    std::fs::write(&config, site_file(rtsp_port, broker.port, 180).replace("heading_deg = 180", "heading_deg = \"west\"")).unwrap();
    let reply = command(&listener, broker.port, "reload", r#"{"request_id":"reload-1"}"#, "reload-1");
    assert_eq!(reply["ok"], false, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("heading_deg"), "{reply}");
    let alerts = listener.events("violation").len();
    listener.wait_until(Duration::from_secs(60), "alerts after the refused reload", |l| l.events("violation").len() > alerts);

    // A good one is taken: the lanes declared as they are, so the alerts stop.
    std::fs::write(&config, site_file(rtsp_port, broker.port, 0)).unwrap();
    let reply = command(&listener, broker.port, "reload", r#"{"request_id":"reload-2"}"#, "reload-2");
    assert_eq!(reply["ok"], true, "{reply}");
    assert!(agent.log_text().contains("reloading the configuration"), "{}", agent.log_text());

    // Stats, every second.
    let stats_topic = format!("{PREFIX}/stats");
    listener.wait_until(Duration::from_secs(10), "stats", |l| l.latest(&stats_topic).is_some_and(|s| s["cameras"]["streaming"] == 1));
    let stats = listener.latest(&stats_topic).unwrap();
    assert_eq!(stats["mqtt_connected"], true, "{stats}");
    assert!(stats["frames_analysed"].as_u64().unwrap() > 0, "{stats}");
    // The camera the reload replaced did not end: stats sent two seconds after the reload show
    // the running camera alone (they counted every replaced camera as ended, for good).
    std::thread::sleep(Duration::from_secs(2));
    listener.wait_until(Duration::from_secs(10), "stats after the reload", |l| l.latest(&stats_topic).is_some_and(|s| s["cameras"]["streaming"] == 1));
    let stats = listener.latest(&stats_topic).unwrap();
    assert_eq!(stats["cameras"].as_object().unwrap().len(), 1, "{stats}");

    assert!(agent.child.try_wait().unwrap().is_none(), "the agent kept running:\n{}", agent.log_text());
    assert!(agent.terminate().success(), "{}", agent.log_text());
    let printed = listener.stop();
    assert!(!printed.contains("INVALID"), "every message follows the schema:\n{printed}");
}

/// A camera whose file ended is listed in `stats` as `ended` until a reload removes it.
#[test]
fn stats_forget_a_camera_a_reload_removes() {
    let broker = Mosquitto::start();
    let rtsp_port = free_port();
    let _server = RtspServer::start(rtsp_port, &sample("opencv4nodejs_traffic.mp4"));
    let dir = temp_dir("commands-forget");
    let config = dir.join("site.toml");
    let running = || SiteFile::new("commands").with("stats_interval_s = 1").mqtt(broker.port, "").camera("arterial", &format!("rtsp://127.0.0.1:{rtsp_port}/clip"), "");
    let short = sample("degirum_TrafficHD_short.mp4");
    std::fs::write(&config, running().camera("short", short.to_str().unwrap(), "").text()).unwrap();
    let listener = Listener::start(broker.port, PREFIX, &dir);
    let mut agent = Agent::start(&["run", "--config", config.to_str().unwrap()], dir.join("canh.log"));
    let stats_topic = format!("{PREFIX}/stats");
    let cameras = |l: &Listener| l.latest(&stats_topic).map(|s| s["cameras"].clone()).unwrap_or_default();
    listener.wait_until(Duration::from_secs(60), "the short clip ended", |l| cameras(l) == serde_json::json!({"ended": 1, "streaming": 1}));
    std::fs::write(&config, running().text()).unwrap();
    assert_eq!(command(&listener, broker.port, "reload", r#"{"request_id":"forget-1"}"#, "forget-1")["ok"], true);
    listener.wait_until(Duration::from_secs(15), "stats without the removed camera", |l| cameras(l) == serde_json::json!({"streaming": 1}));
    assert!(agent.terminate().success(), "{}", agent.log_text());
    listener.stop();
}

/// A fire alert's evidence is fetched again by the alert's own id, as for a violation: the id
/// of a fire message is its image's (`{camera}/evidence/{id}`), and every message of the
/// incident gives the same `first_evidence` and `confirmed` times.
#[test]
fn a_fire_alerts_evidence_is_fetched_again_by_its_id() {
    let Some(clip) = shared("fire_smoke", "spacewalk01_input_carfire.mp4") else { return };
    let broker = Mosquitto::start();
    let rtsp_port = free_port();
    let _server = RtspServer::start(rtsp_port, &clip);
    let dir = temp_dir("fire-evidence");
    let site = SiteFile::new("commands").mqtt(broker.port, "").camera("yard", &format!("rtsp://127.0.0.1:{rtsp_port}/clip"), "analytics_fps = 2\n[cameras.fire]\n");
    let config = site.write(&dir);
    let listener = Listener::start(broker.port, PREFIX, &dir);
    let mut agent = Agent::start(&["run", "--config", config.to_str().unwrap()], dir.join("canh.log"));
    let confirmed = |l: &Listener| l.events("fire").into_iter().find(|f| f["type"] == "confirmed" && f["evidence"].is_object());
    listener.wait_until(Duration::from_secs(90), "a confirmed fire with evidence", |l| confirmed(l).is_some());
    let alert = confirmed(&listener).unwrap();
    let event_id = alert["id"].as_str().unwrap();
    assert_eq!(alert["evidence"]["topic"], format!("{PREFIX}/yard/evidence/{event_id}").as_str(), "{alert}");
    let incident: Vec<Value> = listener.events("fire").into_iter().filter(|f| f["incident"] == alert["incident"]).collect();
    assert!(incident.iter().all(|f| f["first_evidence"] == alert["first_evidence"]), "one first_evidence per incident: {incident:?}");
    assert!(incident.iter().filter(|f| f.get("confirmed").is_some()).all(|f| f["confirmed"] == alert["confirmed"]), "one confirmed time: {incident:?}");
    assert!(alert["confirmed"].as_str() <= alert["time"].as_str(), "confirmed before it was told: {alert}");

    let payload = format!(r#"{{"request_id":"fire-1","event_id":"{event_id}"}}"#);
    let reply = command(&listener, broker.port, "evidence", &payload, "fire-1");
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["evidence"]["sha256"], alert["evidence"]["sha256"], "{reply}\n{alert}");
    assert!(agent.terminate().success(), "{}", agent.log_text());
    let printed = listener.stop();
    assert!(!printed.contains("INVALID"), "every message follows the schema:\n{printed}");
}
