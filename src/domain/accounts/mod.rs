//! Accounts and how people prove who they are: the account itself (creation, lookup, roles
//! and states, e-mail verification, password changes: this file), browser [`sessions`],
//! password hashing ([`passwords`]), single-use mailed [`tokens`], the second factor
//! ([`totp`], [`second_factor`]), API keys ([`apikeys`]), the external identities of
//! OpenID Connect sign-in ([`identities`]) and the channels that reach the holder's phone
//! ([`notifications`]).
//!
//! May use: [`crate::domain::base`] only. Closing an account touches orders and devices, so
//! it lives above the marketplace, in [`crate::domain::trust::lifecycle`].

pub mod apikeys;
pub mod identities;
pub mod notifications;
pub mod passwords;
pub mod second_factor;
pub mod sessions;
#[cfg(test)]
pub mod testing;
pub mod tokens;
pub mod totp;

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::clock::Timestamp;
use crate::domain::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    User,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Active,
    Suspended,
    Terminated,
    Deleted,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Suspended => "suspended",
            State::Terminated => "terminated",
            State::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        match s {
            "active" => Some(State::Active),
            "suspended" => Some(State::Suspended),
            "terminated" => Some(State::Terminated),
            "deleted" => Some(State::Deleted),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    pub password_hash: Option<String>,
    pub role: Role,
    pub state: State,
    pub state_reason: String,
    pub email_verified_at: Option<Timestamp>,
    pub balance_minor: i64,
    pub created_at: Timestamp,
    /// When the holder deleted the account (state `deleted`); see `domain::trust::lifecycle`.
    pub deleted_at: Option<Timestamp>,
    /// Set while the holder restricts optional processing of their data.
    pub processing_restricted_at: Option<Timestamp>,
}

impl User {
    pub fn is_active(&self) -> bool {
        self.state == State::Active
    }

    pub fn is_verified(&self) -> bool {
        self.email_verified_at.is_some()
    }
}

pub const USER_COLUMNS: &str = "id, email, display_name, password_hash, role, state, \
     state_reason, email_verified_at, balance_minor, created_at, deleted_at, \
     processing_restricted_at";

pub fn from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    let role: String = r.get(4)?;
    let state: String = r.get(5)?;
    Ok(User {
        id: r.get(0)?,
        email: r.get(1)?,
        display_name: r.get(2)?,
        password_hash: r.get(3)?,
        role: Role::parse(&role).unwrap_or(Role::User),
        state: State::parse(&state).unwrap_or(State::Suspended),
        state_reason: r.get(6)?,
        email_verified_at: r.get(7)?,
        balance_minor: r.get(8)?,
        created_at: r.get(9)?,
        deleted_at: r.get(10)?,
        processing_restricted_at: r.get(11)?,
    })
}

/// Trims and lower-cases an address and checks its shape (`local@domain`, no spaces).
pub fn normalise_email(raw: &str) -> Result<String> {
    let e = raw.trim().to_lowercase();
    let bad = || Error::invalid("Enter a valid e-mail address.");
    if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = e.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || domain.is_empty()
        || domain.contains('@')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
        || e.contains(['<', '>', '"', '\'', ',', ';'])
    {
        return Err(bad());
    }
    Ok(e)
}

pub struct NewUser<'a> {
    pub email: &'a str,
    pub password_hash: Option<&'a str>,
    pub role: Role,
    pub verified: bool,
    pub age_confirmed: bool,
    pub aup_accepted: bool,
}

pub fn create(conn: &Connection, u: &NewUser<'_>, now: Timestamp) -> Result<User> {
    let email = normalise_email(u.email)?;
    if find_by_email(conn, &email)?.is_some() {
        return Err(Error::Conflict(
            "An account with this e-mail address already exists.".into(),
        ));
    }
    let stamp = |b: bool| if b { Some(now) } else { None };
    conn.execute(
        "INSERT INTO users (email, password_hash, role, email_verified_at, age_confirmed_at, \
         aup_accepted_at, created_at, state_changed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            email,
            u.password_hash,
            u.role.as_str(),
            stamp(u.verified),
            stamp(u.age_confirmed),
            stamp(u.aup_accepted),
            now
        ],
    )?;
    get(conn, conn.last_insert_rowid())
}

