//! The marketplace over HTTP, one customer at a time: the demo flow through the dashboard,
//! every activation transition allowed and refused over the native API, expiry and the SMS
//! purge by moving the clock, rentals, and late SMS. The races are in `marketplace_races.rs`.

mod common;

use common::market::{error_code, id_of, Api, COUNTRY};
use common::{csrf_of, TestServer};
use serde_json::{json, Value};

const DEMO_EMAIL: &str = "demo@example.com";
const DEMO_PASSWORD: &str = "demo-password";
/// The demo customer's starting balance (50.00).
const DEMO_BALANCE: i64 = 5000;

/// "0.60 USD" for 60.
fn usd(minor: i64) -> String {
    format!("{}.{:02} USD", minor / 100, minor % 100)
}

/// The text between `start` and the next `end` after it.
fn between<'a>(html: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = html.find(start)? + start.len();
    let len = html[from..].find(end)?;
    Some(&html[from..from + len])
}

/// The `<article>` of order `id` on a dashboard or history page.
fn order_card(html: &str, id: i64) -> Option<String> {
    let start = html.find(&format!("<article class=\"card order\" data-id=\"{id}\""))?;
    let len = html[start..].find("</article>")?;
    Some(html[start..start + len].to_string())
}

fn card_status(html: &str, id: i64) -> Option<String> {
    let card = order_card(html, id)?;
    between(&card, "data-status=\"", "\"").map(str::to_string)
}

fn card_code(html: &str, id: i64) -> Option<String> {
    let card = order_card(html, id)?;
    between(&card, "<span class=\"code\">", "</span>").map(str::to_string)
}

/// The code shown in the history table's row of order `id`.
fn history_code(html: &str, id: i64) -> Option<String> {
    let start = html.find(&format!("<tr data-id=\"{id}\""))?;
    let len = html[start..].find("</tr>")?;
    between(&html[start..start + len], "<code>", "</code>").map(str::to_string)
}

