//! Customer pages: the dashboard (order form, live orders), order history, wallet, rentals
//! and API keys.

use maud::{html, Markup};

use crate::domain::accounts::apikeys::ApiKey;
use crate::domain::base::money::Money;
use crate::domain::market::activations::{Activation, Status};
use crate::domain::market::catalogue::{Country, Offer, Service};
use crate::domain::market::inbox::Message;
use crate::domain::market::rentals::{Rental, Status as RentalStatus};
use crate::domain::market::wallet::Entry;
use crate::views::{csrf, flash, page, time, Flash, Kept, Nav};

/// Money formatting for this install.
#[derive(Clone)]
pub struct Cur {
    pub code: String,
    pub digits: u32,
}

impl Cur {
    pub fn fmt(&self, minor: i64) -> String {
        format!("{} {}", Money(minor).decimal(self.digits), self.code)
    }
}

pub struct OrderCard {
    pub a: Activation,
    pub messages: Vec<Message>,
    pub country_name: String,
    pub service_name: String,
}

pub struct Dashboard<'a> {
    pub cur: Cur,
    pub balance_minor: i64,
    pub verified: bool,
    pub countries: &'a [Country],
    pub country: i64,
    pub services: &'a [Service],
    pub offers: &'a [Offer],
    pub live: Vec<OrderCard>,
    pub now: i64,
    /// What was typed into the order form before it failed.
    pub kept: &'a Kept,
}

fn order_form(d: &Dashboard<'_>, token: &str) -> Markup {
    html! {
        section.card #order {
            h2 { "Order a number" }
            form.picker method="get" action="/dashboard" {
                label { "Country"
                    select name="country" data-autosubmit="1" {
                        @for c in d.countries {
                            option value=(c.id) selected[c.id == d.country] { (c.name) " (+" (c.prefix) ")" }
                        }
                    }
                }
                noscript { button.secondary type="submit" { "Show prices" } }
            }
            @if d.offers.is_empty() {
                p.muted { "Nothing is for sale in this country now." }
            } @else {
                form method="post" action="/orders" {
                    (csrf(token))
                    input type="hidden" name="country" value=(d.country);
                    label { "Service"
                        select name="service" required {
                            @for o in d.offers {
                                @let name = d.services.iter().find(|s| s.code == o.service).map(|s| s.name.as_str()).unwrap_or(o.service.as_str());
                                option value=(o.service) disabled[o.stock == 0] selected[d.kept.get("service") == Some(o.service.as_str())] {
                                    (name) " — " (d.cur.fmt(o.price_minor)) " · " (o.stock) " in stock"
                                }
                            }
                        }
                    }
                    label { "Maximum price (optional)" input type="text" name="max_price" inputmode="decimal" placeholder="e.g. 1.00" value=(d.kept.or("max_price", "")); }
                    button type="submit" disabled[!d.verified] { "Order" }
                    @if !d.verified { p.muted { "Confirm your e-mail address to order." } }
                }
            }
        }
    }
}

pub fn status_label(s: Status) -> &'static str {
    match s {
        Status::Waiting => "Waiting for SMS",
        Status::Received => "Code received",
        Status::Retry => "Waiting for another SMS",
        Status::Completed => "Completed",
        Status::Canceled => "Canceled, refunded",
        Status::Expired => "Expired, refunded",
    }
}

pub fn order_card(o: &OrderCard, token: &str, cur: &Cur, now: i64) -> Markup {
    let a = &o.a;
    let code = o.messages.iter().rev().find_map(|m| m.code.clone());
    html! {
        article.card.order data-id=(a.id) data-status=(a.status.as_str()) {
            div.order-head {
                span.phone { "+" (a.phone) }
                button.link type="button" data-copy=(format!("+{}", a.phone)) { "Copy" }
                span.muted { (o.service_name) " · " (o.country_name) " · " (cur.fmt(a.price_minor)) }
            }
            p.status { span.state { (status_label(a.status)) }
                @if a.status.is_live() {
                    " · " span.countdown data-expires=(a.expires_at) data-now=(now) { ((a.expires_at - now).max(0) / 60) " min left" }
                }
            }
            div.code-box {
                @if let Some(c) = &code {
                    span.code { (c) }
                    button type="button" data-copy=(c) { "Copy code" }
                } @else if a.status.is_live() {
                    span.muted.code-wait { "The code appears here as soon as the SMS arrives." }
                }
            }
            @if !o.messages.is_empty() {
                details.messages open[a.status.is_live()] {
                    summary { (o.messages.len()) " message(s)" }
                    @for m in &o.messages {
                        p { strong { (m.sender) } " " (time(m.received_at)) br; (m.text) }
                    }
                }
            }
            @if a.status.is_live() {
                div.actions {
                    @if a.code_at.is_some() {
                        (action(a.id, "complete", "Complete", token, ""))
                        @if a.status == Status::Received { (action(a.id, "retry", "Another SMS", token, "secondary")) }
                    } @else {
                        (action(a.id, "cancel", "Cancel", token, "secondary"))
                        (action(a.id, "used", "Number already used", token, "secondary"))
                    }
                }
            }
        }
    }
}

