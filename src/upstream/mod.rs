//! Calling upstream providers (SMS-Activate compatible and 5sim) as a client: syncing their
//! catalogues, buying numbers for orders, polling the orders' status and telling them our
//! final state. The bookkeeping is in `domain::supply::providers` and `domain::supply::routing`
//! (which also decides where an order is served from and runs its purchase,
//! `routing::place_order`); this module is the network side: the providers' protocols, the
//! [`Buyer`] that `routing` buys through, sync and the jobs.
//!
//! Every call goes through ureq with connect, read and total timeouts (`upstream_timeout`;
//! three times that in total for a price list), and is recorded in `provider_calls`;
//! failures move the provider's circuit breaker.
//! Nothing here runs inside a write transaction while it waits for a provider. Keys are
//! opened only to build a request, and every error text is scrubbed of them before it is
//! stored or logged (an SMS-Activate key travels in the query string).
//!
//! Calls happen on the scheduler thread (sync, polling, telling) and, for a purchase and the
//! admin's "sync now", on the request's own worker: the customer waits for the number.

mod fivesim;
mod smsactivate;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::app::App;
use crate::db;
use crate::domain::base::crypto::Keys;
use crate::domain::market::activations::{Activation, Tell};
use crate::domain::supply::providers::{
    self, Breaker, Candidate, Kind, OfferIn, Outcome, Provider,
};
use crate::domain::supply::routing::{self, Bought, BuyFailure, Polled};
use crate::domain::{market::catalogue, Error, Result};
use crate::url::percent_encode;

/// Why a call did not give what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The provider has no number for the pair.
    NoNumbers,
    /// Our account at the provider cannot pay.
    NoBalance,
    /// The provider refused in its protocol (a bad status, an unknown order, ...): it works,
    /// but this request cannot succeed.
    Refused(String),
    /// The provider refuses for now (an early cancel): try again later.
    TooEarly,
    /// Timeout, connection error, HTTP 5xx, a body that is not the protocol, a refused key:
    /// counts towards the circuit breaker. Already scrubbed of the key.
    Failed(String),
}

impl Fault {
    fn outcome(&self) -> Outcome {
        match self {
            Fault::Failed(e) => Outcome::Failed(e.clone()),
            _ => Outcome::Answered,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Fault::NoNumbers => "no numbers".into(),
            Fault::NoBalance => "no balance at the provider".into(),
            Fault::Refused(t) => format!("refused: {t}"),
            Fault::TooEarly => "too early".into(),
            Fault::Failed(t) => t.clone(),
        }
    }
}

/// The one HTTP client of the providers' calls: GET only (both protocols), no proxy, no
/// redirects (a redirect could carry a key elsewhere), bounded bodies, and errors scrubbed.
pub(crate) struct Http {
    short: ureq::Agent,
    long: ureq::Agent,
    secrets: Vec<String>,
}

/// Largest body read from a provider (a full price list is several MiB).
const MAX_BODY: u64 = 32 << 20;
/// Largest body read for anything but a price list.
const MAX_SMALL_BODY: u64 = 1 << 20;

impl Http {
    fn new(timeout: Duration, secret: &str) -> Http {
        let agent = |total: Duration| {
            let config = ureq::Agent::config_builder()
                .proxy(None)
                .max_redirects(0)
                .http_status_as_error(false)
                .timeout_connect(Some(timeout))
                .timeout_per_read(Some(timeout))
                .timeout_global(Some(total))
                .user_agent(concat!("otpbox/", env!("CARGO_PKG_VERSION")))
                .middleware(crate::cpu::calling_out)
                .build();
            ureq::Agent::new_with_config(config)
        };
        let mut secrets = Vec::new();
        if !secret.is_empty() {
            secrets.push(secret.to_string());
            let encoded = percent_encode(secret);
            if encoded != secret {
                secrets.push(encoded);
            }
        }
        Http {
            short: agent(timeout),
            // A full price list may take longer to arrive than one answer.
            long: agent(timeout * 3),
            secrets,
        }
    }

