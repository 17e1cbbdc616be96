//! The server under test: this same binary started as `serve` in a temporary data directory,
//! and the command-line calls (`key create`, `user credit`, `device add`, `check`) the bench
//! makes against that directory.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::domain::Error;

/// A temporary data directory, removed on drop.
pub struct DataDir {
    pub path: PathBuf,
}

impl DataDir {
    pub fn new(label: &str) -> DataDir {
        let path =
            std::env::temp_dir().join(format!("otpbox-bench-{}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        DataDir { path }
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// How to start the server.
pub struct Settings<'a> {
    /// Demo mode (simulator on, demo customer). Off for the SMS-ingest workload, whose orders
    /// must go to the bench's gateway SIMs.
    pub demo: bool,
    /// `synchronous`: `normal` or `full`.
    pub synchronous: &'a str,
    pub workers: usize,
}

/// The running server; killed on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// From spawning the process to its "listening" line.
    pub startup: Duration,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server and waits for it to exit.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The bearer token of the server's `/metrics` (a bench server listens on 127.0.0.1 only).
pub const METRICS_TOKEN: &str = "bench-metrics";
/// The servers' `reuse_cooldown`: a SIM serves a service again this soon.
pub const REUSE_COOLDOWN: Duration = Duration::from_secs(1);

/// The shared write connection's counters so far, from `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct Writer {
    /// Seconds a writer held it (`otpbox_db_write_busy_seconds_total`).
    pub busy: f64,
    /// Transactions committed and the writes they held (`otpbox_db_commits_total`,
    /// `otpbox_db_writes_total`).
    pub commits: f64,
    pub writes: f64,
    /// CPU seconds of the threads that held it (`otpbox_db_write_busy_cpu_seconds_total`).
    pub cpu: f64,
}

pub fn writer(addr: SocketAddr) -> Option<Writer> {
    let mut conn = super::client::Conn::open(addr).ok()?;
    let auth = format!("Bearer {METRICS_TOKEN}");
    let reply = conn
        .get_ok("/metrics", &[("Authorization", auth.as_str())])
        .ok()?;
    let text = reply.text();
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))?
            .trim()
            .parse()
            .ok()
    };
    Some(Writer {
        busy: value("otpbox_db_write_busy_seconds_total")?,
        commits: value("otpbox_db_commits_total")?,
        writes: value("otpbox_db_writes_total")?,
        cpu: value("otpbox_db_write_busy_cpu_seconds_total")?,
    })
}

pub fn start(data: &Path, s: &Settings<'_>) -> Result<Server, Error> {
    let exe = std::env::current_exe().map_err(|e| Error::Internal(e.to_string()))?;
    let began = Instant::now();
    let mut child = Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("OTPBOX_DEMO", if s.demo { "true" } else { "false" })
        .env("OTPBOX_SYNCHRONOUS", s.synchronous)
        .env("OTPBOX_SIM_DELAY", "1h")
        .env("OTPBOX_WORKERS", s.workers.to_string())
        // Rate limits and anomaly flags off, cancelling allowed at once, no live-order limit
        // in reach: the bench measures the server, not its guards.
        .env("OTPBOX_API_RATE", "0")
        .env("OTPBOX_API_IP_RATE", "0")
        .env("OTPBOX_EARLY_CANCEL", "0")
        .env("OTPBOX_MAX_ACTIVE_ACTIVATIONS", "1000000")
        .env("OTPBOX_FLAG_ORDERS_PER_MINUTE", "0")
        .env("OTPBOX_FLAG_ACCOUNTS_PER_IP", "0")
        .env("OTPBOX_FLAG_CANCEL_RATIO", "100")
        .env("OTPBOX_FLAG_SUCCESS_RATE", "0")
        // A number serves the same service again after a second (the SMS-ingest workload
        // reuses its SIMs), and the filled history's messages are not deleted under load.
        .env(
            "OTPBOX_REUSE_COOLDOWN",
            format!("{}s", REUSE_COOLDOWN.as_secs()),
        )
        .env("OTPBOX_SMS_RETENTION", "3650d")
        // The bench reads how long the writer was busy from /metrics.
        .env("OTPBOX_METRICS_TOKEN", METRICS_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::Internal(format!("cannot start the server: {e}")))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(rest) = line.strip_prefix("otpbox listening on http://") {
                    break rest.trim().parse::<SocketAddr>().ok();
                }
            }
            _ => break None,
        }
    };
    let startup = began.elapsed();
    // Keep reading its output so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let mut server = Server {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        startup,
    };
    server.addr = addr.ok_or_else(|| Error::Internal("the server did not start".into()))?;
    Ok(server)
}

/// Runs `otpbox ARGS --data DIR` (with `stdin` on its standard input) and returns its
/// standard output; an error if it fails.
pub fn cli(data: &Path, args: &[&str], stdin: Option<&str>) -> Result<String, Error> {
    let exe = std::env::current_exe().map_err(|e| Error::Internal(e.to_string()))?;
    let mut child = Command::new(exe)
        .args(args)
        .arg("--data")
        .arg(data)
        .env_remove("OTPBOX_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Internal(e.to_string()))?;
    if let Some(mut pipe) = child.stdin.take() {
        if let Some(text) = stdin {
            let _ = pipe.write_all(text.as_bytes());
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(Error::Internal(format!(
            "`otpbox {}` failed: {}{}",
            args.join(" "),
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(text)
}
