//! Who is calling: the `__session` cookie, CSRF tokens, and the checks behind each
//! [`Access`](super::router::Access): [`visiting`] for public pages, [`page`] for signed-in
//! pages, [`api_caller`] for the native API (5sim's key is checked in `fivesim`, a gateway's
//! signature in `ingest`). Only the router (`super::route`) runs them; handlers receive
//! what they return.

use super::{error_page, Ctx, Request, Response};
use crate::domain::accounts::sessions::{self, Session};
use crate::domain::accounts::{self, apikeys, Role, State, User};
use crate::domain::base::crypto::constant_time_eq;
use crate::views::{Flash, Kept, Nav};

pub const COOKIE: &str = "__session";

/// The caller as far as the cookie tells.
pub struct Visitor {
    pub session: Option<Session>,
    pub user: Option<User>,
    /// The message to show: left by a form that failed (`web::form`) or named by `?m=`.
    pub flash: Option<Flash>,
    /// What the person typed into the form that failed, to fill it in again.
    pub kept: Kept,
}

/// A signed-in, active account.
pub struct Signed {
    pub user: User,
    pub session: Session,
}

impl Signed {
    pub fn csrf(&self) -> &str {
        &self.session.csrf
    }
}

/// What a signed-in page's handler gets: the account and session, the page header, and
/// the message and typed values a failed form left for this page.
pub struct Page {
    pub signed: Signed,
    pub nav: Nav,
    pub flash: Option<Flash>,
    pub kept: Kept,
}

impl std::ops::Deref for Page {
    type Target = Signed;

    fn deref(&self) -> &Signed {
        &self.signed
    }
}

/// The caller as far as the cookie tells, with no stash taken: the raw look-up behind the
/// router's checks (handlers never call it; they get a `Visitor` or `Page`).
fn visitor(ctx: &mut Ctx<'_>, req: &Request) -> Visitor {
    let Some(token) = req.cookie(COOKIE) else {
        return Visitor {
            session: None,
            user: None,
            flash: None,
            kept: Kept::default(),
        };
    };
    let limits = ctx.app.session_limits();
    let session = sessions::lookup(ctx.db, &ctx.app.keys, &token, &limits, ctx.now())
        .unwrap_or_else(|e| {
            log::error!("session lookup failed: {e:?}");
            None
        });
    let user = session
        .as_ref()
        .and_then(|s| s.user_id)
        .and_then(|id| accounts::find(ctx.db, id).ok().flatten());
    Visitor {
        session,
        user,
        flash: None,
        kept: Kept::default(),
    }
}

/// The visitor of a public page, with the message and typed values a failed form left for
/// it (on GET and HEAD only: a POST's answer is a redirect).
pub fn visiting(ctx: &mut Ctx<'_>, req: &Request) -> Visitor {
    let mut v = visitor(ctx, req);
    if !req.method.is_unsafe() {
        let stash = v
            .session
            .as_ref()
            .and_then(|s| ctx.site.stashes.take(s.id, &req.path, ctx.now()));
        (v.flash, v.kept) = match stash {
            Some(s) => (Some(s.flash), s.kept),
            None => (super::web::flash_from_query(req), Kept::default()),
        };
    }
    v
}

