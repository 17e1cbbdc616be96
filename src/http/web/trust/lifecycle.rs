//! The account lifecycle pages (SPEC §9): deletion, export, e-mail change and the processing
//! restriction for the holder; export, deletion and the requests list for the admin.

use crate::clock::{describe_seconds, format_datetime, Timestamp};
use crate::db;
use crate::domain::base::audit::Actor;
use crate::domain::base::audit::{self, LOGIN_FAILED};
use crate::domain::base::money::Money;
use crate::domain::trust::export::{self, Meta};
use crate::domain::trust::lifecycle::{self, By, Closed};
use crate::domain::{accounts, base::mail, market::activations, Error};
use crate::http::auth::{clear_cookie, Page, Signed, Visitor};
use crate::http::response::JSON;
use crate::http::router::Router;
use crate::http::web::accounts::account::{err, settings_page};
use crate::http::web::{cur, flash_from_query, nav, signed_nav, trust::admin};
use crate::http::{error_page, Ctx, Method, Request, Response};
use crate::views::{accounts::account as account_view, trust::lifecycle as view, Flash};

use crate::domain::accounts::Role;

pub fn routes(r: &mut Router) {
    r.page(Method::Get, "/settings/delete", Role::User, delete_form);
    r.page(Method::Post, "/settings/delete", Role::User, delete);
    r.page(Method::Get, "/settings/export", Role::User, export_own);
    r.page(Method::Post, "/settings/email", Role::User, email_change);
    r.visitor(
        Method::Get,
        "/settings/email/confirm/{token}",
        email_confirm,
    );
    r.page(Method::Post, "/settings/restrict", Role::User, restrict);
    r.page(Method::Get, "/admin/requests", Role::Admin, admin_requests);
    r.page(
        Method::Post,
        "/admin/requests/{id}/handled",
        Role::Admin,
        admin_request_handled,
    );
    r.page(
        Method::Get,
        "/admin/users/{id}/export",
        Role::Admin,
        admin_export,
    );
    r.page(
        Method::Post,
        "/admin/users/{id}/delete",
        Role::Admin,
        admin_delete,
    );
}

fn live_orders(ctx: &Ctx<'_>, user_id: i64) -> i64 {
    let rentals: i64 = ctx
        .db
        .query_row(
            "SELECT COUNT(*) FROM rentals WHERE user_id = ?1 AND status = 'active'",
            [user_id],
            |r| r.get(0),
        )
        .unwrap_or(0);
    activations::count_live(ctx.db, user_id).unwrap_or(0) + rentals
}

fn delete_page(ctx: &mut Ctx<'_>, s: &Signed, flash: Option<Flash>, status: u16) -> Response {
    let c = cur(ctx);
    let facts = view::DeletionFacts {
        balance: format!(
            "{} {}",
            Money(s.user.balance_minor).decimal(c.digits),
            c.code
        ),
        live_orders: live_orders(ctx, s.user.id),
        cooldown: describe_seconds(ctx.app.config.deletion_cooldown),
        ask_code: lifecycle::second_factor_required(ctx.db, &s.user).unwrap_or(true),
    };
    Response::html(view::delete_page(
        &signed_nav(ctx, s),
        s.csrf(),
        &facts,
        &flash,
    ))
    .with_status(status)
}

fn delete_form(ctx: &mut Ctx<'_>, _req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    delete_page(ctx, s, None, 200)
}

/// Hook for the TOTP second factor: checks the code typed on the deletion form. Never reached
/// while [`lifecycle::second_factor_required`] answers false; the second-factor module
/// replaces it with its own check (TOTP with replay protection, or a recovery code).
/// Checks (and spends) the second-factor code given with a deletion.
fn second_factor_ok(ctx: &mut Ctx<'_>, s: &Signed, code: &str) -> Result<bool, Error> {
    let (app, now) = (ctx.app, ctx.now());
    db::write(ctx.db, |tx| {
        Ok(
            crate::domain::accounts::second_factor::verify(tx, &app.keys, s.user.id, code, now)?
                .is_some(),
        )
    })
}

