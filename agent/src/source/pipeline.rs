//! Pipeline templates (`pipelines/<name>.pipeline`) and the GStreamer pipeline built from them.
//!
//! A template is a `gst-launch` fragment for the decode part, with `{source}` where the camera's
//! source element goes and `{output}` where Canh's tail goes: rate limiting to the analytics fps,
//! scaling and colour conversion to what the model takes, all in GStreamer, into an appsink.

use std::path::{Path, PathBuf};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::native::{NativeSlot, keep_native};

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
        // Microseconds: give up on a silent server well before the no-frames watchdog fires.
        src.set_property("tcp-timeout", 5_000_000u64);
        src.set_property("timeout", 5_000_000u64);
    }
    if analytics_fps > 0 {
        by_name("canh_rate")?.set_property("max-rate", analytics_fps as i32);
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

/// Caps the threads of the libav decoders that decodebin3 will pick. With at least as many
/// cameras as cores, one thread per decoder decodes more frames per second in all: frame
/// threading adds hand-over work and a frame of latency and buys nothing on busy cores
/// (measured: four 720p streams on 2 cores, 618 frames/s with a thread per core, 686 with one).
pub fn limit_decoder_threads(pipeline: &gst::Pipeline, threads: u32) {
    if threads == 0 {
        return;
    }
    pipeline.connect_deep_element_added(move |_, _, element| {
        let is_libav_decoder = element.factory().is_some_and(|f| f.name().starts_with("avdec_"));
        if is_libav_decoder && element.find_property("max-threads").is_some() {
            element.set_property("max-threads", threads as i32);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_the_location_and_fills_the_placeholders() {
        let t = PipelineTemplate { name: "t".into(), body: "{source} ! decodebin3 ! {output}".into() };
        let d = t.describe(r#"/clips/a "b".mp4"#, true);
        assert!(d.starts_with(r#"filesrc name=canh_src location="/clips/a \"b\".mp4" ! decodebin3 ! videorate"#), "{d}");
        assert!(t.describe("rtsp://cam/sub", false).starts_with("rtspsrc name=canh_src location=\"rtsp://cam/sub\" protocols=tcp"));
    }
}
