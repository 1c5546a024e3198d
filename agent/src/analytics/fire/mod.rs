//! Fire, smoke and open burning (`[cameras.fire]`). Each analysed frame gives, per watch zone,
//! evidence from several cues ([`cues`]): the flame classifier on the frame and its tiles, with
//! fire-coloured pixels that flicker; for smoke, the smoke model's cells that score well above
//! what this view usually scores ([`baseline`]), corroborated by grey foreground that stays; and,
//! when configured, a fire/smoke detector model. [`temporal`] turns evidence that persists into
//! `suspected` → `confirmed` → `update` … → `cleared`.

mod baseline;
mod config;
mod cues;
mod temporal;
mod view;

pub use config::{FireConfig, FireKind, FireZoneConfig};

pub use temporal::{Evidence, Persistence, Scores, Stage, Transition};
use temporal::FrameClock;

use std::sync::Arc;
use std::time::Duration;

use opencv::core::{Mat, Rect};
use opencv::prelude::*;
use super::analyzer::{Analyzer, Finding, FrameContext};
use super::geometry::Polygon;
use crate::detect::Detector;
use crate::render::{Overlay, Shape, Tone};
use crate::types::{BBox, Point};
use baseline::{BaselineFile, BaselineSettings, SmokeBaseline, hot_regions};
use cues::{SmokeCue, classify_tiles, count_in, fire_colour_mask, is_set_at, largest_blob_in, lit_tiles, tile_rects, zone_mask};
use temporal::Incident;
use view::{ViewMotion, ViewTracker, shifted, signature};

