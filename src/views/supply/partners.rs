//! Admin pages of the partner hubs: the list with the add form, and one hub's settings,
//! naming, orders and pushes. The key is never rendered (its field is always empty) and a
//! push's text never is.

use maud::{html, Markup};

use crate::domain::market::partners::{
    micro_text, names_text, Health, Name, Order, Partner, PushRow, CURRENCIES, HOLD_MAX, MAX_OFFERS,
};
use crate::views::market::orders::Cur;
use crate::views::trust::admin::tabs;
use crate::views::{csrf, flash, opt_time, page, time, Flash, Kept, Nav};

pub struct Row {
    pub partner: Partner,
    pub health: Health,
}

pub struct Detail {
    pub partner: Partner,
    pub health: Health,
    pub names: Vec<Name>,
    pub orders: Vec<Order>,
    pub pushes: Vec<PushRow>,
    pub page: i64,
}

fn endpoint(base_url: &str, id: i64) -> String {
    format!("{base_url}/partner/{id}")
}

fn push_state(p: &Partner) -> Markup {
    html! {
        @if !p.enabled {
            span.state.off { "disabled" }
        } @else if p.push_failures > 0 {
            span.state.warn { "pushes failing (" (p.push_failures) " in a row)" }
        } @else {
            span.state.ok { "ok" }
        }
    }
}

fn currency_select(selected: &str) -> Markup {
    html! {
        select name="currency" {
            @for (n, code) in CURRENCIES {
                option value=(n) selected[selected == n.to_string() || selected.eq_ignore_ascii_case(code)] { (code) " (" (n) ")" }
            }
        }
    }
}

pub fn list(
    nav: &Nav,
    token: &str,
    cur: &Cur,
    base_url: &str,
    rows: &[Row],
    f: &Option<Flash>,
    kept: &Kept,
) -> Markup {
    page(
        "Partner hubs",
        nav,
        html! {
            h1 { "Partner hubs" }
            (tabs())
            (flash(f))
            p { "Hubs such as SMSHub, SMSBower or Grizzly sell your own SIMs' numbers to their customers beside yours (the agent protocol). The hub polls the agent URL; every SMS reaching a number it holds is pushed back to it. Only real SIMs are offered, never the simulator or numbers bought upstream. A sale is charged to the hub's account (its balance is what the hub owes) and the SIM's operator earns its share." }
            div.scroll {
                table #partners {
                    thead { tr {
                        th { "Hub" } th { "Agent URL" } th { "State" } th { "In progress" } th { "Pushes waiting" }
                        th { "Owes" } th { "Last call" } th { "Last push error" }
                    } }
                    tbody {
                        @for r in rows {
                            @let p = &r.partner;
                            tr {
                                td { a href=(format!("/admin/partners/{}", p.id)) { (p.name) } }
                                td { code { (endpoint(base_url, p.id)) } }
                                td { (push_state(p)) }
                                td { (r.health.held) }
                                td { (r.health.pushes_waiting) }
                                td { (cur.fmt(r.health.owed_minor)) }
                                td { (opt_time(p.last_call_at)) }
                                td.error { @if p.last_push_error.is_empty() { "—" } @else { (p.last_push_error) " " (opt_time(p.last_push_error_at)) } }
                            }
                        }
                        @if rows.is_empty() {
                            tr { td colspan="8" { "No partner hubs yet." } }
                        }
                    }
                }
            }
            section.card #add-partner {
                h2 { "Add a partner hub" }
                p { "The key is the one the hub gave you; it is kept sealed and never shown again." }
                form method="post" action="/admin/partners" autocomplete="off" {
                    (csrf(token))
                    label { "Name" input type="text" name="name" value=(kept.or("name", "")) required placeholder="SMSHub"; }
                    label { "Push URL (where SMS are sent)" input type="url" name="push_url" value=(kept.or("push_url", "")) required placeholder="https://agent.unerio.com/agent/api/sms"; }
                    label { "Key" input type="password" name="key" value="" required autocomplete="off"; }
                    label { "Hub currency" (currency_select(kept.or("currency", "643"))) }
                    label { "Rate (our minor units per one unit of the hub's currency, e.g. 1.1; empty when it is ours)" input type="text" name="rate" value=(kept.or("rate", "")) size="10"; }
                    label { "Price floor (the lowest sum accepted, in the hub's currency)" input type="text" name="floor" value=(kept.or("floor", "0")) size="8"; }
                    button type="submit" { "Add" }
                }
            }
        },
    )
}

