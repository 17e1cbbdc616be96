//! Partner hubs end to end (protocols.md §3, the SMSHub agent protocol): the test plays the
//! hub, calling `POST /partner/{id}` the way SMSHub does (gzip JSON, the key in the body),
//! and runs a fake hub receiver (a `TcpListener` thread) for PUSH_SMS that records every push
//! and answers `{"status":"ERROR"}` to the first N before `SUCCESS`. Retries are proven by
//! moving the dev clock and running the jobs, never by sleeping.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::market::COUNTRY;
use common::{Response, TestServer};
use serde_json::{json, Value};

/// The push URLs of these tests are on 127.0.0.1 (the customer-webhook rule's override).
const ALLOW_PRIVATE: (&str, &str) = ("OTPBOX_WEBHOOK_ALLOW_PRIVATE", "1");
const OPERATOR: &str = "sims@example.com";
const KEY: &str = "hub-shared-key-0123456789";
/// Two SIMs of the operator's device, in Indonesia (country 6, 5sim name `indonesia`).
const SIM_A: &str = "6281200000001";
const SIM_B: &str = "6281200000002";

// ---------------------------------------------------------------------------------------
// The hub's receiver of PUSH_SMS

/// A push's headers and its JSON body.
type Pushed = (Vec<(String, String)>, Value);

struct Hub {
    addr: SocketAddr,
    pushes: Arc<Mutex<Vec<Pushed>>>,
}

impl Hub {
    /// Answers `{"status":"ERROR"}` (HTTP 200, as hubs do) to the first `fail_first` pushes.
    fn start(fail_first: usize) -> Hub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let pushes = Arc::new(Mutex::new(Vec::new()));
        let record = pushes.clone();
        let seen = AtomicUsize::new(0);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let Some((_, headers, body)) = common::read_request(&mut stream) else {
                    continue;
                };
                let gzipped = headers
                    .iter()
                    .any(|(k, v)| k == "content-encoding" && v == "gzip");
                let body = if gzipped { gunzip(&body) } else { body };
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let reply = if n < fail_first {
                    json!({"status": "ERROR", "error": "try later"})
                } else {
                    json!({"status": "SUCCESS"})
                };
                record.lock().unwrap().push((headers, v));
                let reply = reply.to_string();
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                        reply.len()
                    )
                    .as_bytes(),
                );
            }
        });
        Hub { addr, pushes }
    }

    fn url(&self) -> String {
        format!("http://{}/agent/api/sms", self.addr)
    }

    fn pushes(&self) -> Vec<Pushed> {
        self.pushes.lock().unwrap().clone()
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
}

// ---------------------------------------------------------------------------------------
// The world: a server, an operator's device with two SIMs, a partner hub

struct World {
    server: TestServer,
    hub: Hub,
    partner: i64,
    device: common::gateways::Device,
}

