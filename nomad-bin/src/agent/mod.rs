//! `nomad agent`: a server, a client, or both in one process (`-dev`).

mod catalog;
pub(crate) mod client;
mod config;
mod http;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use nomad_client::NodeSettings;
use tokio::sync::watch;

pub(crate) use config::AgentConfig;

/// `nomad agent` flags (Nomad's names).
#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    /// Development mode: server and client in one process, raw_exec enabled, data in a
    /// temporary directory, HTTP on 127.0.0.1:4646.
    #[arg(long)]
    dev: bool,
    /// An agent configuration file (HCL or JSON); may be repeated, later files win.
    #[arg(long = "config", value_name = "FILE")]
    config: Vec<PathBuf>,
    /// Where the agent keeps its state.
    #[arg(long = "data-dir", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The address every listener binds.
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// Run the server.
    #[arg(long)]
    server: bool,
    /// Run the client.
    #[arg(long)]
    client: bool,
    /// The region.
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// The datacenter.
    #[arg(long, value_name = "DC")]
    dc: Option<String>,
    /// The agent's name.
    #[arg(long = "node", value_name = "NAME")]
    node: Option<String>,
    /// The node class of the client.
    #[arg(long = "node-class", value_name = "CLASS")]
    node_class: Option<String>,
    /// Client metadata, `key=value`; may be repeated.
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    meta: Vec<String>,
    /// Servers a client-only agent talks to (HTTP addresses).
    #[arg(long = "servers", value_name = "ADDRS", value_delimiter = ',')]
    servers: Vec<String>,
    /// The log level (TRACE, DEBUG, INFO, WARN, ERROR).
    #[arg(long = "log-level", value_name = "LEVEL")]
    log_level: Option<String>,
}

impl AgentArgs {
    /// The configuration: `-dev` defaults, then the files, then the flags.
    fn resolve(&self) -> anyhow::Result<AgentConfig> {
        let mut cfg = if self.dev {
            AgentConfig::dev()
        } else {
            AgentConfig::default()
        };
        for f in &self.config {
            cfg = cfg.merge(AgentConfig::from_file(f)?);
        }
        let mut flags = AgentConfig {
            data_dir: self.data_dir.clone(),
            bind_addr: self.bind.clone(),
            region: self.region.clone(),
            datacenter: self.dc.clone(),
            name: self.node.clone(),
            log_level: self.log_level.clone(),
            ..AgentConfig::default()
        };
        if self.server {
            let mut s = cfg.server.clone().unwrap_or_default();
            s.enabled = true;
            flags.server = Some(s);
        }
        let mut meta = std::collections::BTreeMap::new();
        for m in &self.meta {
            let Some((k, v)) = m.split_once('=') else {
                bail!("-meta {m:?} is not of the form key=value");
            };
            meta.insert(k.to_string(), v.to_string());
        }
        if self.client || !meta.is_empty() || self.node_class.is_some() || !self.servers.is_empty()
        {
            flags.client = Some(config::ClientBlock {
                enabled: self.client,
                meta,
                node_class: self.node_class.clone().unwrap_or_default(),
                servers: self.servers.clone(),
                ..config::ClientBlock::default()
            });
        }
        let cfg = cfg.merge(flags);
        cfg.check()?;
        if !cfg.server_enabled() && !cfg.client_enabled() {
            bail!("Must specify either server, client or dev mode for the agent.");
        }
        Ok(cfg)
    }
}

/// Runs `nomad agent` until interrupted.
pub(crate) fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.resolve()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(args, cfg))
}

