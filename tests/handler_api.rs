//! The SMS-Activate `handler_api.php` protocol (protocols.md §1): every action's success and
//! error replies, against the real binary in demo mode (simulator on, the demo customer with
//! a balance of 50.00 USD). Codes are delivered with `otpbox sms inject`; the simulator's own
//! SMS comes only when a test moves the clock past `sim_delay`.

mod common;

use common::{Response, TestServer};
use serde_json::Value;

const DEMO: &str = "demo@example.com";
const PATH: &str = "/stubs/handler_api.php";

struct Api {
    server: TestServer,
    key: String,
}

/// A demo-mode server and an API key of the demo customer.
fn demo() -> Api {
    let server = TestServer::start_with(&[
        ("OTPBOX_DEMO", "true"),
        ("OTPBOX_DEV_CLOCK", "true"),
        ("OTPBOX_SIM_DELAY", "10m"),
        ("OTPBOX_EARLY_CANCEL", "60s"),
    ]);
    let key = server.api_key(DEMO);
    Api { server, key }
}

impl Api {
    fn get(&self, query: &str) -> Response {
        self.server.client().get(&format!("{PATH}?{query}"))
    }

    /// `action` with the demo key and `params`: the text body of an HTTP 200.
    fn call(&self, action: &str, params: &str) -> String {
        self.call_as(&self.key, action, params)
    }

    fn call_as(&self, key: &str, action: &str, params: &str) -> String {
        let r = self.get(&format!("api_key={key}&action={action}&{params}"));
        assert_eq!(r.status, 200, "{action}: {}", r.text());
        r.text()
    }

    /// A JSON reply, checking the exact Content-Type some clients compare.
    fn json(&self, action: &str, params: &str) -> Value {
        let r = self.get(&format!("api_key={}&action={action}&{params}", self.key));
        assert_eq!(r.status, 200, "{action}: {}", r.text());
        assert_eq!(
            r.header("content-type"),
            Some("application/json"),
            "{action}"
        );
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{action}: {e}: {}", r.text()))
    }

    fn balance(&self) -> String {
        self.call("getBalance", "")
    }

