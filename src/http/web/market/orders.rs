//! Customer pages: dashboard with the order form and live orders, history, wallet, rentals,
//! API keys. Forms post here; the dashboard's script reads `/api/v1` to show codes live.

use crate::domain::accounts::Role;
use crate::domain::base::money::{currency_digits, Money};
use crate::domain::market::activations::{self, Activation, CancelReason, OrderRequest};
use crate::domain::market::rentals::{self, RentRequest};
use crate::domain::{
    accounts::apikeys, base::audit, market::catalogue, market::inbox, market::vouchers,
    market::wallet, Error,
};
use crate::http::auth::Page;
use crate::http::router::Router;
use crate::http::web::{cur, form};
use crate::http::{Ctx, Method, Request, Response};
use crate::views::market::orders::{self as view, Dashboard, OrderCard, RentalCard};
use crate::views::market::payments::TopupForm;
use crate::views::{accounts::account::verify_notice, Flash};

pub fn routes(r: &mut Router) {
    use Method::{Get, Post};
    r.pages(
        Role::User,
        &[
            (Get, "/dashboard", dashboard),
            (Post, "/orders", place_order),
            (Get, "/orders", history),
            (Post, "/orders/{id}/{action}", order_action),
            (Get, "/wallet", wallet_page),
            (Post, "/wallet/redeem", redeem),
            (Get, "/rentals", rentals_page),
            (Post, "/rentals", rent),
            (Post, "/rentals/{id}/{action}", rental_action),
            (Get, "/keys", keys_page),
            (Post, "/keys", create_key),
            (Post, "/keys/{id}/revoke", revoke_key),
        ],
    );
}

fn cards(ctx: &Ctx<'_>, list: Vec<Activation>) -> Vec<OrderCard> {
    let countries = catalogue::countries(ctx.db).unwrap_or_default();
    let services = catalogue::services(ctx.db).unwrap_or_default();
    list.into_iter()
        .map(|a| OrderCard {
            messages: inbox::for_activation(ctx.db, a.id).unwrap_or_default(),
            country_name: countries
                .iter()
                .find(|c| c.id == a.country_id)
                .map(|c| c.name.clone())
                .unwrap_or_default(),
            service_name: services
                .iter()
                .find(|s| s.code == a.service)
                .map(|s| s.name.clone())
                .unwrap_or_else(|| a.service.clone()),
            a,
        })
        .collect()
}

fn dashboard(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let countries: Vec<_> = catalogue::countries(ctx.db)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.enabled)
        .collect();
    let country = req
        .query_param("country")
        .and_then(|c| c.parse().ok())
        .filter(|c| countries.iter().any(|x| x.id == *c))
        .or_else(|| {
            countries
                .iter()
                .find(|c| c.id == 6)
                .or(countries.first())
                .map(|c| c.id)
        })
        .unwrap_or(0);
    let services = catalogue::services(ctx.db).unwrap_or_default();
    let now = ctx.now();
    let offers = catalogue::offers(
        ctx.db,
        Some(country),
        None,
        ctx.app.config.reuse_cooldown,
        now,
    )
    .unwrap_or_default();
    let live = activations::list_live(ctx.db, p.user.id, 50, 0).unwrap_or_default();
    let d = Dashboard {
        cur: cur(ctx),
        balance_minor: p.user.balance_minor,
        verified: p.user.is_verified(),
        countries: &countries,
        country,
        services: &services,
        offers: &offers,
        live: cards(ctx, live),
        now,
        kept: &p.kept,
    };
    Response::html(view::dashboard(
        &p.nav,
        p.csrf(),
        &d,
        verify_notice(&p.user, p.csrf()),
        &p.flash,
    ))
}

