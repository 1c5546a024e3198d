//! Inference-only speed of a model on a real frame: ONNX Runtime, preprocessing, decode and NMS,
//! as the agent runs them per analysed frame (a heat-map model such as `smoke_cells`: the whole
//! frame's map). Prints a line per thread count and writes JSON.
//!
//!   cargo bench -p canh --bench inference [-- MODEL CLIP DETECT_WIDTH_PX]
//!
//! DETECT_WIDTH_PX: the camera setting of that name (default: the model's input width).

use std::time::Instant;

use gstreamer as gst;

use canh::config::Resources;
use canh::detect::{Detector, DetectorConfig, OutputDecoder, input_caps};
use canh::render::frame_to_mat;
use canh::source::decode_frame;

const WARMUP: usize = 5;
const RUNS: usize = 50;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let model = args.first().map_or("yolox_nano", String::as_str);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let clip = args.get(1).map_or(root.join("samples/clips/opencv4nodejs_traffic.mp4"), Into::into);
    let detect_width: Option<u32> = args.get(2).map(|w| w.parse()).transpose().map_err(|_| anyhow::anyhow!("DETECT_WIDTH_PX must be a number of pixels"))?;
    gst::init()?;
    let resources = Resources::locate();
    let mut results = Vec::new();
    for threads in [1, 2] {
        let detector = Detector::load(resources.model(model)?, &DetectorConfig { threads, ..DetectorConfig::default() }, 1)?;
        let frame = decode_frame(&clip, 0, &input_caps(&detector.manifest().input, detect_width)).map_err(anyhow::Error::msg)?;
        let image = frame_to_mat(&frame)?;
        let heatmap = detector.manifest().output.decoder == OutputDecoder::Heatmap;
        let mut ms = Vec::with_capacity(RUNS);
        for i in 0..WARMUP + RUNS {
            let start = Instant::now();
            if heatmap {
                detector.heatmap(&image)?;
            } else {
                detector.detect(&frame, 0.1)?;
            }
            if i >= WARMUP {
                ms.push(start.elapsed().as_secs_f64() * 1000.0);
            }
        }
        ms.sort_by(f64::total_cmp);
        let (median, p90, min) = (ms[RUNS / 2], ms[RUNS * 9 / 10], ms[0]);
        println!("{model} threads={threads}: median {median:.1} ms, p90 {p90:.1} ms, min {min:.1} ms ({RUNS} runs, {}x{} frame)", frame.width, frame.height);
        results.push(serde_json::json!({"model": model, "threads": threads, "median_ms": median, "p90_ms": p90, "min_ms": min, "runs": RUNS}));
    }
    let out = root.join(format!("target/bench-inference-{model}{}.json", detect_width.map_or(String::new(), |w| format!("-{w}px"))));
    std::fs::write(&out, serde_json::to_string_pretty(&results)?)?;
    println!("wrote {}", out.display());
    Ok(())
}
