//! Upstream providers that otpbox resells (SPEC §6): their settings, their sealed keys, the
//! offers of their last sync, the health of their calls (latency, success rate, the circuit
//! breaker) and the candidates an order may be bought from.
//!
//! A provider's key is stored only sealed with the install key ([`Keys::seal`]) and is opened
//! only by the code that calls the provider; it is never shown back. Prices upstream are
//! decimals in the provider's currency and are parsed exactly (no floats): `cost_minor =
//! ceil(cost × unit_minor)`, `price_minor = ceil(cost_minor × (10000 + markup_bp) / 10000)`.
//! No network here: `crate::upstream` calls the providers.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::domain::base::crypto::Keys;
use crate::domain::market::catalogue::PROVIDER_SELLING;
use crate::domain::{Error, Result};

/// The purpose a provider key is sealed under.
const KEY_PURPOSE: &str = "provider-key";

/// The protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Kind {
    /// SMS-Activate `handler_api.php` and its clones (protocols.md §1).
    SmsActivate,
    /// 5sim REST v1 (protocols.md §2).
    FiveSim,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::SmsActivate, Kind::FiveSim];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SmsActivate => "sms-activate",
            Kind::FiveSim => "5sim",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        match text.trim().to_ascii_lowercase().as_str() {
            "sms-activate" | "smsactivate" | "sms_activate" => Some(Kind::SmsActivate),
            "5sim" | "fivesim" => Some(Kind::FiveSim),
            _ => None,
        }
    }
}

/// A provider as stored. Its key stays sealed (and out of `Debug`).
#[derive(Clone, Serialize)]
pub struct Provider {
    pub id: i64,
    pub name: String,
    pub kind: Kind,
    pub base_url: String,
    #[serde(skip)]
    key_sealed: String,
    pub markup_bp: i64,
    pub priority: i64,
    pub unit_minor: i64,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub synced_at: Option<Timestamp>,
    pub balance_minor: Option<i64>,
    pub failures: i64,
    pub paused_until: Option<Timestamp>,
    pub last_error: String,
    pub last_error_at: Option<Timestamp>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// The plain key, for the code that calls the provider. Never show or log it.
    pub fn key(&self, keys: &Keys) -> Result<String> {
        keys.open(KEY_PURPOSE, &self.key_sealed).ok_or_else(|| {
            Error::Internal(format!(
                "the key of provider {} cannot be opened (was the install key replaced?)",
                self.id
            ))
        })
    }

    pub fn is_paused(&self, now: Timestamp) -> bool {
        self.paused_until.is_some_and(|t| t > now)
    }

    /// Enabled and not paused: its stock is on sale.
    pub fn is_selling(&self, now: Timestamp) -> bool {
        self.enabled && !self.is_paused(now)
    }
}

const COLS: &str = "id, name, kind, base_url, key_sealed, markup_bp, priority, unit_minor, enabled, \
                    created_at, synced_at, balance_minor, failures, paused_until, last_error, last_error_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Provider> {
    let kind: String = r.get(2)?;
    Ok(Provider {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: Kind::parse(&kind).unwrap_or(Kind::SmsActivate),
        base_url: r.get(3)?,
        key_sealed: r.get(4)?,
        markup_bp: r.get(5)?,
        priority: r.get(6)?,
        unit_minor: r.get(7)?,
        enabled: r.get(8)?,
        created_at: r.get(9)?,
        synced_at: r.get(10)?,
        balance_minor: r.get(11)?,
        failures: r.get(12)?,
        paused_until: r.get(13)?,
        last_error: r.get(14)?,
        last_error_at: r.get(15)?,
    })
}

pub fn get(conn: &Connection, id: i64) -> Result<Option<Provider>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLS} FROM providers WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}

/// Every provider, highest priority first.
pub fn list(conn: &Connection) -> Result<Vec<Provider>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM providers ORDER BY priority DESC, id"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// ---------------------------------------------------------------------------------------
// Settings and their parsing

/// `20%`, `12.5%`, `20` or `0.25%` → basis points (2000, 1250, 2000, 25); at most 1000%.
pub fn parse_markup(text: &str) -> Result<i64> {
    let bad = || Error::invalid(format!("`{text}` is not a markup like 20% or 12.5%"));
    let t = text.trim();
    let t = t.strip_suffix('%').unwrap_or(t).trim();
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
        || int.len() > 6
    {
        return Err(bad());
    }
    let whole: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let cents: i64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    let bp = whole * 100 + cents;
    if bp > 100_000 {
        return Err(Error::invalid("The markup can be at most 1000%."));
    }
    Ok(bp)
}

