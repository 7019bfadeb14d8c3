//! The `nomad` command: the CLI and the agent, composing the orchestrator's crates.
//!
//! Flags follow Nomad's single-dash style (`-var`, `-output`); the double-dash forms work too.
//! API commands honour `NOMAD_ADDR`, `NOMAD_TOKEN`, `NOMAD_NAMESPACE` and `NOMAD_REGION`, and
//! the `-address`, `-token`, `-namespace` and `-region` flags.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod agent;
mod alloc;
mod api;
mod deployment;
mod format;
mod job;
mod job_remote;
mod misc;
mod node;

/// Command-line interface of the orchestrator.
#[derive(Debug, Parser)]
#[command(name = "nomad", version, about = "A workload orchestrator", long_about = None)]
struct Cli {
    #[command(flatten)]
    api: api::ApiFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an agent: server, client, or both (`-dev`).
    Agent(agent::AgentArgs),
    /// Work with jobs: run, plan, status, stop, validate, inspect.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Work with allocations: status, logs.
    #[command(subcommand)]
    Alloc(alloc::AllocCommand),
    /// Work with client nodes: status, drain, eligibility.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Work with evaluations: status.
    #[command(subcommand)]
    Eval(misc::EvalCommand),
    /// Work with deployments: list, status, promote, fail, pause, resume.
    #[command(subcommand)]
    Deployment(deployment::DeploymentCommand),
    /// Work with native service registrations: list, info.
    #[command(subcommand)]
    Service(misc::ServiceCommand),
    /// Work with servers: members.
    #[command(subcommand)]
    Server(misc::ServerCommand),
    /// Cluster operations: raft list-peers.
    #[command(subcommand)]
    Operator(misc::OperatorCommand),
    /// The status of jobs, or of the object an ID or prefix names.
    Status {
        /// A job, allocation, evaluation or node ID (or prefix).
        id: Option<String>,
    },
}

/// Rewrites Nomad-style single-dash long flags (`-var-file=x`) to the double-dash form clap
/// reads (`--var-file=x`). A lone `-` (standard input) and short flags (`-h`) are kept.
fn normalise_args(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut after_separator = false;
    for a in args {
        if after_separator {
            out.push(a);
            continue;
        }
        if a == "--" {
            after_separator = true;
            out.push(a);
            continue;
        }
        let single_dash_long = a.starts_with('-')
            && !a.starts_with("--")
            && a.len() > 2
            && a.chars().nth(1).is_some_and(|c| c.is_ascii_alphabetic());
        if single_dash_long {
            out.push(format!("-{a}"));
        } else {
            out.push(a);
        }
    }
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(normalise_args(std::env::args()));
    let result = match cli.command {
        Command::Agent(args) => agent::run(args),
        Command::Job(cmd) => job::run(cmd, &cli.api),
        other => run_api(other, &cli.api),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs an API command on a single-threaded runtime.
fn run_api(cmd: Command, flags: &api::ApiFlags) -> anyhow::Result<ExitCode> {
    let api = flags.connect()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cmd {
            Command::Alloc(c) => alloc::run(c, &api).await,
            Command::Node(c) => node::run(c, &api).await,
            Command::Eval(c) => misc::eval(c, &api).await,
            Command::Deployment(c) => deployment::run(c, &api).await,
            Command::Service(c) => misc::service(c, &api).await,
            Command::Server(c) => misc::server(c, &api).await,
            Command::Operator(c) => misc::operator(c, &api).await,
            Command::Status { id } => misc::status(id, &api).await,
            Command::Agent(_) | Command::Job(_) => Ok(ExitCode::SUCCESS),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        let args = [
            "nomad", "job", "run", "-output", "-var=a=b", "-", "-h", "--x", "--", "-y",
        ]
        .map(String::from);
        assert_eq!(
            normalise_args(args.into_iter()),
            [
                "nomad",
                "job",
                "run",
                "--output",
                "--var=a=b",
                "-",
                "-h",
                "--x",
                "--",
                "-y"
            ]
        );
    }
}
