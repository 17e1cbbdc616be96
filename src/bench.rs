//! `otpbox bench`: the throughput benchmark of the hot paths. It starts this same binary as a
//! real server (`serve` in demo mode, in a fresh temporary data directory, rate limits off),
//! orders one number through the API, then hammers each endpoint in turn from keep-alive
//! connections on this machine and prints requests per second, latency percentiles and the
//! server's memory. `/healthz` is measured in the same run as the reference ceiling.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::domain::Error;

/// What to measure, from the command line.
pub struct Options {
    pub seconds: u64,
    pub connections: usize,
    pub workers: usize,
}

/// The running server under test; killed and its data removed on drop.
struct Server {
    child: Child,
    data: PathBuf,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

pub fn run(opts: &Options) -> Result<ExitCode, Error> {
    let server = start(opts)?;
    let key = create_key(&server)?;
    let id = order(server.addr, &key)?;
    println!(
        "otpbox bench: server pid {} with {} workers at {}, {} connections, {} s per endpoint",
        server.child.id(),
        opts.workers,
        server.addr,
        opts.connections,
        opts.seconds
    );
    // (name, path, send the key as a Bearer header)
    let targets = [
        ("GET /healthz", "/healthz".to_string(), false),
        (
            "handler_api getStatus",
            format!("/stubs/handler_api.php?api_key={key}&action=getStatus&id={id}"),
            false,
        ),
        (
            "handler_api getBalance",
            format!("/stubs/handler_api.php?api_key={key}&action=getBalance"),
            false,
        ),
        (
            "GET /api/v1/activations/{id}",
            format!("/api/v1/activations/{id}"),
            true,
        ),
    ];
    println!(
        "{:<32} {:>10} {:>9} {:>9} {:>9} {:>7}",
        "endpoint", "req/s", "p50 ms", "p99 ms", "max ms", "errors"
    );
    for (name, path, bearer) in &targets {
        let r = load(server.addr, path, bearer.then_some(key.as_str()), opts);
        println!(
            "{:<32} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7}",
            name,
            r.ok as f64 / r.elapsed.as_secs_f64(),
            r.percentile(50.0),
            r.percentile(99.0),
            r.percentile(100.0),
            r.errors
        );
    }
    if let Some((rss, peak)) = memory(server.child.id()) {
        println!("server memory: RSS {rss} KiB, peak {peak} KiB");
    }
    Ok(ExitCode::SUCCESS)
}

fn start(opts: &Options) -> Result<Server, Error> {
    let exe = std::env::current_exe().map_err(|e| Error::Internal(e.to_string()))?;
    let data = std::env::temp_dir().join(format!("otpbox-bench-{}", std::process::id()));
    let mut child = Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("OTPBOX_DEMO", "true")
        .env("OTPBOX_SIM_DELAY", "1h")
        .env("OTPBOX_WORKERS", opts.workers.to_string())
        .env("OTPBOX_API_RATE", "0")
        .env("OTPBOX_API_IP_RATE", "0")
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
    // Keep reading its output so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let mut server = Server {
        child,
        data,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    server.addr = addr.ok_or_else(|| Error::Internal("the server did not start".into()))?;
    Ok(server)
}

fn create_key(server: &Server) -> Result<String, Error> {
    let exe = std::env::current_exe().map_err(|e| Error::Internal(e.to_string()))?;
    let out = Command::new(exe)
        .args([
            "key",
            "create",
            "--email",
            crate::config::DEMO_EMAIL,
            "--data",
        ])
        .arg(&server.data)
        .output()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || key.is_empty() {
        return Err(Error::Internal("cannot create an API key".into()));
    }
    Ok(key)
}

fn order(addr: SocketAddr, key: &str) -> Result<i64, Error> {
    let mut c = Conn::open(addr).map_err(|e| Error::Internal(e.to_string()))?;
    let body = br#"{"country": 6, "service": "tg"}"#;
    let (status, reply) = c
        .request("POST", "/api/v1/activations", Some(key), body)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let v: serde_json::Value = serde_json::from_slice(&reply).unwrap_or_default();
    match (status, v["id"].as_i64()) {
        (201, Some(id)) => Ok(id),
        _ => Err(Error::Internal(format!(
            "ordering a number failed: {status} {}",
            String::from_utf8_lossy(&reply)
        ))),
    }
}

struct Outcome {
    ok: u64,
    errors: u64,
    elapsed: Duration,
    /// Latencies in microseconds, sorted.
    micros: Vec<u32>,
}

impl Outcome {
    fn percentile(&self, p: f64) -> f64 {
        if self.micros.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * (self.micros.len() - 1) as f64).round() as usize;
        f64::from(self.micros[i]) / 1000.0
    }
}

/// `opts.connections` threads, one keep-alive connection each, for `opts.seconds`.
fn load(addr: SocketAddr, path: &str, key: Option<&str>, opts: &Options) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..opts.connections)
        .map(|_| {
            let stop = stop.clone();
            let path = path.to_string();
            let key = key.map(str::to_string);
            std::thread::spawn(move || {
                let (mut ok, mut errors, mut micros) = (0u64, 0u64, Vec::new());
                let mut conn = None;
                while !stop.load(Ordering::Relaxed) {
                    let c = match conn.as_mut() {
                        Some(c) => c,
                        None => match Conn::open(addr) {
                            Ok(c) => conn.insert(c),
                            Err(_) => {
                                errors += 1;
                                continue;
                            }
                        },
                    };
                    let t = Instant::now();
                    match c.request("GET", &path, key.as_deref(), b"") {
                        Ok((200, _)) => {
                            ok += 1;
                            micros.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        }
                        Ok(_) => errors += 1,
                        Err(_) => {
                            errors += 1;
                            conn = None;
                        }
                    }
                }
                (ok, errors, micros)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(opts.seconds));
    stop.store(true, Ordering::Relaxed);
    let mut out = Outcome {
        ok: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        micros: Vec::new(),
    };
    for h in handles {
        if let Ok((ok, errors, micros)) = h.join() {
            out.ok += ok;
            out.errors += errors;
            out.micros.extend(micros);
        }
    }
    out.elapsed = started.elapsed();
    out.micros.sort_unstable();
    out
}

/// A keep-alive HTTP/1.1 client connection: just enough for the benchmark.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Conn {
            writer: s.try_clone()?,
            reader: BufReader::new(s),
        })
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: &[u8],
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: bench\r\n");
        if let Some(k) = bearer {
            head.push_str(&format!("Authorization: Bearer {k}\r\n"));
        }
        if !body.is_empty() {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        self.writer.write_all(&bytes)?;

        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other("bad status line"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::Error::other("connection closed"));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut reply = vec![0; length];
        self.reader.read_exact(&mut reply)?;
        Ok((status, reply))
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
