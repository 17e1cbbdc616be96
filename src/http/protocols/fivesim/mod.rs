//! The 5sim.net REST API v1 (protocols.md §2) under `/v1`, so existing 5sim clients work by
//! changing their base URL. Everything is GET. User endpoints take the same API keys as the
//! native API as `Authorization: Bearer <key>`; guest endpoints need none.
//!
//! Names: countries and products are the catalogue's 5sim names (`russia`, `telegram`; our
//! own service codes such as `tg` are accepted too), operators its operator slugs, and `any`
//! stands for any country or operator. Money is integer minor units inside and a JSON number in
//! major units here. Times are RFC 3339 UTC with fractional seconds.
//!
//! Statuses: a live order is `RECEIVED` (the number is issued and waits for, or has, its SMS;
//! numbers are issued at once, so `PENDING` is never sent), completed is `FINISHED`, cancelled
//! `CANCELED`, cancelled as "number already used" (`ban`) `BANNED`, expired `TIMEOUT`. A live
//! order past its lifetime already shows the status the expiry job is about to give it.
//!
//! Errors are a non-2xx status with a short plain-text body, as 5sim sends them: 401
//! (`unauthorized`) for a missing or unknown key, 400 with `no free phones`, `not enough user
//! balance`, `not enough rating` (too many live orders), `bad country`, `bad operator`,
//! `no product`, `order not found`, `order expired`, `order has sms`, `order no sms`, and
//! `cancel not possible yet` (with `Retry-After`) inside the early-cancel window.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::db;
use crate::domain::accounts::User;
use crate::domain::base::money::{currency_digits, Money};
use crate::domain::market::activations::{self, Activation, CancelReason, OrderBy, Placed, Status};
use crate::domain::market::blocklist::Scope;
use crate::domain::market::catalogue::{self, Country, Service};
use crate::domain::supply::stats;
use crate::domain::{accounts::apikeys, market::inbox, Error};
use crate::http::protocols::params;
use crate::http::router::Router;
use crate::http::Method;
use crate::http::{Ctx, Request, Response};

mod user;

pub fn routes(r: &mut Router) {
    use Method::{Delete, Get, Post};
    r.publics(&[
        (Get, "/v1/guest/countries", guest_countries),
        (
            Get,
            "/v1/guest/products/{country}/{operator}",
            guest_products,
        ),
        (Get, "/v1/guest/prices", guest_prices),
    ]);
    r.fivesims(&[
        (Get, "/v1/user/profile", profile),
        (
            Get,
            "/v1/user/buy/activation/{country}/{operator}/{product}",
            buy_activation,
        ),
        (Get, "/v1/user/check/{id}", check),
        (Get, "/v1/user/finish/{id}", finish),
        (Get, "/v1/user/cancel/{id}", cancel),
        (Get, "/v1/user/ban/{id}", ban),
        (Get, "/v1/user/orders", orders),
        (
            Get,
            "/v1/user/buy/hosting/{country}/{operator}/{product}",
            user::buy_hosting,
        ),
        (Get, "/v1/user/reuse/{product}/{number}", user::reuse),
        (Get, "/v1/user/sms/inbox/{id}", user::sms_inbox),
        (Get, "/v1/user/payments", user::payments),
        (Get, "/v1/user/max-prices", user::max_prices),
        (Post, "/v1/user/max-prices", user::set_max_price),
        (Delete, "/v1/user/max-prices", user::delete_max_price),
    ]);
}

/// `any`: any country or any operator.
const ANY: &str = "any";
/// The 5sim text for a cancel refused inside the early-cancel window.
pub const EARLY_CANCEL: &str = "cancel not possible yet";
/// 5sim's rating tops out at 96; we do not lower it (the live-order limit plays its part).
const RATING: i64 = 96;

/// A 5sim error: the status and a short plain-text body.
fn fail(status: u16, text: &str) -> Response {
    Response::text(status, text)
}

