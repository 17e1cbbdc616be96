//! Activations, the core lifecycle (SPEC §3):
//! `waiting → received → (retry → received)* → completed`, or `canceled` / `expired`.
//!
//! Every function takes the caller's transaction (open it with `db::write`, which is
//! `BEGIN IMMEDIATE`, so concurrent cancels, expiries and arriving SMS serialise). The price
//! is charged when the number is issued; a cancel or expiry without a code refunds it once
//! (the ledger's unique refund index backs this up).

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use super::accounts::User;
use super::catalogue::{self, cooldown_cutoff};
use super::wallet::{self, Kind};
use super::{simulator, Error, Result};
use crate::clock::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Waiting,
    Received,
    Retry,
    Completed,
    Canceled,
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Waiting => "waiting",
            Status::Received => "received",
            Status::Retry => "retry",
            Status::Completed => "completed",
            Status::Canceled => "canceled",
            Status::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "waiting" => Status::Waiting,
            "received" => Status::Received,
            "retry" => Status::Retry,
            "completed" => Status::Completed,
            "canceled" => Status::Canceled,
            "expired" => Status::Expired,
            _ => return None,
        })
    }

    pub fn is_live(self) -> bool {
        matches!(self, Status::Waiting | Status::Received | Status::Retry)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Activation {
    pub id: i64,
    pub user_id: i64,
    pub number_id: Option<i64>,
    pub phone: String,
    pub country_id: i64,
    pub service: String,
    pub operator: String,
    pub price_minor: i64,
    pub status: Status,
    pub client_order_id: Option<String>,
    pub source: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub code_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub ready_at: Option<Timestamp>,
}

const COLS: &str = "id, user_id, number_id, phone, country_id, service, operator, price_minor, \
                    status, client_order_id, source, created_at, expires_at, code_at, ended_at, ready_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Activation> {
    let status: String = r.get(8)?;
    Ok(Activation {
        id: r.get(0)?,
        user_id: r.get(1)?,
        number_id: r.get(2)?,
        phone: r.get(3)?,
        country_id: r.get(4)?,
        service: r.get(5)?,
        operator: r.get(6)?,
        price_minor: r.get(7)?,
        status: Status::parse(&status).unwrap_or(Status::Expired),
        client_order_id: r.get(9)?,
        source: r.get(10)?,
        created_at: r.get(11)?,
        expires_at: r.get(12)?,
        code_at: r.get(13)?,
        ended_at: r.get(14)?,
        ready_at: r.get(15)?,
    })
}

/// The install's rules for orders (from the configuration and runtime settings).
#[derive(Debug, Clone)]
pub struct Policy {
    pub early_cancel: u64,
    pub default_ttl: u64,
    pub max_live: u32,
    pub cooldown: u64,
    pub sim_delay: u64,
}

#[derive(Debug, Clone, Default)]
pub struct OrderRequest {
    pub country: i64,
    pub service: String,
    /// None or "any": any operator.
    pub operator: Option<String>,
    pub max_price_minor: Option<i64>,
    pub client_order_id: Option<String>,
    /// Phone prefixes (with country code) the number must not start with.
    pub exclude_prefixes: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum Placed {
    New(Activation),
    /// The same client order id was used before: that order, unchanged, not charged again.
    Existing(Activation),
}

pub fn get(conn: &Connection, id: i64) -> Result<Option<Activation>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLS} FROM activations WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}

/// The activation if it belongs to `user_id` (someone else's is "not found").
pub fn get_for(conn: &Connection, user_id: i64, id: i64) -> Result<Activation> {
    match get(conn, id)? {
        Some(a) if a.user_id == user_id => Ok(a),
        _ => Err(Error::NotFound("activation")),
    }
}

pub fn list(
    conn: &Connection,
    user_id: i64,
    statuses: &[Status],
    limit: i64,
    offset: i64,
) -> Result<Vec<Activation>> {
    let filter = if statuses.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = statuses
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        format!("AND status IN ({})", list.join(","))
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM activations WHERE user_id = ?1 {filter} ORDER BY id DESC LIMIT ?2 OFFSET ?3"
    ))?;
    let rows = stmt.query_map(params![user_id, limit, offset], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn count_live(conn: &Connection, user_id: i64) -> Result<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*) FROM activations WHERE user_id = ?1 \
             AND status IN ('waiting','received','retry')",
        )?
        .query_row([user_id], |r| r.get(0))?)
}

