//! Scheduler throughput harness.
//!
//! ```text
//! cargo run --release -p nomad-sched --example sched-bench -- --scenario c1m [--json]
//!     [--seed N] [--plot PATH] [--no-fill] [--sizes N,N (growth)] [--repeat N (growth)]
//! ```
//!
//! Scenarios: `nomad-grid` (1K/5K/10K nodes x jobs of 300/600/900/1,200 allocations, with
//! and without spread), `c1m` (1,000 jobs x 1,000 allocations onto 10,000 nodes), `growth`
//! (the same job at 1K, 10K and 100K nodes, each size measured `--repeat` times, 5 by
//! default, the sizes taking turns, and each reported by its median run), `all`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use nomad_sched::scenario::{self, JobShape, RunStats};
use nomad_sched::{Scheduler, SchedulerOptions};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The system allocator, counting calls and live bytes so that the harness can report
/// what one placement costs in memory (two relaxed atomic adds per call).
struct Counting;

static CALLS: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call forwards to `System` with the caller's layout unchanged.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        CALLS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(new_size as u64, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded as received.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocator calls and live heap bytes at one moment.
#[derive(Clone, Copy)]
struct Heap {
    calls: u64,
    live: u64,
}

impl Heap {
    fn now() -> Self {
        Heap {
            calls: CALLS.load(Ordering::Relaxed),
            live: LIVE.load(Ordering::Relaxed),
        }
    }
}

struct Args {
    scenario: String,
    json: bool,
    seed: u64,
    plot: Option<String>,
    fill: bool,
    sizes: Option<Vec<usize>>,
    /// Runs per cluster size in `growth`; the median run is reported.
    repeat: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        scenario: String::new(),
        json: false,
        seed: 42,
        plot: None,
        fill: true,
        sizes: None,
        repeat: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--scenario" => a.scenario = it.next().ok_or("--scenario needs a name")?,
            "--json" => a.json = true,
            "--no-fill" => a.fill = false,
            "--seed" => {
                a.seed = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--seed needs a number")?
            }
            "--sizes" => {
                let v = it.next().ok_or("--sizes needs a list such as 1000,10000")?;
                let sizes: Result<Vec<usize>, _> = v.split(',').map(str::parse).collect();
                a.sizes = Some(sizes.map_err(|_| "--sizes needs numbers")?);
            }
            "--repeat" => {
                a.repeat = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--repeat needs a number of runs, at least 1")?
            }
            "--plot" => a.plot = Some(it.next().ok_or("--plot needs a path")?),
            "-h" | "--help" => {
                return Err("usage: sched-bench --scenario nomad-grid|c1m|growth|all [--json] [--seed N] [--plot PATH] [--no-fill] [--sizes 1000,10000] [--repeat 5]".into())
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.scenario.is_empty() {
        return Err("--scenario is required (nomad-grid, c1m, growth, all)".into());
    }
    Ok(a)
}

/// One measured row.
struct Row {
    scenario: &'static str,
    case: String,
    nodes: usize,
    stats: RunStats,
    packing: Option<(f64, f64, f64)>,
    /// Allocator calls and live heap bytes per placement over the measured jobs
    /// (scheduling plus the in-memory plan applier that keeps the allocations).
    heap: Option<(f64, f64)>,
    /// Placements per second of every run when the row is the median of several.
    runs: Vec<f64>,
}

impl Row {
    fn json(&self) -> String {
        let packing = self
            .packing
            .map_or("null".to_string(), |p| format!("{:.4}", p.0));
        let (cpu, mem) = self
            .packing
            .map_or(("null".to_string(), "null".to_string()), |p| {
                (format!("{:.4}", p.1), format!("{:.4}", p.2))
            });
        format!(
            "{{\"scenario\":\"{}\",\"case\":\"{}\",\"nodes\":{},\"placements\":{},\"failed\":{},\"evals\":{},\"nodes_per_placement\":{:.1},\"placements_per_sec\":{:.0},\"placements_per_sec_wall\":{:.0},\"end_to_end_placements_per_sec\":{:.0},\"eval_p50_ms\":{:.3},\"eval_p99_ms\":{:.3},\"packing_efficiency\":{},\"packing_cpu\":{},\"packing_memory\":{},\"allocator_calls_per_placement\":{},\"heap_bytes_per_placement\":{},\"runs_placements_per_sec\":[{}]}}",
            self.scenario,
            self.case,
            self.nodes,
            self.stats.placements,
            self.stats.failed,
            self.stats.evals,
            self.stats.nodes_evaluated as f64 / (self.stats.placements + self.stats.failed).max(1) as f64,
            self.stats.placements_per_sec(),
            self.stats.placements_per_sec_wall(),
            self.stats.end_to_end_per_sec(),
            self.stats.eval_quantile_ms(0.5),
            self.stats.eval_quantile_ms(0.99),
            packing,
            cpu,
            mem,
            self.heap
                .map_or("null".to_string(), |h| format!("{:.1}", h.0)),
            self.heap
                .map_or("null".to_string(), |h| format!("{:.0}", h.1)),
            self.runs
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(","),
        )
    }
}

fn bar(len: u64, msg: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>28} [{bar:40}] {pos}/{len} placements ({per_sec}, eta {eta})",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(msg.to_string());
    pb
}

