//! The hook pipelines of the allocation and task runners.
//!
//! A hook implements [`AllocHook`] or [`TaskHook`]; every phase method has a no-op default, so
//! a hook implements only the phases it cares about. The runners call each phase on every
//! hook in the order of [`ALLOC_HOOK_ORDER`] / [`TASK_HOOK_ORDER`] (embedders' hooks last),
//! through one generic phase runner that applies the phase's error policy:
//!
//! | runner | phase | on a hook's error |
//! |---|---|---|
//! | alloc | `prerun` | fail fast: later hooks do not run, the allocation fails |
//! | alloc | `update` | run all, errors gathered |
//! | alloc | `pre_kill` | run all, errors gathered |
//! | alloc | `postrun` | fail fast |
//! | alloc | `destroy` | run all, errors gathered |
//! | alloc | `shutdown` | run all, errors gathered |
//! | task | `prestart` | fail fast: the task does not start (restarted if the error is recoverable) |
//! | task | `poststart` | run all, errors gathered |
//! | task | `pre_kill` | run all, errors gathered |
//! | task | `exited` | run all, errors gathered |
//! | task | `update` | run all, errors gathered |
//! | task | `stop` | run all, errors gathered; always runs, hooks make it idempotent |
//!
//! The same table is [`Phase::policy`] in code.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use nomad_core::driver::{ExitResult, PortMapping, TaskDirs, TaskDriver};
use nomad_core::env::TaskEnv;
use nomad_core::job::Task;
use nomad_core::structs::{Allocation, Node};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::task_runner::TaskControl;

pub(crate) mod alloc_dir;
pub(crate) mod artifact;
pub(crate) mod confine;
pub(crate) mod network;
pub(crate) mod services;
pub(crate) mod task_dir;
pub(crate) mod template;

/// The alloc hooks the client runs, in order; hooks added through the
/// [`ClientBuilder`](crate::ClientBuilder) run after them.
pub const ALLOC_HOOK_ORDER: &[&str] = &["alloc_dir", "network", "group_services"];

/// The task hooks the client runs, in order; hooks added through the
/// [`ClientBuilder`](crate::ClientBuilder) run after them. Log capture and the restart
/// policy are applied by the task runner itself (the driver writes the rotated log files
/// the runner names).
pub const TASK_HOOK_ORDER: &[&str] = &["task_dir", "artifacts", "templates", "services"];

/// A phase of a runner's hook pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Alloc: before any task starts.
    Prerun,
    /// Alloc: the server changed the allocation.
    Update,
    /// Alloc: before the tasks are killed.
    AllocPreKill,
    /// Alloc: after every task is dead.
    Postrun,
    /// Alloc: the allocation is removed from the node.
    Destroy,
    /// Alloc: the agent shuts down, leaving tasks running.
    Shutdown,
    /// Task: before the task starts (each start, restarts included).
    Prestart,
    /// Task: after the task started.
    Poststart,
    /// Task: before the task is killed.
    TaskPreKill,
    /// Task: the task exited (it may be restarted).
    Exited,
    /// Task: the allocation was updated.
    TaskUpdate,
    /// Task: the task is dead for good.
    Stop,
}

/// What a phase does when a hook fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPolicy {
    /// Stop at the first error; later hooks do not run.
    FailFast,
    /// Run every hook and report all errors.
    RunAll,
}

impl Phase {
    /// The phase's error policy (the table in the [module docs](self)).
    pub const fn policy(self) -> ErrorPolicy {
        match self {
            Phase::Prerun | Phase::Postrun | Phase::Prestart => ErrorPolicy::FailFast,
            Phase::Update
            | Phase::AllocPreKill
            | Phase::Destroy
            | Phase::Shutdown
            | Phase::Poststart
            | Phase::TaskPreKill
            | Phase::Exited
            | Phase::TaskUpdate
            | Phase::Stop => ErrorPolicy::RunAll,
        }
    }

    /// The phase's name as logs and errors show it.
    pub const fn name(self) -> &'static str {
        match self {
            Phase::Prerun => "prerun",
            Phase::Update | Phase::TaskUpdate => "update",
            Phase::AllocPreKill | Phase::TaskPreKill => "pre_kill",
            Phase::Postrun => "postrun",
            Phase::Destroy => "destroy",
            Phase::Shutdown => "shutdown",
            Phase::Prestart => "prestart",
            Phase::Poststart => "poststart",
            Phase::Exited => "exited",
            Phase::Stop => "stop",
        }
    }
}

/// A hook's failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookError {
    /// What went wrong, in the job's words.
    pub message: String,
    /// Whether trying again may succeed (a prestart failure is then subject to the restart
    /// policy; otherwise the task fails at once).
    pub recoverable: bool,
}

impl HookError {
    /// An error that trying again will not fix.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            recoverable: false,
        }
    }

    /// An error that trying again may fix.
    pub fn recoverable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            recoverable: true,
        }
    }
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HookError {}

