//! Any text as an HCL job file: parsing returns, and a job that parses passes
//! [`nomad_core_fuzz::check_parsed_job`].
#![no_main]

use libfuzzer_sys::fuzz_target;
use nomad_core::jobspec::{parse_hcl, ParseOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(job) = parse_hcl(src, "fuzz.nomad.hcl", &ParseOptions::default()) {
        nomad_core_fuzz::check_parsed_job(job);
    }
});
