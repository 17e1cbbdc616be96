//! The HTTP layer's limits and robustness: size limits, slow and idle clients, running out
//! of file descriptors, security headers, caching of assets, HEAD, 404 and 405.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{eventually, read_response, TestServer};

/// Reads until the server closes the connection; returns how long that took, or panics if
/// it stays open past `limit`.
fn time_until_closed(mut stream: TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("connection still open after {limit:?}")
            }
            // A reset is a close too.
            Err(_) => return started.elapsed(),
        }
    }
}

/// GET /healthz on a fresh connection; the status and how long the answer took.
fn healthz_timed(server: &TestServer) -> (u16, Duration) {
    let started = Instant::now();
    let r = server.client().get("/healthz");
    (r.status, started.elapsed())
}

#[test]
fn healthz_answers_ok() {
    let server = TestServer::start();
    let r = server.client().get("/healthz");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.text(), "ok");
}

#[test]
fn body_over_1_mib_is_refused_with_413_before_it_is_sent() {
    let server = TestServer::start();
    let mut conn = server.connect();
    conn.write_all(
        b"POST /signup HTTP/1.1\r\nHost: test\r\n\
          Content-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 2097152\r\n\r\n",
    )
    .unwrap();
    conn.write_all(&[b'a'; 4096]).unwrap();
    let r = read_response(&mut conn, false).unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.text(), "request body larger than 1 MiB");
    assert_eq!(server.client().get("/healthz").status, 200);
}

#[test]
fn absurd_content_length_is_refused_with_413_and_the_server_survives() {
    let mut server = TestServer::start();
    let mut conn = server.connect();
    conn.write_all(
        b"POST /signup HTTP/1.1\r\nHost: test\r\nContent-Length: 100000000000\r\n\r\nabc",
    )
    .unwrap();
    let r = read_response(&mut conn, false).unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.text(), "request body larger than 1 MiB");
    assert_eq!(r.header("connection"), Some("close"));
    time_until_closed(conn, Duration::from_secs(10));
    assert_eq!(server.client().get("/healthz").status, 200);
    assert!(server.is_running());
}

#[test]
fn url_of_8_kib_is_served_and_one_byte_more_is_refused_with_414() {
    let server = TestServer::start();
    let prefix = "/healthz?pad=";
    let at_limit = format!("{prefix}{}", "a".repeat(8192 - prefix.len()));
    assert_eq!(at_limit.len(), 8192);
    let r = server.client().get(&at_limit);
    assert_eq!(r.status, 200);
    let over = format!("{at_limit}a");
    let r = server.client().get(&over);
    assert_eq!(r.status, 414);
    assert_eq!(r.text(), "URL too long");
}

#[test]
fn hundred_headers_are_served_and_one_more_is_refused_with_431() {
    let server = TestServer::start();
    // The client always sends Host and Connection.
    let names: Vec<String> = (0..99).map(|i| format!("X-Filler-{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let r = server
        .client()
        .request("GET", "/healthz", &headers[..98], b"");
    assert_eq!(r.status, 200);
    let r = server.client().request("GET", "/healthz", &headers, b"");
    assert_eq!(r.status, 431);
    assert_eq!(r.text(), "request headers too large");
}

#[test]
fn headers_over_32_kib_are_refused_with_431() {
    let server = TestServer::start();
    let big = "x".repeat(33 * 1024);
    let r = server
        .client()
        .request("GET", "/healthz", &[("X-Big", &big)], b"");
    assert_eq!(r.status, 431);
}

#[test]
fn stalled_clients_do_not_block_other_requests() {
    let server = TestServer::start_with(&[("OTPBOX_WORKERS", "1"), ("OTPBOX_READ_TIMEOUT", "60s")]);
    let mut stalled = Vec::new();
    for _ in 0..4 {
        // Half a request head, then nothing.
        let mut c = server.connect();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: te").unwrap();
        stalled.push(c);
        // A complete head announcing 10 KiB of body, and only 100 bytes of it.
        let mut c = server.connect();
        c.write_all(
            b"POST /signup HTTP/1.1\r\nHost: test\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 10240\r\n\r\n",
        )
        .unwrap();
        c.write_all(&[b'a'; 100]).unwrap();
        stalled.push(c);
        // A small body held back until `100 Continue`, then never sent.
        let mut c = server.connect();
        c.write_all(
            b"POST /signup HTTP/1.1\r\nHost: test\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Expect: 100-continue\r\nContent-Length: 500\r\n\r\n",
        )
        .unwrap();
        stalled.push(c);
    }
    // Give the server a moment to take the stalled requests in before measuring.
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        let (status, took) = healthz_timed(&server);
        assert_eq!(status, 200);
        assert!(took < Duration::from_secs(2), "healthz took {took:?}");
    }
    drop(stalled);
}

/// `curl --http2 http://…` asks for an h2c upgrade on a request with no body; the upgrade is
/// not granted and the answer comes at once over HTTP/1.1 (reading "the body" of such a
/// request used to wait for the read timeout and answer 400). A small body under an upgrade
/// is read by its announced length.
#[test]
fn an_upgrade_request_is_answered_at_once_over_http_1_1() {
    let server = TestServer::start();
    let mut c = server.connect();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(
        b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    )
    .unwrap();
    let r = read_response(&mut c, false).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));

    let mut c = server.connect();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(
        b"POST /login HTTP/1.1\r\nHost: test\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\
          Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\nemail=x",
    )
    .unwrap();
    let r = read_response(&mut c, false).unwrap();
    assert!(
        r.status < 500 && r.status != 408,
        "{} {}",
        r.status,
        r.text()
    );
}

