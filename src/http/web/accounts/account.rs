//! Sign-up, e-mail verification, login and logout, password reset, first-admin setup,
//! dashboard and settings.

use crate::db;
use crate::domain::accounts::passwords::Hasher;
use crate::domain::accounts::{self, NewUser, Role, State};
use crate::domain::base::audit::{
    self, LOGIN_FAILED, LOGIN_OK, LOGOUT, PASSWORD_CHANGED, PASSWORD_RESET,
};
use crate::domain::{
    accounts::second_factor, accounts::sessions, accounts::tokens, base::mail, trust::lifecycle,
    Error,
};
use crate::http::auth::{
    clear_cookie, form_session, safe_next, session_cookie, visitor, Page, Signed, Visitor,
};
use crate::http::router::Router;
use crate::http::web::{flash_from_query, nav, signed_nav, with_cookie};
use crate::http::{error_page, Ctx, Method, Request, Response};
use crate::views::{accounts::account as view, Flash};

const VERIFY_TTL: u64 = 48 * 3600;
const RESET_TTL: u64 = 3600;

pub fn routes(r: &mut Router) {
    r.visitor(Method::Get, "/signup", signup_form);
    r.visitor(Method::Post, "/signup", signup);
    r.visitor(Method::Get, "/verify/{token}", verify);
    r.page(
        Method::Post,
        "/verify/resend",
        Role::User,
        resend_verification,
    );
    r.visitor(Method::Get, "/login", login_form);
    r.visitor(Method::Post, "/login", login);
    r.visitor(Method::Post, "/logout", logout);
    r.visitor(Method::Get, "/password/forgot", forgot_form);
    r.visitor(Method::Post, "/password/forgot", forgot);
    r.visitor(Method::Get, "/password/reset/{token}", reset_form);
    r.visitor(Method::Post, "/password/reset/{token}", reset);
    r.visitor(Method::Get, "/setup/{token}", setup_form);
    r.visitor(Method::Post, "/setup/{token}", setup);
    r.page(Method::Get, "/settings", Role::User, settings);
    r.page(
        Method::Post,
        "/settings/profile",
        Role::User,
        settings_profile,
    );
    r.page(
        Method::Post,
        "/settings/password",
        Role::User,
        settings_password,
    );
    r.page(
        Method::Post,
        "/settings/sessions/revoke",
        Role::User,
        settings_revoke_sessions,
    );
    r.page(Method::Get, "/settings/security", Role::User, security_log);
}

/// Security events per page of `/settings/security`.
const EVENTS_PER_PAGE: i64 = 50;

pub(in crate::http::web) fn err(msg: impl Into<String>) -> Option<Flash> {
    Some(Flash::Err(msg.into()))
}

/// Starts a fresh signed-in session (ending the one the visitor had) and redirects.
fn sign_in(ctx: &mut Ctx<'_>, req: &Request, user_id: i64, to: &str) -> Result<Response, Error> {
    let old = visitor(ctx, req).session.map(|s| s.id);
    let ip = ctx.ip_hash(req);
    let now = ctx.now();
    let app = ctx.app;
    let token = db::write(ctx.db, |tx| {
        open_session(tx, app, req, old, user_id, &ip, "", now)
    })?;
    Ok(signed_in_redirect(ctx, req, &token, to))
}

/// In the caller's transaction: ends the visitor's old session, records the login (`detail`
/// says how, e.g. with which second factor) and creates the signed-in session; returns the
/// cookie value.
#[allow(clippy::too_many_arguments)]
pub(in crate::http::web) fn open_session(
    tx: &rusqlite::Connection,
    app: &crate::app::App,
    req: &Request,
    old: Option<i64>,
    user_id: i64,
    ip: &str,
    detail: &str,
    now: i64,
) -> Result<String, Error> {
    if let Some(id) = old {
        sessions::revoke(tx, id)?;
    }
    audit::security(tx, Some(user_id), LOGIN_OK, ip, detail, now)?;
    sessions::create(
        tx,
        &app.keys,
        Some(user_id),
        &app.session_limits(),
        ip,
        req.user_agent(),
        now,
    )
}

