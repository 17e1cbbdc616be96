//! The connection supervisor (src/http/server/supervisor.rs): limits tiny_http cannot apply while it
//! reads a request head on its own thread — an endless header line, a head dripped a byte at
//! a time, and more connections than `max_connections`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::TestServer;

/// Writes `chunk` until the server closes the connection; the bytes written by then.
fn write_until_closed(stream: &mut TcpStream, chunk: &[u8], cap: usize) -> usize {
    let mut sent = 0;
    while sent < cap {
        match stream.write(chunk) {
            Ok(n) => sent += n,
            Err(_) => return sent,
        }
    }
    panic!("the server accepted {cap} bytes of one header line");
}

#[test]
fn an_endless_header_line_is_cut_off_and_memory_stays_bounded() {
    let server = TestServer::start();
    let rss_before = server.proc_status("VmRSS");
    let mut s = server.connect();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Flood: ")
        .unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    // 512 MiB would be far more than the head limit (about 48 KiB) plus what the kernel
    // buffers; the connection must be shut long before.
    let sent = write_until_closed(&mut s, &chunk, 512 * 1024 * 1024);
    let rss_after = server.proc_status("VmRSS");
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB after a {sent}-byte header line"
    );
    assert!(common::eventually(Duration::from_secs(5), || server
        .output()
        .contains("request head over the size limit")));
    // The server lives on.
    assert_eq!(server.client().get("/healthz").status, 200);
}

#[test]
fn a_head_dripped_byte_by_byte_is_cut_after_the_read_timeout() {
    // Each byte comes well within the socket's read timeout, so only the supervisor's head
    // deadline can end this.
    let server = TestServer::start_with(&[("OTPBOX_READ_TIMEOUT", "2s")]);
    let mut s = server.connect();
    s.write_all(b"G").unwrap();
    let started = Instant::now();
    let head = b"ET /healthz HTTP/1.1\r\nX-Slow: ";
    let mut closed = false;
    for b in head.iter().chain(std::iter::repeat(&b'z')).take(100) {
        std::thread::sleep(Duration::from_millis(250));
        if s.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        let eof = matches!(s.read(&mut buf), Ok(0));
        s.set_nonblocking(false).unwrap();
        if eof {
            closed = true;
            break;
        }
    }
    let took = started.elapsed();
    assert!(closed, "the dripping connection was never closed");
    assert!(
        took < Duration::from_secs(8),
        "closed only after {took:?} with a 2 s read timeout"
    );
    assert!(server
        .output()
        .contains("not complete within the read timeout"));
}

