//! External identities (OpenID Connect) linked to accounts, and the sign-ins in flight. Owns
//! the `identities` and `oidc_flows` tables.
//!
//! An identity is the pair (issuer, subject) a provider vouches for; it belongs to one
//! account at most. An account keeps a way in: an identity is unlinked only while the
//! account has a password or another identity.
//!
//! A flow is bound to the browser session that started it and is taken once by its `state`
//! (stored as a keyed hash): an answer in another browser, or the same answer twice, finds
//! nothing. The PKCE verifier and the nonce are derived from the row's salt and the install
//! key, never stored. A verified answer that still needs the person (confirming a new
//! account, or proving the password of an existing one with the same address) waits in a
//! `verified` row of the same session for a short time.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::clock::Timestamp;
use crate::domain::accounts::User;
use crate::domain::base::crypto::{hex, random_token, Keys};
use crate::domain::{Error, Result};

/// How long the provider may take to send the browser back (seconds).
const FLOW_TTL: i64 = 600;
/// How long a verified answer waits for the sign-up confirmation or the password.
const VERIFIED_TTL: i64 = 900;

/// Security-log kinds written for identities.
pub const IDENTITY_LINKED: &str = "identity_linked";
pub const IDENTITY_UNLINKED: &str = "identity_unlinked";

/// What a flow was started for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Signing in (or signing up) from the login page.
    Login,
    /// Linking an identity to the signed-in account, from the settings.
    Link,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Login => "login",
            Purpose::Link => "link",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: i64,
    pub user_id: i64,
    /// The configured provider's name at link time.
    pub provider: String,
    pub issuer: String,
    pub subject: String,
    pub email: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

const COLUMNS: &str = "id, user_id, provider, issuer, subject, email, created_at, last_used_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Identity> {
    Ok(Identity {
        id: r.get(0)?,
        user_id: r.get(1)?,
        provider: r.get(2)?,
        issuer: r.get(3)?,
        subject: r.get(4)?,
        email: r.get(5)?,
        created_at: r.get(6)?,
        last_used_at: r.get(7)?,
    })
}

/// The identity a provider's subject is, if linked.
pub fn find(conn: &Connection, issuer: &str, subject: &str) -> Result<Option<Identity>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM identities WHERE issuer = ?1 AND subject = ?2"
        ))?
        .query_row(params![issuer, subject], from_row)
        .optional()?)
}

/// The account's identities, oldest first.
pub fn list_for(conn: &Connection, user_id: i64) -> Result<Vec<Identity>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM identities WHERE user_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([user_id], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// What a provider vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vouched {
    pub provider: String,
    pub issuer: String,
    pub subject: String,
    pub email: String,
}

/// Links a vouched identity to an account. Refused when it is linked already (to this
/// account or another) or the account has an identity of the same issuer.
pub fn link(conn: &Connection, user_id: i64, v: &Vouched, now: Timestamp) -> Result<Identity> {
    if let Some(existing) = find(conn, &v.issuer, &v.subject)? {
        return Err(Error::Conflict(if existing.user_id == user_id {
            "This sign-in is already linked to your account.".into()
        } else {
            "This sign-in is linked to another account.".into()
        }));
    }
    if list_for(conn, user_id)?
        .iter()
        .any(|i| i.issuer == v.issuer)
    {
        return Err(Error::Conflict(
            "Your account already has a sign-in with this provider; unlink it first.".into(),
        ));
    }
    conn.prepare_cached(
        "INSERT INTO identities (user_id, provider, issuer, subject, email, created_at, \
         last_used_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?
    .execute(params![
        user_id, v.provider, v.issuer, v.subject, v.email, now
    ])?;
    find(conn, &v.issuer, &v.subject)?.ok_or(Error::NotFound("identity"))
}

/// Records a sign-in with the identity (and the address the provider gave this time).
pub fn used(conn: &Connection, id: i64, email: &str, now: Timestamp) -> Result<()> {
    conn.prepare_cached("UPDATE identities SET last_used_at = ?2, email = ?3 WHERE id = ?1")?
        .execute(params![id, now, email])?;
    Ok(())
}

/// Unlinks one of the account's identities, when a way in remains (a password or another
/// identity). Returns what was unlinked.
pub fn unlink(conn: &Connection, user: &User, id: i64) -> Result<Identity> {
    let all = list_for(conn, user.id)?;
    let Some(gone) = all.iter().find(|i| i.id == id).cloned() else {
        return Err(Error::NotFound("identity"));
    };
    if user.password_hash.is_none() && all.len() == 1 {
        return Err(Error::Conflict(
            "This is your only way to sign in: set a password or link another provider first."
                .into(),
        ));
    }
    conn.execute("DELETE FROM identities WHERE id = ?1", [id])?;
    Ok(gone)
}

/// A flow just started: what goes into the authorization URL.
#[derive(Debug, Clone)]
pub struct Started {
    pub state: String,
    pub nonce: String,
    /// The PKCE verifier (the URL carries its challenge).
    pub verifier: String,
}

fn verifier(keys: &Keys, salt: &str) -> String {
    hex(&keys.mac(b"oidc-verifier", salt.as_bytes()))
}

fn nonce(keys: &Keys, salt: &str) -> String {
    hex(&keys.mac(b"oidc-nonce", salt.as_bytes())[..16])
}

/// Starts a sign-in (or, with the account, a link) bound to the browser's session.
#[allow(clippy::too_many_arguments)]
pub fn start(
    conn: &Connection,
    keys: &Keys,
    session_id: i64,
    provider: &str,
    purpose: Purpose,
    user_id: Option<i64>,
    next: &str,
    now: Timestamp,
) -> Result<Started> {
    let state = random_token(32);
    let salt = random_token(16);
    conn.prepare_cached(
        "INSERT INTO oidc_flows (state_hash, session_id, provider, salt, purpose, user_id, next, \
         created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        keys.token_hash(&state),
        session_id,
        provider,
        salt,
        purpose.as_str(),
        user_id,
        next,
        now,
        now + FLOW_TTL
    ])?;
    Ok(Started {
        state,
        nonce: nonce(keys, &salt),
        verifier: verifier(keys, &salt),
    })
}

