//! A service's health during one run, as Docker keeps it: `starting` until
//! a check passes, `healthy` after a passed check, `unhealthy` after
//! `retries` failed checks in a row. Failures within `start_period` of the
//! start do not count while it is still `starting`. Pure data: the checks
//! are run by `services/health_checks.rs`, which feeds their results here.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use config::Healthcheck;

use crate::protocol::{Health, HealthCheck};

/// Checks kept for `status --json`'s `health_log`.
pub const LOG_ENTRIES: usize = 5;
/// Bytes of a check's output kept (Docker's limit).
pub const OUTPUT_LIMIT: usize = 4096;

#[derive(Debug, Clone, PartialEq)]
pub struct Tracker {
    pub check: Healthcheck,
    pub state: Health,
    pub failing_streak: u32,
    /// The last LOG_ENTRIES checks, oldest first.
    pub log: VecDeque<HealthCheck>,
    /// When the run started.
    started: Instant,
    /// A check has passed in this run.
    passed: bool,
    /// When the next check starts (if none runs).
    next: Instant,
}

impl Tracker {
    /// For a run that started at `started`: the first check is due one
    /// interval later.
    pub fn new(check: &Healthcheck, started: Instant) -> Tracker {
        Tracker {
            check: check.clone(),
            state: Health::Starting,
            failing_streak: 0,
            log: VecDeque::new(),
            started,
            passed: false,
            next: started + check.interval,
        }
    }

    /// When the next check is due.
    pub fn next_check(&self) -> Instant {
        self.next
    }

    pub fn timeout(&self) -> Duration {
        self.check.timeout
    }

    /// Whether a check has passed during this run (what readiness and
    /// `depends_on: {condition: service_healthy}` wait for).
    pub fn passed_first_check(&self) -> bool {
        self.passed
    }

    /// Records a check that ended at `now` (`entry.exit_code` 0: passed);
    /// the next one is due an interval later. The new state, when it changed.
    pub fn record(&mut self, entry: HealthCheck, now: Instant) -> Option<Health> {
        let passed = entry.exit_code == 0;
        self.log.push_back(entry);
        while self.log.len() > LOG_ENTRIES {
            self.log.pop_front();
        }
        self.next = now + self.check.interval;
        let before = self.state;
        if passed {
            self.passed = true;
            self.failing_streak = 0;
            self.state = Health::Healthy;
        } else if self.state == Health::Starting
            && now.saturating_duration_since(self.started) < self.check.start_period
        {
            // Still starting up: this failure does not count.
        } else {
            self.failing_streak += 1;
            if self.failing_streak >= self.check.retries {
                self.state = Health::Unhealthy;
            }
        }
        (self.state != before).then_some(self.state)
    }
}

/// A check's output as kept: at most OUTPUT_LIMIT bytes, as text.
pub fn output_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(OUTPUT_LIMIT)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::OnUnhealthy;

    fn check(retries: u32, start_period: Duration) -> Healthcheck {
        Healthcheck {
            test: vec!["true".into()],
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            retries,
            start_period,
            on_unhealthy: OnUnhealthy::Restart,
        }
    }

    fn result(exit_code: i32) -> HealthCheck {
        HealthCheck {
            start: String::new(),
            end: String::new(),
            exit_code,
            output: format!("exit {exit_code}"),
        }
    }

    #[test]
    fn a_pass_makes_it_healthy_and_retries_failures_unhealthy() {
        let t0 = Instant::now();
        let mut health = Tracker::new(&check(3, Duration::ZERO), t0);
        assert_eq!(health.state, Health::Starting);
        assert_eq!(health.next_check(), t0 + Duration::from_secs(1));
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(health.record(result(0), at(1)), Some(Health::Healthy));
        assert!(health.passed_first_check());
        assert_eq!(health.next_check(), at(2));
        assert_eq!(health.record(result(1), at(2)), None);
        assert_eq!(health.record(result(-1), at(3)), None);
        assert_eq!(health.failing_streak, 2);
        assert_eq!(health.record(result(2), at(4)), Some(Health::Unhealthy));
        assert_eq!(health.record(result(1), at(5)), None);
        assert_eq!(health.failing_streak, 4);
        assert_eq!(health.record(result(0), at(6)), Some(Health::Healthy));
        assert_eq!(health.failing_streak, 0);
    }

    #[test]
    fn failures_only_count_after_the_start_period_unless_healthy() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut health = Tracker::new(&check(1, Duration::from_secs(5)), t0);
        assert_eq!(health.record(result(1), at(1000)), None);
        assert_eq!(health.record(result(1), at(4000)), None);
        assert_eq!(health.failing_streak, 0);
        assert_eq!(health.state, Health::Starting);
        assert!(!health.passed_first_check());
        assert_eq!(health.record(result(1), at(5000)), Some(Health::Unhealthy));
        // A pass within the period ends it: later failures count at once.
        let mut health = Tracker::new(&check(1, Duration::from_secs(5)), t0);
        assert_eq!(health.record(result(0), at(1000)), Some(Health::Healthy));
        assert_eq!(health.record(result(1), at(2000)), Some(Health::Unhealthy));
    }

    #[test]
    fn the_log_keeps_the_last_checks_and_output_is_capped() {
        let t0 = Instant::now();
        let mut health = Tracker::new(&check(100, Duration::ZERO), t0);
        for code in 0..8 {
            health.record(result(code), t0);
        }
        let codes: Vec<i32> = health.log.iter().map(|e| e.exit_code).collect();
        assert_eq!(codes, [3, 4, 5, 6, 7]);
        assert_eq!(output_text(&[b'x'; 5000]).len(), OUTPUT_LIMIT);
        assert_eq!(output_text(b"ok\n"), "ok\n");
    }
}
