//! The operator's pages under `/operator` (operators and admins): health overview, devices
//! with their SIMs (the secret of a new device is rendered once, in the answer to the POST
//! that created it, never in a URL), orders on its numbers, earnings and payout requests.
//! Another operator's device is "not found".

use rusqlite::Connection;

use crate::clock::Timestamp;
use crate::domain::accounts::Role;
use crate::domain::base::money::{currency_digits, Money};
use crate::domain::market::earnings;
use crate::domain::supply::devices::{self, Device, Kind, NewSim};
use crate::domain::supply::payouts::Totals;
use crate::domain::{base::audit, market::catalogue, supply::numbers, supply::payouts};
use crate::http::auth::Page;
use crate::http::router::Router;
use crate::http::web::{cur, form};
use crate::http::{error_page, Ctx, Method, Request, Response};
use crate::views::supply::operator::{
    self as view, CountryNames, DevicePage, DeviceRow, NewDevice,
};

/// Rows per page of the long lists.
const PAGE: i64 = 50;

pub fn routes(r: &mut Router) {
    use Method::{Get, Post};
    r.pages(
        Role::Operator,
        &[
            (Get, "/operator", overview),
            (Get, "/operator/devices", devices_page),
            (Post, "/operator/devices", create_device),
            (Get, "/operator/devices/{id}", device_page),
            (Post, "/operator/devices/{id}/sims", add_sim),
            (
                Post,
                "/operator/devices/{id}/sims/{number}/remove",
                remove_sim,
            ),
            (Post, "/operator/devices/{id}/revoke", revoke),
            (Get, "/operator/activations", activations),
            (Get, "/operator/earnings", earnings_page),
            (Get, "/operator/payouts", payouts_page),
            (Post, "/operator/payouts", request_payout),
            (Post, "/operator/payouts/{id}/withdraw", withdraw_payout),
        ],
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
    let rows = device_rows(ctx, p.user.id);
    let owned = numbers::owned_without_device(ctx.db, p.user.id).map_or(0, |o| o.len());
    Response::html(view::overview(
        &p.nav,
        &cur(ctx),
        &totals(ctx, p.user.id),
        ctx.app.config.operator_share,
        &rows,
        owned,
    ))
}

/// The devices page; `new` is a device just created, its secret shown once.
fn devices_view(ctx: &mut Ctx<'_>, p: &Page, new: Option<NewDevice<'_>>) -> Response {
    let rows = device_rows(ctx, p.user.id);
    let owned = numbers::owned_without_device(ctx.db, p.user.id).unwrap_or_default();
    let names = country_names(ctx);
    let page = view::DevicesPage {
        rows: &rows,
        owned: &owned,
        names: &names,
        new,
    };
    Response::html(view::devices(&p.nav, p.csrf(), &page, &p.flash, &p.kept))
}

fn devices_page(ctx: &mut Ctx<'_>, _req: &Request, p: &Page) -> Response {
    devices_view(ctx, p, None)
}

/// The secret of the new device is shown once, in the answer to this POST.
fn create_device(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let Some(kind) = Kind::parse(&req.form().text("kind")) else {
        let msg = "Choose the gateway software the device runs.";
        return form::fail(ctx, req, &p.session, "/operator/devices", msg);
    };
    let keys = ctx.app.keys.clone();
    let ip = ctx.ip_hash(req);
    let uid = p.user.id;
    form::submit(
        ctx,
        req,
        &p.session,
        "/operator/devices",
        |tx, f, now| {
            let (d, secret) = devices::create(tx, &keys, uid, &f.text("name"), kind, now)?;
            let detail = format!("{} ({})", d.public_id, kind.as_str());
            audit::security(tx, Some(uid), "device_created", &ip, &detail, now)?;
            Ok((d, secret))
        },
        |ctx, (d, secret)| {
            let url = webhook_url(ctx, &d);
            let new = NewDevice {
                device: &d,
                secret: &secret,
                webhook_url: &url,
            };
            devices_view(ctx, p, Some(new)).with_status(201)
        },
    )
}

/// The caller's own live device named by `{id}`.
fn own_device(ctx: &Ctx<'_>, req: &Request, p: &Page) -> Option<Device> {
    let id = req.id_param("id")?;
    devices::get_for(ctx.db, p.user.id, id).ok()
}

fn device_page(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let Some(d) = own_device(ctx, req, p) else {
        return error_page(req, 404, "No such device.");
    };
    let sims = devices::sims(ctx.db, d.id).unwrap_or_default();
    let countries = catalogue::countries(ctx.db).unwrap_or_default();
    let url = webhook_url(ctx, &d);
    let statuses = devices::statuses(ctx.db, d.id).unwrap_or_default();
    let page = DevicePage {
        statuses: &statuses,
        device: &d,
        webhook_url: &url,
        messages_today: devices::messages_today(ctx.db, d.id, ctx.now()).unwrap_or(0),
        sims: &sims,
        countries: &countries,
    };
    Response::html(view::device(&p.nav, p.csrf(), &page, &p.flash, &p.kept))
}

/// A form of the caller's device `{id}`: `input` is what the form asks for, or why it is
/// refused before any change; `write` makes the change in one transaction; success goes to
/// `to`, a refusal back to the device's page.
fn device_form<I: Send, T: Send>(
    ctx: &mut Ctx<'_>,
    req: &Request,
    p: &Page,
    input: Result<I, String>,
    write: impl FnOnce(&Connection, &Device, I, Timestamp) -> crate::domain::Result<T> + Send,
    to: impl FnOnce(&Device) -> String,
) -> Response {
    let Some(d) = own_device(ctx, req, p) else {
        return form::fail(ctx, req, &p.session, "/operator/devices", "No such device.");
    };
    let back = format!("/operator/devices/{}", d.id);
    let input = match input {
        Ok(i) => i,
        Err(msg) => return form::fail(ctx, req, &p.session, &back, msg),
    };
    form::submit(
        ctx,
        req,
        &p.session,
        &back,
        |tx, _, now| write(tx, &d, input, now),
        |_, _| Response::redirect(&to(&d)),
    )
}

fn add_sim(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let form = req.form();
    let sim = match (
        devices::parse_slot(&form.text("slot")).ok_or(()),
        form.text("country").trim().parse::<i64>(),
    ) {
        (Ok(slot), Ok(country_id)) => Ok(NewSim {
            slot,
            phone: form.text("phone"),
            country_id,
            operator: form.text("operator").trim().to_ascii_lowercase(),
        }),
        _ => Err("Enter the slot number and choose the country.".to_string()),
    };
    let sim = sim.and_then(|sim| match numbers::phone_digits(&sim.phone) {
        Ok(_) => Ok(sim),
        Err(why) => Err(format!("The phone number: {why}.")),
    });
    device_form(
        ctx,
        req,
        p,
        sim,
        |tx, d, sim, now| devices::add_sim(tx, d, &sim, now),
        |d| format!("/operator/devices/{}?m=sim_added", d.id),
    )
}

fn remove_sim(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let number = req.id_param("number").ok_or("No such SIM.".to_string());
    device_form(
        ctx,
        req,
        p,
        number,
        |tx, d, number, _| devices::remove_sim(tx, d, number),
        |d| format!("/operator/devices/{}?m=sim_removed", d.id),
    )
}

fn revoke(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let confirmed = match req.form().checked("confirm") {
        true => Ok(()),
        false => Err("Tick the box to confirm that the device is to be revoked.".to_string()),
    };
    let ip = ctx.ip_hash(req);
    let uid = p.user.id;
    device_form(
        ctx,
        req,
        p,
        confirmed,
        |tx, d, (), now| {
            devices::revoke(tx, d, now)?;
            audit::security(tx, Some(uid), "device_revoked", &ip, &d.public_id, now)
        },
        |_| "/operator/devices?m=device_revoked".into(),
    )
}

/// `/operator/activations?after=CURSOR`: the orders on the operator's numbers, a page at a
/// time by keyset.
fn activations(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let after = req
        .query_param("after")
        .and_then(|a| earnings::SalesCursor::parse(&a));
    let mut sales = earnings::sales(ctx.db, p.user.id, after, PAGE + 1).unwrap_or_default();
    let older = (sales.len() as i64 > PAGE).then(|| {
        sales.truncate(PAGE as usize);
        earnings::next_sales(&sales).map_or_else(String::new, |c| c.encode())
    });
    let names = country_names(ctx);
    let pager = view::Pager {
        base: "/operator/activations",
        param: "after",
        not_first: after.is_some(),
        older,
    };
    Response::html(view::activations(&p.nav, &cur(ctx), &sales, &names, &pager))
}

/// `/operator/earnings?before=ID`: earning and payout rows, a page at a time by keyset.
fn earnings_page(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let before: Option<i64> = req.query_param("before").and_then(|b| b.parse().ok());
    let mut rows = earnings::rows(ctx.db, p.user.id, before, PAGE + 1).unwrap_or_default();
    let older = (rows.len() as i64 > PAGE).then(|| {
        rows.truncate(PAGE as usize);
        rows.last().map_or(0, |r| r.id).to_string()
    });
    let pager = view::Pager {
        base: "/operator/earnings",
        param: "before",
        not_first: before.is_some(),
        older,
    };
    Response::html(view::earnings(
        &p.nav,
        &cur(ctx),
        &totals(ctx, p.user.id),
        &rows,
        &pager,
    ))
}

fn payouts_page(ctx: &mut Ctx<'_>, _req: &Request, p: &Page) -> Response {
    let list = payouts::list_for(ctx.db, p.user.id, 200).unwrap_or_default();
    let available = payouts::available(ctx.db, p.user.id).unwrap_or(0);
    let balance = view::Balance {
        totals: totals(ctx, p.user.id),
        available,
    };
    Response::html(view::payouts(
        &p.nav,
        p.csrf(),
        &cur(ctx),
        &balance,
        &list,
        &p.flash,
        &p.kept,
    ))
}

fn request_payout(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let digits = currency_digits(&ctx.app.config.currency);
    let Some(amount) = Money::parse(&req.form().text("amount"), digits, false) else {
        let msg = "Enter the amount, e.g. 25.00.";
        return form::fail(ctx, req, &p.session, "/operator/payouts", msg);
    };
    let uid = p.user.id;
    form::submit(
        ctx,
        req,
        &p.session,
        "/operator/payouts",
        |tx, f, now| payouts::request(tx, uid, amount.0, &f.text("destination"), digits, now),
        |_, _| Response::redirect("/operator/payouts?m=payout_requested"),
    )
}

fn withdraw_payout(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let Some(id) = req.id_param("id") else {
        return form::fail(ctx, req, &p.session, "/operator/payouts", "No such payout.");
    };
    let uid = p.user.id;
    form::submit(
        ctx,
        req,
        &p.session,
        "/operator/payouts",
        |tx, _, now| payouts::withdraw(tx, uid, id, now),
        |_, _| Response::redirect("/operator/payouts?m=payout_withdrawn"),
    )
}
