//! Every check the server makes on a job, reported all at once in the job's own words.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::{ValidationError, ValidationErrors};

const LIFECYCLE_HOOKS: &[&str] = &["prestart", "poststart", "poststop"];
const CHECK_TYPES: &[&str] = &["http", "tcp", "grpc", "script"];
const ADDRESS_MODES: &[&str] = &["auto", "host", "driver", "alloc"];
const RESTART_MODES: &[&str] = &["fail", "delay"];
const DELAY_FUNCTIONS: &[&str] = &["constant", "exponential", "fibonacci"];
const CHANGE_MODES: &[&str] = &["noop", "restart", "signal", "script"];
const ON_UPDATE: &[&str] = &["require_healthy", "ignore_warnings", "ignore"];
const HEALTH_CHECKS: &[&str] = &["checks", "task_states", "manual"];
const PAYLOAD_MODES: &[&str] = &["optional", "required", "forbidden"];
const PROVIDERS: &[&str] = &["consul", "nomad"];
const GETTER_MODES: &[&str] = &["any", "file", "dir"];

fn one_of(list: &[&str]) -> String {
    list.join(", ")
}

fn is_interpolated(s: &str) -> bool {
    s.contains("${")
}

/// Port labels name environment variables (`NOMAD_PORT_<label>`); dashes are allowed, as
/// Nomad's HCL2 parser and server allow them, and become underscores there.
fn valid_port_label(label: &str) -> bool {
    !label.is_empty()
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A service name must be a valid DNS label (after interpolation, which is checked later).
fn valid_service_name(name: &str) -> bool {
    if is_interpolated(name) {
        return true;
    }
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

struct Ctx {
    errs: ValidationErrors,
}

impl Ctx {
    fn err(&mut self, path: &str, msg: impl Into<String>) {
        self.errs.push(path, msg);
    }
}

impl Job {
    /// Checks the job as the server does, after [`Job::canonicalize`]. Every problem is
    /// reported, each naming the job, group, task and field it is about.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut cx = Ctx {
            errs: ValidationErrors::new(),
        };
        validate_job(self, &mut cx);
        cx.errs.into_result()
    }
}

fn validate_job(job: &Job, cx: &mut Ctx) {
    let path = if job.id.is_empty() {
        "job".to_string()
    } else {
        format!("job {:?}", job.id)
    };
    if job.id.is_empty() {
        cx.err(&path, "missing job ID");
    } else if job.id.contains(' ') {
        cx.err(&path, format!("job ID {:?} contains a space", job.id));
    } else if job.id.contains('\0') {
        cx.err(&path, "job ID contains a null character");
    }
    if job.name.is_empty() {
        cx.err(&path, "missing job name");
    } else if job.name.contains('\0') {
        cx.err(&path, "job name contains a null character");
    }
    if job.region.as_deref().is_none_or(str::is_empty) {
        cx.err(&path, "missing job region");
    }
    if job.namespace.as_deref().is_none_or(str::is_empty) {
        cx.err(&path, "missing job namespace");
    }
    let kind = match job.kind() {
        Some(k) => k,
        None => {
            cx.err(
                &path,
                format!(
                    "type {:?} is not one of service, batch, system, sysbatch",
                    job.job_type.as_deref().unwrap_or_default()
                ),
            );
            JobType::Service
        }
    };
    if let Some(p) = job.priority {
        if !(1..=100).contains(&p) {
            cx.err(&path, format!("priority {p} must be between 1 and 100"));
        }
    }
    if job.datacenters.is_empty() {
        cx.err(&path, "missing datacenters");
    }
    for dc in &job.datacenters {
        if dc.is_empty() {
            cx.err(&path, "datacenters must not contain an empty name");
        }
    }
    if job.task_groups.is_empty() {
        cx.err(&path, "missing task groups: a job needs at least one group");
    }
    validate_constraints(&job.constraints, &path, cx, true);
    validate_affinities(&job.affinities, &path, cx);
    if matches!(kind, JobType::System | JobType::Sysbatch) && !job.spreads.is_empty() {
        cx.err(
            &path,
            format!("{} jobs may not have a spread block", kind.as_str()),
        );
    }
    validate_spreads(&job.spreads, &path, cx);
    if let Some(p) = &job.periodic {
        validate_periodic(p, kind, &path, cx);
    }
    if let Some(p) = &job.parameterized_job {
        if !matches!(kind, JobType::Batch | JobType::Sysbatch) {
            cx.err(
                &path,
                format!(
                    "parameterized jobs must be of type batch or sysbatch, not {}",
                    kind.as_str()
                ),
            );
        }
        if !p.payload.is_empty() && !PAYLOAD_MODES.contains(&p.payload.as_str()) {
            cx.err(
                &path,
                format!(
                    "parameterized.payload {:?} is not one of {}",
                    p.payload,
                    one_of(PAYLOAD_MODES)
                ),
            );
        }
        let required: BTreeSet<_> = p.meta_required.iter().collect();
        for k in &p.meta_optional {
            if required.contains(k) {
                cx.err(
                    &path,
                    format!("parameterized: meta key {k:?} is both required and optional"),
                );
            }
        }
    }
    if let Some(u) = &job.update {
        validate_update(u, &format!("{path} update"), cx);
    }
    // The job's reschedule block is checked where it lands: merged into each group's policy.
    if let Some(m) = &job.multiregion {
        let mut seen = BTreeSet::new();
        for r in &m.regions {
            if r.name.is_empty() {
                cx.err(&path, "multiregion: a region has no name");
            } else if !seen.insert(&r.name) {
                cx.err(
                    &path,
                    format!("multiregion: region {:?} is listed twice", r.name),
                );
            }
        }
        if let Some(s) = &m.strategy {
            if !["", "fail_all", "fail_local"].contains(&s.on_failure.as_str()) {
                cx.err(
                    &path,
                    format!(
                        "multiregion.strategy.on_failure {:?} is not one of fail_all, fail_local",
                        s.on_failure
                    ),
                );
            }
        }
    }

    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, g) in job.task_groups.iter().enumerate() {
        if g.name.is_empty() {
            cx.err(&path, format!("task group {} has no name", i + 1));
        } else if let Some(first) = names.insert(&g.name, i) {
            cx.err(
                &path,
                format!(
                    "task group {} redefines {:?} from group {}",
                    i + 1,
                    g.name,
                    first + 1
                ),
            );
        }
        validate_group(job, kind, g, &format!("{path} group {:?}", g.name), cx);
    }
}

