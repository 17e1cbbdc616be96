//! Activations, the core lifecycle (SPEC §3):
//! `waiting → received → (retry → received)* → completed`, or `canceled` / `expired`.
//!
//! Every function takes the caller's transaction (open it with `db::write`, which is
//! `BEGIN IMMEDIATE`, so concurrent cancels, expiries and arriving SMS serialise). The price
//! is charged when the number is issued; a cancel or expiry without a code refunds it once
//! (the ledger's unique refund index backs this up). Every status change (and the new order)
//! queues `activation.updated` for the customer's webhooks in the same transaction.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::domain::accounts::User;
use crate::domain::market::catalogue::{self, cooldown_cutoff};
use crate::domain::market::wallet::{self, Kind};
use crate::domain::{
    market::blocklist, market::earnings, market::simulator, market::webhooks, Error, Result,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Waiting,
    Received,
    Retry,
    Completed,
    Canceled,
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Waiting => "waiting",
            Status::Received => "received",
            Status::Retry => "retry",
            Status::Completed => "completed",
            Status::Canceled => "canceled",
            Status::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "waiting" => Status::Waiting,
            "received" => Status::Received,
            "retry" => Status::Retry,
            "completed" => Status::Completed,
            "canceled" => Status::Canceled,
            "expired" => Status::Expired,
            _ => return None,
        })
    }

    pub fn is_live(self) -> bool {
        matches!(self, Status::Waiting | Status::Received | Status::Retry)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Activation {
    pub id: i64,
    pub user_id: i64,
    pub number_id: Option<i64>,
    pub phone: String,
    pub country_id: i64,
    pub service: String,
    pub operator: String,
    pub price_minor: i64,
    pub status: Status,
    pub client_order_id: Option<String>,
    pub source: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub code_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub ready_at: Option<Timestamp>,
}

const COLS: &str = "id, user_id, number_id, phone, country_id, service, operator, price_minor, \
                    status, client_order_id, source, created_at, expires_at, code_at, ended_at, ready_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Activation> {
    let status: String = r.get(8)?;
    Ok(Activation {
        id: r.get(0)?,
        user_id: r.get(1)?,
        number_id: r.get(2)?,
        phone: r.get(3)?,
        country_id: r.get(4)?,
        service: r.get(5)?,
        operator: r.get(6)?,
        price_minor: r.get(7)?,
        status: Status::parse(&status).unwrap_or(Status::Expired),
        client_order_id: r.get(9)?,
        source: r.get(10)?,
        created_at: r.get(11)?,
        expires_at: r.get(12)?,
        code_at: r.get(13)?,
        ended_at: r.get(14)?,
        ready_at: r.get(15)?,
    })
}

/// The install's rules for orders (from the configuration and runtime settings).
#[derive(Debug, Clone)]
pub struct Policy {
    pub early_cancel: u64,
    pub default_ttl: u64,
    pub max_live: u32,
    pub cooldown: u64,
    pub sim_delay: u64,
    /// The simulator's failures per order when the admin page has not set its own
    /// (`sim_no_code`, `sim_late_code`, `sim_duplicate`, `sim_wrong_format`, `sim_seed`).
    pub sim_odds: simulator::Odds,
    /// Percent of a completed order's price credited to the number's operator.
    pub operator_share: u32,
    /// Customer URLs (a rental's webhook) may point at private addresses
    /// (`webhook_allow_private`).
    pub allow_private_urls: bool,
}

#[derive(Debug, Clone, Default)]
pub struct OrderRequest {
    pub country: i64,
    pub service: String,
    /// None or "any": any operator.
    pub operator: Option<String>,
    pub max_price_minor: Option<i64>,
    pub client_order_id: Option<String>,
    /// Phone prefixes (with country code) the number must not start with.
    pub exclude_prefixes: Vec<String>,
    /// Services the same number must also be good for (the first order of a multi-service
    /// number: none of them used on it within the cooldown, none blocked on it).
    pub also_services: Vec<String>,
    /// Serve the order on this number, already taken by an order of the same account in the
    /// same transaction (the other services of a multi-service number).
    pub on_number: Option<i64>,
    /// Buy this number again (5sim's reuse): it must be free and its last order must have
    /// been this account's, for this service; the cooldown does not apply to its own number.
    pub reuse_number: Option<i64>,
}

#[derive(Debug, Clone)]
pub enum Placed {
    New(Activation),
    /// The same client order id was used before: that order, unchanged, not charged again.
    Existing(Activation),
}

/// The SQL condition of a live order: with `user_id = ?` it is one range of
/// `activations_user_status` (migration 10), so counting or listing an account's live orders
/// never reads its past ones. The live statuses sort after the ended ones ('canceled' <
/// 'completed' < 'expired' < 'received' < 'retry' < 'waiting'; the table's CHECK allows no
/// other), so a range says it: an `IN` list of three made SQLite build a temporary B-tree of
/// them every time a statement ran (a test pins the order).
pub const LIVE: &str = "status >= 'received'";

pub fn get(conn: &Connection, id: i64) -> Result<Option<Activation>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLS} FROM activations WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}

/// The activation if it belongs to `user_id` (someone else's is "not found").
pub fn get_for(conn: &Connection, user_id: i64, id: i64) -> Result<Activation> {
    match get(conn, id)? {
        Some(a) if a.user_id == user_id => Ok(a),
        _ => Err(Error::NotFound("activation")),
    }
}

/// An account's live orders newest first, `limit` of them from `offset` among the live ones
/// only (the live-order limit bounds them): never reads a past order.
pub fn list_live(
    conn: &Connection,
    user_id: i64,
    limit: i64,
    offset: i64,
) -> Result<Vec<Activation>> {
    // Without statistics the planner prefers walking `activations_user` in id order (no
    // sort) over reading the few live rows and sorting them: the whole history.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM activations INDEXED BY activations_user_status \
         WHERE user_id = ?1 AND {LIVE} ORDER BY id DESC LIMIT ?2 OFFSET ?3"
    ))?;
    let rows = stmt.query_map(params![user_id, limit, offset], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// An account's orders newest first, `limit` of them older than order `before` (from the
/// newest when `None`): keyset paging, so a page deep in a long history costs what the first
/// one does. With `statuses`, only orders in one of them: one index range per status
/// (`activations_user_status`), merged here, so a rare status is found without walking the
/// common ones.
pub fn list_before(
    conn: &Connection,
    user_id: i64,
    statuses: &[Status],
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Activation>> {
    let before = before.unwrap_or(i64::MAX);
    if statuses.is_empty() {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLS} FROM activations WHERE user_id = ?1 AND id < ?2 \
             ORDER BY id DESC LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![user_id, before, limit], from_row)?;
        return Ok(rows.collect::<rusqlite::Result<_>>()?);
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM activations WHERE user_id = ?1 AND status = ?2 AND id < ?3 \
         ORDER BY id DESC LIMIT ?4"
    ))?;
    let mut all: Vec<Activation> = Vec::new();
    let mut seen: Vec<Status> = Vec::new();
    for s in statuses {
        if seen.contains(s) {
            continue;
        }
        seen.push(*s);
        let rows = stmt.query_map(params![user_id, s.as_str(), before, limit], from_row)?;
        for r in rows {
            all.push(r?);
        }
    }
    all.sort_by_key(|a| std::cmp::Reverse(a.id));
    all.truncate(limit.max(0) as usize);
    Ok(all)
}

/// What the order history is narrowed to (every part optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    pub status: Option<Status>,
    pub service: Option<String>,
    pub country: Option<i64>,
}

/// Every status, for merging one index range per status.
pub const ALL_STATUSES: [Status; 6] = [
    Status::Waiting,
    Status::Received,
    Status::Retry,
    Status::Completed,
    Status::Canceled,
    Status::Expired,
];

