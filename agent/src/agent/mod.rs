//! Wires the stages together for a whole site: sources → detect → track → analytics → events →
//! publish. `canh run` and `canh replay` both go through [`run_site`]; they differ in [`Mode`].
//!
//! Threads: a supervisor per camera (GStreamer runs its own streaming threads below it), one
//! analysis thread that takes frames from every camera's queue and runs detection, tracking, line
//! counting and traffic rules in frame order per camera, and one publisher thread (which, over
//! MQTT, also hears signal controllers and the IOC's commands and hands them back to the analysis
//! thread, whose site-wide [`duties`] carry the commands out and publish `stats`).

mod duties;
mod site;

pub use site::run_site;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Select, Sender};
use serde::Serialize;

use crate::analytics::fire::{FireEvent, FireWatch, Stage};
use crate::analytics::signal::SignalLogEntry;
use crate::analytics::{CountsTable, Line, LineCounter, LineCounts, Overlay, Rules, Shape, Tone, Violation};
use crate::config::{CameraConfig, SiteConfig};
use crate::detect::Detector;
use crate::detect::motion::MotionGate;
use crate::events::{CameraStatus, CrossingEvent, EvidenceRef, FireMessage, Message, ViolationEvent, counts_message, evidence_message};
use crate::health::{CameraHealth, SiteHealth, SourceState};
use crate::render::{Mark, draw, enlarged, evidence_jpeg, frame_to_mat, write_image};
use crate::track::Tracker;
use crate::types::{CameraId, Frame, TrackedObject};
use duties::SiteDuties;

/// How the site runs.
#[derive(Debug, Clone)]
pub enum Mode {
    /// The daemon: live queues drop the oldest frame, files play in real time, counts are
    /// published every `counts_interval_s`, events go to the site's broker, which also brings
    /// the IOC's commands.
    Daemon(DaemonOptions),
    /// Offline replay of files: every selected frame is analysed, as fast as possible, and
    /// events are printed.
    Replay(ReplayOptions),
}

/// What the daemon needs to reload its configuration.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// The site file, read again on reload.
    pub config_path: PathBuf,
    /// Set (by SIGHUP) to reload the site file.
    pub reload: Arc<AtomicBool>,
}

/// What `canh replay` adds for engineers tuning a site.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Write every analysed frame, annotated, as a PNG into this folder.
    pub render_dir: Option<PathBuf>,
    /// Recorded signal-controller messages, played at their stream times.
    pub signal_log: Vec<SignalLogEntry>,
}

/// Frames waiting between a camera's source and the detector: 1.6 s at 5 fps. Cameras' frames
/// arrive in bursts (key frames, network hiccups, streams in step); with 4, eight 720p cameras on
/// 2 cores dropped 17 % of their frames at 185 % CPU, with 8 none at 171 % (streams bench).
const FRAME_QUEUE: usize = 8;
/// Rendered frames are scaled up to at least this width, for readable labels.
const RENDER_MIN_WIDTH: i32 = 800;
/// Signal-controller messages and commands waiting for the analysis thread (a few per minute).
const INBOX_QUEUE: usize = 1_000;

/// What a run leaves behind.
#[derive(Debug, Serialize)]
pub struct RunSummary {
    /// Frames analysed, all cameras together.
    pub frames: u64,
    pub seconds: f64,
    pub cameras: Vec<CameraSummary>,
    /// The validated new configuration, when the run ended to reload.
    #[serde(skip)]
    pub reload: Option<SiteConfig>,
}

#[derive(Debug, Serialize)]
pub struct CameraSummary {
    pub id: String,
    pub frames_analysed: u64,
    /// Frames the motion gate found still (no detection needed).
    pub frames_skipped: u64,
    pub frames_dropped: u64,
    pub reconnects: u64,
    /// Seconds from the first frame's arrival to the end: the analysis itself, without start-up.
    pub analysing_s: f64,
    /// Why the source could not run, if it could not.
    pub error: Option<String>,
    /// Totals over the whole run.
    pub lines: Vec<LineCounts>,
    /// Alerts raised over the whole run, by rule id.
    pub violations: BTreeMap<String, u64>,
    /// Every fire message, in order.
    pub fire_events: Vec<FireSummary>,
}

