//! Acceptance tests of the real `nomad` binary: `nomad agent -dev` on a free loopback port
//! and a temporary data directory, the networking scenarios of Nomad's documentation run
//! with `raw_exec` and checked over real sockets, an agent killed with SIGKILL and started
//! again, and the CLI's errors.
//!
//! The store is `redis-server` (Debian's package) when installed, otherwise a small Python
//! TCP server that answers `PING` the same way.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

const NOMAD: &str = env!("CARGO_BIN_EXE_nomad");

/// The app of the scenarios: answers HTTP GETs with what the store at `DEMO_REDIS_ADDR`
/// said to `PING`.
const APP: &str = r#"
import os, socket, sys, http.server
addr = os.environ.get("DEMO_REDIS_ADDR", "").strip()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            host, port = addr.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=2) as s:
                s.sendall(b"PING\r\n")
                reply = s.recv(64).decode().strip()
            body = "store %s says %s\n" % (addr, reply)
        except Exception as e:
            body = "store %r unreachable: %s\n" % (addr, e)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body.encode())
    def log_message(self, *args):
        pass
print("app listening on %s:%s" % (sys.argv[2], sys.argv[1]), flush=True)
http.server.HTTPServer((sys.argv[2], int(sys.argv[1])), H).serve_forever()
"#;

