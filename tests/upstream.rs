//! Upstream resale against fake providers written here: an SMS-Activate compatible
//! `handler_api.php` and a 5sim REST v1 server, each a small `TcpListener` thread that
//! follows protocols.md §1–§2 and records every request it gets. Covered: a full order
//! through each kind (sync → stock and price with markup → order through the protocols →
//! code polled and delivered → finish told upstream), timeouts, 5xx, garbage, NO_NUMBERS and
//! NO_BALANCE (refunded, closed, NO_NUMBERS answered), a code after our expiry (not
//! delivered, not charged, upstream cancelled), the circuit breaker, own SIMs first, and the
//! key never appearing in pages or the server's log.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::market::{error_code, id_of, Api};
use common::{Client, TestServer, PASSWORD};
use serde_json::{json, Value};

const SA_KEY: &str = "sa-KEY-7f3a9c1e55d04b";
const FS_TOKEN: &str = "fs-TOKEN-2b8e61d94a0c7f";
const HANDLER: &str = "/stubs/handler_api.php";

// ---------------------------------------------------------------------------------------
// The fake providers

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    /// Answers after 3 s (the server's timeout is shorter in those tests).
    Slow,
    Error500,
    /// A body that is not the protocol.
    Garbage,
    NoNumbers,
    NoBalance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    SmsActivate,
    FiveSim,
}

struct State {
    mode: Mode,
    /// Every request: `path?query`.
    calls: Vec<String>,
    /// The Authorization header of every request ("" when none).
    auth: Vec<String>,
    /// upstream order id → code it shows.
    codes: HashMap<String, String>,
    /// upstream order id → ended on the provider's side.
    canceled: Vec<String>,
    sold: u64,
}

#[derive(Clone)]
struct Fake {
    addr: SocketAddr,
    kind: Kind,
    state: Arc<Mutex<State>>,
}

