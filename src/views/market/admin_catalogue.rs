//! The admin's catalogue and prices: the price table of one country with the bulk tools,
//! the preview of a bulk change, and the catalogue's entries (handler:
//! `http::web::market::admin_catalogue`).

use maud::{html, Markup};

use crate::domain::base::money::Money;
use crate::domain::market::catalogue::{Country, Price, Service};
use crate::domain::trust::catalogue::OperatorRow;
use crate::domain::trust::pricing::Change;
use crate::views::market::orders::Cur;
use crate::views::trust::admin::tabs;
use crate::views::{csrf, flash, form_mark, page, Flash, Kept, Nav};

/// One service's row in a country's price table.
pub struct PriceLine<'a> {
    pub service: &'a Service,
    /// `None`: not priced, so not sold in this country.
    pub price: Option<Price>,
    pub stock: i64,
}

pub struct PricesPage<'a> {
    pub countries: &'a [Country],
    pub country: i64,
    /// The service search as typed.
    pub q: &'a str,
    pub rows: &'a [PriceLine<'a>],
}

fn subnav(here: &str) -> Markup {
    html! {
        p.subnav {
            @if here == "prices" { strong { "Prices" } } @else { a href="/admin/prices" { "Prices" } }
            " · "
            @if here == "catalogue" { strong { "Countries, services and operators" } } @else { a href="/admin/catalogue" { "Countries, services and operators" } }
        }
    }
}

fn switch(token: &str, table: &str, key: &str, enabled: bool, label: Markup, id: &str) -> Markup {
    html! {
        form.inline id=(id) method="post" action="/admin/catalogue/toggle" {
            (csrf(token))
            input type="hidden" name="table" value=(table);
            input type="hidden" name="key" value=(key);
            input type="hidden" name="enabled" value=(if enabled { "0" } else { "1" });
            button.secondary type="submit" { (label) }
        }
    }
}

fn country_options(countries: &[Country], chosen: Option<i64>) -> Markup {
    html! {
        @for c in countries.iter().filter(|c| !c.retired) {
            option value=(c.id) selected[chosen == Some(c.id)] { (c.name) " (" (c.id) ")" }
        }
    }
}

