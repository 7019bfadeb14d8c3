//! Deployments end to end with the real `nomad` binary: `nomad agent -dev` runs `raw_exec`
//! tasks whose health the client reports, the server's deployment watcher decides, and
//! `nomad job run` follows the deployment to its end.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

const NOMAD: &str = env!("CARGO_BIN_EXE_nomad");

/// Generous: the agent, the tasks and the watcher share two cores with other builds.
const LIMIT: Duration = Duration::from_secs(90);

/// A running `nomad agent -dev` on a free port, killed (with its jobs stopped) on drop.
struct Agent {
    child: Option<Child>,
    addr: String,
    dir: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let cfg = dir.join("agent.hcl");
        std::fs::write(&cfg, format!("ports {{\n  http = {port}\n}}\n")).expect("config");
        let log = std::fs::File::create(dir.join("agent.log")).expect("log file");
        let child = Command::new(NOMAD)
            .args(["agent", "-dev", "-config"])
            .arg(&cfg)
            .arg("-data-dir")
            .arg(dir.join("data"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting the agent");
        let agent = Agent {
            child: Some(child),
            addr: format!("127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
        };
        agent.wait_until("the node to be ready", |a| {
            a.get("/v1/nodes")
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n["Status"] == "ready"))
        });
        agent
    }

    fn nomad(&self, args: &[&str]) -> Output {
        Command::new(NOMAD)
            .args(args)
            .env("NOMAD_ADDR", format!("http://{}", self.addr))
            .env_remove("NOMAD_NAMESPACE")
            .env_remove("NOMAD_REGION")
            .env_remove("NOMAD_TOKEN")
            .output()
            .expect("running nomad")
    }

    /// `nomad job run` of a job file written to the test directory.
    fn run(&self, name: &str, hcl: &str, extra: &[&str]) -> Output {
        let file = self.dir.join(name);
        std::fs::write(&file, hcl).expect("job file");
        let mut args = vec!["job", "run"];
        args.extend_from_slice(extra);
        args.push(file.to_str().expect("path"));
        self.nomad(&args)
    }

    fn get(&self, path: &str) -> Value {
        let Ok(mut s) = TcpStream::connect(&self.addr) else {
            return Value::Null;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        if write!(s, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").is_err() {
            return Value::Null;
        }
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text.split_once("\r\n\r\n")
            .and_then(|(_, body)| serde_json::from_str(body).ok())
            .unwrap_or(Value::Null)
    }

    fn wait_until(&self, what: &str, mut cond: impl FnMut(&Agent) -> bool) {
        let start = Instant::now();
        while start.elapsed() < LIMIT {
            if cond(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("timed out waiting for {what}; agent log:\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// Job versions of the allocations that should run and do.
    fn running_versions(&self, job: &str) -> Vec<u64> {
        self.get(&format!("/v1/job/{job}/allocations"))
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|x| x["ClientStatus"] == "running" && x["DesiredStatus"] == "run")
                    .filter_map(|x| x["JobVersion"].as_u64())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = self.nomad(&["job", "stop", "-purge", "-detach", "web"]);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10)
                && !self.running_versions("web").is_empty()
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The count-3 job `web`, one allocation at a time; `command` decides whether its task
/// stays up, `env` makes versions differ.
fn job(env: &str, command: &str, update_extra: &str) -> String {
    format!(
        r#"job "web" {{
  datacenters = ["dc1"]
  group "app" {{
    count = 3
    update {{
      max_parallel      = 1
      min_healthy_time  = "1s"
      healthy_deadline  = "30s"
      progress_deadline = "60s"
      {update_extra}
    }}
    restart {{
      attempts = 0
      mode     = "fail"
    }}
    reschedule {{
      attempts  = 0
      unlimited = false
    }}
    task "server" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "{command}"]
      }}
      env {{
        VERSION = "{env}"
      }}
      resources {{
        cpu    = 50
        memory = 32
      }}
    }}
  }}
}}
"#
    )
}

const UP: &str = "exec sleep 600";

fn latest_deployment(agent: &Agent) -> Value {
    agent.get("/v1/job/web/deployment")
}

