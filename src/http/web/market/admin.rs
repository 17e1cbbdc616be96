//! Admin handlers of the marketplace: prices and catalogue switches, vouchers, credit,
//! simulator, numbers (added one by one or pasted in bulk) and operators' payouts. Every
//! change is audited.

use crate::db;
use crate::domain::accounts::Role;
use crate::domain::base::audit::Actor;
use crate::domain::base::money::{currency_digits, Money};
use crate::domain::market::catalogue::{self, Price};
use crate::domain::market::simulator::{self, Mode};
use crate::domain::supply::numbers::{self, Entry, NewNumber, Report};
use crate::domain::trust::admin;
use crate::domain::{base::audit, market::vouchers, supply::payouts};
use crate::http::auth::{Page, Signed};
use crate::http::router::Router;
use crate::http::web::{cur, flash_from_query};
use crate::http::{error_page, Ctx, Method, Request, Response};
use crate::views::market::admin as view;
use crate::views::{Flash, Nav};

pub fn routes(r: &mut Router) {
    r.page(Method::Get, "/admin/prices", Role::Admin, prices);
    r.page(Method::Post, "/admin/prices", Role::Admin, set_price);
    r.page(Method::Post, "/admin/catalogue/toggle", Role::Admin, toggle);
    r.page(Method::Get, "/admin/vouchers", Role::Admin, vouchers_page);
    r.page(
        Method::Post,
        "/admin/vouchers",
        Role::Admin,
        create_vouchers,
    );
    r.page(
        Method::Post,
        "/admin/users/{id}/credit",
        Role::Admin,
        credit,
    );
    r.page(Method::Get, "/admin/numbers", Role::Admin, numbers);
    r.page(Method::Post, "/admin/numbers/add", Role::Admin, add_number);
    r.page(
        Method::Post,
        "/admin/numbers/bulk",
        Role::Admin,
        add_numbers,
    );
    r.page(Method::Post, "/admin/simulator", Role::Admin, set_simulator);
    r.page(Method::Get, "/admin/payouts", Role::Admin, payouts_page);
    r.page(
        Method::Post,
        "/admin/payouts/{id}/paid",
        Role::Admin,
        payout_paid,
    );
    r.page(
        Method::Post,
        "/admin/payouts/{id}/reject",
        Role::Admin,
        payout_reject,
    );
}

fn prices_view(
    ctx: &mut Ctx<'_>,
    req: &Request,
    s: &Signed,
    n: &Nav,
    country: Option<i64>,
    flash: Option<Flash>,
    status: u16,
) -> Response {
    let countries = catalogue::countries(ctx.db).unwrap_or_default();
    let country = country
        .or_else(|| req.query_param("country").and_then(|c| c.parse().ok()))
        .or_else(|| countries.first().map(|c| c.id))
        .unwrap_or(0);
    let services = catalogue::services(ctx.db).unwrap_or_default();
    // Disabled entries still show their prices to the admin.
    let offers: Vec<catalogue::Offer> = services
        .iter()
        .filter_map(|sv| {
            catalogue::price(ctx.db, country, &sv.code, "")
                .ok()
                .flatten()
                .map(|p| catalogue::Offer {
                    country,
                    service: sv.code.clone(),
                    price_minor: p.price_minor,
                    rent_hour_minor: p.rent_hour_minor,
                    stock: 0,
                })
        })
        .collect();
    let stock = catalogue::offers(
        ctx.db,
        Some(country),
        None,
        ctx.app.config.reuse_cooldown,
        ctx.now(),
    )
    .unwrap_or_default();
    let offers: Vec<catalogue::Offer> = offers
        .into_iter()
        .map(|mut o| {
            o.stock = stock
                .iter()
                .find(|x| x.service == o.service)
                .map(|x| x.stock)
                .unwrap_or(0);
            o
        })
        .collect();
    Response::html(view::prices(
        n,
        s.csrf(),
        &cur(ctx),
        &countries,
        country,
        &services,
        &offers,
        &flash,
    ))
    .with_status(status)
}

fn prices(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    prices_view(ctx, req, s, n, None, flash_from_query(req), 200)
}

fn set_price(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let form = req.form();
    let digits = currency_digits(&ctx.app.config.currency);
    let country: i64 = form.text("country").parse().unwrap_or(-1);
    let service = form.text("service");
    let (Some(price), Some(rent)) = (
        Money::parse(&form.text("price"), digits, false),
        Money::parse(&form.text("rent_hour"), digits, false),
    ) else {
        return prices_view(
            ctx,
            req,
            s,
            n,
            Some(country),
            Some(Flash::Err("Enter both prices as amounts.".into())),
            400,
        );
    };
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    let actor = Actor {
        id: s.user.id,
        ip_hash: &ip,
    };
    let price = Price {
        price_minor: price.0,
        rent_hour_minor: rent.0,
    };
    let done = db::write(ctx.db, |tx| {
        admin::set_price(tx, actor, country, &service, "", price, digits, now)
    });
    match done {
        Ok(()) => Response::redirect(&format!("/admin/prices?country={country}&m=saved")),
        Err(e) => prices_view(
            ctx,
            req,
            s,
            n,
            Some(country),
            Some(Flash::Err(e.to_string())),
            e.http_status(),
        ),
    }
}

