//! The errors of the task driver contract.

/// A boxed error a driver may attach as the cause of a failure.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a [`TaskDriver`](super::TaskDriver) method may refuse or fail with.
///
/// Each method of the trait lists, in its documentation, which of these variants it returns and
/// when. A caller matches on the variant, never on the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// No task with this id is known to the driver (never started, destroyed, or not recovered).
    #[error("task {task_id:?} not found")]
    TaskNotFound {
        /// The task id that was asked for.
        task_id: String,
    },
    /// A task with this id is already known to the driver.
    #[error("task {task_id:?} already exists")]
    TaskAlreadyExists {
        /// The task id that was given.
        task_id: String,
    },
    /// The task is still running and the operation needs it stopped (destroy without force).
    #[error("task {task_id:?} is still running")]
    TaskRunning {
        /// The running task.
        task_id: String,
    },
    /// The task a handle describes no longer exists (recover after it died or was replaced).
    #[error("task {task_id:?} is gone: {reason}")]
    TaskGone {
        /// The task the handle described.
        task_id: String,
        /// Why the driver believes so: no such process, a different process with that pid, ...
        reason: String,
    },
    /// A task handle this driver cannot read: another driver's, or a newer or corrupt state.
    #[error("invalid task handle: {reason}")]
    InvalidHandle {
        /// What is wrong with it.
        reason: String,
    },
    /// The driver does not implement this operation.
    #[error("driver {driver:?} does not support {operation}")]
    Unsupported {
        /// The driver's name.
        driver: String,
        /// The operation, as `signal` or `exec`.
        operation: String,
    },
    /// The task's driver configuration does not match the driver's schema.
    #[error("invalid driver config: field {field:?}: {reason}")]
    InvalidConfig {
        /// The path of the offending field, as `args[1]` or `mount[0].target`; empty for the
        /// whole configuration.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The driver is disabled by the client's configuration.
    #[error("driver {driver:?} is disabled: a disabled driver cannot be used by any job")]
    DriverDisabled {
        /// The driver's name.
        driver: String,
    },
    /// The driver is enabled but cannot work now (its daemon does not answer, ...).
    #[error("driver {driver:?} is unhealthy: {reason}")]
    DriverUnhealthy {
        /// The driver's name.
        driver: String,
        /// What its fingerprint found.
        reason: String,
    },
    /// The task could not be started.
    #[error("task {task_id:?} failed to start: {reason}")]
    StartFailed {
        /// The task that did not start.
        task_id: String,
        /// Why, in the task's own words: command not found, image not pullable, ...
        reason: String,
        /// Whether trying again later may succeed (a daemon that was busy), as opposed to a
        /// failure that will repeat (a command that does not exist).
        recoverable: bool,
    },
    /// A signal name the driver does not know.
    #[error("unknown signal {signal:?}")]
    InvalidSignal {
        /// The name that was given.
        signal: String,
    },
    /// An operation did not finish in the time it was given.
    #[error("{operation} of task {task_id:?} timed out")]
    Timeout {
        /// The task.
        task_id: String,
        /// What timed out: `stop`, `exec`, ...
        operation: String,
    },
    /// Any other failure, with the operation it happened in and its cause.
    #[error("{context}: {source}")]
    Other {
        /// What the driver was doing: `sending SIGTERM to task "web"`.
        context: String,
        /// The underlying cause.
        #[source]
        source: BoxError,
    },
}

impl DriverError {
    /// A [`DriverError::TaskNotFound`] for `task_id`.
    pub fn not_found(task_id: impl Into<String>) -> Self {
        Self::TaskNotFound {
            task_id: task_id.into(),
        }
    }

    /// A [`DriverError::InvalidConfig`] naming `field`.
    pub fn invalid_config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A non-recoverable [`DriverError::StartFailed`].
    pub fn start_failed(task_id: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::StartFailed {
            task_id: task_id.into(),
            reason: reason.into(),
            recoverable: false,
        }
    }

    /// A [`DriverError::Other`] with `context` and a cause.
    pub fn other(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Other {
            context: context.into(),
            source: source.into(),
        }
    }
}