/// An account's orders newest first through `filter`, `limit` of them older than order
/// `before`: keyset paging like [`list_before`]. A service or country filter reads one range
/// per status of `activations_user_service` (user, service, status, id),
/// `activations_user_country` (user, country, status, id) or, with both,
/// `activations_user_country_service` (migration 18), merged here, so a page costs its
/// `limit` per status whatever the history's length.
pub fn history(
    conn: &Connection,
    user_id: i64,
    filter: &HistoryFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Activation>> {
    let statuses: Vec<Status> = match filter.status {
        Some(s) => vec![s],
        None => ALL_STATUSES.to_vec(),
    };
    let before = before.unwrap_or(i64::MAX);
    let (index, columns, keys): (&str, &str, Vec<rusqlite::types::Value>) =
        match (&filter.service, filter.country) {
            (Some(s), Some(c)) => (
                "activations_user_country_service",
                "country_id = ?5 AND service = ?6",
                vec![c.into(), s.clone().into()],
            ),
            (Some(s), None) => (
                "activations_user_service",
                "service = ?5",
                vec![s.clone().into()],
            ),
            (None, Some(c)) => (
                "activations_user_country",
                "country_id = ?5",
                vec![c.into()],
            ),
            (None, None) => {
                let only: Vec<Status> = filter.status.into_iter().collect();
                return list_before(conn, user_id, &only, Some(before), limit);
            }
        };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM activations INDEXED BY {index} WHERE user_id = ?1 AND status = ?2 \
         AND id < ?3 AND {columns} ORDER BY id DESC LIMIT ?4"
    ))?;
    let mut all: Vec<Activation> = Vec::new();
    for s in statuses {
        let mut values: Vec<rusqlite::types::Value> = vec![
            user_id.into(),
            s.as_str().to_string().into(),
            before.into(),
            limit.into(),
        ];
        values.extend(keys.iter().cloned());
        let rows = stmt.query_map(rusqlite::params_from_iter(values), from_row)?;
        for r in rows {
            all.push(r?);
        }
    }
    all.sort_by_key(|a| std::cmp::Reverse(a.id));
    all.truncate(limit.max(0) as usize);
    Ok(all)
}

/// The id of the order `n` places (0-based) down the filtered history from `before` (from
/// the newest when `None`), or `None` when the history is shorter: where a CSV file of `n + 1`
/// orders ends. Reads ids only, from the same indexes as [`history`] (at most `n + 1` entries
/// per status), so it costs `n`, never the history's length.
pub fn history_nth(
    conn: &Connection,
    user_id: i64,
    filter: &HistoryFilter,
    before: Option<i64>,
    n: i64,
) -> Result<Option<i64>> {
    let before = before.unwrap_or(i64::MAX);
    let (index, columns, keys): (&str, &str, Vec<rusqlite::types::Value>) =
        match (&filter.service, filter.country) {
            (Some(s), Some(c)) => (
                "activations_user_country_service",
                "AND country_id = ?5 AND service = ?6",
                vec![c.into(), s.clone().into()],
            ),
            (Some(s), None) => (
                "activations_user_service",
                "AND service = ?5",
                vec![s.clone().into()],
            ),
            (None, Some(c)) => (
                "activations_user_country",
                "AND country_id = ?5",
                vec![c.into()],
            ),
            (None, None) if filter.status.is_none() => {
                return Ok(conn
                    .prepare_cached(
                        "SELECT id FROM activations WHERE user_id = ?1 AND id < ?2 \
                         ORDER BY id DESC LIMIT 1 OFFSET ?3",
                    )?
                    .query_row(params![user_id, before, n], |r| r.get(0))
                    .optional()?);
            }
            (None, None) => ("activations_user_status", "", Vec::new()),
        };
    let statuses: Vec<Status> = match filter.status {
        Some(s) => vec![s],
        None => ALL_STATUSES.to_vec(),
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT id FROM activations INDEXED BY {index} WHERE user_id = ?1 AND status = ?2 \
         AND id < ?3 {columns} ORDER BY id DESC LIMIT ?4"
    ))?;
    let mut ids: Vec<i64> = Vec::new();
    for s in statuses {
        let mut values: Vec<rusqlite::types::Value> = vec![
            user_id.into(),
            s.as_str().to_string().into(),
            before.into(),
            (n + 1).into(),
        ];
        values.extend(keys.iter().cloned());
        let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| r.get(0))?;
        for r in rows {
            ids.push(r?);
        }
    }
    ids.sort_unstable_by_key(|id| std::cmp::Reverse(*id));
    Ok(ids.get(n.max(0) as usize).copied())
}

/// The services an account ordered lately, most recent first, each once: read from its
/// newest `RECENT_ORDERS` orders (`activations_user`), so the cost never grows with history.
pub fn recent_services(conn: &Connection, user_id: i64, max: usize) -> Result<Vec<String>> {
    const RECENT_ORDERS: i64 = 40;
    let mut stmt = conn.prepare_cached(
        "SELECT service FROM activations INDEXED BY activations_user WHERE user_id = ?1 \
         ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![user_id, RECENT_ORDERS], |r| r.get::<_, String>(0))?;
    let mut out: Vec<String> = Vec::new();
    for r in rows {
        let s = r?;
        if !out.contains(&s) {
            out.push(s);
            if out.len() >= max {
                break;
            }
        }
    }
    Ok(out)
}

/// A user's activations created within `[from, to]` (inclusive), newest first, `limit` from
/// `offset` through `activations_user_created`: a time range anywhere in a long history
/// costs its offset and page, not the orders after it. Callers bound `offset`.
pub fn created_between(
    conn: &Connection,
    user_id: i64,
    from: Timestamp,
    to: Timestamp,
    limit: i64,
    offset: i64,
) -> Result<Vec<Activation>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM activations WHERE user_id = ?1 AND created_at >= ?2 \
         AND created_at <= ?3 ORDER BY created_at DESC, id DESC LIMIT ?4 OFFSET ?5"
    ))?;
    let rows = stmt.query_map(params![user_id, from, to, limit, offset], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Sort orders of [`page`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderBy {
    Id,
    Price,
    Status,
    Service,
    Country,
    Expires,
}

impl OrderBy {
    fn column(self) -> &'static str {
        match self {
            OrderBy::Id => "id",
            OrderBy::Price => "price_minor",
            OrderBy::Status => "status",
            OrderBy::Service => "service",
            OrderBy::Country => "country_id",
            OrderBy::Expires => "expires_at",
        }
    }
}

/// How many of an account's newest orders a list paged by offset or sorted by any column
/// sees (5sim's `/user/orders`): sorting or counting a whole history would cost as much as
/// the history is long.
pub const RECENT_WINDOW: i64 = 1000;

/// One page of an account's [`RECENT_WINDOW`] newest orders in any of the [`OrderBy`]
/// orders (ties by id), `limit` from `offset`.
pub fn page_recent(
    conn: &Connection,
    user_id: i64,
    by: OrderBy,
    descending: bool,
    limit: i64,
    offset: i64,
) -> Result<Vec<Activation>> {
    let dir = if descending { "DESC" } else { "ASC" };
    let col = by.column();
    // The window is sorted on the sort column and id alone; only the page's rows are read
    // whole.
    let ids: Vec<i64> = conn
        .prepare_cached(&format!(
            "SELECT id FROM (SELECT id, {col} AS k FROM activations WHERE user_id = ?1 \
             ORDER BY id DESC LIMIT ?4) ORDER BY k {dir}, id {dir} LIMIT ?2 OFFSET ?3"
        ))?
        .query_map(params![user_id, limit, offset, RECENT_WINDOW], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(get(conn, id)?);
    }
    Ok(out)
}

/// How many orders an account has placed, counted up to [`RECENT_WINDOW`].
pub fn count_recent(conn: &Connection, user_id: i64) -> Result<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*) FROM \
             (SELECT 1 FROM activations WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2)",
        )?
        .query_row(params![user_id, RECENT_WINDOW], |r| r.get(0))?)
}

/// True when the order was cancelled as "number already used" (its refund says so).
pub fn ended_as_used(conn: &Connection, id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM ledger WHERE ref_type = 'activation' AND ref_id = ?1 \
             AND kind = 'refund' AND note = ?2",
        )?
        .query_row(params![id, NUMBER_USED_NOTE], |_| Ok(()))
        .optional()?
        .is_some())
}

pub fn count_live(conn: &Connection, user_id: i64) -> Result<i64> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT COUNT(*) FROM activations WHERE user_id = ?1 AND {LIVE}"
        ))?
        .query_row([user_id], |r| r.get(0))?)
}

/// What an order asks of a number: free in `country`, never used for `service` or any of
/// `also` within the cooldown (nor blocked for one), of `operator` unless it is empty,
/// outside the `exclude`d prefixes.
pub struct Wanted<'a> {
    pub country: i64,
    pub service: &'a str,
    pub also: &'a [String],
    pub operator: &'a str,
    pub exclude: &'a [String],
    pub cooldown: u64,
    pub now: Timestamp,
}

impl Wanted<'_> {
    /// The phone starts with an excluded prefix.
    pub fn excluded(&self, phone: &str) -> bool {
        self.exclude
            .iter()
            .any(|p| !p.is_empty() && phone.starts_with(p.as_str()))
    }
}