fn validate_periodic(p: &PeriodicConfig, kind: JobType, path: &str, cx: &mut Ctx) {
    if p.enabled == Some(false) {
        return;
    }
    if !matches!(kind, JobType::Batch | JobType::Sysbatch) {
        cx.err(
            path,
            format!(
                "periodic jobs must be of type batch or sysbatch, not {}",
                kind.as_str()
            ),
        );
    }
    let mut specs: Vec<&str> = p.specs.iter().map(String::as_str).collect();
    if let Some(s) = p.spec.as_deref().filter(|s| !s.is_empty()) {
        specs.push(s);
    }
    if specs.is_empty() {
        cx.err(path, "periodic: a cron expression is required");
    }
    if p.spec.as_deref().is_some_and(|s| !s.is_empty()) && !p.specs.is_empty() {
        cx.err(path, "periodic: set either cron or crons, not both");
    }
    for s in specs {
        if let Err(e) = check_cron(s) {
            cx.err(
                path,
                format!("periodic: invalid cron expression {s:?}: {e}"),
            );
        }
    }
    if let Some(st) = p.spec_type.as_deref() {
        if !st.is_empty() && st != "cron" {
            cx.err(path, format!("periodic: spec type {st:?} is not cron"));
        }
    }
}

/// Checks the shape of a cron expression: 5 to 7 fields of numbers, names, `*`, `?`,
/// ranges, steps and lists, or a predefined `@hourly`-style schedule.
fn check_cron(expr: &str) -> Result<(), String> {
    let e = expr.trim();
    if let Some(name) = e.strip_prefix('@') {
        return match name {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(())
            }
            _ => Err(format!("unknown schedule @{name}")),
        };
    }
    let fields: Vec<&str> = e.split_whitespace().collect();
    if !(5..=7).contains(&fields.len()) {
        return Err(format!("expected 5 to 7 fields, found {}", fields.len()));
    }
    for f in &fields {
        let ok = f.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '*' | '?' | '-' | '/' | ',' | 'L' | '#')
        });
        if !ok {
            return Err(format!("field {f:?} has an invalid character"));
        }
    }
    Ok(())
}

