//! `POST /ingest/{kind}/{device_id}`: inbound SMS from operators' gateway software
//! (protocols.md §4). `kind` is `capcom6` (SMS Gateway for Android), `httpsms`, `textbee` or
//! `generic` (our own JSON, also spoken by the gammu-smsd and smstools3 bridges in
//! `packaging/bridges/`); `device_id` is the device's public id.
//!
//! Each request is authenticated with that device's own secret, the way its gateway signs:
//! capcom6 `X-Signature` = hex HMAC-SHA256 over the raw body followed by `X-Timestamp` (within
//! ±5 minutes), textbee `X-Signature` = hex HMAC-SHA256 over the raw body, httpSMS an HS256
//! bearer JWT (expiry, audience), generic `Authorization: Bearer <secret>`. Every comparison
//! is constant-time. Any kind's URL also takes `{"event": "ping"}` with the device secret as
//! bearer token: a heartbeat for gateways that send none. Then the body is parsed into [`gateway::Event`]s and taken in by
//! [`gateway::take_in`] in one transaction; the answer (JSON) is sent only after it committed.
//!
//! Answers: unknown device or wrong kind → 404; bad or missing signature, token or timestamp
//! → 401; malformed body → 400 with what is wrong. None of these changes anything. Everything
//! authenticated and well-formed gets 200, also a redelivery (stored once) and an SMS that
//! reaches no order (unknown number, no live order: `"status": "not_delivered"`), so the
//! gateway stops retrying.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::clock::Timestamp;
use crate::db;
use crate::domain::base::crypto::{constant_time_eq, hmac_sha256, unhex};
use crate::domain::market::inbox::Delivered;
use crate::domain::supply::devices::{self, Device, Kind};
use crate::domain::supply::gateway::{self, Event, Outcome, ReportedSim, Sms};
use crate::http::router::Router;
use crate::http::{api, Ctx, Method, Request, Response};

pub fn routes(r: &mut Router) {
    r.gateway(Method::Post, "/ingest/{kind}/{device_id}", ingest);
}

/// How far capcom6's `X-Timestamp` may be from our clock.
const MAX_SKEW: i64 = 300;
/// Clock leeway for a JWT's `exp` and `nbf`.
const JWT_LEEWAY: i64 = 60;

/// A delivery whose signature (or heartbeat token) checked out: the device it came from.
pub struct Sender {
    pub device: Device,
    /// A `{"event": "ping"}` authenticated by the device secret as bearer token.
    pub heartbeat: bool,
}

/// [`Access::Gateway`](crate::http::router::Access::Gateway): the device named by the path, if
/// the request is signed with its secret the way its gateway kind signs (or is a heartbeat
/// with the secret as bearer token). 404 for an unknown device or kind, 401 for a bad
/// signature, checked before anything is read or written.
pub fn sender(ctx: &mut Ctx<'_>, req: &Request) -> Result<Sender, Response> {
    let kind = req.param("kind").and_then(Kind::parse);
    let public_id = req.param("device_id").unwrap_or("");
    let device = match kind.map(|_| devices::by_public_id(ctx.db, public_id)) {
        Some(Ok(Some(d))) if Some(d.kind) == kind => d,
        Some(Err(e)) => return Err(api::error(&e)),
        _ => {
            return Err(Response::json_error(
                404,
                "not_found",
                "No device with this id and gateway kind: check the webhook URL.",
            ))
        }
    };
    let kind = device.kind;
    let now = ctx.now();
    let secret = devices::secret(&ctx.app.keys, &device.secret_salt);
    // Gateways without a heartbeat of their own (httpSMS, textbee) are kept online by a
    // `{"event": "ping"}` with the device secret as bearer token, from cron.
    let heartbeat = kind != Kind::Generic
        && req
            .bearer()
            .is_some_and(|t| constant_time_eq(t.as_bytes(), secret.as_bytes()));
    if !heartbeat {
        if let Err(why) = authenticate(kind, req, &secret, &device.public_id, now) {
            log::info!(
                "ingest {} device {}: refused: {why}",
                kind.as_str(),
                device.public_id
            );
            return Err(Response::json_error(401, "unauthorized", &why));
        }
    }
    Ok(Sender { device, heartbeat })
}