/// A started flow, taken by its state.
#[derive(Debug, Clone)]
pub struct Flow {
    pub provider: String,
    pub purpose: Purpose,
    pub user_id: Option<i64>,
    pub next: String,
    pub nonce: String,
    pub verifier: String,
}

/// Takes (deletes) the live flow that `session_id` started with `state`; `None` when there
/// is none: another browser's, already used, expired or made up.
pub fn take(
    conn: &Connection,
    keys: &Keys,
    session_id: i64,
    state: &str,
    now: Timestamp,
) -> Result<Option<Flow>> {
    let row: Option<(String, String, String, Option<i64>, String)> = conn
        .prepare_cached(
            "DELETE FROM oidc_flows WHERE state_hash = ?1 AND session_id = ?2 \
             AND stage = 'started' AND expires_at > ?3 \
             RETURNING provider, salt, purpose, user_id, next",
        )?
        .query_row(params![keys.token_hash(state), session_id, now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    Ok(row.map(|(provider, salt, purpose, user_id, next)| Flow {
        provider,
        purpose: if purpose == "link" {
            Purpose::Link
        } else {
            Purpose::Login
        },
        user_id,
        next,
        nonce: nonce(keys, &salt),
        verifier: verifier(keys, &salt),
    }))
}

/// Keeps a verified answer for the session while the person confirms the sign-up or proves
/// the password of `user_id` (the existing account with the same address). Replaces an
/// earlier one of the session.
pub fn park(
    conn: &Connection,
    session_id: i64,
    v: &Vouched,
    user_id: Option<i64>,
    next: &str,
    now: Timestamp,
) -> Result<()> {
    conn.execute(
        "DELETE FROM oidc_flows WHERE session_id = ?1 AND stage = 'verified'",
        [session_id],
    )?;
    conn.prepare_cached(
        "INSERT INTO oidc_flows (state_hash, session_id, provider, salt, purpose, user_id, next, \
         stage, issuer, subject, email, created_at, expires_at) \
         VALUES (?1, ?2, ?3, '', 'login', ?4, ?5, 'verified', ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        // Never looked up by state: a random value fills the unique column.
        random_token(32).into_bytes(),
        session_id,
        v.provider,
        user_id,
        next,
        v.issuer,
        v.subject,
        v.email,
        now,
        now + VERIFIED_TTL
    ])?;
    Ok(())
}

/// A verified answer waiting for the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    pub vouched: Vouched,
    /// The existing account whose password must be proven; `None` for a new account.
    pub user_id: Option<i64>,
    pub next: String,
}

/// The session's waiting answer, if live.
pub fn parked(conn: &Connection, session_id: i64, now: Timestamp) -> Result<Option<Parked>> {
    Ok(conn
        .prepare_cached(
            "SELECT provider, issuer, subject, email, user_id, next FROM oidc_flows \
             WHERE session_id = ?1 AND stage = 'verified' AND expires_at > ?2",
        )?
        .query_row(params![session_id, now], |r| {
            Ok(Parked {
                vouched: Vouched {
                    provider: r.get(0)?,
                    issuer: r.get(1)?,
                    subject: r.get(2)?,
                    email: r.get(3)?,
                },
                user_id: r.get(4)?,
                next: r.get(5)?,
            })
        })
        .optional()?)
}

/// Ends the session's waiting answer (used, or given up).
pub fn unpark(conn: &Connection, session_id: i64) -> Result<()> {
    conn.execute(
        "DELETE FROM oidc_flows WHERE session_id = ?1 AND stage = 'verified'",
        [session_id],
    )?;
    Ok(())
}

