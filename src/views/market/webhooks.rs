//! The customer's webhook pages: the list with the forms to add, test and delete webhooks and
//! to set the SMS-Activate-compatible URL, and one webhook's delivery log.

use maud::{html, Markup};

use crate::clock::Timestamp;
use crate::domain::market::webhooks::{Delivery, State, Webhook, EVENTS, MAX_PER_ACCOUNT};
use crate::views::{csrf, flash, opt_time, page, time, Flash, Kept, Nav};

/// A webhook in the list with the state of its newest delivery.
pub struct Row {
    pub webhook: Webhook,
    pub last: Option<(State, Timestamp)>,
}

/// A secret just issued, shown once.
pub struct NewSecret<'a> {
    pub url: &'a str,
    pub secret: &'a str,
}

fn state(s: State) -> Markup {
    html! {
        @match s {
            State::Delivered => span.ok { "delivered" },
            State::Pending => span { "pending" },
            State::Failed => span.err { "failed" },
        }
    }
}

/// The SMS-Activate form says so in a hidden field: both forms have a `url`.
const SMS_ACTIVATE_FORM: &str = "sms-activate";

/// What was typed into the add form before it failed, if it did.
fn typed_into_add_form(kept: &Kept) -> Option<&Kept> {
    (!kept.0.is_empty() && kept.get("form") != Some(SMS_ACTIVATE_FORM)).then_some(kept)
}

fn about_event(e: &str) -> &'static str {
    match e {
        "sms.received" => "an SMS arrived for an activation",
        "activation.updated" => "an activation was placed or changed status",
        "rental.sms" => "an SMS arrived for a rental",
        _ => "",
    }
}

pub fn list(
    nav: &Nav,
    token: &str,
    rows: &[Row],
    sms_activate: Option<&Row>,
    new: Option<NewSecret<'_>>,
    kept: &Kept,
    f: &Option<Flash>,
) -> Markup {
    let add = typed_into_add_form(kept);
    let sms_url = if kept.get("form") == Some(SMS_ACTIVATE_FORM) {
        kept.get("url")
    } else {
        sms_activate.map(|r| r.webhook.url.as_str())
    };
    page(
        "Webhooks",
        nav,
        html! {
            p { a href="/settings" { "← Settings" } }
            h1 { "Webhooks" }
            (flash(f))
            @if let Some(n) = &new {
                div.notice #new-secret {
                    p { "Signing secret for " code { (n.url) } ". Copy it now: it is shown only once." }
                    p { code.key { (n.secret) } " " button.link type="button" data-copy=(n.secret) { "Copy" } }
                }
            }
            section.card {
                p {
                    "otpbox POSTs JSON to your URL when something happens, signed with the webhook's secret: "
                    code { "X-Otpbox-Signature: v1=<hex HMAC-SHA256(secret, timestamp + \".\" + body)>" }
                    " with the timestamp in " code { "X-Otpbox-Timestamp" } ". Answer with any 2xx status; "
                    "anything else is retried with growing pauses (30 s, 1 min, 2 min, … up to 8 attempts). "
                    code { "X-Otpbox-Delivery" } " stays the same on every retry, so you can ignore a delivery you already handled."
                }
                @if (rows.len() as i64) < MAX_PER_ACCOUNT {
                    form method="post" action="/settings/webhooks" {
                        (csrf(token))
                        label { "URL" input type="text" name="url" value=(add.map_or("", |k| k.or("url", ""))) required maxlength="2000" placeholder="https://example.com/otpbox-hook"; }
                        fieldset {
                            legend { "Events" }
                            @for e in EVENTS {
                                label.check { input type="checkbox" name="events" value=(e) checked[add.is_none_or(|k| k.0.iter().any(|(n, v)| n == "events" && v == e))]; code { (e) } " — " (about_event(e)) }
                            }
                        }
                        button type="submit" { "Add webhook" }
                    }
                } @else {
                    p.muted { "You have " (MAX_PER_ACCOUNT) " webhooks, the most an account can have. Delete one to add another." }
                }
            }
            @if !rows.is_empty() {
                table #webhooks {
                    thead { tr { th { "URL" } th { "Events" } th { "Latest delivery" } th {} } }
                    tbody {
                        @for r in rows {
                            tr {
                                td { code.key { (r.webhook.url) } }
                                td { @for e in &r.webhook.events { code { (e) } " " } }
                                td {
                                    @if let Some((s, at)) = r.last { (state(s)) " " (time(at)) } @else { span.muted { "none yet" } }
                                }
                                td { (actions(token, &r.webhook)) }
                            }
                        }
                    }
                }
            }
            section.card #sms-activate {
                h2 { "SMS-Activate compatible URL" }
                p {
                    "For clients written for SMS-Activate: when an SMS arrives for one of your activations, this URL gets "
                    code { "{\"activationId\":…,\"service\":\"tg\",\"text\":…,\"code\":…,\"country\":6,\"receivedAt\":…}" }
                    " (with the same signature headers). Saving a URL issues a new secret; an empty URL removes it."
                }
                form method="post" action="/settings/webhooks/sms-activate" {
                    (csrf(token))
                    input type="hidden" name="form" value=(SMS_ACTIVATE_FORM);
                    label { "URL" input type="text" name="url" maxlength="2000" value=[sms_url] placeholder="https://example.com/sms-activate-hook"; }
                    button type="submit" { "Save" }
                }
                @if let Some(r) = sms_activate {
                    p {
                        "Latest delivery: "
                        @if let Some((s, at)) = r.last { (state(s)) " " (time(at)) } @else { span.muted { "none yet" } }
                    }
                    (actions(token, &r.webhook))
                }
            }
        },
    )
}

