//! The task runner: one task of an allocation from `Received` to `dead`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nomad_core::driver::{
    DriverError, ExitResult, LogConfig, PortMapping, TaskConfig, TaskDirs, TaskDriver,
    TaskResources,
};
use nomad_core::env::{interpolate_task, TaskEnv, TaskEnvBuilder};
use nomad_core::job::Task;
use nomad_core::structs::status::{TASK_DEAD, TASK_PENDING, TASK_RUNNING};
use nomad_core::structs::{Allocation, Node, TaskEvent, TaskState};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tracing::Instrument;

use crate::driver_set::DriverSet;
use crate::events::{self, *};
use crate::hooks::{
    run_phase, ExitedRequest, HookError, HookState, Phase, PhaseRun, TaskContext, TaskHook,
};
use crate::restart::{RestartDecision, RestartSettings, RestartTracker};
use crate::state::{LocalTaskState, StateStore};

/// How many events a task state keeps, as in Nomad.
const MAX_EVENTS: usize = 10;

/// Host environment variables never passed to tasks (Nomad's default `env.denylist`).
const ENV_DENYLIST: &[&str] = &[
    "CONSUL_TOKEN",
    "CONSUL_HTTP_TOKEN",
    "VAULT_TOKEN",
    "NOMAD_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "GOOGLE_APPLICATION_CREDENTIALS",
];

#[derive(Debug)]
pub(crate) enum TaskCommand {
    Kill(Option<TaskEvent>),
    Restart(String),
    Signal(String),
    Update(Arc<Allocation>),
    Shutdown,
}

/// Asks a task runner to restart, signal or kill its task. Cheap to clone; requests made
/// after the task is dead are ignored.
#[derive(Debug, Clone)]
pub struct TaskControl {
    tx: mpsc::UnboundedSender<TaskCommand>,
}

impl TaskControl {
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<TaskCommand>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }

    /// Restarts the task (not counted against the restart policy).
    pub fn restart(&self, reason: &str) {
        let _ = self.tx.send(TaskCommand::Restart(reason.to_owned()));
    }

    /// Sends `signal` (as `SIGHUP`) to the task.
    pub fn signal(&self, signal: &str) {
        let _ = self.tx.send(TaskCommand::Signal(signal.to_owned()));
    }

    /// Kills the task; `reason` is emitted first (as `Sibling Task Failed`).
    pub fn kill(&self, reason: Option<TaskEvent>) {
        let _ = self.tx.send(TaskCommand::Kill(reason));
    }

    pub(crate) fn update(&self, alloc: Arc<Allocation>) {
        let _ = self.tx.send(TaskCommand::Update(alloc));
    }

    pub(crate) fn shutdown(&self) {
        let _ = self.tx.send(TaskCommand::Shutdown);
    }
}

/// Everything a task runner is made of.
pub(crate) struct TaskRunner {
    pub(crate) alloc: Arc<Allocation>,
    pub(crate) node: Arc<Node>,
    pub(crate) task: Task,
    pub(crate) alloc_dir: PathBuf,
    pub(crate) ports: Vec<PortMapping>,
    pub(crate) drivers: Arc<DriverSet>,
    pub(crate) hooks: Vec<Arc<dyn TaskHook>>,
    pub(crate) states: watch::Sender<BTreeMap<String, TaskState>>,
    pub(crate) handles: watch::Sender<BTreeMap<String, Option<nomad_core::driver::TaskHandle>>>,
    pub(crate) events: broadcast::Sender<(String, TaskEvent)>,
    pub(crate) store: Option<StateStore>,
    pub(crate) local: LocalTaskState,
    pub(crate) gate: watch::Receiver<bool>,
    pub(crate) commands: mpsc::UnboundedReceiver<TaskCommand>,
    pub(crate) control: TaskControl,
}

enum Ended {
    /// The task is dead: killed, completed or failed.
    Dead,
    /// The agent shuts down; the task keeps running.
    Detached,
}

fn rfc3339_now() -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    // Seconds and nanoseconds since the epoch, in a sortable RFC 3339 form (UTC).
    let secs = now.as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        now.subsec_nanos()
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

static NEXT_TASK_ID: AtomicU64 = AtomicU64::new(1);

