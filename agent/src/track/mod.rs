//! Tracking stage: turns each frame's detections into objects with stable ids (ByteTrack-style).
//!
//! Tracks carry a Kalman filter with time in seconds (see [`kalman`]: position, log-size and their
//! rates, so an approaching car's growth is predicted), and the same settings work at 5 analysed
//! fps and at every frame. Association uses the filter's own uncertainty (Mahalanobis distance)
//! as well as overlap: at low rates a car moves most of its length between frames and IoU alone
//! loses it. High-score detections are matched first, low-score ones last (they keep tracks
//! through partial occlusion but never start one); tentative tracks are confirmed after
//! `min_hits` detections; lost tracks coast for `lost_timeout_s`. Ids are unique per camera and
//! never reused.
//!
//! Two steps from OC-SORT (Cao et al., 2023) keep identities where the motion model fails:
//! a track found again after missed frames re-runs its filter over a straight path from its last
//! observation to the new one (observation-centric re-update), so one gap does not leave it with
//! a stale velocity; and a new track whose own motion, run backwards, leads to where a track was
//! lost a moment ago takes over that track's id (observation-centric recovery), so a vehicle
//! lost just before a counting line and found just after it still crosses it once.
//!
//! A new track of a moving vehicle starts where it was first seen ([`TrackedObject::origin`]):
//! at its first detection, before `min_hits` confirmed it, maybe on the other side of a line.
//! Two vehicles side by side are sometimes boxed as one, then as two: the track of the joint box
//! follows one of them and the other starts anew, maybe past a line already. A new track found,
//! moved back along its own motion, inside such a box of a neighbour's starts where it was in it.
//! A vehicle the detector sees only faintly for a while (a white car at dusk on the arterial
//! scored 0.14 to 0.27 for 1.5 s, below the 0.3 that starts a track) starts where the low-score
//! boxes that no track took lead back to along its motion.

mod assign;
mod config;
mod kalman;

pub use config::TrackerConfig;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::detect::SAME_VEHICLE_IOU;
use crate::detect::riders::MIN_SHARED_WIDTH;
use crate::types::{BBox, ClassId, Detection, TrackedObject, WHOLE_FRAME};
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
/// A track slower than this many of its box sizes per second is standing (queued, parked): the
/// motion gate may skip frames while only such tracks are about, and the stream's end counts no
/// crossing of one (`LineCounter::end`).
pub(crate) const STILL_BOX_SIZES_PER_S: f32 = 0.1;
/// A low-score detection must overlap a track's prediction, and that of a track unseen for
/// `VAGUE_AFTER` at least this much.
const LOW_SCORE_MIN_IOU: f32 = 0.3;
const VAGUE_AFTER: Duration = Duration::from_millis(500);
/// Nor is one whose centre lies more than this many box sizes from the prediction.
const MAX_JUMP_BOX_SIZES: f32 = 2.5;
/// Longest time a track's filter is predicted ahead in one step, seconds.
const MAX_PREDICTION_S: f32 = 1.0;
/// A track moving faster than this many of its box sizes per second has a direction: a detection
/// behind it (more than `BACKWARDS_BOX_SIZES` against its motion, from where it was last seen)
/// is another vehicle, as OC-SORT's direction consistency says. Two cars passing each other in
/// opposite lanes otherwise swap ids while one coasts. Not lower: a small parked car's box
/// jitters at over half its width a second (at 0.5, the street's car pulling out of its parking
/// spot was refused to its own track, and its stop ended 10 s late).
const MOVING_BOX_SIZES_PER_S: f32 = 1.0;
const BACKWARDS_BOX_SIZES: f32 = 0.5;
/// A coasting track predicted with less than this share of its box inside the frame has left it.
const MIN_VISIBLE_SHARE: f32 = 0.5;
/// A new track takes over a lost one when its first box, moved back in time along its own
/// motion to when the lost track was last seen, lies within this many box sizes of that
/// track's last box...
const RECOVER_BOX_SIZES: f32 = 0.75;
/// ...and is no more than this factor larger or smaller.
const RECOVER_SIZE_RATIO: f32 = 1.5;
/// Boxes older than this, before a new track's first detection, are not looked in (see
/// [`Tracker::split_from`]): its motion, known from a few detections, is not projected back
/// further.
const SPLIT_WITHIN: Duration = Duration::from_secs(1);
/// A track remembers its boxes of this long: a new track confirmed up to 2 s after its first
/// detection (`min_hits` 2 at 1 analysed fps) looks in those of the `SPLIT_WITHIN` before it.
const RECENT_FOR: Duration = Duration::from_secs(3);
/// A track's earlier box held a neighbour too when it was at least this many times the area of
/// the box it follows now (and a detection holds tracked objects when it is this many times the
/// area of each, [`Tracker::joins_tracks`])...
const SPLIT_AREA_RATIO: f32 = 1.5;
/// ...and the new track's first box, moved back along its own motion to then, lay at least this
/// share inside it (as each tracked box must inside a detection holding it)...
const SPLIT_INSIDE_SHARE: f32 = 0.6;
/// ...and the two go side by side: along their motion, their boxes overlap by at least this
/// share of the shorter. A vehicle boxed in parts (a truck's cab and its trailer) has its parts
/// one behind the other...
const SIDE_BY_SIDE_SHARE: f32 = 0.5;
/// ...and are two vehicles now: their boxes share less than this of the smaller (not a part of
/// a vehicle boxed again inside it).
const SPLIT_MAX_OVERLAP: f32 = 0.3;
/// A box round tracked objects side by side is at most this many times as tall as the tallest
/// of them, or as wide as the widest ([`Tracker::joins_tracks`]).
const JOINT_EXTENT_RATIO: f32 = 1.5;
/// Low-score detections that no track took are kept this long: a new moving track's origin may
/// go back through them ([`Tracker::faint_trail`]). Asked when the track is confirmed, one or more
/// frames after its first detection: the trail reaches over a second before that, as far as a
/// motion known from two detections is worth projecting.
const FAINT_FOR: Duration = Duration::from_secs(2);
/// A faint trail ends where no low-score detection was found along the track's motion for this
/// long: one frame missed at 4 analysed fps (0.5 s between the boxes found), not one at 3 (0.67
/// s) nor two at 5 (0.6 s); off those steps, which stream times only just reach or pass.
const FAINT_GAP: Duration = Duration::from_millis(550);
/// A track seen as a rider (a person) is the vehicle it rides once the ridden class's votes reach
/// this share of the rider's. A small motorbike under its rider is missed far more often than
/// the rider (on the Vietnamese junction at half size, most frames find the rider alone), while a
/// pedestrian is taken for a rider only on the odd frame where one walks over a parked bike.
const RIDDEN_SHARE: f32 = 0.25;

