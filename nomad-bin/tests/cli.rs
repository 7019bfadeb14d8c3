//! The `nomad` binary, run as a process: exit codes, printed errors and JSON output.

use std::process::{Command, Output};

fn nomad(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nomad"));
    cmd.args(args).env_remove("NOMAD_VAR_greeting");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the nomad binary runs")
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).expect("write job file");
    p.display().to_string()
}

const JOB: &str = r#"
variable "greeting" {
  type    = string
  default = "hello"
}

job "web" {
  datacenters = ["dc1"]
  group "app" {
    network {
      port "http" { static = 8080 }
    }
    task "server" {
      driver = "raw_exec"
      config {
        command = "/bin/echo"
        args    = ["${var.greeting}", "${NOMAD_PORT_http}"]
      }
    }
  }
}
"#;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn args_of(o: &Output) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON output");
    v["Job"]["TaskGroups"][0]["Tasks"][0]["Config"]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn validate_accepts_a_valid_job() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(&dir, "web.nomad.hcl", JOB);
    let o = nomad(&["job", "validate", &f], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("Job validation successful"));
}

#[test]
fn validate_prints_every_error_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        &dir,
        "bad.nomad.hcl",
        r#"job "web" {
  priority = 500
  group "app" {
    task "db" {
      driver = "raw_exec"
      lifecycle { hook = "pre" }
    }
    task "main" {
      resources { memory = 1 }
    }
  }
}"#,
    );
    let o = nomad(&["job", "validate", &f], &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("4 errors occurred"), "{err}");
    assert!(err.contains(
        r#"job "web" group "app" task "db": lifecycle.hook "pre" is not one of prestart, poststart, poststop"#
    ));
    assert!(
        err.contains(r#"job "web" group "app" task "main": missing driver"#),
        "{err}"
    );
    assert!(
        err.contains("priority 500 must be between 1 and 100"),
        "{err}"
    );
    assert!(err.contains("resources.memory 1 MB"), "{err}");
}

#[test]
fn unknown_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        &dir,
        "typo.nomad.hcl",
        r#"job "web" {
  group "app" {
    task "db" {
      driver = "raw_exec"
      kill_timout = "5s"
    }
  }
}"#,
    );
    let o = nomad(&["job", "validate", &f], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(
            r#"job "web" group "app" task "db": unknown key "kill_timout"; did you mean "kill_timeout"?"#
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn run_output_prints_the_api_json_with_variables_applied() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(&dir, "web.nomad.hcl", JOB);
    let o = nomad(&["job", "run", "-output", &f], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(args_of(&o), ["hello", "${NOMAD_PORT_http}"]);

    // -var wins over NOMAD_VAR_, which wins over the default.
    let o = nomad(
        &["job", "run", "-output", &f],
        &[("NOMAD_VAR_greeting", "from-env")],
    );
    assert_eq!(args_of(&o), ["from-env", "${NOMAD_PORT_http}"]);
    let o = nomad(
        &["job", "run", "-output", "-var", "greeting=from-flag", &f],
        &[("NOMAD_VAR_greeting", "from-env")],
    );
    assert_eq!(args_of(&o), ["from-flag", "${NOMAD_PORT_http}"]);

    // A var file.
    let vars = write(&dir, "vars.hcl", "greeting = \"from-file\"\n");
    let o = nomad(&["job", "run", "-output", "-var-file", &vars, &f], &[]);
    assert_eq!(args_of(&o), ["from-file", "${NOMAD_PORT_http}"]);
}

#[test]
fn run_output_round_trips_through_json_input() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(&dir, "web.nomad.hcl", JOB);
    let first = nomad(&["job", "run", "-output", &f], &[]);
    let json = write(&dir, "web.json", &stdout(&first));
    let second = nomad(&["job", "run", "-output", &json], &[]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(stdout(&first), stdout(&second));
}

#[test]
fn bad_flags_and_files_are_reported() {
    let o = nomad(&["job", "validate", "/nonexistent/job.hcl"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/nonexistent/job.hcl"),
        "{}",
        stderr(&o)
    );

    let dir = tempfile::tempdir().unwrap();
    let f = write(&dir, "web.nomad.hcl", JOB);
    let o = nomad(&["job", "run", "-output", "-var", "novalue", &f], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not of the form name=value"),
        "{}",
        stderr(&o)
    );

    let o = nomad(&["job", "run", "-output", "-var", "undeclared=1", &f], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("undeclared"), "{}", stderr(&o));

    let o = nomad(&["job", "validate", "-no-such-flag", &f], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no-such-flag"), "{}", stderr(&o));
}

#[test]
fn the_example_job_validates() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/jobs/web.nomad.hcl"
    );
    let o = nomad(&["job", "validate", example], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
}
