//! Directional line crossing: a track's reference point (bottom-centre of its box) crossing a
//! line *segment*, counted once per track per line after it has stayed on the new side (for
//! counts, once per passage: see [`LineCounter::for_counts`]).
//!
//! Convention, used everywhere: walk from `p1` to `p2` as drawn on screen (x right, y down);
//! **in** is a crossing from the walker's left-hand side to the right-hand side, **out** the reverse.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::check::{ConfigError, check_classes, check_id, check_segment};
use super::history::FORGET_AFTER;
use crate::track::STILL_BOX_SIZES_PER_S;
use crate::types::{ClassId, Point, TrackedObject};

/// `[[cameras.lines]]` in the site config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    /// Line id, unique per camera.
    pub id: String,
    /// Start point, normalized `[x, y]` (0..1, origin top-left).
    pub p1: [f32; 2],
    /// End point, normalized `[x, y]`.
    pub p2: [f32; 2],
    /// Classes counted (model label names). Default: the model's vehicle classes.
    pub classes: Option<Vec<String>>,
    /// Consecutive analysed frames a track must be seen on the new side before the crossing counts,
    /// spanning at least `CONFIRM_FRAME_SPAN` per frame after the first; at the stream's end, one
    /// frame of a vehicle moving on across ([`LineCounter::end`]).
    #[serde(default = "default_confirm_frames")]
    pub confirm_frames: u32,
    /// Publish each crossing as it happens; without, the line is only in the periodic counts.
    #[serde(default = "default_publish_crossings")]
    pub publish_crossings: bool,
    /// Read the licence plate of every vehicle crossing the line, and put it in its crossing
    /// message (default false: a plate costs about 190 ms of one core per vehicle).
    #[serde(default)]
    pub plates: bool,
}

fn default_publish_crossings() -> bool {
    true
}

/// Analysed frames a track must be seen on the new side of a line, unless a line says otherwise:
/// one frame on the far side may be a box bent by an occlusion.
pub const CONFIRM_FRAMES: u32 = 2;

/// Each confirming frame after the first stands for at least this long, whatever the analysis
/// rate: at every frame of a 30-fps camera two frames are 33 ms apart, and a queued car's box,
/// grown for a moment round the car in front of it, reached across the Vietnamese junction's line
/// for three frames (counted as a crossing before this). At 5 fps on a 25- or 30-fps camera
/// frames are 0.2 s apart already; at 10 fps the default takes 3 frames.
pub const CONFIRM_FRAME_SPAN: Duration = Duration::from_millis(150);

fn default_confirm_frames() -> u32 {
    CONFIRM_FRAMES
}

