//! `congestion`: more than `max_vehicles` vehicles standing or crawling in a zone for longer than
//! `for_s`: a queue at a junction, a jam on an arterial. One alert per episode, with the number of
//! slow vehicles and the queue's extent (the box around them), and an `end` once the zone has been
//! clear of the queue for `clear_s`, with the longest queue seen and how long it lasted.
//!
//! A vehicle is slow when its reference point moved less than `max_move` over the last
//! `window_s`, or, with a ground-plane `calibration`, when it was slower than `max_speed_kmh`
//! there. Tracks younger than the window are not judged yet: a vehicle that just drove in is not
//! part of a queue.

use std::time::Duration;

use serde::Deserialize;

use super::speeding::Homography;
use super::{Calibration, Check, Measured, RuleFinding, RuleKindConfig, ZONE_TRACK, round1};
use crate::analytics::FrameContext;
use crate::analytics::geometry::{Polygon, check_zone, distance};
use crate::check::{ConfigError, check_positive, check_positive_seconds};
use crate::render::{Shape, Tone};
use crate::types::{BBox, ClassId, TrackedObject};

/// `congestion = { … }` of a rule.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CongestionConfig {
    /// Polygon of normalized `[x, y]` points covering the lanes where queues form.
    pub zone: Vec<[f32; 2]>,
    /// More slow vehicles than this in the zone is a queue.
    pub max_vehicles: u32,
    /// How long the queue must last before the alert, seconds.
    #[serde(default = "default_for_s")]
    pub for_s: f32,
    /// How long the zone must be free of a queue before the `end`, seconds.
    #[serde(default = "default_clear_s")]
    pub clear_s: f32,
    /// Time a vehicle's motion is measured over, seconds.
    #[serde(default = "default_window_s")]
    pub window_s: f32,
    /// A vehicle whose reference point moved less than this over `window_s` is slow (normalized
    /// image units). Used without `calibration`.
    #[serde(default = "default_max_move")]
    pub max_move: f32,
    /// With `calibration`: a vehicle slower than this on the ground is slow, km/h.
    pub max_speed_kmh: Option<f32>,
    /// Four image points and where they lie on the road, as for `speeding`.
    pub calibration: Option<Calibration>,
}

fn default_for_s() -> f32 {
    60.0
}
fn default_clear_s() -> f32 {
    10.0
}
fn default_window_s() -> f32 {
    2.0
}
fn default_max_move() -> f32 {
    0.02
}

impl RuleKindConfig for CongestionConfig {
    fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        check_zone(&self.zone, &format!("{path}.zone"), errors);
        for (key, value) in [("for_s", self.for_s), ("clear_s", self.clear_s), ("window_s", self.window_s)] {
            check_positive_seconds(value, &format!("{path}.{key}"), errors);
        }
        check_positive(self.max_move, &format!("{path}.max_move"), "distance", errors);
        match (&self.calibration, self.max_speed_kmh) {
            (Some(calibration), Some(kmh)) => {
                check_positive(kmh, &format!("{path}.max_speed_kmh"), "speed", errors);
                calibration.validate(&format!("{path}.calibration"), &self.zone, &format!("{path}.zone"), errors);
            }
            (None, Some(_)) => errors.push(ConfigError::new(format!("{path}.max_speed_kmh"), "needs a ground-plane calibration (add calibration, or use max_move)")),
            (Some(_), None) => errors.push(ConfigError::new(format!("{path}.calibration"), "is used with max_speed_kmh: give both, or neither")),
            (None, None) => {}
        }
    }

    fn build(&self, _id: &str, _classes: &[ClassId]) -> Result<Box<dyn Check>, String> {
        let slow = match (&self.calibration, self.max_speed_kmh) {
            (Some(calibration), Some(kmh)) => Slow::Speed { homography: Homography::from_calibration(calibration)?, max_kmh: kmh },
            _ => Slow::Move(self.max_move),
        };
        Ok(Box::new(Congestion {
            zone: Polygon::new(&self.zone),
            max_vehicles: self.max_vehicles as usize,
            hold: Duration::from_secs_f32(self.for_s),
            clear: Duration::from_secs_f32(self.clear_s),
            window: Duration::from_secs_f32(self.window_s),
            slow,
            episode: None,
        }))
    }
}

