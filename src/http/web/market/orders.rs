//! Customer pages: dashboard with the order form and live orders, history (with its CSV),
//! wallet, rentals, API keys. Forms post here (POST → redirect → GET with a flash saying what
//! happened and the money moved); `GET /live` feeds the pages' script the live parts (orders,
//! codes, rentals' SMS, balance) as JSON with each card's HTML, long-polled.

use std::collections::HashMap;

use rusqlite::Connection;

use crate::app::App;
use crate::domain::accounts::Role;
use crate::domain::base::money::{currency_digits, Money};
use crate::domain::market::activations::{
    self, Activation, CancelReason, HistoryFilter, OrderRequest, Placed,
};
use crate::domain::market::catalogue::Country;
use crate::domain::market::rentals::{self, RentRequest, Rental};
use crate::domain::supply::stats;
use crate::domain::{
    accounts::apikeys, accounts::sessions, base::audit, market::catalogue, market::inbox,
    market::seed, market::vouchers, market::wallet, Error,
};
use crate::http::auth::Page;
use crate::http::router::Router;
use crate::http::server::longpoll;
use crate::http::web::{cur, form};
use crate::http::{Ctx, Method, Request, Response};
use crate::views::market::orders::{
    self as view, Cur, Dashboard, History, HistoryRow, OperatorOffer, OrderCard, RentRow,
    RentalCard, RentalsPage, ServiceRow,
};
use crate::views::market::payments::TopupForm;
use crate::views::{accounts::account::verify_notice, Flash};

pub fn routes(r: &mut Router) {
    use Method::{Get, Post};
    r.pages(
        Role::User,
        &[
            (Get, "/dashboard", dashboard),
            (Post, "/orders", place_order),
            (Get, "/orders", history),
            (Get, "/orders.csv", history_csv),
            (Get, "/live", live),
            (Post, "/orders/{id}/{action}", order_action),
            (Get, "/wallet", wallet_page),
            (Post, "/wallet/redeem", redeem),
            (Get, "/rentals", rentals_page),
            (Post, "/rentals", rent),
            (Post, "/rentals/{id}/{action}", rental_action),
            (Get, "/keys", keys_page),
            (Post, "/keys", create_key),
            (Post, "/keys/{id}/revoke", revoke_key),
        ],
    );
}

/// Country and service names for cards and rows.
struct Names {
    countries: HashMap<i64, String>,
    services: HashMap<String, String>,
}

impl Names {
    fn load(db: &Connection) -> Names {
        Names::with_countries(db, &catalogue::countries(db).unwrap_or_default())
    }

    /// With the countries a page has already read.
    fn with_countries(db: &Connection, countries: &[Country]) -> Names {
        Names {
            countries: countries.iter().map(|c| (c.id, c.name.clone())).collect(),
            services: catalogue::service_names(db).unwrap_or_default(),
        }
    }

    fn country(&self, id: i64) -> String {
        self.countries.get(&id).cloned().unwrap_or_default()
    }

    fn service(&self, code: &str) -> String {
        self.services
            .get(code)
            .cloned()
            .unwrap_or_else(|| code.to_string())
    }
}

fn card(app: &App, db: &Connection, names: &Names, a: Activation) -> OrderCard {
    OrderCard {
        messages: inbox::for_activation(db, a.id).unwrap_or_default(),
        country_name: names.country(a.country_id),
        service_name: names.service(&a.service),
        cancel_at: a.created_at + app.config.early_cancel as i64,
        a,
    }
}

/// Messages a rental card shows (the newest; its header says how many there are in all).
pub const RENTAL_CARD_MESSAGES: i64 = 20;

fn rental_card(db: &Connection, names: &Names, r: Rental) -> RentalCard {
    RentalCard {
        messages: inbox::recent_for_rental(db, r.id, RENTAL_CARD_MESSAGES).unwrap_or_default(),
        message_count: inbox::count_for_rental(db, r.id).unwrap_or(0) as usize,
        country_name: names.country(r.country_id),
        service_name: names.service(&r.service),
        r,
    }
}