fn validate_group(job: &Job, kind: JobType, g: &TaskGroup, path: &str, cx: &mut Ctx) {
    let count = g.count.unwrap_or(1);
    if matches!(kind, JobType::System | JobType::Sysbatch) && count > 1 {
        cx.err(
            path,
            format!(
                "count {count} cannot exceed 1 with the {} scheduler",
                kind.as_str()
            ),
        );
    }
    // A Connect gateway's task is injected when the job is registered.
    let has_gateway = g
        .services
        .iter()
        .any(|s| s.connect.as_ref().is_some_and(|c| c.gateway.is_some()));
    if g.tasks.is_empty() {
        if !has_gateway {
            cx.err(path, "missing tasks: a group needs at least one task");
        }
    } else if g.tasks.iter().all(|t| t.lifecycle_hook().is_some()) {
        cx.err(
            path,
            "a group must have at least one main task (one with no lifecycle block)",
        );
    }
    if let Some(r) = &g.restart_policy {
        validate_restart(r, &format!("{path} restart"), cx);
    }
    if let Some(r) = &g.reschedule_policy {
        if matches!(kind, JobType::System | JobType::Sysbatch)
            && (r.attempts.unwrap_or(0) > 0 || r.unlimited == Some(true))
        {
            cx.err(
                path,
                format!("{} jobs do not support rescheduling", kind.as_str()),
            );
        }
        validate_reschedule(r, &format!("{path} reschedule"), cx);
    }
    if let Some(u) = &g.update {
        if matches!(kind, JobType::Batch | JobType::Sysbatch) && !u.is_empty() {
            cx.err(
                path,
                format!("{} jobs do not support the update block", kind.as_str()),
            );
        }
        validate_update(u, &format!("{path} update"), cx);
        if u.canary.unwrap_or(0) > 0 && kind == JobType::System {
            cx.err(path, "system jobs do not support canaries");
        }
    }
    if let Some(m) = &g.migrate {
        if let Some(mp) = m.max_parallel {
            if mp < 0 {
                cx.err(path, "migrate.max_parallel must not be negative");
            }
        }
        if let Some(h) = &m.health_check {
            if !["checks", "task_states"].contains(&h.as_str()) {
                cx.err(
                    path,
                    format!("migrate.health_check {h:?} is not one of checks, task_states"),
                );
            }
        }
    }
    if let Some(d) = &g.ephemeral_disk {
        if d.size_mb == Some(0) {
            cx.err(path, "ephemeral_disk.size must be at least 1 MB");
        }
    }
    if let Some(s) = &g.scaling {
        validate_group_scaling(s, count, path, cx);
    }
    if let Some(d) = &g.disconnect {
        if ![
            "",
            "best_score",
            "keep_original",
            "keep_replacement",
            "longest_running",
        ]
        .contains(&d.reconcile.as_str())
        {
            cx.err(
                path,
                format!(
                    "disconnect.reconcile {:?} is not one of best_score, keep_original, keep_replacement, longest_running",
                    d.reconcile
                ),
            );
        }
        if d.stop_on_client_after.is_some() && g.stop_after_client_disconnect.is_some() {
            cx.err(
                path,
                "use disconnect.stop_on_client_after or stop_after_client_disconnect, not both",
            );
        }
        if d.lost_after.is_some() && g.max_client_disconnect.is_some() {
            cx.err(
                path,
                "use disconnect.lost_after or max_client_disconnect, not both",
            );
        }
    }
    validate_constraints(&g.constraints, path, cx, true);
    validate_affinities(&g.affinities, path, cx);
    if matches!(kind, JobType::System | JobType::Sysbatch) && !g.spreads.is_empty() {
        cx.err(
            path,
            format!("{} jobs may not have a spread block", kind.as_str()),
        );
    }
    validate_spreads(&g.spreads, path, cx);

    // Volumes.
    for (name, v) in &g.volumes {
        let vp = format!("{path} volume {name:?}");
        if !["host", "csi"].contains(&v.volume_type.as_str()) {
            cx.err(
                &vp,
                format!("type {:?} is not one of host, csi", v.volume_type),
            );
        }
        if v.source.is_empty() {
            cx.err(&vp, "source is required");
        }
        if v.per_alloc && v.volume_type == "host" {
            cx.err(&vp, "per_alloc is only supported for csi volumes");
        }
    }

    // The group network and its ports.
    if g.networks.len() > 1 {
        cx.err(path, "only one network block is allowed per group");
    }
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    for net in &g.networks {
        validate_network(net, &format!("{path} network"), &mut labels, cx);
    }

    // Group services.
    let mut service_keys = BTreeSet::new();
    for s in &g.services {
        validate_service(s, g, None, &format!("{path} service {:?}", s.name), cx);
        if !service_keys.insert((s.name.clone(), s.port_label.clone())) {
            cx.err(
                path,
                format!(
                    "service {:?} is defined twice for port {:?}",
                    s.name, s.port_label
                ),
            );
        }
    }

    // Tasks.
    let mut task_names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut leaders = 0;
    for (i, t) in g.tasks.iter().enumerate() {
        if t.name.is_empty() {
            cx.err(path, format!("task {} has no name", i + 1));
        } else if let Some(first) = task_names.insert(&t.name, i) {
            cx.err(
                path,
                format!(
                    "task {} redefines {:?} from task {}",
                    i + 1,
                    t.name,
                    first + 1
                ),
            );
        }
        if t.leader {
            leaders += 1;
        }
        validate_task(job, kind, g, t, &format!("{path} task {:?}", t.name), cx);
        // Task-level networks share the label space with the group's.
        if let Some(r) = &t.resources {
            if r.networks.len() > 1 {
                cx.err(
                    &format!("{path} task {:?}", t.name),
                    "only one network block is allowed in resources",
                );
            }
            for net in &r.networks {
                validate_network(
                    net,
                    &format!("{path} task {:?} resources network", t.name),
                    &mut labels,
                    cx,
                );
            }
        }
    }
    if leaders > 1 {
        cx.err(path, "only one task may be marked as leader");
    }
    for s in g.tasks.iter().flat_map(|t| t.services.iter()) {
        service_keys.insert((s.name.clone(), s.port_label.clone()));
    }
    if let Some(d) = &g.ephemeral_disk {
        let size = u64::from(d.size_mb.unwrap_or(300));
        for t in &g.tasks {
            let Some(l) = t.log_config.as_ref().filter(|l| l.disabled != Some(true)) else {
                continue;
            };
            let logs =
                u64::from(l.max_files.unwrap_or(10)) * u64::from(l.max_file_size_mb.unwrap_or(10));
            if size > 0 && size <= logs {
                cx.err(
                    &format!("{path} task {:?}", t.name),
                    format!(
                        "log storage ({logs} MB: logs.max_files * logs.max_file_size) must be less than the ephemeral disk size ({size} MB)"
                    ),
                );
            }
        }
    }
}

fn validate_network(
    net: &NetworkResource,
    path: &str,
    labels: &mut BTreeMap<String, String>,
    cx: &mut Ctx,
) {
    let mode = net.mode_or_default();
    let known = matches!(mode, "host" | "bridge" | "none")
        || mode.strip_prefix("cni/").is_some_and(|n| !n.is_empty());
    if !known {
        cx.err(
            path,
            format!("mode {mode:?} is not one of host, bridge, none, cni/<name>"),
        );
    }
    for p in &net.reserved_ports {
        if p.value == 0 {
            cx.err(
                path,
                format!(
                    "port {:?}: static port must be between 1 and 65535",
                    p.label
                ),
            );
        }
    }
    let mut statics: BTreeMap<(u16, &str), &str> = BTreeMap::new();
    for p in &net.reserved_ports {
        if p.value != 0 {
            if let Some(other) = statics.insert((p.value, p.host_network.as_str()), &p.label) {
                cx.err(
                    path,
                    format!(
                        "port {:?}: static port {} is already used by port {other:?}",
                        p.label, p.value
                    ),
                );
            }
        }
    }
    for p in net.ports() {
        if !valid_port_label(&p.label) {
            cx.err(
                path,
                format!(
                    "port label {:?} does not conform to naming requirements ^[a-zA-Z0-9_-]+$",
                    p.label
                ),
            );
        }
        if p.to < -1 || p.to > 65535 {
            cx.err(
                path,
                format!("port {:?}: to = {} is not a valid port", p.label, p.to),
            );
        }
        // Labels differing only in case collide: they name the same variables.
        if labels
            .insert(p.label.to_lowercase(), path.to_string())
            .is_some()
        {
            cx.err(
                path,
                format!(
                    "found a port label collision: {:?} is defined twice",
                    p.label
                ),
            );
        }
    }
}

