//! The site configuration: one TOML file per site, parsed, validated and resolved before anything runs.
//!
//! Each stage owns the config struct (and checks) for its own part: lines in `analytics`, the
//! tracker in `track`, the detector in `detect`, MQTT in `publish`, source checks in `source`.
//! This module holds the site and camera structs, ties the parts together, turns relative paths into absolute ones (relative to the
//! config file) and collects *every* problem with its key path, so an installer fixes a file in one
//! pass. Nothing here prints secrets: sources are shown through [`redact_url`].

mod errors;
mod paths;

pub use errors::{ConfigError, ConfigErrors};
pub use paths::{Resources, redact_url};

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::detect::motion::MotionConfig;
use crate::analytics::fire::FireConfig;
use crate::analytics::{LineConfig, RuleConfig};
use crate::detect::OutputDecoder;
use crate::detect::DetectorConfig;
use crate::publish::MqttConfig;
use crate::source;
use crate::track::TrackerConfig;

/// The whole site file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Site id, used in MQTT topics and client id. Letters, digits, `-` and `_`.
    pub site: String,
    /// Length of the period over which line counts are summed and published, seconds.
    #[serde(default = "default_counts_interval_s")]
    pub counts_interval_s: u64,
    /// How often the agent publishes its `stats` message, seconds; 0 turns it off.
    #[serde(default = "default_stats_interval_s")]
    pub stats_interval_s: u64,
    #[serde(default)]
    pub detector: DetectorConfig,
    #[serde(default)]
    pub tracker: TrackerConfig,
    /// Where events go; without it they are printed to stdout as JSON lines.
    pub mqtt: Option<MqttConfig>,
    /// The `/metrics` and `/healthz` endpoint; off without it.
    pub metrics: Option<MetricsConfig>,
    pub cameras: Vec<CameraConfig>,
}

fn default_counts_interval_s() -> u64 {
    60
}

fn default_stats_interval_s() -> u64 {
    60
}

/// `[metrics]`: where Prometheus scrapes the agent.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `address:port` to serve `/metrics` and `/healthz` on, e.g. `127.0.0.1:9464`.
    pub listen: String,
}

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

impl SiteConfig {
    /// Reads, parses and validates a site file, resolving model and pipeline names through `resources`.
    pub fn load(path: &Path, resources: &Resources) -> Result<SiteConfig, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::single(path, ConfigError::new("", format!("cannot read the file: {e}")))
        })?;
        let mut config = Self::parse(&text).map_err(|e| ConfigErrors::single(path, e))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        config.resolve_paths(&base);
        let errors = config.validate(resources);
        if errors.is_empty() { Ok(config) } else { Err(ConfigErrors { file: path.to_path_buf(), errors }) }
    }

    /// Parses TOML into the config structs. Serde stops at the first structural error (wrong type,
    /// unknown key), which is reported with its key path and line.
    pub fn parse(text: &str) -> Result<SiteConfig, ConfigError> {
        let deserializer = toml::Deserializer::parse(text).map_err(|e| ConfigError::from_toml(&e, text, ""))?;
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            ConfigError::from_toml(e.inner(), text, &path)
        })
    }

    fn resolve_paths(&mut self, base: &Path) {
        if let Some(mqtt) = &mut self.mqtt {
            mqtt.resolve_paths(base);
        }
        for camera in &mut self.cameras {
            if !source::is_url(&camera.source) {
                camera.source = resolve_relative(base, &camera.source).to_string_lossy().into_owned();
            }
        }
    }

    /// Every semantic problem in the file, each with its key path. Empty when the file is good.
    pub fn validate(&self, resources: &Resources) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        check_id(&self.site, "site", &mut errors);
        if self.counts_interval_s == 0 {
            errors.push(ConfigError::new("counts_interval_s", "must be at least 1 second"));
        }
        self.detector.validate("detector", self.cameras.len(), &mut errors);
        self.tracker.validate("tracker", &mut errors);
        if let Some(mqtt) = &self.mqtt {
            mqtt.validate("mqtt", &mut errors);
        }
        if let Some(metrics) = &self.metrics
            && metrics.listen.parse::<std::net::SocketAddr>().is_err()
        {
            errors.push(ConfigError::new("metrics.listen", format!("'{}' is not an address:port such as 127.0.0.1:9464", metrics.listen)));
        }
        if self.cameras.is_empty() {
            errors.push(ConfigError::new("cameras", "at least one camera is needed"));
        }
        let mut seen = HashSet::new();
        for (i, camera) in self.cameras.iter().enumerate() {
            let path = format!("cameras[{i}]");
            check_id(&camera.id, &format!("{path}.id"), &mut errors);
            if !seen.insert(camera.id.as_str()) {
                errors.push(ConfigError::new(format!("{path}.id"), format!("'{}' is used by another camera", camera.id)));
            }
            source::validate_camera(camera, &path, resources, &mut errors);
            camera.motion.validate(&format!("{path}.motion"), &mut errors);
            let labels = match resources.model(&camera.model) {
                Ok(manifest) => Some(manifest.labels),
                Err(e) => {
                    errors.push(ConfigError::new(format!("{path}.model"), e.to_string()));
                    None
                }
            };
            check_unique_ids(camera.lines.iter().map(|l| l.id.as_str()), &format!("{path}.lines"), "line", &mut errors);
            for (j, line) in camera.lines.iter().enumerate() {
                line.validate(&format!("{path}.lines[{j}]"), labels.as_deref(), &mut errors);
            }
            if let Some(fire) = &camera.fire {
                fire.validate(&format!("{path}.fire"), &mut errors);
                let models = [("classifier", Some(fire.classifier.as_str()), OutputDecoder::Probability, "an image classifier (output decoder 'probability')"), ("smoke_model", fire.smoke_model(), OutputDecoder::Heatmap, "a heat-map model (output decoder 'heatmap')")];
                for (key, name, decoder, what) in models.into_iter().filter_map(|(key, name, decoder, what)| Some((key, name?, decoder, what))) {
                    match resources.model(name).map(|m| m.output.decoder == decoder) {
                        Ok(true) => {}
                        Ok(false) => errors.push(ConfigError::new(format!("{path}.fire.{key}"), format!("model '{name}' is not {what}"))),
                        Err(e) => errors.push(ConfigError::new(format!("{path}.fire.{key}"), e.to_string())),
                    }
                }
                if let Some(name) = &fire.detector {
                    match resources.model(name).map(|m| m.output.decoder == OutputDecoder::Probability) {
                        Ok(false) => {}
                        Ok(true) => errors.push(ConfigError::new(format!("{path}.fire.detector"), format!("model '{name}' is an image classifier, not a detector"))),
                        Err(e) => errors.push(ConfigError::new(format!("{path}.fire.detector"), e.to_string())),
                    }
                }
            }
            check_unique_ids(camera.rules.iter().map(|r| r.id.as_str()), &format!("{path}.rules"), "rule", &mut errors);
            for (j, rule) in camera.rules.iter().enumerate() {
                let rule_path = format!("{path}.rules[{j}]");
                rule.validate(&rule_path, labels.as_deref(), &mut errors);
                if rule.signal_topic().is_some() && self.mqtt.is_none() {
                    errors.push(ConfigError::new(
                        format!("{rule_path}.red_light.signal.topic"),
                        "the signal controller's feed is read over MQTT: configure [mqtt]",
                    ));
                }
            }
        }
        errors
    }
}

