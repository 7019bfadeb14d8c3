//! `nomad deployment` (list, status, promote, fail, pause, resume) and the deployment
//! monitor `job run` uses after its evaluation.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use nomad_api::QueryOptions;
use nomad_core::structs::Deployment;

use crate::api::{Api, Resolved};
use crate::format::{kv, now, rfc3339, short, table};

/// `nomad deployment` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum DeploymentCommand {
    /// Every deployment, newest first.
    List {
        /// Show full IDs.
        #[arg(long)]
        verbose: bool,
    },
    /// A deployment's status and its groups' progress.
    Status {
        /// Show full IDs.
        #[arg(long)]
        verbose: bool,
        /// The deployment ID or prefix.
        id: String,
    },
    /// Promotes a deployment's canaries (every group unless `-group` names some).
    Promote {
        /// A group to promote (repeatable).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// Return once promoted, without following the evaluation.
        #[arg(long)]
        detach: bool,
        /// Show full IDs.
        #[arg(long)]
        verbose: bool,
        /// The deployment ID or prefix.
        id: String,
    },
    /// Marks a deployment failed (reverting the job when its update block asks for it).
    Fail {
        /// Return at once, without following the evaluation.
        #[arg(long)]
        detach: bool,
        /// Show full IDs.
        #[arg(long)]
        verbose: bool,
        /// The deployment ID or prefix.
        id: String,
    },
    /// Pauses a deployment: no further allocations are replaced until it resumes.
    Pause {
        /// The deployment ID or prefix.
        id: String,
    },
    /// Resumes a paused deployment.
    Resume {
        /// The deployment ID or prefix.
        id: String,
    },
}

fn id_fmt(id: &str, verbose: bool) -> String {
    if verbose {
        id.to_string()
    } else {
        short(id)
    }
}

/// Runs a `deployment` verb.
pub(crate) async fn run(cmd: DeploymentCommand, api: &Api) -> anyhow::Result<ExitCode> {
    match cmd {
        DeploymentCommand::List { verbose } => {
            let (mut list, _) = api
                .client
                .deployments(&Api::q())
                .await
                .map_err(|e| api.explain("Error retrieving deployments", e))?;
            if list.is_empty() {
                println!("No deployments found");
                return Ok(ExitCode::SUCCESS);
            }
            list.sort_by_key(|d| std::cmp::Reverse(d.create_index));
            print!("{}", list_table(&list, verbose));
            Ok(ExitCode::SUCCESS)
        }
        DeploymentCommand::Status { verbose, id } => {
            let Some(d) = find(api, &id).await? else {
                return Ok(ExitCode::from(1));
            };
            print!("{}", status_block(&d, verbose));
            Ok(ExitCode::SUCCESS)
        }
        DeploymentCommand::Promote {
            groups,
            detach,
            verbose,
            id,
        } => {
            let Some(d) = find(api, &id).await? else {
                return Ok(ExitCode::from(1));
            };
            let r = api
                .client
                .promote_deployment(&d.id, groups.is_empty(), &groups)
                .await
                .map_err(|e| api.explain("Error promoting deployment", e))?;
            follow_eval(api, &r.eval_id, detach, verbose).await
        }
        DeploymentCommand::Fail {
            detach,
            verbose,
            id,
        } => {
            let Some(d) = find(api, &id).await? else {
                return Ok(ExitCode::from(1));
            };
            let r = api
                .client
                .fail_deployment(&d.id)
                .await
                .map_err(|e| api.explain("Error failing deployment", e))?;
            match r.reverted_job_version {
                Some(v) => println!(
                    "Deployment \"{}\" failed. Auto-reverted to job version {v}.",
                    d.id
                ),
                None => println!("Deployment \"{}\" failed", d.id),
            }
            follow_eval(api, &r.eval_id, detach, verbose).await
        }
        DeploymentCommand::Pause { id } => pause(api, &id, true).await,
        DeploymentCommand::Resume { id } => pause(api, &id, false).await,
    }
}

async fn pause(api: &Api, id: &str, pause: bool) -> anyhow::Result<ExitCode> {
    let Some(d) = find(api, id).await? else {
        return Ok(ExitCode::from(1));
    };
    api.client
        .pause_deployment(&d.id, pause)
        .await
        .map_err(|e| {
            api.explain(
                if pause {
                    "Error pausing deployment"
                } else {
                    "Error resuming deployment"
                },
                e,
            )
        })?;
    println!(
        "Deployment \"{}\" {}",
        d.id,
        if pause { "paused" } else { "resumed" }
    );
    Ok(ExitCode::SUCCESS)
}

