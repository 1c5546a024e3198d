//! Source stage: one GStreamer pipeline per camera, decoding its stream and handing scaled BGR
//! frames at the analytics rate to the detector through a bounded queue.
//!
//! A supervisor thread per camera runs the source as an explicit state machine (see
//! [`SourceState`]): start, stream, and on an error, an end of a live stream or no frame for
//! `no_frames_timeout_s`, tear down and rebuild after an exponential backoff (1 s doubling to
//! 30 s). A file source ends cleanly at its end of stream.

mod pipeline;
mod queue;

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
use crate::health::{CameraHealth, SourceState};
use crate::types::{CameraId, Frame};

const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(30);

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
    let sink = pipeline::configure(&pipeline, 0, caps, false)?;
    pipeline.set_state(gst::State::Playing).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut sample = None;
    for _ in 0..=index {
        sample = Some(sink.pull_sample().map_err(|_| format!("{} has fewer than {} frames", path.display(), index + 1))?);
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
}

/// How one run of the pipeline ended.
#[derive(Debug)]
enum RunEnd {
    StopRequested,
    EndOfStream,
    Failed(String),
    NoFrames,
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
            .spawn(move || Supervisor { settings, sender, health, stop, seq: Arc::new(AtomicU64::new(0)) }.run())?;
        Ok(CameraSource { thread })
    }

    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    pub fn join(self) {
        let _ = self.thread.join();
    }
}

struct Supervisor {
    settings: SourceSettings,
    sender: FrameSender,
    health: Arc<CameraHealth>,
    stop: Arc<AtomicBool>,
    seq: Arc<AtomicU64>,
}

impl Supervisor {
    fn is_rtsp(&self) -> bool {
        is_url(&self.settings.location)
    }

    fn run(self) {
        let mut backoff = BACKOFF_START;
        let mut source_run = 0u32;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                self.health.set_state(SourceState::Stopped);
                return;
            }
            self.health.set_state(SourceState::Starting);
            let pipeline = match self.build(source_run) {
                Ok(p) => p,
                Err(reason) => {
                    tracing::error!(camera = %self.settings.camera, "{reason}");
                    self.health.set_state(SourceState::Error { reason });
                    return;
                }
            };
            let frames_before = CameraHealth::get(&self.health.frames_in);
            let end = self.watch(&pipeline);
            let _ = pipeline.set_state(gst::State::Null);
            drop(pipeline);
            if CameraHealth::get(&self.health.frames_in) > frames_before {
                backoff = BACKOFF_START;
            }
            let stalled = matches!(end, RunEnd::NoFrames);
            let reason = match end {
                RunEnd::StopRequested => {
                    self.health.set_state(SourceState::Stopped);
                    return;
                }
                RunEnd::EndOfStream if !self.is_rtsp() => {
                    self.health.set_state(SourceState::Ended);
                    return;
                }
                // Replaying a file again would count its vehicles again.
                RunEnd::Failed(reason) if !self.is_rtsp() => {
                    tracing::error!(camera = %self.settings.camera, "{reason}");
                    self.health.set_state(SourceState::Error { reason });
                    return;
                }
                RunEnd::EndOfStream => "the stream ended".to_string(),
                RunEnd::Failed(reason) => reason,
                RunEnd::NoFrames => format!("no frame for {} s", self.settings.no_frames_timeout.as_secs()),
            };
            tracing::warn!(camera = %self.settings.camera, backoff_s = backoff.as_secs(), "reconnecting: {reason}");
            self.health.set_state(SourceState::Reconnecting { reason, backoff_s: backoff.as_secs() });
            self.health.reconnected(stalled);
            self.sleep(backoff);
            backoff = (backoff * 2).min(BACKOFF_CAP);
            source_run += 1;
        }
    }

    /// Sleeps, waking early when a stop is requested.
    fn sleep(&self, duration: Duration) {
        let until = Instant::now() + duration;
        while Instant::now() < until && !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
    }

    /// Builds the pipeline and starts it. An error here is one a retry will not fix.
    fn build(&self, source_run: u32) -> Result<gst::Pipeline, String> {
        let s = &self.settings;
        let description = s.template.describe(&s.location, s.analytics_fps > 0);
        let pipeline = gst::parse::launch(&description)
            .map_err(|e| format!("pipeline template '{}' does not build: {e}", s.template.name))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| format!("pipeline template '{}' is not a pipeline", s.template.name))?;
        let sync = s.realtime && !self.is_rtsp();
        let sink = pipeline::configure(&pipeline, s.analytics_fps, &s.caps, sync)
            .map_err(|e| format!("pipeline template '{}': {e}", s.template.name))?;
        pipeline::limit_decoder_threads(&pipeline, s.decoder_threads);
        sink.set_callbacks(self.frame_callbacks(source_run));
        Ok(pipeline)
    }

    fn frame_callbacks(&self, source_run: u32) -> gst_app::AppSinkCallbacks {
        let camera = self.settings.camera.clone();
        let sender = self.sender.clone();
        let health = self.health.clone();
        let seq = self.seq.clone();
        let mut frames_this_run = 0u64;
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                let (Some(buffer), Some(caps)) = (sample.buffer_owned(), sample.caps()) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let info = gst_video::VideoInfo::from_caps(caps).map_err(|_| gst::FlowError::NotNegotiated)?;
                let frame = Frame {
                    camera: camera.clone(),
                    seq: seq.fetch_add(1, Ordering::Relaxed),
                    pts: stream_time(&buffer, info.fps(), frames_this_run),
                    source_run,
                    width: info.width(),
                    height: info.height(),
                    stride: info.stride()[0] as usize,
                    buffer,
                    arrived: std::time::Instant::now(),
                };
                frames_this_run += 1;
                CameraHealth::count(&health.frames_in);
                if sender.push(frame) { Ok(gst::FlowSuccess::Ok) } else { Err(gst::FlowError::Eos) }
            })
            .build()
    }

    /// Plays the pipeline until it ends, fails, stalls or a stop is requested.
    fn watch(&self, pipeline: &gst::Pipeline) -> RunEnd {
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            return RunEnd::Failed(format!("cannot start the pipeline: {e}"));
        }
        let Some(bus) = pipeline.bus() else {
            return RunEnd::Failed("the pipeline has no bus".into());
        };
        let mut frames_seen = CameraHealth::get(&self.health.frames_in);
        let mut last_progress = Instant::now();
        let mut streaming = false;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return RunEnd::StopRequested;
            }
            if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) {
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
