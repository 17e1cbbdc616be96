//! The webhook part of the native API: register, list and delete webhooks, read a webhook's
//! delivery log, queue a test delivery, and set the account's SMS-Activate-compatible URL.
//! Authentication and errors as in the rest of `/api/v1` ([`api::caller`], [`api::error`]).
//! Nothing here calls a webhook: deliveries are queued and the `webhooks` job sends them.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::clock::format_rfc3339;
use crate::db;
use crate::domain::accounts::{Role, User};
use crate::domain::market::webhooks::{self, Created, Delivery, Webhook};
use crate::domain::{base::audit, Error};
use crate::http::api::{body, error};
use crate::http::router::Router;
use crate::http::Method;
use crate::http::{Ctx, Request, Response};

pub fn routes(r: &mut Router) {
    use Method::{Delete, Get, Post, Put};
    r.apis(
        Role::User,
        &[
            (Get, "/api/v1/webhooks", list),
            (Post, "/api/v1/webhooks", create),
        ],
    );
    // Before `{id}`: the first matching pattern wins.
    r.apis(
        Role::User,
        &[
            (Get, "/api/v1/webhooks/sms-activate", get_sms_activate),
            (Put, "/api/v1/webhooks/sms-activate", put_sms_activate),
            (Delete, "/api/v1/webhooks/sms-activate", delete_sms_activate),
            (Get, "/api/v1/webhooks/{id}", get_one),
            (Delete, "/api/v1/webhooks/{id}", delete),
            (Get, "/api/v1/webhooks/{id}/deliveries", deliveries),
            (Post, "/api/v1/webhooks/{id}/test", test),
        ],
    );
}

pub fn webhook_json(w: &Webhook) -> Value {
    json!({
        "id": w.id,
        "url": w.url,
        "events": w.events,
        "created_at": format_rfc3339(w.created_at),
    })
}

fn created_json(c: &Created) -> Value {
    let mut v = webhook_json(&c.webhook);
    v["secret"] = json!(c.secret);
    v
}

fn delivery_json(d: &Delivery) -> Value {
    json!({
        "id": d.id,
        "event": d.event,
        "state": d.state,
        "attempts": d.attempts,
        "created_at": format_rfc3339(d.created_at),
        "next_attempt_at": d.next_attempt_at.map(format_rfc3339),
        "finished_at": d.finished_at.map(format_rfc3339),
        "last_status": d.last_status,
        "last_error": d.last_error,
        "log": d.log.iter().map(|a| json!({
            "attempt": a.attempt,
            "at": format_rfc3339(a.at),
            "http_status": a.http_status,
            "error": a.error,
            "duration_ms": a.duration_ms,
        })).collect::<Vec<_>>(),
    })
}

fn list(ctx: &mut Ctx<'_>, _req: &Request, user: &User) -> Response {
    let result = (|| -> Result<Value, Error> {
        let hooks = webhooks::list(ctx.db, user.id)?;
        let sa = webhooks::sms_activate(ctx.db, user.id)?;
        Ok(json!({
            "webhooks": hooks.iter().map(webhook_json).collect::<Vec<_>>(),
            "events": webhooks::EVENTS,
            "limit": webhooks::MAX_PER_ACCOUNT,
            "sms_activate": sa.as_ref().map(webhook_json),
        }))
    })();
    match result {
        Ok(v) => Response::json(200, &v),
        Err(e) => error(&e),
    }
}

#[derive(Deserialize)]
struct CreateBody {
    url: String,
    /// Omitted: every event. `null` is refused (the document's type is an array).
    #[serde(default, deserialize_with = "present")]
    events: Option<Vec<String>>,
}

/// A field that may be omitted (then `None`, by `#[serde(default)]`) but not `null`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