fn world(fail_first: usize) -> World {
    let server = TestServer::builder()
        .env("OTPBOX_DEV_CLOCK", "1")
        .env("OTPBOX_WEBHOOK_ALLOW_PRIVATE", "1")
        .start();
    server.client().post("/__dev/scheduler?paused=1", b"");
    server.operator(OPERATOR);
    let device = server.add_device(
        OPERATOR,
        "generic",
        &[
            &format!("1:+{SIM_A}:{COUNTRY}:Telkomsel"),
            &format!("2:+{SIM_B}:{COUNTRY}:Telkomsel"),
        ],
    );
    let hub = Hub::start(fail_first);
    let out = server.cli_env(
        &[ALLOW_PRIVATE],
        &[
            "partner",
            "add",
            "--name",
            "SMSHub",
            "--push-url",
            &hub.url(),
            "--key",
            KEY,
            "--currency",
            "840",
            "--floor",
            "0.05",
        ],
    );
    assert!(out.status.success(), "partner add: {out:?}");
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let partner: i64 = out
        .lines()
        .find_map(|l| l.strip_prefix("partner_id="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no partner_id= in {out:?}"));
    let endpoint = out
        .lines()
        .find_map(|l| l.strip_prefix("endpoint="))
        .unwrap_or_else(|| panic!("no endpoint= in {out:?}"));
    assert!(
        endpoint.ends_with(&format!("/partner/{partner}")),
        "{endpoint}"
    );
    World {
        server,
        hub,
        partner,
        device,
    }
}

impl World {
    /// A call as SMSHub makes it: gzip JSON with the key, accepting gzip back.
    fn call(&self, mut body: Value) -> (u16, Value) {
        body["key"] = json!(KEY);
        self.call_raw(&body)
    }

    fn call_raw(&self, body: &Value) -> (u16, Value) {
        let r = self.server.client().request(
            "POST",
            &format!("/partner/{}", self.partner),
            &[
                ("Content-Type", "application/json"),
                ("Content-Encoding", "gzip"),
                ("Accept-Encoding", "gzip"),
                ("User-Agent", "SMSHub-test"),
            ],
            &gzip(body.to_string().as_bytes()),
        );
        assert_eq!(
            r.header("content-encoding"),
            Some("gzip"),
            "answered in gzip"
        );
        (r.status, reply_json(&r))
    }

    fn services(&self) -> Value {
        let (status, v) = self.call(json!({"action": "GET_SERVICES"}));
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["status"], "SUCCESS", "{v}");
        v
    }

    /// The count GET_SERVICES reports for `service` in Indonesia on Telkomsel (0 if absent).
    fn count(&self, service: &str) -> i64 {
        let v = self.services();
        v["countryList"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["country"] == "indonesia")
            .and_then(|c| c["operatorMap"]["telkomsel"][service].as_i64())
            .unwrap_or(0)
    }

    fn get_number(&self, service: &str, exclude: &[&str]) -> Value {
        let (status, v) = self.call(json!({
            "action": "GET_NUMBER", "country": "indonesia", "operator": "telkomsel",
            "service": service, "sum": 0.25, "currency": 840, "exceptionPhoneSet": exclude,
        }));
        assert_eq!(status, 200, "{v}");
        v
    }

    fn finish(&self, id: i64, status: i64) -> Value {
        let (code, v) =
            self.call(json!({"action": "FINISH_ACTIVATION", "activationId": id, "status": status}));
        assert_eq!(code, 200, "{v}");
        v
    }

    /// An SMS to `to` through the operator's device (generic gateway JSON).
    fn sms(&self, to: &str, id: &str, text: &str) -> Value {
        let body = json!({"id": id, "from": "Telegram", "to": to, "text": text,
                          "received_at": self.server.now()});
        let auth = format!("Bearer {}", self.device.secret);
        let r = self.server.ingest(
            &self.device.path,
            &[("Authorization", &auth)],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 200, "ingest: {}", r.text());
        r.json()
    }

    fn ledger(&self, ref_id: i64) -> Vec<(i64, String, i64)> {
        let db = self.server.db();
        let mut stmt = db
            .prepare(
                "SELECT user_id, kind, amount_minor FROM ledger \
                 WHERE ref_type = 'partner_order' AND ref_id = ?1 ORDER BY id",
            )
            .unwrap();
        stmt.query_map([ref_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn partner_account(&self) -> i64 {
        self.server.count(&format!(
            "SELECT account_id FROM partners WHERE id = {}",
            self.partner
        ))
    }
}

fn reply_json(r: &Response) -> Value {
    let gz = r
        .header("content-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let body = if gz { gunzip(&r.body) } else { r.body.clone() };
    serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)))
}

// ---------------------------------------------------------------------------------------

#[test]
fn a_hub_polls_orders_gets_every_sms_pushed_and_pays_for_a_sale() {
    let w = world(2);
    let s = &w.server;

    // GET_SERVICES: both SIMs, by operator (every number names one), counts as numbers.
    assert_eq!(w.count("tg"), 2);
    let v = w.services();
    assert!(
        v["countryList"][0]["operatorMap"]["telkomsel"]["tg"].is_i64(),
        "{v}"
    );

    // A wrong key changes nothing and says so in the protocol's form.
    let (status, v) = w.call_raw(&json!({"action": "GET_NUMBER", "key": "wrong-key-123",
        "country": "indonesia", "service": "tg", "sum": 1}));
    assert_eq!((status, v["status"].as_str()), (401, Some("ERROR")), "{v}");
    assert_eq!(s.count("SELECT COUNT(*) FROM partner_orders"), 0);

    // GET_NUMBER honours exceptionPhoneSet and answers JSON numbers.
    let v = w.get_number("tg", &[&SIM_A[..6]]);
    assert_eq!(
        v["status"], "NO_NUMBERS",
        "both SIMs start with the excluded prefix: {v}"
    );
    let v = w.get_number("tg", &[SIM_A]);
    assert_eq!(v["status"], "SUCCESS", "{v}");
    assert_eq!(v["number"], json!(SIM_B.parse::<u64>().unwrap()), "{v}");
    assert!(v["number"].is_u64() && v["activationId"].is_i64(), "{v}");
    let order = v["activationId"].as_i64().unwrap();

    // The number the hub holds is busy for our customers and for the hub's own count.
    assert_eq!(w.count("tg"), 1);
    let mut api = s.customer("buyer@example.com", "10.00");
    let a = api.order_ok("tg");
    assert_eq!(a["phone"], SIM_A, "the customer gets the other SIM: {a}");
    let r = api.order("tg");
    assert_eq!(r.status, 409, "no number left for customers: {}", r.text());

    // Every SMS to the hub's number is pushed, retried every 10 s until SUCCESS, never after.
    let v = w.sms(SIM_B, "m1", "Telegram code 12345");
    assert_eq!(v["results"][0]["status"], "delivered", "{v}");
    let v = w.sms(SIM_B, "m1", "Telegram code 12345");
    assert_eq!(
        v["results"][0]["status"], "duplicate",
        "a redelivery is not pushed again: {v}"
    );
    s.run_jobs();
    assert_eq!(w.hub.pushes().len(), 1, "first attempt");
    s.run_jobs();
    assert_eq!(w.hub.pushes().len(), 1, "no retry before 10 s");
    s.advance_clock(10);
    s.run_jobs();
    s.advance_clock(10);
    s.run_jobs();
    assert_eq!(w.hub.pushes().len(), 3, "two ERROR answers, then SUCCESS");
    s.advance_clock(60);
    s.run_jobs();
    let pushes = w.hub.pushes();
    assert_eq!(pushes.len(), 3, "never resent after SUCCESS");
    let (headers, body) = &pushes[2];
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-encoding" && v == "gzip"),
        "{headers:?}"
    );
    assert!(
        headers.iter().any(|(k, _)| k == "user-agent"),
        "{headers:?}"
    );
    assert_eq!(body["action"], "PUSH_SMS");
    assert_eq!(body["key"], KEY);
    assert_eq!(body["phone"], json!(SIM_B.parse::<u64>().unwrap()));
    assert_eq!(body["phoneFrom"], "Telegram");
    assert_eq!(body["text"], "Telegram code 12345");
    assert!(body["smsId"].is_i64(), "{body}");
    assert_eq!(
        pushes[0].1["smsId"], body["smsId"],
        "a retry has the same smsId"
    );
    assert_eq!(
        s.count("SELECT COUNT(*) FROM partner_pushes WHERE text != ''"),
        0,
        "the text is not kept once delivered"
    );
    // The SMS is not stored as a customer's message.
    assert_eq!(
        s.count("SELECT COUNT(*) FROM messages WHERE text LIKE '%12345%'"),
        0
    );

    // FINISH 3: a sale. The hub's account is charged its price, the operator earns its share.
    assert_eq!(w.finish(order, 3)["status"], "SUCCESS");
    let rows = w.ledger(order);
    let account = w.partner_account();
    let operator = s.user_id(OPERATOR).unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        rows[0],
        (account, "charge".into(), -25),
        "0.25 USD = 25 cents"
    );
    assert_eq!((rows[1].0, rows[1].1.as_str()), (operator, "earning"));
    assert!(rows[1].2 > 0 && rows[1].2 <= 25, "{rows:?}");
    // Idempotent: a repeat, or any later status, answers SUCCESS and changes nothing.
    assert_eq!(w.finish(order, 3)["status"], "SUCCESS");
    assert_eq!(w.finish(order, 5)["status"], "SUCCESS");
    assert_eq!(w.ledger(order), rows);
    // The hub settles part of what it owes: a credit to its account, recorded by the admin.
    let email: String = s
        .db()
        .query_row("SELECT email FROM users WHERE id = ?1", [account], |r| {
            r.get(0)
        })
        .unwrap();
    s.cli_ok(&["user", "credit", "--email", &email, "--amount", "0.10"]);
    assert_eq!(
        s.count(&format!(
            "SELECT balance_minor FROM users WHERE id = {account}"
        )),
        -15,
        "a partial settlement is recorded"
    );
    // The number is free again; it served tg, so the cooldown keeps it from tg.
    assert_eq!(
        s.count(&format!(
            "SELECT COUNT(*) FROM numbers WHERE phone = '{SIM_B}' AND state = 'free'"
        )),
        1
    );
    // An SMS after the end reaches nobody.
    let v = w.sms(SIM_B, "m2", "late 99999");
    assert_eq!(v["results"][0]["reason"], "no_live_order", "{v}");

    // Unknown ids and statuses are errors in the protocol's form.
    assert_eq!(w.finish(999_999, 3)["status"], "ERROR");
    let v = w.finish(order, 7);
    assert_eq!(v["status"], "ERROR", "{v}");
    let (_, v) = w.call(json!({"action": "NOPE"}));
    assert_eq!(v["status"], "ERROR");
    s.assert_books_balance();
}

