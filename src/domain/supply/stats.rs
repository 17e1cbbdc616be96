//! Order statistics: what the admin overview charts and what customers see before buying.
//!
//! The `stats` job folds, in small batches, the orders that ended and the ledger rows
//! written since its previous run into per-day rollups (`order_stats`, `money_stats`), then
//! refreshes the 7-day success rates (`success_rates`) from the rollup. Readers never touch
//! the order or ledger tables: a chart of 30 days reads 30 days of rollup rows, a price list
//! reads one row per (country, service, source).
//!
//! The sweeps: orders are read through the `*_ended` indexes in (`ended_at`, id) order, up
//! to [`LAG`] seconds behind the run: a request reads the clock before it waits for the write
//! lock, so an order can commit with an `ended_at` a little older than orders committed
//! before it (and the retention job leaves an ended order a day before anonymising it).
//! Ledger rows are read by id (ids are given under the write lock and only grow; the
//! retention job's carried rows reuse an old id and are not new money).
//!
//! A success rate is orders that got a code ÷ orders that got a number, over the orders that
//! ended in the last [`RATE_DAYS`] days; fewer than [`MIN_ORDERS`] orders is "new", never a
//! guess.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::domain::Result;

/// Days a success rate looks back over (today included).
pub const RATE_DAYS: i64 = 7;
/// Fewer ended orders than this and a rate is shown as "new".
pub const MIN_ORDERS: i64 = 10;
/// Rows one sweep step reads; a run takes at most [`STEPS`] steps per sweep, so a backlog
/// (an upgrade over a long history) is worked off over several runs.
const BATCH: i64 = 500;
/// How far behind the clock the order sweep stays: more than a request can wait for the
/// write lock (`db::BUSY_TIMEOUT`) plus the longest write transaction.
pub const LAG: i64 = 120;
const STEPS: usize = 40;

/// The day (UTC) of a time: days since 1970-01-01.
pub fn day_of(t: Timestamp) -> i64 {
    t.div_euclid(86_400)
}

/// Orders that ended and how many of them got a code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Rate {
    pub orders: i64,
    pub coded: i64,
}

impl Rate {
    /// Percent of orders that got a code, rounded down; `None` ("new") below [`MIN_ORDERS`].
    pub fn percent(&self) -> Option<u8> {
        if self.orders < MIN_ORDERS {
            return None;
        }
        Some((self.coded.clamp(0, self.orders) * 100 / self.orders) as u8)
    }

    /// "87%" or "new".
    pub fn label(&self) -> String {
        match self.percent() {
            Some(p) => format!("{p}%"),
            None => "new".into(),
        }
    }
}

/// The 7-day success rates, per (country, service) and per source.
#[derive(Debug, Clone, Default)]
pub struct SuccessTable {
    /// country → service → rates by source (nested, so a lookup borrows the service).
    rates: HashMap<i64, HashMap<String, Vec<(String, Rate)>>>,
}

impl SuccessTable {
    /// All sources together; zero orders when none ended in the window.
    pub fn get(&self, country: i64, service: &str) -> Rate {
        self.by_source(country, service)
            .iter()
            .find(|(s, _)| s.is_empty())
            .map(|(_, r)| *r)
            .unwrap_or_default()
    }

    /// Per source (`sim`, `manual`, `simulator`, `upstream:NAME`), the total under `""`.
    pub fn by_source(&self, country: i64, service: &str) -> &[(String, Rate)] {
        self.rates
            .get(&country)
            .and_then(|m| m.get(service))
            .map_or(&[], |v| v.as_slice())
    }
}

/// Every success rate (one row per country, service and source that had orders in the
/// window: bounded by the catalogue, not by history).
pub fn success_table(conn: &Connection) -> Result<SuccessTable> {
    read_rates(conn, None)
}

/// The success rates of one country's services.
pub fn success_in(conn: &Connection, country: i64) -> Result<SuccessTable> {
    read_rates(conn, Some(country))
}

