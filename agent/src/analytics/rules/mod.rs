//! Traffic rules: what makes a tracked vehicle a violator. Each rule of a camera
//! (`[[cameras.rules]]`) has an id, the classes it applies to, and exactly one kind, each kind one
//! file with its keys and its check:
//!
//! - [`red_light`]: crossing a stop line in the travel direction while the signal is red;
//! - [`wrong_way`]: moving against a zone's allowed heading;
//! - [`dwell`]: stopping (`no_stopping`) or parking (`no_parking`) in a zone for too long;
//! - [`solid_line`]: crossing a line that may not be crossed;
//! - [`speeding`]: faster than a limit, measured on a calibrated ground plane;
//! - [`congestion`]: too many vehicles standing or crawling in a zone for too long.
//!
//! A kind is registered with one line in [`rule_kinds!`]'s list below. Each rule is an analyzer
//! ([`Rule`]) that runs its kind's [`Check`] on the tracks of its classes and yields
//! [`Violation`]s: at most one alert per track per rule (again after `cooldown_s`, when set), plus
//! an `end` for kinds whose alerts last (dwell, congestion).


#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::line::CONFIRM_FRAMES;
use super::{Direction, Line};
use super::analyzer::{Analyzer, AnalyzerConfig, BuildContext, CheckContext, Finding, FrameContext};
use super::signal::SignalState;
use crate::check::{ConfigError, check_classes, check_id, check_seconds};
use crate::health::repeated::Repeated;
use crate::render::{Overlay, Shape, Tone};
use crate::types::{ClassId, TrackedObject};

fn read_plates() -> bool {
    true
}

/// Declares the rule kinds: `key: Config => Kind`, where `key` is the kind's table in a rule,
/// `Config` its keys (a [`RuleKindConfig`]) and `Kind` its [`RuleKind`] variant.
macro_rules! rule_kinds {
    ($($key:ident: $config:ty => $kind:ident,)+) => {
        /// `[[cameras.rules]]` in the site config: common keys plus one table naming the kind.
        #[derive(Debug, Clone, PartialEq, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct RuleConfig {
            /// Rule id, unique per camera; it is in every violation the rule raises.
            pub id: String,
            /// Classes the rule applies to (model label names). Default: the model's vehicle classes.
            pub classes: Option<Vec<String>>,
            /// 0 (default): one alert per track for this rule, ever. Above 0: the same track may
            /// raise the rule again this many seconds after its last alert.
            #[serde(default)]
            pub cooldown_s: f32,
            /// Read the licence plate of each vehicle the rule alerts on (default true); a
            /// zone's alert (congestion) has no vehicle to read.
            #[serde(default = "read_plates")]
            pub plates: bool,
            $(pub $key: Option<$config>,)+
        }

        /// What a rule checks; the `kind` of its violations.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum RuleKind {
            $($kind,)+
        }

        impl RuleKind {
            /// Every kind, in the order of the list.
            pub const ALL: &[RuleKind] = &[$(RuleKind::$kind),+];

            pub fn name(self) -> &'static str {
                match self {
                    $(RuleKind::$kind => stringify!($key),)+
                }
            }
        }

        impl RuleConfig {
            /// The kinds this rule sets (exactly one when it is valid), with their keys.
            fn kinds(&self) -> Vec<(RuleKind, &dyn RuleKindConfig)> {
                let mut kinds: Vec<(RuleKind, &dyn RuleKindConfig)> = Vec::new();
                $(if let Some(config) = &self.$key {
                    kinds.push((RuleKind::$kind, config));
                })+
                kinds
            }
        }
    };
}

mod congestion;
mod dwell;
mod red_light;
mod solid_line;
mod speeding;
mod wrong_way;

pub use congestion::CongestionConfig;
pub use dwell::DwellConfig;
pub use red_light::RedLightConfig;
pub use solid_line::SolidLineConfig;
pub use speeding::{Calibration, SpeedingConfig};
pub use wrong_way::WrongWayConfig;

rule_kinds! {
    red_light: RedLightConfig => RedLight,
    wrong_way: WrongWayConfig => WrongWay,
    no_stopping: DwellConfig => NoStopping,
    no_parking: DwellConfig => NoParking,
    solid_line: SolidLineConfig => SolidLine,
    speeding: SpeedingConfig => Speeding,
    congestion: CongestionConfig => Congestion,
}

/// The keys of one rule kind: it checks them and builds the kind's [`Check`].
pub trait RuleKindConfig {
    /// Every problem with the kind's keys, below `path` (the kind's table).
    fn validate(&self, path: &str, errors: &mut Vec<ConfigError>);

    /// The check, for rule `id` on `classes`; the keys must have passed validation.
    fn build(&self, id: &str, classes: &[ClassId]) -> Result<Box<dyn Check>, String>;

    /// The signal controller's topic the kind reads (a red light fed over MQTT).
    fn signal_topic(&self) -> Option<&str> {
        None
    }
}

