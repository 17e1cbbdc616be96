//! Local fakes of the two payment gateways, on loopback, following their documentation
//! (protocols.md §7.5–7.6): a Stripe API that opens Checkout Sessions
//! (`POST /v1/checkout/sessions`, form-encoded, HTTP Basic with the secret key) and reads them
//! back, and a BTCPay Server Greenfield API that creates and reads invoices
//! (`Authorization: token …`). Each records what it was sent and builds its webhook
//! deliveries signed exactly as the real service signs them: Stripe's
//! `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>` and BTCPay's
//! `BTCPay-Sig: sha256=<hex HMAC-SHA256(secret, body)>`. Nothing leaves the machine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

pub const STRIPE_KEY: &str = "sk_test_51FakeKeyForOtpboxTests";
pub const STRIPE_WHSEC: &str = "whsec_fake_signing_secret_for_tests";
pub const BTCPAY_KEY: &str = "btcpay-api-key-0123456789abcdef";
pub const BTCPAY_STORE: &str = "StoreFake7Qx";
pub const BTCPAY_SECRET: &str = "btcpay-webhook-secret-for-tests";

pub fn hex_hmac(secret: &str, data: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(data);
    m.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn b64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let h = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(h, 16).unwrap());
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// `a=1&b=2` → map, percent-decoded.
pub fn parse_form(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// One recorded request: method, path, headers (lower-case names), body.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

type Handler = dyn Fn(&Call) -> (u16, Value) + Send + Sync;

/// A tiny_http server on loopback answering with `handler` and recording every call.
struct Fake {
    addr: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Fake {
    fn start(handler: Arc<Handler>) -> Fake {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", server.server_addr().to_ip().unwrap());
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c = calls.clone();
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let call = Call {
                    method: req.method().as_str().to_string(),
                    path: req.url().to_string(),
                    headers: req
                        .headers()
                        .iter()
                        .map(|h| {
                            (
                                h.field.as_str().as_str().to_ascii_lowercase(),
                                h.value.as_str().to_string(),
                            )
                        })
                        .collect(),
                    body,
                };
                c.lock().unwrap().push(call.clone());
                let (status, json) = handler(&call);
                let resp = tiny_http::Response::from_string(json.to_string())
                    .with_status_code(status)
                    .with_header(
                        tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap(),
                    );
                let _ = req.respond(resp);
            }
        });
        Fake { addr, calls }
    }
}

// ---------------------------------------------------------------------------------------
// Stripe

#[derive(Clone)]
pub struct FakeStripe {
    pub url: String,
    calls: Arc<Mutex<Vec<Call>>>,
    sessions: Arc<Mutex<HashMap<String, Value>>>,
    /// Answer every API call with this status and Stripe's error body (0 = answer normally).
    pub fail_with: Arc<Mutex<u16>>,
    /// Milliseconds to wait, after opening a session, before answering.
    pub delay_ms: Arc<Mutex<u64>>,
}