    /// The seeded price of a pair, in cents.
    fn price(&self, country: i64, service: &str) -> i64 {
        self.server
            .db()
            .query_row(
                "SELECT price_minor FROM prices WHERE country_id = ?1 AND service = ?2 AND operator = ''",
                rusqlite::params![country, service],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// getNumber for `service` in Indonesia: (activation id, phone).
    fn order(&self, service: &str) -> (i64, String) {
        let body = self.call("getNumber", &format!("service={service}&country=6"));
        let rest = body
            .strip_prefix("ACCESS_NUMBER:")
            .unwrap_or_else(|| panic!("getNumber: {body}"));
        let (id, phone) = rest.split_once(':').unwrap();
        (id.parse().unwrap(), phone.to_string())
    }

    /// Delivers an SMS to `phone` through `otpbox sms inject`.
    fn sms(&self, phone: &str, text: &str) {
        let out = self.server.cli_ok(&[
            "sms", "inject", "--to", phone, "--from", "Telegram", "--text", text,
        ]);
        assert!(out.starts_with("delivered"), "{out}");
    }
}

/// `ACCESS_BALANCE:` text for an amount in cents.
fn balance_text(cents: i64) -> String {
    format!("ACCESS_BALANCE:{}.{:02}", cents / 100, cents % 100)
}

#[test]
fn balance_always_has_a_decimal_point_and_params_come_from_query_or_form() {
    let api = demo();
    let r = api.get(&format!("api_key={}&action=getBalance", api.key));
    assert_eq!(r.text(), "ACCESS_BALANCE:50.00");
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert_eq!(
        api.call("getBalanceAndCashBack", "ref=572438&ref_id=tysik"),
        "ACCESS_BALANCE:50.00"
    );
    // aiosmsactivate: POST, every parameter in the query string, empty body.
    let r = api.server.client().post(
        &format!("{PATH}?api_key={}&action=getBalance", api.key),
        b"",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "ACCESS_BALANCE:50.00"));
    // Other POST clients: a form body.
    let r = api.server.client().post_form(
        PATH,
        &[("api_key", api.key.as_str()), ("action", "getBalance")],
    );
    assert_eq!((r.status, r.text().as_str()), (200, "ACCESS_BALANCE:50.00"));
}

#[test]
fn missing_or_wrong_keys_and_unknown_actions_are_tokens_with_status_200() {
    let api = demo();
    for (query, token) in [
        ("action=getBalance", "NO_KEY"),
        ("action=getBalance&api_key=", "NO_KEY"),
        ("action=getBalance&api_key=otp_0000", "BAD_KEY"),
        ("action=getNumber&service=tg&api_key=nope", "BAD_KEY"),
        ("action=doSomething", "BAD_ACTION"),
        ("", "BAD_ACTION"),
    ] {
        let r = api.get(query);
        assert_eq!((r.status, r.text().as_str()), (200, token), "{query}");
    }
    assert_eq!(
        api.call("getIncomingCallStatus", "activationId=1"),
        "BAD_ACTION"
    );
}

#[test]
fn a_suspended_account_is_banned_until_reactivated() {
    let api = demo();
    let (mut admin, _) = api.server.signed_in("admin@example.com", "admin");
    let demo_id = api.server.user_id(DEMO).unwrap();
    let page = format!("/admin/users/{demo_id}");
    let r = admin.submit(&page, &format!("{page}/state"), &[("state", "suspended")]);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(api.balance(), "BANNED:'9999-12-31 23-59-59'");
    assert_eq!(
        api.call("getNumber", "service=tg&country=6"),
        "BANNED:'9999-12-31 23-59-59'"
    );
    let r = admin.submit(&page, &format!("{page}/state"), &[("state", "active")]);
    assert_eq!(r.status, 303);
    assert_eq!(api.balance(), "ACCESS_BALANCE:50.00");
}

#[test]
fn catalogue_actions_work_without_a_key() {
    let api = demo();
    let r = api.get("action=getCountries");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let countries: Value = serde_json::from_slice(&r.body).unwrap();
    let indonesia = &countries["6"];
    assert_eq!(indonesia["id"], 6);
    assert_eq!(indonesia["eng"], "Indonesia");
    assert_eq!(indonesia["visible"], 1);
    assert_eq!(countries["187"]["id"], 187);

    let services: Value = serde_json::from_slice(&api.get("action=getServicesList").body).unwrap();
    assert_eq!(services["status"], "success");
    let list = services["services"].as_array().unwrap();
    assert!(list
        .iter()
        .any(|s| s["code"] == "tg" && s["name"] == "Telegram"));
    let in_country: Value =
        serde_json::from_slice(&api.get("action=getServicesList&country=6&lang=en").body).unwrap();
    assert_eq!(in_country["services"].as_array().unwrap().len(), list.len());
    assert_eq!(
        api.get("action=getServicesList&country=9999").text(),
        "BAD_COUNTRY"
    );

    let ops: Value =
        serde_json::from_slice(&api.get("action=getOperators&country=6").body).unwrap();
    assert_eq!(ops["status"], "success");
    let indo = ops["countryOperators"]["6"].as_array().unwrap();
    assert!(indo.contains(&Value::from("telkomsel")));
    assert!(!indo.contains(&Value::from("any")));
    let all: Value = serde_json::from_slice(&api.get("action=getOperators").body).unwrap();
    assert!(all["countryOperators"]["0"]
        .as_array()
        .unwrap()
        .contains(&Value::from("mts")));
    assert_eq!(
        api.get("action=getOperators&country=9999").text(),
        "OPERATORS_NOT_FOUND"
    );
}

#[test]
fn prices_stock_and_top_countries_in_major_units() {
    let api = demo();
    let cents = api.price(6, "tg");
    let prices = api.json("getPrices", "country=6&service=tg");
    let tg = &prices["6"]["tg"];
    assert_eq!(tg["cost"].as_f64().unwrap(), cents as f64 / 100.0);
    assert!(tg["count"].as_i64().unwrap() > 0, "the simulator has stock");
    assert_eq!(tg["physicalCount"], tg["count"]);
    assert_eq!(prices.as_object().unwrap().len(), 1);
    let all = api.json("getPrices", "");
    assert!(all["187"]["wa"]["cost"].is_number());
    assert_eq!(api.call("getPrices", "service=zz"), "BAD_SERVICE");
    assert_eq!(api.call("getPrices", "country=9999"), "BAD_COUNTRY");

    let status = api.json("getNumbersStatus", "country=6&operator=telkomsel");
    assert!(status["tg_0"].as_i64().unwrap() > 0);
    assert_eq!(api.call("getNumbersStatus", "country=x"), "BAD_COUNTRY");

    let top = api.json("getTopCountriesByService", "service=tg&freePrice=true");
    let first = &top["0"];
    assert!(first["country"].is_i64());
    assert!(first["count"].as_i64().unwrap() > 0);
    assert!(first["price"].is_number() && first["retail_price"].is_number());
    assert!(first["freePriceMap"].is_object());
    let counts: Vec<i64> = (0..top.as_object().unwrap().len())
        .map(|i| top[i.to_string()]["count"].as_i64().unwrap())
        .collect();
    assert!(
        counts.windows(2).all(|w| w[0] >= w[1]),
        "ranked: {counts:?}"
    );
    assert!(api.json("getTopCountriesByService", "service=tg")["0"]
        .get("freePriceMap")
        .is_none());
    assert_eq!(api.call("getTopCountriesByService", ""), "BAD_SERVICE");
}

#[test]
fn order_code_retry_and_finish() {
    let api = demo();
    let cents = api.price(6, "tg");
    let (id, phone) = api.order("tg");
    assert!(phone.starts_with("62") && phone.chars().all(|c| c.is_ascii_digit()));
    assert_eq!(api.balance(), balance_text(5000 - cents));
    let q = format!("id={id}");
    assert_eq!(api.call("getStatus", &q), "STATUS_WAIT_CODE");
    assert_eq!(api.call("getFullSms", &q), "STATUS_WAIT_CODE");
    let v2 = api.json("getStatusV2", &q);
    assert!(v2["sms"].is_null() && v2["call"].is_null(), "{v2}");
    assert_eq!(
        api.call("setStatus", &format!("{q}&status=1")),
        "ACCESS_READY"
    );

    api.sms(&phone, "Telegram code: 12345");
    assert_eq!(api.call("getStatus", &q), "STATUS_OK:12345");
    assert_eq!(api.call("getFullSms", &q), "FULL_SMS:Telegram code: 12345");
    let v2 = api.json("getStatusV2", &q);
    assert_eq!(v2["verificationType"], 1);
    assert_eq!(v2["sms"]["code"], "12345");
    assert_eq!(v2["sms"]["text"], "Telegram code: 12345");
    let date = v2["sms"]["dateTime"].as_str().unwrap();
    assert_eq!(date.len(), 19, "{date}");
    assert_eq!(&date[10..11], " ");

    assert_eq!(
        api.call("setStatus", &format!("{q}&status=3")),
        "ACCESS_RETRY_GET"
    );
    assert_eq!(api.call("getStatus", &q), "STATUS_WAIT_RETRY:12345");
    api.sms(&phone, "Telegram code: 67890");
    assert_eq!(api.call("getStatus", &q), "STATUS_OK:67890");
    // A code arrived: no cancel any more, only finish.
    assert_eq!(
        api.call("setStatus", &format!("{q}&status=8")),
        "BAD_STATUS"
    );
    assert_eq!(
        api.call("setStatus", &format!("{q}&status=6")),
        "ACCESS_ACTIVATION"
    );
    assert_eq!(
        api.call("setStatus", &format!("{q}&status=6")),
        "ACCESS_ACTIVATION"
    );
    assert_eq!(api.call("getStatus", &q), "STATUS_OK:67890");
    assert_eq!(api.balance(), balance_text(5000 - cents));
}

#[test]
fn get_number_v2_has_the_exact_field_types_and_order_id_is_idempotent() {
    let api = demo();
    let cents = api.price(6, "wa");
    let a = api.json("getNumberV2", "service=wa&country=6&orderId=bot-1");
    assert!(a["activationId"].is_i64(), "{a}");
    assert!(a["phoneNumber"].as_str().unwrap().starts_with("62"));
    assert_eq!(a["activationCost"].as_f64().unwrap(), cents as f64 / 100.0);
    assert_eq!(a["currency"], 840);
    assert_eq!(a["countryCode"], "6");
    assert_eq!(a["canGetAnotherSms"], "1");
    assert_eq!(a["activationOperator"], "any");
    let t = a["activationTime"].as_str().unwrap();
    assert!(
        t.len() == 19 && &t[4..5] == "-" && &t[10..11] == " " && &t[13..14] == ":",
        "{t}"
    );
    assert_eq!(
        api.call("getNumberV2", "service=wa&country=6&orderId=bot-1"),
        "ORDER_ALREADY_EXISTS"
    );
    assert_eq!(api.balance(), balance_text(5000 - cents));
    let b = api.json(
        "getNumberV2",
        "service=tg&country=6&operator=xl,telkomsel&orderId=bot-2",
    );
    assert_eq!(b["activationOperator"], "xl");
}

#[test]
fn cancel_is_refused_inside_the_window_then_refunds_once() {
    let api = demo();
    let (id, _) = api.order("tg");
    let q = format!("id={id}");
    assert_eq!(
        api.call("setStatus", &format!("{q}&status=8")),
        "EARLY_CANCEL_DENIED"
    );
    assert_eq!(
        api.call("setStatus", &format!("{q}&status=-1")),
        "EARLY_CANCEL_DENIED"
    );
    api.server.advance_clock(61);
    assert_eq!(
        api.call("setStatus", &format!("{q}&status=-1")),
        "ACCESS_CANCEL"
    );
    assert_eq!(api.balance(), "ACCESS_BALANCE:50.00");
    assert_eq!(api.call("getStatus", &q), "STATUS_CANCEL");
    assert_eq!(api.call("getStatusV2", &q), "STATUS_CANCEL");
    assert_eq!(api.call("getFullSms", &q), "STATUS_CANCEL");
    // Repeating the cancel answers the same and refunds nothing more.
    assert_eq!(
        api.call("setStatus", &format!("{q}&status=8")),
        "ACCESS_CANCEL"
    );
    assert_eq!(api.balance(), "ACCESS_BALANCE:50.00");
    assert_eq!(
        api.call("setStatus", &format!("{q}&status=6")),
        "BAD_STATUS"
    );
    assert_eq!(
        api.call("setStatus", &format!("{q}&status=1")),
        "BAD_STATUS"
    );
}

#[test]
fn number_used_cancels_and_keeps_the_number_from_the_service() {
    let api = demo();
    let (id, phone) = api.order("tg");
    api.server.advance_clock(61);
    assert_eq!(
        api.call("setStatus", &format!("id={id}&status=8")),
        "ACCESS_CANCEL"
    );
    let blocked: i64 = api.server.count(&format!(
        "SELECT COUNT(*) FROM number_usage u JOIN numbers n ON n.id = u.number_id \
         WHERE n.phone = '{phone}' AND u.service = 'tg' AND u.blocked = 1"
    ));
    assert_eq!(blocked, 1);
}

#[test]
fn set_status_and_reads_refuse_what_does_not_fit() {
    let api = demo();
    let (id, _) = api.order("tg");
    let q = format!("id={id}");
    assert_eq!(
        api.call("setStatus", &format!("{q}&status=5")),
        "BAD_STATUS"
    );
    assert_eq!(
        api.call("setStatus", &format!("{q}&status=2")),
        "BAD_STATUS"
    );
    assert_eq!(api.call("setStatus", &q), "BAD_STATUS");
    // Another code can only be asked for after the first; finishing needs a code.
    assert_eq!(
        api.call("setStatus", &format!("{q}&status=3")),
        "BAD_STATUS"
    );
    assert_eq!(
        api.call("setStatus", &format!("{q}&status=6")),
        "BAD_STATUS"
    );
    for action in ["getStatus", "getStatusV2", "getFullSms"] {
        assert_eq!(api.call(action, "id=999999"), "NO_ACTIVATION", "{action}");
        assert_eq!(api.call(action, "id=abc"), "NO_ACTIVATION", "{action}");
        assert_eq!(api.call(action, ""), "NO_ACTIVATION", "{action}");
    }
    assert_eq!(api.call("setStatus", "id=999999&status=8"), "NO_ACTIVATION");
    // Someone else's activation does not exist for this key.
    api.server
        .create_user("other@example.com", "user", common::PASSWORD);
    let other = api.server.api_key("other@example.com");
    assert_eq!(api.call_as(&other, "getStatus", &q), "NO_ACTIVATION");
    assert_eq!(
        api.call_as(&other, "setStatus", &format!("{q}&status=8")),
        "NO_ACTIVATION"
    );
    assert_eq!(api.call("getStatus", &q), "STATUS_WAIT_CODE");
}

#[test]
fn refused_orders_are_tokens_and_charge_nothing() {
    let api = demo();
    let cents = api.price(6, "tg");
    for (params, token) in [
        ("country=6", "BAD_SERVICE".to_string()),
        ("service=zz&country=6", "BAD_SERVICE".to_string()),
        ("service=tg&country=9999", "BAD_COUNTRY".to_string()),
        ("service=tg&country=six", "BAD_COUNTRY".to_string()),
        (
            "service=tg&country=6&operator=nosuchop",
            "WRONG_OPERATOR".to_string(),
        ),
        (
            "service=tg&country=6&maxPrice=0.01",
            format!("WRONG_MAX_PRICE:{}.{:02}", cents / 100, cents % 100),
        ),
        ("service=tg&country=6&maxPrice=abc", "ERROR_SQL".to_string()),
        (
            "service=tg&country=6&phoneException=62a",
            "WRONG_EXCEPTION_PHONE".to_string(),
        ),
        // Every number the simulator could make starts with 62.
        (
            "service=tg&country=6&phoneException=62",
            "NO_NUMBERS".to_string(),
        ),
    ] {
        assert_eq!(api.call("getNumber", params), token, "{params}");
        assert_eq!(api.call("getNumberV2", params), token, "V2 {params}");
    }
    assert_eq!(api.balance(), "ACCESS_BALANCE:50.00");
    // A ceiling with more decimals than the currency is rounded down, never up.
    let ceiling = format!("{}.{:02}9", cents / 100, cents % 100);
    let body = api.call(
        "getNumber",
        &format!("service=tg&country=6&maxPrice={ceiling}"),
    );
    assert!(body.starts_with("ACCESS_NUMBER:"), "{body}");

    api.server
        .create_user("broke@example.com", "user", common::PASSWORD);
    let broke = api.server.api_key("broke@example.com");
    assert_eq!(api.call_as(&broke, "getBalance", ""), "ACCESS_BALANCE:0.00");
    assert_eq!(
        api.call_as(&broke, "getNumber", "service=tg&country=6"),
        "NO_BALANCE"
    );
    assert_eq!(
        api.call_as(&broke, "getNumberV2", "service=tg&country=6"),
        "NO_BALANCE"
    );
}

#[test]
fn without_the_simulator_an_empty_stock_is_no_numbers() {
    let server = TestServer::start();
    server.create_user("buyer@example.com", "user", common::PASSWORD);
    server.cli_ok(&[
        "user",
        "credit",
        "--email",
        "buyer@example.com",
        "--amount",
        "10",
    ]);
    let key = server.api_key("buyer@example.com");
    let get = |q: &str| {
        server
            .client()
            .get(&format!("{PATH}?api_key={key}&{q}"))
            .text()
    };
    assert_eq!(get("action=getBalance"), "ACCESS_BALANCE:10.00");
    assert_eq!(get("action=getNumber&service=tg&country=6"), "NO_NUMBERS");
    assert_eq!(get("action=getNumberV2&service=tg&country=6"), "NO_NUMBERS");
    let prices: Value =
        serde_json::from_str(&get("action=getPrices&country=6&service=tg")).unwrap();
    assert_eq!(prices["6"]["tg"]["count"], 0);
    assert_eq!(get("action=getBalance"), "ACCESS_BALANCE:10.00");
}

#[test]
fn the_simulator_delivers_a_code_once_its_delay_passed() {
    let api = demo();
    let (id, _) = api.order("tg");
    let q = format!("id={id}");
    assert_eq!(api.call("getStatus", &q), "STATUS_WAIT_CODE");
    api.server.advance_clock(600);
    api.server.run_jobs();
    let status = api.call("getStatus", &q);
    let code = status
        .strip_prefix("STATUS_OK:")
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        code.len() >= 4 && code.chars().all(|c| c.is_ascii_digit()),
        "{code}"
    );
}

