//! `nomad alloc status` and `nomad alloc logs`.

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;
use http_body_util::BodyExt;
use nomad_api::AllocListStub;
use nomad_core::structs::Allocation;

use crate::api::{check_prefix, resolve, Api, Resolved};
use crate::format::{ago, kv, rfc3339, short, table};

/// `nomad alloc` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AllocCommand {
    /// An allocation's placement, status, addresses and task events.
    Status {
        /// Show full IDs.
        #[arg(long)]
        verbose: bool,
        /// The allocation ID or prefix.
        id: String,
    },
    /// A task's standard output (or error) from the client.
    Logs {
        /// Keep streaming what the task writes.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Show standard error instead of standard output.
        #[arg(long)]
        stderr: bool,
        /// Show the end of the log (with -n, the last lines).
        #[arg(long)]
        tail: bool,
        /// With -tail, how many lines.
        #[arg(short = 'n', value_name = "LINES")]
        lines: Option<usize>,
        /// The allocation ID or prefix.
        alloc: String,
        /// The task (optional when the group has one task).
        task: Option<String>,
    },
}

/// Resolves an allocation ID or prefix to the allocation, printing candidates otherwise.
pub(crate) async fn find_alloc(api: &Api, id: &str) -> anyhow::Result<Option<Allocation>> {
    check_prefix("Alloc", id)?;
    let (list, _) = api
        .client
        .allocations(&Api::prefix(id))
        .await
        .map_err(|e| api.explain("Error querying allocation", e))?;
    match resolve(list, id, |a: &AllocListStub| a.id.as_str()) {
        Resolved::One(stub) => {
            let (a, _) = api
                .client
                .allocation(&stub.id, &Api::q())
                .await
                .map_err(|e| api.explain("Error querying allocation", e))?;
            Ok(Some(a))
        }
        Resolved::Many(list) => {
            eprintln!("Prefix matched multiple allocations\n");
            eprint!("{}", crate::job_remote::allocs_table(&list, false, true));
            Ok(None)
        }
        Resolved::None => {
            eprintln!("No allocation(s) with prefix or id \"{id}\" found");
            Ok(None)
        }
    }
}

/// Runs an `alloc` subcommand.
pub(crate) async fn run(cmd: AllocCommand, api: &Api) -> anyhow::Result<ExitCode> {
    match cmd {
        AllocCommand::Status { verbose, id } => {
            let Some(a) = find_alloc(api, &id).await? else {
                return Ok(ExitCode::from(1));
            };
            print!("{}", alloc_status(&a, verbose));
            Ok(ExitCode::SUCCESS)
        }
        AllocCommand::Logs {
            follow,
            stderr,
            tail,
            lines,
            alloc,
            task,
        } => {
            let Some(a) = find_alloc(api, &alloc).await? else {
                return Ok(ExitCode::from(1));
            };
            let tasks: Vec<String> = a
                .group()
                .map(|g| g.tasks.iter().map(|t| t.name.clone()).collect())
                .unwrap_or_default();
            let task = match task {
                Some(t) => {
                    if !tasks.is_empty() && !tasks.contains(&t) {
                        anyhow::bail!(
                            "Could not find task named: {t}; the allocation runs {}",
                            tasks.join(", ")
                        );
                    }
                    t
                }
                None if tasks.len() == 1 => tasks[0].clone(),
                None => {
                    eprintln!(
                        "Allocation \"{}\" is running the following tasks:",
                        short(&a.id)
                    );
                    for t in &tasks {
                        eprintln!("  * {t}");
                    }
                    eprintln!("\nPlease specify the task.");
                    return Ok(ExitCode::from(1));
                }
            };
            stream_logs(api, &a.id, &task, stderr, follow, tail, lines).await
        }
    }
}

