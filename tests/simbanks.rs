//! SIM banks and multi-SIM gateways end to end, replaying messages in each vendor's format
//! (protocols.md §7.1–7.3): GoIP over UDP (keep-alives, RECEIVE with acknowledgement, resends,
//! a long SMS in parts), Dinstar and Skyline/Ejoin over HTTP (token or Basic credentials,
//! ports, base64 texts, delivery reports, status pushes, replays). Each SMS reaches a
//! customer's order on the gateway's SIM; a device is "never seen" until it calls.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::market::{id_of, Api, COUNTRY};
use common::{Client, TestServer};
use serde_json::{json, Value};

const OPERATOR: &str = "bank@example.com";
const SIM_1: &str = "6281300000001";
const SIM_2: &str = "6281300000002";

struct World {
    server: TestServer,
    /// The operator, signed in.
    op: Client,
    id: String,
    secret: String,
    /// The device's database id (for its page).
    device: i64,
    api: Api,
}

/// A server with a GoIP listener, an operator whose device of `kind` has SIMs in the two
/// slots given, and a customer.
fn world(kind: &str, slots: [&str; 2]) -> World {
    let server = TestServer::builder()
        .env("OTPBOX_DEV_CLOCK", "1")
        .env("OTPBOX_GOIP_LISTEN", "127.0.0.1:0")
        .start();
    server.client().post("/__dev/scheduler?paused=1", b"");
    let (op, _) = server.signed_in(OPERATOR, "operator");
    let d = server.add_device(
        OPERATOR,
        kind,
        &[
            &format!("{}:+{SIM_1}:{COUNTRY}", slots[0]),
            &format!("{}:+{SIM_2}:{COUNTRY}", slots[1]),
        ],
    );
    let device = server.count(&format!(
        "SELECT id FROM devices WHERE public_id = '{}'",
        d.id
    ));
    let api = server.customer("buyer@example.com", "10.00");
    World {
        server,
        op,
        id: d.id,
        secret: d.secret,
        device,
        api,
    }
}

impl World {
    /// A customer's Telegram order; returns (order id, phone).
    fn order(&mut self) -> (i64, String) {
        let a = self.api.order_ok("tg");
        (id_of(&a), a["phone"].as_str().unwrap().to_string())
    }

    fn code(&mut self, order: i64) -> Option<String> {
        self.api.activation(order)["code"]
            .as_str()
            .map(str::to_string)
    }

    fn messages(&self, order: i64) -> i64 {
        self.server.stored_messages(order)
    }

    fn device_page(&mut self) -> String {
        let r = self.op.get(&format!("/operator/devices/{}", self.device));
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
    }

    /// The slot label of a SIM (`slots` order).
    fn line_of(phone: &str) -> usize {
        if phone == SIM_1 {
            1
        } else {
            2
        }
    }
}

// ---------------------------------------------------------------------------------------
// GoIP

fn goip_port(server: &TestServer) -> u16 {
    let out = server.output();
    let addr = out
        .lines()
        .find_map(|l| l.split("otpbox goip listening on udp://").nth(1))
        .unwrap_or_else(|| panic!("no goip address in {out}"));
    addr.trim().rsplit(':').next().unwrap().parse().unwrap()
}

