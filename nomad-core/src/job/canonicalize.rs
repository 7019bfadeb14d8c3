//! Defaults as Nomad applies them when a job is registered.

use super::*;

// Restart policy defaults for service and system jobs.
const DEFAULT_SERVICE_RESTART: (i32, Duration, Duration) =
    (2, Duration::from_mins(30), Duration::from_secs(15));
// Restart policy defaults for batch and sysbatch jobs.
const DEFAULT_BATCH_RESTART: (i32, Duration, Duration) =
    (3, Duration::from_hours(24), Duration::from_secs(15));

impl RestartPolicy {
    /// Nomad's default restart policy for a job type.
    pub fn default_for(kind: JobType) -> RestartPolicy {
        let (attempts, interval, delay) = match kind {
            JobType::Service | JobType::System => DEFAULT_SERVICE_RESTART,
            JobType::Batch | JobType::Sysbatch => DEFAULT_BATCH_RESTART,
        };
        RestartPolicy {
            attempts: Some(attempts),
            interval: Some(interval),
            delay: Some(delay),
            mode: Some("fail".to_string()),
            render_templates: Some(false),
        }
    }

    /// Fills the fields unset here from `base`.
    fn fill_from(&mut self, base: &RestartPolicy) {
        self.attempts = self.attempts.or(base.attempts);
        self.interval = self.interval.or(base.interval);
        self.delay = self.delay.or(base.delay);
        if self.mode.as_deref().is_none_or(str::is_empty) {
            self.mode.clone_from(&base.mode);
        }
        self.render_templates = self.render_templates.or(base.render_templates);
    }
}

impl ReschedulePolicy {
    /// Nomad's default reschedule policy for a job type.
    pub fn default_for(kind: JobType) -> ReschedulePolicy {
        match kind {
            JobType::Service => ReschedulePolicy {
                attempts: Some(0),
                interval: Some(Duration::ZERO),
                delay: Some(Duration::from_secs(30)),
                delay_function: Some("exponential".to_string()),
                max_delay: Some(Duration::from_hours(1)),
                unlimited: Some(true),
            },
            JobType::Batch => ReschedulePolicy {
                attempts: Some(1),
                interval: Some(Duration::from_hours(24)),
                delay: Some(Duration::from_secs(5)),
                delay_function: Some("constant".to_string()),
                max_delay: Some(Duration::ZERO),
                unlimited: Some(false),
            },
            JobType::System | JobType::Sysbatch => ReschedulePolicy {
                attempts: Some(0),
                interval: Some(Duration::ZERO),
                delay: Some(Duration::ZERO),
                delay_function: Some(String::new()),
                max_delay: Some(Duration::ZERO),
                unlimited: Some(false),
            },
        }
    }

    fn fill_from(&mut self, base: &ReschedulePolicy) {
        self.attempts = self.attempts.or(base.attempts);
        self.interval = self.interval.or(base.interval);
        self.delay = self.delay.or(base.delay);
        if self.delay_function.is_none() {
            self.delay_function.clone_from(&base.delay_function);
        }
        self.max_delay = self.max_delay.or(base.max_delay);
        self.unlimited = self.unlimited.or(base.unlimited);
    }
}

impl UpdateStrategy {
    /// Nomad's default update strategy.
    pub fn defaults() -> UpdateStrategy {
        UpdateStrategy {
            stagger: Some(Duration::from_secs(30)),
            max_parallel: Some(1),
            health_check: Some("checks".to_string()),
            min_healthy_time: Some(Duration::from_secs(10)),
            healthy_deadline: Some(Duration::from_mins(5)),
            progress_deadline: Some(Duration::from_mins(10)),
            canary: Some(0),
            auto_revert: Some(false),
            auto_promote: Some(false),
        }
    }

    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        *self == UpdateStrategy::default()
    }

    fn fill_from(&mut self, base: &UpdateStrategy) {
        self.stagger = self.stagger.or(base.stagger);
        self.max_parallel = self.max_parallel.or(base.max_parallel);
        if self.health_check.is_none() {
            self.health_check.clone_from(&base.health_check);
        }
        self.min_healthy_time = self.min_healthy_time.or(base.min_healthy_time);
        self.healthy_deadline = self.healthy_deadline.or(base.healthy_deadline);
        self.progress_deadline = self.progress_deadline.or(base.progress_deadline);
        self.canary = self.canary.or(base.canary);
        self.auto_revert = self.auto_revert.or(base.auto_revert);
        self.auto_promote = self.auto_promote.or(base.auto_promote);
    }
}

