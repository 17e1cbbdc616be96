//! The data export (SPEC §9): everything held about one account, as one portable JSON
//! document (README "Data export" documents the format). Every query is bound to the
//! account's id; nothing of another account can appear. Secrets never appear: no password
//! hash, no API key hashes, no webhook or device secrets (they are derived, never stored),
//! no session tokens, no link tokens, and mail is listed without its body (it may hold links).

use rusqlite::{params, Connection, Row};
use serde::Serialize;
use serde_json::{json, Value};

use crate::clock::{format_rfc3339, Timestamp};
use crate::domain::accounts;
use crate::domain::{market::wallet, Result};

/// The `format` field; bumped when a field changes meaning or disappears.
pub const FORMAT: &str = "otpbox-export/1";

/// RFC 3339 or null.
fn t(v: Option<Timestamp>) -> Value {
    v.map_or(Value::Null, |t| Value::String(format_rfc3339(t)))
}

/// Runs `sql` with the account id as `?1` and turns every row into JSON with `f`.
fn rows(
    conn: &Connection,
    sql: &str,
    user_id: i64,
    f: impl Fn(&Row<'_>) -> rusqlite::Result<Value>,
) -> Result<Vec<Value>> {
    let mut stmt = conn.prepare(sql)?;
    let out = stmt.query_map(params![user_id], |r| f(r))?;
    Ok(out.collect::<rusqlite::Result<_>>()?)
}

/// Where an export was made and for what.
#[derive(Debug, Clone, Serialize)]
pub struct Meta<'a> {
    pub site: &'a str,
    pub currency: &'a str,
}

