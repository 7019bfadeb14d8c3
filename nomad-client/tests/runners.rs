//! Acceptance tests of the allocation and task runners with real processes (raw_exec) and
//! the mock driver: lifecycle order, failures, restarts, host ports, path confinement and
//! disabled drivers.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nomad_client::{Client, ClientBuilder, MockDriver, RawExecConfig, RawExecDriver};
use nomad_core::job::{
    Duration as JobDuration, Job, NetworkResource, Port, RestartPolicy, Task, TaskArtifact,
    TaskGroup, TaskLifecycle, Template,
};
use nomad_core::structs::{
    AllocatedPortMapping, AllocatedResources, AllocatedSharedResources, Allocation, TaskEvent,
};
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

fn lifecycle(mut task: Task, hook: &str, sidecar: bool) -> Task {
    task.lifecycle = Some(TaskLifecycle {
        hook: hook.into(),
        sidecar,
    });
    task
}

fn no_restarts() -> RestartPolicy {
    RestartPolicy {
        attempts: Some(0),
        interval: Some(JobDuration::from_mins(5)),
        delay: Some(JobDuration::ZERO),
        mode: Some("fail".into()),
        render_templates: None,
    }
}

fn alloc(id: &str, job_type: &str, tasks: Vec<Task>, restart: RestartPolicy) -> Allocation {
    let job = Job {
        id: format!("job-{id}"),
        name: format!("job-{id}"),
        job_type: Some(job_type.into()),
        task_groups: vec![TaskGroup {
            name: "group".into(),
            tasks,
            restart_policy: Some(restart),
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

async fn client(root: &Path) -> Client {
    ClientBuilder::new(root.join("alloc"))
        .driver(Arc::new(RawExecDriver::enabled()))
        .driver(Arc::new(MockDriver::new()))
        .build()
        .await
        .expect("client")
}

fn types<'a>(events: &'a [(String, TaskEvent)], task: &str) -> Vec<&'a str> {
    events
        .iter()
        .filter(|(t, _)| t == task)
        .map(|(_, e)| e.event_type.as_str())
        .collect()
}

fn time_of(events: &[(String, TaskEvent)], task: &str, event: &str) -> i64 {
    events
        .iter()
        .find(|(t, e)| t == task && e.event_type == event)
        .map(|(_, e)| e.time)
        .unwrap_or_else(|| panic!("{task} has no {event:?} event: {events:#?}"))
}

async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_tasks_run_in_the_documented_order() {
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path()).await;
    let log = r#"echo "$NOMAD_TASK_NAME $1 $(date +%s%N)" >> "$NOMAD_ALLOC_DIR/sequence""#;
    let step = |name: &str, body: &str| sh(name, &format!("log() {{ {log}; }}; {body}"));
    let tasks = vec![
        lifecycle(
            step("init", "log start; sleep 0.3; log end"),
            "prestart",
            false,
        ),
        lifecycle(step("side", "log start; exec sleep 60"), "prestart", true),
        step("main", "log start; sleep 0.3; log end"),
        lifecycle(step("post", "log start"), "poststart", false),
        lifecycle(step("cleanup", "log start"), "poststop", false),
    ];
    let handle = client
        .run_alloc(alloc("order", "batch", tasks, no_restarts()))
        .unwrap();
    within("the allocation", handle.wait()).await;
    let states = handle.task_states();
    let (status, _) = handle.client_status();

    // From the files the tasks wrote.
    let seq = std::fs::read_to_string(dir.path().join("alloc/order/alloc/sequence")).unwrap();
    let lines: Vec<(&str, &str, u128)> = seq
        .lines()
        .map(|l| {
            let mut p = l.split(' ');
            let (t, what, ts) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
            (t, what, ts.parse().unwrap())
        })
        .collect();
    let at = |task: &str, what: &str| {
        lines
            .iter()
            .find(|(t, w, _)| *t == task && *w == what)
            .map(|(_, _, ts)| *ts)
            .unwrap_or_else(|| panic!("{task} {what} missing from {seq}"))
    };
    assert!(at("main", "start") > at("init", "end"), "{seq}");
    // The sidecar only has to run (not to have written) before main starts: its order
    // against main is asserted from the events below.
    assert!(at("side", "start") > 0, "{seq}");
    // Poststart starts once main runs; whether main's shell or post's writes first is a
    // race between two running processes, so the file only shows post came after prestart.
    assert!(at("post", "start") > at("init", "end"), "{seq}");
    assert!(at("cleanup", "start") > at("main", "end"), "{seq}");
    assert_eq!(
        lines.iter().filter(|(t, _, _)| *t == "init").count(),
        2,
        "init ran once: {seq}"
    );
    assert_eq!(lines.last().unwrap().0, "cleanup", "{seq}");

    // From the task events.
    for (name, s) in &states {
        assert_eq!(s.state, "dead", "{name}");
        assert!(!s.failed, "{name}: {:#?}", s.events);
    }
    assert_eq!(status, "complete");
    let events: Vec<(String, TaskEvent)> = states
        .iter()
        .flat_map(|(t, s)| s.events.iter().map(move |e| (t.clone(), e.clone())))
        .collect();
    assert!(time_of(&events, "main", "Started") > time_of(&events, "init", "Terminated"));
    assert!(time_of(&events, "main", "Started") > time_of(&events, "side", "Started"));
    assert!(time_of(&events, "post", "Started") >= time_of(&events, "main", "Started"));
    assert!(time_of(&events, "cleanup", "Started") > time_of(&events, "main", "Terminated"));
    assert_eq!(
        types(&events, "side"),
        [
            "Received",
            "Task Setup",
            "Started",
            "Main Tasks Dead",
            "Killing",
            "Terminated",
            "Killed"
        ]
    );
    assert_eq!(
        types(&events, "init"),
        ["Received", "Task Setup", "Started", "Terminated"]
    );
    assert_eq!(
        types(&events, "cleanup"),
        ["Received", "Task Setup", "Started", "Terminated"]
    );
    // The task states keep their own (last ten) events too.
    let main_events: Vec<&str> = states["main"]
        .events
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(
        main_events,
        ["Received", "Task Setup", "Started", "Terminated"]
    );
    let side_events: Vec<&str> = states["side"]
        .events
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert!(side_events.contains(&"Main Tasks Dead") && side_events.ends_with(&["Killed"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_prestart_keeps_the_main_task_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path()).await;
    let tasks = vec![
        lifecycle(sh("init", "exit 3"), "prestart", false),
        sh("main", "touch \"$NOMAD_ALLOC_DIR/main-ran\""),
    ];
    let handle = client
        .run_alloc(alloc("badinit", "service", tasks, no_restarts()))
        .unwrap();
    within("the allocation", handle.wait()).await;
    let states = handle.task_states();
    let init: Vec<&str> = states["init"]
        .events
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(
        init,
        [
            "Received",
            "Task Setup",
            "Started",
            "Terminated",
            "Not Restarting"
        ]
    );
    assert_eq!(states["init"].events[3].exit_code, 3);
    assert!(states["init"].failed);
    let main: Vec<&str> = states["main"]
        .events
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(main, ["Received", "Sibling Task Failed"]);
    assert!(states["main"].started_at.is_none());
    assert!(!dir.path().join("alloc/badinit/alloc/main-ran").exists());
    assert_eq!(handle.client_status().0, "failed");

    // Destroying the allocation removes its directory.
    // Nomad's alloc dir layout, with its permissions.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        std::fs::metadata(dir.path().join("alloc/badinit").join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    for shared in [
        "alloc",
        "alloc/logs",
        "alloc/data",
        "alloc/tmp",
        "init/local",
        "init/tmp",
    ] {
        assert_eq!(mode(shared), 0o777, "{shared}");
    }
    assert_eq!(mode("init/secrets"), 0o700);
    client.remove_alloc("badinit").await;
    assert!(!dir.path().join("alloc/badinit").exists());
    assert!(client.alloc("badinit").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sidecar_is_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path()).await;
    let policy = RestartPolicy {
        attempts: Some(3),
        delay: Some(JobDuration::from_millis(10)),
        ..no_restarts()
    };
    let tasks = vec![
        lifecycle(sh("side", "exec sleep 60"), "prestart", true),
        sh("main", "exec sleep 60"),
    ];
    let handle = client
        .run_alloc(alloc("sidecar", "service", tasks, policy))
        .unwrap();
    let mut states = handle.watch_states();
    within(
        "both running",
        states.wait_for(|s| s.len() == 2 && s.values().all(|t| t.state == "running")),
    )
    .await
    .unwrap();
    let pid = handle.task_handles()["side"].driver_state["pid"]
        .as_i64()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    within(
        "the sidecar restarted",
        states.wait_for(|s| s["side"].restarts == 1 && s["side"].state == "running"),
    )
    .await
    .unwrap();
    let side = handle.task_states()["side"].clone();
    let kinds: Vec<&str> = side.events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Received",
            "Task Setup",
            "Started",
            "Terminated",
            "Restarting",
            "Started"
        ]
    );
    assert_eq!(side.events[3].signal, 9);
    assert_eq!(side.events[4].restart_reason, "Restart within policy");
    let new_pid = handle.task_handles()["side"].driver_state["pid"]
        .as_i64()
        .unwrap();
    assert_ne!(new_pid, pid);
    assert_eq!(handle.client_status().0, "running");
    handle.kill();
    within("the stop", handle.wait()).await;
    let states = handle.task_states();
    assert!(states.values().all(|s| s.state == "dead" && !s.failed));
    assert_eq!(handle.client_status().0, "complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_and_the_restart_policy() {
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path()).await;
    let policy = RestartPolicy {
        attempts: Some(2),
        interval: Some(JobDuration::from_mins(10)),
        delay: Some(JobDuration::ZERO),
        mode: Some("fail".into()),
        render_templates: None,
    };
    let tasks = vec![sh("web", "echo run >> \"$NOMAD_ALLOC_DIR/runs\"; exit 7")];
    let handle = client
        .run_alloc(alloc("codes", "batch", tasks, policy))
        .unwrap();
    within("the allocation", handle.wait()).await;
    let web = handle.task_states()["web"].clone();
    let kinds: Vec<&str> = web.events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Task Setup",
            "Started",
            "Terminated",
            "Restarting",
            "Started",
            "Terminated",
            "Restarting",
            "Started",
            "Terminated",
            "Not Restarting"
        ][..]
            .iter()
            .rev()
            .take(kinds.len())
            .rev()
            .copied()
            .collect::<Vec<_>>()
    );
    assert!(web
        .events
        .iter()
        .filter(|e| e.event_type == "Terminated")
        .all(|e| e.exit_code == 7));
    let last = web.events.last().unwrap();
    assert!(last.fails_task);
    assert!(
        last.display_message.contains("Exceeded allowed attempts 2"),
        "{last:?}"
    );
    assert!(web.failed);
    assert_eq!(web.restarts, 2);
    let runs = std::fs::read_to_string(dir.path().join("alloc/codes/alloc/runs")).unwrap();
    assert_eq!(runs.lines().count(), 3);
    assert_eq!(handle.client_status().0, "failed");

    // A batch task that exits 0 completes and is not restarted.
    let ok = vec![sh("ok", "exit 0")];
    let handle = client
        .run_alloc(alloc("ok", "batch", ok, no_restarts()))
        .unwrap();
    within("the allocation", handle.wait()).await;
    let s = handle.task_states()["ok"].clone();
    assert!(!s.failed && s.restarts == 0 && s.state == "dead");
    assert_eq!(handle.client_status().0, "complete");
}

