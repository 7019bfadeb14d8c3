//! The `nomad` command: the CLI and (in time) the agent, composing the orchestrator's crates.
//!
//! Flags follow Nomad's single-dash style (`-var`, `-output`); the double-dash forms work too.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod job;

/// Command-line interface of the orchestrator.
#[derive(Debug, Parser)]
#[command(name = "nomad", version, about = "A workload orchestrator", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with jobs: validate, run.
    #[command(subcommand)]
    Job(job::JobCommand),
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
        Command::Job(cmd) => job::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        let args = ["nomad", "job", "run", "-output", "-var=a=b", "-", "-h", "--x", "--", "-y"]
            .map(String::from);
        assert_eq!(
            normalise_args(args.into_iter()),
            ["nomad", "job", "run", "--output", "--var=a=b", "-", "-h", "--x", "--", "-y"]
        );
    }
}
