//! The customer's webhook pages under `/settings/webhooks`: add, test and delete webhooks,
//! set the SMS-Activate-compatible URL, read a webhook's delivery log. Forms only queue and
//! store; the `webhooks` job does the sending.

use rusqlite::Connection;

use crate::clock::Timestamp;
use crate::domain::accounts::Role;
use crate::domain::base::crypto::Keys;
use crate::domain::market::webhooks::{self, Created};
use crate::domain::Result as DomainResult;
use crate::domain::{base::audit, Error};
use crate::http::auth::Page;
use crate::http::request::Form;
use crate::http::router::Router;
use crate::http::web::form;
use crate::http::{error_page, Ctx, Method, Request, Response};
use crate::views::market::webhooks::{self as view, NewSecret, Row};
use crate::views::{Flash, Kept};

pub fn routes(r: &mut Router) {
    use Method::{Get, Post};
    r.pages(
        Role::User,
        &[
            (Get, "/settings/webhooks", page),
            (Post, "/settings/webhooks", create),
            (Post, "/settings/webhooks/sms-activate", set_sms_activate),
            (Get, "/settings/webhooks/{id}", log_page),
            (Post, "/settings/webhooks/{id}/test", test),
            (Post, "/settings/webhooks/{id}/delete", delete),
        ],
    );
}

fn row(ctx: &Ctx<'_>, webhook: webhooks::Webhook) -> Row {
    Row {
        last: webhooks::last_state(ctx.db, webhook.id).unwrap_or(None),
        webhook,
    }
}

/// The list page; `new` is a secret just issued, shown in the answer to its POST only.
fn view(ctx: &mut Ctx<'_>, p: &Page, new: Option<&Created>, flash: &Option<Flash>) -> Response {
    let rows: Vec<Row> = webhooks::list(ctx.db, p.user.id)
        .unwrap_or_default()
        .into_iter()
        .map(|w| row(ctx, w))
        .collect();
    let sa = webhooks::sms_activate(ctx.db, p.user.id)
        .unwrap_or(None)
        .map(|w| row(ctx, w));
    let secret = new.map(|c| NewSecret {
        url: &c.webhook.url,
        secret: &c.secret,
    });
    let kept = if new.is_some() {
        &Kept::default()
    } else {
        &p.kept
    };
    Response::html(view::list(
        &p.nav,
        p.csrf(),
        &rows,
        sa.as_ref(),
        secret,
        kept,
        flash,
    ))
}

const BACK: &str = "/settings/webhooks";

fn page(ctx: &mut Ctx<'_>, _: &Request, p: &Page) -> Response {
    view(ctx, p, None, &p.flash)
}

/// What a webhook form stores, in its transaction: the webhook with its new secret, if one
/// was made.
type Save<'f> = dyn FnOnce(&Connection, &Keys, i64, &Form, bool, Timestamp) -> DomainResult<Option<Created>>
    + Send
    + 'f;

/// Stores a webhook form in one transaction and records `event` with the URL's host. A new
/// secret is shown in the answer to this POST (with `status`), the only time it is shown;
/// otherwise the browser goes back to the list.
fn save(
    ctx: &mut Ctx<'_>,
    req: &Request,
    p: &Page,
    event: &str,
    status: u16,
    store: Box<Save<'_>>,
) -> Response {
    let keys = ctx.app.keys.clone();
    let allow = ctx.app.config.webhook_allow_private;
    let ip = ctx.ip_hash(req);
    let uid = p.user.id;
    form::submit(
        ctx,
        req,
        &p.session,
        BACK,
        |tx, f, now| {
            let c = store(tx, &keys, uid, f, allow, now)?;
            let host = c
                .as_ref()
                .map(|c| webhooks::host_of(&c.webhook.url))
                .unwrap_or_default();
            audit::security(tx, Some(uid), event, &ip, &host, now)?;
            Ok(c)
        },
        |ctx, c| match c {
            Some(c) => view(ctx, p, Some(&c), &None).with_status(status),
            None => Response::redirect("/settings/webhooks?m=saved"),
        },
    )
}

fn create(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let store = Box::new(|tx: &Connection, keys: &Keys, uid, f: &Form, allow, now| {
        let events: Vec<String> =
            f.0.iter()
                .filter(|(k, _)| k == "events")
                .map(|(_, v)| v.clone())
                .collect();
        webhooks::create(tx, keys, uid, &f.text("url"), &events, allow, now).map(Some)
    });
    save(ctx, req, p, "webhook_created", 201, store)
}

/// Saving a URL makes a new secret; an empty URL removes the webhook.
fn set_sms_activate(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let store = Box::new(|tx: &Connection, keys: &Keys, uid, f: &Form, allow, now| {
        webhooks::set_sms_activate(tx, keys, uid, &f.text("url"), allow, now)
    });
    save(ctx, req, p, "webhook_sms_activate_set", 200, store)
}

fn log_page(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let found = req
        .id_param("id")
        .ok_or(Error::NotFound("webhook"))
        .and_then(|id| webhooks::get_for(ctx.db, p.user.id, id));
    let w = match found {
        Ok(w) => w,
        Err(_) => return error_page(req, 404, "No such webhook."),
    };
    let deliveries = webhooks::deliveries(ctx.db, w.id, 100).unwrap_or_default();
    Response::html(view::log(&p.nav, p.csrf(), &w, &deliveries, &p.flash))
}

fn test(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let Some(id) = req.id_param("id") else {
        return form::fail(ctx, req, &p.session, BACK, "No such webhook.");
    };
    let uid = p.user.id;
    form::submit(
        ctx,
        req,
        &p.session,
        BACK,
        |tx, _, now| webhooks::queue_test(tx, uid, id, now),
        |_, _| Response::redirect(&format!("/settings/webhooks/{id}?m=test_queued")),
    )
}

fn delete(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let Some(id) = req.id_param("id") else {
        return form::fail(ctx, req, &p.session, BACK, "No such webhook.");
    };
    let ip = ctx.ip_hash(req);
    let uid = p.user.id;
    form::submit(
        ctx,
        req,
        &p.session,
        BACK,
        |tx, _, now| {
            let w = webhooks::delete(tx, uid, id)?;
            let host = webhooks::host_of(&w.url);
            audit::security(tx, Some(uid), "webhook_deleted", &ip, &host, now)
        },
        |_, ()| Response::redirect("/settings/webhooks?m=webhook_deleted"),
    )
}
