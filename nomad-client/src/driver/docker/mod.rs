//! The `docker` driver: a container through the Docker Engine API on the local socket.

mod api;

use super::exit::{stop_signal_name, ExitWatch, Exited};
use super::table::{CpuRate, TaskTable, TrackedTask};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use http_body_util::BodyExt;
use hyper::Method;
use nomad_core::driver::{
    Capabilities, ConfigSchema, CpuUsage, DriverError, DriverEvent, DriverNetwork, EventFanout,
    EventSink, ExecResult, ExitResult, FieldKind, Fingerprint, FsIsolation, MemoryUsage,
    MountConfigSupport, NetIsolationMode, StartedTask, TaskConfig, TaskDriver, TaskHandle,
    TaskResourceUsage, TaskStatus,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use self::api::{encode, take_frames, ApiError, Body, DockerApi};
use super::process::parse_signal;
use crate::logs::RotatingLog;

const NAME: &str = "docker";
const MIB: u64 = 1024 * 1024;
/// How long a killed container may take to die before stop reports a timeout.
const KILL_GRACE: Duration = Duration::from_secs(15);
/// How long the exit of a container waits for its output to reach the log files.
const LOG_DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// The client configuration of the `docker` driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DockerConfig {
    /// The engine's unix socket.
    pub socket: PathBuf,
    /// How long pulling an image may take.
    pub pull_timeout: Duration,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from("/var/run/docker.sock"),
            pull_timeout: Duration::from_secs(300),
        }
    }
}

