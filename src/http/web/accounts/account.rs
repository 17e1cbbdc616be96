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
use crate::http::auth::{clear_cookie, form_session, safe_next, session_cookie, Page, Visitor};
use crate::http::router::Router;
use crate::http::web::{form, nav, with_cookie};
use crate::http::{error_page, Ctx, Method, Request, Response};
use crate::views::accounts::account as view;

const VERIFY_TTL: u64 = 48 * 3600;
const RESET_TTL: u64 = 3600;

pub fn routes(r: &mut Router) {
    use Method::{Get, Post};
    r.visitors(&[
        (Get, "/signup", signup_form),
        (Post, "/signup", signup),
        (Get, "/verify/{token}", verify),
    ]);
    r.pages(Role::User, &[(Post, "/verify/resend", resend_verification)]);
    r.visitors(&[
        (Get, "/login", login_form),
        (Post, "/login", login),
        (Post, "/logout", logout),
        (Get, "/password/forgot", forgot_form),
        (Post, "/password/forgot", forgot),
        (Get, "/password/reset/{token}", reset_form),
        (Post, "/password/reset/{token}", reset),
        (Get, "/setup/{token}", setup_form),
        (Post, "/setup/{token}", setup),
    ]);
    r.pages(
        Role::User,
        &[
            (Get, "/settings", settings),
            (Post, "/settings/profile", settings_profile),
            (Post, "/settings/password", settings_password),
            (Post, "/settings/sessions/revoke", settings_revoke_sessions),
            (Get, "/settings/security", security_log),
        ],
    );
}

/// Security events per page of `/settings/security`.
const EVENTS_PER_PAGE: i64 = 50;

/// Sends a public form's visitor back to `back` with `message` and what they typed. The
/// router let the POST in with its session's CSRF token, so the visitor has a session.
pub(in crate::http::web) fn again(
    ctx: &Ctx<'_>,
    req: &Request,
    v: &Visitor,
    back: &str,
    message: impl std::fmt::Display,
) -> Response {
    match &v.session {
        Some(session) => form::fail(ctx, req, session, back, message),
        None => Response::redirect(back),
    }
}

/// The hash of a new password that is long enough.
pub(in crate::http::web) fn new_password_hash(
    ctx: &Ctx<'_>,
    password: &str,
) -> Result<String, Error> {
    Hasher::check_strength(password)?;
    ctx.app.hasher.hash(password)
}

/// "Try again in N minutes" after too many failures.
pub(in crate::http::web) fn try_again_in(secs: u64) -> String {
    let mins = secs.div_ceil(60);
    format!(
        "Try again in {mins} minute{}.",
        if mins == 1 { "" } else { "s" }
    )
}

/// A step of the login at `path`, keeping where to go afterwards.
pub(in crate::http::web) fn with_next(path: &str, next: &str) -> String {
    if next == "/dashboard" {
        path.to_string()
    } else {
        format!("{path}?next={}", crate::url::percent_encode(next))
    }
}

