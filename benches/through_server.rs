//! The scheduler harness end to end through a server: the clusters and jobs of
//! `nomad-sched`'s `sched-bench`, with the nodes registered in the state store through the
//! replicated log, and every job submitted through the eval broker, the scheduler workers
//! and the plan applier, exactly as `job run` does minus HTTP.
//!
//! ```text
//! cargo run --release -p nomad-benches --example sched-bench-server -- --scenario c1m --through-server
//!     [--json] [--seed N] [--jobs N] [--in-flight N] [--schedulers N]
//! ```
//!
//! Scenarios (the cluster shapes of `nomad-sched`'s harness): `c1m` (1,000 jobs x 1,000
//! allocations onto 10,000 nodes; `--jobs` runs fewer), `nomad-grid` (1K/5K/10K nodes x
//! jobs of 300/600/900/1,200 allocations, with and without spread), `growth` (20 jobs of
//! 1,000 at 1K, 10K and 100K nodes), `all`.
//!
//! Placements/s is the allocations committed over the wall time from the first job
//! submitted to the last evaluation finished. An evaluation's time runs from the job's
//! registration to its evaluation's completion, with `--in-flight` jobs submitted at once
//! (four by default: enough to keep every scheduler worker busy).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use nomad_core::job::Job;
use nomad_core::structs::{status, Node};
use nomad_sched::scenario::{self, JobShape};
use nomad_sched::SchedState;
use nomad_server::{Server, ServerConfig, Table};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

struct Args {
    scenario: String,
    json: bool,
    seed: u64,
    jobs: Option<u64>,
    in_flight: usize,
    schedulers: Option<usize>,
}

const USAGE: &str = "usage: sched-bench-server --scenario nomad-grid|c1m|growth|all --through-server [--json] [--seed N] [--jobs N] [--in-flight N] [--schedulers N]";

fn number<T: std::str::FromStr>(v: Option<String>, flag: &str) -> Result<T, String> {
    v.and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{flag} needs a number"))
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        scenario: String::new(),
        json: false,
        seed: 42,
        jobs: None,
        in_flight: 4,
        schedulers: None,
    };
    let mut through_server = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--scenario" => a.scenario = it.next().ok_or("--scenario needs a name")?,
            "--through-server" => through_server = true,
            "--json" => a.json = true,
            "--seed" => a.seed = number(it.next(), "--seed")?,
            "--jobs" => a.jobs = Some(number(it.next(), "--jobs")?),
            "--in-flight" => a.in_flight = number::<usize>(it.next(), "--in-flight")?.max(1),
            "--schedulers" => a.schedulers = Some(number::<usize>(it.next(), "--schedulers")?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if !through_server {
        return Err(format!(
            "this harness runs only --through-server; the scheduler alone is \
             `cargo run --release -p nomad-sched --example sched-bench`\n{USAGE}"
        ));
    }
    if a.scenario.is_empty() {
        return Err(format!("--scenario is required\n{USAGE}"));
    }
    Ok(a)
}

/// One measured case: a cluster and the jobs submitted to it.
struct Case {
    scenario: &'static str,
    name: String,
    nodes: usize,
    jobs: Vec<Job>,
}

/// What one case measured.
struct Row {
    scenario: &'static str,
    case: String,
    nodes: usize,
    jobs: usize,
    placements: u64,
    wall: Duration,
    register: Duration,
    eval_ms: Vec<f64>,
    plans: u64,
    refused: u64,
}