/// The `docker` task driver.
///
/// A task's `config` block takes `image` (pulled when it is not present, or always with
/// `force_pull`), `command`, `args`, `entrypoint`, `work_dir`, `labels`, `network_mode`,
/// `ports` (labels of the group network's ports, published on the host at their allocated
/// values and mapped to their `to` ports), and `memory_hard_limit` (MB).
///
/// The container gets the task's environment, the alloc dir's `alloc/`, `local/` and
/// `secrets/` bound at `/alloc`, `/local` and `/secrets`, a memory limit (`memory`, or
/// `memory_max` with `memory` as reservation), CPU shares from `cpu` and a cpuset from
/// `cores`. Its output is copied from the engine into the task's rotated log files. Stopping
/// sends the task's signal and, after the timeout, SIGKILL; exit codes are the container's
/// (137 after SIGKILL). A handle stores the container id; recovery re-attaches to a running
/// container and follows its output from the moment of recovery.
#[derive(Debug)]
pub struct DockerDriver {
    config: DockerConfig,
    api: DockerApi,
    tasks: TaskTable<Container>,
    events: EventFanout,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DockerState {
    container_id: String,
    image: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DockerTaskConfig {
    image: String,
    command: Option<String>,
    args: Vec<String>,
    entrypoint: Option<Vec<String>>,
    work_dir: Option<String>,
    labels: BTreeMap<String, String>,
    network_mode: Option<String>,
    ports: Vec<String>,
    memory_hard_limit: Option<u64>,
    force_pull: bool,
}

#[derive(Debug)]
struct Container {
    config: TaskConfig,
    state: DockerState,
    started_at: SystemTime,
    exit: watch::Receiver<Option<Exited>>,
    background: Vec<AbortHandle>,
    cpu_rate: CpuRate,
}

impl ExitWatch for Container {
    fn exit_rx(&self) -> &watch::Receiver<Option<Exited>> {
        &self.exit
    }
}

impl TrackedTask for Container {
    fn config(&self) -> &TaskConfig {
        &self.config
    }
    fn started_at(&self) -> SystemTime {
        self.started_at
    }
    fn background(&self) -> &[AbortHandle] {
        &self.background
    }
    fn driver_attributes(&self) -> BTreeMap<String, String> {
        [
            ("container_id".to_owned(), self.state.container_id.clone()),
            ("image".to_owned(), self.state.image.clone()),
        ]
        .into()
    }
}

/// The parts of `GET /containers/{id}/json` the driver reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct ContainerInspect {
    id: String,
    state: ContainerStateJson,
    network_settings: NetworkSettings,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct ContainerStateJson {
    running: bool,
    status: String,
    exit_code: i32,
    #[serde(rename = "OOMKilled")]
    oom_killed: bool,
    error: String,
    pid: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct NetworkSettings {
    #[serde(rename = "IPAddress")]
    ip_address: String,
    networks: BTreeMap<String, EndpointSettings>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct EndpointSettings {
    #[serde(rename = "IPAddress")]
    ip_address: String,
}

impl ContainerInspect {
    fn exit_result(&self) -> ExitResult {
        ExitResult {
            exit_code: self.state.exit_code,
            signal: None,
            oom_killed: self.state.oom_killed,
            error: (!self.state.error.is_empty()).then(|| self.state.error.clone()),
        }
    }

    fn ip(&self) -> String {
        if !self.network_settings.ip_address.is_empty() {
            return self.network_settings.ip_address.clone();
        }
        self.network_settings
            .networks
            .values()
            .map(|n| n.ip_address.clone())
            .find(|ip| !ip.is_empty())
            .unwrap_or_default()
    }
}

fn api_error(context: impl Into<String>, err: ApiError) -> DriverError {
    DriverError::other(context, err)
}

/// Splits an image reference into the `fromImage` and `tag` of a pull.
fn pull_parts(image: &str) -> (String, String) {
    if image.contains('@') {
        return (image.to_owned(), String::new());
    }
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    match image[name_start..].rfind(':') {
        Some(colon) => {
            let at = name_start + colon;
            (image[..at].to_owned(), image[at + 1..].to_owned())
        }
        None => (image.to_owned(), "latest".to_owned()),
    }
}

impl DockerDriver {
    /// A driver talking to the engine as `config` says.
    pub fn new(config: DockerConfig) -> Self {
        let api = DockerApi::new(&config.socket);
        Self {
            config,
            api,
            tasks: TaskTable::default(),
            events: EventFanout::new(),
        }
    }

    /// The engine's version, or why it does not answer.
    pub async fn engine_version(&self) -> Result<String, DriverError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Version {
            version: String,
        }
        let version: Version = self
            .api
            .json(Method::GET, "/version", Body::Empty)
            .await
            .map_err(|err| DriverError::DriverUnhealthy {
                driver: NAME.into(),
                reason: err.to_string(),
            })?;
        Ok(version.version)
    }

    /// Imports a root filesystem tarball as image `reference` (`repo:tag`), as
    /// `docker import` does; for nodes without a registry.
    pub async fn import_image(&self, tarball: Vec<u8>, reference: &str) -> Result<(), DriverError> {
        let (repo, tag) = pull_parts(reference);
        let path = format!(
            "/images/create?fromSrc=-&repo={}&tag={}",
            encode(&repo),
            encode(&tag)
        );
        let body = self
            .api
            .call(Method::POST, &path, Body::Tar(tarball))
            .await
            .map_err(|err| api_error(format!("importing image {reference:?}"), err))?;
        match stream_error(&body) {
            Some(message) => Err(DriverError::other(
                format!("importing image {reference:?}"),
                message,
            )),
            None => Ok(()),
        }
    }

    /// Whether image `reference` is present in the engine.
    pub async fn has_image(&self, reference: &str) -> Result<bool, DriverError> {
        match self
            .api
            .call(
                Method::GET,
                &format!("/images/{reference}/json"),
                Body::Empty,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if err.is_not_found() => Ok(false),
            Err(err) => Err(api_error(format!("inspecting image {reference:?}"), err)),
        }
    }

    /// Makes sure `image` is present, pulling it when it is not (or always with `force`).
    async fn ensure_image(
        &self,
        config: &TaskConfig,
        image: &str,
        force: bool,
    ) -> Result<(), DriverError> {
        if !force && self.has_image(image).await? {
            return Ok(());
        }
        self.events.emit(
            DriverEvent::new(config, format!("Downloading image {image}"))
                .with_annotation("image", image),
        );
        let (from, tag) = pull_parts(image);
        let mut path = format!("/images/create?fromImage={}", encode(&from));
        if !tag.is_empty() {
            path.push_str(&format!("&tag={}", encode(&tag)));
        }
        let cannot = |reason: String| DriverError::StartFailed {
            task_id: config.id.clone(),
            reason: format!("image {image:?} is not present and could not be pulled: {reason}"),
            recoverable: true,
        };
        let pulled = tokio::time::timeout(
            self.config.pull_timeout,
            self.api.call(Method::POST, &path, Body::Empty),
        )
        .await
        .map_err(|_| cannot(format!("no answer within {:?}", self.config.pull_timeout)))?
        .map_err(|err| cannot(err.to_string()))?;
        if let Some(message) = stream_error(&pulled) {
            return Err(cannot(message));
        }
        Ok(())
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInspect, ApiError> {
        self.api
            .json(Method::GET, &format!("/containers/{id}/json"), Body::Empty)
            .await
    }

    fn container_body(
        &self,
        config: &TaskConfig,
        task: &DockerTaskConfig,
    ) -> Result<Value, DriverError> {
        let env: Vec<String> = config.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut labels = task.labels.clone();
        labels.insert(
            "com.hashicorp.nomad.alloc_id".into(),
            config.alloc_id.clone(),
        );
        labels.insert(
            "com.hashicorp.nomad.task_name".into(),
            config.task_name.clone(),
        );
        labels.insert(
            "com.hashicorp.nomad.job_name".into(),
            config.job_name.clone(),
        );

        let binds = vec![
            format!("{}:/alloc", config.dirs.shared_dir.display()),
            format!("{}:/local", config.dirs.local_dir.display()),
            format!("{}:/secrets", config.dirs.secrets_dir.display()),
        ];
        let mut host = json!({ "Binds": binds });
        let resources = &config.resources;
        let (limit, reservation) = match (task.memory_hard_limit, resources.memory_max_mb) {
            (Some(hard), _) if hard > 0 => (hard, resources.memory_mb),
            (_, max) if max > 0 => (max, resources.memory_mb),
            _ => (resources.memory_mb, 0),
        };
        if limit > 0 {
            host["Memory"] = json!(limit * MIB);
        }
        if reservation > 0 && reservation < limit {
            host["MemoryReservation"] = json!(reservation * MIB);
        }
        if resources.cpu_shares > 0 {
            host["CpuShares"] = json!(resources.cpu_shares.max(2));
        }
        if !resources.reserved_cores.is_empty() {
            let cores: Vec<String> = resources
                .reserved_cores
                .iter()
                .map(u16::to_string)
                .collect();
            host["CpusetCpus"] = json!(cores.join(","));
        }
        if let Some(mode) = &task.network_mode {
            host["NetworkMode"] = json!(mode);
        }

        let mut exposed = serde_json::Map::new();
        let mut bindings = serde_json::Map::new();
        for (index, label) in task.ports.iter().enumerate() {
            let Some(port) = config.ports.iter().find(|p| &p.label == label) else {
                return Err(DriverError::invalid_config(
                    format!("ports[{index}]"),
                    format!("port label {label:?} is not in the group's network block"),
                ));
            };
            let inside = if port.to > 0 { port.to } else { port.value };
            for proto in ["tcp", "udp"] {
                let key = format!("{inside}/{proto}");
                exposed.insert(key.clone(), json!({}));
                bindings.insert(
                    key,
                    json!([{ "HostIp": port.host_ip, "HostPort": port.value.to_string() }]),
                );
            }
        }
        if !bindings.is_empty() {
            host["PortBindings"] = Value::Object(bindings);
        }

        let mut body = json!({
            "Image": task.image,
            "Env": env,
            "Labels": labels,
            "HostConfig": host,
            "AttachStdout": true,
            "AttachStderr": true,
        });
        if !exposed.is_empty() {
            body["ExposedPorts"] = Value::Object(exposed);
        }
        match &task.command {
            Some(command) => {
                let mut cmd = vec![command.clone()];
                cmd.extend(task.args.iter().cloned());
                body["Cmd"] = json!(cmd);
            }
            None if !task.args.is_empty() => body["Cmd"] = json!(task.args),
            None => {}
        }
        if let Some(entrypoint) = &task.entrypoint {
            body["Entrypoint"] = json!(entrypoint);
        }
        if let Some(dir) = &task.work_dir {
            body["WorkingDir"] = json!(dir);
        }
        if let Some(user) = config.user.as_deref().filter(|u| !u.is_empty()) {
            body["User"] = json!(user);
        }
        Ok(body)
    }

    /// Follows the container's output into the task's log files. Resolves to the bytes
    /// copied per stream (stdout, stderr), so that a final fetch can add what the stream
    /// missed.
    fn spawn_log_copier(
        &self,
        config: &TaskConfig,
        id: &str,
        since: u64,
    ) -> tokio::task::JoinHandle<LogProgress> {
        let api = self.api.clone();
        let path = format!("/containers/{id}/logs?follow=1&stdout=1&stderr=1&since={since}");
        let target = LogTarget::of(config, since);
        tokio::spawn(async move {
            let mut progress = LogProgress::default();
            let copied: Result<(), String> = async {
                let (mut out, mut err) = target.open().await?;
                let response = api
                    .send(Method::GET, &path, Body::Empty)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut body = response.into_body();
                let mut buffer = Vec::new();
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(|e| e.to_string())?;
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    buffer.extend_from_slice(&data);
                    for (stream, payload) in take_frames(&mut buffer) {
                        let (log, count) = if stream == 2 {
                            (&mut err, &mut progress.stderr)
                        } else {
                            (&mut out, &mut progress.stdout)
                        };
                        log.write(&payload).await.map_err(|e| e.to_string())?;
                        *count += payload.len() as u64;
                    }
                }
                Ok(())
            }
            .await;
            if let Err(error) = copied {
                tracing::warn!(log = %target.stdout.display(), %error, "copying container output failed");
            }
            progress
        })
    }

    /// After the container exited: fetches its whole output once more, without following,
    /// and writes what the followed stream did not deliver. The engine can end a followed
    /// stream of a container that exits at once before its last lines are readable.
    async fn reconcile_logs(api: &DockerApi, id: &str, target: &LogTarget, seen: LogProgress) {
        let path = format!(
            "/containers/{id}/logs?stdout=1&stderr=1&since={}",
            target.since
        );
        let result: Result<(), String> = async {
            let response = api
                .send(Method::GET, &path, Body::Empty)
                .await
                .map_err(|e| e.to_string())?;
            let mut body = response.into_body();
            let mut buffer = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| e.to_string())?;
                if let Ok(data) = frame.into_data() {
                    buffer.extend_from_slice(&data);
                }
            }
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            for (stream, payload) in take_frames(&mut buffer) {
                if stream == 2 {
                    stderr.extend_from_slice(&payload);
                } else {
                    stdout.extend_from_slice(&payload);
                }
            }
            let skip = |all: &[u8], n: u64| -> Vec<u8> {
                all.get(usize::try_from(n).unwrap_or(usize::MAX)..)
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default()
            };
            let (missing_out, missing_err) =
                (skip(&stdout, seen.stdout), skip(&stderr, seen.stderr));
            if missing_out.is_empty() && missing_err.is_empty() {
                return Ok(());
            }
            let (mut out, mut err) = target.open().await?;
            out.write(&missing_out).await.map_err(|e| e.to_string())?;
            err.write(&missing_err).await.map_err(|e| e.to_string())?;
            Ok(())
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(container = %id, %error, "reading the container's final output failed");
        }
    }

    /// Watches the container until it exits, then publishes how.
    fn spawn_supervisor(
        &self,
        id: &str,
        copier: tokio::task::JoinHandle<LogProgress>,
        target: LogTarget,
        sender: watch::Sender<Option<Exited>>,
    ) -> tokio::task::JoinHandle<()> {
        let api = self.api.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            let result = loop {
                // The wait call can outlive the engine's restart; inspect decides.
                let _ = api
                    .call(Method::POST, &format!("/containers/{id}/wait"), Body::Empty)
                    .await;
                match api
                    .json::<ContainerInspect>(
                        Method::GET,
                        &format!("/containers/{id}/json"),
                        Body::Empty,
                    )
                    .await
                {
                    Ok(inspect) if inspect.state.running => {}
                    Ok(inspect) => break inspect.exit_result(),
                    Err(err) if err.is_not_found() => {
                        break ExitResult {
                            exit_code: -1,
                            error: Some("the container was removed".into()),
                            ..ExitResult::default()
                        }
                    }
                    Err(_) => {}
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            };
            // The engine ends the log stream when the container stops; the bound only guards
            // against an engine that never does.
            if let Ok(Ok(seen)) = tokio::time::timeout(LOG_DRAIN_LIMIT, copier).await {
                Self::reconcile_logs(&api, &id, &target, seen).await;
            }
            sender.send_replace(Some(Exited {
                result,
                at: SystemTime::now(),
            }));
        })
    }

