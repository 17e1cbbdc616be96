//! The notification channels page (`/settings/notifications`; handler:
//! `http::web::accounts::notifications`), with the opt-in of the dashboard's own browser
//! notifications.

use maud::{html, Markup};

use crate::domain::accounts::notifications::{
    Channel, Kind, Logged, ADMIN_ALERT, CODE, DEVICE_OFFLINE, LOW_BALANCE, PAYOUT_PAID, REFUNDED,
    RENTAL_SMS,
};
use crate::views::{csrf, flash, opt_time, page as layout, time, Flash, Kept, Nav};

/// The events, as the form offers them.
const EVENT_LABELS: &[(&str, &str)] = &[
    (
        CODE,
        "A code arrived (with the code and the service; e-mail carries the code only when this server sends mail through SMTP)",
    ),
    (REFUNDED, "An order ended without a code and was refunded"),
    (
        RENTAL_SMS,
        "An SMS reached a rented number (with the SMS; e-mail carries it only when this server sends mail through SMTP)",
    ),
    (
        LOW_BALANCE,
        "A charge took my balance below the threshold below",
    ),
    (PAYOUT_PAID, "A payout of mine was paid"),
    (DEVICE_OFFLINE, "One of my devices went offline"),
    (
        ADMIN_ALERT,
        "A backup failed or an upstream provider was paused",
    ),
];

fn event_boxes(allowed: &[&str], kept: &Kept) -> Markup {
    html! {
        fieldset {
            legend { "Send me" }
            @for (name, label) in EVENT_LABELS.iter().filter(|(n, _)| allowed.contains(n)) {
                label.check { input type="checkbox" name="events" value=(name) checked[kept.get("events").is_none() && *name == CODE || kept.get("events") == Some(name)]; " " (label) }
            }
        }
    }
}

fn target(c: &Channel) -> String {
    match c.kind {
        Kind::Ntfy => c.url.clone(),
        Kind::Telegram if c.waiting_for_chat => "waiting for /start".into(),
        Kind::Telegram => format!("chat {}", c.chat_id),
        Kind::Email => "your e-mail address".into(),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn page(
    nav: &Nav,
    token: &str,
    allowed: &[&str],
    channels: &[Channel],
    log: &[Logged],
    telegram: bool,
    new_code: Option<&str>,
    kept: &Kept,
    f: &Option<Flash>,
) -> Markup {
    layout(
        "Notifications",
        nav,
        html! {
            p { a href="/settings" { "← Settings" } }
            h1 { "Notifications" }
            (flash(f))
            p.muted { "Get a message on your phone when something happens. What a channel receives leaves this server: a code, when you choose it, goes to that channel's service (your ntfy server, Telegram, your mailbox)." }
            @if let Some(code) = new_code {
                div.notice #link-code {
                    p { "Send this message to the site's Telegram bot to link your chat:" }
                    p { code { "/start " (code) } }
                    p.muted { "The code is shown only now. Until the bot receives it, nothing is sent to Telegram." }
                }
            }
            section.card #channels {
                h2 { "Your channels" }
                @if channels.is_empty() {
                    p.muted { "None yet." }
                } @else {
                    table {
                        thead { tr { th { "Channel" } th { "Where" } th { "Events" } th { "Added" } th {} } }
                        tbody {
                            @for c in channels {
                                tr data-channel=(c.id) {
                                    td { (c.kind.as_str()) }
                                    td { (target(c)) }
                                    td { (c.events.join(", ")) }
                                    td { (time(c.created_at)) }
                                    td {
                                        form.inline method="post" action=(format!("/settings/notifications/{}/test", c.id)) {
                                            (csrf(token))
                                            button.link type="submit" { "Send test" }
                                        }
                                        " "
                                        form.inline method="post" action=(format!("/settings/notifications/{}/delete", c.id)) {
                                            (csrf(token))
                                            button.link type="submit" { "Delete" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section.card #add {
                h2 { "Add a channel" }
                form method="post" action="/settings/notifications" {
                    (csrf(token))
                    label { "Kind"
                        select name="kind" {
                            option value="ntfy" selected[kept.get("kind").is_none_or(|k| k == "ntfy")] { "ntfy topic" }
                            @if telegram { option value="telegram" selected[kept.get("kind") == Some("telegram")] { "Telegram" } }
                            option value="email" selected[kept.get("kind") == Some("email")] { "E-mail" }
                        }
                    }
                    label { "ntfy topic URL (e.g. https://ntfy.sh/a-long-secret-topic, or your own server)" input type="url" name="url" value=(kept.or("url", "")); }
                    label { "ntfy access token (optional, for a protected topic)" input type="password" name="token" autocomplete="off"; }
                    @if telegram {
                        label { "Telegram chat id (optional: leave empty to link your chat with a /start code)" input type="text" name="chat_id" value=(kept.or("chat_id", "")) inputmode="numeric"; }
                    }
                    (event_boxes(allowed, kept))
                    label { "Low balance threshold (with “below the threshold”)" input type="text" name="low_balance" value=(kept.or("low_balance", "")) inputmode="decimal" placeholder="1.00"; }
                    button type="submit" { "Add" }
                }
            }
            section.card #browser {
                h2 { "In this browser" }
                p { "The dashboard can show a code the moment it arrives with your browser's own notifications (no push service is involved; only while the dashboard is open)." }
                p { button.secondary type="button" #browser-notify { "Allow browser notifications" } span #browser-notify-state {} }
            }
            section.card #log {
                h2 { "Delivery log" }
                @if log.is_empty() {
                    p.muted { "Nothing sent yet." }
                } @else {
                    table {
                        thead { tr { th { "Queued" } th { "Event" } th { "Title" } th { "State" } th { "Tries" } th { "Finished" } th { "Last error" } } }
                        tbody {
                            @for l in log {
                                tr data-state=(l.state) {
                                    td { (time(l.created_at)) }
                                    td { (l.event) }
                                    td { (l.title) }
                                    td { (l.state) }
                                    td { (l.attempts) }
                                    td { (opt_time(l.finished_at)) }
                                    td { (l.last_error) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}
