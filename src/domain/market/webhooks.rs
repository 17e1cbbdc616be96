//! Customer webhooks: registered URLs, the outbox of deliveries and the log of attempts.
//!
//! Events are queued by the domain code where they happen (`inbox` for an SMS, `activations`
//! for every status change), inside the caller's transaction, so a delivery exists exactly
//! when its state change was committed. Nothing here touches the network: the `webhooks` job
//! (jobs.rs) takes what is [`due`], POSTs it through `outbound.rs` and [`record`]s the outcome,
//! retrying with exponential back-off.
//!
//! Three receivers: a customer's `native` webhooks (signed JSON envelopes for the events they
//! chose, at most [`MAX_PER_ACCOUNT`]), the account's one `sms_activate` URL (the SMS-Activate
//! activation body of protocols §1.5, still with the signature headers), and a rental's own URL
//! (the SMS-Activate rent body; no secret, so no signature).

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use serde_json::{json, Value};

use crate::clock::{format_datetime, format_rfc3339, Timestamp};
use crate::domain::accounts::notifications;
use crate::domain::base::crypto::{hex, hmac_sha256, random_bytes, random_token, Keys};
use crate::domain::market::activations::{self, Activation, Status};
use crate::domain::market::rentals::Rental;
use crate::domain::{Error, Result};

pub const SMS_RECEIVED: &str = "sms.received";
pub const ACTIVATION_UPDATED: &str = "activation.updated";
pub const RENTAL_SMS: &str = "rental.sms";
/// The test event of the "send test" button.
pub const PING: &str = "ping";
/// The events a native webhook can choose.
pub const EVENTS: [&str; 3] = [SMS_RECEIVED, ACTIVATION_UPDATED, RENTAL_SMS];

pub const MAX_PER_ACCOUNT: i64 = 10;
/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: i64 = 8;
/// The wait after the first failed attempt; it doubles after each further one, up to
/// [`MAX_RETRY_DELAY`].
pub const FIRST_RETRY_DELAY: i64 = 30;
pub const MAX_RETRY_DELAY: i64 = 3600;
/// Finished deliveries (and their attempts) are kept this long for the log.
pub const KEEP_FINISHED: i64 = 7 * 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Native,
    SmsActivate,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Native => "native",
            Kind::SmsActivate => "sms_activate",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Webhook {
    pub id: i64,
    #[serde(skip)]
    pub user_id: i64,
    pub kind: Kind,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: Timestamp,
}

const COLS: &str = "id, user_id, kind, url, events, created_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Webhook> {
    let kind: String = r.get(2)?;
    let events: String = r.get(4)?;
    Ok(Webhook {
        id: r.get(0)?,
        user_id: r.get(1)?,
        kind: if kind == "sms_activate" {
            Kind::SmsActivate
        } else {
            Kind::Native
        },
        url: r.get(3)?,
        events: events.split_whitespace().map(str::to_string).collect(),
        created_at: r.get(5)?,
    })
}

/// The signing secret of a webhook. Only its salt is stored: the secret is derived with the
/// install key, so the database alone does not reveal it (like every other secret here).
pub fn secret(keys: &Keys, salt: &str) -> String {
    format!(
        "whsec_{}",
        hex(&keys.mac(b"webhook-secret", salt.as_bytes()))
    )
}

/// `v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`, the `X-Otpbox-Signature` header.
pub fn signature(secret: &str, timestamp: Timestamp, body: &[u8]) -> String {
    let mut msg = format!("{timestamp}.").into_bytes();
    msg.extend_from_slice(body);
    format!("v1={}", hex(&hmac_sha256(secret.as_bytes(), &msg)))
}

/// A webhook just made, with its secret (shown once).
#[derive(Debug, Clone)]
pub struct Created {
    pub webhook: Webhook,
    pub secret: String,
}

/// The host of a registered URL, for logs that must not show its path or query (which may
/// hold the customer's own token).
pub fn host_of(url: &str) -> String {
    crate::outbound::check_url(url, true)
        .map(|t| t.host)
        .unwrap_or_default()
}

/// A customer-supplied URL, checked the one way every customer URL is (`outbound::check_url`):
/// http(s), no credentials, no private or loopback address unless `allow_private`.
pub fn check_url(url: &str, allow_private: bool) -> Result<String> {
    crate::outbound::check_url(url, allow_private).map_err(Error::Invalid)?;
    Ok(url.trim().to_string())
}

