//! Customers' price caps per service (5sim's `/user/max-prices`): the most an account is
//! willing to pay for a number of a service. A purchase through the 5sim API that names no
//! maximum of its own is refused above the cap (`no free phones`, as 5sim answers).

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::domain::market::catalogue;
use crate::domain::{Error, Result};

/// At most this many caps per account (one per service of the catalogue fits).
pub const MAX_CAPS: i64 = 200;

#[derive(Debug, Clone, Serialize)]
pub struct Cap {
    pub id: i64,
    pub service: String,
    pub price_minor: i64,
    pub created_at: Timestamp,
}

pub fn list(conn: &Connection, user_id: i64) -> Result<Vec<Cap>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, service, price_minor, created_at FROM price_caps WHERE user_id = ?1 \
         ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![user_id, MAX_CAPS], |r| {
        Ok(Cap {
            id: r.get(0)?,
            service: r.get(1)?,
            price_minor: r.get(2)?,
            created_at: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The cap of one service, if the account set one.
pub fn get(conn: &Connection, user_id: i64, service: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT price_minor FROM price_caps WHERE user_id = ?1 AND service = ?2")?
        .query_row(params![user_id, service], |r| r.get(0))
        .optional()?)
}

/// Sets (or replaces) the cap of a service of the catalogue.
pub fn set(
    conn: &Connection,
    user_id: i64,
    service: &str,
    price_minor: i64,
    now: Timestamp,
) -> Result<()> {
    let service = catalogue::live_service(conn, service)?;
    if price_minor < 0 {
        return Err(Error::invalid("The price must not be negative."));
    }
    let count: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM price_caps WHERE user_id = ?1")?
        .query_row([user_id], |r| r.get(0))?;
    if count >= MAX_CAPS && get(conn, user_id, &service.code)?.is_none() {
        return Err(Error::invalid("Too many price caps."));
    }
    conn.prepare_cached(
        "INSERT INTO price_caps (user_id, service, price_minor, created_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (user_id, service) DO UPDATE SET price_minor = excluded.price_minor, \
         created_at = excluded.created_at",
    )?
    .execute(params![user_id, service.code, price_minor, now])?;
    Ok(())
}

/// Removes the cap of a service; false when there was none.
pub fn remove(conn: &Connection, user_id: i64, service: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM price_caps WHERE user_id = ?1 AND service = ?2")?
        .execute(params![user_id, service])?
        > 0)
}

/// Removes every cap of an account (account deletion).
pub fn clear(conn: &Connection, user_id: i64) -> Result<()> {
    conn.prepare_cached("DELETE FROM price_caps WHERE user_id = ?1")?
        .execute([user_id])?;
    Ok(())
}
