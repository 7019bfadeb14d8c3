//! The [`TaskDriver`] trait.

use std::sync::Arc;
use std::time::Duration;

use super::{
    Capabilities, ConfigSchema, DriverError, EventSink, ExecResult, ExitResult, Fingerprint,
    StartedTask, TaskConfig, TaskHandle, TaskResourceUsage, TaskStatus,
};

/// A task driver: the seam between the client's task runner and whatever runs a task (a host
/// process, a container, a VM).
///
/// The trait is object safe; the client holds drivers as `Arc<dyn TaskDriver>` keyed by
/// [`name`](TaskDriver::name). Every method may be called concurrently from several tasks of
/// the runtime; a driver keeps its own task table behind a lock.
///
/// Tasks are identified by [`TaskConfig::id`]. The lifecycle the client drives is:
///
/// 1. [`validate_config`](TaskDriver::validate_config) when the job arrives;
/// 2. [`start`](TaskDriver::start), then [`wait`](TaskDriver::wait) for the exit;
/// 3. [`stop`](TaskDriver::stop) to end a task (its kill signal, then SIGKILL after the timeout);
/// 4. [`destroy`](TaskDriver::destroy) once the task is no longer wanted, always, even after a
///    failed start;
/// 5. after an agent restart, [`recover`](TaskDriver::recover) with the persisted
///    [`TaskHandle`] instead of `start`.
///
/// Drivers that write task output guarantee that once `wait` has resolved, what the task
/// wrote has reached its log files (`<stdout_path>.0`, ...), unless processes the task left
/// behind keep the output open.
///
/// Dropping a driver leaves its tasks running, as an agent that exits does, so that a new
/// instance can [`recover`](TaskDriver::recover) them.
///
/// The conformance kit (`nomad-driver-conformance`) checks all of this against a driver.
///
/// # Example
///
/// A driver whose tasks "run" for no time at all and exit with the code given in their config:
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::{Arc, Mutex};
/// use std::time::{Duration, SystemTime};
///
/// use async_trait::async_trait;
/// use nomad_core::driver::*;
///
/// #[derive(Default)]
/// struct InstantDriver {
///     // task id -> exit code
///     tasks: Mutex<HashMap<String, i32>>,
/// }
///
/// #[async_trait]
/// impl TaskDriver for InstantDriver {
///     fn name(&self) -> &str {
///         "instant"
///     }
///
///     fn capabilities(&self) -> Capabilities {
///         Capabilities::default()
///     }
///
///     async fn fingerprint(&self) -> Fingerprint {
///         Fingerprint::healthy().with_attribute("driver.instant", "1")
///     }
///
///     fn config_schema(&self) -> ConfigSchema {
///         ConfigSchema::new().required("exit_code", FieldKind::Integer)
///     }
///
///     async fn start(&self, config: &TaskConfig) -> Result<StartedTask, DriverError> {
///         self.validate_config(&config.driver_config)?;
///         let code = config.driver_config["exit_code"].as_i64().unwrap_or(0) as i32;
///         let mut tasks = self.tasks.lock().unwrap();
///         if tasks.contains_key(&config.id) {
///             return Err(DriverError::TaskAlreadyExists { task_id: config.id.clone() });
///         }
///         tasks.insert(config.id.clone(), code);
///         let state = serde_json::json!({ "exit_code": code });
///         Ok(StartedTask { handle: TaskHandle::new("instant", config.clone(), state), network: None })
///     }
///
///     async fn wait(&self, task_id: &str) -> Result<ExitResult, DriverError> {
///         let tasks = self.tasks.lock().unwrap();
///         let code = tasks.get(task_id).ok_or_else(|| DriverError::not_found(task_id))?;
///         Ok(ExitResult::code(*code))
///     }
///
///     async fn stop(&self, task_id: &str, _timeout: Duration, _signal: &str) -> Result<(), DriverError> {
///         // Instant tasks have always exited already.
///         self.tasks.lock().unwrap().get(task_id).map(|_| ()).ok_or_else(|| DriverError::not_found(task_id))
///     }
///
///     async fn destroy(&self, task_id: &str, _force: bool) -> Result<(), DriverError> {
///         self.tasks.lock().unwrap().remove(task_id);
///         Ok(())
///     }
///
///     async fn inspect(&self, task_id: &str) -> Result<TaskStatus, DriverError> {
///         let code = self.wait(task_id).await?;
///         Ok(TaskStatus {
///             id: task_id.to_owned(),
///             name: task_id.to_owned(),
///             state: TaskState::Exited,
///             started_at: None,
///             completed_at: Some(SystemTime::now()),
///             exit_result: Some(code),
///             driver_attributes: Default::default(),
///         })
///     }
///
///     async fn recover(&self, handle: &TaskHandle) -> Result<(), DriverError> {
///         if handle.driver != "instant" {
///             return Err(DriverError::InvalidHandle { reason: format!("made by {}", handle.driver) });
///         }
///         let code = handle.driver_state["exit_code"].as_i64().unwrap_or(0) as i32;
///         self.tasks.lock().unwrap().insert(handle.config.id.clone(), code);
///         Ok(())
///     }
///
///     async fn stats(&self, task_id: &str) -> Result<TaskResourceUsage, DriverError> {
///         Err(DriverError::TaskGone { task_id: task_id.to_owned(), reason: "exited".into() })
///     }
/// }
///
/// // The client side: any executor works; this one polls the (always ready) futures.
/// # fn block_on<F: std::future::Future>(future: F) -> F::Output {
/// #     let mut future = std::pin::pin!(future);
/// #     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// #     loop {
/// #         if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
/// #             return out;
/// #         }
/// #     }
/// # }
/// let driver: Arc<dyn TaskDriver> = Arc::new(InstantDriver::default());
/// block_on(async {
///     let config = TaskConfig {
///         id: "alloc1/web/1".into(),
///         task_name: "web".into(),
///         driver_config: serde_json::json!({ "exit_code": 3 }),
///         ..TaskConfig::default()
///     };
///     let started = driver.start(&config).await.unwrap();
///     assert_eq!(driver.wait(&config.id).await.unwrap().exit_code, 3);
///
///     // A misspelt field is refused, naming it.
///     let err = driver.validate_config(&serde_json::json!({ "exit_cod": 3 })).unwrap_err();
///     assert!(err.to_string().contains("exit_cod"));
///
///     // After an agent restart, a fresh driver recovers the task from its persisted handle.
///     let saved = serde_json::to_string(&started.handle).unwrap();
///     let restarted = InstantDriver::default();
///     restarted.recover(&serde_json::from_str(&saved).unwrap()).await.unwrap();
///     assert_eq!(restarted.wait(&config.id).await.unwrap().exit_code, 3);
///
///     driver.destroy(&config.id, true).await.unwrap();
///     assert!(matches!(driver.wait(&config.id).await, Err(DriverError::TaskNotFound { .. })));
///     // Signals are unsupported unless the driver says otherwise.
///     assert!(matches!(
///         restarted.signal(&config.id, "SIGHUP").await,
///         Err(DriverError::Unsupported { .. })
///     ));
/// });
/// ```
#[async_trait::async_trait]
pub trait TaskDriver: Send + Sync {
    /// The driver's name as jobs write it in `driver = "..."`.
    fn name(&self) -> &str;

