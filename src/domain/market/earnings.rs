//! Operators' earnings (SPEC §5): the operator who owns a number (`numbers.owner_id`) earns
//! `operator_share` percent of every completed activation and every rental that ran its
//! course on it (finished or expired; not cancelled), as one `earning` ledger row referring to
//! the order. The row is written through the wallet in the transaction that ends the order,
//! and the ledger's unique `ledger_one_earning` index makes a second one for the same order
//! impossible. Also the operator's views of its money: ledger rows, totals, and the orders
//! on its numbers (never the customer nor the SMS).

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::domain::market::activations::Activation;
use crate::domain::market::rentals::Rental;
use crate::domain::market::wallet::{self, Kind};
use crate::domain::Result;

/// `percent` of `amount_minor`, rounded down to whole minor units.
pub fn share_of(amount_minor: i64, percent: u32) -> i64 {
    if amount_minor <= 0 {
        return 0;
    }
    (amount_minor as i128 * percent.min(100) as i128 / 100) as i64
}

/// The operator who should be paid for an order on `number_id`: the number's owner, unless
/// that account is closed (its balance was forfeited; nothing more accrues to it).
fn payee(conn: &Connection, number_id: Option<i64>) -> Result<Option<i64>> {
    let Some(number_id) = number_id else {
        return Ok(None);
    };
    Ok(conn
        .prepare_cached(
            "SELECT u.id FROM numbers n JOIN users u ON u.id = n.owner_id \
             WHERE n.id = ?1 AND u.state NOT IN ('terminated', 'deleted')",
        )?
        .query_row([number_id], |r| r.get(0))
        .optional()?)
}

fn credit(
    conn: &Connection,
    number_id: Option<i64>,
    amount_minor: i64,
    percent: u32,
    reference: wallet::Ref<'_>,
    note: &str,
    now: Timestamp,
) -> Result<Option<i64>> {
    let earned = share_of(amount_minor, percent);
    if earned == 0 {
        return Ok(None);
    }
    let Some(operator) = payee(conn, number_id)? else {
        return Ok(None);
    };
    wallet::post(conn, operator, earned, Kind::Earning, reference, note, now)?;
    Ok(Some(earned))
}

/// Credits the owner of the activation's number its share of the price; call it in the
/// transaction that completes the activation. Returns the amount credited, if any.
pub fn credit_activation(
    conn: &Connection,
    a: &Activation,
    percent: u32,
    now: Timestamp,
) -> Result<Option<i64>> {
    credit(
        conn,
        a.number_id,
        a.price_minor,
        percent,
        ("activation", Some(a.id)),
        &a.service,
        now,
    )
}

/// Credits the owner of the number a partner hub bought its share of the hub's price; call it
/// in the transaction that records the sale.
pub fn credit_partner_sale(
    conn: &Connection,
    o: &crate::domain::market::partners::Order,
    percent: u32,
    now: Timestamp,
) -> Result<Option<i64>> {
    credit(
        conn,
        Some(o.number_id),
        o.price_minor,
        percent,
        (crate::domain::market::partners::LEDGER_REF, Some(o.id)),
        &format!("{} via partner hub", o.service),
        now,
    )
}

/// Credits the owner of the rental's number its share of everything the renter paid
/// (extensions and renewals included); call it in the transaction that finishes or expires
/// the rental.
pub fn credit_rental(
    conn: &Connection,
    r: &Rental,
    percent: u32,
    now: Timestamp,
) -> Result<Option<i64>> {
    credit(
        conn,
        r.number_id,
        r.paid_minor,
        percent,
        ("rental", Some(r.id)),
        &format!("{} rental", r.service),
        now,
    )
}

/// The start (00:00 UTC on the 1st) of the month that contains `now`.
pub fn month_start(now: Timestamp) -> Timestamp {
    use chrono::{Datelike, TimeZone, Utc};
    let Some(d) = chrono::DateTime::from_timestamp(now, 0) else {
        return now;
    };
    Utc.with_ymd_and_hms(d.year(), d.month(), 1, 0, 0, 0)
        .single()
        .map(|m| m.timestamp())
        .unwrap_or(now)
}

/// A row of the operator's earnings page: an earning or a payout, with the wallet balance
/// after it.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: i64,
    pub created_at: Timestamp,
    pub kind: String,
    pub ref_type: String,
    pub ref_id: Option<i64>,
    pub note: String,
    pub amount_minor: i64,
    pub balance_after: i64,
}

