//! Fire, smoke and open burning (`[cameras.fire]`). Each analysed frame gives, per watch zone,
//! evidence from several cues ([`cues`]): the flame classifier on the frame and its tiles, with
//! fire-coloured pixels that flicker; for smoke, the smoke model's cells that score well above
//! what this view usually scores ([`baseline`]), corroborated by grey foreground that stays; and,
//! when configured, a fire/smoke detector model. [`temporal`] turns evidence that persists into
//! `suspected` → `confirmed` → `update` … → `cleared`.

mod baseline;
mod cues;
mod temporal;

pub use temporal::{Evidence, Persistence, Scores, Stage, Transition};

use std::sync::Arc;
use std::time::Duration;

use opencv::core::{Mat, Rect};
use opencv::prelude::*;
use serde::{Deserialize, Serialize};

use super::geometry::{Polygon, check_zone};
use crate::config::{ConfigError, check_id};
use crate::detect::Detector;
use crate::types::BBox;
use baseline::{BaselineFile, BaselineSettings, SmokeBaseline, hot_regions};
use cues::{SmokeCue, classify_tiles, count_in, fire_colour_mask, is_set_at, largest_blob_in, tile_rects, zone_mask};
use temporal::Incident;

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
    /// Seconds a newly hot cell is kept out of the baseline.
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

    pub fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
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
            ("min_fire_pixels", self.min_fire_pixels),
            ("min_flicker", self.min_flicker),
            ("min_smoke_area", self.min_smoke_area),
            ("min_fraction", self.min_fraction),
            ("smoke_threshold", self.smoke_threshold.unwrap_or(0.5)),
            ("smoke_confirm_change_share", self.smoke_confirm_change_share),
        ] {
            if !(0.0..=1.0).contains(&value) {
                errors.push(ConfigError::new(format!("{path}.{key}"), format!("must be within 0..1, got {value}")));
            }
        }
        for (key, value) in [
            ("flame_suspect_after_s", self.flame_suspect_after_s),
            ("flame_confirm_after_s", self.flame_confirm_after_s),
            ("smoke_suspect_after_s", self.smoke_suspect_after_s),
            ("smoke_confirm_after_s", self.smoke_confirm_after_s),
            ("smoke_baseline_interval_s", self.smoke_baseline_interval_s),
            ("smoke_baseline_hold_s", self.smoke_baseline_hold_s),
            ("update_interval_s", self.update_interval_s),
            ("clear_after_s", self.clear_after_s),
            ("cooldown_s", self.cooldown_s),
        ] {
            if !(value >= 0.0 && value.is_finite()) {
                errors.push(ConfigError::new(format!("{path}.{key}"), format!("must be 0 or more seconds, got {value}")));
            }
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
        if self.flame_confirm_after_s < self.flame_suspect_after_s {
            errors.push(ConfigError::new(format!("{path}.flame_confirm_after_s"), "must not be shorter than flame_suspect_after_s"));
        }
        if self.smoke_confirm_after_s < self.smoke_suspect_after_s {
            errors.push(ConfigError::new(format!("{path}.smoke_confirm_after_s"), "must not be shorter than smoke_suspect_after_s"));
        }
    }

    fn persistence(&self, suspect_after_s: f32, confirm_after_s: f32, min_flicker: f32, min_corroborated_share: f32) -> Persistence {
        let s = Duration::from_secs_f32;
        Persistence {
            suspect_after: s(suspect_after_s),
            confirm_after: s(confirm_after_s),
            min_fraction: self.min_fraction,
            max_gap: s(2.0_f32.max(suspect_after_s)),
            min_flicker,
            min_corroborated_share,
            update_interval: s(self.update_interval_s),
            clear_after: s(self.clear_after_s),
            cooldown: s(self.cooldown_s),
        }
    }
}

/// Smoke evidence in one zone, from two cues: the smoke model's newly hot cells (the best region
/// of cells scoring well above what this view usually scores) and the grey-foreground blob (the
/// scene changed and stays changed). Either can raise `suspected`, the model's region taking
/// precedence; they corroborate each other when they overlap, which `confirmed` needs often
/// enough. The model finds smoke too faint or slow to change the scene, and is fooled by things
/// that look like smoke; the blob fires on anything grey that moves in. Without a smoke model,
/// the blob alone, corroborated by nothing else.
fn smoke_evidence(regions: Option<&[baseline::HotRegion]>, blob: Option<(BBox, f32)>) -> Option<Evidence> {
    let Some(best) = regions.and_then(|r| r.first()) else {
        let (region, share) = blob?;
        return Some(Evidence { region, scores: Scores { smoke: share, ..Default::default() }, corroborated: false });
    };
    let change = blob.filter(|(b, _)| b.intersection(&best.region) > 0.0);
    Some(Evidence {
        region: best.region,
        scores: Scores { smoke: change.map_or(0.0, |(_, share)| share), smoke_model: Some(best.p), ..Default::default() },
        corroborated: change.is_some(),
    })
}