/// Smoke evidence in one zone, from two cues: the smoke model's newly hot cells (the best region
/// of cells scoring well above what this view usually scores) and the grey-foreground blob (the
/// scene changed and stays changed). Either can raise `suspected`, the model's region taking
/// precedence; they corroborate each other when they overlap, and that often enough confirms it,
/// as does the model finding it where it rose for minutes ([`temporal`]). The model finds smoke
/// too faint or slow to change the scene, and is fooled by things that look like smoke; the blob
/// fires on anything grey that moves in. Without a smoke model, the blob alone, corroborated by
/// nothing else. Of the model's regions, the one meeting `seen` (where the zone's open incident
/// has been) is taken before a better one elsewhere: a plume's updates follow the plume, not a
/// patch of haze that scores higher in one frame.
fn smoke_evidence(regions: Option<&[baseline::HotRegion]>, blob: Option<(BBox, f32)>, seen: Option<BBox>) -> Option<Evidence> {
    let regions = regions.unwrap_or_default();
    let Some(best) = regions.iter().find(|r| seen.is_some_and(|s| s.intersection(&r.region) > 0.0)).or(regions.first()) else {
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
    /// While its smoke incident is confirmed: the view (of the smoke baseline) it was confirmed in,
    /// and where it has been in that view, whose cells are kept out of learning. Kept here, not
    /// in the incident, because a PTZ camera's other views start the incident's places afresh.
    confirmed: Option<(usize, BBox)>,
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
    view: ViewTracker,
    /// Whether the camera may look at another view (one of its presets) than when the smoke
    /// model last judged a frame: it moved since, or the agent has just started.
    moved_since_judged: bool,
    clock: FrameClock,
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
        let flames = config.persistence(config.flame_suspect_after_s, config.flame_confirm_after_s, config.min_flicker, 0.0, None);
        let (change_share, rooted) = match models.smoke {
            Some(_) => (config.smoke_confirm_change_share, Some(config.smoke_rooted_confirm_after_s)),
            None => (0.0, None),
        };
        let smoke = config.persistence(config.smoke_suspect_after_s, config.smoke_confirm_after_s, 0.0, change_share, rooted);
        let whole_frame = [FireZoneConfig { id: "frame".into(), kind: FireKind::Fire, zone: vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]] }];
        let zone_configs = if config.zones.is_empty() { &whole_frame[..] } else { &config.zones[..] };
        let zones = zone_configs
            .iter()
            .map(|z| WatchZone { id: z.id.clone(), kind: z.kind, polygon: Polygon::new(&z.zone), flames: Incident::new(flames), smoke: Incident::new(smoke), confirmed: None })
            .collect();
        Ok(FireWatch {
            config: config.clone(),
            zones,
            masks: config.masks.iter().map(|m| Polygon::new(m)).collect(),
            // Without a smoke model no cell is ever scored, and the threshold is not used.
            smoke_threshold: config.smoke_threshold.or(models.smoke.as_ref().map(|m| m.manifest().score_threshold)).unwrap_or_default(),
            models,
            smoke: SmokeCue::new().map_err(|e| e.to_string())?,
            baseline: SmokeBaseline::new(BaselineSettings {
                margin_logit: config.smoke_baseline_margin_logit,
                interval: Duration::from_secs_f32(config.smoke_baseline_interval_s),
                maps: config.smoke_baseline_maps,
                min_maps: config.smoke_baseline_min_maps,
                hold: Duration::from_secs_f32(config.smoke_baseline_hold_s),
            }),
            view: ViewTracker::new(),
            moved_since_judged: true,
            clock: FrameClock::default(),
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

    /// Analyses one frame (BGR) at stream time `now`. `objects` are the boxes the camera's
    /// object detector found (never smoke).
    pub fn watch(&mut self, frame: &Mat, objects: &[BBox], now: Duration) -> Result<Vec<FireEvent>, String> {
        let cv = |e: opencv::Error| e.to_string();
        if self.masks_cache.as_ref().is_none_or(|c| (c.width, c.height) != (frame.cols(), frame.rows())) {
            self.masks_cache = Some(ZoneMasks::new(frame, &self.zones, &self.masks).map_err(cv)?);
        }
        let cache = self.masks_cache.as_ref().expect("set above");
        let flame_zones: Vec<Rect> = self.zones.iter().zip(&cache.rects).filter(|(z, _)| z.kind != FireKind::Smoke).map(|(_, r)| *r).collect();
        let fire = fire_colour_mask(frame).map_err(cv)?;
        let tiles = match flame_zones.iter().copied().reduce(|a, b| a | b) {
            Some(area) => {
                let lit = lit_tiles(&fire, tile_rects(frame, area), &flame_zones, self.config.min_fire_pixels).map_err(cv)?;
                classify_tiles(&self.models.flames, frame, [Rect::new(0, 0, frame.cols(), frame.rows())].into_iter().chain(lit).collect())?
            }
            None => Vec::new(),
        };
        tracing::debug!(tiles = ?tiles.iter().map(|t| (t.rect.x, t.rect.y, (t.p * 100.0) as i32)).collect::<Vec<_>>(), "flame tiles");
        let motion = self.view.observe(frame).map_err(cv)?;
        let shifted_view = matches!(motion, ViewMotion::Shifted { .. });
        if motion != ViewMotion::Still {
            tracing::debug!(?motion, "the view moved");
            self.moved_since_judged = true;
        }
        if shifted_view {
            // The background model learnt a view that is not there any more: learn afresh.
            self.smoke = SmokeCue::new().map_err(cv)?;
        }
        // Last frame's fire-coloured pixels where they may be in this frame, for flicker: a
        // moving view makes every edge of colour "flicker" otherwise.
        let moved = |previous: &Mat, dx: f32, dy: f32| shifted(previous, dx as f64, dy as f64).map(|(m, valid)| (m, Some(valid))).map_err(cv);
        let previous_fire = match (self.previous_fire.take(), motion) {
            (None, _) => Vec::new(),
            (Some(previous), ViewMotion::Still) => vec![(previous, None)],
            (Some(previous), ViewMotion::Shifted { dx, dy }) => vec![moved(&previous, dx, dy)?],
            (Some(previous), ViewMotion::Unexplained { dx, dy }) => {
                let shifted = moved(&previous, dx, dy)?;
                vec![(previous, None), shifted]
            }
        };
        let cues = FrameCues {
            tiles,
            fire,
            previous_fire,
            detections: match &self.models.detector {
                Some(d) => d.detect_mat(frame, d.manifest().score_threshold).map_err(|e| e.to_string())?,
                None => Vec::new(),
            },
            smoke_blob: if self.config.smoke && !shifted_view { self.smoke.observe(frame, &cache.watched, objects, self.config.min_smoke_area).map_err(cv)? } else { None },
            // The model's cells are judged against what each cell of a still view usually
            // scores; a moving view has no such cells (nor may it teach them). A frame that
            // moved in ways no shift explains (a PTZ camera between presets, zooming, or a bus
            // filling the view) is not judged either: the view is known again on the first
            // still frame after it.
            smoke_map: match &self.models.smoke {
                Some(model) if self.config.smoke && motion == ViewMotion::Still => {
                    let map = model.heatmap(frame).map_err(|e| e.to_string())?;
                    let view = signature(frame).map_err(cv)?;
                    let confirmed: Vec<(usize, BBox)> = self.zones.iter().filter_map(|z| z.confirmed).collect();
                    let hot = self.baseline.observe(&map, &view, std::mem::take(&mut self.moved_since_judged), self.smoke_threshold, now, &confirmed);
                    if self.baseline.view_changed() {
                        // Another preset: where the model found smoke in the last one says
                        // nothing of this one.
                        self.zones.iter_mut().for_each(|z| z.smoke.forget_anchor());
                    }
                    Some((map, hot))
                }
                _ => None,
            },
        };
        let frame_interval = self.clock.tick(now);
        let judged = cues.smoke_map.is_some();
        let mut events = Vec::new();
        for ((zone, allowed), &rect) in self.zones.iter_mut().zip(&cache.zones).zip(&cache.rects) {
            let flame_evidence = if zone.kind == FireKind::Smoke { None } else { flame_evidence(&self.config, &cues, allowed, rect)? };
            let blob = cues.smoke_blob.filter(|(b, _)| zone.polygon.contains(b.center()));
            // Detected objects (a grey car, a person in a grey coat) are not smoke.
            let watched = |cell: &BBox| is_set_at(allowed, cell.center()) && !objects.iter().any(|o| o.intersection(cell) > 0.0);
            let regions = cues.smoke_map.as_ref().map(|(map, hot)| hot_regions(map, hot, watched));
            if let Some(regions) = regions.as_ref().filter(|r| !r.is_empty()) {
                tracing::debug!(zone = zone.id, ?regions, "smoke model regions");
            }
            let mut evidence = [flame_evidence, smoke_evidence(regions.as_deref(), blob, zone.smoke.extent())];
            add_detector_evidence(&mut evidence, zone, &cues.detections, self.models.detector.as_deref());
            let [flames, smoke] = evidence;
            if let Some(t) = zone.flames.observe(now, frame_interval, flames) {
                events.push(FireEvent { zone: zone.id.clone(), kind: zone.alert_kind(false), transition: t });
            }
            let transition = zone.smoke.observe(now, frame_interval, smoke);
            let view = self.baseline.view();
            match (transition.as_ref().map(|t| t.stage), &mut zone.confirmed, zone.smoke.extent()) {
                (Some(Stage::Confirmed), confirmed, extent) => *confirmed = extent.map(|e| (view, e)),
                (Some(Stage::Cleared), confirmed, _) => *confirmed = None,
                // It spreads, in the view it burns in (as the model judged it, not a moving view).
                (_, Some((confirmed_view, area)), Some(extent)) if judged && *confirmed_view == view => *area = area.joined(&extent),
                _ => {}
            }
            if let Some(t) = transition {
                events.push(FireEvent { zone: zone.id.clone(), kind: zone.alert_kind(true), transition: t });
            }
        }
        self.previous_fire = Some(cues.fire);
        Ok(events)
    }

    /// The stream restarted, its time from zero again: forgets the last frames; what the smoke
    /// model learnt of the view and the open incidents stay.
    fn restart(&mut self) -> Result<(), String> {
        self.previous_fire = None;
        self.view.restart();
        // A camera back after a reconnect may look at another of its presets.
        self.moved_since_judged = true;
        self.clock.restart();
        self.baseline.restart_clock();
        for zone in &mut self.zones {
            zone.flames.restart_clock();
            zone.smoke.restart_clock();
        }
        self.smoke = SmokeCue::new().map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// What one frame shows, for every zone: flame tiles, fire-coloured pixels (and the last frame's,
/// for flicker), the fire/smoke detector's boxes, the grey-foreground blob, the smoke heat map
/// with its newly hot cells.
struct FrameCues {
    tiles: Vec<cues::Tile>,
    fire: Mat,
    /// Last frame's fire-coloured pixels where they may be now (as they stand, moved with the
    /// view, or both when the view's shift is in doubt), each with where it is valid (everywhere
    /// when not moved); flicker is the least against any. None on the first frame.
    previous_fire: Vec<(Mat, Option<Mat>)>,
    detections: Vec<crate::types::Detection>,
    smoke_blob: Option<(BBox, f32)>,
    smoke_map: Option<(crate::detect::Heatmap, Vec<bool>)>,
}

/// Flame evidence in a zone (`allowed`, its pixel mask; `rect`, its bounds): where the classifier
/// sees flames (a hot tile, else the whole frame), enough fire-coloured pixels, scored with their
/// flicker since the last frame. Where the classifier is only fairly sure (a weak tile), the
/// flicker must be strong in this very frame.
fn flame_evidence(config: &FireConfig, cues: &FrameCues, allowed: &Mat, rect: Rect) -> Result<Option<Evidence>, String> {
    let cv = |e: opencv::Error| e.to_string();
    let mut zone_fire = Mat::default();
    opencv::core::bitwise_and(&cues.fire, allowed, &mut zone_fire, &opencv::core::no_array()).map_err(cv)?;
    let tiles = &cues.tiles;
    let in_zone = |threshold: f32| -> Vec<&cues::Tile> { tiles.iter().skip(1).filter(|t| t.p >= threshold && (t.rect & rect).area() > 0).collect() };
    let union = |tiles: &[&cues::Tile]| tiles.iter().map(|t| t.rect & rect).reduce(|a, b| a | b).map(|search| (search, tiles.iter().map(|t| t.p).fold(0.0, f32::max)));
    let strong = union(&in_zone(config.flame_threshold)).or_else(|| tiles.first().filter(|t| t.p >= config.flame_threshold).map(|t| (rect, t.p)));
    let ((search, flame), weak) = if let Some(found) = strong {
        (found, false)
    } else if let Some(found) = union(&in_zone(config.weak_flame_threshold)) {
        (found, true)
    } else {
        return Ok(None);
    };
    let lit = count_in(&zone_fire, search).map_err(cv)?;
    let colour = lit as f32 / search.area().max(1) as f32;
    if colour < config.min_fire_pixels {
        return Ok(None);
    }
    let flicker_against = |(previous, valid): &(Mat, Option<Mat>)| -> Result<f32, String> {
        let compared = match valid {
            Some(valid) => {
                let mut both = Mat::default();
                opencv::core::bitwise_and(allowed, valid, &mut both, &opencv::core::no_array()).map_err(cv)?;
                std::borrow::Cow::Owned(both)
            }
            None => std::borrow::Cow::Borrowed(allowed),
        };
        let mut changed = Mat::default();
        opencv::core::bitwise_xor(&cues.fire, previous, &mut changed, &*compared).map_err(cv)?;
        let mut either = Mat::default();
        opencv::core::bitwise_or(&cues.fire, previous, &mut either, &*compared).map_err(cv)?;
        Ok(count_in(&changed, search).map_err(cv)? as f32 / count_in(&either, search).map_err(cv)?.max(1) as f32)
    };
    let flicker = cues.previous_fire.iter().map(flicker_against).collect::<Result<Vec<f32>, String>>()?.into_iter().reduce(f32::min).unwrap_or(0.0);
    tracing::debug!(flame, weak, colour, flicker, "flame candidate");
    if weak && flicker < config.weak_flame_min_flicker {
        return Ok(None);
    }
    let region = largest_blob_in(&zone_fire, search).map_err(cv)?;
    Ok(region.map(|region| Evidence { region, scores: Scores { flame, colour, flicker, ..Default::default() }, corroborated: false }))
}

/// A fire/smoke detector's boxes in the zone are evidence of their own (`[flames, smoke]`); they
/// also score the cues' evidence.
fn add_detector_evidence(evidence: &mut [Option<Evidence>; 2], zone: &WatchZone, detections: &[crate::types::Detection], detector: Option<&Detector>) {
    let Some(detector) = detector else { return };
    for d in detections.iter().filter(|d| zone.polygon.contains(d.bbox.center())) {
        let slot = match detector.manifest().labels[d.class].as_str() {
            "fire" | "flame" if zone.kind != FireKind::Smoke => &mut evidence[0],
            "smoke" => &mut evidence[1],
            _ => continue,
        };
        let found = slot.get_or_insert(Evidence { region: d.bbox, scores: Scores::default(), corroborated: true });
        found.scores.detector = Some(found.scores.detector.unwrap_or(0.0).max(d.score));
    }
}

impl Analyzer for FireWatch {
    fn analyse(&mut self, frame: &FrameContext) -> Result<Vec<Finding>, String> {
        let boxes: Vec<BBox> = frame.detections.iter().map(|d| d.bbox).collect();
        let events = frame.image().and_then(|image| self.watch(image, &boxes, frame.now)).map_err(|e| format!("fire analytics: {e}"))?;
        Ok(events.into_iter().map(Finding::Fire).collect())
    }

    fn reset(&mut self) -> Result<(), String> {
        self.restart().map_err(|e| format!("fire analytics: {e}"))
    }

    /// Fire zones are not road: the detector need not see them.
    fn watched(&self) -> Vec<Point> {
        Vec::new()
    }

    fn overlays(&self) -> Vec<Overlay> {
        self.zones.iter().map(|z| Overlay { rule: z.id.clone(), shape: Shape::Zone(z.polygon.points.clone()), label: format!("fire watch {}", z.id), tone: Tone::Rule }).collect()
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
        let both = smoke_evidence(Some(&model), over_it, None).unwrap();
        assert_eq!((both.region, both.scores.smoke_model, both.scores.smoke, both.corroborated), (PLUME, Some(0.995), 0.01, true));
        let apart = smoke_evidence(Some(&model), elsewhere, None).unwrap();
        assert_eq!((apart.region, apart.scores.smoke, apart.corroborated), (PLUME, 0.0, false), "the model's region leads");
        let change_only = smoke_evidence(Some(&[]), elsewhere, None).unwrap();
        assert_eq!((change_only.region, change_only.scores.smoke_model, change_only.corroborated), (away, None, false));
        assert!(smoke_evidence(Some(&[]), None, None).is_none());
        let no_model = smoke_evidence(None, over_it, None).unwrap();
        assert_eq!((no_model.scores.smoke_model, no_model.scores.smoke), (None, 0.01));
        // Haze scoring higher than the plume in one frame does not pull the incident away.
        let haze = HotRegion { region: BBox { x1: 0.5, y1: 0.46, x2: 0.54, y2: 0.51 }, p: 0.9997 };
        let both_hot = [haze, model[0]];
        assert_eq!(smoke_evidence(Some(&both_hot), None, None).unwrap().region, haze.region, "the best region, with no incident open");
        assert_eq!(smoke_evidence(Some(&both_hot), None, Some(PLUME)).unwrap().region, PLUME, "the region where the incident has been");
    }
}