fn read_rates(conn: &Connection, country: Option<i64>) -> Result<SuccessTable> {
    let mut stmt = conn.prepare_cached(
        "SELECT country_id, service, source, orders, coded FROM success_rates \
         WHERE ?1 IS NULL OR country_id = ?1 ORDER BY country_id, service, source",
    )?;
    let mut table = SuccessTable::default();
    let mut rows = stmt.query([country])?;
    while let Some(r) = rows.next()? {
        let rate = Rate {
            orders: r.get(3)?,
            coded: r.get(4)?,
        };
        table
            .rates
            .entry(r.get(0)?)
            .or_default()
            .entry(r.get(1)?)
            .or_default()
            .push((r.get(2)?, rate));
    }
    Ok(table)
}

/// One day of the marketplace, for the admin overview.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Day {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    /// Activations that ended that day, and how they ended.
    pub orders: i64,
    pub coded: i64,
    pub completed: i64,
    pub canceled: i64,
    pub expired: i64,
    /// Rentals that ended that day.
    pub rentals: i64,
    /// Charges less refunds: what customers (and partner hubs) paid for numbers.
    pub revenue_minor: i64,
    /// Refunds of orders and rentals.
    pub refunds_minor: i64,
    /// Operators' shares credited.
    pub earnings_minor: i64,
    /// Money that came in: top-ups and redeemed vouchers.
    pub topups_minor: i64,
}

/// Every day from `from_day` to `to_day` (both included, at most 400), days without activity
/// as zeros.
pub fn daily(conn: &Connection, from_day: i64, to_day: i64) -> Result<Vec<Day>> {
    let to_day = to_day.min(from_day + 399);
    let mut days: Vec<Day> = (from_day..=to_day)
        .map(|day| Day {
            day,
            ..Day::default()
        })
        .collect();
    if days.is_empty() {
        return Ok(days);
    }
    {
        let mut stmt = conn.prepare_cached(
            "SELECT day, kind, SUM(orders), SUM(coded), SUM(completed), SUM(canceled), \
             SUM(expired) FROM order_stats WHERE day BETWEEN ?1 AND ?2 GROUP BY day, kind",
        )?;
        let mut rows = stmt.query(params![from_day, to_day])?;
        while let Some(r) = rows.next()? {
            let d = &mut days[(r.get::<_, i64>(0)? - from_day) as usize];
            if r.get::<_, String>(1)? == "rental" {
                d.rentals += r.get::<_, i64>(2)?;
                continue;
            }
            d.orders += r.get::<_, i64>(2)?;
            d.coded += r.get::<_, i64>(3)?;
            d.completed += r.get::<_, i64>(4)?;
            d.canceled += r.get::<_, i64>(5)?;
            d.expired += r.get::<_, i64>(6)?;
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT day, kind, ref_type, amount_minor FROM money_stats WHERE day BETWEEN ?1 AND ?2",
    )?;
    let mut rows = stmt.query(params![from_day, to_day])?;
    while let Some(r) = rows.next()? {
        let d = &mut days[(r.get::<_, i64>(0)? - from_day) as usize];
        let amount: i64 = r.get(3)?;
        let (kind, about): (String, String) = (r.get(1)?, r.get(2)?);
        match (kind.as_str(), about.as_str()) {
            // Charges are negative ledger amounts, refunds positive.
            ("charge", _) => d.revenue_minor -= amount,
            ("refund", _) => {
                d.revenue_minor -= amount;
                d.refunds_minor += amount;
            }
            // An upstream order's hold above its real price, given back.
            ("adjustment", "activation" | "rental") => d.revenue_minor -= amount,
            ("earning", _) => d.earnings_minor += amount,
            ("topup" | "voucher", _) => d.topups_minor += amount,
            // A top-up refunded or disputed at its gateway, or charged back.
            ("adjustment", "payment" | "chargeback") => d.topups_minor += amount,
            _ => {}
        }
    }
    Ok(days)
}

/// Activation success per source over the days `from_day`..=`to_day`, best first.
pub fn by_source(conn: &Connection, from_day: i64, to_day: i64) -> Result<Vec<(String, Rate)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT source, SUM(orders), SUM(coded) FROM order_stats \
         WHERE day BETWEEN ?1 AND ?2 AND kind = 'activation' GROUP BY source",
    )?;
    let rows = stmt.query_map(params![from_day, to_day], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Rate {
                orders: r.get(1)?,
                coded: r.get(2)?,
            },
        ))
    })?;
    let mut out: Vec<(String, Rate)> = rows.collect::<rusqlite::Result<_>>()?;
    out.sort_by(|a, b| {
        b.1.percent()
            .cmp(&a.1.percent())
            .then(b.1.orders.cmp(&a.1.orders))
            .then(a.0.cmp(&b.0))
    });
    Ok(out)
}

