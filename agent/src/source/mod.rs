//! Source stage: one GStreamer pipeline per camera, decoding its stream and handing scaled BGR
//! frames at the analytics rate to the detector through a bounded queue.
//!
//! A supervisor thread per camera runs the source as an explicit state machine (see
//! [`SourceState`]): start, stream, and on an error, an end of a live stream or no frame for
//! `no_frames_timeout_s`, tear down and rebuild after an exponential backoff (1 s doubling to
//! 30 s). A file source ends cleanly at its end of stream.
//!
//! The supervisor never waits on a GStreamer state change it does not control: `rtspsrc` can
//! deadlock in its teardown (a state change waiting on a streaming task that waits on it). Each
//! change runs on a helper thread with a deadline ([`STATE_CHANGE_DEADLINE`]); a pipeline that
//! misses it is abandoned (kept referenced, counted in the camera's health, logged with the
//! elements that had not got there) and a fresh one is built on the next attempt. The supervisor
//! shows it is alive ([`CameraHealth::beat`]) at least every [`SUPERVISOR_BEAT`] throughout.

mod left_behind;
mod native;
mod pipeline;
mod queue;

pub use native::NativeFrame;

pub use pipeline::{PipelineTemplate, TemplateError};
pub use queue::{FrameSender, Overflow, frame_queue};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use crate::check::is_url;
use crate::health::{CameraHealth, SUPERVISOR_BEAT, SourceState};
use crate::types::{CameraId, Frame};
use left_behind::LeftBehind;

const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// How long a pipeline's state change (start, teardown) may take before the pipeline is
/// abandoned. A healthy `rtspsrc` tears down in well under a second, even with a dead server.
pub const STATE_CHANGE_DEADLINE: Duration = Duration::from_secs(5);

/// The frame's position in the stream: its PTS, else its index at the nominal frame rate (some
/// AVI streams decode without PTS; their DTS is in decode order, useless with B-frames).
fn stream_time(buffer: &gst::BufferRef, fps: gst::Fraction, index: u64) -> Duration {
    if let Some(t) = buffer.pts() {
        return Duration::from_nanos(t.nseconds());
    }
    let (num, den) = (fps.numer().max(1) as u64, fps.denom().max(1) as u64);
    Duration::from_nanos(index * den * 1_000_000_000 / num)
}

/// Decodes frame `index` (from 0) of a video file, scaled to `caps` as a camera's frames are: one
/// real frame for tools, benchmarks and tests, without a supervisor. `gst::init` must have run.
pub fn decode_frame(path: &std::path::Path, index: usize, caps: &gst::Caps) -> Result<Frame, String> {
    let template = PipelineTemplate { name: "still".into(), body: "{source} ! decodebin3 ! {output}".into() };
    let location = path.to_string_lossy();
    let pipeline = gst::parse::launch(&template.describe(&location, false))
        .map_err(|e| e.to_string())?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_string())?;
    let (sink, native) = pipeline::configure(&pipeline, 0, caps, false)?;
    pipeline.set_state(gst::State::Playing).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut sample = None;
    let mut native_frame = None;
    for _ in 0..=index {
        let pulled = sink.pull_sample().map_err(|_| format!("{} has fewer than {} frames", path.display(), index + 1))?;
        native_frame = native::take(&native, pulled.buffer().and_then(|b| b.pts()));
        sample = Some(pulled);
    }
    let _ = pipeline.set_state(gst::State::Null);
    let sample = sample.expect("the loop ran at least once");
    let caps = sample.caps().ok_or("a sample without caps")?;
    let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| e.to_string())?;
    let buffer = sample.buffer_owned().ok_or("a sample without a buffer")?;
    Ok(Frame {
        camera: "file".into(),
        seq: index as u64,
        pts: stream_time(&buffer, info.fps(), index as u64),
        source_run: 0,
        width: info.width(),
        height: info.height(),
        stride: info.stride()[0] as usize,
        buffer,
        native: native_frame,
        arrived: std::time::Instant::now(),
    })
}

/// Everything a camera's supervisor needs to build its pipeline.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub camera: CameraId,
    /// URL or absolute file path.
    pub location: String,
    pub analytics_fps: u32,
    pub template: PipelineTemplate,
    /// What the model needs from the appsink.
    pub caps: gst::Caps,
    pub no_frames_timeout: Duration,
    /// Play files at their own speed (a daemon watching a recording) rather than as fast as possible.
    pub realtime: bool,
    /// Threads for a software decoder; 0 lets it pick (one per core).
    pub decoder_threads: u32,
    /// Decode key frames alone while they come often enough for the analysis rate.
    pub key_frames_only: bool,
}

