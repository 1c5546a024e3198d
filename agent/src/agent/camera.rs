//! One camera's analysis, owned by the analysis thread: the shared stages (motion gate, detector,
//! tracker, track history), then the camera's analyzers, whose findings its emitter turns into
//! messages. Also the camera's retained status, and its latest frame (for snapshots, and for what
//! the stream's end confirms).

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Sender;

use super::{CameraSummary, PlateSummary, RunOptions};
use crate::analytics::history::TrackHistory;
use crate::analytics::signal::SignalLogEntry;
use crate::analytics::{Analyzer, CameraAnalyzers, FrameContext};
use crate::config::{CameraConfig, SiteConfig};
use crate::detect::motion::MotionGate;
use crate::detect::region::DetectRegion;
use crate::detect::zoom::ZoomProbe;
use crate::detect::{DetectError, Detector};
use crate::events::emitter::Emitter;
use crate::events::{CameraStatus, Message};
use crate::health::{CameraHealth, LOOK_AS_SET, LOOK_CLOSER, LOOK_FINDING_OUT, SourceState};
use crate::health::repeated::Repeated;
use crate::plates::PlateReader;
use crate::plates::watch::PlateWatch;
use crate::render::{Mark, Overlay, Shape, Tone, draw, enlarged, write_image};
use crate::track::{Riders, Tracker};
use crate::types::{BBox, CameraId, Detection, Frame, TrackedObject, WHOLE_FRAME};

/// Rendered frames are scaled up to at least this width, for readable labels.
const RENDER_MIN_WIDTH: i32 = 800;
/// A camera's retained status is published when its state changes, and at least this often.
const STATUS_INTERVAL: Duration = Duration::from_secs(30);
/// The shortest span over which a frame rate grades a connection.
const QUALITY_MIN_SPAN: Duration = Duration::from_secs(10);

pub(super) struct CameraAnalysis {
    pub id: CameraId,
    pub health: Arc<CameraHealth>,
    gate: MotionGate,
    detector: Arc<Detector>,
    /// Where the detector looks, cut at the stream's resolution (`None`: the analysed frame).
    region: Option<BBox>,
    look: Look,
    tracker: Tracker,
    min_score: f32,
    history: TrackHistory,
    pub analyzers: CameraAnalyzers,
    emitter: Emitter,
    /// The vehicles' best frames for their plates, on cameras that read them.
    plates: Option<PlateWatch>,
    /// Plates read of every vehicle that left (`canh replay --plates`).
    plates_read: Vec<PlateSummary>,
    /// Which run of the source the last frame came from: a new one restarts stream time.
    source_run: u32,
    /// Whether the current run's end was taken ([`CameraAnalysis::end`]); the next run's first
    /// frame clears it.
    run_ended: bool,
    signals: Signals,
    render_dir: Option<PathBuf>,
    pub last_frame: Option<LastFrame>,
    first_frame: Option<Instant>,
    status: StatusReport,
    /// Frames the detector failed on.
    detect_errors: Repeated,
}

/// How the detector looks (`detect_zoom`); the camera's health shows it.
enum Look {
    /// As set: the whole frame, or the camera's region with the pixels of the analysed frame.
    AsSet,
    /// Both as set and closer, until the probe decides.
    FindingOut(ZoomProbe),
    /// At the probe's region with the pixels of a larger frame ([`ZoomProbe::budget_px`]).
    Closer,
}

/// Signal-controller messages waiting for the camera's next frame.
#[derive(Default)]
struct Signals {
    /// Heard since the last frame, the latest per topic; they take effect at the next one, all
    /// at its time, so an earlier message of a topic would be overridden at once. Only the
    /// latest is kept: a camera whose stream is down for weeks sees no frame, and a controller
    /// publishing every second would otherwise pile up 86,400 messages a day in it.
    pending: BTreeMap<String, Vec<u8>>,
    /// Recorded (replay), by stream time.
    scheduled: VecDeque<SignalLogEntry>,
}

/// A frame's detections and tracks, and whether the detector ran on it (the motion gate did
/// not skip it as still).
struct Tracked {
    detections: Vec<Detection>,
    objects: Vec<TrackedObject>,
    detected: bool,
}

