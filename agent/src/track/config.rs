//! `[tracker]`: how detections become tracks, with its defaults and checks.

use serde::Deserialize;

use crate::check::{ConfigError, check_positive_seconds};

/// `[tracker]` in the site config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackerConfig {
    /// Detections scoring at least this are matched first and may start tracks (0..1).
    /// Default: the model manifest's `score_threshold`.
    pub high_score: Option<f32>,
    /// Detections between this and `high_score` only keep existing tracks alive (0..1).
    #[serde(default = "default_low_score")]
    pub low_score: f32,
    /// Detections needed before a track is reported.
    #[serde(default = "default_min_hits")]
    pub min_hits: u32,
    /// How long a track that is no longer detected is kept (predicted) before it is dropped, seconds.
    #[serde(default = "default_lost_timeout_s")]
    pub lost_timeout_s: f32,
}

fn default_low_score() -> f32 {
    0.1
}
fn default_min_hits() -> u32 {
    2
}
fn default_lost_timeout_s() -> f32 {
    1.0
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            high_score: None,
            low_score: default_low_score(),
            min_hits: default_min_hits(),
            lost_timeout_s: default_lost_timeout_s(),
        }
    }
}

impl TrackerConfig {
    pub fn validate(&self, path: &str, errors: &mut Vec<ConfigError>) {
        for (key, v) in [("high_score", self.high_score), ("low_score", Some(self.low_score))] {
            if let Some(v) = v
                && !(0.0..=1.0).contains(&v)
            {
                errors.push(ConfigError::new(format!("{path}.{key}"), format!("must be within 0..1, got {v}")));
            }
        }
        if self.high_score.is_some_and(|high| self.low_score > high) {
            errors.push(ConfigError::new(format!("{path}.low_score"), "must not exceed high_score"));
        }
        if self.min_hits == 0 {
            errors.push(ConfigError::new(format!("{path}.min_hits"), "must be at least 1"));
        }
        check_positive_seconds(self.lost_timeout_s, &format!("{path}.lost_timeout_s"), errors);
    }
}
