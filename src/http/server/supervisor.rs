//! The connection supervisor: the limits tiny_http cannot apply between accepting a
//! connection and handing us a parsed request.
//!
//! tiny_http gives every connection its own thread and reads request heads with no bound on
//! a header line's length: a client streaming one endless header line grows that thread's
//! buffer until memory runs out, and a client dripping a byte now and then holds a thread for
//! as long as it likes. tiny_http does not let us see those connections, but the kernel does:
//! every [`TICK`] this thread lists the process's sockets accepted on our port
//! (`/proc/self/fd`) and reads how many bytes each has received (`TCP_INFO`). The workers
//! report each request they take from a connection (an estimate of its head size, its
//! announced body) and when it is answered. A connection is shut down (`shutdown(2)`; its
//! tiny_http thread then ends) when
//! - it has received more than the head limit beyond what its requests account for: a header
//!   flood, stopped after at most the limit plus one tick of traffic;
//! - bytes of a new request have been arriving for longer than the read timeout without the
//!   head completing, while none of its requests is in progress: a slow-loris drip;
//! - the process holds more than `max_connections` client connections: the surplus idle ones
//!   (no request in progress), those with a half-sent head first, then the longest idle.
//!
//! Connections reach tiny_http threads through [`crate::http::server::handoff`].

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::http::server::net::{self, ClientSocket};

/// How often connections are looked at.
pub const TICK: Duration = Duration::from_millis(100);
/// What the supervisor enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes a request head may take (request line and all header lines).
    pub head_bytes: u64,
    /// How long a head may take to arrive once its first byte came.
    pub head_time: Duration,
    /// Client connections held at once.
    pub max_connections: usize,
}

/// What the workers report about one peer (a client address and port = one connection).
#[derive(Debug)]
struct Peer {
    /// Estimated bytes of requests taken since the supervisor last looked.
    taken: u64,
    /// Body bytes of requests in progress, which may still be arriving.
    bodies: u64,
    in_progress: u32,
    /// When a worker last reported on it.
    touched: Instant,
}

impl Peer {
    fn new(now: Instant) -> Peer {
        Peer {
            taken: 0,
            bodies: 0,
            in_progress: 0,
            touched: now,
        }
    }
}

/// The supervisor's view of one connection.
#[derive(Debug)]
struct Conn {
    sock: ClientSocket,
    /// Bytes received when its requests were last accounted for.
    baseline: u64,
    /// When bytes beyond the baseline first arrived with no request in progress.
    pending_since: Option<Instant>,
    last_active: Instant,
}

pub struct Supervisor {
    /// Where the listener accepts (its port tells our connections from others).
    addr: SocketAddr,
    limits: Limits,
    peers: Mutex<HashMap<SocketAddr, Peer>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    HeadTooLarge,
    HeadTooSlow,
    TooMany,
}

impl Reason {
    fn describe(self) -> &'static str {
        match self {
            Reason::HeadTooLarge => "request head over the size limit",
            Reason::HeadTooSlow => "request head not complete within the read timeout",
            Reason::TooMany => "more connections than max_connections",
        }
    }
}

