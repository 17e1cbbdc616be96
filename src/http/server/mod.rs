//! The HTTP server: tiny_http underneath, our limits and worker pool on top.
//!
//! Flow of a request: our accept thread takes the connection from the public listener and
//! gives it to a tiny_http connection thread already waiting for one ([`handoff`]) → that
//! thread reads the request head (bounded in time by the socket timeouts of
//! [`crate::http::server::net`]) → a worker takes it from tiny_http's queue → limits
//! are checked (URL, headers, body size) → the body is read (small bodies are already in
//! memory; larger uploads are read by a separate, bounded set of upload threads so a slow
//! client never holds a worker) → the router runs the handler inside `catch_unwind` → security
//! headers are added → the response is written → one access-log line.
//!
//! tiny_http itself accepts only on a private loopback socket, from [`handoff`]'s parker. If
//! its accept loop dies there (it stops for good on an accept error such as EMFILE), the
//! worker that sees the error starts a fresh tiny_http server on a clone of the same socket,
//! so the process keeps serving. Connections the old server's threads hold keep sending their
//! requests to its queue; a drain thread serves them until it falls quiet.
//!
//! # The tiny_http gaps we close
//!
//! tiny_http 0.12 is small and synchronous, which suits us, but on its own it trusts its clients
//! too much. What we add, and where:
//!
//! | Gap in tiny_http | What otpbox does | Where |
//! | --- | --- | --- |
//! | Connections never time out: an idle or stalled client holds its thread forever. | `SO_RCVTIMEO`/`SO_SNDTIMEO` (`read_timeout`) are set on the listening socket; Linux copies them to every accepted socket, so each read and write gives up after that long without progress. | `net::limit_listener` |
//! | Every connection gets a thread as soon as it is accepted, even one that sends nothing. | `TCP_DEFER_ACCEPT`: the kernel hands a connection over only once its first bytes arrive (or the timeout passes). | `net::limit_listener` |
//! | Bodies over 1 KiB are read by the worker straight from the socket with no limit, so a few slow uploads block every worker. | Such bodies are read by a bounded set of upload threads, through `take` of the announced length (1 MiB + 1 for a chunked body); the workers go on serving. | `server::handle_incoming`, `server::upload` |
//! | A small body is left on the socket too when the client sends `Expect: 100-continue`; under `Connection: upgrade` the request's reader is the socket itself, so reading "the body" of `curl --http2 http://…` (an h2c upgrade, no body) waited `read_timeout` and answered 400. | Those bodies go to the upload threads as well; every body is read through `take` of its announced length (none announced: none read); a chunked body under an upgrade is refused (400). The upgrade is never granted: the answer is HTTP/1.1 and tiny_http then closes the connection. | `server::check_limits`, `server::handle_incoming` |
//! | An oversized body is accepted. | 413 from `Content-Length` before reading; chunked bodies are cut at 1 MiB. | `server::check_limits`, `server::upload` |
//! | Dropping an unanswered request drains its body on the dropping thread. | Refused requests are dropped on short-lived discard threads (at most 32). | `server::discard` |
//! | Dropping a request that announced a huge `Content-Length` allocates that much at once and aborts the process. | Above 64 MiB announced, the request is never dropped: the answer is written straight to the client's socket, found by peer address among our descriptors, the socket is shut down, and the tiny_http request is forgotten (its connection thread stays parked; each case is logged). | `server::abandon`, `net::answer_and_close` |
//! | An `accept` error such as EMFILE ends the accept loop for good while the process lives on. | The public listener is served by our own accept thread, which backs off and retries (the connection waits in the backlog). tiny_http accepts only our park connections on its private socket; if that loop ends, the worker that sees `recv()` fail starts a new tiny_http server on a clone of the socket and the others move over. | `handoff::accept_loop`, `server::restart_accept_loop` |
//! | The receive timeout we set on the listening socket (so accepted sockets inherit it) also times out `accept()`; and tiny_http's accept thread panics (`try_clone().unwrap()`) when exactly one descriptor is left. | Our accept thread treats the timeout as routine. tiny_http's private socket has no timeout. A panic hook recognises the accept-thread panic and triggers the restart above; a short-lived thread keeps answering the old loop's kept-alive connections until they go quiet. | `handoff::accept_loop`, `server::restart_accept_loop` |
//! | Running out of file descriptors is easy. | The soft `RLIMIT_NOFILE` is raised to the hard limit at start-up. | `net::raise_open_files_limit` |
//! | No limits on URL length or header count and size. | 414 over 8 KiB of URL, 431 over 100 fields or 32 KiB, checked after tiny_http has parsed the head. | `server::check_limits` |
//! | A panicking handler would take the worker down. | `catch_unwind` per request (and per job), a 500 page, rollback of an open transaction. The release profile keeps `panic = "unwind"` for this. | `server::dispatch` |
//! | It adds its own `Server:` header. | We set `Server: otpbox`. | `server::to_tiny` |
//! | Every connection gets its own thread, with no ceiling on how many. | The supervisor counts our client sockets every 100 ms and cuts the idle ones beyond `max_connections` (half-sent heads first). | `supervisor.rs` |
//! | A request head is read with no size cap (an endless header line grows its buffer without end), and a head dripped a byte at a time holds its thread as long as the client likes. | The supervisor compares each socket's received bytes (`TCP_INFO`) with what its requests account for: over about 48 KiB unaccounted, or a head arriving for longer than `read_timeout`, and the connection is cut (its descriptors swapped for a dead stand-in, so tiny_http's thread ends). | `supervisor.rs`, `net::shut_down` |
//! | Its connection pool counts idle threads loosely, so a connection accepted in a burst can be queued behind kept-alive ones indefinitely. | We accept every client connection ourselves and move it onto a tiny_http thread parked for that purpose; tiny_http's accept thread only ever sees one park at a time, so its pool never misjudges. | `handoff.rs` |
//!
//! ## What stays open
//!
//! - Limits on a head in progress are enforced per supervisor tick: a very fast client can send
//!   one tick's worth of traffic (plus kernel buffers) past the head limit before it is cut.
//! - A request refused by `abandon` leaves its tiny_http connection thread parked for the life of
//!   the process.
//! - Another local process may connect to tiny_http's private loopback port ([`handoff`]): its
//!   requests are refused, but its connection holds a tiny_http thread until it closes.
//!
//! For an install on the open internet, put a reverse proxy in front (examples in `packaging/`):
//! it terminates TLS and adds its own limits in front of tiny_http.