/// One fire message, as a replay summarises it.
#[derive(Debug, Clone, Serialize)]
pub struct FireSummary {
    pub kind: &'static str,
    pub level: Stage,
    pub zone: String,
    /// Position in the clip, seconds.
    pub t_s: f64,
    pub region: [f32; 4],
}

/// One camera's analysis state, owned by the analysis thread.
struct CameraAnalysis {
    id: CameraId,
    detector: Arc<Detector>,
    tracker: Tracker,
    min_score: f32,
    counter: LineCounter,
    /// Lines whose crossings are only counted, not published one by one.
    counted_only: BTreeSet<String>,
    rules: Rules,
    /// Counts of the current interval.
    interval: CountsTable,
    interval_start: SystemTime,
    totals: CountsTable,
    violations: BTreeMap<String, u64>,
    source_run: u32,
    health: Arc<CameraHealth>,
    /// Topic prefix, to give alerts the full topic of their evidence.
    prefix: String,
    /// Controller messages heard since the last frame; they take effect at the next one.
    pending_signals: Vec<(String, Vec<u8>)>,
    /// Recorded controller messages (replay), by stream time.
    scheduled_signals: VecDeque<SignalLogEntry>,
    render_dir: Option<PathBuf>,
    fire: Option<FireWatch>,
    fire_events: Vec<FireSummary>,
    motion: MotionGate,
    first_frame: Option<Instant>,
    /// The last status published: state, when, and the frame counters then.
    last_status: Option<(SourceState, Instant, u64, u64)>,
    /// Keep the latest analysed frame, for snapshots (daemon only).
    keep_last_frame: bool,
    last_frame: Option<LastFrame>,
}

/// The latest analysed frame and what was tracked in it.
struct LastFrame {
    frame: Frame,
    objects: Vec<TrackedObject>,
    at: Instant,
}

/// A camera's retained status is published when its state changes, and at least this often.
const STATUS_INTERVAL: Duration = Duration::from_secs(30);
/// The shortest span over which a frame rate grades a connection.
const QUALITY_MIN_SPAN: Duration = Duration::from_secs(10);

impl CameraAnalysis {
    fn new(config: &SiteConfig, camera: &CameraConfig, detector: Arc<Detector>, health: Arc<CameraHealth>, prefix: &str, fire: Option<FireWatch>) -> CameraAnalysis {
        let manifest = detector.manifest();
        let lines = camera
            .lines
            .iter()
            .map(|l| Line::new(&l.id, l.p1, l.p2, manifest.resolve_classes(l.classes.as_deref()), l.confirm_frames))
            .collect::<Vec<_>>();
        CameraAnalysis {
            id: camera.id.as_str().into(),
            tracker: Tracker::new(config.tracker.clone(), manifest.score_threshold, manifest.labels.len(), &manifest.merge_classes),
            min_score: config.tracker.low_score,
            interval: CountsTable::new(&lines),
            totals: CountsTable::new(&lines),
            counter: LineCounter::new(lines),
            counted_only: camera.lines.iter().filter(|l| !l.publish_crossings).map(|l| l.id.clone()).collect(),
            rules: Rules::new(&camera.rules, |names| manifest.resolve_classes(names)),
            violations: camera.rules.iter().map(|r| (r.id.clone(), 0)).collect(),
            interval_start: SystemTime::now(),
            detector,
            source_run: 0,
            health,
            prefix: prefix.to_string(),
            pending_signals: Vec::new(),
            scheduled_signals: VecDeque::new(),
            render_dir: None,
            fire,
            fire_events: Vec::new(),
            motion: MotionGate::new(camera.motion.clone()),
            first_frame: None,
            last_status: None,
            keep_last_frame: false,
            last_frame: None,
        }
    }