fn insert(
    conn: &Connection,
    keys: &Keys,
    user_id: i64,
    kind: Kind,
    url: &str,
    events: &[&str],
    now: Timestamp,
) -> Result<Created> {
    let salt = random_token(16);
    conn.prepare_cached(
        "INSERT INTO webhooks (user_id, kind, url, events, secret_salt, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        user_id,
        kind.as_str(),
        url,
        events.join(" "),
        salt,
        now
    ])?;
    let webhook = get(conn, conn.last_insert_rowid())?.ok_or(Error::NotFound("webhook"))?;
    Ok(Created {
        secret: secret(keys, &salt),
        webhook,
    })
}

/// Registers a native webhook for `events` (all of them when empty is not allowed: at least
/// one must be chosen).
pub fn create(
    conn: &Connection,
    keys: &Keys,
    user_id: i64,
    url: &str,
    events: &[String],
    allow_private: bool,
    now: Timestamp,
) -> Result<Created> {
    let url = check_url(url, allow_private)?;
    let mut chosen: Vec<&str> = Vec::new();
    for e in events {
        let e = e.trim();
        let Some(known) = EVENTS.iter().find(|k| **k == e) else {
            return Err(Error::invalid(format!(
                "Unknown event `{e}`; choose among {}.",
                EVENTS.join(", ")
            )));
        };
        if !chosen.contains(known) {
            chosen.push(known);
        }
    }
    if chosen.is_empty() {
        return Err(Error::invalid("Choose at least one event."));
    }
    let count: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM webhooks WHERE user_id = ?1 AND kind = 'native'")?
        .query_row([user_id], |r| r.get(0))?;
    if count >= MAX_PER_ACCOUNT {
        return Err(Error::Conflict(format!(
            "An account can have at most {MAX_PER_ACCOUNT} webhooks; delete one first."
        )));
    }
    insert(conn, keys, user_id, Kind::Native, &url, &chosen, now)
}

/// Sets (or with an empty URL removes) the account's SMS-Activate-compatible URL. Setting it
/// again replaces it: a new secret, and deliveries still pending for the old URL are dropped.
pub fn set_sms_activate(
    conn: &Connection,
    keys: &Keys,
    user_id: i64,
    url: &str,
    allow_private: bool,
    now: Timestamp,
) -> Result<Option<Created>> {
    let url = if url.trim().is_empty() {
        None
    } else {
        Some(check_url(url, allow_private)?)
    };
    if let Some(old) = sms_activate(conn, user_id)? {
        remove(conn, old.id)?;
    }
    match url {
        None => Ok(None),
        Some(url) => insert(
            conn,
            keys,
            user_id,
            Kind::SmsActivate,
            &url,
            &[SMS_RECEIVED],
            now,
        )
        .map(Some),
    }
}

pub fn get(conn: &Connection, id: i64) -> Result<Option<Webhook>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLS} FROM webhooks WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}

/// The webhook if it belongs to `user_id` (someone else's is "not found").
pub fn get_for(conn: &Connection, user_id: i64, id: i64) -> Result<Webhook> {
    match get(conn, id)? {
        Some(w) if w.user_id == user_id => Ok(w),
        _ => Err(Error::NotFound("webhook")),
    }
}

/// The account's native webhooks, oldest first.
pub fn list(conn: &Connection, user_id: i64) -> Result<Vec<Webhook>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM webhooks WHERE user_id = ?1 AND kind = 'native' ORDER BY id"
    ))?;
    let rows = stmt.query_map([user_id], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn sms_activate(conn: &Connection, user_id: i64) -> Result<Option<Webhook>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM webhooks WHERE user_id = ?1 AND kind = 'sms_activate'"
        ))?
        .query_row([user_id], from_row)
        .optional()?)
}

fn remove(conn: &Connection, id: i64) -> Result<()> {
    conn.execute(
        "DELETE FROM webhook_attempts WHERE delivery_id IN \
         (SELECT id FROM webhook_deliveries WHERE webhook_id = ?1)",
        [id],
    )?;
    conn.execute("DELETE FROM webhook_deliveries WHERE webhook_id = ?1", [id])?;
    conn.execute("DELETE FROM webhooks WHERE id = ?1", [id])?;
    Ok(())
}

/// Deletes a webhook with its log; its pending deliveries are never sent.
pub fn delete(conn: &Connection, user_id: i64, id: i64) -> Result<Webhook> {
    let w = get_for(conn, user_id, id)?;
    remove(conn, id)?;
    Ok(w)
}

// ---------------------------------------------------------------------------------------
// Queueing events

/// A random UUID (version 4): the delivery id receivers see.
fn new_uuid() -> String {
    let mut b: [u8; 16] = random_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The JSON every native webhook receives.
#[derive(Serialize)]
struct Envelope<'a> {
    id: &'a str,
    event: &'a str,
    created_at: String,
    data: &'a Value,
}

/// What a delivery is about, for the retention rule (SMS events only).
type OrderRef<'a> = (&'a str, Option<i64>);

