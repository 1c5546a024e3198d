//! Health stage: counters and state each camera exposes, read by the status messages, the
//! metrics endpoint, the service manager's watchdog and the summary at the end of a replay.
//! Written by the source and analysis threads without locks (a mutex guards only the state and
//! the recent reconnect times).

pub mod metrics;
pub mod notify;
pub mod quality;

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
            SourceState::Ended => "ended",
            SourceState::Error { .. } => "error",
            SourceState::Stopped => "stopped",
        }
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
    /// Frames per second the source should deliver (`analytics_fps`); 0 when every frame is
    /// analysed, and the rate is the camera's.
    pub expected_fps: u32,
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
            reconnects: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            crossings: AtomicU64::new(0),
            violations: AtomicU64::new(0),
            fire_messages: AtomicU64::new(0),
            inference_ms: Histogram::new(INFERENCE_BUCKETS_MS),
            expected_fps,
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

    pub fn state(&self) -> SourceState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
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

/// The agent's own health: what the publisher knows of the outbox and the broker, read by the
/// periodic `stats` message.
#[derive(Debug)]
pub struct AgentHealth {
    pub outbox_messages: AtomicU64,
    pub outbox_bytes: AtomicU64,
    /// Messages dropped from a full outbox since the start: counts and status, evidence, events.
    pub outbox_dropped: [AtomicU64; 3],
    pub mqtt_connected: AtomicBool,
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
            mqtt_connection_seq: AtomicU64::new(0),
            event_latency_ms: Histogram::new(LATENCY_BUCKETS_MS),
        }
    }
}

impl AgentHealth {
    pub fn set(counter: &AtomicU64, value: u64) {
        counter.store(value, Ordering::Relaxed);
    }
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
