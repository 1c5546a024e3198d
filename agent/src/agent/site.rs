//! A running site: the models, the publisher, the analysis thread, and one source per camera.
//! A reload that changes only cameras stops the removed and changed ones and starts the added and
//! changed ones, leaving the others running; any other change restarts the whole site.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::Sender;

use super::duties::SiteDuties;
use super::{CameraAnalysis, Change, FRAME_QUEUE, INBOX_QUEUE, Mode, RunSummary, analyse};
use crate::analytics::fire::{FireModels, FireWatch};
use crate::config::{CameraConfig, Resources, SiteConfig};
use crate::detect::{Detector, input_caps};
use crate::events::archive::EvidenceArchive;
use crate::events::{Message, Reply};
use crate::health::metrics::MetricsServer;
use crate::health::notify::Notifier;
use crate::health::{CameraHealth, SiteHealth};
use crate::publish::{MqttSink, Publisher, Sink, StdoutSink, Subscriptions, topic_prefix};
use crate::source::{CameraSource, Overflow, SourceSettings, frame_queue};

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
    mode: Mode,
    prefix: String,
    detectors: HashMap<String, Arc<Detector>>,
    cameras: Vec<RunningCamera>,
    /// New cameras for the analysis thread.
    changes: Sender<Change>,
    health: Arc<SiteHealth>,
}

