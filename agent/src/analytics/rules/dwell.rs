//! `no_stopping` and `no_parking`: a vehicle standing still inside a zone for longer than
//! `dwell_s` raises an alert with the time so far, and an `end` with the whole time once it
//! moves off, leaves the zone or is gone.
//!
//! "Still" means its reference point stays within `max_move` of where it stopped: a car creeping
//! forward in a queue drifts out of that circle and starts its count again.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::{Finding, Measured, check_positive, round1};
use crate::analytics::geometry::{Polygon, check_zone, distance};
use crate::config::ConfigError;
use crate::types::{Point, TrackedObject};

/// `no_stopping = { … }` / `no_parking = { … }` of a rule.
#[derive(Debug, Clone, Deserialize)]
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

impl DwellConfig {
    pub fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        check_zone(&self.zone, &format!("{path}.zone"), errors);
        check_positive(self.dwell_s, &format!("{path}.dwell_s"), "number of seconds", errors);
        check_positive(self.max_move, &format!("{path}.max_move"), "distance", errors);
    }
}

/// A track unseen this long has left (longer than the tracker coasts a lost track).
const GONE_AFTER: Duration = Duration::from_secs(2);

struct Standing {
    anchor: Point,
    since: Duration,
    last_seen: Duration,
    object: TrackedObject,
    alerted: bool,
}

impl Standing {
    fn new(object: &TrackedObject, now: Duration) -> Standing {
        Standing { anchor: object.bbox.bottom_center(), since: now, last_seen: now, object: object.clone(), alerted: false }
    }

    fn end(&self) -> Option<Finding> {
        self.alerted.then(|| Finding {
            object: self.object.clone(),
            measured: Measured { dwell_s: Some(round1(self.last_seen.saturating_sub(self.since).as_secs_f32())), ..Default::default() },
            end: true,
        })
    }
}

pub struct Dwell {
    zone: Polygon,
    dwell: Duration,
    max_move: f32,
    standing: HashMap<u64, Standing>,
}

impl Dwell {
    pub fn new(config: &DwellConfig) -> Dwell {
        Dwell { zone: Polygon::new(&config.zone), dwell: Duration::from_secs_f32(config.dwell_s), max_move: config.max_move, standing: HashMap::new() }
    }

    pub fn zone(&self) -> &Polygon {
        &self.zone
    }

    pub fn reset(&mut self) {
        self.standing.clear();
    }

    pub(super) fn update(&mut self, objects: &[TrackedObject], now: Duration) -> Vec<Finding> {
        let mut findings = Vec::new();
        for obj in objects {
            let point = obj.bbox.bottom_center();
            if !self.zone.contains(point) {
                findings.extend(self.standing.remove(&obj.id).and_then(|s| s.end()));
                continue;
            }
            let standing = self.standing.entry(obj.id).or_insert_with(|| Standing::new(obj, now));
            if distance(point, standing.anchor) > self.max_move {
                findings.extend(standing.end());
                *standing = Standing::new(obj, now);
                continue;
            }
            standing.last_seen = now;
            standing.object = obj.clone();
            let dwell = now.saturating_sub(standing.since);
            if !standing.alerted && dwell >= self.dwell {
                standing.alerted = true;
                findings.push(Finding { object: obj.clone(), measured: Measured { dwell_s: Some(round1(dwell.as_secs_f32())), ..Default::default() }, end: false });
            }
        }
        let gone: Vec<u64> = self.standing.iter().filter(|(_, s)| now.saturating_sub(s.last_seen) >= GONE_AFTER).map(|(&id, _)| id).collect();
        for id in gone {
            findings.extend(self.standing.remove(&id).and_then(|s| s.end()));
        }
        findings
    }
}
