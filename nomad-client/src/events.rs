//! Task events, named as Nomad names them.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nomad_core::driver::ExitResult;
use nomad_core::structs::TaskEvent;

/// The task was received by the client.
pub const TASK_RECEIVED: &str = "Received";
/// The task's directories and hooks are being set up.
pub const TASK_SETUP: &str = "Task Setup";
/// A prestart hook failed.
pub const TASK_SETUP_FAILURE: &str = "Setup Failure";
/// The driver could not start the task.
pub const TASK_DRIVER_FAILURE: &str = "Driver Failure";
/// The task's configuration was refused.
pub const TASK_FAILED_VALIDATION: &str = "Failed Validation";
/// The task started.
pub const TASK_STARTED: &str = "Started";
/// The task exited.
pub const TASK_TERMINATED: &str = "Terminated";
/// The task is being killed.
pub const TASK_KILLING: &str = "Killing";
/// The task was killed.
pub const TASK_KILLED: &str = "Killed";
/// The task will be restarted.
pub const TASK_RESTARTING: &str = "Restarting";
/// The task will not be restarted.
pub const TASK_NOT_RESTARTING: &str = "Not Restarting";
/// Another task of the group failed.
pub const TASK_SIBLING_FAILED: &str = "Sibling Task Failed";
/// The group's leader task is dead.
pub const TASK_LEADER_DEAD: &str = "Leader Task Dead";
/// The group's main tasks are dead (sidecars are stopped).
pub const TASK_MAIN_DEAD: &str = "Main Tasks Dead";
/// A restart was requested (template re-render, user).
pub const TASK_RESTART_SIGNAL: &str = "Restart Signaled";
/// A signal is being sent to the task.
pub const TASK_SIGNALING: &str = "Signaling";
/// A hook failed after the task started.
pub const TASK_HOOK_FAILED: &str = "Task hook failed";
/// Artifacts are being fetched.
pub const TASK_DOWNLOADING_ARTIFACTS: &str = "Downloading Artifacts";

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A new event of `event_type` stamped now.
pub fn event(event_type: &str) -> TaskEvent {
    TaskEvent {
        event_type: event_type.to_owned(),
        time: now_nanos(),
        details: BTreeMap::new(),
        ..TaskEvent::default()
    }
}

/// An event with a message (also its display message).
pub fn with_message(event_type: &str, message: impl Into<String>) -> TaskEvent {
    let message = message.into();
    TaskEvent {
        display_message: message.clone(),
        message,
        ..event(event_type)
    }
}

/// `Terminated` with the exit code, signal and OOM flag.
pub fn terminated(exit: &ExitResult) -> TaskEvent {
    let mut e = event(TASK_TERMINATED);
    e.exit_code = exit.exit_code;
    e.signal = exit.signal.unwrap_or(0);
    e.display_message = format!(
        "Exit Code: {}{}",
        exit.exit_code,
        exit.signal
            .map(|s| format!(", Signal: {s}"))
            .unwrap_or_default()
    );
    if exit.oom_killed {
        e.details.insert("oom_killed".into(), "true".into());
        e.display_message.push_str(", Exit Message: \"OOM Killed\"");
    }
    if let Some(err) = &exit.error {
        e.message = err.clone();
    }
    e.details
        .insert("exit_code".into(), exit.exit_code.to_string());
    e
}

/// `Restarting` with the reason and delay.
pub fn restarting(reason: &str, delay: Duration) -> TaskEvent {
    let mut e = with_message(
        TASK_RESTARTING,
        format!("{reason} - Task restarting in {delay:?}"),
    );
    e.restart_reason = reason.to_owned();
    e.start_delay = i64::try_from(delay.as_nanos()).unwrap_or(i64::MAX);
    e
}

/// `Not Restarting` with the reason; fails the task.
pub fn not_restarting(reason: &str) -> TaskEvent {
    let mut e = with_message(TASK_NOT_RESTARTING, reason);
    e.restart_reason = reason.to_owned();
    e.fails_task = true;
    e
}

/// `Killing` with the kill timeout.
pub fn killing(timeout: Duration) -> TaskEvent {
    let mut e = with_message(
        TASK_KILLING,
        format!("Sent interrupt. Waiting {timeout:?} before force killing"),
    );
    e.kill_timeout = nomad_core::job::Duration::from_nanos(
        u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX),
    );
    e
}

/// An event that fails the task, with the driver's or hook's error.
pub fn failure(event_type: &str, error: impl Into<String>) -> TaskEvent {
    let error = error.into();
    let mut e = with_message(event_type, error.clone());
    e.driver_error = error;
    e.fails_task = true;
    e
}