/// The redirect after a login, carrying the new session's cookie.
pub(in crate::http::web) fn signed_in_redirect(
    ctx: &Ctx<'_>,
    req: &Request,
    token: &str,
    to: &str,
) -> Response {
    Response::redirect(to).with_header(
        "Set-Cookie",
        &session_cookie(req, token, ctx.app.config.session_max),
    )
}

/// Queues the verification mail in the caller's transaction.
fn queue_verification(
    tx: &rusqlite::Connection,
    ctx_cfg: &crate::config::Config,
    to: &str,
    token: &str,
    now: i64,
) -> Result<i64, Error> {
    let (subject, body) = verification_mail(&ctx_cfg.base_url, &ctx_cfg.site_name, token);
    mail::enqueue(tx, to, &subject, &body, ctx_cfg.smtp.is_some(), now)
}

fn verification_mail(base_url: &str, site: &str, token: &str) -> (String, String) {
    let link = format!("{base_url}/verify/{token}");
    (
        format!("Confirm your e-mail address for {site}"),
        format!(
            "Hello,\n\nplease confirm your e-mail address by opening this link:\n\n{link}\n\n\
             The link works once and expires in 48 hours. If you did not sign up, ignore this \
             mail.\n"
        ),
    )
}

fn signup_form(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    if v.user.is_some() {
        return Response::redirect("/dashboard");
    }
    let (token, cookie) = form_session(ctx, req);
    let page = view::signup(&nav(ctx, v), &token, "", ctx.app.config.min_age, &None);
    with_cookie(Response::html(page), cookie)
}

fn signup(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let form = req.form();
    let email = form.text("email");
    let password = form.get("password").unwrap_or("").to_string();

    let token = v
        .session
        .as_ref()
        .map(|s| s.csrf.clone())
        .unwrap_or_default();
    let again = |ctx: &Ctx<'_>, status: u16, msg: String| {
        Response::html(view::signup(
            &nav(ctx, v),
            &token,
            &email,
            ctx.app.config.min_age,
            &err(msg),
        ))
        .with_status(status)
    };
    if !form.checked("age") {
        let msg = format!(
            "You must confirm that you are at least {} years old.",
            ctx.app.config.min_age
        );
        return again(ctx, 400, msg);
    }
    if !form.checked("aup") {
        return again(
            ctx,
            400,
            "You must accept the acceptable-use policy.".into(),
        );
    }
    if let Err(e) =
        accounts::normalise_email(&email).and_then(|_| Hasher::check_strength(&password))
    {
        return again(ctx, 400, e.to_string());
    }
    let phc = match ctx.app.hasher.hash(&password) {
        Ok(h) => h,
        Err(e) => return again(ctx, e.http_status(), e.to_string()),
    };
    let now = ctx.now();
    let keys = ctx.app.keys.clone();
    let cfg = &ctx.app.config;
    let cooldown = cfg.deletion_cooldown;
    let created = db::write(ctx.db, |tx| {
        // A deleted account's address stays blocked for the cooldown.
        lifecycle::claim_email(tx, &email, cooldown, now)?;
        let user = accounts::create(
            tx,
            &NewUser {
                email: &email,
                password_hash: Some(&phc),
                role: Role::User,
                verified: false,
                age_confirmed: true,
                aup_accepted: true,
            },
            now,
        )?;
        let t = tokens::issue(
            tx,
            &keys,
            tokens::VERIFY_EMAIL,
            Some(user.id),
            "",
            VERIFY_TTL,
            now,
        )?;
        queue_verification(tx, cfg, &user.email, &t, now)?;
        Ok(user)
    });
    let user = match created {
        Ok(x) => x,
        Err(e) => return again(ctx, e.http_status(), e.to_string()),
    };
    sign_in(ctx, req, user.id, "/dashboard?m=welcome")
        .unwrap_or_else(|e| error_page(req, e.http_status(), &e.to_string()))
}