/// How popular a service is by nature: its place in the seed catalogue (which lists the
/// most ordered services first); services added later come after, by name.
fn seed_rank(code: &str) -> usize {
    seed::SERVICES
        .iter()
        .position(|s| s.code == code)
        .unwrap_or(usize::MAX)
}

/// The enabled countries of `all` and the one chosen: `?country=`, else the account's last
/// order's, else Indonesia (6) when sold, else the first.
fn choose_country(all: &[Country], req: &Request, last: Option<i64>) -> (Vec<Country>, i64) {
    let countries: Vec<Country> = all.iter().filter(|c| c.enabled).cloned().collect();
    let known = |id: &i64| countries.iter().any(|c| c.id == *id);
    let country = req
        .query_param("country")
        .and_then(|c| c.parse().ok())
        .filter(known)
        .or(last.filter(known))
        .or_else(|| countries.iter().find(|c| c.id == 6).map(|c| c.id))
        .or_else(|| countries.first().map(|c| c.id))
        .unwrap_or(0);
    (countries, country)
}

fn dashboard(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let last = activations::list_before(ctx.db, p.user.id, &[], None, 1)
        .unwrap_or_default()
        .first()
        .map(|a| a.country_id);
    // Every country, read once: the live orders' cards name disabled ones too.
    let all = catalogue::countries(ctx.db).unwrap_or_default();
    let (countries, country) = choose_country(&all, req, last);
    let now = ctx.now();
    // Counted once for the rows' stock of any operator and of each.
    let stock = catalogue::stock(ctx.db, ctx.app.config.reuse_cooldown, now).ok();
    let offers = stock
        .as_ref()
        .and_then(|st| catalogue::offers_in(ctx.db, Some(country), None, st).ok())
        .unwrap_or_default();
    let rates = stats::success_in(ctx.db, country).unwrap_or_default();
    let recent = activations::recent_services(ctx.db, p.user.id, 5).unwrap_or_default();
    let names = Names::with_countries(ctx.db, &all);
    let operators = catalogue::operators(ctx.db, Some(country)).unwrap_or_default();
    // The operator chosen (`?operator=`, or the one a failed order kept): the rows show its
    // price and stock, the ones an order with it is charged and served from.
    let operator = req
        .query_param("operator")
        .or_else(|| p.kept.get("operator").map(str::to_string))
        .filter(|o| operators.iter().any(|x| x.code == *o));
    let stock = stock.filter(|_| !operators.is_empty());
    // The operators' own prices, read once (as `catalogue::price` chooses: the operator's,
    // else the country's).
    let prices = if operators.is_empty() {
        Default::default()
    } else {
        catalogue::country_prices(ctx.db, country).unwrap_or_default()
    };
    let c = cur(ctx);
    let mut rows: Vec<ServiceRow> = offers
        .into_iter()
        .map(|o| {
            let by_operator: Vec<OperatorOffer> = match &stock {
                Some(st) => operators
                    .iter()
                    .map(|op| OperatorOffer {
                        operator: op.code.clone(),
                        price_minor: prices
                            .get(o.service.as_str())
                            .and_then(|p| p.get(op.code.as_str()).or_else(|| p.get("")))
                            .copied()
                            .unwrap_or(o.price_minor),
                        stock: st.get(country, Some(&op.code), &o.service),
                    })
                    .collect(),
                None => Vec::new(),
            };
            let chosen = operator
                .as_deref()
                .and_then(|op| by_operator.iter().find(|x| x.operator == op));
            ServiceRow {
                name: names.service(&o.service),
                rate: rates.get(country, &o.service),
                recent: recent.contains(&o.service),
                price_minor: chosen.map_or(o.price_minor, |x| x.price_minor),
                stock: chosen.map_or(o.stock, |x| x.stock),
                any_operator: (o.price_minor, o.stock),
                by_operator,
                code: o.service,
            }
        })
        .collect();
    // Each key once per row (the seed rank is a search of the seed catalogue).
    rows.sort_by_cached_key(|r| {
        (
            recent
                .iter()
                .position(|s| *s == r.code)
                .unwrap_or(usize::MAX),
            std::cmp::Reverse(r.rate.orders),
            seed_rank(&r.code),
            r.name.to_lowercase(),
        )
    });
    let live = activations::list_live(ctx.db, p.user.id, 50, 0).unwrap_or_default();
    let live = live
        .into_iter()
        .map(|a| card(ctx.app, ctx.db, &names, a))
        .collect();
    let balance = wallet::balance(ctx.db, p.user.id).unwrap_or(p.user.balance_minor);
    let d = Dashboard {
        cur: c,
        balance_minor: balance,
        verified: p.user.is_verified(),
        countries: &countries,
        country,
        operators: &operators,
        operator: operator.as_deref(),
        rows,
        live,
        now,
        kept: &p.kept,
    };
    Response::html(view::dashboard(
        &p.nav,
        p.csrf(),
        &d,
        verify_notice(&p.user, p.csrf()),
        &p.flash,
    ))
}