#[test]
fn active_activations_and_history() {
    let api = demo();
    assert_eq!(
        api.json("getActiveActivations", ""),
        serde_json::json!({"status": "error", "error": "NO_ACTIVATIONS"})
    );
    assert_eq!(api.json("getHistory", ""), serde_json::json!([]));
    let (first, phone) = api.order("tg");
    let (second, _) = api.order("wa");
    api.sms(&phone, "Telegram code: 24680");
    let active = api.json("getActiveActivations", "start=0&limit=10");
    assert_eq!(active["status"], "success");
    let list = active["activeActivations"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let tg = list
        .iter()
        .find(|a| a["activationId"].as_str() == Some(first.to_string().as_str()))
        .unwrap();
    assert_eq!(tg["serviceCode"], "tg");
    assert_eq!(tg["phoneNumber"], phone);
    assert_eq!(tg["smsCode"], "24680");
    assert_eq!(tg["countryCode"], "6");
    assert_eq!(tg["countryName"], "Indonesia");
    assert_eq!(tg["currency"], 840);
    assert!(tg["activationCost"].is_number());
    let wa = list
        .iter()
        .find(|a| a["activationId"].as_str() == Some(second.to_string().as_str()))
        .unwrap();
    assert!(wa["smsCode"].is_null());
    assert_eq!(wa["activationStatus"], "4");
    let one = api.json("getActiveActivations", "start=1&limit=1");
    assert_eq!(one["activeActivations"].as_array().unwrap().len(), 1);

    api.call("setStatus", &format!("id={first}&status=6"));
    let active = api.json("getActiveActivations", "");
    assert_eq!(active["activeActivations"].as_array().unwrap().len(), 1);

    let history = api.json("getHistory", "");
    let rows = history.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], second.to_string(), "newest first");
    assert_eq!(rows[1]["status"], "6");
    assert_eq!(rows[1]["sms"], "Telegram code: 24680");
    assert_eq!(rows[1]["phone"], phone);
    assert_eq!(rows[1]["currency"], 840);
    assert_eq!(
        api.json("getHistory", "size=1").as_array().unwrap().len(),
        1
    );
    assert_eq!(
        api.json("getHistory", "offset=1&limit=5")
            .as_array()
            .unwrap()[0]["id"],
        first.to_string()
    );
    assert_eq!(api.json("getHistory", "end=1000"), serde_json::json!([]));
}

