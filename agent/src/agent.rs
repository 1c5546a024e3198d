//! Wires the stages together for a whole site: sources → detect → track → analytics → events →
//! publish. `canh run` and `canh replay` both go through [`run_site`]; they differ in [`Mode`].
//!
//! Threads: a supervisor per camera (GStreamer runs its own streaming threads below it), one
//! analysis thread that takes frames from every camera's queue and runs detection, tracking and
//! line counting in frame order per camera, and one publisher thread.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Select, Sender};
use serde::Serialize;

use crate::analytics::{CountsTable, Line, LineCounter, LineCounts};
use crate::config::{CameraConfig, Resources, SiteConfig};
use crate::detect::{Detector, input_caps};
use crate::events::{CrossingEvent, Message, counts_message};
use crate::health::{CameraHealth, SourceState};
use crate::publish::{MqttSink, Publisher, Sink, StdoutSink, topic_prefix};
use crate::source::{CameraSource, Overflow, SourceSettings, frame_queue};
use crate::track::Tracker;
use crate::types::{CameraId, Frame};

/// How the site runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The daemon: live queues drop the oldest frame, files play in real time, counts are
    /// published every `counts_interval_s`.
    Daemon,
    /// Offline replay of files: every selected frame is analysed, as fast as possible.
    Replay,
}

/// Frames waiting between a camera's source and the detector.
const FRAME_QUEUE: usize = 4;

/// What a run leaves behind.
#[derive(Debug, Serialize)]
pub struct RunSummary {
    /// Frames analysed, all cameras together.
    pub frames: u64,
    pub seconds: f64,
    pub cameras: Vec<CameraSummary>,
}

#[derive(Debug, Serialize)]
pub struct CameraSummary {
    pub id: String,
    pub frames_analysed: u64,
    pub frames_dropped: u64,
    pub reconnects: u64,
    /// Why the source could not run, if it could not.
    pub error: Option<String>,
    /// Totals over the whole run.
    pub lines: Vec<LineCounts>,
}

