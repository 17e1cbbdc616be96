//! The native JSON API under `/api/v1`, used by the dashboard's script and by customers.
//! Authenticated by `Authorization: Bearer <API key>` or by the session cookie (then unsafe
//! methods also need the `X-CSRF-Token` header). Errors are `{"error":{"code","message"}}`
//! with a fitting HTTP status. The admin routes are in [`admin`], the webhook routes in [`webhooks`]. Every route is
//! described in `openapi.json` (served at `/api/v1/openapi.json`); `tests/openapi.rs` proves
//! the two agree.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::router::Router;
use crate::http::server::longpoll;
use crate::http::Method;
use crate::http::{Ctx, Request, Response};
use rusqlite::Connection;

use crate::app::App;
use crate::clock::format_rfc3339;
use crate::db;
use crate::domain::accounts::{Role, User};
use crate::domain::base::money::{currency_digits, Money};
use crate::domain::market::activations::{
    self, Activation, CancelReason, OrderRequest, Placed, Status,
};
use crate::domain::market::rentals::{self, RentRequest, Rental};
use crate::domain::supply::stats;
use crate::domain::{
    accounts::apikeys, base::audit, market::catalogue, market::inbox, market::vouchers,
    market::wallet, Error,
};

pub mod admin;
pub mod contract;
pub mod notifications;
pub mod topups;
pub mod webhooks;

/// The OpenAPI 3.0 document of the native API: the one description of every `/api/v1` route.
pub const OPENAPI: &str = include_str!("openapi.json");

pub fn routes(r: &mut Router) {
    use Method::{Delete, Get, Post};
    r.publics(&[
        (Get, "/api/v1/openapi.json", get_openapi),
        (Get, "/api/v1/catalogue", get_catalogue),
    ]);
    r.apis(
        Role::User,
        &[
            (Get, "/api/v1/balance", get_balance),
            (Get, "/api/v1/ledger", get_ledger),
            (Post, "/api/v1/activations", post_activation),
            (Get, "/api/v1/activations", list_activations),
            (Get, "/api/v1/activations/{id}", get_activation),
            (Post, "/api/v1/activations/{id}/cancel", cancel_activation),
            (Post, "/api/v1/activations/{id}/used", used_activation),
            (
                Post,
                "/api/v1/activations/{id}/complete",
                complete_activation,
            ),
            (Post, "/api/v1/activations/{id}/retry", retry_activation),
            (Post, "/api/v1/activations/{id}/ready", ready_activation),
            (Post, "/api/v1/rentals", post_rental),
            (Get, "/api/v1/rentals", list_rentals),
            (Get, "/api/v1/rentals/{id}", get_rental),
            (Post, "/api/v1/rentals/{id}/cancel", cancel_rental),
            (Post, "/api/v1/rentals/{id}/finish", finish_rental),
            (Post, "/api/v1/rentals/{id}/extend", extend_rental),
            (Get, "/api/v1/keys", list_keys),
            (Post, "/api/v1/keys", create_key),
            (Delete, "/api/v1/keys/{id}", revoke_key),
            (Post, "/api/v1/vouchers/redeem", redeem_voucher),
        ],
    );
}

/// The JSON error for a domain error.
pub fn error(e: &Error) -> Response {
    if let Error::Db(inner) = e {
        log::error!("database error in API: {inner}");
    }
    let mut body = json!({"error": {"code": e.code(), "message": e.to_string()}});
    match e {
        Error::WrongMaxPrice { min_minor } => body["error"]["min_price_minor"] = json!(min_minor),
        Error::EarlyCancel { seconds_left } => body["error"]["seconds_left"] = json!(seconds_left),
        _ => {}
    }
    let resp = Response::json(e.http_status(), &body);
    match e {
        Error::Throttled { retry_after } => {
            resp.with_header("Retry-After", &retry_after.to_string())
        }
        Error::EarlyCancel { seconds_left } => {
            resp.with_header("Retry-After", &seconds_left.to_string())
        }
        _ => resp,
    }
}

