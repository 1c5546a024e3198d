//! Recent positions of each track, which the rules measure motion over (heading, speed, dwell).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::types::{Point, TrackedObject};

/// Reference points (bottom-centre of the box) of every live track over the last `keep`.
#[derive(Debug)]
pub struct TrackHistory {
    keep: Duration,
    tracks: HashMap<u64, VecDeque<(Duration, Point)>>,
}

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
        for obj in objects {
            let samples = self.tracks.entry(obj.id).or_default();
            samples.push_back((now, obj.bbox.bottom_center()));
            // Always keep one sample older than `keep`, so a full window can be measured.
            while samples.len() > 2 && now.saturating_sub(samples[1].0) >= self.keep {
                samples.pop_front();
            }
        }
        self.tracks.retain(|_, s| s.back().is_some_and(|&(t, _)| now.saturating_sub(t) < FORGET_AFTER));
    }

    /// Whether `track` has been seen in the last [`FORGET_AFTER`].
    pub fn knows(&self, track: u64) -> bool {
        self.tracks.contains_key(&track)
    }

    /// The newest sample of `track` taken at least `window` before its latest one, with that latest
    /// one: the span to measure motion over. `None` while the track is younger than `window`.
    pub fn span(&self, track: u64, window: Duration) -> Option<((Duration, Point), (Duration, Point))> {
        let samples = self.tracks.get(&track)?;
        let &last = samples.back()?;
        let first = samples.iter().rev().find(|(t, _)| last.0.saturating_sub(*t) >= window)?;
        Some((*first, last))
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
            let obj = TrackedObject { id: 1, bbox: BBox { x1: x, y1: 0.0, x2: x + 0.1, y2: 0.5 }, class: 2, score: 0.9, velocity: [0.0; 2] };
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
