//! Traffic-signal state for red-light rules, from one of two sources:
//! - the image: the lit lamp of a signal head inside a region, classified by colour and debounced
//!   over a few frames, so a flicker or a passing red tail light does not flip the phase;
//! - an external feed: the signal controller's phase, as MQTT messages on a topic.
//!
//! Either way the result is a [`SignalTimeline`]: the phase and when it began, in stream time.

use opencv::core::{self, Mat, Rect, Scalar};
use opencv::prelude::*;
use serde::{Deserialize, Serialize};

use crate::check::{ConfigError, check_point};
use std::time::Duration;

/// `signal = { … }` of a red-light rule: exactly one of `topic` or `region`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalConfig {
    /// MQTT topic (full, not below the site prefix) on which the signal controller publishes the
    /// phase: `{"state": "red"}` or the bare word (`red`, `amber`/`yellow`, `green`, `off`).
    pub topic: Option<String>,
    /// Box `[x1, y1, x2, y2]` (normalized) around the signal head facing the camera.
    pub region: Option<[f32; 4]>,
    /// Analysed frames a new colour must be seen in a row before the phase changes (region only).
    #[serde(default = "default_debounce_frames")]
    pub debounce_frames: u32,
    /// Share of the region's pixels that must be lit in one colour for it to count (0..1).
    #[serde(default = "default_min_lit_fraction")]
    pub min_lit_fraction: f32,
}

fn default_debounce_frames() -> u32 {
    3
}
fn default_min_lit_fraction() -> f32 {
    0.02
}

impl SignalConfig {
    pub fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        match (&self.topic, &self.region) {
            (Some(_), Some(_)) | (None, None) => {
                errors.push(ConfigError::new(path, "give exactly one of topic (external feed) or region (signal head in the image)"));
            }
            (Some(topic), None) => {
                if topic.is_empty() || topic.contains(['+', '#']) {
                    errors.push(ConfigError::new(format!("{path}.topic"), format!("'{topic}' must be a plain topic (no wildcards)")));
                }
            }
            (None, Some([x1, y1, x2, y2])) => {
                check_point([*x1, *y1], &format!("{path}.region"), errors);
                check_point([*x2, *y2], &format!("{path}.region"), errors);
                if x2 <= x1 || y2 <= y1 {
                    errors.push(ConfigError::new(format!("{path}.region"), "must be [x1, y1, x2, y2] with x2 > x1 and y2 > y1"));
                }
            }
        }
        if self.debounce_frames == 0 {
            errors.push(ConfigError::new(format!("{path}.debounce_frames"), "must be at least 1"));
        }
        if !(self.min_lit_fraction > 0.0 && self.min_lit_fraction <= 1.0) {
            errors.push(ConfigError::new(format!("{path}.min_lit_fraction"), "must be within (0, 1]"));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignalState {
    Red,
    Amber,
    Green,
    /// Dark, unreadable, or no message yet: never a violation.
    Unknown,
}

impl SignalState {
    /// A controller message: `{"state": "red"}` or the bare word, case-insensitive.
    pub fn from_feed(payload: &[u8]) -> Result<SignalState, String> {
        let text = std::str::from_utf8(payload).map_err(|_| "the payload is not UTF-8 text".to_string())?.trim();
        let word = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(map)) => match map.get("state") {
                Some(serde_json::Value::String(s)) => s.clone(),
                _ => return Err("a JSON payload needs a string field \"state\"".into()),
            },
            Ok(serde_json::Value::String(s)) => s,
            _ => text.to_string(),
        };
        match word.to_ascii_lowercase().as_str() {
            "red" => Ok(SignalState::Red),
            "amber" | "yellow" => Ok(SignalState::Amber),
            "green" => Ok(SignalState::Green),
            "off" | "unknown" | "flashing" => Ok(SignalState::Unknown),
            other => Err(format!("unknown signal state '{other}' (expected red, amber, yellow, green or off)")),
        }
    }
}

/// One recorded controller message, for replaying a clip with the phases it was filmed under:
/// a JSON line `{"t_s": 12.5, "topic": "junction/4/phase", "state": "red"}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalLogEntry {
    /// Stream time of the message, seconds from the start of the clip.
    pub t_s: f64,
    pub topic: String,
    pub state: String,
}

impl SignalLogEntry {
    pub fn at(&self) -> Duration {
        Duration::from_secs_f64(self.t_s.max(0.0))
    }

