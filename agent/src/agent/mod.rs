//! Wires the stages together for a whole site: sources → detect → track → analytics → events →
//! publish. `canh run` and `canh replay` both go through [`run_site`]; they differ in [`Mode`],
//! which [`RunOptions`] turns into what each stage does differently, once.
//!
//! Threads: a supervisor per camera (GStreamer runs its own streaming threads below it), one
//! analysis thread ([`analysis`]) that takes frames from every camera's queue and runs each
//! camera's analysis ([`camera`]: motion gate, detection, tracking, then its analyzers, whose
//! findings its emitter turns into messages) in frame order per camera, and one publisher thread
//! (which, over MQTT, also hears signal controllers and the IOC's commands and hands them back to
//! the analysis thread, whose site-wide [`duties`] carry the commands out and publish `stats`).

mod analysis;
mod camera;
mod duties;
mod site;

pub use crate::events::emitter::FireSummary;
pub use site::run_site;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::Serialize;

use crate::analytics::LineCounts;
use crate::analytics::signal::SignalLogEntry;
use crate::config::SiteConfig;
use crate::source::Overflow;

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
    /// Read the plate of every vehicle track, as it leaves (`canh replay --plates`).
    pub plates: bool,
}

/// Frames waiting between a camera's source and the detector: 1.6 s at 5 fps. Cameras' frames
/// arrive in bursts (key frames, network hiccups, streams in step); with 4, eight 720p cameras on
/// 2 cores dropped 17 % of their frames at 185 % CPU, with 8 none at 171 % (streams bench).
const FRAME_QUEUE: usize = 8;
/// Signal-controller messages and commands waiting for the analysis thread (a few per minute).
const INBOX_QUEUE: usize = 1_000;

/// What differs between the daemon and a replay, decided once from the [`Mode`].
#[derive(Debug, Clone)]
struct RunOptions {
    /// The daemon's reload settings; `None` in a replay.
    daemon: Option<DaemonOptions>,
    /// Sources play files in real time (a replay reads them as fast as it can).
    realtime: bool,
    /// What a camera's full frame queue does: drop the oldest frame live, wait in a replay.
    overflow: Overflow,
    /// Publish to the site's broker (and hear it), rather than print.
    broker: bool,
    /// Serve `/metrics` and `/healthz`.
    metrics: bool,
    /// Counts and camera status are published this often (daemon); a replay only sums totals.
    counts_interval: Option<Duration>,
    /// `stats` is published this often (daemon, when not turned off).
    stats_interval: Option<Duration>,
    /// Where analyzers keep what should survive a restart (daemon).
    state_dir: Option<PathBuf>,
    /// Write every analysed frame, annotated, into this folder (replay).
    render_dir: Option<PathBuf>,
    /// Recorded signal-controller messages played at their stream times (replay).
    signal_log: Vec<SignalLogEntry>,
    /// Read the plate of every vehicle track (replay).
    read_all_plates: bool,
    /// List every fire message in the run's summary, not only their counts (replay).
    list_fire_messages: bool,
}

impl RunOptions {
    fn new(mode: Mode, config: &SiteConfig) -> RunOptions {
        match mode {
            Mode::Daemon(daemon) => RunOptions {
                daemon: Some(daemon),
                realtime: true,
                overflow: Overflow::DropOldest,
                broker: config.mqtt.is_some(),
                metrics: config.metrics.is_some(),
                counts_interval: Some(Duration::from_secs(config.counts_interval_s)),
                stats_interval: (config.stats_interval_s > 0).then(|| Duration::from_secs(config.stats_interval_s)),
                state_dir: Some(config.state_dir()),
                render_dir: None,
                signal_log: Vec::new(),
                read_all_plates: false,
                list_fire_messages: false,
            },
            Mode::Replay(replay) => RunOptions {
                daemon: None,
                realtime: false,
                overflow: Overflow::Block,
                broker: false,
                metrics: false,
                counts_interval: None,
                stats_interval: None,
                state_dir: None,
                render_dir: replay.render_dir,
                signal_log: replay.signal_log,
                read_all_plates: replay.plates,
                list_fire_messages: true,
            },
        }
    }
}

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
    /// Cameras whose source did not stop in time and was left behind.
    #[serde(skip)]
    pub left_behind: usize,
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
    /// Fire messages by kind and level (`"smoke suspected"`).
    pub fire_counts: BTreeMap<String, u64>,
    /// Every fire message, in order (a replay; a service's run lists none).
    pub fire_events: Vec<FireSummary>,
    /// Every vehicle's plate, in the order they left (`canh replay --plates`).
    pub plates: Vec<PlateSummary>,
    /// How the detector looks at the end (`detect_zoom`): "as set", "finding out" or "closer".
    pub detect_look: &'static str,
}

/// One vehicle's plate, as `canh replay --plates` summarises it.
#[derive(Debug, Clone, Serialize)]
pub struct PlateSummary {
    pub track_id: u64,
    pub class: String,
    /// `null` when unread.
    pub text: Option<String>,
    pub confidence: Option<f32>,
    /// Why it is unread.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread: Option<crate::plates::Unread>,
    /// Stream time of the frame likeliest to read (the vehicle near and sharp), seconds.
    pub t_s: f64,
    /// Time spent reading it, milliseconds.
    pub read_ms: f64,
}

