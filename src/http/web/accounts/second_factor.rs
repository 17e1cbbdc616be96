//! Two-factor sign-in: the settings page under `/settings/2fa` (set up, confirm, turn off,
//! new recovery codes; each change needs the password, and turning off or new codes a
//! current code too, and each sends a security e-mail), and the code step of the login at
//! `/login/2fa`, reached from the password step with a short-lived waiting session.

use crate::clock::format_datetime;
use crate::db;
use crate::domain::accounts::second_factor::{self, Proof, Status};
use crate::domain::accounts::sessions::Session;
use crate::domain::accounts::{self, Role, State as AccountState};
use crate::domain::base::audit::{
    self, LOGIN_FAILED, RECOVERY_CODES_REGENERATED, RECOVERY_CODE_USED, SECOND_FACTOR_ASKED,
    SECOND_FACTOR_FAILED, TOTP_DISABLED, TOTP_ENABLED,
};
use crate::domain::{accounts::sessions, accounts::totp, base::mail, Error};
use crate::http::auth::{clear_cookie, safe_next, session_cookie, Page, Visitor};
use crate::http::router::Router;
use crate::http::web::accounts::account::{
    open_session, signed_in_redirect, try_again_in, with_next,
};
use crate::http::web::{form, nav};
use crate::http::{error_page, Ctx, Method, Request, Response};
use crate::qr::QrCode;
use crate::views::accounts::second_factor::{self as view, State};
use crate::views::Flash;

/// How long the code step waits after the password.
const PENDING_TTL: i64 = 300;
/// Wrong codes one waiting session may try before the password is asked again.
const PENDING_ATTEMPTS: u32 = 5;

pub fn routes(r: &mut Router) {
    use Method::{Get, Post};
    r.pages(
        Role::User,
        &[
            (Get, "/settings/2fa", page),
            (Post, "/settings/2fa/start", start),
            (Post, "/settings/2fa/enable", enable),
            (Post, "/settings/2fa/disable", disable),
            (Post, "/settings/2fa/recovery", regenerate),
        ],
    );
    r.visitors(&[
        (Get, "/login/2fa", login_form),
        (Post, "/login/2fa", login_code),
    ]);
}

/// The settings page, with the recovery codes just made (shown this once).
fn view(
    ctx: &mut Ctx<'_>,
    req: &Request,
    p: &Page,
    new_codes: Option<&[String]>,
    flash: &Option<Flash>,
) -> Response {
    let uid = p.user.id;
    let st = match second_factor::status(ctx.db, uid) {
        Ok(st) => st,
        Err(e) => return error_page(req, e.http_status(), &e.to_string()),
    };
    let enrolling = match &st {
        Some(Status {
            enabled_at: None, ..
        }) => second_factor::pending_secret(ctx.db, &ctx.app.keys, uid)
            .ok()
            .flatten()
            .map(|secret| {
                let uri = totp::otpauth_uri(&ctx.app.config.site_name, &p.user.email, &secret);
                let qr = QrCode::encode(uri.as_bytes());
                (uri, totp::base32_encode(&secret), qr)
            }),
        _ => None,
    };
    let state = match (&st, &enrolling) {
        (
            Some(Status {
                enabled_at: Some(t),
                recovery_left,
            }),
            _,
        ) => State::On {
            since: *t,
            recovery_left: *recovery_left,
        },
        (_, Some((uri, b32, Some(qr)))) => State::Enrolling {
            qr,
            uri,
            secret_b32: b32,
        },
        _ => State::Off,
    };
    let has_password = p.user.password_hash.is_some();
    Response::html(view::settings(
        &p.nav,
        has_password,
        p.csrf(),
        &state,
        new_codes,
        flash,
    ))
}

/// Where the settings forms go back to when they fail.
const BACK: &str = "/settings/2fa";

fn page(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    view(ctx, req, p, None, &p.flash)
}

fn start(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let keys = ctx.app.keys.clone();
    let uid = p.user.id;
    form::submit(
        ctx,
        req,
        &p.session,
        BACK,
        |tx, _, now| second_factor::start(tx, &keys, uid, now),
        |_, _| Response::redirect("/settings/2fa#enrol"),
    )
}