    /// Publishes the camera's status if its state changed or `STATUS_INTERVAL` has passed (or
    /// `force`, at the end).
    fn report_status(&mut self, now: Instant, force: bool, events: &Sender<Message>) {
        let state = self.health.state();
        let (frames_in, analysed) = (CameraHealth::get(&self.health.frames_in), CameraHealth::get(&self.health.frames_analysed));
        let due = match &self.last_status {
            None => true,
            Some((last, at, _, _)) => force || *last != state || now.duration_since(*at) >= STATUS_INTERVAL,
        };
        if !due {
            return;
        }
        let rate = |count: u64, before: u64, since: Option<Instant>| match since {
            Some(at) if now > at => count.saturating_sub(before) as f64 / now.duration_since(at).as_secs_f64(),
            _ => 0.0,
        };
        let (since, in_before, analysed_before) = match &self.last_status {
            Some((_, at, i, a)) => (Some(*at), *i, *a),
            None => (None, 0, 0),
        };
        let fps_in = rate(frames_in, in_before, since);
        // The rate says something about the link only over a while spent streaming throughout.
        let steady = matches!(&self.last_status, Some((last, at, _, _)) if *last == state && now.duration_since(*at) >= QUALITY_MIN_SPAN);
        let status = CameraStatus {
            camera: &self.id,
            state: &state,
            quality: self.health.grade(steady.then_some(fps_in)),
            time: SystemTime::now(),
            fps_in,
            fps_analysed: rate(analysed, analysed_before, since),
            frames_dropped: CameraHealth::get(&self.health.frames_dropped),
            reconnects: CameraHealth::get(&self.health.reconnects),
        };
        let _ = events.send(status.message());
        self.last_status = Some((state, now, frames_in, analysed));
    }

    fn signal(&mut self, topic: &str, payload: &[u8], at: Duration) {
        if let Err(e) = self.rules.signal_message(topic, payload, at) {
            tracing::warn!(camera = %self.id, "{e}");
        }
    }

