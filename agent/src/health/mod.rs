//! Health stage: counters and state each camera exposes, read by the status messages, the
//! metrics endpoint, the service manager's watchdog and the summary at the end of a replay.
//! Written by the source and analysis threads without locks (a mutex guards only the state and
//! the recent reconnect times).

pub mod metrics;
pub mod notify;
pub mod quality;
pub mod repeated;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;

/// Where a camera's source is in its life (the supervisor's state machine).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum SourceState {
    /// Building the pipeline and waiting for the first frame.
    Starting,
    Streaming,
    /// Torn down after a failure; the next attempt comes after `backoff_s`.
    Reconnecting { reason: String, backoff_s: u64 },
    /// Connected as far as the supervisor knows, but no frame for `no_frames_timeout_s`: the
    /// watchdog's view, whatever the supervisor is doing (it may be stuck in a call).
    Stalled { reason: String },
    /// A file source reached its end.
    Ended,
    /// Cannot run at all (e.g. a pipeline that does not build); not retried.
    Error { reason: String },
    Stopped,
}

impl SourceState {
    pub fn name(&self) -> &'static str {
        match self {
            SourceState::Starting => "starting",
            SourceState::Streaming => "streaming",
            SourceState::Reconnecting { .. } => "reconnecting",
            SourceState::Stalled { .. } => "stalled",
            SourceState::Ended => "ended",
            SourceState::Error { .. } => "error",
            SourceState::Stopped => "stopped",
        }
    }
}

/// Values of [`CameraHealth::detect_look`]: the whole frame (or the region set); looking both
/// ways, each frame's inference paid twice; the lines' region with the pixels of a larger frame,
/// about twice the inference.
pub const LOOK_AS_SET: u64 = 0;
pub const LOOK_FINDING_OUT: u64 = 1;
pub const LOOK_CLOSER: u64 = 2;

/// A [`CameraHealth::detect_look`] value in words, as `canh replay` reports it.
pub fn look_name(look: u64) -> &'static str {
    match look {
        LOOK_FINDING_OUT => "finding out",
        LOOK_CLOSER => "closer",
        _ => "as set",
    }
}

#[derive(Debug)]
pub struct CameraHealth {
    pub camera: String,
    /// Frames delivered by GStreamer after rate limiting.
    pub frames_in: AtomicU64,
    /// Frames the detector ran on.
    pub frames_analysed: AtomicU64,
    /// Frames the motion gate found still, so the detector did not run.
    pub frames_skipped: AtomicU64,
    /// Frames dropped because analysis fell behind.
    pub frames_dropped: AtomicU64,
    /// Frames the detector failed on (logged at most once a minute).
    pub detect_errors: AtomicU64,
    /// Pipeline rebuilds after errors or stalls.
    pub reconnects: AtomicU64,
    /// Times the no-frames watchdog fired.
    pub stalls: AtomicU64,
    /// Events published, by kind.
    pub crossings: AtomicU64,
    pub violations: AtomicU64,
    pub fire_messages: AtomicU64,
    /// Time the detector took per frame.
    pub inference_ms: Histogram,
    /// Pipelines whose teardown (or start) did not finish in time, left behind, since the start;
    /// and those still held (their state change has not ended since).
    pub abandoned_pipelines: AtomicU64,
    pub abandoned_held: AtomicU64,
    /// How the detector looks (`detect_zoom`): [`LOOK_AS_SET`], [`LOOK_FINDING_OUT`] or
    /// [`LOOK_CLOSER`].
    pub detect_look: AtomicU64,
    /// Frames per second the source should deliver (`analytics_fps`); 0 when every frame is
    /// analysed, and the rate is the camera's.
    pub expected_fps: u32,
    /// When the last frame arrived and when the supervisor last showed it was alive, as
    /// milliseconds since [`clock_origin`]; 0 for never.
    last_frame_ms: AtomicU64,
    supervisor_beat_ms: AtomicU64,
    /// No frame for this long and a streaming camera is stalled, milliseconds.
    no_frames_timeout_ms: AtomicU64,
    /// The connection quality graded at the last status.
    quality: Mutex<quality::Quality>,
    state: Mutex<SourceState>,
    /// When recent reconnects and stalls happened, for the connection quality.
    troubles: Mutex<VecDeque<Instant>>,
}