fn verify(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let token = req.param("token").unwrap_or("").to_string();
    let now = ctx.now();
    let keys = ctx.app.keys.clone();
    let done = db::write(ctx.db, |tx| {
        let r = tokens::consume(tx, &keys, tokens::VERIFY_EMAIL, &token, now)?;
        let uid = r.user_id.ok_or(Error::NotFound("account"))?;
        accounts::mark_verified(tx, uid, now)?;
        Ok(())
    });
    let n = nav(ctx, v);
    match done {
        Ok(()) if v.user.is_some() => Response::redirect("/dashboard?m=verified"),
        Ok(()) => Response::html(view::message(
            &n,
            "E-mail confirmed",
            "Thank you: your e-mail address is confirmed.",
            ("/login", "Log in"),
        )),
        Err(e) => Response::html(view::message(
            &n,
            "Link not valid",
            &e.to_string(),
            ("/login", "Log in"),
        ))
        .with_status(400),
    }
}

fn resend_verification(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    if s.user.is_verified() {
        return Response::redirect("/dashboard");
    }
    let now = ctx.now();
    let keys = ctx.app.keys.clone();
    let cfg = &ctx.app.config;
    let issued = db::write(ctx.db, |tx| {
        tokens::revoke_all(tx, s.user.id, tokens::VERIFY_EMAIL, now)?;
        let t = tokens::issue(
            tx,
            &keys,
            tokens::VERIFY_EMAIL,
            Some(s.user.id),
            "",
            VERIFY_TTL,
            now,
        )?;
        queue_verification(tx, cfg, &s.user.email, &t, now)
    });
    match issued {
        Ok(_) => Response::redirect("/dashboard?m=verify_sent"),
        Err(e) => error_page(req, e.http_status(), &e.to_string()),
    }
}

fn login_form(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    if v.user.is_some() {
        return Response::redirect("/dashboard");
    }
    let (token, cookie) = form_session(ctx, req);
    let next = safe_next(req.query_param("next").as_deref());
    let page = view::login(&nav(ctx, v), &token, "", &next, &flash_from_query(req));
    with_cookie(Response::html(page), cookie)
}

fn login(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let form = req.form();
    let email = form.text("email");
    let password = form.get("password").unwrap_or("").to_string();
    let next = safe_next(form.get("next"));

    let token = v
        .session
        .as_ref()
        .map(|s| s.csrf.clone())
        .unwrap_or_default();
    let page = |ctx: &Ctx<'_>, status: u16, msg: String| {
        Response::html(view::login(&nav(ctx, v), &token, &email, &next, &err(msg)))
            .with_status(status)
    };
    let cfg = &ctx.app.config;
    let (max_acct, max_ip, window) = (
        cfg.login_max_failures,
        cfg.login_ip_max_failures,
        cfg.login_window,
    );
    let ip = ctx.ip_hash(req);
    let now = ctx.now();
    let user = accounts::find_by_email(ctx.db, &email).ok().flatten();
    let uid = user.as_ref().map(|u| u.id);
    let throttled = |ctx: &Ctx<'_>, secs: u64| {
        let mins = secs.div_ceil(60);
        page(
            ctx,
            429,
            format!(
                "Too many failed attempts. Try again in {mins} minute{}.",
                if mins == 1 { "" } else { "s" }
            ),
        )
        .with_header("Retry-After", &secs.to_string())
    };
    match audit::login_retry_after(ctx.db, uid, &ip, max_acct, max_ip, window, now) {
        Ok(Some(secs)) => return throttled(ctx, secs),
        Ok(None) => {}
        Err(e) => return error_page(req, 500, &e.to_string()),
    }
    let usable = user.as_ref().filter(|u| u.state != State::Deleted);
    let ok = match ctx
        .app
        .hasher
        .verify(&password, usable.and_then(|u| u.password_hash.as_deref()))
    {
        Ok(ok) => ok,
        Err(e) => return page(ctx, e.http_status(), e.to_string()),
    };
    if !ok {
        let _ = audit::security(ctx.db, uid, LOGIN_FAILED, &ip, "", now);
        if let Ok(Some(secs)) =
            audit::login_retry_after(ctx.db, uid, &ip, max_acct, max_ip, window, now)
        {
            return throttled(ctx, secs);
        }
        return page(ctx, 401, "Wrong e-mail or password.".into());
    }
    let user = usable.expect("verified against a real account");
    match user.state {
        State::Active => {}
        State::Suspended => {
            return page(
                ctx,
                403,
                "This account is suspended. Contact the operator of this site.".into(),
            )
        }
        State::Terminated => {
            return crate::http::web::trust::abuse::terminated_page(ctx, req, user)
        }
        State::Deleted => return page(ctx, 403, "This account is closed.".into()),
    }
    match second_factor::enabled(ctx.db, user.id) {
        Ok(true) => {
            return crate::http::web::accounts::second_factor::ask_code(ctx, req, user.id, &next)
        }
        Ok(false) => {}
        Err(e) => return error_page(req, e.http_status(), &e.to_string()),
    }
    sign_in(ctx, req, user.id, &next)
        .unwrap_or_else(|e| error_page(req, e.http_status(), &e.to_string()))
}

