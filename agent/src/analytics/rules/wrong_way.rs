//! `wrong_way`: a track inside a zone moving against the zone's allowed heading, by at least
//! `min_displacement` over at least `min_duration_s`, so jitter and a car backing into a space
//! for a moment do not count.

use std::time::Duration;

use serde::Deserialize;

use super::{Check, Measured, RuleFinding, RuleKindConfig, round1};
use crate::analytics::FrameContext;
use crate::analytics::history::Motion;
use crate::analytics::geometry::{Polygon, angle_between_deg, check_zone, distance, heading_deg};
use crate::check::{ConfigError, check_positive, check_positive_seconds};
use crate::render::{Shape, Tone};
use crate::types::{ClassId, TrackedObject};

/// `wrong_way = { … }` of a rule.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrongWayConfig {
    /// Polygon of normalized `[x, y]` points covering the lanes the heading applies to.
    pub zone: Vec<[f32; 2]>,
    /// Allowed direction of travel on screen, degrees: 0 towards the right edge, 90 down,
    /// 180 left, 270 up.
    pub heading_deg: f32,
    /// Motion within this many degrees of the exact opposite of `heading_deg` is wrong-way.
    #[serde(default = "default_against_within_deg")]
    pub against_within_deg: f32,
    /// Time the motion is measured over, seconds.
    #[serde(default = "default_min_duration_s")]
    pub min_duration_s: f32,
    /// Distance the reference point must move over that time (normalized image units).
    #[serde(default = "default_min_displacement")]
    pub min_displacement: f32,
}

fn default_against_within_deg() -> f32 {
    60.0
}
fn default_min_duration_s() -> f32 {
    1.0
}
fn default_min_displacement() -> f32 {
    0.05
}

impl RuleKindConfig for WrongWayConfig {
    fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        check_zone(&self.zone, &format!("{path}.zone"), errors);
        if !self.heading_deg.is_finite() {
            errors.push(ConfigError::new(format!("{path}.heading_deg"), "must be a number of degrees"));
        }
        if !(self.against_within_deg > 0.0 && self.against_within_deg < 90.0) {
            errors.push(ConfigError::new(format!("{path}.against_within_deg"), format!("must be within (0, 90) degrees, got {}", self.against_within_deg)));
        }
        check_positive_seconds(self.min_duration_s, &format!("{path}.min_duration_s"), errors);
        check_positive(self.min_displacement, &format!("{path}.min_displacement"), "distance", errors);
    }

    fn build(&self, _id: &str, _classes: &[ClassId]) -> Result<Box<dyn Check>, String> {
        Ok(Box::new(WrongWay::new(self)))
    }
}

struct WrongWay {
    zone: Polygon,
    against_deg: f32,
    allowed_deg: f32,
    against_within_deg: f32,
    window: Duration,
    min_displacement: f32,
}

impl WrongWay {
    fn new(config: &WrongWayConfig) -> WrongWay {
        WrongWay {
            zone: Polygon::new(&config.zone),
            allowed_deg: config.heading_deg.rem_euclid(360.0),
            against_deg: (config.heading_deg + 180.0).rem_euclid(360.0),
            against_within_deg: config.against_within_deg,
            window: Duration::from_secs_f32(config.min_duration_s),
            min_displacement: config.min_displacement,
        }
    }

}

impl Check for WrongWay {
    fn overlay(&self) -> (Shape, Tone) {
        (Shape::Zone(self.zone.points.clone()), Tone::Rule)
    }

    fn history(&self) -> Duration {
        self.window
    }

    fn update(&mut self, objects: &[TrackedObject], ctx: &FrameContext) -> Vec<RuleFinding> {
        objects
            .iter()
            .filter_map(|obj| {
                let Motion { from, to, steady } = ctx.history.motion(obj.id, self.window)?;
                // An unsteady track may have swapped identity with a neighbour in dense traffic:
                // its heading is not one vehicle's.
                if !(steady && self.zone.contains(from) && self.zone.contains(to)) || distance(from, to) < self.min_displacement {
                    return None;
                }
                let heading = heading_deg(from, to, ctx.aspect());
                (angle_between_deg(heading, self.against_deg) <= self.against_within_deg).then(|| {
                    RuleFinding::alert(obj, Measured { heading_deg: Some(round1(heading)), allowed_heading_deg: Some(self.allowed_deg), ..Default::default() })
                })
            })
            .collect()
    }
}
