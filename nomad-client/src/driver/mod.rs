//! The built-in task drivers.

mod docker;
mod exec;
mod exit;
mod mock;
mod output;
pub(crate) mod process;
mod raw_exec;
mod table;

pub use docker::{DockerConfig, DockerDriver};
pub use exec::{ExecConfig, ExecDriver};
pub use mock::{MockDriver, MockHost};
pub use raw_exec::{RawExecConfig, RawExecDriver};
