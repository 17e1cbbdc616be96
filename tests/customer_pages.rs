//! The customer's pages beyond the demo flow (`marketplace.rs`): the order form's stock and
//! next-step notices, the filtered history with its keyset pages and CSV, the public price
//! list, and the success rates shown before buying (price list, native catalogue, 5sim).

mod common;

use common::market::{id_of, COUNTRY};
use common::TestServer;
use serde_json::{json, Value};

const DEMO_EMAIL: &str = "demo@example.com";

/// The `<tr>`s of the history table.
fn history_rows(html: &str) -> Vec<&str> {
    html.split("<tr data-id=\"").skip(1).collect()
}

#[test]
fn order_form_says_when_nothing_is_in_stock_and_what_to_do_without_money() {
    let server = TestServer::start_with(&[("OTPBOX_DEV_CLOCK", "1")]);
    let (mut web, _) = server.signed_in("fresh@example.com", "user");
    let dash = web.get(&format!("/dashboard?country={COUNTRY}")).text();
    // No money yet: the next step is shown, with both ways in.
    assert!(dash.contains("id=\"next-step\""), "{dash}");
    assert!(dash.contains("href=\"/wallet#topup\""), "{dash}");
    assert!(dash.contains("href=\"/wallet#redeem\""), "{dash}");
    // No numbers at all (simulator off): said so, and the Order button is disabled.
    assert!(dash.contains("id=\"no-stock\""), "{dash}");
    assert!(
        dash.contains("<button type=\"submit\" disabled>Order</button>"),
        "{dash}"
    );
    let tg = dash
        .split("data-service=\"tg\">")
        .nth(1)
        .and_then(|s| s.split("</label>").next())
        .expect("tg listed");
    assert!(
        tg.contains("disabled") && tg.contains("out of stock"),
        "{tg}"
    );

    // Two numbers on sale: orderable, with the count.
    server.add_numbers(COUNTRY, &["6281100000001", "6281100000002"]);
    server.cli_ok(&[
        "user",
        "credit",
        "--email",
        "fresh@example.com",
        "--amount",
        "5.00",
    ]);
    let dash = web.get(&format!("/dashboard?country={COUNTRY}")).text();
    assert!(!dash.contains("id=\"no-stock\""), "{dash}");
    assert!(!dash.contains("id=\"next-step\""), "{dash}");
    let tg = dash
        .split("data-service=\"tg\">")
        .nth(1)
        .and_then(|s| s.split("</label>").next())
        .unwrap();
    assert!(
        !tg.contains("disabled") && tg.contains("2 in stock"),
        "{tg}"
    );
    // The order form has the country's operators.
    assert!(dash.contains("<select name=\"operator\">"), "{dash}");
    // A refused order comes back with what was chosen and typed.
    let r = web.submit(
        "/dashboard",
        "/orders",
        &[
            ("country", &COUNTRY.to_string()),
            ("service", "tg"),
            ("max_price", "0.01"),
        ],
    );
    assert_eq!(r.location(), Some("/dashboard?country=6"));
    let back = web.follow(&r).text();
    assert!(back.contains("above your maximum"), "{back}");
    assert!(back.contains("value=\"0.01\""), "{back}");
    assert!(
        back.contains("value=\"tg\" required checked"),
        "the service stays chosen: {back}"
    );
}