/// A number of our own (not the simulator's: see [`simulator::pick`]) as `w` wants it. Least
/// recently used first.
pub fn pick_number(conn: &Connection, w: &Wanted) -> Result<Option<(i64, String, String, String)>> {
    // A join rather than `NOT EXISTS (…)`: the same rows, but SQLite runs a correlated
    // subquery as a subroutine per candidate. `numbers_own_pick` holds only the numbers
    // this may return (migration 21).
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT n.id, n.phone, n.operator, n.source FROM numbers n INDEXED BY numbers_own_pick \
         LEFT JOIN number_usage u ON u.number_id = n.id AND u.service = ?3 \
         WHERE n.country_id = ?1 AND {} AND n.source <> 'simulator' \
         AND (?2 = '' OR n.operator = ?2) \
         AND (u.number_id IS NULL OR (u.blocked = 0 AND u.last_used_at <= ?4)) \
         ORDER BY n.last_used_at, n.id",
        catalogue::NUMBER_USABLE
    ))?;
    let mut rows = stmt.query(params![
        w.country,
        w.operator,
        w.service,
        cooldown_cutoff(w.cooldown, w.now)
    ])?;
    while let Some(r) = rows.next()? {
        let phone: String = r.get(1)?;
        if w.excluded(&phone) {
            continue;
        }
        let id: i64 = r.get(0)?;
        if !w.also.is_empty() && used_for_any(conn, id, w.also, w.cooldown, w.now)? {
            continue;
        }
        return Ok(Some((id, phone, r.get(2)?, r.get(3)?)));
    }
    Ok(None)
}

/// [`pick_number`], else (while the simulator is on) [`simulator::pick`].
pub fn pick_or_simulate(
    conn: &Connection,
    w: &Wanted,
) -> Result<Option<(i64, String, String, String)>> {
    let own = pick_number(conn, w)?;
    if own.is_some() || !simulator::enabled(conn)? {
        return Ok(own);
    }
    simulator::pick(conn, w)
}