fn validate_group_scaling(s: &ScalingPolicy, count: u32, path: &str, cx: &mut Ctx) {
    let sp = format!("{path} scaling");
    if s.policy_type != "horizontal" && !s.policy_type.is_empty() {
        cx.err(
            &sp,
            format!(
                "type {:?} is not valid for a group: only horizontal",
                s.policy_type
            ),
        );
    }
    match s.max {
        None => cx.err(&sp, "max is required"),
        Some(max) => {
            if max < 0 {
                cx.err(&sp, "max must not be negative");
            }
            if let Some(min) = s.min {
                if min > max {
                    cx.err(&sp, format!("min {min} is greater than max {max}"));
                }
                if i64::from(count) < min || i64::from(count) > max {
                    cx.err(
                        &sp,
                        format!("group count {count} is outside min {min} and max {max}"),
                    );
                }
            }
        }
    }
    if s.min.is_some_and(|m| m < 0) {
        cx.err(&sp, "min must not be negative");
    }
}

fn validate_task(job: &Job, kind: JobType, g: &TaskGroup, t: &Task, path: &str, cx: &mut Ctx) {
    if t.name.contains('/') {
        cx.err(path, "task name must not contain a slash");
    }
    if t.name.contains('\0') {
        cx.err(path, "task name must not contain a null character");
    }
    if t.driver.is_empty() {
        cx.err(path, "missing driver");
    }
    if let Some(l) = &t.lifecycle {
        if !LIFECYCLE_HOOKS.contains(&l.hook.as_str()) {
            cx.err(
                path,
                format!(
                    "lifecycle.hook {:?} is not one of {}",
                    l.hook,
                    one_of(LIFECYCLE_HOOKS)
                ),
            );
        }
        if t.leader {
            cx.err(path, "a lifecycle task cannot be the leader");
        }
    }
    if let Some(r) = &t.resources {
        validate_resources(r, path, cx);
    }
    if let Some(rp) = &t.restart_policy {
        validate_restart(rp, &format!("{path} restart"), cx);
    }
    if let Some(l) = &t.log_config {
        if l.max_files == Some(0) {
            cx.err(path, "logs.max_files must be at least 1");
        }
        if l.max_file_size_mb == Some(0) {
            cx.err(path, "logs.max_file_size must be at least 1 MB");
        }
    }
    if let Some(kt) = t.kill_timeout {
        if let Some(u) = g.update.as_ref().and_then(|u| u.healthy_deadline) {
            let _ = (kt, u);
        }
    }
    // Constraints at the task level may not use group-wide operators.
    for c in &t.constraints {
        if c.operand == "distinct_hosts" || c.operand == "distinct_property" {
            cx.err(
                path,
                format!(
                    "constraint operator {:?} is only allowed at the job or group level",
                    c.operand
                ),
            );
        }
    }
    validate_constraints(&t.constraints, path, cx, false);
    validate_affinities(&t.affinities, path, cx);

    for (i, tmpl) in t.templates.iter().enumerate() {
        let tp = format!("{path} template {}", i + 1);
        if tmpl.dest_path.is_empty() {
            cx.err(&tp, "destination is required");
        }
        if tmpl.source_path.is_empty() && tmpl.embedded_tmpl.is_empty() {
            cx.err(&tp, "either source or data must be given");
        }
        if !tmpl.source_path.is_empty() && !tmpl.embedded_tmpl.is_empty() {
            cx.err(&tp, "source and data cannot both be given");
        }
        if !CHANGE_MODES.contains(&tmpl.change_mode.as_str()) && !tmpl.change_mode.is_empty() {
            cx.err(
                &tp,
                format!(
                    "change_mode {:?} is not one of {}",
                    tmpl.change_mode,
                    one_of(CHANGE_MODES)
                ),
            );
        }
        if tmpl.change_mode == "signal" && tmpl.change_signal.is_empty() {
            cx.err(
                &tp,
                "change_signal is required with change_mode = \"signal\"",
            );
        }
        if tmpl.change_mode == "script"
            && tmpl
                .change_script
                .as_ref()
                .is_none_or(|s| s.command.is_empty())
        {
            cx.err(
                &tp,
                "change_script.command is required with change_mode = \"script\"",
            );
        }
        if !tmpl.perms.is_empty() && u32::from_str_radix(&tmpl.perms, 8).is_err() {
            cx.err(
                &tp,
                format!("perms {:?} is not an octal file mode", tmpl.perms),
            );
        }
        if let Some(w) = &tmpl.wait {
            if let (Some(min), Some(max)) = (w.min, w.max) {
                if min > max {
                    cx.err(&tp, "wait.min must not be greater than wait.max");
                }
            }
        }
        if tmpl.envvars && tmpl.dest_path.is_empty() {
            cx.err(&tp, "env = true needs a destination");
        }
    }
    for (i, a) in t.artifacts.iter().enumerate() {
        let ap = format!("{path} artifact {}", i + 1);
        if a.getter_source.is_empty() {
            cx.err(&ap, "source is required");
        }
        if !a.getter_mode.is_empty() && !GETTER_MODES.contains(&a.getter_mode.as_str()) {
            cx.err(
                &ap,
                format!(
                    "mode {:?} is not one of {}",
                    a.getter_mode,
                    one_of(GETTER_MODES)
                ),
            );
        }
    }
    if t.dispatch_payload.is_some() && job.parameterized_job.is_none() {
        cx.err(
            path,
            "dispatch_payload is only allowed in a parameterized job",
        );
    }
    if let Some(v) = &t.vault {
        if !v.change_mode.is_empty()
            && !["noop", "restart", "signal"].contains(&v.change_mode.as_str())
        {
            cx.err(
                path,
                format!(
                    "vault.change_mode {:?} is not one of noop, restart, signal",
                    v.change_mode
                ),
            );
        }
        if v.change_mode == "signal" && v.change_signal.is_empty() {
            cx.err(
                path,
                "vault.change_signal is required with change_mode = \"signal\"",
            );
        }
    }
    for vm in &t.volume_mounts {
        if !g.volumes.contains_key(&vm.volume) {
            cx.err(
                path,
                format!(
                    "volume_mount refers to volume {:?}, which the group does not define",
                    vm.volume
                ),
            );
        }
        if vm.destination.is_empty() {
            cx.err(path, "volume_mount.destination is required");
        }
    }
    let mut seen_kinds = BTreeSet::new();
    for s in &t.scaling_policies {
        let sp = format!("{path} scaling");
        if !["vertical_cpu", "vertical_mem"].contains(&s.policy_type.as_str()) {
            cx.err(
                &sp,
                format!(
                    "type {:?} is not valid for a task: only vertical_cpu, vertical_mem",
                    s.policy_type
                ),
            );
        }
        if !seen_kinds.insert(s.policy_type.clone()) {
            cx.err(&sp, format!("{} is defined twice", s.policy_type));
        }
        if s.max.is_none() {
            cx.err(&sp, "max is required");
        }
        if let (Some(min), Some(max)) = (s.min, s.max) {
            if min > max {
                cx.err(&sp, format!("min {min} is greater than max {max}"));
            }
        }
    }
    for s in &t.services {
        validate_service(s, g, Some(t), &format!("{path} service {:?}", s.name), cx);
    }
    let _ = kind;
}