/// Starts a fresh signed-in session (ending the visitor's `old` one) and redirects.
fn sign_in(
    ctx: &mut Ctx<'_>,
    req: &Request,
    old: Option<i64>,
    user_id: i64,
    to: &str,
) -> Result<Response, Error> {
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

/// Issues a verification link and queues its mail in the caller's transaction.
fn send_verification(
    tx: &rusqlite::Connection,
    app: &crate::app::App,
    user: &accounts::User,
    now: i64,
) -> Result<i64, Error> {
    let t = tokens::issue(
        tx,
        &app.keys,
        tokens::VERIFY_EMAIL,
        Some(user.id),
        "",
        VERIFY_TTL,
        now,
    )?;
    let cfg = &app.config;
    let (subject, body) = verification_mail(&cfg.base_url, &cfg.site_name, &t);
    mail::enqueue(tx, &user.email, &subject, &body, cfg.smtp.is_some(), now)
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
    let (token, cookie) = form_session(ctx, req, v);
    let min_age = ctx.app.config.min_age;
    let providers = super::oidc::buttons(ctx, "/dashboard");
    let page = view::signup(&nav(ctx, v), &token, &v.kept, min_age, &providers, &v.flash);
    with_cookie(Response::html(page), cookie)
}

fn signup(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let form = req.form();
    let email = form.text("email");
    let password = form.get("password").unwrap_or("");
    let back = |ctx: &Ctx<'_>, msg: String| again(ctx, req, v, "/signup", msg);
    if !form.checked("age") {
        let msg = format!(
            "You must confirm that you are at least {} years old.",
            ctx.app.config.min_age
        );
        return back(ctx, msg);
    }
    if !form.checked("aup") {
        return back(ctx, "You must accept the acceptable-use policy.".into());
    }
    let phc = match accounts::normalise_email(&email).and_then(|_| new_password_hash(ctx, password))
    {
        Ok(h) => h,
        Err(e) => return back(ctx, e.to_string()),
    };
    let now = ctx.now();
    let app = ctx.app;
    let cooldown = app.config.deletion_cooldown;
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
        send_verification(tx, app, &user, now)?;
        Ok(user)
    });
    let old = v.session.as_ref().map(|s| s.id);
    match created.and_then(|user| sign_in(ctx, req, old, user.id, "/dashboard?m=welcome")) {
        Ok(r) => r,
        Err(e) => back(ctx, e.to_string()),
    }
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
    if p.user.is_verified() {
        return Response::redirect("/dashboard");
    }
    let app = ctx.app;
    form::submit(
        ctx,
        req,
        &p.session,
        "/dashboard",
        |tx, _, now| {
            tokens::revoke_all(tx, p.user.id, tokens::VERIFY_EMAIL, now)?;
            send_verification(tx, app, &p.user, now)
        },
        |_, _| Response::redirect("/dashboard?m=verify_sent"),
    )
}

fn login_form(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    if v.user.is_some() {
        return Response::redirect("/dashboard");
    }
    let (token, cookie) = form_session(ctx, req, v);
    let next = safe_next(req.query_param("next").as_deref());
    let providers = super::oidc::buttons(ctx, &next);
    let page = view::login(&nav(ctx, v), &token, &v.kept, &next, &providers, &v.flash);
    with_cookie(Response::html(page), cookie)
}

fn login(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let form = req.form();
    let email = form.text("email");
    let password = form.get("password").unwrap_or("");
    let next = safe_next(form.get("next"));
    let back_url = with_next("/login", &next);
    let back = |ctx: &Ctx<'_>, msg: String| again(ctx, req, v, &back_url, msg);
    let throttled = |ctx: &Ctx<'_>, secs: u64| {
        back(
            ctx,
            format!("Too many failed attempts. {}", try_again_in(secs)),
        )
        .with_header("Retry-After", &secs.to_string())
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
    match audit::login_retry_after(ctx.db, uid, &ip, max_acct, max_ip, window, now) {
        Ok(Some(secs)) => return throttled(ctx, secs),
        Ok(None) => {}
        Err(e) => return back(ctx, e.to_string()),
    }
    let usable = user.as_ref().filter(|u| u.state != State::Deleted);
    let ok = match ctx
        .app
        .hasher
        .verify(password, usable.and_then(|u| u.password_hash.as_deref()))
    {
        Ok(ok) => ok,
        Err(e) => return back(ctx, e.to_string()),
    };
    if !ok {
        let _ = audit::security(ctx.db, uid, LOGIN_FAILED, &ip, "", now);
        if let Ok(Some(secs)) =
            audit::login_retry_after(ctx.db, uid, &ip, max_acct, max_ip, window, now)
        {
            return throttled(ctx, secs);
        }
        return back(ctx, "Wrong e-mail or password.".into());
    }
    let user = usable.expect("verified against a real account");
    match user.state {
        State::Active => {}
        State::Suspended => {
            return back(
                ctx,
                "This account is suspended. Contact the operator of this site.".into(),
            )
        }
        // The appeal link on that page is made for this answer only.
        State::Terminated => {
            return crate::http::web::trust::abuse::terminated_page(ctx, req, v, user)
        }
        State::Deleted => return back(ctx, "This account is closed.".into()),
    }
    let old = v.session.as_ref().map(|s| s.id);
    let signed = second_factor::enabled(ctx.db, user.id).and_then(|two_factor| {
        if two_factor {
            crate::http::web::accounts::second_factor::ask_code(ctx, req, old, user.id, &next)
        } else {
            sign_in(ctx, req, old, user.id, &next)
        }
    });
    signed.unwrap_or_else(|e| back(ctx, e.to_string()))
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
    let n = nav(ctx, v);
    if req.query_param("sent").is_some() {
        return Response::html(view::message(
            &n,
            "Check your mail",
            "If an account exists for that address, we sent it a link to choose a new password.",
            ("/login", "Back to login"),
        ));
    }
    let (token, cookie) = form_session(ctx, req, v);
    with_cookie(
        Response::html(view::forgot(&n, &token, &v.kept, &v.flash)),
        cookie,
    )
}

