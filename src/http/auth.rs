//! Who is calling: the `__session` cookie, CSRF tokens, and route guards for roles and
//! account states. Web handlers call these; the router calls [`csrf_ok`] for every form.

use super::{error_page, Ctx, Request, Response};
use crate::domain::accounts::sessions::{self, Session};
use crate::domain::accounts::{self, Role, State, User};
use crate::domain::base::crypto::constant_time_eq;

pub const COOKIE: &str = "__session";

/// The caller as far as the cookie tells.
pub struct Visitor {
    pub session: Option<Session>,
    pub user: Option<User>,
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

pub fn visitor(ctx: &mut Ctx<'_>, req: &Request) -> Visitor {
    let Some(token) = req.cookie(COOKIE) else {
        return Visitor {
            session: None,
            user: None,
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
    Visitor { session, user }
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
pub fn form_session(ctx: &mut Ctx<'_>, req: &Request) -> (String, Option<String>) {
    if let Some(s) = visitor(ctx, req).session {
        return (s.csrf, None);
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
pub fn csrf_ok(ctx: &mut Ctx<'_>, req: &Request) -> bool {
    let Some(session) = visitor(ctx, req).session else {
        return false;
    };
    let sent = req
        .header("x-csrf-token")
        .map(str::to_string)
        .or_else(|| req.form().get("csrf").map(str::to_string))
        .unwrap_or_default();
    !sent.is_empty() && constant_time_eq(sent.as_bytes(), session.csrf.as_bytes())
}

/// Guard: a signed-in account in good standing. Pages redirect to the login form; API calls
/// get 401.
pub fn require_user(ctx: &mut Ctx<'_>, req: &Request) -> Result<Signed, Response> {
    let v = visitor(ctx, req);
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

/// Guard: a signed-in account with at least `role` (admin ⊇ operator ⊇ user for pages that
/// say so; callers pass the exact minimum).
pub fn require_role(ctx: &mut Ctx<'_>, req: &Request, role: Role) -> Result<Signed, Response> {
    let signed = require_user(ctx, req)?;
    let allowed = match role {
        Role::User => true,
        Role::Operator => matches!(signed.user.role, Role::Operator | Role::Admin),
        Role::Admin => signed.user.role == Role::Admin,
    };
    if allowed {
        Ok(signed)
    } else {
        Err(error_page(req, 403, "You do not have access to this page."))
    }
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