/// What the confirmation mail of a deletion needs to know about the install.
struct MailCtx {
    site: String,
    cur: crate::views::market::orders::Cur,
    cooldown: u64,
    smtp: bool,
}

impl MailCtx {
    fn of(ctx: &Ctx<'_>) -> MailCtx {
        let cfg = &ctx.app.config;
        MailCtx {
            site: cfg.site_name.clone(),
            cur: cur(ctx),
            cooldown: cfg.deletion_cooldown,
            smtp: cfg.smtp.is_some(),
        }
    }

    /// Queues the confirmation of a deletion to the address the account had, in the
    /// deletion's transaction.
    fn queue_deletion(
        &self,
        tx: &rusqlite::Connection,
        to: &str,
        closed: &Closed,
        by_admin: bool,
        now: Timestamp,
    ) -> Result<(), Error> {
        let money = |m: i64| format!("{} {}", Money(m).decimal(self.cur.digits), self.cur.code);
        let who = if by_admin {
            "An administrator deleted your account"
        } else {
            "As you asked, your account was deleted"
        };
        let body = format!(
            "Hello,\n\n{who} on {} (UTC).\n\n\
             Live orders ended: {} refunded ({}), {} ended with their code.\n\
             Balance forfeited: {}.\n\n\
             Every session, API key, webhook and device of the account stopped working at once. \
             This address cannot be used for a new account for {}; after that, the address, \
             the password and the name are erased. Billing records are kept as the privacy \
             policy says.\n",
            format_datetime(now),
            closed.activations_refunded.len() + closed.rentals_refunded.len(),
            money(closed.refunded_minor),
            closed.activations_completed.len() + closed.rentals_finished.len(),
            money(closed.forfeited_minor),
            describe_seconds(self.cooldown),
        );
        let subject = format!("Your {} account was deleted", self.site);
        mail::enqueue(tx, to, &subject, &body, self.smtp, now)?;
        Ok(())
    }
}

fn delete(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let form = req.form();
    let password = form.get("password").unwrap_or("").to_string();
    let code = form.text("code");
    let ip = ctx.ip_hash(req);
    let now = ctx.now();
    let cfg = &ctx.app.config;
    // Password guesses here count like failed logins, and are throttled alike.
    let (max_acct, max_ip, window) = (
        cfg.login_max_failures,
        cfg.login_ip_max_failures,
        cfg.login_window,
    );
    if let Ok(Some(secs)) =
        audit::login_retry_after(ctx.db, Some(s.user.id), &ip, max_acct, max_ip, window, now)
    {
        let mins = secs.div_ceil(60);
        return delete_page(
            ctx,
            s,
            err(format!(
                "Too many wrong passwords. Try again in {mins} minute{}.",
                if mins == 1 { "" } else { "s" }
            )),
            429,
        )
        .with_header("Retry-After", &secs.to_string());
    }
    match ctx
        .app
        .hasher
        .verify(&password, s.user.password_hash.as_deref())
    {
        Ok(true) => {}
        Ok(false) => {
            let _ = audit::security(
                ctx.db,
                Some(s.user.id),
                LOGIN_FAILED,
                &ip,
                "account deletion",
                now,
            );
            return delete_page(ctx, s, err("The password is wrong."), 400);
        }
        Err(e) => return delete_page(ctx, s, err(e.to_string()), e.http_status()),
    }
    match lifecycle::second_factor_required(ctx.db, &s.user) {
        Ok(false) => {}
        Ok(true) => match second_factor_ok(ctx, s, &code) {
            Ok(true) => {}
            Ok(false) => return delete_page(ctx, s, err("The code is wrong."), 400),
            Err(e) => return delete_page(ctx, s, err(e.to_string()), e.http_status()),
        },
        Err(e) => return delete_page(ctx, s, err(e.to_string()), e.http_status()),
    }
    let m = MailCtx::of(ctx);
    let share = ctx.app.config.operator_share;
    let done = db::write(ctx.db, |tx| {
        let closed =
            lifecycle::delete_account(tx, s.user.id, By::Holder { ip_hash: &ip }, share, now)?;
        m.queue_deletion(tx, &s.user.email, &closed, false, now)
    });
    match done {
        Ok(()) => {
            ctx.app.notify();
            Response::redirect("/login?m=account_deleted")
                .with_header("Set-Cookie", &clear_cookie(req))
        }
        Err(e) => delete_page(ctx, s, err(e.to_string()), e.http_status()),
    }
}