fn scheduler(seed: u64) -> Scheduler {
    Scheduler::new(SchedulerOptions {
        seed,
        ..SchedulerOptions::default()
    })
}

fn grid(args: &Args, rows: &mut Vec<Row>) -> Result<(), String> {
    let sizes = [1000usize, 5000, 10_000];
    let counts = [300u32, 600, 900, 1200];
    const REPS: u32 = 3;
    let total: u64 = (sizes.len() * 2) as u64
        * counts
            .iter()
            .map(|c| u64::from(*c) * u64::from(REPS))
            .sum::<u64>();
    let pb = bar(total, "nomad-grid");
    let sched = scheduler(args.seed);
    let mut rng = SmallRng::seed_from_u64(args.seed);
    for &nodes in &sizes {
        for spread in [false, true] {
            let mut state = scenario::cluster(nodes, args.seed ^ nodes as u64);
            let mut seq = 0u64;
            let first = rows.len();
            for &count in &counts {
                let mut stats = RunStats::default();
                for _ in 0..REPS {
                    let shape = JobShape {
                        count,
                        spread,
                        batch: false,
                        amd64_only: true,
                    };
                    let job = scenario::job(&format!("grid-{count}-{seq}"), shape, &mut rng);
                    seq += 1;
                    let s = scenario::run_job(&mut state, &sched, job, seq)
                        .map_err(|e| e.to_string())?;
                    pb.inc(s.placements + s.failed);
                    stats.merge(&s);
                }
                rows.push(Row {
                    scenario: "nomad-grid",
                    case: format!("{count} allocs{}", if spread { ", spread" } else { "" }),
                    nodes,
                    stats,
                    packing: None,
                    heap: None,
                    runs: Vec::new(),
                });
            }
            if args.fill && !spread {
                pb.set_message(format!("filling {nodes} nodes"));
                let (p, _) = scenario::fill_until_failure(&mut state, &sched, 1000, args.seed)
                    .map_err(|e| e.to_string())?;
                for r in &mut rows[first..] {
                    r.packing = Some(p);
                }
                pb.set_message("nomad-grid");
            }
        }
    }
    pb.finish_and_clear();
    Ok(())
}

fn c1m(args: &Args, rows: &mut Vec<Row>) -> Result<(), String> {
    let nodes = 10_000;
    let jobs = 1000u64;
    let count = 1000u32;
    let t = Instant::now();
    let mut state = scenario::cluster(nodes, args.seed);
    let build = t.elapsed();
    let pb = bar(jobs * u64::from(count), "c1m");
    let sched = scheduler(args.seed);
    let mut rng = SmallRng::seed_from_u64(args.seed ^ 0xc1);
    let mut stats = RunStats::default();
    let before = Heap::now();
    for i in 0..jobs {
        let shape = JobShape {
            count,
            spread: rng.gen_range(0..4) == 0,
            batch: rng.gen_range(0..5) == 0,
            amd64_only: true,
        };
        let job = scenario::job(&format!("c1m-{i}"), shape, &mut rng);
        let s = scenario::run_job(&mut state, &sched, job, i).map_err(|e| e.to_string())?;
        pb.inc(s.placements + s.failed);
        stats.merge(&s);
    }
    let after = Heap::now();
    let placed = stats.placements.max(1) as f64;
    let heap = Some((
        after.calls.saturating_sub(before.calls) as f64 / placed,
        after.live.saturating_sub(before.live) as f64 / placed,
    ));
    pb.finish_and_clear();
    let mut packing = None;
    if args.fill {
        let pb = ProgressBar::new_spinner();
        pb.set_message("c1m: filling the cluster until a placement fails");
        pb.enable_steady_tick(std::time::Duration::from_millis(200));
        let (p, _) = scenario::fill_until_failure(&mut state, &sched, 1000, args.seed)
            .map_err(|e| e.to_string())?;
        pb.finish_and_clear();
        packing = Some(p);
    }
    eprintln!(
        "c1m: cluster of {nodes} nodes built in {:.2}s",
        build.as_secs_f64()
    );
    rows.push(Row {
        scenario: "c1m",
        case: "1000 jobs x 1000 allocs".into(),
        nodes,
        stats,
        packing,
        heap,
        runs: Vec::new(),
    });
    Ok(())
}

