//! BTCPay Server's Greenfield API (protocols.md §7.6): self-hosted crypto payments, no third
//! party.
//!
//! A checkout is an invoice: `POST {url}/api/v1/stores/{store}/invoices` with
//! `Authorization: token <api key>` and JSON `{"amount":"10.00","currency":"USD",
//! "metadata":{"orderId":…},"checkout":{"redirectURL":…}}`, answered with its `id` and
//! `checkoutLink`. Webhooks carry `BTCPay-Sig: sha256=<lowercase hex HMAC-SHA256(secret, raw
//! body)>`, compared in constant time. The notice names the invoice only; before crediting,
//! the invoice is read back (`GET …/invoices/{id}`) and only a `Settled` invoice of our store
//! is credited, for the amount and currency the invoice itself states. `InvoiceSettled` and
//! `InvoicePaymentSettled` (which may complete the amount) lead to that reading;
//! `InvoiceExpired` and `InvoiceInvalid` close the payment without money (a late payment that
//! the store settles afterwards is still credited).

use std::time::Duration;

use serde_json::{json, Value};

use super::{agent, parse_decimal, read, Checkout, CheckoutRequest, Gateway, Notice, Refusal};
use crate::clock::Timestamp;
use crate::config::BtcpaySettings;
use crate::domain::base::crypto::{constant_time_eq, hex, hmac_sha256};
use crate::domain::base::money::{currency_digits, Money};
use crate::domain::market::payments::{Confirmed, Payment, Status};
use crate::url::percent_encode;

pub struct Btcpay {
    settings: BtcpaySettings,
    agent: ureq::Agent,
}

/// The `BTCPay-Sig` header value for `body` (what BTCPay sends; the tests' reference).
#[cfg(test)]
fn sign(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), body)))
}

/// Verifies a `BTCPay-Sig` header for `body`.
pub fn verify(secret: &str, header: &str, body: &[u8]) -> Result<(), String> {
    let given = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or("the BTCPay-Sig header is not sha256=<hex>")?;
    let expected = hex(&hmac_sha256(secret.as_bytes(), body));
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err("the BTCPay-Sig signature does not match".into())
    }
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// Our payment id as the invoice's metadata carries it.
fn our_id(invoice: &Value) -> Option<i64> {
    let m = &invoice["metadata"];
    m["otpboxPaymentId"]
        .as_i64()
        .or_else(|| m["orderId"].as_str()?.strip_prefix("otpbox-")?.parse().ok())
}

impl Btcpay {
    pub fn new(settings: BtcpaySettings, timeout: Duration) -> Btcpay {
        Btcpay {
            settings,
            agent: agent(timeout),
        }
    }

    fn invoices_url(&self) -> String {
        format!(
            "{}/api/v1/stores/{}/invoices",
            self.settings.url,
            percent_encode(&self.settings.store_id)
        )
    }

    fn auth(&self) -> String {
        format!("token {}", self.settings.api_key)
    }

    fn error_text(status: u16, body: &Value) -> String {
        let msg = body["message"]
            .as_str()
            .or(body[0]["message"].as_str())
            .unwrap_or("no message");
        format!(
            "HTTP {status}: {}",
            msg.chars().take(160).collect::<String>()
        )
    }

    /// Reads an invoice of our store back.
    fn invoice(&self, id: &str) -> Result<Value, String> {
        let result = self
            .agent
            .get(format!("{}/{}", self.invoices_url(), percent_encode(id)))
            .header("Authorization", &self.auth())
            .call();
        let (status, json) = read(result)?;
        if status != 200 {
            return Err(Btcpay::error_text(status, &json));
        }
        Ok(json)
    }

    /// What an invoice read from the API means for us.
    fn invoice_notice(&self, invoice: &Value) -> Result<Notice, String> {
        let id = text(&invoice["id"]).ok_or("an invoice without an id")?;
        let status = invoice["status"].as_str().unwrap_or("");
        match status {
            "Settled" => {
                let currency = text(&invoice["currency"]).ok_or("an invoice without currency")?;
                let digits = currency_digits(&currency.to_ascii_uppercase());
                let amount = invoice["amount"]
                    .as_str()
                    .and_then(|a| parse_decimal(a, digits))
                    .ok_or("an invoice whose amount is not a decimal amount")?;
                Ok(Notice::Paid(Confirmed {
                    gateway: "btcpay".into(),
                    gateway_ref: id,
                    payment_id: our_id(invoice),
                    amount_minor: amount,
                    currency,
                    charge_ref: None,
                }))
            }
            "Expired" | "Invalid" => Ok(Notice::Closed {
                gateway: "btcpay".into(),
                gateway_ref: id,
                payment_id: our_id(invoice),
                status: if status == "Expired" {
                    Status::Expired
                } else {
                    Status::Failed
                },
                why: format!("btcpay: {status}"),
            }),
            other => Ok(Notice::Nothing(format!("invoice {id} is {other}"))),
        }
    }
}