impl Fake {
    fn start(kind: Kind) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let fake = Fake {
            addr: listener.local_addr().unwrap(),
            kind,
            state: Arc::new(Mutex::new(State {
                mode: Mode::Normal,
                calls: Vec::new(),
                auth: Vec::new(),
                codes: HashMap::new(),
                canceled: Vec::new(),
                sold: 0,
            })),
        };
        let f = fake.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let f = f.clone();
                std::thread::spawn(move || f.serve(stream));
            }
        });
        fake
    }

    fn url(&self) -> String {
        match self.kind {
            Kind::SmsActivate => format!("http://{}{HANDLER}", self.addr),
            Kind::FiveSim => format!("http://{}/v1", self.addr),
        }
    }

    fn set_mode(&self, m: Mode) {
        self.state.lock().unwrap().mode = m;
    }

    fn give_code(&self, upstream_id: &str, code: &str) {
        self.state
            .lock()
            .unwrap()
            .codes
            .insert(upstream_id.to_string(), code.to_string());
    }

    fn cancel_upstream(&self, upstream_id: &str) {
        self.state
            .lock()
            .unwrap()
            .canceled
            .push(upstream_id.to_string());
    }

    fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Requests whose path and query contain every one of `parts`.
    fn count(&self, parts: &[&str]) -> usize {
        self.calls()
            .iter()
            .filter(|c| parts.iter().all(|p| c.contains(p)))
            .count()
    }

    fn serve(&self, mut stream: TcpStream) {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut auth = String::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).is_err() {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("authorization") {
                    auth = v.trim().to_string();
                }
            }
        }
        let mode = {
            let mut s = self.state.lock().unwrap();
            s.calls.push(target.clone());
            s.auth.push(auth.clone());
            s.mode
        };
        let (status, ctype, body) = match mode {
            Mode::Slow => {
                std::thread::sleep(Duration::from_secs(3));
                self.answer(&target, &auth, Mode::Normal)
            }
            Mode::Error500 => (500, "text/plain", "internal error".to_string()),
            Mode::Garbage => (
                200,
                "text/html",
                "<html><body>Bad gateway</body></html>".into(),
            ),
            m => self.answer(&target, &auth, m),
        };
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body.as_bytes());
    }

    fn answer(&self, target: &str, auth: &str, mode: Mode) -> (u16, &'static str, String) {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let q: HashMap<String, String> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (decode(k), decode(v)))
            .collect();
        let mut s = self.state.lock().unwrap();
        match self.kind {
            Kind::SmsActivate => sms_activate(&mut s, path, &q, mode),
            Kind::FiveSim => five_sim(&mut s, path, auth, mode),
        }
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// protocols.md §1: text tokens, JSON for getPrices, HTTP 200 for everything.
fn sms_activate(
    s: &mut State,
    path: &str,
    q: &HashMap<String, String>,
    mode: Mode,
) -> (u16, &'static str, String) {
    let text = |t: String| (200, "text/plain", t);
    if path != HANDLER {
        return (404, "text/plain", "not found".into());
    }
    if q.get("api_key").map(String::as_str) != Some(SA_KEY) {
        return text("BAD_KEY".into());
    }
    let id = q.get("id").cloned().unwrap_or_default();
    match q.get("action").map(String::as_str).unwrap_or("") {
        "getBalance" => text("ACCESS_BALANCE:25.00".into()),
        "getPrices" => (
            200,
            "application/json",
            json!({
                "6": {
                    "tg": {"cost": 0.5, "count": 7, "physicalCount": 7},
                    "wa": {"cost": "0.25", "count": 3, "physicalCount": 3},
                    "nosuchservice": {"cost": 1, "count": 9}
                },
                "999": {"tg": {"cost": 1, "count": 9}}
            })
            .to_string(),
        ),
        "getNumber" => match mode {
            Mode::NoNumbers => text("NO_NUMBERS".into()),
            Mode::NoBalance => text("NO_BALANCE".into()),
            _ => {
                s.sold += 1;
                text(format!(
                    "ACCESS_NUMBER:{}:{}",
                    900_000 + s.sold,
                    sa_phone(s.sold)
                ))
            }
        },
        "getStatus" => text(if s.canceled.contains(&id) {
            "STATUS_CANCEL".into()
        } else {
            match s.codes.get(&id) {
                Some(code) => format!("STATUS_OK:{code}"),
                None => "STATUS_WAIT_CODE".into(),
            }
        }),
        "setStatus" => text(
            match q.get("status").map(String::as_str) {
                Some("6") => "ACCESS_ACTIVATION",
                Some("8") => "ACCESS_CANCEL",
                Some("3") => "ACCESS_RETRY_GET",
                _ => "BAD_STATUS",
            }
            .into(),
        ),
        _ => text("BAD_ACTION".into()),
    }
}

fn sa_phone(n: u64) -> String {
    format!("62877{n:07}")
}

fn fs_phone(n: u64) -> String {
    format!("62878{n:07}")
}

/// protocols.md §2: JSON orders, errors as 4xx with a short text, Bearer token.
fn five_sim(s: &mut State, path: &str, auth: &str, mode: Mode) -> (u16, &'static str, String) {
    let json = |v: Value| (200, "application/json", v.to_string());
    if path == "/v1/guest/prices" {
        return json(json!({
            "indonesia": {
                "telegram": {
                    "telkomsel": {"cost": 0.4, "count": 5, "rate": 99.1},
                    "virtual21": {"cost": 0.3, "count": 0},
                    "indosat": {"cost": 0.45, "count": 3}
                },
                "nosuchproduct": {"any": {"cost": 1, "count": 1}}
            },
            "atlantis": {"telegram": {"any": {"cost": 1, "count": 1}}}
        }));
    }
    if auth != format!("Bearer {FS_TOKEN}") {
        return (401, "text/plain", "Unauthorized".into());
    }
    let order = |id: &str, status: &str, sms: Value| {
        json!({
            "id": id.parse::<u64>().unwrap_or(0), "phone": format!("+{}", fs_phone(id.parse::<u64>().unwrap_or(0) - 700_000)),
            "operator": "telkomsel", "product": "telegram", "price": 0.4, "status": status,
            "expires": "2030-01-01T00:20:00.000000Z", "sms": sms,
            "created_at": "2030-01-01T00:00:00.000000Z", "forwarding": false,
            "forwarding_number": "", "country": "indonesia"
        })
    };
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["v1", "user", "profile"] => json(json!({
            "id": 1, "email": "reseller@example.com", "vendor": "", "balance": 12.34,
            "rating": 96, "default_country": {"name": "russia", "iso": "ru", "prefix": "+7"},
            "default_operator": {"name": ""}, "frozen_balance": 0
        })),
        ["v1", "user", "buy", "activation", "indonesia", "any", "telegram"] => match mode {
            Mode::NoNumbers => (400, "text/plain", "no free phones".into()),
            Mode::NoBalance => (400, "text/plain", "not enough user balance".into()),
            _ => {
                s.sold += 1;
                let id = (700_000 + s.sold).to_string();
                json(order(&id, "PENDING", Value::Null))
            }
        },
        ["v1", "user", "buy", ..] => (400, "text/plain", "no product".into()),
        ["v1", "user", "check", id] => {
            let status = if s.canceled.iter().any(|c| c == id) {
                "CANCELED"
            } else {
                "RECEIVED"
            };
            let sms = match s.codes.get(*id) {
                Some(code) => json!([{
                    "created_at": "2030-01-01T00:01:00.000000Z", "date": "2030-01-01T00:01:00.000000Z",
                    "sender": "Telegram", "text": format!("Telegram code {code}. Do not share it."),
                    "code": code
                }]),
                None => json!([]),
            };
            json(order(id, status, sms))
        }
        ["v1", "user", action @ ("finish" | "cancel" | "ban"), id] => {
            let status = match *action {
                "finish" => "FINISHED",
                "cancel" => "CANCELED",
                _ => "BANNED",
            };
            json(order(id, status, json!([])))
        }
        _ => (404, "text/plain", "not found".into()),
    }
}

// ---------------------------------------------------------------------------------------
// Helpers

fn server(extra: &[(&str, &str)]) -> TestServer {
    let mut b = TestServer::builder().envs(&[
        ("OTPBOX_DEV_CLOCK", "true"),
        ("OTPBOX_API_RATE", "0"),
        ("OTPBOX_API_IP_RATE", "0"),
        ("OTPBOX_UPSTREAM_TIMEOUT", "2s"),
    ]);
    for (k, v) in extra {
        b = b.env(k, v);
    }
    b.start()
}

/// `otpbox provider add` for the fake SMS-Activate server; the id printed.
fn add_sms_activate(s: &TestServer, fake: &Fake, markup: &str) -> String {
    let out = s.cli_ok(&[
        "provider",
        "add",
        "--kind",
        "sms-activate",
        "--url",
        &fake.url(),
        "--key",
        SA_KEY,
        "--markup",
        markup,
        "--name",
        "FakeActivate",
    ]);
    assert!(out.contains("offers=2"), "{out}");
    assert!(!out.contains(SA_KEY), "{out}");
    out.lines()
        .find_map(|l| l.strip_prefix("provider_id="))
        .expect("provider_id= line")
        .to_string()
}

