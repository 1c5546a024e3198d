//! The analysis thread: frames from whichever camera has one, up to `parallel_frames` cameras'
//! frames at once, until the site closes its channel of new cameras and every source has closed.
//! Between frames it takes new cameras, hands signal controllers' messages to every camera,
//! carries out the IOC's commands, and publishes counts, camera status and `stats` when due.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, Sender, TryRecvError};

use super::CameraSummary;
use super::camera::CameraAnalysis;
use super::duties::SiteDuties;
use crate::events::Message;
use crate::analytics::signal::SignalState;
use crate::health::{CameraHealth, SiteHealth};
use crate::types::{CameraId, Frame};

/// How long the thread waits for a frame before it looks at its other duties again.
const WAKE_UP: Duration = Duration::from_millis(250);

/// What the site tells the analysis thread.
pub(super) enum Change {
    /// A camera whose source has started: its frames and its analysis. It replaces a camera of
    /// the same id (changed on reload), which is finished first.
    Add(Receiver<Frame>, Box<CameraAnalysis>),
    /// A camera whose source was left behind, still running: finish it without waiting for the
    /// end of its frames.
    Finish(CameraId),
}

pub(super) struct AnalysisLoop {
    settings: LoopSettings,
    /// Each running camera's frames, and its analysis at the same index.
    receivers: Vec<Receiver<Frame>>,
    cameras: Vec<CameraAnalysis>,
    finished: Vec<CameraSummary>,
    site_open: bool,
    /// The last message of each signal controller: a camera that starts later (or again, on a
    /// reload) learns the current phase from it.
    signal_phases: BTreeMap<String, Vec<u8>>,
    /// A change that woke the loop while no camera was running.
    woken_by: Option<Change>,
}

/// What the analysis loop is given by the site.
pub(super) struct LoopSettings {
    pub changes: Receiver<Change>,
    pub events: Sender<Message>,
    /// Signal controllers' messages and the IOC's commands, from the publisher.
    pub inbox: Receiver<(String, Vec<u8>)>,
    /// Counts and status are published this often (daemon); `None` in a replay.
    pub counts_interval: Option<Duration>,
    pub parallel_frames: usize,
    pub duties: SiteDuties,
    pub site: Arc<SiteHealth>,
}

impl AnalysisLoop {
    pub fn new(settings: LoopSettings) -> AnalysisLoop {
        AnalysisLoop { settings, receivers: Vec::new(), cameras: Vec::new(), finished: Vec::new(), site_open: true, signal_phases: BTreeMap::new(), woken_by: None }
    }

    /// Runs until the site is closed and every camera has finished; what each camera did.
    pub fn run(mut self) -> Vec<CameraSummary> {
        while self.site_open || !self.receivers.is_empty() {
            CameraHealth::count(&self.settings.site.analysis_turns);
            self.take_changes();
            self.take_inbox();
            match self.next_frame() {
                Some((i, Ok(frame))) => {
                    let mut ready = vec![(i, frame)];
                    ready.extend(more_ready(&self.receivers, i, self.settings.parallel_frames.saturating_sub(1)));
                    process_side_by_side(&mut self.cameras, ready);
                }
                // The source is gone: publish what this camera counted since the last interval.
                Some((i, Err(_))) => self.finish(i),
                None => {}
            }
            self.report_when_due();
        }
        self.finished
    }

