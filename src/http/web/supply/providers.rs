//! Admin handlers of the upstream providers: list with health and the routing table, add
//! (and sync at once), settings, "sync now", delete. Changes are audited; the key is never
//! shown back (the form's key field is always empty) nor written to the audit log.

use crate::db;
use crate::domain::accounts::Role;
use crate::domain::supply::providers::{self, Changes, Kind, NewProvider};
use crate::domain::{base::audit, supply::routing, Error};
use crate::http::auth::{Page, Signed};
use crate::http::router::Router;
use crate::http::web::{cur, flash_from_query};
use crate::http::{error_page, Ctx, Method, Request, Response};
use crate::views::supply::providers::{self as view, AddForm};
use crate::views::{Flash, Nav};

pub fn routes(r: &mut Router) {
    r.page(Method::Get, "/admin/providers", Role::Admin, list);
    r.page(Method::Post, "/admin/providers", Role::Admin, add);
    r.page(Method::Get, "/admin/providers/{id}", Role::Admin, detail);
    r.page(Method::Post, "/admin/providers/{id}", Role::Admin, edit);
    r.page(
        Method::Post,
        "/admin/providers/{id}/sync",
        Role::Admin,
        sync_now,
    );
    r.page(
        Method::Post,
        "/admin/providers/{id}/delete",
        Role::Admin,
        delete,
    );
}

/// The routing table covers orders that ended this recently.
const ROUTING_WINDOW: i64 = 7 * 86_400;

fn list_view(
    ctx: &mut Ctx<'_>,
    s: &Signed,
    n: &Nav,
    form: &AddForm,
    flash: Option<Flash>,
    status: u16,
) -> Response {
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
        n,
        s.csrf(),
        &cur(ctx),
        &rows,
        &routing,
        form,
        now,
        &flash,
    ))
    .with_status(status)
}

fn list(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    list_view(ctx, s, n, &AddForm::default(), flash_from_query(req), 200)
}

fn detail_view(
    ctx: &mut Ctx<'_>,
    req: &Request,
    s: &Signed,
    n: &Nav,
    id: i64,
    flash: Option<Flash>,
    status: u16,
) -> Response {
    let p = match providers::get(ctx.db, id) {
        Ok(Some(p)) => p,
        _ => return error_page(req, 404, "No such provider."),
    };
    let h = providers::health(ctx.db, id).unwrap_or_default();
    let calls = providers::recent_calls(ctx.db, id, 30).unwrap_or_default();
    let now = ctx.now();
    Response::html(view::detail(
        n,
        s.csrf(),
        &cur(ctx),
        &p,
        &h,
        &calls,
        now,
        &flash,
    ))
    .with_status(status)
}

fn detail(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such provider.");
    };
    detail_view(ctx, req, s, n, id, flash_from_query(req), 200)
}

/// "Synced 12 offers, balance …" or why the sync failed.
fn sync_flash(report: &crate::upstream::SyncReport) -> Flash {
    if report.errors.is_empty() {
        Flash::Ok(format!(
            "Synced {} offers.",
            report.offers.unwrap_or_default()
        ))
    } else {
        Flash::Err(format!(
            "The sync failed: {}. The scheduler tries again every five minutes.",
            report.errors.join("; ")
        ))
    }
}

