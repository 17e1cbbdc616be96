//! Admin pages for abuse and enforcement: the abuse queue (reports and appeals, states,
//! notes, the audited look-up of orders on a reported number), anomaly flags, blocked
//! services and countries, the law-enforcement register, and the user page's termination,
//! reinstatement and chargeback forms. Every change goes through the domain function that
//! audits it.

use maud::Markup;
use rusqlite::Connection;

use crate::clock::{format_datetime, Timestamp};
use crate::domain::accounts::{Role, User};
use crate::domain::base::audit::Actor;
use crate::domain::base::money::{currency_digits, Money};
use crate::domain::trust::abuse::{self, State};
use crate::domain::trust::admin;
use crate::domain::trust::legal::{self, NewRequest, Outcome};
use crate::domain::{market::blocklist, market::catalogue, trust::signals, Error};
use crate::http::auth::Page;
use crate::http::router::Router;
use crate::http::web::form;
use crate::http::web::trust::admin::{user_back, user_form};
use crate::http::{error_page, Ctx, Method, Request, Response};
use crate::views::trust::abuse::{self as view, UserEnforcement};
use crate::views::Kept;

pub fn routes(r: &mut Router) {
    use Method::{Get, Post};
    r.pages(
        Role::Admin,
        &[
            (Get, "/admin/abuse", queue),
            (Get, "/admin/abuse/{id}", report),
            (Get, "/admin/abuse/{id}/orders", report_orders),
            (Post, "/admin/abuse/{id}/state", set_state),
            (Post, "/admin/abuse/{id}/note", add_note),
            (Get, "/admin/flags", flags),
            (Post, "/admin/flags/{id}/review", review_flag),
            (Get, "/admin/blocked", blocked),
            (Post, "/admin/blocked", add_block),
            (Post, "/admin/blocked/{id}/remove", remove_block),
            (Get, "/admin/legal", legal_page),
            (Post, "/admin/legal", add_legal),
            (Post, "/admin/legal/{id}", update_legal),
            (Post, "/admin/users/{id}/terminate", terminate),
            (Post, "/admin/users/{id}/reinstate", reinstate),
            (Post, "/admin/users/{id}/chargeback", chargeback),
        ],
    );
}

/// An audited admin change in one transaction: back to `back` with "Saved.", or with the
/// error and the typed values.
fn change<T: Send>(
    ctx: &mut Ctx<'_>,
    req: &Request,
    p: &Page,
    back: &str,
    write: impl FnOnce(&Connection, Actor<'_>, Timestamp) -> crate::domain::Result<T> + Send,
) -> Response {
    form::audited(
        ctx,
        req,
        p,
        back,
        |tx, _, actor, now| write(tx, actor, now),
        |_, _| Response::redirect(&format!("{back}?m=saved")),
    )
}

/// The enforcement section of the admin's user page (flags, chargebacks, termination).
pub fn user_section(ctx: &Ctx<'_>, token: &str, u: &User, kept: &Kept) -> Markup {
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
        kept,
    )
}

// ---------------------------------------------------------------------------------------
// The queue

fn queue(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let filter = req.query_param("state").and_then(|s| State::parse(&s));
    let (counts, list) = match abuse::counts(ctx.db).and_then(|c| {
        let l = abuse::list(ctx.db, filter, 500)?;
        Ok((c, l))
    }) {
        Ok(x) => x,
        Err(e) => return error_page(req, 500, &e.to_string()),
    };
    Response::html(view::queue(&p.nav, filter, &counts, &list, &p.flash))
}

