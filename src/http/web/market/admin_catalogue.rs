//! The admin's catalogue and prices: a country's price table (searchable, one Save for
//! every row, the country's on/off switch beside its name), the bulk tools (markup over
//! cost, copy between countries, CSV import) that first show a preview of their changes and
//! apply only on a second press, the CSV export, and the catalogue's entries (add, rename,
//! retire countries, services and operators; a service's activation lifetime). Everything
//! goes through `domain::trust::{pricing, catalogue, admin}`, which audit it.
//! Template: `views::market::admin_catalogue`.

use crate::domain::accounts::Role;
use crate::domain::base::money::{currency_digits, Money};
use crate::domain::market::catalogue::{self, Price};
use crate::domain::trust::catalogue as entries;
use crate::domain::trust::{admin, pricing};
use crate::http::auth::Page;
use crate::http::router::Router;
use crate::http::web::{cur, form};
use crate::http::{Ctx, Method, Request, Response};
use crate::views::market::admin_catalogue as view;
use crate::views::Flash;

pub fn routes(r: &mut Router) {
    use Method::{Get, Post};
    r.pages(
        Role::Admin,
        &[
            (Get, "/admin/prices", prices),
            (Post, "/admin/prices", save_prices),
            (Get, "/admin/prices/bulk", bulk_preview),
            (Post, "/admin/prices/import", import_csv),
            (Get, "/admin/prices/import", import_preview),
            (Post, "/admin/prices/apply", apply),
            (Get, "/admin/prices/export", export),
            (Post, "/admin/catalogue/toggle", toggle),
            (Get, "/admin/catalogue", catalogue_page),
            (Post, "/admin/catalogue/country", country_form),
            (Post, "/admin/catalogue/service", service_form),
            (Post, "/admin/catalogue/operator", operator_form),
        ],
    );
}

fn digits(ctx: &Ctx<'_>) -> u32 {
    currency_digits(&ctx.app.config.currency)
}

/// `/admin/prices?country=&q=`: one country's price table, services filtered by `q`.
fn prices(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let countries = catalogue::countries(ctx.db).unwrap_or_default();
    let country = req
        .query_param("country")
        .and_then(|c| c.parse().ok())
        .or_else(|| countries.first().map(|c| c.id))
        .unwrap_or(0);
    let q = req.query_param("q").unwrap_or_default();
    let needle = q.trim().to_lowercase();
    let services: Vec<catalogue::Service> = catalogue::services(ctx.db)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| {
            needle.is_empty()
                || s.code.to_lowercase().contains(&needle)
                || s.name.to_lowercase().contains(&needle)
        })
        .collect();
    let prices = catalogue::price_rows(ctx.db, Some(country), None).unwrap_or_default();
    let stock = catalogue::offers(
        ctx.db,
        Some(country),
        None,
        ctx.app.config.reuse_cooldown,
        ctx.now(),
    )
    .unwrap_or_default();
    let rows: Vec<view::PriceLine> = services
        .iter()
        .map(|s| {
            let own = prices
                .iter()
                .find(|r| r.service == s.code && r.operator.is_empty());
            view::PriceLine {
                service: s,
                price: own.map(|r| Price {
                    price_minor: r.price_minor,
                    rent_hour_minor: r.rent_hour_minor,
                }),
                stock: stock
                    .iter()
                    .find(|o| o.service == s.code)
                    .map_or(0, |o| o.stock),
            }
        })
        .collect();
    let page = view::PricesPage {
        countries: &countries,
        country,
        q: &q,
        rows: &rows,
    };
    Response::html(view::prices(
        &p.nav,
        p.csrf(),
        &cur(ctx),
        &page,
        &p.flash,
        &p.kept,
    ))
}

/// The price the row showed, from its `was.price.<code>` and `was.rent.<code>` fields:
/// `None` when the form has none, `Some(None)` when the row was unpriced.
fn shown(form: &crate::http::request::Form, code: &str, digits: u32) -> Option<Option<Price>> {
    let (price, rent) = (
        form.get(&format!("was.price.{code}"))?,
        form.get(&format!("was.rent.{code}"))?,
    );
    if price.trim().is_empty() && rent.trim().is_empty() {
        return Some(None);
    }
    match (
        Money::parse(price, digits, false),
        Money::parse(rent, digits, false),
    ) {
        (Some(p), Some(r)) => Some(Some(Price {
            price_minor: p.0,
            rent_hour_minor: r.0,
        })),
        _ => None,
    }
}