/// One page (newest first) of an operator's earning and payout rows: `limit` of them older
/// than row `before`, through `ledger_operator` (keyset paging).
pub fn rows(conn: &Connection, user_id: i64, before: Option<i64>, limit: i64) -> Result<Vec<Row>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, created_at, kind, ref_type, ref_id, note, amount_minor, balance_after \
         FROM ledger WHERE user_id = ?1 AND kind IN ('earning', 'payout') AND id < ?2 \
         ORDER BY id DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![user_id, before.unwrap_or(i64::MAX), limit], |r| {
        Ok(Row {
            id: r.get(0)?,
            created_at: r.get(1)?,
            kind: r.get(2)?,
            ref_type: r.get(3)?,
            ref_id: r.get(4)?,
            note: r.get(5)?,
            amount_minor: r.get(6)?,
            balance_after: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// An order on one of the operator's numbers, as the operator may see it: no customer, no
/// message text.
#[derive(Debug, Clone, Serialize)]
pub struct Sale {
    /// `activation` or `rental`.
    pub kind: &'static str,
    pub id: i64,
    pub created_at: Timestamp,
    pub phone: String,
    pub country_id: i64,
    pub service: String,
    pub status: String,
    pub price_minor: i64,
    /// What the operator earned on it (None: nothing, or not yet).
    pub earned_minor: Option<i64>,
}

/// Where a page of [`sales`] starts: after the sale with this time, kind and id. The list is
/// ordered by time, then activations before rentals, then id, all newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SalesCursor {
    pub created_at: Timestamp,
    pub kind: &'static str,
    pub id: i64,
}

impl SalesCursor {
    /// `1700000000-a-42` (an activation) or `1700000000-r-7` (a rental).
    pub fn encode(&self) -> String {
        let k = if self.kind == "rental" { "r" } else { "a" };
        format!("{}-{k}-{}", self.created_at, self.id)
    }

    pub fn parse(text: &str) -> Option<SalesCursor> {
        let mut parts = text.splitn(3, '-');
        let created_at = parts.next()?.parse().ok()?;
        let kind = match parts.next()? {
            "a" => "activation",
            "r" => "rental",
            _ => return None,
        };
        let id = parts.next()?.parse().ok()?;
        Some(SalesCursor {
            created_at,
            kind,
            id,
        })
    }

    fn of(s: &Sale) -> SalesCursor {
        SalesCursor {
            created_at: s.created_at,
            kind: s.kind,
            id: s.id,
        }
    }

    /// Sort key, larger is newer: time, then activations (1) over rentals (0), then id.
    fn key(&self) -> (Timestamp, u8, i64) {
        (
            self.created_at,
            u8::from(self.kind == "activation"),
            self.id,
        )
    }
}

/// One page (newest first) of the activations and rentals on numbers the operator owned when
/// they were ordered: `limit` of them after `after` (keyset paging), each table read through
/// its `owner_id` index and the two merged here.
pub fn sales(
    conn: &Connection,
    owner_id: i64,
    after: Option<SalesCursor>,
    limit: i64,
) -> Result<Vec<Sale>> {
    let select = |table: &str, kind: &str, price: &str| {
        format!(
            "SELECT t.id, t.created_at, t.phone, t.country_id, t.service, t.status, t.{price}, \
                    (SELECT l.amount_minor FROM ledger l WHERE l.kind = 'earning' \
                     AND l.ref_type = '{kind}' AND l.ref_id = t.id AND l.user_id = ?1) \
             FROM {table} t WHERE t.owner_id = ?1 AND t.created_at <= ?2 \
             AND (t.created_at < ?2 OR t.id < ?3) ORDER BY t.created_at DESC, t.id DESC LIMIT ?4"
        )
    };
    let mut out = Vec::new();
    for (kind, table, price) in [
        ("activation", "activations", "price_minor"),
        ("rental", "rentals", "paid_minor"),
    ] {
        // The bound on this table's (time, id) that means "after the cursor" in the merged
        // order: at the cursor's time, the other kind's rows are all before or all after.
        let (t, id) = match after {
            None => (i64::MAX, i64::MAX),
            Some(c) if c.kind == kind => (c.created_at, c.id),
            Some(c) if kind == "rental" => (c.created_at, i64::MAX),
            Some(c) => (c.created_at, 0),
        };
        let mut stmt = conn.prepare_cached(&select(table, kind, price))?;
        let rows = stmt.query_map(params![owner_id, t, id, limit], |r| {
            Ok(Sale {
                kind,
                id: r.get(0)?,
                created_at: r.get(1)?,
                phone: r.get(2)?,
                country_id: r.get(3)?,
                service: r.get(4)?,
                status: r.get(5)?,
                price_minor: r.get(6)?,
                earned_minor: r.get(7)?,
            })
        })?;
        for r in rows {
            out.push(r?);
        }
    }
    out.sort_by_key(|s| std::cmp::Reverse(SalesCursor::of(s).key()));
    out.truncate(limit.max(0) as usize);
    Ok(out)
}

/// The cursor of the page after `page` (its last sale).
pub fn next_sales(page: &[Sale]) -> Option<SalesCursor> {
    page.last().map(SalesCursor::of)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::testing::account_at;
    use crate::domain::accounts::{self, Role};
    use crate::domain::market::activations::{self, CancelReason, OrderRequest, Placed, Policy};
    use crate::domain::market::catalogue;
    use crate::domain::market::inbox::{self, Inbound};
    use crate::domain::market::rentals::{self, RentRequest};

    const T0: i64 = 1_000_000;
    const POLICY: Policy = Policy {
        early_cancel: 120,
        default_ttl: 1200,
        max_live: 5,
        cooldown: 0,
        sim_delay: 5,
        sim_odds: crate::domain::market::simulator::Odds::NONE,
        operator_share: 70,
        allow_private_urls: false,
    };

    /// A customer with 100.00, an operator owning three numbers in Indonesia (a number serves
    /// a service once: the policy has no reuse cooldown).
    fn world() -> (Connection, i64, i64) {
        let conn = db::memory();
        catalogue::seed_if_empty(&conn).unwrap();
        let customer = account_at(&conn, "c@example.com", Role::User, T0);
        let op = account_at(&conn, "op@example.com", Role::Operator, T0);
        wallet::post(
            &conn,
            customer,
            10_000,
            Kind::Adjustment,
            ("", None),
            "",
            T0,
        )
        .unwrap();
        for phone in ["62811000001", "62811000002", "62811000003"] {
            conn.execute(
                "INSERT INTO numbers (phone, country_id, source, owner_id, created_at) \
                 VALUES (?1, 6, 'manual', ?2, ?3)",
                params![phone, op, T0],
            )
            .unwrap();
        }
        (conn, customer, op)
    }

    fn order(conn: &Connection, customer: i64, now: i64) -> Activation {
        let user = accounts::get(conn, customer).unwrap();
        let req = OrderRequest {
            country: 6,
            service: "tg".into(),
            ..Default::default()
        };
        match activations::order(conn, &user, &req, &POLICY, now).unwrap() {
            Placed::New(a) => a,
            Placed::Existing(a) => a,
        }
    }

    fn sms(conn: &Connection, to: &str, now: i64) {
        let msg = Inbound {
            to: to.into(),
            sender: "Telegram".into(),
            text: "Telegram code: 12345".into(),
            received_at: now,
            source: "test".into(),
            source_msg_id: None,
            device_id: None,
        };
        inbox::ingest(conn, &msg, now).unwrap();
    }

    fn earnings_of(conn: &Connection, op: i64) -> Vec<(String, Option<i64>, i64)> {
        conn.prepare("SELECT ref_type, ref_id, amount_minor FROM ledger WHERE user_id = ?1 AND kind = 'earning' ORDER BY id")
            .unwrap()
            .query_map([op], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn a_completed_activation_earns_the_share_once() {
        let (conn, customer, op) = world();
        let a = order(&conn, customer, T0);
        sms(&conn, &a.phone, T0 + 10);
        activations::complete(&conn, customer, a.id, &POLICY, T0 + 20).unwrap();
        let want = share_of(a.price_minor, 70);
        assert!(want > 0);
        assert_eq!(
            earnings_of(&conn, op),
            [("activation".into(), Some(a.id), want)]
        );
        // Never twice for the same order, whatever path tries.
        assert!(credit_activation(&conn, &a, 70, T0 + 30).is_err());
        assert_eq!(wallet::balance(&conn, op).unwrap(), want);
        // A second order that expires with its code also earns.
        let b = order(&conn, customer, T0 + 100);
        sms(&conn, &b.phone, T0 + 110);
        activations::expire_due(&conn, &POLICY, b.expires_at).unwrap();
        assert_eq!(earnings_of(&conn, op).len(), 2);
        let t = crate::domain::supply::payouts::totals(&conn, op, month_start(T0)).unwrap();
        assert_eq!(t.earned_total, 2 * want);
        assert_eq!(t.balance, 2 * want);
        let page = rows(&conn, op, None, 10).unwrap();
        assert_eq!(page.len(), 2);
        assert_eq!(page[0].balance_after, 2 * want);
        assert_eq!(rows(&conn, op, Some(page[0].id), 10).unwrap().len(), 1);
        let sold = sales(&conn, op, None, 10).unwrap();
        assert_eq!(sold.len(), 2);
        assert_eq!(sold[0].earned_minor, Some(want));
        assert_eq!(sold[0].status, "completed");
        assert!(wallet::check(&conn).unwrap().is_empty());
    }

    #[test]
    fn sales_pages_walk_activations_and_rentals_in_one_order() {
        let (conn, customer, op) = world();
        let a1 = order(&conn, customer, T0);
        let user = accounts::get(&conn, customer).unwrap();
        let rent = RentRequest {
            country: 6,
            service: "tg".into(),
            hours: 4,
            auto_renew: false,
            webhook_url: String::new(),
        };
        let r = rentals::rent(&conn, &user, &rent, &POLICY, T0).unwrap();
        let a2 = order(&conn, customer, T0 + 1);
        let all: Vec<(&str, i64)> = sales(&conn, op, None, 10)
            .unwrap()
            .iter()
            .map(|s| (s.kind, s.id))
            .collect();
        // Newest first; at the same time, activations before rentals.
        assert_eq!(
            all,
            [
                ("activation", a2.id),
                ("activation", a1.id),
                ("rental", r.id)
            ]
        );
        let mut walked = Vec::new();
        let mut after = None;
        loop {
            let page = sales(&conn, op, after, 1).unwrap();
            let Some(s) = page.first() else { break };
            walked.push((s.kind, s.id));
            let next = next_sales(&page).unwrap();
            assert_eq!(SalesCursor::parse(&next.encode()), Some(next));
            after = Some(next);
        }
        assert_eq!(walked, all);
        assert_eq!(SalesCursor::parse("12-x-3"), None);
    }

    #[test]
    fn no_earning_without_a_code_or_without_an_owner() {
        let (conn, customer, op) = world();
        let a = order(&conn, customer, T0);
        activations::cancel(
            &conn,
            customer,
            a.id,
            CancelReason::Cancel,
            &POLICY,
            T0 + 200,
        )
        .unwrap();
        let b = order(&conn, customer, T0 + 300);
        activations::expire_due(&conn, &POLICY, b.expires_at).unwrap();
        assert!(earnings_of(&conn, op).is_empty());
        conn.execute("UPDATE numbers SET owner_id = NULL", [])
            .unwrap();
        let c = order(&conn, customer, T0 + 5000);
        sms(&conn, &c.phone, T0 + 5010);
        activations::complete(&conn, customer, c.id, &POLICY, T0 + 5020).unwrap();
        let total: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM ledger WHERE kind = 'earning'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(total, 0);
        let sold = sales(&conn, op, None, 10).unwrap();
        assert!(sold.iter().all(|s| s.earned_minor.is_none()));
    }

    #[test]
    fn rentals_earn_when_they_run_their_course_not_when_cancelled() {
        let (conn, customer, op) = world();
        let rent = |now| {
            let user = accounts::get(&conn, customer).unwrap();
            let req = RentRequest {
                country: 6,
                service: "tg".into(),
                hours: 4,
                auto_renew: false,
                webhook_url: String::new(),
            };
            rentals::rent(&conn, &user, &req, &POLICY, now).unwrap()
        };
        let r = rent(T0);
        rentals::cancel(&conn, customer, r.id, T0 + 60).unwrap();
        assert!(earnings_of(&conn, op).is_empty());
        let r = rent(T0 + 100);
        rentals::finish(&conn, customer, r.id, &POLICY, T0 + 200).unwrap();
        let r2 = rent(T0 + 300);
        rentals::expire_due(&conn, &POLICY, r2.expires_at).unwrap();
        assert_eq!(
            earnings_of(&conn, op),
            [
                ("rental".into(), Some(r.id), share_of(r.paid_minor, 70)),
                ("rental".into(), Some(r2.id), share_of(r2.paid_minor, 70))
            ]
        );
        assert!(wallet::check(&conn).unwrap().is_empty());
    }

    #[test]
    fn the_share_rounds_down() {
        assert_eq!(share_of(100, 70), 70);
        assert_eq!(share_of(15, 70), 10); // 10.5
        assert_eq!(share_of(1, 99), 0);
        assert_eq!(share_of(999, 100), 999);
        assert_eq!(share_of(999, 0), 0);
        assert_eq!(share_of(-50, 70), 0);
        assert_eq!(share_of(i64::MAX, 100), i64::MAX);
    }

    #[test]
    fn month_start_is_the_first_at_midnight_utc() {
        // 2024-02-29 13:14:15 UTC → 2024-02-01 00:00:00 UTC
        assert_eq!(month_start(1_709_212_455), 1_706_745_600);
        assert_eq!(month_start(1_706_745_600), 1_706_745_600);
    }
}