#[test]
fn job_run_follows_a_rolling_deployment_to_success_and_marks_the_version_stable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(dir.path());
    let out = agent.run("v0.hcl", &job("0", UP, ""), &[]);
    let t = text(&out);
    assert!(
        out.status.success(),
        "job run failed:\n{t}\n{}",
        agent.log()
    );
    assert!(t.contains("Monitoring deployment"), "{t}");
    assert!(t.contains("Deployment completed successfully"), "{t}");
    assert!(
        t.contains("Task Group  Desired  Placed  Healthy  Unhealthy  Progress Deadline"),
        "{t}"
    );
    assert!(t.contains("app         3        3       3        0"), "{t}");
    let d = latest_deployment(&agent);
    assert_eq!(d["Status"], "successful", "{d}");
    assert_eq!(d["TaskGroups"]["app"]["HealthyAllocs"], 3, "{d}");
    let job = agent.get("/v1/job/web");
    assert_eq!(
        (job["Version"].as_u64(), job["Stable"].as_bool()),
        (Some(0), Some(true))
    );
    assert_eq!(agent.running_versions("web"), vec![0, 0, 0]);

    let id = d["ID"].as_str().expect("deployment ID").to_string();
    let list = text(&agent.nomad(&["deployment", "list"]));
    assert!(
        list.contains(&id[..8]) && list.contains("successful"),
        "{list}"
    );
    let status = agent.nomad(&["deployment", "status", &id[..8]]);
    assert!(status.status.success(), "{}", text(&status));
    assert!(
        text(&status).contains("Description = Deployment completed successfully"),
        "{}",
        text(&status)
    );
    let missing = agent.nomad(&["deployment", "status", "ffffffff"]);
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("No deployment(s) with prefix or id \"ffffffff\" found"),
        "{}",
        text(&missing)
    );
    let short = agent.nomad(&["deployment", "status", "f"]);
    assert!(!short.status.success());
    assert!(
        text(&short).contains("at least two characters"),
        "{}",
        text(&short)
    );
    // A finished deployment can't be promoted; the server says why.
    let promote = agent.nomad(&["deployment", "promote", &id]);
    assert!(!promote.status.success());
    assert!(
        text(&promote).contains("terminal deployment"),
        "{}",
        text(&promote)
    );
}

#[test]
fn canary_is_promoted_automatically_and_the_rest_rolls_to_the_new_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(dir.path());
    let extra = "canary = 1\n      auto_promote = true";
    let out = agent.run("v0.hcl", &job("0", UP, extra), &[]);
    assert!(out.status.success(), "v0: {}\n{}", text(&out), agent.log());
    let out = agent.run("v1.hcl", &job("1", UP, extra), &[]);
    let t = text(&out);
    assert!(out.status.success(), "v1: {t}\n{}", agent.log());
    assert!(t.contains("Deployment completed successfully"), "{t}");
    assert!(t.contains("Promoted  Desired  Canaries"), "{t}");
    let d = latest_deployment(&agent);
    assert_eq!(
        (d["JobVersion"].as_u64(), d["Status"].as_str()),
        (Some(1), Some("successful")),
        "{d}"
    );
    let g = &d["TaskGroups"]["app"];
    assert_eq!(g["Promoted"], true, "{d}");
    assert_eq!(g["DesiredCanaries"], 1, "{d}");
    assert_eq!(g["PlacedCanaries"].as_array().map(Vec::len), Some(1), "{d}");
    assert_eq!(g["HealthyAllocs"], 3, "{d}");
    agent.wait_until("three allocations of version 1", |a| {
        a.running_versions("web") == vec![1, 1, 1]
    });
    let job = agent.get("/v1/job/web");
    assert_eq!(
        (job["Version"].as_u64(), job["Stable"].as_bool()),
        (Some(1), Some(true))
    );
    // The evaluations after the first came from the deployment watcher.
    let evals = agent.get("/v1/job/web/evaluations");
    assert!(
        evals
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["TriggeredBy"] == "deployment-watcher")),
        "{evals}"
    );
}

