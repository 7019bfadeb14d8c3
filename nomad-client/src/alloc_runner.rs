//! The allocation runner and its lifecycle coordinator.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use nomad_core::driver::{PortMapping, TaskHandle};
use nomad_core::job::Task;
use nomad_core::structs::status::{
    ALLOC_CLIENT_COMPLETE, ALLOC_CLIENT_FAILED, ALLOC_CLIENT_PENDING, ALLOC_CLIENT_RUNNING,
    TASK_DEAD, TASK_PENDING, TASK_RUNNING,
};
use nomad_core::structs::{Allocation, Node, TaskEvent, TaskState};
use nomad_discovery::ServiceProvider;
use tokio::sync::{broadcast, mpsc, watch};

use crate::driver_set::DriverSet;
use crate::events::{self, failure, with_message};
use crate::hooks::alloc_dir::AllocDirHook;
use crate::hooks::artifact::ArtifactHook;
use crate::hooks::network::NetworkHook;
use crate::hooks::services::{GroupServicesHook, TaskServicesHook};
use crate::hooks::task_dir::TaskDirHook;
use crate::hooks::template::TemplateHook;
use crate::hooks::{run_phase, AllocContext, AllocHook, Phase, PhaseRun, TaskHook};
use crate::state::{LocalTaskState, StateStore};
use crate::task_runner::{TaskControl, TaskRunner};
use tracing::Instrument;

/// Makes an embedder's alloc hook for an allocation (`None`: no hook for this one).
pub type AllocHookFactory = Arc<dyn Fn(&Allocation) -> Option<Arc<dyn AllocHook>> + Send + Sync>;
/// Makes an embedder's task hook for a task (`None`: no hook for this one).
pub type TaskHookFactory =
    Arc<dyn Fn(&Allocation, &Task) -> Option<Arc<dyn TaskHook>> + Send + Sync>;

/// What every allocation runner of a client shares.
#[derive(Clone)]
pub(crate) struct RunnerShared {
    pub(crate) node: Arc<Node>,
    pub(crate) drivers: Arc<DriverSet>,
    pub(crate) provider: Arc<dyn ServiceProvider>,
    pub(crate) store: Option<StateStore>,
    pub(crate) alloc_root: PathBuf,
    pub(crate) alloc_hooks: Vec<AllocHookFactory>,
    pub(crate) task_hooks: Vec<TaskHookFactory>,
}

impl RunnerShared {
    /// The alloc hooks of an allocation, in [`ALLOC_HOOK_ORDER`](crate::ALLOC_HOOK_ORDER),
    /// then the embedders'.
    fn alloc_hooks(&self, alloc: &Allocation) -> Vec<Arc<dyn AllocHook>> {
        let mut hooks: Vec<Arc<dyn AllocHook>> = vec![
            Arc::new(AllocDirHook),
            Arc::new(NetworkHook),
            Arc::new(GroupServicesHook::new(self.provider.clone())),
        ];
        hooks.extend(self.alloc_hooks.iter().filter_map(|f| f(alloc)));
        hooks
    }

    /// The task hooks of a task, in [`TASK_HOOK_ORDER`](crate::TASK_HOOK_ORDER), then the
    /// embedders'.
    fn task_hooks(&self, alloc: &Allocation, task: &Task) -> Vec<Arc<dyn TaskHook>> {
        let mut hooks: Vec<Arc<dyn TaskHook>> = vec![
            Arc::new(TaskDirHook),
            Arc::new(ArtifactHook),
            Arc::new(TemplateHook::new(self.provider.clone())),
            Arc::new(TaskServicesHook::new(self.provider.clone())),
        ];
        hooks.extend(self.task_hooks.iter().filter_map(|f| f(alloc, task)));
        hooks
    }
}

/// Where a task runs in the group's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    PrestartEphemeral,
    PrestartSidecar,
    Main,
    PoststartEphemeral,
    PoststartSidecar,
    Poststop,
}

impl Role {
    fn of(task: &Task) -> Self {
        match task
            .lifecycle
            .as_ref()
            .map(|l| (l.hook.as_str(), l.sidecar))
        {
            Some(("prestart", false)) => Role::PrestartEphemeral,
            Some(("prestart", true)) => Role::PrestartSidecar,
            Some(("poststart", false)) => Role::PoststartEphemeral,
            Some(("poststart", true)) => Role::PoststartSidecar,
            Some(("poststop", _)) => Role::Poststop,
            _ => Role::Main,
        }
    }

    fn sidecar(self) -> bool {
        matches!(self, Role::PrestartSidecar | Role::PoststartSidecar)
    }
}

