//! Top-ups through payment gateways (table `payments`): the bookkeeping, not the network.
//!
//! A top-up is written `creating` before its gateway is called ([`begin`]), becomes `pending`
//! with the gateway's checkout ([`opened`]) or `failed` ([`open_failed`]), and is credited
//! when the gateway's signed notice confirms the money ([`credit`]): the row becomes `paid`
//! and the `topup` ledger row is written in the same transaction, for the amount the gateway
//! confirmed (never the amount asked for). A payment is credited at most once: the update
//! only moves a row whose `paid_at` is unset, and the partial unique index `ledger_one_topup`
//! refuses a second `topup` row for it; a notice that finds it already paid changes nothing.
//! [`close`] ends an open payment without money (expired, failed); [`reversals`] takes money
//! back after a refund or a dispute, up to what was credited, once per amount.
//!
//! The gateways themselves (checkout calls, signatures, reading back) live in `crate::payments`.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::domain::base::money::Money;
use crate::domain::market::wallet::{self, Kind as LedgerKind};
use crate::domain::{Error, Result};

mod reversals;
pub use reversals::{reverse, Reversal, ReversalKind, Reversed};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Written; the gateway is being asked for a checkout.
    Creating,
    /// The customer has a checkout at the gateway.
    Pending,
    Paid,
    Expired,
    Failed,
    Refunded,
    Disputed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Pending => "pending",
            Status::Paid => "paid",
            Status::Expired => "expired",
            Status::Failed => "failed",
            Status::Refunded => "refunded",
            Status::Disputed => "disputed",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "creating" => Status::Creating,
            "pending" => Status::Pending,
            "paid" => Status::Paid,
            "expired" => Status::Expired,
            "refunded" => Status::Refunded,
            "disputed" => Status::Disputed,
            _ => Status::Failed,
        }
    }

    /// Still waiting for the gateway.
    pub fn is_open(self) -> bool {
        matches!(self, Status::Creating | Status::Pending)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Payment {
    pub id: i64,
    pub user_id: i64,
    pub gateway: String,
    pub gateway_ref: Option<String>,
    pub status: Status,
    pub amount_minor: i64,
    pub credited_minor: i64,
    pub reversed_minor: i64,
    pub currency: String,
    pub checkout_url: String,
    pub gateway_status: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub paid_at: Option<Timestamp>,
}

pub(super) const COLS: &str =
    "id, user_id, gateway, gateway_ref, status, amount_minor, credited_minor, \
                    reversed_minor, currency, checkout_url, gateway_status, created_at, \
                    updated_at, paid_at";

pub(super) fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Payment> {
    Ok(Payment {
        id: r.get(0)?,
        user_id: r.get(1)?,
        gateway: r.get(2)?,
        gateway_ref: r.get(3)?,
        status: Status::parse(&r.get::<_, String>(4)?),
        amount_minor: r.get(5)?,
        credited_minor: r.get(6)?,
        reversed_minor: r.get(7)?,
        currency: r.get(8)?,
        checkout_url: r.get(9)?,
        gateway_status: r.get(10)?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
        paid_at: r.get(13)?,
    })
}

/// The smallest and largest top-up (minor units) and how to show them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub min_minor: i64,
    pub max_minor: i64,
    pub digits: u32,
}

/// Parses a top-up amount typed by a person or sent by a client, in major units
/// (`10`, `10.50`), and checks it against the limits: not an amount is
/// [`Error::Invalid`]; an amount outside this site's limits is [`Error::Conflict`] (the
/// request is well formed; the site's settings refuse it).
pub fn parse_amount(text: &str, currency: &str, limits: &Limits) -> Result<i64> {
    let range = || {
        format!(
            "{} to {} {currency}",
            Money(limits.min_minor).decimal(limits.digits),
            Money(limits.max_minor).decimal(limits.digits)
        )
    };
    let amount = Money::parse(text, limits.digits, false)
        .ok_or_else(|| Error::invalid(format!("Enter an amount from {}.", range())))?
        .0;
    if amount < limits.min_minor || amount > limits.max_minor {
        return Err(Error::Conflict(format!(
            "A top-up is from {}; {} is outside.",
            range(),
            Money(amount).decimal(limits.digits)
        )));
    }
    Ok(amount)
}

