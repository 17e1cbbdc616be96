//! Customer pages: dashboard with the order form and live orders, history, wallet, rentals,
//! API keys. Forms post here; the dashboard's script reads `/api/v1` to show codes live.

use super::super::auth::Signed;
use super::super::router::Router;
use super::super::{error_page, Ctx, Request, Response};
use super::{cur, flash_from_query, page_guard};
use crate::db;
use crate::domain::accounts::Role;
use crate::domain::base::money::{currency_digits, Money};
use crate::domain::market::activations::{self, Activation, CancelReason, OrderRequest, Status};
use crate::domain::market::rentals::{self, RentRequest};
use crate::domain::{
    accounts::apikeys, base::audit, market::catalogue, market::inbox, market::vouchers,
    market::wallet, Error,
};
use crate::views::market::{self as view, Dashboard, OrderCard, RentalCard};
use crate::views::{account::verify_notice, Flash, Nav};

pub fn routes(r: &mut Router) {
    r.get("/dashboard", dashboard);
    r.form("/orders", place_order);
    r.get("/orders", history);
    r.form("/orders/{id}/{action}", order_action);
    r.get("/wallet", wallet_page);
    r.form("/wallet/redeem", redeem);
    r.get("/rentals", rentals_page);
    r.form("/rentals", rent);
    r.form("/rentals/{id}/{action}", rental_action);
    r.get("/keys", keys_page);
    r.form("/keys", create_key);
    r.form("/keys/{id}/revoke", revoke_key);
}

fn signed(ctx: &mut Ctx<'_>, req: &Request) -> Result<(Signed, Nav), Response> {
    page_guard(ctx, req, Role::User)
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

fn dashboard_page(
    ctx: &mut Ctx<'_>,
    req: &Request,
    s: &Signed,
    n: &Nav,
    flash: Option<Flash>,
    status: u16,
) -> Response {
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
    let live = activations::list(
        ctx.db,
        s.user.id,
        &[Status::Waiting, Status::Received, Status::Retry],
        50,
        0,
    )
    .unwrap_or_default();
    let d = Dashboard {
        cur: cur(ctx),
        balance_minor: s.user.balance_minor,
        verified: s.user.is_verified(),
        countries: &countries,
        country,
        services: &services,
        offers: &offers,
        live: cards(ctx, live),
        now,
    };
    Response::html(view::dashboard(
        n,
        s.csrf(),
        &d,
        verify_notice(&s.user, s.csrf()),
        &flash,
    ))
    .with_status(status)
}

fn dashboard(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    match signed(ctx, req) {
        Ok((s, n)) => dashboard_page(ctx, req, &s, &n, flash_from_query(req), 200),
        Err(r) => r,
    }
}

fn place_order(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    let (s, n) = match signed(ctx, req) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let form = req.form();
    let digits = currency_digits(&ctx.app.config.currency);
    let max_price = match form.text("max_price").as_str() {
        "" => None,
        t => match Money::parse(t, digits, false) {
            Some(m) => Some(m.0),
            None => {
                return dashboard_page(
                    ctx,
                    req,
                    &s,
                    &n,
                    Some(Flash::Err("The maximum price is not an amount.".into())),
                    400,
                )
            }
        },
    };
    let order = OrderRequest {
        country: form.text("country").parse().unwrap_or(-1),
        service: form.text("service"),
        operator: None,
        max_price_minor: max_price,
        client_order_id: None,
        exclude_prefixes: vec![],
    };
    match ctx.place_order(&s.user, std::slice::from_ref(&order), |_| false) {
        Ok(_) => Response::redirect(&format!("/dashboard?country={}", order.country)),
        Err(e) => {
            let msg = match &e {
                Error::WrongMaxPrice { min_minor } => format!(
                    "The price is {}, above your maximum.",
                    cur(ctx).fmt(*min_minor)
                ),
                other => other.to_string(),
            };
            dashboard_page(ctx, req, &s, &n, Some(Flash::Err(msg)), e.http_status())
        }
    }
}

fn order_action(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    let (s, n) = match signed(ctx, req) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such order.");
    };
    let policy = ctx.app.policy();
    let now = ctx.now();
    let uid = s.user.id;
    let action = req.param("action").unwrap_or("").to_string();
    let done = db::write(ctx.db, |tx| match action.as_str() {
        "cancel" => activations::cancel(tx, uid, id, CancelReason::Cancel, &policy, now),
        "used" => activations::cancel(tx, uid, id, CancelReason::NumberUsed, &policy, now),
        "complete" => activations::complete(tx, uid, id, &policy, now),
        "retry" => activations::retry(tx, uid, id, &policy, now),
        _ => Err(Error::NotFound("action")),
    });
    match done {
        Ok(_) => {
            ctx.app.notify();
            Response::redirect("/dashboard")
        }
        Err(e) => dashboard_page(
            ctx,
            req,
            &s,
            &n,
            Some(Flash::Err(e.to_string())),
            e.http_status(),
        ),
    }
}

