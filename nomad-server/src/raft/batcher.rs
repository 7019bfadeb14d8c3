//! Group commit for the replicated log: the [`WriteBatcher`] keeps up to two entries in
//! flight (one being written to the file while the one before it is applied to the state)
//! and queues the commands submitted meanwhile; when an entry is applied, everything queued
//! goes into the next entry as one [`Command::Batch`]. A lone writer finds the queue
//! empty and its command is written at once, on its own, with no timer; concurrent
//! writers share one Raft entry, one `redb` transaction and one state publication.
//! Entries are submitted to Raft in the order their commands were queued.

use std::sync::Arc;

use openraft::error::{ClientWriteError, Fatal};
use openraft::Raft;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{Node, NodeId, TypeConfig};
use crate::log::Applied;
use crate::state::Command;
use crate::ServerError;

/// The most commands one batched entry carries.
pub(super) const MAX_BATCH: usize = 256;

/// Entries submitted and not yet applied: while one is applied to the state, the next is
/// encoded and written to the file.
const MAX_ENTRIES_IN_FLIGHT: usize = 2;

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

    /// Queues `cmd` now, before the returned future is first polled (so commands queue
    /// in the order of the calls), and returns a future that waits until the entry
    /// carrying it is committed and applied. When the queue is full, the command queues
    /// when the future is first polled.
    pub(super) fn submit(
        &self,
        cmd: Command,
    ) -> impl std::future::Future<Output = Result<Applied, ServerError>> + Send + 'static {
        let (reply, rx) = oneshot::channel();
        let blocked = match self.tx.try_send(Write { cmd, reply }) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(w)) => Some((self.tx.clone(), w)),
            // The batcher is gone: `rx` reports it.
            Err(mpsc::error::TrySendError::Closed(_)) => None,
        };
        async move {
            if let Some((tx, w)) = blocked {
                tx.send(w).await.map_err(|_| ServerError::ShuttingDown)?;
            }
            rx.await.map_err(|_| ServerError::ShuttingDown)?
        }
    }
}

async fn run(raft: Raft<TypeConfig>, mut rx: mpsc::Receiver<Write>) {
    let slots = Arc::new(Semaphore::new(MAX_ENTRIES_IN_FLIGHT));
    let mut queued: Vec<Write> = Vec::new();
    loop {
        // Wait for room first: what arrives meanwhile goes into the next entry.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        queued.push(first);
        while queued.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(w) => queued.push(w),
                Err(_) => break,
            }
        }
        let (cmd, replies) = if queued.len() == 1 {
            match queued.pop() {
                Some(w) => (w.cmd, Replies::One(w.reply)),
                None => continue,
            }
        } else {
            let (commands, replies): (Vec<Command>, Vec<_>) =
                queued.drain(..).map(|w| (w.cmd, w.reply)).unzip();
            (Command::Batch { commands }, Replies::Batch(replies))
        };
        // Submitted here, in order; the answer is awaited on its own task so that the
        // next entry can be appended while this one is applied.
        match raft.client_write_ff(cmd).await {
            Ok(answer) => {
                tokio::spawn(async move {
                    let result = match answer.await {
                        Ok(r) => r.map_err(client_write_error).map(|resp| Applied {
                            index: resp.log_id.index,
                            effects: resp.data,
                        }),
                        Err(_) => Err(ServerError::ShuttingDown),
                    };
                    replies.send(result);
                    drop(slot);
                });
            }
            Err(e) => replies.send(Err(fatal_error(e))),
        }
    }
}

/// Where the result of one entry goes: its lone writer, or each writer of a batch.
enum Replies {
    One(oneshot::Sender<Result<Applied, ServerError>>),
    Batch(Vec<oneshot::Sender<Result<Applied, ServerError>>>),
}

impl Replies {
    fn send(self, result: Result<Applied, ServerError>) {
        match self {
            Replies::One(reply) => {
                let _ = reply.send(result);
            }
            Replies::Batch(replies) => {
                let n = replies.len();
                match result {
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
    }
}

/// Maps a refused write to the server's error.
fn client_write_error(e: ClientWriteError<NodeId, Node>) -> ServerError {
    match e {
        ClientWriteError::ForwardToLeader(_) => ServerError::NoLeader,
        ClientWriteError::ChangeMembershipError(e) => ServerError::Storage(e.to_string()),
    }
}

/// Maps a stopped or failed Raft node to the server's error.
fn fatal_error(e: Fatal<NodeId>) -> ServerError {
    match e {
        Fatal::Stopped => ServerError::ShuttingDown,
        e => ServerError::Storage(e.to_string()),
    }
}
