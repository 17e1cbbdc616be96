//! `/healthz` tells the truth, and SIGTERM stops the server gracefully (src/lifecycle.rs).

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{eventually, market::COUNTRY, TestServer};

fn health(server: &TestServer) -> (u16, String) {
    let r = server.client().get("/healthz");
    (r.status, r.text())
}

/// `otpbox healthcheck --url …/healthz`: its exit code and what it printed.
fn healthcheck(server: &TestServer) -> (bool, String) {
    let url = format!("http://{}/healthz", server.addr());
    let out = server.cli(&["healthcheck", "--url", &url]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

#[test]
fn healthz_is_503_while_the_scheduler_is_stuck() {
    let server = TestServer::start_with(&[("OTPBOX_DEV_CLOCK", "1")]);
    assert!(eventually(Duration::from_secs(10), || health(&server).0 == 200));
    assert_eq!(health(&server).1, "ok");
    assert_eq!(healthcheck(&server), (true, "200 ok".to_string()));
    let mut c = server.client();
    assert_eq!(c.post("/__dev/scheduler?paused=1", b"").status, 200);
    // Two minutes of the server's time without a tick are still fine; a second more is not.
    server.advance_clock(115);
    assert_eq!(health(&server).0, 200);
    server.advance_clock(10);
    let (status, text) = health(&server);
    assert_eq!(status, 503);
    assert!(
        text.starts_with("unhealthy: scheduler has not run for"),
        "{text}"
    );
    let (ok, said) = healthcheck(&server);
    assert!(
        !ok && said.starts_with("503 unhealthy: scheduler"),
        "{said}"
    );
    assert_eq!(c.post("/__dev/scheduler?paused=0", b"").status, 200);
    assert!(eventually(Duration::from_secs(10), || health(&server).0 == 200));
}

#[test]
fn healthz_is_503_while_the_database_takes_no_writes() {
    let server = TestServer::start();
    assert!(eventually(Duration::from_secs(10), || health(&server).0 == 200));
    // Another process holds the write lock: reads still work, writes wait and fail.
    let db = server.db();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    assert!(
        eventually(Duration::from_secs(20), || {
            let (status, text) = health(&server);
            status == 503 && text.starts_with("unhealthy: database does not take writes")
        }),
        "{:?}",
        health(&server)
    );
    db.execute_batch("COMMIT").unwrap();
    assert!(eventually(Duration::from_secs(20), || health(&server).0 == 200));
}

/// What the load clients were told.
#[derive(Default)]
struct Told {
    ordered: Vec<i64>,
    canceled: Vec<i64>,
    /// Responses that began but did not end.
    cut: Vec<String>,
}

/// One request on a kept-alive connection; `None` when the connection was closed or refused
/// before any byte of an answer (the request then did nothing the client was told of).
fn ask(stream: &mut TcpStream, path: &str, told: &Mutex<Told>) -> Option<String> {
    let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    if stream.write_all(head.as_bytes()).is_err() {
        return None;
    }
    match common::read_response(stream, false) {
        Ok(r) => Some(r.text()),
        Err(e)
            if e.to_string() == "connection closed before a response"
                || e.kind() == std::io::ErrorKind::ConnectionReset =>
        {
            None
        }
        Err(e) => {
            told.lock().unwrap().cut.push(format!("{path}: {e}"));
            None
        }
    }
}

#[test]
fn sigterm_during_load_cuts_no_answer_and_loses_no_acknowledged_order() {
    let mut server =
        TestServer::start_with(&[("OTPBOX_API_RATE", "0"), ("OTPBOX_EARLY_CANCEL", "0")]);
    let phones: Vec<String> = (0..300).map(|i| format!("62811{i:07}")).collect();
    server.add_numbers(
        COUNTRY,
        &phones.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    server.create_user("load@example.com", "user", common::PASSWORD);
    server.cli_ok(&[
        "user",
        "credit",
        "--email",
        "load@example.com",
        "--amount",
        "1000.00",
    ]);
    let key = server
        .cli_ok(&["key", "create", "--email", "load@example.com"])
        .trim()
        .to_string();
    let told = Arc::new(Mutex::new(Told::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let addr = server.addr();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (told, stop, key) = (told.clone(), stop.clone(), key.clone());
            std::thread::spawn(move || {
                let api = |q: &str| format!("/stubs/handler_api.php?api_key={key}&{q}");
                while !stop.load(Ordering::SeqCst) {
                    // A refused connection: the server has stopped accepting.
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        return;
                    };
                    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    loop {
                        let q = format!("action=getNumber&service=tg&country={COUNTRY}");
                        let Some(body) = ask(&mut s, &api(&q), &told) else {
                            break;
                        };
                        let Some(id) = body
                            .strip_prefix("ACCESS_NUMBER:")
                            .and_then(|r| r.split(':').next())
                            .and_then(|id| id.parse::<i64>().ok())
                        else {
                            continue; // NO_NUMBERS while the pool cools down
                        };
                        told.lock().unwrap().ordered.push(id);
                        let q = format!("action=setStatus&status=8&id={id}");
                        let Some(body) = ask(&mut s, &api(&q), &told) else {
                            break;
                        };
                        if body == "ACCESS_CANCEL" {
                            told.lock().unwrap().canceled.push(id);
                        }
                    }
                }
            })
        })
        .collect();
    assert!(eventually(Duration::from_secs(20), || told
        .lock()
        .unwrap()
        .ordered
        .len()
        >= 20));
    let pid = server.pid().to_string();
    let sent = Instant::now();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert!(
        eventually(Duration::from_secs(20), || !server.is_running()),
        "still running 20 s after SIGTERM"
    );
    let took = sent.elapsed();
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let told = told.lock().unwrap();
    assert!(told.cut.is_empty(), "answers cut mid-way: {:?}", told.cut);
    assert!(server.output().contains("SIGTERM: stopping"));
    assert!(server.output().contains("stopped"), "{took:?}");
    // Every order and cancel the clients were told of is in the database, with its money.
    let db = server.db();
    for id in &told.ordered {
        let status: String = db
            .query_row("SELECT status FROM activations WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap_or_else(|e| panic!("acknowledged order {id} lost: {e}"));
        if told.canceled.contains(id) {
            assert_eq!(status, "canceled", "order {id}");
        }
    }
    drop(db);
    let check = server.cli(&["check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[test]
fn metrics_are_not_there_without_a_token_and_have_their_own_address_if_asked() {
    let server = TestServer::start();
    assert_eq!(server.client().get("/metrics").status, 404);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let server = TestServer::start_with(&[("OTPBOX_METRICS_LISTEN", &listen)]);
    // Still not on the main listener without a token.
    assert_eq!(server.client().get("/metrics").status, 404);
    let ask = |path: &str| {
        let mut s = TcpStream::connect(&listen).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        common::read_response(&mut s, false).unwrap()
    };
    let r = ask("/metrics");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")));
    let text = r.text();
    assert!(text.contains("\notpbox_database_up 1\n"), "{text}");
    assert!(
        text.contains("# TYPE otpbox_http_requests_total counter"),
        "{text}"
    );
    assert_eq!(ask("/healthz").status, 404);
}