/// How one run of the pipeline ended.
#[derive(Debug)]
enum RunEnd {
    StopRequested,
    EndOfStream,
    Failed(String),
    NoFrames,
    /// The pipeline did not start in time and was left behind.
    StartHung,
}

/// A running camera source; dropping the sender side of its queue ends the detector's input.
pub struct CameraSource {
    thread: JoinHandle<()>,
}

impl CameraSource {
    /// Starts the supervisor thread. Frames go to `sender`; `stop` ends the source.
    pub fn spawn(settings: SourceSettings, sender: FrameSender, health: Arc<CameraHealth>, stop: Arc<AtomicBool>) -> std::io::Result<CameraSource> {
        let thread = std::thread::Builder::new()
            .name(format!("source-{}", settings.camera))
            .spawn(move || Supervisor { settings, sender: Arc::new(sender), health, stop, seq: Arc::new(AtomicU64::new(0)), retired: Arc::default() }.run())?;
        Ok(CameraSource { thread })
    }

    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the supervisor to end, at most `deadline`; `false` when it did not (it is left
    /// behind).
    pub fn join(self, deadline: Duration) -> bool {
        let until = Instant::now() + deadline;
        while !self.thread.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        let finished = self.thread.is_finished();
        if finished {
            let _ = self.thread.join();
        }
        finished
    }
}

/// A pipeline's state change did not finish within [`STATE_CHANGE_DEADLINE`].
struct Hung;

/// What a state change's helper thread reports when it is done.
type Changed = Result<gst::StateChangeSuccess, gst::StateChangeError>;

struct Supervisor {
    settings: SourceSettings,
    /// The camera's only sender: pipelines reach it weakly, so a pipeline left behind does not
    /// keep the camera's queue open once the supervisor has ended.
    sender: Arc<FrameSender>,
    health: Arc<CameraHealth>,
    stop: Arc<AtomicBool>,
    seq: Arc<AtomicU64>,
    /// Set when the current pipeline is left behind: its frames, should it deliver any later,
    /// are no longer this camera's.
    retired: Arc<AtomicBool>,
}

impl Supervisor {
    fn is_rtsp(&self) -> bool {
        is_url(&self.settings.location)
    }

    fn run(mut self) {
        self.health.set_no_frames_timeout(self.settings.no_frames_timeout);
        let mut backoff = BACKOFF_START;
        let mut source_run = 0u32;
        loop {
            self.health.beat();
            self.release_abandoned();
            if self.stop.load(Ordering::Relaxed) {
                self.finish(SourceState::Stopped);
                return;
            }
            self.health.set_state(SourceState::Starting);
            let pipeline = match self.build(source_run) {
                Ok(p) => p,
                Err(reason) => {
                    tracing::error!(camera = %self.settings.camera, "{reason}");
                    self.finish(SourceState::Error { reason });
                    return;
                }
            };
            let frames_before = CameraHealth::get(&self.health.frames_in);
            let end = self.watch(&pipeline);
            // A pipeline whose start hung is left behind already.
            if !matches!(end, RunEnd::StartHung) {
                self.teardown(pipeline);
            }
            if CameraHealth::get(&self.health.frames_in) > frames_before {
                backoff = BACKOFF_START;
            }
            let stalled = matches!(end, RunEnd::NoFrames);
            let reason = match end {
                RunEnd::StopRequested => {
                    self.finish(SourceState::Stopped);
                    return;
                }
                RunEnd::EndOfStream if !self.is_rtsp() => {
                    self.finish(SourceState::Ended);
                    return;
                }
                // Replaying a file again would count its vehicles again.
                RunEnd::Failed(reason) if !self.is_rtsp() => {
                    tracing::error!(camera = %self.settings.camera, "{reason}");
                    self.finish(SourceState::Error { reason });
                    return;
                }
                RunEnd::EndOfStream => "the stream ended".to_string(),
                RunEnd::Failed(reason) => reason,
                RunEnd::NoFrames => format!("no frame for {} s", self.settings.no_frames_timeout.as_secs()),
                RunEnd::StartHung => format!("the pipeline did not start within {} s", STATE_CHANGE_DEADLINE.as_secs()),
            };
            tracing::warn!(camera = %self.settings.camera, backoff_s = backoff.as_secs(), "reconnecting: {reason}");
            self.health.set_state(SourceState::Reconnecting { reason, backoff_s: backoff.as_secs() });
            self.health.reconnected(stalled);
            self.sleep(backoff);
            backoff = (backoff * 2).min(BACKOFF_CAP);
            source_run += 1;
        }
    }

