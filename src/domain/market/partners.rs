//! Partner hubs: SMSHub, SMSBower, Grizzly and the other marketplaces that speak the agent
//! protocol (protocols.md §3) buy our own SIMs' numbers beside our own customers. The hub
//! calls us (`GET_SERVICES`, `GET_NUMBER`, `FINISH_ACTIVATION`, answered by
//! `crate::http::protocols::partner`); we push every SMS of a number it holds back to it
//! (`PUSH_SMS`, queued here in the ingesting transaction and sent by the `partners` job).
//!
//! Only real SIMs are offered (sources `sim` and `manual`): never the simulator's numbers,
//! never numbers bought upstream. A number a hub holds is `busy` like any order's, so our
//! customers cannot get it, and it moves the stock counters like any order. The hub, not we,
//! ends an order: `FINISH_ACTIVATION` 1 keeps the number away from the service for good,
//! 3 is a sale (the hub's price is charged to the partner's account and the number's
//! operator earns its share, both ledger rows in the finishing transaction), 4 gives the
//! number back for the service (up to [`MAX_OFFERS`] offers to that hub in all), 5 is a
//! refund to the hub's customer (no money moves). A repeat, or any later status, answers
//! SUCCESS and changes nothing. A hub that never finishes keeps the number at most
//! [`HOLD_MAX`]; its late FINISH still counts.
//!
//! Money: each partner has an account (no password, no sign-in) whose balance is what the
//! hub owes: every sale is a `charge` that may take it below zero, and a settlement the hub
//! pays is an admin credit to it. The hub's `sum` is kept in 1/10000 of its currency (the
//! protocol gives four decimals for USD) and converted with the partner's rate (our minor units
//! per unit of its currency, also in 1/10000).

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::domain::base::crypto::Keys;
use crate::domain::market::activations;
use crate::domain::market::blocklist;
use crate::domain::market::catalogue::{self, cooldown_cutoff};
use crate::domain::market::earnings;
use crate::domain::market::wallet;
use crate::domain::{Error, Result};

const KEY_PURPOSE: &str = "partner-key";
/// A number cancelled by a hub may be offered to it for the same service again, up to this
/// many offers in all ("up to 4 times in total").
pub const MAX_OFFERS: i64 = 4;
/// A number stays busy for a hub that never finishes its order at most this long.
pub const HOLD_MAX: i64 = 2 * 3600;
/// Seconds between two attempts to push one SMS ("retry every 10 s until SUCCESS").
pub const PUSH_RETRY: i64 = 10;
/// A push the hub has not accepted after this long is given up (its text is cleared).
pub const PUSH_GIVE_UP: i64 = 86_400;
/// A push still refused this long after the hub finished its order is given up: the hub no
/// longer needs it, and SMS texts are kept only a short time after an order ends (SPEC §9).
pub const PUSH_AFTER_END: i64 = 300;
/// Push rows are kept this long, without their text once delivered.
pub const PUSH_KEEP: i64 = 7 * 86_400;
/// The `sum` scale: 1/10000 of the hub's currency unit.
pub const MICRO: i64 = 10_000;
/// The reference of a partner order's ledger rows.
pub const LEDGER_REF: &str = "partner_order";

/// The hub currencies the protocol knows (ISO 4217 numeric).
pub const CURRENCIES: [(u16, &str); 2] = [(643, "RUB"), (840, "USD")];

#[derive(Debug, Clone, Serialize)]
pub struct Partner {
    pub id: i64,
    pub name: String,
    pub push_url: String,
    #[serde(skip)]
    pub key_sealed: String,
    pub currency: u16,
    pub rate_micro: i64,
    pub floor_micro: i64,
    pub account_id: i64,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub last_call_at: Option<Timestamp>,
    pub push_failures: i64,
    pub last_push_error: String,
    pub last_push_error_at: Option<Timestamp>,
}

const COLS: &str =
    "id, name, push_url, key_sealed, currency, rate_micro, floor_micro, account_id, \
    enabled, created_at, last_call_at, push_failures, last_push_error, last_push_error_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Partner> {
    Ok(Partner {
        id: r.get(0)?,
        name: r.get(1)?,
        push_url: r.get(2)?,
        key_sealed: r.get(3)?,
        currency: r.get(4)?,
        rate_micro: r.get(5)?,
        floor_micro: r.get(6)?,
        account_id: r.get(7)?,
        enabled: r.get(8)?,
        created_at: r.get(9)?,
        last_call_at: r.get(10)?,
        push_failures: r.get(11)?,
        last_push_error: r.get(12)?,
        last_push_error_at: r.get(13)?,
    })
}

impl Partner {
    /// The shared protocol key, unsealed.
    pub fn key(&self, keys: &Keys) -> Result<String> {
        keys.open(KEY_PURPOSE, &self.key_sealed).ok_or_else(|| {
            Error::Internal(format!(
                "the key of partner {} cannot be unsealed (was secret.key replaced?)",
                self.id
            ))
        })
    }

    pub fn currency_code(&self) -> &'static str {
        currency_code(self.currency)
    }
}

pub fn currency_code(numeric: u16) -> &'static str {
    CURRENCIES
        .iter()
        .find(|c| c.0 == numeric)
        .map_or("?", |c| c.1)
}

/// `643`, `840`, `RUB` or `USD` (any case) as the ISO numeric code.
pub fn parse_currency(text: &str) -> Option<u16> {
    let t = text.trim();
    CURRENCIES
        .iter()
        .find(|c| t == c.0.to_string() || t.eq_ignore_ascii_case(c.1))
        .map(|c| c.0)
}

