//! Customer pages: the dashboard (order form, live orders), order history, wallet, rentals
//! and API keys.

use maud::{html, Markup};

use crate::domain::accounts::apikeys::ApiKey;
use crate::domain::base::money::Money;
use crate::domain::market::activations::{Activation, HistoryFilter, Status};
use crate::domain::market::catalogue::{Country, Operator, Service};
use crate::domain::market::inbox::Message;
use crate::domain::market::rentals::{Rental, Status as RentalStatus};
use crate::domain::market::wallet::Entry;
use crate::domain::supply::stats::Rate;
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
    /// When cancelling (or reporting the number used) opens: the early-cancel window.
    pub cancel_at: i64,
}

/// "87% success" or "new" (fewer than 10 orders ended in the last 7 days).
pub fn rate_label(r: &Rate) -> String {
    match r.percent() {
        Some(p) => format!("{p}% success"),
        None => "new".into(),
    }
}

fn rate_title(r: &Rate) -> String {
    format!(
        "Last 7 days: {} of {} orders got a code",
        r.coded.clamp(0, r.orders),
        r.orders
    )
}

/// One service as the order form lists it for the chosen country.
pub struct ServiceRow {
    pub code: String,
    pub name: String,
    /// The price and stock shown: the chosen operator's, or any operator's.
    pub price_minor: i64,
    pub stock: i64,
    /// With any operator: (price, stock).
    pub any_operator: (i64, i64),
    /// Each operator's price and stock (countries with operators), for the script to show
    /// when the operator changes.
    pub by_operator: Vec<OperatorOffer>,
    pub rate: Rate,
    /// Among the account's recent services (listed first).
    pub recent: bool,
}

/// What a service costs and has in stock with one operator.
pub struct OperatorOffer {
    pub operator: String,
    pub price_minor: i64,
    pub stock: i64,
}

/// The row's offers by operator as the script reads them: `{"": [price, stock], "mts": …}`
/// with each price formatted.
fn operator_offers(r: &ServiceRow, cur: &Cur) -> String {
    use std::io::Write;
    // Written straight into one buffer (serde_json escapes the strings): a map of JSON
    // values cost a sixth of the dashboard's time. The prices of one row are mostly equal,
    // so the last one formatted is kept.
    let mut out: Vec<u8> = Vec::with_capacity(32 + 32 * r.by_operator.len());
    let mut last: Option<(i64, String)> = None;
    let mut entry = |out: &mut Vec<u8>, operator: &str, price: i64, stock: i64| {
        if last.as_ref().is_none_or(|(p, _)| *p != price) {
            last = Some((price, cur.fmt(price)));
        }
        let shown = last.as_ref().map_or("", |(_, s)| s.as_str());
        let _ = serde_json::to_writer(&mut *out, operator);
        out.extend_from_slice(b":[");
        let _ = serde_json::to_writer(&mut *out, shown);
        let _ = write!(out, ",{stock}]");
    };
    out.push(b'{');
    entry(&mut out, "", r.any_operator.0, r.any_operator.1);
    for o in &r.by_operator {
        out.push(b',');
        entry(&mut out, &o.operator, o.price_minor, o.stock);
    }
    out.push(b'}');
    // Only UTF-8 went in: the strings and ASCII.
    String::from_utf8(out).unwrap_or_default()
}

pub struct Dashboard<'a> {
    pub cur: Cur,
    pub balance_minor: i64,
    pub verified: bool,
    pub countries: &'a [Country],
    pub country: i64,
    pub operators: &'a [Operator],
    /// The operator chosen, whose prices and stock the rows show.
    pub operator: Option<&'a str>,
    /// Recent services first, then the popular ones, then by name.
    pub rows: Vec<ServiceRow>,
    pub live: Vec<OrderCard>,
    pub now: i64,
    /// What was typed into the order form before it failed.
    pub kept: &'a Kept,
}

/// A search box that filters the rows of `list` as one types (shown only with the script;
/// without it the whole list is there).
fn filter_box(list: &str, placeholder: &str, label: &str) -> Markup {
    html! {
        input.filter type="search" data-filter=(list) placeholder=(placeholder) aria-label=(label) autocomplete="off" hidden;
    }
}

