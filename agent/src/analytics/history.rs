//! Recent positions of each track, which the rules measure motion over (heading, speed, dwell).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::types::{Point, TrackedObject};

/// Reference points (bottom-centre of the box) of every live track over the last `keep`.
#[derive(Debug)]
pub struct TrackHistory {
    keep: Duration,
    tracks: HashMap<u64, VecDeque<Sample>>,
}

/// One frame's view of a track: its reference point (bottom centre), and the top of its box
/// (straight above it), which tells a vehicle that moves from a box that only stretches.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    point: Point,
    top_y: f32,
}

/// A track's fitted motion over a window: where the fit starts and ends, and whether the samples
/// follow it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Motion {
    pub from: Point,
    pub to: Point,
    /// No sample strays from the fitted line, or steps back along it, by more than
    /// `UNSTEADY_SHARE` of the distance covered, and no step is longer than
    /// `MAX_STEP_OVER_MEAN` times the mean step. A track that swapped identity with a neighbour
    /// (two riders side by side) jumps sideways or back; its fitted heading is meaningless. Nor
    /// does the top of its box move against the fitted heading: a box whose bottom edge creeps
    /// down as a car behind uncovers the vehicle, while its top recedes, is stretching, not moving.
    pub steady: bool,
}

/// See [`Motion::steady`].
const UNSTEADY_SHARE: f32 = 0.25;
/// A vehicle speeding up from a standstill within the window takes steps up to about twice its
/// mean; a jump to a neighbour's box is far longer than the steps around it.
const MAX_STEP_OVER_MEAN: f32 = 3.0;

/// A track unseen for this long is gone (longer than any tracker coasting time).
pub const FORGET_AFTER: Duration = Duration::from_secs(30);

impl TrackHistory {
    pub fn new(keep: Duration) -> TrackHistory {
        TrackHistory { keep, tracks: HashMap::new() }
    }

    pub fn reset(&mut self) {
        self.tracks.clear();
    }

    pub fn update(&mut self, objects: &[TrackedObject], now: Duration) {
        // Measured motion (speeds, headings) comes from where tracks were seen, not guessed.
        for obj in objects.iter().filter(|o| !o.hidden) {
            let samples = self.tracks.entry(obj.id).or_default();
            samples.push_back(Sample { at: now, point: obj.bbox.bottom_center(), top_y: obj.bbox.y1 });
            // Always keep one sample older than `keep`, so a full window can be measured.
            while samples.len() > 2 && now.saturating_sub(samples[1].at) >= self.keep {
                samples.pop_front();
            }
        }
        self.tracks.retain(|_, s| s.back().is_some_and(|last| now.saturating_sub(last.at) < FORGET_AFTER));
    }

    /// Whether `track` has been seen in the last [`FORGET_AFTER`].
    pub fn knows(&self, track: u64) -> bool {
        self.tracks.contains_key(&track)
    }

    /// The track's motion over the last `window` (from the newest sample at least `window` old),
    /// fitted to every sample in it rather than read from its two ends, whose boxes may be bent
    /// by an occlusion. `None` while the track is younger than `window` or has fewer than three
    /// samples in it.
    pub fn motion(&self, track: u64, window: Duration) -> Option<Motion> {
        let samples = self.window(track, window)?;
        if samples.len() < 3 {
            return None;
        }
        let (first, last) = (samples.clone().next()?, samples.clone().last()?);
        let at = |s: &Sample| s.at.as_secs_f32();
        let n = samples.len() as f32;
        let (mt, mx, my) = samples.clone().fold((0.0, 0.0, 0.0), |(a, b, c), s| (a + at(s) / n, b + s.point.x / n, c + s.point.y / n));
        let var_t: f32 = samples.clone().map(|s| (at(s) - mt).powi(2)).sum();
        let (vx, vy) = samples.clone().fold((0.0, 0.0), |(a, b), s| (a + (at(s) - mt) * (s.point.x - mx) / var_t, b + (at(s) - mt) * (s.point.y - my) / var_t));
        let fitted = |t: f32| Point { x: mx + vx * (t - mt), y: my + vy * (t - mt) };
        let (from, to) = (fitted(at(first)), fitted(at(last)));
        let length = (to.x - from.x).hypot(to.y - from.y);
        let (ux, uy) = ((to.x - from.x) / length.max(1e-6), (to.y - from.y) / length.max(1e-6));
        let along = |p: Point| (p.x - from.x) * ux + (p.y - from.y) * uy;
        let off_line = samples.clone().map(|s| ((s.point.x - from.x) * uy - (s.point.y - from.y) * ux).abs()).fold(0.0, f32::max);
        let pairs = || samples.clone().zip(samples.clone().skip(1));
        let step = |(a, b): (&Sample, &Sample)| (b.point.x - a.point.x).hypot(b.point.y - a.point.y);
        let mean_step = pairs().map(step).sum::<f32>() / (samples.len() - 1) as f32;
        let steady = length > 0.0
            && off_line <= UNSTEADY_SHARE * length
            && pairs().all(|(a, b)| along(b.point) - along(a.point) >= -UNSTEADY_SHARE * length)
            && pairs().all(|pair| step(pair) <= MAX_STEP_OVER_MEAN * mean_step)
            && (last.point.x - first.point.x) * ux + (last.top_y - first.top_y) * uy >= 0.0;
        Some(Motion { from, to, steady })
    }

    /// The newest sample of `track` taken at least `window` before its latest one, with that latest
    /// one: the span to measure motion over. `None` while the track is younger than `window`.
    pub fn span(&self, track: u64, window: Duration) -> Option<((Duration, Point), (Duration, Point))> {
        let samples = self.window(track, window)?;
        let (first, last) = (samples.clone().next()?, samples.last()?);
        Some(((first.at, first.point), (last.at, last.point)))
    }

    /// The samples of `track` from the newest one at least `window` before its latest, to the
    /// latest; `None` while the track is younger than `window`.
    fn window(&self, track: u64, window: Duration) -> Option<std::collections::vec_deque::Iter<'_, Sample>> {
        let samples = self.tracks.get(&track)?;
        let end = samples.back()?.at;
        let start = samples.iter().rposition(|s| end.saturating_sub(s.at) >= window)?;
        Some(samples.range(start..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::BBox;

    #[test]
    fn span_covers_at_least_the_window() {
        let mut history = TrackHistory::new(Duration::from_secs(2));
        for i in 0..20u64 {
            let x = 0.01 * i as f32;
            let obj = TrackedObject { id: 1, bbox: BBox { x1: x, y1: 0.0, x2: x + 0.1, y2: 0.5 }, class: 2, score: 0.9, velocity: [0.0; 2], origin: None, hidden: false };
            history.update(&[obj], Duration::from_millis(200 * i));
            if i < 3 {
                assert!(history.span(1, Duration::from_millis(600)).is_none(), "too young at sample {i}");
            }
        }
        let ((t0, p0), (t1, p1)) = history.span(1, Duration::from_millis(600)).unwrap();
        assert_eq!(t1 - t0, Duration::from_millis(600));
        assert!((p1.x - p0.x - 0.03).abs() < 1e-5);
        // Old samples are dropped, but a 2 s window can still be measured.
        assert!(history.span(1, Duration::from_secs(2)).is_some());
        assert!(history.span(1, Duration::from_secs(3)).is_none());
    }
}
