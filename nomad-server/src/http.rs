//! The HTTP API, following Nomad's routes, query parameters, headers, shapes and status
//! codes for what is built.
//!
//! Reads take `namespace`, `region`, `prefix`, `stale` and blocking-query `index` / `wait`
//! parameters and answer with `X-Nomad-Index`, `X-Nomad-KnownLeader` and
//! `X-Nomad-LastContact`. Errors are plain text with Nomad's status codes: 400 for bad
//! input, 404 for unknown objects, 405 for a wrong method, 413 for an oversized body.
//! Client agents use the same API plus a few routes under `/v1/client/` (register,
//! heartbeat, allocation updates, service registrations).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use nomad_core::job::Job;
use nomad_core::structs::{
    Allocation, DrainStrategy, Evaluation, Node, SchedulerConfiguration, ServiceRegistration,
};
use serde_json::{json, Value};

use crate::state::{StateSnapshot, Table};
use crate::{Server, ServerError};

type Resp = Response<Full<Bytes>>;

/// The longest a blocking query waits (Nomad's limit), and the default.
const MAX_WAIT: Duration = Duration::from_secs(300);

/// An error answer: status code and plain-text message.
#[derive(Debug)]
struct HttpError(StatusCode, String);

impl HttpError {
    fn bad(msg: impl Into<String>) -> Self {
        HttpError(StatusCode::BAD_REQUEST, msg.into())
    }
    fn not_found(what: &str) -> Self {
        HttpError(StatusCode::NOT_FOUND, format!("{what} not found"))
    }
}

impl From<ServerError> for HttpError {
    fn from(e: ServerError) -> Self {
        let code = match &e {
            ServerError::NotFound(_) => StatusCode::NOT_FOUND,
            ServerError::BadRequest(_)
            | ServerError::TokenMismatch(_)
            | ServerError::NotOutstanding(_) => StatusCode::BAD_REQUEST,
            ServerError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ServerError::Storage(_) | ServerError::NoLeader | ServerError::BrokerDisabled => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        HttpError(code, e.to_string())
    }
}

type HResult = Result<Resp, HttpError>;

/// Binds `addr` and serves the API until the server shuts down; returns the bound address.
pub(crate) async fn serve(server: Server, addr: SocketAddr) -> Result<SocketAddr, ServerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServerError::Storage(format!("binding the HTTP API on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| ServerError::Storage(format!("HTTP API address: {e}")))?;
    let mut stop = server.shutdown_signal();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.changed() => return,
            };
            let (stream, _) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let srv = server.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(srv.clone(), req));
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                {
                    tracing::debug!(error = %e, "HTTP connection ended");
                }
            });
        }
    });
    Ok(local)
}

async fn handle(server: Server, req: Request<Incoming>) -> Result<Resp, Infallible> {
    Ok(server.handle_http(req).await)
}

/// The body a request of the API may arrive with: hyper's own, or any other whose chunks
/// are [`Bytes`].
pub trait RequestBody: hyper::body::Body<Data = Bytes, Error = Self::Failure> + Send {
    /// The body's error.
    type Failure: Into<Box<dyn std::error::Error + Send + Sync>>;
}

impl<B> RequestBody for B
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Failure = B::Error;
}

impl Server {
    /// Answers one request of the HTTP API in process, exactly as the server's listener
    /// would: for an agent that serves the API on a listener of its own and hands the
    /// server's routes over without another network hop.
    pub async fn handle_http<B: RequestBody>(&self, req: Request<B>) -> Response<Full<Bytes>> {
        self.metrics().http_requests.fetch_add(1, Ordering::Relaxed);
        match route(self, req).await {
            Ok(mut r) => {
                leader_headers(self, &mut r);
                r
            }
            Err(HttpError(code, msg)) => text(code, msg),
        }
    }
}

/// Fills `X-Nomad-KnownLeader` and `X-Nomad-LastContact` from the replicated log on every
/// response that carries them.
fn leader_headers(server: &Server, r: &mut Resp) {
    let h = r.headers_mut();
    if !h.contains_key("X-Nomad-KnownLeader") {
        return;
    }
    let log = server.log();
    let known = if log.leader().is_some() {
        "true"
    } else {
        "false"
    };
    h.insert("X-Nomad-KnownLeader", HeaderValue::from_static(known));
    if let Ok(v) = HeaderValue::from_str(&log.last_contact_ms().to_string()) {
        h.insert("X-Nomad-LastContact", v);
    }
}

fn text(code: StatusCode, msg: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(msg)));
    *r.status_mut() = code;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json_resp(value: &Value, index: Option<u64>) -> HResult {
    let body = serde_json::to_vec(value)
        .map_err(|e| HttpError(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding: {e}")))?;
    let mut r = Response::new(Full::new(Bytes::from(body)));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(i) = index {
        if let Ok(v) = HeaderValue::from_str(&i.max(1).to_string()) {
            h.insert("X-Nomad-Index", v);
        }
    }
    h.insert("X-Nomad-KnownLeader", HeaderValue::from_static("true"));
    h.insert("X-Nomad-LastContact", HeaderValue::from_static("0"));
    Ok(r)
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, HttpError> {
    serde_json::to_value(v)
        .map_err(|e| HttpError(StatusCode::INTERNAL_SERVER_ERROR, format!("encoding: {e}")))
}

// ---- query parameters ----

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Query {
    params: HashMap<String, String>,
    index: u64,
    wait: Duration,
    namespace: String,
    prefix: String,
}

impl Query {
    fn get(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }
    /// A boolean parameter: present without a value, or any spelling of true Nomad's
    /// clients send (`1`, `t`, `T`, `true`, `TRUE`, `True`).
    fn flag(&self, k: &str) -> bool {
        self.params
            .get(k)
            .is_some_and(|v| v.is_empty() || parse_go_bool(v) == Some(true))
    }
    fn all_namespaces(&self) -> bool {
        self.namespace == "*"
    }
    fn ns_matches(&self, ns: &str) -> bool {
        self.all_namespaces() || crate::ns_or_default(ns) == self.namespace
    }
}

fn parse_query(server: &Server, raw: Option<&str>) -> Result<Query, HttpError> {
    let mut params = HashMap::new();
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params.insert(percent_decode(k), percent_decode(v));
    }
    let index = match params.get("index") {
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| HttpError::bad(format!("Invalid index: {v:?} is not a number")))?,
        None => 0,
    };
    let wait = match params.get("wait") {
        Some(v) => {
            let d = nomad_core::job::Duration::parse(v)
                .map_err(|e| HttpError::bad(format!("Invalid wait time {v:?}: {e}")))?;
            d.to_std().min(MAX_WAIT)
        }
        None => MAX_WAIT,
    };
    if let Some(r) = params.get("region") {
        if !r.is_empty() && r != &server.config().region {
            return Err(HttpError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("No path to region {r:?}"),
            ));
        }
    }
    let namespace = match params.get("namespace") {
        Some(n) if !n.is_empty() => n.clone(),
        _ => "default".to_string(),
    };
    let prefix = params.get("prefix").cloned().unwrap_or_default();
    Ok(Query {
        params,
        index,
        wait,
        namespace,
        prefix,
    })
}

