//! Conformance against a corpus of real job files (`../shared/corpus`, see its SOURCES.md).
//!
//! * every parser fixture upstream accepts (`ok` in EXPECTATIONS.tsv) parses, and after
//!   canonicalisation validates, except for the validation errors listed for it in
//!   `tests/corpus/validation.tsv` (fixtures that are deliberately partial jobs, which
//!   Nomad's server would refuse for the same reasons);
//! * every fixture upstream rejects is rejected, with an error naming the block or field;
//! * every other job file parses, or is rejected naming the feature as unsupported, or is
//!   listed in `tests/corpus/validation.tsv` with the error it is expected to get.
//!
//! The test prints each file it checks and stops at the first surprise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nomad_core::jobspec::{parse_file, ParseOptions};
use nomad_core::Error;

fn corpus_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("NOMAD_CORPUS_DIR") {
        return Some(PathBuf::from(dir));
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The workspace sits beside `shared/` in a checkout and in CI.
    let candidate = here.join("../../shared/corpus");
    candidate.is_dir().then_some(candidate)
}

/// Expected outcomes beyond EXPECTATIONS.tsv: `file<TAB>parse|validate<TAB>text`, meaning the
/// file is expected to fail at that stage with an error containing the text.
fn local_expectations() -> BTreeMap<String, Vec<(String, String)>> {
    let text = include_str!("corpus/validation.tsv");
    let mut map: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut parts = line.splitn(3, '\t');
        let (Some(file), Some(stage), Some(msg)) = (parts.next(), parts.next(), parts.next())
        else {
            panic!("bad line in tests/corpus/validation.tsv: {line:?}");
        };
        map.entry(file.to_string())
            .or_default()
            .push((stage.to_string(), msg.to_string()));
    }
    map
}

#[derive(Debug)]
enum Outcome {
    Valid,
    ParseError(Error),
    Invalid(Vec<String>),
}

fn check(path: &Path) -> Outcome {
    match parse_file(path, &ParseOptions::default()) {
        Err(e) => Outcome::ParseError(e),
        Ok(mut job) => {
            job.canonicalize();
            match job.validate() {
                Ok(()) => Outcome::Valid,
                Err(errs) => Outcome::Invalid(errs.iter().map(ToString::to_string).collect()),
            }
        }
    }
}

/// Every message must say where: a path in the job (`job "x" ...`), or the file, or a key.
fn names_where(messages: &[String]) -> bool {
    messages.iter().all(|m| {
        m.starts_with("job") || m.contains(".hcl") || m.contains(".nomad") || m.contains('"')
    })
}

fn error_lines(e: &Error) -> Vec<String> {
    match e {
        Error::Invalid(errs) => errs.iter().map(ToString::to_string).collect(),
        other => vec![other.to_string()],
    }
}

/// Compares an outcome with the local expectations for a file; returns a surprise, if any.
fn against_local(
    name: &str,
    outcome: &Outcome,
    local: &BTreeMap<String, Vec<(String, String)>>,
) -> Option<String> {
    let expected = local.get(name).cloned().unwrap_or_default();
    let (stage, got) = match outcome {
        Outcome::Valid => {
            return (!expected.is_empty())
                .then(|| format!("{name}: expected {expected:?}, but it is valid"));
        }
        Outcome::ParseError(e) => ("parse", error_lines(e)),
        Outcome::Invalid(m) => ("validate", m.clone()),
    };
    if expected.is_empty() {
        // Unlisted files may only be refused for an unsupported feature.
        if got.iter().all(|m| m.contains("not supported")) && names_where(&got) {
            return None;
        }
        return Some(format!(
            "{name}: unexpected {stage} failure:\n  {}",
            got.join("\n  ")
        ));
    }
    for m in &got {
        if !expected
            .iter()
            .any(|(s, e)| s == stage && m.contains(e.as_str()))
        {
            return Some(format!(
                "{name}: {stage} error not listed in tests/corpus/validation.tsv:\n  {m}"
            ));
        }
    }
    for (s, e) in &expected {
        if !got.iter().any(|m| s == stage && m.contains(e.as_str())) {
            return Some(format!(
                "{name}: expected a {s} error containing {e:?}, got:\n  {}",
                got.join("\n  ")
            ));
        }
    }
    None
}

