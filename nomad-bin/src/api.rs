//! Talking to the API from the CLI: the address and token flags, clear errors, and Nomad's
//! prefix matching of IDs.

use clap::Args;
use nomad_api::{Client, Config, QueryOptions};

/// Flags every API command takes (they override `NOMAD_ADDR`, `NOMAD_TOKEN`,
/// `NOMAD_NAMESPACE` and `NOMAD_REGION`).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ApiFlags {
    /// The address of the Nomad agent (`NOMAD_ADDR`, `http://127.0.0.1:4646`).
    #[arg(long, global = true, value_name = "ADDR")]
    address: Option<String>,
    /// The ACL token (`NOMAD_TOKEN`).
    #[arg(long, global = true, value_name = "TOKEN")]
    token: Option<String>,
    /// The namespace (`NOMAD_NAMESPACE`).
    #[arg(long, global = true, value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// The region (`NOMAD_REGION`).
    #[arg(long, global = true, value_name = "REGION")]
    region: Option<String>,
}

/// An API client with the address it talks to, for error messages.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    /// The typed client.
    pub(crate) client: Client,
    /// The address, as given.
    pub(crate) address: String,
}

impl ApiFlags {
    /// The client for these flags over the environment.
    pub(crate) fn connect(&self) -> anyhow::Result<Api> {
        let mut cfg = Config::from_env();
        if let Some(a) = &self.address {
            cfg.address.clone_from(a);
        }
        if let Some(t) = &self.token {
            cfg.token = Some(t.clone());
        }
        if let Some(n) = &self.namespace {
            cfg.namespace = Some(n.clone());
        }
        if let Some(r) = &self.region {
            cfg.region = Some(r.clone());
        }
        let address = cfg.address.clone();
        let client = Client::new(cfg).map_err(|e| {
            anyhow::anyhow!("Error initializing client: {e} (set NOMAD_ADDR or -address)")
        })?;
        Ok(Api { client, address })
    }
}

impl Api {
    /// Turns an API error into the message the CLI prints: an unreachable agent names its
    /// address, a status error shows the server's message.
    pub(crate) fn explain(&self, what: &str, e: nomad_api::Error) -> anyhow::Error {
        match e {
            nomad_api::Error::Transport(msg) => anyhow::anyhow!(
                "{what}: cannot reach the Nomad agent at {}: {msg}\n\
                 (is the agent running? set NOMAD_ADDR or -address to its HTTP address)",
                self.address
            ),
            nomad_api::Error::Status { status, message } => {
                anyhow::anyhow!(
                    "{what}: Unexpected response code: {status} ({})",
                    message.trim()
                )
            }
            other => anyhow::anyhow!("{what}: {other}"),
        }
    }

    /// Query options for a plain read.
    pub(crate) fn q() -> QueryOptions {
        QueryOptions::default()
    }

    /// Query options for a prefix listing.
    pub(crate) fn prefix(p: &str) -> QueryOptions {
        QueryOptions {
            prefix: Some(p.to_string()),
            ..QueryOptions::default()
        }
    }
}

/// The outcome of resolving an ID or prefix.
pub(crate) enum Resolved<T> {
    /// Exactly one object.
    One(T),
    /// Several objects share the prefix.
    Many(Vec<T>),
    /// None.
    None,
}

/// Nomad refuses prefixes shorter than two characters for allocations, evaluations and
/// nodes (and UUIDs with an odd number of hex digits are padded by the server).
pub(crate) fn check_prefix(kind: &str, id: &str) -> anyhow::Result<()> {
    if id.len() < 2 {
        anyhow::bail!("{kind} identifier must contain at least two characters.");
    }
    Ok(())
}

/// Picks the exact match or the single prefix match among `items`.
pub(crate) fn resolve<T>(items: Vec<T>, id: &str, id_of: impl Fn(&T) -> &str) -> Resolved<T> {
    let mut items = items;
    if let Some(pos) = items.iter().position(|i| id_of(i) == id) {
        return Resolved::One(items.swap_remove(pos));
    }
    let mut matching: Vec<T> = items
        .into_iter()
        .filter(|i| id_of(i).starts_with(id))
        .collect();
    match matching.len() {
        0 => Resolved::None,
        1 => Resolved::One(matching.remove(0)),
        _ => Resolved::Many(matching),
    }
}
