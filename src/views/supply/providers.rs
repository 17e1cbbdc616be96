//! Admin pages of the upstream providers: the list with their health, the add form, one
//! provider's settings and latest calls, and the routing table. A provider's key is never
//! rendered: its field is always empty.

use maud::{html, Markup};

use crate::clock::Timestamp;
use crate::domain::supply::providers::{markup_text, CallRow, Health, Kind, Provider};
use crate::domain::supply::routing::RouteRow;
use crate::views::market::orders::Cur;
use crate::views::trust::admin::tabs;
use crate::views::{csrf, flash, opt_time, page, time, Flash, Kept, Nav};

/// A provider with its health, as listed.
pub struct Row {
    pub provider: Provider,
    pub health: Health,
}

/// `ok`, `failing (N in a row)`, `paused until …` or `disabled`.
fn state(p: &Provider, now: Timestamp) -> Markup {
    html! {
        @if !p.enabled {
            span.state.off { "disabled" }
        } @else if let Some(t) = p.paused_until.filter(|t| *t > now) {
            span.state.err { "paused until " (time(t)) }
        } @else if p.failures > 0 {
            span.state.warn { "failing (" (p.failures) " in a row)" }
        } @else {
            span.state.ok { "ok" }
        }
    }
}

fn health_cells(h: &Health) -> Markup {
    html! {
        td { @if h.calls > 0 { (h.avg_ms) " ms" } @else { "—" } }
        td { @match h.success_percent() { Some(p) => { (p) "% of " (h.calls) }, None => "—" } }
    }
}

/// The typed value of `name`, or `default` when nothing (or nothing but blanks) was typed.
fn non_empty<'a>(kept: &'a Kept, name: &str, default: &'a str) -> &'a str {
    kept.get(name)
        .filter(|v| !v.trim().is_empty())
        .unwrap_or(default)
}

/// The list; `kept` refills the add form after it failed (never the key).
#[allow(clippy::too_many_arguments)] // a template of plain data
pub fn list(
    nav: &Nav,
    token: &str,
    cur: &Cur,
    rows: &[Row],
    routing: &[RouteRow],
    now: Timestamp,
    f: &Option<Flash>,
    kept: &Kept,
) -> Markup {
    page(
        "Providers",
        nav,
        html! {
            h1 { "Upstream providers" }
            (tabs())
            (flash(f))
            p { "Numbers bought from these providers are sold when our own stock cannot serve an order (or is above the customer's maximum price), at their cost plus the markup. Higher priority is tried first, then the cheaper." }
            div.scroll {
                table #providers {
                    thead { tr {
                        th { "Provider" } th { "Kind" } th { "Health" } th { "Latency" } th { "Success" }
                        th { "Last error" } th { "Balance" } th { "Offers" } th { "Markup" } th { "Priority" } th { "Last sync" }
                    } }
                    tbody {
                        @for r in rows {
                            @let p = &r.provider;
                            tr {
                                td { a href=(format!("/admin/providers/{}", p.id)) { (p.name) } }
                                td { (p.kind.as_str()) }
                                td { (state(p, now)) }
                                (health_cells(&r.health))
                                td.error { @if p.last_error.is_empty() { "—" } @else { (p.last_error) " " (opt_time(p.last_error_at)) } }
                                td { @match p.balance_minor { Some(b) => (cur.fmt(b)), None => "—" } }
                                td { (r.health.offers) " (" (r.health.stock) " numbers)" }
                                td { (markup_text(p.markup_bp)) }
                                td { (p.priority) }
                                td { (opt_time(p.synced_at)) }
                            }
                        }
                        @if rows.is_empty() {
                            tr { td colspan="11" { "No providers yet." } }
                        }
                    }
                }
            }
            section.card #add-provider {
                h2 { "Add a provider" }
                p { "Its prices, stock and balance are synced at once, then every five minutes. The key is kept sealed and is never shown again." }
                form method="post" action="/admin/providers" autocomplete="off" {
                    (csrf(token))
                    label { "Kind"
                        select name="kind" {
                            @for k in Kind::ALL {
                                option value=(k.as_str()) selected[kept.get("kind") == Some(k.as_str())] {
                                    @match k { Kind::SmsActivate => "SMS-Activate compatible (handler_api.php)", Kind::FiveSim => "5sim" }
                                }
                            }
                        }
                    }
                    label { "Name" input type="text" name="name" value=(kept.or("name", "")) placeholder="default: the URL's host"; }
                    label { "URL" input type="url" name="url" value=(kept.or("url", "")) required placeholder="https://api.example/stubs/handler_api.php or https://5sim.net/v1"; }
                    label { "API key" input type="password" name="key" value="" required autocomplete="off"; }
                    label { "Markup" input type="text" name="markup" value=(non_empty(kept, "markup", "20%")) size="6"; }
                    label { "Priority" input type="number" name="priority" value=(non_empty(kept, "priority", "0")) min="-1000" max="1000"; }
                    label { "Unit (our minor units per one unit of the provider's currency)" input type="number" name="unit" value=(non_empty(kept, "unit", "100")) min="1"; }
                    button type="submit" { "Add and sync" }
                }
            }
            section #routing {
                h2 { "Routing: success by source (last 7 days)" }
                p { "Orders that got a number and ended, by where the number came from; completed means a code arrived and the order was finished." }
                div.scroll {
                    table #routing-table {
                        thead { tr { th { "Country" } th { "Service" } th { "Source" } th { "Completed" } th { "Ended" } th { "Success" } } }
                        tbody {
                            @for r in routing {
                                tr { td { (r.country) } td { (r.service) } td { (r.source) } td { (r.completed) } td { (r.ended) } td { (r.success_percent()) "%" } }
                            }
                            @if routing.is_empty() {
                                tr { td colspan="6" { "No ended orders yet." } }
                            }
                        }
                    }
                }
            }
        },
    )
}

