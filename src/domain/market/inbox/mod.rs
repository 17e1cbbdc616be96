//! SMS ingestion: the one entry point every number source uses (simulator, gateways, the
//! command line, upstream providers). It de-duplicates by source message id, finds the live
//! activation or rental on the receiving number (or the partner hub holding it, to push it there), stores the message with its extracted code
//! and moves the activation to `received`, and queues the webhook deliveries the message
//! causes (in the same transaction). A message for an ended order is not delivered.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::domain::market::activations::{self, Activation};
use crate::domain::{market::partners, market::rentals, market::webhooks, Result};

pub mod codes;

/// A message as a source hands it over.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The receiving number; any formatting, digits are kept.
    pub to: String,
    pub sender: String,
    pub text: String,
    pub received_at: Timestamp,
    /// Where it came from (`simulator`, `cli`, `gateway:3`, ...), scoping `source_msg_id`.
    pub source: String,
    pub source_msg_id: Option<String>,
    /// The device a gateway message came through: it delivers only for its own SIMs and its
    /// operator's device-less numbers; any other number is unknown to it. `None` (simulator,
    /// command line, upstream providers) is unscoped.
    pub device_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    Activation {
        id: i64,
        user_id: i64,
    },
    Rental {
        id: i64,
        user_id: i64,
    },
    /// For a number a partner hub holds: queued to be pushed to the hub (`push_id` is the
    /// `smsId` it will see).
    Partner {
        order_id: i64,
        push_id: i64,
    },
    /// Already taken in under the same source message id.
    Duplicate,
    /// For a number we know, but no order is live on it (late SMS): not delivered.
    NoLiveOrder,
    UnknownNumber,
}

pub fn digits(phone: &str) -> String {
    phone.chars().filter(|c| c.is_ascii_digit()).collect()
}

const MAX_TEXT: usize = 4096;

pub fn ingest(conn: &Connection, msg: &Inbound, now: Timestamp) -> Result<Delivered> {
    ingest_coded(conn, msg, None, now)
}

