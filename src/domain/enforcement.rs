//! Closing an account's access and money in one transaction: what termination does (and what
//! account deletion needs too). Live orders are ended first — refunded when no code came, the
//! way a cancel or expiry would — so that the forfeit that follows is exactly the balance left
//! after those refunds; then every way in is shut: sessions, API keys, webhooks (with their
//! pending deliveries) and the operator's devices.

use rusqlite::{params, Connection};

use super::activations::{self, CancelReason, Policy, Status};
use super::rentals;
use super::wallet::{self, Kind};
use super::{devices, sessions, webhooks, Error, Result};
use crate::clock::Timestamp;

/// What closing an account did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Closed {
    /// Live activations and rentals ended.
    pub orders_ended: usize,
    /// Refunded by ending them.
    pub refunded_minor: i64,
    /// The balance left afterwards, now forfeited (one `forfeit` ledger row when above zero).
    pub forfeited_minor: i64,
    pub keys_revoked: usize,
    pub sessions_revoked: usize,
    pub webhooks_removed: usize,
    pub devices_revoked: usize,
}

/// Ends the account's live orders, forfeits the rest of its balance with the ledger note
/// `note`, and revokes every session, API key, webhook and device. Runs in the caller's
/// transaction; the account's state is the caller's business.
pub fn close_account(
    conn: &Connection,
    user_id: i64,
    policy: &Policy,
    note: &str,
    now: Timestamp,
) -> Result<Closed> {
    let mut closed = Closed::default();
    let before = wallet::balance(conn, user_id)?;
    end_orders(conn, user_id, policy, now, &mut closed)?;
    let left = wallet::balance(conn, user_id)?;
    closed.refunded_minor = left - before;
    if left > 0 {
        wallet::post(
            conn,
            user_id,
            -left,
            Kind::Forfeit,
            ("account", Some(user_id)),
            note,
            now,
        )?;
    }
    closed.forfeited_minor = left.max(0);
    closed.sessions_revoked = sessions::revoke_all_for_user(conn, user_id, None)?;
    closed.keys_revoked = conn.execute(
        "UPDATE api_keys SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
        params![user_id, now],
    )?;
    // Deliveries not yet sent (a rental's own URL has no webhook row) are given up.
    conn.execute(
        "UPDATE webhook_deliveries SET state = 'failed', payload = NULL, finished_at = ?2, \
         last_error = 'account closed' WHERE user_id = ?1 AND state = 'pending'",
        params![user_id, now],
    )?;
    let hooks: Vec<i64> = {
        let mut stmt = conn.prepare("SELECT id FROM webhooks WHERE user_id = ?1")?;
        let rows = stmt.query_map([user_id], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for id in &hooks {
        webhooks::delete(conn, user_id, *id)?;
    }
    closed.webhooks_removed = hooks.len();
    for device in devices::list_for(conn, user_id)? {
        devices::revoke(conn, &device, now)?;
        closed.devices_revoked += 1;
    }
    // An operator's numbers outside any device leave the stock too.
    conn.execute(
        "UPDATE numbers SET on_sale = 0 WHERE owner_id = ?1",
        [user_id],
    )?;
    Ok(closed)
}

/// Ends every live activation and rental: without a code (or SMS, within the rental's cancel
/// window) it is cancelled and refunded, otherwise it is completed (finished) as it stands.
fn end_orders(
    conn: &Connection,
    user_id: i64,
    policy: &Policy,
    now: Timestamp,
    closed: &mut Closed,
) -> Result<()> {
    // The early-cancel window protects the number's supplier from a customer who changes
    // their mind at once; it does not bind the admin.
    let any_time = Policy {
        early_cancel: 0,
        ..policy.clone()
    };
    let live = activations::list(
        conn,
        user_id,
        &[Status::Waiting, Status::Received, Status::Retry],
        i64::MAX,
        0,
    )?;
    for a in live {
        if a.code_at.is_none() && a.status == Status::Waiting {
            activations::cancel(conn, user_id, a.id, CancelReason::Cancel, &any_time, now)?;
        } else {
            activations::complete(conn, user_id, a.id, now)?;
        }
        closed.orders_ended += 1;
    }
    for r in rentals::list(conn, user_id, true, i64::MAX)? {
        match rentals::cancel(conn, user_id, r.id, now) {
            Ok(_) => {}
            Err(Error::BadStatus(_)) => {
                rentals::finish(conn, user_id, r.id, now)?;
            }
            Err(e) => return Err(e),
        }
        closed.orders_ended += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::{self, NewUser, Role};
    use crate::domain::activations::{OrderRequest, Placed};
    use crate::domain::crypto::Keys;
    use crate::domain::{apikeys, catalogue};

    const POLICY: Policy = Policy {
        early_cancel: 120,
        default_ttl: 1200,
        max_live: 5,
        cooldown: 0,
        sim_delay: 5,
    };

    #[test]
    fn live_orders_are_refunded_before_the_rest_is_forfeited() {
        let conn = db::memory();
        catalogue::seed_if_empty(&conn).unwrap();
        let keys = Keys::from_bytes([1; 32]);
        let u = accounts::create(
            &conn,
            &NewUser {
                email: "x@example.com",
                password_hash: None,
                role: Role::User,
                verified: true,
                age_confirmed: true,
                aup_accepted: true,
            },
            1,
        )
        .unwrap();
        wallet::post(&conn, u.id, 1000, Kind::Adjustment, ("", None), "", 1).unwrap();
        conn.execute(
            "INSERT INTO numbers (phone, country_id, source, created_at) VALUES ('6280001', 6, 'manual', 1)",
            [],
        )
        .unwrap();
        let user = accounts::get(&conn, u.id).unwrap();
        let req = OrderRequest {
            country: 6,
            service: "tg".into(),
            ..OrderRequest::default()
        };
        let Placed::New(a) = activations::order(&conn, &user, &req, &POLICY, 10).unwrap() else {
            panic!("a new order")
        };
        apikeys::create(&conn, &keys, u.id, "bot", 10).unwrap();
        // Inside the early-cancel window: closing refunds all the same.
        let closed = close_account(&conn, u.id, &POLICY, "terminated", 20).unwrap();
        assert_eq!(closed.orders_ended, 1);
        assert_eq!(closed.refunded_minor, a.price_minor);
        assert_eq!(closed.forfeited_minor, 1000);
        assert_eq!(closed.keys_revoked, 1);
        assert_eq!(wallet::balance(&conn, u.id).unwrap(), 0);
        assert_eq!(
            activations::get(&conn, a.id).unwrap().unwrap().status,
            Status::Canceled
        );
        assert!(wallet::check(&conn).unwrap().is_empty());
        // Closing again finds nothing left to take.
        let again = close_account(&conn, u.id, &POLICY, "terminated", 30).unwrap();
        assert_eq!(again, Closed::default());
    }
}
