//! Property tests: whatever the cluster and jobs, no node is over-committed (CPU, memory,
//! devices, ports), distinct_hosts and distinct_property hold, the count is met whenever
//! some node still has room, and the same seed gives the same placements.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use nomad_core::job::{
    Constraint, Job, NetworkResource, Port, RequestedDevice, Resources, Task, TaskGroup,
};
use nomad_core::structs::{Evaluation, Node, NodeDevice, NodeDeviceResource, NodeResources};
use nomad_sched::{MemState, NodeUsage, SchedState, Scheduler, SchedulerOptions};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct NodeSpec {
    cpu: u64,
    mem: u64,
    rack: u8,
    gpus: usize,
}

#[derive(Debug, Clone)]
struct JobSpec {
    count: u32,
    cpu: u32,
    mem: u32,
    static_port: Option<u16>,
    dynamic_ports: usize,
    gpus: u64,
    distinct_hosts: bool,
    distinct_property: Option<u32>,
    batch: bool,
}

fn node_strategy() -> impl Strategy<Value = NodeSpec> {
    (1000u64..8000, 1024u64..8192, 0u8..3, 0usize..3).prop_map(|(cpu, mem, rack, gpus)| NodeSpec {
        cpu,
        mem,
        rack,
        gpus,
    })
}

fn job_strategy() -> impl Strategy<Value = JobSpec> {
    (
        1u32..12,
        100u32..1500,
        100u32..2000,
        prop::option::of(prop::sample::select(vec![80u16, 443, 8080])),
        0usize..3,
        0u64..2,
        any::<bool>(),
        prop::option::of(1u32..3),
        any::<bool>(),
    )
        .prop_map(
            |(
                count,
                cpu,
                mem,
                static_port,
                dynamic_ports,
                gpus,
                distinct_hosts,
                distinct_property,
                batch,
            )| JobSpec {
                count,
                cpu,
                mem,
                static_port,
                dynamic_ports,
                gpus,
                distinct_hosts,
                distinct_property,
                batch,
            },
        )
}

fn build_state(nodes: &[NodeSpec]) -> MemState {
    let mut state = MemState::new();
    for (i, n) in nodes.iter().enumerate() {
        let mut node = Node {
            id: format!("node-{i}").into(),
            name: format!("n{i}").into(),
            datacenter: "dc1".into(),
            status: "ready".into(),
            node_resources: Some(NodeResources::default()),
            ..Node::default()
        };
        if let Some(r) = &mut node.node_resources {
            r.cpu.cpu_shares = n.cpu;
            r.memory.memory_mb = n.mem;
            r.disk.disk_mb = 1_000_000;
            // A small dynamic range so that port exhaustion happens.
            r.min_dynamic_port = 20000;
            r.max_dynamic_port = 20005;
            if n.gpus > 0 {
                r.devices.push(NodeDeviceResource {
                    vendor: "nvidia".into(),
                    device_type: "gpu".into(),
                    name: "t4".into(),
                    instances: (0..n.gpus)
                        .map(|g| NodeDevice {
                            id: format!("gpu-{i}-{g}"),
                            healthy: true,
                            ..NodeDevice::default()
                        })
                        .collect(),
                    attributes: BTreeMap::new(),
                });
            }
        }
        node.attributes.insert("driver.docker".into(), "1".into());
        node.meta.insert("rack".into(), format!("r{}", n.rack));
        state.upsert_node(node);
    }
    state
}

