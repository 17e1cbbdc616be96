//! Notifications to the account holder's phone (README "Notifications"): the channels an
//! account sets up (an ntfy topic, a Telegram chat, its e-mail address), each with the events
//! it wants, and the queue the `notifications` job sends. Owns `notify_channels`,
//! `notifications` and `telegram_offset`.
//!
//! A notification is queued in the transaction of its event (an SMS delivered, an order
//! ended with a refund), one row per channel that chose the event, and sent later by the job
//! with back-off; the request or the ingest that caused it never waits for it. Texts are made
//! here from the account's own order only: the service, the code, the order number; never
//! another person's data. A message's body is deleted once it is sent or given up, and a
//! pending one is given up when the SMS retention period passes.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::domain::accounts::Role;
use crate::domain::base::crypto::{random_token, Keys};
use crate::domain::{Error, Result};

/// Attempts before a message is given up.
pub const MAX_ATTEMPTS: i64 = 6;

/// The wait before the next attempt after `failed` failed attempts: 30 s, then doubling, at
/// most an hour (the webhooks' schedule).
pub fn retry_delay(failed: i64) -> i64 {
    let doublings = (failed - 1).clamp(0, 20) as u32;
    (30i64 << doublings).min(3600)
}
/// Channels one account may have.
const MAX_CHANNELS: usize = 10;
/// Seal purpose of ntfy access tokens.
const TOKEN_SEAL: &str = "ntfy-token";

/// An SMS with a code reached an activation (the code and the service are in the text).
pub const CODE: &str = "code";
/// An activation ended with a refund (expired or cancelled before a code came).
pub const REFUNDED: &str = "refunded";
/// An SMS reached a rented number.
pub const RENTAL_SMS: &str = "rental_sms";
/// A charge took the balance below the channel's threshold.
pub const LOW_BALANCE: &str = "low_balance";
/// The administrator paid an operator's payout.
pub const PAYOUT_PAID: &str = "payout_paid";
/// One of the operator's devices went offline.
pub const DEVICE_OFFLINE: &str = "device_offline";
/// For administrators: a backup failed, or an upstream provider was paused.
pub const ADMIN_ALERT: &str = "admin_alert";
/// A test from the settings or the API.
pub const TEST: &str = "test";

/// The events an account may choose.
pub const EVENTS: &[&str] = &[
    CODE,
    REFUNDED,
    RENTAL_SMS,
    LOW_BALANCE,
    PAYOUT_PAID,
    DEVICE_OFFLINE,
    ADMIN_ALERT,
];

/// The lowest role that may choose `event`.
pub fn needs(event: &str) -> Role {
    match event {
        PAYOUT_PAID | DEVICE_OFFLINE => Role::Operator,
        ADMIN_ALERT => Role::Admin,
        _ => Role::User,
    }
}

/// The events an account of `role` may choose.
pub fn events_for(role: Role) -> Vec<&'static str> {
    EVENTS
        .iter()
        .copied()
        .filter(|e| needs(e) <= role)
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Ntfy,
    Telegram,
    Email,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "ntfy" => Some(Kind::Ntfy),
            "telegram" => Some(Kind::Telegram),
            "email" => Some(Kind::Email),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ntfy => "ntfy",
            Kind::Telegram => "telegram",
            Kind::Email => "email",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Channel {
    pub id: i64,
    #[serde(skip)]
    pub user_id: i64,
    pub kind: Kind,
    /// ntfy: the topic's URL.
    pub url: String,
    /// ntfy: whether an access token is kept (never shown).
    pub has_token: bool,
    /// Telegram: the chat, once known.
    pub chat_id: String,
    /// Telegram: still waiting for `/start CODE`.
    pub waiting_for_chat: bool,
    pub events: Vec<String>,
    /// `low_balance`: the threshold, in minor units.
    pub low_balance_minor: Option<i64>,
    pub created_at: Timestamp,
}

const COLUMNS: &str =
    "id, user_id, kind, url, token_sealed <> '', chat_id, link_code_hash IS NOT NULL, events, \
     created_at, low_balance_minor";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Channel> {
    let kind: String = r.get(2)?;
    let events: String = r.get(7)?;
    Ok(Channel {
        id: r.get(0)?,
        user_id: r.get(1)?,
        kind: Kind::parse(&kind).unwrap_or(Kind::Email),
        url: r.get(3)?,
        has_token: r.get(4)?,
        chat_id: r.get(5)?,
        waiting_for_chat: r.get(6)?,
        events: events.split_whitespace().map(str::to_string).collect(),
        created_at: r.get(8)?,
        low_balance_minor: r.get(9)?,
    })
}

