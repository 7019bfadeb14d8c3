//! Write throughput of the replicated log as the server sees it: sequential node
//! registrations, concurrent no-op commands, and concurrent job registrations placed
//! through the broker, workers and plan applier. Prints one line per phase.
//!
//! `cargo run --release -p nomad-server --example write-throughput [nodes] [writers] [jobs]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use nomad_server::{sim, Command, Server, ServerConfig};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let nodes = args.next().transpose()?.unwrap_or(200);
    let writers = args.next().transpose()?.unwrap_or(32);
    let jobs = args.next().transpose()?.unwrap_or(200);

    let dir = tempfile::tempdir()?;
    let mut config = ServerConfig::dev(dir.path());
    config.http_addr = None;
    config.num_schedulers = 2;
    let server = Server::start(config).await?;

    let t = Instant::now();
    server.register_sim_nodes(nodes).await?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "sequential node registrations: {nodes} in {secs:.3}s = {:.0} writes/s",
        nodes as f64 / secs
    );

    let per_writer = 100;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let s = server.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_writer {
                s.apply(Command::Noop).await?;
            }
            Ok::<(), nomad_server::ServerError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let secs = t.elapsed().as_secs_f64();
    let total = writers * per_writer;
    println!(
        "concurrent no-op writes ({writers} writers): {total} in {secs:.3}s = {:.0} writes/s",
        total as f64 / secs
    );

    let start_index = server.state().index();
    let t = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..writers.min(jobs.max(1)) {
        let s = server.clone();
        let next = Arc::clone(&next);
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= jobs {
                    return Ok::<(), nomad_server::ServerError>(());
                }
                s.register_job(sim::sim_job(&format!("job-{i}"), 2)).await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    for i in 0..jobs {
        let placed = server
            .wait_for_allocs("default", &format!("job-{i}"), 2, Duration::from_secs(120))
            .await;
        if placed < 2 {
            return Err(format!("job-{i}: {placed} of 2 allocations placed").into());
        }
    }
    server.wait_idle(Duration::from_secs(120)).await;
    let secs = t.elapsed().as_secs_f64();
    let writes = server.state().index() - start_index;
    println!(
        "jobs registered and placed: {jobs} in {secs:.3}s = {:.0} jobs/s ({writes} log writes, {:.0} writes/s)",
        jobs as f64 / secs,
        writes as f64 / secs
    );
    server.shutdown();
    Ok(())
}