/// The allocation's client status from its tasks' states, as Nomad derives it: `failed` if
/// a task failed, else `running` if one runs, else `pending` if one is pending, else
/// `complete`.
pub fn client_status(states: &BTreeMap<String, TaskState>) -> (&'static str, &'static str) {
    let (mut pending, mut running, mut dead, mut failed) = (false, false, false, false);
    for s in states.values() {
        match s.state.as_str() {
            TASK_RUNNING => running = true,
            TASK_PENDING => pending = true,
            TASK_DEAD if s.failed => failed = true,
            TASK_DEAD => dead = true,
            _ => {}
        }
    }
    if failed {
        (ALLOC_CLIENT_FAILED, "Failed tasks")
    } else if running {
        (ALLOC_CLIENT_RUNNING, "Tasks are running")
    } else if pending {
        (ALLOC_CLIENT_PENDING, "No tasks have started")
    } else if dead {
        (ALLOC_CLIENT_COMPLETE, "All tasks have completed")
    } else {
        (ALLOC_CLIENT_PENDING, "No tasks have started")
    }
}

#[derive(Debug)]
enum AllocCommand {
    Kill,
    Update(Arc<Allocation>),
    Shutdown,
    Destroy(tokio::sync::oneshot::Sender<()>),
}

/// A running allocation: its task states, events and controls.
#[derive(Debug, Clone)]
pub struct AllocHandle {
    alloc_id: String,
    states: watch::Receiver<BTreeMap<String, TaskState>>,
    handles: watch::Receiver<BTreeMap<String, Option<TaskHandle>>>,
    events: broadcast::Sender<(String, TaskEvent)>,
    commands: mpsc::UnboundedSender<AllocCommand>,
    done: watch::Receiver<bool>,
}

impl AllocHandle {
    /// The allocation's id.
    pub fn alloc_id(&self) -> &str {
        &self.alloc_id
    }

    /// The tasks' states now.
    pub fn task_states(&self) -> BTreeMap<String, TaskState> {
        self.states.borrow().clone()
    }

    /// A receiver that sees every change of the tasks' states.
    pub fn watch_states(&self) -> watch::Receiver<BTreeMap<String, TaskState>> {
        self.states.clone()
    }

    /// Every task event from now on, as `(task name, event)`; unlike
    /// [`TaskState::events`], not limited to the last ten.
    pub fn subscribe_events(&self) -> broadcast::Receiver<(String, TaskEvent)> {
        self.events.subscribe()
    }

    /// The driver handles of the running tasks, by task name.
    pub fn task_handles(&self) -> BTreeMap<String, TaskHandle> {
        self.handles
            .borrow()
            .iter()
            .filter_map(|(k, v)| v.clone().map(|h| (k.clone(), h)))
            .collect()
    }

    /// The allocation's client status and its description.
    pub fn client_status(&self) -> (&'static str, &'static str) {
        client_status(&self.states.borrow())
    }

    /// Stops the allocation: its tasks are killed, then its poststop tasks run.
    pub fn kill(&self) {
        let _ = self.commands.send(AllocCommand::Kill);
    }

    /// Hands the runner a newer version of the allocation (update hooks run).
    pub fn update(&self, alloc: Allocation) {
        let _ = self.commands.send(AllocCommand::Update(Arc::new(alloc)));
    }

    /// Stops the runner and leaves the tasks running, for a later agent to recover.
    pub fn shutdown(&self) {
        let _ = self.commands.send(AllocCommand::Shutdown);
    }

