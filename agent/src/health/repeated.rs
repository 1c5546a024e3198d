//! An error that may come again on every frame (a detector that fails, a rule that cannot read
//! its signal heads) is logged the first time and then once a minute with how often it came:
//! 25 lines a second a camera would push everything else out of the journal.

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
        if self.logged_at.is_some_and(|at| now.saturating_duration_since(at) < EVERY) {
            self.since += 1;
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
}