impl Row {
    fn placements_per_sec(&self) -> f64 {
        self.placements as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    fn eval_quantile_ms(&self, q: f64) -> f64 {
        if self.eval_ms.is_empty() {
            return 0.0;
        }
        let mut v = self.eval_ms.clone();
        v.sort_by(f64::total_cmp);
        let i = ((v.len() - 1) as f64 * q).round() as usize;
        v[i.min(v.len() - 1)]
    }

    fn json(&self) -> String {
        serde_json::json!({
            "scenario": self.scenario,
            "mode": "through-server",
            "case": self.case,
            "nodes": self.nodes,
            "jobs": self.jobs,
            "placements": self.placements,
            "placements_per_sec": self.placements_per_sec().round(),
            "eval_p50_ms": self.eval_quantile_ms(0.5),
            "eval_p99_ms": self.eval_quantile_ms(0.99),
            "wall_secs": self.wall.as_secs_f64(),
            "node_registration_secs": self.register.as_secs_f64(),
            "plans": self.plans,
            "node_plans_refused": self.refused,
        })
        .to_string()
    }
}

fn shape(count: u32, spread: bool, batch: bool) -> JobShape {
    JobShape {
        count,
        spread,
        batch,
        amd64_only: true,
    }
}

fn c1m(args: &Args) -> Vec<Case> {
    let jobs = args.jobs.unwrap_or(1000);
    let mut rng = SmallRng::seed_from_u64(args.seed ^ 0xc1);
    let jobs = (0..jobs)
        .map(|i| {
            let s = shape(1000, rng.gen_range(0..4) == 0, rng.gen_range(0..5) == 0);
            scenario::job(&format!("c1m-{i}"), s, &mut rng)
        })
        .collect::<Vec<_>>();
    vec![Case {
        scenario: "c1m",
        name: format!("{} jobs x 1000 allocs", jobs.len()),
        nodes: 10_000,
        jobs,
    }]
}

fn grid(args: &Args) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut rng = SmallRng::seed_from_u64(args.seed ^ 0x9e1d);
    for nodes in [1000usize, 5000, 10_000] {
        for spread in [false, true] {
            for count in [300u32, 600, 900, 1200] {
                let job = scenario::job(
                    &format!("grid-{nodes}-{count}-{spread}"),
                    shape(count, spread, false),
                    &mut rng,
                );
                cases.push(Case {
                    scenario: "nomad-grid",
                    name: format!("{count} allocs{}", if spread { ", spread" } else { "" }),
                    nodes,
                    jobs: vec![job],
                });
            }
        }
    }
    cases
}

fn growth(args: &Args) -> Vec<Case> {
    let jobs = args.jobs.unwrap_or(20);
    [1000usize, 10_000, 100_000]
        .into_iter()
        .map(|nodes| {
            let mut rng = SmallRng::seed_from_u64(args.seed ^ 0x6700);
            let jobs = (0..jobs)
                .map(|i| scenario::job(&format!("growth-{i}"), shape(1000, false, false), &mut rng))
                .collect();
            Case {
                scenario: "growth",
                name: format!("{nodes} nodes"),
                nodes,
                jobs,
            }
        })
        .collect()
}

fn bar(len: u64, msg: &str, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>28} [{bar:40}] {pos}/{len} placements ({per_sec}, eta {eta})",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(msg.to_string());
    pb
}