    fn track(&self, config: &TaskConfig, state: DockerState, since: u64) -> Arc<Container> {
        let copier = self.spawn_log_copier(config, &state.container_id, since);
        let copier_abort = copier.abort_handle();
        let (sender, exit) = watch::channel(None);
        let target = LogTarget::of(config, since);
        let supervisor = self.spawn_supervisor(&state.container_id, copier, target, sender);
        Arc::new(Container {
            config: config.clone(),
            state,
            started_at: SystemTime::now(),
            exit,
            background: vec![copier_abort, supervisor.abort_handle()],
            cpu_rate: CpuRate::default(),
        })
    }

    async fn remove_container(&self, id: &str) -> Result<(), DriverError> {
        match self
            .api
            .call(
                Method::DELETE,
                &format!("/containers/{id}?force=1&v=1"),
                Body::Empty,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if err.is_not_found() => Ok(()),
            // Removal already under way.
            Err(err) if err.is_conflict() => Ok(()),
            Err(err) => Err(api_error(format!("removing container {id}"), err)),
        }
    }

    async fn kill(&self, container: &Container, signal: &str) -> Result<(), DriverError> {
        let id = &container.state.container_id;
        match self
            .api
            .call(
                Method::POST,
                &format!("/containers/{id}/kill?signal={signal}"),
                Body::Empty,
            )
            .await
        {
            Ok(_) => Ok(()),
            // Not running (any more).
            Err(err) if err.is_conflict() || err.is_not_found() => Ok(()),
            Err(err) => Err(api_error(
                format!("sending {signal} to container {id}"),
                err,
            )),
        }
    }
}