/// A free number for `service` in `country`: not busy, never used for that service (or not
/// within the cooldown), not quarantined for it, of the operator asked for, outside the
/// excluded prefixes. Least recently used first.
pub fn pick_number(
    conn: &Connection,
    country: i64,
    service: &str,
    operator: &str,
    exclude: &[String],
    cooldown: u64,
    now: Timestamp,
) -> Result<Option<(i64, String, String, String)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT n.id, n.phone, n.operator, n.source FROM numbers n \
         WHERE n.country_id = ?1 AND {} AND (?2 = '' OR n.operator = ?2) \
         AND NOT EXISTS (SELECT 1 FROM number_usage u WHERE u.number_id = n.id \
                         AND u.service = ?3 AND (u.blocked = 1 OR u.last_used_at > ?4)) \
         ORDER BY n.last_used_at IS NOT NULL, n.last_used_at, n.id",
        catalogue::NUMBER_USABLE
    ))?;
    let mut rows = stmt.query(params![
        country,
        operator,
        service,
        cooldown_cutoff(cooldown, now)
    ])?;
    while let Some(r) = rows.next()? {
        let phone: String = r.get(1)?;
        if exclude
            .iter()
            .any(|p| !p.is_empty() && phone.starts_with(p.as_str()))
        {
            continue;
        }
        return Ok(Some((r.get(0)?, phone, r.get(2)?, r.get(3)?)));
    }
    Ok(None)
}

/// Marks a number busy and remembers it served `service`.
pub fn take_number(conn: &Connection, number_id: i64, service: &str, now: Timestamp) -> Result<()> {
    let n = conn
        .prepare_cached(
            "UPDATE numbers SET state = 'busy', last_used_at = ?2 WHERE id = ?1 AND state = 'free'",
        )?
        .execute(params![number_id, now])?;
    if n != 1 {
        return Err(Error::NoNumbers);
    }
    conn.prepare_cached(
        "INSERT INTO number_usage (number_id, service, last_used_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (number_id, service) DO UPDATE SET last_used_at = excluded.last_used_at",
    )?
    .execute(params![number_id, service, now])?;
    Ok(())
}

pub fn free_number(conn: &Connection, number_id: Option<i64>, now: Timestamp) -> Result<()> {
    if let Some(id) = number_id {
        conn.prepare_cached(
            "UPDATE numbers SET state = 'free', last_used_at = ?2 WHERE id = ?1 AND state = 'busy'",
        )?
        .execute(params![id, now])?;
    }
    Ok(())
}

