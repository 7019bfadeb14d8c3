//! Hooks through the client: a leader task, services and templates wired to the service
//! provider (re-render with change_mode), embedders' hooks, and hook state that survives an
//! agent restart.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nomad_client::hooks::{HookState, Named, TaskContext};
use nomad_client::{
    ClientBuilder, HookError, MockDriver, MockHost, PrestartResponse, RawExecDriver, TaskHook,
};
use nomad_core::job::{
    Duration as JobDuration, Job, RestartPolicy, Service, Task, TaskGroup, Template,
};
use nomad_core::structs::{
    AllocatedPortMapping, AllocatedResources, AllocatedSharedResources, Allocation,
    ServiceRegistration,
};
use nomad_discovery::{InMemoryProvider, ServiceProvider, ServiceQuery};
use serde_json::json;

fn sh(name: &str, script: &str) -> Task {
    Task {
        name: name.into(),
        driver: "raw_exec".into(),
        config: BTreeMap::from([
            ("command".to_owned(), json!("/bin/sh")),
            ("args".to_owned(), json!(["-c", script])),
        ]),
        kill_timeout: Some(JobDuration::from_secs(2)),
        ..Task::default()
    }
}

fn alloc(id: &str, job_type: &str, tasks: Vec<Task>) -> Allocation {
    let job = Job {
        id: format!("job-{id}"),
        name: format!("job-{id}"),
        job_type: Some(job_type.into()),
        task_groups: vec![TaskGroup {
            name: "group".into(),
            tasks,
            restart_policy: Some(RestartPolicy {
                attempts: Some(0),
                mode: Some("fail".into()),
                ..RestartPolicy::default()
            }),
            ..TaskGroup::default()
        }],
        ..Job::default()
    };
    Allocation {
        id: id.into(),
        name: format!("job-{id}.group[0]"),
        namespace: "default".into(),
        job_id: job.id.as_str().into(),
        task_group: "group".into(),
        job: Some(std::sync::Arc::new(job)),
        desired_status: "run".into(),
        ..Allocation::default()
    }
}

