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
