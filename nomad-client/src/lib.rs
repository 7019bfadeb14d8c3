//! The node agent.
//!
//! This crate holds what runs on a client node. Today it provides the built-in task drivers,
//! each an implementation of [`nomad_core::driver::TaskDriver`]:
//!
//! * [`RawExecDriver`]: a command on the host in its own process group, its output in rotated
//!   log files, stopped with its kill signal and then SIGKILL; disabled unless
//!   [`RawExecConfig::enabled`] is set;
//! * [`ExecDriver`]: a command isolated in a container (libcontainer): a task root of the
//!   alloc dir and read-only host directories, private PID, IPC and mount namespaces, cgroup
//!   limits; needs root;
//! * [`DockerDriver`]: a container through the Docker Engine API on the local socket;
//! * [`MockDriver`]: tasks scripted by their config, for tests and examples;
//!
//! and [`RotatingLog`], the log files with Nomad's rotation (`<task>.stdout.0`, `.1`, ...).
//!
//! # The agent
//!
//! [`ClientBuilder`] puts a client together: drivers (a driver that fingerprints as
//! undetected, such as a disabled `raw_exec`, is refused to every task), a service provider
//! ([`nomad_discovery::ServiceProvider`]), a `redb` state directory and embedders' hooks.
//! [`Client::run_alloc`] runs an allocation without any server and returns an
//! [`AllocHandle`] that reports task states and events as Nomad names them
//! ([`events`]); [`Client::restore`] re-attaches to the tasks of a previous agent.
//!
//! Each allocation runs its alloc hooks ([`ALLOC_HOOK_ORDER`]) and one task runner per task;
//! each task runner runs its task hooks ([`TASK_HOOK_ORDER`]), starts the task through its
//! driver and applies the restart policy ([`RestartTracker`]). The lifecycle coordinator
//! starts prestart tasks first, main tasks once the prestart ephemeral tasks completed and
//! the prestart sidecars run, poststart tasks once the main tasks started, and poststop
//! tasks once the main tasks are dead; a failed task or a dead leader stops the others.
//!
//! Hooks implement [`AllocHook`] / [`TaskHook`]; one phase runner applies each phase's
//! error policy ([`Phase::policy`]):
//!
//! | runner | phase | on a hook's error |
//! |---|---|---|
//! | alloc | `prerun`, `postrun` | fail fast |
//! | alloc | `update`, `pre_kill`, `destroy`, `shutdown` | run all, errors gathered |
//! | task | `prestart` | fail fast (restarted if recoverable) |
//! | task | `poststart`, `pre_kill`, `exited`, `update`, `stop` | run all, errors gathered |
//!
//! # Example
//!
//! Run a command with `raw_exec` and read its output:
//!
//! ```
//! use std::time::Duration;
//!
//! use nomad_client::RawExecDriver;
//! use nomad_core::driver::{TaskConfig, TaskDirs, TaskDriver};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let alloc_dir = tempfile::tempdir()?;
//! let dirs = TaskDirs::new(alloc_dir.path(), "hello");
//! for dir in dirs.all() {
//!     std::fs::create_dir_all(dir)?;
//! }
//! let config = TaskConfig {
//!     id: "alloc-1/hello/0".into(),
//!     task_name: "hello".into(),
//!     driver_config: serde_json::json!({ "command": "/bin/echo", "args": ["hi there"] }),
//!     stdout_path: dirs.log_dir.join("hello.stdout"),
//!     stderr_path: dirs.log_dir.join("hello.stderr"),
//!     dirs,
//!     ..TaskConfig::default()
//! };
//!
//! let driver = RawExecDriver::enabled();
//! driver.start(&config).await?;
//! let exit = driver.wait(&config.id).await?;
//! assert!(exit.successful());
//! let output = std::fs::read_to_string(config.dirs.log_dir.join("hello.stdout.0"))?;
//! assert_eq!(output, "hi there\n");
//! driver.destroy(&config.id, false).await?;
//!
//! // Disabled, the driver refuses every task.
//! let disabled = RawExecDriver::new(Default::default());
//! assert!(disabled.start(&config).await.is_err());
//! # let _ = Duration::ZERO;
//! # Ok(())
//! # }
//! ```

mod alloc_runner;
mod client;
mod driver;
mod driver_set;
pub mod events;
mod fingerprint;
pub mod hooks;
mod logs;
mod restart;
mod state;
mod task_runner;

pub use driver::{DockerConfig, DockerDriver, MockDriver, MockHost, RawExecConfig, RawExecDriver};
pub use driver::{ExecConfig, ExecDriver};
pub use logs::RotatingLog;

pub use alloc_runner::{client_status, AllocHandle, AllocHookFactory, TaskHookFactory};
pub use client::{Client, ClientBuilder, ClientError};
pub use driver_set::DriverSet;
pub use fingerprint::{fingerprint_node, NodeSettings};
pub use hooks::{
    AllocHook, ErrorPolicy, HookError, Phase, PrestartResponse, TaskHook, ALLOC_HOOK_ORDER,
    TASK_HOOK_ORDER,
};
pub use restart::{RestartDecision, RestartMode, RestartSettings, RestartTracker};
pub use state::{LocalTaskState, StateError, StateStore};
pub use task_runner::TaskControl;
