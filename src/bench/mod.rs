//! `otpbox bench`: the throughput benchmark of the hot paths, reads and writes. It starts this
//! same binary as a real server in a fresh temporary data directory (rate limits and anomaly
//! flags off, cancelling allowed at once, no live-order limit in reach), then runs each
//! workload in turn from keep-alive connections on this machine and prints its rate and
//! latency percentiles (p50, p99, p99.9, max) and the server's memory.
//!
//! - [`server`]: starting and stopping the server, the command-line calls against its data;
//! - [`client`]: the HTTP client and the load driver;
//! - [`workloads`]: what is measured (reads, the signed-in dashboard, order→cancel,
//!   rent→finish, order→SMS through the signed `/ingest` endpoint→finish, and SMS alone
//!   through `/ingest` to orders placed beforehand) and its set-up;
//!   order→cancel runs under both `synchronous` settings (normal, full).
//!
//! With `--history N` every workload runs on two databases, an empty one and one filled with
//! N past activations ([`history`]), their servers side by side and the two taking turns
//! workload by workload (the machine's speed drifts over minutes); the report compares them.
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
#[derive(Clone)]
pub struct Options {
    pub seconds: u64,
    pub connections: usize,
    pub workers: usize,
    /// Past activations to fill the second database with; 0 = only the empty database.
    pub history: u64,
    /// Only the workloads whose name contains this (`memory`: the memory check).
    pub only: Option<String>,
}

impl Options {
    fn wants(&self, name: &str) -> bool {
        self.only.as_deref().is_none_or(|o| name.contains(o))
    }
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
    memory: Option<Memory>,
}

/// The server's resident memory (KiB) around a burst of sign-ins and under many connections.
struct Memory {
    before: u64,
    after_logins: u64,
    /// Of `after_logins`: the heap and stacks, and the binary's and libraries' own pages.
    anon: u64,
    file: u64,
    busy_peak: u64,
}

/// Sign-ins in the burst, how long the server then idles, how many connections are busy.
const LOGINS: usize = 50;
const IDLE: Duration = Duration::from_secs(2);
const BUSY: usize = 64;

