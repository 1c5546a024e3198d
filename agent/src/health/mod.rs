//! Health stage: counters and state each camera exposes, read by the status reporting and the
//! summary at the end of a replay. Written by the source and analysis threads without locks.

use std::sync::Arc;
use std::sync::Mutex;
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

#[derive(Debug)]
pub struct CameraHealth {
    pub camera: String,
    /// Frames delivered by GStreamer after rate limiting.
    pub frames_in: AtomicU64,
    /// Frames the detector ran on.
    pub frames_analysed: AtomicU64,
    /// Frames dropped because analysis fell behind.
    pub frames_dropped: AtomicU64,
    /// Pipeline rebuilds after errors or stalls.
    pub reconnects: AtomicU64,
    /// Times the no-frames watchdog fired.
    pub stalls: AtomicU64,
    state: Mutex<SourceState>,
}

impl CameraHealth {
    pub fn new(camera: &str) -> Arc<CameraHealth> {
        Arc::new(CameraHealth {
            camera: camera.to_string(),
            frames_in: AtomicU64::new(0),
            frames_analysed: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            state: Mutex::new(SourceState::Starting),
        })
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
#[derive(Debug, Default)]
pub struct AgentHealth {
    pub outbox_messages: AtomicU64,
    pub outbox_bytes: AtomicU64,
    /// Messages dropped from a full outbox since the start: counts and status, evidence, events.
    pub outbox_dropped: [AtomicU64; 3],
    pub mqtt_connected: AtomicBool,
    /// The current connection's sequence number (as in the `status` messages).
    pub mqtt_connection_seq: AtomicU64,
}

impl AgentHealth {
    pub fn set(counter: &AtomicU64, value: u64) {
        counter.store(value, Ordering::Relaxed);
    }
}
