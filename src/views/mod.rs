//! Every HTML template, as functions of plain data. maud escapes by default; there is no
//! `PreEscaped` anywhere in the views.

pub mod accounts;
pub mod market;
pub mod public;
pub mod supply;
pub mod trust;

use maud::{html, Markup, DOCTYPE};

use crate::assets;
use crate::clock::{format_datetime, Timestamp};
use crate::domain::accounts::Role;

/// What the page header needs to know about the visitor.
#[derive(Default, Clone)]
pub struct Nav {
    pub site_name: String,
    pub email: Option<String>,
    pub role: Option<Role>,
    /// CSRF token for the logout button.
    pub csrf: String,
}

/// A message shown at the top of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flash {
    Ok(String),
    Err(String),
}

/// The values a person typed into a form that failed, shown again when the page comes back
/// (never passwords, codes or tokens: see `http::web::form`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kept(pub Vec<(String, String)>);

impl Kept {
    /// The value typed into field `name`, if the form failed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The typed value or, when nothing was kept, `default`.
    pub fn or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.get(name).unwrap_or(default)
    }

    /// The value typed into field `name` when the form that failed is the one marked `form`
    /// (by [`form_mark`]): for pages whose forms share field names.
    pub fn of(&self, form: &str, name: &str) -> Option<&str> {
        (self.get("form") == Some(form))
            .then(|| self.get(name))
            .flatten()
    }
}

/// A hidden field naming a form, so that its page refills only this form after it failed
/// (see [`Kept::of`]).
pub fn form_mark(name: &str) -> Markup {
    html! { input type="hidden" name="form" value=(name); }
}

pub fn flash(f: &Option<Flash>) -> Markup {
    html! {
        @match f {
            Some(Flash::Ok(m)) => p.flash.ok role="status" { (m) },
            // A balance too low, wherever it is refused, points at the top-up.
            Some(Flash::Err(m)) if *m == crate::domain::Error::NoBalance.to_string() => {
                p.flash.err role="alert" { (m) " " a href="/wallet#topup" { "Top up your balance" } }
            }
            Some(Flash::Err(m)) => p.flash.err role="alert" { (m) },
            None => {},
        }
    }
}

pub fn page(title: &str, nav: &Nav, body: Markup) -> Markup {
    let site = if nav.site_name.is_empty() {
        "otpbox"
    } else {
        nav.site_name.as_str()
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · " (site) }
                link rel="stylesheet" href=(assets::url("app.css"));
                link rel="icon" href=(assets::url("favicon.svg")) type="image/svg+xml";
                script src=(assets::url("app.js")) defer {}
            }
            body {
                header.top {
                    a.brand href="/" { (site) }
                    nav {
                        @if let Some(email) = &nav.email {
                            a href="/dashboard" { "Dashboard" }
                            @if matches!(nav.role, Some(Role::Operator | Role::Admin)) {
                                a href="/operator" { "Operator" }
                            }
                            @if nav.role == Some(Role::Admin) {
                                a href="/admin" { "Admin" }
                            }
                            a href="/settings" title=(email) { "Settings" }
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(nav.csrf);
                                button.link type="submit" { "Log out" }
                            }
                        } @else {
                            a href="/login" { "Log in" }
                            a.button href="/signup" { "Sign up" }
                        }
                    }
                }
                main { (body) }
                footer {
                    a href="/privacy" { "Privacy" }
                    a href="/aup" { "Acceptable use" }
                    a href="/terms" { "Terms" }
                    a href="/abuse" { "Report abuse" }
                    a href="/transparency" { "Transparency" }
                }
            }
        }
    }
}

pub fn error_page(status: u16, message: &str) -> Markup {
    let title = match status {
        403 => "Not allowed",
        404 => "Not found",
        413 => "Too large",
        429 => "Too many attempts",
        500 => "Server error",
        _ => "Something is not right",
    };
    page(
        title,
        &Nav::default(),
        html! {
            section.card.narrow {
                h1 { (title) }
                p { (message) }
                p { a href="/" { "Home" } }
            }
        },
    )
}

pub fn time(t: Timestamp) -> Markup {
    html! { time datetime=(crate::clock::format_rfc3339(t)) { (format_datetime(t)) " UTC" } }
}

pub fn opt_time(t: Option<Timestamp>) -> Markup {
    match t {
        Some(t) => time(t),
        None => html! { "—" },
    }
}

/// A hidden CSRF field for a form.
pub fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}
