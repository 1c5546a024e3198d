//! `no_stopping` and `no_parking`: a vehicle standing still inside a zone for longer than
//! `dwell_s` raises an alert with the time so far, and an `end` with the whole time once it
//! moves off, leaves the zone or is gone.
//!
//! "Still" means its reference point stays within `max_move` of where it stopped: a car creeping
//! forward in a queue drifts out of that circle and starts its count again. Stops are kept per
//! vehicle rather than per track, so a parked car that the tracker loses and finds again (behind
//! passing traffic) is one stop, not a new alert.

use std::time::Duration;

use serde::Deserialize;

use super::{Check, Measured, RuleFinding, RuleKindConfig, round1};
use crate::analytics::FrameContext;
use crate::analytics::geometry::{Polygon, check_zone, distance};
use crate::check::{ConfigError, check_positive, check_positive_seconds};
use crate::render::{Shape, Tone};
use crate::types::{ClassId, Point, TrackedObject};

/// `no_stopping = { … }` / `no_parking = { … }` of a rule.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DwellConfig {
    /// Polygon of normalized `[x, y]` points where standing is not allowed.
    pub zone: Vec<[f32; 2]>,
    /// How long a vehicle may stand still in the zone before it is a violation, seconds.
    pub dwell_s: f32,
    /// How far the reference point may wander while the vehicle counts as standing still
    /// (normalized image units; box jitter of a parked car is about 0.005).
    #[serde(default = "default_max_move")]
    pub max_move: f32,
}

fn default_max_move() -> f32 {
    0.02
}

impl RuleKindConfig for DwellConfig {
    fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        check_zone(&self.zone, &format!("{path}.zone"), errors);
        check_positive_seconds(self.dwell_s, &format!("{path}.dwell_s"), errors);
        check_positive(self.max_move, &format!("{path}.max_move"), "distance", errors);
    }

    fn build(&self, _id: &str, _classes: &[ClassId]) -> Result<Box<dyn Check>, String> {
        Ok(Box::new(Dwell::new(self)))
    }
}

/// A vehicle must be this long away from where it stopped before it counts as moving off: a
/// passing car that hides it for a moment bends its box but does not end the stop.
const MOVE_OFF: Duration = Duration::from_secs(1);
/// A stop whose vehicle has not been seen this long is over. Until then a new track standing on
/// the same spot takes it over: the tracker lost the parked car behind a passing bus, and it is
/// the same car.
const UNSEEN: Duration = Duration::from_secs(10);
/// Two boxes overlapping this much (of the smaller) in one zone are one vehicle seen twice.
const SAME_VEHICLE_OVERLAP: f32 = 0.6;

/// One vehicle standing in the zone.
struct Stop {
    /// The track that started the stop; alerts are counted against it.
    first_track: u64,
    /// The track following the vehicle now.
    track: u64,
    anchor: Point,
    since: Duration,
    last_still: Duration,
    away_since: Option<Duration>,
    object: TrackedObject,
    alerted: bool,
}

impl Stop {
    fn new(object: &TrackedObject, now: Duration) -> Stop {
        Stop {
            first_track: object.id,
            track: object.id,
            anchor: object.bbox.bottom_center(),
            since: now,
            last_still: now,
            away_since: None,
            object: object.clone(),
            alerted: false,
        }
    }

    fn end(&self) -> Option<RuleFinding> {
        self.alerted.then(|| RuleFinding {
            track: self.first_track,
            object: self.object.clone(),
            measured: Measured { dwell_s: Some(round1(self.last_still.saturating_sub(self.since).as_secs_f32())), ..Default::default() },
            end: true,
        })
    }
}

struct Dwell {
    zone: Polygon,
    dwell: Duration,
    max_move: f32,
    stops: Vec<Stop>,
}

impl Dwell {
    fn new(config: &DwellConfig) -> Dwell {
        Dwell { zone: Polygon::new(&config.zone), dwell: Duration::from_secs_f32(config.dwell_s), max_move: config.max_move, stops: Vec::new() }
    }

}

impl Check for Dwell {
    fn overlay(&self) -> (Shape, Tone) {
        (Shape::Zone(self.zone.points.clone()), Tone::Rule)
    }

    fn reset(&mut self) {
        self.stops.clear();
    }

    fn alerts_last(&self) -> bool {
        true
    }

    fn end(&mut self) -> Vec<RuleFinding> {
        std::mem::take(&mut self.stops).iter().filter_map(Stop::end).collect()
    }

    fn update(&mut self, objects: &[TrackedObject], frame: &FrameContext) -> Vec<RuleFinding> {
        let now = frame.now;
        let mut findings = Vec::new();
        for obj in objects {
            let point = obj.bbox.bottom_center();
            let followed = self.stops.iter().position(|s| s.track == obj.id);
            if !self.zone.contains(point) {
                if let Some(i) = followed {
                    findings.extend(self.stops.swap_remove(i).end());
                }
                continue;
            }
            let i = match followed {
                Some(i) => i,
                None => {
                    // An established stop whose vehicle is not in this frame, on this spot: the
                    // same vehicle. (A car glimpsed for a frame where others pass later is not.)
                    let present = |track: u64| objects.iter().any(|o| o.id == track);
                    let orphan = self.stops.iter().position(|s| {
                        !present(s.track) && s.last_still.saturating_sub(s.since) >= MOVE_OFF && distance(point, s.anchor) <= self.max_move
                    });
                    let seen_twice = self.stops.iter().any(|s| present(s.track) && s.object.bbox.overlap_of_smaller(&obj.bbox) >= SAME_VEHICLE_OVERLAP);
                    match orphan {
                        Some(i) => {
                            self.stops[i].track = obj.id;
                            i
                        }
                        None if seen_twice => continue,
                        None => {
                            self.stops.push(Stop::new(obj, now));
                            self.stops.len() - 1
                        }
                    }
                }
            };
            let stop = &mut self.stops[i];
            if distance(point, stop.anchor) > self.max_move {
                let away_since = *stop.away_since.get_or_insert(now);
                if now.saturating_sub(away_since) >= MOVE_OFF {
                    findings.extend(stop.end());
                    *stop = Stop::new(obj, now);
                }
                continue;
            }
            stop.away_since = None;
            stop.last_still = now;
            stop.object = obj.clone();
            let dwell = now.saturating_sub(stop.since);
            if !stop.alerted && dwell >= self.dwell {
                stop.alerted = true;
                findings.push(RuleFinding {
                    track: stop.first_track,
                    object: obj.clone(),
                    measured: Measured { dwell_s: Some(round1(dwell.as_secs_f32())), ..Default::default() },
                    end: false,
                });
            }
        }
        let (gone, stops): (Vec<Stop>, Vec<Stop>) = std::mem::take(&mut self.stops).into_iter().partition(|s| now.saturating_sub(s.last_still) >= UNSEEN);
        self.stops = stops;
        findings.extend(gone.iter().filter_map(Stop::end));
        findings
    }
}
