//! `[[cameras]]`: one camera, where its video comes from, how it is analysed, and the analyzers
//! its lines, rules and fire watch describe.

use serde::Deserialize;

use super::Resources;
use crate::analytics::fire::FireConfig;
use crate::analytics::{AnalyzerConfig, CheckContext, LineConfig, RuleConfig};
use crate::check::{ConfigError, check_unique_ids, check_whole_seconds, is_url, redact_url};
use crate::detect::motion::MotionConfig;
use crate::detect::region::DetectRegion;

/// One camera: where its video comes from, how it is analysed and which lines it counts on.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Camera id, unique within the site; used in MQTT topics. Letters, digits, `-` and `_`.
    pub id: String,
    /// `rtsp://` / `rtsps://` URL (prefer the camera's sub-stream) or a video file path
    /// (relative to this config file).
    pub source: String,
    /// Frames analysed per second of video; 0 analyses every frame.
    #[serde(default = "default_analytics_fps")]
    pub analytics_fps: u32,
    /// Decoder pipeline template: a file `pipelines/<name>.pipeline`.
    #[serde(default = "default_pipeline")]
    pub pipeline: String,
    /// Rebuild the stream when no frame has arrived for this long, seconds.
    #[serde(default = "default_no_frames_timeout_s")]
    pub no_frames_timeout_s: u64,
    /// Name of the model in the models directory (a folder holding `manifest.toml`).
    #[serde(default = "default_model")]
    pub model: String,
    /// Counting lines on this camera.
    #[serde(default)]
    pub lines: Vec<LineConfig>,
    /// Traffic rules on this camera; each violation is an alert with an evidence image.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Fire, smoke and open-burning watch.
    pub fire: Option<FireConfig>,
    /// Motion gating: the detector runs only on frames where something moved (and every
    /// `recheck_s` on a still scene).
    #[serde(default)]
    pub motion: MotionConfig,
    /// Width in pixels the frame is scaled to before the detector sees it. Default: the model's
    /// input width (416 for YOLOX-nano), where a motorbike 60 px wide in a 1920-px frame is 13 px
    /// wide and distant ones are missed or taken for cars. A larger width (a multiple of 32, for
    /// models whose input size is free) finds them, at a cost that grows with the pixels:
    /// 832 px costs 3.7 times 416 (`cargo bench --bench inference`).
    pub detect_width_px: Option<u32>,
    /// The part of the view the detector looks at: `"frame"`, `"auto"` or `[x1, y1, x2, y2]`
    /// (normalized). A region is cut from the decoded picture at the
    /// stream's own resolution and given as many input pixels as the whole frame scaled to
    /// `detect_width_px`, so the smaller it is, the larger its vehicles are to the detector, at
    /// about the same cost. `auto` is the camera's lines and rule geometry with a quarter of the
    /// frame around them on every side (the whole frame when they leave little out, or on a
    /// camera without any). Nothing outside the region is detected or tracked. Unset (the
    /// default): the whole frame, and `detect_zoom` may choose the closer look; set, even to
    /// `"frame"`, it turns `detect_zoom` off.
    pub detect_region: Option<DetectRegion>,
    /// On a camera with lines or rules, a model of free input size, and neither `detect_region`
    /// nor `detect_width_px` set: look at frames both as the whole frame and closer (the
    /// `"auto"` region with the pixels of a 640-px frame) until the two looks have found enough
    /// vehicles, and keep the closer look if it finds clearly more (half as many again): a view
    /// whose motorbikes are far away. The closer look costs about twice the inference. Default
    /// `true` ([`crate::detect::zoom`]).
    #[serde(default = "default_detect_zoom")]
    pub detect_zoom: bool,
    /// `"auto"` (default): decode key frames alone while they come at least once per analysed
    /// frame (a camera analysed at 1 fps whose key-frame interval is 1 s), every frame otherwise.
    /// `"all"`: always every frame.
    #[serde(default)]
    pub decode: DecodeFrames,
}

/// `decode` in a camera's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodeFrames {
    #[default]
    Auto,
    All,
}

fn default_detect_zoom() -> bool {
    true
}

fn default_analytics_fps() -> u32 {
    5
}
fn default_pipeline() -> String {
    "software".into()
}
fn default_no_frames_timeout_s() -> u64 {
    10
}

fn default_model() -> String {
    "yolox_nano".into()
}

