//! The typed HTTP client for the orchestrator API (Nomad's routes and shapes).
//!
//! [`Client`] speaks HTTP/1 over `hyper-util`'s pooled client. Reads take
//! [`QueryOptions`] (blocking-query `index` and `wait`, `prefix`, `namespace`, `region`,
//! `stale`) and return a [`QueryMeta`] built from the `X-Nomad-*` headers, so a caller
//! waits for a change by passing back `meta.last_index`. A [`Config`] built with
//! [`Config::from_env`] honours `NOMAD_ADDR`, `NOMAD_TOKEN`, `NOMAD_NAMESPACE` and
//! `NOMAD_REGION`; [`Config::from_lookup`] takes the values from any source instead, and
//! nothing here changes the process environment.
//!
//! # Example
//!
//! ```no_run
//! use nomad_api::{Client, Config, QueryOptions};
//!
//! # async fn run() -> Result<(), nomad_api::Error> {
//! let client = Client::new(Config::from_env())?;
//! let (jobs, meta) = client.jobs(&QueryOptions::default()).await?;
//! println!("{} jobs at index {}", jobs.len(), meta.last_index);
//! // Wait up to a minute for the job list to change.
//! let q = QueryOptions { index: meta.last_index, wait: Some(std::time::Duration::from_secs(60)), ..Default::default() };
//! let (_jobs, _meta) = client.jobs(&q).await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use nomad_core::job::Job;
use nomad_core::structs::{
    Allocation, Deployment, Evaluation, Node, SchedulerConfiguration, ServiceRegistration,
};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

mod types;

pub use types::{
    AgentMember, AgentMembers, AllocListStub, DeploymentUpdateResponse, DesiredUpdates, DrainSpec,
    JobListStub, JobPlanResponse, JobRegisterResponse, JobSummary, JobValidateResponse,
    NodeListStub, NodeUpdateResponse, PlanAnnotations, QueryMeta, ServiceNamespaceList,
    ServiceStub, TaskGroupSummary, WriteResponse,
};

/// What can go wrong talking to the API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error status; `message` is its body.
    #[error("unexpected response code {status}: {message}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The body of the answer.
        message: String,
    },
    /// The address is not a usable `http://host:port` URL.
    #[error("invalid address {0:?}")]
    Address(String),
    /// The request could not be sent or the answer read.
    #[error("transport: {0}")]
    Transport(String),
    /// The answer was not the JSON expected.
    #[error("decoding the response of {path}: {message}")]
    Decode {
        /// The request path.
        path: String,
        /// What the decoder said.
        message: String,
    },
}

impl Error {
    /// The HTTP status, when the server answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Where and as whom to talk to the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The API's URL, `http://127.0.0.1:4646` by default.
    pub address: String,
    /// The ACL token sent as `X-Nomad-Token`.
    pub token: Option<String>,
    /// The namespace for requests that do not name one.
    pub namespace: Option<String>,
    /// The region for requests that do not name one.
    pub region: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            address: "http://127.0.0.1:4646".into(),
            token: None,
            namespace: None,
            region: None,
        }
    }
}

impl Config {
    /// A configuration for the API at `address`.
    pub fn with_address(address: impl Into<String>) -> Self {
        Config {
            address: address.into(),
            ..Config::default()
        }
    }

    /// Reads `NOMAD_ADDR`, `NOMAD_TOKEN`, `NOMAD_NAMESPACE` and `NOMAD_REGION` from the
    /// process environment (reading only).
    pub fn from_env() -> Self {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`Config::from_env`] with the values looked up through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let nonempty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let mut c = Config::default();
        if let Some(a) = nonempty("NOMAD_ADDR") {
            c.address = a;
        }
        c.token = nonempty("NOMAD_TOKEN");
        c.namespace = nonempty("NOMAD_NAMESPACE");
        c.region = nonempty("NOMAD_REGION");
        c
    }
}

