//! The built-in task drivers.

mod mock;
mod output;
pub(crate) mod process;
mod raw_exec;

pub use mock::{MockDriver, MockHost};
pub use raw_exec::{RawExecConfig, RawExecDriver};
