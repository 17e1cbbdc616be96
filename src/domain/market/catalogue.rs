//! The catalogue: countries, services, operators and prices, and live stock counts computed
//! from the inventory. Seeded on first start from [`crate::domain::market::seed`]; the admin edits it.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::domain::{market::seed, market::simulator, Error, Result};

#[derive(Debug, Clone, Serialize)]
pub struct Country {
    pub id: i64,
    pub iso: String,
    pub prefix: String,
    pub name: String,
    pub fivesim_name: String,
    pub enabled: bool,
    /// Off sale for good (`domain::trust::catalogue`); its orders keep its name.
    #[serde(skip)]
    pub retired: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Service {
    pub code: String,
    pub name: String,
    pub fivesim_name: String,
    pub lifetime_secs: Option<i64>,
    pub enabled: bool,
    /// Off sale for good (`domain::trust::catalogue`); its orders keep its name.
    #[serde(skip)]
    pub retired: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Operator {
    pub country_id: i64,
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Price {
    pub price_minor: i64,
    pub rent_hour_minor: i64,
}

/// Fills an empty catalogue with the seed set; does nothing when countries exist.
pub fn seed_if_empty(conn: &Connection) -> Result<bool> {
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM countries", [], |r| r.get(0))?;
    if n > 0 {
        return Ok(false);
    }
    for c in seed::COUNTRIES {
        conn.execute(
            "INSERT INTO countries (id, iso, prefix, name, fivesim_name) VALUES (?1,?2,?3,?4,?5)",
            params![c.id, c.iso, c.prefix, c.name, c.fivesim],
        )?;
    }
    for s in seed::SERVICES {
        conn.execute(
            "INSERT INTO services (code, name, fivesim_name, lifetime_secs) VALUES (?1,?2,?3,?4)",
            params![
                s.code,
                s.name,
                s.fivesim,
                s.lifetime_mins.map(|m| m as i64 * 60)
            ],
        )?;
    }
    for o in seed::OPERATORS {
        conn.execute(
            "INSERT OR IGNORE INTO operators (country_id, code, name) VALUES (?1,?2,?3)",
            params![o.country, o.code, o.name],
        )?;
    }
    let mut stmt = conn.prepare(
        "INSERT INTO prices (country_id, service, operator, price_minor, rent_hour_minor) \
         VALUES (?1, ?2, '', ?3, ?4)",
    )?;
    for c in seed::COUNTRIES {
        for s in seed::SERVICES {
            stmt.execute(params![
                c.id,
                s.code,
                seed::default_price_minor(c.id, s.code),
                seed::default_rent_hour_minor(c.id, s.code)
            ])?;
        }
    }
    Ok(true)
}

fn country_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Country> {
    Ok(Country {
        id: r.get(0)?,
        iso: r.get(1)?,
        prefix: r.get(2)?,
        name: r.get(3)?,
        fivesim_name: r.get(4)?,
        enabled: r.get(5)?,
        retired: r.get(6)?,
    })
}

fn service_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Service> {
    Ok(Service {
        code: r.get(0)?,
        name: r.get(1)?,
        fivesim_name: r.get(2)?,
        lifetime_secs: r.get(3)?,
        enabled: r.get(4)?,
        retired: r.get(5)?,
    })
}

const COUNTRY_COLS: &str = "id, iso, prefix, name, fivesim_name, enabled, retired_at IS NOT NULL";
const SERVICE_COLS: &str =
    "code, name, fivesim_name, lifetime_secs, enabled, retired_at IS NOT NULL";

pub fn countries(conn: &Connection) -> Result<Vec<Country>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COUNTRY_COLS} FROM countries ORDER BY name"
    ))?;
    let rows = stmt.query_map([], country_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn services(conn: &Connection) -> Result<Vec<Service>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SERVICE_COLS} FROM services ORDER BY name"
    ))?;
    let rows = stmt.query_map([], service_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every service's name by code (a page that only names services needs no more).
pub fn service_names(conn: &Connection) -> Result<HashMap<String, String>> {
    let mut stmt = conn.prepare_cached("SELECT code, name FROM services")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn country(conn: &Connection, id: i64) -> Result<Option<Country>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COUNTRY_COLS} FROM countries WHERE id = ?1"
        ))?
        .query_row([id], country_row)
        .optional()?)
}

pub fn country_by_fivesim(conn: &Connection, name: &str) -> Result<Option<Country>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COUNTRY_COLS} FROM countries WHERE fivesim_name = ?1"
        ))?
        .query_row([name], country_row)
        .optional()?)
}

pub fn service(conn: &Connection, code: &str) -> Result<Option<Service>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {SERVICE_COLS} FROM services WHERE code = ?1"
        ))?
        .query_row([code], service_row)
        .optional()?)
}