/// Whether the number was used for one of `services` within the cooldown, or is blocked
/// for one.
pub fn used_for_any(
    conn: &Connection,
    number_id: i64,
    services: &[String],
    cooldown: u64,
    now: Timestamp,
) -> Result<bool> {
    let mut stmt = conn.prepare_cached(
        "SELECT 1 FROM number_usage WHERE number_id = ?1 AND service = ?2 \
         AND (blocked = 1 OR last_used_at > ?3)",
    )?;
    for s in services {
        if stmt.exists(params![number_id, s, cooldown_cutoff(cooldown, now)])? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Remembers that a number served `service` (its usage row), whatever its state.
fn note_usage(conn: &Connection, number_id: i64, service: &str, now: Timestamp) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO number_usage (number_id, service, last_used_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (number_id, service) DO UPDATE SET last_used_at = excluded.last_used_at",
    )?
    .execute(params![number_id, service, now])?;
    Ok(())
}

/// Marks a number busy and remembers it served `service`.
pub fn take_number(conn: &Connection, number_id: i64, service: &str, now: Timestamp) -> Result<()> {
    let n = conn
        .prepare_cached(
            "UPDATE numbers SET state = 'busy', last_used_at = ?2 WHERE id = ?1 AND state = 'free'",
        )?
        .execute(params![number_id, now])?;
    if n != 1 {
        return Err(Error::NoNumbers);
    }
    note_usage(conn, number_id, service, now)
}

/// Frees a number when its order ends, unless another live order of a multi-service number
/// still holds it. A simulator's number freed while the simulator is off is withdrawn from
/// sale instead, like its idle numbers when it was turned off ([`simulator::set_on`]).
pub fn free_number(conn: &Connection, number_id: Option<i64>, now: Timestamp) -> Result<()> {
    if let Some(id) = number_id {
        conn.prepare_cached(&format!(
            "UPDATE numbers SET last_used_at = ?2, state = CASE WHEN source = 'simulator' \
             AND NOT EXISTS (SELECT 1 FROM runtime_settings WHERE key = 'simulator' \
             AND value = 'on') THEN 'disabled' ELSE 'free' END \
             WHERE id = ?1 AND state = 'busy' \
             AND NOT EXISTS (SELECT 1 FROM activations WHERE number_id = ?1 AND {LIVE})"
        ))?
        .execute(params![id, now])?;
    }
    Ok(())
}

/// Places an order on our own numbers: every check, then the number taken, the order
/// written, the price charged. Contract: it fails only before its first write, except with
/// [`Error::Db`] (a failing statement), so a caller may go on in the same transaction after
/// any other error (`supply::routing::route` then reserves an upstream purchase).
pub fn order(
    conn: &Connection,
    user: &User,
    req: &OrderRequest,
    policy: &Policy,
    now: Timestamp,
) -> Result<Placed> {
    let client_id = client_order_id(req);
    if let Some(cid) = client_id {
        if cid.chars().count() > 100 {
            return Err(Error::invalid(
                "The order id must be at most 100 characters.",
            ));
        }
        let existing = conn
            .prepare_cached(&format!(
                "SELECT {COLS} FROM activations WHERE user_id = ?1 AND client_order_id = ?2"
            ))?
            .query_row(params![user.id, cid], from_row)
            .optional()?;
        if let Some(a) = existing {
            return Ok(Placed::Existing(a));
        }
    }
    if !user.is_active() {
        return Err(Error::Forbidden("This account cannot place orders.".into()));
    }
    if !user.is_verified() {
        return Err(Error::Forbidden(
            "Confirm your e-mail address before ordering.".into(),
        ));
    }
    blocklist::check(conn, req.country, &req.service)?;
    catalogue::live_country(conn, req.country)?;
    let service = catalogue::live_service(conn, &req.service)?;
    let operator = match req.operator.as_deref().map(str::trim) {
        None | Some("") | Some("any") => String::new(),
        Some(op) => {
            let op = op.to_ascii_lowercase();
            if !catalogue::operator_exists(conn, req.country, &op)? {
                return Err(Error::WrongOperator);
            }
            op
        }
    };
    if count_live(conn, user.id)? >= policy.max_live as i64 {
        return Err(Error::Limit);
    }
    let price = catalogue::price(conn, req.country, &service.code, &operator)?
        .ok_or(Error::NoNumbers)?
        .price_minor;
    if let Some(max) = req.max_price_minor {
        if price > max {
            return Err(Error::WrongMaxPrice { min_minor: price });
        }
    }
    // Read afresh: `user` may be from before another order of the same account committed,
    // and no check may fail after the first write (see the contract above).
    if wallet::balance(conn, user.id)? < price {
        return Err(Error::NoBalance);
    }
    let (number_id, phone, number_operator, source) = match (req.on_number, req.reuse_number) {
        (None, Some(n)) => {
            let picked = reusable(conn, user.id, n, &service.code)?;
            take_number(conn, n, &service.code, now)?;
            picked
        }
        (Some(n), _) => {
            let held = shared_number(conn, user.id, n)?;
            if used_for_any(
                conn,
                n,
                std::slice::from_ref(&service.code),
                policy.cooldown,
                now,
            )? {
                return Err(Error::NoNumbers);
            }
            note_usage(conn, n, &service.code, now)?;
            held
        }
        (None, None) => {
            let wanted = Wanted {
                country: req.country,
                service: &service.code,
                also: &req.also_services,
                operator: &operator,
                exclude: &req.exclude_prefixes,
                cooldown: policy.cooldown,
                now,
            };
            let picked = pick_or_simulate(conn, &wanted)?.ok_or(Error::NoNumbers)?;
            take_number(conn, picked.0, &service.code, now)?;
            picked
        }
    };
    let ttl = lifetime(&service, policy);
    // `owner_id`: the operator who owns the number, for its sales page.
    conn.prepare_cached(
        "INSERT INTO activations (user_id, number_id, phone, country_id, service, operator, \
         price_minor, status, client_order_id, source, created_at, expires_at, owner_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'waiting', ?8, ?9, ?10, ?11, \
                 (SELECT owner_id FROM numbers WHERE id = ?2))",
    )?
    .execute(params![
        user.id,
        number_id,
        phone,
        req.country,
        service.code,
        number_operator,
        price,
        client_id,
        source,
        now,
        now + ttl as i64
    ])?;
    let id = conn.last_insert_rowid();
    wallet::post(
        conn,
        user.id,
        -price,
        Kind::Charge,
        ("activation", Some(id)),
        &service.code,
        now,
    )?;
    let a = get(conn, id)?.ok_or(Error::NotFound("activation"))?;
    if a.source == simulator::SOURCE {
        simulator::schedule_activation(conn, &a, policy, now)?;
    }
    webhooks::activation_changed(conn, &a, None, now)?;
    Ok(Placed::New(a))
}

/// A number `user_id` may buy again for `service` (5sim's reuse), as `pick_number` gives it:
/// free and on sale, and its last order was this account's, for this service, and has ended.
fn reusable(
    conn: &Connection,
    user_id: i64,
    number_id: i64,
    service: &str,
) -> Result<(i64, String, String, String)> {
    let last: Option<(i64, String, String)> = conn
        .prepare_cached(
            "SELECT user_id, service, status FROM activations INDEXED BY activations_number_last \
             WHERE number_id = ?1 ORDER BY id DESC LIMIT 1",
        )?
        .query_row([number_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let refused = || Error::BadStatus("reuse not possible".into());
    match last {
        Some((u, s, st))
            if u == user_id && s == service && Status::parse(&st).is_some_and(|x| !x.is_live()) => {
        }
        _ => return Err(refused()),
    }
    conn.prepare_cached(&format!(
        "SELECT n.id, n.phone, n.operator, n.source FROM numbers n WHERE n.id = ?1 AND {}",
        catalogue::NUMBER_USABLE
    ))?
    .query_row([number_id], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })
    .optional()?
    .ok_or_else(refused)
}

/// The number of a live order of `user_id` (the first of a multi-service number), as
/// `pick_number` gives it.
fn shared_number(
    conn: &Connection,
    user_id: i64,
    number_id: i64,
) -> Result<(i64, String, String, String)> {
    conn.prepare_cached(&format!(
        "SELECT a.number_id, a.phone, a.operator, a.source FROM activations a \
         WHERE a.number_id = ?1 AND a.user_id = ?2 AND a.{LIVE} ORDER BY a.id LIMIT 1"
    ))?
    .query_row(params![number_id, user_id], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })
    .optional()?
    .ok_or(Error::NoNumbers)
}

/// One number for several services (SMS-Activate's getMultiServiceNumber): an order per
/// service, all on one number that none of them used within the cooldown, each charged its
/// own price, in the caller's transaction (all or nothing). Own stock only (the simulator
/// included), never an upstream provider.
pub fn order_multi(
    conn: &Connection,
    user: &User,
    base: &OrderRequest,
    services: &[String],
    policy: &Policy,
    now: Timestamp,
) -> Result<Vec<Activation>> {
    let Some((first, rest)) = services.split_first() else {
        return Err(Error::BadService);
    };
    if services.len() > 10 {
        return Err(Error::invalid("At most 10 services on one number."));
    }
    if rest.contains(first) || rest.iter().enumerate().any(|(i, s)| rest[..i].contains(s)) {
        return Err(Error::invalid("Each service may appear once."));
    }
    if count_live(conn, user.id)? + services.len() as i64 > policy.max_live as i64 {
        return Err(Error::Limit);
    }
    let lead = OrderRequest {
        service: first.clone(),
        also_services: rest.to_vec(),
        on_number: None,
        client_order_id: None,
        ..base.clone()
    };
    let Placed::New(a) = order(conn, user, &lead, policy, now)? else {
        return Err(Error::Internal(
            "a new order without a client order id".into(),
        ));
    };
    let number = a.number_id;
    let mut out = vec![a];
    for s in rest {
        // The account's balance moved with each charge: read it again.
        let user = crate::domain::accounts::get(conn, user.id)?;
        let req = OrderRequest {
            service: s.clone(),
            also_services: Vec::new(),
            on_number: number,
            client_order_id: None,
            ..base.clone()
        };
        let Placed::New(a) = order(conn, &user, &req, policy, now)? else {
            return Err(Error::Internal(
                "a new order without a client order id".into(),
            ));
        };
        out.push(a);
    }
    Ok(out)
}

fn client_order_id(req: &OrderRequest) -> Option<&str> {
    req.client_order_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn lifetime(service: &catalogue::Service, policy: &Policy) -> u64 {
    service
        .lifetime_secs
        .map(|s| s as u64)
        .unwrap_or(policy.default_ttl)
}

/// Reserves an order that will be bought from an upstream provider (see `supply`): the
/// activation exists with source `upstream` but no number yet, and `hold_minor` is charged.
/// The caller has run [`order`] for the same request first (all its checks passed and only
/// stock, price or balance stood in the way), so the request is known to be valid.
pub fn reserve_upstream(
    conn: &Connection,
    user: &User,
    req: &OrderRequest,
    hold_minor: i64,
    policy: &Policy,
    now: Timestamp,
) -> Result<Activation> {
    let service = catalogue::live_service(conn, &req.service)?;
    conn.prepare_cached(
        "INSERT INTO activations (user_id, number_id, phone, country_id, service, operator, \
         price_minor, status, client_order_id, source, created_at, expires_at) \
         VALUES (?1, NULL, '', ?2, ?3, '', ?4, 'waiting', ?5, 'upstream', ?6, ?7)",
    )?
    .execute(params![
        user.id,
        req.country,
        service.code,
        hold_minor,
        client_order_id(req),
        now,
        now + lifetime(&service, policy) as i64
    ])?;
    let id = conn.last_insert_rowid();
    wallet::post(
        conn,
        user.id,
        -hold_minor,
        Kind::Charge,
        ("activation", Some(id)),
        &service.code,
        now,
    )?;
    get(conn, id)?.ok_or(Error::NotFound("activation"))
}

/// A reserved upstream order got its number: the number, the provider's operator and the
/// final price (never above what was held; the difference goes back to the customer). The
/// order is announced to the customer's webhooks now.
pub fn issue_upstream(
    conn: &Connection,
    a: &Activation,
    number_id: i64,
    phone: &str,
    operator: &str,
    price_minor: i64,
    now: Timestamp,
) -> Result<Activation> {
    let price = price_minor.min(a.price_minor);
    let n = conn.execute(
        "UPDATE activations SET number_id = ?2, phone = ?3, operator = ?4, price_minor = ?5 \
         WHERE id = ?1 AND status = 'waiting' AND number_id IS NULL",
        params![a.id, number_id, phone, operator, price],
    )?;
    if n != 1 {
        return Err(Error::BadStatus(
            "The order changed meanwhile; reload it.".into(),
        ));
    }
    if price < a.price_minor {
        wallet::post(
            conn,
            a.user_id,
            a.price_minor - price,
            Kind::Adjustment,
            ("activation", Some(a.id)),
            "upstream price",
            now,
        )?;
    }
    webhooks::activation_updated(conn, a.id, None, now)?;
    get(conn, a.id)?.ok_or(Error::NotFound("activation"))
}

/// Closes a reserved upstream order that never got a number (every provider failed, or the
/// purchase was interrupted): canceled and refunded in full. Its client order id is freed
/// so the customer may use it again. It was never announced, so no webhook. False when it
/// had already ended or got a number.
pub fn close_unissued(conn: &Connection, id: i64, note: &str, now: Timestamp) -> Result<bool> {
    let Some(a) = get(conn, id)? else {
        return Ok(false);
    };
    let n = conn.execute(
        "UPDATE activations SET status = 'canceled', ended_at = ?2, client_order_id = NULL \
         WHERE id = ?1 AND status = 'waiting' AND number_id IS NULL",
        params![id, now],
    )?;
    if n != 1 {
        return Ok(false);
    }
    wallet::post(
        conn,
        a.user_id,
        a.price_minor,
        Kind::Refund,
        ("activation", Some(id)),
        note,
        now,
    )?;
    Ok(true)
}

/// Moves `a` (read in this transaction) from one of the statuses `from` to `to`, ending it
/// unless `to` is live, and tells the account's webhooks; the order as it is now.
fn set_status(
    conn: &Connection,
    a: &Activation,
    from: &[Status],
    to: Status,
    now: Timestamp,
) -> Result<Activation> {
    let changed_meanwhile = || Error::BadStatus("The order changed meanwhile; reload it.".into());
    if !from.contains(&a.status) {
        return Err(changed_meanwhile());
    }
    let ended_at = if to.is_live() { a.ended_at } else { Some(now) };
    let n = conn
        .prepare_cached(
            "UPDATE activations SET status = ?3, ended_at = ?2 WHERE id = ?1 AND status = ?4",
        )?
        .execute(params![a.id, ended_at, to.as_str(), a.status.as_str()])?;
    if n != 1 {
        return Err(changed_meanwhile());
    }
    let now_is = Activation {
        status: to,
        ended_at,
        ..a.clone()
    };
    webhooks::activation_changed(conn, &now_is, Some(a.status), now)?;
    Ok(now_is)
}

fn ended(a: &Activation) -> Error {
    Error::BadStatus(format!("This order is already {}.", a.status.as_str()))
}

/// The ledger note on the refund of an order cancelled as "number already used"; the 5sim API
/// shows such an order as `BANNED` ([`ended_as_used`]).
pub const NUMBER_USED_NOTE: &str = "number used";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// The customer changed their mind.
    Cancel,
    /// The service said the number is already used: also keep the number away from it.
    NumberUsed,
}

/// Cancels an order that has received no code, refunding it; refused during the
/// early-cancel window (the error says how long is left).
pub fn cancel(
    conn: &Connection,
    user_id: i64,
    id: i64,
    reason: CancelReason,
    policy: &Policy,
    now: Timestamp,
) -> Result<Activation> {
    let a = get_for(conn, user_id, id)?;
    if !a.status.is_live() {
        return Err(ended(&a));
    }
    if a.code_at.is_some() {
        return Err(Error::BadStatus(
            "A code has arrived for this order; it can only be completed.".into(),
        ));
    }
    let allowed_at = a.created_at + policy.early_cancel as i64;
    if now < allowed_at {
        return Err(Error::EarlyCancel {
            seconds_left: (allowed_at - now) as u64,
        });
    }
    let canceled = set_status(conn, &a, &[Status::Waiting], Status::Canceled, now)?;
    let note = match reason {
        CancelReason::Cancel => "canceled",
        CancelReason::NumberUsed => NUMBER_USED_NOTE,
    };
    wallet::post(
        conn,
        a.user_id,
        a.price_minor,
        Kind::Refund,
        ("activation", Some(id)),
        note,
        now,
    )?;
    // Blocked while the number is still busy: its stock counters then need no change.
    if reason == CancelReason::NumberUsed {
        if let Some(n) = a.number_id {
            conn.prepare_cached(
                "UPDATE number_usage SET blocked = 1 WHERE number_id = ?1 AND service = ?2",
            )?
            .execute(params![n, a.service])?;
        }
    }
    free_number(conn, a.number_id, now)?;
    order_changed(
        conn,
        id,
        match reason {
            CancelReason::Cancel => Tell::Cancel,
            CancelReason::NumberUsed => Tell::Ban,
        },
        now,
    )?;
    simulator::forget(conn, Some(id), None)?;
    Ok(canceled)
}

/// Finishes an order whose code has arrived. No refund; the number's operator earns its
/// share.
pub fn complete(
    conn: &Connection,
    user_id: i64,
    id: i64,
    policy: &Policy,
    now: Timestamp,
) -> Result<Activation> {
    let a = get_for(conn, user_id, id)?;
    match a.status {
        Status::Received | Status::Retry => {}
        Status::Waiting => {
            return Err(Error::BadStatus(
                "No code has arrived yet; wait for it or cancel the order.".into(),
            ))
        }
        _ => return Err(ended(&a)),
    }
    let completed = set_status(
        conn,
        &a,
        &[Status::Received, Status::Retry],
        Status::Completed,
        now,
    )?;
    earnings::credit_activation(conn, &a, policy.operator_share, now)?;
    free_number(conn, a.number_id, now)?;
    order_changed(conn, id, Tell::Finish, now)?;
    simulator::forget(conn, Some(id), None)?;
    Ok(completed)
}

/// Asks for another SMS on the same number (free, within the lifetime).
pub fn retry(
    conn: &Connection,
    user_id: i64,
    id: i64,
    policy: &Policy,
    now: Timestamp,
) -> Result<Activation> {
    let a = get_for(conn, user_id, id)?;
    match a.status {
        Status::Retry => return Ok(a),
        Status::Received if now < a.expires_at => {}
        // Its time is up even if the expiry job has not marked it yet.
        Status::Received => return Err(Error::BadStatus("This order has expired.".into())),
        Status::Waiting => {
            return Err(Error::BadStatus(
                "No code has arrived yet; another SMS can be asked for after the first.".into(),
            ))
        }
        _ => return Err(ended(&a)),
    }
    let a = set_status(conn, &a, &[Status::Received], Status::Retry, now)?;
    order_changed(conn, id, Tell::Retry, now)?;
    if a.source == simulator::SOURCE {
        simulator::schedule_activation(conn, &a, policy, now)?;
    }
    Ok(a)
}

/// The customer says the SMS was requested (SMS-Activate status 1). Changes no state.
pub fn mark_ready(conn: &Connection, user_id: i64, id: i64, now: Timestamp) -> Result<Activation> {
    let a = get_for(conn, user_id, id)?;
    if !a.status.is_live() {
        return Err(ended(&a));
    }
    conn.prepare_cached("UPDATE activations SET ready_at = COALESCE(ready_at, ?2) WHERE id = ?1")?
        .execute(params![id, now])?;
    get_for(conn, user_id, id)
}

/// A code arrived for a live activation: waiting/retry → received.
pub fn code_arrived(conn: &Connection, a: &Activation, now: Timestamp) -> Result<()> {
    conn.prepare_cached(
        "UPDATE activations SET status = 'received', code_at = COALESCE(code_at, ?2) \
         WHERE id = ?1 AND status IN ('waiting','received','retry')",
    )?
    .execute(params![a.id, now])?;
    if a.status != Status::Received {
        webhooks::activation_updated(conn, a.id, Some(a.status), now)?;
    }
    Ok(())
}

/// Ends a live activation regardless of its windows: without a code it becomes
/// `no_code` (expired or canceled) and is refunded with `note`; with one it is `completed`
/// and its number's operator earns the share. Frees the number, tells an upstream provider
/// and forgets simulated SMS. True when it was refunded.
fn end_live(
    conn: &Connection,
    a: &Activation,
    no_code: Status,
    note: &str,
    operator_share: u32,
    now: Timestamp,
) -> Result<bool> {
    let refunded = a.code_at.is_none();
    if refunded {
        set_status(conn, a, &[Status::Waiting], no_code, now)?;
        wallet::post(
            conn,
            a.user_id,
            a.price_minor,
            Kind::Refund,
            ("activation", Some(a.id)),
            note,
            now,
        )?;
    } else {
        set_status(
            conn,
            a,
            &[Status::Received, Status::Retry],
            Status::Completed,
            now,
        )?;
        earnings::credit_activation(conn, a, operator_share, now)?;
    }
    free_number(conn, a.number_id, now)?;
    let tell = if refunded { Tell::Cancel } else { Tell::Finish };
    order_changed(conn, a.id, tell, now)?;
    simulator::forget(conn, Some(a.id), None)?;
    Ok(refunded)
}

/// Ends every live activation whose time is up: refunded and `expired` without a code,
/// `completed` with one (the number's operator earns its share). Returns the ids ended.
pub fn expire_due(conn: &Connection, policy: &Policy, now: Timestamp) -> Result<Vec<i64>> {
    let due: Vec<Activation> = {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLS} FROM activations WHERE status IN ('waiting','received','retry') \
             AND expires_at <= ?1 ORDER BY id LIMIT 500"
        ))?;
        let rows = stmt.query_map([now], from_row)?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut ended_ids = Vec::with_capacity(due.len());
    for a in due {
        end_live(
            conn,
            &a,
            Status::Expired,
            "expired",
            policy.operator_share,
            now,
        )?;
        ended_ids.push(a.id);
    }
    Ok(ended_ids)
}