/// Who gets a delivery: an account's webhook, or (webhook None) a rental's own URL.
struct To<'a> {
    user_id: i64,
    webhook: Option<i64>,
    url: &'a str,
}

impl<'a> To<'a> {
    fn hook(w: &'a Webhook) -> To<'a> {
        To {
            user_id: w.user_id,
            webhook: Some(w.id),
            url: &w.url,
        }
    }
}

fn enqueue(
    conn: &Connection,
    to: To<'_>,
    event: &str,
    payload: impl FnOnce(&str) -> String,
    order: OrderRef<'_>,
    now: Timestamp,
) -> Result<String> {
    let To {
        user_id,
        webhook,
        url,
    } = to;
    let uuid = new_uuid();
    let body = payload(&uuid);
    conn.prepare_cached(
        "INSERT INTO webhook_deliveries (uuid, user_id, webhook_id, url, event, payload, \
         ref_type, ref_id, next_attempt_at, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
    )?
    .execute(params![
        uuid, user_id, webhook, url, event, body, order.0, order.1, now
    ])?;
    Ok(uuid)
}

fn enqueue_native(
    conn: &Connection,
    w: &Webhook,
    event: &str,
    data: &Value,
    order: OrderRef<'_>,
    now: Timestamp,
) -> Result<String> {
    enqueue(
        conn,
        To::hook(w),
        event,
        |uuid| {
            serde_json::to_string(&Envelope {
                id: uuid,
                event,
                created_at: format_rfc3339(now),
                data,
            })
            .expect("JSON of plain values")
        },
        order,
        now,
    )
}

/// The native webhooks of `user_id` that chose `event`.
fn subscribed(conn: &Connection, user_id: i64, event: &str) -> Result<Vec<Webhook>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM webhooks WHERE user_id = ?1 AND kind = 'native' \
         AND (' ' || events || ' ') LIKE ('% ' || ?2 || ' %') ORDER BY id"
    ))?;
    let rows = stmt.query_map(params![user_id, event], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Queues `event` for each of the account's native webhooks that chose it, with the payload
/// data `data` builds (only when one did).
fn enqueue_subscribed(
    conn: &Connection,
    user_id: i64,
    event: &str,
    data: impl FnOnce() -> Value,
    order: OrderRef<'_>,
    now: Timestamp,
) -> Result<()> {
    let hooks = subscribed(conn, user_id, event)?;
    if hooks.is_empty() {
        return Ok(());
    }
    let data = data();
    for w in &hooks {
        enqueue_native(conn, w, event, &data, order, now)?;
    }
    Ok(())
}

/// Queues `event` with `body` (an SMS-Activate compatible body, as JSON) to one URL.
fn enqueue_body(
    conn: &Connection,
    to: To<'_>,
    event: &str,
    body: &impl Serialize,
    order: OrderRef<'_>,
    now: Timestamp,
) -> Result<()> {
    let body = serde_json::to_string(body).expect("JSON of plain values");
    enqueue(conn, to, event, |_| body, order, now)?;
    Ok(())
}

/// An SMS as it was stored.
#[derive(Debug, Clone, Copy)]
pub struct Sms<'a> {
    pub sender: &'a str,
    pub text: &'a str,
    pub code: Option<&'a str>,
    pub received_at: Timestamp,
}

impl Sms<'_> {
    /// `order`'s fields of a native payload (an object) with the SMS's added.
    fn native_data(&self, mut order: Value) -> Value {
        if let Value::Object(fields) = &mut order {
            fields.insert("sender".into(), json!(self.sender));
            fields.insert("text".into(), json!(self.text));
            fields.insert("code".into(), json!(self.code));
            fields.insert(
                "received_at".into(),
                json!(format_rfc3339(self.received_at)),
            );
        }
        order
    }
}

/// The SMS-Activate activation webhook body (protocols §1.5): these names, these types, and
/// an ISO-8601 time with an explicit offset.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SmsActivateBody<'a> {
    activation_id: i64,
    service: &'a str,
    text: &'a str,
    code: &'a str,
    country: i64,
    received_at: String,
}