/// The ids of the order cards on a page, in page order.
fn card_ids(html: &str) -> Vec<i64> {
    html.split("<article class=\"card order\" data-id=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].parse().unwrap())
        .collect()
}

fn balance_shown(html: &str) -> String {
    between(html, "<strong id=\"balance\">", "</strong>")
        .unwrap_or_else(|| panic!("no balance on the page:\n{html}"))
        .to_string()
}

/// The status and code the API reports for an activation.
fn state(api: &mut Api, id: i64) -> (String, Option<String>) {
    let a = api.activation(id);
    (
        a["status"].as_str().unwrap().to_string(),
        a["code"].as_str().map(str::to_string),
    )
}

/// A server with the simulator off: numbers come only from [`TestServer::add_numbers`] and
/// SMS only from `otpbox sms inject`, so every step is decided by the test.
fn manual_server(extra: &[(&str, &str)]) -> TestServer {
    TestServer::builder()
        .env("OTPBOX_DEV_CLOCK", "1")
        .envs(extra)
        .start()
}

#[test]
fn demo_flow_order_code_complete_then_cancel_and_refund() {
    let server = TestServer::builder()
        .demo()
        .envs(&[
            ("OTPBOX_DEV_CLOCK", "1"),
            ("OTPBOX_SIM_DELAY", "20s"),
            ("OTPBOX_EARLY_CANCEL", "5s"),
        ])
        .start();
    assert!(server
        .output()
        .contains("Customer: demo@example.com / demo-password"));
    // The install had no administrator: the demo made one and says how to sign in.
    assert!(server.output().contains("Admin:    admin@demo.example / "));
    let price = server.price("tg");
    let demo_id = server
        .user_id(DEMO_EMAIL)
        .expect("the demo customer exists");

    let mut web = server.client();
    let r = web.login(DEMO_EMAIL, DEMO_PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    let dash = web.get("/dashboard").text();
    assert_eq!(balance_shown(&dash), "50.00 USD");
    // The simulator supplies every pair, so the form offers Telegram as orderable, with its
    // price, stock and success rate ("new": no order ended yet).
    let row = between(&dash, "data-service=\"tg\">", "</label>").expect("tg offered");
    assert!(
        !row.contains("disabled"),
        "Telegram cannot be chosen on the demo dashboard: {row}"
    );
    assert!(row.contains(">Telegram"), "{row}");
    assert!(row.contains(&usd(price)), "{row}");
    assert!(row.contains(" in stock"), "{row}");
    assert!(row.contains(">new<"), "{row}");
    // A new visitor to the history sees the empty table's text, and the dashboard no next
    // step (the demo customer has money).
    assert!(!dash.contains("id=\"next-step\""), "{dash}");

    // Order from the dashboard form.
    let country = COUNTRY.to_string();
    let r = web.submit(
        "/dashboard",
        "/orders",
        &[("country", &country), ("service", "tg")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.location(), Some("/dashboard?country=6"));
    let dash = web.get("/dashboard?country=6").text();
    assert!(
        dash.contains(&format!("{} charged.", usd(price))) && dash.contains("class=\"flash ok\""),
        "the order's flash names the money moved: {dash}"
    );
    // Shown once: a refresh shows no flash.
    let dash = web.get("/dashboard").text();
    assert!(!dash.contains("class=\"flash ok\""), "{dash}");
    let ids = card_ids(&dash);
    assert_eq!(ids.len(), 1, "one live order on the dashboard");
    let first = ids[0];
    assert_eq!(card_status(&dash, first).as_deref(), Some("waiting"));
    assert_eq!(card_code(&dash, first), None);

    // An API key from the API itself, with the session cookie and the CSRF header.
    let csrf = csrf_of(&dash).unwrap();
    let key_body = br#"{"name": "demo script"}"#;
    let json_type = ("Content-Type", "application/json");
    let r = web.request("POST", "/api/v1/keys", &[json_type], key_body);
    assert_eq!(
        r.status,
        403,
        "a cookie without the CSRF header: {}",
        r.text()
    );
    let r = web.request(
        "POST",
        "/api/v1/keys",
        &[json_type, ("X-CSRF-Token", &csrf)],
        key_body,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let key = r.json()["key"].as_str().unwrap().to_string();
    let mut api = Api::new(&server, &key, demo_id, DEMO_EMAIL);
    let a = api.activation(first);
    assert_eq!(a["status"], "waiting");
    assert_eq!(a["price_minor"], price);
    assert_eq!(a["code"], Value::Null);

    // The SMS is not due yet; once the clock reaches the delay, it arrives.
    server.run_jobs();
    assert_eq!(state(&mut api, first), ("waiting".into(), None));
    server.advance_clock(20);
    server.run_jobs();
    let a = api.activation(first);
    assert_eq!(a["status"], "received", "{a}");
    let code = a["code"].as_str().expect("a code").to_string();
    assert!(
        code.len() == 5 && code.bytes().all(|b| b.is_ascii_digit()),
        "{code}"
    );
    assert!(a["messages"][0]["text"]
        .as_str()
        .unwrap()
        .contains(&format!("Telegram code: {code}")));
    let dash = web.get("/dashboard").text();
    assert_eq!(card_status(&dash, first).as_deref(), Some("received"));
    assert_eq!(card_code(&dash, first).as_deref(), Some(code.as_str()));
    assert_eq!(
        history_code(&web.get("/orders").text(), first).as_deref(),
        Some(code.as_str())
    );
    // What the dashboard's script long-polls, with the session cookie: the balance and each
    // order's card, rendered by the server.
    let live = web
        .request(
            "GET",
            &format!("/live?orders={first}"),
            &[("Accept", "application/json")],
            b"",
        )
        .json();
    assert_eq!(live["orders"][0]["id"], first);
    assert_eq!(live["orders"][0]["code"], code.as_str());
    assert_eq!(live["orders"][0]["status"], "received");
    let html = live["orders"][0]["html"].as_str().unwrap();
    assert!(
        html.contains(&format!("<span class=\"code\">{code}</span>")),
        "{html}"
    );
    assert!(
        html.contains(&format!("/orders/{first}/complete")),
        "{html}"
    );
    assert_eq!(live["balance"], usd(DEMO_BALANCE - price));
    // Asked again with the state it showed and no wait, the same answer comes at once.
    let state_seen = live["state"].as_str().unwrap().to_string();
    let again = web
        .request(
            "GET",
            &format!(
                "/live?orders={first}&seen={}",
                state_seen.replace(';', "%3B").replace(':', "%3A")
            ),
            &[("Accept", "application/json")],
            b"",
        )
        .json();
    assert_eq!(again["state"], live["state"]);
    // The native API still answers the session too.
    let polled = web
        .request(
            "GET",
            "/api/v1/activations?limit=50",
            &[("Accept", "application/json")],
            b"",
        )
        .json();
    assert_eq!(polled["activations"][0]["id"], first);
    assert_eq!(polled["activations"][0]["code"], code.as_str());

    // Complete it from the dashboard: the price stays charged, exactly once.
    let r = web.submit("/dashboard", &format!("/orders/{first}/complete"), &[]);
    assert_eq!(r.status, 303, "{}", r.text());
    let done = web.follow(&r).text();
    assert!(done.contains("Completed +"), "{done}");
    assert_eq!(state(&mut api, first), ("completed".into(), Some(code)));
    let wallet = web.get("/wallet").text();
    assert_eq!(balance_shown(&wallet), usd(DEMO_BALANCE - price));
    assert_eq!(api.balance(), DEMO_BALANCE - price);
    assert_eq!(
        server.ledger_of("activation", first),
        vec![("charge".to_string(), -price)]
    );

    // A second order, cancelled: refused inside the early-cancel window, refunded after it.
    let r = web.submit(
        "/dashboard",
        "/orders",
        &[("country", &country), ("service", "tg")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let second = card_ids(&web.get("/dashboard").text())[0];
    assert_ne!(second, first);
    assert_eq!(api.balance(), DEMO_BALANCE - 2 * price);
    let cancel = format!("/orders/{second}/cancel");
    let r = web.submit("/dashboard", &cancel, &[]);
    let r = web.follow(&r);
    assert!(
        r.text().contains("Cancelling is possible in"),
        "{}",
        r.text()
    );
    assert_eq!(state(&mut api, second).0, "waiting");
    server.advance_clock(5);
    let r = web.submit("/dashboard", &cancel, &[]);
    assert_eq!(r.status, 303, "{}", r.text());
    let done = web.follow(&r).text();
    assert!(
        done.contains(&format!("{} refunded.", usd(price))),
        "the cancel's flash names the refund: {done}"
    );
    assert_eq!(state(&mut api, second), ("canceled".into(), None));
    let wallet = web.get("/wallet").text();
    assert_eq!(balance_shown(&wallet), usd(DEMO_BALANCE - price));
    assert!(
        wallet.contains(&format!("refund · activation #{second}")),
        "{wallet}"
    );
    assert_eq!(
        server.ledger_of("activation", second),
        vec![
            ("charge".to_string(), -price),
            ("refund".to_string(), price)
        ]
    );

    // Its simulated SMS never comes.
    server.advance_clock(60);
    server.run_jobs();
    assert_eq!(api.activation(second)["messages"], json!([]));
    assert_eq!(api.balance(), DEMO_BALANCE - price);
    server.assert_books_balance();
}

#[test]
fn every_activation_transition_allowed_and_refused_over_the_api() {
    let server = manual_server(&[("OTPBOX_REUSE_COOLDOWN", "1h")]);
    let (num_a, num_b) = ("6281100000001", "6281100000002");
    server.add_numbers(COUNTRY, &[num_a, num_b]);
    let mut api = server.customer("ann@example.com", "10.00");
    let start = api.balance();
    assert_eq!(start, 1000);
    let price = server.price("tg");

    let a = api.order_ok("tg");
    let id = id_of(&a);
    assert_eq!(a["status"], "waiting");
    assert_eq!(a["phone"], num_a);
    assert_eq!(a["price_minor"], price);
    assert_eq!(api.balance(), start - price);

    // Waiting: nothing to complete or retry yet, and cancelling is too early.
    for action in ["complete", "retry"] {
        let r = api.act(id, action);
        assert_eq!(r.status, 409, "{action}: {}", r.text());
        assert_eq!(error_code(&r), "bad_status");
    }
    let r = api.act(id, "cancel");
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(error_code(&r), "early_cancel_denied");
    let left = r.json()["error"]["seconds_left"].as_i64().unwrap();
    assert!((100..=120).contains(&left), "seconds_left {left}");
    assert_eq!(r.header("retry-after"), Some(left.to_string().as_str()));
    assert_eq!(state(&mut api, id), ("waiting".into(), None));

    // waiting → received.
    assert!(server.inject(num_a, "Telegram code: 12345"));
    assert_eq!(
        state(&mut api, id),
        ("received".into(), Some("12345".into()))
    );
    // Only the customer who ordered the number reads it.
    let mut stranger = server.customer("mallory@example.com", "1.00");
    for path in [
        format!("/api/v1/activations/{id}"),
        "/api/v1/activations".into(),
    ] {
        let r = stranger.get(&path);
        assert!(!r.text().contains("12345"), "{path}: {}", r.text());
    }
    assert_eq!(
        stranger.get(&format!("/api/v1/activations/{id}")).status,
        404
    );
    assert_eq!(stranger.act(id, "complete").status, 404);

    // A code arrived: no cancel (not even after the window), so no refund.
    server.advance_clock(120);
    for action in ["cancel", "used"] {
        let r = api.act(id, action);
        assert_eq!(r.status, 409, "{action}: {}", r.text());
        assert_eq!(error_code(&r), "bad_status");
    }

    // received → retry → received with the new code.
    let r = api.act(id, "retry");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "retry");
    assert_eq!(state(&mut api, id), ("retry".into(), Some("12345".into())));
    assert!(server.inject(num_a, "Telegram code: 67890"));
    let a = api.activation(id);
    assert_eq!(a["status"], "received");
    assert_eq!(a["code"], "67890");
    assert_eq!(a["messages"].as_array().unwrap().len(), 2);

    // received → completed, and nothing after that.
    let r = api.act(id, "complete");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "completed");
    for action in ["complete", "retry", "cancel", "used"] {
        let r = api.act(id, action);
        assert_eq!(r.status, 409, "{action} after completion: {}", r.text());
        assert_eq!(error_code(&r), "bad_status");
    }
    assert!(!server.inject(num_a, "Telegram code: 11111"));
    assert_eq!(api.activation(id)["messages"].as_array().unwrap().len(), 2);
    assert_eq!(api.balance(), start - price);
    assert_eq!(
        server.ledger_of("activation", id),
        vec![("charge".to_string(), -price)]
    );

    // "Number already used": cancels with a refund (after the window)...
    let b = api.order_ok("tg");
    let used = id_of(&b);
    assert_eq!(
        b["phone"], num_b,
        "number A is in its reuse cooldown for tg"
    );
    let r = api.act(used, "used");
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(error_code(&r), "early_cancel_denied");
    server.advance_clock(120);
    let r = api.act(used, "used");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "canceled");
    assert_eq!(api.balance(), start - price);
    assert_eq!(
        server.ledger_of("activation", used),
        vec![
            ("charge".to_string(), -price),
            ("refund".to_string(), price)
        ]
    );
    // ...and that number never serves tg again, while A does once its cooldown passed.
    let r = api.order("tg");
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(error_code(&r), "no_numbers");
    assert_eq!(
        api.balance(),
        start - price,
        "a refused order costs nothing"
    );
    server.advance_clock(3600);
    let again = api.order_ok("tg");
    assert_eq!(again["phone"], num_a);
    let r = api.order("tg");
    assert_eq!(error_code(&r), "no_numbers", "{}", r.text());
    // The quarantine is for tg only.
    assert_eq!(api.order_ok("wa")["phone"], num_b);
    server.assert_books_balance();
}

#[test]
fn expiry_refunds_and_sms_are_purged_after_the_retention() {
    let server = manual_server(&[
        ("OTPBOX_ACTIVATION_TTL", "10m"),
        ("OTPBOX_SMS_RETENTION", "5m"),
    ]);
    let (num_a, num_b) = ("6281200000001", "6281200000002");
    server.add_numbers(COUNTRY, &[num_a, num_b]);
    let mut api = server.customer("bob@example.com", "10.00");
    let mut web = server.client();
    assert_eq!(
        web.login("bob@example.com", common::PASSWORD).location(),
        Some("/dashboard")
    );
    let price = server.price("tg");

    let silent = id_of(&api.order_ok("tg"));
    let with_sms = id_of(&api.order_ok("tg"));
    assert!(server.inject(num_b, "Telegram code: 54321"));
    let r = api.act(with_sms, "complete");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(api.balance(), 1000 - 2 * price);

    // Shortly before the retention has passed since it ended, the message is still there.
    server.advance_clock(270);
    server.run_jobs();
    assert_eq!(server.stored_messages(with_sms), 1);
    assert_eq!(state(&mut api, with_sms).1.as_deref(), Some("54321"));
    assert_eq!(
        history_code(&web.get("/orders").text(), with_sms).as_deref(),
        Some("54321")
    );

    // Once it has, the body and the code are gone from the database and from every view.
    server.advance_clock(30);
    server.run_jobs();
    assert_eq!(server.stored_messages(with_sms), 0);
    assert_eq!(
        server.count("SELECT COUNT(*) FROM messages WHERE text LIKE '%54321%' OR code = '54321'"),
        0
    );
    let a = api.activation(with_sms);
    assert_eq!(a["status"], "completed");
    assert_eq!(a["code"], Value::Null);
    assert_eq!(a["messages"], json!([]));
    let history = web.get("/orders").text();
    assert!(!history.contains("54321"), "{history}");

    // The order without SMS is still live just before its lifetime ends...
    server.advance_clock(270);
    server.run_jobs();
    assert_eq!(state(&mut api, silent).0, "waiting");
    assert_eq!(api.balance(), 1000 - 2 * price);
    // ...and expired and refunded, once, after it.
    server.advance_clock(30);
    server.run_jobs();
    server.run_jobs();
    assert_eq!(state(&mut api, silent), ("expired".into(), None));
    assert_eq!(
        server.ledger_of("activation", silent),
        vec![
            ("charge".to_string(), -price),
            ("refund".to_string(), price)
        ]
    );
    assert_eq!(api.balance(), 1000 - price);
    assert_eq!(
        server.count("SELECT COUNT(*) FROM numbers WHERE state = 'busy'"),
        0,
        "expiry frees the number"
    );
    server.assert_books_balance();
}

#[test]
fn rental_sms_cancel_refused_extend_charges_and_expiry_frees_the_number() {
    let server = manual_server(&[]);
    let phone = "6281300000001";
    server.add_numbers(COUNTRY, &[phone]);
    let mut api = server.customer("cat@example.com", "100.00");
    let start = api.balance();
    let catalogue = server
        .client()
        .get("/api/v1/catalogue?country=6&service=tg")
        .json();
    let hour = catalogue["offers"][0]["rent_hour_minor"].as_i64().unwrap();
    assert!(hour > 0);

    let r = api.post(
        "/api/v1/rentals",
        json!({"country": COUNTRY, "service": "tg", "hours": 4}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let rental = r.json();
    let id = id_of(&rental);
    assert_eq!(rental["phone"], phone);
    assert_eq!(rental["status"], "active");
    assert_eq!(rental["paid_minor"], 4 * hour);
    assert_eq!(api.balance(), start - 4 * hour);
    // The number is taken for the whole rental.
    let r = api.order("fb");
    assert_eq!(error_code(&r), "no_numbers", "{}", r.text());

    // Every SMS to the number reaches the renter.
    assert!(server.inject(phone, "Telegram code: 24680"));
    let path = format!("/api/v1/rentals/{id}");
    let got = api.get(&path).json();
    assert_eq!(got["messages"][0]["code"], "24680");
    assert!(got["messages"][0]["text"]
        .as_str()
        .unwrap()
        .contains("24680"));

    // An SMS came, so no cancel with refund, even inside the first 20 minutes.
    let r = api.post(&format!("{path}/cancel"), json!({}));
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(error_code(&r), "bad_status");

    // Extending charges the hours and moves the end.
    let r = api.post(&format!("{path}/extend"), json!({"hours": 2}));
    assert_eq!(r.status, 200, "{}", r.text());
    let extended = r.json();
    assert_eq!(extended["paid_minor"], 6 * hour);
    assert_eq!(api.balance(), start - 6 * hour);
    assert_eq!(
        server.ledger_of("rental", id),
        vec![
            ("charge".to_string(), -4 * hour),
            ("charge".to_string(), -2 * hour)
        ]
    );
    let ends: i64 = server
        .db()
        .query_row(
            "SELECT expires_at - created_at FROM rentals WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ends, 6 * 3600);

    // Past its end it cannot be extended, and expiry frees the number without a refund.
    server.advance_clock(6 * 3600);
    let r = api.post(&format!("{path}/extend"), json!({"hours": 2}));
    assert_eq!(r.status, 409, "{}", r.text());
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("expired"), "{message}");
    server.run_jobs();
    assert_eq!(api.get(&path).json()["status"], "expired");
    assert_eq!(api.balance(), start - 6 * hour);
    assert_eq!(server.ledger_of("rental", id).len(), 2);
    assert!(!server.inject(phone, "Telegram code: 13579"), "late SMS");
    assert_eq!(
        api.get(&path).json()["messages"].as_array().unwrap().len(),
        1
    );
    assert_eq!(api.order_ok("fb")["phone"], phone);
    // Its messages go the retention's time after it ended.
    server.advance_clock(5 * 60);
    server.run_jobs();
    assert_eq!(api.get(&path).json()["messages"], json!([]));
    assert_eq!(
        server.count("SELECT COUNT(*) FROM messages WHERE rental_id IS NOT NULL"),
        0
    );

    // A rental with no SMS can be cancelled for a full refund in its first 20 minutes.
    server.add_numbers(COUNTRY, &["6281300000002"]);
    let r = api.post(
        "/api/v1/rentals",
        json!({"country": COUNTRY, "service": "wa", "hours": 4}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let second = id_of(&r.json());
    let wa_hour = r.json()["hour_price_minor"].as_i64().unwrap();
    let before = api.balance();
    let r = api.post(&format!("/api/v1/rentals/{second}/cancel"), json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "canceled");
    assert_eq!(api.balance(), before + 4 * wa_hour);
    server.assert_books_balance();
}

#[test]
fn a_late_sms_after_cancel_or_expiry_is_not_delivered_nor_charged() {
    let server = manual_server(&[]);
    let (num_a, num_b) = ("6281400000001", "6281400000002");
    server.add_numbers(COUNTRY, &[num_a, num_b]);
    let mut api = server.customer("dan@example.com", "10.00");
    let start = api.balance();
    let price = server.price("tg");

    let canceled = id_of(&api.order_ok("tg"));
    server.advance_clock(120);
    assert_eq!(api.act(canceled, "cancel").status, 200);
    assert!(!server.inject(num_a, "Telegram code: 31313"));

    let expired = id_of(&api.order_ok("tg"));
    server.advance_clock(20 * 60);
    server.run_jobs();
    assert_eq!(state(&mut api, expired).0, "expired");
    assert!(!server.inject(num_b, "Telegram code: 42424"));

    for id in [canceled, expired] {
        assert_eq!(api.activation(id)["messages"], json!([]));
        assert_eq!(api.activation(id)["code"], Value::Null);
        assert_eq!(server.stored_messages(id), 0);
        assert_eq!(
            server.ledger_of("activation", id),
            vec![
                ("charge".to_string(), -price),
                ("refund".to_string(), price)
            ]
        );
    }
    assert_eq!(api.balance(), start);
    server.assert_books_balance();
}

#[test]
fn the_simulators_late_code_reaches_no_one() {
    let server = TestServer::builder()
        .demo()
        .env("OTPBOX_DEV_CLOCK", "1")
        .start();
    let (mut admin, _) = server.signed_in("admin@example.com", "admin");
    let r = admin.submit(
        "/admin/numbers",
        "/admin/simulator",
        &[("on", "1"), ("mode", "late_code")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let mut api = server.customer("eve@example.com", "10.00");
    let price = server.price("tg");

    let expires = id_of(&api.order_ok("tg"));
    let canceled = id_of(&api.order_ok("tg"));
    server.advance_clock(120);
    assert_eq!(api.act(canceled, "cancel").status, 200);
    // The simulated SMS come a minute after the orders' end of life.
    server.advance_clock(20 * 60 + 60);
    server.run_jobs();
    assert_eq!(server.count("SELECT COUNT(*) FROM sim_outbox"), 0, "sent");
    assert_eq!(state(&mut api, expires), ("expired".into(), None));
    assert_eq!(state(&mut api, canceled), ("canceled".into(), None));
    for id in [expires, canceled] {
        assert_eq!(server.stored_messages(id), 0);
        assert_eq!(
            server.ledger_of("activation", id),
            vec![
                ("charge".to_string(), -price),
                ("refund".to_string(), price)
            ]
        );
    }
    assert_eq!(api.balance(), 1000);
    server.assert_books_balance();
}
