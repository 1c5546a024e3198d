//! Pipeline templates (`pipelines/<name>.pipeline`) and the GStreamer pipeline built from them.
//!
//! A template is a `gst-launch` fragment for the decode part, with `{source}` where the camera's
//! source element goes and `{output}` where Canh's tail goes: rate limiting to the analytics fps,
//! scaling and colour conversion to what the model takes, all in GStreamer, into an appsink.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::STATE_CHANGE_DEADLINE;
use super::native::{NativeSlot, keep_native};

/// `rtspsrc` gives up on a silent server's connection after this: well before the no-frames
/// watchdog fires, and well within a state change's deadline, since its teardown joins its
/// thread, which may be blocked on that connection for this long. (A flapping camera's rare
/// abandoned teardown, once put down to a 5-s timeout here, was the jitter buffer's hang that
/// [`forget_stream_end_time`] avoids.)
const RTSP_TCP_TIMEOUT: Duration = Duration::from_secs(3);
const _: () = assert!(RTSP_TCP_TIMEOUT.as_secs() + 2 <= STATE_CHANGE_DEADLINE.as_secs());

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("pipeline template '{name}': cannot read {path}: {source}")]
    Read { name: String, path: PathBuf, source: std::io::Error },
    #[error("pipeline template '{name}' ({path}): {message}")]
    Invalid { name: String, path: PathBuf, message: String },
}

#[derive(Debug, Clone)]
pub struct PipelineTemplate {
    pub name: String,
    /// The fragment with comments removed and lines joined.
    pub body: String,
}

impl PipelineTemplate {
    pub fn load(dir: &Path, name: &str) -> Result<PipelineTemplate, TemplateError> {
        let path = dir.join(format!("{name}.pipeline"));
        let text = std::fs::read_to_string(&path).map_err(|source| TemplateError::Read { name: name.into(), path: path.clone(), source })?;
        let body = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join(" ");
        for placeholder in ["{source}", "{output}"] {
            if body.matches(placeholder).count() != 1 {
                return Err(TemplateError::Invalid { name: name.into(), path, message: format!("must contain {placeholder} exactly once") });
            }
        }
        Ok(PipelineTemplate { name: name.into(), body })
    }

    /// The full launch description. The location is written in (decodebin3 opens the source
    /// while the description is parsed); the rest is set by [`configure`]. Never log it: an RTSP
    /// location may hold a password.
    pub fn describe(&self, location: &str, rate_limited: bool) -> String {
        let quoted = format!("\"{}\"", location.replace('\\', "\\\\").replace('"', "\\\""));
        let source = if crate::check::is_url(location) {
            format!("rtspsrc name=canh_src location={quoted} protocols=tcp latency=200 ! application/x-rtp,media=video")
        } else {
            format!("filesrc name=canh_src location={quoted}")
        };
        let rate = if rate_limited { "videorate name=canh_rate drop-only=true ! " } else { "" };
        let output = format!("{rate}videoscale name=canh_scale ! videoconvert ! capsfilter name=canh_caps ! appsink name=canh_sink");
        self.body.replace("{source}", &source).replace("{output}", &output)
    }
}

/// Sets what the description leaves out: RTSP timeouts, the rate, the caps, the sink, and the
/// probe that keeps each analysed frame's native picture (see [`super::native`]).
pub fn configure(
    pipeline: &gst::Pipeline,
    analytics_fps: u32,
    caps: &gst::Caps,
    sync: bool,
) -> Result<(gst_app::AppSink, NativeSlot), String> {
    let by_name = |name: &str| pipeline.by_name(name).ok_or_else(|| format!("the pipeline has no element named {name}"));
    let src = by_name("canh_src")?;
    if src.find_property("tcp-timeout").is_some() {
        src.set_property("tcp-timeout", RTSP_TCP_TIMEOUT.as_micros() as u64);
        // `timeout`: microseconds without UDP packets before it tries TCP.
        src.set_property("timeout", 5_000_000u64);
        forget_stream_end_time(pipeline);
    }
    if analytics_fps > 0 {
        let rate = by_name("canh_rate")?;
        rate.set_property("max-rate", analytics_fps as i32);
        assume_analysis_rate(&rate, analytics_fps)?;
    }
    by_name("canh_caps")?.set_property("caps", caps);
    let sink = by_name("canh_sink")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| "canh_sink is not an appsink".to_string())?;
    sink.set_sync(sync);
    sink.set_max_buffers(2);
    sink.set_drop(false);
    let native = keep_native(&by_name("canh_scale")?)?;
    Ok((sink, native))
}

