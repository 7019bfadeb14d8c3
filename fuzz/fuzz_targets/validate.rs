//! A structured JSON document, built by `arbitrary` from the fuzzer's bytes, read as a job:
//! `job_from_json_value`, then canonicalisation and validation, must not panic, and
//! canonicalising twice must change nothing the second time.
//!
//! Object keys are mostly the model's own field names, so that the fuzzer reaches deep into
//! groups, tasks, services and networks instead of writing keys the decoder ignores.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use nomad_core::jobspec::job_from_json_value;
use serde_json::{Map, Number, Value};

/// Field names of the job model (PascalCase, as the JSON API spells them).
#[rustfmt::skip]
const FIELDS: &[&str] = &[
    "AccessMode", "Actions", "Address", "AddressMode", "Affinities", "AllAtOnce",
    "AllowTokenExpiration", "Args", "Artifacts", "AttachmentMode", "Attempts", "Attribute",
    "Audience", "AutoPromote", "AutoRevert", "Body", "CIDR", "CNI", "CPU", "CSIPluginConfig",
    "Canary", "CanaryMeta", "CanaryTags", "ChangeMode", "ChangeScript", "ChangeSignal",
    "CheckRestart", "Checks", "Cluster", "Command", "Config", "Connect", "Constraints", "Consul",
    "ConsulNamespace", "ConsulToken", "Cores", "Count", "CreateIndex", "DNS", "Datacenter",
    "Datacenters", "Delay", "DelayFunction", "DestPath", "Destination", "DestinationName",
    "DestinationNamespace", "DestinationPartition", "DestinationPeer", "DestinationType", "Device",
    "Devices", "DisableDefaultTCPCheck", "DisableFile", "Disabled", "Disconnect", "DiskMB",
    "DispatchIdempotencyToken", "DispatchPayload", "Dispatched", "Driver", "DynamicPorts",
    "EmbeddedTmpl", "EnableTagOverride", "Enabled", "Env", "Envvars", "EphemeralDisk",
    "ErrMissingKey", "Expose", "FSType", "FailOnError", "FailuresBeforeCritical",
    "FailuresBeforeWarning", "File", "GRPCService", "GRPCUseTLS", "Gateway", "GetterHeaders",
    "GetterInsecure", "GetterMode", "GetterOptions", "GetterSource", "Gid", "Grace", "Header",
    "HealthCheck", "HealthyDeadline", "Hook", "HostNetwork", "Hostname", "ID", "IP", "Identities",
    "Identity", "IgnoreWarnings", "Ingress", "InitialStatus", "Interval", "Job", "JobModifyIndex",
    "KillSignal", "KillTimeout", "Kind", "LTarget", "Label", "Leader", "LeftDelim", "Lifecycle",
    "Limit", "ListenerPort", "LocalBindAddress", "LocalBindPort", "LocalBindSocketMode",
    "LocalBindSocketPath", "LocalPathPort", "LocalServiceAddress", "LocalServicePort", "LogConfig",
    "LostAfter", "MBits", "Max", "MaxClientDisconnect", "MaxDelay", "MaxFileSizeMB", "MaxFiles",
    "MaxParallel", "MemoryMB", "MemoryMaxMB", "Mesh", "MeshGateway", "Meta", "MetaOptional",
    "MetaRequired", "Method", "Migrate", "Min", "MinHealthyTime", "Mode", "ModifyIndex",
    "MountFlags", "MountOptions", "Multiregion", "Name", "Namespace", "Native", "Networks",
    "NodePool", "NomadTokenID", "Notes", "OnFailure", "OnUpdate", "Once", "Operand", "Options",
    "ParameterizedJob", "ParentID", "Partition", "Passing", "Path", "Paths", "Payload", "PerAlloc",
    "Percent", "Periodic", "Perms", "Policies", "Policy", "Port", "PortLabel",
    "PreventRescheduleOnLost", "Priority", "ProgressDeadline", "ProhibitOverlap",
    "PropagationMode", "Protocol", "Provider", "Proxy", "RTarget", "ReadOnly", "Reconcile",
    "Region", "Regions", "RelativeDest", "RenderTemplates", "Replace", "Reschedule",
    "ReschedulePolicy", "ReservedPorts", "Resources", "RestartPolicy", "RightDelim", "Role",
    "SELinuxLabel", "Scaling", "ScalingPolicies", "Searches", "Servers", "ServiceName", "Services",
    "ShutdownDelay", "Sidecar", "SidecarService", "SidecarTask", "SizeMB", "Source", "SourcePath",
    "Spec", "SpecType", "Specs", "Splay", "SpreadTarget", "Spreads", "Stable", "Stagger", "Status",
    "StatusDescription", "Sticky", "Stop", "StopAfterClientDisconnect", "StopOnClientAfter",
    "Strategy", "SubmitTime", "SuccessBeforePassing", "TLSServerName", "TLSSkipVerify", "TTL",
    "TaggedAddresses", "Tags", "TaskGroups", "TaskName", "Tasks", "Templates", "Terminating",
    "TimeZone", "Timeout", "To", "TransparentProxy", "Type", "UI", "Uid", "Unlimited", "Update",
    "Upstreams", "User", "Value", "Vault", "VaultGrace", "VaultNamespace", "VaultToken", "Version",
    "Volume", "VolumeMounts", "Volumes", "Wait", "Warning", "Weight", "Weights",
];

