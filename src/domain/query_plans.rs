//! No request path or job may cost more as history grows. This test fills a database with
//! a long history (200,000 past activations with their messages and ledger rows, 50,000
//! numbers and 30,000 once bought upstream, ended rentals, security events and audit rows), runs the hot paths (ordering,
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
const GROWING: [&str; 13] = [
    "activations",
    "partner_orders",
    "partner_pushes",
    "payments",
    "rentals",
    "ledger",
    "messages",
    "numbers",
    "number_usage",
    "webhook_deliveries",
    "security_events",
    "audit_log",
    "job_runs",
];

const POLICY: Policy = Policy {
    early_cancel: 0,
    default_ttl: 1200,
    max_live: 20,
    cooldown: 3600,
    sim_delay: 5,
    sim_odds: crate::domain::market::simulator::Odds::NONE,
    operator_share: 70,
    allow_private_urls: false,
};

/// The most VM steps one run of a hot-path statement may take (a full walk of the history
/// takes millions).
const MAX_STEPS: i32 = 25_000;

/// Partial indexes that hold only live rows: walking one costs what is live, not history.
const LIVE_INDEXES: [&str; 4] = [
    "webhook_deliveries_due",
    "numbers_not_sim",
    "partner_orders_held",
    "partner_pushes_due",
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

        -- Numbers once bought upstream: free, never on sale, in the ordering country, and
        -- used longer ago than any number on sale; order picking must not walk them.
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 30000)
        INSERT INTO numbers (phone, country_id, operator, source, state, on_sale, created_at,
                             last_used_at)
        SELECT '63' || (800000000 + x), 6, '', 'upstream', 'free', 0, 1, -x FROM c;

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
        SELECT 1, CASE WHEN x % 1000 = 0 THEN 'terminate' ELSE 'credit' END, 1 + x % 1000, '',
               'h', {start} + x * 100 FROM c;

        -- The jobs' runs, one a minute, one in a hundred failed, the newest at NOW.
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000)
        INSERT INTO job_runs (job, started_at, duration_ms, ok, message)
        SELECT CASE x % 4 WHEN 0 THEN 'expiry' WHEN 1 THEN 'simulator' WHEN 2 THEN 'webhooks'
               ELSE 'backup' END, {start} + 300000000 - 100000 * 60 + x * 60, 3,
               CASE WHEN x % 100 = 0 THEN 0 ELSE 1 END, '' FROM c;

        -- Account 3 is an operator owning 500 numbers, with the sales and earnings on them.
        UPDATE users SET role = 'operator' WHERE id = 3;
        UPDATE numbers SET owner_id = 3 WHERE id <= 500;
        UPDATE activations SET owner_id = 3 WHERE number_id <= 500;
        UPDATE rentals SET owner_id = 3 WHERE number_id <= 500;
        INSERT INTO ledger (user_id, amount_minor, kind, ref_type, ref_id, note, balance_after,
                            created_at)
        SELECT 3, 24, 'earning', 'activation', id, '', 0, ended_at FROM activations
        WHERE owner_id = 3 AND status = 'completed';
        UPDATE users SET earned_minor = (SELECT SUM(amount_minor) FROM ledger
                                         WHERE user_id = 3 AND kind = 'earning') WHERE id = 3;

        -- Past top-ups in the same years as the orders, half of them the ordering account's,
        -- the rest of accounts whose old ledger does not sum to zero (so the daily retention
        -- run folds as many accounts as without them), each with its ledger row; a few open.
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000)
        INSERT INTO payments (user_id, gateway, gateway_ref, gateway_charge, status, amount_minor,
                              credited_minor, currency, checkout_url, created_at, updated_at,
                              paid_at)
        SELECT CASE WHEN x % 2 = 0 THEN 1 ELSE 2 + (3 * x) % 999 END,
               CASE WHEN x % 3 = 0 THEN 'btcpay' ELSE 'stripe' END, 'ref_' || x,
               CASE WHEN x % 3 = 0 THEN NULL ELSE 'pi_' || x END,
               CASE WHEN x > 49990 THEN 'pending' WHEN x % 7 = 0 THEN 'expired' ELSE 'paid' END,
               1000, CASE WHEN x > 49990 OR x % 7 = 0 THEN 0 ELSE 1000 END, 'USD', '',
               {start} + x * 4000, {start} + x * 4000 + 60,
               CASE WHEN x > 49990 OR x % 7 = 0 THEN NULL ELSE {start} + x * 4000 + 60 END
        FROM c;
        INSERT INTO ledger (user_id, amount_minor, kind, ref_type, ref_id, note, balance_after,
                            created_at)
        SELECT user_id, credited_minor, 'topup', 'payment', id, '', 0, paid_at FROM payments
        WHERE paid_at IS NOT NULL;

        -- Webhook deliveries: long finished ones, and a few pending.
        INSERT INTO webhooks (user_id, url, events, secret_salt, created_at)
        VALUES (1, 'https://example.com/hook', 'activation.updated', 's', 1);
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000)
        INSERT INTO webhook_deliveries (uuid, user_id, webhook_id, url, event, payload, ref_type,
                                        ref_id, state, attempts, next_attempt_at, created_at,
                                        finished_at)
        SELECT 'd' || x, 1, 1, 'https://example.com/hook', 'activation.updated', '{{}}',
               'activation', x * 2, CASE WHEN x > 49990 THEN 'pending' ELSE 'delivered' END, 1,
               {start} + x * 1000, {start} + x * 1000,
               CASE WHEN x > 49990 THEN NULL ELSE {start} + x * 1000 END
        FROM c;

        -- A partner hub (account 1001) with 100,000 finished orders and their pushes.
        INSERT INTO users (email, created_at) VALUES ('partner-1@partners.invalid', 1);
        INSERT INTO partners (id, name, push_url, key_sealed, currency, rate_micro, account_id,
                              created_at)
        VALUES (1, 'hub', 'https://hub.example/push', 'x', 840, 1000000, 1001, 1);
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000)
        INSERT INTO partner_orders (partner_id, number_id, phone, country_id, operator, service,
                                    sum_micro, price_minor, state, held, created_at, finished_at)
        SELECT 1, 1 + x % 50000, '62' || (800000000 + 1 + x % 50000), 6, '', 'vk', 2500, 25,
               CASE x % 4 WHEN 0 THEN 'sold' WHEN 1 THEN 'canceled' WHEN 2 THEN 'used'
               ELSE 'refunded' END, 0, {start} + x * 1000, {start} + x * 1000 + 600
        FROM c;
        INSERT INTO partner_pushes (partner_id, order_id, phone, sender, text, state, attempts,
                                    next_at, created_at, delivered_at)
        SELECT 1, id, phone, 'VK', '', 'delivered', 1, created_at, created_at, created_at + 5
        FROM partner_orders;
        -- Its cancels per number and service: bounded by the SIMs it was offered, not history.
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000)
        INSERT INTO partner_offers (partner_id, number_id, service, canceled)
        SELECT 1, x, 'vk', 1 + x % 5 FROM c;
        ",
        start = NOW - 300_000_000,
    ))
    .unwrap();
    // As `serve` does at start-up.
    catalogue::advance_stock_mark(conn, POLICY.cooldown, NOW).unwrap();
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
    // A cached statement keeps counting VM steps and runs across phases: fresh statements,
    // so a phase's steps per run are its own (the retention backlog run's are not averaged
    // into the steady state's).
    conn.flush_prepared_statement_cache();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink = seen.clone();
    conn.trace_v2(
        TraceEventCodes::SQLITE_TRACE_STMT | TraceEventCodes::SQLITE_TRACE_PROFILE,
        Some(move |e: TraceEvent<'_>| {
            let mut seen = sink.lock().unwrap();
            match e {
                // The statement's own text, parameters unbound: under the planner's stability
                // guarantee (`db::stable_plans`) its plan is the one that runs, whatever the
                // values.
                TraceEvent::Stmt(stmt, _) => seen.statements.push(stmt.sql().into_owned()),
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
    simulator::set_on(conn, true).unwrap();
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
    // The simulator's numbers, where we have none of our own: made, then recycled once its
    // pool is full, and reused for another service.
    let simulated = OrderRequest {
        country: 16,
        ..tg.clone()
    };
    for i in 0..=simulator::STOCK {
        let buyer = user(conn, 1);
        let service = if i % 2 == 0 { "tg" } else { "wa" };
        let req = OrderRequest {
            service: service.into(),
            ..simulated.clone()
        };
        let placed = db::write(conn, |tx| {
            activations::order(tx, &buyer, &req, &POLICY, now)
        })
        .unwrap();
        let Placed::New(s) = placed else {
            panic!("a new order")
        };
        assert_eq!(s.source, simulator::SOURCE);
        db::write(conn, |tx| {
            activations::cancel(tx, 1, s.id, CancelReason::Cancel, &POLICY, now)
        })
        .unwrap();
    }
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
    // The rentals page's card and the live state a waiting `/live` re-checks.
    inbox::recent_for_rental(conn, r.id, 20).unwrap();
    inbox::count_for_rental(conn, r.id).unwrap();
    db::write(conn, |tx| rentals::finish(tx, 1, r.id, &POLICY, now)).unwrap();
    // Balance, ledger, dashboard, history.
    wallet::balance(conn, 1).unwrap();
    wallet::entries(conn, 1, 100, None).unwrap();
    catalogue::offers(conn, Some(6), None, POLICY.cooldown, now).unwrap();
    catalogue::offers(conn, None, Some("tg"), POLICY.cooldown, now).unwrap();
    catalogue::stock(conn, POLICY.cooldown, now).unwrap();
    let live = activations::list_live(conn, 1, 50, 0).unwrap();
    for a in &live {
        inbox::for_activation(conn, a.id).unwrap();
        inbox::count_for_activation(conn, a.id).unwrap();
    }
    let page = activations::list_before(conn, 1, &[], None, 51).unwrap();
    activations::list_before(conn, 1, &[], page.last().map(|a| a.id), 51).unwrap();
    // A top-up: written, opened, credited by its notice (and the notice replayed), a
    // refund; another closed; the return page's and the API's readings.
    {
        use crate::domain::market::payments::{self, Confirmed, Reversal, ReversalKind, Status};
        let p = db::write(conn, |tx| {
            payments::begin(tx, 1, "stripe", 1000, "USD", now)
        })
        .unwrap();
        db::write(conn, |tx| {
            payments::opened(tx, p.id, "cs_new", "https://x", now)
        })
        .unwrap();
        let paid = Confirmed {
            gateway: "stripe".into(),
            gateway_ref: "cs_new".into(),
            payment_id: Some(p.id),
            amount_minor: 1000,
            currency: "usd".into(),
            charge_ref: Some("pi_new".into()),
        };
        for _ in 0..2 {
            db::write(conn, |tx| payments::credit(tx, &paid, now)).unwrap();
        }
        let refund = Reversal {
            gateway: "stripe".into(),
            reference: "pi_new".into(),
            amount_minor: 500,
            kind: ReversalKind::Refund,
            notice_ref: "ch_new".into(),
        };
        db::write(conn, |tx| {
            crate::domain::trust::signals::gateway_reversal(tx, &refund, 2, now)
        })
        .unwrap();
        let q = db::write(conn, |tx| {
            payments::begin(tx, 1, "btcpay", 1000, "USD", now)
        })
        .unwrap();
        db::write(conn, |tx| {
            payments::close(
                tx,
                "btcpay",
                "inv_none",
                Some(q.id),
                Status::Expired,
                "expired",
                now,
            )
        })
        .unwrap();
        payments::get_for(conn, 1, p.id).unwrap();
        payments::for_user(conn, 1, 10).unwrap();
    }
    // The jobs that run every few seconds.
    db::write(conn, |tx| activations::expire_due(tx, &POLICY, now)).unwrap();
    db::write(conn, |tx| rentals::expire_due(tx, &POLICY, now)).unwrap();
    db::write(conn, |tx| simulator::deliver_due(tx, now)).unwrap();
    webhooks::due(conn, now, 50).unwrap();
}

/// A partner hub's calls, the SMS pushed to it, its finishes, the `partners` job and the
/// admin's pages of it.
fn partner_paths(conn: &mut Connection) {
    use crate::domain::market::partners::{self, CountryRef, Finish, Given, NumberRequest};
    let now = NOW;
    let hub = partners::get(conn, 1).unwrap().unwrap();
    let offers = db::write(conn, |tx| partners::offers(tx, &hub, POLICY.cooldown, now)).unwrap();
    assert!(!offers.is_empty());
    let mut given = Vec::new();
    for (i, how) in [
        Finish::Sold,
        Finish::Canceled,
        Finish::Used,
        Finish::Refunded,
    ]
    .into_iter()
    .enumerate()
    {
        let req = NumberRequest {
            country: if i % 2 == 0 {
                CountryRef::Name("indonesia".into())
            } else {
                CountryRef::Id(6)
            },
            operator: "any".into(),
            service: "vk".into(),
            sum_micro: 2500,
            currency: Some(840),
            exclude: vec!["62800000002".into()],
        };
        let got = db::write(conn, |tx| {
            partners::get_number(tx, &hub, &req, POLICY.cooldown, now)
        })
        .unwrap();
        let Given::Number {
            activation_id,
            phone,
        } = got
        else {
            panic!("a number for the hub: {got:?}")
        };
        let sms = Inbound {
            to: phone,
            sender: "VK".into(),
            text: "VK: 33708".into(),
            received_at: now,
            source: "gateway:1".into(),
            source_msg_id: Some(format!("p-{i}")),
            device_id: None,
        };
        db::write(conn, |tx| inbox::ingest(tx, &sms, now)).unwrap();
        given.push((activation_id, how));
    }
    let due = partners::due_pushes(conn, now, 40).unwrap();
    assert_eq!(due.len(), 4);
    db::write(conn, |tx| {
        partners::record_push(tx, &due[0], "", now)?;
        partners::record_push(tx, &due[1], "HTTP 500", now)?;
        for (id, how) in &given {
            partners::finish(tx, &hub, *id, *how, POLICY.operator_share, now)?;
            partners::finish(tx, &hub, *id, Finish::Sold, POLICY.operator_share, now)?;
        }
        partners::release_stale(tx, now)?;
        partners::prune_pushes(tx, now)?;
        Ok(())
    })
    .unwrap();
    partners::health(conn, &hub).unwrap();
    partners::list(conn).unwrap();
    partners::names(conn, 1).unwrap();
    let page = partners::orders_page(conn, 1, None, 50).unwrap();
    partners::orders_page(conn, 1, Some(page.last().unwrap().id - 50_000), 50).unwrap();
    let page = partners::pushes_page(conn, 1, None, 50).unwrap();
    partners::pushes_page(conn, 1, Some(page.last().unwrap().id - 50_000), 50).unwrap();
}

/// The lists: history pages, the admin's lists, an operator's pages, as their handlers call
/// them, each on its first page and on a page deep in the history.
fn lists(conn: &mut Connection) {
    use crate::domain::base::audit::{self, AuditFilter};
    use crate::domain::market::activations::{HistoryFilter, OrderBy, Status};
    use crate::domain::market::earnings;
    use crate::domain::supply::payouts;
    let now = NOW;
    // A /metrics scrape and a /healthz check read only live rows.
    let out = crate::metrics::Metrics::default().render(conn, now);
    assert!(out.contains("otpbox_database_up 1"), "{out}");
    crate::lifecycle::Lifecycle::default()
        .health(conn, now)
        .unwrap_err();
    // The native API's status filters, getActiveActivations, getHistory, 5sim's orders.
    for statuses in [
        vec![],
        vec![Status::Expired],
        vec![Status::Retry],
        vec![Status::Completed, Status::Canceled],
        vec![Status::Waiting, Status::Received, Status::Retry],
    ] {
        let page = activations::list_before(conn, 1, &statuses, None, 51).unwrap();
        let deep = page.last().map_or(1000, |a| a.id - 150_000);
        activations::list_before(conn, 1, &statuses, Some(deep), 51).unwrap();
    }
    activations::list_live(conn, 1, 100, 0).unwrap();
    // The customer's history page and its CSV with each filter, first page and deep; the
    // order form's recent services.
    for filter in [
        HistoryFilter::default(),
        HistoryFilter {
            status: Some(Status::Retry),
            ..Default::default()
        },
        HistoryFilter {
            service: Some("tg".into()),
            ..Default::default()
        },
        HistoryFilter {
            service: Some("wa".into()),
            status: Some(Status::Completed),
            ..Default::default()
        },
        HistoryFilter {
            country: Some(6),
            ..Default::default()
        },
        HistoryFilter {
            country: Some(22),
            service: Some("tg".into()),
            ..Default::default()
        },
        HistoryFilter {
            country: Some(6),
            service: Some("tg".into()),
            status: Some(Status::Expired),
        },
    ] {
        let page = activations::history(conn, 1, &filter, None, 51).unwrap();
        let deep = page.last().map_or(1000, |a| a.id - 150_000);
        activations::history(conn, 1, &filter, Some(deep), 51).unwrap();
        // Where the history page's CSV files start (a file's worth of ids, never more).
        activations::history_nth(conn, 1, &filter, None, 4999).unwrap();
        activations::history_nth(conn, 1, &filter, Some(deep), 0).unwrap();
    }
    activations::recent_services(conn, 1, 5).unwrap();
    activations::created_between(conn, 1, 0, i64::MAX, 100, 0).unwrap();
    activations::created_between(conn, 1, NOW - 250_000_000, NOW - 200_000_000, 100, 50).unwrap();
    activations::page_recent(conn, 1, OrderBy::Price, true, 500, 0).unwrap();
    activations::page_recent(conn, 1, OrderBy::Id, false, 50, 900).unwrap();
    activations::count_recent(conn, 1).unwrap();
    // The admin's lists.
    for filter in [
        AuditFilter::default(),
        AuditFilter {
            action: "terminate".into(),
            ..Default::default()
        },
        AuditFilter {
            target: "7".into(),
            ..Default::default()
        },
        AuditFilter {
            target: "u77@".into(),
            action: "credit".into(),
        },
        AuditFilter {
            target: "example.com".into(),
            ..Default::default()
        },
    ] {
        let page = audit::audit_rows(conn, &filter, None, 101).unwrap();
        audit::audit_rows(conn, &filter, page.last().map(|r| r.id), 101).unwrap();
    }
    audit::audit_actions(conn).unwrap();
    // The admin's list of every order: each filter alone and together, first page and a
    // page deep in the history, activations and rentals; an account's newest orders.
    {
        use crate::domain::trust::orders::{self, Filter, Kind};
        let deep = Some(150_000);
        let day = 86_400;
        for kind in [Kind::Activation, Kind::Rental] {
            for f in [
                Filter::default(),
                Filter {
                    status: "waiting".into(),
                    ..Default::default()
                },
                Filter {
                    service: "wa".into(),
                    country: Some(22),
                    ..Default::default()
                },
                Filter {
                    source: "simulator".into(),
                    ..Default::default()
                },
                Filter {
                    account: Some(1),
                    status: "retry".into(),
                    ..Default::default()
                },
                Filter {
                    account: Some(7),
                    ..Default::default()
                },
                Filter {
                    from: Some(NOW - 200_000_000),
                    to: Some(NOW - 200_000_000 + 3 * day),
                    status: "completed".into(),
                    service: "tg".into(),
                    country: Some(6),
                    ..Default::default()
                },
            ] {
                let f = Filter { kind, ..f };
                orders::page(conn, &f, None, 51).unwrap();
                orders::page(conn, &f, deep, 51).unwrap();
            }
        }
        orders::recent_for(conn, 1, 10).unwrap();
    }
    // The overview's queues.
    crate::domain::trust::admin::queues(conn, now).unwrap();
    crate::domain::trust::admin::quiet_devices(conn, 20).unwrap();
    accounts::search(conn, "", None, 101).unwrap();
    accounts::search(conn, "u5", Some(500), 101).unwrap();
    // The admin's payments, first page and deep.
    let page = crate::domain::market::payments::list(conn, None, 51).unwrap();
    crate::domain::market::payments::list(conn, page.last().map(|p| p.id - 30_000), 51).unwrap();
    // An account's security log.
    let page = audit::security_events_for(conn, 7, None, 51).unwrap();
    audit::security_events_for(conn, 7, page.last().map(|e| e.id), 51).unwrap();
    // An operator's pages.
    payouts::totals(conn, 3, earnings::month_start(now)).unwrap();
    let page = earnings::rows(conn, 3, None, 51).unwrap();
    earnings::rows(conn, 3, page.last().map(|r| r.id), 51).unwrap();
    let page = earnings::sales(conn, 3, None, 51).unwrap();
    earnings::sales(conn, 3, earnings::next_sales(&page), 51).unwrap();
}

/// The scheduled jobs' statements, as the jobs call them. The daily `retention` job works
/// off a backlog once (every row past its period), so it is run twice and only the second
/// run, the steady state, is held to the step limit.
fn jobs(conn: &mut Connection, backlog: bool) {
    use crate::domain::base::mail;
    use crate::domain::supply::{devices, providers, routing};
    use crate::domain::trust::{abuse, lifecycle, retention, signals};
    let now = NOW + if backlog { 0 } else { 86_400 };
    const MONTHS_24: u64 = 730 * 86_400;
    db::write(conn, |tx| {
        retention::anonymise_orders(tx, MONTHS_24, now)?;
        retention::purge_ledger(tx, MONTHS_24, now)?;
        retention::purge_logs(tx, 90 * 86_400, now)?;
        retention::purge_security(tx, 365 * 86_400, now)?;
        retention::record(tx, retention::Rule::Orders, 0, now)?;
        retention::purge_messages(tx, 30 * 86_400, now)?;
        webhooks::forget_sms(tx, 30 * 86_400, now)?;
        webhooks::prune(tx, now)?;
        lifecycle::purge_deleted(tx, 30 * 86_400, now)?;
        devices::mark_silent_offline(tx, 600, now)?;
        catalogue::advance_stock_mark(tx, POLICY.cooldown, now)?;
        routing::recover_stale(tx, now - 120, now)?;
        let t = signals::Thresholds {
            orders_per_minute: 30,
            cancel_ratio: 80,
            success_rate: 20,
            min_orders: 20,
            accounts_per_address: 3,
            window: 86_400,
        };
        signals::scan(tx, &t, now)?;
        abuse::forget_reporter_addresses(tx, now)?;
        Ok(())
    })
    .unwrap();
    routing::due(conn, now, 50).unwrap();
    // The payments job's reading of open top-ups.
    crate::domain::market::payments::open_before(conn, now - 900, 50).unwrap();
    providers::prune_calls(conn, now).unwrap();
    providers::list(conn).unwrap();
    mail::pending(conn, 20).unwrap();
    accounts::sessions::purge_expired(conn, 30 * 86_400, now).unwrap();
    accounts::identities::purge_expired(conn, now).unwrap();
    accounts::identities::find(conn, "https://id.example", "subject").unwrap();
    accounts::identities::list_for(conn, 1).unwrap();
    accounts::identities::parked(conn, 1, now).unwrap();
    let keys = crate::domain::base::crypto::Keys::from_bytes([9; 32]);
    crate::domain::accounts::notifications::due(conn, &keys, now, 40).unwrap();
    crate::domain::accounts::notifications::list_for(conn, 1).unwrap();
    crate::domain::accounts::notifications::log_for(conn, 1, 30).unwrap();
    crate::db::write(conn, |tx| {
        crate::domain::accounts::notifications::forget_pending(tx, 300, now)?;
        crate::domain::accounts::notifications::prune(tx, 30 * 86_400, now)?;
        crate::domain::accounts::notifications::notify(tx, 1, "code", "t", "b", now)?;
        Ok(())
    })
    .unwrap();
    webhooks::due(conn, now, 40).unwrap();
    // Order statistics: the job's sweeps (a backlog on the first run), then what the pages read.
    use crate::domain::supply::stats;
    db::write(conn, |tx| stats::roll_up(tx, now)).unwrap();
    stats::success_table(conn).unwrap();
    stats::success_in(conn, 6).unwrap();
    stats::daily(conn, stats::day_of(now) - 29, stats::day_of(now)).unwrap();
    stats::by_source(conn, stats::day_of(now) - 29, stats::day_of(now)).unwrap();
}

/// The scans of growing tables in the plan of `sql`.
fn full_scans(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = match conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")) {
        Ok(s) => s,
        Err(_) => return Vec::new(), // BEGIN, COMMIT, SAVEPOINT and the like
    };
    // Parameters left unbound (NULL): the plan does not look at them.
    let mut details: Vec<String> = Vec::new();
    let mut rows = stmt.raw_query();
    while let Some(r) = rows.next().unwrap() {
        details.push(r.get(3).unwrap());
    }
    let aliases = aliases(sql);
    details
        .into_iter()
        .filter(|d| {
            let Some(rest) = d.strip_prefix("SCAN ") else {
                return false;
            };
            let name = rest.split_whitespace().next().unwrap_or("");
            let table = aliases.get(name).copied().unwrap_or(name);
            // A partial index of live rows (free numbers on sale, deliveries still pending) is
            // as long as the stock or the backlog, not the history.
            GROWING.contains(&table) && !LIVE_INDEXES.iter().any(|i| rest.contains(i))
        })
        .collect()
}

/// The tables of `sql` by the aliases it gives them (`FROM ledger l`, `JOIN numbers AS n`):
/// a query plan names a table by its alias.
fn aliases(sql: &str) -> std::collections::HashMap<&str, &str> {
    let words: Vec<&str> = sql
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .filter(|w| !w.is_empty())
        .collect();
    let mut map = std::collections::HashMap::new();
    for (i, w) in words.iter().enumerate() {
        if !(w.eq_ignore_ascii_case("FROM") || w.eq_ignore_ascii_case("JOIN")) {
            continue;
        }
        let (Some(table), Some(mut next)) = (words.get(i + 1), words.get(i + 2)) else {
            continue;
        };
        if next.eq_ignore_ascii_case("AS") {
            match words.get(i + 3) {
                Some(a) => next = a,
                None => continue,
            }
        }
        if GROWING.contains(table) && next.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            map.insert(*next, *table);
        }
    }
    map
}