impl CameraConfig {
    /// A camera at every default, for tools that make one without a site file.
    pub fn with_defaults(id: &str, source: &str) -> CameraConfig {
        #[derive(serde::Serialize)]
        struct Required<'a> {
            id: &'a str,
            source: &'a str,
        }
        let text = toml::to_string(&Required { id, source }).expect("two strings serialize");
        toml::from_str(&text).expect("every other key has a default")
    }

    /// Whether any of its lines or rules reads plates (a congestion zone has no vehicle to read).
    pub fn reads_plates(&self) -> bool {
        self.lines.iter().any(|l| l.plates) || self.rules.iter().any(|r| r.plates && r.congestion.is_none())
    }

    /// The configs of the camera's analyzers with their key paths, in the order they run:
    /// counting lines, each rule, the fire watch.
    pub fn analyzer_configs(&self) -> impl Iterator<Item = (String, &dyn AnalyzerConfig)> {
        let lines = std::iter::once(("lines".to_string(), &self.lines as &dyn AnalyzerConfig));
        let rules = self.rules.iter().enumerate().map(|(j, r)| (format!("rules[{j}]"), r as &dyn AnalyzerConfig));
        let fire = self.fire.iter().map(|f| ("fire".to_string(), f as &dyn AnalyzerConfig));
        lines.chain(rules).chain(fire)
    }

    /// Every problem with this camera's keys below `path` (`cameras[i]`), its id aside (the site
    /// checks ids, which must differ between cameras); `broker` says whether the site has one.
    pub fn validate(&self, path: &str, resources: &Resources, broker: bool, errors: &mut Vec<ConfigError>) {
        self.validate_source(path, resources, errors);
        let plate_models = resources.models_dir.join(crate::plates::MODELS).join("manifest.toml");
        if self.reads_plates() && !plate_models.is_file() {
            errors.push(ConfigError::new(
                path,
                format!("a line or rule reads plates (rules do unless `plates = false`), and the plate models are missing: {} is not a file", plate_models.display()),
            ));
        }
        let standing_rules = self.rules.iter().any(|r| r.no_parking.is_some() || r.no_stopping.is_some() || r.congestion.is_some());
        let recheck_limit_s = MotionConfig::recheck_limit_s(standing_rules, self.rules.iter().filter_map(|r| Some(r.congestion.as_ref()?.clear_s)));
        self.motion.validate(&format!("{path}.motion"), recheck_limit_s, errors);
        if let Some(region) = &self.detect_region {
            region.validate(&format!("{path}.detect_region"), errors);
        }
        let labels = match resources.model(&self.model) {
            Ok(manifest) => {
                if let Some(width) = self.detect_width_px
                    && let Err(e) = manifest.input.check_width(width)
                {
                    errors.push(ConfigError::new(format!("{path}.detect_width_px"), format!("model {}: {e}", self.model)));
                }
                Some(manifest.reported_labels())
            }
            Err(e) => {
                errors.push(ConfigError::new(format!("{path}.model"), e.to_string()));
                None
            }
        };
        check_unique_ids(self.rules.iter().map(|r| r.id.as_str()), &format!("{path}.rules"), "rule", errors);
        let ctx = CheckContext { labels: labels.as_deref(), broker, model: &|name| resources.model(name) };
        for (key, config) in self.analyzer_configs() {
            config.validate(&format!("{path}.{key}"), &ctx, errors);
        }
    }

    /// Where the video comes from, how often it is analysed, how it is decoded.
    fn validate_source(&self, path: &str, resources: &Resources, errors: &mut Vec<ConfigError>) {
        if is_url(&self.source) {
            if let Err(e) = url::Url::parse(&self.source) {
                errors.push(ConfigError::new(format!("{path}.source"), format!("'{}' is not a valid URL: {e}", redact_url(&self.source))));
            }
        } else if self.source.contains("://") {
            errors.push(ConfigError::new(format!("{path}.source"), format!("'{}': only rtsp:// and rtsps:// URLs or file paths are supported", redact_url(&self.source))));
        } else if !std::path::Path::new(&self.source).is_file() {
            errors.push(ConfigError::new(format!("{path}.source"), format!("file {} does not exist", self.source)));
        }
        if self.analytics_fps > MAX_ANALYTICS_FPS {
            errors.push(ConfigError::new(format!("{path}.analytics_fps"), format!("{} is more than {MAX_ANALYTICS_FPS} frames per second", self.analytics_fps)));
        }
        check_whole_seconds(self.no_frames_timeout_s, &format!("{path}.no_frames_timeout_s"), errors);
        if let Err(e) = resources.pipeline(&self.pipeline) {
            errors.push(ConfigError::new(format!("{path}.pipeline"), e.to_string()));
        }
    }
}

/// Above this, a camera's frame rate is a typo: no camera streams faster.
const MAX_ANALYTICS_FPS: u32 = 120;