#[test]
fn history_filters_pages_and_exports_csv() {
    let server = TestServer::start_with(&[("OTPBOX_DEV_CLOCK", "1")]);
    let (mut web, me) = server.signed_in("history@example.com", "user");
    let other = server.create_user("other@example.com", "user", common::PASSWORD);
    // 130 past orders of mine and 20 of someone else: services, countries and statuses in
    // turn, so every filter has rows on more than one page.
    let db = server.db();
    db.execute_batch(&format!(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 150)
         INSERT INTO activations (user_id, phone, country_id, service, price_minor, status,
                                  source, created_at, expires_at, ended_at)
         SELECT CASE WHEN x > 130 THEN {other} ELSE {me} END, '62811' || (1000 + x),
                CASE WHEN x % 2 = 0 THEN 6 ELSE 22 END,
                CASE WHEN x % 3 = 0 THEN 'wa' ELSE 'tg' END, 35,
                CASE x % 5 WHEN 0 THEN 'completed' WHEN 1 THEN 'canceled' ELSE 'expired' END,
                'manual', 1700000000 + x * 60, 1700000000 + x * 60 + 1200,
                1700000000 + x * 60 + 1200
         FROM c;"
    ))
    .unwrap();
    let mine = |pred: &dyn Fn(i64) -> bool| (1..=130).filter(|x| pred(*x)).count();

    // Unfiltered: 50 newest, then the next page by keyset, then the rest.
    let first = web.get("/orders").text();
    let rows = history_rows(&first);
    assert_eq!(rows.len(), 50);
    assert!(
        first.contains("<time datetime=\"2023-"),
        "UTC times for the script"
    );
    let older = first
        .split("id=\"older\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a link to older orders")
        .replace("&amp;", "&");
    let mut seen = 50;
    let mut next = Some(older);
    while let Some(url) = next {
        let page = web.get(&url).text();
        seen += history_rows(&page).len();
        next = page
            .split("id=\"older\" href=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .map(|s| s.replace("&amp;", "&"));
    }
    assert_eq!(
        seen, 130,
        "every order of mine once, none of the other account's"
    );

    // Filters, alone and together; each row fits them.
    let wa = web.get("/orders?service=wa").text();
    let rows = history_rows(&wa);
    assert_eq!(rows.len(), mine(&|x| x % 3 == 0).min(50));
    assert!(rows.iter().all(|r| r.contains("WhatsApp")));
    let narrow = web
        .get("/orders?service=wa&country=22&status=expired")
        .text();
    let rows = history_rows(&narrow);
    let expected = mine(&|x| x % 3 == 0 && x % 2 == 1 && x % 5 >= 2);
    assert_eq!(rows.len(), expected, "{narrow}");
    assert!(rows.iter().all(|r| r.contains("WhatsApp")
        && r.contains("Expired")
        && r.contains("data-status=\"expired\"")));
    // The filter form shows the filter; unknown values are ignored.
    assert!(
        narrow.contains("<option value=\"wa\" selected>"),
        "{narrow}"
    );
    let all = web.get("/orders?service=nope&country=abc").text();
    assert_eq!(history_rows(&all).len(), 50);

    // The CSV of a filter: every matching order, a header, quoted where needed.
    assert!(wa.contains("href=\"/orders.csv?service=wa\""), "{wa}");
    let r = web.get("/orders.csv?service=wa&country=22&status=expired");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    assert!(r
        .header("content-disposition")
        .unwrap()
        .contains("attachment"));
    assert_eq!(r.header("link"), None, "one file holds them all");
    let text = r.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "id,created_at,service,country,number,code,status,price,currency"
    );
    assert_eq!(lines.len(), expected + 1, "{text}");
    assert!(lines[1..]
        .iter()
        .all(|l| l.contains(",WhatsApp,") && l.ends_with(",expired,0.35,USD")));
    // The whole unfiltered history: all 130 orders.
    assert_eq!(web.get("/orders.csv").text().lines().count(), 131);
    // Only signed-in customers, and each only their own: another customer's history, CSV
    // and live view leave these orders out, even when asked for one by id.
    assert_eq!(server.client().get("/orders.csv").status, 303);
    let theirs: i64 = lines[1].split(',').next().unwrap().parse().unwrap();
    let (mut other, _) = server.signed_in("stranger@example.com", "user");
    assert_eq!(other.get("/orders.csv").text().lines().count(), 1);
    assert!(history_rows(&other.get("/orders").text()).is_empty());
    let live = other.get(&format!("/live?orders={theirs}")).json();
    assert_eq!(live["orders"], json!([]), "{live}");
    // The owner asking the same gets it.
    let live = web.get(&format!("/live?orders={theirs}")).json();
    assert_eq!(live["orders"][0]["id"], theirs, "{live}");
}