impl MigrateStrategy {
    /// Nomad's default migrate strategy.
    pub fn defaults() -> MigrateStrategy {
        MigrateStrategy {
            max_parallel: Some(1),
            health_check: Some("checks".to_string()),
            min_healthy_time: Some(Duration::from_secs(10)),
            healthy_deadline: Some(Duration::from_mins(5)),
        }
    }

    fn fill_from(&mut self, base: &MigrateStrategy) {
        self.max_parallel = self.max_parallel.or(base.max_parallel);
        if self.health_check.is_none() {
            self.health_check.clone_from(&base.health_check);
        }
        self.min_healthy_time = self.min_healthy_time.or(base.min_healthy_time);
        self.healthy_deadline = self.healthy_deadline.or(base.healthy_deadline);
    }
}

impl Resources {
    /// Nomad's default task resources: 100 MHz and 300 MB.
    pub fn defaults() -> Resources {
        Resources {
            cpu: Some(100),
            cores: Some(0),
            memory_mb: Some(300),
            memory_max_mb: Some(0),
            ..Resources::default()
        }
    }

    /// Fills unset fields with defaults; a task that asks for cores gets no MHz default.
    pub fn canonicalize(&mut self) {
        let wants_cores = self.cores.is_some_and(|c| c > 0);
        if self.cpu.is_none() {
            self.cpu = Some(if wants_cores { 0 } else { 100 });
        }
        self.cores = self.cores.or(Some(0));
        self.memory_mb = self.memory_mb.or(Some(300));
        self.memory_max_mb = self.memory_max_mb.or(Some(0));
        for d in &mut self.devices {
            d.count = d.count.or(Some(1));
        }
    }
}

impl LogConfig {
    /// Nomad's default log rotation: 10 files of 10 MB.
    pub fn defaults() -> LogConfig {
        LogConfig {
            max_files: Some(10),
            max_file_size_mb: Some(10),
            disabled: Some(false),
            enabled: None,
        }
    }

    fn canonicalize(&mut self) {
        self.max_files = self.max_files.or(Some(10));
        self.max_file_size_mb = self.max_file_size_mb.or(Some(10));
        if self.disabled.is_none() {
            self.disabled = Some(self.enabled == Some(false));
        }
    }
}

impl Job {
    /// Applies Nomad's defaults in place, as the server does on registration: name, region,
    /// namespace, type, priority, node pool; per group count, restart,
    /// reschedule, update (merged with the job's), migrate, ephemeral disk, scaling; per task
    /// kill timeout, resources, log rotation, restart (inherited from the group), templates,
    /// artifacts; services' names, address mode and provider; constraint operators; spread
    /// and affinity weights. Calling it twice changes nothing the second time.
    pub fn canonicalize(&mut self) {
        if self.name.is_empty() {
            self.name.clone_from(&self.id);
        }
        fill_str(&mut self.region, "global");
        fill_str(&mut self.namespace, "default");
        fill_str(&mut self.job_type, "service");
        fill_str(&mut self.node_pool, "default");
        self.priority = self.priority.or(Some(50));
        self.all_at_once = self.all_at_once.or(Some(false));
        self.stop = self.stop.or(Some(false));
        let kind = self.kind().unwrap_or(JobType::Service);

        canonicalize_constraints(&mut self.constraints);
        canonicalize_affinities(&mut self.affinities);
        canonicalize_spreads(&mut self.spreads);

        if let Some(p) = &mut self.periodic {
            p.enabled = p.enabled.or(Some(true));
            fill_str(&mut p.spec_type, "cron");
            p.prohibit_overlap = p.prohibit_overlap.or(Some(false));
            fill_str(&mut p.time_zone, "UTC");
        }
        if let Some(p) = &mut self.parameterized_job {
            if p.payload.is_empty() {
                p.payload = "optional".to_string();
            }
        }
        if let Some(u) = &mut self.update {
            if !u.is_empty() {
                u.fill_from(&UpdateStrategy::defaults());
            }
        }

        let job_update = self.update.clone().filter(|u| !u.is_empty());
        let job_reschedule = self.reschedule.clone();
        let job_migrate = self.migrate.clone();
        let consul_ns = self.consul_namespace.clone();
        let job_name = self.name.clone();
        for group in &mut self.task_groups {
            group.canonicalize(
                kind,
                &job_name,
                job_update.as_ref(),
                job_reschedule.as_ref(),
                job_migrate.as_ref(),
                &consul_ns,
            );
        }
    }
}