/// Open top-ups one account may have started in the last day: each one is a call to the
/// gateway, so a script cannot make us spam it.
pub const MAX_OPEN_PER_DAY: i64 = 20;

/// Writes a new top-up (`creating`) before its gateway is called.
pub fn begin(
    conn: &Connection,
    user_id: i64,
    gateway: &str,
    amount_minor: i64,
    currency: &str,
    now: Timestamp,
) -> Result<Payment> {
    if amount_minor <= 0 {
        return Err(Error::invalid("A top-up must be a positive amount."));
    }
    let open: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM (SELECT status, created_at FROM payments \
             WHERE user_id = ?1 ORDER BY id DESC LIMIT ?3) \
             WHERE status IN ('creating', 'pending') AND created_at > ?2",
        )?
        .query_row(params![user_id, now - 86_400, MAX_OPEN_PER_DAY], |r| {
            r.get(0)
        })?;
    if open >= MAX_OPEN_PER_DAY {
        return Err(Error::Conflict(
            "You have too many unfinished top-ups; finish or wait for one of them.".into(),
        ));
    }
    conn.prepare_cached(
        "INSERT INTO payments (user_id, gateway, status, amount_minor, currency, created_at, \
         updated_at) VALUES (?1, ?2, 'creating', ?3, ?4, ?5, ?5)",
    )?
    .execute(params![user_id, gateway, amount_minor, currency, now])?;
    get(conn, conn.last_insert_rowid())
}

/// The gateway gave the checkout: `creating` → `pending`.
pub fn opened(
    conn: &Connection,
    id: i64,
    gateway_ref: &str,
    checkout_url: &str,
    now: Timestamp,
) -> Result<Payment> {
    conn.prepare_cached(
        "UPDATE payments SET status = CASE WHEN status = 'creating' THEN 'pending' ELSE status END, \
         gateway_ref = COALESCE(gateway_ref, ?2), checkout_url = ?3, updated_at = ?4 \
         WHERE id = ?1",
    )?
    .execute(params![id, gateway_ref, checkout_url, now])?;
    get(conn, id)
}

/// The gateway refused or could not be reached: `creating` → `failed`, with why.
pub fn open_failed(conn: &Connection, id: i64, why: &str, now: Timestamp) -> Result<()> {
    conn.prepare_cached(
        "UPDATE payments SET status = 'failed', gateway_status = ?2, updated_at = ?3 \
         WHERE id = ?1 AND status = 'creating'",
    )?
    .execute(params![id, truncate(why), now])?;
    Ok(())
}

fn truncate(text: &str) -> String {
    text.chars().take(200).collect()
}

pub fn get(conn: &Connection, id: i64) -> Result<Payment> {
    conn.prepare_cached(&format!("SELECT {COLS} FROM payments WHERE id = ?1"))?
        .query_row([id], row)
        .optional()?
        .ok_or(Error::NotFound("top-up"))
}

/// One of the account's own top-ups.
pub fn get_for(conn: &Connection, user_id: i64, id: i64) -> Result<Payment> {
    match get(conn, id) {
        Ok(p) if p.user_id == user_id => Ok(p),
        Ok(_) | Err(Error::NotFound(_)) => Err(Error::NotFound("top-up")),
        Err(e) => Err(e),
    }
}

