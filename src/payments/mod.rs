//! Payment gateways: money in through a hosted checkout and a signed notice. The network
//! side; the bookkeeping is `domain::market::payments` (and `domain::trust::signals` for
//! reversals).
//!
//! A gateway is one module implementing [`Gateway`]: [`stripe`] (Stripe Checkout) and
//! [`btcpay`] (BTCPay Server's Greenfield API). A third one is a module, a line in
//! [`Gateways::from_config`] and its settings: the top-up form, the native API, the webhook
//! route `/payments/{gateway}/webhook`, the admin's check and the reconciliation job work
//! through the trait.
//!
//! A top-up ([`start`]) is two transactions around one call, never a call inside a
//! transaction: the payment is written `creating`, the gateway is asked for a checkout, and
//! the answer is stored (`pending` with the checkout's id and URL, or `failed`). A notice
//! ([`Gateway::receive`]) is verified (signature, timestamp) and parsed before anything is
//! written, reading the payment back from the gateway's API where the gateway's notice alone
//! does not prove the amount (BTCPay); then [`apply`] writes all it says in one transaction.
//! Card numbers and wallet addresses never reach us: only the gateway's ids are stored.

pub mod btcpay;
pub mod stripe;

use std::time::Duration;

use rusqlite::Connection;

use crate::clock::Timestamp;
use crate::config::Config;
use crate::db;
use crate::domain::base::money::currency_digits;
use crate::domain::market::payments::{self, Applied, Confirmed, Payment, Reversal, Status};
use crate::domain::trust::signals;
use crate::domain::{Error, Result};

/// What a gateway needs to open a checkout.
#[derive(Debug, Clone)]
pub struct CheckoutRequest<'a> {
    pub payment_id: i64,
    pub amount_minor: i64,
    /// ISO code, upper case.
    pub currency: &'a str,
    pub digits: u32,
    /// Where the customer comes back to (our page of the top-up).
    pub return_url: String,
    /// The line the customer sees at the gateway.
    pub description: String,
}

/// A checkout the gateway opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    pub gateway_ref: String,
    pub url: String,
}

/// What a verified notice (or a reading of the gateway's API) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Money confirmed: credit it.
    Paid(Confirmed),
    /// The checkout ended without money.
    Closed {
        gateway: String,
        gateway_ref: String,
        payment_id: Option<i64>,
        status: Status,
        why: String,
    },
    /// Money went back (refund, dispute).
    Reversed(Reversal),
    /// Nothing to do (an event we do not act on, a payment still under way); why.
    Nothing(String),
}

/// Why a notice was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The signature or its timestamp does not verify, or the body is not the protocol: 400,
    /// nothing changed.
    Bad(String),
    /// The notice verified but the gateway's API could not be read to confirm it: 503, so the
    /// gateway delivers it again later; nothing changed.
    Unavailable(String),
}

/// One payment gateway. Its methods make network calls; call them outside any transaction.
pub trait Gateway: Send + Sync {
    /// The name in URLs, the API and the `payments.gateway` column: `stripe`.
    fn id(&self) -> &'static str;
    /// What the customer picks: "Card (Stripe)".
    fn label(&self) -> &'static str;
    /// Who processes the payments and what reaches us, for the privacy page.
    fn privacy_note(&self) -> &'static str;
    /// Opens a hosted checkout for the payment.
    fn create_checkout(&self, req: &CheckoutRequest<'_>) -> std::result::Result<Checkout, String>;
    /// Verifies a webhook delivery (`header` looks a request header up by name, any case)
    /// and says what it means.
    fn receive(
        &self,
        header: &dyn Fn(&str) -> Option<String>,
        body: &[u8],
        now: Timestamp,
    ) -> std::result::Result<Vec<Notice>, Refusal>;
    /// Reads an open payment's state from the gateway's API: its status word and what it
    /// means for us.
    fn look_up(&self, payment: &Payment) -> std::result::Result<(String, Notice), String>;
}

/// The gateways that are on (those whose key is set), in the order the form shows them.
pub struct Gateways {
    list: Vec<Box<dyn Gateway>>,
}

impl Gateways {
    pub fn from_config(config: &Config) -> Gateways {
        let timeout = Duration::from_secs(config.upstream_timeout);
        let mut list: Vec<Box<dyn Gateway>> = Vec::new();
        if let Some(s) = &config.payments.stripe {
            list.push(Box::new(stripe::Stripe::new(s.clone(), timeout)));
        }
        if let Some(b) = &config.payments.btcpay {
            list.push(Box::new(btcpay::Btcpay::new(b.clone(), timeout)));
        }
        Gateways { list }
    }