fn place_order(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let form = req.form();
    let country: i64 = form.text("country").parse().unwrap_or(-1);
    let back = format!("/dashboard?country={country}");
    let digits = currency_digits(&ctx.app.config.currency);
    if form.text("service").is_empty() {
        return form::fail(ctx, req, &p.session, &back, "Choose a service.");
    }
    let max_price = match form.text("max_price").trim() {
        "" => None,
        t => match Money::parse(t, digits, false) {
            Some(m) => Some(m.0),
            None => {
                return form::fail(
                    ctx,
                    req,
                    &p.session,
                    &back,
                    "The maximum price is not an amount.",
                )
            }
        },
    };
    let operator = form.text("operator");
    let order = OrderRequest {
        country,
        service: form.text("service"),
        operator: (!operator.is_empty()).then_some(operator),
        max_price_minor: max_price,
        client_order_id: None,
        ..Default::default()
    };
    match ctx.place_order(&p.user, std::slice::from_ref(&order), |_| false) {
        Ok(Placed::New(a) | Placed::Existing(a)) => {
            ctx.app.notify();
            let msg = format!(
                "Ordered +{} for {}, {} charged. The code appears below as soon as it arrives.",
                a.phone,
                Names::load(ctx.db).service(&a.service),
                cur(ctx).fmt(a.price_minor)
            );
            form::tell(ctx, &p.session, &back, Flash::Ok(msg))
        }
        Err(Error::WrongMaxPrice { min_minor }) => {
            let msg = format!(
                "The price is {}, above your maximum.",
                cur(ctx).fmt(min_minor)
            );
            form::fail(ctx, req, &p.session, &back, msg)
        }
        Err(e) => form::fail(ctx, req, &p.session, &back, e),
    }
}

fn order_action(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (Some(id), uid) = (req.id_param("id"), p.user.id) else {
        return form::fail(ctx, req, &p.session, "/dashboard", "No such order.");
    };
    let policy = ctx.app.policy();
    let action = req.param("action").unwrap_or("").to_string();
    let what = action.clone();
    form::submit(
        ctx,
        req,
        &p.session,
        "/dashboard",
        |tx, _, now| match action.as_str() {
            "cancel" => activations::cancel(tx, uid, id, CancelReason::Cancel, &policy, now),
            "used" => activations::cancel(tx, uid, id, CancelReason::NumberUsed, &policy, now),
            "complete" => activations::complete(tx, uid, id, &policy, now),
            "retry" => activations::retry(tx, uid, id, &policy, now),
            _ => Err(Error::NotFound("action")),
        },
        |ctx, a| {
            ctx.app.notify();
            let money = cur(ctx).fmt(a.price_minor);
            let msg = match what.as_str() {
                "cancel" => format!("Canceled +{}, {money} refunded.", a.phone),
                "used" => format!(
                    "+{} reported as already used: canceled, {money} refunded.",
                    a.phone
                ),
                "complete" => format!("Completed +{}.", a.phone),
                _ => format!("Waiting for another SMS on +{}.", a.phone),
            };
            form::tell(ctx, &p.session, "/dashboard", Flash::Ok(msg))
        },
    )
}

/// Largest number of cards one live answer re-renders.
const LIVE_MAX: usize = 50;