/// The answer when the account or its address has too many recent failures.
fn throttled(secs: u64) -> String {
    format!("Too many failed attempts. {}", try_again_in(secs))
}

fn retry_after(ctx: &Ctx<'_>, user_id: i64, ip: &str) -> Option<u64> {
    let cfg = &ctx.app.config;
    audit::login_retry_after(
        ctx.db,
        Some(user_id),
        ip,
        cfg.login_max_failures,
        cfg.login_ip_max_failures,
        cfg.login_window,
        ctx.now(),
    )
    .unwrap_or_else(|e| {
        log::error!("login throttle check failed: {e:?}");
        None
    })
}

/// Sends a throttled form back to `back`, saying when to try again.
fn fail_throttled(
    ctx: &Ctx<'_>,
    req: &Request,
    session: &Session,
    back: &str,
    secs: u64,
) -> Response {
    form::fail(ctx, req, session, back, throttled(secs))
        .with_header("Retry-After", &secs.to_string())
}

/// Asks for the password again before a change to the second factor: throttled like the
/// login, and a wrong password counts as a failed login. `Err` holds the answer.
fn recheck_password(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Result<String, Response> {
    let ip = ctx.ip_hash(req);
    if let Some(secs) = retry_after(ctx, p.user.id, &ip) {
        return Err(fail_throttled(ctx, req, &p.session, BACK, secs));
    }
    if p.user.password_hash.is_none() {
        // An account that signs in only with a provider has no password to ask again.
        return Ok(ip);
    }
    let password = req.form().get("password").unwrap_or("").to_string();
    match ctx
        .app
        .hasher
        .verify(&password, p.user.password_hash.as_deref())
    {
        Ok(true) => Ok(ip),
        Ok(false) => {
            let _ = audit::security(
                ctx.db,
                Some(p.user.id),
                LOGIN_FAILED,
                &ip,
                "2fa settings",
                ctx.now(),
            );
            Err(form::fail(
                ctx,
                req,
                &p.session,
                BACK,
                "The password is wrong.",
            ))
        }
        Err(e) => Err(form::fail(ctx, req, &p.session, BACK, e)),
    }
}

/// Queues a security notice to the account's address in the caller's transaction. `subject`
/// may name the site as `{site}`.
pub(in crate::http::web) fn notice(
    tx: &rusqlite::Connection,
    ctx_app: &crate::app::App,
    to: &str,
    subject: &str,
    what: &str,
    now: i64,
) -> Result<i64, Error> {
    let site = &ctx_app.config.site_name;
    let body = format!(
        "Hello,\n\n{what} ({} UTC).\n\nIf this was not you, reset your password at once \
         ({}/password/forgot) and tell the operator of {site}.\n",
        format_datetime(now),
        ctx_app.config.base_url
    );
    mail::enqueue(
        tx,
        to,
        &subject.replace("{site}", site),
        &body,
        ctx_app.config.smtp.is_some(),
        now,
    )
}

/// Answers this POST with the page itself: the recovery codes are shown only now.
fn enable(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let ip = match recheck_password(ctx, req, p) {
        Ok(ip) => ip,
        Err(r) => return r,
    };
    let code = req.form().text("code");
    let now = ctx.now();
    let app = ctx.app;
    let uid = p.user.id;
    let done = db::write(ctx.db, |tx| {
        let codes = second_factor::confirm(tx, &app.keys, uid, &code, now)?;
        audit::security(tx, Some(uid), TOTP_ENABLED, &ip, "", now)?;
        notice(
            tx,
            app,
            &p.user.email,
            "Two-factor sign-in is on for your {site} account",
            "two-factor sign-in was turned on for your account: from now on, signing in asks \
             for a code from your authenticator app after the password",
            now,
        )?;
        Ok(codes)
    });
    match done {
        Ok(codes) => {
            let on = Some(Flash::Ok("Two-factor sign-in is on.".into()));
            view(ctx, req, p, Some(&codes), &on)
        }
        Err(e) => {
            if let Error::Invalid(_) = e {
                let _ =
                    audit::security(ctx.db, Some(uid), SECOND_FACTOR_FAILED, &ip, "set-up", now);
            }
            form::fail(ctx, req, &p.session, BACK, e)
        }
    }
}

/// What a change guarded by a code does, in the transaction that spends the code.
type Change<'f, T> = dyn FnOnce(&rusqlite::Connection, &str) -> Result<T, Error> + Send + 'f;

/// Checks the password and a current code (or a recovery code) of the account, then runs
/// `change` in the transaction that spends the code. `Err` holds the answer.
fn with_code<T: Send>(
    ctx: &mut Ctx<'_>,
    req: &Request,
    p: &Page,
    change: Box<Change<'_, T>>,
) -> Result<T, Response> {
    let ip = recheck_password(ctx, req, p)?;
    let code = req.form().text("code");
    let now = ctx.now();
    let app = ctx.app;
    let uid = p.user.id;
    let done = db::write(ctx.db, |tx| {
        let Some(proof) = second_factor::verify(tx, &app.keys, uid, &code, now)? else {
            return Ok(None);
        };
        if let Proof::Recovery { left } = proof {
            audit::security(
                tx,
                Some(uid),
                RECOVERY_CODE_USED,
                &ip,
                &format!("{left} left"),
                now,
            )?;
        }
        change(tx, &ip).map(Some)
    });
    match done {
        Ok(Some(v)) => Ok(v),
        Ok(None) => {
            let _ = audit::security(
                ctx.db,
                Some(uid),
                SECOND_FACTOR_FAILED,
                &ip,
                "settings",
                now,
            );
            Err(form::fail(ctx, req, &p.session, BACK, NOT_VALID))
        }
        Err(e) => Err(form::fail(ctx, req, &p.session, BACK, e)),
    }
}

/// A wrong or spent code.
const NOT_VALID: &str = "That code is not valid (or was already used).";

fn disable(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (app, now, uid, email) = (ctx.app, ctx.now(), p.user.id, p.user.email.clone());
    let change = Box::new(move |tx: &rusqlite::Connection, ip: &str| {
        second_factor::disable(tx, uid)?;
        audit::security(tx, Some(uid), TOTP_DISABLED, ip, "", now)?;
        notice(
            tx,
            app,
            &email,
            "Two-factor sign-in is off for your {site} account",
            "two-factor sign-in was turned off for your account: signing in now asks for the \
             password only",
            now,
        )?;
        Ok(())
    });
    match with_code(ctx, req, p, change) {
        Ok(()) => Response::redirect("/settings/2fa?m=second_factor_off"),
        Err(r) => r,
    }
}

/// Answers this POST with the page itself: the new recovery codes are shown only now.
fn regenerate(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (app, now, uid, email) = (ctx.app, ctx.now(), p.user.id, p.user.email.clone());
    let change = Box::new(move |tx: &rusqlite::Connection, ip: &str| {
        let codes = second_factor::regenerate(tx, &app.keys, uid, now)?;
        audit::security(tx, Some(uid), RECOVERY_CODES_REGENERATED, ip, "", now)?;
        notice(
            tx,
            app,
            &email,
            "New recovery codes for your {site} account",
            "new recovery codes were made for your account's two-factor sign-in; the old ones \
             no longer work",
            now,
        )?;
        Ok(codes)
    });
    match with_code(ctx, req, p, change) {
        Ok(codes) => {
            let made = Some(Flash::Ok(
                "New recovery codes made; the old ones no longer work.".into(),
            ));
            view(ctx, req, p, Some(&codes), &made)
        }
        Err(r) => r,
    }
}

/// Called by the password step when the account has a second factor: swaps the visitor's
/// `old` session for an anonymous one that waits for the code, and sends them to the code
/// form.
pub(in crate::http::web) fn ask_code(
    ctx: &mut Ctx<'_>,
    req: &Request,
    old: Option<i64>,
    user_id: i64,
    next: &str,
) -> Result<Response, Error> {
    let ip = ctx.ip_hash(req);
    let now = ctx.now();
    let app = ctx.app;
    let token = db::write(ctx.db, |tx| {
        if let Some(id) = old {
            sessions::revoke(tx, id)?;
        }
        audit::security(tx, Some(user_id), SECOND_FACTOR_ASKED, &ip, "", now)?;
        sessions::create_pending(
            tx,
            &app.keys,
            user_id,
            now + PENDING_TTL,
            &app.session_limits(),
            &ip,
            req.user_agent(),
            now,
        )
    })?;
    // The waiting session lives as long as an anonymous one; the wait itself ends after
    // PENDING_TTL.
    Ok(Response::redirect(&with_next("/login/2fa", next))
        .with_header("Set-Cookie", &session_cookie(req, &token, 86_400)))
}

/// The visitor's session when it waits for a code, and what it waits for.
fn waiting<'v>(ctx: &Ctx<'_>, v: &'v Visitor) -> Option<(&'v Session, sessions::Pending)> {
    let session = v.session.as_ref()?;
    let pending = sessions::pending(ctx.db, session.id, ctx.now()).ok()??;
    Some((session, pending))
}