/// One Save for the whole table: fields `price.<code>` and `rent.<code>` of each row shown,
/// with `was.price.<code>` and `was.rent.<code>`, what the row showed: only the rows typed
/// differently are written, and only if nobody changed them meanwhile (else nothing is
/// saved and the page is shown afresh with the conflict named).
fn save_prices(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let form = req.form();
    let digits = digits(ctx);
    let country: i64 = form.text("country").parse().unwrap_or(-1);
    let q = form.text("q");
    let back = format!(
        "/admin/prices?country={country}&q={}",
        crate::url::percent_encode(&q)
    );
    let mut rows = Vec::new();
    for (name, value) in form.0.iter() {
        let Some(code) = name.strip_prefix("price.") else {
            continue;
        };
        let rent = form.text(&format!("rent.{code}"));
        if value.trim().is_empty() && rent.trim().is_empty() {
            continue; // a pair left unpriced stays unpriced
        }
        let (Some(price), Some(rent)) = (
            Money::parse(value, digits, false),
            Money::parse(&rent, digits, false),
        ) else {
            let msg = format!("Enter both prices of {code} as amounts, e.g. 0.35.");
            return form::fail(ctx, req, &p.session, &back, msg);
        };
        rows.push(pricing::RowEdit {
            service: code.to_string(),
            was: shown(&form, code, digits),
            new: Price {
                price_minor: price.0,
                rent_hour_minor: rent.0,
            },
        });
    }
    let saved = form::acting(ctx, req, p, |tx, actor, now| {
        pricing::save_rows(tx, actor, country, &rows, digits, now)
    });
    match saved {
        Ok(n) => {
            let msg = match n {
                0 => "Nothing changed.".to_string(),
                1 => "1 price saved.".to_string(),
                n => format!("{n} prices saved."),
            };
            form::tell(ctx, &p.session, &back, Flash::Ok(msg))
        }
        // The typed values are not kept: the page shows what is stored now.
        Err(e @ crate::domain::Error::Conflict(_)) => {
            form::tell(ctx, &p.session, &back, Flash::Err(e.to_string()))
        }
        Err(e) => form::fail(ctx, req, &p.session, &back, e),
    }
}

/// The preview of a bulk tool: what it would change, with the Apply button.
fn preview(
    ctx: &mut Ctx<'_>,
    p: &Page,
    tool: pricing::Tool,
    changes: &[pricing::Change],
    note: Option<String>,
) -> Response {
    let countries = catalogue::countries(ctx.db).unwrap_or_default();
    let services = catalogue::services(ctx.db).unwrap_or_default();
    let csv = pricing::to_csv(changes, digits(ctx));
    let what = tool
        .describe(ctx.db)
        .unwrap_or_else(|_| "bulk change".into());
    let v = view::Preview {
        what: &what,
        tool: &tool.encode(),
        changes,
        countries: &countries,
        services: &services,
        csv: &csv,
        note,
    };
    Response::html(view::preview(&p.nav, p.csrf(), &cur(ctx), &v))
}

/// `/admin/prices/bulk?action=markup&country=&percent=` or `?action=copy&from=&to=`: the
/// preview (a GET: nothing changes until Apply).
fn bulk_preview(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    use pricing::Tool;
    let q = |k: &str| req.query_param(k).unwrap_or_default().trim().to_string();
    let result = match q("action").as_str() {
        "markup" => {
            let country = q("country").parse::<i64>().ok();
            match q("percent").trim_end_matches('%').parse::<u32>() {
                Err(_) => Err("Give the markup as a whole percentage, e.g. 20.".to_string()),
                Ok(percent) => pricing::markup(ctx.db, country, percent)
                    .map(|m| {
                        let mut notes = Vec::new();
                        if m.without_cost > 0 {
                            notes.push(format!(
                                "{} priced pairs have no provider cost and keep their price.",
                                m.without_cost
                            ));
                        }
                        if m.unpriced > 0 {
                            notes.push(format!(
                                "{} pairs a provider sells have no price yet and stay unsold: \
                                 price them, with a rent per hour, in the table.",
                                m.unpriced
                            ));
                        }
                        let note = (!notes.is_empty()).then(|| notes.join(" "));
                        (Tool::Markup { percent, country }, m.changes, note)
                    })
                    .map_err(|e| e.to_string()),
            }
        }
        "copy" => match (q("from").parse::<i64>(), q("to").parse::<i64>()) {
            (Ok(from), Ok(to)) => pricing::copy(ctx.db, from, to)
                .map(|changes| (Tool::Copy { from, to }, changes, None))
                .map_err(|e| e.to_string()),
            _ => Err("Choose the country to copy from and the one to copy to.".to_string()),
        },
        _ => Err("Unknown bulk action.".to_string()),
    };
    match result {
        Ok((tool, changes, note)) => preview(ctx, p, tool, &changes, note),
        Err(msg) => form::tell(ctx, &p.session, "/admin/prices", Flash::Err(msg)),
    }
}

