//! The in-process harness: register simulated nodes, submit jobs through the broker,
//! workers and plan applier, and wait until they are placed. What an end-to-end benchmark
//! drives without HTTP.

use std::time::Duration;

use crate::sim::sim_node;
use crate::{Server, ServerError};

impl Server {
    /// Registers `n` simulated nodes (`node-0` ...) from [`crate::sim::sim_node`].
    pub async fn register_sim_nodes(&self, n: usize) -> Result<(), ServerError> {
        for i in 0..n {
            self.register_node(sim_node(i)).await?;
        }
        Ok(())
    }

    /// Waits until the job has at least `count` non-terminal allocations (or `timeout`
    /// passes); returns how many it has.
    pub async fn wait_for_allocs(
        &self,
        namespace: &str,
        job_id: &str,
        count: usize,
        timeout: Duration,
    ) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = 0;
        loop {
            let now = tokio::time::Instant::now();
            let snap = self
                .state()
                .watch_tables(
                    &[crate::Table::Allocs],
                    seen,
                    deadline.min(now + Duration::from_millis(250)),
                )
                .await;
            seen = snap.table_index(crate::Table::Allocs).max(1);
            let live = snap
                .job_allocs(namespace, job_id)
                .iter()
                .filter(|a| !a.terminal())
                .count();
            if live >= count || tokio::time::Instant::now() >= deadline {
                return live;
            }
        }
    }

    /// Waits until the broker is idle (nothing ready, processing, waiting or delayed) and
    /// the plan queue is drained, or `timeout` passes; true when idle.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let s = self.broker().stats();
            if s.ready == 0 && s.unacked == 0 && s.waiting == 0 && s.delayed == 0 {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