/// Basis points as a percentage for display: 2000 → `20%`, 1250 → `12.5%`.
pub fn markup_text(bp: i64) -> String {
    let whole = bp / 100;
    match bp % 100 {
        0 => format!("{whole}%"),
        c if c % 10 == 0 => format!("{whole}.{}%", c / 10),
        c => format!("{whole}.{c:02}%"),
    }
}

/// An http(s) URL with a host, without spaces or credentials; trailing slashes removed.
pub fn check_url(text: &str) -> Result<String> {
    let t = text.trim().trim_end_matches('/');
    let rest = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"))
        .ok_or_else(|| Error::invalid("The provider URL must start with http:// or https://."))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains('@') || t.chars().any(|c| c.is_whitespace()) {
        return Err(Error::invalid(
            "The provider URL needs a host name and no spaces or user name.",
        ));
    }
    if t.len() > 500 {
        return Err(Error::invalid("The provider URL is too long."));
    }
    Ok(t.to_string())
}

fn check_key(key: &str) -> Result<&str> {
    let k = key.trim();
    if k.is_empty() {
        return Err(Error::invalid("Enter the provider's API key."));
    }
    if k.len() > 2000 || k.chars().any(|c| c.is_control()) {
        return Err(Error::invalid("The API key is not valid text."));
    }
    Ok(k)
}

fn check_name(name: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 60 || n.chars().any(|c| c.is_control()) {
        return Err(Error::invalid(
            "Give the provider a name of 1 to 60 characters.",
        ));
    }
    Ok(n.to_string())
}

/// A decimal as the provider wrote it (`0.5`, `"12.50"`, `3`, `1e-2`): digits and the
/// power of ten to divide them by. None for negatives, junk and absurd sizes.
fn parse_decimal(text: &str) -> Option<(u128, u32)> {
    let t = text.trim().trim_matches('"').trim();
    let (num, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i32>().ok()?),
        None => (t, 0),
    };
    let num = num.strip_prefix('+').unwrap_or(num);
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || int.len() + frac.len() > 30
    {
        return None;
    }
    let mut digits: u128 = format!("{int}{frac}")
        .trim_start_matches('0')
        .parse()
        .unwrap_or(0);
    let mut scale = frac.len() as i32 - exp;
    if !(-12..=40).contains(&scale) {
        return None;
    }
    while scale < 0 {
        digits = digits.checked_mul(10)?;
        scale += 1;
    }
    Some((digits, scale as u32))
}

/// `amount × unit_minor` rounded up (costs) or down (balances), in our minor units.
fn convert(text: &str, unit_minor: i64, up: bool) -> Option<i64> {
    let (digits, scale) = parse_decimal(text)?;
    let num = digits.checked_mul(u128::try_from(unit_minor).ok()?)?;
    let den = 10u128.checked_pow(scale)?;
    let q = num / den + u128::from(up && num % den != 0);
    i64::try_from(q).ok().filter(|v| *v < i64::MAX / 20_000)
}

/// A provider's cost (decimal text in its currency) in our minor units, rounded up.
pub fn cost_minor(text: &str, unit_minor: i64) -> Option<i64> {
    convert(text, unit_minor, true)
}

/// A provider's balance (decimal text in its currency) in our minor units, rounded down.
pub fn balance_minor(text: &str, unit_minor: i64) -> Option<i64> {
    convert(text, unit_minor, false)
}

/// Our price for a cost: the markup added, rounded up.
pub fn with_markup(cost_minor: i64, markup_bp: i64) -> i64 {
    let n = cost_minor as i128 * (10_000 + markup_bp) as i128;
    ((n + 9_999) / 10_000) as i64
}

/// What the admin gives to add a provider.
pub struct NewProvider<'a> {
    pub kind: Kind,
    pub name: &'a str,
    pub base_url: &'a str,
    pub key: &'a str,
    pub markup_bp: i64,
    pub priority: i64,
    pub unit_minor: i64,
}