    /// Detect → track → count → rules on one frame; events go to `events`.
    fn process(&mut self, frame: &Frame, events: &Sender<Message>) {
        self.first_frame.get_or_insert(frame.arrived);
        if frame.source_run != self.source_run {
            self.source_run = frame.source_run;
            self.tracker.reset();
            self.counter.reset();
            self.rules.reset();
            if let Some(Err(e)) = self.fire.as_mut().map(FireWatch::reset) {
                tracing::error!(camera = %self.id, "fire analytics: {e}");
            }
        }
        let stream_time = frame.pts;
        while self.scheduled_signals.front().is_some_and(|s| s.at() <= stream_time) {
            let entry = self.scheduled_signals.pop_front().expect("checked above");
            self.signal(&entry.topic, entry.state.as_bytes(), entry.at());
        }
        for (topic, payload) in std::mem::take(&mut self.pending_signals) {
            self.signal(&topic, &payload, stream_time);
        }
        // A still frame skips detection and tracking: the tracks wait, unchanged, for the next
        // frame that moves (or the recheck).
        let (detections, objects) = if self.motion.should_detect(frame) {
            let inference = Instant::now();
            let detected = self.detector.detect(frame, self.min_score);
            self.health.inference_ms.observe(inference.elapsed());
            let detections = match detected {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(camera = %self.id, seq = frame.seq, "{e}");
                    return;
                }
            };
            CameraHealth::count(&self.health.frames_analysed);
            let objects = self.tracker.update(&detections, stream_time);
            (detections, objects)
        } else {
            CameraHealth::count(&self.health.frames_skipped);
            (Vec::new(), Vec::new())
        };
        if self.keep_last_frame {
            self.last_frame = Some(LastFrame { frame: frame.clone(), objects: objects.clone(), at: Instant::now() });
        }
        if tracing::enabled!(tracing::Level::TRACE) {
            let fmt_box = |b: &crate::types::BBox| format!("[{:.3},{:.3},{:.3},{:.3}]", b.x1, b.y1, b.x2, b.y2);
            let labels = &self.detector.manifest().labels;
            let dets: Vec<String> = detections.iter().map(|d| format!("{}:{:.2}{}", labels[d.class], d.score, fmt_box(&d.bbox))).collect();
            let tracks: Vec<String> = objects.iter().map(|o| format!("#{}:{}{}", o.id, labels[o.class], fmt_box(&o.bbox))).collect();
            tracing::trace!(camera = %self.id, t = stream_time.as_secs_f32(), ?dets, ?tracks, "frame");
        }
        for crossing in self.counter.update(&objects, stream_time) {
            let class = &self.detector.manifest().labels[crossing.class];
            self.interval.add(&crossing.line, crossing.direction, class);
            self.totals.add(&crossing.line, crossing.direction, class);
            CameraHealth::count(&self.health.crossings);
            if self.counted_only.contains(&crossing.line) {
                continue;
            }
            let event = CrossingEvent {
                time: SystemTime::now(),
                stream_time,
                camera: &self.id,
                line: &crossing.line,
                direction: crossing.direction,
                class,
                track_id: crossing.track_id,
                confidence: crossing.confidence,
            };
            let _ = events.send(event.message().seen_at(frame.arrived));
        }
        if self.rules.is_empty() && self.fire.is_none() && self.render_dir.is_none() {
            return;
        }
        // Pixels are copied only for what needs them: signal heads, fire, evidence, rendering.
        let mut image = None;
        if self.rules.reads_signals_from_image() {
            let observed = self.image(frame, &mut image).and_then(|mat| self.rules.observe_frame(mat, stream_time).map_err(|e| e.to_string()));
            if let Err(e) = observed {
                tracing::warn!(camera = %self.id, seq = frame.seq, "cannot read the signal heads: {e}");
            }
        }
        let aspect = frame.width as f32 / frame.height.max(1) as f32;
        for violation in self.rules.update(&objects, stream_time, aspect) {
            self.publish_violation(&violation, frame, &mut image, stream_time, events);
        }
        if self.fire.is_some() {
            let boxes: Vec<_> = detections.iter().map(|d| d.bbox).collect();
            let analysed = self.image(frame, &mut image).and_then(|mat| {
                let fire = self.fire.as_mut().expect("checked above");
                fire.analyse(mat, &boxes, stream_time)
            });
            match analysed {
                Ok(fire_events) => {
                    for event in &fire_events {
                        self.publish_fire(event, frame, &mut image, stream_time, events);
                    }
                }
                Err(e) => tracing::error!(camera = %self.id, seq = frame.seq, "fire analytics: {e}"),
            }
        }
        if let Some(dir) = &self.render_dir {
            let path = dir.join(format!("{}_{:06}.png", self.id, frame.seq));
            let rendered = self.image(frame, &mut image).and_then(|mat| {
                let mut mat = enlarged(mat, RENDER_MIN_WIDTH).map_err(|e| e.to_string())?;
                let marks: Vec<Mark> = objects.iter().map(|o| self.mark(o)).collect();
                draw(&mut mat, &self.overlays(), &marks).map_err(|e| e.to_string())?;
                write_image(&path, &mat).map_err(|e| e.to_string())
            });
            if let Err(e) = rendered {
                tracing::error!(camera = %self.id, path = %path.display(), "cannot render the frame: {e}");
            }
        }
    }

    /// Everything drawn for engineers: the rules' geometry and the fire watch zones.
    fn overlays(&self) -> Vec<Overlay> {
        let mut overlays = self.rules.overlays();
        for (id, zone) in self.fire.iter().flat_map(FireWatch::zones) {
            overlays.push(Overlay { rule: id.to_string(), shape: Shape::Zone(zone.points.clone()), label: format!("fire watch {id}"), tone: Tone::Rule });
        }
        overlays
    }

    /// Publishes a JPEG of the frame with the region drawn (not for `cleared`), then the fire message.
    fn publish_fire(&mut self, event: &FireEvent, frame: &Frame, image: &mut Option<opencv::core::Mat>, stream_time: Duration, events: &Sender<Message>) {
        let t = &event.transition;
        let id = uuid::Uuid::now_v7().to_string();
        let evidence = if t.stage == Stage::Cleared {
            None
        } else {
            let overlays: Vec<_> = self.overlays().into_iter().filter(|o| o.rule == event.zone).collect();
            let s = t.evidence.scores;
            let mark = Mark { bbox: t.evidence.region, text: format!("{} flame {:.2} smoke {:.3}", event.kind, s.flame, s.smoke), violator: true };
            let caption = format!("{} {:?} zone {} t={:.1}s", event.kind, t.stage, event.zone, stream_time.as_secs_f32());
            self.evidence(&id, &overlays, &mark, &caption, frame, image, events)
        };
        tracing::info!(camera = %self.id, zone = %event.zone, kind = event.kind, stage = ?t.stage, "fire");
        let r = t.evidence.region;
        self.fire_events.push(FireSummary { kind: event.kind, level: t.stage, zone: event.zone.clone(), t_s: (stream_time.as_secs_f64() * 1000.0).round() / 1000.0, region: [r.x1, r.y1, r.x2, r.y2] });
        let message = FireMessage { time: SystemTime::now(), stream_time, camera: &self.id, event, evidence: evidence.as_ref() };
        let _ = events.send(message.message().seen_at(frame.arrived));
        CameraHealth::count(&self.health.fire_messages);
    }

    /// Makes and publishes an evidence image on `{camera}/evidence/{id}`; the reference to put in
    /// the alert, or `None` (logged) when the image cannot be made.
    #[allow(clippy::too_many_arguments)]
    fn evidence(&self, id: &str, overlays: &[Overlay], mark: &Mark, caption: &str, frame: &Frame, image: &mut Option<opencv::core::Mat>, events: &Sender<Message>) -> Option<EvidenceRef> {
        let made = self.image(frame, image).and_then(|mat| evidence_jpeg(mat, overlays, std::slice::from_ref(mark), caption).map_err(|e| e.to_string()));
        match made {
            Ok((jpeg, size)) => {
                let message = evidence_message(&self.id, id, jpeg);
                let reference = EvidenceRef::of(&self.prefix, &message, size.width as u32, size.height as u32);
                let _ = events.send(message);
                Some(reference)
            }
            Err(e) => {
                tracing::error!(camera = %self.id, event = %id, "no evidence image: {e}");
                None
            }
        }
    }

    /// The frame's pixels, copied on first use.
    fn image<'a>(&self, frame: &Frame, image: &'a mut Option<opencv::core::Mat>) -> Result<&'a opencv::core::Mat, String> {
        if image.is_none() {
            *image = Some(frame_to_mat(frame).map_err(|e| e.to_string())?);
        }
        Ok(image.as_ref().expect("set above"))
    }

    fn mark(&self, object: &crate::types::TrackedObject) -> Mark {
        let class = &self.detector.manifest().labels[object.class];
        let text = match self.rules.speed_kmh(object.id) {
            Some(kmh) => format!("#{} {class} {kmh:.0} km/h", object.id),
            None => format!("#{} {class}", object.id),
        };
        Mark { bbox: object.bbox, text, violator: self.rules.is_violator(object.id) }
    }

    /// Publishes an alert with its evidence image (first, so it is there when the alert is read),
    /// or the end of one. An alert whose image cannot be made still goes out, without it.
    fn publish_violation(&mut self, violation: &Violation, frame: &Frame, image: &mut Option<opencv::core::Mat>, stream_time: Duration, events: &Sender<Message>) {
        let class = &self.detector.manifest().labels[violation.object.class];
        let mut evidence = None;
        if violation.ends.is_none() {
            *self.violations.entry(violation.rule.clone()).or_default() += 1;
            let overlays: Vec<_> = self.rules.overlays().into_iter().filter(|o| o.rule == violation.rule).collect();
            let caption = format!("{} {} t={:.1}s {}", violation.kind.name(), violation.rule, stream_time.as_secs_f32(), violation.measured.summary());
            let mark = Mark { violator: true, ..self.mark(&violation.object) };
            evidence = self.evidence(&violation.id, &overlays, &mark, &caption, frame, image, events);
            tracing::info!(camera = %self.id, rule = %violation.rule, kind = violation.kind.name(), track = violation.object.id, measured = %violation.measured.summary(), "violation");
        }
        let event = ViolationEvent { time: SystemTime::now(), stream_time, camera: &self.id, violation, class, evidence: evidence.as_ref() };
        let _ = events.send(event.message().seen_at(frame.arrived));
        CameraHealth::count(&self.health.violations);
    }

    /// Publishes the current interval's counts if it has ended (or `force`), and starts the next.
    /// Intervals end on multiples of `interval` since the epoch, so boxes' counts line up.
    fn flush_counts(&mut self, interval: Duration, now: SystemTime, force: bool, events: &Sender<Message>) {
        let since_epoch = self.interval_start.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let boundary = SystemTime::UNIX_EPOCH + interval * (since_epoch.as_secs() / interval.as_secs().max(1) + 1) as u32;
        if now >= boundary || force {
            let end = if force { now } else { boundary };
            let lines = self.interval.take();
            let _ = events.send(counts_message(&self.id, self.interval_start, end, &lines));
            self.interval_start = end;
        }
    }

    fn summary(self) -> CameraSummary {
        CameraSummary {
            id: self.id.to_string(),
            frames_analysed: CameraHealth::get(&self.health.frames_analysed),
            frames_skipped: CameraHealth::get(&self.health.frames_skipped),
            analysing_s: self.first_frame.map_or(0.0, |at| at.elapsed().as_secs_f64()),
            frames_dropped: CameraHealth::get(&self.health.frames_dropped),
            reconnects: CameraHealth::get(&self.health.reconnects),
            error: match self.health.state() {
                SourceState::Error { reason } => Some(reason),
                _ => None,
            },
            lines: self.totals.snapshot().to_vec(),
            violations: self.violations,
            fire_events: self.fire_events,
        }
    }
}

