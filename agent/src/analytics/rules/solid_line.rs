//! `solid_line`: a line that given classes may not cross, in either direction or only one.

use serde::Deserialize;

use super::{Check, Measured, RuleFinding, RuleKindConfig, rule_line};
use crate::analytics::{Direction, FrameContext, LineCounter};
use crate::check::{ConfigError, check_segment};
use crate::render::{Shape, Tone};
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

impl RuleKindConfig for SolidLineConfig {
    fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        check_segment(self.p1, self.p2, path, errors);
    }

    fn build(&self, id: &str, classes: &[ClassId]) -> Result<Box<dyn Check>, String> {
        Ok(Box::new(SolidLine::new(id, self, classes)))
    }
}

struct SolidLine {
    p1: Point,
    p2: Point,
    counter: LineCounter,
    forbidden: Forbidden,
}

impl SolidLine {
    fn new(id: &str, config: &SolidLineConfig, classes: &[ClassId]) -> SolidLine {
        let line = rule_line(id, config.p1, config.p2, classes);
        SolidLine { p1: line.p1, p2: line.p2, counter: LineCounter::new(vec![line]), forbidden: config.direction }
    }

}

impl Check for SolidLine {
    fn overlay(&self) -> (Shape, Tone) {
        (Shape::Segment(self.p1, self.p2), Tone::Rule)
    }

    fn reset(&mut self) {
        self.counter.reset();
    }

    fn update(&mut self, objects: &[TrackedObject], frame: &FrameContext) -> Vec<RuleFinding> {
        self.counter
            .update(objects, frame.now)
            .into_iter()
            .filter(|c| match self.forbidden {
                Forbidden::Both => true,
                Forbidden::In => c.direction == Direction::In,
                Forbidden::Out => c.direction == Direction::Out,
            })
            .filter_map(|c| {
                let object = objects.iter().find(|o| o.id == c.track_id)?;
                Some(RuleFinding::alert(object, Measured { direction: Some(c.direction), ..Default::default() }))
            })
            .collect()
    }
}