impl TaskGroup {
    fn canonicalize(
        &mut self,
        kind: JobType,
        job_name: &str,
        job_update: Option<&UpdateStrategy>,
        job_reschedule: Option<&ReschedulePolicy>,
        job_migrate: Option<&MigrateStrategy>,
        consul_ns: &str,
    ) {
        if let Some(s) = &mut self.scaling {
            if s.policy_type.is_empty() {
                s.policy_type = "horizontal".to_string();
            }
            s.enabled = s.enabled.or(Some(true));
        }
        if self.count.is_none() {
            let from_scaling = self
                .scaling
                .as_ref()
                .and_then(|s| s.min)
                .and_then(|m| u32::try_from(m).ok());
            self.count = Some(from_scaling.unwrap_or(1));
        }
        if let Some(s) = &mut self.scaling {
            if s.min.is_none() {
                s.min = self.count.map(i64::from);
            }
        }

        let mut restart = self.restart_policy.take().unwrap_or_default();
        restart.fill_from(&RestartPolicy::default_for(kind));
        self.restart_policy = Some(restart.clone());

        let mut reschedule = self.reschedule_policy.take().unwrap_or_default();
        if let Some(j) = job_reschedule {
            reschedule.fill_from(j);
        }
        reschedule.fill_from(&ReschedulePolicy::default_for(kind));
        self.reschedule_policy = Some(reschedule);

        if matches!(kind, JobType::Service | JobType::System) {
            match (&mut self.update, job_update) {
                (Some(u), Some(j)) => u.fill_from(j),
                (None, Some(j)) => self.update = Some(j.clone()),
                _ => {}
            }
            if let Some(u) = &mut self.update {
                u.fill_from(&UpdateStrategy::defaults());
            }
        }
        if kind == JobType::Service {
            let mut migrate = self.migrate.take().unwrap_or_default();
            if let Some(j) = job_migrate {
                migrate.fill_from(j);
            }
            migrate.fill_from(&MigrateStrategy::defaults());
            self.migrate = Some(migrate);
        }

        let disk = self
            .ephemeral_disk
            .get_or_insert_with(EphemeralDisk::default);
        disk.sticky = disk.sticky.or(Some(false));
        disk.migrate = disk.migrate.or(Some(false));
        disk.size_mb = disk.size_mb.or(Some(300));

        if let Some(c) = &mut self.consul {
            if c.namespace.is_empty() {
                c.namespace = consul_ns.to_string();
            }
        }

        for net in &mut self.networks {
            canonicalize_network(net);
        }
        for (name, v) in &mut self.volumes {
            if v.name.is_empty() {
                v.name.clone_from(name);
            }
        }
        canonicalize_constraints(&mut self.constraints);
        canonicalize_affinities(&mut self.affinities);
        canonicalize_spreads(&mut self.spreads);

        let group_name = self.name.clone();
        for service in &mut self.services {
            canonicalize_service(service, &format!("{job_name}-{group_name}"));
        }
        for task in &mut self.tasks {
            task.canonicalize(&restart, job_name, &group_name);
        }
    }
}