/// The ledger note on the refund of an order ended because its account was closed.
pub const CLOSED_NOTE: &str = "account closed";

/// Ends every live activation of an account at once, because the account is being closed
/// (deleted or terminated): whatever the early-cancel window, an order without a code is
/// `canceled` and refunded, one with a code is `completed`. Returns (refunded, completed) ids.
pub fn close_all_for(
    conn: &Connection,
    user_id: i64,
    operator_share: u32,
    now: Timestamp,
) -> Result<(Vec<i64>, Vec<i64>)> {
    let live: Vec<Activation> = {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLS} FROM activations WHERE user_id = ?1 \
             AND status IN ('waiting','received','retry') ORDER BY id"
        ))?;
        let rows = stmt.query_map([user_id], from_row)?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let (mut refunded, mut completed) = (Vec::new(), Vec::new());
    for a in live {
        if end_live(conn, &a, Status::Canceled, CLOSED_NOTE, operator_share, now)? {
            refunded.push(a.id);
        } else {
            completed.push(a.id);
        }
    }
    Ok((refunded, completed))
}

// ---------------------------------------------------------------------------------------
// Orders bought from an upstream provider: what the provider must be told

/// What a provider must be told about one of its orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tell {
    /// Our order completed (setStatus 6 / finish).
    Finish,
    /// Our order was cancelled or expired without a code (setStatus 8 / cancel).
    Cancel,
    /// The customer said the number was already used (setStatus 8 / ban).
    Ban,
    /// The customer asked for another code (setStatus 3; nothing to send on 5sim).
    Retry,
}