fn place_order(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let form = req.form();
    let country: i64 = form.text("country").parse().unwrap_or(-1);
    let back = format!("/dashboard?country={country}");
    let digits = currency_digits(&ctx.app.config.currency);
    let max_price = match form.text("max_price").as_str() {
        "" => None,
        t => match Money::parse(t, digits, false) {
            Some(m) => Some(m.0),
            None => {
                return form::fail(
                    ctx,
                    req,
                    &p.session,
                    &back,
                    "The maximum price is not an amount.",
                )
            }
        },
    };
    let order = OrderRequest {
        country,
        service: form.text("service"),
        operator: None,
        max_price_minor: max_price,
        client_order_id: None,
        ..Default::default()
    };
    match ctx.place_order(&p.user, std::slice::from_ref(&order), |_| false) {
        Ok(_) => Response::redirect(&back),
        Err(Error::WrongMaxPrice { min_minor }) => {
            let msg = format!(
                "The price is {}, above your maximum.",
                cur(ctx).fmt(min_minor)
            );
            form::fail(ctx, req, &p.session, &back, msg)
        }
        Err(e) => form::fail(ctx, req, &p.session, &back, e),
    }
}

fn order_action(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (Some(id), uid) = (req.id_param("id"), p.user.id) else {
        return form::fail(ctx, req, &p.session, "/dashboard", "No such order.");
    };
    let policy = ctx.app.policy();
    let action = req.param("action").unwrap_or("").to_string();
    form::submit(
        ctx,
        req,
        &p.session,
        "/dashboard",
        |tx, _, now| match action.as_str() {
            "cancel" => activations::cancel(tx, uid, id, CancelReason::Cancel, &policy, now),
            "used" => activations::cancel(tx, uid, id, CancelReason::NumberUsed, &policy, now),
            "complete" => activations::complete(tx, uid, id, &policy, now),
            "retry" => activations::retry(tx, uid, id, &policy, now),
            _ => Err(Error::NotFound("action")),
        },
        |ctx, _| {
            ctx.app.notify();
            Response::redirect("/dashboard")
        },
    )
}

/// Orders per page of the history.
const HISTORY_PAGE: i64 = 50;

fn history(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let before = req.query_param("before").and_then(|b| b.parse().ok());
    let mut list = activations::list_before(ctx.db, p.user.id, &[], before, HISTORY_PAGE + 1)
        .unwrap_or_default();
    let more = list.len() as i64 > HISTORY_PAGE;
    list.truncate(HISTORY_PAGE as usize);
    let older = if more {
        list.last().map(|a| a.id)
    } else {
        None
    };
    let c = cards(ctx, list);
    Response::html(view::history(
        &p.nav,
        p.csrf(),
        &c,
        &cur(ctx),
        ctx.now(),
        before.is_some(),
        older,
    ))
}

fn wallet_page(ctx: &mut Ctx<'_>, _: &Request, p: &Page) -> Response {
    let entries = wallet::entries(ctx.db, p.user.id, 100, None).unwrap_or_default();
    let balance = wallet::balance(ctx.db, p.user.id).unwrap_or(0);
    let gateways = ctx.site.gateways.enabled();
    let recent = super::payments::recent(ctx, p.user.id);
    let topup = TopupForm {
        gateways: &gateways,
        min_minor: ctx.app.config.payments.topup_min,
        max_minor: ctx.app.config.payments.topup_max,
        recent: &recent,
        kept: &p.kept,
    };
    Response::html(view::wallet(
        &p.nav,
        p.csrf(),
        &cur(ctx),
        balance,
        &entries,
        &topup,
        &p.flash,
    ))
}

fn redeem(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let keys = ctx.app.keys.clone();
    let uid = p.user.id;
    form::submit(
        ctx,
        req,
        &p.session,
        "/wallet",
        |tx, f, now| vouchers::redeem(tx, &keys, uid, &f.text("code"), now),
        |ctx, amount| {
            let msg = format!("{} added to your balance.", cur(ctx).fmt(amount));
            form::tell(ctx, &p.session, "/wallet", Flash::Ok(msg))
        },
    )
}