/// What a rule kind checks on each frame, given the tracks of its classes.
pub trait Check: Send {
    fn update(&mut self, objects: &[TrackedObject], frame: &FrameContext) -> Vec<RuleFinding>;

    /// Geometry to draw, and in which tone.
    fn overlay(&self) -> (Shape, Tone);

    /// Forgets tracks and times: the stream restarted.
    fn reset(&mut self) {}

    /// Reads what the kind needs from the frame's pixels (a signal head), before `update`.
    fn observe(&mut self, _frame: &FrameContext) -> Result<(), String> {
        Ok(())
    }

    /// A signal controller's message on `topic`: `None` when the kind does not read that topic.
    fn signal(&mut self, _topic: &str, _payload: &[u8], _at: Duration) -> Option<Result<(), String>> {
        None
    }

    /// The latest speed estimate of a track, km/h.
    fn speed_kmh(&self, _track: u64) -> Option<f32> {
        None
    }

    /// How much track history the kind measures over.
    fn history(&self) -> Duration {
        Duration::ZERO
    }

    /// Whether an alert lasts until the kind raises its `end` (a vehicle standing, a queue).
    fn alerts_last(&self) -> bool {
        false
    }

    /// The stream ended, or is about to restart (its tracks and times start again): the `end` of
    /// every alert still open, as of the last frame, since nothing can close it afterwards.
    fn end(&mut self) -> Vec<RuleFinding> {
        Vec::new()
    }
}

impl AnalyzerConfig for RuleConfig {
    fn validate(&self, path: &str, ctx: &CheckContext, errors: &mut Vec<ConfigError>) {
        check_id(&self.id, &format!("{path}.id"), errors);
        check_classes(self.classes.as_deref(), ctx.labels, path, errors);
        check_seconds(self.cooldown_s, &format!("{path}.cooldown_s"), errors);
        let kinds = self.kinds();
        if kinds.len() != 1 {
            let found = if kinds.is_empty() { "none".to_string() } else { kinds.iter().map(|(k, _)| k.name()).collect::<Vec<_>>().join(", ") };
            let all = RuleKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ");
            errors.push(ConfigError::new(path, format!("needs exactly one of {all} (found {found})")));
        }
        for (kind, config) in &kinds {
            config.validate(&format!("{path}.{}", kind.name()), errors);
            if config.signal_topic().is_some() && !ctx.broker {
                errors.push(ConfigError::new(format!("{path}.{}.signal.topic", kind.name()), "the signal controller's feed is read over MQTT: configure [mqtt]"));
            }
        }
    }

    fn build(&self, ctx: &mut BuildContext) -> Result<Box<dyn Analyzer>, String> {
        Ok(Box::new(self.rule(ctx.camera, ctx.classes(self.classes.as_deref()))?))
    }
}

impl RuleConfig {
    /// The MQTT topic this rule needs to hear (a red light fed by the signal controller).
    pub fn signal_topic(&self) -> Option<&str> {
        self.kinds().first().and_then(|(_, config)| config.signal_topic())
    }

    /// The rule on camera `camera` for the model classes `classes`.
    pub fn rule(&self, camera: &str, classes: Vec<ClassId>) -> Result<Rule, String> {
        let (kind, config) = *self.kinds().first().ok_or_else(|| format!("rule {}: no kind", self.id))?;
        let check = config.build(&self.id, &classes).map_err(|e| format!("camera {camera}: rule {}: {e}", self.id))?;
        let cooldown = (self.cooldown_s > 0.0).then(|| Duration::from_secs_f32(self.cooldown_s));
        Ok(Rule { id: self.id.clone(), kind, classes, cooldown, check, alerted: HashMap::new(), open: HashMap::new(), unread_heads: Repeated::default() })
    }
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
    /// Slow vehicles in a congested zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vehicles: Option<u32>,
    /// The queue's extent, normalized `[x1, y1, x2, y2]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extent: Option<[f32; 4]>,
    /// How long the zone has been (or was) congested, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub congested_s: Option<f32>,
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
        if let (Some(vehicles), Some(congested)) = (self.vehicles, self.congested_s) {
            parts.push(format!("{vehicles} vehicles queued for {congested} s"));
        }
        parts.join(", ")
    }
}

/// A single-line counter for line-based rules, classes already filtered by [`Rule`].
fn rule_line(id: &str, p1: [f32; 2], p2: [f32; 2], classes: &[ClassId]) -> Line {
    Line::new(id, p1, p2, classes.to_vec(), CONFIRM_FRAMES)
}

/// One decimal is what an operator reads; more would be false precision.
fn round1(x: f32) -> f32 {
    (x * 10.0).round() / 10.0
}

/// The track id of violations that a zone raises rather than a vehicle (a queue): the tracker
/// never gives out 0.
pub const ZONE_TRACK: u64 = 0;

/// A check's verdict on one track (or, for a zone-wide kind, one condition) in one frame.
#[derive(Debug, Clone)]
pub struct RuleFinding {
    /// What the once-per-track limit and open alerts are kept for: the track, or a kind's own key.
    track: u64,
    object: TrackedObject,
    measured: Measured,
    /// The end of a condition raised earlier (dwell, congestion), rather than a new one.
    end: bool,
}

