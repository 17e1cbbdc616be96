//! The public price list: a country's services (or a service's countries) with price,
//! stock and 7-day success rate, searchable.

use maud::{html, Markup};

use super::orders::{rate_label, Cur};
use crate::domain::market::catalogue::{Country, Service};
use crate::domain::supply::stats::Rate;
use crate::views::{page, Nav};

pub struct PriceRow {
    pub country_id: i64,
    pub country: String,
    pub service_code: String,
    pub service: String,
    pub price_minor: i64,
    pub stock: i64,
    pub rate: Rate,
}

pub struct PriceList<'a> {
    pub cur: Cur,
    pub countries: &'a [Country],
    /// The country whose services are listed (none when one service's countries are).
    pub country: Option<&'a Country>,
    /// The service whose countries are listed.
    pub service: Option<&'a Service>,
    /// The search, lowercase.
    pub q: &'a str,
    pub rows: &'a [PriceRow],
    pub signed_in: bool,
}

pub fn prices(nav: &Nav, l: &PriceList<'_>) -> Markup {
    let by_service = l.service.is_some();
    let heading = match (l.service, l.country) {
        (Some(s), _) => format!("{}: prices by country", s.name),
        (None, Some(c)) => format!("Prices in {} (+{})", c.name, c.prefix),
        (None, None) => "Prices".to_string(),
    };
    html! {
        (page("Prices", nav, html! {
            h1 { (heading) }
            p.lead { "What a number costs for one code, how many are free now, and how many of the last 7 days' orders got their code. An order that gets no code is refunded in full." }
            section.card {
                @if by_service {
                    p { a href="/prices" { "All services of a country" } }
                } @else {
                    details #countries {
                        summary { "Change country" }
                        input.filter type="search" data-filter="#country-list" placeholder="Type a country, e.g. Indonesia" aria-label="Search countries" autocomplete="off" hidden;
                        ul.pick #country-list {
                            @for c in l.countries {
                                li data-search=(format!("{} {} +{} {}", c.name.to_lowercase(), c.iso, c.prefix, c.id)) {
                                    a href=(format!("/prices?country={}", c.id)) aria-current=[(Some(c.id) == l.country.map(|x| x.id)).then_some("true")] { (c.name) " " span.muted { "+" (c.prefix) } }
                                }
                            }
                        }
                        p.muted.filter-none hidden { "No country matches." }
                    }
                }
                form.search method="get" action="/prices" {
                    @if let Some(c) = l.country { input type="hidden" name="country" value=(c.id); }
                    @if let Some(s) = l.service { input type="hidden" name="service" value=(s.code); }
                    input.filter.live type="search" name="q" value=(l.q) data-filter="#price-rows" placeholder=(if by_service { "Type a country" } else { "Type a service, e.g. Telegram" }) aria-label="Search";
                    button.secondary type="submit" { "Search" }
                }
            }
            @if l.rows.is_empty() {
                p.muted #no-prices { @if l.q.is_empty() { "Nothing is for sale here now." } @else { "Nothing matches “" (l.q) "”." } }
            } @else {
                div.scroll {
                    table #prices {
                        thead { tr {
                            th { @if by_service { "Country" } @else { "Service" } }
                            th { "Price" } th { "In stock" } th { "Success, 7 days" } th {}
                        } }
                        tbody #price-rows {
                            @for r in l.rows {
                                tr data-search=(format!("{} {} {}", r.service.to_lowercase(), r.service_code, r.country.to_lowercase())) data-service=(r.service_code) data-country=(r.country_id) {
                                    td {
                                        @if by_service { a href=(format!("/prices?country={}", r.country_id)) { (r.country) } }
                                        @else { a href=(format!("/prices?service={}", r.service_code)) { (r.service) } }
                                    }
                                    td.nowrap { (l.cur.fmt(r.price_minor)) }
                                    td { @if r.stock > 0 { (r.stock) } @else { span.muted { "none" } } }
                                    td.rate title=(format!("{} of {} orders got a code", r.rate.coded.clamp(0, r.rate.orders), r.rate.orders)) { (rate_label(&r.rate)) }
                                    td { @if r.stock > 0 {
                                        a href=(format!("/dashboard?country={}", r.country_id)) { "Order" }
                                    } }
                                }
                            }
                        }
                    }
                }
                p.muted #price-rows-none hidden { "Nothing matches." }
            }
            @if !l.signed_in {
                p { a.button href="/signup" { "Create an account to order" } }
            }
        }))
    }
}
