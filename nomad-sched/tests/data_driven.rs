//! Runs every scenario file under `tests/data/`.
//!
//! The format is one command per line; `#` starts a comment. Commands run in order:
//!
//! ```text
//! config  algorithm=spread preempt-service=true
//! node    NAME dc=dc1 cpu=4000 mem=8192 [disk=] [pool=] [class=] [status=down] [eligible=false]
//!         [drain] [drivers=docker,exec] [reserved-ports=22,80] [dyn=20000-20010]
//!         [hostvol=NAME[:ro]] [device=vendor/type/model:COUNT] [attr.K=V] [meta.K=V]
//! job     ID [type=service] [count=1] [cpu=100] [mem=300] [disk=300] [dc=a,b] [pool=]
//!         [priority=50] [driver=docker] [dynamic=http,admin] [static=web:80] [mode=bridge]
//!         [task-meta=K=V]
//! constraint   LTARGET OP [RTARGET]          (group level of the current job)
//! job-constraint LTARGET OP [RTARGET]        (job level)
//! affinity     LTARGET OP RTARGET weight=N
//! spread       ATTR weight=N [VALUE=PERCENT ...]
//! update       max_parallel=N [canary=N] [auto_revert=true] [auto_promote=true]
//! reschedule   attempts=N interval=SECS delay=SECS function=F [max_delay=SECS] [unlimited=true]
//! migrate      max_parallel=N
//! volume       NAME source=SRC [read_only=true]
//! device       NAME [count=N]
//! run     [now=SECS]               register the current job version and process an eval
//! stop-job                          mark the current job stopped (then `run`)
//! fail    ALLOC_NAME [at=SECS]      the client reports the allocation failed
//! complete ALLOC_NAME               the client reports the allocation complete
//! node-status NAME STATUS           e.g. down
//! drain   NAME
//! healthy ALLOC_NAME                mark the allocation healthy in its deployment
//! promote                           promote the job's deployment
//! expect  placed=N | stopped=N | failed=N | inplace=N | blocked=true|false | evals=N
//!         running=N                 non-terminal allocations of the job
//!         on NODE=N                 non-terminal allocations of the job on NODE
//!         distinct-nodes            no two running allocations share a node
//!         names=a,b                 running allocation names, sorted
//!         per-meta KEY VALUE=N      non-terminal allocations on nodes with meta.KEY=VALUE
//!         node-of NAME=NODE         where the running allocation NAME runs
//!         filtered=TEXT             a failed group's metric names TEXT among filtered reasons
//!         exhausted=DIM             a failed group's metric names DIM as exhausted
//!         deployment=STATUS         the job's latest deployment status
//!         canaries=N                running canaries
//!         followup=true             a delayed follow-up eval was created
//!         ports-unique              no host port used twice on a node
//!         desc NAME=TEXT            a copy of allocation NAME (`*`: any) is stopped with TEXT
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use nomad_core::job::{
    Affinity, Constraint, Duration, Job, MigrateStrategy, NetworkResource, Port, RequestedDevice,
    ReschedulePolicy, Resources, Spread, SpreadTarget, Task, TaskGroup, UpdateStrategy,
    VolumeRequest,
};
use nomad_core::structs::{
    AllocDeploymentStatus, Allocation, DrainStrategy, Evaluation, HostVolume, Node, NodeDevice,
    NodeDeviceResource, NodeReservedResources, NodeResources, SchedulerConfiguration,
};
use nomad_sched::{EvalOutcome, MemState, SchedState, Scheduler, SchedulerOptions};

const SEC: i64 = 1_000_000_000;

struct Runner {
    file: String,
    state: MemState,
    job: Option<Job>,
    last: Option<EvalOutcome>,
    evals: u64,
    now: i64,
}