/// The 5sim form of the router's own errors (404, 405, a panic's 500).
pub fn plain_error(status: u16) -> Response {
    let text = match status {
        401 => "unauthorized",
        404 => "not found",
        405 => "method not allowed",
        429 => "too many requests",
        503 => "server offline",
        s if s >= 500 => "internal error",
        _ => "bad request",
    };
    fail(status, text)
}

/// A domain error as 5sim words it.
fn error(e: &Error) -> Response {
    match e {
        Error::NoNumbers | Error::WrongMaxPrice { .. } => fail(400, "no free phones"),
        Error::NoBalance => fail(400, "not enough user balance"),
        Error::Limit => fail(400, "not enough rating"),
        Error::BadCountry => fail(400, "bad country"),
        Error::WrongOperator => fail(400, "bad operator"),
        Error::BadService => fail(400, "no product"),
        // An admin's block reads like a country or product this site does not sell, which
        // clients already treat as "do not retry".
        Error::Blocked(Scope::Country) => fail(400, "bad country"),
        Error::Blocked(_) => fail(400, "no product"),
        Error::NotFound(_) => fail(400, "order not found"),
        Error::EarlyCancel { seconds_left } => {
            fail(400, EARLY_CANCEL).with_header("Retry-After", &seconds_left.max(&1).to_string())
        }
        Error::Throttled { retry_after } => {
            fail(429, "too many requests").with_header("Retry-After", &retry_after.to_string())
        }
        Error::Forbidden(m) => fail(403, &m.to_lowercase()),
        Error::Invalid(m) | Error::Conflict(m) | Error::BadStatus(m) => fail(400, m),
        Error::Busy => fail(503, "server offline"),
        Error::Db(inner) => {
            log::error!("database error in the 5sim API: {inner}");
            fail(500, "internal error")
        }
        Error::Internal(m) => {
            log::error!("internal error in the 5sim API: {m}");
            fail(500, "internal error")
        }
    }
}

/// [`Access::FiveSimKey`](crate::http::router::Access::FiveSimKey): the account behind the bearer key.
pub fn caller(ctx: &mut Ctx<'_>, req: &Request) -> Result<User, Response> {
    let Some(key) = req.bearer() else {
        return Err(fail(401, "unauthorized"));
    };
    let user = apikeys::authenticate(ctx.db, &ctx.app.keys, key, ctx.now())
        .map_err(|e| error(&e))?
        .ok_or_else(|| fail(401, "unauthorized"))?;
    if !user.is_active() {
        return Err(fail(403, "account is not active"));
    }
    Ok(user)
}

macro_rules! try_or_return {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return error(&e),
        }
    };
}

/// Minor units as a JSON number in major units: an integer when whole (`21`), else the
/// shortest decimal (`0.35`). The only float, made at the edge.
fn major(minor: i64, digits: u32) -> Value {
    let scale = 10i64.pow(digits);
    if minor % scale == 0 {
        json!(minor / scale)
    } else {
        json!(minor as f64 / scale as f64)
    }
}

/// RFC 3339 in UTC with fractional seconds (`2018-10-13T08:28:38.000000Z`).
pub fn time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_default()
}

/// 5sim names of catalogue rows, looked up once per reply.
struct Names<'c> {
    conn: &'c rusqlite::Connection,
    countries: HashMap<i64, String>,
    services: HashMap<String, String>,
}

