//! The rest of 5sim's user API (protocols.md §2.2): hosting (a number rented for hours or
//! days, `buy/hosting/{country}/{operator}/{product}` with a product such as `1day`, served
//! by our rentals of the catch-all service `ot`), its inbox (`sms/inbox/{id}`), buying a
//! number again (`reuse/{product}/{number}`) and price caps (`max-prices`, GET, POST and
//! DELETE with JSON bodies).
//!
//! A hosting order's id is its rental's id plus [`HOSTING_BASE`], so one id space serves
//! `check`, `finish` and `cancel` for both kinds of order. Its JSON has the activation order's
//! shape; its product is its length (`1day`, `7days`, `12hours`).

use serde_json::{json, Value};

use super::{error, fail, find_country, find_product, major, one_order, segment, time, Names};
use crate::db;
use crate::domain::accounts::User;
use crate::domain::base::money::currency_digits;
use crate::domain::market::activations::{self, OrderRequest, Placed};
use crate::domain::market::rentals::{self, RentRequest, Rental, MAX_HOURS, MIN_HOURS};
use crate::domain::market::{caps, catalogue, inbox};
use crate::domain::Error;
use crate::http::protocols::params;
use crate::http::{Ctx, Request, Response};

/// Hosting order ids start here (a rental's id plus this).
pub const HOSTING_BASE: i64 = 1_000_000_000_000;
/// The service a hosting rental is for: every SMS to the number.
const HOSTING_SERVICE: &str = "ot";

/// Hours of a hosting product: `1hour`, `12hours`, `1day`, `7days`, `1week`, `1month` (30
/// days); `None` for anything else or a length we do not rent.
pub fn product_hours(product: &str) -> Option<i64> {
    let p = product.trim().to_ascii_lowercase();
    let split = p.find(|c: char| !c.is_ascii_digit())?;
    let n: i64 = p[..split].parse().ok()?;
    let unit = match p[split..].trim_end_matches('s') {
        "hour" => 1,
        "day" => 24,
        "week" => 24 * 7,
        "month" => 24 * 30,
        _ => return None,
    };
    let hours = n.checked_mul(unit)?;
    (MIN_HOURS..=MAX_HOURS).contains(&hours).then_some(hours)
}

/// The product name of a rental's length.
pub fn product_name(hours: i64) -> String {
    match hours {
        h if h % 24 == 0 && h / 24 == 1 => "1day".into(),
        h if h % 24 == 0 => format!("{}days", h / 24),
        h => format!("{h}hours"),
    }
}

/// The hosting products sold in a country: (product, hours, price in minor units).
pub fn hosting_products(conn: &rusqlite::Connection, country: i64) -> Vec<(String, i64, i64)> {
    let Ok(Some(p)) = catalogue::price(conn, country, HOSTING_SERVICE, "") else {
        return Vec::new();
    };
    if p.rent_hour_minor <= 0 {
        return Vec::new();
    }
    [24, 24 * 7]
        .into_iter()
        .map(|h| (product_name(h), h, h * p.rent_hour_minor))
        .collect()
}

fn hosting_json(ctx: &Ctx<'_>, names: &mut Names<'_>, r: &Rental) -> Value {
    let digits = currency_digits(&ctx.app.config.currency);
    let messages = inbox::for_rental(ctx.db, r.id).unwrap_or_default();
    let sms: Value = if messages.is_empty() {
        Value::Null
    } else {
        messages.iter().map(sms_json).collect()
    };
    let status = match r.status {
        rentals::Status::Active if ctx.now() < r.expires_at => "RECEIVED",
        rentals::Status::Active | rentals::Status::Finished | rentals::Status::Expired => {
            "FINISHED"
        }
        rentals::Status::Canceled => "CANCELED",
    };
    json!({
        "id": r.id + HOSTING_BASE,
        "phone": format!("+{}", inbox::digits(&r.phone)),
        "operator": "any",
        "product": product_name(r.hours),
        "price": major(r.paid_minor, digits),
        "status": status,
        "expires": time(r.expires_at),
        "sms": sms,
        "created_at": time(r.created_at),
        "forwarding": false,
        "forwarding_number": "",
        "country": names.country(r.country_id),
    })
}

fn sms_json(m: &inbox::Message) -> Value {
    json!({
        "id": m.id,
        "created_at": time(m.received_at),
        "date": time(m.received_at),
        "sender": m.sender,
        "text": m.text,
        "code": m.code.clone().unwrap_or_default(),
    })
}

/// A page of hosting orders for `/user/orders?category=hosting` (newest first, or oldest
/// first with `reverse`).
pub fn hosting_page(
    ctx: &Ctx<'_>,
    list: &[Rental],
    offset: i64,
    limit: i64,
    reverse: bool,
) -> Vec<Value> {
    let mut names = Names::new(ctx.db);
    let ordered: Vec<&Rental> = if reverse {
        list.iter().rev().collect()
    } else {
        list.iter().collect()
    };
    ordered
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|r| hosting_json(ctx, &mut names, r))
        .collect()
}

