//! The agent's configuration: HCL files (`-config`), `-dev` defaults and command-line flags.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

/// The agent configuration file, as Nomad's agent reads it (the parts that are built).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AgentConfig {
    /// Where the server's log and the client's state and allocations live.
    pub(crate) data_dir: Option<PathBuf>,
    /// The address every listener binds.
    pub(crate) bind_addr: Option<String>,
    /// The region (`global`).
    pub(crate) region: Option<String>,
    /// The datacenter (`dc1`).
    pub(crate) datacenter: Option<String>,
    /// The agent's name (the hostname by default).
    pub(crate) name: Option<String>,
    /// The log level (`INFO`).
    pub(crate) log_level: Option<String>,
    /// Listener ports.
    pub(crate) ports: Option<Ports>,
    /// The server block.
    pub(crate) server: Option<ServerBlock>,
    /// The client block.
    pub(crate) client: Option<ClientBlock>,
    /// `plugin "<driver>" { config { ... } }` blocks, by driver name.
    pub(crate) plugin: Option<BTreeMap<String, PluginBlock>>,
}

/// `ports { ... }`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Ports {
    /// The HTTP API port (4646).
    pub(crate) http: Option<u16>,
    /// The RPC port (4647); advertised only.
    pub(crate) rpc: Option<u16>,
    /// The gossip port (4648); advertised only.
    pub(crate) serf: Option<u16>,
}

/// `server { ... }`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServerBlock {
    /// Run the server.
    pub(crate) enabled: bool,
    /// Servers expected before bootstrapping; only 1 is supported so far.
    pub(crate) bootstrap_expect: Option<u32>,
    /// Scheduler workers (one per core by default).
    pub(crate) num_schedulers: Option<usize>,
}

/// `client { ... }`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ClientBlock {
    /// Run the client.
    pub(crate) enabled: bool,
    /// Operator metadata of the node.
    pub(crate) meta: BTreeMap<String, String>,
    /// The node class.
    pub(crate) node_class: String,
    /// The node pool.
    pub(crate) node_pool: String,
    /// Driver and client options (`driver.raw_exec.enable = "1"`).
    pub(crate) options: BTreeMap<String, String>,
    /// Server HTTP addresses, for a client without a local server.
    pub(crate) servers: Vec<String>,
}

/// `plugin "<name>" { config { ... } }`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct PluginBlock {
    /// The driver's configuration.
    pub(crate) config: Option<serde_json::Value>,
}

impl AgentConfig {
    /// Reads and checks a configuration file (HCL, or JSON when it ends in `.json`).
    pub(crate) fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the agent configuration {}", path.display()))?;
        let cfg = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str::<AgentConfig>(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        } else {
            Self::from_hcl(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        };
        cfg.check()?;
        Ok(cfg)
    }

    /// Parses HCL text.
    pub(crate) fn from_hcl(text: &str) -> Result<Self, String> {
        hcl::from_str::<AgentConfig>(text).map_err(|e| e.to_string())
    }

    /// The settings of a `-dev` agent: server and client in one process, `raw_exec` on.
    pub(crate) fn dev() -> Self {
        AgentConfig {
            bind_addr: Some("127.0.0.1".into()),
            log_level: Some("DEBUG".into()),
            server: Some(ServerBlock {
                enabled: true,
                bootstrap_expect: Some(1),
                num_schedulers: None,
            }),
            client: Some(ClientBlock {
                enabled: true,
                ..ClientBlock::default()
            }),
            plugin: Some(BTreeMap::from([(
                "raw_exec".to_string(),
                PluginBlock {
                    config: Some(serde_json::json!({ "enabled": true })),
                },
            )])),
            ..AgentConfig::default()
        }
    }

    /// Lays `other` over `self`: what `other` sets wins, maps are merged.
    pub(crate) fn merge(mut self, other: AgentConfig) -> Self {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(data_dir, bind_addr, region, datacenter, name, log_level, ports, server);
        match (self.client.as_mut(), other.client) {
            (Some(mine), Some(theirs)) => {
                mine.enabled = mine.enabled || theirs.enabled;
                mine.meta.extend(theirs.meta);
                mine.options.extend(theirs.options);
                if !theirs.node_class.is_empty() {
                    mine.node_class = theirs.node_class;
                }
                if !theirs.node_pool.is_empty() {
                    mine.node_pool = theirs.node_pool;
                }
                if !theirs.servers.is_empty() {
                    mine.servers = theirs.servers;
                }
            }
            (None, Some(theirs)) => self.client = Some(theirs),
            _ => {}
        }
        if let Some(p) = other.plugin {
            self.plugin.get_or_insert_with(BTreeMap::new).extend(p);
        }
        self
    }