#[test]
fn rent_a_number_read_its_sms_extend_and_finish() {
    let api = demo();
    let hour: i64 = api
        .server
        .db()
        .query_row(
            "SELECT rent_hour_minor FROM prices WHERE country_id = 6 AND service = 'tg' AND operator = ''",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let offer = api.json("getRentServicesAndCountries", "country=6&rent_time=8");
    assert_eq!(
        offer["services"]["tg"]["cost"].as_f64().unwrap(),
        (hour * 8) as f64 / 100.0
    );
    assert!(offer["services"]["tg"]["quant"].as_i64().unwrap() > 0);
    assert_eq!(offer["operators"]["0"], "any");
    assert!(offer["countries"]
        .as_object()
        .unwrap()
        .values()
        .any(|c| c == 6));
    assert_eq!(
        api.json("getRentServicesAndCountries", "country=6&time=2"),
        serde_json::json!({"status": "error", "message": "INVALID_TIME"})
    );

    assert_eq!(
        api.json("getRentList", ""),
        serde_json::json!({"status": "error", "message": "NO_NUMBERS"})
    );
    // aiosmsactivate sends the length as "time " (with a space) and the url as "url ".
    let rented = api.json(
        "getRentNumber",
        "service=tg&country=6&time%20=4&url%20=https%3A%2F%2Fbot.example%2Fhook",
    );
    assert_eq!(rented["status"], "success", "{rented}");
    let id = rented["phone"]["id"].as_i64().unwrap();
    let phone = rented["phone"]["number"].as_str().unwrap().to_string();
    let end = rented["phone"]["endDate"].as_str().unwrap().to_string();
    assert_eq!((end.len(), &end[10..11]), (19, "T"));
    assert_eq!(api.balance(), balance_text(5000 - hour * 4));
    let (hours, url): (i64, String) = api
        .server
        .db()
        .query_row(
            "SELECT hours, webhook_url FROM rentals WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((hours, url.as_str()), (4, "https://bot.example/hook"));

    let q = format!("id={id}");
    assert_eq!(
        api.json("getRentStatus", &q),
        serde_json::json!({"status": "error", "message": "STATUS_WAIT_CODE"})
    );
    api.sms(&phone, "Telegram code: 11111");
    api.sms(&phone, "Telegram code: 22222");
    let status = api.json("getRentStatus", &q);
    assert_eq!(status["status"], "success");
    assert_eq!(status["quantity"], "2");
    assert_eq!(status["values"]["0"]["text"], "Telegram code: 22222");
    assert_eq!(status["values"]["1"]["phoneFrom"], "Telegram");
    assert_eq!(status["values"]["0"]["service"], "tg");
    let page = api.json("getRentStatus", &format!("{q}&page=1&size=1"));
    assert_eq!(page["values"]["0"]["text"], "Telegram code: 11111");

    let list = api.json("getRentList", "");
    assert_eq!(list["values"]["0"]["id"], id.to_string());
    assert_eq!(list["values"]["0"]["phone"], phone);

    let price = api.json("getContinueRentPriceNumber", &format!("{q}&rent_time=10"));
    assert_eq!(price["price"].as_f64().unwrap(), (hour * 10) as f64 / 100.0);
    let extended = api.json("continueRentNumber", &format!("{q}&rent_time=4"));
    assert_eq!(extended["status"], "success");
    assert!(extended["phone"]["endDate"].as_str().unwrap() > end.as_str());
    assert_eq!(api.balance(), balance_text(5000 - hour * 8));
    assert_eq!(
        api.json("continueRentNumber", &format!("{q}&rent_time=0")),
        serde_json::json!({"status": "error", "message": "INVALID_TIME"})
    );

    // An SMS arrived, so no cancel with refund; finishing is fine.
    assert_eq!(
        api.json("setRentStatus", &format!("{q}&status=2")),
        serde_json::json!({"status": "error", "message": "CANT_CANCEL"})
    );
    assert_eq!(
        api.json("setRentStatus", &format!("{q}&status=7")),
        serde_json::json!({"status": "error", "message": "INCORECT_STATUS"})
    );
    assert_eq!(
        api.json("setRentStatus", &format!("{q}&status=1")),
        serde_json::json!({"status": "success"})
    );
    assert_eq!(
        api.json("setRentStatus", &format!("{q}&status=1")),
        serde_json::json!({"status": "error", "message": "ALREADY_FINISH"})
    );
    assert_eq!(
        api.json("getRentStatus", &q),
        serde_json::json!({"status": "error", "message": "STATUS_FINISH"})
    );
    assert_eq!(
        api.json("continueRentNumber", &q),
        serde_json::json!({"status": "error", "message": "RENT_DIE"})
    );
    assert_eq!(api.balance(), balance_text(5000 - hour * 8));
}

#[test]
fn rent_cancel_refunds_and_rent_errors_are_json_tokens() {
    let api = demo();
    for (params, token) in [
        ("country=6", "BAD_SERVICE"),
        ("service=zz&country=6", "BAD_SERVICE"),
        ("service=tg&country=9999", "BAD_COUNTRY"),
        ("service=tg&country=6&rent_time=3", "INVALID_TIME"),
        ("service=tg&country=6&rent_time=1345", "INVALID_TIME"),
        ("service=tg&country=6&duration=abc", "INVALID_TIME"),
        ("service=tg&country=6&url=ftp://x", "ERROR_SQL"),
    ] {
        assert_eq!(
            api.json("getRentNumber", params),
            serde_json::json!({"status": "error", "message": token}),
            "{params}"
        );
    }
    assert_eq!(api.balance(), "ACCESS_BALANCE:50.00");
    // herosms names the length `duration`, in minutes (here 12 hours), and reads the answer
    // as an activation.
    let rented = api.json("getRentNumber", "service=wa&country=6&duration=720");
    let id = rented["phone"]["id"].as_i64().unwrap();
    assert_eq!(rented["activationId"], id);
    assert_eq!(rented["currency"], 840);
    assert!(rented["phoneNumber"].is_string() && rented["countryCode"] == "6");
    let hours: i64 = api
        .server
        .count(&format!("SELECT hours FROM rentals WHERE id = {id}"));
    assert_eq!(hours, 12);
    // aiosmsactivate's set_rent_status sends action=getRentStatus with a status.
    assert_eq!(
        api.json("getRentStatus", &format!("id={id}&status=2")),
        serde_json::json!({"status": "success"})
    );
    assert_eq!(api.balance(), "ACCESS_BALANCE:50.00");
    assert_eq!(
        api.json("setRentStatus", &format!("id={id}&status=2")),
        serde_json::json!({"status": "error", "message": "ALREADY_CANCEL"})
    );
    assert_eq!(
        api.json("getRentStatus", &format!("id={id}")),
        serde_json::json!({"status": "error", "message": "STATUS_CANCEL"})
    );
    for action in ["getRentStatus", "setRentStatus", "continueRentNumber"] {
        assert_eq!(
            api.json(action, "status=1"),
            serde_json::json!({"status": "error", "message": "NO_ID_RENT"}),
            "{action}"
        );
        assert_eq!(
            api.json(action, "id=999999&status=1"),
            serde_json::json!({"status": "error", "message": "INVALID_PHONE"}),
            "{action}"
        );
    }
    // After the 20-minute window a rental cannot be cancelled.
    let rented = api.json("getRentNumber", "service=tg&country=6&rent_time=4");
    let id = rented["phone"]["id"].as_i64().unwrap();
    api.server.advance_clock(21 * 60);
    assert_eq!(
        api.json("setRentStatus", &format!("id={id}&status=2")),
        serde_json::json!({"status": "error", "message": "CANT_CANCEL"})
    );
}

/// A rental's webhook URL is checked at registration like every customer URL: a loopback
/// or private address is refused and nothing is rented or charged, on handler_api and on
/// the native API alike.
#[test]
fn a_rental_webhook_to_an_internal_address_is_refused_at_registration() {
    let api = demo();
    let before = api.balance();
    for url in [
        "http%3A%2F%2F127.0.0.1%3A9%2Fhook",
        "http%3A%2F%2Flocalhost%2Fhook",
        "http%3A%2F%2F10.0.0.7%2Fhook",
    ] {
        let r = api.json(
            "getRentNumber",
            &format!("service=tg&country=6&time=4&url={url}"),
        );
        assert_eq!(r["status"], "error", "{url}: {r}");
    }
    assert_eq!(api.balance(), before);
    let mut native = api.server.client();
    native.always_send("Authorization", &format!("Bearer {}", api.key));
    let r = native.post_json(
        "/api/v1/rentals",
        &serde_json::json!({"country": 6, "service": "tg", "hours": 4,
                            "webhook_url": "http://127.0.0.1:9/hook"}),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "invalid_request");
    assert_eq!(api.balance(), before);
    assert_eq!(api.server.count("SELECT COUNT(*) FROM rentals"), 0);
    // A public URL is still taken.
    let ok = api.json(
        "getRentNumber",
        "service=tg&country=6&time=4&url=https%3A%2F%2Fbot.example%2Fhook",
    );
    assert_eq!(ok["status"], "success", "{ok}");
}

#[test]
fn one_number_serves_several_services_and_each_sms_reaches_its_own() {
    let api = demo();
    let countries = api.json("getCountries", "");
    assert_eq!(countries["6"]["multiService"], 1, "advertised");
    let before = api
        .server
        .count("SELECT balance_minor FROM users WHERE email = 'demo@example.com'");
    let list = api.json(
        "getMultiServiceNumber",
        "multiService=tg,wa&multiForward=0,0&country=6",
    );
    let list = list.as_array().expect("an array");
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["service"], "tg");
    assert_eq!(list[1]["service"], "wa");
    assert!(
        list[0]["activation"].is_string(),
        "ids as strings: {list:?}"
    );
    let phone = list[0]["phone"].as_str().unwrap().to_string();
    assert_eq!(list[1]["phone"], phone.as_str(), "one number");
    let id = |i: usize| list[i]["activation"].as_str().unwrap().to_string();
    let charged = api.price(6, "tg") + api.price(6, "wa");
    let after = api
        .server
        .count("SELECT balance_minor FROM users WHERE email = 'demo@example.com'");
    assert_eq!(before - after, charged, "each service charged its price");

    // Each SMS goes to the activation of the service it names.
    let inject = |from: &str, text: &str| {
        api.server.cli_ok(&[
            "sms", "inject", "--to", &phone, "--from", from, "--text", text,
        ])
    };
    inject("WhatsApp", "Your WhatsApp code: 222-333");
    assert_eq!(
        api.call("getStatus", &format!("id={}", id(0))),
        "STATUS_WAIT_CODE"
    );
    assert_eq!(
        api.call("getStatus", &format!("id={}", id(1))),
        "STATUS_OK:222333"
    );
    inject("Telegram", "Telegram code: 55123");
    assert_eq!(
        api.call("getStatus", &format!("id={}", id(0))),
        "STATUS_OK:55123"
    );

    // The number stays busy until both are done.
    let busy = || {
        api.server.count(&format!(
            "SELECT COUNT(*) FROM numbers WHERE phone = '{phone}' AND state = 'busy'"
        ))
    };
    assert_eq!(
        api.call("setStatus", &format!("id={}&status=6", id(1))),
        "ACCESS_ACTIVATION"
    );
    assert_eq!(busy(), 1, "still held by the Telegram activation");
    assert_eq!(
        api.call("setStatus", &format!("id={}&status=6", id(0))),
        "ACCESS_ACTIVATION"
    );
    assert_eq!(busy(), 0, "free once both ended");

    // Refusals: a forwarded number, a service twice, an unknown service; nothing charged.
    let balance = api.balance();
    assert_eq!(
        api.call(
            "getMultiServiceNumber",
            "multiService=tg,wa&multiForward=1,0&country=6"
        ),
        "NOT_AVAILABLE"
    );
    let twice = api.call("getMultiServiceNumber", "multiService=tg,tg&country=6");
    assert!(
        !twice.starts_with('['),
        "a service twice is refused: {twice}"
    );
    assert_eq!(
        api.call("getMultiServiceNumber", "multiService=&country=6"),
        "BAD_SERVICE"
    );
    assert_eq!(
        api.call("getMultiServiceNumber", "multiService=tg,nosuch&country=6"),
        "BAD_SERVICE"
    );
    assert_eq!(
        api.balance(),
        balance,
        "a refused multi-service order charges nothing"
    );
}
