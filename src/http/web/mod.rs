//! Handlers for the web interface: public pages, account pages, admin pages.

mod account;
mod admin;
mod admin_market;
mod market;
mod public;

use super::auth::Visitor;
use super::router::Router;
use super::{Ctx, Request, Response};
use crate::views::{Flash, Nav};

pub fn routes(r: &mut Router) {
    public::routes(r);
    account::routes(r);
    admin::routes(r);
    admin_market::routes(r);
    market::routes(r);
}

/// The page header's view of the visitor.
pub fn nav(ctx: &Ctx<'_>, v: &Visitor) -> Nav {
    Nav {
        site_name: ctx.app.config.site_name.clone(),
        email: v.user.as_ref().map(|u| u.email.clone()),
        role: v.user.as_ref().map(|u| u.role),
        csrf: v
            .session
            .as_ref()
            .map(|s| s.csrf.clone())
            .unwrap_or_default(),
    }
}

/// A page response, with the session cookie attached when one was just created.
pub fn with_cookie(resp: Response, cookie: Option<String>) -> Response {
    match cookie {
        Some(c) => resp.with_header("Set-Cookie", &c),
        None => resp,
    }
}

/// Fixed messages selected by `?m=` after a redirect (never echoing arbitrary text).
pub fn flash_from_query(req: &Request) -> Option<Flash> {
    let key = req.query_param("m")?;
    let ok = |s: &str| Some(Flash::Ok(s.to_string()));
    match key.as_str() {
        "saved" => ok("Saved."),
        "verified" => ok("Thank you: your e-mail address is confirmed."),
        "verify_sent" => ok("We sent a new confirmation link."),
        "password_changed" => ok("Your password was changed. Please log in."),
        "sessions_revoked" => ok("All other sessions are signed out."),
        "welcome" => ok("Welcome! Your account is ready."),
        "role_changed" => ok("Role changed."),
        "state_changed" => ok("State changed."),
        _ => None,
    }
}