/// Parameters of a read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryOptions {
    /// Blocking query: answer once the index is above this (0 answers at once).
    pub index: u64,
    /// Blocking query: the longest to wait (the server caps it at 5 minutes).
    pub wait: Option<Duration>,
    /// Only objects whose ID starts with this.
    pub prefix: Option<String>,
    /// The namespace (`*` for all, on list endpoints); overrides the config's.
    pub namespace: Option<String>,
    /// The region; overrides the config's.
    pub region: Option<String>,
    /// Allow any server to answer.
    pub stale: bool,
    /// Further parameters (`purge`, `tag`, `all`, ...).
    pub params: Vec<(String, String)>,
}

impl QueryOptions {
    /// A blocking query for changes after `index`, waiting at most `wait`.
    pub fn blocking(index: u64, wait: Duration) -> Self {
        QueryOptions {
            index,
            wait: Some(wait),
            ..QueryOptions::default()
        }
    }
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn go_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

/// The API client. Cloning it shares its connection pool.
#[derive(Clone)]
pub struct Client {
    http: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
    base: String,
    cfg: Config,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.base)
            .finish()
    }
}

impl Client {
    /// A client for `cfg`. Only `http://` addresses are supported so far.
    pub fn new(cfg: Config) -> Result<Client, Error> {
        let addr = cfg.address.trim().trim_end_matches('/').to_string();
        let base = if let Some(rest) = addr.strip_prefix("http://") {
            format!("http://{rest}")
        } else if addr.starts_with("https://") || addr.starts_with("unix://") {
            return Err(Error::Address(format!(
                "{addr}: only http:// addresses are supported by this client"
            )));
        } else if addr.contains("://") {
            return Err(Error::Address(addr));
        } else {
            format!("http://{addr}")
        };
        if base.parse::<hyper::Uri>().is_err() || base.len() <= "http://".len() {
            return Err(Error::Address(cfg.address.clone()));
        }
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
        Ok(Client { http, base, cfg })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn url(&self, path: &str, q: &QueryOptions) -> String {
        let mut params: Vec<(String, String)> = Vec::new();
        if q.index > 0 {
            params.push(("index".into(), q.index.to_string()));
        }
        if let Some(w) = q.wait {
            params.push(("wait".into(), go_duration(w)));
        }
        if let Some(p) = &q.prefix {
            params.push(("prefix".into(), p.clone()));
        }
        if let Some(ns) = q.namespace.as_ref().or(self.cfg.namespace.as_ref()) {
            params.push(("namespace".into(), ns.clone()));
        }
        if let Some(r) = q.region.as_ref().or(self.cfg.region.as_ref()) {
            params.push(("region".into(), r.clone()));
        }
        if q.stale {
            params.push(("stale".into(), String::new()));
        }
        params.extend(q.params.iter().cloned());
        let mut url = format!("{}{}", self.base, path);
        if !params.is_empty() {
            let qs: Vec<String> = params
                .iter()
                .map(|(k, v)| {
                    if v.is_empty() {
                        encode(k)
                    } else {
                        format!("{}={}", encode(k), encode(v))
                    }
                })
                .collect();
            url.push('?');
            url.push_str(&qs.join("&"));
        }
        url
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        q: &QueryOptions,
        body: Option<&Value>,
    ) -> Result<(Bytes, QueryMeta), Error> {
        let url = self.url(path, q);
        let mut req = Request::builder().method(method).uri(&url);
        if let Some(t) = &self.cfg.token {
            req = req.header("X-Nomad-Token", t.as_str());
        }
        let body = match body {
            Some(v) => {
                req = req.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                let bytes = serde_json::to_vec(v).map_err(|e| Error::Transport(e.to_string()))?;
                Full::new(Bytes::from(bytes))
            }
            None => Full::new(Bytes::new()),
        };
        let req = req
            .body(body)
            .map_err(|e| Error::Transport(format!("{url}: {e}")))?;
        let resp = self
            .http
            .request(req)
            .await
            .map_err(|e| Error::Transport(format!("{url}: {e}")))?;
        let status = resp.status();
        let h = resp.headers();
        let num = |k: &str| {
            h.get(k)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let meta = QueryMeta {
            last_index: num("X-Nomad-Index"),
            known_leader: h
                .get("X-Nomad-KnownLeader")
                .is_some_and(|v| v.as_bytes() == b"true"),
            last_contact_ms: num("X-Nomad-LastContact"),
        };
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::Transport(format!("{url}: {e}")))?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(Error::Status {
                status: status.as_u16(),
                message: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        Ok((bytes, meta))
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        q: &QueryOptions,
    ) -> Result<(T, QueryMeta), Error> {
        let (bytes, meta) = self.raw(Method::GET, path, q, None).await?;
        let v = serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        Ok((v, meta))
    }

    async fn write<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        q: &QueryOptions,
        body: Option<&Value>,
    ) -> Result<T, Error> {
        let (bytes, _) = self.raw(method, path, q, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    fn job_path(id: &str, sub: &str) -> String {
        if sub.is_empty() {
            format!("/v1/job/{}", encode(id))
        } else {
            format!("/v1/job/{}/{sub}", encode(id))
        }
    }

    // ---- jobs ----

    /// `GET /v1/jobs`.
    pub async fn jobs(&self, q: &QueryOptions) -> Result<(Vec<JobListStub>, QueryMeta), Error> {
        self.get("/v1/jobs", q).await
    }

    /// `PUT /v1/jobs`: registers a job.
    pub async fn register_job(&self, job: &Job) -> Result<JobRegisterResponse, Error> {
        self.write(
            Method::PUT,
            "/v1/jobs",
            &QueryOptions::default(),
            Some(&json!({ "Job": job })),
        )
        .await
    }

    /// `PUT /v1/jobs` with `EnforceIndex`: registers only if the job's modify index is
    /// `index` (0: only if the job does not exist).
    pub async fn register_job_check_index(
        &self,
        job: &Job,
        index: u64,
    ) -> Result<JobRegisterResponse, Error> {
        let body = json!({ "Job": job, "EnforceIndex": true, "JobModifyIndex": index });
        self.write(
            Method::PUT,
            "/v1/jobs",
            &QueryOptions::default(),
            Some(&body),
        )
        .await
    }

    /// `POST /v1/jobs/parse`: parses HCL on the server.
    pub async fn parse_job(&self, hcl: &str, canonicalize: bool) -> Result<Job, Error> {
        let body = json!({ "JobHCL": hcl, "Canonicalize": canonicalize });
        self.write(
            Method::POST,
            "/v1/jobs/parse",
            &QueryOptions::default(),
            Some(&body),
        )
        .await
    }

    /// `POST /v1/validate/job`.
    pub async fn validate_job(&self, job: &Job) -> Result<JobValidateResponse, Error> {
        self.write(
            Method::POST,
            "/v1/validate/job",
            &QueryOptions::default(),
            Some(&json!({ "Job": job })),
        )
        .await
    }

    /// `GET /v1/job/:id`.
    pub async fn job(&self, id: &str, q: &QueryOptions) -> Result<(Job, QueryMeta), Error> {
        self.get(&Self::job_path(id, ""), q).await
    }

    /// `DELETE /v1/job/:id` (`purge` removes it for good).
    pub async fn deregister_job(
        &self,
        id: &str,
        purge: bool,
    ) -> Result<JobRegisterResponse, Error> {
        let mut q = QueryOptions::default();
        if purge {
            q.params.push(("purge".into(), "true".into()));
        }
        self.write(Method::DELETE, &Self::job_path(id, ""), &q, None)
            .await
    }

    /// `POST /v1/job/:id/plan`.
    pub async fn plan_job(&self, job: &Job, diff: bool) -> Result<JobPlanResponse, Error> {
        let body = json!({ "Job": job, "Diff": diff });
        self.write(
            Method::POST,
            &Self::job_path(&job.id, "plan"),
            &QueryOptions::default(),
            Some(&body),
        )
        .await
    }

    /// `POST /v1/job/:id/evaluate`.
    pub async fn evaluate_job(&self, id: &str) -> Result<JobRegisterResponse, Error> {
        self.write(
            Method::POST,
            &Self::job_path(id, "evaluate"),
            &QueryOptions::default(),
            Some(&json!({})),
        )
        .await
    }

    /// `POST /v1/job/:id/revert`: registers `version` again as the job's next version;
    /// with `enforce_prior`, only while that version is the current one.
    pub async fn revert_job(
        &self,
        id: &str,
        version: u64,
        enforce_prior: Option<u64>,
    ) -> Result<JobRegisterResponse, Error> {
        let mut body = json!({ "JobID": id, "JobVersion": version });
        if let Some(v) = enforce_prior {
            body["EnforcePriorVersion"] = json!(v);
        }
        self.write(
            Method::POST,
            &Self::job_path(id, "revert"),
            &QueryOptions::default(),
            Some(&body),
        )
        .await
    }

    /// `GET /v1/job/:id/allocations`.
    pub async fn job_allocations(
        &self,
        id: &str,
        q: &QueryOptions,
    ) -> Result<(Vec<AllocListStub>, QueryMeta), Error> {
        self.get(&Self::job_path(id, "allocations"), q).await
    }

    /// `GET /v1/job/:id/evaluations`.
    pub async fn job_evaluations(
        &self,
        id: &str,
        q: &QueryOptions,
    ) -> Result<(Vec<Evaluation>, QueryMeta), Error> {
        self.get(&Self::job_path(id, "evaluations"), q).await
    }

    /// `GET /v1/job/:id/summary`.
    pub async fn job_summary(
        &self,
        id: &str,
        q: &QueryOptions,
    ) -> Result<(JobSummary, QueryMeta), Error> {
        self.get(&Self::job_path(id, "summary"), q).await
    }

    /// `GET /v1/job/:id/versions`: newest first.
    pub async fn job_versions(
        &self,
        id: &str,
        q: &QueryOptions,
    ) -> Result<(Vec<Job>, QueryMeta), Error> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Versions {
            versions: Vec<Job>,
        }
        let (v, m): (Versions, QueryMeta) = self.get(&Self::job_path(id, "versions"), q).await?;
        Ok((v.versions, m))
    }

    /// `GET /v1/job/:id/deployments`.
    pub async fn job_deployments(
        &self,
        id: &str,
        q: &QueryOptions,
    ) -> Result<(Vec<Deployment>, QueryMeta), Error> {
        self.get(&Self::job_path(id, "deployments"), q).await
    }

    /// `GET /v1/job/:id/services`.
    pub async fn job_services(
        &self,
        id: &str,
        q: &QueryOptions,
    ) -> Result<(Vec<ServiceRegistration>, QueryMeta), Error> {
        self.get(&Self::job_path(id, "services"), q).await
    }

    // ---- nodes ----

    /// `GET /v1/nodes`.
    pub async fn nodes(&self, q: &QueryOptions) -> Result<(Vec<NodeListStub>, QueryMeta), Error> {
        self.get("/v1/nodes", q).await
    }

    /// `GET /v1/node/:id`.
    pub async fn node(&self, id: &str, q: &QueryOptions) -> Result<(Node, QueryMeta), Error> {
        self.get(&format!("/v1/node/{}", encode(id)), q).await
    }

    /// `GET /v1/node/:id/allocations`: what a client agent watches with blocking queries.
    pub async fn node_allocations(
        &self,
        id: &str,
        q: &QueryOptions,
    ) -> Result<(Vec<Allocation>, QueryMeta), Error> {
        self.get(&format!("/v1/node/{}/allocations", encode(id)), q)
            .await
    }

    /// `POST /v1/node/:id/drain`: `None` stops draining.
    pub async fn drain_node(
        &self,
        id: &str,
        spec: Option<&DrainSpec>,
        mark_eligible: bool,
    ) -> Result<NodeUpdateResponse, Error> {
        let body = json!({ "DrainSpec": spec, "MarkEligible": mark_eligible });
        self.write(
            Method::POST,
            &format!("/v1/node/{}/drain", encode(id)),
            &QueryOptions::default(),
            Some(&body),
        )
        .await
    }

    /// `POST /v1/node/:id/eligibility` with `eligible` or `ineligible`.
    pub async fn node_eligibility(
        &self,
        id: &str,
        eligibility: &str,
    ) -> Result<NodeUpdateResponse, Error> {
        let body = json!({ "Eligibility": eligibility });
        self.write(
            Method::POST,
            &format!("/v1/node/{}/eligibility", encode(id)),
            &QueryOptions::default(),
            Some(&body),
        )
        .await
    }

    // ---- allocations, evaluations, deployments ----

    /// `GET /v1/allocations`.
    pub async fn allocations(
        &self,
        q: &QueryOptions,
    ) -> Result<(Vec<AllocListStub>, QueryMeta), Error> {
        self.get("/v1/allocations", q).await
    }

    /// `GET /v1/allocation/:id`.
    pub async fn allocation(
        &self,
        id: &str,
        q: &QueryOptions,
    ) -> Result<(Allocation, QueryMeta), Error> {
        self.get(&format!("/v1/allocation/{}", encode(id)), q).await
    }

    /// `GET /v1/evaluations`.
    pub async fn evaluations(
        &self,
        q: &QueryOptions,
    ) -> Result<(Vec<Evaluation>, QueryMeta), Error> {
        self.get("/v1/evaluations", q).await
    }

    /// `GET /v1/evaluation/:id`.
    pub async fn evaluation(
        &self,
        id: &str,
        q: &QueryOptions,
    ) -> Result<(Evaluation, QueryMeta), Error> {
        self.get(&format!("/v1/evaluation/{}", encode(id)), q).await
    }

    /// `GET /v1/deployments`.
    pub async fn deployments(
        &self,
        q: &QueryOptions,
    ) -> Result<(Vec<Deployment>, QueryMeta), Error> {
        self.get("/v1/deployments", q).await
    }

    /// `GET /v1/deployment/:id`.
    pub async fn deployment(
        &self,
        id: &str,
        q: &QueryOptions,
    ) -> Result<(Deployment, QueryMeta), Error> {
        self.get(&format!("/v1/deployment/{}", encode(id)), q).await
    }

    /// `GET /v1/deployment/allocations/:id`: the allocations a deployment placed.
    pub async fn deployment_allocations(
        &self,
        id: &str,
        q: &QueryOptions,
    ) -> Result<(Vec<AllocListStub>, QueryMeta), Error> {
        self.get(&format!("/v1/deployment/allocations/{}", encode(id)), q)
            .await
    }

    /// `GET /v1/job/:id/deployment`: the job's latest deployment, if it has one.
    pub async fn job_latest_deployment(
        &self,
        id: &str,
        q: &QueryOptions,
    ) -> Result<(Option<Deployment>, QueryMeta), Error> {
        self.get(&Self::job_path(id, "deployment"), q).await
    }

    /// `POST /v1/deployment/promote/:id`: promotes the canaries of every group (`all`) or
    /// of the groups named.
    pub async fn promote_deployment(
        &self,
        id: &str,
        all: bool,
        groups: &[String],
    ) -> Result<DeploymentUpdateResponse, Error> {
        let body = json!({ "DeploymentID": id, "All": all, "Groups": groups });
        self.deployment_write("promote", id, &body).await
    }

    /// `POST /v1/deployment/fail/:id`.
    pub async fn fail_deployment(&self, id: &str) -> Result<DeploymentUpdateResponse, Error> {
        self.deployment_write("fail", id, &json!({ "DeploymentID": id }))
            .await
    }

    /// `POST /v1/deployment/pause/:id`: pauses (`pause`) or resumes a deployment.
    pub async fn pause_deployment(
        &self,
        id: &str,
        pause: bool,
    ) -> Result<DeploymentUpdateResponse, Error> {
        let body = json!({ "DeploymentID": id, "Pause": pause });
        self.deployment_write("pause", id, &body).await
    }

    /// `POST /v1/deployment/allocation-health/:id`: sets allocations' health by hand.
    pub async fn set_deployment_alloc_health(
        &self,
        id: &str,
        healthy: &[String],
        unhealthy: &[String],
    ) -> Result<DeploymentUpdateResponse, Error> {
        let body = json!({
            "DeploymentID": id,
            "HealthyAllocationIDs": healthy,
            "UnhealthyAllocationIDs": unhealthy,
        });
        self.deployment_write("allocation-health", id, &body).await
    }

    async fn deployment_write(
        &self,
        verb: &str,
        id: &str,
        body: &Value,
    ) -> Result<DeploymentUpdateResponse, Error> {
        self.write(
            Method::POST,
            &format!("/v1/deployment/{verb}/{}", encode(id)),
            &QueryOptions::default(),
            Some(body),
        )
        .await
    }

    // ---- services ----

    /// `GET /v1/services`.
    pub async fn services(
        &self,
        q: &QueryOptions,
    ) -> Result<(Vec<ServiceNamespaceList>, QueryMeta), Error> {
        self.get("/v1/services", q).await
    }

    /// `GET /v1/service/:name`, optionally only instances tagged `tag`.
    pub async fn service(
        &self,
        name: &str,
        tag: Option<&str>,
        q: &QueryOptions,
    ) -> Result<(Vec<ServiceRegistration>, QueryMeta), Error> {
        let mut q = q.clone();
        if let Some(t) = tag {
            q.params.push(("tag".into(), t.to_string()));
        }
        self.get(&format!("/v1/service/{}", encode(name)), &q).await
    }

    /// `DELETE /v1/service/:name/:id`.
    pub async fn delete_service(&self, name: &str, id: &str) -> Result<WriteResponse, Error> {
        self.write(
            Method::DELETE,
            &format!("/v1/service/{}/{}", encode(name), encode(id)),
            &QueryOptions::default(),
            None,
        )
        .await
    }

    // ---- agent, status, operator, metrics ----

    /// `GET /v1/agent/self`.
    pub async fn agent_self(&self) -> Result<Value, Error> {
        Ok(self
            .get("/v1/agent/self", &QueryOptions::default())
            .await?
            .0)
    }

    /// `GET /v1/agent/members`.
    pub async fn agent_members(&self) -> Result<AgentMembers, Error> {
        Ok(self
            .get("/v1/agent/members", &QueryOptions::default())
            .await?
            .0)
    }

    /// `GET /v1/status/leader`.
    pub async fn status_leader(&self) -> Result<String, Error> {
        Ok(self
            .get("/v1/status/leader", &QueryOptions::default())
            .await?
            .0)
    }

    /// `GET /v1/status/peers`.
    pub async fn status_peers(&self) -> Result<Vec<String>, Error> {
        Ok(self
            .get("/v1/status/peers", &QueryOptions::default())
            .await?
            .0)
    }

    /// `GET /v1/regions`.
    pub async fn regions(&self) -> Result<Vec<String>, Error> {
        Ok(self.get("/v1/regions", &QueryOptions::default()).await?.0)
    }

    /// `GET /v1/operator/scheduler/configuration`.
    pub async fn scheduler_configuration(
        &self,
        q: &QueryOptions,
    ) -> Result<(SchedulerConfiguration, QueryMeta), Error> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Resp {
            scheduler_config: SchedulerConfiguration,
        }
        let (r, m): (Resp, QueryMeta) = self.get("/v1/operator/scheduler/configuration", q).await?;
        Ok((r.scheduler_config, m))
    }

    /// `PUT /v1/operator/scheduler/configuration`.
    pub async fn set_scheduler_configuration(
        &self,
        cfg: &SchedulerConfiguration,
    ) -> Result<WriteResponse, Error> {
        let body = serde_json::to_value(cfg).map_err(|e| Error::Transport(e.to_string()))?;
        self.write(
            Method::PUT,
            "/v1/operator/scheduler/configuration",
            &QueryOptions::default(),
            Some(&body),
        )
        .await
    }

    /// `GET /v1/metrics` as JSON.
    pub async fn metrics(&self) -> Result<Value, Error> {
        Ok(self.get("/v1/metrics", &QueryOptions::default()).await?.0)
    }

    /// `GET /v1/metrics?format=prometheus`.
    pub async fn metrics_prometheus(&self) -> Result<String, Error> {
        let q = QueryOptions {
            params: vec![("format".into(), "prometheus".into())],
            ..QueryOptions::default()
        };
        let (bytes, _) = self.raw(Method::GET, "/v1/metrics", &q, None).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    // ---- client agent routes ----

    /// Registers a client's node (`PUT /v1/client/node/register`).
    pub async fn register_node(&self, node: &Node) -> Result<NodeUpdateResponse, Error> {
        self.write(
            Method::PUT,
            "/v1/client/node/register",
            &QueryOptions::default(),
            Some(&json!({ "Node": node })),
        )
        .await
    }

    /// Heartbeats a node, optionally changing its status
    /// (`PUT /v1/client/node/:id/heartbeat`).
    pub async fn heartbeat(
        &self,
        node_id: &str,
        status: Option<&str>,
    ) -> Result<NodeUpdateResponse, Error> {
        let body = json!({ "Status": status.unwrap_or("") });
        self.write(
            Method::PUT,
            &format!("/v1/client/node/{}/heartbeat", encode(node_id)),
            &QueryOptions::default(),
            Some(&body),
        )
        .await
    }

    /// Pushes allocation status (`PUT /v1/client/allocations`).
    pub async fn update_allocations(&self, allocs: &[Allocation]) -> Result<WriteResponse, Error> {
        self.write(
            Method::PUT,
            "/v1/client/allocations",
            &QueryOptions::default(),
            Some(&json!({ "Allocs": allocs })),
        )
        .await
    }

    /// Registers native service instances (`PUT /v1/client/services`).
    pub async fn register_services(
        &self,
        services: &[ServiceRegistration],
    ) -> Result<WriteResponse, Error> {
        self.write(
            Method::PUT,
            "/v1/client/services",
            &QueryOptions::default(),
            Some(&json!({ "Services": services })),
        )
        .await
    }

    /// Removes every service instance of some allocations
    /// (`PUT /v1/client/services/deregister`).
    pub async fn deregister_alloc_services(
        &self,
        alloc_ids: &[String],
    ) -> Result<WriteResponse, Error> {
        self.write(
            Method::PUT,
            "/v1/client/services/deregister",
            &QueryOptions::default(),
            Some(&json!({ "AllocIDs": alloc_ids })),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_lookup_uses_given_values_only() {
        let c = Config::from_lookup(|k| match k {
            "NOMAD_ADDR" => Some("http://10.0.0.1:4646".into()),
            "NOMAD_TOKEN" => Some("secret".into()),
            "NOMAD_NAMESPACE" => Some("prod".into()),
            "NOMAD_REGION" => Some("".into()),
            _ => None,
        });
        assert_eq!(c.address, "http://10.0.0.1:4646");
        assert_eq!(c.token.as_deref(), Some("secret"));
        assert_eq!(c.namespace.as_deref(), Some("prod"));
        assert_eq!(c.region, None);
        assert_eq!(Config::from_lookup(|_| None), Config::default());
    }

    #[test]
    fn urls_carry_query_options() {
        let mut cfg = Config::with_address("127.0.0.1:4646");
        cfg.namespace = Some("prod".into());
        let c = Client::new(cfg).expect("client");
        let q = QueryOptions {
            index: 7,
            wait: Some(Duration::from_secs(2)),
            prefix: Some("a b".into()),
            stale: true,
            ..QueryOptions::default()
        };
        assert_eq!(
            c.url("/v1/jobs", &q),
            "http://127.0.0.1:4646/v1/jobs?index=7&wait=2000ms&prefix=a%20b&namespace=prod&stale"
        );
    }

    #[test]
    fn bad_addresses_are_refused() {
        assert!(Client::new(Config::with_address("https://x:1")).is_err());
        assert!(Client::new(Config::with_address("ftp://x")).is_err());
        assert!(Client::new(Config::with_address("")).is_err());
    }
}
