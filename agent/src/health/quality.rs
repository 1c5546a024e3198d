//! A camera's connection quality, one word an operator can sort a camera list by: from the frame
//! rate against the configured one, and the reconnects and stalls of the last hour.

use serde::{Deserialize, Serialize};

use super::SourceState;

/// How far back reconnects and stalls count.
pub const WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    /// Not delivering frames: reconnecting, failed, or not started yet.
    Down,
    /// Under half the expected frame rate, or 6 or more reconnects or stalls in the last hour.
    Poor,
    /// Under 90 % of the expected frame rate, or any reconnect or stall in the last hour.
    Fair,
    Good,
}

impl Quality {
    /// `fps_in` is the rate the source delivered since the last look (`None` before one);
    /// `expected_fps` 0 means every frame is analysed, with no rate to hold the source to.
    pub fn grade(state: &SourceState, fps_in: Option<f64>, expected_fps: u32, troubles_last_hour: usize) -> Quality {
        if !matches!(state, SourceState::Streaming | SourceState::Ended | SourceState::Stopped) {
            return Quality::Down;
        }
        let share = match fps_in {
            Some(fps) if expected_fps > 0 && matches!(state, SourceState::Streaming) => fps / expected_fps as f64,
            _ => 1.0,
        };
        if share < 0.5 || troubles_last_hour >= 6 {
            Quality::Poor
        } else if share < 0.9 || troubles_last_hour >= 1 {
            Quality::Fair
        } else {
            Quality::Good
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Quality::Down => "down",
            Quality::Poor => "poor",
            Quality::Fair => "fair",
            Quality::Good => "good",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grades_from_rate_and_troubles() {
        let streaming = SourceState::Streaming;
        assert_eq!(Quality::grade(&streaming, Some(5.0), 5, 0), Quality::Good);
        assert_eq!(Quality::grade(&streaming, Some(4.0), 5, 0), Quality::Fair);
        assert_eq!(Quality::grade(&streaming, Some(2.0), 5, 0), Quality::Poor);
        assert_eq!(Quality::grade(&streaming, Some(5.0), 5, 1), Quality::Fair);
        assert_eq!(Quality::grade(&streaming, Some(5.0), 5, 6), Quality::Poor);
        assert_eq!(Quality::grade(&streaming, None, 0, 0), Quality::Good);
        let reconnecting = SourceState::Reconnecting { reason: "x".into(), backoff_s: 1 };
        assert_eq!(Quality::grade(&reconnecting, Some(5.0), 5, 0), Quality::Down);
    }
}
