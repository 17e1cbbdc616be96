//! Money going back from a paid top-up: a refund or a dispute the gateway reports. What was
//! reversed is kept on the payment (`reversed_minor`), so each notice takes back only what no
//! earlier one took, never more than was credited; a replay changes nothing.

use rusqlite::{params, Connection, OptionalExtension};

use super::{row, Status, COLS};
use crate::clock::Timestamp;
use crate::domain::market::wallet::{self, Kind as LedgerKind};
use crate::domain::Result;

/// Why money went back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReversalKind {
    Refund,
    Dispute,
}

/// The gateway took money back from a paid top-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reversal {
    pub gateway: String,
    /// The id the notice names: Stripe's payment intent (matched against `gateway_charge`)
    /// or a checkout id (matched against `gateway_ref`).
    pub reference: String,
    /// How much of the payment has gone back in all, as the gateway says (a refund's
    /// `amount_refunded` grows with each partial refund), in minor units.
    pub amount_minor: i64,
    pub kind: ReversalKind,
    /// The gateway's id of the refund or dispute (for the chargeback record).
    pub notice_ref: String,
}

/// What [`reverse`] took back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reversed {
    pub payment_id: i64,
    pub user_id: i64,
    /// Newly reversed by this notice.
    pub amount_minor: i64,
    /// Of that, what the balance covered and was debited (the rest was already spent).
    pub debited_minor: i64,
    /// The ledger row of the debit, if there was one.
    pub ledger_id: Option<i64>,
}

/// Takes back what a refund or dispute reversed, never more than was credited, and only
/// what no earlier notice already took (so a replay changes nothing). The balance is
/// debited as far as it goes (an `adjustment` row about the payment); what was already spent
/// is left for the admin (the caller records the chargeback and raises its flag).
pub fn reverse(conn: &Connection, r: &Reversal, now: Timestamp) -> Result<Option<Reversed>> {
    let p = conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM payments WHERE gateway = ?1 AND (gateway_charge = ?2 OR gateway_ref = ?2)"
        ))?
        .query_row(params![r.gateway, r.reference], row)
        .optional()?;
    let Some(p) = p else { return Ok(None) };
    if p.paid_at.is_none() {
        return Ok(None);
    }
    let target = p.credited_minor.min(p.reversed_minor.max(r.amount_minor));
    let amount = target - p.reversed_minor;
    if amount <= 0 {
        return Ok(None);
    }
    let status = match r.kind {
        ReversalKind::Refund => Status::Refunded,
        ReversalKind::Dispute => Status::Disputed,
    };
    let moved = conn
        .prepare_cached(
            "UPDATE payments SET reversed_minor = ?2, status = ?3, updated_at = ?4 \
             WHERE id = ?1 AND reversed_minor = ?5",
        )?
        .execute(params![
            p.id,
            target,
            status.as_str(),
            now,
            p.reversed_minor
        ])?;
    if moved == 0 {
        return Ok(None);
    }
    let balance = wallet::balance(conn, p.user_id)?;
    let debited = amount.min(balance.max(0));
    let ledger_id = if debited > 0 {
        let word = match r.kind {
            ReversalKind::Refund => "refunded",
            ReversalKind::Dispute => "disputed",
        };
        wallet::post(
            conn,
            p.user_id,
            -debited,
            LedgerKind::Adjustment,
            ("payment", Some(p.id)),
            &format!("top-up {word} at {} ({})", p.gateway, r.notice_ref),
            now,
        )?;
        Some(conn.last_insert_rowid())
    } else {
        None
    };
    Ok(Some(Reversed {
        payment_id: p.id,
        user_id: p.user_id,
        amount_minor: amount,
        debited_minor: debited,
        ledger_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;
    use crate::db;
    use crate::domain::accounts::testing::account;
    use crate::domain::accounts::Role;

    #[test]
    fn a_reversal_takes_back_at_most_the_credit_once() {
        let conn = db::memory();
        let u = account(&conn, "r@example.com", Role::User);
        let p = begin(&conn, u, "stripe", 1000, "USD", 10).unwrap();
        opened(&conn, p.id, "cs_1", "https://checkout.example/cs_1", 11).unwrap();
        let paid = Confirmed {
            gateway: "stripe".into(),
            gateway_ref: "cs_1".into(),
            payment_id: Some(p.id),
            amount_minor: 1000,
            currency: "usd".into(),
            charge_ref: Some("pi_1".into()),
        };
        credit(&conn, &paid, 20).unwrap();
        wallet::post(
            &conn,
            u,
            -700,
            LedgerKind::Charge,
            ("activation", Some(1)),
            "",
            21,
        )
        .unwrap();
        let r = Reversal {
            gateway: "stripe".into(),
            reference: "pi_1".into(),
            amount_minor: 400,
            kind: ReversalKind::Refund,
            notice_ref: "ch_1".into(),
        };
        let done = reverse(&conn, &r, 30).unwrap().unwrap();
        assert_eq!((done.amount_minor, done.debited_minor), (400, 300));
        assert_eq!(wallet::balance(&conn, u).unwrap(), 0);
        assert_eq!(
            reverse(&conn, &r, 31).unwrap(),
            None,
            "a replay changes nothing"
        );
        let more = Reversal {
            amount_minor: 5000,
            kind: ReversalKind::Dispute,
            ..r.clone()
        };
        let done = reverse(&conn, &more, 32).unwrap().unwrap();
        assert_eq!((done.amount_minor, done.debited_minor), (600, 0));
        let p = get(&conn, p.id).unwrap();
        assert_eq!((p.status, p.reversed_minor), (Status::Disputed, 1000));
        assert!(wallet::check(&conn).unwrap().is_empty());
    }
}
