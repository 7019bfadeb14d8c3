//! The vocabulary of the orchestrator.
//!
//! `nomad-core` owns everything the other crates share and nothing that needs a runtime:
//!
//! * [`job`]: the job model (job, group, task, network, service, check, lifecycle, ...) in the
//!   JSON shape of the HTTP API;
//! * [`jobspec`]: parsing HCL2 job files (variables, locals, functions) and JSON jobs;
//! * [`job::Job::canonicalize`] and [`job::Job::validate`]: defaults as the server applies them
//!   and every check the server makes, all errors at once;
//! * [`mod@env`]: the task environment (`NOMAD_*`) and `${...}` interpolation;
//! * [`structs`]: cluster objects (node, allocation, evaluation, plan, deployment, service
//!   registration);
//! * [`driver`]: the [`driver::TaskDriver`] contract that task drivers implement.
//!
//! # Example
//!
//! ```
//! use nomad_core::jobspec::{parse_hcl, ParseOptions};
//!
//! let src = r#"
//! job "web" {
//!   datacenters = ["dc1"]
//!   group "app" {
//!     task "server" {
//!       driver = "raw_exec"
//!       config {
//!         command = "/bin/sleep"
//!         args    = ["60"]
//!       }
//!     }
//!   }
//! }
//! "#;
//! let mut job = parse_hcl(src, "web.nomad.hcl", &ParseOptions::default())?;
//! job.canonicalize();
//! job.validate()?;
//! let json = serde_json::to_string_pretty(&job)?;
//! assert!(json.contains("\"TaskGroups\""));
//! println!("{json}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod driver;
pub mod env;
mod error;
pub mod job;
pub mod jobspec;
pub mod structs;

pub use error::{Error, ValidationError, ValidationErrors};
