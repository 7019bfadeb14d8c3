//! The restart policy: whether and when a task that ended runs again.

use std::time::Duration;

use nomad_core::driver::ExitResult;
use nomad_core::job::{RestartPolicy, TaskLifecycle};
use tokio::time::Instant;

/// What happens once `attempts` restarts were used within `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartMode {
    /// The task fails.
    Fail,
    /// The task waits until the interval ends, then restarts.
    Delay,
}

/// A restart policy with Nomad's defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartSettings {
    /// Restarts allowed within `interval`.
    pub attempts: u32,
    /// The window restarts are counted in; it starts at the first restart.
    pub interval: Duration,
    /// The delay before each restart (plus up to 25% jitter).
    pub delay: Duration,
    /// What happens once the attempts are used up.
    pub mode: RestartMode,
}

impl RestartSettings {
    /// The policy of a task: its own `restart` block, else its group's, filled with Nomad's
    /// defaults for the job type (service: 2 attempts in 30m; batch: 3 in 24h; delay 15s;
    /// mode fail).
    pub fn resolve(
        task: Option<&RestartPolicy>,
        group: Option<&RestartPolicy>,
        job_type: &str,
    ) -> Self {
        let batch = matches!(job_type, "batch" | "sysbatch");
        let mut settings = Self {
            attempts: if batch { 3 } else { 2 },
            interval: if batch {
                Duration::from_secs(24 * 3600)
            } else {
                Duration::from_secs(30 * 60)
            },
            delay: Duration::from_secs(15),
            mode: RestartMode::Fail,
        };
        for policy in [group, task].into_iter().flatten() {
            if let Some(a) = policy.attempts {
                settings.attempts = u32::try_from(a).unwrap_or(0);
            }
            if let Some(i) = policy.interval {
                settings.interval = Duration::from_nanos(i.as_nanos());
            }
            if let Some(d) = policy.delay {
                settings.delay = Duration::from_nanos(d.as_nanos());
            }
            if let Some(m) = &policy.mode {
                settings.mode = if m == "delay" {
                    RestartMode::Delay
                } else {
                    RestartMode::Fail
                };
            }
        }
        settings
    }
}

/// The tracker's verdict on an ended task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartDecision {
    /// Restart after `delay` (a `Restarting` event with `reason`).
    Restart {
        /// How long to wait.
        delay: Duration,
        /// Why, as Nomad words it.
        reason: String,
    },
    /// Do not restart; the task failed (a `Not Restarting` event with `reason`).
    Fail {
        /// Why, as Nomad words it.
        reason: String,
    },
    /// Do not restart; the task completed successfully.
    Complete,
}

/// Nomad's restart tracker for one task.
#[derive(Debug, Clone)]
pub struct RestartTracker {
    settings: RestartSettings,
    restart_on_success: bool,
    count: u32,
    window_start: Option<Instant>,
    rng: u64,
}

impl RestartTracker {
    /// A tracker for a task of a job of `job_type` with `lifecycle`. A batch task and an
    /// ephemeral lifecycle task (no `sidecar`) are not restarted after a successful exit.
    pub fn new(
        settings: RestartSettings,
        job_type: &str,
        lifecycle: Option<&TaskLifecycle>,
        seed: u64,
    ) -> Self {
        let batch = matches!(job_type, "batch" | "sysbatch");
        let ephemeral = lifecycle.is_some_and(|l| !l.hook.is_empty() && !l.sidecar);
        Self {
            settings,
            restart_on_success: !batch && !ephemeral,
            count: 0,
            window_start: None,
            rng: seed | 1,
        }
    }

    /// Restarts counted in the current window.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The verdict on a task that exited with `exit` at `now`.
    pub fn on_exit(&mut self, exit: &ExitResult, now: Instant) -> RestartDecision {
        if exit.successful() && !self.restart_on_success {
            return RestartDecision::Complete;
        }
        self.count_restart(now)
    }

    /// The verdict on a task that could not be started.
    pub fn on_start_error(&mut self, recoverable: bool, now: Instant) -> RestartDecision {
        if !recoverable {
            return RestartDecision::Fail {
                reason: "Error was unrecoverable".into(),
            };
        }
        self.count_restart(now)
    }