fn ingest(ctx: &mut Ctx<'_>, req: &Request, sender: &Sender) -> Response {
    let (device, heartbeat) = (&sender.device, sender.heartbeat);
    let kind = device.kind;
    let now = ctx.now();
    let parsed = if heartbeat {
        parse_heartbeat(&req.body)
    } else {
        parse(kind, &req.body)
    };
    let events = match parsed.and_then(|events| gateway::check(&events, now).map(|()| events)) {
        Ok(events) => events,
        Err(why) => {
            log::info!(
                "ingest {} device {}: malformed body: {why}",
                kind.as_str(),
                device.public_id
            );
            return Response::json_error(400, "invalid_request", &why);
        }
    };
    let outcomes = match db::write(ctx.db, |tx| gateway::take_in(tx, device, &events, now)) {
        Ok(o) => o,
        Err(e) => return api::error(&e),
    };
    let mut delivered = 0;
    for o in &outcomes {
        if let Outcome::Sms { delivered: d, .. } = o {
            let outcome = match d {
                Delivered::Activation { .. }
                | Delivered::Rental { .. }
                | Delivered::Partner { .. } => "delivered",
                Delivered::Duplicate => "duplicate",
                Delivered::NoLiveOrder => "no_live_order",
                Delivered::UnknownNumber => "unknown_number",
            };
            ctx.app.metrics.sms(kind.as_str(), outcome);
        }
        match o {
            Outcome::Sms {
                delivered:
                    Delivered::Activation { .. } | Delivered::Rental { .. } | Delivered::Partner { .. },
                ..
            } => delivered += 1,
            Outcome::Sms { id, delivered: d } => log::info!(
                "ingest {} device {}: message {} not delivered ({})",
                kind.as_str(),
                device.public_id,
                id.as_deref().unwrap_or("without id"),
                match d {
                    Delivered::Duplicate => "already received",
                    Delivered::NoLiveOrder => "no live order on the number",
                    _ => "unknown number",
                }
            ),
            Outcome::Sims(s) => log::info!(
                "ingest {} device {}: SIM list: {} registered, {} removed, {} skipped",
                kind.as_str(),
                device.public_id,
                s.registered.len(),
                s.removed.len(),
                s.skipped.len()
            ),
            Outcome::Part { id } => log::info!(
                "ingest {} device {}: message {} held, part of a long SMS",
                kind.as_str(),
                device.public_id,
                id.as_deref().unwrap_or("without id"),
            ),
            Outcome::Status(n) => log::debug!(
                "ingest {} device {}: status of {n} SIMs",
                kind.as_str(),
                device.public_id
            ),
            Outcome::Ping | Outcome::Ignored(_) => {}
        }
    }
    if delivered > 0 {
        ctx.app.notify();
    }
    Response::json(
        200,
        &json!({
            "ok": true,
            "delivered": delivered,
            "results": outcomes.iter().map(outcome_json).collect::<Vec<_>>(),
        }),
    )
}

