//! Single-use, expiring tokens behind e-mailed links (e-mail verification, password reset,
//! first-admin setup, e-mail change). Only a keyed hash of each token is stored.

use rusqlite::{params, Connection, OptionalExtension};

use crate::clock::Timestamp;
use crate::domain::base::crypto::{random_token, Keys};
use crate::domain::{Error, Result};

pub const VERIFY_EMAIL: &str = "verify_email";
pub const RESET_PASSWORD: &str = "reset_password";
pub const ADMIN_SETUP: &str = "admin_setup";
/// Confirms a new e-mail address; `data` holds the address.
pub const CHANGE_EMAIL: &str = "change_email";

/// Creates a token and returns its plain value (to put in a link, never stored).
pub fn issue(
    conn: &Connection,
    keys: &Keys,
    purpose: &str,
    user_id: Option<i64>,
    data: &str,
    ttl: u64,
    now: Timestamp,
) -> Result<String> {
    let token = random_token(24);
    conn.execute(
        "INSERT INTO tokens (purpose, user_id, token_hash, data, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            purpose,
            user_id,
            keys.token_hash(&token),
            data,
            now,
            now + ttl as i64
        ],
    )?;
    Ok(token)
}

/// What a consumed token was issued for.
#[derive(Debug, PartialEq, Eq)]
pub struct Redeemed {
    pub user_id: Option<i64>,
    pub data: String,
}

/// Marks the token used and returns what it was for. Fails when unknown, of another purpose,
/// expired or already used; a token is good exactly once.
pub fn consume(
    conn: &Connection,
    keys: &Keys,
    purpose: &str,
    token: &str,
    now: Timestamp,
) -> Result<Redeemed> {
    let found = peek(conn, keys, purpose, token, now)?;
    let changed = conn.execute(
        "UPDATE tokens SET used_at = ?2 WHERE token_hash = ?1 AND used_at IS NULL",
        params![keys.token_hash(token), now],
    )?;
    if changed != 1 {
        return Err(Error::invalid("This link has already been used."));
    }
    Ok(found)
}

/// Checks a token without using it up (to show a form before the final POST).
pub fn peek(
    conn: &Connection,
    keys: &Keys,
    purpose: &str,
    token: &str,
    now: Timestamp,
) -> Result<Redeemed> {
    type Row = (String, Option<i64>, String, i64, Option<i64>);
    let row: Option<Row> = conn
        .query_row(
            "SELECT purpose, user_id, data, expires_at, used_at FROM tokens WHERE token_hash = ?1",
            [keys.token_hash(token)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    match row {
        Some((p, user_id, data, expires_at, None)) if p == purpose && expires_at > now => {
            Ok(Redeemed { user_id, data })
        }
        Some((p, _, _, _, Some(_))) if p == purpose => {
            Err(Error::invalid("This link has already been used."))
        }
        Some((p, _, _, _, _)) if p == purpose => {
            Err(Error::invalid("This link has expired. Ask for a new one."))
        }
        _ => Err(Error::invalid("This link is not valid.")),
    }
}

/// How many tokens of a purpose were issued to a user after `since` (to cap reset mails).
pub fn issued_since(
    conn: &Connection,
    user_id: i64,
    purpose: &str,
    since: Timestamp,
) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM tokens WHERE user_id = ?1 AND purpose = ?2 AND created_at > ?3",
        params![user_id, purpose, since],
        |r| r.get(0),
    )?)
}

/// Voids every unused token of a purpose for a user (e.g. older reset links after a reset).
pub fn revoke_all(conn: &Connection, user_id: i64, purpose: &str, now: Timestamp) -> Result<()> {
    conn.execute(
        "UPDATE tokens SET used_at = ?3 WHERE user_id = ?1 AND purpose = ?2 AND used_at IS NULL",
        params![user_id, purpose, now],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    #[test]
    fn a_token_works_once() {
        let conn = db::memory();
        let keys = Keys::from_bytes([7; 32]);
        let t = issue(&conn, &keys, VERIFY_EMAIL, None, "d", 60, 100).unwrap();
        let r = consume(&conn, &keys, VERIFY_EMAIL, &t, 110).unwrap();
        assert_eq!(r.data, "d");
        assert!(consume(&conn, &keys, VERIFY_EMAIL, &t, 111).is_err());
    }

    #[test]
    fn expired_or_misused_tokens_fail() {
        let conn = db::memory();
        let keys = Keys::from_bytes([7; 32]);
        let t = issue(&conn, &keys, RESET_PASSWORD, None, "", 60, 100).unwrap();
        assert!(consume(&conn, &keys, VERIFY_EMAIL, &t, 101).is_err());
        assert!(consume(&conn, &keys, RESET_PASSWORD, &t, 161).is_err());
        assert!(consume(&conn, &keys, RESET_PASSWORD, "nonsense", 101).is_err());
        let other_keys = Keys::from_bytes([8; 32]);
        let t2 = issue(&conn, &keys, RESET_PASSWORD, None, "", 60, 100).unwrap();
        assert!(consume(&conn, &other_keys, RESET_PASSWORD, &t2, 101).is_err());
    }
}