/// Classes that ride (a `person`) and classes that are ridden (`motorcycle`, `bicycle`): the
/// model manifest's `rider_classes` and `ridden_classes`. A track may pass between them, seen on
/// one frame as the rider alone and on the next as the rider on the vehicle.
#[derive(Debug, Clone, Default)]
pub struct Riders {
    pub riders: Vec<ClassId>,
    pub ridden: Vec<ClassId>,
}

/// One pass of matching detections to tracks, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// A detection of the track's class group.
    Group,
    /// A rider and a ridden class either way round.
    Riding,
    /// Another group of vehicle classes, where the box is almost where the track is expected
    /// ([`SAME_VEHICLE_IOU`]): the detector boxed the half-hidden car of the junction played
    /// backwards as a `motorcycle` on some frames and a `car` on others, and a track of each
    /// counted it. The same overlap as the detector's, with the track's predicted box (measured: at
    /// 0.5 the junction encoded at 640 px counted one motorbike more at every frame). Only a box
    /// almost where the track is: a lost track is not taken over across vehicle groups
    /// ([`Tracker::recoverable`]), where a motorbike found near a lost car is as likely another
    /// vehicle.
    SameVehicle,
}

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
    /// The last detection's box and the filter as it stood right after it: the starting point
    /// of the re-update when the track is found again after missed frames.
    last_box: BBox,
    observed: BoxFilter,
    /// Analysed frames since the last detection.
    missed: u32,
    /// The first detection's box and time: where a track that is recovered, or reported with its
    /// origin, began.
    first_box: BBox,
    first_seen: Duration,
    hits: u32,
    last_seen: Duration,
    /// Sum of detection scores per class; the class is the heaviest.
    class_votes: HashMap<ClassId, f32>,
    /// Group of classes this track may match (e.g. all vehicles): its class's, so a track that
    /// began as a rider and is now the motorbike it rides matches motorbikes first, as one that
    /// began as the motorbike does.
    group: usize,
    /// Its detections' times and boxes of the last `RECENT_FOR`, oldest first.
    recent: VecDeque<(Duration, BBox)>,
    /// While unmatched: the id of the neighbour's track whose box it is hidden in
    /// ([`Tracker::hidden_in_joint_box`]).
    hidden_in: Option<u64>,
}

impl Track {
    /// The filter's velocity in sizes of the last box a second, so that near and far, wide and
    /// tall are alike.
    fn box_velocity(&self) -> (f32, f32) {
        let (vx, vy) = self.filter.velocity();
        (vx / self.last_box.width().max(1e-4), vy / self.last_box.height().max(1e-4))
    }

    /// Whether it moves faster than `STILL_BOX_SIZES_PER_S`: not standing.
    fn is_moving(&self) -> bool {
        let (bx, by) = self.box_velocity();
        bx.hypot(by) > STILL_BOX_SIZES_PER_S
    }

    /// The class with the heaviest votes, except that a rider seen riding is the vehicle it rides.
    fn class(&self, riders: &Riders) -> ClassId {
        let heaviest = |of: &dyn Fn(ClassId) -> bool| {
            self.class_votes.iter().filter(|(c, _)| of(**c)).max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0))).map(|(c, v)| (*c, *v))
        };
        let Some((best, weight)) = heaviest(&|_| true) else { return 0 };
        match heaviest(&|c| riders.ridden.contains(&c)) {
            Some((ridden, votes)) if riders.riders.contains(&best) && votes >= RIDDEN_SHARE * weight => ridden,
            _ => best,
        }
    }

    /// Updates the filter with a detection. After missed frames the filter restarts from the last
    /// observation and is led along a straight path to this one, one virtual observation per
    /// missed frame, so its velocity and growth come from the observations rather than from the
    /// drift of the coasting prediction.
    fn observe(&mut self, det: &Detection, now: Duration, min_hits: u32) {
        if self.missed > 0 && now > self.last_seen {
            let steps = self.missed + 1;
            let dt = (now - self.last_seen).as_secs_f32() / steps as f32;
            self.filter = self.observed.clone();
            for i in 1..steps {
                let f = i as f32 / steps as f32;
                let lerp = |a: f32, b: f32| a + (b - a) * f;
                let (a, b) = (&self.last_box, &det.bbox);
                self.filter.predict(dt);
                self.filter.update(&BBox { x1: lerp(a.x1, b.x1), y1: lerp(a.y1, b.y1), x2: lerp(a.x2, b.x2), y2: lerp(a.y2, b.y2) });
            }
            self.filter.predict(dt);
        }
        self.filter.update(&det.bbox);
        self.observed = self.filter.clone();
        self.missed = 0;
        self.record(det, now, min_hits);
    }

    /// Drops the boxes older than `RECENT_FOR` before it was last seen.
    fn forget_old_boxes(&mut self) {
        while self.recent.front().is_some_and(|(seen, _)| self.last_seen.saturating_sub(*seen) > RECENT_FOR) {
            self.recent.pop_front();
        }
    }

    /// Its first box, moved back `back_s` seconds along its motion and growth.
    fn first_box_before(&self, back_s: f32) -> BBox {
        self.moved_back(&self.first_box, back_s)
    }

    /// `bbox`, moved back `back_s` seconds along the track's motion and growth.
    fn moved_back(&self, bbox: &BBox, back_s: f32) -> BBox {
        let ((vx, vy), (gw, gh)) = (self.filter.velocity(), self.filter.growth());
        let c = bbox.center();
        let (w, h) = (bbox.width() * (-gw * back_s).exp(), bbox.height() * (-gh * back_s).exp());
        BBox::from_center(c.x - vx * back_s, c.y - vy * back_s, w, h)
    }

    /// Whether the track, unseen now, is predicted mostly outside `seen` (the frame, or the
    /// detection region): it has left, and coasting on beyond the edge would only let it take
    /// over a vehicle entering there.
    fn left_view(&self, seen: &BBox) -> bool {
        let predicted = self.filter.bbox();
        predicted.intersection(seen) < MIN_VISIBLE_SHARE * predicted.area()
    }

    /// The track as the analytics see it in a frame where it is at `bbox`, found with `score`.
    fn object(&self, bbox: BBox, score: f32, riders: &Riders) -> TrackedObject {
        let (vx, vy) = self.filter.velocity();
        TrackedObject { id: self.id, bbox, class: self.class(riders), score, velocity: [vx, vy], origin: None, hidden: false }
    }

    /// Its group is its class's: votes just changed.
    fn regroup(&mut self, class_group: &[usize], riders: &Riders) {
        self.group = group_of(class_group, self.class(riders));
    }

    /// Whether it is confirmed and may still be coasting at `now`: seen within `lost_timeout` and
    /// predicted within `seen` (the frame, or the detection region).
    fn coasting(&self, now: Duration, lost_timeout: Duration, seen: &BBox) -> bool {
        self.state == TrackState::Confirmed && now.saturating_sub(self.last_seen) <= lost_timeout && !self.left_view(seen)
    }

    /// Counts a detection of this track (its filter is updated by the caller, or started from it).
    fn record(&mut self, det: &Detection, now: Duration, min_hits: u32) {
        self.last_box = det.bbox;
        self.recent.push_back((now, det.bbox));
        self.hits += 1;
        self.last_seen = now;
        self.forget_old_boxes();
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
    riders: Riders,
    /// The groups of the rider classes and of the ridden ones.
    rider_groups: Vec<usize>,
    ridden_groups: Vec<usize>,
    /// The groups of vehicle classes: one vehicle may be boxed as any of them.
    vehicle_groups: Vec<usize>,
    /// Where detections can be (the frame, or the camera's detection region).
    seen: BBox,
    tracks: Vec<Track>,
    /// Per analysed frame of the last `FAINT_FOR`, oldest first: the low-score detections that no
    /// track took.
    faint: VecDeque<(Duration, Vec<Detection>)>,
    next_id: u64,
    last_time: Option<Duration>,
}