pub fn get(conn: &Connection, id: i64) -> Result<User> {
    find(conn, id)?.ok_or(Error::NotFound("account"))
}

pub fn find(conn: &Connection, id: i64) -> Result<Option<User>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}

pub fn find_by_email(conn: &Connection, email: &str) -> Result<Option<User>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = ?1"
        ))?
        .query_row([email.trim().to_lowercase()], from_row)
        .optional()?)
}

pub fn count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?)
}

pub fn count_admins(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM users WHERE role = 'admin' AND state = 'active'",
        [],
        |r| r.get(0),
    )?)
}

/// Admin search by e-mail or name fragment, newest first: `limit` accounts older than
/// account `before` (keyset paging through the primary key; a fragment is matched on the
/// accounts walked, so a rare one walks the accounts, never any history).
pub fn search(
    conn: &Connection,
    query: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<User>> {
    let pattern = format!(
        "%{}%",
        query
            .trim()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id < ?2 AND (email LIKE ?1 ESCAPE '\\' \
         OR display_name LIKE ?1 ESCAPE '\\') ORDER BY id DESC LIMIT ?3"
    ))?;
    let rows = stmt.query_map(
        params![pattern, before.unwrap_or(i64::MAX), limit],
        from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn mark_verified(conn: &Connection, user_id: i64, now: Timestamp) -> Result<()> {
    conn.execute(
        "UPDATE users SET email_verified_at = COALESCE(email_verified_at, ?2) WHERE id = ?1",
        params![user_id, now],
    )?;
    Ok(())
}

pub fn set_password_hash(conn: &Connection, user_id: i64, phc: &str) -> Result<()> {
    conn.execute(
        "UPDATE users SET password_hash = ?2 WHERE id = ?1",
        params![user_id, phc],
    )?;
    Ok(())
}

pub fn set_role(conn: &Connection, user_id: i64, role: Role) -> Result<()> {
    conn.execute(
        "UPDATE users SET role = ?2 WHERE id = ?1",
        params![user_id, role.as_str()],
    )?;
    Ok(())
}

pub fn set_state(
    conn: &Connection,
    user_id: i64,
    state: State,
    reason: &str,
    now: Timestamp,
) -> Result<()> {
    conn.execute(
        "UPDATE users SET state = ?2, state_reason = ?3, state_changed_at = ?4 WHERE id = ?1",
        params![user_id, state.as_str(), reason, now],
    )?;
    Ok(())
}

pub fn set_display_name(conn: &Connection, user_id: i64, name: &str) -> Result<()> {
    let name = name.trim();
    if name.chars().count() > 80 || name.chars().any(|c| c.is_control()) {
        return Err(Error::invalid(
            "The display name must be at most 80 characters.",
        ));
    }
    conn.execute(
        "UPDATE users SET display_name = ?2 WHERE id = ?1",
        params![user_id, name],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    fn new_user(email: &str) -> NewUser<'_> {
        NewUser {
            email,
            password_hash: Some("x"),
            role: Role::User,
            verified: false,
            age_confirmed: true,
            aup_accepted: true,
        }
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalise_email("  Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        assert!(normalise_email("admin@localhost").is_ok());
        for bad in [
            "",
            "ann",
            "@x.com",
            "ann@",
            "a b@x.com",
            "a@x..com",
            "a@b@c",
            "a@.x",
        ] {
            assert!(normalise_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_account_per_email_whatever_the_case() {
        let conn = db::memory();
        create(&conn, &new_user("ann@example.com"), 1).unwrap();
        let err = create(&conn, &new_user("ANN@example.com"), 2).unwrap_err();
        assert_eq!(err.code(), "conflict");
        assert_eq!(
            find_by_email(&conn, "Ann@Example.com").unwrap().unwrap().id,
            1
        );
    }

    #[test]
    fn search_escapes_wildcards() {
        let conn = db::memory();
        create(&conn, &new_user("a_b@example.com"), 1).unwrap();
        create(&conn, &new_user("axb@example.com"), 1).unwrap();
        assert_eq!(search(&conn, "a_b", None, 10).unwrap().len(), 1);
        assert_eq!(search(&conn, "example", None, 10).unwrap().len(), 2);
    }
}