/// What a new channel is.
#[derive(Debug, Clone, Default)]
pub struct NewChannel<'a> {
    pub kind: &'a str,
    pub url: &'a str,
    pub token: &'a str,
    pub chat_id: &'a str,
    pub events: Vec<&'a str>,
    /// Needed with `low_balance`.
    pub low_balance_minor: Option<i64>,
}

/// A channel just made; a Telegram channel without a chat id carries the code to send to the
/// bot (shown once).
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    pub channel: Channel,
    pub link_code: Option<String>,
}

fn link_hash(keys: &Keys, code: &str) -> Vec<u8> {
    keys.token_hash(&code.trim().to_ascii_lowercase())
}

/// Refuses a Telegram channel when the install has no bot (`telegram_bot_token`): the
/// install's state, not the request, stands in the way.
pub fn check_available(kind: &str, has_bot: bool) -> Result<()> {
    if kind.trim() == "telegram" && !has_bot {
        return Err(Error::Conflict(
            "This site has no Telegram bot (the administrator sets telegram_bot_token).".into(),
        ));
    }
    Ok(())
}

/// Checks the events against the account's role (an event above it is forbidden, not
/// malformed); duplicates dropped. No event at all is allowed: such a channel gets only
/// tests (the settings page asks for one).
fn check_events<'a>(events: &[&'a str], role: Role) -> Result<Vec<&'a str>> {
    let mut out: Vec<&str> = Vec::new();
    for e in events {
        if !EVENTS.contains(e) {
            return Err(Error::invalid(format!("Unknown event `{e}`.")));
        }
        if needs(e) > role {
            return Err(Error::Forbidden(format!(
                "The event `{e}` is for {} accounts.",
                needs(e).as_str()
            )));
        }
        if !out.contains(e) {
            out.push(e);
        }
    }
    Ok(out)
}

/// Adds a channel to the account. ntfy URLs follow the webhooks' rules (http(s), no
/// internal address unless `allow_private`); a Telegram chat id is a whole number (a group's
/// is negative), or empty to link the chat with `/start CODE`.
pub fn create(
    conn: &Connection,
    keys: &Keys,
    user_id: i64,
    role: Role,
    new: &NewChannel<'_>,
    allow_private: bool,
    now: Timestamp,
) -> Result<Created> {
    let kind = Kind::parse(new.kind.trim())
        .ok_or_else(|| Error::invalid("The channel must be ntfy, telegram or email."))?;
    let mut events = check_events(&new.events, role)?;
    // A threshold alone chooses the event; the event needs its threshold.
    let threshold = match (events.contains(&LOW_BALANCE), new.low_balance_minor) {
        (_, Some(t)) if t > 0 => Some(t),
        (false, None) => None,
        _ => {
            return Err(Error::invalid(
                "Give the low-balance threshold: the balance below which to be told (more \
                 than zero).",
            ))
        }
    };
    if threshold.is_some() && !events.contains(&LOW_BALANCE) {
        events.push(LOW_BALANCE);
    }
    if list_for(conn, user_id)?.len() >= MAX_CHANNELS {
        return Err(Error::Conflict(format!(
            "An account may have at most {MAX_CHANNELS} channels."
        )));
    }
    let (mut url, mut sealed, mut chat_id, mut code) = (String::new(), String::new(), "", None);
    match kind {
        Kind::Ntfy => {
            crate::outbound::check_url(new.url, allow_private).map_err(Error::Invalid)?;
            url = new.url.trim().to_string();
            if url
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("")
                .is_empty()
                || url.split("://").nth(1).is_none_or(|r| !r.contains('/'))
            {
                return Err(Error::invalid(
                    "Give the topic's URL, e.g. https://ntfy.sh/my-secret-topic.",
                ));
            }
            let token = new.token.trim();
            if token.len() > 200 || !token.chars().all(|c| c.is_ascii_graphic()) {
                return Err(Error::invalid("The access token is not valid."));
            }
            if !token.is_empty() {
                sealed = keys.seal(TOKEN_SEAL, token);
            }
        }
        Kind::Telegram => {
            chat_id = new.chat_id.trim();
            let digits = chat_id.strip_prefix('-').unwrap_or(chat_id);
            if !chat_id.is_empty()
                && (digits.is_empty()
                    || digits.len() > 20
                    || !digits.chars().all(|c| c.is_ascii_digit()))
            {
                return Err(Error::invalid("A Telegram chat id is a whole number."));
            }
            if chat_id.is_empty() {
                code = Some(random_token(5));
            }
        }
        Kind::Email => {}
    }
    conn.prepare_cached(
        "INSERT INTO notify_channels (user_id, kind, url, token_sealed, chat_id, \
         link_code_hash, events, created_at, low_balance_minor) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        user_id,
        kind.as_str(),
        url,
        sealed,
        chat_id,
        code.as_deref().map(|c| link_hash(keys, c)),
        events.join(" "),
        now,
        threshold
    ])?;
    let channel = get_for(conn, user_id, conn.last_insert_rowid())?;
    Ok(Created {
        channel,
        link_code: code,
    })
}

