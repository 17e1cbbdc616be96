//! Sign-in with OpenID Connect (README "Sign-in with OpenID Connect"): `GET /auth/oidc`
//! sends the browser to the provider, `GET /auth/oidc/callback` takes its answer; a new
//! person confirms age and the acceptable-use policy at `/auth/oidc/signup` before an
//! account exists, and the holder of an existing account with the same address proves its
//! password at `/auth/oidc/link` before the identity is linked (no silent takeover). From
//! the settings, `POST /settings/identities/link` links another provider to the signed-in
//! account and `POST /settings/identities/{id}/unlink` removes one.
//!
//! The calls to the provider (discovery, token, keys) happen between transactions: the
//! flow is taken in one, the provider is asked with none open, and what its answer means is
//! written in another.

use crate::config::OidcProvider;
use crate::db;
use crate::domain::accounts::identities::{self, Parked, Purpose, Vouched, IDENTITY_LINKED};
use crate::domain::accounts::{self, second_factor, sessions, NewUser, Role, State, User};
use crate::domain::base::audit::{self, LOGIN_FAILED};
use crate::domain::{trust::lifecycle, Error};
use crate::http::auth::{safe_next, session_cookie, Page, Visitor};
use crate::http::router::Router;
use crate::http::web::accounts::account::{again, open_session, signed_in_redirect, try_again_in};
use crate::http::web::accounts::second_factor::{ask_code, notice};
use crate::http::web::{form, nav, with_cookie};
use crate::http::{error_page, Ctx, Method, Request, Response};
use crate::oidc::{self, Failure};
use crate::views::accounts::oidc as view;

pub fn routes(r: &mut Router) {
    use Method::{Get, Post};
    r.visitors(&[
        (Get, "/auth/oidc", start_login),
        (Get, "/auth/oidc/callback", callback),
        (Get, "/auth/oidc/signup", signup_form),
        (Post, "/auth/oidc/signup", signup),
        (Get, "/auth/oidc/link", link_form),
        (Post, "/auth/oidc/link", link_with_password),
    ]);
    r.pages(
        Role::User,
        &[
            (Post, "/settings/identities/link", start_link),
            (Post, "/settings/identities/{id}/unlink", unlink),
        ],
    );
}

/// The provider named by `?provider=` (the first one when absent).
fn provider<'c>(ctx: &'c Ctx<'_>, name: Option<&str>) -> Option<&'c OidcProvider> {
    let all = ctx.site.oidc.providers();
    match name {
        None | Some("") => all.first(),
        Some(n) => ctx.site.oidc.provider(n),
    }
}

/// A page saying the sign-in did not go through, with a way back.
fn refused(ctx: &Ctx<'_>, v: &Visitor, status: u16, text: &str) -> Response {
    let back = if v.user.is_some() {
        ("/settings#identities", "Back to the settings")
    } else {
        ("/login", "Back to the login")
    };
    let page = crate::views::accounts::account::message(&nav(ctx, v), "Sign-in failed", text, back);
    Response::html(page).with_status(status)
}

/// The visitor's session id, creating an anonymous session (and its cookie) when there is
/// none: the flow is bound to it.
fn browser_session(
    ctx: &mut Ctx<'_>,
    req: &Request,
    v: &Visitor,
) -> Result<(i64, Option<String>), Error> {
    if let Some(s) = &v.session {
        return Ok((s.id, None));
    }
    let limits = ctx.app.session_limits();
    let (ip, now) = (ctx.ip_hash(req), ctx.now());
    let token = sessions::create(
        ctx.db,
        &ctx.app.keys,
        None,
        &limits,
        &ip,
        req.user_agent(),
        now,
    )?;
    let s = sessions::lookup(ctx.db, &ctx.app.keys, &token, &limits, now)?
        .ok_or(Error::Internal("a new session is not found".into()))?;
    Ok((s.id, Some(session_cookie(req, &token, 86_400))))
}

