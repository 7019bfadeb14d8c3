//! `nomad eval status`, `nomad service list|info`, `nomad server members`,
//! `nomad operator raft list-peers` and `nomad status`.

use std::process::ExitCode;

use clap::Subcommand;
use nomad_api::QueryOptions;
use nomad_core::structs::Evaluation;

use crate::api::{check_prefix, resolve, Api, Resolved};
use crate::format::{ago, kv, short, table};

/// `nomad eval` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum EvalCommand {
    /// An evaluation's status and, when placement failed, why.
    Status {
        /// Show full IDs.
        #[arg(long)]
        verbose: bool,
        /// The evaluation ID or prefix.
        id: String,
    },
}

/// `nomad service` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ServiceCommand {
    /// Registered services and their tags.
    List,
    /// The instances of one service.
    Info {
        /// Only instances with this tag.
        #[arg(long, value_name = "TAG")]
        tag: Option<String>,
        /// Show full IDs.
        #[arg(long)]
        verbose: bool,
        /// The service name.
        name: String,
    },
}

/// `nomad server` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ServerCommand {
    /// The servers of the cluster.
    Members,
}

/// `nomad operator` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum OperatorCommand {
    /// Raft operations.
    #[command(subcommand)]
    Raft(RaftCommand),
}

/// `nomad operator raft` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum RaftCommand {
    /// The Raft peers.
    #[command(name = "list-peers")]
    ListPeers,
}

async fn find_eval(api: &Api, id: &str) -> anyhow::Result<Option<Evaluation>> {
    check_prefix("Evaluation", id)?;
    let (list, _) = api
        .client
        .evaluations(&Api::prefix(id))
        .await
        .map_err(|e| api.explain("Error querying evaluation", e))?;
    match resolve(list, id, |e: &Evaluation| e.id.as_str()) {
        Resolved::One(e) => Ok(Some(e)),
        Resolved::Many(list) => {
            eprintln!("Prefix matched multiple evaluations\n");
            let mut rows = vec![["ID", "Priority", "Triggered By", "Job ID", "Status"]
                .map(String::from)
                .to_vec()];
            for e in list {
                rows.push(vec![
                    short(&e.id),
                    e.priority.to_string(),
                    e.triggered_by,
                    e.job_id,
                    e.status,
                ]);
            }
            eprint!("{}", table(&rows));
            Ok(None)
        }
        Resolved::None => {
            eprintln!("No evaluation(s) with prefix or id \"{id}\" found");
            Ok(None)
        }
    }
}

fn or_none(s: &str, verbose: bool) -> String {
    if s.is_empty() {
        "<none>".into()
    } else if verbose {
        s.to_string()
    } else {
        short(s)
    }
}