impl FakeStripe {
    pub fn start() -> FakeStripe {
        let sessions: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
        let fail_with: Arc<Mutex<u16>> = Arc::default();
        let delay_ms: Arc<Mutex<u64>> = Arc::default();
        let (s, f, d) = (sessions.clone(), fail_with.clone(), delay_ms.clone());
        let handler = move |call: &Call| -> (u16, Value) {
            let expected = format!("Basic {}", b64(format!("{STRIPE_KEY}:").as_bytes()));
            if call.headers.get("authorization") != Some(&expected) {
                return (
                    401,
                    json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}}),
                );
            }
            let fail = *f.lock().unwrap();
            if fail != 0 {
                return (
                    fail,
                    json!({"error": {"type": "api_error", "message": "Something went wrong on Stripe's end."}}),
                );
            }
            let mut sessions = s.lock().unwrap();
            if call.method == "POST" && call.path == "/v1/checkout/sessions" {
                let form = parse_form(&call.body);
                let id = format!("cs_test_{:04}", sessions.len() + 1);
                let session = json!({
                    "id": id,
                    "object": "checkout.session",
                    "mode": form.get("mode"),
                    "status": "open",
                    "payment_status": "unpaid",
                    "amount_total": form["line_items[0][price_data][unit_amount]"].parse::<i64>().unwrap(),
                    "currency": form["line_items[0][price_data][currency]"],
                    "client_reference_id": form.get("client_reference_id"),
                    "metadata": {"payment_id": form.get("metadata[payment_id]")},
                    "success_url": form.get("success_url"),
                    "cancel_url": form.get("cancel_url"),
                    "payment_intent": null,
                    "url": format!("https://checkout.stripe.test/c/pay/{id}"),
                });
                sessions.insert(id, session.clone());
                drop(sessions);
                let wait = *d.lock().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(wait));
                return (200, session);
            }
            if call.method == "GET" {
                if let Some(id) = call.path.strip_prefix("/v1/checkout/sessions/") {
                    return match sessions.get(id) {
                        Some(s) => (200, s.clone()),
                        None => (
                            404,
                            json!({"error": {"type": "invalid_request_error", "message": "No such checkout.session"}}),
                        ),
                    };
                }
            }
            (
                404,
                json!({"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}}),
            )
        };
        let fake = Fake::start(Arc::new(handler));
        FakeStripe {
            url: fake.addr,
            calls: fake.calls,
            sessions,
            fail_with,
            delay_ms,
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn session(&self, id: &str) -> Value {
        self.sessions.lock().unwrap()[id].clone()
    }

    /// The customer pays the session on Stripe's page: it becomes complete and paid, with a
    /// payment intent.
    pub fn pay(&self, id: &str) -> Value {
        let mut sessions = self.sessions.lock().unwrap();
        let s = sessions.get_mut(id).expect("a session of this fake");
        s["status"] = json!("complete");
        s["payment_status"] = json!("paid");
        s["payment_intent"] = json!(format!("pi_{}", &id[3..]));
        s.clone()
    }

    pub fn expire(&self, id: &str) -> Value {
        let mut sessions = self.sessions.lock().unwrap();
        let s = sessions.get_mut(id).expect("a session of this fake");
        s["status"] = json!("expired");
        s.clone()
    }
}

/// A Stripe event of `kind` about `object`, as Stripe sends it.
pub fn stripe_event(kind: &str, object: Value) -> String {
    json!({
        "id": format!("evt_{}", kind.replace('.', "_")),
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1_700_000_000,
        "type": kind,
        "livemode": false,
        "pending_webhooks": 1,
        "data": {"object": object},
    })
    .to_string()
}

/// The `Stripe-Signature` header Stripe sends for `body` at time `t`.
pub fn stripe_signature(secret: &str, t: i64, body: &str) -> String {
    format!(
        "t={t},v1={}",
        hex_hmac(secret, format!("{t}.{body}").as_bytes())
    )
}

// ---------------------------------------------------------------------------------------
// BTCPay Server

#[derive(Clone)]
pub struct FakeBtcpay {
    pub url: String,
    calls: Arc<Mutex<Vec<Call>>>,
    invoices: Arc<Mutex<HashMap<String, Value>>>,
}

impl FakeBtcpay {
    pub fn start() -> FakeBtcpay {
        let invoices: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
        let inv = invoices.clone();
        let handler = move |call: &Call| -> (u16, Value) {
            if call.headers.get("authorization").map(String::as_str)
                != Some(&format!("token {BTCPAY_KEY}"))
            {
                return (
                    401,
                    json!({"code": "unauthenticated", "message": "Authentication is required"}),
                );
            }
            let base = format!("/api/v1/stores/{BTCPAY_STORE}/invoices");
            let mut invoices = inv.lock().unwrap();
            if call.method == "POST" && call.path == base {
                let req: Value = serde_json::from_str(&call.body).unwrap();
                let id = format!("Inv{:05}", invoices.len() + 1);
                let invoice = json!({
                    "id": id,
                    "storeId": BTCPAY_STORE,
                    "amount": req["amount"],
                    "currency": req["currency"],
                    "type": "Standard",
                    "checkoutLink": format!("https://btcpay.test/i/{id}"),
                    "status": "New",
                    "additionalStatus": "None",
                    "metadata": req["metadata"],
                    "checkout": req["checkout"],
                    "createdTime": 1_700_000_000,
                    "expirationTime": 1_700_000_900,
                });
                invoices.insert(id, invoice.clone());
                return (200, invoice);
            }
            if call.method == "GET" {
                if let Some(id) = call.path.strip_prefix(&format!("{base}/")) {
                    return match invoices.get(id) {
                        Some(i) => (200, i.clone()),
                        None => (
                            404,
                            json!({"code": "invoice-not-found", "message": "The invoice was not found"}),
                        ),
                    };
                }
            }
            (404, json!({"code": "not-found", "message": "Not found"}))
        };
        let fake = Fake::start(Arc::new(handler));
        FakeBtcpay {
            url: fake.addr,
            calls: fake.calls,
            invoices,
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn invoice(&self, id: &str) -> Value {
        self.invoices.lock().unwrap()[id].clone()
    }

    /// Sets the invoice's status (`Settled`, `Expired`, `Invalid`, `Processing`).
    pub fn set_status(&self, id: &str, status: &str) {
        self.invoices
            .lock()
            .unwrap()
            .get_mut(id)
            .expect("an invoice of this fake")["status"] = json!(status);
    }
}

/// A BTCPay webhook delivery of `kind` about `invoice_id`, as BTCPay sends it.
pub fn btcpay_event(kind: &str, invoice_id: &str) -> String {
    json!({
        "deliveryId": format!("Dlv{kind}{invoice_id}"),
        "webhookId": "WhFake1",
        "originalDeliveryId": format!("Dlv{kind}{invoice_id}"),
        "isRedelivery": false,
        "type": kind,
        "timestamp": 1_700_000_100,
        "storeId": BTCPAY_STORE,
        "invoiceId": invoice_id,
        "metadata": {},
        "manuallyMarked": false,
    })
    .to_string()
}

/// The `BTCPay-Sig` header BTCPay sends for `body`.
pub fn btcpay_signature(secret: &str, body: &str) -> String {
    format!("sha256={}", hex_hmac(secret, body.as_bytes()))
}