fn outcome_json(o: &Outcome) -> Value {
    match o {
        Outcome::Sms { id, delivered } => {
            let (status, reason) = match delivered {
                Delivered::Activation { .. }
                | Delivered::Rental { .. }
                | Delivered::Partner { .. } => ("delivered", None),
                Delivered::Duplicate => ("duplicate", None),
                Delivered::NoLiveOrder => ("not_delivered", Some("no_live_order")),
                Delivered::UnknownNumber => ("not_delivered", Some("unknown_number")),
            };
            let mut v = json!({"event": "sms", "id": id, "status": status});
            if let Some(r) = reason {
                v["reason"] = json!(r);
            }
            v
        }
        Outcome::Sims(s) => json!({
            "event": "sims",
            "registered": s.registered,
            "removed": s.removed,
            "skipped": s.skipped,
        }),
        Outcome::Part { id } => json!({"event": "sms", "id": id, "status": "held"}),
        Outcome::Status(n) => json!({"event": "status", "sims": n}),
        Outcome::Ping => json!({"event": "ping"}),
        Outcome::Ignored(t) => json!({"event": "ignored", "type": t}),
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication

/// Checks the request's credentials for a device of `kind` whose secret is `secret`; the
/// reason when they do not hold.
fn authenticate(
    kind: Kind,
    req: &Request,
    secret: &str,
    public_id: &str,
    now: Timestamp,
) -> Result<(), String> {
    let key = secret.as_bytes();
    match kind {
        Kind::Capcom6 => {
            let (Some(sig), Some(ts)) = (req.header("x-signature"), req.header("x-timestamp"))
            else {
                return Err(
                    "X-Signature and X-Timestamp headers are required: set the device \
                            secret as the Signing Key in the app's webhook settings."
                        .into(),
                );
            };
            let mut signed = req.body.clone();
            signed.extend_from_slice(ts.as_bytes());
            check_hex_mac(key, &signed, sig)?;
            let t: i64 = ts
                .trim()
                .parse()
                .map_err(|_| "X-Timestamp must be Unix seconds.".to_string())?;
            if (now - t).abs() > MAX_SKEW {
                return Err(
                    "X-Timestamp is more than 5 minutes away from the server's clock \
                            (a replayed request, or the phone's clock is wrong)."
                        .into(),
                );
            }
            Ok(())
        }
        Kind::Textbee => {
            let sig = req.header("x-signature").ok_or_else(|| {
                "The X-Signature header is required: set the device secret as the webhook's \
                 signing secret."
                    .to_string()
            })?;
            check_hex_mac(key, &req.body, sig)
        }
        Kind::Httpsms => {
            let token = req.bearer().ok_or_else(|| {
                "An Authorization: Bearer JWT is required: set the device secret as the \
                 webhook's signing key."
                    .to_string()
            })?;
            verify_jwt(token, key, now, &format!("/ingest/httpsms/{public_id}"))
        }
        Kind::Dinstar | Kind::Ejoin => super::simbank::authenticate(req, secret),
        Kind::Goip => Err(
            "GoIP gateways speak UDP, not HTTP: set goip_listen and point the GoIP's SMS \
             server at it (README, \"GoIP\")."
                .into(),
        ),
        Kind::Generic => {
            let token = req.bearer().ok_or_else(|| {
                "An Authorization: Bearer header with the device secret is required.".to_string()
            })?;
            if constant_time_eq(token.as_bytes(), key) {
                Ok(())
            } else {
                Err("The bearer token is not this device's secret.".into())
            }
        }
    }
}

/// `signature` (hex, optionally `sha256=`-prefixed) is HMAC-SHA256(key, data).
fn check_hex_mac(key: &[u8], data: &[u8], signature: &str) -> Result<(), String> {
    let sig = signature.trim();
    let sig = sig.strip_prefix("sha256=").unwrap_or(sig);
    let given = unhex(sig).unwrap_or_default();
    if constant_time_eq(&given, &hmac_sha256(key, data)) {
        Ok(())
    } else {
        Err("The signature does not match: is the signing key the device secret?".into())
    }
}

/// Verifies an HS256 JWT signed with `key`: the signature (constant-time), `exp` (required)
/// and `nbf` with [`JWT_LEEWAY`], and an `aud` (string or array) holding a URL whose path ends
/// with `audience_path` (only the path: we may sit behind a proxy that changes the host).
pub fn verify_jwt(
    token: &str,
    key: &[u8],
    now: Timestamp,
    audience_path: &str,
) -> Result<(), String> {
    let malformed = || "The bearer token is not a JWT.".to_string();
    let mut parts = token.trim().split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let header: Value = base64url(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(malformed)?;
    if header.get("alg").and_then(Value::as_str) != Some("HS256") {
        return Err("The JWT must be signed with HS256.".into());
    }
    let sig = base64url(s).ok_or_else(malformed)?;
    let expected = hmac_sha256(key, format!("{h}.{p}").as_bytes());
    if !constant_time_eq(&sig, &expected) {
        return Err(
            "The JWT signature does not match: is the signing key the device secret?".into(),
        );
    }
    let claims: Value = base64url(p)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(malformed)?;
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| "The JWT has no expiry (exp).".to_string())?;
    if now > exp + JWT_LEEWAY {
        return Err("The JWT has expired.".into());
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64) {
        if now + JWT_LEEWAY < nbf {
            return Err("The JWT is not valid yet (nbf).".into());
        }
    }
    let auds: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if auds
        .iter()
        .any(|a| url_path(a).trim_end_matches('/').ends_with(audience_path))
    {
        Ok(())
    } else {
        Err(format!(
            "The JWT's audience is not this device's webhook URL (…{audience_path})."
        ))
    }
}

/// The path of `https://host/a/b?q` (`/a/b`); a bare path stays as it is.
fn url_path(url: &str) -> &str {
    let rest = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => url,
    };
    rest.split(['?', '#']).next().unwrap_or("")
}

/// Decodes base64, standard or URL alphabet, padded or not.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    if text.contains(['-', '_']) {
        return base64url(text);
    }
    base64url(&text.replace('+', "-").replace('/', "_"))
}

/// Decodes unpadded (or padded) base64url.
fn base64url(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Formats

/// The events a body of `kind` carries, or what is wrong with it.
pub fn parse(kind: Kind, body: &[u8]) -> Result<Vec<Event>, String> {
    match kind {
        Kind::Generic => return generic(body),
        Kind::Dinstar => return super::simbank::dinstar(body),
        Kind::Ejoin => return super::simbank::ejoin(body),
        Kind::Goip => return Err("GoIP gateways speak UDP, not HTTP.".into()),
        _ => {}
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("The body is not valid JSON: {e}"))?;
    let v = v
        .as_object()
        .ok_or_else(|| "The body must be a JSON object.".to_string())?;
    match kind {
        Kind::Capcom6 => capcom6(v),
        Kind::Httpsms => httpsms(v),
        Kind::Textbee => textbee(v),
        Kind::Generic | Kind::Dinstar | Kind::Ejoin | Kind::Goip => {
            unreachable!("handled above")
        }
    }
}

/// The body of a heartbeat sent with the device secret as bearer token to a gateway kind's
/// URL: only `{"event": "ping"}`.
fn parse_heartbeat(body: &[u8]) -> Result<Vec<Event>, String> {
    match generic(body) {
        Ok(events) if events == [Event::Ping] => Ok(events),
        _ => Err(
            "With the device secret as bearer token only {\"event\": \"ping\"} is \
                  accepted here; messages must come signed in the gateway's own format."
                .into(),
        ),
    }
}

type Obj = Map<String, Value>;

fn opt_str(o: &Obj, key: &str, at: &str) -> Result<Option<String>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{at}{key} must be a string.")),
    }
}