impl Tracker {
    /// `merge_classes` are the classes one object may flip between (the detector's NMS merge
    /// group); `vehicle_classes` those it may be seen as where its box is almost where the track
    /// is expected; `riders` the classes a rider passes between; `model_score` is the model's own
    /// confidence threshold, used unless `high_score` is set.
    pub fn new(config: TrackerConfig, model_score: f32, classes: usize, merge_classes: &[ClassId], vehicle_classes: &[ClassId], riders: Riders) -> Tracker {
        let class_group: Vec<usize> = (0..classes).map(|c| if merge_classes.contains(&c) { usize::MAX } else { c }).collect();
        let groups = |of: &[ClassId]| of.iter().map(|&c| group_of(&class_group, c)).collect();
        let (rider_groups, ridden_groups) = if riders.riders.is_empty() || riders.ridden.is_empty() { (Vec::new(), Vec::new()) } else { (groups(&riders.riders), groups(&riders.ridden)) };
        let vehicle_groups = groups(vehicle_classes);
        let high_score = config.high_score.unwrap_or(model_score).max(config.low_score);
        Tracker { config, high_score, class_group, riders, rider_groups, ridden_groups, vehicle_groups, seen: WHOLE_FRAME, tracks: Vec::new(), faint: VecDeque::new(), next_id: 1, last_time: None }
    }

    /// Detections come from `region` of the frame only: a track predicted out of it has left.
    pub fn look_within(&mut self, region: BBox) {
        self.seen = region;
    }

    /// Forgets every track (after a stream restart, when positions no longer follow on); ids go on.
    pub fn reset(&mut self) {
        self.tracks.clear();
        self.faint.clear();
        self.last_time = None;
    }

    /// Whether any reported track is moving or unaccounted for (coasting): then a frame must be
    /// looked at, however little its pixels changed.
    pub fn moving(&self) -> bool {
        self.tracks.iter().any(|t| t.state == TrackState::Confirmed && (t.missed > 0 || t.is_moving()))
    }

    fn group(&self, class: ClassId) -> usize {
        group_of(&self.class_group, class)
    }

    /// Whether in `pass` a detection of `class` may continue a track of `group`.
    fn pairs(&self, pass: Pass, group: usize, class: ClassId) -> bool {
        let of = self.group(class);
        match pass {
            Pass::Group => of == group,
            Pass::Riding => self.riding_pair(group, of),
            Pass::SameVehicle => of != group && self.vehicle_groups.contains(&group) && self.vehicle_groups.contains(&of),
        }
    }

    /// Whether a track of group `a` may go on as one of group `b`: the same group, or a rider and
    /// what it rides.
    fn may_continue(&self, a: usize, b: usize) -> bool {
        a == b || self.riding_pair(a, b)
    }

    /// Whether, of boxes `a` (of group `a_group`) and `b` (of the riding pair's other group), the
    /// rider's sits over the ridden vehicle's ([`sits_over`]).
    fn rider_over_ridden(&self, a_group: usize, a: &BBox, b: &BBox) -> bool {
        if self.rider_groups.contains(&a_group) { sits_over(a, b) } else { sits_over(b, a) }
    }

    /// Whether one of the two groups rides and the other is ridden.
    fn riding_pair(&self, a: usize, b: usize) -> bool {
        let (riders, ridden) = (&self.rider_groups, &self.ridden_groups);
        (riders.contains(&a) && ridden.contains(&b)) || (ridden.contains(&a) && riders.contains(&b))
    }

    /// Advances to time `now` with this frame's detections; returns the confirmed tracks that were
    /// detected in this frame, each with this frame's detection box (or its own place in a box
    /// round it and a neighbour it hides, [`Tracker::own_part`]), and those hidden in a
    /// neighbour's box (`hidden`, at the box their filter expects).
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
        // A gap longer than this between updates comes from frames the motion gate skipped (no
        // track was moving) or a stream that jumped: extrapolating motion and uncertainty over it
        // would let a standing track's guess wander off and match anything.
        let dt = dt.min(MAX_PREDICTION_S);
        for t in &mut self.tracks {
            t.filter.predict(dt);
        }

