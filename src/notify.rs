//! The senders of notifications to the phone (`domain::accounts::notifications` owns the
//! queue): an ntfy topic through [`crate::outbound::post`] (the webhooks' address rules: no
//! internal address unless `webhook_allow_private`), and the Telegram Bot API (`sendMessage`;
//! `getUpdates` for the chats that send `/start CODE`) at the admin's `telegram_api`. E-mail
//! channels need no network: the job writes them to the mail outbox.
//!
//! Called only from the scheduler's `notifications` and `telegram` jobs, never on a request
//! thread and never inside a transaction. The bot token is scrubbed from every error text.

use std::time::Duration;

use serde_json::{json, Value};

use crate::app::App;
use crate::domain::accounts::notifications::{Due, Kind};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A Bot API call's agent: timeouts, no redirects, no proxy.
fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .proxy(None)
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(TIMEOUT))
            .timeout_global(Some(TIMEOUT * 2))
            .user_agent(concat!("otpbox/", env!("CARGO_PKG_VERSION")))
            .build(),
    )
}

/// Sends one message over the network (ntfy or Telegram); `Err` holds why it failed.
pub fn send(app: &App, d: &Due) -> Result<(), String> {
    match d.kind {
        Kind::Ntfy => {
            let mut headers = vec![("Title", ascii_header(&d.title)), ("Tags", d.event.clone())];
            if !d.token.is_empty() {
                headers.push(("Authorization", format!("Bearer {}", d.token)));
            }
            let allow_private = app.config.webhook_allow_private;
            let out = crate::outbound::post(
                &d.url,
                "text/plain; charset=utf-8",
                &headers,
                d.body.as_bytes(),
                allow_private,
            );
            if out.error.is_empty() {
                Ok(())
            } else {
                Err(out.error.replace(&d.token, "***"))
            }
        }
        Kind::Telegram => {
            let text = format!("{}\n{}", d.title, d.body);
            telegram(
                app,
                "sendMessage",
                &json!({"chat_id": d.chat_id, "text": text}),
            )
            .map(|_| ())
        }
        Kind::Email => Err("e-mail is written to the mail outbox, not sent here".into()),
    }
}

/// A header value as ntfy reads it: printable ASCII only.
fn ascii_header(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(200)
        .collect()
}

/// Calls a Bot API method; its `result` on `{"ok": true}`.
pub fn telegram(app: &App, method: &str, body: &Value) -> Result<Value, String> {
    let token = &app.config.telegram_bot_token;
    if token.is_empty() {
        return Err("no Telegram bot is configured (telegram_bot_token)".into());
    }
    let url = format!("{}/bot{token}/{method}", app.config.telegram_api);
    let scrub = |s: String| s.replace(token.as_str(), "***");
    let mut resp = agent()
        .post(&url)
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .map_err(|e| scrub(format!("Telegram: {e}")))?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(|e| scrub(format!("Telegram: {e}")))?;
    let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status == 200 && doc["ok"] == json!(true) {
        return Ok(doc["result"].clone());
    }
    let why = doc["description"].as_str().unwrap_or("no description");
    Err(scrub(format!("Telegram: HTTP {status}: {why}")))
}

/// A chat's `/start CODE` as the bot received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub chat_id: i64,
    pub code: String,
}

/// The answer to a chat that sent `/start CODE`.
pub const LINKED: &str = "Linked: this chat now gets the notifications you chose.";
pub const UNKNOWN_CODE: &str =
    "That code is not known. Copy it again from your notification settings.";

/// The `/start CODE` of one update, if it is one.
pub fn start_of(update: &Value) -> Option<Start> {
    let text = update["message"]["text"].as_str().unwrap_or("");
    let chat_id = update["message"]["chat"]["id"].as_i64()?;
    let code = text.strip_prefix("/start")?.trim();
    (!code.is_empty()).then(|| Start {
        chat_id,
        code: code.to_string(),
    })
}

/// Where Telegram delivers the bot's updates in webhook mode, and the secret token it sends
/// with each (`X-Telegram-Bot-Api-Secret-Token`, derived from the install key and the bot's
/// token: a new bot or a restored install without `secret.key` gets a new one); `None` when
/// webhook mode is off.
pub fn telegram_webhook_secret(app: &App) -> Option<String> {
    let c = &app.config;
    if !c.telegram_webhook || c.telegram_bot_token.is_empty() {
        return None;
    }
    let mac = app
        .keys
        .mac(b"telegram-webhook", c.telegram_bot_token.as_bytes());
    Some(crate::domain::base::crypto::hex(&mac))
}

pub fn telegram_webhook_url(app: &App) -> String {
    format!("{}/telegram/webhook", app.config.base_url)
}

/// Set once this process has registered the webhook: every start registers it again
/// (`setWebhook` is idempotent), which also repairs a registration changed elsewhere.
static WEBHOOK_SET_THIS_RUN: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Makes the bot's webhook what the settings say: registered at [`telegram_webhook_url`]
/// when webhook mode is on (`setWebhook`), removed when it is off and was registered
/// (`deleteWebhook`: `getUpdates` answers 409 while a webhook is set). `registered` is what
/// was registered before ("" for none): the URL and a fingerprint of the secret token, so a
/// new bot token or install key (a new secret) is registered again; returns what is
/// registered now.
pub fn sync_telegram_webhook(app: &App, registered: &str) -> Result<String, String> {
    use std::sync::atomic::Ordering;
    match telegram_webhook_secret(app) {
        Some(secret) => {
            let url = telegram_webhook_url(app);
            let fingerprint = crate::domain::base::crypto::hex(
                &crate::domain::base::crypto::hmac_sha256(b"fingerprint", secret.as_bytes())[..8],
            );
            let now_registered = format!("{url} {fingerprint}");
            if now_registered != registered || !WEBHOOK_SET_THIS_RUN.load(Ordering::Relaxed) {
                telegram(
                    app,
                    "setWebhook",
                    &json!({"url": url, "secret_token": secret,
                            "allowed_updates": ["message"]}),
                )?;
                WEBHOOK_SET_THIS_RUN.store(true, Ordering::Relaxed);
            }
            Ok(now_registered)
        }
        None => {
            if !registered.is_empty() {
                telegram(app, "deleteWebhook", &json!({}))?;
            }
            Ok(String::new())
        }
    }
}

/// Reads the bot's updates from `offset`: the `/start CODE` messages among them and the
/// offset to read from next.
pub fn telegram_updates(app: &App, offset: i64) -> Result<(Vec<Start>, i64), String> {
    let result = telegram(
        app,
        "getUpdates",
        &json!({"offset": offset, "timeout": 0, "allowed_updates": ["message"]}),
    )?;
    let mut next = offset;
    let mut starts = Vec::new();
    for u in result.as_array().map(Vec::as_slice).unwrap_or_default() {
        if let Some(id) = u["update_id"].as_i64() {
            next = next.max(id + 1);
        }
        starts.extend(start_of(u));
    }
    Ok((starts, next))
}