pub fn detail(
    nav: &Nav,
    token: &str,
    cur: &Cur,
    base_url: &str,
    d: &Detail,
    f: &Option<Flash>,
    kept: &Kept,
) -> Markup {
    let p = &d.partner;
    let edited = kept.get("name").is_some();
    let typed = |name: &str, saved: String| kept.get(name).map_or(saved, str::to_string);
    let money = |micro: i64| format!("{} {}", micro_text(micro), p.currency_code());
    page(
        &p.name,
        nav,
        html! {
            h1 { "Partner hub " (p.name) }
            (tabs())
            (flash(f))
            p { a href="/admin/partners" { "← All partner hubs" } }
            section.grid3 {
                div.card.stat { "Agent URL: " code #endpoint { (endpoint(base_url, p.id)) } }
                div.card.stat { "State: " (push_state(p)) }
                div.card.stat { (d.health.held) " numbers held now" }
                div.card.stat { (d.health.pushes_waiting) " SMS waiting to be pushed" }
                div.card.stat { "Owes " (cur.fmt(d.health.owed_minor)) " (" a href=(format!("/admin/users/{}", p.account_id)) { "account" } ")" }
                div.card.stat { "Last call " (opt_time(p.last_call_at)) }
            }
            @if !p.last_push_error.is_empty() {
                p.flash.err #last-push-error { "Last push error " (opt_time(p.last_push_error_at)) ": " (p.last_push_error) }
            }
            p { "A number the hub holds is busy for your customers until the hub finishes the order (at most " (HOLD_MAX / 3600) " hours). A cancelled number may be offered to the hub again, up to " (MAX_OFFERS) " offers in all for one service. Record a settlement the hub paid as a credit to its account." }
            section.card #edit-partner {
                h2 { "Settings" }
                form method="post" action=(format!("/admin/partners/{}", p.id)) autocomplete="off" {
                    (csrf(token))
                    p { "Currency: " (p.currency_code()) " (" (p.currency) ")" }
                    input type="hidden" name="currency" value=(p.currency);
                    label { "Name" input type="text" name="name" value=(typed("name", p.name.clone())) required; }
                    label { "Push URL" input type="url" name="push_url" value=(typed("push_url", p.push_url.clone())) required; }
                    label { "Replace the key" input type="password" name="key" value="" autocomplete="off" placeholder="leave empty to keep the current key"; }
                    label { "Rate (our minor units per unit of its currency)" input type="text" name="rate" value=(typed("rate", micro_text(p.rate_micro))) size="10"; }
                    label { "Price floor" input type="text" name="floor" value=(typed("floor", micro_text(p.floor_micro))) size="8"; }
                    label.check { input type="checkbox" name="enabled" value="1" checked[if edited { kept.get("enabled").is_some() } else { p.enabled }]; " Enabled (numbers are offered to the hub)" }
                    button type="submit" { "Save" }
                }
            }
            section.card #partner-names {
                h2 { "Naming" }
                p { "How the hub names our countries, services and operators, one per line: " code { "country russia = ru" } ", " code { "service vk = vk" } ", " code { "operator mts = mts" } ". Without lines of a kind our own names are used (countries by their 5sim name, services by short code, operators in lower case); with them, only the named ones are offered." }
                form method="post" action=(format!("/admin/partners/{}/names", p.id)) {
                    (csrf(token))
                    textarea name="names" rows="8" cols="50" { (kept.or("names", &names_text(&d.names))) }
                    button type="submit" { "Save naming" }
                }
            }
            h2 { "Orders" }
            div.scroll {
                table #partner-orders {
                    thead { tr { th { "Id" } th { "When" } th { "Number" } th { "Service" } th { "Operator" } th { "Sum" } th { "State" } th { "Finished" } } }
                    tbody {
                        @for o in &d.orders {
                            tr {
                                td { (o.id) }
                                td { (time(o.created_at)) }
                                td { (o.phone) }
                                td { (o.service) }
                                td { (o.operator) }
                                td { (money(o.sum_micro)) }
                                td { (o.state) @if o.held { " (held)" } @if let Some(s) = o.late_status { " (later status " (s) " ignored)" } }
                                td { (opt_time(o.finished_at)) }
                            }
                        }
                        @if d.orders.is_empty() {
                            tr { td colspan="8" { "No orders." } }
                        }
                    }
                }
            }
            @if d.orders.len() as i64 == d.page {
                @if let Some(last) = d.orders.last() {
                    p { a href=(format!("/admin/partners/{}?before={}", p.id, last.id)) { "Older orders →" } }
                }
            }
            h2 { "Pushed SMS" }
            div.scroll {
                table #partner-pushes {
                    thead { tr { th { "smsId" } th { "When" } th { "Order" } th { "Number" } th { "State" } th { "Attempts" } th { "Last error" } th { "Delivered" } } }
                    tbody {
                        @for q in &d.pushes {
                            tr {
                                td { (q.id) }
                                td { (time(q.created_at)) }
                                td { (q.order_id) }
                                td { (q.phone) }
                                td { (q.state) }
                                td { (q.attempts) }
                                td.error { (q.last_error) }
                                td { (opt_time(q.delivered_at)) }
                            }
                        }
                        @if d.pushes.is_empty() {
                            tr { td colspan="8" { "No SMS pushed yet." } }
                        }
                    }
                }
            }
            @if d.pushes.len() as i64 == d.page {
                @if let Some(last) = d.pushes.last() {
                    p { a href=(format!("/admin/partners/{}?pushes_before={}", p.id, last.id)) { "Older pushes →" } }
                }
            }
        },
    )
}
