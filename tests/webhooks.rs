//! Customer webhooks end to end: a tiny receiver in the test (a `TcpListener` thread that
//! records every request and can fail the first N) and the real server in demo mode with the
//! dev clock. Back-off is proven by moving the clock and running the jobs, never by sleeping.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestServer;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const DEMO: &str = "demo@example.com";
/// How long the receiver takes to answer the one slow request of a test.
const SLOW: Duration = Duration::from_millis(1500);

// ---------------------------------------------------------------------------------------
// The receiver

#[derive(Debug, Clone)]
struct Hit {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// What the receiver answered.
    status: u16,
}

impl Hit {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn delivery(&self) -> &str {
        self.header("x-otpbox-delivery").expect("X-Otpbox-Delivery")
    }

    fn event(&self) -> &str {
        self.header("x-otpbox-event").expect("X-Otpbox-Event")
    }
}

/// Records every request; answers 500 to the first `fail_first`, then 200.
struct Receiver {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    fn start(fail_first: usize) -> Receiver {
        Receiver::start_slow(fail_first, usize::MAX, Duration::ZERO)
    }

    /// Like [`Receiver::start`], and waits `delay` before answering request number `slow`
    /// (0-based): a delivery attempt whose duration the server must measure.
    fn start_slow(fail_first: usize, slow: usize, delay: Duration) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::new(AtomicUsize::new(0));
        let record = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let Some((path, headers, body)) = common::read_request(&mut stream) else {
                    continue;
                };
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let status = if n < fail_first { 500 } else { 200 };
                if n == slow {
                    std::thread::sleep(delay);
                }
                // Recorded before answering: once the server has the answer, the test sees it.
                record.lock().unwrap().push(Hit {
                    path,
                    headers,
                    body,
                    status,
                });
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    )
                    .as_bytes(),
                );
            }
        });
        Receiver { addr, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------
// Helpers

fn server(allow_private: bool, extra: &[(&str, &str)]) -> TestServer {
    TestServer::builder()
        .env("OTPBOX_DEMO", "true")
        .env("OTPBOX_DEV_CLOCK", "true")
        .env(
            "OTPBOX_WEBHOOK_ALLOW_PRIVATE",
            if allow_private { "true" } else { "false" },
        )
        .envs(extra)
        .start()
}

fn api(s: &TestServer, key: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let auth = format!("Bearer {key}");
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let r = s.client().request(
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        text.as_bytes(),
    );
    let v = if r.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&r.body)
            .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {}", r.text()))
    };
    (r.status, v)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Recomputes `v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`, as the README tells a
/// receiver to, and compares.
fn signature_ok(secret: &str, hit: &Hit) -> bool {
    let ts = hit
        .header("x-otpbox-timestamp")
        .expect("X-Otpbox-Timestamp");
    let sig = hit
        .header("x-otpbox-signature")
        .expect("X-Otpbox-Signature");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(&hit.body);
    sig == format!("v1={}", hex(&mac.finalize().into_bytes()))
}

fn order(s: &TestServer, key: &str) -> Value {
    let (status, a) = api(
        s,
        key,
        "POST",
        "/api/v1/activations",
        json!({"country": 6, "service": "tg"}),
    );
    assert_eq!(status, 201, "{a}");
    a
}

fn create_hook(s: &TestServer, key: &str, url: &str, events: &[&str]) -> (i64, String) {
    let (status, w) = api(
        s,
        key,
        "POST",
        "/api/v1/webhooks",
        json!({"url": url, "events": events}),
    );
    assert_eq!(status, 201, "{w}");
    assert_eq!(w["url"], url);
    (
        w["id"].as_i64().unwrap(),
        w["secret"].as_str().unwrap().to_string(),
    )
}