/// The latest analysed frame and what was tracked in it: for snapshots, and for what the stream's
/// end confirms ([`CameraAnalysis::end`]).
pub(super) struct LastFrame {
    pub frame: Frame,
    pub objects: Vec<TrackedObject>,
    pub at: Instant,
}

/// What a camera's analysis is made of, besides its config.
pub(super) struct CameraParts {
    pub detector: Arc<Detector>,
    pub analyzers: Vec<Box<dyn Analyzer>>,
    /// The site's plate reader, for a camera that reads plates.
    pub plates: Option<Arc<PlateReader>>,
    pub health: Arc<CameraHealth>,
    pub events: Sender<Message>,
    pub prefix: String,
}

impl CameraAnalysis {
    pub fn new(config: &SiteConfig, camera: &CameraConfig, parts: CameraParts, options: &RunOptions) -> CameraAnalysis {
        let id: CameraId = camera.id.as_str().into();
        let manifest = parts.detector.manifest();
        let analyzers = CameraAnalyzers::new(id.clone(), parts.analyzers, manifest.labels.clone());
        let (lines, rules) = (camera.lines.iter().map(|l| l.id.as_str()), camera.rules.iter().map(|r| r.id.as_str()));
        let mut emitter = Emitter::new(id.clone(), &parts.prefix, lines, rules, options.counts_interval, parts.events, parts.health.clone());
        if options.list_fire_messages {
            emitter.list_fire_messages();
        }
        emitter.read_plates_on(camera.lines.iter().filter(|l| l.plates).map(|l| l.id.clone()).chain(camera.rules.iter().filter(|r| r.plates).map(|r| r.id.clone())));
        let watched = analyzers.watched();
        let region = camera.detect_region.unwrap_or_default().resolve(&watched);
        // A camera without lines or rules (fire watch, plates of every track) has no road to
        // look closer at, and a model of fixed input size is given any region at that size.
        let free_size = manifest.input.free_size().is_some();
        let probe = (camera.detect_zoom && camera.detect_region.is_none() && camera.detect_width_px.is_none() && !watched.is_empty() && free_size)
            .then(|| ZoomProbe::new(DetectRegion::Auto.resolve(&watched).unwrap_or(WHOLE_FRAME), manifest.vehicle_classes.clone()));
        let plates = parts.plates.map(|reader| PlateWatch::new(reader, manifest.plate_classes.clone(), options.read_all_plates));
        let riders = Riders { riders: manifest.rider_classes.clone(), ridden: manifest.ridden_classes.clone() };
        let tracker = Tracker::new(config.tracker.clone(), manifest.score_threshold, manifest.labels.len(), &manifest.merge_classes, &manifest.vehicle_classes, riders);
        let mut analysis = CameraAnalysis {
            region: None,
            look: Look::AsSet,
            tracker,
            min_score: config.tracker.low_score,
            history: analyzers.history(),
            gate: MotionGate::new(camera.motion.clone()),
            detector: parts.detector,
            health: parts.health,
            analyzers,
            emitter,
            plates,
            plates_read: Vec::new(),
            id,
            source_run: 0,
            run_ended: false,
            signals: Signals { pending: BTreeMap::new(), scheduled: options.signal_log.iter().cloned().collect() },
            render_dir: options.render_dir.clone(),
            last_frame: None,
            first_frame: None,
            status: StatusReport::default(),
            detect_errors: Repeated::default(),
        };
        if let Some(r) = region {
            analysis.look_within(r);
        }
        if let Some(probe) = probe {
            analysis.set_look(Look::FindingOut(probe));
        }
        analysis
    }

    fn set_look(&mut self, look: Look) {
        let shown = match look {
            Look::AsSet => LOOK_AS_SET,
            Look::FindingOut(_) => LOOK_FINDING_OUT,
            Look::Closer => LOOK_CLOSER,
        };
        self.health.detect_look.store(shown, Ordering::Relaxed);
        self.look = look;
    }