/// The country picker: the chosen one, and every country as a link (searchable).
fn country_picker(countries: &[Country], current: i64, base: &str) -> Markup {
    let chosen = countries.iter().find(|c| c.id == current);
    html! {
        div.country-pick {
            p.chosen { "Country: " strong #country-name { @if let Some(c) = chosen { (c.name) " (+" (c.prefix) ")" } @else { "none" } } }
            details #countries {
                summary { "Change country" }
                (filter_box("#country-list", "Type a country, e.g. Indonesia", "Search countries"))
                ul.pick #country-list {
                    @for c in countries {
                        li data-search=(format!("{} {} +{} {}", c.name.to_lowercase(), c.iso, c.prefix, c.id)) {
                            a href=(format!("{base}?country={}", c.id)) aria-current=[(c.id == current).then_some("true")] { (c.name) " " span.muted { "+" (c.prefix) } }
                        }
                    }
                }
                p.muted.filter-none hidden { "No country matches." }
            }
        }
    }
}

fn order_form(d: &Dashboard<'_>, token: &str) -> Markup {
    let country_name = d
        .countries
        .iter()
        .find(|c| c.id == d.country)
        .map(|c| c.name.as_str())
        .unwrap_or("this country");
    let in_stock = d.rows.iter().any(|r| r.stock > 0);
    let kept_service = d.kept.get("service");
    let preselect = kept_service.map(str::to_string).or_else(|| {
        d.rows
            .iter()
            .find(|r| r.recent && r.stock > 0)
            .map(|r| r.code.clone())
    });
    html! {
        section.card #order {
            h2 { "Order a number" }
            (country_picker(d.countries, d.country, "/dashboard"))
            @if !in_stock {
                p.notice #no-stock { "Nothing is in stock in " (country_name) " now. Choose another country, or try again later." }
            }
            form #order-form method="post" action="/orders" {
                (csrf(token))
                input type="hidden" name="country" value=(d.country);
                fieldset.services {
                    legend { "Service" }
                    (filter_box("#service-list", "Type a service, e.g. Telegram or tg", "Search services"))
                    div.pick-list #service-list {
                        @for r in &d.rows {
                            label.pick-row data-search=(format!("{} {}", r.name.to_lowercase(), r.code)) data-operators=[(!r.by_operator.is_empty()).then(|| operator_offers(r, &d.cur))] data-service=(r.code) {
                                input type="radio" name="service" value=(r.code) required disabled[r.stock <= 0] checked[preselect.as_deref() == Some(r.code.as_str()) && r.stock > 0];
                                span.name { (r.name) @if r.recent { " " span.badge { "recent" } } }
                                span.price { (d.cur.fmt(r.price_minor)) }
                                span.stock { @if r.stock > 0 { (r.stock) " in stock" } @else { "out of stock" } }
                                span.rate title=(rate_title(&r.rate)) { (rate_label(&r.rate)) }
                            }
                        }
                    }
                    p.muted.filter-none hidden { "No service matches." }
                }
                @if !d.operators.is_empty() {
                    label { "Operator"
                        select name="operator" {
                            option value="" { "Any operator" }
                            @for o in d.operators {
                                option value=(o.code) selected[d.operator == Some(o.code.as_str())] { (o.name) }
                            }
                        }
                    }
                }
                label { "Maximum price (optional)" input type="text" name="max_price" inputmode="decimal" placeholder="e.g. 1.00" value=(d.kept.or("max_price", "")); }
                button type="submit" disabled[!d.verified || !in_stock] { "Order" }
                @if !d.verified { p.muted { "Confirm your e-mail address to order." } }
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

/// "m:ss".
fn clock_left(secs: i64) -> String {
    let s = secs.max(0);
    format!("{}:{:02}", s / 60, s % 60)
}

pub fn order_card(o: &OrderCard, token: &str, cur: &Cur, now: i64) -> Markup {
    let a = &o.a;
    let code = o.messages.iter().rev().find_map(|m| m.code.clone());
    html! {
        article.card.order data-id=(a.id) data-status=(a.status.as_str()) data-code=[code.as_deref()] {
            div.order-head {
                span.phone { "+" (a.phone) }
                button.link type="button" data-copy=(format!("+{}", a.phone)) { "Copy" }
                span.muted { (o.service_name) " · " (o.country_name) " · " (cur.fmt(a.price_minor)) }
            }
            p.status { span.state { (status_label(a.status)) }
                @if a.status.is_live() {
                    " · " span.countdown data-expires=(a.expires_at) data-now=(now) { (clock_left(a.expires_at - now)) " left" }
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
                        (action(a.id, "complete", "Complete", token, "", None))
                        @if a.status == Status::Received { (action(a.id, "retry", "Another SMS", token, "secondary", None)) }
                    } @else {
                        @let wait = (now < o.cancel_at).then_some((o.cancel_at, now));
                        (action(a.id, "cancel", "Cancel", token, "secondary", wait))
                        (action(a.id, "used", "Number already used", token, "secondary", wait))
                    }
                }
            }
        }
    }
}