impl Supervisor {
    pub fn new(addr: SocketAddr, limits: Limits) -> Supervisor {
        Supervisor {
            addr,
            limits,
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// A worker took a request from `peer`: its head took about `head` bytes and it announced
    /// a body of `body` bytes.
    pub fn started(&self, peer: Option<SocketAddr>, head: u64, body: u64) {
        let Some(peer) = peer else { return };
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let p = peers.entry(peer).or_insert_with(|| Peer::new(now));
        p.touched = now;
        p.taken += head;
        p.bodies += body;
        p.in_progress += 1;
    }

    /// Whether `peer`'s connection has another request in progress than the one being
    /// answered (a pipelined one, whose answer goes out first).
    pub fn pipelined(&self, peer: Option<SocketAddr>) -> bool {
        let Some(peer) = peer else { return false };
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.get(&peer).is_some_and(|p| p.in_progress > 1)
    }

    /// The request from `peer` that announced `body` bytes was answered (or dropped).
    pub fn finished(&self, peer: Option<SocketAddr>, body: u64) {
        let Some(peer) = peer else { return };
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = peers.get_mut(&peer) {
            p.bodies = p.bodies.saturating_sub(body);
            p.taken += body;
            p.in_progress = p.in_progress.saturating_sub(1);
            p.touched = Instant::now();
        }
    }

    /// A graceful stop: every client connection with no request in progress stops reading
    /// (see [`net::stop_reading`]); returns how many requests are still in progress.
    pub fn stop_reading_idle(&self) -> u32 {
        let live = net::client_sockets(self.addr.port(), &HashMap::new());
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        for sock in live {
            if peers.get(&sock.peer).is_none_or(|p| p.in_progress == 0) {
                // SAFETY: sock.fd is an open socket of this process (just listed);
                // shutdown does not close it.
                unsafe {
                    libc::shutdown(sock.fd, libc::SHUT_RD);
                }
            }
        }
        peers.values().map(|p| p.in_progress).sum()
    }

    /// Runs forever on its own thread; `looked` is told after every look which client
    /// sockets are alive (their inodes).
    pub fn run(&self, looked: impl Fn(&HashSet<u64>, Instant)) {
        let mut conns: HashMap<u64, Conn> = HashMap::new();
        loop {
            std::thread::sleep(TICK);
            let now = Instant::now();
            self.tick(&mut conns, now);
            looked(&conns.keys().copied().collect(), now);
        }
    }

    fn tick(&self, conns: &mut HashMap<u64, Conn>, now: Instant) {
        let known: HashMap<u64, SocketAddr> =
            conns.iter().map(|(i, c)| (*i, c.sock.peer)).collect();
        let live = net::client_sockets(self.addr.port(), &known);
        let mut seen = HashMap::with_capacity(live.len());
        let mut doomed = Vec::new();
        {
            let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
            for sock in live {
                let Some(bytes) = net::bytes_received(sock.fd) else {
                    continue;
                };
                let conn = conns.remove(&sock.inode).unwrap_or(Conn {
                    sock,
                    baseline: 0,
                    pending_since: None,
                    last_active: now,
                });
                let peer = peers.entry(sock.peer).or_insert_with(|| Peer::new(now));
                let (verdict, conn) = self.judge(conn, peer, bytes, now);
                if let Some(reason) = verdict {
                    doomed.push((conn.sock, reason));
                } else {
                    seen.insert(sock.inode, conn);
                }
            }
            // Peers whose connection is gone and that have nothing in progress are forgotten.
            // A connection accepted since the last look may not be listed yet, so a peer
            // reported on within the last two ticks is kept whatever the listing says.
            let alive: std::collections::HashSet<SocketAddr> =
                seen.values().map(|c| c.sock.peer).collect();
            peers.retain(|addr, p| {
                alive.contains(addr)
                    || p.in_progress > 0
                    || now.duration_since(p.touched) < 2 * TICK
            });

            let over = seen.len().saturating_sub(self.limits.max_connections);
            if over > 0 {
                let mut idle: Vec<&Conn> = seen
                    .values()
                    .filter(|c| peers.get(&c.sock.peer).is_none_or(|p| p.in_progress == 0))
                    .collect();
                idle.sort_by_key(|c| (c.pending_since.is_none(), c.last_active));
                for c in idle.into_iter().take(over) {
                    doomed.push((c.sock, Reason::TooMany));
                }
            }
        }
        for (sock, reason) in doomed {
            seen.remove(&sock.inode);
            if net::shut_down(&sock) {
                log::warn!(
                    "closed the connection of {}: {}",
                    sock.peer,
                    reason.describe()
                );
            }
        }
        *conns = seen;
    }

    /// The verdict on one connection, and its updated state.
    fn judge(
        &self,
        mut c: Conn,
        peer: &mut Peer,
        bytes: u64,
        now: Instant,
    ) -> (Option<Reason>, Conn) {
        let unaccounted = bytes.saturating_sub(c.baseline);
        let allowed = self.limits.head_bytes + peer.taken + peer.bodies;
        if unaccounted > allowed {
            log::debug!(
                "{}: {unaccounted} bytes unaccounted, {allowed} allowed ({peer:?}, baseline {})",
                c.sock.peer,
                c.baseline
            );
            return (Some(Reason::HeadTooLarge), c);
        }
        if peer.taken > 0 {
            // Requests came through: what arrived so far is theirs (a few bytes of the next
            // head may be counted with them, which only loosens the limit by that much).
            c.baseline = bytes.saturating_sub(peer.bodies);
            peer.taken = 0;
            c.pending_since = None;
            c.last_active = now;
        } else if unaccounted > peer.bodies && peer.in_progress == 0 {
            let since = *c.pending_since.get_or_insert(now);
            if now.duration_since(since) > self.limits.head_time {
                return (Some(Reason::HeadTooSlow), c);
            }
        }
        if peer.in_progress > 0 {
            c.last_active = now;
        }
        (None, c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sup() -> Supervisor {
        Supervisor::new(
            SocketAddr::from(([127, 0, 0, 1], 1)),
            Limits {
                head_bytes: 1000,
                head_time: Duration::from_secs(2),
                max_connections: 10,
            },
        )
    }

    fn conn() -> Conn {
        Conn {
            sock: ClientSocket {
                fd: -1,
                inode: 1,
                peer: SocketAddr::from(([127, 0, 0, 1], 5000)),
            },
            baseline: 0,
            pending_since: None,
            last_active: Instant::now(),
        }
    }

    #[test]
    fn a_head_over_the_limit_without_a_request_is_refused() {
        let s = sup();
        let mut p = Peer::new(Instant::now());
        let (v, c) = s.judge(conn(), &mut p, 900, Instant::now());
        assert_eq!(v, None);
        let (v, _) = s.judge(c, &mut p, 1001, Instant::now());
        assert_eq!(v, Some(Reason::HeadTooLarge));
    }

    #[test]
    fn requests_taken_account_for_their_bytes_and_move_the_baseline() {
        let s = sup();
        let mut p = Peer::new(Instant::now());
        let t = Instant::now();
        // 50 requests of 200 bytes each arrived within one tick: 10 000 bytes, all accounted.
        p.taken = 50 * 200;
        let (v, c) = s.judge(conn(), &mut p, 10_000, t);
        assert_eq!(v, None);
        assert_eq!(c.baseline, 10_000);
        assert_eq!(p.taken, 0);
        // Idle afterwards: nothing pending.
        let (v, c) = s.judge(c, &mut p, 10_000, t + Duration::from_secs(60));
        assert_eq!(v, None);
        assert!(c.pending_since.is_none());
    }

    #[test]
    fn an_announced_body_may_arrive_slowly_while_its_request_is_in_progress() {
        let s = sup();
        let mut p = Peer {
            taken: 300,
            bodies: 500_000,
            in_progress: 1,
            touched: Instant::now(),
        };
        let t = Instant::now();
        let (v, c) = s.judge(conn(), &mut p, 10_300, t);
        assert_eq!(v, None);
        // Much later, still uploading: not a slow head.
        let (v, c) = s.judge(c, &mut p, 400_000, t + Duration::from_secs(30));
        assert_eq!(v, None);
        // But not more than announced plus one head.
        let (v, _) = s.judge(c, &mut p, 600_000, t + Duration::from_secs(31));
        assert_eq!(v, Some(Reason::HeadTooLarge));
    }

    #[test]
    fn a_dripping_head_is_cut_after_the_read_timeout() {
        let s = sup();
        let mut p = Peer::new(Instant::now());
        let t = Instant::now();
        let (v, c) = s.judge(conn(), &mut p, 10, t);
        assert_eq!(v, None);
        let (v, c) = s.judge(c, &mut p, 20, t + Duration::from_secs(1));
        assert_eq!(v, None);
        let (v, _) = s.judge(c, &mut p, 30, t + Duration::from_secs(3));
        assert_eq!(v, Some(Reason::HeadTooSlow));
    }
}
