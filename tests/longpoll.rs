//! Long-poll reads (`GET /api/v1/activations/{id}?wait=N` and handler_api's
//! `getStatus&wait=N`): they answer as soon as the state
//! changes, whoever changed it (this process or the CLI), they do not occupy workers while
//! they wait, and past `max_waiting` they are answered at once.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::TestServer;

/// A demo server (simulator on, demo customer with a balance) whose simulated SMS only
/// arrives when a test moves the clock, with two workers.
fn server(extra: &[(&str, &str)]) -> TestServer {
    TestServer::builder()
        .envs(&[
            ("OTPBOX_DEMO", "true"),
            ("OTPBOX_DEV_CLOCK", "true"),
            ("OTPBOX_SIM_DELAY", "10m"),
            ("OTPBOX_WORKERS", "2"),
        ])
        .envs(extra)
        .start()
}

fn demo_key(s: &TestServer) -> String {
    s.cli_ok(&["key", "create", "--email", "demo@example.com"])
        .trim()
        .to_string()
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Orders a number through the API; returns (activation id, phone).
fn order(s: &TestServer, key: &str) -> (i64, String) {
    let auth = format!("Bearer {key}");
    let r = s.client().request(
        "POST",
        "/api/v1/activations",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        br#"{"country": 6, "service": "tg"}"#,
    );
    assert_eq!(r.status, 201, "order: {}", r.text());
    let v = r.json();
    (
        v["id"].as_i64().unwrap(),
        v["phone"].as_str().unwrap().into(),
    )
}

/// Starts a long-poll read on its own thread; joins to (status, body, seconds taken).
fn poll(s: &TestServer, key: &str, id: i64, wait: u32) -> thread::JoinHandle<(u16, String, f64)> {
    let mut c = s.client();
    let auth = format!("Bearer {key}");
    thread::spawn(move || {
        let t = Instant::now();
        let r = c.request(
            "GET",
            &format!("/api/v1/activations/{id}?wait={wait}"),
            &[("Authorization", &auth)],
            b"",
        );
        (r.status, r.text(), t.elapsed().as_secs_f64())
    })
}

/// Gives just-started readers time to reach the server and be parked.
fn settle() {
    thread::sleep(Duration::from_millis(400));
}

#[test]
fn a_waiting_read_returns_when_the_simulated_sms_arrives_and_holds_no_worker() {
    let s = server(&[]);
    let key = demo_key(&s);
    let (id, _) = order(&s, &key);

    // More waiting readers than workers: if they held workers, nothing else would be served.
    let waiting: Vec<_> = (0..6).map(|_| poll(&s, &key, id, 25)).collect();
    settle();
    let t = Instant::now();
    let health = s.client().get("/healthz");
    assert_eq!(health.status, 200);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "healthz took {:?} while 6 reads waited on 2 workers",
        t.elapsed()
    );
    assert!(
        waiting.iter().all(|h| !h.is_finished()),
        "nobody answered yet"
    );

    // The simulator's SMS is due in ten minutes of clock time: move the clock, run the jobs.
    s.advance_clock(600);
    s.run_jobs();
    for h in waiting {
        let (status, body, secs) = h.join().unwrap();
        assert_eq!(status, 200, "{body}");
        let v = json(&body);
        assert_eq!(v["status"], "received", "{body}");
        assert!(v["code"].is_string(), "{body}");
        assert!(secs < 10.0, "answered after {secs:.1}s, not at once");
    }
}

#[test]
fn a_code_injected_by_the_cli_ends_the_wait() {
    let s = server(&[]);
    let key = demo_key(&s);
    let (id, phone) = order(&s, &key);
    let waiting = poll(&s, &key, id, 25);
    settle();
    s.cli_ok(&[
        "sms",
        "inject",
        "--to",
        &phone,
        "--from",
        "Telegram",
        "--text",
        "Telegram code 48213",
    ]);
    let (status, body, secs) = waiting.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["code"], "48213", "{body}");
    assert!(secs < 10.0, "answered after {secs:.1}s");
}

#[test]
fn the_wait_ends_with_the_unchanged_state_even_past_the_read_timeout() {
    // The connection's read timeout is shorter than the wait: the parked answer must still
    // reach the client.
    let s = server(&[("OTPBOX_READ_TIMEOUT", "1s")]);
    let key = demo_key(&s);
    let (id, _) = order(&s, &key);
    let (status, body, secs) = poll(&s, &key, id, 3).join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["status"], "waiting");
    assert!((2.5..10.0).contains(&secs), "answered after {secs:.1}s");
}

