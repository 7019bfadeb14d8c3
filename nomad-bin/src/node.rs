//! `nomad node status`, `nomad node drain` and `nomad node eligibility`.

use std::process::ExitCode;

use clap::Subcommand;
use nomad_api::{DrainSpec, NodeListStub, QueryOptions};
use nomad_core::structs::Node;

use crate::api::{check_prefix, resolve, Api, Resolved};
use crate::format::{kv, short, table};

/// `nomad node` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Client nodes, or one node's details and allocations.
    Status {
        /// Show full IDs.
        #[arg(long)]
        verbose: bool,
        /// A node ID or prefix; every node when omitted.
        id: Option<String>,
    },
    /// Start or stop draining a node: its allocations move elsewhere.
    Drain {
        /// Start draining.
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Stop draining.
        #[arg(long)]
        disable: bool,
        /// How long allocations get to migrate (e.g. `1h`); `0` waits forever.
        #[arg(long, value_name = "DURATION")]
        deadline: Option<String>,
        /// Leave the allocations of system jobs.
        #[arg(long = "ignore-system")]
        ignore_system: bool,
        /// Return at once (the drain is not followed).
        #[arg(long)]
        detach: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// The node ID or prefix.
        id: String,
    },
    /// Mark a node eligible or ineligible for new allocations.
    Eligibility {
        /// Eligible.
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Ineligible.
        #[arg(long)]
        disable: bool,
        /// The node ID or prefix.
        id: String,
    },
}

async fn find_node(api: &Api, id: &str) -> anyhow::Result<Option<Node>> {
    check_prefix("Node", id)?;
    let (list, _) = api
        .client
        .nodes(&Api::prefix(id))
        .await
        .map_err(|e| api.explain("Error querying node", e))?;
    match resolve(list, id, |n: &NodeListStub| n.id.as_str()) {
        Resolved::One(stub) => {
            let (n, _) = api
                .client
                .node(&stub.id, &Api::q())
                .await
                .map_err(|e| api.explain("Error querying node", e))?;
            Ok(Some(n))
        }
        Resolved::Many(list) => {
            eprintln!("Prefix matched multiple nodes\n");
            eprint!("{}", nodes_table(&list, false));
            Ok(None)
        }
        Resolved::None => {
            eprintln!("No node(s) with prefix \"{id}\" found");
            Ok(None)
        }
    }
}

fn nodes_table(nodes: &[NodeListStub], verbose: bool) -> String {
    let mut rows = vec![[
        "ID",
        "Node Pool",
        "DC",
        "Name",
        "Class",
        "Drain",
        "Eligibility",
        "Status",
    ]
    .map(String::from)
    .to_vec()];
    for n in nodes {
        rows.push(vec![
            if verbose { n.id.clone() } else { short(&n.id) },
            n.node_pool.clone(),
            n.datacenter.clone(),
            n.name.clone(),
            if n.node_class.is_empty() {
                "<none>".into()
            } else {
                n.node_class.clone()
            },
            n.drain.to_string(),
            n.scheduling_eligibility.clone(),
            n.status.clone(),
        ]);
    }
    table(&rows)
}