pub mod handoff;
pub mod longpoll;
pub mod net;
pub mod supervisor;

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::app::App;
use crate::http::request::{Method, Request};
use crate::http::response::{reason, Response};
use crate::http::{Ctx, Site};
use crate::jobs::Jobs;
use handoff::Handoff;
use longpoll::Wait;
use supervisor::Supervisor;

pub const MAX_BODY: usize = 1024 * 1024;
pub const MAX_URL: usize = 8 * 1024;
pub const MAX_HEADERS: usize = 100;
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Above this announced body size an oversized request is never dropped (see
/// [`crate::http::server::net::answer_and_close`]); below it, dropping drains at most this much.
const MAX_DRAIN: usize = 64 * 1024 * 1024;
/// Threads dropping refused requests at once; past this the worker drops them itself.
const MAX_DISCARDERS: usize = 32;
/// tiny_http reads bodies up to this size into memory on its own connection thread.
const PREREAD: usize = 1024;
/// An answer this large may not fit the socket's send buffer: a worker writing it gives its
/// CPU slot up first (see [`finish`]).
const LARGE_ANSWER: usize = 256 * 1024;
/// What a request head may take beyond the URL and header limits (request line, separators).
const HEAD_SLACK: usize = 8 * 1024;
/// The body allowance of a chunked upload, whose length is not announced (chunk framing
/// included).
const CHUNKED_ALLOWANCE: usize = MAX_BODY + MAX_BODY / 4;
/// How often an idle worker looks again at which tiny_http server is current.
const RECHECK: Duration = Duration::from_secs(1);
/// A retired server is drained until it has had no request for the read timeout plus this:
/// a kept-alive connection sends its next request within the read timeout of its previous
/// answer, and that answer may still be in the making when the server retires.
const DRAIN_GRACE: Duration = Duration::from_secs(60);

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

struct Shared {
    app: Arc<App>,
    site: Site,
    /// The private loopback listener tiny_http accepts on (see [`handoff`]).
    private: TcpListener,
    handoff: Handoff,
    current: RwLock<(u64, Arc<tiny_http::Server>)>,
    uploads: AtomicUsize,
    discarders: AtomicUsize,
    /// Oversized requests whose connection was shut down and whose tiny_http thread stays
    /// parked for good (reported in the log).
    abandoned: AtomicUsize,
    /// Set when tiny_http's accept thread panicked (see [`watch_accept_thread`]).
    accept_panicked: AtomicBool,
    /// Long-poll requests waiting for a change, served by the parking thread.
    parked: Mutex<Vec<Parked>>,
    supervisor: Supervisor,
}

/// A long-poll request held off the workers until its state changes or its wait ends.
struct Parked {
    rq: tiny_http::Request,
    req: Request,
    started: Instant,
    wait: Arc<Wait>,
    /// The notifier version this request's answer was last rendered at.
    checked: u64,
}

/// Binds the listening socket with our limits applied. Separate from [`run`] so the caller
/// can print the real address (port 0 picks a free port).
pub fn bind(addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    crate::http::server::net::limit_listener(&listener, timeout)?;
    Ok(listener)
}

/// Serves until the process ends. Spawns `workers` threads and blocks on them.
pub fn run(app: Arc<App>, jobs: Arc<Jobs>, listener: TcpListener) -> std::io::Result<()> {
    if let Some(n) = crate::http::server::net::raise_open_files_limit() {
        log::debug!("open files limit: {n}");
    }
    let private = handoff::private_listener()?;
    let server = Arc::new(start_tiny(&private)?);
    let workers = app.config.workers;
    let supervisor = Supervisor::new(
        listener.local_addr()?,
        supervisor::Limits {
            head_bytes: (MAX_URL + MAX_HEADER_BYTES + HEAD_SLACK) as u64,
            head_time: app.config.read_timeout,
            max_connections: app.config.max_connections,
        },
    );
    let site = Site::new(&app.config, jobs);
    let shared = Arc::new(Shared {
        app,
        site,
        handoff: Handoff::new(private.local_addr()?),
        private,
        current: RwLock::new((0, server)),
        uploads: AtomicUsize::new(0),
        discarders: AtomicUsize::new(0),
        abandoned: AtomicUsize::new(0),
        accept_panicked: AtomicBool::new(false),
        parked: Mutex::new(Vec::new()),
        supervisor,
    });
    let supervising = shared.clone();
    std::thread::Builder::new()
        .name("http-supervisor".into())
        .spawn(move || {
            supervising
                .supervisor
                .run(|live, now| supervising.handoff.forget_closed(live, now))
        })?;
    let parking = shared.clone();
    std::thread::Builder::new()
        .name("http-parker".into())
        .spawn(move || parking.handoff.parker())?;
    let public_fd = std::os::unix::io::AsRawFd::as_raw_fd(&listener);
    let stopping = shared.clone();
    std::thread::Builder::new()
        .name("stop-signals".into())
        .spawn(move || {
            let signal = crate::lifecycle::wait_for_stop_signal();
            stop_gracefully(&stopping, public_fd, signal)
        })?;
    watch_accept_thread(&shared);
    if let Some(addr) = shared.app.config.metrics_listen {
        let app = shared.app.clone();
        let server = tiny_http::Server::http(addr)
            .map_err(|e| std::io::Error::other(format!("metrics_listen {addr}: {e}")))?;
        log::info!("metrics on http://{addr}/metrics");
        std::thread::Builder::new()
            .name("http-metrics".into())
            .spawn(move || serve_metrics(&app, addr, server))?;
    }
    let long_polls = shared.clone();
    std::thread::Builder::new()
        .name("http-longpoll".into())
        .spawn(move || park_loop(&long_polls))?;
    let handles: Vec<_> = (0..workers)
        .map(|i| {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("http-worker-{i}"))
                .spawn(move || worker(shared))
        })
        .collect::<Result<_, _>>()?;
    // Accepting starts once the reserve of parked threads is there (a few milliseconds; at
    // most a second), so a burst at start-up finds threads waiting; until then connections
    // wait in the listen backlog.
    shared.handoff.wait_for_reserve(Duration::from_secs(1));
    let accepting = shared.clone();
    std::thread::Builder::new()
        .name("http-accept".into())
        .spawn(move || {
            accepting
                .handoff
                .accept_loop(&listener, &accepting.app.life)
        })?;
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

/// The separate metrics listener (`metrics_listen`): `GET /metrics` without a token, 404 for
/// anything else; one request at a time, which is what a scraper sends.
fn serve_metrics(app: &App, addr: SocketAddr, mut server: tiny_http::Server) {
    let db = open_db(app);
    loop {
        let rq = match server.recv() {
            Ok(rq) => rq,
            Err(e) => {
                // Its accept loop ended (out of descriptors, typically): a new one.
                log::error!("metrics listener stopped ({e}); restarting it");
                std::thread::sleep(Duration::from_secs(1));
                if let Ok(s) = tiny_http::Server::http(addr) {
                    server = s;
                }
                continue;
            }
        };
        if rq.body_length().unwrap_or(0) > 0 {
            // A scrape has no body; dropping one would drain (and allocate) it.
            std::mem::forget(rq);
            continue;
        }
        let path = rq.url().split('?').next().unwrap_or("");
        let resp = if *rq.method() == tiny_http::Method::Get && path == "/metrics" {
            Response::prometheus(app.metrics.render(&db, app.now()))
        } else {
            Response::text(404, "only GET /metrics here")
        };
        if !db.is_autocommit() {
            let _ = db.execute_batch("ROLLBACK");
        }
        let _ = rq.respond(to_tiny(resp));
    }
}

/// How long a stop waits for requests in progress and the scheduler's tick.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The graceful stop (see [`crate::lifecycle`]), then the end of the process: no new
/// connection is accepted; long-polls are answered with what they have; every connection
/// stops reading further requests (idle ones at once, busy ones once their answer is
/// written); requests in progress finish, within [`STOP_GRACE`]; the scheduler finishes its
/// tick and starts no other. What was committed is in the database file and its WAL, which
/// SQLite replays on the next start.
fn stop_gracefully(shared: &Arc<Shared>, public_fd: i32, signal: &str) -> ! {
    log::info!("{signal}: stopping; requests in progress may finish");
    shared.app.life.begin_stop();
    // SAFETY: `public_fd` is the listening socket, owned by the accept thread for the life of
    // the process; shutting it down refuses new connections and ends that thread's accept.
    unsafe {
        libc::shutdown(public_fd, libc::SHUT_RDWR);
    }
    shared.app.notify();
    let deadline = Instant::now() + STOP_GRACE;
    let mut quiet_since = None;
    while Instant::now() < deadline {
        let busy = shared.supervisor.stop_reading_idle();
        // Requests tiny_http read before the connection stopped reading may still wait in
        // its queue for a worker: quiet means quiet for a while.
        if busy == 0 && shared.uploads.load(Ordering::SeqCst) == 0 && shared.handoff.waiting() == 0
        {
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= Duration::from_millis(200) {
                break;
            }
        } else {
            quiet_since = None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    while shared.app.life.scheduler_ticking() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let left = shared.supervisor.stop_reading_idle();
    if left > 0 {
        log::warn!("stopped with {left} request(s) still in progress after {STOP_GRACE:?}");
    }
    log::info!("stopped");
    std::process::exit(0)
}

/// tiny_http 0.12's accept thread unwraps `try_clone` on every socket it accepts: out of
/// descriptors right after a successful accept, that thread panics instead of reporting an
/// error, and no worker would ever learn that nothing accepts connections any more. A panic
/// hook notices it (the unwrap is in `refined_tcp_stream.rs`, only called from that thread)
/// and wakes a worker to restart the accept loop.
fn watch_accept_thread(shared: &Arc<Shared>) {
    let shared = Arc::downgrade(shared);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        let in_accept_thread = info
            .location()
            .is_some_and(|l| l.file().ends_with("refined_tcp_stream.rs"));
        if let (true, Some(shared)) = (in_accept_thread, shared.upgrade()) {
            shared.accept_panicked.store(true, Ordering::SeqCst);
            // Without the lock (a restart in progress holds it) workers see the flag within
            // RECHECK anyway.
            if let Ok(cur) = shared.current.try_read() {
                cur.1.unblock();
            }
        }
    }));
}

