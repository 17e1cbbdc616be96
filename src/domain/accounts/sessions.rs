//! Server-side sessions behind the `__session` cookie.
//!
//! The cookie holds an opaque random token; the table holds only its keyed hash, so sessions
//! can be listed and revoked. Anonymous sessions (no user) exist only to carry the CSRF token
//! of the sign-up and login forms. Each session has an idle and an absolute expiry; login
//! always starts a new session.
//!
//! Between the password and the second factor, the visitor holds an anonymous session that
//! names the account it waits for ([`create_pending`]): short-lived, with a bounded number of
//! tries, and never signed in, so no guard can mistake it for a login.

use rusqlite::{params, Connection, OptionalExtension};

use crate::clock::Timestamp;
use crate::domain::base::crypto::{hex, random_token, Keys};
use crate::domain::Result;

/// Anonymous sessions live one day at most.
const ANONYMOUS_MAX: u64 = 86_400;
/// `last_seen_at` is written at most this often per session, to keep reads read-only.
const TOUCH_EVERY: i64 = 60;

#[derive(Debug, Clone)]
pub struct Session {
    pub id: i64,
    pub user_id: Option<i64>,
    /// The CSRF token forms of this session must carry.
    pub csrf: String,
}

pub struct Limits {
    pub idle: u64,
    pub max: u64,
}

/// Creates a session and returns the cookie value.
pub fn create(
    conn: &Connection,
    keys: &Keys,
    user_id: Option<i64>,
    limits: &Limits,
    ip_hash: &str,
    user_agent: &str,
    now: Timestamp,
) -> Result<String> {
    let token = random_token(32);
    let max = if user_id.is_some() {
        limits.max
    } else {
        ANONYMOUS_MAX.min(limits.max)
    };
    let ua: String = user_agent.chars().take(200).collect();
    conn.prepare_cached(
        "INSERT INTO sessions (token_hash, user_id, created_at, last_seen_at, expires_at, \
         ip_hash, user_agent) VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        keys.token_hash(&token),
        user_id,
        now,
        now + max as i64,
        ip_hash,
        ua
    ])?;
    Ok(token)
}

/// An anonymous session waiting for the second factor of `user_id` until `until`.
#[allow(clippy::too_many_arguments)]
pub fn create_pending(
    conn: &Connection,
    keys: &Keys,
    user_id: i64,
    until: Timestamp,
    limits: &Limits,
    ip_hash: &str,
    user_agent: &str,
    now: Timestamp,
) -> Result<String> {
    let token = create(conn, keys, None, limits, ip_hash, user_agent, now)?;
    conn.prepare_cached(
        "UPDATE sessions SET pending_user_id = ?2, pending_until = ?3 WHERE token_hash = ?1",
    )?
    .execute(params![keys.token_hash(&token), user_id, until])?;
    Ok(token)
}

/// The account a session waits for and the wrong codes tried so far, while the wait lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub user_id: i64,
    pub attempts: u32,
}

pub fn pending(conn: &Connection, session_id: i64, now: Timestamp) -> Result<Option<Pending>> {
    Ok(conn
        .prepare_cached(
            "SELECT pending_user_id, pending_attempts FROM sessions \
             WHERE id = ?1 AND user_id IS NULL AND pending_user_id IS NOT NULL \
             AND pending_until > ?2",
        )?
        .query_row(params![session_id, now], |r| {
            Ok(Pending {
                user_id: r.get(0)?,
                attempts: r.get(1)?,
            })
        })
        .optional()?)
}

/// Counts a wrong code against the waiting session; returns the count.
pub fn pending_failed(conn: &Connection, session_id: i64) -> Result<u32> {
    Ok(conn
        .prepare_cached(
            "UPDATE sessions SET pending_attempts = pending_attempts + 1 WHERE id = ?1 \
             RETURNING pending_attempts",
        )?
        .query_row([session_id], |r| r.get(0))
        .optional()?
        .unwrap_or(u32::MAX))
}

pub fn csrf_for(keys: &Keys, token: &str) -> String {
    hex(&keys.mac(b"csrf", &keys.token_hash(token))[..16])
}

