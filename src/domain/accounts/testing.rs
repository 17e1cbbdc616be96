//! Helpers for the domain's unit tests.

use rusqlite::Connection;

use crate::clock::Timestamp;
use crate::domain::accounts::{self, NewUser, Role};

/// A verified, active account (age and policy confirmed) created at time 1; its id.
pub fn account(conn: &Connection, email: &str, role: Role) -> i64 {
    account_at(conn, email, role, 1)
}

/// A verified, active account (age and policy confirmed) created at `now`; its id.
pub fn account_at(conn: &Connection, email: &str, role: Role, now: Timestamp) -> i64 {
    accounts::create(
        conn,
        &NewUser {
            email,
            password_hash: None,
            role,
            verified: true,
            age_confirmed: true,
            aup_accepted: true,
        },
        now,
    )
    .unwrap()
    .id
}
