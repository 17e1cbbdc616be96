//! Sign-up, login, password reset, first-admin setup, dashboard and settings pages.

use maud::{html, Markup};

use crate::domain::accounts::User;
use crate::domain::base::audit::SecurityRow;
use crate::views::{csrf, flash, page, time, Flash, Kept, Nav};

/// A narrow card with one form posting to `action`: the page of a public form (sign-up,
/// login, password reset, the login's code step). `fields` go inside the form after the
/// CSRF token, `after` below it.
pub struct FormCard<'a> {
    pub title: &'a str,
    pub heading: &'a str,
    pub action: &'a str,
    pub submit: &'a str,
}

pub fn form_card(
    nav: &Nav,
    card: &FormCard<'_>,
    token: &str,
    f: &Option<Flash>,
    fields: Markup,
    after: Markup,
) -> Markup {
    page(
        card.title,
        nav,
        html! {
            section.card.narrow {
                h1 { (card.heading) }
                (flash(f))
                form method="post" action=(card.action) {
                    (csrf(token))
                    (fields)
                    button type="submit" { (card.submit) }
                }
                (after)
            }
        },
    )
}

/// The e-mail field, filled with what was typed before the form failed.
fn email_field(kept: &Kept, autocomplete: &str) -> Markup {
    html! {
        label { "E-mail" input type="email" name="email" value=(kept.or("email", "")) required autocomplete=(autocomplete); }
    }
}

fn new_password_field() -> Markup {
    html! {
        label { "New password (at least 10 characters)" input type="password" name="password" minlength="10" required autocomplete="new-password"; }
    }
}

pub fn signup(
    nav: &Nav,
    token: &str,
    kept: &Kept,
    min_age: u32,
    providers: &[(String, String)],
    f: &Option<Flash>,
) -> Markup {
    let card = FormCard {
        title: "Sign up",
        heading: "Create an account",
        action: "/signup",
        submit: "Sign up",
    };
    let fields = html! {
        (email_field(kept, "email"))
        label { "Password (at least 10 characters)" input type="password" name="password" minlength="10" required autocomplete="new-password"; }
        label.check { input type="checkbox" name="age" value="1" required checked[kept.get("age").is_some()]; " I am at least " (min_age) " years old" }
        label.check { input type="checkbox" name="aup" value="1" required checked[kept.get("aup").is_some()]; span { " I accept the " a href="/aup" target="_blank" { "acceptable-use policy" } " and the " a href="/terms" target="_blank" { "terms" } } }
    };
    let after = html! {
        (super::oidc::buttons(providers))
        p.muted { "Already have an account? " a href="/login" { "Log in" } }
    };
    form_card(nav, &card, token, f, fields, after)
}

pub fn login(
    nav: &Nav,
    token: &str,
    kept: &Kept,
    next: &str,
    providers: &[(String, String)],
    f: &Option<Flash>,
) -> Markup {
    let card = FormCard {
        title: "Log in",
        heading: "Log in",
        action: "/login",
        submit: "Log in",
    };
    let fields = html! {
        input type="hidden" name="next" value=(next);
        (email_field(kept, "username"))
        label { "Password" input type="password" name="password" required autocomplete="current-password"; }
    };
    let after = html! {
        (super::oidc::buttons(providers))
        p.muted { a href="/password/forgot" { "Forgot your password?" } " · " a href="/signup" { "Create an account" } }
    };
    form_card(nav, &card, token, f, fields, after)
}

pub fn forgot(nav: &Nav, token: &str, kept: &Kept, f: &Option<Flash>) -> Markup {
    let card = FormCard {
        title: "Reset password",
        heading: "Reset your password",
        action: "/password/forgot",
        submit: "Send me a link",
    };
    form_card(nav, &card, token, f, email_field(kept, "email"), html! {})
}

/// The form behind a reset or first-admin link: a new password (and e-mail for setup).
pub fn set_password(
    nav: &Nav,
    title: &str,
    action: &str,
    token: &str,
    ask_email: bool,
    kept: &Kept,
    f: &Option<Flash>,
) -> Markup {
    let card = FormCard {
        title,
        heading: title,
        action,
        submit: "Save",
    };
    let fields = html! {
        @if ask_email { (email_field(kept, "email")) }
        (new_password_field())
    };
    form_card(nav, &card, token, f, fields, html! {})
}

pub fn message(nav: &Nav, title: &str, text: &str, link: (&str, &str)) -> Markup {
    page(
        title,
        nav,
        html! {
            section.card.narrow {
                h1 { (title) }
                p { (text) }
                p { a.button href=(link.0) { (link.1) } }
            }
        },
    )
}