/// An SMS was delivered to an activation: `sms.received` for the native webhooks that chose
/// it, and the SMS-Activate body for the account's compatible URL.
pub fn activation_sms(conn: &Connection, a: &Activation, sms: &Sms, now: Timestamp) -> Result<()> {
    let order = ("activation", Some(a.id));
    let data = || {
        sms.native_data(json!({
            "activation_id": a.id,
            "phone": a.phone,
            "country": a.country_id,
            "service": a.service,
            "operator": a.operator,
        }))
    };
    enqueue_subscribed(conn, a.user_id, SMS_RECEIVED, data, order, now)?;
    if let Some(code) = sms.code {
        notifications::notify_private(
            conn,
            a.user_id,
            notifications::CODE,
            &format!("Code for {}", a.service),
            &format!("{code} is your {} code (order #{}).", a.service, a.id),
            &format!(
                "A code arrived for your {} order #{}: it is on your dashboard.",
                a.service, a.id
            ),
            now,
        )?;
    }
    if let Some(w) = sms_activate(conn, a.user_id)? {
        let body = SmsActivateBody {
            activation_id: a.id,
            service: &a.service,
            text: sms.text,
            code: sms.code.unwrap_or(""),
            country: a.country_id,
            received_at: chrono::DateTime::from_timestamp(sms.received_at, 0)
                .map(|d| d.format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
                .unwrap_or_default(),
        };
        enqueue_body(conn, To::hook(&w), SMS_RECEIVED, &body, order, now)?;
    }
    Ok(())
}

/// Activation `id` changed status (or was just placed, `previous` None): `activation.updated`
/// for the webhooks that chose it. Reads the activation as it is now.
pub fn activation_updated(
    conn: &Connection,
    id: i64,
    previous: Option<Status>,
    now: Timestamp,
) -> Result<()> {
    match activations::get(conn, id)? {
        Some(a) => activation_changed(conn, &a, previous, now),
        None => Ok(()),
    }
}

/// [`activation_updated`] for an order `a` as it is now in this transaction.
pub fn activation_changed(
    conn: &Connection,
    a: &Activation,
    previous: Option<Status>,
    now: Timestamp,
) -> Result<()> {
    if previous == Some(a.status) {
        return Ok(());
    }
    let data = || {
        json!({
            "activation_id": a.id,
            "status": a.status,
            "previous_status": previous,
            "phone": a.phone,
            "country": a.country_id,
            "service": a.service,
            "operator": a.operator,
            "price_minor": a.price_minor,
            "created_at": format_rfc3339(a.created_at),
            "expires_at": format_rfc3339(a.expires_at),
            "ended_at": a.ended_at.map(format_rfc3339),
        })
    };
    enqueue_subscribed(conn, a.user_id, ACTIVATION_UPDATED, data, ("", None), now)?;
    // Ended before a code came: the price went back to the wallet.
    let ended = match a.status {
        Status::Expired => Some("expired"),
        Status::Canceled => Some("was cancelled"),
        _ => None,
    };
    if let (Some(how), None) = (ended, a.code_at) {
        notifications::notify(
            conn,
            a.user_id,
            notifications::REFUNDED,
            &format!("Order #{} refunded", a.id),
            &format!(
                "Your {} order #{} {how} without a code; its price is back in your wallet.",
                a.service, a.id
            ),
            now,
        )?;
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RentBody<'a> {
    rent_id: String,
    sms: RentSms<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RentSms<'a> {
    phone_from: &'a str,
    text: &'a str,
    date: String,
}

/// An SMS was delivered to a rental: `rental.sms` for the native webhooks that chose it, and
/// the SMS-Activate rent body for the rental's own URL, if it has one.
pub fn rental_sms(conn: &Connection, r: &Rental, sms: &Sms, now: Timestamp) -> Result<()> {
    let order = ("rental", Some(r.id));
    let data = || {
        sms.native_data(json!({
            "rental_id": r.id,
            "phone": r.phone,
            "country": r.country_id,
            "service": r.service,
        }))
    };
    enqueue_subscribed(conn, r.user_id, RENTAL_SMS, data, order, now)?;
    notifications::notify_private(
        conn,
        r.user_id,
        notifications::RENTAL_SMS,
        &format!("SMS on rental #{}", r.id),
        &format!("From {}: {}", sms.sender, sms.text),
        &format!(
            "An SMS arrived on your rented number (rental #{}): it is on your dashboard.",
            r.id
        ),
        now,
    )?;
    if !r.webhook_url.is_empty() {
        let body = RentBody {
            rent_id: r.id.to_string(),
            sms: RentSms {
                phone_from: sms.sender,
                text: sms.text,
                date: format_datetime(sms.received_at),
            },
        };
        let to = To {
            user_id: r.user_id,
            webhook: None,
            url: &r.webhook_url,
        };
        enqueue_body(conn, to, RENTAL_SMS, &body, order, now)?;
    }
    Ok(())
}

/// Queues a `ping` delivery to one of the caller's webhooks; returns its delivery id.
pub fn queue_test(conn: &Connection, user_id: i64, id: i64, now: Timestamp) -> Result<String> {
    let w = get_for(conn, user_id, id)?;
    let data = json!({
        "webhook_id": w.id,
        "message": "A test delivery from otpbox: your endpoint is reachable.",
    });
    enqueue_native(conn, &w, PING, &data, ("", None), now)
}

// ---------------------------------------------------------------------------------------
// Sending (the `webhooks` job)

/// A delivery whose time has come.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    pub uuid: String,
    pub event: String,
    pub url: String,
    pub payload: String,
    /// None for a rental's own URL: sent without a signature.
    secret_salt: Option<String>,
    /// Attempts made before this one.
    pub attempts: i64,
}

impl Due {
    /// The headers of this attempt, signed at `timestamp`.
    pub fn headers(&self, keys: &Keys, timestamp: Timestamp) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("X-Otpbox-Event", self.event.clone()),
            ("X-Otpbox-Delivery", self.uuid.clone()),
            ("X-Otpbox-Attempt", (self.attempts + 1).to_string()),
            ("X-Otpbox-Timestamp", timestamp.to_string()),
        ];
        if let Some(salt) = &self.secret_salt {
            h.push((
                "X-Otpbox-Signature",
                signature(&secret(keys, salt), timestamp, self.payload.as_bytes()),
            ));
        }
        h
    }
}

