//! `/metrics` (Prometheus text format, version 0.0.4) and `/healthz` over HTTP, for the site's
//! monitoring. Off unless `[metrics] listen` is set; bind it to loopback or a management network.
//!
//! The counters already live in lock-free atomics that the status messages read too, so they are
//! rendered here at scrape time rather than mirrored into a metrics library's registry.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{CameraHealth, DROP_CLASSES, Histogram, SiteHealth, SourceState};

/// The analysis loop turns at least every 250 ms; this long without a turn means it is stuck.
const ANALYSIS_STUCK_AFTER: Duration = Duration::from_secs(10);
/// How long a client has to send its request, and the answer's write may wait for it: a scraper
/// takes milliseconds. Clients are answered one at a time, so one that sends nothing, or a
/// header without end, holds the others back twice this and [`LINGER`] at most, where a server
/// with no limit kept a thread, a buffer and a file descriptor for each such client for good.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest request read (its line and headers); a scrape's is under 300 bytes.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// How often the server looks for a client, for `stop` and at the analysis loop's progress.
const POLL: Duration = Duration::from_millis(100);
/// How long the server waits after a failed accept (other than none waiting).
const ACCEPT_RETRY: Duration = Duration::from_secs(1);
/// After answering, what the client still sends (a request's body) is read and thrown away, for
/// this long and this much at most: closing with unread bytes resets the connection, and the
/// client may lose the answer with it.
const LINGER: Duration = Duration::from_millis(200);
const LINGER_BYTES: usize = 64 * 1024;

pub struct MetricsServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub address: SocketAddr,
}