/// `Set-Cookie` value for a session token.
pub fn session_cookie(req: &Request, token: &str, max_age: u64) -> String {
    let secure = if req.secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

pub fn clear_cookie(req: &Request) -> String {
    session_cookie(req, "", 0)
}

/// The CSRF token for a page with a form, creating an anonymous session when the visitor
/// has none. Returns the token and the `Set-Cookie` to send, if a session was created.
pub fn form_session(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> (String, Option<String>) {
    if let Some(s) = &v.session {
        return (s.csrf.clone(), None);
    }
    let limits = ctx.app.session_limits();
    let ip = ctx.ip_hash(req);
    match sessions::create(
        ctx.db,
        &ctx.app.keys,
        None,
        &limits,
        &ip,
        req.user_agent(),
        ctx.now(),
    ) {
        Ok(token) => {
            let csrf = sessions::csrf_for(&ctx.app.keys, &token);
            (csrf, Some(session_cookie(req, &token, 86_400)))
        }
        Err(e) => {
            log::error!("cannot create a session: {e:?}");
            (String::new(), None)
        }
    }
}

/// True when the request carries the CSRF token of its session (form field `csrf` or
/// header `X-CSRF-Token`).
pub fn csrf_ok(session: Option<&Session>, req: &Request) -> bool {
    let Some(session) = session else {
        return false;
    };
    let sent = req
        .header("x-csrf-token")
        .map(str::to_string)
        .or_else(|| req.form().get("csrf").map(str::to_string))
        .unwrap_or_default();
    !sent.is_empty() && constant_time_eq(sent.as_bytes(), session.csrf.as_bytes())
}

/// A signed-in account in good standing. Pages redirect to the login form; other requests
/// get 401.
fn signed_in(ctx: &mut Ctx<'_>, req: &Request, v: Visitor) -> Result<Signed, Response> {
    match (v.session, v.user) {
        (Some(session), Some(user)) => match user.state {
            State::Active => Ok(Signed { user, session }),
            State::Suspended => Err(error_page(
                req,
                403,
                "This account is suspended. Contact the operator of this site.",
            )),
            State::Terminated | State::Deleted => {
                let _ = sessions::revoke(ctx.db, session.id);
                Err(error_page(req, 403, "This account is closed."))
            }
        },
        _ => {
            if req.method == super::Method::Get && !req.path.starts_with("/api/") {
                let next = crate::url::percent_encode(&req.path);
                Err(Response::redirect(&format!("/login?next={next}")))
            } else {
                Err(error_page(req, 401, "Sign in first."))
            }
        }
    }
}

/// Whether `role` may enter where `needed` is asked (admin ⊇ operator ⊇ user).
pub fn role_allows(role: Role, needed: Role) -> bool {
    match needed {
        Role::User => true,
        Role::Operator => matches!(role, Role::Operator | Role::Admin),
        Role::Admin => role == Role::Admin,
    }
}

/// [`Access::Page`](super::router::Access::Page): a signed-in account in good standing with
/// at least `role`, from the visitor the router already looked up.
pub fn page(ctx: &mut Ctx<'_>, req: &Request, v: Visitor, role: Role) -> Result<Page, Response> {
    let (flash, kept) = (v.flash.clone(), v.kept.clone());
    let signed = signed_in(ctx, req, v)?;
    if !role_allows(signed.user.role, role) {
        return Err(error_page(req, 403, "You do not have access to this page."));
    }
    let nav = super::web::signed_nav(ctx, &signed);
    Ok(Page {
        signed,
        nav,
        flash,
        kept,
    })
}

/// [`Access::Api`](super::router::Access::Api): the account calling the native API with at
/// least `role`. An API key first, then the session cookie (with the CSRF header for unsafe
/// methods, since a cookie rides along on cross-site requests).
pub fn api_caller(ctx: &mut Ctx<'_>, req: &Request, role: Role) -> Result<User, Response> {
    let user = if let Some(key) = req.bearer() {
        apikeys::authenticate(ctx.db, &ctx.app.keys, key, ctx.now())
            .map_err(|e| super::api::error(&e))?
            .ok_or_else(|| {
                Response::json_error(401, "unauthorized", "Unknown or revoked API key.")
            })?
    } else if req.cookie(COOKIE).is_some() {
        let v = visitor(ctx, req);
        let (Some(session), Some(user)) = (v.session, v.user) else {
            return Err(Response::json_error(
                401,
                "unauthorized",
                "Sign in or send an API key.",
            ));
        };
        if req.method.is_unsafe() {
            let sent = req.header("x-csrf-token").unwrap_or("");
            if !constant_time_eq(sent.as_bytes(), session.csrf.as_bytes()) {
                return Err(Response::json_error(
                    403,
                    "forbidden",
                    "Missing or wrong X-CSRF-Token header.",
                ));
            }
        }
        user
    } else {
        return Err(Response::json_error(
            401,
            "unauthorized",
            "Send an API key as `Authorization: Bearer <key>`.",
        ));
    };
    if user.state != State::Active {
        return Err(Response::json_error(
            403,
            "account_inactive",
            "This account is not active.",
        ));
    }
    if !role_allows(user.role, role) {
        return Err(Response::json_error(
            403,
            "forbidden",
            "This needs an administrator account.",
        ));
    }
    Ok(user)
}

/// A local path to go to after login; anything else (other hosts, `//evil`) becomes the
/// dashboard.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/dashboard".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_only_allows_local_paths() {
        assert_eq!(safe_next(Some("/wallet")), "/wallet");
        assert_eq!(safe_next(Some("//evil.com")), "/dashboard");
        assert_eq!(safe_next(Some("https://evil.com")), "/dashboard");
        assert_eq!(safe_next(Some("/\\evil.com")), "/dashboard");
        assert_eq!(safe_next(None), "/dashboard");
    }
}
