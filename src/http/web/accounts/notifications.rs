//! The customer's notification channels under `/settings/notifications`: add an ntfy topic,
//! a Telegram chat or the account's e-mail address with the events each wants, send a test,
//! delete, and read the delivery log. Forms only store and queue; the `notifications` job
//! sends.

use crate::domain::accounts::notifications::{self, Created, NewChannel};
use crate::domain::accounts::Role;
use crate::domain::Error;
use crate::http::auth::Page;
use crate::http::router::Router;
use crate::http::web::form;
use crate::http::{error_page, Ctx, Method, Request, Response};
use crate::views::accounts::notifications as view;
use crate::views::Flash;

pub fn routes(r: &mut Router) {
    use Method::{Get, Post};
    r.pages(
        Role::User,
        &[
            (Get, "/settings/notifications", page),
            (Post, "/settings/notifications", create),
            (Post, "/settings/notifications/{id}/test", test),
            (Post, "/settings/notifications/{id}/delete", delete),
        ],
    );
}

const BACK: &str = "/settings/notifications";
/// Lines of the delivery log shown.
const LOG_LINES: i64 = 30;

fn view(ctx: &mut Ctx<'_>, p: &Page, new: Option<&Created>, flash: &Option<Flash>) -> Response {
    let channels = notifications::list_for(ctx.db, p.user.id).unwrap_or_default();
    let log = notifications::log_for(ctx.db, p.user.id, LOG_LINES).unwrap_or_default();
    let telegram = !ctx.app.config.telegram_bot_token.is_empty();
    Response::html(view::page(
        &p.nav,
        p.csrf(),
        &notifications::events_for(p.user.role),
        &channels,
        &log,
        telegram,
        new.and_then(|c| c.link_code.as_deref()),
        &p.kept,
        flash,
    ))
}

fn page(ctx: &mut Ctx<'_>, _: &Request, p: &Page) -> Response {
    view(ctx, p, None, &p.flash)
}

/// Answers with the page when a Telegram code was made (shown this once), else redirects.
fn create(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let f = req.form();
    let has_bot = !ctx.app.config.telegram_bot_token.is_empty();
    if let Err(e) = notifications::check_available(&f.text("kind"), has_bot) {
        return form::fail(ctx, req, &p.session, BACK, e);
    }
    if !f.0.iter().any(|(k, _)| k == "events") {
        return form::fail(ctx, req, &p.session, BACK, "Choose at least one event.");
    }
    let keys = ctx.app.keys.clone();
    let allow = ctx.app.config.webhook_allow_private;
    let (uid, role) = (p.user.id, p.user.role);
    let digits = crate::domain::base::money::currency_digits(&ctx.app.config.currency);
    form::submit(
        ctx,
        req,
        &p.session,
        BACK,
        |tx, f, now| {
            let events: Vec<&str> =
                f.0.iter()
                    .filter(|(k, _)| k == "events")
                    .map(|(_, v)| v.as_str())
                    .collect();
            let new = NewChannel {
                kind: f.get("kind").unwrap_or(""),
                url: f.get("url").unwrap_or(""),
                token: f.get("token").unwrap_or(""),
                chat_id: f.get("chat_id").unwrap_or(""),
                events,
                low_balance_minor: match f.text("low_balance").as_str() {
                    "" => None,
                    t => Some(
                        crate::domain::base::money::Money::parse(t, digits, false)
                            .ok_or_else(|| {
                                Error::invalid("The balance threshold is not an amount.")
                            })?
                            .0,
                    ),
                },
            };
            notifications::create(tx, &keys, uid, role, &new, allow, now)
        },
        |ctx, created| match created.link_code {
            Some(_) => view(ctx, p, Some(&created), &None).with_status(201),
            None => Response::redirect("/settings/notifications?m=saved"),
        },
    )
}

fn id_of(req: &Request) -> Option<i64> {
    req.param("id").and_then(|s| s.parse().ok())
}

fn test(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let Some(id) = id_of(req) else {
        return error_page(req, 404, "There is nothing at this address.");
    };
    let uid = p.user.id;
    form::submit(
        ctx,
        req,
        &p.session,
        BACK,
        |tx, _, now| notifications::queue_test(tx, uid, id, now),
        |_, ()| Response::redirect("/settings/notifications?m=test_queued"),
    )
}

fn delete(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let Some(id) = id_of(req) else {
        return error_page(req, 404, "There is nothing at this address.");
    };
    let uid = p.user.id;
    form::submit(
        ctx,
        req,
        &p.session,
        BACK,
        |tx, _, now| notifications::delete(tx, uid, id, now).map(|_| ()),
        |_, ()| Response::redirect("/settings/notifications?m=channel_deleted"),
    )
}
