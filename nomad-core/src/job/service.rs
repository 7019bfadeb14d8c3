//! Services, health checks and the Connect service mesh blocks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Duration, FreeForm, LogConfig, Resources, WorkloadIdentity};

/// A service the group or task offers, registered with a provider (`nomad` or `consul`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Service {
    /// The service name; defaults to `<job>-<group>[-<task>]`.
    pub name: String,
    /// Tags registered with the service.
    pub tags: Vec<String>,
    /// Tags used instead of `tags` while the allocation is a canary.
    pub canary_tags: Vec<String>,
    /// Let Consul users change the tags (Consul only).
    pub enable_tag_override: bool,
    /// A port label, or a number for `address_mode = "driver"`.
    pub port_label: String,
    /// `auto` (default), `host`, `driver` or `alloc`.
    pub address_mode: String,
    /// A fixed address to advertise instead of the allocation's.
    pub address: String,
    /// Health checks.
    pub checks: Vec<ServiceCheck>,
    /// Restart the task when checks fail; merged into each check.
    pub check_restart: Option<CheckRestart>,
    /// Connect (service mesh) settings.
    pub connect: Option<ConsulConnect>,
    /// Service metadata.
    pub meta: BTreeMap<String, String>,
    /// Metadata used instead of `meta` while the allocation is a canary.
    pub canary_meta: BTreeMap<String, String>,
    /// Extra tagged addresses (Consul only).
    pub tagged_addresses: BTreeMap<String, String>,
    /// For group services: the task whose address and checks are used.
    pub task_name: String,
    /// `require_healthy` (default), `ignore_warnings` or `ignore`.
    pub on_update: String,
    /// The provider: `consul` (default) or `nomad`.
    pub provider: String,
    /// The Consul cluster (Consul only).
    pub cluster: String,
    /// The Consul service kind, for gateways.
    pub kind: String,
    /// Consul DNS weights.
    pub weights: Option<ServiceWeights>,
    /// Workload identity for the service (Consul only).
    pub identity: Option<WorkloadIdentity>,
}

impl Service {
    /// The provider, `consul` when unset (as in Nomad).
    pub fn provider_or_default(&self) -> &str {
        if self.provider.is_empty() {
            "consul"
        } else {
            &self.provider
        }
    }
}

/// Consul DNS weights of a service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceWeights {
    /// Weight when passing.
    pub passing: i32,
    /// Weight when warning.
    pub warning: i32,
}

/// A health check of a service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceCheck {
    /// The check name; defaults to `service: "<name>" check`.
    pub name: String,
    /// `http`, `tcp`, `grpc` or `script`.
    #[serde(rename = "Type")]
    pub check_type: String,
    /// The command of a script check.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The HTTP path of an http check.
    pub path: String,
    /// `http` or `https` for http checks.
    pub protocol: String,
    /// The port label to check; defaults to the service's.
    pub port_label: String,
    /// Expose the check through the Connect proxy.
    pub expose: bool,
    /// `host`, `driver` or `alloc`.
    pub address_mode: String,
    /// How often to check.
    pub interval: Duration,
    /// How long a check may take.
    pub timeout: Duration,
    /// The status before the first check: `passing`, `warning` or `critical`.
    pub initial_status: String,
    /// Free text shown with the check.
    pub notes: String,
    /// The TLS server name of https and grpc checks.
    #[serde(rename = "TLSServerName")]
    pub tls_server_name: String,
    /// Skip certificate verification.
    #[serde(rename = "TLSSkipVerify")]
    pub tls_skip_verify: bool,
    /// HTTP headers: each name with one or more values.
    pub header: BTreeMap<String, Vec<String>>,
    /// HTTP method (default GET).
    pub method: String,
    /// HTTP request body.
    pub body: String,
    /// Restart the task when this check keeps failing.
    pub check_restart: Option<CheckRestart>,
    /// The gRPC service to check.
    #[serde(rename = "GRPCService")]
    pub grpc_service: String,
    /// Use TLS for the gRPC check.
    #[serde(rename = "GRPCUseTLS")]
    pub grpc_use_tls: bool,
    /// For group services: the task a script check runs in.
    pub task_name: String,
    /// Passing results needed before the check is passing.
    pub success_before_passing: u32,
    /// Failing results needed before the check is critical.
    pub failures_before_critical: u32,
    /// Failing results needed before the check is warning.
    pub failures_before_warning: u32,
    /// `require_healthy` (default), `ignore_warnings` or `ignore`.
    pub on_update: String,
}