/// The JSON body as `T`, or a 400 error. Every operation with a body requires one (the
/// OpenAPI document says `required: true`), so an empty body is refused too: `{}` is how a
/// caller asks for every default.
pub fn body<T: for<'de> Deserialize<'de>>(req: &Request) -> Result<T, Response> {
    if req.body.is_empty() {
        return Err(Response::json_error(
            400,
            "invalid_request",
            "A JSON body is required (`{}` for the defaults).",
        ));
    }
    serde_json::from_slice(&req.body).map_err(|e| {
        Response::json_error(
            400,
            "invalid_request",
            &format!("The JSON body is not valid: {e}"),
        )
    })
}

/// An integer query parameter as the OpenAPI document states it: absent, `default`; given
/// once as an integer in `min..=max`, its value. Anything else (not an integer, `null`, empty,
/// out of range, or given more than once) is a 400 naming the parameter and its range.
pub fn int_query(
    req: &Request,
    name: &str,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, Response> {
    let values: Vec<String> = req
        .query_pairs()
        .into_iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v)
        .collect();
    let refuse = |why: &str| {
        let range = if max == i64::MAX {
            format!("an integer of at least {min}")
        } else {
            format!("an integer from {min} to {max}")
        };
        Response::json_error(
            400,
            "invalid_request",
            &format!("`{name}` {why}: give it once, as {range}."),
        )
    };
    match values.as_slice() {
        [] => Ok(default),
        [one] => match one.parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            Ok(_) => Err(refuse("is out of range")),
            Err(_) => Err(refuse("is not an integer")),
        },
        _ => Err(refuse("is given more than once")),
    }
}

fn money(ctx: &Ctx<'_>, minor: i64) -> String {
    Money(minor).decimal(currency_digits(&ctx.app.config.currency))
}

/// The activation as the API shows it (messages only to the owner, which callers ensure).
pub fn activation_json(ctx: &Ctx<'_>, a: &Activation) -> Value {
    activation_view(ctx.app, ctx.db, a)
}

/// [`activation_json`] from the app and a connection (long-poll renders have no `Ctx`).
pub fn activation_view(app: &App, db: &Connection, a: &Activation) -> Value {
    let messages = inbox::for_activation(db, a.id).unwrap_or_default();
    let code = messages.iter().rev().find_map(|m| m.code.clone());
    let now = app.now();
    let cancel_at = a.created_at + app.config.early_cancel as i64;
    json!({
        "id": a.id,
        "phone": a.phone,
        "country": a.country_id,
        "service": a.service,
        "operator": a.operator,
        "status": a.status,
        "price_minor": a.price_minor,
        "price": Money(a.price_minor).decimal(currency_digits(&app.config.currency)),
        "currency": app.config.currency,
        "code": code,
        "messages": messages.iter().map(|m| json!({
            "sender": m.sender, "text": m.text, "code": m.code,
            "received_at": format_rfc3339(m.received_at),
        })).collect::<Vec<_>>(),
        "order_id": a.client_order_id,
        "created_at": format_rfc3339(a.created_at),
        "expires_at": format_rfc3339(a.expires_at),
        "ended_at": a.ended_at.map(format_rfc3339),
        "seconds_left": if a.status.is_live() { (a.expires_at - now).max(0) } else { 0 },
        "cancel_in": if a.status == Status::Waiting { (cancel_at - now).max(0) } else { 0 },
    })
}

pub fn rental_json(ctx: &Ctx<'_>, r: &Rental) -> Value {
    let messages = inbox::for_rental(ctx.db, r.id).unwrap_or_default();
    json!({
        "id": r.id,
        "phone": r.phone,
        "country": r.country_id,
        "service": r.service,
        "status": r.status,
        "hours": r.hours,
        "paid_minor": r.paid_minor,
        "hour_price_minor": r.hour_minor,
        "auto_renew": r.auto_renew,
        "messages": messages.iter().map(|m| json!({
            "sender": m.sender, "text": m.text, "code": m.code,
            "received_at": format_rfc3339(m.received_at),
        })).collect::<Vec<_>>(),
        "created_at": format_rfc3339(r.created_at),
        "expires_at": format_rfc3339(r.expires_at),
        "ended_at": r.ended_at.map(format_rfc3339),
    })
}

fn get_openapi(_: &mut Ctx<'_>, _: &Request) -> Response {
    Response::new(200, crate::http::response::JSON, OPENAPI)
}

