//! Admin handlers of the upstream providers: list with health and the routing table, add
//! (and sync at once), settings, "sync now", delete. Changes are audited; the key is never
//! shown back (the form's key field is always empty) nor written to the audit log.

use rusqlite::Connection;

use crate::domain::accounts::Role;
use crate::domain::supply::providers::{self, Changes, Kind, NewProvider};
use crate::domain::{base::audit, supply::routing, Error};
use crate::http::auth::Page;
use crate::http::request::Form;
use crate::http::router::Router;
use crate::http::web::{cur, form};
use crate::http::{error_page, Ctx, Method, Request, Response};
use crate::views::supply::providers as view;
use crate::views::Flash;

pub fn routes(r: &mut Router) {
    use Method::{Get, Post};
    r.pages(
        Role::Admin,
        &[
            (Get, "/admin/providers", list),
            (Post, "/admin/providers", add),
            (Get, "/admin/providers/{id}", detail),
            (Post, "/admin/providers/{id}", edit),
            (Post, "/admin/providers/{id}/sync", sync_now),
            (Post, "/admin/providers/{id}/delete", delete),
        ],
    );
}

/// The list of providers, where a form about a provider that is gone goes back to.
const LIST: &str = "/admin/providers";

/// The routing table covers orders that ended this recently.
const ROUTING_WINDOW: i64 = 7 * 86_400;

fn list(ctx: &mut Ctx<'_>, _req: &Request, p: &Page) -> Response {
    let now = ctx.now();
    let rows: Vec<view::Row> = providers::list(ctx.db)
        .unwrap_or_default()
        .into_iter()
        .map(|p| view::Row {
            health: providers::health(ctx.db, p.id).unwrap_or_default(),
            provider: p,
        })
        .collect();
    let routing = routing::routing_table(ctx.db, now - ROUTING_WINDOW).unwrap_or_default();
    Response::html(view::list(
        &p.nav,
        p.csrf(),
        &cur(ctx),
        &rows,
        &routing,
        now,
        &p.flash,
        &p.kept,
    ))
}

fn detail(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let found = req.id_param("id").map(|id| providers::get(ctx.db, id));
    let Some(Ok(Some(provider))) = found else {
        return error_page(req, 404, "No such provider.");
    };
    let h = providers::health(ctx.db, provider.id).unwrap_or_default();
    let calls = providers::recent_calls(ctx.db, provider.id, 30).unwrap_or_default();
    Response::html(view::detail(
        &p.nav,
        p.csrf(),
        &cur(ctx),
        &provider,
        &h,
        &calls,
        ctx.now(),
        &p.flash,
        &p.kept,
    ))
}

/// "Synced 12 offers." or why the sync failed, after `prefix`.
fn sync_flash(prefix: &str, report: &crate::upstream::SyncReport) -> Flash {
    if report.errors.is_empty() {
        Flash::Ok(format!(
            "{prefix}Synced {} offers.",
            report.offers.unwrap_or_default()
        ))
    } else {
        Flash::Err(format!(
            "{prefix}The sync failed: {}. The scheduler tries again every five minutes.",
            report.errors.join("; ")
        ))
    }
}

/// Markup, priority and unit as typed (an empty field is its entry in `defaults`, if any),
/// or why not.
fn settings(f: &Form, defaults: Option<[&str; 3]>) -> Result<(i64, i64, i64), String> {
    let field = |name: &str, i: usize| match (f.text(name), defaults) {
        (t, Some(d)) if t.trim().is_empty() => d[i].to_string(),
        (t, _) => t,
    };
    let markup_bp = providers::parse_markup(&field("markup", 0)).map_err(|e| e.to_string())?;
    match (
        field("priority", 1).trim().parse(),
        field("unit", 2).trim().parse(),
    ) {
        (Ok(priority), Ok(unit)) => Ok((markup_bp, priority, unit)),
        _ => Err("Priority and unit must be whole numbers.".into()),
    }
}