/// The account's newest top-ups.
pub fn for_user(conn: &Connection, user_id: i64, limit: i64) -> Result<Vec<Payment>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM payments WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![user_id, limit], row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A page of every top-up, newest first, before id `before` (the admin's list).
pub fn list(conn: &Connection, before: Option<i64>, limit: i64) -> Result<Vec<Payment>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM payments WHERE id < ?1 ORDER BY id DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![before.unwrap_or(i64::MAX), limit], row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Open top-ups not changed or looked at since `before`, longest first (the reconciliation
/// job; each look moves `updated_at`, so the open ones take turns).
pub fn open_before(conn: &Connection, before: Timestamp, limit: i64) -> Result<Vec<Payment>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM payments WHERE status IN ('creating', 'pending') AND updated_at < ?1 \
         ORDER BY status, updated_at LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![before, limit], row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Remembers what the gateway said last about an open top-up (the admin's check).
pub fn note_gateway_status(conn: &Connection, id: i64, text: &str, now: Timestamp) -> Result<()> {
    conn.prepare_cached("UPDATE payments SET gateway_status = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![id, truncate(text), now])?;
    Ok(())
}

/// Money a gateway confirmed, from its signed notice or its API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    pub gateway: String,
    /// The checkout session / invoice id.
    pub gateway_ref: String,
    /// Our payment id as the checkout carried it (client reference, metadata): finds a row
    /// whose checkout call was cut off before its id was stored.
    pub payment_id: Option<i64>,
    /// What the gateway says was paid, in minor units.
    pub amount_minor: i64,
    /// ISO code, any case.
    pub currency: String,
    /// The gateway's id that refunds and disputes name (Stripe's payment intent).
    pub charge_ref: Option<String>,
}

/// What applying a notice did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The account was credited now.
    Credited {
        payment_id: i64,
        user_id: i64,
        amount_minor: i64,
    },
    /// Already paid (a replay, a retry, a second event for the same money): nothing changed.
    AlreadyDone { payment_id: i64 },
    /// A closed or reversed payment, or a notice that changes nothing.
    Noted { payment_id: i64 },
    /// No top-up of ours matches (another system's checkout on the same account): nothing
    /// changed.
    Unknown,
    /// The notice names one of our top-ups but cannot be credited (another currency).
    Refused { payment_id: i64, why: String },
}

fn find(
    conn: &Connection,
    gateway: &str,
    gateway_ref: &str,
    payment_id: Option<i64>,
) -> Result<Option<Payment>> {
    let by_ref = conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM payments WHERE gateway = ?1 AND gateway_ref = ?2"
        ))?
        .query_row(params![gateway, gateway_ref], row)
        .optional()?;
    if by_ref.is_some() {
        return Ok(by_ref);
    }
    // A checkout whose id was never stored (the server stopped between the gateway's answer
    // and our commit) is found by our id, if it is of this gateway and has no other checkout.
    Ok(match payment_id {
        Some(id) => match get(conn, id) {
            Ok(p) if p.gateway == gateway && p.gateway_ref.is_none() => Some(p),
            Ok(_) | Err(Error::NotFound(_)) => None,
            Err(e) => return Err(e),
        },
        None => None,
    })
}

/// Credits a top-up the gateway confirmed, once. In the caller's transaction: the payment
/// becomes `paid` and the `topup` ledger row is written together.
pub fn credit(conn: &Connection, c: &Confirmed, now: Timestamp) -> Result<Applied> {
    let Some(p) = find(conn, &c.gateway, &c.gateway_ref, c.payment_id)? else {
        return Ok(Applied::Unknown);
    };
    if p.paid_at.is_some() {
        return Ok(Applied::AlreadyDone { payment_id: p.id });
    }
    if !c.currency.eq_ignore_ascii_case(&p.currency) || c.amount_minor <= 0 {
        let why = format!(
            "confirmed {} minor units of {}, not {}: not credited",
            c.amount_minor,
            c.currency.to_ascii_uppercase(),
            p.currency
        );
        note_gateway_status(conn, p.id, &why, now)?;
        return Ok(Applied::Refused {
            payment_id: p.id,
            why,
        });
    }
    let moved = conn
        .prepare_cached(
            "UPDATE payments SET status = 'paid', credited_minor = ?2, paid_at = ?3, \
             updated_at = ?3, gateway_ref = ?4, gateway_charge = COALESCE(?5, gateway_charge), \
             gateway_status = 'paid' WHERE id = ?1 AND paid_at IS NULL",
        )?
        .execute(params![
            p.id,
            c.amount_minor,
            now,
            c.gateway_ref,
            c.charge_ref
        ])?;
    if moved == 0 {
        return Ok(Applied::AlreadyDone { payment_id: p.id });
    }
    wallet::post(
        conn,
        p.user_id,
        c.amount_minor,
        LedgerKind::Topup,
        ("payment", Some(p.id)),
        &format!("{} {}", c.gateway, c.gateway_ref),
        now,
    )?;
    Ok(Applied::Credited {
        payment_id: p.id,
        user_id: p.user_id,
        amount_minor: c.amount_minor,
    })
}

