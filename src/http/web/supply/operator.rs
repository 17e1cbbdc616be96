//! The operator's pages under `/operator` (operators and admins): health overview, devices
//! with their SIMs (the secret of a new device is rendered once, in the answer to the POST
//! that created it, never in a URL), orders on its numbers, earnings and payout requests.
//! Another operator's device is "not found".

use crate::db;
use crate::domain::accounts::Role;
use crate::domain::base::money::{currency_digits, Money};
use crate::domain::market::earnings;
use crate::domain::supply::devices::{self, Device, Kind, NewSim};
use crate::domain::supply::payouts::Totals;
use crate::domain::{base::audit, market::catalogue, supply::numbers, supply::payouts, Error};
use crate::http::auth::{Page, Signed};
use crate::http::router::Router;
use crate::http::web::{cur, flash_from_query};
use crate::http::{error_page, Ctx, Method, Request, Response};
use crate::views::supply::operator::{
    self as view, CountryNames, DevicePage, DeviceRow, NewDevice,
};
use crate::views::{Flash, Nav};

/// Rows per page of the long lists.
const PAGE: i64 = 50;

pub fn routes(r: &mut Router) {
    r.page(Method::Get, "/operator", Role::Operator, overview);
    r.page(
        Method::Get,
        "/operator/devices",
        Role::Operator,
        devices_page,
    );
    r.page(
        Method::Post,
        "/operator/devices",
        Role::Operator,
        create_device,
    );
    r.page(
        Method::Get,
        "/operator/devices/{id}",
        Role::Operator,
        device_page,
    );
    r.page(
        Method::Post,
        "/operator/devices/{id}/sims",
        Role::Operator,
        add_sim,
    );
    r.page(
        Method::Post,
        "/operator/devices/{id}/sims/{number}/remove",
        Role::Operator,
        remove_sim,
    );
    r.page(
        Method::Post,
        "/operator/devices/{id}/revoke",
        Role::Operator,
        revoke,
    );
    r.page(
        Method::Get,
        "/operator/activations",
        Role::Operator,
        activations,
    );
    r.page(
        Method::Get,
        "/operator/earnings",
        Role::Operator,
        earnings_page,
    );
    r.page(
        Method::Get,
        "/operator/payouts",
        Role::Operator,
        payouts_page,
    );
    r.page(
        Method::Post,
        "/operator/payouts",
        Role::Operator,
        request_payout,
    );
    r.page(
        Method::Post,
        "/operator/payouts/{id}/withdraw",
        Role::Operator,
        withdraw_payout,
    );
}

/// `base_url` + `/ingest/{kind}/{device_id}`: where the gateway posts.
fn webhook_url(ctx: &Ctx<'_>, d: &Device) -> String {
    format!(
        "{}/ingest/{}/{}",
        ctx.app.config.base_url,
        d.kind.as_str(),
        d.public_id
    )
}