/// What one run folded.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Folded {
    pub activations: usize,
    pub rentals: usize,
    pub ledger: usize,
}

/// The job: folds the orders that ended since the last run (up to [`LAG`] seconds ago) and
/// the ledger rows written since into the rollups, and refreshes the success rates. Call
/// inside a write transaction.
pub fn roll_up(conn: &Connection, now: Timestamp) -> Result<Folded> {
    let folded = Folded {
        activations: sweep_orders(conn, Kind::Activation, now - LAG)?,
        rentals: sweep_orders(conn, Kind::Rental, now - LAG)?,
        ledger: sweep_ledger(conn)?,
    };
    refresh_rates(conn, now)?;
    Ok(folded)
}

#[derive(Clone, Copy)]
enum Kind {
    Activation,
    Rental,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Activation => "activation",
            Kind::Rental => "rental",
        }
    }
}

fn mark(conn: &Connection, name: &str) -> Result<(i64, i64)> {
    Ok(conn
        .prepare_cached("SELECT at, id FROM stats_marks WHERE name = ?1")?
        .query_row([name], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((i64::MIN, i64::MIN)))
}

fn set_mark(conn: &Connection, name: &str, at: i64, id: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO stats_marks (name, at, id) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET at = excluded.at, id = excluded.id",
    )?
    .execute(params![name, at, id])?;
    Ok(())
}

/// Counts of one rollup row.
#[derive(Default)]
struct Counts {
    orders: i64,
    coded: i64,
    completed: i64,
    canceled: i64,
    expired: i64,
}

