//! The agent's HTTP listener: the client routes it serves itself (`/v1/client/fs/logs`),
//! everything else handed to the server's API: the agent's own server in process, or over
//! HTTP to the configured servers of a client-only agent.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::{mpsc, watch};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Resp = Response<BoxBody<Bytes, BoxError>>;

/// What the listener serves.
#[derive(Clone)]
pub(crate) struct AgentHttp {
    /// Where the server's routes are answered.
    servers: ServerRoute,
    /// Allocation directories of the local client, when it runs.
    pub(crate) alloc_root: Option<PathBuf>,
    /// What `/v1/agent/self` says of this agent rather than of the server behind it.
    identity: Arc<AgentIdentity>,
    proxy: hyper_util::client::legacy::Client<HttpConnector, Incoming>,
}

impl AgentHttp {
    /// A listener's handler handing the server's routes to `servers`.
    pub(crate) fn new(servers: ServerRoute, alloc_root: Option<PathBuf>) -> Self {
        let proxy = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
        AgentHttp {
            servers,
            alloc_root,
            identity: Arc::new(AgentIdentity::default()),
            proxy,
        }
    }

    /// Says which roles this agent runs and where its data lives, for `/v1/agent/self`.
    pub(crate) fn with_identity(mut self, data_dir: PathBuf, server: bool, client: bool) -> Self {
        self.identity = Arc::new(AgentIdentity {
            data_dir,
            server,
            client,
            http: OnceLock::new(),
        });
        self
    }

    /// Binds `addr` and serves until `stop` turns true.
    pub(crate) async fn serve(
        self,
        addr: SocketAddr,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("binding the HTTP API on {addr}: {e}"))?;
        let local = listener.local_addr()?;
        let _ = self.identity.http.set(local);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stop.changed() => return,
                };
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let me = self.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let me = me.clone();
                        async move { Ok::<_, Infallible>(me.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(local)
    }

    async fn handle(&self, req: Request<Incoming>) -> Resp {
        let path = req.uri().path().to_string();
        if let Some(alloc) = path.strip_prefix("/v1/client/fs/logs/") {
            if req.method() != hyper::Method::GET {
                return text(StatusCode::METHOD_NOT_ALLOWED, "Invalid method".into());
            }
            let query = parse_query(req.uri().query());
            return match &self.alloc_root {
                Some(root) => logs(root, alloc, &query).await,
                None => text(
                    StatusCode::NOT_FOUND,
                    "this agent runs no client: alloc logs are served by the client agent".into(),
                ),
            };
        }
        if path == "/v1/agent/self" && req.method() == hyper::Method::GET {
            return self.agent_self(req).await;
        }
        self.to_server(req).await
    }

    /// Hands a request to the server: the local one in process, else over HTTP.
    async fn to_server(&self, req: Request<Incoming>) -> Resp {
        match &self.servers {
            ServerRoute::Local(server) => server
                .handle_http(req)
                .await
                .map(|b| b.map_err(|never| match never {}).boxed()),
            ServerRoute::Remote(upstream) => self.forward(upstream, req).await,
        }
    }

    /// `/v1/agent/self` as the server answers it, corrected to describe this agent: its
    /// address, its data directory and the roles it runs.
    async fn agent_self(&self, req: Request<Incoming>) -> Resp {
        let resp = self.to_server(req).await;
        if resp.status() != StatusCode::OK {
            return resp;
        }
        let (parts, body) = resp.into_parts();
        let bytes = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return text(StatusCode::BAD_GATEWAY, format!("reading the server: {e}")),
        };
        let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return Response::from_parts(parts, full(bytes));
        };
        self.identity.describe(&mut value);
        let body = serde_json::to_vec(&value).map_or(bytes, Bytes::from);
        let mut resp = Response::from_parts(parts, full(body));
        resp.headers_mut().remove(hyper::header::CONTENT_LENGTH);
        resp
    }

    async fn forward(&self, upstream: &str, req: Request<Incoming>) -> Resp {
        let (mut parts, body) = req.into_parts();
        let pq = parts
            .uri
            .path_and_query()
            .map_or("/", hyper::http::uri::PathAndQuery::as_str);
        let uri = format!("http://{upstream}{pq}");
        match uri.parse() {
            Ok(u) => parts.uri = u,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("bad request URI: {e}")),
        }
        match self.proxy.request(Request::from_parts(parts, body)).await {
            Ok(resp) => resp.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed()),
            Err(e) => text(
                StatusCode::BAD_GATEWAY,
                format!("the server at {upstream} did not answer: {e}"),
            ),
        }
    }
}

