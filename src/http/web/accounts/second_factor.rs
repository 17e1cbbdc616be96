//! Two-factor sign-in: the settings page under `/settings/2fa` (set up, confirm, turn off,
//! new recovery codes; each change needs the password, and turning off or new codes a
//! current code too, and each sends a security e-mail), and the code step of the login at
//! `/login/2fa`, reached from the password step with a short-lived waiting session.

use crate::clock::format_datetime;
use crate::db;
use crate::domain::accounts::second_factor::{self, Proof, Status};
use crate::domain::accounts::{self, Role, State as AccountState};
use crate::domain::base::audit::{
    self, LOGIN_FAILED, RECOVERY_CODES_REGENERATED, RECOVERY_CODE_USED, SECOND_FACTOR_ASKED,
    SECOND_FACTOR_FAILED, TOTP_DISABLED, TOTP_ENABLED,
};
use crate::domain::{accounts::sessions, accounts::totp, base::mail, Error};
use crate::http::auth::{clear_cookie, safe_next, session_cookie, visitor, Page, Signed, Visitor};
use crate::http::router::Router;
use crate::http::web::accounts::account::{open_session, signed_in_redirect};
use crate::http::web::{flash_from_query, nav};
use crate::http::{error_page, Ctx, Method, Request, Response};
use crate::qr::QrCode;
use crate::views::accounts::second_factor::{self as view, State};
use crate::views::{Flash, Nav};

/// How long the code step waits after the password.
const PENDING_TTL: i64 = 300;
/// Wrong codes one waiting session may try before the password is asked again.
const PENDING_ATTEMPTS: u32 = 5;

pub fn routes(r: &mut Router) {
    r.page(Method::Get, "/settings/2fa", Role::User, page);
    r.page(Method::Post, "/settings/2fa/start", Role::User, start);
    r.page(Method::Post, "/settings/2fa/enable", Role::User, enable);
    r.page(Method::Post, "/settings/2fa/disable", Role::User, disable);
    r.page(
        Method::Post,
        "/settings/2fa/recovery",
        Role::User,
        regenerate,
    );
    r.visitor(Method::Get, "/login/2fa", login_form);
    r.visitor(Method::Post, "/login/2fa", login_code);
}

fn err(msg: impl Into<String>) -> Option<Flash> {
    Some(Flash::Err(msg.into()))
}

