//! API keys: several per user, named, revocable, shown once, stored as keyed hashes.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::domain::accounts::{self, User};
use crate::domain::base::crypto::{random_token, Keys};
use crate::domain::{Error, Result};

/// Keys look like `otp_` + 40 hex characters.
pub const PREFIX: &str = "otp_";

#[derive(Debug, Clone, Serialize)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

/// Creates a key and returns it with its plain value (shown once).
pub fn create(
    conn: &Connection,
    keys: &Keys,
    user_id: i64,
    name: &str,
    now: Timestamp,
) -> Result<(ApiKey, String)> {
    let name = name.trim();
    let name = if name.is_empty() { "API key" } else { name };
    if name.chars().count() > 60 {
        return Err(Error::invalid(
            "The key name must be at most 60 characters.",
        ));
    }
    let live: i64 = conn.query_row(
        "SELECT COUNT(*) FROM api_keys WHERE user_id = ?1 AND revoked_at IS NULL",
        [user_id],
        |r| r.get(0),
    )?;
    if live >= 50 {
        return Err(Error::Conflict(
            "At most 50 keys per account; revoke one first.".into(),
        ));
    }
    let secret = format!("{PREFIX}{}", random_token(20));
    let shown = secret[..PREFIX.len() + 6].to_string();
    conn.execute(
        "INSERT INTO api_keys (user_id, name, key_hash, prefix, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![user_id, name, keys.token_hash(&secret), shown, now],
    )?;
    let key = ApiKey {
        id: conn.last_insert_rowid(),
        name: name.to_string(),
        prefix: shown,
        created_at: now,
        last_used_at: None,
    };
    Ok((key, secret))
}

/// The account a key belongs to, if the key is live. Records the use (at most once a minute).
pub fn authenticate(
    conn: &Connection,
    keys: &Keys,
    secret: &str,
    now: Timestamp,
) -> Result<Option<User>> {
    let secret = secret.trim();
    if secret.is_empty() || secret.len() > 100 {
        return Ok(None);
    }
    let row: Option<(i64, i64, Option<i64>)> = conn
        .prepare_cached("SELECT id, user_id, last_used_at FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL")?
        .query_row([keys.token_hash(secret)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((key_id, user_id, last_used)) = row else {
        return Ok(None);
    };
    if last_used.is_none_or(|t| now - t >= 60) {
        // A touch that fails (its commit did) is no reason to refuse the request.
        if let Err(e) = crate::db::write(conn, |tx| {
            tx.prepare_cached("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1")?
                .execute(params![key_id, now])?;
            Ok(())
        }) {
            log::warn!("API key touch failed: {e}");
        }
    }
    accounts::find(conn, user_id)
}

pub fn list(conn: &Connection, user_id: i64) -> Result<Vec<ApiKey>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, prefix, created_at, last_used_at FROM api_keys \
         WHERE user_id = ?1 AND revoked_at IS NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([user_id], |r| {
        Ok(ApiKey {
            id: r.get(0)?,
            name: r.get(1)?,
            prefix: r.get(2)?,
            created_at: r.get(3)?,
            last_used_at: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn revoke(conn: &Connection, user_id: i64, key_id: i64, now: Timestamp) -> Result<()> {
    let n = conn.execute(
        "UPDATE api_keys SET revoked_at = ?3 WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
        params![key_id, user_id, now],
    )?;
    if n != 1 {
        return Err(Error::NotFound("API key"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::{NewUser, Role};

    #[test]
    fn key_lifecycle() {
        let conn = db::memory();
        let keys = Keys::from_bytes([9; 32]);
        let u = accounts::create(
            &conn,
            &NewUser {
                email: "k@example.com",
                password_hash: None,
                role: Role::User,
                verified: true,
                age_confirmed: true,
                aup_accepted: true,
            },
            1,
        )
        .unwrap();
        let (key, secret) = create(&conn, &keys, u.id, "bot", 10).unwrap();
        assert!(secret.starts_with("otp_") && secret.len() == 44);
        assert_eq!(
            authenticate(&conn, &keys, &secret, 11).unwrap().unwrap().id,
            u.id
        );
        assert!(authenticate(&conn, &keys, "otp_nope", 11)
            .unwrap()
            .is_none());
        revoke(&conn, u.id, key.id, 12).unwrap();
        assert!(authenticate(&conn, &keys, &secret, 13).unwrap().is_none());
        assert!(revoke(&conn, u.id, key.id, 14).is_err());
    }
}
