//! The admin's list of every order with its filters (handler: `http::web::market::admin_orders`).

use maud::{html, Markup};

use crate::domain::market::catalogue::{Country, Service};
use crate::domain::trust::orders::{Filter, Kind, Page, Row, SOURCES, WINDOW};
use crate::url::percent_encode;
use crate::views::market::orders::Cur;
use crate::views::trust::admin::tabs;
use crate::views::{flash, page, time, Flash, Nav};

pub struct OrdersPage<'a> {
    pub filter: &'a Filter,
    /// The filter's query parameters as given, for the pager's links.
    pub query: &'a [(String, String)],
    pub countries: &'a [Country],
    pub services: &'a [Service],
    pub page: &'a Page,
    pub not_first: bool,
}

fn query_string(query: &[(String, String)]) -> String {
    query
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn given<'a>(query: &'a [(String, String)], key: &str) -> &'a str {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.as_str())
}

/// The table of orders; `phones` shows the numbers (the audited list) or not (the user page).
pub fn order_table(rows: &[Row], cur: &Cur, kind: Kind, phones: bool) -> Markup {
    html! {
        div.scroll {
            table.orders {
                thead { tr {
                    th { "#" } th { "Created" } @if phones { th { "Account" } th { "Number" } }
                    th { "Service" } th { "Country" } th { "Status" }
                    @if kind == Kind::Activation { th { "Source" } th { "Code" } }
                    th { "Paid" }
                } }
                tbody {
                    @for r in rows {
                        tr data-id=(r.id) {
                            td { (r.id) }
                            td { (time(r.created_at)) }
                            @if phones {
                                td { a href=(format!("/admin/users/{}", r.user_id)) { (r.email) } }
                                td { "+" (r.phone) }
                            }
                            td { (r.service_name) " " code { (r.service) } }
                            td { (r.country) }
                            td.status { (r.status) }
                            @if kind == Kind::Activation {
                                td { (r.source) }
                                td { @if r.code_at.is_some() { span.ok { "got one" } } @else { span.muted { "none" } } }
                            }
                            td { (cur.fmt(r.price_minor)) }
                        }
                    }
                }
            }
        }
    }
}

pub fn orders(nav: &Nav, cur: &Cur, v: &OrdersPage<'_>, f: &Option<Flash>) -> Markup {
    let (filter, q) = (v.filter, v.query);
    let kind = filter.kind;
    page(
        "Orders",
        nav,
        html! {
            h1 { "Orders" }
            (tabs())
            (flash(f))
            p.muted { "Every order of every account, newest first. Your reading of this list is recorded in the audit log; codes and SMS texts are never shown here." }
            form.filters #order-filters method="get" action="/admin/orders" {
                label { "Kind"
                    select name="kind" {
                        option value="activation" selected[kind == Kind::Activation] { "Activations" }
                        option value="rental" selected[kind == Kind::Rental] { "Rentals" }
                    }
                }
                label { "Status"
                    select name="status" {
                        option value="" { "any" }
                        @for s in kind.statuses() { option value=(s) selected[filter.status == *s] { (s) } }
                    }
                }
                label { "Service"
                    select name="service" {
                        option value="" { "any" }
                        @for s in v.services { option value=(s.code) selected[filter.service == s.code] { (s.name) " (" (s.code) ")" } }
                    }
                }
                label { "Country"
                    select name="country" {
                        option value="" { "any" }
                        @for c in v.countries { option value=(c.id) selected[filter.country == Some(c.id)] { (c.name) } }
                    }
                }
                @if kind == Kind::Activation {
                    label { "Source"
                        select name="source" {
                            option value="" { "any" }
                            @for s in SOURCES { option value=(s) selected[filter.source == s] { (s) } }
                        }
                    }
                }
                label { "Account (e-mail or id)" input type="search" name="account" value=(given(q, "account")); }
                label { "From (UTC day)" input type="date" name="from" value=(given(q, "from")); }
                label { "To (UTC day)" input type="date" name="to" value=(given(q, "to")); }
                div.filter-actions {
                    button type="submit" { "Filter" }
                    " " a href="/admin/orders" { "Clear" }
                }
            }
            @if v.page.rows.is_empty() {
                p.muted #no-orders { "No order matches" @if v.page.older.is_some() { " among the " (WINDOW) " orders looked at; older ones may" } "." }
            } @else {
                (order_table(&v.page.rows, cur, kind, true))
            }
            nav.pager {
                @if v.not_first { a rel="first" href=(format!("/admin/orders?{}", query_string(q))) { "← Newest" } }
                @if let Some(id) = v.page.older {
                    a rel="next" href=(format!("/admin/orders?{}&before={id}", query_string(q))) {
                        @if v.page.rows.len() as i64 >= 50 { "Older →" } @else { "Look further back →" }
                    }
                }
            }
        },
    )
}

/// The orders section of the admin's user page: the newest activations and rentals, without
/// numbers (those are on the audited list it links to).
pub fn user_panel(user_id: i64, cur: &Cur, activations: &[Row], rentals: &[Row]) -> Markup {
    html! {
        section.card #user-orders {
            h2 { "Orders" }
            @if activations.is_empty() && rentals.is_empty() {
                p.muted { "No orders yet." }
            } @else {
                @if !activations.is_empty() {
                    h3 { "Newest activations" }
                    (order_table(activations, cur, Kind::Activation, false))
                }
                @if !rentals.is_empty() {
                    h3 { "Newest rentals" }
                    (order_table(rentals, cur, Kind::Rental, false))
                }
            }
            p {
                a href=(format!("/admin/orders?account={user_id}")) { "All activations with their numbers" } " · "
                a href=(format!("/admin/orders?kind=rental&account={user_id}")) { "all rentals" } " (audited)"
            }
        }
    }
}
