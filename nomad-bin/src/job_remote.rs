//! The `nomad job` verbs that talk to the server, and the evaluation and deployment
//! monitor `job run` and `job stop` use.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use nomad_api::{AllocListStub, JobListStub, QueryOptions};
use nomad_core::job::Job;
use nomad_core::structs::{AllocMetric, Evaluation};
use serde_json::Value;

use crate::api::{Api, Resolved};
use crate::format::{ago, kv, now, rfc3339, short, table};
use crate::job::{load, report, JobCommand};

/// Runs a server-side `job` verb.
pub(crate) async fn run(cmd: JobCommand, api: &Api) -> anyhow::Result<ExitCode> {
    match cmd {
        JobCommand::Run {
            detach,
            verbose,
            check_index,
            file,
            ..
        } => {
            let job = match load(&file) {
                Ok(j) => j,
                Err(e) => return Ok(report("Error getting job struct", &e)),
            };
            if let Err(errs) = job.validate() {
                return Ok(report(
                    "Error submitting job",
                    &nomad_core::Error::Invalid(errs),
                ));
            }
            let resp = match check_index {
                Some(i) => api.client.register_job_check_index(&job, i).await,
                None => api.client.register_job(&job).await,
            }
            .map_err(|e| api.explain("Error submitting job", e))?;
            if !resp.warnings.is_empty() {
                println!("Job Warnings:\n{}\n", resp.warnings);
            }
            if resp.eval_id.is_empty() {
                println!("Job registration successful");
                return Ok(ExitCode::SUCCESS);
            }
            if detach {
                println!("Job registration successful");
                println!("Evaluation ID: {}", resp.eval_id);
                return Ok(ExitCode::SUCCESS);
            }
            monitor(api, &resp.eval_id, &job, verbose).await
        }
        JobCommand::Plan { verbose, file } => plan(api, &file, verbose).await,
        JobCommand::Status { verbose, id } => match id {
            None => list_jobs(api).await,
            Some(id) => status(api, &id, verbose).await,
        },
        JobCommand::Stop {
            purge,
            detach,
            verbose,
            id,
        } => {
            let job = match find_job(api, &id).await? {
                Some(j) => j,
                None => return Ok(ExitCode::from(1)),
            };
            let resp = api
                .client
                .deregister_job(&job.id, purge)
                .await
                .map_err(|e| api.explain("Error deregistering job", e))?;
            if detach || resp.eval_id.is_empty() {
                if !resp.eval_id.is_empty() {
                    println!("{}", resp.eval_id);
                }
                return Ok(ExitCode::SUCCESS);
            }
            monitor_eval(api, &resp.eval_id, verbose)
                .await
                .map(|_| ExitCode::SUCCESS)
        }
        JobCommand::Inspect { id } => {
            let job = match find_job(api, &id).await? {
                Some(j) => j,
                None => return Ok(ExitCode::from(1)),
            };
            let v = serde_json::json!({ "Job": job });
            crate::job::print_out(&serde_json::to_string_pretty(&v)?)?;
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Revert {
            detach,
            verbose,
            id,
            version,
        } => {
            let job = match find_job(api, &id).await? {
                Some(j) => j,
                None => return Ok(ExitCode::from(1)),
            };
            let resp = api
                .client
                .revert_job(&job.id, version, None)
                .await
                .map_err(|e| api.explain("Error retrieving job versions", e))?;
            if detach || resp.eval_id.is_empty() {
                if !resp.eval_id.is_empty() {
                    println!("Evaluation ID: {}", resp.eval_id);
                }
                return Ok(ExitCode::SUCCESS);
            }
            let job = match find_job(api, &job.id).await? {
                Some(j) => j,
                None => return Ok(ExitCode::from(1)),
            };
            monitor(api, &resp.eval_id, &job, verbose).await
        }
        JobCommand::Validate(_) => Ok(ExitCode::SUCCESS),
    }
}

/// Finds a job by ID or unique prefix; prints the candidates (or that there is none) and
/// returns `None` otherwise.
async fn find_job(api: &Api, id: &str) -> anyhow::Result<Option<Job>> {
    match api.client.job(id, &Api::q()).await {
        Ok((j, _)) => return Ok(Some(j)),
        Err(e) if e.status() == Some(404) => {}
        Err(e) => return Err(api.explain("Error querying job", e)),
    }
    let (jobs, _) = api
        .client
        .jobs(&Api::prefix(id))
        .await
        .map_err(|e| api.explain("Error querying job", e))?;
    match crate::api::resolve(jobs, id, |j: &JobListStub| j.id.as_str()) {
        Resolved::One(stub) => {
            let (j, _) = api
                .client
                .job(&stub.id, &Api::q())
                .await
                .map_err(|e| api.explain("Error querying job", e))?;
            Ok(Some(j))
        }
        Resolved::Many(list) => {
            eprintln!("Prefix matched multiple jobs\n");
            eprint!("{}", jobs_table(&list));
            Ok(None)
        }
        Resolved::None => {
            eprintln!("No job(s) with prefix or id \"{id}\" found");
            Ok(None)
        }
    }
}

fn jobs_table(jobs: &[JobListStub]) -> String {
    let mut rows = vec![vec![
        "ID".to_string(),
        "Type".into(),
        "Priority".into(),
        "Status".into(),
        "Submit Date".into(),
    ]];
    for j in jobs {
        rows.push(vec![
            j.id.clone(),
            j.job_type.clone().unwrap_or_else(|| "service".into()),
            j.priority.to_string(),
            if j.stop {
                format!("{} (stopped)", j.status)
            } else {
                j.status.clone()
            },
            j.submit_time.map(rfc3339).unwrap_or_default(),
        ]);
    }
    table(&rows)
}

async fn list_jobs(api: &Api) -> anyhow::Result<ExitCode> {
    let (jobs, _) = api
        .client
        .jobs(&Api::q())
        .await
        .map_err(|e| api.explain("Error querying jobs", e))?;
    if jobs.is_empty() {
        println!("No running jobs");
    } else {
        print!("{}", jobs_table(&jobs));
    }
    Ok(ExitCode::SUCCESS)
}

fn id_fmt(id: &str, verbose: bool) -> String {
    if verbose {
        id.to_string()
    } else {
        short(id)
    }
}

/// The allocations table of `job status` and `node status`.
pub(crate) fn allocs_table(allocs: &[AllocListStub], verbose: bool, with_node: bool) -> String {
    let mut head = vec!["ID".to_string()];
    if with_node {
        head.push("Node ID".into());
    }
    head.extend(
        [
            "Task Group",
            "Version",
            "Desired",
            "Status",
            "Created",
            "Modified",
        ]
        .map(String::from),
    );
    let mut rows = vec![head];
    for a in allocs {
        let mut row = vec![id_fmt(&a.id, verbose)];
        if with_node {
            row.push(id_fmt(&a.node_id, verbose));
        }
        row.extend([
            a.task_group.clone(),
            a.job_version.unwrap_or(0).to_string(),
            a.desired_status.clone(),
            a.client_status.clone(),
            ago(a.create_time),
            ago(a.modify_time),
        ]);
        rows.push(row);
    }
    table(&rows)
}

async fn status(api: &Api, id: &str, verbose: bool) -> anyhow::Result<ExitCode> {
    let Some(job) = find_job(api, id).await? else {
        return Ok(ExitCode::from(1));
    };
    let q = Api::q();
    let (summary, _) = api
        .client
        .job_summary(&job.id, &q)
        .await
        .map_err(|e| api.explain("Error querying job summary", e))?;
    let (allocs, _) = api
        .client
        .job_allocations(&job.id, &q)
        .await
        .map_err(|e| api.explain("Error querying job allocations", e))?;
    let (deployments, _) = api
        .client
        .job_deployments(&job.id, &q)
        .await
        .map_err(|e| api.explain("Error querying job deployments", e))?;
    let job_status = job_status_of(&job, &allocs);
    print!(
        "{}",
        kv(&[
            ("ID", job.id.clone()),
            ("Name", job.name.clone()),
            (
                "Submit Date",
                job.submit_time.map(rfc3339).unwrap_or_default()
            ),
            (
                "Type",
                job.job_type.clone().unwrap_or_else(|| "service".into())
            ),
            ("Priority", job.priority.unwrap_or(50).to_string()),
            (
                "Datacenters",
                if job.datacenters.is_empty() {
                    "*".to_string()
                } else {
                    job.datacenters.join(",")
                }
            ),
            ("Namespace", job.namespace_or_default().to_string()),
            (
                "Node Pool",
                job.node_pool.clone().unwrap_or_else(|| "default".into())
            ),
            ("Status", job_status),
            ("Periodic", job.periodic.is_some().to_string()),
            ("Parameterized", job.parameterized_job.is_some().to_string()),
        ])
    );
    println!("\nSummary");
    let mut rows = vec![[
        "Task Group",
        "Queued",
        "Starting",
        "Running",
        "Failed",
        "Complete",
        "Lost",
        "Unknown",
    ]
    .map(String::from)
    .to_vec()];
    for (g, s) in &summary.summary {
        rows.push(vec![
            g.clone(),
            s.queued.to_string(),
            s.starting.to_string(),
            s.running.to_string(),
            s.failed.to_string(),
            s.complete.to_string(),
            s.lost.to_string(),
            s.unknown.to_string(),
        ]);
    }
    print!("{}", table(&rows));
    if let Some(d) = deployments.first() {
        println!("\nLatest Deployment");
        print!(
            "{}",
            kv(&[
                ("ID", id_fmt(&d.id, verbose)),
                ("Status", d.status.clone()),
                ("Description", d.status_description.clone()),
            ])
        );
        println!("\nDeployed");
        print!("{}", crate::deployment::deployed_table(d));
    }
    println!("\nAllocations");
    if allocs.is_empty() {
        println!("No allocations placed");
    } else {
        let mut sorted = allocs.clone();
        sorted.sort_by_key(|a| std::cmp::Reverse(a.create_index));
        print!("{}", allocs_table(&sorted, verbose, true));
    }
    Ok(ExitCode::SUCCESS)
}

fn job_status_of(job: &Job, allocs: &[AllocListStub]) -> String {
    let s = job.status.clone();
    let base = if s.is_empty() {
        if allocs.iter().any(|a| a.client_status == "running") {
            "running".to_string()
        } else {
            "pending".to_string()
        }
    } else {
        s
    };
    if job.stop == Some(true) {
        format!("{base} (stopped)")
    } else {
        base
    }
}

/// Nomad's explanation of why a group could not be placed.
pub(crate) fn format_failures(failed: &BTreeMap<String, AllocMetric>, indent: &str) -> String {
    let mut out = String::new();
    for (group, m) in failed {
        let n = 1 + m.coalesced_failures;
        out.push_str(&format!(
            "{indent}Task Group \"{group}\" (failed to place {n} allocation{}):\n",
            if n == 1 { "" } else { "s" }
        ));
        let item = |s: String| format!("{indent}  * {s}\n");
        if m.nodes_evaluated == 0 {
            out.push_str(&item("No nodes were eligible for evaluation".into()));
        }
        for (dc, avail) in &m.nodes_available {
            if *avail == 0 {
                out.push_str(&item(format!(
                    "No nodes are available in datacenter \"{dc}\""
                )));
            }
        }
        for (class, n) in &m.class_filtered {
            out.push_str(&item(format!(
                "Class \"{class}\": {n} nodes excluded by filter"
            )));
        }
        for (c, n) in &m.constraint_filtered {
            out.push_str(&item(format!(
                "Constraint \"{c}\": {n} nodes excluded by filter"
            )));
        }
        if m.nodes_exhausted > 0 {
            out.push_str(&item(format!(
                "Resources exhausted on {} nodes",
                m.nodes_exhausted
            )));
        }
        for (class, n) in &m.class_exhausted {
            out.push_str(&item(format!("Class \"{class}\" exhausted on {n} nodes")));
        }
        for (dim, n) in &m.dimension_exhausted {
            out.push_str(&item(format!("Dimension \"{dim}\" exhausted on {n} nodes")));
        }
        for q in &m.quota_exhausted {
            out.push_str(&item(format!("Quota limit hit \"{q}\"")));
        }
    }
    out
}

/// A spinner line under the monitor's log lines, on a terminal only.
fn spinner(msg: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// Follows an evaluation to its end, printing what Nomad's monitor prints. Returns the
/// evaluation as it finished.
pub(crate) async fn monitor_eval(
    api: &Api,
    eval_id: &str,
    verbose: bool,
) -> anyhow::Result<Evaluation> {
    let pb = spinner("waiting for the evaluation");
    let log = |line: String| {
        if pb.is_hidden() {
            println!("{line}");
        } else {
            pb.println(line);
        }
    };
    log(format!(
        "==> {}: Monitoring evaluation \"{}\"",
        now(),
        id_fmt(eval_id, verbose)
    ));
    let mut index = 0;
    let mut last_status = String::new();
    let mut seen_allocs: BTreeSet<String> = BTreeSet::new();
    let mut announced = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let q = QueryOptions::blocking(index, Duration::from_secs(5));
        let (eval, meta) = api
            .client
            .evaluation(eval_id, &q)
            .await
            .map_err(|e| api.explain("Error reading evaluation", e))?;
        index = meta.last_index;
        if !announced {
            log(format!(
                "    {}: Evaluation triggered by job \"{}\"",
                now(),
                eval.job_id
            ));
            announced = true;
        }
        if !eval.deployment_id.is_empty() && last_status.is_empty() {
            log(format!(
                "    {}: Evaluation within deployment: \"{}\"",
                now(),
                id_fmt(&eval.deployment_id, verbose)
            ));
        }
        if let Ok((allocs, _)) = api.client.job_allocations(&eval.job_id, &Api::q()).await {
            for a in allocs.iter().filter(|a| a.eval_id == eval.id) {
                if seen_allocs.insert(a.id.clone()) {
                    log(format!(
                        "    {}: Allocation \"{}\" created: node \"{}\", group \"{}\"",
                        now(),
                        id_fmt(&a.id, verbose),
                        id_fmt(&a.node_id, verbose),
                        a.task_group
                    ));
                }
            }
        }
        if eval.status != last_status {
            if !last_status.is_empty() {
                log(format!(
                    "    {}: Evaluation status changed: \"{}\" -> \"{}\"",
                    now(),
                    last_status,
                    eval.status
                ));
            }
            last_status.clone_from(&eval.status);
            pb.set_message(format!("evaluation {}", eval.status));
        }
        if matches!(eval.status.as_str(), "complete" | "failed" | "canceled") {
            if eval.failed_tg_allocs.is_empty() {
                log(format!(
                    "==> {}: Evaluation \"{}\" finished with status \"{}\"",
                    now(),
                    id_fmt(&eval.id, verbose),
                    eval.status
                ));
            } else {
                log(format!(
                    "==> {}: Evaluation \"{}\" finished with status \"{}\" but failed to place all allocations:",
                    now(),
                    id_fmt(&eval.id, verbose),
                    eval.status
                ));
                log(format_failures(&eval.failed_tg_allocs, "    ")
                    .trim_end()
                    .to_string());
                if !eval.blocked_eval.is_empty() {
                    log(format!(
                        "    Evaluation \"{}\" waiting for additional capacity to place remainder",
                        id_fmt(&eval.blocked_eval, verbose)
                    ));
                }
            }
            pb.finish_and_clear();
            return Ok(eval);
        }
        if tokio::time::Instant::now() > deadline {
            pb.finish_and_clear();
            bail!("timed out waiting for evaluation {eval_id}");
        }
    }
}

/// `job run`'s monitor: the evaluation, then (for service jobs) the deployment until every
/// group's allocations are healthy.
async fn monitor(api: &Api, eval_id: &str, job: &Job, verbose: bool) -> anyhow::Result<ExitCode> {
    let eval = monitor_eval(api, eval_id, verbose).await?;
    if eval.status == "failed" {
        return Ok(ExitCode::from(1));
    }
    if !eval.failed_tg_allocs.is_empty() {
        return Ok(ExitCode::from(2));
    }
    let is_service = job.job_type.as_deref().is_none_or(|t| t == "service");
    if !is_service {
        return Ok(ExitCode::SUCCESS);
    }
    // The deployment of the version just registered (none when the job did not change
    // in a way that deploys, or has no update block).
    let (registered, _) = api
        .client
        .job(&job.id, &Api::q())
        .await
        .map_err(|e| api.explain("Error reading job", e))?;
    let Some(deployment) = latest_deployment(api, &job.id)
        .await?
        .filter(|d| Some(d.job_version) == registered.version)
    else {
        return Ok(ExitCode::SUCCESS);
    };
    crate::deployment::monitor_deployment(api, &deployment.id, &job.id, verbose).await
}

async fn latest_deployment(
    api: &Api,
    job_id: &str,
) -> anyhow::Result<Option<nomad_core::structs::Deployment>> {
    let (mut ds, _) = api
        .client
        .job_deployments(job_id, &Api::q())
        .await
        .map_err(|e| api.explain("Error reading deployments", e))?;
    ds.sort_by_key(|d| std::cmp::Reverse(d.create_index));
    Ok(ds.into_iter().next())
}

// ---- plan ----

/// JSON fields that change on every submission and say nothing about the job.
const VOLATILE: &[&str] = &[
    "CreateIndex",
    "ModifyIndex",
    "JobModifyIndex",
    "SubmitTime",
    "Status",
    "StatusDescription",
    "Version",
    "Stable",
    "Stop",
];

/// Leaf differences between two JSON values: `(path, old, new)`.
fn diff_values(path: &str, old: &Value, new: &Value, out: &mut Vec<(String, String, String)>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                if VOLATILE.contains(&k.as_str()) || k == "TaskGroups" || k == "Tasks" {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff_values(
                    &p,
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if old == new => {}
        _ => out.push((path.to_string(), show(old), show(new))),
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "\"\"".into(),
        Value::String(s) => format!("{s:?}"),
        other => format!("{:?}", other.to_string()),
    }
}

fn by_name(v: &Value, list: &str) -> BTreeMap<String, Value> {
    v.get(list)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| Some((x.get("Name")?.as_str()?.to_string(), x.clone())))
                .collect()
        })
        .unwrap_or_default()
}