impl Drop for DockerDriver {
    /// Stops following the containers, as an agent that exits does; the containers go on
    /// running so that another driver instance can recover them.
    fn drop(&mut self) {
        self.tasks.stop_following_all();
    }
}

/// The error a streamed JSON answer (pull, import) reports, if any.
fn stream_error(body: &[u8]) -> Option<String> {
    String::from_utf8_lossy(body).lines().find_map(|line| {
        let value: Value = serde_json::from_str(line).ok()?;
        value
            .get("error")
            .or_else(|| value.get("errorDetail").and_then(|d| d.get("message")))
            .and_then(Value::as_str)
            .map(str::to_owned)
    })
}

/// Bytes of a container's output copied so far, per stream.
#[derive(Debug, Clone, Copy, Default)]
struct LogProgress {
    stdout: u64,
    stderr: u64,
}

/// Where a container's output goes.
#[derive(Debug, Clone)]
struct LogTarget {
    stdout: std::path::PathBuf,
    stderr: std::path::PathBuf,
    logs: nomad_core::driver::LogConfig,
    since: u64,
}

impl LogTarget {
    fn of(config: &TaskConfig, since: u64) -> Self {
        Self {
            stdout: config.stdout_path.clone(),
            stderr: config.stderr_path.clone(),
            logs: config.logs,
            since,
        }
    }

