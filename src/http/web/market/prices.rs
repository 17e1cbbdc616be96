//! The public price list (`GET /prices`): no account needed. One country's services, or
//! one service's countries, with price, stock and the 7-day success rate; `?q=` narrows the
//! rows on the server (the page's script filters as one types). Cheap by construction: stock
//! and prices come from the cached counters and the price table (`catalogue::offers`), rates
//! from the `success_rates` table (`supply::stats`), never from numbers or orders.

use crate::domain::market::catalogue;
use crate::domain::supply::stats;
use crate::http::auth::Visitor;
use crate::http::router::Router;
use crate::http::web::{cur, nav};
use crate::http::{Ctx, Method, Request, Response};
use crate::views::market::prices::{self as view, PriceList, PriceRow};

pub fn routes(r: &mut Router) {
    r.visitors(&[(Method::Get, "/prices", prices)]);
}

/// Does `q` (lowercase words) match `hay` (every word found)?
fn matches(q: &str, hay: &str) -> bool {
    let hay = hay.to_lowercase();
    q.split_whitespace().all(|w| hay.contains(w))
}

fn prices(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let countries: Vec<_> = catalogue::countries(ctx.db)
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.enabled)
        .collect();
    let services: Vec<_> = catalogue::services(ctx.db)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.enabled)
        .collect();
    let q: String = req
        .query_param("q")
        .unwrap_or_default()
        .trim()
        .to_lowercase()
        .chars()
        .take(60)
        .collect();
    let service = req
        .query_param("service")
        .and_then(|s| services.iter().find(|x| x.code == s).cloned());
    let country = req
        .query_param("country")
        .and_then(|c| c.parse::<i64>().ok())
        .and_then(|c| countries.iter().find(|x| x.id == c).cloned())
        .or_else(|| {
            service
                .is_none()
                .then(|| {
                    countries
                        .iter()
                        .find(|c| c.id == 6)
                        .or(countries.first())
                        .cloned()
                })
                .flatten()
        });
    let now = ctx.now();
    let offers = catalogue::offers(
        ctx.db,
        country.as_ref().map(|c| c.id),
        service.as_ref().map(|s| s.code.as_str()),
        ctx.app.config.reuse_cooldown,
        now,
    )
    .unwrap_or_default();
    let rates = match &country {
        Some(c) => stats::success_in(ctx.db, c.id),
        None => stats::success_table(ctx.db),
    }
    .unwrap_or_default();
    let mut rows: Vec<PriceRow> = offers
        .into_iter()
        .filter_map(|o| {
            let c = countries.iter().find(|c| c.id == o.country)?;
            let s = services.iter().find(|s| s.code == o.service)?;
            Some(PriceRow {
                country_id: c.id,
                country: c.name.clone(),
                service_code: s.code.clone(),
                service: s.name.clone(),
                price_minor: o.price_minor,
                stock: o.stock,
                rate: rates.get(c.id, &s.code),
            })
        })
        .filter(|r| {
            q.is_empty()
                || matches(
                    &q,
                    &format!("{} {} {}", r.service, r.service_code, r.country),
                )
        })
        .collect();
    match &service {
        // One service's countries: the most stock first, then the cheapest.
        Some(_) => rows.sort_by_key(|r| (r.stock <= 0, r.price_minor, r.country.clone())),
        None => rows.sort_by_key(|r| {
            (
                std::cmp::Reverse(r.rate.orders),
                crate::domain::market::seed::SERVICES
                    .iter()
                    .position(|s| s.code == r.service_code)
                    .unwrap_or(usize::MAX),
                r.service.to_lowercase(),
            )
        }),
    }
    let list = PriceList {
        cur: cur(ctx),
        countries: &countries,
        country: country.as_ref(),
        service: service.as_ref(),
        q: &q,
        rows: &rows,
        signed_in: v.user.is_some(),
    };
    Response::html(view::prices(&nav(ctx, v), &list))
}