    /// Has the detector look at `region` only; the tracker and the plate watch take a vehicle
    /// at its edge as cut by it, and one beyond it as gone.
    fn look_within(&mut self, region: BBox) {
        tracing::info!(camera = %self.id, "detection region [{:.3}, {:.3}, {:.3}, {:.3}]", region.x1, region.y1, region.x2, region.y2);
        self.region = Some(region);
        self.tracker.look_within(region);
        if let Some(plates) = &mut self.plates {
            plates.look_within(region);
        }
    }

    /// A signal controller's message, applied at the camera's next frame.
    pub fn hear(&mut self, topic: String, payload: Vec<u8>) {
        self.signals.pending.insert(topic, payload);
    }

    /// Motion gate → detect → track → analyzers → emitter on one frame.
    pub fn process(&mut self, frame: &Frame) {
        self.first_frame.get_or_insert(frame.arrived);
        if frame.source_run != self.source_run {
            self.source_run = frame.source_run;
            self.restart();
        }
        if self.run_ended {
            // A frame of a run already ended as lost: a pipeline left behind by a hung teardown
            // may still let one through. Its vehicles were counted at the end; counting them on
            // would start their line memories again and count them twice.
            return;
        }
        let now = frame.pts;
        self.apply_signals(now);
        let Some(Tracked { detections, objects, detected }) = self.detect_and_track(frame, now) else { return };
        self.history.update(&objects, now);
        if let Some(plates) = &mut self.plates {
            plates.observe(frame, &objects, now, detected);
        }
        self.last_frame = Some(LastFrame { frame: frame.clone(), objects: objects.clone(), at: Instant::now() });
        self.trace(now, &detections, &objects);
        let context = FrameContext::new(now, frame, &detections, &objects, &self.history);
        let findings = self.analyzers.analyse(&context);
        self.emitter.emit(findings, &context, &self.analyzers, self.plates.as_mut());
        if let Some(dir) = &self.render_dir {
            self.render(dir, &context);
        }
        self.take_plates(false);
    }

    /// The plates read since the last call (all vehicles' at the `end`), when every vehicle is read.
    fn take_plates(&mut self, end: bool) {
        let Some(plates) = &mut self.plates else { return };
        for read in plates.take_finished(end) {
            let (text, confidence, unread) = match &read.outcome {
                Ok(plate) => (Some(plate.text.clone()), Some((plate.confidence * 1000.0).round() / 1000.0), None),
                Err(reason) => (None, None, Some(*reason)),
            };
            let class = self.analyzers.label(read.class).to_string();
            let t_s = (read.t.as_secs_f64() * 1000.0).round() / 1000.0;
            self.plates_read.push(PlateSummary { track_id: read.track_id, class, text, confidence, unread, t_s, read_ms: (read.read_ms * 10.0).round() / 10.0 });
        }
    }

    /// The stream ended, or is about to restart: the analyzers' findings that its end confirms
    /// (crossings it cut short), emitted as of its last frame.
    pub fn end(&mut self) {
        self.run_ended = true;
        let findings = self.analyzers.end();
        let Some(last) = &self.last_frame else { return };
        let context = FrameContext::new(last.frame.pts, &last.frame, &[], &last.objects, &self.history);
        self.emitter.emit(findings, &context, &self.analyzers, self.plates.as_mut());
    }

    /// Whether the source lost the stream this camera's last frames came from, and the run has
    /// not been ended: it is reconnecting, after tearing the old pipeline down, so no frame of
    /// that run is still to come once the camera's queue is empty (but from a pipeline left
    /// behind, which `process` drops).
    pub fn run_lost(&self) -> bool {
        !self.run_ended && self.last_frame.is_some() && matches!(self.health.state(), SourceState::Reconnecting { .. })
    }

    /// The stream restarted and its times start again: tracks and analyzers forget them.
    fn restart(&mut self) {
        if !self.run_ended {
            self.end();
        }
        self.run_ended = false;
        self.take_plates(true);
        if let Some(plates) = &mut self.plates {
            plates.reset();
        }
        self.tracker.reset();
        self.history.reset();
        self.analyzers.reset();
    }