impl LineConfig {
    /// `labels` are the class names the model reports, when it could be loaded.
    pub fn validate(&self, path: &str, labels: Option<&[String]>, errors: &mut Vec<ConfigError>) {
        check_id(&self.id, &format!("{path}.id"), errors);
        check_segment(self.p1, self.p2, path, errors);
        if self.confirm_frames == 0 {
            errors.push(ConfigError::new(format!("{path}.confirm_frames"), "must be at least 1"));
        }
        check_classes(self.classes.as_deref(), labels, path, errors);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

impl Side {
    /// The direction of a crossing that ends on this side.
    fn direction(self) -> Direction {
        if self == Side::Right { Direction::In } else { Direction::Out }
    }
}

/// A counting line with its classes resolved to model class ids.
#[derive(Debug, Clone)]
pub struct Line {
    pub id: String,
    pub p1: Point,
    pub p2: Point,
    pub classes: Vec<ClassId>,
    pub confirm_frames: u32,
}

impl Line {
    pub fn new(id: &str, p1: [f32; 2], p2: [f32; 2], classes: Vec<ClassId>, confirm_frames: u32) -> Line {
        Line { id: id.to_string(), p1: Point { x: p1[0], y: p1[1] }, p2: Point { x: p2[0], y: p2[1] }, classes, confirm_frames }
    }

    /// How long a track must have been on the new side, from its first frame there, before its
    /// crossing counts (see [`CONFIRM_FRAME_SPAN`]).
    fn confirm_span(&self) -> Duration {
        CONFIRM_FRAME_SPAN * self.confirm_frames.saturating_sub(1)
    }

    /// `p`'s signed distance from the line through the segment, positive on the walker's right.
    fn offset(&self, p: Point) -> f32 {
        let (nx, ny) = self.normal();
        (p.x - self.p1.x) * nx + (p.y - self.p1.y) * ny
    }

    /// Which side of the directed line `p` lies on; `None` exactly on it.
    fn side(&self, p: Point) -> Option<Side> {
        let offset = self.offset(p);
        if offset > 0.0 {
            Some(Side::Right)
        } else if offset < 0.0 {
            Some(Side::Left)
        } else {
            None
        }
    }

    /// The unit normal towards the walker's right (y down).
    fn normal(&self) -> (f32, f32) {
        let (lx, ly) = (self.p2.x - self.p1.x, self.p2.y - self.p1.y);
        let length = lx.hypot(ly).max(1e-6);
        (-ly / length, lx / length)
    }

    /// `obj`'s box's extent across the line: the unit its distances and speeds are judged in.
    fn box_size(&self, obj: &TrackedObject) -> f32 {
        let (nx, ny) = self.normal();
        obj.bbox.extent_along(nx, ny).max(1e-4)
    }

    /// `obj`'s own speed (the tracker's velocity, steadier than its box) towards `side` across the
    /// line, in its box's sizes a second.
    fn speed_towards(&self, obj: &TrackedObject, side: Side) -> f32 {
        let (nx, ny) = self.normal();
        let towards_right = obj.velocity[0] * nx + obj.velocity[1] * ny;
        let towards_side = if side == Side::Right { towards_right } else { -towards_right };
        towards_side / self.box_size(obj)
    }

    /// Whether `obj`'s own motion leads away from `side` faster than `AGAINST_BOX_SIZES_PER_S`:
    /// then its reference point reaching `side` is its box's jitter, not a crossing.
    fn moves_against(&self, obj: &TrackedObject, side: Side) -> bool {
        self.speed_towards(obj, side) < -AGAINST_BOX_SIZES_PER_S
    }

    /// Whether `obj`'s own motion leads towards `side` faster than a standing vehicle's
    /// ([`STILL_BOX_SIZES_PER_S`]): on its way across, not standing on the line. Not as fast as
    /// `AGAINST_BOX_SIZES_PER_S`: the Vietnamese junction's last car crawls across its line at
    /// 0.18 to 0.27 box sizes a second.
    fn moves_towards(&self, obj: &TrackedObject, side: Side) -> bool {
        self.speed_towards(obj, side) > STILL_BOX_SIZES_PER_S
    }

    /// The crossing of track `track_id` ending on `side`, first seen there at `at`.
    fn crossing(&self, side: Side, track_id: u64, class: ClassId, confidence: f32, at: Duration, recount: bool) -> Crossing {
        Crossing { line: self.id.clone(), direction: side.direction(), track_id, class, confidence, at, recount }
    }

    /// Whether the move `a → b` passes through the segment itself, not the line beyond its ends.
    fn segment_crossed(&self, a: Point, b: Point) -> bool {
        let (dx, dy) = (b.x - a.x, b.y - a.y);
        let (lx, ly) = (self.p2.x - self.p1.x, self.p2.y - self.p1.y);
        let denom = dx * ly - dy * lx;
        if denom == 0.0 {
            return false;
        }
        // Position along the segment where the move's line meets it (0 at p1, 1 at p2).
        let u = ((self.p1.x - a.x) * dy - (self.p1.y - a.y) * dx) / denom;
        (0.0..=1.0).contains(&u)
    }
}

/// A track moving away from the side its box reached at more than this many box sizes a second
/// has not crossed (see [`Line::moves_against`]). A vehicle's own motion, filtered over its life,
/// is steadier than this; a box's bottom edge jumps by more when an occlusion ends.
const AGAINST_BOX_SIZES_PER_S: f32 = 0.25;

/// A counted track farther from the line than this many box sizes may be counted again (see
/// [`LineCounter::for_counts`]). A standing vehicle's box jumps by up to one size as it is found
/// whole or in part (a bus queued on the Vietnamese junction's line, at every frame).
const REARM_BOX_SIZES: f32 = 2.0;

/// A confirmed crossing.
#[derive(Debug, Clone, PartialEq)]
pub struct Crossing {
    pub line: String,
    pub direction: Direction,
    pub track_id: u64,
    pub class: ClassId,
    pub confidence: f32,
    /// Stream time of the first frame that saw the track on the new side.
    pub at: Duration,
    /// The track crossed this line before (see [`LineCounter::for_counts`]): it may follow
    /// another vehicle now than the one it followed then.
    pub recount: bool,
}

/// Per track and line: the side it was last settled on and a side change waiting for confirmation.
#[derive(Debug, Default)]
struct TrackLineState {
    settled: Option<Side>,
    pending: Option<(Side, u32, Duration)>,
    /// Counted, with its box's size across the line then.
    counted: Option<f32>,
    /// Counted before, and counted again since it went far from the line.
    rearmed: bool,
}

#[derive(Debug)]
struct TrackMemory {
    last_point: Point,
    last_seen: Duration,
    /// The track as last seen: what a crossing the stream's end confirms
    /// ([`LineCounter::end`]) is judged and reported by.
    last: TrackedObject,
    lines: Vec<TrackLineState>,
}

/// Counts crossings of one camera's lines by its tracks.
pub struct LineCounter {
    lines: Vec<Line>,
    tracks: HashMap<u64, TrackMemory>,
    /// Counting, not a rule's evidence: start a track where it was first seen
    /// ([`TrackedObject::origin`]), and count a track once per passage.
    for_counts: bool,
    /// The stream time of the last frame fed.
    last_update: Option<Duration>,
}

impl LineCounter {
    /// A counter of crossings seen on both sides of a line: what a violation rests on.
    pub fn new(lines: Vec<Line>) -> LineCounter {
        LineCounter { lines, tracks: HashMap::new(), for_counts: false, last_update: None }
    }

    /// A counter for counts, not for violations:
    /// - a track starts where it was first seen ([`TrackedObject::origin`]: its first detection
    ///   before it was confirmed, where its faint boxes before that lead back to, or where it was
    ///   in a neighbour's box it was told apart from; the crossing is dated when the track is
    ///   first reported);
    /// - a counted track that has gone farther from the line than twice its box's size
    ///   (`REARM_BOX_SIZES`) is counted again when it crosses back. A vehicle seldom turns back
    ///   across a counting line, but a track may: where both carriageways meet far from the
    ///   camera, a receding car's track passed on to a car coming the other way (bgslibrary at
    ///   5 fps), and that car's crossing was lost. A vehicle queued on the line never gets that
    ///   far from it.
    pub fn for_counts(self) -> LineCounter {
        LineCounter { for_counts: true, ..self }
    }

    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// Forgets every track (the tracker was reset).
    pub fn reset(&mut self) {
        self.tracks.clear();
        self.last_update = None;
    }

    /// The stream ended (or is about to restart): the crossings of tracks seen on its last frame
    /// that were on the new side and moving on across the line, waiting only for the frames the
    /// end cut off (one frame there is enough, whatever `confirm_frames`). A vehicle that crosses
    /// in a clip's last 0.2 s at 5 fps (the Vietnamese junction's Tucson) is seen past the line
    /// on one analysed frame at most, and a person counting the clip counts it. Not a standing
    /// vehicle whose box reaches across for a moment (what the confirmation guards against), nor
    /// a track lost before the last frame: that was not cut short by the end. The other
    /// safeguards held on each frame it was seen on the new side (not moving against the
    /// crossing, begun by a box seen there, through the segment). Forgets every track.
    pub fn end(&mut self) -> Vec<Crossing> {
        let Some(last) = self.last_update.take() else { return Vec::new() };
        let mut crossings = Vec::new();
        for (id, memory) in self.tracks.drain() {
            if memory.last_seen != last {
                continue;
            }
            let obj = &memory.last;
            for (line, state) in self.lines.iter().zip(memory.lines) {
                if let (None, Some((side, _, first_seen))) = (state.counted, state.pending)
                    && line.classes.contains(&obj.class)
                    && line.moves_towards(obj, side)
                {
                    crossings.push(line.crossing(side, id, obj.class, obj.score, first_seen, state.rearmed));
                }
            }
        }
        crossings.sort_by_key(|c| (c.at, c.track_id));
        crossings
    }

    /// Feeds one frame's tracked objects at stream time `now`; returns the crossings confirmed.
    pub fn update(&mut self, objects: &[TrackedObject], now: Duration) -> Vec<Crossing> {
        let mut crossings = Vec::new();
        for obj in objects {
            let point = obj.bbox.bottom_center();
            let lines = &self.lines;
            // A new track starts where it was first seen.
            let origin = obj.origin.filter(|_| self.for_counts);
            let memory = self.tracks.entry(obj.id).or_insert_with(|| TrackMemory {
                last_point: origin.unwrap_or(point),
                last_seen: now,
                last: obj.clone(),
                lines: lines.iter().map(|line| TrackLineState { settled: origin.and_then(|o| line.side(o)), ..TrackLineState::default() }).collect(),
            });
            for (line, state) in self.lines.iter().zip(memory.lines.iter_mut()) {
                // Its size when counted too: a partial box is smaller than the vehicle.
                if !obj.hidden && state.counted.is_some_and(|size| self.for_counts && line.offset(point).abs() > REARM_BOX_SIZES * size.max(line.box_size(obj))) {
                    state.counted = None;
                    state.rearmed = true;
                }
                if state.counted.is_some() || !line.classes.contains(&obj.class) {
                    continue;
                }
                let Some(side) = line.side(point) else { continue };
                let Some(settled) = state.settled else {
                    state.settled = Some(side);
                    continue;
                };
                if side == settled {
                    state.pending = None;
                    continue;
                }
                if line.moves_against(obj, side) {
                    // The box's edge jittered across (a vehicle half hidden, a box that grows
                    // downwards as a car comes out from behind another) while the vehicle itself
                    // moves the other way.
                    state.pending = None;
                    continue;
                }
                let (seen_on_new_side, first_seen) = match state.pending {
                    // Time never goes back for one track: on a restarted stream the tracker and
                    // the analyzers start afresh.
                    Some((pending_side, n, first)) if pending_side == side => (n + 1, first),
                    // A vehicle hidden in its neighbour's box is where the tracker guesses it: the
                    // guess confirms a crossing seen begun, never begins one.
                    _ if obj.hidden => continue,
                    _ if line.segment_crossed(memory.last_point, point) => (1, now),
                    // Went round the end of the segment: not a crossing.
                    _ => {
                        state.settled = Some(side);
                        continue;
                    }
                };
                if seen_on_new_side >= line.confirm_frames && now.saturating_sub(first_seen) >= line.confirm_span() {
                    crossings.push(line.crossing(side, obj.id, obj.class, obj.score, first_seen, state.rearmed));
                    state.settled = Some(side);
                    state.pending = None;
                    state.counted = Some(line.box_size(obj));
                } else {
                    state.pending = Some((side, seen_on_new_side, first_seen));
                }
            }
            if !obj.hidden {
                memory.last_point = point;
            }
            memory.last_seen = now;
            memory.last = obj.clone();
        }
        // Not on a frame without tracks (one the motion gate skipped, where they wait unchanged).
        if !objects.is_empty() {
            self.last_update = Some(now);
        }
        self.tracks.retain(|_, m| now.saturating_sub(m.last_seen) < FORGET_AFTER);
        crossings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::BBox;

    const CAR: ClassId = 2;

    fn line(p1: (f32, f32), p2: (f32, f32), confirm_frames: u32) -> Line {
        Line { id: "l".into(), p1: Point { x: p1.0, y: p1.1 }, p2: Point { x: p2.0, y: p2.1 }, classes: vec![CAR], confirm_frames }
    }

    /// An object whose bottom-centre is at (x, y).
    fn obj(id: u64, x: f32, y: f32) -> TrackedObject {
        TrackedObject { id, bbox: BBox { x1: x - 0.05, y1: y - 0.1, x2: x + 0.05, y2: y }, class: CAR, score: 0.8, velocity: [0.0; 2], origin: None, hidden: false }
    }

    fn run(counter: &mut LineCounter, id: u64, points: &[(f32, f32)]) -> Vec<Crossing> {
        points
            .iter()
            .enumerate()
            .flat_map(|(i, &(x, y))| counter.update(&[obj(id, x, y)], Duration::from_millis(200 * i as u64)))
            .collect()
    }

    /// A vehicle hidden in its neighbour's box (where the tracker guesses it) confirms a crossing
    /// seen begun, and begins none: neither a guess that drifts across, nor a seen frame after it.
    #[test]
    fn a_hidden_vehicle_confirms_a_crossing_seen_begun_and_begins_none() {
        let hidden = |x: f32| TrackedObject { hidden: true, ..obj(1, x, 0.5) };
        let t = |i: u64| Duration::from_millis(200 * i);
        let mut c = LineCounter::new(vec![line((0.5, 1.0), (0.5, 0.0), 2)]);
        assert!(c.update(&[obj(1, 0.45, 0.5)], t(0)).is_empty());
        assert!(c.update(&[obj(1, 0.52, 0.5)], t(1)).is_empty(), "seen once past the line");
        assert_eq!(c.update(&[hidden(0.56)], t(2)).len(), 1, "the guess confirms it");
        let mut c = LineCounter::new(vec![line((0.5, 1.0), (0.5, 0.0), 2)]);
        assert!(c.update(&[obj(1, 0.45, 0.5)], t(0)).is_empty());
        assert!(c.update(&[hidden(0.52)], t(1)).is_empty());
        assert!(c.update(&[hidden(0.56)], t(2)).is_empty(), "a guess alone crosses nothing");
        assert!(c.update(&[obj(1, 0.6, 0.5)], t(3)).is_empty(), "seen past the line: begun now");
        assert_eq!(c.update(&[obj(1, 0.62, 0.5)], t(4)).len(), 1);
    }

    #[test]
    fn left_to_right_of_the_walker_is_in() {
        // Walking up the screen (p1 bottom, p2 top): the walker's right is screen-right.
        let mut c = LineCounter::new(vec![line((0.5, 1.0), (0.5, 0.0), 2)]);
        let got = run(&mut c, 1, &[(0.3, 0.5), (0.45, 0.5), (0.55, 0.5), (0.65, 0.5)]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].direction, Direction::In);
        let got = run(&mut c, 2, &[(0.7, 0.5), (0.6, 0.5), (0.4, 0.5), (0.3, 0.5)]);
        assert_eq!(got[0].direction, Direction::Out);
        // Walking left to right along a horizontal line: the walker's right is screen-down.
        let mut c = LineCounter::new(vec![line((0.0, 0.5), (1.0, 0.5), 1)]);
        assert_eq!(run(&mut c, 1, &[(0.5, 0.4), (0.5, 0.6)])[0].direction, Direction::In);
    }

    #[test]
    fn a_track_told_apart_from_a_neighbours_box_crosses_from_where_it_was_in_it() {
        let mut c = LineCounter::new(vec![line((0.5, 1.0), (0.5, 0.0), 2)]).for_counts();
        let split = |x: f32| TrackedObject { origin: Some(Point { x: 0.4, y: 0.5 }), ..obj(1, x, 0.5) };
        let got: Vec<Crossing> = [0.55, 0.62].iter().enumerate().flat_map(|(i, &x)| c.update(&[split(x)], Duration::from_millis(200 * i as u64))).collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].direction, Direction::In);
        assert!(run(&mut c, 2, &[(0.55, 0.5), (0.62, 0.5)]).is_empty(), "first seen past the line, from nowhere");
        let mut rule = LineCounter::new(vec![line((0.5, 1.0), (0.5, 0.0), 2)]);
        let got: Vec<Crossing> = [0.55, 0.62].iter().enumerate().flat_map(|(i, &x)| rule.update(&[split(x)], Duration::from_millis(200 * i as u64))).collect();
        assert!(got.is_empty(), "a rule's counter goes by what it saw");
    }