/// A decimal amount of the hub's currency (`20`, `20.5`, `0.0125`) in 1/10000 units.
pub fn parse_micro(text: &str) -> Option<i64> {
    crate::domain::base::money::Money::parse(text, 4, false)
        .map(|m| m.0)
        .filter(|m| *m <= 1_000_000_000 * MICRO)
}

/// 1/10000 units as decimal text with the digits that matter (`20.00`, `0.0125`).
pub fn micro_text(micro: i64) -> String {
    let full = crate::domain::base::money::Money(micro).decimal(4);
    let trimmed = full.trim_end_matches('0');
    match trimmed.split_once('.') {
        Some((_, frac)) if frac.len() >= 2 => trimmed.to_string(),
        Some((int, frac)) => format!("{int}.{frac:0<2}"),
        None => full,
    }
}

/// A hub amount in our minor units (rounded down): `rate_micro` is our minor units per one
/// unit of the hub's currency, in 1/10000.
pub fn to_minor(micro: i64, rate_micro: i64) -> i64 {
    (micro as i128 * rate_micro as i128 / (MICRO as i128 * MICRO as i128))
        .clamp(0, i64::MAX as i128) as i64
}

pub struct NewPartner<'a> {
    pub name: &'a str,
    pub push_url: &'a str,
    pub key: &'a str,
    pub currency: u16,
    pub rate_micro: i64,
    pub floor_micro: i64,
}

fn check_name(name: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 60 || n.chars().any(char::is_control) {
        return Err(Error::invalid(
            "The partner's name must be 1 to 60 characters.",
        ));
    }
    Ok(n.to_string())
}

fn check_key(key: &str) -> Result<&str> {
    let k = key.trim();
    if k.len() < 16 || k.len() > 200 || !k.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Error::invalid(
            "The key must be 16 to 200 printable characters without spaces.",
        ));
    }
    Ok(k)
}

fn check_push_url(url: &str, allow_private: bool) -> Result<String> {
    let u = url.trim();
    crate::outbound::check_url(u, allow_private)
        .map_err(|e| Error::invalid(format!("The push URL is refused: {e}")))?;
    Ok(u.to_string())
}

fn check_rate(rate_micro: i64) -> Result<()> {
    if !(1..=1_000_000 * MICRO).contains(&rate_micro) {
        return Err(Error::invalid(
            "The rate must be more than 0 and at most 1,000,000 of our minor units per unit of the hub's currency.",
        ));
    }
    Ok(())
}

/// Adds a partner and its account; returns its id. `allow_private` lets the push URL point at
/// a private address (`webhook_allow_private`, as for customers' webhooks).
pub fn add(
    conn: &Connection,
    keys: &Keys,
    p: &NewPartner<'_>,
    allow_private: bool,
    now: Timestamp,
) -> Result<i64> {
    let name = check_name(p.name)?;
    let push_url = check_push_url(p.push_url, allow_private)?;
    let key = check_key(p.key)?;
    if currency_code(p.currency) == "?" {
        return Err(Error::invalid(
            "The hub's currency must be 643 (RUB) or 840 (USD).",
        ));
    }
    check_rate(p.rate_micro)?;
    if p.floor_micro < 0 {
        return Err(Error::invalid("The price floor cannot be negative."));
    }
    let next: i64 = conn.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM partners", [], |r| {
        r.get(0)
    })?;
    // Not guessable: nobody can take the address first by signing up with it.
    let email = format!(
        "partner-{next}-{}@partners.invalid",
        crate::domain::base::crypto::random_token(8).to_lowercase()
    );
    conn.prepare_cached(
        "INSERT INTO users (email, display_name, email_verified_at, created_at) \
         VALUES (?1, ?2, ?3, ?3)",
    )?
    .execute(params![email, format!("Partner hub: {name}"), now])?;
    let account = conn.last_insert_rowid();
    conn.prepare_cached(
        "INSERT INTO partners (id, name, push_url, key_sealed, currency, rate_micro, floor_micro, \
         account_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        next,
        name,
        push_url,
        keys.seal(KEY_PURPOSE, key),
        p.currency,
        p.rate_micro,
        p.floor_micro,
        account,
        now
    ])?;
    Ok(next)
}

/// What an admin may change; `None` keeps a field, an empty key keeps the key.
#[derive(Default)]
pub struct Changes<'a> {
    pub name: Option<&'a str>,
    pub push_url: Option<&'a str>,
    pub key: Option<&'a str>,
    pub rate_micro: Option<i64>,
    pub floor_micro: Option<i64>,
    pub enabled: Option<bool>,
}

/// Applies `c`; returns what changed, for the audit log ("" when nothing did). Never the key.
pub fn edit(
    conn: &Connection,
    keys: &Keys,
    id: i64,
    c: &Changes<'_>,
    allow_private: bool,
) -> Result<String> {
    let p = get(conn, id)?.ok_or(Error::NotFound("partner"))?;
    let mut said = Vec::new();
    let name = match c.name {
        Some(n) => check_name(n)?,
        None => p.name.clone(),
    };
    if name != p.name {
        said.push(format!("name {name}"));
    }
    let push_url = match c.push_url {
        Some(u) => check_push_url(u, allow_private)?,
        None => p.push_url.clone(),
    };
    if push_url != p.push_url {
        said.push(format!("push URL {push_url}"));
    }
    let key_sealed = match c.key.map(str::trim).filter(|k| !k.is_empty()) {
        Some(k) => {
            said.push("key replaced".into());
            keys.seal(KEY_PURPOSE, check_key(k)?)
        }
        None => p.key_sealed.clone(),
    };
    let rate = c.rate_micro.unwrap_or(p.rate_micro);
    check_rate(rate)?;
    if rate != p.rate_micro {
        said.push(format!("rate {}", micro_text(rate)));
    }
    let floor = c.floor_micro.unwrap_or(p.floor_micro);
    if floor < 0 {
        return Err(Error::invalid("The price floor cannot be negative."));
    }
    if floor != p.floor_micro {
        said.push(format!("floor {}", micro_text(floor)));
    }
    let enabled = c.enabled.unwrap_or(p.enabled);
    if enabled != p.enabled {
        said.push(if enabled { "enabled" } else { "disabled" }.into());
    }
    conn.prepare_cached(
        "UPDATE partners SET name = ?2, push_url = ?3, key_sealed = ?4, rate_micro = ?5, \
         floor_micro = ?6, enabled = ?7 WHERE id = ?1",
    )?
    .execute(params![
        id, name, push_url, key_sealed, rate, floor, enabled
    ])?;
    Ok(said.join(", "))
}

