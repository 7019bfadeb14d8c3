//! Job submitted → first task running, on a real `nomad agent -dev`.
//!
//! Starts the `nomad` binary (build it first: `cargo build --release -p nomad-bin`; the
//! harness looks beside its own executable's directory, or at `NOMAD_BIN`), submits
//! `SUBMISSIONS` single-task `raw_exec` jobs one after another through the HTTP API, and
//! times each from the `PUT /v1/jobs` until the server reports the allocation `running`
//! (the client agent pushed the started task's state), following it with blocking queries.
//! Prints p50, p90 and max.
//!
//! ```text
//! cargo build --release -p nomad-bin && cargo bench -p nomad-benches --bench submit-to-running
//! ```

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SUBMISSIONS: usize = 25;

fn nomad_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NOMAD_BIN") {
        return Some(PathBuf::from(p));
    }
    // target/<profile>/deps/<bench> → target/<profile>/nomad, else the other profile.
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let target = profile_dir.parent()?;
    [
        profile_dir.join("nomad"),
        target.join("release/nomad"),
        target.join("debug/nomad"),
    ]
    .into_iter()
    .find(|p| p.exists())
}

/// One HTTP/1.0 exchange: the status line's code and the body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_nodelay(true).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

fn header_index(addr: &str, path: &str) -> Option<(u64, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let index = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("X-Nomad-Index: ")
                .or_else(|| l.strip_prefix("x-nomad-index: "))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Some((index, body.to_string()))
}

fn job_json(id: &str) -> String {
    serde_json::json!({
        "Job": {
            "ID": id, "Name": id, "Type": "service", "Datacenters": ["dc1"],
            "TaskGroups": [{
                "Name": "g", "Count": 1,
                "Tasks": [{
                    "Name": "t", "Driver": "raw_exec",
                    "Config": {"command": "/bin/sleep", "args": ["600"]},
                    "Resources": {"CPU": 20, "MemoryMB": 16}
                }]
            }]
        }
    })
    .to_string()
}

struct AgentProcess(Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    // `cargo test --benches` runs this with `--test`-like flags; measure only under bench.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let Some(bin) = nomad_bin() else {
        eprintln!(
            "nomad binary not found: run `cargo build --release -p nomad-bin` or set NOMAD_BIN"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let cfg = dir.path().join("agent.hcl");
    std::fs::write(
        &cfg,
        format!("ports {{\n  http = {port}\n}}\nlog_level = \"WARN\"\n"),
    )
    .expect("config");
    let child = Command::new(&bin)
        .args(["agent", "-dev", "-config"])
        .arg(&cfg)
        .arg("-data-dir")
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the agent");
    let _agent = AgentProcess(child);
    let addr = format!("127.0.0.1:{port}");
    let start = Instant::now();
    loop {
        if let Some((200, body)) = http(&addr, "GET", "/v1/nodes", "") {
            if body.contains("\"ready\"") {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the agent did not become ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut samples = Vec::with_capacity(SUBMISSIONS);
    for i in 0..SUBMISSIONS {
        let id = format!("bench-{i}");
        let t0 = Instant::now();
        let (code, body) = http(&addr, "PUT", "/v1/jobs", &job_json(&id)).expect("register");
        assert_eq!(code, 200, "register: {body}");
        let mut index = 0;
        loop {
            let (next, body) = header_index(
                &addr,
                &format!("/v1/job/{id}/allocations?index={index}&wait=10s"),
            )
            .expect("allocations");
            index = next;
            if body.contains("\"ClientStatus\":\"running\"") {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "job {id} never ran: {body}"
            );
        }
        samples.push(t0.elapsed());
    }
    for i in 0..SUBMISSIONS {
        let _ = http(
            &addr,
            "DELETE",
            &format!("/v1/job/bench-{i}?purge=true"),
            "",
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "submit-to-running: {} submissions, p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms (binary {})",
        samples.len(),
        ms(p(0.5)),
        ms(p(0.9)),
        ms(p(1.0)),
        bin.display()
    );
}