fn new_task_id(alloc_id: &str, task: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = NEXT_TASK_ID.fetch_add(1, Ordering::Relaxed);
    format!("{alloc_id}/{task}/{:08x}{n:x}", nanos ^ std::process::id())
}

fn seed_of(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl TaskRunner {
    fn scope(&self) -> String {
        format!("{}/{}", self.alloc.id, self.task.name)
    }

    /// Persists the task's state, then shows it to observers: what they see has been
    /// saved, so an agent killed right after it recovers the same thing.
    async fn publish(&mut self) {
        let name = self.task.name.clone();
        if let Some(store) = &self.store {
            if let Err(e) = store.put_task(&self.alloc.id, &name, &self.local).await {
                tracing::warn!(task = %self.scope(), error = %e, "persisting task state failed");
            }
        }
        let handle = self.local.handle.clone();
        self.handles.send_modify(|m| {
            m.insert(name.clone(), handle);
        });
        let state = self.local.state.clone();
        self.states.send_modify(|m| {
            m.insert(name.clone(), state);
        });
    }

    async fn emit(&mut self, event: TaskEvent) {
        if event.fails_task {
            self.local.state.failed = true;
        }
        tracing::info!(task = %self.scope(), event = %event.event_type, message = %event.display_message, "task event");
        let _ = self.events.send((self.task.name.clone(), event.clone()));
        let events = &mut self.local.state.events;
        events.push(event);
        if events.len() > MAX_EVENTS {
            let extra = events.len() - MAX_EVENTS;
            events.drain(..extra);
        }
        self.publish().await;
    }

    async fn set_state(&mut self, state: &str, event: Option<TaskEvent>) {
        self.local.state.state = state.to_owned();
        if state == TASK_DEAD && self.local.state.finished_at.is_none() {
            self.local.state.finished_at = Some(rfc3339_now());
        }
        match event {
            Some(e) => self.emit(e).await,
            None => self.publish().await,
        }
    }

    fn dirs(&self) -> TaskDirs {
        TaskDirs::new(&self.alloc_dir, &self.task.name)
    }

    fn env_builder(&self, driver: &Arc<dyn TaskDriver>) -> Result<TaskEnvBuilder, String> {
        let mut builder = TaskEnvBuilder::new(&self.alloc, &self.task.name, &self.node)
            .map_err(|e| e.to_string())?;
        builder.dirs(&driver.capabilities().fs_isolation.task_view(&self.dirs()));
        builder.host_env(std::env::vars().filter(|(k, _)| !ENV_DENYLIST.contains(&k.as_str())));
        Ok(builder)
    }

    fn apply_hook_env(builder: &mut TaskEnvBuilder, hook: &str, env: BTreeMap<String, String>) {
        if env.is_empty() {
            return;
        }
        if hook == "templates" {
            builder.template_env(env);
        } else {
            builder.hook_env(hook, env);
        }
    }

    fn interpolated(&self, env: &TaskEnv) -> Task {
        let mut task = self.task.clone();
        interpolate_task(&mut task, env);
        task
    }

    fn context(
        &self,
        driver: &Arc<dyn TaskDriver>,
        env: TaskEnv,
        task_id: Option<String>,
    ) -> TaskContext {
        TaskContext {
            alloc: self.alloc.clone(),
            node: self.node.clone(),
            task: self.interpolated(&env),
            dirs: self.dirs(),
            env,
            ports: self.ports.clone(),
            driver: driver.clone(),
            task_id,
            control: self.control.clone(),
        }
    }

    /// The environment from the builder plus the env every finished hook saved.
    fn saved_env(&self, mut builder: TaskEnvBuilder) -> TaskEnv {
        for (name, hook) in &self.local.hooks {
            Self::apply_hook_env(&mut builder, name, hook.env.clone());
        }
        builder.build()
    }

    fn task_config(&self, ctx: &TaskContext) -> TaskConfig {
        let dirs = ctx.dirs.clone();
        let resources = self
            .alloc
            .allocated_resources
            .as_ref()
            .and_then(|r| r.tasks.get(&self.task.name))
            .map(|r| TaskResources {
                cpu_shares: r.cpu.cpu_shares,
                reserved_cores: r.cpu.reserved_cores.clone(),
                memory_mb: r.memory.memory_mb,
                memory_max_mb: r.memory.memory_max_mb,
            })
            .unwrap_or_default();
        let logs = ctx
            .task
            .log_config
            .as_ref()
            .map(|l| LogConfig {
                max_files: l.max_files.unwrap_or(10),
                max_file_size_mb: u64::from(l.max_file_size_mb.unwrap_or(10)),
            })
            .unwrap_or_default();
        TaskConfig {
            id: new_task_id(&self.alloc.id, &self.task.name),
            alloc_id: self.alloc.id.to_string(),
            job_id: self.alloc.job_id.to_string(),
            job_name: self
                .alloc
                .job
                .as_ref()
                .map(|j| j.name.clone())
                .unwrap_or_default(),
            namespace: self.alloc.namespace.to_string(),
            group_name: self.alloc.task_group.to_string(),
            task_name: self.task.name.clone(),
            user: (!ctx.task.user.is_empty()).then(|| ctx.task.user.clone()),
            driver_config: serde_json::Value::Object(ctx.task.config.clone().into_iter().collect()),
            env: ctx.env.env().clone(),
            resources,
            stdout_path: dirs.log_dir.join(format!("{}.stdout", self.task.name)),
            stderr_path: dirs.log_dir.join(format!("{}.stderr", self.task.name)),
            dirs,
            logs,
            kill_signal: (!ctx.task.kill_signal.is_empty()).then(|| ctx.task.kill_signal.clone()),
            kill_timeout: self.kill_timeout(),
            ports: self.ports.clone(),
            network_isolation: None,
        }
    }

    fn kill_timeout(&self) -> Duration {
        self.task
            .kill_timeout
            .map(|d| Duration::from_nanos(d.as_nanos()))
            .unwrap_or(Duration::from_secs(5))
    }

    fn restart_tracker(&self) -> RestartTracker {
        let job_type = self
            .alloc
            .job
            .as_ref()
            .map(|j| j.job_type.clone())
            .unwrap_or_default();
        let group = self.alloc.group().and_then(|g| g.restart_policy.as_ref());
        let settings = RestartSettings::resolve(
            self.task.restart_policy.as_ref(),
            group,
            job_type.as_deref().unwrap_or_default(),
        );
        RestartTracker::new(
            settings,
            job_type.as_deref().unwrap_or_default(),
            self.task.lifecycle.as_ref(),
            seed_of(&self.scope()),
        )
    }

    /// Runs the task to its end.
    pub(crate) async fn run(mut self) {
        if self.local.state.state == TASK_DEAD {
            self.publish().await;
            return;
        }
        let fresh = self.local.state.state.is_empty();
        if fresh {
            self.local.state.state = TASK_PENDING.to_owned();
            self.emit(events::event(TASK_RECEIVED)).await;
        } else {
            self.publish().await;
        }
        let driver = match self.drivers.usable(&self.task.driver) {
            Ok(d) => d,
            Err(msg) => {
                self.local.handle = None;
                self.set_state(TASK_DEAD, Some(failure(TASK_DRIVER_FAILURE, msg)))
                    .await;
                return;
            }
        };
        let config = serde_json::Value::Object(self.task.config.clone().into_iter().collect());
        if let Err(e) = driver.validate_config(&config) {
            self.set_state(
                TASK_DEAD,
                Some(failure(TASK_FAILED_VALIDATION, e.to_string())),
            )
            .await;
            return;
        }
        match self.run_loop(driver.clone()).await {
            Ended::Detached => {}
            Ended::Dead => {
                let builder = self.env_builder(&driver);
                if let Ok(builder) = builder {
                    let ctx = self.context(&driver, self.saved_env(builder), None);
                    let _ = run_phase(
                        Phase::Stop,
                        &self.scope(),
                        &self.hooks,
                        |h: Arc<dyn TaskHook>| {
                            let ctx = &ctx;
                            async move { h.stop(ctx).await }
                        },
                    )
                    .await;
                }
                self.local.handle = None;
                self.set_state(TASK_DEAD, None).await;
            }
        }
    }

    /// Waits for the start gate; `Some` when the task ended before it opened.
    async fn wait_gate(&mut self) -> Option<Ended> {
        loop {
            if *self.gate.borrow_and_update() {
                return None;
            }
            tokio::select! {
                changed = self.gate.changed() => {
                    if changed.is_err() {
                        return Some(Ended::Dead);
                    }
                }
                cmd = self.commands.recv() => match cmd {
                    Some(TaskCommand::Kill(reason)) => {
                        if let Some(e) = reason {
                            self.emit(e).await;
                        }
                        return Some(Ended::Dead);
                    }
                    None => return Some(Ended::Dead),
                    Some(TaskCommand::Shutdown) => return Some(Ended::Detached),
                    Some(_) => {}
                }
            }
        }
    }

    /// Applies the restart policy to an exit: `None` when the task is to start again
    /// (after the policy's delay), the way the runner ends otherwise.
    async fn apply_restart_policy(
        &mut self,
        tracker: &mut RestartTracker,
        exit: &ExitResult,
    ) -> Option<Ended> {
        match tracker.on_exit(exit, Instant::now()) {
            RestartDecision::Restart { delay, reason } => {
                self.local.state.restarts += 1;
                self.local.state.last_restart = Some(rfc3339_now());
                self.set_state(TASK_PENDING, Some(restarting(&reason, delay)))
                    .await;
                self.restart_delay(delay).await
            }
            RestartDecision::Fail { reason } => {
                self.emit(not_restarting(&reason)).await;
                Some(Ended::Dead)
            }
            RestartDecision::Complete => Some(Ended::Dead),
        }
    }

    /// Sleeps out a restart delay; `Some` when the task ended meanwhile.
    async fn restart_delay(&mut self, delay: Duration) -> Option<Ended> {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return None,
                cmd = self.commands.recv() => match cmd {
                    Some(TaskCommand::Kill(reason)) => {
                        if let Some(e) = reason {
                            self.emit(e).await;
                        }
                        return Some(Ended::Dead);
                    }
                    None => return Some(Ended::Dead),
                    Some(TaskCommand::Shutdown) => return Some(Ended::Detached),
                    Some(_) => {}
                }
            }
        }
    }

    /// Runs the prestart hooks; returns the context the task starts with.
    async fn prestart(&mut self, driver: &Arc<dyn TaskDriver>) -> Result<TaskContext, HookError> {
        let mut builder = self.env_builder(driver).map_err(HookError::fatal)?;
        let mut ctx = self.context(driver, builder.build(), None);
        let hooks = self.hooks.clone();
        let scope = self.scope();
        let mut saved = std::mem::take(&mut self.local.hooks);
        let raw = self.task.clone();
        let mut run = PhaseRun::new(Phase::Prestart, &scope);
        for hook in &hooks {
            let name = hook.name().to_owned();
            let previous = saved.get(&name).cloned();
            let env = match &previous {
                Some(p) if p.done => Ok(p.env.clone()),
                _ => {
                    let span = run.span(&name);
                    match hook
                        .prestart(&ctx, previous.as_ref())
                        .instrument(span)
                        .await
                    {
                        Ok(response) => {
                            saved.insert(
                                name.clone(),
                                HookState {
                                    done: response.done,
                                    env: response.env.clone(),
                                    data: response.state,
                                },
                            );
                            Ok(response.env)
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            let env = match env {
                Ok(env) => env,
                Err(e) => {
                    if !run.record(&name, Err(e)) {
                        break;
                    }
                    continue;
                }
            };
            if !env.is_empty() {
                Self::apply_hook_env(&mut builder, &name, env);
                ctx.env = builder.build();
                let mut task = raw.clone();
                interpolate_task(&mut task, &ctx.env);
                ctx.task = task;
            }
        }
        let result = run.finish();
        self.local.hooks = saved;
        match result {
            Ok(()) => Ok(ctx),
            Err(e) => Err(HookError {
                recoverable: e.recoverable(),
                message: e.to_string(),
            }),
        }
    }

    async fn hooks_after_start(&mut self, ctx: &TaskContext) {
        let result = run_phase(
            Phase::Poststart,
            &self.scope(),
            &self.hooks,
            |h: Arc<dyn TaskHook>| async move { h.poststart(ctx).await },
        )
        .await;
        if let Err(e) = result {
            self.emit(with_message(TASK_HOOK_FAILED, e.to_string()))
                .await;
        }
    }

    async fn hooks_exited(&mut self, ctx: &TaskContext, exit: &ExitResult) {
        let request = ExitedRequest { exit: exit.clone() };
        let _ = run_phase(
            Phase::Exited,
            &self.scope(),
            &self.hooks,
            |h: Arc<dyn TaskHook>| {
                let request = &request;
                async move { h.exited(ctx, request).await }
            },
        )
        .await;
    }

    /// Stops the running task after its pre_kill hooks; returns how it ended.
    async fn stop_task(
        &mut self,
        driver: &Arc<dyn TaskDriver>,
        ctx: &TaskContext,
        task_id: &str,
    ) -> ExitResult {
        let timeout = self.kill_timeout();
        let _ = run_phase(
            Phase::TaskPreKill,
            &self.scope(),
            &self.hooks,
            |h: Arc<dyn TaskHook>| async move { h.pre_kill(ctx).await },
        )
        .await;
        let signal = self.task.kill_signal.clone();
        if let Err(e) = driver.stop(task_id, timeout, &signal).await {
            tracing::warn!(task = %self.scope(), error = %e, "stopping the task failed");
        }
        match driver.wait(task_id).await {
            Ok(exit) => exit,
            Err(e) => ExitResult {
                exit_code: -1,
                error: Some(e.to_string()),
                ..ExitResult::default()
            },
        }
    }

    async fn started(&mut self) {
        self.local.state.started_at = Some(rfc3339_now());
        self.local.state.finished_at = None;
        self.set_state(TASK_RUNNING, Some(events::event(TASK_STARTED)))
            .await;
    }

    async fn run_loop(&mut self, driver: Arc<dyn TaskDriver>) -> Ended {
        let mut tracker = self.restart_tracker();
        // A task recovered after an agent restart is already running.
        let mut recovered: Option<(TaskContext, String)> = None;
        if let Some(handle) = self.local.handle.clone() {
            match driver.recover(&handle).await {
                Ok(()) => {
                    let task_id = handle.config.id.clone();
                    let env = match self.env_builder(&driver) {
                        Ok(b) => self.saved_env(b),
                        Err(_) => TaskEnv::from_parts(handle.config.env.clone(), BTreeMap::new()),
                    };
                    let ctx = self.context(&driver, env, Some(task_id.clone()));
                    recovered = Some((ctx, task_id));
                }
                Err(e) => {
                    tracing::info!(task = %self.scope(), error = %e, "task could not be recovered");
                    self.local.handle = None;
                    let exit = ExitResult {
                        exit_code: -1,
                        error: Some(e.to_string()),
                        ..ExitResult::default()
                    };
                    self.emit(terminated(&exit)).await;
                    if let Some(end) = self.apply_restart_policy(&mut tracker, &exit).await {
                        return end;
                    }
                }
            }
        }
        if recovered.is_none() {
            if let Some(end) = self.wait_gate().await {
                return end;
            }
        }
        loop {
            let (ctx, task_id) = match recovered.take() {
                Some(r) => {
                    self.publish().await;
                    r
                }
                None => {
                    if !self.local.hooks.get("task_dir").is_some_and(|h| h.done) {
                        self.emit(with_message(TASK_SETUP, "Building Task Directory"))
                            .await;
                    }
                    if !self.task.artifacts.is_empty()
                        && !self.local.hooks.get("artifacts").is_some_and(|h| h.done)
                    {
                        self.emit(with_message(
                            TASK_DOWNLOADING_ARTIFACTS,
                            "Client is downloading artifacts",
                        ))
                        .await;
                    }
                    let started = match self.prestart(&driver).await {
                        Ok(mut ctx) => {
                            self.publish().await;
                            let config = self.task_config(&ctx);
                            match driver.start(&config).await {
                                Ok(started) => {
                                    ctx.task_id = Some(config.id.clone());
                                    self.local.handle = Some(started.handle);
                                    self.started().await;
                                    Ok((ctx, config.id))
                                }
                                Err(e) => {
                                    let _ = driver.destroy(&config.id, true).await;
                                    let recoverable = !matches!(
                                        e,
                                        DriverError::DriverDisabled { .. }
                                            | DriverError::InvalidConfig { .. }
                                    );
                                    Err((failure(TASK_DRIVER_FAILURE, e.to_string()), recoverable))
                                }
                            }
                        }
                        Err(e) => {
                            let recoverable = e.recoverable;
                            let mut event = failure(TASK_SETUP_FAILURE, e.message);
                            event.fails_task = !recoverable;
                            Err((event, recoverable))
                        }
                    };
                    match started {
                        Ok(pair) => pair,
                        Err((event, recoverable)) => {
                            self.emit(event).await;
                            match tracker.on_start_error(recoverable, Instant::now()) {
                                RestartDecision::Restart { delay, reason } => {
                                    self.local.state.restarts += 1;
                                    self.local.state.last_restart = Some(rfc3339_now());
                                    self.set_state(TASK_PENDING, Some(restarting(&reason, delay)))
                                        .await;
                                    if let Some(end) = self.restart_delay(delay).await {
                                        return end;
                                    }
                                    continue;
                                }
                                RestartDecision::Fail { reason } => {
                                    self.emit(not_restarting(&reason)).await;
                                    return Ended::Dead;
                                }
                                RestartDecision::Complete => return Ended::Dead,
                            }
                        }
                    }
                }
            };
            self.hooks_after_start(&ctx).await;

            // Wait for the exit, serving commands meanwhile.
            let mut killed = false;
            let mut user_restart: Option<String> = None;
            let exit = loop {
                tokio::select! {
                    exit = driver.wait(&task_id) => {
                        break exit.unwrap_or_else(|e| ExitResult { exit_code: -1, error: Some(e.to_string()), ..ExitResult::default() });
                    }
                    cmd = self.commands.recv() => match cmd {
                        Some(TaskCommand::Kill(reason)) => {
                            if let Some(e) = reason {
                                self.emit(e).await;
                            }
                            self.emit(killing(self.kill_timeout())).await;
                            killed = true;
                            break self.stop_task(&driver, &ctx, &task_id).await;
                        }
                        None => {
                            killed = true;
                            break self.stop_task(&driver, &ctx, &task_id).await;
                        }
                        Some(TaskCommand::Restart(reason)) => {
                            self.emit(with_message(TASK_RESTART_SIGNAL, reason.clone())).await;
                            user_restart = Some(reason);
                            break self.stop_task(&driver, &ctx, &task_id).await;
                        }
                        Some(TaskCommand::Signal(signal)) => {
                            self.emit(with_message(TASK_SIGNALING, format!("Task being sent signal {signal}"))).await;
                            if let Err(e) = driver.signal(&task_id, &signal).await {
                                self.emit(with_message(TASK_HOOK_FAILED, e.to_string())).await;
                            }
                        }
                        Some(TaskCommand::Update(alloc)) => {
                            self.alloc = alloc;
                            let mut ctx2 = ctx.clone();
                            ctx2.alloc = self.alloc.clone();
                            let _ = run_phase(Phase::TaskUpdate, &self.scope(), &self.hooks, |h: Arc<dyn TaskHook>| {
                                let ctx2 = &ctx2;
                                async move { h.update(ctx2).await }
                            }).await;
                        }
                        Some(TaskCommand::Shutdown) => return Ended::Detached,
                    }
                }
            };
            self.emit(terminated(&exit)).await;
            self.hooks_exited(&ctx, &exit).await;
            if let Err(e) = driver.destroy(&task_id, true).await {
                tracing::warn!(task = %self.scope(), error = %e, "destroying the task failed");
            }
            self.local.handle = None;
            if killed {
                self.emit(with_message(TASK_KILLED, "Task successfully killed"))
                    .await;
                return Ended::Dead;
            }
            if let Some(reason) = user_restart {
                self.set_state(TASK_PENDING, Some(restarting(&reason, Duration::ZERO)))
                    .await;
                continue;
            }
            if let Some(end) = self.apply_restart_policy(&mut tracker, &exit).await {
                return end;
            }
        }
    }
}
