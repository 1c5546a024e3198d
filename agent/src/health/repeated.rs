//! An error that may come again on every frame (a detector that fails, a rule that cannot read
//! its signal heads) is logged the first time and then once a minute with how often it came:
//! 25 lines a second a camera would push everything else out of the journal. When it stops, how
//! often it came since its last line is logged too, at most a minute after that line: the count
//! of a burst that ended would otherwise never show.

use std::time::{Duration, Instant};

/// How often a repeated error is logged.
const EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Repeated {
    logged_at: Option<Instant>,
    since: u64,
}

impl Repeated {
    /// Whether the error that came now is to be logged; if so, how many times it came since it
    /// was last logged, this time excluded.
    pub fn due(&mut self) -> Option<u64> {
        self.due_at(Instant::now())
    }

    fn due_at(&mut self, now: Instant) -> Option<u64> {
        if !self.line_due(now) {
            self.since += 1;
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.since))
    }

    /// Whether a line may be logged at `now`: none yet, or the last a minute ago.
    fn line_due(&self, now: Instant) -> bool {
        self.logged_at.is_none_or(|at| now.saturating_duration_since(at) >= EVERY)
    }

    /// The error did not come now: if it came since its last line and that line is a minute
    /// old, how many times (to be logged). Cheap while nothing failed.
    pub fn quiet(&mut self) -> Option<u64> {
        if self.since == 0 {
            return None;
        }
        self.quiet_at(Instant::now())
    }

    fn quiet_at(&mut self, now: Instant) -> Option<u64> {
        if self.since == 0 || !self.line_due(now) {
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_then_once_a_minute_with_the_count() {
        let (mut r, t0) = (Repeated::default(), Instant::now());
        let logged: Vec<(u64, Option<u64>)> = (0..=150u64).map(|s| (s, r.due_at(t0 + Duration::from_millis(400 * s)))).filter(|(_, d)| d.is_some()).collect();
        assert_eq!(logged, vec![(0, Some(0)), (150, Some(149))], "every 0.4 s for 60 s");
    }

    #[test]
    fn a_burst_that_stopped_is_counted_a_minute_after_its_first_line() {
        let (mut r, t0) = (Repeated::default(), Instant::now());
        assert_eq!(r.quiet_at(t0), None, "nothing failed");
        let at = |s: f32| t0 + Duration::from_secs_f32(s);
        let logged: Vec<Option<u64>> = (0..25).map(|i| r.due_at(at(i as f32 * 0.4))).collect();
        assert_eq!(logged.iter().flatten().count(), 1, "the first alone");
        assert_eq!(r.quiet_at(at(30.0)), None, "the line is half a minute old");
        assert_eq!(r.quiet_at(at(61.0)), Some(24), "the 24 errors after it");
        assert_eq!(r.quiet_at(at(200.0)), None, "told once");
        // Failing on every other frame: one line a minute either way, not one a frame.
        let lines = (0..600).filter(|&i| if i % 2 == 0 { r.due_at(at(300.0 + i as f32 * 0.2)).is_some() } else { r.quiet_at(at(300.0 + i as f32 * 0.2)).is_some() }).count();
        assert_eq!(lines, 2, "over two minutes");
    }
}
