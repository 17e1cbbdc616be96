//! Admin handlers of the partner hubs (`market::partners`): the list with what each has in
//! progress, is owed and waits to be pushed; add; one hub's settings, naming, orders and
//! pushes (both paged by keyset). Changes are audited; the key is never shown back nor
//! written to the audit log.

use crate::domain::accounts::Role;
use crate::domain::base::audit;
use crate::domain::market::partners::{self, Changes, NewPartner};
use crate::http::auth::Page;
use crate::http::request::Form;
use crate::http::router::Router;
use crate::http::web::{cur, form};
use crate::http::{error_page, Ctx, Method, Request, Response};
use crate::views::supply::partners as view;
use crate::views::Flash;

pub fn routes(r: &mut Router) {
    use Method::{Get, Post};
    r.pages(
        Role::Admin,
        &[
            (Get, "/admin/partners", list),
            (Post, "/admin/partners", add),
            (Get, "/admin/partners/{id}", detail),
            (Post, "/admin/partners/{id}", edit),
            (Post, "/admin/partners/{id}/names", names),
        ],
    );
}

const LIST: &str = "/admin/partners";
/// Rows per page of a hub's orders and pushes.
const PAGE: i64 = 50;

fn list(ctx: &mut Ctx<'_>, _req: &Request, p: &Page) -> Response {
    let rows: Vec<view::Row> = partners::list(ctx.db)
        .unwrap_or_default()
        .into_iter()
        .map(|partner| view::Row {
            health: partners::health(ctx.db, &partner).unwrap_or_default(),
            partner,
        })
        .collect();
    Response::html(view::list(
        &p.nav,
        p.csrf(),
        &cur(ctx),
        &ctx.app.config.base_url,
        &rows,
        &p.flash,
        &p.kept,
    ))
}

/// Currency, rate and floor as typed, or why not. `ours` is the install's currency.
fn money_fields(f: &Form, ours: &str) -> Result<(u16, i64, i64), String> {
    let currency = partners::parse_currency(&f.text("currency"))
        .ok_or("The hub's currency must be 643 (RUB) or 840 (USD).")?;
    let rate = match f.text("rate").trim() {
        "" if crate::domain::base::money::currency_numeric(ours) == Some(currency) => {
            10i64.pow(crate::domain::base::money::currency_digits(ours)) * partners::MICRO
        }
        "" => {
            return Err(format!(
                "The hub pays in {} and this install counts in {ours}: give the rate (our minor units per one {}).",
                partners::currency_code(currency),
                partners::currency_code(currency)
            ))
        }
        t => partners::parse_micro(t).ok_or("The rate must be a number such as 100 or 1.1.")?,
    };
    let floor = match f.text("floor").trim() {
        "" => 0,
        t => partners::parse_micro(t).ok_or("The floor must be a price such as 5 or 5.50.")?,
    };
    Ok((currency, rate, floor))
}

fn add(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let f = req.form();
    let (currency, rate_micro, floor_micro) = match money_fields(&f, &ctx.app.config.currency) {
        Ok(v) => v,
        Err(msg) => return form::fail(ctx, req, &p.session, LIST, msg),
    };
    let (name, push_url, key) = (f.text("name"), f.text("push_url"), f.text("key"));
    let new = NewPartner {
        name: &name,
        push_url: &push_url,
        key: &key,
        currency,
        rate_micro,
        floor_micro,
    };
    let keys = ctx.app.keys.clone();
    let allow_private = ctx.app.config.webhook_allow_private;
    form::audited(
        ctx,
        req,
        p,
        LIST,
        |tx, _, actor, now| {
            let id = partners::add(tx, &keys, &new, allow_private, now)?;
            audit::audit(
                tx,
                Some(actor.id),
                None,
                "partner_added",
                &format!("partner {id}: {}", name.trim()),
                actor.ip_hash,
                now,
            )?;
            Ok(id)
        },
        |ctx, id| {
            let flash = Flash::Ok(
                "Partner added. Give the hub the agent URL below; set its naming if it names \
                 countries, services or operators differently."
                    .into(),
            );
            form::tell(ctx, &p.session, &format!("/admin/partners/{id}"), flash)
        },
    )
}

fn detail(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let found = req.id_param("id").map(|id| partners::get(ctx.db, id));
    let Some(Ok(Some(partner))) = found else {
        return error_page(req, 404, "No such partner hub.");
    };
    let before = |name: &str| req.query_param(name).and_then(|v| v.parse().ok());
    let data = view::Detail {
        health: partners::health(ctx.db, &partner).unwrap_or_default(),
        names: partners::names(ctx.db, partner.id).unwrap_or_default(),
        orders: partners::orders_page(ctx.db, partner.id, before("before"), PAGE)
            .unwrap_or_default(),
        pushes: partners::pushes_page(ctx.db, partner.id, before("pushes_before"), PAGE)
            .unwrap_or_default(),
        page: PAGE,
        partner,
    };
    Response::html(view::detail(
        &p.nav,
        p.csrf(),
        &cur(ctx),
        &ctx.app.config.base_url,
        &data,
        &p.flash,
        &p.kept,
    ))
}

fn edit(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let Some(id) = req.id_param("id") else {
        return form::fail(ctx, req, &p.session, LIST, "No such partner hub.");
    };
    let back = format!("/admin/partners/{id}");
    let f = req.form();
    let (_, rate, floor) = match money_fields(&f, &ctx.app.config.currency) {
        Ok(v) => v,
        Err(msg) => return form::fail(ctx, req, &p.session, &back, msg),
    };
    let (name, push_url, key) = (f.text("name"), f.text("push_url"), f.text("key"));
    let changes = Changes {
        name: Some(&name),
        push_url: Some(&push_url),
        key: Some(&key),
        rate_micro: Some(rate),
        floor_micro: Some(floor),
        enabled: Some(f.checked("enabled")),
    };
    let keys = ctx.app.keys.clone();
    let allow_private = ctx.app.config.webhook_allow_private;
    form::audited(
        ctx,
        req,
        p,
        &back,
        |tx, _, actor, now| {
            let said = partners::edit(tx, &keys, id, &changes, allow_private)?;
            if !said.is_empty() {
                audit::audit(
                    tx,
                    Some(actor.id),
                    None,
                    "partner_changed",
                    &format!("partner {id}: {said}"),
                    actor.ip_hash,
                    now,
                )?;
            }
            Ok(said)
        },
        |ctx, said| {
            let msg = if said.is_empty() {
                "Nothing changed.".to_string()
            } else {
                format!("Saved: {said}.")
            };
            form::tell(ctx, &p.session, &back, Flash::Ok(msg))
        },
    )
}

fn names(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let Some(id) = req.id_param("id") else {
        return form::fail(ctx, req, &p.session, LIST, "No such partner hub.");
    };
    let back = format!("/admin/partners/{id}");
    form::audited(
        ctx,
        req,
        p,
        &back,
        |tx, f, actor, now| {
            partners::get(tx, id)?.ok_or(crate::domain::Error::NotFound("partner"))?;
            let lines = partners::parse_names(tx, &f.text("names"))?;
            partners::set_names(tx, id, &lines)?;
            audit::audit(
                tx,
                Some(actor.id),
                None,
                "partner_names",
                &format!("partner {id}: {} naming lines", lines.len()),
                actor.ip_hash,
                now,
            )?;
            Ok(lines.len())
        },
        |ctx, n| {
            form::tell(
                ctx,
                &p.session,
                &back,
                Flash::Ok(format!("Naming saved ({n} lines).")),
            )
        },
    )
}
