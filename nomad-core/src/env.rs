//! The task environment (`NOMAD_*`) and `${...}` interpolation.
//!
//! * [`TaskEnvBuilder`] builds a task's [`TaskEnv`] from its allocation (and the job it
//!   carries), the node, the task's directories, the networks and what the client's hooks add,
//!   with every variable Nomad documents, in Nomad's precedence order (listed on
//!   [`TaskEnvBuilder`]). Variable names are in [`names`].
//! * [`interpolate`] resolves `${NOMAD_*}` and any other variable of the environment,
//!   `${attr.<name>}`, `${meta.<key>}`, `${node.unique.id}`, `${node.unique.name}`,
//!   `${node.datacenter}`, `${node.region}`, `${node.class}`, `${node.pool}` and
//!   `${env["X"]}`. References that resolve to nothing are left as written, as in Nomad;
//!   `$${` is an escape for a literal `${`.
//! * [`interpolate_task`] and [`interpolate_service`] apply it to everything the client
//!   resolves before starting a task: env, driver config (any depth), services and checks,
//!   template paths, artifacts, volume mounts.
//! * [`resolve_target`] resolves constraint, affinity and spread targets against a node for
//!   the scheduler: `${attr.kernel.name}` → `Some("linux")`, `None` when the node lacks it.
//!
//! Where Nomad's result depends on Go's random map order (`env` entries referring to each
//! other, two metadata keys that upper-case alike, names that collide once sanitised) the
//! result here is deterministic, as documented on [`TaskEnvBuilder`].
//!
//! Nothing here does I/O: the host's environment, the Vault token, the allocation's network
//! status and the environment of templates and hooks are handed in by the client.
//!
//! # Example
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//!
//! use nomad_core::driver::TaskDirView;
//! use nomad_core::env::{interpolate, TaskEnvBuilder};
//! use nomad_core::job::{Job, Task, TaskGroup};
//! use nomad_core::structs::{
//!     AllocatedPortMapping, AllocatedResources, AllocatedSharedResources, Allocation, Node,
//! };
//!
//! let task = Task {
//!     name: "server".into(),
//!     driver: "docker".into(),
//!     env: BTreeMap::from([("LISTEN".into(), "0.0.0.0:${NOMAD_PORT_http}".into())]),
//!     ..Task::default()
//! };
//! let job = Job {
//!     id: "web".into(),
//!     name: "web".into(),
//!     task_groups: vec![TaskGroup {
//!         name: "app".into(),
//!         tasks: vec![task],
//!         ..TaskGroup::default()
//!     }],
//!     ..Job::default()
//! };
//! let alloc = Allocation {
//!     id: "8d378542-27d1-47ff-5ed7-dd69e2a30121".into(),
//!     name: "web.app[0]".into(),
//!     namespace: "default".into(),
//!     task_group: "app".into(),
//!     job: Some(Arc::new(job)),
//!     allocated_resources: Some(AllocatedResources {
//!         shared: AllocatedSharedResources {
//!             ports: vec![AllocatedPortMapping {
//!                 label: "http".into(),
//!                 value: 23456,
//!                 to: 8080,
//!                 host_ip: "10.0.0.5".into(),
//!             }],
//!             ..AllocatedSharedResources::default()
//!         },
//!         ..AllocatedResources::default()
//!     }),
//!     ..Allocation::default()
//! };
//! let node = Node {
//!     id: "9afa5da1-8f39-25a2-48dc-ba31fd7c0023".into(),
//!     datacenter: "dc1".into(),
//!     attributes: BTreeMap::from([("kernel.name".into(), "linux".into())]),
//!     ..Node::default()
//! };
//!
//! let mut builder = TaskEnvBuilder::new(&alloc, "server", &node)?;
//! builder.dirs(&TaskDirView {
//!     alloc_dir: "/alloc".into(),
//!     local_dir: "/local".into(),
//!     secrets_dir: "/secrets".into(),
//! });
//! let env = builder.build();
//!
//! assert_eq!(env.get("NOMAD_SHORT_ALLOC_ID"), Some("8d378542"));
//! assert_eq!(env.get("NOMAD_PORT_http"), Some("8080"));
//! assert_eq!(env.get("NOMAD_HOST_PORT_http"), Some("23456"));
//! assert_eq!(env.get("NOMAD_ADDR_http"), Some("10.0.0.5:23456"));
//! assert_eq!(env.get("LISTEN"), Some("0.0.0.0:8080"));
//! assert_eq!(
//!     interpolate("${NOMAD_TASK_DIR}/${attr.kernel.name}/${node.datacenter} ${HOME}", &env),
//!     "/local/linux/dc1 ${HOME}",
//! );
//! # Ok::<(), nomad_core::env::EnvError>(())
//! ```

mod builder;
mod interpolate;
pub mod names;
mod task;
mod task_env;

pub use builder::{AllocNetworkStatus, EnvError, TaskEnvBuilder};
pub use interpolate::{clean_env_name, interpolate, interpolate_constraint_target, resolve_target};
pub use task::{interpolate_json, interpolate_service, interpolate_task};
pub use task_env::TaskEnv;