fn get_catalogue(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    let country = req.query_param("country").and_then(|c| c.parse().ok());
    let service = req.query_param("service");
    let now = ctx.now();
    let result = (|| -> Result<Value, Error> {
        let countries: Vec<Value> = catalogue::countries(ctx.db)?
            .into_iter()
            .filter(|c| c.enabled)
            .map(|c| json!({"id": c.id, "iso": c.iso, "name": c.name, "prefix": c.prefix}))
            .collect();
        let services: Vec<Value> = catalogue::services(ctx.db)?
            .into_iter()
            .filter(|s| s.enabled)
            .map(|s| json!({"code": s.code, "name": s.name}))
            .collect();
        let rates = match country {
            Some(c) => stats::success_in(ctx.db, c)?,
            None => stats::success_table(ctx.db)?,
        };
        let offers: Vec<Value> = catalogue::offers(
            ctx.db,
            country,
            service.as_deref(),
            ctx.app.config.reuse_cooldown,
            now,
        )?
        .into_iter()
        .map(|o| {
            let rate = rates.get(o.country, &o.service);
            json!({
                "country": o.country,
                "service": o.service,
                "price_minor": o.price_minor,
                "rent_hour_minor": o.rent_hour_minor,
                "stock": o.stock,
                "success_rate": success_json(&rate),
            })
        })
        .collect();
        Ok(json!({
            "currency": ctx.app.config.currency,
            "countries": countries,
            "services": services,
            "offers": offers,
        }))
    })();
    match result {
        Ok(v) => Response::json(200, &v),
        Err(e) => error(&e),
    }
}

/// A 7-day success rate as the API shows it (`SuccessRate` in the document).
pub fn success_json(r: &stats::Rate) -> Value {
    json!({"orders": r.orders, "coded": r.coded.clamp(0, r.orders), "percent": r.percent()})
}

fn get_balance(ctx: &mut Ctx<'_>, _req: &Request, user: &User) -> Response {
    Response::json(
        200,
        &json!({
            "balance_minor": user.balance_minor,
            "balance": money(ctx, user.balance_minor),
            "currency": ctx.app.config.currency,
        }),
    )
}

fn get_ledger(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let before = match req.query_param("before") {
        None => None,
        Some(_) => match int_query(req, "before", 0, 0, i64::MAX) {
            Ok(b) => Some(b),
            Err(r) => return r,
        },
    };
    let limit = match int_query(req, "limit", 50, 1, 500) {
        Ok(l) => l,
        Err(r) => return r,
    };
    match wallet::entries(ctx.db, user.id, limit, before) {
        Ok(rows) => Response::json(200, &json!({"entries": rows})),
        Err(e) => error(&e),
    }
}

#[derive(Deserialize)]
struct OrderBody {
    country: i64,
    service: String,
    operator: Option<String>,
    max_price_minor: Option<i64>,
    order_id: Option<String>,
    #[serde(default)]
    exclude_prefixes: Vec<String>,
}

fn post_activation(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let b: OrderBody = match body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let order = OrderRequest {
        country: b.country,
        service: b.service,
        operator: b.operator,
        max_price_minor: b.max_price_minor,
        client_order_id: b.order_id,
        exclude_prefixes: b.exclude_prefixes,
        ..Default::default()
    };
    match ctx.place_order(user, std::slice::from_ref(&order), |_| false) {
        Ok(Placed::New(a)) => Response::json(201, &activation_json(ctx, &a)),
        Ok(Placed::Existing(a)) => Response::json(200, &activation_json(ctx, &a)),
        Err(e) => error(&e),
    }
}

/// The deepest `offset` of a list: deeper pages are reached with `before`.
pub const MAX_OFFSET: i64 = 10_000;

fn list_activations(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    // The contract (`contract.rs`) has checked the list against the document's enum.
    let live = [Status::Waiting, Status::Received, Status::Retry];
    let mut statuses: Vec<Status> = Vec::new();
    for name in req.query_param("status").unwrap_or_default().split(',') {
        match name {
            "" | "all" => {
                statuses.clear();
                break;
            }
            "live" => statuses.extend(live),
            other => match Status::parse(other) {
                Some(s) => statuses.push(s),
                None => return Response::json_error(400, "invalid_request", "Unknown status."),
            },
        }
    }
    let limit = match int_query(req, "limit", 50, 1, 200) {
        Ok(l) => l,
        Err(r) => return r,
    };
    // Keyset paging: `before` is the id of the last activation of the previous page. The
    // older `offset` costs what it skips, so it is bounded (MAX_OFFSET).
    let before = match int_query(req, "before", i64::MAX, 0, i64::MAX) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let offset = match int_query(req, "offset", 0, 0, MAX_OFFSET) {
        Ok(o) => o,
        Err(r) => return r,
    };
    match activations::list_before(ctx.db, user.id, &statuses, Some(before), offset + limit) {
        Ok(list) => {
            let items: Vec<Value> = list
                .iter()
                .skip(offset as usize)
                .map(|a| activation_json(ctx, a))
                .collect();
            Response::json(200, &json!({"activations": items}))
        }
        Err(e) => error(&e),
    }
}