/// Ids from a comma-separated query parameter (at most [`LIVE_MAX`]).
fn ids_param(req: &Request, name: &str) -> Vec<i64> {
    req.query_param(name)
        .unwrap_or_default()
        .split(',')
        .filter_map(|x| x.trim().parse().ok())
        .take(LIVE_MAX)
        .collect()
}

/// Which live parts a page shows: the dashboard its orders (`show=orders`), the rentals page
/// its rentals (`show=rentals`); both when not said.
#[derive(Clone, Copy)]
struct LiveParts {
    orders: bool,
    rentals: bool,
}

/// What a `/live` request asks about: whose, which session, which cards the page shows.
#[derive(Clone)]
struct LiveAsk {
    user_id: i64,
    session_id: i64,
    parts: LiveParts,
    order_ids: Vec<i64>,
    rental_ids: Vec<i64>,
}

impl LiveAsk {
    /// The orders the answer covers: the account's live ones and the page's cards.
    fn orders(&self, db: &Connection) -> Vec<Activation> {
        if !self.parts.orders {
            return Vec::new();
        }
        let mut list =
            activations::list_live(db, self.user_id, LIVE_MAX as i64, 0).unwrap_or_default();
        for id in &self.order_ids {
            if !list.iter().any(|a| a.id == *id) {
                if let Ok(a) = activations::get_for(db, self.user_id, *id) {
                    list.push(a);
                }
            }
        }
        list
    }

    /// The rentals the answer covers: the account's active ones and the page's cards.
    fn rentals(&self, db: &Connection) -> Vec<Rental> {
        if !self.parts.rentals {
            return Vec::new();
        }
        let mut list = rentals::list(db, self.user_id, true, LIVE_MAX as i64).unwrap_or_default();
        for id in &self.rental_ids {
            if !list.iter().any(|r| r.id == *id) {
                if let Ok(r) = rentals::get_for(db, self.user_id, *id) {
                    list.push(r);
                }
            }
        }
        list
    }

    /// Whether the request's session still signs this account in (a wait outlives a logout).
    fn signed_in(&self, app: &App, db: &Connection) -> bool {
        sessions::still_signed_in(
            db,
            self.session_id,
            self.user_id,
            &app.session_limits(),
            app.now(),
        )
        .unwrap_or(false)
    }

    /// The live state alone, from index look-ups (balance, each order's and rental's id,
    /// status and message count): what a waiting request re-checks. `None` once the session
    /// ended. Equal to the state [`live_view`] renders for the same data.
    fn state(&self, app: &App, db: &Connection) -> Option<String> {
        if !self.signed_in(app, db) {
            return None;
        }
        let mut state = format!("b{}", wallet::balance(db, self.user_id).unwrap_or(0));
        for a in self.orders(db) {
            let n = inbox::count_for_activation(db, a.id).unwrap_or(0);
            state.push_str(&format!(";o{}:{}:{n}", a.id, a.status.as_str()));
        }
        for r in self.rentals(db) {
            let n = inbox::count_for_rental(db, r.id).unwrap_or(0);
            state.push_str(&format!(";r{}:{}:{n}", r.id, r.status.as_str()));
        }
        Some(state)
    }
}