pub fn list_for(conn: &Connection, user_id: i64) -> Result<Vec<Channel>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM notify_channels WHERE user_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([user_id], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One of the account's channels.
pub fn get_for(conn: &Connection, user_id: i64, id: i64) -> Result<Channel> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM notify_channels WHERE id = ?1 AND user_id = ?2"
    ))?
    .query_row(params![id, user_id], from_row)
    .optional()?
    .ok_or(Error::NotFound("notification channel"))
}

/// Deletes one of the account's channels; what it still had to send is given up.
pub fn delete(conn: &Connection, user_id: i64, id: i64, now: Timestamp) -> Result<Channel> {
    let c = get_for(conn, user_id, id)?;
    give_up_channel(conn, id, "channel deleted", now)?;
    conn.execute("DELETE FROM notify_channels WHERE id = ?1", [id])?;
    Ok(c)
}

fn give_up_channel(conn: &Connection, id: i64, why: &str, now: Timestamp) -> Result<()> {
    conn.prepare_cached(
        "UPDATE notifications SET state = 'failed', body = NULL, finished_at = ?2, \
         last_error = ?3 WHERE channel_id = ?1 AND state = 'pending'",
    )?
    .execute(params![id, now, why])?;
    Ok(())
}

/// Deletes every channel of an account and gives up what they had to send (account
/// deletion).
pub fn delete_all_for(conn: &Connection, user_id: i64, now: Timestamp) -> Result<()> {
    for c in list_for(conn, user_id)? {
        give_up_channel(conn, c.id, "account closed", now)?;
    }
    conn.execute("DELETE FROM notify_channels WHERE user_id = ?1", [user_id])?;
    Ok(())
}

/// Links the Telegram chat that sent `/start CODE` to the channel waiting for that code;
/// returns the channel's account, or None for an unknown code.
pub fn link_telegram(
    conn: &Connection,
    keys: &Keys,
    code: &str,
    chat_id: i64,
) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "UPDATE notify_channels SET chat_id = ?2, link_code_hash = NULL \
             WHERE link_code_hash = ?1 AND kind = 'telegram' RETURNING user_id",
        )?
        .query_row(params![link_hash(keys, code), chat_id.to_string()], |r| {
            r.get(0)
        })
        .optional()?)
}

