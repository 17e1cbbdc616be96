//! The SMS-Activate `handler_api.php` protocol (protocols.md §1) at `/stubs/handler_api.php`,
//! so that existing bots and client libraries work by changing only their base URL.
//!
//! One URL, GET or POST; `action`, `api_key` and the other parameters come from the query
//! string or a form body (aiosmsactivate POSTs everything in the query with an empty body).
//! Parameter names are compared trimmed, because aiosmsactivate sends `"time "` and friends
//! with a trailing space. Unknown parameters are ignored.
//!
//! Every answer is HTTP 200: a bare or colon-separated text token (`NO_NUMBERS`,
//! `ACCESS_NUMBER:id:phone`) or JSON with exactly `Content-Type: application/json`. Classic
//! clients treat any status ≥ 400 as a network failure and would lose the token. Domain errors
//! become tokens in one place, [`token`]. Money is converted from integer minor units to
//! decimal major units only here. Where the sources disagree (protocols.md §6), every variant
//! is accepted and the reply takes the form most clients parse.
//!
//! Two clones' clients need what the classic ones cannot parse, so the same protocol is also
//! served in their flavour at its own path (protocols.md §6.1, §6.3): [`HEROSMS_PATH`]
//! answers errors as HTTP 4xx with a JSON `{"title","details"}` body (401 for a key, 402 for
//! the balance, 404 for no numbers or no order, 409 for a state conflict, 400 otherwise), and
//! [`GRIZZLY_PATH`] answers getActiveActivations with a bare list.

use rusqlite::Connection;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{json, Value};

use crate::app::App;
use crate::clock::{format_datetime, Timestamp};
use crate::db;
use crate::domain::accounts::{State, User};
use crate::domain::base::money::{currency_digits, currency_numeric, Money};
use crate::domain::market::activations::{
    self, Activation, CancelReason, OrderRequest, Placed, Status,
};
use crate::domain::market::blocklist::Scope;
use crate::domain::market::catalogue::{self, Offer};
use crate::domain::market::rentals::{self, RentRequest, Rental, MAX_HOURS, MIN_HOURS};
use crate::domain::{accounts::apikeys, market::inbox, Error};
use crate::http::protocols::params;
use crate::http::router::Router;
use crate::http::server::longpoll;
use crate::http::{Ctx, Method, Request, Response};

pub const PATH: &str = "/stubs/handler_api.php";
/// The protocol as HeroSMS's clients expect it: errors as HTTP 4xx JSON.
pub const HEROSMS_PATH: &str = "/herosms/stubs/handler_api.php";
/// The protocol as Grizzly's clients expect it: getActiveActivations as a bare list.
pub const GRIZZLY_PATH: &str = "/grizzly/stubs/handler_api.php";

pub fn routes(r: &mut Router) {
    for path in [PATH, HEROSMS_PATH, GRIZZLY_PATH] {
        r.actions(Method::Get, path, handle);
        r.actions(Method::Post, path, handle);
    }
}

/// Which clone's clients a request's path serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Classic,
    HeroSms,
    Grizzly,
}

fn handle(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    let flavour = match req.path.as_str() {
        HEROSMS_PATH => Flavour::HeroSms,
        GRIZZLY_PATH => Flavour::Grizzly,
        _ => Flavour::Classic,
    };
    let reply = handle_classic(ctx, req, flavour);
    match flavour {
        Flavour::HeroSms => herosms_errors(reply),
        _ => reply,
    }
}

/// The HTTP status HeroSMS gives an error token, or `None` for a token that is an answer.
fn herosms_status(token: &str) -> Option<u16> {
    Some(match token {
        "NO_KEY" | "BAD_KEY" => 401,
        "NO_BALANCE" | "NO_BALANCE_FORWARD" => 402,
        "BANNED" => 403,
        "NO_NUMBERS" | "NO_ACTIVATION" | "NO_ACTIVATIONS" | "NO_ID_RENT" | "INVALID_PHONE" => 404,
        "EARLY_CANCEL_DENIED"
        | "BAD_STATUS"
        | "ORDER_ALREADY_EXISTS"
        | "ALREADY_CANCEL"
        | "ALREADY_FINISH"
        | "RENT_DIE"
        | "INCORECT_STATUS" => 409,
        "ERROR_SQL" => 500,
        t if t.starts_with("ACCESS_") || t.starts_with("STATUS_") || t.starts_with("FULL_SMS") => {
            return None
        }
        "OPERATORS_NOT_FOUND" => return None,
        t if !t.is_empty() && t.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') => 400,
        _ => return None,
    })
}

/// A classic error reply (a text token, or the rent API's `{"status":"error",…}`) as HeroSMS
/// answers it: the status of [`herosms_status`] and `{"title": TOKEN, "details": …}`.
fn herosms_errors(reply: Response) -> Response {
    if reply.status != 200 || reply.wait.is_some() {
        return reply;
    }
    let body = String::from_utf8_lossy(&reply.body).into_owned();
    let (token, details) = if body.starts_with('{') {
        match serde_json::from_str::<Value>(&body) {
            Ok(v) if v["status"] == "error" => {
                let t = v["message"]
                    .as_str()
                    .or(v["error"].as_str())
                    .unwrap_or("")
                    .to_string();
                (t.clone(), t)
            }
            _ => return reply,
        }
    } else {
        let t = body.split(':').next().unwrap_or("").trim().to_string();
        (t, body.trim().to_string())
    };
    match herosms_status(&token) {
        Some(status) => Response::json(status, &json!({"title": token, "details": details})),
        None => reply,
    }
}

/// SMS-Activate's default country when a request names none (Russia).
const DEFAULT_COUNTRY: i64 = 0;

/// Default rental length in hours when a request names none.
const DEFAULT_RENT_HOURS: i64 = 4;

/// The date shown in `BANNED:'…'`: our suspensions have no end.
const BANNED_UNTIL: &str = "'9999-12-31 23-59-59'";