/// What the dashboard's and the rentals page's script show live, rendered from current data:
/// the balance, the account's live orders and active rentals, and the cards the page shows,
/// each as its HTML card (only the parts the page shows). The state string changes whenever
/// any of them does; `None` (with a 401) once the session ended.
fn live_view(app: &App, db: &Connection, ask: &LiveAsk, token: &str) -> (Option<String>, Response) {
    if !ask.signed_in(app, db) {
        return (
            None,
            Response::json(401, &serde_json::json!({"error": "signed out"})),
        );
    }
    let now = app.now();
    let c = Cur {
        code: app.config.currency.clone(),
        digits: currency_digits(&app.config.currency),
    };
    let names = Names::load(db);
    let balance = wallet::balance(db, ask.user_id).unwrap_or(0);
    let mut state = format!("b{balance}");
    let orders: Vec<_> = ask
        .orders(db)
        .into_iter()
        .map(|a| {
            let o = card(app, db, &names, a);
            let code = o.messages.iter().rev().find_map(|m| m.code.clone());
            state.push_str(&format!(
                ";o{}:{}:{}",
                o.a.id,
                o.a.status.as_str(),
                o.messages.len()
            ));
            serde_json::json!({
                "id": o.a.id,
                "status": o.a.status.as_str(),
                "live": o.a.status.is_live(),
                "code": code,
                "service": o.service_name,
                "html": view::order_card(&o, token, &c, now).into_string(),
            })
        })
        .collect();
    let rentals_json: Vec<_> = ask
        .rentals(db)
        .into_iter()
        .map(|r| {
            let rc = rental_card(db, &names, r);
            state.push_str(&format!(
                ";r{}:{}:{}",
                rc.r.id,
                rc.r.status.as_str(),
                rc.message_count
            ));
            serde_json::json!({
                "id": rc.r.id,
                "status": rc.r.status.as_str(),
                "messages": rc.message_count,
                "html": view::rental_card(&rc, token, &c).into_string(),
            })
        })
        .collect();
    let body = serde_json::json!({
        "state": state,
        "now": now,
        "balance": c.fmt(balance),
        "balance_minor": balance,
        "orders": orders,
        "rentals": rentals_json,
    });
    (Some(state), Response::json(200, &body))
}

/// `GET /live?show=orders|rentals&orders=1,2&rentals=3&seen=STATE&wait=N`: the session's
/// live parts as JSON (see [`live_view`]). With `wait` and `seen` equal to the current state,
/// the answer waits (long-poll, off the workers) until something changes or the wait runs
/// out; while it waits only the cheap state ([`LiveAsk::state`]) is re-checked, and a session
/// ended meanwhile ends the wait (401).
fn live(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let show = req.query_param("show").unwrap_or_default();
    let ask = LiveAsk {
        user_id: p.user.id,
        session_id: p.session.id,
        parts: LiveParts {
            orders: show != "rentals",
            rentals: show != "orders",
        },
        order_ids: ids_param(req, "orders"),
        rental_ids: ids_param(req, "rentals"),
    };
    let token = p.csrf().to_string();
    let seen = req.query_param("seen").unwrap_or_default();
    let probe_ask = ask.clone();
    longpoll::answer_since(
        ctx,
        longpoll::wait_param(req),
        seen,
        move |app, db| probe_ask.state(app, db),
        move |app, db| live_view(app, db, &ask, &token),
    )
}

/// Orders per page of the history.
const HISTORY_PAGE: i64 = 50;
use view::CSV_PAGE;

/// The history's filter from the query string, and that filter as a query string (only
/// the known values, so links never carry anything else).
fn history_filter(ctx: &Ctx<'_>, req: &Request) -> (HistoryFilter, String) {
    let mut f = HistoryFilter {
        status: req
            .query_param("status")
            .and_then(|s| activations::Status::parse(&s)),
        service: req
            .query_param("service")
            .filter(|s| !s.is_empty() && catalogue::service(ctx.db, s).ok().flatten().is_some()),
        country: req.query_param("country").and_then(|c| c.parse().ok()),
    };
    if let Some(c) = f.country {
        if catalogue::country(ctx.db, c).ok().flatten().is_none() {
            f.country = None;
        }
    }
    let mut q = Vec::new();
    if let Some(s) = f.status {
        q.push(format!("status={}", s.as_str()));
    }
    if let Some(s) = &f.service {
        q.push(format!("service={}", crate::url::percent_encode(s)));
    }
    if let Some(c) = f.country {
        q.push(format!("country={c}"));
    }
    (f, q.join("&"))
}

fn history_rows(db: &Connection, names: &Names, list: Vec<Activation>) -> Vec<HistoryRow> {
    list.into_iter()
        .map(|a| HistoryRow {
            code: inbox::for_activation(db, a.id)
                .unwrap_or_default()
                .iter()
                .rev()
                .find_map(|m| m.code.clone()),
            country_name: names.country(a.country_id),
            service_name: names.service(&a.service),
            a,
        })
        .collect()
}