/// One alert-worthy change, ready for the events stage.
#[derive(Debug, Clone)]
pub struct FireEvent {
    pub zone: String,
    /// `fire`, `smoke` or `open_burning`.
    pub kind: &'static str,
    pub transition: Transition,
}

struct WatchZone {
    id: String,
    kind: FireKind,
    polygon: Polygon,
    flames: Incident,
    smoke: Incident,
}

impl WatchZone {
    fn alert_kind(&self, smoke: bool) -> &'static str {
        match (self.kind, smoke) {
            (FireKind::OpenBurning, _) => "open_burning",
            (_, true) => "smoke",
            (_, false) => "fire",
        }
    }
}

/// The models a fire watch runs (loaded by the site, shared between cameras).
pub struct FireModels {
    /// Flames, on the frame and its tiles (`classifier`).
    pub flames: Arc<Detector>,
    /// Smoke, per cell of the frame (`smoke_model`).
    pub smoke: Option<Arc<Detector>>,
    /// Fire and smoke boxes (`detector`).
    pub detector: Option<Arc<Detector>>,
}

/// One camera's fire and smoke analytics.
pub struct FireWatch {
    config: FireConfig,
    zones: Vec<WatchZone>,
    masks: Vec<Polygon>,
    models: FireModels,
    smoke_threshold: f32,
    smoke: SmokeCue,
    baseline: SmokeBaseline,
    previous_fire: Option<Mat>,
    /// The zones' pixel masks for the current frame size (frames keep their size).
    masks_cache: Option<ZoneMasks>,
}

/// Each zone less the masks, as a pixel mask, and their union (where smoke is looked for); each
/// zone's bounding rectangle in pixels.
struct ZoneMasks {
    width: i32,
    height: i32,
    zones: Vec<Mat>,
    watched: Mat,
    rects: Vec<Rect>,
}

impl ZoneMasks {
    fn new(frame: &Mat, zones: &[WatchZone], masks: &[Polygon]) -> opencv::Result<ZoneMasks> {
        let zone_masks: Vec<Mat> = zones.iter().map(|z| zone_mask(frame, &z.polygon, masks)).collect::<Result<_, _>>()?;
        let mut watched = zone_masks[0].clone();
        for mask in &zone_masks[1..] {
            let mut union = Mat::default();
            opencv::core::bitwise_or(&watched, mask, &mut union, &opencv::core::no_array())?;
            watched = union;
        }
        let (w, h) = (frame.cols(), frame.rows());
        let rects = zones
            .iter()
            .map(|z| {
                let b = z.polygon.bounds();
                let x = ((b.x1.max(0.0) * w as f32) as i32).min(w - 1);
                let y = ((b.y1.max(0.0) * h as f32) as i32).min(h - 1);
                Rect::new(x, y, (((b.x2.min(1.0) * w as f32).ceil() as i32) - x).max(1), (((b.y2.min(1.0) * h as f32).ceil() as i32) - y).max(1))
            })
            .collect();
        Ok(ZoneMasks { width: w, height: h, zones: zone_masks, watched, rects })
    }
}