/// A pasted CSV: checked, then carried (whole, in the session's stash) to its preview page
/// by a redirect (POST/redirect/GET: nothing changes until Apply); a CSV with a bad line
/// goes back to the form with the lines named.
fn import_csv(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let text = req.form().text("csv");
    match pricing::parse_csv(ctx.db, &text, digits(ctx)) {
        Ok(_) => form::carry(ctx, &p.session, "/admin/prices/import", "csv", text),
        Err(e) => form::fail(ctx, req, &p.session, "/admin/prices", e),
    }
}

/// `GET /admin/prices/import`: the preview of the CSV just pasted (shown once; reloaded
/// later, it sends back to the prices).
fn import_preview(ctx: &mut Ctx<'_>, _req: &Request, p: &Page) -> Response {
    let Some(text) = p.kept.get("csv") else {
        let msg = "That import preview was shown already: paste the CSV again.".to_string();
        return form::tell(ctx, &p.session, "/admin/prices", Flash::Err(msg));
    };
    match pricing::parse_csv(ctx.db, text, digits(ctx)) {
        Ok(changes) => preview(ctx, p, pricing::Tool::Import, &changes, None),
        Err(e) => form::tell(ctx, &p.session, "/admin/prices", Flash::Err(e.to_string())),
    }
}

/// Applies a preview: the CSV of its changes, parsed and checked again; the audit names
/// the tool (described on the server).
fn apply(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let digits = digits(ctx);
    form::audited(
        ctx,
        req,
        p,
        "/admin/prices",
        |tx, f, actor, now| {
            let changes = pricing::parse_csv(tx, &f.text("csv"), digits)?;
            let tool = pricing::Tool::decode(&f.text("tool"));
            pricing::apply(tx, actor, &changes, tool, digits, now)
        },
        |ctx, n| {
            let msg = format!("{n} prices changed.");
            form::tell(ctx, &p.session, "/admin/prices", Flash::Ok(msg))
        },
    )
}

/// `/admin/prices/export?country=`: the price list (one country, or all) as CSV.
fn export(ctx: &mut Ctx<'_>, req: &Request, _p: &Page) -> Response {
    let country = req.query_param("country").and_then(|c| c.parse().ok());
    match pricing::export_csv(ctx.db, country, digits(ctx)) {
        Ok(csv) => {
            let name = country.map_or("prices-all.csv".to_string(), |c| format!("prices-{c}.csv"));
            Response::new(200, "text/csv; charset=utf-8", csv).with_header(
                "content-disposition",
                &format!("attachment; filename=\"{name}\""),
            )
        }
        Err(e) => Response::text(500, e.to_string()),
    }
}

fn toggle(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let back = req
        .header("referer")
        .and_then(|r| {
            ["/admin/prices", "/admin/catalogue"]
                .iter()
                .find_map(|page| r.find(page).map(|i| r[i..].to_string()))
        })
        .unwrap_or_else(|| "/admin/prices".into());
    let to = back.clone();
    form::audited(
        ctx,
        req,
        p,
        &back,
        |tx, f, actor, now| {
            let on = f.text("enabled") == "1";
            admin::set_enabled(tx, actor, &f.text("table"), &f.text("key"), on, now)
        },
        |_, ()| Response::redirect(&to),
    )
}

fn catalogue_page(ctx: &mut Ctx<'_>, _req: &Request, p: &Page) -> Response {
    let countries = catalogue::countries(ctx.db).unwrap_or_default();
    let services = catalogue::services(ctx.db).unwrap_or_default();
    let operators = entries::operators(ctx.db).unwrap_or_default();
    let v = view::CataloguePage {
        countries: &countries,
        services: &services,
        operators: &operators,
        default_ttl: ctx.app.config.activation_ttl,
    };
    Response::html(view::catalogue(&p.nav, p.csrf(), &v, &p.flash, &p.kept))
}

