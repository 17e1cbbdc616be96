//! `otpbox bench`: the throughput benchmark of the hot paths, reads and writes. It starts this
//! same binary as a real server in a fresh temporary data directory (rate limits and anomaly
//! flags off, cancelling allowed at once, no live-order limit in reach), then runs each
//! workload in turn from keep-alive connections on this machine and prints its rate and
//! latency percentiles (p50, p99, p99.9, max) and the server's memory.
//!
//! - [`server`]: starting and stopping the server, the command-line calls against its data;
//! - [`client`]: the HTTP client and the load driver;
//! - [`workloads`]: what is measured (reads, the signed-in dashboard, order→cancel,
//!   rent→finish, order→SMS through the signed `/ingest` endpoint→finish) and its set-up;
//!   order→cancel runs under both `synchronous` settings (normal, full).
//!
//! With `--history N` every workload runs twice: on an empty database and on one filled
//! with N past activations ([`history`]); the report compares the two.
//!
//! Any failed or timed-out request makes the bench say so loudly and exit non-zero: a figure
//! measured on errors is no figure.

mod client;
mod history;
mod server;
mod workloads;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use client::Outcome;
use server::{DataDir, Settings};
use workloads::Workload;

use crate::domain::Error;

/// What to measure, from the command line.
#[derive(Clone, Copy)]
pub struct Options {
    pub seconds: u64,
    pub connections: usize,
    pub workers: usize,
    /// Past activations to fill the second database with; 0 = only the empty database.
    pub history: u64,
}

/// One workload's result.
struct Row {
    name: &'static str,
    unit: &'static str,
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
    let mut runs = vec![measure(opts, 0)?];
    if opts.history > 0 {
        runs.push(measure(opts, opts.history)?);
        compare(&runs[0], &runs[1], opts.history);
    }
    let mut problems = Vec::new();
    for (m, label) in runs.iter().zip(["empty", "filled"]) {
        problems.extend(m.problems.iter().map(|p| format!("{label}: {p}")));
        for r in m.rows.iter().filter(|r| r.outcome.errors > 0) {
            problems.push(format!(
                "{label}: {}: {} failed step(s), {} timed out; e.g. {}",
                r.name,
                r.outcome.errors,
                r.outcome.timeouts,
                r.outcome.samples.join(" | ")
            ));
        }
    }
    if problems.is_empty() {
        println!("\nno request failed or timed out; `otpbox check` passed");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!();
    eprintln!("!!! BENCH FAILED: the figures above are not valid !!!");
    for p in &problems {
        eprintln!("!!! {p}");
    }
    Ok(ExitCode::from(1))
}

/// Empty vs filled, per workload: the rate and the p99.
fn compare(empty: &Measured, filled: &Measured, history: u64) {
    println!("\nempty vs {history} past activations (filled / empty):");
    println!(
        "{:<36} {:>16} {:>16} {:>7} {:>10} {:>10}",
        "workload", "empty per s", "filled per s", "ratio", "p99 empty", "p99 filled"
    );
    println!(
        "{:<36} {:>13.0} ms {:>13.0} ms {:>7.2}",
        "server start-up",
        empty.startup.as_secs_f64() * 1000.0,
        filled.startup.as_secs_f64() * 1000.0,
        filled.startup.as_secs_f64() / empty.startup.as_secs_f64().max(1e-9)
    );
    for (e, f) in empty.rows.iter().zip(&filled.rows) {
        println!(
            "{:<36} {:>16} {:>16} {:>7.2} {:>7.2} ms {:>7.2} ms",
            e.name,
            format!("{:.0} {}", e.outcome.rate(), e.unit),
            format!("{:.0} {}", f.outcome.rate(), f.unit),
            f.outcome.rate() / e.outcome.rate().max(1e-9),
            e.outcome.percentile(99.0),
            f.outcome.percentile(99.0)
        );
    }
}

/// Runs every workload against a fresh database, first filled with `history` past
/// activations if not 0.
fn measure(opts: &Options, history: u64) -> Result<Measured, Error> {
    let label = if history == 0 { "empty" } else { "filled" };
    let data = DataDir::new(label);
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

    // A first start creates the database and the demo account; the measured start-up is
    // the second one, on an existing database (with the history, if any).
    server::start(&data.path, &settings(true, "normal"))?.stop();
    if history > 0 {
        let t = Instant::now();
        let rows = history::fill(&data.path, history)?;
        println!(
            "\nfilled the database with {history} past activations ({rows} rows) in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let server = server::start(&data.path, &settings(true, "normal"))?;
    out.startup = server.startup;
    println!(
        "\n{label} database: server pid {} at {}, started in {:.0} ms",
        server.pid(),
        server.addr,
        server.startup.as_secs_f64() * 1000.0
    );
    header();
    // At once, before anything else warms the server: 32 new connections together, where
    // tiny_http's own pool used to leave some waiting (see src/http/server/handoff.rs).
    let fresh = workloads::get(
        "GET /healthz, fresh server, 32 conns",
        "/healthz".into(),
        None,
    );
    let fresh_opts = Options {
        connections: 32,
        ..*opts
    };
    out.rows.push(measure_one(server.addr, &fresh_opts, fresh));
    let key = workloads::demo_key(&data.path)?;
    let id = workloads::order_one(server.addr, &key)?;
    let cookie = workloads::login(server.addr)?;
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
        workloads::order_cancel(&key, "order→cancel (synchronous=normal)"),
        workloads::rent_finish(&key),
    ];
    for w in reads {
        out.rows.push(measure_one(server.addr, opts, w));
    }
    if let Some((rss, peak)) = memory(server.pid()) {
        println!("server memory: RSS {rss} KiB, peak {peak} KiB");
    }
    server.stop();

    // The same writes with every commit synced (`synchronous = full`).
    let server = server::start(&data.path, &settings(true, "full"))?;
    out.rows.push(measure_one(
        server.addr,
        opts,
        workloads::order_cancel(&key, "order→cancel (synchronous=full)"),
    ));
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
        unit: w.unit,
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
