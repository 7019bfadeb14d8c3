//! Embedding the client agent without a server: hand an allocation to the runner and print
//! its tasks' states as they change.
//!
//! ```text
//! cargo run --example embed-client
//! ```
//!
//! The group has a prestart task that prepares a file, a main task that reads it, and a
//! poststop task that cleans up, all run with `raw_exec` in a temporary directory.

use std::collections::BTreeMap;
use std::sync::Arc;

use nomad_client::{ClientBuilder, RawExecDriver};
use nomad_core::job::{Job, RestartPolicy, Task, TaskGroup, TaskLifecycle};
use nomad_core::structs::Allocation;
use serde_json::json;

fn shell(name: &str, script: &str, hook: Option<&str>) -> Task {
    Task {
        name: name.into(),
        driver: "raw_exec".into(),
        config: BTreeMap::from([
            ("command".to_owned(), json!("/bin/sh")),
            ("args".to_owned(), json!(["-c", script])),
        ]),
        lifecycle: hook.map(|h| TaskLifecycle {
            hook: h.into(),
            sidecar: false,
        }),
        ..Task::default()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    // raw_exec runs tasks unisolated, so it is off unless the client enables it.
    let client = ClientBuilder::new(dir.path().join("alloc"))
        .state_dir(dir.path().join("state"))
        .driver(Arc::new(RawExecDriver::enabled()))
        .build()
        .await?;
    println!(
        "node {} ({} cores, drivers: {:?})",
        client.node().name,
        client
            .node()
            .attributes
            .get("cpu.numcores")
            .map_or("?", String::as_str),
        client.node().drivers.keys().collect::<Vec<_>>()
    );

    let job = Job {
        id: "hello".into(),
        name: "hello".into(),
        job_type: Some("batch".into()),
        task_groups: vec![TaskGroup {
            name: "greet".into(),
            restart_policy: Some(RestartPolicy {
                attempts: Some(0),
                mode: Some("fail".into()),
                ..RestartPolicy::default()
            }),
            tasks: vec![
                shell(
                    "prepare",
                    "echo \"hello from $NOMAD_TASK_NAME\" > \"$NOMAD_ALLOC_DIR/data/greeting\"",
                    Some("prestart"),
                ),
                shell(
                    "say",
                    "cat \"$NOMAD_ALLOC_DIR/data/greeting\"; sleep 1",
                    None,
                ),
                shell(
                    "tidy",
                    "rm \"$NOMAD_ALLOC_DIR/data/greeting\"",
                    Some("poststop"),
                ),
            ],
            ..TaskGroup::default()
        }],
        ..Job::default()
    };
    let alloc = Allocation {
        id: "2f1d4e6a-5b8c-4f7e-9a3d-0c1b2a3d4e5f".into(),
        name: "hello.greet[0]".into(),
        namespace: "default".into(),
        job_id: "hello".into(),
        task_group: "greet".into(),
        job: Some(std::sync::Arc::new(job)),
        desired_status: "run".into(),
        ..Allocation::default()
    };

    let handle = client.run_alloc(alloc)?;
    let mut states = handle.watch_states();
    let mut seen = BTreeMap::new();
    loop {
        let current = states.borrow_and_update().clone();
        for (task, state) in &current {
            let last = state.events.last().map_or("", |e| e.event_type.as_str());
            let line = format!("{:<8} {:<8} {}", task, state.state, last);
            if seen.get(task) != Some(&line) {
                println!("{line}");
                seen.insert(task.clone(), line);
            }
        }
        if current.len() == 3 && current.values().all(|s| s.state == "dead") {
            break;
        }
        if states.changed().await.is_err() {
            break;
        }
    }
    handle.wait().await;
    let (status, description) = handle.client_status();
    println!("allocation {status}: {description}");
    let log = std::fs::read_to_string(
        dir.path()
            .join("alloc")
            .join(handle.alloc_id())
            .join("alloc/logs/say.stdout.0"),
    )?;
    print!("say wrote: {log}");
    Ok(())
}
