//! End to end: an RTSP camera on 127.0.0.1 → `canh run` → a real mosquitto → a subscriber.
//! The camera goes away mid-stream and comes back; the agent must reconnect and go on counting.
//! A signal controller holds the junction at red, so eastbound cars are red-light violations,
//! each with its evidence image. The camera URL and the MQTT password hold secrets, which must
//! never appear in the log or in any message.

mod common;

use serde_json::Value;

use std::time::Duration;

use common::*;

#[test]
fn rtsp_camera_to_mqtt_with_reconnect_and_clean_shutdown() {
    let broker = Mosquitto::start();
    let messages = subscribe(broker.port, "canh/v1/itest/#");
    publish_retained(broker.port, "itest/junction/phase", r#"{"state": "red"}"#);
    let rtsp_port = free_port();
    let clip = sample("opencv4nodejs_traffic.mp4");
    // The camera asks for its password; the agent must send it (and never print it).
    let server = RtspServer::start_secure(rtsp_port, &clip);

    let dir = temp_dir("rtsp-mqtt");
    let config = dir.join("site.toml");
    // mosquitto here lets anyone in, so the MQTT password is sent and ignored; it is looked for
    // in the output afterwards, as is the camera's.
    std::fs::write(dir.join("mqtt-password"), "mqtt-s3cret\n").unwrap();
    std::fs::write(
        &config,
        format!(
            r#"
site = "itest"
counts_interval_s = 3

[mqtt]
url = "mqtt://127.0.0.1:{}"
username = "canh"
password_file = "mqtt-password"

[[cameras]]
id = "gate"
source = "rtsp://viewer:rtsp-s3cret@127.0.0.1:{rtsp_port}/clip"
analytics_fps = 5
no_frames_timeout_s = 3

[[cameras.lines]]
id = "middle"
p1 = [0.5, 1.0]
p2 = [0.5, 0.0]

[[cameras.rules]]
id = "stop_east"
red_light = {{ p1 = [0.5, 1.0], p2 = [0.5, 0.0], direction = "in", signal = {{ topic = "itest/junction/phase" }} }}
"#,
            broker.port
        ),
    )
    .unwrap();
    let mut agent = Agent::start(&["run", "--config", config.to_str().unwrap()], dir.join("canh.log"));
    let mut seen = Vec::new();
    let topic = |suffix: &str| format!("canh/v1/itest/{suffix}");

    let online = wait_for(&messages, Duration::from_secs(20), "online status", &mut seen, |t, p| t == topic("status") && p["status"] == "online");
    assert_eq!(online["v"], 1);

    let streaming = wait_for(&messages, Duration::from_secs(30), "the camera streaming", &mut seen, |t, p| t == topic("gate/status") && p["state"] == "streaming");
    assert_eq!(streaming["camera"], "gate");

    let crossing = wait_for(&messages, Duration::from_secs(30), "a crossing", &mut seen, |t, _| t == topic("gate/crossing"));
    assert_eq!(crossing["v"], 1);
    assert_eq!(crossing["camera"], "gate");
    assert_eq!(crossing["line"], "middle");
    assert!(crossing["direction"] == "in" || crossing["direction"] == "out");
    assert!(crossing["track_id"].as_u64().is_some() && crossing["id"].as_str().is_some_and(|id| id.len() == 36));
    assert!(crossing["time"].as_str().is_some_and(|t| t.ends_with('Z') && t.len() == 24), "{crossing}");

    let violation = wait_for(&messages, Duration::from_secs(30), "a red-light violation", &mut seen, |t, _| t == topic("gate/violation"));
    assert_eq!((violation["v"].as_u64(), violation["kind"].as_str(), violation["type"].as_str()), (Some(2), Some("red_light"), Some("alert")));
    assert_eq!(violation["measured"]["signal"], "red");
    let evidence = &violation["evidence"];
    // The image goes out first, so it is there by the time the alert is read.
    let (_, image) = seen.iter().find(|(t, _)| t == evidence["topic"].as_str().unwrap()).expect("the evidence image arrived before its alert");
    assert_eq!(image["jpeg"], true);
    assert_eq!(image["sha256"], evidence["sha256"]);
    assert_eq!(image["bytes"], evidence["bytes"]);
    assert!(image["bytes"].as_u64().unwrap() <= 40 * 1024);
    // Beside the analysed scene (416 px wide), the vehicle at the camera's resolution (640x360):
    // its crop is the alert's box in the camera's pixels, not the detector's.
    let vehicle = &evidence["vehicle"];
    assert_eq!(vehicle["scale"], 1.0, "{evidence}");
    let native_width = (violation["box"][2].as_f64().unwrap() - violation["box"][0].as_f64().unwrap()) * 640.0;
    assert!((vehicle["width"].as_f64().unwrap() - native_width).abs() <= 3.0, "{vehicle} against a box {native_width:.0} px wide at 640");
    assert_eq!((image["width"].as_i64(), image["height"].as_i64()), (evidence["width"].as_i64(), evidence["height"].as_i64()));
    assert!(image["width"].as_i64().unwrap() >= 416 + vehicle["width"].as_i64().unwrap(), "{image}");
    // The rule reads plates (the default); this overhead camera's are a few pixels high: a
    // `null` plate, saying why.
    assert!(violation.as_object().unwrap().get("plate").is_some_and(Value::is_null), "{violation}");
    assert!(["not_found", "too_small", "blurred", "unreadable", "unsure", "disagreeing"].contains(&violation["plate_unread"].as_str().unwrap_or_default()), "{violation}");

    let counts = wait_for(&messages, Duration::from_secs(10), "a counts message", &mut seen, |t, _| t == topic("gate/counts"));
    assert_eq!(counts["v"], 1);
    assert_eq!(counts["lines"][0]["id"], "middle");
    assert!(counts["start"].as_str().unwrap() < counts["end"].as_str().unwrap());

    // The camera vanishes mid-stream, then comes back on the same address.
    server.stop();
    let reconnecting = wait_for(&messages, Duration::from_secs(15), "the camera reconnecting", &mut seen, |t, p| t == topic("gate/status") && p["state"] == "reconnecting");
    assert!(reconnecting["reason"].as_str().is_some_and(|r| !r.is_empty()), "{reconnecting}");
    assert!(reconnecting["fps_in"].as_f64().is_some() && reconnecting["reconnects"].as_u64().is_some(), "{reconnecting}");
    let crossings_before = seen.iter().filter(|(t, _)| *t == topic("gate/crossing")).count();
    let _server = RtspServer::start_secure(rtsp_port, &clip);
    let mut everything = std::mem::take(&mut seen);
    wait_for(&messages, Duration::from_secs(45), "a crossing after the camera came back", &mut seen, |t, _| t == topic("gate/crossing"));
    let log = agent.log_text();
    assert!(log.contains("reconnecting"), "the agent did not log a reconnect:\n{log}");
    assert!(crossings_before >= 1);

    let status = agent.terminate();
    assert!(status.success(), "canh exited with {status}:\n{}", agent.log_text());
    wait_for(&messages, Duration::from_secs(10), "the camera's last status", &mut seen, |t, p| t == topic("gate/status") && p["state"] == "stopped");
    let stopped = wait_for(&messages, Duration::from_secs(10), "stopped status", &mut seen, |t, p| t == topic("status") && p["status"] == "stopped");
    assert_eq!(stopped["v"], 1);

    everything.extend(seen);
    let crossings: Vec<serde_json::Value> = everything.iter().filter(|(t, _)| *t == topic("gate/crossing")).map(|(_, p)| p.clone()).collect();
    let intervals: Vec<serde_json::Value> = everything.iter().filter(|(t, _)| *t == topic("gate/counts")).map(|(_, p)| p.clone()).collect();
    assert_counts_are_the_crossings_inside(&intervals, &crossings);
    let log = agent.log_text();
    assert!(log.contains("rtsp://viewer:***@127.0.0.1"), "the camera is logged, redacted:\n{log}");
    for secret in ["rtsp-s3cret", "mqtt-s3cret"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
        for (topic, payload) in &everything {
            assert!(!payload.to_string().contains(secret), "{secret} in {topic}: {payload}");
        }
    }
}

#[test]
fn the_broker_announces_offline_when_the_agent_dies() {
    let broker = Mosquitto::start();
    let messages = subscribe(broker.port, "canh/v1/lwt/status");
    let dir = temp_dir("lwt");
    let config = dir.join("site.toml");
    std::fs::write(
        &config,
        format!(
            "site = \"lwt\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nkeep_alive_s = 5\n[[cameras]]\nid = \"c\"\nsource = \"{}\"\n",
            broker.port,
            sample("intel_car-detection.mp4").display()
        ),
    )
    .unwrap();
    let mut agent = Agent::start(&["run", "--config", config.to_str().unwrap()], dir.join("canh.log"));
    let mut seen = Vec::new();
    let online = wait_for(&messages, Duration::from_secs(20), "online status", &mut seen, |_, p| p["status"] == "online");
    agent.child.kill().unwrap();
    let offline = wait_for(&messages, Duration::from_secs(20), "the offline Last Will", &mut seen, |_, p| p["status"] == "offline");
    assert_eq!(offline["v"], 1);
    assert!(online["seq"].as_u64().is_some_and(|s| s >= 1), "{online}");
    assert_eq!(offline["seq"], online["seq"], "the Last Will names the connection it belongs to");
}