    #[test]
    fn a_rules_counter_counts_once_per_track_even_when_it_comes_back() {
        let mut c = LineCounter::new(vec![line((0.5, 1.0), (0.5, 0.0), 1)]);
        let got = run(&mut c, 1, &[(0.4, 0.5), (0.6, 0.5), (0.4, 0.5), (0.6, 0.5)]);
        assert_eq!(got.len(), 1);
        // A rule's counter never counts a track twice, however far it went (the boxes are 0.1
        // wide across this line).
        let mut rule = LineCounter::new(vec![line((0.5, 1.0), (0.5, 0.0), 1)]);
        assert_eq!(run(&mut rule, 1, &[(0.4, 0.5), (0.6, 0.5), (0.9, 0.5), (0.4, 0.5)]).len(), 1);
    }

    #[test]
    fn a_counted_track_that_went_far_from_the_line_counts_again_when_it_crosses_back() {
        // A receding car's track that passed on to a car coming the other way.
        let mut c = LineCounter::new(vec![line((0.5, 1.0), (0.5, 0.0), 1)]).for_counts();
        let got = run(&mut c, 1, &[(0.4, 0.5), (0.6, 0.5), (0.65, 0.5), (0.75, 0.5), (0.55, 0.5), (0.4, 0.5)]);
        assert_eq!(got.iter().map(|c| (c.direction, c.recount)).collect::<Vec<_>>(), vec![(Direction::In, false), (Direction::Out, true)]);
        // Never farther than twice its box's size (0.1): once.
        let got = run(&mut c, 2, &[(0.4, 0.5), (0.6, 0.5), (0.68, 0.5), (0.45, 0.5), (0.6, 0.5), (0.4, 0.5)]);
        assert_eq!(got.len(), 1, "{got:?}");
        // A standing vehicle found in part: its box shrinks and its bottom rises by more than the
        // part's size, not by twice the whole's.
        let part = |id: u64, y: f32, h: f32| TrackedObject { bbox: BBox { x1: 0.45, y1: y - h, x2: 0.55, y2: y }, ..obj(id, 0.5, y) };
        let mut c = LineCounter::new(vec![line((0.0, 0.5), (1.0, 0.5), 1)]).for_counts();
        let boxes = [part(3, 0.48, 0.2), part(3, 0.52, 0.2), part(3, 0.3, 0.08), part(3, 0.48, 0.2), part(3, 0.52, 0.2)];
        let got: Vec<Crossing> = boxes.iter().enumerate().flat_map(|(i, o)| c.update(std::slice::from_ref(o), Duration::from_millis(200 * i as u64))).collect();
        assert_eq!(got.len(), 1, "{got:?}");
    }