    async fn open(&self) -> Result<(RotatingLog, RotatingLog), String> {
        let out = RotatingLog::open(&self.stdout, self.logs)
            .await
            .map_err(|e| e.to_string())?;
        let err = RotatingLog::open(&self.stderr, self.logs)
            .await
            .map_err(|e| e.to_string())?;
        Ok((out, err))
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[async_trait]
impl TaskDriver for DockerDriver {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            send_signals: true,
            exec: true,
            fs_isolation: FsIsolation::Image,
            network_isolation_modes: vec![
                NetIsolationMode::Host,
                NetIsolationMode::Group,
                NetIsolationMode::Task,
            ],
            must_init_network: false,
            mount_configs: MountConfigSupport::All,
        }
    }

    async fn fingerprint(&self) -> Fingerprint {
        if !self.api.socket().exists() {
            return Fingerprint::undetected(format!(
                "no Docker engine socket at {}",
                self.api.socket().display()
            ));
        }
        match self.engine_version().await {
            Ok(version) => Fingerprint::healthy()
                .with_attribute("driver.docker", "1")
                .with_attribute("driver.docker.version", version),
            Err(err) => Fingerprint::unhealthy(err.to_string()),
        }
    }

    fn config_schema(&self) -> ConfigSchema {
        ConfigSchema::new()
            .required("image", FieldKind::String)
            .optional("command", FieldKind::String)
            .optional("args", FieldKind::list(FieldKind::String))
            .optional("entrypoint", FieldKind::list(FieldKind::String))
            .optional("work_dir", FieldKind::String)
            .optional("labels", FieldKind::map(FieldKind::String))
            .optional("network_mode", FieldKind::String)
            .optional("ports", FieldKind::list(FieldKind::String))
            .optional("memory_hard_limit", FieldKind::Integer)
            .optional("force_pull", FieldKind::Bool)
    }