fn history(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let before = req.query_param("before").and_then(|b| b.parse().ok());
    let (filter, query) = history_filter(ctx, req);
    let mut list = activations::history(ctx.db, p.user.id, &filter, before, HISTORY_PAGE + 1)
        .unwrap_or_default();
    let more = list.len() as i64 > HISTORY_PAGE;
    list.truncate(HISTORY_PAGE as usize);
    let older = if more {
        list.last().map(|a| a.id)
    } else {
        None
    };
    // The CSV files of the filtered history (each `CSV_PAGE` orders), when it is longer than
    // a page: the first two, or all of them with `?files=all`.
    let (csv_files, more_files) = if more || before.is_some() {
        let max = if req.query_param("files").as_deref() == Some("all") {
            CSV_FILES_MAX
        } else {
            2
        };
        csv_files(ctx.db, p.user.id, &filter, max)
    } else {
        (vec![None], false)
    };
    let names = Names::load(ctx.db);
    let rows = history_rows(ctx.db, &names, list);
    let countries = catalogue::countries(ctx.db).unwrap_or_default();
    let services = catalogue::services(ctx.db).unwrap_or_default();
    let h = History {
        rows: &rows,
        filter: &filter,
        countries: &countries,
        services: &services,
        query,
        not_first: before.is_some(),
        older,
        csv_files,
        more_files,
    };
    Response::html(view::history_page(&p.nav, &h, &cur(ctx)))
}

/// The most CSV files `?files=all` lists.
const CSV_FILES_MAX: usize = 200;

/// Where each CSV file of the filtered history starts (`before=`; `None` for the newest),
/// at most `max` of them, and whether there are more. Each step reads `CSV_PAGE` ids.
fn csv_files(
    db: &Connection,
    user_id: i64,
    filter: &HistoryFilter,
    max: usize,
) -> (Vec<Option<i64>>, bool) {
    let mut files = vec![None];
    loop {
        let start = *files.last().unwrap_or(&None);
        let last = activations::history_nth(db, user_id, filter, start, CSV_PAGE - 1);
        let Ok(Some(last)) = last else {
            return (files, false);
        };
        match activations::history_nth(db, user_id, filter, Some(last), 0) {
            Ok(Some(_)) if files.len() >= max => return (files, true),
            Ok(Some(_)) => files.push(Some(last)),
            _ => return (files, false),
        }
    }
}