fn req_str(o: &Obj, key: &str, at: &str) -> Result<String, String> {
    opt_str(o, key, at)?.ok_or_else(|| format!("{at}{key} is missing."))
}

fn opt_int(o: &Obj, key: &str, at: &str) -> Result<Option<i64>, String> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
        Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => Ok(s.trim().parse().ok()),
        Some(_) => Err(format!("{at}{key} must be an integer.")),
    }
}

fn object<'a>(v: Option<&'a Value>, at: &str) -> Result<&'a Obj, String> {
    v.and_then(Value::as_object)
        .ok_or_else(|| format!("{at} must be a JSON object."))
}

/// RFC 3339 with any offset (`2024-06-22T15:46:11.000+07:00`) to Unix seconds.
fn rfc3339(s: &str) -> Option<Timestamp> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|d| d.timestamp())
}

/// SMS Gateway for Android: `{deviceId, event, id, payload, webhookId}`.
fn capcom6(v: &Obj) -> Result<Vec<Event>, String> {
    let event = req_str(v, "event", "")?;
    let id = opt_str(v, "id", "")?.filter(|i| !i.is_empty());
    let payload = v.get("payload");
    match event.as_str() {
        "sms:received" => Ok(vec![Event::Sms(capcom6_sms(
            object(payload, "payload")?,
            id,
            "payload.",
        )?)]),
        "sms:batch:received" => {
            let p = object(payload, "payload")?;
            let list = p
                .get("messages")
                .and_then(Value::as_array)
                .ok_or_else(|| "payload.messages must be an array.".to_string())?;
            list.iter()
                .enumerate()
                .map(|(i, m)| {
                    let at = format!("payload.messages[{i}]");
                    let m = object(Some(m), &at)?;
                    let id = id.as_ref().map(|id| format!("{id}:{i}"));
                    Ok(Event::Sms(capcom6_sms(m, id, &format!("{at}."))?))
                })
                .collect()
        }
        "app:started" => {
            let p = object(payload, "payload")?;
            let cards = match p.get("simCards") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(list)) => list
                    .iter()
                    .enumerate()
                    .map(|(i, c)| capcom6_card(c, i))
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err("payload.simCards must be an array.".into()),
            };
            Ok(vec![Event::Sims(cards)])
        }
        "system:ping" => Ok(vec![Event::Ping]),
        _ => Ok(vec![Event::Ignored(event)]),
    }
}

fn capcom6_sms(p: &Obj, id: Option<String>, at: &str) -> Result<Sms, String> {
    let text = req_str(p, "message", at)?;
    // Older app versions send only `phoneNumber`, which is the sender.
    let sender = match opt_str(p, "sender", at)? {
        Some(s) => s,
        None => opt_str(p, "phoneNumber", at)?.ok_or_else(|| format!("{at}sender is missing."))?,
    };
    Ok(Sms {
        id,
        to: opt_str(p, "recipient", at)?,
        slot: opt_int(p, "simNumber", at)?,
        lowest_slot: false,
        sender,
        text,
        received_at: opt_str(p, "receivedAt", at)?.as_deref().and_then(rfc3339),
    })
}

fn capcom6_card(c: &Value, i: usize) -> Result<ReportedSim, String> {
    let at = format!("payload.simCards[{i}]");
    let c = object(Some(c), &at)?;
    let at = format!("{at}.");
    let slot = match (opt_int(c, "simNumber", &at)?, opt_int(c, "slotIndex", &at)?) {
        (Some(n), _) => n,
        (None, Some(i)) => i + 1,
        (None, None) => return Err(format!("{at}simNumber or {at}slotIndex is required.")),
    };
    Ok(ReportedSim {
        slot,
        phone: opt_str(c, "phoneNumber", &at)?.filter(|p| !p.trim().is_empty()),
        carrier: opt_str(c, "carrierName", &at)?.unwrap_or_default(),
    })
}

