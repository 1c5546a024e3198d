//! `[cameras.fire]`: the watch zones and masks, the models, and the thresholds and times of each
//! cue, with their defaults and checks; it builds the camera's [`FireWatch`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{FireModels, FireWatch, Persistence};
use crate::analytics::analyzer::{Analyzer, AnalyzerConfig, BuildContext, CheckContext};
use crate::analytics::geometry::check_zone;
use crate::check::{ConfigError, check_id, check_seconds};
use crate::detect::OutputDecoder;

/// What a watch zone is, and so what its alerts are called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FireKind {
    /// Flames (alerts `fire`) and smoke (alerts `smoke`): buildings, forest edges, roads.
    Fire,
    /// Smoke only (alerts `smoke`): far hillsides, where flames are too small to see.
    Smoke,
    /// Flames or smoke, both alerted as `open_burning`: rice and crop fields.
    OpenBurning,
}

/// `[[cameras.fire.zones]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FireZoneConfig {
    pub id: String,
    pub kind: FireKind,
    /// Polygon of normalized `[x, y]` points.
    pub zone: Vec<[f32; 2]>,
}

/// `[cameras.fire]` in the site config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FireConfig {
    /// Watch zones. Default: the whole frame, kind `fire`, id `frame`.
    #[serde(default)]
    pub zones: Vec<FireZoneConfig>,
    /// Polygons never watched (sky with clouds and sunsets, a road with headlights, a lamp).
    #[serde(default)]
    pub masks: Vec<Vec<[f32; 2]>>,
    /// The flame classifier: a model with the `probability` decoder.
    #[serde(default = "default_classifier")]
    pub classifier: String,
    /// An optional YOLO-family fire/smoke detector (labels `fire` or `flame`, and `smoke`).
    pub detector: Option<String>,
    /// Classifier probability at which the frame or a tile shows flames (0..1).
    #[serde(default = "default_flame_threshold")]
    pub flame_threshold: f32,
    /// Classifier probability from which, up to `flame_threshold`, a tile shows flames if its
    /// fire-coloured pixels also flicker by `weak_flame_min_flicker` in a view that stands still
    /// or is followed (0..1): a real fire the classifier is unsure of (a grainy CCTV picture, an
    /// overexposed flame) still flickers; a red sign or a sunset does not.
    #[serde(default = "default_weak_flame_threshold")]
    pub weak_flame_threshold: f32,
    /// Flicker a weak tile's fire-coloured pixels need in that frame (0..1).
    #[serde(default = "default_weak_flame_min_flicker")]
    pub weak_flame_min_flicker: f32,
    /// Share of fire-coloured pixels needed where the classifier sees flames (0..1).
    #[serde(default = "default_min_fire_pixels")]
    pub min_fire_pixels: f32,
    /// Mean flicker (share of fire-coloured pixels changing between frames) a flame alert needs
    /// to be confirmed (0..1). Sunsets and lamps do not flicker.
    #[serde(default = "default_min_flicker")]
    pub min_flicker: f32,
    /// Whether to look for smoke.
    #[serde(default = "default_true")]
    pub smoke: bool,
    /// The smoke model (a `heatmap` model: P(smoke) per cell of the frame), the smoke cue; ""
    /// for none, which makes the grey-foreground cue the smoke cue.
    #[serde(default = "default_smoke_model")]
    pub smoke_model: String,
    /// Smoke model probability at which a cell shows smoke (0..1). Default: the model's
    /// `score_threshold`.
    pub smoke_threshold: Option<f32>,
    /// How far above what it usually scores (its baseline, in logits) a cell must score.
    #[serde(default = "default_smoke_baseline_margin_logit")]
    pub smoke_baseline_margin_logit: f32,
    /// Seconds between the heat maps the baseline learns.
    #[serde(default = "default_smoke_baseline_interval_s")]
    pub smoke_baseline_interval_s: f32,
    /// How many learnt heat maps the baseline keeps.
    #[serde(default = "default_smoke_baseline_maps")]
    pub smoke_baseline_maps: usize,
    /// How many learnt heat maps the smoke model needs before its cells are judged.
    #[serde(default = "default_smoke_baseline_min_maps")]
    pub smoke_baseline_min_maps: usize,
    /// Seconds a newly hot cell, and the cells around it, are kept out of the baseline.
    #[serde(default = "default_smoke_baseline_hold_s")]
    pub smoke_baseline_hold_s: f32,
    /// Share of the smoke evidence frames in which the smoke model and the grey-foreground cue
    /// must agree (overlap) for `confirmed` (0..1).
    #[serde(default = "default_smoke_confirm_change_share")]
    pub smoke_confirm_change_share: f32,
    /// Smallest smoke candidate, as a share of the frame (0..1).
    #[serde(default = "default_min_smoke_area")]
    pub min_smoke_area: f32,
    /// Seconds of persistent flame evidence before `suspected`, and before `confirmed`.
    #[serde(default = "default_flame_suspect_after_s")]
    pub flame_suspect_after_s: f32,
    #[serde(default = "default_flame_confirm_after_s")]
    pub flame_confirm_after_s: f32,
    /// Seconds of persistent smoke evidence before `suspected`, and before `confirmed`.
    #[serde(default = "default_smoke_suspect_after_s")]
    pub smoke_suspect_after_s: f32,
    #[serde(default = "default_smoke_confirm_after_s")]
    pub smoke_confirm_after_s: f32,
    /// Seconds the smoke model must keep finding smoke at one place (in `min_fraction` of the
    /// analysed frames) for `confirmed` without the grey-foreground cue agreeing.
    #[serde(default = "default_smoke_rooted_confirm_after_s")]
    pub smoke_rooted_confirm_after_s: f32,
    /// Share of analysed frames that must show evidence while it persists (0..1).
    #[serde(default = "default_min_fraction")]
    pub min_fraction: f32,
    /// Seconds between `update`s while a confirmed fire goes on.
    #[serde(default = "default_update_interval_s")]
    pub update_interval_s: f32,
    /// Seconds without evidence before `cleared`.
    #[serde(default = "default_clear_after_s")]
    pub clear_after_s: f32,
    /// Seconds after `cleared` before the zone may raise the same kind again.
    #[serde(default = "default_cooldown_s")]
    pub cooldown_s: f32,
}

