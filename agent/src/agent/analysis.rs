//! The analysis thread: frames from whichever camera has one, analysed on `parallel_frames`
//! persistent lanes (threads; the detector has as many ONNX Runtime sessions), until the site closes its channel
//! of new cameras and every source has closed. A camera's analysis goes to a free lane with its
//! frame and comes back when done, so each lane takes the next frame as soon as it is free,
//! rather than rounds of frames waiting for the slowest; a camera is on one lane at a time, so
//! its frames stay in order. Between frames the thread takes new cameras, hands signal
//! controllers' messages to every camera (held for a camera out on a lane until it returns),
//! carries out the IOC's commands, and publishes counts, camera status and `stats` when due
//! (bringing the cameras home first where a duty needs them all).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, Sender, TryRecvError};

use super::CameraSummary;
use super::camera::CameraAnalysis;
use super::duties::SiteDuties;
use crate::events::Message;
use crate::analytics::signal::SignalState;
use crate::health::{CameraHealth, SiteHealth, SourceState};
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
    /// A camera a reload removed: `stats` no longer lists its last state.
    Forget(CameraId),
}

pub(super) struct AnalysisLoop {
    settings: LoopSettings,
    /// Each running camera's id and frames, and its analysis at the same index: `None` while it
    /// is out on a lane.
    ids: Vec<CameraId>,
    receivers: Vec<Receiver<Frame>>,
    cameras: Vec<Option<Box<CameraAnalysis>>>,
    /// Lane threads, when frames are analysed several at once.
    lanes: Option<Lanes>,
    /// Signal messages for cameras that were out on a lane, the latest per topic (as
    /// [`CameraAnalysis::hear`] keeps them), handed over on their return.
    heard_away: BTreeMap<CameraId, BTreeMap<String, Vec<u8>>>,
    /// What each finished camera did: its last run, one per id.
    finished: Vec<CameraSummary>,
    /// The last state of each camera finished when its source had ended (a file played to its
    /// end) or could not run, for `stats`, until a reload brings back or removes its id; not
    /// those a reload replaced or removed, which `finished` holds too.
    ended: BTreeMap<CameraId, &'static str>,
    /// Cameras a reload removed while their frames were still being analysed: not put in
    /// `ended` when they finish.
    forgotten: BTreeSet<CameraId>,
    site_open: bool,
    /// The last message of each signal controller: a camera that starts later (or again, on a
    /// reload) learns the current phase from it.
    signal_phases: BTreeMap<String, Vec<u8>>,
    /// A change that woke the loop while no camera was running.
    woken_by: Option<Change>,
}

/// What a lane sends back: the camera, or the panic that its analysis raised (resumed on the
/// loop's thread, so that the site sees the analysis thread fail as it did before lanes, rather
/// than the loop waiting forever for a camera that will never return).
type Returned = std::thread::Result<Box<CameraAnalysis>>;

