//! The operator's pages: the health overview, devices (create, SIMs, revoke), the orders on
//! its numbers, its earnings and its payout requests.

use std::collections::HashMap;

use maud::{html, Markup};

use crate::domain::market::catalogue::Country;
use crate::domain::market::earnings::{Row, Sale};
use crate::domain::supply::devices::{Device, Kind, Sim};
use crate::domain::supply::numbers::Owned;
use crate::domain::supply::payouts::Totals;
use crate::domain::supply::payouts::{Payout, State};
use crate::views::market::orders::Cur;
use crate::views::{csrf, flash, opt_time, page, time, Flash, Kept, Nav};

/// Country id → name, for tables.
pub type CountryNames = HashMap<i64, String>;

fn country(names: &CountryNames, id: i64) -> String {
    names.get(&id).cloned().unwrap_or_else(|| id.to_string())
}

pub fn tabs() -> Markup {
    html! {
        nav.tabs {
            a href="/operator" { "Overview" }
            a href="/operator/devices" { "Devices" }
            a href="/operator/activations" { "Activations" }
            a href="/operator/earnings" { "Earnings" }
            a href="/operator/payouts" { "Payouts" }
        }
    }
}

/// A device with what its health line needs.
pub struct DeviceRow {
    pub device: Device,
    pub sims: usize,
    pub messages_today: i64,
}

fn online(d: &Device) -> Markup {
    html! {
        @if d.first_seen_at.is_none() && d.revoked_at.is_none() {
            span.warn title="The gateway has not called yet: check its URL and secret" { "never seen" }
        } @else if d.online { span.ok { "online" } } @else { span.err { "offline" } }
    }
}

/// "last seen" as a time, or "never" before the first contact.
fn last_seen(d: &Device) -> Markup {
    match d.first_seen_at {
        Some(_) => time(d.last_seen_at),
        None => html! { "never" },
    }
}

fn devices_table(rows: &[DeviceRow]) -> Markup {
    html! {
        div.scroll { table #devices {
            thead { tr { th { "Device" } th { "Gateway" } th { "State" } th { "Last seen" } th { "Last message" } th { "Today" } th { "SIMs" } } }
            tbody {
                @for r in rows {
                    tr {
                        td { a href=(format!("/operator/devices/{}", r.device.id)) { (r.device.name) } }
                        td { (r.device.kind.label()) }
                        td { (online(&r.device)) }
                        td { (last_seen(&r.device)) }
                        td { (opt_time(r.device.last_message_at)) }
                        td { (r.messages_today) }
                        td { (r.sims) }
                    }
                }
            }
        } }
    }
}