fn validate_resources(r: &Resources, path: &str, cx: &mut Ctx) {
    let cores = r.cores.unwrap_or(0);
    let cpu = r.cpu.unwrap_or(0);
    if cores > 0 && cpu > 0 {
        cx.err(path, "resources: a task can ask for cpu or cores, not both");
    }
    if cores == 0 && r.cpu.is_some() && cpu < 1 {
        cx.err(path, "resources.cpu must be at least 1 MHz");
    }
    if let Some(m) = r.memory_mb {
        if m < 10 {
            cx.err(
                path,
                format!("resources.memory {m} MB is below the minimum of 10 MB"),
            );
        }
        if let Some(max) = r.memory_max_mb {
            if max != 0 && max < m {
                cx.err(
                    path,
                    format!("resources.memory_max {max} MB is below resources.memory {m} MB"),
                );
            }
        }
    }
    for d in &r.devices {
        if d.name.is_empty() {
            cx.err(path, "resources.device needs a name");
        }
        if d.count == Some(0) {
            cx.err(
                path,
                format!("resources.device {:?}: count must be at least 1", d.name),
            );
        }
        validate_constraints(
            &d.constraints,
            &format!("{path} device {:?}", d.name),
            cx,
            false,
        );
        validate_affinities(&d.affinities, &format!("{path} device {:?}", d.name), cx);
    }
}

fn validate_service(s: &Service, g: &TaskGroup, task: Option<&Task>, path: &str, cx: &mut Ctx) {
    if !valid_service_name(&s.name) {
        cx.err(
            path,
            format!(
                "service name {:?} must be a valid DNS label: letters, digits and dashes, 1 to 63 characters, not starting or ending with a dash",
                s.name
            ),
        );
    }
    if !s.provider.is_empty() && !PROVIDERS.contains(&s.provider.as_str()) {
        cx.err(
            path,
            format!(
                "provider {:?} is not one of {}",
                s.provider,
                one_of(PROVIDERS)
            ),
        );
    }
    if !s.address_mode.is_empty() && !ADDRESS_MODES.contains(&s.address_mode.as_str()) {
        cx.err(
            path,
            format!(
                "address_mode {:?} is not one of {}",
                s.address_mode,
                one_of(ADDRESS_MODES)
            ),
        );
    }
    if !s.on_update.is_empty() && !ON_UPDATE.contains(&s.on_update.as_str()) {
        cx.err(
            path,
            format!(
                "on_update {:?} is not one of {}",
                s.on_update,
                one_of(ON_UPDATE)
            ),
        );
    }
    if !s.address.is_empty() && s.address_mode != "auto" && !s.address_mode.is_empty() {
        cx.err(path, "address can only be set with address_mode = \"auto\"");
    }
    let group_ports: BTreeSet<&str> = g
        .networks
        .iter()
        .flat_map(|n| n.ports())
        .chain(
            g.tasks
                .iter()
                .filter_map(|t| t.resources.as_ref())
                .flat_map(|r| r.networks.iter())
                .flat_map(|n| n.ports()),
        )
        .map(|p| p.label.as_str())
        .collect();
    let port_known = |label: &str| -> bool {
        label.is_empty()
            || group_ports.contains(label)
            || label.parse::<u16>().is_ok()
            || is_interpolated(label)
    };
    if !port_known(&s.port_label) && s.address_mode != "driver" {
        cx.err(
            path,
            format!(
                "port {:?} is not a port label of the group network",
                s.port_label
            ),
        );
    }
    if task.is_none() && !s.task_name.is_empty() && g.task(&s.task_name).is_none() {
        cx.err(
            path,
            format!("task {:?} is not a task of this group", s.task_name),
        );
    }
    if s.provider == "nomad" {
        if s.connect.is_some() {
            cx.err(
                path,
                "connect is not supported with provider = \"nomad\"; use provider = \"consul\"",
            );
        }
        for c in &s.checks {
            if !["http", "tcp"].contains(&c.check_type.as_str()) {
                cx.err(
                    path,
                    format!(
                        "check type {:?} is not supported with provider = \"nomad\": only http and tcp",
                        c.check_type
                    ),
                );
            }
        }
    }
    if let Some(connect) = &s.connect {
        if task.is_some() {
            cx.err(path, "connect is only allowed on group services");
        }
        let modes = connect.native as u8
            + connect.sidecar_service.is_some() as u8
            + connect.gateway.is_some() as u8;
        if modes > 1 {
            cx.err(
                path,
                "connect: choose one of native, sidecar_service or gateway",
            );
        }
        if connect.native && task.is_none() && s.task_name.is_empty() && g.tasks.len() > 1 {
            cx.err(
                path,
                "connect.native on a group service needs task = \"<name>\" when the group has several tasks",
            );
        }
        if connect.sidecar_service.is_some() || connect.gateway.is_some() {
            match g.networks.first() {
                None => cx.err(
                    path,
                    "connect sidecars and gateways need a group network block",
                ),
                Some(n) => {
                    let mode = n.mode_or_default();
                    if mode != "bridge" && !mode.starts_with("cni/") && connect.gateway.is_none() {
                        cx.err(
                            path,
                            format!(
                                "connect sidecars need network mode \"bridge\" or \"cni/*\", not {mode:?}"
                            ),
                        );
                    }
                }
            }
        }
        if let Some(sc) = &connect.sidecar_service {
            if let Some(p) = &sc.proxy {
                let mut binds = BTreeSet::new();
                for u in &p.upstreams {
                    if u.destination_name.is_empty() {
                        cx.err(path, "connect upstream needs destination_name");
                    }
                    if u.local_bind_port == 0 && u.local_bind_socket_path.is_empty() {
                        cx.err(
                            path,
                            format!(
                                "connect upstream {:?} needs local_bind_port",
                                u.destination_name
                            ),
                        );
                    } else if u.local_bind_port != 0
                        && !binds.insert((u.local_bind_address.clone(), u.local_bind_port))
                    {
                        cx.err(
                            path,
                            format!(
                                "connect upstreams: local_bind_port {} is used twice",
                                u.local_bind_port
                            ),
                        );
                    }
                }
            }
        }
    }
    for (i, c) in s.checks.iter().enumerate() {
        let cp = if c.name.is_empty() {
            format!("{path} check {}", i + 1)
        } else {
            format!("{path} check {:?}", c.name)
        };
        validate_check(c, s, task, &port_known, &cp, cx);
    }
}