/// Ends an open top-up without money (`expired` or `failed`). A paid or already closed one
/// is left as it is. Returns the payment when one matched.
pub fn close(
    conn: &Connection,
    gateway: &str,
    gateway_ref: &str,
    payment_id: Option<i64>,
    status: Status,
    why: &str,
    now: Timestamp,
) -> Result<Applied> {
    debug_assert!(matches!(status, Status::Expired | Status::Failed));
    let Some(p) = find(conn, gateway, gateway_ref, payment_id)? else {
        return Ok(Applied::Unknown);
    };
    conn.prepare_cached(
        "UPDATE payments SET status = ?2, gateway_status = ?3, updated_at = ?4, \
         gateway_ref = COALESCE(gateway_ref, ?5) \
         WHERE id = ?1 AND status IN ('creating', 'pending')",
    )?
    .execute(params![
        p.id,
        status.as_str(),
        truncate(why),
        now,
        gateway_ref
    ])?;
    Ok(Applied::Noted { payment_id: p.id })
}

/// Top-ups whose books disagree (`otpbox check`): a `topup` ledger row for a payment that
/// is not credited, or for another amount than the payment's credit; a payment whose reversals
/// exceed its credit.
pub fn check(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT p.id, p.status, p.credited_minor, l.amount_minor FROM ledger l \
         JOIN payments p ON p.id = l.ref_id \
         WHERE l.kind = 'topup' AND l.ref_type = 'payment' \
           AND (p.paid_at IS NULL OR p.credited_minor != l.amount_minor)",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(format!(
            "payments: top-up #{} ({}, credited {}) has a topup ledger row of {}",
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?
        ))
    })?;
    let mut problems: Vec<String> = rows.collect::<rusqlite::Result<_>>()?;
    let over: i64 = conn.query_row(
        "SELECT COUNT(*) FROM payments WHERE reversed_minor > credited_minor OR reversed_minor < 0",
        [],
        |r| r.get(0),
    )?;
    if over > 0 {
        problems.push(format!(
            "payments: {over} top-up(s) reversed beyond their credit"
        ));
    }
    Ok(problems)
}