/// An order's action button; `wait` = (opens at, now) keeps it disabled with a countdown
/// until then (the script enables it when the time comes).
fn action(
    id: i64,
    what: &str,
    label: &str,
    token: &str,
    class: &str,
    wait: Option<(i64, i64)>,
) -> Markup {
    html! {
        form.inline method="post" action=(format!("/orders/{id}/{what}")) {
            (csrf(token))
            @if let Some((at, now)) = wait {
                button class=(class) type="submit" disabled data-opens-at=(at) data-now=(now) data-label=(label) {
                    (label) " in " (clock_left(at - now))
                }
            } @else {
                button class=(class) type="submit" { (label) }
            }
        }
    }
}

/// The dashboard's next step for an account without money.
fn first_steps(d: &Dashboard<'_>) -> Markup {
    html! {
        @if d.balance_minor <= 0 {
            section.card.notice #next-step {
                h2 { "Next step: add money" }
                p { "Your balance is " (d.cur.fmt(d.balance_minor)) ". An order is paid from it and refunded when no code arrives." }
                p.actions {
                    a.button href="/wallet#topup" { "Top up" }
                    a.button.secondary href="/wallet#redeem" { "Redeem a voucher" }
                }
            }
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
            (first_steps(d))
            (order_form(d, token))
            section #live data-live-count=(d.live.len()) {
                div.row-head {
                    h2 { "Active orders" }
                    span.notify-opt-in { button.link #browser-notify type="button" hidden { "Allow browser notifications" } span.muted #browser-notify-state {} }
                }
                p.muted.none-live hidden[!d.live.is_empty()] { "No active orders." }
                div #live-orders {
                    @for o in &d.live {
                        (order_card(o, token, &d.cur, d.now))
                    }
                }
            }
            p { a href="/orders" { "Order history" } " · " a href="/rentals" { "Rentals" } " · " a href="/keys" { "API keys" } " · " a href="/prices" { "Price list" } }
        },
    )
}

/// One order as a row of the history table.
pub struct HistoryRow {
    pub a: Activation,
    pub code: Option<String>,
    pub country_name: String,
    pub service_name: String,
}

/// The history page: rows, the filter (with the choices it offers) and paging.
pub struct History<'a> {
    pub rows: &'a [HistoryRow],
    pub filter: &'a HistoryFilter,
    pub countries: &'a [Country],
    pub services: &'a [Service],
    /// The filter as a query string (`status=…&service=…`), empty without one.
    pub query: String,
    pub not_first: bool,
    /// The `before=` of the next page.
    pub older: Option<i64>,
    /// Where each CSV file starts (`before=`, `None` for the newest): one unless the history
    /// is longer than a file.
    pub csv_files: Vec<Option<i64>>,
    /// More files than listed (the page links to the whole list).
    pub more_files: bool,
}

/// Orders per CSV file: the page of `/orders.csv`, whose `Link` header names the next file.
pub const CSV_PAGE: i64 = 5000;

