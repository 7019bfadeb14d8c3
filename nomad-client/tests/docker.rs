//! The docker driver against the local Docker engine, with an image built here from the
//! host's busybox (no registry is needed). When no engine answers, these tests say so and
//! skip.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nomad_client::{DockerConfig, DockerDriver};
use nomad_core::driver::{
    DriverError, PortMapping, TaskConfig, TaskDirs, TaskDriver, TaskResources,
};
use nomad_driver_conformance::{Conformance, TaskRecipes};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::OnceCell;

const IMAGE: &str = "nomad-rs-test/busybox:local";

/// The driver, once the engine answered and the test image exists; `None` when no engine
/// answers.
async fn engine() -> Option<DockerDriver> {
    let driver = DockerDriver::new(DockerConfig::default());
    if let Err(err) = driver.engine_version().await {
        println!("SKIPPED: docker tests skipped because no Docker engine answered ({err})");
        return None;
    }
    static IMPORTED: OnceCell<()> = OnceCell::const_new();
    IMPORTED
        .get_or_init(|| async { import_busybox(&driver).await })
        .await;
    Some(driver)
}

/// Imports a root filesystem of busybox and its applet links as [`IMAGE`], unless an earlier
/// run did.
async fn import_busybox(driver: &DockerDriver) {
    if driver.has_image(IMAGE).await.expect("test setup") {
        return;
    }
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "the docker tests need /bin/busybox: install the busybox-static package"
    );
    let root = tempfile::tempdir().expect("test setup");
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).expect("test setup");
    std::fs::create_dir_all(root.path().join("tmp")).expect("test setup");
    std::fs::copy(busybox, bin.join("busybox")).expect("test setup");
    let list = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .expect("test setup");
    for applet in String::from_utf8(list.stdout).expect("test setup").lines() {
        if applet != "busybox" && !applet.is_empty() {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("test setup");
        }
    }
    let tar = std::process::Command::new("tar")
        .arg("-C")
        .arg(root.path())
        .args(["-cf", "-", "."])
        .output()
        .expect("test setup");
    assert!(tar.status.success(), "tar failed: {:?}", tar);
    driver
        .import_image(tar.stdout, IMAGE)
        .await
        .expect("test setup");
}

fn sh(script: &str, args: &[&str]) -> Value {
    let mut all = vec!["-c", script, "sh"];
    all.extend_from_slice(args);
    json!({ "image": IMAGE, "command": "/bin/sh", "args": all })
}

struct BusyboxTasks;

impl TaskRecipes for BusyboxTasks {
    fn runs_until_stopped(&self) -> Value {
        sh("trap 'exit 0' TERM INT; echo ready; sleep 600 & wait", &[])
    }
    fn ignores_stop_signal(&self) -> Value {
        sh(
            "trap '' TERM INT; echo ready; while :; do sleep 1; done",
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
        sh("eval \"v=\\$$1\"; printf '%s\\n' \"$v\"", &[name])
    }
    fn writes_file(&self, dir_env: &str, file: &str, content: &str) -> Value {
        sh(
            "eval \"d=\\$$1\"; printf %s \"$3\" > \"$d/$2\"",
            &[dir_env, file, content],
        )
    }
}

fn task(dir: &Path, name: &str, driver_config: Value) -> TaskConfig {
    let alloc_id = format!("docker-test-{}-{name}", std::process::id());
    let dirs = TaskDirs::new(dir.join(&alloc_id), name);
    for d in dirs.all() {
        std::fs::create_dir_all(d).expect("test setup");
    }
    TaskConfig {
        id: format!("{alloc_id}/{name}/0"),
        alloc_id,
        task_name: name.into(),
        driver_config,
        env: [("NOMAD_TASK_NAME".to_owned(), name.to_owned())].into(),
        stdout_path: dirs.log_dir.join(format!("{name}.stdout")),
        stderr_path: dirs.log_dir.join(format!("{name}.stderr")),
        dirs,
        ..TaskConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_passes_the_conformance_kit() {
    if engine().await.is_none() {
        return;
    }
    let report = Conformance::new(
        || Arc::new(DockerDriver::new(DockerConfig::default())) as Arc<dyn TaskDriver>,
        BusyboxTasks,
    )
    .run()
    .await;
    println!("{report}");
    assert!(report.passed(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_cannot_be_pulled_fails_the_start_clearly() {
    let Some(driver) = engine().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = task(
        dir.path(),
        "absent",
        json!({ "image": "nomad-rs-test/absent:never", "command": "true" }),
    );
    let err = driver.start(&config).await.unwrap_err();
    match &err {
        DriverError::StartFailed { reason, .. } => {
            assert!(reason.contains("nomad-rs-test/absent:never"), "{reason}");
            assert!(reason.contains("could not be pulled"), "{reason}");
        }
        other => panic!("expected StartFailed, got {other:?}"),
    }
    driver.destroy(&config.id, true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_mounts_memory_limit_and_exec_reach_the_container() {
    let Some(driver) = engine().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let host_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let script = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
                  echo ready; exec httpd -f -p 8080 -h /local";
    let mut config = task(
        dir.path(),
        "web",
        json!({ "image": IMAGE, "command": "/bin/sh", "args": ["-c", script], "ports": ["http"],
                "labels": { "team": "drivers" } }),
    );
    config.ports = vec![PortMapping {
        label: "http".into(),
        value: host_port,
        to: 8080,
        host_ip: "127.0.0.1".into(),
    }];
    config.resources = TaskResources {
        cpu_shares: 100,
        memory_mb: 64,
        ..TaskResources::default()
    };
    std::fs::write(
        config.dirs.local_dir.join("index.html"),
        "served from local\n",
    )
    .unwrap();

    let started = driver.start(&config).await.unwrap();
    let network = started.network.expect("a bridge container has an address");
    assert!(!network.ip.is_empty());
    assert_eq!(network.port_map.get("http"), Some(&8080));

    let stdout = config.dirs.log_dir.join("web.stdout.0");
    let mut body = String::new();
    for _ in 0..100 {
        if std::fs::read_to_string(&stdout)
            .unwrap_or_default()
            .contains("ready")
        {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", host_port)).await {
                stream
                    .write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
                    .await
                    .unwrap();
                body.clear();
                let _ = stream.read_to_string(&mut body).await;
                if body.contains("served from local") {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        body.contains("served from local"),
        "the published port answered {body:?}"
    );
    let output = std::fs::read_to_string(&stdout).unwrap();
    assert!(
        output.starts_with("67108864\n"),
        "memory limit seen inside: {output:?}"
    );

    let exec = driver
        .exec(
            &config.id,
            &[
                "/bin/sh".into(),
                "-c".into(),
                "echo $NOMAD_TASK_NAME; ls /alloc /secrets >/dev/null".into(),
            ],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&exec.stdout), "web\n");
    assert_eq!(exec.exit.exit_code, 0);

    driver
        .stop(&config.id, Duration::from_secs(5), "SIGTERM")
        .await
        .unwrap();
    driver.wait(&config.id).await.unwrap();
    driver.destroy(&config.id, false).await.unwrap();
}
