//! `POST /partner/{id}`: the agent side of the partner protocol of SMSHub, SMSBower, Grizzly
//! and their clones (protocols.md §3), for the hub the admin added as partner `{id}`
//! (`market::partners` has the rules).
//!
//! JSON in, JSON out, gzip either way (a body with `Content-Encoding: gzip` or the gzip magic
//! is inflated, at most [`MAX_INFLATED`] bytes; the answer is gzipped when the hub accepts
//! it). The shared `key` is in every body and compared in constant time. Every answer has a
//! `status`: `SUCCESS` with the data, `NO_NUMBERS` (GET_NUMBER only) or `ERROR` with `error`
//! saying what is wrong; fields are typed as the hubs demand (`number` and `activationId` are
//! JSON numbers), and lenient on input (a number may come as a string, a country as a name or
//! an SMS-Activate id). An unknown partner answers 404 and a wrong key 401, both in the same
//! JSON form; nothing is changed by a refused call.

use std::io::Read;

use serde_json::{json, Map, Value};

use crate::db;
use crate::domain::base::crypto::constant_time_eq;
use crate::domain::market::partners::{self, CountryRef, Finish, Given, NumberRequest, Partner};
use crate::domain::Error;
use crate::http::router::Router;
use crate::http::{Ctx, Method, Request, Response};

pub fn routes(r: &mut Router) {
    r.public(Method::Post, "/partner/{id}", partner);
}

/// The largest body accepted after inflating gzip.
const MAX_INFLATED: u64 = 256 * 1024;
/// The most prefixes an `exceptionPhoneSet` may hold.
const MAX_EXCLUDED: usize = 1000;

fn status(http: u16, error: &str) -> (u16, Value) {
    (http, json!({"status": "ERROR", "error": error}))
}

fn partner(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    let (http, body) = answer(ctx, req);
    let bytes = body.to_string().into_bytes();
    let gzip_ok = req
        .header("Accept-Encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("gzip"));
    if gzip_ok {
        if let Ok(zipped) = crate::outbound::gzip(&bytes) {
            return Response::new(http, crate::http::response::JSON, zipped)
                .with_header("Content-Encoding", "gzip")
                .with_header("Vary", "Accept-Encoding");
        }
    }
    Response::new(http, crate::http::response::JSON, bytes)
}

/// The body, inflated when it is gzip.
fn body(req: &Request) -> Result<Vec<u8>, String> {
    let zipped = req
        .header("Content-Encoding")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"))
        || req.body.starts_with(&[0x1f, 0x8b]);
    if !zipped {
        return Ok(req.body.clone());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&req.body[..])
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("the gzip body cannot be read: {e}"))?;
    if out.len() as u64 > MAX_INFLATED {
        return Err("the body is too large".into());
    }
    Ok(out)
}

fn answer(ctx: &mut Ctx<'_>, req: &Request) -> (u16, Value) {
    let found = match req.id_param("id").map(|id| partners::get(ctx.db, id)) {
        Some(Ok(Some(p))) => p,
        Some(Err(e)) => return internal(&e),
        _ => return status(404, "unknown partner: check the agent URL"),
    };
    let raw = match body(req) {
        Ok(b) => b,
        Err(why) => return status(400, &why),
    };
    let Ok(Value::Object(msg)) = serde_json::from_slice::<Value>(&raw) else {
        return status(400, "the body must be a JSON object");
    };
    let key = match found.key(&ctx.app.keys) {
        Ok(k) => k,
        Err(e) => return internal(&e),
    };
    let given = msg.get("key").and_then(Value::as_str).unwrap_or("");
    if !constant_time_eq(given.as_bytes(), key.as_bytes()) {
        log::info!("partner {}: refused a call with a wrong key", found.id);
        return status(401, "wrong key");
    }
    let action = msg.get("action").and_then(Value::as_str).unwrap_or("");
    match action {
        "GET_SERVICES" => get_services(ctx, &found),
        "GET_NUMBER" => get_number(ctx, &found, &msg),
        "FINISH_ACTIVATION" => finish(ctx, &found, &msg),
        "" => status(200, "no action"),
        other => status(200, &format!("unknown action {}", clip(other))),
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

fn internal(e: &Error) -> (u16, Value) {
    log::error!("partner protocol: {e}");
    status(500, "internal error")
}

fn refused(e: &Error) -> (u16, Value) {
    match e {
        Error::Invalid(msg) => status(200, msg),
        Error::NotFound(what) => status(200, &format!("unknown {what}")),
        Error::Db(_) | Error::Internal(_) => internal(e),
        other => status(200, &other.to_string()),
    }
}

fn get_services(ctx: &mut Ctx<'_>, p: &Partner) -> (u16, Value) {
    let (now, cooldown) = (ctx.now(), ctx.app.config.reuse_cooldown);
    let offers = db::write(ctx.db, |tx| {
        partners::called(tx, p.id, now)?;
        partners::offers(tx, p, cooldown, now)
    });
    match offers {
        Ok(list) => {
            let countries: Vec<Value> = list
                .into_iter()
                .map(|c| {
                    let map: Map<String, Value> = c
                        .operators
                        .into_iter()
                        .map(|(op, services)| {
                            let s: Map<String, Value> =
                                services.into_iter().map(|(s, n)| (s, json!(n))).collect();
                            (op, Value::Object(s))
                        })
                        .collect();
                    json!({"country": c.country, "operatorMap": map})
                })
                .collect();
            (200, json!({"status": "SUCCESS", "countryList": countries}))
        }
        Err(e) => refused(&e),
    }
}

/// A JSON number or a string of one, as text.
fn number_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.trim().to_string()),
        _ => None,
    }
}