fn login_form(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    if v.user.is_some() {
        return Response::redirect("/dashboard");
    }
    let Some((session, _)) = waiting(ctx, v) else {
        return Response::redirect("/login?m=second_factor_expired");
    };
    let next = safe_next(req.query_param("next").as_deref());
    Response::html(view::login_code(
        &nav(ctx, v),
        &session.csrf,
        &next,
        &v.flash,
    ))
}

fn login_code(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let Some((session, pending)) = waiting(ctx, v) else {
        return Response::redirect("/login?m=second_factor_expired");
    };
    let form = req.form();
    let code = form.text("code");
    let next = safe_next(form.get("next"));
    let back = with_next("/login/2fa", &next);
    let uid = pending.user_id;
    let ip = ctx.ip_hash(req);
    let now = ctx.now();
    if let Some(secs) = retry_after(ctx, uid, &ip) {
        return fail_throttled(ctx, req, session, &back, secs);
    }
    let give_up = |ctx: &mut Ctx<'_>, why: &str| {
        let _ = sessions::revoke(ctx.db, session.id);
        Response::redirect(&format!("/login?m={why}")).with_header("Set-Cookie", &clear_cookie(req))
    };
    if pending.attempts >= PENDING_ATTEMPTS {
        return give_up(ctx, "second_factor_attempts");
    }
    match accounts::find(ctx.db, uid) {
        Ok(Some(u)) if u.state == AccountState::Active => {}
        Ok(_) => return give_up(ctx, "second_factor_expired"),
        Err(e) => return form::fail(ctx, req, session, &back, e),
    }
    let app = ctx.app;
    let signed = db::write(ctx.db, |tx| {
        let Some(proof) = second_factor::verify(tx, &app.keys, uid, &code, now)? else {
            return Ok(None);
        };
        let how = match proof {
            Proof::Totp => "with an app code".to_string(),
            Proof::Recovery { left } => {
                audit::security(
                    tx,
                    Some(uid),
                    RECOVERY_CODE_USED,
                    &ip,
                    &format!("{left} left"),
                    now,
                )?;
                let email = accounts::get(tx, uid)?.email;
                notice(
                    tx,
                    app,
                    &email,
                    "A recovery code was used on your {site} account",
                    &format!(
                        "a recovery code was used to sign in to your account; {left} unused \
                         code{} left",
                        if left == 1 { "" } else { "s" }
                    ),
                    now,
                )?;
                "with a recovery code".to_string()
            }
        };
        open_session(tx, app, req, Some(session.id), uid, &ip, &how, now).map(Some)
    });
    match signed {
        Ok(Some(token)) => signed_in_redirect(ctx, req, &token, &next),
        Ok(None) => {
            let _ = audit::security(ctx.db, Some(uid), SECOND_FACTOR_FAILED, &ip, "login", now);
            let tries = sessions::pending_failed(ctx.db, session.id).unwrap_or(u32::MAX);
            if tries >= PENDING_ATTEMPTS {
                return give_up(ctx, "second_factor_attempts");
            }
            match retry_after(ctx, uid, &ip) {
                Some(secs) => fail_throttled(ctx, req, session, &back, secs),
                None => form::fail(ctx, req, session, &back, NOT_VALID),
            }
        }
        Err(e) => form::fail(ctx, req, session, &back, e),
    }
}