    /// The supervisor ends, its camera in `state` for good (stopped by the agent or a reload, a
    /// file played to its end, an error no retry mends). Its pipelines left behind stay held;
    /// a camera that does not run again shows them nowhere else than in this line.
    fn finish(&self, state: SourceState) {
        self.health.set_state(state);
        let held = left_behind::held_by(&self.settings.camera);
        if held > 0 {
            tracing::warn!(camera = %self.settings.camera, "the camera ends with {held} pipelines left behind: their threads and memory stay held until their state change ends or the agent restarts");
        }
    }

    /// Sleeps, waking early when a stop is requested.
    fn sleep(&self, duration: Duration) {
        let until = Instant::now() + duration;
        while Instant::now() < until && !self.stop.load(Ordering::Relaxed) {
            self.health.beat();
            self.release_abandoned();
            std::thread::sleep(SUPERVISOR_BEAT.min(until - Instant::now()));
        }
    }

    /// Changes the pipeline's state on a helper thread, waiting at most [`STATE_CHANGE_DEADLINE`]
    /// (and showing it is alive meanwhile). On [`Hung`] the pipeline has been abandoned.
    fn change_state(&self, pipeline: &gst::Pipeline, state: gst::State) -> Result<Changed, Hung> {
        let (done, result) = crossbeam_channel::bounded(1);
        let changing = pipeline.clone();
        let helper = std::thread::Builder::new().name(format!("state-{}", self.settings.camera)).spawn(move || {
            let _ = done.send(changing.set_state(state));
            // A pipeline left behind is let go of as its change ends, whether or not a
            // supervisor still runs to look.
            left_behind::release();
        });
        if let Err(e) = helper {
            tracing::warn!(camera = %self.settings.camera, "cannot start a thread for the state change, changing it here: {e}");
            return Ok(pipeline.set_state(state));
        }
        let until = Instant::now() + STATE_CHANGE_DEADLINE;
        loop {
            self.health.beat();
            match result.recv_timeout(SUPERVISOR_BEAT) {
                Ok(changed) => return Ok(changed),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) if Instant::now() < until => {}
                Err(_) => break,
            }
        }
        self.abandon(pipeline, state, result);
        Err(Hung)
    }

    /// Lets go of the pipelines left behind whose state change has ended after all (this
    /// camera's, or any other's), and shows how many of this camera's are still held.
    fn release_abandoned(&self) {
        left_behind::release();
        self.health.abandoned_held.store(left_behind::held_by(&self.settings.camera), Ordering::Relaxed);
    }

    /// Leaves a pipeline whose change to `state` hung behind, counted and named in the log.
    fn abandon(&self, pipeline: &gst::Pipeline, state: gst::State, done: crossbeam_channel::Receiver<Changed>) {
        CameraHealth::count(&self.health.abandoned_pipelines);
        self.retired.store(true, Ordering::Relaxed);
        // Elements change state from the sinks up: the first (from the sinks) of those still
        // highest is where it hangs (often rtspsrc or its udpsrc).
        let children: Vec<gst::Element> = pipeline.iterate_sorted().into_iter().filter_map(Result::ok).collect();
        let highest = children.iter().map(|e| e.current_state()).max().unwrap_or(state);
        let hung = children.iter().find(|e| e.current_state() == highest && highest != state).map_or("?".to_string(), |e| format!("{} ({:?})", e.name(), highest));
        tracing::error!(
            camera = %self.settings.camera,
            abandoned = CameraHealth::get(&self.health.abandoned_pipelines),
            "the pipeline did not reach {state:?} within {} s and is left behind; it hangs at {hung}",
            STATE_CHANGE_DEADLINE.as_secs(),
        );
        left_behind::hold(LeftBehind { camera: self.settings.camera.clone(), pipeline: pipeline.clone(), target: state, done });
        self.health.abandoned_held.store(left_behind::held_by(&self.settings.camera), Ordering::Relaxed);
    }

    /// Stops the pipeline and frees it, unless that hangs (then it is left behind).
    fn teardown(&self, pipeline: gst::Pipeline) {
        let _ = self.change_state(&pipeline, gst::State::Null);
    }