    fn count_restart(&mut self, now: Instant) -> RestartDecision {
        if self.settings.attempts == 0 {
            return RestartDecision::Fail {
                reason: "Policy allows no restarts".into(),
            };
        }
        let start = match self.window_start {
            Some(start) if now <= start + self.settings.interval => start,
            _ => {
                self.count = 0;
                self.window_start = Some(now);
                now
            }
        };
        self.count += 1;
        if self.count > self.settings.attempts {
            return match self.settings.mode {
                RestartMode::Fail => RestartDecision::Fail {
                    reason: format!(
                        "Exceeded allowed attempts {} in interval {:?} and mode is \"fail\"",
                        self.settings.attempts, self.settings.interval
                    ),
                },
                RestartMode::Delay => {
                    let end = start + self.settings.interval;
                    // The next window starts when this one ends.
                    self.window_start = None;
                    RestartDecision::Restart {
                        delay: end.saturating_duration_since(now),
                        reason: "Exceeded allowed attempts, applying a delay".into(),
                    }
                }
            };
        }
        RestartDecision::Restart {
            delay: self.jittered(self.settings.delay),
            reason: "Restart within policy".into(),
        }
    }

    fn jittered(&mut self, delay: Duration) -> Duration {
        // xorshift64: up to 25% of jitter, deterministic for a seed.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let quarter = delay.as_nanos() / 4;
        if quarter == 0 {
            return delay;
        }
        let extra = u128::from(self.rng) % quarter;
        delay + Duration::from_nanos(u64::try_from(extra).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(attempts: u32, mode: RestartMode) -> RestartSettings {
        RestartSettings {
            attempts,
            interval: Duration::from_secs(60),
            delay: Duration::from_secs(1),
            mode,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fail_mode_stops_after_the_attempts() {
        let mut t = RestartTracker::new(settings(2, RestartMode::Fail), "service", None, 7);
        let exit = ExitResult::code(1);
        for _ in 0..2 {
            match t.on_exit(&exit, Instant::now()) {
                RestartDecision::Restart { delay, reason } => {
                    assert!(
                        delay >= Duration::from_secs(1) && delay <= Duration::from_millis(1250)
                    );
                    assert_eq!(reason, "Restart within policy");
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(
            matches!(t.on_exit(&exit, Instant::now()), RestartDecision::Fail { reason } if reason.contains("mode is \"fail\""))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_resets_after_the_interval() {
        let mut t = RestartTracker::new(settings(1, RestartMode::Fail), "service", None, 7);
        let exit = ExitResult::code(1);
        assert!(matches!(
            t.on_exit(&exit, Instant::now()),
            RestartDecision::Restart { .. }
        ));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(matches!(
            t.on_exit(&exit, Instant::now()),
            RestartDecision::Restart { .. }
        ));
        assert!(matches!(
            t.on_exit(&exit, Instant::now()),
            RestartDecision::Fail { .. }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn delay_mode_waits_for_the_window_end() {
        let mut t = RestartTracker::new(settings(1, RestartMode::Delay), "service", None, 7);
        let exit = ExitResult::code(1);
        assert!(matches!(
            t.on_exit(&exit, Instant::now()),
            RestartDecision::Restart { .. }
        ));
        tokio::time::advance(Duration::from_secs(10)).await;
        match t.on_exit(&exit, Instant::now()) {
            RestartDecision::Restart { delay, reason } => {
                assert_eq!(delay, Duration::from_secs(50));
                assert!(reason.contains("applying a delay"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn success_ends_batch_and_ephemeral_tasks() {
        let ok = ExitResult::code(0);
        let mut batch = RestartTracker::new(settings(2, RestartMode::Fail), "batch", None, 1);
        assert_eq!(
            batch.on_exit(&ok, Instant::now()),
            RestartDecision::Complete
        );
        let init = TaskLifecycle {
            hook: "prestart".into(),
            sidecar: false,
        };
        let mut eph =
            RestartTracker::new(settings(2, RestartMode::Fail), "service", Some(&init), 1);
        assert_eq!(eph.on_exit(&ok, Instant::now()), RestartDecision::Complete);
        let side = TaskLifecycle {
            hook: "prestart".into(),
            sidecar: true,
        };
        let mut sidecar =
            RestartTracker::new(settings(2, RestartMode::Fail), "service", Some(&side), 1);
        assert!(matches!(
            sidecar.on_exit(&ok, Instant::now()),
            RestartDecision::Restart { .. }
        ));
        let mut none = RestartTracker::new(settings(0, RestartMode::Fail), "service", None, 1);
        assert!(
            matches!(none.on_exit(&ExitResult::code(2), Instant::now()), RestartDecision::Fail { reason } if reason == "Policy allows no restarts")
        );
        assert!(
            matches!(none.on_start_error(false, Instant::now()), RestartDecision::Fail { reason } if reason == "Error was unrecoverable")
        );
    }
}
