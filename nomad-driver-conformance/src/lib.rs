//! A conformance kit that any task driver author runs against their driver.
//!
//! The [`TaskDriver`] contract says more than its signatures: a stopped task gets its signal
//! and is killed after the timeout, a handle recovers a task in a fresh driver, destroy is
//! idempotent, unknown tasks are refused with [`DriverError::TaskNotFound`], a misspelt config
//! field is named. [`Conformance`] checks these against a real driver with real tasks.
//!
//! A driver author supplies two things:
//!
//! * a factory that makes a fresh driver instance (the recovery check makes a second one, as
//!   a restarted agent would, after dropping the first);
//! * [`TaskRecipes`]: how to write, in the driver's own `config` block, a task that runs until
//!   stopped, one that ignores its stop signal, one that exits with a code, one that prints a
//!   text or an environment variable, one that writes a file.
//!
//! The kit makes every task's directories (Nomad's layout, in a temporary directory), sets
//! `NOMAD_ALLOC_DIR`, `NOMAD_TASK_DIR` and `NOMAD_SECRETS_DIR` as the task sees them (host paths
//! or `/alloc`, `/local`, `/secrets`, after [`Capabilities::fs_isolation`]) plus `PATH`, and
//! reads the task's output from `<stdout_path>.0`.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//!
//! use nomad_driver_conformance::{Conformance, TaskRecipes};
//! use serde_json::{json, Value};
//!
//! /// Tasks for a driver whose config is `{ "command": ..., "args": [...] }`.
//! struct ShellTasks;
//!
//! impl TaskRecipes for ShellTasks {
//!     fn runs_until_stopped(&self) -> Value {
//!         json!({ "command": "/bin/sh", "args": ["-c", "echo ready; exec sleep 600"] })
//!     }
//!     fn ignores_stop_signal(&self) -> Value {
//!         let script = "trap '' TERM INT; echo ready; while :; do sleep 0.1; done";
//!         json!({ "command": "/bin/sh", "args": ["-c", script] })
//!     }
//!     fn exits_with(&self, code: i32) -> Value {
//!         json!({ "command": "/bin/sh", "args": ["-c", format!("exit {code}")] })
//!     }
//!     fn prints(&self, text: &str) -> Value {
//!         json!({ "command": "/bin/sh", "args": ["-c", "printf %s \"$1\"", "sh", text] })
//!     }
//!     fn prints_env(&self, name: &str) -> Value {
//!         json!({ "command": "/usr/bin/printenv", "args": [name] })
//!     }
//!     fn writes_file(&self, dir_env: &str, file: &str, content: &str) -> Value {
//!         let script = "eval \"d=\\$$1\"; printf %s \"$3\" > \"$d/$2\"";
//!         json!({ "command": "/bin/sh", "args": ["-c", script, "sh", dir_env, file, content] })
//!     }
//! }
//!
//! # async fn doc() {
//! // In the driver's own test:
//! // let report = Conformance::new(|| Arc::new(MyDriver::new()) as _, ShellTasks).run().await;
//! // assert!(report.passed(), "{report}");
//! # }
//! ```
//!
//! See `examples/third_party_driver.rs` in the repository for a driver written outside the
//! client crate that passes the kit.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nomad_core::driver::{
    Capabilities, DriverError, ExitResult, HealthState, TaskConfig, TaskDirs, TaskDriver,
    TaskHandle, TaskResources, TaskState,
};
use serde_json::Value;

/// How to write, in a driver's own `config` block, the tasks the checks need.
///
/// Tasks that run until stopped must print the line `ready` to standard output once their
/// signal handling is in place: the kit waits for it before it signals them.
pub trait TaskRecipes: Send + Sync {
    /// A task that prints `ready`, then runs until it is stopped and exits when it receives
    /// `SIGTERM` (by dying of it, or by exiting on it).
    fn runs_until_stopped(&self) -> Value;

    /// A task that ignores `SIGTERM` and `SIGINT`, prints `ready`, and runs until killed.
    fn ignores_stop_signal(&self) -> Value;

