//! One bad message never cuts the uplink: oversized, non-UTF-8 and random messages on the
//! agent's command and signal topics, published once with QoS 1 to its persistent session, are
//! acknowledged, refused and counted, and crossings keep reaching the IOC; the same kinds of
//! message on a site topic are recorded as invalid by `canh listen`, which stores what follows. A
//! command left retained on the broker is refused, not run at every connection. The consumer
//! forgets what is older than the days it is told to keep.

mod common;

use std::time::Duration;

use common::*;

const PREFIX: &str = "canh/v1/poison";
const SIGNAL: &str = "poison/junction/phase";

/// Bytes that are not UTF-8 (nor JSON), `n` of them, from a fixed seed.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x9E37_79B9;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8 | 0x80
        })
        .collect()
}

#[test]
fn poison_messages_are_refused_and_counted_and_the_uplink_stays_up() {
    let broker = Mosquitto::start();
    let rtsp_port = free_port();
    let _server = RtspServer::start(rtsp_port, &sample("opencv4nodejs_traffic.mp4"));
    let dir = temp_dir("poison");
    let site = SiteFile::new("poison")
        .with("stats_interval_s = 1")
        .mqtt(broker.port, "")
        .camera("arterial", &format!("rtsp://127.0.0.1:{rtsp_port}/clip"), "")
        .vertical_line("middle", 0.5)
        .with(&format!("[[cameras.rules]]\nid = \"stop\"\n[cameras.rules.red_light]\np1 = [0.5, 1.0]\np2 = [0.5, 0.0]\nsignal = {{ topic = \"{SIGNAL}\" }}"))
        .write(&dir);
    let listener = Listener::start(broker.port, PREFIX, &dir);
    // A command left retained on the broker reaches the agent at every subscription.
    publish_retained(broker.port, &format!("{PREFIX}/cmd/reload"), r#"{"request_id":"stale-1"}"#);
    let mut agent = Agent::start(&["run", "--config", site.to_str().unwrap()], dir.join("canh.log"));
    listener.wait_until(Duration::from_secs(60), "a crossing", |l| !l.events("crossing").is_empty());
    listener.wait_until(Duration::from_secs(15), "the reply to the retained command", |l| l.latest(&format!("{PREFIX}/reply/stale-1")).is_some());
    let reply = listener.latest(&format!("{PREFIX}/reply/stale-1")).unwrap();
    assert!(reply["ok"] == false && reply["error"].as_str().unwrap().contains("retained command is not run"), "{reply}");
    let stats = |l: &Listener| l.latest(&format!("{PREFIX}/stats")).unwrap_or_default();
    listener.wait_until(Duration::from_secs(10), "stats", |l| stats(l)["mqtt_connection_seq"].as_u64().is_some());
    let seq = stats(&listener)["mqtt_connection_seq"].clone();

    // Once each, QoS 1: oversized and non-UTF-8 on a command and on the signal topic, and
    // oversized commands that name their request.
    let big = noise(5 << 20);
    for topic in [format!("{PREFIX}/cmd/reload"), SIGNAL.to_string()] {
        publish_bytes(broker.port, &topic, &big, false);
        publish_bytes(broker.port, &topic, &[0xff, 0xfe, 0x00, 0x80], false);
    }
    let padded = |id: &str| format!(r#"{{"request_id":"{id}","pad":"{}"}}"#, "x".repeat(100 << 10));
    publish(broker.port, &format!("{PREFIX}/cmd/reload"), &padded("big-1"), false);
    // Named on the longest topic MQTT allows: a reply repeating that name whole would be over
    // the packet limit, and stored, would fail the connection at every send, restarts included.
    let long_name = "a".repeat(65_450);
    publish(broker.port, &format!("{PREFIX}/cmd/{long_name}"), &padded("big-2"), false);
    // An argument whose name is as long as a command may be.
    publish(broker.port, &format!("{PREFIX}/cmd/reload"), &format!(r#"{{"request_id":"big-3","{}":1}}"#, "b".repeat(60_000)), false);
    // And on a site topic the IOC's consumer reads, then a valid crossing.
    publish_bytes(broker.port, &format!("{PREFIX}/arterial/crossing"), &noise(3 << 20), false);
    publish_bytes(broker.port, &format!("{PREFIX}/arterial/crossing"), &[0xc3, 0x28], false);
    let crossing = r#"{"v":1,"id":"01a20000-0000-7000-8000-00000000c0de","time":"2026-12-01T00:00:00.000Z","camera":"arterial","line":"middle","direction":"in","class":"car","track_id":1,"confidence":0.9,"stream_time_s":1.0}"#;
    // Images whose topic cannot name a file: too long, or a folder up.
    let jpeg = [0xFF, 0xD8, 0xFF, 0xD9];
    publish_bytes(broker.port, &format!("{PREFIX}/arterial/evidence/{}", "a".repeat(300)), &jpeg, false);
    publish_bytes(broker.port, &format!("{PREFIX}/../evidence/up"), &jpeg, false);
    publish(broker.port, &format!("{PREFIX}/arterial/crossing"), crossing, false);

    // The oversized command with a request id is answered; the agent counts seven refusals (the
    // retained command's too).
    listener.wait_until(Duration::from_secs(15), "the reply to the oversized command", |l| l.latest(&format!("{PREFIX}/reply/big-1")).is_some());
    let reply = listener.latest(&format!("{PREFIX}/reply/big-1")).unwrap();
    assert!(reply["ok"] == false && reply["error"].as_str().unwrap().contains("over the 65536-byte limit"), "{reply}");
    // Both long ones answered, repeating the name and the argument cut short.
    for id in ["big-2", "big-3"] {
        let topic = format!("{PREFIX}/reply/{id}");
        listener.wait_until(Duration::from_secs(15), &format!("the reply to {id}"), |l| l.latest(&topic).is_some());
        let reply = listener.latest(&topic).unwrap();
        assert!(reply["ok"] == false && reply.to_string().len() < 1024, "{id}: {} bytes", reply.to_string().len());
    }
    assert!(listener.latest(&format!("{PREFIX}/reply/big-2")).unwrap()["command"].as_str().unwrap().starts_with("aaaa"));
    assert!(listener.latest(&format!("{PREFIX}/reply/big-3")).unwrap()["error"].as_str().unwrap().contains("unknown field"));
    listener.wait_until(Duration::from_secs(15), "seven refusals in stats", |l| stats(l)["messages_refused"].as_u64() >= Some(7));
    // Crossings keep coming, on the same connection: no reconnect loop.
    let before = listener.events("crossing").len();
    listener.wait_until(Duration::from_secs(30), "crossings after the poison", |l| l.events("crossing").len() >= before + 3);
    assert_eq!(stats(&listener)["mqtt_connection_seq"], seq, "the agent reconnected:\n{}", agent.log_text());
    assert!(!agent.log_text().contains("MQTT connection:"), "{}", agent.log_text());
    // The commands still work.
    publish(broker.port, &format!("{PREFIX}/cmd/reload"), r#"{"request_id":"reload-1"}"#, false);
    listener.wait_until(Duration::from_secs(15), "the reload's reply", |l| l.latest(&format!("{PREFIX}/reply/reload-1")).is_some());
    assert_eq!(listener.latest(&format!("{PREFIX}/reply/reload-1")).unwrap()["ok"], true);

    // The consumer recorded the bad messages and stored the valid crossing after them.
    listener.wait_until(Duration::from_secs(15), "the valid crossing", |l| l.events("crossing").iter().any(|c| c["id"] == "01a20000-0000-7000-8000-00000000c0de"));
    let invalid = listener.invalid();
    let on_crossing = invalid.iter().filter(|(topic, _)| topic.ends_with("/arterial/crossing")).count();
    assert_eq!(on_crossing, 2, "{invalid:#?}");
    let named_badly = invalid.iter().filter(|(topic, error)| topic.contains("/evidence/") && error.contains("letters, digits")).count();
    assert_eq!(named_badly, 2, "{invalid:#?}");
    assert!(invalid.iter().any(|(topic, error)| topic.ends_with("/cmd/reload") && error.contains("over the")), "{invalid:#?}");
    assert!(agent.terminate().success());
    listener.stop();
}

/// A message over the packet limit that an earlier version stored in the outbox (as it did a
/// refusal's reply repeating a 65,450-character command name) is dropped and counted as lost
/// when it comes to be sent, not sent at every connection: the message stored after it leaves
/// the outbox, on the first connection.
#[test]
fn a_stored_message_over_the_packet_limit_is_dropped_not_sent() {
    const PREFIX: &str = "canh/v1/stored";
    let broker = Mosquitto::start();
    let rtsp_port = free_port();
    let _server = RtspServer::start(rtsp_port, &sample("opencv4nodejs_traffic.mp4"));
    let dir = temp_dir("stored-oversized");
    let outbox = dir.join("outbox.sqlite");
    {
        let mut stored = canh::publish::Outbox::open(&outbox, 64 << 20).unwrap();
        stored.push_raw(&format!("{PREFIX}/reply/big"), &vec![b'x'; 70_000], false, false, 2).unwrap();
        let crossing = r#"{"v":1,"id":"01a20000-0000-7000-8000-0000000057ed","time":"2026-12-01T00:00:00.000Z","camera":"arterial","line":"middle","direction":"in","class":"car","track_id":1,"confidence":0.9,"stream_time_s":1.0}"#;
        stored.push_raw(&format!("{PREFIX}/arterial/crossing"), crossing.as_bytes(), true, false, 2).unwrap();
    }
    let site = SiteFile::new("stored")
        .with("stats_interval_s = 1")
        .mqtt(broker.port, &format!("outbox_path = \"{}\"", outbox.display()))
        .camera("arterial", &format!("rtsp://127.0.0.1:{rtsp_port}/clip"), "")
        .vertical_line("middle", 0.5)
        .write(&dir);
    let listener = Listener::start(broker.port, PREFIX, &dir);
    let mut agent = Agent::start(&["run", "--config", site.to_str().unwrap()], dir.join("canh.log"));
    // The crossing goes out as the agent connects, perhaps before the listener has subscribed:
    // its leaving the outbox (acknowledged by the broker) is what shows it was sent.
    let stats = |l: &Listener| l.latest(&format!("{PREFIX}/stats")).unwrap_or_default();
    listener.wait_until(Duration::from_secs(30), "the loss in stats, the outbox empty", |l| {
        let s = stats(l);
        s["outbox"]["lost"]["events"].as_u64() == Some(1) && s["outbox"]["messages"].as_u64() == Some(0)
    });
    assert_eq!(stats(&listener)["mqtt_connection_seq"], 1, "the agent reconnected:\n{}", agent.log_text());
    assert!(agent.log_text().contains("over the 65536-byte packet limit: dropped"), "{}", agent.log_text());
    assert!(agent.terminate().success());
    listener.stop();
}

/// The broker's session outlives the site file: a signal topic the site file no longer names is
/// unsubscribed at the next connection, so its messages no longer reach the agent to be refused.
#[test]
fn a_signal_topic_the_site_file_drops_is_unsubscribed() {
    const PREFIX: &str = "canh/v1/unsub";
    const STALE: &str = "unsub/junction/phase";
    let broker = Mosquitto::start();
    let rtsp_port = free_port();
    let _server = RtspServer::start(rtsp_port, &sample("opencv4nodejs_traffic.mp4"));
    let dir = temp_dir("unsubscribe");
    let site = |rules: &str| {
        SiteFile::new("unsub")
            .with("stats_interval_s = 1")
            .mqtt(broker.port, &format!("outbox_path = \"{}\"", dir.join("outbox.sqlite").display()))
            .camera("arterial", &format!("rtsp://127.0.0.1:{rtsp_port}/clip"), "")
            .vertical_line("middle", 0.5)
            .with(rules)
            .write(&dir)
    };
    let listener = Listener::start(broker.port, PREFIX, &dir);
    let stats = |l: &Listener| l.latest(&format!("{PREFIX}/stats")).unwrap_or_default();
    let red_light = format!("[[cameras.rules]]\nid = \"stop\"\n[cameras.rules.red_light]\np1 = [0.5, 1.0]\np2 = [0.5, 0.0]\nsignal = {{ topic = \"{STALE}\" }}");
    let config = site(&red_light);
    let mut agent = Agent::start(&["run", "--config", config.to_str().unwrap()], dir.join("first.log"));
    listener.wait_until(Duration::from_secs(30), "the first run's stats", |l| stats(l)["mqtt_connection_seq"] == 1);
    assert!(agent.terminate().success());
    let config = site("");
    let mut agent = Agent::start(&["run", "--config", config.to_str().unwrap()], dir.join("second.log"));
    listener.wait_until(Duration::from_secs(30), "the second run's stats", |l| stats(l)["mqtt_connection_seq"] == 2);
    publish(broker.port, STALE, "red", false);
    // A command after it: once it is answered, the phase, published first, would have arrived.
    publish(broker.port, &format!("{PREFIX}/cmd/reload"), r#"{"request_id":"after-1","nope":1}"#, false);
    listener.wait_until(Duration::from_secs(15), "the reply", |l| l.latest(&format!("{PREFIX}/reply/after-1")).is_some());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(stats(&listener)["messages_refused"], 1, "the command's unknown field alone:\n{}", agent.log_text());
    assert!(agent.log_text().contains("unsubscribing: no longer in the site file"), "{}", agent.log_text());
    assert!(agent.terminate().success());
    listener.stop();
}

/// `canh listen --keep-days 1` forgets, at its start and then hourly, what it received over a day
/// before (aged here in its database): events, invalid messages, images and their files; what
/// is newer stays.
#[test]
fn the_consumer_forgets_what_is_older_than_the_days_it_keeps() {
    const PREFIX: &str = "canh/v1/kept";
    let broker = Mosquitto::start();
    let dir = temp_dir("listen-keep");
    let crossing = |id: &str| format!(r#"{{"v":1,"id":"{id}","time":"2026-12-01T00:00:00.000Z","camera":"gate","line":"middle","direction":"in","class":"car","track_id":1,"confidence":0.9,"stream_time_s":1.0}}"#);
    let (old, new) = ("01a20000-0000-7000-8000-000000000001", "01a20000-0000-7000-8000-000000000002");
    let listener = Listener::start(broker.port, PREFIX, &dir);
    // Sent again until received: the consumer may not have subscribed yet.
    listener.wait_until(Duration::from_secs(15), "the three messages", |l| {
        publish(broker.port, &format!("{PREFIX}/gate/crossing"), &crossing(old), false);
        publish(broker.port, &format!("{PREFIX}/gate/crossing"), "not JSON", false);
        publish_bytes(broker.port, &format!("{PREFIX}/gate/evidence/e1"), &[0xFF, 0xD8, 0xFF, 0xD9], false);
        l.events("crossing").len() == 1 && !l.invalid().is_empty() && l.images().len() == 1
    });
    let image = listener.images()[0].1.clone();
    assert!(image.is_file(), "{}", image.display());
    // Copies sent meanwhile land now, not in the next session, once aged.
    std::thread::sleep(Duration::from_secs(1));
    listener.stop();
    let db = rusqlite::Connection::open(dir.join("listen.sqlite")).unwrap();
    for table in ["events", "invalid", "images"] {
        db.execute(&format!("UPDATE {table} SET received = '2000-01-01T00:00:00.000Z'"), []).unwrap();
    }
    drop(db);
    let listener = Listener::start_with(&format!("mqtt://127.0.0.1:{}", broker.port), PREFIX, &dir, &["--keep-days", "1"]);
    listener.wait_until(Duration::from_secs(15), "the new crossing alone", |l| {
        publish(broker.port, &format!("{PREFIX}/gate/crossing"), &crossing(new), false);
        l.events("crossing").iter().map(|c| c["id"].clone()).collect::<Vec<_>>() == [new]
    });
    assert_eq!((listener.invalid().len(), listener.images().len()), (0, 0));
    assert!(!image.exists(), "the aged image's file is gone: {}", image.display());
    listener.stop();
}