/// Sends one packet and waits for the answer (`None` after a second of silence).
fn udp(port: u16, packet: &str) -> Option<String> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    s.send_to(packet.as_bytes(), ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 1500];
    s.recv_from(&mut buf)
        .ok()
        .map(|(n, _)| String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn goip_lines_keep_alive_and_deliver_sms_over_udp() {
    let mut w = world("goip", ["1", "2"]);
    let port = goip_port(&w.server);
    let page = w.device_page();
    assert!(
        page.contains("never seen"),
        "a new device has not called yet"
    );

    // Keep-alives: a wrong password or an unknown line is refused with status 400.
    let ka = |line: &str, pass: &str, seq: u32| {
        udp(
            port,
            &format!(
                "req:{seq};id:{line};pass:{pass};num:;signal:23;gsm_status:LOGIN;\
                 voip_status:LOGOUT;voip_state:IDLE;remain_time:-1;imei:867;imsi:51010123;\
                 iccid:8962;pro:TELKOMSEL;"
            ),
        )
    };
    assert_eq!(
        ka(&format!("{}-1", w.id), "wrong", 7).as_deref(),
        Some("reg:7;status:400;")
    );
    assert_eq!(
        ka("nobody-1", &w.secret, 8).as_deref(),
        Some("reg:8;status:400;")
    );
    assert!(w.device_page().contains("never seen"));
    assert_eq!(
        ka(&format!("{}-1", w.id), &w.secret, 9).as_deref(),
        Some("reg:9;status:200;")
    );
    let page = w.device_page();
    assert!(!page.contains("never seen"), "seen after its keep-alive");
    assert!(
        page.contains("TELKOMSEL") && page.contains("23/31"),
        "line status shown"
    );

    // An SMS to the ordered SIM's line: acknowledged, delivered, a resend stored once.
    let (order, phone) = w.order();
    let line = format!("{}-{}", w.id, World::line_of(&phone));
    let rx = |id: &str, pass: &str, text: &str| {
        udp(
            port,
            &format!("RECEIVE:{id};id:{line};password:{pass};srcnum:Telegram;msg:{text}"),
        )
    };
    assert_eq!(
        rx("1734804704", "wrong", "Telegram code 11111"),
        None,
        "refused, not acked"
    );
    assert_eq!(w.code(order), None);
    assert_eq!(
        rx("1734804705", &w.secret, "Telegram code 52741").as_deref(),
        Some("RECEIVE 1734804705 OK")
    );
    assert_eq!(w.code(order).as_deref(), Some("52741"));
    assert_eq!(
        rx("1734804705", &w.secret, "Telegram code 52741").as_deref(),
        Some("RECEIVE 1734804705 OK"),
        "a resend is acknowledged again"
    );
    assert_eq!(w.messages(order), 1, "and stored once");
    w.api.act(order, "complete");

    // A long SMS in two parts without part numbers is stored as one message.
    let (order, phone) = w.order();
    let line = format!("{}-{}", w.id, World::line_of(&phone));
    let first = format!("Telegram: {}", "x".repeat(143));
    assert_eq!(first.chars().count(), 153);
    let secret = w.secret.clone();
    let part = |id: &str, text: &str| {
        udp(
            port,
            &format!("RECEIVE:{id};id:{line};password:{secret};srcnum:Telegram;msg:{text}"),
        )
    };
    assert_eq!(part("900", &first).as_deref(), Some("RECEIVE 900 OK"));
    assert_eq!(w.messages(order), 0, "the first part is held");
    assert_eq!(
        part("900", &first).as_deref(),
        Some("RECEIVE 900 OK"),
        "resend of a held part"
    );
    assert_eq!(
        part("901", " your code 66342").as_deref(),
        Some("RECEIVE 901 OK")
    );
    assert_eq!(w.messages(order), 1);
    assert_eq!(w.code(order).as_deref(), Some("66342"));
    let text: String = w
        .server
        .db()
        .query_row(
            "SELECT text FROM messages WHERE activation_id = ?1",
            [order],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(text, format!("{first} your code 66342"));
    assert_eq!(
        part("901", " your code 66342").as_deref(),
        Some("RECEIVE 901 OK")
    );
    assert_eq!(w.messages(order), 1, "a replayed part is a duplicate");

    // A full part whose rest never comes is stored by the devices job after a minute.
    let lone = "y".repeat(148) + " 4242";
    assert_eq!(part("902", &lone).as_deref(), Some("RECEIVE 902 OK"));
    assert_eq!(w.messages(order), 1);
    w.server.advance_clock(61);
    w.server.run_jobs();
    assert_eq!(w.messages(order), 2, "taken in without its last part");

    // Other packets are ignored without an answer.
    assert_eq!(
        udp(port, "DELIVER:5;id:x;password:y;sms_no:1;state:2;num:+1"),
        None
    );
    w.server.assert_books_balance();
}

// ---------------------------------------------------------------------------------------
// Dinstar and Ejoin

impl World {
    fn push(&self, kind: &str, query: &str, auth: Option<&str>, body: &Value) -> (u16, Value) {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        let r = self.server.client().request(
            "POST",
            &format!("/ingest/{kind}/{}{query}", self.id),
            &headers,
            body.to_string().as_bytes(),
        );
        let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        (r.status, v)
    }
}

fn b64(text: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
        for _ in chunk.len()..3 {
            out.push('=');
        }
    }
    out
}

#[test]
fn dinstar_pushes_by_port_with_a_token_or_basic_credentials() {
    // Dinstar ports count from 0: port 0 is slot 1.
    let mut w = world("dinstar", ["1", "2"]);
    let (order, phone) = w.order();
    let port = World::line_of(&phone) - 1;
    let body = json!({"sn": "dbd2-0325-0044-0088", "sms": [{"incoming_sms_id": 41, "port": port,
        "number": "Telegram", "smsc": "+6281100", "timestamp": "2026-12-07 10:00:00",
        "text": "Telegram code 31337"}]});
    let (status, v) = w.push("dinstar", "?token=wrong", None, &body);
    assert_eq!(status, 401, "{v}");
    let (status, v) = w.push("dinstar", "", None, &body);
    assert_eq!(status, 401, "no credentials: {v}");
    assert_eq!(w.code(order), None, "refusals change nothing");
    assert!(w.device_page().contains("never seen"));
    let (status, v) = w.push("dinstar", &format!("?token={}", w.secret), None, &body);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["results"][0]["status"], "delivered", "{v}");
    assert_eq!(w.code(order).as_deref(), Some("31337"));
    // The same push again, with Basic credentials this time: a duplicate.
    let basic = format!("Basic {}", b64(&format!("admin:{}", w.secret)));
    let (status, v) = w.push("dinstar", "", Some(&basic), &body);
    assert_eq!(
        (status, &v["results"][0]["status"]),
        (200, &json!("duplicate")),
        "{v}"
    );
    assert_eq!(w.messages(order), 1);
    // Register status and other push types are acknowledged.
    let reg = json!({"sn": "dbd2", "register": [{"port": port, "imsi": "510109876"}]});
    let (status, v) = w.push("dinstar", &format!("?token={}", w.secret), None, &reg);
    assert_eq!(
        (status, &v["results"][0]["event"]),
        (200, &json!("status")),
        "{v}"
    );
    let other = json!({"sn": "dbd2", "sms_deliver_status": []});
    let (status, _) = w.push("dinstar", &format!("?token={}", w.secret), None, &other);
    assert_eq!(status, 200);
    assert!(!w.device_page().contains("never seen"));
}