/// The errors of one phase: each failed hook's name and error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} hook {}", phase.name(), format_errors(errors))]
pub struct PhaseError {
    /// The phase.
    pub phase: Phase,
    /// `(hook name, error)`, in hook order.
    pub errors: Vec<(String, HookError)>,
}

fn format_errors(errors: &[(String, HookError)]) -> String {
    errors
        .iter()
        .map(|(hook, e)| format!("{hook:?} failed: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl PhaseError {
    /// Whether every error is recoverable.
    pub fn recoverable(&self) -> bool {
        self.errors.iter().all(|(_, e)| e.recoverable)
    }
}

/// Something with a name: hooks are reported and persisted by it.
pub trait Named {
    /// The hook's name, unique in its pipeline.
    fn name(&self) -> &str;
}

/// One run of a phase: applies the phase's [`ErrorPolicy`] to each hook's result. Loops that
/// must thread state from hook to hook (prestart's environment) drive it directly; the rest
/// go through [`run_phase`].
pub(crate) struct PhaseRun<'a> {
    phase: Phase,
    scope: &'a str,
    errors: Vec<(String, HookError)>,
}

impl<'a> PhaseRun<'a> {
    pub(crate) fn new(phase: Phase, scope: &'a str) -> Self {
        Self {
            phase,
            scope,
            errors: Vec::new(),
        }
    }

    /// The tracing span a hook's phase method runs in.
    pub(crate) fn span(&self, hook: &str) -> tracing::Span {
        tracing::debug_span!("hook", scope = self.scope, hook, phase = self.phase.name())
    }

    /// Records a hook's result; `false` when the phase must stop here.
    pub(crate) fn record(&mut self, hook: &str, result: Result<(), HookError>) -> bool {
        match result {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(scope = self.scope, hook, phase = self.phase.name(), error = %err, "hook failed");
                self.errors.push((hook.to_owned(), err));
                self.phase.policy() == ErrorPolicy::RunAll
            }
        }
    }

    pub(crate) fn finish(self) -> Result<(), PhaseError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(PhaseError {
                phase: self.phase,
                errors: self.errors,
            })
        }
    }
}

/// The generic phase runner: calls `call` on each hook in order, in a tracing span named
/// after the hook and phase, applying the phase's [`ErrorPolicy`].
pub(crate) async fn run_phase<H, F, Fut>(
    phase: Phase,
    scope: &str,
    hooks: &[Arc<H>],
    mut call: F,
) -> Result<(), PhaseError>
where
    H: Named + ?Sized,
    F: FnMut(Arc<H>) -> Fut,
    Fut: std::future::Future<Output = Result<(), HookError>>,
{
    let mut run = PhaseRun::new(phase, scope);
    for hook in hooks {
        let span = run.span(hook.name());
        let result = call(hook.clone()).instrument(span).await;
        if !run.record(hook.name(), result) {
            break;
        }
    }
    run.finish()
}

/// What alloc hooks are told about the allocation.
#[derive(Clone)]
pub struct AllocContext {
    /// The allocation.
    pub alloc: Arc<Allocation>,
    /// The node it runs on.
    pub node: Arc<Node>,
    /// The allocation's directory on the host.
    pub alloc_dir: PathBuf,
}

impl fmt::Debug for AllocContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllocContext")
            .field("alloc", &self.alloc.id)
            .field("alloc_dir", &self.alloc_dir)
            .finish()
    }
}

/// What an alloc hook's prerun hands to the tasks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrerunResponse {
    /// Ports the tasks are given (the network hook's host ports).
    pub ports: Vec<PortMapping>,
}

/// A hook of the allocation runner. Every phase defaults to doing nothing.
#[async_trait::async_trait]
pub trait AllocHook: Named + Send + Sync {
    /// Before any task of the allocation starts.
    async fn prerun(&self, ctx: &AllocContext) -> Result<PrerunResponse, HookError> {
        let _ = ctx;
        Ok(PrerunResponse::default())
    }
    /// The allocation was updated by the server.
    async fn update(&self, ctx: &AllocContext) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }
    /// Before the allocation's tasks are killed.
    async fn pre_kill(&self, ctx: &AllocContext) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }
    /// After every task is dead.
    async fn postrun(&self, ctx: &AllocContext) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }
    /// The allocation is removed from the node: its directory and state go.
    async fn destroy(&self, ctx: &AllocContext) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }
    /// The agent shuts down and leaves the tasks running.
    async fn shutdown(&self, ctx: &AllocContext) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }
}