impl Task {
    fn canonicalize(&mut self, group_restart: &RestartPolicy, job_name: &str, group_name: &str) {
        if self.kill_timeout.is_none() {
            self.kill_timeout = Some(Duration::from_secs(5));
        }
        self.resources
            .get_or_insert_with(Resources::default)
            .canonicalize();
        self.log_config
            .get_or_insert_with(LogConfig::default)
            .canonicalize();
        let mut restart = self.restart_policy.take().unwrap_or_default();
        restart.fill_from(group_restart);
        self.restart_policy = Some(restart);
        if self.lifecycle.as_ref().is_some_and(|l| l.hook.is_empty()) {
            self.lifecycle = None;
        }
        for t in &mut self.templates {
            if t.change_mode.is_empty() {
                t.change_mode = "restart".to_string();
            }
            t.change_signal = t.change_signal.to_uppercase();
            t.splay = t.splay.or(Some(Duration::from_secs(5)));
            if t.perms.is_empty() {
                t.perms = "0644".to_string();
            }
            if t.left_delim.is_empty() {
                t.left_delim = "{{".to_string();
            }
            if t.right_delim.is_empty() {
                t.right_delim = "}}".to_string();
            }
            if let Some(s) = &mut t.change_script {
                s.timeout = s.timeout.or(Some(Duration::from_secs(5)));
            }
        }
        for a in &mut self.artifacts {
            if a.getter_mode.is_empty() {
                a.getter_mode = "any".to_string();
            }
            if a.relative_dest.is_empty() {
                a.relative_dest = "local/".to_string();
            }
        }
        if let Some(v) = &mut self.vault {
            v.env = v.env.or(Some(true));
            if v.change_mode.is_empty() {
                v.change_mode = "restart".to_string();
            }
            v.change_signal = v.change_signal.to_uppercase();
        }
        for s in &mut self.scaling_policies {
            s.enabled = s.enabled.or(Some(true));
        }
        if let Some(r) = &mut self.resources {
            for net in &mut r.networks {
                canonicalize_network(net);
            }
            for d in &mut r.devices {
                canonicalize_constraints(&mut d.constraints);
                canonicalize_affinities(&mut d.affinities);
            }
        }
        canonicalize_constraints(&mut self.constraints);
        canonicalize_affinities(&mut self.affinities);
        let default_name = format!("{job_name}-{group_name}-{}", self.name);
        for service in &mut self.services {
            canonicalize_service(service, &default_name);
        }
    }
}

fn canonicalize_service(s: &mut Service, default_name: &str) {
    if s.name.is_empty() {
        s.name = default_name.to_string();
    }
    if s.address_mode.is_empty() {
        s.address_mode = "auto".to_string();
    }
    if s.provider.is_empty() {
        s.provider = "consul".to_string();
    }
    if s.on_update.is_empty() {
        s.on_update = "require_healthy".to_string();
    }
    let service_restart = s.check_restart.clone();
    let service_on_update = s.on_update.clone();
    for check in &mut s.checks {
        let mut merged = service_restart.clone();
        if let Some(own) = check.check_restart.take() {
            let base = merged.get_or_insert_with(CheckRestart::default);
            if own.limit > 0 {
                base.limit = own.limit;
            }
            if own.grace.is_some() {
                base.grace = own.grace;
            }
            if own.ignore_warnings {
                base.ignore_warnings = true;
            }
        }
        if let Some(r) = &mut merged {
            r.grace = r.grace.or(Some(Duration::from_secs(1)));
        }
        check.check_restart = merged;
        if check.on_update.is_empty() {
            check.on_update.clone_from(&service_on_update);
        }
        if check.check_type == "http" && check.method.is_empty() {
            check.method = "GET".to_string();
        }
    }
    if let Some(connect) = &mut s.connect {
        if let Some(task) = &mut connect.sidecar_task {
            task.resources
                .get_or_insert_with(Resources::defaults)
                .canonicalize();
            task.log_config
                .get_or_insert_with(LogConfig::defaults)
                .canonicalize();
            task.kill_timeout = task.kill_timeout.or(Some(Duration::from_secs(5)));
            task.shutdown_delay = task.shutdown_delay.or(Some(Duration::ZERO));
        }
    }
}

fn canonicalize_network(net: &mut NetworkResource) {
    if net.mode.is_empty() {
        net.mode = arcstr::literal!("host");
    }
    for p in net
        .reserved_ports
        .iter_mut()
        .chain(net.dynamic_ports.iter_mut())
    {
        if p.host_network.is_empty() {
            p.host_network = arcstr::literal!("default");
        }
    }
}

fn canonicalize_constraints(cs: &mut [Constraint]) {
    for c in cs {
        if c.operand.is_empty() {
            c.operand = "=".to_string();
        }
    }
}

fn canonicalize_affinities(afs: &mut [Affinity]) {
    for a in afs {
        if a.operand.is_empty() {
            a.operand = "=".to_string();
        }
        a.weight = a.weight.or(Some(50));
    }
}

fn canonicalize_spreads(spreads: &mut [Spread]) {
    for s in spreads {
        s.weight = s.weight.or(Some(50));
    }
}

