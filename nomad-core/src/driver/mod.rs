//! The task driver contract.
//!
//! A task driver runs the tasks of allocations: `raw_exec` runs host processes, `docker` runs
//! containers, and anyone can add a driver of their own by implementing [`TaskDriver`]. This
//! module holds the trait and everything it speaks of, and nothing that needs a runtime:
//!
//! * [`TaskDriver`], with a worked example and each method's contract errors;
//! * [`TaskConfig`] (what a task is started with: ids, environment, resources, directories,
//!   log files and rotation, kill signal, ports) and [`TaskDirs`], Nomad's directory layout;
//! * [`TaskHandle`], the serialisable state a driver needs to [`recover`](TaskDriver::recover)
//!   a task after the agent restarted;
//! * [`ExitResult`], [`TaskStatus`], [`TaskResourceUsage`], [`Fingerprint`], [`Capabilities`];
//! * [`ConfigSchema`], which checks a task's `config` block and names the offending field;
//! * [`EventSink`] and [`EventFanout`], how drivers report events without a runtime;
//! * [`DriverError`], the contract errors.

mod config;
mod error;
mod events;
mod schema;
mod task_driver;
mod types;

pub use config::{LogConfig, NetworkIsolation, PortMapping, TaskConfig, TaskDirs, TaskResources};
pub use error::{BoxError, DriverError};
pub use events::{DriverEvent, EventBuffer, EventFanout, EventSink};
pub use schema::{parse_duration, ConfigSchema, FieldKind, SchemaField};
pub use task_driver::TaskDriver;
pub use types::{
    Capabilities, CpuUsage, DriverNetwork, ExecResult, ExitResult, Fingerprint, FsIsolation,
    HealthState, MemoryUsage, MountConfigSupport, NetIsolationMode, StartedTask, TaskDirView,
    TaskHandle, TaskResourceUsage, TaskState, TaskStatus,
};