pub fn service_by_fivesim(conn: &Connection, name: &str) -> Result<Option<Service>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {SERVICE_COLS} FROM services WHERE fivesim_name = ?1"
        ))?
        .query_row([name], service_row)
        .optional()?)
}

/// An enabled country, or [`Error::BadCountry`].
pub fn live_country(conn: &Connection, id: i64) -> Result<Country> {
    match country(conn, id)? {
        Some(c) if c.enabled => Ok(c),
        _ => Err(Error::BadCountry),
    }
}

/// An enabled service, or [`Error::BadService`].
pub fn live_service(conn: &Connection, code: &str) -> Result<Service> {
    match service(conn, code)? {
        Some(s) if s.enabled => Ok(s),
        _ => Err(Error::BadService),
    }
}

pub fn operators(conn: &Connection, country_id: Option<i64>) -> Result<Vec<Operator>> {
    let mut stmt = conn.prepare_cached(
        "SELECT country_id, code, name FROM operators WHERE (?1 IS NULL OR country_id = ?1) \
         AND retired_at IS NULL ORDER BY country_id, code",
    )?;
    let rows = stmt.query_map([country_id], |r| {
        Ok(Operator {
            country_id: r.get(0)?,
            code: r.get(1)?,
            name: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn operator_exists(conn: &Connection, country_id: i64, code: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM operators WHERE country_id = ?1 AND code = ?2 AND retired_at IS NULL",
        )?
        .query_row(params![country_id, code], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The price of a pair: the operator's own price when one is set, else the pair's.
pub fn price(
    conn: &Connection,
    country_id: i64,
    service: &str,
    operator: &str,
) -> Result<Option<Price>> {
    // The operator's own price, else the country's: two lookups by key (one `IN` list with
    // an `ORDER BY` built a temporary B-tree and a sorter every time).
    let mut stmt = conn.prepare_cached(
        "SELECT price_minor, rent_hour_minor FROM prices \
         WHERE country_id = ?1 AND service = ?2 AND operator = ?3",
    )?;
    let mut get = |op: &str| {
        stmt.query_row(params![country_id, service, op], |r| {
            Ok(Price {
                price_minor: r.get(0)?,
                rent_hour_minor: r.get(1)?,
            })
        })
        .optional()
    };
    if !operator.is_empty() {
        if let Some(p) = get(operator)? {
            return Ok(Some(p));
        }
    }
    Ok(get("")?)
}

/// Every activation price of one country, service → operator → price (operator `""` for the
/// country's price): one read for a page that shows many services and operators, looked up
/// without an allocation.
pub fn country_prices(
    conn: &Connection,
    country_id: i64,
) -> Result<HashMap<String, HashMap<String, i64>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT service, operator, price_minor FROM prices WHERE country_id = ?1",
    )?;
    let mut out: HashMap<String, HashMap<String, i64>> = HashMap::new();
    let mut rows = stmt.query([country_id])?;
    while let Some(r) = rows.next()? {
        out.entry(r.get(0)?)
            .or_default()
            .insert(r.get(1)?, r.get(2)?);
    }
    Ok(out)
}

/// The highest price or rent per hour, in minor units (10,000,000.00 with cents): far above
/// any real price, and low enough that a rent for the longest rental (4 × 1344 hours) stays
/// far inside the integers.
pub const MAX_PRICE_MINOR: i64 = 1_000_000_000;

pub fn set_price(
    conn: &Connection,
    country_id: i64,
    service: &str,
    operator: &str,
    price: Price,
) -> Result<()> {
    if price.price_minor < 0 || price.rent_hour_minor < 0 {
        return Err(Error::invalid("Prices cannot be negative."));
    }
    if price.price_minor > MAX_PRICE_MINOR || price.rent_hour_minor > MAX_PRICE_MINOR {
        return Err(Error::invalid(format!(
            "A price is at most {MAX_PRICE_MINOR} minor units (e.g. cents)."
        )));
    }
    // A switched-off country can be priced before it is switched on (or while it is off);
    // a retired one is off sale for good.
    match country(conn, country_id)? {
        Some(c) if !c.retired => {}
        _ => return Err(Error::BadCountry),
    }
    if self::service(conn, service)?.is_none() {
        return Err(Error::BadService);
    }
    conn.execute(
        "INSERT INTO prices (country_id, service, operator, price_minor, rent_hour_minor) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (country_id, service, operator) DO UPDATE \
         SET price_minor = excluded.price_minor, rent_hour_minor = excluded.rent_hour_minor",
        params![
            country_id,
            service,
            operator,
            price.price_minor,
            price.rent_hour_minor
        ],
    )?;
    Ok(())
}

/// Switches a country or service on or off; a retired one stays off.
pub fn set_enabled(conn: &Connection, table: &str, key: &str, enabled: bool) -> Result<()> {
    let (sql, retired) = match table {
        "countries" => (
            "UPDATE countries SET enabled = ?2 WHERE CAST(id AS TEXT) = ?1 \
             AND (retired_at IS NULL OR ?2 = 0)",
            "SELECT 1 FROM countries WHERE CAST(id AS TEXT) = ?1 AND retired_at IS NOT NULL",
        ),
        "services" => (
            "UPDATE services SET enabled = ?2 WHERE code = ?1 AND (retired_at IS NULL OR ?2 = 0)",
            "SELECT 1 FROM services WHERE code = ?1 AND retired_at IS NOT NULL",
        ),
        _ => return Err(Error::invalid("unknown catalogue table")),
    };
    if conn.execute(sql, params![key, enabled])? == 0 {
        if conn
            .query_row(retired, [key], |_| Ok(()))
            .optional()?
            .is_some()
        {
            return Err(Error::Conflict("A retired entry stays off sale.".into()));
        }
        return Err(Error::NotFound("catalogue entry"));
    }
    Ok(())
}

/// One stored price with the switches of its country and service, for the admin (disabled
/// entries included, operator prices too).
#[derive(Debug, Clone, Serialize)]
pub struct PriceRow {
    pub country: i64,
    pub service: String,
    /// Empty for the pair's own price.
    pub operator: String,
    pub price_minor: i64,
    pub rent_hour_minor: i64,
    pub country_enabled: bool,
    pub service_enabled: bool,
}

/// Every stored price, optionally of one country and/or one service.
pub fn price_rows(
    conn: &Connection,
    country: Option<i64>,
    service: Option<&str>,
) -> Result<Vec<PriceRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.country_id, p.service, p.operator, p.price_minor, p.rent_hour_minor, \
         c.enabled, s.enabled FROM prices p JOIN countries c ON c.id = p.country_id \
         JOIN services s ON s.code = p.service \
         WHERE (?1 IS NULL OR p.country_id = ?1) AND (?2 IS NULL OR p.service = ?2) \
         ORDER BY p.country_id, p.service, p.operator",
    )?;
    let rows = stmt.query_map(params![country, service], |r| {
        Ok(PriceRow {
            country: r.get(0)?,
            service: r.get(1)?,
            operator: r.get(2)?,
            price_minor: r.get(3)?,
            rent_hour_minor: r.get(4)?,
            country_enabled: r.get(5)?,
            service_enabled: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One row of the price list.
#[derive(Debug, Clone, Serialize)]
pub struct Offer {
    pub country: i64,
    pub service: String,
    pub price_minor: i64,
    pub rent_hour_minor: i64,
    pub stock: i64,
}

/// Condition on `n` (numbers) for a number of our own stock that may be handed out now: free,
/// and on sale (its device online; upstream numbers never are).
pub const NUMBER_USABLE: &str = "n.state = 'free' AND n.on_sale = 1";

/// Free numbers that could serve each (country, service) right now, for every enabled pair
/// with a price, in one pass over the inventory. While the simulator is on, every pair also
/// has [`simulator::STOCK`]: it makes a number for any order the inventory cannot serve.
/// The stock of upstream providers on sale is added; a pair with no own stock shows the
/// cheapest upstream price instead of the catalogue's (own stock sells at the catalogue
/// price).
pub fn offers(
    conn: &Connection,
    country: Option<i64>,
    service: Option<&str>,
    cooldown: u64,
    now: Timestamp,
) -> Result<Vec<Offer>> {
    offers_in(conn, country, service, &stock(conn, cooldown, now)?)
}

/// [`offers`] from a [`Stock`] already counted (a page that shows both counts it once).
pub fn offers_in(
    conn: &Connection,
    country: Option<i64>,
    service: Option<&str>,
    stock: &Stock,
) -> Result<Vec<Offer>> {
    offers_from(conn, country, service, stock, true)
}

/// What can be rented now, per (country, service) with a price: the same offers as
/// [`offers`], but the stock counts only numbers a rental can take — our own free numbers
/// and the simulator's — since a rental never buys upstream (`rentals::rent`).
pub fn rent_offers(
    conn: &Connection,
    country: Option<i64>,
    cooldown: u64,
    now: Timestamp,
) -> Result<Vec<Offer>> {
    offers_from(conn, country, None, &stock(conn, cooldown, now)?, false)
}

fn offers_from(
    conn: &Connection,
    country: Option<i64>,
    service: Option<&str>,
    stock: &Stock,
    with_upstream: bool,
) -> Result<Vec<Offer>> {
    // A condition only for what is asked, so the price list's key serves one country's
    // offers (`?1 IS NULL OR p.country_id = ?1` read every price of every country).
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT p.country_id, p.service, p.price_minor, p.rent_hour_minor FROM prices p \
         JOIN countries c ON c.id = p.country_id AND c.enabled = 1 \
         JOIN services s ON s.code = p.service AND s.enabled = 1 \
         WHERE p.operator = '' AND {} AND {} AND {} ORDER BY p.country_id, p.service",
        match country {
            Some(_) => "p.country_id = ?1",
            None => "?1 IS NULL",
        },
        match service {
            Some(_) => "p.service = ?2",
            None => "?2 IS NULL",
        },
        crate::domain::market::blocklist::not_blocked_sql("p.country_id", "p.service")
    ))?;
    let rows = stmt.query_map(params![country, service], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (c, s, price_minor, rent_hour_minor) = row?;
        let own = stock.own(c, None, &s);
        let (up_stock, up_price) = match with_upstream {
            true => stock.upstream_of(c, &s),
            false => (0, 0),
        };
        out.push(Offer {
            country: c,
            service: s,
            price_minor: if own == 0 && up_stock > 0 {
                up_price
            } else {
                price_minor
            },
            rent_hour_minor,
            stock: own + up_stock,
        });
    }
    Ok(out)
}

/// Every activation price: (country, service, operator) → minor units. Operator "" is the
/// pair's own price, which applies to operators without one of their own (see [`price`]).
pub fn price_table(conn: &Connection) -> Result<HashMap<(i64, String, String), i64>> {
    let mut stmt =
        conn.prepare_cached("SELECT country_id, service, operator, price_minor FROM prices")?;
    let rows = stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Free numbers by country, operator and service, counted in two passes over the inventory
/// (the same rules as [`offers`], the simulator's stock included).
#[derive(Debug, Default)]
pub struct Stock {
    /// country → operator → usable numbers.
    free: HashMap<i64, HashMap<String, i64>>,
    /// country → operator → service → usable numbers that may not serve that service now.
    taken: HashMap<i64, HashMap<String, HashMap<String, i64>>>,
    /// The same summed over operators.
    free_any: HashMap<i64, i64>,
    taken_any: HashMap<i64, HashMap<String, i64>>,
    /// Added to every count while the simulator is on (see [`offers`]).
    simulated: i64,
    /// country → service → upstream stock on sale and its cheapest price (any operator).
    upstream: HashMap<i64, HashMap<String, (i64, i64)>>,
}

// Nested by country, operator and service so that a lookup borrows its keys: a page asks for
// every (service, operator) of a country, and a tuple key of owned strings cost three
// allocations per question (about 2,000 per dashboard page).
impl Stock {
    /// Numbers that could serve `service` in `country`, of `operator` (None: of any).
    pub fn get(&self, country: i64, operator: Option<&str>, service: &str) -> i64 {
        let upstream = match operator {
            Some(_) => 0,
            None => self.upstream_of(country, service).0,
        };
        self.own(country, operator, service) + upstream
    }

    /// The price shown for an activation whose catalogue price is `catalogue_price`: the
    /// cheapest upstream price when only upstream providers have stock (see [`offers`]).
    pub fn shown_price(
        &self,
        country: i64,
        operator: Option<&str>,
        service: &str,
        catalogue_price: i64,
    ) -> i64 {
        let (up_stock, up_price) = self.upstream_of(country, service);
        if operator.is_none() && up_stock > 0 && self.own(country, None, service) == 0 {
            up_price
        } else {
            catalogue_price
        }
    }

    fn upstream_of(&self, country: i64, service: &str) -> (i64, i64) {
        self.upstream
            .get(&country)
            .and_then(|m| m.get(service))
            .copied()
            .unwrap_or((0, 0))
    }

    /// Our own numbers (the simulator's included).
    fn own(&self, country: i64, operator: Option<&str>, service: &str) -> i64 {
        let (free, taken) = match operator {
            Some(op) => (
                self.free.get(&country).and_then(|m| m.get(op)),
                self.taken
                    .get(&country)
                    .and_then(|m| m.get(op))
                    .and_then(|m| m.get(service)),
            ),
            None => (
                self.free_any.get(&country),
                self.taken_any.get(&country).and_then(|m| m.get(service)),
            ),
        };
        (free.copied().unwrap_or(0) - taken.copied().unwrap_or(0)).max(0) + self.simulated
    }
}

pub fn stock(conn: &Connection, cooldown: u64, now: Timestamp) -> Result<Stock> {
    let mut out = Stock {
        simulated: if simulator::enabled(conn)? {
            simulator::STOCK
        } else {
            0
        },
        ..Stock::default()
    };
    for ((c, s), v) in upstream_stock(conn, now)? {
        out.upstream.entry(c).or_default().insert(s, v);
    }
    let counts = own_counts(conn, cooldown, now)?;
    for ((c, o), n) in counts.free {
        *out.free_any.entry(c).or_default() += n;
        out.free.entry(c).or_default().insert(o, n);
    }
    for ((c, o, s), n) in counts.taken {
        *out.taken_any
            .entry(c)
            .or_default()
            .entry(s.clone())
            .or_default() += n;
        out.taken
            .entry(c)
            .or_default()
            .entry(o)
            .or_default()
            .insert(s, n);
    }
    Ok(out)
}

/// (country, operator, service).
type PairOf = (i64, String, String);

/// Our own stock, by country and operator: the usable numbers (free and on sale), and of
/// those, per service, the ones that may not serve it now (blocked for it, or used for it
/// within the cooldown). Zero counts may be left out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct OwnCounts {
    pub free: BTreeMap<(i64, String), i64>,
    pub taken: BTreeMap<PairOf, i64>,
}

impl OwnCounts {
    fn without_zeros(mut self) -> OwnCounts {
        self.free.retain(|_, n| *n != 0);
        self.taken.retain(|_, n| *n != 0);
        self
    }
}

/// [`OwnCounts`] from the stock counters (migration 11), which triggers keep in the
/// transaction of every change to a number or its usage: the counter of withheld numbers
/// counts usage newer than the mark the expiry job moves ([`advance_stock_mark`]), and is
/// corrected here by the usage between the mark and this reader's cutoff (a few seconds of
/// orders, through `number_usage_used`). Costs the size of the catalogue, not the inventory.
pub fn own_counts(conn: &Connection, cooldown: u64, now: Timestamp) -> Result<OwnCounts> {
    let mut out = OwnCounts::default();
    let mut stmt = conn.prepare_cached("SELECT country_id, operator, n FROM stock_free")?;
    for row in stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))? {
        let (k, n) = row?;
        out.free.insert(k, n);
    }
    let mut stmt =
        conn.prepare_cached("SELECT country_id, operator, service, n FROM stock_held")?;
    for row in stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?)))? {
        let (k, n) = row?;
        out.taken.insert(k, n);
    }
    let mark = stock_mark(conn)?;
    let cutoff = cooldown_cutoff(cooldown, now);
    for (k, n) in usage_between(conn, mark, cutoff)? {
        *out.taken.entry(k).or_default() -= n;
    }
    Ok(out.without_zeros())
}