    /// Builds the pipeline and starts it. An error here is one a retry will not fix.
    fn build(&mut self, source_run: u32) -> Result<gst::Pipeline, String> {
        self.retired = Arc::default();
        let s = &self.settings;
        let description = s.template.describe(&s.location, s.analytics_fps > 0);
        let pipeline = gst::parse::launch(&description)
            .map_err(|e| format!("pipeline template '{}' does not build: {e}", s.template.name))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| format!("pipeline template '{}' is not a pipeline", s.template.name))?;
        let sync = s.realtime && !self.is_rtsp();
        let (sink, native) = pipeline::configure(&pipeline, s.analytics_fps, &s.caps, sync)
            .map_err(|e| format!("pipeline template '{}': {e}", s.template.name))?;
        pipeline::limit_decoder_threads(&pipeline, s.decoder_threads);
        if s.key_frames_only {
            pipeline::skip_delta_frames(&pipeline, &s.camera, s.analytics_fps);
        }
        sink.set_callbacks(self.frame_callbacks(source_run, native));
        Ok(pipeline)
    }

    fn frame_callbacks(&self, source_run: u32, native: native::NativeSlot) -> gst_app::AppSinkCallbacks {
        let camera = self.settings.camera.clone();
        let sender = Arc::downgrade(&self.sender);
        let retired = self.retired.clone();
        let health = self.health.clone();
        let seq = self.seq.clone();
        let mut frames_this_run = 0u64;
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                if retired.load(Ordering::Relaxed) {
                    return Err(gst::FlowError::Flushing);
                }
                let (Some(buffer), Some(caps)) = (sample.buffer_owned(), sample.caps()) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let info = gst_video::VideoInfo::from_caps(caps).map_err(|_| gst::FlowError::NotNegotiated)?;
                let native = native::take(&native, buffer.pts());
                let frame = Frame {
                    camera: camera.clone(),
                    seq: seq.fetch_add(1, Ordering::Relaxed),
                    pts: stream_time(&buffer, info.fps(), frames_this_run),
                    source_run,
                    width: info.width(),
                    height: info.height(),
                    stride: info.stride()[0] as usize,
                    buffer,
                    native,
                    arrived: std::time::Instant::now(),
                };
                frames_this_run += 1;
                health.frame_in();
                let pushed = sender.upgrade().is_some_and(|sender| sender.push(frame));
                if pushed { Ok(gst::FlowSuccess::Ok) } else { Err(gst::FlowError::Eos) }
            })
            .build()
    }

    /// Plays the pipeline until it ends, fails, stalls or a stop is requested.
    fn watch(&mut self, pipeline: &gst::Pipeline) -> RunEnd {
        match self.change_state(pipeline, gst::State::Playing) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return RunEnd::Failed(format!("cannot start the pipeline: {e}")),
            Err(Hung) => return RunEnd::StartHung,
        }
        let Some(bus) = pipeline.bus() else {
            return RunEnd::Failed("the pipeline has no bus".into());
        };
        let mut frames_seen = CameraHealth::get(&self.health.frames_in);
        let mut last_progress = Instant::now();
        let mut streaming = false;
        loop {
            self.health.beat();
            self.release_abandoned();
            if self.stop.load(Ordering::Relaxed) {
                return RunEnd::StopRequested;
            }
            if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(SUPERVISOR_BEAT.as_millis() as u64)) {
                match msg.view() {
                    gst::MessageView::Eos(_) => return RunEnd::EndOfStream,
                    gst::MessageView::Error(err) => {
                        let element = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
                        return RunEnd::Failed(self.scrub(&format!("{element}: {}", err.error())));
                    }
                    _ => {}
                }
            }
            let frames = CameraHealth::get(&self.health.frames_in);
            if frames != frames_seen {
                frames_seen = frames;
                last_progress = Instant::now();
                if !streaming {
                    streaming = true;
                    self.health.set_state(SourceState::Streaming);
                }
            } else if last_progress.elapsed() >= self.settings.no_frames_timeout {
                return RunEnd::NoFrames;
            }
        }
    }

    /// GStreamer messages can quote the URL; keep its password out of logs and status.
    fn scrub(&self, message: &str) -> String {
        match url::Url::parse(&self.settings.location).ok().and_then(|u| u.password().map(String::from)) {
            Some(password) if !password.is_empty() => message.replace(&password, "***"),
            _ => message.to_string(),
        }
    }
}
