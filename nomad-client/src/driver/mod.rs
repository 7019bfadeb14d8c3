//! The built-in task drivers.

mod docker;
mod mock;
mod output;
pub(crate) mod process;
mod raw_exec;

pub use docker::{DockerConfig, DockerDriver};
pub use mock::{MockDriver, MockHost};
pub use raw_exec::{RawExecConfig, RawExecDriver};