impl Gateway for Btcpay {
    fn id(&self) -> &'static str {
        "btcpay"
    }

    fn label(&self) -> &'static str {
        "Bitcoin and other crypto (BTCPay Server)"
    }

    fn privacy_note(&self) -> &'static str {
        "BTCPay Server, a self-hosted payment server run for this site (no third party), \
         processes crypto payments for top-ups. This site keeps only the invoice's id, amount \
         and state, never wallet addresses or transaction details."
    }

    fn create_checkout(&self, req: &CheckoutRequest<'_>) -> Result<Checkout, String> {
        let body = json!({
            "amount": Money(req.amount_minor).decimal(req.digits),
            "currency": req.currency,
            "metadata": {
                "orderId": format!("otpbox-{}", req.payment_id),
                "otpboxPaymentId": req.payment_id,
                "itemDesc": req.description,
            },
            "checkout": {"redirectURL": req.return_url, "redirectAutomatically": true},
        });
        let result = self
            .agent
            .post(self.invoices_url())
            .header("Authorization", &self.auth())
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes());
        let (status, json) = read(result)?;
        if status != 200 {
            return Err(Btcpay::error_text(status, &json));
        }
        match (text(&json["id"]), text(&json["checkoutLink"])) {
            (Some(gateway_ref), Some(url)) => Ok(Checkout { gateway_ref, url }),
            _ => Err("the answer has no invoice id or checkoutLink".into()),
        }
    }

    fn receive(
        &self,
        header: &dyn Fn(&str) -> Option<String>,
        body: &[u8],
        _now: Timestamp,
    ) -> Result<Vec<Notice>, Refusal> {
        let sig =
            header("BTCPay-Sig").ok_or_else(|| Refusal::Bad("no BTCPay-Sig header".into()))?;
        verify(&self.settings.webhook_secret, &sig, body).map_err(Refusal::Bad)?;
        let event: Value = serde_json::from_slice(body)
            .map_err(|_| Refusal::Bad("the body is not a JSON event".into()))?;
        let kind = event["type"]
            .as_str()
            .ok_or_else(|| Refusal::Bad("an event without a type".into()))?;
        if event["storeId"]
            .as_str()
            .is_some_and(|s| s != self.settings.store_id)
        {
            return Ok(vec![Notice::Nothing("an event of another store".into())]);
        }
        let invoice_id = || {
            text(&event["invoiceId"])
                .ok_or_else(|| Refusal::Bad("an event without invoiceId".into()))
        };
        match kind {
            // The notice says something happened; the invoice itself says how much.
            "InvoiceSettled" | "InvoicePaymentSettled" | "InvoiceExpired" | "InvoiceInvalid" => {
                let invoice = self.invoice(&invoice_id()?).map_err(Refusal::Unavailable)?;
                let notice = self
                    .invoice_notice(&invoice)
                    .map_err(Refusal::Unavailable)?;
                // An expiry notice for an invoice that is settled by now credits it; a
                // settlement notice for one that is not settled changes nothing.
                Ok(vec![notice])
            }
            other => Ok(vec![Notice::Nothing(format!(
                "event {other} is not acted on"
            ))]),
        }
    }

    fn look_up(&self, payment: &Payment) -> Result<(String, Notice), String> {
        let id = payment
            .gateway_ref
            .as_deref()
            .ok_or("the invoice was never created")?;
        let invoice = self.invoice(id)?;
        let word = invoice["status"].as_str().unwrap_or("?").to_string();
        Ok((word, self.invoice_notice(&invoice)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "btcpay-secret";
    const BODY: &[u8] = br#"{"type":"InvoiceSettled","invoiceId":"inv_1"}"#;
    /// hex(HMAC-SHA256("btcpay-secret", BODY)), computed with Python's `hmac` module.
    const VECTOR: &str = "bb473a2195d70616ff97090c905602764c6e365cdd9505127487b56f00e86fc0";

    #[test]
    fn the_signature_matches_an_independent_computation() {
        assert_eq!(sign(SECRET, BODY), format!("sha256={VECTOR}"));
        assert_eq!(verify(SECRET, &format!("sha256={VECTOR}"), BODY), Ok(()));
    }

    /// BTCPay documents its header as `sha256=HMAC256(UTF8(secret), body)`, "similar to how
    /// to secure webhooks in GitHub"; GitHub's documentation gives this example: secret
    /// "It's a Secret to Everybody", body "Hello, World!".
    #[test]
    fn the_documented_example_vector_verifies() {
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign("It's a Secret to Everybody", b"Hello, World!"), header);
        assert_eq!(
            verify("It's a Secret to Everybody", header, b"Hello, World!"),
            Ok(())
        );
    }

    #[test]
    fn a_wrong_signature_scheme_body_or_secret_is_refused() {
        assert!(verify("other", &format!("sha256={VECTOR}"), BODY).is_err());
        assert!(verify(SECRET, &format!("sha256={VECTOR}"), b"{}").is_err());
        assert!(verify(SECRET, VECTOR, BODY).is_err());
        assert!(verify(SECRET, &format!("sha1={VECTOR}"), BODY).is_err());
        assert!(verify(SECRET, "", BODY).is_err());
    }

    #[test]
    fn our_id_comes_from_the_metadata() {
        assert_eq!(
            our_id(&json!({"metadata": {"otpboxPaymentId": 5}})),
            Some(5)
        );
        assert_eq!(
            our_id(&json!({"metadata": {"orderId": "otpbox-6"}})),
            Some(6)
        );
        assert_eq!(our_id(&json!({"metadata": {"orderId": "shop-6"}})), None);
    }
}