pub fn get(conn: &Connection, id: i64) -> Result<Option<Partner>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLS} FROM partners WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}

/// Every partner (a handful), by id.
pub fn list(conn: &Connection) -> Result<Vec<Partner>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLS} FROM partners ORDER BY id"))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Notes that the hub called (shown on the admin page).
pub fn called(conn: &Connection, id: i64, now: Timestamp) -> Result<()> {
    conn.prepare_cached("UPDATE partners SET last_call_at = ?2 WHERE id = ?1")?
        .execute(params![id, now])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Names

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Country,
    Service,
    Operator,
}

impl NameKind {
    pub const ALL: [NameKind; 3] = [NameKind::Country, NameKind::Service, NameKind::Operator];

    pub fn as_str(self) -> &'static str {
        match self {
            NameKind::Country => "country",
            NameKind::Service => "service",
            NameKind::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<NameKind> {
        NameKind::ALL.into_iter().find(|k| k.as_str() == s.trim())
    }
}

/// One line of a partner's naming: the hub calls our `ours` `theirs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Name {
    pub kind: String,
    pub theirs: String,
    pub ours: String,
}

/// Parses naming lines `country russia = ru`, `service vk = vk`, `operator mts = mts`
/// (blank lines and `#` comments skipped). A country is ours by ISO code, 5sim name or
/// numeric id; a service by short code; an operator by name.
pub fn parse_names(conn: &Connection, text: &str) -> Result<Vec<(NameKind, String, String)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || {
            Error::invalid(format!(
                "Naming line {}: write `country|service|operator THEIRS = OURS`.",
                i + 1
            ))
        };
        let (kind, rest) = line.split_once(char::is_whitespace).ok_or_else(bad)?;
        let kind = NameKind::parse(kind).ok_or_else(bad)?;
        let (theirs, ours) = rest.split_once('=').ok_or_else(bad)?;
        let (theirs, ours) = (theirs.trim().to_lowercase(), ours.trim());
        if theirs.is_empty() || theirs.len() > 60 || ours.is_empty() || ours.len() > 60 {
            return Err(bad());
        }
        let ours = match kind {
            NameKind::Country => find_country(conn, ours)?
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "Naming line {}: no country `{ours}` in the catalogue.",
                        i + 1
                    ))
                })?
                .to_string(),
            NameKind::Service => {
                let s = catalogue::service(conn, ours)?.ok_or_else(|| {
                    Error::invalid(format!(
                        "Naming line {}: no service `{ours}` in the catalogue.",
                        i + 1
                    ))
                })?;
                s.code
            }
            NameKind::Operator => ours.to_lowercase(),
        };
        if out.iter().any(|(k, t, o): &(NameKind, String, String)| {
            *k == kind && (*t == theirs || *o == ours)
        }) {
            return Err(Error::invalid(format!(
                "Naming line {}: each name may appear once per kind.",
                i + 1
            )));
        }
        out.push((kind, theirs, ours));
    }
    Ok(out)
}

fn find_country(conn: &Connection, text: &str) -> Result<Option<i64>> {
    let t = text.trim().to_lowercase();
    if let Ok(id) = t.parse::<i64>() {
        return Ok(catalogue::country(conn, id)?.map(|c| c.id));
    }
    Ok(conn
        .prepare_cached("SELECT id FROM countries WHERE iso = ?1 OR fivesim_name = ?1")?
        .query_row([t], |r| r.get(0))
        .optional()?)
}

/// Replaces a partner's whole naming.
pub fn set_names(
    conn: &Connection,
    partner_id: i64,
    names: &[(NameKind, String, String)],
) -> Result<()> {
    conn.prepare_cached("DELETE FROM partner_names WHERE partner_id = ?1")?
        .execute([partner_id])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO partner_names (partner_id, kind, theirs, ours) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (kind, theirs, ours) in names {
        insert.execute(params![partner_id, kind.as_str(), theirs, ours])?;
    }
    Ok(())
}

