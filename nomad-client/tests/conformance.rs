//! The conformance kit run against the built-in drivers.

use std::sync::Arc;

use nomad_client::{MockDriver, MockHost, RawExecDriver};
use nomad_core::driver::TaskDriver;
use nomad_driver_conformance::{Conformance, TaskRecipes};
use serde_json::{json, Value};

/// Tasks for raw_exec: `/bin/sh` scripts.
struct RawExecTasks;

fn sh(script: &str, args: &[&str]) -> Value {
    let mut all = vec!["-c", script, "sh"];
    all.extend_from_slice(args);
    json!({ "command": "/bin/sh", "args": all })
}

impl TaskRecipes for RawExecTasks {
    fn runs_until_stopped(&self) -> Value {
        sh("echo ready; exec sleep 600", &[])
    }
    fn ignores_stop_signal(&self) -> Value {
        sh(
            "trap '' TERM INT; echo ready; while :; do sleep 0.1; done",
            &[],
        )
    }
    fn exits_with(&self, code: i32) -> Value {
        sh(&format!("exit {code}"), &[])
    }
    fn prints(&self, text: &str) -> Value {
        sh("printf %s \"$1\"", &[text])
    }
    fn prints_env(&self, name: &str) -> Value {
        json!({ "command": "printenv", "args": [name] })
    }
    fn writes_file(&self, dir_env: &str, file: &str, content: &str) -> Value {
        sh(
            "eval \"d=\\$$1\"; printf %s \"$3\" > \"$d/$2\"",
            &[dir_env, file, content],
        )
    }
}

/// Tasks for the mock driver.
struct MockTasks;

impl TaskRecipes for MockTasks {
    fn runs_until_stopped(&self) -> Value {
        json!({ "stdout_string": "ready\n" })
    }
    fn ignores_stop_signal(&self) -> Value {
        json!({ "stdout_string": "ready\n", "kill_after": "1h" })
    }
    fn exits_with(&self, code: i32) -> Value {
        json!({ "run_for": "10ms", "exit_code": code })
    }
    fn prints(&self, text: &str) -> Value {
        json!({ "run_for": "10ms", "stdout_string": text })
    }
    fn prints_env(&self, name: &str) -> Value {
        json!({ "run_for": "10ms", "stdout_env": name })
    }
    fn writes_file(&self, dir_env: &str, file: &str, content: &str) -> Value {
        json!({
            "run_for": "10ms",
            "write_file": { "path": format!("${{{dir_env}}}/{file}"), "content": content },
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_exec_passes_the_conformance_kit() {
    let report = Conformance::new(
        || Arc::new(RawExecDriver::enabled()) as Arc<dyn TaskDriver>,
        RawExecTasks,
    )
    .run()
    .await;
    println!("{report}");
    assert!(report.passed(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_passes_the_conformance_kit() {
    let host = MockHost::new();
    let report = Conformance::new(
        move || Arc::new(MockDriver::with_host(host.clone())) as Arc<dyn TaskDriver>,
        MockTasks,
    )
    .run()
    .await;
    println!("{report}");
    assert!(report.passed(), "{report}");
}