#[test]
fn connections_beyond_max_connections_are_closed_and_threads_stay_bounded() {
    let server = TestServer::start_with(&[("OTPBOX_MAX_CONNECTIONS", "20")]);
    let threads_before = server.proc_status("Threads");
    // Each sends half a head so it is accepted and gets a tiny_http thread.
    let mut conns: Vec<TcpStream> = (0..80)
        .map(|_| {
            let mut s = server.connect();
            s.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    // tiny_http's pool lets a thread whose connection ended idle for 5 s before it exits.
    assert!(
        common::eventually(Duration::from_secs(15), || {
            server.proc_status("Threads") <= threads_before + 20 + 12
        }),
        "threads: {} before, {} now",
        threads_before,
        server.proc_status("Threads")
    );
    // Most of the surplus was closed by the server.
    let mut closed = 0;
    for s in &mut conns {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            _ => {}
        }
    }
    assert!(closed >= 50, "only {closed} of 80 connections were closed");
    assert_eq!(server.client().get("/healthz").status, 200);
    assert!(server
        .output()
        .contains("more connections than max_connections"));
}

#[test]
fn a_busy_keep_alive_connection_is_never_cut() {
    // Thousands of requests on one connection add up to far more than the head limit: the
    // requests account for those bytes.
    let server = TestServer::start();
    let mut s = server.connect();
    s.set_nodelay(true).unwrap();
    let mut reader = std::io::BufReader::new(s.try_clone().unwrap());
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(2) {
        let pad = "p".repeat(2000);
        let head = format!("GET /healthz?{pad} HTTP/1.1\r\nHost: x\r\n\r\n");
        s.write_all(head.as_bytes()).unwrap();
        let r = common::read_response(&mut reader, false).expect("an answer");
        assert_eq!(r.status, 200);
        n += 1;
    }
    assert!(n > 100, "only {n} requests");
    assert!(!server.output().contains("closed the connection"));
}

/// Every connection gets a thread at once, whatever the others do (src/http/server/handoff.rs):
/// 64 kept-alive connections that each sent one request and then sit idle hold 64 threads,
/// and 8 connections opened together afterwards are each answered, while the 64 stay open.
/// The bound is generous so the test never flakes on a loaded machine; `otpbox bench` carries
/// the real latency target.
#[test]
fn new_connections_are_served_while_kept_alive_ones_sit_idle() {
    let server = TestServer::start();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut idle: Vec<TcpStream> = (0..64)
        .map(|_| {
            let mut s = server.connect();
            s.write_all(request).unwrap();
            let r = common::read_response(&mut s, false).expect("an answer");
            assert_eq!(r.status, 200);
            s
        })
        .collect();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let addr = server.addr();
    let fresh: Vec<_> = (0..8)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let started = Instant::now();
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    .unwrap();
                let r = common::read_response(&mut s, false).expect("an answer within 5 s");
                (r.status, started.elapsed())
            })
        })
        .collect();
    for t in fresh {
        let (status, took) = t.join().unwrap();
        assert_eq!(status, 200);
        assert!(
            took < Duration::from_secs(1),
            "a new connection waited {took:?}"
        );
    }
    // The 64 are still open and served.
    for s in &mut idle {
        s.write_all(request).unwrap();
        let r = common::read_response(s, false).expect("a kept-alive connection still served");
        assert_eq!(r.status, 200);
    }
}

/// A burst of connections on a freshly started server, all kept alive: each is answered at
/// once (tiny_http's own pool left some of them queued behind the others until a supervisor
/// nudge, one per 500 ms). Same generous bound as above.
#[test]
fn a_burst_of_new_connections_on_a_fresh_server_is_answered_at_once() {
    let server = TestServer::start();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(32));
    let addr = server.addr();
    let burst: Vec<_> = (0..32)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                barrier.wait();
                let started = Instant::now();
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    .unwrap();
                let answer = common::read_response(&mut s, false).map(|r| r.status);
                // The connection stays open (returned) until every one has been answered.
                (answer, started.elapsed(), s)
            })
        })
        .collect();
    let results: Vec<_> = burst.into_iter().map(|t| t.join().unwrap()).collect();
    for (answer, took, _) in &results {
        assert_eq!(
            answer.as_ref().ok(),
            Some(&200),
            "{answer:?} after {took:?}"
        );
        assert!(
            *took < Duration::from_secs(1),
            "a connection waited {took:?}"
        );
    }
}

/// The server runs without glibc's per-thread caches of freed memory (one per connection
/// thread, 1.5 MiB of an idle server's heap in the bench): it started itself again, in the
/// same process, with them turned off; a setting of its own in `GLIBC_TUNABLES` is kept.
#[test]
fn the_server_runs_without_glibcs_thread_caches() {
    let tunables = |server: &TestServer| {
        let env = std::fs::read(format!("/proc/{}/environ", server.pid())).unwrap();
        env.split(|b| *b == 0)
            .find_map(|v| v.strip_prefix(b"GLIBC_TUNABLES="))
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let server = TestServer::start();
    assert_eq!(
        tunables(&server).as_deref(),
        Some("glibc.malloc.tcache_count=0")
    );
    assert_eq!(server.client().get("/healthz").status, 200);
    drop(server);
    let server = TestServer::start_with(&[("GLIBC_TUNABLES", "glibc.malloc.tcache_count=3")]);
    assert_eq!(
        tunables(&server).as_deref(),
        Some("glibc.malloc.tcache_count=3")
    );
}
