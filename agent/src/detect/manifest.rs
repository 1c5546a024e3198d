//! The model manifest: a `manifest.toml` beside each ONNX file saying how to feed it and read it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::types::ClassId;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("model manifest {path}: cannot read it: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("model manifest {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("model manifest {path}: labels file {labels}: {source}")]
    Labels { path: PathBuf, labels: PathBuf, source: std::io::Error },
}

/// How the detector's raw output is turned into boxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputDecoder {
    /// YOLOX head without decode in the graph: `[1, anchors, 5 + classes]`, grid per stride.
    Yolox,
    /// YOLOv8-style head: `[1, 4 + classes, anchors]`, boxes decoded, no objectness.
    Yolov8,
    /// An image classifier: `[N, 1]`, the probability of the one class per input image.
    Probability,
    /// A dense classifier: `[1, 1, H / stride, W / stride]`, the probability of the one class
    /// for each cell of the input (one stride in `strides`).
    Heatmap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorOrder {
    Bgr,
    Rgb,
}

/// How a frame of another aspect ratio is fitted into the model's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Letterbox {
    /// Keep the aspect ratio, paste at the top-left corner, pad the rest (YOLOX).
    TopLeft,
    /// Keep the aspect ratio, centre, pad both sides (YOLOv5/v8).
    Center,
    /// Stretch to the input size.
    Stretch,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Only `nchw` is supported for now.
    pub layout: String,
    pub color: ColorOrder,
    /// Pixel value fed = (value * scale - mean[c]) / std[c], channels in `color` order.
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub letterbox: Letterbox,
    /// Padding value, in 0..255 pixel units before normalization.
    pub pad_value: f32,
    /// The model also takes smaller inputs whose sides are multiples of this (its height and
    /// width are symbolic): each frame runs at the smallest such size that holds it, so a 16:9
    /// frame is not padded to a square. `top_left` letterbox only.
    #[serde(default)]
    pub size_multiple: Option<u32>,
}

/// The widest frame a free-size model is given: beyond it one inference takes seconds on a small box.
pub const MAX_DETECT_WIDTH_PX: u32 = 1920;

impl InputSpec {
    /// Whether the model's input size is free (a multiple of `size_multiple`, pasted top-left),
    /// so frames larger than `width` x `height` may run at their own size.
    pub(crate) fn free_size(&self) -> Option<u32> {
        match (self.size_multiple, &self.letterbox) {
            (Some(m), Letterbox::TopLeft) if m > 0 => Some(m),
            _ => None,
        }
    }

    /// The input size (width, height) a `width` x `height` frame runs at: the frame rounded up
    /// to the size multiple for a free-size model, else the model's fixed size.
    pub fn fitted(&self, width: u32, height: u32) -> (u32, u32) {
        match self.free_size() {
            Some(m) => (width.div_ceil(m).max(1) * m, height.div_ceil(m).max(1) * m),
            None => (self.width, self.height),
        }
    }

    /// The largest frame (width, height) this model is given when frames are scaled to
    /// `detect_width` pixels wide (default: the model's own width), keeping the input's shape.
    pub fn frame_bounds(&self, detect_width: Option<u32>) -> (u32, u32) {
        match (detect_width, self.free_size()) {
            (Some(w), Some(_)) => (w, (self.height as u64 * w as u64 / self.width as u64) as u32),
            _ => (self.width, self.height),
        }
    }