fn toggle(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let form = req.form();
    let table = form.text("table");
    let key = form.text("key");
    let on = form.text("enabled") == "1";
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    let actor = Actor {
        id: s.user.id,
        ip_hash: &ip,
    };
    let done = db::write(ctx.db, |tx| {
        admin::set_enabled(tx, actor, &table, &key, on, now)
    });
    let back = req
        .header("referer")
        .and_then(|r| r.find("/admin/prices").map(|i| r[i..].to_string()))
        .unwrap_or_else(|| "/admin/prices".into());
    match done {
        Ok(()) => Response::redirect(&back),
        Err(e) => prices_view(
            ctx,
            req,
            s,
            n,
            None,
            Some(Flash::Err(e.to_string())),
            e.http_status(),
        ),
    }
}

fn vouchers_view(
    ctx: &mut Ctx<'_>,
    s: &Signed,
    n: &Nav,
    codes: &[String],
    flash: Option<Flash>,
    status: u16,
) -> Response {
    let rows = vouchers::recent(ctx.db, 200).unwrap_or_default();
    Response::html(view::vouchers(n, s.csrf(), &cur(ctx), &rows, codes, &flash)).with_status(status)
}

fn vouchers_page(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    vouchers_view(ctx, s, n, &[], flash_from_query(req), 200)
}

fn create_vouchers(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let form = req.form();
    let digits = currency_digits(&ctx.app.config.currency);
    let count: u32 = form.text("count").parse().unwrap_or(0);
    let days: u32 = form.text("days").parse().unwrap_or(0);
    let Some(amount) = Money::parse(&form.text("amount"), digits, false) else {
        return vouchers_view(
            ctx,
            s,
            n,
            &[],
            Some(Flash::Err("Enter the amount, e.g. 10.00.".into())),
            400,
        );
    };
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    let keys = ctx.app.keys.clone();
    let actor = Actor {
        id: s.user.id,
        ip_hash: &ip,
    };
    let done = db::write(ctx.db, |tx| {
        admin::create_vouchers(tx, &keys, actor, count, amount.0, days, digits, now)
            .map(|b| b.codes)
    });
    match done {
        Ok(codes) => vouchers_view(
            ctx,
            s,
            n,
            &codes,
            Some(Flash::Ok(format!("{} vouchers created.", codes.len()))),
            201,
        ),
        Err(e) => vouchers_view(
            ctx,
            s,
            n,
            &[],
            Some(Flash::Err(e.to_string())),
            e.http_status(),
        ),
    }
}

fn credit(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such account.");
    };
    let form = req.form();
    let digits = currency_digits(&ctx.app.config.currency);
    let note = form.text("note");
    let Some(amount) = Money::parse(&form.text("amount"), digits, true).filter(|m| m.0 != 0) else {
        return error_page(req, 400, "Enter a non-zero amount such as 12.50 or -3.00.");
    };
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    let actor = Actor {
        id: s.user.id,
        ip_hash: &ip,
    };
    let done = db::write(ctx.db, |tx| {
        admin::credit(tx, actor, id, amount.0, &note, digits, now)
    });
    match done {
        Ok(_) => Response::redirect(&format!("/admin/users/{id}?m=saved")),
        Err(e) => error_page(req, e.http_status(), &e.to_string()),
    }
}

fn numbers_view(
    ctx: &mut Ctx<'_>,
    s: &Signed,
    n: &Nav,
    report: Option<&Report>,
    flash: Option<Flash>,
    status: u16,
) -> Response {
    let rows: Vec<view::NumberRow> = ctx
        .db
        .prepare(
            "SELECT n.phone, n.country_id, n.operator, n.source, n.state, n.last_used_at, \
             u.email, n.on_sale FROM numbers n LEFT JOIN users u ON u.id = n.owner_id \
             ORDER BY n.last_used_at DESC NULLS LAST, n.id DESC LIMIT 500",
        )
        .and_then(|mut st| {
            st.query_map([], |r| {
                Ok(view::NumberRow {
                    phone: r.get(0)?,
                    country: r.get(1)?,
                    operator: r.get(2)?,
                    source: r.get(3)?,
                    state: r.get(4)?,
                    last_used_at: r.get(5)?,
                    owner: r.get(6)?,
                    on_sale: r.get(7)?,
                })
            })?
            .collect()
        })
        .unwrap_or_default();
    let on = simulator::enabled(ctx.db).unwrap_or(false);
    let mode = simulator::mode(ctx.db).unwrap_or(Mode::Normal);
    let countries = catalogue::countries(ctx.db).unwrap_or_default();
    let page = view::NumbersPage {
        sim_on: on,
        sim_mode: mode,
        countries: &countries,
        rows: &rows,
        report,
    };
    Response::html(view::numbers(n, s.csrf(), &page, &flash)).with_status(status)
}