fn stock_mark(conn: &Connection) -> Result<Timestamp> {
    Ok(conn
        .prepare_cached("SELECT held_after FROM stock_mark WHERE id = 1")?
        .query_row([], |r| r.get(0))?)
}

/// Per (country, operator, service), the usable numbers whose unblocked usage for it lies
/// between `from` and `to`: positive when `to` is later (usage the cooldown released since
/// `from`), negative when earlier.
fn usage_between(conn: &Connection, from: Timestamp, to: Timestamp) -> Result<Vec<(PairOf, i64)>> {
    if from == to {
        return Ok(Vec::new());
    }
    let (lo, hi, sign) = if from < to {
        (from, to, 1)
    } else {
        (to, from, -1)
    };
    // Usage first, by time (CROSS JOIN fixes the order): the planner would otherwise walk
    // every free number and look its usage up.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT n.country_id, n.operator, u.service, COUNT(*) \
         FROM number_usage u INDEXED BY number_usage_used CROSS JOIN numbers n ON n.id = u.number_id \
         WHERE u.last_used_at > ?1 AND u.last_used_at <= ?2 AND u.blocked = 0 AND {NUMBER_USABLE} \
         GROUP BY n.country_id, n.operator, u.service"
    ))?;
    let rows = stmt.query_map(params![lo, hi], |r| {
        Ok((
            (r.get(0)?, r.get(1)?, r.get(2)?),
            r.get::<_, i64>(3)? * sign,
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Moves the stock counters' mark to the cooldown's cutoff now, taking the usage the
/// cooldown released since the last move out of the counter of withheld numbers (or putting
/// it back, when a longer cooldown moved the cutoff back). Run by the expiry job, so a
/// reader's correction stays a few seconds long.
pub fn advance_stock_mark(conn: &Connection, cooldown: u64, now: Timestamp) -> Result<()> {
    let mark = stock_mark(conn)?;
    let cutoff = cooldown_cutoff(cooldown, now);
    if mark == cutoff {
        return Ok(());
    }
    for ((c, o, s), n) in usage_between(conn, mark, cutoff)? {
        conn.prepare_cached(
            "INSERT INTO stock_held (country_id, operator, service, n) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (country_id, operator, service) DO UPDATE SET n = n + excluded.n",
        )?
        .execute(params![c, o, s, -n])?;
    }
    conn.prepare_cached("UPDATE stock_mark SET held_after = ?1 WHERE id = 1")?
        .execute([cutoff])?;
    Ok(())
}

/// [`OwnCounts`] counted from the inventory itself, the way the counters must agree with
/// (`otpbox check` and the tests compare them). Walks every free number.
pub fn recount(conn: &Connection, cooldown: u64, now: Timestamp) -> Result<OwnCounts> {
    let mut out = OwnCounts::default();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT n.country_id, n.operator, COUNT(*) FROM numbers n WHERE {NUMBER_USABLE} \
         GROUP BY n.country_id, n.operator"
    ))?;
    for row in stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))? {
        let (k, n) = row?;
        out.free.insert(k, n);
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT n.country_id, n.operator, u.service, COUNT(*) FROM number_usage u JOIN numbers n \
         ON n.id = u.number_id WHERE {NUMBER_USABLE} AND (u.blocked = 1 OR u.last_used_at > ?1) \
         GROUP BY n.country_id, n.operator, u.service"
    ))?;
    for row in stmt.query_map([cooldown_cutoff(cooldown, now)], |r| {
        Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?))
    })? {
        let (k, n) = row?;
        out.taken.insert(k, n);
    }
    Ok(out.without_zeros())
}

