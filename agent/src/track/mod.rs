//! Tracking stage: turns each frame's detections into objects with stable ids (ByteTrack-style).
//!
//! Tracks carry a constant-velocity Kalman filter with time in seconds, so the same settings work
//! at 5 analysed fps and at every frame. Association uses the filter's own uncertainty (Mahalanobis
//! distance) as well as overlap: at low rates a car moves most of its length between frames and
//! IoU alone loses it. High-score detections are matched first, low-score ones last (they keep
//! tracks through partial occlusion but never start one); tentative tracks are confirmed after
//! `min_hits` detections;
//! lost tracks coast for `lost_timeout_s`. Ids are unique per camera and never reused.

mod assign;
mod config;
mod kalman;

pub use config::TrackerConfig;

use std::collections::HashMap;
use std::time::Duration;

use crate::types::{BBox, ClassId, Detection, TrackedObject};
use assign::assign;
use kalman::BoxFilter;

/// 99th percentile of χ² with 4 degrees of freedom: a detection farther than this from a track's
/// prediction is not that track.
const GATE_DISTANCE_SQ: f32 = 13.28;
/// Cost at or above which a pair is never matched.
const NO_MATCH: f32 = 1.0;
/// A detection more than this many times wider or taller (or smaller) than the prediction is
/// another object, however uncertain a coasting track's position has become.
const MAX_SIZE_RATIO: f32 = 2.0;
/// Nor is one whose centre lies more than this many box sizes from the prediction.
const MAX_JUMP_BOX_SIZES: f32 = 2.5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TrackState {
    Tentative,
    Confirmed,
}

#[derive(Debug)]
struct Track {
    id: u64,
    state: TrackState,
    filter: BoxFilter,
    /// The last detection's box: sizes are compared with it, not with the filter's extrapolation,
    /// which drifts while a track coasts.
    last_box: BBox,
    hits: u32,
    last_seen: Duration,
    /// Sum of detection scores per class; the class is the heaviest.
    class_votes: HashMap<ClassId, f32>,
    /// Group of classes this track may match (e.g. all vehicles).
    group: usize,
}

impl Track {
    fn class(&self) -> ClassId {
        self.class_votes.iter().max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0))).map_or(0, |(c, _)| *c)
    }

    /// Counts a detection of this track (the filter is updated by the caller, or started from it).
    fn record(&mut self, det: &Detection, now: Duration, min_hits: u32) {
        self.last_box = det.bbox;
        self.hits += 1;
        self.last_seen = now;
        *self.class_votes.entry(det.class).or_default() += det.score;
        if self.hits >= min_hits {
            self.state = TrackState::Confirmed;
        }
    }
}

/// One camera's tracker.
pub struct Tracker {
    config: TrackerConfig,
    high_score: f32,
    /// Classes in one group (e.g. car, truck, bus) may be matched to the same track.
    class_group: Vec<usize>,
    tracks: Vec<Track>,
    next_id: u64,
    last_time: Option<Duration>,
}

impl Tracker {
    /// `merge_classes` are the classes one object may flip between (the detector's NMS merge
    /// group); `model_score` is the model's own confidence threshold, used unless `high_score` is set.
    pub fn new(config: TrackerConfig, model_score: f32, classes: usize, merge_classes: &[ClassId]) -> Tracker {
        let class_group = (0..classes).map(|c| if merge_classes.contains(&c) { usize::MAX } else { c }).collect();
        let high_score = config.high_score.unwrap_or(model_score).max(config.low_score);
        Tracker { config, high_score, class_group, tracks: Vec::new(), next_id: 1, last_time: None }
    }

    /// Forgets every track (after a stream restart, when positions no longer follow on); ids go on.
    pub fn reset(&mut self) {
        self.tracks.clear();
        self.last_time = None;
    }

    fn group(&self, class: ClassId) -> usize {
        self.class_group.get(class).copied().unwrap_or(class)
    }

