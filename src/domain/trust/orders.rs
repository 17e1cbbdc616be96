//! The admin's view of every order: activations or rentals of all accounts, filtered by
//! status, service, country, source, account and creation date, newest first, a page at a
//! time by keyset (`id < before`). Reading it is audited (phone numbers are someone else's
//! data); codes and SMS texts are never part of it.
//!
//! Every filter combination costs the same bounded work: a page looks at most
//! [`WINDOW`] orders below its cursor (through the primary key, or the account's index when
//! an account is given) and keeps those that match. When the window ends before a page is
//! full, the page says how far it looked and offers the next window ("older"), so a rare
//! filter walks the history window by window at the admin's request, never in one request.

use chrono::NaiveDate;
use rusqlite::{Connection, OptionalExtension};

use crate::clock::Timestamp;
use crate::domain::base::audit::{self, Actor};
use crate::domain::{Error, Result};

/// Orders one page looks at, at most.
pub const WINDOW: i64 = 1000;

/// Activations or rentals: two tables, two lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    #[default]
    Activation,
    Rental,
}

impl Kind {
    pub fn parse(s: &str) -> Kind {
        if s == "rental" {
            Kind::Rental
        } else {
            Kind::Activation
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Activation => "activation",
            Kind::Rental => "rental",
        }
    }

    /// The statuses an order of this kind can have.
    pub fn statuses(self) -> &'static [&'static str] {
        match self {
            Kind::Activation => &[
                "waiting",
                "received",
                "retry",
                "completed",
                "canceled",
                "expired",
            ],
            Kind::Rental => &["active", "finished", "canceled", "expired"],
        }
    }

    fn table(self) -> &'static str {
        match self {
            Kind::Activation => "activations",
            Kind::Rental => "rentals",
        }
    }
}

/// Where an activation's number came from (rentals have no source).
pub const SOURCES: [&str; 5] = ["simulator", "manual", "sim", "upstream", "partner"];

/// What the admin asked for; empty strings and `None` mean "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub kind: Kind,
    pub status: String,
    pub service: String,
    pub country: Option<i64>,
    pub source: String,
    pub account: Option<i64>,
    /// Created at or after (UTC midnight of the first day).
    pub from: Option<Timestamp>,
    /// Created before (UTC midnight after the last day).
    pub to: Option<Timestamp>,
}

impl Filter {
    /// For the audit row: what was asked, briefly.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("{}s", self.kind.as_str())];
        let mut add = |k: &str, v: &str| {
            if !v.is_empty() {
                parts.push(format!("{k}={v}"));
            }
        };
        add("status", &self.status);
        add("service", &self.service);
        add(
            "country",
            &self.country.map(|c| c.to_string()).unwrap_or_default(),
        );
        add("source", &self.source);
        add(
            "account",
            &self.account.map(|a| a.to_string()).unwrap_or_default(),
        );
        add(
            "from",
            &self
                .from
                .map(crate::clock::format_datetime)
                .unwrap_or_default(),
        );
        add(
            "to",
            &self
                .to
                .map(crate::clock::format_datetime)
                .unwrap_or_default(),
        );
        parts.join(" ")
    }
}

/// A day `YYYY-MM-DD` as the Unix time of its UTC midnight.
pub fn day_start(text: &str) -> Option<Timestamp> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .ok()?
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc().timestamp())
}

/// One order as the admin list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: i64,
    pub user_id: i64,
    pub email: String,
    pub phone: String,
    pub country_id: i64,
    pub country: String,
    pub service: String,
    pub service_name: String,
    pub status: String,
    /// Activations: where the number came from; rentals: empty.
    pub source: String,
    /// What the customer paid (an activation's price, a rental's total).
    pub price_minor: i64,
    pub created_at: Timestamp,
    /// When a code first arrived (activations).
    pub code_at: Option<Timestamp>,
}

/// A page of the list.
#[derive(Debug, Default)]
pub struct Page {
    pub rows: Vec<Row>,
    /// The `before` of the next page, when there may be older matches (a full page, or a
    /// window that ended before the history did).
    pub older: Option<i64>,
}

/// The id bounds of a creation-date range: orders are numbered in creation order, so the
/// ids created in `[from, to)` lie between the first id created at `from` or later and the
/// last created before `to` (each one step of the `created_at` index).
fn id_bounds(conn: &Connection, kind: Kind, f: &Filter) -> Result<(i64, i64)> {
    let t = kind.table();
    let low = match f.from {
        Some(from) => conn
            .prepare_cached(&format!(
                "SELECT id FROM {t} WHERE created_at >= ?1 ORDER BY created_at, id LIMIT 1"
            ))?
            .query_row([from], |r| r.get::<_, i64>(0))
            .optional()?
            .unwrap_or(i64::MAX),
        None => 0,
    };
    let high = match f.to {
        Some(to) => conn
            .prepare_cached(&format!(
                "SELECT id FROM {t} WHERE created_at < ?1 ORDER BY created_at DESC, id DESC LIMIT 1"
            ))?
            .query_row([to], |r| r.get::<_, i64>(0))
            .optional()?
            .map_or(0, |id| id + 1),
        None => i64::MAX,
    };
    Ok((low, high))
}