    /// Replaces every occurrence of the key (plain or URL-encoded) with `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        out
    }

    /// GETs `url`: the status and the body as text. Transport errors, over-long bodies and
    /// redirects are failures.
    fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        long: bool,
    ) -> std::result::Result<(u16, String), Fault> {
        let agent = if long { &self.long } else { &self.short };
        let mut req = agent.get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut resp = req
            .call()
            .map_err(|e| Fault::Failed(self.scrub(&format!("connection: {e}"))))?;
        let status = resp.status().as_u16();
        if (300..400).contains(&status) {
            return Err(Fault::Failed(format!(
                "HTTP {status}: a redirect; give the provider's final URL"
            )));
        }
        let limit = if long { MAX_BODY } else { MAX_SMALL_BODY };
        let body = resp
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_string()
            .map_err(|e| Fault::Failed(self.scrub(&format!("reading the answer: {e}"))))?;
        Ok((status, body))
    }

    /// A short, scrubbed excerpt of an unexpected body for an error text.
    fn excerpt(&self, body: &str) -> String {
        let t: String = body.trim().chars().take(80).collect();
        let t = self.scrub(&t);
        if t.is_empty() {
            "an empty answer".into()
        } else {
            format!("`{t}`")
        }
    }
}

/// Our catalogue's names, for mapping a provider's countries and services onto ours (only
/// pairs we know are synced).
pub struct Names {
    /// country id → 5sim name.
    countries: HashMap<i64, String>,
    /// 5sim name → country id.
    countries_5sim: HashMap<String, i64>,
    /// service code → 5sim name.
    services: HashMap<String, String>,
    /// 5sim name → service code.
    services_5sim: HashMap<String, String>,
}

impl Names {
    pub fn load(conn: &Connection) -> Result<Names> {
        let mut n = Names {
            countries: HashMap::new(),
            countries_5sim: HashMap::new(),
            services: HashMap::new(),
            services_5sim: HashMap::new(),
        };
        for c in catalogue::countries(conn)? {
            if !c.fivesim_name.is_empty() {
                n.countries_5sim.insert(c.fivesim_name.clone(), c.id);
            }
            n.countries.insert(c.id, c.fivesim_name);
        }
        for s in catalogue::services(conn)? {
            if !s.fivesim_name.is_empty() {
                n.services_5sim
                    .insert(s.fivesim_name.clone(), s.code.clone());
            }
            n.services.insert(s.code, s.fivesim_name);
        }
        Ok(n)
    }

    fn knows(&self, country: i64, service: &str) -> bool {
        self.countries.contains_key(&country) && self.services.contains_key(service)
    }
}

/// An offer as a provider wrote it, mapped onto our numbering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOffer {
    pub country: i64,
    pub service: String,
    /// Decimal text in the provider's currency.
    pub cost: String,
    pub count: i64,
}

/// A purchase as the provider answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBought {
    pub id: String,
    pub phone: String,
    pub operator: String,
    /// Decimal text in the provider's currency, when given.
    pub cost: Option<String>,
}

/// A client of one provider, of its kind.
pub enum Api {
    SmsActivate(smsactivate::Client),
    FiveSim(fivesim::Client),
}

type Answer<T> = std::result::Result<T, Fault>;

impl Api {
    pub fn new(p: &Provider, key: &str, timeout: Duration) -> Api {
        let http = Http::new(timeout, key);
        match p.kind {
            Kind::SmsActivate => Api::SmsActivate(smsactivate::Client::new(http, &p.base_url, key)),
            Kind::FiveSim => Api::FiveSim(fivesim::Client::new(http, &p.base_url, key)),
        }
    }

    /// The balance, as decimal text in the provider's currency.
    pub fn balance(&self) -> Answer<String> {
        match self {
            Api::SmsActivate(c) => c.balance(),
            Api::FiveSim(c) => c.balance(),
        }
    }

