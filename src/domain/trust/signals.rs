//! Anomaly signals and the flags they raise for the admin (table `flags`), and chargebacks the
//! admin records. The `abuse` job runs [`scan`] every ten minutes: order velocity, cancel
//! ratio, success rate and many accounts from one hashed address; recording a chargeback
//! raises its flag at once. A flag is evidence for a person to review — nothing here ever
//! changes an account's state. There is at most one open flag per (account, kind), and a
//! signal the admin reviewed is not raised again within the same window.
//!
//! Accounts that asked for processing to be restricted get only the fraud-prevention signals
//! ([`Kind::fraud_prevention`]): velocity, shared address and chargebacks; the cancel-ratio and
//! success-rate profiles are not computed for them.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

use crate::clock::{describe_seconds, format_datetime, Timestamp};
use crate::domain::base::audit::Actor;
use crate::domain::base::money::Money;
use crate::domain::market::payments;
use crate::domain::market::wallet::{self, Kind as LedgerKind};
use crate::domain::{accounts, base::audit, Error, Result};

/// How far back the velocity signal looks on each run (the job runs every ten minutes).
const VELOCITY_LOOKBACK: i64 = 15 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// More orders in one minute than `flag_orders_per_minute`.
    Velocity,
    /// Too many of the recent orders cancelled.
    CancelRatio,
    /// Too few of the recent orders completed.
    LowSuccess,
    /// Several accounts signed in from one hashed address.
    SharedAddress,
    /// The admin recorded a chargeback, or a payment gateway reported a refund or dispute.
    Chargeback,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Velocity => "velocity",
            Kind::CancelRatio => "cancel_ratio",
            Kind::LowSuccess => "low_success",
            Kind::SharedAddress => "shared_address",
            Kind::Chargeback => "chargeback",
        }
    }

    /// Computed even for accounts whose processing is restricted: they guard against fraud
    /// and attacks, not profile how someone uses the service.
    pub fn fraud_prevention(self) -> bool {
        matches!(
            self,
            Kind::Velocity | Kind::SharedAddress | Kind::Chargeback
        )
    }
}

/// The thresholds in force (settings `flag_*`).
#[derive(Debug, Clone)]
pub struct Thresholds {
    pub orders_per_minute: u32,
    /// Percent of orders cancelled above which an account is flagged.
    pub cancel_ratio: u32,
    /// Percent of ended orders completed below which an account is flagged.
    pub success_rate: u32,
    /// Orders in the window before the two ratios apply.
    pub min_orders: u32,
    pub accounts_per_address: u32,
    /// Seconds the ratios and the shared-address signal look back.
    pub window: u64,
}

#[derive(Debug, Clone)]
pub struct Flag {
    pub id: i64,
    pub user_id: i64,
    pub email: String,
    pub kind: String,
    /// JSON with at least a `summary` line.
    pub evidence: String,
    pub state: String,
    pub created_at: Timestamp,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<Timestamp>,
}

impl Flag {
    /// The one-line summary of the evidence.
    pub fn summary(&self) -> String {
        serde_json::from_str::<Value>(&self.evidence)
            .ok()
            .and_then(|v| v["summary"].as_str().map(str::to_string))
            .unwrap_or_else(|| self.evidence.clone())
    }
}

/// Raises a flag unless one of this kind is open for the account; true when raised.
pub fn raise(
    conn: &Connection,
    user_id: i64,
    kind: Kind,
    evidence: &Value,
    now: Timestamp,
) -> Result<bool> {
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO flags (user_id, kind, evidence, created_at) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![user_id, kind.as_str(), evidence.to_string(), now])?;
    Ok(n == 1)
}

