//! The 5sim REST v1 API over HTTP against the real server: guest catalogue shapes, the
//! profile, buying, checking (with a simulated and with an injected SMS), finish, cancel, ban,
//! expiry, the order history, and every error reply in 5sim's plain-text form.

mod common;

use common::{Client, Response, TestServer, PASSWORD};
use serde_json::Value;

/// A demo server (simulator on) whose simulator answers only when the test moves the clock
/// 10 minutes on, with the rate limits off (the limits have their own tests).
fn server(extra: &[(&str, &str)]) -> TestServer {
    let mut b = TestServer::builder().envs(&[
        ("OTPBOX_DEV_CLOCK", "true"),
        ("OTPBOX_DEMO", "true"),
        ("OTPBOX_SIM_DELAY", "10m"),
        ("OTPBOX_API_RATE", "0"),
        ("OTPBOX_API_IP_RATE", "0"),
    ]);
    for (k, v) in extra {
        b = b.env(k, v);
    }
    b.start()
}

/// A verified customer with `balance` (major units) and an API key.
fn customer(s: &TestServer, email: &str, balance: &str) -> String {
    s.create_user(email, "user", PASSWORD);
    if balance != "0" {
        s.cli_ok(&["user", "credit", "--email", email, "--amount", balance]);
    }
    s.cli_ok(&["key", "create", "--email", email])
        .trim()
        .to_string()
}

fn get(s: &TestServer, key: Option<&str>, path: &str) -> Response {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("Accept", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    s.client().request("GET", path, &headers, b"")
}

/// A successful JSON reply: 200 and exactly `Content-Type: application/json`.
fn ok(r: &Response) -> Value {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.json()
}

/// A 5sim error: the status and the exact plain-text body.
fn refused(r: &Response, status: u16, text: &str) {
    assert_eq!((r.status, r.text().as_str()), (status, text));
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        r.header("content-type")
    );
}

fn price_minor(s: &TestServer, country: i64, service: &str) -> i64 {
    s.db()
        .query_row(
            "SELECT price_minor FROM prices WHERE country_id = ?1 AND service = ?2 AND operator = ''",
            rusqlite::params![country, service],
            |r| r.get(0),
        )
        .unwrap()
}

fn balance_minor(s: &TestServer, email: &str) -> i64 {
    s.db()
        .query_row(
            "SELECT balance_minor FROM users WHERE email = ?1",
            [email],
            |r| r.get(0),
        )
        .unwrap()
}

/// `price` of an order or a price cell, in minor units (the JSON number is in major units).
fn minor(v: &Value) -> i64 {
    (v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) * 100.0).round() as i64
}

/// RFC 3339 UTC with fractional seconds: `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
fn assert_time(v: &Value) -> i64 {
    let t = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    let b = t.as_bytes();
    assert!(
        t.len() > 20
            && b[4] == b'-'
            && b[10] == b'T'
            && b[19] == b'.'
            && t.ends_with('Z')
            && t[20..t.len() - 1].bytes().all(|c| c.is_ascii_digit()),
        "not RFC 3339 UTC with fractional seconds: {t}"
    );
    let secs = |r: std::ops::Range<usize>| t[r].parse::<i64>().unwrap();
    // Seconds within the day are enough to compare times a few minutes apart.
    secs(11..13) * 3600 + secs(14..16) * 60 + secs(17..19)
}

fn buy(s: &TestServer, key: &str, path: &str) -> Value {
    ok(&get(
        s,
        Some(key),
        &format!("/v1/user/buy/activation/{path}"),
    ))
}

fn order(s: &TestServer, key: &str, action: &str, id: &Value) -> Response {
    get(s, Some(key), &format!("/v1/user/{action}/{id}"))
}