fn logout(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    if let Some(s) = &v.session {
        let ip = ctx.ip_hash(req);
        let now = ctx.now();
        let _ = db::write(ctx.db, |tx| {
            sessions::revoke(tx, s.id)?;
            if let Some(uid) = s.user_id {
                audit::security(tx, Some(uid), LOGOUT, &ip, "", now)?;
            }
            Ok(())
        });
    }
    Response::redirect("/").with_header("Set-Cookie", &clear_cookie(req))
}

fn forgot_form(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let (token, cookie) = form_session(ctx, req);
    with_cookie(
        Response::html(view::forgot(&nav(ctx, v), &token, &None)),
        cookie,
    )
}

fn forgot(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let email = req.form().text("email");
    let now = ctx.now();
    if let Ok(Some(user)) = accounts::find_by_email(ctx.db, &email) {
        let recent: i64 = ctx
            .db
            .query_row(
                "SELECT COUNT(*) FROM tokens WHERE user_id = ?1 AND purpose = ?2 AND created_at > ?3",
                rusqlite::params![user.id, tokens::RESET_PASSWORD, now - 3600],
                |r| r.get(0),
            )
            .unwrap_or(0);
        if user.state == State::Active && recent < 3 {
            let keys = ctx.app.keys.clone();
            let base = ctx.app.config.base_url.clone();
            let smtp = ctx.app.config.smtp.is_some();
            let site = ctx.app.config.site_name.clone();
            let r = db::write(ctx.db, |tx| {
                let t = tokens::issue(
                    tx,
                    &keys,
                    tokens::RESET_PASSWORD,
                    Some(user.id),
                    "",
                    RESET_TTL,
                    now,
                )?;
                let body = format!(
                    "Hello,\n\nsomeone asked to reset the password of your {site} account. \
                     To choose a new password, open:\n\n{base}/password/reset/{t}\n\n\
                     The link works once and expires in one hour. If it was not you, ignore \
                     this mail: your password stays as it is.\n"
                );
                mail::enqueue(
                    tx,
                    &user.email,
                    &format!("Reset your {site} password"),
                    &body,
                    smtp,
                    now,
                )
            });
            if let Err(e) = r {
                log::error!("cannot queue a reset mail: {e:?}");
            }
        }
    }
    Response::html(view::message(
        &nav(ctx, v),
        "Check your mail",
        "If an account exists for that address, we sent it a link to choose a new password.",
        ("/login", "Back to login"),
    ))
}

fn reset_form(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let t = req.param("token").unwrap_or("");
    let n = nav(ctx, v);
    if let Err(e) = tokens::peek(ctx.db, &ctx.app.keys, tokens::RESET_PASSWORD, t, ctx.now()) {
        return Response::html(view::message(
            &n,
            "Link not valid",
            &e.to_string(),
            ("/password/forgot", "Ask for a new link"),
        ))
        .with_status(400);
    }
    let (token, cookie) = form_session(ctx, req);
    let action = format!("/password/reset/{t}");
    with_cookie(
        Response::html(view::set_password(
            &n,
            "Choose a new password",
            &action,
            &token,
            false,
            &None,
        )),
        cookie,
    )
}