/// The lowest id of the next [`WINDOW`] orders below `before` (of the account, if one is
/// given), or `None` when fewer are left.
fn window_floor(
    conn: &Connection,
    kind: Kind,
    account: Option<i64>,
    before: i64,
) -> Result<Option<i64>> {
    let t = kind.table();
    let floor = match account {
        Some(user) => conn
            .prepare_cached(&format!(
                "SELECT id FROM {t} WHERE user_id = ?1 AND id < ?2 ORDER BY id DESC \
                 LIMIT 1 OFFSET {}",
                WINDOW - 1
            ))?
            .query_row([user, before], |r| r.get(0))
            .optional()?,
        None => conn
            .prepare_cached(&format!(
                "SELECT id FROM {t} WHERE id < ?1 ORDER BY id DESC LIMIT 1 OFFSET {}",
                WINDOW - 1
            ))?
            .query_row([before], |r| r.get(0))
            .optional()?,
    };
    Ok(floor)
}

fn select(kind: Kind, by_account: bool) -> String {
    let (price, source, code_at, extra) = match kind {
        Kind::Activation => (
            "o.price_minor",
            "o.source",
            "o.code_at",
            "AND (:source = '' OR o.source = :source)",
        ),
        Kind::Rental => ("o.paid_minor", "''", "NULL", ""),
    };
    let account = if by_account {
        "o.user_id = :account AND"
    } else {
        ""
    };
    format!(
        "SELECT o.id, o.user_id, COALESCE(u.email, ''), o.phone, o.country_id, \
         COALESCE(c.name, ''), o.service, COALESCE(s.name, ''), o.status, {source}, {price}, \
         o.created_at, {code_at} \
         FROM {table} o LEFT JOIN users u ON u.id = o.user_id \
         LEFT JOIN countries c ON c.id = o.country_id LEFT JOIN services s ON s.code = o.service \
         WHERE {account} o.id < :before AND o.id >= :floor \
         AND (:status = '' OR o.status = :status) AND (:service = '' OR o.service = :service) \
         AND (:country IS NULL OR o.country_id = :country) {extra} \
         AND (:from IS NULL OR o.created_at >= :from) AND (:to IS NULL OR o.created_at < :to) \
         ORDER BY o.id DESC LIMIT :limit",
        table = kind.table()
    )
}