    /// What the driver can do. Cheap and constant for a driver instance.
    fn capabilities(&self) -> Capabilities;

    /// Detects the driver's health and its node attributes.
    ///
    /// Never fails: problems are reported as [`HealthState::Unhealthy`](super::HealthState) or,
    /// for a driver that is absent or disabled, [`HealthState::Undetected`](super::HealthState),
    /// with a description. The client calls it periodically.
    async fn fingerprint(&self) -> Fingerprint;

    /// The schema of the driver's `config` block.
    fn config_schema(&self) -> ConfigSchema;

    /// Checks a task's `config` block before any task is started with it.
    ///
    /// The default checks it against [`config_schema`](TaskDriver::config_schema); drivers add
    /// checks that a schema cannot express (two fields that exclude each other).
    ///
    /// # Errors
    ///
    /// * [`DriverError::InvalidConfig`] naming the field that is unknown, missing, mistyped or
    ///   has an invalid value.
    fn validate_config(&self, config: &serde_json::Value) -> Result<(), DriverError> {
        self.config_schema().check(config)
    }

    /// Starts a task and returns its handle, and the network the driver made for it, if any.
    ///
    /// Returns once the task runs (a process was spawned, a container started); its exit is
    /// observed through [`wait`](TaskDriver::wait). A task that fails to start leaves nothing
    /// behind that [`destroy`](TaskDriver::destroy) would not remove.
    ///
    /// # Errors
    ///
    /// * [`DriverError::DriverDisabled`] when the client configuration disables the driver;
    /// * [`DriverError::DriverUnhealthy`] when the driver cannot run tasks now;
    /// * [`DriverError::InvalidConfig`] when `config.driver_config` does not match the schema;
    /// * [`DriverError::TaskAlreadyExists`] when a task with `config.id` is known;
    /// * [`DriverError::StartFailed`] when the task could not be started (command or image not
    ///   found, permission denied, ...).
    async fn start(&self, config: &TaskConfig) -> Result<StartedTask, DriverError>;