/// Answers the same whether or not the address has an account.
fn forgot(ctx: &mut Ctx<'_>, req: &Request, _: &Visitor) -> Response {
    let email = req.form().text("email");
    let now = ctx.now();
    if let Ok(Some(user)) = accounts::find_by_email(ctx.db, &email) {
        let recent =
            tokens::issued_since(ctx.db, user.id, tokens::RESET_PASSWORD, now - 3600).unwrap_or(0);
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
    Response::redirect("/password/forgot?sent=1")
}

/// A page behind an e-mailed link (`purpose`): the form to set a password, or the page
/// saying the link is not valid (with `elsewhere` to go instead).
fn link_form(
    ctx: &mut Ctx<'_>,
    req: &Request,
    v: &Visitor,
    purpose: &str,
    title: &str,
    elsewhere: (&str, &str),
) -> Response {
    let n = nav(ctx, v);
    if let Err(e) = tokens::peek(
        ctx.db,
        &ctx.app.keys,
        purpose,
        req.param("token").unwrap_or(""),
        ctx.now(),
    ) {
        let page = view::message(&n, "Link not valid", &e.to_string(), elsewhere);
        return Response::html(page).with_status(400);
    }
    let (token, cookie) = form_session(ctx, req, v);
    let ask_email = purpose == tokens::ADMIN_SETUP;
    let page = view::set_password(&n, title, &req.path, &token, ask_email, &v.kept, &v.flash);
    with_cookie(Response::html(page), cookie)
}

fn reset_form(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let elsewhere = ("/password/forgot", "Ask for a new link");
    link_form(
        ctx,
        req,
        v,
        tokens::RESET_PASSWORD,
        "Choose a new password",
        elsewhere,
    )
}

fn reset(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let t = req.param("token").unwrap_or("").to_string();
    let phc = match new_password_hash(ctx, req.form().get("password").unwrap_or("")) {
        Ok(h) => h,
        Err(e) => return again(ctx, req, v, &req.path, e),
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
        Err(e) => again(ctx, req, v, &req.path, e),
    }
}

fn setup_form(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let title = "Create the first administrator";
    link_form(ctx, req, v, tokens::ADMIN_SETUP, title, ("/", "Home"))
}

fn setup(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let t = req.param("token").unwrap_or("").to_string();
    let form = req.form();
    let email = form.text("email");
    let hashed = accounts::normalise_email(&email)
        .and_then(|_| new_password_hash(ctx, form.get("password").unwrap_or("")));
    let phc = match hashed {
        Ok(h) => h,
        Err(e) => return again(ctx, req, v, &req.path, e),
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
    let old = v.session.as_ref().map(|s| s.id);
    match created.and_then(|u| sign_in(ctx, req, old, u.id, "/admin")) {
        Ok(r) => r,
        Err(e) => again(ctx, req, v, &req.path, e),
    }
}

fn settings(ctx: &mut Ctx<'_>, _: &Request, p: &Page) -> Response {
    let events = audit::security_events_for(ctx.db, p.user.id, None, 5).unwrap_or_default();
    let two_factor = second_factor::enabled(ctx.db, p.user.id).unwrap_or(false);
    let identities = super::oidc::settings_section(ctx, p);
    Response::html(view::settings(
        &p.nav,
        &p.user,
        p.csrf(),
        two_factor,
        identities,
        &events,
        &p.kept,
        &p.flash,
    ))
}

/// `/settings/security?before=ID`: the account's own security events, newest first, a page
/// at a time by keyset.
fn security_log(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let before: Option<i64> = req.query_param("before").and_then(|b| b.parse().ok());
    // One more than a page tells whether there is a next one.
    match audit::security_events_for(ctx.db, p.user.id, before, EVENTS_PER_PAGE + 1) {
        Ok(mut events) => {
            let older = (events.len() as i64 > EVENTS_PER_PAGE).then(|| {
                events.truncate(EVENTS_PER_PAGE as usize);
                events.last().map_or(0, |e| e.id)
            });
            Response::html(view::security_log(&p.nav, &events, before.is_some(), older))
        }
        Err(e) => error_page(req, 500, &e.to_string()),
    }
}

fn settings_profile(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    form::submit(
        ctx,
        req,
        &p.session,
        "/settings",
        |tx, f, _| accounts::set_display_name(tx, p.user.id, &f.text("display_name")),
        |_, ()| Response::redirect("/settings?m=saved"),
    )
}

/// Checks the current password typed into a settings form; `Err` holds the message. An
/// account without a password (it signs in with a provider) has none to check: its signed-in
/// session is the proof, as for its deletion.
pub(in crate::http::web) fn current_password_ok(
    ctx: &Ctx<'_>,
    p: &Page,
    typed: &str,
) -> Result<(), String> {
    if p.user.password_hash.is_none() {
        return Ok(());
    }
    match ctx
        .app
        .hasher
        .verify(typed, p.user.password_hash.as_deref())
    {
        Ok(true) => Ok(()),
        Ok(false) => Err("The current password is wrong.".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn settings_password(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let form = req.form();
    let checked =
        current_password_ok(ctx, p, form.get("current_password").unwrap_or("")).and_then(|()| {
            new_password_hash(ctx, form.get("password").unwrap_or("")).map_err(|e| e.to_string())
        });
    let phc = match checked {
        Ok(h) => h,
        Err(msg) => return form::fail(ctx, req, &p.session, "/settings", msg),
    };
    let ip = ctx.ip_hash(req);
    let smtp = ctx.app.config.smtp.is_some();
    let site = ctx.app.config.site_name.clone();
    let uid = p.user.id;
    form::submit(
        ctx,
        req,
        &p.session,
        "/settings",
        |tx, _, now| {
            accounts::set_password_hash(tx, uid, &phc)?;
            // Every session ends, this one too: the person logs in again with the new password.
            sessions::revoke_all_for_user(tx, uid, None)?;
            audit::security(tx, Some(uid), PASSWORD_CHANGED, &ip, "", now)?;
            mail::enqueue(
                tx,
                &p.user.email,
                &format!("Your {site} password was changed"),
                "Hello,\n\nthe password of your account was just changed and every session was \
                 signed out. If this was not you, reset your password at once.\n",
                smtp,
                now,
            )?;
            Ok(())
        },
        |_, ()| {
            Response::redirect("/login?m=password_changed")
                .with_header("Set-Cookie", &clear_cookie(req))
        },
    )
}

fn settings_revoke_sessions(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (uid, sid) = (p.user.id, p.session.id);
    form::submit(
        ctx,
        req,
        &p.session,
        "/settings",
        |tx, _, _| sessions::revoke_all_for_user(tx, uid, Some(sid)).map(|_| ()),
        |_, ()| Response::redirect("/settings?m=sessions_revoked"),
    )
}
