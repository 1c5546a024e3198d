//! Inference-only speed of a model on a real frame: ONNX Runtime, preprocessing, decode and NMS,
//! as the agent runs them per analysed frame. Prints a line per thread count and writes JSON.
//!
//!   cargo bench -p canh --bench inference [-- MODEL CLIP]

use std::time::Instant;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use canh::config::Resources;
use canh::detect::{Detector, DetectorConfig, input_caps};

const WARMUP: usize = 5;
const RUNS: usize = 50;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let model = args.first().map_or("yolox_nano", String::as_str);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let clip = args.get(1).map_or(root.join("samples/clips/opencv4nodejs_traffic.mp4"), Into::into);
    gst::init()?;
    let resources = Resources::locate();
    let mut results = Vec::new();
    for threads in [1, 2] {
        let detector = Detector::load(resources.model(model)?, &DetectorConfig { threads, onnxruntime_lib: None })?;
        let (buffer, width, height, stride) = first_frame(&clip, &input_caps(&detector.manifest().input))?;
        let map = buffer.map_readable()?;
        let mut ms = Vec::with_capacity(RUNS);
        for i in 0..WARMUP + RUNS {
            let start = Instant::now();
            detector.detect_bgr(map.as_slice(), width, height, stride, 0.1)?;
            if i >= WARMUP {
                ms.push(start.elapsed().as_secs_f64() * 1000.0);
            }
        }
        ms.sort_by(f64::total_cmp);
        let (median, p90, min) = (ms[RUNS / 2], ms[RUNS * 9 / 10], ms[0]);
        println!("{model} threads={threads}: median {median:.1} ms, p90 {p90:.1} ms, min {min:.1} ms ({RUNS} runs, {width}x{height} frame)");
        results.push(serde_json::json!({"model": model, "threads": threads, "median_ms": median, "p90_ms": p90, "min_ms": min, "runs": RUNS}));
    }
    let out = root.join("target/bench-inference.json");
    std::fs::write(&out, serde_json::to_string_pretty(&results)?)?;
    println!("wrote {}", out.display());
    Ok(())
}

fn first_frame(clip: &std::path::Path, caps: &gst::Caps) -> anyhow::Result<(gst::Buffer, u32, u32, usize)> {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! decodebin3 ! videoscale ! videoconvert ! capsfilter name=caps ! appsink name=sink sync=false",
        clip.display()
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    pipeline.by_name("caps").unwrap().set_property("caps", caps);
    let sink = pipeline.by_name("sink").unwrap().downcast::<gst_app::AppSink>().map_err(|_| anyhow::anyhow!("not an appsink"))?;
    pipeline.set_state(gst::State::Playing)?;
    let sample = sink.pull_sample()?;
    pipeline.set_state(gst::State::Null)?;
    let info = gstreamer_video::VideoInfo::from_caps(sample.caps().unwrap())?;
    Ok((sample.buffer_owned().unwrap(), info.width(), info.height(), info.stride()[0] as usize))
}