fn rentals_page(ctx: &mut Ctx<'_>, _: &Request, p: &Page) -> Response {
    let countries: Vec<_> = catalogue::countries(ctx.db)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.enabled)
        .collect();
    let services: Vec<_> = catalogue::services(ctx.db)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.enabled)
        .collect();
    let list = rentals::list(ctx.db, p.user.id, false, 50).unwrap_or_default();
    let cards: Vec<RentalCard> = list
        .into_iter()
        .map(|r| RentalCard {
            messages: inbox::for_rental(ctx.db, r.id).unwrap_or_default(),
            r,
        })
        .collect();
    Response::html(view::rentals(
        &p.nav,
        p.csrf(),
        &cur(ctx),
        &countries,
        &services,
        &cards,
        &p.flash,
    ))
}

fn rent(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let policy = ctx.app.policy();
    form::submit(
        ctx,
        req,
        &p.session,
        "/rentals",
        |tx, f, now| {
            let rr = RentRequest {
                country: f.text("country").parse().unwrap_or(-1),
                service: f.text("service"),
                hours: f.text("hours").parse().unwrap_or(0),
                auto_renew: f.checked("auto_renew"),
                webhook_url: String::new(),
            };
            rentals::rent(tx, &p.user, &rr, &policy, now)
        },
        |_, _| Response::redirect("/rentals"),
    )
}

fn rental_action(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (Some(id), uid) = (req.id_param("id"), p.user.id) else {
        return form::fail(ctx, req, &p.session, "/rentals", "No such rental.");
    };
    let policy = ctx.app.policy();
    let action = req.param("action").unwrap_or("").to_string();
    form::submit(
        ctx,
        req,
        &p.session,
        "/rentals",
        |tx, f, now| match action.as_str() {
            "cancel" => rentals::cancel(tx, uid, id, now),
            "finish" => rentals::finish(tx, uid, id, &policy, now),
            "extend" => rentals::extend(tx, uid, id, f.text("hours").parse().unwrap_or(0), now),
            "autorenew_on" => rentals::set_auto_renew(tx, uid, id, true),
            "autorenew_off" => rentals::set_auto_renew(tx, uid, id, false),
            _ => Err(Error::NotFound("action")),
        },
        |_, _| Response::redirect("/rentals"),
    )
}

fn keys_view(ctx: &mut Ctx<'_>, p: &Page, new_key: Option<&str>, status: u16) -> Response {
    let keys = apikeys::list(ctx.db, p.user.id).unwrap_or_default();
    Response::html(view::keys(&p.nav, p.csrf(), &keys, new_key, &p.flash)).with_status(status)
}

fn keys_page(ctx: &mut Ctx<'_>, _: &Request, p: &Page) -> Response {
    keys_view(ctx, p, None, 200)
}

/// The new key is shown once, in the answer to this POST (it is never stored in clear).
fn create_key(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let keys = ctx.app.keys.clone();
    let ip = ctx.ip_hash(req);
    let uid = p.user.id;
    form::submit(
        ctx,
        req,
        &p.session,
        "/keys",
        |tx, f, now| {
            let k = apikeys::create(tx, &keys, uid, &f.text("name"), now)?;
            audit::security(tx, Some(uid), audit::API_KEY_CREATED, &ip, &k.0.name, now)?;
            Ok(k)
        },
        |ctx, (_, secret)| keys_view(ctx, p, Some(&secret), 201),
    )
}

fn revoke_key(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (Some(id), uid) = (req.id_param("id"), p.user.id) else {
        return form::fail(ctx, req, &p.session, "/keys", "No such key.");
    };
    let ip = ctx.ip_hash(req);
    form::submit(
        ctx,
        req,
        &p.session,
        "/keys",
        |tx, _, now| {
            apikeys::revoke(tx, uid, id, now)?;
            audit::security(
                tx,
                Some(uid),
                audit::API_KEY_REVOKED,
                &ip,
                &id.to_string(),
                now,
            )
        },
        |_, ()| Response::redirect("/keys?m=saved"),
    )
}