    async fn start(&self, config: &TaskConfig) -> Result<StartedTask, DriverError> {
        self.validate_config(&config.driver_config)?;
        let task: DockerTaskConfig = serde_json::from_value(config.driver_config.clone())
            .map_err(|err| DriverError::invalid_config("", err.to_string()))?;
        if task.image.is_empty() {
            return Err(DriverError::invalid_config("image", "must not be empty"));
        }
        if self.tasks.contains(&config.id) {
            return Err(DriverError::TaskAlreadyExists {
                task_id: config.id.clone(),
            });
        }
        let body = self.container_body(config, &task)?;
        self.engine_version().await?;
        self.ensure_image(config, &task.image, task.force_pull)
            .await?;

        let name = format!("{}-{}", config.task_name, config.alloc_id)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect::<String>();
        let create_path = format!("/containers/create?name={}", encode(&name));
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Created {
            id: String,
        }
        let created: Created = match self
            .api
            .json(Method::POST, &create_path, Body::Json(body.clone()))
            .await
        {
            Ok(created) => created,
            Err(err) if err.is_conflict() => {
                // A container of an earlier run of this task is in the way: replace it.
                self.remove_container(&name).await?;
                self.api
                    .json(Method::POST, &create_path, Body::Json(body))
                    .await
                    .map_err(|err| DriverError::start_failed(&config.id, err.to_string()))?
            }
            Err(err) => return Err(DriverError::start_failed(&config.id, err.to_string())),
        };
        let id = created.id;
        if let Err(err) = self
            .api
            .call(
                Method::POST,
                &format!("/containers/{id}/start"),
                Body::Empty,
            )
            .await
        {
            let _ = self.remove_container(&id).await;
            return Err(DriverError::start_failed(&config.id, err.to_string()));
        }
        let inspect = self.inspect_container(&id).await.ok();

        let state = DockerState {
            container_id: id.clone(),
            image: task.image.clone(),
        };
        let driver_state = serde_json::to_value(&state)
            .map_err(|err| DriverError::other("encoding the task handle", err))?;
        let container = self.track(config, state, 0);
        self.tasks
            .insert_or_undo(container, |_| async {
                let _ = self.remove_container(&id).await;
            })
            .await?;
        self.events.emit(
            DriverEvent::new(
                config,
                format!("started container {}", &id[..id.len().min(12)]),
            )
            .with_annotation("container_id", id.clone()),
        );
        let network = inspect
            .map(|inspect| inspect.ip())
            .filter(|ip| !ip.is_empty())
            .map(|ip| {
                let port_map = task
                    .ports
                    .iter()
                    .filter_map(|label| {
                        let port = config.ports.iter().find(|p| &p.label == label)?;
                        Some((
                            label.clone(),
                            if port.to > 0 { port.to } else { port.value },
                        ))
                    })
                    .collect();
                DriverNetwork {
                    ip,
                    port_map,
                    auto_advertise: false,
                }
            });
        Ok(StartedTask {
            handle: TaskHandle::new(NAME, config.clone(), driver_state),
            network,
        })
    }

    async fn wait(&self, task_id: &str) -> Result<ExitResult, DriverError> {
        self.tasks.get(task_id)?.wait_result(task_id).await
    }

    async fn stop(
        &self,
        task_id: &str,
        timeout: Duration,
        signal: &str,
    ) -> Result<(), DriverError> {
        let task = self.tasks.get(task_id)?;
        let name = stop_signal_name(&task.config, signal);
        let signal = parse_signal(name)?;
        if task.exited().is_some() {
            return Ok(());
        }
        self.kill(&task, signal.as_str()).await?;
        if task.wait_exit(timeout).await {
            return Ok(());
        }
        self.events.emit(
            DriverEvent::new(
                &task.config,
                format!("container did not exit {timeout:?} after {signal}; sending SIGKILL"),
            )
            .with_annotation("signal", "SIGKILL"),
        );
        self.kill(&task, "SIGKILL").await?;
        if task.wait_exit(KILL_GRACE).await {
            Ok(())
        } else {
            Err(DriverError::Timeout {
                task_id: task_id.to_owned(),
                operation: "kill".into(),
            })
        }
    }

    async fn destroy(&self, task_id: &str, force: bool) -> Result<(), DriverError> {
        let Some(task) = self.tasks.find(task_id) else {
            return Ok(());
        };
        if task.exited().is_none() && !force {
            return Err(DriverError::TaskRunning {
                task_id: task_id.to_owned(),
            });
        }
        self.remove_container(&task.state.container_id).await?;
        task.stop_following();
        self.tasks.remove(task_id);
        Ok(())
    }

    async fn inspect(&self, task_id: &str) -> Result<TaskStatus, DriverError> {
        Ok(self.tasks.get(task_id)?.status())
    }