fn build_job(id: &str, j: &JobSpec) -> Job {
    let mut network = NetworkResource::default();
    if let Some(p) = j.static_port {
        network.reserved_ports.push(Port {
            label: "static".into(),
            value: p,
            ..Port::default()
        });
    }
    for d in 0..j.dynamic_ports {
        network.dynamic_ports.push(Port {
            label: format!("dyn{d}").into(),
            ..Port::default()
        });
    }
    let mut constraints = Vec::new();
    if j.distinct_hosts {
        constraints.push(Constraint::new("", "distinct_hosts", ""));
    }
    if let Some(n) = j.distinct_property {
        constraints.push(Constraint::new(
            "${meta.rack}",
            "distinct_property",
            n.to_string(),
        ));
    }
    let mut job = Job {
        id: id.into(),
        job_type: Some(if j.batch { "batch" } else { "service" }.into()),
        task_groups: vec![TaskGroup {
            name: "app".into(),
            count: Some(j.count),
            constraints,
            networks: vec![network],
            tasks: vec![Task {
                name: "main".into(),
                driver: "docker".into(),
                resources: Some(Resources {
                    cpu: Some(j.cpu),
                    memory_mb: Some(j.mem),
                    devices: if j.gpus > 0 {
                        vec![RequestedDevice {
                            name: "nvidia/gpu".into(),
                            count: Some(j.gpus),
                            ..RequestedDevice::default()
                        }]
                    } else {
                        Vec::new()
                    },
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

fn run(state: &mut MemState, job: Job, seed: u64) -> nomad_sched::EvalOutcome {
    let job = state.upsert_job(job);
    let eval = Evaluation {
        id: format!("eval-{}", job.id),
        job_id: job.id.clone(),
        eval_type: job.job_type.clone().unwrap_or_default(),
        ..Evaluation::default()
    };
    Scheduler::new(SchedulerOptions {
        seed,
        ..SchedulerOptions::default()
    })
    .process(&eval, state)
    .expect("in-memory scheduling does not fail")
}

fn check_invariants(
    state: &MemState,
    jobs: &[(String, JobSpec, nomad_sched::EvalOutcome)],
) -> Result<(), TestCaseError> {
    for (i, node) in state.nodes().iter().enumerate() {
        let idx = i as u32;
        let live: Vec<_> = state
            .allocs_by_node(idx)
            .iter()
            .filter(|a| !a.terminal())
            .collect();
        let mut used = NodeUsage::default();
        let mut ports = BTreeSet::new();
        let mut devices = BTreeSet::new();
        for a in &live {
            used.add(&NodeUsage::of_alloc(a));
            for p in a
                .allocated_resources
                .iter()
                .flat_map(|r| r.shared.ports.iter())
            {
                prop_assert!(
                    ports.insert((p.host_ip.clone(), p.value)),
                    "port {} twice on {}",
                    p.value,
                    node.id
                );
            }
            for t in a.allocated_resources.iter().flat_map(|r| r.tasks.values()) {
                for d in &t.devices {
                    for id in &d.device_ids {
                        prop_assert!(
                            devices.insert(id.clone()),
                            "device {} twice on {}",
                            id,
                            node.id
                        );
                    }
                }
            }
        }
        let cap = state.node_capacity(idx);
        prop_assert!(
            used.cpu <= cap.cpu,
            "cpu over-committed on {}: {} > {}",
            node.id,
            used.cpu,
            cap.cpu
        );
        prop_assert!(
            used.memory_mb <= cap.memory_mb,
            "memory over-committed on {}",
            node.id
        );
        let kept = state.node_usage(idx);
        prop_assert_eq!(
            (used.cpu, used.memory_mb, used.disk_mb),
            (kept.cpu, kept.memory_mb, kept.disk_mb),
            "running totals drifted on {}",
            node.id
        );
        // The dynamic-port count the scheduler's shortcut reads matches the port index.
        if let Some(p) = state.port_index(idx) {
            prop_assert_eq!(
                cap.dynamic_ports.saturating_sub(kept.dynamic_ports),
                p.dynamic_free(0)
            );
        }
    }
    for (id, spec, outcome) in jobs {
        let live: Vec<_> = state
            .allocs_by_job("default", id)
            .iter()
            .filter(|a| !a.terminal())
            .collect();
        prop_assert!(live.len() <= spec.count as usize);
        if spec.distinct_hosts {
            let hosts: BTreeSet<&str> = live.iter().map(|a| a.node_id.as_str()).collect();
            prop_assert_eq!(
                hosts.len(),
                live.len(),
                "distinct_hosts violated for {}",
                id
            );
        }
        if let Some(limit) = spec.distinct_property {
            let mut per_rack: HashMap<String, u32> = HashMap::new();
            for a in &live {
                let idx = state
                    .node_idx(&a.node_id)
                    .expect("allocations run on known nodes");
                let rack = state.nodes()[idx as usize].meta["rack"].clone();
                *per_rack.entry(rack).or_default() += 1;
            }
            prop_assert!(
                per_rack.values().all(|&n| n <= limit),
                "distinct_property violated for {}: {:?}",
                id,
                per_rack
            );
        }
        let failed: u32 = outcome.failed.values().sum();
        prop_assert_eq!(
            live.len() + failed as usize,
            spec.count as usize,
            "every allocation is placed or reported failed"
        );
        if failed > 0 {
            // The count falls short only when no node has room for one more.
            prop_assert!(
                !room_for_one_more(state, id, spec),
                "job {} failed {} placements but a node had room",
                id,
                failed
            );
        }
    }
    Ok(())
}

/// True when some node could take one more allocation of the job right now.
fn room_for_one_more(state: &MemState, id: &str, spec: &JobSpec) -> bool {
    let live: Vec<_> = state
        .allocs_by_job("default", id)
        .iter()
        .filter(|a| !a.terminal())
        .cloned()
        .collect();
    let mut rack_counts: HashMap<String, u32> = HashMap::new();
    for a in &live {
        let idx = state
            .node_idx(&a.node_id)
            .expect("allocations run on known nodes");
        *rack_counts
            .entry(state.nodes()[idx as usize].meta["rack"].clone())
            .or_default() += 1;
    }
    (0..state.nodes().len() as u32).any(|idx| {
        let node = &state.nodes()[idx as usize];
        if spec.distinct_hosts && live.iter().any(|a| a.node_id == node.id) {
            return false;
        }
        if let Some(limit) = spec.distinct_property {
            if rack_counts.get(&node.meta["rack"]).copied().unwrap_or(0) >= limit {
                return false;
            }
        }
        let cap = state.node_capacity(idx);
        let used = state.node_usage(idx);
        if used.cpu + u64::from(spec.cpu) > cap.cpu
            || used.memory_mb + u64::from(spec.mem) > cap.memory_mb
        {
            return false;
        }
        let allocs = state.allocs_by_node(idx);
        let mut ask = NetworkResource::default();
        if let Some(p) = spec.static_port {
            ask.reserved_ports.push(Port {
                label: "s".into(),
                value: p,
                ..Port::default()
            });
        }
        for d in 0..spec.dynamic_ports {
            ask.dynamic_ports.push(Port {
                label: format!("d{d}").into(),
                ..Port::default()
            });
        }
        let ports_ok = state
            .port_index(idx)
            .is_some_and(|p| p.check(&ask, &[]).is_ok());
        let gpus_used: usize = allocs
            .iter()
            .filter(|a| !a.terminal())
            .flat_map(|a| a.allocated_resources.iter().flat_map(|r| r.tasks.values()))
            .map(|t| t.devices.iter().map(|d| d.device_ids.len()).sum::<usize>())
            .sum();
        let gpus_total: usize = node
            .node_resources
            .iter()
            .flat_map(|r| r.devices.iter())
            .map(|d| d.instances.len())
            .sum();
        ports_ok && gpus_total - gpus_used >= spec.gpus as usize
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn placements_respect_capacity_and_constraints(
        nodes in prop::collection::vec(node_strategy(), 1..10),
        jobs in prop::collection::vec(job_strategy(), 1..5),
        seed in any::<u64>(),
    ) {
        let mut state = build_state(&nodes);
        let mut done = Vec::new();
        for (i, spec) in jobs.iter().enumerate() {
            let id = format!("job{i}");
            let outcome = run(&mut state, build_job(&id, spec), seed);
            done.push((id, spec.clone(), outcome));
        }
        check_invariants(&state, &done)?;
    }

    #[test]
    fn the_same_seed_gives_the_same_placements(
        nodes in prop::collection::vec(node_strategy(), 1..8),
        jobs in prop::collection::vec(job_strategy(), 1..4),
        seed in any::<u64>(),
    ) {
        let place = || {
            let mut state = build_state(&nodes);
            for (i, spec) in jobs.iter().enumerate() {
                run(&mut state, build_job(&format!("job{i}"), spec), seed);
            }
            let mut v: Vec<(String, nomad_core::structs::ArcStr, Vec<u16>)> = state
                .allocs()
                .map(|a| (a.name.clone(), a.node_id.clone(), a.allocated_resources.iter().flat_map(|r| r.shared.ports.iter().map(|p| p.value)).collect()))
                .collect();
            v.sort();
            v
        };
        prop_assert_eq!(place(), place());
    }
}
