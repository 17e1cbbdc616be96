//! The load generator: a minimal keep-alive HTTP/1.1 client and the driver that runs one
//! workload step in a loop from many connections and collects latencies and failures.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one request may take before it counts as timed out.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// One answer of the server.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why one step of a workload failed.
#[derive(Debug)]
pub enum Fail {
    /// The connection broke or a request timed out (the connection is reopened).
    Io(String),
    /// The server answered, but not what the step expected.
    Bad(String),
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Fail {
        match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                Fail::Io(format!("timed out after {} s", TIMEOUT.as_secs()))
            }
            _ => Fail::Io(e.to_string()),
        }
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Io(m) | Fail::Bad(m) => f.write_str(m),
        }
    }
}

/// A keep-alive HTTP/1.1 client connection: just enough for the benchmark.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(TIMEOUT))?;
        s.set_write_timeout(Some(TIMEOUT))?;
        Ok(Conn {
            writer: s.try_clone()?,
            reader: BufReader::new(s),
        })
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Reply> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: bench\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
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
        let mut headers = Vec::new();
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
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut reply = Reply {
            status,
            headers,
            body: Vec::new(),
        };
        let chunked = reply
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| std::io::Error::other("bad chunk size"))?;
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk)?;
                if size == 0 {
                    break;
                }
                reply.body.extend_from_slice(&chunk[..size]);
            }
        } else {
            let length = reply
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            reply.body = vec![0; length];
            self.reader.read_exact(&mut reply.body)?;
        }
        Ok(reply)
    }

    /// A GET that must answer 200.
    pub fn get_ok(&mut self, path: &str, headers: &[(&str, &str)]) -> Result<Reply, Fail> {
        let r = self.request("GET", path, headers, b"")?;
        if r.status != 200 {
            return Err(Fail::Bad(format!(
                "GET {}: {} {}",
                path.split('?').next().unwrap_or(path),
                r.status,
                short(&r.text())
            )));
        }
        Ok(r)
    }
}

/// The first line of an answer, at most 120 characters (for error messages).
pub fn short(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(120)
        .collect()
}

/// One step of a workload, run again and again from each connection: `(connection index,
/// step number on that connection)`. One successful step is one unit of the workload (a
/// request, an order, an SMS).
pub type Step = Arc<dyn Fn(&mut Conn, usize, u64) -> Result<(), Fail> + Send + Sync>;

/// The result of running one workload.
pub struct Outcome {
    pub ok: u64,
    pub errors: u64,
    pub timeouts: u64,
    /// The first failures seen, for the report.
    pub samples: Vec<String>,
    pub elapsed: Duration,
    /// Latencies of the successful steps in microseconds, sorted.
    pub micros: Vec<u32>,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency percentile `p` (0–100) in milliseconds.
    pub fn percentile(&self, p: f64) -> f64 {
        if self.micros.is_empty() {
            return 0.0;
        }
        let i = ((p / 100.0) * (self.micros.len() - 1) as f64).round() as usize;
        f64::from(self.micros[i]) / 1000.0
    }
}

/// Runs `step` from `connections` threads, one keep-alive connection each, for `seconds`.
pub fn load(addr: SocketAddr, connections: usize, seconds: u64, step: &Step) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..connections)
        .map(|index| {
            let stop = stop.clone();
            let step = step.clone();
            std::thread::spawn(move || {
                let mut out = Outcome {
                    ok: 0,
                    errors: 0,
                    timeouts: 0,
                    samples: Vec::new(),
                    elapsed: Duration::ZERO,
                    micros: Vec::new(),
                };
                let mut conn = None;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let c = match conn.as_mut() {
                        Some(c) => c,
                        None => match Conn::open(addr) {
                            Ok(c) => conn.insert(c),
                            Err(e) => {
                                out.errors += 1;
                                note(&mut out.samples, format!("connect: {e}"));
                                std::thread::sleep(Duration::from_millis(10));
                                continue;
                            }
                        },
                    };
                    let t = Instant::now();
                    n += 1;
                    match step(c, index, n) {
                        Ok(()) => {
                            out.ok += 1;
                            out.micros
                                .push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        }
                        Err(f) => {
                            out.errors += 1;
                            if let Fail::Io(m) = &f {
                                if m.starts_with("timed out") {
                                    out.timeouts += 1;
                                }
                                conn = None;
                            }
                            note(&mut out.samples, f.to_string());
                        }
                    }
                }
                out
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut all = Outcome {
        ok: 0,
        errors: 0,
        timeouts: 0,
        samples: Vec::new(),
        elapsed: Duration::ZERO,
        micros: Vec::new(),
    };
    for h in handles {
        match h.join() {
            Ok(o) => {
                all.ok += o.ok;
                all.errors += o.errors;
                all.timeouts += o.timeouts;
                for s in o.samples {
                    note(&mut all.samples, s);
                }
                all.micros.extend(o.micros);
            }
            Err(_) => {
                all.errors += 1;
                note(&mut all.samples, "a load thread panicked".into());
            }
        }
    }
    all.elapsed = started.elapsed();
    all.micros.sort_unstable();
    all
}

fn note(samples: &mut Vec<String>, s: String) {
    if samples.len() < 5 && !samples.contains(&s) {
        samples.push(s);
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