#[test]
fn a_failing_version_fails_its_deployment_and_reverts_to_the_stable_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(dir.path());
    let extra = "auto_revert = true";
    let out = agent.run("v0.hcl", &job("0", UP, extra), &[]);
    assert!(out.status.success(), "v0: {}\n{}", text(&out), agent.log());
    let out = agent.run("v1.hcl", &job("1", "exit 1", extra), &[]);
    let t = text(&out);
    assert!(
        !out.status.success(),
        "a failed deployment exits non-zero:\n{t}"
    );
    assert!(
        t.contains("Failed due to unhealthy allocations - rolling back to job version 0"),
        "{t}\n{}",
        agent.log()
    );
    let failed = agent
        .get("/v1/job/web/deployments")
        .as_array()
        .and_then(|ds| ds.iter().find(|d| d["JobVersion"] == 1).cloned())
        .expect("v1's deployment");
    assert_eq!(failed["Status"], "failed", "{failed}");
    assert!(failed["TaskGroups"]["app"]["UnhealthyAllocs"].as_u64() >= Some(1));
    // The revert registered version 2 with version 0's specification.
    agent.wait_until("job version 2", |a| a.get("/v1/job/web")["Version"] == 2);
    let versions = agent.get("/v1/job/web/versions")["Versions"].clone();
    let by_version = |v: u64| {
        versions
            .as_array()
            .and_then(|vs| vs.iter().find(|j| j["Version"] == v).cloned())
            .unwrap_or(Value::Null)
    };
    let (v0, v1, v2) = (by_version(0), by_version(1), by_version(2));
    assert_eq!(v0["Stable"], true);
    assert_eq!(v2["TaskGroups"], v0["TaskGroups"]);
    assert_ne!(v2["TaskGroups"], v1["TaskGroups"]);
    // The version 0 allocations keep running, updated in place to version 2.
    agent.wait_until("the running allocations on version 2", |a| {
        let v = a.running_versions("web");
        v.len() >= 2 && v.iter().all(|v| *v == 2)
    });
    // The revert's deployment counts those allocations and succeeds: version 2 is stable.
    agent.wait_until("version 2 deployed", |a| {
        let d = latest_deployment(a);
        d["JobVersion"] == 2 && d["Status"] == "successful"
    });
    assert_eq!(agent.get("/v1/job/web")["Stable"], true);
    // `-detach` returns at once with the evaluation.
    let out = agent.run("v3.hcl", &job("3", UP, extra), &["-detach"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Evaluation ID:"), "{}", text(&out));
}

#[test]
fn job_revert_submits_an_earlier_version_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(dir.path());
    let out = agent.run("v0.hcl", &job("0", UP, ""), &[]);
    assert!(out.status.success(), "v0: {}\n{}", text(&out), agent.log());
    let out = agent.run("v1.hcl", &job("1", UP, ""), &[]);
    assert!(out.status.success(), "v1: {}\n{}", text(&out), agent.log());
    assert_eq!(agent.get("/v1/job/web")["Version"], 1);

    // The current version is refused, naming why.
    let out = agent.nomad(&["job", "revert", "web", "1"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("can't revert to current version"),
        "{}",
        text(&out)
    );
    // A version that never existed is refused too.
    let out = agent.nomad(&["job", "revert", "web", "7"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("version 7 not found"), "{}", text(&out));

    // Going back to version 0 registers version 2 with version 0's groups and follows its
    // deployment to the end.
    let out = agent.nomad(&["job", "revert", "web", "0"]);
    assert!(out.status.success(), "{}\n{}", text(&out), agent.log());
    let versions = agent.get("/v1/job/web/versions")["Versions"].clone();
    let by_version = |v: u64| {
        versions
            .as_array()
            .and_then(|vs| vs.iter().find(|j| j["Version"] == v).cloned())
            .unwrap_or(Value::Null)
    };
    assert_eq!(by_version(2)["TaskGroups"], by_version(0)["TaskGroups"]);
    assert_ne!(by_version(2)["TaskGroups"], by_version(1)["TaskGroups"]);
    agent.wait_until("every allocation on version 2", |a| {
        let v = a.running_versions("web");
        v.len() == 3 && v.iter().all(|v| *v == 2)
    });
}