#[test]
fn prices_and_success_rates_before_buying() {
    let server = TestServer::builder()
        .demo()
        .envs(&[
            ("OTPBOX_DEV_CLOCK", "1"),
            ("OTPBOX_SIM_DELAY", "20s"),
            ("OTPBOX_EARLY_CANCEL", "5s"),
        ])
        .start();
    // Public: no account needed; searchable on the server.
    let mut visitor = server.client();
    let landing = visitor.get("/").text();
    assert!(landing.contains("href=\"/prices\""), "{landing}");
    let page = visitor.get(&format!("/prices?country={COUNTRY}")).text();
    assert!(page.contains("data-service=\"tg\""), "{page}");
    assert!(page.contains("data-service=\"wa\""), "{page}");
    let found = visitor.get("/prices?q=telegram").text();
    assert!(found.contains("data-service=\"tg\"") && !found.contains("data-service=\"wa\""));
    let countries = visitor.get("/prices?service=tg").text();
    assert!(
        countries.matches("data-service=\"tg\"").count() > 10,
        "{countries}"
    );
    assert_eq!(visitor.get("/prices?country=99999&q=%00").status, 200);

    // No order ended yet: "new" everywhere.
    let cat = visitor
        .get(&format!("/api/v1/catalogue?country={COUNTRY}&service=tg"))
        .json();
    assert_eq!(
        cat["offers"][0]["success_rate"],
        json!({"orders": 0, "coded": 0, "percent": null})
    );

    // Twelve Telegram orders: ten get their code and are completed, two are cancelled.
    let key = server.api_key(DEMO_EMAIL);
    let mut api = common::market::Api::new(
        &server,
        &key,
        server.user_id(DEMO_EMAIL).unwrap(),
        DEMO_EMAIL,
    );
    let mut coded = Vec::new();
    for _ in 0..10 {
        coded.push(id_of(&api.order_ok("tg")));
    }
    server.advance_clock(21);
    server.run_jobs();
    for id in &coded {
        assert_eq!(api.act(*id, "complete").status, 200);
    }
    for _ in 0..2 {
        let id = id_of(&api.order_ok("tg"));
        server.advance_clock(6);
        assert_eq!(api.act(id, "cancel").status, 200);
    }
    // The stats job folds the orders that ended more than two minutes ago (`stats::LAG`).
    server.advance_clock(125);
    server.run_jobs();

    let cat = visitor
        .get(&format!("/api/v1/catalogue?country={COUNTRY}&service=tg"))
        .json();
    assert_eq!(
        cat["offers"][0]["success_rate"],
        json!({"orders": 12, "coded": 10, "percent": 83})
    );
    let page = visitor.get(&format!("/prices?country={COUNTRY}")).text();
    let row = page
        .split("data-service=\"tg\"")
        .nth(1)
        .and_then(|s| s.split("</tr>").next())
        .unwrap();
    assert!(row.contains("83% success"), "{row}");
    // 5sim's guest prices: the same numbers, flat.
    let five: Value = visitor
        .get("/v1/guest/prices?country=indonesia&product=telegram")
        .json();
    let cell = &five["indonesia"]["telegram"]["any"];
    assert_eq!(cell["success_rate"], 83, "{five}");
    assert_eq!(cell["success_orders"], 12, "{five}");
    assert_eq!(cell["rate"], 83.0, "{five}");
    // The demo customer's order form shows it too.
    let mut web = server.client();
    web.login(DEMO_EMAIL, "demo-password");
    let dash = web.get(&format!("/dashboard?country={COUNTRY}")).text();
    let tg = dash
        .split("data-service=\"tg\">")
        .nth(1)
        .and_then(|s| s.split("</label>").next())
        .unwrap();
    assert!(tg.contains("83% success") && tg.contains("recent"), "{tg}");
}

