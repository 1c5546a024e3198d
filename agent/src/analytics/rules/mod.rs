//! Traffic rules: what makes a tracked vehicle a violator. Each rule of a camera
//! (`[[cameras.rules]]`) has an id, the classes it applies to, and exactly one kind:
//!
//! - [`red_light`]: crossing a stop line in the travel direction while the signal is red;
//! - [`wrong_way`]: moving against a zone's allowed heading;
//! - [`dwell`]: stopping (`no_stopping`) or parking (`no_parking`) in a zone for too long;
//! - [`solid_line`]: crossing a line that may not be crossed;
//! - [`speeding`]: faster than a limit, measured on a calibrated ground plane.
//!
//! [`Rules`] runs a camera's rules on each frame's tracks and yields [`Violation`]s: at most one
//! alert per track per rule (again after `cooldown_s`, when set), plus an `end` for dwell alerts.

mod dwell;
mod red_light;
mod solid_line;
mod speeding;
mod wrong_way;

#[cfg(test)]
mod tests;

pub use dwell::DwellConfig;
pub use red_light::RedLightConfig;
pub use solid_line::SolidLineConfig;
pub use speeding::{Calibration, SpeedingConfig};
pub use wrong_way::WrongWayConfig;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use opencv::core::Mat;
use serde::{Deserialize, Serialize};

use super::history::TrackHistory;
use super::signal::SignalState;
use super::{Direction, Line};
use crate::config::{ConfigError, check_classes, check_id};
use crate::types::{ClassId, Point, TrackedObject};

/// `[[cameras.rules]]` in the site config: common keys plus one table naming the kind.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Rule id, unique per camera; it is in every violation the rule raises.
    pub id: String,
    /// Classes the rule applies to (model label names). Default: the model's vehicle classes.
    pub classes: Option<Vec<String>>,
    /// 0 (default): one alert per track for this rule, ever. Above 0: the same track may raise
    /// the rule again this many seconds after its last alert.
    #[serde(default)]
    pub cooldown_s: f32,
    pub red_light: Option<RedLightConfig>,
    pub wrong_way: Option<WrongWayConfig>,
    pub no_stopping: Option<DwellConfig>,
    pub no_parking: Option<DwellConfig>,
    pub solid_line: Option<SolidLineConfig>,
    pub speeding: Option<SpeedingConfig>,
}

/// What a rule checks; the `kind` of its violations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    RedLight,
    WrongWay,
    NoStopping,
    NoParking,
    SolidLine,
    Speeding,
}

impl RuleKind {
    pub fn name(self) -> &'static str {
        match self {
            RuleKind::RedLight => "red_light",
            RuleKind::WrongWay => "wrong_way",
            RuleKind::NoStopping => "no_stopping",
            RuleKind::NoParking => "no_parking",
            RuleKind::SolidLine => "solid_line",
            RuleKind::Speeding => "speeding",
        }
    }
}

impl RuleConfig {
    fn kinds(&self) -> Vec<RuleKind> {
        [
            (self.red_light.is_some(), RuleKind::RedLight),
            (self.wrong_way.is_some(), RuleKind::WrongWay),
            (self.no_stopping.is_some(), RuleKind::NoStopping),
            (self.no_parking.is_some(), RuleKind::NoParking),
            (self.solid_line.is_some(), RuleKind::SolidLine),
            (self.speeding.is_some(), RuleKind::Speeding),
        ]
        .into_iter()
        .filter_map(|(set, kind)| set.then_some(kind))
        .collect()
    }

    /// The MQTT topic this rule needs to hear (a red light fed by the signal controller).
    pub fn signal_topic(&self) -> Option<&str> {
        self.red_light.as_ref().and_then(|r| r.signal.topic.as_deref())
    }