/// Where an agent's listener hands the server's routes.
#[derive(Clone)]
pub(crate) enum ServerRoute {
    /// The server this agent runs, answered in process.
    Local(nomad_server::Server),
    /// The configured server of a client-only agent (`host:port`), over HTTP.
    Remote(String),
}

impl ServerRoute {
    /// The address the agent's own client reaches the servers at: this agent's listener
    /// (`bound`, loopback when it listens on every address) when it runs the server.
    pub(crate) fn client_address(&self, bound: SocketAddr) -> String {
        match self {
            ServerRoute::Local(_) => {
                let ip = if bound.ip().is_unspecified() {
                    std::net::IpAddr::from([127, 0, 0, 1])
                } else {
                    bound.ip()
                };
                SocketAddr::new(ip, bound.port()).to_string()
            }
            ServerRoute::Remote(upstream) => upstream.clone(),
        }
    }
}

/// This agent's roles, data directory and bound HTTP address.
#[derive(Debug, Default)]
struct AgentIdentity {
    data_dir: PathBuf,
    server: bool,
    client: bool,
    http: OnceLock<SocketAddr>,
}

impl AgentIdentity {
    /// Rewrites the `config` and `stats` parts of an `/v1/agent/self` answer.
    fn describe(&self, value: &mut serde_json::Value) {
        if self.data_dir.as_os_str().is_empty() {
            return;
        }
        let Some(config) = value.get_mut("config").and_then(|c| c.as_object_mut()) else {
            return;
        };
        config.insert("DataDir".into(), self.data_dir.display().to_string().into());
        if let Some(http) = self.http.get() {
            config.insert(
                "Addresses".into(),
                serde_json::json!({ "HTTP": http.ip().to_string() }),
            );
            config.insert("Ports".into(), serde_json::json!({ "HTTP": http.port() }));
        }
        config.insert(
            "Client".into(),
            serde_json::json!({ "Enabled": self.client }),
        );
        if let Some(server) = config.get_mut("Server").and_then(|s| s.as_object_mut()) {
            server.insert("Enabled".into(), self.server.into());
        }
        if let Some(stats) = value.get_mut("stats").and_then(|s| s.as_object_mut()) {
            if self.client {
                stats.insert("client".into(), serde_json::json!({ "known_servers": "1" }));
            }
            if !self.server {
                stats.remove("raft");
            }
        }
    }
}

fn full(bytes: Bytes) -> BoxBody<Bytes, BoxError> {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

fn text(code: StatusCode, msg: String) -> Resp {
    let mut r = Response::new(
        Full::new(Bytes::from(msg))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = code;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn parse_query(raw: Option<&str>) -> HashMap<String, String> {
    raw.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(x) => {
                        out.push(x);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            x => out.push(x),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A response body fed from a channel, for streamed logs.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// The rotated log files of a task's stream, oldest first: `<task>.<stream>.<n>`.
fn log_files(dir: &Path, task: &str, stream: &str) -> Vec<(u32, PathBuf)> {
    let prefix = format!("{task}.{stream}.");
    let mut files: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix(&prefix)?.parse::<u32>().ok()?;
            Some((n, e.path()))
        })
        .collect();
    files.sort();
    files
}

/// Finds the allocation directory for an ID or a unique ID prefix.
fn alloc_dir(root: &Path, id: &str) -> Result<PathBuf, (StatusCode, String)> {
    let exact = root.join(id);
    if !id.is_empty() && !id.contains('/') && !id.contains("..") && exact.is_dir() {
        return Ok(exact);
    }
    let matches: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| !id.is_empty() && e.file_name().to_string_lossy().starts_with(id))
        .map(|e| e.path())
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err((
            StatusCode::NOT_FOUND,
            format!("Unknown allocation \"{id}\""),
        )),
        _ => Err((
            StatusCode::BAD_REQUEST,
            format!("Allocation ID prefix \"{id}\" matches more than one allocation"),
        )),
    }
}

/// Standard base64, for Nomad's framed log stream.
fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let idx = |shift: u32| T[((n >> shift) & 63) as usize] as char;
        out.push(idx(18));
        out.push(idx(12));
        out.push(if chunk.len() > 1 { idx(6) } else { '=' });
        out.push(if chunk.len() > 2 { idx(0) } else { '=' });
    }
    out
}