/// A stream of unknown frame rate (`framerate=0/1`: an H.264 camera whose stream carries no
/// timing information (VUI), files some tools write) is told to `videorate` as one of
/// `analytics_fps`. Left unknown, `videorate` takes the rate of its first two frames for the one to
/// keep, so it limits nothing (281 of 314 frames analysed at 5 fps, measured), and where frames
/// carry no duration it aborts the whole process (a failed `g_assert`, GStreamer 1.22 to 1.24): one
/// such camera would take every camera of the agent down, again after each restart. Given a rate,
/// it keeps frames by their timestamps as for any other stream.
fn assume_analysis_rate(rate: &gst::Element, analytics_fps: u32) -> Result<(), String> {
    let pad = rate.static_pad("sink").ok_or("videorate has no sink pad")?;
    rewrite_caps(&pad, move |caps| {
        let unknown = caps.structure(0).and_then(|s| s.get::<gst::Fraction>("framerate").ok()).is_none_or(|f| f.numer() == 0);
        unknown.then(|| {
            let mut caps = caps.to_owned();
            caps.make_mut().set("framerate", gst::Fraction::new(analytics_fps as i32, 1));
            caps
        })
    });
    Ok(())
}

/// Takes the end time (`npt-stop`) out of what each RTP jitter buffer is told of its stream. A
/// stream that has one (a recording, a file served over RTSP; a live camera's has none) makes
/// the jitter buffer re-arm an end-of-stream timer with every packet it pushes, and in GStreamer
/// 1.22 a packet pushed just after the server's end (RTCP BYE) re-arms it after the timer thread
/// has gone to sleep: the jitter buffer then waits for that thread forever, and taking the
/// pipeline down hangs in `rtspsrc` (seen in 1 of 3 to 8 runs of a flapping camera under load;
/// the jitter buffer's debug log shows both threads "waiting timer"). Without the end time it
/// ends a stream on the server's BYE; a recording served without one now ends by the no-frames
/// watchdog (a stall, not "the stream ended"). A jitter buffer that has no clock rate from its
/// caps asks `rtspsrc` for the stream's caps instead, end time included; `rtspsrc`'s RTP caps
/// always carry the rate.
fn forget_stream_end_time(pipeline: &gst::Pipeline) {
    for_each_element(pipeline, |element| {
        let is_jitter_buffer = element.factory().is_some_and(|f| f.name() == "rtpjitterbuffer");
        let Some(pad) = element.static_pad("sink").filter(|_| is_jitter_buffer) else { return };
        rewrite_caps(&pad, |caps| {
            caps.structure(0).filter(|s| s.has_field("npt-stop"))?;
            let mut caps = caps.to_owned();
            caps.make_mut().structure_mut(0)?.remove_field("npt-stop");
            Some(caps)
        });
    });
}