/// `kept` refills the table or the import that failed.
pub fn prices(
    nav: &Nav,
    token: &str,
    cur: &Cur,
    p: &PricesPage<'_>,
    f: &Option<Flash>,
    kept: &Kept,
) -> Markup {
    let amount = |minor: Option<i64>| {
        minor
            .map(|m| Money(m).decimal(cur.digits))
            .unwrap_or_default()
    };
    let here = p.countries.iter().find(|c| c.id == p.country);
    page(
        "Prices",
        nav,
        html! {
            h1 { "Catalogue and prices" }
            (tabs())
            (subnav("prices"))
            (flash(f))
            form.filters #price-filter method="get" action="/admin/prices" {
                label { "Country"
                    select name="country" data-autosubmit="1" {
                        @for c in p.countries { option value=(c.id) selected[c.id == p.country] { (c.name) " (" (c.id) ")" @if c.retired { " — retired" } @else if !c.enabled { " — off" } } }
                    }
                }
                label { "Service" input type="search" name="q" value=(p.q) placeholder="name or code"; }
                div.filter-actions { button type="submit" { "Show" } }
            }
            @if let Some(c) = here {
                div.row-head #country-head {
                    h2 { (c.name) " " span.muted { "(" (c.id) ", +" (c.prefix) ")" }
                        " " @if c.retired { span.err { "retired" } } @else if c.enabled { span.ok { "on sale" } } @else { span.err { "not sold" } } }
                    @if !c.retired {
                        (switch(token, "countries", &c.id.to_string(), c.enabled,
                            html! { @if c.enabled { "Stop selling in " (c.name) } @else { "Sell in " (c.name) } }, "country-switch"))
                    }
                }
            }
            form #prices-form method="post" action="/admin/prices" {
                (csrf(token))
                input type="hidden" name="country" value=(p.country);
                input type="hidden" name="q" value=(p.q);
                div.scroll {
                    table #prices {
                        thead { tr { th { "Service" } th { "Stock" } th { "Price (" (cur.code) ")" } th { "Rent per hour" } th {} } }
                        tbody {
                            @for line in p.rows {
                                @let s = line.service;
                                @let pname = format!("price.{}", s.code);
                                @let rname = format!("rent.{}", s.code);
                                @let price = kept.get(&pname).map(str::to_string).unwrap_or_else(|| amount(line.price.map(|p| p.price_minor)));
                                @let rent = kept.get(&rname).map(str::to_string).unwrap_or_else(|| amount(line.price.map(|p| p.rent_hour_minor)));
                                // What the row shows, so that Save writes only rows typed
                                // differently and notices a change made meanwhile.
                                @let was_pname = format!("was.{pname}");
                                @let was_rname = format!("was.{rname}");
                                @let was_price = kept.get(&was_pname).map(str::to_string).unwrap_or_else(|| amount(line.price.map(|p| p.price_minor)));
                                @let was_rent = kept.get(&was_rname).map(str::to_string).unwrap_or_else(|| amount(line.price.map(|p| p.rent_hour_minor)));
                                tr data-service=(s.code) {
                                    td { (s.name) " " code { (s.code) } @if s.retired { " (retired)" } @else if !s.enabled { " (off)" } }
                                    td { (line.stock) }
                                    td { input.amount type="text" name=(pname) inputmode="decimal" size="7" value=(price) aria-label=(format!("Price of {}", s.name));
                                        input type="hidden" name=(was_pname) value=(was_price);
                                        input type="hidden" name=(was_rname) value=(was_rent); }
                                    td { input.amount type="text" name=(rname) inputmode="decimal" size="7" value=(rent) aria-label=(format!("Rent per hour of {}", s.name)); }
                                    td {
                                        @if !s.retired {
                                            button.link type="submit" form=(format!("switch-{}", s.code)) { @if s.enabled { "Disable" } @else { "Enable" } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if p.rows.is_empty() { p.muted { "No service matches." } }
                p { button type="submit" #save-prices { "Save all prices" } " " span.muted { "Only the rows you changed are written (and audited)." } }
            }
            // The rows' on/off buttons post these forms (a form cannot sit inside another).
            @for line in p.rows.iter().filter(|l| !l.service.retired) {
                @let s = line.service;
                form hidden id=(format!("switch-{}", s.code)) method="post" action="/admin/catalogue/toggle" {
                    (csrf(token))
                    input type="hidden" name="table" value="services";
                    input type="hidden" name="key" value=(s.code);
                    input type="hidden" name="enabled" value=(if s.enabled { "0" } else { "1" });
                }
            }
            section.card #bulk-tools {
                h2 { "Bulk changes" }
                p.muted { "Each tool first shows what it would change; nothing is saved until you apply the preview. Every change is audited." }
                h3 { "Markup over cost" }
                form.filters #markup-form method="get" action="/admin/prices/bulk" {
                    input type="hidden" name="action" value="markup";
                    label { "Countries"
                        select name="country" {
                            option value="" { "All countries" }
                            (country_options(p.countries, Some(p.country)))
                        }
                    }
                    label { "Markup (%)" input.amount type="number" name="percent" min="0" max="1000" step="1" required value="20"; }
                    div.filter-actions { button type="submit" { "Preview markup" } }
                }
                p.muted { "The activation price of every priced pair that a provider sells becomes its cheapest provider cost plus the markup; rents stay. Pairs without a price are left for you to price (with a rent)." }
                h3 { "Copy prices" }
                form.filters #copy-form method="get" action="/admin/prices/bulk" {
                    input type="hidden" name="action" value="copy";
                    label { "From" select name="from" { (country_options(p.countries, Some(p.country))) } }
                    label { "To" select name="to" { (country_options(p.countries, None)) } }
                    div.filter-actions { button type="submit" { "Preview copy" } }
                }
                h3 { "CSV" }
                p {
                    a href=(format!("/admin/prices/export?country={}", p.country)) download { "Export this country" } " · "
                    a href="/admin/prices/export" download { "Export all countries" }
                    " " span.muted { "(" code { "country,service,price,rent_hour" } ")" }
                }
                form #import-form method="post" action="/admin/prices/import" {
                    (csrf(token))
                    (form_mark("import"))
                    label { "Paste CSV to import (only the pairs to change are needed)"
                        textarea name="csv" rows="5" placeholder="country,service,price,rent_hour\n6,tg,0.40,0.10" { (kept.of("import", "csv").unwrap_or("")) }
                    }
                    button type="submit" { "Preview import" }
                }
            }
        },
    )
}

/// A bulk change waiting for Apply.
pub struct Preview<'a> {
    /// What the tool is, as the audit log will say it.
    pub what: &'a str,
    /// The tool, encoded for the Apply form (`pricing::Tool::encode`).
    pub tool: &'a str,
    pub changes: &'a [Change],
    pub countries: &'a [Country],
    pub services: &'a [Service],
    /// The changes as CSV, carried by the Apply form.
    pub csv: &'a str,
    pub note: Option<String>,
}