impl<'c> Names<'c> {
    fn new(conn: &'c rusqlite::Connection) -> Names<'c> {
        Names {
            conn,
            countries: HashMap::new(),
            services: HashMap::new(),
        }
    }

    fn country(&mut self, id: i64) -> String {
        if let Some(n) = self.countries.get(&id) {
            return n.clone();
        }
        let name = catalogue::country(self.conn, id)
            .ok()
            .flatten()
            .map(|c| c.fivesim_name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| id.to_string());
        self.countries.insert(id, name.clone());
        name
    }

    fn product(&mut self, code: &str) -> String {
        if let Some(n) = self.services.get(code) {
            return n.clone();
        }
        let name = catalogue::service(self.conn, code)
            .ok()
            .flatten()
            .map(|s| s.fivesim_name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| code.to_string());
        self.services.insert(code.to_string(), name.clone());
        name
    }
}

fn operator_name(op: &str) -> &str {
    if op.is_empty() {
        ANY
    } else {
        op
    }
}

/// The 5sim status of an order at `now`.
fn status_of(conn: &rusqlite::Connection, a: &Activation, now: i64) -> &'static str {
    match a.status {
        Status::Waiting | Status::Received | Status::Retry => {
            if now < a.expires_at {
                "RECEIVED"
            } else if a.code_at.is_some() {
                "FINISHED"
            } else {
                "TIMEOUT"
            }
        }
        Status::Completed => "FINISHED",
        Status::Expired => "TIMEOUT",
        Status::Canceled => {
            if activations::ended_as_used(conn, a.id).unwrap_or(false) {
                "BANNED"
            } else {
                "CANCELED"
            }
        }
    }
}

/// The order JSON of §2.3. `sms` is always present: null until a message arrives.
fn order_json(ctx: &Ctx<'_>, names: &mut Names<'_>, a: &Activation) -> Value {
    let digits = currency_digits(&ctx.app.config.currency);
    let messages = inbox::for_activation(ctx.db, a.id).unwrap_or_default();
    let sms: Value = if messages.is_empty() {
        Value::Null
    } else {
        messages
            .iter()
            .map(|m| {
                json!({
                    "created_at": time(m.received_at),
                    "date": time(m.received_at),
                    "sender": m.sender,
                    "text": m.text,
                    "code": m.code.clone().unwrap_or_default(),
                })
            })
            .collect()
    };
    json!({
        "id": a.id,
        "phone": format!("+{}", inbox::digits(&a.phone)),
        "operator": operator_name(&a.operator),
        "product": names.product(&a.service),
        "price": major(a.price_minor, digits),
        "status": status_of(ctx.db, a, ctx.now()),
        "expires": time(a.expires_at),
        "sms": sms,
        "created_at": time(a.created_at),
        "forwarding": false,
        "forwarding_number": "",
        "country": names.country(a.country_id),
    })
}

fn one_order(ctx: &Ctx<'_>, a: &Activation) -> Response {
    let mut names = Names::new(ctx.db);
    Response::json(200, &order_json(ctx, &mut names, a))
}

/// A path segment, decoded by the router, trimmed and lower-cased.
fn segment(req: &Request, name: &str) -> String {
    req.param(name).unwrap_or("").trim().to_ascii_lowercase()
}

/// An enabled country by 5sim name.
fn find_country(conn: &rusqlite::Connection, name: &str) -> Result<Country, Error> {
    match catalogue::country_by_fivesim(conn, name)? {
        Some(c) if c.enabled => Ok(c),
        _ => Err(Error::BadCountry),
    }
}

/// An enabled service by 5sim name, or by our own code.
fn find_product(conn: &rusqlite::Connection, name: &str) -> Result<Service, Error> {
    let found = match catalogue::service_by_fivesim(conn, name)? {
        Some(s) => Some(s),
        None => catalogue::service(conn, name)?,
    };
    match found {
        Some(s) if s.enabled => Ok(s),
        _ => Err(Error::BadService),
    }
}

/// Everything the guest endpoints show, read once per request.
struct Catalogue {
    countries: Vec<Country>,
    services: Vec<Service>,
    /// country id → operator slugs.
    operators: HashMap<i64, Vec<String>>,
    prices: HashMap<(i64, String, String), i64>,
    stock: catalogue::Stock,
    digits: u32,
}