fn sweep_orders(conn: &Connection, kind: Kind, until: Timestamp) -> Result<usize> {
    let sql = match kind {
        // An upstream order is labelled with its provider's name; an order that never got a
        // number (its purchase failed) is not an order of any source and is only passed.
        Kind::Activation => {
            "SELECT a.id, a.ended_at, a.country_id, a.service, \
             CASE WHEN a.source = 'upstream' THEN 'upstream:' || COALESCE((SELECT p.name \
             FROM upstream_orders u JOIN providers p ON p.id = u.provider_id \
             WHERE u.activation_id = a.id), '?') ELSE a.source END, \
             a.status, a.code_at IS NOT NULL, a.number_id IS NOT NULL \
             FROM activations a WHERE a.ended_at IS NOT NULL AND (a.ended_at, a.id) > (?1, ?2) \
             AND a.ended_at < ?3 ORDER BY a.ended_at, a.id LIMIT ?4"
        }
        Kind::Rental => {
            "SELECT r.id, r.ended_at, r.country_id, r.service, \
             COALESCE((SELECT n.source FROM numbers n WHERE n.id = r.number_id), ''), \
             r.status, 0, r.number_id IS NOT NULL \
             FROM rentals r WHERE r.ended_at IS NOT NULL AND (r.ended_at, r.id) > (?1, ?2) \
             AND r.ended_at < ?3 ORDER BY r.ended_at, r.id LIMIT ?4"
        }
    };
    let mut total = 0;
    for _ in 0..STEPS {
        let (at, id) = mark(conn, kind.as_str())?;
        let mut sums: HashMap<(i64, i64, String, String), Counts> = HashMap::new();
        let mut last = None;
        let mut n = 0;
        {
            let mut stmt = conn.prepare_cached(sql)?;
            let mut rows = stmt.query(params![at, id, until, BATCH])?;
            while let Some(r) = rows.next()? {
                n += 1;
                let (row_id, ended): (i64, i64) = (r.get(0)?, r.get(1)?);
                last = Some((ended, row_id));
                if !r.get::<_, bool>(7)? {
                    continue;
                }
                let c = sums
                    .entry((day_of(ended), r.get(2)?, r.get(3)?, r.get(4)?))
                    .or_default();
                c.orders += 1;
                c.coded += r.get::<_, bool>(6)? as i64;
                match r.get::<_, String>(5)?.as_str() {
                    "completed" | "finished" => c.completed += 1,
                    "canceled" => c.canceled += 1,
                    "expired" => c.expired += 1,
                    _ => {}
                }
            }
        }
        let mut add = conn.prepare_cached(
            "INSERT INTO order_stats (day, kind, country_id, service, source, orders, coded, \
             completed, canceled, expired) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
             ON CONFLICT (day, kind, country_id, service, source) DO UPDATE SET \
             orders = orders + excluded.orders, coded = coded + excluded.coded, \
             completed = completed + excluded.completed, canceled = canceled + excluded.canceled, \
             expired = expired + excluded.expired",
        )?;
        for ((day, country, service, source), c) in sums {
            add.execute(params![
                day,
                kind.as_str(),
                country,
                service,
                source,
                c.orders,
                c.coded,
                c.completed,
                c.canceled,
                c.expired
            ])?;
        }
        if let Some((ended, row_id)) = last {
            set_mark(conn, kind.as_str(), ended, row_id)?;
        }
        total += n;
        if (n as i64) < BATCH {
            break;
        }
    }
    Ok(total)
}

fn sweep_ledger(conn: &Connection) -> Result<usize> {
    let mut total = 0;
    for _ in 0..STEPS {
        let (_, from) = mark(conn, "ledger")?;
        let mut sums: HashMap<(i64, String, String), (i64, i64)> = HashMap::new();
        let mut last = None;
        let mut n = 0;
        {
            let mut stmt = conn.prepare_cached(
                "SELECT id, created_at, kind, amount_minor, ref_type FROM ledger WHERE id > ?1 \
                 ORDER BY id LIMIT ?2",
            )?;
            let mut rows = stmt.query(params![from, BATCH])?;
            while let Some(r) = rows.next()? {
                n += 1;
                last = Some(r.get::<_, i64>(0)?);
                let s = sums
                    .entry((day_of(r.get(1)?), r.get(2)?, r.get(4)?))
                    .or_insert((0, 0));
                s.0 = s.0.saturating_add(r.get(3)?);
                s.1 += 1;
            }
        }
        let mut add = conn.prepare_cached(
            "INSERT INTO money_stats (day, kind, ref_type, amount_minor, rows) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (day, kind, ref_type) DO UPDATE SET \
             amount_minor = amount_minor + excluded.amount_minor, rows = rows + excluded.rows",
        )?;
        for ((day, kind, about), (amount, rows)) in sums {
            add.execute(params![day, kind, about, amount, rows])?;
        }
        if let Some(id) = last {
            set_mark(conn, "ledger", 0, id)?;
        }
        total += n;
        if (n as i64) < BATCH {
            break;
        }
    }
    Ok(total)
}