fn with_activation(
    ctx: &mut Ctx<'_>,
    req: &Request,
    user: &User,
    f: impl Fn(&rusqlite::Connection, i64, i64, i64) -> Result<Activation, Error> + Sync,
) -> Response {
    let Some(id) = req.id_param("id") else {
        return error(&Error::NotFound("activation"));
    };
    let now = ctx.now();
    // Prechecked: an order's actions check its state before their first change.
    match db::write_prechecked(ctx.db, |tx| f(tx, user.id, id, now)) {
        Ok(a) => {
            ctx.app.notify();
            Response::json(200, &activation_json(ctx, &a))
        }
        Err(e) => error(&e),
    }
}

fn get_activation(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let Some(id) = req.id_param("id") else {
        return error(&Error::NotFound("activation"));
    };
    // `?wait=N` (seconds, at most 30): answer when the status or the messages change.
    let user_id = user.id;
    longpoll::answer(
        ctx,
        longpoll::wait_param(req),
        move |app, db| match activations::get_for(db, user_id, id) {
            Ok(a) => {
                let view = activation_view(app, db, &a);
                let state = a.status.is_live().then(|| {
                    format!(
                        "{}:{}",
                        a.status.as_str(),
                        view["messages"].as_array().map_or(0, Vec::len)
                    )
                });
                (state, Response::json(200, &view))
            }
            Err(e) => (None, error(&e)),
        },
    )
}

fn cancel_activation(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let policy = ctx.app.policy();
    with_activation(ctx, req, user, |tx, u, id, now| {
        activations::cancel(tx, u, id, CancelReason::Cancel, &policy, now)
    })
}

fn used_activation(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let policy = ctx.app.policy();
    with_activation(ctx, req, user, |tx, u, id, now| {
        activations::cancel(tx, u, id, CancelReason::NumberUsed, &policy, now)
    })
}

fn complete_activation(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let policy = ctx.app.policy();
    with_activation(ctx, req, user, |tx, u, id, now| {
        activations::complete(tx, u, id, &policy, now)
    })
}

fn retry_activation(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let policy = ctx.app.policy();
    with_activation(ctx, req, user, |tx, u, id, now| {
        activations::retry(tx, u, id, &policy, now)
    })
}

fn ready_activation(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    with_activation(ctx, req, user, |tx, u, id, now| {
        activations::mark_ready(tx, u, id, now)
    })
}

#[derive(Deserialize)]
struct RentBody {
    country: i64,
    service: String,
    hours: i64,
    #[serde(default)]
    auto_renew: bool,
    #[serde(default)]
    webhook_url: String,
}

fn post_rental(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let b: RentBody = match body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let rr = RentRequest {
        country: b.country,
        service: b.service,
        hours: b.hours,
        auto_renew: b.auto_renew,
        webhook_url: b.webhook_url,
    };
    let policy = ctx.app.policy();
    let now = ctx.now();
    match db::write(ctx.db, |tx| rentals::rent(tx, user, &rr, &policy, now)) {
        Ok(r) => Response::json(201, &rental_json(ctx, &r)),
        Err(e) => error(&e),
    }
}

fn list_rentals(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let active = req.query_param("status").as_deref() == Some("active");
    match rentals::list(ctx.db, user.id, active, 200) {
        Ok(list) => {
            let items: Vec<Value> = list.iter().map(|r| rental_json(ctx, r)).collect();
            Response::json(200, &json!({"rentals": items}))
        }
        Err(e) => error(&e),
    }
}