        let (high, low): (Vec<usize>, Vec<usize>) = (0..detections.len())
            .filter(|&i| detections[i].score >= self.config.low_score)
            .partition(|&i| detections[i].score >= self.high_score);
        let mut matched: Vec<Option<usize>> = vec![None; self.tracks.len()];

        // 1. High-score detections against confirmed tracks, tracked or coasting; then what is
        //    left across riders and what they ride, and across vehicle classes. Before the
        //    tentative tracks: a confirmed motorbike whose rider alone is seen keeps its rider's
        //    detection (with the riding pass after the tentative ones, the junction at every frame
        //    counted 9 of 7 motorbikes).
        let confirmed: Vec<usize> = (0..self.tracks.len()).filter(|&t| self.tracks[t].state == TrackState::Confirmed).collect();
        let unmatched_high = self.associate(&confirmed, &high, detections, now, &mut matched);
        // 2. Remaining high-score detections against tentative tracks, the same way.
        let tentative: Vec<usize> = (0..self.tracks.len()).filter(|&t| self.tracks[t].state == TrackState::Tentative).collect();
        let unmatched_high = self.associate(&tentative, &unmatched_high, detections, now, &mut matched);
        // 3. Low-score detections keep unmatched tracks alive: partly hidden vehicles, and at low
        //    frame rates the blurred or distant frames where a real vehicle scores low.
        let remaining: Vec<usize> = (0..self.tracks.len()).filter(|&t| matched[t].is_none()).collect();
        let unmatched_low = self.associate(&remaining, &low, detections, now, &mut matched);