#[test]
fn live_answers_when_a_code_arrives_and_waits_while_nothing_changes() {
    let server = TestServer::start_with(&[("OTPBOX_DEV_CLOCK", "1")]);
    server.add_numbers(COUNTRY, &["6281100000009"]);
    let (mut web, _) = server.signed_in("live@example.com", "user");
    server.cli_ok(&[
        "user",
        "credit",
        "--email",
        "live@example.com",
        "--amount",
        "5.00",
    ]);
    let r = web.submit(
        "/dashboard",
        "/orders",
        &[("country", &COUNTRY.to_string()), ("service", "tg")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let live = web.get("/live").json();
    let order = &live["orders"][0];
    assert_eq!(order["status"], "waiting");
    assert_eq!(order["code"], Value::Null);
    let html = order["html"].as_str().unwrap();
    // Inside the early-cancel window, Cancel is disabled with its countdown.
    assert!(
        html.contains("disabled data-opens-at=") && html.contains("Cancel in 2:00"),
        "{html}"
    );
    let state = live["state"].as_str().unwrap().to_string();
    let seen = common::url_encode(&state);

    // Nothing changes: the answer waits out its wait, then shows the same state.
    let started = std::time::Instant::now();
    let same = web.get(&format!("/live?seen={seen}&wait=1")).json();
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    assert_eq!(same["state"], state.as_str());

    // A code arrives while the page waits: the answer comes at once, with the code.
    let mut waiting = web.clone();
    let path = format!("/live?seen={seen}&wait=20");
    let started = std::time::Instant::now();
    let handle = std::thread::spawn(move || waiting.get(&path).json());
    // Give the request time to park (had the SMS landed first, its first answer would
    // already carry the code: the assertions hold either way).
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(server.inject("6281100000009", "Telegram code: 77123"));
    let changed = handle.join().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert_ne!(changed["state"], state.as_str());
    assert_eq!(changed["orders"][0]["code"], "77123");
    assert_eq!(changed["orders"][0]["status"], "received");
    assert!(changed["orders"][0]["html"]
        .as_str()
        .unwrap()
        .contains("/complete"));
    // Signed out, the page's script is sent to the login form, never given data.
    let r = server.client().get("/live");
    assert_eq!(r.status, 303);
}

/// A signed-in customer with 5.00 and one live Telegram order on `phone`; returns the web
/// client, the order's id and the `/live` state the dashboard shows.
fn live_order(server: &TestServer, email: &str, phone: &str) -> (common::Client, i64, String) {
    server.add_numbers(COUNTRY, &[phone]);
    let (mut web, _) = server.signed_in(email, "user");
    server.cli_ok(&["user", "credit", "--email", email, "--amount", "5.00"]);
    let r = web.submit(
        "/dashboard",
        "/orders",
        &[("country", &COUNTRY.to_string()), ("service", "tg")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let live = web.get("/live?show=orders").json();
    let id = live["orders"][0]["id"].as_i64().unwrap();
    (web, id, live["state"].as_str().unwrap().to_string())
}

/// Runs a GET on its own thread; joins to (status, Retry-After, body, time taken).
fn in_background(
    mut c: common::Client,
    path: String,
    headers: Vec<(String, String)>,
) -> std::thread::JoinHandle<(u16, Option<String>, String, std::time::Duration)> {
    std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = c.request("GET", &path, &h, b"");
        let retry = r.header("Retry-After").map(str::to_string);
        (r.status, retry, r.text(), started.elapsed())
    })
}

#[test]
fn open_pages_use_half_the_waiting_pool_and_past_it_are_told_to_come_back_later() {
    // Two requests may wait at once: one of them may be a page's.
    let server = TestServer::start_with(&[("OTPBOX_MAX_WAITING", "2")]);
    let email = "pool@example.com";
    let (web, id, state) = live_order(&server, email, "6281100000021");
    let seen = common::url_encode(&state);
    let path = format!("/live?show=orders&orders={id}&seen={seen}&wait=20");
    let first = in_background(web.clone(), path.clone(), vec![]);
    std::thread::sleep(std::time::Duration::from_millis(400));
    // A second tab: the page's half is taken, so it is told when to come back, at once,
    // instead of an unchanged answer it would ask again for right away.
    let (status, retry, body, took) = in_background(web.clone(), path, vec![]).join().unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry.as_deref(), Some("10"));
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    // An API client still gets its wait: open tabs never crowd it out.
    let key = server.api_key(email);
    let api = in_background(
        server.client(),
        format!("/api/v1/activations/{id}?wait=20"),
        vec![("Authorization".into(), format!("Bearer {key}"))],
    );
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert!(server.inject("6281100000021", "Telegram code: 55123"));
    let (status, _, body, took) = api.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("55123"), "{body}");
    assert!(took < std::time::Duration::from_secs(15), "{took:?}");
    let (status, _, body, took) = first.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("55123"), "{body}");
    assert!(took < std::time::Duration::from_secs(15), "{took:?}");
}

#[test]
fn a_waiting_live_request_ends_when_its_session_does() {
    let server = TestServer::start();
    let (mut web, id, state) = live_order(&server, "bye@example.com", "6281100000022");
    let seen = common::url_encode(&state);
    let waiting = in_background(
        web.clone(),
        format!("/live?show=orders&orders={id}&seen={seen}&wait=25"),
        vec![],
    );
    std::thread::sleep(std::time::Duration::from_millis(400));
    let r = web.submit("/dashboard", "/logout", &[]);
    assert_eq!(r.status, 303, "{}", r.text());
    // The wait ends with the session, never delivering what comes after.
    let (status, _, body, took) = waiting.join().unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
}

