//! Admin pages of the marketplace: prices, catalogue switches, vouchers, credit, simulator,
//! numbers.

use maud::{html, Markup};

use super::admin::tabs;
use super::market::Cur;
use super::{csrf, flash, page, time, Flash, Nav};
use crate::domain::catalogue::{Country, Offer, Service};
use crate::domain::simulator::Mode;
use crate::domain::vouchers::VoucherRow;

#[allow(clippy::too_many_arguments)] // a template of plain data
pub fn prices(
    nav: &Nav,
    token: &str,
    cur: &Cur,
    countries: &[Country],
    country: i64,
    services: &[Service],
    offers: &[Offer],
    f: &Option<Flash>,
) -> Markup {
    page(
        "Prices",
        nav,
        html! {
            h1 { "Catalogue and prices" }
            (tabs())
            (flash(f))
            form.search method="get" action="/admin/prices" {
                select name="country" data-autosubmit="1" {
                    @for c in countries { option value=(c.id) selected[c.id == country] { (c.name) " (" (c.id) ")" @if !c.enabled { " — off" } } }
                }
                noscript { button type="submit" { "Show" } }
            }
            @if let Some(c) = countries.iter().find(|c| c.id == country) {
                form.inline method="post" action="/admin/catalogue/toggle" {
                    (csrf(token))
                    input type="hidden" name="table" value="countries";
                    input type="hidden" name="key" value=(c.id);
                    input type="hidden" name="enabled" value=(if c.enabled { "0" } else { "1" });
                    button.secondary type="submit" { @if c.enabled { "Stop selling in " (c.name) } @else { "Sell in " (c.name) } }
                }
            }
            table #prices {
                thead { tr { th { "Service" } th { "Stock" } th { "Price (" (cur.code) ")" } th { "Rent per hour" } th {} th {} } }
                tbody {
                    @for s in services {
                        @let o = offers.iter().find(|o| o.service == s.code);
                        tr {
                            td { (s.name) " " code { (s.code) } @if !s.enabled { " (off)" } }
                            td { (o.map(|o| o.stock).unwrap_or(0)) }
                            form method="post" action="/admin/prices" {
                                td {
                                    (csrf(token))
                                    input type="hidden" name="country" value=(country);
                                    input type="hidden" name="service" value=(s.code);
                                    input type="text" name="price" inputmode="decimal" size="6" value=(o.map(|o| crate::domain::money::Money(o.price_minor).decimal(cur.digits)).unwrap_or_default());
                                }
                                td { input type="text" name="rent_hour" inputmode="decimal" size="6" value=(o.map(|o| crate::domain::money::Money(o.rent_hour_minor).decimal(cur.digits)).unwrap_or_default()); }
                                td { button type="submit" { "Save" } }
                            }
                            td {
                                form.inline method="post" action="/admin/catalogue/toggle" {
                                    (csrf(token))
                                    input type="hidden" name="table" value="services";
                                    input type="hidden" name="key" value=(s.code);
                                    input type="hidden" name="enabled" value=(if s.enabled { "0" } else { "1" });
                                    button.link type="submit" { @if s.enabled { "Disable" } @else { "Enable" } }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub fn vouchers(
    nav: &Nav,
    token: &str,
    cur: &Cur,
    rows: &[VoucherRow],
    new_codes: &[String],
    f: &Option<Flash>,
) -> Markup {
    page(
        "Vouchers",
        nav,
        html! {
            h1 { "Vouchers" }
            (tabs())
            (flash(f))
            @if !new_codes.is_empty() {
                div.notice #new-codes {
                    p { "New codes. Copy them now: they are not shown again." }
                    pre { @for c in new_codes { (c) "\n" } }
                }
            }
            section.card {
                form method="post" action="/admin/vouchers" {
                    (csrf(token))
                    label { "How many" input type="number" name="count" value="10" min="1" max="1000"; }
                    label { "Amount each (" (cur.code) ")" input type="text" name="amount" inputmode="decimal" required; }
                    label { "Valid for (days)" input type="number" name="days" value="365" min="1" max="3650"; }
                    button type="submit" { "Create vouchers" }
                }
            }
            table #vouchers {
                thead { tr { th { "Batch" } th { "Code ends" } th { "Amount" } th { "Expires" } th { "Redeemed" } } }
                tbody {
                    @for v in rows {
                        tr {
                            td { (v.batch) } td { "…" (v.hint) } td { (cur.fmt(v.amount_minor)) } td { (time(v.expires_at)) }
                            td { @if let Some(who) = &v.redeemed_by { (who) " " @if let Some(t) = v.redeemed_at { (time(t)) } } @else { "—" } }
                        }
                    }
                }
            }
        },
    )
}

pub struct NumberRow {
    pub phone: String,
    pub country: i64,
    pub operator: String,
    pub source: String,
    pub state: String,
    pub last_used_at: Option<i64>,
}

pub fn numbers(
    nav: &Nav,
    token: &str,
    sim_on: bool,
    sim_mode: Mode,
    rows: &[NumberRow],
    f: &Option<Flash>,
) -> Markup {
    page(
        "Numbers",
        nav,
        html! {
            h1 { "Numbers" }
            (tabs())
            (flash(f))
            section.card #simulator {
                h2 { "Simulator" }
                p { "The simulator issues virtual numbers and delivers a realistic SMS a few seconds after each order. Use it for demos and tests, never for real customers." }
                form method="post" action="/admin/simulator" {
                    (csrf(token))
                    label.check { input type="checkbox" name="on" value="1" checked[sim_on]; " Simulator on" }
                    label { "Behaviour"
                        select name="mode" {
                            @for m in Mode::ALL { option value=(m.as_str()) selected[m == sim_mode] { (m.as_str().replace('_', " ")) } }
                        }
                    }
                    button type="submit" { "Save" }
                }
            }
            table #numbers {
                thead { tr { th { "Number" } th { "Country" } th { "Operator" } th { "Source" } th { "State" } th { "Last used" } } }
                tbody {
                    @for n in rows {
                        tr { td { "+" (n.phone) } td { (n.country) } td { (n.operator) } td { (n.source) } td { (n.state) }
                             td { @if let Some(t) = n.last_used_at { (time(t)) } @else { "—" } } }
                    }
                }
            }
        },
    )
}