    /// Recorded signal messages due by stream time `now`, then those heard since the last frame.
    fn apply_signals(&mut self, now: Duration) {
        while self.signals.scheduled.front().is_some_and(|s| s.at() <= now) {
            let entry = self.signals.scheduled.pop_front().expect("checked above");
            self.analyzers.signal(&entry.topic, entry.state.as_bytes(), entry.at());
        }
        for (topic, payload) in std::mem::take(&mut self.signals.pending) {
            self.analyzers.signal(&topic, &payload, now);
        }
    }

    /// The frame's detections and tracks; empty when the motion gate finds it still (the tracks
    /// wait, unchanged, for the next frame that moves or the recheck). `None` when the detector
    /// fails (logged).
    fn detect_and_track(&mut self, frame: &Frame, now: Duration) -> Option<Tracked> {
        if !self.gate.should_detect(frame, self.tracker.moving()) {
            CameraHealth::count(&self.health.frames_skipped);
            return Some(Tracked { detections: Vec::new(), objects: Vec::new(), detected: false });
        }
        let inference = Instant::now();
        let result = self.detect(frame);
        self.health.inference_ms.observe(inference.elapsed());
        match result {
            Ok(detections) => {
                CameraHealth::count(&self.health.frames_analysed);
                if let Some(repeated) = self.detect_errors.quiet() {
                    tracing::warn!(camera = %self.id, seq = frame.seq, repeated, "the detector's error came {repeated} times more since it was logged; it worked on this frame");
                }
                let objects = self.tracker.update(&detections, now);
                Some(Tracked { detections, objects, detected: true })
            }
            Err(e) => {
                CameraHealth::count(&self.health.detect_errors);
                if let Some(repeated) = self.detect_errors.due() {
                    tracing::error!(camera = %self.id, seq = frame.seq, repeated, "{e}");
                }
                None
            }
        }
    }

    /// The detector's look at the frame: the camera's own (the whole frame, or its region with
    /// the pixels the whole analysed frame has: the same inference cost; more once it looks
    /// closer); and while it is finding out whether to look closer, the closer look too.
    fn detect(&mut self, frame: &Frame) -> Result<Vec<Detection>, DetectError> {
        let Look::FindingOut(probe) = &mut self.look else { return self.look_as_chosen(frame) };
        if !probe.due() {
            return self.look_as_chosen(frame);
        }
        let own = self.detector.detect(frame, self.min_score)?;
        let closer = match self.detector.detect_region(frame, probe.region, ZoomProbe::budget_px(frame.width, frame.height), self.min_score) {
            Ok(closer) => closer,
            Err(e) => {
                // The frame's own look still works: keep it rather than go blind on every frame.
                tracing::warn!(camera = %self.id, "the detector keeps its own look, the closer one failed: {e}");
                self.set_look(Look::AsSet);
                return Ok(own);
            }
        };
        let Some(verdict) = probe.observe(&own, &closer) else { return Ok(own) };
        let region = probe.region;
        tracing::info!(camera = %self.id, "{verdict}");
        if !verdict.zoom {
            self.set_look(Look::AsSet);
            return Ok(own);
        }
        self.set_look(Look::Closer);
        self.look_within(region);
        Ok(closer)
    }

    /// The detector's look once chosen (or on a frame the probe skips).
    fn look_as_chosen(&self, frame: &Frame) -> Result<Vec<Detection>, DetectError> {
        let Some(region) = self.region else { return self.detector.detect(frame, self.min_score) };
        let pixels = match self.look {
            Look::Closer => ZoomProbe::budget_px(frame.width, frame.height),
            _ => (frame.width * frame.height) as f32,
        };
        self.detector.detect_region(frame, region, pixels, self.min_score)
    }

    /// Each frame's boxes and tracks, at the `trace` log level.
    fn trace(&self, now: Duration, detections: &[Detection], objects: &[TrackedObject]) {
        if !tracing::enabled!(tracing::Level::TRACE) {
            return;
        }
        let fmt_box = |b: &crate::types::BBox| format!("[{:.3},{:.3},{:.3},{:.3}]", b.x1, b.y1, b.x2, b.y2);
        let label = |class| self.analyzers.label(class);
        let dets: Vec<String> = detections.iter().map(|d| format!("{}:{:.2}{}", label(d.class), d.score, fmt_box(&d.bbox))).collect();
        let tracks: Vec<String> = objects.iter().map(|o| format!("#{}:{}{}", o.id, label(o.class), fmt_box(&o.bbox))).collect();
        tracing::trace!(camera = %self.id, t = %format_args!("{:.3}", now.as_secs_f64()), ?dets, ?tracks, "frame");
    }