/// Reports every id of a camera's lines (or rules) that an earlier one already uses.
fn check_unique_ids<'a>(ids: impl Iterator<Item = &'a str>, path: &str, what: &str, errors: &mut Vec<ConfigError>) {
    let mut seen = HashSet::new();
    for (j, id) in ids.enumerate() {
        if !seen.insert(id) {
            errors.push(ConfigError::new(format!("{path}[{j}].id"), format!("'{id}' is used by another {what} of this camera")));
        }
    }
}

/// Ids end up in MQTT topics, where `/`, `+`, `#` and spaces would break subscriptions.
pub fn check_id(id: &str, path: &str, errors: &mut Vec<ConfigError>) {
    if id.is_empty() {
        errors.push(ConfigError::new(path, "must not be empty"));
    } else if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        errors.push(ConfigError::new(path, format!("'{id}' may hold only letters, digits, '-' and '_'")));
    }
}

/// Checks a normalized point, naming the coordinate that is out of range.
pub fn check_point(point: [f32; 2], path: &str, errors: &mut Vec<ConfigError>) {
    for (value, axis) in point.iter().zip(["x", "y"]) {
        if !(0.0..=1.0).contains(value) {
            errors.push(ConfigError::new(path, format!("{axis} must be within 0..1 (normalized), got {value}")));
        }
    }
}

/// Checks a `classes` list against the camera model's labels (when the model could be loaded).
pub fn check_classes(classes: Option<&[String]>, labels: Option<&[String]>, path: &str, errors: &mut Vec<ConfigError>) {
    if let (Some(classes), Some(labels)) = (classes, labels) {
        if classes.is_empty() {
            errors.push(ConfigError::new(format!("{path}.classes"), "must name at least one class (leave it out for the model's vehicle classes)"));
        }
        for (k, class) in classes.iter().enumerate() {
            if !labels.contains(class) {
                errors.push(ConfigError::new(format!("{path}.classes[{k}]"), format!("'{class}' is not a class of this camera's model")));
            }
        }
    }
}

/// Checks a line segment given as `p1`/`p2` keys under `path`: both normalized, and distinct.
pub fn check_segment(p1: [f32; 2], p2: [f32; 2], path: &str, errors: &mut Vec<ConfigError>) {
    check_point(p1, &format!("{path}.p1"), errors);
    check_point(p2, &format!("{path}.p2"), errors);
    if p1 == p2 {
        errors.push(ConfigError::new(format!("{path}.p2"), "must differ from p1"));
    }
}

/// Resolves `path` against the config file's folder unless it is absolute.
pub fn resolve_relative(base: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}

#[cfg(test)]
mod tests;