impl FireWatch {
    pub fn new(config: &FireConfig, models: FireModels) -> Result<FireWatch, String> {
        let flames = config.persistence(config.flame_suspect_after_s, config.flame_confirm_after_s, config.min_flicker, 0.0);
        let change_share = if models.smoke.is_some() { config.smoke_confirm_change_share } else { 0.0 };
        let smoke = config.persistence(config.smoke_suspect_after_s, config.smoke_confirm_after_s, 0.0, change_share);
        let whole_frame = [FireZoneConfig { id: "frame".into(), kind: FireKind::Fire, zone: vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]] }];
        let zone_configs = if config.zones.is_empty() { &whole_frame[..] } else { &config.zones[..] };
        let zones = zone_configs
            .iter()
            .map(|z| WatchZone { id: z.id.clone(), kind: z.kind, polygon: Polygon::new(&z.zone), flames: Incident::new(flames), smoke: Incident::new(smoke) })
            .collect();
        Ok(FireWatch {
            config: config.clone(),
            zones,
            masks: config.masks.iter().map(|m| Polygon::new(m)).collect(),
            smoke_threshold: config.smoke_threshold.or(models.smoke.as_ref().map(|m| m.manifest().score_threshold)).unwrap_or(0.5),
            models,
            smoke: SmokeCue::new().map_err(|e| e.to_string())?,
            baseline: SmokeBaseline::new(BaselineSettings {
                margin_logit: config.smoke_baseline_margin_logit,
                interval: Duration::from_secs_f32(config.smoke_baseline_interval_s),
                maps: config.smoke_baseline_maps,
                min_maps: config.smoke_baseline_min_maps,
                hold: Duration::from_secs_f32(config.smoke_baseline_hold_s),
            }),
            previous_fire: None,
            masks_cache: None,
        })
    }

    /// Keeps what the smoke model learnt of this camera's view in `path`, so that a restart does
    /// not cost the time it takes to learn it again; takes up what the file holds. An error
    /// names the file; the baseline is then learnt afresh.
    pub fn keep_baseline_in(&mut self, path: std::path::PathBuf) -> Result<(), String> {
        let Some(model) = &self.models.smoke else { return Ok(()) };
        let manifest = model.manifest();
        let model = manifest.sha256.clone().unwrap_or_else(|| manifest.name.clone());
        self.baseline.keep_in(BaselineFile { path, model })
    }

    /// The watch zones, for drawing.
    pub fn zones(&self) -> impl Iterator<Item = (&str, &Polygon)> {
        self.zones.iter().map(|z| (z.id.as_str(), &z.polygon))
    }

    /// Analyses one frame (BGR) at stream time `now`. `objects` are the boxes the camera's
    /// object detector found (never smoke).
    pub fn analyse(&mut self, frame: &Mat, objects: &[BBox], now: Duration) -> Result<Vec<FireEvent>, String> {
        let cv = |e: opencv::Error| e.to_string();
        if self.masks_cache.as_ref().is_none_or(|c| (c.width, c.height) != (frame.cols(), frame.rows())) {
            self.masks_cache = Some(ZoneMasks::new(frame, &self.zones, &self.masks).map_err(cv)?);
        }
        let cache = self.masks_cache.as_ref().expect("set above");
        let flame_area = self.zones.iter().zip(&cache.rects).filter(|(z, _)| z.kind != FireKind::Smoke).map(|(_, r)| *r).reduce(|a, b| a | b);
        let tiles = match flame_area {
            Some(area) => classify_tiles(&self.models.flames, frame, [Rect::new(0, 0, frame.cols(), frame.rows())].into_iter().chain(tile_rects(frame, area)).collect())?,
            None => Vec::new(),
        };
        tracing::debug!(tiles = ?tiles.iter().map(|t| (t.rect.x, t.rect.y, (t.p * 100.0) as i32)).collect::<Vec<_>>(), "flame tiles");
        let fire = fire_colour_mask(frame).map_err(cv)?;
        let previous_fire = self.previous_fire.take();
        let detections = match &self.models.detector {
            Some(d) => d.detect_mat(frame, d.manifest().score_threshold).map_err(|e| e.to_string())?,
            None => Vec::new(),
        };

        let mut events = Vec::new();
        let smoke_blob = if self.config.smoke { self.smoke.observe(frame, &cache.watched, objects, self.config.min_smoke_area).map_err(cv)? } else { None };
        let smoke_map = match &self.models.smoke {
            Some(model) if self.config.smoke => {
                let map = model.heatmap(frame).map_err(|e| e.to_string())?;
                let hot = self.baseline.observe(&map, self.smoke_threshold, now);
                Some((map, hot))
            }
            _ => None,
        };

        for ((zone, allowed), &rect) in self.zones.iter_mut().zip(&cache.zones).zip(&cache.rects) {
            let mut flame_evidence = None;
            if zone.kind != FireKind::Smoke {
                let mut zone_fire = Mat::default();
                opencv::core::bitwise_and(&fire, allowed, &mut zone_fire, &opencv::core::no_array()).map_err(cv)?;
                let hot: Vec<&cues::Tile> = tiles[1..].iter().filter(|t| t.p >= self.config.flame_threshold && (t.rect & rect).area() > 0).collect();
                let (search, flame) = match hot.iter().map(|t| t.rect & rect).reduce(|a, b| a | b) {
                    Some(search) => (Some(search), hot.iter().map(|t| t.p).fold(0.0, f32::max)),
                    None if tiles.first().is_some_and(|t| t.p >= self.config.flame_threshold) => (Some(rect), tiles[0].p),
                    None => (None, 0.0),
                };
                if let Some(search) = search {
                    let lit = count_in(&zone_fire, search).map_err(cv)?;
                    let colour = lit as f32 / search.area().max(1) as f32;
                    let flicker = match &previous_fire {
                        Some(previous) => {
                            let mut changed = Mat::default();
                            opencv::core::bitwise_xor(&fire, previous, &mut changed, allowed).map_err(cv)?;
                            let mut either = Mat::default();
                            opencv::core::bitwise_or(&fire, previous, &mut either, allowed).map_err(cv)?;
                            count_in(&changed, search).map_err(cv)? as f32 / count_in(&either, search).map_err(cv)?.max(1) as f32
                        }
                        None => 0.0,
                    };
                    if colour >= self.config.min_fire_pixels
                        && let Some(region) = largest_blob_in(&zone_fire, search).map_err(cv)?
                    {
                        flame_evidence = Some(Evidence { region, scores: Scores { flame, colour, flicker, ..Default::default() }, corroborated: false });
                    }
                }
            }
            let blob = smoke_blob.filter(|(b, _)| zone.polygon.contains(b.center()));
            // Detected objects (a grey car, a person in a grey coat) are not smoke.
            let watched = |cell: &BBox| is_set_at(allowed, cell.center()) && !objects.iter().any(|o| o.intersection(cell) > 0.0);
            let regions = smoke_map.as_ref().map(|(map, hot)| hot_regions(map, hot, watched));
            let mut smoke_evidence = smoke_evidence(regions.as_deref(), blob);
            // A detector model's boxes are evidence of their own; they also score the cues' evidence.
            for d in &detections {
                let label = self.models.detector.as_ref().map(|m| m.manifest().labels[d.class].as_str()).unwrap_or_default();
                if !zone.polygon.contains(d.bbox.center()) {
                    continue;
                }
                let slot = match label {
                    "fire" | "flame" if zone.kind != FireKind::Smoke => &mut flame_evidence,
                    "smoke" => &mut smoke_evidence,
                    _ => continue,
                };
                let evidence = slot.get_or_insert(Evidence { region: d.bbox, scores: Scores::default(), corroborated: true });
                evidence.scores.detector = Some(evidence.scores.detector.unwrap_or(0.0).max(d.score));
            }
            if let Some(t) = zone.flames.observe(now, flame_evidence) {
                events.push(FireEvent { zone: zone.id.clone(), kind: zone.alert_kind(false), transition: t });
            }
            if let Some(t) = zone.smoke.observe(now, smoke_evidence) {
                events.push(FireEvent { zone: zone.id.clone(), kind: zone.alert_kind(true), transition: t });
            }
        }
        self.previous_fire = Some(fire);
        Ok(events)
    }

    /// The stream restarted, its time from zero again: forgets the last frames; what the smoke
    /// model learnt of the view and the open incidents stay.
    pub fn reset(&mut self) -> Result<(), String> {
        self.previous_fire = None;
        self.baseline.restart_clock();
        for zone in &mut self.zones {
            zone.flames.restart_clock();
            zone.smoke.restart_clock();
        }
        self.smoke = SmokeCue::new().map_err(|e| e.to_string())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baseline::HotRegion;

    const PLUME: BBox = BBox { x1: 0.78, y1: 0.5, x2: 0.9, y2: 0.62 };

    #[test]
    fn the_smoke_model_leads_and_the_change_cue_corroborates_where_they_overlap() {
        let model = [HotRegion { region: PLUME, p: 0.995 }];
        let over_it = Some((BBox { x1: 0.8, y1: 0.45, x2: 0.95, y2: 0.55 }, 0.01));
        let away = BBox { x1: 0.1, y1: 0.1, x2: 0.2, y2: 0.2 };
        let elsewhere = Some((away, 0.02));
        let both = smoke_evidence(Some(&model), over_it).unwrap();
        assert_eq!((both.region, both.scores.smoke_model, both.scores.smoke, both.corroborated), (PLUME, Some(0.995), 0.01, true));
        let apart = smoke_evidence(Some(&model), elsewhere).unwrap();
        assert_eq!((apart.region, apart.scores.smoke, apart.corroborated), (PLUME, 0.0, false), "the model's region leads");
        let change_only = smoke_evidence(Some(&[]), elsewhere).unwrap();
        assert_eq!((change_only.region, change_only.scores.smoke_model, change_only.corroborated), (away, None, false));
        assert!(smoke_evidence(Some(&[]), None).is_none());
        let no_model = smoke_evidence(None, over_it).unwrap();
        assert_eq!((no_model.scores.smoke_model, no_model.scores.smoke), (None, 0.01));
    }
}