fn start_tiny(listener: &TcpListener) -> std::io::Result<tiny_http::Server> {
    let clone = listener.try_clone()?;
    tiny_http::Server::from_listener(clone, None).map_err(std::io::Error::other)
}

fn worker(shared: Arc<Shared>) {
    let mut db = open_db(&shared.app);
    // Requests served since this worker last gave its page cache back.
    let mut served = false;
    let cpu = crate::cpu::Worker::default();
    loop {
        // Takes requests only while it holds one of the CPU slots (`crate::cpu`); one that
        // waits long for a slot gives its page cache back first, as an idle one does.
        if !cpu.hold_within(RECHECK) {
            if served {
                served = false;
                give_back_page_cache(&db);
            }
            cpu.hold();
        }
        let (generation, server) = shared
            .current
            .read()
            .map(|g| (g.0, g.1.clone()))
            .unwrap_or_else(|p| (p.get_ref().0, p.get_ref().1.clone()));
        if shared.accept_panicked.swap(false, Ordering::SeqCst) {
            let e = std::io::Error::other("the accept thread panicked");
            restart_accept_loop(&shared, generation, &e);
            continue;
        }
        // A timeout rather than a plain recv: after a restart, idle workers move to the new
        // server by themselves, leaving the old queue to its drain thread.
        match server.recv_timeout(RECHECK) {
            Ok(Some(rq)) => {
                handle_incoming(&shared, &mut db, rq);
                served = true;
            }
            Ok(None) if served => {
                served = false;
                give_back_page_cache(&db);
            }
            Ok(None) => {}
            Err(e) => restart_accept_loop(&shared, generation, &e),
        }
    }
}

