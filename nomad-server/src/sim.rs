//! Simulated nodes and jobs: what tests, benchmarks and embedders use to drive a server
//! without a client agent.

use nomad_core::job::{Job, Resources, Task, TaskGroup};
use nomad_core::structs::{status, DriverInfo, Node, NodeResources};

/// A ready node `node-<i>` in `dc1` with 4 GHz of CPU, 8 GiB of memory, 100 GB of disk and
/// the `raw_exec`, `exec` and `mock` drivers.
pub fn sim_node(i: usize) -> Node {
    let mut node = Node {
        id: format!("node-{i}").into(),
        name: format!("sim-{i}").into(),
        datacenter: "dc1".into(),
        status: status::NODE_READY.into(),
        node_pool: "default".into(),
        http_addr: format!("127.0.0.1:{}", 20000 + (i % 40000)),
        node_resources: Some(NodeResources::default()),
        ..Node::default()
    };
    if let Some(r) = &mut node.node_resources {
        r.cpu.cpu_shares = 4000;
        r.cpu.total_cpu_cores = 4;
        r.memory.memory_mb = 8192;
        r.disk.disk_mb = 100_000;
        r.min_dynamic_port = 20000;
        r.max_dynamic_port = 32000;
    }
    for d in ["raw_exec", "exec", "mock"] {
        node.attributes.insert(format!("driver.{d}"), "1".into());
        node.drivers.insert(
            d.into(),
            DriverInfo {
                detected: true,
                healthy: true,
                ..DriverInfo::default()
            },
        );
    }
    node.attributes.insert("kernel.name".into(), "linux".into());
    node.attributes
        .insert("unique.hostname".into(), format!("sim-{i}"));
    node.compute_class();
    node
}

/// A canonicalized service job `id` with one group `app` of `count` allocations, each one
/// `raw_exec` task asking for 100 MHz and 64 MB.
pub fn sim_job(id: &str, count: u32) -> Job {
    let mut job = Job {
        id: id.into(),
        name: id.into(),
        datacenters: vec!["dc1".into()],
        task_groups: vec![TaskGroup {
            name: "app".into(),
            count: Some(count),
            tasks: vec![Task {
                name: "server".into(),
                driver: "raw_exec".into(),
                resources: Some(Resources {
                    cpu: Some(100),
                    memory_mb: Some(64),
                    ..Resources::default()
                }),
                ..Task::default()
            }],
            ..TaskGroup::default()
        }],
        ..Job::default()
    };
    job.canonicalize();
    job
}