        let lost_timeout = Duration::from_secs_f32(self.config.lost_timeout_s);
        let observed: Vec<Option<Detection>> = (0..self.tracks.len()).map(|t| matched[t].map(|d| self.own_part(t, &detections[d], &matched, now, lost_timeout))).collect();
        let min_hits = self.config.min_hits;
        let mut confirmed_now = Vec::new();
        for (t, (track, det)) in self.tracks.iter_mut().zip(&observed).enumerate() {
            match det {
                Some(det) => {
                    tracing::trace!(t_s = now.as_secs_f32(), track = track.id, bbox = ?det.bbox, score = det.score, class = det.class, missed = track.missed, "matched");
                    let was = track.state;
                    track.observe(det, now, min_hits);
                    // On the Vietnamese junction at half size, a track begun as a rider and long
                    // since the motorbike it rides matched its motorbike's boxes only after every
                    // motorbike track had been offered them: a neighbour's coasting track took
                    // one, and each went on as the other.
                    track.regroup(&self.class_group, &self.riders);
                    if was == TrackState::Tentative && track.state == TrackState::Confirmed {
                        confirmed_now.push(t);
                    }
                }
                None => track.missed += 1,
            }
        }
        let mut gone = vec![false; self.tracks.len()];
        let mut new_tracks = Vec::new();
        for t in confirmed_now {
            if let Some(lost) = self.recoverable(t, &matched, &gone, lost_timeout) {
                self.take_over(t, lost);
                gone[lost] = true;
            } else {
                new_tracks.push(t);
            }
        }
        // After the recoveries: a track found again brings the boxes it had before it was lost.
        // Where a new track began goes with its first report only: in a neighbour's box it was
        // told apart from, else, moving, where the faint boxes before its first detection lead
        // back to, or at that detection (before `min_hits` confirmed it: at 3 fps a car first
        // seen before a line is often past it when confirmed). Not a standing one's: its first
        // box may be a part of it, on either side of a line.
        let origins: Vec<(usize, BBox)> = new_tracks
            .into_iter()
            .filter_map(|t| {
                let track = &self.tracks[t];
                if !track.is_moving() {
                    return None;
                }
                let split = self.split_from(t, &matched);
                if let Some(origin) = split {
                    tracing::debug!(track = track.id, ?origin, first = ?track.first_box, "a track told apart from a neighbour's box");
                }
                Some((t, split.or_else(|| self.faint_trail(t)).unwrap_or(track.first_box)))
            })
            .collect();
        let mut out: Vec<TrackedObject> = Vec::new();
        for (t, ((track, det), gone)) in self.tracks.iter().zip(&observed).zip(&gone).enumerate() {
            if let (Some(det), false, TrackState::Confirmed) = (det, gone, track.state) {
                let origin = origins.iter().find(|(o, _)| *o == t).map(|(_, b)| b.bottom_center());
                out.push(TrackedObject { origin, ..track.object(det.bbox, det.score, &self.riders) });
            }
        }
        for t in (0..self.tracks.len()).filter(|&t| !gone[t]) {
            out.extend(self.hidden_in_joint_box(t, &matched, detections, now, lost_timeout));
        }
        // A tentative track that missed a frame was noise; a confirmed one coasts until it times out.
        let keep: Vec<bool> = self.tracks.iter().zip(&matched).zip(&gone).map(|((track, m), gone)| !gone && (m.is_some() || track.coasting(now, lost_timeout, &self.seen))).collect();
        let mut kept = keep.iter();
        self.tracks.retain(|_| *kept.next().expect("one per track"));
        // Indexed by the tracks that stay, as `self.tracks` now is.
        let matched: Vec<Option<usize>> = matched.into_iter().zip(&keep).filter_map(|(m, &k)| k.then_some(m)).collect();
        // Not a tracked vehicle's second box (its cab, a part of it): a car whose track was lost
        // past a line would otherwise lead a new track of it back across that line.
        let taken: Vec<BBox> = matched.iter().flatten().chain(&unmatched_high).map(|&d| detections[d].bbox).collect();
        for d in unmatched_high {
            if self.joins_tracks(&detections[d], &matched) {
                tracing::debug!(bbox = ?detections[d].bbox, "a box round tracked objects starts no track");
            } else {
                out.extend(self.spawn(&detections[d], now));
            }
        }
        let faint = unmatched_low.iter().map(|&d| &detections[d]).filter(|d| taken.iter().all(|b| b.overlap_of_smaller(&d.bbox) <= SPLIT_MAX_OVERLAP));
        self.faint.push_back((now, faint.cloned().collect()));
        while self.faint.front().is_some_and(|(seen, _)| now.saturating_sub(*seen) > FAINT_FOR) {
            self.faint.pop_front();
        }
        out
    }

    /// Where the newly confirmed track `t` was before its first detection, if the detector saw
    /// it faintly there: going back frame by frame from its first box along its own motion, each
    /// frame's low-score box that no track took and that overlaps where it would have been (by
    /// `LOW_SCORE_MIN_IOU`, as a low-score box must a vague track's prediction), until none is
    /// found for `FAINT_GAP`. The earliest such box. Each is about as large as the first box
    /// (`RECOVER_SIZE_RATIO`): the growth of a track known from two detections is unsure, and
    /// moved back step by step a trail otherwise swelled into a false box round half the
    /// arterial's frame. And each lies on the track's own path, within `RECOVER_BOX_SIZES` of its
    /// first box moved back to then: step by step, a trail could hop sideways onto the faint
    /// boxes of a neighbour in dense traffic, or stay on a box that does not move.
    fn faint_trail(&self, t: usize) -> Option<BBox> {
        let track = &self.tracks[t];
        let mut trail = (track.first_seen, track.first_box);
        for (seen, faint) in self.faint.iter().rev().filter(|(seen, _)| *seen < track.first_seen) {
            if trail.0 - *seen > FAINT_GAP {
                break;
            }
            let then = track.moved_back(&trail.1, (trail.0 - *seen).as_secs_f32());
            let on_path = track.first_box_before((track.first_seen - *seen).as_secs_f32());
            let found = faint
                .iter()
                .filter(|d| self.may_continue(self.group(d.class), track.group))
                .filter(|d| size_ratio(&d.bbox, &track.first_box) <= RECOVER_SIZE_RATIO && offset_in_sizes(&d.bbox, &on_path) <= RECOVER_BOX_SIZES)
                .map(|d| (d.bbox, then.iou(&d.bbox)))
                .filter(|(_, iou)| *iou >= LOW_SCORE_MIN_IOU)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((bbox, _)) = found {
                trail = (*seen, bbox);
            }
        }
        (trail.0 < track.first_seen).then(|| {
            tracing::debug!(track = track.id, origin = ?trail.1, first = ?track.first_box, back_s = (track.first_seen - trail.0).as_secs_f32(), "a track seen faintly before it began");
            trail.1
        })
    }

    /// Matches `dets` to `tracks` within each class group, then what is left over across riders
    /// and what they ride: a rider seen alone continues its motorbike's track when the motorbike
    /// is missed, and the motorbike found again continues a track that began as its rider. Then
    /// what is left across vehicle classes, where a box is almost where the track is expected
    /// ([`Pass::SameVehicle`]). Matching within each class first keeps a rider and a motorbike
    /// that are both tracked from swapping. Returns the detections left unmatched.
    fn associate(&self, tracks: &[usize], dets: &[usize], detections: &[Detection], now: Duration, matched: &mut [Option<usize>]) -> Vec<usize> {
        let mut left = dets.to_vec();
        for pass in [Pass::Group, Pass::Riding, Pass::SameVehicle] {
            if left.is_empty() {
                break;
            }
            let free: Vec<usize> = tracks.iter().copied().filter(|&t| matched[t].is_none()).collect();
            left = self.associate_in(pass, &free, &left, detections, now, matched);
        }
        left
    }

    /// Matches `dets` (indices) to `tracks` (indices) that `pass` pairs them with by minimum cost;
    /// records pairs in `matched` and returns the detections left over.
    fn associate_in(&self, pass: Pass, tracks: &[usize], dets: &[usize], detections: &[Detection], now: Duration, matched: &mut [Option<usize>]) -> Vec<usize> {
        let cost: Vec<Vec<f32>> = tracks
            .iter()
            .map(|&t| {
                let (track, predicted) = (&self.tracks[t], self.tracks[t].filter.bbox());
                dets.iter()
                    .map(|&d| {
                        let det = &detections[d];
                        let near = pass != Pass::SameVehicle || predicted.iou(&det.bbox) > SAME_VEHICLE_IOU;
                        if near && self.pairs(pass, track.group, det.class) { self.cost(track, &predicted, det, now) } else { NO_MATCH }
                    })
                    .collect()
            })
            .collect();
        let pairs = assign(&cost, NO_MATCH);
        let mut used = vec![false; dets.len()];
        for (ti, di) in pairs {
            matched[tracks[ti]] = Some(dets[di]);
            used[di] = true;
        }
        dets.iter().zip(used).filter(|(_, u)| !u).map(|(d, _)| *d).collect()
    }

    /// The lost track (confirmed, unmatched in this frame, unseen for at most `lost_timeout`) that
    /// the newly confirmed track `t` continues, if one is plain: `t`'s first box, moved back along
    /// `t`'s own velocity and growth to the time the lost track was last seen, lands on the lost
    /// track's last box. The nearest such track wins.
    fn recoverable(&self, t: usize, matched: &[Option<usize>], gone: &[bool], lost_timeout: Duration) -> Option<usize> {
        let new = &self.tracks[t];
        let candidates = (0..self.tracks.len()).filter(|&l| {
            let lost = &self.tracks[l];
            l != t
                && matched[l].is_none()
                && !gone[l]
                && lost.state == TrackState::Confirmed
                && self.may_continue(lost.group, new.group)
                && lost.last_seen < new.first_seen
                && new.first_seen - lost.last_seen <= lost_timeout
        });
        candidates
            .filter_map(|l| {
                let lost = &self.tracks[l];
                let then = new.first_box_before((new.first_seen - lost.last_seen).as_secs_f32());
                let seen = &lost.last_box;
                if goes_against(lost, &new.first_box) {
                    return None;
                }
                if size_ratio(&then, seen) > RECOVER_SIZE_RATIO {
                    return None;
                }
                let off = offset_in_sizes(&then, seen);
                (off <= RECOVER_BOX_SIZES).then_some((l, off))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(l, _)| l)
    }

    /// Whether `det` is one box round two or more tracked objects side by side, of any classes,
    /// at least one of which it hides (its track unmatched in this frame): each tracked box
    /// (where its filter has it now) lies mostly inside it (`SPLIT_INSIDE_SHARE`) and is much
    /// smaller (`SPLIT_AREA_RATIO`), the box round them covers most of it (by the same share),
    /// and it is about as tall as the tallest of them or as wide as the widest
    /// (`JOINT_EXTENT_RATIO`): they lie side by side or one above the other. Such a box starts
    /// no track. On the Vietnamese junction at two thirds of its size, two riders side by side
    /// were boxed as one motorbike for a few frames as they neared the line, and the track it
    /// started crossed it with them, a third count for two motorbikes; at half size, a rider and
    /// the car parked beside it at the frame's edge were. Not a vehicle in front of tracked ones:
    /// a lorry entering the frame holds the distant cars it hides, but the box round them covers
    /// a small part of it; a bus passing two cars at its ends is much taller than either. A van
    /// passing in front of two cars queued side by side, as large as the van, looks like their
    /// joint box: it starts its track when theirs time out (`lost_timeout_s`).
    fn joins_tracks(&self, det: &Detection, matched: &[Option<usize>]) -> bool {
        let held: Vec<(BBox, bool)> = self.held_by(&det.bbox, |_, t| t.state == TrackState::Confirmed).map(|(t, b)| (b, matched[t].is_none())).collect();
        let boxes: Vec<BBox> = held.iter().map(|(b, _)| *b).collect();
        held.iter().any(|(_, hidden)| *hidden) && joint_box(&det.bbox, &boxes)
    }

    /// The tracks (indices) that `which` picks whose filter box `det` holds ([`holds`]), with that
    /// box: the parts a joint box may be round.
    fn held_by<'a>(&'a self, det: &'a BBox, which: impl Fn(usize, &Track) -> bool + 'a) -> impl Iterator<Item = (usize, BBox)> + 'a {
        self.tracks.iter().enumerate().filter(move |(t, track)| which(*t, track)).map(|(t, track)| (t, track.filter.bbox())).filter(move |(_, b)| holds(det, b))
    }

    /// What the confirmed track `t` sees of `det`, the detection it took: its own place in `det`
    /// ([`placed_in`]) when `det` is one box round it and neighbours that it hides (a
    /// [`joint_box`]; each neighbour's confirmed track unmatched in this frame, within its lost
    /// timeout and [`beside`] `t`); else `det`. A joint box taken whole moves the track by
    /// half the neighbour, and its velocity with it: on the Vietnamese junction encoded again at
    /// 1280 px and 5 fps, three riders close together were boxed two at a time, their tracks slid
    /// from one to the next, and one of the three was not counted. The tracks boxed together take
    /// the box in turns (the one left coasting has the wider gate next frame), so none times out
    /// while it holds them. The placed box is the filter's own estimate, reported as seen: a
    /// crossing may begin at it. Not limited to neighbours side by side across the way (measured:
    /// the riders' gains were lost), so two tracks of one lorry's cab and trailer, boxed whole at
    /// last, both go on.
    fn own_part(&self, t: usize, det: &Detection, matched: &[Option<usize>], now: Duration, lost_timeout: Duration) -> Detection {
        let track = &self.tracks[t];
        if track.state != TrackState::Confirmed {
            return det.clone();
        }
        // A joint box holds each part, this track's too: most detections end the search here.
        let own = track.filter.bbox();
        if !holds(&det.bbox, &own) {
            return det.clone();
        }
        let mut parts: Vec<BBox> = self
            .held_by(&det.bbox, |o, other| o != t && matched[o].is_none() && other.coasting(now, lost_timeout, &self.seen))
            .filter(|(o, now_at)| beside((&own, &track.last_box), (now_at, &self.tracks[*o].last_box)))
            .map(|(_, now_at)| now_at)
            .collect();
        if parts.is_empty() {
            return det.clone();
        }
        parts.push(own);
        if !joint_box(&det.bbox, &parts) {
            return det.clone();
        }
        tracing::debug!(track = track.id, joint = ?det.bbox, own = ?own, "a track boxed with a neighbour takes its own place in the box");
        Detection { bbox: placed_in(&own, &det.bbox), ..det.clone() }
    }

    /// The confirmed track `t`, unmatched in this frame, where it goes on hidden in a neighbour's
    /// box, if it does: one detection round both, which the neighbour's track took. It is first
    /// found hidden on the first frame it is missed, as [`Tracker::joins_tracks`] tells a joint
    /// box (from where the filter has `t` now and the neighbour's confirmed track's box on the
    /// frame before), then stays hidden while that track's box holds where the filter has `t`,
    /// until it times out (or takes the box in turn) or leaves the view. Reported at its filter's
    /// box, marked `hidden`, so that a crossing it began is seen through: on the Vietnamese
    /// junction encoded again at 1280 px and 5 fps, a rider was seen one frame past the line, then
    /// boxed with the rider beside it, and was not counted. Not while a vehicle passes in front of
    /// it: that is no neighbour's box grown round it.
    fn hidden_in_joint_box(&mut self, t: usize, matched: &[Option<usize>], detections: &[Detection], now: Duration, lost_timeout: Duration) -> Option<TrackedObject> {
        let track = &self.tracks[t];
        if matched[t].is_some() || !track.coasting(now, lost_timeout, &self.seen) {
            self.tracks[t].hidden_in = None;
            return None;
        }
        let hidden = track.filter.bbox();
        let joint = self.tracks.iter().zip(matched).find_map(|(other, d)| {
            let det = &detections[(*d)?];
            let found = match track.hidden_in {
                Some(id) => other.id == id && holds(&det.bbox, &hidden),
                // A vehicle driving in front, its box grown over a second as it came nearer, is no
                // neighbour's box grown round this one.
                None if track.missed == 1 && other.state == TrackState::Confirmed => {
                    other.recent.iter().rev().find(|(seen, _)| *seen <= track.last_seen).is_some_and(|(_, before)| joint_box(&det.bbox, &[hidden, *before]))
                }
                None => false,
            };
            found.then_some((other.id, det.score))
        });
        self.tracks[t].hidden_in = joint.map(|(id, _)| id);
        let (_, score) = joint?;
        Some(TrackedObject { hidden: true, ..self.tracks[t].object(hidden, score, &self.riders) })
    }

    /// Where the newly confirmed track `t` was before it was told apart from a neighbour, if it
    /// was: two vehicles side by side that the detector boxed as one (at 5 fps on the arterial, a
    /// silver car beside a dark one, both just before the line), then as two. The track that
    /// kept the joint box follows one of them; the other starts a new track, already past the
    /// line. That earlier box of the neighbour's held `t`'s first box moved back along `t`'s own
    /// motion, and was much larger than the neighbour's box now.
    /// Within a class group, or a rider and what it rides: two motorbikes side by side boxed as
    /// one, then the second's rider found alone with its motorbike hidden (the junction at 960 px
    /// and 5 fps: that rider crossed the line inside its neighbour's box and was not counted). Not
    /// a rider above the other's box across half its width: a motorbike's own rider, boxed apart
    /// from it (a motorbike driving across the view has its rider beside it along its motion).
    /// The newest such box wins (the shortest projection).
    /// Asked of a moving track only: a standing one's first box may be a part of it.
    fn split_from(&self, t: usize, matched: &[Option<usize>]) -> Option<BBox> {
        let new = &self.tracks[t];
        let motion = new.filter.velocity();
        (0..self.tracks.len())
            .filter(|&m| {
                let other = &self.tracks[m];
                let (a, b) = (&other.last_box, &new.last_box);
                m != t
                    && matched[m].is_some()
                    && other.state == TrackState::Confirmed
                    && (other.group == new.group || (self.riding_pair(other.group, new.group) && !self.rider_over_ridden(other.group, a, b)))
                    && side_by_side(a, b, motion)
                    && a.intersection(b) < SPLIT_MAX_OVERLAP * a.area().min(b.area())
            })
            .flat_map(|m| {
                let other = &self.tracks[m];
                other.recent.iter().filter(|(seen, _)| *seen < new.first_seen && new.first_seen - *seen <= SPLIT_WITHIN).filter_map(move |(seen, joint)| {
                    let then = new.first_box_before((new.first_seen - *seen).as_secs_f32());
                    let held = joint.area() >= SPLIT_AREA_RATIO * other.last_box.area() && then.intersection(joint) >= SPLIT_INSIDE_SHARE * then.area();
                    held.then_some((*seen, then))
                })
            })
            .max_by_key(|(seen, _)| *seen)
            .map(|(_, then)| then)
    }

    /// Track `t` is the lost track `lost` found again: it takes the lost track's id and its
    /// class evidence (the lost track is dropped by the caller).
    fn take_over(&mut self, t: usize, lost: usize) {
        tracing::debug!(track = self.tracks[lost].id, lost = ?self.tracks[lost].last_box, first = ?self.tracks[t].first_box, "a lost track found again");
        let (id, votes) = (self.tracks[lost].id, std::mem::take(&mut self.tracks[lost].class_votes));
        let earlier = std::mem::take(&mut self.tracks[lost].recent);
        let track = &mut self.tracks[t];
        track.id = id;
        for (class, score) in votes {
            *track.class_votes.entry(class).or_default() += score;
        }
        // Its boxes from before it was lost (all before this track's first: see `recoverable`): a
        // neighbour told apart from it looks in them.
        for &entry in earlier.iter().rev() {
            track.recent.push_front(entry);
        }
        track.forget_old_boxes();
        // Its class now holds the lost track's votes too (a rider's new track taking over a
        // motorbike's), and so may its group, before the next frame is matched.
        let (class_group, riders) = (&self.class_group, &self.riders);
        self.tracks[t].regroup(class_group, riders);
    }

    /// 0 for a perfect match, `NO_MATCH` for an impossible one: half overlap, half how far the
    /// detection lies from where the filter expected it (`predicted`, the track's box now).
    fn cost(&self, track: &Track, predicted: &BBox, det: &Detection, now: Duration) -> f32 {
        // The predicted box has grown or shrunk with the vehicle's approach; the last detection's
        // box holds where a coasting track's extrapolated growth has drifted.
        if !sized_like(predicted, &det.bbox) && !sized_like(&track.last_box, &det.bbox) {
            return NO_MATCH;
        }
        if goes_against(track, &det.bbox) {
            return NO_MATCH;
        }
        if offset_in_sizes(predicted, &det.bbox) > MAX_JUMP_BOX_SIZES {
            return NO_MATCH;
        }
        let iou = predicted.iou(&det.bbox);
        // A low-score detection is a partly hidden or blurred view of a tracked vehicle where
        // the track is expected (ByteTrack's second association is by overlap alone): one
        // beside the prediction, however near by the filter's distance, is another object (a
        // track of a car's side took an advertising pillar's faint box 1.6 box sizes up the
        // road, and crossed a line with it; another took the car ahead of a half-hidden one).
        // Once a track has coasted for a while its expected place is vague, and a weak box
        // inside that vague place is as likely a shadow, a gap between two cars or a sign.
        if det.score < self.high_score && (iou <= 0.0 || now.saturating_sub(track.last_seen) >= VAGUE_AFTER && iou < LOW_SCORE_MIN_IOU) {
            return NO_MATCH;
        }
        let d2 = track.filter.distance_sq(&det.bbox);
        if d2 >= GATE_DISTANCE_SQ && iou < 0.3 {
            return NO_MATCH;
        }
        0.5 * (1.0 - iou) + 0.5 * (d2 / GATE_DISTANCE_SQ).min(1.0) - 1e-3
    }

    /// Starts a tentative track; returns it when one hit is enough to confirm it.
    fn spawn(&mut self, det: &Detection, now: Duration) -> Option<TrackedObject> {
        let filter = BoxFilter::new(&det.bbox);
        let mut track = Track {
            id: self.next_id,
            state: TrackState::Tentative,
            observed: filter.clone(),
            filter,
            last_box: det.bbox,
            missed: 0,
            first_box: det.bbox,
            first_seen: now,
            hits: 0,
            last_seen: now,
            class_votes: HashMap::new(),
            group: self.group(det.class),
            recent: VecDeque::new(),
            hidden_in: None,
        };
        self.next_id += 1;
        track.record(det, now, self.config.min_hits);
        let confirmed = (track.state == TrackState::Confirmed)
            .then(|| track.object(det.bbox, det.score, &self.riders));
        self.tracks.push(track);
        confirmed
    }
}

