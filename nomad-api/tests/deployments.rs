//! The deployment API end to end on a real socket: a server with simulated nodes (no client
//! agent, so allocation health is set through `allocation-health`), the typed client, and
//! raw requests for bad input.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client as RawClient;
use hyper_util::rt::TokioExecutor;
use nomad_api::{Client, Config, QueryOptions};
use nomad_core::job::{Job, UpdateStrategy};
use nomad_core::structs::Deployment;
use nomad_server::sim::{sim_job, sim_node};
use nomad_server::{Server, ServerConfig};

async fn start(dir: &std::path::Path) -> (Server, Client) {
    let mut cfg = ServerConfig::dev(dir);
    cfg.num_schedulers = 2;
    let server = Server::start(cfg).await.expect("server");
    let addr = server.http_addr().expect("http");
    let client = Client::new(Config::with_address(format!("http://{addr}"))).expect("client");
    for i in 0..3 {
        client.register_node(&sim_node(i)).await.expect("node");
    }
    (server, client)
}

async fn raw(server: &Server, method: Method, path: &str, body: &str) -> (u16, String) {
    let addr = server.http_addr().expect("http");
    let c: RawClient<_, Full<Bytes>> = RawClient::builder(TokioExecutor::new()).build_http();
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let resp = c.request(req).await.expect("send");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn job(env: &str, canary: i32) -> Job {
    let mut job = sim_job("web", 2);
    job.task_groups[0].update = Some(UpdateStrategy {
        max_parallel: Some(2),
        canary: Some(canary),
        ..UpdateStrategy::default()
    });
    job.task_groups[0].tasks[0]
        .env
        .insert("V".into(), env.into());
    job
}

/// Polls the job's latest deployment until `ok` holds.
async fn wait_deployment(
    client: &Client,
    what: &str,
    ok: impl Fn(&Deployment) -> bool,
) -> Deployment {
    for _ in 0..300 {
        let (d, _) = client
            .job_latest_deployment("web", &QueryOptions::default())
            .await
            .expect("latest deployment");
        if let Some(d) = d.filter(|d| ok(d)) {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The IDs of the deployment's allocations that still run and have no health yet.
async fn unhealthy_yet(client: &Client, id: &str) -> Vec<String> {
    let (allocs, _) = client
        .deployment_allocations(id, &QueryOptions::default())
        .await
        .expect("deployment allocations");
    allocs
        .iter()
        .filter(|a| a.desired_status == "run")
        .map(|a| a.id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_over_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, client) = start(dir.path()).await;
    client.register_job(&job("1", 1)).await.expect("register");
    let d0 = wait_deployment(&client, "v0 placed", |d| {
        d.task_groups
            .get("app")
            .is_some_and(|g| g.placed_allocs == 2)
    })
    .await;
    // A new job has no canaries to wait for.
    assert_eq!(d0.task_groups["app"].desired_canaries, 0);
    assert_eq!(d0.status_description, "Deployment is running");
    let ids = unhealthy_yet(&client, &d0.id).await;
    assert_eq!(ids.len(), 2);
    client
        .set_deployment_alloc_health(&d0.id, &ids, &[])
        .await
        .expect("healthy");
    let d0 = wait_deployment(&client, "v0 successful", |d| d.status == "successful").await;
    assert_eq!(d0.status_description, "Deployment completed successfully");
    let (j, _) = client
        .job("web", &QueryOptions::default())
        .await
        .expect("job");
    assert_eq!(j.stable, Some(true));
    let (one, _) = client
        .deployment(&d0.id, &QueryOptions::default())
        .await
        .expect("deployment");
    assert_eq!(one, d0);

    // A terminal deployment can't be failed, paused or promoted.
    let e = client
        .fail_deployment(&d0.id)
        .await
        .expect_err("fail terminal");
    assert_eq!(e.status(), Some(400));

    // v1 with a canary: promotion waits for it to be healthy.
    client
        .register_job(&job("2", 1))
        .await
        .expect("register v1");
    let d1 = wait_deployment(&client, "v1 canary", |d| {
        d.job_version == 1 && d.task_groups["app"].placed_canaries.len() == 1
    })
    .await;
    assert_eq!(
        d1.status_description,
        "Deployment is running but requires manual promotion"
    );
    let e = client
        .promote_deployment(&d1.id, true, &[])
        .await
        .expect_err("unhealthy canary");
    assert_eq!(e.status(), Some(400));
    assert!(e.to_string().contains("has 0/1 healthy allocations"), "{e}");

    // Bad input, each named.
    let path = format!("/v1/deployment/promote/{}", d1.id);
    let (code, msg) = raw(
        &server,
        Method::POST,
        &path,
        r#"{"DeploymentID":"other","All":true}"#,
    )
    .await;
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("does not match"), "{msg}");
    let (code, msg) = raw(&server, Method::POST, &path, r#"{"All":"yes"}"#).await;
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("All"), "{msg}");
    let (code, msg) = raw(&server, Method::POST, &path, "{}").await;
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("Groups"), "{msg}");
    let pause = format!("/v1/deployment/pause/{}", d1.id);
    let (code, msg) = raw(&server, Method::POST, &pause, "{}").await;
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("Pause must be specified"), "{msg}");
    let health = format!("/v1/deployment/allocation-health/{}", d1.id);
    let (code, msg) = raw(&server, Method::POST, &health, "{}").await;
    assert_eq!(code, 400, "{msg}");
    let (code, msg) = raw(
        &server,
        Method::POST,
        &health,
        &format!(r#"{{"HealthyAllocationIDs":["{}"]}}"#, ids[0]),
    )
    .await;
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains("is not part of deployment"), "{msg}");
    let (code, _) = raw(&server, Method::POST, "/v1/deployment/fail/nope", "").await;
    assert_eq!(code, 404);
    let (code, _) = raw(
        &server,
        Method::POST,
        &format!("/v1/deployment/explode/{}", d1.id),
        "",
    )
    .await;
    assert_eq!(code, 404);
    let (code, _) = raw(&server, Method::GET, "/v1/deployment/allocations/nope", "").await;
    assert_eq!(code, 404);

    // Pause and resume.
    let r = client.pause_deployment(&d1.id, true).await.expect("pause");
    assert!(r.index > 0);
    let d = wait_deployment(&client, "paused", |d| d.status == "paused").await;
    assert_eq!(d.status_description, "Deployment is paused");
    client
        .pause_deployment(&d1.id, false)
        .await
        .expect("resume");
    let d = wait_deployment(&client, "resumed", |d| d.status == "running").await;
    assert_eq!(
        d.status_description,
        "Deployment is running but requires manual promotion"
    );

    // Healthy canary, promoted by hand: the rest rolls and the deployment succeeds.
    let canary = d.task_groups["app"].placed_canaries.clone();
    client
        .set_deployment_alloc_health(&d1.id, &canary, &[])
        .await
        .expect("healthy canary");
    let r = client
        .promote_deployment(&d1.id, false, &["app".to_string()])
        .await
        .expect("promote");
    assert!(!r.eval_id.is_empty());
    let d = wait_deployment(&client, "v1 promoted and placed", |d| {
        d.task_groups["app"].promoted && d.task_groups["app"].placed_allocs == 2
    })
    .await;
    let rest: Vec<String> = unhealthy_yet(&client, &d.id)
        .await
        .into_iter()
        .filter(|id| !canary.contains(id))
        .collect();
    client
        .set_deployment_alloc_health(&d.id, &rest, &[])
        .await
        .expect("healthy rest");
    wait_deployment(&client, "v1 successful", |d| d.status == "successful").await;

    // v2, failed by hand.
    client
        .register_job(&job("3", 0))
        .await
        .expect("register v2");
    let d2 = wait_deployment(&client, "v2 running", |d| d.job_version == 2).await;
    client.fail_deployment(&d2.id).await.expect("fail");
    let d2 = wait_deployment(&client, "v2 failed", |d| d.status == "failed").await;
    assert_eq!(d2.status_description, "Deployment marked as failed");
    let (all, _) = client
        .deployments(&QueryOptions::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 3);
    server.shutdown();
}