/// Follows the evaluation a deployment write created, unless `detach`.
async fn follow_eval(
    api: &Api,
    eval_id: &str,
    detach: bool,
    verbose: bool,
) -> anyhow::Result<ExitCode> {
    if eval_id.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    if detach {
        println!("Evaluation ID: {eval_id}");
        return Ok(ExitCode::SUCCESS);
    }
    let eval = crate::job_remote::monitor_eval(api, eval_id, verbose).await?;
    Ok(if eval.status == "failed" {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Finds a deployment by ID or unique prefix; prints the candidates (or that there is
/// none) otherwise.
async fn find(api: &Api, id: &str) -> anyhow::Result<Option<Deployment>> {
    crate::api::check_prefix("Deployment", id)?;
    let (list, _) = api
        .client
        .deployments(&Api::prefix(id))
        .await
        .map_err(|e| api.explain("Error retrieving deployments", e))?;
    match crate::api::resolve(list, id, |d: &Deployment| d.id.as_str()) {
        Resolved::One(d) => Ok(Some(d)),
        Resolved::Many(list) => {
            eprintln!("Prefix matched multiple deployments\n");
            eprint!("{}", list_table(&list, false));
            Ok(None)
        }
        Resolved::None => {
            eprintln!("No deployment(s) with prefix or id \"{id}\" found");
            Ok(None)
        }
    }
}

fn list_table(list: &[Deployment], verbose: bool) -> String {
    let mut rows = vec![["ID", "Job ID", "Job Version", "Status", "Description"]
        .map(String::from)
        .to_vec()];
    for d in list {
        rows.push(vec![
            id_fmt(&d.id, verbose),
            d.job_id.clone(),
            d.job_version.to_string(),
            d.status.clone(),
            d.status_description.clone(),
        ]);
    }
    table(&rows)
}

/// `deployment status`: the deployment's fields and its `Deployed` table.
pub(crate) fn status_block(d: &Deployment, verbose: bool) -> String {
    let mut out = kv(&[
        ("ID", id_fmt(&d.id, verbose)),
        ("Job ID", d.job_id.clone()),
        ("Job Version", d.job_version.to_string()),
        ("Status", d.status.clone()),
        ("Description", d.status_description.clone()),
    ]);
    out.push_str("\nDeployed\n");
    out.push_str(&deployed_table(d));
    out
}

/// The groups' progress as Nomad shows it: `Auto Revert` only when a group reverts,
/// `Promoted` and `Canaries` only when a group has canaries.
pub(crate) fn deployed_table(d: &Deployment) -> String {
    let revert = d.task_groups.values().any(|g| g.auto_revert);
    let canaries = d.task_groups.values().any(|g| g.desired_canaries > 0);
    let mut head = vec!["Task Group"];
    if revert {
        head.push("Auto Revert");
    }
    if canaries {
        head.push("Promoted");
    }
    head.push("Desired");
    if canaries {
        head.push("Canaries");
    }
    head.extend(["Placed", "Healthy", "Unhealthy", "Progress Deadline"]);
    let mut rows = vec![head.into_iter().map(String::from).collect::<Vec<_>>()];
    for (name, g) in &d.task_groups {
        let mut row = vec![name.clone()];
        if revert {
            row.push(g.auto_revert.to_string());
        }
        if canaries {
            row.push(if g.desired_canaries > 0 {
                g.promoted.to_string()
            } else {
                "N/A".into()
            });
        }
        row.push(g.desired_total.to_string());
        if canaries {
            row.push(g.desired_canaries.to_string());
        }
        row.push(g.placed_allocs.to_string());
        row.push(g.healthy_allocs.to_string());
        row.push(g.unhealthy_allocs.to_string());
        row.push(if g.require_progress_by > 0 {
            rfc3339(g.require_progress_by)
        } else {
            "<none>".into()
        });
        rows.push(row);
    }
    table(&rows)
}

/// True when nothing more happens without an operator: every unpromoted group waits for a
/// manual promotion and has all its canaries healthy.
fn waits_for_operator(d: &Deployment) -> bool {
    let waiting: Vec<_> = d
        .task_groups
        .values()
        .filter(|g| g.desired_canaries > 0 && !g.promoted)
        .collect();
    !waiting.is_empty()
        && waiting
            .iter()
            .all(|g| !g.auto_promote && g.healthy_allocs >= g.desired_canaries)
}

/// Follows a deployment until it ends (or waits for a manual promotion), redrawing its
/// progress table on a terminal; prints Nomad's final block. Exit code 1 when it failed
/// or was cancelled.
pub(crate) async fn monitor_deployment(
    api: &Api,
    id: &str,
    job_id: &str,
    verbose: bool,
) -> anyhow::Result<ExitCode> {
    println!(
        "==> {}: Monitoring deployment \"{}\"",
        now(),
        id_fmt(id, verbose)
    );
    let pb = indicatif::ProgressBar::new_spinner();
    pb.enable_steady_tick(Duration::from_millis(120));
    let mut index = 0;
    let mut last_description = String::new();
    loop {
        let q = QueryOptions::blocking(index, Duration::from_secs(5));
        let (d, meta) = api
            .client
            .deployment(id, &q)
            .await
            .map_err(|e| api.explain("Error reading deployment", e))?;
        index = meta.last_index;
        if d.status_description != last_description {
            if pb.is_hidden() && !last_description.is_empty() && d.active() {
                println!("    {}: {}", now(), d.status_description);
            }
            last_description.clone_from(&d.status_description);
        }
        pb.set_message(format!(
            "Deployment \"{}\" in progress...\n\n{}",
            id_fmt(&d.id, verbose),
            indent(&status_block_with_job(&d, job_id, verbose))
        ));
        let operator = d.status == "running" && waits_for_operator(&d);
        if d.active() && !operator {
            continue;
        }
        pb.finish_and_clear();
        let (mark, word) = match d.status.as_str() {
            "successful" => ("✓", "successful"),
            "running" => ("!", "requires manual promotion"),
            "cancelled" => ("!", "cancelled"),
            _ => ("!", "failed"),
        };
        println!(
            "  {mark} Deployment \"{}\" {word}\n",
            id_fmt(&d.id, verbose)
        );
        println!("    {}", now());
        print!("{}", indent(&status_block_with_job(&d, job_id, verbose)));
        return Ok(match d.status.as_str() {
            "successful" | "running" => ExitCode::SUCCESS,
            _ => ExitCode::from(1),
        });
    }
}

fn status_block_with_job(d: &Deployment, job_id: &str, verbose: bool) -> String {
    let mut d = d.clone();
    if d.job_id.is_empty() {
        d.job_id = job_id.to_string();
    }
    status_block(&d, verbose)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("    {l}\n")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomad_core::structs::DeploymentState;

    fn dep(g: DeploymentState) -> Deployment {
        let mut d = Deployment {
            id: "0123456789abcdef".into(),
            job_id: "web".into(),
            job_version: 2,
            status: "running".into(),
            status_description: "Deployment is running".into(),
            ..Deployment::default()
        };
        d.task_groups.insert("app".into(), g);
        d
    }

    #[test]
    fn deployed_table_shows_revert_and_canary_columns_only_when_used() {
        let plain = dep(DeploymentState {
            desired_total: 3,
            placed_allocs: 2,
            healthy_allocs: 1,
            ..DeploymentState::default()
        });
        assert_eq!(
            deployed_table(&plain),
            "Task Group  Desired  Placed  Healthy  Unhealthy  Progress Deadline\n\
             app         3        2       1        0          <none>\n"
        );
        let canary = dep(DeploymentState {
            desired_total: 3,
            desired_canaries: 1,
            auto_revert: true,
            placed_allocs: 1,
            require_progress_by: 1_700_000_000_000_000_000,
            ..DeploymentState::default()
        });
        let t = deployed_table(&canary);
        let mut lines = t.lines();
        assert_eq!(
            lines.next(),
            Some("Task Group  Auto Revert  Promoted  Desired  Canaries  Placed  Healthy  Unhealthy  Progress Deadline")
        );
        assert_eq!(
            lines.next(),
            Some("app         true         false     3        1         1       0        0          2023-11-14T22:13:20Z")
        );
    }

    #[test]
    fn status_block_names_the_deployment() {
        let d = dep(DeploymentState::default());
        let s = status_block(&d, false);
        assert!(
            s.starts_with("ID          = 01234567\nJob ID      = web\nJob Version = 2\n"),
            "{s}"
        );
        assert!(s.contains("\nDeployed\nTask Group"), "{s}");
    }

    #[test]
    fn only_manual_promotion_of_healthy_canaries_waits_for_an_operator() {
        let mut g = DeploymentState {
            desired_total: 3,
            desired_canaries: 1,
            healthy_allocs: 1,
            ..DeploymentState::default()
        };
        assert!(waits_for_operator(&dep(g.clone())));
        g.auto_promote = true;
        assert!(!waits_for_operator(&dep(g.clone())));
        g.auto_promote = false;
        g.healthy_allocs = 0;
        assert!(!waits_for_operator(&dep(g.clone())));
        g.promoted = true;
        g.healthy_allocs = 1;
        assert!(!waits_for_operator(&dep(g)));
    }
}