#[test]
fn corpus_conformance() {
    let Some(corpus) = corpus_dir() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the job corpus (../shared/corpus) is missing; CI must have it"
        );
        eprintln!("SKIPPED: no ../shared/corpus beside the workspace (set NOMAD_CORPUS_DIR)");
        return;
    };
    let local = local_expectations();
    let tsv = std::fs::read_to_string(corpus.join("nomad/_expected/EXPECTATIONS.tsv"))
        .expect("EXPECTATIONS.tsv");
    let mut checked = std::collections::BTreeSet::new();
    let mut count = 0;

    let mut section = "jobspec/test-fixtures";
    for line in tsv.lines() {
        if line.starts_with("# jobspec2/") {
            section = "jobspec2/test-fixtures";
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, expect) = (cols[0], cols[1]);
        let note = cols.get(3).copied().unwrap_or("");
        let rel = format!("nomad/{section}/{file}");
        let path = corpus.join(&rel);
        println!("checking {rel} (upstream: {expect})");
        checked.insert(path.clone());
        count += 1;
        let outcome = check(&path);
        match expect {
            "ok" => {
                if let Some(s) = against_local(&rel, &outcome, &local) {
                    surprise(s);
                }
                assert!(
                    !matches!(outcome, Outcome::ParseError(_)),
                    "{rel}: upstream parses it, we do not: {outcome:?}"
                );
            }
            "error" => {
                let msgs = match &outcome {
                    Outcome::Valid => {
                        surprise(format!("{rel}: upstream rejects it, we accept it"));
                        continue;
                    }
                    Outcome::ParseError(e) => error_lines(e),
                    Outcome::Invalid(m) => m.clone(),
                };
                assert!(
                    names_where(&msgs),
                    "{rel}: errors do not say where: {msgs:?}"
                );
                // Where upstream asserts a message, ours must carry its substance.
                let key = if note.contains("naming requirements") {
                    Some("does not conform to naming requirements")
                } else if note.contains("port label collision") {
                    Some("found a port label collision")
                } else if note.contains("nterval") {
                    Some("\"nterval\"")
                } else {
                    None
                };
                if let Some(k) = key {
                    assert!(
                        msgs.iter().any(|m| m.contains(k)),
                        "{rel}: expected an error containing {k:?}, got {msgs:?}"
                    );
                }
                println!("  rejected: {}", msgs.join(" | "));
            }
            _ => {
                if let Some(s) = against_local(&rel, &outcome, &local) {
                    surprise(s);
                }
            }
        }
    }

    // Every other job file in the corpus.
    let mut others = Vec::new();
    collect(&corpus.join("nomad"), &mut others);
    collect(&corpus.join("nomad-upstream"), &mut others);
    others.sort();
    for path in others {
        if checked.contains(&path) {
            continue;
        }
        let rel = path
            .strip_prefix(&corpus)
            .unwrap_or(&path)
            .display()
            .to_string();
        // Variable files of the job submission tests are not jobs.
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if rel.contains("jobsubmissions/input/") && ["x.hcl", "y.hcl", "z.hcl"].contains(&file_name)
        {
            println!("skipping {rel} (a variable file, not a job)");
            continue;
        }
        println!("checking {rel}");
        count += 1;
        let outcome = check(&path);
        if let Some(s) = against_local(&rel, &outcome, &local) {
            surprise(s);
        }
    }
    println!("{count} job files checked");
    let n = SURPRISES.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(n, 0, "{n} surprises");
    assert!(
        count > 250,
        "expected the whole corpus, checked only {count}"
    );
}

/// Fails at the first surprise; with NOMAD_CORPUS_ALL set, prints every surprise instead (to
/// review a parser change against the whole corpus) and fails at the end.
fn surprise(s: String) {
    if std::env::var_os("NOMAD_CORPUS_ALL").is_some() {
        println!("SURPRISE {s}");
        SURPRISES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    } else {
        panic!("{s}");
    }
}

static SURPRISES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "_expected") {
                continue;
            }
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "hcl" || x == "nomad") {
            out.push(p);
        }
    }
}

#[test]
fn json_examples() {
    let Some(corpus) = corpus_dir() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the job corpus is missing"
        );
        eprintln!("SKIPPED: no ../shared/corpus beside the workspace");
        return;
    };
    let dir = corpus.join("nomad-json/command/testdata");
    let mut good = parse_file(&dir.join("example-short.json"), &ParseOptions::default())
        .expect("example-short.json parses");
    good.canonicalize();
    good.validate().expect("example-short.json validates");

    let mut bad = parse_file(
        &dir.join("example-short-bad.json"),
        &ParseOptions::default(),
    )
    .expect("example-short-bad.json is well-formed");
    bad.canonicalize();
    let errs: Vec<String> = bad
        .validate()
        .expect_err("example-short-bad.json must be rejected")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        errs.iter()
            .any(|e| e.contains("\"bad example\" contains a space")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("missing datacenters")),
        "{errs:?}"
    );
}