fn create(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let b: CreateBody = match body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let events = b
        .events
        .unwrap_or_else(|| webhooks::EVENTS.iter().map(|e| e.to_string()).collect());
    let now = ctx.now();
    let keys = ctx.app.keys.clone();
    let allow = ctx.app.config.webhook_allow_private;
    let ip = ctx.ip_hash(req);
    match db::write(ctx.db, |tx| {
        let c = webhooks::create(tx, &keys, user.id, &b.url, &events, allow, now)?;
        let host = webhooks::host_of(&c.webhook.url);
        audit::security(tx, Some(user.id), "webhook_created", &ip, &host, now)?;
        Ok(c)
    }) {
        Ok(c) => Response::json(201, &created_json(&c)),
        Err(e) => error(&e),
    }
}

fn id_of(req: &Request) -> Result<i64, Response> {
    req.id_param("id")
        .ok_or_else(|| error(&Error::NotFound("webhook")))
}

fn get_one(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let id = match id_of(req) {
        Ok(id) => id,
        Err(r) => return r,
    };
    match webhooks::get_for(ctx.db, user.id, id) {
        Ok(w) => Response::json(200, &webhook_json(&w)),
        Err(e) => error(&e),
    }
}

fn delete(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let id = match id_of(req) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    match db::write(ctx.db, |tx| {
        let w = webhooks::delete(tx, user.id, id)?;
        let host = webhooks::host_of(&w.url);
        audit::security(tx, Some(user.id), "webhook_deleted", &ip, &host, now)
    }) {
        Ok(()) => Response::empty(204),
        Err(e) => error(&e),
    }
}

fn deliveries(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let id = match id_of(req) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let limit = match super::int_query(req, "limit", 50, 1, 200) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let result = webhooks::get_for(ctx.db, user.id, id)
        .and_then(|w| webhooks::deliveries(ctx.db, w.id, limit));
    match result {
        Ok(list) => Response::json(
            200,
            &json!({"deliveries": list.iter().map(delivery_json).collect::<Vec<_>>()}),
        ),
        Err(e) => error(&e),
    }
}

fn test(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let id = match id_of(req) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let now = ctx.now();
    match db::write(ctx.db, |tx| webhooks::queue_test(tx, user.id, id, now)) {
        Ok(uuid) => Response::json(
            202,
            &json!({"delivery": uuid, "event": webhooks::PING, "state": "pending"}),
        ),
        Err(e) => error(&e),
    }
}

fn get_sms_activate(ctx: &mut Ctx<'_>, _req: &Request, user: &User) -> Response {
    match webhooks::sms_activate(ctx.db, user.id) {
        Ok(Some(w)) => Response::json(200, &webhook_json(&w)),
        Ok(None) => error(&Error::NotFound("SMS-Activate webhook URL")),
        Err(e) => error(&e),
    }
}

#[derive(Deserialize)]
struct UrlBody {
    url: String,
}

fn put_sms_activate(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let b: UrlBody = match body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    set_sms_activate(ctx, req, user.id, &b.url)
}

fn delete_sms_activate(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    set_sms_activate(ctx, req, user.id, "")
}

fn set_sms_activate(ctx: &mut Ctx<'_>, req: &Request, user_id: i64, url: &str) -> Response {
    let now = ctx.now();
    let keys = ctx.app.keys.clone();
    let allow = ctx.app.config.webhook_allow_private;
    let ip = ctx.ip_hash(req);
    match db::write(ctx.db, |tx| {
        let c = webhooks::set_sms_activate(tx, &keys, user_id, url, allow, now)?;
        let detail = c
            .as_ref()
            .map(|c| webhooks::host_of(&c.webhook.url))
            .unwrap_or_default();
        audit::security(
            tx,
            Some(user_id),
            "webhook_sms_activate_set",
            &ip,
            &detail,
            now,
        )?;
        Ok(c)
    }) {
        Ok(Some(c)) => Response::json(200, &created_json(&c)),
        Ok(None) => Response::empty(204),
        Err(e) => error(&e),
    }
}
