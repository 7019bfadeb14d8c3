//! The table of tasks a built-in driver tracks, and what every tracked task can say about
//! itself. Shared by raw_exec, exec, docker and mock, so that lookups, the start race and
//! `inspect` behave the same in each.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

use nomad_core::driver::{DriverError, TaskConfig, TaskState, TaskStatus};
use tokio::task::AbortHandle;

use super::exit::ExitWatch;

/// A driver's record of one running (or ended but not yet destroyed) task.
pub(crate) trait TrackedTask: ExitWatch {
    /// The configuration the task was started with.
    fn config(&self) -> &TaskConfig;

    /// When the driver started (or recovered) it.
    fn started_at(&self) -> SystemTime;

    /// The background work (log copiers, supervisors) that follows the task.
    fn background(&self) -> &[AbortHandle] {
        &[]
    }

    /// The driver-specific facts `inspect` reports.
    fn driver_attributes(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// Stops following the task, leaving the task itself alone.
    fn stop_following(&self) {
        for handle in self.background() {
            handle.abort();
        }
    }

    /// The task's status as [`TaskDriver::inspect`](nomad_core::driver::TaskDriver::inspect)
    /// reports it.
    fn status(&self) -> TaskStatus {
        let config = self.config();
        let exited = self.exited();
        TaskStatus {
            id: config.id.clone(),
            name: config.task_name.clone(),
            state: if exited.is_some() {
                TaskState::Exited
            } else {
                TaskState::Running
            },
            started_at: Some(self.started_at()),
            completed_at: exited.as_ref().map(|e| e.at),
            exit_result: exited.map(|e| e.result),
            driver_attributes: self.driver_attributes(),
        }
    }
}

/// A task's CPU use as a share of one core between two stats readings.
#[derive(Debug, Default)]
pub(crate) struct CpuRate {
    last: Mutex<Option<(u64, Instant)>>,
}

impl CpuRate {
    /// Records `total_ns` of CPU time used so far; the percentage of one core used since
    /// the previous reading, `None` on the first.
    pub(crate) fn percent(&self, total_ns: u64) -> Option<f64> {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let percent = last.and_then(|(previous, at)| {
            let wall = now.duration_since(at).as_nanos() as f64;
            (wall > 0.0).then(|| total_ns.saturating_sub(previous) as f64 / wall * 100.0)
        });
        *last = Some((total_ns, now));
        percent
    }
}

/// Tasks by ID.
#[derive(Debug)]
pub(crate) struct TaskTable<T> {
    tasks: Mutex<HashMap<String, Arc<T>>>,
}

impl<T> Default for TaskTable<T> {
    fn default() -> Self {
        Self {
            tasks: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: TrackedTask> TaskTable<T> {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<T>>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The task, or [`DriverError::TaskNotFound`].
    pub(crate) fn get(&self, task_id: &str) -> Result<Arc<T>, DriverError> {
        self.find(task_id)
            .ok_or_else(|| DriverError::not_found(task_id))
    }

    /// The task, if the driver tracks it.
    pub(crate) fn find(&self, task_id: &str) -> Option<Arc<T>> {
        self.lock().get(task_id).cloned()
    }

    /// Whether the driver tracks a task with this ID.
    pub(crate) fn contains(&self, task_id: &str) -> bool {
        self.lock().contains_key(task_id)
    }

    /// Tracks a task; gives it back when another with its ID is tracked already (two starts
    /// of one ID raced and the other won).
    pub(crate) fn insert(&self, task: Arc<T>) -> Result<(), Arc<T>> {
        let mut tasks = self.lock();
        if tasks.contains_key(&task.config().id) {
            return Err(task);
        }
        tasks.insert(task.config().id.clone(), task);
        Ok(())
    }

    /// Tracks a task unless another with its ID won a start race; then `undo` cleans up
    /// after the loser and the start fails with [`DriverError::TaskAlreadyExists`].
    pub(crate) async fn insert_or_undo<F, Fut>(
        &self,
        task: Arc<T>,
        undo: F,
    ) -> Result<(), DriverError>
    where
        F: FnOnce(Arc<T>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        match self.insert(task) {
            Ok(()) => Ok(()),
            Err(lost) => {
                let task_id = lost.config().id.clone();
                lost.stop_following();
                undo(lost).await;
                Err(DriverError::TaskAlreadyExists { task_id })
            }
        }
    }

    /// Forgets a task.
    pub(crate) fn remove(&self, task_id: &str) -> Option<Arc<T>> {
        self.lock().remove(task_id)
    }

    /// Stops following every task (the driver is going away; the tasks run on so that
    /// another driver instance can recover them).
    pub(crate) fn stop_following_all(&self) {
        for task in self.lock().values() {
            task.stop_following();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::exit::Exited;
    use nomad_core::driver::ExitResult;
    use tokio::sync::watch;

    #[derive(Debug)]
    struct Fake {
        config: TaskConfig,
        exit: watch::Receiver<Option<Exited>>,
    }

    impl ExitWatch for Fake {
        fn exit_rx(&self) -> &watch::Receiver<Option<Exited>> {
            &self.exit
        }
    }

    impl TrackedTask for Fake {
        fn config(&self) -> &TaskConfig {
            &self.config
        }
        fn started_at(&self) -> SystemTime {
            SystemTime::UNIX_EPOCH
        }
    }

    fn fake(id: &str) -> (Arc<Fake>, watch::Sender<Option<Exited>>) {
        let (tx, rx) = watch::channel(None);
        let config = TaskConfig {
            id: id.into(),
            task_name: "web".into(),
            ..TaskConfig::default()
        };
        (Arc::new(Fake { config, exit: rx }), tx)
    }

    #[tokio::test]
    async fn the_loser_of_a_start_race_is_undone_and_refused() {
        let table = TaskTable::default();
        let (first, _tx1) = fake("t1");
        let (second, _tx2) = fake("t1");
        table
            .insert_or_undo(first, |_| async {})
            .await
            .expect("first");
        let undone = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&undone);
        let err = table
            .insert_or_undo(second, |_| async move {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            })
            .await
            .expect_err("second start of t1");
        assert!(matches!(err, DriverError::TaskAlreadyExists { ref task_id } if task_id == "t1"));
        assert!(undone.load(std::sync::atomic::Ordering::SeqCst));
        assert!(table.contains("t1"));
        assert!(table.remove("t1").is_some());
        assert!(matches!(
            table.get("t1"),
            Err(DriverError::TaskNotFound { .. })
        ));
    }

    #[test]
    fn cpu_rate_needs_two_readings_and_never_goes_negative() {
        let rate = CpuRate::default();
        assert_eq!(rate.percent(1_000), None);
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(rate.percent(1_000_000).is_some_and(|p| p > 0.0));
        std::thread::sleep(std::time::Duration::from_millis(2));
        // A counter that went backwards (a restarted cgroup) reads as idle, not negative.
        assert_eq!(rate.percent(10), Some(0.0));
    }

    #[test]
    fn status_follows_the_exit() {
        let (task, tx) = fake("t1");
        assert_eq!(task.status().state, TaskState::Running);
        assert!(task.status().exit_result.is_none());
        tx.send_replace(Some(Exited {
            result: ExitResult::code(3),
            at: SystemTime::UNIX_EPOCH,
        }));
        let status = task.status();
        assert_eq!(status.state, TaskState::Exited);
        assert_eq!(status.exit_result.map(|r| r.exit_code), Some(3));
        assert_eq!(status.completed_at, Some(SystemTime::UNIX_EPOCH));
        assert_eq!(status.name, "web");
    }
}