    pub fn get(&self, id: &str) -> Option<&dyn Gateway> {
        self.list.iter().find(|g| g.id() == id).map(|g| g.as_ref())
    }

    /// The privacy page's line for each gateway that is on.
    pub fn privacy_notes(&self) -> Vec<&'static str> {
        self.list.iter().map(|g| g.privacy_note()).collect()
    }

    /// `(id, label)` of every gateway that is on.
    pub fn enabled(&self) -> Vec<(&'static str, &'static str)> {
        self.list.iter().map(|g| (g.id(), g.label())).collect()
    }
}

/// The limits of a top-up in this install.
pub fn limits(config: &Config) -> payments::Limits {
    payments::Limits {
        min_minor: config.payments.topup_min,
        max_minor: config.payments.topup_max,
        digits: currency_digits(&config.currency),
    }
}

/// Starts a top-up for `user_id` through `gateway` (already checked to be on): writes the
/// payment, asks the gateway for a checkout (between the two transactions), stores the
/// answer. On a gateway failure the payment is `failed` and the error says so.
pub fn start(
    conn: &mut Connection,
    config: &Config,
    gateway: &dyn Gateway,
    user_id: i64,
    amount_minor: i64,
    now: impl Fn() -> Timestamp + Sync,
) -> Result<Payment> {
    let limits = limits(config);
    if amount_minor < limits.min_minor || amount_minor > limits.max_minor {
        return Err(Error::invalid("The amount is outside the top-up limits."));
    }
    let payment = db::write(conn, |tx| {
        payments::begin(
            tx,
            user_id,
            gateway.id(),
            amount_minor,
            &config.currency,
            now(),
        )
    })?;
    let req = CheckoutRequest {
        payment_id: payment.id,
        amount_minor,
        currency: &config.currency,
        digits: limits.digits,
        return_url: format!("{}/wallet/topups/{}", config.base_url, payment.id),
        description: format!("{} balance top-up #{}", config.site_name, payment.id),
    };
    match gateway.create_checkout(&req) {
        Ok(c) => db::write(conn, |tx| {
            payments::opened(tx, payment.id, &c.gateway_ref, &c.url, now())
        }),
        Err(why) => {
            log::warn!(
                "top-up {}: {} refused the checkout: {why}",
                payment.id,
                gateway.id()
            );
            db::write(conn, |tx| {
                payments::open_failed(tx, payment.id, &why, now())
            })?;
            Err(Error::Conflict(format!(
                "The payment gateway could not open a checkout now ({}); nothing was charged. Try again later.",
                gateway.label()
            )))
        }
    }
}

/// Writes what verified notices say, in one transaction; returns what each did.
pub fn apply(
    conn: &mut Connection,
    config: &Config,
    notices: &[Notice],
    now: Timestamp,
) -> Result<Vec<Applied>> {
    let digits = currency_digits(&config.currency);
    db::write(conn, |tx| {
        let mut out = Vec::with_capacity(notices.len());
        for n in notices {
            out.push(apply_one(tx, n, digits, now)?);
        }
        Ok(out)
    })
}

fn apply_one(conn: &Connection, n: &Notice, digits: u32, now: Timestamp) -> Result<Applied> {
    Ok(match n {
        Notice::Paid(c) => payments::credit(conn, c, now)?,
        Notice::Closed {
            gateway,
            gateway_ref,
            payment_id,
            status,
            why,
        } => payments::close(conn, gateway, gateway_ref, *payment_id, *status, why, now)?,
        Notice::Reversed(r) => match signals::gateway_reversal(conn, r, digits, now)? {
            Some(done) => Applied::Noted {
                payment_id: done.payment_id,
            },
            None => Applied::Unknown,
        },
        Notice::Nothing(_) => Applied::Unknown,
    })
}

/// Asks the gateway about an open payment and writes what it says (credits it when the
/// gateway says it is paid): the admin's "check" and the reconciliation job. Returns the
/// gateway's status word.
pub fn check(
    conn: &mut Connection,
    config: &Config,
    gateway: &dyn Gateway,
    payment: &Payment,
    now: impl Fn() -> Timestamp + Sync,
) -> Result<String> {
    match gateway.look_up(payment) {
        Ok((status, notice)) => {
            apply(conn, config, std::slice::from_ref(&notice), now())?;
            db::write(conn, |tx| {
                payments::note_gateway_status(tx, payment.id, &status, now())
            })
            .ok();
            Ok(status)
        }
        Err(why) => {
            let noted = format!("could not be asked: {why}");
            db::write(conn, |tx| {
                payments::note_gateway_status(tx, payment.id, &noted, now())
            })
            .ok();
            Err(Error::Conflict(format!("{} {noted}", gateway.label())))
        }
    }
}