/// Values that the validator treats specially.
const WORDS: &[&str] = &[
    "",
    "service",
    "batch",
    "system",
    "sysbatch",
    "host",
    "bridge",
    "none",
    "cni/x",
    "http",
    "tcp",
    "grpc",
    "script",
    "prestart",
    "poststart",
    "poststop",
    "consul",
    "nomad",
    "horizontal",
    "vertical_cpu",
    "vertical_mem",
    "=",
    "regexp",
    "version",
    "semver",
    "distinct_hosts",
    "distinct_property",
    "is_set",
    "set_contains",
    "${attr.kernel.name}",
    "30s",
    "1h",
    "-1s",
    "0",
    "signal",
    "script",
    "restart",
    "noop",
    "csi",
    "checks",
    "fail",
    "delay",
    "constant",
    "exponential",
    "fibonacci",
    "*/5 * * * *",
    "@daily",
    "0644",
];

#[derive(Debug)]
struct Key(String);

impl<'a> Arbitrary<'a> for Key {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Key(if u.ratio(7, 8)? {
            u.choose(FIELDS)?.to_string()
        } else {
            String::arbitrary(u)?
        }))
    }
}

#[derive(Debug, Arbitrary)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Word(u8),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(Key, Json)>),
}

impl Json {
    fn into_value(self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(b),
            Json::Int(i) => Value::Number(i.into()),
            Json::UInt(u) => Value::Number(u.into()),
            Json::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
            Json::Word(i) => Value::String(WORDS[usize::from(i) % WORDS.len()].to_string()),
            Json::Str(s) => Value::String(s),
            Json::Array(items) => Value::Array(items.into_iter().map(Json::into_value).collect()),
            Json::Object(entries) => Value::Object(object(entries)),
        }
    }
}

fn object(entries: Vec<(Key, Json)>) -> Map<String, Value> {
    entries
        .into_iter()
        .map(|(k, v)| (k.0, v.into_value()))
        .collect()
}

/// The document: always an object, so that every input reaches the decoder.
#[derive(Debug, Arbitrary)]
struct Document(Vec<(Key, Json)>);

fuzz_target!(|doc: Document| {
    let value = Value::Object(object(doc.0));
    if let Ok(mut job) = job_from_json_value(value, "fuzz.json") {
        job.canonicalize();
        nomad_core_fuzz::check_canonical_job(job);
    }
});
