//! Payout requests (SPEC §5): an operator asks to be paid part of its balance to a
//! destination it names (an IBAN, a wallet address); the admin pays it outside otpbox and
//! marks it paid, which writes the `payout` ledger row (the debit) and an audit row in one
//! transaction; or rejects it with a note. Until then the operator may withdraw it. A request
//! never exceeds the balance minus the other open requests, and marking one paid is refused
//! when the balance no longer covers it (the operator spent it meanwhile).

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::domain::base::audit::{Actor, NOTE_MAX};
use crate::domain::base::money::Money;
use crate::domain::market::wallet::{self, Kind};
use crate::domain::{base::audit, Error, Result};

/// The longest destination text accepted.
pub const DESTINATION_MAX: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Requested,
    Paid,
    Rejected,
    Withdrawn,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Requested => "requested",
            State::Paid => "paid",
            State::Rejected => "rejected",
            State::Withdrawn => "withdrawn",
        }
    }

    fn parse(s: &str) -> State {
        match s {
            "requested" => State::Requested,
            "paid" => State::Paid,
            "rejected" => State::Rejected,
            _ => State::Withdrawn,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Payout {
    pub id: i64,
    pub user_id: i64,
    /// The operator's e-mail (for the admin's list).
    pub email: String,
    pub amount_minor: i64,
    pub destination: String,
    pub state: State,
    pub created_at: Timestamp,
    pub decided_at: Option<Timestamp>,
    pub note: String,
}

const SELECT: &str = "SELECT p.id, p.user_id, u.email, p.amount_minor, p.destination, p.state, \
                      p.created_at, p.decided_at, p.note FROM payouts p JOIN users u ON u.id = p.user_id";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Payout> {
    let state: String = r.get(5)?;
    Ok(Payout {
        id: r.get(0)?,
        user_id: r.get(1)?,
        email: r.get(2)?,
        amount_minor: r.get(3)?,
        destination: r.get(4)?,
        state: State::parse(&state),
        created_at: r.get(6)?,
        decided_at: r.get(7)?,
        note: r.get(8)?,
    })
}

pub fn get(conn: &Connection, id: i64) -> Result<Option<Payout>> {
    Ok(conn
        .prepare_cached(&format!("{SELECT} WHERE p.id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}

/// An operator's money at a glance.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Earnings credited since `since` (the start of the month).
    pub earned_since: i64,
    /// Every earning ever credited.
    pub earned_total: i64,
    /// Payouts paid so far (a positive number).
    pub paid_out: i64,
    /// The wallet balance.
    pub balance: i64,
    /// Payout requests still waiting for the admin.
    pub pending_payouts: i64,
}

pub fn totals(conn: &Connection, user_id: i64, since: Timestamp) -> Result<Totals> {
    // This month's earnings through `ledger_earned_at`; the lifetime sums are the wallet's
    // counters: nothing here reads the whole ledger.
    let earned_since: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(amount_minor), 0) FROM ledger \
             WHERE user_id = ?1 AND kind = 'earning' AND created_at >= ?2",
        )?
        .query_row(params![user_id, since], |r| r.get(0))?;
    let (earned_total, paid_out): (i64, i64) = conn
        .prepare_cached("SELECT earned_minor, paid_out_minor FROM users WHERE id = ?1")?
        .query_row([user_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, 0));
    Ok(Totals {
        earned_since,
        earned_total,
        paid_out,
        balance: wallet::balance(conn, user_id)?,
        pending_payouts: requested_total(conn, user_id)?,
    })
}

/// The sum of an account's requests still waiting for the admin.
pub fn requested_total(conn: &Connection, user_id: i64) -> Result<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT COALESCE(SUM(amount_minor), 0) FROM payouts \
             WHERE user_id = ?1 AND state = 'requested'",
        )?
        .query_row([user_id], |r| r.get(0))?)
}

/// What an account may still ask for: its balance minus its open requests.
pub fn available(conn: &Connection, user_id: i64) -> Result<i64> {
    Ok((wallet::balance(conn, user_id)? - requested_total(conn, user_id)?).max(0))
}

