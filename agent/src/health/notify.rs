//! Telling the service manager how the agent is (systemd's notify protocol, through `sd-notify`):
//! `READY=1` once every camera has started or failed with a clear status, a one-line `STATUS=`,
//! `WATCHDOG=1` only while the pipeline makes progress and every camera is either delivering
//! frames or visibly being retried by a supervisor that is itself alive, `RELOADING=1` and
//! `STOPPING=1`. Without `NOTIFY_SOCKET` (not under systemd) every call does nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use super::{CameraHealth, SiteHealth, SourceState};

pub struct Notifier {
    site: Arc<SiteHealth>,
    ready: bool,
    status: String,
    /// Half the watchdog timeout systemd gave (`WatchdogSec=`), if it gave one.
    ping_every: Option<Duration>,
    last_ping: Option<Instant>,
    /// Analysis turns, and frames analysed per camera, at the last look.
    turns: u64,
    analysed: HashMap<String, u64>,
    /// Whether the last look found progress, and the troubles it found (to log changes only).
    progressing: bool,
    troubles: Vec<String>,
}

impl Notifier {
    pub fn new(site: Arc<SiteHealth>) -> Notifier {
        let ping_every = sd_notify::watchdog_enabled().map(|timeout| timeout / 2);
        if let Some(every) = ping_every {
            tracing::info!(ping_every_ms = every.as_millis() as u64, "systemd watchdog enabled");
        }
        Notifier { site, ready: false, status: String::new(), ping_every, last_ping: None, turns: 0, analysed: HashMap::new(), progressing: true, troubles: Vec::new() }
    }

    fn send(&self, states: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!("cannot notify the service manager: {e}");
        }
    }

    /// Called often by the site's main loop: readiness, status line and watchdog.
    pub fn tick(&mut self) {
        let cameras = self.site.cameras();
        let status = summary(&cameras, &self.site);
        if !self.ready && !cameras.iter().any(|c| c.state() == SourceState::Starting) {
            self.ready = true;
            self.status = status.clone();
            self.send(&[NotifyState::Ready, NotifyState::Status(&status)]);
        } else if self.ready && status != self.status {
            self.status = status.clone();
            self.send(&[NotifyState::Status(&status)]);
        }
        let Some(every) = self.ping_every else { return };
        if self.last_ping.is_some_and(|at| at.elapsed() < every) {
            return;
        }
        self.last_ping = Some(Instant::now());
        let turns = CameraHealth::get(&self.site.analysis_turns);
        // Frames looked at: analysed, or found still by the motion gate.
        let analysed: HashMap<String, u64> = cameras.iter().map(|c| (c.camera.clone(), CameraHealth::get(&c.frames_analysed) + CameraHealth::get(&c.frames_skipped))).collect();
        // A camera restarted by a reload counts afresh from 0: any camera's count growing (or a
        // new camera with frames) is progress.
        let frames_flow = analysed.iter().any(|(camera, &n)| n > self.analysed.get(camera).copied().unwrap_or(0));
        let streaming = cameras.iter().any(|c| matches!(c.state(), SourceState::Streaming | SourceState::Stalled { .. }));
        // A supervisor stuck in a call, or a camera that left too many pipelines behind, needs a
        // restart even while the other cameras keep the frames flowing.
        let troubles: Vec<String> = cameras.iter().filter_map(|c| c.trouble()).collect();
        // Progress: the analysis loop turns, and frames are analysed while a camera says it is
        // streaming. Cameras that are reconnecting are the supervisor's business, not a reason to
        // restart the agent; a stream that is open but silent is.
        let progress = turns > self.turns && (frames_flow || !streaming) && troubles.is_empty();
        self.turns = turns;
        self.analysed = analysed;
        if progress {
            self.send(&[NotifyState::Watchdog]);
        }
        if troubles != self.troubles {
            for trouble in &troubles {
                tracing::error!("{trouble}: watchdog pings withheld");
            }
            self.troubles = troubles;
        }
        if progress != self.progressing {
            self.progressing = progress;
            if progress {
                tracing::info!("progress again: watchdog pings resume");
            } else {
                tracing::warn!("no frame analysed while a camera is streaming: watchdog pings withheld");
            }
        }
    }

    /// The configuration is being reloaded; `READY=1` follows when the cameras have started.
    pub fn reloading(&mut self) {
        self.ready = false;
        let now = sd_notify::NotifyState::monotonic_usec_now();
        match now {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }
}

/// One line for `systemctl status`: cameras by state, the outbox and the broker.
fn summary(cameras: &[Arc<CameraHealth>], site: &SiteHealth) -> String {
    let mut by_state = std::collections::BTreeMap::new();
    for camera in cameras {
        *by_state.entry(camera.state().name()).or_insert(0) += 1;
    }
    let states: Vec<String> = by_state.iter().map(|(state, n)| format!("{n} {state}")).collect();
    let agent = &site.agent;
    let mqtt = if agent.mqtt_connected.load(std::sync::atomic::Ordering::Relaxed) { "connected" } else { "not connected" };
    format!("cameras: {}; outbox {} waiting; broker {mqtt}", states.join(", "), CameraHealth::get(&agent.outbox_messages))
}