/// What task hooks are told about the task.
#[derive(Clone)]
pub struct TaskContext {
    /// The allocation.
    pub alloc: Arc<Allocation>,
    /// The node.
    pub node: Arc<Node>,
    /// The task, interpolated against [`TaskContext::env`].
    pub task: Task,
    /// The task's directories on the host.
    pub dirs: TaskDirs,
    /// The task's environment so far (hooks before this one included).
    pub env: TaskEnv,
    /// The ports given to the task.
    pub ports: Vec<PortMapping>,
    /// The task's driver.
    pub driver: Arc<dyn TaskDriver>,
    /// The driver's id of the running task, once started.
    pub task_id: Option<String>,
    /// Asks the task runner to restart or signal the task.
    pub control: TaskControl,
}

impl fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskContext")
            .field("alloc", &self.alloc.id)
            .field("task", &self.task.name)
            .field("task_id", &self.task_id)
            .finish()
    }
}

/// A hook's state persisted between runs of its prestart (and across agent restarts).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HookState {
    /// The prestart finished for good: it is not run again, its `env` is reused.
    pub done: bool,
    /// The environment it returned.
    pub env: BTreeMap<String, String>,
    /// The hook's own data.
    pub data: Option<serde_json::Value>,
}

/// A host path made visible inside the task (for drivers that isolate the filesystem).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRequest {
    /// The path on the host.
    pub host_path: PathBuf,
    /// The path inside the task.
    pub task_path: PathBuf,
    /// Read only.
    pub read_only: bool,
}

/// What a task hook's prestart returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrestartResponse {
    /// Environment variables the hook adds to the task's environment.
    pub env: BTreeMap<String, String>,
    /// Mounts the hook asks for.
    pub mounts: Vec<MountRequest>,
    /// Device ids the hook reserved.
    pub devices: Vec<String>,
    /// State to persist; handed back to the next prestart.
    pub state: Option<serde_json::Value>,
    /// The hook's prestart finished for good: later starts (restarts, a restarted agent)
    /// skip it and reuse `env`.
    pub done: bool,
}

/// How the task ended, for the `exited` phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitedRequest {
    /// The exit.
    pub exit: ExitResult,
}

/// A hook of the task runner. Every phase defaults to doing nothing.
#[async_trait::async_trait]
pub trait TaskHook: Named + Send + Sync {
    /// Before the task starts. `previous` is the state the last prestart persisted.
    async fn prestart(
        &self,
        ctx: &TaskContext,
        previous: Option<&HookState>,
    ) -> Result<PrestartResponse, HookError> {
        let _ = (ctx, previous);
        Ok(PrestartResponse::default())
    }
    /// After the task started.
    async fn poststart(&self, ctx: &TaskContext) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }
    /// Before the task is killed.
    async fn pre_kill(&self, ctx: &TaskContext) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }
    /// The task exited; it may still be restarted.
    async fn exited(&self, ctx: &TaskContext, request: &ExitedRequest) -> Result<(), HookError> {
        let _ = (ctx, request);
        Ok(())
    }
    /// The allocation was updated.
    async fn update(&self, ctx: &TaskContext) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }
    /// The task is dead for good. Always called, possibly more than once.
    async fn stop(&self, ctx: &TaskContext) -> Result<(), HookError> {
        let _ = ctx;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Probe {
        name: &'static str,
        fail: bool,
    }
    impl Named for Probe {
        fn name(&self) -> &str {
            self.name
        }
    }

    fn hooks() -> Vec<Arc<Probe>> {
        vec![
            Arc::new(Probe {
                name: "a",
                fail: false,
            }),
            Arc::new(Probe {
                name: "b",
                fail: true,
            }),
            Arc::new(Probe {
                name: "c",
                fail: true,
            }),
        ]
    }

    async fn run(phase: Phase) -> (Vec<&'static str>, Result<(), PhaseError>) {
        let called = Mutex::new(Vec::new());
        let result = run_phase(phase, "test", &hooks(), |h: Arc<Probe>| {
            called.lock().unwrap().push(h.name);
            async move {
                if h.fail {
                    Err(HookError::fatal(format!("{} broke", h.name)))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        (called.into_inner().unwrap(), result)
    }

    #[tokio::test]
    async fn fail_fast_phases_stop_at_the_first_error() {
        for phase in [Phase::Prerun, Phase::Postrun, Phase::Prestart] {
            let (called, result) = run(phase).await;
            assert_eq!(called, ["a", "b"], "{phase:?}");
            let err = result.unwrap_err();
            assert_eq!(err.errors.len(), 1);
            assert!(err.to_string().contains("\"b\" failed: b broke"));
        }
    }

    #[tokio::test]
    async fn run_all_phases_run_every_hook_and_gather_errors() {
        for phase in [
            Phase::Update,
            Phase::AllocPreKill,
            Phase::Destroy,
            Phase::Shutdown,
            Phase::Poststart,
            Phase::TaskPreKill,
            Phase::Exited,
            Phase::TaskUpdate,
            Phase::Stop,
        ] {
            let (called, result) = run(phase).await;
            assert_eq!(called, ["a", "b", "c"], "{phase:?}");
            assert_eq!(result.unwrap_err().errors.len(), 2);
        }
    }
}