/// Finds the live session for a cookie value, refreshing its idle timer.
pub fn lookup(
    conn: &Connection,
    keys: &Keys,
    token: &str,
    limits: &Limits,
    now: Timestamp,
) -> Result<Option<Session>> {
    if token.len() != 64 {
        return Ok(None);
    }
    let hash = keys.token_hash(token);
    let row: Option<(i64, Option<i64>, i64, i64)> = conn
        .prepare_cached(
            "SELECT id, user_id, last_seen_at, expires_at FROM sessions WHERE token_hash = ?1",
        )?
        .query_row([&hash], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((id, user_id, last_seen, expires_at)) = row else {
        return Ok(None);
    };
    // Through `db::write`, like every write: on a server's shared connection, never a write
    // of this reader's own that would wait for the lock by sleeping.
    if now >= expires_at || now - last_seen >= limits.idle as i64 {
        crate::db::write(conn, |tx| revoke(tx, id))?;
        return Ok(None);
    }
    if now - last_seen >= TOUCH_EVERY {
        // A touch that fails (its commit did) costs an idle minute, not the request.
        if let Err(e) = crate::db::write(conn, |tx| {
            tx.prepare_cached("UPDATE sessions SET last_seen_at = ?2 WHERE id = ?1")?
                .execute(params![id, now])?;
            Ok(())
        }) {
            log::warn!("session touch failed: {e}");
        }
    }
    Ok(Some(Session {
        id,
        user_id,
        csrf: csrf_for(keys, token),
    }))
}

/// Whether session `session_id` is still a live sign-in of `user_id` (not ended, expired or
/// idle), read-only: for a request that waits and must stop serving a session ended meanwhile.
pub fn still_signed_in(
    conn: &Connection,
    session_id: i64,
    user_id: i64,
    limits: &Limits,
    now: Timestamp,
) -> Result<bool> {
    let row: Option<(Option<i64>, i64, i64)> = conn
        .prepare_cached("SELECT user_id, last_seen_at, expires_at FROM sessions WHERE id = ?1")?
        .query_row([session_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    Ok(matches!(row, Some((Some(u), seen, exp))
        if u == user_id && now < exp && now - seen < limits.idle as i64))
}

pub fn revoke(conn: &Connection, session_id: i64) -> Result<()> {
    conn.execute("DELETE FROM sessions WHERE id = ?1", [session_id])?;
    Ok(())
}

/// Ends every session of a user, except optionally one (the one changing the password).
pub fn revoke_all_for_user(conn: &Connection, user_id: i64, except: Option<i64>) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM sessions WHERE user_id = ?1 AND id IS NOT ?2",
        params![user_id, except],
    )?)
}

/// Deletes expired sessions (scheduled job); returns how many.
pub fn purge_expired(conn: &Connection, idle: u64, now: Timestamp) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM sessions WHERE expires_at <= ?1 OR last_seen_at <= ?2",
        params![now, now - idle as i64],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    const LIMITS: Limits = Limits {
        idle: 600,
        max: 3600,
    };

    #[test]
    fn session_round_trip_and_revoke() {
        let conn = db::memory();
        let keys = Keys::from_bytes([3; 32]);
        let t = create(&conn, &keys, None, &LIMITS, "", "ua", 1000).unwrap();
        let s = lookup(&conn, &keys, &t, &LIMITS, 1001).unwrap().unwrap();
        assert_eq!(s.user_id, None);
        assert_eq!(s.csrf, csrf_for(&keys, &t));
        revoke(&conn, s.id).unwrap();
        assert!(lookup(&conn, &keys, &t, &LIMITS, 1002).unwrap().is_none());
    }

    #[test]
    fn idle_and_absolute_expiry() {
        let conn = db::memory();
        let keys = Keys::from_bytes([3; 32]);
        let t = create(&conn, &keys, None, &LIMITS, "", "", 1000).unwrap();
        // Used every 500 s: the idle limit (600 s) never bites, the absolute one (3600 s) does.
        for now in (1500..4600).step_by(500) {
            assert!(
                lookup(&conn, &keys, &t, &LIMITS, now).unwrap().is_some(),
                "{now}"
            );
        }
        assert!(lookup(&conn, &keys, &t, &LIMITS, 4600).unwrap().is_none());
        // Unused for the idle limit: gone.
        let t2 = create(&conn, &keys, None, &LIMITS, "", "", 1000).unwrap();
        assert!(lookup(&conn, &keys, &t2, &LIMITS, 1600).unwrap().is_none());
    }

    #[test]
    fn a_pending_session_is_anonymous_and_expires() {
        let conn = db::memory();
        let keys = Keys::from_bytes([3; 32]);
        conn.execute(
            "INSERT INTO users (id, email, created_at) VALUES (7, 'a@example.com', 1)",
            [],
        )
        .unwrap();
        let t = create_pending(&conn, &keys, 7, 1300, &LIMITS, "", "", 1000).unwrap();
        let s = lookup(&conn, &keys, &t, &LIMITS, 1001).unwrap().unwrap();
        assert_eq!(s.user_id, None, "not signed in");
        assert_eq!(
            pending(&conn, s.id, 1001).unwrap(),
            Some(Pending {
                user_id: 7,
                attempts: 0
            })
        );
        assert_eq!(pending_failed(&conn, s.id).unwrap(), 1);
        assert_eq!(pending_failed(&conn, s.id).unwrap(), 2);
        assert_eq!(pending(&conn, s.id, 1299).unwrap().unwrap().attempts, 2);
        assert_eq!(pending(&conn, s.id, 1300).unwrap(), None);
        let plain = create(&conn, &keys, None, &LIMITS, "", "", 1000).unwrap();
        let p = lookup(&conn, &keys, &plain, &LIMITS, 1001)
            .unwrap()
            .unwrap();
        assert_eq!(pending(&conn, p.id, 1001).unwrap(), None);
    }

    #[test]
    fn garbage_cookie_finds_nothing() {
        let conn = db::memory();
        let keys = Keys::from_bytes([3; 32]);
        assert!(lookup(&conn, &keys, "abc", &LIMITS, 1).unwrap().is_none());
        assert!(lookup(&conn, &keys, &"a".repeat(64), &LIMITS, 1)
            .unwrap()
            .is_none());
    }
}