    /// Writes the frame as engineers see it: geometry, tracks, violators.
    fn render(&self, dir: &std::path::Path, frame: &FrameContext) {
        let path = dir.join(format!("{}_{:06}.png", self.id, frame.frame.seq));
        let rendered = frame.image().and_then(|mat| {
            let mut mat = enlarged(mat, RENDER_MIN_WIDTH).map_err(|e| e.to_string())?;
            let plate = |id| self.plates.as_ref().and_then(|p| p.text(id));
            let marks: Vec<Mark> = frame
                .tracks
                .iter()
                .map(|o| {
                    let mark = self.analyzers.mark(o);
                    match plate(o.id) {
                        Some(text) => Mark { text: format!("{} {text}", mark.text), ..mark },
                        None => mark,
                    }
                })
                .collect();
            let mut overlays = self.analyzers.overlays();
            overlays.extend(self.region.map(|r| Overlay { rule: String::new(), shape: Shape::Zone(r.corners().to_vec()), label: "detection region".into(), tone: Tone::Unknown }));
            draw(&mut mat, &overlays, &marks).map_err(|e| e.to_string())?;
            write_image(&path, &mat).map_err(|e| e.to_string())
        });
        if let Err(e) = rendered {
            tracing::error!(camera = %self.id, path = %path.display(), "cannot render the frame: {e}");
        }
    }

    /// The interval's counts when it has ended, and the camera's status when due (or both now,
    /// with `force`, when the camera finishes).
    pub fn report(&mut self, force: bool, events: &Sender<Message>) {
        self.emitter.report_counts(SystemTime::now(), Instant::now(), force);
        self.status.report(&self.id, &self.health, Instant::now(), force, events);
    }

    pub fn summary(mut self) -> CameraSummary {
        self.take_plates(true);
        let emitted = self.emitter.emitted();
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
            lines: emitted.lines,
            violations: emitted.violations,
            fire_counts: emitted.fire_counts,
            fire_events: emitted.fire_events,
            plates: self.plates_read,
            detect_look: crate::health::look_name(CameraHealth::get(&self.health.detect_look)),
        }
    }
}

/// The last status published: state, when, and the frame counters then.
#[derive(Default)]
struct StatusReport {
    last: Option<(SourceState, Instant, u64, u64)>,
}

impl StatusReport {
    /// Publishes the camera's status if its state changed or `STATUS_INTERVAL` has passed (or
    /// `force`, at the end).
    fn report(&mut self, camera: &str, health: &CameraHealth, now: Instant, force: bool, events: &Sender<Message>) {
        let state = health.state();
        let (frames_in, analysed) = (CameraHealth::get(&health.frames_in), CameraHealth::get(&health.frames_analysed));
        let due = match &self.last {
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
        let (since, in_before, analysed_before) = match &self.last {
            Some((_, at, i, a)) => (Some(*at), *i, *a),
            None => (None, 0, 0),
        };
        let fps_in = rate(frames_in, in_before, since);
        // The rate says something about the link only over a while spent streaming throughout.
        let steady = matches!(&self.last, Some((last, at, _, _)) if *last == state && now.duration_since(*at) >= QUALITY_MIN_SPAN);
        let status = CameraStatus {
            camera,
            state: &state,
            quality: health.grade(steady.then_some(fps_in)),
            time: SystemTime::now(),
            fps_in,
            fps_analysed: rate(analysed, analysed_before, since),
            frames_dropped: CameraHealth::get(&health.frames_dropped),
            reconnects: CameraHealth::get(&health.reconnects),
            abandoned_pipelines: CameraHealth::get(&health.abandoned_pipelines),
        };
        let _ = events.send(status.message());
        self.last = Some((state, now, frames_in, analysed));
    }
}