fn group_annotation(u: &nomad_api::DesiredUpdates) -> String {
    let mut parts = Vec::new();
    for (n, what) in [
        (u.place, "create"),
        (u.destructive_update, "create/destroy update"),
        (u.in_place_update, "in-place update"),
        (u.stop, "destroy"),
        (u.migrate, "migrate"),
        (u.canary, "canary"),
        (u.ignore, "ignore"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

async fn plan(
    api: &Api,
    file: &crate::job::JobFileArgs,
    verbose: bool,
) -> anyhow::Result<ExitCode> {
    let job = match load(file) {
        Ok(j) => j,
        Err(e) => {
            report("Error getting job struct", &e);
            return Ok(ExitCode::from(255));
        }
    };
    if let Err(errs) = job.validate() {
        report("Error during plan", &nomad_core::Error::Invalid(errs));
        return Ok(ExitCode::from(255));
    }
    let resp = api
        .client
        .plan_job(&job, true)
        .await
        .map_err(|e| api.explain("Error during plan", e))?;
    let remote = match api.client.job(&job.id, &Api::q()).await {
        Ok((j, _)) if j.stop != Some(true) => Some(serde_json::to_value(&j)?),
        _ => None,
    };
    let local = serde_json::to_value(&job)?;
    let mut changed = false;
    let null = Value::Null;
    let mut job_fields = Vec::new();
    if let Some(r) = &remote {
        diff_values("", r, &local, &mut job_fields);
    }
    let mut body = String::new();
    for (p, o, n) in &job_fields {
        body.push_str(&format!("+/- {p}: {o} => {n}\n"));
    }
    let remote_groups = remote
        .as_ref()
        .map(|r| by_name(r, "TaskGroups"))
        .unwrap_or_default();
    let local_groups = by_name(&local, "TaskGroups");
    let names: BTreeSet<&String> = remote_groups.keys().chain(local_groups.keys()).collect();
    let updates = &resp.annotations.desired_tg_updates;
    for g in names {
        let ann = updates.get(g).map(group_annotation).unwrap_or_default();
        match (remote_groups.get(g), local_groups.get(g)) {
            (None, Some(lg)) => {
                body.push_str(&format!("+ Task Group: \"{g}\"{ann}\n"));
                for t in by_name(lg, "Tasks").keys() {
                    body.push_str(&format!("  + Task: \"{t}\" (forces create)\n"));
                }
            }
            (Some(rg), None) => {
                body.push_str(&format!("- Task Group: \"{g}\"{ann}\n"));
                for t in by_name(rg, "Tasks").keys() {
                    body.push_str(&format!("  - Task: \"{t}\"\n"));
                }
            }
            (Some(rg), Some(lg)) => {
                let mut fields = Vec::new();
                diff_values("", rg, lg, &mut fields);
                let rt = by_name(rg, "Tasks");
                let lt = by_name(lg, "Tasks");
                let mut tasks = String::new();
                let mut any_task = false;
                for t in rt.keys().chain(lt.keys()).collect::<BTreeSet<_>>() {
                    let mut tf = Vec::new();
                    diff_values(
                        "",
                        rt.get(t).unwrap_or(&null),
                        lt.get(t).unwrap_or(&null),
                        &mut tf,
                    );
                    match (rt.contains_key(t), lt.contains_key(t)) {
                        (false, true) => {
                            any_task = true;
                            tasks.push_str(&format!("  + Task: \"{t}\" (forces create)\n"));
                        }
                        (true, false) => {
                            any_task = true;
                            tasks.push_str(&format!("  - Task: \"{t}\"\n"));
                        }
                        _ if tf.is_empty() => tasks.push_str(&format!("  Task: \"{t}\"\n")),
                        _ => {
                            any_task = true;
                            tasks.push_str(&format!(
                                "  +/- Task: \"{t}\" (forces create/destroy update)\n"
                            ));
                            for (p, o, n) in tf {
                                tasks.push_str(&format!("    +/- {p}: {o} => {n}\n"));
                            }
                        }
                    }
                }
                let edited = !fields.is_empty() || any_task;
                body.push_str(&format!(
                    "{}Task Group: \"{g}\"{ann}\n",
                    if edited { "+/- " } else { "" }
                ));
                for (p, o, n) in fields {
                    body.push_str(&format!("  +/- {p}: {o} => {n}\n"));
                }
                body.push_str(&tasks);
            }
            (None, None) => {}
        }
    }
    let structural =
        remote.is_none() || !job_fields.is_empty() || body.contains("+ ") || body.contains("- ");
    let count_changes = updates
        .values()
        .any(|u| u.place + u.stop + u.destructive_update + u.in_place_update + u.migrate > 0);
    if structural || count_changes {
        changed = true;
    }
    let head = match (remote.is_some(), changed) {
        (false, _) => format!("+ Job: \"{}\"", job.id),
        (true, true) => format!("+/- Job: \"{}\"", job.id),
        (true, false) => format!("Job: \"{}\"", job.id),
    };
    println!("{head}");
    print!("{body}");
    println!("\nScheduler dry-run:");
    match &resp.failed_tg_allocs {
        Some(f) if !f.is_empty() => {
            println!("- WARNING: Failed to place all allocations.");
            print!("{}", format_failures(f, "  "));
        }
        _ => println!("- All tasks successfully allocated."),
    }
    if !resp.warnings.is_empty() {
        println!("\nJob Warnings:\n{}", resp.warnings);
    }
    let _ = verbose;
    println!("\nJob Modify Index: {}", resp.job_modify_index);
    println!("To submit the job with version verification run:\n");
    println!(
        "nomad job run -check-index {} {}\n",
        resp.job_modify_index, file.file
    );
    println!(
        "When running the job with the check-index flag, the job will only be run if the\n\
         job modify index given matches the server-side version. If the index has\n\
         changed, another user has modified the job and the plan's results are\n\
         potentially invalid."
    );
    Ok(if changed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