fn page_no(req: &Request) -> i64 {
    req.query_param("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0i64)
        .clamp(0, 100_000)
}

fn country_names(ctx: &Ctx<'_>) -> CountryNames {
    catalogue::countries(ctx.db)
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect()
}

fn totals(ctx: &Ctx<'_>, user_id: i64) -> Totals {
    let since = earnings::month_start(ctx.now());
    payouts::totals(ctx.db, user_id, since).unwrap_or_default()
}

fn device_rows(ctx: &Ctx<'_>, owner_id: i64) -> Vec<DeviceRow> {
    let now = ctx.now();
    devices::list_for(ctx.db, owner_id)
        .unwrap_or_default()
        .into_iter()
        .map(|device| DeviceRow {
            sims: devices::sims(ctx.db, device.id).map_or(0, |s| s.len()),
            messages_today: devices::messages_today(ctx.db, device.id, now).unwrap_or(0),
            device,
        })
        .collect()
}

fn overview(ctx: &mut Ctx<'_>, _req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let rows = device_rows(ctx, s.user.id);
    let owned = numbers::owned_without_device(ctx.db, s.user.id).map_or(0, |o| o.len());
    Response::html(view::overview(
        n,
        &cur(ctx),
        &totals(ctx, s.user.id),
        ctx.app.config.operator_share,
        &rows,
        owned,
    ))
}

fn devices_view(
    ctx: &mut Ctx<'_>,
    s: &Signed,
    n: &Nav,
    new: Option<NewDevice<'_>>,
    flash: Option<Flash>,
    status: u16,
) -> Response {
    let rows = device_rows(ctx, s.user.id);
    let owned = numbers::owned_without_device(ctx.db, s.user.id).unwrap_or_default();
    let names = country_names(ctx);
    Response::html(view::devices(
        n,
        s.csrf(),
        &rows,
        &owned,
        &names,
        new,
        &flash,
    ))
    .with_status(status)
}

fn devices_page(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    devices_view(ctx, s, n, None, flash_from_query(req), 200)
}

fn create_device(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let form = req.form();
    let Some(kind) = Kind::parse(&form.text("kind")) else {
        let f = Flash::Err("Choose the gateway software the device runs.".into());
        return devices_view(ctx, s, n, None, Some(f), 400);
    };
    let name = form.text("name");
    let now = ctx.now();
    let keys = ctx.app.keys.clone();
    let ip = ctx.ip_hash(req);
    let created = db::write(ctx.db, |tx| {
        let (d, secret) = devices::create(tx, &keys, s.user.id, &name, kind, now)?;
        let detail = format!("{} ({})", d.public_id, kind.as_str());
        audit::security(tx, Some(s.user.id), "device_created", &ip, &detail, now)?;
        Ok((d, secret))
    });
    match created {
        Ok((d, secret)) => {
            let url = webhook_url(ctx, &d);
            let new = NewDevice {
                device: &d,
                secret: &secret,
                webhook_url: &url,
            };
            devices_view(ctx, s, n, Some(new), None, 201)
        }
        Err(e) => devices_view(
            ctx,
            s,
            n,
            None,
            Some(Flash::Err(e.to_string())),
            e.http_status(),
        ),
    }
}

/// The caller's own live device named by `{id}`, or the 404 page.
fn own_device(ctx: &Ctx<'_>, req: &Request, s: &Signed) -> Result<Device, Response> {
    req.id_param("id")
        .ok_or(Error::NotFound("device"))
        .and_then(|id| devices::get_for(ctx.db, s.user.id, id))
        .map_err(|_| error_page(req, 404, "No such device."))
}

fn device_view(
    ctx: &mut Ctx<'_>,
    s: &Signed,
    n: &Nav,
    d: &Device,
    flash: Option<Flash>,
    status: u16,
) -> Response {
    let sims = devices::sims(ctx.db, d.id).unwrap_or_default();
    let countries = catalogue::countries(ctx.db).unwrap_or_default();
    let url = webhook_url(ctx, d);
    let p = DevicePage {
        device: d,
        webhook_url: &url,
        messages_today: devices::messages_today(ctx.db, d.id, ctx.now()).unwrap_or(0),
        sims: &sims,
        countries: &countries,
    };
    Response::html(view::device(n, s.csrf(), &p, &flash)).with_status(status)
}

fn device_page(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    match own_device(ctx, req, s) {
        Ok(d) => device_view(ctx, s, n, &d, flash_from_query(req), 200),
        Err(r) => r,
    }
}

fn add_sim(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let d = match own_device(ctx, req, s) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let form = req.form();
    let sim = match (
        form.text("slot").trim().parse::<i64>(),
        form.text("country").trim().parse::<i64>(),
    ) {
        (Ok(slot), Ok(country_id)) => NewSim {
            slot,
            phone: form.text("phone"),
            country_id,
            operator: form.text("operator").trim().to_ascii_lowercase(),
        },
        _ => {
            let f = Flash::Err("Enter the slot number and choose the country.".into());
            return device_view(ctx, s, n, &d, Some(f), 400);
        }
    };
    if let Err(why) = numbers::phone_digits(&sim.phone) {
        let f = Flash::Err(format!("The phone number: {why}."));
        return device_view(ctx, s, n, &d, Some(f), 400);
    }
    let now = ctx.now();
    match db::write(ctx.db, |tx| devices::add_sim(tx, &d, &sim, now)) {
        Ok(_) => Response::redirect(&format!("/operator/devices/{}?m=sim_added", d.id)),
        Err(e) => device_view(
            ctx,
            s,
            n,
            &d,
            Some(Flash::Err(e.to_string())),
            e.http_status(),
        ),
    }
}

fn remove_sim(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let d = match own_device(ctx, req, s) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let Some(number) = req.id_param("number") else {
        return error_page(req, 404, "No such SIM.");
    };
    match db::write(ctx.db, |tx| devices::remove_sim(tx, &d, number)) {
        Ok(()) => Response::redirect(&format!("/operator/devices/{}?m=sim_removed", d.id)),
        Err(e) => error_page(req, e.http_status(), &e.to_string()),
    }
}

fn revoke(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let d = match own_device(ctx, req, s) {
        Ok(d) => d,
        Err(r) => return r,
    };
    if !req.form().checked("confirm") {
        let f = Flash::Err("Tick the box to confirm that the device is to be revoked.".into());
        return device_view(ctx, s, n, &d, Some(f), 400);
    }
    let now = ctx.now();
    let ip = ctx.ip_hash(req);
    let done = db::write(ctx.db, |tx| {
        devices::revoke(tx, &d, now)?;
        audit::security(
            tx,
            Some(s.user.id),
            "device_revoked",
            &ip,
            &d.public_id,
            now,
        )
    });
    match done {
        Ok(()) => Response::redirect("/operator/devices?m=device_revoked"),
        Err(e) => error_page(req, e.http_status(), &e.to_string()),
    }
}

fn activations(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let page_no = page_no(req);
    let mut sales =
        earnings::sales(ctx.db, s.user.id, PAGE + 1, page_no * PAGE).unwrap_or_default();
    let more = sales.len() as i64 > PAGE;
    sales.truncate(PAGE as usize);
    let names = country_names(ctx);
    Response::html(view::activations(
        n,
        &cur(ctx),
        &sales,
        &names,
        page_no,
        more,
    ))
}

fn earnings_page(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let page_no = page_no(req);
    let mut rows = earnings::rows(ctx.db, s.user.id, PAGE + 1, page_no * PAGE).unwrap_or_default();
    let more = rows.len() as i64 > PAGE;
    rows.truncate(PAGE as usize);
    Response::html(view::earnings(
        n,
        &cur(ctx),
        &totals(ctx, s.user.id),
        &rows,
        page_no,
        more,
    ))
}

fn payouts_view(
    ctx: &mut Ctx<'_>,
    s: &Signed,
    n: &Nav,
    flash: Option<Flash>,
    status: u16,
) -> Response {
    let list = payouts::list_for(ctx.db, s.user.id, 200).unwrap_or_default();
    let available = payouts::available(ctx.db, s.user.id).unwrap_or(0);
    Response::html(view::payouts(
        n,
        s.csrf(),
        &cur(ctx),
        &totals(ctx, s.user.id),
        available,
        &list,
        &flash,
    ))
    .with_status(status)
}

fn payouts_page(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    payouts_view(ctx, s, n, flash_from_query(req), 200)
}

fn request_payout(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (s, n) = (&p.signed, &p.nav);
    let form = req.form();
    let digits = currency_digits(&ctx.app.config.currency);
    let Some(amount) = Money::parse(&form.text("amount"), digits, false) else {
        let f = Flash::Err("Enter the amount, e.g. 25.00.".into());
        return payouts_view(ctx, s, n, Some(f), 400);
    };
    let destination = form.text("destination");
    let now = ctx.now();
    let uid = s.user.id;
    match db::write(ctx.db, |tx| {
        payouts::request(tx, uid, amount.0, &destination, digits, now)
    }) {
        Ok(_) => Response::redirect("/operator/payouts?m=payout_requested"),
        Err(e) => payouts_view(ctx, s, n, Some(Flash::Err(e.to_string())), e.http_status()),
    }
}

fn withdraw_payout(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let s = &p.signed;
    let Some(id) = req.id_param("id") else {
        return error_page(req, 404, "No such payout.");
    };
    let now = ctx.now();
    let uid = s.user.id;
    match db::write(ctx.db, |tx| payouts::withdraw(tx, uid, id, now)) {
        Ok(_) => Response::redirect("/operator/payouts?m=payout_withdrawn"),
        Err(e) => error_page(req, e.http_status(), &e.to_string()),
    }
}