pub fn preview(nav: &Nav, token: &str, cur: &Cur, v: &Preview<'_>) -> Markup {
    let amount = |m: i64| Money(m).decimal(cur.digits);
    let country = |id: i64| {
        v.countries
            .iter()
            .find(|c| c.id == id)
            .map_or(id.to_string(), |c| c.name.clone())
    };
    let service = |code: &str| {
        v.services
            .iter()
            .find(|s| s.code == code)
            .map_or(code.to_string(), |s| s.name.clone())
    };
    page(
        "Preview",
        nav,
        html! {
            h1 { "Preview: " (v.what) }
            (tabs())
            @if let Some(n) = &v.note { p.notice { (n) } }
            @if v.changes.is_empty() {
                p #preview-empty { "Nothing would change: every price is already so." }
            } @else {
                p #preview-count { strong { (v.changes.len()) } " prices would change (" (cur.code) "):" }
                div.scroll {
                    table #preview {
                        thead { tr { th { "Country" } th { "Service" } th { "Price now" } th { "New price" } th { "Rent now" } th { "New rent" } } }
                        tbody {
                            @for c in v.changes {
                                tr {
                                    td { (country(c.country)) }
                                    td { (service(&c.service)) " " code { (c.service) } }
                                    td { @if let Some(o) = c.old { (amount(o.price_minor)) } @else { span.muted { "not sold" } } }
                                    td { strong { (amount(c.new.price_minor)) } }
                                    td { @if let Some(o) = c.old { (amount(o.rent_hour_minor)) } @else { "—" } }
                                    td { (amount(c.new.rent_hour_minor)) }
                                }
                            }
                        }
                    }
                }
                form #apply-form method="post" action="/admin/prices/apply" {
                    (csrf(token))
                    input type="hidden" name="tool" value=(v.tool);
                    textarea name="csv" hidden { (v.csv) }
                    button type="submit" { "Apply these " (v.changes.len()) " changes" }
                }
            }
            p { a href="/admin/prices" { "← Back to the prices, changing nothing" } }
        },
    )
}

pub struct CataloguePage<'a> {
    pub countries: &'a [Country],
    pub services: &'a [Service],
    pub operators: &'a [OperatorRow],
    /// The install's `activation_ttl`, for services without their own lifetime.
    pub default_ttl: u64,
}

fn state(enabled: bool, retired: bool) -> Markup {
    html! {
        @if retired { span.muted { "retired" } } @else if enabled { span.ok { "on sale" } } @else { span.err { "off" } }
    }
}

