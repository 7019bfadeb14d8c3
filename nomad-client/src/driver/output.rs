//! A task's output stream fed through a named pipe into its rotated log files.
//!
//! The task gets the pipe opened for reading and writing: as long as it runs, the pipe has a
//! writer and a reader, so the task never receives SIGPIPE, even while no agent reads (between
//! an agent's exit and its successor's recovery, when up to a pipe buffer of output waits).
//! The agent reads the pipe by its path, which the task handle stores, and copies what it
//! reads into `<stdout_path>.<n>` files.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::sys::stat::Mode;
use nomad_core::driver::{DriverError, LogConfig};
use tokio::task::JoinHandle;

use crate::logs::RotatingLog;

/// One output stream of a task being started or recovered.
#[derive(Debug)]
pub(crate) struct TaskOutput {
    fifo: Option<PathBuf>,
    writer: Option<std::fs::File>,
}

impl TaskOutput {
    /// Creates the pipe at `fifo` (replacing a stale one) and opens it; `None` discards the
    /// stream. Blocking: call it off the async threads.
    pub(crate) fn create(fifo: Option<PathBuf>) -> io::Result<Self> {
        let Some(path) = fifo else {
            return Ok(Self {
                fifo: None,
                writer: None,
            });
        };
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        nix::unistd::mkfifo(&path, Mode::S_IRUSR | Mode::S_IWUSR).map_err(io::Error::from)?;
        // Opening a pipe for reading and writing never blocks, and keeps it open both ways.
        let writer = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)?;
        Ok(Self {
            fifo: Some(path),
            writer: Some(writer),
        })
    }

    /// An existing pipe of a recovered task, to be read again.
    pub(crate) fn reopen(fifo: Option<PathBuf>) -> Self {
        Self { fifo, writer: None }
    }

    /// What the child process gets as this stream.
    pub(crate) fn child_stdio(&self) -> Result<Stdio, DriverError> {
        match &self.writer {
            Some(file) => file
                .try_clone()
                .map(Stdio::from)
                .map_err(|err| DriverError::other("duplicating the output pipe", err)),
            None => Ok(Stdio::null()),
        }
    }

    /// The stream as a file descriptor for a process started other than through
    /// [`std::process::Command`] (a container runtime): the pipe's writing end, or `/dev/null`
    /// when the stream is discarded.
    pub(crate) fn child_fd(&self) -> io::Result<std::os::fd::OwnedFd> {
        match &self.writer {
            Some(file) => file.try_clone().map(Into::into),
            None => std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .map(Into::into),
        }
    }

    /// Starts copying the pipe into the log at `base` until every writer closed it.
    pub(crate) fn spawn_copier(&self, base: &Path, logs: LogConfig) -> Option<JoinHandle<()>> {
        let fifo = self.fifo.as_ref()?;
        let receiver = match tokio::net::unix::pipe::OpenOptions::new().open_receiver(fifo) {
            Ok(receiver) => receiver,
            Err(err) => {
                tracing::warn!(fifo = %fifo.display(), error = %err, "cannot read task output");
                return None;
            }
        };
        let base = base.to_path_buf();
        Some(tokio::spawn(async move {
            let copied = match RotatingLog::open(&base, logs).await {
                Ok(mut log) => log.copy_from(receiver).await,
                Err(err) => Err(err),
            };
            if let Err(err) = copied {
                tracing::warn!(log = %base.display(), error = %err, "copying task output failed");
            }
        }))
    }
}