fn validate_check(
    c: &ServiceCheck,
    s: &Service,
    task: Option<&Task>,
    port_known: &dyn Fn(&str) -> bool,
    path: &str,
    cx: &mut Ctx,
) {
    if !CHECK_TYPES.contains(&c.check_type.as_str()) {
        cx.err(
            path,
            format!(
                "type {:?} is not one of {}",
                c.check_type,
                one_of(CHECK_TYPES)
            ),
        );
        return;
    }
    if c.interval < Duration::from_secs(1) {
        cx.err(path, "interval must be at least 1s");
    }
    if c.timeout < Duration::from_secs(1) {
        cx.err(path, "timeout must be at least 1s");
    }
    match c.check_type.as_str() {
        "http" => {
            if c.path.is_empty() && !c.expose {
                cx.err(path, "http checks need a path");
            }
            if !c.protocol.is_empty() && !["http", "https"].contains(&c.protocol.as_str()) {
                cx.err(
                    path,
                    format!("protocol {:?} is not one of http, https", c.protocol),
                );
            }
        }
        "script" => {
            if c.command.is_empty() {
                cx.err(path, "script checks need a command");
            }
            if task.is_none() && c.task_name.is_empty() && s.task_name.is_empty() {
                cx.err(
                    path,
                    "script checks on group services need task = \"<name>\"",
                );
            }
        }
        _ => {}
    }
    if !c.initial_status.is_empty()
        && !["passing", "warning", "critical"].contains(&c.initial_status.as_str())
    {
        cx.err(
            path,
            format!(
                "initial_status {:?} is not one of passing, warning, critical",
                c.initial_status
            ),
        );
    }
    if !c.address_mode.is_empty() && !["host", "driver", "alloc"].contains(&c.address_mode.as_str())
    {
        cx.err(
            path,
            format!(
                "address_mode {:?} is not one of host, driver, alloc",
                c.address_mode
            ),
        );
    }
    if !c.on_update.is_empty() && !ON_UPDATE.contains(&c.on_update.as_str()) {
        cx.err(
            path,
            format!(
                "on_update {:?} is not one of {}",
                c.on_update,
                one_of(ON_UPDATE)
            ),
        );
    }
    if c.check_type != "script" && !port_known(&c.port_label) && c.address_mode != "driver" {
        cx.err(
            path,
            format!(
                "port {:?} is not a port label of the group network",
                c.port_label
            ),
        );
    }
    if c.check_type != "script" && c.port_label.is_empty() && s.port_label.is_empty() && !c.expose {
        cx.err(
            path,
            format!(
                "{} checks need a port (on the check or its service)",
                c.check_type
            ),
        );
    }
    for (k, vals) in &c.header {
        if k.is_empty() {
            cx.err(path, "header names must not be empty");
        }
        if vals.is_empty() {
            cx.err(path, format!("header {k:?} has no value"));
        }
    }
    if c.success_before_passing > 0 && s.provider == "nomad" {
        cx.err(
            path,
            "success_before_passing is not supported with provider = \"nomad\"",
        );
    }
}

fn validate_restart(r: &RestartPolicy, path: &str, cx: &mut Ctx) {
    if let Some(m) = &r.mode {
        if !RESTART_MODES.contains(&m.as_str()) {
            cx.err(
                path,
                format!("mode {m:?} is not one of {}", one_of(RESTART_MODES)),
            );
        }
    }
    let attempts = r.attempts.unwrap_or(0);
    if attempts < 0 {
        cx.err(path, "attempts must not be negative");
    }
    if let (Some(interval), Some(delay)) = (r.interval, r.delay) {
        if attempts > 0 && !interval.is_zero() {
            let needed = delay.as_nanos().saturating_mul(attempts as u64);
            if needed > interval.as_nanos() {
                cx.err(
                    path,
                    format!(
                        "{attempts} attempts with a delay of {delay} need more than the interval of {interval}"
                    ),
                );
            }
        }
    }
}