/// A stand-in for redis when it is not installed: `+PONG` to every line.
const FAKE_REDIS: &str = r#"
import socketserver, sys
class H(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(b"+PONG\r\n")
socketserver.ThreadingTCPServer.allow_reuse_address = True
print("Ready to accept connections", flush=True)
socketserver.ThreadingTCPServer((sys.argv[2], int(sys.argv[1])), H).serve_forever()
"#;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running `nomad agent -dev`.
struct Agent {
    child: Option<Child>,
    addr: String,
    data_dir: PathBuf,
    dir: PathBuf,
}

impl Agent {
    fn start(dir: &Path, port: u16) -> Agent {
        let data_dir = dir.join("data");
        let cfg = dir.join("agent.hcl");
        std::fs::write(&cfg, format!("ports {{\n  http = {port}\n}}\n")).expect("config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("agent.log"))
            .expect("log file");
        let child = Command::new(NOMAD)
            .args(["agent", "-dev", "-config"])
            .arg(&cfg)
            .arg("-data-dir")
            .arg(&data_dir)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting the agent");
        let agent = Agent {
            child: Some(child),
            addr: format!("http://127.0.0.1:{port}"),
            data_dir,
            dir: dir.to_path_buf(),
        };
        agent.wait_until("the node is ready", Duration::from_secs(30), |a| {
            a.nomad(&["node", "status"]).stdout_text().contains("ready")
        });
        agent
    }

    fn nomad(&self, args: &[&str]) -> Output {
        Command::new(NOMAD)
            .args(args)
            .env("NOMAD_ADDR", &self.addr)
            .env_remove("NOMAD_NAMESPACE")
            .env_remove("NOMAD_REGION")
            .env_remove("NOMAD_TOKEN")
            .output()
            .expect("running nomad")
    }

    fn get_json(&self, path: &str) -> Value {
        let port = self.addr.rsplit(':').next().expect("port");
        let text = http_get(&format!("127.0.0.1:{port}"), path).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    fn wait_until(&self, what: &str, limit: Duration, mut cond: impl FnMut(&Agent) -> bool) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if cond(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default();
        panic!("timed out waiting for {what}; agent log:\n{log}");
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The running allocations of a job: `(alloc id, group)`.
    fn running_allocs(&self, job: &str) -> Vec<(String, String)> {
        let v = self.get_json(&format!("/v1/job/{job}/allocations"));
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter(|x| x["ClientStatus"] == "running" && x["DesiredStatus"] == "run")
                    .map(|x| {
                        (
                            x["ID"].as_str().unwrap_or_default().to_string(),
                            x["TaskGroup"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The host address of a port label of an allocation.
    fn port_of(&self, alloc: &str, label: &str) -> String {
        let v = self.get_json(&format!("/v1/allocation/{alloc}"));
        let ports = &v["AllocatedResources"]["Shared"]["Ports"];
        ports
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["Label"] == label))
            .map(|p| format!("{}:{}", p["HostIP"].as_str().unwrap_or(""), p["Value"]))
            .unwrap_or_default()
    }

    fn run_job(&self, file: &Path) {
        let out = self.nomad(&["job", "run", "-detach", file.to_str().expect("path")]);
        assert!(out.status.success(), "job run: {}", out.all_text());
    }

    fn stop_all(&self, jobs: &[&str]) {
        for j in jobs {
            let _ = self.nomad(&["job", "stop", "-purge", "-detach", j]);
        }
        self.wait_until("the jobs' tasks to stop", Duration::from_secs(30), |a| {
            jobs.iter().all(|j| a.running_allocs(j).is_empty())
        });
    }
}

impl Drop for Agent {
    /// Stops every job first (a failed test must not leave tasks behind), then the agent.
    fn drop(&mut self) {
        if self.child.is_some() {
            let jobs = self.get_json("/v1/jobs");
            let ids: Vec<String> = jobs
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|j| j["ID"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            for id in &ids {
                let _ = self.nomad(&["job", "stop", "-purge", "-detach", id]);
            }
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10)
                && ids.iter().any(|j| !self.running_allocs(j).is_empty())
            {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.kill9();
    }
}

trait OutputText {
    fn stdout_text(&self) -> String;
    fn all_text(&self) -> String;
}

impl OutputText for Output {
    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    fn all_text(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(&self.stderr)
        )
    }
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_string())
}

fn redis_ping(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"PING\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).trim().to_string())
}

/// The store task's `config` block: redis-server, or the Python stand-in.
fn store_config(dir: &Path, label: &str) -> String {
    if Path::new("/usr/bin/redis-server").exists() {
        format!(
            r#"command = "/usr/bin/redis-server"
        args    = ["--port", "${{NOMAD_PORT_{label}}}", "--bind", "${{NOMAD_IP_{label}}}", "--protected-mode", "no", "--save", "", "--appendonly", "no"]"#
        )
    } else {
        let script = dir.join("fake_redis.py");
        std::fs::write(&script, FAKE_REDIS).expect("script");
        format!(
            r#"command = "/usr/bin/python3"
        args    = ["{}", "${{NOMAD_PORT_{label}}}", "${{NOMAD_IP_{label}}}"]"#,
            script.display()
        )
    }
}

fn app_config(dir: &Path, label: &str) -> String {
    let script = dir.join("app.py");
    std::fs::write(&script, APP).expect("script");
    format!(
        r#"command = "/usr/bin/python3"
        args    = ["{}", "${{NOMAD_PORT_{label}}}", "${{NOMAD_IP_{label}}}"]"#,
        script.display()
    )
}

fn write_job(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(format!("{name}.nomad.hcl"));
    std::fs::write(&p, text).expect("job file");
    p
}

/// Host dynamic port, static port, two tasks of one group sharing `NOMAD_ADDR_*`, and two
/// groups finding each other through native service discovery and a template.
#[test]
fn networking_scenarios_over_real_sockets() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let agent = Agent::start(dir, free_port());

    // Scenario 1: a dynamic host port.
    let dynamic = write_job(
        dir,
        "redis-dynamic",
        &format!(
            r#"job "redis-dynamic" {{
  group "redis" {{
    network {{
      port "redis" {{}}
    }}
    task "redis" {{
      driver = "raw_exec"
      config {{
        {}
      }}
    }}
  }}
}}"#,
            store_config(dir, "redis")
        ),
    );
    // Scenario 1b: a static host port.
    let static_port = free_port();
    let fixed = write_job(
        dir,
        "redis-static",
        &format!(
            r#"job "redis-static" {{
  group "redis" {{
    network {{
      port "redis" {{
        static = {static_port}
      }}
    }}
    task "redis" {{
      driver = "raw_exec"
      config {{
        {}
      }}
    }}
  }}
}}"#,
            store_config(dir, "redis")
        ),
    );
    // Scenario 2: two tasks of one group; the app reaches redis through NOMAD_ADDR_redis.
    let same_group = write_job(
        dir,
        "hello-group",
        &format!(
            r#"job "hello-group" {{
  group "app" {{
    network {{
      port "app" {{}}
      port "redis" {{}}
    }}
    task "redis" {{
      driver = "raw_exec"
      config {{
        {}
      }}
    }}
    task "app" {{
      driver = "raw_exec"
      env {{
        DEMO_REDIS_ADDR = "${{NOMAD_ADDR_redis}}"
      }}
      config {{
        {}
      }}
    }}
  }}
}}"#,
            store_config(dir, "redis"),
            app_config(dir, "app")
        ),
    );
    // Scenario 3: two groups; the app finds redis in the native catalog through a template.
    let two_groups = write_job(
        dir,
        "hello",
        &format!(
            r#"job "hello" {{
  group "app" {{
    network {{
      port "app" {{}}
    }}
    service {{
      name     = "hello-app"
      provider = "nomad"
      port     = "app"
    }}
    task "app" {{
      driver = "raw_exec"
      template {{
        data        = <<EOH
{{{{ range nomadService "hello-redis" }}}}DEMO_REDIS_ADDR={{{{ .Address }}}}:{{{{ .Port }}}}
{{{{ end }}}}
EOH
        destination = "local/config.env"
        env         = true
      }}
      config {{
        {}
      }}
    }}
  }}
  group "redis" {{
    network {{
      port "redis" {{}}
    }}
    service {{
      name     = "hello-redis"
      provider = "nomad"
      port     = "redis"
    }}
    task "redis" {{
      driver = "raw_exec"
      config {{
        {}
      }}
    }}
  }}
}}"#,
            app_config(dir, "app"),
            store_config(dir, "redis")
        ),
    );

    // A plan of a new job reports changes (exit 1) and placement.
    let plan = agent.nomad(&["job", "plan", dynamic.to_str().expect("path")]);
    assert_eq!(plan.status.code(), Some(1), "{}", plan.all_text());
    assert!(plan.stdout_text().contains("+ Job: \"redis-dynamic\""));
    assert!(plan
        .stdout_text()
        .contains("All tasks successfully allocated"));

    for f in [&dynamic, &fixed, &same_group, &two_groups] {
        agent.run_job(f);
    }

    // 1: the dynamic port answers PING.
    agent.wait_until("redis-dynamic to run", Duration::from_secs(30), |a| {
        a.running_allocs("redis-dynamic").len() == 1
    });
    let (alloc, _) = agent.running_allocs("redis-dynamic").remove(0);
    let addr = agent.port_of(&alloc, "redis");
    let port: u16 = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    assert!((20000..=32000).contains(&port), "dynamic port {addr}");
    agent.wait_until("PONG on the dynamic port", Duration::from_secs(20), |_| {
        redis_ping(&addr).as_deref() == Some("+PONG")
    });
    let logs = agent.nomad(&["alloc", "logs", &alloc[..8], "redis"]);
    assert!(logs.status.success(), "{}", logs.all_text());
    assert!(
        logs.stdout_text().contains("Ready to accept connections"),
        "{}",
        logs.all_text()
    );

    // 1b: the static port is the one asked for.
    agent.wait_until("redis-static to run", Duration::from_secs(30), |a| {
        a.running_allocs("redis-static").len() == 1
    });
    let (alloc, _) = agent.running_allocs("redis-static").remove(0);
    let addr = agent.port_of(&alloc, "redis");
    assert!(addr.ends_with(&format!(":{static_port}")), "{addr}");
    agent.wait_until("PONG on the static port", Duration::from_secs(20), |_| {
        redis_ping(&addr).as_deref() == Some("+PONG")
    });

    // 2: one group, two tasks, NOMAD_ADDR_redis.
    agent.wait_until("hello-group to run", Duration::from_secs(30), |a| {
        a.running_allocs("hello-group").len() == 1
    });
    let (alloc, _) = agent.running_allocs("hello-group").remove(0);
    let app = agent.port_of(&alloc, "app");
    agent.wait_until(
        "the app to reach redis in its group",
        Duration::from_secs(20),
        |_| http_get(&app, "/").is_some_and(|b| b.contains("says +PONG")),
    );

    // 3: two groups through the native catalog and a template.
    agent.wait_until("hello to run", Duration::from_secs(30), |a| {
        a.running_allocs("hello").len() == 2
    });
    let app_alloc = agent
        .running_allocs("hello")
        .into_iter()
        .find(|(_, g)| g == "app")
        .map(|(id, _)| id)
        .expect("app allocation");
    let app = agent.port_of(&app_alloc, "app");
    agent.wait_until(
        "the app to find redis through the catalog",
        Duration::from_secs(40),
        |_| http_get(&app, "/").is_some_and(|b| b.contains("says +PONG")),
    );
    let services = agent.nomad(&["service", "list"]).stdout_text();
    assert!(
        services.contains("hello-app") && services.contains("hello-redis"),
        "{services}"
    );
    let info = agent
        .nomad(&["service", "info", "hello-redis"])
        .stdout_text();
    assert!(info.contains("hello"), "{info}");
    let status = agent.nomad(&["job", "status", "hello"]);
    assert!(status.status.success(), "{}", status.all_text());
    assert!(status.stdout_text().contains("running"));

    // Planning a running job unchanged: exit 0.
    let plan = agent.nomad(&["job", "plan", dynamic.to_str().expect("path")]);
    assert_eq!(plan.status.code(), Some(0), "{}", plan.all_text());

    agent.stop_all(&["redis-dynamic", "redis-static", "hello-group", "hello"]);
    agent.wait_until(
        "the services to be deregistered",
        Duration::from_secs(20),
        |a| {
            !a.nomad(&["service", "list"])
                .stdout_text()
                .contains("hello-redis")
        },
    );
}

