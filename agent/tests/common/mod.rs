//! Real peers for integration tests: a mosquitto broker and a gst-rtsp-server on loopback, an
//! MQTT subscriber, and the bundled samples; site files built for a test ([`SiteFile`]) and
//! `canh replay` runs read back ([`replay`]).

#![allow(dead_code)] // each test binary uses its own subset

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use gstreamer as gst;
use gstreamer::glib;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

/// The `canh` binary: the one cargo built for the tests, or (for benches, which include this
/// module too) the release build.
pub fn canh_binary() -> PathBuf {
    option_env!("CARGO_BIN_EXE_canh").map_or_else(|| repo_root().join("target/release/canh"), PathBuf::from)
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn sample(name: &str) -> PathBuf {
    repo_root().join("samples/clips").join(name)
}

/// A clip of `../shared/clips/{folder}` (the shared data beside the checkout, which may not
/// ship), or `None`, with a note, when it is absent: the test then passes without it.
pub fn shared(folder: &str, name: &str) -> Option<PathBuf> {
    let path = repo_root().join("../shared/clips").join(folder).join(name);
    if !path.is_file() {
        println!("skipped: {} is absent (these clips are read from the shared data)", path.display());
    }
    path.is_file().then_some(path)
}

/// A fresh folder under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("canh-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something listens on `port`.
fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start listening on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A site file built for a test: `site = …`, then top-level keys, tables and cameras as TOML
/// text, in the order given (top-level keys before any table).
pub struct SiteFile(String);

impl SiteFile {
    pub fn new(site: &str) -> SiteFile {
        SiteFile(format!("site = \"{site}\"\n"))
    }

    /// Adds TOML text: top-level keys, a table, or a camera's lines and rules.
    pub fn with(mut self, toml: &str) -> SiteFile {
        self.0.push_str(toml.trim_matches('\n'));
        self.0.push('\n');
        self
    }

    /// `[mqtt]` for the broker on `port` (keep-alive 5 s), with `extra` keys.
    pub fn mqtt(self, port: u16, extra: &str) -> SiteFile {
        self.with(&format!("[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\nkeep_alive_s = 5\n{extra}"))
    }

    /// A camera `id` reading `source`, with `keys` (TOML lines) of its own.
    pub fn camera(self, id: &str, source: &str, keys: &str) -> SiteFile {
        self.with(&format!("[[cameras]]\nid = \"{id}\"\nsource = \"{source}\"\n{keys}"))
    }

    /// A counting line of the last camera, vertical at `x`, `in` going right.
    pub fn vertical_line(self, id: &str, x: f32) -> SiteFile {
        self.with(&format!("[[cameras.lines]]\nid = \"{id}\"\np1 = [{x}, 1.0]\np2 = [{x}, 0.0]"))
    }

    pub fn text(&self) -> &str {
        &self.0
    }

    /// Writes it as `site.toml` into `dir`.
    pub fn write(&self, dir: &std::path::Path) -> PathBuf {
        let path = dir.join("site.toml");
        std::fs::write(&path, &self.0).unwrap();
        path
    }
}

/// Writes `site.toml` into `dir`: one camera `arterial` reading `source` and counting on the
/// hand-counted middle line of the arterial clip, counts every 2 s, and this `[mqtt]` section.
pub fn counting_site(dir: &std::path::Path, site: &str, mqtt: &str, source: &str) -> PathBuf {
    SiteFile::new(site).with("counts_interval_s = 2").with(&format!("[mqtt]\n{mqtt}")).camera("arterial", source, "").vertical_line("middle", 0.5).write(dir)
}

/// Each interval's counts are the crossings stamped inside it (times are RFC 3339 to the
/// millisecond in UTC, so they compare as strings), for the first line of one camera.
pub fn assert_counts_are_the_crossings_inside(intervals: &[serde_json::Value], crossings: &[serde_json::Value]) {
    assert!(intervals.len() >= 2 && !crossings.is_empty(), "{} counts messages, {} crossings", intervals.len(), crossings.len());
    for counts in intervals {
        let (start, end) = (counts["start"].as_str().unwrap(), counts["end"].as_str().unwrap());
        let counted: u64 = ["in", "out"].iter().flat_map(|d| counts["lines"][0][*d].as_object().unwrap().values()).map(|n| n.as_u64().unwrap()).sum();
        let stamped = crossings.iter().filter(|c| (start..end).contains(&c["time"].as_str().unwrap())).count() as u64;
        assert_eq!(counted, stamped, "interval {start} to {end}: {counts}");
    }
}

/// What `canh replay` printed: each message (`{"topic", "payload"}` or `{"topic",
/// "payload_base64"}`) as printed and parsed, and the summary line.
pub struct Replay {
    pub lines: Vec<String>,
    pub messages: Vec<serde_json::Value>,
    pub summary: serde_json::Value,
}

impl Replay {
    /// The JSON payloads of the messages whose topic ends with `/{kind}`, in order.
    pub fn payloads(&self, kind: &str) -> Vec<serde_json::Value> {
        let suffix = format!("/{kind}");
        self.messages.iter().filter(|m| m["topic"].as_str().is_some_and(|t| t.ends_with(&suffix))).map(|m| m["payload"].clone()).collect()
    }

    /// Every evidence image, decoded, by topic.
    pub fn evidence(&self) -> std::collections::BTreeMap<String, Vec<u8>> {
        use base64::prelude::*;
        self.messages
            .iter()
            .filter_map(|m| {
                let topic = m["topic"].as_str().filter(|t| t.contains("/evidence/"))?;
                Some((topic.to_string(), BASE64_STANDARD.decode(m["payload_base64"].as_str()?).unwrap()))
            })
            .collect()
    }
}

/// Runs a `gst-launch-1.0` description (elements and properties separated by spaces, paths
/// without spaces); it must succeed.
pub fn gst_launch(description: &str) {
    let made = Command::new("gst-launch-1.0").arg("-q").args(description.split_whitespace()).status().unwrap();
    assert!(made.success(), "gst-launch-1.0 {description}");
}

/// Runs `canh replay` with `args` in the repository's root (warnings only on stderr); it must
/// succeed.
pub fn replay(args: &[&str]) -> Replay {
    let out = Command::new(canh_binary()).arg("replay").args(args).current_dir(repo_root()).env("CANH_LOG", "warn").output().unwrap();
    assert!(out.status.success(), "canh replay {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    let mut lines: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect();
    let summary = serde_json::from_str(&lines.pop().expect("a summary line")).unwrap();
    let messages = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    Replay { lines, messages, summary }
}

/// A mosquitto broker on a free loopback port, stopped when dropped.
pub struct Mosquitto {
    child: Option<Child>,
    pub port: u16,
    conf: PathBuf,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Self::start_with("persistence false\n")
    }

    /// A broker that keeps clients' sessions (subscriptions, queued messages) across a restart.
    pub fn start_persistent() -> Mosquitto {
        let port = free_port();
        let dir = temp_dir(&format!("mosquitto-data-{port}"));
        Self::start_on(port, &format!("persistence true\npersistence_location {}/\n", dir.display()))
    }

    /// A broker whose listener has these extra settings (e.g. TLS files).
    pub fn start_with(extra: &str) -> Mosquitto {
        Self::start_on(free_port(), extra)
    }

    /// A broker on a port chosen before (where an agent is already trying to connect).
    pub fn start_on_port(port: u16) -> Mosquitto {
        Self::start_on(port, "persistence false\n")
    }

    fn start_on(port: u16, extra: &str) -> Mosquitto {
        let dir = temp_dir(&format!("mosquitto-{port}"));
        let conf = dir.join("mosquitto.conf");
        std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\n{extra}")).unwrap();
        let mut broker = Mosquitto { child: None, port, conf };
        broker.resume();
        broker
    }

    /// Starts it again on the same port, after [`Mosquitto::stop`].
    pub fn resume(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed (scripts/setup.sh)");
        self.child = Some(child);
        wait_for_port(self.port, "mosquitto");
    }

    /// Freezes it (SIGSTOP): connections stay open but nothing answers, as when a link dies
    /// without closing. `signal("CONT")` thaws it.
    pub fn signal(&self, name: &str) {
        signal(self.child.as_ref().expect("running"), name);
    }

    /// Stops it as a service manager would (SIGTERM: it saves its sessions) and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
            let _ = child.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Publishes one retained message, as a signal controller would, and waits for the broker's ack.
pub fn publish_retained(port: u16, topic: &str, payload: &str) {
    publish(port, topic, payload, true)
}

/// Publishes one message (as the IOC or a signal controller would) and waits for the broker's ack.
pub fn publish(port: u16, topic: &str, payload: &str, retain: bool) {
    publish_bytes(port, topic, payload.as_bytes(), retain);
}

/// [`publish`] for any bytes, up to 16 MiB.
pub fn publish_bytes(port: u16, topic: &str, payload: &[u8], retain: bool) {
    let mut options = rumqttc::MqttOptions::new(format!("test-pub-{port}"), "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_max_packet_size(16 << 20, 16 << 20);
    let (client, mut connection) = rumqttc::Client::new(options, 10);
    client.publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload.to_vec()).unwrap();
    for event in connection.iter() {
        match event {
            Ok(rumqttc::Event::Incoming(rumqttc::Incoming::PubAck(_))) => return,
            Ok(_) => {}
            Err(e) => panic!("publishing to {topic}: {e}"),
        }
    }
}

/// Collects every message under `topic_filter` as (topic, JSON payload). A payload that is not
/// JSON (an evidence image) comes as `{"bytes": N, "sha256": "…", "jpeg": true|false, "width": W,
/// "height": H}` (sizes `null` when it does not decode). The
/// session is persistent and re-subscribed on every connect, so with a persistent broker nothing
/// is missed across a broker restart.
pub fn subscribe(port: u16, topic_filter: &str) -> Receiver<(String, serde_json::Value)> {
    let mut options = rumqttc::MqttOptions::new(format!("test-sub-{port}"), "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_clean_session(false);
    // Room for evidence images.
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut connection) = rumqttc::Client::new(options, 100);
    let (tx, rx) = crossbeam_channel::unbounded();
    let topic_filter = topic_filter.to_string();
    std::thread::spawn(move || {
        for event in connection.iter() {
            match event {
                Ok(rumqttc::Event::Incoming(rumqttc::Incoming::ConnAck(_))) => {
                    let _ = client.try_subscribe(topic_filter.as_str(), rumqttc::QoS::AtLeastOnce);
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Incoming::Publish(p))) => {
                    let payload = serde_json::from_slice(&p.payload).unwrap_or_else(|_| {
                        use sha2::Digest;
                        let digest: String = sha2::Sha256::digest(&p.payload).iter().map(|b| format!("{b:02x}")).collect();
                        let size = canh::render::jpeg_size(&p.payload).ok();
                        serde_json::json!({"bytes": p.payload.len(), "sha256": digest, "jpeg": p.payload.starts_with(&[0xff, 0xd8]), "width": size.map(|s| s.width), "height": size.map(|s| s.height)})
                    });
                    if tx.send((p.topic.clone(), payload)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    });
    rx
}

/// Waits for the first message matching `pred`, returning it and everything received before.
pub fn wait_for(
    rx: &Receiver<(String, serde_json::Value)>,
    timeout: Duration,
    what: &str,
    seen: &mut Vec<(String, serde_json::Value)>,
    pred: impl Fn(&str, &serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((topic, payload)) => {
                seen.push((topic.clone(), payload.clone()));
                if pred(&topic, &payload) {
                    return payload;
                }
            }
            Err(_) => panic!("no {what} within {timeout:?}; received: {:#?}", seen.iter().map(|(t, _)| t).collect::<Vec<_>>()),
        }
    }
}

/// gst-rtsp-server on 127.0.0.1 serving an H.264 MP4 at `rtsp://127.0.0.1:{port}/clip`, in real
/// time, from its start for each client; to anyone, or ([`RtspServer::start_secure`]) only to the
/// user `viewer` with the password [`RTSP_SECURE_PASSWORD`].
pub struct RtspServer {
    main_loop: glib::MainLoop,
    server: rtsp::RTSPServer,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Every media served so far, to stall them; and whether the server stalls, so that a
    /// client reconnecting to a stalled server gets a stalled stream too.
    media: std::sync::Arc<std::sync::Mutex<(Vec<rtsp::RTSPMedia>, bool)>>,
}

/// Makes `media`'s video stop (or flow again); its connection stays open.
fn set_stalled(media: &rtsp::RTSPMedia, stalled: bool) {
    let bin = media.element().downcast::<gst::Bin>().expect("a media's element is a bin");
    bin.by_name("valve").expect("the launch line has a valve").set_property("drop", stalled);
}

pub const RTSP_SECURE_PASSWORD: &str = "rtsp-s3cret";

impl RtspServer {
    pub fn start(port: u16, clip: &std::path::Path) -> RtspServer {
        Self::serve(port, clip, false)
    }

    pub fn start_secure(port: u16, clip: &std::path::Path) -> RtspServer {
        Self::serve(port, clip, true)
    }

    fn serve(port: u16, clip: &std::path::Path, secure: bool) -> RtspServer {
        gst::init().unwrap();
        let server = rtsp::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service(&port.to_string());
        let media = std::sync::Arc::new(std::sync::Mutex::new((Vec::new(), false)));
        let factory = rtsp::RTSPMediaFactory::new();
        // The valve lets a test stall the stream while the connection stays open.
        factory.set_launch(&format!(
            "( filesrc location=\"{}\" ! qtdemux ! h264parse config-interval=-1 ! valve name=valve ! rtph264pay name=pay0 pt=96 )",
            clip.display()
        ));
        if secure {
            let auth = rtsp::RTSPAuth::new();
            let viewer = rtsp::RTSPToken::builder().field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer").build();
            auth.add_basic(&rtsp::RTSPAuth::make_basic("viewer", RTSP_SECURE_PASSWORD), &viewer);
            server.set_auth(Some(&auth));
            let permissions = gst::Structure::builder("viewer").field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true).field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true).build();
            factory.add_role_from_structure(&permissions);
        }
        let served = media.clone();
        factory.connect_media_configure(move |_, m| {
            let mut served = served.lock().unwrap();
            set_stalled(m, served.1);
            served.0.push(m.clone());
        });
        server.mount_points().unwrap().add_factory("/clip", factory);
        let context = glib::MainContext::new();
        let main_loop = glib::MainLoop::new(Some(&context), false);
        // The listening source lives in `context`, and goes with it when the thread ends.
        server.attach(Some(&context)).expect("the RTSP server binds its port");
        let thread = {
            let main_loop = main_loop.clone();
            std::thread::spawn(move || {
                let _guard = context.acquire().unwrap();
                main_loop.run();
            })
        };
        wait_for_port(port, "the RTSP server");
        RtspServer { main_loop, server, thread: Some(thread), media }
    }

    /// Stops sending video on every stream, those served so far and those served after (a
    /// client that reconnects finds the server still stalled); the connections stay open.
    pub fn stall(&self) {
        self.stall_later();
        self.media.lock().unwrap().0.iter().for_each(|m| set_stalled(m, true));
    }

    /// Stalls every stream served from now on (a client that reconnects finds the server
    /// silent); those playing go on.
    pub fn stall_later(&self) {
        self.media.lock().unwrap().1 = true;
    }

    /// Drops every client mid-stream and closes the port.
    pub fn stop(mut self) {
        self.server.client_filter(Some(&mut |_, client| {
            client.close();
            rtsp::RTSPFilterResult::Remove
        }));
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends signal `name` (`HUP`, `STOP`, …) to `child`.
pub fn signal(child: &Child, name: &str) {
    assert!(Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().unwrap().success());
}

/// `canh` with a log file, killed if the test fails before stopping it.
pub struct Agent {
    pub child: Child,
    pub log: PathBuf,
}

impl Agent {
    pub fn start(args: &[&str], log: PathBuf) -> Agent {
        Self::spawn(args, log, &[], Stdio::null())
    }

    /// `canh ARGS` with extra environment variables, its stderr in `log`.
    pub fn spawn(args: &[&str], log: PathBuf, env: &[(&str, &std::ffi::OsStr)], stdout: Stdio) -> Agent {
        let child = Command::new(canh_binary())
            .args(args)
            .env("CANH_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(stdout)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Agent { child, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "canh did not stop within 20 s of SIGTERM:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `canh listen`, the reference IOC consumer, on a site's prefix; results read from its database.
pub struct Listener {
    process: Agent,
    pub db: PathBuf,
    pub output: PathBuf,
}

impl Listener {
    pub fn start(port: u16, prefix: &str, dir: &std::path::Path) -> Listener {
        Self::start_with(&format!("mqtt://127.0.0.1:{port}"), prefix, dir, &[])
    }

    pub fn start_with(broker: &str, prefix: &str, dir: &std::path::Path, extra: &[&str]) -> Listener {
        let db = dir.join("listen.sqlite");
        let output = dir.join("listen.out");
        let mut args = vec!["listen", "--broker", broker, "--prefix", prefix, "--db", db.to_str().unwrap()];
        args.extend_from_slice(extra);
        let process = Agent::spawn(&args, dir.join("listen.log"), &[], std::fs::File::create(&output).unwrap().into());
        Listener { process, db, output }
    }

    fn query(&self, sql: &str) -> Vec<Vec<rusqlite::types::Value>> {
        let Ok(db) = rusqlite::Connection::open_with_flags(&self.db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else { return Vec::new() };
        let Ok(mut statement) = db.prepare(sql) else { return Vec::new() };
        let columns = statement.column_count();
        statement.query_map([], |r| (0..columns).map(|i| r.get(i)).collect()).map(|rows| rows.filter_map(Result::ok).collect()).unwrap_or_default()
    }

    fn text(value: &rusqlite::types::Value) -> String {
        match value {
            rusqlite::types::Value::Text(t) => t.clone(),
            other => panic!("not text: {other:?}"),
        }
    }

    fn integer(value: &rusqlite::types::Value) -> i64 {
        match value {
            rusqlite::types::Value::Integer(n) => *n,
            other => panic!("not an integer: {other:?}"),
        }
    }

    /// Events of `kind` (`crossing`, `counts`, `violation`, `fire`) in the order first received.
    pub fn events(&self, kind: &str) -> Vec<serde_json::Value> {
        self.query(&format!("SELECT payload FROM events WHERE kind = '{kind}' ORDER BY rowid"))
            .iter()
            .map(|row| serde_json::from_str(&Self::text(&row[0])).unwrap())
            .collect()
    }

    /// Copies received beyond the first, events and images together.
    pub fn duplicates(&self) -> i64 {
        let events = self.query("SELECT COALESCE(SUM(duplicates), 0) FROM events");
        let images = self.query("SELECT COALESCE(SUM(duplicates), 0) FROM images");
        [events, images].iter().map(|rows| rows.first().map_or(0, |r| Self::integer(&r[0]))).sum()
    }

    /// The latest message of a status-like topic (or `{topic}/{request_id}` for a reply).
    pub fn latest(&self, key: &str) -> Option<serde_json::Value> {
        self.query(&format!("SELECT payload FROM latest WHERE topic = '{key}'")).first().map(|row| serde_json::from_str(&Self::text(&row[0])).unwrap())
    }

    /// (topic, error) of every message the consumer found invalid.
    pub fn invalid(&self) -> Vec<(String, String)> {
        self.query("SELECT topic, error FROM invalid").iter().map(|r| (Self::text(&r[0]), Self::text(&r[1]))).collect()
    }

    /// (topic, file, sha256) of every image received.
    pub fn images(&self) -> Vec<(String, PathBuf, String)> {
        self.query("SELECT topic, path, sha256 FROM images ORDER BY rowid").iter().map(|r| (Self::text(&r[0]), PathBuf::from(Self::text(&r[1])), Self::text(&r[2]))).collect()
    }

    /// The lines it printed.
    pub fn printed(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// Polls until `done` holds.
    pub fn wait_until(&self, timeout: Duration, what: &str, done: impl Fn(&Listener) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            assert!(Instant::now() < deadline, "no {what} within {timeout:?}; the consumer printed:\n{}", self.printed());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn stop(mut self) -> String {
        let status = self.process.terminate();
        assert!(status.success(), "canh listen failed:\n{}", self.process.log_text());
        self.printed()
    }
}

/// `GET path` on a local HTTP port (the agent's metrics): (status code, body).
pub fn get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (code, body)
}

/// Every sample of metric `name` in a scrape, by its label set (`{camera="x"}`).
pub fn samples(metrics: &str, name: &str) -> std::collections::BTreeMap<String, f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| {
            let (labels, value) = l.rsplit_once(' ')?;
            Some((labels[name.len()..].to_string(), value.parse().ok()?))
        })
        .collect()
}

/// One camera's sample of a per-camera metric in a scrape; 0 before the camera appears.
pub fn camera_metric(metrics: &str, name: &str, camera: &str) -> f64 {
    samples(metrics, name).get(&format!("{{camera=\"{camera}\"}}")).copied().unwrap_or(0.0)
}

/// A metric without labels in a scrape; 0 when absent.
pub fn metric_value(metrics: &str, name: &str) -> f64 {
    metrics.lines().find_map(|l| l.strip_prefix(&format!("{name} "))?.parse().ok()).unwrap_or(0.0)
}

/// Frames a camera has analysed, scraped from the metrics on `port`.
pub fn frames_analysed(port: u16, camera: &str) -> f64 {
    camera_metric(&get(port, "/metrics").1, "canh_camera_frames_analysed_total", camera)
}