fn reset(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let t = req.param("token").unwrap_or("").to_string();
    let password = req.form().get("password").unwrap_or("").to_string();
    let csrf = v
        .session
        .as_ref()
        .map(|s| s.csrf.clone())
        .unwrap_or_default();
    let action = format!("/password/reset/{t}");
    let n = nav(ctx, v);
    let again = |status: u16, msg: String| {
        Response::html(view::set_password(
            &n,
            "Choose a new password",
            &action,
            &csrf,
            false,
            &err(msg),
        ))
        .with_status(status)
    };
    if let Err(e) = Hasher::check_strength(&password) {
        return again(400, e.to_string());
    }
    let phc = match ctx.app.hasher.hash(&password) {
        Ok(h) => h,
        Err(e) => return again(e.http_status(), e.to_string()),
    };
    let now = ctx.now();
    let keys = ctx.app.keys.clone();
    let ip = ctx.ip_hash(req);
    let done = db::write(ctx.db, |tx| {
        let r = tokens::consume(tx, &keys, tokens::RESET_PASSWORD, &t, now)?;
        let uid = r.user_id.ok_or(Error::NotFound("account"))?;
        accounts::set_password_hash(tx, uid, &phc)?;
        // Whoever reads the mailbox proved they own the address.
        accounts::mark_verified(tx, uid, now)?;
        tokens::revoke_all(tx, uid, tokens::RESET_PASSWORD, now)?;
        sessions::revoke_all_for_user(tx, uid, None)?;
        audit::security(tx, Some(uid), PASSWORD_RESET, &ip, "", now)
    });
    match done {
        Ok(()) => Response::redirect("/login?m=password_changed")
            .with_header("Set-Cookie", &clear_cookie(req)),
        Err(e) => again(400, e.to_string()),
    }
}

fn setup_form(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let t = req.param("token").unwrap_or("");
    let n = nav(ctx, v);
    if let Err(e) = tokens::peek(ctx.db, &ctx.app.keys, tokens::ADMIN_SETUP, t, ctx.now()) {
        return Response::html(view::message(
            &n,
            "Link not valid",
            &e.to_string(),
            ("/", "Home"),
        ))
        .with_status(400);
    }
    let (token, cookie) = form_session(ctx, req);
    let action = format!("/setup/{t}");
    with_cookie(
        Response::html(view::set_password(
            &n,
            "Create the first administrator",
            &action,
            &token,
            true,
            &None,
        )),
        cookie,
    )
}

fn setup(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let t = req.param("token").unwrap_or("").to_string();
    let form = req.form();
    let email = form.text("email");
    let password = form.get("password").unwrap_or("").to_string();
    let csrf = v
        .session
        .as_ref()
        .map(|s| s.csrf.clone())
        .unwrap_or_default();
    let action = format!("/setup/{t}");
    let n = nav(ctx, v);
    let again = |status: u16, msg: String| {
        Response::html(view::set_password(
            &n,
            "Create the first administrator",
            &action,
            &csrf,
            true,
            &err(msg),
        ))
        .with_status(status)
    };
    if let Err(e) =
        accounts::normalise_email(&email).and_then(|_| Hasher::check_strength(&password))
    {
        return again(400, e.to_string());
    }
    let phc = match ctx.app.hasher.hash(&password) {
        Ok(h) => h,
        Err(e) => return again(e.http_status(), e.to_string()),
    };
    let now = ctx.now();
    let keys = ctx.app.keys.clone();
    let created = db::write(ctx.db, |tx| {
        tokens::consume(tx, &keys, tokens::ADMIN_SETUP, &t, now)?;
        let u = accounts::create(
            tx,
            &NewUser {
                email: &email,
                password_hash: Some(&phc),
                role: Role::Admin,
                verified: true,
                age_confirmed: true,
                aup_accepted: true,
            },
            now,
        )?;
        audit::audit(
            tx,
            None,
            Some(u.id),
            "admin_created",
            "first-run setup link",
            "",
            now,
        )?;
        Ok(u)
    });
    match created {
        Ok(u) => sign_in(ctx, req, u.id, "/admin")
            .unwrap_or_else(|e| error_page(req, 500, &e.to_string())),
        Err(e) => again(e.http_status(), e.to_string()),
    }
}

