//! Top-ups through Stripe Checkout and BTCPay Server against local fakes of both
//! (`common::payments`), which follow the vendors' documentation and sign their webhooks as
//! the real services do. Covered: a full top-up through each gateway from the wallet form
//! and from the API, ending in a credit and an order paid from it; the same notice replayed
//! 1,000 times and from 8 threads at once (one credit); a wrong signature, a stale or future
//! timestamp and a tampered amount (refused, nothing credited); refunds and disputes
//! (reversal, chargeback and its flag, once); an expired invoice (no credit); a settlement
//! notice for an invoice that is not settled (no credit); a lost webhook found by the
//! reconciliation job; the limits; a gateway without a key being off; `otpbox check` after
//! all of it.

mod common;

use common::market::{error_code, Api, COUNTRY};
use common::payments::*;
use common::{Client, Response, TestServer};
use serde_json::{json, Value};

fn stripe_server(fake: &FakeStripe) -> TestServer {
    stripe_builder(fake).start()
}

fn stripe_builder(fake: &FakeStripe) -> common::Builder {
    TestServer::builder().envs(&[
        ("OTPBOX_DEV_CLOCK", "1"),
        ("OTPBOX_STRIPE_SECRET_KEY", STRIPE_KEY),
        ("OTPBOX_STRIPE_WEBHOOK_SECRET", STRIPE_WHSEC),
        ("OTPBOX_STRIPE_API_BASE", &fake.url),
        ("OTPBOX_TOPUP_MIN", "5"),
        ("OTPBOX_TOPUP_MAX", "200"),
    ])
}

fn btcpay_server(fake: &FakeBtcpay) -> TestServer {
    TestServer::builder()
        .envs(&[
            ("OTPBOX_DEV_CLOCK", "1"),
            ("OTPBOX_BTCPAY_URL", &fake.url),
            ("OTPBOX_BTCPAY_API_KEY", BTCPAY_KEY),
            ("OTPBOX_BTCPAY_STORE_ID", BTCPAY_STORE),
            ("OTPBOX_BTCPAY_WEBHOOK_SECRET", BTCPAY_SECRET),
        ])
        .start()
}

/// A signed-in customer with an API key for the same account.
fn customer(server: &TestServer, email: &str) -> (Client, Api) {
    let (web, id) = server.signed_in(email, "user");
    let key = server.api_key(email);
    (web, Api::new(server, &key, id, email))
}

/// Delivers a Stripe webhook signed at `t` with `secret`.
fn stripe_deliver(server: &TestServer, body: &str, sig: &str) -> Response {
    server.client().request(
        "POST",
        "/payments/stripe/webhook",
        &[
            ("Content-Type", "application/json"),
            ("Stripe-Signature", sig),
        ],
        body.as_bytes(),
    )
}

/// Delivers a Stripe event signed correctly at the server's current time.
fn stripe_send(server: &TestServer, body: &str) -> Response {
    let sig = stripe_signature(STRIPE_WHSEC, server.clock_now(), body);
    stripe_deliver(server, body, &sig)
}

fn btcpay_send(server: &TestServer, body: &str, secret: &str) -> Response {
    server.client().request(
        "POST",
        "/payments/btcpay/webhook",
        &[
            ("Content-Type", "application/json"),
            ("BTCPay-Sig", &btcpay_signature(secret, body)),
        ],
        body.as_bytes(),
    )
}

fn topup_rows(server: &TestServer) -> i64 {
    server.count("SELECT COUNT(*) FROM ledger WHERE kind = 'topup'")
}