/// A CSV field, quoted when it needs to be; a leading `=`, `+`, `-` or `@` is prefixed with
/// `'` so a spreadsheet never runs it as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// `GET /orders.csv` with the history's filters: at most [`CSV_PAGE`] orders, newest first;
/// when there are more, `Link: <…&before=ID>; rel="next"` names the next file.
fn history_csv(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let before = req.query_param("before").and_then(|b| b.parse().ok());
    let (filter, query) = history_filter(ctx, req);
    let mut list =
        activations::history(ctx.db, p.user.id, &filter, before, CSV_PAGE + 1).unwrap_or_default();
    let more = list.len() as i64 > CSV_PAGE;
    list.truncate(CSV_PAGE as usize);
    let next = if more {
        list.last().map(|a| a.id)
    } else {
        None
    };
    let names = Names::load(ctx.db);
    let c = cur(ctx);
    let mut out =
        String::from("id,created_at,service,country,number,code,status,price,currency\r\n");
    for r in history_rows(ctx.db, &names, list) {
        let fields = [
            r.a.id.to_string(),
            crate::clock::format_rfc3339(r.a.created_at),
            r.service_name,
            r.country_name,
            r.a.phone.clone(),
            r.code.unwrap_or_default(),
            r.a.status.as_str().to_string(),
            Money(r.a.price_minor).decimal(c.digits),
            c.code.clone(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    let mut resp = Response::new(200, "text/csv; charset=utf-8", out)
        .with_header(
            "Content-Disposition",
            "attachment; filename=\"otpbox-orders.csv\"",
        )
        .with_header("Cache-Control", "no-store");
    if let Some(id) = next {
        let q = if query.is_empty() {
            format!("before={id}")
        } else {
            format!("{query}&before={id}")
        };
        resp = resp.with_header("Link", &format!("</orders.csv?{q}>; rel=\"next\""));
    }
    resp
}

fn wallet_page(ctx: &mut Ctx<'_>, _: &Request, p: &Page) -> Response {
    let entries = wallet::entries(ctx.db, p.user.id, 100, None).unwrap_or_default();
    let balance = wallet::balance(ctx.db, p.user.id).unwrap_or(0);
    let gateways = ctx.site.gateways.enabled();
    let recent = super::payments::recent(ctx, p.user.id);
    let topup = TopupForm {
        gateways: &gateways,
        min_minor: ctx.app.config.payments.topup_min,
        max_minor: ctx.app.config.payments.topup_max,
        recent: &recent,
        kept: &p.kept,
    };
    Response::html(view::wallet(
        &p.nav,
        p.csrf(),
        &cur(ctx),
        balance,
        &entries,
        &topup,
        &p.flash,
    ))
}

fn redeem(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let keys = ctx.app.keys.clone();
    let uid = p.user.id;
    form::submit(
        ctx,
        req,
        &p.session,
        "/wallet",
        |tx, f, now| vouchers::redeem(tx, &keys, uid, &f.text("code"), now),
        |ctx, amount| {
            let msg = format!("{} added to your balance.", cur(ctx).fmt(amount));
            form::tell(ctx, &p.session, "/wallet", Flash::Ok(msg))
        },
    )
}

fn rentals_page(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let list = rentals::list(ctx.db, p.user.id, false, 50).unwrap_or_default();
    let kept_country = p.kept.get("country").and_then(|c| c.parse().ok());
    let all = catalogue::countries(ctx.db).unwrap_or_default();
    let (countries, country) = choose_country(
        &all,
        req,
        kept_country.or(list.first().map(|r| r.country_id)),
    );
    let now = ctx.now();
    let names = Names::with_countries(ctx.db, &all);
    // Only what a rental can take: our own numbers and the simulator's, never upstream stock.
    let offers = catalogue::rent_offers(ctx.db, Some(country), ctx.app.config.reuse_cooldown, now)
        .unwrap_or_default();
    let mut rows: Vec<RentRow> = offers
        .into_iter()
        .filter(|o| o.rent_hour_minor > 0)
        .map(|o| RentRow {
            name: names.service(&o.service),
            hour_minor: o.rent_hour_minor,
            stock: o.stock,
            code: o.service,
        })
        .collect();
    rows.sort_by_key(|r| (seed_rank(&r.code), r.name.to_lowercase()));
    let cards: Vec<RentalCard> = list
        .into_iter()
        .map(|r| rental_card(ctx.db, &names, r))
        .collect();
    let page = RentalsPage {
        cur: cur(ctx),
        countries: &countries,
        country,
        rows,
        cards: &cards,
        kept: &p.kept,
    };
    Response::html(view::rentals(&p.nav, p.csrf(), &page, &p.flash))
}

fn rent(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let policy = ctx.app.policy();
    let country = req.form().text("country");
    let back = format!("/rentals?country={}", country.parse::<i64>().unwrap_or(-1));
    form::submit(
        ctx,
        req,
        &p.session,
        &back,
        |tx, f, now| {
            let rr = RentRequest {
                country: f.text("country").parse().unwrap_or(-1),
                service: f.text("service"),
                hours: f.text("hours").parse().unwrap_or(0),
                auto_renew: f.checked("auto_renew"),
                webhook_url: String::new(),
            };
            rentals::rent(tx, &p.user, &rr, &policy, now)
        },
        |ctx, r| {
            ctx.app.notify();
            let msg = format!(
                "Rented +{} for {} hours, {} charged.",
                r.phone,
                r.hours,
                cur(ctx).fmt(r.paid_minor)
            );
            form::tell(ctx, &p.session, &back, Flash::Ok(msg))
        },
    )
}

fn rental_action(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (Some(id), uid) = (req.id_param("id"), p.user.id) else {
        return form::fail(ctx, req, &p.session, "/rentals", "No such rental.");
    };
    let policy = ctx.app.policy();
    let action = req.param("action").unwrap_or("").to_string();
    let what = action.clone();
    let before = rentals::get_for(ctx.db, uid, id).map(|r| r.paid_minor).ok();
    form::submit(
        ctx,
        req,
        &p.session,
        "/rentals",
        |tx, f, now| match action.as_str() {
            "cancel" => rentals::cancel(tx, uid, id, now),
            "finish" => rentals::finish(tx, uid, id, &policy, now),
            "extend" => rentals::extend(tx, uid, id, f.text("hours").parse().unwrap_or(0), now),
            "autorenew_on" => rentals::set_auto_renew(tx, uid, id, true),
            "autorenew_off" => rentals::set_auto_renew(tx, uid, id, false),
            _ => Err(Error::NotFound("action")),
        },
        |ctx, _| {
            ctx.app.notify();
            let c = cur(ctx);
            let after = rentals::get_for(ctx.db, uid, id).ok();
            let msg = match (what.as_str(), after) {
                ("cancel", Some(r)) => format!(
                    "Rental of +{} canceled, {} refunded.",
                    r.phone,
                    c.fmt(before.unwrap_or(0))
                ),
                ("finish", Some(r)) => format!("Rental of +{} finished.", r.phone),
                ("extend", Some(r)) => format!(
                    "Rental of +{} extended, {} charged.",
                    r.phone,
                    c.fmt(r.paid_minor - before.unwrap_or(r.paid_minor))
                ),
                ("autorenew_on", Some(r)) => {
                    format!(
                        "+{} renews automatically while your balance lasts.",
                        r.phone
                    )
                }
                ("autorenew_off", Some(r)) => format!("+{} no longer renews.", r.phone),
                _ => "Saved.".to_string(),
            };
            form::tell(ctx, &p.session, "/rentals", Flash::Ok(msg))
        },
    )
}

fn keys_view(ctx: &mut Ctx<'_>, p: &Page, new_key: Option<&str>, status: u16) -> Response {
    let keys = apikeys::list(ctx.db, p.user.id).unwrap_or_default();
    Response::html(view::keys(&p.nav, p.csrf(), &keys, new_key, &p.flash)).with_status(status)
}

fn keys_page(ctx: &mut Ctx<'_>, _: &Request, p: &Page) -> Response {
    keys_view(ctx, p, None, 200)
}

/// The new key is shown once, in the answer to this POST (it is never stored in clear).
fn create_key(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let keys = ctx.app.keys.clone();
    let ip = ctx.ip_hash(req);
    let uid = p.user.id;
    form::submit(
        ctx,
        req,
        &p.session,
        "/keys",
        |tx, f, now| {
            let k = apikeys::create(tx, &keys, uid, &f.text("name"), now)?;
            audit::security(tx, Some(uid), audit::API_KEY_CREATED, &ip, &k.0.name, now)?;
            Ok(k)
        },
        |ctx, (_, secret)| keys_view(ctx, p, Some(&secret), 201),
    )
}

fn revoke_key(ctx: &mut Ctx<'_>, req: &Request, p: &Page) -> Response {
    let (Some(id), uid) = (req.id_param("id"), p.user.id) else {
        return form::fail(ctx, req, &p.session, "/keys", "No such key.");
    };
    let ip = ctx.ip_hash(req);
    form::submit(
        ctx,
        req,
        &p.session,
        "/keys",
        |tx, _, now| {
            apikeys::revoke(tx, uid, id, now)?;
            audit::security(
                tx,
                Some(uid),
                audit::API_KEY_REVOKED,
                &ip,
                &id.to_string(),
                now,
            )
        },
        |ctx, ()| {
            let msg = format!("Key #{id} revoked: requests with it are refused from now on.");
            form::tell(ctx, &p.session, "/keys", Flash::Ok(msg))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("Telegram"), "Telegram");
        assert_eq!(
            csv_field("Google / YouTube, Gmail"),
            "\"Google / YouTube, Gmail\""
        );
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("+62811"), "'+62811");
        assert_eq!(csv_field("-1,5"), "\"'-1,5\"");
    }
}