fn add(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let f = req.form();
    let form = AddForm {
        kind: f.text("kind"),
        name: f.text("name"),
        url: f.text("url"),
        markup: f.text("markup"),
        priority: f.text("priority"),
        unit: f.text("unit"),
    };
    let refuse = |ctx: &mut Ctx<'_>, msg: String, status: u16| {
        list_view(ctx, s, n, &form, Some(Flash::Err(msg)), status)
    };
    let Some(kind) = Kind::parse(&form.kind) else {
        return refuse(ctx, "Choose the kind of provider.".into(), 400);
    };
    let markup_bp = match providers::parse_markup(if form.markup.trim().is_empty() {
        "20%"
    } else {
        &form.markup
    }) {
        Ok(bp) => bp,
        Err(e) => return refuse(ctx, e.to_string(), 400),
    };
    let (Ok(priority), Ok(unit)) = (number_or(&form.priority, 0), number_or(&form.unit, 100))
    else {
        return refuse(ctx, "Priority and unit must be whole numbers.".into(), 400);
    };
    let key = f.text("key");
    let new = NewProvider {
        kind,
        name: &form.name,
        base_url: &form.url,
        key: &key,
        markup_bp,
        priority,
        unit_minor: unit,
    };
    let ip = ctx.ip_hash(req);
    match crate::upstream::add_and_sync(ctx.app, ctx.db, &new, Some((s.user.id, &ip))) {
        Ok((id, report)) => {
            let flash = match sync_flash(&report) {
                Flash::Ok(m) => Flash::Ok(format!("Provider added. {m}")),
                Flash::Err(m) => Flash::Err(format!("Provider added. {m}")),
            };
            detail_view(ctx, req, s, n, id, Some(flash), 201)
        }
        Err(e) => refuse(ctx, e.to_string(), e.http_status()),
    }
}

fn number_or(text: &str, default: i64) -> Result<i64, ()> {
    match text.trim() {
        "" => Ok(default),
        t => t.parse().map_err(|_| ()),
    }
}

fn edit(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such provider.");
    };
    let f = req.form();
    let markup_bp = match providers::parse_markup(&f.text("markup")) {
        Ok(bp) => bp,
        Err(e) => return detail_view(ctx, req, s, n, id, Some(Flash::Err(e.to_string())), 400),
    };
    let (Ok(priority), Ok(unit)) = (
        f.text("priority").trim().parse(),
        f.text("unit").trim().parse(),
    ) else {
        return detail_view(
            ctx,
            req,
            s,
            n,
            id,
            Some(Flash::Err(
                "Priority and unit must be whole numbers.".into(),
            )),
            400,
        );
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
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    let keys = ctx.app.keys.clone();
    let done = db::write(ctx.db, |tx| {
        let said = providers::edit(tx, &keys, id, &changes)?;
        if !said.is_empty() {
            audit::audit(
                tx,
                Some(s.user.id),
                None,
                "provider_changed",
                &format!("provider {id}: {said}"),
                &ip,
                now,
            )?;
        }
        Ok(())
    });
    match done {
        Ok(()) => Response::redirect(&format!("/admin/providers/{id}?m=saved")),
        Err(Error::NotFound(_)) => error_page(req, 404, "No such provider."),
        Err(e) => {
            let status = e.http_status();
            detail_view(ctx, req, s, n, id, Some(Flash::Err(e.to_string())), status)
        }
    }
}

fn sync_now(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such provider.");
    };
    let p = match providers::get(ctx.db, id) {
        Ok(Some(p)) => p,
        _ => return error_page(req, 404, "No such provider."),
    };
    let flash = match crate::upstream::sync(ctx.app, ctx.db, &p) {
        Ok(report) => sync_flash(&report),
        Err(e) => Flash::Err(e.to_string()),
    };
    detail_view(ctx, req, s, n, id, Some(flash), 200)
}

fn delete(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such provider.");
    };
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    let done = db::write(ctx.db, |tx| {
        let p = providers::get(tx, id)?.ok_or(Error::NotFound("provider"))?;
        providers::delete(tx, id)?;
        audit::audit(
            tx,
            Some(s.user.id),
            None,
            "provider_deleted",
            &format!("provider {id}: {}", p.name),
            &ip,
            now,
        )
    });
    match done {
        Ok(()) => Response::redirect("/admin/providers?m=provider_deleted"),
        Err(Error::NotFound(_)) => error_page(req, 404, "No such provider."),
        Err(e) => {
            let status = e.http_status();
            detail_view(ctx, req, s, n, id, Some(Flash::Err(e.to_string())), status)
        }
    }
}
