//! The shared fixture of the integration tests: [`TestServer`] starts the real `otpbox`
//! binary on a free port with its own temporary data directory, forwards its output to the
//! test's captured output, and kills it on drop. [`Client`] is a tiny HTTP/1.1 client over
//! `std::net::TcpStream` with a one-cookie jar (`__session`), enough to drive the web forms.
//!
//! Every test file includes this module with `mod common;`; not every file uses every helper.
#![allow(dead_code)]

pub mod gateways;
pub mod market;
pub mod payments;
pub mod totp;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long the server may take to print its "listening on" line.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Socket timeout of the test client: generous, argon2 and a busy machine take time.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

pub const BIN: &str = env!("CARGO_BIN_EXE_otpbox");

/// A password every helper-created account uses unless a test says otherwise.
pub const PASSWORD: &str = "correct horse battery";

/// How to start a server: extra environment and an optional open-files limit.
#[derive(Default)]
pub struct Builder {
    envs: Vec<(String, String)>,
    open_files: Option<u32>,
    demo: bool,
    data: Option<PathBuf>,
}

impl Builder {
    /// Runs `otpbox demo` instead of `otpbox serve` (simulator on, demo customer seeded).
    pub fn demo(mut self) -> Builder {
        self.demo = true;
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Builder {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }

    pub fn envs(mut self, envs: &[(&str, &str)]) -> Builder {
        for (k, v) in envs {
            self.envs.push((k.to_string(), v.to_string()));
        }
        self
    }

    /// Starts on an existing data directory (one a killed server left, see
    /// [`TestServer::kill9`]) instead of a new one; it is removed when this server is dropped.
    pub fn data_dir(mut self, dir: PathBuf) -> Builder {
        self.data = Some(dir);
        self
    }

    /// Runs the server under `sh -c 'ulimit -n N && exec otpbox serve ...'`: the soft and the
    /// hard limit, so the server cannot raise it again.
    pub fn open_files_limit(mut self, n: u32) -> Builder {
        self.open_files = Some(n);
        self
    }

    pub fn start(self) -> TestServer {
        let data = self.data.clone().unwrap_or_else(unique_temp_dir);
        let args = [
            if self.demo { "demo" } else { "serve" }.to_string(),
            "--data".to_string(),
            data.to_string_lossy().into_owned(),
            "--listen".to_string(),
            "127.0.0.1:0".to_string(),
        ];
        let mut cmd = match self.open_files {
            None => {
                let mut c = Command::new(BIN);
                c.args(&args);
                c
            }
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(BIN)
                    .args(&args);
                c
            }
        };
        clean_env(&mut cmd);
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start the otpbox binary");
        let log = Arc::new(Mutex::new(String::new()));
        forward_stderr(child.stderr.take().expect("piped stderr"), log.clone());
        let lines = forward_stdout(child.stdout.take().expect("piped stdout"), log.clone());

        let deadline = Instant::now() + START_TIMEOUT;
        let mut setup_link = None;
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("otpbox listening on http://") {
                        break rest.trim().parse::<SocketAddr>().expect("listen address");
                    }
                    if line.starts_with("  http") && line.contains("/setup/") {
                        setup_link = Some(path_of(line.trim()));
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let _ = std::fs::remove_dir_all(&data);
                    panic!(
                        "otpbox did not report its address ({e:?}); its output:\n{}",
                        log.lock().unwrap()
                    );
                }
            }
        };
        TestServer {
            child,
            data,
            addr,
            setup_link,
            log,
            remove_data: true,
        }
    }
}

/// A running `otpbox serve` with its own data directory; killed and cleaned up on drop.
pub struct TestServer {
    child: Child,
    data: PathBuf,
    addr: SocketAddr,
    setup_link: Option<String>,
    log: Arc<Mutex<String>>,
    /// False once [`TestServer::kill9`] handed the directory on.
    remove_data: bool,
}

impl TestServer {
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub fn start() -> TestServer {
        Builder::default().start()
    }

