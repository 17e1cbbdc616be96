//! Admin pages for abuse and enforcement: the abuse queue (reports and appeals, states,
//! notes, the audited look-up of orders on a reported number), anomaly flags, blocked
//! services and countries, the law-enforcement register, and the user page's termination,
//! reinstatement and chargeback forms. Every change goes through the domain function that
//! audits it.

use maud::Markup;

use crate::clock::format_datetime;
use crate::db;
use crate::domain::accounts::{Role, User};
use crate::domain::base::audit::Actor;
use crate::domain::base::money::{currency_digits, Money};
use crate::domain::trust::abuse::{self, State};
use crate::domain::trust::admin;
use crate::domain::trust::legal::{self, NewRequest, Outcome};
use crate::domain::{market::blocklist, market::catalogue, trust::signals, Error};
use crate::http::auth::{Page, Signed};
use crate::http::router::Router;
use crate::http::web::flash_from_query;
use crate::http::{error_page, Ctx, Method, Request, Response};
use crate::views::trust::abuse::{self as view, UserEnforcement};

pub fn routes(r: &mut Router) {
    r.page(Method::Get, "/admin/abuse", Role::Admin, queue);
    r.page(Method::Get, "/admin/abuse/{id}", Role::Admin, report);
    r.page(
        Method::Get,
        "/admin/abuse/{id}/orders",
        Role::Admin,
        report_orders,
    );
    r.page(
        Method::Post,
        "/admin/abuse/{id}/state",
        Role::Admin,
        set_state,
    );
    r.page(
        Method::Post,
        "/admin/abuse/{id}/note",
        Role::Admin,
        add_note,
    );
    r.page(Method::Get, "/admin/flags", Role::Admin, flags);
    r.page(
        Method::Post,
        "/admin/flags/{id}/review",
        Role::Admin,
        review_flag,
    );
    r.page(Method::Get, "/admin/blocked", Role::Admin, blocked);
    r.page(Method::Post, "/admin/blocked", Role::Admin, add_block);
    r.page(
        Method::Post,
        "/admin/blocked/{id}/remove",
        Role::Admin,
        remove_block,
    );
    r.page(Method::Get, "/admin/legal", Role::Admin, legal_page);
    r.page(Method::Post, "/admin/legal", Role::Admin, add_legal);
    r.page(Method::Post, "/admin/legal/{id}", Role::Admin, update_legal);
    r.page(
        Method::Post,
        "/admin/users/{id}/terminate",
        Role::Admin,
        terminate,
    );
    r.page(
        Method::Post,
        "/admin/users/{id}/reinstate",
        Role::Admin,
        reinstate,
    );
    r.page(
        Method::Post,
        "/admin/users/{id}/chargeback",
        Role::Admin,
        chargeback,
    );
}

/// Runs an audited admin change in one transaction and redirects to `to` (with `?m=`), or
/// answers the error as a page.
fn change<T>(
    ctx: &mut Ctx<'_>,
    req: &Request,
    s: &Signed,
    to: &str,
    f: impl FnOnce(&rusqlite::Transaction<'_>, Actor<'_>, i64) -> crate::domain::Result<T>,
) -> Response {
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    let actor = Actor {
        id: s.user.id,
        ip_hash: &ip,
    };
    match db::write(ctx.db, |tx| f(tx, actor, now)) {
        Ok(_) => Response::redirect(to),
        Err(e) => error_page(req, e.http_status(), &e.to_string()),
    }
}

/// The enforcement section of the admin's user page (flags, chargebacks, termination).
pub fn user_section(ctx: &Ctx<'_>, token: &str, u: &User) -> Markup {
    let flags = signals::list(ctx.db, None, Some(u.id), 100).unwrap_or_default();
    let chargebacks = signals::chargebacks_for(ctx.db, u.id).unwrap_or_default();
    let appeal =
        abuse::appeal_status(ctx.db, u.id, ctx.now()).unwrap_or(abuse::Appeal::NotTerminated);
    view::user_section(
        token,
        &UserEnforcement {
            user: u,
            flags: &flags,
            chargebacks: &chargebacks,
            appeal: &appeal,
            currency: &ctx.app.config.currency,
            digits: currency_digits(&ctx.app.config.currency),
        },
    )
}