fn numbers(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    numbers_view(ctx, s, n, None, flash_from_query(req), 200)
}

/// Adds the entries for the admin (owned by the operator `owner`, if any) and shows the
/// report: 201 when something was added, 400 when every line was refused.
fn add_entries(
    ctx: &mut Ctx<'_>,
    req: &Request,
    s: &Signed,
    n: &Nav,
    entries: &[Entry],
    owner: &str,
) -> Response {
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    let actor = Actor {
        id: s.user.id,
        ip_hash: &ip,
    };
    match db::write(ctx.db, |tx| {
        numbers::add_batch(tx, actor, entries, owner, now)
    }) {
        Ok(report) => {
            let (flash, status) = if report.added.is_empty() {
                (Flash::Err("No number was added.".into()), 400)
            } else {
                let msg = format!(
                    "{} number(s) added and on sale; {} refused.",
                    report.added.len(),
                    report.refused.len()
                );
                (Flash::Ok(msg), 201)
            };
            numbers_view(ctx, s, n, Some(&report), Some(flash), status)
        }
        Err(e) => numbers_view(
            ctx,
            s,
            n,
            None,
            Some(Flash::Err(e.to_string())),
            e.http_status(),
        ),
    }
}

fn add_number(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let form = req.form();
    let phone = form.text("phone");
    let parsed = numbers::phone_digits(&phone).and_then(|digits| {
        let country_id = form
            .text("country")
            .trim()
            .parse::<i64>()
            .map_err(|_| "choose a country".to_string())?;
        Ok(NewNumber {
            phone: digits,
            country_id,
            operator: form.text("operator").trim().to_ascii_lowercase(),
        })
    });
    let entry = Entry {
        line: 1,
        text: phone.trim().to_string(),
        parsed,
    };
    add_entries(ctx, req, s, n, &[entry], &form.text("owner"))
}

fn add_numbers(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let form = req.form();
    let default_country = form.text("country").trim().parse::<i64>().ok();
    match numbers::parse_paste(&form.text("lines"), default_country) {
        Ok(entries) => add_entries(ctx, req, s, n, &entries, &form.text("owner")),
        Err(e) => numbers_view(
            ctx,
            s,
            n,
            None,
            Some(Flash::Err(e.to_string())),
            e.http_status(),
        ),
    }
}

fn set_simulator(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let form = req.form();
    let on = form.checked("on");
    let mode = Mode::parse(&form.text("mode")).unwrap_or(Mode::Normal);
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    let done = db::write(ctx.db, |tx| {
        simulator::configure(tx, on, mode)?;
        let detail = format!("{} ({})", if on { "on" } else { "off" }, mode.as_str());
        audit::audit(tx, Some(s.user.id), None, "simulator", &detail, &ip, now)
    });
    match done {
        Ok(()) => Response::redirect("/admin/numbers?m=saved"),
        Err(e) => numbers_view(
            ctx,
            s,
            n,
            None,
            Some(Flash::Err(e.to_string())),
            e.http_status(),
        ),
    }
}

fn payouts_view(
    ctx: &mut Ctx<'_>,
    s: &Signed,
    n: &Nav,
    flash: Option<Flash>,
    status: u16,
) -> Response {
    let list = payouts::list_all(ctx.db, 500).unwrap_or_default();
    Response::html(view::payouts(n, s.csrf(), &cur(ctx), &list, &flash)).with_status(status)
}

fn payouts_page(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    payouts_view(ctx, s, n, flash_from_query(req), 200)
}

fn payout_paid(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    decide_payout(ctx, req, p, Decision::Paid)
}

fn payout_reject(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    decide_payout(ctx, req, p, Decision::Reject)
}

enum Decision {
    Paid,
    /// With the form's note.
    Reject,
}

fn decide_payout(ctx: &mut Ctx<'_>, req: &Request, p: &Page, decision: Decision) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such payout.");
    };
    let note = req.form().text("note");
    let digits = currency_digits(&ctx.app.config.currency);
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    let actor = Actor {
        id: s.user.id,
        ip_hash: &ip,
    };
    let done = db::write(ctx.db, |tx| match decision {
        Decision::Paid => payouts::mark_paid(tx, actor, id, digits, now).map(|_| "payout_paid"),
        Decision::Reject => {
            payouts::reject(tx, actor, id, &note, digits, now).map(|_| "payout_rejected")
        }
    });
    match done {
        Ok(m) => Response::redirect(&format!("/admin/payouts?m={m}")),
        Err(e) => payouts_view(ctx, s, n, Some(Flash::Err(e.to_string())), e.http_status()),
    }
}