fn actions(token: &str, w: &Webhook) -> Markup {
    html! {
        div.actions {
            a href=(format!("/settings/webhooks/{}", w.id)) { "Delivery log" }
            form.inline method="post" action=(format!("/settings/webhooks/{}/test", w.id)) {
                (csrf(token)) button.link type="submit" { "Send test" }
            }
            form.inline method="post" action=(format!("/settings/webhooks/{}/delete", w.id)) {
                (csrf(token)) button.link type="submit" { "Delete" }
            }
        }
    }
}

pub fn log(
    nav: &Nav,
    token: &str,
    w: &Webhook,
    deliveries: &[Delivery],
    f: &Option<Flash>,
) -> Markup {
    page(
        "Delivery log",
        nav,
        html! {
            p { a href="/settings/webhooks" { "← Webhooks" } }
            h1 { "Delivery log" }
            (flash(f))
            section.card {
                dl {
                    dt { "URL" } dd { code.key { (w.url) } }
                    dt { "Events" } dd { @for e in &w.events { code { (e) } " " } }
                    dt { "Created" } dd { (time(w.created_at)) }
                }
                (actions(token, w))
            }
            @if deliveries.is_empty() {
                p.muted { "No deliveries yet." }
            } @else {
                table #deliveries {
                    thead { tr { th { "Delivery" } th { "Event" } th { "State" } th { "Attempts" } } }
                    tbody {
                        @for d in deliveries {
                            tr class=(if d.state == State::Failed { "failed" } else { "" }) {
                                td { code { (d.id) } br; span.muted { (time(d.created_at)) } }
                                td { code { (d.event) } }
                                td {
                                    (state(d.state))
                                    @if let Some(next) = d.next_attempt_at { br; span.muted { "next try " (time(next)) } }
                                }
                                td {
                                    @for a in &d.log {
                                        div.attempt {
                                            "#" (a.attempt) " " (opt_time(Some(a.at))) " · "
                                            @if let Some(s) = a.http_status { "HTTP " (s) } @else { "no response" }
                                            " · " (a.duration_ms) " ms"
                                            @if !a.error.is_empty() && a.http_status.is_none() { " · " (a.error) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}