/// What makes a vehicle slow.
enum Slow {
    Move(f32),
    Speed { homography: Homography, max_kmh: f32 },
}

/// A queue from its start to its end.
struct Episode {
    since: Duration,
    /// While the queue is gone: since when.
    gone_since: Option<Duration>,
    last_queued: Duration,
    alerted: bool,
    /// The longest queue seen: vehicles and extent.
    peak: (usize, TrackedObject),
}

struct Congestion {
    zone: Polygon,
    max_vehicles: usize,
    hold: Duration,
    clear: Duration,
    window: Duration,
    slow: Slow,
    episode: Option<Episode>,
}

impl Congestion {
    /// The slow vehicles in the zone.
    fn queued<'a>(&self, objects: &'a [TrackedObject], frame: &FrameContext) -> Vec<&'a TrackedObject> {
        objects
            .iter()
            .filter(|o| {
                let Some(((t0, from), (t1, to))) = frame.history.span(o.id, self.window) else { return false };
                if !(self.zone.contains(from) && self.zone.contains(to)) {
                    return false;
                }
                match &self.slow {
                    Slow::Move(max_move) => distance(from, to) < *max_move,
                    Slow::Speed { homography, max_kmh } => {
                        let dt = t1.saturating_sub(t0).as_secs_f64().max(f64::EPSILON);
                        homography.ground_distance_m(from, to) / dt * 3.6 < *max_kmh as f64
                    }
                }
            })
            .collect()
    }

    /// The `end` of an episode that was alerted: its longest queue, and how long it lasted.
    fn ended(episode: Episode) -> Vec<RuleFinding> {
        if !episode.alerted {
            return Vec::new();
        }
        vec![Self::finding(&episode.peak, episode.last_queued.saturating_sub(episode.since), true)]
    }

    fn finding(queue: &(usize, TrackedObject), lasted: Duration, end: bool) -> RuleFinding {
        let (vehicles, object) = queue;
        let b = object.bbox;
        let measured = Measured { vehicles: Some(*vehicles as u32), extent: Some([b.x1, b.y1, b.x2, b.y2].map(round3)), congested_s: Some(round1(lasted.as_secs_f32())), ..Default::default() };
        RuleFinding { track: ZONE_TRACK, object: object.clone(), measured, end }
    }
}

fn round3(x: f32) -> f32 {
    (x * 1000.0).round() / 1000.0
}

/// The queue as one object: the box around its vehicles, their most frequent class, their mean
/// score.
fn queue_object(queued: &[&TrackedObject]) -> TrackedObject {
    let bbox = queued.iter().fold(BBox { x1: 1.0, y1: 1.0, x2: 0.0, y2: 0.0 }, |b, o| BBox { x1: b.x1.min(o.bbox.x1), y1: b.y1.min(o.bbox.y1), x2: b.x2.max(o.bbox.x2), y2: b.y2.max(o.bbox.y2) });
    let class = queued.iter().map(|o| o.class).max_by_key(|c| queued.iter().filter(|o| o.class == *c).count()).unwrap_or_default();
    let score = queued.iter().map(|o| o.score).sum::<f32>() / queued.len().max(1) as f32;
    TrackedObject { id: ZONE_TRACK, bbox, class, score, velocity: [0.0; 2], origin: None, hidden: false }
}

impl Check for Congestion {
    fn overlay(&self) -> (Shape, Tone) {
        (Shape::Zone(self.zone.points.clone()), Tone::Rule)
    }

    fn history(&self) -> Duration {
        self.window
    }

    fn alerts_last(&self) -> bool {
        true
    }

    fn reset(&mut self) {
        self.episode = None;
    }

    fn end(&mut self) -> Vec<RuleFinding> {
        self.episode.take().map(Self::ended).unwrap_or_default()
    }