/// Starts a flow for the session and answers the redirect to the provider.
#[allow(clippy::too_many_arguments)]
fn redirect_to_provider(
    ctx: &mut Ctx<'_>,
    p: &OidcProvider,
    session_id: i64,
    purpose: Purpose,
    user_id: Option<i64>,
    next: &str,
) -> Result<Response, String> {
    let now = ctx.now();
    let meta = ctx.site.oidc.metadata(p, now).map_err(|e| {
        log::warn!("oidc {}: {e}", p.name);
        format!(
            "Signing in with {} is not possible right now: {e}.",
            p.label
        )
    })?;
    let started = identities::start(
        ctx.db,
        &ctx.app.keys,
        session_id,
        &p.name,
        purpose,
        user_id,
        next,
        now,
    )
    .map_err(|e| e.to_string())?;
    let url = ctx.site.oidc.authorize_url(
        p,
        &meta,
        &oidc::redirect_uri(&ctx.app.config.base_url),
        &started.state,
        &started.nonce,
        &started.verifier,
    );
    Ok(Response::redirect(&url))
}

/// `GET /auth/oidc?provider=NAME&next=PATH`: off to the provider.
fn start_login(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    if v.user.is_some() {
        return Response::redirect("/settings#identities");
    }
    let name = req.query_param("provider");
    let Some(p) = provider(ctx, name.as_deref()).cloned() else {
        return error_page(req, 404, "There is no such sign-in provider.");
    };
    let next = safe_next(req.query_param("next").as_deref());
    let (sid, cookie) = match browser_session(ctx, req, v) {
        Ok(s) => s,
        Err(e) => return error_page(req, 500, &e.to_string()),
    };
    match redirect_to_provider(ctx, &p, sid, Purpose::Login, None, &next) {
        Ok(r) => with_cookie(r, cookie),
        Err(msg) => with_cookie(refused(ctx, v, 502, &msg), cookie),
    }
}

/// `POST /settings/identities/link` (`provider`): links another sign-in to this account.
fn start_link(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    const BACK: &str = "/settings#identities";
    let name = req.form().text("provider");
    let Some(prov) = provider(ctx, Some(&name)).cloned() else {
        return form::fail(
            ctx,
            req,
            &p.session,
            BACK,
            "There is no such sign-in provider.",
        );
    };
    match redirect_to_provider(
        ctx,
        &prov,
        p.session.id,
        Purpose::Link,
        Some(p.user.id),
        "/settings",
    ) {
        Ok(r) => r,
        Err(msg) => form::fail(ctx, req, &p.session, BACK, msg),
    }
}

/// What the provider's answer vouches for, once every check passed.
fn verified_answer(
    ctx: &mut Ctx<'_>,
    req: &Request,
    session_id: i64,
) -> Result<(identities::Flow, OidcProvider, Vouched), String> {
    let state = req.query_param("state").unwrap_or_default();
    let now = ctx.now();
    let keys = ctx.app.keys.clone();
    let taken = db::write(ctx.db, |tx| {
        identities::take(tx, &keys, session_id, &state, now)
    });
    let flow = match taken {
        Ok(Some(f)) => f,
        Ok(None) => {
            return Err(
                "This sign-in is not valid any more: it was used already, took too \
                        long or was started in another browser. Please start again."
                    .into(),
            )
        }
        Err(e) => return Err(e.to_string()),
    };
    let Some(p) = ctx.site.oidc.provider(&flow.provider).cloned() else {
        return Err("This sign-in provider is no longer configured.".into());
    };
    if let Some(error) = req.query_param("error") {
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(60)
            .collect();
        return Err(format!("{} did not sign you in ({error}).", p.label));
    }
    let code = req.query_param("code").unwrap_or_default();
    if code.is_empty() {
        return Err(format!("{} sent no authorization code.", p.label));
    }
    let oidc = &ctx.site.oidc;
    let answer = oidc.metadata(&p, now).and_then(|meta| {
        let redirect = oidc::redirect_uri(&ctx.app.config.base_url);
        let id_token = oidc.exchange(&p, &meta, &code, &flow.verifier, &redirect)?;
        oidc.verify(&p, &meta, &id_token, &flow.nonce, now)
    });
    match answer {
        Ok(claims) => {
            let vouched = Vouched {
                provider: p.name.clone(),
                issuer: p.issuer.clone(),
                subject: claims.subject,
                email: claims.email,
            };
            Ok((flow, p, vouched))
        }
        Err(e) => {
            log::warn!("oidc {}: {e}", p.name);
            let what = match e {
                Failure::Refused(_) => "refused",
                Failure::Provider(_) => "failed",
            };
            Err(format!("The sign-in with {} {what}: {e}.", p.label))
        }
    }
}