/// `GET /v1/client/fs/logs/:alloc?task=&type=stdout|stderr&follow=&origin=&offset=&plain=`.
async fn logs(root: &Path, alloc: &str, q: &HashMap<String, String>) -> Resp {
    let dir = match alloc_dir(root, alloc) {
        Ok(d) => d,
        Err((code, msg)) => return text(code, msg),
    };
    let Some(task) = q.get("task").filter(|t| !t.is_empty()).cloned() else {
        return text(StatusCode::BAD_REQUEST, "must provide task name".into());
    };
    let stream = q.get("type").cloned().unwrap_or_else(|| "stdout".into());
    if stream != "stdout" && stream != "stderr" {
        return text(
            StatusCode::BAD_REQUEST,
            format!("log type {stream:?} is not \"stdout\" or \"stderr\""),
        );
    }
    // Present without a value, or a true value as Go's strconv.ParseBool reads it.
    let flag = |k: &str| {
        q.get(k)
            .is_some_and(|v| matches!(v.as_str(), "" | "1" | "t" | "T" | "true" | "TRUE" | "True"))
    };
    let follow = flag("follow");
    let plain = flag("plain");
    let origin_end = q.get("origin").is_some_and(|o| o == "end");
    let offset: u64 = match q.get("offset").map(|o| o.parse::<u64>()) {
        None => 0,
        Some(Ok(o)) => o,
        Some(Err(_)) => return text(StatusCode::BAD_REQUEST, "offset is not a number".into()),
    };
    let log_dir = dir.join("alloc").join("logs");
    let task_known = dir.join(&task).is_dir() || !log_files(&log_dir, &task, &stream).is_empty();
    if !task_known {
        return text(
            StatusCode::BAD_REQUEST,
            format!("unknown task name \"{task}\" in allocation"),
        );
    }
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let frame = |file: &Path, data: &[u8], off: u64| -> Bytes {
            if plain {
                return Bytes::copy_from_slice(data);
            }
            let name = file
                .file_name()
                .map(|n| format!("alloc/logs/{}", n.to_string_lossy()))
                .unwrap_or_default();
            let v = serde_json::json!({"Offset": off, "Data": base64(data), "File": name, "FileEvent": ""});
            Bytes::from(v.to_string())
        };
        // Everything written so far, then (when following) what is appended.
        let files = log_files(&log_dir, &task, &stream);
        let mut contents: Vec<(u32, PathBuf, Vec<u8>)> = Vec::new();
        for (n, p) in files {
            let data = tokio::fs::read(&p).await.unwrap_or_default();
            contents.push((n, p, data));
        }
        let total: u64 = contents.iter().map(|c| c.2.len() as u64).sum();
        let mut skip = if origin_end {
            total.saturating_sub(offset)
        } else {
            offset
        };
        let mut position: Option<(u32, PathBuf, u64)> = None;
        for (n, p, data) in contents {
            let len = data.len() as u64;
            let start = skip.min(len);
            skip -= start;
            let start_usize = usize::try_from(start).unwrap_or(data.len());
            if let Some(part) = data.get(start_usize..) {
                if !part.is_empty() && tx.send(frame(&p, part, start)).await.is_err() {
                    return;
                }
            }
            position = Some((n, p, len));
        }
        if !follow {
            return;
        }
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            let files = log_files(&log_dir, &task, &stream);
            let Some((cur_n, cur_p, cur_len)) = position.clone() else {
                if let Some((n, p)) = files.first() {
                    position = Some((*n, p.clone(), 0));
                }
                continue;
            };
            let data = tokio::fs::read(&cur_p).await.unwrap_or_default();
            if (data.len() as u64) > cur_len {
                let start = usize::try_from(cur_len).unwrap_or(0);
                if let Some(part) = data.get(start..) {
                    if tx.send(frame(&cur_p, part, cur_len)).await.is_err() {
                        return;
                    }
                }
                position = Some((cur_n, cur_p, data.len() as u64));
            } else if let Some((n, p)) = files.iter().find(|(n, _)| *n > cur_n) {
                position = Some((*n, p.clone(), 0));
            }
        }
    });
    let mut r = Response::new(ChannelBody(rx).boxed());
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(if plain {
            "text/plain; charset=utf-8"
        } else {
            "application/json"
        }),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn query_values_are_decoded() {
        let q = parse_query(Some("task=web%20app&follow&plain=true&x=%zz"));
        assert_eq!(q["task"], "web app");
        assert_eq!(q["follow"], "");
        assert_eq!(q["x"], "%zz");
    }

    #[test]
    fn allocation_prefixes_resolve() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("abcd-1")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("abef-2")).expect("mkdir");
        assert!(alloc_dir(dir.path(), "abc").is_ok());
        assert_eq!(
            alloc_dir(dir.path(), "ab").map_err(|e| e.0),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            alloc_dir(dir.path(), "zz").map_err(|e| e.0),
            Err(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            alloc_dir(dir.path(), "../x").map_err(|e| e.0),
            Err(StatusCode::NOT_FOUND)
        );
    }
}
