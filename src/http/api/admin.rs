//! The admin part of the native API, under `/api/v1/admin`: accounts (list, show, role,
//! state), credit, vouchers, prices and catalogue switches. Same authentication as the rest
//! of the API ([`caller`]), and the account must be an administrator (403 otherwise).
//! Every change goes through `domain::trust::admin`, the same functions the admin pages use, so it
//! is checked and audited exactly like them.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::clock::format_rfc3339;
use crate::db;
use crate::domain::accounts::{self, Role, State, User};
use crate::domain::base::audit::Actor;
use crate::domain::base::money::{currency_digits, Money};
use crate::domain::market::catalogue::{self, Price};
use crate::domain::trust::admin;
use crate::domain::{market::vouchers, Error};
use crate::http::api::{body, error};
use crate::http::router::Router;
use crate::http::Method;
use crate::http::{Ctx, Request, Response};

pub fn routes(r: &mut Router) {
    use Method::{Get, Post};
    r.apis(
        Role::Admin,
        &[
            (Get, "/api/v1/admin/users", list_users),
            (Get, "/api/v1/admin/users/{id}", get_user),
            (Post, "/api/v1/admin/users/{id}/role", set_role),
            (Post, "/api/v1/admin/users/{id}/state", set_state),
            (Post, "/api/v1/admin/users/{id}/credit", credit),
            (Get, "/api/v1/admin/vouchers", list_vouchers),
            (Post, "/api/v1/admin/vouchers", create_vouchers),
            (Get, "/api/v1/admin/prices", list_prices),
            (Post, "/api/v1/admin/prices", set_price),
            (
                Post,
                "/api/v1/admin/catalogue/countries/{id}",
                switch_country,
            ),
            (
                Post,
                "/api/v1/admin/catalogue/services/{code}",
                switch_service,
            ),
        ],
    );
}

macro_rules! body_or_return {
    ($req:expr) => {
        match body($req) {
            Ok(b) => b,
            Err(r) => return r,
        }
    };
}

fn digits(ctx: &Ctx<'_>) -> u32 {
    currency_digits(&ctx.app.config.currency)
}

fn user_json(ctx: &Ctx<'_>, u: &User) -> Value {
    json!({
        "id": u.id,
        "email": u.email,
        "display_name": u.display_name,
        "role": u.role.as_str(),
        "state": u.state.as_str(),
        "state_reason": u.state_reason,
        "email_verified": u.is_verified(),
        "balance_minor": u.balance_minor,
        "balance": Money(u.balance_minor).decimal(digits(ctx)),
        "currency": ctx.app.config.currency,
        "created_at": format_rfc3339(u.created_at),
    })
}

/// `GET /api/v1/admin/users?q=&limit=&before=&offset=`: search by e-mail or name fragment,
/// newest first; `before` pages by keyset, `offset` is bounded.
fn list_users(ctx: &mut Ctx<'_>, req: &Request, _user: &User) -> Response {
    let q = req.query_param("q").unwrap_or_default();
    let (limit, before, offset) = match (
        super::int_query(req, "limit", 50, 1, 200),
        super::int_query(req, "before", i64::MAX, 0, i64::MAX),
        super::int_query(req, "offset", 0, 0, super::MAX_OFFSET),
    ) {
        (Ok(l), Ok(b), Ok(o)) => (l, b, o),
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r,
    };
    match accounts::search(ctx.db, &q, Some(before), offset + limit) {
        Ok(list) => {
            let users: Vec<Value> = list
                .iter()
                .skip(offset as usize)
                .map(|u| user_json(ctx, u))
                .collect();
            Response::json(
                200,
                &json!({"users": users, "limit": limit, "offset": offset}),
            )
        }
        Err(e) => error(&e),
    }
}

/// `GET /api/v1/admin/users/{id}`: the account and its 20 latest ledger entries (the
/// reading of the ledger is audited, like the admin page's).
fn get_user(ctx: &mut Ctx<'_>, req: &Request, me: &User) -> Response {
    let Some(id) = req.id_param("id") else {
        return error(&Error::NotFound("account"));
    };
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    let actor = Actor {
        id: me.id,
        ip_hash: &ip,
    };
    match db::write(ctx.db, |tx| admin::view_ledger(tx, actor, id, 20, now)) {
        Ok((u, ledger)) => {
            let mut v = user_json(ctx, &u);
            v["ledger"] = json!(ledger);
            Response::json(200, &v)
        }
        Err(e) => error(&e),
    }
}