/// `GET /auth/oidc/callback`: the provider's answer.
fn callback(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    // A HEAD (a link checker, a prefetch) must not use up the one-time sign-in.
    if req.method == crate::http::Method::Head {
        return Response::empty(200);
    }
    let Some(session) = &v.session else {
        return refused(
            ctx,
            v,
            400,
            "Your browser's session was lost on the way. Please start again.",
        );
    };
    let (flow, p, vouched) = match verified_answer(ctx, req, session.id) {
        Ok(a) => a,
        Err(msg) => return refused(ctx, v, 400, &msg),
    };
    match flow.purpose {
        Purpose::Link => finish_link(ctx, req, v, flow.user_id, &p, &vouched),
        Purpose::Login => finish_login(ctx, req, v, &flow.next, &p, &vouched),
    }
}

/// Links the identity to the signed-in account that asked for it.
fn finish_link(
    ctx: &mut Ctx<'_>,
    req: &Request,
    v: &Visitor,
    asked_by: Option<i64>,
    p: &OidcProvider,
    vouched: &Vouched,
) -> Response {
    let (Some(user), Some(session)) = (&v.user, &v.session) else {
        return refused(ctx, v, 400, "Sign in first, then link the provider again.");
    };
    if asked_by != Some(user.id) || user.state != State::Active {
        return refused(ctx, v, 400, "This link was asked for by another account.");
    }
    let (ip, app, label) = (ctx.ip_hash(req), ctx.app, p.label.clone());
    let done = db::write(ctx.db, |tx| {
        let now = app.now();
        identities::link(tx, user.id, vouched, now)?;
        let detail = format!("{label} ({})", vouched.email);
        audit::security(tx, Some(user.id), IDENTITY_LINKED, &ip, &detail, now)?;
        notice(
            tx,
            app,
            &user.email,
            "A sign-in was linked to your {site} account",
            &format!(
                "signing in with {label} ({}) was linked to your account: it now signs you in",
                vouched.email
            ),
            now,
        )?;
        Ok(())
    });
    match done {
        Ok(()) => Response::redirect("/settings?m=identity_linked#identities"),
        Err(e) => form::fail(ctx, req, session, "/settings", e),
    }
}

/// Refuses a sign-in into an account that is not active, in the login's words.
fn not_active(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor, user: User) -> Option<Response> {
    match user.state {
        State::Active => None,
        State::Suspended => Some(refused(
            ctx,
            v,
            403,
            "This account is suspended. Contact the operator of this site.",
        )),
        State::Terminated => Some(crate::http::web::trust::abuse::terminated_page(
            ctx, req, v, &user,
        )),
        State::Deleted => Some(refused(ctx, v, 403, "This account is closed.")),
    }
}

/// Signs the account in after the provider (and asks its TOTP code first when it has one
/// and the provider does not stand in for it).
fn sign_in_as(
    ctx: &mut Ctx<'_>,
    req: &Request,
    v: &Visitor,
    user_id: i64,
    p: &OidcProvider,
    next: &str,
) -> Result<Response, Error> {
    let old = v.session.as_ref().map(|s| s.id);
    if p.totp && second_factor::enabled(ctx.db, user_id)? {
        return ask_code(ctx, req, old, user_id, next);
    }
    let (ip, app) = (ctx.ip_hash(req), ctx.app);
    let detail = format!("with {}", p.label);
    let token = db::write(ctx.db, |tx| {
        open_session(tx, app, req, old, user_id, &ip, &detail, app.now())
    })?;
    Ok(signed_in_redirect(ctx, req, &token, next))
}