pub fn order(
    conn: &Connection,
    user: &User,
    req: &OrderRequest,
    policy: &Policy,
    now: Timestamp,
) -> Result<Placed> {
    let client_id = req
        .client_order_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if let Some(cid) = client_id {
        if cid.len() > 100 {
            return Err(Error::invalid(
                "The order id must be at most 100 characters.",
            ));
        }
        let existing = conn
            .prepare_cached(&format!(
                "SELECT {COLS} FROM activations WHERE user_id = ?1 AND client_order_id = ?2"
            ))?
            .query_row(params![user.id, cid], from_row)
            .optional()?;
        if let Some(a) = existing {
            return Ok(Placed::Existing(a));
        }
    }
    if !user.is_active() {
        return Err(Error::Forbidden("This account cannot place orders.".into()));
    }
    if !user.is_verified() {
        return Err(Error::Forbidden(
            "Confirm your e-mail address before ordering.".into(),
        ));
    }
    catalogue::live_country(conn, req.country)?;
    let service = catalogue::live_service(conn, &req.service)?;
    let operator = match req.operator.as_deref().map(str::trim) {
        None | Some("") | Some("any") => String::new(),
        Some(op) => {
            let op = op.to_ascii_lowercase();
            if !catalogue::operator_exists(conn, req.country, &op)? {
                return Err(Error::WrongOperator);
            }
            op
        }
    };
    if count_live(conn, user.id)? >= policy.max_live as i64 {
        return Err(Error::Limit);
    }
    let price = catalogue::price(conn, req.country, &service.code, &operator)?
        .ok_or(Error::NoNumbers)?
        .price_minor;
    if let Some(max) = req.max_price_minor {
        if price > max {
            return Err(Error::WrongMaxPrice { min_minor: price });
        }
    }
    if user.balance_minor < price {
        return Err(Error::NoBalance);
    }
    let mut picked = pick_number(
        conn,
        req.country,
        &service.code,
        &operator,
        &req.exclude_prefixes,
        policy.cooldown,
        now,
    )?;
    if picked.is_none() && simulator::enabled(conn)? {
        picked = simulator::new_number(conn, req.country, &operator, &req.exclude_prefixes, now)?;
    }
    let (number_id, phone, number_operator, source) = picked.ok_or(Error::NoNumbers)?;
    take_number(conn, number_id, &service.code, now)?;
    let ttl = service
        .lifetime_secs
        .map(|s| s as u64)
        .unwrap_or(policy.default_ttl);
    conn.prepare_cached(
        "INSERT INTO activations (user_id, number_id, phone, country_id, service, operator, \
         price_minor, status, client_order_id, source, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'waiting', ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        user.id,
        number_id,
        phone,
        req.country,
        service.code,
        number_operator,
        price,
        client_id,
        source,
        now,
        now + ttl as i64
    ])?;
    let id = conn.last_insert_rowid();
    wallet::post(
        conn,
        user.id,
        -price,
        Kind::Charge,
        ("activation", Some(id)),
        &service.code,
        now,
    )?;
    let a = get(conn, id)?.ok_or(Error::NotFound("activation"))?;
    if a.source == simulator::SOURCE {
        simulator::schedule_activation(conn, &a, policy.sim_delay, now)?;
    }
    Ok(Placed::New(a))
}

fn set_status(
    conn: &Connection,
    id: i64,
    from: &[Status],
    to: Status,
    now: Timestamp,
) -> Result<()> {
    let list: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
    let ended = if to.is_live() { "ended_at" } else { "?2" };
    let n = conn.execute(
        &format!(
            "UPDATE activations SET status = ?3, ended_at = {ended} WHERE id = ?1 AND status IN ({})",
            list.join(",")
        ),
        params![id, now, to.as_str()],
    )?;
    if n != 1 {
        return Err(Error::BadStatus(
            "The order changed meanwhile; reload it.".into(),
        ));
    }
    Ok(())
}