/// The PIDs of processes whose command line mentions `marker`.
fn pids_with(marker: &str) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        .collect();
    out.sort_unstable();
    out
}

/// SIGKILL the agent and start it on the same data directory: jobs, allocations and
/// services are intact and the tasks were not restarted.
#[test]
fn agent_restart_after_kill_keeps_everything() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let port = free_port();
    let mut agent = Agent::start(dir, port);
    let marker = dir.join("app.py");
    let job = write_job(
        dir,
        "survivor",
        &format!(
            r#"job "survivor" {{
  group "app" {{
    count = 2
    network {{
      port "app" {{}}
    }}
    service {{
      name     = "survivor"
      provider = "nomad"
      port     = "app"
    }}
    task "app" {{
      driver = "raw_exec"
      config {{
        {}
      }}
    }}
  }}
}}"#,
            app_config(dir, "app")
        ),
    );
    agent.run_job(&job);
    agent.wait_until("two running allocations", Duration::from_secs(30), |a| {
        a.running_allocs("survivor").len() == 2
    });
    agent.wait_until("two service instances", Duration::from_secs(20), |a| {
        a.get_json("/v1/service/survivor")
            .as_array()
            .is_some_and(|v| v.len() == 2)
    });
    let marker = marker.to_string_lossy().into_owned();
    let pids = pids_with(&marker);
    assert_eq!(pids.len(), 2, "task processes: {pids:?}");
    let mut allocs = agent.running_allocs("survivor");
    allocs.sort();
    let services = agent.get_json("/v1/service/survivor");

    agent.kill9();
    assert_eq!(pids_with(&marker), pids, "tasks survive the agent");
    let agent = Agent::start(dir, port);
    assert_eq!(agent.data_dir, dir.join("data"));
    // Give the restored client time to push status and to reconcile.
    std::thread::sleep(Duration::from_secs(2));
    let mut after = agent.running_allocs("survivor");
    after.sort();
    assert_eq!(after, allocs, "same allocations, still running");
    let services_after = agent.get_json("/v1/service/survivor");
    let ids = |v: &Value| -> Vec<String> {
        let mut ids: Vec<String> = v
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| format!("{}@{}:{}", s["ID"], s["Address"], s["Port"]))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&services_after),
        ids(&services),
        "same service instances"
    );
    assert_eq!(pids_with(&marker), pids, "tasks undisturbed (same PIDs)");
    let status = agent.nomad(&["job", "status", "survivor"]);
    assert!(status.status.success(), "{}", status.all_text());
    agent.stop_all(&["survivor"]);
    agent.wait_until("task processes to end", Duration::from_secs(20), |_| {
        pids_with(&marker).is_empty()
    });
}