/// One page of orders matching `f` with ids below `before` (`None`: the newest), at most
/// `limit` rows.
pub fn page(conn: &Connection, f: &Filter, before: Option<i64>, limit: i64) -> Result<Page> {
    let (low, high) = id_bounds(conn, f.kind, f)?;
    let before = before.unwrap_or(i64::MAX).min(high);
    if before <= low {
        return Ok(Page::default());
    }
    let floor = window_floor(conn, f.kind, f.account, before)?;
    let bottom = floor.unwrap_or(0).max(low);
    let mut stmt = conn.prepare_cached(&select(f.kind, f.account.is_some()))?;
    let mut params: Vec<(&str, &dyn rusqlite::ToSql)> = vec![
        (":before", &before),
        (":floor", &bottom),
        (":status", &f.status),
        (":service", &f.service),
        (":country", &f.country),
        (":from", &f.from),
        (":to", &f.to),
        (":limit", &limit),
    ];
    if f.account.is_some() {
        params.push((":account", &f.account));
    }
    if f.kind == Kind::Activation {
        params.push((":source", &f.source));
    }
    let rows: Vec<Row> = stmt
        .query_map(params.as_slice(), |r| {
            Ok(Row {
                id: r.get(0)?,
                user_id: r.get(1)?,
                email: r.get(2)?,
                phone: r.get(3)?,
                country_id: r.get(4)?,
                country: r.get(5)?,
                service: r.get(6)?,
                service_name: r.get(7)?,
                status: r.get(8)?,
                source: r.get(9)?,
                price_minor: r.get(10)?,
                created_at: r.get(11)?,
                code_at: r.get(12)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let full = rows.len() as i64 >= limit;
    let older = if full {
        rows.last().map(|r| r.id)
    } else if floor.is_some() && bottom > low {
        Some(bottom)
    } else {
        None
    };
    Ok(Page { rows, older })
}

/// [`page`] as the admin reads it: one audit row saying what was asked.
pub fn read(
    conn: &Connection,
    actor: Actor<'_>,
    f: &Filter,
    before: Option<i64>,
    limit: i64,
    now: Timestamp,
) -> Result<Page> {
    if let Some(status) = Some(f.status.as_str()).filter(|s| !s.is_empty()) {
        if !f.kind.statuses().contains(&status) {
            return Err(Error::invalid(format!(
                "A {} has no status “{status}”.",
                f.kind.as_str()
            )));
        }
    }
    let page = page(conn, f, before, limit)?;
    audit::audit(
        conn,
        Some(actor.id),
        f.account,
        "orders_viewed",
        &f.describe(),
        actor.ip_hash,
        now,
    )?;
    Ok(page)
}

/// An account's newest orders for its admin page (no phone numbers: those are on the audited
/// list), activations and rentals apart, at most `limit` of each.
pub fn recent_for(conn: &Connection, user: i64, limit: i64) -> Result<(Vec<Row>, Vec<Row>)> {
    let mut out = Vec::new();
    for kind in [Kind::Activation, Kind::Rental] {
        let f = Filter {
            kind,
            account: Some(user),
            ..Default::default()
        };
        let mut rows = page(conn, &f, None, limit)?.rows;
        for r in &mut rows {
            r.phone.clear();
        }
        out.push(rows);
    }
    let rentals = out.pop().unwrap_or_default();
    let activations = out.pop().unwrap_or_default();
    Ok((activations, rentals))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::testing::account;
    use crate::domain::accounts::Role;

    fn orders(conn: &Connection, n: i64, user: i64, status: &str, at: Timestamp) {
        for i in 0..n {
            conn.execute(
                "INSERT INTO activations (user_id, phone, country_id, service, price_minor, \
                 status, source, created_at, expires_at) VALUES (?1, '6281', 6, 'tg', 35, ?2, \
                 'manual', ?3, ?3 + 1200)",
                rusqlite::params![user, status, at + i],
            )
            .unwrap();
        }
    }

    #[test]
    fn filters_pick_their_orders_and_pages_follow_the_keyset() {
        let conn = db::memory();
        crate::domain::market::catalogue::seed_if_empty(&conn).unwrap();
        let ann = account(&conn, "ann@example.com", Role::User);
        let bob = account(&conn, "bob@example.com", Role::User);
        orders(&conn, 30, ann, "completed", 1_000);
        orders(&conn, 5, bob, "canceled", 2_000);
        orders(&conn, 30, ann, "expired", 3_000);
        let all = page(&conn, &Filter::default(), None, 50).unwrap();
        assert_eq!(all.rows.len(), 50);
        assert_eq!(all.rows[0].id, 65);
        let rest = page(&conn, &Filter::default(), all.older, 50).unwrap();
        assert_eq!((rest.rows.len(), rest.older), (15, None));
        let f = Filter {
            account: Some(bob),
            ..Default::default()
        };
        let p = page(&conn, &f, None, 50).unwrap();
        assert_eq!(p.rows.len(), 5);
        assert!(p.rows.iter().all(|r| r.email == "bob@example.com"));
        let f = Filter {
            status: "expired".into(),
            from: Some(3_010),
            to: Some(3_020),
            ..Default::default()
        };
        let p = page(&conn, &f, None, 50).unwrap();
        assert_eq!(p.rows.len(), 10);
        assert!(p
            .rows
            .iter()
            .all(|r| (3_010..3_020).contains(&r.created_at)));
        let f = Filter {
            service: "wa".into(),
            ..Default::default()
        };
        assert!(page(&conn, &f, None, 50).unwrap().rows.is_empty());
        assert_eq!(day_start("2026-12-07"), Some(1_796_601_600));
        assert_eq!(day_start("7.12.2026"), None);
    }

    #[test]
    fn a_rare_filter_walks_the_history_window_by_window() {
        let conn = db::memory();
        crate::domain::market::catalogue::seed_if_empty(&conn).unwrap();
        let ann = account(&conn, "ann@example.com", Role::User);
        orders(&conn, 1, ann, "retry", 10);
        orders(&conn, WINDOW + 10, ann, "completed", 100);
        let f = Filter {
            status: "retry".into(),
            ..Default::default()
        };
        let first = page(&conn, &f, None, 50).unwrap();
        assert!(first.rows.is_empty());
        assert_eq!(first.older, Some(12));
        let second = page(&conn, &f, first.older, 50).unwrap();
        assert_eq!(second.rows.len(), 1);
        assert_eq!(second.older, None);
    }
}