fn fill_str(field: &mut Option<String>, default: &str) {
    if field.as_deref().is_none_or(str::is_empty) {
        *field = Some(default.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(kind: &str) -> Job {
        Job {
            id: "web".into(),
            job_type: Some(kind.into()),
            task_groups: vec![TaskGroup {
                name: "app".into(),
                tasks: vec![Task {
                    name: "srv".into(),
                    driver: "raw_exec".into(),
                    ..Task::default()
                }],
                ..TaskGroup::default()
            }],
            ..Job::default()
        }
    }

    #[test]
    fn service_defaults() {
        let mut j = job("service");
        j.canonicalize();
        assert_eq!(j.name, "web");
        assert_eq!(j.region.as_deref(), Some("global"));
        assert!(
            j.datacenters.is_empty(),
            "JSON jobs must name their datacenters"
        );
        assert_eq!(j.priority, Some(50));
        let g = &j.task_groups[0];
        assert_eq!(g.count, Some(1));
        let r = g.restart_policy.as_ref().unwrap();
        assert_eq!(r.attempts, Some(2));
        assert_eq!(r.interval, Some(Duration::from_mins(30)));
        let rs = g.reschedule_policy.as_ref().unwrap();
        assert_eq!(rs.unlimited, Some(true));
        assert_eq!(rs.delay_function.as_deref(), Some("exponential"));
        assert!(g.migrate.is_some());
        assert_eq!(g.ephemeral_disk.as_ref().unwrap().size_mb, Some(300));
        let t = &g.tasks[0];
        assert_eq!(t.kill_timeout, Some(Duration::from_secs(5)));
        assert_eq!(t.resources.as_ref().unwrap().cpu, Some(100));
        assert_eq!(t.resources.as_ref().unwrap().memory_mb, Some(300));
        assert_eq!(t.log_config.as_ref().unwrap().max_files, Some(10));
        assert_eq!(t.restart_policy, g.restart_policy);
    }

    #[test]
    fn batch_defaults_differ() {
        let mut j = job("batch");
        j.canonicalize();
        let g = &j.task_groups[0];
        assert_eq!(g.restart_policy.as_ref().unwrap().attempts, Some(3));
        let rs = g.reschedule_policy.as_ref().unwrap();
        assert_eq!(rs.attempts, Some(1));
        assert_eq!(rs.delay_function.as_deref(), Some("constant"));
        assert!(g.migrate.is_none());
        assert!(g.update.is_none());
    }

    #[test]
    fn group_update_merges_job_update() {
        let mut j = job("service");
        j.update = Some(UpdateStrategy {
            max_parallel: Some(3),
            canary: Some(1),
            ..UpdateStrategy::default()
        });
        j.task_groups[0].update = Some(UpdateStrategy {
            canary: Some(2),
            ..UpdateStrategy::default()
        });
        j.canonicalize();
        let u = j.task_groups[0].update.as_ref().unwrap();
        assert_eq!(u.max_parallel, Some(3));
        assert_eq!(u.canary, Some(2));
        assert_eq!(u.min_healthy_time, Some(Duration::from_secs(10)));
    }

    #[test]
    fn task_restart_inherits_group_fields() {
        let mut j = job("service");
        j.task_groups[0].restart_policy = Some(RestartPolicy {
            attempts: Some(7),
            ..RestartPolicy::default()
        });
        j.task_groups[0].tasks[0].restart_policy = Some(RestartPolicy {
            mode: Some("delay".into()),
            ..RestartPolicy::default()
        });
        j.canonicalize();
        let r = j.task_groups[0].tasks[0].restart_policy.as_ref().unwrap();
        assert_eq!(r.attempts, Some(7));
        assert_eq!(r.mode.as_deref(), Some("delay"));
        assert_eq!(r.delay, Some(Duration::from_secs(15)));
    }

    #[test]
    fn canonicalize_is_idempotent() {
        let mut j = job("service");
        j.canonicalize();
        let once = j.clone();
        j.canonicalize();
        assert_eq!(j, once);
    }

    #[test]
    fn count_follows_scaling_min() {
        let mut j = job("service");
        j.task_groups[0].scaling = Some(ScalingPolicy {
            min: Some(3),
            max: Some(10),
            ..ScalingPolicy::default()
        });
        j.canonicalize();
        assert_eq!(j.task_groups[0].count, Some(3));
    }
}