fn check_unit(unit_minor: i64) -> Result<()> {
    if !(1..=1_000_000_000).contains(&unit_minor) {
        return Err(Error::invalid(
            "The unit must be a whole number of minor units from 1 up.",
        ));
    }
    Ok(())
}

fn check_priority(priority: i64) -> Result<()> {
    if !(-1000..=1000).contains(&priority) {
        return Err(Error::invalid(
            "The priority must be between -1000 and 1000.",
        ));
    }
    Ok(())
}

/// Adds a provider (enabled, not yet synced); its id.
pub fn add(conn: &Connection, keys: &Keys, p: &NewProvider<'_>, now: Timestamp) -> Result<i64> {
    let base_url = check_url(p.base_url)?;
    let key = check_key(p.key)?;
    let name = if p.name.trim().is_empty() {
        default_name(p.kind, &base_url)
    } else {
        check_name(p.name)?
    };
    check_unit(p.unit_minor)?;
    check_priority(p.priority)?;
    if !(0..=100_000).contains(&p.markup_bp) {
        return Err(Error::invalid("The markup must be between 0% and 1000%."));
    }
    conn.prepare_cached(
        "INSERT INTO providers (name, kind, base_url, key_sealed, markup_bp, priority, unit_minor, \
         created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        name,
        p.kind.as_str(),
        base_url,
        keys.seal(KEY_PURPOSE, key),
        p.markup_bp,
        p.priority,
        p.unit_minor,
        now
    ])?;
    Ok(conn.last_insert_rowid())
}

/// The host of the URL, as a name when the admin gave none.
fn default_name(kind: Kind, url: &str) -> String {
    let rest = url.split_once("://").map(|x| x.1).unwrap_or(url);
    let host = rest.split(['/', '?', '#', ':']).next().unwrap_or("");
    if host.is_empty() {
        kind.as_str().to_string()
    } else {
        host.chars().take(60).collect()
    }
}

/// What the admin may change; `None` keeps the current value. A new key replaces the old.
#[derive(Default)]
pub struct Changes<'a> {
    pub name: Option<&'a str>,
    pub base_url: Option<&'a str>,
    pub key: Option<&'a str>,
    pub markup_bp: Option<i64>,
    pub priority: Option<i64>,
    pub unit_minor: Option<i64>,
    pub enabled: Option<bool>,
}

/// Applies `c`; a new markup or unit reprices the stored offers at once. Returns a
/// description of what changed (for the audit log; never the key).
pub fn edit(conn: &Connection, keys: &Keys, id: i64, c: &Changes<'_>) -> Result<String> {
    let p = get(conn, id)?.ok_or(Error::NotFound("provider"))?;
    let mut said = Vec::new();
    if let Some(n) = c.name {
        let n = check_name(n)?;
        if n != p.name {
            conn.execute(
                "UPDATE providers SET name = ?2 WHERE id = ?1",
                params![id, n],
            )?;
            said.push(format!("name {n}"));
        }
    }
    if let Some(u) = c.base_url {
        let u = check_url(u)?;
        if u != p.base_url {
            conn.execute(
                "UPDATE providers SET base_url = ?2 WHERE id = ?1",
                params![id, u],
            )?;
            said.push(format!("url {u}"));
        }
    }
    if let Some(k) = c.key.filter(|k| !k.trim().is_empty()) {
        let k = check_key(k)?;
        conn.execute(
            "UPDATE providers SET key_sealed = ?2, failures = 0, paused_until = NULL WHERE id = ?1",
            params![id, keys.seal(KEY_PURPOSE, k)],
        )?;
        said.push("key replaced".into());
    }
    if let Some(bp) = c.markup_bp {
        if !(0..=100_000).contains(&bp) {
            return Err(Error::invalid("The markup must be between 0% and 1000%."));
        }
        if bp != p.markup_bp {
            conn.execute(
                "UPDATE providers SET markup_bp = ?2 WHERE id = ?1",
                params![id, bp],
            )?;
            said.push(format!("markup {}", markup_text(bp)));
        }
    }
    if let Some(pr) = c.priority {
        check_priority(pr)?;
        if pr != p.priority {
            conn.execute(
                "UPDATE providers SET priority = ?2 WHERE id = ?1",
                params![id, pr],
            )?;
            said.push(format!("priority {pr}"));
        }
    }
    if let Some(u) = c.unit_minor {
        check_unit(u)?;
        if u != p.unit_minor {
            // Stored costs were converted with the old unit: convert them to the new one.
            conn.execute(
                "UPDATE provider_offers SET cost_minor = (cost_minor * ?2 + ?3 - 1) / ?3 \
                 WHERE provider_id = ?1",
                params![id, u, p.unit_minor],
            )?;
            conn.execute(
                "UPDATE providers SET unit_minor = ?2 WHERE id = ?1",
                params![id, u],
            )?;
            said.push(format!("unit {u}"));
        }
    }
    if let Some(on) = c.enabled {
        if on != p.enabled {
            conn.execute(
                "UPDATE providers SET enabled = ?2, failures = 0, paused_until = NULL WHERE id = ?1",
                params![id, on],
            )?;
            said.push(if on { "enabled" } else { "disabled" }.into());
        }
    }
    reprice(conn, id)?;
    Ok(said.join(", "))
}