/// Runs an audited admin change on account `{id}` and answers with the account after it.
fn change_user(
    ctx: &mut Ctx<'_>,
    req: &Request,
    me: &User,
    f: impl FnOnce(&rusqlite::Connection, Actor<'_>, i64, i64) -> Result<User, Error> + Send,
) -> Response {
    let Some(id) = req.id_param("id") else {
        return error(&Error::NotFound("account"));
    };
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    let actor = Actor {
        id: me.id,
        ip_hash: &ip,
    };
    match db::write(ctx.db, |tx| f(tx, actor, id, now)) {
        Ok(u) => Response::json(200, &user_json(ctx, &u)),
        Err(e) => error(&e),
    }
}

#[derive(Deserialize)]
struct RoleBody {
    role: String,
}

fn set_role(ctx: &mut Ctx<'_>, req: &Request, me: &User) -> Response {
    let b: RoleBody = body_or_return!(req);
    let Some(role) = Role::parse(&b.role) else {
        return error(&Error::invalid("The role must be user, operator or admin."));
    };
    change_user(ctx, req, me, |tx, actor, id, now| {
        admin::set_role(tx, actor, id, role, now)
    })
}

#[derive(Deserialize)]
struct StateBody {
    state: String,
    #[serde(default)]
    reason: String,
}

fn set_state(ctx: &mut Ctx<'_>, req: &Request, me: &User) -> Response {
    let b: StateBody = body_or_return!(req);
    let Some(state @ (State::Active | State::Suspended)) = State::parse(&b.state) else {
        return error(&Error::invalid("The state must be active or suspended."));
    };
    change_user(ctx, req, me, |tx, actor, id, now| {
        admin::set_state(tx, actor, id, state, &b.reason, now)
    })
}

#[derive(Deserialize)]
struct CreditBody {
    amount_minor: i64,
    #[serde(default)]
    note: String,
}

/// `POST /api/v1/admin/users/{id}/credit`: one `adjustment` ledger row (negative amounts
/// debit, never below zero).
fn credit(ctx: &mut Ctx<'_>, req: &Request, me: &User) -> Response {
    let b: CreditBody = body_or_return!(req);
    let Some(id) = req.id_param("id") else {
        return error(&Error::NotFound("account"));
    };
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    let digits = digits(ctx);
    let actor = Actor {
        id: me.id,
        ip_hash: &ip,
    };
    match db::write(ctx.db, |tx| {
        admin::credit(tx, actor, id, b.amount_minor, &b.note, digits, now)
    }) {
        Ok(entry) => Response::json(
            200,
            &json!({
                "user_id": id,
                "balance_minor": entry.balance_after,
                "balance": Money(entry.balance_after).decimal(digits),
                "entry": entry,
            }),
        ),
        Err(e) => error(&e),
    }
}

/// `GET /api/v1/admin/vouchers?limit=`: the newest vouchers (codes are never shown again).
fn list_vouchers(ctx: &mut Ctx<'_>, req: &Request, _user: &User) -> Response {
    let limit = match super::int_query(req, "limit", 100, 1, 1000) {
        Ok(l) => l,
        Err(r) => return r,
    };
    match vouchers::recent(ctx.db, limit) {
        Ok(rows) => {
            let list: Vec<Value> = rows
                .iter()
                .map(|v| {
                    json!({
                        "id": v.id,
                        "hint": v.hint,
                        "batch": v.batch,
                        "amount_minor": v.amount_minor,
                        "created_at": format_rfc3339(v.created_at),
                        "expires_at": format_rfc3339(v.expires_at),
                        "redeemed_by": v.redeemed_by,
                        "redeemed_at": v.redeemed_at.map(format_rfc3339),
                    })
                })
                .collect();
            Response::json(200, &json!({"vouchers": list}))
        }
        Err(e) => error(&e),
    }
}

#[derive(Deserialize)]
struct VoucherBody {
    amount_minor: i64,
    count: u32,
    valid_days: u32,
}

/// `POST /api/v1/admin/vouchers`: a batch; the codes are in this answer and nowhere else.
fn create_vouchers(ctx: &mut Ctx<'_>, req: &Request, me: &User) -> Response {
    let b: VoucherBody = body_or_return!(req);
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    let digits = digits(ctx);
    let keys = ctx.app.keys.clone();
    let actor = Actor {
        id: me.id,
        ip_hash: &ip,
    };
    match db::write(ctx.db, |tx| {
        admin::create_vouchers(
            tx,
            &keys,
            actor,
            b.count,
            b.amount_minor,
            b.valid_days,
            digits,
            now,
        )
    }) {
        Ok(batch) => Response::json(
            201,
            &json!({
                "batch": batch.batch,
                "amount_minor": batch.amount_minor,
                "count": batch.codes.len(),
                "expires_at": format_rfc3339(batch.expires_at),
                "codes": batch.codes,
            }),
        ),
        Err(e) => error(&e),
    }
}

/// `GET /api/v1/admin/prices?country=&service=`: every stored price, disabled entries and
/// operator prices included.
fn list_prices(ctx: &mut Ctx<'_>, req: &Request, _user: &User) -> Response {
    let country = req.query_param("country").and_then(|c| c.parse().ok());
    let service = req.query_param("service").filter(|s| !s.is_empty());
    match catalogue::price_rows(ctx.db, country, service.as_deref()) {
        Ok(rows) => Response::json(
            200,
            &json!({"currency": ctx.app.config.currency, "prices": rows}),
        ),
        Err(e) => error(&e),
    }
}

#[derive(Deserialize)]
struct PriceBody {
    country: i64,
    service: String,
    #[serde(default)]
    operator: String,
    price_minor: i64,
    rent_hour_minor: i64,
}

/// `POST /api/v1/admin/prices`: sets the price of a pair (or of one operator of it); answers
/// with the stored row.
fn set_price(ctx: &mut Ctx<'_>, req: &Request, me: &User) -> Response {
    let b: PriceBody = body_or_return!(req);
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    let digits = digits(ctx);
    let actor = Actor {
        id: me.id,
        ip_hash: &ip,
    };
    let operator = b.operator.trim().to_string();
    let price = Price {
        price_minor: b.price_minor,
        rent_hour_minor: b.rent_hour_minor,
    };
    let done = db::write(ctx.db, |tx| {
        admin::set_price(
            tx, actor, b.country, &b.service, &operator, price, digits, now,
        )?;
        catalogue::price_rows(tx, Some(b.country), Some(&b.service))
    });
    match done {
        Ok(rows) => match rows.into_iter().find(|r| r.operator == operator) {
            Some(row) => Response::json(200, &json!(row)),
            None => error(&Error::Internal("the price just set is missing".into())),
        },
        Err(e) => error(&e),
    }
}

#[derive(Deserialize)]
struct SwitchBody {
    enabled: bool,
}

/// Switches a catalogue entry; `table` is `countries` or `services`, `key` the path
/// parameter.
fn switch(ctx: &mut Ctx<'_>, req: &Request, me: &User, table: &str, param: &str) -> Response {
    let b: SwitchBody = body_or_return!(req);
    let key = req.param(param).unwrap_or_default().to_string();
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    let actor = Actor {
        id: me.id,
        ip_hash: &ip,
    };
    let done = db::write(ctx.db, |tx| {
        admin::set_enabled(tx, actor, table, &key, b.enabled, now)?;
        Ok(if table == "countries" {
            key.parse()
                .ok()
                .map(|id| catalogue::country(tx, id))
                .transpose()?
                .flatten()
                .map(|c| json!(c))
        } else {
            catalogue::service(tx, &key)?.map(|s| json!(s))
        })
    });
    match done {
        Ok(Some(v)) => Response::json(200, &v),
        Ok(None) => error(&Error::NotFound("catalogue entry")),
        Err(e) => error(&e),
    }
}

fn switch_country(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    switch(ctx, req, user, "countries", "id")
}

fn switch_service(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    switch(ctx, req, user, "services", "code")
}