/// A worker idle for [`RECHECK`] after serving gives back the database pages its connection
/// cached (up to SQLite's 2 MiB) and asks the allocator to return the freed memory: an idle
/// server shrinks back to about its size at start-up, however many workers it has and
/// whatever they served. The next request reads its pages again from the operating system's
/// cache (microseconds each). Prepared statements stay: preparing a page's statements again
/// would cost a request after every idle second a millisecond or more, for 0.1–0.4 MiB.
fn give_back_page_cache(db: &Connection) {
    // SAFETY: the handle is this open connection's, used by this thread only.
    unsafe {
        rusqlite::ffi::sqlite3_db_release_memory(db.handle());
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of glibc's heaps to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn open_db(app: &App) -> Connection {
    loop {
        match app.connect() {
            Ok(c) => return c,
            Err(e) => {
                log::error!("worker cannot open the database: {e}; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// The accept loop of `generation` ended (its error was handed to us). Start a new one on
/// the same socket, once; the old server's remaining connections are served by a drain thread.
fn restart_accept_loop(shared: &Arc<Shared>, generation: u64, err: &std::io::Error) {
    let mut cur = shared.current.write().unwrap_or_else(|p| p.into_inner());
    if cur.0 != generation {
        return; // someone else already restarted it
    }
    log::error!("HTTP accept loop stopped ({err}); restarting it");
    let mut backoff = Duration::from_millis(50);
    loop {
        match start_tiny(&shared.private) {
            Ok(server) => {
                let old = std::mem::replace(&mut cur.1, Arc::new(server));
                cur.0 += 1;
                // Parked threads of the old server would send their connections' requests
                // to its queue: new connections go to the new server's threads.
                shared.handoff.discard_free();
                let shared2 = shared.clone();
                let spawned = std::thread::Builder::new()
                    .name("http-drain".into())
                    .spawn(move || drain(&shared2, &old));
                if let Err(e) = spawned {
                    log::error!("cannot start a drain thread for the old accept loop: {e}");
                }
                return;
            }
            Err(e) => {
                log::error!("cannot restart the accept loop yet: {e}");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Serves the requests that connections accepted by a retired server still send (HTTP
/// keep-alive) until it has been quiet for longer than such a connection can stay idle.
fn drain(shared: &Arc<Shared>, old: &tiny_http::Server) {
    let quiet = shared.app.config.read_timeout + DRAIN_GRACE;
    let mut db = None;
    let mut last = Instant::now();
    while let Some(left) = quiet.checked_sub(last.elapsed()) {
        if let Ok(Some(rq)) = old.recv_timeout(left) {
            let db = db.get_or_insert_with(|| open_db(&shared.app));
            handle_incoming(shared, db, rq);
            last = Instant::now();
        }
    }
}

/// What the limits say about a request before its body is touched.
enum Verdict {
    /// Body already in memory (or none).
    Small(Request),
    /// Needs reading from the socket, up to this many bytes.
    Upload(Request),
    Refuse(Response),
}

fn handle_incoming(shared: &Arc<Shared>, db: &mut Connection, rq: tiny_http::Request) {
    let started = Instant::now();
    let Some((mut rq, peer)) = shared.handoff.arrived(rq) else {
        return;
    };
    shared
        .supervisor
        .started(Some(peer), head_size(&rq), body_allowance(&rq));
    match check_limits(&shared.app, &rq, peer) {
        Verdict::Small(mut req) => {
            let mut body = Vec::new();
            // Its announced length at most: under `Connection: upgrade` the reader is the
            // socket (a body of none, in memory otherwise).
            let announced = rq.body_length().unwrap_or(0) as u64;
            if rq
                .as_reader()
                .take(announced)
                .read_to_end(&mut body)
                .is_err()
            {
                return finish(
                    shared,
                    rq,
                    Response::text(400, "incomplete body"),
                    &req,
                    started,
                );
            }
            req.body = body;
            let resp = dispatch(&shared.app, &shared.site, db, &mut req);
            respond(shared, rq, resp, req, started);
        }
        Verdict::Upload(req) => {
            let body = body_allowance(&rq);
            let limit = shared.app.config.max_body_readers;
            if shared.uploads.fetch_add(1, Ordering::SeqCst) >= limit {
                shared.uploads.fetch_sub(1, Ordering::SeqCst);
                let resp = Response::text(503, "too many uploads in progress; retry shortly")
                    .with_header("Retry-After", "1");
                return discard(shared, rq, resp, &req, started);
            }
            let shared2 = shared.clone();
            let spawned = std::thread::Builder::new()
                .name("http-upload".into())
                .spawn(move || {
                    upload(&shared2, rq, req, started);
                    shared2.uploads.fetch_sub(1, Ordering::SeqCst);
                });
            if spawned.is_err() {
                shared.uploads.fetch_sub(1, Ordering::SeqCst);
                shared.supervisor.finished(Some(peer), body);
                log::error!("cannot start an upload thread");
            }
        }
        Verdict::Refuse(resp) => {
            let req = shallow(&rq, &shared.app, peer);
            if rq.body_length().unwrap_or(0) > MAX_DRAIN {
                return abandon(shared, rq, resp, &req, started);
            }
            discard(shared, rq, resp, &req, started)
        }
    }
}

/// Reads a large body off the workers, then handles the request on this thread.
fn upload(shared: &Arc<Shared>, mut rq: tiny_http::Request, mut req: Request, started: Instant) {
    let mut body = Vec::new();
    // The announced length (under `Connection: upgrade` the reader is the socket itself),
    // else a chunked body's allowance and one byte to tell one too long.
    let limit = rq.body_length().map_or(MAX_BODY as u64 + 1, |n| n as u64);
    let read = rq.as_reader().take(limit).read_to_end(&mut body);
    match read {
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            return discard(
                shared,
                rq,
                Response::text(408, "request body timed out"),
                &req,
                started,
            )
        }
        Err(_) => {
            return discard(
                shared,
                rq,
                Response::text(400, "incomplete body"),
                &req,
                started,
            )
        }
        Ok(_) if body.len() > MAX_BODY => {
            return discard(shared, rq, too_large(), &req, started);
        }
        Ok(_) => {}
    }
    req.body = body;
    let mut db = open_db(&shared.app);
    let resp = dispatch(&shared.app, &shared.site, &mut db, &mut req);
    respond(shared, rq, resp, req, started);
}

/// Answers now, or parks a long-poll answer while fewer than `max_waiting` requests wait
/// (past that bound the current state goes out at once).
fn respond(
    shared: &Shared,
    rq: tiny_http::Request,
    mut resp: Response,
    req: Request,
    started: Instant,
) {
    let Some(wait) = resp.wait.take() else {
        return finish(shared, rq, resp, &req, started);
    };
    let mut parked = shared.parked.lock().unwrap_or_else(|p| p.into_inner());
    let max = shared.app.config.max_waiting;
    if wait.page {
        let pages = parked.iter().filter(|p| p.wait.page).count();
        if parked.len() >= max || !longpoll::page_may_wait(max, pages) {
            drop(parked);
            let busy = with_security_headers(longpoll::page_busy());
            return finish(shared, rq, busy, &req, started);
        }
    } else if parked.len() >= max {
        drop(parked);
        return finish(shared, rq, resp, &req, started);
    }
    let checked = wait.seen;
    shared.app.metrics.set_long_polls(parked.len() + 1);
    parked.push(Parked {
        rq,
        req,
        started,
        wait,
        checked,
    });
    drop(parked);
    shared.app.notifier.poke();
}

/// How often the parking thread looks for changes made by other processes (the CLI) and for
/// waits that ran out, when nothing wakes it earlier.
const PARK_TICK: Duration = Duration::from_millis(250);

/// The parking thread: answers parked long-poll requests when their state changes or their
/// wait ends. Woken by the notifier at once for changes made in this process; changes other
/// processes commit are seen through SQLite's `data_version` within [`PARK_TICK`].
fn park_loop(shared: &Shared) {
    let app = &shared.app;
    let mut db = open_db(app);
    let mut version = app.notifier.version();
    let mut last_data_version = data_version(&db);
    loop {
        let idle = shared
            .parked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty();
        // With nothing parked, changes need not wake this thread (see `Notifier::idle`).
        version = if idle {
            app.notifier.idle(PARK_TICK)
        } else {
            app.notifier.wait(version, PARK_TICK)
        };
        let mut list = {
            let mut guard = shared.parked.lock().unwrap_or_else(|p| p.into_inner());
            if guard.is_empty() {
                continue;
            }
            std::mem::take(&mut *guard)
        };
        // Read only with requests parked. A request that parks later may see one change
        // that was not (an extra render, which answers only if its state did change).
        let dv = data_version(&db);
        let committed_elsewhere = dv != last_data_version;
        last_data_version = dv;
        let now = Instant::now();
        let mut keep = Vec::with_capacity(list.len());
        let stopping = app.life.stopping();
        for mut p in list.drain(..) {
            let expired = now >= p.wait.until || stopping;
            let answer = if expired || committed_elsewhere || p.checked != version {
                p.checked = version;
                render_parked(app, &mut db, &p, expired)
            } else {
                None
            };
            match answer {
                Some(resp) => finish(shared, p.rq, resp, &p.req, p.started),
                None => keep.push(p),
            }
        }
        let mut guard = shared.parked.lock().unwrap_or_else(|p| p.into_inner());
        keep.append(&mut guard);
        *guard = keep;
        app.metrics.set_long_polls(guard.len());
    }
}

/// Renders a parked answer: the current one when `last`, otherwise the new one only if the
/// state changed. A panic while rendering becomes a 500.
fn render_parked(app: &App, db: &mut Connection, p: &Parked, last: bool) -> Option<Response> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if last {
            Some(p.wait.current(app, db))
        } else {
            p.wait.changed(app, db)
        }
    }));
    match outcome {
        Ok(resp) => resp.map(with_security_headers),
        Err(_) => {
            log::error!("long-poll render panicked on {}", p.req.path);
            if !db.is_autocommit() {
                let _ = db.execute_batch("ROLLBACK");
            }
            Some(with_security_headers(crate::http::error_page(
                &p.req,
                500,
                "Something went wrong on our side. Please try again.",
            )))
        }
    }
}

fn data_version(db: &Connection) -> i64 {
    db.prepare_cached("PRAGMA data_version")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .unwrap_or(0)
}

fn too_large() -> Response {
    Response::text(413, "request body larger than 1 MiB")
}

fn check_limits(app: &App, rq: &tiny_http::Request, peer: SocketAddr) -> Verdict {
    let req = shallow(rq, app, peer);
    if rq.url().len() > MAX_URL {
        return Verdict::Refuse(Response::text(414, "URL too long"));
    }
    let header_bytes: usize = rq
        .headers()
        .iter()
        .map(|h| h.field.as_str().as_str().len() + h.value.as_str().len() + 4)
        .sum();
    if rq.headers().len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return Verdict::Refuse(Response::text(431, "request headers too large"));
    }
    let chunked = req.header("transfer-encoding").is_some();
    // tiny_http reads a small body into memory itself, except when the client waits for
    // `100 Continue` first or asks for a protocol upgrade (`curl --http2` on http:// does):
    // then the body is still on the socket, and reading it could hold a worker (and its CPU
    // slot) for as long as the client likes.
    let expects_continue = req.header("expect").is_some();
    let upgrade = req
        .header("connection")
        .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade"));
    match rq.body_length() {
        Some(n) if n > MAX_BODY => Verdict::Refuse(too_large()),
        Some(n) if n > PREREAD => Verdict::Upload(req),
        // With an upgrade tiny_http hands over the socket itself, not a chunk decoder.
        _ if chunked && upgrade => Verdict::Refuse(Response::text(
            400,
            "a chunked body with Connection: upgrade is not supported",
        )),
        _ if chunked => Verdict::Upload(req),
        Some(n) if n > 0 && (expects_continue || upgrade) => Verdict::Upload(req),
        _ => Verdict::Small(req),
    }
}

/// Our request without its body; `peer` is the client's address (see [`handoff`]).
fn shallow(rq: &tiny_http::Request, app: &App, peer: SocketAddr) -> Request {
    let url = rq.url();
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let headers: Vec<(String, String)> = rq
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str().to_string(),
            )
        })
        .collect();
    let direct_ip = peer.ip();
    let mut req = Request::new(
        Method::parse(rq.method().as_str()),
        path,
        query,
        headers,
        direct_ip,
        rq.secure(),
    );
    req.peer = Some(peer);
    if app.config.behind_proxy {
        if let Some(ip) = req
            .header("x-forwarded-for")
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
        {
            req.remote_ip = ip;
        }
        if let Some(proto) = req.header("x-forwarded-proto") {
            req.secure = proto.trim().eq_ignore_ascii_case("https");
        }
    }
    req
}

/// Routes and runs the handler; a panic becomes a 500 and the worker lives on.
pub fn dispatch(app: &App, site: &Site, db: &mut Connection, req: &mut Request) -> Response {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut ctx = Ctx {
            app,
            site,
            db: &mut *db,
        };
        crate::http::route(&mut ctx, req)
    }));
    let resp = match outcome {
        Ok(resp) => resp,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            log::error!(
                "handler panicked on {} {}: {what}",
                req.method.as_str(),
                req.path
            );
            if !db.is_autocommit() {
                let _ = db.execute_batch("ROLLBACK");
            }
            crate::http::error_page(
                req,
                500,
                "Something went wrong on our side. Please try again.",
            )
        }
    };
    with_security_headers(resp)
}

