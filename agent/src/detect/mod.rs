//! Detection stage: runs an ONNX detector through ONNX Runtime on each analysed frame.
//!
//! One [`Detector`] (one ONNX Runtime session) per model, shared by every camera that uses it.
//! ONNX Runtime is loaded at run time from `libonnxruntime.so` (see [`ort_library_path`]); the
//! process holds exactly one ONNX Runtime environment.

mod config;
mod manifest;
pub mod motion;
mod nms;
mod preprocess;
pub mod region;
pub(crate) mod riders;
mod yolov8;
mod yolox;
pub mod zoom;

pub use config::{DetectorConfig, Lanes};
pub use manifest::{ColorOrder, InputSpec, Letterbox, ManifestError, ModelManifest, OutputDecoder};
use manifest::MAX_DETECT_WIDTH_PX;
pub use nms::{SAME_VEHICLE_IOU, nms};
pub use preprocess::{Placement, fill_tensor};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use gstreamer as gst;
use ort::session::{Session, builder::GraphOptimizationLevel};
use ort::value::TensorRef;
use crate::types::{BBox, Detection, Frame};

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    #[error("model {model}: {message}")]
    Model { model: String, message: String },
    #[error("frame from camera {camera}: {message}")]
    Frame { camera: String, message: String },
}

/// Where `libonnxruntime.so` is looked for, in order.
pub fn ort_library_path(configured: Option<&Path>) -> PathBuf {
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return PathBuf::from(p);
    }
    let installed = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("lib/canh/libonnxruntime.so")));
    match installed {
        Some(p) if p.is_file() => p,
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ort/libonnxruntime.so"),
    }
}

/// The process's one ONNX Runtime environment, created on first use from `library`.
pub(crate) fn ort_environment(library: &Path) -> Result<ort::environment::Environment, DetectError> {
    static ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let builder = ort::init_from(library).map_err(|e| format!("cannot load {}: {e}", library.display()))?;
        builder.with_name("canh").build().map_err(|e| e.to_string())
    })
    .clone()
    .map_err(DetectError::Runtime)
}

/// A heat-map model's output: the probability of each cell, row by row. Cells past the frame's
/// edge (padding) are included; `cell_width`/`cell_height` are a cell's size in normalized frame
/// coordinates.
#[derive(Debug, Clone)]
pub struct Heatmap {
    pub values: Vec<f32>,
    pub cols: usize,
    pub rows: usize,
    pub cell_width: f32,
    pub cell_height: f32,
}

impl Heatmap {
    /// Cell `i`'s box (normalized), unless its centre lies in the padding beyond the frame.
    pub fn cell(&self, i: usize) -> Option<crate::types::BBox> {
        let (col, row) = ((i % self.cols) as f32, (i / self.cols) as f32);
        let b = crate::types::BBox { x1: col * self.cell_width, y1: row * self.cell_height, x2: (col + 1.0) * self.cell_width, y2: (row + 1.0) * self.cell_height };
        let centre = b.center();
        (centre.x < 1.0 && centre.y < 1.0).then_some(b)
    }
}

/// A model loaded into one ONNX Runtime session per lane, each with a reusable input tensor.
pub struct Detector {
    manifest: ModelManifest,
    lanes: Vec<Mutex<SessionState>>,
    /// Where a caller that finds every lane busy queues next.
    next_lane: AtomicUsize,
}

/// A model's raw output for one frame, where the frame lies in the input, and the input's size.
struct FrameOutput {
    values: Vec<f32>,
    place: Placement,
    size: (u32, u32),
}

struct SessionState {
    session: Session,
    /// Reused between calls; a batch of N images needs N times one image's length.
    input: Vec<f32>,
}