/// Differences between the stock counters and a recount, as `otpbox check` reports them.
pub fn check_stock(conn: &Connection, cooldown: u64, now: Timestamp) -> Result<Vec<String>> {
    let kept = own_counts(conn, cooldown, now)?;
    let counted = recount(conn, cooldown, now)?;
    let mut problems = Vec::new();
    if kept.free != counted.free {
        problems.push(format!(
            "stock: free numbers counted {:?}, counters say {:?}",
            counted.free, kept.free
        ));
    }
    if kept.taken != counted.taken {
        problems.push(format!(
            "stock: withheld numbers counted {:?}, counters say {:?}",
            counted.taken, kept.taken
        ));
    }
    Ok(problems)
}

/// Usage newer than this blocks reuse for the same service; cooldown 0 means "never reuse".
pub fn cooldown_cutoff(cooldown: u64, now: Timestamp) -> Timestamp {
    if cooldown == 0 {
        i64::MIN
    } else {
        now - cooldown as i64
    }
}

// ---------------------------------------------------------------------------------------
// Upstream stock

/// Condition on `p` (providers) and `o` (provider_offers) for stock that is on sale at `?now`:
/// the provider enabled and not paused, the offer in stock, and the provider's last known
/// balance able to pay for one.
pub const PROVIDER_SELLING: &str = "p.enabled = 1 AND (p.paused_until IS NULL OR p.paused_until <= :now) \
                       AND o.stock > 0 AND (p.balance_minor IS NULL OR p.balance_minor >= o.cost_minor)";