    pub fn prices(&self, names: &Names) -> Answer<Vec<RawOffer>> {
        let offers = match self {
            Api::SmsActivate(c) => c.prices()?,
            Api::FiveSim(c) => c.prices(names)?,
        };
        Ok(offers
            .into_iter()
            .filter(|o| names.knows(o.country, &o.service))
            .collect())
    }

    pub fn buy(&self, names: &Names, country: i64, service: &str) -> Answer<RawBought> {
        match self {
            Api::SmsActivate(c) => c.buy(country, service),
            Api::FiveSim(c) => {
                let (Some(country), Some(product)) = (
                    names.countries.get(&country).filter(|n| !n.is_empty()),
                    names.services.get(service).filter(|n| !n.is_empty()),
                ) else {
                    return Err(Fault::Refused(
                        "no 5sim name for this country or service".into(),
                    ));
                };
                c.buy(country, product)
            }
        }
    }

    pub fn status(&self, id: &str) -> Answer<Polled> {
        match self {
            Api::SmsActivate(c) => c.status(id),
            Api::FiveSim(c) => c.check(id),
        }
    }

    /// Tells the provider our final state or a retry. A retry means nothing on 5sim (its
    /// order lists every SMS anyway).
    pub fn tell(&self, id: &str, what: Tell) -> Answer<()> {
        match self {
            Api::SmsActivate(c) => c.set_status(
                id,
                match what {
                    Tell::Finish => "6",
                    Tell::Cancel | Tell::Ban => "8",
                    Tell::Retry => "3",
                },
            ),
            Api::FiveSim(c) => match what {
                Tell::Finish => c.order_action("finish", id),
                Tell::Cancel => c.order_action("cancel", id),
                Tell::Ban => c.order_action("ban", id),
                Tell::Retry => Ok(()),
            },
        }
    }
}

/// The install's breaker settings.
fn breaker(app: &App) -> Breaker {
    Breaker {
        failures: app.config.provider_failures,
        pause: app.config.provider_pause,
    }
}

fn timeout(app: &App) -> Duration {
    Duration::from_secs(app.config.upstream_timeout)
}

/// Runs one call to provider `p`, records it and moves its breaker.
fn call<T>(
    app: &App,
    conn: &mut Connection,
    p: &Provider,
    action: &str,
    f: impl FnOnce() -> Answer<T>,
) -> Answer<T> {
    let started = Instant::now();
    let result = f();
    let ms = started.elapsed().as_millis() as i64;
    let outcome = match &result {
        Ok(_) => Outcome::Answered,
        Err(fault) => fault.outcome(),
    };
    if let Outcome::Failed(e) = &outcome {
        log::warn!("provider {} ({}): {action} failed: {e}", p.id, p.name);
    }
    let now = app.now();
    let b = breaker(app);
    match db::write(conn, |tx| {
        providers::record_call(tx, p.id, action, &outcome, ms, b, now)
    }) {
        Ok(true) => log::warn!(
            "provider {} ({}) paused for {} s after {} failed calls in a row",
            p.id,
            p.name,
            b.pause,
            b.failures
        ),
        Ok(false) => {}
        Err(e) => log::error!("cannot record a call to provider {}: {e}", p.id),
    }
    result
}

/// A client for `p` with its key opened.
fn api_for(app: &App, p: &Provider) -> Result<Api> {
    Ok(Api::new(p, &p.key(&app.keys)?, timeout(app)))
}

// ---------------------------------------------------------------------------------------
// Sync

/// What a sync did.
#[derive(Debug, Default)]
pub struct SyncReport {
    pub offers: Option<usize>,
    pub balance_minor: Option<i64>,
    /// Why part of it failed.
    pub errors: Vec<String>,
}

impl SyncReport {
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.offers {
            parts.push(format!("{n} offers"));
        }
        if let Some(b) = self.balance_minor {
            parts.push(format!("balance {b} minor units"));
        }
        parts.extend(self.errors.iter().cloned());
        parts.join(", ")
    }
}