impl CameraHealth {
    pub fn new(camera: &str, expected_fps: u32) -> Arc<CameraHealth> {
        Arc::new(CameraHealth {
            camera: camera.to_string(),
            frames_in: AtomicU64::new(0),
            frames_analysed: AtomicU64::new(0),
            frames_skipped: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            detect_errors: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            crossings: AtomicU64::new(0),
            violations: AtomicU64::new(0),
            fire_messages: AtomicU64::new(0),
            inference_ms: Histogram::new(INFERENCE_BUCKETS_MS),
            abandoned_pipelines: AtomicU64::new(0),
            abandoned_held: AtomicU64::new(0),
            detect_look: AtomicU64::new(LOOK_AS_SET),
            expected_fps,
            last_frame_ms: AtomicU64::new(0),
            supervisor_beat_ms: AtomicU64::new(now_ms()),
            no_frames_timeout_ms: AtomicU64::new(DEFAULT_NO_FRAMES_TIMEOUT.as_millis() as u64),
            quality: Mutex::new(quality::Quality::Down),
            state: Mutex::new(SourceState::Starting),
            troubles: Mutex::new(VecDeque::new()),
        })
    }

    /// Counts a pipeline rebuild (and a stall, when the no-frames watchdog caused it).
    pub fn reconnected(&self, stalled: bool) {
        Self::count(&self.reconnects);
        if stalled {
            Self::count(&self.stalls);
        }
        let mut troubles = self.troubles.lock().unwrap_or_else(|p| p.into_inner());
        troubles.push_back(Instant::now());
        while troubles.front().is_some_and(|t| t.elapsed() > quality::WINDOW) {
            troubles.pop_front();
        }
    }

    pub fn quality(&self) -> quality::Quality {
        *self.quality.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Grades the connection from the rate the source delivered since the last look.
    pub fn grade(&self, fps_in: Option<f64>) -> quality::Quality {
        let grade = quality::Quality::grade(&self.state(), fps_in, self.expected_fps, self.recent_troubles());
        *self.quality.lock().unwrap_or_else(|p| p.into_inner()) = grade;
        grade
    }

    /// Reconnects and stalls within the last [`quality::WINDOW`].
    pub fn recent_troubles(&self) -> usize {
        self.troubles.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|t| t.elapsed() <= quality::WINDOW).count()
    }

    /// The camera's state as reported (status, stats, metrics, `/healthz`): the supervisor's,
    /// except that a camera it calls streaming which has delivered no frame for
    /// `no_frames_timeout_s` is stalled. This never waits on the supervisor, which may be stuck.
    pub fn state(&self) -> SourceState {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match state {
            SourceState::Streaming if !self.delivering() => {
                SourceState::Stalled { reason: format!("no frame for {} s", Duration::from_millis(self.since_ms(&self.last_frame_ms)).as_secs()) }
            }
            state => state,
        }
    }

    /// Milliseconds since the instant held in `at` (since the start when never set).
    fn since_ms(&self, at: &AtomicU64) -> u64 {
        now_ms().saturating_sub(at.load(Ordering::Relaxed))
    }