// ---- bodies ----

async fn read_body<B: RequestBody>(server: &Server, req: Request<B>) -> Result<Bytes, HttpError> {
    let limit = server.config().max_body_bytes;
    let too_large = || {
        HttpError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body too large: the limit is {limit} bytes"),
        )
    };
    if let Some(len) = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(too_large());
        }
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(too_large())
            } else {
                Err(HttpError::bad(format!(
                    "Failed to read the request body: {e}"
                )))
            }
        }
    }
}

fn parse_json_body(bytes: &[u8]) -> Result<Value, HttpError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(HttpError::bad("Request body is empty"));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| HttpError::bad(format!("Failed to decode request body: {e}")))
}

fn field<T: serde::de::DeserializeOwned + Default>(
    body: &Value,
    name: &str,
) -> Result<T, HttpError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(T::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            HttpError::bad(format!("Failed to decode request body: field {name}: {e}"))
        }),
    }
}

fn job_from_body(body: &Value) -> Result<Job, HttpError> {
    let Some(j) = body.get("Job").filter(|j| !j.is_null()) else {
        return Err(HttpError::bad("Job must be specified"));
    };
    nomad_core::jobspec::job_from_json_value(j.clone(), "request body")
        .map_err(|e| HttpError::bad(format!("Failed to decode job: {e}")))
}

// ---- routing ----