fn validate_reschedule(r: &ReschedulePolicy, path: &str, cx: &mut Ctx) {
    let attempts = r.attempts.unwrap_or(0);
    let unlimited = r.unlimited.unwrap_or(false);
    if attempts < 0 {
        cx.err(path, "attempts must not be negative");
    }
    let active = attempts > 0 || unlimited;
    if !active {
        return;
    }
    let df = r.delay_function.as_deref().unwrap_or("");
    if !DELAY_FUNCTIONS.contains(&df) {
        cx.err(
            path,
            format!(
                "delay_function {df:?} is not one of {}",
                one_of(DELAY_FUNCTIONS)
            ),
        );
    }
    let delay = r.delay.unwrap_or_default();
    if delay < Duration::from_secs(5) {
        cx.err(path, format!("delay {delay} must be at least 5s"));
    }
    let max_delay = r.max_delay.unwrap_or_default();
    if df != "constant" && !max_delay.is_zero() && max_delay < delay {
        cx.err(
            path,
            format!("max_delay {max_delay} must not be less than delay {delay}"),
        );
    }
    if !unlimited {
        let interval = r.interval.unwrap_or_default();
        if interval.is_zero() {
            cx.err(path, "interval is required when attempts is set");
        }
    }
}

fn validate_update(u: &UpdateStrategy, path: &str, cx: &mut Ctx) {
    if u.is_empty() {
        return;
    }
    if let Some(h) = &u.health_check {
        if !HEALTH_CHECKS.contains(&h.as_str()) {
            cx.err(
                path,
                format!("health_check {h:?} is not one of {}", one_of(HEALTH_CHECKS)),
            );
        }
    }
    if u.max_parallel.is_some_and(|m| m < 0) {
        cx.err(path, "max_parallel must not be negative");
    }
    if u.canary.is_some_and(|c| c < 0) {
        cx.err(path, "canary must not be negative");
    }
    if let (Some(min), Some(deadline)) = (u.min_healthy_time, u.healthy_deadline) {
        if min >= deadline && !deadline.is_zero() {
            cx.err(
                path,
                format!("min_healthy_time {min} must be less than healthy_deadline {deadline}"),
            );
        }
    }
    if let (Some(deadline), Some(progress)) = (u.healthy_deadline, u.progress_deadline) {
        if !progress.is_zero() && deadline > progress {
            cx.err(
                path,
                format!(
                    "healthy_deadline {deadline} must not be greater than progress_deadline {progress}"
                ),
            );
        }
    }
    if u.auto_promote == Some(true) && u.canary.unwrap_or(0) == 0 {
        cx.err(path, "auto_promote needs canary > 0");
    }
}

fn validate_constraints(cs: &[Constraint], path: &str, cx: &mut Ctx, group_level: bool) {
    for c in cs {
        if let Err(msg) = check_constraint(c, group_level) {
            cx.errs.0.push(ValidationError::new(
                path,
                format!(
                    "constraint {{ attribute = {:?}, operator = {:?}, value = {:?} }}: {msg}",
                    c.l_target, c.operand, c.r_target
                ),
            ));
        }
    }
}

fn check_constraint(c: &Constraint, _group_level: bool) -> Result<(), String> {
    let op = if c.operand.is_empty() {
        "="
    } else {
        c.operand.as_str()
    };
    if !CONSTRAINT_OPERATORS.contains(&op) {
        return Err(format!(
            "operator {op:?} is not one of {}",
            one_of(CONSTRAINT_OPERATORS)
        ));
    }
    match op {
        "=" | "==" | "is" | "!=" | "not" | "<" | "<=" | ">" | ">=" | "set_contains"
        | "set_contains_all" | "set_contains_any" => {
            if c.l_target.is_empty() {
                return Err("attribute is required".into());
            }
            if c.r_target.is_empty() && !matches!(op, "=" | "==" | "is" | "!=" | "not") {
                return Err("value is required".into());
            }
        }
        "regexp" => {
            if c.l_target.is_empty() {
                return Err("attribute is required".into());
            }
            if !is_interpolated(&c.r_target) {
                regex::Regex::new(&c.r_target)
                    .map_err(|e| format!("value is not a valid regular expression: {e}"))?;
            }
        }
        "version" => {
            if c.l_target.is_empty() {
                return Err("attribute is required".into());
            }
            if !is_interpolated(&c.r_target) {
                crate::structs::version::parse_constraint(&c.r_target, false)
                    .map_err(|e| format!("value is not a version constraint: {e}"))?;
            }
        }
        "semver" => {
            if c.l_target.is_empty() {
                return Err("attribute is required".into());
            }
            if !is_interpolated(&c.r_target) {
                crate::structs::version::parse_constraint(&c.r_target, true)
                    .map_err(|e| format!("value is not a semver constraint: {e}"))?;
            }
        }
        "is_set" | "is_not_set" => {
            if c.l_target.is_empty() {
                return Err("attribute is required".into());
            }
            if !c.r_target.is_empty() {
                return Err(format!("{op} takes no value"));
            }
        }
        "distinct_property" => {
            if c.l_target.is_empty() {
                return Err("attribute is required".into());
            }
            if !c.r_target.is_empty() {
                match c.r_target.parse::<u64>() {
                    Ok(n) if n >= 1 => {}
                    _ => {
                        return Err(format!(
                            "value {:?} must be a count of at least 1",
                            c.r_target
                        ))
                    }
                }
            }
        }
        "distinct_hosts"
            if !c.r_target.is_empty() && !["true", "false"].contains(&c.r_target.as_str()) =>
        {
            return Err(format!("value {:?} must be true or false", c.r_target));
        }
        _ => {}
    }
    Ok(())
}

fn validate_affinities(afs: &[Affinity], path: &str, cx: &mut Ctx) {
    for a in afs {
        let desc = format!(
            "affinity {{ attribute = {:?}, operator = {:?}, value = {:?} }}",
            a.l_target, a.operand, a.r_target
        );
        let op = if a.operand.is_empty() {
            "="
        } else {
            a.operand.as_str()
        };
        if matches!(
            op,
            "distinct_hosts" | "distinct_property" | "is_set" | "is_not_set"
        ) || !CONSTRAINT_OPERATORS.contains(&op)
        {
            cx.err(
                path,
                format!("{desc}: operator {op:?} cannot be used in an affinity"),
            );
        }
        if a.l_target.is_empty() {
            cx.err(path, format!("{desc}: attribute is required"));
        }
        match a.weight {
            Some(0) => cx.err(path, format!("{desc}: weight cannot be zero")),
            Some(w) if !(-100..=100).contains(&w) => cx.err(
                path,
                format!("{desc}: weight {w} must be between -100 and 100"),
            ),
            _ => {}
        }
    }
}

