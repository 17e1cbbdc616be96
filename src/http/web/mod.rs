//! Handlers for the web interface: public pages, account pages, operator pages, admin pages.

mod accounts;
pub mod form;
mod market;
mod public;
mod supply;
mod trust;

use super::auth::{Signed, Visitor};
use super::router::Router;
use super::{Ctx, Request, Response};
use crate::domain::base::money::currency_digits;
use crate::views::market::orders::Cur;
use crate::views::{Flash, Nav};

pub fn routes(r: &mut Router) {
    // In the order the flat module list had: the first matching pattern wins.
    public::routes(r);
    accounts::account::routes(r);
    trust::admin::routes(r);
    market::admin::routes(r);
    market::admin_orders::routes(r);
    market::admin_catalogue::routes(r);
    supply::providers::routes(r);
    supply::partners::routes(r);
    trust::lifecycle::routes(r);
    market::orders::routes(r);
    market::prices::routes(r);
    market::payments::routes(r);
    supply::operator::routes(r);
    accounts::second_factor::routes(r);
    accounts::oidc::routes(r);
    market::webhooks::routes(r);
    accounts::notifications::routes(r);
    trust::abuse::routes(r);
    trust::abuse_queue::routes(r);
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

/// The page header for a signed-in account.
pub fn signed_nav(ctx: &Ctx<'_>, s: &Signed) -> Nav {
    let v = Visitor {
        session: Some(s.session.clone()),
        user: Some(s.user.clone()),
        flash: None,
        kept: Default::default(),
    };
    nav(ctx, &v)
}

/// Money formatting of this install.
pub fn cur(ctx: &Ctx<'_>) -> Cur {
    Cur {
        code: ctx.app.config.currency.clone(),
        digits: currency_digits(&ctx.app.config.currency),
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
    let bad = |s: &str| Some(Flash::Err(s.to_string()));
    match key.as_str() {
        "saved" => ok("Saved."),
        "verified" => ok("Thank you: your e-mail address is confirmed."),
        "verify_sent" => ok("We sent a new confirmation link."),
        "password_changed" => ok("Your password was changed. Please log in."),
        "sessions_revoked" => ok("All other sessions are signed out."),
        "welcome" => ok("Welcome! Your account is ready."),
        "role_changed" => ok("Role changed."),
        "state_changed" => ok("State changed."),
        "webhook_deleted" => ok("Webhook deleted; nothing more is sent to it."),
        "test_queued" => ok("Test delivery queued; it is sent within a few seconds."),
        "provider_deleted" => ok("Provider deleted."),
        "sim_added" => ok("SIM added; its number is on sale while the device is online."),
        "sim_removed" => ok("SIM removed; its number is no longer sold."),
        "device_revoked" => ok("Device revoked; its webhook URL no longer works."),
        "payout_requested" => ok("Payout requested; the administrator will pay it."),
        "payout_withdrawn" => ok("Payout request withdrawn."),
        "payout_paid" => ok("Payout marked paid."),
        "payout_rejected" => ok("Payout rejected."),
        "account_deleted" => ok(
            "Your account was deleted and you are signed out. A confirmation went to your \
             e-mail address.",
        ),
        "account_deleted_admin" => ok("Account deleted; its holder was sent a confirmation."),
        "email_sent" => ok(
            "We sent a confirmation link to the new address. Your address changes when you \
             open it.",
        ),
        "email_changed" => ok("Your e-mail address was changed."),
        "restricted" => ok("Processing of your data is now restricted."),
        "unrestricted" => ok("The restriction of processing is lifted."),
        "request_handled" => ok("Marked as seen."),
        "channel_deleted" => ok("Channel deleted; nothing more is sent to it."),
        "identity_linked" => ok("Linked: you can now sign in with it."),
        "identity_unlinked" => ok("Unlinked: it no longer signs you in."),
        "oidc_expired" => bad("The sign-in took too long. Please start again."),
        "second_factor_off" => ok("Two-factor sign-in is off."),
        "second_factor_reset" => ok("Two-factor sign-in turned off; the owner was told by e-mail."),
        "second_factor_expired" => bad("The sign-in took too long. Please log in again."),
        "second_factor_attempts" => bad("Too many wrong codes. Please log in again."),
        "terminated" => {
            ok("The account is terminated; the person was sent the reason and how to appeal.")
        }
        "reinstated" => ok("The account is active again."),
        _ => None,
    }
}