/// At most `limit` deliveries due at `now`, the longest waiting first.
pub fn due(conn: &Connection, now: Timestamp, limit: i64) -> Result<Vec<Due>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.id, d.uuid, d.event, COALESCE(w.url, d.url), d.payload, w.secret_salt, \
         d.attempts FROM webhook_deliveries d LEFT JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.state = 'pending' AND d.next_attempt_at <= ?1 AND d.payload IS NOT NULL \
         AND (d.webhook_id IS NULL OR w.id IS NOT NULL) \
         ORDER BY d.next_attempt_at, d.id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now, limit], |r| {
        Ok(Due {
            id: r.get(0)?,
            uuid: r.get(1)?,
            event: r.get(2)?,
            url: r.get(3)?,
            payload: r.get(4)?,
            secret_salt: r.get(5)?,
            attempts: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The wait before the next attempt after `failed` failed attempts (1 → 30 s, 2 → 1 min,
/// 3 → 2 min, …, at most an hour).
pub fn retry_delay(failed: i64) -> i64 {
    let doublings = (failed - 1).clamp(0, 20) as u32;
    (FIRST_RETRY_DELAY << doublings).min(MAX_RETRY_DELAY)
}

/// One attempt's result as the job saw it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub status: Option<u16>,
    pub error: String,
    pub duration_ms: i64,
}

impl Attempt {
    pub fn is_success(&self) -> bool {
        matches!(self.status, Some(200..=299))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Delivered,
    Failed,
}

impl State {
    fn parse(s: &str) -> State {
        match s {
            "delivered" => State::Delivered,
            "failed" => State::Failed,
            _ => State::Pending,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Delivered => "delivered",
            State::Failed => "failed",
        }
    }
}

/// Logs an attempt and moves the delivery on: delivered on 2xx, else retried after
/// [`retry_delay`] or, after [`MAX_ATTEMPTS`], failed. A final delivery forgets its body.
/// A delivery deleted meanwhile (its webhook was) is left alone; returns None then.
pub fn record(
    conn: &Connection,
    d: &Due,
    attempt: &Attempt,
    now: Timestamp,
) -> Result<Option<State>> {
    let n = d.attempts + 1;
    let state = if attempt.is_success() {
        State::Delivered
    } else if n >= MAX_ATTEMPTS {
        State::Failed
    } else {
        State::Pending
    };
    let finished = (state != State::Pending).then_some(now);
    let changed = conn
        .prepare_cached(
            "UPDATE webhook_deliveries SET state = ?2, attempts = ?3, next_attempt_at = ?4, \
             finished_at = ?5, last_status = ?6, last_error = ?7, \
             payload = CASE WHEN ?2 = 'pending' THEN payload END \
             WHERE id = ?1 AND state = 'pending' AND attempts = ?8",
        )?
        .execute(params![
            d.id,
            state.as_str(),
            n,
            now + retry_delay(n),
            finished,
            attempt.status,
            attempt.error,
            d.attempts
        ])?;
    if changed == 0 {
        return Ok(None);
    }
    conn.prepare_cached(
        "INSERT INTO webhook_attempts (delivery_id, attempt, at, http_status, error, duration_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        d.id,
        n,
        now,
        attempt.status,
        attempt.error,
        attempt.duration_ms
    ])?;
    Ok(Some(state))
}

/// Forgets finished deliveries older than [`KEEP_FINISHED`]; returns how many.
pub fn prune(conn: &Connection, now: Timestamp) -> Result<usize> {
    let cutoff = now - KEEP_FINISHED;
    conn.execute(
        "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries \
         WHERE state <> 'pending' AND finished_at <= ?1)",
        [cutoff],
    )?;
    Ok(conn.execute(
        "DELETE FROM webhook_deliveries WHERE state <> 'pending' AND finished_at <= ?1",
        [cutoff],
    )?)
}

/// The privacy promise covers SMS text waiting in the outbox too: a pending delivery that
/// carries an SMS of an order that ended more than `retention` ago is given up, its body
/// deleted, together with the stored messages (called by the `sms_retention` job).
pub fn forget_sms(conn: &Connection, retention: u64, now: Timestamp) -> Result<usize> {
    let cutoff = now - retention as i64;
    Ok(conn.execute(
        "UPDATE webhook_deliveries SET state = 'failed', payload = NULL, finished_at = ?2, \
         last_error = 'given up: the SMS was deleted under the retention period' \
         WHERE state = 'pending' AND ( \
           (ref_type = 'activation' AND EXISTS (SELECT 1 FROM activations a \
              WHERE a.id = webhook_deliveries.ref_id AND a.ended_at <= ?1)) \
           OR (ref_type = 'rental' AND EXISTS (SELECT 1 FROM rentals r \
              WHERE r.id = webhook_deliveries.ref_id AND r.ended_at <= ?1)))",
        params![cutoff, now],
    )?)
}

// ---------------------------------------------------------------------------------------
// The delivery log

#[derive(Debug, Clone, Serialize)]
pub struct AttemptRow {
    pub attempt: i64,
    pub at: Timestamp,
    pub http_status: Option<u16>,
    pub error: String,
    pub duration_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// The X-Otpbox-Delivery id.
    pub id: String,
    pub event: String,
    pub state: State,
    pub attempts: i64,
    pub created_at: Timestamp,
    /// When the next attempt is due (pending deliveries only).
    pub next_attempt_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub last_status: Option<u16>,
    pub last_error: String,
    pub log: Vec<AttemptRow>,
}

/// The newest `limit` deliveries of a webhook with every attempt, newest first.
pub fn deliveries(conn: &Connection, webhook_id: i64, limit: i64) -> Result<Vec<Delivery>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, uuid, event, state, attempts, created_at, next_attempt_at, finished_at, \
         last_status, last_error FROM webhook_deliveries WHERE webhook_id = ?1 \
         ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![webhook_id, limit], |r| {
        let state = State::parse(&r.get::<_, String>(3)?);
        Ok((
            r.get::<_, i64>(0)?,
            Delivery {
                id: r.get(1)?,
                event: r.get(2)?,
                state,
                attempts: r.get(4)?,
                created_at: r.get(5)?,
                next_attempt_at: if state == State::Pending {
                    r.get(6)?
                } else {
                    None
                },
                finished_at: r.get(7)?,
                last_status: r.get(8)?,
                last_error: r.get(9)?,
                log: Vec::new(),
            },
        ))
    })?;
    let mut out = Vec::new();
    let mut attempts = conn.prepare_cached(
        "SELECT attempt, at, http_status, error, duration_ms FROM webhook_attempts \
         WHERE delivery_id = ?1 ORDER BY attempt",
    )?;
    for row in rows {
        let (id, mut d) = row?;
        d.log = attempts
            .query_map([id], |r| {
                Ok(AttemptRow {
                    attempt: r.get(0)?,
                    at: r.get(1)?,
                    http_status: r.get(2)?,
                    error: r.get(3)?,
                    duration_ms: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        out.push(d);
    }
    Ok(out)
}

/// The state of a webhook's newest delivery, for the list.
pub fn last_state(conn: &Connection, webhook_id: i64) -> Result<Option<(State, Timestamp)>> {
    Ok(conn
        .prepare_cached(
            "SELECT state, created_at FROM webhook_deliveries WHERE webhook_id = ?1 \
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row([webhook_id], |r| {
            Ok((State::parse(&r.get::<_, String>(0)?), r.get(1)?))
        })
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::{self, NewUser, Role};

    const T0: i64 = 1_000_000;

    fn setup() -> (Connection, Keys, i64) {
        let conn = db::memory();
        let u = accounts::create(
            &conn,
            &NewUser {
                email: "w@example.com",
                password_hash: None,
                role: Role::User,
                verified: true,
                age_confirmed: true,
                aup_accepted: true,
            },
            T0,
        )
        .unwrap();
        (conn, Keys::from_bytes([7; 32]), u.id)
    }

    fn all() -> Vec<String> {
        EVENTS.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn an_sms_payload_is_the_order_fields_and_the_sms_fields() {
        let sms = Sms {
            sender: "Telegram",
            text: "Code: 12345",
            code: Some("12345"),
            received_at: T0,
        };
        let data = sms.native_data(json!({"rental_id": 7, "phone": "62811", "country": 6}));
        let whole = json!({
            "rental_id": 7,
            "phone": "62811",
            "country": 6,
            "sender": "Telegram",
            "text": "Code: 12345",
            "code": "12345",
            "received_at": format_rfc3339(T0),
        });
        assert_eq!(data.to_string(), whole.to_string());
    }

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        let sig = signature("whsec_x", 1700000000, b"{\"a\":1}");
        let expected = hex(&hmac_sha256(b"whsec_x", b"1700000000.{\"a\":1}"));
        assert_eq!(sig, format!("v1={expected}"));
    }

    #[test]
    fn uuids_are_version_4() {
        let u = new_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!("89ab".contains(&u[19..20]));
        assert_ne!(u, new_uuid());
    }

    #[test]
    fn retry_delays_double_up_to_an_hour() {
        let delays: Vec<i64> = (1..=9).map(retry_delay).collect();
        assert_eq!(delays, vec![30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }

    #[test]
    fn registration_checks_url_events_and_the_limit() {
        let (conn, keys, user) = setup();
        let bad = |url: &str, events: &[String]| {
            create(&conn, &keys, user, url, events, false, T0).unwrap_err()
        };
        assert!(matches!(
            bad("http://127.0.0.1/x", &all()),
            Error::Invalid(_)
        ));
        assert!(matches!(
            bad("ftp://example.com/", &all()),
            Error::Invalid(_)
        ));
        assert!(matches!(
            bad("https://example.com/", &[]),
            Error::Invalid(_)
        ));
        assert!(matches!(
            bad("https://example.com/", &["sms.sent".into()]),
            Error::Invalid(_)
        ));
        let c = create(
            &conn,
            &keys,
            user,
            "https://example.com/h",
            &["rental.sms".into(), "rental.sms".into()],
            false,
            T0,
        )
        .unwrap();
        assert_eq!(c.webhook.events, vec!["rental.sms"]);
        assert!(c.secret.starts_with("whsec_"));
        for i in 1..MAX_PER_ACCOUNT {
            create(
                &conn,
                &keys,
                user,
                &format!("https://example.com/{i}"),
                &all(),
                false,
                T0,
            )
            .unwrap();
        }
        assert!(matches!(
            bad("https://example.com/11", &all()),
            Error::Conflict(_)
        ));
        // The SMS-Activate URL is separate from the limit, and one per account.
        set_sms_activate(&conn, &keys, user, "https://example.com/sa", false, T0).unwrap();
        set_sms_activate(&conn, &keys, user, "https://example.com/sb", false, T0).unwrap();
        assert_eq!(
            sms_activate(&conn, user).unwrap().unwrap().url,
            "https://example.com/sb"
        );
        set_sms_activate(&conn, &keys, user, "", false, T0).unwrap();
        assert!(sms_activate(&conn, user).unwrap().is_none());
    }

    fn ping(conn: &Connection, keys: &Keys, user: i64) -> (Webhook, String) {
        let c = create(conn, keys, user, "https://example.com/h", &all(), false, T0).unwrap();
        queue_test(conn, user, c.webhook.id, T0).unwrap();
        (c.webhook, c.secret)
    }

    fn fail() -> Attempt {
        Attempt {
            status: Some(500),
            error: "HTTP 500".into(),
            duration_ms: 3,
        }
    }

    #[test]
    fn failures_back_off_then_give_up_and_success_forgets_the_body() {
        let (conn, keys, user) = setup();
        let (w, secret) = ping(&conn, &keys, user);
        let mut now = T0;
        for n in 1..=MAX_ATTEMPTS {
            let due_now = due(&conn, now, 10).unwrap();
            assert_eq!(due_now.len(), 1, "attempt {n}");
            let d = &due_now[0];
            assert_eq!(d.attempts, n - 1);
            let h = d.headers(&keys, now);
            let sig = &h
                .iter()
                .find(|(k, _)| *k == "X-Otpbox-Signature")
                .unwrap()
                .1;
            assert_eq!(*sig, signature(&secret, now, d.payload.as_bytes()));
            let state = record(&conn, d, &fail(), now).unwrap().unwrap();
            if n < MAX_ATTEMPTS {
                assert_eq!(state, State::Pending);
                assert!(due(&conn, now + retry_delay(n) - 1, 10).unwrap().is_empty());
                now += retry_delay(n);
            } else {
                assert_eq!(state, State::Failed);
            }
        }
        assert!(due(&conn, now + 100_000, 10).unwrap().is_empty());
        let log = deliveries(&conn, w.id, 10).unwrap();
        assert_eq!(log[0].state, State::Failed);
        assert_eq!(log[0].log.len() as i64, MAX_ATTEMPTS);
        let payload: Option<String> = conn
            .query_row("SELECT payload FROM webhook_deliveries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(payload, None);

        queue_test(&conn, user, w.id, now).unwrap();
        let d = due(&conn, now, 10).unwrap().remove(0);
        let ok = Attempt {
            status: Some(204),
            error: String::new(),
            duration_ms: 1,
        };
        assert_eq!(record(&conn, &d, &ok, now).unwrap(), Some(State::Delivered));
        // A second record of the same attempt (a concurrent run) changes nothing.
        assert_eq!(record(&conn, &d, &ok, now).unwrap(), None);
        assert_eq!(prune(&conn, now + KEEP_FINISHED - 1).unwrap(), 0);
        assert_eq!(prune(&conn, now + KEEP_FINISHED).unwrap(), 2);
        assert!(deliveries(&conn, w.id, 10).unwrap().is_empty());
    }

    fn events(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT event FROM webhook_deliveries WHERE state = 'pending' ORDER BY id")
            .unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    #[test]
    fn events_are_queued_with_the_change_and_sms_forgotten_with_the_retention() {
        use crate::domain::market::activations::{OrderRequest, Placed, Policy};
        use crate::domain::market::inbox::{self, Inbound};
        use crate::domain::{market::catalogue, market::wallet};
        let (conn, keys, user) = setup();
        catalogue::seed_if_empty(&conn).unwrap();
        wallet::post(
            &conn,
            user,
            1000,
            wallet::Kind::Adjustment,
            ("", None),
            "",
            T0,
        )
        .unwrap();
        conn.execute(
            "INSERT INTO numbers (phone, country_id, operator, source, created_at) \
             VALUES ('62811000001', 6, 'telkomsel', 'manual', ?1)",
            [T0],
        )
        .unwrap();
        create(
            &conn,
            &keys,
            user,
            "https://example.com/n",
            &all(),
            false,
            T0,
        )
        .unwrap();
        set_sms_activate(&conn, &keys, user, "https://example.com/sa", false, T0).unwrap();
        let policy = Policy {
            early_cancel: 120,
            default_ttl: 1200,
            max_live: 3,
            cooldown: 0,
            sim_delay: 5,
            sim_odds: crate::domain::market::simulator::Odds::NONE,
            operator_share: 70,
            allow_private_urls: false,
        };
        let req = OrderRequest {
            country: 6,
            service: "tg".into(),
            ..Default::default()
        };
        let u = accounts::get(&conn, user).unwrap();
        // A change that is rolled back queues nothing.
        let undone = db::write(&conn, |tx| {
            activations::order(tx, &u, &req, &policy, T0)?;
            Err::<(), _>(Error::Internal("rolled back".into()))
        });
        assert!(undone.is_err());
        assert!(events(&conn).is_empty());
        let Placed::New(a) =
            db::write(&conn, |tx| activations::order(tx, &u, &req, &policy, T0)).unwrap()
        else {
            panic!("a new order")
        };
        assert_eq!(events(&conn), vec![ACTIVATION_UPDATED]);
        let sms = Inbound {
            to: a.phone.clone(),
            sender: "Telegram".into(),
            text: "Telegram code: 12345".into(),
            received_at: T0 + 10,
            source: "test".into(),
            source_msg_id: None,
            device_id: None,
        };
        db::write(&conn, |tx| inbox::ingest(tx, &sms, T0 + 10)).unwrap();
        activations::complete(&conn, user, a.id, &policy, T0 + 20).unwrap();
        assert_eq!(
            events(&conn),
            vec![
                ACTIVATION_UPDATED,
                SMS_RECEIVED,
                SMS_RECEIVED,
                ACTIVATION_UPDATED,
                ACTIVATION_UPDATED
            ]
        );
        // The SMS text in the outbox goes when the stored SMS goes.
        assert_eq!(forget_sms(&conn, 300, T0 + 20 + 299).unwrap(), 0);
        assert_eq!(forget_sms(&conn, 300, T0 + 20 + 300).unwrap(), 2);
        assert_eq!(events(&conn), vec![ACTIVATION_UPDATED; 3]);
        let kept: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM webhook_deliveries WHERE payload IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(kept, 3);
    }

    #[test]
    fn deleting_a_webhook_drops_its_pending_deliveries() {
        let (conn, keys, user) = setup();
        let (w, _) = ping(&conn, &keys, user);
        let d = due(&conn, T0, 10).unwrap().remove(0);
        record(&conn, &d, &fail(), T0).unwrap();
        assert!(matches!(
            delete(&conn, user + 1, w.id),
            Err(Error::NotFound(_))
        ));
        delete(&conn, user, w.id).unwrap();
        assert!(due(&conn, T0 + 100_000, 10).unwrap().is_empty());
        // The job may still hold the delivery it read before: recording it is a no-op.
        assert_eq!(record(&conn, &d, &fail(), T0 + 40).unwrap(), None);
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM webhook_attempts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }
}
