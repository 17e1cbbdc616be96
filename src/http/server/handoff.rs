//! Connection hand-off: otpbox accepts every client connection itself and gives it to a
//! tiny_http connection thread that is already waiting for it, so no connection ever waits
//! for a thread.
//!
//! # Why
//!
//! tiny_http 0.12 accepts on its own thread and gives each connection to a pool that counts
//! its idle threads loosely: `spawn` reads the idle count, queues the connection and wakes one
//! thread, and the woken thread lowers the count only once it runs. Two connections accepted
//! in that window both go to the queue behind one idle thread; the second then waits until
//! some thread's connection closes, which for kept-alive clients may be never. Nothing in
//! tiny_http's public API lets us give it a connection or see its pool, and its thread per
//! connection is the thread that parses, so the fix has to come from what we control: which
//! connections its accept thread sees, and when.
//!
//! # How
//!
//! - tiny_http listens on a **private loopback socket** that only this module connects to.
//! - The **parker** thread opens one connection there at a time and sends a one-line
//!   request (a *park*) announcing a body it never sends. A worker receives it and hands it
//!   here, unanswered and unread: until the request is dropped, tiny_http's thread for that
//!   connection waits for the body's reader on a channel, outside any system call on the
//!   socket. That connection is a *slot*: a live tiny_http
//!   thread we may give any socket to. The parker opens its next connection only once the
//!   previous park has arrived, i.e. once a pool thread has taken it, so tiny_http's accept
//!   thread never has two connections in flight and its pool's count is never stale when it
//!   decides whether to start a thread. It keeps [`RESERVE`] slots ready.
//! - The **accept** thread takes client connections from the public listener. For each it
//!   takes a slot, puts the client socket on the slot's two descriptors (tiny_http's reader
//!   and writer) with `dup3`, and releases the park without answering it (`into_writer`,
//!   dropped unwritten): the thread goes on to read its next request, which now comes from the
//!   client. If no slot is ready the connection is queued for the parker, which is making one
//!   (tens of microseconds) and gives it the next; it never waits for another connection to
//!   end, and the accept thread never waits at all.
//! - tiny_http reports the park connection's address as every request's remote address;
//!   [`Handoff::peer`] maps it to the client's. The park socket stays open (so its port, the
//!   key of that map, is not reused) until the supervisor sees the client's socket gone.
//!
//! Invariant: every connection the public listener accepts is given a tiny_http thread at
//! once or as soon as the next slot is parked; tiny_http's accept thread is only ever given
//! one park at a time. A request from an address that is neither a park nor a handed-over
//! connection (another local process on the private port) is refused.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::sync::{Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::http::server::net;

/// Slots kept parked and ready, so a burst of new connections finds threads waiting (fewer
/// when the open-files limit is low: a slot holds three descriptors).
pub const RESERVE: usize = 32;
/// Connections accepted while no slot was free, at most; beyond, new ones are closed.
const MAX_WAITING: usize = 4096;
/// The request that parks a slot. It announces a chunked body and never sends it: tiny_http
/// hands the request over with the connection's reader inside the body's decoder, so the
/// thread cannot read the next request until the request is dropped (a request without a
/// body would let it go on reading at once, blocked on the park socket). Dropping the decoder
/// unread reads nothing (unlike a `Content-Length` body, which tiny_http drains on drop).
///
/// Its path carries a number drawn for each park, so a late park from an address since reused
/// is never taken for the current one.
fn park_request(nonce: u64) -> String {
    format!(
        "POST /.park/{nonce:016x} HTTP/1.1\r\nHost: otpbox\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
}
/// How long the parker waits for a worker to bring its park.
const PARK_WAIT: Duration = Duration::from_secs(5);
/// How long a finished connection's route is kept after its socket is gone, for requests
/// still queued.
const ROUTE_GRACE: Duration = Duration::from_secs(2);

/// A tiny_http connection thread waiting for a socket.
struct Slot {
    /// Our end of the park connection.
    park: TcpStream,
    /// The park connection's address as tiny_http reports it (our end's local address).
    addr: SocketAddr,
    /// The park, unanswered: holding it holds the thread.
    rq: tiny_http::Request,
    /// tiny_http's reader and writer descriptors of the park connection.
    fds: [i32; 2],
    inode: u64,
}

/// A handed-over connection: the client behind a park address.
struct Route {
    peer: SocketAddr,
    /// The client socket's inode, to see when it is gone.
    inode: u64,
    /// Kept open so the park address is not reused while the connection lives.
    _park: TcpStream,
    gone_since: Option<Instant>,
}

#[derive(Default)]
struct State {
    free: Vec<Slot>,
    /// Client connections accepted while no slot was free, oldest first.
    waiting: VecDeque<(TcpStream, SocketAddr)>,
    /// The park in flight: its address, its path, and its request once a worker brought it.
    awaiting: Option<(SocketAddr, String, Option<tiny_http::Request>)>,
}

pub struct Handoff {
    private: SocketAddr,
    reserve: usize,
    state: Mutex<State>,
    changed: Condvar,
    routes: RwLock<HashMap<SocketAddr, Route>>,
}

/// Binds the private loopback listener tiny_http accepts on.
pub fn private_listener() -> io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", 0))
}