impl RuleFinding {
    fn alert(object: &TrackedObject, measured: Measured) -> RuleFinding {
        RuleFinding { track: object.id, object: object.clone(), measured, end: false }
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

/// One rule of a camera: its kind's check, run on the tracks of its classes, and the alerts it
/// raised.
pub struct Rule {
    id: String,
    kind: RuleKind,
    classes: Vec<ClassId>,
    cooldown: Option<Duration>,
    check: Box<dyn Check>,
    /// Last alert per track.
    alerted: HashMap<u64, Duration>,
    /// Open alerts per track, closed by the check's `end`.
    open: HashMap<u64, String>,
    /// Frames whose signal heads could not be read.
    unread_heads: Repeated,
}

impl Rule {
    /// Whether the once-per-track limit (or the cooldown) lets `track` raise the rule at `now`.
    fn may_alert(&self, track: u64, now: Duration) -> bool {
        match (self.alerted.get(&track), self.cooldown) {
            (None, _) => true,
            (Some(&last), Some(cooldown)) => now.saturating_sub(last) >= cooldown,
            (Some(_), None) => false,
        }
    }

    /// The violation a finding makes, or `None` when the limits hold it back.
    fn violation(&mut self, finding: RuleFinding, now: Duration) -> Option<Violation> {
        let track = finding.track;
        let ends = if finding.end {
            Some(self.open.remove(&track)?)
        } else {
            if !self.may_alert(track, now) {
                return None;
            }
            self.alerted.insert(track, now);
            None
        };
        let id = uuid::Uuid::now_v7().to_string();
        if !finding.end && self.check.alerts_last() {
            self.open.insert(track, id.clone());
        }
        Some(Violation { id, rule: self.id.clone(), kind: self.kind, object: finding.object, measured: finding.measured, ends })
    }

    /// The rule's violations on one frame.
    pub fn update(&mut self, frame: &FrameContext) -> Vec<Violation> {
        match self.check.observe(frame) {
            Err(e) => {
                if let Some(repeated) = self.unread_heads.due() {
                    tracing::warn!(rule = %self.id, seq = frame.frame.seq, repeated, "cannot read the signal heads: {e}");
                }
            }
            Ok(()) => {
                if let Some(repeated) = self.unread_heads.quiet() {
                    tracing::warn!(rule = %self.id, seq = frame.frame.seq, repeated, "the signal heads were unreadable {repeated} times more since it was logged; they were read on this frame");
                }
            }
        }
        // A vehicle hidden in its neighbour's box is where the tracker guesses it: no violation rests
        // on a guess.
        let mine: Vec<TrackedObject> = frame.tracks.iter().filter(|o| self.classes.contains(&o.class) && !o.hidden).cloned().collect();
        let findings = self.check.update(&mine, frame);
        let violations = findings.into_iter().filter_map(|f| self.violation(f, frame.now)).collect();
        // A live track keeps its record, so a long wrong-way run is one alert, not one a minute.
        let (now, cooldown, history) = (frame.now, self.cooldown, frame.history);
        self.alerted.retain(|track, t| history.knows(*track) || cooldown.is_some_and(|c| now.saturating_sub(*t) < c));
        violations
    }

    /// The latest speed estimate of a track, km/h, when the rule measures speed.
    pub fn speed_kmh(&self, track: u64) -> Option<f32> {
        self.check.speed_kmh(track)
    }
}

impl Analyzer for Rule {
    fn analyse(&mut self, frame: &FrameContext) -> Result<Vec<Finding>, String> {
        Ok(self.update(frame).into_iter().map(Finding::Violation).collect())
    }

    fn end(&mut self) -> Result<Vec<Finding>, String> {
        // An end is never held back by the limits, so the time is not needed.
        let ends = self.check.end().into_iter().filter_map(|f| self.violation(f, Duration::ZERO));
        Ok(ends.map(Finding::Violation).collect())
    }

    fn reset(&mut self) -> Result<(), String> {
        self.alerted.clear();
        self.open.clear();
        self.check.reset();
        Ok(())
    }

    fn overlays(&self) -> Vec<Overlay> {
        let (shape, tone) = self.check.overlay();
        vec![Overlay { rule: self.id.clone(), shape, label: format!("{} {}", self.kind.name(), self.id), tone }]
    }

    fn signal(&mut self, topic: &str, payload: &[u8], at: Duration) -> Result<(), String> {
        match self.check.signal(topic, payload, at) {
            Some(Err(e)) => Err(format!("rule {}: signal message on {topic}: {e}", self.id)),
            _ => Ok(()),
        }
    }

    fn note(&self, track: u64) -> Option<String> {
        self.check.speed_kmh(track).map(|kmh| format!("{kmh:.0} km/h"))
    }

    fn history(&self) -> Duration {
        self.check.history()
    }
}