/// Replaces the caps of each caps event passing `pad` by what `rewrite` makes of them (`None`:
/// left as they are), keeping the event's seqnum.
fn rewrite_caps(pad: &gst::Pad, rewrite: impl Fn(&gst::CapsRef) -> Option<gst::Caps> + Send + Sync + 'static) {
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, probe| {
        let Some(gst::PadProbeData::Event(event)) = probe.data.as_mut() else { return gst::PadProbeReturn::Ok };
        let gst::EventView::Caps(caps) = event.view() else { return gst::PadProbeReturn::Ok };
        if let Some(caps) = rewrite(caps.caps()) {
            *event = gst::event::Caps::builder(&caps).seqnum(event.seqnum()).build();
        }
        gst::PadProbeReturn::Ok
    });
}

/// Calls `f` on every element of the pipeline: those a template names, there already, and those
/// decodebin or rtspsrc add later (watched first, so none slips between; `f` may then see an
/// element twice, which each caller allows).
fn for_each_element(pipeline: &gst::Pipeline, f: impl Fn(&gst::Element) + Send + Sync + 'static) {
    let f = std::sync::Arc::new(f);
    let added = f.clone();
    pipeline.connect_deep_element_added(move |_, _, element| added(element));
    for element in pipeline.iterate_recurse().into_iter().flatten() {
        f(&element);
    }
}

/// Caps the threads of the libav decoders (those decodebin3 picks or a template names). With at
/// least as many cameras as cores, one thread per decoder decodes more frames per second in all:
/// frame threading adds hand-over work and a frame of latency and buys nothing on busy cores
/// (measured: four 720p streams on 2 cores, 618 frames/s with a thread per core, 686 with one).
pub fn limit_decoder_threads(pipeline: &gst::Pipeline, threads: u32) {
    if threads == 0 {
        return;
    }
    for_each_element(pipeline, move |element| {
        let is_libav_decoder = element.factory().is_some_and(|f| f.name().starts_with("avdec_"));
        if is_libav_decoder && element.find_property("max-threads").is_some() {
            element.set_property("max-threads", threads as i32);
        }
    });
}

/// A key frame may stand in for the analysed frames of its group of pictures when the next key
/// frame comes at most this many analysis intervals later: a frame-a-second camera whose key
/// frames come every 1.2 s is analysed a little less often, never much.
const KEY_INTERVAL_SLACK: f64 = 1.2;
/// Key frames must have come that often this many times in a row: encoders also put a key frame
/// at a scene cut, and one short interval says nothing about the next group.
const REGULAR_KEY_INTERVALS: u32 = 3;

/// Decodes key frames alone, and drops every other frame before the decoder, while key frames
/// come often enough for `analytics_fps` (at least one per analysed frame, see
/// [`KEY_INTERVAL_SLACK`], [`REGULAR_KEY_INTERVALS`] times in a row). A fire-watch camera
/// analysed once a second would otherwise decode 25 frames to use one: decoding is most of what
/// such a camera costs. Each group of pictures is decided at its key frame, from the intervals
/// before it, so no frame is ever decoded without the frames it refers to.
pub fn skip_delta_frames(pipeline: &gst::Pipeline, camera: &str, analytics_fps: u32) {
    if analytics_fps == 0 {
        return;
    }
    let period = Duration::from_secs_f64(1.0 / analytics_fps as f64);
    let camera = camera.to_string();
    let gate_decoder = move |element: &gst::Element| {
        let is_video_decoder = element.factory().is_some_and(|f| {
            let klass = f.metadata(gst::ELEMENT_METADATA_KLASS).unwrap_or_default();
            klass.contains("Decoder") && klass.contains("Video")
        });
        let Some(pad) = element.static_pad("sink").filter(|_| is_video_decoder) else { return };
        let gate = std::sync::Mutex::new(KeyFrameGate::new(period));
        let camera = camera.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, probe| {
            let Some(buffer) = probe.buffer() else { return gst::PadProbeReturn::Ok };
            let mut gate = gate.lock().unwrap_or_else(|p| p.into_inner());
            let was = gate.skipping();
            let time = buffer.pts().or(buffer.dts()).map(|t| Duration::from_nanos(t.nseconds()));
            let pass = gate.pass(time, buffer.flags().contains(gst::BufferFlags::DELTA_UNIT));
            if gate.skipping() != was {
                tracing::info!(camera = %camera, "decoding {}", if gate.skipping() { "key frames only: they come at least once per analysed frame" } else { "every frame: key frames come too seldom for the analysis rate" });
            }
            // `Handled`, not `Drop`: the binding has taken the buffer and frees it either way,
            // and GStreamer before 1.24.8 (Debian 12 has 1.22) unrefs a dropped buffer's
            // emptied slot, logging a critical for every frame skipped (24 a second on a 1-fps
            // camera, enough for journald to drop the agent's own lines).
            if pass { gst::PadProbeReturn::Ok } else { gst::PadProbeReturn::Handled }
        });
    };
    for_each_element(pipeline, gate_decoder);
}

