//! The HTTP API end to end on a real socket: a server, simulated nodes registered through
//! the client routes, jobs through the typed client, and raw requests for bad input.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client as RawClient;
use hyper_util::rt::TokioExecutor;
use nomad_api::{Client, Config, DrainSpec, QueryOptions};
use nomad_core::structs::ServiceRegistration;
use nomad_server::sim::{sim_job, sim_node};
use nomad_server::{Server, ServerConfig};

async fn start(dir: &std::path::Path) -> (Server, Client) {
    let mut cfg = ServerConfig::dev(dir);
    cfg.num_schedulers = 2;
    cfg.max_body_bytes = 64 * 1024;
    let server = Server::start(cfg).await.expect("server");
    let addr = server.http_addr().expect("http");
    let client = Client::new(Config::with_address(format!("http://{addr}"))).expect("client");
    (server, client)
}

async fn raw(server: &Server, method: Method, path: &str, body: Vec<u8>) -> (u16, String) {
    let addr = server.http_addr().expect("http");
    let c: RawClient<_, Full<Bytes>> = RawClient::builder(TokioExecutor::new()).build_http();
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let resp = c.request(req).await.expect("send");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Waits with blocking queries until the job has `n` allocations.
async fn wait_allocs(client: &Client, job: &str, n: usize) -> u64 {
    let mut index = 0;
    for _ in 0..200 {
        let q = QueryOptions::blocking(index, Duration::from_secs(5));
        let (allocs, meta) = client.job_allocations(job, &q).await.expect("allocs");
        let live = allocs.iter().filter(|a| a.desired_status == "run").count();
        if live >= n {
            return meta.last_index;
        }
        index = meta.last_index;
    }
    panic!("job {job} never reached {n} allocations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_lifecycle_over_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, client) = start(dir.path()).await;
    for i in 0..3 {
        let r = client
            .register_node(&sim_node(i))
            .await
            .expect("register node");
        assert!(r.heartbeat_ttl > 0);
    }
    client.heartbeat("node-0", None).await.expect("heartbeat");
    let (nodes, meta) = client.nodes(&QueryOptions::default()).await.expect("nodes");
    assert_eq!(nodes.len(), 3);
    assert!(meta.last_index > 0 && meta.known_leader);

    let job = sim_job("web", 4);
    let reg = client.register_job(&job).await.expect("register");
    assert!(!reg.eval_id.is_empty());
    let index = wait_allocs(&client, "web", 4).await;

    let (j, _) = client
        .job("web", &QueryOptions::default())
        .await
        .expect("job");
    assert_eq!(j.id, "web");
    let (jobs, _) = client
        .jobs(&QueryOptions {
            prefix: Some("we".into()),
            ..Default::default()
        })
        .await
        .expect("jobs");
    assert_eq!(jobs.len(), 1);
    let (ev, _) = client
        .evaluation(&reg.eval_id, &QueryOptions::default())
        .await
        .expect("eval");
    assert_eq!(ev.job_id, "web");
    let (evals, _) = client
        .job_evaluations("web", &QueryOptions::default())
        .await
        .expect("evals");
    assert!(!evals.is_empty());
    let (summary, _) = client
        .job_summary("web", &QueryOptions::default())
        .await
        .expect("summary");
    assert_eq!(summary.summary.get("app").map(|s| s.starting), Some(4));

    // A blocking query on a node's allocations wakes when a client pushes status.
    let (allocs, _) = client
        .job_allocations("web", &QueryOptions::default())
        .await
        .expect("allocs");
    let target = allocs[0].clone();
    let (full, _) = client
        .allocation(&target.id, &QueryOptions::default())
        .await
        .expect("alloc");
    assert!(full.job.is_some());
    let watcher = {
        let client = client.clone();
        let node = target.node_id.clone();
        tokio::spawn(async move {
            client
                .node_allocations(
                    &node,
                    &QueryOptions::blocking(index, Duration::from_secs(30)),
                )
                .await
                .expect("watch")
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !watcher.is_finished(),
        "blocking query answered before any change"
    );
    let mut running = full.clone();
    running.client_status = "running".into();
    client.update_allocations(&[running]).await.expect("update");
    let (node_allocs, meta) = watcher.await.expect("join");
    assert!(meta.last_index > index);
    assert!(node_allocs
        .iter()
        .any(|a| a.id == target.id && a.client_status == "running"));

    // Plan a bigger count: two more placements, nothing else.
    let plan = client
        .plan_job(&sim_job("web", 6), true)
        .await
        .expect("plan");
    let up = plan
        .annotations
        .desired_tg_updates
        .get("app")
        .copied()
        .unwrap_or_default();
    assert_eq!(up.place, 2);
    assert_eq!(up.ignore + up.in_place_update, 4);
    assert_eq!(up.destructive_update + up.stop, 0);
    assert_eq!(
        plan.diff.as_ref().and_then(|d| d["Type"].as_str()),
        Some("Edited")
    );

    // Re-register with a change: a new version.
    client
        .register_job(&sim_job("web", 6))
        .await
        .expect("register v1");
    wait_allocs(&client, "web", 6).await;
    let (versions, _) = client
        .job_versions("web", &QueryOptions::default())
        .await
        .expect("versions");
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].version, Some(1));
    assert!(client
        .register_job_check_index(&sim_job("web", 7), 1)
        .await
        .is_err());

    // Evaluate, stop, purge.
    let e = client.evaluate_job("web").await.expect("evaluate");
    assert!(!e.eval_id.is_empty());
    client.deregister_job("web", true).await.expect("purge");
    let err = client
        .job("web", &QueryOptions::default())
        .await
        .expect_err("purged");
    assert_eq!(err.status(), Some(404));

    // Drain and eligibility.
    let d = client
        .drain_node(
            "node-1",
            Some(&DrainSpec {
                deadline: 60_000_000_000,
                ignore_system_jobs: false,
            }),
            false,
        )
        .await
        .expect("drain");
    assert!(d.node_modify_index > 0);
    let (n, _) = client
        .node("node-1", &QueryOptions::default())
        .await
        .expect("node");
    assert_eq!(n.scheduling_eligibility, "ineligible");
    assert!(
        client.node_eligibility("node-1", "eligible").await.is_err(),
        "draining node stays ineligible"
    );
    client
        .drain_node("node-1", None, true)
        .await
        .expect("undrain");
    client
        .node_eligibility("node-2", "ineligible")
        .await
        .expect("ineligible");
    let err = client
        .node_eligibility("node-2", "sideways")
        .await
        .expect_err("bad value");
    assert_eq!(err.status(), Some(400));
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_status_agent_operator_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, client) = start(dir.path()).await;
    client.register_node(&sim_node(0)).await.expect("node");
    client.register_job(&sim_job("db", 1)).await.expect("job");
    wait_allocs(&client, "db", 1).await;
    let (allocs, _) = client
        .job_allocations("db", &QueryOptions::default())
        .await
        .expect("allocs");
    let reg = |id: &str, tags: &[&str], port: u16| ServiceRegistration {
        id: id.into(),
        service_name: "redis".into(),
        namespace: "default".into(),
        node_id: "node-0".into(),
        datacenter: "dc1".into(),
        job_id: "db".into(),
        alloc_id: allocs[0].id.clone(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        address: "127.0.0.1".into(),
        port,
        ..ServiceRegistration::default()
    };
    client
        .register_services(&[reg("r1", &["primary"], 6379), reg("r2", &["replica"], 6380)])
        .await
        .expect("register services");
    let (list, _) = client
        .services(&QueryOptions::default())
        .await
        .expect("services");
    assert_eq!(list[0].services[0].service_name, "redis");
    let (all, meta) = client
        .service("redis", None, &QueryOptions::default())
        .await
        .expect("service");
    assert_eq!(all.len(), 2);
    let (primary, _) = client
        .service("redis", Some("primary"), &QueryOptions::default())
        .await
        .expect("by tag");
    assert_eq!(primary.len(), 1);
    assert_eq!(primary[0].port, 6379);
    // A blocking query on the service wakes on deregistration.
    let watcher = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .service(
                    "redis",
                    None,
                    &QueryOptions::blocking(meta.last_index, Duration::from_secs(30)),
                )
                .await
        })
    };
    client.delete_service("redis", "r2").await.expect("delete");
    let (left, _) = watcher.await.expect("join").expect("watch");
    assert_eq!(left.len(), 1);
    let (by_job, _) = client
        .job_services("db", &QueryOptions::default())
        .await
        .expect("job services");
    assert_eq!(by_job.len(), 1);
    client
        .deregister_alloc_services(&[allocs[0].id.clone()])
        .await
        .expect("deregister");
    assert!(client
        .service("redis", None, &QueryOptions::default())
        .await
        .expect("service")
        .0
        .is_empty());

    assert_eq!(
        client.status_leader().await.expect("leader"),
        "127.0.0.1:4647"
    );
    assert_eq!(
        client.status_peers().await.expect("peers"),
        ["127.0.0.1:4647"]
    );
    assert_eq!(client.regions().await.expect("regions"), ["global"]);
    let me = client.agent_self().await.expect("self");
    assert_eq!(me["config"]["Region"], "global");
    let members = client.agent_members().await.expect("members");
    assert_eq!(members.members.len(), 1);

    let (mut cfg, _) = client
        .scheduler_configuration(&QueryOptions::default())
        .await
        .expect("config");
    cfg.scheduler_algorithm = "spread".into();
    client
        .set_scheduler_configuration(&cfg)
        .await
        .expect("set config");
    let (cfg, _) = client
        .scheduler_configuration(&QueryOptions::default())
        .await
        .expect("config");
    assert_eq!(cfg.scheduler_algorithm, "spread");

    let m = client.metrics().await.expect("metrics");
    assert!(m["Gauges"].as_array().is_some_and(|g| !g.is_empty()));
    let prom = client.metrics_prometheus().await.expect("prometheus");
    assert!(prom.contains("# TYPE nomad_nomad_broker_total_ready gauge"));

    let parsed = client
        .parse_job("job \"x\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"raw_exec\"\n      config {\n        command = \"/bin/true\"\n      }\n    }\n  }\n}\n", true)
        .await
        .expect("parse");
    assert_eq!(parsed.id, "x");
    let v = client.validate_job(&parsed).await.expect("validate");
    assert!(v.validation_errors.is_empty(), "{:?}", v.validation_errors);
    let mut broken = parsed.clone();
    broken.task_groups.clear();
    let v = client.validate_job(&broken).await.expect("validate");
    assert!(!v.validation_errors.is_empty());

    let (status, body) = raw(
        &server,
        Method::GET,
        "/v1/client/fs/logs/abc?task=t",
        vec![],
    )
    .await;
    assert_eq!(status, 501, "{body}");
    server.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_4xx_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _client) = start(dir.path()).await;
    let before = server.snapshot().index();
    let cases: Vec<(Method, &str, Vec<u8>, u16, &str)> = vec![
        (
            Method::PUT,
            "/v1/jobs",
            b"{\"Job\": {".to_vec(),
            400,
            "decode",
        ),
        (Method::PUT, "/v1/jobs", b"".to_vec(), 400, "empty"),
        (
            Method::PUT,
            "/v1/jobs",
            b"{\"Job\": {\"ID\": 5}}".to_vec(),
            400,
            "job",
        ),
        (
            Method::PUT,
            "/v1/jobs",
            b"{\"Job\": {\"ID\": \"x\", \"TaskGroups\": \"nope\"}}".to_vec(),
            400,
            "job",
        ),
        (
            Method::PUT,
            "/v1/jobs",
            b"{\"Job\": {\"ID\": \"x\"}}".to_vec(),
            400,
            "validation",
        ),
        (
            Method::PUT,
            "/v1/jobs",
            b"[1,2,3]".to_vec(),
            400,
            "Job must be specified",
        ),
        (
            Method::PUT,
            "/v1/job/other",
            br#"{"Job": {"ID": "x"}}"#.to_vec(),
            400,
            "does not match",
        ),
        (
            Method::PUT,
            "/v1/jobs",
            vec![b' '; 100 * 1024],
            413,
            "too large",
        ),
        (Method::GET, "/v1/job/nope", vec![], 404, "job not found"),
        (Method::DELETE, "/v1/job/nope", vec![], 404, "job not found"),
        (
            Method::GET,
            "/v1/allocation/nope",
            vec![],
            404,
            "alloc not found",
        ),
        (
            Method::GET,
            "/v1/evaluation/nope",
            vec![],
            404,
            "eval not found",
        ),
        (Method::GET, "/v1/node/nope", vec![], 404, "node not found"),
        (
            Method::GET,
            "/v1/jobs?index=banana",
            vec![],
            400,
            "Invalid index",
        ),
        (
            Method::GET,
            "/v1/jobs?index=-1",
            vec![],
            400,
            "Invalid index",
        ),
        (
            Method::GET,
            "/v1/jobs?wait=forever",
            vec![],
            400,
            "Invalid wait",
        ),
        (Method::PATCH, "/v1/jobs", vec![], 405, "Invalid method"),
        (Method::GET, "/v1/nowhere", vec![], 404, "Invalid URL"),
        (
            Method::PUT,
            "/v1/client/node/register",
            br#"{"Node": {"ID": ""}}"#.to_vec(),
            400,
            "node ID",
        ),
        (
            Method::PUT,
            "/v1/client/node/nope/heartbeat",
            vec![],
            404,
            "node not found",
        ),
        (
            Method::PUT,
            "/v1/client/services",
            br#"{"Services": [{"ID": ""}]}"#.to_vec(),
            400,
            "ServiceName",
        ),
        (
            Method::PUT,
            "/v1/operator/scheduler/configuration",
            br#"{"SchedulerAlgorithm": "random"}"#.to_vec(),
            400,
            "algorithm",
        ),
        (
            Method::PUT,
            "/v1/operator/scheduler/configuration",
            br#"{"SchedulerAlgorithm": 7}"#.to_vec(),
            400,
            "decode",
        ),
        (
            Method::POST,
            "/v1/jobs/parse",
            br#"{"JobHCL": "job {"}"#.to_vec(),
            400,
            "parse",
        ),
        (Method::GET, "/v1/metrics?format=xml", vec![], 400, "format"),
    ];
    for (method, path, body, want, needle) in cases {
        let (status, text) = raw(&server, method.clone(), path, body).await;
        assert_eq!(status, want, "{method} {path}: {text}");
        assert!(
            text.to_lowercase().contains(&needle.to_lowercase()),
            "{method} {path}: {text:?} does not mention {needle:?}"
        );
    }
    assert_eq!(
        server.snapshot().index(),
        before,
        "a refused request wrote something"
    );
    // The server still works.
    let (status, _) = raw(&server, Method::GET, "/v1/jobs", vec![]).await;
    assert_eq!(status, 200);
    server.shutdown();
}