impl Catalogue {
    fn load(ctx: &Ctx<'_>) -> Result<Catalogue, Error> {
        let mut operators: HashMap<i64, Vec<String>> = HashMap::new();
        for o in catalogue::operators(ctx.db, None)? {
            operators.entry(o.country_id).or_default().push(o.code);
        }
        Ok(Catalogue {
            countries: catalogue::countries(ctx.db)?
                .into_iter()
                .filter(|c| c.enabled && !c.fivesim_name.is_empty())
                .collect(),
            services: catalogue::services(ctx.db)?
                .into_iter()
                .filter(|s| s.enabled && !s.fivesim_name.is_empty())
                .collect(),
            operators,
            prices: catalogue::price_table(ctx.db)?,
            stock: catalogue::stock(ctx.db, ctx.app.config.reuse_cooldown, ctx.now())?,
            digits: currency_digits(&ctx.app.config.currency),
        })
    }

    fn operators_of(&self, country: i64) -> &[String] {
        self.operators
            .get(&country)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The price of an activation (None: not sold there), as `catalogue::price` finds it,
    /// or the cheapest upstream price when only upstream providers have stock.
    fn price(&self, country: i64, service: &str, operator: Option<&str>) -> Option<i64> {
        let base = self
            .prices
            .get(&(country, service.to_string(), String::new()))
            .copied()?;
        let price = operator
            .and_then(|op| {
                self.prices
                    .get(&(country, service.to_string(), op.to_string()))
                    .copied()
            })
            .unwrap_or(base);
        Some(self.stock.shown_price(country, operator, service, price))
    }

    /// Operator keys of a country in the price list: `any` and the catalogue's operators.
    fn price_operators(&self, country: i64) -> Vec<Option<&str>> {
        std::iter::once(None)
            .chain(self.operators_of(country).iter().map(|o| Some(o.as_str())))
            .collect()
    }
}

/// One country in `/guest/countries`: the four documented fields first (clients read the
/// operators as the keys after them), then each operator.
#[derive(Serialize)]
struct CountryEntry {
    iso: BTreeMap<String, u8>,
    prefix: BTreeMap<String, u8>,
    text_en: String,
    text_ru: String,
    #[serde(flatten)]
    operators: BTreeMap<String, Value>,
}

fn guest_countries(ctx: &mut Ctx<'_>, _req: &Request) -> Response {
    let cat = try_or_return!(Catalogue::load(ctx));
    let mut out: BTreeMap<String, CountryEntry> = BTreeMap::new();
    for c in &cat.countries {
        let mut operators = BTreeMap::new();
        operators.insert(ANY.to_string(), json!({"activation": 1}));
        for op in cat.operators_of(c.id) {
            operators.insert(op.clone(), json!({"activation": 1}));
        }
        out.insert(
            c.fivesim_name.clone(),
            CountryEntry {
                iso: BTreeMap::from([(c.iso.clone(), 1)]),
                prefix: BTreeMap::from([(format!("+{}", c.prefix), 1)]),
                text_en: c.name.clone(),
                text_ru: c.name.clone(),
                operators,
            },
        );
    }
    Response::json(200, &out)
}

/// `/guest/products/{country}/{operator}`: product → `{Category, Qty, Price}`. With `any`
/// country, the lowest price and the total stock over the countries.
fn guest_products(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    let country = segment(req, "country");
    let operator = segment(req, "operator");
    let cat = try_or_return!(Catalogue::load(ctx));
    let countries: Vec<i64> = if country == ANY {
        cat.countries.iter().map(|c| c.id).collect()
    } else {
        vec![try_or_return!(find_country(ctx.db, &country)).id]
    };
    let op = (operator != ANY).then_some(operator.as_str());
    if let Some(op) = op {
        if !countries
            .iter()
            .any(|c| cat.operators_of(*c).iter().any(|o| o == op))
        {
            return error(&Error::WrongOperator);
        }
    }
    let mut out = Map::new();
    for s in &cat.services {
        let mut best: Option<i64> = None;
        let mut qty = 0;
        for &c in &countries {
            if op.is_some_and(|op| !cat.operators_of(c).iter().any(|o| o == op)) {
                continue;
            }
            if let Some(p) = cat.price(c, &s.code, op) {
                best = Some(best.map_or(p, |b: i64| b.min(p)));
                qty += cat.stock.get(c, op, &s.code);
            }
        }
        if let Some(p) = best {
            out.insert(
                s.fivesim_name.clone(),
                json!({"Category": "activation", "Qty": qty, "Price": major(p, cat.digits)}),
            );
        }
    }
    // Hosting (rentals) in one country, any operator.
    if let ([c], None) = (countries.as_slice(), op) {
        let qty = cat.stock.get(*c, None, "ot");
        for (name, _, price) in user::hosting_products(ctx.db, *c) {
            out.insert(
                name,
                json!({"Category": "hosting", "Qty": qty, "Price": major(price, cat.digits)}),
            );
        }
    }
    Response::json(200, &out)
}

/// `/guest/prices[?country=][&product=]`: country → product → operator →
/// `{cost, count, rate, success_rate, success_orders}`; with `product` alone, product →
/// country → operator → …. The rates are the 7-day ones of `supply::stats` (cached, never a
/// scan of orders): `rate` (5sim's field) only from 10 orders, `success_rate` the same
/// percent or null ("new"), `success_orders` how many orders it is over.
fn guest_prices(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    let want_country = req
        .query_param("country")
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != ANY);
    let want_product = req
        .query_param("product")
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| !p.is_empty());
    let country_filter = match &want_country {
        Some(name) => Some(try_or_return!(find_country(ctx.db, name)).id),
        None => None,
    };
    let product_filter = match &want_product {
        Some(name) => Some(try_or_return!(find_product(ctx.db, name)).code),
        None => None,
    };
    let cat = try_or_return!(Catalogue::load(ctx));
    let rates = try_or_return!(match country_filter {
        Some(id) => stats::success_in(ctx.db, id),
        None => stats::success_table(ctx.db),
    });
    // (country name, product name, operators)
    let mut cells: Vec<(String, String, Map<String, Value>)> = Vec::new();
    for c in &cat.countries {
        if country_filter.is_some_and(|id| id != c.id) {
            continue;
        }
        for s in &cat.services {
            if product_filter.as_deref().is_some_and(|code| code != s.code) {
                continue;
            }
            if cat.price(c.id, &s.code, None).is_none() {
                continue;
            }
            let success = rates.get(c.id, &s.code);
            let mut ops = Map::new();
            for op in cat.price_operators(c.id) {
                let price = cat.price(c.id, &s.code, op).unwrap_or(0);
                let mut cell = json!({
                    "cost": major(price, cat.digits),
                    "count": cat.stock.get(c.id, op, &s.code),
                });
                if let Some(p) = success.percent() {
                    cell["rate"] = json!(p as f64);
                }
                // Flat values only: 5sim clients parse every object of this answer as a
                // country, product or operator level.
                cell["success_rate"] = json!(success.percent());
                cell["success_orders"] = json!(success.orders);
                ops.insert(op.unwrap_or(ANY).to_string(), cell);
            }
            cells.push((c.fivesim_name.clone(), s.fivesim_name.clone(), ops));
        }
    }
    let by_product = want_product.is_some() && want_country.is_none();
    let mut out: BTreeMap<String, BTreeMap<String, Map<String, Value>>> = BTreeMap::new();
    for (country, product, ops) in cells {
        let (outer, inner) = if by_product {
            (product, country)
        } else {
            (country, product)
        };
        out.entry(outer).or_default().insert(inner, ops);
    }
    // A filter that matched nothing still names what was asked for.
    if out.is_empty() {
        let key = if by_product {
            want_product
        } else {
            want_country
        };
        if let Some(k) = key {
            out.insert(k, BTreeMap::new());
        }
    }
    Response::json(200, &out)
}