/// Upstream stock per (country, service): numbers on sale and the cheapest price. The
/// tables are `supply::providers`' (written by its sync); the catalogue only reads them.
pub fn upstream_stock(
    conn: &Connection,
    now: Timestamp,
) -> Result<HashMap<(i64, String), (i64, i64)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT o.country_id, o.service, SUM(o.stock), MIN(o.price_minor) FROM provider_offers o \
         JOIN providers p ON p.id = o.provider_id WHERE {PROVIDER_SELLING} GROUP BY o.country_id, o.service"
    ))?;
    let rows = stmt.query_map(rusqlite::named_params! {":now": now}, |r| {
        Ok(((r.get(0)?, r.get(1)?), (r.get(2)?, r.get(3)?)))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    #[test]
    fn seeding_fills_every_pair_with_a_price() {
        let conn = db::memory();
        assert!(seed_if_empty(&conn).unwrap());
        assert!(!seed_if_empty(&conn).unwrap());
        let pairs: i64 = conn
            .query_row("SELECT COUNT(*) FROM prices", [], |r| r.get(0))
            .unwrap();
        assert_eq!(pairs as usize, seed::COUNTRIES.len() * seed::SERVICES.len());
        assert_eq!(live_country(&conn, 6).unwrap().name, "Indonesia");
        assert!(matches!(live_service(&conn, "zz"), Err(Error::BadService)));
        assert!(price(&conn, 6, "tg", "").unwrap().unwrap().price_minor > 0);
    }

    /// A small deterministic generator (xorshift), so a failure replays.
    struct Dice(u64);
    impl Dice {
        fn roll(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn stock_counters_equal_a_recount_after_random_operations() {
        use crate::domain::accounts::testing::account_at;
        use crate::domain::accounts::{self, Role};
        use crate::domain::market::activations::{self, CancelReason, OrderRequest, Policy};
        use crate::domain::market::rentals::{self, RentRequest};
        use crate::domain::market::wallet::{self, Kind};
        let conn = db::memory();
        seed_if_empty(&conn).unwrap();
        let mut now: Timestamp = 1_000_000;
        let buyer = account_at(&conn, "b@example.com", Role::User, now);
        wallet::post(
            &conn,
            buyer,
            100_000_000,
            Kind::Adjustment,
            ("", None),
            "",
            now,
        )
        .unwrap();
        let policy = Policy {
            early_cancel: 0,
            default_ttl: 300,
            max_live: 1000,
            cooldown: 60,
            sim_delay: 5,
            sim_odds: crate::domain::market::simulator::Odds::NONE,
            operator_share: 70,
            allow_private_urls: false,
        };
        let countries = [6_i64, 22];
        let operators = ["", "telkomsel", "xl"];
        let services = ["tg", "wa", "go"];
        let mut phones = 0;
        let add_number = |conn: &Connection, d: &mut Dice, phones: &mut i64, now: i64| {
            *phones += 1;
            conn.execute(
                "INSERT INTO numbers (phone, country_id, operator, source, state, on_sale, \
                 created_at) VALUES (?1, ?2, ?3, 'manual', ?4, ?5, ?6)",
                params![
                    format!("62800{:06}", phones),
                    countries[d.roll(2) as usize],
                    operators[d.roll(3) as usize],
                    if d.roll(5) == 0 { "disabled" } else { "free" },
                    d.roll(6) != 0,
                    now
                ],
            )
            .unwrap();
        };
        let mut d = Dice(0x9e37_79b9_7f4a_7c15);
        for _ in 0..12 {
            add_number(&conn, &mut d, &mut phones, now);
        }
        let live = |conn: &Connection, table: &str, status: &str| -> Vec<i64> {
            let col = if table == "numbers" {
                "state"
            } else {
                "status"
            };
            conn.prepare(&format!("SELECT id FROM {table} WHERE {col} IN ({status})"))
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        let pick =
            |d: &mut Dice, ids: &[i64]| ids.get(d.roll(ids.len().max(1) as u64) as usize).copied();
        for step in 0..1000 {
            let user = accounts::get(&conn, buyer).unwrap();
            match d.roll(13) {
                0..=3 => {
                    let req = OrderRequest {
                        country: countries[d.roll(2) as usize],
                        service: services[d.roll(3) as usize].into(),
                        ..Default::default()
                    };
                    let _ = activations::order(&conn, &user, &req, &policy, now);
                }
                4 | 5 => {
                    let ids = live(&conn, "activations", "'waiting','received','retry'");
                    if let Some(id) = pick(&mut d, &ids) {
                        let reason = if d.roll(3) == 0 {
                            CancelReason::NumberUsed
                        } else {
                            CancelReason::Cancel
                        };
                        activations::cancel(&conn, buyer, id, reason, &policy, now).unwrap();
                    }
                }
                6 => {
                    let req = RentRequest {
                        country: countries[d.roll(2) as usize],
                        service: services[d.roll(3) as usize].into(),
                        hours: 4,
                        auto_renew: false,
                        webhook_url: String::new(),
                    };
                    let _ = rentals::rent(&conn, &user, &req, &policy, now);
                }
                7 => {
                    let ids = live(&conn, "rentals", "'active'");
                    if let Some(id) = pick(&mut d, &ids) {
                        rentals::finish(&conn, buyer, id, &policy, now).unwrap();
                    }
                }
                8 => add_number(&conn, &mut d, &mut phones, now),
                9 => {
                    // A source switched on or off, a number disabled or enabled by hand.
                    let ids = live(&conn, "numbers", "'free','disabled'");
                    if let Some(id) = pick(&mut d, &ids) {
                        let sql = match d.roll(3) {
                            0 => "UPDATE numbers SET on_sale = 1 - on_sale WHERE id = ?1",
                            1 => "UPDATE numbers SET state = 'disabled' WHERE id = ?1",
                            _ => "UPDATE numbers SET state = 'free' WHERE id = ?1 AND state = 'disabled'",
                        };
                        conn.execute(sql, [id]).unwrap();
                    }
                }
                10 => {
                    // A number never ordered is removed.
                    conn.execute(
                        "DELETE FROM numbers WHERE id = (SELECT n.id FROM numbers n WHERE NOT EXISTS \
                         (SELECT 1 FROM activations a WHERE a.number_id = n.id) AND NOT EXISTS \
                         (SELECT 1 FROM rentals r WHERE r.number_id = n.id) AND NOT EXISTS \
                         (SELECT 1 FROM number_usage u WHERE u.number_id = n.id) LIMIT 1)",
                        [],
                    )
                    .unwrap();
                }
                11 => {
                    activations::expire_due(&conn, &policy, now).unwrap();
                    rentals::expire_due(&conn, &policy, now).unwrap();
                    advance_stock_mark(&conn, policy.cooldown, now).unwrap();
                }
                _ => now += d.roll(40) as i64,
            }
            // Exact at every moment, for the cooldown in force and for others.
            for cooldown in [policy.cooldown, 0, 15, 600] {
                assert_eq!(
                    own_counts(&conn, cooldown, now).unwrap(),
                    recount(&conn, cooldown, now).unwrap(),
                    "step {step}, cooldown {cooldown}"
                );
            }
        }
        // The run did what it should: orders were served from counters that moved.
        let served: i64 = conn
            .query_row("SELECT COUNT(*) FROM activations", [], |r| r.get(0))
            .unwrap();
        assert!(served > 100, "only {served} orders");
        assert!(check_stock(&conn, 15, now).unwrap().is_empty());
        // A counter that drifted is reported.
        conn.execute("UPDATE stock_free SET n = n + 1", []).unwrap();
        assert!(!check_stock(&conn, 15, now).unwrap().is_empty());
    }

    #[test]
    fn the_simulator_stocks_every_pair() {
        let conn = db::memory();
        seed_if_empty(&conn).unwrap();
        let stock = |conn: &Connection| offers(conn, Some(6), Some("tg"), 0, 0).unwrap()[0].stock;
        assert_eq!(stock(&conn), 0);
        simulator::set_on(&conn, true).unwrap();
        assert_eq!(stock(&conn), simulator::STOCK);
        simulator::set_on(&conn, false).unwrap();
        assert_eq!(stock(&conn), 0);
    }

    #[test]
    fn stock_counts_per_operator_and_in_total() {
        let conn = db::memory();
        seed_if_empty(&conn).unwrap();
        for (phone, op) in [
            ("62811", "telkomsel"),
            ("62812", "telkomsel"),
            ("62855", "indosat"),
        ] {
            conn.execute(
                "INSERT INTO numbers (phone, country_id, operator, source, created_at) \
                 VALUES (?1, 6, ?2, 'manual', 0)",
                params![phone, op],
            )
            .unwrap();
        }
        // One telkomsel number has served Telegram for good.
        conn.execute(
            "INSERT INTO number_usage (number_id, service, last_used_at, blocked) \
             SELECT id, 'tg', 0, 1 FROM numbers WHERE phone = '62811'",
            [],
        )
        .unwrap();
        let s = stock(&conn, 0, 10).unwrap();
        assert_eq!(s.get(6, None, "tg"), 2);
        assert_eq!(s.get(6, Some("telkomsel"), "tg"), 1);
        assert_eq!(s.get(6, Some("telkomsel"), "wa"), 2);
        assert_eq!(s.get(6, Some("indosat"), "tg"), 1);
        assert_eq!(s.get(6, Some("xl"), "tg"), 0);
        assert_eq!(s.get(0, None, "tg"), 0);
        let offered = offers(&conn, Some(6), Some("tg"), 0, 10).unwrap()[0].stock;
        assert_eq!(offered, s.get(6, None, "tg"));
        simulator::set_on(&conn, true).unwrap();
        assert_eq!(
            stock(&conn, 0, 10).unwrap().get(0, None, "tg"),
            simulator::STOCK
        );
    }

    #[test]
    fn operator_price_overrides_the_pair_price() {
        let conn = db::memory();
        seed_if_empty(&conn).unwrap();
        let base = price(&conn, 0, "tg", "mts").unwrap().unwrap();
        set_price(
            &conn,
            0,
            "tg",
            "mts",
            Price {
                price_minor: 999,
                rent_hour_minor: 9,
            },
        )
        .unwrap();
        assert_eq!(
            price(&conn, 0, "tg", "mts").unwrap().unwrap().price_minor,
            999
        );
        assert_eq!(price(&conn, 0, "tg", "beeline").unwrap().unwrap(), base);
        let rows = price_rows(&conn, Some(0), Some("tg")).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].operator.as_str(), rows[0].price_minor),
            ("", base.price_minor)
        );
        assert_eq!(
            (rows[1].operator.as_str(), rows[1].price_minor),
            ("mts", 999)
        );
        assert!(rows[1].country_enabled && rows[1].service_enabled);
    }
}