impl Detector {
    /// Loads the model for a site of `cameras` cameras (see [`DetectorConfig::lanes`]).
    pub fn load(manifest: ModelManifest, config: &DetectorConfig, cameras: usize) -> Result<Detector, DetectError> {
        let env = ort_environment(&ort_library_path(config.onnxruntime_lib.as_deref()))?;
        let model_err = |message: String| DetectError::Model { model: manifest.name.clone(), message };
        if let Some(expected) = &manifest.sha256 {
            verify_checksum(&manifest.model_path, expected).map_err(model_err)?;
        }
        let Lanes { sessions, threads } = config.lanes(cameras);
        let open = || {
            let session = Session::builder(&env)
                .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::Level3)?))
                .and_then(|b| Ok(b.with_intra_threads(threads)?))
                // Idle pool threads that spin steal the cores from the other models' sessions
                // and the decoders: the fire analytics (flame and smoke models, 2 threads each)
                // took 50 ms a frame with spinning, 31 ms without (`cargo bench --bench fire`).
                // A lone model loses a little (YOLOX-nano 15.0 -> 16.5 ms); sessions of one
                // thread, as on sites with a camera per core or more, have no pool to spin.
                .and_then(|b| Ok(b.with_intra_op_spinning(false)?))
                .and_then(|mut b| b.commit_from_file(&manifest.model_path))
                .map_err(|e| model_err(format!("cannot load {}: {e}", manifest.model_path.display())))?;
            let input = vec![0f32; 3 * (manifest.input.width * manifest.input.height) as usize];
            Ok(Mutex::new(SessionState { session, input }))
        };
        let first = open()?;
        {
            let first = first.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let spec = &manifest.input;
            if !first.session.inputs().iter().any(|i| i.name() == spec.name) {
                return Err(model_err(format!("the model has no input named '{}'", spec.name)));
            }
            if !first.session.outputs().iter().any(|o| o.name() == manifest.output.name) {
                return Err(model_err(format!("the model has no output named '{}'", manifest.output.name)));
            }
        }
        let lanes = std::iter::once(Ok(first)).chain((1..sessions).map(|_| open())).collect::<Result<Vec<_>, DetectError>>()?;
        Ok(Detector { manifest, lanes, next_lane: AtomicUsize::new(0) })
    }

    /// A free lane, or the next one in turn when all are busy.
    fn lane(&self) -> std::sync::MutexGuard<'_, SessionState> {
        if let Some(free) = self.lanes.iter().find_map(|lane| lane.try_lock().ok()) {
            return free;
        }
        let turn = self.next_lane.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        self.lanes[turn].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    /// Detections on `frame` scoring at least `min_score`, after NMS, in normalized coordinates.
    pub fn detect(&self, frame: &Frame, min_score: f32) -> Result<Vec<Detection>, DetectError> {
        let map = frame.buffer.map_readable().map_err(|_| DetectError::Frame {
            camera: frame.camera.to_string(),
            message: "buffer cannot be mapped".into(),
        })?;
        let needed = frame.stride * (frame.height as usize - 1) + frame.width as usize * 3;
        if map.len() < needed || frame.stride < frame.width as usize * 3 {
            return Err(DetectError::Frame {
                camera: frame.camera.to_string(),
                message: format!("{} bytes for a {}x{} BGR frame with stride {}", map.len(), frame.width, frame.height, frame.stride),
            });
        }
        self.detect_bgr(map.as_slice(), frame.width, frame.height, frame.stride, min_score)
    }

    /// Detections in `region` of the frame (boxes normalized to the whole frame), the region cut
    /// from the stream's own picture (the analysed frame's where there is none) and scaled to
    /// hold about `budget_px` pixels (see [`region`]). A fixed-size model gets the region scaled
    /// to its input instead.
    pub fn detect_region(&self, frame: &Frame, region: BBox, budget_px: f32, min_score: f32) -> Result<Vec<Detection>, DetectError> {
        use opencv::prelude::*;
        let frame_err = |message: String| DetectError::Frame { camera: frame.camera.to_string(), message };
        let (w_px, h_px) = frame.native.as_ref().map_or((frame.width, frame.height), |n| (n.width(), n.height()));
        let (cut_w_px, cut_h_px) = region::scaled_size(region.width() * w_px as f32, region.height() * h_px as f32, budget_px);
        let (image, _) = crate::render::crop(frame, region, cut_w_px.max(cut_h_px).min(MAX_DETECT_WIDTH_PX)).map_err(frame_err)?;
        let found = if self.manifest.input.free_size().is_some() {
            // A free-size model takes the region at its own size, however it compares to the
            // model's nominal input.
            let bytes = image.data_bytes().map_err(|e| frame_err(e.to_string()))?;
            self.detect_bgr(bytes, image.cols() as u32, image.rows() as u32, image.cols() as usize * 3, min_score)?
        } else {
            self.detect_mat(&image, min_score)?
        };
        let (x, y, w, h) = (region.x1, region.y1, region.width(), region.height());
        let to_frame = |b: BBox| BBox { x1: x + b.x1 * w, y1: y + b.y1 * h, x2: x + b.x2 * w, y2: y + b.y2 * h };
        Ok(found.into_iter().map(|d| Detection { bbox: to_frame(d.bbox), ..d }).collect())
    }

    /// As [`Detector::detect`], on an OpenCV BGR image of any size (scaled down to fit the input).
    pub fn detect_mat(&self, image: &opencv::core::Mat, min_score: f32) -> Result<Vec<Detection>, DetectError> {
        self.with_fitted_bgr(image, |bgr, width, height, stride| self.detect_bgr(bgr, width, height, stride, min_score))
    }

    /// For a `heatmap` model: the probability of each cell of an OpenCV BGR image of any size
    /// (scaled down to fit the input).
    pub fn heatmap(&self, image: &opencv::core::Mat) -> Result<Heatmap, DetectError> {
        let m = &self.manifest;
        let model_err = |message: String| DetectError::Model { model: m.name.clone(), message };
        if m.output.decoder != OutputDecoder::Heatmap {
            return Err(model_err("not a heat-map model (output decoder is not 'heatmap')".into()));
        }
        let cell = m.output.strides[0];
        self.with_fitted_bgr(image, |bgr, width, height, stride| {
            let FrameOutput { values, place, size: (input_width, input_height) } = self.infer_frame(bgr, width, height, stride)?;
            let (cols, rows) = ((input_width / cell) as usize, (input_height / cell) as usize);
            if values.len() != cols * rows {
                return Err(model_err(format!("output has {} values, expected {rows}x{cols} cells of {cell} pixels", values.len())));
            }
            Ok(Heatmap { values, cols, rows, cell_width: cell as f32 / place.width, cell_height: cell as f32 / place.height })
        })
    }

    /// Runs `f` on the image's packed BGR pixels, scaled down first where it exceeds the input.
    fn with_fitted_bgr<T>(&self, image: &opencv::core::Mat, f: impl FnOnce(&[u8], u32, u32, usize) -> Result<T, DetectError>) -> Result<T, DetectError> {
        use opencv::prelude::*;
        let model_err = |e: opencv::Error| DetectError::Model { model: self.manifest.name.clone(), message: e.to_string() };
        let spec = &self.manifest.input;
        let fit = (spec.width as f64 / image.cols() as f64).min(spec.height as f64 / image.rows() as f64).min(1.0);
        if fit >= 1.0 && image.is_continuous() {
            let bytes = image.data_bytes().map_err(model_err)?;
            return f(bytes, image.cols() as u32, image.rows() as u32, image.cols() as usize * 3);
        }
        let mut scaled = opencv::core::Mat::default();
        let size = opencv::core::Size::new((image.cols() as f64 * fit) as i32, (image.rows() as f64 * fit) as i32);
        opencv::imgproc::resize(image, &mut scaled, size, 0.0, 0.0, opencv::imgproc::INTER_AREA).map_err(model_err)?;
        let bytes = scaled.data_bytes().map_err(model_err)?;
        f(bytes, scaled.cols() as u32, scaled.rows() as u32, scaled.cols() as usize * 3)
    }

    /// As [`Detector::detect`], on a packed BGR image already scaled to fit the model input.
    fn detect_bgr(&self, bgr: &[u8], width: u32, height: u32, stride: usize, min_score: f32) -> Result<Vec<Detection>, DetectError> {
        let m = &self.manifest;
        let model_err = |message: String| DetectError::Model { model: m.name.clone(), message };
        let FrameOutput { values: data, place, size: (input_width, input_height) } = self.infer_frame(bgr, width, height, stride)?;
        let mut raw = match m.output.decoder {
            OutputDecoder::Yolox => {
                yolox::decode(&data, m.labels.len(), input_width, input_height, &m.output.strides, &place, min_score).map_err(model_err)?
            }
            OutputDecoder::Yolov8 => yolov8::decode(&data, m.labels.len(), &place, min_score).map_err(model_err)?,
            OutputDecoder::Probability | OutputDecoder::Heatmap => return Err(model_err("a classifier has no boxes to detect".into())),
        };
        if !m.read_as.is_empty() {
            raw.iter_mut().for_each(|d| d.class = m.read_as(d.class));
        }
        let classes = riders::Classes { riders: &m.rider_classes, ridden: &m.ridden_classes, vehicles: &m.vehicle_classes, min_twin_score: m.score_threshold };
        Ok(riders::merge(nms(raw, m.nms_iou, &m.merge_classes, &m.vehicle_classes), &classes))
    }

    /// Runs the model on one packed BGR frame that fits its input, at the input size fitted to the
    /// frame.
    fn infer_frame(&self, bgr: &[u8], width: u32, height: u32, stride: usize) -> Result<FrameOutput, DetectError> {
        let m = &self.manifest;
        let mut state = self.lane();
        let SessionState { session, input } = &mut *state;
        let size = m.input.fitted(width, height);
        input.resize(3 * (size.0 * size.1) as usize, 0.0);
        let place = fill_tensor(&m.input, size, input, bgr, width, height, stride);
        Ok(FrameOutput { values: infer(session, m, size, 1, input)?, place, size })
    }

    /// For a classifier (`probability` decoder): the probability for each image, given as packed
    /// BGR images of exactly the model's input size, run as one batch.
    pub fn classify(&self, images: &[&[u8]]) -> Result<Vec<f32>, DetectError> {
        let m = &self.manifest;
        let model_err = |message: String| DetectError::Model { model: m.name.clone(), message };
        if m.output.decoder != OutputDecoder::Probability {
            return Err(model_err("not an image classifier (output decoder is not 'probability')".into()));
        }
        let (w, h) = (m.input.width, m.input.height);
        let one = 3 * (w * h) as usize;
        if let Some(bad) = images.iter().find(|i| i.len() != one) {
            return Err(model_err(format!("an input image has {} bytes, expected {one} ({w}x{h} BGR)", bad.len())));
        }
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let mut state = self.lane();
        let SessionState { session, input } = &mut *state;
        input.resize(one * images.len(), 0.0);
        for (image, tensor) in images.iter().zip(input.chunks_exact_mut(one)) {
            fill_tensor(&m.input, (w, h), tensor, image, w, h, w as usize * 3);
        }
        let data = infer(session, m, (w, h), images.len(), input)?;
        if data.len() != images.len() {
            return Err(model_err(format!("output has {} values for {} images", data.len(), images.len())));
        }
        Ok(data)
    }
}