/// A partner's naming, as lines [`parse_names`] reads back (countries by ISO code).
pub fn names(conn: &Connection, partner_id: i64) -> Result<Vec<Name>> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.kind, p.theirs, CASE p.kind WHEN 'country' THEN \
         COALESCE((SELECT iso FROM countries c WHERE c.id = p.ours), p.ours) ELSE p.ours END \
         FROM partner_names p WHERE p.partner_id = ?1 ORDER BY p.kind, p.theirs",
    )?;
    let rows = stmt.query_map([partner_id], |r| {
        Ok(Name {
            kind: r.get(0)?,
            theirs: r.get(1)?,
            ours: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn names_text(names: &[Name]) -> String {
    names
        .iter()
        .map(|n| format!("{} {} = {}\n", n.kind, n.theirs, n.ours))
        .collect()
}

/// The partner's map of one kind: (theirs, ours); empty when it uses our own names.
fn name_map(conn: &Connection, partner_id: i64, kind: NameKind) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT theirs, ours FROM partner_names WHERE partner_id = ?1 AND kind = ?2",
    )?;
    let rows = stmt.query_map(params![partner_id, kind.as_str()], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Our name for a hub's: through the partner's map when it has one of that kind, else the
/// hub's name is ours (lower case). `None`: not ours.
fn ours_for(map: &[(String, String)], theirs: &str) -> Option<String> {
    let t = theirs.trim().to_lowercase();
    if map.is_empty() {
        Some(t)
    } else {
        map.iter().find(|(th, _)| *th == t).map(|(_, o)| o.clone())
    }
}

/// The hub's name for ours (`None`: the partner's map leaves it out).
fn theirs_for(map: &[(String, String)], ours: &str, default: &str) -> Option<String> {
    if map.is_empty() {
        Some(default.to_string())
    } else {
        map.iter().find(|(_, o)| o == ours).map(|(t, _)| t.clone())
    }
}

// ---------------------------------------------------------------------------------------
// GET_SERVICES

/// What GET_SERVICES reports for one country: operator (or `any`) → service → count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountryOffer {
    pub country: String,
    pub operators: Vec<(String, Vec<(String, i64)>)>,
}

/// The numbers a hub could get at this moment, per country, operator and service: the own
/// stock (the catalogue's counters: free numbers on sale, less those used for the service
/// within the cooldown or blocked for it), less the usable numbers that are not real SIMs
/// (the simulator's pool) and the numbers this hub already cancelled [`MAX_OFFERS`] times for
/// the service. Where those overlap a count comes out lower, never higher: a hub blocks an
/// agent that over-reports. Costs the size of the catalogue and the simulator's pool, not the
/// inventory. A country is reported by operator when every one of its free numbers names
/// one, else as `any`; that choice is stored at its first report and kept.
pub fn offers(
    conn: &Connection,
    partner: &Partner,
    cooldown: u64,
    now: Timestamp,
) -> Result<Vec<CountryOffer>> {
    if !partner.enabled {
        return Ok(Vec::new());
    }
    let own = catalogue::own_counts(conn, cooldown, now)?;
    let mut not_sim: std::collections::HashMap<(i64, String), i64> = Default::default();
    let mut stmt = conn.prepare_cached(
        "SELECT country_id, operator, COUNT(*) FROM numbers INDEXED BY numbers_not_sim \
         WHERE state = 'free' AND on_sale = 1 AND source NOT IN ('sim', 'manual') \
         GROUP BY country_id, operator",
    )?;
    for row in stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))? {
        let (k, n) = row?;
        not_sim.insert(k, n);
    }
    let mut retired: std::collections::HashMap<(i64, String, String), i64> = Default::default();
    let mut stmt = conn.prepare_cached(
        "SELECT n.country_id, n.operator, o.service, COUNT(*) \
         FROM partner_offers o INDEXED BY partner_offers_retired \
         JOIN numbers n ON n.id = o.number_id \
         WHERE o.partner_id = ?1 AND o.canceled >= 4 AND n.state = 'free' AND n.on_sale = 1 \
         GROUP BY n.country_id, n.operator, o.service",
    )?;
    for row in stmt.query_map([partner.id], |r| {
        Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?))
    })? {
        let (k, n) = row?;
        retired.insert(k, n);
    }
    let services: Vec<String> = catalogue::services(conn)?
        .into_iter()
        .filter(|s| s.enabled)
        .map(|s| s.code)
        .collect();
    let countries = name_map(conn, partner.id, NameKind::Country)?;
    let service_names = name_map(conn, partner.id, NameKind::Service)?;
    let operator_names = name_map(conn, partner.id, NameKind::Operator)?;
    // Per country: (operator, free real SIMs) where any.
    let mut by_country: std::collections::BTreeMap<i64, Vec<(String, i64)>> = Default::default();
    for ((country_id, operator), free) in &own.free {
        let n = free
            - not_sim
                .get(&(*country_id, operator.clone()))
                .copied()
                .unwrap_or(0);
        if n > 0 {
            by_country
                .entry(*country_id)
                .or_default()
                .push((operator.clone(), n));
        }
    }
    let mut out = Vec::new();
    for (country_id, operators) in by_country {
        let Some(country) = catalogue::country(conn, country_id)?.filter(|c| c.enabled) else {
            continue;
        };
        let Some(their_country) =
            theirs_for(&countries, &country_id.to_string(), &country.fivesim_name)
        else {
            continue;
        };
        let by_operator = reporting(conn, partner.id, country_id, &operators)?;
        let mut blocked = std::collections::HashSet::new();
        for service in &services {
            match blocklist::check(conn, country_id, service) {
                Ok(()) => {}
                Err(Error::Blocked(_)) => {
                    blocked.insert(service.clone());
                }
                Err(e) => return Err(e),
            }
        }
        let mut ops: Vec<(String, Vec<(String, i64)>)> = Vec::new();
        for (operator, free) in &operators {
            let op_name = if by_operator {
                let lower = operator.to_lowercase();
                match theirs_for(&operator_names, &lower, &lower) {
                    Some(o) if !o.is_empty() => o,
                    _ => continue,
                }
            } else {
                "any".to_string()
            };
            let slot = match ops.iter().position(|(o, _)| *o == op_name) {
                Some(p) => p,
                None => {
                    ops.push((op_name, Vec::new()));
                    ops.len() - 1
                }
            };
            for service in &services {
                let Some(svc) = theirs_for(&service_names, service, service) else {
                    continue;
                };
                if blocked.contains(service) {
                    continue;
                }
                let key = (country_id, operator.clone(), service.clone());
                let n = free
                    - own.taken.get(&key).copied().unwrap_or(0)
                    - retired.get(&key).copied().unwrap_or(0);
                if n <= 0 {
                    continue;
                }
                let list = &mut ops[slot].1;
                match list.iter_mut().find(|(s, _)| *s == svc) {
                    Some(entry) => entry.1 += n,
                    None => list.push((svc, n)),
                }
            }
        }
        ops.retain(|(_, list)| !list.is_empty());
        if !ops.is_empty() {
            out.push(CountryOffer {
                country: their_country,
                operators: ops,
            });
        }
    }
    Ok(out)
}

