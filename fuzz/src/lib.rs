//! What the fuzz targets check of every job they manage to read.
//!
//! A job that parses must survive the JSON API format unchanged, before and after
//! [`Job::canonicalize`]; canonicalising twice must change nothing the second time; and
//! [`Job::validate`] must return, with or without errors. Any panic or failed assertion is a
//! finding.

use nomad_core::job::Job;
use nomad_core::jobspec::parse_json;

/// Checks a job that was read from fuzzed input.
pub fn check_parsed_job(mut job: Job) {
    assert_json_round_trip(&job, "parsed");
    job.canonicalize();
    assert_json_round_trip(&job, "canonical");
    check_canonical_job(job);
}

/// Checks a canonicalised job: canonicalising again changes nothing, and validation returns.
pub fn check_canonical_job(mut job: Job) {
    let once = job.clone();
    job.canonicalize();
    assert_eq!(job, once, "canonicalize is not idempotent");
    let _ = job.validate();
}

/// The job's JSON reads back as the same job.
pub fn assert_json_round_trip(job: &Job, stage: &str) {
    let text = match serde_json::to_string(job) {
        Ok(text) => text,
        Err(e) => panic!("{stage} job does not serialise: {e}"),
    };
    match parse_json(&text, "roundtrip.json") {
        Ok(back) => assert_eq!(&back, job, "{stage} job changed in the JSON round trip"),
        Err(e) => panic!("{stage} job's own JSON is refused: {e}\n{text}"),
    }
}