fn deliveries(s: &TestServer, key: &str, id: i64) -> Vec<Value> {
    let (status, v) = api(
        s,
        key,
        "GET",
        &format!("/api/v1/webhooks/{id}/deliveries"),
        Value::Null,
    );
    assert_eq!(status, 200, "{v}");
    v["deliveries"].as_array().unwrap().clone()
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn an_arriving_sms_is_signed_and_retried_with_back_off_under_one_delivery_id() {
    let s = server(true, &[]);
    let key = s.api_key(DEMO);
    // The second attempt is answered after SLOW: its logged duration must show it.
    let recv = Receiver::start_slow(2, 1, SLOW);
    let (hook, secret) = create_hook(&s, &key, &recv.url("/hook"), &["sms.received"]);
    let a = order(&s, &key);

    // The simulator's SMS arrives 5 s later; the first attempt fails.
    s.advance_clock(10);
    s.run_jobs();
    let (_, now) = api(
        &s,
        &key,
        "GET",
        &format!("/api/v1/activations/{}", a["id"]),
        Value::Null,
    );
    let code = now["code"].as_str().expect("the simulator sent a code");
    let hits = recv.hits();
    assert_eq!(hits.len(), 1, "{hits:?}");
    let first = &hits[0];
    assert_eq!(first.path, "/hook");
    assert_eq!(first.status, 500);
    assert_eq!(first.event(), "sms.received");
    assert_eq!(first.header("x-otpbox-attempt"), Some("1"));
    assert_eq!(
        first.header("content-type"),
        Some("application/json"),
        "{:?}",
        first.headers
    );
    assert!(signature_ok(&secret, first));
    assert!(!signature_ok("whsec_wrong", first));
    let body = first.json();
    assert_eq!(body["event"], "sms.received");
    assert_eq!(body["id"], first.delivery());
    assert_eq!(body["data"]["activation_id"], a["id"]);
    assert_eq!(body["data"]["phone"], a["phone"]);
    assert_eq!(body["data"]["service"], "tg");
    assert_eq!(body["data"]["country"], 6);
    assert_eq!(body["data"]["code"], code);
    assert!(body["data"]["text"].as_str().unwrap().contains(code));

    // Not again before the back-off (30 s) has passed.
    s.run_jobs();
    s.advance_clock(15);
    s.run_jobs();
    assert_eq!(recv.hits().len(), 1);
    // 30 s later: the second attempt, the same delivery id (a replay), fails again.
    s.advance_clock(20);
    s.run_jobs();
    let hits = recv.hits();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[1].delivery(), first.delivery());
    assert_eq!(hits[1].header("x-otpbox-attempt"), Some("2"));
    assert_eq!(hits[1].body, first.body, "a replay carries the same body");
    assert!(signature_ok(&secret, &hits[1]));
    // The next pause is a minute.
    s.advance_clock(35);
    s.run_jobs();
    assert_eq!(recv.hits().len(), 2);
    s.advance_clock(30);
    s.run_jobs();
    let hits = recv.hits();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[2].status, 200);
    assert_eq!(hits[2].delivery(), first.delivery());
    assert!(signature_ok(&secret, &hits[2]));
    let ts: Vec<i64> = hits
        .iter()
        .map(|h| h.header("x-otpbox-timestamp").unwrap().parse().unwrap())
        .collect();
    assert!(ts[0] + 30 <= ts[1] && ts[1] + 60 <= ts[2], "{ts:?}");

    // Delivered: never sent again.
    s.advance_clock(7200);
    s.run_jobs();
    assert_eq!(recv.hits().len(), 3);

    // The delivery log shows every attempt.
    let log = deliveries(&s, &key, hook);
    assert_eq!(log.len(), 1, "{log:?}");
    let d = &log[0];
    assert_eq!(d["id"], first.delivery());
    assert_eq!(d["event"], "sms.received");
    assert_eq!(d["state"], "delivered");
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["next_attempt_at"], Value::Null);
    let attempts = d["log"].as_array().unwrap();
    let statuses: Vec<i64> = attempts
        .iter()
        .map(|a| a["http_status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, vec![500, 500, 200]);
    assert_eq!(attempts[0]["error"], "HTTP 500");
    assert_eq!(attempts[2]["error"], "");
    // Durations are measured per attempt: the slow answer took at least SLOW and less than
    // the sender's 10 s timeout; the prompt ones took less than SLOW (a loopback answer).
    let durations: Vec<i64> = attempts
        .iter()
        .map(|a| a["duration_ms"].as_i64().unwrap())
        .collect();
    let slow = SLOW.as_millis() as i64;
    assert!(
        durations[1] >= slow && durations[1] < 10_000,
        "{durations:?}"
    );
    assert!(durations[0] < slow && durations[2] < slow, "{durations:?}");
}

#[test]
fn activation_updates_fire_for_order_code_completion_cancel_and_expiry() {
    // No simulated SMS during the test: the code comes from `otpbox sms inject`.
    let s = server(true, &[("OTPBOX_SIM_DELAY", "1d")]);
    let key = s.api_key(DEMO);
    let recv = Receiver::start(0);
    let (_, secret) = create_hook(&s, &key, &recv.url("/updates"), &["activation.updated"]);
    let a = order(&s, &key);
    let b = order(&s, &key);
    let c = order(&s, &key);

    let out = s.inject_sms(
        a["phone"].as_str().unwrap(),
        "Telegram",
        "Telegram code: 12345",
    );
    assert!(out.contains("delivered to activation"), "{out}");
    let complete = format!("/api/v1/activations/{}/complete", a["id"]);
    assert_eq!(api(&s, &key, "POST", &complete, Value::Null).0, 200);
    s.advance_clock(121);
    let cancel = format!("/api/v1/activations/{}/cancel", b["id"]);
    assert_eq!(api(&s, &key, "POST", &cancel, Value::Null).0, 200);
    s.advance_clock(3600);
    s.run_jobs(); // expires c, sends everything due
    s.run_jobs();

    let hits = recv.hits();
    let mut seen: Vec<(i64, String, Value)> = hits
        .iter()
        .map(|h| {
            assert_eq!(h.event(), "activation.updated");
            assert!(signature_ok(&secret, h));
            let v = h.json();
            assert_eq!(v["event"], "activation.updated");
            (
                v["data"]["activation_id"].as_i64().unwrap(),
                v["data"]["status"].as_str().unwrap().to_string(),
                v["data"]["previous_status"].clone(),
            )
        })
        .collect();
    seen.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
    let id = |v: &Value| v["id"].as_i64().unwrap();
    let mut expected = vec![
        (id(&a), "waiting".to_string(), Value::Null),
        (id(&a), "received".to_string(), json!("waiting")),
        (id(&a), "completed".to_string(), json!("received")),
        (id(&b), "waiting".to_string(), Value::Null),
        (id(&b), "canceled".to_string(), json!("waiting")),
        (id(&c), "waiting".to_string(), Value::Null),
        (id(&c), "expired".to_string(), json!("waiting")),
    ];
    expected.sort_by(|x, y| (x.0, &x.1).cmp(&(y.0, &y.1)));
    assert_eq!(seen, expected);
    // Each event is its own delivery.
    let mut ids: Vec<&str> = hits.iter().map(Hit::delivery).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 7);
}