/// Whether a country is reported to the partner by operator: as stored, or decided now
/// (every free number names an operator) and stored.
fn reporting(
    conn: &Connection,
    partner_id: i64,
    country_id: i64,
    operators: &[(String, i64)],
) -> Result<bool> {
    let stored: Option<bool> = conn
        .prepare_cached(
            "SELECT by_operator FROM partner_countries WHERE partner_id = ?1 AND country_id = ?2",
        )?
        .query_row(params![partner_id, country_id], |r| r.get(0))
        .optional()?;
    if let Some(b) = stored {
        return Ok(b);
    }
    let by_operator = operators.iter().all(|(op, _)| !op.is_empty());
    conn.prepare_cached(
        "INSERT OR IGNORE INTO partner_countries (partner_id, country_id, by_operator) \
         VALUES (?1, ?2, ?3)",
    )?
    .execute(params![partner_id, country_id, by_operator])?;
    Ok(by_operator)
}

// ---------------------------------------------------------------------------------------
// GET_NUMBER

/// A country as the hub names it: by name (SMSHub, SMSBower) or by numeric id (Grizzly,
/// in the SMS-Activate numbering our catalogue uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CountryRef {
    Name(String),
    Id(i64),
}

#[derive(Debug, Clone)]
pub struct NumberRequest {
    pub country: CountryRef,
    pub operator: String,
    pub service: String,
    pub sum_micro: i64,
    pub currency: Option<u16>,
    /// Prefixes (with country code) that must not be handed out.
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Given {
    Number {
        activation_id: i64,
        phone: String,
    },
    /// No number (none free, or the price is below the floor).
    NoNumbers(&'static str),
}

/// Hands the hub a number for `req`, or says there is none. The number is taken (busy) and
/// the order recorded in the caller's transaction.
pub fn get_number(
    conn: &Connection,
    partner: &Partner,
    req: &NumberRequest,
    cooldown: u64,
    now: Timestamp,
) -> Result<Given> {
    if let Some(c) = req.currency.filter(|c| *c != partner.currency) {
        return Err(Error::invalid(format!(
            "currency {c} is not this agent's currency {} ({})",
            partner.currency,
            partner.currency_code()
        )));
    }
    if !partner.enabled {
        return Ok(Given::NoNumbers("partner disabled"));
    }
    if req.sum_micro < partner.floor_micro {
        return Ok(Given::NoNumbers("sum below the agent's floor"));
    }
    let map = name_map(conn, partner.id, NameKind::Country)?;
    let country_id: Option<i64> = match &req.country {
        // With a naming of countries, only the named ones are offered, by id too.
        CountryRef::Id(id) if !map.is_empty() => {
            map.iter().any(|(_, o)| *o == id.to_string()).then_some(*id)
        }
        CountryRef::Id(id) => Some(*id),
        CountryRef::Name(name) => match ours_for(&map, name) {
            Some(ours) if !map.is_empty() => ours.parse().ok(),
            Some(ours) => catalogue::country_by_fivesim(conn, &ours)?.map(|c| c.id),
            None => None,
        },
    };
    let country = match country_id {
        Some(id) => catalogue::country(conn, id)?.filter(|c| c.enabled),
        None => None,
    };
    let Some(country_id) = country.map(|c| c.id) else {
        return Ok(Given::NoNumbers("country not offered"));
    };
    let service = ours_for(
        &name_map(conn, partner.id, NameKind::Service)?,
        &req.service,
    )
    .and_then(|s| catalogue::service(conn, &s).transpose())
    .transpose()?
    .filter(|s| s.enabled);
    let Some(service) = service else {
        return Ok(Given::NoNumbers("service not offered"));
    };
    if blocklist::check(conn, country_id, &service.code).is_err() {
        return Ok(Given::NoNumbers("blocked by the admin"));
    }
    let operator = match req.operator.trim() {
        "" | "any" => String::new(),
        op => match ours_for(&name_map(conn, partner.id, NameKind::Operator)?, op) {
            Some(o) => o,
            None => return Ok(Given::NoNumbers("operator not offered")),
        },
    };
    let exclude: Vec<String> = req
        .exclude
        .iter()
        .map(|p| crate::domain::market::inbox::digits(p))
        .filter(|p| !p.is_empty())
        .collect();
    let mut stmt = conn.prepare_cached(
        "SELECT n.id, n.phone, n.operator FROM numbers n \
         WHERE n.country_id = ?1 AND n.state = 'free' AND n.source IN ('sim', 'manual') \
         AND n.on_sale = 1 AND (?2 = '' OR lower(n.operator) = ?2) \
         AND NOT EXISTS (SELECT 1 FROM number_usage u WHERE u.number_id = n.id \
                         AND u.service = ?3 AND (u.blocked = 1 OR u.last_used_at > ?4)) \
         AND NOT EXISTS (SELECT 1 FROM partner_offers o WHERE o.partner_id = ?5 \
                         AND o.number_id = n.id AND o.service = ?3 AND o.canceled >= ?6) \
         ORDER BY n.last_used_at, n.id",
    )?;
    let mut rows = stmt.query(params![
        country_id,
        operator,
        service.code,
        cooldown_cutoff(cooldown, now),
        partner.id,
        MAX_OFFERS
    ])?;
    let mut found = None;
    while let Some(r) = rows.next()? {
        let phone: String = r.get(1)?;
        if exclude.iter().any(|p| phone.starts_with(p.as_str())) {
            continue;
        }
        found = Some((r.get::<_, i64>(0)?, phone, r.get::<_, String>(2)?));
        break;
    }
    drop(rows);
    let Some((number_id, phone, number_operator)) = found else {
        return Ok(Given::NoNumbers("no free number"));
    };
    let usage_before: Option<i64> = conn
        .prepare_cached(
            "SELECT last_used_at FROM number_usage WHERE number_id = ?1 AND service = ?2",
        )?
        .query_row(params![number_id, service.code], |r| r.get(0))
        .optional()?;
    activations::take_number(conn, number_id, &service.code, now)?;
    conn.prepare_cached(
        "INSERT INTO partner_orders (partner_id, number_id, phone, country_id, operator, service, \
         sum_micro, price_minor, usage_before, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        partner.id,
        number_id,
        phone,
        country_id,
        number_operator,
        service.code,
        req.sum_micro,
        to_minor(req.sum_micro, partner.rate_micro),
        usage_before,
        now
    ])?;
    Ok(Given::Number {
        activation_id: conn.last_insert_rowid(),
        phone,
    })
}

// ---------------------------------------------------------------------------------------
// Orders and FINISH_ACTIVATION

#[derive(Debug, Clone, Serialize)]
pub struct Order {
    pub id: i64,
    pub partner_id: i64,
    pub number_id: i64,
    pub phone: String,
    pub country_id: i64,
    pub operator: String,
    pub service: String,
    pub sum_micro: i64,
    pub price_minor: i64,
    pub state: String,
    pub held: bool,
    pub usage_before: Option<i64>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub late_status: Option<i64>,
}

const ORDER_COLS: &str = "id, partner_id, number_id, phone, country_id, operator, service, \
    sum_micro, price_minor, state, held, usage_before, created_at, finished_at, late_status";

fn order_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Order> {
    Ok(Order {
        id: r.get(0)?,
        partner_id: r.get(1)?,
        number_id: r.get(2)?,
        phone: r.get(3)?,
        country_id: r.get(4)?,
        operator: r.get(5)?,
        service: r.get(6)?,
        sum_micro: r.get(7)?,
        price_minor: r.get(8)?,
        state: r.get(9)?,
        held: r.get(10)?,
        usage_before: r.get(11)?,
        created_at: r.get(12)?,
        finished_at: r.get(13)?,
        late_status: r.get(14)?,
    })
}

pub fn order(conn: &Connection, id: i64) -> Result<Option<Order>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {ORDER_COLS} FROM partner_orders WHERE id = ?1"
        ))?
        .query_row([id], order_from_row)
        .optional()?)
}