#[test]
fn ejoin_pushes_base64_sms_by_port_label_and_port_status() {
    // SIM_1 in port 1 card A (slot 1), SIM_2 in port 2 card B (slot 18).
    let mut w = world("ejoin", ["1A", "2B"]);
    let (order, phone) = w.order();
    let label = if phone == SIM_1 { "1A" } else { "2.02" };
    let t = w.server.now();
    let token = format!("?token={}", w.secret);
    let body = json!({"type": "recv-sms", "sms_num": 2, "sms": [
        [1, label, t, "Telegram", "", b64("delivered")],
        [0, label, t, "Telegram", "", b64("Telegram code: 70707. Не сообщайте")],
    ]});
    let (status, v) = w.push("ejoin", &token, None, &body);
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["results"].as_array().unwrap().len(),
        1,
        "the delivery report is skipped: {v}"
    );
    assert_eq!(v["results"][0]["status"], "delivered", "{v}");
    assert_eq!(w.code(order).as_deref(), Some("70707"));
    // A replay (Ejoin sends no message id) is recognised by what it says.
    let (_, v) = w.push("ejoin", &token, None, &body);
    assert_eq!(v["results"][0]["status"], "duplicate", "{v}");
    assert_eq!(w.messages(order), 1);
    // The status push records each port's signal and operator.
    let st = json!({"type": "dev-status", "mac": "00:30", "max-ports": 32, "max-slots": 4,
        "status": [{"port": "1.01", "st": 3, "imsi": "5101", "iccid": "8962", "opr": "Telkomsel", "sig": 19},
                   {"port": "2.02", "st": 3, "imsi": "5102", "iccid": "8963", "opr": "Indosat", "sig": 27},
                   {"port": "9.01", "st": 0}]});
    let (status, v) = w.push("ejoin", &token, None, &st);
    assert_eq!(status, 200);
    assert_eq!(v["results"][0]["sims"], 2, "an empty port is dropped: {v}");
    let page = w.device_page();
    assert!(
        page.contains("Indosat") && page.contains("27/31"),
        "port status shown"
    );
    // A malformed push is a clear 400 and changes nothing.
    let bad = json!({"type": "recv-sms", "sms": [[0, "zz", t, "x", "", "%%%"]]});
    let (status, v) = w.push("ejoin", &token, None, &bad);
    assert_eq!(status, 400, "{v}");
    w.server.assert_books_balance();
}
