//! Admin handlers of the marketplace: vouchers, credit,
//! simulator, numbers (added one by one or pasted in bulk) and operators' payouts. Every
//! change is audited. New voucher codes and the report of added numbers are shown once, in
//! the answer to the POST that created them.

use crate::domain::accounts::Role;
use crate::domain::base::money::{currency_digits, Money};
use crate::domain::market::catalogue;
use crate::domain::market::simulator::{self, Mode, Odds};
use crate::domain::supply::numbers::{self, Entry, NewNumber, Report};
use crate::domain::trust::admin;
use crate::domain::{base::audit, market::vouchers, supply::payouts};
use crate::http::auth::Page;
use crate::http::router::Router;
use crate::http::web::trust::admin::{user_back, user_form};
use crate::http::web::{cur, form};
use crate::http::{Ctx, Method, Request, Response};
use crate::views::market::admin as view;
use crate::views::Flash;

pub fn routes(r: &mut Router) {
    use Method::{Get, Post};
    r.pages(
        Role::Admin,
        &[
            (Get, "/admin/vouchers", vouchers_page),
            (Post, "/admin/vouchers", create_vouchers),
            (Post, "/admin/users/{id}/credit", credit),
            (Get, "/admin/numbers", numbers),
            (Post, "/admin/numbers/add", add_number),
            (Post, "/admin/numbers/bulk", add_numbers),
            (Post, "/admin/simulator", set_simulator),
            (Get, "/admin/payouts", payouts_page),
            (Post, "/admin/payouts/{id}/paid", payout_paid),
            (Post, "/admin/payouts/{id}/reject", payout_reject),
        ],
    );
}

/// The vouchers page; `codes` are the ones just created, shown once.
fn vouchers_view(ctx: &mut Ctx<'_>, p: &Page, codes: &[String], flash: &Option<Flash>) -> Response {
    let rows = vouchers::recent(ctx.db, 200).unwrap_or_default();
    let page = view::vouchers(&p.nav, p.csrf(), &cur(ctx), &rows, codes, flash, &p.kept);
    Response::html(page)
}

fn vouchers_page(ctx: &mut Ctx<'_>, _req: &Request, p: &Page) -> Response {
    vouchers_view(ctx, p, &[], &p.flash)
}

/// The new codes are shown once, in the answer to this POST.
fn create_vouchers(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let form = req.form();
    let digits = currency_digits(&ctx.app.config.currency);
    let count: u32 = form.text("count").parse().unwrap_or(0);
    let days: u32 = form.text("days").parse().unwrap_or(0);
    let Some(amount) = Money::parse(&form.text("amount"), digits, false) else {
        let msg = "Enter the amount, e.g. 10.00.";
        return form::fail(ctx, req, &p.session, "/admin/vouchers", msg);
    };
    let keys = ctx.app.keys.clone();
    form::audited(
        ctx,
        req,
        p,
        "/admin/vouchers",
        |tx, _, actor, now| {
            admin::create_vouchers(tx, &keys, actor, count, amount.0, days, digits, now)
                .map(|b| b.codes)
        },
        |ctx, codes| {
            let flash = Some(Flash::Ok(format!("{} vouchers created.", codes.len())));
            vouchers_view(ctx, p, &codes, &flash).with_status(201)
        },
    )
}

fn credit(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let form = req.form();
    let digits = currency_digits(&ctx.app.config.currency);
    let Some(amount) = Money::parse(&form.text("amount"), digits, true).filter(|m| m.0 != 0) else {
        let msg = "Enter a non-zero amount such as 12.50 or -3.00.";
        return form::fail(ctx, req, &p.session, &user_back(req), msg);
    };
    user_form(ctx, req, p, "saved", |tx, f, actor, id, now| {
        admin::credit(tx, actor, id, amount.0, &f.text("note"), digits, now)
    })
}

/// The numbers page; `report` is what an add just did, shown once.
fn numbers_view(
    ctx: &mut Ctx<'_>,
    p: &Page,
    report: Option<&Report>,
    flash: &Option<Flash>,
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
    let countries = catalogue::countries(ctx.db).unwrap_or_default();
    let page = view::NumbersPage {
        sim_on: simulator::enabled(ctx.db).unwrap_or(false),
        sim_odds: simulator::odds(ctx.db, ctx.app.config.sim_odds)
            .unwrap_or((ctx.app.config.sim_odds, false)),
        countries: &countries,
        rows: &rows,
        report,
    };
    Response::html(view::numbers(&p.nav, p.csrf(), &page, flash, &p.kept))
}

fn numbers(ctx: &mut Ctx<'_>, _req: &Request, p: &Page) -> Response {
    numbers_view(ctx, p, None, &p.flash)
}