/// The export as a download.
fn export_response(ctx: &Ctx<'_>, user_id: i64, now: Timestamp) -> Response {
    let cfg = &ctx.app.config;
    let meta = Meta {
        site: &cfg.site_name,
        currency: &cfg.currency,
    };
    match export::export(ctx.db, user_id, &meta, now) {
        Ok(doc) => {
            let body = serde_json::to_vec_pretty(&doc).unwrap_or_default();
            let day: String = format_datetime(now).chars().take(10).collect();
            Response::new(200, JSON, body).with_header(
                "Content-Disposition",
                &format!("attachment; filename=\"otpbox-export-{user_id}-{day}.json\""),
            )
        }
        Err(e) => Response::json_error(e.http_status(), e.code(), &e.to_string()),
    }
}

fn export_own(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    // In the security log, so a holder sees an export they did not make.
    let _ = audit::security(ctx.db, Some(s.user.id), "data_exported", &ip, "", now);
    export_response(ctx, s.user.id, now)
}

fn email_change(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let form = req.form();
    let new_email = form.text("email");
    let password = form.get("password").unwrap_or("").to_string();
    match ctx
        .app
        .hasher
        .verify(&password, s.user.password_hash.as_deref())
    {
        Ok(true) => {}
        Ok(false) => return settings_page(ctx, s, err("The current password is wrong."), 400),
        Err(e) => return settings_page(ctx, s, err(e.to_string()), e.http_status()),
    }
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    let keys = ctx.app.keys.clone();
    let cfg = &ctx.app.config;
    let (site, base, smtp) = (&cfg.site_name, &cfg.base_url, cfg.smtp.is_some());
    let cooldown = cfg.deletion_cooldown;
    let done = db::write(ctx.db, |tx| {
        let (email, token) =
            lifecycle::request_email_change(tx, &keys, &s.user, &new_email, cooldown, &ip, now)?;
        mail::enqueue(
            tx,
            &email,
            &format!("Confirm your new e-mail address for {site}"),
            &format!(
                "Hello,\n\nto make this the e-mail address of your {site} account, open:\n\n\
                 {base}/settings/email/confirm/{token}\n\n\
                 The link works once and expires in 48 hours. Until then the account keeps its \
                 old address. If you did not ask for this, ignore this mail.\n"
            ),
            smtp,
            now,
        )?;
        mail::enqueue(
            tx,
            &s.user.email,
            &format!("A change of your {site} e-mail address was requested"),
            &format!(
                "Hello,\n\nsomeone signed in to your {site} account asked to change its e-mail \
                 address to {email}. Nothing changes unless the link sent to that address is \
                 opened. If this was not you, change your password now and sign out every \
                 other session in the settings.\n"
            ),
            smtp,
            now,
        )?;
        Ok(())
    });
    match done {
        Ok(()) => Response::redirect("/settings?m=email_sent"),
        Err(e) => settings_page(ctx, s, err(e.to_string()), e.http_status()),
    }
}

fn email_confirm(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let token = req.param("token").unwrap_or("").to_string();
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    let keys = ctx.app.keys.clone();
    let cfg = &ctx.app.config;
    let (site, smtp, cooldown) = (&cfg.site_name, cfg.smtp.is_some(), cfg.deletion_cooldown);
    let done = db::write(ctx.db, |tx| {
        let (before, email) =
            lifecycle::confirm_email_change(tx, &keys, &token, cooldown, &ip, now)?;
        mail::enqueue(
            tx,
            &before.email,
            &format!("Your {site} e-mail address was changed"),
            &format!(
                "Hello,\n\nthe e-mail address of your {site} account was changed to {email}. \
                 Mail about the account now goes there. If this was not you, contact the \
                 operator of the site at once.\n"
            ),
            smtp,
            now,
        )?;
        Ok(before.id)
    });
    let n = nav(ctx, v);
    match done {
        Ok(id) if v.user.as_ref().is_some_and(|u| u.id == id) => {
            Response::redirect("/settings?m=email_changed")
        }
        Ok(_) => Response::html(account_view::message(
            &n,
            "E-mail address changed",
            "Your account now uses this e-mail address. Log in with it from now on.",
            ("/login", "Log in"),
        )),
        Err(e) => Response::html(account_view::message(
            &n,
            "Link not valid",
            &e.to_string(),
            ("/settings", "Settings"),
        ))
        .with_status(e.http_status().max(400)),
    }
}