/// [`ingest`] for a source that extracts the code itself (an upstream provider): its code,
/// when it gives one, wins over ours.
/// Whether a message with this source and id was taken in (and is still remembered: seen
/// ids are kept seven days, see `trust::retention`).
pub fn seen(conn: &Connection, source: &str, id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM inbound_seen WHERE dedup_key = ?1")?
        .query_row([format!("{source}:{id}")], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Remembers a message id as taken in (also the parts of a long SMS, taken in as one
/// message); false when it already was.
pub fn remember(conn: &Connection, source: &str, id: &str, now: Timestamp) -> Result<bool> {
    Ok(conn
        .prepare_cached("INSERT OR IGNORE INTO inbound_seen (dedup_key, seen_at) VALUES (?1, ?2)")?
        .execute(params![format!("{source}:{id}"), now])?
        > 0)
}

pub fn ingest_coded(
    conn: &Connection,
    msg: &Inbound,
    given_code: Option<&str>,
    now: Timestamp,
) -> Result<Delivered> {
    if let Some(id) = msg.source_msg_id.as_deref().filter(|s| !s.is_empty()) {
        if !remember(conn, &msg.source, id, now)? {
            return Ok(Delivered::Duplicate);
        }
    }
    let phone = digits(&msg.to);
    let number: Option<i64> = conn
        .prepare_cached(
            "SELECT n.id FROM numbers n WHERE n.phone = ?1 AND (?2 IS NULL OR n.device_id = ?2 \
             OR (n.device_id IS NULL AND n.owner_id = (SELECT owner_id FROM devices WHERE id = ?2)))",
        )?
        .query_row(params![phone, msg.device_id], |r| r.get(0))
        .optional()?;
    let Some(number_id) = number else {
        return Ok(Delivered::UnknownNumber);
    };
    let text: String = msg.text.chars().take(MAX_TEXT).collect();
    let sender: String = msg.sender.chars().take(64).collect();
    let live = live_activation(conn, number_id, &sender, &text, now)?;
    if let Some(id) = live {
        let a: Activation = activations::get(conn, id)?.expect("live activation exists");
        let code = given_code
            .map(|c| c.trim().chars().take(64).collect::<String>())
            .filter(|c| !c.is_empty())
            .or_else(|| codes::extract(&a.service, &text));
        let at = msg.received_at.min(now);
        store(conn, Some(a.id), None, &sender, &text, code.as_deref(), at)?;
        let sms = webhooks::Sms {
            sender: &sender,
            text: &text,
            code: code.as_deref(),
            received_at: at,
        };
        webhooks::activation_sms(conn, &a, &sms, now)?;
        if code.is_some() {
            activations::code_arrived(conn, &a, now)?;
        }
        return Ok(Delivered::Activation {
            id: a.id,
            user_id: a.user_id,
        });
    }
    let rental: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM rentals WHERE number_id = ?1 AND status = 'active' \
             AND expires_at > ?2 ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![number_id, now], |r| r.get(0))
        .optional()?;
    if let Some(id) = rental {
        let r = rentals::get(conn, id)?.expect("live rental exists");
        let code = codes::extract(&r.service, &text);
        let at = msg.received_at.min(now);
        store(conn, None, Some(id), &sender, &text, code.as_deref(), at)?;
        let sms = webhooks::Sms {
            sender: &sender,
            text: &text,
            code: code.as_deref(),
            received_at: at,
        };
        webhooks::rental_sms(conn, &r, &sms, now)?;
        return Ok(Delivered::Rental {
            id,
            user_id: r.user_id,
        });
    }
    if let Some(o) = partners::held_by(conn, number_id)? {
        let push_id = partners::queue_push(conn, &o, &sender, &text, now)?;
        return Ok(Delivered::Partner {
            order_id: o.id,
            push_id,
        });
    }
    Ok(Delivered::NoLiveOrder)
}

/// The live activation on a number that an SMS is for. Usually there is one; a
/// multi-service number has one per service, and the SMS goes to the one whose service's
/// name its sender or text names, else to the oldest still waiting for a code, else the
/// newest.
fn live_activation(
    conn: &Connection,
    number_id: i64,
    sender: &str,
    text: &str,
    now: Timestamp,
) -> Result<Option<i64>> {
    let live: Vec<(i64, String, String, bool)> = conn
        .prepare_cached(
            "SELECT a.id, a.service, COALESCE(s.name, a.service), a.code_at IS NULL \
             FROM activations a LEFT JOIN services s ON s.code = a.service \
             WHERE a.number_id = ?1 AND a.status IN ('waiting','received','retry') \
             AND a.expires_at > ?2 ORDER BY a.id DESC LIMIT 10",
        )?
        .query_map(params![number_id, now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    if live.len() <= 1 {
        return Ok(live.first().map(|a| a.0));
    }
    let (sender, text) = (sender.to_lowercase(), text.to_lowercase());
    let named = live.iter().find(|(_, _, name, _)| {
        let name = name.to_lowercase();
        !name.is_empty() && (sender.contains(&name) || text.contains(&name))
    });
    if let Some(a) = named {
        return Ok(Some(a.0));
    }
    Ok(live
        .iter()
        .rev()
        .find(|a| a.3)
        .or(live.first())
        .map(|a| a.0))
}

fn store(
    conn: &Connection,
    activation: Option<i64>,
    rental: Option<i64>,
    sender: &str,
    text: &str,
    code: Option<&str>,
    at: Timestamp,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO messages (activation_id, rental_id, sender, text, code, received_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![activation, rental, sender, text, code, at])?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub id: i64,
    pub sender: String,
    pub text: String,
    pub code: Option<String>,
    pub received_at: Timestamp,
}

/// A `messages` row read as `id, sender, text, code, received_at`.
fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: r.get(0)?,
        sender: r.get(1)?,
        text: r.get(2)?,
        code: r.get(3)?,
        received_at: r.get(4)?,
    })
}

fn message_list(conn: &Connection, column: &str, id: i64) -> Result<Vec<Message>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT id, sender, text, code, received_at FROM messages WHERE {column} = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([id], message_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Messages of an activation, oldest first. Callers check ownership first.
pub fn for_activation(conn: &Connection, activation_id: i64) -> Result<Vec<Message>> {
    message_list(conn, "activation_id", activation_id)
}

pub fn for_rental(conn: &Connection, rental_id: i64) -> Result<Vec<Message>> {
    message_list(conn, "rental_id", rental_id)
}

/// How many messages an activation has (the index alone: `messages_activation`).
pub fn count_for_activation(conn: &Connection, activation_id: i64) -> Result<i64> {
    message_count(conn, "activation_id", activation_id)
}

/// How many messages a rental has (the index alone: `messages_rental`).
pub fn count_for_rental(conn: &Connection, rental_id: i64) -> Result<i64> {
    message_count(conn, "rental_id", rental_id)
}

fn message_count(conn: &Connection, column: &str, id: i64) -> Result<i64> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM messages WHERE {column} = ?1"
        ))?
        .query_row([id], |r| r.get(0))?)
}

/// The newest `limit` messages of a rental, oldest first. Callers check ownership first.
pub fn recent_for_rental(conn: &Connection, rental_id: i64, limit: i64) -> Result<Vec<Message>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, sender, text, code, received_at FROM messages WHERE rental_id = ?1 \
         ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![rental_id, limit], message_row)?;
    let mut list = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    list.reverse();
    Ok(list)
}

/// The latest code of an activation, if any message carried one.
pub fn latest_code(conn: &Connection, activation_id: i64) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT code FROM messages WHERE activation_id = ?1 AND code IS NOT NULL ORDER BY id DESC LIMIT 1",
        )?
        .query_row([activation_id], |r| r.get(0))
        .optional()?)
}

#[allow(dead_code)] // STATUS_WAIT_RETRY of the SMS-Activate protocol
/// The code before the latest (for `STATUS_WAIT_RETRY:previous`).
pub fn codes_of(conn: &Connection, activation_id: i64) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT code FROM messages WHERE activation_id = ?1 AND code IS NOT NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([activation_id], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
