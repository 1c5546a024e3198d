//! `solid_line`: a line that given classes may not cross, in either direction or only one.

use std::time::Duration;

use serde::Deserialize;

use super::{Finding, Measured, Shape, rule_line};
use crate::analytics::{Direction, LineCounter};
use crate::config::{ConfigError, check_segment};
use crate::types::{ClassId, Point, TrackedObject};

/// Which crossings of a solid line are violations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forbidden {
    Both,
    In,
    Out,
}

/// `solid_line = { … }` of a rule.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SolidLineConfig {
    /// Line start, normalized `[x, y]`.
    pub p1: [f32; 2],
    /// Line end.
    pub p2: [f32; 2],
    /// Forbidden crossings: `both` (default), `in` or `out` (of the line from p1 to p2).
    #[serde(default = "default_forbidden")]
    pub direction: Forbidden,
}

fn default_forbidden() -> Forbidden {
    Forbidden::Both
}

impl SolidLineConfig {
    pub fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        check_segment(self.p1, self.p2, path, errors);
    }
}

pub struct SolidLine {
    p1: Point,
    p2: Point,
    counter: LineCounter,
    forbidden: Forbidden,
}

impl SolidLine {
    pub fn new(id: &str, config: &SolidLineConfig, classes: &[ClassId]) -> SolidLine {
        let line = rule_line(id, config.p1, config.p2, classes);
        SolidLine { p1: line.p1, p2: line.p2, counter: LineCounter::new(vec![line]), forbidden: config.direction }
    }

    pub fn shape(&self) -> Shape {
        Shape::Segment(self.p1, self.p2)
    }

    pub fn reset(&mut self) {
        self.counter.reset();
    }

    pub(super) fn update(&mut self, objects: &[TrackedObject], now: Duration) -> Vec<Finding> {
        self.counter
            .update(objects, now)
            .into_iter()
            .filter(|c| match self.forbidden {
                Forbidden::Both => true,
                Forbidden::In => c.direction == Direction::In,
                Forbidden::Out => c.direction == Direction::Out,
            })
            .filter_map(|c| {
                let object = objects.iter().find(|o| o.id == c.track_id)?;
                Some(Finding::alert(object, Measured { direction: Some(c.direction), ..Default::default() }))
            })
            .collect()
    }
}