    /// Checks what serde cannot: values in range, something to run.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        if let Some(b) = &self.bind_addr {
            if b.parse::<IpAddr>().is_err() {
                bail!("bind_addr {b:?} is not an IP address");
            }
        }
        if let Some(s) = &self.server {
            if let Some(n) = s.bootstrap_expect {
                if n > 1 {
                    bail!(
                        "server.bootstrap_expect = {n}: only single-server clusters \
                         (bootstrap_expect = 1) are supported so far"
                    );
                }
            }
        }
        for name in self.plugin.iter().flat_map(|p| p.keys()) {
            if !matches!(
                name.as_str(),
                "raw_exec" | "mock_driver" | "docker" | "exec"
            ) {
                bail!(
                    "plugin {name:?}: unknown driver (known: raw_exec, mock_driver, docker, exec)"
                );
            }
        }
        Ok(())
    }

    /// Whether the server runs.
    pub(crate) fn server_enabled(&self) -> bool {
        self.server.as_ref().is_some_and(|s| s.enabled)
    }

    /// Whether the client runs.
    pub(crate) fn client_enabled(&self) -> bool {
        self.client.as_ref().is_some_and(|c| c.enabled)
    }

    /// The bind address (`0.0.0.0` unless set; `-dev` sets 127.0.0.1).
    pub(crate) fn bind_ip(&self) -> IpAddr {
        self.bind_addr
            .as_deref()
            .and_then(|b| b.parse().ok())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    /// The HTTP listener's address.
    pub(crate) fn http_addr(&self) -> SocketAddr {
        let port = self.ports.as_ref().and_then(|p| p.http).unwrap_or(4646);
        SocketAddr::new(self.bind_ip(), port)
    }

    /// Whether `raw_exec` is enabled, by its plugin block or the legacy client option.
    pub(crate) fn raw_exec_enabled(&self) -> bool {
        let by_plugin = self
            .plugin
            .as_ref()
            .and_then(|p| p.get("raw_exec"))
            .and_then(|p| p.config.as_ref())
            .and_then(|c| c.get("enabled"))
            .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"));
        let by_option = self.client.as_ref().is_some_and(|c| {
            c.options
                .get("driver.raw_exec.enable")
                .is_some_and(|v| v == "1" || v == "true")
        });
        by_plugin || by_option
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_file_parses() {
        let cfg = AgentConfig::from_hcl(
            r#"
            data_dir  = "/var/lib/nomad"
            bind_addr = "127.0.0.1"
            ports { http = 5646 }
            server {
              enabled          = true
              bootstrap_expect = 1
            }
            client {
              enabled    = true
              node_class = "edge"
              meta { rack = "r1" }
              options = { "driver.raw_exec.enable" = "1" }
              servers = ["127.0.0.1:4647"]
            }
            plugin "raw_exec" {
              config { enabled = true }
            }
            plugin "docker" {
              config { allow_privileged = false }
            }
            "#,
        )
        .expect("parses");
        cfg.check().expect("valid");
        assert_eq!(cfg.http_addr().to_string(), "127.0.0.1:5646");
        assert!(cfg.server_enabled() && cfg.client_enabled() && cfg.raw_exec_enabled());
        let client = cfg.client.as_ref().expect("client");
        assert_eq!(client.meta["rack"], "r1");
        assert_eq!(client.node_class, "edge");
        assert_eq!(cfg.plugin.as_ref().map(BTreeMap::len), Some(2));
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = AgentConfig::from_hcl("client { enabeld = true }").expect_err("unknown key");
        assert!(err.contains("enabeld"), "{err}");
        let err = AgentConfig::from_hcl("colour = \"red\"").expect_err("unknown key");
        assert!(err.contains("colour"), "{err}");
        let err = AgentConfig::from_hcl("plugin \"raw_exec\" { cfg {} }").expect_err("unknown");
        assert!(err.contains("cfg"), "{err}");
    }

    #[test]
    fn file_values_win_over_dev_defaults() {
        let file =
            AgentConfig::from_hcl("ports { http = 7000 }\nclient {\n  meta = { a = \"b\" }\n}")
                .expect("parses");
        let cfg = AgentConfig::dev().merge(file);
        assert_eq!(cfg.http_addr().port(), 7000);
        assert!(cfg.client_enabled() && cfg.raw_exec_enabled());
        assert_eq!(cfg.client.as_ref().expect("client").meta["a"], "b");
    }
}