/// Recomputes the prices of a provider's offers from their costs and its markup.
fn reprice(conn: &Connection, id: i64) -> Result<()> {
    let bp: i64 = conn.query_row("SELECT markup_bp FROM providers WHERE id = ?1", [id], |r| {
        r.get(0)
    })?;
    conn.execute(
        "UPDATE provider_offers SET price_minor = (cost_minor * (10000 + ?2) + 9999) / 10000 \
         WHERE provider_id = ?1",
        params![id, bp],
    )?;
    Ok(())
}

/// Deletes a provider that never sold anything; one with orders can only be disabled.
pub fn delete(conn: &Connection, id: i64) -> Result<()> {
    get(conn, id)?.ok_or(Error::NotFound("provider"))?;
    let orders: i64 = conn.query_row(
        "SELECT (SELECT COUNT(*) FROM upstream_orders WHERE provider_id = ?1) + \
         (SELECT COUNT(*) FROM numbers WHERE provider_id = ?1)",
        [id],
        |r| r.get(0),
    )?;
    if orders > 0 {
        return Err(Error::Conflict(
            "This provider has orders; disable it instead of deleting it.".into(),
        ));
    }
    conn.execute("DELETE FROM provider_calls WHERE provider_id = ?1", [id])?;
    conn.execute("DELETE FROM provider_offers WHERE provider_id = ?1", [id])?;
    conn.execute("DELETE FROM providers WHERE id = ?1", [id])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Sync results

/// One (country, service) a provider sells, converted to our numbering and minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferIn {
    pub country: i64,
    pub service: String,
    pub cost_minor: i64,
    pub stock: i64,
}

