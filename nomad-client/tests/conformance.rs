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

/// A mock driver with contract bugs: it accepts any config, kills instead of signalling,
/// refuses to destroy unknown tasks and pretends to recover.
struct BrokenDriver(MockDriver);

#[async_trait::async_trait]
impl TaskDriver for BrokenDriver {
    fn name(&self) -> &str {
        "broken"
    }
    fn capabilities(&self) -> nomad_core::driver::Capabilities {
        self.0.capabilities()
    }
    async fn fingerprint(&self) -> nomad_core::driver::Fingerprint {
        self.0.fingerprint().await
    }
    fn config_schema(&self) -> nomad_core::driver::ConfigSchema {
        self.0.config_schema()
    }
    fn validate_config(&self, _config: &Value) -> Result<(), nomad_core::driver::DriverError> {
        Ok(())
    }
    async fn start(
        &self,
        config: &nomad_core::driver::TaskConfig,
    ) -> Result<nomad_core::driver::StartedTask, nomad_core::driver::DriverError> {
        let mut config = config.clone();
        if let Value::Object(map) = &mut config.driver_config {
            map.retain(|key, _| key != "conformance_unknown_field");
        }
        self.0.start(&config).await
    }
    async fn wait(
        &self,
        task_id: &str,
    ) -> Result<nomad_core::driver::ExitResult, nomad_core::driver::DriverError> {
        self.0.wait(task_id).await
    }
    async fn stop(
        &self,
        task_id: &str,
        _timeout: std::time::Duration,
        _signal: &str,
    ) -> Result<(), nomad_core::driver::DriverError> {
        self.0
            .stop(task_id, std::time::Duration::ZERO, "SIGKILL")
            .await
    }
    async fn destroy(
        &self,
        task_id: &str,
        force: bool,
    ) -> Result<(), nomad_core::driver::DriverError> {
        self.0.inspect(task_id).await?;
        self.0.destroy(task_id, force).await
    }
    async fn inspect(
        &self,
        task_id: &str,
    ) -> Result<nomad_core::driver::TaskStatus, nomad_core::driver::DriverError> {
        self.0.inspect(task_id).await
    }
    async fn recover(
        &self,
        _handle: &nomad_core::driver::TaskHandle,
    ) -> Result<(), nomad_core::driver::DriverError> {
        Ok(())
    }
    async fn stats(
        &self,
        task_id: &str,
    ) -> Result<nomad_core::driver::TaskResourceUsage, nomad_core::driver::DriverError> {
        self.0.stats(task_id).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_catches_a_broken_driver() {
    use nomad_driver_conformance::Check;
    let host = MockHost::new();
    let report = Conformance::new(
        move || Arc::new(BrokenDriver(MockDriver::with_host(host.clone()))) as Arc<dyn TaskDriver>,
        MockTasks,
    )
    .run()
    .await;
    println!("{report}");
    let failed: Vec<Check> = report
        .failures()
        .into_iter()
        .map(|(check, _)| check)
        .collect();
    assert_eq!(
        failed,
        [
            Check::ValidateConfig,
            Check::StopWithSignal,
            Check::StopEscalatesToKill,
            Check::Destroy,
            Check::Recover,
            Check::UnknownTask,
        ],
        "{report}"
    );
    assert!(!report.passed());
    assert!(report.to_string().contains("FAIL recover"));
}