/// Runs the site until every source has ended or `stop` is set. In the daemon, a reload that
/// changes more than cameras ends the run with the new config in [`RunSummary::reload`].
pub fn run_site(config: &SiteConfig, resources: &Resources, mode: Mode, stop: Arc<AtomicBool>) -> Result<RunSummary> {
    let started = Instant::now();
    gstreamer::init().context("GStreamer does not initialise")?;
    let health = Arc::new(SiteHealth::default());

    // Publish; signal controllers' messages and the IOC's commands come back through `inbox`.
    let prefix = topic_prefix(config.mqtt.as_ref(), &config.site);
    let commands_prefix = format!("{prefix}/cmd/");
    let (inbox_tx, inbox) = crossbeam_channel::bounded(INBOX_QUEUE);
    let mut archive = None;
    let sink: Box<dyn Sink> = match (&config.mqtt, &mode) {
        (Some(mqtt), Mode::Daemon(_)) => {
            let subscriptions = Subscriptions { topics: signal_topics(config).into_iter().collect(), commands: format!("{commands_prefix}+"), inbox: inbox_tx };
            let kept = EvidenceArchive::open(&mqtt.evidence_dir(), (mqtt.evidence_keep_mb * 1024.0 * 1024.0) as u64)?;
            archive = Some(Arc::new(Mutex::new(kept)));
            Box::new(MqttSink::connect(mqtt, &config.site, prefix.clone(), subscriptions, health.agent.clone())?)
        }
        _ => Box::new(StdoutSink::new(prefix.clone())),
    };
    let publisher = Publisher::spawn(sink, archive.clone(), health.agent.clone())?;
    let _metrics = match (&config.metrics, &mode) {
        (Some(metrics), Mode::Daemon(_)) => Some(MetricsServer::start(&metrics.listen, health.clone()).map_err(anyhow::Error::msg)?),
        _ => None,
    };

    // Analysis: cameras join it as their sources start.
    let daemon = matches!(mode, Mode::Daemon(_));
    let counts_interval = daemon.then(|| Duration::from_secs(config.counts_interval_s));
    let (reload_tx, reload_requests) = crossbeam_channel::unbounded();
    let duties = SiteDuties {
        commands_prefix,
        prefix: prefix.clone(),
        archive,
        reload_requests: reload_tx,
        health: health.agent.clone(),
        stats_interval: (daemon && config.stats_interval_s > 0).then(|| Duration::from_secs(config.stats_interval_s)),
        started,
        last_stats: None,
    };
    let (changes, changes_rx) = crossbeam_channel::unbounded();
    let analysis = {
        let (events, health) = (publisher.sender(), health.clone());
        let parallel_frames = config.detector.lanes(config.cameras.len()).sessions;
        std::thread::Builder::new()
            .name("analysis".into())
            .spawn(move || analyse(changes_rx, events, inbox, counts_interval, parallel_frames, duties, health))?
    };

    let mut site = Site { config: config.clone(), resources, mode, prefix, detectors: HashMap::new(), cameras: Vec::new(), changes, health: health.clone() };
    let mut notifier = Notifier::new(health);
    let started_cameras = config.cameras.iter().try_for_each(|camera| site.start_camera(camera));
    let mut reload = None;
    if started_cameras.is_ok() {
        while !stop.load(Ordering::Relaxed) && !site.cameras.iter().all(|c| c.source.is_finished()) {
            if let Mode::Daemon(options) = &site.mode {
                let from_signal = options.reload.swap(false, Ordering::Relaxed).then_some(None);
                if let Some(request) = from_signal.or_else(|| reload_requests.try_recv().ok().map(Some))
                    && let Some(new) = validate_reload(&options.config_path, resources, request.as_deref(), &publisher.sender())
                {
                    notifier.reloading();
                    if site.only_cameras_differ(&new) {
                        // Validated already; what can still fail (a model file gone) leaves the
                        // cameras that did start running.
                        if let Err(e) = site.apply(new) {
                            tracing::error!("reload: {e:#}");
                        }
                    } else {
                        tracing::info!("site settings changed: restarting the whole site");
                        reload = Some(new);
                        break;
                    }
                }
            }
            notifier.tick();
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    if reload.is_none() {
        notifier.stopping();
    }
    for camera in std::mem::take(&mut site.cameras) {
        stop_camera(camera);
    }
    drop(site.changes);
    let cameras = analysis.join().map_err(|_| anyhow::anyhow!("the analysis thread panicked"))?;
    publisher.finish();
    started_cameras?;
    Ok(RunSummary { frames: cameras.iter().map(|c| c.frames_analysed).sum(), seconds: started.elapsed().as_secs_f64(), cameras, reload })
}

fn stop_camera(camera: RunningCamera) {
    camera.halt.store(true, Ordering::Relaxed);
    camera.source.join();
}

/// Every signal controller topic the site's rules listen to.
/// One decoding thread per camera once the cameras alone can keep every core busy; below that, a
/// camera's decoder may use them all (one high-resolution stream on an idle box).
fn decoder_threads(cameras: usize) -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cameras >= cores { 1 } else { 0 }
}

fn signal_topics(config: &SiteConfig) -> BTreeSet<String> {
    config.cameras.iter().flat_map(|c| &c.rules).filter_map(|r| r.signal_topic()).map(str::to_string).collect()
}

impl Site<'_> {
    /// The session of `name`, loaded on first use and shared by the cameras using it.
    fn detector(&mut self, name: &str) -> Result<Arc<Detector>> {
        if let Some(detector) = self.detectors.get(name) {
            return Ok(detector.clone());
        }
        let manifest = self.resources.model(name)?;
        tracing::info!(model = %manifest.name, licence = %manifest.licence, file = %manifest.model_path.display(), "loading model");
        let detector = Arc::new(Detector::load(manifest, &self.config.detector, self.config.cameras.len())?);
        self.detectors.insert(name.to_string(), detector.clone());
        Ok(detector)
    }

    fn start_camera(&mut self, camera: &CameraConfig) -> Result<()> {
        let detector = self.detector(&camera.model)?;
        let fire = match &camera.fire {
            Some(fire) => {
                let models = FireModels {
                    flames: self.detector(&fire.classifier)?,
                    smoke: fire.smoke_model().map(|m| self.detector(m)).transpose()?,
                    detector: fire.detector.as_deref().map(|d| self.detector(d)).transpose()?,
                };
                let mut watch = FireWatch::new(fire, models).map_err(|e| anyhow::anyhow!("camera {}: fire analytics: {e}", camera.id))?;
                if let (Mode::Daemon(_), Some(mqtt)) = (&self.mode, &self.config.mqtt) {
                    let path = mqtt.state_dir().join("smoke-baseline").join(format!("{}.bin", camera.id));
                    if let Err(e) = watch.keep_baseline_in(path) {
                        tracing::warn!(camera = %camera.id, "{e}");
                    }
                }
                Some(watch)
            }
            None => None,
        };
        let health = CameraHealth::new(&camera.id, camera.analytics_fps);
        let overflow = if matches!(self.mode, Mode::Replay(_)) { Overflow::Block } else { Overflow::DropOldest };
        let (frames_tx, frames_rx) = frame_queue(FRAME_QUEUE, overflow, health.clone());
        let settings = self.source_settings(camera, &detector)?;
        let halt = Arc::new(AtomicBool::new(false));
        let source = CameraSource::spawn(settings, frames_tx, health.clone(), halt.clone())?;
        let mut analysis = CameraAnalysis::new(&self.config, camera, detector, health.clone(), &self.prefix, fire);
        match &self.mode {
            Mode::Replay(options) => {
                analysis.render_dir = options.render_dir.clone();
                analysis.scheduled_signals = options.signal_log.iter().cloned().collect();
            }
            Mode::Daemon(_) => analysis.keep_last_frame = true,
        }
        let _ = self.changes.send(Change::Add(frames_rx, Box::new(analysis)));
        self.cameras.push(RunningCamera { config: camera.clone(), source, health, halt });
        self.health.set_cameras(self.cameras.iter().map(|c| c.health.clone()).collect());
        Ok(())
    }

    fn source_settings(&self, camera: &CameraConfig, detector: &Detector) -> Result<SourceSettings> {
        Ok(SourceSettings {
            camera: camera.id.as_str().into(),
            location: camera.source.clone(),
            analytics_fps: camera.analytics_fps,
            template: self.resources.pipeline(&camera.pipeline)?,
            caps: input_caps(&detector.manifest().input),
            no_frames_timeout: Duration::from_secs(camera.no_frames_timeout_s),
            realtime: matches!(self.mode, Mode::Daemon(_)),
            decoder_threads: decoder_threads(self.config.cameras.len()),
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
        let (kept, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut self.cameras).into_iter().partition(|running| new.cameras.contains(&running.config));
        self.cameras = kept;
        for camera in gone {
            tracing::info!(camera = %camera.config.id, "stopping the camera (removed or changed)");
            stop_camera(camera);
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