fn history(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    let (s, n) = match signed(ctx, req) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let page_no: i64 = req
        .query_param("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
        .max(0);
    let mut list = activations::list(ctx.db, s.user.id, &[], 51, page_no * 50).unwrap_or_default();
    let more = list.len() > 50;
    list.truncate(50);
    let c = cards(ctx, list);
    Response::html(view::history(
        &n,
        s.csrf(),
        &c,
        &cur(ctx),
        ctx.now(),
        page_no,
        more,
    ))
}

fn wallet_view(
    ctx: &mut Ctx<'_>,
    s: &Signed,
    n: &Nav,
    flash: Option<Flash>,
    status: u16,
) -> Response {
    let entries = wallet::entries(ctx.db, s.user.id, 100, None).unwrap_or_default();
    let balance = wallet::balance(ctx.db, s.user.id).unwrap_or(0);
    Response::html(view::wallet(
        n,
        s.csrf(),
        &cur(ctx),
        balance,
        &entries,
        &flash,
    ))
    .with_status(status)
}

fn wallet_page(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    match signed(ctx, req) {
        Ok((s, n)) => wallet_view(ctx, &s, &n, flash_from_query(req), 200),
        Err(r) => r,
    }
}

fn redeem(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    let (s, n) = match signed(ctx, req) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let code = req.form().text("code");
    let now = ctx.now();
    let keys = ctx.app.keys.clone();
    match db::write(ctx.db, |tx| {
        vouchers::redeem(tx, &keys, s.user.id, &code, now)
    }) {
        Ok(amount) => {
            let msg = format!("{} added to your balance.", cur(ctx).fmt(amount));
            wallet_view(ctx, &s, &n, Some(Flash::Ok(msg)), 200)
        }
        Err(e) => wallet_view(
            ctx,
            &s,
            &n,
            Some(Flash::Err(e.to_string())),
            e.http_status(),
        ),
    }
}

fn rentals_view(
    ctx: &mut Ctx<'_>,
    s: &Signed,
    n: &Nav,
    flash: Option<Flash>,
    status: u16,
) -> Response {
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
    let list = rentals::list(ctx.db, s.user.id, false, 50).unwrap_or_default();
    let cards: Vec<RentalCard> = list
        .into_iter()
        .map(|r| RentalCard {
            messages: inbox::for_rental(ctx.db, r.id).unwrap_or_default(),
            r,
        })
        .collect();
    Response::html(view::rentals(
        n,
        s.csrf(),
        &cur(ctx),
        &countries,
        &services,
        &cards,
        &flash,
    ))
    .with_status(status)
}

fn rentals_page(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    match signed(ctx, req) {
        Ok((s, n)) => rentals_view(ctx, &s, &n, flash_from_query(req), 200),
        Err(r) => r,
    }
}

fn rent(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    let (s, n) = match signed(ctx, req) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let form = req.form();
    let rr = RentRequest {
        country: form.text("country").parse().unwrap_or(-1),
        service: form.text("service"),
        hours: form.text("hours").parse().unwrap_or(0),
        auto_renew: form.checked("auto_renew"),
        webhook_url: String::new(),
    };
    let policy = ctx.app.policy();
    let now = ctx.now();
    match db::write(ctx.db, |tx| rentals::rent(tx, &s.user, &rr, &policy, now)) {
        Ok(_) => Response::redirect("/rentals"),
        Err(e) => rentals_view(
            ctx,
            &s,
            &n,
            Some(Flash::Err(e.to_string())),
            e.http_status(),
        ),
    }
}

fn rental_action(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    let (s, n) = match signed(ctx, req) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such rental.");
    };
    let hours: i64 = req.form().text("hours").parse().unwrap_or(0);
    let policy = ctx.app.policy();
    let now = ctx.now();
    let uid = s.user.id;
    let action = req.param("action").unwrap_or("").to_string();
    let done = db::write(ctx.db, |tx| match action.as_str() {
        "cancel" => rentals::cancel(tx, uid, id, now),
        "finish" => rentals::finish(tx, uid, id, &policy, now),
        "extend" => rentals::extend(tx, uid, id, hours, now),
        "autorenew_on" => rentals::set_auto_renew(tx, uid, id, true),
        "autorenew_off" => rentals::set_auto_renew(tx, uid, id, false),
        _ => Err(Error::NotFound("action")),
    });
    match done {
        Ok(_) => Response::redirect("/rentals"),
        Err(e) => rentals_view(
            ctx,
            &s,
            &n,
            Some(Flash::Err(e.to_string())),
            e.http_status(),
        ),
    }
}

fn keys_view(
    ctx: &mut Ctx<'_>,
    s: &Signed,
    n: &Nav,
    new_key: Option<&str>,
    flash: Option<Flash>,
    status: u16,
) -> Response {
    let keys = apikeys::list(ctx.db, s.user.id).unwrap_or_default();
    Response::html(view::keys(n, s.csrf(), &keys, new_key, &flash)).with_status(status)
}

fn keys_page(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    match signed(ctx, req) {
        Ok((s, n)) => keys_view(ctx, &s, &n, None, flash_from_query(req), 200),
        Err(r) => r,
    }
}

fn create_key(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    let (s, n) = match signed(ctx, req) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let name = req.form().text("name");
    let now = ctx.now();
    let keys = ctx.app.keys.clone();
    let ip = ctx.ip_hash(req);
    match db::write(ctx.db, |tx| {
        let k = apikeys::create(tx, &keys, s.user.id, &name, now)?;
        audit::security(
            tx,
            Some(s.user.id),
            audit::API_KEY_CREATED,
            &ip,
            &k.0.name,
            now,
        )?;
        Ok(k)
    }) {
        Ok((_, secret)) => keys_view(ctx, &s, &n, Some(&secret), None, 201),
        Err(e) => keys_view(
            ctx,
            &s,
            &n,
            None,
            Some(Flash::Err(e.to_string())),
            e.http_status(),
        ),
    }
}

fn revoke_key(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    let (s, n) = match signed(ctx, req) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such key.");
    };
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    match db::write(ctx.db, |tx| {
        apikeys::revoke(tx, s.user.id, id, now)?;
        audit::security(
            tx,
            Some(s.user.id),
            audit::API_KEY_REVOKED,
            &ip,
            &id.to_string(),
            now,
        )
    }) {
        Ok(()) => Response::redirect("/keys?m=saved"),
        Err(e) => keys_view(
            ctx,
            &s,
            &n,
            None,
            Some(Flash::Err(e.to_string())),
            e.http_status(),
        ),
    }
}