    pub fn validate(&self, path: &str, labels: Option<&[String]>, errors: &mut Vec<ConfigError>) {
        check_id(&self.id, &format!("{path}.id"), errors);
        check_classes(self.classes.as_deref(), labels, path, errors);
        if !(self.cooldown_s >= 0.0 && self.cooldown_s.is_finite()) {
            errors.push(ConfigError::new(format!("{path}.cooldown_s"), "must be 0 or more seconds"));
        }
        let kinds = self.kinds();
        if kinds.len() != 1 {
            let found = if kinds.is_empty() { "none".to_string() } else { kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ") };
            errors.push(ConfigError::new(
                path,
                format!("needs exactly one of red_light, wrong_way, no_stopping, no_parking, solid_line, speeding (found {found})"),
            ));
        }
        let at = |kind: &str| format!("{path}.{kind}");
        if let Some(r) = &self.red_light {
            r.validate(&at("red_light"), errors);
        }
        if let Some(r) = &self.wrong_way {
            r.validate(&at("wrong_way"), errors);
        }
        if let Some(r) = &self.no_stopping {
            r.validate(&at("no_stopping"), errors);
        }
        if let Some(r) = &self.no_parking {
            r.validate(&at("no_parking"), errors);
        }
        if let Some(r) = &self.solid_line {
            r.validate(&at("solid_line"), errors);
        }
        if let Some(r) = &self.speeding {
            r.validate(&at("speeding"), errors);
        }
    }
}

fn check_positive(value: f32, path: &str, what: &str, errors: &mut Vec<ConfigError>) {
    if !(value > 0.0 && value.is_finite()) {
        errors.push(ConfigError::new(path, format!("must be a positive {what}, got {value}")));
    }
}

/// A single-line counter for line-based rules, classes already filtered by [`Rules`].
fn rule_line(id: &str, p1: [f32; 2], p2: [f32; 2], classes: &[ClassId]) -> Line {
    Line::new(id, p1, p2, classes.to_vec(), 2)
}

/// What a rule measured when it fired; only the fields of its kind are set.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Measured {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<SignalState>,
    /// Time from the start of red to the crossing, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub red_for_s: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// Observed heading on screen, degrees (0 right, 90 down).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heading_deg: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_heading_deg: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dwell_s: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed_kmh: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_kmh: Option<f32>,
}

impl Measured {
    /// A short line for captions and logs, e.g. `red for 1.4 s` or `62.3 km/h (limit 50)`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(red_for) = self.red_for_s {
            parts.push(format!("red for {red_for} s"));
        }
        if let Some(direction) = self.direction {
            parts.push(format!("crossed {}", if direction == Direction::In { "in" } else { "out" }));
        }
        if let (Some(heading), Some(allowed)) = (self.heading_deg, self.allowed_heading_deg) {
            parts.push(format!("heading {heading} deg (allowed {allowed})"));
        }
        if let Some(dwell) = self.dwell_s {
            parts.push(format!("stood {dwell} s"));
        }
        if let (Some(speed), Some(limit)) = (self.speed_kmh, self.limit_kmh) {
            parts.push(format!("{speed} km/h (limit {limit})"));
        }
        parts.join(", ")
    }
}

/// One decimal is what an operator reads; more would be false precision.
fn round1(x: f32) -> f32 {
    (x * 10.0).round() / 10.0
}

/// A rule's verdict on one track in one frame.
#[derive(Debug, Clone)]
struct Finding {
    /// The track the once-per-track limit and open alerts are kept for.
    track: u64,
    object: TrackedObject,
    measured: Measured,
    /// The end of a condition raised earlier (dwell), rather than a new one.
    end: bool,
}

impl Finding {
    fn alert(object: &TrackedObject, measured: Measured) -> Finding {
        Finding { track: object.id, object: object.clone(), measured, end: false }
    }
}

/// A violation, ready for the events stage.
#[derive(Debug, Clone)]
pub struct Violation {
    /// Event id (UUID v7).
    pub id: String,
    pub rule: String,
    pub kind: RuleKind,
    pub object: TrackedObject,
    pub measured: Measured,
    /// For an `end`: the id of the alert it closes.
    pub ends: Option<String>,
}

/// Geometry to draw for engineers and on evidence images.
#[derive(Debug, Clone)]
pub enum Shape {
    Segment(Point, Point),
    Zone(Vec<Point>),
}

/// How a shape is drawn: neutral rule geometry, or a signal's current colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Rule,
    Signal(SignalState),
}