/// Whether `det` holds `part`: `part` lies mostly inside it (`SPLIT_INSIDE_SHARE`) and is much
/// smaller (`SPLIT_AREA_RATIO`).
fn holds(det: &BBox, part: &BBox) -> bool {
    det.area() >= SPLIT_AREA_RATIO * part.area() && part.intersection(det) >= SPLIT_INSIDE_SHARE * part.area()
}

/// Whether a tracked object (where its filter has it now, and its last box) may be boxed with
/// another beside it: the two are sized alike (`MAX_SIZE_RATIO`), or were apart (sharing less
/// than `SPLIT_MAX_OVERLAP` of the smaller box). Not a much smaller vehicle that was inside its
/// box: a car hidden behind a lorry is not beside it (bgslibrary's highway at every frame: the
/// lorry's track, placed in a part of its own box, was lost, and its crossing with it).
fn beside((a_now, a_last): (&BBox, &BBox), (b_now, b_last): (&BBox, &BBox)) -> bool {
    sized_like(a_now, b_now) || a_last.intersection(b_last) < SPLIT_MAX_OVERLAP * a_last.area().min(b_last.area())
}

/// Where a tracked object whose filter has it at `own` lies inside `joint`, one box round it and
/// its neighbours: `own` moved the least that puts it inside `joint`, on each axis (the detector's
/// edges on an axis where `own` is no smaller than `joint`). Not the detector's edges on the axis
/// where `joint` is about as long as `own` (along the way of riders side by side): riders side by
/// side are seldom level, and at every frame the junction's encodes counted one to two more
/// motorbikes with them.
fn placed_in(own: &BBox, joint: &BBox) -> BBox {
    let span = |lo: f32, hi: f32, jlo: f32, jhi: f32| {
        if hi - lo >= jhi - jlo {
            return (jlo, jhi);
        }
        let shift = (jlo - lo).max(0.0) + (jhi - hi).min(0.0);
        (lo + shift, hi + shift)
    };
    let ((x1, x2), (y1, y2)) = (span(own.x1, own.x2, joint.x1, joint.x2), span(own.y1, own.y2, joint.y1, joint.y2));
    BBox { x1, y1, x2, y2 }
}