fn validate_spreads(spreads: &[Spread], path: &str, cx: &mut Ctx) {
    let mut total_weight: i32 = 0;
    for s in spreads {
        let sp = format!("{path} spread {:?}", s.attribute);
        if s.attribute.is_empty() {
            cx.err(&sp, "attribute is required");
        }
        let w = s.weight.unwrap_or(50);
        if !(0..=100).contains(&w) {
            cx.err(&sp, format!("weight {w} must be between 0 and 100"));
        }
        total_weight += i32::from(w);
        let mut seen = BTreeSet::new();
        let mut sum: u32 = 0;
        for t in &s.spread_target {
            if !seen.insert(&t.value) {
                cx.err(&sp, format!("target {:?} is listed twice", t.value));
            }
            if t.percent > 100 {
                cx.err(
                    &sp,
                    format!("target {:?}: percent {} is over 100", t.value, t.percent),
                );
            }
            sum += u32::from(t.percent);
        }
        if sum > 100 {
            cx.err(&sp, format!("target percentages add up to {sum}, over 100"));
        }
    }
    let _ = total_weight;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Job {
        let mut j = Job {
            id: "web".into(),
            task_groups: vec![TaskGroup {
                name: "app".into(),
                tasks: vec![Task {
                    name: "db".into(),
                    driver: "raw_exec".into(),
                    ..Task::default()
                }],
                ..TaskGroup::default()
            }],
            datacenters: vec!["dc1".into()],
            ..Job::default()
        };
        j.canonicalize();
        j
    }

    fn messages(j: &Job) -> Vec<String> {
        match j.validate() {
            Ok(()) => vec![],
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_minimal_job_is_valid() {
        assert_eq!(messages(&base()), Vec::<String>::new());
    }

    #[test]
    fn lifecycle_hook_error_names_the_path() {
        let mut j = base();
        j.task_groups[0].tasks.push(Task {
            name: "init".into(),
            driver: "raw_exec".into(),
            lifecycle: Some(TaskLifecycle {
                hook: "pre".into(),
                sidecar: false,
            }),
            ..Task::default()
        });
        j.canonicalize();
        assert!(messages(&j).contains(
            &"job \"web\" group \"app\" task \"init\": lifecycle.hook \"pre\" is not one of prestart, poststart, poststop"
                .to_string()
        ));
    }

    #[test]
    fn reports_every_error_at_once() {
        let mut j = base();
        j.priority = Some(500);
        j.task_groups[0].tasks[0].driver.clear();
        j.task_groups[0].tasks[0]
            .resources
            .as_mut()
            .unwrap()
            .memory_mb = Some(1);
        let m = messages(&j);
        assert_eq!(m.len(), 3, "{m:#?}");
        assert!(m[0].contains("priority 500"));
        assert!(m.iter().any(|s| s.ends_with("task \"db\": missing driver")));
        assert!(m.iter().any(|s| s.contains("resources.memory 1 MB")));
    }

    #[test]
    fn id_with_space_and_missing_datacenters() {
        let mut j = base();
        j.id = "my job".into();
        j.datacenters.clear();
        let m = messages(&j);
        assert!(m.iter().any(|s| s.contains("contains a space")), "{m:?}");
        assert!(m.iter().any(|s| s.contains("missing datacenters")), "{m:?}");
    }

    #[test]
    fn duplicate_port_labels_collide() {
        let mut j = base();
        j.task_groups[0].networks = vec![NetworkResource {
            dynamic_ports: vec![
                Port {
                    label: "http".into(),
                    ..Port::default()
                },
                Port {
                    label: "http".into(),
                    ..Port::default()
                },
            ],
            ..NetworkResource::default()
        }];
        assert!(messages(&j)
            .iter()
            .any(|s| s.contains("found a port label collision")));
    }

    #[test]
    fn constraint_operators_are_checked() {
        let mut j = base();
        j.constraints = vec![
            Constraint::new("${attr.kernel.name}", "like", "linux"),
            Constraint::new("${attr.kernel.version}", "version", ">= 3.a.b"),
            Constraint::new("${attr.x}", "regexp", "("),
            Constraint::new("${meta.rack}", "distinct_property", "zero"),
        ];
        let m = messages(&j);
        assert_eq!(m.len(), 4, "{m:#?}");
    }

    #[test]
    fn system_jobs_cannot_count_past_one() {
        let mut j = base();
        j.job_type = Some("system".into());
        j.task_groups[0].count = Some(3);
        j.task_groups[0].reschedule_policy = None;
        j.task_groups[0].migrate = None;
        assert!(messages(&j).iter().any(|s| s.contains("cannot exceed 1")));
    }

    #[test]
    fn group_with_only_lifecycle_tasks_is_refused() {
        let mut j = base();
        j.task_groups[0].tasks[0].lifecycle = Some(TaskLifecycle {
            hook: "prestart".into(),
            sidecar: false,
        });
        assert!(messages(&j)
            .iter()
            .any(|s| s.contains("at least one main task")));
    }

    #[test]
    fn nomad_provider_refuses_script_checks() {
        let mut j = base();
        j.task_groups[0].tasks[0].services.push(Service {
            name: "db".into(),
            provider: "nomad".into(),
            checks: vec![ServiceCheck {
                check_type: "script".into(),
                command: "/bin/true".into(),
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(2),
                ..ServiceCheck::default()
            }],
            ..Service::default()
        });
        j.canonicalize();
        assert!(messages(&j)
            .iter()
            .any(|s| s.contains("not supported with provider = \"nomad\"")));
    }
}