#[test]
fn guest_countries_products_and_prices_have_5sims_shapes() {
    let s = server(&[]);
    let tg_ru = price_minor(&s, 0, "tg");

    let r = get(&s, None, "/v1/guest/countries");
    let countries = ok(&r);
    let ru = &countries["russia"];
    assert_eq!(ru["iso"], serde_json::json!({"ru": 1}));
    assert_eq!(ru["prefix"], serde_json::json!({"+7": 1}));
    assert_eq!(ru["text_en"], "Russia");
    assert!(ru["text_ru"].is_string());
    for op in ["any", "beeline", "megafon", "mts"] {
        assert_eq!(ru[op], serde_json::json!({"activation": 1}), "{op}");
    }
    assert_eq!(countries["england"]["iso"], serde_json::json!({"gb": 1}));
    // Clients read the operators as the keys after the first four: the order matters.
    let text = r.text();
    let at = text.find("\"russia\":{").unwrap();
    assert!(
        text[at..].starts_with("\"russia\":{\"iso\":{\"ru\":1},\"prefix\":{\"+7\":1},\"text_en\":"),
        "{}",
        &text[at..at + 80]
    );

    let products = ok(&get(&s, None, "/v1/guest/products/russia/any"));
    let tg = &products["telegram"];
    assert_eq!(tg["Category"], "activation");
    assert_eq!(minor(&tg["Price"]), tg_ru);
    assert!(tg["Qty"].as_i64().unwrap() > 0, "the simulator has stock");
    assert!(products["whatsapp"].is_object());
    let by_op = ok(&get(&s, None, "/v1/guest/products/russia/beeline"));
    assert_eq!(minor(&by_op["telegram"]["Price"]), tg_ru);
    let anywhere = ok(&get(&s, None, "/v1/guest/products/any/any"));
    let cheapest: i64 = s
        .db()
        .query_row(
            "SELECT MIN(price_minor) FROM prices WHERE service = 'tg' AND operator = ''",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(minor(&anywhere["telegram"]["Price"]), cheapest);
    refused(
        &get(&s, None, "/v1/guest/products/atlantis/any"),
        400,
        "bad country",
    );
    refused(
        &get(&s, None, "/v1/guest/products/russia/nosuch"),
        400,
        "bad operator",
    );

    // country → product → operator → {cost, count}
    let all = ok(&get(&s, None, "/v1/guest/prices"));
    let cell = &all["russia"]["telegram"]["any"];
    assert_eq!(minor(&cell["cost"]), tg_ru);
    assert!(cell["count"].as_i64().unwrap() > 0);
    assert!(all["russia"]["telegram"]["mts"].is_object());
    assert!(all["indonesia"]["telegram"]["any"].is_object());

    let one_country = ok(&get(&s, None, "/v1/guest/prices?country=russia"));
    let keys: Vec<&String> = one_country.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["russia"]);
    assert_eq!(
        minor(&one_country["russia"]["telegram"]["any"]["cost"]),
        tg_ru
    );

    let one_product = ok(&get(&s, None, "/v1/guest/prices?product=telegram"));
    let keys: Vec<&String> = one_product.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["telegram"]);
    assert_eq!(
        minor(&one_product["telegram"]["russia"]["any"]["cost"]),
        tg_ru
    );
    assert!(one_product["telegram"]["indonesia"].is_object());

    let both = ok(&get(
        &s,
        None,
        "/v1/guest/prices?country=russia&product=telegram",
    ));
    assert_eq!(both.as_object().unwrap().len(), 1);
    assert_eq!(both["russia"].as_object().unwrap().len(), 1);
    assert_eq!(minor(&both["russia"]["telegram"]["beeline"]["cost"]), tg_ru);

    refused(
        &get(&s, None, "/v1/guest/prices?country=atlantis"),
        400,
        "bad country",
    );
    refused(
        &get(&s, None, "/v1/guest/prices?product=nope"),
        400,
        "no product",
    );
}

#[test]
fn user_endpoints_need_a_valid_bearer_key() {
    let s = server(&[]);
    let key = customer(&s, "auth@example.com", "5.00");
    refused(&get(&s, None, "/v1/user/profile"), 401, "unauthorized");
    refused(
        &get(
            &s,
            Some("otp_0000000000000000000000000000000000000000"),
            "/v1/user/profile",
        ),
        401,
        "unauthorized",
    );
    refused(
        &get(&s, None, "/v1/user/buy/activation/russia/any/telegram"),
        401,
        "unauthorized",
    );
    // A token in another scheme is not a Bearer token.
    let r = s.client().request(
        "GET",
        "/v1/user/profile",
        &[("Authorization", &format!("Basic {key}"))],
        b"",
    );
    refused(&r, 401, "unauthorized");
    ok(&get(&s, Some(&key), "/v1/user/profile"));
    // A suspended account's key stops working.
    s.db()
        .execute(
            "UPDATE users SET state = 'suspended' WHERE email = 'auth@example.com'",
            [],
        )
        .unwrap();
    refused(
        &get(&s, Some(&key), "/v1/user/profile"),
        403,
        "account is not active",
    );
}