fn report_page(ctx: &mut Ctx<'_>, req: &Request, p: &Page, lookup: bool) -> Response {
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such report.");
    };
    let r = match abuse::get(ctx.db, id) {
        Ok(r) => r,
        Err(e) => return error_page(req, e.http_status(), &e.to_string()),
    };
    let found = if lookup {
        match form::acting(ctx, req, p, |tx, actor, now| {
            abuse::orders_on_number(tx, actor, id, now)
        }) {
            Ok(l) => Some(l),
            Err(e) => return error_page(req, e.http_status(), &e.to_string()),
        }
    } else {
        None
    };
    let notes = abuse::notes(ctx.db, id).unwrap_or_default();
    Response::html(view::report(
        &p.nav,
        p.csrf(),
        &r,
        &notes,
        found.as_ref(),
        &p.flash,
        &p.kept,
    ))
}

fn report(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    report_page(ctx, req, p, false)
}

/// The report with the orders that used its number: reading them is audited.
fn report_orders(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    report_page(ctx, req, p, true)
}

/// A form of report `{id}`'s page.
fn report_form<T: Send>(
    ctx: &mut Ctx<'_>,
    req: &Request,
    p: &Page,
    write: impl FnOnce(&Connection, Actor<'_>, i64, Timestamp) -> crate::domain::Result<T> + Send,
) -> Response {
    let Some(id) = req.id_param("id") else {
        return form::fail(ctx, req, &p.session, "/admin/abuse", "No such report.");
    };
    change(
        ctx,
        req,
        p,
        &format!("/admin/abuse/{id}"),
        |tx, actor, now| write(tx, actor, id, now),
    )
}

fn set_state(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let form = req.form();
    let Some(to) = State::parse(&form.text("state")) else {
        let back = match req.id_param("id") {
            Some(id) => format!("/admin/abuse/{id}"),
            None => "/admin/abuse".into(),
        };
        return form::fail(ctx, req, &p.session, &back, "Choose a state.");
    };
    let note = form.text("note");
    report_form(ctx, req, p, |tx, actor, id, now| {
        abuse::set_state(tx, actor, id, to, &note, now)
    })
}

fn add_note(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let text = req.form().text("text");
    report_form(ctx, req, p, |tx, actor, id, now| {
        abuse::add_note(tx, actor, id, &text, now)
    })
}

// ---------------------------------------------------------------------------------------
// Flags

fn flags(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let state = req
        .query_param("state")
        .filter(|s| s == "open" || s == "reviewed");
    match signals::list(ctx.db, state.as_deref(), None, 500) {
        Ok(list) => Response::html(view::flags(
            &p.nav,
            p.csrf(),
            state.as_deref(),
            &list,
            &p.flash,
        )),
        Err(e) => error_page(req, 500, &e.to_string()),
    }
}

fn review_flag(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let back = req.form().text("back");
    let back = if back.starts_with("/admin/") && !back.contains("//") {
        back
    } else {
        "/admin/flags".into()
    };
    let Some(id) = req.id_param("id") else {
        return form::fail(ctx, req, &p.session, &back, "No such flag.");
    };
    change(ctx, req, p, &back, |tx, actor, now| {
        signals::review(tx, actor, id, now)
    })
}

// ---------------------------------------------------------------------------------------
// Blocked services and countries

fn blocked(ctx: &mut Ctx<'_>, _req: &Request, p: &Page) -> Response {
    let entries = blocklist::list(ctx.db).unwrap_or_default();
    let countries = catalogue::countries(ctx.db).unwrap_or_default();
    let services = catalogue::services(ctx.db).unwrap_or_default();
    Response::html(view::blocked(
        &p.nav,
        p.csrf(),
        &entries,
        &countries,
        &services,
        &p.flash,
        &p.kept,
    ))
}

fn add_block(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let form = req.form();
    let country = match form.text("country").as_str() {
        "" => None,
        c => match c.parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => return form::fail(ctx, req, &p.session, "/admin/blocked", Error::BadCountry),
        },
    };
    let service = form.text("service");
    let service = (!service.is_empty()).then_some(service);
    let reason = form.text("reason");
    change(ctx, req, p, "/admin/blocked", |tx, actor, now| {
        admin::block(tx, actor, country, service.as_deref(), &reason, now)
    })
}