fn default_classifier() -> String {
    "onfire_shufflenetv2".into()
}
fn default_smoke_baseline_margin_logit() -> f32 {
    2.0
}
fn default_smoke_baseline_interval_s() -> f32 {
    60.0
}
fn default_smoke_baseline_maps() -> usize {
    60
}
fn default_smoke_baseline_min_maps() -> usize {
    10
}
fn default_smoke_baseline_hold_s() -> f32 {
    600.0
}
fn default_smoke_confirm_change_share() -> f32 {
    0.3
}
fn default_smoke_model() -> String {
    "smoke_cells".into()
}
fn default_flame_threshold() -> f32 {
    0.9
}
fn default_weak_flame_threshold() -> f32 {
    0.6
}
fn default_weak_flame_min_flicker() -> f32 {
    0.3
}
fn default_min_fire_pixels() -> f32 {
    0.01
}
fn default_min_flicker() -> f32 {
    0.05
}
fn default_true() -> bool {
    true
}
fn default_min_smoke_area() -> f32 {
    0.003
}
fn default_flame_suspect_after_s() -> f32 {
    1.0
}
fn default_flame_confirm_after_s() -> f32 {
    2.0
}
fn default_smoke_suspect_after_s() -> f32 {
    4.0
}
fn default_smoke_confirm_after_s() -> f32 {
    8.0
}
fn default_smoke_rooted_confirm_after_s() -> f32 {
    180.0
}
fn default_min_fraction() -> f32 {
    0.6
}
fn default_update_interval_s() -> f32 {
    60.0
}
fn default_clear_after_s() -> f32 {
    30.0
}
fn default_cooldown_s() -> f32 {
    120.0
}

/// Evidence may be missing this long (or, when longer, as long as it takes to suspect) without
/// breaking its persistence, seconds: a flame hidden for a frame or two by smoke or a passer-by.
const MIN_GAP_S: f32 = 2.0;