#[test]
fn idle_connections_are_closed_after_the_read_timeout() {
    let server = TestServer::start_with(&[("OTPBOX_READ_TIMEOUT", "2s")]);
    let silent = server.connect();
    let mut partial = server.connect();
    partial.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let mut kept_alive = server.connect();
    kept_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut kept_alive, false).unwrap().status, 200);

    let waits: Vec<_> = [silent, partial, kept_alive]
        .into_iter()
        .map(|c| std::thread::spawn(move || time_until_closed(c, Duration::from_secs(15))))
        .collect();
    let took: Vec<Duration> = waits.into_iter().map(|w| w.join().unwrap()).collect();
    // A connection that sent nothing is first held back by TCP_DEFER_ACCEPT (a few SYN-ACK
    // retransmissions), then read with the same timeout.
    assert!(
        took[0] >= Duration::from_secs(1) && took[0] < Duration::from_secs(10),
        "silent: {:?}",
        took[0]
    );
    assert!(
        took[1] >= Duration::from_secs(1) && took[1] < Duration::from_secs(5),
        "partial head: {:?}",
        took[1]
    );
    assert!(
        took[2] >= Duration::from_secs(1) && took[2] < Duration::from_secs(5),
        "keep-alive: {:?}",
        took[2]
    );
}

#[test]
fn keep_alive_connection_is_served_across_idle_periods() {
    // With no other traffic the accept loop restarts every read timeout (the listener's
    // SO_RCVTIMEO also bounds accept); requests on a connection accepted before a restart
    // must still be answered.
    // 3 s leaves a margin over the 1.5 s pauses for a machine busy with other work.
    let server = TestServer::start_with(&[("OTPBOX_READ_TIMEOUT", "3s")]);
    let mut conn = server.connect();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for i in 0..5 {
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            .unwrap();
        let r = read_response(&mut conn, false)
            .unwrap_or_else(|e| panic!("request {i} on the kept-alive connection: {e}"));
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.text(), "ok");
        // Less than the read timeout: the connection stays open, but the accept loop, with
        // no new connection, times out in between.
        std::thread::sleep(Duration::from_millis(1500));
    }
}