    /// Waits for a task to exit and returns how it ended.
    ///
    /// Several callers may wait on the same task; all receive the same result, and a call made
    /// after the exit returns at once. Dropping the future stops waiting, not the task.
    ///
    /// # Errors
    ///
    /// * [`DriverError::TaskNotFound`] when the task is unknown (or destroyed).
    async fn wait(&self, task_id: &str) -> Result<ExitResult, DriverError>;

    /// Stops a task: sends `signal` (a name such as `SIGTERM`; empty for the driver's
    /// default), waits up to `timeout` for the task to exit, then kills it (SIGKILL) and
    /// everything it started. Returns once the task has exited. Stopping an exited task
    /// succeeds and does nothing.
    ///
    /// # Errors
    ///
    /// * [`DriverError::TaskNotFound`] when the task is unknown;
    /// * [`DriverError::InvalidSignal`] when `signal` is not a signal name;
    /// * [`DriverError::Timeout`] when the task still runs after it was killed;
    /// * [`DriverError::Other`] when the signal could not be delivered.
    async fn stop(&self, task_id: &str, timeout: Duration, signal: &str)
        -> Result<(), DriverError>;

    /// Removes a task and everything the driver keeps for it (processes, containers, state).
    ///
    /// With `force`, a running task is killed first. Idempotent: destroying an unknown or
    /// already destroyed task succeeds. After it, the task id is unknown to the driver.
    ///
    /// # Errors
    ///
    /// * [`DriverError::TaskRunning`] when the task runs and `force` is false;
    /// * [`DriverError::Other`] when cleaning up failed (the task stays known, so destroy can
    ///   be retried).
    async fn destroy(&self, task_id: &str, force: bool) -> Result<(), DriverError>;

    /// Returns the task's status.
    ///
    /// # Errors
    ///
    /// * [`DriverError::TaskNotFound`] when the task is unknown.
    async fn inspect(&self, task_id: &str) -> Result<TaskStatus, DriverError>;

    /// Re-attaches to a running task from the handle [`start`](TaskDriver::start) returned,
    /// after the agent restarted; the task then behaves as if this driver instance had started
    /// it (wait, stop, stats, destroy). Recovering a task the driver already knows succeeds
    /// and does nothing.
    ///
    /// # Errors
    ///
    /// * [`DriverError::InvalidHandle`] when the handle is not this driver's or cannot be read;
    /// * [`DriverError::TaskGone`] when the task no longer exists (the client then treats it
    ///   as exited and may restart it);
    /// * [`DriverError::DriverDisabled`] when the driver has been disabled since.
    async fn recover(&self, handle: &TaskHandle) -> Result<(), DriverError>;

    /// One sample of a running task's resource usage.
    ///
    /// # Errors
    ///
    /// * [`DriverError::TaskNotFound`] when the task is unknown;
    /// * [`DriverError::TaskGone`] when the task has exited;
    /// * [`DriverError::Other`] when the usage could not be read.
    async fn stats(&self, task_id: &str) -> Result<TaskResourceUsage, DriverError>;

    /// Subscribes `sink` to the driver's events about its tasks (image pulls, kill
    /// escalations, ...); every later event of every task is sent to every sink.
    ///
    /// The default accepts the sink and never sends anything.
    ///
    /// # Errors
    ///
    /// None by default; a driver may return [`DriverError::Other`] when it cannot subscribe.
    fn events(&self, sink: Arc<dyn EventSink>) -> Result<(), DriverError> {
        let _ = sink;
        Ok(())
    }

    /// Sends `signal` (a name such as `SIGHUP`) to a running task.
    ///
    /// # Errors
    ///
    /// * [`DriverError::Unsupported`] by default and when
    ///   [`Capabilities::send_signals`] is false;
    /// * [`DriverError::TaskNotFound`] when the task is unknown;
    /// * [`DriverError::InvalidSignal`] when `signal` is not a signal name;
    /// * [`DriverError::Other`] when the signal could not be delivered.
    async fn signal(&self, task_id: &str, signal: &str) -> Result<(), DriverError> {
        let _ = (task_id, signal);
        Err(DriverError::Unsupported {
            driver: self.name().to_owned(),
            operation: "signal".into(),
        })
    }

    /// Runs `command` (program and arguments) inside a running task's environment and
    /// returns its output, killing it after `timeout`.
    ///
    /// # Errors
    ///
    /// * [`DriverError::Unsupported`] by default and when [`Capabilities::exec`] is false;
    /// * [`DriverError::TaskNotFound`] when the task is unknown;
    /// * [`DriverError::Timeout`] when the command outlived `timeout`;
    /// * [`DriverError::Other`] when the command could not be run.
    async fn exec(
        &self,
        task_id: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecResult, DriverError> {
        let _ = (task_id, command, timeout);
        Err(DriverError::Unsupported {
            driver: self.name().to_owned(),
            operation: "exec".into(),
        })
    }
}