fn action(id: i64, what: &str, label: &str, token: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(format!("/orders/{id}/{what}")) {
            (csrf(token))
            button class=(class) type="submit" { (label) }
        }
    }
}

pub fn dashboard(
    nav: &Nav,
    token: &str,
    d: &Dashboard<'_>,
    notice: Markup,
    f: &Option<Flash>,
) -> Markup {
    page(
        "Dashboard",
        nav,
        html! {
            div.row-head {
                h1 { "Dashboard" }
                a.balance href="/wallet" { "Balance: " strong #balance { (d.cur.fmt(d.balance_minor)) } }
            }
            (flash(f))
            (notice)
            (order_form(d, token))
            section #live data-live-count=(d.live.len()) {
                h2 { "Active orders" }
                @if d.live.is_empty() {
                    p.muted { "No active orders." }
                }
                @for o in &d.live {
                    (order_card(o, token, &d.cur, d.now))
                }
            }
            p { a href="/orders" { "Order history" } " · " a href="/rentals" { "Rentals" } " · " a href="/keys" { "API keys" } }
        },
    )
}

/// The order history, newest first; `older` is the `before=` of the next page, and
/// `not_first` links back to the newest orders.
pub fn history(
    nav: &Nav,
    token: &str,
    cards: &[OrderCard],
    cur: &Cur,
    now: i64,
    not_first: bool,
    older: Option<i64>,
) -> Markup {
    page(
        "Order history",
        nav,
        html! {
            h1 { "Order history" }
            @if cards.is_empty() { p.muted { "No orders yet." } }
            @for o in cards { (order_card(o, token, cur, now)) }
            p {
                @if not_first { a href="/orders" { "Newest" } " " }
                @if let Some(id) = older { a href=(format!("/orders?before={id}")) { "Older" } }
            }
        },
    )
}