/// Runs the site until every source has ended or `stop` is set.
pub fn run_site(config: &SiteConfig, resources: &Resources, mode: Mode, stop: Arc<AtomicBool>) -> Result<RunSummary> {
    let started = Instant::now();
    gstreamer::init().context("GStreamer does not initialise")?;

    // Detect: one session per model, shared by the cameras using it.
    let mut detectors: HashMap<&str, Arc<Detector>> = HashMap::new();
    for camera in &config.cameras {
        if !detectors.contains_key(camera.model.as_str()) {
            let manifest = resources.model(&camera.model)?;
            tracing::info!(model = %manifest.name, licence = %manifest.licence, file = %manifest.model_path.display(), "loading model");
            let detector = Detector::load(manifest, &config.detector)?;
            detectors.insert(&camera.model, Arc::new(detector));
        }
    }

    // Publish.
    let prefix = topic_prefix(config.mqtt.as_ref(), &config.site);
    let sink: Box<dyn Sink> = match &config.mqtt {
        Some(mqtt) => Box::new(MqttSink::connect(mqtt, &config.site, prefix)?),
        None => Box::new(StdoutSink::new(prefix)),
    };
    let publisher = Publisher::spawn(sink)?;

    // Sources, each with the analysis state its frames feed.
    let mut sources = Vec::new();
    let mut cameras = Vec::new();
    for camera in &config.cameras {
        let detector = detectors[camera.model.as_str()].clone();
        let health = CameraHealth::new(&camera.id);
        let overflow = if mode == Mode::Replay { Overflow::Block } else { Overflow::DropOldest };
        let (frames_tx, frames_rx) = frame_queue(FRAME_QUEUE, overflow, health.clone());
        let settings = source_settings(camera, resources, &detector, mode)?;
        sources.push(CameraSource::spawn(settings, frames_tx, health.clone(), stop.clone())?);
        cameras.push((frames_rx, CameraAnalysis::new(config, camera, detector, health)?));
    }

    let counts_interval = (mode == Mode::Daemon).then(|| Duration::from_secs(config.counts_interval_s));
    let events = publisher.sender();
    let analysis = std::thread::Builder::new()
        .name("analysis".into())
        .spawn(move || analyse(cameras, events, counts_interval))?;

    while !stop.load(Ordering::Relaxed) && !sources.iter().all(CameraSource::is_finished) {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for source in sources {
        source.join();
    }
    let cameras = analysis.join().map_err(|_| anyhow::anyhow!("the analysis thread panicked"))?;
    publisher.finish();
    Ok(RunSummary {
        frames: cameras.iter().map(|c| c.frames_analysed).sum(),
        seconds: started.elapsed().as_secs_f64(),
        cameras,
    })
}

fn source_settings(camera: &CameraConfig, resources: &Resources, detector: &Detector, mode: Mode) -> Result<SourceSettings> {
    Ok(SourceSettings {
        camera: camera.id.as_str().into(),
        location: camera.source.clone(),
        analytics_fps: camera.analytics_fps,
        template: resources.pipeline(&camera.pipeline)?,
        caps: input_caps(&detector.manifest().input),
        no_frames_timeout: Duration::from_secs(camera.no_frames_timeout_s),
        realtime: mode == Mode::Daemon,
    })
}

/// One camera's analysis state, owned by the analysis thread.
struct CameraAnalysis {
    id: CameraId,
    detector: Arc<Detector>,
    tracker: Tracker,
    min_score: f32,
    counter: LineCounter,
    /// Counts of the current interval.
    interval: CountsTable,
    interval_start: SystemTime,
    totals: CountsTable,
    source_run: u32,
    health: Arc<CameraHealth>,
}

impl CameraAnalysis {
    fn new(config: &SiteConfig, camera: &CameraConfig, detector: Arc<Detector>, health: Arc<CameraHealth>) -> Result<CameraAnalysis> {
        let manifest = detector.manifest();
        let lines = camera
            .lines
            .iter()
            .map(|l| {
                let classes = match &l.classes {
                    Some(names) => names.iter().filter_map(|n| manifest.class_id(n)).collect(),
                    None => manifest.vehicle_classes.clone(),
                };
                Line {
                    id: l.id.clone(),
                    p1: crate::types::Point { x: l.p1[0], y: l.p1[1] },
                    p2: crate::types::Point { x: l.p2[0], y: l.p2[1] },
                    classes,
                    confirm_frames: l.confirm_frames,
                }
            })
            .collect::<Vec<_>>();
        Ok(CameraAnalysis {
            id: camera.id.as_str().into(),
            tracker: Tracker::new(config.tracker.clone(), manifest.score_threshold, manifest.labels.len(), &manifest.merge_classes),
            min_score: config.tracker.low_score,
            interval: CountsTable::new(&lines),
            totals: CountsTable::new(&lines),
            counter: LineCounter::new(lines),
            interval_start: SystemTime::now(),
            detector,
            source_run: 0,
            health,
        })
    }

    /// Detect → track → count on one frame; crossing events go to `events`.
    fn process(&mut self, frame: &Frame, events: &Sender<Message>) {
        if frame.source_run != self.source_run {
            self.source_run = frame.source_run;
            self.tracker.reset();
            self.counter.reset();
        }
        let detections = match self.detector.detect(frame, self.min_score) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(camera = %self.id, seq = frame.seq, "{e}");
                return;
            }
        };
        CameraHealth::count(&self.health.frames_analysed);
        let stream_time = frame.pts;
        let objects = self.tracker.update(&detections, stream_time);
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
            let _ = events.send(event.message());
        }
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
            frames_dropped: CameraHealth::get(&self.health.frames_dropped),
            reconnects: CameraHealth::get(&self.health.reconnects),
            error: match self.health.state() {
                SourceState::Error { reason } => Some(reason),
                _ => None,
            },
            lines: self.totals.snapshot().to_vec(),
        }
    }
}

/// The analysis thread: frames from whichever camera has one, until every source has closed.
fn analyse(cameras: Vec<(Receiver<Frame>, CameraAnalysis)>, events: Sender<Message>, counts_interval: Option<Duration>) -> Vec<CameraSummary> {
    let (mut receivers, mut states): (Vec<_>, Vec<_>) = cameras.into_iter().unzip();
    let mut finished = Vec::new();
    while !receivers.is_empty() {
        let received = {
            let mut select = Select::new();
            for rx in &receivers {
                select.recv(rx);
            }
            select.select_timeout(Duration::from_millis(250)).ok().map(|op| {
                let i = op.index();
                (i, op.recv(&receivers[i]))
            })
        };
        match received {
            Some((i, Ok(frame))) => states[i].process(&frame, &events),
            Some((i, Err(_))) => {
                // The source is gone: publish what this camera counted since the last interval.
                receivers.swap_remove(i);
                let mut camera = states.swap_remove(i);
                if let Some(interval) = counts_interval {
                    camera.flush_counts(interval, SystemTime::now(), true, &events);
                }
                finished.push(camera.summary());
            }
            None => {}
        }
        if let Some(interval) = counts_interval {
            let now = SystemTime::now();
            for camera in &mut states {
                camera.flush_counts(interval, now, false, &events);
            }
        }
    }
    finished
}