fn profile(ctx: &mut Ctx<'_>, _req: &Request, user: &User) -> Response {
    let digits = currency_digits(&ctx.app.config.currency);
    let live = try_or_return!(activations::count_live(ctx.db, user.id));
    let recent = try_or_return!(activations::list_before(ctx.db, user.id, &[], None, 100));
    let mut names = Names::new(ctx.db);
    let describe = |names: &mut Names<'_>, a: &Activation| {
        format!(
            "{}:{}:{}:{}:{}",
            names.country(a.country_id),
            names.product(&a.service),
            operator_name(&a.operator),
            a.id,
            Money(a.price_minor).decimal(digits)
        )
    };
    // The country of the last order, else the first one on sale.
    let home = match recent.first() {
        Some(a) => try_or_return!(catalogue::country(ctx.db, a.country_id)),
        None => None,
    };
    let home = match home {
        Some(c) => Some(c),
        None => try_or_return!(catalogue::countries(ctx.db))
            .into_iter()
            .filter(|c| c.enabled)
            .min_by_key(|c| c.id),
    };
    let default_country = match &home {
        Some(c) => {
            json!({"name": c.fivesim_name, "iso": c.iso, "prefix": format!("+{}", c.prefix)})
        }
        None => json!({"name": ANY, "iso": "", "prefix": ""}),
    };
    // Clients split these strings on ':' and ','; with no order yet they still get one
    // well-formed entry.
    let placeholder = format!(
        "{}:{ANY}:{ANY}:0:0",
        home.as_ref()
            .map(|c| c.fivesim_name.as_str())
            .unwrap_or(ANY)
    );
    let last_order = match recent.first() {
        Some(a) => describe(&mut names, a),
        None => placeholder.clone(),
    };
    // The most ordered (country, product, operator) of the last 100 orders, each with its
    // latest order, most frequent first.
    let mut counts: Vec<((i64, String, String), usize, &Activation)> = Vec::new();
    for a in &recent {
        let k = (a.country_id, a.service.clone(), a.operator.clone());
        match counts.iter_mut().find(|(key, _, _)| *key == k) {
            Some(entry) => entry.1 += 1,
            None => counts.push((k, 1, a)),
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    let top: Vec<String> = counts
        .iter()
        .take(5)
        .map(|(_, _, a)| describe(&mut names, a))
        .collect();
    let top = if top.is_empty() {
        vec![placeholder]
    } else {
        top
    };
    Response::json(
        200,
        &json!({
            "id": user.id,
            "email": user.email,
            "vendor": "",
            "default_forwarding_number": "",
            "balance": major(user.balance_minor, digits),
            "rating": RATING,
            "default_country": default_country,
            "default_operator": {"name": ""},
            "frozen_balance": 0,
            "did_order": !recent.is_empty(),
            "last_order": last_order,
            "last_top_orders": format!("[{}]", top.join(",")),
            "last_top_idx": 0,
            "total_active_orders": live,
        }),
    )
}

fn buy_activation(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let country = segment(req, "country");
    let operator = segment(req, "operator");
    let product = segment(req, "product");
    let digits = currency_digits(&ctx.app.config.currency);
    let service = try_or_return!(find_product(ctx.db, &product));
    // maxPrice counts only with operator `any` (as on 5sim); elsewhere it is ignored.
    let max_price = match req.query_param("maxPrice").filter(|m| !m.trim().is_empty()) {
        Some(m) if operator == ANY => match params::max_price(&m, digits) {
            Some(v) => Some(v),
            None => return fail(400, "bad max price"),
        },
        _ => None,
    };
    // Without a maxPrice of its own, the account's cap for the product (`max-prices`).
    let max_price = match max_price {
        Some(m) => Some(m),
        None => try_or_return!(crate::domain::market::caps::get(
            ctx.db,
            user.id,
            &service.code
        )),
    };
    // `any` country: the countries selling the product, cheapest first.
    let countries: Vec<i64> = if country == ANY {
        let mut offers = try_or_return!(catalogue::offers(
            ctx.db,
            None,
            Some(&service.code),
            ctx.app.config.reuse_cooldown,
            ctx.now()
        ));
        offers.sort_by_key(|o| (o.price_minor, -o.stock, o.country));
        offers.into_iter().map(|o| o.country).collect()
    } else {
        vec![try_or_return!(find_country(ctx.db, &country)).id]
    };
    let op = (operator != ANY).then_some(operator);
    let many = countries.len() > 1;
    let alternatives: Vec<activations::OrderRequest> = countries
        .iter()
        .map(|&c| activations::OrderRequest {
            country: c,
            service: service.code.clone(),
            operator: op.clone(),
            max_price_minor: max_price,
            ..Default::default()
        })
        .collect();
    // With `any` country, the next one is tried.
    let placed = ctx.place_order(user, &alternatives, |e| {
        many && matches!(
            e,
            Error::NoNumbers | Error::WrongMaxPrice { .. } | Error::WrongOperator
        )
    });
    match placed {
        Ok(Placed::New(a)) | Ok(Placed::Existing(a)) => one_order(ctx, &a),
        Err(e) => error(&e),
    }
}

fn order_id(req: &Request) -> Result<i64, Response> {
    req.id_param("id")
        .ok_or_else(|| error(&Error::NotFound("order")))
}

fn check(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let id = match order_id(req) {
        Ok(id) => id,
        Err(r) => return r,
    };
    if let Some(rental) = user::hosting_id(id) {
        return user::hosting_action(ctx, user, rental, "check");
    }
    match activations::get_for(ctx.db, user.id, id) {
        Ok(a) => one_order(ctx, &a),
        Err(e) => error(&e),
    }
}

/// Runs `f` on the caller's order in one transaction and answers with the order.
fn act(
    ctx: &mut Ctx<'_>,
    req: &Request,
    user: &User,
    f: impl FnOnce(&rusqlite::Connection, &Activation, i64) -> Result<Activation, Error> + Send,
) -> Response {
    let id = match order_id(req) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let now = ctx.now();
    let result = db::write(ctx.db, |tx| {
        let a = activations::get_for(tx, user.id, id)?;
        f(tx, &a, now)
    });
    match result {
        Ok(a) => {
            ctx.app.notify();
            one_order(ctx, &a)
        }
        Err(e) => error(&e),
    }
}

fn bad(text: &str) -> Error {
    Error::BadStatus(text.to_string())
}

fn finish(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    if let Some(rental) = req.id_param("id").and_then(user::hosting_id) {
        return user::hosting_action(ctx, user, rental, "finish");
    }
    let policy = ctx.app.policy();
    act(ctx, req, user, |tx, a, now| match a.status {
        Status::Completed => Ok(a.clone()),
        Status::Expired => Err(bad("order expired")),
        Status::Canceled => Err(bad("order no sms")),
        Status::Waiting | Status::Received | Status::Retry => {
            if a.code_at.is_none() {
                if now >= a.expires_at {
                    Err(bad("order expired"))
                } else {
                    Err(bad("order no sms"))
                }
            } else {
                activations::complete(tx, a.user_id, a.id, &policy, now)
            }
        }
    })
}

/// `cancel` and `ban`: refunded, refused once a code has arrived or the order has ended.
fn end(ctx: &mut Ctx<'_>, req: &Request, user: &User, reason: CancelReason) -> Response {
    let policy = ctx.app.policy();
    act(ctx, req, user, |tx, a, now| match a.status {
        // Already off: the order as it is (a retried cancel succeeds).
        Status::Canceled => Ok(a.clone()),
        Status::Expired => Err(bad("order expired")),
        Status::Completed => Err(bad("order has sms")),
        Status::Waiting | Status::Received | Status::Retry => {
            if a.code_at.is_some() {
                Err(bad("order has sms"))
            } else if now >= a.expires_at {
                Err(bad("order expired"))
            } else {
                activations::cancel(tx, a.user_id, a.id, reason, &policy, now)
            }
        }
    })
}

fn cancel(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    if let Some(rental) = req.id_param("id").and_then(user::hosting_id) {
        return user::hosting_action(ctx, user, rental, "cancel");
    }
    end(ctx, req, user, CancelReason::Cancel)
}

/// `ban`: the number was already used at the service: cancelled, refunded, and the number is
/// never offered for that service again.
fn ban(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    end(ctx, req, user, CancelReason::NumberUsed)
}

/// `/user/orders?category=activation|hosting&limit&offset&order&reverse`: a page of the
/// account's [`activations::RECENT_WINDOW`] newest orders; `Total` counts those.
fn orders(ctx: &mut Ctx<'_>, req: &Request, user: &User) -> Response {
    let category = req
        .query_param("category")
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_else(|| "activation".into());
    // Present but not what the parameter takes: 400 in 5sim's words, never the default.
    let number = |name: &str, default: i64| match req.query_param(name) {
        None => Some(default),
        Some(v) => params::int(v.trim()),
    };
    let Some(limit) = number("limit", 50) else {
        return fail(400, "bad limit");
    };
    let Some(offset) = number("offset", 0) else {
        return fail(400, "bad offset");
    };
    let (limit, offset) = (limit.clamp(1, 500), offset.max(0));
    let by = match req
        .query_param("order")
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "" | "id" | "date" | "created_at" => OrderBy::Id,
        "price" => OrderBy::Price,
        "status" => OrderBy::Status,
        "product" => OrderBy::Service,
        "country" => OrderBy::Country,
        "expires" => OrderBy::Expires,
        _ => return fail(400, "bad order"),
    };
    let reverse = match req.query_param("reverse") {
        None => false,
        Some(v) => match params::flag(v.trim()) {
            Some(r) => r,
            None => return fail(400, "bad reverse"),
        },
    };
    let (data, total) = match category.as_str() {
        "activation" => {
            // The newest RECENT_WINDOW orders, sorted and counted (README "5sim-compatible API").
            let list = try_or_return!(activations::page_recent(
                ctx.db, user.id, by, reverse, limit, offset
            ));
            let total = try_or_return!(activations::count_recent(ctx.db, user.id));
            let mut names = Names::new(ctx.db);
            let data: Vec<Value> = list
                .iter()
                .map(|a| order_json(ctx, &mut names, a))
                .collect();
            (data, total)
        }
        // Rentals, newest first: the newest 1,000 at most (as for activations' window).
        "hosting" => {
            let list = try_or_return!(crate::domain::market::rentals::list(
                ctx.db,
                user.id,
                false,
                (offset + limit).min(1000)
            ));
            let total = list.len() as i64;
            let data = user::hosting_page(ctx, &list, offset, limit, reverse);
            (data, total)
        }
        _ => return fail(400, "bad category"),
    };
    Response::json(
        200,
        &json!({"Data": data, "ProductNames": [], "Statuses": [], "Total": total}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_a_number_in_major_units() {
        assert_eq!(major(2100, 2).to_string(), "21");
        assert_eq!(major(35, 2).to_string(), "0.35");
        assert_eq!(major(1999, 2).to_string(), "19.99");
        assert_eq!(major(7, 0).to_string(), "7");
        assert_eq!(major(0, 2).to_string(), "0");
    }

    #[test]
    fn times_have_fractional_seconds_in_utc() {
        assert_eq!(time(86_400), "1970-01-02T00:00:00.000000Z");
    }

    #[test]
    fn router_errors_are_plain_text() {
        let r = plain_error(404);
        assert_eq!(r.status, 404);
        assert_eq!(r.body, b"not found");
        assert!(r.header("Content-Type").unwrap().starts_with("text/plain"));
    }
}
