//! The customer's webhook pages under `/settings/webhooks`: add, test and delete webhooks,
//! set the SMS-Activate-compatible URL, read a webhook's delivery log. Forms only queue and
//! store; the `webhooks` job does the sending.

use crate::db;
use crate::domain::accounts::Role;
use crate::domain::market::webhooks::{self, Created};
use crate::domain::{base::audit, Error};
use crate::http::auth::{Page, Signed};
use crate::http::router::Router;
use crate::http::web::flash_from_query;
use crate::http::{error_page, Ctx, Method, Request, Response};
use crate::views::market::webhooks::{self as view, NewSecret, Row};
use crate::views::{Flash, Nav};

pub fn routes(r: &mut Router) {
    r.page(Method::Get, "/settings/webhooks", Role::User, page);
    r.page(Method::Post, "/settings/webhooks", Role::User, create);
    r.page(
        Method::Post,
        "/settings/webhooks/sms-activate",
        Role::User,
        set_sms_activate,
    );
    r.page(Method::Get, "/settings/webhooks/{id}", Role::User, log_page);
    r.page(
        Method::Post,
        "/settings/webhooks/{id}/test",
        Role::User,
        test,
    );
    r.page(
        Method::Post,
        "/settings/webhooks/{id}/delete",
        Role::User,
        delete,
    );
}

fn row(ctx: &Ctx<'_>, webhook: webhooks::Webhook) -> Row {
    Row {
        last: webhooks::last_state(ctx.db, webhook.id).unwrap_or(None),
        webhook,
    }
}

fn view(
    ctx: &mut Ctx<'_>,
    s: &Signed,
    n: &Nav,
    new: Option<&Created>,
    flash: Option<Flash>,
    status: u16,
) -> Response {
    let rows: Vec<Row> = webhooks::list(ctx.db, s.user.id)
        .unwrap_or_default()
        .into_iter()
        .map(|w| row(ctx, w))
        .collect();
    let sa = webhooks::sms_activate(ctx.db, s.user.id)
        .unwrap_or(None)
        .map(|w| row(ctx, w));
    let secret = new.map(|c| NewSecret {
        url: &c.webhook.url,
        secret: &c.secret,
    });
    Response::html(view::list(n, s.csrf(), &rows, sa.as_ref(), secret, &flash)).with_status(status)
}

fn page(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    view(ctx, s, n, None, flash_from_query(req), 200)
}

fn create(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let form = req.form();
    let url = form.text("url");
    let events: Vec<String> = form
        .0
        .iter()
        .filter(|(k, _)| k == "events")
        .map(|(_, v)| v.clone())
        .collect();
    let now = ctx.now();
    let keys = ctx.app.keys.clone();
    let allow = ctx.app.config.webhook_allow_private;
    let ip = ctx.ip_hash(req);
    match db::write(ctx.db, |tx| {
        let c = webhooks::create(tx, &keys, s.user.id, &url, &events, allow, now)?;
        let host = webhooks::host_of(&c.webhook.url);
        audit::security(tx, Some(s.user.id), "webhook_created", &ip, &host, now)?;
        Ok(c)
    }) {
        Ok(c) => view(ctx, s, n, Some(&c), None, 201),
        Err(e) => view(
            ctx,
            s,
            n,
            None,
            Some(Flash::Err(e.to_string())),
            e.http_status(),
        ),
    }
}

fn set_sms_activate(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let url = req.form().text("url");
    let now = ctx.now();
    let keys = ctx.app.keys.clone();
    let allow = ctx.app.config.webhook_allow_private;
    let ip = ctx.ip_hash(req);
    match db::write(ctx.db, |tx| {
        let c = webhooks::set_sms_activate(tx, &keys, s.user.id, &url, allow, now)?;
        let detail = c
            .as_ref()
            .map(|c| webhooks::host_of(&c.webhook.url))
            .unwrap_or_default();
        audit::security(
            tx,
            Some(s.user.id),
            "webhook_sms_activate_set",
            &ip,
            &detail,
            now,
        )?;
        Ok(c)
    }) {
        Ok(Some(c)) => view(ctx, s, n, Some(&c), None, 200),
        Ok(None) => Response::redirect("/settings/webhooks?m=saved"),
        Err(e) => view(
            ctx,
            s,
            n,
            None,
            Some(Flash::Err(e.to_string())),
            e.http_status(),
        ),
    }
}

fn log_page(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let found = req
        .id_param("id")
        .ok_or(Error::NotFound("webhook"))
        .and_then(|id| webhooks::get_for(ctx.db, s.user.id, id));
    let w = match found {
        Ok(w) => w,
        Err(_) => return error_page(req, 404, "No such webhook."),
    };
    let deliveries = webhooks::deliveries(ctx.db, w.id, 100).unwrap_or_default();
    Response::html(view::log(
        n,
        s.csrf(),
        &w,
        &deliveries,
        &flash_from_query(req),
    ))
}

fn test(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such webhook.");
    };
    let now = ctx.now();
    match db::write(ctx.db, |tx| webhooks::queue_test(tx, s.user.id, id, now)) {
        Ok(_) => Response::redirect(&format!("/settings/webhooks/{id}?m=test_queued")),
        Err(e) => error_page(req, e.http_status(), &e.to_string()),
    }
}

fn delete(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such webhook.");
    };
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    match db::write(ctx.db, |tx| {
        let w = webhooks::delete(tx, s.user.id, id)?;
        let host = webhooks::host_of(&w.url);
        audit::security(tx, Some(s.user.id), "webhook_deleted", &ip, &host, now)
    }) {
        Ok(()) => Response::redirect("/settings/webhooks?m=webhook_deleted"),
        Err(e) => error_page(req, e.http_status(), &e.to_string()),
    }
}