#[test]
fn unknown_paths_and_methods_answer_in_plain_text() {
    let s = server(&[]);
    refused(&get(&s, None, "/v1/user/nothing"), 404, "not found");
    let r = s.client().post("/v1/guest/countries", b"");
    refused(&r, 405, "method not allowed");
}

#[test]
fn profile_has_every_field_clients_require() {
    let s = server(&[]);
    let key = customer(&s, "prof@example.com", "10.00");
    let p = ok(&get(&s, Some(&key), "/v1/user/profile"));
    assert!(p["id"].as_i64().unwrap() > 0);
    assert_eq!(p["email"], "prof@example.com");
    assert_eq!(minor(&p["balance"]), 1000);
    assert_eq!(p["rating"], 96);
    assert_eq!(p["frozen_balance"], 0);
    assert_eq!(p["default_operator"]["name"], "");
    assert_eq!(p["default_country"]["name"], "russia");
    assert_eq!(p["default_country"]["iso"], "ru");
    assert_eq!(p["default_country"]["prefix"], "+7");
    assert_eq!(p["did_order"], false);
    assert_eq!(p["total_active_orders"], 0);
    assert_eq!(p["last_top_idx"], 0);
    // Even with no order, the strings split into five parts as clients expect.
    let last = p["last_order"].as_str().unwrap();
    assert_eq!(last.split(':').count(), 5, "{last}");
    let top = p["last_top_orders"].as_str().unwrap();
    assert!(top.starts_with('[') && top.ends_with(']'), "{top}");
    assert_eq!(top[1..top.len() - 1].split(':').count(), 5, "{top}");

    let o = buy(&s, &key, "indonesia/any/telegram");
    let price = price_minor(&s, 6, "tg");
    let p = ok(&get(&s, Some(&key), "/v1/user/profile"));
    assert_eq!(p["did_order"], true);
    assert_eq!(p["total_active_orders"], 1);
    assert_eq!(minor(&p["balance"]), 1000 - price);
    assert_eq!(p["default_country"]["name"], "indonesia");
    let parts: Vec<String> = p["last_order"]
        .as_str()
        .unwrap()
        .split(':')
        .map(str::to_string)
        .collect();
    assert_eq!(parts[..3], ["indonesia", "telegram", "any"]);
    assert_eq!(parts[3], o["id"].to_string());
    assert_eq!(
        (parts[4].parse::<f64>().unwrap() * 100.0).round() as i64,
        price
    );
    assert_eq!(
        p["last_top_orders"].as_str().unwrap(),
        format!("[{}]", p["last_order"].as_str().unwrap())
    );
}

