//! Stripe Checkout (protocols.md §7.5).
//!
//! A checkout is `POST {api_base}/v1/checkout/sessions` (HTTP Basic with the secret key,
//! form-encoded, `mode=payment`, one line item of the amount, our payment id as
//! `client_reference_id` and in `metadata`), answered with the session's `id` (`cs_…`) and
//! hosted `url`. Webhooks carry `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`, the hex
//! HMAC-SHA256 of `"<t>.<raw body>"` under the endpoint's signing secret; any `v1` may match
//! (Stripe sends several while a secret is rolled), compared in constant time, and a
//! timestamp more than [`TOLERANCE`] seconds from our clock is refused (Stripe's libraries'
//! default), so a captured delivery cannot be replayed later.
//!
//! Events acted on: `checkout.session.completed` and
//! `checkout.session.async_payment_succeeded` with `payment_status=paid` credit the session's
//! `amount_total`; `checkout.session.expired` and `checkout.session.async_payment_failed`
//! close it; `charge.refunded` (cumulative `amount_refunded`) and `charge.dispute.created`
//! (`amount`) reverse it, found by the payment intent stored when it was paid.

use std::time::Duration;

use serde_json::Value;

use super::{agent, read, Checkout, CheckoutRequest, Gateway, Notice, Refusal};
use crate::clock::Timestamp;
use crate::config::StripeSettings;
use crate::domain::base::crypto::{constant_time_eq, hex, hmac_sha256};
use crate::domain::market::payments::{Confirmed, Payment, Reversal, ReversalKind, Status};
use crate::url::percent_encode;

/// Seconds a signature's timestamp may be away from our clock.
pub const TOLERANCE: i64 = 300;

pub struct Stripe {
    settings: StripeSettings,
    agent: ureq::Agent,
}

impl Stripe {
    pub fn new(settings: StripeSettings, timeout: Duration) -> Stripe {
        Stripe {
            settings,
            agent: agent(timeout),
        }
    }

    /// HTTP Basic with the secret key as the user name and no password.
    fn auth(&self) -> String {
        let user = format!("{}:", self.settings.secret_key);
        format!("Basic {}", crate::smtp::base64(user.as_bytes()))
    }

    /// Stripe's error text from an error answer.
    fn error_text(status: u16, body: &Value) -> String {
        let msg = body["error"]["message"].as_str().unwrap_or("no message");
        format!(
            "HTTP {status}: {}",
            msg.chars().take(160).collect::<String>()
        )
    }
}

/// The hex signature Stripe puts in `v1` for a body sent at `t`.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    hex(&hmac_sha256(secret.as_bytes(), &signed))
}

/// Verifies a `Stripe-Signature` header for `body` at `now`.
pub fn verify(secret: &str, header: &str, body: &[u8], now: Timestamp) -> Result<(), String> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) if t.is_none() => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1.push(v),
            _ => {}
        }
    }
    let t = t.ok_or("the Stripe-Signature header has no timestamp")?;
    if v1.is_empty() {
        return Err("the Stripe-Signature header has no v1 signature".into());
    }
    if (now - t).abs() > TOLERANCE {
        return Err(format!(
            "the signature's timestamp is {} s away from our clock (at most {TOLERANCE} s)",
            (now - t).abs()
        ));
    }
    let expected = sign(secret, t, body);
    if v1
        .iter()
        .any(|s| constant_time_eq(s.as_bytes(), expected.as_bytes()))
    {
        Ok(())
    } else {
        Err("no v1 signature matches".into())
    }
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// Our payment id as the session carries it.
fn our_id(session: &Value) -> Option<i64> {
    session["metadata"]["payment_id"]
        .as_str()
        .or(session["client_reference_id"].as_str())
        .and_then(|s| s.parse().ok())
}

/// What a Checkout Session object means for us.
fn session_notice(session: &Value, closed_as: Option<Status>) -> Result<Notice, String> {
    let id = text(&session["id"]).ok_or("a session without an id")?;
    if let Some(status) = closed_as {
        return Ok(Notice::Closed {
            gateway: "stripe".into(),
            gateway_ref: id,
            payment_id: our_id(session),
            status,
            why: format!("stripe: {}", status.as_str()),
        });
    }
    if session["payment_status"].as_str() != Some("paid") {
        return Ok(Notice::Nothing(format!(
            "session {id}: payment_status {}",
            session["payment_status"]
        )));
    }
    let amount = session["amount_total"]
        .as_i64()
        .ok_or("a paid session without amount_total")?;
    Ok(Notice::Paid(Confirmed {
        gateway: "stripe".into(),
        gateway_ref: id,
        payment_id: our_id(session),
        amount_minor: amount,
        currency: text(&session["currency"]).ok_or("a paid session without currency")?,
        charge_ref: text(&session["payment_intent"]),
    }))
}