/// What is wrong with the statements `seen` ran: scans of growing tables, and (with
/// `steps`) runs over the step limit.
fn wrong_in(conn: &Connection, seen: &Seen, steps: bool) -> Vec<String> {
    let unique: BTreeSet<&String> = seen.statements.iter().collect();
    let mut wrong = Vec::new();
    for sql in unique {
        for scan in full_scans(conn, sql) {
            wrong.push(format!("{scan}\n    in: {sql}"));
        }
    }
    if steps {
        for (sql, n) in &seen.steps {
            if *n > MAX_STEPS {
                wrong.push(format!("{n} VM steps per run\n    in: {sql}"));
            }
        }
    }
    wrong
}

#[test]
fn no_hot_path_scans_a_table_that_grows_with_history() {
    let mut conn = db::memory();
    fill(&conn);
    // The detector sees a scan when there is one, under an alias too.
    assert!(!full_scans(
        &conn,
        "SELECT COUNT(*) FROM activations WHERE service = 'tg'"
    )
    .is_empty());
    assert!(!full_scans(
        &conn,
        "SELECT COUNT(*) FROM ledger AS l JOIN users u ON u.id = l.user_id WHERE l.note = 'x'"
    )
    .is_empty());
    let seen = traced(&mut conn, hot_paths);
    assert!(
        seen.statements.len() > 40,
        "only {} statements",
        seen.statements.len()
    );
    let mut wrong = wrong_in(&conn, &seen, true);
    let seen = traced(&mut conn, lists);
    wrong.extend(wrong_in(&conn, &seen, true));
    let seen = traced(&mut conn, partner_paths);
    wrong.extend(wrong_in(&conn, &seen, true));
    let seen = traced(&mut conn, |c| jobs(c, true));
    wrong.extend(wrong_in(&conn, &seen, false));
    let seen = traced(&mut conn, |c| jobs(c, false));
    wrong.extend(wrong_in(&conn, &seen, true));
    assert!(
        wrong.is_empty(),
        "statements that grow with history:\n{}",
        wrong.join("\n")
    );
}