fn alloc_status(a: &Allocation, verbose: bool) -> String {
    let id = |s: &str| if verbose { s.to_string() } else { short(s) };
    let none = |s: &str| {
        if s.is_empty() {
            "<none>".to_string()
        } else {
            s.to_string()
        }
    };
    let mut out = kv(&[
        ("ID", id(&a.id)),
        ("Eval ID", id(&a.eval_id)),
        ("Name", a.name.clone()),
        ("Node ID", id(&a.node_id)),
        ("Node Name", a.node_name.to_string()),
        ("Job ID", a.job_id.to_string()),
        (
            "Job Version",
            a.job
                .as_ref()
                .and_then(|j| j.version)
                .unwrap_or(0)
                .to_string(),
        ),
        ("Client Status", a.client_status.to_string()),
        ("Client Description", none(&a.client_description)),
        ("Desired Status", a.desired_status.to_string()),
        ("Desired Description", none(&a.desired_description)),
        ("Created", ago(a.create_time)),
        ("Modified", ago(a.modify_time)),
    ]);
    if !a.deployment_id.is_empty() {
        let health = match a.deployment_status.as_ref().and_then(|d| d.healthy) {
            Some(true) => "healthy",
            Some(false) => "unhealthy",
            None => "unset",
        };
        out.push_str(&kv(&[
            ("Deployment ID", id(&a.deployment_id)),
            ("Deployment Health", health.to_string()),
        ]));
    }
    let ports = a
        .allocated_resources
        .as_ref()
        .map(|r| r.shared.ports.clone())
        .unwrap_or_default();
    if !ports.is_empty() {
        let statics: Vec<nomad_core::structs::ArcStr> = a
            .group()
            .map(|g| {
                g.networks
                    .iter()
                    .flat_map(|n| n.reserved_ports.iter().map(|p| p.label.clone()))
                    .collect()
            })
            .unwrap_or_default();
        out.push_str("\nAllocation Addresses:\n");
        let mut rows = vec![vec![
            "Label".to_string(),
            "Dynamic".into(),
            "Address".into(),
        ]];
        for p in &ports {
            rows.push(vec![
                format!("*{}", p.label),
                if statics.contains(&p.label) {
                    "no"
                } else {
                    "yes"
                }
                .to_string(),
                format!("{}:{}", p.host_ip, p.value),
            ]);
        }
        out.push_str(&table(&rows));
    }
    let tasks: Vec<String> = a
        .group()
        .map(|g| g.tasks.iter().map(|t| t.name.clone()).collect())
        .unwrap_or_else(|| a.task_states.keys().cloned().collect());
    for t in tasks {
        let Some(st) = a.task_states.get(&t) else {
            out.push_str(&format!("\nTask \"{t}\" is \"pending\"\n"));
            continue;
        };
        let lifecycle = a
            .group()
            .and_then(|g| g.tasks.iter().find(|x| x.name == t))
            .and_then(|x| x.lifecycle.as_ref())
            .map(|l| format!(" ({}{})", l.hook, if l.sidecar { " sidecar" } else { "" }))
            .unwrap_or_default();
        out.push_str(&format!("\nTask \"{t}\"{lifecycle} is \"{}\"\n", st.state));
        out.push_str("Task Events:\n");
        out.push_str(&kv(&[
            (
                "Started At",
                st.started_at.clone().unwrap_or_else(|| "N/A".into()),
            ),
            (
                "Finished At",
                st.finished_at.clone().unwrap_or_else(|| "N/A".into()),
            ),
            ("Total Restarts", st.restarts.to_string()),
            (
                "Last Restart",
                st.last_restart.clone().unwrap_or_else(|| "N/A".into()),
            ),
        ]));
        out.push_str("\nRecent Events:\n");
        let mut rows = vec![vec![
            "Time".to_string(),
            "Type".into(),
            "Description".into(),
        ]];
        for e in st.events.iter().rev() {
            let desc = if !e.display_message.is_empty() {
                e.display_message.clone()
            } else if !e.message.is_empty() {
                e.message.clone()
            } else if !e.driver_error.is_empty() {
                e.driver_error.clone()
            } else {
                String::new()
            };
            rows.push(vec![rfc3339(e.time), e.event_type.clone(), desc]);
        }
        out.push_str(&table(&rows));
    }
    out
}

async fn stream_logs(
    api: &Api,
    alloc: &str,
    task: &str,
    stderr: bool,
    follow: bool,
    tail: bool,
    lines: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let base = api
        .client
        .config()
        .address
        .trim_end_matches('/')
        .to_string();
    let base = if base.contains("://") {
        base
    } else {
        format!("http://{base}")
    };
    let mut url = format!(
        "{base}/v1/client/fs/logs/{alloc}?task={}&type={}&plain=true",
        task.replace('&', "%26").replace(' ', "%20"),
        if stderr { "stderr" } else { "stdout" }
    );
    if follow {
        url.push_str("&follow=true");
    }
    if tail && lines.is_none() {
        url.push_str("&origin=end&offset=10240");
    }
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let mut req = hyper::Request::get(&url);
    if let Some(t) = &api.client.config().token {
        req = req.header("X-Nomad-Token", t.as_str());
    }
    let req = req.body(http_body_util::Empty::new())?;
    let resp = client.request(req).await.map_err(|e| {
        anyhow::anyhow!(
            "Error reading logs: cannot reach the Nomad agent at {}: {e}",
            api.address
        )
    })?;
    let status = resp.status();
    let mut body = resp.into_body();
    if !status.is_success() {
        let bytes = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        anyhow::bail!(
            "Error reading logs: Unexpected response code: {} ({})",
            status.as_u16(),
            String::from_utf8_lossy(&bytes).trim()
        );
    }
    if let (Some(n), false) = (lines, follow) {
        let bytes = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let all: Vec<&str> = text.lines().collect();
        let start = all.len().saturating_sub(n);
        let mut out = std::io::stdout().lock();
        for l in &all[start..] {
            let _ = writeln!(out, "{l}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout();
    loop {
        let frame = tokio::select! {
            f = body.frame() => f,
            _ = tokio::signal::ctrl_c() => break,
        };
        match frame {
            Some(Ok(f)) => {
                if let Some(data) = f.data_ref() {
                    if out.write_all(data).and_then(|()| out.flush()).is_err() {
                        break;
                    }
                }
            }
            Some(Err(e)) => anyhow::bail!("Error reading logs: {e}"),
            None => break,
        }
    }
    Ok(ExitCode::SUCCESS)
}