fn one_hosting(ctx: &Ctx<'_>, r: &Rental) -> Response {
    let mut names = Names::new(ctx.db);
    Response::json(200, &hosting_json(ctx, &mut names, r))
}

/// The caller's rental behind a hosting order id, if `id` is one.
pub fn hosting_id(id: i64) -> Option<i64> {
    (id > HOSTING_BASE).then(|| id - HOSTING_BASE)
}

pub fn buy_hosting(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let country = segment(req, "country");
    let product = segment(req, "product");
    let Some(hours) = product_hours(&product) else {
        return fail(400, "no product");
    };
    let country = match find_country(ctx.db, &country) {
        Ok(c) => c,
        Err(e) => return error(&e),
    };
    let rent = RentRequest {
        country: country.id,
        service: HOSTING_SERVICE.into(),
        hours,
        auto_renew: false,
        webhook_url: String::new(),
    };
    let (policy, now) = (ctx.app.policy(), ctx.now());
    match db::write(ctx.db, |tx| rentals::rent(tx, user, &rent, &policy, now)) {
        Ok(r) => one_hosting(ctx, &r),
        Err(e) => error(&e),
    }
}

/// `check`, `finish` and `cancel` of a hosting order.
pub fn hosting_action(ctx: &mut Ctx<'_>, user: &User, rental: i64, action: &str) -> Response {
    let (policy, now) = (ctx.app.policy(), ctx.now());
    let result = match action {
        "check" => rentals::get_for(ctx.db, user.id, rental),
        "finish" => db::write(ctx.db, |tx| match rentals::get_for(tx, user.id, rental)? {
            r if r.status != rentals::Status::Active => Ok(r),
            _ => rentals::finish(tx, user.id, rental, &policy, now),
        }),
        "cancel" => db::write(ctx.db, |tx| rentals::cancel(tx, user.id, rental, now)),
        _ => Err(Error::BadStatus("hosting order".into())),
    };
    match result {
        Ok(r) => one_hosting(ctx, &r),
        Err(Error::BadStatus(m)) if m.contains("first 20 minutes") => fail(400, "order has sms"),
        Err(e) => error(&e),
    }
}

/// `/user/sms/inbox/{id}`: a hosting order's messages, `{"Data":[…],"Total":n}`.
pub fn sms_inbox(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let Some(rental) = req.id_param("id").and_then(hosting_id) else {
        return fail(400, "order not found");
    };
    match rentals::get_for(ctx.db, user.id, rental) {
        Ok(r) => {
            let messages = inbox::for_rental(ctx.db, r.id).unwrap_or_default();
            let data: Vec<Value> = messages.iter().map(sms_json).collect();
            Response::json(200, &json!({"Data": data, "Total": data.len()}))
        }
        Err(e) => error(&e),
    }
}