fn with_security_headers(mut resp: Response) -> Response {
    let defaults = [
        ("Content-Security-Policy", CSP),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "same-origin"),
        ("X-Frame-Options", "DENY"),
        ("Cache-Control", "no-store"),
    ];
    for (k, v) in defaults {
        if !resp.has_header(k) {
            resp.headers.push((k.to_string(), v.to_string()));
        }
    }
    resp
}

fn to_tiny(resp: Response) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let mut out = tiny_http::Response::from_data(resp.body)
        .with_status_code(tiny_http::StatusCode(resp.status));
    for (k, v) in &resp.headers {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            out.add_header(h);
        }
    }
    if let Ok(h) = tiny_http::Header::from_bytes(&b"Server"[..], &b"otpbox"[..]) {
        out.add_header(h);
    }
    out
}

fn finish(
    shared: &Shared,
    rq: tiny_http::Request,
    resp: Response,
    req: &Request,
    started: Instant,
) {
    access_log(&shared.app, req, resp.status, started);
    let (peer, body) = (req.peer, body_allowance(&rq));
    // Writing may wait: behind an earlier request of the same connection still being
    // answered (tiny_http writes a connection's answers in order; the earlier one may be a
    // parked long-poll), or for a client slow to read a large answer. Not with a CPU slot.
    if resp.body.len() > LARGE_ANSWER || shared.supervisor.pipelined(peer) {
        crate::cpu::give_up();
    }
    if let Err(e) = rq.respond(to_tiny(resp)) {
        log::debug!("client went away before the response was written: {e}");
    }
    if shared.app.life.stopping() {
        if let Some(peer) = peer {
            crate::http::server::net::stop_reading(peer);
        }
    }
    shared.supervisor.finished(peer, body);
}