fn view(
    ctx: &mut Ctx<'_>,
    s: &Signed,
    n: &Nav,
    new_codes: Option<&[String]>,
    flash: Option<Flash>,
    status: u16,
) -> Response {
    let st = match second_factor::status(ctx.db, s.user.id) {
        Ok(st) => st,
        Err(e) => return error_page_for(e),
    };
    let enrolling = match &st {
        Some(Status {
            enabled_at: None, ..
        }) => second_factor::pending_secret(ctx.db, &ctx.app.keys, s.user.id)
            .ok()
            .flatten()
            .map(|secret| {
                let uri = totp::otpauth_uri(&ctx.app.config.site_name, &s.user.email, &secret);
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
    Response::html(view::settings(n, s.csrf(), &state, new_codes, &flash)).with_status(status)
}

fn error_page_for(e: Error) -> Response {
    Response::html(crate::views::error_page(e.http_status(), &e.to_string()))
        .with_status(e.http_status())
}

fn page(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    view(ctx, s, n, None, flash_from_query(req), 200)
}

fn start(ctx: &mut Ctx<'_>, _req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let now = ctx.now();
    let keys = ctx.app.keys.clone();
    match db::write(ctx.db, |tx| second_factor::start(tx, &keys, s.user.id, now)) {
        Ok(_) => Response::redirect("/settings/2fa#enrol"),
        Err(e) => view(ctx, s, n, None, err(e.to_string()), e.http_status()),
    }
}

/// The answer when the account or its address has too many recent failures.
fn throttled(secs: u64) -> String {
    let mins = secs.div_ceil(60);
    format!(
        "Too many failed attempts. Try again in {mins} minute{}.",
        if mins == 1 { "" } else { "s" }
    )
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

/// Asks for the password again before a change to the second factor: throttled like the
/// login, and a wrong password counts as a failed login. `Err` holds the page to answer.
fn recheck_password(
    ctx: &mut Ctx<'_>,
    req: &Request,
    s: &Signed,
    n: &Nav,
) -> Result<String, Response> {
    let ip = ctx.ip_hash(req);
    if let Some(secs) = retry_after(ctx, s.user.id, &ip) {
        return Err(view(ctx, s, n, None, err(throttled(secs)), 429)
            .with_header("Retry-After", &secs.to_string()));
    }
    let password = req.form().get("password").unwrap_or("").to_string();
    match ctx
        .app
        .hasher
        .verify(&password, s.user.password_hash.as_deref())
    {
        Ok(true) => Ok(ip),
        Ok(false) => {
            let _ = audit::security(
                ctx.db,
                Some(s.user.id),
                LOGIN_FAILED,
                &ip,
                "2fa settings",
                ctx.now(),
            );
            Err(view(ctx, s, n, None, err("The password is wrong."), 400))
        }
        Err(e) => Err(view(ctx, s, n, None, err(e.to_string()), e.http_status())),
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

fn enable(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let ip = match recheck_password(ctx, req, s, n) {
        Ok(ip) => ip,
        Err(r) => return r,
    };
    let code = req.form().text("code");
    let now = ctx.now();
    let app = ctx.app;
    let done = db::write(ctx.db, |tx| {
        let codes = second_factor::confirm(tx, &app.keys, s.user.id, &code, now)?;
        audit::security(tx, Some(s.user.id), TOTP_ENABLED, &ip, "", now)?;
        notice(
            tx,
            app,
            &s.user.email,
            "Two-factor sign-in is on for your {site} account",
            "two-factor sign-in was turned on for your account: from now on, signing in asks \
             for a code from your authenticator app after the password",
            now,
        )?;
        Ok(codes)
    });
    match done {
        Ok(codes) => view(
            ctx,
            s,
            n,
            Some(&codes),
            Some(Flash::Ok("Two-factor sign-in is on.".into())),
            200,
        ),
        Err(e @ Error::Invalid(_)) => {
            let _ = audit::security(
                ctx.db,
                Some(s.user.id),
                SECOND_FACTOR_FAILED,
                &ip,
                "set-up",
                now,
            );
            view(ctx, s, n, None, err(e.to_string()), 400)
        }
        Err(e) => view(ctx, s, n, None, err(e.to_string()), e.http_status()),
    }
}

/// What a change guarded by a code does, in the transaction that spends the code.
type Change<'f, T> = dyn FnOnce(&rusqlite::Transaction<'_>, &str) -> Result<T, Error> + 'f;

/// Checks the password and a current code (or a recovery code) of `s`, then runs `change` in
/// the transaction that spends the code. `Ok(None)` after answering a wrong code.
fn with_code<T>(
    ctx: &mut Ctx<'_>,
    req: &Request,
    s: &Signed,
    n: &Nav,
    change: Box<Change<'_, T>>,
) -> Result<T, Response> {
    let ip = recheck_password(ctx, req, s, n)?;
    let code = req.form().text("code");
    let now = ctx.now();
    let app = ctx.app;
    let done = db::write(ctx.db, |tx| {
        let Some(proof) = second_factor::verify(tx, &app.keys, s.user.id, &code, now)? else {
            return Ok(None);
        };
        if let Proof::Recovery { left } = proof {
            audit::security(
                tx,
                Some(s.user.id),
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
                Some(s.user.id),
                SECOND_FACTOR_FAILED,
                &ip,
                "settings",
                now,
            );
            Err(view(
                ctx,
                s,
                n,
                None,
                err("That code is not valid (or was already used)."),
                400,
            ))
        }
        Err(e) => Err(view(ctx, s, n, None, err(e.to_string()), e.http_status())),
    }
}

fn disable(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let (app, now, uid, email) = (ctx.app, ctx.now(), s.user.id, s.user.email.clone());
    let change = Box::new(move |tx: &rusqlite::Transaction<'_>, ip: &str| {
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
    match with_code(ctx, req, s, n, change) {
        Ok(()) => Response::redirect("/settings/2fa?m=second_factor_off"),
        Err(r) => r,
    }
}

fn regenerate(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let (app, now, uid, email) = (ctx.app, ctx.now(), s.user.id, s.user.email.clone());
    let change = Box::new(move |tx: &rusqlite::Transaction<'_>, ip: &str| {
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
    match with_code(ctx, req, s, n, change) {
        Ok(codes) => view(
            ctx,
            s,
            n,
            Some(&codes),
            Some(Flash::Ok(
                "New recovery codes made; the old ones no longer work.".into(),
            )),
            200,
        ),
        Err(r) => r,
    }
}

/// Called by the password step when the account has a second factor: swaps the visitor's
/// session for an anonymous one that waits for the code, and sends them to the code form.
pub(in crate::http::web) fn ask_code(
    ctx: &mut Ctx<'_>,
    req: &Request,
    user_id: i64,
    next: &str,
) -> Response {
    let old = visitor(ctx, req).session.map(|s| s.id);
    let ip = ctx.ip_hash(req);
    let now = ctx.now();
    let app = ctx.app;
    let made = db::write(ctx.db, |tx| {
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
    });
    match made {
        Ok(token) => {
            let to = if next == "/dashboard" {
                "/login/2fa".to_string()
            } else {
                format!("/login/2fa?next={}", crate::url::percent_encode(next))
            };
            // The waiting session lives as long as an anonymous one; the wait itself ends
            // after PENDING_TTL.
            Response::redirect(&to).with_header("Set-Cookie", &session_cookie(req, &token, 86_400))
        }
        Err(e) => error_page(req, e.http_status(), &e.to_string()),
    }
}

/// The waiting session of the visitor: its id and what it waits for.
fn waiting(ctx: &mut Ctx<'_>, req: &Request) -> Option<(sessions::Session, sessions::Pending)> {
    let session = visitor(ctx, req).session?;
    let pending = sessions::pending(ctx.db, session.id, ctx.now()).ok()??;
    Some((session, pending))
}

fn login_form(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    if v.user.is_some() {
        return Response::redirect("/dashboard");
    }
    let Some((session, _)) = waiting(ctx, req) else {
        return Response::redirect("/login?m=second_factor_expired");
    };
    let next = safe_next(req.query_param("next").as_deref());
    Response::html(view::login_code(&nav(ctx, v), &session.csrf, &next, &None))
}

fn login_code(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let Some((session, pending)) = waiting(ctx, req) else {
        return Response::redirect("/login?m=second_factor_expired");
    };
    let form = req.form();
    let code = form.text("code");
    let next = safe_next(form.get("next"));

    let again = |ctx: &Ctx<'_>, status: u16, msg: String| {
        Response::html(view::login_code(
            &nav(ctx, v),
            &session.csrf,
            &next,
            &err(msg),
        ))
        .with_status(status)
    };
    let uid = pending.user_id;
    let ip = ctx.ip_hash(req);
    let now = ctx.now();
    if let Some(secs) = retry_after(ctx, uid, &ip) {
        return again(ctx, 429, throttled(secs)).with_header("Retry-After", &secs.to_string());
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
        Err(e) => return error_page(req, 500, &e.to_string()),
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
            if let Some(secs) = retry_after(ctx, uid, &ip) {
                return again(ctx, 429, throttled(secs))
                    .with_header("Retry-After", &secs.to_string());
            }
            again(
                ctx,
                401,
                "That code is not valid (or was already used).".into(),
            )
        }
        Err(e) => error_page(req, e.http_status(), &e.to_string()),
    }
}
