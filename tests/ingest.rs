//! Gateway ingestion end to end: an operator's device made with `otpbox device add`, a
//! customer whose order gets that device's SIM, and `POST /ingest/{kind}/{device_id}` in each
//! gateway's format. Valid deliveries put the code on the order (seen through the customer's
//! API); bad signatures, stale or replayed requests, unknown devices and malformed bodies get a
//! clear 4xx and change nothing; a redelivery is acknowledged and stored once; a device cannot
//! deliver to a number outside its scope; silent devices' SIMs leave the stock.

mod common;

use common::gateways::{hmac_hex, jwt, Device};
use common::market::{error_code, id_of, Api, COUNTRY};
use common::{Response, TestServer};
use serde_json::{json, Value};

/// Indonesian numbers (country 6, +62) for the SIMs.
const SIM_A: &str = "6281200000001";
const SIM_B: &str = "6281200000002";
const OPERATOR: &str = "op@example.com";

/// Yesterday's date (UTC): gateways report receive times near our clock.
fn day() -> String {
    (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string()
}

fn server() -> TestServer {
    TestServer::builder().env("OTPBOX_DEV_CLOCK", "1").start()
}

/// A server with one operator, whose device of `kind` has a SIM in slot 1 (`SIM_A`), and a
/// customer with a live Telegram order on that SIM.
struct World {
    server: TestServer,
    device: Device,
    api: Api,
    order: i64,
}

fn world(kind: &str) -> World {
    let server = server();
    server.operator(OPERATOR);
    let device = server.add_device(OPERATOR, kind, &[&format!("1:+{SIM_A}:{COUNTRY}")]);
    let mut api = server.customer("buyer@example.com", "10.00");
    let a = api.order_ok("tg");
    assert_eq!(a["phone"], SIM_A, "the order got the device's SIM: {a}");
    World {
        order: id_of(&a),
        server,
        device,
        api,
    }
}

/// The code the customer sees on the order.
fn code(api: &mut Api, order: i64) -> Option<String> {
    api.activation(order)["code"].as_str().map(str::to_string)
}

impl World {
    fn stored(&self) -> i64 {
        self.server.stored_messages(self.order)
    }

    /// Everything an ingestion request may change: messages, de-duplication keys, the
    /// device's last message and its daily count.
    fn footprint(&self) -> (i64, i64, i64, i64) {
        let s = &self.server;
        (
            s.count("SELECT COUNT(*) FROM messages"),
            s.count("SELECT COUNT(*) FROM inbound_seen"),
            s.count("SELECT COUNT(*) FROM devices WHERE last_message_at IS NOT NULL"),
            s.count("SELECT COALESCE(SUM(messages), 0) FROM device_days"),
        )
    }
}

fn status_of(r: &Response) -> (String, Option<String>) {
    let v = r.json();
    let first = &v["results"][0];
    (
        first["status"].as_str().unwrap_or("").to_string(),
        first["reason"].as_str().map(str::to_string),
    )
}

fn delivered(r: &Response) {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(status_of(r).0, "delivered", "{}", r.text());
}

fn refused(r: &Response, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(error_code(r), code, "{}", r.text());
}

// ---------------------------------------------------------------------------------------------
// capcom6

fn capcom6_sms(id: &str, recipient: Value, sim: Value, text: &str) -> String {
    json!({
        "deviceId": "ffffffffceb0b1db0000018e937c815b",
        "event": "sms:received",
        "id": id,
        "webhookId": "LreFUt-Z3sSq0JufY9uWB",
        "payload": {
            "messageId": "not-unique",
            "message": text,
            "sender": "Telegram",
            "recipient": recipient,
            "simNumber": sim,
            "receivedAt": format!("{}T15:46:11.000+07:00", day()),
        }
    })
    .to_string()
}

/// POSTs a capcom6 body signed with `key` at time `ts`.
fn capcom6_post(server: &TestServer, d: &Device, body: &str, ts: i64, key: &str) -> Response {
    let ts = ts.to_string();
    let sig = hmac_hex(key.as_bytes(), format!("{body}{ts}").as_bytes());
    server.ingest(
        &d.path,
        &[("X-Signature", &sig), ("X-Timestamp", &ts)],
        body.as_bytes(),
    )
}

#[test]
fn capcom6_delivery_signature_replay_unknown_device_and_malformed_body() {
    let mut w = world("capcom6");
    let (s, d) = (&w.server, w.device.clone());
    let now = s.now();
    let body = capcom6_sms(
        "Ey6ECgOkVVFjz3CL48B8C",
        json!(null),
        json!(1),
        "Telegram code: 12345",
    );
    let before = w.footprint();

    // Wrong key, tampered body, missing headers, stale or future timestamp: 401.
    refused(
        &capcom6_post(s, &d, &body, now, "not-the-secret"),
        401,
        "unauthorized",
    );
    let sig = hmac_hex(d.secret.as_bytes(), format!("{body}{now}").as_bytes());
    let tampered = body.replace("12345", "99999");
    let r = s.ingest(
        &d.path,
        &[("X-Signature", &sig), ("X-Timestamp", &now.to_string())],
        tampered.as_bytes(),
    );
    refused(&r, 401, "unauthorized");
    refused(
        &s.ingest(&d.path, &[], body.as_bytes()),
        401,
        "unauthorized",
    );
    let r = capcom6_post(s, &d, &body, now - 301, &d.secret);
    refused(&r, 401, "unauthorized");
    assert!(r.text().contains("X-Timestamp"), "{}", r.text());
    refused(
        &capcom6_post(s, &d, &body, now + 400, &d.secret),
        401,
        "unauthorized",
    );

    // Unknown device, unknown kind, the right device under another kind: 404.
    let other = d.path.replace(&d.id, "0000000000000000");
    refused(&s.ingest(&other, &[], body.as_bytes()), 404, "not_found");
    let wrong_kind = d.path.replace("capcom6", "generic");
    let r = s.ingest(
        &wrong_kind,
        &[("Authorization", &format!("Bearer {}", d.secret))],
        br#"{"from":"Telegram","text":"Telegram code: 12345"}"#,
    );
    refused(&r, 404, "not_found");
    refused(
        &s.ingest(&d.path.replace("capcom6", "sms-gate"), &[], b"{}"),
        404,
        "not_found",
    );

    // Signed but malformed: 400 saying what is wrong.
    let r = capcom6_post(s, &d, "{not json", now, &d.secret);
    refused(&r, 400, "invalid_request");
    let r = capcom6_post(
        s,
        &d,
        r#"{"event":"sms:received","id":"x","payload":{"sender":"A"}}"#,
        now,
        &d.secret,
    );
    refused(&r, 400, "invalid_request");
    assert!(r.text().contains("payload.message"), "{}", r.text());

    assert_eq!(w.footprint(), before, "refused requests changed something");
    assert_eq!(code(&mut w.api, w.order), None);

    // The real thing: recipient null, resolved through SIM slot 1.
    let r = capcom6_post(&w.server, &d, &body, now, &d.secret);
    delivered(&r);
    assert_eq!(r.json()["delivered"], 1);
    assert_eq!(code(&mut w.api, w.order).as_deref(), Some("12345"));
    assert_eq!(w.api.activation(w.order)["status"], "received");

    // The phone retries (it did not see our answer): acknowledged, stored once.
    let r = capcom6_post(&w.server, &d, &body, now + 20, &d.secret);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(status_of(&r).0, "duplicate");
    assert_eq!(w.stored(), 1);

    // Other events are acknowledged and ignored; a ping is fine.
    let r = capcom6_post(
        &w.server,
        &d,
        r#"{"event":"sms:sent","id":"s1","payload":{}}"#,
        now,
        &d.secret,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["results"][0]["event"], "ignored");
    let r = capcom6_post(
        &w.server,
        &d,
        r#"{"event":"system:ping","id":"p1","payload":{"health":{}}}"#,
        now,
        &d.secret,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(w.stored(), 1);
    assert_eq!(
        w.server.count("SELECT SUM(messages) FROM device_days"),
        1,
        "one SMS taken in"
    );
    w.server.assert_books_balance();
}

#[test]
fn capcom6_app_started_registers_sims_and_a_null_recipient_is_found_by_sim_number() {
    let server = server();
    server.operator(OPERATOR);
    let d = server.add_device(OPERATOR, "capcom6", &[]);
    assert_eq!(server.stock("tg"), 0);
    let now = server.now();
    let started = json!({
        "event": "app:started", "id": "st1", "deviceId": "x",
        "payload": {"simCards": [
            {"slotIndex": 0, "simNumber": 1, "phoneNumber": format!("+{SIM_A}"), "carrierName": "Telkomsel", "iccid": "8962"},
            {"slotIndex": 1, "simNumber": null, "phoneNumber": format!("+{SIM_B}"), "carrierName": "XL", "iccid": "8963"},
        ]}
    })
    .to_string();
    let r = capcom6_post(&server, &d, &started, now, &d.secret);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["results"][0]["registered"], json!([SIM_A, SIM_B]));
    let slots: Vec<(i64, String, i64)> = {
        let db = server.db();
        let mut st = db
            .prepare("SELECT slot, phone, country_id FROM numbers WHERE device_id IS NOT NULL ORDER BY slot")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(
        slots,
        vec![
            (1, SIM_A.to_string(), COUNTRY),
            (2, SIM_B.to_string(), COUNTRY)
        ]
    );
    assert_eq!(server.stock("tg"), 2);

    // Two orders take both SIMs; an SMS to slot 2 with no recipient reaches the second.
    let mut api = server.customer("buyer@example.com", "10.00");
    let first = api.order_ok("tg");
    let second = api.order_ok("tg");
    assert_eq!(
        (first["phone"].as_str(), second["phone"].as_str()),
        (Some(SIM_A), Some(SIM_B))
    );
    let body = capcom6_sms("m-slot2", json!(null), json!(2), "Telegram code: 22222");
    delivered(&capcom6_post(&server, &d, &body, now, &d.secret));
    assert_eq!(api.activation(id_of(&second))["code"], "22222");
    assert_eq!(api.activation(id_of(&first))["code"], Value::Null);
    // With two SIMs and neither recipient nor slot, the number is unknown: not delivered.
    let body = capcom6_sms("m-none", json!(null), json!(null), "Telegram code: 33333");
    let r = capcom6_post(&server, &d, &body, now, &d.secret);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        status_of(&r),
        ("not_delivered".into(), Some("unknown_number".into()))
    );
    // A named recipient wins; a batch of two arrives as two messages.
    let batch = json!({
        "event": "sms:batch:received", "id": "b1",
        "payload": {"messages": [
            {"message": "Telegram code: 44444", "sender": "Telegram", "recipient": format!("+{SIM_A}")},
            {"message": "Telegram code: 55555", "phoneNumber": "Telegram", "simNumber": 2},
        ]}
    })
    .to_string();
    let r = capcom6_post(&server, &d, &batch, now, &d.secret);
    assert_eq!(r.json()["delivered"], 2, "{}", r.text());
    assert_eq!(api.activation(id_of(&first))["code"], "44444");
    assert_eq!(api.activation(id_of(&second))["code"], "55555");

    // The phone restarts with slot 2 empty: that SIM leaves the device and the stock.
    let restarted = json!({
        "event": "app:started", "id": "st2",
        "payload": {"simCards": [{"slotIndex": 0, "phoneNumber": format!("+{SIM_A}")}]}
    })
    .to_string();
    let r = capcom6_post(&server, &d, &restarted, now, &d.secret);
    assert_eq!(
        r.json()["results"][0]["removed"],
        json!([SIM_B]),
        "{}",
        r.text()
    );
    // An SMS on the emptied slot is not the remaining SIM's.
    let body = capcom6_sms("m-gone", json!(null), json!(2), "Telegram code: 66666");
    let r = capcom6_post(&server, &d, &body, now, &d.secret);
    assert_eq!(
        status_of(&r),
        ("not_delivered".into(), Some("unknown_number".into()))
    );
    assert_eq!(api.activation(id_of(&first))["code"], "44444");
    assert_eq!(
        server
            .count("SELECT COUNT(*) FROM numbers WHERE device_id IS NOT NULL AND slot IS NOT NULL"),
        1
    );
}

// ---------------------------------------------------------------------------------------------
// httpSMS

fn httpsms_event(message_id: &str, owner: &str, text: &str) -> String {
    json!({
        "specversion": "1.0",
        "id": format!("ev-{message_id}"),
        "source": "/v1/messages/receive",
        "type": "message.phone.received",
        "datacontenttype": "application/json",
        "time": format!("{}T08:46:11.527976Z", day()),
        "data": {
            "message_id": message_id,
            "user_id": "WB7DRDWrJZRGbYrv2CKGkqbzvqdC",
            "owner": owner,
            "encrypted": false,
            "contact": "+18005550199",
            "timestamp": format!("{}T08:46:11.527976Z", day()),
            "content": text,
            "sim": "SIM1",
        }
    })
    .to_string()
}

fn httpsms_claims(now: i64, aud: &str) -> Value {
    json!({"iss": "api.httpsms.com", "sub": "WB7DRDWrJZRGbYrv2CKGkqbzvqdC", "aud": [aud],
           "iat": now, "nbf": now - 600, "exp": now + 600})
}

#[test]
fn httpsms_delivery_jwt_checks_and_redelivery() {
    let mut w = world("httpsms");
    let d = w.device.clone();
    let now = w.server.now();
    // Behind a proxy the audience's host is the public one; only the path must match.
    let aud = format!("https://otp.example.com{}", d.path);
    let body = httpsms_event(
        "32350d4f-1234",
        &format!("+{SIM_A}"),
        "Telegram code: 12345",
    );
    let post = |token: &str, body: &str| {
        w.server.ingest(
            &d.path,
            &[
                ("Authorization", &format!("Bearer {token}")),
                ("X-Event-Type", "message.phone.received"),
            ],
            body.as_bytes(),
        )
    };
    let before = w.footprint();
    refused(
        &post(&jwt(&httpsms_claims(now, &aud), "wrong-key"), &body),
        401,
        "unauthorized",
    );
    refused(
        &post(&jwt(&httpsms_claims(now - 1300, &aud), &d.secret), &body),
        401,
        "unauthorized",
    );
    let elsewhere = aud.replace(&d.id, "someoneelse");
    refused(
        &post(&jwt(&httpsms_claims(now, &elsewhere), &d.secret), &body),
        401,
        "unauthorized",
    );
    refused(&post("abc.def", &body), 401, "unauthorized");
    refused(
        &w.server.ingest(&d.path, &[], body.as_bytes()),
        401,
        "unauthorized",
    );
    let token = jwt(&httpsms_claims(now, &aud), &d.secret);
    refused(
        &post(
            &token,
            r#"{"type":"message.phone.received","data":{"owner":"+1"}}"#,
        ),
        400,
        "invalid_request",
    );
    refused(&post(&token, "[1,2]"), 400, "invalid_request");
    assert_eq!(w.footprint(), before);

    delivered(&post(&token, &body));
    assert_eq!(code(&mut w.api, w.order).as_deref(), Some("12345"));
    // httpSMS makes a second attempt when the first timed out: stored once.
    let again = post(&token, &body);
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(status_of(&again).0, "duplicate");
    assert_eq!(w.stored(), 1);
    // Other event types are acknowledged and ignored.
    let sent = r#"{"specversion":"1.0","id":"e","type":"message.phone.sent","data":{}}"#;
    assert_eq!(post(&token, sent).status, 200);
    assert_eq!(w.stored(), 1);
}

// ---------------------------------------------------------------------------------------------
// textbee

#[test]
fn textbee_delivery_to_the_devices_sim_signature_and_redelivery() {
    let mut w = world("textbee");
    let d = w.device.clone();
    let body = json!({
        "smsId": "6650f8a1", "message": "Telegram code: 12345", "deviceId": "664f",
        "webhookSubscriptionId": "w1", "webhookEvent": "MESSAGE_RECEIVED",
        "idempotencyKey": "3f1c6d4e-0000", "sender": "+6281999", "receivedAt": format!("{}T08:46:11.000Z", day())
    })
    .to_string();
    let post = |key: &str, body: &str| {
        let sig = hmac_hex(key.as_bytes(), body.as_bytes());
        w.server
            .ingest(&d.path, &[("X-Signature", &sig)], body.as_bytes())
    };
    let before = w.footprint();
    refused(&post("wrong", &body), 401, "unauthorized");
    // A re-serialised body (spaces added) no longer matches the raw-body signature.
    let sig = hmac_hex(d.secret.as_bytes(), body.as_bytes());
    let spaced = body.replace(",", ", ");
    refused(
        &w.server
            .ingest(&d.path, &[("X-Signature", &sig)], spaced.as_bytes()),
        401,
        "unauthorized",
    );
    refused(
        &w.server.ingest(&d.path, &[], body.as_bytes()),
        401,
        "unauthorized",
    );
    refused(
        &post(
            &d.secret,
            r#"{"webhookEvent":"MESSAGE_RECEIVED","sender":"+1"}"#,
        ),
        400,
        "invalid_request",
    );
    assert_eq!(w.footprint(), before);
    // The device secret as bearer token is a heartbeat only (textbee sends none itself):
    // an SMS that way is refused, a ping is taken.
    let bearer = format!("Bearer {}", d.secret);
    let r = w
        .server
        .ingest(&d.path, &[("Authorization", &bearer)], body.as_bytes());
    refused(&r, 400, "invalid_request");
    assert_eq!(w.footprint(), before);
    let r = w.server.ingest(
        &d.path,
        &[("Authorization", &bearer)],
        br#"{"event":"ping"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["results"][0]["event"], "ping");

    delivered(&post(&d.secret, &body));
    assert_eq!(code(&mut w.api, w.order).as_deref(), Some("12345"));
    let again = post(&d.secret, &body);
    assert_eq!(
        (again.status, status_of(&again).0.as_str()),
        (200, "duplicate")
    );
    assert_eq!(w.stored(), 1);
    let other = post(&d.secret, r#"{"webhookEvent":"MESSAGE_SENT","smsId":"x"}"#);
    assert_eq!(other.status, 200, "{}", other.text());
}

// ---------------------------------------------------------------------------------------------
// generic

#[test]
fn generic_delivery_ping_refusals_and_scope() {
    let mut w = world("generic");
    let d = w.device.clone();
    let auth = format!("Bearer {}", d.secret);
    let post = |auth: &str, body: &Value| {
        w.server.ingest(
            &d.path,
            &[("Authorization", auth)],
            body.to_string().as_bytes(),
        )
    };
    let sms = json!({"id": "gammu-IN20240622_154611_00", "to": format!("+{SIM_A}"), "from": "Telegram",
                     "text": "Telegram code: 12345", "received_at": format!("{}T15:46:11+07:00", day())});
    let before = w.footprint();
    refused(&post("Bearer wrong", &sms), 401, "unauthorized");
    refused(
        &post(&format!("Basic {}", d.secret), &sms),
        401,
        "unauthorized",
    );
    let r = post(
        &auth,
        &json!({"event": "sms:received", "from": "A", "text": "t"}),
    );
    refused(&r, 400, "invalid_request");
    assert!(r.text().contains("Unknown event"), "{}", r.text());
    let r = post(&auth, &json!({"from": "A", "txt": "t"}));
    refused(&r, 400, "invalid_request");
    assert!(r.text().contains("unknown field `txt`"), "{}", r.text());
    refused(
        &post(&auth, &json!({"from": "A", "text": "t", "slot": 99})),
        400,
        "invalid_request",
    );
    assert_eq!(w.footprint(), before);

    delivered(&post(&auth, &sms));
    assert_eq!(code(&mut w.api, w.order).as_deref(), Some("12345"));
    let again = post(&auth, &sms);
    assert_eq!(
        (again.status, status_of(&again).0.as_str()),
        (200, "duplicate")
    );
    assert_eq!(w.stored(), 1);
    let r = post(&auth, &json!({"event": "ping"}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["results"][0]["event"], "ping");

    // Another operator's device cannot deliver to this operator's SIM: unknown number,
    // acknowledged (200) so its gateway stops retrying, and nothing reaches the order.
    w.server.operator("other@example.com");
    let intruder = w.server.add_device("other@example.com", "generic", &[]);
    let r = w.server.ingest(
        &intruder.path,
        &[("Authorization", &format!("Bearer {}", intruder.secret))],
        json!({"to": SIM_A, "from": "Telegram", "text": "Telegram code: 66666"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        status_of(&r),
        ("not_delivered".into(), Some("unknown_number".into()))
    );
    // Nor can a second device of the same operator (the SIM lives in the first).
    let sibling = w.server.add_device(OPERATOR, "generic", &[]);
    let r = w.server.ingest(
        &sibling.path,
        &[("Authorization", &format!("Bearer {}", sibling.secret))],
        json!({"to": SIM_A, "from": "Telegram", "text": "Telegram code: 77777"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(
        status_of(&r),
        ("not_delivered".into(), Some("unknown_number".into()))
    );
    assert_eq!(w.stored(), 1);
    assert_eq!(code(&mut w.api, w.order).as_deref(), Some("12345"));

    // An SMS after the order ended is not delivered (nor charged).
    assert_eq!(w.api.act(w.order, "complete").status, 200);
    let late = json!({"id": "late-1", "from": "Telegram", "text": "Telegram code: 88888"});
    let r = post(&auth, &late);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        status_of(&r),
        ("not_delivered".into(), Some("no_live_order".into()))
    );
    assert_eq!(w.stored(), 1);
    w.server.assert_books_balance();
}

// ---------------------------------------------------------------------------------------------
// Offline devices

#[test]
fn a_silent_device_goes_offline_and_its_sims_are_not_sold_until_it_is_heard_again() {
    let server = server();
    server.operator(OPERATOR);
    let d = server.add_device(OPERATOR, "generic", &[&format!("1:{SIM_A}:{COUNTRY}")]);
    let mut api = server.customer("buyer@example.com", "10.00");
    assert_eq!(server.stock("tg"), 1);
    // 29 minutes of silence: still online.
    server.advance_clock(29 * 60);
    server.run_jobs();
    assert_eq!(server.stock("tg"), 1);
    // Past the default 30 minutes: offline, the SIM is not sold.
    server.advance_clock(2 * 60);
    let jobs = server.run_jobs();
    assert!(jobs.contains("1 silent device went offline"), "{jobs}");
    assert_eq!(server.stock("tg"), 0);
    let r = api.order("tg");
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(error_code(&r), "no_numbers");
    assert_eq!(server.count("SELECT online FROM devices"), 0);
    // A refused request does not count as being heard.
    let r = server.ingest(
        &d.path,
        &[("Authorization", "Bearer nope")],
        br#"{"event":"ping"}"#,
    );
    assert_eq!(r.status, 401);
    assert_eq!(server.stock("tg"), 0);
    // The heartbeat brings it back.
    let r = server.ingest(
        &d.path,
        &[("Authorization", &format!("Bearer {}", d.secret))],
        br#"{"event":"ping"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(server.stock("tg"), 1);
    assert_eq!(api.order_ok("tg")["phone"], SIM_A);
}

// ---------------------------------------------------------------------------------------------
// otpbox device add

#[test]
fn device_add_needs_an_operator_and_valid_sims_and_creates_nothing_otherwise() {
    let server = server();
    server.create_user("customer@example.com", "user", common::PASSWORD);
    server.operator(OPERATOR);
    let fails = |args: &[&str], says: &str| {
        let out = server.cli(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(says), "{args:?}: {err}");
    };
    fails(
        &[
            "device",
            "add",
            "--operator",
            "customer@example.com",
            "--kind",
            "capcom6",
        ],
        "operator role",
    );
    fails(
        &[
            "device",
            "add",
            "--operator",
            "nobody@example.com",
            "--kind",
            "capcom6",
        ],
        "no account",
    );
    fails(
        &["device", "add", "--operator", OPERATOR, "--kind", "android"],
        "capcom6, httpsms, textbee or generic",
    );
    fails(
        &[
            "device",
            "add",
            "--operator",
            OPERATOR,
            "--kind",
            "generic",
            "--sim",
            "1-62812",
        ],
        "SLOT:PHONE:COUNTRY",
    );
    // The second SIM is bad (a UK number in Indonesia): the first is not kept either.
    fails(
        &[
            "device",
            "add",
            "--operator",
            OPERATOR,
            "--kind",
            "generic",
            "--sim",
            &format!("1:{SIM_A}:{COUNTRY}"),
            "--sim",
            &format!("2:447700900123:{COUNTRY}"),
        ],
        "starts with +62",
    );
    assert_eq!(server.count("SELECT COUNT(*) FROM devices"), 0);
    assert_eq!(server.count("SELECT COUNT(*) FROM numbers"), 0);

    let out = server.cli_ok(&[
        "device",
        "add",
        "--operator",
        OPERATOR,
        "--kind",
        "textbee",
        "--name",
        "Pixel 4a",
        "--sim",
        &format!("1:+{SIM_A}:{COUNTRY}"),
        "--sim",
        &format!("2:{SIM_B}:{COUNTRY}"),
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("device_id="));
    assert!(lines[1].starts_with("secret="));
    let id = &lines[0]["device_id=".len()..];
    assert!(lines[2].starts_with("webhook_url=http"), "{out}");
    assert!(
        lines[2].ends_with(&format!("/ingest/textbee/{id}")),
        "{out}"
    );
    assert_eq!(
        server.count("SELECT COUNT(*) FROM devices WHERE name = 'Pixel 4a' AND kind = 'textbee'"),
        1
    );
    assert_eq!(server.stock("tg"), 2);
    // The secret is not stored anywhere in the database.
    let secret = &lines[1]["secret=".len()..];
    let db = server.db();
    let salts: String = db
        .query_row("SELECT group_concat(secret_salt) FROM devices", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(!salts.contains(secret));
}

/// A delivery without an id is the same message when it is replayed: textbee without
/// `smsId`/`idempotencyKey` and capcom6 without an envelope id are stored once however often
/// they come; a generic delivery with neither id nor time is the same message within the
/// de-duplication window and a new one after it.
#[test]
fn deliveries_without_an_id_are_stored_once_however_often_they_are_replayed() {
    let w = world("textbee");
    let d = w.device.clone();
    let body = json!({"message": "Telegram code: 12345", "sender": "+6281999",
                      "webhookEvent": "MESSAGE_RECEIVED",
                      "receivedAt": format!("{}T08:46:11.000Z", day())})
    .to_string();
    let sig = hmac_hex(d.secret.as_bytes(), body.as_bytes());
    for _ in 0..50 {
        let r = w
            .server
            .ingest(&d.path, &[("X-Signature", &sig)], body.as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(w.stored(), 1);

    let w = world("capcom6");
    let d = w.device.clone();
    let body = capcom6_sms(
        "",
        json!(format!("+{SIM_A}")),
        json!(1),
        "Telegram code: 54321",
    );
    let body = body.replace(r#""id":"","#, "");
    assert!(!body.contains(r#""id""#), "{body}");
    for _ in 0..20 {
        let ts = w.server.now();
        let r = capcom6_post(&w.server, &d, &body, ts, &d.secret);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(w.stored(), 1);

    let w = world("generic");
    let d = w.device.clone();
    let auth = format!("Bearer {}", d.secret);
    let sms =
        json!({"to": format!("+{SIM_A}"), "from": "Telegram", "text": "Telegram code: 11111"})
            .to_string();
    let post = || {
        let r = w
            .server
            .ingest(&d.path, &[("Authorization", &auth)], sms.as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        status_of(&r).0
    };
    assert_eq!(post(), "delivered");
    assert_eq!(post(), "duplicate");
    w.server.advance_clock(9 * 60);
    assert_eq!(
        post(),
        "duplicate",
        "a replay within the window is the same message"
    );
    assert_eq!(w.stored(), 1);
    w.server.advance_clock(25 * 60);
    assert_ne!(
        post(),
        "duplicate",
        "after the window the same text is a new message"
    );
}

/// Every field of a delivery is bounded before anything is written: a receive time far from
/// our clock, an over-long id, text or sender, an absurd SIM slot get a 400 that says which.
#[test]
fn out_of_range_fields_are_refused_and_change_nothing() {
    let w = world("generic");
    let d = w.device.clone();
    let auth = format!("Bearer {}", d.secret);
    let post = |body: &Value| {
        w.server.ingest(
            &d.path,
            &[("Authorization", auth.as_str())],
            body.to_string().as_bytes(),
        )
    };
    let to = format!("+{SIM_A}");
    let before = w.footprint();
    let cases = [
        (
            json!({"to": to, "from": "A", "text": "t", "received_at": -99_999_999_999i64}),
            "received time",
        ),
        (
            json!({"to": to, "from": "A", "text": "t", "received_at": 4_102_444_800i64}),
            "received time",
        ),
        (
            json!({"id": "x".repeat(201), "to": to, "from": "A", "text": "t"}),
            "message id",
        ),
        (
            json!({"id": "x".repeat(500_000), "to": to, "from": "A", "text": "t"}),
            "message id",
        ),
        (
            json!({"to": to, "from": "A".repeat(65), "text": "t"}),
            "sender",
        ),
        (
            json!({"to": to, "from": "A", "text": "t".repeat(255 * 153 + 1)}),
            "text",
        ),
    ];
    for (body, what) in cases {
        let r = post(&body);
        refused(&r, 400, "invalid_request");
        assert!(r.text().contains(what), "{what}: {}", r.text());
    }
    assert_eq!(w.footprint(), before);
    // At the edges: an id of 200 bytes and a time a minute ago are taken.
    let now = w.server.now();
    let r = post(&json!({"id": "x".repeat(200), "to": to, "from": "A",
                         "text": "Telegram code: 777", "received_at": now - 60}));
    delivered(&r);
}