#[test]
fn the_sms_activate_url_gets_the_compatible_body_and_rentals_their_own() {
    let s = server(true, &[]);
    let key = s.api_key(DEMO);
    let recv = Receiver::start(0);
    let (status, sa) = api(
        &s,
        &key,
        "PUT",
        "/api/v1/webhooks/sms-activate",
        json!({"url": recv.url("/sa")}),
    );
    assert_eq!(status, 200, "{sa}");
    let sa_secret = sa["secret"].as_str().unwrap().to_string();
    let (status, got) = api(
        &s,
        &key,
        "GET",
        "/api/v1/webhooks/sms-activate",
        Value::Null,
    );
    assert_eq!((status, &got["url"]), (200, &json!(recv.url("/sa"))));
    assert!(got.get("secret").is_none(), "the secret is shown once");
    let (_, native_secret) = create_hook(&s, &key, &recv.url("/native"), &["rental.sms"]);

    let a = order(&s, &key);
    let (status, r) = api(
        &s,
        &key,
        "POST",
        "/api/v1/rentals",
        json!({"country": 6, "service": "tg", "hours": 4, "webhook_url": recv.url("/rent")}),
    );
    assert_eq!(status, 201, "{r}");
    // The simulator sends an SMS to both 5 s later.
    s.advance_clock(10);
    s.run_jobs();
    let (_, now) = api(
        &s,
        &key,
        "GET",
        &format!("/api/v1/activations/{}", a["id"]),
        Value::Null,
    );
    let code = now["code"].as_str().unwrap();

    let hits = recv.hits();
    let at = |p: &str| -> Vec<&Hit> { hits.iter().filter(|h| h.path == p).collect() };
    assert_eq!(hits.len(), 3, "{hits:?}");

    // SMS-Activate §1.5: exactly these fields with these JSON types.
    let h = at("/sa")[0];
    assert_eq!(h.event(), "sms.received");
    assert!(signature_ok(&sa_secret, h));
    let body = h.json();
    let obj = body.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "activationId",
            "code",
            "country",
            "receivedAt",
            "service",
            "text"
        ]
    );
    assert!(body["activationId"].is_i64());
    assert_eq!(body["activationId"], a["id"]);
    assert_eq!(body["service"], "tg");
    assert!(body["text"].as_str().unwrap().contains(code));
    assert_eq!(body["code"], code);
    assert!(body["country"].is_i64());
    assert_eq!(body["country"], 6);
    let received = body["receivedAt"].as_str().unwrap();
    assert_eq!(received.len(), 25, "{received}");
    assert!(received.ends_with("+00:00"), "{received}");
    assert_eq!(&received[10..11], "T");
    assert!(received[..10]
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'-'));

    // The native rental.sms event.
    let h = at("/native")[0];
    assert_eq!(h.event(), "rental.sms");
    assert!(signature_ok(&native_secret, h));
    assert_eq!(h.json()["data"]["rental_id"], r["id"]);
    assert_eq!(h.json()["data"]["phone"], r["phone"]);

    // The rental's own URL gets the SMS-Activate rent body, unsigned (it has no secret).
    let h = at("/rent")[0];
    assert_eq!(h.event(), "rental.sms");
    assert!(h.header("x-otpbox-delivery").is_some());
    assert!(h.header("x-otpbox-signature").is_none());
    let body = h.json();
    assert_eq!(body["rentId"], json!(r["id"].as_i64().unwrap().to_string()));
    assert!(body["sms"]["phoneFrom"].is_string());
    assert!(body["sms"]["text"].is_string());
    let date = body["sms"]["date"].as_str().unwrap();
    assert_eq!((date.len(), &date[10..11]), (19, " "), "{date}");
}