    async fn recover(&self, handle: &TaskHandle) -> Result<(), DriverError> {
        if handle.driver != NAME {
            return Err(DriverError::InvalidHandle {
                reason: format!("the handle was made by driver {:?}", handle.driver),
            });
        }
        let state: DockerState =
            serde_json::from_value(handle.driver_state.clone()).map_err(|err| {
                DriverError::InvalidHandle {
                    reason: format!("docker state: {err}"),
                }
            })?;
        let config = &handle.config;
        if self.tasks.contains(&config.id) {
            return Ok(());
        }
        let inspect = match self.inspect_container(&state.container_id).await {
            Ok(inspect) => inspect,
            Err(err) if err.is_not_found() => {
                return Err(DriverError::TaskGone {
                    task_id: config.id.clone(),
                    reason: format!("container {} no longer exists", state.container_id),
                })
            }
            Err(err) => {
                return Err(DriverError::DriverUnhealthy {
                    driver: NAME.into(),
                    reason: err.to_string(),
                })
            }
        };
        if !inspect.state.running {
            return Err(DriverError::TaskGone {
                task_id: config.id.clone(),
                reason: format!(
                    "container {} is {} (exit code {})",
                    inspect.id, inspect.state.status, inspect.state.exit_code
                ),
            });
        }
        let container = self.track(config, state, now_unix());
        if let Err(container) = self.tasks.insert(container) {
            container.stop_following();
        }
        Ok(())
    }

    async fn stats(&self, task_id: &str) -> Result<TaskResourceUsage, DriverError> {
        let task = self.tasks.get(task_id)?;
        if task.exited().is_some() {
            return Err(DriverError::TaskGone {
                task_id: task_id.to_owned(),
                reason: "the container has exited".into(),
            });
        }
        let id = &task.state.container_id;
        let stats: Value = self
            .api
            .json(
                Method::GET,
                &format!("/containers/{id}/stats?stream=0&one-shot=1"),
                Body::Empty,
            )
            .await
            .map_err(|err| api_error(format!("reading the stats of container {id}"), err))?;
        let number = |pointer: &str| stats.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
        let usage = number("/memory_stats/usage");
        // cgroup v1 reports rss and cache, v2 anon and file.
        let rss = number("/memory_stats/stats/rss").max(number("/memory_stats/stats/anon"));
        let cache = number("/memory_stats/stats/cache").max(number("/memory_stats/stats/file"));
        let mut cpu = CpuUsage {
            user_ns: number("/cpu_stats/cpu_usage/usage_in_usermode"),
            system_ns: number("/cpu_stats/cpu_usage/usage_in_kernelmode"),
            percent: None,
        };
        let total = number("/cpu_stats/cpu_usage/total_usage");
        cpu.percent = task.cpu_rate.percent(total);
        let pids = stats.pointer("/pids_stats/current").and_then(Value::as_u64);
        Ok(TaskResourceUsage {
            timestamp: SystemTime::now(),
            cpu,
            memory: MemoryUsage {
                rss_bytes: rss,
                cache_bytes: cache,
                swap_bytes: number("/memory_stats/stats/swap"),
                usage_bytes: usage,
            },
            pids,
        })
    }

    fn events(&self, sink: Arc<dyn EventSink>) -> Result<(), DriverError> {
        self.events.subscribe(sink);
        Ok(())
    }

    async fn signal(&self, task_id: &str, signal: &str) -> Result<(), DriverError> {
        let task = self.tasks.get(task_id)?;
        let signal = parse_signal(signal)?;
        if task.exited().is_some() {
            return Err(DriverError::TaskGone {
                task_id: task_id.to_owned(),
                reason: "the container has exited".into(),
            });
        }
        self.kill(&task, signal.as_str()).await
    }

