//! The privacy page's retention promises, each kept by a scheduled job and proven here by
//! moving the server's clock (never by sleeping): SMS texts, order anonymisation, ledger
//! deletion with balances carried over, operational and security logs, and no raw IP address
//! anywhere in the database.

mod common;

use common::market::{id_of, COUNTRY};
use common::TestServer;

const DAY: u64 = 86_400;

#[test]
fn the_privacy_page_states_the_live_periods() {
    let server = TestServer::start_with(&[
        ("OTPBOX_SMS_RETENTION", "7m"),
        ("OTPBOX_ORDER_RETENTION", "18mo"),
        ("OTPBOX_SECURITY_LOG_RETENTION", "2y"),
        ("OTPBOX_LOG_RETENTION", "14d"),
    ]);
    let page = server.client().get("/privacy").text();
    let period_of = |what: &str| {
        let row = page
            .split("<tr>")
            .find(|r| r.contains(what))
            .unwrap_or_else(|| panic!("no row about {what:?} on /privacy"));
        let from = row.find("class=\"period\">").expect("period cell") + 15;
        row[from..from + row[from..].find('<').unwrap()].to_string()
    };
    assert_eq!(period_of("Texts and codes"), "7 minutes");
    assert_eq!(period_of("orders and rentals"), "18 months");
    assert_eq!(period_of("Ledger and payment"), "7 years");
    assert_eq!(period_of("Operational logs"), "2 weeks");
    assert_eq!(period_of("Security logs"), "2 years");

    let defaults = TestServer::start();
    let page = defaults.client().get("/privacy").text();
    for period in ["5 minutes", "24 months", "7 years", "12 months"] {
        assert!(page.contains(period), "default period {period} missing");
    }
}

/// The admin's retention page: the `removed` and `total` cells of a rule.
fn admin_counts(server: &TestServer, admin_email: &str, rule: &str) -> (i64, i64) {
    let (mut admin, _) = server.signed_in(admin_email, "admin");
    let page = admin.get("/admin/retention").text();
    let row = page
        .split("<tr data-rule=\"")
        .find(|r| r.starts_with(&format!("{rule}\"")))
        .unwrap_or_else(|| panic!("no {rule} row:\n{page}"));
    let cell = |class: &str| -> i64 {
        let from = row.find(&format!("class=\"{class}\">")).unwrap() + class.len() + 9;
        row[from..from + row[from..].find('<').unwrap()]
            .parse()
            .unwrap()
    };
    (cell("removed"), cell("total"))
}