fn restrict(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let on = match req.form().text("restrict").as_str() {
        "1" => true,
        "0" => false,
        _ => return settings_page(ctx, s, err("Choose to restrict or not."), 400),
    };
    let ip = ctx.ip_hash(req);
    let now = ctx.now();
    match db::write(ctx.db, |tx| {
        lifecycle::set_restricted(tx, s.user.id, on, &ip, now)
    }) {
        Ok(_) if on => Response::redirect("/settings?m=restricted"),
        Ok(_) => Response::redirect("/settings?m=unrestricted"),
        Err(e) => settings_page(ctx, s, err(e.to_string()), e.http_status()),
    }
}

// ---------------------------------------------------------------------------------------
// Admin

fn requests_page(ctx: &mut Ctx<'_>, req: &Request, p: &Page, flash: Option<Flash>) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    match lifecycle::requests(ctx.db, 200) {
        Ok(rows) => Response::html(view::admin_requests(n, s.csrf(), &rows, &flash)),
        Err(e) => error_page(req, 500, &e.to_string()),
    }
}

fn admin_requests(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    requests_page(ctx, req, p, flash_from_query(req))
}

fn admin_request_handled(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such request.");
    };
    let ip = ctx.ip_hash(req);
    let now = ctx.now();
    let actor = Actor {
        id: s.user.id,
        ip_hash: &ip,
    };
    match db::write(ctx.db, |tx| lifecycle::mark_handled(tx, actor, id, now)) {
        Ok(()) => Response::redirect("/admin/requests?m=request_handled"),
        Err(e) => requests_page(ctx, req, p, Some(Flash::Err(e.to_string()))),
    }
}

fn admin_export(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such account.");
    };
    if !matches!(accounts::find(ctx.db, id), Ok(Some(_))) {
        return error_page(req, 404, "No such account.");
    }
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    if let Err(e) = audit::audit(ctx.db, Some(s.user.id), Some(id), "export", "", &ip, now) {
        // No export without its audit row.
        return error_page(req, 500, &e.to_string());
    }
    export_response(ctx, id, now)
}

fn admin_delete(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such account.");
    };
    let target = match accounts::find(ctx.db, id) {
        Ok(Some(u)) => u,
        _ => return error_page(req, 404, "No such account."),
    };
    let fail = |ctx: &mut Ctx<'_>, msg: String, status: u16| {
        admin::user_page(ctx, req, s, n, Some(Flash::Err(msg)), status)
    };
    if !req
        .form()
        .text("confirm")
        .eq_ignore_ascii_case(&target.email)
    {
        return fail(
            ctx,
            "Type the account's e-mail address to confirm the deletion.".into(),
            400,
        );
    }
    let ip = ctx.ip_hash(req);
    let now = ctx.now();
    let actor = Actor {
        id: s.user.id,
        ip_hash: &ip,
    };
    let m = MailCtx::of(ctx);
    let share = ctx.app.config.operator_share;
    match db::write(ctx.db, |tx| {
        let closed = lifecycle::delete_account(tx, id, By::Admin(actor), share, now)?;
        m.queue_deletion(tx, &target.email, &closed, true, now)
    }) {
        Ok(()) => {
            ctx.app.notify();
            Response::redirect(&format!("/admin/users/{id}?m=account_deleted_admin"))
        }
        Err(e) => fail(ctx, e.to_string(), e.http_status()),
    }
}