pub(in crate::http::web) fn settings_page(
    ctx: &mut Ctx<'_>,
    s: &Signed,
    flash: Option<Flash>,
    status: u16,
) -> Response {
    let events = audit::security_events_for(ctx.db, s.user.id, 5, 0).unwrap_or_default();
    let two_factor = second_factor::enabled(ctx.db, s.user.id).unwrap_or(false);
    Response::html(view::settings(
        &signed_nav(ctx, s),
        &s.user,
        s.csrf(),
        two_factor,
        &events,
        &flash,
    ))
    .with_status(status)
}

/// `/settings/security?page=N`: the account's own security events, newest first.
fn security_log(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let page: i64 = req
        .query_param("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .clamp(1, 100_000);
    // One more than a page tells whether there is a next one.
    match audit::security_events_for(
        ctx.db,
        s.user.id,
        EVENTS_PER_PAGE + 1,
        (page - 1) * EVENTS_PER_PAGE,
    ) {
        Ok(mut events) => {
            let more = events.len() as i64 > EVENTS_PER_PAGE;
            events.truncate(EVENTS_PER_PAGE as usize);
            Response::html(view::security_log(&signed_nav(ctx, s), &events, page, more))
        }
        Err(e) => error_page(req, 500, &e.to_string()),
    }
}

fn settings(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    settings_page(ctx, s, flash_from_query(req), 200)
}

fn settings_profile(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    match accounts::set_display_name(ctx.db, s.user.id, &req.form().text("display_name")) {
        Ok(()) => Response::redirect("/settings?m=saved"),
        Err(e) => settings_page(ctx, s, err(e.to_string()), 400),
    }
}

fn settings_password(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let form = req.form();
    let current = form.get("current_password").unwrap_or("");
    let new = form.get("password").unwrap_or("");
    match ctx
        .app
        .hasher
        .verify(current, s.user.password_hash.as_deref())
    {
        Ok(true) => {}
        Ok(false) => return settings_page(ctx, s, err("The current password is wrong."), 400),
        Err(e) => return settings_page(ctx, s, err(e.to_string()), e.http_status()),
    }
    if let Err(e) = Hasher::check_strength(new) {
        return settings_page(ctx, s, err(e.to_string()), 400);
    }
    let phc = match ctx.app.hasher.hash(new) {
        Ok(h) => h,
        Err(e) => return settings_page(ctx, s, err(e.to_string()), e.http_status()),
    };
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    let smtp = ctx.app.config.smtp.is_some();
    let site = ctx.app.config.site_name.clone();
    let done = db::write(ctx.db, |tx| {
        accounts::set_password_hash(tx, s.user.id, &phc)?;
        // Every session ends, this one too: the person logs in again with the new password.
        sessions::revoke_all_for_user(tx, s.user.id, None)?;
        audit::security(tx, Some(s.user.id), PASSWORD_CHANGED, &ip, "", now)?;
        mail::enqueue(
            tx,
            &s.user.email,
            &format!("Your {site} password was changed"),
            "Hello,\n\nthe password of your account was just changed and every session was \
             signed out. If this was not you, reset your password at once.\n",
            smtp,
            now,
        )?;
        Ok(())
    });
    match done {
        Ok(()) => Response::redirect("/login?m=password_changed")
            .with_header("Set-Cookie", &clear_cookie(req)),
        Err(e) => settings_page(ctx, s, err(e.to_string()), e.http_status()),
    }
}

fn settings_revoke_sessions(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    match sessions::revoke_all_for_user(ctx.db, s.user.id, Some(s.session.id)) {
        Ok(_) => Response::redirect("/settings?m=sessions_revoked"),
        Err(e) => error_page(req, 500, &e.to_string()),
    }
}