/// Adds the entries for the admin (owned by the operator `owner`, if any) and shows the
/// report (201) when something was added; when every line was refused, back to the form
/// with the reasons.
fn add_entries(
    ctx: &mut Ctx<'_>,
    req: &Request,
    p: &Page,
    entries: &[Entry],
    owner: &str,
) -> Response {
    form::audited(
        ctx,
        req,
        p,
        "/admin/numbers",
        |tx, _, actor, now| numbers::add_batch(tx, actor, entries, owner, now),
        |ctx, report| {
            if report.added.is_empty() {
                let why: Vec<String> = report
                    .refused
                    .iter()
                    .map(|(line, text, why)| format!("line {line} ({text}): {why}"))
                    .collect();
                let msg = format!("No number was added: {}.", why.join("; "));
                return form::fail(ctx, req, &p.session, "/admin/numbers", msg);
            }
            let msg = format!(
                "{} number(s) added and on sale; {} refused.",
                report.added.len(),
                report.refused.len()
            );
            numbers_view(ctx, p, Some(&report), &Some(Flash::Ok(msg))).with_status(201)
        },
    )
}

fn add_number(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
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
    add_entries(ctx, req, p, &[entry], &form.text("owner"))
}

fn add_numbers(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let form = req.form();
    let default_country = form.text("country").trim().parse::<i64>().ok();
    match numbers::parse_paste(&form.text("lines"), default_country) {
        Ok(entries) => add_entries(ctx, req, p, &entries, &form.text("owner")),
        Err(e) => form::fail(ctx, req, &p.session, "/admin/numbers", e),
    }
}

/// The odds the simulator form asks for: `None` when it asks for the settings' defaults
/// (`defaults=1`); the old form's `mode` (one failure for every order) is still understood.
fn odds_from(f: &crate::http::request::Form) -> crate::domain::Result<Option<Odds>> {
    if f.checked("defaults") {
        return Ok(None);
    }
    if let Some(mode) = Mode::parse(f.text("mode").trim()) {
        return Ok(Some(Odds::all(mode)));
    }
    let mut percents = [0u32; 4];
    for (slot, mode) in percents.iter_mut().zip(Mode::FAILURES) {
        let text = f.text(mode.as_str());
        let text = text.trim().trim_end_matches('%').trim();
        *slot = match text {
            "" => 0,
            t => t.parse().map_err(|_| {
                crate::domain::Error::invalid(format!(
                    "The odds of {} must be a whole percentage from 0 to 100.",
                    mode.as_str().replace('_', " ")
                ))
            })?,
        };
    }
    let seed = match f.text("seed").trim() {
        "" => None,
        t => Some(t.parse().map_err(|_| {
            crate::domain::Error::invalid("The seed must be a whole number (or empty).")
        })?),
    };
    Odds::new(percents, seed).map(Some)
}

fn set_simulator(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    form::audited(
        ctx,
        req,
        p,
        "/admin/numbers",
        |tx, f, actor, now| {
            let on = f.checked("on");
            let odds = odds_from(f)?;
            simulator::set_on(tx, on)?;
            simulator::set_odds(tx, odds)?;
            let said = match odds {
                None => "odds from the settings".to_string(),
                Some(o) => {
                    let mut parts: Vec<String> = Mode::FAILURES
                        .iter()
                        .map(|m| format!("{} {}%", m.as_str(), o.of(*m)))
                        .collect();
                    if let Some(seed) = o.seed {
                        parts.push(format!("seed {seed}"));
                    }
                    parts.join(", ")
                }
            };
            let detail = format!("{} ({said})", if on { "on" } else { "off" });
            audit::audit(
                tx,
                Some(actor.id),
                None,
                "simulator",
                &detail,
                actor.ip_hash,
                now,
            )
        },
        |_, ()| Response::redirect("/admin/numbers?m=saved"),
    )
}

fn payouts_page(ctx: &mut Ctx<'_>, _req: &Request, p: &Page) -> Response {
    let list = payouts::list_all(ctx.db, 500).unwrap_or_default();
    let page = view::payouts(&p.nav, p.csrf(), &cur(ctx), &list, &p.flash, &p.kept);
    Response::html(page)
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
    let Some(id) = req.id_param("id") else {
        return form::fail(ctx, req, &p.session, "/admin/payouts", "No such payout.");
    };
    let digits = currency_digits(&ctx.app.config.currency);
    form::audited(
        ctx,
        req,
        p,
        "/admin/payouts",
        |tx, f, actor, now| match decision {
            Decision::Paid => payouts::mark_paid(tx, actor, id, digits, now).map(|_| "payout_paid"),
            Decision::Reject => payouts::reject(tx, actor, id, &f.text("note"), digits, now)
                .map(|_| "payout_rejected"),
        },
        |_, m| Response::redirect(&format!("/admin/payouts?m={m}")),
    )
}