#[test]
fn cancels_give_the_number_back_a_few_times_and_counts_never_over_report() {
    let w = world(0);
    let s = &w.server;
    // Numbers of the simulator or bought upstream are never offered to a hub.
    s.db()
        .execute(
            "INSERT INTO numbers (phone, country_id, operator, source, created_at) \
             VALUES ('6281299999999', ?1, 'Telkomsel', 'simulator', 0)",
            [COUNTRY],
        )
        .unwrap();
    assert_eq!(w.count("wa"), 2);

    // Four offers of the same number for the same service, each cancelled (status 4).
    let exclude = [SIM_B];
    for round in 0..4 {
        let v = w.get_number("wa", &exclude);
        assert_eq!(v["status"], "SUCCESS", "offer {round}: {v}");
        assert_eq!(v["number"], json!(SIM_A.parse::<u64>().unwrap()));
        assert_eq!(
            w.finish(v["activationId"].as_i64().unwrap(), 4)["status"],
            "SUCCESS"
        );
    }
    let v = w.get_number("wa", &exclude);
    assert_eq!(v["status"], "NO_NUMBERS", "not offered a fifth time: {v}");
    assert_eq!(w.count("wa"), 1, "and not counted for wa any more");
    assert!(w.ledger(1).is_empty(), "a cancel moves no money");

    // Status 1: the number is used for the service; never offered for it again, to anyone.
    let v = w.get_number("vk", &[]);
    let id = v["activationId"].as_i64().unwrap();
    let phone = v["number"].as_u64().unwrap().to_string();
    assert_eq!(w.finish(id, 1)["status"], "SUCCESS");
    let mut api = s.customer("buyer@example.com", "10.00");
    for _ in 0..2 {
        let r = api.order("vk");
        if r.status == 201 || r.status == 200 {
            let got = r.json()["phone"].as_str().unwrap().to_string();
            assert_ne!(got, phone, "a used number is not sold for vk");
        }
    }

    // Status 5: the hub refunded its customer; nothing is paid and the number is free.
    let v = w.get_number("ok", &[]);
    let id = v["activationId"].as_i64().unwrap();
    let busy = |phone: &Value| {
        s.count(&format!(
            "SELECT COUNT(*) FROM numbers WHERE phone = '{phone}' AND state = 'busy'"
        ))
    };
    assert_eq!(busy(&v["number"]), 1);
    assert_eq!(w.finish(id, 5)["status"], "SUCCESS");
    assert!(w.ledger(id).is_empty(), "a refund moves no money");
    assert_eq!(busy(&v["number"]), 0, "the number is free again");

    // A country whose numbers name no operator is reported as `any`, and that choice is kept
    // when an operator's SIM arrives later.
    let country2: i64 = 22;
    let name2: String = s
        .db()
        .query_row(
            "SELECT fivesim_name FROM countries WHERE id = ?1",
            [country2],
            |r| r.get(0),
        )
        .unwrap();
    s.add_numbers(country2, &["919800000001"]);
    let find = |v: &Value| {
        v["countryList"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["country"] == name2.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("{name2} not reported: {v}"))
    };
    let c = find(&w.services());
    assert_eq!(c["operatorMap"]["any"]["tg"], 1, "{c}");
    s.db()
        .execute(
            "INSERT INTO numbers (phone, country_id, operator, source, created_at) \
             VALUES ('919800000002', ?1, 'Jio', 'manual', 0)",
            [country2],
        )
        .unwrap();
    let c = find(&w.services());
    assert_eq!(c["operatorMap"]["any"]["tg"], 2, "still `any`: {c}");
    assert!(c["operatorMap"]["jio"].is_null(), "{c}");
    let (_, v) = w.call(
        json!({"action": "GET_NUMBER", "country": name2, "operator": "any",
        "service": "tg", "sum": 1}),
    );
    assert_eq!(v["status"], "SUCCESS", "{v}");

    // A pair the admin blocked is neither reported nor handed out.
    s.db()
        .execute(
            "INSERT INTO blocked (country_id, service, created_at) VALUES (?1, 'tg', 0)",
            [COUNTRY],
        )
        .unwrap();
    assert_eq!(w.count("tg"), 0, "a blocked pair is not reported");
    let v = w.get_number("tg", &[]);
    assert_eq!(v["status"], "NO_NUMBERS", "{v}");
    s.db().execute("DELETE FROM blocked", []).unwrap();

    // A price below the floor, another currency, a malformed body: refused, nothing taken.
    let before = s.count("SELECT COUNT(*) FROM partner_orders");
    let (_, v) = w.call(json!({"action": "GET_NUMBER", "country": "indonesia",
        "service": "tg", "sum": 0.01, "currency": 840}));
    assert_eq!(v["status"], "NO_NUMBERS", "below the floor of 0.05: {v}");
    let (_, v) = w.call(json!({"action": "GET_NUMBER", "country": "indonesia",
        "service": "tg", "sum": 10, "currency": 643}));
    assert_eq!(v["status"], "ERROR", "{v}");
    // Grizzly sends the country as an SMS-Activate id and the sum as a string.
    let (_, v) = w.call(json!({"action": "GET_NUMBER", "country": COUNTRY,
        "service": "tg", "sum": "0.30", "exceptionPhoneSet": [7918, 79281]}));
    assert_eq!(v["status"], "SUCCESS", "{v}");
    let r = s.client().request(
        "POST",
        &format!("/partner/{}", w.partner),
        &[("Content-Type", "application/json")],
        b"{not json",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["status"], "ERROR");
    let r = s.client().post_json(
        "/partner/999",
        &json!({"action": "GET_SERVICES", "key": KEY}),
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["status"], "ERROR");
    assert_eq!(s.count("SELECT COUNT(*) FROM partner_orders"), before + 1);
    s.assert_books_balance();
}

