//! The account lifecycle pages (SPEC §9): deletion, export, e-mail change and the processing
//! restriction for the holder; export, deletion and the requests list for the admin.

use crate::clock::{describe_seconds, format_datetime, Timestamp};
use crate::db;
use crate::domain::base::audit::Actor;
use crate::domain::base::audit::{self, LOGIN_FAILED};
use crate::domain::trust::export::{self, Meta};
use crate::domain::trust::lifecycle::{self, By, Closed};
use crate::domain::{accounts, base::mail, market::activations, Error};
use crate::http::auth::{clear_cookie, Page, Visitor};
use crate::http::response::JSON;
use crate::http::router::Router;
use crate::http::web::accounts::account::{current_password_ok, try_again_in};
use crate::http::web::{cur, form, nav};
use crate::http::{error_page, Ctx, Method, Request, Response};
use crate::views::{accounts::account as account_view, trust::lifecycle as view};

use crate::domain::accounts::Role;

pub fn routes(r: &mut Router) {
    use Method::{Get, Post};
    r.pages(
        Role::User,
        &[
            (Get, "/settings/delete", delete_form),
            (Post, "/settings/delete", delete),
            (Get, "/settings/export", export_own),
            (Post, "/settings/email", email_change),
        ],
    );
    r.visitors(&[(Get, "/settings/email/confirm/{token}", email_confirm)]);
    r.pages(Role::User, &[(Post, "/settings/restrict", restrict)]);
    r.pages(
        Role::Admin,
        &[
            (Get, "/admin/requests", admin_requests),
            (Post, "/admin/requests/{id}/handled", admin_request_handled),
            (Get, "/admin/users/{id}/export", admin_export),
            (Post, "/admin/users/{id}/delete", admin_delete),
        ],
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

fn delete_form(ctx: &mut Ctx<'_>, _: &Request, p: &Page) -> Response {
    let c = cur(ctx);
    let facts = view::DeletionFacts {
        balance: c.fmt(p.user.balance_minor),
        live_orders: live_orders(ctx, p.user.id),
        cooldown: describe_seconds(ctx.app.config.deletion_cooldown),
        ask_code: lifecycle::second_factor_required(ctx.db, &p.user).unwrap_or(true),
        has_password: p.user.password_hash.is_some(),
    };
    Response::html(view::delete_page(&p.nav, p.csrf(), &facts, &p.flash))
}

/// Checks (and spends) the second-factor code given with a deletion.
fn second_factor_ok(ctx: &mut Ctx<'_>, user_id: i64, code: &str) -> Result<bool, Error> {
    let (app, now) = (ctx.app, ctx.now());
    db::write(ctx.db, |tx| {
        Ok(
            crate::domain::accounts::second_factor::verify(tx, &app.keys, user_id, code, now)?
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
        let money = |m: i64| self.cur.fmt(m);
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
    const BACK: &str = "/settings/delete";
    let form = req.form();
    let password = form.get("password").unwrap_or("").to_string();
    let code = form.text("code");
    let ip = ctx.ip_hash(req);
    let now = ctx.now();
    let uid = p.user.id;
    let cfg = &ctx.app.config;
    // Password guesses here count like failed logins, and are throttled alike.
    let (max_acct, max_ip, window) = (
        cfg.login_max_failures,
        cfg.login_ip_max_failures,
        cfg.login_window,
    );
    if let Ok(Some(secs)) =
        audit::login_retry_after(ctx.db, Some(uid), &ip, max_acct, max_ip, window, now)
    {
        let msg = format!("Too many wrong passwords. {}", try_again_in(secs));
        return form::fail(ctx, req, &p.session, BACK, msg)
            .with_header("Retry-After", &secs.to_string());
    }
    if p.user.password_hash.is_none() {
        // An account that signs in only with a provider has no password to ask: the signed-in
        // session, the typed address and the second factor (when on) confirm.
        let typed = form.text("confirm_email").trim().to_lowercase();
        if typed != p.user.email {
            let msg = "Type your account's e-mail address to confirm.";
            return form::fail(ctx, req, &p.session, BACK, msg);
        }
    } else {
        match ctx
            .app
            .hasher
            .verify(&password, p.user.password_hash.as_deref())
        {
            Ok(true) => {}
            Ok(false) => {
                let _ = audit::security(
                    ctx.db,
                    Some(uid),
                    LOGIN_FAILED,
                    &ip,
                    "account deletion",
                    now,
                );
                return form::fail(ctx, req, &p.session, BACK, "The password is wrong.");
            }
            Err(e) => return form::fail(ctx, req, &p.session, BACK, e),
        }
    }
    let code_ok = lifecycle::second_factor_required(ctx.db, &p.user)
        .and_then(|required| Ok(!required || second_factor_ok(ctx, uid, &code)?));
    match code_ok {
        Ok(true) => {}
        Ok(false) => return form::fail(ctx, req, &p.session, BACK, "The code is wrong."),
        Err(e) => return form::fail(ctx, req, &p.session, BACK, e),
    }
    let m = MailCtx::of(ctx);
    let share = ctx.app.config.operator_share;
    form::submit(
        ctx,
        req,
        &p.session,
        BACK,
        |tx, _, now| {
            let closed =
                lifecycle::delete_account(tx, uid, By::Holder { ip_hash: &ip }, share, now)?;
            m.queue_deletion(tx, &p.user.email, &closed, false, now)
        },
        |ctx, ()| {
            ctx.app.notify();
            Response::redirect("/login?m=account_deleted")
                .with_header("Set-Cookie", &clear_cookie(req))
        },
    )
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
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    // In the security log, so a holder sees an export they did not make.
    let _ = audit::security(ctx.db, Some(p.user.id), "data_exported", &ip, "", now);
    export_response(ctx, p.user.id, now)
}

fn email_change(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let password = req.form().get("password").unwrap_or("").to_string();
    if let Err(msg) = current_password_ok(ctx, p, &password) {
        return form::fail(ctx, req, &p.session, "/settings", msg);
    }
    let ip = ctx.ip_hash(req);
    let keys = ctx.app.keys.clone();
    let cfg = &ctx.app.config;
    let (site, base, smtp) = (&cfg.site_name, &cfg.base_url, cfg.smtp.is_some());
    let cooldown = cfg.deletion_cooldown;
    form::submit(
        ctx,
        req,
        &p.session,
        "/settings",
        |tx, f, now| {
            let new_email = f.text("email");
            let (email, token) = lifecycle::request_email_change(
                tx, &keys, &p.user, &new_email, cooldown, &ip, now,
            )?;
            mail::enqueue(
                tx,
                &email,
                &format!("Confirm your new e-mail address for {site}"),
                &format!(
                    "Hello,\n\nto make this the e-mail address of your {site} account, open:\n\n\
                     {base}/settings/email/confirm/{token}\n\n\
                     The link works once and expires in 48 hours. Until then the account keeps \
                     its old address. If you did not ask for this, ignore this mail.\n"
                ),
                smtp,
                now,
            )?;
            mail::enqueue(
                tx,
                &p.user.email,
                &format!("A change of your {site} e-mail address was requested"),
                &format!(
                    "Hello,\n\nsomeone signed in to your {site} account asked to change its \
                     e-mail address to {email}. Nothing changes unless the link sent to that \
                     address is opened. If this was not you, change your password now and sign \
                     out every other session in the settings.\n"
                ),
                smtp,
                now,
            )?;
            Ok(())
        },
        |_, ()| Response::redirect("/settings?m=email_sent"),
    )
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
    let on = match req.form().text("restrict").as_str() {
        "1" => true,
        "0" => false,
        _ => {
            return form::fail(
                ctx,
                req,
                &p.session,
                "/settings",
                "Choose to restrict or not.",
            )
        }
    };
    let ip = ctx.ip_hash(req);
    let uid = p.user.id;
    form::submit(
        ctx,
        req,
        &p.session,
        "/settings",
        |tx, _, now| lifecycle::set_restricted(tx, uid, on, &ip, now),
        |_, _| match on {
            true => Response::redirect("/settings?m=restricted"),
            false => Response::redirect("/settings?m=unrestricted"),
        },
    )
}

// ---------------------------------------------------------------------------------------
// Admin

fn admin_requests(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    match lifecycle::requests(ctx.db, 200) {
        Ok(rows) => Response::html(view::admin_requests(&p.nav, p.csrf(), &rows, &p.flash)),
        Err(e) => error_page(req, 500, &e.to_string()),
    }
}

fn admin_request_handled(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    const BACK: &str = "/admin/requests";
    let Some(id) = req.id_param("id") else {
        return form::fail(ctx, req, &p.session, BACK, "No such request.");
    };
    let ip = ctx.ip_hash(req);
    let uid = p.user.id;
    form::submit(
        ctx,
        req,
        &p.session,
        BACK,
        |tx, _, now| {
            let actor = Actor {
                id: uid,
                ip_hash: &ip,
            };
            lifecycle::mark_handled(tx, actor, id, now)
        },
        |_, ()| Response::redirect("/admin/requests?m=request_handled"),
    )
}

fn admin_export(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such account.");
    };
    if !matches!(accounts::find(ctx.db, id), Ok(Some(_))) {
        return error_page(req, 404, "No such account.");
    }
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    if let Err(e) = audit::audit(ctx.db, Some(p.user.id), Some(id), "export", "", &ip, now) {
        // No export without its audit row.
        return error_page(req, 500, &e.to_string());
    }
    export_response(ctx, id, now)
}

fn admin_delete(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let target = req
        .id_param("id")
        .and_then(|id| accounts::find(ctx.db, id).ok().flatten());
    let Some(target) = target else {
        return form::fail(ctx, req, &p.session, "/admin/users", "No such account.");
    };
    let id = target.id;
    let back = format!("/admin/users/{id}");
    if !req
        .form()
        .text("confirm")
        .eq_ignore_ascii_case(&target.email)
    {
        let msg = "Type the account's e-mail address to confirm the deletion.";
        return form::fail(ctx, req, &p.session, &back, msg);
    }
    let ip = ctx.ip_hash(req);
    let admin = p.user.id;
    let m = MailCtx::of(ctx);
    let share = ctx.app.config.operator_share;
    form::submit(
        ctx,
        req,
        &p.session,
        &back,
        |tx, _, now| {
            let actor = Actor {
                id: admin,
                ip_hash: &ip,
            };
            let closed = lifecycle::delete_account(tx, id, By::Admin(actor), share, now)?;
            m.queue_deletion(tx, &target.email, &closed, true, now)
        },
        |ctx, ()| {
            ctx.app.notify();
            Response::redirect(&format!("/admin/users/{id}?m=account_deleted_admin"))
        },
    )
}