pub fn overview(
    nav: &Nav,
    cur: &Cur,
    totals: &Totals,
    share: u32,
    rows: &[DeviceRow],
    owned: usize,
) -> Markup {
    page(
        "Operator",
        nav,
        html! {
            h1 { "Operator" }
            (tabs())
            section.grid3 #totals {
                div.card.stat { span.big #earned-month { (cur.fmt(totals.earned_since)) } " earned this month" }
                div.card.stat { span.big #balance { (cur.fmt(totals.balance)) } " balance" }
                div.card.stat { span.big #pending { (cur.fmt(totals.pending_payouts)) } " in payout requests" }
            }
            p.muted { "You earn " (share) " % of every completed activation and every rental on your numbers, credited to your balance when the order ends." }
            h2 { "Devices" }
            @if rows.is_empty() {
                p.muted { "No devices yet. " a href="/operator/devices" { "Add your first phone or modem." } }
            } @else {
                (devices_table(rows))
            }
            @if owned > 0 {
                p { (owned) " more number(s) added for you by the administrator; see " a href="/operator/devices" { "Devices" } "." }
            }
        },
    )
}

/// A device just created: its credentials, shown once.
pub struct NewDevice<'a> {
    pub device: &'a Device,
    pub secret: &'a str,
    pub webhook_url: &'a str,
}

fn setup_hint(kind: Kind, url: &str, secret: &str) -> Markup {
    html! {
        @match kind {
            Kind::Capcom6 => {
                p { "In SMS Gateway for Android set " em { "Settings → Webhooks → Signing Key" } " to the secret, then register the webhook with the app's API (the user name and password are shown in the app):" }
                pre { "curl -u USER:PASS -H 'Content-Type: application/json' \\\n  -d '{\"url\":\"" (url) "\",\"event\":\"sms:received\"}' \\\n  https://PHONE-IP:8080/webhooks" }
                p { "Register " code { "app:started" } " the same way to let otpbox learn which number sits in which SIM slot." }
            }
            Kind::Httpsms => {
                p { "In httpSMS add a webhook with the URL above, the event " code { "message.phone.received" } " and the secret as its signing key." }
            }
            Kind::Textbee => {
                p { "In textbee add a webhook with the URL above as delivery URL, the event " code { "MESSAGE_RECEIVED" } " and the secret as signing secret. textbee does not say which SIM got a message: give this device one SIM, or one otpbox device per SIM." }
            }
            Kind::Goip => {
                @let line = url.rsplit('/').next().unwrap_or("");
                p { "GoIP gateways send SMS over UDP. In the GoIP's " em { "Configurations → SMS" } " set " em { "SMS Server" } " to this server's address and the UDP port of " code { "goip_listen" } " (commonly 44444), " em { "SMS Client ID" } " of each line to " code { (line) } " followed by " code { "-" } " and the line number (line 1: " code { (line) "-1" } "), and the password to the secret. Register each line's SIM in the slot of its line number." }
            }
            Kind::Dinstar => {
                p { "In the Dinstar's " em { "SMS → API → Push" } " set the push URL to the URL above followed by " code { "?token=" (secret) } " (or use HTTP Basic authentication with the secret as password). Ports count from 0: the SIM in port 0 is slot 1." }
            }
            Kind::Ejoin => {
                p { "Set the gateway's SMS push URL (" code { "sms_url" } ") to the URL above followed by " code { "?token=" (secret) } ", and subscribe the status push the same way to see each SIM's signal. Register each SIM by its port label, e.g. " code { "2B" } " or " code { "1.01" } "." }
            }
            Kind::Generic => {
                p { "POST each received SMS as JSON to the URL above with " code { "Authorization: Bearer " (secret) } ". The gammu-smsd and smstools3 bridge scripts in " code { "packaging/" } " do this for a GSM modem." }
            }
        }
        p.muted { "Step by step: README → “Connecting a phone or modem”." }
    }
}

/// The devices page.
pub struct DevicesPage<'a> {
    pub rows: &'a [DeviceRow],
    /// Numbers the administrator added for the operator without a device.
    pub owned: &'a [Owned],
    pub names: &'a CountryNames,
    /// A device just created, shown once.
    pub new: Option<NewDevice<'a>>,
}