/// Runs a batch of `batch` images of `size` (width, height) already in `input` (NCHW) and
/// returns the model's output.
fn infer(session: &mut Session, m: &ModelManifest, size: (u32, u32), batch: usize, input: &[f32]) -> Result<Vec<f32>, DetectError> {
    let model_err = |message: String| DetectError::Model { model: m.name.clone(), message };
    let shape = [batch as i64, 3, size.1 as i64, size.0 as i64];
    let tensor = TensorRef::from_array_view((shape, input)).map_err(|e| model_err(e.to_string()))?;
    let outputs = session.run(ort::inputs![m.input.name.as_str() => tensor]).map_err(|e| model_err(format!("inference failed: {e}")))?;
    let (_, data) = outputs[m.output.name.as_str()].try_extract_tensor::<f32>().map_err(|e| model_err(format!("output '{}': {e}", m.output.name)))?;
    Ok(data.to_vec())
}

/// A model file that differs from the one its manifest describes (truncated copy, replaced file)
/// is refused before ONNX Runtime sees it.
pub(crate) fn verify_checksum(path: &Path, expected: &str) -> Result<(), String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let actual: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(format!("{} has sha256 {actual}, but its manifest says {expected}", path.display()))
    }
}

/// The appsink caps a camera's pipeline must produce for this model: BGR, scaled in GStreamer
/// to fit the input (keeping the aspect ratio unless the model stretches), or to fit
/// `detect_width` pixels for a free-size model.
pub fn input_caps(spec: &InputSpec, detect_width: Option<u32>) -> gst::Caps {
    let builder = gst::Caps::builder("video/x-raw").field("format", "BGR").field("pixel-aspect-ratio", gst::Fraction::new(1, 1));
    let (width, height) = spec.frame_bounds(detect_width);
    match spec.letterbox {
        Letterbox::Stretch => builder.field("width", spec.width as i32).field("height", spec.height as i32),
        Letterbox::TopLeft | Letterbox::Center => {
            builder.field("width", gst::IntRange::new(16, width as i32)).field("height", gst::IntRange::new(16, height as i32))
        }
    }
    .build()
}