#[test]
fn every_rule_runs_on_the_clock() {
    let server = TestServer::start_with(&[("OTPBOX_API_RATE", "0"), ("OTPBOX_DEV_CLOCK", "1")]);
    // Only run_jobs runs the jobs here, so each run's counts are the test's to read (the
    // scheduler would otherwise run them as soon as the clock moves past their time).
    assert_eq!(
        server
            .client()
            .post("/__dev/scheduler?paused=1", b"")
            .status,
        200
    );
    server.add_numbers(COUNTRY, &["6281100000001", "6281100000002"]);
    let mut api = server.customer("keep@example.com", "10.00");
    let mut web = server.client();
    assert_eq!(
        web.login("keep@example.com", common::PASSWORD).location(),
        Some("/dashboard")
    );

    // One order completed with a code, one cancelled and refunded.
    let done = api.order_ok("tg");
    assert!(server.inject(done["phone"].as_str().unwrap(), "Telegram code 12345"));
    assert_eq!(api.act(id_of(&done), "complete").status, 200);
    let dropped = api.order_ok("wa");
    server.advance_clock(3 * 60);
    assert_eq!(api.act(id_of(&dropped), "cancel").status, 200);
    let balance = api.balance();
    assert_eq!(server.stored_messages(id_of(&done)), 1);

    // SMS texts: gone five minutes after the order ended.
    server.advance_clock(6 * 60);
    server.run_jobs();
    assert_eq!(server.stored_messages(id_of(&done)), 0);
    assert_eq!(admin_counts(&server, "a1@example.com", "sms").1, 1);

    // A raw IP address is stored nowhere (sessions, security log, audit log keep hashes).
    let db = server.db();
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for t in &tables {
        let mut stmt = db.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..n {
                if let Ok(text) = row.get::<_, String>(i) {
                    assert!(
                        !text.contains("127.0.0.1"),
                        "a raw IP address in {t}: {text}"
                    );
                }
            }
        }
    }
    let logins: i64 = server.count(
        "SELECT COUNT(*) FROM security_events WHERE kind LIKE 'login%' AND length(ip_hash) > 0",
    );
    assert!(
        logins >= 1,
        "logins are in the security log with a hashed IP"
    );

    // 24 months later the orders are anonymised: gone from the account, totals kept, the
    // ledger keeps the amounts without saying what they were for.
    server.advance_clock(721 * DAY);
    server.run_jobs();
    for id in [id_of(&done), id_of(&dropped)] {
        assert_eq!(
            api.get(&format!("/api/v1/activations/{id}")).status,
            404,
            "order {id} still visible"
        );
        assert!(server.ledger_of("activation", id).is_empty());
    }
    assert_eq!(server.count("SELECT COUNT(*) FROM activations"), 0);
    assert_eq!(
        server.count("SELECT SUM(orders) FROM order_totals WHERE kind = 'activation'"),
        2
    );
    assert_eq!(
        server.count(
            "SELECT COUNT(*) FROM order_totals WHERE status = 'canceled' AND refunded_minor > 0"
        ),
        1
    );
    assert!(
        server.count("SELECT COUNT(*) FROM ledger WHERE ref_type = 'activation'") >= 3,
        "charges and the refund stay in the ledger"
    );
    assert_eq!(api.balance(), balance);
    server.assert_books_balance();
    // Operational and security logs older than their periods went with the same run.
    assert_eq!(
        server.count("SELECT COUNT(*) FROM security_events WHERE kind LIKE 'login%'"),
        0
    );
    assert_eq!(admin_counts(&server, "a2@example.com", "orders"), (2, 2));
    assert!(admin_counts(&server, "a3@example.com", "security").1 >= 1);
    assert!(admin_counts(&server, "a4@example.com", "logs").1 >= 1);

    // Seven years after the payments, their ledger rows are deleted and the balance is
    // carried over in one row.
    server.advance_clock(7 * 365 * DAY);
    server.run_jobs();
    let user = api.user_id;
    let rows = server.count(&format!(
        "SELECT COUNT(*) FROM ledger WHERE user_id = {user}"
    ));
    assert_eq!(rows, 1, "one carried-over row");
    assert_eq!(
        server.count(&format!(
            "SELECT amount_minor FROM ledger WHERE user_id = {user} AND kind = 'adjustment'"
        )),
        balance
    );
    assert_eq!(api.balance(), balance);
    server.assert_books_balance();
    assert!(admin_counts(&server, "a5@example.com", "ledger").1 >= 3);
}

/// How far inside its period a row that must survive is dated. The server's dev clock runs on
/// with the wall clock between reading it and the jobs' run, so the test measures that time
/// and fails if it reached this margin (then a survivor could have been a fluke). The rows
/// that must go are dated exactly at the period (`<=` rules) or one second beyond (`<` rules),
/// so that side has no slack at all.
const MARGIN: i64 = 20;