    async fn exec(
        &self,
        task_id: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecResult, DriverError> {
        let task = self.tasks.get(task_id)?;
        if command.is_empty() {
            return Err(DriverError::invalid_config(
                "command",
                "exec needs a command",
            ));
        }
        let id = &task.state.container_id;
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Created {
            id: String,
        }
        let run = async {
            let created: Created = self
                .api
                .json(
                    Method::POST,
                    &format!("/containers/{id}/exec"),
                    Body::Json(
                        json!({ "AttachStdout": true, "AttachStderr": true, "Cmd": command }),
                    ),
                )
                .await?;
            let response = self
                .api
                .send(
                    Method::POST,
                    &format!("/exec/{}/start", created.id),
                    Body::Json(json!({ "Detach": false, "Tty": false })),
                )
                .await?;
            let mut raw = response.into_body().collect().await?.to_bytes().to_vec();
            let mut result = ExecResult::default();
            for (stream, payload) in take_frames(&mut raw) {
                if stream == 2 {
                    result.stderr.extend(payload);
                } else {
                    result.stdout.extend(payload);
                }
            }
            let inspect: Value = self
                .api
                .json(
                    Method::GET,
                    &format!("/exec/{}/json", created.id),
                    Body::Empty,
                )
                .await?;
            let code = inspect
                .get("ExitCode")
                .and_then(Value::as_i64)
                .unwrap_or(-1);
            result.exit = ExitResult::code(i32::try_from(code).unwrap_or(-1));
            Ok::<_, ApiError>(result)
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(err)) => Err(api_error(format!("exec in container {id}"), err)),
            Err(_) => Err(DriverError::Timeout {
                task_id: task_id.to_owned(),
                operation: "exec".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_image_references_for_a_pull() {
        assert_eq!(pull_parts("busybox"), ("busybox".into(), "latest".into()));
        assert_eq!(
            pull_parts("busybox:1.36"),
            ("busybox".into(), "1.36".into())
        );
        assert_eq!(
            pull_parts("registry:5000/team/app:v2"),
            ("registry:5000/team/app".into(), "v2".into())
        );
        assert_eq!(
            pull_parts("registry:5000/team/app"),
            ("registry:5000/team/app".into(), "latest".into())
        );
        assert_eq!(
            pull_parts("app@sha256:abc"),
            ("app@sha256:abc".into(), String::new())
        );
    }

    #[test]
    fn finds_errors_in_streamed_answers() {
        let body = b"{\"status\":\"Pulling\"}\n{\"errorDetail\":{\"message\":\"denied\"},\"error\":\"denied\"}\n";
        assert_eq!(stream_error(body).as_deref(), Some("denied"));
        assert_eq!(stream_error(b"{\"status\":\"ok\"}"), None);
    }

    fn config_with_ports() -> TaskConfig {
        TaskConfig {
            id: "a/web/1".into(),
            alloc_id: "a".into(),
            task_name: "web".into(),
            dirs: nomad_core::driver::TaskDirs::new("/data/alloc/a", "web"),
            ports: vec![nomad_core::driver::PortMapping {
                label: "http".into(),
                value: 25000,
                to: 8080,
                host_ip: "127.0.0.1".into(),
            }],
            resources: nomad_core::driver::TaskResources {
                cpu_shares: 500,
                reserved_cores: vec![0, 1],
                memory_mb: 256,
                memory_max_mb: 512,
            },
            ..TaskConfig::default()
        }
    }

    #[test]
    fn builds_the_container_from_the_task() {
        let driver = DockerDriver::new(DockerConfig::default());
        let task = DockerTaskConfig {
            image: "busybox".into(),
            command: Some("/bin/sh".into()),
            args: vec!["-c".into(), "true".into()],
            ports: vec!["http".into()],
            labels: [("team".to_owned(), "a".to_owned())].into(),
            ..DockerTaskConfig::default()
        };
        let body = driver.container_body(&config_with_ports(), &task).unwrap();
        assert_eq!(body["Cmd"], json!(["/bin/sh", "-c", "true"]));
        assert_eq!(body["Labels"]["team"], "a");
        assert_eq!(body["Labels"]["com.hashicorp.nomad.alloc_id"], "a");
        let host = &body["HostConfig"];
        assert_eq!(host["Memory"], json!(512 * MIB));
        assert_eq!(host["MemoryReservation"], json!(256 * MIB));
        assert_eq!(host["CpuShares"], json!(500));
        assert_eq!(host["CpusetCpus"], "0,1");
        assert_eq!(host["Binds"][1], "/data/alloc/a/web/local:/local");
        assert_eq!(
            host["PortBindings"]["8080/tcp"],
            json!([{ "HostIp": "127.0.0.1", "HostPort": "25000" }])
        );
        assert!(body["ExposedPorts"].get("8080/udp").is_some());
    }

    #[test]
    fn an_unknown_port_label_is_refused_naming_it() {
        let driver = DockerDriver::new(DockerConfig::default());
        let task = DockerTaskConfig {
            image: "busybox".into(),
            ports: vec!["http".into(), "admin".into()],
            ..DockerTaskConfig::default()
        };
        let err = driver
            .container_body(&config_with_ports(), &task)
            .unwrap_err();
        assert!(
            matches!(err, DriverError::InvalidConfig { ref field, .. } if field == "ports[1]"),
            "{err}"
        );
    }
}
