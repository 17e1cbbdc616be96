//! The account lifecycle pages: the holder's "your data" sections of the settings page
//! (address change, export, restriction, deletion), the deletion form, and the admin's view
//! of the holders' requests.

use maud::{html, Markup};

use crate::domain::accounts::{State, User};
use crate::domain::trust::lifecycle::RequestRow;
use crate::views::{csrf, flash, opt_time, page, time, Flash, Kept, Nav};

/// The settings page's sections about the account's data.
pub fn settings_sections(user: &User, token: &str, kept: &Kept) -> Markup {
    let has_password = user.password_hash.is_some();
    html! {
        section.card #email-change {
            h2 { "E-mail address" }
            p { "We send a link to the new address; the change happens when you open it, and your current address gets a notice." }
            form method="post" action="/settings/email" {
                (csrf(token))
                label { "New e-mail address" input type="email" name="email" value=(kept.or("email", "")) required autocomplete="email"; }
                @if has_password {
                    label { "Current password" input type="password" name="password" required autocomplete="current-password"; }
                }
                button type="submit" { "Send the confirmation link" }
            }
        }
        section.card #your-data {
            h2 { "Your data" }
            p { a.button href="/settings/export" download { "Download everything we hold about you (JSON)" } }
            p.muted { "Profile, orders, rentals, ledger, API keys (names and dates), webhooks, devices, messages still kept, sessions and security events, in one JSON file that any program can read." }
            h3 { "Restrict processing" }
            @if let Some(since) = user.processing_restricted_at {
                p #restriction { strong { "Processing of your data is restricted" } " since " (time(since)) "." }
            } @else {
                p #restriction { "Processing of your data is not restricted." }
            }
            p.muted { "This service sends no marketing. When you restrict processing, your data is used only to run your orders, keep the books and prevent fraud: optional processing, such as scoring your usage patterns beyond what fraud prevention needs, is skipped for your account. The administrator sees your request." }
            form method="post" action="/settings/restrict" {
                (csrf(token))
                @if user.processing_restricted_at.is_some() {
                    input type="hidden" name="restrict" value="0";
                    button.secondary type="submit" { "Lift the restriction" }
                } @else {
                    input type="hidden" name="restrict" value="1";
                    button.secondary type="submit" { "Restrict processing" }
                }
            }
            h3 { "Delete your account" }
            p { a href="/settings/delete" { "Delete your account…" } }
        }
    }
}

/// What the deletion page tells the holder before they confirm.
pub struct DeletionFacts {
    pub balance: String,
    pub live_orders: i64,
    pub cooldown: String,
    pub ask_code: bool,
    /// False for an account that signs in only with a provider: it confirms by typing its
    /// address instead of a password.
    pub has_password: bool,
}

pub fn delete_page(nav: &Nav, token: &str, facts: &DeletionFacts, f: &Option<Flash>) -> Markup {
    page(
        "Delete your account",
        nav,
        html! {
            section.card.narrow {
                h1 { "Delete your account" }
                (flash(f))
                p { "Deleting your account takes effect at once and cannot be undone:" }
                ul {
                    li { "your live orders (" (facts.live_orders) ") end now; those that have not received a code are refunded first;" }
                    li { "then your remaining balance (" strong #balance { (facts.balance) } ") is forfeited;" }
                    li { "you are signed out everywhere, and your API keys, webhooks and devices stop working;" }
                    li { "your e-mail address cannot be used for a new account for " (facts.cooldown) "; after that your address, password and name are erased for good." }
                }
                p.muted { "Billing records are kept for accounting as the privacy policy says, no longer linked to your address. You may want to " a href="/settings/export" { "download your data" } " first." }
                form method="post" action="/settings/delete" {
                    (csrf(token))
                    @if facts.has_password {
                        label { "Your password" input type="password" name="password" required autocomplete="current-password"; }
                    } @else {
                        label { "Type your e-mail address to confirm" input type="email" name="confirm_email" required autocomplete="off"; }
                    }
                    @if facts.ask_code {
                        label { "Code from your authenticator app (or a recovery code)" input type="text" name="code" required autocomplete="one-time-code" inputmode="numeric"; }
                    }
                    button.danger type="submit" { "Delete my account now" }
                }
                p { a href="/settings" { "Keep my account" } }
            }
        },
    )
}

/// The lifecycle part of the admin's user page.
pub fn admin_user_panel(u: &User, token: &str, requests: &[RequestRow]) -> Markup {
    html! {
        section.card #lifecycle {
            h2 { "Data and requests" }
            p #restriction {
                @if let Some(since) = u.processing_restricted_at {
                    strong { "Processing restricted" } " since " (time(since)) ": no optional processing (anomaly scoring beyond fraud prevention, marketing)."
                } @else {
                    "Processing not restricted."
                }
            }
            @if let Some(at) = u.deleted_at {
                p { "Deleted by its holder or an administrator " (time(at)) "." }
            }
            @if !requests.is_empty() {
                div.scroll {
                    table #requests {
                        thead { tr { th { "When" } th { "Request" } th { "Seen" } } }
                        tbody {
                            @for r in requests {
                                tr { td { (time(r.created_at)) } td { (kind_label(&r.kind)) } td { (opt_time(r.handled_at)) } }
                            }
                        }
                    }
                }
            }
            p { a href=(format!("/admin/users/{}/export", u.id)) { "Export this account's data (JSON; recorded in the audit log)" } }
            @if u.state != State::Deleted {
                form method="post" action=(format!("/admin/users/{}/delete", u.id)) {
                    (csrf(token))
                    label { "Type the account's e-mail address to delete it now (recorded)" input type="text" name="confirm" required autocomplete="off"; }
                    button.danger type="submit" { "Delete account" }
                }
            }
        }
    }
}

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "restrict" => "restrict processing",
        "unrestrict" => "lift the processing restriction",
        "delete" => "account deleted",
        _ => "other",
    }
}

/// `/admin/requests`: what account holders asked for, open ones first.
pub fn admin_requests(nav: &Nav, token: &str, rows: &[RequestRow], f: &Option<Flash>) -> Markup {
    page(
        "Requests",
        nav,
        html! {
            h1 { "Account holders' requests" }
            (crate::views::trust::admin::tabs())
            (flash(f))
            p.muted { "Restrictions of processing (switched on or off in the holder's settings) and deletions. Restriction takes effect at once; mark a request seen once you have taken note of it." }
            div.scroll {
                table #requests {
                    thead { tr { th { "When" } th { "Account" } th { "Request" } th { "Detail" } th { "Seen" } } }
                    tbody {
                        @for r in rows {
                            tr data-kind=(r.kind) {
                                td { (time(r.created_at)) }
                                td { a href=(format!("/admin/users/{}", r.user_id)) { (r.email) } }
                                td { (kind_label(&r.kind)) }
                                td { (r.detail) }
                                td {
                                    @if let Some(at) = r.handled_at {
                                        (time(at)) @if let Some(by) = &r.handled_by { " by " (by) }
                                    } @else {
                                        form.inline method="post" action=(format!("/admin/requests/{}/handled", r.id)) {
                                            (csrf(token))
                                            button.link type="submit" { "Mark seen" }
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