/// Replaces a provider's offers with a fresh sync (pairs no longer offered disappear) and
/// records the sync time; how many offers are stored.
pub fn store_offers(
    conn: &Connection,
    id: i64,
    offers: &[OfferIn],
    now: Timestamp,
) -> Result<usize> {
    let bp: i64 = conn
        .query_row("SELECT markup_bp FROM providers WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?
        .ok_or(Error::NotFound("provider"))?;
    conn.execute("DELETE FROM provider_offers WHERE provider_id = ?1", [id])?;
    let mut stmt = conn.prepare_cached(
        "INSERT OR REPLACE INTO provider_offers (provider_id, country_id, service, cost_minor, \
         price_minor, stock, synced_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for o in offers {
        stmt.execute(params![
            id,
            o.country,
            o.service,
            o.cost_minor,
            with_markup(o.cost_minor, bp),
            o.stock.max(0),
            now
        ])?;
    }
    conn.execute(
        "UPDATE providers SET synced_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(offers.len())
}

pub fn set_balance(conn: &Connection, id: i64, balance_minor: i64) -> Result<()> {
    conn.execute(
        "UPDATE providers SET balance_minor = ?2 WHERE id = ?1",
        params![id, balance_minor],
    )?;
    Ok(())
}

/// The provider said it has no number for the pair: none on sale until the next sync.
pub fn sold_out(conn: &Connection, id: i64, country: i64, service: &str) -> Result<()> {
    conn.execute(
        "UPDATE provider_offers SET stock = 0 WHERE provider_id = ?1 AND country_id = ?2 \
         AND service = ?3",
        params![id, country, service],
    )?;
    Ok(())
}

/// One fewer number in stock after a purchase (the next sync brings the real count).
pub fn took_one(conn: &Connection, id: i64, country: i64, service: &str) -> Result<()> {
    conn.execute(
        "UPDATE provider_offers SET stock = MAX(stock - 1, 0) WHERE provider_id = ?1 \
         AND country_id = ?2 AND service = ?3",
        params![id, country, service],
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Calls and the circuit breaker

/// When to pause a provider: after `failures` failed calls in a row, for `pause` seconds.
#[derive(Debug, Clone, Copy)]
pub struct Breaker {
    pub failures: u32,
    pub pause: u64,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The provider answered in its protocol (also "no numbers" and other refusals).
    Answered,
    /// Timeout, connection error, HTTP 5xx, a body that is not the protocol, a refused key:
    /// counts towards the circuit breaker. The text is already scrubbed of the key.
    Failed(String),
}

/// Records one call (for the health page) and moves the breaker: a failure counts, and the
/// `breaker.failures`-th in a row pauses the provider (each further failure after the pause
/// pauses it again); an answered call resets it. True when this call paused the provider.
pub fn record_call(
    conn: &Connection,
    id: i64,
    action: &str,
    outcome: &Outcome,
    duration_ms: i64,
    breaker: Breaker,
    now: Timestamp,
) -> Result<bool> {
    let (ok, error) = match outcome {
        Outcome::Answered => (true, ""),
        Outcome::Failed(e) => (false, e.as_str()),
    };
    let error: String = error.chars().take(300).collect();
    conn.prepare_cached(
        "INSERT INTO provider_calls (provider_id, at, action, ok, duration_ms, error) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, now, action, ok, duration_ms, error])?;
    if ok {
        conn.prepare_cached(
            "UPDATE providers SET failures = 0, paused_until = NULL WHERE id = ?1",
        )?
        .execute([id])?;
        return Ok(false);
    }
    let failures: i64 = conn
        .prepare_cached(
            "UPDATE providers SET failures = failures + 1, last_error = ?2, last_error_at = ?3, \
             paused_until = CASE WHEN failures + 1 >= ?4 THEN ?5 ELSE paused_until END \
             WHERE id = ?1 RETURNING failures",
        )?
        .query_row(
            params![
                id,
                error,
                now,
                breaker.failures.max(1),
                now + breaker.pause as i64
            ],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let threshold = i64::from(breaker.failures.max(1));
    let paused = failures >= threshold;
    // The administrators hear of the first pause of a run of failures, not of every pause
    // that follows while the provider keeps failing.
    if failures == threshold {
        crate::domain::accounts::notifications::notify_admins(
            conn,
            "Upstream provider paused",
            &format!(
                "Upstream provider #{id} failed {} calls in a row and is paused: {error}",
                breaker.failures.max(1)
            ),
            now,
        )?;
    }
    Ok(paused)
}

/// Call records older than this are pruned (a live order is polled every few seconds, so
/// they add up; the health page looks at the last [`HEALTH_CALLS`] only).
pub const CALLS_KEPT: i64 = 2 * 86_400;

pub fn prune_calls(conn: &Connection, now: Timestamp) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM provider_calls WHERE at < ?1",
        [now - CALLS_KEPT],
    )?)
}

/// A provider's health over its last calls, for the admin.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    /// Calls looked at (the last [`HEALTH_CALLS`]).
    pub calls: i64,
    pub ok_calls: i64,
    pub avg_ms: i64,
    pub offers: i64,
    pub stock: i64,
    pub live_orders: i64,
}

impl Health {
    /// Success rate in percent, when there were calls.
    pub fn success_percent(&self) -> Option<i64> {
        (self.calls > 0).then(|| self.ok_calls * 100 / self.calls)
    }
}

pub const HEALTH_CALLS: i64 = 100;

/// One recorded call, for the admin.
#[derive(Debug, Clone, Serialize)]
pub struct CallRow {
    pub at: Timestamp,
    pub action: String,
    pub ok: bool,
    pub duration_ms: i64,
    pub error: String,
}

/// A provider's latest calls, newest first.
pub fn recent_calls(conn: &Connection, id: i64, limit: i64) -> Result<Vec<CallRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, action, ok, duration_ms, error FROM provider_calls WHERE provider_id = ?1 \
         ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![id, limit], |r| {
        Ok(CallRow {
            at: r.get(0)?,
            action: r.get(1)?,
            ok: r.get(2)?,
            duration_ms: r.get(3)?,
            error: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn health(conn: &Connection, id: i64) -> Result<Health> {
    let (calls, ok_calls, avg_ms) = conn
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(ok), 0), COALESCE(AVG(duration_ms), 0) FROM \
             (SELECT ok, duration_ms FROM provider_calls WHERE provider_id = ?1 \
              ORDER BY id DESC LIMIT ?2)",
        )?
        .query_row(params![id, HEALTH_CALLS], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, f64>(2)? as i64))
        })?;
    let (offers, stock) = conn
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(stock), 0) FROM provider_offers WHERE provider_id = ?1",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let live_orders = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM upstream_orders WHERE provider_id = ?1 \
             AND state IN ('buying', 'live', 'closing')",
        )?
        .query_row([id], |r| r.get(0))?;
    Ok(Health {
        calls,
        ok_calls,
        avg_ms,
        offers,
        stock,
        live_orders,
    })
}