/// Rebuilds `success_rates` from the last [`RATE_DAYS`] days of the rollup.
fn refresh_rates(conn: &Connection, now: Timestamp) -> Result<()> {
    conn.prepare_cached("DELETE FROM success_rates")?
        .execute([])?;
    let from = day_of(now) - (RATE_DAYS - 1);
    conn.prepare_cached(
        "INSERT INTO success_rates (country_id, service, source, orders, coded) \
         SELECT country_id, service, source, SUM(orders), SUM(coded) FROM order_stats \
         WHERE day >= ?1 AND kind = 'activation' GROUP BY country_id, service, source \
         UNION ALL \
         SELECT country_id, service, '', SUM(orders), SUM(coded) FROM order_stats \
         WHERE day >= ?1 AND kind = 'activation' GROUP BY country_id, service",
    )?
    .execute([from])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    const T0: i64 = 1_700_000_000;

    fn order(conn: &Connection, id: i64, service: &str, status: &str, coded: bool, ended: i64) {
        conn.execute(
            "INSERT INTO users (id, email, created_at) VALUES (1, 'a@example.com', 0) \
             ON CONFLICT DO NOTHING",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO activations (id, user_id, phone, country_id, service, price_minor, \
             status, source, created_at, expires_at, ended_at, code_at, number_id) \
             VALUES (?1, 1, '1', 6, ?2, 35, ?3, 'simulator', ?4, ?4, ?4, ?5, 1)",
            params![id, service, status, ended, coded.then_some(ended)],
        )
        .unwrap();
    }

    /// Without foreign keys: the orders' number 1 is not in the numbers table.
    fn conn() -> Connection {
        let c = db::memory();
        c.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        c
    }

    #[test]
    fn rates_come_from_ended_orders_and_say_new_below_ten() {
        let c = conn();
        for i in 0..9 {
            order(&c, i + 1, "tg", "completed", true, T0 + i);
        }
        roll_up(&c, T0 + 100 + LAG).unwrap();
        let t = success_table(&c).unwrap();
        assert_eq!(
            t.get(6, "tg"),
            Rate {
                orders: 9,
                coded: 9
            }
        );
        assert_eq!(t.get(6, "tg").label(), "new");
        order(&c, 10, "tg", "canceled", false, T0 + 50);
        order(&c, 11, "tg", "expired", false, T0 + 60);
        roll_up(&c, T0 + 100 + LAG).unwrap();
        let rate = success_table(&c).unwrap().get(6, "tg");
        assert_eq!(
            rate,
            Rate {
                orders: 11,
                coded: 9
            }
        );
        assert_eq!(rate.percent(), Some(81));
        assert_eq!(
            success_in(&c, 6).unwrap().by_source(6, "tg"),
            &[
                (
                    "".to_string(),
                    Rate {
                        orders: 11,
                        coded: 9
                    }
                ),
                (
                    "simulator".to_string(),
                    Rate {
                        orders: 11,
                        coded: 9
                    }
                )
            ]
        );
        assert_eq!(success_in(&c, 7).unwrap().get(6, "tg"), Rate::default());
    }

    #[test]
    fn an_order_is_counted_once_even_when_it_ends_in_the_second_of_the_run() {
        let c = conn();
        order(&c, 5, "tg", "completed", true, T0);
        // Ends in the run's own second: left for the next run.
        order(&c, 3, "tg", "canceled", false, T0 + 10);
        let f = roll_up(&c, T0 + 10 + LAG).unwrap();
        assert_eq!(f.activations, 1);
        // A lower id ending later than the mark is still seen.
        order(&c, 1, "tg", "expired", false, T0 + 10);
        let f = roll_up(&c, T0 + 11 + LAG).unwrap();
        assert_eq!(f.activations, 2);
        assert_eq!(roll_up(&c, T0 + 12 + LAG).unwrap().activations, 0);
        let d = daily(&c, day_of(T0), day_of(T0)).unwrap();
        assert_eq!(
            (
                d[0].orders,
                d[0].coded,
                d[0].completed,
                d[0].canceled,
                d[0].expired
            ),
            (3, 1, 1, 1, 1)
        );
    }

    #[test]
    fn a_backlog_is_worked_off_in_batches_and_old_days_leave_the_window() {
        let c = conn();
        let n = BATCH * STEPS as i64 + 7;
        c.execute_batch(&format!(
            "INSERT INTO users (id, email, created_at) VALUES (1, 'a@example.com', 0);
             WITH RECURSIVE x(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM x WHERE i < {n})
             INSERT INTO activations (id, user_id, number_id, phone, country_id, service,
               price_minor, status, source, created_at, expires_at, ended_at, code_at)
             SELECT i, 1, 1, '1', 6, 'wa', 35, 'completed', 'sim', {T0}, {T0}, {T0} + i % 50, {T0}
             FROM x;"
        ))
        .unwrap();
        let first = roll_up(&c, T0 + 100 + LAG).unwrap().activations as i64;
        assert_eq!(first, BATCH * STEPS as i64);
        assert_eq!(roll_up(&c, T0 + 100 + LAG).unwrap().activations, 7);
        assert_eq!(success_table(&c).unwrap().get(6, "wa").orders, n);
        // Eight days later the window holds none of them; the days keep them.
        roll_up(&c, T0 + 8 * 86_400 + LAG).unwrap();
        assert_eq!(success_table(&c).unwrap().get(6, "wa"), Rate::default());
        let d = daily(&c, day_of(T0) - 1, day_of(T0) + 1).unwrap();
        assert_eq!(d.iter().map(|d| d.orders).collect::<Vec<_>>(), [0, n, 0]);
    }

    #[test]
    fn money_per_day_from_the_ledger() {
        let c = conn();
        c.execute_batch(&format!(
            "INSERT INTO users (id, email, created_at) VALUES (1, 'a@example.com', 0);
             INSERT INTO ledger (user_id, amount_minor, kind, balance_after, created_at) VALUES
               (1, 1000, 'topup', 1000, {T0}), (1, -35, 'charge', 965, {T0}),
               (1, -40, 'charge', 925, {T0}), (1, 40, 'refund', 965, {T0}),
               (1, 24, 'earning', 989, {T0} + 86400), (1, 500, 'voucher', 1489, {T0} + 86400);
             INSERT INTO ledger (user_id, amount_minor, kind, ref_type, balance_after, created_at)
             VALUES (1, 5, 'adjustment', 'activation', 1494, {T0}),
                    (1, -300, 'adjustment', 'payment', 1194, {T0} + 86400),
                    (1, 77, 'adjustment', 'admin', 1271, {T0} + 86400);"
        ))
        .unwrap();
        assert_eq!(roll_up(&c, T0 + LAG).unwrap().ledger, 9);
        assert_eq!(roll_up(&c, T0 + LAG).unwrap().ledger, 0);
        let d = daily(&c, day_of(T0), day_of(T0) + 1).unwrap();
        // 35 + 40 charged, 40 refunded, 5 of a hold given back; an admin's credit is neither.
        assert_eq!(
            (d[0].revenue_minor, d[0].refunds_minor, d[0].topups_minor),
            (30, 40, 1000)
        );
        assert_eq!((d[1].earnings_minor, d[1].topups_minor), (24, 200));
    }

    #[test]
    fn sources_are_ranked_by_success() {
        let c = conn();
        for i in 0..10 {
            order(&c, i + 1, "tg", "completed", true, T0);
        }
        for i in 10..30 {
            order(&c, i + 1, "tg", "canceled", i % 2 == 0, T0);
        }
        c.execute("UPDATE activations SET source = 'sim' WHERE id > 10", [])
            .unwrap();
        roll_up(&c, T0 + 1 + LAG).unwrap();
        let s = by_source(&c, day_of(T0), day_of(T0)).unwrap();
        assert_eq!(
            s,
            vec![
                (
                    "simulator".to_string(),
                    Rate {
                        orders: 10,
                        coded: 10
                    }
                ),
                (
                    "sim".to_string(),
                    Rate {
                        orders: 20,
                        coded: 10
                    }
                )
            ]
        );
    }
}