type Action = fn(&mut Ctx<'_>, &User, &Params) -> Response;

fn handle_classic(ctx: &mut Ctx<'_>, req: &Request, flavour: Flavour) -> Response {
    let mut p = Params::of(req);
    p.flavour = flavour;
    let action = p.one("action").unwrap_or("");
    // The catalogue actions work without a key (as on HeroSMS); a key sent along is ignored.
    match action {
        "getCountries" => return get_countries(ctx, &p),
        "getServicesList" => return get_services_list(ctx, &p),
        "getOperators" => return get_operators(ctx, &p),
        _ => {}
    }
    let Some(run) = keyed_action(action, &p) else {
        return text("BAD_ACTION");
    };
    match authenticate(ctx, &p) {
        Ok(user) => run(ctx, &user, &p),
        Err(reply) => reply,
    }
}

fn keyed_action(action: &str, p: &Params) -> Option<Action> {
    Some(match action {
        "getBalance" | "getBalanceAndCashBack" => get_balance,
        "getNumbersStatus" => get_numbers_status,
        "getTopCountriesByService" => get_top_countries,
        "getPrices" => get_prices,
        "getPricesV2" => get_prices_v2,
        "getPricesV3" => get_prices_v3,
        "getNumber" => get_number,
        "getNumberV2" => get_number_v2,
        "getMultiServiceNumber" => get_multi_service_number,
        "getStatus" => get_status,
        "getStatusV2" => get_status_v2,
        "setStatus" => set_status,
        "getFullSms" => get_full_sms,
        "getActiveActivations" => get_active_activations,
        "getHistory" => get_history,
        "getRentServicesAndCountries" => get_rent_services,
        "serviceCountRent" => service_count_rent,
        "getRentNumber" => get_rent_number,
        // aiosmsactivate's `set_rent_status` sends action=getRentStatus with a `status`: a
        // status parameter means nothing to getRentStatus, so it is read as the set it meant.
        "getRentStatus" if p.one("status").is_some() => set_rent_status,
        "getRentStatus" => get_rent_status,
        "setRentStatus" => set_rent_status,
        "getRentList" => get_rent_list,
        "continueRentNumber" => continue_rent,
        "getContinueRentPriceNumber" => continue_rent_price,
        _ => return None,
    })
}

/// The account behind `api_key`: `NO_KEY`, `BAD_KEY`, or `BANNED:…` for a blocked account.
fn authenticate(ctx: &mut Ctx<'_>, p: &Params) -> Result<User, Response> {
    let Some(key) = p.one("api_key") else {
        return Err(text("NO_KEY"));
    };
    let user = apikeys::authenticate(ctx.db, &ctx.app.keys, key, ctx.now())
        .map_err(|e| fail(ctx, &e, Topic::Activation))?
        .ok_or_else(|| text("BAD_KEY"))?;
    match user.state {
        State::Active => Ok(user),
        State::Suspended | State::Terminated => Err(text(format!("BANNED:{BANNED_UNTIL}"))),
        State::Deleted => Err(text("BAD_KEY")),
    }
}

// ---------------------------------------------------------------------------------------
// Parameters and replies

/// Request parameters: the query string first, then a form body; names and values trimmed.
struct Params {
    pairs: Vec<(String, String)>,
    flavour: Flavour,
}

impl Params {
    fn of(req: &Request) -> Params {
        Params {
            pairs: req.api_params().to_vec(),
            flavour: Flavour::Classic,
        }
    }

    /// The first non-empty value under any of `names`.
    fn any(&self, names: &[&str]) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, v)| !v.is_empty() && names.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
    }

    fn one(&self, name: &str) -> Option<&str> {
        self.any(&[name])
    }

    /// An id: `None` when absent or not a whole number (then nothing has that id).
    fn int(&self, name: &str) -> Option<i64> {
        params::int(self.one(name)?)
    }

    /// A whole number, `default` when absent; `Err` when present but not a whole number
    /// (the caller answers `ERROR_SQL`, the protocol's "a parameter has an invalid value").
    fn int_or(&self, name: &str, default: i64) -> Result<i64, Response> {
        match self.one(name) {
            None => Ok(default),
            Some(v) => params::int(v).ok_or_else(|| text("ERROR_SQL")),
        }
    }

    /// A yes/no flag (`true`, `1`, `yes` / `false`, `0`, `no`), `false` when absent; `Err`
    /// (`ERROR_SQL`) for any other value.
    fn flag(&self, name: &str) -> Result<bool, Response> {
        match self.one(name) {
            None => Ok(false),
            Some(v) => params::flag(v).ok_or_else(|| text("ERROR_SQL")),
        }
    }

    /// The rental length in hours under any name a client uses (protocols.md §1.4):
    /// `rent_time` (Java), `time` (Python, TS; `"time "` from aiosmsactivate, trimmed) in
    /// hours, `duration` (herosms) in minutes, rounded up to whole hours. `Err` when present
    /// but not a whole number.
    fn rent_hours(&self) -> Result<i64, ()> {
        if let Some(minutes) = self.one("duration") {
            let m = params::int(minutes).ok_or(())?;
            return if m > 0 { Ok((m + 59) / 60) } else { Err(()) };
        }
        match self.any(&["rent_time", "time"]) {
            None => Ok(DEFAULT_RENT_HOURS),
            Some(v) => params::int(v).ok_or(()),
        }
    }

    /// The `country` parameter: absent → Russia (0), as on SMS-Activate.
    fn country(&self) -> Result<i64, Error> {
        match self.one("country") {
            None => Ok(DEFAULT_COUNTRY),
            Some(c) => params::int(c).ok_or(Error::BadCountry),
        }
    }
}

fn text(body: impl Into<String>) -> Response {
    Response::text(200, body)
}

fn json_reply<T: Serialize + ?Sized>(value: &T) -> Response {
    Response::json(200, value)
}

/// A JSON object whose keys stay in the order given. serde_json's own map sorts keys as
/// strings, which would put country "10" before "2" and lose a ranking.
struct Ordered<V>(Vec<(String, V)>);

impl<V: Serialize> Serialize for Ordered<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<V> Ordered<V> {
    /// Keys "0", "1", … in the order of `items`.
    fn indexed(items: impl IntoIterator<Item = V>) -> Ordered<V> {
        Ordered(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v))
                .collect(),
        )
    }
}

/// What a failed call was about: the same domain error has a different token in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topic {
    /// Activations, catalogue and balance: text tokens.
    Activation,
    /// Rent actions: `{"status":"error","message":TOKEN}`.
    Rent,
    /// setRentStatus=2: refusals mean the cancel window has passed.
    RentCancel,
    /// continueRentNumber: refusals mean the rental is over or too long.
    RentExtend,
}

/// The protocol token for a domain error: the one place where they are mapped.
fn token(e: &Error, topic: Topic, digits: u32) -> String {
    let t = match e {
        Error::Db(inner) => {
            log::error!("database error in handler_api: {inner}");
            "ERROR_SQL"
        }
        Error::Internal(m) => {
            log::error!("internal error in handler_api: {m}");
            "ERROR_SQL"
        }
        Error::Busy => "ERROR_SQL",
        // smsactivate documents ERROR_SQL as "one of the parameters has an invalid value".
        Error::Invalid(_) | Error::Conflict(_) => match topic {
            Topic::RentExtend => "MAX_HOURS_EXCEED",
            _ => "ERROR_SQL",
        },
        Error::NotFound(_) => match topic {
            Topic::Activation => "NO_ACTIVATION",
            Topic::Rent | Topic::RentCancel | Topic::RentExtend => "INVALID_PHONE",
        },
        // An account that may not order (e-mail not confirmed).
        Error::Forbidden(_) => "ACCOUNT_INACTIVE",
        // No SMS-Activate token exists for a rate limit; this one at least names it.
        Error::Throttled { .. } => "TOO_MANY_REQUESTS",
        Error::NoBalance => "NO_BALANCE",
        Error::NoNumbers => "NO_NUMBERS",
        Error::BadService => "BAD_SERVICE",
        Error::BadCountry => "BAD_COUNTRY",
        // An admin's block answers like a service (or country) this site does not sell:
        // BAD_SERVICE is in every client's list, and neither token invites a retry loop the
        // way NO_NUMBERS would.
        Error::Blocked(Scope::Country) => "BAD_COUNTRY",
        Error::Blocked(_) => "BAD_SERVICE",
        Error::WrongOperator => "WRONG_OPERATOR",
        Error::WrongMaxPrice { min_minor } => {
            return format!("WRONG_MAX_PRICE:{}", Money(*min_minor).decimal(digits))
        }
        Error::EarlyCancel { .. } => "EARLY_CANCEL_DENIED",
        Error::BadStatus(_) => match topic {
            Topic::Activation => "BAD_STATUS",
            Topic::RentCancel => "CANT_CANCEL",
            Topic::Rent | Topic::RentExtend => "RENT_DIE",
        },
        // Too many live activations at once.
        Error::Limit => "CHANNELS_LIMIT",
    };
    t.to_string()
}