/// Every retention rule, both sides of its boundary, with the default periods the privacy page
/// promises: a row dated just inside the period survives the jobs' run, one dated at the
/// period is gone. A rule that deleted early (a security log kept one day, orders anonymised
/// after a month) or late (off by more than a second) fails here.
#[test]
fn every_rule_keeps_its_rows_until_its_period_ends_and_not_longer() {
    const SMS: i64 = 5 * 60; // sms_retention 5m
    const ORDERS: i64 = 24 * 30 * DAY as i64; // order_retention 24mo
    const LEDGER: i64 = 7 * 365 * DAY as i64; // ledger_retention 7y
    const LOGS: i64 = 30 * DAY as i64; // log_retention 30d
    const SECURITY: i64 = 12 * 30 * DAY as i64; // security_log_retention 12mo

    let server = TestServer::start_with(&[("OTPBOX_API_RATE", "0"), ("OTPBOX_DEV_CLOCK", "1")]);
    server.add_numbers(
        COUNTRY,
        &[
            "6281100000011",
            "6281100000012",
            "6281100000013",
            "6281100000014",
        ],
    );
    let mut api = server.customer("orders@example.com", "50.00");
    // Four completed orders with a code each: two for the SMS rule, two for the order rule.
    let mut orders = Vec::new();
    for service in ["tg", "wa", "tg", "wa"] {
        let o = api.order_ok(service);
        assert!(server.inject(o["phone"].as_str().unwrap(), "Your code 24680"));
        assert_eq!(api.act(id_of(&o), "complete").status, 200);
        assert_eq!(server.stored_messages(id_of(&o)), 1);
        orders.push(id_of(&o));
    }
    let [sms_keep, sms_drop, order_keep, order_drop] = orders[..] else {
        unreachable!()
    };
    // Two accounts with two payments each, for the ledger rule.
    server.customer("ledger-keep@example.com", "1.00");
    server.customer("ledger-drop@example.com", "1.00");
    for email in ["ledger-keep@example.com", "ledger-drop@example.com"] {
        server.cli_ok(&["user", "credit", "--email", email, "--amount", "2.00"]);
    }
    let keep_user = server.user_id("ledger-keep@example.com").unwrap();
    let drop_user = server.user_id("ledger-drop@example.com").unwrap();

    // Date everything relative to the server's clock now.
    let t0 = server.clock_now();
    let db = server.db();
    let set = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
        assert_eq!(db.execute(sql, params).unwrap(), 1, "{sql}");
    };
    // SMS texts go once `ended_at <= now - period`.
    for (id, ended) in [(sms_keep, t0 - SMS + MARGIN), (sms_drop, t0 - SMS)] {
        set(
            "UPDATE activations SET ended_at = ?2 WHERE id = ?1",
            &[&id, &ended],
        );
    }
    // Orders are anonymised once `created_at < now - period`.
    for (id, created) in [
        (order_keep, t0 - ORDERS + MARGIN),
        (order_drop, t0 - ORDERS - 1),
    ] {
        set(
            "UPDATE activations SET created_at = ?2, ended_at = ?2 + 60 WHERE id = ?1",
            &[&id, &created],
        );
    }
    // Ledger rows are folded once `created_at < now - period`.
    for (user, at) in [
        (keep_user, t0 - LEDGER + MARGIN),
        (drop_user, t0 - LEDGER - 1),
    ] {
        assert_eq!(
            db.execute(
                "UPDATE ledger SET created_at = ?2 WHERE user_id = ?1",
                rusqlite::params![user, at],
            )
            .unwrap(),
            2
        );
    }
    // Operational and security logs go once `at < now - period`.
    for (job, at) in [
        ("boundary-keep", t0 - LOGS + MARGIN),
        ("boundary-drop", t0 - LOGS - 1),
    ] {
        set(
            "INSERT INTO job_runs (job, started_at, duration_ms, ok, message) \
             VALUES (?1, ?2, 1, 1, '')",
            &[&job, &at],
        );
    }
    for (kind, at) in [
        ("boundary-keep", t0 - SECURITY + MARGIN),
        ("boundary-drop", t0 - SECURITY - 1),
    ] {
        set(
            "INSERT INTO security_events (at, kind) VALUES (?2, ?1)",
            &[&kind, &at],
        );
        set(
            "INSERT INTO audit_log (at, action) VALUES (?2, ?1)",
            &[&kind, &at],
        );
    }
    drop(db);

    server.run_jobs();
    let elapsed = server.clock_now() - t0;
    assert!(
        elapsed < MARGIN,
        "the run took {elapsed} s of the server's clock, more than the margin"
    );

    // SMS texts.
    assert_eq!(
        server.stored_messages(sms_keep),
        1,
        "SMS text deleted early"
    );
    assert_eq!(
        server.stored_messages(sms_drop),
        0,
        "SMS text kept too long"
    );
    // Orders.
    assert_eq!(
        api.get(&format!("/api/v1/activations/{order_keep}")).status,
        200,
        "order anonymised early"
    );
    assert_eq!(
        api.get(&format!("/api/v1/activations/{order_drop}")).status,
        404,
        "order kept too long"
    );
    assert_eq!(
        server.count(&format!(
            "SELECT COUNT(*) FROM activations WHERE id IN ({order_keep}, {order_drop})"
        )),
        1
    );
    // Ledger: the young account keeps both rows, the old one has its carried-over row.
    let ledger = |user: i64| -> Vec<(String, i64)> {
        server
            .db()
            .prepare("SELECT kind, amount_minor FROM ledger WHERE user_id = ?1 ORDER BY id")
            .unwrap()
            .query_map([user], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(ledger(keep_user).len(), 2, "ledger rows folded early");
    assert_eq!(
        ledger(drop_user),
        vec![("adjustment".to_string(), 300)],
        "ledger rows kept too long"
    );
    server.assert_books_balance();
    // Logs.
    let count_of = |table: &str, column: &str, value: &str| {
        server.count(&format!(
            "SELECT COUNT(*) FROM {table} WHERE {column} = '{value}'"
        ))
    };
    assert_eq!(
        count_of("job_runs", "job", "boundary-keep"),
        1,
        "log deleted early"
    );
    assert_eq!(
        count_of("job_runs", "job", "boundary-drop"),
        0,
        "log kept too long"
    );
    for (table, column) in [("security_events", "kind"), ("audit_log", "action")] {
        assert_eq!(
            count_of(table, column, "boundary-keep"),
            1,
            "{table} deleted early"
        );
        assert_eq!(
            count_of(table, column, "boundary-drop"),
            0,
            "{table} kept too long"
        );
    }
}