impl Tell {
    pub fn as_str(self) -> &'static str {
        match self {
            Tell::Finish => "finish",
            Tell::Cancel => "cancel",
            Tell::Ban => "ban",
            Tell::Retry => "retry",
        }
    }

    pub fn parse(s: &str) -> Option<Tell> {
        Some(match s {
            "finish" => Tell::Finish,
            "cancel" => Tell::Cancel,
            "ban" | "used" => Tell::Ban,
            "retry" => Tell::Retry,
            _ => return None,
        })
    }
}

/// Called in the transaction of an order change when an order ends or asks for another
/// code. Nothing happens for orders of our own numbers. An ending order moves its upstream
/// order to `closing` with what to tell; an order still being bought keeps `buying` with the
/// note, and [`settle`] then cancels the purchase.
pub fn order_changed(
    conn: &Connection,
    activation_id: i64,
    tell: Tell,
    now: Timestamp,
) -> Result<()> {
    if tell == Tell::Retry {
        conn.prepare_cached(
            "UPDATE upstream_orders SET pending = 'retry', next_poll_at = ?2 \
             WHERE activation_id = ?1 AND state = 'live'",
        )?
        .execute(params![activation_id, now])?;
        return Ok(());
    }
    conn.prepare_cached(
        "UPDATE upstream_orders SET pending = ?2, attempts = 0, next_poll_at = ?3, \
         state = CASE state WHEN 'live' THEN 'closing' ELSE state END \
         WHERE activation_id = ?1 AND state IN ('buying', 'live')",
    )?
    .execute(params![activation_id, tell.as_str(), now])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::{self, NewUser, Role};
    use crate::domain::market::inbox::{self, Delivered, Inbound};
    use crate::domain::{market::catalogue, market::wallet, trust::retention};

    const POLICY: Policy = Policy {
        early_cancel: 120,
        default_ttl: 1200,
        max_live: 3,
        cooldown: 0,
        sim_delay: 5,
        sim_odds: crate::domain::market::simulator::Odds::NONE,
        operator_share: 70,
        allow_private_urls: false,
    };
    const T0: i64 = 1_000_000;

    /// [`LIVE`] is a range: it holds for exactly the live statuses, as SQLite compares them.
    #[test]
    fn the_live_range_holds_for_the_live_statuses_only() {
        let conn = Connection::open_in_memory().unwrap();
        let all = ALL_STATUSES;
        for s in all {
            let live: bool = conn
                .query_row(
                    &format!("SELECT {LIVE} FROM (SELECT ?1 AS status)"),
                    [s.as_str()],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(live, s.is_live(), "{s:?}");
        }
        // Every status the table allows is one of these.
        let check = include_str!("../../db/migrations/0002_marketplace.sql");
        let allowed = check
            .split("CHECK (status IN (")
            .nth(1)
            .unwrap()
            .split(')')
            .next()
            .unwrap();
        let listed: Vec<&str> = allowed
            .split(',')
            .map(|x| x.trim().trim_matches('\''))
            .collect();
        let mut known: Vec<&str> = all.iter().map(|s| s.as_str()).collect();
        known.sort_unstable();
        let mut listed = listed;
        listed.sort_unstable();
        assert_eq!(listed, known);
    }

    struct World {
        conn: Connection,
        user: User,
    }

    fn world(balance: i64) -> World {
        let conn = db::memory();
        catalogue::seed_if_empty(&conn).unwrap();
        let u = accounts::create(
            &conn,
            &NewUser {
                email: "a@example.com",
                password_hash: None,
                role: Role::User,
                verified: true,
                age_confirmed: true,
                aup_accepted: true,
            },
            T0,
        )
        .unwrap();
        wallet::post(&conn, u.id, balance, Kind::Adjustment, ("", None), "", T0).unwrap();
        for (i, phone) in ["62811000001", "62811000002", "62822000003"]
            .iter()
            .enumerate()
        {
            conn.execute(
                "INSERT INTO numbers (phone, country_id, operator, source, created_at) VALUES (?1, 6, ?2, 'manual', ?3)",
                params![phone, if i < 2 { "telkomsel" } else { "indosat" }, T0],
            )
            .unwrap();
        }
        let user = accounts::get(&conn, u.id).unwrap();
        World { conn, user }
    }

    impl World {
        fn order(&mut self, req: &OrderRequest, now: i64) -> Result<Activation> {
            self.user = accounts::get(&self.conn, self.user.id).unwrap();
            let tx = self.conn.transaction().unwrap();
            let r = order(&tx, &self.user, req, &POLICY, now).map(|p| match p {
                Placed::New(a) | Placed::Existing(a) => a,
            });
            if r.is_ok() {
                tx.commit().unwrap();
            }
            r
        }

        fn sms(&self, to: &str, text: &str, now: i64) -> Delivered {
            inbox::ingest(
                &self.conn,
                &Inbound {
                    to: to.into(),
                    sender: "Telegram".into(),
                    text: text.into(),
                    received_at: now,
                    source: "test".into(),
                    source_msg_id: None,
                    device_id: None,
                },
                now,
            )
            .unwrap()
        }

        fn balance(&self) -> i64 {
            wallet::balance(&self.conn, self.user.id).unwrap()
        }

        fn ledger_ok(&self) {
            assert_eq!(wallet::check(&self.conn).unwrap(), Vec::<String>::new());
        }
    }

    fn tg() -> OrderRequest {
        OrderRequest {
            country: 6,
            service: "tg".into(),
            ..Default::default()
        }
    }

    fn price(w: &World) -> i64 {
        catalogue::price(&w.conn, 6, "tg", "")
            .unwrap()
            .unwrap()
            .price_minor
    }

    #[test]
    fn order_debits_and_issues_a_free_number() {
        let mut w = world(1000);
        let p = price(&w);
        let a = w.order(&tg(), T0).unwrap();
        assert_eq!(a.status, Status::Waiting);
        assert_eq!(a.price_minor, p);
        assert_eq!(a.expires_at, T0 + 1200);
        assert_eq!(w.balance(), 1000 - p);
        w.ledger_ok();
    }

    #[test]
    fn code_then_complete_keeps_the_charge() {
        let mut w = world(1000);
        let a = w.order(&tg(), T0).unwrap();
        let d = w.sms(&a.phone, "Telegram code: 12345", T0 + 10);
        assert_eq!(
            d,
            Delivered::Activation {
                id: a.id,
                user_id: w.user.id
            }
        );
        assert_eq!(
            get(&w.conn, a.id).unwrap().unwrap().status,
            Status::Received
        );
        assert_eq!(
            inbox::latest_code(&w.conn, a.id).unwrap().as_deref(),
            Some("12345")
        );
        let done = complete(&w.conn, w.user.id, a.id, &POLICY, T0 + 20).unwrap();
        assert_eq!(done.status, Status::Completed);
        assert_eq!(w.balance(), 1000 - a.price_minor);
        w.ledger_ok();
    }

    #[test]
    fn retry_waits_for_another_code() {
        let mut w = world(1000);
        let a = w.order(&tg(), T0).unwrap();
        assert!(matches!(
            retry(&w.conn, w.user.id, a.id, &POLICY, T0 + 1),
            Err(Error::BadStatus(_))
        ));
        w.sms(&a.phone, "Telegram code: 11111", T0 + 10);
        assert_eq!(
            retry(&w.conn, w.user.id, a.id, &POLICY, T0 + 20)
                .unwrap()
                .status,
            Status::Retry
        );
        assert_eq!(inbox::codes_of(&w.conn, a.id).unwrap(), vec!["11111"]);
        w.sms(&a.phone, "Telegram code: 22222", T0 + 30);
        assert_eq!(
            get(&w.conn, a.id).unwrap().unwrap().status,
            Status::Received
        );
        assert_eq!(
            inbox::latest_code(&w.conn, a.id).unwrap().as_deref(),
            Some("22222")
        );
        // A code arrived, so no cancel and no refund.
        assert!(matches!(
            cancel(
                &w.conn,
                w.user.id,
                a.id,
                CancelReason::Cancel,
                &POLICY,
                T0 + 500
            ),
            Err(Error::BadStatus(_))
        ));
    }

    #[test]
    fn retry_after_the_lifetime_says_expired() {
        let mut w = world(1000);
        let a = w.order(&tg(), T0).unwrap();
        w.sms(&a.phone, "Telegram code: 11111", T0 + 10);
        match retry(&w.conn, w.user.id, a.id, &POLICY, a.expires_at) {
            Err(Error::BadStatus(m)) => assert_eq!(m, "This order has expired."),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cancel_within_window_is_refused_with_seconds_left() {
        let mut w = world(1000);
        let a = w.order(&tg(), T0).unwrap();
        let err = cancel(
            &w.conn,
            w.user.id,
            a.id,
            CancelReason::Cancel,
            &POLICY,
            T0 + 30,
        )
        .unwrap_err();
        assert!(matches!(err, Error::EarlyCancel { seconds_left: 90 }));
        assert_eq!(w.balance(), 1000 - a.price_minor);
    }

    #[test]
    fn cancel_refunds_exactly_once() {
        let mut w = world(1000);
        let a = w.order(&tg(), T0).unwrap();
        let c = cancel(
            &w.conn,
            w.user.id,
            a.id,
            CancelReason::Cancel,
            &POLICY,
            T0 + 121,
        )
        .unwrap();
        assert_eq!(c.status, Status::Canceled);
        assert_eq!(w.balance(), 1000);
        assert!(matches!(
            cancel(
                &w.conn,
                w.user.id,
                a.id,
                CancelReason::Cancel,
                &POLICY,
                T0 + 122
            ),
            Err(Error::BadStatus(_))
        ));
        assert!(expire_due(&w.conn, &POLICY, T0 + 5000).unwrap().is_empty());
        assert_eq!(w.balance(), 1000);
        w.ledger_ok();
    }

    #[test]
    fn expiry_without_code_refunds_and_with_code_completes() {
        let mut w = world(1000);
        let a = w.order(&tg(), T0).unwrap();
        let b = w
            .order(
                &OrderRequest {
                    service: "wa".into(),
                    ..tg()
                },
                T0,
            )
            .unwrap();
        w.sms(&b.phone, "Your WhatsApp code: 123-456", T0 + 5);
        assert_eq!(
            expire_due(&w.conn, &POLICY, T0 + 1199).unwrap(),
            Vec::<i64>::new()
        );
        let mut ended = expire_due(&w.conn, &POLICY, T0 + 1200).unwrap();
        ended.sort();
        assert_eq!(ended, vec![a.id, b.id]);
        assert_eq!(get(&w.conn, a.id).unwrap().unwrap().status, Status::Expired);
        assert_eq!(
            get(&w.conn, b.id).unwrap().unwrap().status,
            Status::Completed
        );
        assert_eq!(w.balance(), 1000 - b.price_minor);
        w.ledger_ok();
    }

    #[test]
    fn a_late_sms_is_not_delivered_nor_charged() {
        let mut w = world(1000);
        let a = w.order(&tg(), T0).unwrap();
        cancel(
            &w.conn,
            w.user.id,
            a.id,
            CancelReason::Cancel,
            &POLICY,
            T0 + 200,
        )
        .unwrap();
        assert_eq!(
            w.sms(&a.phone, "Telegram code: 55555", T0 + 300),
            Delivered::NoLiveOrder
        );
        assert!(inbox::for_activation(&w.conn, a.id).unwrap().is_empty());
        assert_eq!(w.balance(), 1000);
        assert_eq!(w.sms("999", "x", T0), Delivered::UnknownNumber);
    }

    #[test]
    fn number_used_quarantines_the_number_for_that_service() {
        let mut w = world(1000);
        let a = w.order(&tg(), T0).unwrap();
        cancel(
            &w.conn,
            w.user.id,
            a.id,
            CancelReason::NumberUsed,
            &POLICY,
            T0 + 130,
        )
        .unwrap();
        assert_eq!(w.balance(), 1000);
        // Never reused for tg (all three numbers end up used), still fine for wa.
        let b = w.order(&tg(), T0 + 140).unwrap();
        let c = w.order(&tg(), T0 + 141).unwrap();
        assert!(b.phone != a.phone && c.phone != a.phone);
        assert!(matches!(w.order(&tg(), T0 + 142), Err(Error::NoNumbers)));
        let wa = w
            .order(
                &OrderRequest {
                    service: "wa".into(),
                    ..tg()
                },
                T0 + 143,
            )
            .unwrap();
        assert_eq!(wa.phone, a.phone);
    }

    #[test]
    fn client_order_id_is_idempotent() {
        let mut w = world(1000);
        let req = OrderRequest {
            client_order_id: Some("abc-1".into()),
            ..tg()
        };
        let a = w.order(&req, T0).unwrap();
        let b = w.order(&req, T0 + 1).unwrap();
        assert_eq!(a.id, b.id);
        assert_eq!(w.balance(), 1000 - a.price_minor);
    }

    #[test]
    fn refusals_change_nothing() {
        let mut w = world(10);
        assert!(matches!(w.order(&tg(), T0), Err(Error::NoBalance)));
        let mut w = world(1000);
        assert!(matches!(
            w.order(
                &OrderRequest {
                    country: 999,
                    ..tg()
                },
                T0
            ),
            Err(Error::BadCountry)
        ));
        assert!(matches!(
            w.order(
                &OrderRequest {
                    service: "zz".into(),
                    ..tg()
                },
                T0
            ),
            Err(Error::BadService)
        ));
        assert!(matches!(
            w.order(
                &OrderRequest {
                    operator: Some("nope".into()),
                    ..tg()
                },
                T0
            ),
            Err(Error::WrongOperator)
        ));
        let p = price(&w);
        assert!(matches!(
            w.order(&OrderRequest { max_price_minor: Some(p - 1), ..tg() }, T0),
            Err(Error::WrongMaxPrice { min_minor }) if min_minor == p
        ));
        assert_eq!(w.balance(), 1000);
        let busy: i64 = w
            .conn
            .query_row(
                "SELECT COUNT(*) FROM numbers WHERE state = 'busy'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(busy, 0);
    }

    #[test]
    fn operator_filter_and_excluded_prefixes() {
        let mut w = world(1000);
        let a = w
            .order(
                &OrderRequest {
                    operator: Some("indosat".into()),
                    ..tg()
                },
                T0,
            )
            .unwrap();
        assert_eq!(a.phone, "62822000003");
        let b = w
            .order(
                &OrderRequest {
                    exclude_prefixes: vec!["62811000001".into()],
                    ..tg()
                },
                T0,
            )
            .unwrap();
        assert_eq!(b.phone, "62811000002");
        assert!(matches!(
            w.order(
                &OrderRequest {
                    exclude_prefixes: vec!["6281".into()],
                    ..tg()
                },
                T0
            ),
            Err(Error::NoNumbers)
        ));
    }

    #[test]
    fn live_orders_are_capped() {
        let mut w = world(10_000);
        for s in ["tg", "wa", "go"] {
            w.order(
                &OrderRequest {
                    service: s.into(),
                    ..tg()
                },
                T0,
            )
            .unwrap();
        }
        assert!(matches!(
            w.order(
                &OrderRequest {
                    service: "fb".into(),
                    ..tg()
                },
                T0
            ),
            Err(Error::Limit)
        ));
    }

    #[test]
    fn messages_are_purged_after_the_retention() {
        let mut w = world(1000);
        let a = w.order(&tg(), T0).unwrap();
        w.sms(&a.phone, "Telegram code: 12345", T0 + 5);
        complete(&w.conn, w.user.id, a.id, &POLICY, T0 + 10).unwrap();
        assert_eq!(
            retention::purge_messages(&w.conn, 300, T0 + 309).unwrap(),
            0
        );
        assert_eq!(inbox::for_activation(&w.conn, a.id).unwrap().len(), 1);
        assert_eq!(
            retention::purge_messages(&w.conn, 300, T0 + 310).unwrap(),
            1
        );
        assert!(inbox::for_activation(&w.conn, a.id).unwrap().is_empty());
    }

    #[test]
    fn another_users_order_is_not_found() {
        let mut w = world(1000);
        let a = w.order(&tg(), T0).unwrap();
        assert!(matches!(
            complete(&w.conn, w.user.id + 1, a.id, &POLICY, T0),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn a_number_used_cancel_is_told_apart_from_a_plain_one() {
        let mut w = world(1000);
        let plain = w.order(&tg(), T0).unwrap();
        let used = w.order(&tg(), T0).unwrap();
        let later = T0 + POLICY.early_cancel as i64;
        cancel(
            &w.conn,
            w.user.id,
            plain.id,
            CancelReason::Cancel,
            &POLICY,
            later,
        )
        .unwrap();
        cancel(
            &w.conn,
            w.user.id,
            used.id,
            CancelReason::NumberUsed,
            &POLICY,
            later,
        )
        .unwrap();
        assert!(!ended_as_used(&w.conn, plain.id).unwrap());
        assert!(ended_as_used(&w.conn, used.id).unwrap());
        w.ledger_ok();
    }

    #[test]
    fn lists_by_status_merge_newest_first_and_page_by_keyset() {
        let mut w = world(10_000);
        let a = w.order(&tg(), T0).unwrap();
        let b = w.order(&tg(), T0).unwrap();
        let c = w.order(&tg(), T0).unwrap();
        cancel(
            &w.conn,
            w.user.id,
            b.id,
            CancelReason::Cancel,
            &POLICY,
            T0 + 200,
        )
        .unwrap();
        let ids = |v: Vec<Activation>| v.iter().map(|a| a.id).collect::<Vec<_>>();
        let uid = w.user.id;
        let list = |s: &[Status], before, n| ids(list_before(&w.conn, uid, s, before, n).unwrap());
        assert_eq!(list(&[], None, 10), [c.id, b.id, a.id]);
        assert_eq!(list(&[Status::Waiting], None, 10), [c.id, a.id]);
        let both = [Status::Canceled, Status::Waiting, Status::Waiting];
        assert_eq!(list(&both, None, 2), [c.id, b.id]);
        assert_eq!(list(&both, Some(c.id), 10), [b.id, a.id]);
        assert_eq!(list(&[Status::Expired], None, 10), Vec::<i64>::new());
        assert_eq!(ids(list_live(&w.conn, uid, 10, 0).unwrap()), [c.id, a.id]);
        assert_eq!(ids(list_live(&w.conn, uid, 10, 1).unwrap()), [a.id]);
    }

    #[test]
    fn history_filters_page_by_keyset_and_recent_services_come_newest_first() {
        let mut w = world(10_000);
        let wa = OrderRequest {
            service: "wa".into(),
            ..tg()
        };
        let a = w.order(&tg(), T0).unwrap();
        let b = w.order(&wa, T0).unwrap();
        cancel(
            &w.conn,
            w.user.id,
            b.id,
            CancelReason::Cancel,
            &POLICY,
            T0 + 200,
        )
        .unwrap();
        let c = w.order(&tg(), T0 + 300).unwrap();
        let ids = |v: Vec<Activation>| v.iter().map(|a| a.id).collect::<Vec<_>>();
        let h = |f: HistoryFilter, before: Option<i64>, limit: i64| {
            ids(history(&w.conn, w.user.id, &f, before, limit).unwrap())
        };
        assert_eq!(h(HistoryFilter::default(), None, 10), [c.id, b.id, a.id]);
        assert_eq!(h(HistoryFilter::default(), Some(c.id), 1), [b.id]);
        let tg_only = HistoryFilter {
            service: Some("tg".into()),
            ..Default::default()
        };
        assert_eq!(h(tg_only.clone(), None, 10), [c.id, a.id]);
        assert_eq!(h(tg_only.clone(), None, 1), [c.id]);
        assert_eq!(h(tg_only, Some(c.id), 10), [a.id]);
        let canceled_wa = HistoryFilter {
            status: Some(Status::Canceled),
            service: Some("wa".into()),
            country: Some(6),
        };
        assert_eq!(h(canceled_wa, None, 10), [b.id]);
        let elsewhere = HistoryFilter {
            country: Some(22),
            ..Default::default()
        };
        assert_eq!(h(elsewhere, None, 10), Vec::<i64>::new());
        let waiting_in_6 = HistoryFilter {
            status: Some(Status::Waiting),
            country: Some(6),
            ..Default::default()
        };
        assert_eq!(h(waiting_in_6, None, 10), [c.id, a.id]);
        assert_eq!(
            recent_services(&w.conn, w.user.id, 5).unwrap(),
            ["tg", "wa"]
        );
        assert_eq!(recent_services(&w.conn, w.user.id, 1).unwrap(), ["tg"]);
    }

    #[test]
    fn pages_sort_and_count_add_up() {
        let mut w = world(10_000);
        let a = w.order(&tg(), T0).unwrap();
        let b = w
            .order(
                &OrderRequest {
                    service: "wa".into(),
                    ..tg()
                },
                T0,
            )
            .unwrap();
        let c = w.order(&tg(), T0).unwrap();
        let ids = |v: Vec<Activation>| v.iter().map(|a| a.id).collect::<Vec<_>>();
        let asc = page_recent(&w.conn, w.user.id, OrderBy::Id, false, 10, 0).unwrap();
        assert_eq!(ids(asc), [a.id, b.id, c.id]);
        let desc = page_recent(&w.conn, w.user.id, OrderBy::Id, true, 2, 1).unwrap();
        assert_eq!(ids(desc), [b.id, a.id]);
        let by_service = page_recent(&w.conn, w.user.id, OrderBy::Service, false, 10, 0).unwrap();
        assert_eq!(ids(by_service), [a.id, c.id, b.id]);
        assert_eq!(count_recent(&w.conn, w.user.id).unwrap(), 3);
    }
    /// The simulator's numbers of a country stay a bounded pool however many orders it
    /// serves: with no reuse for a service (cooldown 0 = never), it recycles its least
    /// recently used free number with a new phone instead of making a new row per order.
    #[test]
    fn the_simulator_serves_any_number_of_orders_from_a_bounded_pool() {
        let mut w = world(1_000_000);
        crate::domain::market::simulator::set_on(&w.conn, true).unwrap();
        let india = OrderRequest {
            country: 22,
            ..tg()
        };
        let mut phones = std::collections::HashSet::new();
        for i in 0..(3 * simulator::STOCK) {
            let now = T0 + i * 200;
            let a = w
                .order(&india, now)
                .expect("the simulator always has a number");
            assert!(phones.insert(a.phone.clone()), "a phone served tg twice");
            cancel(
                &w.conn,
                w.user.id,
                a.id,
                CancelReason::Cancel,
                &POLICY,
                now + 150,
            )
            .unwrap();
        }
        let pool: i64 = w
            .conn
            .query_row(
                "SELECT COUNT(*) FROM numbers WHERE source = 'simulator' AND country_id = 22",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(pool, simulator::STOCK);
        let usage: i64 = w
            .conn
            .query_row("SELECT COUNT(*) FROM number_usage", [], |r| r.get(0))
            .unwrap();
        assert!(usage <= simulator::STOCK, "{usage} usage rows");
    }

    /// A simulator's number whose order ends after the simulator was turned off is withdrawn
    /// from sale like its idle ones (our own picks never hand it out), and comes back with it.
    #[test]
    fn a_simulator_number_freed_while_the_simulator_is_off_is_not_stock() {
        let mut w = world(1_000_000);
        simulator::set_on(&w.conn, true).unwrap();
        let india = OrderRequest {
            country: 22,
            ..tg()
        };
        let a = w.order(&india, T0).unwrap();
        assert_eq!(a.source, simulator::SOURCE);
        simulator::set_on(&w.conn, false).unwrap();
        cancel(
            &w.conn,
            w.user.id,
            a.id,
            CancelReason::Cancel,
            &POLICY,
            T0 + 150,
        )
        .unwrap();
        let state = |w: &World| -> String {
            w.conn
                .query_row(
                    "SELECT state FROM numbers WHERE id = ?1",
                    [a.number_id.unwrap()],
                    |r| r.get(0),
                )
                .unwrap()
        };
        assert_eq!(state(&w), "disabled");
        assert!(catalogue::check_stock(&w.conn, POLICY.cooldown, T0 + 150)
            .unwrap()
            .is_empty());
        simulator::set_on(&w.conn, true).unwrap();
        assert_eq!(state(&w), "free");
        assert!(catalogue::check_stock(&w.conn, POLICY.cooldown, T0 + 150)
            .unwrap()
            .is_empty());
    }
}