/// Runs `eval status`.
pub(crate) async fn eval(cmd: EvalCommand, api: &Api) -> anyhow::Result<ExitCode> {
    let EvalCommand::Status { verbose, id } = cmd;
    let Some(e) = find_eval(api, &id).await? else {
        return Ok(ExitCode::from(1));
    };
    print!(
        "{}",
        kv(&[
            ("ID", if verbose { e.id.clone() } else { short(&e.id) }),
            ("Create Time", ago(e.create_time)),
            ("Modify Time", ago(e.modify_time)),
            ("Status", e.status.clone()),
            ("Status Description", or_none(&e.status_description, true)),
            ("Type", e.eval_type.clone()),
            ("TriggeredBy", e.triggered_by.clone()),
            ("Job ID", e.job_id.clone()),
            ("Namespace", e.namespace.clone()),
            ("Priority", e.priority.to_string()),
            (
                "Placement Failures",
                (!e.failed_tg_allocs.is_empty()).to_string()
            ),
            ("Previous Eval", or_none(&e.previous_eval, verbose)),
            ("Next Eval", or_none(&e.next_eval, verbose)),
            ("Blocked Eval", or_none(&e.blocked_eval, verbose)),
        ])
    );
    if !e.failed_tg_allocs.is_empty() {
        println!("\n==> Failed Placements");
        print!(
            "{}",
            crate::job_remote::format_failures(&e.failed_tg_allocs, "")
        );
        if !e.blocked_eval.is_empty() {
            println!(
                "\nEvaluation \"{}\" waiting for additional capacity to place remainder",
                or_none(&e.blocked_eval, verbose)
            );
        }
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `service list` and `service info`.
pub(crate) async fn service(cmd: ServiceCommand, api: &Api) -> anyhow::Result<ExitCode> {
    match cmd {
        ServiceCommand::List => {
            let (list, _) = api
                .client
                .services(&Api::q())
                .await
                .map_err(|e| api.explain("Error listing service registrations", e))?;
            let all_ns = api.client.config().namespace.as_deref() == Some("*");
            let mut rows = vec![if all_ns {
                vec![
                    "Service Name".to_string(),
                    "Namespace".into(),
                    "Tags".into(),
                ]
            } else {
                vec!["Service Name".to_string(), "Tags".into()]
            }];
            for ns in &list {
                for s in &ns.services {
                    let tags = format!("[{}]", s.tags.join(","));
                    rows.push(if all_ns {
                        vec![s.service_name.clone(), ns.namespace.clone(), tags]
                    } else {
                        vec![s.service_name.clone(), tags]
                    });
                }
            }
            if rows.len() == 1 {
                println!("No service registrations found");
            } else {
                print!("{}", table(&rows));
            }
            Ok(ExitCode::SUCCESS)
        }
        ServiceCommand::Info { tag, verbose, name } => {
            let (regs, _) = api
                .client
                .service(&name, tag.as_deref(), &Api::q())
                .await
                .map_err(|e| api.explain("Error listing service registrations", e))?;
            if regs.is_empty() {
                eprintln!("No service registrations found for \"{name}\"");
                return Ok(ExitCode::from(1));
            }
            let mut rows = vec![["Job ID", "Address", "Tags", "Node ID", "Alloc ID"]
                .map(String::from)
                .to_vec()];
            for r in regs {
                rows.push(vec![
                    r.job_id.clone(),
                    format!("{}:{}", r.address, r.port),
                    format!("[{}]", r.tags.join(",")),
                    if verbose {
                        r.node_id.clone()
                    } else {
                        short(&r.node_id)
                    },
                    if verbose {
                        r.alloc_id.clone()
                    } else {
                        short(&r.alloc_id)
                    },
                ]);
            }
            print!("{}", table(&rows));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs `server members`.
pub(crate) async fn server(cmd: ServerCommand, api: &Api) -> anyhow::Result<ExitCode> {
    let ServerCommand::Members = cmd;
    let members = api
        .client
        .agent_members()
        .await
        .map_err(|e| api.explain("Error querying servers", e))?;
    let leader = api.client.status_leader().await.unwrap_or_default();
    let mut rows = vec![[
        "Name",
        "Address",
        "Port",
        "Status",
        "Leader",
        "Raft Version",
        "Build",
        "Datacenter",
        "Region",
    ]
    .map(String::from)
    .to_vec()];
    for m in members.members {
        let tag = |k: &str| m.tags.get(k).cloned().unwrap_or_default();
        let rpc = format!("{}:{}", m.addr, tag("port"));
        rows.push(vec![
            m.name.clone(),
            m.addr.clone(),
            m.port.to_string(),
            m.status.clone(),
            (rpc == leader).to_string(),
            tag("raft_vsn"),
            tag("build"),
            tag("dc"),
            tag("region"),
        ]);
    }
    print!("{}", table(&rows));
    Ok(ExitCode::SUCCESS)
}

/// Runs `operator raft list-peers`.
pub(crate) async fn operator(cmd: OperatorCommand, api: &Api) -> anyhow::Result<ExitCode> {
    let OperatorCommand::Raft(RaftCommand::ListPeers) = cmd;
    let peers = api
        .client
        .status_peers()
        .await
        .map_err(|e| api.explain("Error getting peers", e))?;
    let leader = api.client.status_leader().await.unwrap_or_default();
    let members = api.client.agent_members().await.ok();
    let mut rows = vec![["Node", "ID", "Address", "State", "Voter", "RaftProtocol"]
        .map(String::from)
        .to_vec()];
    for p in peers {
        let name = members
            .as_ref()
            .and_then(|m| {
                m.members.iter().find(|x| {
                    format!(
                        "{}:{}",
                        x.addr,
                        x.tags.get("port").cloned().unwrap_or_default()
                    ) == p
                })
            })
            .map_or_else(|| "(unknown)".to_string(), |x| x.name.clone());
        rows.push(vec![
            name,
            p.clone(),
            p.clone(),
            if p == leader { "leader" } else { "follower" }.into(),
            "true".into(),
            "3".into(),
        ]);
    }
    print!("{}", table(&rows));
    Ok(ExitCode::SUCCESS)
}

/// Runs `status [ID]`: the job list, or whatever the ID names.
pub(crate) async fn status(id: Option<String>, api: &Api) -> anyhow::Result<ExitCode> {
    let Some(id) = id else {
        return crate::job_remote::run(
            crate::job::JobCommand::Status {
                verbose: false,
                id: None,
            },
            api,
        )
        .await;
    };
    let q = Api::prefix(&id);
    let (jobs, _) = api
        .client
        .jobs(&q)
        .await
        .map_err(|e| api.explain("Error querying", e))?;
    if !jobs.is_empty() {
        return crate::job_remote::run(
            crate::job::JobCommand::Status {
                verbose: false,
                id: Some(id),
            },
            api,
        )
        .await;
    }
    if id.len() >= 2 {
        let (allocs, _) = api
            .client
            .allocations(&q)
            .await
            .map_err(|e| api.explain("Error querying", e))?;
        if !allocs.is_empty() {
            return crate::alloc::run(
                crate::alloc::AllocCommand::Status { verbose: false, id },
                api,
            )
            .await;
        }
        let (nodes, _) = api
            .client
            .nodes(&q)
            .await
            .map_err(|e| api.explain("Error querying", e))?;
        if !nodes.is_empty() {
            return crate::node::run(
                crate::node::NodeCommand::Status {
                    verbose: false,
                    id: Some(id),
                },
                api,
            )
            .await;
        }
        let (evals, _) = api
            .client
            .evaluations(&QueryOptions {
                prefix: Some(id.clone()),
                ..QueryOptions::default()
            })
            .await
            .map_err(|e| api.explain("Error querying", e))?;
        if !evals.is_empty() {
            return eval(EvalCommand::Status { verbose: false, id }, api).await;
        }
    }
    eprintln!("No matches returned for query \"{id}\"");
    Ok(ExitCode::from(1))
}