/// A login with a verified answer: the linked account, else the confirmation of a new one,
/// else the password of the existing account with the same address.
fn finish_login(
    ctx: &mut Ctx<'_>,
    req: &Request,
    v: &Visitor,
    next: &str,
    p: &OidcProvider,
    vouched: &Vouched,
) -> Response {
    let Some(session) = &v.session else {
        return refused(ctx, v, 400, "Your browser's session was lost on the way.");
    };
    let now = ctx.now();
    let known = identities::find(ctx.db, &vouched.issuer, &vouched.subject);
    match known {
        Ok(Some(identity)) => {
            let user = match accounts::get(ctx.db, identity.user_id) {
                Ok(u) => u,
                Err(e) => return refused(ctx, v, 500, &e.to_string()),
            };
            if let Some(r) = not_active(ctx, req, v, user) {
                return r;
            }
            if let Err(e) = identities::used(ctx.db, identity.id, &vouched.email, now) {
                return refused(ctx, v, 500, &e.to_string());
            }
            return sign_in_as(ctx, req, v, identity.user_id, p, next)
                .unwrap_or_else(|e| refused(ctx, v, 500, &e.to_string()));
        }
        Ok(None) => {}
        Err(e) => return refused(ctx, v, 500, &e.to_string()),
    }
    let holder = match accounts::find_by_email(ctx.db, &vouched.email) {
        Ok(h) => h,
        Err(e) => return refused(ctx, v, 500, &e.to_string()),
    };
    let (to, holder_id) = match holder {
        None => {
            let cooldown = ctx.app.config.deletion_cooldown;
            // A deleted account's address stays blocked for the cooldown (checked again when
            // the account is made).
            let blocked = db::write(ctx.db, |tx| {
                lifecycle::claim_email(tx, &vouched.email, cooldown, now)
            });
            if let Err(e) = blocked {
                return refused(ctx, v, 409, &e.to_string());
            }
            ("/auth/oidc/signup", None)
        }
        Some(u) if u.state == State::Deleted => {
            let cooldown = ctx.app.config.deletion_cooldown;
            let blocked = db::write(ctx.db, |tx| {
                lifecycle::claim_email(tx, &u.email, cooldown, now)
            });
            match blocked {
                Ok(()) => ("/auth/oidc/signup", None),
                Err(e) => return refused(ctx, v, 409, &e.to_string()),
            }
        }
        Some(u) if u.password_hash.is_none() => {
            return refused(
                ctx,
                v,
                409,
                "An account with this e-mail address exists and signs in another way. Sign \
                 in to it, then link this provider from its settings.",
            )
        }
        Some(u) => ("/auth/oidc/link", Some(u.id)),
    };
    match identities::park(ctx.db, session.id, vouched, holder_id, next, now) {
        Ok(()) => Response::redirect(to),
        Err(e) => refused(ctx, v, 500, &e.to_string()),
    }
}

/// The session's waiting answer of the kind the page handles (`for_existing`: an answer
/// that waits for an existing account's password).
fn waiting(ctx: &Ctx<'_>, v: &Visitor, for_existing: bool) -> Option<Parked> {
    let session = v.session.as_ref()?;
    let parked = identities::parked(ctx.db, session.id, ctx.now()).ok()??;
    (parked.user_id.is_some() == for_existing).then_some(parked)
}

fn label_of(ctx: &Ctx<'_>, provider: &str) -> String {
    ctx.site
        .oidc
        .provider(provider)
        .map_or_else(|| provider.to_string(), |p| p.label.clone())
}

fn signup_form(ctx: &mut Ctx<'_>, _: &Request, v: &Visitor) -> Response {
    let (Some(parked), Some(session)) = (waiting(ctx, v, false), &v.session) else {
        return Response::redirect("/login?m=oidc_expired");
    };
    let label = label_of(ctx, &parked.vouched.provider);
    let min_age = ctx.app.config.min_age;
    Response::html(view::confirm_signup(
        &nav(ctx, v),
        &session.csrf,
        &parked.vouched.email,
        &label,
        min_age,
        &v.kept,
        &v.flash,
    ))
}

