//! Top-ups through payment gateways: the wallet's form (`POST /wallet/topup`), the page a
//! customer comes back to from the gateway (`/wallet/topups/{id}`), and the admin's list with
//! its "ask the gateway" button. The gateway calls happen in `crate::payments`, between
//! transactions. Templates: `views::market::payments`.
//!
//! The form redirects to our own page of the top-up (`?go=1`), whose link (followed by its
//! script at once) leads to the gateway's checkout: the site's CSP allows forms to post only
//! to itself, including where their redirects lead.

use crate::domain::accounts::Role;
use crate::domain::market::payments::{self, Payment};
use crate::domain::trust::admin;
use crate::http::auth::Page;
use crate::http::router::Router;
use crate::http::web::{cur, form};
use crate::http::{error_page, Ctx, Method, Request, Response};
use crate::payments as gateways;
use crate::views::market::payments::{self as view, AdminRow};
use crate::views::Flash;

pub fn routes(r: &mut Router) {
    use Method::{Get, Post};
    r.pages(
        Role::User,
        &[
            (Post, "/wallet/topup", topup),
            (Get, "/wallet/topups/{id}", topup_page),
        ],
    );
    r.pages(
        Role::Admin,
        &[
            (Get, "/admin/payments", admin_list),
            (Post, "/admin/payments/{id}/check", admin_check),
        ],
    );
}

/// The wallet's top-up form, for `views::market::orders::wallet`.
pub fn recent(ctx: &Ctx<'_>, user_id: i64) -> Vec<Payment> {
    payments::for_user(ctx.db, user_id, 10).unwrap_or_default()
}

fn topup(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let f = req.form();
    let config = &ctx.app.config;
    let Some(gateway) = ctx.site.gateways.get(&f.text("gateway")) else {
        return form::fail(ctx, req, &p.session, "/wallet", "Choose a way to pay.");
    };
    let amount = match payments::parse_amount(
        &f.text("amount"),
        &config.currency,
        &gateways::limits(config),
    ) {
        Ok(a) => a,
        Err(e) => return form::fail(ctx, req, &p.session, "/wallet", e),
    };
    let app = ctx.app;
    match gateways::start(ctx.db, &app.config, gateway, p.user.id, amount, || {
        app.now()
    }) {
        Ok(payment) => Response::redirect(&format!("/wallet/topups/{}?go=1", payment.id)),
        Err(e) => form::fail(ctx, req, &p.session, "/wallet", e),
    }
}

fn topup_page(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such top-up.");
    };
    match payments::get_for(ctx.db, p.user.id, id) {
        Ok(payment) => Response::html(view::topup_page(&p.nav, &cur(ctx), &payment, &p.flash)),
        Err(e) => error_page(req, e.http_status(), &e.to_string()),
    }
}

/// Payments per page of the admin's list.
const PER_PAGE: i64 = 50;

fn admin_list(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let before: Option<i64> = req.query_param("before").and_then(|b| b.parse().ok());
    match form::acting(ctx, req, p, |tx, actor, now| {
        admin::view_payments(tx, actor, before, PER_PAGE + 1, now)
    }) {
        Ok(mut rows) => {
            let older = (rows.len() as i64 > PER_PAGE).then(|| {
                rows.truncate(PER_PAGE as usize);
                rows.last().map_or(0, |r| r.0.id)
            });
            let rows: Vec<AdminRow> = rows
                .into_iter()
                .map(|(p, email)| AdminRow { p, email })
                .collect();
            Response::html(view::admin_payments(
                &p.nav,
                p.csrf(),
                &cur(ctx),
                &rows,
                before.is_some(),
                older,
                &p.flash,
            ))
        }
        Err(e) => error_page(req, e.http_status(), &e.to_string()),
    }
}

/// Asks the payment's gateway for its state (outside any transaction) and writes what it
/// says; audited.
fn admin_check(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let Some(id) = req.id_param("id") else {
        return form::fail(ctx, req, &p.session, "/admin/payments", "No such payment.");
    };
    let payment = match form::acting(ctx, req, p, |tx, actor, now| {
        admin::check_payment(tx, actor, id, now)
    }) {
        Ok(payment) => payment,
        Err(e) => return form::fail(ctx, req, &p.session, "/admin/payments", e),
    };
    let Some(gateway) = ctx.site.gateways.get(&payment.gateway) else {
        return form::fail(
            ctx,
            req,
            &p.session,
            "/admin/payments",
            format!("The gateway {} is off (no key is set).", payment.gateway),
        );
    };
    let app = ctx.app;
    match gateways::check(ctx.db, &app.config, gateway, &payment, || app.now()) {
        Ok(status) => {
            let after = payments::get(ctx.db, id)
                .map(|p| p.status.as_str())
                .unwrap_or("?");
            let msg = format!(
                "{} says top-up #{id} is {status}; it is {after} here.",
                payment.gateway
            );
            form::tell(ctx, &p.session, "/admin/payments", Flash::Ok(msg))
        }
        Err(e) => form::fail(ctx, req, &p.session, "/admin/payments", e),
    }
}