/// How long a payment may stay `creating` (the checkout call was cut off) before the
/// reconciliation job closes it, and how long a `pending` one waits for its webhook (or
/// since the job last asked) before the job asks its gateway.
pub const STALE_AFTER: i64 = 15 * 60;

/// The reconciliation job: open payments unchanged for [`STALE_AFTER`] are looked up at
/// their gateway (a lost webhook is credited, an expired checkout closed; each look is noted,
/// so a payment is asked about at most every [`STALE_AFTER`]); one whose gateway is off now
/// is left alone. Returns how many were looked at and how many changed.
pub fn reconcile(
    conn: &mut Connection,
    config: &Config,
    gateways: &Gateways,
    now: impl Fn() -> Timestamp + Sync,
) -> Result<(usize, usize)> {
    let due = payments::open_before(conn, now() - STALE_AFTER, 50)?;
    let (mut seen, mut changed) = (0, 0);
    for p in &due {
        let Some(g) = gateways.get(&p.gateway) else {
            continue;
        };
        seen += 1;
        if p.gateway_ref.is_none() && p.status == Status::Creating {
            // The checkout call never answered: its notice finds the row by our id if the
            // customer pays after all, so closing it loses nothing.
            db::write(conn, |tx| {
                payments::open_failed(tx, p.id, "the checkout was never opened", now())
            })?;
            changed += 1;
            continue;
        }
        if check(conn, config, g, p, &now).is_ok() {
            let after = payments::get(conn, p.id)?;
            if after.status != p.status {
                changed += 1;
            }
        }
    }
    Ok((seen, changed))
}

/// Parses a decimal amount a gateway sent (`"10.00"`, `"10"`, `"10.000000"`) into minor
/// units: zeros beyond the currency's digits are dropped; any other extra digit refuses it.
pub fn parse_decimal(text: &str, digits: u32) -> Option<i64> {
    let t = text.trim();
    let t = match t.split_once('.') {
        // Only ASCII digits are cut (a multi-byte character there is not a number anyway).
        Some((int, frac)) if frac.len() > digits as usize && frac.is_ascii() => {
            let (keep, rest) = frac.split_at(digits as usize);
            if !rest.chars().all(|c| c == '0') {
                return None;
            }
            if keep.is_empty() {
                int.to_string()
            } else {
                format!("{int}.{keep}")
            }
        }
        _ => t.to_string(),
    };
    crate::domain::base::money::Money::parse(&t, digits, false).map(|m| m.0)
}

/// The one HTTP client of the gateways: no proxy, no redirects, timeouts on every phase,
/// bounded answers.
pub(crate) fn agent(timeout: Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_connect(Some(timeout))
        .timeout_per_read(Some(timeout))
        .timeout_global(Some(timeout * 2))
        .user_agent(concat!("otpbox/", env!("CARGO_PKG_VERSION")))
        .middleware(crate::cpu::calling_out)
        .build();
    ureq::Agent::new_with_config(config)
}

/// Largest answer read from a gateway.
pub(crate) const MAX_BODY: u64 = 1 << 20;

/// Status and body of an answer, or a transport error as text.
pub(crate) fn read(
    result: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> std::result::Result<(u16, serde_json::Value), String> {
    let mut resp = result.map_err(|e| format!("connection: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_string()
        .map_err(|e| format!("reading the answer: {e}"))?;
    let json = serde_json::from_str(&text).map_err(|_| {
        format!(
            "HTTP {status}: not JSON: `{}`",
            text.trim().chars().take(80).collect::<String>()
        )
    })?;
    Ok((status, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_from_gateways_parse_to_minor_units() {
        assert_eq!(parse_decimal("10.00", 2), Some(1000));
        assert_eq!(parse_decimal("10", 2), Some(1000));
        assert_eq!(parse_decimal("10.5", 2), Some(1050));
        assert_eq!(parse_decimal("10.500000", 2), Some(1050));
        assert_eq!(parse_decimal("10.001", 2), None);
        assert_eq!(parse_decimal("1000.0", 0), Some(1000));
        assert_eq!(parse_decimal("-1", 2), None);
        assert_eq!(parse_decimal("x", 2), None);
        // Found by the fuzzer: a cut inside a multi-byte character.
        assert_eq!(parse_decimal("10.\u{fffd}\u{fffd}000", 2), None);
    }
}