/// Creates the account (confirmed age and policy, the provider's verified address, no
/// password) with its identity, and signs it in.
fn signup(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    const BACK: &str = "/auth/oidc/signup";
    let (Some(parked), Some(session)) = (waiting(ctx, v, false), &v.session) else {
        return Response::redirect("/login?m=oidc_expired");
    };
    let form = req.form();
    if !form.checked("age") {
        let msg = format!(
            "You must confirm that you are at least {} years old.",
            ctx.app.config.min_age
        );
        return again(ctx, req, v, BACK, msg);
    }
    if !form.checked("aup") {
        return again(
            ctx,
            req,
            v,
            BACK,
            "You must accept the acceptable-use policy.",
        );
    }
    let (ip, app, sid) = (ctx.ip_hash(req), ctx.app, session.id);
    let label = label_of(ctx, &parked.vouched.provider);
    let cooldown = app.config.deletion_cooldown;
    let vouched = parked.vouched.clone();
    let created = db::write(ctx.db, |tx| {
        let now = app.now();
        // The answer is spent whatever follows; a second POST finds nothing.
        identities::unpark(tx, sid)?;
        lifecycle::claim_email(tx, &vouched.email, cooldown, now)?;
        let user = accounts::create(
            tx,
            &NewUser {
                email: &vouched.email,
                password_hash: None,
                role: Role::User,
                verified: true,
                age_confirmed: true,
                aup_accepted: true,
            },
            now,
        )?;
        identities::link(tx, user.id, &vouched, now)?;
        let detail = format!("{label} ({}), at sign-up", vouched.email);
        audit::security(tx, Some(user.id), IDENTITY_LINKED, &ip, &detail, now)?;
        let how = format!("with {label}");
        open_session(tx, app, req, Some(sid), user.id, &ip, &how, now)
    });
    match created {
        Ok(token) => signed_in_redirect(ctx, req, &token, "/dashboard?m=welcome"),
        Err(e) => refused(ctx, v, 409, &e.to_string()),
    }
}

fn link_form(ctx: &mut Ctx<'_>, _: &Request, v: &Visitor) -> Response {
    let (Some(parked), Some(session)) = (waiting(ctx, v, true), &v.session) else {
        return Response::redirect("/login?m=oidc_expired");
    };
    let label = label_of(ctx, &parked.vouched.provider);
    Response::html(view::prove_password(
        &nav(ctx, v),
        &session.csrf,
        &parked.vouched.email,
        &label,
        &v.flash,
    ))
}

/// The holder of the existing account proves its password: the identity is linked, and the
/// sign-in goes on (with the TOTP code when the account has one).
fn link_with_password(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    const BACK: &str = "/auth/oidc/link";
    let (Some(parked), Some(session)) = (waiting(ctx, v, true), &v.session) else {
        return Response::redirect("/login?m=oidc_expired");
    };
    let Some(uid) = parked.user_id else {
        return Response::redirect("/login?m=oidc_expired");
    };
    let user = match accounts::get(ctx.db, uid) {
        Ok(u) => u,
        Err(e) => return again(ctx, req, v, BACK, e),
    };
    let (ip, now) = (ctx.ip_hash(req), ctx.now());
    let cfg = &ctx.app.config;
    let limits = (
        cfg.login_max_failures,
        cfg.login_ip_max_failures,
        cfg.login_window,
    );
    let throttle = |ctx: &Ctx<'_>| {
        audit::login_retry_after(ctx.db, Some(uid), &ip, limits.0, limits.1, limits.2, now)
            .ok()
            .flatten()
    };
    if let Some(secs) = throttle(ctx) {
        let msg = format!("Too many failed attempts. {}", try_again_in(secs));
        return again(ctx, req, v, BACK, msg).with_header("Retry-After", &secs.to_string());
    }
    let password = req.form().get("password").unwrap_or("").to_string();
    match ctx
        .app
        .hasher
        .verify(&password, user.password_hash.as_deref())
    {
        Ok(true) => {}
        Ok(false) => {
            let label = label_of(ctx, &parked.vouched.provider);
            let detail = format!("linking {label}");
            let _ = audit::security(ctx.db, Some(uid), LOGIN_FAILED, &ip, &detail, now);
            return again(ctx, req, v, BACK, "The password is wrong.");
        }
        Err(e) => return again(ctx, req, v, BACK, e),
    }
    if let Some(r) = not_active(ctx, req, v, user.clone()) {
        return r;
    }
    let Some(p) = ctx.site.oidc.provider(&parked.vouched.provider).cloned() else {
        return refused(
            ctx,
            v,
            400,
            "This sign-in provider is no longer configured.",
        );
    };
    let (app, sid, vouched) = (ctx.app, session.id, parked.vouched.clone());
    let linked = db::write(ctx.db, |tx| {
        let now = app.now();
        identities::unpark(tx, sid)?;
        identities::link(tx, uid, &vouched, now)?;
        let detail = format!("{} ({}), password proven", p.label, vouched.email);
        audit::security(tx, Some(uid), IDENTITY_LINKED, &ip, &detail, now)?;
        notice(
            tx,
            app,
            &user.email,
            "A sign-in was linked to your {site} account",
            &format!(
                "signing in with {} ({}) was linked to your account after its password was \
                 given: it now signs you in",
                p.label, vouched.email
            ),
            now,
        )?;
        Ok(())
    });
    if let Err(e) = linked {
        return refused(ctx, v, 409, &e.to_string());
    }
    sign_in_as(ctx, req, v, uid, &p, &parked.next)
        .unwrap_or_else(|e| refused(ctx, v, 500, &e.to_string()))
}