/// An operator asks to be paid `amount_minor` to `destination`.
pub fn request(
    conn: &Connection,
    user_id: i64,
    amount_minor: i64,
    destination: &str,
    digits: u32,
    now: Timestamp,
) -> Result<Payout> {
    if amount_minor <= 0 {
        return Err(Error::invalid("Enter an amount above zero, e.g. 25.00."));
    }
    let destination = destination.trim();
    if destination.is_empty() {
        return Err(Error::invalid(
            "Say where to pay: an IBAN, a wallet address or similar.",
        ));
    }
    if destination.chars().count() > DESTINATION_MAX {
        return Err(Error::invalid(format!(
            "The destination must be at most {DESTINATION_MAX} characters."
        )));
    }
    if destination.chars().any(char::is_control) {
        return Err(Error::invalid("The destination must be one line of text."));
    }
    let available = available(conn, user_id)?;
    if amount_minor > available {
        return Err(Error::Conflict(format!(
            "You can ask for at most {} now (your balance minus the payouts already requested).",
            Money(available).decimal(digits)
        )));
    }
    conn.prepare_cached(
        "INSERT INTO payouts (user_id, amount_minor, destination, created_at) \
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![user_id, amount_minor, destination, now])?;
    get(conn, conn.last_insert_rowid())?.ok_or(Error::NotFound("payout"))
}

/// The payout if it belongs to `user_id` (someone else's is "not found").
pub fn get_for(conn: &Connection, user_id: i64, id: i64) -> Result<Payout> {
    match get(conn, id)? {
        Some(p) if p.user_id == user_id => Ok(p),
        _ => Err(Error::NotFound("payout")),
    }
}

/// Moves a request out of `requested`; fails if it was decided meanwhile.
fn decide(
    conn: &Connection,
    id: i64,
    to: State,
    by: Option<i64>,
    note: &str,
    now: Timestamp,
) -> Result<()> {
    let n = conn
        .prepare_cached(
            "UPDATE payouts SET state = ?2, decided_at = ?3, decided_by = ?4, note = ?5 \
             WHERE id = ?1 AND state = 'requested'",
        )?
        .execute(params![id, to.as_str(), now, by, note])?;
    if n != 1 {
        return Err(Error::BadStatus(
            "This payout is no longer waiting; reload the page.".into(),
        ));
    }
    Ok(())
}

fn still_requested(p: &Payout) -> Result<()> {
    if p.state != State::Requested {
        return Err(Error::BadStatus(format!(
            "This payout is already {}.",
            p.state.as_str()
        )));
    }
    Ok(())
}

/// The operator takes back a request the admin has not decided yet.
pub fn withdraw(conn: &Connection, user_id: i64, id: i64, now: Timestamp) -> Result<Payout> {
    let p = get_for(conn, user_id, id)?;
    still_requested(&p)?;
    decide(conn, id, State::Withdrawn, Some(user_id), "", now)?;
    get_for(conn, user_id, id)
}

/// The admin has paid the request: debits the operator (a `payout` ledger row referring to
/// the request) and audits it. Refused when the balance no longer covers the amount.
pub fn mark_paid(
    conn: &Connection,
    actor: Actor<'_>,
    id: i64,
    digits: u32,
    now: Timestamp,
) -> Result<Payout> {
    let p = get(conn, id)?.ok_or(Error::NotFound("payout"))?;
    still_requested(&p)?;
    decide(conn, id, State::Paid, Some(actor.id), "", now)?;
    wallet::post(
        conn,
        p.user_id,
        -p.amount_minor,
        Kind::Payout,
        ("payout", Some(id)),
        &p.destination,
        now,
    )
    .map_err(|e| match e {
        Error::NoBalance => Error::Conflict(format!(
            "The operator's balance ({}) no longer covers this payout; reject it or wait.",
            wallet::balance(conn, p.user_id)
                .map(|b| Money(b).decimal(digits))
                .unwrap_or_default()
        )),
        e => e,
    })?;
    crate::domain::accounts::notifications::notify(
        conn,
        p.user_id,
        crate::domain::accounts::notifications::PAYOUT_PAID,
        "Payout paid",
        &format!(
            "Your payout #{id} of {} was paid.",
            Money(p.amount_minor).decimal(digits)
        ),
        now,
    )?;
    audit::audit(
        conn,
        Some(actor.id),
        Some(p.user_id),
        "payout_paid",
        &format!("payout {id}: {}", Money(p.amount_minor).decimal(digits)),
        actor.ip_hash,
        now,
    )?;
    get(conn, id)?.ok_or(Error::NotFound("payout"))
}

/// The admin refuses the request, saying why (cut to [`NOTE_MAX`] characters).
pub fn reject(
    conn: &Connection,
    actor: Actor<'_>,
    id: i64,
    note: &str,
    digits: u32,
    now: Timestamp,
) -> Result<Payout> {
    let p = get(conn, id)?.ok_or(Error::NotFound("payout"))?;
    still_requested(&p)?;
    let note: String = note.trim().chars().take(NOTE_MAX).collect();
    decide(conn, id, State::Rejected, Some(actor.id), &note, now)?;
    audit::audit(
        conn,
        Some(actor.id),
        Some(p.user_id),
        "payout_rejected",
        &format!(
            "payout {id}: {} {note}",
            Money(p.amount_minor).decimal(digits)
        ),
        actor.ip_hash,
        now,
    )?;
    get(conn, id)?.ok_or(Error::NotFound("payout"))
}

/// An account's requests, newest first.
pub fn list_for(conn: &Connection, user_id: i64, limit: i64) -> Result<Vec<Payout>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT} WHERE p.user_id = ?1 ORDER BY p.id DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![user_id, limit], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every request for the admin: the waiting ones first (oldest first), then the decided
/// ones (newest first).
pub fn list_all(conn: &Connection, limit: i64) -> Result<Vec<Payout>> {
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT} ORDER BY p.state = 'requested' DESC, \
         CASE WHEN p.state = 'requested' THEN p.id ELSE -p.id END LIMIT ?1"
    ))?;
    let rows = stmt.query_map([limit], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Problems for `otpbox check`: a paid payout must have exactly one `payout` ledger row of
/// its amount, and no other payout may have one.
pub fn check(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT p.id, p.state, p.amount_minor, COUNT(l.id), COALESCE(SUM(l.amount_minor), 0) \
         FROM payouts p LEFT JOIN ledger l ON l.kind = 'payout' AND l.ref_type = 'payout' \
              AND l.ref_id = p.id AND l.user_id = p.user_id \
         GROUP BY p.id \
         HAVING (p.state = 'paid' AND (COUNT(l.id) != 1 OR SUM(l.amount_minor) != -p.amount_minor)) \
             OR (p.state != 'paid' AND COUNT(l.id) > 0)",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(format!(
            "payouts: payout {} ({}, {}) has {} ledger row(s) summing to {}",
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::testing::account;
    use crate::domain::accounts::Role;

    fn world() -> (Connection, i64, i64) {
        let conn = db::memory();
        let admin = account(&conn, "root@example.com", Role::Admin);
        let op = account(&conn, "op@example.com", Role::Operator);
        wallet::post(
            &conn,
            op,
            1000,
            Kind::Earning,
            ("activation", Some(1)),
            "",
            2,
        )
        .unwrap();
        (conn, admin, op)
    }

    fn audit_actions(conn: &Connection) -> Vec<String> {
        let mut st = conn
            .prepare("SELECT action FROM audit_log ORDER BY id")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn requests_stay_within_the_balance_minus_open_requests() {
        let (conn, _, op) = world();
        assert!(matches!(
            request(&conn, op, 1001, "IBAN DE00", 2, 10),
            Err(Error::Conflict(_))
        ));
        for (amount, dest) in [(0, "x"), (-5, "x"), (10, ""), (10, "  ")] {
            assert!(matches!(
                request(&conn, op, amount, dest, 2, 10),
                Err(Error::Invalid(_))
            ));
        }
        assert!(request(&conn, op, 10, &"x".repeat(201), 2, 10).is_err());
        assert!(request(&conn, op, 10, "a\nb", 2, 10).is_err());
        let a = request(&conn, op, 600, "IBAN DE00", 2, 10).unwrap();
        assert_eq!(a.state, State::Requested);
        assert_eq!(available(&conn, op).unwrap(), 400);
        assert!(request(&conn, op, 401, "IBAN DE00", 2, 11).is_err());
        withdraw(&conn, op, a.id, 12).unwrap();
        assert_eq!(available(&conn, op).unwrap(), 1000);
        assert!(matches!(
            withdraw(&conn, op, a.id, 13),
            Err(Error::BadStatus(_))
        ));
        assert!(check(&conn).unwrap().is_empty());
    }

    #[test]
    fn paid_debits_once_and_audits() {
        let (conn, admin, op) = world();
        let me = Actor {
            id: admin,
            ip_hash: "ip",
        };
        let p = request(&conn, op, 700, "wallet 0xabc", 2, 10).unwrap();
        assert!(matches!(
            withdraw(&conn, admin, p.id, 11),
            Err(Error::NotFound(_))
        ));
        let paid = mark_paid(&conn, me, p.id, 2, 12).unwrap();
        assert_eq!(paid.state, State::Paid);
        assert_eq!(wallet::balance(&conn, op).unwrap(), 300);
        assert!(matches!(
            mark_paid(&conn, me, p.id, 2, 13),
            Err(Error::BadStatus(_))
        ));
        assert!(matches!(
            reject(&conn, me, p.id, "", 2, 13),
            Err(Error::BadStatus(_))
        ));
        assert_eq!(wallet::balance(&conn, op).unwrap(), 300);
        assert_eq!(audit_actions(&conn), ["payout_paid"]);
        assert!(check(&conn).unwrap().is_empty());
        assert!(wallet::check(&conn).unwrap().is_empty());
    }

    #[test]
    fn the_operator_is_told_when_a_payout_is_paid() {
        use crate::domain::accounts::notifications::{self as n, NewChannel};
        use crate::domain::base::crypto::Keys;
        let (conn, admin, op) = world();
        let keys = Keys::from_bytes([4; 32]);
        let channel = NewChannel {
            kind: "email",
            events: vec![n::PAYOUT_PAID],
            ..NewChannel::default()
        };
        n::create(&conn, &keys, op, Role::Operator, &channel, false, 10).unwrap();
        let p = request(&conn, op, 700, "wallet 0xabc", 2, 10).unwrap();
        let me = Actor {
            id: admin,
            ip_hash: "ip",
        };
        mark_paid(&conn, me, p.id, 2, 12).unwrap();
        let due = n::due(&conn, &keys, 12, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(
            due[0].body,
            format!("Your payout #{} of 7.00 was paid.", p.id)
        );
    }

    #[test]
    fn paying_more_than_the_balance_is_refused_and_changes_nothing() {
        let (conn, admin, op) = world();
        let me = Actor {
            id: admin,
            ip_hash: "ip",
        };
        let p = request(&conn, op, 800, "IBAN", 2, 10).unwrap();
        // The operator spends most of it meanwhile.
        wallet::post(
            &conn,
            op,
            -500,
            Kind::Charge,
            ("activation", Some(9)),
            "",
            11,
        )
        .unwrap();
        let tx = conn.unchecked_transaction().unwrap();
        assert!(matches!(
            mark_paid(&tx, me, p.id, 2, 12),
            Err(Error::Conflict(_))
        ));
        drop(tx);
        assert_eq!(get(&conn, p.id).unwrap().unwrap().state, State::Requested);
        assert!(audit_actions(&conn).is_empty());
        let r = reject(&conn, me, p.id, "balance spent", 2, 13).unwrap();
        assert_eq!(
            (r.state, r.note.as_str()),
            (State::Rejected, "balance spent")
        );
        assert_eq!(audit_actions(&conn), ["payout_rejected"]);
        assert_eq!(wallet::balance(&conn, op).unwrap(), 500);
    }

    #[test]
    fn the_admin_list_puts_waiting_requests_first() {
        let (conn, admin, op) = world();
        let me = Actor {
            id: admin,
            ip_hash: "ip",
        };
        let a = request(&conn, op, 100, "A", 2, 10).unwrap();
        let b = request(&conn, op, 100, "B", 2, 11).unwrap();
        let c = request(&conn, op, 100, "C", 2, 12).unwrap();
        mark_paid(&conn, me, b.id, 2, 13).unwrap();
        let ids: Vec<i64> = list_all(&conn, 10).unwrap().iter().map(|p| p.id).collect();
        assert_eq!(ids, [a.id, c.id, b.id]);
        assert_eq!(list_for(&conn, op, 10).unwrap()[0].id, c.id);
    }
}
