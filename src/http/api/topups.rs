//! Top-ups through payment gateways in the native API: `POST /api/v1/topups` opens a
//! checkout at the gateway (between two transactions, see `crate::payments::start`) and
//! answers its URL; `GET /api/v1/topups/{id}` shows the state, which becomes `paid` when the
//! gateway's signed notice has landed. The amount credited is the one the gateway confirms.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{body, error};
use crate::clock::format_rfc3339;
use crate::domain::accounts::{Role, User};
use crate::domain::base::money::{currency_digits, Money};
use crate::domain::market::payments::{self, Payment};
use crate::domain::Error;
use crate::http::router::Router;
use crate::http::{Ctx, Method, Request, Response};
use crate::payments as gateways;

pub fn routes(r: &mut Router) {
    use Method::{Get, Post};
    r.apis(
        Role::User,
        &[
            (Post, "/api/v1/topups", post_topup),
            (Get, "/api/v1/topups/{id}", get_topup),
        ],
    );
}

/// A top-up as the API shows it.
pub fn topup_json(ctx: &Ctx<'_>, p: &Payment) -> Value {
    let digits = currency_digits(&ctx.app.config.currency);
    json!({
        "id": p.id,
        "gateway": p.gateway,
        "status": p.status.as_str(),
        "amount": Money(p.amount_minor).decimal(digits),
        "amount_minor": p.amount_minor,
        "credited_minor": p.credited_minor,
        "credited": Money(p.credited_minor).decimal(digits),
        "reversed_minor": p.reversed_minor,
        "currency": p.currency,
        "checkout_url": p.checkout_url,
        "created_at": format_rfc3339(p.created_at),
        "paid_at": p.paid_at.map(format_rfc3339),
    })
}

#[derive(Deserialize)]
struct TopupBody {
    gateway: String,
    amount: String,
}

fn post_topup(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let b: TopupBody = match body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let site = ctx.site;
    let Some(gateway) = site.gateways.get(&b.gateway) else {
        return Response::json_error(
            404,
            "not_found",
            &format!(
                "The payment gateway `{}` is not available on this site.",
                b.gateway
            ),
        );
    };
    let app = ctx.app;
    let amount = match payments::parse_amount(
        &b.amount,
        &app.config.currency,
        &gateways::limits(&app.config),
    ) {
        Ok(a) => a,
        Err(e) => return error(&e),
    };
    match gateways::start(ctx.db, &app.config, gateway, user.id, amount, || app.now()) {
        Ok(p) => Response::json(201, &topup_json(ctx, &p))
            .with_header("Location", &format!("/api/v1/topups/{}", p.id)),
        Err(e) => error(&e),
    }
}

fn get_topup(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let Some(id) = req.id_param("id") else {
        return error(&Error::NotFound("top-up"));
    };
    match payments::get_for(ctx.db, user.id, id) {
        Ok(p) => Response::json(200, &topup_json(ctx, &p)),
        Err(e) => error(&e),
    }
}