/// Runs a `node` subcommand.
pub(crate) async fn run(cmd: NodeCommand, api: &Api) -> anyhow::Result<ExitCode> {
    match cmd {
        NodeCommand::Status { verbose, id: None } => {
            let (nodes, _) = api
                .client
                .nodes(&Api::q())
                .await
                .map_err(|e| api.explain("Error querying node status", e))?;
            if nodes.is_empty() {
                println!("No nodes registered");
            } else {
                print!("{}", nodes_table(&nodes, verbose));
            }
            Ok(ExitCode::SUCCESS)
        }
        NodeCommand::Status {
            verbose,
            id: Some(id),
        } => {
            let Some(n) = find_node(api, &id).await? else {
                return Ok(ExitCode::from(1));
            };
            let drivers: Vec<String> = n
                .drivers
                .iter()
                .filter(|(_, d)| d.detected)
                .map(|(k, _)| k.clone())
                .collect();
            let none = |s: &str| {
                if s.is_empty() {
                    "<none>".to_string()
                } else {
                    s.to_string()
                }
            };
            print!(
                "{}",
                kv(&[
                    (
                        "ID",
                        if verbose {
                            n.id.to_string()
                        } else {
                            short(&n.id)
                        }
                    ),
                    ("Name", n.name.to_string()),
                    ("Node Pool", n.node_pool.clone()),
                    ("Class", none(&n.node_class)),
                    ("DC", n.datacenter.clone()),
                    ("Drain", n.drain.to_string()),
                    ("Eligibility", n.scheduling_eligibility.clone()),
                    ("Status", n.status.clone()),
                    ("HTTP Address", none(&n.http_addr)),
                    ("Driver Status", drivers.join(",")),
                ])
            );
            if !n.meta.is_empty() {
                println!("\nMeta");
                let pairs: Vec<(&str, String)> = n
                    .meta
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.clone()))
                    .collect();
                print!("{}", kv(&pairs));
            }
            let (allocs, _) = api
                .client
                .node_allocations(&n.id, &QueryOptions::default())
                .await
                .map_err(|e| api.explain("Error querying node allocations", e))?;
            let (cpu, mem) = allocs
                .iter()
                .filter(|a| !a.terminal())
                .filter_map(|a| a.allocated_resources.as_ref())
                .flat_map(|r| r.tasks.values())
                .fold((0u64, 0u64), |(c, m), t| {
                    (c + t.cpu.cpu_shares, m + t.memory.memory_mb)
                });
            let (cpu_total, mem_total) = n
                .node_resources
                .as_ref()
                .map_or((0, 0), |r| (r.cpu.cpu_shares, r.memory.memory_mb));
            println!("\nAllocated Resources");
            print!(
                "{}",
                table(&[
                    vec!["CPU".into(), "Memory".into()],
                    vec![
                        format!("{cpu}/{cpu_total} MHz"),
                        format!("{mem} MiB/{mem_total} MiB")
                    ],
                ])
            );
            println!("\nAllocations");
            if allocs.is_empty() {
                println!("No allocations placed");
            } else {
                let stubs: Vec<nomad_api::AllocListStub> = allocs
                    .iter()
                    .map(|a| nomad_api::AllocListStub {
                        id: a.id.to_string(),
                        node_id: a.node_id.to_string(),
                        task_group: a.task_group.to_string(),
                        job_version: a.job.as_ref().and_then(|j| j.version),
                        desired_status: a.desired_status.to_string(),
                        client_status: a.client_status.to_string(),
                        create_time: a.create_time,
                        modify_time: a.modify_time,
                        ..nomad_api::AllocListStub::default()
                    })
                    .collect();
                print!("{}", crate::job_remote::allocs_table(&stubs, verbose, true));
            }
            Ok(ExitCode::SUCCESS)
        }
        NodeCommand::Drain {
            enable,
            disable,
            deadline,
            ignore_system,
            detach: _,
            yes: _,
            id,
        } => {
            if enable == disable {
                anyhow::bail!("Either the '-enable' or '-disable' flag must be set");
            }
            let Some(n) = find_node(api, &id).await? else {
                return Ok(ExitCode::from(1));
            };
            if enable {
                let deadline_ns = match deadline.as_deref() {
                    None => 3600 * 1_000_000_000,
                    Some(d) => i64::try_from(
                        nomad_core::job::Duration::parse(d)
                            .map_err(|e| anyhow::anyhow!("Invalid -deadline {d:?}: {e}"))?
                            .as_nanos(),
                    )
                    .unwrap_or(i64::MAX),
                };
                let spec = DrainSpec {
                    deadline: deadline_ns,
                    ignore_system_jobs: ignore_system,
                };
                api.client
                    .drain_node(&n.id, Some(&spec), false)
                    .await
                    .map_err(|e| api.explain("Error updating drain specification", e))?;
                println!(
                    "{}: Node \"{}\" drain strategy set",
                    crate::format::now(),
                    n.id
                );
            } else {
                api.client
                    .drain_node(&n.id, None, false)
                    .await
                    .map_err(|e| api.explain("Error updating drain specification", e))?;
                println!("Node \"{}\" drain strategy unset", n.id);
            }
            Ok(ExitCode::SUCCESS)
        }
        NodeCommand::Eligibility {
            enable,
            disable,
            id,
        } => {
            if enable == disable {
                anyhow::bail!("Either the '-enable' or '-disable' flag must be set");
            }
            let Some(n) = find_node(api, &id).await? else {
                return Ok(ExitCode::from(1));
            };
            let (value, words) = if enable {
                ("eligible", "eligible for scheduling")
            } else {
                ("ineligible", "ineligible for scheduling")
            };
            api.client
                .node_eligibility(&n.id, value)
                .await
                .map_err(|e| api.explain("Error updating scheduling eligibility", e))?;
            println!("Node \"{}\" scheduling eligibility set: {words}", n.id);
            Ok(ExitCode::SUCCESS)
        }
    }
}
