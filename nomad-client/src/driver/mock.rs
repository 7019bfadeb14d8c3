//! The `mock` driver: tasks that only pretend to run, scripted by their `config` block.

use super::exit::{stop_signal_name, ExitWatch, Exited};
use super::table::{TaskTable, TrackedTask};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use nomad_core::driver::{
    parse_duration, Capabilities, ConfigSchema, DriverError, DriverEvent, EventFanout, EventSink,
    ExitResult, FieldKind, Fingerprint, FsIsolation, MemoryUsage, MountConfigSupport,
    NetIsolationMode, StartedTask, TaskConfig, TaskDriver, TaskHandle, TaskResourceUsage,
    TaskStatus,
};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use crate::logs::RotatingLog;

const NAME: &str = "mock";
const SIGKILL: i32 = 9;

/// The simulated machine mock tasks run on.
///
/// Mock tasks live in their host, not in a driver instance: dropping a [`MockDriver`] leaves
/// them running, and a new driver on the same host recovers them from their handles, as a
/// restarted agent recovers real processes.
#[derive(Debug, Default)]
pub struct MockHost {
    procs: Mutex<HashMap<String, Arc<MockProc>>>,
}

impl MockHost {
    /// An empty host.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// How many tasks run on the host now.
    pub fn running(&self) -> usize {
        self.lock()
            .values()
            .filter(|p| p.exit.borrow().is_none())
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<MockProc>>> {
        self.procs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `mock` task driver, for tests and examples.
///
/// A task's `config` block scripts it; the fields follow Nomad's mock driver:
///
/// | field | meaning |
/// |---|---|
/// | `run_for` | how long the task runs before it exits (`"2s"`); absent: until stopped |
/// | `exit_code`, `exit_signal`, `exit_err_msg` | how it exits after `run_for` |
/// | `start_error` | start fails with this message (`start_error_recoverable` marks it recoverable) |
/// | `start_block_for` | start takes this long |
/// | `kill_after` | how long the task takes to exit after its stop signal; longer than the stop timeout means it is killed |
/// | `stdout_string`, `stdout_repeat`, `stdout_repeat_duration` | what it writes to its stdout log, how many more times and how often |
/// | `stdout_env` | the name of an environment variable whose value it writes to stdout (ours) |
/// | `write_file` | a `{ path, content }` block: a file it writes at start, `${VAR}` in `path` taken from the task's environment (ours) |
/// | `signal_error` | [`TaskDriver::signal`] fails with this message |
///
/// Stats report 1 MiB of memory and no CPU.
#[derive(Debug)]
pub struct MockDriver {
    host: Arc<MockHost>,
    tasks: TaskTable<MockProc>,
    events: EventFanout,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct MockTaskConfig {
    run_for: Option<String>,
    exit_code: i32,
    exit_signal: i32,
    exit_err_msg: Option<String>,
    start_error: Option<String>,
    start_error_recoverable: bool,
    start_block_for: Option<String>,
    kill_after: Option<String>,
    stdout_string: Option<String>,
    stdout_repeat: u64,
    stdout_repeat_duration: Option<String>,
    stdout_env: Option<String>,
    write_file: Option<WriteFile>,
    signal_error: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct WriteFile {
    path: String,
    #[serde(default)]
    content: String,
}

fn duration(field: &str, value: &Option<String>) -> Result<Option<Duration>, DriverError> {
    value
        .as_deref()
        .map(|text| {
            parse_duration(text).map_err(|reason| DriverError::invalid_config(field, reason))
        })
        .transpose()
}

#[derive(Debug)]
enum Control {
    /// The stop signal: exit after `kill_after`.
    Stop(i32),
    /// SIGKILL: exit now.
    Kill,
}

#[derive(Debug)]
struct MockProc {
    config: TaskConfig,
    mock: MockTaskConfig,
    started_at: SystemTime,
    exit: watch::Receiver<Option<Exited>>,
    control: mpsc::UnboundedSender<Control>,
}

impl ExitWatch for MockProc {
    fn exit_rx(&self) -> &watch::Receiver<Option<Exited>> {
        &self.exit
    }
}

impl TrackedTask for MockProc {
    fn config(&self) -> &TaskConfig {
        &self.config
    }
    fn started_at(&self) -> SystemTime {
        self.started_at
    }
}

impl Default for MockDriver {
    fn default() -> Self {
        Self::new()
    }
}

impl MockDriver {
    /// A driver on a host of its own.
    pub fn new() -> Self {
        Self::with_host(MockHost::new())
    }

    /// A driver on `host`, shared with other driver instances.
    pub fn with_host(host: Arc<MockHost>) -> Self {
        Self {
            host,
            tasks: TaskTable::default(),
            events: EventFanout::new(),
        }
    }

    fn decode(config: &serde_json::Value) -> Result<MockTaskConfig, DriverError> {
        let mock: MockTaskConfig = serde_json::from_value(config.clone())
            .map_err(|err| DriverError::invalid_config("", err.to_string()))?;
        duration("run_for", &mock.run_for)?;
        duration("start_block_for", &mock.start_block_for)?;
        duration("kill_after", &mock.kill_after)?;
        duration("stdout_repeat_duration", &mock.stdout_repeat_duration)?;
        Ok(mock)
    }
}

/// The pretend process.
async fn run(
    config: TaskConfig,
    mock: MockTaskConfig,
    mut control: mpsc::UnboundedReceiver<Control>,
    exit: watch::Sender<Option<Exited>>,
) {
    let finish = |result: ExitResult| {
        exit.send_replace(Some(Exited {
            result,
            at: SystemTime::now(),
        }));
    };
    if let Err(err) = write_outputs(&config, &mock).await {
        finish(ExitResult {
            exit_code: 1,
            error: Some(format!("writing output: {err}")),
            ..ExitResult::default()
        });
        return;
    }
    let run_for = duration("run_for", &mock.run_for).ok().flatten();
    let kill_after = duration("kill_after", &mock.kill_after)
        .ok()
        .flatten()
        .unwrap_or_default();
    let natural_end = async {
        match run_for {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(natural_end);
    let mut dying: Option<(i32, tokio::time::Instant)> = None;
    loop {
        let death = async {
            match dying {
                Some((_, at)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut natural_end => {
                finish(ExitResult {
                    exit_code: mock.exit_code,
                    signal: (mock.exit_signal != 0).then_some(mock.exit_signal),
                    oom_killed: false,
                    error: mock.exit_err_msg.clone(),
                });
                return;
            }
            () = death => {
                if let Some((signal, _)) = dying {
                    finish(ExitResult::signaled(signal));
                }
                return;
            }
            message = control.recv() => match message {
                Some(Control::Kill) | None => {
                    finish(ExitResult::signaled(SIGKILL));
                    return;
                }
                Some(Control::Stop(signal)) => {
                    if dying.is_none() {
                        dying = Some((signal, tokio::time::Instant::now() + kill_after));
                    }
                }
            },
        }
    }
}

async fn write_outputs(config: &TaskConfig, mock: &MockTaskConfig) -> std::io::Result<()> {
    if let Some(file) = &mock.write_file {
        let mut path = file.path.clone();
        for (key, value) in &config.env {
            path = path.replace(&format!("${{{key}}}"), value);
        }
        tokio::fs::write(&path, &file.content).await?;
    }
    if config.stdout_path.as_os_str().is_empty() {
        return Ok(());
    }
    let mut text = String::new();
    if let Some(name) = &mock.stdout_env {
        text.push_str(config.env.get(name).map(String::as_str).unwrap_or(""));
    }
    if let Some(s) = &mock.stdout_string {
        text.push_str(s);
    }
    let mut log = RotatingLog::open(&config.stdout_path, config.logs).await?;
    log.write(text.as_bytes()).await?;
    if let Some(s) = &mock.stdout_string {
        let every = duration("stdout_repeat_duration", &mock.stdout_repeat_duration)
            .ok()
            .flatten()
            .unwrap_or_default();
        for _ in 0..mock.stdout_repeat {
            tokio::time::sleep(every).await;
            log.write(s.as_bytes()).await?;
        }
    }
    // The stderr log exists even when nothing is written to it, as for a real task.
    RotatingLog::open(&config.stderr_path, config.logs).await?;
    Ok(())
}

fn signal_number(name: &str) -> Result<i32, DriverError> {
    crate::driver::process::parse_signal(name).map(|signal| signal as i32)
}

#[async_trait]
impl TaskDriver for MockDriver {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            send_signals: true,
            exec: false,
            fs_isolation: FsIsolation::None,
            network_isolation_modes: vec![NetIsolationMode::Host, NetIsolationMode::Group],
            must_init_network: false,
            mount_configs: MountConfigSupport::All,
        }
    }

    async fn fingerprint(&self) -> Fingerprint {
        Fingerprint::healthy().with_attribute("driver.mock", "1")
    }

    fn config_schema(&self) -> ConfigSchema {
        ConfigSchema::new()
            .optional("run_for", FieldKind::Duration)
            .optional("exit_code", FieldKind::Integer)
            .optional("exit_signal", FieldKind::Integer)
            .optional("exit_err_msg", FieldKind::String)
            .optional("start_error", FieldKind::String)
            .optional("start_error_recoverable", FieldKind::Bool)
            .optional("start_block_for", FieldKind::Duration)
            .optional("kill_after", FieldKind::Duration)
            .optional("stdout_string", FieldKind::String)
            .optional("stdout_repeat", FieldKind::Integer)
            .optional("stdout_repeat_duration", FieldKind::Duration)
            .optional("stdout_env", FieldKind::String)
            .optional(
                "write_file",
                FieldKind::Block(
                    ConfigSchema::new()
                        .required("path", FieldKind::String)
                        .optional("content", FieldKind::String),
                ),
            )
            .optional("signal_error", FieldKind::String)
    }

    async fn start(&self, config: &TaskConfig) -> Result<StartedTask, DriverError> {
        self.validate_config(&config.driver_config)?;
        let mock = Self::decode(&config.driver_config)?;
        if let Some(block) = duration("start_block_for", &mock.start_block_for)? {
            tokio::time::sleep(block).await;
        }
        if let Some(message) = &mock.start_error {
            return Err(DriverError::StartFailed {
                task_id: config.id.clone(),
                reason: message.clone(),
                recoverable: mock.start_error_recoverable,
            });
        }
        let (control, control_rx) = mpsc::unbounded_channel();
        let (exit_tx, exit) = watch::channel(None);
        let proc = Arc::new(MockProc {
            config: config.clone(),
            mock: mock.clone(),
            started_at: SystemTime::now(),
            exit,
            control,
        });
        {
            let mut procs = self.host.lock();
            if procs.contains_key(&config.id) || self.tasks.insert(proc.clone()).is_err() {
                return Err(DriverError::TaskAlreadyExists {
                    task_id: config.id.clone(),
                });
            }
            procs.insert(config.id.clone(), proc);
        }
        tokio::spawn(run(config.clone(), mock, control_rx, exit_tx));
        self.events
            .emit(DriverEvent::new(config, "started mock task"));
        Ok(StartedTask {
            handle: TaskHandle::new(NAME, config.clone(), serde_json::json!({ "mock": true })),
            network: None,
        })
    }

    async fn wait(&self, task_id: &str) -> Result<ExitResult, DriverError> {
        self.tasks.get(task_id)?.wait_result(task_id).await
    }

    async fn stop(
        &self,
        task_id: &str,
        timeout: Duration,
        signal: &str,
    ) -> Result<(), DriverError> {
        let task = self.tasks.get(task_id)?;
        let name = stop_signal_name(&task.config, signal);
        let signal = signal_number(name)?;
        if task.exited().is_some() {
            return Ok(());
        }
        let _ = task.control.send(Control::Stop(signal));
        if task.wait_exit(timeout).await {
            return Ok(());
        }
        self.events.emit(DriverEvent::new(
            &task.config,
            "task did not exit in time; killing it",
        ));
        let _ = task.control.send(Control::Kill);
        task.wait_exit(Duration::from_secs(5)).await;
        Ok(())
    }

    async fn destroy(&self, task_id: &str, force: bool) -> Result<(), DriverError> {
        let Some(task) = self.tasks.find(task_id) else {
            return Ok(());
        };
        if task.exited().is_none() {
            if !force {
                return Err(DriverError::TaskRunning {
                    task_id: task_id.to_owned(),
                });
            }
            let _ = task.control.send(Control::Kill);
            task.wait_exit(Duration::from_secs(5)).await;
        }
        self.tasks.remove(task_id);
        self.host.lock().remove(task_id);
        Ok(())
    }

    async fn inspect(&self, task_id: &str) -> Result<TaskStatus, DriverError> {
        Ok(self.tasks.get(task_id)?.status())
    }

    async fn recover(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        if handle.driver != NAME {
            return Err(DriverError::InvalidHandle {
                reason: format!("the handle was made by driver {:?}", handle.driver),
            });
        }
        let id = &handle.config.id;
        if self.tasks.contains(id) {
            return Ok(());
        }
        let proc = self.host.lock().get(id).cloned();
        match proc {
            Some(proc) if proc.exited().is_none() => {
                // A concurrent recovery of the same task may have tracked it first.
                let _ = self.tasks.insert(proc);
                Ok(())
            }
            _ => Err(DriverError::TaskGone {
                task_id: id.clone(),
                reason: "no such task runs on the mock host".into(),
            }),
        }
    }

    async fn stats(&self, task_id: &str) -> Result<TaskResourceUsage, DriverError> {
        let task = self.tasks.get(task_id)?;
        if task.exited().is_some() {
            return Err(DriverError::TaskGone {
                task_id: task_id.to_owned(),
                reason: "the task has exited".into(),
            });
        }
        Ok(TaskResourceUsage {
            timestamp: SystemTime::now(),
            cpu: Default::default(),
            memory: MemoryUsage {
                rss_bytes: 1 << 20,
                usage_bytes: 1 << 20,
                ..MemoryUsage::default()
            },
            pids: Some(1),
        })
    }

    fn events(&self, sink: Arc<dyn EventSink>) -> Result<(), DriverError> {
        self.events.subscribe(sink);
        Ok(())
    }

    async fn signal(&self, task_id: &str, signal: &str) -> Result<(), DriverError> {
        let task = self.tasks.get(task_id)?;
        signal_number(signal)?;
        if let Some(message) = &task.mock.signal_error {
            return Err(DriverError::other(
                format!("signalling task {task_id:?}"),
                message.clone(),
            ));
        }
        self.events.emit(
            DriverEvent::new(&task.config, format!("received {signal}"))
                .with_annotation("signal", signal),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(id: &str, driver_config: serde_json::Value) -> TaskConfig {
        TaskConfig {
            id: id.into(),
            task_name: "t".into(),
            driver_config,
            ..TaskConfig::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn runs_for_the_scripted_time_and_exits_with_the_scripted_code() {
        let driver = MockDriver::new();
        driver
            .start(&config("a", json!({"run_for": "30s", "exit_code": 4})))
            .await
            .unwrap();
        let begin = tokio::time::Instant::now();
        assert_eq!(driver.wait("a").await.unwrap(), ExitResult::code(4));
        assert_eq!(begin.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test]
    async fn start_error_fails_the_start() {
        let driver = MockDriver::new();
        let err = driver
            .start(&config(
                "a",
                json!({"start_error": "no luck", "start_error_recoverable": true}),
            ))
            .await
            .unwrap_err();
        assert!(
            matches!(err, DriverError::StartFailed { recoverable: true, ref reason, .. } if reason == "no luck")
        );
        assert!(matches!(
            driver.wait("a").await,
            Err(DriverError::TaskNotFound { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn kill_after_longer_than_the_timeout_is_killed() {
        let driver = MockDriver::new();
        driver
            .start(&config("a", json!({"kill_after": "1m"})))
            .await
            .unwrap();
        driver
            .stop("a", Duration::from_secs(5), "SIGINT")
            .await
            .unwrap();
        assert_eq!(driver.wait("a").await.unwrap().signal, Some(9));

        driver
            .start(&config("b", json!({"kill_after": "1s"})))
            .await
            .unwrap();
        driver
            .stop("b", Duration::from_secs(5), "SIGINT")
            .await
            .unwrap();
        assert_eq!(driver.wait("b").await.unwrap().signal, Some(2));
    }

    #[tokio::test]
    async fn signal_error_is_returned() {
        let driver = MockDriver::new();
        driver
            .start(&config("a", json!({"signal_error": "nope"})))
            .await
            .unwrap();
        assert!(driver
            .signal("a", "SIGHUP")
            .await
            .unwrap_err()
            .to_string()
            .contains("nope"));
        driver.destroy("a", true).await.unwrap();
    }
}
