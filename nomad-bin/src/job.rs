//! `nomad job ...`: run, plan, status, stop, validate, inspect.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use nomad_core::job::Job;
use nomad_core::jobspec::{parse_hcl, parse_json, ParseOptions};
use nomad_core::Error;

/// `nomad job` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum JobCommand {
    /// Check a job file: syntax, variables, and every rule the server enforces.
    Validate(JobFileArgs),
    /// Submit a job and follow its evaluation and deployment; with -output, print the API
    /// JSON instead of submitting.
    Run {
        /// Print the job in the JSON API format (`{"Job": ...}`) and do not submit it.
        #[arg(long)]
        output: bool,
        /// Return after submitting, without following the evaluation.
        #[arg(long)]
        detach: bool,
        /// Show full IDs.
        #[arg(long)]
        verbose: bool,
        /// Submit only if the job's modify index is this (from `job plan`).
        #[arg(long = "check-index", value_name = "INDEX")]
        check_index: Option<u64>,
        #[command(flatten)]
        file: JobFileArgs,
    },
    /// Dry-run the scheduler: what submitting the job would change, and whether it places.
    /// Exit codes: 0 no changes, 1 changes, 255 error.
    Plan {
        /// Show full IDs.
        #[arg(long)]
        verbose: bool,
        #[command(flatten)]
        file: JobFileArgs,
    },
    /// Jobs, or one job's summary, deployment and allocations.
    Status {
        /// Show full IDs.
        #[arg(long)]
        verbose: bool,
        /// A job ID or prefix; every job when omitted.
        id: Option<String>,
    },
    /// Stop a job: its allocations are stopped.
    Stop {
        /// Remove the job from the state as well.
        #[arg(long)]
        purge: bool,
        /// Return after stopping, without following the evaluation.
        #[arg(long)]
        detach: bool,
        /// Show full IDs.
        #[arg(long)]
        verbose: bool,
        /// The job ID or prefix.
        id: String,
    },
    /// Print a submitted job in the JSON API format.
    Inspect {
        /// The job ID or prefix.
        id: String,
    },
    /// Submit an earlier version of a job again, as its next version.
    Revert {
        /// Return after submitting, without following the evaluation.
        #[arg(long)]
        detach: bool,
        /// Show full IDs.
        #[arg(long)]
        verbose: bool,
        /// The job ID or prefix.
        id: String,
        /// The version to go back to (`nomad job status` and the versions API list them).
        version: u64,
    },
}

/// A job file and the values its variables take.
#[derive(Debug, Args)]
pub(crate) struct JobFileArgs {
    /// A variable value, `name=value`; may be repeated.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
    /// A file of variable values (HCL, or JSON when it ends in .json); may be repeated.
    #[arg(long = "var-file", value_name = "FILE")]
    var_files: Vec<PathBuf>,
    /// Read the file as JSON even if its name does not end in .json.
    #[arg(long)]
    json: bool,
    /// The job file (HCL2 or JSON); `-` reads standard input.
    pub(crate) file: String,
}

pub(crate) fn run(cmd: JobCommand, flags: &crate::api::ApiFlags) -> anyhow::Result<ExitCode> {
    let on_server = |cmd: JobCommand| -> anyhow::Result<ExitCode> {
        let api = flags.connect()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(crate::job_remote::run(cmd, &api))
    };
    match cmd {
        JobCommand::Validate(args) => {
            let job = match load(&args) {
                Ok(job) => job,
                Err(e) => return Ok(report("Error getting job struct", &e)),
            };
            match job.validate() {
                Ok(()) => {
                    print_out("Job validation successful")?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(errs) => Ok(report("Job validation errors", &Error::Invalid(errs))),
            }
        }
        JobCommand::Plan { .. } => match on_server(cmd) {
            Ok(code) => Ok(code),
            Err(e) => {
                eprintln!("Error: {e:#}");
                Ok(ExitCode::from(255))
            }
        },
        JobCommand::Run { output: false, .. }
        | JobCommand::Status { .. }
        | JobCommand::Stop { .. }
        | JobCommand::Inspect { .. }
        | JobCommand::Revert { .. } => on_server(cmd),
        JobCommand::Run { file, .. } => {
            let job = match load(&file) {
                Ok(job) => job,
                Err(e) => return Ok(report("Error getting job struct", &e)),
            };
            /// The body of `PUT /v1/jobs`.
            #[derive(serde::Serialize)]
            struct RegisterRequest<'a> {
                #[serde(rename = "Job")]
                job: &'a Job,
            }
            let text = serde_json::to_string_pretty(&RegisterRequest { job: &job })?;
            print_out(&text)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes a line to standard output; a closed pipe (`| head`) ends output quietly.
pub(crate) fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Prints every error under a heading, as Nomad does, and gives the failing exit code.
pub(crate) fn report(heading: &str, e: &Error) -> ExitCode {
    match e {
        Error::Invalid(errs) => {
            eprintln!("{heading}:");
            eprintln!(
                "{} error{} occurred:",
                errs.len(),
                if errs.len() == 1 { "" } else { "s" }
            );
            for err in errs.iter() {
                eprintln!("\t* {err}");
            }
        }
        other => eprintln!("{heading}: {other}"),
    }
    ExitCode::from(1)
}

/// Reads, parses and canonicalises the job file with its variables.
pub(crate) fn load(args: &JobFileArgs) -> Result<Job, Error> {
    let (src, name, dir) = if args.file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|source| Error::Io {
                path: "<stdin>".into(),
                source,
            })?;
        (s, "<stdin>".to_string(), PathBuf::from("."))
    } else {
        let path = Path::new(&args.file);
        let s = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: args.file.clone(),
            source,
        })?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        (s, args.file.clone(), dir)
    };
    let mut opts = ParseOptions {
        base_dir: Some(dir),
        ..ParseOptions::default()
    };
    for v in &args.vars {
        let Some((k, val)) = v.split_once('=') else {
            return Err(Error::Invalid(
                nomad_core::ValidationError::new(
                    "-var",
                    format!("{v:?} is not of the form name=value"),
                )
                .into(),
            ));
        };
        opts.vars.push((k.trim().to_string(), val.to_string()));
    }
    for f in &args.var_files {
        let text = std::fs::read_to_string(f).map_err(|source| Error::Io {
            path: f.display().to_string(),
            source,
        })?;
        opts.var_files.push((f.display().to_string(), text));
    }
    opts.env = std::env::vars()
        .filter(|(k, _)| k.starts_with("NOMAD_VAR_"))
        .collect::<BTreeMap<_, _>>();
    let is_json = args.json || name.ends_with(".json") || src.trim_start().starts_with('{');
    let mut job = if is_json {
        parse_json(&src, &name)?
    } else {
        parse_hcl(&src, &name, &opts)?
    };
    job.canonicalize();
    Ok(job)
}