    /// A task that exits at once with `code`.
    fn exits_with(&self, code: i32) -> Value;

    /// A task that writes `text` to standard output and exits with code 0.
    fn prints(&self, text: &str) -> Value;

    /// A task that writes the value of environment variable `name` to standard output and
    /// exits with code 0.
    fn prints_env(&self, name: &str) -> Value;

    /// A task that writes `content` to the file `file` in the directory named by environment
    /// variable `dir_env` (as `NOMAD_TASK_DIR`), then exits with code 0.
    fn writes_file(&self, dir_env: &str, file: &str, content: &str) -> Value;
}

/// Makes a fresh driver instance.
pub type DriverFactory = Arc<dyn Fn() -> Arc<dyn TaskDriver> + Send + Sync>;

/// One check of the kit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Check {
    /// The driver has a name and fingerprints healthy.
    Fingerprint,
    /// Every recipe's config validates; an unknown field is refused, by `validate_config` and
    /// by `start`, naming the field.
    ValidateConfig,
    /// A task exits with code 0 and one with code 3; `wait` reports it (to several callers),
    /// `inspect` shows the task exited.
    StartWaitExitCode,
    /// What a task writes to standard output reaches `<stdout_path>.0` once `wait` resolved.
    Output,
    /// The task sees its environment, and its local, alloc and secrets directories are the
    /// ones on the host.
    EnvAndDirs,
    /// `stop` delivers the signal: a task that exits on SIGTERM is not killed.
    StopWithSignal,
    /// `stop` kills a task that ignores its signal, after the timeout.
    StopEscalatesToKill,
    /// `destroy` refuses a running task without force, kills it with force, forgets it, and
    /// is idempotent.
    Destroy,
    /// A handle serialised as JSON recovers the task in a fresh driver instance, which can
    /// then stop it; recovering a task that is gone fails with `TaskGone`; another driver's
    /// handle is refused.
    Recover,
    /// `stats` reports memory for a running task, and refuses an exited one.
    Stats,
    /// Unknown task ids are refused with `TaskNotFound` (destroy succeeds).
    UnknownTask,
    /// Starting a task id twice fails with `TaskAlreadyExists`.
    DuplicateStart,
}

impl Check {
    /// Every check, in the order they are reported.
    pub const ALL: [Check; 12] = [
        Check::Fingerprint,
        Check::ValidateConfig,
        Check::StartWaitExitCode,
        Check::Output,
        Check::EnvAndDirs,
        Check::StopWithSignal,
        Check::StopEscalatesToKill,
        Check::Destroy,
        Check::Recover,
        Check::Stats,
        Check::UnknownTask,
        Check::DuplicateStart,
    ];

    /// The check's name, as `stop_escalates_to_kill`.
    pub fn name(self) -> &'static str {
        match self {
            Check::Fingerprint => "fingerprint",
            Check::ValidateConfig => "validate_config",
            Check::StartWaitExitCode => "start_wait_exit_code",
            Check::Output => "output",
            Check::EnvAndDirs => "env_and_dirs",
            Check::StopWithSignal => "stop_with_signal",
            Check::StopEscalatesToKill => "stop_escalates_to_kill",
            Check::Destroy => "destroy",
            Check::Recover => "recover",
            Check::Stats => "stats",
            Check::UnknownTask => "unknown_task",
            Check::DuplicateStart => "duplicate_start",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The outcome of every check that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The driver's name.
    pub driver: String,
    /// Each check with `Ok` or the reason it failed, in [`Check::ALL`] order.
    pub outcomes: Vec<(Check, Result<(), String>)>,
}

impl Report {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.outcomes.iter().all(|(_, outcome)| outcome.is_ok())
    }

    /// The checks that failed, with their reasons.
    pub fn failures(&self) -> Vec<(Check, &str)> {
        self.outcomes
            .iter()
            .filter_map(|(check, outcome)| outcome.as_ref().err().map(|e| (*check, e.as_str())))
            .collect()
    }
}