    /// Whether frames may be scaled to `width` pixels for this model.
    pub fn check_width(&self, width: u32) -> Result<(), String> {
        match self.free_size() {
            None if width != self.width => Err(format!("its input is fixed at {}x{}: detect_width_px must be left out or {}", self.width, self.height, self.width)),
            Some(m) if !width.is_multiple_of(m) || width < m || width > MAX_DETECT_WIDTH_PX => {
                Err(format!("must be a multiple of {m} from {m} to {MAX_DETECT_WIDTH_PX}, got {width}"))
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub name: String,
    pub decoder: OutputDecoder,
    /// Grid strides (`yolox`; `heatmap`: exactly one).
    #[serde(default)]
    pub strides: Vec<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    name: String,
    file: String,
    sha256: Option<String>,
    licence: String,
    /// Where the model came from; it must exist beside the manifest.
    provenance: String,
    labels: String,
    input: InputSpec,
    output: OutputSpec,
    score_threshold: f32,
    #[serde(default = "default_nms_iou")]
    nms_iou: f32,
    /// Classes suppressed against each other in NMS, so one vehicle seen as car and truck is one object.
    #[serde(default)]
    merge_classes: Vec<String>,
    /// Default classes counted on lines when a line names none; also the classes one vehicle may
    /// be boxed as (see `nms::SAME_VEHICLE_IOU`).
    #[serde(default)]
    vehicle_classes: Vec<String>,
    /// Classes that carry a licence plate (default: the vehicle classes).
    plate_classes: Option<Vec<String>>,
    /// Classes that ride (a person) and classes that are ridden (motorcycle, bicycle): a rider on
    /// a ridden vehicle is part of it, one object (see `riders.rs`). A rider the detector also
    /// boxes as another vehicle class, on the same box, rides the first ridden class.
    #[serde(default)]
    rider_classes: Vec<String>,
    #[serde(default)]
    ridden_classes: Vec<String>,
    /// Classes taken as another as soon as the model gives them (before NMS), e.g. `train =
    /// "truck"`. No chains: a class read as another is not itself read as a third, nor as itself.
    #[serde(default)]
    read_as: BTreeMap<String, String>,
}

fn default_nms_iou() -> f32 {
    0.45
}

/// A loaded manifest with paths resolved and class names turned into indices.
#[derive(Debug, Clone)]
pub struct ModelManifest {
    pub name: String,
    pub model_path: PathBuf,
    pub sha256: Option<String>,
    pub licence: String,
    pub labels: Vec<String>,
    pub input: InputSpec,
    pub output: OutputSpec,
    pub score_threshold: f32,
    pub nms_iou: f32,
    pub merge_classes: Vec<usize>,
    pub vehicle_classes: Vec<usize>,
    pub plate_classes: Vec<usize>,
    pub rider_classes: Vec<usize>,
    pub ridden_classes: Vec<usize>,
    /// `read_as`: the class the model gives, and the one it stands for.
    pub read_as: Vec<(ClassId, ClassId)>,
}

impl ModelManifest {
    pub fn load(path: &Path) -> Result<ModelManifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.into(), source })?;
        let invalid = |message: String| ManifestError::Invalid { path: path.into(), message };
        let file: ManifestFile = toml::from_str(&text).map_err(|e| invalid(e.message().to_string()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let labels_path = dir.join(&file.labels);
        let labels: Vec<String> = std::fs::read_to_string(&labels_path)
            .map_err(|source| ManifestError::Labels { path: path.into(), labels: labels_path.clone(), source })?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        let class_ids = |names: &[String], key: &str| -> Result<Vec<usize>, ManifestError> {
            names
                .iter()
                .map(|n| labels.iter().position(|l| l == n).ok_or_else(|| invalid(format!("{key}: '{n}' is not in the labels file"))))
                .collect()
        };
        let merge_classes = class_ids(&file.merge_classes, "merge_classes")?;
        let vehicle_classes = class_ids(&file.vehicle_classes, "vehicle_classes")?;
        let plate_classes = match &file.plate_classes {
            Some(names) => class_ids(names, "plate_classes")?,
            None => vehicle_classes.clone(),
        };
        let rider_classes = class_ids(&file.rider_classes, "rider_classes")?;
        let ridden_classes = class_ids(&file.ridden_classes, "ridden_classes")?;
        for (given, meant) in &file.read_as {
            if given == meant {
                return Err(invalid(format!("read_as: '{given}' is read as itself")));
            }
            if let Some(next) = file.read_as.get(meant) {
                return Err(invalid(format!("read_as: '{given}' is read as '{meant}', which is itself read as '{next}' (read '{given}' as '{next}')")));
            }
        }
        let (given, meant): (Vec<String>, Vec<String>) = file.read_as.into_iter().unzip();
        let read_as: Vec<(ClassId, ClassId)> = class_ids(&given, "read_as (a class read as another)")?.into_iter().zip(class_ids(&meant, "read_as (the class it is read as)")?).collect();
        // A class read as another is never reported, so naming it in a list would do nothing.
        let lists = [("merge_classes", &merge_classes), ("vehicle_classes", &vehicle_classes), ("plate_classes", &plate_classes), ("rider_classes", &rider_classes), ("ridden_classes", &ridden_classes)];
        for (key, list) in lists {
            if let Some(&(given, meant)) = read_as.iter().find(|(given, _)| list.contains(given)) {
                return Err(invalid(format!("{key}: '{}' is read as '{}' (read_as): name '{}'", labels[given], labels[meant], labels[meant])));
            }
        }
        if !dir.join(&file.provenance).is_file() {
            return Err(invalid(format!("provenance: {} does not exist beside the manifest", file.provenance)));
        }
        if file.input.layout != "nchw" {
            return Err(invalid(format!("input.layout: '{}' is not supported (only nchw)", file.input.layout)));
        }
        if file.input.width == 0 || file.input.height == 0 {
            return Err(invalid("input.width/height must be positive".into()));
        }
        if file.output.decoder == OutputDecoder::Yolox && (file.output.strides.is_empty() || file.output.strides.contains(&0)) {
            return Err(invalid("output.strides must name at least one stride for the yolox decoder, each positive".into()));
        }
        if file.output.decoder == OutputDecoder::Heatmap && (file.output.strides.len() != 1 || file.output.strides[0] == 0) {
            return Err(invalid("output.strides must name exactly one positive stride for the heatmap decoder".into()));
        }
        Ok(ModelManifest {
            name: file.name,
            model_path: dir.join(file.file),
            sha256: file.sha256,
            licence: file.licence,
            labels,
            input: file.input,
            output: file.output,
            score_threshold: file.score_threshold,
            nms_iou: file.nms_iou,
            merge_classes,
            vehicle_classes,
            plate_classes,
            rider_classes,
            ridden_classes,
            read_as,
        })
    }

    /// Class ids for a rule's or line's `classes` (label names); `None` means the vehicle classes.
    /// Names the model lacks or reads as another were reported by config validation; the first are
    /// skipped here, the second match nothing.
    pub fn resolve_classes(&self, names: Option<&[String]>) -> Vec<usize> {
        match names {
            Some(names) => names.iter().filter_map(|n| self.class_id(n)).collect(),
            None => self.vehicle_classes.clone(),
        }
    }

    pub fn class_id(&self, name: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == name)
    }

    /// The class a detection of `class` is taken as (see `read_as`).
    pub fn read_as(&self, class: ClassId) -> ClassId {
        self.read_as.iter().find(|(given, _)| *given == class).map_or(class, |&(_, meant)| meant)
    }

    /// The class names detections may carry: the labels, less those read as another.
    pub fn reported_labels(&self) -> Vec<String> {
        self.labels.iter().enumerate().filter(|&(c, _)| self.read_as(c) == c).map(|(_, l)| l.clone()).collect()
    }
}