    /// Advances to time `now` with this frame's detections; returns the confirmed tracks that were
    /// detected in this frame, each with this frame's detection box.
    pub fn update(&mut self, detections: &[Detection], now: Duration) -> Vec<TrackedObject> {
        let dt = match self.last_time {
            Some(last) if now >= last => (now - last).as_secs_f32(),
            Some(_) => {
                // Time went backwards: the stream restarted.
                self.reset();
                0.0
            }
            None => 0.0,
        };
        self.last_time = Some(now);
        for t in &mut self.tracks {
            t.filter.predict(dt);
        }

        let (high, low): (Vec<usize>, Vec<usize>) = (0..detections.len())
            .filter(|&i| detections[i].score >= self.config.low_score)
            .partition(|&i| detections[i].score >= self.high_score);
        let mut matched: Vec<Option<usize>> = vec![None; self.tracks.len()];

        // 1. High-score detections against confirmed tracks, tracked or coasting.
        let confirmed: Vec<usize> = (0..self.tracks.len()).filter(|&t| self.tracks[t].state == TrackState::Confirmed).collect();
        let unmatched_high = self.associate(&confirmed, &high, detections, &mut matched);
        // 2. Remaining high-score detections against tentative tracks.
        let tentative: Vec<usize> = (0..self.tracks.len()).filter(|&t| self.tracks[t].state == TrackState::Tentative).collect();
        let unmatched_high = self.associate(&tentative, &unmatched_high, detections, &mut matched);
        // 3. Low-score detections keep unmatched tracks alive: partly hidden vehicles, and at low
        //    frame rates the blurred or distant frames where a real vehicle scores low.
        let remaining: Vec<usize> = (0..self.tracks.len()).filter(|&t| matched[t].is_none()).collect();
        self.associate(&remaining, &low, detections, &mut matched);

        let min_hits = self.config.min_hits;
        let mut out: Vec<TrackedObject> = Vec::new();
        for (track, det) in self.tracks.iter_mut().zip(&matched) {
            if let Some(d) = det {
                let det = &detections[*d];
                track.filter.update(&det.bbox);
                track.record(det, now, min_hits);
                if track.state == TrackState::Confirmed {
                    out.push(TrackedObject { id: track.id, bbox: det.bbox, class: track.class(), score: det.score });
                }
            }
        }
        // A tentative track that missed a frame was noise; a confirmed one coasts until it times out.
        let lost_timeout = Duration::from_secs_f32(self.config.lost_timeout_s);
        let mut t = 0;
        self.tracks.retain(|track| {
            let keep = matched[t].is_some() || (track.state == TrackState::Confirmed && now.saturating_sub(track.last_seen) <= lost_timeout);
            t += 1;
            keep
        });
        for d in unmatched_high {
            out.extend(self.spawn(&detections[d], now));
        }
        out
    }

    /// Matches `dets` (indices) to `tracks` (indices) by minimum cost; records pairs in `matched`
    /// and returns the detections left over.
    fn associate(&self, tracks: &[usize], dets: &[usize], detections: &[Detection], matched: &mut [Option<usize>]) -> Vec<usize> {
        let cost: Vec<Vec<f32>> = tracks
            .iter()
            .map(|&t| dets.iter().map(|&d| self.cost(&self.tracks[t], &detections[d])).collect())
            .collect();
        let pairs = assign(&cost, NO_MATCH);
        let mut used = vec![false; dets.len()];
        for (ti, di) in pairs {
            matched[tracks[ti]] = Some(dets[di]);
            used[di] = true;
        }
        dets.iter().zip(used).filter(|(_, u)| !u).map(|(d, _)| *d).collect()
    }

    /// 0 for a perfect match, `NO_MATCH` for an impossible one: half overlap, half how far the
    /// detection lies from where the filter expected it.
    fn cost(&self, track: &Track, det: &Detection) -> f32 {
        if self.group(det.class) != track.group {
            return NO_MATCH;
        }
        let predicted = track.filter.bbox();
        let ratio = |a: f32, b: f32| a.max(b) / a.min(b).max(1e-6);
        let seen = &track.last_box;
        if ratio(seen.width(), det.bbox.width()) > MAX_SIZE_RATIO || ratio(seen.height(), det.bbox.height()) > MAX_SIZE_RATIO {
            return NO_MATCH;
        }
        let (p, d) = (predicted.center(), det.bbox.center());
        let (w, h) = (predicted.width().max(det.bbox.width()), predicted.height().max(det.bbox.height()));
        if ((p.x - d.x) / w).hypot((p.y - d.y) / h) > MAX_JUMP_BOX_SIZES {
            return NO_MATCH;
        }
        let iou = predicted.iou(&det.bbox);
        let d2 = track.filter.distance_sq(&det.bbox);
        if d2 >= GATE_DISTANCE_SQ && iou < 0.3 {
            return NO_MATCH;
        }
        0.5 * (1.0 - iou) + 0.5 * (d2 / GATE_DISTANCE_SQ).min(1.0) - 1e-3
    }

    /// Starts a tentative track; returns it when one hit is enough to confirm it.
    fn spawn(&mut self, det: &Detection, now: Duration) -> Option<TrackedObject> {
        let mut track = Track {
            id: self.next_id,
            state: TrackState::Tentative,
            filter: BoxFilter::new(&det.bbox),
            last_box: det.bbox,
            hits: 0,
            last_seen: now,
            class_votes: HashMap::new(),
            group: self.group(det.class),
        };
        self.next_id += 1;
        track.record(det, now, self.config.min_hits);
        let confirmed = (track.state == TrackState::Confirmed)
            .then(|| TrackedObject { id: track.id, bbox: det.bbox, class: track.class(), score: det.score });
        self.tracks.push(track);
        confirmed
    }

}

#[cfg(test)]
mod tests;