/// Registers the nodes with many writers at once (their writes share log entries).
async fn register_nodes(server: &Server, nodes: Vec<Node>) -> Result<(), String> {
    let nodes = Arc::new(nodes);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (server, nodes, next) = (server.clone(), Arc::clone(&nodes), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(node) = nodes.get(i) else {
                    return Ok::<(), String>(());
                };
                server
                    .register_node(node.clone())
                    .await
                    .map_err(|e| format!("registering node {}: {e}", node.id))?;
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Submits one job and waits until its evaluation is finished; returns the allocations
/// it has then and how long that took.
async fn run_job(server: &Server, job: Job) -> Result<(u64, Duration), String> {
    let id = job.id.clone();
    let t = Instant::now();
    let reg = server
        .register_job(job)
        .await
        .map_err(|e| format!("registering job {id}: {e}"))?;
    let mut seen = 0;
    loop {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        let snap = server
            .state()
            .watch_tables(&[Table::Evals], seen, deadline)
            .await;
        seen = snap.table_index(Table::Evals).max(1);
        let done = snap.eval(&reg.eval_id).is_some_and(|e| {
            matches!(
                e.status.as_str(),
                status::EVAL_COMPLETE | status::EVAL_FAILED | status::EVAL_CANCELED
            )
        });
        if done {
            let placed = snap
                .job_allocs("default", &id)
                .iter()
                .filter(|a| !a.terminal())
                .count() as u64;
            return Ok((placed, t.elapsed()));
        }
        if t.elapsed() > Duration::from_secs(600) {
            return Err(format!("job {id}: evaluation not finished after 600s"));
        }
    }
}

async fn run_case(args: &Args, case: Case) -> Result<Row, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut config = ServerConfig::dev(dir.path());
    config.http_addr = None;
    // Simulated nodes never heartbeat: keep them up for the whole run.
    config.heartbeat_ttl = Duration::from_secs(24 * 3600);
    if let Some(n) = args.schedulers {
        config.num_schedulers = n.max(1);
    }
    let server = Server::start(config)
        .await
        .map_err(|e| format!("starting the server: {e}"))?;

    let cluster = scenario::cluster(case.nodes, args.seed);
    let nodes: Vec<Node> = cluster.nodes().iter().map(|n| n.as_ref().clone()).collect();
    drop(cluster);
    let t = Instant::now();
    register_nodes(&server, nodes).await?;
    let register = t.elapsed();
    if !args.json {
        eprintln!(
            "{}: {} nodes registered through the log in {:.2}s",
            case.scenario,
            case.nodes,
            register.as_secs_f64()
        );
    }

    let want: u64 = case
        .jobs
        .iter()
        .flat_map(|j| &j.task_groups)
        .map(|g| u64::from(g.count.unwrap_or(0)))
        .sum();
    let label = format!("{} {}", case.scenario, case.nodes);
    let pb = bar(want, &label, args.json);
    let jobs = Arc::new(std::sync::Mutex::new(case.jobs.into_iter()));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.in_flight {
        let (server, jobs, pb) = (server.clone(), Arc::clone(&jobs), pb.clone());
        tasks.push(tokio::spawn(async move {
            let mut placed = 0u64;
            let mut evals = Vec::new();
            loop {
                let next = match jobs.lock() {
                    Ok(mut it) => it.next(),
                    Err(_) => None,
                };
                let Some(job) = next else {
                    return Ok::<_, String>((placed, evals));
                };
                let (n, took) = run_job(&server, job).await?;
                pb.inc(n);
                placed += n;
                evals.push(took.as_secs_f64() * 1000.0);
            }
        }));
    }
    let mut placements = 0;
    let mut eval_ms = Vec::new();
    let mut njobs = 0;
    for task in tasks {
        let (p, e) = task.await.map_err(|e| e.to_string())??;
        placements += p;
        njobs += e.len();
        eval_ms.extend(e);
    }
    let wall = t.elapsed();
    pb.finish_and_clear();
    let m = server.metrics();
    let row = Row {
        scenario: case.scenario,
        case: case.name,
        nodes: case.nodes,
        jobs: njobs,
        placements,
        wall,
        register,
        eval_ms,
        plans: m.plans_submitted.load(Ordering::Relaxed),
        refused: m.node_plans_refused.load(Ordering::Relaxed),
    };
    server.shutdown();
    Ok(row)
}

fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<11} {:<26} {:>7} {:>5} {:>9} {:>12} {:>9} {:>9} {:>8} {:>7}\n",
        "scenario",
        "case",
        "nodes",
        "jobs",
        "placed",
        "placements/s",
        "eval p50",
        "eval p99",
        "wall s",
        "refused"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<11} {:<26} {:>7} {:>5} {:>9} {:>12.0} {:>7.1}ms {:>7.1}ms {:>8.2} {:>7}\n",
            r.scenario,
            r.case,
            r.nodes,
            r.jobs,
            r.placements,
            r.placements_per_sec(),
            r.eval_quantile_ms(0.5),
            r.eval_quantile_ms(0.99),
            r.wall.as_secs_f64(),
            r.refused
        ));
    }
    out
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let cases = match args.scenario.as_str() {
        "c1m" => c1m(&args),
        "nomad-grid" => grid(&args),
        "growth" => growth(&args),
        "all" => [grid(&args), c1m(&args), growth(&args)]
            .into_iter()
            .flatten()
            .collect(),
        other => {
            eprintln!("unknown scenario {other:?}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let mut rows = Vec::new();
    for case in cases {
        match run_case(&args, case).await {
            Ok(row) => {
                if args.json {
                    println!("{}", row.json());
                }
                rows.push(row);
            }
            Err(e) => {
                eprintln!("sched-bench-server: {e}");
                std::process::exit(1);
            }
        }
    }
    if !args.json {
        print!("{}", table(&rows));
    }
}
