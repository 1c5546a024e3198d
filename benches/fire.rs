//! Per-frame cost of the fire and smoke analytics at default settings (flame classifier on the
//! frame and on the overlapping tiles with fire colour in a flame zone, fire colour and flicker,
//! the smoke model's heat map and baseline, smoke background model), on consecutive real frames. Prints median/p90/min ms and writes JSON.
//!
//!   cargo bench -p canh --bench fire [-- CLIP]

use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use opencv::prelude::*;

use canh::analytics::fire::{FireConfig, FireModels, FireWatch};
use canh::config::Resources;
use canh::detect::{Detector, DetectorConfig, input_caps};
use canh::render::frame_to_mat;
use canh::source::decode_frame;

const FRAMES: usize = 8;
const ROUNDS: usize = 8;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let clip = args.first().map_or(root.join("samples/clips/ozlu_input_video.mp4"), Into::into);
    gst::init()?;
    let resources = Resources::locate();
    // Frames at the size the agent analyses them (the vehicle detector's input).
    let caps = input_caps(&resources.model("yolox_nano")?.input, None);
    let frames = (0..FRAMES).map(|i| decode_frame(&clip, i * 12, &caps).map_err(anyhow::Error::msg).and_then(|f| Ok(frame_to_mat(&f)?))).collect::<anyhow::Result<Vec<_>>>()?;
    let mut results = Vec::new();
    for threads in [1, 2] {
        let load = |model: &str| -> anyhow::Result<Arc<Detector>> { Ok(Arc::new(Detector::load(resources.model(model)?, &DetectorConfig { threads, ..DetectorConfig::default() }, 1)?)) };
        let config = FireConfig::default();
        let models = FireModels { flames: load(&config.classifier)?, smoke: config.smoke_model().map(load).transpose()?, detector: None };
        let mut watch = FireWatch::new(&config, models).map_err(anyhow::Error::msg)?;
        let mut ms = Vec::new();
        for round in 0..ROUNDS {
            for (i, frame) in frames.iter().enumerate() {
                let now = Duration::from_millis(500 * (round * FRAMES + i) as u64);
                let start = Instant::now();
                watch.watch(frame, &[], now).map_err(anyhow::Error::msg)?;
                if round > 0 {
                    ms.push(start.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
        ms.sort_by(f64::total_cmp);
        let (median, p90, min) = (ms[ms.len() / 2], ms[ms.len() * 9 / 10], ms[0]);
        println!("fire analytics threads={threads}: median {median:.1} ms, p90 {p90:.1} ms, min {min:.1} ms per frame ({} frames of {}x{})", ms.len(), frames[0].cols(), frames[0].rows());
        results.push(serde_json::json!({"threads": threads, "median_ms": median, "p90_ms": p90, "min_ms": min, "frames": ms.len()}));
    }
    let out = root.join("target/bench-fire.json");
    std::fs::write(&out, serde_json::to_string_pretty(&results)?)?;
    println!("wrote {}", out.display());
    Ok(())
}