#[derive(Debug, Clone)]
pub struct Overlay {
    pub rule: String,
    pub shape: Shape,
    pub label: String,
    pub tone: Tone,
}

enum Check {
    RedLight(red_light::RedLight),
    WrongWay(wrong_way::WrongWay),
    Dwell(dwell::Dwell),
    SolidLine(solid_line::SolidLine),
    Speeding(speeding::Speeding),
}

/// What each check sees of the frame besides the tracks.
struct Context<'a> {
    now: Duration,
    /// Frame width / height, to measure headings as seen on screen.
    aspect: f32,
    history: &'a TrackHistory,
}

struct Rule {
    id: String,
    kind: RuleKind,
    classes: Vec<ClassId>,
    cooldown: Option<Duration>,
    check: Check,
    /// Last alert per track.
    alerted: HashMap<u64, Duration>,
}

/// The rules of one camera, with the track history they share.
pub struct Rules {
    rules: Vec<Rule>,
    history: TrackHistory,
    /// Open dwell alerts: (rule index, track) → alert id, closed by the rule's `end`.
    open: HashMap<(usize, u64), String>,
    /// Tracks that raised any alert, for drawing.
    violators: HashSet<u64>,
}

impl Rules {
    /// `classes` resolves a rule's `classes` to model class ids. The configs must have passed
    /// validation.
    pub fn new(configs: &[RuleConfig], classes: impl Fn(Option<&[String]>) -> Vec<ClassId>) -> Rules {
        let mut keep = Duration::from_secs(2);
        let rules = configs
            .iter()
            .map(|c| {
                let classes = classes(c.classes.as_deref());
                let (kind, check) = if let Some(r) = &c.red_light {
                    (RuleKind::RedLight, Check::RedLight(red_light::RedLight::new(&c.id, r, &classes)))
                } else if let Some(r) = &c.wrong_way {
                    keep = keep.max(Duration::from_secs_f32(r.min_duration_s));
                    (RuleKind::WrongWay, Check::WrongWay(wrong_way::WrongWay::new(r)))
                } else if let Some(r) = &c.no_stopping {
                    (RuleKind::NoStopping, Check::Dwell(dwell::Dwell::new(r)))
                } else if let Some(r) = &c.no_parking {
                    (RuleKind::NoParking, Check::Dwell(dwell::Dwell::new(r)))
                } else if let Some(r) = &c.solid_line {
                    (RuleKind::SolidLine, Check::SolidLine(solid_line::SolidLine::new(&c.id, r, &classes)))
                } else {
                    let r = c.speeding.as_ref().expect("validation leaves exactly one kind per rule");
                    keep = keep.max(Duration::from_secs_f32(r.window_s * 3.0));
                    (RuleKind::Speeding, Check::Speeding(speeding::Speeding::new(r).expect("validation computed this calibration")))
                };
                let cooldown = (c.cooldown_s > 0.0).then(|| Duration::from_secs_f32(c.cooldown_s));
                Rule { id: c.id.clone(), kind, classes, cooldown, check, alerted: HashMap::new() }
            })
            .collect();
        Rules { rules, history: TrackHistory::new(keep), open: HashMap::new(), violators: HashSet::new() }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether any rule reads a signal head from the image (and so needs the frame's pixels).
    pub fn reads_signals_from_image(&self) -> bool {
        self.rules.iter().any(|r| matches!(&r.check, Check::RedLight(c) if c.reads_image()))
    }

    /// Reads signal heads in a BGR frame at stream time `now`.
    pub fn observe_frame(&mut self, frame: &Mat, now: Duration) -> opencv::Result<()> {
        for rule in &mut self.rules {
            if let Check::RedLight(check) = &mut rule.check {
                check.observe_frame(frame, now)?;
            }
        }
        Ok(())
    }

    /// A signal controller's message on `topic`, applied at stream time `now`. Errors name the
    /// rule and what is wrong with the payload; the phase is then left as it was.
    pub fn signal_message(&mut self, topic: &str, payload: &[u8], now: Duration) -> Result<(), String> {
        let mut result = Ok(());
        for rule in &mut self.rules {
            if let Check::RedLight(check) = &mut rule.check
                && check.topic() == Some(topic)
            {
                match SignalState::from_feed(payload) {
                    Ok(state) => check.set_signal(state, now),
                    Err(e) => result = Err(format!("rule {}: signal message on {topic}: {e}", rule.id)),
                }
            }
        }
        result
    }

    /// Forgets tracks and signal phases: the stream restarted and its times start again.
    pub fn reset(&mut self) {
        self.history.reset();
        self.open.clear();
        self.violators.clear();
        for rule in &mut self.rules {
            rule.alerted.clear();
            match &mut rule.check {
                Check::RedLight(c) => c.reset(),
                Check::WrongWay(_) => {}
                Check::Dwell(c) => c.reset(),
                Check::SolidLine(c) => c.reset(),
                Check::Speeding(c) => c.reset(),
            }
        }
    }

    /// Runs every rule on one frame's tracks at stream time `now`.
    pub fn update(&mut self, objects: &[TrackedObject], now: Duration, aspect: f32) -> Vec<Violation> {
        self.history.update(objects, now);
        let ctx = Context { now, aspect, history: &self.history };
        let mut violations = Vec::new();
        for (index, rule) in self.rules.iter_mut().enumerate() {
            let mine: Vec<TrackedObject> = objects.iter().filter(|o| rule.classes.contains(&o.class)).cloned().collect();
            let findings = match &mut rule.check {
                Check::RedLight(c) => c.update(&mine, now),
                Check::WrongWay(c) => c.update(&mine, &ctx),
                Check::Dwell(c) => c.update(&mine, now),
                Check::SolidLine(c) => c.update(&mine, now),
                Check::Speeding(c) => c.update(&mine, &ctx),
            };
            for finding in findings {
                let track = finding.track;
                let ends = if finding.end {
                    match self.open.remove(&(index, track)) {
                        Some(alert) => Some(alert),
                        None => continue,
                    }
                } else {
                    let allowed = match (rule.alerted.get(&track), rule.cooldown) {
                        (None, _) => true,
                        (Some(&last), Some(cooldown)) => now.saturating_sub(last) >= cooldown,
                        (Some(_), None) => false,
                    };
                    if !allowed {
                        continue;
                    }
                    rule.alerted.insert(track, now);
                    self.violators.insert(track);
                    None
                };
                let id = uuid::Uuid::now_v7().to_string();
                if !finding.end && matches!(rule.check, Check::Dwell(_)) {
                    self.open.insert((index, track), id.clone());
                }
                violations.push(Violation { id, rule: rule.id.clone(), kind: rule.kind, object: finding.object, measured: finding.measured, ends });
            }
            // A live track keeps its record, so a long wrong-way run is one alert, not one a minute.
            let history = &self.history;
            rule.alerted.retain(|track, t| history.knows(*track) || rule.cooldown.is_some_and(|c| now.saturating_sub(*t) < c));
        }
        self.violators.retain(|track| self.history.knows(*track));
        violations
    }

    /// The rules' geometry, stop lines in their signal's colour.
    pub fn overlays(&self) -> Vec<Overlay> {
        let mut out = Vec::new();
        for rule in &self.rules {
            let (shape, tone) = match &rule.check {
                Check::RedLight(c) => (c.shape(), Tone::Signal(c.signal())),
                Check::WrongWay(c) => (Shape::Zone(c.zone().points.clone()), Tone::Rule),
                Check::Dwell(c) => (Shape::Zone(c.zone().points.clone()), Tone::Rule),
                Check::SolidLine(c) => (c.shape(), Tone::Rule),
                Check::Speeding(c) => (Shape::Zone(c.zone().points.clone()), Tone::Rule),
            };
            out.push(Overlay { rule: rule.id.clone(), shape, label: format!("{} {}", rule.kind.name(), rule.id), tone });
        }
        out
    }

    /// The latest speed estimate of a track, km/h, from the first speeding rule that has one.
    pub fn speed_kmh(&self, track: u64) -> Option<f32> {
        self.rules.iter().find_map(|r| match &r.check {
            Check::Speeding(c) => c.speed_kmh(track),
            _ => None,
        })
    }

    pub fn is_violator(&self, track: u64) -> bool {
        self.violators.contains(&track)
    }
}