/// Restart the task after a check has been unhealthy `limit` times in a row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CheckRestart {
    /// Unhealthy results in a row before a restart; 0 disables.
    pub limit: u32,
    /// How long to wait after the task starts before checks count.
    pub grace: Option<Duration>,
    /// Treat warning as passing.
    pub ignore_warnings: bool,
}

/// The `connect` block of a service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConsulConnect {
    /// The task speaks Connect natively; no sidecar is injected.
    pub native: bool,
    /// A gateway instead of a sidecar.
    pub gateway: Option<ConsulGateway>,
    /// Register a sidecar proxy service and inject its task.
    pub sidecar_service: Option<ConsulSidecarService>,
    /// Overrides for the injected sidecar task.
    pub sidecar_task: Option<SidecarTask>,
}

/// The sidecar proxy's own service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConsulSidecarService {
    /// Tags of the sidecar service.
    pub tags: Vec<String>,
    /// The port label of the sidecar's public listener.
    pub port: String,
    /// Proxy settings.
    pub proxy: Option<ConsulProxy>,
    /// Do not register the default TCP check of the sidecar.
    #[serde(rename = "DisableDefaultTCPCheck")]
    pub disable_default_tcp_check: bool,
    /// Sidecar service metadata.
    pub meta: BTreeMap<String, String>,
}

/// Overrides for the injected sidecar task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SidecarTask {
    /// Task name; defaults to `connect-proxy-<service>`.
    pub name: String,
    /// Driver; defaults to the proxy's default.
    pub driver: String,
    /// User to run as.
    pub user: String,
    /// Driver configuration.
    pub config: FreeForm,
    /// Environment.
    pub env: BTreeMap<String, String>,
    /// Resources.
    pub resources: Option<Resources>,
    /// Metadata.
    pub meta: BTreeMap<String, String>,
    /// Time between the kill signal and a forced kill.
    pub kill_timeout: Option<Duration>,
    /// Log rotation.
    #[serde(rename = "LogConfig")]
    pub log_config: Option<LogConfig>,
    /// Delay between deregistering and killing.
    pub shutdown_delay: Option<Duration>,
    /// Signal to stop with.
    pub kill_signal: String,
}

/// Proxy settings of a sidecar.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConsulProxy {
    /// The address the proxy forwards inbound traffic to.
    pub local_service_address: String,
    /// The port the proxy forwards inbound traffic to.
    pub local_service_port: u16,
    /// Paths exposed without mTLS (health checks).
    pub expose: Option<ConsulExposeConfig>,
    /// The services this one calls.
    pub upstreams: Vec<ConsulUpstream>,
    /// Proxy-specific configuration.
    pub config: FreeForm,
    /// Transparent proxy settings.
    pub transparent_proxy: Option<FreeForm>,
}

/// An upstream service reached through the local proxy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConsulUpstream {
    /// The upstream service's name.
    pub destination_name: String,
    /// Its namespace (Consul Enterprise).
    pub destination_namespace: String,
    /// Its peer (cluster peering).
    pub destination_peer: String,
    /// Its partition.
    pub destination_partition: String,
    /// Its type (`service` or `prepared_query`).
    pub destination_type: String,
    /// The local port the proxy listens on for this upstream.
    pub local_bind_port: u16,
    /// The local address the proxy listens on (default 127.0.0.1).
    pub local_bind_address: String,
    /// A unix socket to listen on instead of a port.
    pub local_bind_socket_path: String,
    /// The socket's mode.
    pub local_bind_socket_mode: String,
    /// The upstream's datacenter.
    pub datacenter: String,
    /// Mesh gateway mode.
    pub mesh_gateway: Option<ConsulMeshGateway>,
    /// Upstream-specific proxy configuration.
    pub config: FreeForm,
}

/// How an upstream in another datacenter is reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConsulMeshGateway {
    /// `local`, `remote`, `none` or empty.
    pub mode: String,
}

/// Paths exposed through the proxy without mTLS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConsulExposeConfig {
    /// The exposed paths.
    pub paths: Vec<ConsulExposePath>,
}

/// One exposed path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConsulExposePath {
    /// The HTTP path.
    pub path: String,
    /// `http` or `http2`.
    pub protocol: String,
    /// The port the service answers the path on.
    pub local_path_port: u16,
    /// The port label the proxy listens on for it.
    pub listener_port: String,
}

/// A Connect gateway (ingress, terminating or mesh).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConsulGateway {
    /// Settings of the gateway's proxy.
    pub proxy: Option<FreeForm>,
    /// Ingress gateway configuration entry.
    pub ingress: Option<FreeForm>,
    /// Terminating gateway configuration entry.
    pub terminating: Option<FreeForm>,
    /// Mesh gateway marker.
    pub mesh: Option<FreeForm>,
}