/// Whether `det` is one box round two or more `parts` side by side or one above the other: it
/// holds each, the box round them covers most of it (`SPLIT_INSIDE_SHARE`), and it is about as
/// tall as the tallest or as wide as the widest (`JOINT_EXTENT_RATIO`).
fn joint_box(det: &BBox, parts: &[BBox]) -> bool {
    let Some(round) = parts.iter().copied().reduce(|a, b| a.union(&b)) else { return false };
    let (tallest, widest) = parts.iter().fold((0f32, 0f32), |(h, w), b| (h.max(b.height()), w.max(b.width())));
    parts.len() >= 2
        && parts.iter().all(|p| holds(det, p))
        && round.intersection(det) >= SPLIT_INSIDE_SHARE * det.area()
        && (det.height() <= JOINT_EXTENT_RATIO * tallest || det.width() <= JOINT_EXTENT_RATIO * widest)
}

/// The group of `class` in `class_group` (a class the table does not know is its own group).
fn group_of(class_group: &[usize], class: ClassId) -> usize {
    class_group.get(class).copied().unwrap_or(class)
}

/// How far apart the centres of `a` and `b` are, in the larger of their widths and heights.
fn offset_in_sizes(a: &BBox, b: &BBox) -> f32 {
    let (ca, cb) = (a.center(), b.center());
    ((ca.x - cb.x) / a.width().max(b.width())).hypot((ca.y - cb.y) / a.height().max(b.height()))
}