/// Threads that each analyse one camera's frame at a time and send the camera back.
struct Lanes {
    work: Sender<(Box<CameraAnalysis>, Frame)>,
    done: Receiver<Returned>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Lanes {
    /// `count` lane threads, or `None` when fewer than two would start (frames are then
    /// analysed on the loop's own thread).
    fn start(count: usize) -> Option<Lanes> {
        if count < 2 {
            return None;
        }
        let (work, work_rx) = crossbeam_channel::unbounded::<(Box<CameraAnalysis>, Frame)>();
        let (done_tx, done) = crossbeam_channel::unbounded::<Returned>();
        let threads: Vec<_> = (0..count)
            .filter_map(|n| {
                let (work_rx, done_tx) = (work_rx.clone(), done_tx.clone());
                let lane = move || {
                    for (mut camera, frame) in work_rx {
                        let returned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                            camera.process(&frame);
                            camera
                        }));
                        if done_tx.send(returned).is_err() {
                            return;
                        }
                    }
                };
                std::thread::Builder::new().name(format!("analysis-lane-{n}")).spawn(lane).map_err(|e| tracing::warn!("cannot start analysis lane {n}: {e}")).ok()
            })
            .collect();
        if threads.len() < 2 {
            // The lanes that did start end with the work channel.
            return None;
        }
        Some(Lanes { work, done, threads })
    }

    /// Lets the lanes finish their work and end.
    fn stop(self) {
        drop(self.work);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
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

/// What woke the loop. Moved once per frame and matched at once: boxing the frame would only
/// add an allocation a frame.
#[allow(clippy::large_enum_variant)]
enum Event {
    Frame(usize, Frame),
    /// Camera `i`'s source is gone.
    Ended(usize),
    /// A camera came back from its lane (or its analysis panicked there).
    Home(Returned),
}

impl AnalysisLoop {
    pub fn new(settings: LoopSettings) -> AnalysisLoop {
        let lanes = Lanes::start(settings.parallel_frames);
        AnalysisLoop {
            settings,
            ids: Vec::new(),
            receivers: Vec::new(),
            cameras: Vec::new(),
            lanes,
            heard_away: BTreeMap::new(),
            finished: Vec::new(),
            ended: BTreeMap::new(),
            forgotten: BTreeSet::new(),
            site_open: true,
            signal_phases: BTreeMap::new(),
            woken_by: None,
        }
    }

    /// Runs until the site is closed and every camera has finished; what each camera did.
    pub fn run(mut self) -> Vec<CameraSummary> {
        while self.site_open || !self.receivers.is_empty() {
            CameraHealth::count(&self.settings.site.analysis_turns);
            self.take_changes();
            self.take_inbox();
            match self.next_event() {
                Some(Event::Frame(i, frame)) => self.analyse(i, frame),
                // The source is gone: publish what this camera counted since the last interval.
                Some(Event::Ended(i)) => self.finish(i),
                Some(Event::Home(camera)) => self.welcome(camera),
                None => {}
            }
            self.end_lost_runs();
            self.report_when_due();
        }
        if let Some(lanes) = self.lanes.take() {
            lanes.stop();
        }
        self.finished
    }

    /// Camera `i`'s frame: on a lane, or here when there are none.
    fn analyse(&mut self, i: usize, frame: Frame) {
        let camera = self.cameras[i].take().expect("frames are taken only from cameras at home");
        let (mut camera, frame) = match &self.lanes {
            Some(lanes) => match lanes.work.send((camera, frame)) {
                Ok(()) => return,
                // The lanes are gone (cannot happen while the loop holds them): analyse here.
                Err(crossbeam_channel::SendError(back)) => back,
            },
            None => (camera, frame),
        };
        camera.process(&frame);
        self.cameras[i] = Some(camera);
    }

    /// A camera back from its lane takes its place again, with the signal messages heard while
    /// it was away (it cannot have been finished meanwhile: finishing waits for it). A panic in
    /// its analysis is raised here.
    fn welcome(&mut self, returned: Returned) {
        let mut camera = returned.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        for (topic, payload) in self.heard_away.remove(&camera.id).unwrap_or_default() {
            camera.hear(topic, payload);
        }
        if let Some(i) = self.ids.iter().position(|id| *id == camera.id) {
            self.cameras[i] = Some(camera);
        }
    }

    /// Waits until camera `i` is back from its lane (taking home whichever cameras return
    /// meanwhile).
    fn bring_home(&mut self, i: usize) {
        while self.cameras[i].is_none() {
            let Some(lanes) = &self.lanes else { return };
            match lanes.done.recv() {
                Ok(returned) => self.welcome(returned),
                Err(_) => return,
            }
        }
    }

    /// Brings every camera home, for a duty that needs them all.
    fn gather(&mut self) {
        for i in 0..self.cameras.len() {
            self.bring_home(i);
        }
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
                    self.ended.remove(&id);
                    if let Some(i) = self.ids.iter().position(|s| *s == id) {
                        self.finish(i);
                    }
                    continue;
                }
                Change::Forget(id) => {
                    self.ended.remove(&id);
                    if self.ids.contains(&id) {
                        self.forgotten.insert(id);
                    }
                    continue;
                }
            };
            if let Some(i) = self.ids.iter().position(|s| *s == analysis.id) {
                self.finish(i);
            }
            self.ended.remove(&analysis.id);
            self.forgotten.remove(&analysis.id);
            for (topic, payload) in &self.signal_phases {
                analysis.hear(topic.clone(), payload.clone());
            }
            self.ids.push(analysis.id.clone());
            self.receivers.push(frames);
            self.cameras.push(Some(analysis));
        }
    }

    /// Commands are carried out now; signal phases go to every camera (one that cannot be read
    /// is refused, counted, and leaves the phase as it was).
    fn take_inbox(&mut self) {
        let inbox: Vec<(String, Vec<u8>)> = self.settings.inbox.try_iter().collect();
        for (topic, payload) in inbox {
            if self.settings.duties.is_command(&topic) {
                self.gather();
                let cameras: Vec<&CameraAnalysis> = self.cameras.iter().flatten().map(|c| &**c).collect();
                self.settings.duties.command(&topic, &payload, &cameras, &self.settings.events);
                continue;
            }
            if let Err(e) = SignalState::from_feed(&payload) {
                CameraHealth::count(&self.settings.duties.health.messages_refused);
                tracing::warn!(%topic, "signal message refused: {e}");
                continue;
            }
            for (id, camera) in self.ids.iter().zip(&mut self.cameras) {
                match camera {
                    Some(camera) => camera.hear(topic.clone(), payload.clone()),
                    None => {
                        self.heard_away.entry(id.clone()).or_default().insert(topic.clone(), payload.clone());
                    }
                }
            }
            self.signal_phases.insert(topic, payload);
        }
    }

    /// The next frame of a camera at home (its index), the end of a camera's frames, or a
    /// camera back from its lane; `None` when nothing came within [`WAKE_UP`].
    fn next_event(&mut self) -> Option<Event> {
        let mut select = Select::new();
        let home: Vec<usize> = (0..self.receivers.len()).filter(|&i| self.cameras[i].is_some()).collect();
        for &i in &home {
            select.recv(&self.receivers[i]);
        }
        let lanes = self.lanes.as_ref().filter(|_| home.len() < self.cameras.len());
        let done_at = lanes.map(|lanes| select.recv(&lanes.done));
        if self.receivers.is_empty() && self.site_open {
            // Nothing to analyse yet: wake up for the next camera.
            select.recv(&self.settings.changes);
        }
        let op = select.select_timeout(WAKE_UP).ok()?;
        let index = op.index();
        if let Some(&i) = home.get(index) {
            return Some(match op.recv(&self.receivers[i]) {
                Ok(frame) => Event::Frame(i, frame),
                Err(_) => Event::Ended(i),
            });
        }
        if let (Some(at), Some(lanes)) = (done_at, lanes)
            && at == index
        {
            return op.recv(&lanes.done).ok().map(Event::Home);
        }
        self.woken_by = op.recv(&self.settings.changes).ok();
        None
    }

    /// Ends the run of each camera at home whose source lost its stream, once every frame of the
    /// run is analysed: what the run's end confirms (a crossing it cut short) is published now,
    /// as of its last frame and in that frame's counts interval, not when the camera comes back,
    /// perhaps hours later. The source's state is read before the queue, so that the frames
    /// the run sent before its teardown are in the queue already. It runs on this thread: a
    /// plate read for such a crossing holds the other cameras that long, once per reconnect.
    fn end_lost_runs(&mut self) {
        for (camera, frames) in self.cameras.iter_mut().zip(&self.receivers) {
            if let Some(camera) = camera
                && camera.run_lost()
                && frames.is_empty()
            {
                camera.end();
            }
        }
    }

    /// Finishes camera `i` (once it is back from its lane): what it counted since the last
    /// interval, its last status.
    fn finish(&mut self, i: usize) {
        self.bring_home(i);
        self.ids.swap_remove(i);
        self.receivers.swap_remove(i);
        let Some(mut camera) = self.cameras.swap_remove(i) else { return };
        let state = camera.health.state();
        if !self.forgotten.remove(&camera.id) && matches!(state, SourceState::Ended | SourceState::Error { .. }) {
            self.ended.insert(camera.id.clone(), state.name());
        }
        camera.end();
        if self.settings.counts_interval.is_some() {
            camera.report(true, &self.settings.events);
        }
        // The last run of each camera id, so the summary at the end shows what a camera changed
        // by a reload counted since (what it counted before went out in its counts messages): a
        // daemon reloaded every hour for months would otherwise keep one for every change.
        let summary = camera.summary();
        self.finished.retain(|s| s.id != summary.id);
        self.finished.push(summary);
    }

    /// Counts and camera status of the cameras at home (those on a lane report once back, on
    /// the next turn), and `stats`, each when due.
    fn report_when_due(&mut self) {
        if self.settings.counts_interval.is_some() {
            for camera in self.cameras.iter_mut().flatten() {
                camera.report(false, &self.settings.events);
            }
        }
        let now = Instant::now();
        if self.settings.duties.stats_due(now) {
            self.gather();
            let cameras: Vec<&CameraAnalysis> = self.cameras.iter().flatten().map(|c| &**c).collect();
            self.settings.duties.stats(now, &cameras, &self.ended, &self.settings.events);
        }
    }
}