    /// New cameras from the site; a closed channel means the site is stopping.
    fn take_changes(&mut self) {
        let mut incoming: Vec<Change> = self.woken_by.take().into_iter().collect();
        loop {
            match self.settings.changes.try_recv() {
                Ok(change) => incoming.push(change),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.site_open = false;
                    break;
                }
            }
        }
        for change in incoming {
            let (frames, mut analysis) = match change {
                Change::Add(frames, analysis) => (frames, analysis),
                Change::Finish(id) => {
                    if let Some(i) = self.cameras.iter().position(|s| s.id == id) {
                        self.finish(i);
                    }
                    continue;
                }
            };
            if let Some(i) = self.cameras.iter().position(|s| s.id == analysis.id) {
                self.finish(i);
            }
            for (topic, payload) in &self.signal_phases {
                analysis.hear(topic.clone(), payload.clone());
            }
            self.receivers.push(frames);
            self.cameras.push(*analysis);
        }
    }

    /// Commands are carried out now; signal phases go to every camera (one that cannot be read
    /// is refused, counted, and leaves the phase as it was).
    fn take_inbox(&mut self) {
        for (topic, payload) in self.settings.inbox.try_iter() {
            if self.settings.duties.is_command(&topic) {
                self.settings.duties.command(&topic, &payload, &self.cameras, &self.settings.events);
                continue;
            }
            if let Err(e) = SignalState::from_feed(&payload) {
                CameraHealth::count(&self.settings.duties.health.messages_refused);
                tracing::warn!(%topic, "signal message refused: {e}");
                continue;
            }
            for camera in &mut self.cameras {
                camera.hear(topic.clone(), payload.clone());
            }
            self.signal_phases.insert(topic, payload);
        }
    }

    /// The next frame of any camera (its index), or the end of a camera's frames; `None` when
    /// nothing came within [`WAKE_UP`].
    fn next_frame(&mut self) -> Option<(usize, Result<Frame, crossbeam_channel::RecvError>)> {
        let mut select = Select::new();
        for rx in &self.receivers {
            select.recv(rx);
        }
        if self.receivers.is_empty() && self.site_open {
            // Nothing to analyse yet: wake up for the next camera.
            select.recv(&self.settings.changes);
        }
        let op = select.select_timeout(WAKE_UP).ok()?;
        let i = op.index();
        match self.receivers.get(i) {
            Some(rx) => Some((i, op.recv(rx))),
            None => {
                self.woken_by = op.recv(&self.settings.changes).ok();
                None
            }
        }
    }

    /// Finishes camera `i`: what it counted since the last interval, its last status.
    fn finish(&mut self, i: usize) {
        self.receivers.swap_remove(i);
        let mut camera = self.cameras.swap_remove(i);
        if self.settings.counts_interval.is_some() {
            camera.report(true, &self.settings.events);
        }
        self.finished.push(camera.summary());
    }

    /// Counts, camera status and `stats`, each when due.
    fn report_when_due(&mut self) {
        if self.settings.counts_interval.is_some() {
            for camera in &mut self.cameras {
                camera.report(false, &self.settings.events);
            }
        }
        self.settings.duties.stats_if_due(Instant::now(), &self.cameras, self.finished.len() as u64, &self.settings.events);
    }
}

/// Up to `wanted` frames waiting on other cameras than `first`, one per camera, taking the
/// cameras after `first` in turn so that none starves.
fn more_ready(receivers: &[Receiver<Frame>], first: usize, wanted: usize) -> Vec<(usize, Frame)> {
    let count = receivers.len();
    (1..count).map(|offset| (first + offset) % count).filter_map(|i| receivers[i].try_recv().ok().map(|frame| (i, frame))).take(wanted).collect()
}

/// Processes frames of distinct cameras, each on its own thread (the detector has a session
/// for each); one frame is processed right here.
fn process_side_by_side(cameras: &mut [CameraAnalysis], mut ready: Vec<(usize, Frame)>) {
    if let [(i, frame)] = ready.as_slice() {
        cameras[*i].process(frame);
        return;
    }
    ready.sort_by_key(|(i, _)| *i);
    let mut frames = ready.into_iter().peekable();
    let mut work: Vec<(&mut CameraAnalysis, Frame)> = Vec::new();
    for (i, camera) in cameras.iter_mut().enumerate() {
        if let Some((_, frame)) = frames.next_if(|(j, _)| *j == i) {
            work.push((camera, frame));
        }
    }
    // Each slot is taken by whoever processes it: a lane thread, or this one when the first
    // slot's turn comes or a lane thread cannot be started (no frame is lost either way).
    let slots: Vec<Mutex<Option<(&mut CameraAnalysis, Frame)>>> = work.into_iter().map(|w| Mutex::new(Some(w))).collect();
    let process = |slot: &Mutex<Option<(&mut CameraAnalysis, Frame)>>| {
        if let Some((camera, frame)) = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() {
            camera.process(&frame);
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