#[allow(clippy::too_many_arguments)] // a template of plain data
pub fn detail(
    nav: &Nav,
    token: &str,
    cur: &Cur,
    p: &Provider,
    h: &Health,
    calls: &[CallRow],
    now: Timestamp,
    f: &Option<Flash>,
    kept: &Kept,
) -> Markup {
    // After a refused edit the settings show what was typed (never the key).
    let edited = kept.get("name").is_some();
    let typed = |name: &str, saved: String| kept.get(name).map_or(saved, str::to_string);
    page(
        &p.name,
        nav,
        html! {
            h1 { "Provider " (p.name) }
            (tabs())
            (flash(f))
            p { a href="/admin/providers" { "← All providers" } }
            section.grid3 {
                div.card.stat { "Health: " (state(p, now)) }
                div.card.stat { "Balance: " @match p.balance_minor { Some(b) => (cur.fmt(b)), None => "unknown" } }
                div.card.stat { (h.offers) " offers, " (h.stock) " numbers; last sync " (opt_time(p.synced_at)) }
                div.card.stat { @if h.calls > 0 { (h.avg_ms) " ms average, " (h.success_percent().unwrap_or(0)) "% of the last " (h.calls) " calls answered" } @else { "No calls yet" } }
                div.card.stat { (h.live_orders) " orders in progress" }
            }
            @if !p.last_error.is_empty() {
                p.flash.err #last-error { "Last error " (opt_time(p.last_error_at)) ": " (p.last_error) }
            }
            section.card {
                form.inline method="post" action=(format!("/admin/providers/{}/sync", p.id)) {
                    (csrf(token))
                    button type="submit" { "Sync now" }
                }
            }
            section.card #edit-provider {
                h2 { "Settings" }
                form method="post" action=(format!("/admin/providers/{}", p.id)) autocomplete="off" {
                    (csrf(token))
                    p { "Kind: " (p.kind.as_str()) }
                    label { "Name" input type="text" name="name" value=(typed("name", p.name.clone())) required; }
                    label { "URL" input type="url" name="url" value=(typed("url", p.base_url.clone())) required; }
                    label { "Replace the API key" input type="password" name="key" value="" autocomplete="off" placeholder="leave empty to keep the current key"; }
                    label { "Markup" input type="text" name="markup" value=(typed("markup", markup_text(p.markup_bp))) size="6"; }
                    label { "Priority" input type="number" name="priority" value=(typed("priority", p.priority.to_string())) min="-1000" max="1000"; }
                    label { "Unit" input type="number" name="unit" value=(typed("unit", p.unit_minor.to_string())) min="1"; }
                    label.check { input type="checkbox" name="enabled" value="1" checked[if edited { kept.get("enabled").is_some() } else { p.enabled }]; " Enabled (its stock is sold)" }
                    button type="submit" { "Save" }
                }
            }
            section.card {
                form.inline method="post" action=(format!("/admin/providers/{}/delete", p.id)) {
                    (csrf(token))
                    button.secondary type="submit" { "Delete" }
                    " A provider that has sold numbers cannot be deleted; disable it instead."
                }
            }
            h2 { "Latest calls" }
            table #calls {
                thead { tr { th { "When" } th { "Call" } th { "Answered" } th { "Time" } th { "Error" } } }
                tbody {
                    @for c in calls {
                        tr { td { (time(c.at)) } td { (c.action) } td { @if c.ok { "yes" } @else { "no" } } td { (c.duration_ms) " ms" } td { (c.error) } }
                    }
                }
            }
        },
    )
}