fn get_rental(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let Some(id) = req.id_param("id") else {
        return error(&Error::NotFound("rental"));
    };
    match rentals::get_for(ctx.db, user.id, id) {
        Ok(r) => Response::json(200, &rental_json(ctx, &r)),
        Err(e) => error(&e),
    }
}

fn with_rental(
    ctx: &mut Ctx<'_>,
    req: &Request,
    user: &User,
    f: impl FnOnce(&rusqlite::Connection, i64, i64, i64) -> Result<Rental, Error> + Send,
) -> Response {
    let Some(id) = req.id_param("id") else {
        return error(&Error::NotFound("rental"));
    };
    let now = ctx.now();
    match db::write(ctx.db, |tx| f(tx, user.id, id, now)) {
        Ok(r) => Response::json(200, &rental_json(ctx, &r)),
        Err(e) => error(&e),
    }
}

fn cancel_rental(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    with_rental(ctx, req, user, |tx, u, id, now| {
        rentals::cancel(tx, u, id, now)
    })
}

fn finish_rental(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let policy = ctx.app.policy();
    with_rental(ctx, req, user, |tx, u, id, now| {
        rentals::finish(tx, u, id, &policy, now)
    })
}

#[derive(Deserialize)]
struct ExtendBody {
    hours: i64,
}

fn extend_rental(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let b: ExtendBody = match body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    with_rental(ctx, req, user, |tx, u, id, now| {
        rentals::extend(tx, u, id, b.hours, now)
    })
}

fn list_keys(ctx: &mut Ctx<'_>, _req: &Request, user: &User) -> Response {
    match apikeys::list(ctx.db, user.id) {
        Ok(keys) => Response::json(200, &json!({"keys": keys})),
        Err(e) => error(&e),
    }
}

#[derive(Deserialize)]
struct KeyBody {
    #[serde(default)]
    name: String,
}

fn create_key(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let b: KeyBody = match body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let now = ctx.now();
    let keys = ctx.app.keys.clone();
    let ip = ctx.ip_hash(req);
    match db::write(ctx.db, |tx| {
        let k = apikeys::create(tx, &keys, user.id, &b.name, now)?;
        audit::security(
            tx,
            Some(user.id),
            audit::API_KEY_CREATED,
            &ip,
            &k.0.name,
            now,
        )?;
        Ok(k)
    }) {
        Ok((k, secret)) => Response::json(
            201,
            &json!({"key": secret, "id": k.id, "name": k.name, "prefix": k.prefix}),
        ),
        Err(e) => error(&e),
    }
}

fn revoke_key(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let Some(id) = req.id_param("id") else {
        return error(&Error::NotFound("API key"));
    };
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    match db::write(ctx.db, |tx| {
        apikeys::revoke(tx, user.id, id, now)?;
        audit::security(
            tx,
            Some(user.id),
            audit::API_KEY_REVOKED,
            &ip,
            &id.to_string(),
            now,
        )
    }) {
        Ok(()) => Response::empty(204),
        Err(e) => error(&e),
    }
}

#[derive(Deserialize)]
struct RedeemBody {
    code: String,
}

fn redeem_voucher(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let b: RedeemBody = match body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let now = ctx.now();
    let keys = ctx.app.keys.clone();
    match db::write(ctx.db, |tx| {
        vouchers::redeem(tx, &keys, user.id, &b.code, now)
    }) {
        Ok(amount) => {
            let balance = wallet::balance(ctx.db, user.id).unwrap_or(0);
            Response::json(
                200,
                &json!({"credited_minor": amount, "balance_minor": balance}),
            )
        }
        Err(e) => error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Layers};

    /// The document parses, and every `/api/v1` route of the router has an operation in it
    /// (the integration test `tests/openapi.rs` checks the answers against the schemas).
    #[test]
    fn the_openapi_document_covers_every_route() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.0.3");
        let config = Config::from_layers(&Layers::default()).unwrap();
        let router = crate::http::build_router(&config);
        let mut seen = 0;
        for route in router.routes() {
            let (method, path) = (route.method, route.pattern.as_str());
            if !path.starts_with("/api/v1/") {
                continue;
            }
            seen += 1;
            let m = method.as_str().to_ascii_lowercase();
            assert!(
                doc["paths"][path][&m].is_object(),
                "{} {path} is not in openapi.json",
                method.as_str()
            );
        }
        assert!(seen > 30, "only {seen} API routes");
    }
}