// ---------------------------------------------------------------------------------------
// What is on sale

/// A provider an order may be bought from, with its offer.
#[derive(Clone)]
pub struct Candidate {
    pub provider: Provider,
    pub cost_minor: i64,
    pub price_minor: i64,
}

impl std::fmt::Debug for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidate")
            .field("provider", &self.provider.id)
            .field("cost_minor", &self.cost_minor)
            .field("price_minor", &self.price_minor)
            .finish()
    }
}

/// The providers selling (country, service) now, in the order to try them: higher
/// priority first, then cheaper, then older.
pub fn candidates(
    conn: &Connection,
    country: i64,
    service: &str,
    now: Timestamp,
) -> Result<Vec<Candidate>> {
    let cols: String = COLS
        .split(", ")
        .map(|c| format!("p.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {cols}, o.cost_minor, o.price_minor FROM provider_offers o \
         JOIN providers p ON p.id = o.provider_id \
         WHERE o.country_id = :country AND o.service = :service AND {PROVIDER_SELLING} \
         ORDER BY p.priority DESC, o.price_minor, p.id"
    ))?;
    let rows = stmt.query_map(
        rusqlite::named_params! {":country": country, ":service": service, ":now": now},
        |r| {
            Ok(Candidate {
                provider: from_row(r)?,
                cost_minor: r.get(16)?,
                price_minor: r.get(17)?,
            })
        },
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    fn keys() -> Keys {
        Keys::from_bytes([3; 32])
    }

    fn new(kind: Kind, key: &str) -> NewProvider<'_> {
        NewProvider {
            kind,
            name: "",
            base_url: "https://up.example/stubs/handler_api.php",
            key,
            markup_bp: 2000,
            priority: 0,
            unit_minor: 100,
        }
    }

    #[test]
    fn markups_parse_to_basis_points() {
        assert_eq!(parse_markup("20%").unwrap(), 2000);
        assert_eq!(parse_markup("12.5%").unwrap(), 1250);
        assert_eq!(parse_markup(" 20 ").unwrap(), 2000);
        assert_eq!(parse_markup("0.25%").unwrap(), 25);
        assert_eq!(parse_markup("0").unwrap(), 0);
        assert_eq!(parse_markup(".5%").unwrap(), 50);
        for bad in ["", "%", "-5%", "abc", "12.345%", "1e3", "2000%"] {
            assert!(parse_markup(bad).is_err(), "{bad}");
        }
        assert_eq!(markup_text(2000), "20%");
        assert_eq!(markup_text(1250), "12.5%");
        assert_eq!(markup_text(25), "0.25%");
    }

    #[test]
    fn decimals_convert_exactly_without_floats() {
        assert_eq!(cost_minor("0.5", 100), Some(50));
        assert_eq!(cost_minor("\"12.50\"", 100), Some(1250));
        assert_eq!(cost_minor("0.1", 100), Some(10)); // not 10.000000000000002
        assert_eq!(cost_minor("0.123", 100), Some(13)); // rounded up
        assert_eq!(balance_minor("0.129", 100), Some(12)); // rounded down
        assert_eq!(cost_minor("3", 100), Some(300));
        assert_eq!(cost_minor("1e-2", 100), Some(1));
        assert_eq!(cost_minor("2.5E1", 100), Some(2500));
        assert_eq!(cost_minor("17.3", 1), Some(18));
        assert_eq!(cost_minor("0", 100), Some(0));
        for bad in ["-1", "", "abc", "1.2.3", "NaN", "1e999"] {
            assert_eq!(cost_minor(bad, 100), None, "{bad}");
        }
        assert_eq!(with_markup(100, 2000), 120);
        assert_eq!(with_markup(101, 2000), 122); // 121.2 rounded up
        assert_eq!(with_markup(50, 0), 50);
        assert_eq!(with_markup(7, 1250), 8);
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert_eq!(
            check_url(" https://x.example/stubs/handler_api.php/ ").unwrap(),
            "https://x.example/stubs/handler_api.php"
        );
        assert!(check_url("http://127.0.0.1:9000").is_ok());
        for bad in [
            "ftp://x",
            "x.example",
            "https://",
            "https://u:p@x.example",
            "http://a b",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_sealed_and_never_debug_printed() {
        let conn = db::memory();
        let id = add(&conn, &keys(), &new(Kind::SmsActivate, "SECRET-KEY-1"), 10).unwrap();
        let stored: String = conn
            .query_row(
                "SELECT key_sealed FROM providers WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!stored.contains("SECRET-KEY-1"));
        let p = get(&conn, id).unwrap().unwrap();
        assert_eq!(p.key(&keys()).unwrap(), "SECRET-KEY-1");
        assert!(p.key(&Keys::from_bytes([4; 32])).is_err());
        assert!(!format!("{p:?}").contains("SECRET"));
        assert!(!serde_json::to_string(&p).unwrap().contains(&stored));
        assert_eq!(p.name, "up.example");
        // Replacing the key; an empty replacement keeps it.
        edit(
            &conn,
            &keys(),
            id,
            &Changes {
                key: Some(""),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            get(&conn, id).unwrap().unwrap().key(&keys()).unwrap(),
            "SECRET-KEY-1"
        );
        let said = edit(
            &conn,
            &keys(),
            id,
            &Changes {
                key: Some("NEW-KEY"),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(said, "key replaced");
        assert_eq!(
            get(&conn, id).unwrap().unwrap().key(&keys()).unwrap(),
            "NEW-KEY"
        );
    }

    #[test]
    fn offers_markup_and_candidates_in_order() {
        let conn = db::memory();
        let k = keys();
        let a = add(&conn, &k, &new(Kind::SmsActivate, "a"), 10).unwrap();
        let b = add(&conn, &k, &new(Kind::FiveSim, "b"), 10).unwrap();
        let offer = |cost, stock| {
            vec![OfferIn {
                country: 6,
                service: "tg".into(),
                cost_minor: cost,
                stock,
            }]
        };
        store_offers(&conn, a, &offer(100, 5), 20).unwrap();
        store_offers(&conn, b, &offer(80, 3), 20).unwrap();
        let ids = |v: Vec<Candidate>| v.iter().map(|c| c.provider.id).collect::<Vec<_>>();
        let c = candidates(&conn, 6, "tg", 30).unwrap();
        assert_eq!(ids(c.clone()), [b, a], "cheaper first at equal priority");
        assert_eq!((c[0].cost_minor, c[0].price_minor), (80, 96));
        assert_eq!(
            crate::domain::market::catalogue::upstream_stock(&conn, 30).unwrap()
                [&(6, "tg".to_string())],
            (8, 96)
        );
        edit(
            &conn,
            &k,
            a,
            &Changes {
                priority: Some(5),
                markup_bp: Some(0),
                ..Default::default()
            },
        )
        .unwrap();
        let c = candidates(&conn, 6, "tg", 30).unwrap();
        assert_eq!(ids(c.clone()), [a, b], "higher priority first");
        assert_eq!(c[0].price_minor, 100, "repriced with the new markup");
        // A poor or disabled provider is not a candidate; neither is one out of stock.
        set_balance(&conn, a, 99).unwrap();
        assert_eq!(ids(candidates(&conn, 6, "tg", 30).unwrap()), [b]);
        edit(
            &conn,
            &k,
            b,
            &Changes {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(candidates(&conn, 6, "tg", 30).unwrap().is_empty());
        assert!(crate::domain::market::catalogue::upstream_stock(&conn, 30)
            .unwrap()
            .is_empty());
        // A sync replaces the offers: vanished pairs disappear.
        set_balance(&conn, a, 1000).unwrap();
        store_offers(&conn, a, &[], 40).unwrap();
        assert!(candidates(&conn, 6, "tg", 50).unwrap().is_empty());
    }

    #[test]
    fn administrators_hear_of_the_first_pause_of_a_run_of_failures() {
        use crate::domain::accounts::notifications::{self as n, NewChannel};
        use crate::domain::accounts::{testing::account, Role};
        let conn = db::memory();
        let k = keys();
        let root = account(&conn, "root@example.com", Role::Admin);
        let alert = NewChannel {
            kind: "email",
            events: vec![n::ADMIN_ALERT],
            ..NewChannel::default()
        };
        n::create(&conn, &k, root, Role::Admin, &alert, false, 10).unwrap();
        let id = add(&conn, &k, &new(Kind::SmsActivate, "k"), 0).unwrap();
        let b = Breaker {
            failures: 2,
            pause: 300,
        };
        let fail = Outcome::Failed("HTTP 502".into());
        for t in [100, 101, 402, 703] {
            record_call(&conn, id, "getBalance", &fail, 5, b, t).unwrap();
        }
        let due = n::due(&conn, &k, 1000, 10).unwrap();
        assert_eq!(due.len(), 1, "one alert for the run");
        assert_eq!(due[0].title, "Upstream provider paused");
        assert!(due[0].body.contains("HTTP 502"), "{}", due[0].body);
    }

    #[test]
    fn the_breaker_pauses_after_failures_in_a_row_and_a_success_resets_it() {
        let conn = db::memory();
        let id = add(&conn, &keys(), &new(Kind::SmsActivate, "k"), 0).unwrap();
        let b = Breaker {
            failures: 3,
            pause: 300,
        };
        let fail = Outcome::Failed("HTTP 500".into());
        assert!(!record_call(&conn, id, "getBalance", &fail, 5, b, 100).unwrap());
        assert!(!record_call(&conn, id, "getBalance", &fail, 5, b, 101).unwrap());
        record_call(&conn, id, "getBalance", &Outcome::Answered, 5, b, 102).unwrap();
        assert!(!record_call(&conn, id, "getBalance", &fail, 5, b, 103).unwrap());
        assert!(!record_call(&conn, id, "getBalance", &fail, 5, b, 104).unwrap());
        assert!(record_call(&conn, id, "getBalance", &fail, 5, b, 105).unwrap());
        let p = get(&conn, id).unwrap().unwrap();
        assert_eq!(p.paused_until, Some(405));
        assert!(p.is_paused(404) && !p.is_paused(405));
        assert_eq!(p.last_error, "HTTP 500");
        let h = health(&conn, id).unwrap();
        assert_eq!((h.calls, h.ok_calls, h.avg_ms), (6, 1, 5));
        assert_eq!(h.success_percent(), Some(16));
        // Still failing after the pause: paused again at once.
        assert!(record_call(&conn, id, "getBalance", &fail, 5, b, 406).unwrap());
        let alerts: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM notifications WHERE event = 'admin_alert'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(alerts, 0, "no administrator chose the alerts");
        record_call(&conn, id, "getBalance", &Outcome::Answered, 5, b, 407).unwrap();
        let p = get(&conn, id).unwrap().unwrap();
        assert_eq!((p.failures, p.paused_until), (0, None));
    }

    #[test]
    fn a_provider_with_orders_is_only_disabled() {
        let conn = db::memory();
        crate::domain::market::catalogue::seed_if_empty(&conn).unwrap();
        let id = add(&conn, &keys(), &new(Kind::SmsActivate, "k"), 0).unwrap();
        conn.execute(
            "INSERT INTO numbers (phone, country_id, source, provider_id, on_sale, created_at) \
             VALUES ('6281', 6, 'upstream', ?1, 0, 0)",
            [id],
        )
        .unwrap();
        assert!(matches!(delete(&conn, id), Err(Error::Conflict(_))));
        conn.execute("DELETE FROM numbers", []).unwrap();
        delete(&conn, id).unwrap();
        assert!(get(&conn, id).unwrap().is_none());
    }
}
