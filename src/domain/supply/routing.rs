//! The one place that decides where an order is served from, and the bookkeeping of orders
//! bought upstream. Every ordering edge (native API, SMS-Activate API, 5sim API, web form)
//! goes through [`place_order`].
//!
//! Routing ([`route`]): our own numbers first (the operators' SIMs, manual numbers, the
//! simulator) at the catalogue price, when that price fits the customer's maximum; otherwise
//! the upstream providers selling the pair at a price within it, higher priority first, then
//! cheaper. Operator-specific orders are served from own stock only. A partner hub will be
//! the next source, decided here too.
//!
//! An upstream purchase never holds the write transaction across the network; [`place_order`]
//! runs three steps:
//! 1. reserve, in a transaction: [`route`] validates, reserves the order (an activation with
//!    source `upstream` and no number, an `upstream_orders` row in state `buying`) and
//!    charges the highest price among the providers it may try (an order served from our own
//!    numbers is done here);
//! 2. buy, outside any transaction: the [`Upstream`] (`crate::upstream` in the program, a
//!    fake in tests) calls the providers in order; what a provider's refusal says (no stock
//!    for the pair, no money at the provider) is noted here until its next sync;
//! 3. settle, in a transaction: [`settle`] gives the order its number (`live`), or [`fail`]
//!    closes and refunds it when no provider sold one.
//!
//! A purchase interrupted between 1 and 3 (the process stopped) is closed and refunded by the
//! `upstream` job through [`recover_stale`].
//!
//! While an upstream order is live its status is polled ([`due`], [`apply_poll`]); a code
//! goes through the one ingestion path (`inbox::ingest_coded`). When our order ends, the
//! hook [`order_changed`] (called by `activations` in the same transaction) queues what the
//! provider must be told, and the job sends it ([`pending_done`], [`pending_later`]).

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::db;
use crate::domain::accounts::User;
use crate::domain::market::activations::{
    self, Activation, CancelReason, OrderRequest, Placed, Policy, Status,
};
use crate::domain::market::inbox::{self, Delivered, Inbound};
use crate::domain::market::wallet;
use crate::domain::supply::providers::{self, Candidate, Provider};
use crate::domain::{Error, Result};

/// At most this many providers are tried for one order.
pub const MAX_CANDIDATES: usize = 3;
/// Seconds between two status polls of a live upstream order without a code.
pub const POLL_EVERY: i64 = 5;
/// Seconds between polls once a code arrived (another may come after a retry).
pub const POLL_AFTER_CODE: i64 = 30;
/// Attempts to tell a provider our final state before giving up.
pub const MAX_ATTEMPTS: i64 = 8;

// ---------------------------------------------------------------------------------------
// Routing and buying

/// Where an order goes.
#[derive(Debug)]
pub enum Routed {
    /// Served from our own numbers (or the same client order id again).
    Own(Placed),
    /// Reserved and charged; to be bought from `candidates`, in order.
    Upstream {
        activation: Activation,
        candidates: Vec<Candidate>,
    },
}

/// Why a provider did not sell a number. The first two are noted against the provider until
/// its next sync; every kind moves on to the next candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuyFailure {
    /// The provider has no number for the pair: its offer is marked sold out.
    NoNumbers,
    /// Our account at the provider cannot pay: its balance is set to zero.
    NoBalance,
    /// Anything else (a refusal, a failed call, an unreadable key).
    Other,
}

/// The providers' side of an upstream purchase, as [`place_order`] needs it: the program's is
/// `crate::upstream::Buyer`. Its calls are made outside any transaction; it may write its own
/// short transactions on `conn` (call records, the circuit breaker).
pub trait Upstream {
    /// Called once an order is reserved for buying upstream, before the first [`buy`]
    /// (the customer's wait is counted from here). An error ends the attempt; the
    /// reservation is then closed by the job ([`recover_stale`]).
    ///
    /// [`buy`]: Upstream::buy
    fn begin(&mut self, conn: &mut Connection) -> Result<()>;
    /// Buys a number for `order` from candidate `c`.
    fn buy(
        &mut self,
        conn: &mut Connection,
        c: &Candidate,
        order: &Activation,
    ) -> std::result::Result<Bought, BuyFailure>;
    /// Gives back to `c` a number it sold that cannot be used (best effort).
    fn give_back(&mut self, conn: &mut Connection, c: &Candidate, bought: &Bought);
    /// False once the customer has waited long enough: no further candidate is tried.
    fn may_try_another(&self) -> bool;
    /// An order got its number (wakes whoever waits for changes).
    fn notify(&self);
}