fn init_logging(level: &str) {
    let filter = match level.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug,hyper=info,h2=info,openraft=info,redb=info",
        "warn" => "warn",
        "error" => "error",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("NOMAD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .try_init();
}

async fn serve(args: AgentArgs, cfg: AgentConfig) -> anyhow::Result<ExitCode> {
    // The data directory: as configured, or a temporary one for -dev.
    let mut _temp: Option<tempfile::TempDir> = None;
    let data_dir = match &cfg.data_dir {
        Some(d) => d.clone(),
        None if args.dev => {
            let t = tempfile::Builder::new()
                .prefix("NomadClient")
                .tempdir()
                .context("creating a temporary data directory")?;
            let p = t.path().to_path_buf();
            _temp = Some(t);
            p
        }
        None => bail!("Must specify \"data_dir\" in the agent configuration or -data-dir"),
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let data_dir = data_dir.canonicalize().unwrap_or(data_dir);

    if cfg.config_files_loaded(&args.config) {
        println!("==> Loaded configuration from {}", join_paths(&args.config));
    } else {
        println!("==> No configuration files loaded");
    }
    println!("==> Starting Nomad agent...");

    let level = cfg.log_level.clone().unwrap_or_else(|| "INFO".into());
    let region = cfg.region.clone().unwrap_or_else(|| "global".into());
    let dc = cfg.datacenter.clone().unwrap_or_else(|| "dc1".into());
    let name = cfg.name.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "nomad".into())
    });
    let http_addr = cfg.http_addr();
    let rpc_port = cfg.ports.as_ref().and_then(|p| p.rpc).unwrap_or(4647);
    let serf_port = cfg.ports.as_ref().and_then(|p| p.serf).unwrap_or(4648);
    let (stop_tx, stop_rx) = watch::channel(false);

    // The server; the agent's listener answers its routes in process.
    let server = if cfg.server_enabled() {
        let mut sc = nomad_server::ServerConfig::new(data_dir.join("server"));
        sc.http_addr = None;
        sc.region.clone_from(&region);
        sc.datacenter.clone_from(&dc);
        sc.node_name.clone_from(&name);
        sc.advertise_rpc = format!("{}:{rpc_port}", advertise_ip(&cfg));
        if let Some(n) = cfg.server.as_ref().and_then(|s| s.num_schedulers) {
            sc.num_schedulers = n;
        }
        let server = nomad_server::Server::start(sc)
            .await
            .map_err(|e| anyhow::anyhow!("Error starting agent: server: {e}"))?;
        Some(server)
    } else {
        None
    };
    let route = match &server {
        Some(s) => http::ServerRoute::Local(s.clone()),
        None => http::ServerRoute::Remote(
            cfg.client
                .as_ref()
                .and_then(|c| c.servers.first().cloned())
                .map(|s| s.trim_start_matches("http://").to_string())
                .context("a client-only agent needs client.servers (or -servers)")?,
        ),
    };
    let alloc_root = cfg.client_enabled().then(|| client::alloc_root(&data_dir));
    let bound = http::AgentHttp::new(route.clone(), alloc_root)
        .with_identity(data_dir.clone(), cfg.server_enabled(), cfg.client_enabled())
        .serve(http_addr, stop_rx.clone())
        .await
        .map_err(|e| anyhow::anyhow!("Error starting agent: {e}"))?;
    let upstream = route.client_address(bound);

    init_logging(&level);

    let client_agent = if cfg.client_enabled() {
        let api = nomad_api::Client::new(nomad_api::Config::with_address(format!(
            "http://{upstream}"
        )))?;
        let client_cfg = cfg.client.clone().unwrap_or_default();
        let (agent, node) = client::ClientAgent::start(
            client::ClientAgentConfig {
                api,
                data_dir: data_dir.clone(),
                settings: NodeSettings {
                    id: String::new(),
                    name: name.clone(),
                    datacenter: dc.clone(),
                    node_class: client_cfg.node_class.clone(),
                    node_pool: client_cfg.node_pool.clone(),
                    meta: client_cfg.meta.clone(),
                    data_dir: Some(data_dir.clone()),
                },
                raw_exec: cfg.raw_exec_enabled(),
                http_addr: bound.to_string(),
                stop_allocs_on_shutdown: _temp.is_some(),
            },
            stop_rx.clone(),
        )
        .await?;
        Some((Arc::new(agent), node))
    } else {
        None
    };

    let ip = bound.ip();
    let summary = crate::format::kv(&[
        (
            "Advertise Addrs",
            format!(
                "HTTP: {bound}; RPC: {}:{rpc_port}; Serf: {}:{serf_port}",
                advertise_ip(&cfg),
                advertise_ip(&cfg)
            ),
        ),
        (
            "Bind Addrs",
            format!("HTTP: [{bound}]; RPC: {ip}:{rpc_port}; Serf: {ip}:{serf_port}"),
        ),
        ("Client", cfg.client_enabled().to_string()),
        ("Data Dir", data_dir.display().to_string()),
        ("Log Level", level.to_ascii_uppercase()),
        (
            "Node Id",
            client_agent
                .as_ref()
                .map(|(_, n)| n.id.clone())
                .unwrap_or_default()
                .to_string(),
        ),
        ("Region", format!("{region} (DC: {dc})")),
        ("Server", cfg.server_enabled().to_string()),
        ("Version", env!("CARGO_PKG_VERSION").to_string()),
    ]);
    println!("==> Nomad agent configuration:\n");
    for line in summary.lines() {
        println!("{line:>}", line = format!("    {line}"));
    }
    println!("\n==> Nomad agent started! Log data will stream in below:\n");
    tracing::info!(address = %bound, "agent: HTTP API listening");
    if cfg.raw_exec_enabled() {
        tracing::info!("agent: raw_exec driver enabled");
    }

    let signal = wait_for_signal().await;
    println!("==> Caught signal: {signal}");
    println!("==> Gracefully shutting down agent...");
    if let Some((agent, _)) = &client_agent {
        agent.shutdown().await;
    }
    stop_tx.send_replace(true);
    if let Some(s) = &server {
        s.shutdown();
    }
    drop(_temp);
    Ok(ExitCode::SUCCESS)
}

fn advertise_ip(cfg: &AgentConfig) -> String {
    let ip = cfg.bind_ip();
    if ip.is_unspecified() {
        "127.0.0.1".into()
    } else {
        ip.to_string()
    }
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl AgentConfig {
    fn config_files_loaded(&self, files: &[PathBuf]) -> bool {
        !files.is_empty()
    }
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "interrupt";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupt",
        _ = term.recv() => "terminated",
    }
}