// ---------------------------------------------------------------------------------------
// The queue

fn queue(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let n = &p.nav;
    let filter = req.query_param("state").and_then(|s| State::parse(&s));
    let (counts, list) = match abuse::counts(ctx.db).and_then(|c| {
        let l = abuse::list(ctx.db, filter, 500)?;
        Ok((c, l))
    }) {
        Ok(x) => x,
        Err(e) => return error_page(req, 500, &e.to_string()),
    };
    Response::html(view::queue(
        n,
        filter,
        &counts,
        &list,
        &flash_from_query(req),
    ))
}

fn report_page(ctx: &mut Ctx<'_>, req: &Request, p: &Page, lookup: bool) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such report.");
    };
    let r = match abuse::get(ctx.db, id) {
        Ok(r) => r,
        Err(e) => return error_page(req, e.http_status(), &e.to_string()),
    };
    let found = if lookup {
        let now = ctx.now();
        let ip = ctx.ip_hash(req);
        let actor = Actor {
            id: s.user.id,
            ip_hash: &ip,
        };
        match db::write(ctx.db, |tx| abuse::orders_on_number(tx, actor, id, now)) {
            Ok(l) => Some(l),
            Err(e) => return error_page(req, e.http_status(), &e.to_string()),
        }
    } else {
        None
    };
    let notes = abuse::notes(ctx.db, id).unwrap_or_default();
    Response::html(view::report(
        n,
        s.csrf(),
        &r,
        &notes,
        found.as_ref(),
        &flash_from_query(req),
    ))
}

fn report(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    report_page(ctx, req, p, false)
}

/// The report with the orders that used its number: reading them is audited.
fn report_orders(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    report_page(ctx, req, p, true)
}

fn set_state(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such report.");
    };
    let form = req.form();
    let Some(to) = State::parse(&form.text("state")) else {
        return error_page(req, 400, "Choose a state.");
    };
    let note = form.text("note");
    change(
        ctx,
        req,
        s,
        &format!("/admin/abuse/{id}?m=saved"),
        |tx, actor, now| abuse::set_state(tx, actor, id, to, &note, now),
    )
}

fn add_note(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such report.");
    };
    let text = req.form().text("text");
    change(
        ctx,
        req,
        s,
        &format!("/admin/abuse/{id}?m=saved"),
        |tx, actor, now| abuse::add_note(tx, actor, id, &text, now),
    )
}

// ---------------------------------------------------------------------------------------
// Flags

fn flags(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let state = req
        .query_param("state")
        .filter(|s| s == "open" || s == "reviewed");
    match signals::list(ctx.db, state.as_deref(), None, 500) {
        Ok(list) => Response::html(view::flags(
            n,
            s.csrf(),
            state.as_deref(),
            &list,
            &flash_from_query(req),
        )),
        Err(e) => error_page(req, 500, &e.to_string()),
    }
}

fn review_flag(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such flag.");
    };
    let back = req.form().text("back");
    let back = if back.starts_with("/admin/") && !back.contains("//") {
        back
    } else {
        "/admin/flags".into()
    };
    change(ctx, req, s, &format!("{back}?m=saved"), |tx, actor, now| {
        signals::review(tx, actor, id, now)
    })
}

// ---------------------------------------------------------------------------------------
// Blocked services and countries

fn blocked(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let entries = blocklist::list(ctx.db).unwrap_or_default();
    let countries = catalogue::countries(ctx.db).unwrap_or_default();
    let services = catalogue::services(ctx.db).unwrap_or_default();
    Response::html(view::blocked(
        n,
        s.csrf(),
        &entries,
        &countries,
        &services,
        &flash_from_query(req),
    ))
}