/// `otpbox provider add` for the fake 5sim server; the id printed.
fn add_5sim(s: &TestServer, fake: &Fake, markup: &str, priority: &str) -> String {
    let out = s.cli_ok(&[
        "provider",
        "add",
        "--kind",
        "5sim",
        "--url",
        &fake.url(),
        "--key",
        FS_TOKEN,
        "--markup",
        markup,
        "--priority",
        priority,
    ]);
    assert!(out.contains("offers=1"), "{out}");
    out.lines()
        .find_map(|l| l.strip_prefix("provider_id="))
        .expect("provider_id= line")
        .to_string()
}

/// The SMS-Activate protocol of our server, as a customer's tool speaks it.
fn handler(s: &TestServer, key: &str, action: &str, params: &str) -> String {
    let r = s
        .client()
        .get(&format!("{HANDLER}?api_key={key}&action={action}&{params}"));
    assert_eq!(r.status, 200, "{action}: {}", r.text());
    r.text()
}

fn balance(s: &TestServer, email: &str) -> i64 {
    s.db()
        .query_row(
            "SELECT balance_minor FROM users WHERE email = ?1",
            [email],
            |r| r.get(0),
        )
        .unwrap()
}

/// Five seconds pass (a live upstream order is polled every 5 s) and the jobs run.
fn tick(s: &TestServer) {
    s.advance_clock(5);
    s.run_jobs();
}

/// The customer's web session (the order form).
fn web(s: &TestServer, email: &str) -> Client {
    let mut c = s.client();
    assert_eq!(c.login(email, PASSWORD).location(), Some("/dashboard"));
    c
}

fn admin(s: &TestServer) -> Client {
    s.signed_in("admin@example.com", "admin").0
}

/// A customer with `amount` and its API key (for the SMS-Activate protocol).
fn customer(s: &TestServer, email: &str, amount: &str) -> (Api, String) {
    s.create_user(email, "user", PASSWORD);
    s.cli_ok(&["user", "credit", "--email", email, "--amount", amount]);
    let key = s.api_key(email);
    let id = s.user_id(email).unwrap();
    (Api::new(s, &key, id, email), key)
}

fn no_busy_numbers(s: &TestServer) {
    assert_eq!(
        s.count("SELECT COUNT(*) FROM numbers WHERE state = 'busy'"),
        0
    );
}

/// `ACCESS_NUMBER:id:phone` → (id, phone).
fn access_number(text: &str) -> (i64, String) {
    let rest = text
        .strip_prefix("ACCESS_NUMBER:")
        .unwrap_or_else(|| panic!("not a number: {text}"));
    let (id, phone) = rest.split_once(':').unwrap();
    (id.parse().unwrap(), phone.to_string())
}

fn assert_no_key(what: &str, text: &str) {
    for k in [SA_KEY, FS_TOKEN] {
        assert!(!text.contains(k), "the key shows in {what}");
    }
}

// ---------------------------------------------------------------------------------------
// Tests

/// The order form's row of `service` on a dashboard page (price, stock, success rate).
fn offered(page: &str, service: &str) -> String {
    page.split(&format!("data-service=\"{service}\">"))
        .nth(1)
        .and_then(|s| s.split("</label>").next())
        .unwrap_or_else(|| panic!("{service} is not offered:\n{page}"))
        .to_string()
}

