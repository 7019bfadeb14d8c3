//! Reading job files: HCL2 (with variables, locals and functions) and the JSON API format.

use std::collections::BTreeMap;
use std::path::PathBuf;

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
