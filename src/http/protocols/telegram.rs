//! The Telegram bot's webhook: `POST /telegram/webhook`, when `telegram_webhook` is on (the
//! `telegram` job registers `{base_url}/telegram/webhook` with `setWebhook` and a secret
//! token derived from the install key; otherwise the job polls `getUpdates` and this route
//! answers 404). Each update proves itself by the `X-Telegram-Bot-Api-Secret-Token` header,
//! compared in constant time; a wrong or missing one is 401 and changes nothing.
//!
//! A chat's `/start CODE` links it to the account whose notification settings showed the
//! code, in one transaction; the reply to the chat is the answer to the webhook itself (the
//! Bot API's "method in the response" form), so no request leaves the server on a request
//! thread. Every other update is answered 200 with nothing to do, so Telegram does not
//! resend it.

use serde_json::{json, Value};

use crate::domain::accounts::notifications;
use crate::domain::base::crypto::constant_time_eq;
use crate::http::router::Router;
use crate::http::{Ctx, Method, Request, Response};

pub fn routes(r: &mut Router) {
    r.public(Method::Post, "/telegram/webhook", webhook);
}

fn webhook(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    let app = ctx.app;
    let Some(secret) = crate::notify::telegram_webhook_secret(app) else {
        return Response::json_error(404, "not_found", "The Telegram webhook is off.");
    };
    let given = req.header("X-Telegram-Bot-Api-Secret-Token").unwrap_or("");
    if !constant_time_eq(given.as_bytes(), secret.as_bytes()) {
        log::warn!("telegram webhook: a request without the secret token was refused");
        return Response::json_error(401, "unauthorized", "Wrong or missing secret token.");
    }
    let Ok(update) = serde_json::from_slice::<Value>(&req.body) else {
        return Response::json_error(400, "invalid_request", "The body is not a JSON update.");
    };
    let Some(start) = crate::notify::start_of(&update) else {
        return Response::json(200, &json!({}));
    };
    let keys = &app.keys;
    let linked = crate::db::write(ctx.db, |tx| {
        notifications::link_telegram(tx, keys, &start.code, start.chat_id)
    });
    let text = match linked {
        Ok(Some(_)) => crate::notify::LINKED,
        Ok(None) => crate::notify::UNKNOWN_CODE,
        Err(e) => {
            log::error!("telegram webhook: {e}");
            // Telegram delivers the update again later.
            return Response::json_error(500, "internal", "Try again later.");
        }
    };
    Response::json(
        200,
        &json!({"method": "sendMessage", "chat_id": start.chat_id, "text": text}),
    )
}
