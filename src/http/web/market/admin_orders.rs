//! The admin's list of every order (`/admin/orders`): activations or rentals of all accounts
//! with filters and keyset pages (`domain::trust::orders`, which bounds each page's work and
//! audits the reading). Template: `views::market::admin_orders`.

use crate::domain::accounts::{self, Role};
use crate::domain::market::catalogue;
use crate::domain::trust::orders::{self, day_start, Filter, Kind};
use crate::http::auth::Page;
use crate::http::router::Router;
use crate::http::web::{cur, form};
use crate::http::{Ctx, Method, Request, Response};
use crate::views::market::admin_orders as view;
use crate::views::Flash;

pub fn routes(r: &mut Router) {
    r.pages(Role::Admin, &[(Method::Get, "/admin/orders", list)]);
}

/// Orders per page.
const PER_PAGE: i64 = 50;

/// The filter the query asks for, or what is wrong with it.
fn filter_of(ctx: &Ctx<'_>, req: &Request) -> Result<Filter, String> {
    let q = |k: &str| req.query_param(k).unwrap_or_default().trim().to_string();
    let kind = Kind::parse(&q("kind"));
    let account = match q("account") {
        a if a.is_empty() => None,
        a => match a.parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => match accounts::find_by_email(ctx.db, &a) {
                Ok(Some(u)) => Some(u.id),
                _ => return Err(format!("No account with the e-mail address {a}.")),
            },
        },
    };
    let day = |k: &str, shift: i64| match q(k) {
        d if d.is_empty() => Ok(None),
        d => day_start(&d)
            .map(|t| Some(t + shift))
            .ok_or_else(|| format!("Give the {k} date as YYYY-MM-DD.")),
    };
    let status = q("status");
    if !status.is_empty() && !kind.statuses().contains(&status.as_str()) {
        return Err(format!("A {} has no status {status}.", kind.as_str()));
    }
    Ok(Filter {
        kind,
        status,
        service: q("service"),
        country: q("country").parse().ok(),
        source: if kind == Kind::Activation {
            q("source")
        } else {
            String::new()
        },
        account,
        from: day("from", 0)?,
        to: day("to", 86_400)?,
    })
}

/// `/admin/orders?kind=&status=&service=&country=&source=&account=&from=&to=&before=`.
fn list(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let before = req.query_param("before").and_then(|b| b.parse().ok());
    let mut flash = p.flash.clone();
    let (filter, page) = match filter_of(ctx, req) {
        Ok(f) => {
            let read = form::acting(ctx, req, p, |tx, actor, now| {
                orders::read(tx, actor, &f, before, PER_PAGE, now)
            });
            match read {
                Ok(page) => (f, page),
                Err(e) => {
                    flash = Some(Flash::Err(e.to_string()));
                    (f, orders::Page::default())
                }
            }
        }
        Err(e) => {
            flash = Some(Flash::Err(e));
            (Filter::default(), orders::Page::default())
        }
    };
    let countries = catalogue::countries(ctx.db).unwrap_or_default();
    let services = catalogue::services(ctx.db).unwrap_or_default();
    let query: Vec<(String, String)> = [
        "kind", "status", "service", "country", "source", "account", "from", "to",
    ]
    .iter()
    .filter_map(|k| {
        req.query_param(k)
            .filter(|v| !v.is_empty())
            .map(|v| (k.to_string(), v))
    })
    .collect();
    let v = view::OrdersPage {
        filter: &filter,
        query: &query,
        countries: &countries,
        services: &services,
        page: &page,
        not_first: before.is_some(),
    };
    Response::html(view::orders(&p.nav, &cur(ctx), &v, &flash))
}