/// Raises a scan's flag, unless one is open or one of this kind was raised within `window`
/// (a reviewed signal stays quiet until its evidence has aged out).
fn raise_fresh(
    conn: &Connection,
    user_id: i64,
    kind: Kind,
    evidence: &Value,
    window: u64,
    now: Timestamp,
) -> Result<bool> {
    let recent = conn
        .prepare_cached(
            "SELECT 1 FROM flags WHERE user_id = ?1 AND kind = ?2 AND (state = 'open' OR created_at > ?3)",
        )?
        .query_row(
            params![user_id, kind.as_str(), now - window as i64],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if recent {
        return Ok(false);
    }
    raise(conn, user_id, kind, evidence, now)
}

const FLAG_COLS: &str = "f.id, f.user_id, u.email, f.kind, f.evidence, f.state, f.created_at, \
                         r.email, f.reviewed_at";

fn flag_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Flag> {
    Ok(Flag {
        id: r.get(0)?,
        user_id: r.get(1)?,
        email: r.get(2)?,
        kind: r.get(3)?,
        evidence: r.get(4)?,
        state: r.get(5)?,
        created_at: r.get(6)?,
        reviewed_by: r.get(7)?,
        reviewed_at: r.get(8)?,
    })
}

/// Flags, newest first: of one state (`open`, `reviewed`) and/or one account.
pub fn list(
    conn: &Connection,
    state: Option<&str>,
    user_id: Option<i64>,
    limit: i64,
) -> Result<Vec<Flag>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {FLAG_COLS} FROM flags f JOIN users u ON u.id = f.user_id \
         LEFT JOIN users r ON r.id = f.reviewed_by \
         WHERE (?1 IS NULL OR f.state = ?1) AND (?2 IS NULL OR f.user_id = ?2) \
         ORDER BY f.id DESC LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![state, user_id, limit], flag_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Marks a flag reviewed; audited.
pub fn review(conn: &Connection, actor: Actor<'_>, flag_id: i64, now: Timestamp) -> Result<Flag> {
    let flag = list(conn, None, None, i64::MAX)?
        .into_iter()
        .find(|f| f.id == flag_id)
        .ok_or(Error::NotFound("flag"))?;
    let n = conn.execute(
        "UPDATE flags SET state = 'reviewed', reviewed_by = ?2, reviewed_at = ?3 \
         WHERE id = ?1 AND state = 'open'",
        params![flag_id, actor.id, now],
    )?;
    if n != 1 {
        return Err(Error::Conflict("This flag was reviewed already.".into()));
    }
    audit::audit(
        conn,
        Some(actor.id),
        Some(flag.user_id),
        "flag_reviewed",
        &format!("{} #{}: {}", flag.kind, flag.id, flag.summary()),
        actor.ip_hash,
        now,
    )?;
    Ok(flag)
}

/// The SQL condition (on `users u`) for the accounts a signal of `kind` may look at:
/// everyone for fraud prevention, else only accounts whose processing is not restricted
/// (see `lifecycle::set_restricted`).
fn allowed_for(kind: Kind) -> &'static str {
    if kind.fraud_prevention() {
        "1"
    } else {
        "u.processing_restricted_at IS NULL"
    }
}

/// Accounts the signals look at: open accounts, administrators left out.
const SCANNED: &str = "u.state IN ('active', 'suspended') AND u.role != 'admin'";

fn percent(part: i64, whole: i64) -> i64 {
    if whole == 0 {
        0
    } else {
        part * 100 / whole
    }
}