/// httpSMS: a CloudEvents 1.0 event; `message.phone.received` carries the SMS in `data`.
fn httpsms(v: &Obj) -> Result<Vec<Event>, String> {
    let kind = req_str(v, "type", "")?;
    if kind != "message.phone.received" {
        return Ok(vec![Event::Ignored(kind)]);
    }
    let d = object(v.get("data"), "data")?;
    let id = match opt_str(d, "message_id", "data.")? {
        Some(id) => Some(id),
        None => match opt_str(d, "id", "data.")? {
            Some(id) => Some(id),
            None => opt_str(v, "id", "")?,
        },
    };
    let slot = opt_str(d, "sim", "data.")?.and_then(|s| {
        s.trim()
            .strip_prefix("SIM")
            .and_then(|n| n.parse::<i64>().ok())
    });
    Ok(vec![Event::Sms(Sms {
        id: id.filter(|i| !i.is_empty()),
        to: opt_str(d, "owner", "data.")?,
        slot,
        lowest_slot: false,
        sender: req_str(d, "contact", "data.")?,
        text: req_str(d, "content", "data.")?,
        received_at: opt_str(d, "timestamp", "data.")?
            .as_deref()
            .and_then(rfc3339),
    })])
}

/// textbee: flat JSON; `MESSAGE_RECEIVED` has no receiving number (the device decides).
fn textbee(v: &Obj) -> Result<Vec<Event>, String> {
    let event = req_str(v, "webhookEvent", "")?;
    if event != "MESSAGE_RECEIVED" {
        return Ok(vec![Event::Ignored(event)]);
    }
    let id = match opt_str(v, "idempotencyKey", "")? {
        Some(id) => Some(id),
        None => opt_str(v, "smsId", "")?,
    };
    Ok(vec![Event::Sms(Sms {
        id: id.filter(|i| !i.is_empty()),
        to: None,
        slot: None,
        lowest_slot: true,
        sender: req_str(v, "sender", "")?,
        text: req_str(v, "message", "")?,
        received_at: opt_str(v, "receivedAt", "")?.as_deref().and_then(rfc3339),
    })])
}

/// Our own format (README, "Generic JSON"): an SMS, or `{"event": "ping"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Generic {
    event: Option<String>,
    id: Option<Value>,
    to: Option<String>,
    slot: Option<i64>,
    from: Option<String>,
    text: Option<String>,
    received_at: Option<Value>,
}