/// `POST /settings/identities/{id}/unlink`.
fn unlink(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let Some(id) = req.param("id").and_then(|s| s.parse::<i64>().ok()) else {
        return error_page(req, 404, "There is nothing at this address.");
    };
    let ip = ctx.ip_hash(req);
    let app = ctx.app;
    let user = p.user.clone();
    form::submit(
        ctx,
        req,
        &p.session,
        "/settings",
        |tx, _, now| {
            let gone = identities::unlink(tx, &user, id)?;
            let label = app
                .config
                .oidc
                .iter()
                .find(|x| x.name == gone.provider)
                .map_or(gone.provider.as_str(), |x| x.label.as_str());
            let detail = format!("{label} ({})", gone.email);
            audit::security(
                tx,
                Some(user.id),
                identities::IDENTITY_UNLINKED,
                &ip,
                &detail,
                now,
            )?;
            notice(
                tx,
                app,
                &user.email,
                "A sign-in was removed from your {site} account",
                &format!(
                    "signing in with {label} ({}) was unlinked from your account",
                    gone.email
                ),
                now,
            )?;
            Ok(())
        },
        |_, ()| Response::redirect("/settings?m=identity_unlinked#identities"),
    )
}

/// The login page's buttons: each provider's start URL (keeping where to go afterwards) and
/// label.
pub(in crate::http::web) fn buttons(ctx: &Ctx<'_>, next: &str) -> Vec<(String, String)> {
    let providers = ctx.site.oidc.providers();
    providers
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut url = if i == 0 {
                "/auth/oidc".to_string()
            } else {
                format!(
                    "/auth/oidc?provider={}",
                    crate::url::percent_encode(&p.name)
                )
            };
            if next != "/dashboard" {
                url.push(if i == 0 { '?' } else { '&' });
                url.push_str(&format!("next={}", crate::url::percent_encode(next)));
            }
            (url, p.label.clone())
        })
        .collect()
}

/// The settings page's section of linked sign-ins.
pub(in crate::http::web) fn settings_section(ctx: &Ctx<'_>, p: &Page) -> maud::Markup {
    let linked = identities::list_for(ctx.db, p.user.id).unwrap_or_default();
    let providers = ctx.site.oidc.providers();
    let can_link: Vec<(String, String)> = providers
        .iter()
        .filter(|pr| !linked.iter().any(|l| l.issuer == pr.issuer))
        .map(|pr| (pr.name.clone(), pr.label.clone()))
        .collect();
    let rows: Vec<view::Linked> = linked
        .iter()
        .map(|l| view::Linked {
            id: l.id,
            label: label_of(ctx, &l.provider),
            email: l.email.clone(),
            linked_at: l.created_at,
            last_used_at: l.last_used_at,
        })
        .collect();
    view::settings_section(p.csrf(), &rows, &can_link, p.user.password_hash.is_some())
}
