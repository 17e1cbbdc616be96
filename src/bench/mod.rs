//! `otpbox bench`: the throughput benchmark of the hot paths, reads and writes. It starts this
//! same binary as a real server in a fresh temporary data directory (rate limits and anomaly
//! flags off, cancelling allowed at once, no live-order limit in reach), then runs each
//! workload in turn from keep-alive connections on this machine and prints its rate and
//! latency percentiles (p50, p99, p99.9, max) and the server's memory.
//!
//! - [`server`]: starting and stopping the server, the command-line calls against its data;
//! - [`client`]: the HTTP client and the load driver;
//! - [`workloads`]: what is measured (reads, the signed-in dashboard, order→cancel,
//!   rent→finish, order→SMS through the signed `/ingest` endpoint→finish) and its set-up.
//!
//! Any failed or timed-out request makes the bench say so loudly and exit non-zero: a figure
//! measured on errors is no figure.

mod client;
mod server;
mod workloads;

use std::process::ExitCode;
use std::time::Duration;

use client::Outcome;
use server::{DataDir, Settings};
use workloads::Workload;

use crate::domain::Error;

/// What to measure, from the command line.
pub struct Options {
    pub seconds: u64,
    pub connections: usize,
    pub workers: usize,
}

/// One workload's result.
struct Row {
    name: &'static str,
    outcome: Outcome,
}

/// The results on one database.
struct Measured {
    startup: Duration,
    rows: Vec<Row>,
    problems: Vec<String>,
}

pub fn run(opts: &Options) -> Result<ExitCode, Error> {
    println!(
        "otpbox bench: {} workers, {} connections, {} s per workload (load generator on this machine)",
        opts.workers, opts.connections, opts.seconds
    );
    let empty = measure(opts)?;
    let mut problems = empty.problems.clone();
    let failed: Vec<&Row> = empty.rows.iter().filter(|r| r.outcome.errors > 0).collect();
    for r in &failed {
        problems.push(format!(
            "{}: {} failed step(s), {} timed out; e.g. {}",
            r.name,
            r.outcome.errors,
            r.outcome.timeouts,
            r.outcome.samples.join(" | ")
        ));
    }
    if problems.is_empty() {
        println!("no request failed or timed out");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!();
    eprintln!("!!! BENCH FAILED: the figures above are not valid !!!");
    for p in &problems {
        eprintln!("!!! {p}");
    }
    Ok(ExitCode::from(1))
}

/// Runs every workload against a fresh database.
fn measure(opts: &Options) -> Result<Measured, Error> {
    let data = DataDir::new("empty");
    let mut out = Measured {
        startup: Duration::ZERO,
        rows: Vec::new(),
        problems: Vec::new(),
    };
    let settings = |demo, synchronous| Settings {
        demo,
        synchronous,
        workers: opts.workers,
    };

    let server = server::start(&data.path, &settings(true, "normal"))?;
    out.startup = server.startup;
    println!(
        "\nempty database: server pid {} at {}, started in {:.0} ms",
        server.pid(),
        server.addr,
        server.startup.as_secs_f64() * 1000.0
    );
    let key = workloads::demo_key(&data.path)?;
    let id = workloads::order_one(server.addr, &key)?;
    let cookie = workloads::login(server.addr)?;
    header();
    let api = |q: &str| format!("/stubs/handler_api.php?api_key={key}&{q}");
    let reads = vec![
        workloads::get("GET /healthz", "/healthz".into(), None),
        workloads::get(
            "handler_api getStatus",
            api(&format!("action=getStatus&id={id}")),
            None,
        ),
        workloads::get("handler_api getBalance", api("action=getBalance"), None),
        workloads::get(
            "GET /api/v1/activations/{id}",
            format!("/api/v1/activations/{id}"),
            Some(&key),
        ),
        workloads::dashboard(cookie),
        workloads::order_cancel(&key, "order→cancel (handler_api)"),
        workloads::rent_finish(&key),
    ];
    for w in reads {
        out.rows.push(measure_one(server.addr, opts, w));
    }
    if let Some((rss, peak)) = memory(server.pid()) {
        println!("server memory: RSS {rss} KiB, peak {peak} KiB");
    }
    server.stop();

    // SMS through the gateway path: the orders must go to the bench's SIMs, so the
    // simulator is off and the server runs without demo mode.
    workloads::simulator_off(&data.path)?;
    let gateways = workloads::add_gateways(&data.path)?;
    let server = server::start(&data.path, &settings(false, "normal"))?;
    out.rows.push(measure_one(
        server.addr,
        opts,
        workloads::ingest(&key, gateways),
    ));
    server.stop();

    if let Err(e) = server::cli(&data.path, &["check"], None) {
        out.problems
            .push(format!("otpbox check after the run: {e}"));
    }
    Ok(out)
}

fn header() {
    println!(
        "{:<36} {:>14} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "workload", "per s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "errors"
    );
}

fn measure_one(addr: std::net::SocketAddr, opts: &Options, w: Workload) -> Row {
    let outcome = client::load(addr, opts.connections, opts.seconds, &w.step);
    println!(
        "{:<36} {:>14} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7}",
        w.name,
        format!("{:.0} {}", outcome.rate(), w.unit),
        outcome.percentile(50.0),
        outcome.percentile(99.0),
        outcome.percentile(99.9),
        outcome.percentile(100.0),
        outcome.errors
    );
    if outcome.errors > 0 {
        println!("    FAILED: {}", outcome.samples.join(" | "));
    }
    Row {
        name: w.name,
        outcome,
    }
}

/// The server's resident and peak memory in KiB, from /proc.
fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