async fn route<B: RequestBody>(server: &Server, req: Request<B>) -> HResult {
    let q = parse_query(server, req.uri().query())?;
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let segs: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let get = method == Method::GET;
    let put = method == Method::PUT || method == Method::POST;
    let del = method == Method::DELETE;
    let bad_method = || {
        Err(HttpError(
            StatusCode::METHOD_NOT_ALLOWED,
            "Invalid method".into(),
        ))
    };
    match segs.as_slice() {
        ["v1", "jobs"] if get => jobs_list(server, &q).await,
        ["v1", "jobs"] if put => {
            let body = parse_json_body(&read_body(server, req).await?)?;
            job_register(server, &q, &body, None).await
        }
        ["v1", "jobs", "parse"] if put => {
            let body = parse_json_body(&read_body(server, req).await?)?;
            jobs_parse(&body)
        }
        ["v1", "validate", "job"] if put => {
            let body = parse_json_body(&read_body(server, req).await?)?;
            validate_job(server, &body)
        }
        ["v1", "job", id] if get => {
            let id = id.to_string();
            blocking(server, &q, &[Table::Jobs], |s| {
                let j = s.job(&q_ns(&q), &id).ok_or_else(|| HttpError::not_found("job"))?;
                to_value(j.as_ref())
            })
            .await
        }
        ["v1", "job", id] if put => {
            let body = parse_json_body(&read_body(server, req).await?)?;
            job_register(server, &q, &body, Some(id)).await
        }
        ["v1", "job", id] if del => {
            let r = server.deregister_job(&q.namespace, id, q.flag("purge")).await?;
            json_resp(
                &json!({"EvalID": r.eval_id, "EvalCreateIndex": r.eval_create_index,
                        "JobModifyIndex": r.job_modify_index, "Index": r.index}),
                Some(r.index),
            )
        }
        ["v1", "job", id, "plan"] if put => {
            let body = parse_json_body(&read_body(server, req).await?)?;
            job_plan(server, &q, &body, id)
        }
        ["v1", "job", id, "evaluate"] if put => {
            let r = server.evaluate_job(&q.namespace, id).await?;
            json_resp(
                &json!({"EvalID": r.eval_id, "EvalCreateIndex": r.eval_create_index,
                        "JobModifyIndex": r.job_modify_index, "Index": r.index}),
                Some(r.index),
            )
        }
        ["v1", "job", id, "revert"] if put => {
            let body = parse_json_body(&read_body(server, req).await?)?;
            job_revert(server, &q, &body, id).await
        }
        ["v1", "job", id, sub] if get => job_sub(server, q, id, sub).await,
        ["v1", "nodes"] if get => {
            blocking(server, &q, &[Table::Nodes], |s| {
                let mut v: Vec<Value> = s
                    .node_list()
                    .iter()
                    .filter(|n| n.id.starts_with(&q.prefix))
                    .map(|n| node_stub(n, q.flag("resources")))
                    .collect();
                v.sort_by(|a, b| a["ID"].as_str().cmp(&b["ID"].as_str()));
                Ok(Value::Array(v))
            })
            .await
        }
        ["v1", "node", id] if get => {
            let id = id.to_string();
            blocking(server, &q, &[Table::Nodes], |s| {
                let n = find_node(s, &id)?;
                let mut v = to_value(n.as_ref())?;
                if let Some(o) = v.as_object_mut() {
                    o.remove("SecretID");
                }
                Ok(v)
            })
            .await
        }
        ["v1", "node", id, "allocations"] if get => {
            let id = id.to_string();
            blocking(server, &q, &[Table::Allocs], |s| {
                let v: Vec<Value> = s
                    .node_allocs(&id)
                    .iter()
                    .filter_map(|a| s.alloc_with_job(&a.id))
                    .map(|a| to_value(&a))
                    .collect::<Result<_, _>>()?;
                Ok(Value::Array(v))
            })
            .await
        }
        ["v1", "node", id, "drain"] if put => {
            let body = parse_json_body(&read_body(server, req).await?)?;
            let spec: Option<DrainSpec> = field(&body, "DrainSpec")?;
            let mark: bool = field(&body, "MarkEligible")?;
            let strategy = spec.map(|s| DrainStrategy {
                deadline: s.deadline,
                ignore_system_jobs: s.ignore_system_jobs,
                ..DrainStrategy::default()
            });
            let r = server.drain_node(id, strategy, mark).await?;
            node_update_resp(&r)
        }
        ["v1", "node", id, "eligibility"] if put => {
            let body = parse_json_body(&read_body(server, req).await?)?;
            let e: String = field(&body, "Eligibility")?;
            let r = server.set_node_eligibility(id, &e).await?;
            node_update_resp(&r)
        }
        ["v1", "allocations"] if get => {
            blocking(server, &q, &[Table::Allocs], |s| {
                let mut v: Vec<&Allocation> = s
                    .allocs()
                    .map(|a| a.as_ref())
                    .filter(|a| q.ns_matches(&a.namespace) && a.id.starts_with(&q.prefix))
                    .collect();
                v.sort_by(|a, b| (a.create_index, &a.id).cmp(&(b.create_index, &b.id)));
                Ok(Value::Array(v.iter().map(|a| alloc_stub(s, a, q.flag("resources"))).collect()))
            })
            .await
        }
        ["v1", "allocation", id] if get => {
            let id = id.to_string();
            blocking(server, &q, &[Table::Allocs], |s| {
                let a = find_alloc(s, &id)?;
                to_value(&a)
            })
            .await
        }
        ["v1", "evaluations"] if get => {
            blocking(server, &q, &[Table::Evals], |s| {
                let mut v: Vec<&Evaluation> = s
                    .evals()
                    .map(|e| e.as_ref())
                    .filter(|e| q.ns_matches(&e.namespace) && e.id.starts_with(&q.prefix))
                    .filter(|e| q.get("status").is_none_or(|st| e.status == st))
                    .filter(|e| q.get("job").is_none_or(|j| e.job_id == j))
                    .collect();
                v.sort_by(|a, b| (b.create_index, &b.id).cmp(&(a.create_index, &a.id)));
                to_value(&v)
            })
            .await
        }
        ["v1", "evaluation", id] if get => {
            let id = id.to_string();
            blocking(server, &q, &[Table::Evals], |s| {
                let e = s.eval(&id).ok_or_else(|| HttpError::not_found("eval"))?;
                to_value(e.as_ref())
            })
            .await
        }
        ["v1", "evaluation", id, "allocations"] if get => {
            let id = id.to_string();
            blocking(server, &q, &[Table::Allocs], |s| {
                let v: Vec<Value> = s
                    .allocs()
                    .filter(|a| a.eval_id == id)
                    .map(|a| alloc_stub(s, a, false))
                    .collect();
                Ok(Value::Array(v))
            })
            .await
        }
        ["v1", "deployments"] if get => {
            blocking(server, &q, &[Table::Deployments], |s| {
                let mut v: Vec<_> = s
                    .deployments()
                    .map(|d| d.as_ref())
                    .filter(|d| q.ns_matches(&d.namespace) && d.id.starts_with(&q.prefix))
                    .collect();
                v.sort_by_key(|d| std::cmp::Reverse(d.create_index));
                to_value(&v)
            })
            .await
        }
        ["v1", "deployment", id] if get => {
            let id = id.to_string();
            blocking(server, &q, &[Table::Deployments], |s| {
                let d = s.deployment(&id).ok_or_else(|| HttpError::not_found("deployment"))?;
                to_value(d.as_ref())
            })
            .await
        }
        ["v1", "deployment", "allocations", id] if get => {
            let id = id.to_string();
            blocking(server, &q, &[Table::Allocs, Table::Deployments], |s| {
                let d = s
                    .deployment(&id)
                    .ok_or_else(|| HttpError::not_found("deployment"))?;
                let mut v: Vec<&Allocation> = s
                    .job_allocs(&d.namespace, &d.job_id)
                    .iter()
                    .map(|a| a.as_ref())
                    .filter(|a| a.deployment_id == id)
                    .collect();
                v.sort_by(|a, b| (a.create_index, &a.id).cmp(&(b.create_index, &b.id)));
                Ok(Value::Array(v.iter().map(|a| alloc_stub(s, a, false)).collect()))
            })
            .await
        }
        ["v1", "deployment", verb, id] if put => {
            let (verb, id) = (verb.to_string(), id.to_string());
            deployment_write(server, req, &verb, &id).await
        }
        ["v1", "services"] if get => {
            blocking(server, &q, &[Table::Services], |s| {
                let mut by_ns: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
                for r in s.services().filter(|r| q.ns_matches(&r.namespace)) {
                    by_ns
                        .entry(crate::ns_or_default(&r.namespace).to_string())
                        .or_default()
                        .entry(r.service_name.clone())
                        .or_default()
                        .extend(r.tags.iter().cloned());
                }
                let v: Vec<Value> = by_ns
                    .into_iter()
                    .map(|(ns, svcs)| {
                        json!({"Namespace": ns, "Services": svcs.into_iter()
                            .map(|(n, t)| json!({"ServiceName": n, "Tags": t})).collect::<Vec<_>>()})
                    })
                    .collect();
                Ok(Value::Array(v))
            })
            .await
        }
        ["v1", "service", name] if get => {
            let name = name.to_string();
            blocking(server, &q, &[Table::Services], |s| {
                let v = s.service_instances(&q.namespace, &name, q.get("tag"));
                let v: Vec<&ServiceRegistration> = v.iter().map(|r| r.as_ref()).collect();
                to_value(&v)
            })
            .await
        }
        ["v1", "service", name, id] if del => {
            let index = server.delete_service(&q.namespace, name, id).await?;
            json_resp(&json!({"Index": index}), Some(index))
        }
        ["v1", "agent", "self"] if get => agent_self(server),
        ["v1", "agent", "members"] if get => agent_members(server),
        ["v1", "agent", "health"] if get => json_resp(
            &json!({"server": {"ok": true, "message": "ok"}}),
            None,
        ),
        ["v1", "status", "leader"] if get => {
            json_resp(&json!(server.log().leader().unwrap_or_default()), None)
        }
        ["v1", "status", "peers"] if get => json_resp(&json!(server.log().peers()), None),
        ["v1", "regions"] if get => json_resp(&json!([server.config().region]), None),
        ["v1", "operator", "raft", "configuration"] if get => raft_configuration(server),
        ["v1", "operator", "scheduler", "configuration"] if get => {
            let log = server.log();
            let (known, contact) = (log.leader().is_some(), log.last_contact_ms());
            blocking(server, &q, &[Table::SchedulerConfig], |s| {
                let c = s.scheduler_configuration();
                Ok(json!({"SchedulerConfig": to_value(c)?, "Index": c.modify_index.max(1),
                          "KnownLeader": known, "LastContact": contact}))
            })
            .await
        }
        ["v1", "operator", "scheduler", "configuration"] if put => {
            let body = parse_json_body(&read_body(server, req).await?)?;
            let cfg: SchedulerConfiguration = serde_json::from_value(body)
                .map_err(|e| HttpError::bad(format!("Failed to decode request body: {e}")))?;
            let index = server.set_scheduler_config(cfg).await?;
            json_resp(&json!({"Updated": true, "Index": index}), Some(index))
        }
        ["v1", "metrics"] if get => metrics(server, &q),
        ["v1", "client", "fs", "logs", _alloc] if get => Err(HttpError(
            StatusCode::NOT_IMPLEMENTED,
            "alloc logs need the client agent, which this server does not run yet".into(),
        )),
        // Client agent routes.
        ["v1", "client", "node", "register"] if put => {
            let body = parse_json_body(&read_body(server, req).await?)?;
            let node_value = body.get("Node").cloned().unwrap_or(body);
            let node: Node = serde_json::from_value(node_value)
                .map_err(|e| HttpError::bad(format!("Failed to decode node: {e}")))?;
            let r = server.register_node(node).await?;
            node_update_resp(&r)
        }
        ["v1", "client", "node", id, "heartbeat"] if put => {
            let bytes = read_body(server, req).await?;
            let st: String = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                String::new()
            } else {
                field(&parse_json_body(&bytes)?, "Status")?
            };
            let r = server
                .heartbeat(id, if st.is_empty() { None } else { Some(st.as_str()) })
                .await?;
            node_update_resp(&r)
        }
        ["v1", "client", "allocations"] if put => {
            let body = parse_json_body(&read_body(server, req).await?)?;
            let allocs: Vec<Allocation> = field(&body, "Allocs")?;
            let index = server.update_allocs_from_client(allocs).await?;
            json_resp(&json!({"Index": index}), Some(index))
        }
        ["v1", "client", "services"] if put => {
            let body = parse_json_body(&read_body(server, req).await?)?;
            let services: Vec<ServiceRegistration> = field(&body, "Services")?;
            let index = server.upsert_services(services).await?;
            json_resp(&json!({"Index": index}), Some(index))
        }
        ["v1", "client", "services", "deregister"] if put => {
            let body = parse_json_body(&read_body(server, req).await?)?;
            let ids: Vec<String> = field(&body, "AllocIDs")?;
            let index = server.delete_services_of_allocs(ids).await?;
            json_resp(&json!({"Index": index}), Some(index))
        }
        ["v1", "jobs"]
        | ["v1", "jobs", "parse"]
        | ["v1", "validate", "job"]
        | ["v1", "job", _]
        | ["v1", "job", _, _]
        | ["v1", "nodes"]
        | ["v1", "node", _]
        | ["v1", "node", _, _]
        | ["v1", "allocations"]
        | ["v1", "allocation", _]
        | ["v1", "evaluations"]
        | ["v1", "evaluation", _]
        | ["v1", "deployments"]
        | ["v1", "deployment", _]
        | ["v1", "deployment", _, _]
        | ["v1", "services"]
        | ["v1", "service", _]
        | ["v1", "service", _, _]
        | ["v1", "agent", _]
        | ["v1", "status", _]
        | ["v1", "regions"]
        | ["v1", "operator", "scheduler", "configuration"]
        | ["v1", "metrics"]
        | ["v1", "client", ..] => bad_method(),
        _ => Err(HttpError(StatusCode::NOT_FOUND, format!("Invalid URL path {path:?}"))),
    }
}

