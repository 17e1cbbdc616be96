//! Public abuse pages: the abuse report form (`/abuse`, CSRF-protected like every form and
//! limited per hashed address), the transparency report (`/transparency`), and the appeal of
//! a terminated account (`/appeal/{token}`, reached from the termination mail or from the
//! page a terminated person sees after logging in).

use crate::db;
use crate::domain::accounts::{self, User};
use crate::domain::trust::abuse::{self, Appeal, NewReport, APPEAL_TOKEN};
use crate::domain::{accounts::tokens, trust::legal, Error};
use crate::http::auth::{form_session, Visitor};
use crate::http::router::Router;
use crate::http::web::{form, nav, with_cookie};
use crate::http::{error_page, Ctx, Method, Request, Response};
use crate::views::trust::abuse as view;

pub fn routes(r: &mut Router) {
    use Method::{Get, Post};
    r.visitors(&[
        (Get, "/abuse", report_form),
        (Post, "/abuse", submit_report),
        (Get, "/abuse/sent", report_sent),
        (Get, "/transparency", transparency),
        (Get, "/appeal", appeal_info),
        (Get, "/appeal/{token}", appeal_form),
        (Post, "/appeal/{token}", submit_appeal),
    ]);
}

fn report_form(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let (token, cookie) = form_session(ctx, req, v);
    let typed = |name| v.kept.or(name, "").to_string();
    let report = NewReport {
        phone: typed("number"),
        service: typed("service"),
        description: typed("description"),
        contact: typed("contact"),
    };
    let page = view::report_form(&nav(ctx, v), &token, &report, &v.flash);
    with_cookie(Response::html(page), cookie)
}

/// Back to `back` with `message` and the typed values (a form's POST has a session: the
/// router checked its CSRF token).
fn fail(
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

fn submit_report(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let form = req.form();
    let report = NewReport {
        phone: form.text("number"),
        service: form.text("service"),
        description: form.text("description"),
        contact: form.text("contact"),
    };
    let ip = ctx.ip_hash(req);
    let now = ctx.now();
    let per_hour = ctx.app.config.abuse_reports_per_hour;
    match db::write(ctx.db, |tx| {
        abuse::submit_report(tx, &report, &ip, per_hour, now)
    }) {
        Ok(_) => Response::redirect("/abuse/sent"),
        Err(Error::Throttled { retry_after }) => {
            let mins = retry_after.div_ceil(60);
            let msg = format!(
                "You have sent {per_hour} reports in the last hour, the most we take from one \
                 address. Nothing was stored; try again in {mins} minute{}.",
                if mins == 1 { "" } else { "s" }
            );
            fail(ctx, req, v, "/abuse", msg)
        }
        Err(e) => fail(ctx, req, v, "/abuse", e),
    }
}

fn report_sent(ctx: &mut Ctx<'_>, _req: &Request, v: &Visitor) -> Response {
    Response::html(view::report_sent(&nav(ctx, v)))
}

fn transparency(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    match legal::yearly_counts(ctx.db) {
        Ok(years) => Response::html(view::transparency(
            &nav(ctx, v),
            &ctx.app.config.operator_name,
            &years,
        )),
        Err(e) => error_page(req, 500, &e.to_string()),
    }
}

/// The page a terminated person sees after giving the right password: why, and the way to
/// appeal (a fresh link, valid until the deadline) while they still can.
pub fn terminated_page(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor, user: &User) -> Response {
    let now = ctx.now();
    let keys = ctx.app.keys.clone();
    let found = db::write(ctx.db, |tx| {
        let appeal = abuse::appeal_status(tx, user.id, now)?;
        let link = abuse::appeal_token(tx, &keys, user.id, now)?.map(|t| format!("/appeal/{t}"));
        Ok((appeal, link))
    });
    let (appeal, link) = match found {
        Ok(x) => x,
        Err(e) => return error_page(req, 500, &e.to_string()),
    };
    let terminated_at = match &appeal {
        Appeal::Open { terminated_at, .. } | Appeal::Expired { terminated_at, .. } => {
            Some(*terminated_at)
        }
        _ => None,
    };
    Response::html(view::terminated(
        &nav(ctx, v),
        user,
        terminated_at,
        &appeal,
        link.as_deref(),
    ))
    .with_status(403)
}

fn appeal_info(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let sent = req.query_param("sent").is_some();
    Response::html(view::appeal_info(&nav(ctx, v), sent))
}

/// The account behind an appeal link, or the page saying the link is not valid.
fn appeal_account(ctx: &mut Ctx<'_>, req: &Request) -> Result<User, Response> {
    let t = req.param("token").unwrap_or("");
    let found = tokens::peek(ctx.db, &ctx.app.keys, APPEAL_TOKEN, t, ctx.now())
        .and_then(|r| r.user_id.ok_or(Error::NotFound("account")))
        .and_then(|id| accounts::get(ctx.db, id));
    found.map_err(|e| {
        error_page(
            req,
            400,
            &format!(
                "This appeal link is not valid ({e}). Log in with your e-mail address and \
                 password to see whether you can still appeal."
            ),
        )
    })
}

fn appeal_form(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let user = match appeal_account(ctx, req) {
        Ok(u) => u,
        Err(r) => return r,
    };

    let appeal = match abuse::appeal_status(ctx.db, user.id, ctx.now()) {
        Ok(a) => a,
        Err(e) => return error_page(req, 500, &e.to_string()),
    };
    let (token, cookie) = form_session(ctx, req, v);
    let page = view::appeal_form(
        &nav(ctx, v),
        &token,
        &req.path,
        &user.email,
        &appeal,
        v.kept.or("appeal", ""),
        &v.flash,
    );
    with_cookie(Response::html(page), cookie)
}

/// Back to the appeal form when the link is no longer valid (its page says why) or the
/// appeal was refused.
fn submit_appeal(ctx: &mut Ctx<'_>, req: &Request, v: &Visitor) -> Response {
    let (Ok(user), Some(session)) = (appeal_account(ctx, req), v.session.as_ref()) else {
        return Response::redirect(&req.path);
    };
    let t = req.param("token").unwrap_or("").to_string();
    let keys = ctx.app.keys.clone();
    form::submit(
        ctx,
        req,
        session,
        &req.path,
        |tx, f, now| {
            let id = abuse::submit_appeal(tx, user.id, &f.text("appeal"), now)?;
            tokens::consume(tx, &keys, APPEAL_TOKEN, &t, now)?;
            Ok(id)
        },
        |_, _| Response::redirect("/appeal?sent=1"),
    )
}