#[test]
fn a_full_order_through_an_sms_activate_provider() {
    let fake = Fake::start(Kind::SmsActivate);
    let s = server(&[]);
    let pid = add_sms_activate(&s, &fake, "20%");
    assert_eq!(fake.count(&["action=getBalance", SA_KEY]), 1);
    assert_eq!(fake.count(&["action=getPrices"]), 1);
    let (mut api, key) = customer(&s, "sa@example.com", "10.00");

    // Cost 0.50 + 20% = 0.60; 7 in stock; the unknown pairs of the price list are dropped.
    let page = web(&s, "sa@example.com").get("/dashboard?country=6").text();
    let tg = offered(&page, "tg");
    assert!(tg.contains("0.60 USD") && tg.contains("7 in stock"), "{tg}");
    let wa = offered(&page, "wa");
    assert!(wa.contains("0.30 USD") && wa.contains("3 in stock"), "{wa}");
    // A rental never buys upstream: the rentals page offers none of that stock, and renting
    // says there is no number (nothing charged).
    let mut renter = web(&s, "sa@example.com");
    let rentals = renter.get("/rentals?country=6").text();
    let tg_rent = rentals
        .split("value=\"tg\"")
        .nth(1)
        .and_then(|r| r.split("</label>").next())
        .unwrap();
    assert!(tg_rent.contains("out of stock"), "{tg_rent}");
    assert!(rentals.contains("id=\"no-stock\""), "{rentals}");
    let r = renter.submit(
        "/rentals?country=6",
        "/rentals",
        &[("country", "6"), ("service", "tg"), ("hours", "4")],
    );
    assert_eq!(r.status, 303);
    assert_eq!(api.balance(), 1000);
    let prices: Value =
        serde_json::from_str(&handler(&s, &key, "getPrices", "country=6&service=tg")).unwrap();
    assert_eq!(prices["6"]["tg"]["cost"], json!(0.6));
    assert_eq!(prices["6"]["tg"]["count"], json!(7));
    let status: Value =
        serde_json::from_str(&handler(&s, &key, "getNumbersStatus", "country=6")).unwrap();
    assert_eq!(status["tg_0"], json!(7));

    // Ordered through the SMS-Activate protocol: bought upstream, charged our price.
    let (id, phone) = access_number(&handler(&s, &key, "getNumber", "service=tg&country=6"));
    assert_eq!(phone, sa_phone(1));
    assert_eq!(
        fake.count(&["action=getNumber", "service=tg", "country=6", SA_KEY]),
        1
    );
    assert_eq!(handler(&s, &key, "getBalance", ""), "ACCESS_BALANCE:9.40");
    assert_eq!(
        handler(&s, &key, "getStatus", &format!("id={id}")),
        "STATUS_WAIT_CODE"
    );

    // The code is polled and delivered through the ingestion path.
    tick(&s);
    assert!(fake.count(&["action=getStatus", "id=900001"]) >= 1);
    fake.give_code("900001", "48213");
    tick(&s);
    assert_eq!(
        handler(&s, &key, "getStatus", &format!("id={id}")),
        "STATUS_OK:48213"
    );
    assert_eq!(
        s.count(&format!(
            "SELECT COUNT(*) FROM messages WHERE activation_id = {id}"
        )),
        1
    );
    tick(&s);
    assert_eq!(s.stored_messages(id), 1, "polled again, delivered once");

    // Another code asked for: forwarded upstream (setStatus 3); finish: setStatus 6.
    assert_eq!(
        handler(&s, &key, "setStatus", &format!("id={id}&status=3")),
        "ACCESS_RETRY_GET"
    );
    tick(&s);
    assert_eq!(
        fake.count(&["action=setStatus", "id=900001", "status=3"]),
        1
    );
    assert_eq!(
        handler(&s, &key, "setStatus", &format!("id={id}&status=6")),
        "ACCESS_ACTIVATION"
    );
    tick(&s);
    assert_eq!(
        fake.count(&["action=setStatus", "id=900001", "status=6"]),
        1
    );
    tick(&s);
    assert_eq!(
        fake.count(&["action=setStatus", "id=900001", "status=6"]),
        1,
        "told once"
    );

    // The native API buys upstream too; its code reaches the order; complete → finish.
    let a = api.order_ok("tg");
    let aid = id_of(&a);
    assert_eq!(a["phone"], json!(sa_phone(2)));
    assert_eq!(a["price_minor"], json!(60));
    fake.give_code("900002", "77001");
    tick(&s);
    assert_eq!(api.activation(aid)["code"], json!("77001"));
    assert_eq!(api.act(aid, "complete").status, 200);
    tick(&s);
    assert_eq!(
        fake.count(&["action=setStatus", "id=900002", "status=6"]),
        1
    );
    assert_eq!(balance(&s, "sa@example.com"), 1000 - 120);
    no_busy_numbers(&s);

    // The admin sees the provider's health; nobody ever sees its key.
    let mut adm = admin(&s);
    let list = adm.get("/admin/providers");
    assert_eq!(list.status, 200);
    let html = list.text();
    assert!(
        html.contains("FakeActivate") && html.contains(">ok<"),
        "{html}"
    );
    assert!(html.contains("25.00 USD"), "balance shown: {html}");
    assert!(
        html.contains("upstream: FakeActivate"),
        "routing table: {html}"
    );
    assert_no_key("the provider list", &html);
    let detail = adm.get(&format!("/admin/providers/{pid}")).text();
    assert!(
        detail.contains("Latest calls") && detail.contains("buy") && detail.contains("status"),
        "{detail}"
    );
    assert_no_key("the provider page", &detail);
    assert_no_key("provider list", &s.cli_ok(&["provider", "list"]));
    assert_no_key("the audit log", &adm.get("/admin/audit").text());
    assert_no_key("the server's output", &s.output());
    s.assert_books_balance();
}

