//! No request path or job may cost more as history grows. This test fills a database with
//! a long history (200,000 past activations with their messages and ledger rows, 50,000
//! numbers, ended rentals, security events and audit rows), runs the hot paths (ordering,
//! status, SMS ingest, finishing and cancelling, rentals, balance and ledger, the dashboard,
//! history pages, and the jobs that run every few seconds) with SQLite's statement trace on,
//! then asks `EXPLAIN QUERY PLAN` about every statement they ran and fails on any full scan
//! of a table that grows with history. Because an index can still walk a long history (all
//! of an account's past orders, say), it also fails on any statement that took more than
//! [`MAX_STEPS`] SQLite VM steps per run: a page of rows costs a few thousand.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use rusqlite::trace::{TraceEvent, TraceEventCodes};
use rusqlite::{Connection, StatementStatus};

use crate::db;
use crate::domain::accounts::{self, User};
use crate::domain::market::activations::{self, CancelReason, OrderRequest, Placed, Policy};
use crate::domain::market::inbox::{self, Inbound};
use crate::domain::market::rentals::{self, RentRequest};
use crate::domain::market::wallet;
use crate::domain::market::{catalogue, simulator, webhooks};

/// Tables that grow with every order, message, payment or event.
const GROWING: [&str; 9] = [
    "activations",
    "rentals",
    "ledger",
    "messages",
    "numbers",
    "number_usage",
    "webhook_deliveries",
    "security_events",
    "audit_log",
];

const POLICY: Policy = Policy {
    early_cancel: 0,
    default_ttl: 1200,
    max_live: 20,
    cooldown: 0,
    sim_delay: 5,
    operator_share: 70,
    allow_private_urls: false,
};

/// The most VM steps one run of a hot-path statement may take (a full walk of the history
/// takes millions).
const MAX_STEPS: i32 = 25_000;

/// Statements that walk the inventory (the free numbers on sale and what they served), not
/// the history: the catalogue's stock counts. They cost as much with a million past orders
/// as with none, but grow with the numbers an install sells; a stock counter kept with the
/// numbers' changes would make them constant (a follow-up of issue 12).
const INVENTORY_WALKS: [&str; 2] = [
    "SELECT n.country_id, COUNT(*) FROM numbers n WHERE",
    "SELECT n.country_id, u.service, COUNT(*) FROM number_usage u JOIN numbers n",
];

/// "Now": after the whole history.
const NOW: i64 = 2_000_000_000;

/// The history: the ordering account (id 1) holds half of the past activations.
fn fill(conn: &Connection) {
    catalogue::seed_if_empty(conn).unwrap();
    conn.execute_batch(&format!(
        "
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000)
        INSERT INTO users (email, role, state, created_at, email_verified_at, age_confirmed_at,
                           aup_accepted_at, balance_minor)
        SELECT 'u' || x || '@example.com', 'user', 'active', 1, 1, 1, 1, 100000000 FROM c;

        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000)
        INSERT INTO numbers (phone, country_id, operator, source, state, created_at, last_used_at)
        SELECT '62' || (800000000 + x), CASE WHEN x % 2 = 0 THEN 6 ELSE 22 END, '', 'manual',
               'free', 1, x FROM c;

        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000)
        INSERT INTO number_usage (number_id, service, last_used_at) SELECT x, 'wa', x FROM c;

        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
        INSERT INTO activations (user_id, number_id, phone, country_id, service, price_minor,
                                 status, source, created_at, expires_at, ended_at, code_at)
        SELECT CASE WHEN x % 2 = 0 THEN 1 ELSE 2 + x % 999 END, 1 + x % 50000,
               '62' || (800000000 + 1 + x % 50000), 6, 'tg', 35,
               CASE x % 3 WHEN 0 THEN 'completed' WHEN 1 THEN 'canceled' ELSE 'expired' END,
               'manual', {start} + x * 1000, {start} + x * 1000 + 1200, {start} + x * 1000 + 600,
               CASE WHEN x % 3 = 0 THEN {start} + x * 1000 + 60 END
        FROM c;

        INSERT INTO messages (activation_id, sender, text, code, received_at)
        SELECT id, 'Telegram', 'Telegram code: 12345', '12345', created_at + 60 FROM activations;

        INSERT INTO ledger (user_id, amount_minor, kind, ref_type, ref_id, note, balance_after,
                            created_at)
        SELECT user_id, -35, 'charge', 'activation', id, '', 0, created_at FROM activations;
        INSERT INTO ledger (user_id, amount_minor, kind, ref_type, ref_id, note, balance_after,
                            created_at)
        SELECT user_id, 35, 'refund', 'activation', id, '', 0, ended_at FROM activations
        WHERE status <> 'completed';

        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000)
        INSERT INTO rentals (user_id, number_id, phone, country_id, service, hours,
                             hour_minor, paid_minor, status, auto_renew, webhook_url, created_at,
                             expires_at, ended_at)
        SELECT CASE WHEN x % 2 = 0 THEN 1 ELSE 2 END, 1 + x % 50000, '62' || (800000000 + 1 + x % 50000),
               6, 'tg', 4, 25, 100, 'finished', 0, '', {start} + x * 1000, {start} + x * 1000 + 14400,
               {start} + x * 1000 + 14400
        FROM c;

        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000)
        INSERT INTO security_events (user_id, kind, ip_hash, detail, at)
        SELECT 1 + x % 1000, 'login', 'h' || (x % 500), '', {start} + x * 100 FROM c;

        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000)
        INSERT INTO audit_log (actor_id, action, target_id, detail, ip_hash, at)
        SELECT 1, 'credit', 1 + x % 1000, '', 'h', {start} + x * 100 FROM c;
        ",
        start = NOW - 300_000_000,
    ))
    .unwrap();
}