    pub fn start_with(envs: &[(&str, &str)]) -> TestServer {
        Builder::default().envs(envs).start()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Path of the first-admin setup link printed at start-up (only when the database had no
    /// account), e.g. `/setup/abc…`.
    pub fn setup_link(&self) -> Option<&str> {
        self.setup_link.as_deref()
    }

    /// Everything the server printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of the server's `/proc/PID/status` (`VmRSS`, `Threads`), as a number.
    pub fn proc_status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// Kills the server with SIGKILL (no shutdown, no checkpoint: a crash) and hands back its
    /// data directory, kept for a restart with [`Builder::data_dir`].
    pub fn kill9(mut self) -> PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.remove_data = false;
        self.data.clone()
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A client with an empty cookie jar.
    pub fn client(&self) -> Client {
        Client {
            addr: self.addr,
            session: None,
            headers: Vec::new(),
        }
    }

    /// A raw connection to the server (limits and slow-client tests).
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect to the test server");
        s.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        s
    }

    /// Runs `otpbox ARGS --data DIR` against this server's data directory (the commands that
    /// work next to a live server: `key create`, `sms inject`, `user credit`, `check`).
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_env(&[], args)
    }

    /// Like [`TestServer::cli`] with settings in the environment (`OTPBOX_...`).
    pub fn cli_env(&self, envs: &[(&str, &str)], args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(BIN);
        clean_env(&mut cmd);
        cmd.envs(envs.iter().copied());
        cmd.args(args)
            .arg("--data")
            .arg(&self.data)
            .stdin(Stdio::null())
            .output()
            .expect("run the otpbox command line")
    }

