//! Delivery that loses nothing: the disk outbox across a broker outage, an agent killed with
//! SIGKILL, and an outbox that fills while the broker is away. A real mosquitto on loopback.
//!
//! The agent counts on the hand-counted line of the bundled 20 s arterial clip, played as a file
//! (in real time) or served over RTSP on loopback, where it never ends.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn site(dir: &std::path::Path, site: &str, port: u16, extra_mqtt: &str, source: &str) -> std::path::PathBuf {
    counting_site(dir, site, &format!("url = \"mqtt://127.0.0.1:{port}\"\nkeep_alive_s = 5\n{extra_mqtt}"), source)
}

fn clip() -> String {
    sample("opencv4nodejs_traffic.mp4").display().to_string()
}

fn count_total(counts: &Value) -> u64 {
    counts["lines"].as_array().unwrap().iter().flat_map(|l| ["in", "out"].map(|d| l[d].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>())).sum()
}

/// The outage's length: `CANH_OUTAGE_S` seconds (the closing-note measurement uses 120), else 6.
fn outage_length() -> Duration {
    Duration::from_secs(std::env::var("CANH_OUTAGE_S").ok().and_then(|s| s.parse().ok()).unwrap_or(6))
}

#[test]
fn a_broker_outage_loses_no_event_and_keeps_order() {
    let outage_length = outage_length();
    let mut broker = Mosquitto::start_persistent();
    // A camera that never ends: the agent reconnects each time the clip does.
    let rtsp_port = free_port();
    let _server = RtspServer::start(rtsp_port, &sample("opencv4nodejs_traffic.mp4"));
    let dir = temp_dir("outage");
    let config = site(&dir, "outage", broker.port, "", &format!("rtsp://127.0.0.1:{rtsp_port}/clip"));
    let prefix = "canh/v1/outage";
    let listener = Listener::start(broker.port, prefix, &dir);
    let mut agent = Agent::start(&["run", "--config", config.to_str().unwrap()], dir.join("canh.log"));
    listener.wait_until(Duration::from_secs(30), "first crossing", |l| !l.events("crossing").is_empty());
    // The broker goes away and comes back on the same port.
    broker.stop();
    let went_away = canh::events::rfc3339(std::time::SystemTime::now());
    std::thread::sleep(outage_length);
    broker.resume();
    let back = Instant::now();
    // Delivery is in order, so the backlog has drained when a crossing seen after the broker came
    // back has arrived (RFC 3339 times in one format compare as text).
    let resumed_at = canh::events::rfc3339(std::time::SystemTime::now());
    let live = |c: &Value| c["time"].as_str().unwrap() >= resumed_at.as_str();
    listener.wait_until(Duration::from_secs(120), "crossing seen after the outage", |l| l.events("crossing").iter().any(live));
    let drained = back.elapsed();
    // A little more live traffic, then a clean stop: the last counts close the books.
    std::thread::sleep(Duration::from_secs(3));
    assert!(agent.terminate().success(), "{}", agent.log_text());
    let status_topic = format!("{prefix}/status");
    listener.wait_until(Duration::from_secs(30), "stopped status", |l| l.latest(&status_topic).is_some_and(|s| s["status"] == "stopped"));
    std::thread::sleep(Duration::from_millis(500));

    let crossings = listener.events("crossing");
    let counted: u64 = listener.events("counts").iter().map(count_total).sum();
    let during = crossings.iter().filter(|c| c["time"].as_str().unwrap() >= went_away.as_str() && !live(c)).count();
    println!(
        "outage of {outage_length:?}: {counted} crossings counted by the agent, {} delivered after de-duplication, {} duplicates dropped; {during} crossings made during the outage; backlog drained {drained:?} after the broker came back",
        crossings.len(),
        listener.duplicates(),
    );
    assert!(during > 0, "the outage was long enough to hold crossings back");
    assert_eq!(crossings.len() as u64, counted, "every crossing the counts include was delivered, once");
    // Crossings held back by the outage still belong to the interval in which they were seen.
    assert_counts_are_the_crossings_inside(&listener.events("counts"), &crossings);
    // In order: first deliveries follow the order the agent saw them in.
    let times: Vec<&str> = crossings.iter().map(|c| c["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "out of order: {times:?}");
    assert!(agent.log_text().contains("MQTT connection"), "the outage was not noticed:\n{}", agent.log_text());
    let printed = listener.stop();
    assert!(!printed.contains("INVALID"), "every message follows the schema:\n{printed}");
}

#[test]
fn events_from_before_a_crash_are_delivered_after_the_restart() {
    // The broker is not there yet: everything waits in the outbox.
    let port = free_port();
    let dir = temp_dir("crash");
    let config = site(&dir, "crash", port, "", &clip());
    let mut agent = Agent::start(&["run", "--config", config.to_str().unwrap()], dir.join("canh-1.log"));
    let outbox = dir.join("outbox.sqlite");
    let deadline = Instant::now() + Duration::from_secs(40);
    let waiting = |outbox: &std::path::Path| -> Vec<String> {
        let Ok(db) = rusqlite::Connection::open(outbox) else { return Vec::new() };
        let Ok(mut query) = db.prepare("SELECT payload FROM outbox WHERE topic LIKE '%/crossing' ORDER BY id") else { return Vec::new() };
        let rows = query.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap();
        rows.map(|p| serde_json::from_slice::<Value>(&p.unwrap()).unwrap()["id"].as_str().unwrap().to_string()).collect()
    };
    while waiting(&outbox).len() < 5 {
        assert!(Instant::now() < deadline, "no crossings reached the outbox:\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(500));
    }
    agent.child.kill().unwrap();
    let _ = agent.child.wait();
    let before_crash = waiting(&outbox);
    println!("{} crossings in the outbox at the crash", before_crash.len());

    // The broker comes up and the agent starts again.
    let broker = Mosquitto::start_on_port(port);
    let messages = subscribe(broker.port, "canh/v1/crash/#");
    let mut agent = Agent::start(&["run", "--config", config.to_str().unwrap()], dir.join("canh-2.log"));
    let mut seen = Vec::new();
    let mut pending: BTreeSet<String> = before_crash.iter().cloned().collect();
    while !pending.is_empty() {
        let crossing = wait_for(&messages, Duration::from_secs(30), "the crossings from before the crash", &mut seen, |t, _| t.ends_with("/crossing"));
        if pending.remove(crossing["id"].as_str().unwrap()) {
            assert_eq!(crossing["replayed"], true, "{crossing}");
        }
    }
    let is_online = |t: &str, p: &Value| t.ends_with("crash/status") && p["status"] == "online";
    let online = match seen.iter().find(|(t, p)| is_online(t, p)) {
        Some((_, p)) => p.clone(),
        None => wait_for(&messages, Duration::from_secs(10), "online status", &mut seen, is_online),
    };
    assert!(online["seq"].as_u64().unwrap() > 1, "the connection sequence grows across restarts (the first run tried to connect): {online}");
    let status = agent.terminate();
    assert!(status.success(), "{}", agent.log_text());
    assert!(agent.log_text().contains("left in the outbox"), "{}", agent.log_text());
}

#[test]
fn a_full_outbox_drops_counts_before_alerts_and_says_so() {
    let port = free_port();
    let dir = temp_dir("full");
    // About 2 KB, with no broker to take anything: full within seconds.
    let config = site(&dir, "full", port, "outbox_max_mb = 0.002", &clip());
    let mut agent = Agent::start(&["run", "--config", config.to_str().unwrap()], dir.join("canh.log"));
    let deadline = Instant::now() + Duration::from_secs(40);
    while !agent.log_text().contains("the outbox is full") {
        assert!(Instant::now() < deadline, "the outbox never filled:\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(500));
    }
    let status = agent.terminate();
    assert!(status.success());
    let log = agent.log_text();
    let full = log.lines().rfind(|l| l.contains("the outbox is full")).unwrap().to_string();
    let number = |key: &str| -> u64 { full.split(&format!("{key}=")).nth(1).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap() };
    println!("{full}");
    assert!(number("counts") > 0 && number("events") == 0, "counts must go first: {full}");
    let db = rusqlite::Connection::open(dir.join("outbox.sqlite")).unwrap();
    let crossings: i64 = db.query_row("SELECT COUNT(*) FROM outbox WHERE topic LIKE '%/crossing'", [], |r| r.get(0)).unwrap();
    assert!(crossings > 0, "the crossings were kept");
}

#[test]
fn a_link_that_dies_silently_is_noticed_within_twice_the_keep_alive() {
    let broker = Mosquitto::start();
    let rtsp_port = free_port();
    let _server = RtspServer::start(rtsp_port, &sample("opencv4nodejs_traffic.mp4"));
    let dir = temp_dir("frozen");
    let config = site(&dir, "frozen", broker.port, "", &format!("rtsp://127.0.0.1:{rtsp_port}/clip"));
    let mut agent = Agent::start(&["run", "--config", config.to_str().unwrap()], dir.join("canh.log"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !agent.log_text().contains("MQTT connected") {
        assert!(Instant::now() < deadline, "never connected:\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The broker stops answering, but its sockets stay open: only the keep-alive can tell.
    broker.signal("STOP");
    let frozen = Instant::now();
    let keep_alive = Duration::from_secs(5);
    while !agent.log_text().contains("MQTT connection:") {
        assert!(frozen.elapsed() < 2 * keep_alive + Duration::from_secs(2), "a dead link went unnoticed for {:?}:\n{}", frozen.elapsed(), agent.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("dead link noticed after {:?} (keep-alive {keep_alive:?})", frozen.elapsed());
    broker.signal("CONT");
    assert!(agent.terminate().success(), "{}", agent.log_text());
}