#[test]
fn three_hundred_idle_connections_do_not_stop_healthz() {
    let server = TestServer::start_with(&[("OTPBOX_READ_TIMEOUT", "60s")]);
    let mut idle = Vec::new();
    for i in 0..300 {
        let mut c = server.connect();
        if i % 2 == 0 {
            // Half of them with a partial head, so they hold a connection thread.
            c.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        }
        idle.push(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        let (status, took) = healthz_timed(&server);
        assert_eq!(status, 200);
        assert!(took < Duration::from_secs(2), "healthz took {took:?}");
    }
    drop(idle);
}

#[test]
fn server_recovers_after_running_out_of_file_descriptors() {
    let server = TestServer::builder().open_files_limit(64).start();
    assert_eq!(server.client().get("/healthz").status, 200);
    // Descriptors can run out in accept itself or right after it, in tiny_http's accept
    // thread (which then panics); which one happens depends on how many are left, so
    // exhaust them a few times with a different number of connections.
    let exhausted = |out: &str| out.matches("Too many open files").count();
    for (round, connections) in [80, 81, 120].into_iter().enumerate() {
        let before = exhausted(&server.output());
        let mut hogs = Vec::new();
        for _ in 0..connections {
            let mut c = server.connect();
            // Sending something gets the connection past TCP_DEFER_ACCEPT into tiny_http.
            c.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
            hogs.push(c);
        }
        assert!(
            eventually(Duration::from_secs(10), || exhausted(&server.output())
                > before),
            "round {round}: the server never ran out of descriptors; output:\n{}",
            server.output()
        );
        drop(hogs);
        // Until the server has closed its side of those connections, a new one may still be
        // accepted without a descriptor to spare and be reset.
        let answered = eventually(Duration::from_secs(10), || {
            let r = server.client().try_request("GET", "/healthz", &[], b"");
            r.is_ok_and(|r| r.status == 200)
        });
        assert!(
            answered,
            "round {round}: no answer; output:\n{}",
            server.output()
        );
        assert_eq!(server.client().get("/healthz").status, 200);
    }
}

#[test]
fn html_responses_carry_security_headers() {
    let server = TestServer::start();
    let (mut admin, _) = server.signed_in("admin@example.com", "admin");
    let mut anonymous = server.client();
    let mut pages = Vec::new();
    for path in [
        "/",
        "/login",
        "/signup",
        "/privacy",
        "/aup",
        "/terms",
        "/password/forgot",
        "/no/such/page",
    ] {
        pages.push((path, anonymous.get(path)));
    }
    for path in [
        "/dashboard",
        "/settings",
        "/admin",
        "/admin/users",
        "/admin/jobs",
        "/admin/outbox",
        "/admin/audit",
    ] {
        pages.push((path, admin.get(path)));
    }
    for (path, r) in pages {
        assert!(
            r.is_html(),
            "{path} is not HTML: {:?}",
            r.header("content-type")
        );
        let csp = r.header("content-security-policy").unwrap_or("");
        assert!(
            csp.contains("frame-ancestors 'none'"),
            "{path}: CSP {csp:?}"
        );
        assert!(csp.contains("default-src 'none'"), "{path}: CSP {csp:?}");
        assert!(!csp.contains("unsafe-inline"), "{path}: CSP {csp:?}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("referrer-policy"), Some("same-origin"), "{path}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        // Nothing the policy would block: no inline styles or scripts.
        let html = r.text();
        assert!(!html.contains(" style="), "{path} has an inline style");
        assert!(!html.contains("<style"), "{path} has a style element");
        assert_eq!(
            html.matches("<script").count(),
            html.matches("<script src=").count(),
            "{path} has an inline script"
        );
    }
}

#[test]
fn assets_have_an_etag_and_revalidate_with_304() {
    let server = TestServer::start();
    let r = server.client().get("/assets/app.css");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(!r.body.is_empty());
    let etag = r.header("etag").expect("an ETag").to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "{etag}"
    );
    let again = server
        .client()
        .request("GET", "/assets/app.css", &[("If-None-Match", &etag)], b"");
    assert_eq!(again.status, 304);
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let stale = server.client().request(
        "GET",
        "/assets/app.css",
        &[("If-None-Match", "\"old\"")],
        b"",
    );
    assert_eq!(stale.status, 200);
}

#[test]
fn head_answers_the_headers_of_get_without_a_body() {
    let server = TestServer::start();
    for path in ["/", "/healthz", "/assets/app.css"] {
        let mut conn = server.connect();
        conn.write_all(
            format!("HEAD {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
        assert!(head.starts_with("HTTP/1.1 200"), "HEAD {path}: {head}");
        assert_eq!(body, "", "HEAD {path} sent a body");
        let get = server.client().get(path);
        let content_type = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Type: "))
            .map(str::to_string);
        assert_eq!(
            content_type.as_deref(),
            get.header("content-type"),
            "{path}"
        );
    }
}

#[test]
fn unknown_path_answers_a_404_page() {
    let server = TestServer::start();
    let r = server.client().get("/no/such/page");
    assert_eq!(r.status, 404);
    assert!(r.is_html());
    assert!(r.text().contains("There is nothing at this address."));
}

#[test]
fn wrong_method_answers_405_with_the_allowed_ones() {
    let server = TestServer::start();
    let r = server.client().request("PUT", "/healthz", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    assert!(r
        .text()
        .contains("This address does not accept that method."));
    let r = server.client().request("DELETE", "/login", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, POST"));
}