/// Deletes closed top-ups whose last change is older than `cutoff` (`ledger_retention`, like
/// their ledger rows); open ones stay until they close. Returns how many.
pub fn purge(conn: &Connection, cutoff: Timestamp) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM payments WHERE updated_at < ?1 AND status NOT IN ('creating', 'pending')",
        )?
        .execute([cutoff])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::testing::account;
    use crate::domain::accounts::Role;

    fn confirmed(p: &Payment, amount: i64) -> Confirmed {
        Confirmed {
            gateway: "stripe".into(),
            gateway_ref: p.gateway_ref.clone().unwrap_or_default(),
            payment_id: Some(p.id),
            amount_minor: amount,
            currency: "usd".into(),
            charge_ref: Some("pi_1".into()),
        }
    }

    fn pending(conn: &Connection, user: i64) -> Payment {
        let p = begin(conn, user, "stripe", 1000, "USD", 10).unwrap();
        opened(conn, p.id, "cs_1", "https://checkout.example/cs_1", 11).unwrap()
    }

    #[test]
    fn amounts_are_checked_against_the_limits() {
        let l = Limits {
            min_minor: 500,
            max_minor: 50_000,
            digits: 2,
        };
        assert_eq!(parse_amount("10", "USD", &l).unwrap(), 1000);
        assert_eq!(parse_amount("5.00", "USD", &l).unwrap(), 500);
        for bad in ["-10", "ten", "", "1.234"] {
            assert!(
                matches!(parse_amount(bad, "USD", &l), Err(Error::Invalid(_))),
                "{bad}"
            );
        }
        for outside in ["4.99", "500.01", "0"] {
            assert!(
                matches!(parse_amount(outside, "USD", &l), Err(Error::Conflict(_))),
                "{outside}"
            );
        }
    }

    #[test]
    fn a_confirmed_payment_is_credited_once_with_the_confirmed_amount() {
        let conn = db::memory();
        let u = account(&conn, "p@example.com", Role::User);
        let p = pending(&conn, u);
        assert_eq!(p.status, Status::Pending);
        // The gateway confirms 9.50 although 10.00 was asked: 9.50 is credited.
        let first = credit(&conn, &confirmed(&p, 950), 20).unwrap();
        assert_eq!(
            first,
            Applied::Credited {
                payment_id: p.id,
                user_id: u,
                amount_minor: 950
            }
        );
        for _ in 0..5 {
            assert_eq!(
                credit(&conn, &confirmed(&p, 950), 21).unwrap(),
                Applied::AlreadyDone { payment_id: p.id }
            );
        }
        assert_eq!(wallet::balance(&conn, u).unwrap(), 950);
        assert!(wallet::check(&conn).unwrap().is_empty());
        let p = get(&conn, p.id).unwrap();
        assert_eq!(
            (p.status, p.credited_minor, p.paid_at),
            (Status::Paid, 950, Some(20))
        );
    }

    #[test]
    fn the_unique_index_refuses_a_second_topup_row() {
        let conn = db::memory();
        let u = account(&conn, "i@example.com", Role::User);
        let p = pending(&conn, u);
        credit(&conn, &confirmed(&p, 1000), 20).unwrap();
        // Even a writer that skipped the status check cannot credit it twice.
        let again = wallet::post(
            &conn,
            u,
            1000,
            LedgerKind::Topup,
            ("payment", Some(p.id)),
            "",
            21,
        );
        assert!(again.is_err());
        assert_eq!(wallet::balance(&conn, u).unwrap(), 1000);
    }

    #[test]
    fn another_currency_or_an_unknown_checkout_credits_nothing() {
        let conn = db::memory();
        let u = account(&conn, "c@example.com", Role::User);
        let p = pending(&conn, u);
        let mut eur = confirmed(&p, 1000);
        eur.currency = "eur".into();
        assert!(matches!(
            credit(&conn, &eur, 20).unwrap(),
            Applied::Refused { .. }
        ));
        let mut other = confirmed(&p, 1000);
        other.gateway_ref = "cs_other".into();
        other.payment_id = Some(p.id); // has a ref already: not found by id
        assert_eq!(credit(&conn, &other, 20).unwrap(), Applied::Unknown);
        assert_eq!(wallet::balance(&conn, u).unwrap(), 0);
    }

    #[test]
    fn a_checkout_whose_id_was_never_stored_is_found_by_our_id() {
        let conn = db::memory();
        let u = account(&conn, "k@example.com", Role::User);
        let p = begin(&conn, u, "stripe", 1000, "USD", 10).unwrap();
        let c = Confirmed {
            gateway_ref: "cs_lost".into(),
            ..confirmed(&p, 1000)
        };
        assert!(matches!(
            credit(&conn, &c, 20).unwrap(),
            Applied::Credited { .. }
        ));
        assert_eq!(
            get(&conn, p.id).unwrap().gateway_ref.as_deref(),
            Some("cs_lost")
        );
    }

    #[test]
    fn check_finds_a_credit_without_a_paid_payment() {
        let conn = db::memory();
        let u = account(&conn, "chk@example.com", Role::User);
        let p = pending(&conn, u);
        credit(&conn, &confirmed(&p, 1000), 20).unwrap();
        assert!(check(&conn).unwrap().is_empty());
        conn.execute("UPDATE payments SET paid_at = NULL, status = 'pending'", [])
            .unwrap();
        assert_eq!(check(&conn).unwrap().len(), 1);
    }

    #[test]
    fn close_ends_only_open_payments() {
        let conn = db::memory();
        let u = account(&conn, "x@example.com", Role::User);
        let p = pending(&conn, u);
        close(
            &conn,
            "stripe",
            "cs_1",
            None,
            Status::Expired,
            "expired",
            30,
        )
        .unwrap();
        assert_eq!(get(&conn, p.id).unwrap().status, Status::Expired);
        // Money that arrives late is still credited.
        assert!(matches!(
            credit(&conn, &confirmed(&p, 1000), 40).unwrap(),
            Applied::Credited { .. }
        ));
        close(
            &conn,
            "stripe",
            "cs_1",
            None,
            Status::Expired,
            "expired",
            50,
        )
        .unwrap();
        assert_eq!(get(&conn, p.id).unwrap().status, Status::Paid);
    }
}