    /// At every frame of a 30-fps camera, a queued car's box grown for three frames round the car
    /// in front of it reaches across the line: not a crossing. A car that drives over is counted
    /// once 0.15 s have passed since its first frame there.
    #[test]
    fn a_box_across_the_line_for_a_moment_is_not_a_crossing_at_every_frame() {
        let frame = |i: u64| Duration::from_micros(33_333 * i);
        let mut c = LineCounter::new(vec![line((0.0, 0.44), (1.0, 0.44), CONFIRM_FRAMES)]);
        let queued = [0.38, 0.38, 0.39, 0.444, 0.445, 0.443, 0.37, 0.38, 0.38, 0.38];
        assert!(queued.iter().enumerate().all(|(i, &y)| c.update(&[obj(1, 0.6, y)], frame(i as u64)).is_empty()));
        let mut counted_at = Vec::new();
        for i in 10..30 {
            let y = 0.352 + 0.01 * (i - 10) as f32;
            counted_at.extend(c.update(&[obj(2, 0.6, y)], frame(i)).into_iter().map(|crossing| (i, crossing.at)));
        }
        // First past the line at frame 19; counted at frame 24 (0.167 s on), dated frame 19.
        assert_eq!(counted_at, vec![(24, frame(19))]);
    }

    /// A clip's end cuts a crossing short: a vehicle seen past the line on the last analysed frame,
    /// moving on across it, is counted then. Not one lost before the last frame, one counted
    /// already, one whose box reached across while it moved away, or one standing there.
    #[test]
    fn the_streams_end_counts_a_crossing_seen_begun_on_its_last_frame() {
        let t = |i: u64| Duration::from_millis(200 * i);
        let mut c = LineCounter::new(vec![line((0.5, 1.0), (0.5, 0.0), 2)]).for_counts();
        // The boxes are 0.1 wide across this vertical line: 0.1 a second is one box size.
        let moving = |id: u64, x: f32, vx: f32| TrackedObject { velocity: [vx, 0.0], ..obj(id, x, 0.5) };
        let first = [moving(1, 0.45, 0.1), obj(2, 0.45, 0.5), obj(3, 0.4, 0.5), obj(4, 0.48, 0.5), obj(5, 0.48, 0.5)];
        assert!(c.update(&first, t(0)).is_empty());
        let second = [moving(1, 0.48, 0.1), obj(2, 0.55, 0.5), obj(3, 0.55, 0.5), obj(4, 0.48, 0.5), obj(5, 0.49, 0.5)];
        assert!(c.update(&second, t(1)).is_empty());
        let last = [moving(1, 0.53, 0.1), obj(3, 0.6, 0.5), moving(4, 0.52, -0.5), obj(5, 0.51, 0.5)];
        assert_eq!(c.update(&last, t(2)).len(), 1, "track 3 confirmed");
        let ended = c.end();
        assert_eq!(ended.iter().map(|c| (c.track_id, c.direction, c.at)).collect::<Vec<_>>(), vec![(1, Direction::In, t(2))]);
        assert!(c.end().is_empty(), "counted once");
    }