    fn update(&mut self, objects: &[TrackedObject], frame: &FrameContext) -> Vec<RuleFinding> {
        let now = frame.now;
        let queued = self.queued(objects, frame);
        if queued.len() > self.max_vehicles {
            let queue = (queued.len(), queue_object(&queued));
            let episode = self.episode.get_or_insert_with(|| Episode { since: now, gone_since: None, last_queued: now, alerted: false, peak: queue.clone() });
            episode.gone_since = None;
            episode.last_queued = now;
            if queue.0 > episode.peak.0 {
                episode.peak = queue.clone();
            }
            if !episode.alerted && now.saturating_sub(episode.since) >= self.hold {
                episode.alerted = true;
                return vec![Self::finding(&queue, now.saturating_sub(episode.since), false)];
            }
            return Vec::new();
        }
        let Some(episode) = &mut self.episode else { return Vec::new() };
        let gone_since = *episode.gone_since.get_or_insert(now);
        if now.saturating_sub(gone_since) < self.clear {
            return Vec::new();
        }
        Self::ended(self.episode.take().expect("checked above"))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::tests::{car, play, rules};

    pub(in super::super) const JAM: &str = r#"
[[rules]]
id = "jam"
[rules.congestion]
zone = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]
max_vehicles = 3
for_s = 10
clear_s = 4
"#;

    /// `n` cars in a row in the zone, each creeping `creep` per frame (5 frames a second).
    fn row(n: u64, f: u32, creep: f32) -> Vec<crate::types::TrackedObject> {
        (0..n).map(|i| car(i + 1, 0.1 + 0.1 * i as f32 + creep * f as f32, 0.8)).collect()
    }

    #[test]
    fn a_queue_that_lasts_raises_one_alert_and_an_end_once_it_clears() {
        let mut r = rules(JAM);
        // 5 cars creeping 0.001 a frame (0.005 a second) for 30 s, then the zone empties.
        let got = play(&mut r, 0..200, |f| if f < 150 { row(5, f, 0.001) } else { Vec::new() });
        let kinds: Vec<(u32, bool)> = got.iter().map(|(f, v)| (*f, v.ends.is_some())).collect();
        // Judged once a car has 2 s of history (frame 10); 10 s later (frame 60) the alert; the
        // queue was last seen at frame 149 and the zone clear for 4 s at frame 170.
        assert_eq!(kinds, vec![(60, false), (170, true)], "{got:#?}");
        let (alert, end) = (&got[0].1, &got[1].1);
        assert_eq!(alert.measured.vehicles, Some(5));
        assert_eq!(alert.measured.congested_s, Some(10.0));
        // The five boxes, 0.08 wide, from x 0.12 to 0.60 after 12 s of creeping.
        assert_eq!(alert.measured.extent, Some([0.12, 0.72, 0.6, 0.8]));
        assert_eq!(end.ends.as_deref(), Some(alert.id.as_str()));
        assert_eq!(end.measured.congested_s, Some(27.8));
    }

    #[test]
    fn moving_traffic_few_vehicles_and_short_queues_raise_nothing() {
        let mut r = rules(JAM);
        // Five cars moving 0.01 a frame (0.1 of the frame in 2 s): traffic flows.
        assert!(play(&mut r, 0..100, |f| row(5, f % 50, 0.01)).is_empty());
        // Three cars standing: not more than max_vehicles.
        assert!(play(&mut r, 0..100, |f| row(3, f, 0.0)).is_empty());
        // Five cars standing for 8 s, then gone: shorter than for_s.
        assert!(play(&mut r, 0..100, |f| if f < 50 { row(5, f, 0.0) } else { Vec::new() }).is_empty());
    }

    #[test]
    fn a_queue_that_thins_for_a_moment_is_one_episode() {
        let mut r = rules(JAM);
        // Five cars stand; for 2 s (less than clear_s) only three are seen.
        let got = play(&mut r, 0..150, |f| row(if (70..80).contains(&f) { 3 } else { 5 }, f, 0.0));
        assert_eq!(got.len(), 1, "one alert, no end: {got:#?}");
    }
}