/// Which compressed frames go on to the decoder: see [`skip_delta_frames`].
struct KeyFrameGate {
    period: Duration,
    last_key: Option<Duration>,
    /// Key-frame intervals in a row short enough for the analysis rate.
    regular: u32,
}

impl KeyFrameGate {
    fn new(period: Duration) -> KeyFrameGate {
        KeyFrameGate { period, last_key: None, regular: 0 }
    }

    /// Whether the frame at `pts` goes to the decoder.
    fn pass(&mut self, pts: Option<Duration>, delta: bool) -> bool {
        if delta {
            return !self.skipping();
        }
        let short = match (pts, self.last_key) {
            (Some(now), Some(last)) if now > last => (now - last).as_secs_f64() <= KEY_INTERVAL_SLACK * self.period.as_secs_f64(),
            _ => false,
        };
        self.regular = if short { self.regular + 1 } else { 0 };
        self.last_key = pts;
        true
    }

    /// Whether delta frames are dropped until the next key frame.
    fn skipping(&self) -> bool {
        self.regular >= REGULAR_KEY_INTERVALS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jitter_buffer_added_later_is_not_told_the_stream_end_time() {
        gst::init().unwrap();
        let pipeline = gst::Pipeline::new();
        forget_stream_end_time(&pipeline);
        // As rtspsrc does: a bin (rtpbin) whose jitter buffers come once the stream is known.
        let bin = gst::Bin::new();
        pipeline.add(&bin).unwrap();
        let jitter_buffer = gst::ElementFactory::make("rtpjitterbuffer").build().unwrap();
        bin.add(&jitter_buffer).unwrap();
        pipeline.set_state(gst::State::Paused).unwrap();
        let pad = jitter_buffer.static_pad("sink").unwrap();
        pad.send_event(gst::event::StreamStart::new("rtp"));
        let caps = gst::Caps::builder("application/x-rtp")
            .field("media", "video")
            .field("clock-rate", 90_000i32)
            .field("npt-start", 0u64)
            .field("npt-stop", 666_666_666u64)
            .build();
        pad.send_event(gst::event::Caps::new(&caps));
        let told = pad.sticky_event::<gst::event::Caps>(0).expect("the caps reached the jitter buffer").caps_owned();
        pipeline.set_state(gst::State::Null).unwrap();
        let told = told.structure(0).unwrap();
        assert!(!told.has_field("npt-stop"), "{told}");
        assert!(told.has_field("npt-start") && told.has_field("clock-rate"), "{told}");
    }

    /// Frames of a 25 fps stream with a key frame every `gop` frames: (pts, delta).
    fn stream(gop: u64, frames: u64) -> impl Iterator<Item = (Option<Duration>, bool)> {
        (0..frames).map(move |i| (Some(Duration::from_millis(i * 40)), i % gop != 0))
    }

    #[test]
    fn a_libav_decoder_is_held_to_its_threads_whether_a_template_names_it_or_decodebin_adds_it() {
        gst::init().unwrap();
        let launch = |description: &str| gst::parse::launch(description).unwrap().downcast::<gst::Pipeline>().unwrap();
        let named = launch("videotestsrc num-buffers=1 ! x264enc ! avdec_h264 name=dec ! fakesink");
        limit_decoder_threads(&named, 1);
        assert_eq!(named.by_name("dec").unwrap().property::<i32>("max-threads"), 1, "a decoder the template names");
        let added = launch("videotestsrc num-buffers=1 ! fakesink");
        limit_decoder_threads(&added, 1);
        let decoder = gst::ElementFactory::make("avdec_h264").build().unwrap();
        added.add(&decoder).unwrap();
        assert_eq!(decoder.property::<i32>("max-threads"), 1, "a decoder added later");
    }

    #[test]
    fn key_frames_alone_are_decoded_when_they_come_once_per_analysed_frame() {
        // Analysed once a second; key frames every second (25 frames): once three intervals have
        // shown it, only key frames pass.
        let mut gate = KeyFrameGate::new(Duration::from_secs(1));
        let passed: Vec<usize> = stream(25, 150).enumerate().filter(|(_, (pts, delta))| gate.pass(*pts, *delta)).map(|(i, _)| i).collect();
        assert_eq!(passed, [(0..=75).collect::<Vec<_>>(), vec![100, 125]].concat());
        // Key frames every 2 s are too seldom for 1 fps: every frame is decoded.
        let mut gate = KeyFrameGate::new(Duration::from_secs(1));
        assert!(stream(50, 200).all(|(pts, delta)| gate.pass(pts, delta)));
        // At 5 fps a key frame a second is too seldom as well.
        let mut gate = KeyFrameGate::new(Duration::from_millis(200));
        assert!(stream(25, 100).all(|(pts, delta)| gate.pass(pts, delta)));
    }

    #[test]
    fn a_group_is_decoded_whole_again_once_key_frames_thin_out() {
        let mut gate = KeyFrameGate::new(Duration::from_secs(1));
        // Key frames every second up to 4 s, then at 6 s: the group from 3 s is skipped (three
        // short intervals before it), the group from 4 s too, the one from 6 s is decoded whole.
        let keys = [0u64, 25, 50, 75, 100, 150];
        let passed: Vec<u64> = (0..175u64).filter(|i| gate.pass(Some(Duration::from_millis(i * 40)), !keys.contains(i))).collect();
        assert_eq!(passed, [(0..=75).collect::<Vec<_>>(), vec![100], (150..175).collect()].concat());
        // Key frames without a time, or with one going backwards (a restarted stream), decide
        // nothing: every frame is decoded until three regular intervals are seen again.
        let mut gate = KeyFrameGate::new(Duration::from_secs(1));
        let times = [Some(0u64), Some(1000), Some(2000), Some(3000), None, Some(4000), Some(1000)];
        let skipping: Vec<bool> = times.iter().map(|t| { gate.pass(t.map(Duration::from_millis), false); gate.skipping() }).collect();
        assert_eq!(skipping, [false, false, false, true, false, false, false]);
        // A scene cut's key frame between two regular ones does not start skipping.
        let mut gate = KeyFrameGate::new(Duration::from_secs(1));
        let keys = [0u64, 50, 60, 110];
        assert!((0..150u64).all(|i| gate.pass(Some(Duration::from_millis(i * 40)), !keys.contains(&i))));
    }

    #[test]
    fn quotes_the_location_and_fills_the_placeholders() {
        let t = PipelineTemplate { name: "t".into(), body: "{source} ! decodebin3 ! {output}".into() };
        let d = t.describe(r#"/clips/a "b".mp4"#, true);
        assert!(d.starts_with(r#"filesrc name=canh_src location="/clips/a \"b\".mp4" ! decodebin3 ! videorate"#), "{d}");
        assert!(t.describe("rtsp://cam/sub", false).starts_with("rtspsrc name=canh_src location=\"rtsp://cam/sub\" protocols=tcp"));
    }
}