    #[test]
    fn flicker_on_the_line_is_not_a_crossing() {
        let mut c = LineCounter::new(vec![line((0.5, 1.0), (0.5, 0.0), 2)]);
        let got = run(&mut c, 1, &[(0.49, 0.5), (0.51, 0.5), (0.49, 0.5), (0.51, 0.5), (0.49, 0.5)]);
        assert!(got.is_empty());
    }

    #[test]
    fn a_box_edge_jumping_across_while_the_vehicle_moves_away_is_not_a_crossing() {
        // A car driving up the screen (away) whose box bottom drops across the line for two
        // frames as an occlusion ends, then rises again.
        let mut c = LineCounter::new(vec![line((0.0, 0.5), (1.0, 0.5), 2)]);
        let away = |y: f32| TrackedObject { velocity: [0.0, -0.1], ..obj(1, 0.5, y) };
        let got: Vec<Crossing> = [0.48, 0.47, 0.53, 0.54, 0.46, 0.45]
            .iter()
            .enumerate()
            .flat_map(|(i, &y)| c.update(&[away(y)], Duration::from_millis(200 * i as u64)))
            .collect();
        assert!(got.is_empty(), "{got:?}");
        // The same boxes on a vehicle that does move down are a crossing.
        let down = |y: f32| TrackedObject { velocity: [0.0, 0.1], ..obj(2, 0.5, y) };
        let got: Vec<Crossing> = [0.48, 0.49, 0.53, 0.54].iter().enumerate().flat_map(|(i, &y)| c.update(&[down(y)], Duration::from_millis(200 * i as u64))).collect();
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn passing_beyond_the_end_of_the_segment_is_not_a_crossing() {
        // Segment covers only the top half; the object crosses the extended line at y = 0.8.
        let mut c = LineCounter::new(vec![line((0.5, 0.5), (0.5, 0.0), 1)]);
        assert!(run(&mut c, 1, &[(0.3, 0.8), (0.7, 0.8), (0.8, 0.8)]).is_empty());
    }

    #[test]
    fn other_classes_are_not_counted() {
        let mut c = LineCounter::new(vec![Line { classes: vec![7], ..line((0.5, 1.0), (0.5, 0.0), 1) }]);
        assert!(run(&mut c, 1, &[(0.4, 0.5), (0.6, 0.5)]).is_empty());
    }
}