#[test]
fn order_lifecycle_buy_check_sms_finish() {
    let s = server(&[]);
    let key = customer(&s, "life@example.com", "10.00");
    let price = price_minor(&s, 6, "tg");

    let o = buy(&s, &key, "indonesia/any/telegram");
    let id = o["id"].clone();
    assert!(id.as_i64().unwrap() > 0);
    let phone = o["phone"].as_str().unwrap();
    assert!(phone.starts_with("+62") && phone[1..].bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(o["status"], "RECEIVED");
    assert_eq!(o["product"], "telegram");
    assert_eq!(o["country"], "indonesia");
    assert_eq!(o["operator"], "any");
    assert_eq!(minor(&o["price"]), price);
    assert!(o.get("sms").is_some_and(Value::is_null), "{o}");
    assert_eq!(o["forwarding"], false);
    let created = assert_time(&o["created_at"]);
    let expires = assert_time(&o["expires"]);
    assert_eq!((expires - created).rem_euclid(86_400), 20 * 60);
    assert_eq!(balance_minor(&s, "life@example.com"), 1000 - price);

    let c = ok(&order(&s, &key, "check", &id));
    assert_eq!(c["status"], "RECEIVED");
    assert!(c["sms"].is_null());
    assert_eq!(c["phone"], o["phone"]);

    // Nothing to finish yet, and cancelling is refused right after the purchase.
    refused(&order(&s, &key, "finish", &id), 400, "order no sms");
    let r = order(&s, &key, "cancel", &id);
    refused(&r, 400, "cancel not possible yet");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((100..=120).contains(&wait), "{wait}");

    // The simulator's SMS comes 10 minutes after the order.
    s.advance_clock(10 * 60 + 5);
    s.run_jobs();
    let c = ok(&order(&s, &key, "check", &id));
    assert_eq!(c["status"], "RECEIVED");
    let sms = c["sms"].as_array().expect("a list of SMS");
    assert_eq!(sms.len(), 1);
    let code = sms[0]["code"].as_str().unwrap();
    assert!(
        code.len() >= 4 && code.bytes().all(|b| b.is_ascii_digit()),
        "{code}"
    );
    assert!(sms[0]["text"].as_str().unwrap().contains(code));
    assert_eq!(sms[0]["sender"], "Telegram");
    assert_time(&sms[0]["created_at"]);
    assert_time(&sms[0]["date"]);

    // With a code, the order can only be finished.
    refused(&order(&s, &key, "cancel", &id), 400, "order has sms");
    refused(&order(&s, &key, "ban", &id), 400, "order has sms");
    let f = ok(&order(&s, &key, "finish", &id));
    assert_eq!(f["status"], "FINISHED");
    assert_eq!(f["sms"][0]["code"], code);
    // A repeated finish is answered with the finished order.
    assert_eq!(ok(&order(&s, &key, "finish", &id))["status"], "FINISHED");
    refused(&order(&s, &key, "cancel", &id), 400, "order has sms");
    assert_eq!(balance_minor(&s, "life@example.com"), 1000 - price);
}

#[test]
fn an_injected_sms_shows_in_check() {
    let s = server(&[]);
    let key = customer(&s, "inject@example.com", "10.00");
    let o = buy(&s, &key, "russia/any/telegram");
    let phone = o["phone"].as_str().unwrap().trim_start_matches('+');
    let out = s.cli_ok(&[
        "sms",
        "inject",
        "--to",
        phone,
        "--from",
        "Telegram",
        "--text",
        "Telegram code: 54321",
    ]);
    assert!(out.contains("delivered to activation"), "{out}");
    let c = ok(&order(&s, &key, "check", &o["id"]));
    assert_eq!(c["status"], "RECEIVED");
    assert_eq!(c["sms"][0]["code"], "54321");
    assert_eq!(c["sms"][0]["text"], "Telegram code: 54321");
    assert_eq!(
        ok(&order(&s, &key, "finish", &o["id"]))["status"],
        "FINISHED"
    );
}

#[test]
fn cancel_after_the_window_refunds_and_repeats_harmlessly() {
    let s = server(&[]);
    let key = customer(&s, "cancel@example.com", "10.00");
    let o = buy(&s, &key, "indonesia/any/telegram");
    let id = o["id"].clone();
    s.advance_clock(121);
    let c = ok(&order(&s, &key, "cancel", &id));
    assert_eq!(c["status"], "CANCELED");
    assert!(c["sms"].is_null());
    assert_eq!(balance_minor(&s, "cancel@example.com"), 1000);
    // Again: the cancelled order, no second refund.
    assert_eq!(ok(&order(&s, &key, "cancel", &id))["status"], "CANCELED");
    assert_eq!(balance_minor(&s, "cancel@example.com"), 1000);
    assert_eq!(ok(&order(&s, &key, "check", &id))["status"], "CANCELED");
    refused(&order(&s, &key, "finish", &id), 400, "order no sms");
    assert!(s.cli_ok(&["check"]).starts_with("ok"));
}

#[test]
fn ban_refunds_and_quarantines_the_number() {
    let s = server(&[]);
    let key = customer(&s, "ban@example.com", "10.00");
    let o = buy(&s, &key, "indonesia/any/telegram");
    let id = o["id"].clone();
    refused(&order(&s, &key, "ban", &id), 400, "cancel not possible yet");
    s.advance_clock(121);
    let b = ok(&order(&s, &key, "ban", &id));
    assert_eq!(b["status"], "BANNED");
    assert_eq!(balance_minor(&s, "ban@example.com"), 1000);
    assert_eq!(ok(&order(&s, &key, "check", &id))["status"], "BANNED");
    let phone = o["phone"]
        .as_str()
        .unwrap()
        .trim_start_matches('+')
        .to_string();
    let blocked: i64 = s
        .db()
        .query_row(
            "SELECT u.blocked FROM number_usage u JOIN numbers n ON n.id = u.number_id \
             WHERE n.phone = ?1 AND u.service = 'tg'",
            [&phone],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(blocked, 1, "the number never serves Telegram again");
    // Another order gets another number.
    let again = buy(&s, &key, "indonesia/any/telegram");
    assert_ne!(again["phone"], o["phone"]);
}

#[test]
fn an_order_without_sms_times_out_and_is_refunded() {
    let s = server(&[]);
    let key = customer(&s, "late@example.com", "10.00");
    let o = buy(&s, &key, "indonesia/any/whatsapp");
    let id = o["id"].clone();
    // Past its lifetime, before the expiry job: already shown as it is about to be.
    s.advance_clock(20 * 60 + 1);
    assert_eq!(ok(&order(&s, &key, "check", &id))["status"], "TIMEOUT");
    refused(&order(&s, &key, "cancel", &id), 400, "order expired");
    refused(&order(&s, &key, "finish", &id), 400, "order expired");
    s.run_jobs();
    assert_eq!(ok(&order(&s, &key, "check", &id))["status"], "TIMEOUT");
    refused(&order(&s, &key, "cancel", &id), 400, "order expired");
    refused(&order(&s, &key, "ban", &id), 400, "order expired");
    assert_eq!(balance_minor(&s, "late@example.com"), 1000);
}

#[test]
fn buy_errors_change_nothing() {
    let s = server(&[("OTPBOX_MAX_ACTIVE_ACTIVATIONS", "2")]);
    let key = customer(&s, "err@example.com", "10.00");
    let broke = customer(&s, "broke@example.com", "0");
    let tg_ru = price_minor(&s, 0, "tg");

    refused(
        &get(
            &s,
            Some(&key),
            "/v1/user/buy/activation/atlantis/any/telegram",
        ),
        400,
        "bad country",
    );
    refused(
        &get(
            &s,
            Some(&key),
            "/v1/user/buy/activation/russia/nosuch/telegram",
        ),
        400,
        "bad operator",
    );
    refused(
        &get(&s, Some(&key), "/v1/user/buy/activation/russia/any/nope"),
        400,
        "no product",
    );
    refused(
        &get(
            &s,
            Some(&broke),
            "/v1/user/buy/activation/russia/any/telegram",
        ),
        400,
        "not enough user balance",
    );
    // maxPrice below the price: nothing at that price.
    let below = format!(
        "/v1/user/buy/activation/russia/any/telegram?maxPrice={}",
        (tg_ru - 1) as f64 / 100.0
    );
    refused(&get(&s, Some(&key), &below), 400, "no free phones");
    refused(
        &get(
            &s,
            Some(&key),
            "/v1/user/buy/activation/russia/any/telegram?maxPrice=cheap",
        ),
        400,
        "bad max price",
    );
    assert_eq!(balance_minor(&s, "err@example.com"), 1000);
    assert_eq!(s.count("SELECT COUNT(*) FROM activations"), 0);

    // maxPrice counts only with operator `any` (as on 5sim): ignored with a named one.
    let named = format!(
        "/v1/user/buy/activation/russia/beeline/telegram?maxPrice={}",
        (tg_ru - 1) as f64 / 100.0
    );
    let o = ok(&get(&s, Some(&key), &named));
    assert_eq!(o["operator"], "beeline");
    // A maxPrice at the price buys. That is the second live order of two.
    let at = format!(
        "/v1/user/buy/activation/russia/any/telegram?maxPrice={}",
        tg_ru as f64 / 100.0
    );
    ok(&get(&s, Some(&key), &at));
    refused(
        &get(
            &s,
            Some(&key),
            "/v1/user/buy/activation/russia/any/telegram",
        ),
        400,
        "not enough rating",
    );

    // No stock at all: the simulator off and no numbers of our own.
    s.db()
        .execute(
            "UPDATE runtime_settings SET value = 'off' WHERE key = 'simulator'",
            [],
        )
        .unwrap();
    let other = customer(&s, "nostock@example.com", "10.00");
    refused(
        &get(
            &s,
            Some(&other),
            "/v1/user/buy/activation/russia/any/telegram",
        ),
        400,
        "no free phones",
    );
    refused(
        &get(&s, Some(&other), "/v1/user/buy/activation/any/any/telegram"),
        400,
        "no free phones",
    );
    assert_eq!(balance_minor(&s, "nostock@example.com"), 1000);
}

#[test]
fn orders_of_someone_else_or_unknown_are_not_found() {
    let s = server(&[]);
    let alice = customer(&s, "alice@example.com", "10.00");
    let bob = customer(&s, "bob@example.com", "10.00");
    let o = buy(&s, &alice, "indonesia/any/telegram");
    for action in ["check", "finish", "cancel", "ban"] {
        refused(&order(&s, &bob, action, &o["id"]), 400, "order not found");
        refused(
            &get(&s, Some(&alice), &format!("/v1/user/{action}/999999")),
            400,
            "order not found",
        );
        refused(
            &get(&s, Some(&alice), &format!("/v1/user/{action}/abc")),
            400,
            "order not found",
        );
    }
    assert_eq!(
        ok(&order(&s, &alice, "check", &o["id"]))["status"],
        "RECEIVED"
    );
}

#[test]
fn any_country_buys_the_cheapest() {
    let s = server(&[]);
    let key = customer(&s, "any@example.com", "10.00");
    let o = buy(&s, &key, "any/any/telegram");
    let (cheapest, iso_name): (i64, String) = s
        .db()
        .query_row(
            "SELECT p.price_minor, c.fivesim_name FROM prices p JOIN countries c ON c.id = p.country_id \
             WHERE p.service = 'tg' AND p.operator = '' ORDER BY p.price_minor, p.country_id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(minor(&o["price"]), cheapest);
    assert_eq!(o["country"], iso_name.as_str());
    // Our own service codes work as product names too.
    let by_code = buy(&s, &key, "russia/any/tg");
    assert_eq!(by_code["product"], "telegram");
}

#[test]
fn order_history_pages_sorts_and_counts() {
    let s = server(&[]);
    let key = customer(&s, "hist@example.com", "10.00");
    let a = buy(&s, &key, "indonesia/any/telegram");
    let b = buy(&s, &key, "russia/any/whatsapp");
    let c = buy(&s, &key, "england/any/google");
    s.advance_clock(121);
    ok(&order(&s, &key, "cancel", &b["id"]));

    let ids = |v: &Value| -> Vec<i64> {
        v["Data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_i64().unwrap())
            .collect()
    };
    let all = ok(&get(&s, Some(&key), "/v1/user/orders?category=activation"));
    assert_eq!(all["Total"], 3);
    assert!(all["ProductNames"].is_array() && all["Statuses"].is_array());
    let (ia, ib, ic) = (
        a["id"].as_i64().unwrap(),
        b["id"].as_i64().unwrap(),
        c["id"].as_i64().unwrap(),
    );
    assert_eq!(ids(&all), [ia, ib, ic]);
    assert_eq!(all["Data"][1]["status"], "CANCELED");
    assert_eq!(all["Data"][2]["product"], "google");
    assert!(all["Data"][0].get("sms").is_some());

    let rev = ok(&get(
        &s,
        Some(&key),
        "/v1/user/orders?category=activation&reverse=true",
    ));
    assert_eq!(ids(&rev), [ic, ib, ia]);
    let page = ok(&get(
        &s,
        Some(&key),
        "/v1/user/orders?category=activation&limit=1&offset=1&order=id&reverse=false",
    ));
    assert_eq!(ids(&page), [ib]);
    assert_eq!(page["Total"], 3);
    let by_price = ok(&get(
        &s,
        Some(&key),
        "/v1/user/orders?category=activation&order=price&reverse=true",
    ));
    let prices: Vec<i64> = by_price["Data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| minor(&o["price"]))
        .collect();
    assert!(prices.windows(2).all(|w| w[0] >= w[1]), "{prices:?}");
    // No category means activations; hosting is not sold over 5sim.
    assert_eq!(ok(&get(&s, Some(&key), "/v1/user/orders"))["Total"], 3);
    let hosting = ok(&get(&s, Some(&key), "/v1/user/orders?category=hosting"));
    assert_eq!(hosting["Total"], 0);
    assert_eq!(hosting["Data"], serde_json::json!([]));
    refused(
        &get(&s, Some(&key), "/v1/user/orders?category=bogus"),
        400,
        "bad category",
    );
}

/// The guest endpoints and a bought order as the native API sees it agree with the 5sim view
/// (one set of books behind both APIs).
#[test]
fn the_native_api_sees_the_same_order() {
    let s = server(&[]);
    let key = customer(&s, "both@example.com", "10.00");
    let o = buy(&s, &key, "indonesia/any/telegram");
    let mut c: Client = s.client();
    let native = c.request(
        "GET",
        &format!("/api/v1/activations/{}", o["id"]),
        &[("Authorization", &format!("Bearer {key}"))],
        b"",
    );
    let n = ok(&native);
    assert_eq!(n["status"], "waiting");
    assert_eq!(
        format!("+{}", n["phone"].as_str().unwrap()),
        o["phone"].as_str().unwrap()
    );
    assert_eq!(n["price_minor"].as_i64().unwrap(), minor(&o["price"]));
}

fn send(s: &TestServer, key: &str, method: &str, path: &str, body: &Value) -> Response {
    let auth = format!("Bearer {key}");
    s.client().request(
        method,
        path,
        &[
            ("Accept", "application/json"),
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

#[test]
fn hosting_a_number_for_a_day_with_its_inbox() {
    let s = server(&[]);
    let key = customer(&s, "host@example.com", "20");
    let products = ok(&get(&s, None, "/v1/guest/products/indonesia/any"));
    assert_eq!(products["1day"]["Category"], "hosting", "{products}");
    let day_price = minor(&products["1day"]["Price"]);
    let before = balance_minor(&s, "host@example.com");
    let o = ok(&get(
        &s,
        Some(&key),
        "/v1/user/buy/hosting/indonesia/any/1day",
    ));
    assert_eq!(
        (o["product"].as_str(), o["status"].as_str()),
        (Some("1day"), Some("RECEIVED"))
    );
    assert_eq!(minor(&o["price"]), day_price);
    assert_eq!(before - balance_minor(&s, "host@example.com"), day_price);
    assert!(o["sms"].is_null(), "{o}");
    let id = o["id"].as_i64().unwrap();
    let phone = o["phone"]
        .as_str()
        .unwrap()
        .trim_start_matches('+')
        .to_string();
    // Any SMS to the number lands in the inbox and on the order.
    s.cli_ok(&[
        "sms",
        "inject",
        "--to",
        &phone,
        "--from",
        "Bank",
        "--text",
        "Your code 4412",
    ]);
    let inbox = ok(&get(&s, Some(&key), &format!("/v1/user/sms/inbox/{id}")));
    assert_eq!(inbox["Total"], 1, "{inbox}");
    assert_eq!(inbox["Data"][0]["text"], "Your code 4412");
    let o = ok(&get(&s, Some(&key), &format!("/v1/user/check/{id}")));
    assert_eq!(o["sms"][0]["sender"], "Bank");
    let list = ok(&get(&s, Some(&key), "/v1/user/orders?category=hosting"));
    assert_eq!(
        (list["Total"].as_i64(), list["Data"][0]["id"].as_i64()),
        (Some(1), Some(id))
    );
    // With an SMS it cannot be cancelled; finishing ends it.
    refused(
        &get(&s, Some(&key), &format!("/v1/user/cancel/{id}")),
        400,
        "order has sms",
    );
    let o = ok(&get(&s, Some(&key), &format!("/v1/user/finish/{id}")));
    assert_eq!(o["status"], "FINISHED");
    refused(
        &get(&s, Some(&key), "/v1/user/buy/hosting/indonesia/any/2hours"),
        400,
        "no product",
    );
    refused(
        &get(&s, Some(&key), "/v1/user/sms/inbox/5"),
        400,
        "order not found",
    );
    // Another account's hosting order is not found.
    let other = customer(&s, "other@example.com", "0");
    refused(
        &get(&s, Some(&other), &format!("/v1/user/check/{id}")),
        400,
        "order not found",
    );
}

#[test]
fn max_prices_cap_purchases_and_a_number_can_be_bought_again() {
    let s = server(&[]);
    let key = customer(&s, "caps@example.com", "20");
    assert_eq!(
        ok(&get(&s, Some(&key), "/v1/user/max-prices")),
        serde_json::json!([])
    );
    let tg = price_minor(&s, 6, "tg");
    let below = format!("{}.{:02}", (tg - 1) / 100, (tg - 1) % 100);
    let caps = ok(&send(
        &s,
        &key,
        "POST",
        "/v1/user/max-prices",
        &serde_json::json!({"product_name": "telegram", "price": below.parse::<f64>().unwrap()}),
    ));
    assert_eq!(caps[0]["product"], "telegram", "{caps}");
    assert_eq!(minor(&caps[0]["price"]), tg - 1);
    assert!(caps[0]["id"].is_i64() && caps[0]["CreatedAt"].is_string());
    // The cap is below the price: refused, nothing charged.
    let before = balance_minor(&s, "caps@example.com");
    refused(
        &get(
            &s,
            Some(&key),
            "/v1/user/buy/activation/indonesia/any/telegram",
        ),
        400,
        "no free phones",
    );
    assert_eq!(balance_minor(&s, "caps@example.com"), before);
    // Removed, the purchase goes through.
    let caps = ok(&send(
        &s,
        &key,
        "DELETE",
        "/v1/user/max-prices",
        &serde_json::json!({"product_name": "telegram"}),
    ));
    assert_eq!(caps, serde_json::json!([]));
    refused(
        &send(
            &s,
            &key,
            "DELETE",
            "/v1/user/max-prices",
            &serde_json::json!({"product_name": "telegram"}),
        ),
        400,
        "record not found",
    );
    refused(
        &send(
            &s,
            &key,
            "POST",
            "/v1/user/max-prices",
            &serde_json::json!({"product_name": "nosuch", "price": 1}),
        ),
        400,
        "no product",
    );
    let o = ok(&get(
        &s,
        Some(&key),
        "/v1/user/buy/activation/indonesia/any/telegram",
    ));
    let id = o["id"].as_i64().unwrap();
    let phone = o["phone"]
        .as_str()
        .unwrap()
        .trim_start_matches('+')
        .to_string();
    // Reuse: not while the order is live; after it ended, the same number again.
    refused(
        &get(&s, Some(&key), &format!("/v1/user/reuse/telegram/{phone}")),
        400,
        "reuse not possible",
    );
    s.advance_clock(120);
    ok(&get(&s, Some(&key), &format!("/v1/user/cancel/{id}")));
    let again = ok(&get(
        &s,
        Some(&key),
        &format!("/v1/user/reuse/telegram/{phone}"),
    ));
    assert_eq!(
        again["phone"].as_str().unwrap().trim_start_matches('+'),
        phone
    );
    assert_ne!(again["id"].as_i64().unwrap(), id);
    // Nobody else may reuse it, nor for another product.
    let other = customer(&s, "other@example.com", "20");
    s.advance_clock(120);
    ok(&get(
        &s,
        Some(&key),
        &format!("/v1/user/cancel/{}", again["id"]),
    ));
    refused(
        &get(
            &s,
            Some(&other),
            &format!("/v1/user/reuse/telegram/{phone}"),
        ),
        400,
        "reuse not possible",
    );
    refused(
        &get(&s, Some(&key), &format!("/v1/user/reuse/whatsapp/{phone}")),
        400,
        "reuse not possible",
    );
    refused(
        &get(&s, Some(&key), "/v1/user/reuse/telegram/1"),
        400,
        "reuse not possible",
    );
}

#[test]
fn payments_list_the_balance_movements_newest_first() {
    let s = server(&[]);
    let key = customer(&s, "pay@example.com", "5");
    let o = ok(&get(
        &s,
        Some(&key),
        "/v1/user/buy/activation/indonesia/any/telegram",
    ));
    let price = minor(&o["price"]);
    let p = ok(&get(&s, Some(&key), "/v1/user/payments"));
    assert_eq!(p["Total"], 2, "{p}");
    let charge = &p["Data"][0];
    assert_eq!(charge["TypeName"], "charge");
    assert_eq!(minor(&charge["Amount"]), -price);
    assert_eq!(minor(&charge["Balance"]), 500 - price);
    assert_time(&charge["CreatedAt"]);
    assert_eq!(p["Data"][1]["TypeName"], "adjustment", "the admin's credit");
    assert_eq!(minor(&p["Data"][1]["Amount"]), 500);
    assert!(p["PaymentTypes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["Name"] == "charge"));
    let page = ok(&get(&s, Some(&key), "/v1/user/payments?limit=1&offset=1"));
    assert_eq!(page["Data"][0]["ID"], p["Data"][1]["ID"]);
    refused(
        &get(&s, Some(&key), "/v1/user/payments?limit=x"),
        400,
        "bad limit",
    );
}