/// What the site tells the analysis thread.
enum Change {
    /// A camera whose source has started: its frames and its analysis state. It replaces a
    /// camera of the same id (changed on reload), which is finished first.
    Add(Receiver<Frame>, Box<CameraAnalysis>),
}

/// The analysis thread: frames from whichever camera has one, up to `parallel_frames` cameras'
/// frames at once, until the site closes `changes` and every source has closed.
fn analyse(
    changes: Receiver<Change>,
    events: Sender<Message>,
    inbox: Receiver<(String, Vec<u8>)>,
    counts_interval: Option<Duration>,
    parallel_frames: usize,
    mut duties: SiteDuties,
    site: Arc<SiteHealth>,
) -> Vec<CameraSummary> {
    let mut receivers: Vec<Receiver<Frame>> = Vec::new();
    let mut states: Vec<CameraAnalysis> = Vec::new();
    let mut finished = Vec::new();
    // Finishes camera `i`: what it counted since the last interval, its last status.
    let finish = |i: usize, receivers: &mut Vec<Receiver<Frame>>, states: &mut Vec<CameraAnalysis>, finished: &mut Vec<CameraSummary>| {
        receivers.swap_remove(i);
        let mut camera = states.swap_remove(i);
        if let Some(interval) = counts_interval {
            camera.flush_counts(interval, SystemTime::now(), true, &events);
            camera.report_status(Instant::now(), true, &events);
        }
        finished.push(camera.summary());
    };
    let mut site_open = true;
    // The last message of each signal controller: a camera that starts later (or again, on a
    // reload) learns the current phase from it.
    let mut signal_phases: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    // A change that woke the loop while no camera was running.
    let mut woken_by: Option<Change> = None;
    while site_open || !receivers.is_empty() {
        CameraHealth::count(&site.analysis_turns);
        let mut incoming: Vec<Change> = woken_by.take().into_iter().collect();
        loop {
            match changes.try_recv() {
                Ok(change) => incoming.push(change),
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    site_open = false;
                    break;
                }
            }
        }
        for (topic, payload) in inbox.try_iter() {
            if duties.is_command(&topic) {
                duties.command(&topic, &payload, &states, &events);
                continue;
            }
            for camera in &mut states {
                camera.pending_signals.push((topic.clone(), payload.clone()));
            }
            signal_phases.insert(topic, payload);
        }
        for Change::Add(frames, mut analysis) in incoming {
            if let Some(i) = states.iter().position(|s| s.id == analysis.id) {
                finish(i, &mut receivers, &mut states, &mut finished);
            }
            analysis.pending_signals = signal_phases.iter().map(|(topic, payload)| (topic.clone(), payload.clone())).collect();
            receivers.push(frames);
            states.push(*analysis);
        }
        let received = {
            let mut select = Select::new();
            for rx in &receivers {
                select.recv(rx);
            }
            if receivers.is_empty() && site_open {
                // Nothing to analyse yet: wake up for the next camera.
                select.recv(&changes);
            }
            select.select_timeout(Duration::from_millis(250)).ok().and_then(|op| {
                let i = op.index();
                match receivers.get(i) {
                    Some(rx) => Some((i, op.recv(rx))),
                    None => {
                        woken_by = op.recv(&changes).ok();
                        None
                    }
                }
            })
        };
        match received {
            Some((i, Ok(frame))) => {
                let mut ready = vec![(i, frame)];
                ready.extend(more_ready(&receivers, i, parallel_frames.saturating_sub(1)));
                process_side_by_side(&mut states, ready, &events);
            }
            // The source is gone: publish what this camera counted since the last interval.
            Some((i, Err(_))) => finish(i, &mut receivers, &mut states, &mut finished),
            None => {}
        }
        if let Some(interval) = counts_interval {
            let (now, instant) = (SystemTime::now(), Instant::now());
            for camera in &mut states {
                camera.flush_counts(interval, now, false, &events);
                camera.report_status(instant, false, &events);
            }
        }
        duties.stats_if_due(Instant::now(), &states, finished.len() as u64, &events);
    }
    finished
}

