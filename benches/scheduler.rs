//! Scheduler throughput at a small size, on the same synthetic clusters and jobs as the
//! `sched-bench` harness (`cargo run --release -p nomad-sched --example sched-bench`).
//!
//! `cargo bench -p nomad-benches --bench scheduler` measures; `-- --test` runs each case
//! once as a check.

use criterion::{BatchSize, Criterion, Throughput};
use nomad_sched::scenario::{self, JobShape};
use nomad_sched::{Scheduler, SchedulerOptions};
use rand::rngs::SmallRng;
use rand::SeedableRng;

fn place(c: &mut Criterion) {
    let mut group = c.benchmark_group("scheduler");
    group.sample_size(10);
    for (name, nodes, count, spread, batch) in [
        ("service-300-on-1000", 1000usize, 300u32, false, false),
        ("service-300-spread-on-1000", 1000, 300, true, false),
        ("batch-300-on-1000", 1000, 300, false, true),
    ] {
        group.throughput(Throughput::Elements(u64::from(count)));
        group.bench_function(name, |b| {
            let sched = Scheduler::new(SchedulerOptions::default());
            let mut rng = SmallRng::seed_from_u64(7);
            b.iter_batched(
                || {
                    let state = scenario::cluster(nodes, 7);
                    let shape = JobShape {
                        count,
                        spread,
                        batch,
                        amd64_only: true,
                    };
                    (state, scenario::job("bench", shape, &mut rng))
                },
                |(mut state, job)| {
                    let stats = scenario::run_job(&mut state, &sched, job, 1);
                    assert!(stats.is_ok_and(|s| s.placements == u64::from(count)));
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    place(&mut c);
    c.final_summary();
}