pub fn wallet(
    nav: &Nav,
    token: &str,
    cur: &Cur,
    balance: i64,
    entries: &[Entry],
    topup: &crate::views::market::payments::TopupForm<'_>,
    f: &Option<Flash>,
) -> Markup {
    page(
        "Wallet",
        nav,
        html! {
            h1 { "Wallet" }
            (flash(f))
            section.card {
                p { "Balance: " strong #balance { (cur.fmt(balance)) } }
                form method="post" action="/wallet/redeem" {
                    (csrf(token))
                    label { "Voucher code" input type="text" name="code" required autocomplete="off" placeholder="XXXX-XXXX-XXXX-XXXX"; }
                    button type="submit" { "Redeem" }
                }
            }
            (crate::views::market::payments::topup_section(token, cur, topup))
            section.card {
                h2 { "Movements" }
                @if entries.is_empty() { p.muted { "None yet." } } @else {
                    table #ledger {
                        thead { tr { th { "When" } th { "What" } th { "Amount" } th { "Balance" } } }
                        tbody {
                            @for e in entries {
                                tr {
                                    td { (time(e.created_at)) }
                                    td { (e.kind) @if let Some(r) = e.ref_id { " · " (e.ref_type) " #" (r) } @if !e.note.is_empty() { " · " (e.note) } }
                                    td { (cur.fmt(e.amount_minor)) }
                                    td { (cur.fmt(e.balance_after)) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub struct RentalCard {
    pub r: Rental,
    pub messages: Vec<Message>,
}

pub fn rentals(
    nav: &Nav,
    token: &str,
    cur: &Cur,
    countries: &[Country],
    services: &[Service],
    cards: &[RentalCard],
    f: &Option<Flash>,
) -> Markup {
    page(
        "Rentals",
        nav,
        html! {
            h1 { "Rentals" }
            (flash(f))
            section.card {
                h2 { "Rent a number" }
                p.muted { "Every SMS to the number reaches you for the whole rental. Cancel within 20 minutes for a full refund if no SMS arrived." }
                form method="post" action="/rentals" {
                    (csrf(token))
                    label { "Country" select name="country" { @for c in countries { option value=(c.id) { (c.name) } } } }
                    label { "Service" select name="service" { @for s in services { option value=(s.code) { (s.name) } } } }
                    label { "Duration"
                        select name="hours" {
                            option value="4" { "4 hours" }
                            option value="12" { "12 hours" }
                            option value="24" { "1 day" }
                            option value="72" { "3 days" }
                            option value="168" { "1 week" }
                            option value="336" { "2 weeks" }
                            option value="672" { "4 weeks" }
                        }
                    }
                    label.check { input type="checkbox" name="auto_renew" value="1"; " Renew automatically while my balance lasts" }
                    button type="submit" { "Rent" }
                }
            }
            @for c in cards {
                article.card.rental {
                    p { span.phone { "+" (c.r.phone) } " " button.link type="button" data-copy=(format!("+{}", c.r.phone)) { "Copy" } }
                    p.muted { (c.r.service) " · " (c.r.status.as_str()) " · paid " (cur.fmt(c.r.paid_minor)) " · until " (time(c.r.expires_at)) }
                    @for m in &c.messages {
                        p { strong { (m.sender) } " " (time(m.received_at)) br; (m.text)
                            @if let Some(code) = &m.code { " " button.link type="button" data-copy=(code) { "Copy " (code) } } }
                    }
                    @if c.r.status == RentalStatus::Active {
                        div.actions {
                            form.inline method="post" action=(format!("/rentals/{}/extend", c.r.id)) {
                                (csrf(token))
                                input type="hidden" name="hours" value="24";
                                button.secondary type="submit" { "Extend 1 day (" (cur.fmt(c.r.hour_minor * 24)) ")" }
                            }
                            form.inline method="post" action=(format!("/rentals/{}/cancel", c.r.id)) {
                                (csrf(token)) button.secondary type="submit" { "Cancel" }
                            }
                            @let (renew, renew_label) = if c.r.auto_renew { ("autorenew_off", "Stop auto-renew") } else { ("autorenew_on", "Renew automatically") };
                            form.inline method="post" action=(format!("/rentals/{}/{renew}", c.r.id)) {
                                (csrf(token)) button.secondary type="submit" { (renew_label) }
                            }
                            form.inline method="post" action=(format!("/rentals/{}/finish", c.r.id)) {
                                (csrf(token)) button.secondary type="submit" { "Finish" }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub fn keys(
    nav: &Nav,
    token: &str,
    keys: &[ApiKey],
    new_key: Option<&str>,
    f: &Option<Flash>,
) -> Markup {
    page(
        "API keys",
        nav,
        html! {
            h1 { "API keys" }
            (flash(f))
            @if let Some(k) = new_key {
                div.notice #new-key {
                    p { "Your new key. Copy it now: it is shown only once." }
                    p { code.key { (k) } " " button.link type="button" data-copy=(k) { "Copy" } }
                }
            }
            section.card {
                p { "Use a key as " code { "Authorization: Bearer <key>" } " on " code { "/api/v1" } ", or as " code { "api_key" } " with SMS-Activate-compatible clients." }
                form method="post" action="/keys" {
                    (csrf(token))
                    label { "Name" input type="text" name="name" maxlength="60" placeholder="e.g. my bot"; }
                    button type="submit" { "Create a key" }
                }
            }
            @if !keys.is_empty() {
                table #keys {
                    thead { tr { th { "Name" } th { "Key" } th { "Created" } th { "Last used" } th {} } }
                    tbody {
                        @for k in keys {
                            tr {
                                td { (k.name) } td { code { (k.prefix) "…" } } td { (time(k.created_at)) }
                                td { @if let Some(t) = k.last_used_at { (time(t)) } @else { "never" } }
                                td { form.inline method="post" action=(format!("/keys/{}/revoke", k.id)) { (csrf(token)) button.link type="submit" { "Revoke" } } }
                            }
                        }
                    }
                }
            }
        },
    )
}
