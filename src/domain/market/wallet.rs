//! The wallet: the only module that writes ledger rows or changes `users.balance_minor`.
//!
//! Every movement is one ledger row written in the caller's transaction, together with the
//! state change that caused it, so the cached balance always equals the ledger sum
//! ([`check`] proves it). Refunds and operator earnings are unique per order, top-ups per
//! payment, by database indexes: a second one fails instead of paying twice.

use rusqlite::{params, Connection, OptionalExtension};

use crate::clock::Timestamp;
use crate::domain::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Topup,
    Charge,
    Refund,
    Voucher,
    Adjustment,
    Forfeit,
    Earning,
    Payout,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Topup => "topup",
            Kind::Charge => "charge",
            Kind::Refund => "refund",
            Kind::Voucher => "voucher",
            Kind::Adjustment => "adjustment",
            Kind::Forfeit => "forfeit",
            Kind::Earning => "earning",
            Kind::Payout => "payout",
        }
    }
}

/// What a movement is about, e.g. `("activation", 42)`.
pub type Ref<'a> = (&'a str, Option<i64>);

/// Posts a movement and returns the new balance. A debit that would make the balance
/// negative fails with [`Error::NoBalance`] (forfeits and admin adjustments may take it to
/// exactly zero, never below).
pub fn post(
    conn: &Connection,
    user_id: i64,
    amount_minor: i64,
    kind: Kind,
    reference: Ref<'_>,
    note: &str,
    now: Timestamp,
) -> Result<i64> {
    post_inner(
        conn,
        user_id,
        amount_minor,
        kind,
        reference,
        note,
        false,
        now,
    )
}

/// A sale to a partner hub: a `charge` to the partner's account that may take its balance
/// below zero (what the hub owes; `market::partners`). Only partner accounts go negative.
pub fn post_receivable(
    conn: &Connection,
    account_id: i64,
    amount_minor: i64,
    reference: Ref<'_>,
    note: &str,
    now: Timestamp,
) -> Result<i64> {
    post_inner(
        conn,
        account_id,
        amount_minor,
        Kind::Charge,
        reference,
        note,
        true,
        now,
    )
}