/// Bad input through the CLI gets clear errors and the right exit codes.
#[test]
fn cli_errors_are_clear() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();

    // No agent at the address: the address is named.
    let dead = free_port();
    let out = Command::new(NOMAD)
        .args([
            "job",
            "status",
            "-address",
            &format!("http://127.0.0.1:{dead}"),
        ])
        .output()
        .expect("nomad");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.all_text().contains(&format!("127.0.0.1:{dead}")),
        "{}",
        out.all_text()
    );

    let agent = Agent::start(dir, free_port());
    let out = agent.nomad(&["job", "status", "no-such-job"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out
        .all_text()
        .contains("No job(s) with prefix or id \"no-such-job\" found"));

    let out = agent.nomad(&["alloc", "status", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.all_text().contains("at least two characters"),
        "{}",
        out.all_text()
    );

    let out = agent.nomad(&["alloc", "status", "ffffffff"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out
        .all_text()
        .contains("No allocation(s) with prefix or id"));

    let out = agent.nomad(&["eval", "status", "ffffffff"]);
    assert_eq!(out.status.code(), Some(1));

    let out = agent.nomad(&["node", "drain", "ff"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.all_text().contains("-enable"), "{}", out.all_text());

    let out = agent.nomad(&["job", "status", "-bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.all_text().contains("bogus"), "{}", out.all_text());

    // A job no node can run: exit 2 with the scheduler's reasons.
    let huge = write_job(
        dir,
        "huge",
        r#"job "huge" {
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sleep"
        args    = ["60"]
      }
      resources {
        memory = 100000000
      }
    }
  }
}"#,
    );
    let out = agent.nomad(&["job", "run", huge.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(2), "{}", out.all_text());
    let text = out.all_text();
    assert!(text.contains("failed to place"), "{text}");
    assert!(text.contains("Dimension \"memory\" exhausted"), "{text}");

    // A syntax error names the place.
    let broken = write_job(dir, "broken", "job \"b\" {\n  group \"g\" {\n");
    let out = agent.nomad(&["job", "run", broken.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.all_text().contains("broken.nomad.hcl"),
        "{}",
        out.all_text()
    );

    // Basic cluster views work.
    for args in [
        vec!["server", "members"],
        vec!["operator", "raft", "list-peers"],
        vec!["status"],
        vec!["node", "status"],
    ] {
        let out = agent.nomad(&args);
        assert!(out.status.success(), "{args:?}: {}", out.all_text());
    }
    let _ = agent.nomad(&["job", "stop", "-purge", "-detach", "huge"]);
}

/// python-nomad, a Nomad API client written against Nomad itself, drives the agent
/// unchanged: parse, validate, plan, register, read every object, stream logs, toggle
/// eligibility, purge. Runs when the `nomad` Python package is installed (`.ci/run`
/// installs it); elsewhere it says so and passes, unless `CI` is set.
#[test]
fn an_existing_nomad_api_client_works_unchanged() {
    let has_client = Command::new("python3")
        .args(["-c", "import nomad"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_client {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs python-nomad: pip install python-nomad"
        );
        eprintln!("skipped: python-nomad is not installed (pip install python-nomad)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let agent = Agent::start(dir.path(), port);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/nomad_client_compat.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(port.to_string())
        .output()
        .expect("running python3");
    let text = out.all_text();
    let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "python-nomad failed against the agent:\n{text}\nagent log:\n{log}"
    );
    assert!(text.contains("every check passed"), "{text}");
    drop(agent);
}
