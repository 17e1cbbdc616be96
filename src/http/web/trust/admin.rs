//! Admin pages: users (search, view, role and state changes, audited), job runs, outbox,
//! audit log.

use rusqlite::Connection;

use crate::clock::{describe_seconds, Timestamp};
use crate::domain::accounts::{self, Role, State};
use crate::domain::base::audit::Actor;
use crate::domain::trust::admin;
use crate::domain::trust::retention::{self, Rule};
use crate::domain::{accounts::second_factor, base::audit, trust::lifecycle};
use crate::http::auth::Page;
use crate::http::request::Form;
use crate::http::router::Router;
use crate::http::web::form;
use crate::http::{error_page, Ctx, Method, Request, Response};
use crate::views::{trust::admin as view, Flash, Kept, Nav};

pub fn routes(r: &mut Router) {
    use Method::{Get, Post};
    r.pages(
        Role::Admin,
        &[
            (Get, "/admin", overview),
            (Get, "/admin/users", users),
            (Get, "/admin/users/{id}", user),
            (Get, "/admin/users/{id}/ledger", ledger),
            (Post, "/admin/users/{id}/role", set_role),
            (Post, "/admin/users/{id}/state", set_state),
            (Post, "/admin/users/{id}/2fa/reset", reset_second_factor),
            (Get, "/admin/jobs", jobs),
            (Get, "/admin/retention", retention_page),
            (Get, "/admin/outbox", outbox),
            (Get, "/admin/audit", audit_log),
        ],
    );
}

/// Audit rows per page of `/admin/audit`.
const AUDIT_PER_PAGE: i64 = 100;
const USERS_PER_PAGE: i64 = 100;

fn count(ctx: &Ctx<'_>, sql: &str, p: i64) -> i64 {
    ctx.db.query_row(sql, [p], |r| r.get(0)).unwrap_or(0)
}