fn ended(a: &Activation) -> Error {
    Error::BadStatus(format!("This order is already {}.", a.status.as_str()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// The customer changed their mind.
    Cancel,
    /// The service said the number is already used: also keep the number away from it.
    NumberUsed,
}

/// Cancels an order that has received no code, refunding it; refused during the
/// early-cancel window (the error says how long is left).
pub fn cancel(
    conn: &Connection,
    user_id: i64,
    id: i64,
    reason: CancelReason,
    policy: &Policy,
    now: Timestamp,
) -> Result<Activation> {
    let a = get_for(conn, user_id, id)?;
    if !a.status.is_live() {
        return Err(ended(&a));
    }
    if a.code_at.is_some() {
        return Err(Error::BadStatus(
            "A code has arrived for this order; it can only be completed.".into(),
        ));
    }
    let allowed_at = a.created_at + policy.early_cancel as i64;
    if now < allowed_at {
        return Err(Error::EarlyCancel {
            seconds_left: (allowed_at - now) as u64,
        });
    }
    set_status(conn, id, &[Status::Waiting], Status::Canceled, now)?;
    wallet::post(
        conn,
        a.user_id,
        a.price_minor,
        Kind::Refund,
        ("activation", Some(id)),
        "canceled",
        now,
    )?;
    free_number(conn, a.number_id, now)?;
    if reason == CancelReason::NumberUsed {
        if let Some(n) = a.number_id {
            conn.execute(
                "UPDATE number_usage SET blocked = 1 WHERE number_id = ?1 AND service = ?2",
                params![n, a.service],
            )?;
        }
    }
    simulator::forget(conn, Some(id), None)?;
    get_for(conn, user_id, id)
}

/// Finishes an order whose code has arrived. No refund.
pub fn complete(conn: &Connection, user_id: i64, id: i64, now: Timestamp) -> Result<Activation> {
    let a = get_for(conn, user_id, id)?;
    match a.status {
        Status::Received | Status::Retry => {}
        Status::Waiting => {
            return Err(Error::BadStatus(
                "No code has arrived yet; wait for it or cancel the order.".into(),
            ))
        }
        _ => return Err(ended(&a)),
    }
    set_status(
        conn,
        id,
        &[Status::Received, Status::Retry],
        Status::Completed,
        now,
    )?;
    free_number(conn, a.number_id, now)?;
    simulator::forget(conn, Some(id), None)?;
    get_for(conn, user_id, id)
}

/// Asks for another SMS on the same number (free, within the lifetime).
pub fn retry(
    conn: &Connection,
    user_id: i64,
    id: i64,
    policy: &Policy,
    now: Timestamp,
) -> Result<Activation> {
    let a = get_for(conn, user_id, id)?;
    match a.status {
        Status::Retry => return Ok(a),
        Status::Received if now < a.expires_at => {}
        Status::Received => return Err(ended(&a)),
        Status::Waiting => {
            return Err(Error::BadStatus(
                "No code has arrived yet; another SMS can be asked for after the first.".into(),
            ))
        }
        _ => return Err(ended(&a)),
    }
    set_status(conn, id, &[Status::Received], Status::Retry, now)?;
    let a = get_for(conn, user_id, id)?;
    if a.source == simulator::SOURCE {
        simulator::schedule_activation(conn, &a, policy.sim_delay, now)?;
    }
    Ok(a)
}

/// The customer says the SMS was requested (SMS-Activate status 1). Changes no state.
pub fn mark_ready(conn: &Connection, user_id: i64, id: i64, now: Timestamp) -> Result<Activation> {
    let a = get_for(conn, user_id, id)?;
    if !a.status.is_live() {
        return Err(ended(&a));
    }
    conn.execute(
        "UPDATE activations SET ready_at = COALESCE(ready_at, ?2) WHERE id = ?1",
        params![id, now],
    )?;
    get_for(conn, user_id, id)
}

/// A code arrived for a live activation: waiting/retry → received.
pub fn code_arrived(conn: &Connection, a: &Activation, now: Timestamp) -> Result<()> {
    conn.prepare_cached(
        "UPDATE activations SET status = 'received', code_at = COALESCE(code_at, ?2) \
         WHERE id = ?1 AND status IN ('waiting','received','retry')",
    )?
    .execute(params![a.id, now])?;
    Ok(())
}

/// Ends every live activation whose time is up: refunded and `expired` without a code,
/// `completed` with one. Returns the ids ended.
pub fn expire_due(conn: &Connection, now: Timestamp) -> Result<Vec<i64>> {
    let due: Vec<Activation> = {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLS} FROM activations WHERE status IN ('waiting','received','retry') \
             AND expires_at <= ?1 ORDER BY id LIMIT 500"
        ))?;
        let rows = stmt.query_map([now], from_row)?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut ended_ids = Vec::with_capacity(due.len());
    for a in due {
        if a.code_at.is_none() {
            set_status(conn, a.id, &[Status::Waiting], Status::Expired, now)?;
            wallet::post(
                conn,
                a.user_id,
                a.price_minor,
                Kind::Refund,
                ("activation", Some(a.id)),
                "expired",
                now,
            )?;
        } else {
            set_status(
                conn,
                a.id,
                &[Status::Received, Status::Retry],
                Status::Completed,
                now,
            )?;
        }
        free_number(conn, a.number_id, now)?;
        simulator::forget(conn, Some(a.id), None)?;
        ended_ids.push(a.id);
    }
    Ok(ended_ids)
}