#[test]
fn live_reads_only_the_pages_part_and_rental_cards_show_the_newest_messages() {
    let server = TestServer::start();
    let phone = "6281300000023";
    server.add_numbers(COUNTRY, &[phone]);
    let email = "renter@example.com";
    let (mut web, _) = server.signed_in(email, "user");
    server.cli_ok(&["user", "credit", "--email", email, "--amount", "50.00"]);
    let r = web.submit(
        "/rentals",
        "/rentals",
        &[
            ("country", &COUNTRY.to_string()),
            ("service", "tg"),
            ("hours", "4"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    for i in 0..22 {
        assert!(server.inject(phone, &format!("Telegram code: {}", 10000 + i)));
    }
    // The dashboard asks for orders only: no rental is read or rendered for it.
    let dash = web.get("/live?show=orders").json();
    assert_eq!(dash["rentals"], json!([]));
    let live = web.get("/live?show=rentals").json();
    assert_eq!(live["orders"], json!([]));
    let rental = &live["rentals"][0];
    assert_eq!(rental["messages"], 22);
    let html = rental["html"].as_str().unwrap();
    assert!(html.contains("The newest 20 of 22 messages."), "{html}");
    assert_eq!(html.matches("<strong>").count(), 20, "{html}");
    assert!(html.contains("10021") && !html.contains("10001<"), "{html}");
    // The cheap state a waiting request re-checks is the rendered one: nothing changes, so
    // the answer waits its wait out.
    let seen = common::url_encode(live["state"].as_str().unwrap());
    let started = std::time::Instant::now();
    let same = web
        .get(&format!("/live?show=rentals&seen={seen}&wait=1"))
        .json();
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    assert_eq!(same["state"], live["state"]);
}

/// The tg row of an order form (the whole `<label>`, its attributes included).
fn tg_row(dash: &str) -> &str {
    dash.split("<label")
        .find(|l| l.contains("data-service=\"tg\""))
        .and_then(|s| s.split("</label>").next())
        .expect("tg listed")
}

#[test]
fn the_order_form_shows_the_chosen_operators_price_and_stock_and_charges_it() {
    let server = TestServer::start();
    let email = "operator@example.com";
    let (mut web, _) = server.signed_in(email, "user");
    server.cli_ok(&["user", "credit", "--email", email, "--amount", "5.00"]);
    let db = server.db();
    for (phone, op) in [
        ("79000000001", "mts"),
        ("79000000002", "mts"),
        ("79000000003", "beeline"),
    ] {
        db.execute(
            "INSERT INTO numbers (phone, country_id, operator, source, created_at) \
             VALUES (?1, 0, ?2, 'manual', strftime('%s','now'))",
            [phone, op],
        )
        .unwrap();
    }
    let base: i64 = db
        .query_row(
            "SELECT price_minor FROM prices WHERE country_id = 0 AND service = 'tg' AND operator = ''",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // MTS sells Telegram dearer than the country's price.
    let mts = base + 27;
    db.execute(
        "INSERT INTO prices (country_id, service, operator, price_minor, rent_hour_minor) \
         VALUES (0, 'tg', 'mts', ?1, 0)",
        [mts],
    )
    .unwrap();
    let fmt = |m: i64| format!("{}.{:02} USD", m / 100, m % 100);

    // Any operator: the country's price, every number.
    let dash = web.get("/dashboard?country=0").text();
    let any = tg_row(&dash);
    assert!(
        any.contains(&fmt(base)) && any.contains("3 in stock"),
        "{any}"
    );
    // The script's figures per operator ride along on the row.
    assert!(
        any.contains(&format!("&quot;mts&quot;:[&quot;{}&quot;,2]", fmt(mts))),
        "{any}"
    );
    // MTS chosen: its own price and its numbers only; Beeline: the country's price.
    let dash = web.get("/dashboard?country=0&operator=mts").text();
    assert!(dash.contains("<option value=\"mts\" selected>"), "{dash}");
    let row = tg_row(&dash);
    assert!(
        row.contains(&fmt(mts)) && row.contains("2 in stock"),
        "{row}"
    );
    let row_b = web.get("/dashboard?country=0&operator=beeline").text();
    let row_b = tg_row(&row_b);
    assert!(
        row_b.contains(&fmt(base)) && row_b.contains("1 in stock"),
        "{row_b}"
    );

    // Ordered with MTS: charged what the form showed.
    let r = web.submit(
        "/dashboard?country=0&operator=mts",
        "/orders",
        &[("country", "0"), ("service", "tg"), ("operator", "mts")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let page = web.follow(&r).text();
    assert!(page.contains(&format!("{} charged", fmt(mts))), "{page}");
}

/// The `href`s of the CSV file links on a history page.
fn csv_file_links(html: &str) -> Vec<String> {
    html.split("class=\"csv-file\" href=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().replace("&amp;", "&"))
        .collect()
}

/// The order ids of a CSV file.
fn csv_ids(csv: &str) -> Vec<i64> {
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn a_long_history_exports_as_csv_files_that_hold_every_order_once() {
    let server = TestServer::start();
    let (mut web, uid) = server.signed_in("long@example.com", "user");
    // 10,030 past orders, alternately Telegram and WhatsApp: three CSV files in all.
    let n = 10_030;
    server
        .db()
        .execute(
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?2) \
             INSERT INTO activations (user_id, phone, country_id, service, price_minor, status, \
             source, created_at, expires_at, ended_at) \
             SELECT ?1, '62811' || printf('%07d', i), 6, CASE i % 2 WHEN 0 THEN 'tg' ELSE 'wa' END, \
             35, 'completed', 'manual', 1700000000 + i, 1700001200 + i, 1700000100 + i FROM k",
            rusqlite::params![uid, n],
        )
        .unwrap();
    let ids_of = |service: &str| -> Vec<i64> {
        let db = server.db();
        let mut q = db
            .prepare(
                "SELECT id FROM activations WHERE user_id = ?1 AND service LIKE ?2 ORDER BY id DESC",
            )
            .unwrap();
        let ids = q
            .query_map(rusqlite::params![uid, service], |r| r.get::<_, i64>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        ids
    };
    let all = ids_of("%");
    assert_eq!(all.len(), n as usize);

    // The history page names the first two files and links to the whole list.
    let page = web.get("/orders").text();
    let first_two = csv_file_links(&page);
    assert_eq!(first_two.len(), 2, "{page}");
    assert!(
        page.contains("newest 5,000") && page.contains("next 5,000"),
        "{page}"
    );
    assert!(page.contains("id=\"all-files\""), "{page}");
    let page = web.get("/orders?files=all").text();
    let files = csv_file_links(&page);
    assert_eq!(files.len(), 3, "{page}");
    assert_eq!(files[..2], first_two[..]);
    assert!(!page.contains("id=\"all-files\""));
    // Together the files hold every order exactly once, newest first; each file's `Link`
    // names the next one, and the last has none.
    let mut got: Vec<i64> = Vec::new();
    for (i, href) in files.iter().enumerate() {
        let r = web.get(href);
        assert_eq!(r.status, 200, "{href}");
        let ids = csv_ids(&r.text());
        assert_eq!(ids.len(), if i < 2 { 5000 } else { 30 }, "{href}");
        got.extend(ids);
        match files.get(i + 1) {
            Some(next) => assert_eq!(
                r.header("Link"),
                Some(format!("<{next}>; rel=\"next\"").as_str())
            ),
            None => assert_eq!(r.header("Link"), None),
        }
    }
    assert_eq!(got, all);

    // Filtered (Telegram: 5,015 orders): two files, the filter kept in each, no list beyond.
    let page = web.get("/orders?service=tg").text();
    let tg = csv_file_links(&page);
    assert_eq!(tg.len(), 2, "{page}");
    assert!(!page.contains("id=\"all-files\""));
    let mut got: Vec<i64> = Vec::new();
    for href in &tg {
        assert!(href.contains("service=tg"), "{href}");
        got.extend(csv_ids(&web.get(href).text()));
    }
    assert_eq!(got, ids_of("tg"));
    assert_eq!(got.len(), 5015);
}

/// A live order's card names its country even after the country was taken off sale (the
/// country picker lists only the countries on sale).
#[test]
fn a_live_orders_card_names_a_country_taken_off_sale() {
    let server = TestServer::start();
    let (mut web, _, _) = live_order(&server, "offsale@example.com", "+6281200000077");
    let db = server.db();
    let name: String = db
        .query_row("SELECT name FROM countries WHERE id = ?1", [COUNTRY], |r| {
            r.get(0)
        })
        .unwrap();
    let card = format!("Telegram · {name} · ");
    assert!(web.get("/dashboard").text().contains(&card));
    db.execute("UPDATE countries SET enabled = 0 WHERE id = ?1", [COUNTRY])
        .unwrap();
    let dash = web.get("/dashboard").text();
    assert!(dash.contains(&card), "the card lost its country's name");
    assert!(
        !dash.contains(&format!("?country={COUNTRY}\"")),
        "the picker still offers the country"
    );
}
