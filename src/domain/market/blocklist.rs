//! Services and countries the admin has blocked at run time (table `blocked`): a service
//! everywhere, a country for every service, or one (country, service) pair. Every order path
//! (`activations::order`, `rentals::rent`) calls [`check`] before anything else is looked
//! at, so the refusal is the same on the web form and on all three APIs, each in its own
//! words (see [`Scope`]); the catalogue listings leave blocked pairs out ([`not_blocked_sql`]).

use rusqlite::{params, Connection};

use crate::clock::Timestamp;
use crate::domain::{Error, Result};

/// What a block covers; it decides the protocol token a refusal gets (a blocked country
/// reads like a country this site does not sell, anything else like such a service).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The service in every country.
    Service,
    /// Every service in the country.
    Country,
    /// The service in this one country.
    Pair,
}

impl Scope {
    pub fn message(self) -> &'static str {
        match self {
            Scope::Service => "Orders for this service are blocked on this site.",
            Scope::Country => "Orders for numbers of this country are blocked on this site.",
            Scope::Pair => "Orders for this service in this country are blocked on this site.",
        }
    }
}

/// One entry of the list.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: i64,
    pub country_id: Option<i64>,
    pub service: Option<String>,
    pub reason: String,
    pub created_by: Option<String>,
    pub created_at: Timestamp,
}

impl Entry {
    /// `tg everywhere`, `every service in 6`, `tg in 6`: for the audit log.
    pub fn describe(&self) -> String {
        match (self.country_id, &self.service) {
            (Some(c), Some(s)) => format!("{s} in country {c}"),
            (Some(c), None) => format!("every service in country {c}"),
            (None, Some(s)) => format!("{s} in every country"),
            (None, None) => "nothing".into(),
        }
    }
}

/// Refuses an order for `service` in `country` when a block covers it. The most specific
/// block answers: a pair, then the service, then the country.
pub fn check(conn: &Connection, country: i64, service: &str) -> Result<()> {
    let service = service.trim().to_ascii_lowercase();
    // The most specific entry that applies (at most four; chosen here rather than by an
    // `ORDER BY`, whose sorter every order paid for even with no entry at all).
    let mut stmt = conn.prepare_cached(
        "SELECT country_id IS NOT NULL, service IS NOT NULL FROM blocked \
         WHERE (country_id IS NULL OR country_id = ?1) AND (service IS NULL OR service = ?2)",
    )?;
    let found = stmt
        .query_map(params![country, service], |r| {
            Ok(match (r.get::<_, bool>(0)?, r.get::<_, bool>(1)?) {
                (true, true) => Scope::Pair,
                (false, true) => Scope::Service,
                _ => Scope::Country,
            })
        })?
        .collect::<rusqlite::Result<Vec<Scope>>>()?;
    let rank = |s: &Scope| match s {
        Scope::Pair => 2,
        Scope::Service => 1,
        _ => 0,
    };
    match found.into_iter().max_by_key(rank) {
        None => Ok(()),
        Some(scope) => Err(Error::Blocked(scope)),
    }
}

/// An SQL condition that is true when the pair in the columns `country` and `service` is not
/// blocked (for catalogue queries: `... AND {not_blocked_sql("p.country_id", "p.service")}`).
pub fn not_blocked_sql(country: &str, service: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM blocked b WHERE (b.country_id IS NULL OR b.country_id = {country}) \
         AND (b.service IS NULL OR b.service = {service}))"
    )
}

/// Every entry, newest first.
pub fn list(conn: &Connection) -> Result<Vec<Entry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT b.id, b.country_id, b.service, b.reason, u.email, b.created_at FROM blocked b \
         LEFT JOIN users u ON u.id = b.created_by ORDER BY b.id DESC",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Entry {
            id: r.get(0)?,
            country_id: r.get(1)?,
            service: r.get(2)?,
            reason: r.get(3)?,
            created_by: r.get(4)?,
            created_at: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get(conn: &Connection, id: i64) -> Result<Entry> {
    list(conn)?
        .into_iter()
        .find(|e| e.id == id)
        .ok_or(Error::NotFound("block"))
}

/// Adds a block. The service and the country must exist in the catalogue (a typo would
/// block nothing); at least one of them is required. Callers audit ([`crate::domain::trust::admin`]).
pub fn add(
    conn: &Connection,
    country: Option<i64>,
    service: Option<&str>,
    reason: &str,
    created_by: Option<i64>,
    now: Timestamp,
) -> Result<Entry> {
    let service = service
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty());
    if country.is_none() && service.is_none() {
        return Err(Error::invalid("Choose a service, a country, or both."));
    }
    if let Some(c) = country {
        if crate::domain::market::catalogue::country(conn, c)?.is_none() {
            return Err(Error::BadCountry);
        }
    }
    if let Some(s) = &service {
        if crate::domain::market::catalogue::service(conn, s)?.is_none() {
            return Err(Error::BadService);
        }
    }
    let reason: String = reason.trim().chars().take(200).collect();
    let inserted = conn.execute(
        "INSERT INTO blocked (country_id, service, reason, created_by, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![country, service, reason, created_by, now],
    );
    match inserted {
        Ok(_) => get(conn, conn.last_insert_rowid()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(Error::Conflict("This is blocked already.".into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes a block; returns what it was.
pub fn remove(conn: &Connection, id: i64) -> Result<Entry> {
    let e = get(conn, id)?;
    conn.execute("DELETE FROM blocked WHERE id = ?1", [id])?;
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::market::catalogue;

    #[test]
    fn the_most_specific_block_answers_and_removal_frees() {
        let conn = db::memory();
        catalogue::seed_if_empty(&conn).unwrap();
        assert!(check(&conn, 6, "tg").is_ok());
        let country = add(&conn, Some(6), None, "", None, 1).unwrap();
        let service = add(&conn, None, Some("TG"), "fraud wave", None, 1).unwrap();
        assert!(matches!(
            check(&conn, 6, "tg"),
            Err(Error::Blocked(Scope::Service))
        ));
        assert!(matches!(
            check(&conn, 6, "wa"),
            Err(Error::Blocked(Scope::Country))
        ));
        assert!(matches!(
            check(&conn, 0, "tg"),
            Err(Error::Blocked(Scope::Service))
        ));
        assert!(check(&conn, 0, "wa").is_ok());
        add(&conn, Some(0), Some("wa"), "", None, 1).unwrap();
        assert!(matches!(
            check(&conn, 0, "wa"),
            Err(Error::Blocked(Scope::Pair))
        ));
        assert!(matches!(
            add(&conn, None, Some("tg"), "", None, 2),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            add(&conn, None, Some("nosuch"), "", None, 2),
            Err(Error::BadService)
        ));
        assert!(matches!(
            add(&conn, None, None, "", None, 2),
            Err(Error::Invalid(_))
        ));
        remove(&conn, service.id).unwrap();
        remove(&conn, country.id).unwrap();
        assert!(check(&conn, 6, "tg").is_ok());
        assert_eq!(list(&conn).unwrap().len(), 1);
    }
}