/// A partner's orders, newest first, `before` an id (keyset).
pub fn orders_page(
    conn: &Connection,
    partner_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Order>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ORDER_COLS} FROM partner_orders WHERE partner_id = ?1 AND id < ?2 \
         ORDER BY id DESC LIMIT ?3"
    ))?;
    let rows = stmt.query_map(
        params![partner_id, before.unwrap_or(i64::MAX), limit],
        order_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// How a hub ends an order (FINISH_ACTIVATION `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// 1: the number is already registered with the service; never offer it for it again.
    Used,
    /// 3: sold; the hub pays.
    Sold,
    /// 4: cancelled; the number may be offered again.
    Canceled,
    /// 5: the hub refunded its customer.
    Refunded,
}

impl Finish {
    pub fn from_code(code: i64) -> Option<Finish> {
        match code {
            1 => Some(Finish::Used),
            3 => Some(Finish::Sold),
            4 => Some(Finish::Canceled),
            5 => Some(Finish::Refunded),
            _ => None,
        }
    }

    pub fn code(self) -> i64 {
        match self {
            Finish::Used => 1,
            Finish::Sold => 3,
            Finish::Canceled => 4,
            Finish::Refunded => 5,
        }
    }

    fn state(self) -> &'static str {
        match self {
            Finish::Used => "used",
            Finish::Sold => "sold",
            Finish::Canceled => "canceled",
            Finish::Refunded => "refunded",
        }
    }
}

