//! The notification part of the native API: list, add (one operation per kind, so that each
//! body's rules are its schema's) and delete the account's channels (ntfy, Telegram, e-mail), queue a test message, and read the delivery log. Authentication
//! and errors as in the rest of `/api/v1`. Nothing here sends: messages are queued and the
//! `notifications` job sends them.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::clock::format_rfc3339;
use crate::db;
use crate::domain::accounts::notifications::{self, Channel, Logged, NewChannel};
use crate::domain::accounts::{Role, User};
use crate::domain::Error;
use crate::http::api::{body, error};
use crate::http::router::Router;
use crate::http::Method;
use crate::http::{Ctx, Request, Response};

pub fn routes(r: &mut Router) {
    use Method::{Delete, Get, Post};
    r.apis(
        Role::User,
        &[
            (Get, "/api/v1/notifications", list),
            (Post, "/api/v1/notifications/ntfy", create_ntfy),
            (Post, "/api/v1/notifications/telegram", create_telegram),
            (Post, "/api/v1/notifications/email", create_email),
            (Delete, "/api/v1/notifications/channels/{id}", delete),
            (Post, "/api/v1/notifications/channels/{id}/test", test),
        ],
    );
}

fn channel_json(c: &Channel) -> Value {
    json!({
        "id": c.id,
        "kind": c.kind,
        "url": c.url,
        "has_token": c.has_token,
        "chat_id": c.chat_id,
        "waiting_for_chat": c.waiting_for_chat,
        "events": c.events,
        "low_balance_minor": c.low_balance_minor,
        "created_at": format_rfc3339(c.created_at),
    })
}

fn logged_json(l: &Logged) -> Value {
    json!({
        "id": l.id,
        "channel_id": l.channel_id,
        "event": l.event,
        "title": l.title,
        "state": l.state,
        "attempts": l.attempts,
        "created_at": format_rfc3339(l.created_at),
        "finished_at": l.finished_at.map(format_rfc3339),
        "last_error": l.last_error,
    })
}

fn list(ctx: &mut Ctx<'_>, _: &Request, user: &User) -> Response {
    let result = (|| -> Result<Value, Error> {
        let channels = notifications::list_for(ctx.db, user.id)?;
        let log = notifications::log_for(ctx.db, user.id, 50)?;
        let mut kinds = vec!["ntfy", "email"];
        if !ctx.app.config.telegram_bot_token.is_empty() {
            kinds.insert(1, "telegram");
        }
        Ok(json!({
            "channels": channels.iter().map(channel_json).collect::<Vec<_>>(),
            "kinds": kinds,
            "events": notifications::events_for(user.role),
            "log": log.iter().map(logged_json).collect::<Vec<_>>(),
        }))
    })();
    match result {
        Ok(v) => Response::json(200, &v),
        Err(e) => error(&e),
    }
}

/// `POST /api/v1/notifications/ntfy`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NtfyBody {
    url: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    low_balance_minor: Option<i64>,
}

/// `POST /api/v1/notifications/telegram`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TelegramBody {
    #[serde(default)]
    chat_id: String,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    low_balance_minor: Option<i64>,
}

/// `POST /api/v1/notifications/email`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailBody {
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    low_balance_minor: Option<i64>,
}

fn create_ntfy(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    match body::<NtfyBody>(req) {
        Ok(b) => create(
            ctx,
            user,
            "ntfy",
            &b.url,
            &b.token,
            "",
            &b.events,
            b.low_balance_minor,
        ),
        Err(r) => r,
    }
}

fn create_telegram(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    match body::<TelegramBody>(req) {
        Ok(b) => create(
            ctx,
            user,
            "telegram",
            "",
            "",
            &b.chat_id,
            &b.events,
            b.low_balance_minor,
        ),
        Err(r) => r,
    }
}

fn create_email(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    match body::<EmailBody>(req) {
        Ok(b) => create(
            ctx,
            user,
            "email",
            "",
            "",
            "",
            &b.events,
            b.low_balance_minor,
        ),
        Err(r) => r,
    }
}

#[allow(clippy::too_many_arguments)]
fn create(
    ctx: &mut Ctx<'_>,
    user: &User,
    kind: &str,
    url: &str,
    token: &str,
    chat_id: &str,
    events: &[String],
    low_balance_minor: Option<i64>,
) -> Response {
    let has_bot = !ctx.app.config.telegram_bot_token.is_empty();
    if let Err(e) = notifications::check_available(kind, has_bot) {
        return error(&e);
    }
    let (keys, allow, now) = (
        ctx.app.keys.clone(),
        ctx.app.config.webhook_allow_private,
        ctx.now(),
    );
    let new = NewChannel {
        kind,
        url,
        token,
        chat_id,
        events: events.iter().map(String::as_str).collect(),
        low_balance_minor,
    };
    match db::write(ctx.db, |tx| {
        notifications::create(tx, &keys, user.id, user.role, &new, allow, now)
    }) {
        Ok(c) => {
            let mut v = channel_json(&c.channel);
            v["link_code"] = json!(c.link_code);
            Response::json(201, &v)
        }
        Err(e) => error(&e),
    }
}

fn id_of(req: &Request) -> Result<i64, Response> {
    req.id_param("id")
        .ok_or_else(|| error(&Error::NotFound("notification channel")))
}

fn delete(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let id = match id_of(req) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let now = ctx.now();
    match db::write(ctx.db, |tx| notifications::delete(tx, user.id, id, now)) {
        Ok(_) => Response::empty(204),
        Err(e) => error(&e),
    }
}

fn test(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let id = match id_of(req) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let now = ctx.now();
    match db::write(ctx.db, |tx| notifications::queue_test(tx, user.id, id, now)) {
        Ok(()) => Response::json(
            202,
            &json!({"event": notifications::TEST, "state": "pending"}),
        ),
        Err(e) => error(&e),
    }
}