/// `kept` refills the add form after it failed.
pub fn devices(
    nav: &Nav,
    token: &str,
    p: &DevicesPage<'_>,
    f: &Option<Flash>,
    kept: &Kept,
) -> Markup {
    let (rows, owned, names, new) = (p.rows, p.owned, p.names, &p.new);
    page(
        "Devices",
        nav,
        html! {
            h1 { "Devices" }
            (tabs())
            (flash(f))
            @if let Some(n) = new {
                div.notice #new-device {
                    p { strong { (n.device.name) } " is registered. Copy the secret now: it is shown only once." }
                    dl {
                        dt { "Device id" } dd { code.key #device-id { (n.device.public_id) } }
                        dt { "Secret" } dd { code.key #device-secret { (n.secret) } " " button.link type="button" data-copy=(n.secret) { "Copy" } }
                        dt { "Webhook URL" } dd { code.key #webhook-url { (n.webhook_url) } " " button.link type="button" data-copy=(n.webhook_url) { "Copy" } }
                    }
                    (setup_hint(n.device.kind, n.webhook_url, n.secret))
                    p { a href=(format!("/operator/devices/{}", n.device.id)) { "Add its SIMs →" } }
                }
            }
            section.card {
                h2 { "Add a device" }
                p.muted { "A device is a phone or modem running gateway software that forwards the SMS its SIMs receive to otpbox." }
                form method="post" action="/operator/devices" {
                    (csrf(token))
                    label { "Name" input type="text" name="name" maxlength="60" placeholder="e.g. Pixel in the drawer" value=(kept.or("name", "")); }
                    label { "Gateway software"
                        select name="kind" {
                            @for k in Kind::ALL { option value=(k.as_str()) selected[kept.get("kind") == Some(k.as_str())] { (k.label()) } }
                        }
                    }
                    button type="submit" { "Add device" }
                }
            }
            @if rows.is_empty() {
                p.muted { "No devices yet." }
            } @else {
                (devices_table(rows))
            }
            @if !owned.is_empty() {
                section.card #owned {
                    h2 { "Numbers without a device" }
                    p.muted { "Added for you by the administrator. Their SMS may come from any of your devices." }
                    table {
                        thead { tr { th { "Number" } th { "Country" } th { "Operator" } th { "State" } th { "On sale" } } }
                        tbody {
                            @for o in owned {
                                tr { td { "+" (o.phone) } td { (country(names, o.country_id)) } td { (o.operator) } td { (o.state) } td { @if o.on_sale { "yes" } @else { "no" } } }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub struct DevicePage<'a> {
    pub device: &'a Device,
    pub webhook_url: &'a str,
    pub messages_today: i64,
    pub sims: &'a [Sim],
    pub countries: &'a [Country],
    /// What the gateway last reported per SIM, by number id.
    pub statuses: &'a std::collections::HashMap<i64, crate::domain::supply::devices::SimState>,
}

/// `kept` refills the SIM form after it failed.
pub fn device(
    nav: &Nav,
    token: &str,
    p: &DevicePage<'_>,
    f: &Option<Flash>,
    kept: &Kept,
) -> Markup {
    let d = p.device;
    let names: CountryNames = p.countries.iter().map(|c| (c.id, c.name.clone())).collect();
    let next_slot = (1..=16)
        .find(|s| !p.sims.iter().any(|x| x.slot == Some(*s)))
        .unwrap_or(1)
        .to_string();
    page(
        &d.name,
        nav,
        html! {
            p { a href="/operator/devices" { "← Devices" } }
            h1 { (d.name) }
            (flash(f))
            section.card {
                dl {
                    dt { "Gateway" } dd { (d.kind.label()) }
                    dt { "State" } dd { (online(d)) " · last seen " (last_seen(d)) }
                    dt { "Last message" } dd { (opt_time(d.last_message_at)) }
                    dt { "Messages today" } dd { (p.messages_today) }
                    dt { "Device id" } dd { code.key { (d.public_id) } }
                    dt { "Webhook URL" } dd { code.key { (p.webhook_url) } }
                    dt { "Added" } dd { (time(d.created_at)) }
                }
                p.muted { "The secret was shown once, when the device was added. Lost it? Revoke this device and add it again." }
            }
            h2 { "SIMs" }
            @if p.sims.is_empty() {
                p.muted { "No SIM yet: add the number of each SIM in the device. A SIM is on sale as soon as it is added, while the device is online." }
            } @else {
                div.scroll {
                table #sims {
                    thead { tr { th { "Slot" } th { "Number" } th { "Country" } th { "Operator" } th { "Network" } th { "Signal" } th { "State" } th { "On sale" } th {} } }
                    tbody {
                        @for s in p.sims {
                            tr {
                                td { (s.slot.map(|x| x.to_string()).unwrap_or_default()) }
                                td { "+" (s.phone) }
                                td { (country(&names, s.country_id)) }
                                td { (s.operator) }
                                @match p.statuses.get(&s.number_id) {
                                    Some(st) => {
                                        td title=(format!("reported {}", crate::clock::format_datetime(st.reported_at))) { (st.network) @if !st.state.is_empty() { " (" (st.state) ")" } }
                                        td { @match st.signal { Some(g) => { (g) "/31" }, None => "—" } }
                                    }
                                    None => { td { "—" } td { "—" } }
                                }
                                td { (s.state) }
                                td { @if s.on_sale { "yes" } @else { "no" } }
                                td {
                                    form.inline method="post" action=(format!("/operator/devices/{}/sims/{}/remove", d.id, s.number_id)) {
                                        (csrf(token)) button.link type="submit" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
                }
            }
            section.card #add-sim {
                h2 { "Add a SIM" }
                form method="post" action=(format!("/operator/devices/{}/sims", d.id)) {
                    (csrf(token))
                    label { "Slot (or port label such as 2B)" input type="text" name="slot" size="6" value=(kept.or("slot", &next_slot)) required; }
                    label { "Phone number (with country code)" input type="text" name="phone" inputmode="tel" required placeholder="+44 7700 900123" value=(kept.or("phone", "")); }
                    label { "Country"
                        select name="country" required {
                            @for c in p.countries { option value=(c.id) selected[kept.get("country") == Some(c.id.to_string().as_str())] { (c.name) " (+" (c.prefix) ")" } }
                        }
                    }
                    label { "Mobile operator (optional)" input type="text" name="operator" maxlength="40" placeholder="e.g. telkomsel" value=(kept.or("operator", "")); }
                    button type="submit" { "Add SIM" }
                }
            }
            section.card #revoke {
                h2 { "Revoke this device" }
                p { "Its webhook URL stops working at once and its SIMs leave the stock. Orders running on them end normally." }
                form method="post" action=(format!("/operator/devices/{}/revoke", d.id)) {
                    (csrf(token))
                    label.check { input type="checkbox" name="confirm" value="1" required; " Yes, revoke " (d.name) }
                    button.danger type="submit" { "Revoke device" }
                }
            }
        },
    )
}

/// Keyset paging of a list newest first: a link back to the newest page, and one to the
/// next older page (`{base}?{param}={older}`).
pub struct Pager {
    pub base: &'static str,
    pub param: &'static str,
    pub not_first: bool,
    pub older: Option<String>,
}

fn pager(p: &Pager) -> Markup {
    html! {
        p.pager {
            @if p.not_first { a rel="first" href=(p.base) { "← Newest" } " " }
            @if let Some(o) = &p.older { a rel="next" href=(format!("{}?{}={}", p.base, p.param, o)) { "Older →" } }
        }
    }
}

pub fn activations(
    nav: &Nav,
    cur: &Cur,
    sales: &[Sale],
    names: &CountryNames,
    pager_of: &Pager,
) -> Markup {
    page(
        "Activations on your numbers",
        nav,
        html! {
            h1 { "Activations on your numbers" }
            (tabs())
            p.muted { "Orders placed on your numbers. Who ordered and what the messages said stay private to the customer." }
            @if sales.is_empty() {
                p.muted { "No orders on your numbers yet." }
            } @else {
                table #sales {
                    thead { tr { th { "When" } th { "Number" } th { "Country" } th { "Service" } th { "Status" } th { "Price" } th { "You earned" } } }
                    tbody {
                        @for s in sales {
                            tr {
                                td { (time(s.created_at)) @if s.kind == "rental" { br; span.muted { "rental" } } }
                                td { "+" (s.phone) }
                                td { (country(names, s.country_id)) }
                                td { code { (s.service) } }
                                td { (s.status) }
                                td { (cur.fmt(s.price_minor)) }
                                td { @if let Some(e) = s.earned_minor { (cur.fmt(e)) } @else { "—" } }
                            }
                        }
                    }
                }
            }
            (pager(pager_of))
        },
    )
}

pub fn earnings(nav: &Nav, cur: &Cur, totals: &Totals, rows: &[Row], pager_of: &Pager) -> Markup {
    page(
        "Earnings",
        nav,
        html! {
            h1 { "Earnings" }
            (tabs())
            section.grid3 {
                div.card.stat { span.big { (cur.fmt(totals.earned_since)) } " earned this month" }
                div.card.stat { span.big #earned-total { (cur.fmt(totals.earned_total)) } " earned in all" }
                div.card.stat { span.big #paid-out { (cur.fmt(totals.paid_out)) } " paid out" }
            }
            @if rows.is_empty() {
                p.muted { "Nothing earned yet." }
            } @else {
                table #earnings {
                    thead { tr { th { "When" } th { "What" } th { "Amount" } th { "Balance after" } } }
                    tbody {
                        @for r in rows {
                            tr {
                                td { (time(r.created_at)) }
                                td { (r.kind) @if let Some(id) = r.ref_id { " · " (r.ref_type) " #" (id) } @if r.kind == "earning" && !r.note.is_empty() { " · " (r.note) } }
                                td { (cur.fmt(r.amount_minor)) }
                                td { (cur.fmt(r.balance_after)) }
                            }
                        }
                    }
                }
                p.muted { "Balance after: your wallet, which your own orders also use." }
            }
            (pager(pager_of))
        },
    )
}

fn payout_state(s: State) -> Markup {
    html! {
        @match s {
            State::Requested => span { "requested" },
            State::Paid => span.ok { "paid" },
            State::Rejected => span.err { "rejected" },
            State::Withdrawn => span.muted { "withdrawn" },
        }
    }
}

/// What the operator has and may ask for.
pub struct Balance {
    pub totals: Totals,
    /// The balance minus the payouts already requested.
    pub available: i64,
}

/// `kept` refills the request form after it failed.
pub fn payouts(
    nav: &Nav,
    token: &str,
    cur: &Cur,
    balance: &Balance,
    list: &[Payout],
    f: &Option<Flash>,
    kept: &Kept,
) -> Markup {
    let (totals, available) = (&balance.totals, balance.available);
    page(
        "Payouts",
        nav,
        html! {
            h1 { "Payouts" }
            (tabs())
            (flash(f))
            section.card {
                p { "Balance " strong { (cur.fmt(totals.balance)) } " · requested " (cur.fmt(totals.pending_payouts)) " · you can ask for " strong #available { (cur.fmt(available)) } }
                form method="post" action="/operator/payouts" {
                    (csrf(token))
                    label { "Amount (" (cur.code) ")" input type="text" name="amount" inputmode="decimal" required placeholder="e.g. 25.00" value=(kept.or("amount", "")); }
                    label { "Pay to" input type="text" name="destination" maxlength="200" required placeholder="IBAN, wallet address, …" value=(kept.or("destination", "")); }
                    button type="submit" { "Request payout" }
                }
                p.muted { "The administrator pays you outside otpbox and then marks the request paid; the amount leaves your balance at that moment." }
            }
            @if !list.is_empty() {
                table #payouts {
                    thead { tr { th { "Requested" } th { "Amount" } th { "Pay to" } th { "State" } th {} } }
                    tbody {
                        @for p in list {
                            tr {
                                td { (time(p.created_at)) }
                                td { (cur.fmt(p.amount_minor)) }
                                td { (p.destination) }
                                td { (payout_state(p.state)) @if let Some(t) = p.decided_at { " " (time(t)) } @if !p.note.is_empty() { br; span.muted { (p.note) } } }
                                td {
                                    @if p.state == State::Requested {
                                        form.inline method="post" action=(format!("/operator/payouts/{}/withdraw", p.id)) {
                                            (csrf(token)) button.link type="submit" { "Withdraw" }
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