/// Refreshes a provider's balance and offers (offers of pairs our catalogue does not know
/// are dropped; pairs no longer offered disappear). A failed part leaves the old values.
pub fn sync(app: &App, conn: &mut Connection, p: &Provider) -> Result<SyncReport> {
    let api = api_for(app, p)?;
    let names = Names::load(conn)?;
    let mut report = SyncReport::default();
    match call(app, conn, p, "balance", || api.balance()) {
        Ok(text) => match providers::balance_minor(&text, p.unit_minor) {
            Some(b) => {
                db::write(conn, |tx| providers::set_balance(tx, p.id, b))?;
                report.balance_minor = Some(b);
            }
            None => report
                .errors
                .push(format!("balance `{text}` is not a number")),
        },
        Err(f) => report.errors.push(format!("balance: {}", f.describe())),
    }
    match call(app, conn, p, "prices", || api.prices(&names)) {
        Ok(raw) => {
            let mut offers: Vec<OfferIn> = Vec::with_capacity(raw.len());
            for o in raw {
                if let Some(cost) = providers::cost_minor(&o.cost, p.unit_minor) {
                    offers.push(OfferIn {
                        country: o.country,
                        service: o.service,
                        cost_minor: cost,
                        stock: o.count.max(0),
                    });
                }
            }
            let now = app.now();
            let n = db::write(conn, |tx| providers::store_offers(tx, p.id, &offers, now))?;
            report.offers = Some(n);
        }
        Err(f) => report.errors.push(format!("prices: {}", f.describe())),
    }
    Ok(report)
}

/// Adds a provider and syncs it at once (a failed first sync still leaves it added); its id
/// and the sync's report. The admin pages and `otpbox provider add` use this.
pub fn add_and_sync(
    app: &App,
    conn: &mut Connection,
    new: &providers::NewProvider<'_>,
    audit: Option<(i64, &str)>,
) -> Result<(i64, SyncReport)> {
    let now = app.now();
    let keys: &Keys = &app.keys;
    let id = db::write(conn, |tx| {
        let id = providers::add(tx, keys, new, now)?;
        let p = providers::get(tx, id)?.ok_or(Error::NotFound("provider"))?;
        let detail = format!(
            "{} {} {} markup {} priority {}",
            p.name,
            p.kind.as_str(),
            p.base_url,
            providers::markup_text(p.markup_bp),
            p.priority
        );
        crate::domain::base::audit::audit(
            tx,
            audit.map(|a| a.0),
            None,
            "provider_added",
            &detail,
            audit.map(|a| a.1).unwrap_or(""),
            now,
        )?;
        Ok(id)
    })?;
    let p = providers::get(conn, id)?.ok_or(Error::NotFound("provider"))?;
    let report = sync(app, conn, &p)?;
    Ok((id, report))
}

// ---------------------------------------------------------------------------------------
// Ordering

/// The providers' side of an order's purchase, for [`routing::place_order`]: each buy and
/// give-back is one recorded [`call`] to the candidate's provider, and no new candidate is
/// tried once one `upstream_timeout` has passed since the order was reserved.
pub struct Buyer<'a> {
    app: &'a App,
    /// Loaded when an order is reserved for buying upstream (not for own-stock orders).
    names: Option<Names>,
    started: Instant,
    /// The client of the last buy, kept to give its number back.
    api: Option<(i64, Api)>,
}

impl<'a> Buyer<'a> {
    pub fn new(app: &'a App) -> Buyer<'a> {
        Buyer {
            app,
            names: None,
            started: Instant::now(),
            api: None,
        }
    }
}

impl routing::Upstream for Buyer<'_> {
    fn begin(&mut self, conn: &mut Connection) -> Result<()> {
        self.names = Some(Names::load(conn)?);
        self.started = Instant::now();
        Ok(())
    }