/// The reply for a failed call: a text token, or the rent actions' JSON error.
fn fail(ctx: &Ctx<'_>, e: &Error, topic: Topic) -> Response {
    fail_in(ctx.app, e, topic)
}

/// [`fail`] without a `Ctx` (replies rendered again outside the handler).
fn fail_in(app: &App, e: &Error, topic: Topic) -> Response {
    let t = token(e, topic, currency_digits(&app.config.currency));
    match topic {
        Topic::Activation => text(t),
        _ => rent_error(&t),
    }
}

fn rent_error(token: &str) -> Response {
    json_reply(&json!({"status": "error", "message": token}))
}

fn digits(ctx: &Ctx<'_>) -> u32 {
    currency_digits(&ctx.app.config.currency)
}

/// Major units as a JSON number (`"cost": 0.5`).
fn major(ctx: &Ctx<'_>, minor: i64) -> f64 {
    Money(minor).as_major_f64(digits(ctx))
}

/// Major units as text, always with a decimal point (pysmshub reads `\d+\.\d+`).
fn decimal(ctx: &Ctx<'_>, minor: i64) -> String {
    match digits(ctx) {
        0 => format!("{minor}.00"),
        d => Money(minor).decimal(d),
    }
}

/// The install's currency as its ISO 4217 number (`"currency": 840`).
fn currency(ctx: &Ctx<'_>) -> u16 {
    currency_numeric(&ctx.app.config.currency).unwrap_or(0)
}

/// `2020-01-31T12:01:52`, the rent API's `endDate`.
fn end_date(t: Timestamp) -> String {
    format_datetime(t).replacen(' ', "T", 1)
}

/// Offers with live stock (which counts the simulator's on-demand numbers while it is on).
fn offers(ctx: &Ctx<'_>, country: Option<i64>, service: Option<&str>) -> Result<Vec<Offer>, Error> {
    catalogue::offers(
        ctx.db,
        country,
        service,
        ctx.app.config.reuse_cooldown,
        ctx.now(),
    )
}

// ---------------------------------------------------------------------------------------
// Balance and catalogue

fn get_balance(ctx: &mut Ctx<'_>, user: &User, _: &Params) -> Response {
    text(format!(
        "ACCESS_BALANCE:{}",
        decimal(ctx, user.balance_minor)
    ))
}

/// `{"tg_0": 12, …}`: free numbers per service in a country (`_0` = without forwarding).
fn get_numbers_status(ctx: &mut Ctx<'_>, _: &User, p: &Params) -> Response {
    let result = p.country().and_then(|country| {
        catalogue::live_country(ctx.db, country)?;
        offers(ctx, Some(country), None)
    });
    match result {
        Ok(list) => {
            let counts: serde_json::Map<String, Value> = list
                .into_iter()
                .map(|o| (format!("{}_0", o.service), json!(o.stock)))
                .collect();
            json_reply(&counts)
        }
        Err(e) => fail(ctx, &e, Topic::Activation),
    }
}

/// Countries for one service, most stock first, keyed "0", "1", … (sms-activate's shape,
/// with HeroSMS's `physical*` fields beside it; `freePriceMap` when `freePrice=true`).
fn get_top_countries(ctx: &mut Ctx<'_>, _: &User, p: &Params) -> Response {
    let Some(service) = p.one("service").map(str::to_ascii_lowercase) else {
        return text("BAD_SERVICE");
    };
    let free_price = match p.flag("freePrice") {
        Ok(f) => f,
        Err(reply) => return reply,
    };
    let result =
        catalogue::live_service(ctx.db, &service).and_then(|_| offers(ctx, None, Some(&service)));
    let mut list = match result {
        Ok(l) => l,
        Err(e) => return fail(ctx, &e, Topic::Activation),
    };
    list.sort_by(|a, b| {
        b.stock
            .cmp(&a.stock)
            .then(a.price_minor.cmp(&b.price_minor))
            .then(a.country.cmp(&b.country))
    });
    let entries: Vec<Value> = list
        .iter()
        .map(|o| {
            let price = major(ctx, o.price_minor);
            let price_map = json!({ decimal(ctx, o.price_minor): o.stock });
            let mut e = json!({
                "country": o.country,
                "count": o.stock,
                "price": price,
                "retail_price": price,
                "physicalTotalCount": o.stock,
                "physicalCountForDefaultPrice": o.stock,
                "physicalPriceMap": price_map,
            });
            if free_price {
                e["freePriceMap"] = price_map;
            }
            e
        })
        .collect();
    json_reply(&Ordered::indexed(entries))
}

/// `{"6":{"id":6,"rus":…,"eng":"Indonesia",…}}`: an object keyed by id (smsbower needs the
/// object; grizzly and herosms take either form).
fn get_countries(ctx: &mut Ctx<'_>, _: &Params) -> Response {
    let mut list = match catalogue::countries(ctx.db) {
        Ok(l) => l,
        Err(e) => return fail(ctx, &e, Topic::Activation),
    };
    list.retain(|c| c.enabled);
    list.sort_by_key(|c| c.id);
    let entries = list
        .into_iter()
        .map(|c| {
            let v = json!({
                "id": c.id,
                "rus": c.name,
                "eng": c.name,
                "chn": c.name,
                "visible": 1,
                "retry": 1,
                "rent": 1,
                "multiService": 1,
            });
            (c.id.to_string(), v)
        })
        .collect();
    json_reply(&Ordered(entries))
}

/// `{"status":"success","services":[{"code":"tg","name":"Telegram"},…]}`; with `country`,
/// only the services sold there.
fn get_services_list(ctx: &mut Ctx<'_>, p: &Params) -> Response {
    let result = (|| -> Result<Vec<Value>, Error> {
        let sold: Option<Vec<String>> = match p.one("country") {
            None => None,
            Some(_) => {
                let country = p.country()?;
                catalogue::live_country(ctx.db, country)?;
                Some(
                    offers(ctx, Some(country), None)?
                        .into_iter()
                        .map(|o| o.service)
                        .collect(),
                )
            }
        };
        Ok(catalogue::services(ctx.db)?
            .into_iter()
            .filter(|s| s.enabled && sold.as_ref().is_none_or(|l| l.contains(&s.code)))
            .map(|s| json!({"code": s.code, "name": s.name}))
            .collect())
    })();
    match result {
        Ok(services) => json_reply(&json!({"status": "success", "services": services})),
        Err(e) => fail(ctx, &e, Topic::Activation),
    }
}