#[test]
fn the_test_button_sends_a_ping_and_a_deleted_webhook_gets_nothing_more() {
    let s = server(true, &[]);
    let key = s.api_key(DEMO);
    let recv = Receiver::start(0);
    let mut web = s.client();
    assert_eq!(
        web.login(DEMO, "demo-password").location(),
        Some("/dashboard")
    );
    assert!(web
        .get("/settings")
        .text()
        .contains("href=\"/settings/webhooks\""));

    // Registered through the settings page; the secret is shown once.
    let url = recv.url("/ui");
    let page = web.submit(
        "/settings/webhooks",
        "/settings/webhooks",
        &[
            ("url", &url),
            ("events", "sms.received"),
            ("events", "activation.updated"),
        ],
    );
    assert_eq!(page.status, 201, "{}", page.text());
    let html = page.text();
    let start = html.find("data-copy=\"whsec_").expect("the secret") + "data-copy=\"".len();
    let secret = html[start..start + html[start..].find('"').unwrap()].to_string();
    assert!(!web.get("/settings/webhooks").text().contains(&secret));
    let (_, list) = api(&s, &key, "GET", "/api/v1/webhooks", Value::Null);
    let hooks = list["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 1);
    assert_eq!(
        hooks[0]["events"],
        json!(["sms.received", "activation.updated"])
    );
    let id = hooks[0]["id"].as_i64().unwrap();

    // Forms need the CSRF token.
    assert_eq!(
        web.post_form(&format!("/settings/webhooks/{id}/test"), &[])
            .status,
        403
    );
    assert!(recv.hits().is_empty());
    let r = web.submit(
        &format!("/settings/webhooks/{id}"),
        &format!("/settings/webhooks/{id}/test"),
        &[],
    );
    assert_eq!(r.status, 303);
    assert_eq!(
        r.location(),
        Some(format!("/settings/webhooks/{id}?m=test_queued").as_str())
    );
    s.run_jobs();
    let hits = recv.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].event(), "ping");
    assert!(signature_ok(&secret, &hits[0]));
    assert_eq!(hits[0].json()["event"], "ping");
    assert_eq!(hits[0].json()["data"]["webhook_id"], id);
    let log = web.get(&format!("/settings/webhooks/{id}")).text();
    assert!(log.contains(hits[0].delivery()), "{log}");
    assert!(log.contains("HTTP 200"));

    // A test queued through the API, then the webhook deleted: it is never sent, and
    // neither is anything that happens later.
    let (status, t) = api(
        &s,
        &key,
        "POST",
        &format!("/api/v1/webhooks/{id}/test"),
        Value::Null,
    );
    assert_eq!(status, 202, "{t}");
    let r = web.submit(
        "/settings/webhooks",
        &format!("/settings/webhooks/{id}/delete"),
        &[],
    );
    assert_eq!(r.status, 303);
    order(&s, &key);
    s.advance_clock(10);
    s.run_jobs();
    s.advance_clock(3600);
    s.run_jobs();
    assert_eq!(recv.hits().len(), 1);
    assert_eq!(s.count("SELECT COUNT(*) FROM webhook_deliveries"), 0);
    let (status, _) = api(
        &s,
        &key,
        "GET",
        &format!("/api/v1/webhooks/{id}/deliveries"),
        Value::Null,
    );
    assert_eq!(status, 404);
    let (status, _) = api(
        &s,
        &key,
        "DELETE",
        &format!("/api/v1/webhooks/{id}"),
        Value::Null,
    );
    assert_eq!(status, 404);
}

