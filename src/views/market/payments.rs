//! Top-ups through payment gateways: the form on the wallet page, the page a customer comes
//! back to from the gateway (it turns from pending to credited live), and the admin's list.

use maud::{html, Markup};

use crate::domain::base::money::Money;
use crate::domain::market::payments::{Payment, Status};
use crate::views::market::orders::Cur;
use crate::views::trust::admin::tabs;
use crate::views::{csrf, flash, page, time, Flash, Kept, Nav};

/// What the wallet's top-up form shows.
pub struct TopupForm<'a> {
    /// `(id, label)` of the gateways that are on; empty: no form.
    pub gateways: &'a [(&'static str, &'static str)],
    pub min_minor: i64,
    pub max_minor: i64,
    pub recent: &'a [Payment],
    pub kept: &'a Kept,
}

pub fn status_label(s: Status) -> &'static str {
    match s {
        Status::Creating | Status::Pending => "Waiting for the payment",
        Status::Paid => "Credited",
        Status::Expired => "Expired, nothing charged",
        Status::Failed => "Failed, nothing credited",
        Status::Refunded => "Refunded",
        Status::Disputed => "Disputed",
    }
}

/// The top-up section of the wallet page (`#topup`, where "balance too low" links to).
pub fn topup_section(token: &str, cur: &Cur, f: &TopupForm<'_>) -> Markup {
    let dec = |m: i64| Money(m).decimal(cur.digits);
    html! {
        section.card #topup {
            h2 { "Top up" }
            @if f.gateways.is_empty() {
                p.muted { "Payments are not set up on this site; ask the operator for a voucher." }
            } @else {
                form method="post" action="/wallet/topup" {
                    (csrf(token))
                    label { "Amount (" (cur.code) ")"
                        input type="text" name="amount" inputmode="decimal" required
                            placeholder=(dec(f.min_minor)) value=(f.kept.or("amount", ""));
                    }
                    p.muted { "From " (cur.fmt(f.min_minor)) " to " (cur.fmt(f.max_minor)) "." }
                    fieldset {
                        legend { "Pay with" }
                        @for (i, (id, label)) in f.gateways.iter().enumerate() {
                            @let chosen = f.kept.get("gateway").map_or(i == 0, |g| g == *id);
                            label.check { input type="radio" name="gateway" value=(id) checked[chosen]; " " (label) }
                        }
                    }
                    button type="submit" { "Continue to payment" }
                    p.muted { "You pay on the payment provider's page; card or wallet details never reach this site." }
                }
            }
            @if !f.recent.is_empty() {
                table #topups {
                    thead { tr { th { "When" } th { "Top-up" } th { "Amount" } th { "State" } } }
                    tbody {
                        @for p in f.recent {
                            tr {
                                td { (time(p.created_at)) }
                                td { a href=(format!("/wallet/topups/{}", p.id)) { "#" (p.id) } " · " (p.gateway) }
                                td { (cur.fmt(p.amount_minor)) }
                                td { (status_label(p.status)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The page the gateway sends the customer back to. While the payment is open the script
/// asks `/api/v1/topups/{id}` and turns it into "credited" when the webhook has landed.
pub fn topup_page(nav: &Nav, cur: &Cur, p: &Payment, f: &Option<Flash>) -> Markup {
    page(
        "Top-up",
        nav,
        html! {
            h1 { "Top-up #" (p.id) }
            (flash(f))
            section.card #topup-status data-id=(p.id) data-status=(p.status.as_str()) {
                p { "Amount: " strong { (cur.fmt(p.amount_minor)) } " · " (p.gateway) }
                p.status { "State: " strong.state { (status_label(p.status)) } }
                p.credited hidden[p.status != Status::Paid] {
                    span.credited-amount { (cur.fmt(p.credited_minor)) } " was added to your balance."
                }
                @if p.status.is_open() {
                    p.muted.wait { "This page changes as soon as the payment provider confirms the payment; it may take a few minutes for crypto." }
                    @if !p.checkout_url.is_empty() {
                        p { a.checkout href=(p.checkout_url) { "Go to the payment page" } }
                    }
                }
                p { a href="/wallet" { "To the wallet" } " · " a href="/dashboard" { "Order a number" } }
            }
        },
    )
}

/// One row of the admin's list.
pub struct AdminRow {
    pub p: Payment,
    pub email: String,
}

pub fn admin_payments(
    nav: &Nav,
    token: &str,
    cur: &Cur,
    rows: &[AdminRow],
    not_first: bool,
    older: Option<i64>,
    f: &Option<Flash>,
) -> Markup {
    page(
        "Payments",
        nav,
        html! {
            (tabs())
            h1 { "Payments" }
            (flash(f))
            p.muted { "Top-ups through the payment gateways. Viewing this page is recorded in the audit log. \"Ask the gateway\" reads an open payment's state from its gateway and credits it if the gateway says it is paid (the webhook normally does this; the reconciliation job asks after 15 minutes)." }
            @if rows.is_empty() { p.muted { "No payments yet." } } @else {
                div.scroll {
                    table #payments {
                        thead { tr { th { "#" } th { "When" } th { "Account" } th { "Gateway" } th { "Asked" } th { "Credited" } th { "State" } th { "Gateway says" } th {} } }
                        tbody {
                            @for r in rows {
                                tr data-id=(r.p.id) {
                                    td { (r.p.id) }
                                    td { (time(r.p.created_at)) }
                                    td { a href=(format!("/admin/users/{}", r.p.user_id)) { (r.email) } }
                                    td { (r.p.gateway) " " @if let Some(g) = &r.p.gateway_ref { code { (g) } } }
                                    td { (cur.fmt(r.p.amount_minor)) }
                                    td { (cur.fmt(r.p.credited_minor))
                                        @if r.p.reversed_minor > 0 { " (" (cur.fmt(r.p.reversed_minor)) " back)" } }
                                    td.state { (r.p.status.as_str()) }
                                    td { (r.p.gateway_status) }
                                    td {
                                        @if r.p.status.is_open() {
                                            form method="post" action=(format!("/admin/payments/{}/check", r.p.id)) {
                                                (csrf(token))
                                                button.secondary type="submit" { "Ask the gateway" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p {
                @if not_first { a href="/admin/payments" { "Newest" } " " }
                @if let Some(id) = older { a href=(format!("/admin/payments?before={id}")) { "Older" } }
            }
        },
    )
}