#[test]
fn past_max_waiting_a_read_is_answered_at_once() {
    let s = server(&[("OTPBOX_MAX_WAITING", "2")]);
    let key = demo_key(&s);
    let (id, _) = order(&s, &key);
    let held: Vec<_> = (0..2).map(|_| poll(&s, &key, id, 20)).collect();
    settle();
    let (status, body, secs) = poll(&s, &key, id, 20).join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["status"], "waiting");
    assert!(secs < 2.0, "the third reader waited {secs:.1}s");
    assert!(held.iter().all(|h| !h.is_finished()));

    // A final state is never held: cancel after the early-cancel window, then wait.
    s.advance_clock(200);
    let auth = format!("Bearer {key}");
    let r = s.client().request(
        "POST",
        &format!("/api/v1/activations/{id}/cancel"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for h in held {
        let (_, body, _) = h.join().unwrap();
        assert_eq!(json(&body)["status"], "canceled", "{body}");
    }
    let (_, body, secs) = poll(&s, &key, id, 20).join().unwrap();
    assert_eq!(json(&body)["status"], "canceled");
    assert!(secs < 2.0, "a final state was held {secs:.1}s");
}

#[test]
fn errors_are_not_held() {
    let s = server(&[]);
    let key = demo_key(&s);
    let (status, body, secs) = poll(&s, &key, 999_999, 20).join().unwrap();
    assert_eq!(status, 404, "{body}");
    assert!(secs < 2.0);
}

#[test]
fn handler_api_get_status_waits_for_the_code() {
    let s = server(&[]);
    let key = demo_key(&s);
    let (id, _) = order(&s, &key);
    let url = format!("/stubs/handler_api.php?api_key={key}&action=getStatus&id={id}&wait=25");
    let waiting: Vec<_> = (0..4)
        .map(|_| {
            let mut c = s.client();
            let url = url.clone();
            thread::spawn(move || {
                let t = Instant::now();
                let r = c.get(&url);
                (r.text(), t.elapsed().as_secs_f64())
            })
        })
        .collect();
    settle();
    assert!(waiting.iter().all(|h| !h.is_finished()));
    // Without wait the answer is immediate and unchanged.
    let now = s.client().get(&url.replace("&wait=25", ""));
    assert_eq!(now.text(), "STATUS_WAIT_CODE");
    s.advance_clock(600);
    s.run_jobs();
    for h in waiting {
        let (body, secs) = h.join().unwrap();
        assert!(body.starts_with("STATUS_OK:"), "{body}");
        assert!(secs < 10.0, "answered after {secs:.1}s");
    }
}

#[test]
fn an_answer_queued_behind_a_waiting_read_on_its_connection_holds_no_cpu_slot() {
    // The default workers (two per core), so that as many stand in as take requests.
    let s = TestServer::builder()
        .envs(&[
            ("OTPBOX_DEMO", "true"),
            ("OTPBOX_DEV_CLOCK", "true"),
            ("OTPBOX_SIM_DELAY", "10m"),
        ])
        .start();
    let key = demo_key(&s);
    let (id, _) = order(&s, &key);
    // One connection per CPU slot, each with a waiting read and, pipelined behind it, a
    // request whose answer tiny_http cannot write before the read's.
    let slots = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let mut conns = Vec::new();
    for _ in 0..slots {
        let mut c = s.connect();
        let both = format!(
            "GET /api/v1/activations/{id}?wait=25 HTTP/1.1\r\nHost: test\r\n\
             Authorization: Bearer {key}\r\n\r\n\
             GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"
        );
        std::io::Write::write_all(&mut c, both.as_bytes()).unwrap();
        conns.push(c);
    }
    settle();
    for _ in 0..5 {
        let t = Instant::now();
        let health = s.client().get("/healthz");
        assert_eq!(health.status, 200);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "healthz took {:?} with {slots} answers queued behind waiting reads",
            t.elapsed()
        );
    }
    // Both answers arrive, in order, once the reads end.
    s.advance_clock(600);
    s.run_jobs();
    for mut c in conns {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.ends_with(b"\r\n\r\nok") {
            let n = std::io::Read::read(&mut c, &mut buf).expect("both answers within 10 s");
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got);
        let received = text.find("\"received\"").expect("the read's answer first");
        let second = text.rfind("HTTP/1.1 200").unwrap();
        assert!(received < second, "{text}");
    }
}