#[test]
fn a_hub_that_never_finishes_keeps_the_number_two_hours_and_a_late_sale_still_pays() {
    let w = world(0);
    let s = &w.server;
    let v = w.get_number("tg", &[SIM_B]);
    let id = v["activationId"].as_i64().unwrap();
    assert_eq!(w.count("tg"), 1);
    s.advance_clock(2 * 3600 + 5);
    s.run_jobs();
    assert_eq!(
        s.count("SELECT COUNT(*) FROM numbers WHERE state = 'busy'"),
        0,
        "the number is released"
    );
    assert_eq!(w.finish(id, 3)["status"], "SUCCESS");
    assert_eq!(w.ledger(id).len(), 2, "the late sale is booked");
    s.assert_books_balance();
}

#[test]
fn the_admin_adds_a_hub_names_its_countries_and_sees_its_orders() {
    let w = world(0);
    let s = &w.server;
    let (mut admin, _) = s.signed_in("boss@example.com", "admin");

    // Private push URLs follow the customer-webhook rule: refused unless the setting allows.
    let args = [
        "partner",
        "add",
        "--name",
        "X",
        "--push-url",
        "http://10.0.0.1/x",
        "--key",
        KEY,
        "--currency",
        "840",
    ];
    let out = s.cli(&args);
    assert!(!out.status.success(), "a private push URL is refused");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("push URL"),
        "{out:?}"
    );
    assert!(s.cli_env(&[ALLOW_PRIVATE], &args).status.success());

    let page = admin.get("/admin/partners");
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("SMSHub") && html.contains(&format!("/partner/{}", w.partner)));

    let r = admin.submit(
        "/admin/partners",
        "/admin/partners",
        &[
            ("name", "SMSBower"),
            ("push_url", "https://smsbower.example/api/push"),
            ("key", "bower-key-12345678"),
            ("currency", "643"),
            ("rate", "1.1"),
            ("floor", "2.50"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let to = r.location().unwrap().to_string();
    let detail = admin.get(&to);
    assert!(detail.text().contains("Partner added"), "{}", detail.text());
    assert!(
        !detail.text().contains("bower-key-12345678"),
        "the key is never shown"
    );
    assert_eq!(
        s.count("SELECT COUNT(*) FROM audit_log WHERE action = 'partner_added'"),
        3
    );

    // Naming: the hub calls Indonesia "indo" and Telegram "telegram".
    let page = format!("/admin/partners/{}", w.partner);
    let r = admin.submit(
        &page,
        &format!("{page}/names"),
        &[("names", "country indo = id\nservice telegram = tg\n")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let v = w.services();
    let c = &v["countryList"][0];
    assert_eq!(c["country"], "indo", "{v}");
    assert_eq!(c["operatorMap"]["telkomsel"]["telegram"], 2, "{v}");
    assert!(
        c["operatorMap"]["telkomsel"]["wa"].is_null(),
        "only named services: {v}"
    );
    let (_, v) = w.call(json!({"action": "GET_NUMBER", "country": "indo",
        "operator": "telkomsel", "service": "telegram", "sum": 1}));
    assert_eq!(v["status"], "SUCCESS", "{v}");
    let (_, v) = w.call(json!({"action": "GET_NUMBER", "country": "indonesia",
        "service": "tg", "sum": 1}));
    assert_eq!(
        v["status"], "NO_NUMBERS",
        "our own names no longer apply: {v}"
    );

    let r = admin.submit(
        &page,
        &format!("{page}/names"),
        &[("names", "planet mars = x")],
    );
    assert_eq!(r.status, 303);
    let back = admin.follow(&r);
    assert!(back.text().contains("Naming line 1"), "{}", back.text());

    let detail = admin.get(&page);
    let html = detail.text();
    assert!(
        html.contains("partner-orders") && html.contains(SIM_A),
        "{html}"
    );
}