fn add(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let f = req.form();
    let back = LIST;
    let Some(kind) = Kind::parse(&f.text("kind")) else {
        return form::fail(ctx, req, &p.session, back, "Choose the kind of provider.");
    };
    let (markup_bp, priority, unit_minor) = match settings(&f, Some(["20%", "0", "100"])) {
        Ok(n) => n,
        Err(msg) => return form::fail(ctx, req, &p.session, back, msg),
    };
    let (name, url, key) = (f.text("name"), f.text("url"), f.text("key"));
    let new = NewProvider {
        kind,
        name: &name,
        base_url: &url,
        key: &key,
        markup_bp,
        priority,
        unit_minor,
    };
    // Not one transaction: the provider is stored, then synced over the network.
    let ip = ctx.ip_hash(req);
    match crate::upstream::add_and_sync(ctx.app, ctx.db, &new, Some((p.user.id, &ip))) {
        Ok((id, report)) => {
            let flash = sync_flash("Provider added. ", &report);
            form::tell(ctx, &p.session, &format!("/admin/providers/{id}"), flash)
        }
        Err(e) => form::fail(ctx, req, &p.session, back, e),
    }
}

/// A form of provider `{id}`'s page: `write` changes it in one transaction and returns the
/// audit row to write (action and detail), if any; then the browser goes to `to`, or back
/// to the page with the error.
fn provider_form(
    ctx: &mut Ctx<'_>,
    req: &Request,
    p: &Page,
    write: impl FnOnce(&Connection, i64) -> crate::domain::Result<Option<(&'static str, String)>> + Send,
    to: impl FnOnce(i64) -> String,
) -> Response {
    let Some(id) = req.id_param("id") else {
        return form::fail(ctx, req, &p.session, LIST, "No such provider.");
    };
    form::audited(
        ctx,
        req,
        p,
        &format!("/admin/providers/{id}"),
        |tx, _, actor, now| match write(tx, id)? {
            Some((action, detail)) => audit::audit(
                tx,
                Some(actor.id),
                None,
                action,
                &detail,
                actor.ip_hash,
                now,
            ),
            None => Ok(()),
        },
        |_, ()| Response::redirect(&to(id)),
    )
}

fn edit(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let f = req.form();
    let (markup_bp, priority, unit) = match settings(&f, None) {
        Ok(n) => n,
        Err(msg) => {
            let back = match req.id_param("id") {
                Some(id) => format!("/admin/providers/{id}"),
                None => LIST.into(),
            };
            return form::fail(ctx, req, &p.session, &back, msg);
        }
    };
    let (name, url, key) = (f.text("name"), f.text("url"), f.text("key"));
    let changes = Changes {
        name: Some(&name),
        base_url: Some(&url),
        key: Some(&key),
        markup_bp: Some(markup_bp),
        priority: Some(priority),
        unit_minor: Some(unit),
        enabled: Some(f.checked("enabled")),
    };
    let keys = ctx.app.keys.clone();
    provider_form(
        ctx,
        req,
        p,
        |tx, id| {
            let said = providers::edit(tx, &keys, id, &changes)?;
            let detail = format!("provider {id}: {said}");
            Ok((!said.is_empty()).then_some(("provider_changed", detail)))
        },
        |id| format!("/admin/providers/{id}?m=saved"),
    )
}

fn sync_now(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let found = req.id_param("id").map(|id| providers::get(ctx.db, id));
    let Some(Ok(Some(provider))) = found else {
        return form::fail(ctx, req, &p.session, LIST, "No such provider.");
    };
    // Not one transaction: the sync calls the provider over the network.
    let flash = match crate::upstream::sync(ctx.app, ctx.db, &provider) {
        Ok(report) => sync_flash("", &report),
        Err(e) => Flash::Err(e.to_string()),
    };
    let to = format!("/admin/providers/{}", provider.id);
    form::tell(ctx, &p.session, &to, flash)
}

fn delete(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    provider_form(
        ctx,
        req,
        p,
        |tx, id| {
            let p = providers::get(tx, id)?.ok_or(Error::NotFound("provider"))?;
            providers::delete(tx, id)?;
            Ok(Some((
                "provider_deleted",
                format!("provider {id}: {}", p.name),
            )))
        },
        |_| "/admin/providers?m=provider_deleted".into(),
    )
}