/// Places an order for `user`: the first of `alternatives` that can be served (the next is
/// tried when `keep_going` accepts the error of one), from our own numbers or bought from
/// `upstream` (see the module's three steps). `now` is read afresh for each step. When every
/// provider fails, the reserved order is closed and refunded and the answer is `NoNumbers`.
pub fn place_order(
    conn: &mut Connection,
    user: &User,
    alternatives: &[OrderRequest],
    keep_going: impl Fn(&Error) -> bool + Sync,
    policy: &Policy,
    now: impl Fn() -> Timestamp + Sync,
    upstream: &mut dyn Upstream,
) -> Result<Placed> {
    let t = now();
    // Prechecked: `route` fails only before its first change (it checks that it did).
    let routed = db::write_prechecked(conn, |tx| {
        let mut last = Error::NoNumbers;
        for req in alternatives {
            match route(tx, user, req, policy, t) {
                Ok(r) => return Ok(r),
                Err(e) if keep_going(&e) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    })?;
    let (activation, candidates) = match routed {
        Routed::Own(placed) => return Ok(placed),
        Routed::Upstream {
            activation,
            candidates,
        } => (activation, candidates),
    };
    upstream.begin(conn)?;
    for (i, c) in candidates.iter().enumerate() {
        // Keep the customer's wait bounded.
        if i > 0 && !upstream.may_try_another() {
            break;
        }
        let bought = match upstream.buy(conn, c, &activation) {
            Ok(bought) => bought,
            Err(failure) => {
                // What the provider said holds until its next sync: no stock for the pair,
                // or no money to buy anything.
                let (pid, country, service) = (
                    c.provider.id,
                    activation.country_id,
                    activation.service.as_str(),
                );
                let noted = match failure {
                    BuyFailure::NoNumbers => {
                        db::write(conn, |tx| providers::sold_out(tx, pid, country, service))
                    }
                    BuyFailure::NoBalance => {
                        db::write(conn, |tx| providers::set_balance(tx, pid, 0))
                    }
                    BuyFailure::Other => Ok(()),
                };
                if let Err(e) = noted {
                    log::error!("provider {pid}: {e}");
                }
                continue;
            }
        };
        let settled = db::write(conn, |tx| settle(tx, activation.id, c, &bought, now()));
        match settled {
            Ok(Settled::Live(a)) => {
                upstream.notify();
                return Ok(Placed::New(*a));
            }
            Ok(Settled::Gone) => return Err(Error::NoNumbers),
            Ok(Settled::NumberBusy) => {
                log::warn!(
                    "order {}: provider {} sold a number that is busy here; cancelling it",
                    activation.id,
                    c.provider.id
                );
                upstream.give_back(conn, c, &bought);
            }
            Err(e) => {
                // Bought but not recorded: give it back; the job refunds the reservation.
                log::error!("order {}: cannot record the purchase: {e}", activation.id);
                upstream.give_back(conn, c, &bought);
                return Err(e);
            }
        }
    }
    let t = now();
    db::write(conn, |tx| fail(tx, activation.id, t))?;
    Err(Error::NoNumbers)
}

/// Transaction 1 of an order: our own numbers if they can serve it, else a reservation for
/// an upstream purchase. Errors are those of [`activations::order`]; when neither source can
/// serve, the own-stock error (`NoNumbers`, `WrongMaxPrice` with the lowest price on offer,
/// `NoBalance`).
pub fn route(
    conn: &Connection,
    user: &User,
    req: &OrderRequest,
    policy: &Policy,
    now: Timestamp,
) -> Result<Routed> {
    // A failed attempt on our own stock has written nothing (`activations::order` checks
    // everything first), so the transaction can go on to an upstream reservation without a
    // savepoint (whose copies of every page an order touches cost more than the order's
    // checks). Should it ever have written, the order fails whole rather than keep it.
    let written = conn.total_changes();
    let own = match activations::order(conn, user, req, policy, now) {
        Ok(placed) => return Ok(Routed::Own(placed)),
        Err(e @ (Error::NoNumbers | Error::WrongMaxPrice { .. } | Error::NoBalance)) => e,
        Err(e) => return Err(e),
    };
    if conn.total_changes() != written {
        log::error!("an order failed after writing ({own}); not trying upstream");
        return Err(Error::Internal(format!(
            "the order failed after writing: {own}"
        )));
    }
    let any_operator = matches!(
        req.operator.as_deref().map(str::trim),
        None | Some("" | "any")
    );
    if !any_operator {
        return Err(own);
    }
    let service = req.service.trim().to_ascii_lowercase();
    let all = providers::candidates(conn, req.country, &service, now)?;
    let Some(cheapest) = all.iter().map(|c| c.price_minor).min() else {
        return Err(own);
    };
    let fitting: Vec<Candidate> = all
        .into_iter()
        .filter(|c| req.max_price_minor.is_none_or(|m| c.price_minor <= m))
        .collect();
    if fitting.is_empty() {
        let min_minor = match own {
            Error::WrongMaxPrice { min_minor } => min_minor.min(cheapest),
            _ => cheapest,
        };
        return Err(Error::WrongMaxPrice { min_minor });
    }
    let balance = wallet::balance(conn, user.id)?;
    let candidates: Vec<Candidate> = fitting
        .into_iter()
        .filter(|c| c.price_minor <= balance)
        .take(MAX_CANDIDATES)
        .collect();
    let Some(hold) = candidates.iter().map(|c| c.price_minor).max() else {
        return Err(Error::NoBalance);
    };
    let req = OrderRequest {
        service,
        ..req.clone()
    };
    let activation = activations::reserve_upstream(conn, user, &req, hold, policy, now)?;
    conn.prepare_cached(
        "INSERT INTO upstream_orders (activation_id, provider_id, cost_minor, state, next_poll_at, \
         created_at) VALUES (?1, ?2, ?3, 'buying', ?4, ?4)",
    )?
    .execute(params![
        activation.id,
        candidates[0].provider.id,
        candidates[0].cost_minor,
        now
    ])?;
    Ok(Routed::Upstream {
        activation,
        candidates,
    })
}

/// A number a provider sold us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bought {
    pub upstream_id: String,
    /// As the provider wrote it; digits are kept.
    pub phone: String,
    pub operator: String,
    /// What the provider says it charged, when it says so (our minor units).
    pub cost_minor: Option<i64>,
}

/// How transaction 2 went.
#[derive(Debug)]
pub enum Settled {
    /// The order has its number.
    Live(Box<Activation>),
    /// Our order ended meanwhile (or the purchase was given up): the provider's order is
    /// queued for cancelling.
    Gone,
    /// The number is busy with another live order of ours; the caller cancels this purchase
    /// and tries the next provider.
    NumberBusy,
}

/// Transaction 2 after a purchase from `c`.
pub fn settle(
    conn: &Connection,
    activation_id: i64,
    c: &Candidate,
    b: &Bought,
    now: Timestamp,
) -> Result<Settled> {
    let cost = b.cost_minor.unwrap_or(c.cost_minor);
    let state: Option<(String, String)> = conn
        .prepare_cached("SELECT state, pending FROM upstream_orders WHERE activation_id = ?1")?
        .query_row([activation_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let a = activations::get(conn, activation_id)?;
    let still_buying = matches!(&state, Some((s, p)) if s == "buying" && p.is_empty());
    let a = match a {
        Some(a) if still_buying && a.status == Status::Waiting && a.number_id.is_none() => a,
        _ => {
            conn.execute(
                "UPDATE upstream_orders SET provider_id = ?2, upstream_id = ?3, cost_minor = ?4, \
                 state = 'closing', pending = 'cancel', attempts = 0, next_poll_at = ?5 \
                 WHERE activation_id = ?1",
                params![activation_id, c.provider.id, b.upstream_id, cost, now],
            )?;
            return Ok(Settled::Gone);
        }
    };
    let phone = inbox::digits(&b.phone);
    let existing: Option<(i64, String)> = conn
        .prepare_cached("SELECT id, state FROM numbers WHERE phone = ?1")?
        .query_row([&phone], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let number_id = match existing {
        Some((_, state)) if state != "free" => return Ok(Settled::NumberBusy),
        Some((id, _)) => {
            conn.execute(
                "UPDATE numbers SET state = 'busy', last_used_at = ?2, \
                 provider_id = CASE source WHEN 'upstream' THEN ?3 ELSE provider_id END, \
                 operator = CASE source WHEN 'upstream' THEN ?4 ELSE operator END \
                 WHERE id = ?1 AND state = 'free'",
                params![id, now, c.provider.id, b.operator],
            )?;
            id
        }
        None => {
            conn.execute(
                "INSERT INTO numbers (phone, country_id, operator, source, provider_id, on_sale, \
                 state, created_at, last_used_at) VALUES (?1, ?2, ?3, 'upstream', ?4, 0, 'busy', ?5, ?5)",
                params![phone, a.country_id, b.operator, c.provider.id, now],
            )?;
            conn.last_insert_rowid()
        }
    };
    conn.prepare_cached(
        "INSERT INTO number_usage (number_id, service, last_used_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (number_id, service) DO UPDATE SET last_used_at = excluded.last_used_at",
    )?
    .execute(params![number_id, a.service, now])?;
    let a =
        activations::issue_upstream(conn, &a, number_id, &phone, &b.operator, c.price_minor, now)?;
    conn.execute(
        "UPDATE upstream_orders SET provider_id = ?2, upstream_id = ?3, cost_minor = ?4, \
         state = 'live', pending = '', next_poll_at = ?5 WHERE activation_id = ?1",
        params![
            activation_id,
            c.provider.id,
            b.upstream_id,
            cost,
            now + POLL_EVERY
        ],
    )?;
    providers::took_one(conn, c.provider.id, a.country_id, &a.service)?;
    Ok(Settled::Live(Box::new(a)))
}

/// Transaction 2 when no provider sold a number: the order is closed and refunded.
pub fn fail(conn: &Connection, activation_id: i64, now: Timestamp) -> Result<()> {
    activations::close_unissued(conn, activation_id, "no upstream number", now)?;
    conn.execute(
        "UPDATE upstream_orders SET state = 'closed', pending = '' \
         WHERE activation_id = ?1 AND state = 'buying'",
        [activation_id],
    )?;
    Ok(())
}

/// Closes and refunds purchases still `buying` that started at or before `before` (the
/// process stopped between transactions 1 and 2); how many.
pub fn recover_stale(conn: &Connection, before: Timestamp, now: Timestamp) -> Result<usize> {
    let ids: Vec<i64> = {
        let mut stmt = conn.prepare_cached(
            "SELECT activation_id FROM upstream_orders WHERE state = 'buying' AND created_at <= ?1 \
             ORDER BY activation_id LIMIT 100",
        )?;
        let rows = stmt.query_map([before], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for &id in &ids {
        activations::close_unissued(conn, id, "upstream purchase interrupted", now)?;
        conn.execute(
            "UPDATE upstream_orders SET state = 'closed', pending = '' WHERE activation_id = ?1",
            [id],
        )?;
    }
    Ok(ids.len())
}

// ---------------------------------------------------------------------------------------
// Polling and telling

/// An upstream order the job should look at now.
#[derive(Debug, Clone)]
pub struct Due {
    pub activation_id: i64,
    pub provider: Provider,
    pub upstream_id: String,
    /// `live` (poll; send a pending retry) or `closing` (send `pending`).
    pub state: String,
    pub pending: String,
    pub attempts: i64,
    pub phone: String,
}

/// Upstream orders due for a poll or a message, of providers not paused, oldest first.
pub fn due(conn: &Connection, now: Timestamp, limit: i64) -> Result<Vec<Due>> {
    let mut stmt = conn.prepare_cached(
        "SELECT u.activation_id, u.provider_id, COALESCE(u.upstream_id, ''), u.state, u.pending, \
         u.attempts, a.phone FROM upstream_orders u \
         JOIN activations a ON a.id = u.activation_id JOIN providers p ON p.id = u.provider_id \
         WHERE u.state IN ('live', 'closing') AND u.next_poll_at <= ?1 \
         AND (p.paused_until IS NULL OR p.paused_until <= ?1) \
         ORDER BY u.next_poll_at, u.activation_id LIMIT ?2",
    )?;
    let rows: Vec<(i64, i64, String, String, String, i64, String)> = stmt
        .query_map(params![now, limit], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (activation_id, pid, upstream_id, state, pending, attempts, phone) in rows {
        let Some(provider) = providers::get(conn, pid)? else {
            continue;
        };
        out.push(Due {
            activation_id,
            provider,
            upstream_id,
            state,
            pending,
            attempts,
            phone,
        });
    }
    Ok(out)
}

/// An SMS a provider reports for an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSms {
    /// Identifies it among the order's messages (de-duplication).
    pub key: String,
    pub sender: String,
    /// The text when the provider gives it; else a short text built around the code.
    pub text: String,
    /// The code as the provider extracted it (wins over our own extraction).
    pub code: Option<String>,
}

/// What a status poll found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Polled {
    pub sms: Vec<UpstreamSms>,
    /// The provider ended the order on its side.
    pub ended: Option<Ended>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Cancelled, expired or banned upstream.
    Canceled,
    /// Finished upstream.
    Finished,
}

/// What a poll changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Messages delivered to the order.
    pub delivered: usize,
    /// Messages that came too late (our order had ended): not delivered, not charged.
    pub late: usize,
    /// Our order was cancelled and refunded because the provider ended it.
    pub canceled: bool,
}

/// Applies a poll's result to a live upstream order (one transaction): each new SMS goes
/// through the one ingestion path; a provider-side end cancels and refunds our order when it
/// has no code (and closes the upstream order either way).
pub fn apply_poll(conn: &Connection, d: &Due, p: &Polled, now: Timestamp) -> Result<Applied> {
    let mut out = Applied::default();
    let mut got_code = false;
    for sms in &p.sms {
        let msg = Inbound {
            to: d.phone.clone(),
            sender: sms.sender.clone(),
            text: sms.text.clone(),
            received_at: now,
            source: format!("upstream:{}", d.provider.id),
            source_msg_id: Some(format!("{}:{}", d.upstream_id, sms.key)),
            device_id: None,
        };
        match inbox::ingest_coded(conn, &msg, sms.code.as_deref(), now)? {
            Delivered::Activation { id, .. } if id == d.activation_id => {
                out.delivered += 1;
                got_code |= sms.code.is_some();
                if let Some(code) = &sms.code {
                    conn.execute(
                        "UPDATE upstream_orders SET last_code = ?2 WHERE activation_id = ?1",
                        params![d.activation_id, code],
                    )?;
                }
            }
            Delivered::Duplicate => got_code |= sms.code.is_some(),
            Delivered::Activation { id, .. } => {
                log::warn!(
                    "upstream SMS for order {} reached order {id} on the same number",
                    d.activation_id
                );
            }
            _ => out.late += 1,
        }
    }
    if let Some(ended) = p.ended {
        let a = activations::get(conn, d.activation_id)?.ok_or(Error::NotFound("activation"))?;
        if ended == Ended::Canceled && a.status.is_live() && a.code_at.is_none() {
            // The provider gave up the number: no wait for the customer's cancel window.
            let policy = Policy {
                early_cancel: 0,
                default_ttl: 0,
                max_live: 0,
                cooldown: 0,
                sim_delay: 0,
                sim_odds: crate::domain::market::simulator::Odds::NONE,
                operator_share: 0,
                allow_private_urls: false,
            };
            activations::cancel(conn, a.user_id, a.id, CancelReason::Cancel, &policy, now)?;
            out.canceled = true;
        }
        conn.execute(
            "UPDATE upstream_orders SET state = 'closed', pending = '' WHERE activation_id = ?1",
            [d.activation_id],
        )?;
        return Ok(out);
    }
    let next = if got_code {
        POLL_AFTER_CODE
    } else {
        POLL_EVERY
    };
    conn.execute(
        "UPDATE upstream_orders SET next_poll_at = ?2 WHERE activation_id = ?1 AND state = 'live'",
        params![d.activation_id, now + next],
    )?;
    Ok(out)
}

/// A poll or message that failed: try again later.
pub fn poll_later(conn: &Connection, activation_id: i64, now: Timestamp) -> Result<()> {
    conn.execute(
        "UPDATE upstream_orders SET next_poll_at = ?2 WHERE activation_id = ?1",
        params![activation_id, now + POLL_EVERY],
    )?;
    Ok(())
}

/// The provider took `what` (or has nothing more to hear about the order).
pub fn pending_done(
    conn: &Connection,
    activation_id: i64,
    what: &str,
    now: Timestamp,
) -> Result<()> {
    conn.execute(
        "UPDATE upstream_orders SET pending = '', attempts = 0, next_poll_at = ?3, \
         state = CASE state WHEN 'closing' THEN 'closed' ELSE state END \
         WHERE activation_id = ?1 AND pending = ?2",
        params![activation_id, what, now + POLL_EVERY],
    )?;
    Ok(())
}

/// Telling the provider `what` failed: again later with back-off, given up after
/// [`MAX_ATTEMPTS`] (the order is closed on our side whatever the provider thinks). True
/// when given up.
pub fn pending_later(
    conn: &Connection,
    activation_id: i64,
    what: &str,
    attempts: i64,
    now: Timestamp,
) -> Result<bool> {
    let attempts = attempts + 1;
    if attempts >= MAX_ATTEMPTS {
        conn.execute(
            "UPDATE upstream_orders SET pending = '', attempts = ?3, \
             state = CASE state WHEN 'closing' THEN 'closed' ELSE state END \
             WHERE activation_id = ?1 AND pending = ?2",
            params![activation_id, what, attempts],
        )?;
        return Ok(true);
    }
    let wait = (POLL_EVERY << attempts.min(8)).min(3600);
    conn.execute(
        "UPDATE upstream_orders SET attempts = ?3, next_poll_at = ?4 \
         WHERE activation_id = ?1 AND pending = ?2",
        params![activation_id, what, attempts, now + wait],
    )?;
    Ok(false)
}

// ---------------------------------------------------------------------------------------
// Routing table

/// Where an order's number came from, for the routing table.
pub fn source_label(source: &str, provider: Option<&str>) -> String {
    match (source, provider) {
        ("upstream", Some(name)) => format!("upstream: {name}"),
        ("sim", _) => "own SIM".to_string(),
        (other, _) => other.to_string(),
    }
}

/// Success of ended orders per (country, service, source) since `since`.
#[derive(Debug, Clone, Serialize)]
pub struct RouteRow {
    pub country: i64,
    pub service: String,
    /// `own SIM`, `manual`, `simulator` or `upstream: NAME`.
    pub source: String,
    pub completed: i64,
    pub ended: i64,
}

impl RouteRow {
    pub fn success_percent(&self) -> i64 {
        if self.ended == 0 {
            0
        } else {
            self.completed * 100 / self.ended
        }
    }
}

/// Orders that got a number and ended since `since`, grouped by where the number came from.
pub fn routing_table(conn: &Connection, since: Timestamp) -> Result<Vec<RouteRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.country_id, a.service, a.source, p.name, SUM(a.status = 'completed'), COUNT(*) \
         FROM activations a LEFT JOIN upstream_orders u ON u.activation_id = a.id \
         LEFT JOIN providers p ON p.id = u.provider_id \
         WHERE a.status IN ('completed', 'canceled', 'expired') AND a.number_id IS NOT NULL \
         AND a.ended_at >= ?1 GROUP BY a.country_id, a.service, a.source, p.id \
         ORDER BY a.country_id, a.service, a.source, p.name",
    )?;
    let rows = stmt.query_map([since], |r| {
        let source: String = r.get(2)?;
        let provider: Option<String> = r.get(3)?;
        Ok(RouteRow {
            country: r.get(0)?,
            service: r.get(1)?,
            source: source_label(&source, provider.as_deref()),
            completed: r.get(4)?,
            ended: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::testing::account_at;
    use crate::domain::accounts::{self, Role};
    use crate::domain::base::crypto::Keys;
    use crate::domain::supply::providers::{NewProvider, OfferIn};
    use crate::domain::{market::catalogue, market::inbox, market::wallet};

    const POLICY: Policy = Policy {
        early_cancel: 120,
        default_ttl: 1200,
        max_live: 10,
        cooldown: 0,
        sim_delay: 5,
        sim_odds: crate::domain::market::simulator::Odds::NONE,
        operator_share: 70,
        allow_private_urls: false,
    };
    const T0: i64 = 1_000_000;

    struct World {
        conn: Connection,
        user: User,
        /// Providers: a (priority 0, cost 100 → 120), b (priority 0, cost 150 → 180).
        a: i64,
        b: i64,
    }

    fn world(balance: i64) -> World {
        let conn = db::memory();
        catalogue::seed_if_empty(&conn).unwrap();
        let customer = account_at(&conn, "c@example.com", Role::User, T0);
        wallet::post(
            &conn,
            customer,
            balance,
            wallet::Kind::Adjustment,
            ("", None),
            "",
            T0,
        )
        .unwrap();
        let keys = Keys::from_bytes([1; 32]);
        let mut ids = Vec::new();
        for (key, cost) in [("key-a", 100), ("key-b", 150)] {
            let id = providers::add(
                &conn,
                &keys,
                &NewProvider {
                    kind: providers::Kind::SmsActivate,
                    name: key,
                    base_url: "http://up.example",
                    key,
                    markup_bp: 2000,
                    priority: 0,
                    unit_minor: 100,
                },
                T0,
            )
            .unwrap();
            providers::store_offers(
                &conn,
                id,
                &[OfferIn {
                    country: 6,
                    service: "tg".into(),
                    cost_minor: cost,
                    stock: 10,
                }],
                T0,
            )
            .unwrap();
            ids.push(id);
        }
        let user = accounts::get(&conn, customer).unwrap();
        World {
            conn,
            user,
            a: ids[0],
            b: ids[1],
        }
    }

    fn tg() -> OrderRequest {
        OrderRequest {
            country: 6,
            service: "tg".into(),
            ..Default::default()
        }
    }

    impl World {
        fn route(&mut self, req: &OrderRequest) -> Result<Routed> {
            self.user = accounts::get(&self.conn, self.user.id).unwrap();
            let tx = self.conn.transaction().unwrap();
            let r = route(&tx, &self.user, req, &POLICY, T0);
            if r.is_ok() {
                tx.commit().unwrap();
            }
            r
        }

        fn reserve(&mut self, req: &OrderRequest) -> (Activation, Vec<Candidate>) {
            match self.route(req).unwrap() {
                Routed::Upstream {
                    activation,
                    candidates,
                } => (activation, candidates),
                other => panic!("not upstream: {other:?}"),
            }
        }

        fn balance(&self) -> i64 {
            wallet::balance(&self.conn, self.user.id).unwrap()
        }

        fn upstream_state(&self, id: i64) -> (String, String) {
            self.conn
                .query_row(
                    "SELECT state, pending FROM upstream_orders WHERE activation_id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap()
        }

        fn ledger_ok(&self) {
            assert_eq!(wallet::check(&self.conn).unwrap(), Vec::<String>::new());
        }

        fn due_one(&self, now: Timestamp) -> Due {
            let mut d = due(&self.conn, now, 10).unwrap();
            assert_eq!(d.len(), 1, "{d:?}");
            d.remove(0)
        }
    }

    fn bought(phone: &str) -> Bought {
        Bought {
            upstream_id: "777".into(),
            phone: phone.into(),
            operator: String::new(),
            cost_minor: None,
        }
    }

    fn code(c: &str) -> Polled {
        Polled {
            sms: vec![UpstreamSms {
                key: c.into(),
                sender: "upstream".into(),
                text: format!("Code: {c}"),
                code: Some(c.into()),
            }],
            ended: None,
        }
    }

    /// An [`Upstream`] without a network: each buy takes the next of `answers`.
    #[derive(Default)]
    struct Fake {
        answers: Vec<std::result::Result<Bought, BuyFailure>>,
        /// Stop after the first candidate (the customer waited long enough).
        impatient: bool,
        begun: bool,
        /// The providers asked, in order.
        asked: Vec<i64>,
        /// Upstream ids given back.
        given_back: Vec<String>,
        notified: std::cell::Cell<usize>,
    }

    impl Fake {
        fn answering(answers: Vec<std::result::Result<Bought, BuyFailure>>) -> Fake {
            Fake {
                answers,
                ..Fake::default()
            }
        }
    }

    impl Upstream for Fake {
        fn begin(&mut self, _: &mut Connection) -> Result<()> {
            self.begun = true;
            Ok(())
        }

        fn buy(
            &mut self,
            _: &mut Connection,
            c: &Candidate,
            order: &Activation,
        ) -> std::result::Result<Bought, BuyFailure> {
            assert!(self.begun);
            assert_eq!((order.country_id, order.service.as_str()), (6, "tg"));
            self.asked.push(c.provider.id);
            self.answers.remove(0)
        }

        fn give_back(&mut self, _: &mut Connection, _: &Candidate, bought: &Bought) {
            self.given_back.push(bought.upstream_id.clone());
        }

        fn may_try_another(&self) -> bool {
            !self.impatient
        }

        fn notify(&self) {
            self.notified.set(self.notified.get() + 1);
        }
    }

    fn sold(upstream_id: &str, phone: &str) -> std::result::Result<Bought, BuyFailure> {
        Ok(Bought {
            upstream_id: upstream_id.into(),
            ..bought(phone)
        })
    }

    impl World {
        fn place(&mut self, req: &OrderRequest, up: &mut Fake) -> Result<Placed> {
            self.user = accounts::get(&self.conn, self.user.id).unwrap();
            place_order(
                &mut self.conn,
                &self.user,
                std::slice::from_ref(req),
                |_| false,
                &POLICY,
                || T0,
                up,
            )
        }

        fn stock(&self, provider: i64) -> i64 {
            self.conn
                .query_row(
                    "SELECT stock FROM provider_offers WHERE provider_id = ?1",
                    [provider],
                    |r| r.get(0),
                )
                .unwrap()
        }
    }

    #[test]
    fn an_order_bought_upstream_is_settled_with_what_was_sold() {
        let mut w = world(1000);
        // Own stock serves first; the providers are not asked.
        w.conn
            .execute(
                "INSERT INTO numbers (phone, country_id, source, created_at) VALUES ('6281', 6, 'manual', 0)",
                [],
            )
            .unwrap();
        let mut up = Fake::default();
        let Placed::New(own) = w.place(&tg(), &mut up).unwrap() else {
            panic!("not new")
        };
        assert_eq!(
            (own.source.as_str(), own.phone.as_str()),
            ("manual", "6281")
        );
        assert!(!up.begun && up.asked.is_empty());
        let before = w.balance();
        // Own stock gone: bought from the first candidate at its price.
        let mut up = Fake::answering(vec![Ok(Bought {
            cost_minor: Some(90),
            ..bought("+62 811 5550001")
        })]);
        let Placed::New(a) = w.place(&tg(), &mut up).unwrap() else {
            panic!("not new")
        };
        assert_eq!(up.asked, [w.a]);
        assert_eq!(up.notified.get(), 1);
        assert!(up.given_back.is_empty());
        assert_eq!(
            (a.source.as_str(), a.phone.as_str(), a.price_minor),
            ("upstream", "628115550001", 120)
        );
        assert_eq!(w.balance(), before - 120);
        assert_eq!(w.upstream_state(a.id), ("live".into(), String::new()));
        let (upstream_id, cost): (String, i64) = w
            .conn
            .query_row(
                "SELECT upstream_id, cost_minor FROM upstream_orders WHERE activation_id = ?1",
                [a.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((upstream_id.as_str(), cost), ("777", 90));
        assert_eq!(w.stock(w.a), 9);
        w.ledger_ok();
    }

    #[test]
    fn a_provider_without_numbers_is_marked_sold_out_and_the_next_one_tried() {
        let mut w = world(1000);
        let mut up = Fake::answering(vec![
            Err(BuyFailure::NoNumbers),
            sold("888", "628115550002"),
        ]);
        let Placed::New(a) = w.place(&tg(), &mut up).unwrap() else {
            panic!("not new")
        };
        assert_eq!(up.asked, [w.a, w.b]);
        assert_eq!((a.phone.as_str(), a.price_minor), ("628115550002", 180));
        assert_eq!(w.stock(w.a), 0, "sold out until the next sync");
        assert_eq!(w.stock(w.b), 9);
        assert_eq!(w.balance(), 1000 - 180);
        w.ledger_ok();
        // A number busy with another of our orders is given back and the next one tried.
        let mut w = world(1000);
        w.conn
            .execute(
                "INSERT INTO numbers (phone, country_id, source, state, created_at) \
                 VALUES ('628115550002', 6, 'manual', 'busy', 0)",
                [],
            )
            .unwrap();
        let mut up = Fake::answering(vec![
            sold("901", "628115550002"),
            sold("902", "628115550003"),
        ]);
        let Placed::New(c) = w.place(&tg(), &mut up).unwrap() else {
            panic!("not new")
        };
        assert_eq!(up.asked, [w.a, w.b]);
        assert_eq!(up.given_back, ["901"]);
        assert_eq!((c.phone.as_str(), c.price_minor), ("628115550003", 180));
        assert_eq!(w.balance(), 1000 - 180);
        w.ledger_ok();
    }

    #[test]
    fn when_no_provider_sells_the_order_is_refunded_and_no_numbers_answered() {
        let mut w = world(1000);
        let mut up = Fake::answering(vec![Err(BuyFailure::NoBalance), Err(BuyFailure::Other)]);
        assert!(matches!(w.place(&tg(), &mut up), Err(Error::NoNumbers)));
        assert_eq!(up.asked, [w.a, w.b]);
        assert_eq!(up.notified.get(), 0);
        assert_eq!(w.balance(), 1000);
        assert_eq!(
            providers::get(&w.conn, w.a).unwrap().unwrap().balance_minor,
            Some(0)
        );
        assert_eq!((w.stock(w.a), w.stock(w.b)), (10, 10));
        let a: i64 = w
            .conn
            .query_row("SELECT MAX(id) FROM activations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            activations::get(&w.conn, a).unwrap().unwrap().status,
            Status::Canceled
        );
        assert_eq!(w.upstream_state(a).0, "closed");
        w.ledger_ok();
        // Once the customer waited long enough, no further provider is asked.
        let mut w = world(1000);
        let mut up = Fake {
            impatient: true,
            ..Fake::answering(vec![Err(BuyFailure::NoNumbers)])
        };
        assert!(matches!(w.place(&tg(), &mut up), Err(Error::NoNumbers)));
        assert_eq!(up.asked, [w.a]);
        assert_eq!(w.balance(), 1000);
        w.ledger_ok();
    }

    #[test]
    fn own_numbers_come_first_when_their_price_fits() {
        let mut w = world(10_000);
        w.conn
            .execute(
                "INSERT INTO numbers (phone, country_id, source, created_at) VALUES ('6281', 6, 'manual', 0)",
                [],
            )
            .unwrap();
        let price = catalogue::price(&w.conn, 6, "tg", "")
            .unwrap()
            .unwrap()
            .price_minor;
        match w.route(&tg()).unwrap() {
            Routed::Own(Placed::New(a)) => {
                assert_eq!((a.phone.as_str(), a.price_minor), ("6281", price))
            }
            other => panic!("{other:?}"),
        }
        // Own stock gone: upstream, the cheaper first, charged the dearest that may be tried.
        let (a, c) = w.reserve(&tg());
        assert_eq!(
            c.iter().map(|c| c.provider.id).collect::<Vec<_>>(),
            [w.a, w.b]
        );
        assert_eq!(a.price_minor, 180);
        assert_eq!(a.source, "upstream");
        assert_eq!(w.balance(), 10_000 - price - 180);
        // A maximum below the catalogue price but above an upstream price goes upstream too.
        w.conn
            .execute(
                "DELETE FROM numbers WHERE phone = '6281' AND state = 'free'",
                [],
            )
            .unwrap();
        let (_, c) = w.reserve(&OrderRequest {
            max_price_minor: Some(150),
            ..tg()
        });
        assert_eq!(c.len(), 1);
        assert!(matches!(
            w.route(&OrderRequest {
                max_price_minor: Some(100),
                ..tg()
            }),
            Err(Error::WrongMaxPrice { min_minor: 120 })
        ));
        // An operator-specific order is never bought upstream.
        assert!(matches!(
            w.route(&OrderRequest {
                operator: Some("telkomsel".into()),
                ..tg()
            }),
            Err(Error::NoNumbers)
        ));
        w.ledger_ok();
    }

    #[test]
    fn a_purchase_settles_at_its_price_and_the_difference_goes_back() {
        let mut w = world(1000);
        let (a, c) = w.reserve(&tg());
        assert_eq!(w.balance(), 1000 - 180);
        // The first candidate (120) sold: 60 of the 180 held go back.
        let s = settle(&w.conn, a.id, &c[0], &bought("+62 811 5550001"), T0 + 1).unwrap();
        let Settled::Live(live) = s else {
            panic!("{s:?}")
        };
        assert_eq!(
            (live.phone.as_str(), live.price_minor),
            ("628115550001", 120)
        );
        assert!(live.number_id.is_some());
        assert_eq!(w.balance(), 1000 - 120);
        assert_eq!(w.upstream_state(a.id), ("live".into(), String::new()));
        let (on_sale, provider): (bool, i64) = w
            .conn
            .query_row(
                "SELECT on_sale, provider_id FROM numbers WHERE phone = '628115550001'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(!on_sale);
        assert_eq!(provider, w.a);
        // The number is busy: another purchase of it cannot settle.
        let (b, c2) = w.reserve(&tg());
        assert!(matches!(
            settle(&w.conn, b.id, &c2[0], &bought("628115550001"), T0 + 2).unwrap(),
            Settled::NumberBusy
        ));
        fail(&w.conn, b.id, T0 + 3).unwrap();
        assert_eq!(
            activations::get(&w.conn, b.id).unwrap().unwrap().status,
            Status::Canceled
        );
        assert_eq!(w.balance(), 1000 - 120);
        w.ledger_ok();
    }

    #[test]
    fn a_failed_purchase_is_refunded_and_its_order_id_freed() {
        let mut w = world(1000);
        let req = OrderRequest {
            client_order_id: Some("x-1".into()),
            ..tg()
        };
        let (a, _) = w.reserve(&req);
        fail(&w.conn, a.id, T0 + 5).unwrap();
        assert_eq!(w.balance(), 1000);
        assert_eq!(w.upstream_state(a.id).0, "closed");
        let (again, _) = w.reserve(&req);
        assert_ne!(again.id, a.id, "the order id can be used again");
        // An interrupted purchase is closed by the recovery.
        assert_eq!(recover_stale(&w.conn, T0 - 1, T0 + 100).unwrap(), 0);
        assert_eq!(recover_stale(&w.conn, T0, T0 + 100).unwrap(), 1);
        assert_eq!(w.balance(), 1000);
        // A purchase that lands after the recovery is queued for cancelling upstream.
        let c = providers::candidates(&w.conn, 6, "tg", T0).unwrap();
        assert!(matches!(
            settle(&w.conn, again.id, &c[0], &bought("628115550009"), T0 + 101).unwrap(),
            Settled::Gone
        ));
        assert_eq!(
            w.upstream_state(again.id),
            ("closing".into(), "cancel".into())
        );
        w.ledger_ok();
    }

    #[test]
    fn codes_are_delivered_and_our_end_is_told_upstream() {
        let mut w = world(1000);
        let (a, c) = w.reserve(&tg());
        settle(&w.conn, a.id, &c[0], &bought("628115550001"), T0).unwrap();
        assert!(due(&w.conn, T0, 10).unwrap().is_empty(), "not due yet");
        let d = w.due_one(T0 + POLL_EVERY);
        assert_eq!(d.upstream_id, "777");
        assert_eq!(
            apply_poll(&w.conn, &d, &Polled::default(), T0 + 5).unwrap(),
            Applied::default()
        );
        let d = w.due_one(T0 + 10);
        let applied = apply_poll(&w.conn, &d, &code("4242"), T0 + 10).unwrap();
        assert_eq!(applied.delivered, 1);
        assert_eq!(
            inbox::latest_code(&w.conn, a.id).unwrap().as_deref(),
            Some("4242")
        );
        // Polled again: the same code is not delivered twice.
        let d = w.due_one(T0 + 10 + POLL_AFTER_CODE);
        assert_eq!(
            apply_poll(&w.conn, &d, &code("4242"), T0 + 40)
                .unwrap()
                .delivered,
            0
        );
        // A retry is forwarded, then the finish.
        activations::retry(&w.conn, w.user.id, a.id, &POLICY, T0 + 50).unwrap();
        assert_eq!(w.upstream_state(a.id), ("live".into(), "retry".into()));
        pending_done(&w.conn, a.id, "retry", T0 + 51).unwrap();
        apply_poll(&w.conn, &w.due_one(T0 + 60), &code("5151"), T0 + 60).unwrap();
        activations::complete(&w.conn, w.user.id, a.id, &POLICY, T0 + 70).unwrap();
        assert_eq!(w.upstream_state(a.id), ("closing".into(), "finish".into()));
        let d = w.due_one(T0 + 70);
        assert_eq!(d.pending, "finish");
        assert!(!pending_later(&w.conn, a.id, "finish", d.attempts, T0 + 70).unwrap());
        assert!(due(&w.conn, T0 + 71, 10).unwrap().is_empty(), "backing off");
        pending_done(&w.conn, a.id, "finish", T0 + 100).unwrap();
        assert_eq!(w.upstream_state(a.id), ("closed".into(), String::new()));
        assert_eq!(w.balance(), 1000 - 120);
        w.ledger_ok();
    }

    #[test]
    fn a_code_after_our_expiry_is_not_delivered_and_the_provider_is_told_to_cancel() {
        let mut w = world(1000);
        let (a, c) = w.reserve(&tg());
        settle(&w.conn, a.id, &c[0], &bought("628115550001"), T0).unwrap();
        let d = w.due_one(a.expires_at);
        // The code comes once our time is up (the expiry job has not run yet).
        let applied = apply_poll(&w.conn, &d, &code("9999"), a.expires_at).unwrap();
        assert_eq!((applied.delivered, applied.late), (0, 1));
        assert_eq!(
            activations::expire_due(&w.conn, &POLICY, a.expires_at).unwrap(),
            vec![a.id]
        );
        assert!(inbox::for_activation(&w.conn, a.id).unwrap().is_empty());
        assert_eq!(w.balance(), 1000, "refunded, nothing charged");
        assert_eq!(w.upstream_state(a.id), ("closing".into(), "cancel".into()));
        w.ledger_ok();
    }

    #[test]
    fn a_provider_side_cancel_refunds_an_order_without_a_code() {
        let mut w = world(1000);
        let (a, c) = w.reserve(&tg());
        settle(&w.conn, a.id, &c[0], &bought("628115550001"), T0).unwrap();
        let ended = Polled {
            sms: vec![],
            ended: Some(Ended::Canceled),
        };
        let applied = apply_poll(&w.conn, &w.due_one(T0 + 5), &ended, T0 + 5).unwrap();
        assert!(applied.canceled);
        assert_eq!(
            activations::get(&w.conn, a.id).unwrap().unwrap().status,
            Status::Canceled
        );
        assert_eq!(w.upstream_state(a.id), ("closed".into(), String::new()));
        assert_eq!(w.balance(), 1000);
        // Used as "number already used": the provider is told to ban it.
        let (b, c) = w.reserve(&tg());
        settle(&w.conn, b.id, &c[0], &bought("628115550002"), T0).unwrap();
        activations::cancel(
            &w.conn,
            w.user.id,
            b.id,
            CancelReason::NumberUsed,
            &POLICY,
            T0 + 200,
        )
        .unwrap();
        assert_eq!(w.upstream_state(b.id), ("closing".into(), "ban".into()));
        // An account closed with a live upstream order: the provider is told to cancel.
        let (c, cands) = w.reserve(&tg());
        settle(&w.conn, c.id, &cands[0], &bought("628115550003"), T0).unwrap();
        activations::close_all_for(&w.conn, w.user.id, 70, T0 + 300).unwrap();
        assert_eq!(w.upstream_state(c.id), ("closing".into(), "cancel".into()));
        w.ledger_ok();
    }

    #[test]
    fn the_routing_table_names_each_source() {
        let mut w = world(1000);
        let (a, c) = w.reserve(&tg());
        settle(&w.conn, a.id, &c[0], &bought("628115550001"), T0).unwrap();
        activations::expire_due(&w.conn, &POLICY, a.expires_at).unwrap();
        let rows = routing_table(&w.conn, T0).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].source, "upstream: key-a");
        assert_eq!((rows[0].completed, rows[0].ended), (0, 1));
        assert_eq!(source_label("sim", None), "own SIM");
    }
}