impl Handoff {
    pub fn new(private: SocketAddr) -> Handoff {
        // SAFETY: getrlimit fills a properly initialised rlimit.
        let files = unsafe {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                lim.rlim_cur
            } else {
                1024
            }
        };
        Handoff {
            private,
            reserve: (files / 32).clamp(2, RESERVE as u64) as usize,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            routes: RwLock::new(HashMap::new()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sorts a request taken from tiny_http's queue: a client's request comes back with the
    /// client's address; a park is kept here and a stranger's request refused here (`None`).
    pub fn arrived(&self, rq: tiny_http::Request) -> Option<(tiny_http::Request, SocketAddr)> {
        let Some(from) = rq.remote_addr().copied() else {
            return refuse(rq);
        };
        if let Some(route) = self.routes_read().get(&from) {
            return Some((rq, route.peer));
        }
        let mut st = self.state();
        match &mut st.awaiting {
            Some((addr, path, held @ None)) if *addr == from && rq.url() == path.as_str() => {
                *held = Some(rq);
                drop(st);
                self.changed.notify_all();
                None
            }
            _ => {
                drop(st);
                refuse(rq)
            }
        }
    }

    fn routes_read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<SocketAddr, Route>> {
        self.routes.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The accept thread: serves the public listener until the process stops.
    pub fn accept_loop(&self, public: &TcpListener, life: &crate::lifecycle::Lifecycle) {
        let mut backoff = Duration::from_millis(10);
        loop {
            match public.accept() {
                Ok((conn, peer)) => {
                    backoff = Duration::from_millis(10);
                    self.give(conn, peer);
                }
                // The listener's receive timeout (inherited by accepted sockets) also ends
                // an accept() that waited that long: routine on a quiet server.
                Err(_) if life.stopping() => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // Out of descriptors, typically: the connection waits in the backlog.
                    log::error!("cannot accept a connection: {e}; retrying in {backoff:?}");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Gives a client connection to a parked tiny_http thread, or queues it for the next
    /// one the parker makes (the accept thread never waits, so the listen backlog never
    /// overflows while threads are being parked).
    fn give(&self, conn: TcpStream, peer: SocketAddr) {
        let mut st = self.state();
        match st.free.pop() {
            Some(slot) => {
                drop(st);
                self.changed.notify_all();
                self.hand_over(slot, conn, peer);
            }
            None if st.waiting.len() >= MAX_WAITING => {
                drop(st);
                log::warn!(
                    "closed a connection from {peer}: {MAX_WAITING} already wait for a thread"
                );
            }
            None => {
                st.waiting.push_back((conn, peer));
                drop(st);
                self.changed.notify_all();
            }
        }
    }

    /// Moves the client socket onto the slot's descriptors and releases its thread.
    fn hand_over(&self, slot: Slot, conn: TcpStream, peer: SocketAddr) {
        let Some(inode) = net::socket_inode(conn.as_raw_fd()) else {
            return;
        };
        // The slot's descriptors are tiny_http's, held by its waiting thread: they cannot
        // have changed, and dup3 onto a number that meanwhile meant something else would be
        // a disaster, so check.
        if slot
            .fds
            .iter()
            .any(|fd| net::socket_inode(*fd) != Some(slot.inode))
        {
            log::error!("a parked connection lost its descriptors; dropping it");
            std::mem::forget(slot.rq);
            return self.give(conn, peer);
        }
        {
            // No descriptor swap of the supervisor's runs between our check and close.
            let _swapping = net::SWAPS.lock().unwrap_or_else(|p| p.into_inner());
            for fd in slot.fds {
                // SAFETY: `fd` is one of tiny_http's descriptors of the park connection (just
                // checked), whose thread is waiting outside any call on it; dup3 atomically
                // makes it refer to the client socket instead.
                unsafe {
                    libc::dup3(conn.as_raw_fd(), fd, libc::O_CLOEXEC);
                }
            }
            drop(conn);
        }
        self.routes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                slot.addr,
                Route {
                    peer,
                    inode,
                    _park: slot.park,
                    gone_since: None,
                },
            );
        // Releasing the park without a word: its unread body's decoder is dropped, so the
        // thread reads its next request, now from the client; the writer is dropped
        // unwritten, so the client's first response is the first thing it receives.
        drop(slot.rq.into_writer());
    }

    /// The parker thread: keeps [`RESERVE`] slots ready, and gives connections that found
    /// none the next one, until the process ends.
    pub fn parker(&self) {
        let mut backoff = Duration::from_millis(10);
        loop {
            {
                let mut st = self.state();
                while st.free.len() >= self.reserve && st.waiting.is_empty() {
                    st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
                }
            }
            match self.park_one() {
                Ok(slot) => {
                    backoff = Duration::from_millis(10);
                    let mut st = self.state();
                    match st.waiting.pop_front() {
                        Some((conn, peer)) => {
                            drop(st);
                            self.hand_over(slot, conn, peer);
                        }
                        None => {
                            st.free.push(slot);
                            drop(st);
                            self.changed.notify_all();
                        }
                    }
                }
                Err(e) => {
                    // Typically out of descriptors: those of waiting connections whose
                    // client gave up are freed first.
                    self.prune_waiting();
                    log::error!("cannot park a connection thread: {e}; retrying in {backoff:?}");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Closes the waiting connections whose client has gone.
    fn prune_waiting(&self) {
        self.state().waiting.retain(|(conn, _)| {
            let mut p = libc::pollfd {
                fd: conn.as_raw_fd(),
                events: libc::POLLIN | libc::POLLRDHUP,
                revents: 0,
            };
            // SAFETY: one valid pollfd, no waiting.
            let n = unsafe { libc::poll(&mut p, 1, 0) };
            n <= 0 || p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) == 0
        });
    }

    /// Opens one park connection and waits until a worker brings its request.
    fn park_one(&self) -> io::Result<Slot> {
        // tiny_http's two descriptors for the connection will most likely be the lowest free
        // numbers after our own socket's: remembered to avoid a search.
        let guess = lowest_free_fds(3);
        let mut park = TcpStream::connect_timeout(&self.private, PARK_WAIT)?;
        let addr = park.local_addr()?;
        let nonce = u64::from_le_bytes(crate::domain::base::crypto::random_bytes::<8>());
        let request = park_request(nonce);
        let path = format!("/.park/{nonce:016x}");
        self.state().awaiting = Some((addr, path, None));
        park.write_all(request.as_bytes())?;
        let deadline = Instant::now() + PARK_WAIT;
        let mut st = self.state();
        let rq = loop {
            if let Some((a, _, Some(_))) = &st.awaiting {
                if *a == addr {
                    let (_, _, rq) = st.awaiting.take().expect("just seen");
                    break rq.expect("just seen");
                }
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                st.awaiting = None;
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no worker took the park in time",
                ));
            };
            st = self
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        };
        drop(st);
        let port = self.private.port();
        let is_ours = |fd: i32| net::peer_of(fd) == Some(addr) && net::local_port(fd) == Some(port);
        let mut fds: Vec<i32> = guess.into_iter().filter(|fd| is_ours(*fd)).collect();
        if fds.len() != 2 {
            fds = net::own_fds()
                .into_iter()
                .filter(|fd| is_ours(*fd))
                .collect();
        }
        let fds = <[i32; 2]>::try_from(fds)
            .map_err(|_| io::Error::other("cannot find tiny_http's descriptors of a park"))?;
        let inode = net::socket_inode(fds[0])
            .filter(|i| net::socket_inode(fds[1]) == Some(*i))
            .ok_or_else(|| io::Error::other("tiny_http's descriptors of a park disagree"))?;
        Ok(Slot {
            park,
            addr,
            rq,
            fds,
            inode,
        })
    }

    /// Called by the supervisor with the inodes of the client sockets alive on the public
    /// port: routes of connections gone for [`ROUTE_GRACE`] are forgotten (closing the park
    /// socket that kept their address).
    pub fn forget_closed(&self, live: &HashSet<u64>, now: Instant) {
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        routes.retain(|_, r| {
            if live.contains(&r.inode) {
                r.gone_since = None;
                return true;
            }
            let since = *r.gone_since.get_or_insert(now);
            now.duration_since(since) < ROUTE_GRACE
        });
    }

    /// Drops the ready slots (their threads end): after tiny_http's accept loop was replaced,
    /// new connections should go to the new server's threads.
    /// Waits until the reserve of parked slots is full, or `at_most`.
    pub fn wait_for_reserve(&self, at_most: Duration) {
        let deadline = Instant::now() + at_most;
        let mut st = self.state();
        while st.free.len() < self.reserve {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return;
            };
            st = self
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Client connections accepted and waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.state().waiting.len()
    }

    pub fn discard_free(&self) {
        let old = std::mem::take(&mut self.state().free);
        self.changed.notify_all();
        drop(old);
    }
}

/// Refuses a request that came from neither a park nor a handed-over connection.
fn refuse(rq: tiny_http::Request) -> Option<(tiny_http::Request, SocketAddr)> {
    log::warn!(
        "refused a request on the private listener from {:?}",
        rq.remote_addr()
    );
    if rq.body_length().unwrap_or(0) > 0 {
        // Dropping it would drain (and first allocate) the announced body: a stranger's
        // connection keeps its thread instead, unanswered.
        std::mem::forget(rq);
        return None;
    }
    let resp = tiny_http::Response::empty(403).with_header(
        tiny_http::Header::from_bytes(&b"Connection"[..], &b"close"[..]).expect("valid header"),
    );
    let _ = rq.respond(resp);
    None
}

/// The `n` lowest descriptor numbers free right now.
fn lowest_free_fds(n: usize) -> Vec<i32> {
    let mut taken = Vec::with_capacity(n);
    for _ in 0..n {
        // SAFETY: open returns a new descriptor (the lowest free number) or -1; every one
        // we got is closed below.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            break;
        }
        taken.push(fd);
    }
    for fd in &taken {
        // SAFETY: `fd` was just created above and is ours alone.
        unsafe {
            libc::close(*fd);
        }
    }
    taken
}
