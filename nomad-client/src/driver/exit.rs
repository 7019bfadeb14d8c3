//! How a task ended: published once by the task's supervisor, read by the driver's `wait`,
//! `stop` and `inspect`. Shared by every built-in driver.

use std::time::{Duration, SystemTime};

use nomad_core::driver::{DriverError, ExitResult, TaskConfig};
use tokio::sync::watch;

/// How and when a task ended.
#[derive(Debug, Clone)]
pub(crate) struct Exited {
    pub(crate) result: ExitResult,
    pub(crate) at: SystemTime,
}

/// A driver's record of one task, which carries the receiver its supervisor publishes the
/// exit on.
pub(crate) trait ExitWatch {
    /// The receiver the task's supervisor publishes its exit on.
    fn exit_rx(&self) -> &watch::Receiver<Option<Exited>>;

    /// The exit, once the task has ended.
    fn exited(&self) -> Option<Exited> {
        self.exit_rx().borrow().clone()
    }

    /// Waits for the exit for at most `limit`; `false` when the task still runs after it.
    /// A supervisor that is gone (the task is being destroyed) leaves nothing to wait for.
    async fn wait_exit(&self, limit: Duration) -> bool {
        let mut exit = self.exit_rx().clone();
        let waited = tokio::time::timeout(limit, exit.wait_for(Option::is_some))
            .await
            .is_ok();
        waited
    }

    /// Waits for the exit without limit: `TaskNotFound` when the supervisor went away first.
    async fn wait_result(&self, task_id: &str) -> Result<ExitResult, DriverError> {
        let mut exit = self.exit_rx().clone();
        let result = match exit.wait_for(Option::is_some).await {
            Ok(exited) => Ok(exited
                .as_ref()
                .map(|e| e.result.clone())
                .unwrap_or_default()),
            Err(_) => Err(DriverError::not_found(task_id)),
        };
        result
    }
}

/// The signal a stop sends: the one asked for, else the task's `kill_signal`, else SIGTERM.
pub(crate) fn stop_signal_name<'a>(config: &'a TaskConfig, requested: &'a str) -> &'a str {
    if requested.is_empty() {
        config.kill_signal.as_deref().unwrap_or("SIGTERM")
    } else {
        requested
    }
}