/// Deletes flows past their time (the sessions job); returns how many.
pub fn purge_expired(conn: &Connection, now: Timestamp) -> Result<usize> {
    Ok(conn.execute("DELETE FROM oidc_flows WHERE expires_at <= ?1", [now])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::sessions;

    const LIMITS: sessions::Limits = sessions::Limits {
        idle: 600,
        max: 3600,
    };

    fn session(conn: &Connection, keys: &Keys) -> i64 {
        let t = sessions::create(conn, keys, None, &LIMITS, "", "", 1000).unwrap();
        sessions::lookup(conn, keys, &t, &LIMITS, 1000)
            .unwrap()
            .unwrap()
            .id
    }

    fn user(conn: &Connection, email: &str, password: bool) -> User {
        crate::domain::accounts::create(
            conn,
            &crate::domain::accounts::NewUser {
                email,
                password_hash: password.then_some("x"),
                role: crate::domain::accounts::Role::User,
                verified: true,
                age_confirmed: true,
                aup_accepted: true,
            },
            1000,
        )
        .unwrap()
    }

    fn vouched(sub: &str) -> Vouched {
        Vouched {
            provider: "default".into(),
            issuer: "https://id.example".into(),
            subject: sub.into(),
            email: "ann@example.com".into(),
        }
    }

    #[test]
    fn a_flow_is_taken_once_and_only_by_its_session() {
        let conn = db::memory();
        let keys = Keys::from_bytes([5; 32]);
        let (mine, other) = (session(&conn, &keys), session(&conn, &keys));
        let s = start(
            &conn,
            &keys,
            mine,
            "default",
            Purpose::Login,
            None,
            "/x",
            1000,
        )
        .unwrap();
        assert_eq!(s.verifier.len(), 64);
        assert!(take(&conn, &keys, other, &s.state, 1001).unwrap().is_none());
        let f = take(&conn, &keys, mine, &s.state, 1001).unwrap().unwrap();
        assert_eq!((f.nonce, f.verifier), (s.nonce, s.verifier));
        assert_eq!(f.next, "/x");
        assert!(take(&conn, &keys, mine, &s.state, 1002).unwrap().is_none());
        let late = start(
            &conn,
            &keys,
            mine,
            "default",
            Purpose::Login,
            None,
            "/",
            1000,
        )
        .unwrap();
        assert!(take(&conn, &keys, mine, &late.state, 1000 + FLOW_TTL)
            .unwrap()
            .is_none());
    }

    #[test]
    fn ending_the_session_ends_its_flows() {
        let conn = db::memory();
        let keys = Keys::from_bytes([5; 32]);
        let sid = session(&conn, &keys);
        start(
            &conn,
            &keys,
            sid,
            "default",
            Purpose::Login,
            None,
            "/",
            1000,
        )
        .unwrap();
        park(&conn, sid, &vouched("s"), None, "/", 1000).unwrap();
        sessions::revoke(&conn, sid).unwrap();
        let left: i64 = conn
            .query_row("SELECT COUNT(*) FROM oidc_flows", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn a_parked_answer_waits_for_its_session_only() {
        let conn = db::memory();
        let keys = Keys::from_bytes([5; 32]);
        let (sid, other) = (session(&conn, &keys), session(&conn, &keys));
        let holder = user(&conn, "ann@example.com", true);
        park(&conn, sid, &vouched("s"), None, "/n", 1000).unwrap();
        park(&conn, sid, &vouched("t"), Some(holder.id), "/n", 1000).unwrap();
        let p = parked(&conn, sid, 1001).unwrap().unwrap();
        assert_eq!(
            (p.vouched.subject.as_str(), p.user_id),
            ("t", Some(holder.id))
        );
        assert!(parked(&conn, other, 1001).unwrap().is_none());
        assert!(parked(&conn, sid, 1000 + VERIFIED_TTL).unwrap().is_none());
        unpark(&conn, sid).unwrap();
        assert!(parked(&conn, sid, 1001).unwrap().is_none());
    }

    #[test]
    fn an_identity_belongs_to_one_account_and_one_way_in_always_remains() {
        let conn = db::memory();
        let ann = user(&conn, "ann@example.com", false);
        let bob = user(&conn, "bob@example.com", true);
        let id = link(&conn, ann.id, &vouched("a"), 1000).unwrap();
        assert_eq!(
            link(&conn, bob.id, &vouched("a"), 1000).unwrap_err().code(),
            "conflict"
        );
        // Ann's only way in cannot go.
        assert_eq!(unlink(&conn, &ann, id.id).unwrap_err().code(), "conflict");
        // Bob has a password: his identity can go; Ann's id is not his.
        let b = link(&conn, bob.id, &vouched("b"), 1000).unwrap();
        assert_eq!(unlink(&conn, &bob, id.id).unwrap_err().code(), "not_found");
        assert_eq!(unlink(&conn, &bob, b.id).unwrap().subject, "b");
        assert!(list_for(&conn, bob.id).unwrap().is_empty());
        assert_eq!(list_for(&conn, ann.id).unwrap(), vec![id]);
    }
}