/// Computes every signal and raises the flags due; returns how many were raised.
pub fn scan(conn: &Connection, t: &Thresholds, now: Timestamp) -> Result<usize> {
    let mut raised = 0;
    let since = now - t.window as i64;
    let window = describe_seconds(t.window);

    // Velocity: the busiest minute of each account in the last quarter of an hour.
    if t.orders_per_minute > 0 {
        let rows: Vec<(i64, i64, i64)> = {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT o.user_id, o.minute, o.n FROM ( \
                   SELECT user_id, created_at / 60 AS minute, COUNT(*) AS n FROM ( \
                     SELECT user_id, created_at FROM activations WHERE created_at > ?1 \
                     UNION ALL SELECT user_id, created_at FROM rentals WHERE created_at > ?1) \
                   GROUP BY user_id, minute HAVING COUNT(*) > ?2) o \
                 JOIN users u ON u.id = o.user_id WHERE {SCANNED} AND {} ORDER BY o.n DESC",
                allowed_for(Kind::Velocity)
            ))?;
            let rows = stmt
                .query_map(params![now - VELOCITY_LOOKBACK, t.orders_per_minute], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for (user_id, minute, n) in rows {
            let evidence = json!({
                "summary": format!(
                    "{n} orders in the minute from {} UTC (more than {} per minute)",
                    format_datetime(minute * 60),
                    t.orders_per_minute
                ),
                "orders": n,
                "minute_start": minute * 60,
                "threshold_per_minute": t.orders_per_minute,
            });
            if raise_fresh(conn, user_id, Kind::Velocity, &evidence, t.window, now)? {
                raised += 1;
            }
        }
    }

    // Cancel ratio and success rate over the window, after `min_orders` orders.
    let counts: Vec<(i64, i64, i64, i64, i64, i64)> = {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT a.user_id, COUNT(*), SUM(a.status = 'canceled'), SUM(a.status = 'completed'), \
             SUM(a.status IN ('completed', 'canceled', 'expired')), SUM(a.status = 'expired') \
             FROM activations a INDEXED BY activations_created JOIN users u ON u.id = a.user_id \
             WHERE a.created_at > ?1 AND {SCANNED} AND {} AND {} \
             GROUP BY a.user_id HAVING COUNT(*) >= ?2",
            allowed_for(Kind::CancelRatio),
            allowed_for(Kind::LowSuccess)
        ))?;
        let rows = stmt.query_map(params![since, t.min_orders.max(1)], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (user_id, orders, canceled, completed, ended, expired) in counts {
        let ratio = percent(canceled, orders);
        if canceled * 100 > t.cancel_ratio as i64 * orders {
            let evidence = json!({
                "summary": format!(
                    "{canceled} of {orders} orders in the last {window} were cancelled ({ratio}%; \
                     flagged above {}% after {} orders)",
                    t.cancel_ratio, t.min_orders
                ),
                "orders": orders,
                "canceled": canceled,
                "window_secs": t.window,
                "threshold_percent": t.cancel_ratio,
            });
            if raise_fresh(conn, user_id, Kind::CancelRatio, &evidence, t.window, now)? {
                raised += 1;
            }
        }
        let rate = percent(completed, ended);
        if ended >= t.min_orders.max(1) as i64 && completed * 100 < t.success_rate as i64 * ended {
            let evidence = json!({
                "summary": format!(
                    "{completed} of {ended} finished orders in the last {window} got a code \
                     ({rate}%; flagged under {}% after {} orders)",
                    t.success_rate, t.min_orders
                ),
                "ended": ended,
                "completed": completed,
                "canceled": canceled,
                "expired": expired,
                "window_secs": t.window,
                "threshold_percent": t.success_rate,
            });
            if raise_fresh(conn, user_id, Kind::LowSuccess, &evidence, t.window, now)? {
                raised += 1;
            }
        }
    }

    // Many accounts signing in from one hashed address.
    if t.accounts_per_address > 1 {
        let rows: Vec<(String, i64)> = {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT DISTINCT x.ip_hash, x.user_id FROM ( \
                   SELECT ip_hash, user_id FROM security_events INDEXED BY security_events_at \
                   WHERE kind = 'login' AND at > ?1 AND user_id IS NOT NULL AND ip_hash != '' \
                   UNION SELECT ip_hash, user_id FROM sessions \
                   WHERE user_id IS NOT NULL AND created_at > ?1 AND ip_hash != '') x \
                 JOIN users u ON u.id = x.user_id WHERE {SCANNED} AND {} \
                 AND x.ip_hash IN (SELECT h FROM ( \
                   SELECT ip_hash AS h, user_id AS uid FROM security_events INDEXED BY security_events_at \
                   WHERE kind = 'login' AND at > ?1 AND user_id IS NOT NULL AND ip_hash != '' \
                   UNION SELECT ip_hash, user_id FROM sessions \
                   WHERE user_id IS NOT NULL AND created_at > ?1 AND ip_hash != '') \
                   GROUP BY h HAVING COUNT(DISTINCT uid) >= ?2) \
                 ORDER BY x.ip_hash, x.user_id",
                allowed_for(Kind::SharedAddress)
            ))?;
            let rows = stmt.query_map(params![since, t.accounts_per_address], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut by_address: Vec<(String, Vec<i64>)> = Vec::new();
        for (hash, uid) in rows {
            match by_address.last_mut() {
                Some((h, ids)) if *h == hash => ids.push(uid),
                _ => by_address.push((hash, vec![uid])),
            }
        }
        for (hash, ids) in by_address {
            for &uid in &ids {
                let others: Vec<i64> = ids.iter().copied().filter(|&o| o != uid).collect();
                let evidence = json!({
                    "summary": format!(
                        "{} accounts signed in from one address in the last {window} \
                         (flagged from {}); the others: {}",
                        ids.len(),
                        t.accounts_per_address,
                        others
                            .iter()
                            .map(|o| format!("#{o}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    "address_hash": hash.chars().take(12).collect::<String>(),
                    "accounts": ids,
                    "window_secs": t.window,
                });
                if raise_fresh(conn, uid, Kind::SharedAddress, &evidence, t.window, now)? {
                    raised += 1;
                }
            }
        }
    }
    Ok(raised)
}

// ---------------------------------------------------------------------------------------
// Chargebacks

#[derive(Debug, Clone)]
pub struct Chargeback {
    pub id: i64,
    pub amount_minor: i64,
    pub reference: String,
    pub recorded_by: Option<String>,
    pub created_at: Timestamp,
    /// The adjustment that debited the balance, when the admin chose one.
    pub ledger_id: Option<i64>,
}

pub fn chargebacks_for(conn: &Connection, user_id: i64) -> Result<Vec<Chargeback>> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.id, c.amount_minor, c.reference, u.email, c.created_at, c.ledger_id \
         FROM chargebacks c LEFT JOIN users u ON u.id = c.recorded_by \
         WHERE c.user_id = ?1 ORDER BY c.id DESC",
    )?;
    let rows = stmt.query_map([user_id], |r| {
        Ok(Chargeback {
            id: r.get(0)?,
            amount_minor: r.get(1)?,
            reference: r.get(2)?,
            recorded_by: r.get(3)?,
            created_at: r.get(4)?,
            ledger_id: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Records a chargeback against an account and raises its flag; with `debit`, the amount is
/// also taken from the balance as an `adjustment` (refused when the balance does not cover
/// it). Audited.
#[allow(clippy::too_many_arguments)]
pub fn record_chargeback(
    conn: &Connection,
    actor: Actor<'_>,
    user_id: i64,
    amount_minor: i64,
    reference: &str,
    debit: bool,
    digits: u32,
    now: Timestamp,
) -> Result<Chargeback> {
    accounts::get(conn, user_id)?;
    if amount_minor <= 0 {
        return Err(Error::invalid(
            "Enter the amount charged back, such as 25.00.",
        ));
    }
    let reference = reference.trim();
    if reference.is_empty() || reference.chars().count() > 100 {
        return Err(Error::invalid(
            "Enter the payment provider's reference (at most 100 characters).",
        ));
    }
    conn.prepare_cached(
        "INSERT INTO chargebacks (user_id, amount_minor, reference, recorded_by, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![user_id, amount_minor, reference, actor.id, now])?;
    let id = conn.last_insert_rowid();
    let amount = Money(amount_minor).decimal(digits);
    if debit {
        wallet::post(
            conn,
            user_id,
            -amount_minor,
            LedgerKind::Adjustment,
            ("chargeback", Some(id)),
            &format!("chargeback {reference}"),
            now,
        )
        .map_err(|e| match e {
            Error::NoBalance => Error::Conflict(format!(
                "The balance does not cover {amount}; record the chargeback without debiting."
            )),
            e => e,
        })?;
        conn.execute(
            "UPDATE chargebacks SET ledger_id = (SELECT MAX(id) FROM ledger \
             WHERE ref_type = 'chargeback' AND ref_id = ?1) WHERE id = ?1",
            [id],
        )?;
    }
    raise(
        conn,
        user_id,
        Kind::Chargeback,
        &json!({
            "summary": format!("chargeback of {amount} recorded, reference {reference}"),
            "chargeback_id": id,
            "amount_minor": amount_minor,
            "reference": reference,
            "debited": debit,
        }),
        now,
    )?;
    audit::audit(
        conn,
        Some(actor.id),
        Some(user_id),
        "chargeback",
        &format!(
            "{amount} ref {reference}{}",
            if debit { " (debited)" } else { "" }
        ),
        actor.ip_hash,
        now,
    )?;
    chargebacks_for(conn, user_id)?
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| Error::Internal("the chargeback just written is missing".into()))
}

/// A payment gateway reported that money of a paid top-up went back (a refund or a
/// dispute): the balance is debited as far as it covers it ([`payments::reverse`], once per
/// amount, so a replay changes nothing), the chargeback is recorded (by no admin) and its
/// flag raised, all in the caller's transaction. `None` when the notice reverses nothing new.
pub fn gateway_reversal(
    conn: &Connection,
    r: &payments::Reversal,
    digits: u32,
    now: Timestamp,
) -> Result<Option<payments::Reversed>> {
    let Some(done) = payments::reverse(conn, r, now)? else {
        return Ok(None);
    };
    let word = match r.kind {
        payments::ReversalKind::Refund => "refund",
        payments::ReversalKind::Dispute => "dispute",
    };
    let reference: String = format!("{} {word} {}", r.gateway, r.notice_ref)
        .chars()
        .take(100)
        .collect();
    conn.prepare_cached(
        "INSERT INTO chargebacks (user_id, amount_minor, reference, recorded_by, created_at,          ledger_id) VALUES (?1, ?2, ?3, NULL, ?4, ?5)",
    )?
    .execute(params![
        done.user_id,
        done.amount_minor,
        reference,
        now,
        done.ledger_id
    ])?;
    let id = conn.last_insert_rowid();
    let amount = Money(done.amount_minor).decimal(digits);
    let unrecovered = done.amount_minor - done.debited_minor;
    raise(
        conn,
        done.user_id,
        Kind::Chargeback,
        &json!({
            "summary": if unrecovered > 0 {
                format!(
                    "{word} of {amount} at {} (top-up #{}); {} was already spent",
                    r.gateway,
                    done.payment_id,
                    Money(unrecovered).decimal(digits)
                )
            } else {
                format!("{word} of {amount} at {} (top-up #{}), debited", r.gateway, done.payment_id)
            },
            "chargeback_id": id,
            "payment_id": done.payment_id,
            "amount_minor": done.amount_minor,
            "debited_minor": done.debited_minor,
            "reference": reference,
        }),
        now,
    )?;
    audit::audit(
        conn,
        None,
        Some(done.user_id),
        "chargeback",
        &format!(
            "{amount} ref {reference} (from the gateway; {} debited)",
            Money(done.debited_minor).decimal(digits)
        ),
        "",
        now,
    )?;
    Ok(Some(done))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::testing::account;
    use crate::domain::accounts::Role;

    const T: Thresholds = Thresholds {
        orders_per_minute: 3,
        cancel_ratio: 50,
        success_rate: 40,
        min_orders: 4,
        accounts_per_address: 3,
        window: 86_400,
    };

    fn order(conn: &Connection, user: i64, status: &str, at: Timestamp) {
        conn.execute(
            "INSERT INTO activations (user_id, phone, country_id, service, price_minor, status, \
             source, created_at, expires_at) VALUES (?1, '1', 6, 'tg', 10, ?2, 'manual', ?3, ?3)",
            params![user, status, at],
        )
        .unwrap();
    }

    #[test]
    fn signals_raise_one_open_flag_each_and_never_touch_the_account() {
        let conn = db::memory();
        let u = account(&conn, "quick@example.com", Role::User);
        let now = 1_000_000;
        for i in 0..5 {
            order(&conn, u, "canceled", now - 30 + i);
        }
        assert_eq!(scan(&conn, &T, now).unwrap(), 3);
        let kinds: Vec<String> = list(&conn, Some("open"), Some(u), 10)
            .unwrap()
            .into_iter()
            .map(|f| f.kind)
            .collect();
        assert_eq!(kinds.len(), 3);
        for k in ["velocity", "cancel_ratio", "low_success"] {
            assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
        }
        // Run again: the open flags stay the only ones.
        assert_eq!(scan(&conn, &T, now + 600).unwrap(), 0);
        assert_eq!(
            accounts::get(&conn, u).unwrap().state,
            accounts::State::Active
        );
        // Reviewed, it stays quiet while the same evidence is in the window.
        let admin = account(&conn, "root@example.com", Role::Admin);
        let me = Actor {
            id: admin,
            ip_hash: "",
        };
        let f = list(&conn, Some("open"), Some(u), 1).unwrap().remove(0);
        review(&conn, me, f.id, now + 700).unwrap();
        assert!(matches!(
            review(&conn, me, f.id, now + 701),
            Err(Error::Conflict(_))
        ));
        assert_eq!(scan(&conn, &T, now + 800).unwrap(), 0);
    }

    #[test]
    fn shared_addresses_flag_each_account() {
        let conn = db::memory();
        let ids: Vec<i64> = (0..3)
            .map(|i| account(&conn, &format!("a{i}@example.com"), Role::User))
            .collect();
        for id in &ids {
            audit::security(&conn, Some(*id), "login", "samehash", "", 100).unwrap();
        }
        let lone = account(&conn, "lone@example.com", Role::User);
        audit::security(&conn, Some(lone), "login", "otherhash", "", 100).unwrap();
        assert_eq!(scan(&conn, &T, 200).unwrap(), 3);
        assert!(list(&conn, None, Some(lone), 10).unwrap().is_empty());
        let f = list(&conn, None, Some(ids[0]), 10).unwrap().remove(0);
        assert_eq!(f.kind, "shared_address");
        assert!(f.summary().starts_with("3 accounts"), "{}", f.summary());
    }

    #[test]
    fn a_chargeback_is_stored_flagged_and_debited_only_when_asked() {
        let conn = db::memory();
        let u = account(&conn, "payer@example.com", Role::User);
        let admin = account(&conn, "root@example.com", Role::Admin);
        let me = Actor {
            id: admin,
            ip_hash: "",
        };
        wallet::post(&conn, u, 1000, LedgerKind::Topup, ("", None), "", 1).unwrap();
        let c = record_chargeback(&conn, me, u, 400, "ch_1", false, 2, 10).unwrap();
        assert_eq!(c.ledger_id, None);
        assert_eq!(wallet::balance(&conn, u).unwrap(), 1000);
        let c = record_chargeback(&conn, me, u, 400, "ch_2", true, 2, 11).unwrap();
        assert!(c.ledger_id.is_some());
        assert_eq!(wallet::balance(&conn, u).unwrap(), 600);
        assert!(matches!(
            record_chargeback(&conn, me, u, 5000, "ch_3", true, 2, 12),
            Err(Error::Conflict(_))
        ));
        assert_eq!(list(&conn, Some("open"), Some(u), 10).unwrap().len(), 1);
        assert!(wallet::check(&conn).unwrap().is_empty());
    }
}
