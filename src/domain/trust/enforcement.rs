//! Closing an account's access and money in one transaction, for termination. The order
//! closing and the revocations are the account deletion's own ([`lifecycle::close_orders`],
//! [`lifecycle::revoke_access`]), so both ways out of the service end orders, refund and cut
//! access alike: live orders are ended first — refunded when no code came — so that the
//! forfeit that follows is exactly the balance left after those refunds.

use rusqlite::Connection;

use crate::clock::Timestamp;
use crate::domain::market::activations::Policy;
use crate::domain::market::wallet::{self, Kind};
use crate::domain::trust::lifecycle;
use crate::domain::Result;

/// What closing an account did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Closed {
    /// Live activations and rentals ended.
    pub orders_ended: usize,
    /// Refunded by ending them.
    pub refunded_minor: i64,
    /// The balance left afterwards, now forfeited (one `forfeit` ledger row when above zero).
    pub forfeited_minor: i64,
}

/// Ends the account's live orders, forfeits the rest of its balance with the ledger note
/// `note`, and revokes every session, API key, webhook, device and mailed link. Runs in the
/// caller's transaction; the account's state is the caller's business.
pub fn close_account(
    conn: &Connection,
    user_id: i64,
    policy: &Policy,
    note: &str,
    now: Timestamp,
) -> Result<Closed> {
    let ended = lifecycle::close_orders(conn, user_id, policy.operator_share, now)?;
    let left = wallet::balance(conn, user_id)?;
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
    lifecycle::revoke_access(conn, user_id, now)?;
    // An operator's numbers outside any device leave the stock too.
    conn.execute(
        "UPDATE numbers SET on_sale = 0 WHERE owner_id = ?1",
        [user_id],
    )?;
    Ok(Closed {
        orders_ended: ended.activations_refunded.len()
            + ended.activations_completed.len()
            + ended.rentals_refunded.len()
            + ended.rentals_finished.len(),
        refunded_minor: ended.refunded_minor,
        forfeited_minor: left.max(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::{self, NewUser, Role};
    use crate::domain::base::crypto::Keys;
    use crate::domain::market::activations::{self, Status};
    use crate::domain::market::activations::{OrderRequest, Placed};
    use crate::domain::{accounts::apikeys, market::catalogue};

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
        assert_eq!(wallet::balance(&conn, u.id).unwrap(), 0);
        assert_eq!(
            activations::get(&conn, a.id).unwrap().unwrap().status,
            Status::Canceled
        );
        assert!(wallet::check(&conn).unwrap().is_empty());
        let live_keys: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM api_keys WHERE user_id = ?1 AND revoked_at IS NULL",
                [u.id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(live_keys, 0);
        // Closing again finds nothing left to take.
        let again = close_account(&conn, u.id, &POLICY, "terminated", 30).unwrap();
        assert_eq!(again, Closed::default());
    }
}