/// The deployment writes: `promote`, `fail`, `pause` and `allocation-health`.
async fn deployment_write<B: RequestBody>(
    server: &Server,
    req: Request<B>,
    verb: &str,
    id: &str,
) -> HResult {
    if !matches!(verb, "promote" | "fail" | "pause" | "allocation-health") {
        return Err(HttpError(
            StatusCode::NOT_FOUND,
            format!("Invalid URL path: unknown deployment endpoint {verb:?}"),
        ));
    }
    let bytes = read_body(server, req).await?;
    let body = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        json!({})
    } else {
        parse_json_body(&bytes)?
    };
    let body_id: String = field(&body, "DeploymentID")?;
    if !body_id.is_empty() && body_id != id {
        return Err(HttpError::bad(format!(
            "DeploymentID {body_id:?} in the body does not match {id:?} in the path"
        )));
    }
    let r = match verb {
        "promote" => {
            let all: bool = field(&body, "All")?;
            let groups: Vec<String> = field(&body, "Groups")?;
            server.promote_deployment(id, all, &groups).await?
        }
        "fail" => server.fail_deployment(id).await?,
        "pause" => {
            let pause: bool = match body.get("Pause") {
                None | Some(Value::Null) => {
                    return Err(HttpError::bad("Pause must be specified (true or false)"))
                }
                Some(_) => field(&body, "Pause")?,
            };
            server.pause_deployment(id, pause).await?
        }
        _ => {
            let healthy: Vec<String> = field(&body, "HealthyAllocationIDs")?;
            let unhealthy: Vec<String> = field(&body, "UnhealthyAllocationIDs")?;
            server
                .set_deployment_alloc_health(id, healthy, unhealthy)
                .await?
        }
    };
    json_resp(
        &json!({
            "EvalID": r.eval_id,
            "EvalCreateIndex": r.eval_create_index,
            "DeploymentModifyIndex": r.deployment_modify_index,
            "RevertedJobVersion": r.reverted_job_version,
            "Index": r.index,
        }),
        Some(r.index),
    )
}