fn status_of(api: &mut Api, id: i64) -> Value {
    let r = api.get(&format!("/api/v1/topups/{id}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Opens a Stripe top-up over the API; (our id, the session id).
fn api_topup(api: &mut Api, gateway: &str, amount: &str) -> (i64, String, Value) {
    let r = api.post(
        "/api/v1/topups",
        json!({"gateway": gateway, "amount": amount}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let t = r.json();
    let id = t["id"].as_i64().unwrap();
    let url = t["checkout_url"].as_str().unwrap().to_string();
    let gateway_ref = url.rsplit('/').next().unwrap().to_string();
    (id, gateway_ref, t)
}

#[test]
fn stripe_top_up_from_the_wallet_form_is_credited_live_and_pays_an_order() {
    let fake = FakeStripe::start();
    let server = stripe_server(&fake);
    let (mut web, mut api) = customer(&server, "ann@example.com");

    // Only the gateway with a key is offered.
    let wallet = web.get("/wallet");
    let html = wallet.text();
    assert!(html.contains("Card (Stripe)"), "{html}");
    assert!(!html.contains("BTCPay"), "BTCPay has no key: {html}");

    let r = web.submit(
        "/wallet",
        "/wallet/topup",
        &[("amount", "12.50"), ("gateway", "stripe")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let page_url = r.location().unwrap().to_string();
    assert!(
        page_url.starts_with("/wallet/topups/") && page_url.ends_with("?go=1"),
        "{page_url}"
    );
    let id: i64 = page_url["/wallet/topups/".len()..page_url.len() - 5]
        .parse()
        .unwrap();

    // The checkout was opened as Stripe documents it.
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    let form = parse_form(&calls[0].body);
    assert_eq!(calls[0].path, "/v1/checkout/sessions");
    assert_eq!(
        calls[0].headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(form["mode"], "payment");
    assert_eq!(form["client_reference_id"], id.to_string());
    assert_eq!(form["metadata[payment_id]"], id.to_string());
    assert_eq!(form["line_items[0][price_data][unit_amount]"], "1250");
    assert_eq!(form["line_items[0][price_data][currency]"], "usd");
    assert_eq!(form["line_items[0][quantity]"], "1");
    assert!(form["success_url"].ends_with(&format!("/wallet/topups/{id}")));
    assert!(
        !calls[0].body.contains("ann@example.com"),
        "no personal data goes to Stripe"
    );

    // The page we come back to shows pending and links to the checkout.
    let page = web.get(&page_url);
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("Waiting for the payment"), "{html}");
    assert!(
        html.contains("https://checkout.stripe.test/c/pay/cs_test_0001"),
        "{html}"
    );
    assert!(html.contains("data-status=\"pending\""), "{html}");
    assert_eq!(status_of(&mut api, id)["status"], "pending");
    assert_eq!(api.balance(), 0);

    // The customer pays; Stripe's signed notice lands.
    let session = fake.pay("cs_test_0001");
    let r = stripe_send(
        &server,
        &stripe_event("checkout.session.completed", session),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let t = status_of(&mut api, id);
    assert_eq!(t["status"], "paid");
    assert_eq!(t["credited_minor"], 1250);
    assert_eq!(t["credited"], "12.50");
    assert_eq!(api.balance(), 1250);
    assert_eq!(
        server.ledger_of("payment", id),
        vec![("topup".to_string(), 1250)]
    );
    let html = web.get(&format!("/wallet/topups/{id}")).text();
    assert!(
        html.contains("Credited") && html.contains("12.50 USD</span> was added"),
        "{html}"
    );

    // The money pays an order.
    server.add_numbers(COUNTRY, &["6281200000001"]);
    let price = server.price("tg");
    api.order_ok("tg");
    assert_eq!(api.balance(), 1250 - price);
    server.assert_books_balance();
}

#[test]
fn the_same_notice_replayed_a_thousand_times_and_from_eight_threads_credits_once() {
    let fake = FakeStripe::start();
    let server = stripe_server(&fake);
    let (_, mut api) = customer(&server, "bob@example.com");
    let (id, cs, _) = api_topup(&mut api, "stripe", "20");
    let body = stripe_event("checkout.session.completed", fake.pay(&cs));
    let sig = stripe_signature(STRIPE_WHSEC, server.clock_now(), &body);

    // Eight threads at once, then a thousand in a row: every one answered 200.
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..25 {
                    assert_eq!(stripe_deliver(&server, &body, &sig).status, 200);
                }
            });
        }
    });
    for _ in 0..1000 {
        assert_eq!(stripe_deliver(&server, &body, &sig).status, 200);
    }
    assert_eq!(topup_rows(&server), 1);
    assert_eq!(api.balance(), 2000);
    assert_eq!(status_of(&mut api, id)["status"], "paid");
    // A later event for the same session (async success) changes nothing either.
    let again = stripe_event(
        "checkout.session.async_payment_succeeded",
        fake.session(&cs),
    );
    assert_eq!(stripe_send(&server, &again).status, 200);
    assert_eq!(api.balance(), 2000);
    server.assert_books_balance();
}

#[test]
fn bad_signatures_stale_timestamps_and_tampered_amounts_are_refused_and_change_nothing() {
    let fake = FakeStripe::start();
    let server = stripe_server(&fake);
    let (_, mut api) = customer(&server, "eve@example.com");
    let (id, cs, _) = api_topup(&mut api, "stripe", "10");
    let body = stripe_event("checkout.session.completed", fake.pay(&cs));
    let now = server.clock_now();

    let refused = |r: Response, why: &str| {
        assert_eq!(r.status, 400, "{why}: {}", r.text());
        assert_eq!(error_code(&r), "invalid_request", "{why}");
    };
    refused(
        stripe_deliver(&server, &body, &stripe_signature("whsec_wrong", now, &body)),
        "another secret",
    );
    refused(stripe_deliver(&server, &body, ""), "an empty header");
    refused(
        server
            .client()
            .request("POST", "/payments/stripe/webhook", &[], body.as_bytes()),
        "no header",
    );
    refused(
        stripe_deliver(
            &server,
            &body,
            &stripe_signature(STRIPE_WHSEC, now - 301, &body),
        ),
        "a timestamp 301 s old",
    );
    refused(
        stripe_deliver(
            &server,
            &body,
            &stripe_signature(STRIPE_WHSEC, now + 301, &body),
        ),
        "a timestamp 301 s ahead",
    );
    // The amount changed after signing: the signature no longer matches.
    let sig = stripe_signature(STRIPE_WHSEC, now, &body);
    let tampered = body.replace("\"amount_total\":1000", "\"amount_total\":99999");
    assert_ne!(tampered, body);
    refused(
        stripe_deliver(&server, &tampered, &sig),
        "a tampered amount",
    );
    // A signature captured now is refused once the clock has moved past the tolerance.
    server.advance_clock(301);
    refused(stripe_deliver(&server, &body, &sig), "a replay after 301 s");

    assert_eq!(topup_rows(&server), 0);
    assert_eq!(api.balance(), 0);
    assert_eq!(status_of(&mut api, id)["status"], "pending");

    // The genuine notice, signed now, still credits.
    assert_eq!(stripe_send(&server, &body).status, 200);
    assert_eq!(api.balance(), 1000);
    server.assert_books_balance();
}

#[test]
fn refunds_and_disputes_reverse_the_credit_once_record_a_chargeback_and_raise_its_flag() {
    let fake = FakeStripe::start();
    let server = stripe_server(&fake);
    let (_, mut api) = customer(&server, "rex@example.com");
    let (id, cs, _) = api_topup(&mut api, "stripe", "10");
    let session = fake.pay(&cs);
    let pi = session["payment_intent"].as_str().unwrap().to_string();
    assert_eq!(
        stripe_send(
            &server,
            &stripe_event("checkout.session.completed", session)
        )
        .status,
        200
    );
    assert_eq!(api.balance(), 1000);

    // A partial refund of 3.00, delivered twice.
    let refund = stripe_event(
        "charge.refunded",
        json!({"id": "ch_1", "object": "charge", "amount": 1000, "amount_refunded": 300,
               "currency": "usd", "payment_intent": pi, "refunded": false}),
    );
    for _ in 0..2 {
        assert_eq!(stripe_send(&server, &refund).status, 200);
    }
    assert_eq!(api.balance(), 700);
    assert_eq!(status_of(&mut api, id)["status"], "refunded");
    assert_eq!(status_of(&mut api, id)["reversed_minor"], 300);

    // The customer spends some of it on an order, then disputes the whole payment: 7.00 more
    // goes back, of which only what is left can be debited.
    let uid = api.user_id;
    server.add_numbers(COUNTRY, &["6281200000003"]);
    let price = server.price("tg");
    api.order_ok("tg");
    assert_eq!(api.balance(), 700 - price);
    let dispute = stripe_event(
        "charge.dispute.created",
        json!({"id": "dp_1", "object": "dispute", "amount": 1000, "charge": "ch_1",
               "currency": "usd", "payment_intent": pi, "reason": "fraudulent"}),
    );
    for _ in 0..3 {
        assert_eq!(stripe_send(&server, &dispute).status, 200);
    }
    assert_eq!(api.balance(), 0);
    let t = status_of(&mut api, id);
    assert_eq!(
        (t["status"].as_str(), t["reversed_minor"].as_i64()),
        (Some("disputed"), Some(1000))
    );
    assert_eq!(
        server.ledger_of("payment", id),
        vec![
            ("topup".to_string(), 1000),
            ("adjustment".to_string(), -300),
            ("adjustment".to_string(), -(700 - price))
        ]
    );
    assert_eq!(
        server.count(&format!(
            "SELECT COUNT(*) FROM chargebacks WHERE user_id = {uid}"
        )),
        2
    );
    assert_eq!(
        server.count(&format!(
            "SELECT COUNT(*) FROM flags WHERE user_id = {uid} AND kind = 'chargeback' AND state = 'open'"
        )),
        1
    );
    server.assert_books_balance();
}

#[test]
fn limits_and_gateways_are_checked_and_a_gateway_without_a_key_is_off() {
    let fake = FakeStripe::start();
    let server = stripe_server(&fake);
    let (mut web, mut api) = customer(&server, "lim@example.com");
    // Not an amount: 400. An amount outside this site's limits: 409, naming them.
    for amount in ["-5", "1.234", "lots", "", "1e3"] {
        let r = api.post(
            "/api/v1/topups",
            json!({"gateway": "stripe", "amount": amount}),
        );
        assert_eq!(r.status, 400, "{amount}: {}", r.text());
        assert_eq!(error_code(&r), "invalid_request");
    }
    for amount in ["4.99", "200.01", "0"] {
        let r = api.post(
            "/api/v1/topups",
            json!({"gateway": "stripe", "amount": amount}),
        );
        assert_eq!(r.status, 409, "{amount}: {}", r.text());
        assert!(r.text().contains("5.00 to 200.00 USD"), "{}", r.text());
    }
    // A gateway without a key is not there.
    let r = api.post(
        "/api/v1/topups",
        json!({"gateway": "btcpay", "amount": "10"}),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("not available"), "{}", r.text());
    let r = web.submit(
        "/wallet",
        "/wallet/topup",
        &[("amount", "1"), ("gateway", "stripe")],
    );
    let back = web.back_to(&r, "/wallet").text();
    assert!(
        back.contains("A top-up is from 5.00 to 200.00 USD"),
        "{back}"
    );
    assert!(fake.calls().is_empty(), "nothing reached the gateway");
    assert_eq!(server.count("SELECT COUNT(*) FROM payments"), 0);
    assert_eq!(api.get("/api/v1/topups/1").status, 404);

    // The limits hold exactly at both ends.
    api_topup(&mut api, "stripe", "5");
    api_topup(&mut api, "stripe", "200.00");

    // A server without any gateway key: no form, no webhook, the API refuses.
    let plain = TestServer::start();
    let (mut web, mut api) = customer(&plain, "off@example.com");
    let html = web.get("/wallet").text();
    assert!(html.contains("Payments are not set up"), "{html}");
    assert!(!html.contains("Continue to payment"), "{html}");
    let r = api.post(
        "/api/v1/topups",
        json!({"gateway": "stripe", "amount": "10"}),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let r = plain
        .client()
        .request("POST", "/payments/stripe/webhook", &[], b"{}");
    assert_eq!(r.status, 404);
    assert!(web
        .get("/privacy")
        .text()
        .contains("no payment processor is used"));
}

#[test]
fn a_gateway_failure_fails_the_top_up_and_charges_nothing() {
    let fake = FakeStripe::start();
    let server = stripe_server(&fake);
    let (_, mut api) = customer(&server, "fail@example.com");
    *fake.fail_with.lock().unwrap() = 500;
    let r = api.post(
        "/api/v1/topups",
        json!({"gateway": "stripe", "amount": "10"}),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        r.text().contains("could not open a checkout"),
        "{}",
        r.text()
    );
    assert_eq!(
        server.count("SELECT COUNT(*) FROM payments WHERE status = 'failed'"),
        1
    );
    assert!(
        !server.output().contains(STRIPE_KEY),
        "the key is never logged"
    );
}

#[test]
fn a_lost_webhook_is_found_by_the_reconciliation_job_and_an_expired_session_closed() {
    let fake = FakeStripe::start();
    let server = stripe_server(&fake);
    let mut c = server.client();
    assert_eq!(c.post("/__dev/scheduler?paused=1", b"").status, 200);
    let (_, mut api) = customer(&server, "rec@example.com");
    let (paid, cs_paid, _) = api_topup(&mut api, "stripe", "15");
    let (gone, cs_gone, _) = api_topup(&mut api, "stripe", "25");
    fake.pay(&cs_paid);
    fake.expire(&cs_gone);
    // Before 15 minutes nothing is asked.
    server.run_jobs();
    assert_eq!(status_of(&mut api, paid)["status"], "pending");
    server.advance_clock(16 * 60);
    server.run_jobs();
    assert_eq!(status_of(&mut api, paid)["status"], "paid");
    assert_eq!(status_of(&mut api, gone)["status"], "expired");
    assert_eq!(api.balance(), 1500);
    // The webhook that arrives after all changes nothing.
    let body = stripe_event("checkout.session.completed", fake.session(&cs_paid));
    assert_eq!(stripe_send(&server, &body).status, 200);
    assert_eq!(api.balance(), 1500);
    server.assert_books_balance();
}

#[test]
fn the_admin_sees_every_payment_and_asks_the_gateway_audited() {
    let fake = FakeStripe::start();
    let server = stripe_server(&fake);
    let (_, mut api) = customer(&server, "cat@example.com");
    let (id, cs, _) = api_topup(&mut api, "stripe", "30");
    let (mut admin, _) = server.signed_in("root@example.com", "admin");
    let html = admin.get("/admin/payments").text();
    assert!(
        html.contains("cat@example.com") && html.contains(&cs),
        "{html}"
    );
    assert!(
        html.contains("30.00 USD") && html.contains("pending"),
        "{html}"
    );
    assert_eq!(
        server.count("SELECT COUNT(*) FROM audit_log WHERE action = 'payments_viewed'"),
        1
    );

    fake.pay(&cs);
    let r = admin.submit(
        "/admin/payments",
        &format!("/admin/payments/{id}/check"),
        &[],
    );
    let html = admin.follow(&r).text();
    assert!(html.contains("complete / paid"), "{html}");
    assert_eq!(status_of(&mut api, id)["status"], "paid");
    assert_eq!(api.balance(), 3000);
    assert_eq!(
        server.count("SELECT COUNT(*) FROM audit_log WHERE action = 'payment_checked'"),
        1
    );
    // A customer cannot see the list.
    let (mut other, _) = server.signed_in("nosy@example.com", "user");
    assert_eq!(other.get("/admin/payments").status, 403);
    // The privacy page names the processor.
    assert!(other
        .get("/privacy")
        .text()
        .contains("Stripe (Stripe, Inc."));
    server.assert_books_balance();
}

#[test]
fn btcpay_top_up_is_confirmed_by_reading_the_invoice_back() {
    let fake = FakeBtcpay::start();
    let server = btcpay_server(&fake);
    let (mut web, mut api) = customer(&server, "sat@example.com");
    let html = web.get("/wallet").text();
    assert!(
        html.contains("BTCPay Server") && !html.contains("Card (Stripe)"),
        "{html}"
    );

    let r = web.submit(
        "/wallet",
        "/wallet/topup",
        &[("amount", "40"), ("gateway", "btcpay")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].path,
        format!("/api/v1/stores/{BTCPAY_STORE}/invoices")
    );
    let sent: Value = serde_json::from_str(&calls[0].body).unwrap();
    assert_eq!(sent["amount"], "40.00");
    assert_eq!(sent["currency"], "USD");
    let id = sent["metadata"]["otpboxPaymentId"].as_i64().unwrap();
    assert_eq!(sent["metadata"]["orderId"], format!("otpbox-{id}"));
    assert!(sent["checkout"]["redirectURL"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/wallet/topups/{id}")));
    let t = status_of(&mut api, id);
    assert_eq!(t["checkout_url"], "https://btcpay.test/i/Inv00001");

    // A settlement notice while the invoice is not settled (forged by someone with the
    // secret, or early) credits nothing: the invoice itself is the proof.
    let settled = btcpay_event("InvoiceSettled", "Inv00001");
    assert_eq!(btcpay_send(&server, &settled, BTCPAY_SECRET).status, 200);
    assert_eq!(api.balance(), 0);
    // A wrong signature is refused before the invoice is even read.
    let reads = fake.calls().len();
    let r = btcpay_send(&server, &settled, "wrong-secret");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(fake.calls().len(), reads);

    // Settled at BTCPay (for the invoice's own amount), the notice credits it, once.
    fake.set_status("Inv00001", "Settled");
    for kind in ["InvoicePaymentSettled", "InvoiceSettled", "InvoiceSettled"] {
        let r = btcpay_send(&server, &btcpay_event(kind, "Inv00001"), BTCPAY_SECRET);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(api.balance(), 4000);
    assert_eq!(topup_rows(&server), 1);
    assert_eq!(status_of(&mut api, id)["status"], "paid");

    server.add_numbers(COUNTRY, &["6281200000002"]);
    let price = server.price("tg");
    api.order_ok("tg");
    assert_eq!(api.balance(), 4000 - price);
    assert!(web
        .get("/privacy")
        .text()
        .contains("BTCPay Server, a self-hosted"));
    server.assert_books_balance();
}

#[test]
fn an_expired_or_invalid_btcpay_invoice_closes_without_credit() {
    let fake = FakeBtcpay::start();
    let server = btcpay_server(&fake);
    let (_, mut api) = customer(&server, "exp@example.com");
    let (a, inv_a, _) = api_topup(&mut api, "btcpay", "10");
    let (b, inv_b, _) = api_topup(&mut api, "btcpay", "10");
    fake.set_status(&inv_a, "Expired");
    fake.set_status(&inv_b, "Invalid");
    assert_eq!(
        btcpay_send(
            &server,
            &btcpay_event("InvoiceExpired", &inv_a),
            BTCPAY_SECRET
        )
        .status,
        200
    );
    assert_eq!(
        btcpay_send(
            &server,
            &btcpay_event("InvoiceInvalid", &inv_b),
            BTCPAY_SECRET
        )
        .status,
        200
    );
    assert_eq!(status_of(&mut api, a)["status"], "expired");
    assert_eq!(status_of(&mut api, b)["status"], "failed");
    assert_eq!(api.balance(), 0);
    assert_eq!(topup_rows(&server), 0);
    server.assert_books_balance();
}

#[test]
fn settings_of_an_enabled_gateway_are_checked_at_start_up() {
    let out = std::process::Command::new(common::BIN)
        .args(["check", "--data", "/nonexistent-otpbox-dir"])
        .env_clear()
        .env("OTPBOX_STRIPE_SECRET_KEY", STRIPE_KEY)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("stripe_webhook_secret"), "{said}");
}

#[test]
fn a_server_killed_while_the_checkout_opens_still_credits_the_payment_once() {
    let fake = FakeStripe::start();
    let server = stripe_server(&fake);
    let (_, api) = customer(&server, "kill@example.com");
    // Stripe opens the session, then answers slowly; the server is killed meanwhile.
    *fake.delay_ms.lock().unwrap() = 3000;
    let mut waiting = api.clone();
    let call = std::thread::spawn(move || {
        waiting.client.try_request(
            "POST",
            "/api/v1/topups",
            &[("Content-Type", "application/json")],
            br#"{"gateway":"stripe","amount":"42"}"#,
        )
    });
    assert!(common::eventually(
        std::time::Duration::from_secs(10),
        || fake.calls().len() == 1
    ));
    let data = server.kill9();
    assert!(call.join().unwrap().is_err(), "the answer never came");
    *fake.delay_ms.lock().unwrap() = 0;

    let server = stripe_builder(&fake).data_dir(data).start();
    let mut c = server.client();
    assert_eq!(c.post("/__dev/scheduler?paused=1", b"").status, 200);
    assert_eq!(
        server.count(
            "SELECT COUNT(*) FROM payments WHERE status = 'creating' AND gateway_ref IS NULL"
        ),
        1
    );
    let key = server.api_key("kill@example.com");
    let mut api = Api::new(&server, &key, api.user_id, "kill@example.com");

    // The customer had the checkout open in another tab and paid: the notice finds the
    // payment by the client reference Stripe carries, and credits it once.
    let body = stripe_event("checkout.session.completed", fake.pay("cs_test_0001"));
    for _ in 0..3 {
        assert_eq!(stripe_send(&server, &body).status, 200);
    }
    assert_eq!(api.balance(), 4200);
    assert_eq!(topup_rows(&server), 1);
    let t = status_of(&mut api, 1);
    assert_eq!(
        (t["status"].as_str(), t["credited_minor"].as_i64()),
        (Some("paid"), Some(4200))
    );

    // An orphan that is never paid is closed by the reconciliation job.
    server
        .db()
        .execute(
            "INSERT INTO payments (user_id, gateway, status, amount_minor, currency, created_at, updated_at) \
             VALUES (?1, 'stripe', 'creating', 500, 'USD', ?2, ?2)",
            rusqlite::params![api.user_id, server.clock_now()],
        )
        .unwrap();
    server.advance_clock(16 * 60);
    server.run_jobs();
    assert_eq!(
        server.count("SELECT COUNT(*) FROM payments WHERE status = 'failed'"),
        1
    );
    assert_eq!(api.balance(), 4200);
    server.assert_books_balance();
}

#[test]
fn a_balance_too_low_links_to_the_top_up_and_the_export_lists_top_ups() {
    let fake = FakeStripe::start();
    let server = stripe_server(&fake);
    let (mut web, mut api) = customer(&server, "poor@example.com");
    server.add_numbers(COUNTRY, &["6281200000009"]);
    let r = web.submit(
        &format!("/dashboard?country={COUNTRY}"),
        "/orders",
        &[("country", &COUNTRY.to_string()), ("service", "tg")],
    );
    let html = web.follow(&r).text();
    assert!(html.contains("Your balance is too low"), "{html}");
    assert!(html.contains("href=\"/wallet#topup\""), "{html}");
    assert!(web.get("/wallet").text().contains("id=\"topup\""));

    let (id, cs, _) = api_topup(&mut api, "stripe", "9.99");
    assert_eq!(
        stripe_send(
            &server,
            &stripe_event("checkout.session.completed", fake.pay(&cs))
        )
        .status,
        200
    );
    let export = web.get("/settings/export").json();
    let payments = export["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["id"], id);
    assert_eq!(payments[0]["status"], "paid");
    assert_eq!(payments[0]["credited_minor"], 999);
    assert_eq!(payments[0]["gateway_ref"], cs);
}

#[test]
fn closed_top_ups_follow_the_ledger_retention_and_open_ones_stay() {
    let fake = FakeStripe::start();
    let server = stripe_builder(&fake)
        .env("OTPBOX_LEDGER_RETENTION", "2d")
        .start();
    let mut c = server.client();
    assert_eq!(c.post("/__dev/scheduler?paused=1", b"").status, 200);
    let (mut web, mut api) = customer(&server, "old@example.com");
    let (paid, cs, _) = api_topup(&mut api, "stripe", "10");
    let (open, _, _) = api_topup(&mut api, "stripe", "20");
    assert_eq!(
        stripe_send(
            &server,
            &stripe_event("checkout.session.completed", fake.pay(&cs))
        )
        .status,
        200
    );
    server.run_jobs();
    assert_eq!(server.count("SELECT COUNT(*) FROM payments"), 2);

    server.advance_clock(3 * 86_400);
    server.run_jobs();
    // The paid one is gone with its ledger row (folded into the carried-over row); the one
    // still waiting for its customer stays until it closes.
    assert_eq!(
        server.count(&format!("SELECT COUNT(*) FROM payments WHERE id = {paid}")),
        0
    );
    assert_eq!(
        server.count(&format!("SELECT COUNT(*) FROM payments WHERE id = {open}")),
        1
    );
    assert_eq!(api.get(&format!("/api/v1/topups/{paid}")).status, 404);
    assert_eq!(api.balance(), 1000);
    assert!(web
        .get("/privacy")
        .text()
        .contains("Ledger and payment records"));
    server.assert_books_balance();
}
