use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::job::{
    ConsulConnect, ConsulProxy, ConsulSidecarService, ConsulUpstream, ParameterizedJobConfig,
    Resources, Service,
};
use crate::structs::{AllocatedResources, AllocatedSharedResources, AllocatedTaskResources};

const ALLOC_ID: &str = "8d378542-27d1-47ff-5ed7-dd69e2a30121";
const HOST_IP: &str = "10.0.0.5";

fn map(pairs: &[(&str, &str)]) -> Map {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn port(label: &str, value: u16, to: i32) -> Port {
    Port {
        label: label.into(),
        value,
        to,
        host_network: String::new().into(),
    }
}

fn mapping(label: &str, value: u16, to: i32) -> AllocatedPortMapping {
    AllocatedPortMapping {
        label: label.into(),
        value,
        to,
        host_ip: HOST_IP.into(),
    }
}

fn node() -> Node {
    Node {
        id: "9afa5da1-8f39-25a2-48dc-ba31fd7c0023".into(),
        name: "client-1".into(),
        datacenter: "dc1".into(),
        node_class: "large".into(),
        node_pool: "prod".into(),
        attributes: map(&[
            ("kernel.name", "linux"),
            ("unique.network.ip-address", HOST_IP),
        ]),
        meta: map(&[("rack", "r1")]),
        ..Node::default()
    }
}

/// Ports of the group network: a static port, a dynamic port, and a dynamic port mapped to
/// 9000 inside the allocation; in bridge mode `http` is mapped to itself (`to = -1`), as
/// Connect does.
fn group_ports(mode: &str) -> (Vec<Port>, Vec<Port>) {
    let http_to = if mode == "bridge" { -1 } else { 0 };
    (
        vec![port("db", 5432, 0)],
        vec![port("http", 23456, http_to), port("admin", 25000, 9000)],
    )
}

fn job(mode: &str) -> Job {
    let (reserved, dynamic) = group_ports(mode);
    let server = Task {
        name: "server".into(),
        driver: "docker".into(),
        meta: map(&[("level", "task"), ("my-key", "${node.class}")]),
        resources: Some(Resources {
            cpu: Some(500),
            memory_mb: Some(256),
            ..Resources::default()
        }),
        ..Task::default()
    };
    let shipper = Task {
        name: "log-shipper".into(),
        driver: "raw_exec".into(),
        ..Task::default()
    };
    let web = Service {
        name: "web".into(),
        port_label: "http".into(),
        connect: Some(ConsulConnect {
            sidecar_service: Some(ConsulSidecarService {
                proxy: Some(ConsulProxy {
                    upstreams: vec![
                        ConsulUpstream {
                            destination_name: "count-api".into(),
                            local_bind_port: 8080,
                            ..ConsulUpstream::default()
                        },
                        ConsulUpstream {
                            destination_name: "db.primary".into(),
                            local_bind_port: 5433,
                            ..ConsulUpstream::default()
                        },
                    ],
                    ..ConsulProxy::default()
                }),
                ..ConsulSidecarService::default()
            }),
            ..ConsulConnect::default()
        }),
        ..Service::default()
    };
    Job {
        id: "web".into(),
        name: "web-name".into(),
        parent_id: "web-periodic".into(),
        meta: map(&[("owner", "job"), ("tier", "job"), ("level", "job")]),
        task_groups: vec![TaskGroup {
            name: "app".into(),
            meta: map(&[("tier", "group"), ("level", "group")]),
            networks: vec![NetworkResource {
                mode: mode.into(),
                reserved_ports: reserved,
                dynamic_ports: dynamic,
                ..NetworkResource::default()
            }],
            services: vec![web],
            tasks: vec![server, shipper],
            ..TaskGroup::default()
        }],
        ..Job::default()
    }
}

fn alloc(mode: &str) -> Allocation {
    let (reserved, dynamic) = group_ports(mode);
    let ports = reserved
        .iter()
        .chain(&dynamic)
        .map(|p| mapping(&p.label, p.value, p.to))
        .collect();
    let mut server = AllocatedTaskResources::default();
    server.cpu.cpu_shares = 500;
    server.memory.memory_mb = 256;
    server.memory.memory_max_mb = 512;
    let mut shipper = AllocatedTaskResources {
        networks: vec![NetworkResource {
            ip: HOST_IP.into(),
            dynamic_ports: vec![port("metrics", 26000, 0)],
            ..NetworkResource::default()
        }],
        ..AllocatedTaskResources::default()
    };
    shipper.cpu.cpu_shares = 100;
    shipper.memory.memory_mb = 64;
    Allocation {
        id: ALLOC_ID.into(),
        name: "web.app[2]".into(),
        namespace: "prod-ns".into(),
        task_group: "app".into(),
        job: Some(Arc::new(job(mode))),
        allocated_resources: Some(AllocatedResources {
            tasks: [
                ("server".to_owned(), server),
                ("log-shipper".to_owned(), shipper),
            ]
            .into_iter()
            .collect(),
            shared: AllocatedSharedResources {
                networks: vec![NetworkResource {
                    mode: mode.into(),
                    ip: HOST_IP.into(),
                    reserved_ports: reserved,
                    dynamic_ports: dynamic,
                    ..NetworkResource::default()
                }],
                ports,
                ..AllocatedSharedResources::default()
            },
            ..AllocatedResources::default()
        }),
        ..Allocation::default()
    }
}

fn isolated_dirs() -> TaskDirView {
    TaskDirView {
        alloc_dir: "/alloc".into(),
        local_dir: "/local".into(),
        secrets_dir: "/secrets".into(),
    }
}

fn build(alloc: &Allocation, task: &str) -> TaskEnv {
    let mut b = TaskEnvBuilder::new(alloc, task, &node()).unwrap();
    b.dirs(&isolated_dirs());
    b.build()
}

#[track_caller]
fn assert_vars(env: &TaskEnv, want: &[(&str, &str)]) {
    for (name, value) in want {
        assert_eq!(
            env.env().get(*name).map(String::as_str),
            Some(*value),
            "{name} in {:#?}",
            env.env()
        );
    }
}

#[track_caller]
fn assert_unset(env: &TaskEnv, names: &[&str]) {
    for name in names {
        assert_eq!(env.env().get(*name), None, "{name} should be unset");
    }
}

#[test]
fn identity_directories_and_limits() {
    let alloc = alloc("host");
    let mut b = TaskEnvBuilder::new(&alloc, "server", &node()).unwrap();
    b.dirs(&TaskDirView {
        alloc_dir: "/var/nomad/alloc/8d37/alloc".into(),
        local_dir: "/var/nomad/alloc/8d37/server/local".into(),
        secrets_dir: "/var/nomad/alloc/8d37/server/secrets".into(),
    })
    .cgroup_parent("nomad.slice");
    let env = b.build();
    assert_vars(
        &env,
        &[
            ("NOMAD_ALLOC_DIR", "/var/nomad/alloc/8d37/alloc"),
            ("NOMAD_TASK_DIR", "/var/nomad/alloc/8d37/server/local"),
            ("NOMAD_SECRETS_DIR", "/var/nomad/alloc/8d37/server/secrets"),
            ("NOMAD_MEMORY_LIMIT", "256"),
            ("NOMAD_MEMORY_MAX_LIMIT", "512"),
            ("NOMAD_CPU_LIMIT", "500"),
            ("NOMAD_ALLOC_ID", ALLOC_ID),
            ("NOMAD_SHORT_ALLOC_ID", "8d378542"),
            ("NOMAD_ALLOC_NAME", "web.app[2]"),
            ("NOMAD_ALLOC_INDEX", "2"),
            ("NOMAD_TASK_NAME", "server"),
            ("NOMAD_GROUP_NAME", "app"),
            ("NOMAD_JOB_ID", "web"),
            ("NOMAD_JOB_NAME", "web-name"),
            ("NOMAD_JOB_PARENT_ID", "web-periodic"),
            ("NOMAD_DC", "dc1"),
            ("NOMAD_NAMESPACE", "prod-ns"),
            ("NOMAD_REGION", "global"),
            ("NOMAD_PARENT_CGROUP", "nomad.slice"),
        ],
    );
    assert_unset(&env, &["NOMAD_CPU_CORES", "VAULT_TOKEN", "NOMAD_TOKEN"]);
}

#[test]
fn isolated_directories_and_region() {
    let alloc = alloc("host");
    let mut b = TaskEnvBuilder::new(&alloc, "server", &node()).unwrap();
    b.dirs(&isolated_dirs()).region("eu-west");
    let env = b.build();
    assert_vars(
        &env,
        &[
            ("NOMAD_ALLOC_DIR", "/alloc"),
            ("NOMAD_TASK_DIR", "/local"),
            ("NOMAD_SECRETS_DIR", "/secrets"),
            ("NOMAD_REGION", "eu-west"),
        ],
    );
    assert_eq!(env.lookup("node.region"), Some("eu-west"));
    assert_unset(&env, &["NOMAD_PARENT_CGROUP"]);
}

#[test]
fn region_defaults_to_the_jobs() {
    let mut alloc = alloc("host");
    if let Some(job) = alloc.job.as_mut().map(Arc::make_mut) {
        job.region = Some("ap-south".into());
    }
    let env = build(&alloc, "server");
    assert_vars(&env, &[("NOMAD_REGION", "ap-south")]);
    assert_eq!(env.interpolate("${node.region}"), "ap-south");
}

#[test]
fn namespace_defaults_to_the_jobs() {
    let mut alloc = alloc("host");
    alloc.namespace = crate::structs::ArcStr::new();
    assert_vars(&build(&alloc, "server"), &[("NOMAD_NAMESPACE", "default")]);
}

#[test]
fn reserved_cores_use_cpuset_notation() {
    let mut alloc = alloc("host");
    if let Some(tr) = alloc
        .allocated_resources
        .as_mut()
        .and_then(|r| r.tasks.get_mut("server"))
    {
        tr.cpu.reserved_cores = vec![7, 0, 2, 1, 12, 13, 14, 7];
    }
    assert_vars(
        &build(&alloc, "server"),
        &[("NOMAD_CPU_CORES", "0-2,7,12-14")],
    );
}

#[test]
fn cpuset_list_notation() {
    assert_eq!(cpuset_list(&[]), "");
    assert_eq!(cpuset_list(&[5]), "5");
    assert_eq!(cpuset_list(&[4, 3]), "3-4");
    assert_eq!(cpuset_list(&[0, 2, 4]), "0,2,4");
    assert_eq!(cpuset_list(&[u16::MAX, u16::MAX - 1, 0]), "0,65534-65535");
}

#[test]
fn limits_fall_back_to_the_tasks_resources() {
    let mut alloc = alloc("host");
    alloc.allocated_resources = None;
    let env = build(&alloc, "server");
    assert_vars(
        &env,
        &[("NOMAD_CPU_LIMIT", "500"), ("NOMAD_MEMORY_LIMIT", "256")],
    );
    assert_unset(
        &env,
        &[
            "NOMAD_MEMORY_MAX_LIMIT",
            "NOMAD_PORT_http",
            "NOMAD_ADDR_http",
        ],
    );
}

#[test]
fn short_alloc_id_of_a_short_id() {
    let mut alloc = alloc("host");
    alloc.id = "abc".into();
    alloc.name = "no-index".into();
    let env = build(&alloc, "server");
    assert_vars(
        &env,
        &[("NOMAD_ALLOC_ID", "abc"), ("NOMAD_SHORT_ALLOC_ID", "abc")],
    );
    assert_unset(&env, &["NOMAD_ALLOC_INDEX"]);
}

#[test]
fn group_ports_in_host_mode() {
    let env = build(&alloc("host"), "server");
    assert_vars(
        &env,
        &[
            // Static port.
            ("NOMAD_IP_db", HOST_IP),
            ("NOMAD_PORT_db", "5432"),
            ("NOMAD_ADDR_db", "10.0.0.5:5432"),
            ("NOMAD_HOST_IP_db", HOST_IP),
            ("NOMAD_HOST_PORT_db", "5432"),
            ("NOMAD_HOST_ADDR_db", "10.0.0.5:5432"),
            ("NOMAD_ALLOC_PORT_db", "5432"),
            // Dynamic port.
            ("NOMAD_IP_http", HOST_IP),
            ("NOMAD_PORT_http", "23456"),
            ("NOMAD_ADDR_http", "10.0.0.5:23456"),
            ("NOMAD_HOST_PORT_http", "23456"),
            ("NOMAD_HOST_ADDR_http", "10.0.0.5:23456"),
            ("NOMAD_ALLOC_PORT_http", "23456"),
            // Dynamic port with `to`: the task binds `to`, the host listens on the port.
            ("NOMAD_PORT_admin", "9000"),
            ("NOMAD_ALLOC_PORT_admin", "9000"),
            ("NOMAD_HOST_PORT_admin", "25000"),
            ("NOMAD_ADDR_admin", "10.0.0.5:25000"),
            ("NOMAD_HOST_ADDR_admin", "10.0.0.5:25000"),
            ("NOMAD_IP_admin", HOST_IP),
        ],
    );
    // No allocation network namespace in host mode.
    assert_unset(
        &env,
        &[
            "NOMAD_ALLOC_IP_http",
            "NOMAD_ALLOC_ADDR_http",
            "NOMAD_ALLOC_INTERFACE_http",
        ],
    );
}

#[test]
fn group_ports_in_bridge_mode() {
    let alloc = alloc("bridge");
    let mut b = TaskEnvBuilder::new(&alloc, "server", &node()).unwrap();
    b.dirs(&isolated_dirs())
        .alloc_network(Some(AllocNetworkStatus {
            interface_name: "eth0".into(),
            address: "172.26.64.10".into(),
        }));
    let env = b.build();
    assert_vars(
        &env,
        &[
            ("NOMAD_PORT_db", "5432"),
            ("NOMAD_ALLOC_ADDR_db", "172.26.64.10:5432"),
            // `to = -1` maps the port to itself.
            ("NOMAD_PORT_http", "23456"),
            ("NOMAD_HOST_PORT_http", "23456"),
            ("NOMAD_ALLOC_PORT_http", "23456"),
            ("NOMAD_ALLOC_IP_http", "172.26.64.10"),
            ("NOMAD_ALLOC_ADDR_http", "172.26.64.10:23456"),
            ("NOMAD_ALLOC_INTERFACE_http", "eth0"),
            ("NOMAD_ADDR_http", "10.0.0.5:23456"),
            // `to = 9000`: inside the namespace the task listens on 9000.
            ("NOMAD_PORT_admin", "9000"),
            ("NOMAD_ALLOC_PORT_admin", "9000"),
            ("NOMAD_ALLOC_IP_admin", "172.26.64.10"),
            ("NOMAD_ALLOC_ADDR_admin", "172.26.64.10:9000"),
            ("NOMAD_HOST_PORT_admin", "25000"),
            ("NOMAD_HOST_IP_admin", HOST_IP),
            ("NOMAD_HOST_ADDR_admin", "10.0.0.5:25000"),
            ("NOMAD_ADDR_admin", "10.0.0.5:25000"),
            ("NOMAD_IP_admin", HOST_IP),
        ],
    );
}

#[test]
fn port_labels_are_sanitised_where_nomad_sanitises() {
    let mut alloc = alloc("host");
    if let Some(res) = alloc.allocated_resources.as_mut() {
        res.shared.networks.clear();
        res.shared.ports = vec![mapping("web-ui", 24000, 8080)];
    }
    let mut b = TaskEnvBuilder::new(&alloc, "server", &node()).unwrap();
    b.alloc_network(Some(AllocNetworkStatus {
        interface_name: "eth0".into(),
        address: "172.26.64.10".into(),
    }));
    let env = b.build();
    assert_vars(
        &env,
        &[
            ("NOMAD_PORT_web_ui", "8080"),
            ("NOMAD_ADDR_web_ui", "10.0.0.5:24000"),
            ("NOMAD_IP_web_ui", HOST_IP),
            ("NOMAD_HOST_PORT_web_ui", "24000"),
            // Nomad leaves these as written.
            ("NOMAD_HOST_IP_web-ui", HOST_IP),
            ("NOMAD_HOST_ADDR_web-ui", "10.0.0.5:24000"),
            ("NOMAD_ALLOC_PORT_web-ui", "8080"),
            ("NOMAD_ALLOC_ADDR_web-ui", "172.26.64.10:8080"),
        ],
    );
    assert_unset(&env, &["NOMAD_PORT_web-ui", "NOMAD_ADDR_web-ui"]);
    // Either spelling finds the sanitised variable.
    assert_eq!(env.get("NOMAD_PORT_web-ui"), Some("8080"));
    assert_eq!(env.interpolate("${NOMAD_ADDR_web-ui}"), "10.0.0.5:24000");
}

#[test]
fn other_tasks_task_level_ports() {
    let env = build(&alloc("host"), "server");
    assert_vars(
        &env,
        &[
            ("NOMAD_ADDR_log_shipper_metrics", "10.0.0.5:26000"),
            ("NOMAD_IP_log_shipper_metrics", HOST_IP),
            ("NOMAD_PORT_log_shipper_metrics", "26000"),
            ("NOMAD_HOST_PORT_log_shipper_metrics", "26000"),
        ],
    );
    // Another task's task-level port is not this task's.
    assert_unset(&env, &["NOMAD_PORT_metrics", "NOMAD_ADDR_server_http"]);
}

#[test]
fn own_task_level_ports_and_the_driver_port_map() {
    let alloc = alloc("host");
    let env = build(&alloc, "log-shipper");
    assert_vars(
        &env,
        &[
            ("NOMAD_IP_metrics", HOST_IP),
            ("NOMAD_IPv4_metrics", HOST_IP),
            ("NOMAD_PORT_metrics", "26000"),
            ("NOMAD_HOST_PORT_metrics", "26000"),
            ("NOMAD_ADDR_metrics", "10.0.0.5:26000"),
            ("NOMAD_MEMORY_LIMIT", "64"),
            ("NOMAD_CPU_LIMIT", "100"),
        ],
    );
    assert_unset(
        &env,
        &["NOMAD_MEMORY_MAX_LIMIT", "NOMAD_ADDR_log_shipper_metrics"],
    );

    let mut b = TaskEnvBuilder::new(&alloc, "log-shipper", &node()).unwrap();
    b.driver_network(Some(DriverNetwork {
        ip: "172.17.0.2".into(),
        port_map: BTreeMap::from([("metrics".to_owned(), 9102)]),
        auto_advertise: false,
    }));
    let env = b.build();
    assert_vars(
        &env,
        &[
            ("NOMAD_PORT_metrics", "9102"),
            ("NOMAD_HOST_PORT_metrics", "26000"),
            ("NOMAD_ADDR_metrics", "10.0.0.5:26000"),
        ],
    );
}

#[test]
fn ipv6_addresses_are_bracketed() {
    let mut alloc = alloc("host");
    if let Some(res) = alloc.allocated_resources.as_mut() {
        if let Some(tr) = res.tasks.get_mut("log-shipper") {
            tr.networks[0].ip = "fd00::5".into();
        }
        res.shared.ports = vec![AllocatedPortMapping {
            label: "http".into(),
            value: 23456,
            to: 0,
            host_ip: "fd00::5".into(),
        }];
    }
    let env = build(&alloc, "log-shipper");
    assert_vars(
        &env,
        &[
            ("NOMAD_ADDR_metrics", "[fd00::5]:26000"),
            ("NOMAD_IPv6_metrics", "fd00::5"),
            ("NOMAD_ADDR_http", "[fd00::5]:23456"),
            ("NOMAD_HOST_ADDR_http", "[fd00::5]:23456"),
        ],
    );
    assert_unset(&env, &["NOMAD_IPv4_metrics"]);
}

#[test]
fn connect_upstreams() {
    let env = build(&alloc("bridge"), "server");
    assert_vars(
        &env,
        &[
            ("NOMAD_UPSTREAM_IP_count-api", "127.0.0.1"),
            ("NOMAD_UPSTREAM_PORT_count-api", "8080"),
            ("NOMAD_UPSTREAM_ADDR_count-api", "127.0.0.1:8080"),
            ("NOMAD_UPSTREAM_IP_count_api", "127.0.0.1"),
            ("NOMAD_UPSTREAM_PORT_count_api", "8080"),
            ("NOMAD_UPSTREAM_ADDR_count_api", "127.0.0.1:8080"),
            ("NOMAD_UPSTREAM_ADDR_db.primary", "127.0.0.1:5433"),
        ],
    );
}

#[test]
fn meta_merges_job_group_and_task() {
    let env = build(&alloc("host"), "server");
    assert_vars(
        &env,
        &[
            ("NOMAD_META_owner", "job"),
            ("NOMAD_META_OWNER", "job"),
            ("NOMAD_META_tier", "group"),
            ("NOMAD_META_TIER", "group"),
            ("NOMAD_META_level", "task"),
            ("NOMAD_META_LEVEL", "task"),
            // Interpolated, and the name sanitised.
            ("NOMAD_META_my_key", "large"),
            ("NOMAD_META_MY_KEY", "large"),
        ],
    );
    assert_unset(&env, &["NOMAD_META_my-key", "NOMAD_META_MY-KEY"]);

    // The other task sees job and group metadata only.
    let env = build(&alloc("host"), "log-shipper");
    assert_vars(
        &env,
        &[("NOMAD_META_level", "group"), ("NOMAD_META_tier", "group")],
    );
    assert_unset(&env, &["NOMAD_META_my_key"]);
}

#[test]
fn meta_written_in_capitals_wins_over_an_upper_cased_key() {
    let mut alloc = alloc("host");
    if let Some(job) = alloc.job.as_mut().map(Arc::make_mut) {
        job.meta = map(&[("foo", "lower"), ("FOO", "upper")]);
    }
    let env = build(&alloc, "server");
    assert_vars(
        &env,
        &[("NOMAD_META_FOO", "upper"), ("NOMAD_META_foo", "lower")],
    );
}

#[test]
fn dispatched_jobs_default_optional_meta_to_empty() {
    let mut alloc = alloc("host");
    if let Some(job) = alloc.job.as_mut().map(Arc::make_mut) {
        job.dispatched = true;
        job.parameterized_job = Some(ParameterizedJobConfig {
            meta_optional: vec!["color".into(), "owner".into()],
            ..ParameterizedJobConfig::default()
        });
    }
    let env = build(&alloc, "server");
    assert_vars(
        &env,
        &[
            ("NOMAD_META_color", ""),
            ("NOMAD_META_COLOR", ""),
            ("NOMAD_META_owner", "job"),
        ],
    );
}

#[test]
fn layers_override_in_nomads_order() {
    let mut alloc = alloc("host");
    if let Some(task) = alloc.job.as_mut().map(Arc::make_mut).and_then(|j| {
        j.task_groups[0]
            .tasks
            .iter_mut()
            .find(|t| t.name == "server")
    }) {
        task.env = map(&[
            ("PATH", "${PATH}:/opt/bin"),
            ("FROM_TASK", "task ${NOMAD_TASK_NAME}"),
            ("BY_HOOK", "task"),
            ("BY_TEMPLATE", "task"),
            ("NOMAD_META_level", "from env"),
            ("NOMAD_PORT_web-ui", "1"),
        ]);
    }
    let mut b = TaskEnvBuilder::new(&alloc, "server", &node()).unwrap();
    b.dirs(&isolated_dirs())
        .host_env([
            ("PATH".to_owned(), "/usr/bin".to_owned()),
            ("NOMAD_ALLOC_ID".to_owned(), "from host".to_owned()),
            ("HOST_ONLY".to_owned(), "${NOMAD_TASK_DIR}/h".to_owned()),
        ])
        .hook_env(
            "devices",
            map(&[("BY_HOOK", "hook ${FROM_TASK}"), ("HOOKED", "1")]),
        )
        .hook_env("secrets", map(&[("HOOKED", "2")]))
        .hook_env(
            "devices",
            map(&[("BY_HOOK", "hook again ${FROM_TASK}"), ("HOOKED", "3")]),
        )
        .template_env(map(&[("BY_TEMPLATE", "${NOT_INTERPOLATED}")]));
    let env = b.build();
    assert_vars(
        &env,
        &[
            ("PATH", "/usr/bin:/opt/bin"),
            ("NOMAD_ALLOC_ID", ALLOC_ID),
            ("HOST_ONLY", "/local/h"),
            ("FROM_TASK", "task server"),
            ("BY_HOOK", "hook again task server"),
            // "devices" keeps its place before "secrets".
            ("HOOKED", "2"),
            ("BY_TEMPLATE", "${NOT_INTERPOLATED}"),
            ("NOMAD_META_level", "from env"),
            ("NOMAD_PORT_web_ui", "1"),
        ],
    );
}

#[test]
fn env_entries_refer_to_each_other() {
    let mut alloc = alloc("host");
    if let Some(task) = alloc.job.as_mut().map(Arc::make_mut).and_then(|j| {
        j.task_groups[0]
            .tasks
            .iter_mut()
            .find(|t| t.name == "server")
    }) {
        task.env = map(&[
            ("A", "${B}/a"),
            ("B", "${C}/b"),
            ("C", "${NOMAD_TASK_DIR}"),
            ("BY_INDEX", r#"${env["B"]}!"#),
            ("SELF", "${SELF}x"),
            ("CYCLE1", "${CYCLE2}"),
            ("CYCLE2", "${CYCLE1}"),
            (
                "NODE",
                "${attr.kernel.name}-${meta.rack}-${node.unique.name}",
            ),
            ("META", "${NOMAD_META_tier}"),
            ("UNKNOWN", "${NOPE} ${attr.nope}"),
        ]);
    }
    let env = build(&alloc, "server");
    assert_vars(
        &env,
        &[
            ("A", "/local/b/a"),
            ("B", "/local/b"),
            ("C", "/local"),
            ("BY_INDEX", "/local/b!"),
            ("SELF", "${SELF}x"),
            ("CYCLE1", "${CYCLE1}"),
            ("CYCLE2", "${CYCLE1}"),
            ("NODE", "linux-r1-client-1"),
            ("META", "group"),
            ("UNKNOWN", "${NOPE} ${attr.nope}"),
        ],
    );
}

#[test]
fn long_env_chains_stop_without_exhausting_the_stack() {
    let mut alloc = alloc("host");
    let n = 5000;
    let mut chain: Map = (0..n)
        .map(|i| (format!("V{i:05}"), format!("${{V{:05}}}", i + 1)))
        .collect();
    chain.insert(format!("V{n:05}"), "end".into());
    if let Some(task) = alloc.job.as_mut().map(Arc::make_mut).and_then(|j| {
        j.task_groups[0]
            .tasks
            .iter_mut()
            .find(|t| t.name == "server")
    }) {
        task.env = chain;
    }
    let env = build(&alloc, "server");
    assert_eq!(env.get(&format!("V{n:05}")), Some("end"));
    assert_eq!(env.get(&format!("V{:05}", n - 1)), Some("end"));
    // Nesting stops after MAX_ENV_NESTING references; what is left stays as written.
    let first = env.get("V00000").unwrap();
    assert!(first.starts_with("${V"), "{first}");
}

#[test]
fn vault_and_workload_tokens() {
    let alloc = alloc("host");
    let mut b = TaskEnvBuilder::new(&alloc, "server", &node()).unwrap();
    b.dirs(&isolated_dirs())
        .vault_token("s.secret", "ns1", false);
    assert_unset(&b.build(), &["VAULT_TOKEN", "VAULT_NAMESPACE"]);

    b.vault_token("s.secret", "ns1", true)
        .default_workload_token("jwt-default")
        .workload_token("consul", "jwt-consul");
    let env = b.build();
    assert_vars(
        &env,
        &[
            ("VAULT_TOKEN", "s.secret"),
            ("VAULT_NAMESPACE", "ns1"),
            ("NOMAD_TOKEN", "jwt-default"),
            ("NOMAD_TOKEN_consul", "jwt-consul"),
            ("NOMAD_UNIX_ADDR", "unix:///secrets/api.sock"),
        ],
    );

    b.vault_token("s.secret", "", true);
    assert_unset(&b.build(), &["VAULT_NAMESPACE"]);
}

#[test]
fn node_variables_are_available_for_interpolation() {
    let env = build(&alloc("host"), "server");
    let vars = env.node_vars();
    for (name, value) in [
        ("node.unique.id", "9afa5da1-8f39-25a2-48dc-ba31fd7c0023"),
        ("node.unique.name", "client-1"),
        ("node.datacenter", "dc1"),
        ("node.region", "global"),
        ("node.class", "large"),
        ("node.pool", "prod"),
        ("attr.kernel.name", "linux"),
        ("attr.unique.network.ip-address", HOST_IP),
        ("meta.rack", "r1"),
    ] {
        assert_eq!(vars.get(name).map(String::as_str), Some(value), "{name}");
    }
    // Node variables are not environment variables.
    assert_unset(&env, &["attr.kernel.name", "node.class"]);
}

#[test]
fn group_environment_has_no_task() {
    let alloc = alloc("host");
    let env = TaskEnvBuilder::for_group(&alloc, &node()).unwrap().build();
    assert_vars(
        &env,
        &[
            ("NOMAD_GROUP_NAME", "app"),
            ("NOMAD_PORT_admin", "9000"),
            ("NOMAD_ADDR_log_shipper_metrics", "10.0.0.5:26000"),
            ("NOMAD_META_level", "group"),
        ],
    );
    assert_unset(
        &env,
        &["NOMAD_TASK_NAME", "NOMAD_CPU_LIMIT", "NOMAD_MEMORY_LIMIT"],
    );
}

#[test]
fn allocations_that_do_not_describe_the_task_are_refused() {
    let node = node();
    let mut a = alloc("host");
    assert_eq!(
        TaskEnvBuilder::new(&a, "nope", &node).unwrap_err(),
        EnvError::NoTask {
            alloc_id: ALLOC_ID.into(),
            job_id: "web".into(),
            group: "app".into(),
            task: "nope".into(),
        }
    );
    a.task_group = "other".into();
    let err = TaskEnvBuilder::new(&a, "server", &node).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("allocation \"{ALLOC_ID}\": job \"web\" has no group \"other\"")
    );
    a.job = None;
    assert!(matches!(
        TaskEnvBuilder::for_group(&a, &node),
        Err(EnvError::NoJob { .. })
    ));
}

#[test]
fn builds_from_an_empty_allocation_without_panicking() {
    let alloc = Allocation {
        job: Some(Arc::new(Job {
            task_groups: vec![TaskGroup {
                tasks: vec![Task::default()],
                ..TaskGroup::default()
            }],
            ..Job::default()
        })),
        ..Allocation::default()
    };
    let env = TaskEnvBuilder::new(&alloc, "", &Node::default())
        .unwrap()
        .build();
    assert_vars(
        &env,
        &[("NOMAD_NAMESPACE", "default"), ("NOMAD_REGION", "global")],
    );
    assert_unset(&env, &["NOMAD_ALLOC_ID", "NOMAD_TASK_DIR", "NOMAD_DC"]);
}

#[test]
fn to_list_is_sorted_name_value_pairs() {
    let env = TaskEnv::from_parts(map(&[("B", "2"), ("A", "1")]), Map::new());
    assert_eq!(env.to_list(), ["A=1", "B=2"]);
}