fn growth(args: &Args, rows: &mut Vec<Row>) -> Result<(), String> {
    let sizes = args
        .sizes
        .clone()
        .unwrap_or_else(|| vec![1000, 10_000, 100_000]);
    const JOBS: u64 = 20;
    let count = 1000u32;
    let reps = args.repeat as u64;
    let pb = bar(
        sizes.len() as u64 * reps * JOBS * u64::from(count),
        "growth",
    );
    let sched = scheduler(args.seed);
    // One run at 1K nodes is some 30 ms: each size is run several times, on a fresh copy
    // of the same cluster, and its median run reported. The sizes take turns within each
    // repetition, so that a stretch of the machine running slower falls on every size
    // alike rather than on whichever size was running then, which would move the ratio.
    let mut runs: Vec<Vec<RunStats>> = vec![Vec::new(); sizes.len()];
    let mut packing = vec![None; sizes.len()];
    for rep in 0..reps {
        for (k, &nodes) in sizes.iter().enumerate() {
            pb.set_message(format!("growth: building {nodes} nodes"));
            let mut state = scenario::cluster(nodes, args.seed ^ 0x6700);
            pb.set_message(format!("growth: {nodes} nodes, run {}/{reps}", rep + 1));
            let mut stats = RunStats::default();
            let mut rng = SmallRng::seed_from_u64(args.seed ^ 0x9);
            for i in 0..JOBS {
                let shape = JobShape {
                    count,
                    spread: false,
                    batch: false,
                    amd64_only: true,
                };
                let job = scenario::job(&format!("growth-{i}"), shape, &mut rng);
                let s = scenario::run_job(&mut state, &sched, job, i).map_err(|e| e.to_string())?;
                pb.inc(s.placements + s.failed);
                stats.merge(&s);
            }
            if rep + 1 == reps && args.fill && nodes <= 1000 {
                packing[k] = Some(
                    scenario::fill_until_failure(&mut state, &sched, 1000, args.seed)
                        .map_err(|e| e.to_string())?
                        .0,
                );
            }
            runs[k].push(stats);
        }
    }
    for ((&nodes, mut runs), packing) in sizes.iter().zip(runs).zip(packing) {
        let rates: Vec<f64> = runs.iter().map(RunStats::placements_per_sec).collect();
        runs.sort_by(|a, b| a.placements_per_sec().total_cmp(&b.placements_per_sec()));
        let Some(median) = runs.get(runs.len() / 2).cloned() else {
            continue;
        };
        rows.push(Row {
            scenario: "growth",
            case: format!("{JOBS} jobs x {count} allocs"),
            nodes,
            stats: median,
            packing,
            heap: None,
            runs: if rates.len() > 1 { rates } else { Vec::new() },
        });
    }
    pb.finish_and_clear();
    Ok(())
}

fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<11} {:<24} {:>7} {:>9} {:>11} {:>11} {:>11} {:>6} {:>8} {:>8} {:>8}",
        "scenario",
        "case",
        "nodes",
        "placed",
        "placed/s",
        "wall/s",
        "e2e/s",
        "nodes",
        "p50 ms",
        "p99 ms",
        "packing"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<11} {:<24} {:>7} {:>9} {:>11.0} {:>11.0} {:>11.0} {:>6.1} {:>8.3} {:>8.3} {:>8}",
            r.scenario,
            r.case,
            r.nodes,
            r.stats.placements,
            r.stats.placements_per_sec(),
            r.stats.placements_per_sec_wall(),
            r.stats.end_to_end_per_sec(),
            r.stats.nodes_evaluated as f64 / (r.stats.placements + r.stats.failed).max(1) as f64,
            r.stats.eval_quantile_ms(0.5),
            r.stats.eval_quantile_ms(0.99),
            r.packing
                .map_or("-".to_string(), |p| format!("{:.1}%", p.0 * 100.0)),
        );
    }
    s
}