/// Applies FINISH_ACTIVATION. Idempotent: an order already finished is left as it is (a
/// different later status is only noted). `operator_share` is the percent of the sale the
/// number's operator earns.
pub fn finish(
    conn: &Connection,
    partner: &Partner,
    activation_id: i64,
    how: Finish,
    operator_share: u32,
    now: Timestamp,
) -> Result<()> {
    let o = order(conn, activation_id)?
        .filter(|o| o.partner_id == partner.id)
        .ok_or(Error::NotFound("activation"))?;
    if o.state != "live" {
        if o.state != how.state() {
            conn.prepare_cached(
                "UPDATE partner_orders SET late_status = COALESCE(late_status, ?2) WHERE id = ?1",
            )?
            .execute(params![o.id, how.code()])?;
        }
        return Ok(());
    }
    let n = conn
        .prepare_cached(
            "UPDATE partner_orders SET state = ?2, finished_at = ?3, held = 0 \
             WHERE id = ?1 AND state = 'live'",
        )?
        .execute(params![o.id, how.state(), now])?;
    if n != 1 {
        return Ok(());
    }
    if o.held {
        activations::free_number(conn, Some(o.number_id), now)?;
    }
    match how {
        Finish::Used => {
            conn.prepare_cached(
                "INSERT INTO number_usage (number_id, service, last_used_at, blocked) \
                 VALUES (?1, ?2, ?3, 1) \
                 ON CONFLICT (number_id, service) DO UPDATE SET blocked = 1",
            )?
            .execute(params![o.number_id, o.service, o.created_at])?;
        }
        Finish::Sold => {
            let note = format!("{} sold to {}", o.service, partner.name);
            wallet::post_receivable(
                conn,
                partner.account_id,
                -o.price_minor,
                (LEDGER_REF, Some(o.id)),
                &note,
                now,
            )?;
            earnings::credit_partner_sale(conn, &o, operator_share, now)?;
        }
        Finish::Canceled => {
            conn.prepare_cached(
                "INSERT INTO partner_offers (partner_id, number_id, service, canceled) \
                 VALUES (?1, ?2, ?3, 1) ON CONFLICT (partner_id, number_id, service) \
                 DO UPDATE SET canceled = canceled + 1",
            )?
            .execute(params![partner.id, o.number_id, o.service])?;
            // The number goes back to the service as if this order had not been, unless
            // someone used it for the service since.
            let same: Option<i64> = conn
                .prepare_cached(
                    "SELECT last_used_at FROM number_usage WHERE number_id = ?1 AND service = ?2",
                )?
                .query_row(params![o.number_id, o.service], |r| r.get(0))
                .optional()?;
            if same == Some(o.created_at) {
                match o.usage_before {
                    Some(t) => conn
                        .prepare_cached(
                            "UPDATE number_usage SET last_used_at = ?3 \
                             WHERE number_id = ?1 AND service = ?2",
                        )?
                        .execute(params![o.number_id, o.service, t])?,
                    None => conn
                        .prepare_cached(
                            "DELETE FROM number_usage WHERE number_id = ?1 AND service = ?2 \
                             AND blocked = 0",
                        )?
                        .execute(params![o.number_id, o.service])?,
                };
            }
        }
        Finish::Refunded => {}
    }
    Ok(())
}

/// Frees the numbers of orders a hub has held longer than [`HOLD_MAX`] without finishing
/// them (the orders stay open for a late FINISH). Returns how many.
pub fn release_stale(conn: &Connection, now: Timestamp) -> Result<usize> {
    let stale: Vec<(i64, i64)> = conn
        .prepare_cached(
            "SELECT id, number_id FROM partner_orders WHERE held = 1 AND created_at <= ?1 \
             ORDER BY created_at LIMIT 500",
        )?
        .query_map([now - HOLD_MAX], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, number_id) in &stale {
        conn.prepare_cached("UPDATE partner_orders SET held = 0 WHERE id = ?1")?
            .execute([id])?;
        activations::free_number(conn, Some(*number_id), now)?;
    }
    Ok(stale.len())
}

// ---------------------------------------------------------------------------------------
// PUSH_SMS

/// The partner order holding `number_id`, if a hub holds it.
pub fn held_by(conn: &Connection, number_id: i64) -> Result<Option<Order>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {ORDER_COLS} FROM partner_orders WHERE number_id = ?1 AND held = 1 \
             ORDER BY id DESC LIMIT 1"
        ))?
        .query_row([number_id], order_from_row)
        .optional()?)
}

/// Queues an SMS for the hub holding its number; returns the push id (the `smsId`).
pub fn queue_push(
    conn: &Connection,
    o: &Order,
    sender: &str,
    text: &str,
    now: Timestamp,
) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO partner_pushes (partner_id, order_id, phone, sender, text, next_at, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?
    .execute(params![o.partner_id, o.id, o.phone, sender, text, now])?;
    Ok(conn.last_insert_rowid())
}

/// A push to send now.
#[derive(Debug, Clone)]
pub struct Push {
    pub id: i64,
    pub partner_id: i64,
    pub push_url: String,
    pub key_sealed: String,
    pub phone: String,
    pub sender: String,
    pub text: String,
    pub created_at: Timestamp,
    /// When the hub finished the order, if it did.
    pub order_finished_at: Option<Timestamp>,
}

impl Push {
    /// The PUSH_SMS body: `smsId` and `phone` are JSON numbers, as the hubs require.
    pub fn body(&self, key: &str) -> String {
        serde_json::json!({
            "action": "PUSH_SMS",
            "key": key,
            "smsId": self.id,
            "phone": self.phone.parse::<u64>().unwrap_or(0),
            "phoneFrom": self.sender,
            "text": self.text,
        })
        .to_string()
    }
}

