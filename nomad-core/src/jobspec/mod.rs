//! Reading job files: HCL2 (with variables, locals and functions) and the JSON API format.
//!
//! [`parse_hcl`] evaluates `variable` and `locals` blocks, `-var` / `-var-file` /
//! `NOMAD_VAR_*` values and functions, leaves runtime interpolations such as
//! `${NOMAD_ADDR_db}` or `${attr.kernel.name}` for the client, and decodes the result into a
//! [`Job`]; every unknown block or key is an error naming it. [`parse_json`] reads the JSON
//! API format (PascalCase, with or without the `{"Job": {...}}` wrapper). Neither applies
//! defaults or validates: call [`Job::canonicalize`] and [`Job::validate`] for that.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::job::Job;
use crate::{Error, ValidationError};

mod decode;
mod eval;

/// What a job file is read with, beside its own text: the `-var`, `-var-file` and
/// `NOMAD_VAR_*` values of `nomad job run`, and where `file()` may read from.
#[derive(Debug, Clone, Default)]
pub struct ParseOptions {
    /// `-var name=value` pairs in the order given; a later pair for the same name wins.
    pub vars: Vec<(String, String)>,
    /// `-var-file` contents as `(file name, text)`, in the order given; a name ending in
    /// `.json` is read as JSON, any other as HCL.
    pub var_files: Vec<(String, String)>,
    /// The environment `NOMAD_VAR_<name>` values are read from. Nothing is read from the
    /// process environment unless the caller copies it here.
    pub env: BTreeMap<String, String>,
    /// The directory that `file()` and `fileexists()` resolve relative paths against;
    /// `None` makes those functions an error.
    pub base_dir: Option<PathBuf>,
}

/// Parses an HCL2 job file. `filename` is used in error messages.
pub fn parse_hcl(src: &str, filename: &str, opts: &ParseOptions) -> Result<Job, Error> {
    let body = eval::evaluate(src, filename, opts)?;
    decode::decode_job(&body, filename)
}

/// The largest JSON document [`parse_json`] reads, and how deep it may nest.
const MAX_JSON_DEPTH: usize = 128;

/// Parses a job in the JSON API format: a job object, or `{"Job": {...}}` as the register
/// endpoint takes it. `null` fields are read as absent, as Nomad's API does; unknown fields
/// are ignored, as Nomad's API does, so that newer clients keep working.
pub fn parse_json(src: &str, filename: &str) -> Result<Job, Error> {
    let value: Value = serde_json::from_str(src).map_err(|e| Error::Syntax {
        file: filename.to_string(),
        message: e.to_string(),
    })?;
    job_from_json_value(value, filename)
}

/// Like [`parse_json`], for a JSON value already parsed.
pub fn job_from_json_value(value: Value, filename: &str) -> Result<Job, Error> {
    let mut value = match value {
        Value::Object(mut m) if m.len() == 1 && m.contains_key("Job") => {
            m.remove("Job").unwrap_or(Value::Null)
        }
        other => other,
    };
    if !value.is_object() {
        return Err(Error::Syntax {
            file: filename.to_string(),
            message: "expected a JSON object holding a job".to_string(),
        });
    }
    if depth(&value) > MAX_JSON_DEPTH {
        return Err(Error::Syntax {
            file: filename.to_string(),
            message: format!("the document nests deeper than {MAX_JSON_DEPTH} levels"),
        });
    }
    strip_nulls(&mut value);
    serde_json::from_value(value).map_err(|e| {
        Error::Invalid(ValidationError::new(filename, format!("not a valid job: {e}")).into())
    })
}

/// Reads and parses a job file: `.json` files as JSON, anything else as HCL2. Relative
/// `file()` paths resolve against the file's directory unless `opts.base_dir` says otherwise.
pub fn parse_file(path: &Path, opts: &ParseOptions) -> Result<Job, Error> {
    let src = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    let name = path.display().to_string();
    if path.extension().is_some_and(|e| e == "json") {
        return parse_json(&src, &name);
    }
    let mut opts = opts.clone();
    if opts.base_dir.is_none() {
        opts.base_dir = Some(
            path.parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        );
    }
    parse_hcl(&src, &name, &opts)
}

fn depth(v: &Value) -> usize {
    // Iterative, so that a hostile document cannot overflow the stack here.
    let mut max = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
            Value::Object(o) => stack.extend(o.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    max
}

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            for x in m.values_mut() {
                strip_nulls(x);
            }
        }
        Value::Array(a) => {
            for x in a {
                strip_nulls(x);
            }
        }
        _ => {}
    }
}