/// The next Telegram update to read.
pub fn telegram_offset(conn: &Connection) -> Result<i64> {
    Ok(conn
        .query_row(
            "SELECT next_update FROM telegram_offset WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

/// The URL the bot's webhook was last registered at ("" for none: updates are polled).
pub fn telegram_webhook(conn: &Connection) -> Result<String> {
    Ok(conn
        .query_row(
            "SELECT webhook_url FROM telegram_offset WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or_default())
}

pub fn set_telegram_webhook(conn: &Connection, url: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO telegram_offset (id, next_update, webhook_url) VALUES (1, 0, ?1) \
         ON CONFLICT (id) DO UPDATE SET webhook_url = ?1",
        [url],
    )?;
    Ok(())
}

pub fn set_telegram_offset(conn: &Connection, next: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO telegram_offset (id, next_update) VALUES (1, ?1) \
         ON CONFLICT (id) DO UPDATE SET next_update = ?1",
        [next],
    )?;
    Ok(())
}

/// Queues `title`/`body` for every ready channel of the account that chose `event`; returns
/// how many. Called in the transaction of the event.
pub fn notify(
    conn: &Connection,
    user_id: i64,
    event: &str,
    title: &str,
    body: &str,
    now: Timestamp,
) -> Result<usize> {
    notify_private(conn, user_id, event, title, body, body, now)
}

/// [`notify`] for a text that carries a code or an SMS: e-mail channels also keep `mail_body`,
/// the same news without it. The `notifications` job mails `body` only through an SMTP server,
/// as a private mail (`mail::enqueue_private`: its outbox body becomes `mail_body` once sent,
/// or after the SMS retention, and the admin's outbox shows only `mail_body`); without SMTP a
/// mail only waits in the outbox and goes to the log, so it is `mail_body`. ntfy and Telegram
/// messages forget their body once sent.
#[allow(clippy::too_many_arguments)]
pub fn notify_private(
    conn: &Connection,
    user_id: i64,
    event: &str,
    title: &str,
    body: &str,
    mail_body: &str,
    now: Timestamp,
) -> Result<usize> {
    let mut n = 0;
    for c in list_for(conn, user_id)? {
        let ready = !(c.kind == Kind::Telegram && c.chat_id.is_empty());
        if ready && c.events.iter().any(|e| e == event) {
            let public = (c.kind == Kind::Email && mail_body != body).then_some(mail_body);
            insert(conn, &c, event, title, body, public, now)?;
            n += 1;
        }
    }
    Ok(n)
}

fn insert(
    conn: &Connection,
    c: &Channel,
    event: &str,
    title: &str,
    body: &str,
    public_body: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO notifications (channel_id, user_id, event, title, body, public_body, \
         next_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
    )?
    .execute(params![
        c.id,
        c.user_id,
        event,
        title,
        body,
        public_body,
        now
    ])?;
    Ok(())
}

/// A charge took the balance from `before` to `after`: tells the channels whose
/// `low_balance` threshold it crossed (called by the wallet in the charge's transaction).
pub fn balance_fell(
    conn: &Connection,
    user_id: i64,
    before: i64,
    after: i64,
    now: Timestamp,
) -> Result<()> {
    for c in list_for(conn, user_id)? {
        let Some(t) = c.low_balance_minor else {
            continue;
        };
        let ready = !(c.kind == Kind::Telegram && c.chat_id.is_empty());
        if ready && before >= t && after < t && c.events.iter().any(|e| e == LOW_BALANCE) {
            insert(
                conn,
                &c,
                LOW_BALANCE,
                "Low balance",
                "Your balance fell below the threshold you set; top up to keep ordering.",
                None,
                now,
            )?;
        }
    }
    Ok(())
}

/// Tells every active administrator's channels that chose [`ADMIN_ALERT`].
pub fn notify_admins(conn: &Connection, title: &str, body: &str, now: Timestamp) -> Result<()> {
    let admins: Vec<i64> = {
        // The same read as `accounts::count_admins`: administrators are few.
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM users WHERE role = 'admin' AND state = 'active' ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for id in admins {
        notify(conn, id, ADMIN_ALERT, title, body, now)?;
    }
    Ok(())
}

/// Queues a test message to one of the account's channels.
pub fn queue_test(conn: &Connection, user_id: i64, id: i64, now: Timestamp) -> Result<()> {
    let c = get_for(conn, user_id, id)?;
    if c.kind == Kind::Telegram && c.chat_id.is_empty() {
        return Err(Error::Conflict(
            "This Telegram channel waits for its chat: send the code to the bot first.".into(),
        ));
    }
    insert(
        conn,
        &c,
        TEST,
        "Test notification",
        "A test from otpbox: this channel works.",
        None,
        now,
    )
}

/// A message due for sending, with what its channel needs.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    pub kind: Kind,
    pub url: String,
    /// The ntfy access token, opened.
    pub token: String,
    pub chat_id: String,
    /// The account's address (e-mail channels).
    pub email: String,
    pub event: String,
    pub title: String,
    pub body: String,
    /// E-mail only: the news without the code or SMS text `body` carries (`None`: `body` has
    /// neither).
    pub public_body: Option<String>,
    pub attempts: i64,
}

/// Messages due now, oldest first.
pub fn due(conn: &Connection, keys: &Keys, now: Timestamp, limit: i64) -> Result<Vec<Due>> {
    let mut stmt = conn.prepare_cached(
        "SELECT n.id, c.kind, c.url, c.token_sealed, c.chat_id, u.email, n.event, n.title, \
         n.body, n.attempts, n.public_body FROM notifications n \
         JOIN notify_channels c ON c.id = n.channel_id JOIN users u ON u.id = n.user_id \
         WHERE n.state = 'pending' AND n.next_at <= ?1 ORDER BY n.next_at, n.id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now, limit], |r| {
        let kind: String = r.get(1)?;
        let sealed: String = r.get(3)?;
        Ok(Due {
            id: r.get(0)?,
            kind: Kind::parse(&kind).unwrap_or(Kind::Email),
            url: r.get(2)?,
            token: if sealed.is_empty() {
                String::new()
            } else {
                keys.open(TOKEN_SEAL, &sealed).unwrap_or_default()
            },
            chat_id: r.get(4)?,
            email: r.get(5)?,
            event: r.get(6)?,
            title: r.get(7)?,
            body: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
            attempts: r.get(9)?,
            public_body: r.get(10)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Records an attempt: sent, or retried after the webhooks' back-off, or after
/// [`MAX_ATTEMPTS`] given up. A finished message forgets its body. Returns the new state.
pub fn record(
    conn: &Connection,
    d: &Due,
    error: Option<&str>,
    now: Timestamp,
) -> Result<&'static str> {
    let n = d.attempts + 1;
    let state = match error {
        None => "sent",
        Some(_) if n >= MAX_ATTEMPTS => "failed",
        Some(_) => "pending",
    };
    let mut error = error.unwrap_or("").to_string();
    error.truncate(300);
    conn.prepare_cached(
        "UPDATE notifications SET state = ?2, attempts = ?3, next_at = ?4, last_error = ?5, \
         finished_at = CASE WHEN ?2 = 'pending' THEN NULL ELSE ?6 END, \
         body = CASE WHEN ?2 = 'pending' THEN body END, \
         public_body = CASE WHEN ?2 = 'pending' THEN public_body END \
         WHERE id = ?1 AND state = 'pending'",
    )?
    .execute(params![d.id, state, n, now + retry_delay(n), error, now])?;
    Ok(state)
}

/// A line of an account's delivery log.
#[derive(Debug, Clone, Serialize)]
pub struct Logged {
    pub id: i64,
    pub channel_id: Option<i64>,
    pub event: String,
    pub title: String,
    pub state: String,
    pub attempts: i64,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub last_error: String,
}

/// The account's newest messages.
pub fn log_for(conn: &Connection, user_id: i64, limit: i64) -> Result<Vec<Logged>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, channel_id, event, title, state, attempts, created_at, finished_at, \
         last_error FROM notifications WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![user_id, limit], |r| {
        Ok(Logged {
            id: r.get(0)?,
            channel_id: r.get(1)?,
            event: r.get(2)?,
            title: r.get(3)?,
            state: r.get(4)?,
            attempts: r.get(5)?,
            created_at: r.get(6)?,
            finished_at: r.get(7)?,
            last_error: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Gives up messages still pending after the SMS retention period (they may hold a code),
/// deleting their bodies (the `sms_retention` job); returns how many.
pub fn forget_pending(conn: &Connection, retention: u64, now: Timestamp) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "UPDATE notifications SET state = 'failed', body = NULL, finished_at = ?2, \
             last_error = 'given up: older than the SMS retention period' \
             WHERE id IN (SELECT id FROM notifications INDEXED BY notifications_pending \
             WHERE state = 'pending' AND created_at <= ?1 LIMIT 1000)",
        )?
        .execute(params![now - retention as i64, now])?)
}

/// Deletes the delivery log older than `log_retention` (the retention job); returns how
/// many.
pub fn prune(conn: &Connection, retention: u64, now: Timestamp) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM notifications WHERE id IN (SELECT id FROM notifications \
             WHERE created_at <= ?1 AND state <> 'pending' ORDER BY created_at LIMIT 5000)",
        )?
        .execute([now - retention as i64])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    fn user(conn: &Connection, email: &str) -> i64 {
        crate::domain::accounts::create(
            conn,
            &crate::domain::accounts::NewUser {
                email,
                password_hash: Some("x"),
                role: Role::User,
                verified: true,
                age_confirmed: true,
                aup_accepted: true,
            },
            1,
        )
        .unwrap()
        .id
    }

    fn ntfy<'a>(url: &'a str, events: Vec<&'a str>) -> NewChannel<'a> {
        NewChannel {
            kind: "ntfy",
            url,
            token: "tk_secret",
            events,
            ..NewChannel::default()
        }
    }

    #[test]
    fn events_follow_the_role_and_a_low_balance_needs_its_threshold() {
        let conn = db::memory();
        let keys = Keys::from_bytes([1; 32]);
        let uid = user(&conn, "a@example.com");
        let email = |events: Vec<&'static str>, t: Option<i64>| NewChannel {
            kind: "email",
            events,
            low_balance_minor: t,
            ..NewChannel::default()
        };
        let err = |role: Role, n: NewChannel<'_>| {
            create(&conn, &keys, uid, role, &n, false, 10)
                .unwrap_err()
                .to_string()
        };
        assert!(err(Role::User, email(vec![PAYOUT_PAID], None)).contains("operator"));
        let forbidden = create(
            &conn,
            &keys,
            uid,
            Role::User,
            &email(vec![ADMIN_ALERT], None),
            false,
            10,
        )
        .unwrap_err();
        assert_eq!(forbidden.code(), "forbidden");
        assert!(err(Role::Operator, email(vec![ADMIN_ALERT], None)).contains("admin"));
        assert!(err(Role::User, email(vec![LOW_BALANCE], None)).contains("threshold"));
        assert!(err(Role::User, email(vec![LOW_BALANCE], Some(0))).contains("threshold"));
        assert_eq!(
            events_for(Role::User),
            [CODE, REFUNDED, RENTAL_SMS, LOW_BALANCE]
        );
        assert_eq!(events_for(Role::Admin).len(), EVENTS.len());
        // The threshold alone chooses the event.
        let made = create(
            &conn,
            &keys,
            uid,
            Role::User,
            &email(vec![], Some(500)),
            false,
            10,
        )
        .unwrap();
        assert_eq!(made.channel.events, [LOW_BALANCE]);
        // Told once, when a charge crosses the threshold.
        balance_fell(&conn, uid, 900, 600, 11).unwrap();
        balance_fell(&conn, uid, 600, 400, 12).unwrap();
        balance_fell(&conn, uid, 400, 300, 13).unwrap();
        let due = due(&conn, &keys, 20, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(
            (due[0].event.as_str(), due[0].email.as_str()),
            (LOW_BALANCE, "a@example.com")
        );
    }

    #[test]
    fn admin_alerts_reach_active_administrators_only() {
        let conn = db::memory();
        let keys = Keys::from_bytes([1; 32]);
        let admin = user(&conn, "root@example.com");
        let customer = user(&conn, "c@example.com");
        conn.execute("UPDATE users SET role = 'admin' WHERE id = ?1", [admin])
            .unwrap();
        let alert = NewChannel {
            kind: "email",
            events: vec![ADMIN_ALERT],
            ..NewChannel::default()
        };
        create(&conn, &keys, admin, Role::Admin, &alert, false, 10).unwrap();
        let code = NewChannel {
            kind: "email",
            events: vec![CODE],
            ..NewChannel::default()
        };
        create(&conn, &keys, customer, Role::User, &code, false, 10).unwrap();
        notify_admins(&conn, "Backup failed", "disk full", 11).unwrap();
        let due = due(&conn, &keys, 11, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].email, "root@example.com");
    }

    #[test]
    fn channels_are_checked() {
        let conn = db::memory();
        let keys = Keys::from_bytes([1; 32]);
        let uid = user(&conn, "a@example.com");
        let bad = |n: NewChannel<'_>| {
            create(&conn, &keys, uid, Role::User, &n, false, 10)
                .unwrap_err()
                .code()
        };
        assert_eq!(
            bad(ntfy("http://127.0.0.1/t", vec![CODE])),
            "invalid_request"
        );
        assert_eq!(bad(ntfy("https://ntfy.sh", vec![CODE])), "invalid_request");
        assert_eq!(
            bad(ntfy("https://ntfy.sh/t", vec!["nope"])),
            "invalid_request"
        );
        let tg = NewChannel {
            kind: "telegram",
            chat_id: "12a",
            events: vec![CODE],
            ..NewChannel::default()
        };
        assert_eq!(bad(tg), "invalid_request");
        let made = create(
            &conn,
            &keys,
            uid,
            Role::User,
            &ntfy("https://ntfy.sh/t", vec![CODE, CODE]),
            false,
            10,
        )
        .unwrap();
        assert_eq!(made.channel.events, [CODE]);
        assert!(made.channel.has_token);
        let sealed: String = conn
            .query_row("SELECT token_sealed FROM notify_channels", [], |r| r.get(0))
            .unwrap();
        assert!(!sealed.contains("tk_secret"), "the token is sealed");
    }

    #[test]
    fn only_ready_channels_that_chose_the_event_get_it_and_a_body_is_forgotten_when_done() {
        let conn = db::memory();
        let keys = Keys::from_bytes([1; 32]);
        let uid = user(&conn, "a@example.com");
        let other = user(&conn, "b@example.com");
        let mk =
            |u: i64, n: NewChannel<'_>| create(&conn, &keys, u, Role::User, &n, false, 10).unwrap();
        mk(uid, ntfy("https://ntfy.sh/t", vec![CODE]));
        mk(uid, ntfy("https://ntfy.sh/r", vec![RENTAL_SMS]));
        let waiting = mk(
            uid,
            NewChannel {
                kind: "telegram",
                events: vec![CODE],
                ..NewChannel::default()
            },
        );
        mk(other, ntfy("https://ntfy.sh/o", vec![CODE]));
        assert_eq!(notify(&conn, uid, CODE, "t", "123456", 20).unwrap(), 1);
        // The Telegram chat links with its code; then it gets the next one.
        let code = waiting.link_code.unwrap();
        assert_eq!(link_telegram(&conn, &keys, "nope", 5).unwrap(), None);
        assert_eq!(
            link_telegram(&conn, &keys, &code.to_uppercase(), 42).unwrap(),
            Some(uid)
        );
        assert_eq!(notify(&conn, uid, CODE, "t", "654321", 21).unwrap(), 2);
        let due = due(&conn, &keys, 21, 10).unwrap();
        assert_eq!(due.len(), 3);
        assert_eq!(due[0].token, "tk_secret");
        assert_eq!(
            (due[0].body.as_str(), due[2].chat_id.as_str()),
            ("123456", "42")
        );
        assert_eq!(
            record(&conn, &due[0], Some("HTTP 500"), 21).unwrap(),
            "pending"
        );
        assert_eq!(record(&conn, &due[1], None, 21).unwrap(), "sent");
        assert_eq!(record(&conn, &due[2], None, 21).unwrap(), "sent");
        let bodies: Vec<Option<String>> = {
            let mut s = conn
                .prepare("SELECT body FROM notifications ORDER BY id")
                .unwrap();
            let r = s.query_map([], |r| r.get(0)).unwrap();
            r.collect::<rusqlite::Result<_>>().unwrap()
        };
        assert_eq!(bodies, [Some("123456".into()), None, None]);
        // The failed one waits for its back-off.
        assert!(super::due(&conn, &keys, 21, 10).unwrap().is_empty());
        assert_eq!(super::due(&conn, &keys, 21 + 30, 10).unwrap().len(), 1);
        // Retention gives up the pending ones and forgets their bodies.
        assert_eq!(forget_pending(&conn, 300, 20 + 300).unwrap(), 1);
        assert!(super::due(&conn, &keys, 10_000, 10).unwrap().is_empty());
        // Account deletion: no channel left, nothing queued any more.
        delete_all_for(&conn, uid, 400).unwrap();
        assert_eq!(notify(&conn, uid, CODE, "t", "x", 401).unwrap(), 0);
        assert_eq!(log_for(&conn, uid, 10).unwrap().len(), 3);
        assert_eq!(prune(&conn, 100, 500).unwrap(), 3);
    }
}