/// "5,000".
fn thousands(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

pub const HISTORY_STATUSES: [(&str, &str); 7] = [
    ("", "Any status"),
    ("waiting", "Waiting for SMS"),
    ("received", "Code received"),
    ("retry", "Waiting for another SMS"),
    ("completed", "Completed"),
    ("canceled", "Canceled"),
    ("expired", "Expired"),
];

/// The order history, newest first, filtered; a table that scrolls in its own box.
fn history(h: &History<'_>, cur: &Cur) -> Markup {
    let join = |extra: String| -> String {
        match (h.query.is_empty(), extra.is_empty()) {
            (true, _) => extra,
            (false, true) => h.query.clone(),
            (false, false) => format!("{}&{extra}", h.query),
        }
    };
    let status = h.filter.status.map(|s| s.as_str()).unwrap_or("");
    let csv = {
        let q = join(String::new());
        if q.is_empty() {
            "/orders.csv".to_string()
        } else {
            format!("/orders.csv?{q}")
        }
    };
    html! {
        div.row-head {
            h1 { "Order history" }
            a.button.secondary #csv href=(csv) download { "Export CSV" }
        }
        form.filters method="get" action="/orders" {
            label { "Status"
                select name="status" {
                    @for (v, l) in HISTORY_STATUSES { option value=(v) selected[v == status] { (l) } }
                }
            }
            label { "Service"
                select name="service" {
                    option value="" { "Any service" }
                    @for s in h.services { option value=(s.code) selected[h.filter.service.as_deref() == Some(s.code.as_str())] { (s.name) } }
                }
            }
            label { "Country"
                select name="country" {
                    option value="" { "Any country" }
                    @for c in h.countries { option value=(c.id) selected[h.filter.country == Some(c.id)] { (c.name) } }
                }
            }
            div.filter-buttons {
                button type="submit" { "Filter" }
                @if !h.query.is_empty() { " " a href="/orders" { "Clear" } }
            }
        }
        @if h.rows.is_empty() {
            p.muted #no-orders { @if h.query.is_empty() { "No orders yet." } @else { "No orders match." } }
        } @else {
            div.scroll {
                table #history {
                    thead { tr { th { "When" } th { "Service" } th { "Country" } th { "Number" } th { "Code" } th { "Status" } th { "Price" } } }
                    tbody {
                        @for r in h.rows {
                            tr data-id=(r.a.id) data-status=(r.a.status.as_str()) {
                                td { (time(r.a.created_at)) }
                                td { (r.service_name) }
                                td { (r.country_name) }
                                td.nowrap { "+" (r.a.phone) }
                                td { @if let Some(c) = &r.code { code { (c) } } @else { "—" } }
                                td { (status_label(r.a.status)) }
                                td.nowrap { (cur.fmt(r.a.price_minor)) }
                            }
                        }
                    }
                }
            }
        }
        @if h.csv_files.len() > 1 || h.more_files {
            p #csv-files {
                "A CSV file holds " (thousands(CSV_PAGE)) " orders: "
                @for (i, start) in h.csv_files.iter().enumerate() {
                    @if i > 0 { " · " }
                    @let href = match start {
                        None => csv.clone(),
                        Some(id) => format!("/orders.csv?{}", join(format!("before={id}"))),
                    };
                    a.csv-file href=(href) download { @if i == 0 { "newest " (thousands(CSV_PAGE)) } @else { "next " (thousands(CSV_PAGE)) } }
                }
                @if h.more_files {
                    " · " a #all-files href=(format!("/orders?{}#csv-files", join("files=all".into()))) { "all files" }
                }
            }
        }
        nav.pager {
            @if h.not_first { a href=(if h.query.is_empty() { "/orders".to_string() } else { format!("/orders?{}", h.query) }) { "Newest" } }
            @if let Some(id) = h.older { a #older href=(format!("/orders?{}", join(format!("before={id}")))) { "Older" } }
        }
    }
}

/// The page around [`history`].
pub fn history_page(nav: &Nav, h: &History<'_>, cur: &Cur) -> Markup {
    page("Order history", nav, history(h, cur))
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
            section.card #redeem {
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
                @if entries.is_empty() { p.muted { "None yet." } } @else { div.scroll {
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
                } }
            }
        },
    )
}

pub struct RentalCard {
    pub r: Rental,
    /// The newest messages (at most a page's worth), oldest first.
    pub messages: Vec<Message>,
    /// How many messages the rental has in all.
    pub message_count: usize,
    pub country_name: String,
    pub service_name: String,
}

/// One service as the rental form lists it for the chosen country.
pub struct RentRow {
    pub code: String,
    pub name: String,
    pub hour_minor: i64,
    pub stock: i64,
}

/// Rental lengths the form offers, in hours, with their labels.
pub const RENT_DURATIONS: [(i64, &str); 7] = [
    (4, "4 hours"),
    (12, "12 hours"),
    (24, "1 day"),
    (72, "3 days"),
    (168, "1 week"),
    (336, "2 weeks"),
    (672, "4 weeks"),
];

pub struct RentalsPage<'a> {
    pub cur: Cur,
    pub countries: &'a [Country],
    pub country: i64,
    pub rows: Vec<RentRow>,
    pub cards: &'a [RentalCard],
    pub kept: &'a Kept,
}