fn overview(ctx: &mut Ctx<'_>, _req: &Request, p: &Page) -> Response {
    use crate::domain::supply::stats;
    let now = ctx.now();
    let today = stats::day_of(now);
    let days = stats::daily(ctx.db, today - 29, today).unwrap_or_default();
    let sum = |n: usize| view::Totals::of(&days[days.len().saturating_sub(n)..]);
    let sources = stats::by_source(ctx.db, today - 29, today).unwrap_or_default();
    let queues = admin::queues(ctx.db, now).unwrap_or_default();
    let quiet = admin::quiet_devices(ctx.db, 20).unwrap_or_default();
    let cur = crate::http::web::cur(ctx);
    let o = view::Overview {
        users: count(ctx, "SELECT COUNT(*) FROM users WHERE id > ?1", 0),
        active_sessions: count(
            ctx,
            "SELECT COUNT(*) FROM sessions WHERE user_id IS NOT NULL AND expires_at > ?1",
            now,
        ),
        // Through `outbox_pending` (sent_at, id): the unsent mail only.
        pending_mail: ctx
            .db
            .query_row(
                "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap_or(0),
        periods: [("Today", sum(1)), ("7 days", sum(7)), ("30 days", sum(30))],
        days: &days,
        sources: &sources,
        queues: &queues,
        quiet_devices: &quiet,
        cur: &cur,
    };
    Response::html(view::overview(&p.nav, &o))
}

/// `/admin/users?q=&before=`: accounts newest first, a page at a time by keyset.
fn users(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let q = req.query_param("q").unwrap_or_default();
    let before = req.query_param("before").and_then(|b| b.parse().ok());
    match accounts::search(ctx.db, &q, before, USERS_PER_PAGE + 1) {
        Ok(mut list) => {
            let older = (list.len() as i64 > USERS_PER_PAGE).then(|| {
                list.truncate(USERS_PER_PAGE as usize);
                list.last().map_or(0, |u| u.id)
            });
            Response::html(view::users(&p.nav, &q, &list, before.is_some(), older))
        }
        Err(e) => error_page(req, 500, &e.to_string()),
    }
}

/// The admin's page of account `{id}`, with the sections of the other areas below.
fn user_view(
    ctx: &mut Ctx<'_>,
    req: &Request,
    nav: &Nav,
    token: &str,
    flash: &Option<Flash>,
    kept: &Kept,
) -> Response {
    let found = req.id_param("id").map(|id| accounts::find(ctx.db, id));
    let Some(Ok(Some(u))) = found else {
        return error_page(req, 404, "No such account.");
    };
    let requests = lifecycle::requests_for(ctx.db, u.id, 50).unwrap_or_default();
    let mut sign_in: Vec<String> = Vec::new();
    if u.password_hash.is_some() {
        sign_in.push("password".into());
    }
    let linked = crate::domain::accounts::identities::list_for(ctx.db, u.id).unwrap_or_default();
    sign_in.extend(linked.iter().map(|i| {
        let label = ctx.app.config.oidc.iter().find(|p| p.name == i.provider);
        label.map_or_else(|| i.provider.clone(), |p| p.label.clone())
    }));
    let page = view::UserPage {
        user: &u,
        two_factor: second_factor::enabled(ctx.db, u.id).unwrap_or(false),
        sign_in,
        currency: &ctx.app.config.currency,
        panels: vec![
            orders_panel(ctx, u.id),
            crate::views::trust::lifecycle::admin_user_panel(&u, token, &requests),
            crate::http::web::trust::abuse_queue::user_section(ctx, token, &u, kept),
        ],
    };
    Response::html(view::user(nav, token, &page, flash, kept))
}

/// The account's newest orders (ten of each kind), without their numbers.
fn orders_panel(ctx: &Ctx<'_>, user: i64) -> maud::Markup {
    let (activations, rentals) =
        crate::domain::trust::orders::recent_for(ctx.db, user, 10).unwrap_or_default();
    let cur = crate::http::web::cur(ctx);
    crate::views::market::admin_orders::user_panel(user, &cur, &activations, &rentals)
}

fn user(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    user_view(ctx, req, &p.nav, p.csrf(), &p.flash, &p.kept)
}

/// Where a form of the user page `{id}` goes back to.
pub(in crate::http::web) fn user_back(req: &Request) -> String {
    match req.id_param("id") {
        Some(id) => format!("/admin/users/{id}"),
        None => "/admin/users".into(),
    }
}

/// A form of the admin's user page: `write` changes account `{id}` as the page's account
/// (the domain audits it); success goes back to the page with the fixed message `m`, a
/// failure with the error and the typed values.
pub(in crate::http::web) fn user_form<T: Send>(
    ctx: &mut Ctx<'_>,
    req: &Request,
    p: &Page,
    m: &str,
    write: impl FnOnce(&Connection, &Form, Actor<'_>, i64, Timestamp) -> crate::domain::Result<T> + Send,
) -> Response {
    let back = user_back(req);
    let Some(id) = req.id_param("id") else {
        return form::fail(ctx, req, &p.session, &back, "No such account.");
    };
    form::audited(
        ctx,
        req,
        p,
        &back,
        |tx, f, actor, now| write(tx, f, actor, id, now),
        |_, _| Response::redirect(&format!("{back}?m={m}")),
    )
}

fn set_role(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let Some(role) = Role::parse(&req.form().text("role")) else {
        return form::fail(ctx, req, &p.session, &user_back(req), "Unknown role.");
    };
    user_form(ctx, req, p, "role_changed", |tx, _, actor, id, now| {
        admin::set_role(tx, actor, id, role, now)
    })
}

fn set_state(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let state = match State::parse(&req.form().text("state")) {
        Some(st @ (State::Active | State::Suspended)) => st,
        _ => {
            let back = user_back(req);
            return form::fail(ctx, req, &p.session, &back, "Choose active or suspended.");
        }
    };
    user_form(ctx, req, p, "state_changed", |tx, f, actor, id, now| {
        admin::set_state(tx, actor, id, state, &f.text("reason"), now)
    })
}

/// Turns off the second factor of an account that lost it; audited, and the owner is told.
fn reset_second_factor(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let app = ctx.app;
    user_form(
        ctx,
        req,
        p,
        "second_factor_reset",
        |tx, _, actor, id, now| {
            let u = admin::reset_second_factor(tx, actor, id, now)?;
            crate::http::web::accounts::second_factor::notice(
                tx,
                app,
                &u.email,
                "Two-factor sign-in is off for your {site} account",
                "an administrator turned off two-factor sign-in for your account, as you asked: \
             signing in now asks for the password only; you can set it up again in the settings",
                now,
            )
        },
    )
}

fn jobs(ctx: &mut Ctx<'_>, _req: &Request, p: &Page) -> Response {
    let schedule: Vec<(&str, &str, &str)> = ctx
        .site
        .jobs
        .list
        .iter()
        .map(|j| (j.name, j.schedule, j.about))
        .collect();
    let runs = crate::jobs::recent_runs(ctx.db, 100).unwrap_or_default();
    Response::html(view::jobs(&p.nav, &schedule, &runs))
}

fn retention_page(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let mut rows = Vec::new();
    for rule in Rule::ALL {
        let run = match retention::last_run(ctx.db, rule) {
            Ok(r) => r,
            Err(e) => return error_page(req, 500, &e.to_string()),
        };
        rows.push(view::RetentionRow {
            rule: rule.as_str(),
            what: rule.what(),
            setting: rule.setting(),
            period: describe_seconds(crate::http::web::public::period(ctx, rule)),
            last_run_at: run.as_ref().map(|r| r.last_run_at),
            last_removed: run.as_ref().map_or(0, |r| r.last_removed),
            total_removed: run.as_ref().map_or(0, |r| r.total_removed),
        });
    }
    Response::html(view::retention(&p.nav, &rows))
}

/// `/admin/users/{id}/ledger`: an account's money movements; the reading is audited.
fn ledger(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such account.");
    };
    match form::acting(ctx, req, p, |tx, actor, now| {
        admin::view_ledger(tx, actor, id, 200, now)
    }) {
        Ok((u, entries)) => Response::html(view::ledger(
            &p.nav,
            &u,
            &crate::http::web::cur(ctx),
            &entries,
        )),
        Err(e) => error_page(req, e.http_status(), &e.to_string()),
    }
}

fn outbox(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    match form::acting(ctx, req, p, |tx, actor, now| {
        admin::view_outbox(tx, actor, 100, now)
    }) {
        Ok(rows) => Response::html(view::outbox(&p.nav, &rows)),
        Err(e) => error_page(req, e.http_status(), &e.to_string()),
    }
}

fn audit_log(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let filter = audit::AuditFilter {
        target: req.query_param("target").unwrap_or_default(),
        action: req.query_param("action").unwrap_or_default(),
    };
    let before: Option<i64> = req.query_param("before").and_then(|b| b.parse().ok());
    let rows = audit::audit_rows(ctx.db, &filter, before, AUDIT_PER_PAGE + 1);
    let actions = audit::audit_actions(ctx.db).unwrap_or_default();
    match rows {
        Ok(mut rows) => {
            let older = (rows.len() as i64 > AUDIT_PER_PAGE).then(|| {
                rows.truncate(AUDIT_PER_PAGE as usize);
                rows.last().map_or(0, |r| r.id)
            });
            let a = view::AuditPage {
                rows: &rows,
                actions: &actions,
                filter: &filter,
                not_first: before.is_some(),
                older,
            };
            Response::html(view::audit(&p.nav, &a, &p.flash))
        }
        Err(e) => error_page(req, 500, &e.to_string()),
    }
}