/// `{"status":"success","countryOperators":{"175":["optus",…]}}`, or `OPERATORS_NOT_FOUND`.
fn get_operators(ctx: &mut Ctx<'_>, p: &Params) -> Response {
    let country = match p.one("country") {
        None => None,
        Some(c) => match params::int(c) {
            Some(id) => Some(id),
            None => return text("OPERATORS_NOT_FOUND"),
        },
    };
    let list = match catalogue::operators(ctx.db, country) {
        Ok(l) => l,
        Err(e) => return fail(ctx, &e, Topic::Activation),
    };
    let mut by_country: Vec<(String, Vec<String>)> = Vec::new();
    for o in list {
        let key = o.country_id.to_string();
        match by_country.last_mut() {
            Some((k, codes)) if *k == key => codes.push(o.code),
            _ => by_country.push((key, vec![o.code])),
        }
    }
    if by_country.is_empty() {
        return text("OPERATORS_NOT_FOUND");
    }
    #[derive(Serialize)]
    struct Reply {
        status: &'static str,
        #[serde(rename = "countryOperators")]
        country_operators: Ordered<Vec<String>>,
    }
    json_reply(&Reply {
        status: "success",
        country_operators: Ordered(by_country),
    })
}

/// `{"6":{"tg":{"cost":0.5,"count":10,"physicalCount":10}}}`, filtered by `country` and
/// `service` when given.
fn get_prices(ctx: &mut Ctx<'_>, _: &User, p: &Params) -> Response {
    price_table(ctx, p, |ctx, o| {
        json!({
            "cost": major(ctx, o.price_minor),
            "count": o.stock,
            "physicalCount": o.stock,
        })
    })
}

/// getPricesV2 (Grizzly, SMSBower): country → service → price → count; one bucket per pair,
/// at the price it sells for now.
fn get_prices_v2(ctx: &mut Ctx<'_>, _: &User, p: &Params) -> Response {
    price_table(
        ctx,
        p,
        |ctx, o| json!({ decimal(ctx, o.price_minor): o.stock }),
    )
}

/// getPricesV3 (Grizzly, SMSBower): country → service → provider → offer. This install is
/// the one provider (id 1) of its offers.
fn get_prices_v3(ctx: &mut Ctx<'_>, _: &User, p: &Params) -> Response {
    price_table(
        ctx,
        p,
        |ctx, o| json!({"1": {"count": o.stock, "price": major(ctx, o.price_minor), "provider_id": 1}}),
    )
}