impl Default for FireConfig {
    fn default() -> Self {
        toml::from_str("").expect("every key has a default")
    }
}

impl FireConfig {
    /// The smoke model's name, when smoke is watched with one.
    pub fn smoke_model(&self) -> Option<&str> {
        (self.smoke && !self.smoke_model.is_empty()).then_some(self.smoke_model.as_str())
    }

    /// Every problem with the keys of `[cameras.fire]`, models aside.
    fn validate_keys(&self, path: &str, errors: &mut Vec<ConfigError>) {
        let mut ids = std::collections::HashSet::new();
        for (i, zone) in self.zones.iter().enumerate() {
            let at = format!("{path}.zones[{i}]");
            check_id(&zone.id, &format!("{at}.id"), errors);
            if !ids.insert(zone.id.as_str()) {
                errors.push(ConfigError::new(format!("{at}.id"), format!("'{}' is used by another fire zone of this camera", zone.id)));
            }
            check_zone(&zone.zone, &format!("{at}.zone"), errors);
        }
        for (i, mask) in self.masks.iter().enumerate() {
            check_zone(mask, &format!("{path}.masks[{i}]"), errors);
        }
        for (key, value) in [
            ("flame_threshold", self.flame_threshold),
            ("weak_flame_threshold", self.weak_flame_threshold),
            ("weak_flame_min_flicker", self.weak_flame_min_flicker),
            ("min_fire_pixels", self.min_fire_pixels),
            ("min_flicker", self.min_flicker),
            ("min_smoke_area", self.min_smoke_area),
            ("min_fraction", self.min_fraction),
            ("smoke_threshold", self.smoke_threshold.unwrap_or_default()),
            ("smoke_confirm_change_share", self.smoke_confirm_change_share),
        ] {
            if !(0.0..=1.0).contains(&value) {
                errors.push(ConfigError::new(format!("{path}.{key}"), format!("must be within 0..1, got {value}")));
            }
        }
        if self.weak_flame_threshold > self.flame_threshold {
            errors.push(ConfigError::new(format!("{path}.weak_flame_threshold"), format!("must not exceed flame_threshold ({}), got {}", self.flame_threshold, self.weak_flame_threshold)));
        }
        for (key, value) in [
            ("flame_suspect_after_s", self.flame_suspect_after_s),
            ("flame_confirm_after_s", self.flame_confirm_after_s),
            ("smoke_suspect_after_s", self.smoke_suspect_after_s),
            ("smoke_confirm_after_s", self.smoke_confirm_after_s),
            ("smoke_rooted_confirm_after_s", self.smoke_rooted_confirm_after_s),
            ("smoke_baseline_interval_s", self.smoke_baseline_interval_s),
            ("smoke_baseline_hold_s", self.smoke_baseline_hold_s),
            ("clear_after_s", self.clear_after_s),
            ("cooldown_s", self.cooldown_s),
        ] {
            check_seconds(value, &format!("{path}.{key}"), errors);
        }
        if !(self.smoke_baseline_margin_logit >= 0.0 && self.smoke_baseline_margin_logit.is_finite()) {
            errors.push(ConfigError::new(format!("{path}.smoke_baseline_margin_logit"), format!("must be 0 or more, got {}", self.smoke_baseline_margin_logit)));
        }
        if self.smoke_baseline_maps == 0 {
            errors.push(ConfigError::new(format!("{path}.smoke_baseline_maps"), "must be 1 or more"));
        }
        if self.smoke_baseline_min_maps > self.smoke_baseline_maps {
            errors.push(ConfigError::new(format!("{path}.smoke_baseline_min_maps"), format!("must not exceed smoke_baseline_maps ({})", self.smoke_baseline_maps)));
        }
        if self.update_interval_s.is_nan() || self.update_interval_s < 1.0 {
            errors.push(ConfigError::new(format!("{path}.update_interval_s"), format!("must be at least 1 s (each update carries an evidence image), got {}", self.update_interval_s)));
        } else {
            check_seconds(self.update_interval_s, &format!("{path}.update_interval_s"), errors);
        }
        if self.flame_confirm_after_s < self.flame_suspect_after_s {
            errors.push(ConfigError::new(format!("{path}.flame_confirm_after_s"), "must not be shorter than flame_suspect_after_s"));
        }
        if self.smoke_confirm_after_s < self.smoke_suspect_after_s {
            errors.push(ConfigError::new(format!("{path}.smoke_confirm_after_s"), "must not be shorter than smoke_suspect_after_s"));
        }
        // The model alone is the weaker evidence: it never confirms sooner than both cues do.
        if self.smoke_rooted_confirm_after_s < self.smoke_confirm_after_s {
            errors.push(ConfigError::new(format!("{path}.smoke_rooted_confirm_after_s"), "must not be shorter than smoke_confirm_after_s"));
        }
    }

