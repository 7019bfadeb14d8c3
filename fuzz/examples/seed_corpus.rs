//! Fills `fuzz/corpus/<target>/` with seed inputs taken from the conformance corpus
//! (`../shared/corpus` beside the workspace, or `NOMAD_CORPUS_DIR`): a handful of HCL job
//! files for `hcl_parse`, the corpus's JSON jobs plus the JSON of every HCL seed that parses
//! for `json_parse` and `validate`. The copies are not committed (`fuzz/corpus` is ignored).
//!
//! Run from the workspace root: `cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus`

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use nomad_core::jobspec::{parse_file, ParseOptions};

/// Job files that between them use most blocks of the job specification.
const HCL_SEEDS: &[&str] = &[
    "nomad/jobspec/test-fixtures/basic.hcl",
    "nomad/jobspec/test-fixtures/multi-network.hcl",
    "nomad/jobspec/test-fixtures/parameterized_job.hcl",
    "nomad/jobspec/test-fixtures/periodic-crons.hcl",
    "nomad/jobspec/test-fixtures/reschedule-job.hcl",
    "nomad/jobspec/test-fixtures/service-check-restart.hcl",
    "nomad/jobspec/test-fixtures/task-nested-config.hcl",
    "nomad/jobspec/test-fixtures/tg-scaling-policy.hcl",
    "nomad/jobspec/test-fixtures/tg-service-connect-proxy.hcl",
    "nomad/jobspec/test-fixtures/multiregion.hcl",
    "nomad/jobspec2/test-fixtures/config-compatibility.hcl",
    "nomad/jobspec2/test-fixtures/template-wait-config.hcl",
];

const JSON_SEEDS: &[&str] = &[
    "nomad-json/command/testdata/example-short.json",
    "nomad-json/command/testdata/example-short-bad.json",
];

fn corpus_dir() -> PathBuf {
    match std::env::var_os("NOMAD_CORPUS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
    }
}

fn seed_name(rel: &str) -> String {
    rel.replace('/', "_")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join(name), bytes)
}

fn main() -> ExitCode {
    let corpus = corpus_dir();
    if !corpus.is_dir() {
        eprintln!("no conformance corpus at {}", corpus.display());
        return ExitCode::FAILURE;
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let (hcl_dir, json_dir, validate_dir) = (
        out.join("hcl_parse"),
        out.join("json_parse"),
        out.join("validate"),
    );
    let mut written = 0;
    let mut run = || -> std::io::Result<()> {
        for rel in HCL_SEEDS {
            let path = corpus.join(rel);
            let Ok(text) = fs::read(&path) else {
                eprintln!("skipped {rel}: not in the corpus");
                continue;
            };
            write(&hcl_dir, &seed_name(rel), &text)?;
            written += 1;
            // The JSON of the parsed job, before and after canonicalisation.
            let Ok(mut job) = parse_file(&path, &ParseOptions::default()) else {
                continue;
            };
            for stage in ["parsed", "canonical"] {
                if stage == "canonical" {
                    job.canonicalize();
                }
                let json = serde_json::to_vec_pretty(&job)?;
                let name = format!("{}.{stage}.json", seed_name(rel));
                write(&json_dir, &name, &json)?;
                write(&validate_dir, &name, &json)?;
                written += 2;
            }
        }
        for rel in JSON_SEEDS {
            let Ok(text) = fs::read(corpus.join(rel)) else {
                eprintln!("skipped {rel}: not in the corpus");
                continue;
            };
            write(&json_dir, &seed_name(rel), &text)?;
            write(&validate_dir, &seed_name(rel), &text)?;
            written += 2;
        }
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("could not write the seeds under {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    println!("wrote {written} seed files under {}", out.display());
    ExitCode::SUCCESS
}
