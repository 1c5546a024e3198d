//! A running site: the models, the publisher, the analysis thread, and one source per camera.
//! A reload that changes only cameras stops the removed and changed ones and starts the added and
//! changed ones, leaving the others running; any other change restarts the whole site.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};

use super::analysis::{AnalysisLoop, Change, LoopSettings};
use super::camera::{CameraAnalysis, CameraParts};
use super::duties::SiteDuties;
use super::{CameraSummary, DaemonOptions, FRAME_QUEUE, INBOX_QUEUE, Mode, RunOptions, RunSummary};
use crate::analytics::BuildContext;
use crate::config::{CameraConfig, DecodeFrames, Resources, SiteConfig};
use crate::detect::{Detector, input_caps};
use crate::events::archive::EvidenceArchive;
use crate::events::{Message, Reply};
use crate::health::metrics::MetricsServer;
use crate::health::notify::Notifier;
use crate::health::{CameraHealth, SiteHealth};
use crate::plates::PlateReader;
use crate::publish::{MqttSink, Publisher, Sink, StdoutSink, Subscriptions, topic_prefix};
use crate::source::{CameraSource, STATE_CHANGE_DEADLINE, SourceSettings, frame_queue};

/// How often the site runner looks for a stop, a reload and finished sources.
const POLL: Duration = Duration::from_millis(100);

/// A camera's source and what stops it.
struct RunningCamera {
    config: CameraConfig,
    source: CameraSource,
    health: Arc<CameraHealth>,
    halt: Arc<AtomicBool>,
}

struct Site<'a> {
    config: SiteConfig,
    resources: &'a Resources,
    options: RunOptions,
    prefix: String,
    /// The models loaded, by name, held by the cameras (and analyzers) that run them: one no
    /// camera runs any more since a reload is freed with the last of them, not kept until the
    /// whole site restarts.
    detectors: HashMap<String, Weak<Detector>>,
    /// The cameras the site started with: models are given sessions for the analysis lanes
    /// made for them, whenever they are loaded.
    lanes_for_cameras: usize,
    /// Loaded with the first camera that reads plates, and held as the models are.
    plate_reader: Weak<PlateReader>,
    cameras: Vec<RunningCamera>,
    /// New cameras for the analysis thread.
    changes: Sender<Change>,
    /// Where analysed events go.
    events: Sender<Message>,
    health: Arc<SiteHealth>,
}

/// The publisher and what comes back through it.
struct Uplink {
    publisher: Publisher,
    /// Signal controllers' messages and the IOC's commands.
    inbox: Receiver<(String, Vec<u8>)>,
    /// Evidence kept for the IOC's `evidence` command (with a broker).
    archive: Option<Arc<Mutex<EvidenceArchive>>>,
}

/// Runs the site until every source has ended or `stop` is set. In the daemon, a reload that
/// changes more than cameras ends the run with the new config in [`RunSummary::reload`].
pub fn run_site(config: &SiteConfig, resources: &Resources, mode: Mode, stop: Arc<AtomicBool>) -> Result<RunSummary> {
    let started = Instant::now();
    gstreamer::init().context("GStreamer does not initialise")?;
    let health = Arc::new(SiteHealth::default());
    let options = RunOptions::new(mode, config);
    let prefix = topic_prefix(config.mqtt.as_ref(), &config.site);
    let uplink = connect(config, &options, &prefix, &health)?;
    let _metrics = match (&config.metrics, options.metrics) {
        (Some(metrics), true) => Some(MetricsServer::start(&metrics.listen, health.clone()).map_err(anyhow::Error::msg)?),
        _ => None,
    };
    // Analysis: cameras join it as their sources start.
    let (reload_tx, reload_requests) = crossbeam_channel::unbounded();
    let duties = SiteDuties {
        commands_prefix: commands_prefix(&prefix),
        prefix: prefix.clone(),
        archive: uplink.archive.clone(),
        broker: config.mqtt.is_some(),
        reload_requests: reload_tx,
        health: health.agent.clone(),
        stats_interval: options.stats_interval,
        started,
        last_stats: None,
    };
    let (changes, changes_rx) = crossbeam_channel::unbounded();
    let settings = LoopSettings {
        changes: changes_rx,
        events: uplink.publisher.sender(),
        inbox: uplink.inbox,
        counts_interval: options.counts_interval,
        parallel_frames: config.detector.lanes(config.cameras.len()).sessions,
        duties,
        site: health.clone(),
    };
    let analysis = std::thread::Builder::new().name("analysis".into()).spawn(move || AnalysisLoop::new(settings).run())?;

    let events = uplink.publisher.sender();
    let mut site = Site { config: config.clone(), resources, options, prefix, detectors: HashMap::new(), lanes_for_cameras: config.cameras.len(), plate_reader: Weak::new(), cameras: Vec::new(), changes, events, health: health.clone() };
    let started_cameras = config.cameras.iter().try_for_each(|camera| site.start_camera(camera));
    let mut notifier = Notifier::new(health);
    let reload = if started_cameras.is_ok() { site.supervise(&stop, &reload_requests, &mut notifier) } else { None };
    if reload.is_none() {
        notifier.stopping();
    }
    let (cameras, left_behind) = site.close(analysis)?;
    uplink.publisher.finish();
    started_cameras?;
    Ok(RunSummary { frames: cameras.iter().map(|c| c.frames_analysed).sum(), seconds: started.elapsed().as_secs_f64(), cameras, reload, left_behind })
}