fn q_ns(q: &Query) -> String {
    q.namespace.clone()
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct DrainSpec {
    deadline: i64,
    ignore_system_jobs: bool,
}

/// Runs a read as a blocking query over `tables`.
async fn blocking<F>(server: &Server, q: &Query, tables: &[Table], read: F) -> HResult
where
    F: FnOnce(&StateSnapshot) -> Result<Value, HttpError>,
{
    let deadline = tokio::time::Instant::now() + q.wait;
    let snap = server.state().watch_tables(tables, q.index, deadline).await;
    let index = snap.tables_index(tables);
    let v = read(&snap)?;
    json_resp(&v, Some(index))
}

fn node_update_resp(r: &crate::NodeUpdate) -> HResult {
    json_resp(
        &json!({
            "NodeModifyIndex": r.node_modify_index,
            "EvalIDs": r.eval_ids,
            "EvalCreateIndex": r.eval_create_index,
            "HeartbeatTTL": r.heartbeat_ttl.as_nanos() as u64,
            "Index": r.node_modify_index.max(r.eval_create_index),
        }),
        Some(r.node_modify_index.max(r.eval_create_index)),
    )
}

fn find_node(s: &StateSnapshot, id: &str) -> Result<std::sync::Arc<Node>, HttpError> {
    if let Some(n) = s.node(id) {
        return Ok(n);
    }
    let matches: Vec<_> = s
        .node_list()
        .iter()
        .filter(|n| n.id.starts_with(id))
        .collect();
    match matches.as_slice() {
        [one] if !id.is_empty() => Ok(std::sync::Arc::clone(one)),
        _ => Err(HttpError::not_found("node")),
    }
}

fn find_alloc(s: &StateSnapshot, id: &str) -> Result<Allocation, HttpError> {
    s.alloc_with_job(id)
        .ok_or_else(|| HttpError::not_found("alloc"))
}

async fn jobs_list(server: &Server, q: &Query) -> HResult {
    blocking(server, q, &[Table::Jobs, Table::Allocs], |s| {
        let mut jobs: Vec<_> = s
            .jobs()
            .filter(|j| q.ns_matches(j.namespace_or_default()) && j.id.starts_with(&q.prefix))
            .collect();
        jobs.sort_by(|a, b| {
            (a.namespace_or_default(), &a.id).cmp(&(b.namespace_or_default(), &b.id))
        });
        Ok(Value::Array(jobs.iter().map(|j| job_stub(s, j)).collect()))
    })
    .await
}

fn job_stub(s: &StateSnapshot, j: &Job) -> Value {
    json!({
        "ID": j.id,
        "ParentID": j.parent_id,
        "Name": j.name,
        "Namespace": j.namespace_or_default(),
        "Datacenters": j.datacenters,
        "NodePool": j.node_pool,
        "Multiregion": j.multiregion,
        "Type": j.job_type,
        "Priority": j.priority_or_default(),
        "Periodic": j.periodic.is_some(),
        "ParameterizedJob": j.parameterized_job.is_some(),
        "Stop": j.stop.unwrap_or(false),
        "Status": j.status,
        "StatusDescription": j.status_description,
        "JobSummary": job_summary(s, j),
        "CreateIndex": j.create_index,
        "ModifyIndex": j.modify_index,
        "JobModifyIndex": j.job_modify_index,
        "SubmitTime": j.submit_time,
        "Meta": j.meta,
    })
}

fn job_summary(s: &StateSnapshot, j: &Job) -> Value {
    let ns = j.namespace_or_default();
    let mut groups: BTreeMap<String, BTreeMap<&str, u64>> = j
        .task_groups
        .iter()
        .map(|g| (g.name.clone(), BTreeMap::new()))
        .collect();
    for a in s.job_allocs(ns, &j.id) {
        let kind = match a.client_status.as_str() {
            "pending" if a.server_terminal() => continue,
            "pending" => "Starting",
            "running" => "Running",
            "complete" => "Complete",
            "failed" => "Failed",
            "lost" => "Lost",
            "unknown" => "Unknown",
            _ => continue,
        };
        *groups
            .entry(a.task_group.to_string())
            .or_default()
            .entry(kind)
            .or_insert(0) += 1;
    }
    // Queued: from the newest evaluation that recorded it.
    let mut evals = s.job_evals(ns, &j.id);
    evals.sort_by_key(|e| e.modify_index);
    if let Some(e) = evals
        .iter()
        .rev()
        .find(|e| !e.queued_allocations.is_empty())
    {
        for (g, n) in &e.queued_allocations {
            groups
                .entry(g.clone())
                .or_default()
                .insert("Queued", u64::from(*n));
        }
    }
    let summary: serde_json::Map<String, Value> = groups
        .into_iter()
        .map(|(g, m)| {
            let n = |k: &str| m.get(k).copied().unwrap_or(0);
            (
                g,
                json!({"Queued": n("Queued"), "Complete": n("Complete"), "Failed": n("Failed"),
                       "Running": n("Running"), "Starting": n("Starting"), "Lost": n("Lost"),
                       "Unknown": n("Unknown")}),
            )
        })
        .collect();
    json!({
        "JobID": j.id,
        "Namespace": ns,
        "Summary": summary,
        "Children": {"Pending": 0, "Running": 0, "Dead": 0},
        "CreateIndex": j.create_index,
        "ModifyIndex": j.modify_index,
    })
}

fn alloc_stub(s: &StateSnapshot, a: &Allocation, resources: bool) -> Value {
    let job = s.job_of_alloc(&a.id);
    let mut v = json!({
        "ID": a.id,
        "EvalID": a.eval_id,
        "Name": a.name,
        "Namespace": crate::ns_or_default(&a.namespace),
        "NodeID": a.node_id,
        "NodeName": a.node_name,
        "JobID": a.job_id,
        "JobType": job.as_ref().and_then(|j| j.job_type.clone()),
        "JobVersion": job.as_ref().and_then(|j| j.version),
        "TaskGroup": a.task_group,
        "DesiredStatus": a.desired_status,
        "DesiredDescription": a.desired_description,
        "DesiredTransition": a.desired_transition,
        "ClientStatus": a.client_status,
        "ClientDescription": a.client_description,
        "TaskStates": a.task_states,
        "DeploymentStatus": a.deployment_status,
        "FollowupEvalID": a.followup_eval_id,
        "NextAllocation": a.next_allocation,
        "PreviousAllocation": a.previous_allocation,
        "RescheduleTracker": a.reschedule_tracker,
        "PreemptedAllocations": a.preempted_allocations,
        "PreemptedByAllocation": a.preempted_by_allocation,
        "CreateIndex": a.create_index,
        "ModifyIndex": a.modify_index,
        "CreateTime": a.create_time,
        "ModifyTime": a.modify_time,
    });
    if resources {
        if let (Some(o), Ok(r)) = (
            v.as_object_mut(),
            serde_json::to_value(&a.allocated_resources),
        ) {
            o.insert("AllocatedResources".into(), r);
        }
    }
    v
}

fn node_stub(n: &Node, resources: bool) -> Value {
    let mut v = json!({
        "Address": n.http_addr.split(':').next().unwrap_or(""),
        "ID": n.id,
        "Datacenter": n.datacenter,
        "Name": n.name,
        "NodeClass": n.node_class,
        "NodePool": n.node_pool,
        "Version": n.attributes.get("nomad.version").cloned().unwrap_or_default(),
        "Drain": n.drain,
        "SchedulingEligibility": n.scheduling_eligibility,
        "Status": n.status,
        "StatusDescription": n.status_description,
        "Drivers": n.drivers,
        "HostVolumes": n.host_volumes,
        "CreateIndex": n.create_index,
        "ModifyIndex": n.modify_index,
    });
    if resources {
        if let Some(o) = v.as_object_mut() {
            if let Ok(r) = serde_json::to_value(&n.node_resources) {
                o.insert("NodeResources".into(), r);
            }
            if let Ok(r) = serde_json::to_value(&n.reserved_resources) {
                o.insert("ReservedResources".into(), r);
            }
        }
    }
    v
}

/// `PUT /v1/job/:id/revert`: registers an earlier version of the job again, as its next
/// version (`JobVersion`, optionally `EnforcePriorVersion`, the version that must be current).
async fn job_revert(server: &Server, q: &Query, body: &Value, id: &str) -> HResult {
    let body_id: String = field(body, "JobID")?;
    if !body_id.is_empty() && body_id != id {
        return Err(HttpError::bad("Job ID does not match"));
    }
    let version: u64 = field(body, "JobVersion")?;
    let enforce: Option<u64> = field(body, "EnforcePriorVersion")?;
    let snap = server.snapshot();
    let cur = snap
        .job(&q.namespace, id)
        .ok_or_else(|| HttpError::not_found("job"))?;
    let current = cur.version.unwrap_or(0);
    if current == version {
        return Err(HttpError::bad("can't revert to current version"));
    }
    if let Some(want) = enforce {
        if want != current {
            return Err(HttpError::bad(format!(
                "current job has version {current}; enforcing version {want}"
            )));
        }
    }
    let target = snap
        .job_versions(&q.namespace, id)
        .into_iter()
        .find(|j| j.version.unwrap_or(0) == version)
        .ok_or_else(|| {
            HttpError(
                StatusCode::NOT_FOUND,
                format!("job {id:?} at version {version} not found"),
            )
        })?;
    let mut job = target.as_ref().clone();
    job.job_modify_index = cur.job_modify_index;
    let enforce_index = enforce.map(|_| cur.job_modify_index.unwrap_or(0));
    register_checked(server, job, enforce_index).await
}

async fn job_register(server: &Server, q: &Query, body: &Value, path_id: Option<&str>) -> HResult {
    let mut job = job_from_body(body)?;
    if let Some(id) = path_id {
        if job.id != id {
            return Err(HttpError::bad("Job ID does not match name"));
        }
    }
    if job.namespace.is_none() && q.params.contains_key("namespace") {
        job.namespace = Some(q.namespace.clone());
    }
    let enforce: bool = field(body, "EnforceIndex")?;
    let enforce_index = if enforce {
        Some(field::<u64>(body, "JobModifyIndex")?)
    } else {
        None
    };
    register_checked(server, job, enforce_index).await
}

/// Registers a job, refusing it when `enforce_index` is given and is not the current job's
/// modify index (0: the job must not exist yet).
async fn register_checked(server: &Server, job: Job, enforce_index: Option<u64>) -> HResult {
    if let Some(want) = enforce_index {
        let cur = server
            .snapshot()
            .job(job.namespace_or_default(), &job.id)
            .and_then(|j| j.job_modify_index)
            .unwrap_or(0);
        if cur != want {
            return Err(HttpError::bad(if want == 0 {
                format!(
                    "Enforcing job modify index 0: job {:?} already exists",
                    job.id
                )
            } else {
                format!("Enforcing job modify index {want}: job exists with conflicting job modify index: {cur}")
            }));
        }
    }
    let r = server.register_job(job).await?;
    json_resp(
        &json!({
            "EvalID": r.eval_id,
            "EvalCreateIndex": r.eval_create_index,
            "JobModifyIndex": r.job_modify_index,
            "Warnings": r.warnings.join("\n"),
            "Index": r.index,
            "KnownLeader": true,
            "LastContact": 0,
        }),
        Some(r.index),
    )
}

fn jobs_parse(body: &Value) -> HResult {
    let src: String = field(body, "JobHCL")?;
    if src.trim().is_empty() {
        return Err(HttpError::bad("Job HCL must be specified"));
    }
    let canonicalize: bool = field(body, "Canonicalize")?;
    let mut opts = nomad_core::jobspec::ParseOptions::default();
    let vars: String = field(body, "Variables")?;
    if !vars.trim().is_empty() {
        opts.var_files.push(("variables.hcl".into(), vars));
    }
    let mut job = nomad_core::jobspec::parse_hcl(&src, "input.hcl", &opts)
        .map_err(|e| HttpError::bad(format!("Failed to parse job: {e}")))?;
    if canonicalize {
        job.canonicalize();
    }
    json_resp(&to_value(&job)?, None)
}

fn validate_job(server: &Server, body: &Value) -> HResult {
    let job = job_from_body(body)?;
    let (errors, warnings) = match server.admit_job(job) {
        Ok((_, w)) => (Vec::new(), w),
        Err(e) => (vec![e.to_string()], Vec::new()),
    };
    json_resp(
        &json!({
            "DriverConfigValidated": false,
            "ValidationErrors": errors,
            "Error": errors.join("\n"),
            "Warnings": warnings.join("\n"),
        }),
        None,
    )
}

fn job_plan(server: &Server, q: &Query, body: &Value, id: &str) -> HResult {
    let mut job = job_from_body(body)?;
    if job.id != id {
        return Err(HttpError::bad("Job ID does not match"));
    }
    if job.namespace.is_none() && q.params.contains_key("namespace") {
        job.namespace = Some(q.namespace.clone());
    }
    let want_diff: bool = field(body, "Diff")?;
    let r = server.plan_job(job)?;
    let updates: serde_json::Map<String, Value> = r
        .annotations
        .iter()
        .map(|(g, u)| {
            (
                g.clone(),
                json!({"Ignore": u.ignore, "Place": u.place, "Migrate": u.migrate, "Stop": u.stop,
                       "InPlaceUpdate": u.in_place_update, "DestructiveUpdate": u.destructive_update,
                       "Canary": u.canary, "Preemptions": u.preemptions}),
            )
        })
        .collect();
    let diff = if want_diff {
        json!({"Type": r.diff_type, "ID": id, "Fields": null, "Objects": null, "TaskGroups": null})
    } else {
        Value::Null
    };
    let failed = if r.failed_tg_allocs.is_empty() {
        Value::Null
    } else {
        to_value(&r.failed_tg_allocs)?
    };
    json_resp(
        &json!({
            "Index": r.index,
            "JobModifyIndex": r.job_modify_index,
            "Annotations": {"DesiredTGUpdates": updates, "PreemptedAllocs": null},
            "FailedTGAllocs": failed,
            "CreatedEvals": r.created_evals,
            "Diff": diff,
            "NextPeriodicLaunch": "0001-01-01T00:00:00Z",
            "Warnings": r.warnings.join("\n"),
        }),
        Some(r.index),
    )
}

async fn job_sub(server: &Server, q: Query, id: &str, sub: &str) -> HResult {
    let id = id.to_string();
    let ns = q.namespace.clone();
    match sub {
        "allocations" => {
            blocking(server, &q, &[Table::Allocs], |s| {
                let all = q.flag("all");
                let mut v: Vec<&Allocation> =
                    s.job_allocs(&ns, &id).iter().map(|a| a.as_ref()).collect();
                if !all {
                    // Without ?all, allocations of older job incarnations are left out, as
                    // Nomad does; every allocation here belongs to the current job.
                }
                v.sort_by(|a, b| (a.create_index, &a.id).cmp(&(b.create_index, &b.id)));
                Ok(Value::Array(
                    v.iter().map(|a| alloc_stub(s, a, false)).collect(),
                ))
            })
            .await
        }
        "evaluations" => {
            blocking(server, &q, &[Table::Evals], |s| {
                let mut v = s.job_evals(&ns, &id);
                v.sort_by_key(|d| std::cmp::Reverse(d.create_index));
                let v: Vec<&Evaluation> = v.iter().map(|e| e.as_ref()).collect();
                to_value(&v)
            })
            .await
        }
        "summary" => {
            blocking(
                server,
                &q,
                &[Table::Jobs, Table::Allocs, Table::Evals],
                |s| {
                    let j = s.job(&ns, &id).ok_or_else(|| HttpError::not_found("job"))?;
                    Ok(job_summary(s, &j))
                },
            )
            .await
        }
        "versions" => {
            blocking(server, &q, &[Table::Jobs], |s| {
                let v = s.job_versions(&ns, &id);
                if v.is_empty() {
                    return Err(HttpError::not_found("job versions"));
                }
                let v: Vec<&Job> = v.iter().map(|j| j.as_ref()).collect();
                Ok(json!({"Versions": to_value(&v)?, "Diffs": null}))
            })
            .await
        }
        "deployments" => {
            blocking(server, &q, &[Table::Deployments], |s| {
                let mut v: Vec<_> = s
                    .deployments()
                    .filter(|d| d.job_id == id && crate::ns_or_default(&d.namespace) == ns)
                    .map(|d| d.as_ref())
                    .collect();
                v.sort_by_key(|d| std::cmp::Reverse(d.create_index));
                to_value(&v)
            })
            .await
        }
        "deployment" => {
            blocking(server, &q, &[Table::Deployments], |s| {
                let d = s
                    .deployments()
                    .filter(|d| d.job_id == id && crate::ns_or_default(&d.namespace) == ns)
                    .max_by_key(|d| d.create_index);
                match d {
                    Some(d) => to_value(d.as_ref()),
                    None => Ok(Value::Null),
                }
            })
            .await
        }
        "services" => {
            blocking(server, &q, &[Table::Services], |s| {
                let mut v: Vec<_> = s
                    .services()
                    .filter(|r| r.job_id == id && crate::ns_or_default(&r.namespace) == ns)
                    .map(|r| r.as_ref())
                    .collect();
                v.sort_by(|a, b| a.id.cmp(&b.id));
                to_value(&v)
            })
            .await
        }
        _ => Err(HttpError(
            StatusCode::NOT_FOUND,
            format!("Invalid URL path: unknown job endpoint {sub:?}"),
        )),
    }
}

/// `GET /v1/operator/raft/configuration`: the voters of the replicated log.
fn raft_configuration(server: &Server) -> HResult {
    let log = server.log();
    let leader = log.leader().unwrap_or_default();
    let local = server.config().advertise_rpc.clone();
    let name = member(server)
        .get("Name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let servers: Vec<Value> = log
        .peers()
        .into_iter()
        .map(|addr| {
            json!({
                "ID": addr,
                "Node": if addr == local { name.clone() } else { addr.clone() },
                "Address": addr,
                "Leader": addr == leader,
                "Voter": true,
                "RaftProtocol": "3",
            })
        })
        .collect();
    let index = log.applied_index();
    json_resp(&json!({"Servers": servers, "Index": index}), Some(index))
}

/// Go's `strconv.ParseBool`, which Nomad uses for query parameters.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn agent_self(server: &Server) -> HResult {
    let c = server.config();
    let http = server
        .http_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let log = server.log();
    json_resp(
        &json!({
            "config": {
                "Region": c.region,
                "Datacenter": c.datacenter,
                "NodeName": c.node_name,
                "DataDir": c.data_dir.display().to_string(),
                "Server": {"Enabled": true, "NumSchedulers": c.num_schedulers},
                "Client": {"Enabled": false},
                "Addresses": {"HTTP": http},
                "Version": {"Version": env!("CARGO_PKG_VERSION"), "VersionPrerelease": "", "VersionMetadata": ""},
            },
            "member": member(server),
            "stats": {
                "nomad": {
                    "server": "true",
                    "leader": log.is_leader().to_string(),
                    "leader_addr": log.leader().unwrap_or_default(),
                    "known_regions": "1",
                    "bootstrap": "true",
                },
                "raft": {
                    "state": if log.is_leader() { "Leader" } else { "Follower" },
                    "applied_index": log.applied_index().to_string(),
                    "last_snapshot_index": log.snapshot_index().to_string(),
                    "num_peers": log.peers().len().saturating_sub(1).to_string(),
                },
                "runtime": {"uptime_seconds": server.uptime().as_secs().to_string()},
            },
        }),
        None,
    )
}

fn member(server: &Server) -> Value {
    let c = server.config();
    let (addr, port) = match c.advertise_rpc.rsplit_once(':') {
        Some((a, p)) => (a.to_string(), p.parse::<u16>().unwrap_or(4647)),
        None => (c.advertise_rpc.clone(), 4647),
    };
    json!({
        "Name": format!("{}.{}", c.node_name, c.region),
        "Addr": addr,
        "Port": port.saturating_add(1),
        "Tags": {
            "role": "nomad", "region": c.region, "dc": c.datacenter,
            "port": port.to_string(), "bootstrap": "1", "expect": "1",
            "build": env!("CARGO_PKG_VERSION"), "vsn": "1", "raft_vsn": "3",
        },
        "Status": "alive",
        "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
        "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4,
    })
}

fn agent_members(server: &Server) -> HResult {
    let c = server.config();
    json_resp(
        &json!({
            "ServerName": c.node_name,
            "ServerRegion": c.region,
            "ServerDC": c.datacenter,
            "Members": [member(server)],
        }),
        None,
    )
}

/// A gauge: name, value, labels.
type Gauge = (String, f64, Vec<(&'static str, String)>);

fn metrics(server: &Server, q: &Query) -> HResult {
    let snap = server.snapshot();
    let b = server.broker().stats();
    let m = server.metrics();
    let mut gauges: Vec<Gauge> = vec![
        (
            "nomad.nomad.broker.total_ready".into(),
            b.ready as f64,
            vec![],
        ),
        (
            "nomad.nomad.broker.total_unacked".into(),
            b.unacked as f64,
            vec![],
        ),
        (
            "nomad.nomad.broker.total_pending".into(),
            b.waiting as f64,
            vec![],
        ),
        (
            "nomad.nomad.broker.total_waiting".into(),
            b.delayed as f64,
            vec![],
        ),
        (
            "nomad.nomad.blocked_evals.total_blocked".into(),
            server.blocked().len() as f64,
            vec![],
        ),
        (
            "nomad.nomad.state.index".into(),
            snap.index() as f64,
            vec![],
        ),
        (
            "nomad.nomad.state.jobs".into(),
            snap.jobs().count() as f64,
            vec![],
        ),
        (
            "nomad.nomad.state.nodes".into(),
            snap.node_list().len() as f64,
            vec![],
        ),
        (
            "nomad.nomad.state.allocations".into(),
            snap.alloc_count() as f64,
            vec![],
        ),
        (
            "nomad.raft.applied_index".into(),
            server.log().applied_index() as f64,
            vec![],
        ),
        (
            "nomad.raft.last_snapshot_index".into(),
            server.log().snapshot_index() as f64,
            vec![],
        ),
        (
            "nomad.runtime.uptime_seconds".into(),
            server.uptime().as_secs_f64(),
            vec![],
        ),
    ];
    for (sched, n) in &b.ready_by_scheduler {
        gauges.push((
            "nomad.nomad.broker.ready".into(),
            *n as f64,
            vec![("scheduler", sched.clone())],
        ));
    }
    let counters: Vec<(&str, u64)> = vec![
        (
            "nomad.http.requests",
            m.http_requests.load(Ordering::Relaxed),
        ),
        (
            "nomad.nomad.plan.submitted",
            m.plans_submitted.load(Ordering::Relaxed),
        ),
        (
            "nomad.nomad.plan.node_rejected",
            m.node_plans_refused.load(Ordering::Relaxed),
        ),
        (
            "nomad.nomad.plan.allocs_placed",
            m.allocs_placed.load(Ordering::Relaxed),
        ),
        (
            "nomad.nomad.worker.evals_processed",
            m.evals_processed.load(Ordering::Relaxed),
        ),
        (
            "nomad.nomad.heartbeat.nodes_down",
            m.nodes_down.load(Ordering::Relaxed),
        ),
        ("nomad.nomad.broker.total_acked", b.total_acked),
        ("nomad.nomad.broker.total_nacked", b.total_nacked),
    ];
    match q.get("format") {
        Some("prometheus") => {
            let mut out = String::new();
            let prom = |n: &str| n.replace(['.', '-'], "_");
            for (name, v, labels) in &gauges {
                let n = prom(name);
                out.push_str(&format!("# TYPE {n} gauge\n"));
                let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                if l.is_empty() {
                    out.push_str(&format!("{n} {v}\n"));
                } else {
                    out.push_str(&format!("{n}{{{}}} {v}\n", l.join(",")));
                }
            }
            for (name, v) in &counters {
                let n = prom(name);
                out.push_str(&format!("# TYPE {n} counter\n{n} {v}\n"));
            }
            let mut r = Response::new(Full::new(Bytes::from(out)));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            Ok(r)
        }
        Some("") | None | Some("json") => {
            let ts = {
                let secs = crate::now_nanos() / 1_000_000_000;
                format!("{secs}")
            };
            let g: Vec<Value> = gauges
                .iter()
                .map(|(n, v, l)| {
                    let labels: serde_json::Map<String, Value> =
                        l.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
                    json!({"Name": n, "Value": v, "Labels": labels})
                })
                .collect();
            let c: Vec<Value> = counters
                .iter()
                .map(|(n, v)| json!({"Name": n, "Count": v, "Sum": v, "Rate": 0, "Min": 0, "Max": v, "Mean": 0, "Stddev": 0, "Labels": {}}))
                .collect();
            json_resp(
                &json!({"Timestamp": ts, "Gauges": g, "Counters": c, "Samples": [], "Points": []}),
                None,
            )
        }
        Some(other) => Err(HttpError::bad(format!(
            "Invalid metrics format {other:?}: use \"prometheus\" or leave it out for JSON"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_decoding_is_total() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }
}
