//! The first process of an exec task's PID namespace.
//!
//! The task's command cannot be process 1 of its namespace itself: the kernel drops every
//! signal sent to a namespace's first process for which it has no handler, so a task that
//! never installs one (`sleep`) would ignore its stop signal. libcontainer runs an
//! [`Executor`] as that process once the container is set up; ours forks the command,
//! forwards every signal it receives to it, reaps whatever the namespace orphans, and when
//! the command ends writes how it ended to the task's exit file (which the agent reads, even
//! after a restart) and exits with the command's code, or 128 + its signal.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use nomad_core::driver::ExitResult;
use oci_spec::runtime::Spec;

/// The executor libcontainer runs as the task's process 1.
#[derive(Debug, Clone)]
pub(crate) struct SupervisingExecutor {
    /// The task's exit file, opened by the agent before the container was created: the
    /// container's processes inherit it, and process 1 never loses it (it does not exec).
    exit_file: Arc<File>,
}

impl SupervisingExecutor {
    /// An executor that records the command's end in `exit_file`.
    pub(crate) fn new(exit_file: File) -> Self {
        Self {
            exit_file: Arc::new(exit_file),
        }
    }
}

impl Executor for SupervisingExecutor {
    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }

    #[allow(unsafe_code)]
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        // This process never executes anything: descriptors it inherited from the agent
        // would stay open for the task's lifetime.
        let keep: BTreeSet<RawFd> = [0, 1, 2, self.exit_file.as_raw_fd()].into();
        close_other_descriptors(&keep);
        // Block every signal before forking, so that none sent between the fork and the
        // first wait is lost; the command gets the previous mask back before it runs.
        let all = SigSet::all();
        let mut previous = SigSet::empty();
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), Some(&mut previous))
            .map_err(|err| ExecutorError::Other(format!("blocking signals: {err}")))?;
        // SAFETY: this is the container's init process, which libcontainer cloned from a
        // single thread; it has exactly one thread, so the child may run any code.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&previous), None);
                // Returns only when the command could not be executed.
                let err = DefaultExecutor {}.exec(spec);
                let _ = writeln!(std::io::stderr(), "exec driver: {err:?}");
                std::process::exit(127)
            }
            Ok(ForkResult::Parent { child }) => supervise(child, &all, &self.exit_file),
            Err(err) => Err(ExecutorError::Other(format!("forking the command: {err}"))),
        }
    }
}

/// Forwards signals to `child` until it ends, then records its end and exits.
fn supervise(child: Pid, signals: &SigSet, exit_file: &File) -> ! {
    loop {
        let Ok(signal) = signals.wait() else {
            continue;
        };
        if signal != Signal::SIGCHLD {
            let _ = kill(child, signal);
            continue;
        }
        // Reap every child that ended: the command, and orphans the namespace handed to us.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => {
                    record(exit_file, &format!("exit {code}"));
                    std::process::exit(code)
                }
                Ok(WaitStatus::Signaled(pid, signal, _)) if pid == child => {
                    record(exit_file, &format!("signal {}", signal as i32));
                    std::process::exit(128 + signal as i32)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

fn record(mut exit_file: &File, line: &str) {
    let _ = writeln!(exit_file, "{line}");
    let _ = exit_file.sync_all();
}

/// Runs `setup` in a child process forked from this one and returns the text it reported.
///
/// libcontainer clones its processes with raw `clone3`, which, unlike the C library's `fork`,
/// does not make the allocator's locks consistent in the child: cloned from a busy
/// multi-threaded agent, a container's first process can block forever on a lock another
/// thread held. Forking first gives libcontainer a single-threaded parent to clone from.
/// The child also closes every descriptor but 0, 1, 2 and `keep`, so that no container
/// holds another task's log pipes open.
///
/// Blocking: call it off the async threads.
pub(crate) fn in_forked_child(
    keep: &[RawFd],
    setup: impl FnOnce() -> Result<String, String>,
) -> Result<String, String> {
    let (reader, writer) = nix::unistd::pipe().map_err(|err| format!("making a pipe: {err}"))?;
    // SAFETY: the child is a copy of a multi-threaded process with only the forking thread.
    // The C library's fork leaves its allocator usable in the child; the child then only
    // runs libcontainer's setup, which takes no lock of this crate or of the async runtime,
    // and exits without returning to the caller.
    #[allow(unsafe_code)]
    let forked = unsafe { fork() };
    match forked {
        Ok(ForkResult::Child) => {
            drop(reader);
            let mut keep: BTreeSet<RawFd> = keep.iter().copied().collect();
            keep.extend([0, 1, 2, writer.as_raw_fd()]);
            close_other_descriptors(&keep);
            let report = match setup() {
                Ok(text) => format!("ok {}\n", text.replace('\n', " ")),
                Err(err) => format!("error {}\n", err.replace('\n', " ")),
            };
            let _ = File::from(writer).write_all(report.as_bytes());
            std::process::exit(0)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(writer);
            // One line: the container's processes may hold copies of the pipe after the
            // child exited, so the end of the report is its newline, not the end of file.
            let mut report = String::new();
            let read = std::io::BufReader::new(File::from(reader)).read_line(&mut report);
            let report = report.trim_end_matches('\n');
            let _ = waitpid(child, None);
            read.map_err(|err| format!("reading the container setup's report: {err}"))?;
            if let Some(text) = report.strip_prefix("ok ") {
                Ok(text.to_owned())
            } else if let Some(err) = report.strip_prefix("error ") {
                Err(err.to_owned())
            } else {
                Err("the container setup process ended without a report".into())
            }
        }
        Err(err) => Err(format!("forking the container setup process: {err}")),
    }
}

fn close_other_descriptors(keep: &BTreeSet<RawFd>) {
    let open: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => return,
    };
    for fd in open.into_iter().filter(|fd| !keep.contains(fd)) {
        // The directory listing's own descriptor is already closed: EBADF is fine.
        let _ = nix::unistd::close(fd);
    }
}

/// Reads an exit file's line: `exit <code>` or `signal <number>`; `None` when the file is
/// empty (process 1 itself was killed) or unreadable.
pub(crate) fn parse_exit(text: &str) -> Option<ExitResult> {
    let mut words = text.split_whitespace();
    let kind = words.next()?;
    let number: i32 = words.next()?.parse().ok()?;
    match kind {
        "exit" => Some(ExitResult::code(number)),
        "signal" => Some(ExitResult::signaled(number)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exit_files() {
        assert_eq!(parse_exit("exit 3\n"), Some(ExitResult::code(3)));
        assert_eq!(parse_exit("signal 9\n"), Some(ExitResult::signaled(9)));
        assert_eq!(parse_exit(""), None);
        assert_eq!(parse_exit("exit x"), None);
        assert_eq!(parse_exit("stopped 1"), None);
    }
}