/// A log-x scatter plot of placements/s against cluster size, one colour per scenario.
fn plot(rows: &[Row]) -> String {
    let (w, h, m) = (720.0, 420.0, 60.0);
    let ymax = rows
        .iter()
        .map(|r| r.stats.placements_per_sec())
        .fold(1.0f64, f64::max)
        * 1.1;
    let (xmin, xmax) = (2.5f64, 5.5f64);
    let x = |n: usize| m + ((n.max(1) as f64).log10() - xmin) / (xmax - xmin) * (w - 2.0 * m);
    let y = |v: f64| h - m - v / ymax * (h - 2.0 * m);
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    let _ = writeln!(s, "<text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">nomad-sched: placements/s vs cluster size</text>", w / 2.0);
    let _ = writeln!(
        s,
        "<line x1=\"{m}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>",
        h - m,
        w - m,
        h - m
    );
    let _ = writeln!(
        s,
        "<line x1=\"{m}\" y1=\"{m}\" x2=\"{m}\" y2=\"{}\" stroke=\"black\"/>",
        h - m
    );
    for n in [1000usize, 10_000, 100_000] {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{n}</text>",
            x(n),
            h - m + 18.0
        );
    }
    for i in 0..=4 {
        let v = ymax * f64::from(i) / 4.0;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}k</text>",
            m - 6.0,
            y(v) + 4.0,
            v / 1000.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">nodes (log scale)</text>",
        w / 2.0,
        h - 16.0
    );
    let colours = [
        ("nomad-grid", "#1f77b4"),
        ("c1m", "#d62728"),
        ("growth", "#2ca02c"),
    ];
    for (i, (name, colour)) in colours.iter().enumerate() {
        let pts: Vec<&Row> = rows.iter().filter(|r| r.scenario == *name).collect();
        if pts.is_empty() {
            continue;
        }
        for r in &pts {
            let _ = writeln!(s, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{colour}\"><title>{} {}: {:.0}/s</title></circle>", x(r.nodes), y(r.stats.placements_per_sec()), r.scenario, r.case, r.stats.placements_per_sec());
        }
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" fill=\"{colour}\">{name}</text>",
            w - m - 80.0,
            m + 16.0 * i as f64
        );
    }
    s.push_str("</svg>\n");
    s
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut rows = Vec::new();
    let names: Vec<&str> = match args.scenario.as_str() {
        "all" => vec!["nomad-grid", "c1m", "growth"],
        s => vec![s],
    };
    for name in names {
        let r = match name {
            "nomad-grid" => grid(&args, &mut rows),
            "c1m" => c1m(&args, &mut rows),
            "growth" => growth(&args, &mut rows),
            other => Err(format!(
                "unknown scenario {other:?} (nomad-grid, c1m, growth, all)"
            )),
        };
        if let Err(e) = r {
            eprintln!("{name}: {e}");
            std::process::exit(1);
        }
    }
    if args.json {
        for r in &rows {
            println!("{}", r.json());
        }
        for name in ["nomad-grid", "c1m", "growth"] {
            let mine: Vec<&Row> = rows.iter().filter(|r| r.scenario == name).collect();
            if mine.is_empty() {
                continue;
            }
            let mut all = RunStats::default();
            for r in &mine {
                all.merge(&r.stats);
            }
            let nodes = mine.iter().map(|r| r.nodes).max().unwrap_or(0);
            let packing = mine
                .iter()
                .filter_map(|r| r.packing)
                .map(|p| p.0)
                .fold(None, |a: Option<f64>, p| Some(a.map_or(p, |a| a.min(p))));
            let ratio = if name == "growth" && mine.len() >= 2 {
                let first = mine[0].stats.placements_per_sec();
                let last = mine[mine.len() - 1].stats.placements_per_sec();
                if first > 0.0 {
                    format!(",\"growth_ratio\":{:.3}", last / first)
                } else {
                    String::new()
                }
            } else {
                String::new()
            };
            println!(
                "{{\"scenario\":\"{name}\",\"summary\":true,\"nodes\":{nodes},\"placements\":{},\"placements_per_sec\":{:.0},\"end_to_end_placements_per_sec\":{:.0},\"eval_p50_ms\":{:.3},\"eval_p99_ms\":{:.3},\"packing_efficiency\":{}{ratio}}}",
                all.placements,
                all.placements_per_sec(),
                all.end_to_end_per_sec(),
                all.eval_quantile_ms(0.5),
                all.eval_quantile_ms(0.99),
                packing.map_or("null".to_string(), |p| format!("{p:.4}")),
            );
        }
    } else {
        print!("{}", table(&rows));
    }
    let path = args
        .plot
        .clone()
        .unwrap_or_else(|| format!("target/sched-bench-{}.svg", args.scenario));
    match std::fs::write(&path, plot(&rows)) {
        Ok(()) => eprintln!("plot written to {path}"),
        Err(e) => eprintln!("could not write the plot to {path}: {e}"),
    }
}
