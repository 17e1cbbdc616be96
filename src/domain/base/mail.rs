//! Outgoing mail. Every message is first written to the `outbox` table in the caller's
//! transaction (so a crash never loses a reset link); the `mail` job then sends pending rows
//! over SMTP. Without SMTP configured the message stays in the outbox, where the admin can
//! read it, and is written to the log so a local install still works.
//!
//! A *private* mail (a notification carrying a code or an SMS text, sent only through SMTP)
//! keeps beside its body a public version without the secret: the log and the admin's outbox
//! see only that, and it replaces the body once the mail is sent, or at `private_until` (the
//! SMS retention) when it could not be sent by then.

use rusqlite::{params, Connection};

use crate::clock::Timestamp;
use crate::domain::Result;

pub fn enqueue(
    conn: &Connection,
    to: &str,
    subject: &str,
    body: &str,
    smtp_configured: bool,
    now: Timestamp,
) -> Result<i64> {
    conn.execute(
        "INSERT INTO outbox (to_addr, subject, body, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![to, subject, body, now],
    )?;
    if !smtp_configured {
        log::info!("mail (no SMTP configured) to {to}: {subject}\n{body}");
    }
    Ok(conn.last_insert_rowid())
}

/// [`enqueue`] for a body that carries a code or an SMS text: `public_body` says the same
/// without it, and is all that is kept once the mail is sent or `private_until` has passed.
pub fn enqueue_private(
    conn: &Connection,
    to: &str,
    subject: &str,
    body: &str,
    public_body: &str,
    private_until: Timestamp,
    now: Timestamp,
) -> Result<i64> {
    conn.execute(
        "INSERT INTO outbox (to_addr, subject, body, public_body, private_until, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![to, subject, body, public_body, private_until, now],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Private mails whose time is up keep only their public body; returns how many.
pub fn forget_private(conn: &Connection, now: Timestamp) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "UPDATE outbox SET body = public_body, public_body = NULL, private_until = NULL \
             WHERE private_until <= ?1",
        )?
        .execute([now])?)
}

#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub to_addr: String,
    pub subject: String,
    pub body: String,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
    pub attempts: i64,
    pub last_error: String,
}

/// The latest mails as the admin reads them: a private mail's public body only.
pub fn recent(conn: &Connection, limit: i64) -> Result<Vec<OutboxRow>> {
    list(conn, "COALESCE(public_body, body)", "1", limit)
}

/// Mails to send, with their whole bodies.
pub fn pending(conn: &Connection, limit: i64) -> Result<Vec<OutboxRow>> {
    list(conn, "body", "sent_at IS NULL AND attempts < 10", limit)
}

fn list(conn: &Connection, body: &str, filter: &str, limit: i64) -> Result<Vec<OutboxRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT id, to_addr, subject, {body}, created_at, sent_at, attempts, last_error \
         FROM outbox WHERE {filter} ORDER BY id DESC LIMIT ?1"
    ))?;
    let rows = stmt.query_map([limit], |r| {
        Ok(OutboxRow {
            id: r.get(0)?,
            to_addr: r.get(1)?,
            subject: r.get(2)?,
            body: r.get(3)?,
            created_at: r.get(4)?,
            sent_at: r.get(5)?,
            attempts: r.get(6)?,
            last_error: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn mark_sent(conn: &Connection, id: i64, now: Timestamp) -> Result<()> {
    conn.execute(
        "UPDATE outbox SET sent_at = ?2, attempts = attempts + 1, last_error = '', \
         body = COALESCE(public_body, body), public_body = NULL, private_until = NULL \
         WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

pub fn mark_failed(conn: &Connection, id: i64, error: &str) -> Result<()> {
    conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
        params![id, error],
    )?;
    Ok(())
}