#[test]
fn loopback_urls_are_refused_without_the_admin_setting_and_never_called() {
    let s = server(false, &[]);
    let key = s.api_key(DEMO);
    let recv = Receiver::start(0);
    let port = recv.addr.port();
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        "http://10.0.0.1/hook".to_string(),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ] {
        let (status, e) = api(
            &s,
            &key,
            "POST",
            "/api/v1/webhooks",
            json!({"url": url, "events": ["sms.received"]}),
        );
        assert_eq!(status, 400, "{url}: {e}");
        assert_eq!(e["error"]["code"], "invalid_request");
        // Refused as internal by the address check; an IPv4-mapped IPv6 literal is not in the
        // document's URL form at all (its host pattern takes plain IPv6 only).
        let message = e["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("internal")
                || (url.contains("::ffff:") && message.contains("documented form")),
            "{e}"
        );
    }
    let (status, _) = api(
        &s,
        &key,
        "PUT",
        "/api/v1/webhooks/sms-activate",
        json!({"url": recv.url("/sa")}),
    );
    assert_eq!(status, 400);
    let mut web = s.client();
    assert_eq!(
        web.login(DEMO, "demo-password").location(),
        Some("/dashboard")
    );
    let page = web.submit(
        "/settings/webhooks",
        "/settings/webhooks",
        &[("url", &recv.url("/ui")), ("events", "sms.received")],
    );
    let page = web.back_to(&page, "/settings/webhooks").text();
    assert!(page.contains("internal address"));
    // The form is filled in again with what was typed, events included.
    let typed = format!(r#"value="{}""#, recv.url("/ui"));
    assert!(page.contains(&typed), "{page}");
    assert!(page.contains(r#"value="sms.received" checked"#), "{page}");
    assert!(!page.contains(r#"value="rental.sms" checked"#), "{page}");
    assert_eq!(s.count("SELECT COUNT(*) FROM webhooks"), 0);
    // Other bad input is refused as well.
    for body in [
        json!({"url": "ftp://example.com/"}),
        json!({"url": "https://user:pw@example.com/"}),
        json!({"url": "https://example.com/", "events": ["sms.sent"]}),
        json!({"url": "https://example.com/", "events": []}),
    ] {
        let (status, e) = api(&s, &key, "POST", "/api/v1/webhooks", body);
        assert_eq!(status, 400, "{e}");
    }

    // A URL that became internal after registration (here: changed in the database, as if
    // registered while the setting was on) is checked again when sending, by address.
    let (a, _) = create_hook(&s, &key, "https://example.com/a", &["sms.received"]);
    let (b, _) = create_hook(&s, &key, "https://example.com/b", &["sms.received"]);
    let db = s.db();
    db.execute(
        "UPDATE webhooks SET url = ?1 WHERE id = ?2",
        rusqlite::params![recv.url("/a"), a],
    )
    .unwrap();
    db.execute(
        "UPDATE webhooks SET url = ?1 WHERE id = ?2",
        rusqlite::params![format!("http://localhost:{port}/b"), b],
    )
    .unwrap();
    for id in [a, b] {
        let (status, _) = api(
            &s,
            &key,
            "POST",
            &format!("/api/v1/webhooks/{id}/test"),
            Value::Null,
        );
        assert_eq!(status, 202);
    }
    s.run_jobs();
    s.advance_clock(31);
    s.run_jobs();
    for id in [a, b] {
        let log = deliveries(&s, &key, id);
        assert_eq!(log[0]["attempts"], 2, "{log:?}");
        assert_eq!(log[0]["state"], "pending");
        for attempt in log[0]["log"].as_array().unwrap() {
            assert_eq!(attempt["http_status"], Value::Null);
            let err = attempt["error"].as_str().unwrap();
            assert!(err.contains("internal"), "{err}");
        }
    }
    assert!(recv.hits().is_empty(), "never called: {:?}", recv.hits());
}