/// Up to `wanted` frames waiting on other cameras than `first`, one per camera, taking the
/// cameras after `first` in turn so that none starves.
fn more_ready(receivers: &[Receiver<Frame>], first: usize, wanted: usize) -> Vec<(usize, Frame)> {
    let count = receivers.len();
    (1..count).map(|offset| (first + offset) % count).filter_map(|i| receivers[i].try_recv().ok().map(|frame| (i, frame))).take(wanted).collect()
}

/// Processes frames of distinct cameras, each on its own thread (the detector has a session
/// for each); one frame is processed right here.
fn process_side_by_side(states: &mut [CameraAnalysis], mut ready: Vec<(usize, Frame)>, events: &Sender<Message>) {
    if let [(i, frame)] = ready.as_slice() {
        states[*i].process(frame, events);
        return;
    }
    ready.sort_by_key(|(i, _)| *i);
    let mut frames = ready.into_iter().peekable();
    let mut work: Vec<(&mut CameraAnalysis, Frame)> = Vec::new();
    for (i, state) in states.iter_mut().enumerate() {
        if let Some((_, frame)) = frames.next_if(|(j, _)| *j == i) {
            work.push((state, frame));
        }
    }
    // Each slot is taken by whoever processes it: a lane thread, or this one when the first
    // slot's turn comes or a lane thread cannot be started (no frame is lost either way).
    let slots: Vec<Mutex<Option<(&mut CameraAnalysis, Frame)>>> = work.into_iter().map(|w| Mutex::new(Some(w))).collect();
    let process = |slot: &Mutex<Option<(&mut CameraAnalysis, Frame)>>| {
        if let Some((state, frame)) = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() {
            state.process(&frame, events);
        }
    };
    std::thread::scope(|scope| {
        for slot in &slots[1..] {
            if let Err(e) = std::thread::Builder::new().name("analysis-lane".into()).spawn_scoped(scope, move || process(slot)) {
                tracing::warn!("cannot start an analysis thread, analysing here: {e}");
            }
        }
        slots.iter().for_each(process);
    });
}