pub fn verify_notice(user: &User, token: &str) -> Markup {
    html! {
        @if !user.is_verified() {
            div.notice {
                p { "Please confirm your e-mail address: we sent a link to " strong { (user.email) } "." }
                form.inline method="post" action="/verify/resend" {
                    (csrf(token))
                    button.link type="submit" { "Send the link again" }
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn settings(
    nav: &Nav,
    user: &User,
    token: &str,
    two_factor: bool,
    identities: Markup,
    events: &[SecurityRow],
    kept: &Kept,
    f: &Option<Flash>,
) -> Markup {
    page(
        "Settings",
        nav,
        html! {
            h1 { "Settings" }
            (flash(f))
            (verify_notice(user, token))
            section.card {
                h2 { "Profile" }
                p { "E-mail: " strong #email { (user.email) } }
                form method="post" action="/settings/profile" {
                    (csrf(token))
                    label { "Display name" input type="text" name="display_name" value=(kept.or("display_name", &user.display_name)) maxlength="80"; }
                    button type="submit" { "Save" }
                }
            }
            section.card #password {
                h2 { "Password" }
                form method="post" action="/settings/password" {
                    (csrf(token))
                    @if user.password_hash.is_some() {
                        label { "Current password" input type="password" name="current_password" required autocomplete="current-password"; }
                    } @else {
                        p { "Your account has no password: you sign in with another provider. You may set one." }
                    }
                    (new_password_field())
                    button type="submit" { @if user.password_hash.is_some() { "Change password" } @else { "Set a password" } }
                }
                p.muted { "Changing the password signs out every session; you sign in again with it." }
            }
            section.card #two-factor {
                h2 { "Two-factor sign-in" }
                p {
                    @if two_factor { "On: signing in asks for a code from your authenticator app. " }
                    @else { "Off: signing in asks for the password only. " }
                    a href="/settings/2fa" { @if two_factor { "Manage" } @else { "Set up" } }
                }
            }
            (identities)
            section.card #notifications {
                h2 { "Notifications" }
                p { "Get codes and order news on your phone (ntfy, Telegram, e-mail). " a href="/settings/notifications" { "Manage notifications" } }
            }
            section.card #webhooks {
                h2 { "Webhooks" }
                p { "Get SMS and order changes POSTed to your own server as they happen. " a href="/settings/webhooks" { "Manage webhooks" } }
            }
            section.card {
                h2 { "Sessions" }
                form method="post" action="/settings/sessions/revoke" {
                    (csrf(token))
                    button type="submit" { "Sign out all other sessions" }
                }
            }
            (crate::views::trust::lifecycle::settings_sections(user, token, kept))
            section.card #security {
                h2 { "Security events" }
                (events_table(events))
                p { a href="/settings/security" { "All security events" } }
            }
        },
    )
}

/// What a security event means, in words.
fn event_label(kind: &str) -> String {
    match kind {
        "login" => "Signed in".into(),
        "login_failed" => "Wrong password".into(),
        "logout" => "Signed out".into(),
        "password_changed" => "Password changed".into(),
        "password_reset" => "Password reset by e-mail link".into(),
        "second_factor_asked" => "Password accepted; code asked for".into(),
        "second_factor_failed" => "Wrong two-factor code".into(),
        "totp_enabled" => "Two-factor sign-in turned on".into(),
        "totp_disabled" => "Two-factor sign-in turned off".into(),
        "recovery_codes_regenerated" => "New recovery codes made".into(),
        "recovery_code_used" => "Recovery code used".into(),
        "api_key_created" => "API key created".into(),
        "api_key_revoked" => "API key revoked".into(),
        "webhook_created" => "Webhook added".into(),
        "webhook_deleted" => "Webhook deleted".into(),
        "identity_linked" => "Sign-in with a provider linked".into(),
        "identity_unlinked" => "Sign-in with a provider unlinked".into(),
        other => {
            let words = other.replace('_', " ");
            let mut c = words.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
    }
}

fn events_table(events: &[SecurityRow]) -> Markup {
    html! {
        @if events.is_empty() {
            p.muted { "Nothing yet." }
        } @else {
            table.events {
                thead { tr { th { "When" } th { "Event" } th { "From" } } }
                tbody {
                    @for e in events {
                        tr data-kind=(e.kind) {
                            td { (time(e.at)) }
                            td { (event_label(&e.kind)) @if !e.detail.is_empty() { " (" (e.detail) ")" } }
                            td { @if e.ip_hash.is_empty() { "—" } @else { code title="a keyed hash of the address, not the address" { (e.ip_hash.get(..8).unwrap_or(&e.ip_hash)) } } }
                        }
                    }
                }
            }
        }
    }
}

/// `/settings/security`: one page of the account's security events; `older` is the
/// `before=` of the next page, `not_first` links back to the newest.
pub fn security_log(
    nav: &Nav,
    events: &[SecurityRow],
    not_first: bool,
    older: Option<i64>,
) -> Markup {
    page(
        "Security events",
        nav,
        html! {
            p { a href="/settings" { "← Settings" } }
            h1 { "Security events" }
            p.muted { "Sign-ins, failed attempts and changes to your password, keys and two-factor sign-in, newest first. Addresses are kept only as keyed hashes: the same code means the same address." }
            (events_table(events))
            nav.pager {
                @if not_first { a rel="first" href="/settings/security" { "← Newest" } " " }
                @if let Some(id) = older { a rel="next" href=(format!("/settings/security?before={id}")) { "Older →" } }
            }
        },
    )
}