    /// Checks that each model named is there and of the kind its key needs.
    fn validate_models(&self, path: &str, ctx: &CheckContext, errors: &mut Vec<ConfigError>) {
        let models = [
            ("classifier", Some(self.classifier.as_str()), OutputDecoder::Probability, "an image classifier (output decoder 'probability')"),
            ("smoke_model", self.smoke_model(), OutputDecoder::Heatmap, "a heat-map model (output decoder 'heatmap')"),
        ];
        for (key, name, decoder, what) in models.into_iter().filter_map(|(key, name, decoder, what)| Some((key, name?, decoder, what))) {
            match (ctx.model)(name).map(|m| m.output.decoder == decoder) {
                Ok(true) => {}
                Ok(false) => errors.push(ConfigError::new(format!("{path}.{key}"), format!("model '{name}' is not {what}"))),
                Err(e) => errors.push(ConfigError::new(format!("{path}.{key}"), e.to_string())),
            }
        }
        if let Some(name) = &self.detector {
            match (ctx.model)(name).map(|m| m.output.decoder == OutputDecoder::Probability) {
                Ok(false) => {}
                Ok(true) => errors.push(ConfigError::new(format!("{path}.detector"), format!("model '{name}' is an image classifier, not a detector"))),
                Err(e) => errors.push(ConfigError::new(format!("{path}.detector"), e.to_string())),
            }
        }
    }

    /// How a cue's evidence persists into alerts, with the given times (seconds) and shares.
    pub(super) fn persistence(&self, suspect_after_s: f32, confirm_after_s: f32, min_flicker: f32, min_corroborated_share: f32, rooted_confirm_after_s: Option<f32>) -> Persistence {
        let s = Duration::from_secs_f32;
        Persistence {
            suspect_after: s(suspect_after_s),
            confirm_after: s(confirm_after_s),
            min_fraction: self.min_fraction,
            max_gap: s(MIN_GAP_S.max(suspect_after_s)),
            min_flicker,
            min_corroborated_share,
            rooted_confirm_after: rooted_confirm_after_s.map(s),
            update_interval: s(self.update_interval_s),
            clear_after: s(self.clear_after_s),
            cooldown: s(self.cooldown_s),
        }
    }
}

impl AnalyzerConfig for FireConfig {
    fn validate(&self, path: &str, ctx: &CheckContext, errors: &mut Vec<ConfigError>) {
        self.validate_keys(path, errors);
        self.validate_models(path, ctx, errors);
    }

    fn build(&self, ctx: &mut BuildContext) -> Result<Box<dyn Analyzer>, String> {
        let models = FireModels {
            flames: (ctx.model)(&self.classifier)?,
            smoke: self.smoke_model().map(|m| (ctx.model)(m)).transpose()?,
            detector: self.detector.as_deref().map(|d| (ctx.model)(d)).transpose()?,
        };
        let mut watch = FireWatch::new(self, models).map_err(|e| format!("camera {}: fire analytics: {e}", ctx.camera))?;
        if let Some(dir) = ctx.state_dir
            && let Err(e) = watch.keep_baseline_in(dir.join("smoke-baseline").join(format!("{}.bin", ctx.camera)))
        {
            tracing::warn!(camera = %ctx.camera, "{e}");
        }
        Ok(Box::new(watch))
    }
}