async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leader_stops_the_other_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let client = ClientBuilder::new(dir.path().join("alloc"))
        .driver(Arc::new(RawExecDriver::enabled()))
        .build()
        .await
        .unwrap();
    let mut leader = sh("leader", "sleep 0.2");
    leader.leader = true;
    let follower = sh("follower", "exec sleep 60");
    let handle = client
        .run_alloc(alloc("leader", "batch", vec![leader, follower]))
        .unwrap();
    within("the allocation", handle.wait()).await;
    let states = handle.task_states();
    let kinds: Vec<&str> = states["follower"]
        .events
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "Received",
            "Task Setup",
            "Started",
            "Leader Task Dead",
            "Killing",
            "Terminated",
            "Killed"
        ]
    );
    assert!(!states["follower"].failed);
    assert_eq!(handle.client_status().0, "complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_register_and_templates_re_render_from_the_provider() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(InMemoryProvider::new());
    let client = ClientBuilder::new(dir.path().join("alloc"))
        .driver(Arc::new(RawExecDriver::enabled()))
        .service_provider(provider.clone())
        .build()
        .await
        .unwrap();
    let mut web = sh("web", "exec sleep 60");
    web.services = vec![Service {
        name: "web".into(),
        port_label: "http".into(),
        tags: vec!["v1".into()],
        provider: "nomad".into(),
        ..Service::default()
    }];
    web.templates = vec![Template {
        dest_path: "local/upstreams.txt".into(),
        embedded_tmpl: "{{ range nomadService \"db\" }}{{ .Address }}:{{ .Port }}\n{{ end }}"
            .into(),
        change_mode: "restart".into(),
        perms: "644".into(),
        ..Template::default()
    }];
    let mut a = alloc("svc", "service", vec![web]);
    a.allocated_resources = Some(AllocatedResources {
        shared: AllocatedSharedResources {
            ports: vec![AllocatedPortMapping {
                label: "http".into(),
                value: 25123,
                to: 0,
                host_ip: "127.0.0.1".into(),
            }],
            ..AllocatedSharedResources::default()
        },
        ..AllocatedResources::default()
    });
    let handle = client.run_alloc(a).unwrap();
    let mut states = handle.watch_states();
    within(
        "running",
        states.wait_for(|s| s.get("web").is_some_and(|t| t.state == "running")),
    )
    .await
    .unwrap();
    let upstreams = dir.path().join("alloc/svc/web/local/upstreams.txt");
    assert_eq!(std::fs::read_to_string(&upstreams).unwrap(), "");

    // The task's service is in the catalog with the allocation's port.
    let found = within("registration", async {
        loop {
            let found = provider
                .query(&ServiceQuery::name("web").tag("v1"))
                .await
                .unwrap();
            if !found.is_empty() {
                break found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(
        (found[0].address.as_str(), found[0].port),
        ("127.0.0.1", 25123)
    );

    // A new upstream re-renders the template, whose change_mode restarts the task.
    provider
        .register(ServiceRegistration {
            id: "db-1".into(),
            service_name: "db".into(),
            address: "10.1.2.3".into(),
            port: 5432,
            ..ServiceRegistration::default()
        })
        .await
        .unwrap();
    within(
        "the restart",
        states.wait_for(|s| {
            s["web"]
                .events
                .iter()
                .any(|e| e.event_type == "Restart Signaled")
                && s["web"]
                    .events
                    .last()
                    .is_some_and(|e| e.event_type == "Started")
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(&upstreams).unwrap(),
        "10.1.2.3:5432\n"
    );
    let web = handle.task_states()["web"].clone();
    let started = web
        .events
        .iter()
        .filter(|e| e.event_type == "Started")
        .count();
    assert_eq!(started, 2, "{:#?}", web.events);
    assert_eq!(
        web.restarts, 0,
        "a template restart does not count against the policy"
    );

    handle.kill();
    within("the stop", handle.wait()).await;
    assert!(provider
        .query(&ServiceQuery::name("web"))
        .await
        .unwrap()
        .is_empty());
}

/// An embedder's hook: counts its prestarts, finishes for good after the first.
struct Counting {
    prestarts: Arc<AtomicUsize>,
}

impl Named for Counting {
    fn name(&self) -> &str {
        "counting"
    }
}

#[async_trait::async_trait]
impl TaskHook for Counting {
    async fn prestart(
        &self,
        _ctx: &TaskContext,
        previous: Option<&HookState>,
    ) -> Result<PrestartResponse, HookError> {
        assert!(previous.is_none_or(|p| !p.done));
        self.prestarts.fetch_add(1, Ordering::SeqCst);
        Ok(PrestartResponse {
            env: BTreeMap::from([("FROM_HOOK".to_owned(), "yes".to_owned())]),
            state: Some(json!({ "token": 42 })),
            done: true,
            ..PrestartResponse::default()
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_hooks_are_not_run_again_after_an_agent_restart() {
    let dir = tempfile::tempdir().unwrap();
    let host = MockHost::new();
    let prestarts = Arc::new(AtomicUsize::new(0));
    let build = || {
        let prestarts = prestarts.clone();
        ClientBuilder::new(dir.path().join("alloc"))
            .state_dir(dir.path().join("state"))
            .driver(Arc::new(MockDriver::with_host(host.clone())))
            .task_hook(move |_, _| {
                Some(Arc::new(Counting {
                    prestarts: prestarts.clone(),
                }) as Arc<dyn TaskHook>)
            })
    };
    let mut task = sh("m", "");
    task.driver = "mock".into();
    task.config = BTreeMap::from([("stdout_env".to_owned(), json!("FROM_HOOK"))]);

    let client = build().build().await.unwrap();
    let handle = client
        .run_alloc(alloc("restore", "service", vec![task]))
        .unwrap();
    let mut states = handle.watch_states();
    within(
        "running",
        states.wait_for(|s| s.get("m").is_some_and(|t| t.state == "running")),
    )
    .await
    .unwrap();
    let task_id = handle.task_handles()["m"].config.id.clone();
    assert_eq!(handle.task_handles()["m"].config.env["FROM_HOOK"], "yes");
    client.shutdown().await;
    drop(handle);
    drop(client);
    assert_eq!(
        host.running(),
        1,
        "shutting the agent down leaves the task running"
    );

    // Give the runners a moment to release the state database.
    let client = within("the state to reopen", async {
        loop {
            match build().build().await {
                Ok(c) => break c,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
    let restored = client.restore().await.unwrap();
    assert_eq!(client.node().id.len(), 36);
    assert_eq!(
        client.node().id,
        std::fs::read_to_string(dir.path().join("state/client-id")).unwrap(),
        "the restarted agent is the same node"
    );
    assert_eq!(restored.len(), 1);
    let mut states = restored[0].watch_states();
    within(
        "recovered",
        states.wait_for(|s| s.get("m").is_some_and(|t| t.state == "running")),
    )
    .await
    .unwrap();
    assert_eq!(
        restored[0].task_handles()["m"].config.id,
        task_id,
        "re-attached, not restarted"
    );
    assert_eq!(
        prestarts.load(Ordering::SeqCst),
        1,
        "the finished hook did not run again"
    );
    assert_eq!(host.running(), 1);
    let started = restored[0].task_states()["m"]
        .events
        .iter()
        .filter(|e| e.event_type == "Started")
        .count();
    assert_eq!(started, 1);
    restored[0].kill();
    within("the stop", restored[0].wait()).await;
    assert_eq!(host.running(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_with_change_mode_signal_signals_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(InMemoryProvider::new());
    let client = ClientBuilder::new(dir.path().join("alloc"))
        .driver(Arc::new(RawExecDriver::enabled()))
        .service_provider(provider.clone())
        .build()
        .await
        .unwrap();
    let mut task = sh(
        "web",
        "trap 'cat \"$NOMAD_TASK_DIR/peers\" >> \"$NOMAD_TASK_DIR/reloads\"' HUP; \
         touch \"$NOMAD_TASK_DIR/up\"; while :; do sleep 0.05; done",
    );
    task.templates = vec![Template {
        dest_path: "local/peers".into(),
        embedded_tmpl: "{{ range nomadService \"peer\" }}{{ .Port }}{{ end }}\n".into(),
        change_mode: "signal".into(),
        change_signal: "SIGHUP".into(),
        perms: "644".into(),
        ..Template::default()
    }];
    let handle = client
        .run_alloc(alloc("sig", "service", vec![task]))
        .unwrap();
    let task_dir = dir.path().join("alloc/sig/web/local");
    within("the task", async {
        while !task_dir.join("up").exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    provider
        .register(ServiceRegistration {
            id: "peer-1".into(),
            service_name: "peer".into(),
            port: 7001,
            ..ServiceRegistration::default()
        })
        .await
        .unwrap();
    within("the reload", async {
        while std::fs::read_to_string(task_dir.join("reloads")).unwrap_or_default() != "7001\n" {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let web = handle.task_states()["web"].clone();
    assert!(web.events.iter().any(|e| e.event_type == "Signaling"));
    assert_eq!(
        web.events
            .iter()
            .filter(|e| e.event_type == "Started")
            .count(),
        1
    );
    handle.kill();
    within("the stop", handle.wait()).await;
}