fn int_field(msg: &Map<String, Value>, name: &str) -> Option<i64> {
    msg.get(name)
        .and_then(number_text)
        .and_then(|t| t.parse().ok())
}

/// `sum` in 1/10000 units: a JSON number is rounded to four decimals (hubs send floats such as
/// 20.0 or 0.0125), a string read exactly.
fn sum_micro(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) if (0..1_000_000_000).contains(&i) => Some(i * partners::MICRO),
            Some(_) => None,
            None => n
                .as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e9)
                .map(|f| (f * partners::MICRO as f64).round() as i64),
        },
        Value::String(s) => partners::parse_micro(s),
        _ => None,
    }
}

fn get_number(ctx: &mut Ctx<'_>, p: &Partner, msg: &Map<String, Value>) -> (u16, Value) {
    let country = match msg.get("country") {
        Some(Value::String(s)) if !s.trim().is_empty() => match s.trim().parse::<i64>() {
            Ok(id) => CountryRef::Id(id),
            Err(_) => CountryRef::Name(s.trim().to_string()),
        },
        Some(Value::Number(n)) if n.as_i64().is_some() => CountryRef::Id(n.as_i64().unwrap_or(0)),
        _ => return status(200, "country is missing"),
    };
    let Some(service) = msg
        .get("service")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 60)
    else {
        return status(200, "service is missing");
    };
    let operator = match msg.get("operator") {
        None | Some(Value::Null) => "any".to_string(),
        Some(Value::String(s)) if s.len() <= 60 => s.trim().to_lowercase(),
        Some(_) => return status(200, "operator must be a string"),
    };
    let Some(sum) = msg.get("sum").and_then(sum_micro).filter(|s| *s > 0) else {
        return status(200, "sum is missing or not a positive price");
    };
    let currency = match msg.get("currency") {
        None | Some(Value::Null) => None,
        Some(v) => match number_text(v).and_then(|t| partners::parse_currency(&t)) {
            Some(c) => Some(c),
            None => return status(200, "currency must be 643 or 840"),
        },
    };
    let exclude: Vec<String> = match msg.get("exceptionPhoneSet") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if items.len() <= MAX_EXCLUDED => {
            match items.iter().map(number_text).collect::<Option<Vec<_>>>() {
                Some(list) => list,
                None => return status(200, "exceptionPhoneSet must list prefixes"),
            }
        }
        Some(_) => return status(200, "exceptionPhoneSet must be a list of prefixes"),
    };
    let req = NumberRequest {
        country,
        operator,
        service: service.to_string(),
        sum_micro: sum,
        currency,
        exclude,
    };
    let (now, cooldown) = (ctx.now(), ctx.app.config.reuse_cooldown);
    let given = db::write(ctx.db, |tx| {
        partners::called(tx, p.id, now)?;
        partners::get_number(tx, p, &req, cooldown, now)
    });
    match given {
        Ok(Given::Number {
            activation_id,
            phone,
        }) => match phone.parse::<u64>() {
            Ok(number) => (
                200,
                json!({"status": "SUCCESS", "number": number, "activationId": activation_id}),
            ),
            Err(_) => internal(&Error::Internal(format!("number {phone} is not digits"))),
        },
        Ok(Given::NoNumbers(why)) => {
            log::debug!("partner {}: GET_NUMBER {}: {why}", p.id, req.service);
            (200, json!({"status": "NO_NUMBERS"}))
        }
        Err(e) => refused(&e),
    }
}

fn finish(ctx: &mut Ctx<'_>, p: &Partner, msg: &Map<String, Value>) -> (u16, Value) {
    let Some(id) = int_field(msg, "activationId") else {
        return status(200, "activationId is missing");
    };
    let Some(how) = int_field(msg, "status").and_then(Finish::from_code) else {
        return status(200, "status must be 1, 3, 4 or 5");
    };
    let policy = ctx.app.policy();
    let now = ctx.now();
    let done = db::write(ctx.db, |tx| {
        partners::called(tx, p.id, now)?;
        partners::finish(tx, p, id, how, policy.operator_share, now)
    });
    match done {
        Ok(()) => (200, json!({"status": "SUCCESS"})),
        Err(Error::NotFound(_)) => status(200, "unknown activationId"),
        Err(e) => refused(&e),
    }
}