fn add_block(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let form = req.form();
    let country = match form.text("country").as_str() {
        "" => None,
        c => match c.parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => return error_page(req, 400, &Error::BadCountry.to_string()),
        },
    };
    let service = form.text("service");
    let service = (!service.is_empty()).then_some(service);
    let reason = form.text("reason");
    change(ctx, req, s, "/admin/blocked?m=saved", |tx, actor, now| {
        admin::block(tx, actor, country, service.as_deref(), &reason, now)
    })
}

fn remove_block(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such block.");
    };
    change(ctx, req, s, "/admin/blocked?m=saved", |tx, actor, now| {
        admin::unblock(tx, actor, id, now)
    })
}

// ---------------------------------------------------------------------------------------
// Law-enforcement register

fn legal_page(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let list = legal::list(ctx.db).unwrap_or_default();
    let today: String = format_datetime(ctx.now()).chars().take(10).collect();
    Response::html(view::legal(
        n,
        s.csrf(),
        &today,
        &list,
        &flash_from_query(req),
    ))
}

fn legal_form(req: &Request) -> Result<NewRequest, Response> {
    let form = req.form();
    let Some(outcome) = Outcome::parse(&form.text("outcome")) else {
        return Err(error_page(req, 400, "Choose an outcome."));
    };
    Ok(NewRequest {
        received_on: form.text("received_on"),
        agency: form.text("agency"),
        scope: form.text("scope"),
        outcome,
        notes: form.text("notes"),
    })
}

fn add_legal(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let r = match legal_form(req) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    change(ctx, req, s, "/admin/legal?m=saved", |tx, actor, now| {
        legal::add(tx, actor, &r, now)
    })
}

fn update_legal(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such request.");
    };
    let r = match legal_form(req) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    change(ctx, req, s, "/admin/legal?m=saved", |tx, actor, now| {
        legal::update(tx, actor, id, &r, now)
    })
}

// ---------------------------------------------------------------------------------------
// The user page's forms

fn terminate(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such account.");
    };
    let reason = req.form().text("reason");
    let policy = ctx.app.policy();
    let cfg = &ctx.app.config;
    let digits = currency_digits(&cfg.currency);
    let keys = ctx.app.keys.clone();
    let (base_url, site_name, smtp) = (
        cfg.base_url.clone(),
        cfg.site_name.clone(),
        cfg.smtp.is_some(),
    );
    let resp = change(
        ctx,
        req,
        s,
        &format!("/admin/users/{id}?m=terminated"),
        |tx, actor, now| {
            let (user, _) = admin::terminate(tx, actor, id, &reason, &policy, digits, now)?;
            let site = abuse::MailSite {
                base_url: &base_url,
                site_name: &site_name,
                smtp,
            };
            abuse::queue_termination_mail(tx, &keys, &user, &user.state_reason, &site, now)
        },
    );
    // Ended orders may have parked long-poll readers.
    ctx.app.notify();
    resp
}

fn reinstate(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such account.");
    };
    let reason = req.form().text("reason");
    change(
        ctx,
        req,
        s,
        &format!("/admin/users/{id}?m=reinstated"),
        |tx, actor, now| admin::reinstate(tx, actor, id, &reason, now),
    )
}

fn chargeback(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such account.");
    };
    let form = req.form();
    let digits = currency_digits(&ctx.app.config.currency);
    let Some(amount) = Money::parse(&form.text("amount"), digits, false).filter(|m| m.0 > 0) else {
        return error_page(req, 400, "Enter the amount charged back, such as 25.00.");
    };
    let reference = form.text("reference");
    let debit = form.checked("debit");
    change(
        ctx,
        req,
        s,
        &format!("/admin/users/{id}?m=saved"),
        |tx, actor, now| {
            signals::record_chargeback(tx, actor, id, amount.0, &reference, debit, digits, now)
        },
    )
}