impl fmt::Display for Report {
    /// One line per check: `ok   recover` or `FAIL recover: <reason>`, then the tally.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "conformance of driver {:?}:", self.driver)?;
        for (check, outcome) in &self.outcomes {
            match outcome {
                Ok(()) => writeln!(f, "  ok   {check}")?,
                Err(reason) => writeln!(f, "  FAIL {check}: {reason}")?,
            }
        }
        let failed = self.failures().len();
        write!(
            f,
            "{} of {} checks passed",
            self.outcomes.len() - failed,
            self.outcomes.len()
        )
    }
}

/// The conformance kit for one driver.
#[derive(Clone)]
pub struct Conformance {
    factory: DriverFactory,
    recipes: Arc<dyn TaskRecipes>,
    stop_timeout: Duration,
    check_timeout: Duration,
}

impl fmt::Debug for Conformance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conformance")
            .field("stop_timeout", &self.stop_timeout)
            .field("check_timeout", &self.check_timeout)
            .finish_non_exhaustive()
    }
}

type CheckResult = Result<(), String>;

/// Turns a driver result into a check failure saying what was being done.
fn ctx<T>(what: &str, result: Result<T, DriverError>) -> Result<T, String> {
    result.map_err(|err| format!("{what}: {err}"))
}

fn ensure(condition: bool, message: impl FnOnce() -> String) -> CheckResult {
    if condition {
        Ok(())
    } else {
        Err(message())
    }
}

/// Whether a task ended by `signal`, as a signal or as a shell-style exit code `128 + n`.
fn ended_by(exit: &ExitResult, signal: i32) -> bool {
    exit.signal == Some(signal) || exit.exit_code == 128 + signal
}

const SIGKILL: i32 = 9;
const READY: &str = "ready";
const UNKNOWN_FIELD: &str = "conformance_unknown_field";