/// What a verified event means for us.
pub fn event_notice(event: &Value) -> Result<Notice, String> {
    let object = &event["data"]["object"];
    let kind = event["type"].as_str().ok_or("an event without a type")?;
    match kind {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            session_notice(object, None)
        }
        "checkout.session.expired" => session_notice(object, Some(Status::Expired)),
        "checkout.session.async_payment_failed" => session_notice(object, Some(Status::Failed)),
        "charge.refunded" | "charge.dispute.created" => {
            let (kind, amount) = if kind == "charge.refunded" {
                (ReversalKind::Refund, &object["amount_refunded"])
            } else {
                (ReversalKind::Dispute, &object["amount"])
            };
            let reference = text(&object["payment_intent"])
                .ok_or("a refund or dispute without a payment_intent")?;
            Ok(Notice::Reversed(Reversal {
                gateway: "stripe".into(),
                reference,
                amount_minor: amount
                    .as_i64()
                    .ok_or("a refund or dispute without an amount")?,
                kind,
                notice_ref: text(&object["id"]).unwrap_or_default(),
            }))
        }
        other => Ok(Notice::Nothing(format!("event {other} is not acted on"))),
    }
}

impl Gateway for Stripe {
    fn id(&self) -> &'static str {
        "stripe"
    }

    fn label(&self) -> &'static str {
        "Card (Stripe)"
    }

    fn privacy_note(&self) -> &'static str {
        "Stripe (Stripe, Inc. and its affiliates, stripe.com) processes card payments for \
         top-ups: you enter your card details on Stripe's own page. This site receives only the \
         payment's id, amount and state, never card details."
    }

    fn create_checkout(&self, req: &CheckoutRequest<'_>) -> Result<Checkout, String> {
        let id = req.payment_id.to_string();
        let currency = req.currency.to_ascii_lowercase();
        let amount = req.amount_minor.to_string();
        let fields: [(&str, &str); 12] = [
            ("mode", "payment"),
            ("success_url", &req.return_url),
            ("cancel_url", &req.return_url),
            ("client_reference_id", &id),
            ("metadata[payment_id]", &id),
            ("payment_intent_data[metadata][payment_id]", &id),
            ("line_items[0][quantity]", "1"),
            ("line_items[0][price_data][currency]", &currency),
            ("line_items[0][price_data][unit_amount]", &amount),
            (
                "line_items[0][price_data][product_data][name]",
                &req.description,
            ),
            ("submit_type", "pay"),
            ("locale", "auto"),
        ];
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let result = self
            .agent
            .post(format!("{}/v1/checkout/sessions", self.settings.api_base))
            .header("Authorization", &self.auth())
            .header("Content-Type", "application/x-www-form-urlencoded")
            // No Idempotency-Key: the call is never retried, and a key made of our payment id
            // would collide with another install (or a restored backup) on the same account.
            .send(body.as_bytes());
        let (status, json) = read(result)?;
        if status != 200 {
            return Err(Stripe::error_text(status, &json));
        }
        match (text(&json["id"]), text(&json["url"])) {
            (Some(gateway_ref), Some(url)) => Ok(Checkout { gateway_ref, url }),
            _ => Err("the answer has no session id or url".into()),
        }
    }

    fn receive(
        &self,
        header: &dyn Fn(&str) -> Option<String>,
        body: &[u8],
        now: Timestamp,
    ) -> Result<Vec<Notice>, Refusal> {
        let sig = header("Stripe-Signature")
            .ok_or_else(|| Refusal::Bad("no Stripe-Signature header".into()))?;
        verify(&self.settings.webhook_secret, &sig, body, now).map_err(Refusal::Bad)?;
        let event: Value = serde_json::from_slice(body)
            .map_err(|_| Refusal::Bad("the body is not a JSON event".into()))?;
        event_notice(&event).map(|n| vec![n]).map_err(Refusal::Bad)
    }

    fn look_up(&self, payment: &Payment) -> Result<(String, Notice), String> {
        let id = payment
            .gateway_ref
            .as_deref()
            .ok_or("the checkout was never opened")?;
        let result = self
            .agent
            .get(format!(
                "{}/v1/checkout/sessions/{}",
                self.settings.api_base,
                percent_encode(id)
            ))
            .header("Authorization", &self.auth())
            .call();
        let (status, json) = read(result)?;
        if status != 200 {
            return Err(Stripe::error_text(status, &json));
        }
        let word = format!(
            "{} / {}",
            json["status"].as_str().unwrap_or("?"),
            json["payment_status"].as_str().unwrap_or("?")
        );
        let closed = (json["status"].as_str() == Some("expired")).then_some(Status::Expired);
        Ok((word, session_notice(&json, closed)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"checkout.session.completed"}"#;
    /// hex(HMAC-SHA256("whsec_test_secret", "1700000000." + BODY)), computed with Python's
    /// `hmac` module, not with this code.
    const VECTOR: &str = "a13d4b1f9003bc2fb6c06224e878b6056185eaa50d40e1e7dc05517f8af41d7b";

    #[test]
    fn the_signature_matches_an_independent_computation() {
        assert_eq!(sign(SECRET, 1_700_000_000, BODY), VECTOR);
        let header = format!("t=1700000000,v1={VECTOR}");
        assert_eq!(verify(SECRET, &header, BODY, 1_700_000_000), Ok(()));
    }

    #[test]
    fn any_of_several_v1_signatures_may_match_and_other_schemes_are_ignored() {
        let bad = "0".repeat(64);
        let header = format!("t=1700000000,v0={bad},v1={bad},v1={VECTOR},v2=xyz");
        assert_eq!(verify(SECRET, &header, BODY, 1_700_000_100), Ok(()));
    }

    #[test]
    fn a_wrong_signature_body_or_secret_is_refused() {
        let header = format!("t=1700000000,v1={VECTOR}");
        assert!(verify("whsec_other", &header, BODY, 1_700_000_000).is_err());
        assert!(verify(SECRET, &header, b"{\"id\":\"evt_2\"}", 1_700_000_000).is_err());
        assert!(verify(SECRET, "t=1700000000,v0=abc", BODY, 1_700_000_000).is_err());
        assert!(verify(SECRET, &format!("v1={VECTOR}"), BODY, 1_700_000_000).is_err());
        assert!(verify(SECRET, "", BODY, 1_700_000_000).is_err());
        // Upper-case hex is not what Stripe sends; it does not match.
        let upper = format!("t=1700000000,v1={}", VECTOR.to_uppercase());
        assert!(verify(SECRET, &upper, BODY, 1_700_000_000).is_err());
    }

    #[test]
    fn a_timestamp_beyond_the_tolerance_is_refused_both_ways() {
        let header = format!("t=1700000000,v1={VECTOR}");
        assert!(verify(SECRET, &header, BODY, 1_700_000_300).is_ok());
        assert!(verify(SECRET, &header, BODY, 1_700_000_301).is_err());
        assert!(verify(SECRET, &header, BODY, 1_699_999_700).is_ok());
        assert!(verify(SECRET, &header, BODY, 1_699_999_699).is_err());
    }

    #[test]
    fn events_map_to_notices() {
        let paid = json!({"type": "checkout.session.completed", "data": {"object": {
            "id": "cs_1", "payment_status": "paid", "amount_total": 1000, "currency": "usd",
            "client_reference_id": "7", "metadata": {"payment_id": "7"}, "payment_intent": "pi_1"}}});
        assert_eq!(
            event_notice(&paid).unwrap(),
            Notice::Paid(Confirmed {
                gateway: "stripe".into(),
                gateway_ref: "cs_1".into(),
                payment_id: Some(7),
                amount_minor: 1000,
                currency: "usd".into(),
                charge_ref: Some("pi_1".into()),
            })
        );
        let unpaid = json!({"type": "checkout.session.completed", "data": {"object": {
            "id": "cs_1", "payment_status": "unpaid", "amount_total": 1000, "currency": "usd"}}});
        assert!(matches!(event_notice(&unpaid).unwrap(), Notice::Nothing(_)));
        let refund = json!({"type": "charge.refunded", "data": {"object": {
            "id": "ch_1", "amount_refunded": 400, "payment_intent": "pi_1"}}});
        assert!(matches!(
            event_notice(&refund).unwrap(),
            Notice::Reversed(Reversal {
                amount_minor: 400,
                kind: ReversalKind::Refund,
                ..
            })
        ));
        let other = json!({"type": "customer.created", "data": {"object": {}}});
        assert!(matches!(event_notice(&other).unwrap(), Notice::Nothing(_)));
    }
}