/// What the trace saw: each statement as run (parameters bound), and per statement text the
/// most VM steps one run took.
#[derive(Default)]
struct Seen {
    statements: Vec<String>,
    steps: std::collections::BTreeMap<String, i32>,
}

/// Runs `f` with every statement it executes recorded.
fn traced(conn: &mut Connection, f: impl FnOnce(&mut Connection)) -> Seen {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink = seen.clone();
    conn.trace_v2(
        TraceEventCodes::SQLITE_TRACE_STMT | TraceEventCodes::SQLITE_TRACE_PROFILE,
        Some(move |e: TraceEvent<'_>| {
            let mut seen = sink.lock().unwrap();
            match e {
                TraceEvent::Stmt(stmt, _) => {
                    if let Some(sql) = stmt.expanded_sql() {
                        seen.statements.push(sql);
                    }
                }
                TraceEvent::Profile(stmt, _) => {
                    let runs = stmt.get_status(StatementStatus::Run).max(1);
                    let per_run = stmt.get_status(StatementStatus::VmStep) / runs;
                    let most = seen.steps.entry(stmt.sql().into_owned()).or_default();
                    *most = (*most).max(per_run);
                }
                _ => {}
            }
        }),
    )
    .unwrap();
    f(conn);
    conn.trace_v2(TraceEventCodes::empty(), None::<fn(TraceEvent<'_>)>)
        .unwrap();
    let mut seen = seen.lock().unwrap();
    std::mem::take(&mut *seen)
}

fn user(conn: &Connection, id: i64) -> User {
    accounts::get(conn, id).unwrap()
}

/// The hot paths, as the handlers and jobs call them.
fn hot_paths(conn: &mut Connection) {
    let now = NOW;
    let buyer = user(conn, 1);
    simulator::configure(conn, true, simulator::Mode::Normal).unwrap();
    let tg = OrderRequest {
        country: 6,
        service: "tg".into(),
        ..Default::default()
    };
    // Ordering, reading, an SMS, finishing; another order cancelled.
    let placed = db::write(conn, |tx| activations::order(tx, &buyer, &tg, &POLICY, now)).unwrap();
    let Placed::New(a) = placed else {
        panic!("a new order")
    };
    activations::count_live(conn, 1).unwrap();
    activations::get_for(conn, 1, a.id).unwrap();
    inbox::latest_code(conn, a.id).unwrap();
    inbox::codes_of(conn, a.id).unwrap();
    let sms = Inbound {
        to: a.phone.clone(),
        sender: "Telegram".into(),
        text: "Telegram code: 54321".into(),
        received_at: now,
        source: "gateway:1".into(),
        source_msg_id: Some("m-1".into()),
        device_id: None,
    };
    db::write(conn, |tx| inbox::ingest(tx, &sms, now)).unwrap();
    db::write(conn, |tx| activations::complete(tx, 1, a.id, &POLICY, now)).unwrap();
    let buyer = user(conn, 1);
    let placed = db::write(conn, |tx| activations::order(tx, &buyer, &tg, &POLICY, now)).unwrap();
    let Placed::New(b) = placed else {
        panic!("a new order")
    };
    db::write(conn, |tx| {
        activations::cancel(tx, 1, b.id, CancelReason::Cancel, &POLICY, now)
    })
    .unwrap();
    // Idempotent order ids.
    let with_id = OrderRequest {
        client_order_id: Some("order-1".into()),
        ..tg.clone()
    };
    let buyer = user(conn, 1);
    db::write(conn, |tx| {
        activations::order(tx, &buyer, &with_id, &POLICY, now)
    })
    .unwrap();
    // Rentals.
    let buyer = user(conn, 1);
    let rr = RentRequest {
        country: 6,
        service: "tg".into(),
        hours: 4,
        auto_renew: false,
        webhook_url: String::new(),
    };
    let r = db::write(conn, |tx| rentals::rent(tx, &buyer, &rr, &POLICY, now)).unwrap();
    rentals::list(conn, 1, true, 50).unwrap();
    inbox::for_rental(conn, r.id).unwrap();
    db::write(conn, |tx| rentals::finish(tx, 1, r.id, &POLICY, now)).unwrap();
    // Balance, ledger, dashboard, history.
    wallet::balance(conn, 1).unwrap();
    wallet::entries(conn, 1, 100, None).unwrap();
    catalogue::offers(conn, Some(6), None, 0, now).unwrap();
    let live = activations::list(
        conn,
        1,
        &[
            activations::Status::Waiting,
            activations::Status::Received,
            activations::Status::Retry,
        ],
        50,
        0,
    )
    .unwrap();
    for a in &live {
        inbox::for_activation(conn, a.id).unwrap();
    }
    let page = activations::list_before(conn, 1, None, 51).unwrap();
    activations::list_before(conn, 1, page.last().map(|a| a.id), 51).unwrap();
    // The jobs that run every few seconds.
    db::write(conn, |tx| activations::expire_due(tx, &POLICY, now)).unwrap();
    db::write(conn, |tx| rentals::expire_due(tx, &POLICY, now)).unwrap();
    db::write(conn, |tx| simulator::deliver_due(tx, now)).unwrap();
    webhooks::due(conn, now, 50).unwrap();
}

/// The scans of growing tables in the plan of `sql`.
fn full_scans(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = match conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")) {
        Ok(s) => s,
        Err(_) => return Vec::new(), // BEGIN, COMMIT, SAVEPOINT and the like
    };
    let details: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    details
        .into_iter()
        .filter(|d| {
            let Some(rest) = d.strip_prefix("SCAN ") else {
                return false;
            };
            let table = rest.split_whitespace().next().unwrap_or("");
            // The free numbers on sale are the stock, not history (their own partial index).
            GROWING.contains(&table) && !rest.contains("numbers_free")
        })
        .collect()
}

#[test]
fn no_hot_path_scans_a_table_that_grows_with_history() {
    let mut conn = db::memory();
    fill(&conn);
    // The detector sees a scan when there is one.
    assert!(!full_scans(
        &conn,
        "SELECT COUNT(*) FROM activations WHERE service = 'tg'"
    )
    .is_empty());
    let seen = traced(&mut conn, hot_paths);
    assert!(
        seen.statements.len() > 40,
        "only {} statements",
        seen.statements.len()
    );
    let unique: BTreeSet<&String> = seen.statements.iter().collect();
    let mut wrong = Vec::new();
    for sql in unique {
        for scan in full_scans(&conn, sql) {
            wrong.push(format!("{scan}\n    in: {sql}"));
        }
    }
    for (sql, steps) in &seen.steps {
        if *steps > MAX_STEPS && !INVENTORY_WALKS.iter().any(|w| sql.starts_with(w)) {
            wrong.push(format!("{steps} VM steps per run\n    in: {sql}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "statements that grow with history:\n{}",
        wrong.join("\n")
    );
}