/// Whether `b` lies behind a moving track: reached from where the track was last seen by a move
/// against its velocity, longer than `BACKWARDS_BOX_SIZES`.
fn goes_against(track: &Track, b: &BBox) -> bool {
    let v = track.box_velocity();
    let seen = &track.last_box;
    let (w, h) = (seen.width().max(1e-4), seen.height().max(1e-4));
    let (from, to) = (seen.center(), b.center());
    let step = ((to.x - from.x) / w, (to.y - from.y) / h);
    let along = (step.0 * v.0 + step.1 * v.1) / v.0.hypot(v.1).max(1e-6);
    v.0.hypot(v.1) > MOVING_BOX_SIZES_PER_S && along < -BACKWARDS_BOX_SIZES
}

/// Whether boxes `a` and `b` go side by side along `motion`: their extents along it overlap by at
/// least `SIDE_BY_SIDE_SHARE` of the shorter. Not when standing still.
fn side_by_side(a: &BBox, b: &BBox, motion: (f32, f32)) -> bool {
    let speed = motion.0.hypot(motion.1);
    if speed <= f32::EPSILON {
        return false;
    }
    let (ux, uy) = (motion.0 / speed, motion.1 / speed);
    let extent = |b: &BBox| {
        let (c, half) = (b.center(), b.extent_along(ux, uy) / 2.0);
        let along = c.x * ux + c.y * uy;
        (along - half, along + half)
    };
    let ((a1, a2), (b1, b2)) = (extent(a), extent(b));
    a2.min(b2) - a1.max(b1) >= SIDE_BY_SIDE_SHARE * (a2 - a1).min(b2 - b1)
}

/// Whether `upper` lies above `lower`'s middle across as much of the narrower's width as the
/// detector's rider merge asks of a rider and what it rides.
fn sits_over(upper: &BBox, lower: &BBox) -> bool {
    upper.shared_width(lower) >= MIN_SHARED_WIDTH * upper.width().min(lower.width()) && upper.center().y < lower.center().y
}

/// How many times larger or smaller `b` is than `a`, in width or in height, whichever differs more.
fn size_ratio(a: &BBox, b: &BBox) -> f32 {
    let ratio = |a: f32, b: f32| a.max(b) / a.min(b).max(1e-6);
    ratio(a.width(), b.width()).max(ratio(a.height(), b.height()))
}

/// Whether `b` is within `MAX_SIZE_RATIO` of `a` in width and in height.
fn sized_like(a: &BBox, b: &BBox) -> bool {
    size_ratio(a, b) <= MAX_SIZE_RATIO
}

#[cfg(test)]
mod tests;
