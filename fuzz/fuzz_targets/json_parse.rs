//! Any bytes as a job in the JSON API format: parsing returns, and a job that parses passes
//! [`nomad_core_fuzz::check_parsed_job`].
#![no_main]

use libfuzzer_sys::fuzz_target;
use nomad_core::jobspec::parse_json;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(job) = parse_json(src, "fuzz.json") {
        nomad_core_fuzz::check_parsed_job(job);
    }
});
