//! The admin API under `/api/v1/admin`: administrators only (a customer or an operator gets
//! a 403 JSON error and changes nothing), every change audited exactly like the same action
//! on the admin pages, credit moving the ledger exactly, vouchers redeemable once.

mod common;

use serde_json::{json, Value};

use common::{Client, Response, TestServer, PASSWORD};

/// A caller of the JSON API with a Bearer key.
struct Api {
    client: Client,
}

impl Api {
    /// A new account of `role` with an API key.
    fn new(s: &TestServer, email: &str, role: &str) -> (Api, i64) {
        let id = s.create_user(email, role, PASSWORD);
        let key = s.api_key(email);
        let mut client = s.client();
        client.always_send("Authorization", &format!("Bearer {key}"));
        (Api { client }, id)
    }

    fn get(&mut self, path: &str) -> (u16, Value) {
        answer(self.client.get(path))
    }

    fn post(&mut self, path: &str, body: Value) -> (u16, Value) {
        answer(self.client.request(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        ))
    }
}

fn answer(r: Response) -> (u16, Value) {
    let v = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {}", r.status, r.text()));
    (r.status, v)
}

/// The audit rows of admins' actions (`otpbox user create` writes its own, without actor).
fn audit(s: &TestServer) -> Vec<(String, Option<i64>, Option<i64>, String)> {
    let db = s.db();
    let mut st = db
        .prepare(
            "SELECT action, actor_id, target_id, detail FROM audit_log \
             WHERE actor_id IS NOT NULL ORDER BY id",
        )
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn balance(s: &TestServer, id: i64) -> i64 {
    s.db()
        .query_row("SELECT balance_minor FROM users WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap()
}

/// Every admin route with a plausible body.
fn admin_calls(target: i64) -> Vec<(&'static str, String, Value)> {
    vec![
        ("GET", "/api/v1/admin/users".into(), json!(null)),
        ("GET", format!("/api/v1/admin/users/{target}"), json!(null)),
        (
            "POST",
            format!("/api/v1/admin/users/{target}/role"),
            json!({"role": "admin"}),
        ),
        (
            "POST",
            format!("/api/v1/admin/users/{target}/state"),
            json!({"state": "suspended"}),
        ),
        (
            "POST",
            format!("/api/v1/admin/users/{target}/credit"),
            json!({"amount_minor": 100_000}),
        ),
        ("GET", "/api/v1/admin/vouchers".into(), json!(null)),
        (
            "POST",
            "/api/v1/admin/vouchers".into(),
            json!({"amount_minor": 500, "count": 1, "valid_days": 1}),
        ),
        ("GET", "/api/v1/admin/prices".into(), json!(null)),
        (
            "POST",
            "/api/v1/admin/prices".into(),
            json!({"country": 6, "service": "tg", "price_minor": 1, "rent_hour_minor": 1}),
        ),
        (
            "POST",
            "/api/v1/admin/catalogue/countries/6".into(),
            json!({"enabled": false}),
        ),
        (
            "POST",
            "/api/v1/admin/catalogue/services/tg".into(),
            json!({"enabled": false}),
        ),
    ]
}

#[test]
fn customers_and_operators_are_refused_and_change_nothing() {
    let s = TestServer::start();
    let (_, _) = Api::new(&s, "root@example.com", "admin");
    for (email, role) in [
        ("ann@example.com", "user"),
        ("olga@example.com", "operator"),
    ] {
        let (mut api, id) = Api::new(&s, email, role);
        for (method, path, body) in admin_calls(id) {
            let (status, v) = if method == "GET" {
                api.get(&path)
            } else {
                api.post(&path, body)
            };
            assert_eq!(status, 403, "{role}: {method} {path}: {v}");
            assert_eq!(v["error"]["code"], "forbidden", "{path}");
            assert!(v["error"]["message"].is_string());
        }
        assert_eq!(balance(&s, id), 0);
        assert_eq!(
            s.db()
                .query_row("SELECT role FROM users WHERE id = ?1", [id], |r| r
                    .get::<_, String>(0))
                .unwrap(),
            role
        );
    }
    // No credentials at all: 401.
    for (method, path, _) in admin_calls(1) {
        let r = s.client().request(method, &path, &[], b"");
        assert_eq!(r.status, 401, "{method} {path}");
    }
    assert!(audit(&s).is_empty(), "{:?}", audit(&s));
    assert_eq!(s.count("SELECT COUNT(*) FROM vouchers"), 0);
    assert_eq!(
        s.count("SELECT COUNT(*) FROM services WHERE code = 'tg' AND enabled = 1"),
        1
    );
}

#[test]
fn users_are_listed_searched_and_shown() {
    let s = TestServer::start();
    let (mut admin, root) = Api::new(&s, "root@example.com", "admin");
    let ann = s.create_user("ann@example.com", "user", PASSWORD);
    s.create_user("bob@example.org", "user", PASSWORD);

    let (st, v) = admin.get("/api/v1/admin/users");
    assert_eq!(st, 200);
    let emails: Vec<&str> = v["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        ["bob@example.org", "ann@example.com", "root@example.com"]
    );
    let (_, v) = admin.get("/api/v1/admin/users?q=example.org");
    assert_eq!(v["users"].as_array().unwrap().len(), 1);
    assert_eq!(v["users"][0]["email"], "bob@example.org");
    let (_, v) = admin.get("/api/v1/admin/users?limit=1&offset=1");
    assert_eq!(
        (v["limit"].as_i64(), v["offset"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(v["users"][0]["email"], "ann@example.com");
    assert!(v["users"][0].get("password_hash").is_none());

    let (st, v) = admin.get(&format!("/api/v1/admin/users/{ann}"));
    assert_eq!(st, 200);
    assert_eq!(v["id"], ann);
    assert_eq!(v["role"], "user");
    assert_eq!(v["state"], "active");
    assert_eq!(v["balance_minor"], 0);
    assert_eq!(v["ledger"], json!([]));
    let (st, v) = admin.get("/api/v1/admin/users/999");
    assert_eq!(st, 404);
    assert_eq!(v["error"]["code"], "not_found");
    let (_, v) = admin.get(&format!("/api/v1/admin/users/{root}"));
    assert_eq!(v["role"], "admin");
}

#[test]
fn role_and_state_changes_are_audited_like_the_admin_pages() {
    let s = TestServer::start();
    let (mut admin, root) = Api::new(&s, "root@example.com", "admin");
    let (mut ann, ann_id) = Api::new(&s, "ann@example.com", "user");

    let (st, v) = admin.post(
        &format!("/api/v1/admin/users/{ann_id}/role"),
        json!({"role": "operator"}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["role"], "operator");
    let (st, v) = admin.post(
        &format!("/api/v1/admin/users/{ann_id}/role"),
        json!({"role": "king"}),
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    // The last admin keeps the role, and cannot suspend themself.
    let (st, v) = admin.post(
        &format!("/api/v1/admin/users/{root}/role"),
        json!({"role": "user"}),
    );
    assert_eq!((st, v["error"]["code"].as_str()), (409, Some("conflict")));
    let (st, _) = admin.post(
        &format!("/api/v1/admin/users/{root}/state"),
        json!({"state": "suspended"}),
    );
    assert_eq!(st, 409);
    let (st, _) = admin.post(
        &format!("/api/v1/admin/users/{ann_id}/state"),
        json!({"state": "terminated"}),
    );
    assert_eq!(st, 400);

    // Suspending stops the account's API key at once.
    assert_eq!(ann.get("/api/v1/balance").0, 200);
    let (st, v) = admin.post(
        &format!("/api/v1/admin/users/{ann_id}/state"),
        json!({"state": "suspended", "reason": "chargeback"}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["state"].as_str(), v["state_reason"].as_str()),
        (Some("suspended"), Some("chargeback"))
    );
    let (st, v) = ann.get("/api/v1/balance");
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("account_inactive"))
    );
    let (st, _) = admin.post(
        &format!("/api/v1/admin/users/{ann_id}/state"),
        json!({"state": "active"}),
    );
    assert_eq!(st, 200);
    assert_eq!(ann.get("/api/v1/balance").0, 200);

    assert_eq!(
        audit(&s),
        vec![
            (
                "role_change".into(),
                Some(root),
                Some(ann_id),
                "user → operator".into()
            ),
            (
                "state_change".into(),
                Some(root),
                Some(ann_id),
                "active → suspended: chargeback".into()
            ),
            (
                "state_change".into(),
                Some(root),
                Some(ann_id),
                "suspended → active: ".into()
            ),
        ]
    );

    // The same change through the admin page writes the same row.
    let mut web = s.client();
    assert_eq!(
        web.login("root@example.com", PASSWORD).location(),
        Some("/dashboard")
    );
    let page = format!("/admin/users/{ann_id}");
    let r = web.submit(&page, &format!("{page}/role"), &[("role", "user")]);
    assert_eq!(r.status, 303);
    let (st, _) = admin.post(
        &format!("/api/v1/admin/users/{ann_id}/role"),
        json!({"role": "operator"}),
    );
    assert_eq!(st, 200);
    let rows = audit(&s);
    assert_eq!(
        rows[3],
        (
            "role_change".into(),
            Some(root),
            Some(ann_id),
            "operator → user".into()
        )
    );
    assert_eq!(
        rows[4],
        (
            "role_change".into(),
            Some(root),
            Some(ann_id),
            "user → operator".into()
        )
    );
    let ips: i64 = s.count("SELECT COUNT(DISTINCT ip_hash) FROM audit_log WHERE ip_hash != ''");
    assert_eq!(ips, 1, "both edges record the caller's address hash");
}

#[test]
fn credit_moves_the_ledger_exactly() {
    let s = TestServer::start();
    let (mut admin, root) = Api::new(&s, "root@example.com", "admin");
    let (mut ann, ann_id) = Api::new(&s, "ann@example.com", "user");
    let path = format!("/api/v1/admin/users/{ann_id}/credit");

    let (st, v) = admin.post(&path, json!({"amount_minor": 1250, "note": "welcome"}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["user_id"], ann_id);
    assert_eq!(v["balance_minor"], 1250);
    assert_eq!(v["balance"], "12.50");
    let e = &v["entry"];
    assert_eq!(e["amount_minor"], 1250);
    assert_eq!(e["kind"], "adjustment");
    assert_eq!(e["ref_type"], "admin");
    assert_eq!(e["ref_id"], root);
    assert_eq!(e["note"], "welcome");
    assert_eq!(e["balance_after"], 1250);

    let (st, v) = admin.post(&path, json!({"amount_minor": -250, "note": "fee"}));
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["balance_minor"], 1000);
    // Below zero, zero, junk, unknown account: refused, nothing written.
    let (st, v) = admin.post(&path, json!({"amount_minor": -1001}));
    assert_eq!((st, v["error"]["code"].as_str()), (409, Some("conflict")));
    let (st, _) = admin.post(&path, json!({"amount_minor": 0}));
    assert_eq!(st, 400);
    let (st, _) = admin.post(&path, json!({"amount_minor": "10.00"}));
    assert_eq!(st, 400);
    let (st, _) = admin.post("/api/v1/admin/users/999/credit", json!({"amount_minor": 5}));
    assert_eq!(st, 404);

    assert_eq!(balance(&s, ann_id), 1000);
    let (_, v) = ann.get("/api/v1/ledger");
    let amounts: Vec<i64> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["amount_minor"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts, [-250, 1250]);
    let (_, v) = ann.get("/api/v1/balance");
    assert_eq!(v["balance_minor"], 1000);
    let (_, v) = admin.get(&format!("/api/v1/admin/users/{ann_id}"));
    assert_eq!(v["ledger"].as_array().unwrap().len(), 2);
    assert_eq!(v["ledger"][0]["balance_after"], 1000);
    let credits: Vec<String> = audit(&s)
        .into_iter()
        .filter(|a| a.0 == "credit" && a.2 == Some(ann_id))
        .map(|a| a.3)
        .collect();
    assert_eq!(credits, ["12.50 welcome", "-2.50 fee"]);
    // The ledger sums to every balance.
    s.cli_ok(&["check"]);
}

#[test]
fn voucher_batches_are_shown_once_and_redeem_once() {
    let s = TestServer::start();
    let (mut admin, root) = Api::new(&s, "root@example.com", "admin");
    let (mut ann, ann_id) = Api::new(&s, "ann@example.com", "user");
    let (mut bob, bob_id) = Api::new(&s, "bob@example.com", "user");

    let (st, v) = admin.post(
        "/api/v1/admin/vouchers",
        json!({"amount_minor": 700, "count": 3, "valid_days": 30}),
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        (v["count"].as_i64(), v["amount_minor"].as_i64()),
        (Some(3), Some(700))
    );
    let codes: Vec<String> = v["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 3);
    let batch = v["batch"].as_str().unwrap().to_string();
    for bad in [
        json!({"amount_minor": 0, "count": 1, "valid_days": 1}),
        json!({"amount_minor": 1, "count": 0, "valid_days": 1}),
        json!({"amount_minor": 1, "count": 1001, "valid_days": 1}),
        json!({"amount_minor": 1, "count": 1, "valid_days": 0}),
        json!({"amount_minor": 1, "count": -1, "valid_days": 1}),
    ] {
        assert_eq!(
            admin.post("/api/v1/admin/vouchers", bad.clone()).0,
            400,
            "{bad}"
        );
    }

    // The codes are in that answer only.
    let (_, list) = admin.get("/api/v1/admin/vouchers");
    let text = list.to_string();
    for c in &codes {
        assert!(!text.contains(c.as_str()), "the list shows a code");
    }
    assert_eq!(list["vouchers"].as_array().unwrap().len(), 3);

    let redeem =
        |api: &mut Api, code: &str| api.post("/api/v1/vouchers/redeem", json!({"code": code}));
    let (st, v) = redeem(&mut ann, &codes[0]);
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["credited_minor"].as_i64(), v["balance_minor"].as_i64()),
        (Some(700), Some(700))
    );
    let (st, v) = redeem(&mut ann, &codes[0]);
    assert_eq!((st, v["error"]["code"].as_str()), (409, Some("conflict")));
    let (st, _) = redeem(&mut bob, &codes[0].to_lowercase());
    assert_eq!(st, 409, "once means once, for anyone");
    let (st, _) = redeem(&mut bob, &codes[1]);
    assert_eq!(st, 200);
    assert_eq!((balance(&s, ann_id), balance(&s, bob_id)), (700, 700));

    let (_, list) = admin.get("/api/v1/admin/vouchers");
    let redeemed: Vec<&str> = list["vouchers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["redeemed_by"].as_str())
        .collect();
    assert_eq!(redeemed.len(), 2);
    assert!(redeemed.contains(&"ann@example.com") && redeemed.contains(&"bob@example.com"));
    assert_eq!(
        audit(&s),
        vec![(
            "vouchers_created".into(),
            Some(root),
            None,
            format!("batch {batch}: 3 × 7.00")
        )]
    );
    s.cli_ok(&["check"]);
}

#[test]
fn prices_and_catalogue_switches_are_audited_and_take_effect() {
    let s = TestServer::start_with(&[("OTPBOX_DEMO", "true")]);
    let (mut admin, root) = Api::new(&s, "root@example.com", "admin");
    let demo_key = s.api_key("demo@example.com");
    let mut demo = Api { client: s.client() };
    demo.client
        .always_send("Authorization", &format!("Bearer {demo_key}"));

    let (st, v) = admin.post(
        "/api/v1/admin/prices",
        json!({"country": 6, "service": "tg", "price_minor": 33, "rent_hour_minor": 9}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v,
        json!({"country": 6, "service": "tg", "operator": "", "price_minor": 33,
               "rent_hour_minor": 9, "country_enabled": true, "service_enabled": true})
    );
    let (st, v) = admin.post(
        "/api/v1/admin/prices",
        json!({"country": 0, "service": "tg", "operator": "mts", "price_minor": 44, "rent_hour_minor": 11}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["operator"], "mts");
    // What does not exist is a 404 (with its code); a body outside the document a 400.
    for (bad, status) in [
        (
            json!({"country": 0, "service": "tg", "operator": "nosuch", "price_minor": 1, "rent_hour_minor": 1}),
            404,
        ),
        (
            json!({"country": 6, "service": "nosuch", "price_minor": 1, "rent_hour_minor": 1}),
            404,
        ),
        (
            json!({"country": 9999, "service": "tg", "price_minor": 1, "rent_hour_minor": 1}),
            404,
        ),
        (
            json!({"country": 6, "service": "tg", "price_minor": -1, "rent_hour_minor": 1}),
            400,
        ),
        (
            json!({"country": 6, "service": "tg", "price_minor": 1}),
            400,
        ),
    ] {
        assert_eq!(
            admin.post("/api/v1/admin/prices", bad.clone()).0,
            status,
            "{bad}"
        );
    }
    let (_, v) = admin.get("/api/v1/admin/prices?country=0&service=tg");
    let rows = v["prices"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (
            rows[1]["operator"].as_str(),
            rows[1]["price_minor"].as_i64()
        ),
        (Some("mts"), Some(44))
    );

    // A customer pays the new price.
    let (st, v) = demo.post(
        "/api/v1/activations",
        json!({"country": 6, "service": "tg"}),
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["price_minor"], 33);

    // Disabled: gone from the public catalogue, not orderable, still listed for the admin.
    let (st, v) = admin.post(
        "/api/v1/admin/catalogue/services/tg",
        json!({"enabled": false}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["code"].as_str(), v["enabled"].as_bool()),
        (Some("tg"), Some(false))
    );
    let (_, cat) = demo.get("/api/v1/catalogue?country=6");
    assert!(cat["services"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["code"] != "tg"));
    assert!(cat["offers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["service"] != "tg"));
    let (st, v) = demo.post(
        "/api/v1/activations",
        json!({"country": 6, "service": "tg"}),
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (404, Some("bad_service"))
    );
    let (_, v) = admin.get("/api/v1/admin/prices?country=6&service=tg");
    assert_eq!(v["prices"][0]["service_enabled"], false);

    let (st, v) = admin.post(
        "/api/v1/admin/catalogue/countries/6",
        json!({"enabled": false}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["id"].as_i64(), v["enabled"].as_bool()),
        (Some(6), Some(false))
    );
    let (st, v) = demo.post(
        "/api/v1/activations",
        json!({"country": 6, "service": "wa"}),
    );
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (404, Some("bad_country"))
    );
    let (st, _) = admin.post(
        "/api/v1/admin/catalogue/countries/6",
        json!({"enabled": true}),
    );
    assert_eq!(st, 200);
    let (st, _) = admin.post(
        "/api/v1/admin/catalogue/services/tg",
        json!({"enabled": true}),
    );
    assert_eq!(st, 200);
    assert_eq!(
        demo.post(
            "/api/v1/activations",
            json!({"country": 6, "service": "tg"})
        )
        .0,
        201
    );

    let (st, _) = admin.post(
        "/api/v1/admin/catalogue/services/nosuch",
        json!({"enabled": true}),
    );
    assert_eq!(st, 404);
    let (st, _) = admin.post(
        "/api/v1/admin/catalogue/countries/abc",
        json!({"enabled": true}),
    );
    assert_eq!(st, 404);

    let rows: Vec<(String, String)> = audit(&s)
        .into_iter()
        .inspect(|a| assert_eq!((a.1, a.2), (Some(root), None)))
        .map(|a| (a.0, a.3))
        .collect();
    let expect = [
        ("price_change", "6/tg: 0.33 (rent 0.09 per hour)"),
        ("price_change", "0/tg/mts: 0.44 (rent 0.11 per hour)"),
        ("catalogue_change", "services tg disabled"),
        ("catalogue_change", "countries 6 disabled"),
        ("catalogue_change", "countries 6 enabled"),
        ("catalogue_change", "services tg enabled"),
    ];
    let expect: Vec<(String, String)> = expect
        .iter()
        .map(|(a, d)| (a.to_string(), d.to_string()))
        .collect();
    assert_eq!(rows, expect);
}

#[test]
fn a_signed_in_admin_uses_the_session_with_the_csrf_header() {
    let s = TestServer::start();
    let (mut web, _) = s.signed_in("root@example.com", "admin");
    let ann = s.create_user("ann@example.com", "user", PASSWORD);
    let csrf = web.get("/dashboard").csrf();

    let r = web.get("/api/v1/admin/users");
    assert_eq!(r.status, 200, "a GET needs no token: {}", r.text());
    let path = format!("/api/v1/admin/users/{ann}/credit");
    let body = br#"{"amount_minor": 500}"#;
    let r = web.request("POST", &path, &[("Content-Type", "application/json")], body);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(answer(r).1["error"]["code"], "forbidden");
    assert_eq!(balance(&s, ann), 0);
    let r = web.request(
        "POST",
        &path,
        &[
            ("Content-Type", "application/json"),
            ("X-CSRF-Token", &csrf),
        ],
        body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(balance(&s, ann), 500);

    // A customer's session is refused like a customer's key.
    let (mut user, _) = s.signed_in("bob@example.com", "user");
    let r = user.get("/api/v1/admin/users");
    assert_eq!(r.status, 403);
    assert_eq!(answer(r).1["error"]["code"], "forbidden");
}

/// A refused form of the admin pages goes back to its page, which shows the error once and
/// what was typed into that form (not into the page's other forms); nothing changed.
#[test]
fn a_refused_credit_form_goes_back_to_the_user_page_with_the_error_and_the_typed_values() {
    let s = TestServer::start();
    let (mut admin, _) = s.signed_in("root@example.com", "admin");
    let ann = s.create_user("ann@example.com", "user", PASSWORD);
    let page = format!("/admin/users/{ann}");
    assert!(admin
        .get(&page)
        .text()
        .contains(r#"name="form" value="credit""#));
    let credit = |admin: &mut Client, amount: &str| {
        admin.submit(
            &page,
            &format!("{page}/credit"),
            &[
                ("form", "credit"),
                ("amount", amount),
                ("note", "goodwill for ticket 42"),
            ],
        )
    };
    let nothing_changed = |s: &TestServer| {
        assert_eq!(balance(s, ann), 0);
        assert_eq!(s.count("SELECT COUNT(*) FROM ledger"), 0);
        assert!(audit(s).iter().all(|r| r.0 != "credit"), "{:?}", audit(s));
    };

    // Refused before any change (not an amount) and by the domain (below zero): both times
    // back to the page, with the message once and the typed values in the credit form only.
    for (amount, message) in [
        ("twelve", "Enter a non-zero amount such as 12.50 or -3.00."),
        ("-5.00", "The balance cannot go below zero."),
    ] {
        let r = credit(&mut admin, amount);
        assert_eq!(r.status, 303, "{}", r.text());
        assert_eq!(r.location(), Some(page.as_str()));
        let back = admin.follow(&r);
        assert_eq!(back.status, 200);
        let html = back.text();
        assert_eq!(html.matches(message).count(), 1, "{html}");
        assert_eq!(html.matches(r#"role="alert""#).count(), 1, "{html}");
        let typed = format!("value=\"{amount}\"");
        assert_eq!(
            html.matches(&typed).count(),
            1,
            "only the credit form: {html}"
        );
        assert!(html.contains(r#"value="goodwill for ticket 42""#), "{html}");
        nothing_changed(&s);

        // Shown once: the next view of the page is clean.
        let again = admin.get(&page).text();
        assert!(!again.contains(message), "{again}");
        assert!(!again.contains("goodwill for ticket 42"), "{again}");
    }
    nothing_changed(&s);
}