fn retire_button(action: &str, fields: &[(&str, String)], token: &str, what: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(token))
            input type="hidden" name="op" value="retire";
            @for (k, v) in fields { input type="hidden" name=(k) value=(v); }
            button.link type="submit" aria-label=(format!("Retire {what}")) { "Retire" }
        }
    }
}

/// `kept` refills the add form that failed.
pub fn catalogue(
    nav: &Nav,
    token: &str,
    v: &CataloguePage<'_>,
    f: &Option<Flash>,
    kept: &Kept,
) -> Markup {
    let typed = |form: &str, name: &str| kept.of(form, name).unwrap_or("").to_string();
    page(
        "Catalogue",
        nav,
        html! {
            h1 { "Catalogue and prices" }
            (tabs())
            (subnav("catalogue"))
            (flash(f))
            p.muted { "Ids and codes follow the SMS-Activate numbering and 5sim's names, which customers' software sends: they are set when an entry is added and never change. Retiring takes an entry off sale for good; past orders keep its name. Every change is audited." }
            section.card #countries {
                h2 { "Countries" }
                div.scroll {
                    table {
                        thead { tr { th { "Id" } th { "ISO" } th { "Code" } th { "5sim" } th { "Name" } th { "State" } th {} } }
                        tbody {
                            @for c in v.countries {
                                tr data-country=(c.id) {
                                    td { (c.id) } td { (c.iso) } td { "+" (c.prefix) } td { code { (c.fivesim_name) } }
                                    td {
                                        @if c.retired { (c.name) } @else {
                                            form.rename method="post" action="/admin/catalogue/country" {
                                                (csrf(token))
                                                input type="hidden" name="op" value="rename";
                                                input type="hidden" name="id" value=(c.id);
                                                input type="text" name="name" value=(c.name) maxlength="60" required aria-label=(format!("Name of country {}", c.id));
                                                button.secondary type="submit" { "Rename" }
                                            }
                                        }
                                    }
                                    td { (state(c.enabled, c.retired)) }
                                    td { @if !c.retired { (retire_button("/admin/catalogue/country", &[("id", c.id.to_string())], token, &c.name)) } }
                                }
                            }
                        }
                    }
                }
                h3 { "Add a country" }
                form.filters method="post" action="/admin/catalogue/country" {
                    (csrf(token))
                    (form_mark("country"))
                    input type="hidden" name="op" value="add";
                    label { "SMS-Activate id" input type="number" name="id" min="0" max="9999" required value=(typed("country", "id")); }
                    label { "ISO code" input type="text" name="iso" maxlength="2" required placeholder="id" value=(typed("country", "iso")); }
                    label { "Dialing code" input type="text" name="prefix" inputmode="numeric" maxlength="5" required placeholder="62" value=(typed("country", "prefix")); }
                    label { "Name" input type="text" name="name" maxlength="60" required value=(typed("country", "name")); }
                    label { "5sim name" input type="text" name="fivesim" maxlength="40" required placeholder="indonesia" value=(typed("country", "fivesim")); }
                    div.filter-actions { button type="submit" { "Add country" } }
                }
            }
            section.card #services {
                h2 { "Services" }
                div.scroll {
                    table {
                        thead { tr { th { "Code" } th { "5sim" } th { "Name" } th { "Activation lifetime (min)" } th { "State" } th {} } }
                        tbody {
                            @for s in v.services {
                                tr data-service=(s.code) {
                                    td { code { (s.code) } } td { code { (s.fivesim_name) } }
                                    td {
                                        @if s.retired { (s.name) } @else {
                                            form.rename method="post" action="/admin/catalogue/service" {
                                                (csrf(token))
                                                input type="hidden" name="op" value="rename";
                                                input type="hidden" name="code" value=(s.code);
                                                input type="text" name="name" value=(s.name) maxlength="60" required aria-label=(format!("Name of service {}", s.code));
                                                button.secondary type="submit" { "Rename" }
                                            }
                                        }
                                    }
                                    td {
                                        @if s.retired { (s.lifetime_secs.map_or(String::from("default"), |t| (t / 60).to_string())) } @else {
                                            form.rename method="post" action="/admin/catalogue/service" {
                                                (csrf(token))
                                                input type="hidden" name="op" value="lifetime";
                                                input type="hidden" name="code" value=(s.code);
                                                input.amount type="number" name="lifetime" min="1" max="1440" value=(s.lifetime_secs.map(|t| (t / 60).to_string()).unwrap_or_default()) placeholder=(format!("{} (default)", v.default_ttl / 60)) aria-label=(format!("Lifetime of {} in minutes", s.code));
                                                button.secondary type="submit" { "Set" }
                                            }
                                        }
                                    }
                                    td { (state(s.enabled, s.retired)) }
                                    td { @if !s.retired { (retire_button("/admin/catalogue/service", &[("code", s.code.clone())], token, &s.name)) } }
                                }
                            }
                        }
                    }
                }
                h3 { "Add a service" }
                form.filters method="post" action="/admin/catalogue/service" {
                    (csrf(token))
                    (form_mark("service"))
                    input type="hidden" name="op" value="add";
                    label { "Short code" input type="text" name="code" maxlength="12" required placeholder="tg" value=(typed("service", "code")); }
                    label { "Name" input type="text" name="name" maxlength="60" required value=(typed("service", "name")); }
                    label { "5sim name" input type="text" name="fivesim" maxlength="40" required placeholder="telegram" value=(typed("service", "fivesim")); }
                    label { "Lifetime (min, empty = default)" input type="number" name="lifetime" min="1" max="1440" value=(typed("service", "lifetime")); }
                    div.filter-actions { button type="submit" { "Add service" } }
                }
            }
            section.card #operators {
                h2 { "Mobile operators" }
                @if v.operators.is_empty() { p.muted { "No operators: orders take any operator of the country." } } @else {
                    div.scroll {
                        table {
                            thead { tr { th { "Country" } th { "Code" } th { "Name" } th { "State" } th {} } }
                            tbody {
                                @for o in v.operators {
                                    @let cname = v.countries.iter().find(|c| c.id == o.country_id).map_or(o.country_id.to_string(), |c| c.name.clone());
                                    tr {
                                        td { (cname) } td { code { (o.code) } }
                                        td {
                                            @if o.retired { (o.name) } @else {
                                                form.rename method="post" action="/admin/catalogue/operator" {
                                                    (csrf(token))
                                                    input type="hidden" name="op" value="rename";
                                                    input type="hidden" name="country" value=(o.country_id);
                                                    input type="hidden" name="code" value=(o.code);
                                                    input type="text" name="name" value=(o.name) maxlength="60" required aria-label=(format!("Name of operator {}", o.code));
                                                    button.secondary type="submit" { "Rename" }
                                                }
                                            }
                                        }
                                        td { (state(true, o.retired)) }
                                        td { @if !o.retired { (retire_button("/admin/catalogue/operator", &[("country", o.country_id.to_string()), ("code", o.code.clone())], token, &o.name)) } }
                                    }
                                }
                            }
                        }
                    }
                }
                h3 { "Add an operator" }
                form.filters method="post" action="/admin/catalogue/operator" {
                    (csrf(token))
                    (form_mark("operator"))
                    input type="hidden" name="op" value="add";
                    label { "Country" select name="country" { (country_options(v.countries, kept.of("operator", "country").and_then(|c| c.parse().ok()))) } }
                    label { "Code" input type="text" name="code" maxlength="40" required placeholder="telkomsel" value=(typed("operator", "code")); }
                    label { "Name" input type="text" name="name" maxlength="60" required value=(typed("operator", "name")); }
                    div.filter-actions { button type="submit" { "Add operator" } }
                }
            }
        },
    )
}