    /// Kills the allocation if it runs, then runs the destroy hooks (the allocation's
    /// directory is removed) and forgets its persisted state. Returns once done.
    pub async fn destroy(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.commands.send(AllocCommand::Destroy(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Waits until every task is dead and the postrun hooks ran (or the runner shut down).
    pub async fn wait(&self) {
        let mut done = self.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }
}

struct TaskSlot {
    role: Role,
    leader: bool,
    gate: watch::Sender<bool>,
    control: TaskControl,
    killed: bool,
}

/// Runs one allocation: alloc hooks, its task runners in lifecycle order, and its status.
pub(crate) struct AllocRunner {
    alloc: Arc<Allocation>,
    shared: RunnerShared,
    restored: BTreeMap<String, LocalTaskState>,
}

impl AllocRunner {
    pub(crate) fn new(
        alloc: Allocation,
        shared: RunnerShared,
        restored: BTreeMap<String, LocalTaskState>,
    ) -> Self {
        Self {
            alloc: Arc::new(alloc),
            shared,
            restored,
        }
    }

    /// Spawns the runner; the handle reports on it.
    pub(crate) fn start(self) -> AllocHandle {
        let (states_tx, states) = watch::channel(BTreeMap::new());
        let (handles_tx, handles) = watch::channel(BTreeMap::new());
        let (events, _) = broadcast::channel(1024);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (done_tx, done) = watch::channel(false);
        let handle = AllocHandle {
            alloc_id: self.alloc.id.to_string(),
            states,
            handles,
            events: events.clone(),
            commands,
            done,
        };
        let runner_states = handle.states.clone();
        tokio::spawn(async move {
            self.run(
                states_tx,
                runner_states,
                handles_tx,
                events,
                commands_rx,
                done_tx,
            )
            .await;
        });
        handle
    }

    async fn run(
        self,
        states_tx: watch::Sender<BTreeMap<String, TaskState>>,
        mut states: watch::Receiver<BTreeMap<String, TaskState>>,
        handles_tx: watch::Sender<BTreeMap<String, Option<TaskHandle>>>,
        events: broadcast::Sender<(String, TaskEvent)>,
        mut commands: mpsc::UnboundedReceiver<AllocCommand>,
        done: watch::Sender<bool>,
    ) {
        let alloc = self.alloc.clone();
        let scope = alloc.id.clone();
        let tasks: Vec<Task> = alloc.group().map(|g| g.tasks.clone()).unwrap_or_default();
        if let Some(store) = &self.shared.store {
            if let Err(e) = store.put_alloc(&alloc).await {
                tracing::warn!(alloc = %scope, error = %e, "persisting the allocation failed");
            }
        }
        let ctx = AllocContext {
            alloc: alloc.clone(),
            node: self.shared.node.clone(),
            alloc_dir: self.shared.alloc_root.join(&*alloc.id),
        };
        let hooks = self.shared.alloc_hooks(&alloc);

        // Prerun: fail fast; a failure fails every task that is not dead already.
        let mut ports: Vec<PortMapping> = Vec::new();
        let mut run = PhaseRun::new(Phase::Prerun, &scope);
        for hook in &hooks {
            let span = run.span(hook.name());
            let result = hook.prerun(&ctx).instrument(span).await.map(|response| {
                ports.extend(response.ports);
            });
            if !run.record(hook.name(), result) {
                break;
            }
        }
        let prerun = run.finish();
        if let Err(e) = prerun {
            for task in &tasks {
                let mut local = self.restored.get(&task.name).cloned().unwrap_or_default();
                if local.state.state == TASK_DEAD {
                    continue;
                }
                local.state.state = TASK_DEAD.into();
                local.state.failed = true;
                let event = failure(events::TASK_SETUP_FAILURE, e.to_string());
                let _ = events.send((task.name.clone(), event.clone()));
                local.state.events.push(event);
                states_tx.send_modify(|m| {
                    m.insert(task.name.clone(), local.state.clone());
                });
                if let Some(store) = &self.shared.store {
                    let _ = store.put_task(&alloc.id, &task.name, &local).await;
                }
            }
            done.send_replace(true);
            self.serve_destroy(&ctx, &hooks, commands, None).await;
            return;
        }

        // One runner per task, each behind a start gate the coordinator opens.
        let mut slots: BTreeMap<String, TaskSlot> = BTreeMap::new();
        for task in &tasks {
            let role = Role::of(task);
            let (gate_tx, gate_rx) = watch::channel(false);
            let (control, commands_rx) = TaskControl::new();
            let runner = TaskRunner {
                alloc: alloc.clone(),
                node: self.shared.node.clone(),
                task: task.clone(),
                alloc_dir: ctx.alloc_dir.clone(),
                ports: ports.clone(),
                drivers: self.shared.drivers.clone(),
                hooks: self.shared.task_hooks(&alloc, task),
                states: states_tx.clone(),
                handles: handles_tx.clone(),
                events: events.clone(),
                store: self.shared.store.clone(),
                local: self.restored.get(&task.name).cloned().unwrap_or_default(),
                gate: gate_rx,
                commands: commands_rx,
                control: control.clone(),
            };
            slots.insert(
                task.name.clone(),
                TaskSlot {
                    role,
                    leader: task.leader,
                    gate: gate_tx,
                    control,
                    killed: false,
                },
            );
            tokio::spawn(runner.run());
        }

        let mut coordinator = Coordinator::default();
        let mut stopping = false;
        let mut shutdown = false;
        let mut commands_open = true;
        let mut destroy: Option<tokio::sync::oneshot::Sender<()>> = None;
        loop {
            let snapshot = states.borrow_and_update().clone();
            if snapshot.len() == slots.len() && snapshot.values().all(|s| s.state == TASK_DEAD) {
                break;
            }
            coordinator.step(&mut slots, &snapshot, stopping);
            tokio::select! {
                changed = states.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                cmd = commands.recv(), if commands_open => match cmd {
                    Some(AllocCommand::Kill) => {
                        if !stopping {
                            stopping = true;
                            self.pre_kill(&ctx, &hooks).await;
                        }
                    }
                    Some(AllocCommand::Destroy(reply)) => {
                        destroy = Some(reply);
                        if !stopping {
                            stopping = true;
                            self.pre_kill(&ctx, &hooks).await;
                        }
                    }
                    Some(AllocCommand::Update(new)) => {
                        let ctx2 = AllocContext { alloc: new.clone(), ..ctx.clone() };
                        let _ = run_phase(Phase::Update, &scope, &hooks, |h: Arc<dyn AllocHook>| {
                            let ctx2 = &ctx2;
                            async move { h.update(ctx2).await }
                        }).await;
                        for slot in slots.values() {
                            slot.control.update(new.clone());
                        }
                    }
                    Some(AllocCommand::Shutdown) => {
                        shutdown = true;
                        break;
                    }
                    // Every handle is gone: the allocation keeps running to its end.
                    None => commands_open = false,
                }
            }
        }
        if shutdown {
            for slot in slots.values() {
                slot.control.shutdown();
            }
            let _ = run_phase(Phase::Shutdown, &scope, &hooks, |h: Arc<dyn AllocHook>| {
                let ctx = &ctx;
                async move { h.shutdown(ctx).await }
            })
            .await;
            done.send_replace(true);
            return;
        }
        let _ = run_phase(Phase::Postrun, &scope, &hooks, |h: Arc<dyn AllocHook>| {
            let ctx = &ctx;
            async move { h.postrun(ctx).await }
        })
        .await;
        done.send_replace(true);
        self.serve_destroy(&ctx, &hooks, commands, destroy).await;
    }

    async fn pre_kill(&self, ctx: &AllocContext, hooks: &[Arc<dyn AllocHook>]) {
        let _ = run_phase(
            Phase::AllocPreKill,
            &ctx.alloc.id,
            hooks,
            |h: Arc<dyn AllocHook>| async move { h.pre_kill(ctx).await },
        )
        .await;
    }

    /// After the allocation ended: waits for a destroy request (unless one came already),
    /// then runs the destroy hooks and drops the persisted state.
    async fn serve_destroy(
        &self,
        ctx: &AllocContext,
        hooks: &[Arc<dyn AllocHook>],
        mut commands: mpsc::UnboundedReceiver<AllocCommand>,
        mut destroy: Option<tokio::sync::oneshot::Sender<()>>,
    ) {
        while destroy.is_none() {
            match commands.recv().await {
                Some(AllocCommand::Destroy(reply)) => destroy = Some(reply),
                Some(_) => {}
                None => return,
            }
        }
        let _ = run_phase(
            Phase::Destroy,
            &ctx.alloc.id,
            hooks,
            |h: Arc<dyn AllocHook>| async move { h.destroy(ctx).await },
        )
        .await;
        if let Some(store) = &self.shared.store {
            if let Err(e) = store.delete_alloc(&ctx.alloc.id).await {
                tracing::warn!(alloc = %ctx.alloc.id, error = %e, "forgetting the allocation failed");
            }
        }
        if let Some(reply) = destroy {
            let _ = reply.send(());
        }
    }
}

fn names_of(slots: &BTreeMap<String, TaskSlot>, roles: &[Role]) -> Vec<String> {
    slots
        .iter()
        .filter(|(_, s)| roles.contains(&s.role))
        .map(|(n, _)| n.clone())
        .collect()
}

/// The lifecycle coordinator: opens start gates and kills tasks as Nomad documents.
///
/// * prestart tasks (ephemeral and sidecar) start at once;
/// * main tasks start once every prestart ephemeral task completed successfully and every
///   prestart sidecar runs;
/// * poststart tasks start once every main task has started;
/// * a failed task kills every other task but the poststop ones (`Sibling Task Failed`);
/// * a dead leader kills every other task but the poststop ones (`Leader Task Dead`);
/// * once every main task is dead, the sidecars are killed (`Main Tasks Dead`) and the
///   poststop tasks start.
#[derive(Debug, Default)]
struct Coordinator {
    prestart_open: bool,
    main_open: bool,
    poststart_open: bool,
    poststop_open: bool,
    killed_siblings: bool,
}

impl Coordinator {
    fn step(
        &mut self,
        slots: &mut BTreeMap<String, TaskSlot>,
        states: &BTreeMap<String, TaskState>,
        stopping: bool,
    ) {
        let state = |name: &str| states.get(name);
        let is_dead = |name: &str| state(name).is_some_and(|s| s.state == TASK_DEAD);
        let open = |slots: &BTreeMap<String, TaskSlot>, roles: &[Role]| {
            for slot in slots.values().filter(|s| roles.contains(&s.role)) {
                slot.gate.send_replace(true);
            }
        };

        if !self.prestart_open && !stopping {
            self.prestart_open = true;
            open(slots, &[Role::PrestartEphemeral, Role::PrestartSidecar]);
        }

        // Kill everything but the poststop tasks on a failure, a dead leader or a stop.
        let failed = states.iter().find(|(n, s)| {
            s.state == TASK_DEAD
                && s.failed
                && slots.get(*n).is_some_and(|x| x.role != Role::Poststop)
        });
        let leader_dead = slots.iter().find(|(n, s)| s.leader && is_dead(n));
        let reason: Option<(Option<TaskEvent>, bool)> = if stopping {
            Some((None, true))
        } else if let Some((name, _)) = failed {
            Some((
                Some(with_message(
                    events::TASK_SIBLING_FAILED,
                    format!("Task's sibling {name:?} failed"),
                )),
                true,
            ))
        } else {
            leader_dead.map(|(name, _)| {
                (
                    Some(with_message(
                        events::TASK_LEADER_DEAD,
                        format!("Leader Task {name:?} is dead"),
                    )),
                    true,
                )
            })
        };
        if let Some((event, _)) = reason {
            if !self.killed_siblings {
                self.killed_siblings = true;
                let mut failed_one = BTreeSet::new();
                if let Some((n, _)) = failed {
                    failed_one.insert(n.clone());
                }
                for (name, slot) in slots.iter_mut() {
                    if slot.role == Role::Poststop || is_dead(name) || failed_one.contains(name) {
                        continue;
                    }
                    slot.killed = true;
                    let mut e = event.clone();
                    if let Some(e) = &mut e {
                        e.time = events::event("").time;
                    }
                    slot.control.kill(e);
                }
            }
        }

        let mains = names_of(slots, &[Role::Main]);
        if !self.main_open && !self.killed_siblings {
            let ephemeral_done = names_of(slots, &[Role::PrestartEphemeral])
                .iter()
                .all(|n| state(n).is_some_and(|s| s.state == TASK_DEAD && !s.failed));
            let sidecars_up = names_of(slots, &[Role::PrestartSidecar])
                .iter()
                .all(|n| state(n).is_some_and(|s| s.state == TASK_RUNNING));
            if ephemeral_done && sidecars_up {
                self.main_open = true;
                open(slots, &[Role::Main]);
            }
        }
        if self.main_open && !self.poststart_open && !self.killed_siblings {
            let all_started = mains
                .iter()
                .all(|n| state(n).is_some_and(|s| s.started_at.is_some()));
            if all_started {
                self.poststart_open = true;
                open(slots, &[Role::PoststartEphemeral, Role::PoststartSidecar]);
            }
        }
        let mains_dead = mains.iter().all(|n| is_dead(n));
        if mains_dead && (self.main_open || self.killed_siblings) && !self.poststop_open {
            self.poststop_open = true;
            for (name, slot) in slots.iter_mut() {
                if (slot.role.sidecar() || !matches!(slot.role, Role::Poststop | Role::Main))
                    && !is_dead(name)
                    && !slot.killed
                {
                    slot.killed = true;
                    slot.control.kill(Some(with_message(
                        events::TASK_MAIN_DEAD,
                        "Main tasks in the group died",
                    )));
                }
            }
            open(slots, &[Role::Poststop]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(state: &str, failed: bool) -> TaskState {
        TaskState {
            state: state.into(),
            failed,
            ..TaskState::default()
        }
    }

    #[test]
    fn client_status_follows_nomad() {
        let mut m = BTreeMap::new();
        m.insert("a".to_owned(), st("pending", false));
        assert_eq!(client_status(&m).0, "pending");
        m.insert("b".to_owned(), st("running", false));
        assert_eq!(client_status(&m).0, "running");
        m.insert("c".to_owned(), st("dead", true));
        assert_eq!(client_status(&m).0, "failed");
        let done = BTreeMap::from([("a".to_owned(), st("dead", false))]);
        assert_eq!(
            client_status(&done),
            ("complete", "All tasks have completed")
        );
    }
}