fn remove_block(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let Some(id) = req.id_param("id") else {
        return form::fail(ctx, req, &p.session, "/admin/blocked", "No such block.");
    };
    change(ctx, req, p, "/admin/blocked", |tx, actor, now| {
        admin::unblock(tx, actor, id, now)
    })
}

// ---------------------------------------------------------------------------------------
// Law-enforcement register

fn legal_page(ctx: &mut Ctx<'_>, _req: &Request, p: &Page) -> Response {
    let list = legal::list(ctx.db).unwrap_or_default();
    let today: String = format_datetime(ctx.now()).chars().take(10).collect();
    Response::html(view::legal(
        &p.nav,
        p.csrf(),
        &today,
        &list,
        &p.flash,
        &p.kept,
    ))
}

/// A form of the register: `write` gets the request as typed; back to the register.
fn legal_form<T: Send>(
    ctx: &mut Ctx<'_>,
    req: &Request,
    p: &Page,
    write: impl FnOnce(&Connection, Actor<'_>, &NewRequest, Timestamp) -> crate::domain::Result<T>
        + Send,
) -> Response {
    let form = req.form();
    let Some(outcome) = Outcome::parse(&form.text("outcome")) else {
        return form::fail(ctx, req, &p.session, "/admin/legal", "Choose an outcome.");
    };
    let r = NewRequest {
        received_on: form.text("received_on"),
        agency: form.text("agency"),
        scope: form.text("scope"),
        outcome,
        notes: form.text("notes"),
    };
    change(ctx, req, p, "/admin/legal", |tx, actor, now| {
        write(tx, actor, &r, now)
    })
}

fn add_legal(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    legal_form(ctx, req, p, |tx, actor, r, now| {
        legal::add(tx, actor, r, now)
    })
}

fn update_legal(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let Some(id) = req.id_param("id") else {
        return form::fail(ctx, req, &p.session, "/admin/legal", "No such request.");
    };
    legal_form(ctx, req, p, |tx, actor, r, now| {
        legal::update(tx, actor, id, r, now)
    })
}

// ---------------------------------------------------------------------------------------
// The user page's forms

fn terminate(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let policy = ctx.app.policy();
    let cfg = &ctx.app.config;
    let digits = currency_digits(&cfg.currency);
    let keys = ctx.app.keys.clone();
    let (base_url, site_name, smtp) = (
        cfg.base_url.clone(),
        cfg.site_name.clone(),
        cfg.smtp.is_some(),
    );
    let resp = user_form(ctx, req, p, "terminated", |tx, f, actor, id, now| {
        let reason = f.text("reason");
        let (user, _) = admin::terminate(tx, actor, id, &reason, &policy, digits, now)?;
        let site = abuse::MailSite {
            base_url: &base_url,
            site_name: &site_name,
            smtp,
        };
        abuse::queue_termination_mail(tx, &keys, &user, &user.state_reason, &site, now)
    });
    // Ended orders may have parked long-poll readers.
    ctx.app.notify();
    resp
}

fn reinstate(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    user_form(ctx, req, p, "reinstated", |tx, f, actor, id, now| {
        admin::reinstate(tx, actor, id, &f.text("reason"), now)
    })
}

fn chargeback(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let form = req.form();
    let digits = currency_digits(&ctx.app.config.currency);
    let Some(amount) = Money::parse(&form.text("amount"), digits, false).filter(|m| m.0 > 0) else {
        let msg = "Enter the amount charged back, such as 25.00.";
        return form::fail(ctx, req, &p.session, &user_back(req), msg);
    };
    let (reference, debit) = (form.text("reference"), form.checked("debit"));
    user_form(ctx, req, p, "saved", |tx, _, actor, id, now| {
        signals::record_chargeback(tx, actor, id, amount.0, &reference, debit, digits, now)
    })
}