    /// Reads a log file: one entry per line, blank lines skipped, sorted by time. Errors name the
    /// line and what is wrong with it.
    pub fn read_log(path: &std::path::Path) -> Result<Vec<SignalLogEntry>, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let entry: SignalLogEntry = serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
            if !(0.0..=f64::from(crate::check::MAX_SECONDS)).contains(&entry.t_s) {
                return Err(format!("{}:{}: t_s must be 0 to {} seconds (a week)", path.display(), i + 1, crate::check::MAX_SECONDS));
            }
            SignalState::from_feed(entry.state.as_bytes()).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
            entries.push(entry);
        }
        entries.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
        Ok(entries)
    }
}

/// Phase changes over the last minutes of stream time.
#[derive(Debug)]
pub struct SignalTimeline {
    /// (start, state), oldest first; the last entry is the current phase.
    phases: Vec<(Duration, SignalState)>,
}

/// Phases older than this are dropped: no crossing is judged that late.
const TIMELINE_KEEP: Duration = Duration::from_secs(600);

impl Default for SignalTimeline {
    fn default() -> Self {
        SignalTimeline { phases: vec![(Duration::ZERO, SignalState::Unknown)] }
    }
}

impl SignalTimeline {
    /// Records the phase seen at `at`; a repeat of the current phase changes nothing.
    pub fn set(&mut self, state: SignalState, at: Duration) {
        if self.current().0 != state {
            self.phases.push((at, state));
            let cut = at.saturating_sub(TIMELINE_KEEP);
            let old = self.phases.iter().take_while(|(t, _)| *t < cut).count();
            self.phases.drain(..old.min(self.phases.len() - 1));
        }
    }

    /// The current phase and when it began.
    pub fn current(&self) -> (SignalState, Duration) {
        let &(since, state) = self.phases.last().expect("the timeline always has a phase");
        (state, since)
    }

    /// The phase at `t` and when it began.
    pub fn at(&self, t: Duration) -> (SignalState, Duration) {
        match self.phases.iter().rev().find(|(since, _)| *since <= t) {
            Some(&(since, state)) => (state, since),
            None => (SignalState::Unknown, Duration::ZERO),
        }
    }

    /// Forgets everything (the stream restarted, so stream times start again).
    pub fn reset(&mut self) {
        *self = SignalTimeline::default();
    }
}

/// Reads a signal head from the image: which lamp is lit, held until another is seen
/// `debounce_frames` times in a row.
#[derive(Debug)]
pub struct LampReader {
    region: [f32; 4],
    min_lit_fraction: f32,
    debounce_frames: u32,
    candidate: Option<(SignalState, u32, Duration)>,
}

impl LampReader {
    pub fn new(region: [f32; 4], config: &SignalConfig) -> LampReader {
        LampReader { region, min_lit_fraction: config.min_lit_fraction, debounce_frames: config.debounce_frames, candidate: None }
    }

    /// Reads one frame (BGR) at `now`; updates `timeline` once a colour has held long enough,
    /// dating the change to the first frame that showed it.
    pub fn observe(&mut self, frame: &Mat, now: Duration, timeline: &mut SignalTimeline) -> opencv::Result<()> {
        let seen = classify_lamp(frame, self.region, self.min_lit_fraction)?;
        if seen == timeline.current().0 {
            self.candidate = None;
            return Ok(());
        }
        let (count, first) = match self.candidate {
            Some((state, n, first)) if state == seen => (n + 1, first),
            _ => (1, now),
        };
        if count >= self.debounce_frames {
            timeline.set(seen, first);
            self.candidate = None;
        } else {
            self.candidate = Some((seen, count, first));
        }
        Ok(())
    }
}

/// A lit lamp is bright and saturated; its hue tells the colour (OpenCV hue runs 0..180).
const LIT_MIN_SATURATION: f64 = 90.0;
const LIT_MIN_VALUE: f64 = 150.0;
const HUE_BANDS: [(SignalState, f64, f64); 4] = [
    (SignalState::Red, 0.0, 10.0),
    (SignalState::Red, 160.0, 180.0),
    (SignalState::Amber, 11.0, 34.0),
    // Signal greens are blue-green, up to cyan.
    (SignalState::Green, 35.0, 100.0),
];

