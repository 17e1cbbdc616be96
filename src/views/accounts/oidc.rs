//! Sign-in with OpenID Connect: the provider buttons of the login and sign-up pages, the
//! confirmation of a new account, the password step that links an existing one, and the
//! settings section listing the account's linked sign-ins (handlers:
//! `http::web::accounts::oidc`).

use maud::{html, Markup};

use crate::clock::Timestamp;
use crate::views::accounts::account::{form_card, FormCard};
use crate::views::{csrf, opt_time, time, Flash, Kept, Nav};

/// "Sign in with …" buttons: (start URL, label) per provider.
pub fn buttons(providers: &[(String, String)]) -> Markup {
    html! {
        @if !providers.is_empty() {
            div.providers {
                @for (url, label) in providers {
                    p { a.button.secondary href=(url) { "Sign in with " (label) } }
                }
            }
        }
    }
}

/// A new person's last step: confirm age and the policy before the account exists.
pub fn confirm_signup(
    nav: &Nav,
    token: &str,
    email: &str,
    label: &str,
    min_age: u32,
    kept: &Kept,
    f: &Option<Flash>,
) -> Markup {
    let card = FormCard {
        title: "Create your account",
        heading: "Create your account",
        action: "/auth/oidc/signup",
        submit: "Create my account",
    };
    let fields = html! {
        p { (label) " vouched for " strong #email { (email) } ". No account uses this address yet: confirm to create one. You will sign in with " (label) "; you can set a password later in your settings." }
        label.check { input type="checkbox" name="age" value="1" required checked[kept.get("age").is_some()]; " I am at least " (min_age) " years old" }
        label.check { input type="checkbox" name="aup" value="1" required checked[kept.get("aup").is_some()]; span { " I accept the " a href="/aup" target="_blank" { "acceptable-use policy" } " and the " a href="/terms" target="_blank" { "terms" } } }
    };
    let after = html! { p.muted { a href="/login" { "Cancel" } } };
    form_card(nav, &card, token, f, fields, after)
}

/// The password of the existing account with the provider's address, before linking.
pub fn prove_password(
    nav: &Nav,
    token: &str,
    email: &str,
    label: &str,
    f: &Option<Flash>,
) -> Markup {
    let card = FormCard {
        title: "Link your account",
        heading: "Link your account",
        action: "/auth/oidc/link",
        submit: "Link and sign in",
    };
    let fields = html! {
        p { "An account with " strong #email { (email) } " exists. Enter its password once to link " (label) " to it; then " (label) " signs you in." }
        label { "Password of that account" input type="password" name="password" required autocomplete="current-password"; }
    };
    let after = html! { p.muted { a href="/password/forgot" { "Forgot the password?" } " · " a href="/login" { "Cancel" } } };
    form_card(nav, &card, token, f, fields, after)
}

/// One linked sign-in, for the settings.
pub struct Linked {
    pub id: i64,
    pub label: String,
    pub email: String,
    pub linked_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

/// The settings section: linked sign-ins with their unlink buttons, and a link button per
/// configured provider not linked yet (`(name, label)`); nothing when there is neither.
pub fn settings_section(
    token: &str,
    linked: &[Linked],
    can_link: &[(String, String)],
    has_password: bool,
) -> Markup {
    let last_way_in = !has_password && linked.len() == 1;
    if linked.is_empty() && can_link.is_empty() {
        return html! {};
    }
    html! {
        section.card #identities {
            h2 { "Sign-in with other providers" }
            @if linked.is_empty() {
                p.muted { "None linked." }
            } @else {
                table {
                    thead { tr { th { "Provider" } th { "Address it gave" } th { "Linked" } th { "Last used" } th {} } }
                    tbody {
                        @for l in linked {
                            tr data-identity=(l.id) {
                                td { (l.label) }
                                td { (l.email) }
                                td { (time(l.linked_at)) }
                                td { (opt_time(l.last_used_at)) }
                                td {
                                    @if last_way_in {
                                        span.muted { "your only way in" }
                                    } @else {
                                        form.inline method="post" action=(format!("/settings/identities/{}/unlink", l.id)) {
                                            (csrf(token))
                                            button.link type="submit" { "Unlink" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @for (name, label) in can_link {
                form.inline method="post" action="/settings/identities/link" {
                    (csrf(token))
                    input type="hidden" name="provider" value=(name);
                    button.secondary type="submit" { "Link " (label) }
                }
            }
            @if !has_password {
                p.muted { "Your account has no password; you can set one under Password above." }
            }
        }
    }
}