    fn buy(
        &mut self,
        conn: &mut Connection,
        c: &Candidate,
        order: &Activation,
    ) -> std::result::Result<Bought, BuyFailure> {
        let app = self.app;
        self.api = None;
        let api = match api_for(app, &c.provider) {
            Ok(api) => api,
            Err(e) => {
                log::error!("provider {}: {e}", c.provider.id);
                return Err(BuyFailure::Other);
            }
        };
        let names = match &self.names {
            Some(names) => names,
            None => return Err(BuyFailure::Other),
        };
        let raw = call(app, conn, &c.provider, "buy", || {
            api.buy(names, order.country_id, &order.service)
        });
        let raw = match raw {
            Ok(raw) => raw,
            Err(f) => {
                // Failures are logged by `call`; refusals are worth a line too.
                if !matches!(f, Fault::Failed(_)) {
                    log::info!(
                        "order {}: provider {} did not sell: {}",
                        order.id,
                        c.provider.id,
                        f.describe()
                    );
                }
                return Err(match f {
                    Fault::NoNumbers => BuyFailure::NoNumbers,
                    Fault::NoBalance => BuyFailure::NoBalance,
                    _ => BuyFailure::Other,
                });
            }
        };
        self.api = Some((c.provider.id, api));
        Ok(Bought {
            cost_minor: raw
                .cost
                .as_deref()
                .and_then(|t| providers::cost_minor(t, c.provider.unit_minor)),
            upstream_id: raw.id,
            phone: raw.phone,
            operator: raw.operator,
        })
    }

    fn give_back(&mut self, conn: &mut Connection, c: &Candidate, bought: &Bought) {
        let api = match self.api.take() {
            Some((pid, api)) if pid == c.provider.id => api,
            _ => match api_for(self.app, &c.provider) {
                Ok(api) => api,
                Err(e) => {
                    log::error!("provider {}: {e}", c.provider.id);
                    return;
                }
            },
        };
        let _ = call(self.app, conn, &c.provider, "cancel", || {
            api.tell(&bought.upstream_id, Tell::Cancel)
        });
    }

    fn may_try_another(&self) -> bool {
        self.started.elapsed() < timeout(self.app)
    }

    fn notify(&self) {
        self.app.notify();
    }
}

// ---------------------------------------------------------------------------------------
// Jobs

/// Upstream orders looked at per run, and how long a run keeps starting calls (the
/// scheduler thread is shared).
const ORDERS_BATCH: i64 = 40;
const ORDERS_BUDGET: Duration = Duration::from_secs(12);