/// Every check comes before the first write, and the ledger row (which a unique index may
/// refuse) before the balance: a movement that fails has changed nothing, without a
/// savepoint, even for a caller that goes on with its transaction after the error.
#[allow(clippy::too_many_arguments)]
fn post_inner(
    conn: &Connection,
    user_id: i64,
    amount_minor: i64,
    kind: Kind,
    reference: Ref<'_>,
    note: &str,
    debt_allowed: bool,
    now: Timestamp,
) -> Result<i64> {
    let before = balance(conn, user_id)?;
    // Checked: the sum must stay a 64-bit integer (SQLite would turn an overflowing one
    // into a float).
    let Some(after) = before.checked_add(amount_minor) else {
        return Err(if amount_minor < 0 {
            Error::NoBalance
        } else {
            Error::invalid("This amount would take the balance beyond what can be stored.")
        });
    };
    if amount_minor < 0 && after < 0 && !debt_allowed {
        return Err(Error::NoBalance);
    }
    if amount_minor < 0 {
        // Before the ledger row, whose id callers read with `last_insert_rowid` (a
        // chargeback keeps it); a debit's row is never refused (the unique indexes are on
        // credits), so nothing is left behind.
        crate::domain::accounts::notifications::balance_fell(conn, user_id, before, after, now)?;
    }
    let inserted = conn
        .prepare_cached(
            "INSERT INTO ledger (user_id, amount_minor, kind, ref_type, ref_id, note, \
             balance_after, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            user_id,
            amount_minor,
            kind.as_str(),
            reference.0,
            reference.1,
            note,
            after,
            now
        ]);
    match inserted {
        Ok(_) => {
            // An operator's lifetime earnings and payouts are kept beside the balance (its
            // earnings page shows them without summing its ledger).
            let (earned, paid_out) = match kind {
                Kind::Earning => (amount_minor, 0),
                Kind::Payout => (0, -amount_minor),
                _ => (0, 0),
            };
            conn.prepare_cached(
                "UPDATE users SET balance_minor = ?2, earned_minor = earned_minor + ?3, \
                 paid_out_minor = paid_out_minor + ?4 WHERE id = ?1",
            )?
            .execute(params![user_id, after, earned, paid_out])?;
            Ok(after)
        }
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation && kind == Kind::Refund =>
        {
            Err(Error::BadStatus("This order was already refunded.".into()))
        }
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation && kind == Kind::Earning =>
        {
            Err(Error::BadStatus(
                "The operator was already credited for this order.".into(),
            ))
        }
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation && kind == Kind::Topup =>
        {
            Err(Error::BadStatus(
                "This payment was already credited.".into(),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn balance(conn: &Connection, user_id: i64) -> Result<i64> {
    conn.prepare_cached("SELECT balance_minor FROM users WHERE id = ?1")?
        .query_row([user_id], |r| r.get(0))
        .optional()?
        .ok_or(Error::NotFound("account"))
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub id: i64,
    pub amount_minor: i64,
    pub kind: String,
    pub ref_type: String,
    pub ref_id: Option<i64>,
    pub note: String,
    pub balance_after: i64,
    pub created_at: Timestamp,
}

pub fn entries(
    conn: &Connection,
    user_id: i64,
    limit: i64,
    before_id: Option<i64>,
) -> Result<Vec<Entry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, amount_minor, kind, ref_type, ref_id, note, balance_after, created_at \
         FROM ledger WHERE user_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![user_id, before_id.unwrap_or(i64::MAX), limit],
        |r| {
            Ok(Entry {
                id: r.get(0)?,
                amount_minor: r.get(1)?,
                kind: r.get(2)?,
                ref_type: r.get(3)?,
                ref_id: r.get(4)?,
                note: r.get(5)?,
                balance_after: r.get(6)?,
                created_at: r.get(7)?,
            })
        },
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The ledger of activations written in bulk from `first_activation` on (`otpbox bench
/// --history`; they were inserted already ended): per account one adjustment of `at` paying
/// for its completed ones, then each one's charge and, unless completed, its refund. Every
/// balance stays equal to its ledger. Returns the rows written.
pub fn post_past_activations(
    conn: &Connection,
    first_activation: i64,
    at: Timestamp,
) -> Result<u64> {
    let mut rows = conn.execute(
        "INSERT INTO ledger (user_id, amount_minor, kind, ref_type, ref_id, note, balance_after,
                             created_at)
         SELECT user_id, SUM(price_minor), 'adjustment', '', NULL, 'bench history', 0, ?2
         FROM activations WHERE id >= ?1 AND status = 'completed' GROUP BY user_id",
        params![first_activation, at],
    )?;
    rows += conn.execute(
        "INSERT INTO ledger (user_id, amount_minor, kind, ref_type, ref_id, note, balance_after,
                             created_at)
         SELECT user_id, -price_minor, 'charge', 'activation', id, '', 0, created_at
         FROM activations WHERE id >= ?1",
        [first_activation],
    )?;
    rows += conn.execute(
        "INSERT INTO ledger (user_id, amount_minor, kind, ref_type, ref_id, note, balance_after,
                             created_at)
         SELECT user_id, price_minor, 'refund', 'activation', id, '', 0, ended_at
         FROM activations WHERE id >= ?1 AND status <> 'completed'",
        [first_activation],
    )?;
    Ok(rows as u64)
}

/// Accounts whose cached balance differs from their ledger sum, or is negative (only a
/// partner hub's account may be: it is what the hub owes).
pub fn check(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT u.id, u.email, u.balance_minor, COALESCE(SUM(l.amount_minor), 0) \
         FROM users u LEFT JOIN ledger l ON l.user_id = u.id GROUP BY u.id \
         HAVING u.balance_minor != COALESCE(SUM(l.amount_minor), 0) \
         OR (u.balance_minor < 0 AND u.id NOT IN (SELECT account_id FROM partners))",
    )?;
    let rows = stmt.query_map([], |r| {
        let (balance, sum) = (r.get::<_, i64>(2)?, r.get::<_, i64>(3)?);
        Ok(if balance == sum {
            format!(
                "wallet: account {} ({}) has a negative balance {balance}",
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?
            )
        } else {
            format!(
                "wallet: account {} ({}) has balance {balance} but its ledger sums to {sum}",
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?
            )
        })
    })?;
    let mut problems: Vec<String> = rows.collect::<rusqlite::Result<_>>()?;
    let refunds_without_charge: i64 = conn.query_row(
        // Set-based (one sort), not a correlated lookup: no index serves charges by
        // reference, and a scan per refund is quadratic on a big ledger.
        "SELECT COUNT(*) FROM ( \
           SELECT ref_type, ref_id, user_id FROM ledger WHERE kind = 'refund' AND ref_id IS NOT NULL \
           EXCEPT SELECT ref_type, ref_id, user_id FROM ledger WHERE kind = 'charge')",
        [],
        |r| r.get(0),
    )?;
    if refunds_without_charge > 0 {
        problems.push(format!(
            "wallet: {refunds_without_charge} refund(s) without a matching charge"
        ));
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::{self, NewUser, Role};

    fn user(conn: &Connection) -> i64 {
        accounts::create(
            conn,
            &NewUser {
                email: "w@example.com",
                password_hash: None,
                role: Role::User,
                verified: true,
                age_confirmed: true,
                aup_accepted: true,
            },
            1,
        )
        .unwrap()
        .id
    }

    #[test]
    fn credit_debit_and_check() {
        let conn = db::memory();
        let u = user(&conn);
        assert_eq!(
            post(&conn, u, 1000, Kind::Adjustment, ("", None), "", 1).unwrap(),
            1000
        );
        assert_eq!(
            post(&conn, u, -300, Kind::Charge, ("activation", Some(1)), "", 2).unwrap(),
            700
        );
        assert!(matches!(
            post(&conn, u, -800, Kind::Charge, ("activation", Some(2)), "", 3),
            Err(Error::NoBalance)
        ));
        assert_eq!(balance(&conn, u).unwrap(), 700);
        assert!(check(&conn).unwrap().is_empty());
        assert_eq!(entries(&conn, u, 10, None).unwrap().len(), 2);
    }

    #[test]
    fn a_refund_happens_once() {
        let conn = db::memory();
        let u = user(&conn);
        post(&conn, u, 1000, Kind::Adjustment, ("", None), "", 1).unwrap();
        post(&conn, u, -300, Kind::Charge, ("activation", Some(9)), "", 2).unwrap();
        post(&conn, u, 300, Kind::Refund, ("activation", Some(9)), "", 3).unwrap();
        let again = post(&conn, u, 300, Kind::Refund, ("activation", Some(9)), "", 4);
        assert!(matches!(again, Err(Error::BadStatus(_))));
        // No transaction here, as for a caller that goes on after the error: nothing of the
        // refused movement was written.
        assert_eq!(balance(&conn, u).unwrap(), 1000);
        assert!(check(&conn).unwrap().is_empty());
    }

    /// A chargeback keeps the id of its ledger row (`last_insert_rowid` after the post),
    /// also when the debit queues a low-balance notification.
    #[test]
    fn the_last_row_a_debit_inserts_is_its_ledger_row() {
        let conn = db::memory();
        let u = user(&conn);
        conn.execute(
            "INSERT INTO notify_channels (user_id, kind, url, events, low_balance_minor, \
             created_at) VALUES (?1, 'ntfy', 'https://ntfy.example/t', 'low_balance', 500, 1)",
            [u],
        )
        .unwrap();
        post(&conn, u, 1000, Kind::Adjustment, ("", None), "", 1).unwrap();
        post(
            &conn,
            u,
            -800,
            Kind::Adjustment,
            ("payment", Some(1)),
            "",
            2,
        )
        .unwrap();
        let (ledger, notices): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT MAX(id) FROM ledger), (SELECT COUNT(*) FROM notifications)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(notices, 1, "the debit crossed the threshold");
        assert_eq!(conn.last_insert_rowid(), ledger);
    }

    #[test]
    fn a_movement_past_what_a_balance_can_hold_changes_nothing() {
        let conn = db::memory();
        let u = user(&conn);
        post(&conn, u, 500, Kind::Adjustment, ("", None), "", 1).unwrap();
        assert!(matches!(
            post(&conn, u, i64::MAX, Kind::Adjustment, ("", None), "", 2),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            post(&conn, u, i64::MIN, Kind::Charge, ("", None), "", 3),
            Err(Error::NoBalance)
        ));
        // A partner's receivable may go below zero, not past the smallest integer.
        assert_eq!(
            post_receivable(&conn, u, -800, ("", None), "", 4).unwrap(),
            -300
        );
        assert_eq!(balance(&conn, u).unwrap(), -300);
        assert_eq!(entries(&conn, u, 10, None).unwrap().len(), 2);
        // The sums agree; only the negative balance of an account that is no partner is
        // reported.
        assert_eq!(check(&conn).unwrap().len(), 1);
    }

    #[test]
    fn check_finds_a_tampered_balance() {
        let conn = db::memory();
        let u = user(&conn);
        post(&conn, u, 500, Kind::Adjustment, ("", None), "", 1).unwrap();
        conn.execute("UPDATE users SET balance_minor = 900", [])
            .unwrap();
        assert_eq!(check(&conn).unwrap().len(), 1);
    }
}