    /// Counts a frame from the source, and when it came.
    pub fn frame_in(&self) {
        Self::count(&self.frames_in);
        self.last_frame_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Whether a frame came within `no_frames_timeout_s`.
    pub fn delivering(&self) -> bool {
        self.last_frame_ms.load(Ordering::Relaxed) > 0 && self.since_ms(&self.last_frame_ms) < self.no_frames_timeout_ms.load(Ordering::Relaxed)
    }

    pub fn set_no_frames_timeout(&self, timeout: Duration) {
        self.no_frames_timeout_ms.store(timeout.as_millis() as u64, Ordering::Relaxed);
    }

    /// The supervisor shows it is alive (it does so at least every [`SUPERVISOR_BEAT`]).
    pub fn beat(&self) {
        self.supervisor_beat_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Whether the supervisor has shown it is alive within [`SUPERVISOR_STUCK_AFTER`].
    pub fn supervisor_alive(&self) -> bool {
        self.since_ms(&self.supervisor_beat_ms) < SUPERVISOR_STUCK_AFTER.as_millis() as u64
    }

    /// Whether the camera holds more pipelines left behind than [`MAX_ABANDONED_PIPELINES`]:
    /// their threads and memory stay until the agent restarts.
    pub fn too_many_abandoned(&self) -> bool {
        Self::get(&self.abandoned_held) > MAX_ABANDONED_PIPELINES
    }

    /// What is wrong with the camera for the service manager's watchdog, if anything: a
    /// streaming camera without frames, a stuck supervisor, too many pipelines left behind.
    pub fn trouble(&self) -> Option<String> {
        if self.too_many_abandoned() {
            return Some(format!("camera {}: {} pipelines left behind (limit {MAX_ABANDONED_PIPELINES}): restart the agent", self.camera, Self::get(&self.abandoned_held)));
        }
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let finished = matches!(state, SourceState::Ended | SourceState::Stopped | SourceState::Error { .. });
        if !finished && !self.supervisor_alive() {
            return Some(format!("camera {}: its supervisor has not answered for over {} s", self.camera, SUPERVISOR_STUCK_AFTER.as_secs()));
        }
        None
    }

    pub fn set_state(&self, state: SourceState) {
        let mut current = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if *current != state {
            tracing::info!(camera = %self.camera, state = ?state, "source state");
            *current = state;
        }
    }

    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }


    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A supervisor shows it is alive at least this often, however long GStreamer takes.
pub const SUPERVISOR_BEAT: Duration = Duration::from_millis(100);
/// A supervisor that has not shown it is alive for this long is stuck: longer than any wait it
/// makes (a teardown's deadline, the longest backoff's slices).
pub const SUPERVISOR_STUCK_AFTER: Duration = Duration::from_secs(15);
/// Pipelines left behind (state changes that hung and have not ended since) a camera may hold
/// before the agent asks to be restarted: each holds threads and buffers (about 3 threads, 11
/// file descriptors and 12 MB, measured by the soak bench) that only a restart frees.
pub const MAX_ABANDONED_PIPELINES: u64 = 5;
/// A camera's `no_frames_timeout_s` until its source says otherwise.
const DEFAULT_NO_FRAMES_TIMEOUT: Duration = Duration::from_secs(10);

/// The instant the health clocks count from.
fn clock_origin() -> Instant {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Milliseconds since [`clock_origin`], at least 1 (0 means never).
fn now_ms() -> u64 {
    clock_origin().elapsed().as_millis() as u64 + 1
}

/// The agent's own health: what the publisher knows of the outbox and the broker, read by the
/// periodic `stats` message.
#[derive(Debug)]
pub struct AgentHealth {
    pub outbox_messages: AtomicU64,
    pub outbox_bytes: AtomicU64,
    /// Messages dropped from a full outbox since the start: counts and status, evidence, events.
    pub outbox_dropped: [AtomicU64; 3],
    pub mqtt_connected: AtomicBool,
    /// Messages from the broker refused (oversized, malformed, on an unexpected topic).
    pub messages_refused: AtomicU64,
    /// Messages lost since the start because neither the disk nor memory could hold them:
    /// counts and status, images, events (as `outbox_dropped`).
    pub outbox_lost: [AtomicU64; 3],
    /// Evidence images that could not be kept for the `evidence` command.
    pub evidence_lost: AtomicU64,
    /// Each storage whose last write failed, with why (gone once writes work again): the
    /// outbox, the evidence archive.
    disk_full: Mutex<std::collections::BTreeMap<&'static str, String>>,
    /// The current connection's sequence number (as in the `status` messages).
    pub mqtt_connection_seq: AtomicU64,
    /// From the arrival of the frame an event was seen in to its publishing (handed to the
    /// broker connection after the outbox, or printed).
    pub event_latency_ms: Histogram,
}

impl Default for AgentHealth {
    fn default() -> AgentHealth {
        AgentHealth {
            outbox_messages: AtomicU64::new(0),
            outbox_bytes: AtomicU64::new(0),
            outbox_dropped: Default::default(),
            mqtt_connected: AtomicBool::new(false),
            messages_refused: AtomicU64::new(0),
            outbox_lost: Default::default(),
            evidence_lost: AtomicU64::new(0),
            disk_full: Mutex::new(Default::default()),
            mqtt_connection_seq: AtomicU64::new(0),
            event_latency_ms: Histogram::new(LATENCY_BUCKETS_MS),
        }
    }
}

impl AgentHealth {
    pub fn set(counter: &AtomicU64, value: u64) {
        counter.store(value, Ordering::Relaxed);
    }

    /// Why writes fail, storage by storage (`; ` between them), if any do.
    pub fn disk_full(&self) -> Option<String> {
        let failing = self.disk_full.lock().unwrap_or_else(|p| p.into_inner());
        (!failing.is_empty()).then(|| failing.values().cloned().collect::<Vec<_>>().join("; "))
    }

    /// Whether the last write to `storage` failed.
    pub fn storage_failing(&self, storage: &str) -> bool {
        self.disk_full.lock().unwrap_or_else(|p| p.into_inner()).contains_key(storage)
    }

    /// Records that a write to `storage` failed (`Some(why)`) or works again (`None`); logged when
    /// that changes.
    pub fn set_disk_full(&self, storage: &'static str, failure: Option<String>) {
        let mut failing = self.disk_full.lock().unwrap_or_else(|p| p.into_inner());
        match failure {
            Some(why) if !failing.contains_key(storage) => {
                tracing::error!("{storage}: cannot write ({why}); what is lost is counted");
                failing.insert(storage, why);
            }
            None if failing.remove(storage).is_some() => tracing::info!("{storage}: writes work again"),
            _ => {}
        }
    }

}

/// Names of the outbox's drop classes, in the order of `AgentHealth::outbox_dropped` and
/// `outbox_lost` (a message's `MessageKind::drop_priority` is its index).
pub const DROP_CLASSES: [&str; 3] = ["counts_status", "images", "events"];

/// The drop class of a message of drop priority `priority`.
pub fn drop_class(priority: i64) -> usize {
    priority.clamp(0, DROP_CLASSES.len() as i64 - 1) as usize
}

/// Upper bounds of the inference time buckets, milliseconds.
pub const INFERENCE_BUCKETS_MS: &[f64] = &[5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0, 250.0, 500.0];
/// Upper bounds of the event latency buckets (frame arrival to publishing), milliseconds.
pub const LATENCY_BUCKETS_MS: &[f64] = &[10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 10000.0];

/// A lock-free histogram of durations, in milliseconds (Prometheus semantics: cumulative
/// buckets are computed when read).
#[derive(Debug)]
pub struct Histogram {
    pub bounds: &'static [f64],
    /// Observations per bucket, the last one for everything above the largest bound.
    buckets: Vec<AtomicU64>,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram { bounds, buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(), sum_us: AtomicU64::new(0) }
    }

    pub fn observe(&self, took: Duration) {
        let ms = took.as_secs_f64() * 1000.0;
        let i = self.bounds.iter().position(|&bound| ms <= bound).unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Cumulative counts per bound (the last is the total), and the sum in milliseconds.
    pub fn read(&self) -> (Vec<u64>, f64) {
        let mut total = 0;
        let cumulative = self.buckets.iter().map(|b| {
            total += b.load(Ordering::Relaxed);
            total
        });
        (cumulative.collect(), self.sum_us.load(Ordering::Relaxed) as f64 / 1000.0)
    }
}

/// Everything the metrics endpoint and the watchdog read: the agent's health and each running
/// camera's (replaced as cameras come and go on reload).
#[derive(Debug, Default)]
pub struct SiteHealth {
    pub agent: Arc<AgentHealth>,
    cameras: Mutex<Vec<Arc<CameraHealth>>>,
    /// Turns of the analysis loop: it stops growing only when that thread is stuck.
    pub analysis_turns: AtomicU64,
}

impl SiteHealth {
    pub fn cameras(&self) -> Vec<Arc<CameraHealth>> {
        self.cameras.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_cameras(&self, cameras: Vec<Arc<CameraHealth>>) {
        *self.cameras.lock().unwrap_or_else(|p| p.into_inner()) = cameras;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streaming_camera_without_frames_is_stalled_and_one_with_too_many_pipelines_left_behind_is_trouble() {
        let camera = CameraHealth::new("gate", 5);
        camera.set_no_frames_timeout(Duration::from_secs(1));
        camera.set_state(SourceState::Streaming);
        camera.frame_in();
        assert_eq!(camera.state(), SourceState::Streaming);
        std::thread::sleep(Duration::from_millis(1_200));
        assert_eq!(camera.state().name(), "stalled", "whatever the supervisor last said");
        camera.frame_in();
        assert_eq!(camera.state(), SourceState::Streaming);
        assert_eq!(camera.trouble(), None);
        camera.abandoned_held.store(MAX_ABANDONED_PIPELINES, Ordering::Relaxed);
        assert_eq!(camera.trouble(), None);
        camera.abandoned_held.store(MAX_ABANDONED_PIPELINES + 1, Ordering::Relaxed);
        assert!(camera.trouble().is_some_and(|t| t.contains("6 pipelines left behind (limit 5)")), "{:?}", camera.trouble());
    }
}