impl MetricsServer {
    pub fn start(listen: &str, site: Arc<SiteHealth>) -> Result<MetricsServer, String> {
        let listener = TcpListener::bind(listen).map_err(|e| format!("metrics.listen {listen}: {e}"))?;
        let address = listener.local_addr().map_err(|e| format!("metrics.listen {listen}: {e}"))?;
        // Polled, so that the server stops when asked without a client to wake it.
        listener.set_nonblocking(true).map_err(|e| format!("metrics.listen {listen}: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new().name("metrics".into()).spawn(move || serve(&listener, &site, &stop)).map_err(|e| format!("cannot start the metrics thread: {e}"))?
        };
        tracing::info!(%address, "serving /metrics and /healthz");
        Ok(MetricsServer { stop, thread: Some(thread), address })
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: &TcpListener, site: &SiteHealth, stop: &AtomicBool) {
    let mut watch = Progress::default();
    while !stop.load(Ordering::Relaxed) {
        watch.look(site);
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = answer(stream, site, &watch) {
                    tracing::debug!("metrics: cannot answer: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            // Out of file descriptors, say: the server goes on once the agent has some again,
            // looking again (and warning) once a second meanwhile.
            Err(e) => {
                tracing::warn!("metrics: {e}");
                std::thread::sleep(ACCEPT_RETRY);
            }
        }
    }
}

/// Reads one request from `stream` and answers it, closing the connection.
fn answer(mut stream: TcpStream, site: &SiteHealth, watch: &Progress) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let request = read_request(&mut stream)?;
    let (status, content_type, body) = match &request {
        None => (400, "text/plain", "a request line and headers within 8 KiB and 2 s\n".to_string()),
        Some((method, _)) if method != "GET" && method != "HEAD" => (405, "text/plain", format!("{method}: only GET and HEAD\n")),
        Some((_, path)) => match path.split('?').next().unwrap_or_default() {
            "/metrics" => (200, "text/plain; version=0.0.4", render(site)),
            "/healthz" => match problems(site, watch) {
                problems if problems.is_empty() => (200, "text/plain", "ok\n".to_string()),
                problems => (503, "text/plain", problems.join("\n") + "\n"),
            },
            _ => (404, "text/plain", "not found: try /metrics or /healthz\n".to_string()),
        },
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let allow = if status == 405 { "Allow: GET, HEAD\r\n" } else { "" };
    // HEAD: the headers GET would have, no body.
    let sent = if request.as_ref().is_some_and(|(method, _)| method == "HEAD") { "" } else { body.as_str() };
    // One write: each piece of a formatted write would go out as a segment of its own.
    let response = format!("HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n{sent}", body.len());
    stream.write_all(response.as_bytes())?;
    linger(&mut stream)
}

/// Ends the answer and reads what the client still sends ([`LINGER`], [`LINGER_BYTES`] at most)
/// before the connection is closed.
fn linger(stream: &mut TcpStream) -> io::Result<()> {
    stream.shutdown(std::net::Shutdown::Write)?;
    let deadline = Instant::now() + LINGER;
    let mut chunk = [0u8; 4096];
    let mut read = 0;
    while read <= LINGER_BYTES {
        match read_before(stream, deadline, &mut chunk)? {
            Some(n) => read += n,
            None => break,
        }
    }
    Ok(())
}

/// One read from `stream` into `chunk` before `deadline`: how many bytes, or `None` once the
/// client has closed its side or the time is up.
fn read_before(stream: &mut TcpStream, deadline: Instant, chunk: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        // The time left, not a fresh timeout a read: a byte every second would hold on.
        stream.set_read_timeout(Some(left))?;
        match stream.read(chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => return Ok(Some(n)),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The method and path of the request on `stream` (`GET /metrics HTTP/1.1` and its headers), or
/// `None` when the client sends no whole request head within [`MAX_REQUEST_BYTES`] and
/// [`CLIENT_TIMEOUT`]. Lines may end in a bare LF, as HTTP allows a server to take them.
fn read_request(stream: &mut TcpStream) -> io::Result<Option<(String, String)>> {
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        if head.len() > MAX_REQUEST_BYTES {
            return Ok(None);
        }
        match read_before(stream, deadline, &mut chunk)? {
            Some(n) => head.extend_from_slice(&chunk[..n]),
            None => return Ok(None),
        }
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    Ok(words.next().zip(words.next()).map(|(method, path)| (method.to_string(), path.to_string())))
}

/// When the analysis loop last turned.
#[derive(Default)]
struct Progress {
    turns: u64,
    since: Option<Instant>,
}

impl Progress {
    fn look(&mut self, site: &SiteHealth) {
        let turns = CameraHealth::get(&site.analysis_turns);
        if turns != self.turns || self.since.is_none() {
            self.turns = turns;
            self.since = Some(Instant::now());
        }
    }

    fn stuck(&self) -> bool {
        self.since.is_some_and(|at| at.elapsed() > ANALYSIS_STUCK_AFTER)
    }
}

/// Why the agent is not healthy; empty when it is.
fn problems(site: &SiteHealth, progress: &Progress) -> Vec<String> {
    let mut problems = Vec::new();
    if progress.stuck() {
        problems.push(format!("analysis: no progress for {} s", ANALYSIS_STUCK_AFTER.as_secs()));
    }
    if let Some(why) = site.agent.disk_full() {
        problems.push(format!("disk full: {why}"));
    }
    for camera in site.cameras() {
        match camera.state() {
            SourceState::Streaming | SourceState::Ended | SourceState::Stopped => {}
            SourceState::Starting => problems.push(format!("camera {}: starting", camera.camera)),
            SourceState::Reconnecting { reason, .. } => problems.push(format!("camera {}: reconnecting: {reason}", camera.camera)),
            SourceState::Stalled { reason } => problems.push(format!("camera {}: stalled: {reason}", camera.camera)),
            SourceState::Error { reason } => problems.push(format!("camera {}: error: {reason}", camera.camera)),
        }
        problems.extend(camera.trouble());
    }
    problems
}

/// A label value, escaped as the text format wants.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Every metric, in the text exposition format.
pub fn render(site: &SiteHealth) -> String {
    let cameras = site.cameras();
    let mut out = String::new();
    type Read = fn(&CameraHealth) -> u64;
    let per_camera: [(&str, &str, &str, Read); 10] = [
        ("canh_camera_frames_in_total", "counter", "Frames the source delivered (after rate limiting).", |c| CameraHealth::get(&c.frames_in)),
        ("canh_camera_frames_analysed_total", "counter", "Frames the detector ran on.", |c| CameraHealth::get(&c.frames_analysed)),
        ("canh_camera_frames_skipped_total", "counter", "Frames the motion gate found still: no detection needed.", |c| CameraHealth::get(&c.frames_skipped)),
        ("canh_camera_frames_dropped_total", "counter", "Frames dropped because analysis fell behind.", |c| CameraHealth::get(&c.frames_dropped)),
        ("canh_camera_detect_errors_total", "counter", "Frames the detector failed on (the error is logged at most once a minute).", |c| CameraHealth::get(&c.detect_errors)),
        ("canh_camera_reconnects_total", "counter", "Pipeline rebuilds after errors, ends of stream or stalls.", |c| CameraHealth::get(&c.reconnects)),
        ("canh_camera_stalls_total", "counter", "Times the source delivered no frame for no_frames_timeout_s.", |c| CameraHealth::get(&c.stalls)),
        ("canh_camera_abandoned_pipelines_total", "counter", "Pipelines whose start or teardown hung and were left behind.", |c| CameraHealth::get(&c.abandoned_pipelines)),
        ("canh_camera_abandoned_pipelines_held", "gauge", "Pipelines left behind whose state change has not ended since: they hold threads and memory.", |c| CameraHealth::get(&c.abandoned_held)),
        ("canh_camera_detect_look", "gauge", "How the detector looks (detect_zoom): 0 as set, 1 finding out (two inferences a frame; every 10th frame after 300), 2 closer (about twice the inference).", |c| CameraHealth::get(&c.detect_look)),
    ];
    for (name, kind, help, read) in per_camera {
        header(&mut out, name, kind, help);
        for camera in &cameras {
            let _ = writeln!(out, "{name}{{camera=\"{}\"}} {}", label(&camera.camera), read(camera));
        }
    }
    header(&mut out, "canh_camera_events_total", "counter", "Events published, by kind.");
    for camera in &cameras {
        for (kind, counter) in [("crossing", &camera.crossings), ("violation", &camera.violations), ("fire", &camera.fire_messages)] {
            let _ = writeln!(out, "canh_camera_events_total{{camera=\"{}\",kind=\"{kind}\"}} {}", label(&camera.camera), CameraHealth::get(counter));
        }
    }
    header(&mut out, "canh_camera_up", "gauge", "1 while the camera is streaming.");
    header(&mut out, "canh_camera_quality", "gauge", "The connection quality grade (down, poor, fair, good) is 1.");
    for camera in &cameras {
        let up = u8::from(camera.state() == SourceState::Streaming);
        let _ = writeln!(out, "canh_camera_up{{camera=\"{}\"}} {up}", label(&camera.camera));
        let _ = writeln!(out, "canh_camera_quality{{camera=\"{}\",grade=\"{}\"}} 1", label(&camera.camera), camera.quality().name());
    }
    header(&mut out, "canh_camera_inference_ms", "histogram", "Detector time per frame, milliseconds.");
    for camera in &cameras {
        histogram(&mut out, "canh_camera_inference_ms", &format!("camera=\"{}\",", label(&camera.camera)), &camera.inference_ms);
    }
    let agent = &site.agent;
    header(&mut out, "canh_outbox_messages", "gauge", "Messages waiting for the broker's acknowledgement.");
    let _ = writeln!(out, "canh_outbox_messages {}", CameraHealth::get(&agent.outbox_messages));
    header(&mut out, "canh_outbox_bytes", "gauge", "Size of the messages waiting, bytes.");
    let _ = writeln!(out, "canh_outbox_bytes {}", CameraHealth::get(&agent.outbox_bytes));
    header(&mut out, "canh_outbox_dropped_total", "counter", "Messages dropped from a full outbox, by class.");
    for (class, counter) in DROP_CLASSES.iter().zip(&agent.outbox_dropped) {
        let _ = writeln!(out, "canh_outbox_dropped_total{{class=\"{class}\"}} {}", CameraHealth::get(counter));
    }
    header(&mut out, "canh_event_latency_ms", "histogram", "From the arrival of the frame an event was seen in to its publishing, milliseconds.");
    histogram(&mut out, "canh_event_latency_ms", "", &agent.event_latency_ms);
    header(&mut out, "canh_outbox_lost_total", "counter", "Messages lost because neither the disk nor memory could hold them, by class.");
    for (class, counter) in DROP_CLASSES.iter().zip(&agent.outbox_lost) {
        let _ = writeln!(out, "canh_outbox_lost_total{{class=\"{class}\"}} {}", CameraHealth::get(counter));
    }
    header(&mut out, "canh_evidence_lost_total", "counter", "Evidence images not kept for the evidence command: the disk refused them.");
    let _ = writeln!(out, "canh_evidence_lost_total {}", CameraHealth::get(&agent.evidence_lost));
    header(&mut out, "canh_disk_full", "gauge", "1 while a write of the agent's state (outbox, evidence archive) fails.");
    let _ = writeln!(out, "canh_disk_full {}", u8::from(agent.disk_full().is_some()));
    header(&mut out, "canh_messages_refused_total", "counter", "Messages from the broker refused: oversized, malformed, or on an unexpected topic.");
    let _ = writeln!(out, "canh_messages_refused_total {}", CameraHealth::get(&agent.messages_refused));
    header(&mut out, "canh_mqtt_connected", "gauge", "1 while connected to the broker.");
    let _ = writeln!(out, "canh_mqtt_connected {}", u8::from(agent.mqtt_connected.load(Ordering::Relaxed)));
    out
}

/// The samples of one histogram; `labels` is empty or ends with a comma.
fn histogram(out: &mut String, name: &str, labels: &str, histogram: &Histogram) {
    let (cumulative, sum) = histogram.read();
    for (bound, count) in histogram.bounds.iter().zip(&cumulative) {
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {count}");
    }
    let total = cumulative.last().copied().unwrap_or(0);
    let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {total}");
    let plain = labels.trim_end_matches(',');
    let braces = |l: &str| if l.is_empty() { String::new() } else { format!("{{{l}}}") };
    let _ = writeln!(out, "{name}_sum{} {sum}", braces(plain));
    let _ = writeln!(out, "{name}_count{} {total}", braces(plain));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GET path` on a fresh connection: the status code, and how long the answer took.
    fn get(address: SocketAddr, path: &str) -> (u16, Duration) {
        let started = Instant::now();
        let response = request(address, format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
        (response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), started.elapsed())
    }

    /// The whole answer to `bytes` sent on a fresh connection.
    fn request(address: SocketAddr, bytes: &[u8]) -> String {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.write_all(bytes).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    /// `HEAD` gets the headers alone; lines ended by a bare LF are a request, answered at once;
    /// any other method is refused, and a body sent with it does not cost the client the answer.
    #[test]
    fn head_bare_lf_and_other_methods() {
        let server = MetricsServer::start("127.0.0.1:0", Arc::new(SiteHealth::default())).unwrap();
        let head = request(server.address, b"HEAD /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let (headers, body) = head.split_once("\r\n\r\n").unwrap();
        assert!(headers.starts_with("HTTP/1.1 200 ") && body.is_empty(), "{head}");
        let length: usize = headers.lines().find_map(|l| l.strip_prefix("Content-Length: ")).unwrap().parse().unwrap();
        assert!(length > 0, "{head}");
        let started = Instant::now();
        let bare = request(server.address, b"GET /healthz HTTP/1.0\nHost: localhost\n\n");
        assert!(bare.starts_with("HTTP/1.1 200 ") || bare.starts_with("HTTP/1.1 503 "), "{bare}");
        assert!(started.elapsed() < CLIENT_TIMEOUT / 2, "{:?}", started.elapsed());
        let body = "x".repeat(20_000);
        let post = request(server.address, format!("POST /metrics HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
        assert!(post.starts_with("HTTP/1.1 405 ") && post.contains("Allow: GET, HEAD"), "{post}");
    }

    /// Clients that send nothing, or a header without end, hold the server back a client
    /// timeout each at most, are dropped, and the scrapes after them are answered.
    #[test]
    fn silent_and_endless_clients_do_not_keep_scrapes_out() {
        let server = MetricsServer::start("127.0.0.1:0", Arc::new(SiteHealth::default())).unwrap();
        assert_eq!(get(server.address, "/metrics").0, 200);
        assert_eq!(get(server.address, "/nope").0, 404);
        // First in line, so that its header is what the server reads first.
        let mut endless = TcpStream::connect(server.address).unwrap();
        endless.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        let silent: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(server.address).unwrap()).collect();
        let flood = std::thread::spawn(move || {
            let line = [b'x'; 1024];
            // Until the server closes the connection or stops reading (a write then fails): more
            // than the socket buffers hold only if the server reads on and on.
            (0..50_000).take_while(|_| endless.write_all(&line).is_ok()).count()
        });
        let (status, took) = get(server.address, "/healthz");
        assert!(status == 200 || status == 503, "{status}");
        assert!(took < 5 * CLIENT_TIMEOUT, "{took:?}");
        let sent_kib = flood.join().unwrap();
        assert!(sent_kib < 50_000, "the endless header was read on and on: {sent_kib} KiB");
        drop(silent);
        assert_eq!(get(server.address, "/metrics").0, 200);
    }

    #[test]
    fn renders_counters_histograms_and_escaped_labels() {
        let site = SiteHealth::default();
        let camera = CameraHealth::new("gate \"2\"", 5);
        CameraHealth::count(&camera.frames_analysed);
        CameraHealth::count(&camera.detect_errors);
        camera.inference_ms.observe(Duration::from_millis(25));
        camera.inference_ms.observe(Duration::from_millis(700));
        site.set_cameras(vec![camera]);
        let text = render(&site);
        assert!(text.contains("canh_camera_frames_analysed_total{camera=\"gate \\\"2\\\"\"} 1"), "{text}");
        assert!(text.contains("canh_camera_detect_look{camera=\"gate \\\"2\\\"\"} 0"), "{text}");
        assert!(text.contains("canh_camera_detect_errors_total{camera=\"gate \\\"2\\\"\"} 1"), "{text}");
        assert!(text.contains("canh_camera_inference_ms_bucket{camera=\"gate \\\"2\\\"\",le=\"20\"} 0"), "{text}");
        assert!(text.contains("canh_camera_inference_ms_bucket{camera=\"gate \\\"2\\\"\",le=\"30\"} 1"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 2"), "{text}");
        assert!(text.contains("canh_camera_inference_ms_sum{camera=\"gate \\\"2\\\"\"} 725"), "{text}");
        assert!(text.contains("# TYPE canh_camera_inference_ms histogram"), "{text}");
    }
}