/// The colour most of the region's lit pixels have, or `Unknown` when too few are lit.
pub fn classify_lamp(frame: &Mat, region: [f32; 4], min_lit_fraction: f32) -> opencv::Result<SignalState> {
    let (w, h) = (frame.cols() as f32, frame.rows() as f32);
    let x = (region[0] * w).floor().max(0.0) as i32;
    let y = (region[1] * h).floor().max(0.0) as i32;
    let rect = Rect::new(x, y, (((region[2] * w).ceil() as i32).min(frame.cols()) - x).max(1), (((region[3] * h).ceil() as i32).min(frame.rows()) - y).max(1));
    let head = Mat::roi(frame, rect)?;
    let mut hsv = Mat::default();
    opencv::imgproc::cvt_color_def(&head, &mut hsv, opencv::imgproc::COLOR_BGR2HSV)?;
    let mut lit = [(SignalState::Red, 0), (SignalState::Amber, 0), (SignalState::Green, 0)];
    let mut mask = Mat::default();
    for (state, hue_lo, hue_hi) in HUE_BANDS {
        core::in_range(&hsv, &Scalar::new(hue_lo, LIT_MIN_SATURATION, LIT_MIN_VALUE, 0.0), &Scalar::new(hue_hi, 255.0, 255.0, 0.0), &mut mask)?;
        let n = core::count_non_zero(&mask)?;
        if let Some(entry) = lit.iter_mut().find(|(s, _)| *s == state) {
            entry.1 += n;
        }
    }
    let (state, count) = lit.into_iter().max_by_key(|&(_, n)| n).expect("three colours");
    let needed = min_lit_fraction * (rect.width * rect.height) as f32;
    Ok(if count as f32 >= needed && count > 0 { state } else { SignalState::Unknown })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::{CV_8UC3, Point as CvPoint};
    use opencv::imgproc;

    /// A grey street scene with a dark signal head at the top right; `lit` picks the lamp.
    fn scene(lit: Option<SignalState>) -> Mat {
        let mut img = Mat::new_rows_cols_with_default(240, 320, CV_8UC3, Scalar::new(90.0, 90.0, 90.0, 0.0)).unwrap();
        imgproc::rectangle(&mut img, Rect::new(280, 20, 20, 56), Scalar::new(20.0, 20.0, 20.0, 0.0), -1, imgproc::LINE_8, 0).unwrap();
        let lamps = [(SignalState::Red, 30, [40.0, 40.0, 255.0]), (SignalState::Amber, 48, [0.0, 190.0, 255.0]), (SignalState::Green, 66, [170.0, 255.0, 60.0])];
        for (state, y, bgr) in lamps {
            let colour = if lit == Some(state) { Scalar::new(bgr[0], bgr[1], bgr[2], 0.0) } else { Scalar::new(bgr[0] * 0.2, bgr[1] * 0.2, bgr[2] * 0.2, 0.0) };
            imgproc::circle(&mut img, CvPoint::new(290, y), 7, colour, -1, imgproc::LINE_8, 0).unwrap();
        }
        img
    }

    const HEAD: [f32; 4] = [0.85, 0.05, 0.96, 0.35];

    #[test]
    fn reads_the_lit_lamp() {
        for state in [SignalState::Red, SignalState::Amber, SignalState::Green] {
            assert_eq!(classify_lamp(&scene(Some(state)), HEAD, 0.02).unwrap(), state);
        }
        assert_eq!(classify_lamp(&scene(None), HEAD, 0.02).unwrap(), SignalState::Unknown);
    }

    #[test]
    fn a_single_frame_does_not_change_the_phase() {
        let config = SignalConfig { topic: None, region: Some(HEAD), debounce_frames: 3, min_lit_fraction: 0.02 };
        let mut reader = LampReader::new(HEAD, &config);
        let mut timeline = SignalTimeline::default();
        let t = |i: u64| Duration::from_millis(200 * i);
        let frames = [SignalState::Green, SignalState::Green, SignalState::Green, SignalState::Red, SignalState::Green, SignalState::Amber, SignalState::Amber, SignalState::Amber, SignalState::Red, SignalState::Red, SignalState::Red];
        for (i, state) in frames.into_iter().enumerate() {
            reader.observe(&scene(Some(state)), t(i as u64), &mut timeline).unwrap();
        }
        // Green from frame 0, the lone red ignored, amber from frame 5, red from frame 8.
        assert_eq!(timeline.at(t(4)), (SignalState::Green, t(0)));
        assert_eq!(timeline.at(t(6)), (SignalState::Amber, t(5)));
        assert_eq!(timeline.current(), (SignalState::Red, t(8)));
    }

    #[test]
    fn feed_messages() {
        assert_eq!(SignalState::from_feed(br#"{"state": "RED", "phase": 2}"#), Ok(SignalState::Red));
        assert_eq!(SignalState::from_feed(b"yellow\n"), Ok(SignalState::Amber));
        assert_eq!(SignalState::from_feed(br#""green""#), Ok(SignalState::Green));
        assert!(SignalState::from_feed(b"purple").unwrap_err().contains("purple"));
        assert!(SignalState::from_feed(br#"{"phase": 2}"#).is_err());
        assert!(SignalState::from_feed(&[0xff, 0xfe]).is_err());
    }
}