#[test]
fn a_full_order_through_a_5sim_provider_added_in_the_admin_pages() {
    let fake = Fake::start(Kind::FiveSim);
    let s = server(&[]);
    let mut adm = admin(&s);
    let r = adm.submit(
        "/admin/providers",
        "/admin/providers",
        &[
            ("kind", "5sim"),
            ("name", "FakeFive"),
            ("url", &fake.url()),
            ("key", FS_TOKEN),
            ("markup", "12.5%"),
            ("priority", "3"),
            ("unit", "100"),
        ],
    );
    assert!(
        r.location()
            .is_some_and(|l| l.starts_with("/admin/providers/")),
        "{}",
        r.text()
    );
    assert_no_key("the redirect after adding", &r.text());
    let r = adm.follow(&r);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("Provider added. Synced 1 offers."),
        "{}",
        r.text()
    );
    assert_no_key("the page after adding", &r.text());
    assert!(fake
        .state
        .lock()
        .unwrap()
        .auth
        .iter()
        .any(|a| a == &format!("Bearer {FS_TOKEN}")));
    let (mut api, _) = customer(&s, "fs@example.com", "10.00");

    // The cheapest operator with stock (0.40) + 12.5% = 0.45; 5 + 3 in stock.
    let prices = api
        .get("/v1/guest/prices?country=indonesia&product=telegram")
        .json();
    assert_eq!(prices["indonesia"]["telegram"]["any"]["cost"], json!(0.45));
    assert_eq!(prices["indonesia"]["telegram"]["any"]["count"], json!(8));
    let page = web(&s, "fs@example.com").get("/dashboard?country=6").text();
    let tg = offered(&page, "tg");
    assert!(tg.contains("0.45 USD") && tg.contains("8 in stock"), "{tg}");

    // Bought through our 5sim API.
    let r = api.get("/v1/user/buy/activation/indonesia/any/telegram");
    assert_eq!(r.status, 200, "{}", r.text());
    let order = r.json();
    let id = order["id"].as_i64().unwrap();
    assert_eq!(order["phone"], json!(format!("+{}", fs_phone(1))));
    assert_eq!(order["price"], json!(0.45));
    assert_eq!(
        fake.count(&["/v1/user/buy/activation/indonesia/any/telegram"]),
        1
    );

    fake.give_code("700001", "55120");
    tick(&s);
    assert!(fake.count(&["/v1/user/check/700001"]) >= 1);
    let checked = api.get(&format!("/v1/user/check/{id}")).json();
    assert_eq!(checked["sms"][0]["code"], json!("55120"));
    assert_eq!(
        checked["sms"][0]["text"],
        json!("Telegram code 55120. Do not share it.")
    );
    let done = api.get(&format!("/v1/user/finish/{id}"));
    assert_eq!(done.status, 200, "{}", done.text());
    tick(&s);
    assert_eq!(fake.count(&["/v1/user/finish/700001"]), 1);

    // Through the native API, then cancelled by the customer: cancel told upstream.
    let a = api.order_ok("tg");
    let aid = id_of(&a);
    assert_eq!(a["operator"], json!("telkomsel"));
    s.advance_clock(130);
    assert_eq!(api.act(aid, "cancel").status, 200);
    tick(&s);
    assert_eq!(fake.count(&["/v1/user/cancel/700002"]), 1);
    // A number-used report bans it upstream.
    let b = id_of(&api.order_ok("tg"));
    s.advance_clock(130);
    assert_eq!(api.act(b, "used").status, 200);
    tick(&s);
    assert_eq!(fake.count(&["/v1/user/ban/700003"]), 1);

    assert_eq!(balance(&s, "fs@example.com"), 1000 - 45);
    no_busy_numbers(&s);
    assert_no_key("the provider list", &adm.get("/admin/providers").text());
    assert_no_key("the server's output", &s.output());
    s.assert_books_balance();
}