/// About how many bytes the request's head took on the wire.
fn head_size(rq: &tiny_http::Request) -> u64 {
    let line = rq.method().as_str().len() + rq.url().len() + " HTTP/1.1\r\n ".len();
    let headers: usize = rq
        .headers()
        .iter()
        .map(|h| h.field.as_str().as_str().len() + h.value.as_str().len() + 4)
        .sum();
    (line + headers + 2) as u64
}

/// The body bytes a request may still send: its announced length, or the chunked allowance.
fn body_allowance(rq: &tiny_http::Request) -> u64 {
    match rq.body_length() {
        Some(n) => n as u64,
        None if rq
            .headers()
            .iter()
            .any(|h| h.field.equiv("Transfer-Encoding")) =>
        {
            CHUNKED_ALLOWANCE as u64
        }
        None => 0,
    }
}

/// Answers without reading the body, then lets a short-lived thread drop the request:
/// tiny_http drains an unread body on drop, which must not hold a worker.
fn discard(
    shared: &Arc<Shared>,
    rq: tiny_http::Request,
    resp: Response,
    req: &Request,
    started: Instant,
) {
    let resp = with_security_headers(resp);
    access_log(&shared.app, req, resp.status, started);
    let tiny = to_tiny(resp);
    let (peer, body) = (req.peer, body_allowance(&rq));
    if shared.discarders.fetch_add(1, Ordering::SeqCst) >= MAX_DISCARDERS {
        shared.discarders.fetch_sub(1, Ordering::SeqCst);
        let _ = rq.respond(tiny);
        shared.supervisor.finished(peer, body);
        return;
    }
    let shared2 = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("http-discard".into())
        .spawn(move || {
            let _ = rq.respond(tiny);
            shared2.discarders.fetch_sub(1, Ordering::SeqCst);
            shared2.supervisor.finished(peer, body);
        });
    if spawned.is_err() {
        shared.discarders.fetch_sub(1, Ordering::SeqCst);
        shared.supervisor.finished(peer, body);
    }
}