    /// Like [`TestServer::cli`], asserting success; its standard output.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "otpbox {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates an account through the command line (`otpbox user create`) and returns its id.
    pub fn create_user(&self, email: &str, role: &str, password: &str) -> i64 {
        let mut cmd = Command::new(BIN);
        clean_env(&mut cmd);
        cmd.args(["user", "create", "--email", email, "--role", role])
            .arg("--password-stdin")
            .arg("--data")
            .arg(&self.data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run otpbox user create");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "otpbox user create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.user_id(email).expect("the new account exists")
    }

    /// A new API key for the account (`otpbox key create`).
    pub fn api_key(&self, email: &str) -> String {
        self.cli_ok(&["key", "create", "--email", email])
            .trim()
            .to_string()
    }

    /// Delivers an SMS as a gateway would (`otpbox sms inject`); returns what it printed.
    pub fn inject_sms(&self, to: &str, from: &str, text: &str) -> String {
        self.cli_ok(&["sms", "inject", "--to", to, "--from", from, "--text", text])
    }

    /// A client signed in as a new account of `role` with [`PASSWORD`].
    pub fn signed_in(&self, email: &str, role: &str) -> (Client, i64) {
        let id = self.create_user(email, role, PASSWORD);
        let mut c = self.client();
        let r = c.login(email, PASSWORD);
        assert_eq!(
            r.location(),
            Some("/dashboard"),
            "login of {email}: {}",
            r.text()
        );
        (c, id)
    }

    /// The server's database (a second connection; the server uses WAL).
    pub fn db(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(self.data.join("otpbox.sqlite3")).expect("open db");
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c
    }

    pub fn user_id(&self, email: &str) -> Option<i64> {
        self.db()
            .query_row(
                "SELECT id FROM users WHERE email = ?1 COLLATE NOCASE",
                [email],
                |r| r.get(0),
            )
            .ok()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// Every mail written to the outbox, oldest first.
    pub fn outbox(&self) -> Vec<Mail> {
        let db = self.db();
        let mut stmt = db
            .prepare("SELECT to_addr, subject, body FROM outbox ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| {
            Ok(Mail {
                to: r.get(0)?,
                subject: r.get(1)?,
                body: r.get(2)?,
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    /// The paths of every link in the outbox, oldest first (`/verify/…`): the host part of
    /// mailed links comes from `base_url`, which does not know the port the test picked.
    pub fn outbox_links(&self) -> Vec<String> {
        self.outbox().iter().flat_map(|m| m.links()).collect()
    }

    /// The one link in the outbox whose path starts with `prefix`.
    pub fn only_link(&self, prefix: &str) -> String {
        let links: Vec<String> = self
            .outbox_links()
            .into_iter()
            .filter(|l| l.starts_with(prefix))
            .collect();
        assert_eq!(links.len(), 1, "links starting with {prefix}: {links:?}");
        links.into_iter().next().unwrap()
    }

    /// Moves the server's clock forward (needs `OTPBOX_DEV_CLOCK=1`).
    pub fn advance_clock(&self, secs: u64) {
        let r = self
            .client()
            .post(&format!("/__dev/clock?advance={secs}"), b"");
        assert_eq!(r.status, 200, "advance the clock: {}", r.text());
    }

    /// The server's clock, Unix seconds (needs `OTPBOX_DEV_CLOCK=1`).
    pub fn clock_now(&self) -> i64 {
        let r = self.client().post("/__dev/clock?advance=0", b"");
        assert_eq!(r.status, 200, "read the clock: {}", r.text());
        r.json()["now"].as_i64().expect("now")
    }

    /// Runs every scheduled job now (needs `OTPBOX_DEV_CLOCK=1`); their JSON summaries.
    pub fn run_jobs(&self) -> String {
        let r = self.client().post("/__dev/jobs", b"");
        assert_eq!(r.status, 200, "run jobs: {}", r.text());
        r.text()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.remove_data {
            let _ = std::fs::remove_dir_all(&self.data);
        }
    }
}

pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl Mail {
    /// Paths of the http(s) links in the body.
    pub fn links(&self) -> Vec<String> {
        self.body
            .split_whitespace()
            .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
            .map(path_of)
            .collect()
    }
}

/// `http://host:port/a/b?c` → `/a/b?c`.
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map(|x| x.1).unwrap_or(url);
    match rest.find('/') {
        Some(i) => rest[i..].to_string(),
        None => "/".to_string(),
    }
}

/// The server must not see the developer's own `OTPBOX_*` settings.
fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("OTPBOX_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_BACKTRACE", "0");
}

/// A new, empty directory under the system's temporary directory, named after `tag` (the
/// caller removes it).
pub fn scratch_dir(tag: &str) -> PathBuf {
    let dir = unique_temp_dir().with_extension(tag);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

fn unique_temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    std::env::temp_dir().join(format!(
        "otpbox-test-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ))
}

/// Forwards the server's stdout to the test output, sending each line to the returned channel
/// (the start-up code reads it until the "listening on" line).
fn forward_stdout(
    out: impl Read + Send + 'static,
    log: Arc<Mutex<String>>,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            eprintln!("[otpbox] {line}");
            log.lock().unwrap().push_str(&format!("{line}\n"));
            let _ = tx.send(line);
        }
    });
    rx
}

fn forward_stderr(err: impl Read + Send + 'static, log: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            eprintln!("[otpbox] {line}");
            log.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
}

/// An HTTP response as the client read it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }

    /// The `Set-Cookie` value for the session cookie, if any.
    pub fn session_cookie(&self) -> Option<&str> {
        self.header_all("set-cookie")
            .into_iter()
            .find(|c| c.starts_with("__session="))
    }

    /// The CSRF token of the first form on the page.
    pub fn csrf(&self) -> String {
        csrf_of(&self.text()).unwrap_or_else(|| panic!("no csrf field in:\n{}", self.text()))
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }

    pub fn is_html(&self) -> bool {
        self.header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
    }
}

/// Extracts `name="csrf" value="…"` from a page.
pub fn csrf_of(html: &str) -> Option<String> {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_string())
}

/// A browser stand-in: one connection per request, redirects not followed, keeps the
/// `__session` cookie.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    session: Option<String>,
    /// Sent with every request (e.g. `X-Forwarded-Proto`).
    headers: Vec<(String, String)>,
}

impl Client {
    /// The session cookie value the jar holds.
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    pub fn set_session(&mut self, value: Option<&str>) {
        self.session = value.map(str::to_string);
    }