#[tokio::test(start_paused = true)]
async fn delay_mode_waits_out_the_interval_with_the_mock_driver() {
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path()).await;
    let policy = RestartPolicy {
        attempts: Some(1),
        interval: Some(JobDuration::from_mins(10)),
        delay: Some(JobDuration::from_secs(15)),
        mode: Some("delay".into()),
        render_templates: None,
    };
    let mut task = sh("m", "");
    task.driver = "mock".into();
    task.config = BTreeMap::from([
        ("run_for".to_owned(), json!("1s")),
        ("exit_code".to_owned(), json!(2)),
    ]);
    let handle = client
        .run_alloc(alloc("delay", "service", vec![task], policy))
        .unwrap();
    let mut states = handle.watch_states();
    states
        .wait_for(|s| s.get("m").is_some_and(|t| t.restarts == 2))
        .await
        .unwrap();
    let m = handle.task_states()["m"].clone();
    let restarting: Vec<&TaskEvent> = m
        .events
        .iter()
        .filter(|e| e.event_type == "Restarting")
        .collect();
    assert_eq!(restarting[0].restart_reason, "Restart within policy");
    assert!(restarting[0].start_delay >= 15_000_000_000);
    assert_eq!(
        restarting[1].restart_reason,
        "Exceeded allowed attempts, applying a delay"
    );
    // The second restart waits for the rest of the 10 minute window.
    assert!(
        restarting[1].start_delay > 500_000_000_000,
        "{:?}",
        restarting[1]
    );
    assert!(!m.failed);
    handle.kill();
    handle.wait().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_ports_reach_the_task_and_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path()).await;
    let (fixed, dynamic) = (free_port(), free_port());
    let serve = "env | grep '^NOMAD_' > \"$NOMAD_TASK_DIR/env\"; \
        python3 -m http.server \"$NOMAD_PORT_fixed\" --bind 127.0.0.1 >/dev/null 2>&1 & \
        exec python3 -m http.server \"$NOMAD_PORT_dyn\" --bind 127.0.0.1 >/dev/null 2>&1";
    let mut a = alloc("ports", "service", vec![sh("web", serve)], no_restarts());
    a.allocated_resources = Some(AllocatedResources {
        shared: AllocatedSharedResources {
            networks: vec![NetworkResource {
                mode: "host".into(),
                ip: "127.0.0.1".into(),
                reserved_ports: vec![Port {
                    label: "fixed".into(),
                    value: fixed,
                    ..Port::default()
                }],
                dynamic_ports: vec![Port {
                    label: "dyn".into(),
                    value: dynamic,
                    ..Port::default()
                }],
                ..NetworkResource::default()
            }],
            ports: vec![
                AllocatedPortMapping {
                    label: "fixed".into(),
                    value: fixed,
                    to: 0,
                    host_ip: "127.0.0.1".into(),
                },
                AllocatedPortMapping {
                    label: "dyn".into(),
                    value: dynamic,
                    to: 0,
                    host_ip: "127.0.0.1".into(),
                },
            ],
            ..AllocatedSharedResources::default()
        },
        ..AllocatedResources::default()
    });
    let handle = client.run_alloc(a).unwrap();
    for port in [fixed, dynamic] {
        within("the server to listen", async {
            loop {
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
    }
    let env = std::fs::read_to_string(dir.path().join("alloc/ports/web/local/env")).unwrap();
    assert!(env.contains(&format!("NOMAD_PORT_fixed={fixed}")), "{env}");
    assert!(env.contains(&format!("NOMAD_PORT_dyn={dynamic}")), "{env}");
    assert!(
        env.contains(&format!("NOMAD_ADDR_dyn=127.0.0.1:{dynamic}")),
        "{env}"
    );
    assert!(
        env.contains(&format!("NOMAD_HOST_PORT_fixed={fixed}")),
        "{env}"
    );
    handle.kill();
    within("the stop", handle.wait()).await;
}

fn template(dest: &str) -> Template {
    Template {
        dest_path: dest.into(),
        embedded_tmpl: "pwned {{ env \"NOMAD_TASK_NAME\" }}\n".into(),
        change_mode: "noop".into(),
        perms: "644".into(),
        ..Template::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_and_artifact_destinations_cannot_escape_the_task_dir() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let client = client(dir.path()).await;

    let mut lexical = sh("web", "true");
    lexical.templates = vec![template("../../../escaped")];

    // A symlink planted in the task dir that points outside.
    let link_dir = dir.path().join("alloc/symlink/web/local");
    std::fs::create_dir_all(&link_dir).unwrap();
    std::os::unix::fs::symlink(outside.path(), link_dir.join("out")).unwrap();
    let mut symlink = sh("web", "true");
    symlink.templates = vec![template("local/out/escaped")];

    let mut interpolated = sh("web", "true");
    interpolated.meta = BTreeMap::from([("dest".to_owned(), "../../../..".to_owned())]);
    interpolated.templates = vec![template("${NOMAD_META_dest}/escaped")];

    let mut artifact = sh("web", "true");
    artifact.artifacts = vec![TaskArtifact {
        getter_source: "file:///etc/hostname".into(),
        relative_dest: "../../../escaped-artifact".into(),
        ..TaskArtifact::default()
    }];

    let mut handles = Vec::new();
    for (id, task) in [
        ("lexical", lexical),
        ("symlink", symlink),
        ("interp", interpolated),
        ("artifact", artifact),
    ] {
        handles.push((
            id,
            client
                .run_alloc(alloc(id, "batch", vec![task], no_restarts()))
                .unwrap(),
        ));
    }
    for (id, handle) in handles {
        within("the allocation", handle.wait()).await;
        let web = handle.task_states()["web"].clone();
        let failure = web
            .events
            .iter()
            .find(|e| e.event_type == "Setup Failure")
            .unwrap_or_else(|| panic!("{id}: {:#?}", web.events));
        assert!(
            failure.display_message.contains("escapes"),
            "{id}: {failure:?}"
        );
        assert!(web.failed, "{id}");
        assert!(web.started_at.is_none(), "{id}");
    }
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    assert!(!dir.path().join("escaped").exists() && !dir.path().join("alloc/escaped").exists());
    assert!(
        !dir.path().join("escaped-artifact").exists()
            && !dir.path().join("alloc/escaped-artifact").exists()
    );

    // Inside the task dir, templates render and `env = true` feeds the environment.
    let mut ok = sh("web", "echo \"$GREETING\" > \"$NOMAD_TASK_DIR/greeting\"");
    ok.artifacts = vec![TaskArtifact {
        getter_source: "file:///etc/hostname".into(),
        relative_dest: "local/fetched".into(),
        ..TaskArtifact::default()
    }];
    ok.templates = vec![
        template("local/conf.txt"),
        Template {
            envvars: true,
            embedded_tmpl: "GREETING=hello-{{ env \"NOMAD_ALLOC_NAME\" }}\n".into(),
            ..template("secrets/file.env")
        },
    ];
    let handle = client
        .run_alloc(alloc("tmplok", "batch", vec![ok], no_restarts()))
        .unwrap();
    within("the allocation", handle.wait()).await;
    assert_eq!(
        handle.client_status().0,
        "complete",
        "{:#?}",
        handle.task_states()
    );
    let task_dir = dir.path().join("alloc/tmplok/web");
    assert_eq!(
        std::fs::read_to_string(task_dir.join("local/conf.txt")).unwrap(),
        "pwned web\n"
    );
    assert_eq!(
        std::fs::read_to_string(task_dir.join("local/greeting")).unwrap(),
        "hello-job-tmplok.group[0]\n"
    );
    let events = &handle.task_states()["web"].events;
    assert!(events
        .iter()
        .any(|e| e.event_type == "Downloading Artifacts"));
    assert_eq!(
        std::fs::read(task_dir.join("local/fetched/hostname")).unwrap(),
        std::fs::read("/etc/hostname").unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_driver_cannot_be_used_by_any_job() {
    let dir = tempfile::tempdir().unwrap();
    let client = ClientBuilder::new(dir.path().join("alloc"))
        .driver(Arc::new(RawExecDriver::new(RawExecConfig::default())))
        .build()
        .await
        .unwrap();
    assert!(!client.node().drivers["raw_exec"].detected);
    let marker = dir.path().join("ran");
    let task = sh("web", &format!("touch {}", marker.display()));
    let mut unknown = sh("other", "true");
    unknown.driver = "nonexistent".into();
    let handle = client
        .run_alloc(alloc(
            "disabled",
            "batch",
            vec![task, unknown],
            no_restarts(),
        ))
        .unwrap();
    within("the allocation", handle.wait()).await;
    let states = handle.task_states();
    for name in ["web", "other"] {
        let failure = states[name]
            .events
            .iter()
            .find(|e| e.event_type == "Driver Failure")
            .unwrap_or_else(|| panic!("{name}: {:#?}", states[name].events));
        assert!(failure.fails_task);
        assert!(states[name].started_at.is_none());
    }
    assert!(states["web"]
        .events
        .iter()
        .any(|e| e.display_message.contains("not enabled")));
    assert!(!marker.exists());
    assert_eq!(handle.client_status().0, "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_uses_the_kill_signal_then_kills_after_the_kill_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let client = client(dir.path()).await;
    // Exits on its kill signal (SIGINT), after writing down which signal came.
    let mut polite = sh(
        "polite",
        "trap 'echo INT > \"$NOMAD_ALLOC_DIR/polite\"; exit 0' INT; trap '' TERM; \
         echo up > \"$NOMAD_ALLOC_DIR/polite-up\"; while :; do sleep 0.05; done",
    );
    polite.kill_signal = "SIGINT".into();
    // Ignores every catchable signal: killed once its kill timeout is over.
    let mut stubborn = sh(
        "stubborn",
        "trap '' INT TERM HUP; echo up > \"$NOMAD_ALLOC_DIR/stubborn-up\"; \
         while :; do sleep 0.05; done",
    );
    stubborn.kill_timeout = Some(JobDuration::from_millis(500));
    let handle = client
        .run_alloc(alloc(
            "kill",
            "service",
            vec![polite, stubborn],
            no_restarts(),
        ))
        .unwrap();
    let alloc_dir = dir.path().join("alloc/kill/alloc");
    within("both up", async {
        while !(alloc_dir.join("polite-up").exists() && alloc_dir.join("stubborn-up").exists()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    handle.kill();
    within("the stop", handle.wait()).await;
    let states = handle.task_states();
    assert_eq!(
        std::fs::read_to_string(alloc_dir.join("polite")).unwrap(),
        "INT\n"
    );
    let polite = &states["polite"].events;
    let terminated = polite
        .iter()
        .find(|e| e.event_type == "Terminated")
        .unwrap();
    assert_eq!((terminated.exit_code, terminated.signal), (0, 0));
    let stubborn = &states["stubborn"].events;
    let killing = stubborn.iter().find(|e| e.event_type == "Killing").unwrap();
    assert_eq!(killing.kill_timeout, JobDuration::from_millis(500));
    let terminated = stubborn
        .iter()
        .find(|e| e.event_type == "Terminated")
        .unwrap();
    assert_eq!(terminated.signal, 9, "{terminated:?}");
    assert_eq!(stubborn.last().unwrap().event_type, "Killed");
    assert!(states.values().all(|s| s.state == "dead" && !s.failed));
}