pub fn rental_card(c: &RentalCard, token: &str, cur: &Cur) -> Markup {
    html! {
        article.card.rental data-id=(c.r.id) data-status=(c.r.status.as_str()) data-messages=(c.message_count) {
            div.order-head {
                span.phone { "+" (c.r.phone) }
                button.link type="button" data-copy=(format!("+{}", c.r.phone)) { "Copy" }
                span.muted { (c.service_name) " · " (c.country_name) }
            }
            p.muted { (c.r.status.as_str()) " · paid " (cur.fmt(c.r.paid_minor)) " · " (cur.fmt(c.r.hour_minor)) " per hour · until " (time(c.r.expires_at)) }
            div.rental-sms {
                @if c.message_count > c.messages.len() {
                    p.muted.earlier { "The newest " (c.messages.len()) " of " (c.message_count) " messages." }
                }
                @if c.messages.is_empty() && c.r.status == RentalStatus::Active {
                    p.muted.code-wait { "Every SMS to this number appears here as it arrives." }
                }
                @for m in &c.messages {
                    p { strong { (m.sender) } " " (time(m.received_at)) br; (m.text)
                        @if let Some(code) = &m.code { " " button.link type="button" data-copy=(code) { "Copy " (code) } } }
                }
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
}

pub fn rentals(nav: &Nav, token: &str, p: &RentalsPage<'_>, f: &Option<Flash>) -> Markup {
    let cur = &p.cur;
    let in_stock = p.rows.iter().any(|r| r.stock > 0);
    let kept_hours = p.kept.get("hours").unwrap_or("24");
    page(
        "Rentals",
        nav,
        html! {
            h1 { "Rentals" }
            (flash(f))
            section.card #rent {
                h2 { "Rent a number" }
                p.muted { "Every SMS to the number reaches you for the whole rental. Cancel within 20 minutes for a full refund if no SMS arrived." }
                (country_picker(p.countries, p.country, "/rentals"))
                @if !in_stock {
                    p.notice #no-stock { "Nothing is in stock for rent in this country now." }
                }
                form #rent-form method="post" action="/rentals" {
                    (csrf(token))
                    input type="hidden" name="country" value=(p.country);
                    fieldset.services {
                        legend { "Service" }
                        (filter_box("#rent-list", "Type a service, e.g. Telegram", "Search services"))
                        div.pick-list #rent-list {
                            @for r in &p.rows {
                                label.pick-row data-search=(format!("{} {}", r.name.to_lowercase(), r.code)) data-hour=(r.hour_minor) {
                                    input type="radio" name="service" value=(r.code) required disabled[r.stock <= 0] checked[p.kept.get("service") == Some(r.code.as_str()) && r.stock > 0];
                                    span.name { (r.name) }
                                    span.price { (cur.fmt(r.hour_minor)) " / hour" }
                                    span.stock { @if r.stock > 0 { (r.stock) " in stock" } @else { "out of stock" } }
                                    span.per-day { (cur.fmt(r.hour_minor * 24)) " / day" }
                                }
                            }
                        }
                        p.muted.filter-none hidden { "No service matches." }
                    }
                    label { "Duration"
                        select name="hours" {
                            @for (h, l) in RENT_DURATIONS {
                                option value=(h) selected[kept_hours == h.to_string()] { (l) }
                            }
                        }
                    }
                    p #rent-total data-currency=(cur.code) data-digits=(cur.digits) { "Price: the hourly price × the hours; you pay it when the number is rented." }
                    label.check { input type="checkbox" name="auto_renew" value="1" checked[p.kept.get("auto_renew").is_some()]; " Renew automatically while my balance lasts" }
                    button type="submit" disabled[!in_stock] { "Rent" }
                }
            }
            div #live-rentals {
                @for c in p.cards { (rental_card(c, token, cur)) }
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
            @if !keys.is_empty() { div.scroll {
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
            } }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The offers by operator the order form's script reads: valid JSON, the prices
    /// formatted in the install's currency, an operator code with quotes escaped.
    #[test]
    fn operator_offers_are_the_json_the_script_reads() {
        let offer = |operator: &str, price_minor, stock| OperatorOffer {
            operator: operator.into(),
            price_minor,
            stock,
        };
        let row = ServiceRow {
            code: "tg".into(),
            name: "Telegram".into(),
            price_minor: 60,
            stock: 7,
            any_operator: (60, 7),
            by_operator: vec![
                offer("axis", 60, 3),
                offer("x\"l\\", 75, 0),
                offer("three", 60, 4),
            ],
            rate: Rate::default(),
            recent: false,
        };
        let cur = Cur {
            code: "USD".into(),
            digits: 2,
        };
        let text = operator_offers(&row, &cur);
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "": ["0.60 USD", 7],
                "axis": ["0.60 USD", 3],
                "x\"l\\": ["0.75 USD", 0],
                "three": ["0.60 USD", 4],
            })
        );
    }
}
