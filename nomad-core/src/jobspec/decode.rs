//! Decoding an evaluated HCL body into the API's JSON shape.
//!
//! The job specification is described once, as a table per block ([`Field`] lists): the HCL
//! key, the API field it fills and what kind of value it takes. A single walker checks every
//! key against the table (unknown keys are errors naming the key and the block), converts
//! values (durations to nanoseconds, numbers to text where the API wants text), and builds a
//! JSON value that deserialises into [`Job`]. The few places where the job file and the API
//! differ in shape (ports, constraint shorthands, scaling labels, tasks outside a group) are
//! handled by small functions named in the table.

use hcl::{Body, Expression, Structure};
use serde_json::{Map, Number, Value};

use crate::job::{Duration, Job};
use crate::{Error, ValidationErrors};

/// How deep free-form configuration may nest before it is refused.
const MAX_DEPTH: usize = 64;

/// What a key takes.
#[derive(Clone, Copy)]
enum Kind {
    /// Text; numbers and booleans are converted.
    Str,
    /// A whole number; numeric text is converted.
    Int,
    /// `true` / `false` (or their text).
    Bool,
    /// Go duration text, stored as nanoseconds.
    Dur,
    /// A list of text.
    StrList,
    /// Text to text, as `key = { ... }` or a block of attributes.
    StrMap,
    /// Header names to lists of text.
    HeaderMap,
    /// Anything, kept as written (a driver's `config`).
    Free,
    /// At most one block, an object.
    Block(&'static [Field]),
    /// Any number of unlabelled blocks, an array.
    Blocks(&'static [Field]),
    /// Any number of blocks with one label stored under the given field, an array.
    Labeled(&'static [Field], &'static str),
    /// Blocks with one label, an object keyed by the label (the label also stored under the
    /// given field).
    LabeledMap(&'static [Field], &'static str),
    /// Handled by a function of its own.
    Special(Special),
    /// A feature Nomad has that this implementation does not: refused, saying so.
    Unsupported,
}

/// Blocks whose job-file shape differs from the API's.
#[derive(Clone, Copy)]
enum Special {
    /// `port "label" { static, to, host_network }` → ReservedPorts or DynamicPorts.
    Port,
    /// `constraint { ... }` with its shorthand keys.
    Constraint,
    /// `affinity { ... }` with its shorthand keys.
    Affinity,
    /// A group's `scaling { ... }` (no label).
    GroupScaling,
    /// A task's `scaling "cpu" | "mem" { ... }`.
    TaskScaling,
    /// `identity { ... }`: the unnamed one is the default identity, named ones are extra.
    Identity,
    /// `check` blocks: `header` has its own shape.
    Check,
}

/// One key of a block.
#[derive(Clone, Copy)]
struct Field {
    hcl: &'static str,
    json: &'static str,
    kind: Kind,
}

const fn f(hcl: &'static str, json: &'static str, kind: Kind) -> Field {
    Field { hcl, json, kind }
}

use Kind::*;

const SPREAD_TARGET: &[Field] = &[f("percent", "Percent", Int)];

const SPREAD: &[Field] = &[
    f("attribute", "Attribute", Str),
    f("weight", "Weight", Int),
    f("target", "SpreadTarget", Labeled(SPREAD_TARGET, "Value")),
];

const UPDATE: &[Field] = &[
    f("stagger", "Stagger", Dur),
    f("max_parallel", "MaxParallel", Int),
    f("health_check", "HealthCheck", Str),
    f("min_healthy_time", "MinHealthyTime", Dur),
    f("healthy_deadline", "HealthyDeadline", Dur),
    f("progress_deadline", "ProgressDeadline", Dur),
    f("canary", "Canary", Int),
    f("auto_revert", "AutoRevert", Bool),
    f("auto_promote", "AutoPromote", Bool),
];

const MIGRATE: &[Field] = &[
    f("max_parallel", "MaxParallel", Int),
    f("health_check", "HealthCheck", Str),
    f("min_healthy_time", "MinHealthyTime", Dur),
    f("healthy_deadline", "HealthyDeadline", Dur),
];

const RESCHEDULE: &[Field] = &[
    f("attempts", "Attempts", Int),
    f("interval", "Interval", Dur),
    f("delay", "Delay", Dur),
    f("delay_function", "DelayFunction", Str),
    f("max_delay", "MaxDelay", Dur),
    f("unlimited", "Unlimited", Bool),
];

const RESTART: &[Field] = &[
    f("attempts", "Attempts", Int),
    f("interval", "Interval", Dur),
    f("delay", "Delay", Dur),
    f("mode", "Mode", Str),
    f("render_templates", "RenderTemplates", Bool),
];

const PERIODIC: &[Field] = &[
    f("cron", "Spec", Str),
    f("crons", "Specs", StrList),
    f("spec_type", "SpecType", Str),
    f("prohibit_overlap", "ProhibitOverlap", Bool),
    f("time_zone", "TimeZone", Str),
    f("enabled", "Enabled", Bool),
];

const PARAMETERIZED: &[Field] = &[
    f("payload", "Payload", Str),
    f("meta_required", "MetaRequired", StrList),
    f("meta_optional", "MetaOptional", StrList),
];

const MULTIREGION_STRATEGY: &[Field] = &[
    f("max_parallel", "MaxParallel", Int),
    f("on_failure", "OnFailure", Str),
];

const MULTIREGION_REGION: &[Field] = &[
    f("count", "Count", Int),
    f("datacenters", "Datacenters", StrList),
    f("node_pool", "NodePool", Str),
    f("meta", "Meta", StrMap),
];

const MULTIREGION: &[Field] = &[
    f("strategy", "Strategy", Block(MULTIREGION_STRATEGY)),
    f("region", "Regions", Labeled(MULTIREGION_REGION, "Name")),
];

const VAULT: &[Field] = &[
    f("policies", "Policies", StrList),
    f("role", "Role", Str),
    f("namespace", "Namespace", Str),
    f("cluster", "Cluster", Str),
    f("env", "Env", Bool),
    f("disable_file", "DisableFile", Bool),
    f("change_mode", "ChangeMode", Str),
    f("change_signal", "ChangeSignal", Str),
    f("allow_token_expiration", "AllowTokenExpiration", Bool),
];

const CONSUL: &[Field] = &[
    f("namespace", "Namespace", Str),
    f("cluster", "Cluster", Str),
    f("partition", "Partition", Str),
];

const EPHEMERAL_DISK: &[Field] = &[
    f("sticky", "Sticky", Bool),
    f("migrate", "Migrate", Bool),
    f("size", "SizeMB", Int),
];

const MOUNT_OPTIONS: &[Field] = &[
    f("fs_type", "FSType", Str),
    f("mount_flags", "MountFlags", StrList),
];

const VOLUME: &[Field] = &[
    f("type", "Type", Str),
    f("source", "Source", Str),
    f("read_only", "ReadOnly", Bool),
    f("access_mode", "AccessMode", Str),
    f("attachment_mode", "AttachmentMode", Str),
    f("mount_options", "MountOptions", Block(MOUNT_OPTIONS)),
    f("per_alloc", "PerAlloc", Bool),
    f("sticky", "Sticky", Bool),
];

const DISCONNECT: &[Field] = &[
    f("lost_after", "LostAfter", Dur),
    f("replace", "Replace", Bool),
    f("reconcile", "Reconcile", Str),
    f("stop_on_client_after", "StopOnClientAfter", Dur),
];

const DNS: &[Field] = &[
    f("servers", "Servers", StrList),
    f("searches", "Searches", StrList),
    f("options", "Options", StrList),
];

const CNI: &[Field] = &[f("args", "Args", StrMap)];

const PORT: &[Field] = &[
    f("static", "Value", Int),
    f("to", "To", Int),
    f("host_network", "HostNetwork", Str),
];

const NETWORK: &[Field] = &[
    f("mode", "Mode", Str),
    f("mbits", "MBits", Int),
    f("hostname", "Hostname", Str),
    f("port", "", Special(Special::Port)),
    f("dns", "DNS", Block(DNS)),
    f("cni", "CNI", Block(CNI)),
];

const CHECK_RESTART: &[Field] = &[
    f("limit", "Limit", Int),
    f("grace", "Grace", Dur),
    f("ignore_warnings", "IgnoreWarnings", Bool),
];

const CHECK: &[Field] = &[
    f("name", "Name", Str),
    f("type", "Type", Str),
    f("command", "Command", Str),
    f("args", "Args", StrList),
    f("path", "Path", Str),
    f("protocol", "Protocol", Str),
    f("port", "PortLabel", Str),
    f("expose", "Expose", Bool),
    f("address_mode", "AddressMode", Str),
    f("interval", "Interval", Dur),
    f("timeout", "Timeout", Dur),
    f("initial_status", "InitialStatus", Str),
    f("notes", "Notes", Str),
    f("tls_server_name", "TLSServerName", Str),
    f("tls_skip_verify", "TLSSkipVerify", Bool),
    f("header", "Header", HeaderMap),
    f("method", "Method", Str),
    f("body", "Body", Str),
    f("check_restart", "CheckRestart", Block(CHECK_RESTART)),
    f("grpc_service", "GRPCService", Str),
    f("grpc_use_tls", "GRPCUseTLS", Bool),
    f("task", "TaskName", Str),
    f("success_before_passing", "SuccessBeforePassing", Int),
    f("failures_before_critical", "FailuresBeforeCritical", Int),
    f("failures_before_warning", "FailuresBeforeWarning", Int),
    f("on_update", "OnUpdate", Str),
];

const EXPOSE_PATH: &[Field] = &[
    f("path", "Path", Str),
    f("protocol", "Protocol", Str),
    f("local_path_port", "LocalPathPort", Int),
    f("listener_port", "ListenerPort", Str),
];

const EXPOSE: &[Field] = &[f("path", "Paths", Blocks(EXPOSE_PATH))];

const MESH_GATEWAY: &[Field] = &[f("mode", "Mode", Str)];

const UPSTREAM: &[Field] = &[
    f("destination_name", "DestinationName", Str),
    f("destination_namespace", "DestinationNamespace", Str),
    f("destination_peer", "DestinationPeer", Str),
    f("destination_partition", "DestinationPartition", Str),
    f("destination_type", "DestinationType", Str),
    f("local_bind_port", "LocalBindPort", Int),
    f("local_bind_address", "LocalBindAddress", Str),
    f("local_bind_socket_path", "LocalBindSocketPath", Str),
    f("local_bind_socket_mode", "LocalBindSocketMode", Str),
    f("datacenter", "Datacenter", Str),
    f("mesh_gateway", "MeshGateway", Block(MESH_GATEWAY)),
    f("config", "Config", Free),
];

const PROXY: &[Field] = &[
    f("local_service_address", "LocalServiceAddress", Str),
    f("local_service_port", "LocalServicePort", Int),
    f("expose", "Expose", Block(EXPOSE)),
    f("upstreams", "Upstreams", Blocks(UPSTREAM)),
    f("config", "Config", Free),
    f("transparent_proxy", "TransparentProxy", Free),
];

const SIDECAR_SERVICE: &[Field] = &[
    f("tags", "Tags", StrList),
    f("port", "Port", Str),
    f("proxy", "Proxy", Block(PROXY)),
    f("disable_default_tcp_check", "DisableDefaultTCPCheck", Bool),
    f("meta", "Meta", StrMap),
];

const LOGS: &[Field] = &[
    f("max_files", "MaxFiles", Int),
    f("max_file_size", "MaxFileSizeMB", Int),
    f("disabled", "Disabled", Bool),
    f("enabled", "Enabled", Bool),
];

const SIDECAR_TASK: &[Field] = &[
    f("name", "Name", Str),
    f("driver", "Driver", Str),
    f("user", "User", Str),
    f("config", "Config", Free),
    f("env", "Env", StrMap),
    f("resources", "Resources", Block(RESOURCES)),
    f("meta", "Meta", StrMap),
    f("kill_timeout", "KillTimeout", Dur),
    f("logs", "LogConfig", Block(LOGS)),
    f("shutdown_delay", "ShutdownDelay", Dur),
    f("kill_signal", "KillSignal", Str),
];

const GATEWAY: &[Field] = &[
    f("proxy", "Proxy", Free),
    f("ingress", "Ingress", Free),
    f("terminating", "Terminating", Free),
    f("mesh", "Mesh", Free),
];

const CONNECT: &[Field] = &[
    f("native", "Native", Bool),
    f("sidecar_service", "SidecarService", Block(SIDECAR_SERVICE)),
    f("sidecar_task", "SidecarTask", Block(SIDECAR_TASK)),
    f("gateway", "Gateway", Block(GATEWAY)),
];

const WEIGHTS: &[Field] = &[f("passing", "Passing", Int), f("warning", "Warning", Int)];

const IDENTITY: &[Field] = &[
    f("name", "Name", Str),
    f("aud", "Audience", StrList),
    f("env", "Env", Bool),
    f("file", "File", Bool),
    f("change_mode", "ChangeMode", Str),
    f("change_signal", "ChangeSignal", Str),
    f("ttl", "TTL", Dur),
    f("service_name", "ServiceName", Str),
];

const SERVICE: &[Field] = &[
    f("name", "Name", Str),
    f("tags", "Tags", StrList),
    f("canary_tags", "CanaryTags", StrList),
    f("enable_tag_override", "EnableTagOverride", Bool),
    f("port", "PortLabel", Str),
    f("address_mode", "AddressMode", Str),
    f("address", "Address", Str),
    f("check", "Checks", Special(Special::Check)),
    f("check_restart", "CheckRestart", Block(CHECK_RESTART)),
    f("connect", "Connect", Block(CONNECT)),
    f("meta", "Meta", StrMap),
    f("canary_meta", "CanaryMeta", StrMap),
    f("tagged_addresses", "TaggedAddresses", StrMap),
    f("task", "TaskName", Str),
    f("on_update", "OnUpdate", Str),
    f("provider", "Provider", Str),
    f("cluster", "Cluster", Str),
    f("kind", "Kind", Str),
    f("weights", "Weights", Block(WEIGHTS)),
    f("identity", "Identity", Block(IDENTITY)),
];

const DEVICE: &[Field] = &[
    f("count", "Count", Int),
    f("constraint", "Constraints", Special(Special::Constraint)),
    f("affinity", "Affinities", Special(Special::Affinity)),
];

const RESOURCES: &[Field] = &[
    f("cpu", "CPU", Int),
    f("cores", "Cores", Int),
    f("memory", "MemoryMB", Int),
    f("memory_max", "MemoryMaxMB", Int),
    f("disk", "DiskMB", Int),
    f("network", "Networks", Blocks(NETWORK)),
    f("device", "Devices", Labeled(DEVICE, "Name")),
];

const LIFECYCLE: &[Field] = &[f("hook", "Hook", Str), f("sidecar", "Sidecar", Bool)];

const WAIT: &[Field] = &[f("min", "Min", Dur), f("max", "Max", Dur)];

const CHANGE_SCRIPT: &[Field] = &[
    f("command", "Command", Str),
    f("args", "Args", StrList),
    f("timeout", "Timeout", Dur),
    f("fail_on_error", "FailOnError", Bool),
];

const TEMPLATE: &[Field] = &[
    f("source", "SourcePath", Str),
    f("destination", "DestPath", Str),
    f("data", "EmbeddedTmpl", Str),
    f("change_mode", "ChangeMode", Str),
    f("change_signal", "ChangeSignal", Str),
    f("change_script", "ChangeScript", Block(CHANGE_SCRIPT)),
    f("splay", "Splay", Dur),
    f("perms", "Perms", Str),
    f("uid", "Uid", Int),
    f("gid", "Gid", Int),
    f("left_delimiter", "LeftDelim", Str),
    f("right_delimiter", "RightDelim", Str),
    f("env", "Envvars", Bool),
    f("vault_grace", "VaultGrace", Dur),
    f("wait", "Wait", Block(WAIT)),
    f("error_on_missing_key", "ErrMissingKey", Bool),
    f("once", "Once", Bool),
    f("error_mode", "", Unsupported),
    f("on_error", "", Unsupported),
    f("on_render_error", "", Unsupported),
];

const ARTIFACT: &[Field] = &[
    f("source", "GetterSource", Str),
    f("destination", "RelativeDest", Str),
    f("mode", "GetterMode", Str),
    f("options", "GetterOptions", StrMap),
    f("headers", "GetterHeaders", StrMap),
    f("insecure", "GetterInsecure", Bool),
];

const DISPATCH_PAYLOAD: &[Field] = &[f("file", "File", Str)];

const VOLUME_MOUNT: &[Field] = &[
    f("volume", "Volume", Str),
    f("destination", "Destination", Str),
    f("read_only", "ReadOnly", Bool),
    f("propagation_mode", "PropagationMode", Str),
    f("selinux_label", "SELinuxLabel", Str),
];

const CSI_PLUGIN: &[Field] = &[
    f("id", "ID", Str),
    f("type", "Type", Str),
    f("mount_dir", "MountDir", Str),
    f("stage_publish_base_dir", "StagePublishBaseDir", Str),
    f("health_timeout", "HealthTimeout", Dur),
];

const ACTION: &[Field] = &[f("command", "Command", Str), f("args", "Args", StrList)];

const SCALING: &[Field] = &[
    f("type", "Type", Str),
    f("min", "Min", Int),
    f("max", "Max", Int),
    f("enabled", "Enabled", Bool),
    f("policy", "Policy", Block(&[])),
];

const TASK: &[Field] = &[
    f("driver", "Driver", Str),
    f("user", "User", Str),
    f("config", "Config", Free),
    f("env", "Env", StrMap),
    f("meta", "Meta", StrMap),
    f("resources", "Resources", Block(RESOURCES)),
    f("service", "Services", Blocks(SERVICE)),
    f("template", "Templates", Blocks(TEMPLATE)),
    f("artifact", "Artifacts", Blocks(ARTIFACT)),
    f("logs", "LogConfig", Block(LOGS)),
    f("lifecycle", "Lifecycle", Block(LIFECYCLE)),
    f("constraint", "Constraints", Special(Special::Constraint)),
    f("affinity", "Affinities", Special(Special::Affinity)),
    f("restart", "RestartPolicy", Block(RESTART)),
    f("kill_timeout", "KillTimeout", Dur),
    f("kill_signal", "KillSignal", Str),
    f("shutdown_delay", "ShutdownDelay", Dur),
    f("leader", "Leader", Bool),
    f("kind", "Kind", Str),
    f("vault", "Vault", Block(VAULT)),
    f("consul", "Consul", Block(CONSUL)),
    f(
        "dispatch_payload",
        "DispatchPayload",
        Block(DISPATCH_PAYLOAD),
    ),
    f("volume_mount", "VolumeMounts", Blocks(VOLUME_MOUNT)),
    f("csi_plugin", "CSIPluginConfig", Block(CSI_PLUGIN)),
    f("scaling", "ScalingPolicies", Special(Special::TaskScaling)),
    f("identity", "Identity", Special(Special::Identity)),
    f("action", "Actions", Labeled(ACTION, "Name")),
    f("hvs", "", Unsupported),
    f("render_template_on_restart", "", Unsupported),
];

const GROUP: &[Field] = &[
    f("count", "Count", Int),
    f("constraint", "Constraints", Special(Special::Constraint)),
    f("affinity", "Affinities", Special(Special::Affinity)),
    f("spread", "Spreads", Blocks(SPREAD)),
    f("task", "Tasks", Labeled(TASK, "Name")),
    f("restart", "RestartPolicy", Block(RESTART)),
    f("reschedule", "ReschedulePolicy", Block(RESCHEDULE)),
    f("update", "Update", Block(UPDATE)),
    f("migrate", "Migrate", Block(MIGRATE)),
    f("ephemeral_disk", "EphemeralDisk", Block(EPHEMERAL_DISK)),
    f("network", "Networks", Blocks(NETWORK)),
    f("service", "Services", Blocks(SERVICE)),
    f("volume", "Volumes", LabeledMap(VOLUME, "Name")),
    f("meta", "Meta", StrMap),
    f("scaling", "Scaling", Special(Special::GroupScaling)),
    f("shutdown_delay", "ShutdownDelay", Dur),
    f(
        "stop_after_client_disconnect",
        "StopAfterClientDisconnect",
        Dur,
    ),
    f("max_client_disconnect", "MaxClientDisconnect", Dur),
    f(
        "prevent_reschedule_on_lost",
        "PreventRescheduleOnLost",
        Bool,
    ),
    f("disconnect", "Disconnect", Block(DISCONNECT)),
    f("consul", "Consul", Block(CONSUL)),
    // A group-level vault block applies to every task without one of its own.
    f("vault", "Vault", Block(VAULT)),
];

const UI_LINK: &[Field] = &[f("label", "Label", Str), f("url", "Url", Str)];

const UI: &[Field] = &[
    f("description", "Description", Str),
    f("link", "Links", Blocks(UI_LINK)),
];

const JOB: &[Field] = &[
    f("id", "ID", Str),
    f("name", "Name", Str),
    f("region", "Region", Str),
    f("namespace", "Namespace", Str),
    f("type", "Type", Str),
    f("priority", "Priority", Int),
    f("datacenters", "Datacenters", StrList),
    f("node_pool", "NodePool", Str),
    f("all_at_once", "AllAtOnce", Bool),
    f("meta", "Meta", StrMap),
    f("constraint", "Constraints", Special(Special::Constraint)),
    f("affinity", "Affinities", Special(Special::Affinity)),
    f("spread", "Spreads", Blocks(SPREAD)),
    f("update", "Update", Block(UPDATE)),
    f("migrate", "Migrate", Block(MIGRATE)),
    f("reschedule", "Reschedule", Block(RESCHEDULE)),
    f("periodic", "Periodic", Block(PERIODIC)),
    f("parameterized", "ParameterizedJob", Block(PARAMETERIZED)),
    f("multiregion", "Multiregion", Block(MULTIREGION)),
    f("group", "TaskGroups", Labeled(GROUP, "Name")),
    // A task outside any group gets a group of its own name.
    f("task", "", Labeled(TASK, "Name")),
    f("consul_token", "ConsulToken", Str),
    f("consul_namespace", "ConsulNamespace", Str),
    f("vault_token", "VaultToken", Str),
    f("vault_namespace", "VaultNamespace", Str),
    // A job-level vault block applies to every task without one of its own.
    f("vault", "Vault", Block(VAULT)),
    f("ui", "UI", Block(UI)),
    f("group_selection", "", Unsupported),
];

/// Collects errors while walking, with the path of the block being walked.
struct Walker {
    errs: ValidationErrors,
}

impl Walker {
    fn err(&mut self, path: &str, msg: impl Into<String>) {
        self.errs.push(path, msg);
    }
}

/// Decodes the evaluated body of a job file into a [`Job`].
pub(crate) fn decode_job(body: &Body, file: &str) -> Result<Job, Error> {
    let mut w = Walker {
        errs: ValidationErrors::new(),
    };
    let mut jobs = Vec::new();
    for s in body.iter() {
        match s {
            Structure::Block(b) if b.identifier.as_str() == "job" => jobs.push(b),
            Structure::Block(b) => w.err(
                "",
                format!(
                    "{file}: unknown top-level block {:?}; a job file holds one job block (and variable and locals blocks)",
                    b.identifier.as_str()
                ),
            ),
            Structure::Attribute(a) => w.err(
                "",
                format!("{file}: unknown top-level key {:?}", a.key.as_str()),
            ),
        }
    }
    let block = match jobs.as_slice() {
        [one] => *one,
        [] => {
            w.err("", format!("{file}: no job block found"));
            return Err(Error::Invalid(w.errs));
        }
        [first, ..] => {
            w.err(
                "",
                format!(
                    "{file}: only one job block is allowed, found {}",
                    jobs.len()
                ),
            );
            first
        }
    };
    let id = match block.labels.as_slice() {
        [l] => l.as_str().to_string(),
        _ => {
            w.err(
                "job",
                "the job block takes exactly one label, its ID: job \"name\" { ... }",
            );
            String::new()
        }
    };
    let path = format!("job {id:?}");
    let mut obj = w.walk_body(&block.body, JOB, &path, 0);
    if !obj.contains_key("ID") {
        obj.insert("ID".into(), Value::String(id.clone()));
    }
    if !obj.contains_key("Name") {
        let name = obj.get("ID").cloned().unwrap_or(Value::String(id));
        obj.insert("Name".into(), name);
    }
    // Since Nomad 1.5 a job file without datacenters may run in any of them.
    obj.entry("Datacenters")
        .or_insert_with(|| Value::Array(vec![Value::String("*".into())]));
    // Tasks written outside any group become groups of one task each.
    if let Some(Value::Array(tasks)) = obj.remove("") {
        let groups = obj
            .entry("TaskGroups")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(groups) = groups {
            for task in tasks {
                let name = task.get("Name").cloned().unwrap_or(Value::Null);
                let mut g = Map::new();
                g.insert("Name".into(), name);
                g.insert("Tasks".into(), Value::Array(vec![task]));
                groups.push(Value::Object(g));
            }
        }
    }
    propagate_vault(&mut obj);
    if !w.errs.is_empty() {
        return Err(Error::Invalid(w.errs));
    }
    serde_json::from_value(Value::Object(obj)).map_err(|e| {
        Error::Invalid(
            crate::ValidationError::new(path, format!("could not be read as a job: {e}")).into(),
        )
    })
}

/// Copies job- and group-level `vault` blocks into tasks that have none.
fn propagate_vault(job: &mut Map<String, Value>) {
    let job_vault = job.remove("Vault");
    let Some(Value::Array(groups)) = job.get_mut("TaskGroups") else {
        return;
    };
    for g in groups {
        let Value::Object(g) = g else { continue };
        let group_vault = g.remove("Vault").or_else(|| job_vault.clone());
        let Some(vault) = group_vault else { continue };
        if let Some(Value::Array(tasks)) = g.get_mut("Tasks") {
            for t in tasks {
                if let Value::Object(t) = t {
                    t.entry("Vault").or_insert_with(|| vault.clone());
                }
            }
        }
    }
}

impl Walker {
    /// Walks one block body against its field table.
    fn walk_body(
        &mut self,
        body: &Body,
        fields: &'static [Field],
        path: &str,
        depth: usize,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        if depth > MAX_DEPTH {
            self.err(path, "blocks are nested too deeply");
            return out;
        }
        let mut seen_attrs: Vec<&str> = Vec::new();
        for s in body.iter() {
            let (key, is_block) = match s {
                Structure::Attribute(a) => (a.key.as_str(), false),
                Structure::Block(b) => (b.identifier.as_str(), true),
            };
            let Some(field) = fields.iter().find(|f| f.hcl == key) else {
                let what = if is_block { "block" } else { "key" };
                let mut msg = format!("unknown {what} {key:?}");
                if let Some(close) = suggest(key, fields) {
                    msg.push_str(&format!("; did you mean {close:?}?"));
                }
                self.err(path, msg);
                continue;
            };
            match s {
                Structure::Attribute(a) => {
                    if seen_attrs.contains(&key) {
                        self.err(path, format!("{key:?} is set more than once"));
                        continue;
                    }
                    seen_attrs.push(key);
                    self.attribute(&mut out, field, &a.expr, path, depth);
                }
                Structure::Block(b) => self.block(&mut out, field, b, path, depth),
            }
        }
        out
    }

    /// An attribute `key = value`.
    fn attribute(
        &mut self,
        out: &mut Map<String, Value>,
        field: &Field,
        expr: &Expression,
        path: &str,
        depth: usize,
    ) {
        let key = field.hcl;
        let value = match expr_to_json(expr, depth) {
            Ok(v) => v,
            Err(e) => {
                self.err(path, format!("{key}: {e}"));
                return;
            }
        };
        let converted = match field.kind {
            Str => to_str(&value).map(Value::String),
            Int => to_int(&value),
            Bool => to_bool(&value).map(Value::Bool),
            Dur => to_dur(&value),
            StrList => to_str_list(&value),
            StrMap => to_str_map(&value),
            HeaderMap => to_header_map(&value),
            Free => Ok(value),
            Unsupported => Err(format!("{key} is not supported by this implementation")),
            // Blocks written as attributes (`meta = {...}` is StrMap; these are HCL2's
            // `key = { ... }` forms of blocks, which Nomad does not accept).
            Block(_) | Blocks(_) | Labeled(..) | LabeledMap(..) | Special(_) => Err(format!(
                "is a block: write {key} {{ ... }}, not {key} = ..."
            )),
        };
        match converted {
            Ok(v) => {
                out.insert(field.json.to_string(), v);
            }
            Err(e) => self.err(path, format!("{key}: {e}")),
        }
    }

    /// A block `key "label" { ... }`.
    fn block(
        &mut self,
        out: &mut Map<String, Value>,
        field: &Field,
        b: &hcl::Block,
        path: &str,
        depth: usize,
    ) {
        let key = field.hcl;
        let labels: Vec<&str> = b.labels.iter().map(|l| l.as_str()).collect();
        let no_labels = |w: &mut Walker| -> bool {
            if labels.is_empty() {
                true
            } else {
                w.err(
                    path,
                    format!("{key} block takes no label, found {labels:?}"),
                );
                false
            }
        };
        match field.kind {
            StrMap => {
                if !no_labels(self) {
                    return;
                }
                let map = self.attrs_only(&b.body, &format!("{path} {key}"), depth);
                match to_str_map(&Value::Object(map)) {
                    Ok(v) => merge_object(out, field.json, v),
                    Err(e) => self.err(path, format!("{key}: {e}")),
                }
            }
            HeaderMap => {
                if !no_labels(self) {
                    return;
                }
                let map = self.attrs_only(&b.body, &format!("{path} {key}"), depth);
                match to_header_map(&Value::Object(map)) {
                    Ok(v) => merge_object(out, field.json, v),
                    Err(e) => self.err(&format!("{path} {key}"), e),
                }
            }
            Free => {
                if !no_labels(self) {
                    return;
                }
                match free_body(&b.body, depth + 1) {
                    Ok(v) => merge_object(out, field.json, Value::Object(v)),
                    Err(e) => self.err(&format!("{path} {key}"), e),
                }
            }
            Block(sub) => {
                if !no_labels(self) {
                    return;
                }
                if out.contains_key(field.json) {
                    self.err(path, format!("only one {key} block is allowed"));
                    return;
                }
                let inner = if sub.is_empty() && key == "policy" {
                    // A scaling policy's body is free-form.
                    match free_body(&b.body, depth + 1) {
                        Ok(v) => v,
                        Err(e) => {
                            self.err(&format!("{path} {key}"), e);
                            return;
                        }
                    }
                } else {
                    self.walk_body(&b.body, sub, &format!("{path} {key}"), depth + 1)
                };
                out.insert(field.json.to_string(), Value::Object(inner));
            }
            Blocks(sub) => {
                if !no_labels(self) {
                    return;
                }
                let n = array_len(out, field.json) + 1;
                let inner =
                    self.walk_body(&b.body, sub, &block_path(path, key, &b.body, n), depth + 1);
                push_array(out, field.json, Value::Object(inner));
            }
            Labeled(sub, label_field) => {
                let [label] = labels.as_slice() else {
                    self.err(
                        path,
                        format!("{key} block takes exactly one label: {key} \"name\" {{ ... }}"),
                    );
                    return;
                };
                let mut inner =
                    self.walk_body(&b.body, sub, &format!("{path} {key} {label:?}"), depth + 1);
                inner.insert(label_field.to_string(), Value::String((*label).to_string()));
                push_array(out, field.json, Value::Object(inner));
            }
            LabeledMap(sub, label_field) => {
                let [label] = labels.as_slice() else {
                    self.err(
                        path,
                        format!("{key} block takes exactly one label: {key} \"name\" {{ ... }}"),
                    );
                    return;
                };
                let mut inner =
                    self.walk_body(&b.body, sub, &format!("{path} {key} {label:?}"), depth + 1);
                inner.insert(label_field.to_string(), Value::String((*label).to_string()));
                let map = out
                    .entry(field.json.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = map {
                    if map.contains_key(*label) {
                        self.err(path, format!("{key} {label:?} is defined more than once"));
                    } else {
                        map.insert((*label).to_string(), Value::Object(inner));
                    }
                }
            }
            Special(sp) => self.special(out, field, sp, b, &labels, path, depth),
            Unsupported => self.err(
                path,
                format!("the {key} block is not supported by this implementation"),
            ),
            Str | Int | Bool | Dur | StrList => {
                self.err(
                    path,
                    format!("{key} is a key: write {key} = ..., not a block"),
                );
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn special(
        &mut self,
        out: &mut Map<String, Value>,
        field: &Field,
        sp: Special,
        b: &hcl::Block,
        labels: &[&str],
        path: &str,
        depth: usize,
    ) {
        let key = field.hcl;
        match sp {
            Special::Port => {
                let [label] = labels else {
                    self.err(
                        path,
                        "port block takes exactly one label: port \"http\" { ... }",
                    );
                    return;
                };
                let port_path = format!("{path} port {label:?}");
                let mut inner = self.walk_body(&b.body, PORT, &port_path, depth + 1);
                inner.insert("Label".into(), Value::String((*label).to_string()));
                let is_static = inner.get("Value").is_some_and(|v| v.as_i64() != Some(0));
                if let Some(v) = inner.get("Value").and_then(Value::as_i64) {
                    if !(0..=65535).contains(&v) {
                        self.err(&port_path, format!("static = {v} is not a port number"));
                        return;
                    }
                }
                let target = if is_static {
                    "ReservedPorts"
                } else {
                    "DynamicPorts"
                };
                push_array(out, target, Value::Object(inner));
            }
            Special::Constraint | Special::Affinity => {
                if !labels.is_empty() {
                    self.err(path, format!("{key} block takes no label"));
                    return;
                }
                let is_affinity = matches!(sp, Special::Affinity);
                let cpath = format!("{path} {key}");
                let attrs = self.attrs_only(&b.body, &cpath, depth);
                match shorthand_constraint(&attrs, is_affinity) {
                    Ok(v) => push_array(out, field.json, Value::Object(v)),
                    Err(e) => self.err(&cpath, e),
                }
            }
            Special::Check => {
                if !labels.is_empty() {
                    self.err(path, "check block takes no label");
                    return;
                }
                let n = array_len(out, field.json) + 1;
                let cpath = block_path(path, "check", &b.body, n);
                let inner = self.walk_body(&b.body, CHECK, &cpath, depth + 1);
                push_array(out, field.json, Value::Object(inner));
            }
            Special::GroupScaling => {
                if !labels.is_empty() {
                    self.err(
                        path,
                        format!("a group's scaling block takes no label, found {labels:?}"),
                    );
                    return;
                }
                if out.contains_key(field.json) {
                    self.err(path, "only one scaling block is allowed in a group");
                    return;
                }
                let spath = format!("{path} scaling");
                let mut inner = self.walk_body(&b.body, SCALING, &spath, depth + 1);
                match inner.get("Type").and_then(Value::as_str) {
                    None | Some("horizontal") | Some("") => {}
                    Some(t) => {
                        self.err(
                            &spath,
                            format!("type {t:?} is not valid for a group: only horizontal"),
                        );
                    }
                }
                if !inner.contains_key("Max") {
                    self.err(&spath, "max is required");
                }
                inner.insert("Type".into(), Value::String("horizontal".into()));
                out.insert(field.json.to_string(), Value::Object(inner));
            }
            Special::TaskScaling => {
                let [label] = labels else {
                    self.err(
                        path,
                        "a task's scaling block takes one label, \"cpu\" or \"mem\": scaling \"cpu\" { ... }",
                    );
                    return;
                };
                let spath = format!("{path} scaling {label:?}");
                let expected = match *label {
                    "cpu" => "vertical_cpu",
                    "mem" => "vertical_mem",
                    other => {
                        self.err(
                            &spath,
                            format!("{other:?} is not a scalable resource: use \"cpu\" or \"mem\""),
                        );
                        return;
                    }
                };
                let mut inner = self.walk_body(&b.body, SCALING, &spath, depth + 1);
                if let Some(t) = inner.get("Type").and_then(Value::as_str) {
                    if t != expected {
                        self.err(
                            &spath,
                            format!("type {t:?} does not match the label: expected {expected:?}"),
                        );
                    }
                }
                if !inner.contains_key("Max") {
                    self.err(&spath, "max is required");
                }
                let dup = out
                    .get(field.json)
                    .and_then(Value::as_array)
                    .is_some_and(|a| {
                        a.iter()
                            .any(|p| p.get("Type").and_then(Value::as_str) == Some(expected))
                    });
                if dup {
                    self.err(
                        &spath,
                        format!("scaling {label:?} is defined more than once"),
                    );
                    return;
                }
                inner.insert("Type".into(), Value::String(expected.into()));
                push_array(out, field.json, Value::Object(inner));
            }
            Special::Identity => {
                let ipath = format!("{path} identity");
                let mut inner = self.walk_body(&b.body, IDENTITY, &ipath, depth + 1);
                if let [label] = labels {
                    inner.insert("Name".into(), Value::String((*label).to_string()));
                } else if !labels.is_empty() {
                    self.err(path, "identity block takes at most one label");
                    return;
                }
                let named = inner
                    .get("Name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| !n.is_empty() && n != "default");
                if named {
                    push_array(out, "Identities", Value::Object(inner));
                } else if out.contains_key("Identity") {
                    self.err(path, "only one default identity block is allowed");
                } else {
                    out.insert("Identity".into(), Value::Object(inner));
                }
            }
        }
    }

    /// The attributes of a block that may hold attributes only.
    fn attrs_only(&mut self, body: &Body, path: &str, depth: usize) -> Map<String, Value> {
        let mut out = Map::new();
        for s in body.iter() {
            match s {
                Structure::Attribute(a) => match expr_to_json(&a.expr, depth) {
                    Ok(v) => {
                        if out.insert(a.key.as_str().to_string(), v).is_some() {
                            self.err(path, format!("{:?} is set more than once", a.key.as_str()));
                        }
                    }
                    Err(e) => self.err(path, format!("{}: {e}", a.key.as_str())),
                },
                Structure::Block(b) => self.err(
                    path,
                    format!(
                        "unexpected block {:?}: only key = value pairs are allowed here",
                        b.identifier.as_str()
                    ),
                ),
            }
        }
        out
    }
}

/// The path of the n-th unlabelled block: `service "web"` when it has a name, else `check 2`.
fn block_path(path: &str, key: &str, body: &Body, n: usize) -> String {
    let name = body.iter().find_map(|s| match s {
        Structure::Attribute(a) if a.key.as_str() == "name" => match &a.expr {
            Expression::String(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    });
    match name {
        Some(n) => format!("{path} {key} {n:?}"),
        None if n > 1 => format!("{path} {key} {n}"),
        None => format!("{path} {key}"),
    }
}

fn array_len(out: &Map<String, Value>, key: &str) -> usize {
    out.get(key).and_then(Value::as_array).map_or(0, Vec::len)
}

fn push_array(out: &mut Map<String, Value>, key: &str, v: Value) {
    let slot = out
        .entry(key.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(a) = slot {
        a.push(v);
    }
}

fn merge_object(out: &mut Map<String, Value>, key: &str, v: Value) {
    let Value::Object(new) = v else { return };
    let slot = out
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(existing) = slot {
        existing.extend(new);
    }
}

/// Closest known key by edit distance, for "did you mean".
fn suggest(key: &str, fields: &[Field]) -> Option<&'static str> {
    fields
        .iter()
        .map(|f| (edit_distance(key, f.hcl), f.hcl))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let v = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            cur.push(v);
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

/// Constraint and affinity blocks, with Nomad's shorthands: `distinct_hosts = true`,
/// `distinct_property = "${meta.rack}"`, `version = ">= 1.2"`, `semver`, `regexp`,
/// `set_contains`, `set_contains_any`, `set_contains_all`.
fn shorthand_constraint(
    attrs: &Map<String, Value>,
    is_affinity: bool,
) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let mut operator: Option<String> = None;
    let set_operator = |op: &str, out_op: &mut Option<String>| -> Result<(), String> {
        match out_op {
            Some(existing) if existing != op => Err(format!(
                "sets both operator {existing:?} and {op:?}; use one"
            )),
            _ => {
                *out_op = Some(op.to_string());
                Ok(())
            }
        }
    };
    for (k, v) in attrs {
        match k.as_str() {
            "attribute" => {
                out.insert("LTarget".into(), Value::String(to_str(v)?));
            }
            "value" => {
                out.insert("RTarget".into(), Value::String(to_str(v)?));
            }
            "operator" => set_operator(&to_str(v)?, &mut operator)?,
            "weight" if is_affinity => {
                out.insert("Weight".into(), to_int(v)?);
            }
            "version" | "semver" | "regexp" | "set_contains" | "set_contains_any"
            | "set_contains_all" => {
                set_operator(k, &mut operator)?;
                out.insert("RTarget".into(), Value::String(to_str(v)?));
            }
            "distinct_hosts" if !is_affinity => {
                if to_bool(v)? {
                    set_operator("distinct_hosts", &mut operator)?;
                }
            }
            "distinct_property" if !is_affinity => {
                set_operator("distinct_property", &mut operator)?;
                out.insert("LTarget".into(), Value::String(to_str(v)?));
            }
            other => {
                let known = if is_affinity {
                    "attribute, operator, value, weight, version, semver, regexp, set_contains, set_contains_any, set_contains_all"
                } else {
                    "attribute, operator, value, version, semver, regexp, set_contains, set_contains_any, set_contains_all, distinct_hosts, distinct_property"
                };
                return Err(format!("unknown key {other:?}; expected one of {known}"));
            }
        }
    }
    if let Some(op) = operator {
        out.insert("Operand".into(), Value::String(op));
    }
    Ok(out)
}

/// A free-form body (a driver's `config`): attributes as values; blocks as arrays of objects
/// under their name (several blocks of one name append), labelled blocks nested by label.
fn free_body(body: &Body, depth: usize) -> Result<Map<String, Value>, String> {
    if depth > MAX_DEPTH {
        return Err("configuration is nested too deeply".into());
    }
    let mut out = Map::new();
    for s in body.iter() {
        match s {
            Structure::Attribute(a) => {
                let key = a.key.as_str();
                let v = expr_to_json(&a.expr, depth)?;
                if out.contains_key(key) {
                    return Err(format!("{key:?} is set more than once"));
                }
                // HCL reads `x = null` as "not set".
                if !v.is_null() {
                    out.insert(key.to_string(), v);
                }
            }
            Structure::Block(b) => {
                let name = b.identifier.as_str();
                if out.get(name).is_some_and(|v| !v.is_array()) {
                    return Err(format!(
                        "{name:?} is set both as a key and as a block; use one form"
                    ));
                }
                let mut inner = Value::Object(free_body(&b.body, depth + 1)?);
                for label in b.labels.iter().rev() {
                    let mut m = Map::new();
                    m.insert(label.as_str().to_string(), inner);
                    inner = Value::Object(m);
                }
                push_array(&mut out, name, inner);
            }
        }
    }
    Ok(out)
}

/// An evaluated expression as JSON. Anything still unevaluated is refused.
fn expr_to_json(e: &Expression, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("value is nested too deeply".into());
    }
    Ok(match e {
        Expression::Null => Value::Null,
        Expression::Bool(b) => Value::Bool(*b),
        Expression::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Number(i.into())
            } else if let Some(u) = n.as_u64() {
                Value::Number(u.into())
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| "is not a finite number".to_string())?
            }
        }
        Expression::String(s) => Value::String(s.clone()),
        Expression::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| expr_to_json(i, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Expression::Object(obj) => {
            let mut m = Map::new();
            for (k, v) in obj {
                let key = match k {
                    hcl::ObjectKey::Identifier(id) => id.as_str().to_string(),
                    hcl::ObjectKey::Expression(Expression::String(s)) => s.clone(),
                    hcl::ObjectKey::Expression(other) => match expr_to_json(other, depth + 1)? {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => return Err("object keys must be text".into()),
                    },
                    _ => return Err("object keys must be text".into()),
                };
                let value = expr_to_json(v, depth + 1)?;
                // An object member set to null is absent, as in the JSON API.
                if !value.is_null() {
                    m.insert(key, value);
                }
            }
            Value::Object(m)
        }
        Expression::TemplateExpr(t) => Value::String(t.to_string()),
        other => {
            return Err(format!(
                "could not be evaluated to a value: {}",
                hcl::format::to_string(other).unwrap_or_else(|_| "expression".into())
            ))
        }
    })
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn to_str(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("expected a string, got {}", kind_of(other))),
    }
}

fn to_int(v: &Value) -> Result<Value, String> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(Value::Number(i.into()))
            } else if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9e15) {
                Ok(Value::Number((f as i64).into()))
            } else {
                Err(format!("expected a whole number, got {n}"))
            }
        }
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map(|i| Value::Number(i.into()))
            .map_err(|_| format!("expected a whole number, got {s:?}")),
        other => Err(format!("expected a whole number, got {}", kind_of(other))),
    }
}