    /// Sends `name: value` with every later request.
    pub fn always_send(&mut self, name: &str, value: &str) {
        self.headers.push((name.to_string(), value.to_string()));
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    pub fn head(&mut self, path: &str) -> Response {
        self.request("HEAD", path, &[], b"")
    }

    pub fn post(&mut self, path: &str, body: &[u8]) -> Response {
        self.request("POST", path, &[], body)
    }

    /// POSTs `application/x-www-form-urlencoded` fields.
    pub fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Response {
        let body = encode_form(fields);
        self.request(
            "POST",
            path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
    }

    /// GETs `page`, then POSTs `fields` plus the page's CSRF token to `action`.
    pub fn submit(&mut self, page: &str, action: &str, fields: &[(&str, &str)]) -> Response {
        let form = self.get(page);
        assert_eq!(form.status, 200, "GET {page}: {}", form.text());
        let csrf = form.csrf();
        let mut all = fields.to_vec();
        all.push(("csrf", &csrf));
        self.post_form(action, &all)
    }

    /// GETs where a redirect points (a form's POST/redirect/GET).
    pub fn follow(&mut self, r: &Response) -> Response {
        assert_eq!(r.status, 303, "expected a redirect: {}", r.text());
        let to = r.location().expect("a Location header").to_string();
        self.get(&to)
    }

    /// Follows a failed form's redirect back to its page `page` and returns that page, which
    /// shows the error.
    pub fn back_to(&mut self, r: &Response, page: &str) -> Response {
        assert_eq!(r.status, 303, "expected a redirect back: {}", r.text());
        assert_eq!(
            r.location(),
            Some(page),
            "expected to be sent back to {page}"
        );
        self.follow(r)
    }

    /// Logs in with a refused password or account and returns the login page it is sent
    /// back to, with the message.
    pub fn login_refused(&mut self, email: &str, password: &str) -> Response {
        let r = self.login(email, password);
        self.back_to(&r, "/login")
    }

    /// POSTs a JSON body.
    pub fn post_json(&mut self, path: &str, body: &serde_json::Value) -> Response {
        self.request(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    }

    pub fn login(&mut self, email: &str, password: &str) -> Response {
        self.submit(
            "/login",
            "/login",
            &[("email", email), ("password", password)],
        )
    }

    /// Signs up with both checkboxes ticked.
    pub fn signup(&mut self, email: &str, password: &str) -> Response {
        self.submit(
            "/signup",
            "/signup",
            &[
                ("email", email),
                ("password", password),
                ("age", "1"),
                ("aup", "1"),
            ],
        )
    }

    /// Logs out with the CSRF token of the dashboard page.
    pub fn logout(&mut self) -> Response {
        self.submit("/dashboard", "/logout", &[])
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Like [`Client::request`], with connection errors returned instead of panicking.
    pub fn try_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        if let Some(s) = &self.session {
            head.push_str(&format!("Cookie: __session={s}\r\n"));
        }
        for (k, v) in self.headers.iter() {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut stream = TcpStream::connect(self.addr)?;
        stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        stream.write_all(&bytes)?;
        let resp = read_response(&mut stream, method == "HEAD")?;
        self.remember(&resp);
        Ok(resp)
    }

    fn remember(&mut self, resp: &Response) {
        let Some(cookie) = resp.session_cookie() else {
            return;
        };
        let value = cookie
            .split(';')
            .next()
            .and_then(|kv| kv.split_once('='))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        let expired = cookie
            .split(';')
            .any(|a| a.trim().eq_ignore_ascii_case("Max-Age=0"));
        self.session = if value.is_empty() || expired {
            None
        } else {
            Some(value)
        };
    }
}

/// `a=1&b=x+y` with percent-encoding.
pub fn encode_form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Reads one response: status line, headers, and a body delimited by Content-Length,
/// chunked encoding, or the end of the stream. `head_only` for HEAD and 304-style answers
/// without a body.
pub fn read_response(stream: &mut impl Read, head_only: bool) -> std::io::Result<Response> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before a response",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    let no_body = head_only || status == 204 || status == 304 || (100..200).contains(&status);
    if no_body {
    } else if find("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {size:?}")))?;
            if size == 0 {
                let mut trailer = String::new();
                while reader.read_line(&mut trailer)? > 2 {
                    trailer.clear();
                }
                break;
            }
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            let mut crlf = [0; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(n) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a fake external service (a webhook receiver, a partner hub) received: the path, the
/// headers (names in lower case) and the body.
pub type Received = (String, Vec<(String, String)>, Vec<u8>);

/// Reads one HTTP/1.1 request with a `Content-Length` body from `stream`.
pub fn read_request(stream: &mut TcpStream) -> Option<Received> {
    use std::io::{BufRead, BufReader, Read};
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some((path, headers, body))
}