/// Pushes due now (oldest first), at most `limit`.
pub fn due_pushes(conn: &Connection, now: Timestamp, limit: i64) -> Result<Vec<Push>> {
    let mut stmt = conn.prepare_cached(
        "SELECT q.id, q.partner_id, p.push_url, p.key_sealed, q.phone, q.sender, q.text, \
         q.created_at, o.finished_at FROM partner_pushes q JOIN partners p ON p.id = q.partner_id \
         JOIN partner_orders o ON o.id = q.order_id \
         WHERE q.state = 'pending' AND q.next_at <= ?1 ORDER BY q.next_at, q.id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now, limit], |r| {
        Ok(Push {
            id: r.get(0)?,
            partner_id: r.get(1)?,
            push_url: r.get(2)?,
            key_sealed: r.get(3)?,
            phone: r.get(4)?,
            sender: r.get(5)?,
            text: r.get(6)?,
            created_at: r.get(7)?,
            order_finished_at: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn unseal_key(keys: &Keys, sealed: &str) -> Option<String> {
    keys.open(KEY_PURPOSE, sealed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushState {
    Delivered,
    Retrying,
    GivenUp,
}

/// Records one attempt: `error` empty means the hub answered SUCCESS (then the text is
/// cleared and the push is never sent again).
pub fn record_push(conn: &Connection, p: &Push, error: &str, now: Timestamp) -> Result<PushState> {
    if error.is_empty() {
        conn.prepare_cached(
            "UPDATE partner_pushes SET state = 'delivered', text = '', attempts = attempts + 1, \
             delivered_at = ?2, last_error = '' WHERE id = ?1 AND state = 'pending'",
        )?
        .execute(params![p.id, now])?;
        conn.prepare_cached("UPDATE partners SET push_failures = 0 WHERE id = ?1")?
            .execute([p.partner_id])?;
        return Ok(PushState::Delivered);
    }
    let error: String = error.chars().take(300).collect();
    let give_up = now - p.created_at >= PUSH_GIVE_UP
        || p.order_finished_at
            .is_some_and(|t| now - t >= PUSH_AFTER_END);
    conn.prepare_cached(
        "UPDATE partner_pushes SET attempts = attempts + 1, last_error = ?2, next_at = ?3, \
         state = CASE WHEN ?4 THEN 'failed' ELSE state END, \
         text = CASE WHEN ?4 THEN '' ELSE text END WHERE id = ?1 AND state = 'pending'",
    )?
    .execute(params![p.id, error, now + PUSH_RETRY, give_up])?;
    conn.prepare_cached(
        "UPDATE partners SET push_failures = push_failures + 1, last_push_error = ?2, \
         last_push_error_at = ?3 WHERE id = ?1",
    )?
    .execute(params![p.partner_id, error, now])?;
    Ok(if give_up {
        PushState::GivenUp
    } else {
        PushState::Retrying
    })
}

/// Deletes push rows older than [`PUSH_KEEP`] (a batch); returns how many.
pub fn prune_pushes(conn: &Connection, now: Timestamp) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM partner_pushes WHERE id IN (SELECT id FROM partner_pushes \
             WHERE created_at < ?1 ORDER BY created_at LIMIT 500)",
        )?
        .execute([now - PUSH_KEEP])?)
}

/// One push as the admin sees it (never the text).
#[derive(Debug, Clone, Serialize)]
pub struct PushRow {
    pub id: i64,
    pub order_id: i64,
    pub phone: String,
    pub state: String,
    pub attempts: i64,
    pub last_error: String,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
}

/// A partner's pushes, newest first, `before` an id (keyset).
pub fn pushes_page(
    conn: &Connection,
    partner_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<PushRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, order_id, phone, state, attempts, last_error, created_at, delivered_at \
         FROM partner_pushes WHERE partner_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![partner_id, before.unwrap_or(i64::MAX), limit],
        |r| {
            Ok(PushRow {
                id: r.get(0)?,
                order_id: r.get(1)?,
                phone: r.get(2)?,
                state: r.get(3)?,
                attempts: r.get(4)?,
                last_error: r.get(5)?,
                created_at: r.get(6)?,
                delivered_at: r.get(7)?,
            })
        },
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// What the admin sees beside a partner: orders in progress and pushes waiting, from the
/// live-row indexes; what the hub owes is its account's balance (negated).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    pub held: i64,
    pub pushes_waiting: i64,
    pub owed_minor: i64,
}

pub fn health(conn: &Connection, p: &Partner) -> Result<Health> {
    let held: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM partner_orders INDEXED BY partner_orders_held \
             WHERE held = 1 AND partner_id = ?1",
        )?
        .query_row([p.id], |r| r.get(0))?;
    let pushes_waiting: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM partner_pushes INDEXED BY partner_pushes_due \
             WHERE state = 'pending' AND partner_id = ?1",
        )?
        .query_row([p.id], |r| r.get(0))?;
    Ok(Health {
        held,
        pushes_waiting,
        owed_minor: -wallet::balance(conn, p.account_id)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_amounts_convert_exactly_and_round_down() {
        assert_eq!(parse_micro("20"), Some(200_000));
        assert_eq!(parse_micro("0.0125"), Some(125));
        assert_eq!(parse_micro("0.00001"), None, "at most four decimals");
        assert_eq!(parse_micro("-1"), None);
        assert_eq!(parse_micro("2000000000"), None, "bounded");
        // 20.00 RUB at 1.1 US cents per ruble is 22 cents; 0.25 USD at 100 is 25 cents.
        assert_eq!(to_minor(200_000, parse_micro("1.1").unwrap()), 22);
        assert_eq!(to_minor(2_500, 100 * MICRO), 25);
        assert_eq!(to_minor(19_999, 100 * MICRO), 199, "rounded down");
        assert_eq!(micro_text(200_000), "20.00");
        assert_eq!(micro_text(125), "0.0125");
        assert_eq!(micro_text(11_000), "1.10");
    }

    #[test]
    fn currencies_are_the_protocols_two() {
        assert_eq!(parse_currency("643"), Some(643));
        assert_eq!(parse_currency("usd"), Some(840));
        assert_eq!(parse_currency("978"), None);
        assert_eq!(currency_code(643), "RUB");
    }
}