/// Each failure mode in turn against a provider of `kind`: NO_NUMBERS answered, the order
/// closed and refunded, nothing left busy, the failures recorded without the key.
fn failing_upstreams(kind: Kind) {
    let fake = Fake::start(kind);
    let s = server(&[
        ("OTPBOX_UPSTREAM_TIMEOUT", "1s"),
        ("OTPBOX_PROVIDER_FAILURES", "100"),
    ]);
    let price = match kind {
        Kind::SmsActivate => {
            add_sms_activate(&s, &fake, "20%");
            60
        }
        Kind::FiveSim => {
            add_5sim(&s, &fake, "12.5%", "0");
            45
        }
    };
    let (mut api, key) = customer(&s, "f@example.com", "10.00");
    let buys = || fake.count(&["action=getNumber"]) + fake.count(&["/user/buy/"]);
    let tg_count = || -> Value {
        let p: Value =
            serde_json::from_str(&handler(&s, &key, "getPrices", "country=6&service=tg")).unwrap();
        p["6"]["tg"]["count"].clone()
    };
    let mut orders = 0;
    for mode in [
        Mode::Slow,
        Mode::Error500,
        Mode::Garbage,
        Mode::NoNumbers,
        Mode::NoBalance,
    ] {
        // A sync first: the provider's stock and balance as it says.
        fake.set_mode(Mode::Normal);
        s.run_jobs();
        assert_ne!(tg_count(), json!(0), "{mode:?}");
        fake.set_mode(mode);
        let before = buys();
        let started = std::time::Instant::now();
        assert_eq!(
            handler(&s, &key, "getNumber", "service=tg&country=6"),
            "NO_NUMBERS",
            "{mode:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{mode:?} bounded by the timeout"
        );
        assert_eq!(buys(), before + 1, "{mode:?}");
        orders += 1;
        let r = api.order("tg");
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (409, "no_numbers"),
            "{mode:?}"
        );
        if matches!(mode, Mode::NoNumbers | Mode::NoBalance) {
            // Taken at its word until the next sync: nothing on sale, not asked again.
            assert_eq!(buys(), before + 1, "{mode:?}");
            assert_eq!(tg_count(), json!(0), "{mode:?}");
        } else {
            orders += 1;
        }
        assert_eq!(balance(&s, "f@example.com"), 1000, "{mode:?}");
    }
    // Every attempt left a closed, refunded order (charge and refund) and no busy number.
    let ids: Vec<i64> = {
        let db = s.db();
        let mut st = db
            .prepare("SELECT id FROM activations ORDER BY id")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert_eq!(ids.len(), orders);
    for id in ids {
        let ledger = s.ledger_of("activation", id);
        assert_eq!(
            ledger,
            vec![("charge".into(), -price), ("refund".into(), price)],
            "{id}"
        );
        let state: (String, String) = s
            .db()
            .query_row(
                "SELECT a.status, u.state FROM activations a JOIN upstream_orders u \
                 ON u.activation_id = a.id WHERE a.id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(state, ("canceled".into(), "closed".into()));
    }
    assert!(
        api.get("/api/v1/activations?status=live").json()["activations"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    no_busy_numbers(&s);
    // The failures are recorded, scrubbed of the key. (Only the purchases: the scheduled
    // sync may run into a slow mode when the test spans a five-minute mark.)
    let errors: Vec<String> = {
        let db = s.db();
        let mut st = db
            .prepare("SELECT error FROM provider_calls WHERE ok = 0 AND action = 'buy'")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert_eq!(errors.len(), 6, "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("HTTP 500")), "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("unexpected answer")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("connection")),
        "{errors:?}"
    );
    for e in &errors {
        assert_no_key("a recorded error", e);
    }
    assert_no_key(
        "the provider page",
        &admin(&s).get("/admin/providers/1").text(),
    );
    assert_no_key("the server's output", &s.output());
    s.assert_books_balance();
}

#[test]
fn failing_sms_activate_upstreams_leave_the_customer_refunded_and_the_order_closed() {
    failing_upstreams(Kind::SmsActivate);
}

#[test]
fn failing_5sim_upstreams_leave_the_customer_refunded_and_the_order_closed() {
    failing_upstreams(Kind::FiveSim);
}

#[test]
fn a_failing_provider_is_passed_over_for_the_next_at_its_own_price() {
    let sa = Fake::start(Kind::SmsActivate);
    let fs = Fake::start(Kind::FiveSim);
    let s = server(&[]);
    // The SMS-Activate provider (0.60) has the higher priority; 5sim (0.45) comes next.
    let out = s.cli_ok(&[
        "provider",
        "add",
        "--kind",
        "sms-activate",
        "--url",
        &sa.url(),
        "--key",
        SA_KEY,
        "--priority",
        "5",
    ]);
    assert!(out.contains("offers=2"), "{out}");
    add_5sim(&s, &fs, "12.5%", "0");
    let (_, key) = customer(&s, "next@example.com", "10.00");
    sa.set_mode(Mode::Error500);
    let (id, phone) = access_number(&handler(&s, &key, "getNumber", "service=tg&country=6"));
    assert_eq!(phone, fs_phone(1));
    assert_eq!(sa.count(&["action=getNumber"]), 1);
    // Held at the dearer price while buying, charged the price of the one that sold.
    assert_eq!(
        s.ledger_of("activation", id),
        vec![("charge".into(), -60), ("adjustment".into(), 15)]
    );
    assert_eq!(handler(&s, &key, "getBalance", ""), "ACCESS_BALANCE:9.55");
    fs.give_code("700001", "24680");
    tick(&s);
    assert_eq!(
        handler(&s, &key, "getStatus", &format!("id={id}")),
        "STATUS_OK:24680"
    );
    s.assert_books_balance();
}

#[test]
fn a_code_after_our_expiry_is_not_delivered_nor_charged_and_the_upstream_is_cancelled() {
    let fake = Fake::start(Kind::SmsActivate);
    let s = server(&[]);
    add_sms_activate(&s, &fake, "20%");
    let (_, key) = customer(&s, "late@example.com", "10.00");
    let (id, _) = access_number(&handler(&s, &key, "getNumber", "service=tg&country=6"));
    tick(&s);
    assert_eq!(
        handler(&s, &key, "getStatus", &format!("id={id}")),
        "STATUS_WAIT_CODE"
    );
    // Our 20 minutes pass; then the provider has a code.
    s.advance_clock(1201);
    fake.give_code("900001", "31337");
    tick(&s);
    assert_eq!(
        handler(&s, &key, "getStatus", &format!("id={id}")),
        "STATUS_CANCEL"
    );
    assert_eq!(s.stored_messages(id), 0);
    assert_eq!(
        s.ledger_of("activation", id),
        vec![("charge".into(), -60), ("refund".into(), 60)]
    );
    assert_eq!(balance(&s, "late@example.com"), 1000);
    assert_eq!(
        fake.count(&["action=setStatus", "id=900001", "status=8"]),
        1
    );
    tick(&s);
    assert_eq!(
        fake.count(&["action=setStatus", "id=900001"]),
        1,
        "told once"
    );
    assert_eq!(
        fake.count(&["action=getStatus", "id=900001"]),
        1,
        "no more polling"
    );
    no_busy_numbers(&s);
    s.assert_books_balance();
}

#[test]
fn a_provider_side_cancel_refunds_the_order() {
    let fake = Fake::start(Kind::SmsActivate);
    let s = server(&[]);
    add_sms_activate(&s, &fake, "20%");
    let (_, key) = customer(&s, "pc@example.com", "10.00");
    let (id, _) = access_number(&handler(&s, &key, "getNumber", "service=tg&country=6"));
    fake.cancel_upstream("900001");
    tick(&s);
    assert_eq!(
        handler(&s, &key, "getStatus", &format!("id={id}")),
        "STATUS_CANCEL"
    );
    assert_eq!(balance(&s, "pc@example.com"), 1000);
    assert_eq!(
        fake.count(&["action=setStatus"]),
        0,
        "nothing to tell a cancelled order"
    );
    s.assert_books_balance();
}

#[test]
fn the_circuit_breaker_pauses_a_failing_provider_and_its_stock_disappears() {
    let fake = Fake::start(Kind::SmsActivate);
    let s = server(&[
        ("OTPBOX_PROVIDER_FAILURES", "2"),
        ("OTPBOX_PROVIDER_PAUSE", "5m"),
    ]);
    add_sms_activate(&s, &fake, "20%");
    let (_, key) = customer(&s, "cb@example.com", "10.00");
    let tg_count = |s: &TestServer| -> Value {
        let p: Value =
            serde_json::from_str(&handler(s, &key, "getPrices", "country=6&service=tg")).unwrap();
        p["6"]["tg"]["count"].clone()
    };
    assert_eq!(tg_count(&s), json!(7));
    fake.set_mode(Mode::Error500);
    for _ in 0..2 {
        assert_eq!(
            handler(&s, &key, "getNumber", "service=tg&country=6"),
            "NO_NUMBERS"
        );
    }
    // Paused: its stock is gone and it is not called any more.
    assert_eq!(tg_count(&s), json!(0));
    let calls = fake.calls().len();
    assert_eq!(
        handler(&s, &key, "getNumber", "service=tg&country=6"),
        "NO_NUMBERS"
    );
    tick(&s);
    assert_eq!(fake.calls().len(), calls, "a paused provider is left alone");
    let page = admin(&s).get("/admin/providers").text();
    assert!(page.contains("paused until"), "{page}");
    assert!(page.contains("HTTP 500"), "{page}");
    // The pause ends; the provider answers again; its stock is back.
    fake.set_mode(Mode::Normal);
    s.advance_clock(301);
    tick(&s);
    assert_eq!(tg_count(&s), json!(7));
    let (_, phone) = access_number(&handler(&s, &key, "getNumber", "service=tg&country=6"));
    assert_eq!(phone, sa_phone(1));
    s.assert_books_balance();
}

#[test]
fn own_numbers_are_sold_before_upstream_ones() {
    let fake = Fake::start(Kind::SmsActivate);
    let s = server(&[]);
    add_sms_activate(&s, &fake, "20%");
    s.add_numbers(6, &["6281100000001", "6281100000002"]);
    s.db()
        .execute(
            "UPDATE prices SET price_minor = 80 WHERE country_id = 6 AND service = 'tg' AND operator = ''",
            [],
        )
        .unwrap();
    let (_, key) = customer(&s, "own@example.com", "10.00");
    // Own stock shows at the catalogue price, with the upstream stock counted in.
    let p: Value =
        serde_json::from_str(&handler(&s, &key, "getPrices", "country=6&service=tg")).unwrap();
    assert_eq!(
        p["6"]["tg"],
        json!({"cost": 0.8, "count": 9, "physicalCount": 9})
    );
    let (a, phone) = access_number(&handler(&s, &key, "getNumber", "service=tg&country=6"));
    assert_eq!(phone, "6281100000001");
    // Below the catalogue price, the cheaper upstream serves even while own stock is left.
    let (b, phone) = access_number(&handler(
        &s,
        &key,
        "getNumber",
        "service=tg&country=6&maxPrice=0.70",
    ));
    assert_eq!(phone, sa_phone(1));
    let (c, phone) = access_number(&handler(&s, &key, "getNumber", "service=tg&country=6"));
    assert_eq!(phone, "6281100000002");
    // Own stock gone: upstream.
    let (d, phone) = access_number(&handler(&s, &key, "getNumber", "service=tg&country=6"));
    assert_eq!(phone, sa_phone(2));
    assert_eq!(fake.count(&["action=getNumber"]), 2);
    let price = |id: i64| -> i64 {
        s.db()
            .query_row(
                "SELECT price_minor FROM activations WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!([price(a), price(b), price(c), price(d)], [80, 60, 80, 60]);
    // Too low for anyone: the lowest price on offer is named.
    assert_eq!(
        handler(&s, &key, "getNumber", "service=tg&country=6&maxPrice=0.10"),
        "WRONG_MAX_PRICE:0.60"
    );
    assert_eq!(balance(&s, "own@example.com"), 1000 - 280);
    s.assert_books_balance();
}

#[test]
fn concurrent_upstream_orders_charge_exactly_what_the_balance_allows() {
    let fake = Fake::start(Kind::SmsActivate);
    let s = Arc::new(server(&[]));
    add_sms_activate(&s, &fake, "20%");
    // Enough for five orders at 0.60.
    let (_, key) = customer(&s, "race@example.com", "3.00");
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let answers: Vec<String> = (0..8)
        .map(|_| {
            let (s, key, barrier) = (s.clone(), key.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                handler(&s, &key, "getNumber", "service=tg&country=6")
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let mut phones: Vec<String> = answers
        .iter()
        .filter(|a| a.starts_with("ACCESS_NUMBER:"))
        .map(|a| access_number(a).1)
        .collect();
    assert_eq!(phones.len(), 5, "{answers:?}");
    assert_eq!(
        answers.iter().filter(|a| *a == "NO_BALANCE").count(),
        3,
        "{answers:?}"
    );
    phones.sort();
    phones.dedup();
    assert_eq!(phones.len(), 5, "each a different number");
    assert_eq!(
        fake.count(&["action=getNumber"]),
        5,
        "only paid orders are bought"
    );
    assert_eq!(balance(&s, "race@example.com"), 0);
    s.assert_books_balance();
}

/// An order waiting for its provider gives its worker's CPU slot up: with as many orders
/// waiting as the machine has cores, the server still answers at once (it has two workers
/// per core, and only one per core holds a slot).
#[test]
fn orders_waiting_for_a_slow_provider_leave_the_server_answering() {
    let fake = Fake::start(Kind::SmsActivate);
    let s = Arc::new(server(&[("OTPBOX_UPSTREAM_TIMEOUT", "10s")]));
    add_sms_activate(&s, &fake, "20%");
    let (_, key) = customer(&s, "slow@example.com", "10.00");
    fake.set_mode(Mode::Slow);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let waiting: Vec<_> = (0..cores)
        .map(|_| {
            let (s, key) = (s.clone(), key.clone());
            std::thread::spawn(move || handler(&s, &key, "getNumber", "service=tg&country=6"))
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while fake.count(&["action=getNumber"]) < cores {
        assert!(
            std::time::Instant::now() < deadline,
            "the orders never reached the provider"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every order now waits (3 s) for the provider.
    let started = std::time::Instant::now();
    let answer = handler(&s, &key, "getBalance", "");
    let took = started.elapsed();
    assert!(answer.starts_with("ACCESS_BALANCE:"), "{answer}");
    assert!(
        took < Duration::from_millis(1500),
        "getBalance took {took:?} while {cores} orders waited for their provider"
    );
    for t in waiting {
        let answer = t.join().unwrap();
        assert!(answer.starts_with("ACCESS_NUMBER:"), "{answer}");
    }
    s.assert_books_balance();
}

#[test]
fn the_admin_edits_disables_and_deletes_providers_and_never_sees_the_key() {
    let fake = Fake::start(Kind::SmsActivate);
    let s = server(&[]);
    let pid = add_sms_activate(&s, &fake, "20%");
    let (_, key) = customer(&s, "ed@example.com", "10.00");
    let tg = |s: &TestServer| -> Value {
        let p: Value =
            serde_json::from_str(&handler(s, &key, "getPrices", "country=6&service=tg")).unwrap();
        p["6"]["tg"].clone()
    };
    let mut adm = admin(&s);
    let page = format!("/admin/providers/{pid}");
    let form = adm.get(&page).text();
    assert!(
        form.contains(r#"name="key" value="""#),
        "the key field is empty"
    );
    assert_no_key("the edit form", &form);
    let save = |adm: &mut Client, fields: &[(&str, &str)]| {
        let mut all = vec![
            ("name", "FakeActivate"),
            ("url", "PLACEHOLDER"),
            ("key", ""),
            ("markup", "20%"),
            ("priority", "0"),
            ("unit", "100"),
            ("enabled", "1"),
        ];
        for (k, v) in fields {
            all.retain(|(n, _)| n != k);
            all.push((k, v));
        }
        let url = fake.url();
        let all: Vec<(&str, &str)> = all
            .into_iter()
            .map(|(k, v)| (k, if v == "PLACEHOLDER" { url.as_str() } else { v }))
            .collect();
        adm.submit(&page, &page, &all)
    };
    // A new markup reprices the offers at once.
    let r = save(&mut adm, &[("markup", "50%")]);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(tg(&s)["cost"], json!(0.75));
    // A bad markup changes nothing and says why.
    let r = save(&mut adm, &[("markup", "lots")]);
    assert_eq!(r.location(), Some(page.as_str()), "{}", r.text());
    let back = adm.follow(&r).text();
    assert!(back.contains("not a markup"), "{back}");
    assert!(
        back.contains("value=\"lots\""),
        "the markup is kept: {back}"
    );
    assert_no_key("the page after a refused edit", &back);
    assert_eq!(tg(&s)["cost"], json!(0.75));
    // Disabled: its stock is gone; enabled again: back.
    let r = save(&mut adm, &[("markup", "50%"), ("enabled", "")]);
    assert_eq!(r.status, 303);
    assert_eq!(tg(&s)["count"], json!(0));
    assert_eq!(save(&mut adm, &[("markup", "50%")]).status, 303);
    assert_eq!(tg(&s)["count"], json!(7));
    // A replaced key is used from then on (the fake knows only the first one).
    assert_eq!(
        save(&mut adm, &[("markup", "50%"), ("key", "another-KEY-0000")]).status,
        303
    );
    let r = adm.submit(&page, &format!("{page}/sync"), &[]);
    let r = adm.follow(&r);
    assert_eq!(r.status, 200);
    assert!(
        r.text()
            .contains("BAD_KEY: the provider refused the API key"),
        "{}",
        r.text()
    );
    assert!(fake.count(&["another-KEY-0000"]) >= 1);
    assert_eq!(
        save(&mut adm, &[("markup", "50%"), ("key", SA_KEY)]).status,
        303
    );
    let r = adm.submit(&page, &format!("{page}/sync"), &[]);
    let r = adm.follow(&r);
    assert!(r.text().contains("Synced 2 offers."), "{}", r.text());
    // The audit log names the changes, never the keys.
    let audit = adm.get("/admin/audit").text();
    assert!(
        audit.contains("key replaced") && audit.contains("markup 50%"),
        "{audit}"
    );
    assert_no_key("the audit log", &audit);
    assert!(!audit.contains("another-KEY-0000"));
    // A provider that sold a number cannot be deleted; one that did not can.
    handler(&s, &key, "getNumber", "service=tg&country=6");
    let r = adm.submit(&page, &format!("{page}/delete"), &[]);
    let back = adm.follow(&r).text();
    assert!(
        back.contains("This provider has orders; disable it instead of deleting it."),
        "{back}"
    );
    assert_eq!(s.count("SELECT COUNT(*) FROM providers"), 1);
    let other = Fake::start(Kind::FiveSim);
    let id2 = add_5sim(&s, &other, "10%", "0");
    let p2 = format!("/admin/providers/{id2}");
    let r = adm.submit(&p2, &format!("{p2}/delete"), &[]);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(s.count("SELECT COUNT(*) FROM providers"), 1);
    assert_eq!(
        s.count("SELECT COUNT(*) FROM provider_offers WHERE provider_id = 2"),
        0
    );
    assert_no_key("the server's output", &s.output());
    s.assert_books_balance();
}