fn generic(body: &[u8]) -> Result<Vec<Event>, String> {
    let g: Generic = serde_json::from_slice(body)
        .map_err(|e| format!("The body does not follow the generic format: {e}"))?;
    match g.event.as_deref() {
        None | Some("sms") => {}
        Some("ping") => return Ok(vec![Event::Ping]),
        Some(other) => {
            return Err(format!(
                "Unknown event \"{other}\": expected \"sms\" (the default) or \"ping\"."
            ))
        }
    }
    let id = match g.id {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        Some(_) => return Err("id must be a non-empty string or an integer.".into()),
    };
    if let Some(slot) = g.slot {
        if !(1..=16).contains(&slot) {
            return Err("slot must be between 1 and 16.".into());
        }
    }
    let received_at = match g.received_at {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
        Some(Value::String(s)) => Some(rfc3339(&s).ok_or_else(|| {
            format!("received_at \"{s}\" is not RFC 3339 (2024-06-22T15:46:11+07:00).")
        })?),
        Some(_) => {
            return Err("received_at must be RFC 3339 text or Unix seconds.".into());
        }
    };
    Ok(vec![Event::Sms(Sms {
        id,
        to: g.to.filter(|t| !t.trim().is_empty()),
        slot: g.slot,
        lowest_slot: false,
        sender: g
            .from
            .ok_or_else(|| "from (the sender) is missing.".to_string())?,
        text: g.text.ok_or_else(|| "text is missing.".to_string())?,
        received_at,
    })])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::base::crypto::hex;
    use crate::http::Method;

    fn b64url(data: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            }
        }
        out
    }

    fn jwt(header: &Value, claims: &Value, key: &[u8]) -> String {
        let h = b64url(header.to_string().as_bytes());
        let p = b64url(claims.to_string().as_bytes());
        let s = b64url(&hmac_sha256(key, format!("{h}.{p}").as_bytes()));
        format!("{h}.{p}.{s}")
    }

    const AUD: &str = "/ingest/httpsms/dev1";

    fn claims(now: i64, aud: Value) -> Value {
        json!({"iss": "api.httpsms.com", "sub": "u1", "aud": aud, "iat": now,
               "nbf": now - 600, "exp": now + 600})
    }

    #[test]
    fn base64url_decodes_with_and_without_padding() {
        assert_eq!(base64url("").unwrap(), b"");
        assert_eq!(base64url("Zg").unwrap(), b"f");
        assert_eq!(base64url("Zm8=").unwrap(), b"fo");
        assert_eq!(base64url("Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(base64url("-_-_").unwrap(), vec![0xfb, 0xff, 0xbf]);
        assert!(base64url("Z").is_none());
        assert!(base64url("Zm9v+/").is_none());
        let data: Vec<u8> = (0..=255).collect();
        assert_eq!(base64url(&b64url(&data)).unwrap(), data);
    }

    #[test]
    fn httpsms_jwt_is_checked_for_signature_algorithm_time_and_audience() {
        let key = b"secret";
        let now = 1_700_000_000;
        let hs = json!({"alg": "HS256", "typ": "JWT"});
        let url = json!(["https://otp.example.com/ingest/httpsms/dev1"]);
        assert_eq!(
            verify_jwt(&jwt(&hs, &claims(now, url.clone()), key), key, now, AUD),
            Ok(())
        );
        // A string audience, a trailing slash and a query are fine; another path is not.
        let ok = json!("http://10.0.0.1:8080/ingest/httpsms/dev1/?x=1");
        assert!(verify_jwt(&jwt(&hs, &claims(now, ok), key), key, now, AUD).is_ok());
        let bad = json!(["https://otp.example.com/ingest/httpsms/dev2"]);
        assert!(verify_jwt(&jwt(&hs, &claims(now, bad), key), key, now, AUD).is_err());
        assert!(verify_jwt(&jwt(&hs, &claims(now, json!(null)), key), key, now, AUD).is_err());
        // Wrong key, tampered claims, other algorithms, no signature.
        let good = jwt(&hs, &claims(now, url.clone()), key);
        assert!(verify_jwt(&good, b"other", now, AUD).is_err());
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged = b64url(claims(now + 9999, url.clone()).to_string().as_bytes());
        parts[1] = &forged;
        assert!(verify_jwt(&parts.join("."), key, now, AUD).is_err());
        let none = jwt(&json!({"alg": "none"}), &claims(now, url.clone()), key);
        assert!(verify_jwt(&none, key, now, AUD).is_err());
        let hs512 = jwt(&json!({"alg": "HS512"}), &claims(now, url.clone()), key);
        assert!(verify_jwt(&hs512, key, now, AUD).is_err());
        let (h, p) = good.rsplit_once('.').unwrap().0.split_once('.').unwrap();
        assert!(verify_jwt(&format!("{h}.{p}."), key, now, AUD).is_err());
        assert!(verify_jwt("not-a-jwt", key, now, AUD).is_err());
        // Expiry and not-before, with a minute of leeway.
        assert!(verify_jwt(&good, key, now + 600 + 60, AUD).is_ok());
        assert!(verify_jwt(&good, key, now + 600 + 61, AUD).is_err());
        assert!(verify_jwt(&good, key, now - 600 - 61, AUD).is_err());
        let mut no_exp = claims(now, url);
        no_exp.as_object_mut().unwrap().remove("exp");
        assert!(verify_jwt(&jwt(&hs, &no_exp, key), key, now, AUD).is_err());
    }

    fn capcom6_req(body: &str, ts: &str, key: &[u8]) -> Request {
        let sig = hex(&hmac_sha256(key, format!("{body}{ts}").as_bytes()));
        Request::fake(Method::Post, "/ingest/capcom6/dev1", body.as_bytes())
            .with_header("X-Signature", &sig)
            .with_header("X-Timestamp", ts)
    }

    #[test]
    fn capcom6_signature_covers_body_and_timestamp_within_five_minutes() {
        let now = 1_700_000_000;
        let body = r#"{"event":"system:ping","id":"x"}"#;
        let ok = capcom6_req(body, "1700000000", b"k");
        assert!(authenticate(Kind::Capcom6, &ok, "k", "dev1", now).is_ok());
        assert!(authenticate(Kind::Capcom6, &ok, "k", "dev1", now + 300).is_ok());
        assert!(authenticate(Kind::Capcom6, &ok, "k", "dev1", now + 301).is_err());
        assert!(authenticate(Kind::Capcom6, &ok, "k", "dev1", now - 301).is_err());
        assert!(authenticate(Kind::Capcom6, &ok, "other", "dev1", now).is_err());
        // Uppercase hex is the same signature.
        let sig = ok.header("x-signature").unwrap().to_ascii_uppercase();
        let upper = Request::fake(Method::Post, "/", body.as_bytes())
            .with_header("X-Signature", &sig)
            .with_header("X-Timestamp", "1700000000");
        assert!(authenticate(Kind::Capcom6, &upper, "k", "dev1", now).is_ok());
        // The timestamp is signed: changing it breaks the signature.
        let mut moved = ok.clone();
        moved.headers.retain(|(k, _)| k != "x-timestamp");
        let moved = moved.with_header("X-Timestamp", "1700000001");
        assert!(authenticate(Kind::Capcom6, &moved, "k", "dev1", now).is_err());
        let mut tampered = ok.clone();
        tampered.body = br#"{"event":"system:ping","id":"y"}"#.to_vec();
        assert!(authenticate(Kind::Capcom6, &tampered, "k", "dev1", now).is_err());
        let bare = Request::fake(Method::Post, "/", body.as_bytes());
        assert!(authenticate(Kind::Capcom6, &bare, "k", "dev1", now).is_err());
    }

    #[test]
    fn textbee_signs_the_raw_body_and_generic_uses_the_secret_as_bearer() {
        let body = br#"{"webhookEvent":"MESSAGE_RECEIVED"}"#;
        let sig = hex(&hmac_sha256(b"k", body));
        let req = Request::fake(Method::Post, "/", body).with_header("X-Signature", &sig);
        assert!(authenticate(Kind::Textbee, &req, "k", "d", 0).is_ok());
        let prefixed = Request::fake(Method::Post, "/", body)
            .with_header("X-Signature", &format!("sha256={sig}"));
        assert!(authenticate(Kind::Textbee, &prefixed, "k", "d", 0).is_ok());
        assert!(authenticate(Kind::Textbee, &req, "j", "d", 0).is_err());
        let garbage = Request::fake(Method::Post, "/", body).with_header("X-Signature", "zz");
        assert!(authenticate(Kind::Textbee, &garbage, "k", "d", 0).is_err());

        let bearer =
            |v: &str| Request::fake(Method::Post, "/", b"{}").with_header("Authorization", v);
        assert!(authenticate(Kind::Generic, &bearer("Bearer k"), "k", "d", 0).is_ok());
        assert!(authenticate(Kind::Generic, &bearer("Bearer kk"), "k", "d", 0).is_err());
        assert!(authenticate(Kind::Generic, &bearer("Basic k"), "k", "d", 0).is_err());
        assert!(authenticate(
            Kind::Generic,
            &Request::fake(Method::Post, "/", b""),
            "k",
            "d",
            0
        )
        .is_err());
    }

    fn one_sms(kind: Kind, body: &str) -> Sms {
        match parse(kind, body.as_bytes()).unwrap().as_slice() {
            [Event::Sms(s)] => s.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn capcom6_payloads_current_legacy_batch_sims_and_others() {
        let s = one_sms(
            Kind::Capcom6,
            r#"{"deviceId":"ffff","event":"sms:received","id":"Ey6E","webhookId":"L",
                "payload":{"messageId":"abc","message":"Code 123","sender":"+6281",
                "recipient":null,"simNumber":2,"receivedAt":"2024-06-22T15:46:11.000+07:00"}}"#,
        );
        assert_eq!(s.id.as_deref(), Some("Ey6E"));
        assert_eq!((s.to, s.slot), (None, Some(2)));
        assert_eq!((s.sender.as_str(), s.text.as_str()), ("+6281", "Code 123"));
        assert_eq!(s.received_at, Some(1_719_045_971));
        let legacy = one_sms(
            Kind::Capcom6,
            r#"{"event":"sms:received","id":"a","payload":{"message":"hi","phoneNumber":"+1"}}"#,
        );
        assert_eq!(legacy.sender, "+1");
        let batch = parse(
            Kind::Capcom6,
            br#"{"event":"sms:batch:received","id":"b","payload":{"messages":[
                {"message":"one","sender":"A","recipient":"+62811"},
                {"message":"two","sender":"B"}]}}"#,
        )
        .unwrap();
        assert_eq!(batch.len(), 2);
        let Event::Sms(second) = &batch[1] else {
            panic!()
        };
        assert_eq!(second.id.as_deref(), Some("b:1"));
        let sims = parse(
            Kind::Capcom6,
            br#"{"event":"app:started","id":"c","payload":{"simCards":[
                {"slotIndex":0,"simNumber":null,"phoneNumber":"+6281234","carrierName":"Telkomsel","iccid":"89"},
                {"slotIndex":1,"simNumber":2,"phoneNumber":null}]}}"#,
        )
        .unwrap();
        assert_eq!(
            sims,
            vec![Event::Sims(vec![
                ReportedSim {
                    slot: 1,
                    phone: Some("+6281234".into()),
                    carrier: "Telkomsel".into()
                },
                ReportedSim {
                    slot: 2,
                    phone: None,
                    carrier: String::new()
                },
            ])]
        );
        assert_eq!(
            parse(
                Kind::Capcom6,
                br#"{"event":"system:ping","payload":{"health":{}}}"#
            )
            .unwrap(),
            vec![Event::Ping]
        );
        assert_eq!(
            parse(Kind::Capcom6, br#"{"event":"sms:sent","payload":{}}"#).unwrap(),
            vec![Event::Ignored("sms:sent".into())]
        );
        for bad in [
            "",
            "[]",
            r#"{"id":"x"}"#,
            r#"{"event":"sms:received","id":"x"}"#,
            r#"{"event":"sms:received","payload":{"message":"hi"}}"#,
            r#"{"event":"sms:received","payload":{"message":5,"sender":"A"}}"#,
            r#"{"event":"sms:received","payload":{"message":"m","sender":"A","simNumber":"x"}}"#,
            r#"{"event":"app:started","payload":{"simCards":[{"phoneNumber":"+1"}]}}"#,
        ] {
            assert!(parse(Kind::Capcom6, bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn httpsms_and_textbee_payloads() {
        let s = one_sms(
            Kind::Httpsms,
            r#"{"specversion":"1.0","id":"ev1","source":"/v1/messages/receive",
                "type":"message.phone.received","datacontenttype":"application/json",
                "time":"2024-01-01T00:00:00Z","data":{"message_id":"m1","user_id":"u",
                "owner":"+18005550100","encrypted":false,"contact":"+18005550199",
                "timestamp":"2024-01-01T00:00:00Z","content":"Code 4242","sim":"SIM2"}}"#,
        );
        assert_eq!(s.id.as_deref(), Some("m1"));
        assert_eq!((s.to.as_deref(), s.slot), (Some("+18005550100"), Some(2)));
        assert_eq!(
            (s.sender.as_str(), s.text.as_str()),
            ("+18005550199", "Code 4242")
        );
        assert_eq!(s.received_at, Some(1_704_067_200));
        let old = one_sms(
            Kind::Httpsms,
            r#"{"id":"ev2","type":"message.phone.received","data":{"id":"m2",
                "owner":"+1","contact":"+2","content":"x"}}"#,
        );
        assert_eq!(old.id.as_deref(), Some("m2"));
        let bare = one_sms(
            Kind::Httpsms,
            r#"{"id":"ev3","type":"message.phone.received","data":{"owner":"+1","contact":"+2","content":"x","sim":"DEFAULT"}}"#,
        );
        assert_eq!((bare.id.as_deref(), bare.slot), (Some("ev3"), None));
        assert_eq!(
            parse(Kind::Httpsms, br#"{"type":"message.phone.sent","data":{}}"#).unwrap(),
            vec![Event::Ignored("message.phone.sent".into())]
        );
        assert!(parse(Kind::Httpsms, br#"{"type":"message.phone.received"}"#).is_err());
        assert!(parse(
            Kind::Httpsms,
            br#"{"type":"message.phone.received","data":{"contact":"+2"}}"#
        )
        .is_err());

        let t = one_sms(
            Kind::Textbee,
            r#"{"smsId":"s1","message":"Code 777","deviceId":"d","webhookSubscriptionId":"w",
                "webhookEvent":"MESSAGE_RECEIVED","idempotencyKey":"k1","sender":"+1",
                "receivedAt":"2024-01-01T00:00:00.000Z"}"#,
        );
        assert_eq!(t.id.as_deref(), Some("k1"));
        assert!(t.lowest_slot && t.to.is_none() && t.slot.is_none());
        assert_eq!(
            parse(Kind::Textbee, br#"{"webhookEvent":"MESSAGE_SENT"}"#).unwrap(),
            vec![Event::Ignored("MESSAGE_SENT".into())]
        );
        assert!(parse(
            Kind::Textbee,
            br#"{"webhookEvent":"MESSAGE_RECEIVED","sender":"+1"}"#
        )
        .is_err());
    }

    #[test]
    fn generic_format_and_its_refusals() {
        let s = one_sms(
            Kind::Generic,
            r#"{"id":"g1","to":"+62 811","slot":2,"from":"Telegram","text":"Code 1","received_at":1700000000}"#,
        );
        assert_eq!(s.id.as_deref(), Some("g1"));
        assert_eq!(
            (s.to.as_deref(), s.slot, s.received_at),
            (Some("+62 811"), Some(2), Some(1_700_000_000))
        );
        let min = one_sms(
            Kind::Generic,
            r#"{"from":"A","text":"t","received_at":"2024-01-01T01:00:00+01:00","id":7}"#,
        );
        assert_eq!(
            (min.id.as_deref(), min.received_at),
            (Some("7"), Some(1_704_067_200))
        );
        assert_eq!(
            parse(Kind::Generic, br#"{"event":"ping"}"#).unwrap(),
            vec![Event::Ping]
        );
        for (bad, says) in [
            (r#"{"event":"pong"}"#, "Unknown event"),
            (r#"{"from":"A"}"#, "text is missing"),
            (r#"{"text":"A"}"#, "from"),
            (
                r#"{"from":"A","text":"t","frm":"x"}"#,
                "unknown field `frm`",
            ),
            (r#"{"from":"A","text":"t","slot":0}"#, "slot"),
            (
                r#"{"from":"A","text":"t","received_at":"yesterday"}"#,
                "RFC 3339",
            ),
            (
                r#"{"from":"A","text":"t","received_at":1.5}"#,
                "received_at",
            ),
            (r#"{"from":"A","text":"t","id":""}"#, "id"),
            (r#"{"from":1,"text":"t"}"#, "generic format"),
            ("not json", "generic format"),
        ] {
            let err = parse(Kind::Generic, bad.as_bytes()).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