impl Conformance {
    /// The kit for drivers made by `factory`, running the tasks `recipes` describes.
    ///
    /// `factory` must return a new instance each call (not a shared one): the recovery check
    /// drops the first instance before it makes the second, and a dropped driver must leave
    /// its tasks running.
    pub fn new<F>(factory: F, recipes: impl TaskRecipes + 'static) -> Self
    where
        F: Fn() -> Arc<dyn TaskDriver> + Send + Sync + 'static,
    {
        Self {
            factory: Arc::new(factory),
            recipes: Arc::new(recipes),
            stop_timeout: Duration::from_secs(1),
            check_timeout: Duration::from_secs(60),
        }
    }

    /// The timeout given to `stop` when the kit expects escalation to SIGKILL (default 1 s).
    pub fn with_stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// How long one check may take before it fails (default 60 s).
    pub fn with_check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// Runs every check, concurrently, and reports each outcome.
    pub async fn run(&self) -> Report {
        self.run_checks(&Check::ALL).await
    }

    /// Runs the given checks, concurrently, and reports each outcome.
    pub async fn run_checks(&self, checks: &[Check]) -> Report {
        let driver = (self.factory)().name().to_owned();
        let mut set = tokio::task::JoinSet::new();
        for (index, check) in checks.iter().copied().enumerate() {
            let kit = self.clone();
            set.spawn(async move { (index, check, kit.run_check(check).await) });
        }
        let mut outcomes = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(outcome) => outcomes.push(outcome),
                Err(err) => outcomes.push((
                    usize::MAX,
                    Check::Fingerprint,
                    Err(format!("a check panicked: {err}")),
                )),
            }
        }
        outcomes.sort_by_key(|(index, _, _)| *index);
        Report {
            driver,
            outcomes: outcomes
                .into_iter()
                .map(|(_, check, outcome)| (check, outcome))
                .collect(),
        }
    }

    /// Runs one check.
    pub async fn run_check(&self, check: Check) -> CheckResult {
        let run = async {
            match check {
                Check::Fingerprint => self.fingerprint().await,
                Check::ValidateConfig => self.validate_config().await,
                Check::StartWaitExitCode => self.start_wait_exit_code().await,
                Check::Output => self.output().await,
                Check::EnvAndDirs => self.env_and_dirs().await,
                Check::StopWithSignal => self.stop_with_signal().await,
                Check::StopEscalatesToKill => self.stop_escalates_to_kill().await,
                Check::Destroy => self.destroy().await,
                Check::Recover => self.recover().await,
                Check::Stats => self.stats().await,
                Check::UnknownTask => self.unknown_task().await,
                Check::DuplicateStart => self.duplicate_start().await,
            }
        };
        match tokio::time::timeout(self.check_timeout, run).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("did not finish within {:?}", self.check_timeout)),
        }
    }

    /// Runs `body` with a fresh driver and a scratch area, then destroys every task it started.
    async fn with_driver<'a, F, Fut>(&'a self, check: Check, body: F) -> CheckResult
    where
        F: FnOnce(Arc<dyn TaskDriver>, Scratch) -> Fut,
        Fut: Future<Output = CheckResult> + 'a,
    {
        let driver = (self.factory)();
        let scratch = Scratch::new(check, driver.capabilities())?;
        let ids = scratch.ids.clone();
        let outcome = body(driver.clone(), scratch).await;
        for id in ids.lock().map(|ids| ids.clone()).unwrap_or_default() {
            let _ = driver.destroy(&id, true).await;
        }
        outcome
    }

    async fn fingerprint(&self) -> CheckResult {
        let driver = (self.factory)();
        ensure(!driver.name().is_empty(), || {
            "the driver's name is empty".into()
        })?;
        let print = driver.fingerprint().await;
        ensure(print.health == HealthState::Healthy, || {
            format!("fingerprint is {:?}: {}", print.health, print.description)
        })
    }

    async fn validate_config(&self) -> CheckResult {
        self.with_driver(Check::ValidateConfig, |driver, scratch| async move {
            let recipes = &self.recipes;
            let configs = [
                ("runs_until_stopped", recipes.runs_until_stopped()),
                ("ignores_stop_signal", recipes.ignores_stop_signal()),
                ("exits_with", recipes.exits_with(3)),
                ("prints", recipes.prints("x")),
                ("prints_env", recipes.prints_env("X")),
                ("writes_file", recipes.writes_file("NOMAD_TASK_DIR", "f", "x")),
            ];
            for (recipe, config) in &configs {
                ctx(&format!("validating the {recipe} recipe"), driver.validate_config(config))?;
            }
            let mut bad = recipes.runs_until_stopped();
            let Value::Object(map) = &mut bad else {
                return Err("the runs_until_stopped recipe is not a JSON object".into());
            };
            map.insert(UNKNOWN_FIELD.into(), Value::Bool(true));
            let names_field = |result: Result<(), DriverError>, what: &str| match result {
                Err(DriverError::InvalidConfig { field, .. }) if field.contains(UNKNOWN_FIELD) => Ok(()),
                Err(other) => Err(format!("{what} an unknown field: expected InvalidConfig naming {UNKNOWN_FIELD:?}, got: {other}")),
                Ok(()) => Err(format!("{what} an unknown field: accepted it")),
            };
            names_field(driver.validate_config(&bad), "validate_config with")?;
            let config = scratch.task_config("bad", bad)?;
            let started = driver.start(&config).await;
            if started.is_ok() {
                scratch.started(&config.id);
            }
            names_field(started.map(|_| ()), "start with")
        })
        .await
    }

    async fn start_wait_exit_code(&self) -> CheckResult {
        self.with_driver(Check::StartWaitExitCode, |driver, scratch| async move {
            for code in [0, 3] {
                let config =
                    scratch.task_config(&format!("exit{code}"), self.recipes.exits_with(code))?;
                scratch.start(&driver, &config).await?;
                let (first, second) =
                    tokio::join!(driver.wait(&config.id), driver.wait(&config.id));
                let exit = ctx("wait", first)?;
                ensure(exit.exit_code == code && exit.signal.is_none(), || {
                    format!("expected exit code {code}, wait reported {exit:?}")
                })?;
                ensure(ctx("a second concurrent wait", second)? == exit, || {
                    "two waits on one task reported different results".into()
                })?;
                ensure(code != 0 || exit.successful(), || {
                    format!("exit code 0 is not successful: {exit:?}")
                })?;
                let later = ctx("wait after the exit", driver.wait(&config.id).await)?;
                ensure(later == exit, || {
                    format!("wait after the exit reported {later:?}, before {exit:?}")
                })?;
                let status = ctx("inspect", driver.inspect(&config.id).await)?;
                ensure(status.state == TaskState::Exited, || {
                    format!("inspect after the exit says {:?}", status.state)
                })?;
                ensure(status.id == config.id, || {
                    format!("inspect reports id {:?}", status.id)
                })?;
                if let Some(result) = &status.exit_result {
                    ensure(result.exit_code == code, || {
                        format!("inspect reports exit {result:?}, expected code {code}")
                    })?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn output(&self) -> CheckResult {
        self.with_driver(Check::Output, |driver, scratch| async move {
            let text = "conformance output: hello";
            let config = scratch.task_config("print", self.recipes.prints(text))?;
            scratch.start(&driver, &config).await?;
            let exit = ctx("wait", driver.wait(&config.id).await)?;
            ensure(exit.successful(), || {
                format!("the printing task failed: {exit:?}")
            })?;
            let stdout = read_log(&config.stdout_path);
            ensure(stdout.contains(text), || {
                format!(
                    "{} holds {stdout:?}, expected it to contain {text:?}",
                    log_file(&config.stdout_path).display()
                )
            })
        })
        .await
    }

    async fn env_and_dirs(&self) -> CheckResult {
        self.with_driver(Check::EnvAndDirs, |driver, scratch| async move {
            let marker = format!("marker-{}", unique());
            let mut config =
                scratch.task_config("env", self.recipes.prints_env("CONFORMANCE_MARKER"))?;
            config
                .env
                .insert("CONFORMANCE_MARKER".into(), marker.clone());
            scratch.start(&driver, &config).await?;
            ctx("wait", driver.wait(&config.id).await)?;
            let stdout = read_log(&config.stdout_path);
            ensure(stdout.contains(&marker), || {
                format!("the task printed {stdout:?} for CONFORMANCE_MARKER, expected {marker:?}")
            })?;

            for (dir_env, pick) in [
                (
                    "NOMAD_TASK_DIR",
                    (|d: &TaskDirs| d.local_dir.clone()) as fn(&TaskDirs) -> PathBuf,
                ),
                ("NOMAD_ALLOC_DIR", |d: &TaskDirs| d.shared_dir.clone()),
                ("NOMAD_SECRETS_DIR", |d: &TaskDirs| d.secrets_dir.clone()),
            ] {
                let name = format!("seen-{}", dir_env.to_ascii_lowercase());
                let content = format!("written through {dir_env}");
                let config = scratch.task_config(
                    &format!("write-{}", dir_env.to_ascii_lowercase()),
                    self.recipes.writes_file(dir_env, &name, &content),
                )?;
                scratch.start(&driver, &config).await?;
                let exit = ctx("wait", driver.wait(&config.id).await)?;
                ensure(exit.successful(), || {
                    format!("the task writing through {dir_env} failed: {exit:?}")
                })?;
                let path = pick(&config.dirs).join(&name);
                let found = std::fs::read_to_string(&path).unwrap_or_default();
                ensure(found == content, || {
                    format!(
                        "after writing through {dir_env}, {} holds {found:?}",
                        path.display()
                    )
                })?;
            }
            Ok(())
        })
        .await
    }

    async fn stop_with_signal(&self) -> CheckResult {
        self.with_driver(Check::StopWithSignal, |driver, scratch| async move {
            let config = scratch.task_config("stop", self.recipes.runs_until_stopped())?;
            scratch.start_ready(&driver, &config).await?;
            let status = ctx("inspect", driver.inspect(&config.id).await)?;
            ensure(status.state == TaskState::Running, || {
                format!("inspect of a running task says {:?}", status.state)
            })?;
            // A long timeout: a task that receives SIGTERM exits well before it.
            ctx(
                "stop",
                driver
                    .stop(&config.id, Duration::from_secs(30), "SIGTERM")
                    .await,
            )?;
            let exit = ctx("wait after stop", driver.wait(&config.id).await)?;
            ensure(!ended_by(&exit, SIGKILL), || {
                format!("the task was killed ({exit:?}): SIGTERM did not reach it")
            })?;
            let status = ctx("inspect", driver.inspect(&config.id).await)?;
            ensure(status.state == TaskState::Exited, || {
                format!("inspect after stop says {:?}", status.state)
            })?;
            ctx(
                "stop of an exited task",
                driver
                    .stop(&config.id, Duration::from_secs(1), "SIGTERM")
                    .await,
            )
        })
        .await
    }

    async fn stop_escalates_to_kill(&self) -> CheckResult {
        self.with_driver(Check::StopEscalatesToKill, |driver, scratch| async move {
            let config = scratch.task_config("stubborn", self.recipes.ignores_stop_signal())?;
            scratch.start_ready(&driver, &config).await?;
            let began = Instant::now();
            ctx("stop", driver.stop(&config.id, self.stop_timeout, "SIGTERM").await)?;
            let took = began.elapsed();
            ensure(took >= self.stop_timeout, || {
                format!("stop returned after {took:?}, before its timeout of {:?}", self.stop_timeout)
            })?;
            let exit = ctx("wait after stop", driver.wait(&config.id).await)?;
            ensure(ended_by(&exit, SIGKILL), || {
                format!("a task ignoring SIGTERM should have been killed with SIGKILL, wait reported {exit:?}")
            })?;
            ensure(!exit.successful(), || "a killed task is reported successful".into())
        })
        .await
    }

    async fn destroy(&self) -> CheckResult {
        self.with_driver(Check::Destroy, |driver, scratch| async move {
            let config = scratch.task_config("destroy", self.recipes.runs_until_stopped())?;
            scratch.start_ready(&driver, &config).await?;
            match driver.destroy(&config.id, false).await {
                Err(DriverError::TaskRunning { .. }) => {}
                other => {
                    return Err(format!(
                    "destroy without force of a running task: expected TaskRunning, got {other:?}"
                ))
                }
            }
            ctx("destroy with force", driver.destroy(&config.id, true).await)?;
            expect_not_found("inspect after destroy", driver.inspect(&config.id).await)?;
            expect_not_found("wait after destroy", driver.wait(&config.id).await)?;
            ctx("a second destroy", driver.destroy(&config.id, true).await)?;

            let config = scratch.task_config("exited", self.recipes.exits_with(0))?;
            scratch.start(&driver, &config).await?;
            ctx("wait", driver.wait(&config.id).await)?;
            ctx(
                "destroy without force of an exited task",
                driver.destroy(&config.id, false).await,
            )?;
            expect_not_found("inspect after destroy", driver.inspect(&config.id).await)
        })
        .await
    }

    async fn recover(&self) -> CheckResult {
        let first = (self.factory)();
        let scratch = Scratch::new(Check::Recover, first.capabilities())?;
        let config = scratch.task_config("recover", self.recipes.runs_until_stopped())?;
        let started = scratch.start_ready_handle(&first, &config).await?;
        let saved = serde_json::to_string(&started.handle)
            .map_err(|err| format!("the task handle does not serialise: {err}"))?;
        // The agent goes away; its tasks go on.
        drop(first);

        let second = (self.factory)();
        let outcome = async {
            let handle: TaskHandle = serde_json::from_str(&saved)
                .map_err(|err| format!("the serialised task handle does not read back: {err}"))?;
            ctx("recover in a fresh driver", second.recover(&handle).await)?;
            ctx(
                "recovering the same task again",
                second.recover(&handle).await,
            )?;
            let status = ctx(
                "inspect of the recovered task",
                second.inspect(&config.id).await,
            )?;
            ensure(status.state == TaskState::Running, || {
                format!("inspect of the recovered task says {:?}", status.state)
            })?;
            ctx(
                "stop of the recovered task",
                second
                    .stop(&config.id, Duration::from_secs(30), "SIGTERM")
                    .await,
            )?;
            ctx("wait on the recovered task", second.wait(&config.id).await)?;
            ctx(
                "destroy of the recovered task",
                second.destroy(&config.id, true).await,
            )?;

            let third = (self.factory)();
            match third.recover(&handle).await {
                Err(DriverError::TaskGone { .. }) => {}
                other => {
                    return Err(format!(
                        "recovering a task that is gone: expected TaskGone, got {other:?}"
                    ))
                }
            }
            let mut foreign = handle.clone();
            foreign.driver = format!("not-{}", handle.driver);
            match third.recover(&foreign).await {
                Err(DriverError::InvalidHandle { .. }) => Ok(()),
                other => Err(format!(
                    "recovering another driver's handle: expected InvalidHandle, got {other:?}"
                )),
            }
        }
        .await;
        let _ = second.destroy(&config.id, true).await;
        outcome
    }

    async fn stats(&self) -> CheckResult {
        self.with_driver(Check::Stats, |driver, scratch| async move {
            let config = scratch.task_config("stats", self.recipes.runs_until_stopped())?;
            scratch.start_ready(&driver, &config).await?;
            let usage = ctx("stats of a running task", driver.stats(&config.id).await)?;
            ensure(
                usage.memory.rss_bytes > 0 || usage.memory.usage_bytes > 0,
                || format!("stats of a running task report no memory: {usage:?}"),
            )?;
            ensure(usage.timestamp > UNIX_EPOCH, || {
                "stats have no timestamp".into()
            })?;
            ctx(
                "stop",
                driver
                    .stop(&config.id, Duration::from_secs(30), "SIGTERM")
                    .await,
            )?;
            ctx("wait", driver.wait(&config.id).await)?;
            match driver.stats(&config.id).await {
                Err(DriverError::TaskGone { .. } | DriverError::TaskNotFound { .. }) => Ok(()),
                other => Err(format!(
                    "stats of an exited task: expected TaskGone, got {other:?}"
                )),
            }
        })
        .await
    }

    async fn unknown_task(&self) -> CheckResult {
        let driver = (self.factory)();
        let id = format!("conformance-no-such-task-{}", unique());
        expect_not_found("wait", driver.wait(&id).await)?;
        expect_not_found("inspect", driver.inspect(&id).await)?;
        expect_not_found(
            "stop",
            driver.stop(&id, Duration::from_secs(1), "SIGTERM").await,
        )?;
        expect_not_found("stats", driver.stats(&id).await)?;
        ctx(
            "destroy of an unknown task",
            driver.destroy(&id, true).await,
        )?;
        let signalled = driver.signal(&id, "SIGHUP").await;
        if driver.capabilities().send_signals {
            expect_not_found("signal", signalled)
        } else {
            match signalled {
                Err(DriverError::Unsupported { .. }) => Ok(()),
                other => Err(format!("signal without the send_signals capability: expected Unsupported, got {other:?}")),
            }
        }
    }

    async fn duplicate_start(&self) -> CheckResult {
        self.with_driver(Check::DuplicateStart, |driver, scratch| async move {
            let config = scratch.task_config("twice", self.recipes.runs_until_stopped())?;
            scratch.start(&driver, &config).await?;
            match driver.start(&config).await {
                Err(DriverError::TaskAlreadyExists { .. }) => Ok(()),
                other => Err(format!(
                    "a second start of one task id: expected TaskAlreadyExists, got {other:?}"
                )),
            }
        })
        .await
    }
}

fn expect_not_found<T: fmt::Debug>(what: &str, result: Result<T, DriverError>) -> CheckResult {
    match result {
        Err(DriverError::TaskNotFound { .. }) => Ok(()),
        other => Err(format!(
            "{what} of an unknown task: expected TaskNotFound, got {other:?}"
        )),
    }
}

/// A number no other task of this process (nor, very likely, of another) has used.
fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{:x}{:08x}{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn log_file(base: &Path) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(".0");
    PathBuf::from(name)
}

fn read_log(base: &Path) -> String {
    std::fs::read_to_string(log_file(base)).unwrap_or_default()
}

/// The temporary directories of one check and the tasks it started.
struct Scratch {
    dir: tempfile::TempDir,
    check: Check,
    capabilities: Capabilities,
    ids: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Scratch {
    fn new(check: Check, capabilities: Capabilities) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("nomad-conformance-")
            .tempdir()
            .map_err(|err| format!("making a temporary directory: {err}"))?;
        Ok(Self {
            dir,
            check,
            capabilities,
            ids: Arc::default(),
        })
    }

    /// A task config in its own allocation directory, with the directories made.
    fn task_config(&self, task: &str, driver_config: Value) -> Result<TaskConfig, String> {
        let alloc_id = format!("{}-{}", self.check.name().replace('_', "-"), unique());
        let dirs = TaskDirs::new(self.dir.path().join(&alloc_id), task);
        for dir in dirs.all() {
            std::fs::create_dir_all(dir)
                .map_err(|err| format!("making {}: {err}", dir.display()))?;
        }
        let view = self.capabilities.fs_isolation.task_view(&dirs);
        let mut env = BTreeMap::new();
        env.insert(
            "PATH".to_owned(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        );
        env.insert(
            "NOMAD_ALLOC_DIR".to_owned(),
            view.alloc_dir.to_string_lossy().into_owned(),
        );
        env.insert(
            "NOMAD_TASK_DIR".to_owned(),
            view.local_dir.to_string_lossy().into_owned(),
        );
        env.insert(
            "NOMAD_SECRETS_DIR".to_owned(),
            view.secrets_dir.to_string_lossy().into_owned(),
        );
        env.insert("NOMAD_ALLOC_ID".to_owned(), alloc_id.clone());
        env.insert("NOMAD_TASK_NAME".to_owned(), task.to_owned());
        Ok(TaskConfig {
            id: format!("{alloc_id}/{task}/{}", unique()),
            alloc_id,
            job_id: "conformance".into(),
            job_name: "conformance".into(),
            namespace: "default".into(),
            group_name: "group".into(),
            task_name: task.into(),
            driver_config,
            env,
            resources: TaskResources {
                cpu_shares: 100,
                memory_mb: 128,
                ..TaskResources::default()
            },
            stdout_path: dirs.log_dir.join(format!("{task}.stdout")),
            stderr_path: dirs.log_dir.join(format!("{task}.stderr")),
            dirs,
            kill_timeout: Duration::from_secs(5),
            ..TaskConfig::default()
        })
    }

    fn started(&self, id: &str) {
        if let Ok(mut ids) = self.ids.lock() {
            ids.push(id.to_owned());
        }
    }

    async fn start(
        &self,
        driver: &Arc<dyn TaskDriver>,
        config: &TaskConfig,
    ) -> Result<nomad_core::driver::StartedTask, String> {
        let started = ctx(
            &format!("start of task {:?}", config.task_name),
            driver.start(config).await,
        )?;
        self.started(&config.id);
        ensure(started.handle.config.id == config.id, || {
            format!(
                "the handle names task {:?}, not {:?}",
                started.handle.config.id, config.id
            )
        })?;
        Ok(started)
    }

    async fn start_ready(&self, driver: &Arc<dyn TaskDriver>, config: &TaskConfig) -> CheckResult {
        self.start_ready_handle(driver, config).await.map(|_| ())
    }

    /// Starts a task and waits until it printed `ready`.
    async fn start_ready_handle(
        &self,
        driver: &Arc<dyn TaskDriver>,
        config: &TaskConfig,
    ) -> Result<nomad_core::driver::StartedTask, String> {
        let started = self.start(driver, config).await?;
        loop {
            if read_log(&config.stdout_path).contains(READY) {
                return Ok(started);
            }
            let status = ctx(
                "inspect while waiting for ready",
                driver.inspect(&config.id).await,
            )?;
            if status.state == TaskState::Exited {
                return Err(format!(
                    "task {:?} exited before printing {READY:?}: {:?}",
                    config.task_name, status.exit_result
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
