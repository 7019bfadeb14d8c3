//! Group commit for the replicated log: the [`WriteBatcher`] keeps one entry in flight and
//! queues the commands submitted meanwhile; when the entry is applied, everything queued
//! goes into the next entry as one [`Command::Batch`]. A lone writer finds the queue
//! empty and its command is written at once, on its own, with no timer; concurrent
//! writers share one Raft entry, one `redb` transaction and one state publication.

use openraft::error::{ClientWriteError, RaftError};
use openraft::Raft;
use tokio::sync::{mpsc, oneshot};

use super::TypeConfig;
use crate::log::Applied;
use crate::state::Command;
use crate::ServerError;

/// The most commands one batched entry carries.
pub(super) const MAX_BATCH: usize = 256;

/// Commands waiting for the batcher; beyond this, writers wait to enqueue.
const QUEUE_DEPTH: usize = 8192;

/// One queued write and where its result goes.
struct Write {
    cmd: Command,
    reply: oneshot::Sender<Result<Applied, ServerError>>,
}

/// The queue in front of the Raft node. Cloning it is cheap; every clone feeds the same
/// batcher task, which ends when the last clone is dropped.
#[derive(Clone)]
pub(super) struct WriteBatcher {
    tx: mpsc::Sender<Write>,
}

impl WriteBatcher {
    /// Starts the batcher task on the current runtime, writing to `raft`.
    pub(super) fn spawn(raft: Raft<TypeConfig>) -> WriteBatcher {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(raft, rx));
        WriteBatcher { tx }
    }

    /// Queues `cmd` and waits until the entry carrying it is committed and applied.
    pub(super) async fn write(&self, cmd: Command) -> Result<Applied, ServerError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Write { cmd, reply })
            .await
            .map_err(|_| ServerError::ShuttingDown)?;
        rx.await.map_err(|_| ServerError::ShuttingDown)?
    }
}

async fn run(raft: Raft<TypeConfig>, mut rx: mpsc::Receiver<Write>) {
    let mut queued: Vec<Write> = Vec::new();
    while let Some(first) = rx.recv().await {
        queued.push(first);
        while queued.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(w) => queued.push(w),
                Err(_) => break,
            }
        }
        if queued.len() == 1 {
            if let Some(w) = queued.pop() {
                let result = client_write(&raft, w.cmd).await;
                let _ = w.reply.send(result);
            }
            continue;
        }
        let (commands, replies): (Vec<Command>, Vec<_>) =
            queued.drain(..).map(|w| (w.cmd, w.reply)).unzip();
        let n = commands.len();
        match client_write(&raft, Command::Batch { commands }).await {
            Ok(applied) if applied.effects.batch.len() == n => {
                for (reply, effects) in replies.into_iter().zip(applied.effects.batch) {
                    let _ = reply.send(Ok(Applied {
                        index: applied.index,
                        effects,
                    }));
                }
            }
            Ok(applied) => {
                let e = ServerError::Storage(format!(
                    "batched entry {} applied {} of {n} commands",
                    applied.index,
                    applied.effects.batch.len()
                ));
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Writes one entry through Raft and maps its errors to the server's.
async fn client_write(raft: &Raft<TypeConfig>, cmd: Command) -> Result<Applied, ServerError> {
    match raft.client_write(cmd).await {
        Ok(resp) => Ok(Applied {
            index: resp.log_id.index,
            effects: resp.data,
        }),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
            Err(ServerError::NoLeader)
        }
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            Err(ServerError::Storage(e.to_string()))
        }
        Err(RaftError::Fatal(openraft::error::Fatal::Stopped)) => Err(ServerError::ShuttingDown),
        Err(RaftError::Fatal(e)) => Err(ServerError::Storage(e.to_string())),
    }
}