/// The `upstream` job: closes interrupted purchases, polls live upstream orders, forwards
/// retries and tells providers our final states.
pub fn job_orders(app: &App, conn: &mut Connection) -> Result<String> {
    let now = app.now();
    let stale_before = now - 2 * app.config.upstream_timeout as i64 - 30;
    let recovered = db::write(conn, |tx| routing::recover_stale(tx, stale_before, now))?;
    let due = routing::due(conn, now, ORDERS_BATCH)?;
    let started = Instant::now();
    let mut failing: HashSet<i64> = HashSet::new();
    let (mut polled, mut delivered, mut late, mut canceled, mut told, mut given_up) =
        (0, 0, 0, 0, 0, 0);
    for d in due {
        if started.elapsed() >= ORDERS_BUDGET {
            break;
        }
        if failing.contains(&d.provider.id) {
            continue;
        }
        let api = match api_for(app, &d.provider) {
            Ok(api) => api,
            Err(e) => {
                log::error!("provider {}: {e}", d.provider.id);
                failing.insert(d.provider.id);
                continue;
            }
        };
        // What to tell first: the final state of a closing order, or a pending retry.
        let tell = match (d.state.as_str(), Tell::parse(&d.pending)) {
            ("closing", Some(t)) => Some(t),
            ("closing", None) => {
                db::write(conn, |tx| {
                    routing::pending_done(tx, d.activation_id, &d.pending, app.now())
                })?;
                continue;
            }
            (_, Some(Tell::Retry)) => Some(Tell::Retry),
            _ => None,
        };
        if let Some(t) = tell {
            let result = if d.upstream_id.is_empty() {
                Ok(())
            } else {
                call(app, conn, &d.provider, t.as_str(), || {
                    api.tell(&d.upstream_id, t)
                })
            };
            let what = t.as_str();
            match result {
                Ok(()) | Err(Fault::Refused(_) | Fault::NoNumbers | Fault::NoBalance) => {
                    db::write(conn, |tx| {
                        routing::pending_done(tx, d.activation_id, what, app.now())
                    })?;
                    told += 1;
                }
                Err(f) => {
                    if matches!(f, Fault::Failed(_)) {
                        failing.insert(d.provider.id);
                    }
                    let gave_up = db::write(conn, |tx| {
                        routing::pending_later(tx, d.activation_id, what, d.attempts, app.now())
                    })?;
                    if gave_up {
                        log::warn!(
                            "order {}: gave up telling provider {} `{what}`: {}",
                            d.activation_id,
                            d.provider.id,
                            f.describe()
                        );
                        given_up += 1;
                    }
                }
            }
            if d.state == "closing" {
                continue;
            }
        }
        match call(app, conn, &d.provider, "status", || {
            api.status(&d.upstream_id)
        }) {
            Ok(p) => {
                polled += 1;
                let applied = db::write(conn, |tx| routing::apply_poll(tx, &d, &p, app.now()))?;
                if applied.delivered > 0 || applied.canceled {
                    app.notify();
                }
                delivered += applied.delivered;
                late += applied.late;
                canceled += usize::from(applied.canceled);
            }
            Err(f) => {
                if matches!(f, Fault::Failed(_)) {
                    failing.insert(d.provider.id);
                }
                db::write(conn, |tx| {
                    routing::poll_later(tx, d.activation_id, app.now())
                })?;
            }
        }
    }
    if recovered + polled + told + given_up == 0 {
        return Ok(String::new());
    }
    Ok(format!(
        "{polled} polled, {delivered} SMS delivered, {late} too late, {canceled} cancelled upstream, \
         {told} told, {given_up} given up, {recovered} interrupted purchases refunded"
    ))
}

/// A `providers` run starts no new sync after this long (the scheduler thread is shared);
/// the providers synced longest ago go first, so none is starved.
const SYNC_BUDGET: Duration = Duration::from_secs(20);

/// The `providers` job: syncs every enabled provider that is not paused, and forgets old
/// call records.
pub fn job_sync(app: &App, conn: &mut Connection) -> Result<String> {
    let now = app.now();
    let pruned = providers::prune_calls(conn, now)?;
    let mut said = Vec::new();
    let mut list: Vec<Provider> = providers::list(conn)?
        .into_iter()
        .filter(|p| p.is_selling(now))
        .collect();
    list.sort_by_key(|p| (p.synced_at.unwrap_or(i64::MIN), p.id));
    let started = Instant::now();
    for p in list {
        if started.elapsed() >= SYNC_BUDGET {
            said.push("the rest next time".into());
            break;
        }
        match sync(app, conn, &p) {
            Ok(r) => said.push(format!("{}: {}", p.name, r.summary())),
            Err(e) => said.push(format!("{}: {e}", p.name)),
        }
    }
    if said.is_empty() && pruned == 0 {
        return Ok(String::new());
    }
    if pruned > 0 {
        said.push(format!("{pruned} old call records removed"));
    }
    Ok(said.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubbing_removes_the_key_plain_and_encoded() {
        let h = Http::new(Duration::from_secs(1), "s3cr3t/key+1");
        assert_eq!(
            h.scrub("GET http://x/?api_key=s3cr3t%2Fkey%2B1&action=a failed; s3cr3t/key+1"),
            "GET http://x/?api_key=***&action=a failed; ***"
        );
        assert_eq!(
            Http::new(Duration::from_secs(1), "").scrub("as is"),
            "as is"
        );
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            crate::url::percent_encode("a b&c=d/é"),
            "a%20b%26c%3Dd%2F%C3%A9"
        );
    }
}