fn kv(words: &[&str]) -> BTreeMap<String, String> {
    words
        .iter()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Runner {
    fn fail(&self, line: usize, msg: impl AsRef<str>) -> ! {
        panic!("{}:{}: {}", self.file, line, msg.as_ref())
    }

    fn node_id(name: &str) -> String {
        format!("node-{name}")
    }

    fn group(&mut self, line: usize) -> &mut TaskGroup {
        let Some(job) = self.job.as_mut() else {
            panic!("line {line}: no job defined yet")
        };
        &mut job.task_groups[0]
    }

    fn node(&mut self, line: usize, w: &[&str]) {
        let Some(name) = w.first() else {
            self.fail(line, "node needs a name")
        };
        let a = kv(&w[1..]);
        let num = |k: &str, d: u64| a.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        let mut n = Node {
            id: Self::node_id(name).into(),
            name: name.to_string().into(),
            datacenter: a.get("dc").cloned().unwrap_or_else(|| "dc1".into()),
            node_pool: a.get("pool").cloned().unwrap_or_else(|| "default".into()),
            node_class: a.get("class").cloned().unwrap_or_default(),
            status: a.get("status").cloned().unwrap_or_else(|| "ready".into()),
            scheduling_eligibility: if a.get("eligible").map(String::as_str) == Some("false") {
                "ineligible".into()
            } else {
                "eligible".into()
            },
            node_resources: Some(NodeResources::default()),
            ..Node::default()
        };
        if let Some(r) = &mut n.node_resources {
            r.cpu.cpu_shares = num("cpu", 4000);
            r.memory.memory_mb = num("mem", 8192);
            r.disk.disk_mb = num("disk", 100_000);
            if let Some((lo, hi)) = a.get("dyn").and_then(|d| d.split_once('-')) {
                r.min_dynamic_port = lo.parse().unwrap_or(20000);
                r.max_dynamic_port = hi.parse().unwrap_or(32000);
            }
            if let Some(spec) = a.get("device") {
                let (id, count) = spec.split_once(':').unwrap_or((spec, "1"));
                let parts: Vec<&str> = id.split('/').collect();
                let count: usize = count.parse().unwrap_or(1);
                r.devices.push(NodeDeviceResource {
                    vendor: parts.first().unwrap_or(&"").to_string(),
                    device_type: parts.get(1).unwrap_or(&"").to_string(),
                    name: parts.get(2).unwrap_or(&"").to_string(),
                    instances: (0..count)
                        .map(|i| NodeDevice {
                            id: format!("{name}-dev{i}"),
                            healthy: true,
                            ..NodeDevice::default()
                        })
                        .collect(),
                    attributes: BTreeMap::new(),
                });
            }
        }
        if let Some(p) = a.get("reserved-ports") {
            let mut r = NodeReservedResources::default();
            r.networks.reserved_host_ports = p.clone();
            n.reserved_resources = Some(r);
        }
        if w.contains(&"drain") {
            n.drain_strategy = Some(DrainStrategy::default());
            n.scheduling_eligibility = "ineligible".into();
        }
        let drivers = a
            .get("drivers")
            .cloned()
            .unwrap_or_else(|| "docker,exec".into());
        for d in drivers.split(',').filter(|d| !d.is_empty()) {
            n.attributes.insert(format!("driver.{d}"), "1".into());
        }
        n.attributes.insert("kernel.name".into(), "linux".into());
        n.attributes
            .insert("unique.hostname".into(), name.to_string());
        if let Some(v) = a.get("hostvol") {
            let (vn, ro) = v.split_once(':').unwrap_or((v, ""));
            n.host_volumes.insert(
                vn.to_string(),
                HostVolume {
                    path: format!("/srv/{vn}"),
                    read_only: ro == "ro",
                },
            );
        }
        for (k, v) in &a {
            if let Some(k) = k.strip_prefix("attr.") {
                n.attributes.insert(k.to_string(), v.clone());
            } else if let Some(k) = k.strip_prefix("meta.") {
                n.meta.insert(k.to_string(), v.clone());
            }
        }
        self.state.upsert_node(n);
    }

    fn job(&mut self, line: usize, w: &[&str]) {
        let Some(id) = w.first() else {
            self.fail(line, "job needs an id")
        };
        let a = kv(&w[1..]);
        let num = |k: &str, d: u32| a.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
        let mut network = NetworkResource {
            mode: a.get("mode").cloned().unwrap_or_default().into(),
            ..NetworkResource::default()
        };
        if let Some(d) = a.get("dynamic") {
            for label in d.split(',') {
                network.dynamic_ports.push(Port {
                    label: label.into(),
                    ..Port::default()
                });
            }
        }
        if let Some(s) = a.get("static") {
            for p in s.split(',') {
                let (label, v) = p.split_once(':').unwrap_or(("p", p));
                network.reserved_ports.push(Port {
                    label: label.into(),
                    value: v.parse().unwrap_or(0),
                    ..Port::default()
                });
            }
        }
        let mut task = Task {
            name: "main".into(),
            driver: a.get("driver").cloned().unwrap_or_else(|| "docker".into()),
            resources: Some(Resources {
                cpu: Some(num("cpu", 100)),
                memory_mb: Some(num("mem", 300)),
                ..Resources::default()
            }),
            ..Task::default()
        };
        if let Some(m) = a.get("task-meta") {
            let (k, v) = m.split_once(':').unwrap_or((m, ""));
            task.meta.insert(k.into(), v.into());
        }
        let group = TaskGroup {
            name: "app".into(),
            count: Some(num("count", 1)),
            tasks: vec![task],
            networks: if network.mode.is_empty()
                && network.dynamic_ports.is_empty()
                && network.reserved_ports.is_empty()
            {
                Vec::new()
            } else {
                vec![network]
            },
            ephemeral_disk: Some(nomad_core::job::EphemeralDisk {
                size_mb: Some(num("disk", 300)),
                ..Default::default()
            }),
            ..TaskGroup::default()
        };
        let job = Job {
            id: id.to_string(),
            job_type: Some(a.get("type").cloned().unwrap_or_else(|| "service".into())),
            priority: Some(num("priority", 50) as i32),
            datacenters: a
                .get("dc")
                .map(|d| d.split(',').map(String::from).collect())
                .unwrap_or_default(),
            node_pool: a.get("pool").cloned(),
            task_groups: vec![group],
            ..Job::default()
        };
        self.job = Some(job);
    }

    fn constraint(w: &[&str]) -> Constraint {
        if let [op] = w {
            return Constraint::new("", *op, "");
        }
        Constraint::new(
            *w.first().unwrap_or(&""),
            *w.get(1).unwrap_or(&""),
            w.get(2).map(|s| s.to_string()).unwrap_or_default(),
        )
    }

    fn run(&mut self, line: usize, w: &[&str]) {
        let a = kv(w);
        if let Some(t) = a.get("now").and_then(|v| v.parse::<i64>().ok()) {
            self.now = t * SEC;
        }
        let Some(mut job) = self.job.clone() else {
            self.fail(line, "run without a job")
        };
        let existing = self.state.job("default", &job.id);
        job.canonicalize();
        // Keep explicit update blocks only (canonicalize adds none for groups without one).
        if existing.as_ref().is_none_or(|e| **e != job) {
            self.state.upsert_job(job.clone());
        }
        self.evals += 1;
        let eval = Evaluation {
            id: format!("eval-{}", self.evals),
            job_id: job.id.clone(),
            eval_type: job.job_type.clone().unwrap_or_default(),
            triggered_by: "job-register".into(),
            modify_time: self.now,
            ..Evaluation::default()
        };
        let sched = Scheduler::new(SchedulerOptions {
            seed: 7 + self.evals,
            now: Some(self.now),
            ..SchedulerOptions::default()
        });
        match sched.process(&eval, &mut self.state) {
            Ok(o) => self.last = Some(o),
            Err(e) => self.fail(line, format!("scheduler error: {e}")),
        }
    }

    fn running(&self) -> Vec<Arc<Allocation>> {
        let Some(job) = &self.job else {
            return Vec::new();
        };
        self.state
            .allocs_by_job("default", &job.id)
            .iter()
            .filter(|a| !a.terminal())
            .cloned()
            .collect()
    }

    fn by_name(&self, line: usize, name: &str) -> Arc<Allocation> {
        let Some(job) = &self.job else {
            self.fail(line, "no job")
        };
        let full = format!(
            "{}.app[{}]",
            job.id,
            name.trim_start_matches("app")
                .trim_matches(|c| c == '[' || c == ']')
        );
        let all = self.state.allocs_by_job("default", &job.id);
        all.iter()
            .filter(|a| a.name == full || a.name == name)
            .max_by_key(|a| (!a.terminal(), a.modify_index))
            .cloned()
            .unwrap_or_else(|| self.fail(line, format!("no allocation named {full}")))
    }

    fn client_status(&mut self, line: usize, name: &str, status: &str, at: Option<i64>) {
        let a = self.by_name(line, name);
        let mut u = (*a).clone();
        u.client_status = status.into();
        u.modify_time = at.map_or(self.now, |t| t * SEC);
        self.state.upsert_alloc(u, None);
    }

    fn expect(&mut self, line: usize, w: &[&str]) {
        let out = self.last.clone().unwrap_or_default();
        let running = self.running();
        let first = *w.first().unwrap_or(&"");
        if first == "on" {
            for (node, n) in kv(&w[1..]) {
                let id = Self::node_id(&node);
                let got = running.iter().filter(|a| a.node_id == id).count();
                if got.to_string() != n {
                    self.fail(
                        line,
                        format!("expected {n} allocations on {node}, found {got}"),
                    );
                }
            }
            return;
        }
        if first == "per-meta" {
            let key = *w.get(1).unwrap_or(&"");
            for (value, n) in kv(&w[2..]) {
                let got = running
                    .iter()
                    .filter(|a| {
                        self.state
                            .node_idx(&a.node_id)
                            .and_then(|i| self.state.nodes().get(i as usize))
                            .is_some_and(|node| node.meta.get(key) == Some(&value))
                    })
                    .count();
                if got.to_string() != n {
                    self.fail(
                        line,
                        format!("expected {n} allocations where meta.{key}={value}, found {got}"),
                    );
                }
            }
            return;
        }
        if first == "node-of" {
            for (name, node) in kv(&w[1..]) {
                let a = self.by_name(line, &name);
                if a.terminal() || a.node_id != Self::node_id(&node) {
                    self.fail(
                        line,
                        format!(
                            "expected {name} running on {node}, it is on {} ({})",
                            a.node_id, a.client_status
                        ),
                    );
                }
            }
            return;
        }
        if first == "desc" {
            for (name, text) in kv(&w[1..]) {
                let Some(job) = &self.job else {
                    self.fail(line, "no job")
                };
                let full = format!("{}.app[{}]", job.id, name);
                let found = self
                    .state
                    .allocs_by_job("default", &job.id)
                    .iter()
                    .any(|a| {
                        (name == "*" || a.name == full)
                            && a.server_terminal()
                            && a.desired_description.contains(&text.replace('_', " "))
                    });
                if !found {
                    self.fail(
                        line,
                        format!("no stopped copy of {full} with description {text:?}"),
                    );
                }
            }
            return;
        }
        if first == "distinct-nodes" {
            let nodes: BTreeSet<&str> = running.iter().map(|a| a.node_id.as_str()).collect();
            if nodes.len() != running.len() {
                self.fail(line, "two allocations share a node");
            }
            return;
        }
        if first == "ports-unique" {
            let mut seen = BTreeSet::new();
            for a in self.state.allocs().filter(|a| !a.terminal()) {
                for p in a
                    .allocated_resources
                    .iter()
                    .flat_map(|r| r.shared.ports.iter())
                {
                    if !seen.insert((a.node_id.clone(), p.host_ip.clone(), p.value)) {
                        self.fail(
                            line,
                            format!("port {} used twice on {}", p.value, a.node_id),
                        );
                    }
                }
            }
            return;
        }
        for (k, v) in kv(w) {
            let check = |got: String| {
                if got != v {
                    self.fail(line, format!("expected {k}={v}, got {got} (outcome: placed {} stopped {} inplace {} failed {:?} blocked {:?})", out.placed, out.stopped, out.updated_in_place, out.failed, out.blocked_eval));
                }
            };
            match k.as_str() {
                "placed" => check(out.placed.to_string()),
                "stopped" => check(out.stopped.to_string()),
                "inplace" => check(out.updated_in_place.to_string()),
                "failed" => check(out.failed.values().sum::<u32>().to_string()),
                "blocked" => check(out.blocked_eval.is_some().to_string()),
                "followup" => check((!out.followup_evals.is_empty()).to_string()),
                "running" => check(running.len().to_string()),
                "evals" => check(self.state.evals().len().to_string()),
                "names" => {
                    let mut names: Vec<String> = running.iter().map(|a| a.name.clone()).collect();
                    names.sort();
                    check(names.join(","));
                }
                "canaries" => check(
                    running
                        .iter()
                        .filter(|a| a.deployment_status.as_ref().is_some_and(|s| s.canary))
                        .count()
                        .to_string(),
                ),
                "deployment" => {
                    let id = self.job.as_ref().map(|j| j.id.clone()).unwrap_or_default();
                    check(
                        self.state
                            .latest_deployment("default", &id)
                            .map_or("none".to_string(), |d| d.status.clone()),
                    )
                }
                "filtered" | "exhausted" => {
                    let text = v.replace('_', " ");
                    let ok = out.eval.failed_tg_allocs.values().any(|m| {
                        if k == "filtered" {
                            m.constraint_filtered
                                .keys()
                                .any(|c| c.contains(&text) || c.contains(&v))
                        } else {
                            m.dimension_exhausted
                                .keys()
                                .any(|c| c.contains(&text) || c.contains(&v))
                        }
                    });
                    if !ok {
                        self.fail(
                            line,
                            format!(
                                "no failed placement metric names {text:?}: {:?}",
                                out.eval.failed_tg_allocs
                            ),
                        );
                    }
                }
                other => self.fail(line, format!("unknown expectation {other}")),
            }
        }
    }

    fn line(&mut self, line: usize, text: &str) {
        let words: Vec<&str> = text.split_whitespace().collect();
        let Some((cmd, rest)) = words.split_first() else {
            return;
        };
        match *cmd {
            "config" => {
                let a = kv(rest);
                let mut c = SchedulerConfiguration::default();
                if let Some(alg) = a.get("algorithm") {
                    c.scheduler_algorithm = alg.clone();
                }
                c.preemption_config.service_scheduler_enabled =
                    a.get("preempt-service").is_some_and(|v| v == "true");
                c.preemption_config.batch_scheduler_enabled =
                    a.get("preempt-batch").is_some_and(|v| v == "true");
                if let Some(v) = a.get("preempt-system") {
                    c.preemption_config.system_scheduler_enabled = v == "true";
                }
                self.state.set_scheduler_config(c);
            }
            "node" => self.node(line, rest),
            "job" => self.job(line, rest),
            "constraint" => {
                let c = Self::constraint(rest);
                self.group(line).constraints.push(c);
            }
            "job-constraint" => {
                let c = Self::constraint(rest);
                if let Some(j) = self.job.as_mut() {
                    j.constraints.push(c);
                }
            }
            "affinity" => {
                let a = kv(rest);
                let c = Self::constraint(rest);
                self.group(line).affinities.push(Affinity {
                    l_target: c.l_target,
                    operand: c.operand,
                    r_target: c.r_target,
                    weight: a.get("weight").and_then(|w| w.parse().ok()),
                });
            }
            "spread" => {
                let a = kv(&rest[1..]);
                let mut s = Spread {
                    attribute: rest.first().unwrap_or(&"").to_string(),
                    weight: a.get("weight").and_then(|w| w.parse().ok()),
                    spread_target: Vec::new(),
                };
                for (k, v) in &a {
                    if k != "weight" {
                        s.spread_target.push(SpreadTarget {
                            value: k.clone(),
                            percent: v.parse().unwrap_or(0),
                        });
                    }
                }
                self.group(line).spreads.push(s);
            }
            "update" => {
                let a = kv(rest);
                let g = self.group(line);
                g.update = Some(UpdateStrategy {
                    max_parallel: a.get("max_parallel").and_then(|v| v.parse().ok()),
                    canary: a.get("canary").and_then(|v| v.parse().ok()),
                    auto_revert: a.get("auto_revert").map(|v| v == "true"),
                    auto_promote: a.get("auto_promote").map(|v| v == "true"),
                    ..UpdateStrategy::default()
                });
            }
            "reschedule" => {
                let a = kv(rest);
                let secs = |k: &str| {
                    a.get(k)
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(Duration::from_secs)
                };
                self.group(line).reschedule_policy = Some(ReschedulePolicy {
                    attempts: a.get("attempts").and_then(|v| v.parse().ok()),
                    interval: secs("interval"),
                    delay: secs("delay"),
                    delay_function: a.get("function").cloned(),
                    max_delay: secs("max_delay"),
                    unlimited: a.get("unlimited").map(|v| v == "true"),
                });
            }
            "migrate" => {
                let a = kv(rest);
                self.group(line).migrate = Some(MigrateStrategy {
                    max_parallel: a.get("max_parallel").and_then(|v| v.parse().ok()),
                    ..MigrateStrategy::default()
                });
            }
            "volume" => {
                let a = kv(&rest[1..]);
                let name = rest.first().unwrap_or(&"").to_string();
                self.group(line).volumes.insert(
                    name.clone(),
                    VolumeRequest {
                        name,
                        volume_type: "host".into(),
                        source: a.get("source").cloned().unwrap_or_default(),
                        read_only: a.get("read_only").is_some_and(|v| v == "true"),
                        ..VolumeRequest::default()
                    },
                );
            }
            "device" => {
                let a = kv(&rest[1..]);
                let d = RequestedDevice {
                    name: rest.first().unwrap_or(&"").to_string(),
                    count: a.get("count").and_then(|v| v.parse().ok()),
                    ..RequestedDevice::default()
                };
                let g = self.group(line);
                if let Some(r) = g.tasks[0].resources.as_mut() {
                    r.devices.push(d);
                }
            }
            "run" => self.run(line, rest),
            "stop-job" => {
                if let Some(j) = self.job.as_mut() {
                    j.stop = Some(true);
                }
            }
            "fail" => {
                let a = kv(&rest[1..]);
                let at = a.get("at").and_then(|v| v.parse().ok());
                self.client_status(line, rest.first().unwrap_or(&""), "failed", at);
            }
            "complete" => self.client_status(line, rest.first().unwrap_or(&""), "complete", None),
            "healthy" => {
                let a = self.by_name(line, rest.first().unwrap_or(&""));
                let mut u = (*a).clone();
                u.client_status = "running".into();
                let canary = u.deployment_status.as_ref().is_some_and(|s| s.canary);
                u.deployment_status = Some(AllocDeploymentStatus {
                    healthy: Some(true),
                    canary,
                    ..Default::default()
                });
                self.state.upsert_alloc(u, None);
            }
            "promote" => {
                let id = self.job.as_ref().map(|j| j.id.clone()).unwrap_or_default();
                let Some(mut d) = self.state.latest_deployment("default", &id).cloned() else {
                    self.fail(line, "no deployment to promote")
                };
                for s in d.task_groups.values_mut() {
                    s.promoted = true;
                }
                self.state.upsert_deployment(d);
            }
            "node-status" => {
                let id = Self::node_id(rest.first().unwrap_or(&""));
                let Some(idx) = self.state.node_idx(&id) else {
                    self.fail(line, "unknown node")
                };
                let mut n = (*self.state.nodes()[idx as usize]).clone();
                n.status = rest.get(1).unwrap_or(&"down").to_string();
                self.state.upsert_node(n);
            }
            "drain" => {
                let id = Self::node_id(rest.first().unwrap_or(&""));
                let Some(idx) = self.state.node_idx(&id) else {
                    self.fail(line, "unknown node")
                };
                let mut n = (*self.state.nodes()[idx as usize]).clone();
                n.drain_strategy = Some(DrainStrategy::default());
                n.scheduling_eligibility = "ineligible".into();
                self.state.upsert_node(n);
            }
            "expect" => self.expect(line, rest),
            other => self.fail(line, format!("unknown command {other:?}")),
        }
    }
}

fn run_file(path: &Path) {
    let text = std::fs::read_to_string(path).expect("scenario file is readable");
    let mut r = Runner {
        file: path.display().to_string(),
        state: MemState::new(),
        job: None,
        last: None,
        evals: 0,
        now: 1_700_000_000 * SEC,
    };
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if !line.is_empty() {
            r.line(i + 1, line);
        }
    }
}

#[test]
fn data_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/data exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "expected the scenario files in {}",
        dir.display()
    );
    for f in &files {
        run_file(f);
    }
}