/// Topic prefix of the IOC's commands.
fn commands_prefix(prefix: &str) -> String {
    format!("{prefix}/cmd/")
}

/// The publisher: to the site's broker in the daemon (which also brings the IOC's commands and
/// signal controllers' messages back, and keeps evidence), else to stdout.
fn connect(config: &SiteConfig, options: &RunOptions, prefix: &str, health: &SiteHealth) -> Result<Uplink> {
    let (inbox_tx, inbox) = crossbeam_channel::bounded(INBOX_QUEUE);
    let mut archive = None;
    let sink: Box<dyn Sink> = match (&config.mqtt, options.broker) {
        (Some(mqtt), true) => {
            let subscriptions = Subscriptions { topics: signal_topics(config).into_iter().collect(), commands: format!("{}+", commands_prefix(prefix)), inbox: inbox_tx };
            let kept = EvidenceArchive::open(&config.state_dir().join("evidence"), (mqtt.evidence_keep_mb * 1024.0 * 1024.0) as u64)?;
            archive = Some(Arc::new(Mutex::new(kept)));
            Box::new(MqttSink::connect(mqtt, &config.site, prefix.to_string(), subscriptions, health.agent.clone())?)
        }
        _ => Box::new(StdoutSink::new(prefix.to_string())),
    };
    let publisher = Publisher::spawn(sink, archive.clone(), health.agent.clone())?;
    Ok(Uplink { publisher, inbox, archive })
}

/// How long stopping waits for a camera's supervisor: its longest wait is a state change.
const SUPERVISOR_JOIN: Duration = Duration::from_secs(STATE_CHANGE_DEADLINE.as_secs() + 1);

/// Stops cameras, all at once, waiting for their supervisors until `SUPERVISOR_JOIN` from now;
/// the ids of those that did not end (left behind, logged).
fn stop_cameras(cameras: Vec<RunningCamera>) -> Vec<String> {
    for camera in &cameras {
        camera.halt.store(true, Ordering::Relaxed);
    }
    let until = Instant::now() + SUPERVISOR_JOIN;
    let mut left_behind = Vec::new();
    for camera in cameras {
        if !camera.source.join(until.saturating_duration_since(Instant::now())) {
            tracing::error!(camera = %camera.config.id, "the camera's source did not stop within {} s and is left behind", SUPERVISOR_JOIN.as_secs());
            left_behind.push(camera.config.id);
        }
    }
    left_behind
}

/// One decoding thread per camera once the cameras alone can keep every core busy; below that, a
/// camera's decoder may use them all (one high-resolution stream on an idle box).
fn decoder_threads(cameras: usize) -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cameras >= cores { 1 } else { 0 }
}

/// Every signal controller topic the site's rules listen to.
fn signal_topics(config: &SiteConfig) -> BTreeSet<String> {
    config.cameras.iter().flat_map(|c| &c.rules).filter_map(|r| r.signal_topic()).map(str::to_string).collect()
}