/// The offers `country` and `service` select (both optional), as country → service →
/// `entry(offer)`.
fn price_table(
    ctx: &mut Ctx<'_>,
    p: &Params,
    entry: impl Fn(&Ctx<'_>, &Offer) -> Value,
) -> Response {
    let result = (|| -> Result<Vec<Offer>, Error> {
        let country = match p.one("country") {
            None => None,
            Some(_) => Some(catalogue::live_country(ctx.db, p.country()?)?.id),
        };
        let service = match p.one("service") {
            None => None,
            Some(s) => Some(catalogue::live_service(ctx.db, &s.to_ascii_lowercase())?.code),
        };
        offers(ctx, country, service.as_deref())
    })();
    let list = match result {
        Ok(l) => l,
        Err(e) => return fail(ctx, &e, Topic::Activation),
    };
    let mut by_country: Vec<(String, serde_json::Map<String, Value>)> = Vec::new();
    for o in list {
        let key = o.country.to_string();
        let entry = entry(ctx, &o);
        match by_country.last_mut() {
            Some((k, services)) if *k == key => {
                services.insert(o.service, entry);
            }
            _ => {
                let mut services = serde_json::Map::new();
                services.insert(o.service, entry);
                by_country.push((key, services));
            }
        }
    }
    json_reply(&Ordered(by_country))
}

// ---------------------------------------------------------------------------------------
// Activations

/// Places an order from getNumber / getNumberV2 parameters. `operator` may be a comma list:
/// each is tried in turn until one has a number.
fn place_order(ctx: &mut Ctx<'_>, user: &User, p: &Params) -> Result<Activation, Response> {
    let Some(service) = p.one("service").map(str::to_ascii_lowercase) else {
        return Err(text("BAD_SERVICE"));
    };
    let country = p.country().map_err(|e| fail(ctx, &e, Topic::Activation))?;
    let max_price_minor = match p.one("maxPrice") {
        None => None,
        Some(m) => Some(
            params::max_price(m, digits(ctx))
                .ok_or_else(|| fail(ctx, &Error::invalid("maxPrice"), Topic::Activation))?,
        ),
    };
    let exclude_prefixes = match p.one("phoneException") {
        None => Vec::new(),
        Some(list) => params::prefixes(list).ok_or_else(|| text("WRONG_EXCEPTION_PHONE"))?,
    };
    let operators: Vec<Option<String>> = match p.one("operator") {
        None => vec![None],
        Some(list) => {
            let ops: Vec<Option<String>> = list
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(|o| Some(o.to_string()))
                .collect();
            if ops.is_empty() || ops.iter().any(|o| o.as_deref() == Some("any")) {
                vec![None]
            } else {
                ops
            }
        }
    };
    let base = OrderRequest {
        country,
        service,
        operator: None,
        max_price_minor,
        client_order_id: p.one("orderId").map(str::to_string),
        exclude_prefixes,
        ..Default::default()
    };
    // Each operator in turn until one has a number.
    let alternatives: Vec<OrderRequest> = operators
        .iter()
        .map(|op| OrderRequest {
            operator: op.clone(),
            ..base.clone()
        })
        .collect();
    let placed = ctx.place_order(user, &alternatives, |e| matches!(e, Error::NoNumbers));
    match placed {
        Ok(Placed::New(a)) => Ok(a),
        // The same orderId again (protocols.md §1.2): nothing new is charged.
        Ok(Placed::Existing(_)) => Err(text("ORDER_ALREADY_EXISTS")),
        Err(e) => Err(fail(ctx, &e, Topic::Activation)),
    }
}

/// `ACCESS_NUMBER:«id»:«phone»`.
fn get_number(ctx: &mut Ctx<'_>, user: &User, p: &Params) -> Response {
    match place_order(ctx, user, p) {
        Ok(a) => text(format!("ACCESS_NUMBER:{}:{}", a.id, a.phone)),
        Err(reply) => reply,
    }
}

/// The getNumberV2 JSON, with the field types of protocols.md §1.2 (phoneNumber and
/// countryCode strings, currency an ISO number, activationTime `YYYY-MM-DD HH:MM:SS`).
fn get_number_v2(ctx: &mut Ctx<'_>, user: &User, p: &Params) -> Response {
    let a = match place_order(ctx, user, p) {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let phone_code = catalogue::country(ctx.db, a.country_id)
        .ok()
        .flatten()
        .map(|c| c.prefix)
        .unwrap_or_default();
    json_reply(&json!({
        "activationId": a.id,
        "phoneNumber": a.phone,
        "activationCost": major(ctx, a.price_minor),
        "currency": currency(ctx),
        "countryCode": a.country_id.to_string(),
        "countryPhoneCode": phone_code,
        "canGetAnotherSms": "1",
        "activationTime": format_datetime(a.created_at),
        "activationEndTime": format_datetime(a.expires_at),
        "activationOperator": operator_name(&a),
    }))
}

/// getMultiServiceNumber: one number for several services (`multiService=tg,wa`), an
/// activation per service, as `[{"activation":"…","phone":"…","service":"tg"}, …]`.
/// Forwarding calls (`multiForward` with a 1) is not offered: `NOT_AVAILABLE`.
fn get_multi_service_number(ctx: &mut Ctx<'_>, user: &User, p: &Params) -> Response {
    let services: Vec<String> = p
        .one("multiService")
        .unwrap_or("")
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    if services.is_empty() {
        return text("BAD_SERVICE");
    }
    if let Some(fwd) = p.one("multiForward") {
        let flags: Vec<&str> = fwd.split(',').map(str::trim).collect();
        if flags.len() != services.len() || flags.iter().any(|f| *f != "0" && *f != "1") {
            return fail(
                ctx,
                &Error::invalid("multiForward: one 0 or 1 per service"),
                Topic::Activation,
            );
        }
        if flags.contains(&"1") {
            return text("NOT_AVAILABLE");
        }
    }
    let country = match p.country() {
        Ok(c) => c,
        Err(e) => return fail(ctx, &e, Topic::Activation),
    };
    let base = OrderRequest {
        country,
        operator: p.one("operator").map(str::to_string),
        ..Default::default()
    };
    let (policy, now) = (ctx.app.policy(), ctx.now());
    let placed = db::write(ctx.db, |tx| {
        activations::order_multi(tx, user, &base, &services, &policy, now)
    });
    match placed {
        Ok(list) => json_reply(
            &list
                .iter()
                .map(|a| json!({"activation": a.id.to_string(), "phone": a.phone, "service": a.service}))
                .collect::<Vec<_>>(),
        ),
        Err(e) => fail(ctx, &e, Topic::Activation),
    }
}

fn operator_name(a: &Activation) -> &str {
    if a.operator.is_empty() {
        "any"
    } else {
        &a.operator
    }
}

/// The activation named by `id`; a missing or malformed id is `NO_ACTIVATION`.
fn activation_param(ctx: &Ctx<'_>, user: &User, p: &Params) -> Result<Activation, Response> {
    let Some(id) = p.int("id") else {
        return Err(text("NO_ACTIVATION"));
    };
    activations::get_for(ctx.db, user.id, id).map_err(|e| fail(ctx, &e, Topic::Activation))
}

/// getStatus; with `wait=N` (seconds, at most 30) it answers as soon as the status changes,
/// holding no worker meanwhile (see [`longpoll`]).
fn get_status(ctx: &mut Ctx<'_>, user: &User, p: &Params) -> Response {
    let Some(id) = p.int("id") else {
        return text("NO_ACTIVATION");
    };
    let wait = p.one("wait").and_then(longpoll::wait_from);
    let user_id = user.id;
    longpoll::answer(ctx, wait, move |app, db| status_reply(app, db, user_id, id))
}

/// The getStatus answer for activation `id` of `user_id`, as it is now:
/// `STATUS_WAIT_CODE`, `STATUS_WAIT_RETRY:«previous code»`, `STATUS_OK:«code»`,
/// `STATUS_CANCEL`, or an error token. Needs no `Ctx`, so it can be rendered again later
/// (a long-poll's [`crate::http::server::longpoll::Render`]): the first value is the state the answer
/// shows while the activation is live, `None` once it has ended or on an error.
pub fn status_reply(
    app: &App,
    db: &Connection,
    user_id: i64,
    id: i64,
) -> (Option<String>, Response) {
    let result = activations::get_for(db, user_id, id)
        .and_then(|a| Ok((a.status.is_live(), status_text(db, &a)?)));
    match result {
        Ok((live, t)) => (live.then(|| t.clone()), text(t)),
        Err(e) => (None, fail_in(app, &e, Topic::Activation)),
    }
}

fn status_text(conn: &Connection, a: &Activation) -> Result<String, Error> {
    Ok(match a.status {
        Status::Waiting => "STATUS_WAIT_CODE".to_string(),
        Status::Retry => match inbox::latest_code(conn, a.id)? {
            Some(code) => format!("STATUS_WAIT_RETRY:{code}"),
            None => "STATUS_WAIT_CODE".to_string(),
        },
        // A completed order whose messages the retention job already deleted keeps its
        // status with an empty code.
        Status::Received | Status::Completed => format!(
            "STATUS_OK:{}",
            inbox::latest_code(conn, a.id)?.unwrap_or_default()
        ),
        Status::Canceled | Status::Expired => "STATUS_CANCEL".to_string(),
    })
}

/// `{"verificationType":1,"sms":{…}|null,"call":null}`; `sms` stays null until an SMS
/// arrived (aiosmsactivate rejects a half-filled object). An ended order without a code is
/// `STATUS_CANCEL` as text.
fn get_status_v2(ctx: &mut Ctx<'_>, user: &User, p: &Params) -> Response {
    let a = match activation_param(ctx, user, p) {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    if matches!(a.status, Status::Canceled | Status::Expired) {
        return text("STATUS_CANCEL");
    }
    let messages = match inbox::for_activation(ctx.db, a.id) {
        Ok(m) => m,
        Err(e) => return fail(ctx, &e, Topic::Activation),
    };
    let shown = messages
        .iter()
        .rev()
        .find(|m| m.code.is_some())
        .or(messages.last());
    let sms = shown.map(|m| {
        json!({
            "dateTime": format_datetime(m.received_at),
            "code": m.code.clone().unwrap_or_default(),
            "text": m.text,
        })
    });
    json_reply(&json!({"verificationType": 1, "sms": sms, "call": null}))
}

/// setStatus: 1 ready, 3 another code, 6 finish, 8 number used (cancel, refund, keep the
/// number away from the service), -1 cancel. Repeating a finish or a cancel that already
/// happened answers as the first time did.
fn set_status(ctx: &mut Ctx<'_>, user: &User, p: &Params) -> Response {
    let a = match activation_param(ctx, user, p) {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let status = p.one("status").unwrap_or("");
    let (reply, already) = match status {
        "1" => ("ACCESS_READY", false),
        "3" => ("ACCESS_RETRY_GET", false),
        "6" => ("ACCESS_ACTIVATION", a.status == Status::Completed),
        "8" | "-1" => (
            "ACCESS_CANCEL",
            matches!(a.status, Status::Canceled | Status::Expired),
        ),
        _ => return text("BAD_STATUS"),
    };
    if already {
        return text(reply);
    }
    let policy = ctx.app.policy();
    let now = ctx.now();
    let (uid, id) = (user.id, a.id);
    // Prechecked: an order's actions check its state before their first change.
    let result = db::write_prechecked(ctx.db, |tx| match status {
        "1" => activations::mark_ready(tx, uid, id, now),
        "3" => activations::retry(tx, uid, id, &policy, now),
        "6" => activations::complete(tx, uid, id, &policy, now),
        "8" => activations::cancel(tx, uid, id, CancelReason::NumberUsed, &policy, now),
        _ => activations::cancel(tx, uid, id, CancelReason::Cancel, &policy, now),
    });
    match result {
        Ok(_) => {
            ctx.app.notify();
            text(reply)
        }
        Err(e) => fail(ctx, &e, Topic::Activation),
    }
}

/// `FULL_SMS:«text of the latest SMS»`, `STATUS_WAIT_CODE` or `STATUS_CANCEL`.
fn get_full_sms(ctx: &mut Ctx<'_>, user: &User, p: &Params) -> Response {
    let a = match activation_param(ctx, user, p) {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let messages = match inbox::for_activation(ctx.db, a.id) {
        Ok(m) => m,
        Err(e) => return fail(ctx, &e, Topic::Activation),
    };
    match messages.last() {
        Some(m) => text(format!("FULL_SMS:{}", m.text)),
        None if matches!(a.status, Status::Canceled | Status::Expired) => text("STATUS_CANCEL"),
        None => text("STATUS_WAIT_CODE"),
    }
}

/// The numeric status of an activation in lists, in setStatus numbering where one exists.
fn status_number(s: Status) -> &'static str {
    match s {
        Status::Waiting => "4",
        Status::Received => "2",
        Status::Retry => "3",
        Status::Completed => "6",
        Status::Canceled | Status::Expired => "8",
    }
}

/// `{"status":"success","activeActivations":[…]}` (params `start`, `limit` ≤ 100), or
/// `{"status":"error","error":"NO_ACTIVATIONS"}`.
fn get_active_activations(ctx: &mut Ctx<'_>, user: &User, p: &Params) -> Response {
    let (start, limit) = match (p.int_or("start", 0), p.int_or("limit", 100)) {
        (Ok(s), Ok(l)) => (s.max(0), l.clamp(1, 100)),
        (Err(reply), _) | (_, Err(reply)) => return reply,
    };
    let result = (|| -> Result<Vec<Value>, Error> {
        let mut out = Vec::new();
        for a in activations::list_live(ctx.db, user.id, limit, start)? {
            let messages = inbox::for_activation(ctx.db, a.id)?;
            let with_code = messages.iter().rev().find(|m| m.code.is_some());
            let country_name = catalogue::country(ctx.db, a.country_id)?
                .map(|c| c.name)
                .unwrap_or_default();
            out.push(json!({
                "activationId": a.id.to_string(),
                "serviceCode": a.service,
                "phoneNumber": a.phone,
                "activationCost": major(ctx, a.price_minor),
                "activationStatus": status_number(a.status),
                "smsCode": with_code.and_then(|m| m.code.clone()),
                "smsText": with_code.map(|m| m.text.clone()),
                "activationTime": format_datetime(a.created_at),
                "discount": decimal(ctx, 0),
                "repeated": "0",
                "countryCode": a.country_id.to_string(),
                "countryName": country_name,
                "canGetAnotherSms": "1",
                "currency": currency(ctx),
                "activationOperator": operator_name(&a),
            }));
        }
        Ok(out)
    })();
    match result {
        // Grizzly's client parses a bare list (or null).
        Ok(list) if p.flavour == Flavour::Grizzly => json_reply(&list),
        Ok(list) if list.is_empty() => {
            json_reply(&json!({"status": "error", "error": "NO_ACTIVATIONS"}))
        }
        Ok(list) => json_reply(&json!({"status": "success", "activeActivations": list})),
        Err(e) => fail(ctx, &e, Topic::Activation),
    }
}

/// The deepest `offset` getHistory serves: an offset costs as many index steps as it skips,
/// so it is bounded; a narrower `start`/`end` range reaches any older order.
const HISTORY_MAX_OFFSET: i64 = 10_000;

/// `[{"id":"…","date":"…","phone":"…","sms":"…","cost":0.5,"status":"6","currency":840}]`:
/// activations created between `start` and `end` (Unix seconds), newest first, `offset`
/// (≤ [`HISTORY_MAX_OFFSET`]; deeper is an empty page) and `size`/`limit` (≤ 100) paging.
fn get_history(ctx: &mut Ctx<'_>, user: &User, p: &Params) -> Response {
    let size = match p.any(&["size", "limit"]) {
        None => Ok(100),
        Some(v) => params::int(v).ok_or_else(|| text("ERROR_SQL")),
    };
    let (from, to, offset, limit) = match (
        p.int_or("start", 0),
        p.int_or("end", i64::MAX),
        p.int_or("offset", 0),
        size,
    ) {
        (Ok(from), Ok(to), Ok(offset), Ok(size)) => (from, to, offset.max(0), size.clamp(1, 100)),
        (Err(reply), ..) | (_, Err(reply), ..) | (_, _, Err(reply), _) | (.., Err(reply)) => {
            return reply
        }
    };
    if offset > HISTORY_MAX_OFFSET {
        return json_reply(&json!([]));
    }
    let result = (|| -> Result<Vec<Value>, Error> {
        let mut out = Vec::new();
        for a in activations::created_between(ctx.db, user.id, from, to, limit, offset)? {
            let sms = inbox::for_activation(ctx.db, a.id)?
                .last()
                .map(|m| m.text.clone())
                .unwrap_or_default();
            out.push(json!({
                "id": a.id.to_string(),
                "date": format_datetime(a.created_at),
                "phone": a.phone,
                "sms": sms,
                "cost": major(ctx, a.price_minor),
                "status": status_number(a.status),
                "currency": currency(ctx),
            }));
        }
        Ok(out)
    })();
    match result {
        Ok(list) => json_reply(&list),
        Err(e) => fail(ctx, &e, Topic::Activation),
    }
}

// ---------------------------------------------------------------------------------------
// Rentals (errors as `{"status":"error","message":TOKEN}`)

/// serviceCountRent (HeroSMS): the rental offer of one service in one country,
/// `{"service","country","count","cost","currency","hours"}` (`cost` for `hours`, default
/// the shortest rental), or `{"status":"error","message":"NO_NUMBERS"}`.
fn service_count_rent(ctx: &mut Ctx<'_>, _: &User, p: &Params) -> Response {
    let (service, hours, country) = match rent_params(ctx, p) {
        Ok(v) => v,
        Err(reply) => return reply,
    };
    let found = offers(ctx, Some(country), Some(&service)).map(|list| {
        list.into_iter()
            .find(|o| o.service == service && o.rent_hour_minor > 0)
    });
    match found {
        Ok(Some(o)) => json_reply(&json!({
            "service": o.service,
            "country": country,
            "count": o.stock,
            "cost": major(ctx, o.rent_hour_minor * hours),
            "currency": currency(ctx),
            "hours": hours,
        })),
        Ok(None) => rent_error("NO_NUMBERS"),
        Err(e) => fail(ctx, &e, Topic::Rent),
    }
}

/// `{"countries":{"0":6},"operators":{"0":"any",…},"services":{"tg":{"cost":…,"quant":…}}}`
/// for a rental of `rent_time`/`time` hours or `duration` minutes (default 4 hours) in
/// `country`.
fn get_rent_services(ctx: &mut Ctx<'_>, _: &User, p: &Params) -> Response {
    let Ok(hours) = p.rent_hours() else {
        return rent_error("INVALID_TIME");
    };
    if !(MIN_HOURS..=MAX_HOURS).contains(&hours) {
        return rent_error("INVALID_TIME");
    }
    #[derive(Serialize)]
    struct Reply {
        countries: Ordered<i64>,
        operators: Ordered<String>,
        services: Ordered<Value>,
    }
    let result = (|| -> Result<Reply, Error> {
        let country = catalogue::live_country(ctx.db, p.country()?)?;
        let mut countries: Vec<i64> = catalogue::countries(ctx.db)?
            .into_iter()
            .filter(|c| c.enabled)
            .map(|c| c.id)
            .collect();
        countries.sort();
        let mut operators = vec!["any".to_string()];
        operators.extend(
            catalogue::operators(ctx.db, Some(country.id))?
                .into_iter()
                .map(|o| o.code),
        );
        let services = offers(ctx, Some(country.id), None)?
            .iter()
            .map(|o| {
                let cost = major(ctx, o.rent_hour_minor * hours);
                (o.service.clone(), json!({"cost": cost, "quant": o.stock}))
            })
            .collect();
        Ok(Reply {
            countries: Ordered::indexed(countries),
            operators: Ordered::indexed(operators),
            services: Ordered(services),
        })
    })();
    match result {
        Ok(reply) => json_reply(&reply),
        Err(e) => fail(ctx, &e, Topic::Rent),
    }
}

/// The service, length in hours and country of a rental request, or the rent API's error.
fn rent_params(ctx: &Ctx<'_>, p: &Params) -> Result<(String, i64, i64), Response> {
    let Some(service) = p.one("service").map(str::to_ascii_lowercase) else {
        return Err(rent_error("BAD_SERVICE"));
    };
    let hours = match p.rent_hours() {
        Ok(h) if (MIN_HOURS..=MAX_HOURS).contains(&h) => h,
        _ => return Err(rent_error("INVALID_TIME")),
    };
    let country = p.country().map_err(|e| fail(ctx, &e, Topic::Rent))?;
    Ok((service, hours, country))
}

fn rental_phone(r: &Rental) -> Value {
    json!({"id": r.id, "endDate": end_date(r.expires_at), "number": r.phone})
}

/// `{"status":"success","phone":{"id":…,"endDate":"…","number":"…"}}`. `url` is stored as
/// the rental's webhook URL; `operator` and `incomingCall` are accepted and ignored.
fn get_rent_number(ctx: &mut Ctx<'_>, user: &User, p: &Params) -> Response {
    let (service, hours, country) = match rent_params(ctx, p) {
        Ok(v) => v,
        Err(reply) => return reply,
    };
    let req = RentRequest {
        country,
        service,
        hours,
        auto_renew: false,
        webhook_url: p.one("url").unwrap_or("").to_string(),
    };
    let policy = ctx.app.policy();
    let now = ctx.now();
    match db::write(ctx.db, |tx| rentals::rent(tx, user, &req, &policy, now)) {
        // The SMS-Activate shape, and the activation fields herosms reads a rental as.
        Ok(r) => json_reply(&json!({
            "status": "success",
            "phone": rental_phone(&r),
            "activationId": r.id,
            "phoneNumber": r.phone,
            "activationCost": major(ctx, r.paid_minor),
            "currency": currency(ctx),
            "countryCode": r.country_id.to_string(),
            "activationTime": format_datetime(r.created_at),
            "activationEndTime": format_datetime(r.expires_at),
        })),
        Err(e) => fail(ctx, &e, Topic::Rent),
    }
}

/// The rental named by `id`: `NO_ID_RENT` when none is given, `INVALID_PHONE` when it is not
/// the caller's.
fn rental_param(ctx: &Ctx<'_>, user: &User, p: &Params) -> Result<Rental, Response> {
    let Some(raw) = p.one("id") else {
        return Err(rent_error("NO_ID_RENT"));
    };
    let Some(id) = params::int(raw) else {
        return Err(rent_error("INVALID_PHONE"));
    };
    rentals::get_for(ctx.db, user.id, id).map_err(|e| fail(ctx, &e, Topic::Rent))
}

/// `{"status":"success","quantity":"2","values":{"0":{"phoneFrom","text","service","date"}}}`,
/// newest first, paged by `page` (from 0) and `size`; `STATUS_WAIT_CODE` before the first
/// SMS, `STATUS_CANCEL` / `STATUS_FINISH` once the rental is over.
fn get_rent_status(ctx: &mut Ctx<'_>, user: &User, p: &Params) -> Response {
    let r = match rental_param(ctx, user, p) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    match r.status {
        rentals::Status::Canceled => return rent_error("STATUS_CANCEL"),
        rentals::Status::Finished | rentals::Status::Expired => return rent_error("STATUS_FINISH"),
        rentals::Status::Active => {}
    }
    let mut messages = match inbox::for_rental(ctx.db, r.id) {
        Ok(m) => m,
        Err(e) => return fail(ctx, &e, Topic::Rent),
    };
    if messages.is_empty() {
        return rent_error("STATUS_WAIT_CODE");
    }
    messages.reverse();
    let (size, page) = match (p.int_or("size", 100), p.int_or("page", 0)) {
        (Ok(size), Ok(page)) => (size.clamp(1, 1000) as usize, page.max(0) as usize),
        _ => return rent_error("ERROR_SQL"),
    };
    let values = messages
        .iter()
        .skip(page.saturating_mul(size))
        .take(size)
        .map(|m| {
            json!({
                "phoneFrom": m.sender,
                "text": m.text,
                "service": r.service,
                "date": format_datetime(m.received_at),
            })
        });
    #[derive(Serialize)]
    struct Reply {
        status: &'static str,
        quantity: String,
        values: Ordered<Value>,
    }
    json_reply(&Reply {
        status: "success",
        quantity: messages.len().to_string(),
        values: Ordered::indexed(values),
    })
}

/// `status=1` finishes, `status=2` cancels with a refund (first 20 minutes, no SMS yet).
fn set_rent_status(ctx: &mut Ctx<'_>, user: &User, p: &Params) -> Response {
    let r = match rental_param(ctx, user, p) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let status = p.one("status").unwrap_or("");
    if !matches!(status, "1" | "2") {
        return rent_error("INCORECT_STATUS");
    }
    match r.status {
        rentals::Status::Active => {}
        rentals::Status::Canceled => return rent_error("ALREADY_CANCEL"),
        rentals::Status::Finished | rentals::Status::Expired => {
            return rent_error("ALREADY_FINISH")
        }
    }
    let now = ctx.now();
    let policy = ctx.app.policy();
    let (uid, id) = (user.id, r.id);
    let (result, topic) = if status == "1" {
        (
            db::write(ctx.db, |tx| rentals::finish(tx, uid, id, &policy, now)),
            Topic::Rent,
        )
    } else {
        (
            db::write(ctx.db, |tx| rentals::cancel(tx, uid, id, now)),
            Topic::RentCancel,
        )
    };
    match result {
        Ok(_) => {
            ctx.app.notify();
            json_reply(&json!({"status": "success"}))
        }
        Err(e) => fail(ctx, &e, topic),
    }
}

/// `{"status":"success","values":{"0":{"id":"5","phone":"…"},…}}`: the live rentals.
fn get_rent_list(ctx: &mut Ctx<'_>, user: &User, _: &Params) -> Response {
    let list = match rentals::list(ctx.db, user.id, true, 1000) {
        Ok(l) => l,
        Err(e) => return fail(ctx, &e, Topic::Rent),
    };
    if list.is_empty() {
        return rent_error("NO_NUMBERS");
    }
    #[derive(Serialize)]
    struct Reply {
        status: &'static str,
        values: Ordered<Value>,
    }
    json_reply(&Reply {
        status: "success",
        values: Ordered::indexed(
            list.iter()
                .map(|r| json!({"id": r.id.to_string(), "phone": r.phone})),
        ),
    })
}

/// The rental and the hours of an extension request (`rent_time` etc., default 4).
fn extension(ctx: &Ctx<'_>, user: &User, p: &Params) -> Result<(Rental, i64), Response> {
    let r = rental_param(ctx, user, p)?;
    let hours = match p.rent_hours() {
        Ok(h) if (1..=MAX_HOURS).contains(&h) => h,
        _ => return Err(rent_error("INVALID_TIME")),
    };
    if r.status != rentals::Status::Active || r.expires_at <= ctx.now() {
        return Err(rent_error("RENT_DIE"));
    }
    Ok((r, hours))
}

/// Extends a live rental: `{"status":"success","phone":{…}}` with the new `endDate`.
fn continue_rent(ctx: &mut Ctx<'_>, user: &User, p: &Params) -> Response {
    let (r, hours) = match extension(ctx, user, p) {
        Ok(x) => x,
        Err(reply) => return reply,
    };
    let now = ctx.now();
    let (uid, id) = (user.id, r.id);
    match db::write(ctx.db, |tx| rentals::extend(tx, uid, id, hours, now)) {
        Ok(r) => json_reply(&json!({"status": "success", "phone": rental_phone(&r)})),
        Err(e) => fail(ctx, &e, Topic::RentExtend),
    }
}

/// What extending by `rent_time` hours would cost: `{"status":"success","price":1.2}`.
fn continue_rent_price(ctx: &mut Ctx<'_>, user: &User, p: &Params) -> Response {
    match extension(ctx, user, p) {
        Ok((r, hours)) => json_reply(&json!({
            "status": "success",
            "price": major(ctx, r.hour_minor * hours),
            "currency": currency(ctx),
        })),
        Err(reply) => reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::Method;

    #[test]
    fn parameters_come_from_query_and_form_with_trimmed_names() {
        let req = Request::fake(
            Method::Post,
            "/stubs/handler_api.php?action=getRentNumber&time%20=12&api_key=k",
            b"service=tg&country=6",
        )
        .with_header("Content-Type", "application/x-www-form-urlencoded");
        let p = Params::of(&req);
        assert_eq!(p.one("action"), Some("getRentNumber"));
        assert_eq!(p.one("service"), Some("tg"));
        assert_eq!(p.country().unwrap(), 6);
        assert_eq!(p.rent_hours(), Ok(12));
        // herosms: minutes, rounded up to whole hours.
        let p = Params::of(&Request::fake(Method::Get, "/x?duration=480", b""));
        assert_eq!(p.rent_hours(), Ok(8));
        let p = Params::of(&Request::fake(Method::Get, "/x?duration=241", b""));
        assert_eq!(p.rent_hours(), Ok(5));
        let p = Params::of(&Request::fake(Method::Get, "/x?rent_time=x", b""));
        assert_eq!(p.rent_hours(), Err(()));
        let p = Params::of(&Request::fake(Method::Get, "/x", b""));
        assert_eq!(p.rent_hours(), Ok(DEFAULT_RENT_HOURS));
        assert_eq!(p.country().unwrap(), DEFAULT_COUNTRY);
    }

    #[test]
    fn every_domain_error_has_a_token() {
        let cases = [
            (Error::NoBalance, Topic::Activation, "NO_BALANCE"),
            (Error::NoNumbers, Topic::Activation, "NO_NUMBERS"),
            (Error::BadService, Topic::Activation, "BAD_SERVICE"),
            (
                Error::NotFound("activation"),
                Topic::Activation,
                "NO_ACTIVATION",
            ),
            (Error::NotFound("rental"), Topic::Rent, "INVALID_PHONE"),
            (
                Error::EarlyCancel { seconds_left: 3 },
                Topic::Activation,
                "EARLY_CANCEL_DENIED",
            ),
            (
                Error::BadStatus("x".into()),
                Topic::Activation,
                "BAD_STATUS",
            ),
            (
                Error::BadStatus("x".into()),
                Topic::RentCancel,
                "CANT_CANCEL",
            ),
            (Error::BadStatus("x".into()), Topic::RentExtend, "RENT_DIE"),
            (Error::invalid("x"), Topic::RentExtend, "MAX_HOURS_EXCEED"),
            (
                Error::WrongMaxPrice { min_minor: 125 },
                Topic::Activation,
                "WRONG_MAX_PRICE:1.25",
            ),
            (Error::Limit, Topic::Activation, "CHANNELS_LIMIT"),
        ];
        for (e, topic, want) in cases {
            assert_eq!(token(&e, topic, 2), want, "{e:?}");
        }
    }

    #[test]
    fn ordered_objects_keep_their_order() {
        let o = Ordered::indexed(["a", "b"]);
        assert_eq!(serde_json::to_string(&o).unwrap(), r#"{"0":"a","1":"b"}"#);
        let o = Ordered(vec![("2".to_string(), 1), ("10".to_string(), 2)]);
        assert_eq!(serde_json::to_string(&o).unwrap(), r#"{"2":1,"10":2}"#);
    }
}