/// The whole export of one account.
pub fn export(conn: &Connection, user_id: i64, meta: &Meta<'_>, now: Timestamp) -> Result<Value> {
    let u = accounts::get(conn, user_id)?;
    let (age_confirmed_at, aup_accepted_at): (Option<i64>, Option<i64>) = conn.query_row(
        "SELECT age_confirmed_at, aup_accepted_at FROM users WHERE id = ?1",
        [user_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let profile = json!({
        "id": u.id,
        "email": u.email,
        "display_name": u.display_name,
        "role": u.role.as_str(),
        "state": u.state.as_str(),
        "created_at": t(Some(u.created_at)),
        "email_verified_at": t(u.email_verified_at),
        "age_confirmed_at": t(age_confirmed_at),
        "aup_accepted_at": t(aup_accepted_at),
        "balance_minor": u.balance_minor,
        "processing_restricted_at": t(u.processing_restricted_at),
        "deleted_at": t(u.deleted_at),
    });

    let activations = rows(
        conn,
        "SELECT id, phone, country_id, service, operator, price_minor, status, client_order_id, \
         source, created_at, expires_at, code_at, ended_at FROM activations WHERE user_id = ?1 \
         ORDER BY id",
        user_id,
        |r| {
            Ok(json!({
                "id": r.get::<_, i64>(0)?,
                "phone": r.get::<_, String>(1)?,
                "country": r.get::<_, i64>(2)?,
                "service": r.get::<_, String>(3)?,
                "operator": r.get::<_, String>(4)?,
                "price_minor": r.get::<_, i64>(5)?,
                "status": r.get::<_, String>(6)?,
                "client_order_id": r.get::<_, Option<String>>(7)?,
                "source": r.get::<_, String>(8)?,
                "created_at": t(r.get(9)?),
                "expires_at": t(r.get(10)?),
                "code_at": t(r.get(11)?),
                "ended_at": t(r.get(12)?),
            }))
        },
    )?;

    let rentals = rows(
        conn,
        "SELECT id, phone, country_id, service, hours, hour_minor, paid_minor, status, \
         auto_renew, webhook_url, created_at, expires_at, ended_at FROM rentals \
         WHERE user_id = ?1 ORDER BY id",
        user_id,
        |r| {
            Ok(json!({
                "id": r.get::<_, i64>(0)?,
                "phone": r.get::<_, String>(1)?,
                "country": r.get::<_, i64>(2)?,
                "service": r.get::<_, String>(3)?,
                "hours": r.get::<_, i64>(4)?,
                "hour_minor": r.get::<_, i64>(5)?,
                "paid_minor": r.get::<_, i64>(6)?,
                "status": r.get::<_, String>(7)?,
                "auto_renew": r.get::<_, bool>(8)?,
                "webhook_url": r.get::<_, String>(9)?,
                "created_at": t(r.get(10)?),
                "expires_at": t(r.get(11)?),
                "ended_at": t(r.get(12)?),
            }))
        },
    )?;

    let messages = rows(
        conn,
        "SELECT m.id, m.activation_id, m.rental_id, m.sender, m.text, m.code, m.received_at \
         FROM messages m \
         LEFT JOIN activations a ON a.id = m.activation_id \
         LEFT JOIN rentals r ON r.id = m.rental_id \
         WHERE a.user_id = ?1 OR r.user_id = ?1 ORDER BY m.id",
        user_id,
        |r| {
            Ok(json!({
                "id": r.get::<_, i64>(0)?,
                "activation_id": r.get::<_, Option<i64>>(1)?,
                "rental_id": r.get::<_, Option<i64>>(2)?,
                "sender": r.get::<_, String>(3)?,
                "text": r.get::<_, String>(4)?,
                "code": r.get::<_, Option<String>>(5)?,
                "received_at": t(r.get(6)?),
            }))
        },
    )?;

    // Oldest first: the file reads as the account's history. Ledger rows keep Unix seconds
    // beside the time, as everywhere in the API.
    let mut ledger: Vec<wallet::Entry> = Vec::new();
    let mut before = None;
    loop {
        let page = wallet::entries(conn, user_id, 1000, before)?;
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        ledger.extend(page);
    }
    ledger.reverse();
    let ledger: Vec<Value> = ledger
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id,
                "kind": e.kind,
                "amount_minor": e.amount_minor,
                "balance_after": e.balance_after,
                "ref_type": e.ref_type,
                "ref_id": e.ref_id,
                "note": e.note,
                "created_at": t(Some(e.created_at)),
            })
        })
        .collect();

    let payments = rows(
        conn,
        "SELECT id, gateway, gateway_ref, status, amount_minor, credited_minor, reversed_minor, \
         currency, created_at, paid_at FROM payments WHERE user_id = ?1 ORDER BY id",
        user_id,
        |r| {
            Ok(json!({
                "id": r.get::<_, i64>(0)?,
                "gateway": r.get::<_, String>(1)?,
                "gateway_ref": r.get::<_, Option<String>>(2)?,
                "status": r.get::<_, String>(3)?,
                "amount_minor": r.get::<_, i64>(4)?,
                "credited_minor": r.get::<_, i64>(5)?,
                "reversed_minor": r.get::<_, i64>(6)?,
                "currency": r.get::<_, String>(7)?,
                "created_at": t(Some(r.get(8)?)),
                "paid_at": t(r.get(9)?),
            }))
        },
    )?;

    // The subjects and addresses providers vouched for; what an identity proves is the
    // provider's, nothing secret is held.
    let identities = rows(
        conn,
        "SELECT provider, issuer, subject, email, created_at, last_used_at FROM identities \
         WHERE user_id = ?1 ORDER BY id",
        user_id,
        |r| {
            Ok(json!({
                "provider": r.get::<_, String>(0)?,
                "issuer": r.get::<_, String>(1)?,
                "subject": r.get::<_, String>(2)?,
                "email": r.get::<_, String>(3)?,
                "linked_at": t(r.get(4)?),
                "last_used_at": t(r.get(5)?),
            }))
        },
    )?;

    // Access tokens are left out (secrets).
    let notification_channels = rows(
        conn,
        "SELECT id, kind, url, chat_id, events, created_at FROM notify_channels \
         WHERE user_id = ?1 ORDER BY id",
        user_id,
        |r| {
            let events: String = r.get(4)?;
            Ok(json!({
                "id": r.get::<_, i64>(0)?,
                "kind": r.get::<_, String>(1)?,
                "url": r.get::<_, String>(2)?,
                "chat_id": r.get::<_, String>(3)?,
                "events": events.split_whitespace().collect::<Vec<_>>(),
                "created_at": t(r.get(5)?),
            }))
        },
    )?;

    let api_keys = rows(
        conn,
        "SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys \
         WHERE user_id = ?1 ORDER BY id",
        user_id,
        |r| {
            Ok(json!({
                "id": r.get::<_, i64>(0)?,
                "name": r.get::<_, String>(1)?,
                "prefix": r.get::<_, String>(2)?,
                "created_at": t(r.get(3)?),
                "last_used_at": t(r.get(4)?),
                "revoked_at": t(r.get(5)?),
            }))
        },
    )?;

    let price_caps = rows(
        conn,
        "SELECT service, price_minor, created_at FROM price_caps WHERE user_id = ?1 ORDER BY id",
        user_id,
        |r| {
            Ok(json!({
                "service": r.get::<_, String>(0)?,
                "price_minor": r.get::<_, i64>(1)?,
                "created_at": t(r.get(2)?),
            }))
        },
    )?;

    let webhooks = rows(
        conn,
        "SELECT id, kind, url, events, created_at FROM webhooks WHERE user_id = ?1 ORDER BY id",
        user_id,
        |r| {
            let events: String = r.get(3)?;
            Ok(json!({
                "id": r.get::<_, i64>(0)?,
                "kind": r.get::<_, String>(1)?,
                "url": r.get::<_, String>(2)?,
                "events": events.split_whitespace().collect::<Vec<_>>(),
                "created_at": t(r.get(4)?),
            }))
        },
    )?;

    let webhook_deliveries = rows(
        conn,
        "SELECT uuid, webhook_id, url, event, state, attempts, created_at, finished_at, \
         last_status, last_error FROM webhook_deliveries WHERE user_id = ?1 ORDER BY id",
        user_id,
        |r| {
            Ok(json!({
                "uuid": r.get::<_, String>(0)?,
                "webhook_id": r.get::<_, Option<i64>>(1)?,
                "url": r.get::<_, String>(2)?,
                "event": r.get::<_, String>(3)?,
                "state": r.get::<_, String>(4)?,
                "attempts": r.get::<_, i64>(5)?,
                "created_at": t(r.get(6)?),
                "finished_at": t(r.get(7)?),
                "last_status": r.get::<_, Option<i64>>(8)?,
                "last_error": r.get::<_, String>(9)?,
            }))
        },
    )?;

    let mut devices = rows(
        conn,
        "SELECT id, public_id, name, kind, created_at, last_seen_at, last_message_at, online, \
         revoked_at FROM devices WHERE owner_id = ?1 ORDER BY id",
        user_id,
        |r| {
            Ok(json!({
                "id": r.get::<_, i64>(0)?,
                "public_id": r.get::<_, String>(1)?,
                "name": r.get::<_, String>(2)?,
                "kind": r.get::<_, String>(3)?,
                "created_at": t(r.get(4)?),
                "last_seen_at": t(r.get(5)?),
                "last_message_at": t(r.get(6)?),
                "online": r.get::<_, bool>(7)?,
                "revoked_at": t(r.get(8)?),
            }))
        },
    )?;
    for d in devices.iter_mut() {
        let id = d["id"].as_i64().unwrap_or_default();
        d["sims"] = Value::Array(sims_of(conn, id, user_id)?);
    }

    let payouts = rows(
        conn,
        "SELECT id, amount_minor, destination, state, created_at, decided_at, note FROM payouts \
         WHERE user_id = ?1 ORDER BY id",
        user_id,
        |r| {
            Ok(json!({
                "id": r.get::<_, i64>(0)?,
                "amount_minor": r.get::<_, i64>(1)?,
                "destination": r.get::<_, String>(2)?,
                "state": r.get::<_, String>(3)?,
                "created_at": t(r.get(4)?),
                "decided_at": t(r.get(5)?),
                "note": r.get::<_, String>(6)?,
            }))
        },
    )?;

    let security_events = rows(
        conn,
        "SELECT at, kind, detail, ip_hash FROM security_events WHERE user_id = ?1 ORDER BY id",
        user_id,
        |r| {
            Ok(json!({
                "at": t(r.get(0)?),
                "kind": r.get::<_, String>(1)?,
                "detail": r.get::<_, String>(2)?,
                "ip_hash": r.get::<_, String>(3)?,
            }))
        },
    )?;

    let sessions = rows(
        conn,
        "SELECT created_at, last_seen_at, expires_at, ip_hash, user_agent FROM sessions \
         WHERE user_id = ?1 ORDER BY id",
        user_id,
        |r| {
            Ok(json!({
                "created_at": t(r.get(0)?),
                "last_seen_at": t(r.get(1)?),
                "expires_at": t(r.get(2)?),
                "ip_hash": r.get::<_, String>(3)?,
                "user_agent": r.get::<_, String>(4)?,
            }))
        },
    )?;

    let requests = rows(
        conn,
        "SELECT kind, created_at, handled_at FROM account_requests WHERE user_id = ?1 ORDER BY id",
        user_id,
        |r| {
            Ok(json!({
                "kind": r.get::<_, String>(0)?,
                "created_at": t(r.get(1)?),
                "handled_at": t(r.get(2)?),
            }))
        },
    )?;

    // Mail is matched by the account's current address; bodies are left out (links).
    let mail = rows(
        conn,
        "SELECT o.subject, o.created_at, o.sent_at FROM outbox o JOIN users u ON u.id = ?1 \
         WHERE lower(o.to_addr) = lower(u.email) ORDER BY o.id",
        user_id,
        |r| {
            Ok(json!({
                "subject": r.get::<_, String>(0)?,
                "created_at": t(r.get(1)?),
                "sent_at": t(r.get(2)?),
            }))
        },
    )?;

    Ok(json!({
        "format": FORMAT,
        "exported_at": t(Some(now)),
        "site": meta.site,
        "currency": meta.currency,
        "profile": profile,
        "activations": activations,
        "rentals": rentals,
        "messages": messages,
        "ledger": ledger,
        "payments": payments,
        "identities": identities,
        "notification_channels": notification_channels,
        "api_keys": api_keys,
        "webhooks": webhooks,
        "price_caps": price_caps,
        "webhook_deliveries": webhook_deliveries,
        "devices": devices,
        "payouts": payouts,
        "security_events": security_events,
        "sessions": sessions,
        "requests": requests,
        "mail": mail,
    }))
}

/// The SIMs registered in one of the account's devices.
fn sims_of(conn: &Connection, device_id: i64, user_id: i64) -> Result<Vec<Value>> {
    let mut stmt = conn.prepare(
        "SELECT slot, phone, country_id, operator, state, on_sale FROM numbers \
         WHERE device_id = ?1 AND owner_id = ?2 ORDER BY slot, id",
    )?;
    let out = stmt.query_map(params![device_id, user_id], |r| {
        Ok(json!({
            "slot": r.get::<_, Option<i64>>(0)?,
            "phone": r.get::<_, String>(1)?,
            "country": r.get::<_, i64>(2)?,
            "operator": r.get::<_, String>(3)?,
            "state": r.get::<_, String>(4)?,
            "on_sale": r.get::<_, bool>(5)?,
        }))
    })?;
    Ok(out.collect::<rusqlite::Result<_>>()?)
}