fn to_bool(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.as_str() {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(format!("expected true or false, got {s:?}")),
        },
        other => Err(format!("expected true or false, got {}", kind_of(other))),
    }
}

fn to_dur(v: &Value) -> Result<Value, String> {
    match v {
        Value::String(s) => Duration::parse(s).map(|d| Value::Number(d.as_nanos().into())),
        Value::Number(n) => match n.as_u64() {
            Some(ns) => Ok(Value::Number(ns.into())),
            None => Err(format!("expected a duration such as \"30s\", got {n}")),
        },
        other => Err(format!(
            "expected a duration such as \"30s\", got {}",
            kind_of(other)
        )),
    }
}

fn to_str_list(v: &Value) -> Result<Value, String> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| to_str(i).map(Value::String))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Err(format!(
            "expected a list of strings, got {}",
            kind_of(other)
        )),
    }
}

fn to_str_map(v: &Value) -> Result<Value, String> {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, val) in m {
                let s = to_str(val).map_err(|e| format!("{k}: {e}"))?;
                out.insert(k.clone(), Value::String(s));
            }
            Ok(Value::Object(out))
        }
        other => Err(format!("expected a map of strings, got {}", kind_of(other))),
    }
}

fn to_header_map(v: &Value) -> Result<Value, String> {
    let Value::Object(m) = v else {
        return Err(format!(
            "expected header names with lists of values, got {}",
            kind_of(v)
        ));
    };
    let mut out = Map::new();
    for (k, val) in m {
        let Value::Array(items) = val else {
            return Err(format!(
                "header {k:?} must be a list of strings, such as [\"value\"], got {}",
                kind_of(val)
            ));
        };
        let mut strs = Vec::new();
        for i in items {
            match i {
                Value::String(s) => strs.push(Value::String(s.clone())),
                other => {
                    return Err(format!(
                        "header {k:?} must be a list of strings, but holds {}",
                        kind_of(other)
                    ))
                }
            }
        }
        out.insert(k.clone(), Value::Array(strs));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use crate::jobspec::{parse_hcl, ParseOptions};
    use crate::Error;

    fn parse(src: &str) -> Result<crate::job::Job, Vec<String>> {
        parse_hcl(src, "t.hcl", &ParseOptions::default()).map_err(|e| match e {
            Error::Invalid(errs) => errs.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        })
    }

    /// A job with one group "g" holding one task "t"; `group` and `task` are extra lines.
    fn job_src(group: &str, task: &str) -> String {
        format!(
            "job \"j\" {{\n  group \"g\" {{\n{group}\n    task \"t\" {{\n      driver = \"raw_exec\"\n{task}\n    }}\n  }}\n}}\n"
        )
    }

    #[test]
    fn ports_split_into_static_and_dynamic() {
        let src = job_src(
            r#"
    network {
      mode = "bridge"
      port "http" {
        static = 8080
        to     = 80
      }
      port "admin" {
        to = 9000
      }
      port "dyn" {}
    }"#,
            "",
        );
        let job = parse(&src).unwrap();
        let net = &job.task_groups[0].networks[0];
        assert_eq!(net.mode, "bridge");
        assert_eq!(net.reserved_ports.len(), 1);
        assert_eq!(net.reserved_ports[0].label, "http");
        assert_eq!(net.reserved_ports[0].value, 8080);
        assert_eq!(net.reserved_ports[0].to, 80);
        let dynamic: Vec<_> = net
            .dynamic_ports
            .iter()
            .map(|p| (p.label.as_str(), p.to))
            .collect();
        assert_eq!(dynamic, [("admin", 9000), ("dyn", 0)]);
    }

    #[test]
    fn a_task_outside_a_group_gets_its_own_group_and_vault_propagates() {
        let job = parse(
            r#"
job "j" {
  vault {
    policies = ["p"]
  }
  task "solo" {
    driver = "raw_exec"
  }
  group "g" {
    task "a" {
      driver = "raw_exec"
    }
    task "b" {
      driver = "raw_exec"
      vault {
        policies = ["own"]
      }
    }
  }
}"#,
        )
        .unwrap();
        let names: Vec<_> = job.task_groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["g", "solo"]);
        let g = job.group("g").unwrap();
        assert_eq!(g.tasks[0].vault.as_ref().unwrap().policies, ["p"]);
        assert_eq!(g.tasks[1].vault.as_ref().unwrap().policies, ["own"]);
        let solo = job.group("solo").unwrap();
        assert_eq!(solo.tasks[0].vault.as_ref().unwrap().policies, ["p"]);
        assert_eq!(job.datacenters, ["*"]);
    }

    #[test]
    fn constraint_shorthands() {
        let job = parse(
            r#"
job "j" {
  constraint {
    distinct_hosts = true
  }
  constraint {
    distinct_property = "${meta.rack}"
    value             = "2"
  }
  constraint {
    attribute = "${attr.kernel.version}"
    version   = ">= 4.0"
  }
  affinity {
    attribute        = "${meta.team}"
    set_contains_any = "a,b"
    weight           = -20
  }
  group "g" {
    task "t" {
      driver = "raw_exec"
    }
  }
}"#,
        )
        .unwrap();
        let ops: Vec<_> = job
            .constraints
            .iter()
            .map(|c| (c.l_target.as_str(), c.operand.as_str(), c.r_target.as_str()))
            .collect();
        assert_eq!(
            ops,
            [
                ("", "distinct_hosts", ""),
                ("${meta.rack}", "distinct_property", "2"),
                ("${attr.kernel.version}", "version", ">= 4.0"),
            ]
        );
        assert_eq!(job.affinities[0].operand, "set_contains_any");
        assert_eq!(job.affinities[0].weight, Some(-20));
    }

    #[test]
    fn errors_name_the_key_and_where() {
        let src = job_src(
            r#"
    count = "lots"
    restart {
      atempts = 3
    }"#,
            r#"
      kill_timeout = "5 parsecs"
      resources {
        cpu = "fast"
      }"#,
        );
        let errs = parse(&src).unwrap_err();
        let has = |want: &str| errs.iter().any(|e| e == want);
        assert!(
            has(r#"job "j" group "g": count: expected a whole number, got "lots""#),
            "{errs:#?}"
        );
        assert!(
            has(r#"job "j" group "g" restart: unknown key "atempts"; did you mean "attempts"?"#),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with(r#"job "j" group "g" task "t": kill_timeout: unknown unit"#)),
            "{errs:#?}"
        );
        assert!(
            has(
                r#"job "j" group "g" task "t" resources: cpu: expected a whole number, got "fast""#
            ),
            "{errs:#?}"
        );
        assert_eq!(errs.len(), 4, "{errs:#?}");
    }

    #[test]
    fn single_blocks_cannot_repeat_and_scaling_labels_are_checked() {
        let src = job_src(
            r#"
    ephemeral_disk {
      size = 100
    }
    ephemeral_disk {
      size = 200
    }"#,
            r#"
      scaling "disk" {
        max = 10
      }
      scaling "cpu" {
        min = 10
      }"#,
        );
        let errs = parse(&src).unwrap_err();
        let has = |want: &str| errs.iter().any(|e| e.contains(want));
        assert!(has("only one ephemeral_disk block is allowed"), "{errs:#?}");
        assert!(has(r#""disk" is not a scalable resource"#), "{errs:#?}");
        assert!(has(r#"scaling "cpu": max is required"#), "{errs:#?}");
    }

    #[test]
    fn free_form_config_keeps_blocks_drops_nulls_and_refuses_mixed_forms() {
        let src = job_src(
            "",
            r#"
      config {
        image = "redis"
        unset = null
        port_map {
          db = 6379
        }
        mount {
          type = "bind"
        }
        mount {
          type = "tmpfs"
        }
        logging "syslog" {
          tag = "x"
        }
      }"#,
        );
        let job = parse(&src).unwrap();
        let cfg = serde_json::to_value(&job.task_groups[0].tasks[0].config).unwrap();
        assert_eq!(
            cfg,
            serde_json::json!({
                "image": "redis",
                "port_map": [{ "db": 6379 }],
                "mount": [{ "type": "bind" }, { "type": "tmpfs" }],
                "logging": [{ "syslog": { "tag": "x" } }],
            })
        );
        let src = job_src(
            "",
            r#"
      config {
        mount = "x"
        mount {
          type = "bind"
        }
      }"#,
        );
        let errs = parse(&src).unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("set both as a key and as a block")),
            "{errs:#?}"
        );
    }

    #[test]
    fn unsupported_features_say_so() {
        let src = job_src("", "").replacen(
            "job \"j\" {\n",
            "job \"j\" {\n  group_selection \"x\" {\n    count = 1\n  }\n",
            1,
        );
        let errs = parse(&src).unwrap_err();
        assert_eq!(
            errs,
            [r#"job "j": the group_selection block is not supported by this implementation"#]
        );
    }
}
