//! `red_light`: a vehicle's reference point crossing the stop line in the travel direction while
//! the signal is red, at least `grace_s` after red began. A vehicle already past the line when
//! red begins never crosses it again, so it is not a violator.

use std::time::Duration;

use serde::Deserialize;

use super::{Check, Measured, RuleFinding, RuleKindConfig, round1, rule_line};
use crate::analytics::FrameContext;
use crate::analytics::signal::{LampReader, SignalConfig, SignalState, SignalTimeline};
use crate::analytics::{Direction, LineCounter};
use crate::check::{ConfigError, check_seconds, check_segment};
use crate::render::{Shape, Tone};
use crate::types::{ClassId, Point, TrackedObject};

/// `red_light = { … }` of a rule.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedLightConfig {
    /// Stop line start, normalized `[x, y]`.
    pub p1: [f32; 2],
    /// Stop line end; the travel direction is `in` or `out` of the line from p1 to p2.
    pub p2: [f32; 2],
    /// Which crossing is the vehicle entering the junction: `in` (default) or `out`.
    #[serde(default = "default_direction")]
    pub direction: Direction,
    /// Crossings within this long after red begins are forgiven, seconds.
    #[serde(default = "default_grace_s")]
    pub grace_s: f32,
    pub signal: SignalConfig,
}

fn default_direction() -> Direction {
    Direction::In
}
fn default_grace_s() -> f32 {
    0.5
}

impl RuleKindConfig for RedLightConfig {
    fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        check_segment(self.p1, self.p2, path, errors);
        check_seconds(self.grace_s, &format!("{path}.grace_s"), errors);
        self.signal.validate(&format!("{path}.signal"), errors);
    }

    fn build(&self, id: &str, classes: &[ClassId]) -> Result<Box<dyn Check>, String> {
        Ok(Box::new(RedLight::new(id, self, classes)))
    }

    fn signal_topic(&self) -> Option<&str> {
        self.signal.topic.as_deref()
    }
}

struct RedLight {
    p1: Point,
    p2: Point,
    counter: LineCounter,
    direction: Direction,
    grace: Duration,
    lamp: Option<LampReader>,
    topic: Option<String>,
    timeline: SignalTimeline,
}

impl RedLight {
    fn new(id: &str, config: &RedLightConfig, classes: &[ClassId]) -> RedLight {
        let line = rule_line(id, config.p1, config.p2, classes);
        RedLight {
            p1: line.p1,
            p2: line.p2,
            counter: LineCounter::new(vec![line]),
            direction: config.direction,
            grace: Duration::from_secs_f32(config.grace_s),
            lamp: config.signal.region.map(|region| LampReader::new(region, &config.signal)),
            topic: config.signal.topic.clone(),
            timeline: SignalTimeline::default(),
        }
    }

    fn signal_state(&self) -> SignalState {
        self.timeline.current().0
    }
}

impl Check for RedLight {
    fn observe(&mut self, frame: &FrameContext) -> Result<(), String> {
        let Some(lamp) = &mut self.lamp else { return Ok(()) };
        let image = frame.image()?;
        lamp.observe(image, frame.now, &mut self.timeline).map_err(|e| e.to_string())
    }

    fn signal(&mut self, topic: &str, payload: &[u8], at: std::time::Duration) -> Option<Result<(), String>> {
        if self.topic.as_deref() != Some(topic) {
            return None;
        }
        Some(SignalState::from_feed(payload).map(|state| self.timeline.set(state, at)))
    }

    fn overlay(&self) -> (Shape, Tone) {
        let tone = match self.signal_state() {
            SignalState::Red => Tone::Red,
            SignalState::Amber => Tone::Amber,
            SignalState::Green => Tone::Green,
            SignalState::Unknown => Tone::Unknown,
        };
        (Shape::Segment(self.p1, self.p2), tone)
    }

    /// Stream times start again. A lamp read from the image is read afresh; a controller's
    /// phase goes on, dated from the new start.
    fn reset(&mut self) {
        self.counter.reset();
        let (state, _) = self.timeline.current();
        self.timeline.reset();
        if self.lamp.is_none() {
            self.timeline.set(state, Duration::ZERO);
        }
    }

    fn update(&mut self, objects: &[TrackedObject], frame: &FrameContext) -> Vec<RuleFinding> {
        self.counter
            .update(objects, frame.now)
            .into_iter()
            .filter(|c| c.direction == self.direction)
            .filter_map(|crossing| {
                let (state, since) = self.timeline.at(crossing.at);
                let red_for = crossing.at.saturating_sub(since);
                let object = objects.iter().find(|o| o.id == crossing.track_id)?;
                (state == SignalState::Red && red_for >= self.grace).then(|| {
                    RuleFinding::alert(
                        object,
                        Measured { signal: Some(state), red_for_s: Some(round1(red_for.as_secs_f32())), direction: Some(crossing.direction), ..Default::default() },
                    )
                })
            })
            .collect()
    }
}