/// Signs in [`LOGINS`] times from 8 connections (each an argon2 verification), lets the
/// server idle, then loads the signed-in dashboard from [`BUSY`] connections while sampling
/// the server's RSS.
fn memory_check(server: &server::Server, cookie: &str, seconds: u64) -> Result<Memory, Error> {
    let pid = server.pid();
    let rss = || memory(pid).map(|m| m.0).unwrap_or(0);
    let before = rss();
    let addr = server.addr;
    let failed = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..8 {
            let failed = &failed;
            s.spawn(move || {
                for _ in (t..LOGINS).step_by(8) {
                    if workloads::login(addr).is_err() {
                        failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let failed = failed.into_inner();
    if failed > 0 {
        return Err(Error::Internal(format!(
            "{failed} of {LOGINS} sign-ins failed"
        )));
    }
    std::thread::sleep(IDLE);
    let after_logins = rss();
    let (anon, file) = memory_parts(pid).unwrap_or_default();
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut busy_peak = 0;
    let outcome = std::thread::scope(|s| {
        let load = s.spawn(|| {
            let w = workloads::dashboard(cookie.to_string());
            let o = client::load(addr, BUSY, seconds, &w.step);
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            o
        });
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            busy_peak = busy_peak.max(rss());
            std::thread::sleep(Duration::from_millis(50));
        }
        load.join()
    });
    match outcome {
        Ok(o) if o.errors == 0 => Ok(Memory {
            before,
            after_logins,
            anon,
            file,
            busy_peak,
        }),
        Ok(o) => Err(Error::Internal(format!(
            "{} requests failed under {BUSY} connections: {}",
            o.errors,
            o.samples.join(" | ")
        ))),
        Err(_) => Err(Error::Internal("the load thread panicked".into())),
    }
}

pub fn run(opts: &Options) -> Result<ExitCode, Error> {
    println!(
        "otpbox bench: {} workers, {} connections, {} s per workload (load generator on this machine)",
        opts.workers, opts.connections, opts.seconds
    );
    let mut sides = vec![Side::new("empty", 0, opts)?];
    if opts.history > 0 {
        sides.push(Side::new("filled", opts.history, opts)?);
    }
    measure(opts, &mut sides)?;
    if let [empty, filled] = &sides[..] {
        compare(&empty.out, &filled.out, opts.history);
    }
    let mut problems = Vec::new();
    for side in &sides {
        let (m, label) = (&side.out, side.label);
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
    if let (Some(e), Some(f)) = (&empty.memory, &filled.memory) {
        for (name, e, f) in [
            (
                "RSS after 50 sign-ins, idle (MiB)",
                e.after_logins,
                f.after_logins,
            ),
            ("  of it anonymous (MiB)", e.anon, f.anon),
            ("  of it the binary, libraries (MiB)", e.file, f.file),
            ("RSS peak, 64 connections (MiB)", e.busy_peak, f.busy_peak),
        ] {
            println!(
                "{:<36} {:>16.1} {:>16.1} {:>7.2}",
                name,
                e as f64 / 1024.0,
                f as f64 / 1024.0,
                f as f64 / (e as f64).max(1.0)
            );
        }
    }
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

/// One database of the run: empty, or filled with past activations.
struct Side {
    label: &'static str,
    data: DataDir,
    out: Measured,
}

impl Side {
    /// A fresh database with the demo account (a first start creates them; the measured
    /// start-up is a later one, on an existing database), filled with `history` past
    /// activations if not 0.
    fn new(label: &'static str, history: u64, opts: &Options) -> Result<Side, Error> {
        let data = DataDir::new(label);
        server::start(&data.path, &settings(opts, true, "normal"))?.stop();
        if history > 0 {
            let t = Instant::now();
            let rows = history::fill(&data.path, history)?;
            // The fill leaves a gigabyte and more for the kernel to write back: done now,
            // it does not slow the workloads down (it took the filled `/healthz` down by
            // 15 %).
            // SAFETY: sync(2) takes no arguments and cannot fail.
            unsafe { libc::sync() };
            println!(
                "filled the {label} database with {history} past activations ({rows} rows) in {:.1} s",
                t.elapsed().as_secs_f64()
            );
        }
        Ok(Side {
            label,
            data,
            out: Measured {
                startup: Duration::ZERO,
                rows: Vec::new(),
                problems: Vec::new(),
                memory: None,
            },
        })
    }

    fn measure(&mut self, server: &server::Server, opts: &Options, w: Workload) {
        let row = measure_one(server, opts, w, self.label);
        self.out.rows.push(row);
    }
}

fn settings<'a>(opts: &Options, demo: bool, synchronous: &'a str) -> Settings<'a> {
    Settings {
        demo,
        synchronous,
        workers: opts.workers,
    }
}

/// Runs every workload on each database, the databases taking turns workload by workload
/// (both servers run meanwhile, the one not measured idle): the machine's speed drifts by
/// tens of percent over minutes, much less between two runs of a few seconds, so empty vs
/// filled compares history, not the moment.
fn measure(opts: &Options, sides: &mut [Side]) -> Result<(), Error> {
    let mut servers = Vec::new();
    for side in sides.iter_mut() {
        let server = server::start(&side.data.path, &settings(opts, true, "normal"))?;
        side.out.startup = server.startup;
        println!(
            "{} database: server pid {} at {}, started in {:.0} ms",
            side.label,
            server.pid(),
            server.addr,
            server.startup.as_secs_f64() * 1000.0
        );
        servers.push(server);
    }
    println!();
    header();
    // At once, before anything else warms the servers: 32 new connections together, where
    // tiny_http's own pool used to leave some waiting (see src/http/server/handoff.rs).
    let fresh_opts = Options {
        connections: 32,
        only: None,
        ..opts.clone()
    };
    for (side, server) in sides.iter_mut().zip(&servers) {
        let fresh = workloads::get(
            "GET /healthz, fresh server, 32 conns",
            "/healthz".into(),
            None,
        );
        if opts.wants(fresh.name) {
            side.measure(server, &fresh_opts, fresh);
        }
    }
    let mut keys = Vec::new();
    let mut cookies = Vec::new();
    let mut lists = Vec::new();
    for (side, server) in sides.iter().zip(&servers) {
        let key = workloads::demo_key(&side.data.path)?;
        let id = workloads::order_one(server.addr, &key)?;
        let cookie = workloads::login(server.addr)?;
        let api = |q: &str| format!("/stubs/handler_api.php?api_key={key}&{q}");
        let list = vec![
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
            workloads::dashboard(cookie.clone()),
            workloads::order_cancel(&key, "order→cancel (synchronous=normal)"),
            workloads::rent_finish(&key),
        ];
        lists.push(list.into_iter().filter(|w| opts.wants(w.name)));
        keys.push(key);
        cookies.push(cookie);
    }
    take_turns(sides, &servers, opts, lists);
    for ((side, server), cookie) in sides.iter_mut().zip(&servers).zip(&cookies) {
        if let Some((rss, peak)) = memory(server.pid()) {
            println!(
                "{} server memory: RSS {rss} KiB, peak {peak} KiB",
                side.label
            );
        }
        match opts
            .wants("memory")
            .then(|| memory_check(server, cookie, opts.seconds))
        {
            None => {}
            Some(Ok(m)) => {
                println!(
                    "{} server memory: RSS {} KiB idle; {} KiB after {LOGINS} sign-ins and {} s \
                     idle (target < 20 MB; {} KiB of it anonymous, {} KiB the binary's and \
                     libraries' pages); at most {} KiB under {BUSY} busy connections (target \
                     < 60 MB)",
                    side.label,
                    m.before,
                    m.after_logins,
                    IDLE.as_secs(),
                    m.anon,
                    m.file,
                    m.busy_peak
                );
                side.out.memory = Some(m);
            }
            Some(Err(e)) => side.out.problems.push(format!("memory check: {e}")),
        }
    }
    for server in servers.drain(..) {
        server.stop();
    }

    // The same writes with every commit synced (`synchronous = full`), one server at a time.
    if opts.wants("order→cancel (synchronous=full)") {
        header();
        for (side, key) in sides.iter_mut().zip(&keys) {
            let server = server::start(&side.data.path, &settings(opts, true, "full"))?;
            side.measure(
                &server,
                opts,
                workloads::order_cancel(key, "order→cancel (synchronous=full)"),
            );
            server.stop();
        }
    }

    // SMS through the gateway path: the orders must go to the bench's SIMs, so the
    // simulator is off and the servers run without demo mode.
    if opts.wants(workloads::INGEST) || opts.wants(workloads::INGEST_ONLY) {
        header();
    }
    let mut lists = Vec::new();
    let mut gateways = Vec::new();
    for (side, key) in sides.iter_mut().zip(&keys) {
        workloads::simulator_off(&side.data.path)?;
        let g = workloads::add_gateways(&side.data.path)?;
        servers.push(server::start(
            &side.data.path,
            &settings(opts, false, "normal"),
        )?);
        let ingest = workloads::ingest(key, g.clone());
        lists.push(opts.wants(ingest.name).then_some(ingest).into_iter());
        gateways.push(g);
    }
    take_turns(sides, &servers, opts, lists);
    if opts.wants(workloads::INGEST_ONLY) {
        // Its orders, one on every SIM, are placed once the SIMs are free of the one before
        // and past its reuse cooldown (1 s), on both sides alike: the filled side's ingest
        // ended just before.
        std::thread::sleep(server::REUSE_COOLDOWN + Duration::from_millis(500));
        let mut lists = Vec::new();
        for ((side, key), (server, g)) in sides
            .iter_mut()
            .zip(&keys)
            .zip(servers.iter().zip(&gateways))
        {
            match workloads::ingest_only(server.addr, key, g) {
                Ok(w) => lists.push(Some(w).into_iter()),
                Err(e) => {
                    side.out.problems.push(e.to_string());
                    lists.push(None.into_iter());
                }
            }
        }
        take_turns(sides, &servers, opts, lists);
    }
    for server in servers {
        server.stop();
    }

    for side in sides.iter_mut() {
        if let Err(e) = server::cli(&side.data.path, &["check"], None) {
            side.out
                .problems
                .push(format!("otpbox check after the run: {e}"));
        }
    }
    Ok(())
}

/// Measures each side's workloads on its server in turn: the first of every side, then the
/// second, ...
fn take_turns<I: Iterator<Item = Workload>>(
    sides: &mut [Side],
    servers: &[server::Server],
    opts: &Options,
    mut lists: Vec<I>,
) {
    loop {
        let mut any = false;
        for ((side, server), list) in sides.iter_mut().zip(servers).zip(lists.iter_mut()) {
            if let Some(w) = list.next() {
                side.measure(server, opts, w);
                any = true;
            }
        }
        if !any {
            return;
        }
    }
}

fn header() {
    println!(
        "{:<36} {:<6} {:>14} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>8} {:>8} {:>9} {:>5}",
        "workload",
        "db",
        "per s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "errors",
        "server µs",
        "bench µs",
        "writer %",
        "writer µs",
        "batch"
    );
}

/// Runs one workload; besides rate and latency it reports the server's CPU time per unit
/// (user + system, from /proc), which other load on the machine does not inflate much, the
/// load generator's own (this process: it shares the cores), and the share of the time the
/// server's write connection was held (near 100 %, writes queue for it), the CPU time of
/// the threads holding it per unit, and the writes its commits held on average (writes that
/// queued while a batch ran share its commit).
fn measure_one(server: &server::Server, opts: &Options, w: Workload, db: &str) -> Row {
    let cpu_before = cpu_ticks(server.pid());
    let own_before = cpu_ticks(std::process::id());
    let writer_before = server::writer(server.addr);
    let began = std::time::Instant::now();
    let outcome = client::load(server.addr, opts.connections, opts.seconds, &w.step);
    let elapsed = began.elapsed().as_secs_f64();
    let cpu = cpu_ticks(server.pid()).zip(cpu_before).map(|(a, b)| a - b);
    let own = cpu_ticks(std::process::id())
        .zip(own_before)
        .map(|(a, b)| a - b);
    let writer = server::writer(server.addr).zip(writer_before);
    let (busy, held_cpu, batch) = match writer {
        Some((a, b)) => (
            format!("{:.0}", (a.busy - b.busy) * 100.0 / elapsed),
            // CPU time per unit, as for the server's and the bench's own.
            format!("{:.0}", (a.cpu - b.cpu) * 1e6 / outcome.ok.max(1) as f64),
            if a.commits > b.commits {
                format!("{:.1}", (a.writes - b.writes) / (a.commits - b.commits))
            } else {
                "-".into()
            },
        ),
        None => ("?".into(), "?".into(), "?".into()),
    };
    let per_unit = |ticks: Option<u64>| {
        ticks.map_or(String::from("?"), |t| {
            // Clock ticks are 1/100 s on Linux.
            format!("{:.0}", t as f64 * 10_000.0 / (outcome.ok.max(1)) as f64)
        })
    };
    println!(
        "{:<36} {:<6} {:>14} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>9} {:>8} {:>8} {:>9} {:>5}",
        w.name,
        db,
        format!("{:.0} {}", outcome.rate(), w.unit),
        outcome.percentile(50.0),
        outcome.percentile(99.0),
        outcome.percentile(99.9),
        outcome.percentile(100.0),
        outcome.errors,
        per_unit(cpu),
        per_unit(own),
        busy,
        held_cpu,
        batch
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

/// The server's CPU time so far (user + system) in clock ticks, from /proc.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after its ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The server's resident and peak memory in KiB, from /proc.
fn memory(pid: u32) -> Option<(u64, u64)> {
    status_kib(pid, ["VmRSS:", "VmHWM:"])
}

/// The server's resident memory in KiB by kind: anonymous (heap, stacks), file-backed (the
/// binary's and the libraries' code and data).
fn memory_parts(pid: u32) -> Option<(u64, u64)> {
    status_kib(pid, ["RssAnon:", "RssFile:"])
}

/// Two `NAME: N kB` lines of one read of /proc/PID/status.
fn status_kib(pid: u32, names: [&str; 2]) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field(names[0])?, field(names[1])?))
}