/// A catalogue form: `op` says what to do; success back to the page with a message.
fn entry_form(
    ctx: &mut Ctx<'_>,
    req: &Request,
    p: &Page,
    write: impl FnOnce(
            &rusqlite::Connection,
            &crate::http::request::Form,
            crate::domain::base::audit::Actor<'_>,
            i64,
        ) -> crate::domain::Result<String>
        + Send,
) -> Response {
    form::audited(ctx, req, p, "/admin/catalogue", write, |ctx, msg| {
        form::tell(ctx, &p.session, "/admin/catalogue", Flash::Ok(msg))
    })
}

fn country_form(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    entry_form(ctx, req, p, |tx, f, actor, now| {
        let id: i64 = f
            .text("id")
            .trim()
            .parse()
            .map_err(|_| crate::domain::Error::invalid("Give the country's numeric id."))?;
        let name = f.text("name");
        match f.text("op").as_str() {
            "add" => {
                let c = entries::NewCountry {
                    id,
                    iso: &f.text("iso"),
                    prefix: &f.text("prefix"),
                    name: &name,
                    fivesim_name: &f.text("fivesim"),
                };
                entries::add_country(tx, actor, &c, now)
                    .map(|()| format!("Country {} added; give it prices to sell it.", name.trim()))
            }
            "rename" => entries::rename_country(tx, actor, id, &name, now)
                .map(|()| format!("Country {id} renamed to {}.", name.trim())),
            "retire" => entries::retire_country(tx, actor, id, now).map(|()| {
                format!("Country {id} retired: off sale for good; its orders keep its name.")
            }),
            _ => Err(crate::domain::Error::invalid("Unknown action.")),
        }
    })
}

/// Minutes as typed (empty: the install's default) in seconds.
fn lifetime_of(text: &str) -> crate::domain::Result<Option<i64>> {
    match text.trim() {
        "" => Ok(None),
        t => t.parse::<i64>().map(|m| Some(m * 60)).map_err(|_| {
            crate::domain::Error::invalid("Give the lifetime in whole minutes, or leave it empty.")
        }),
    }
}

fn service_form(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    entry_form(ctx, req, p, |tx, f, actor, now| {
        let code = f.text("code").trim().to_string();
        let name = f.text("name");
        match f.text("op").as_str() {
            "add" => {
                let s = entries::NewService {
                    code: &code,
                    name: &name,
                    fivesim_name: &f.text("fivesim"),
                    lifetime_secs: lifetime_of(&f.text("lifetime"))?,
                };
                entries::add_service(tx, actor, &s, now)
                    .map(|()| format!("Service {} added; give it prices to sell it.", name.trim()))
            }
            "rename" => entries::rename_service(tx, actor, &code, &name, now)
                .map(|()| format!("Service {code} renamed to {}.", name.trim())),
            "lifetime" => {
                let secs = lifetime_of(&f.text("lifetime"))?;
                entries::set_lifetime(tx, actor, &code, secs, now).map(|()| match secs {
                    Some(s) => format!("Orders of {code} now live {} minutes.", s / 60),
                    None => format!("Orders of {code} now live the default time."),
                })
            }
            "retire" => entries::retire_service(tx, actor, &code, now).map(|()| {
                format!("Service {code} retired: off sale for good; its orders keep its name.")
            }),
            _ => Err(crate::domain::Error::invalid("Unknown action.")),
        }
    })
}

fn operator_form(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    entry_form(ctx, req, p, |tx, f, actor, now| {
        let country: i64 = f
            .text("country")
            .trim()
            .parse()
            .map_err(|_| crate::domain::Error::invalid("Choose the operator's country."))?;
        let code = f.text("code").trim().to_string();
        let name = f.text("name");
        match f.text("op").as_str() {
            "add" => entries::add_operator(tx, actor, country, &code, &name, now)
                .map(|()| format!("Operator {} added.", name.trim())),
            "rename" => entries::rename_operator(tx, actor, country, &code, &name, now)
                .map(|()| format!("Operator {code} renamed to {}.", name.trim())),
            "retire" => entries::retire_operator(tx, actor, country, &code, now)
                .map(|()| format!("Operator {code} retired.")),
            _ => Err(crate::domain::Error::invalid("Unknown action.")),
        }
    })
}