/// `/user/reuse/{product}/{number}`: the same number again for the same product, when its
/// last order was the caller's and it is free.
pub fn reuse(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let product = segment(req, "product");
    let digits = inbox::digits(&segment(req, "number"));
    let service = match find_product(ctx.db, &product) {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    let number: Option<(i64, i64)> = ctx
        .db
        .prepare_cached("SELECT id, country_id FROM numbers WHERE phone = ?1")
        .and_then(|mut s| {
            use rusqlite::OptionalExtension;
            s.query_row([&digits], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .unwrap_or(None);
    let Some((number_id, country)) = number else {
        return fail(400, "reuse not possible");
    };
    let order = OrderRequest {
        country,
        service: service.code,
        reuse_number: Some(number_id),
        ..Default::default()
    };
    let (policy, now) = (ctx.app.policy(), ctx.now());
    match db::write(ctx.db, |tx| {
        activations::order(tx, user, &order, &policy, now)
    }) {
        Ok(Placed::New(a)) | Ok(Placed::Existing(a)) => {
            ctx.app.notify();
            one_order(ctx, &a)
        }
        Err(e) => error(&e),
    }
}

/// `/user/payments?limit&offset&reverse`: the account's balance movements (its ledger),
/// newest first, as `{"Data":[{"ID","TypeName","ProviderName","Amount","Balance",
/// "CreatedAt"}],"PaymentTypes":[{"Name"}],"PaymentProviders":[{"Name"}],"Total"}`: the
/// newest 1,000 at most, as for orders.
pub fn payments(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let number = |name: &str, default: i64| match req.query_param(name) {
        None => Some(default),
        Some(v) => params::int(v.trim()),
    };
    let (Some(limit), Some(offset)) = (number("limit", 50), number("offset", 0)) else {
        return fail(400, "bad limit");
    };
    let (limit, offset) = (limit.clamp(1, 500), offset.max(0));
    let reverse = req
        .query_param("reverse")
        .and_then(|v| params::flag(v.trim()))
        .unwrap_or(false);
    let digits = currency_digits(&ctx.app.config.currency);
    let list = match crate::domain::market::wallet::entries(
        ctx.db,
        user.id,
        (offset + limit).min(1000),
        None,
    ) {
        Ok(l) => l,
        Err(e) => return error(&e),
    };
    let total = list.len();
    let ordered: Vec<_> = if reverse {
        list.iter().rev().collect()
    } else {
        list.iter().collect()
    };
    let data: Vec<Value> = ordered
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|e| {
            let (t, p) = payment_type(&e.kind, &e.ref_type);
            json!({
                "ID": e.id,
                "TypeName": t,
                "ProviderName": p,
                "Amount": major(e.amount_minor, digits),
                "Balance": major(e.balance_after, digits),
                "CreatedAt": time(e.created_at),
            })
        })
        .collect();
    let names = |list: &[&str]| list.iter().map(|n| json!({"Name": n})).collect::<Vec<_>>();
    Response::json(
        200,
        &json!({
            "Data": data,
            "PaymentTypes": names(&["payment", "charge", "refund", "earning", "payout", "forfeit", "adjustment"]),
            "PaymentProviders": names(&["otpbox", "voucher", "admin", "activation", "rental"]),
            "Total": total,
        }),
    )
}

/// 5sim's payment type and provider of a ledger row.
fn payment_type(kind: &str, ref_type: &str) -> (&'static str, String) {
    let t = match kind {
        "topup" | "voucher" => "payment",
        "charge" => "charge",
        "refund" => "refund",
        "earning" => "earning",
        "payout" => "payout",
        "forfeit" => "forfeit",
        _ => "adjustment",
    };
    let p = match kind {
        "voucher" => "voucher".to_string(),
        "adjustment" => "admin".to_string(),
        _ if !ref_type.is_empty() => ref_type.to_string(),
        _ => "otpbox".to_string(),
    };
    (t, p)
}

/// GET `/user/max-prices`: `[{"id","product","price","CreatedAt"}]`.
pub fn max_prices(ctx: &mut Ctx<'_>, _req: &Request, user: &User) -> Response {
    let digits = currency_digits(&ctx.app.config.currency);
    let list = match caps::list(ctx.db, user.id) {
        Ok(l) => l,
        Err(e) => return error(&e),
    };
    let mut names = Names::new(ctx.db);
    let out: Vec<Value> = list
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "product": names.product(&c.service),
                "price": major(c.price_minor, digits),
                "CreatedAt": time(c.created_at),
            })
        })
        .collect();
    Response::json(200, &out)
}

fn body(req: &Request) -> Result<serde_json::Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(fail(400, "bad request")),
    }
}

/// POST `/user/max-prices` `{"product_name":"telegram","price":11}`: sets a cap.
pub fn set_max_price(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let o = match body(req) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let digits = currency_digits(&ctx.app.config.currency);
    let product = o.get("product_name").and_then(Value::as_str).unwrap_or("");
    let price = match o.get("price") {
        Some(Value::Number(n)) => params::max_price(&n.to_string(), digits),
        Some(Value::String(s)) => params::max_price(s, digits),
        _ => None,
    };
    let Some(price) = price else {
        return fail(400, "bad price");
    };
    let service = match find_product(ctx.db, &product.trim().to_ascii_lowercase()) {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    let now = ctx.now();
    match db::write(ctx.db, |tx| {
        caps::set(tx, user.id, &service.code, price, now)
    }) {
        Ok(()) => max_prices(ctx, req, user),
        Err(e) => error(&e),
    }
}

/// DELETE `/user/max-prices` `{"product_name":"telegram"}`: removes a cap.
pub fn delete_max_price(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let o = match body(req) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let product = o.get("product_name").and_then(Value::as_str).unwrap_or("");
    let service = match find_product(ctx.db, &product.trim().to_ascii_lowercase()) {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    match db::write(ctx.db, |tx| caps::remove(tx, user.id, &service.code)) {
        Ok(true) => max_prices(ctx, req, user),
        Ok(false) => fail(400, "record not found"),
        Err(e) => error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosting_products_are_lengths() {
        assert_eq!(product_hours("1day"), Some(24));
        assert_eq!(product_hours("7days"), Some(168));
        assert_eq!(product_hours("1week"), Some(168));
        assert_eq!(product_hours("12hours"), Some(12));
        assert_eq!(product_hours("1month"), Some(720));
        assert_eq!(product_hours("3hours"), None, "shorter than a rental");
        assert_eq!(product_hours("telegram"), None);
        assert_eq!(product_hours("99999days"), None);
        assert_eq!(product_name(24), "1day");
        assert_eq!(product_name(168), "7days");
        assert_eq!(product_name(12), "12hours");
    }
}