impl Site<'_> {
    /// Keeps the site running until `stop`, the end of every source, or a reload that changes
    /// more than cameras, which it returns.
    fn supervise(&mut self, stop: &AtomicBool, reload_requests: &Receiver<String>, notifier: &mut Notifier) -> Option<SiteConfig> {
        while !stop.load(Ordering::Relaxed) && !self.cameras.iter().all(|c| c.source.is_finished()) {
            if let Some(daemon) = self.options.daemon.clone()
                && let Some(new) = self.reload_request(&daemon, reload_requests)
            {
                notifier.reloading();
                if !self.only_cameras_differ(&new) {
                    tracing::info!("site settings changed: restarting the whole site");
                    return Some(new);
                }
                // Validated already; what can still fail (a model file gone) leaves the cameras
                // that did start running.
                if let Err(e) = self.apply(new) {
                    tracing::error!("reload: {e:#}");
                }
            }
            notifier.tick();
            std::thread::sleep(POLL);
        }
        None
    }

    /// A valid new configuration, when a reload was asked for (by SIGHUP or the IOC).
    fn reload_request(&self, daemon: &DaemonOptions, reload_requests: &Receiver<String>) -> Option<SiteConfig> {
        let from_signal = daemon.reload.swap(false, Ordering::Relaxed).then_some(None);
        let request = from_signal.or_else(|| reload_requests.try_recv().ok().map(Some))?;
        validate_reload(&daemon.config_path, self.resources, request.as_deref(), &self.events)
    }

    /// Stops every source, lets the analysis finish what they delivered (and the cameras whose
    /// source is left behind), and returns what each camera did and how many were left behind.
    fn close(mut self, analysis: std::thread::JoinHandle<Vec<CameraSummary>>) -> Result<(Vec<CameraSummary>, usize)> {
        let left_behind = stop_cameras(std::mem::take(&mut self.cameras));
        for camera in &left_behind {
            let _ = self.changes.send(Change::Finish(camera.as_str().into()));
        }
        drop(self);
        let cameras = analysis.join().map_err(|_| anyhow::anyhow!("the analysis thread panicked"))?;
        Ok((cameras, left_behind.len()))
    }

    /// The session of `name`, shared by the cameras using it; loaded when none of them runs yet.
    fn detector(&mut self, name: &str) -> Result<Arc<Detector>> {
        if let Some(detector) = self.detectors.get(name).and_then(Weak::upgrade) {
            return Ok(detector);
        }
        let manifest = self.resources.model(name)?;
        tracing::info!(model = %manifest.name, licence = %manifest.licence, file = %manifest.model_path.display(), "loading model");
        let detector = Arc::new(Detector::load(manifest, &self.config.detector, self.lanes_for_cameras)?);
        self.detectors.insert(name.to_string(), Arc::downgrade(&detector));
        Ok(detector)
    }

    /// The plate reader, loaded on first use, for a camera that reads plates (`None` for one
    /// that does not).
    fn plate_reader(&mut self, camera: &CameraConfig) -> Result<Option<Arc<PlateReader>>> {
        if !(self.options.read_all_plates || camera.reads_plates()) {
            return Ok(None);
        }
        if let Some(reader) = self.plate_reader.upgrade() {
            return Ok(Some(reader));
        }
        let dir = self.resources.models_dir.join(crate::plates::MODELS);
        tracing::info!(models = %dir.display(), "loading the plate reader");
        let reader = Arc::new(PlateReader::load(&dir, self.config.detector.onnxruntime_lib.as_deref())?);
        self.plate_reader = Arc::downgrade(&reader);
        Ok(Some(reader))
    }

    fn start_camera(&mut self, camera: &CameraConfig) -> Result<()> {
        let detector = self.detector(&camera.model)?;
        let plates = self.plate_reader(camera)?;
        let analyzers = self.analyzers(camera, &detector)?;
        let health = CameraHealth::new(&camera.id, camera.analytics_fps);
        let (frames_tx, frames_rx) = frame_queue(FRAME_QUEUE, self.options.overflow, health.clone());
        let settings = self.source_settings(camera, &detector)?;
        let halt = Arc::new(AtomicBool::new(false));
        let source = CameraSource::spawn(settings, frames_tx, health.clone(), halt.clone())?;
        let parts = CameraParts { detector, analyzers, plates, health: health.clone(), events: self.events.clone(), prefix: self.prefix.clone() };
        let analysis = CameraAnalysis::new(&self.config, camera, parts, &self.options);
        let _ = self.changes.send(Change::Add(frames_rx, Box::new(analysis)));
        self.cameras.push(RunningCamera { config: camera.clone(), source, health, halt });
        self.health.set_cameras(self.cameras.iter().map(|c| c.health.clone()).collect());
        Ok(())
    }

    /// The camera's analyzers, built from its config; the models they run are loaded once for
    /// the site.
    fn analyzers(&mut self, camera: &CameraConfig, detector: &Detector) -> Result<Vec<Box<dyn crate::analytics::Analyzer>>> {
        let state_dir = self.options.state_dir.clone();
        let mut model = |name: &str| self.detector(name).map_err(|e| format!("{e:#}"));
        let mut ctx = BuildContext { camera: &camera.id, manifest: detector.manifest(), model: &mut model, state_dir: state_dir.as_deref() };
        camera.analyzer_configs().map(|(_, config)| config.build(&mut ctx)).collect::<Result<_, _>>().map_err(anyhow::Error::msg)
    }

    fn source_settings(&self, camera: &CameraConfig, detector: &Detector) -> Result<SourceSettings> {
        Ok(SourceSettings {
            camera: camera.id.as_str().into(),
            location: camera.source.clone(),
            analytics_fps: camera.analytics_fps,
            template: self.resources.pipeline(&camera.pipeline)?,
            caps: input_caps(&detector.manifest().input, camera.detect_width_px),
            no_frames_timeout: Duration::from_secs(camera.no_frames_timeout_s),
            realtime: self.options.realtime,
            decoder_threads: decoder_threads(self.config.cameras.len()),
            key_frames_only: camera.decode == DecodeFrames::Auto,
        })
    }

    /// Whether `new` differs from the running config in its cameras only (and not in the signal
    /// topics the broker connection subscribes to).
    fn only_cameras_differ(&self, new: &SiteConfig) -> bool {
        let without_cameras = |c: &SiteConfig| SiteConfig { cameras: Vec::new(), ..c.clone() };
        without_cameras(&self.config) == without_cameras(new) && signal_topics(&self.config) == signal_topics(new)
    }

    /// Stops the cameras that were removed or changed, starts the added and changed ones.
    fn apply(&mut self, new: SiteConfig) -> Result<()> {
        // Held until the new cameras have started: a changed camera's model, which its old
        // analysis may let go of first, is not loaded again. Those no camera took are freed after.
        let _loaded: (Vec<Arc<Detector>>, Option<Arc<PlateReader>>) = (self.detectors.values().filter_map(Weak::upgrade).collect(), self.plate_reader.upgrade());
        self.detectors.retain(|_, detector| detector.strong_count() > 0);
        let (kept, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut self.cameras).into_iter().partition(|running| new.cameras.contains(&running.config));
        self.cameras = kept;
        for camera in &gone {
            tracing::info!(camera = %camera.config.id, "stopping the camera (removed or changed)");
            if !new.cameras.iter().any(|c| c.id == camera.config.id) {
                let _ = self.changes.send(Change::Forget(camera.config.id.as_str().into()));
            }
        }
        // The analysis thread finishes a camera whose source is left behind without waiting
        // for the end of its frames.
        for camera in stop_cameras(gone) {
            let _ = self.changes.send(Change::Finish(camera.as_str().into()));
        }
        let unchanged = self.cameras.len();
        let added: Vec<CameraConfig> = new.cameras.iter().filter(|c| !self.cameras.iter().any(|running| running.config == **c)).cloned().collect();
        self.config = new;
        for camera in &added {
            tracing::info!(camera = %camera.id, "starting the camera (added or changed)");
            self.start_camera(camera)?;
        }
        tracing::info!(unchanged, running = self.cameras.len(), "configuration reloaded");
        self.health.set_cameras(self.cameras.iter().map(|c| c.health.clone()).collect());
        Ok(())
    }
}

/// Reads the site file again for a reload (asked by the IOC's `request`, or by SIGHUP): the new
/// configuration when it is valid; else the errors are logged (and replied) and the site keeps
/// running as it is.
fn validate_reload(path: &std::path::Path, resources: &Resources, request: Option<&str>, events: &Sender<Message>) -> Option<SiteConfig> {
    let loaded = SiteConfig::load(path, resources);
    let error = match &loaded {
        Ok(_) => {
            tracing::info!(config = %path.display(), "reloading the configuration");
            None
        }
        Err(errors) => {
            tracing::error!("the new configuration is refused; the running one is kept:\n{errors}");
            Some(errors.to_string())
        }
    };
    if request.is_some() {
        let reply = Reply { request_id: request, command: "reload", ok: error.is_none(), error, snapshot: None, evidence: None };
        let _ = events.send(reply.message());
    }
    loaded.ok()
}