/// A request announcing a body so large that tiny_http would abort the process when
/// dropping it: answer on the raw socket, shut it down, and never drop the request.
fn abandon(
    shared: &Shared,
    rq: tiny_http::Request,
    resp: Response,
    req: &Request,
    started: Instant,
) {
    let resp = with_security_headers(resp);
    access_log(&shared.app, req, resp.status, started);
    let mut raw = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str(&format!(
        "Connection: close\r\nContent-Length: {}\r\n\r\n",
        resp.body.len()
    ));
    let mut bytes = raw.into_bytes();
    bytes.extend_from_slice(&resp.body);
    let peer = req.peer;
    let closed = peer
        .map(|peer| crate::http::server::net::answer_and_close(peer, &bytes))
        .unwrap_or(false);
    let n = shared.abandoned.fetch_add(1, Ordering::SeqCst) + 1;
    shared.supervisor.finished(peer, body_allowance(&rq));
    log::warn!(
        "refused a request announcing a {}-byte body; connection {} ({n} so far)",
        rq.body_length().unwrap_or(0),
        if closed { "shut down" } else { "not found" }
    );
    std::mem::forget(rq);
}

fn access_log(app: &App, req: &Request, status: u16, started: Instant) {
    app.metrics.request(&req.path, status, started.elapsed());
    // Path only: query strings can hold API keys.
    log::info!(
        target: "access",
        "{} {} {} {} {}ms",
        req.method.as_str(),
        req.path,
        status,
        reason(status),
        started.elapsed().as_millis()
    );
}
