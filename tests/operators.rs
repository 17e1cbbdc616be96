//! Operators over HTTP: a device created on the operator's pages (its secret shown exactly
//! once), a SIM that is sold to a customer and earns the operator its share (activations and
//! rentals, default and configured share; nothing on cancel or expiry without a code), payout
//! requests paid or rejected by the admin with ledger and audit rows, who may see which page,
//! and the admin adding numbers one by one or in bulk.

mod common;

use common::market::{error_code, id_of, Api, COUNTRY};
use common::{Client, TestServer};
use serde_json::json;

/// "0.42 USD" for 42.
fn usd(minor: i64) -> String {
    format!("{}.{:02} USD", minor / 100, minor % 100)
}

/// The text between `start` and the next `end` after it.
fn between<'a>(html: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = html.find(start)? + start.len();
    let len = html[from..].find(end)?;
    Some(&html[from..from + len])
}

/// A server with the simulator off and a movable clock: numbers come only from operators'
/// SIMs and the admin, SMS only from `otpbox sms inject`.
fn server(extra: &[(&str, &str)]) -> TestServer {
    TestServer::builder()
        .env("OTPBOX_DEV_CLOCK", "1")
        .envs(extra)
        .start()
}

/// A device as its creation page showed it.
struct NewDevice {
    id: i64,
    public_id: String,
    secret: String,
    webhook_url: String,
}

/// Creates a device on `/operator/devices`; asserts 201 and reads its one-time credentials.
fn create_device(op: &mut Client, name: &str, kind: &str) -> NewDevice {
    let r = op.submit(
        "/operator/devices",
        "/operator/devices",
        &[("name", name), ("kind", kind)],
    );
    assert_eq!(r.status, 201, "create device: {}", r.text());
    let html = r.text();
    let field = |id: &str| {
        between(&html, &format!("id=\"{id}\">"), "<")
            .unwrap_or_else(|| panic!("no #{id} on:\n{html}"))
            .to_string()
    };
    let id = between(&html, "<a href=\"/operator/devices/", "\">Add its SIMs")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no link to the new device:\n{html}"));
    NewDevice {
        id,
        public_id: field("device-id"),
        secret: field("device-secret"),
        webhook_url: field("webhook-url"),
    }
}

/// Adds a SIM on the device's page; the answer.
fn add_sim(
    op: &mut Client,
    device: i64,
    slot: &str,
    phone: &str,
    country: &str,
) -> common::Response {
    let page = format!("/operator/devices/{device}");
    op.submit(
        &page,
        &format!("{page}/sims"),
        &[("slot", slot), ("phone", phone), ("country", country)],
    )
}

/// An operator signed in with one capcom6 device holding one SIM per phone (slots 1, 2, …)
/// in [`COUNTRY`].
fn operator_with_sims(server: &TestServer, email: &str, phones: &[&str]) -> (Client, i64, i64) {
    let (mut op, op_id) = server.signed_in(email, "operator");
    let device = create_device(&mut op, "Pixel", "capcom6");
    for (i, phone) in phones.iter().enumerate() {
        let r = add_sim(&mut op, device.id, &(i + 1).to_string(), phone, "6");
        assert_eq!(r.status, 303, "add SIM {phone}: {}", r.text());
    }
    (op, op_id, device.id)
}

/// The operator's earning rows: (ref_type, ref_id, amount).
fn earnings_of(server: &TestServer, user_id: i64) -> Vec<(String, i64, i64)> {
    let db = server.db();
    let mut stmt = db
        .prepare(
            "SELECT ref_type, ref_id, amount_minor FROM ledger WHERE user_id = ?1 \
             AND kind = 'earning' ORDER BY id",
        )
        .unwrap();
    stmt.query_map([user_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn balance_of(server: &TestServer, user_id: i64) -> i64 {
    server
        .db()
        .query_row(
            "SELECT balance_minor FROM users WHERE id = ?1",
            [user_id],
            |r| r.get(0),
        )
        .unwrap()
}

/// Orders `service` and completes it after an injected code; the activation id and price.
fn order_code_complete(
    server: &TestServer,
    api: &mut Api,
    service: &str,
    phone: &str,
) -> (i64, i64) {
    let a = api.order_ok(service);
    assert_eq!(a["phone"], phone, "the SIM's number is sold");
    let id = id_of(&a);
    assert!(server.inject(phone, "Your code: 12345"));
    let r = api.act(id, "complete");
    assert_eq!(r.status, 200, "complete: {}", r.text());
    (id, a["price_minor"].as_i64().expect("price_minor"))
}

#[test]
fn a_device_created_on_the_pages_shows_its_secret_once_and_its_sim_earns_the_share() {
    let server = server(&[]);
    let (mut op, op_id) = server.signed_in("op@example.com", "operator");

    let device = create_device(&mut op, "Pixel in the drawer", "capcom6");
    assert_eq!(device.secret.len(), 32, "{}", device.secret);
    assert!(device.secret.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(
        device
            .webhook_url
            .ends_with(&format!("/ingest/capcom6/{}", device.public_id)),
        "{}",
        device.webhook_url
    );
    // Never stored, never shown again.
    let stored = server.count(&format!(
        "SELECT COUNT(*) FROM devices WHERE secret_salt = '{0}' OR name = '{0}'",
        device.secret
    ));
    assert_eq!(stored, 0);
    for page in [
        "/operator".to_string(),
        "/operator/devices".to_string(),
        format!("/operator/devices/{}", device.id),
    ] {
        let r = op.get(&page);
        assert_eq!(r.status, 200, "{page}: {}", r.text());
        assert!(
            !r.text().contains(&device.secret),
            "{page} shows the secret"
        );
        assert!(r.text().contains("Pixel in the drawer"), "{page}");
    }
    assert!(op
        .get(&format!("/operator/devices/{}", device.id))
        .text()
        .contains(&device.webhook_url));

    // A SIM: on sale at once.
    let r = add_sim(&mut op, device.id, "1", "+62 811 5550 001", "6");
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.location(),
        Some(format!("/operator/devices/{}?m=sim_added", device.id).as_str())
    );
    let page = op.get(&format!("/operator/devices/{}", device.id)).text();
    assert!(page.contains("+628115550001"), "{page}");
    assert!(page.contains("Indonesia"));
    // A bad SIM changes nothing and says why.
    let r = add_sim(&mut op, device.id, "2", "+44 7700 900123", "6");
    let back = format!("/operator/devices/{}", device.id);
    assert_eq!(r.location(), Some(back.as_str()), "{}", r.text());
    let page = op.follow(&r).text();
    assert!(page.contains("starts with +62"), "{page}");
    assert!(
        page.contains("value=\"+44 7700 900123\""),
        "the number is kept: {page}"
    );
    assert_eq!(server.count("SELECT COUNT(*) FROM numbers"), 1);

    // A customer orders that pair and gets the SIM's number; the code comes, it completes.
    let mut api = server.customer("cus@example.com", "10.00");
    let (id, price) = order_code_complete(&server, &mut api, "tg", "628115550001");
    let share = price * 70 / 100;
    assert!(share > 0);
    assert_eq!(
        server.ledger_of("activation", id),
        vec![
            ("charge".to_string(), -price),
            ("earning".to_string(), share)
        ]
    );
    assert_eq!(
        earnings_of(&server, op_id),
        vec![("activation".into(), id, share)]
    );
    assert_eq!(balance_of(&server, op_id), share);

    // The pages show it, and never who ordered nor what the SMS said.
    let overview = op.get("/operator").text();
    assert_eq!(
        between(&overview, "id=\"earned-month\">", "<"),
        Some(usd(share).as_str())
    );
    assert_eq!(
        between(&overview, "id=\"balance\">", "<"),
        Some(usd(share).as_str())
    );
    // The gateway has not called yet: the device is "never seen", not "online".
    assert!(overview.contains("never seen"), "{overview}");
    let sales = op.get("/operator/activations").text();
    assert!(sales.contains("+628115550001"), "{sales}");
    assert!(sales.contains("completed"));
    assert!(sales.contains(&usd(share)));
    for secret in ["cus@example.com", "12345", "Your code"] {
        assert!(!sales.contains(secret), "activations page shows {secret}");
    }
    let earnings = op.get("/operator/earnings").text();
    assert!(
        earnings.contains(&format!("activation #{id}")),
        "{earnings}"
    );
    assert_eq!(
        between(&earnings, "id=\"earned-total\">", "<"),
        Some(usd(share).as_str())
    );
    server.assert_books_balance();
}

#[test]
fn a_configured_share_is_credited_exactly_for_activations_and_rentals() {
    let server = server(&[("OTPBOX_OPERATOR_SHARE", "55")]);
    let (_op, op_id, _) =
        operator_with_sims(&server, "op@example.com", &["628115550011", "628115550012"]);
    let mut api = server.customer("cus@example.com", "100.00");

    // A rental finished early: the whole amount paid counts.
    let r = api.post(
        "/api/v1/rentals",
        json!({"country": COUNTRY, "service": "tg", "hours": 4}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let rental = r.json();
    let rental_id = id_of(&rental);
    let paid = rental["paid_minor"].as_i64().unwrap();
    let r = api.post(&format!("/api/v1/rentals/{rental_id}/finish"), json!({}));
    assert_eq!(r.status, 200, "{}", r.text());

    // An activation on the other SIM.
    let (act_id, price) = order_code_complete(&server, &mut api, "tg", "628115550012");

    // A second rental that runs out: credited by the expiry job.
    let r = api.post(
        "/api/v1/rentals",
        json!({"country": COUNTRY, "service": "wa", "hours": 4}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let expiring = id_of(&r.json());
    let paid2 = r.json()["paid_minor"].as_i64().unwrap();
    server.advance_clock(4 * 3600);
    server.run_jobs();
    assert_eq!(
        api.get(&format!("/api/v1/rentals/{expiring}")).json()["status"],
        "expired"
    );

    assert_eq!(
        earnings_of(&server, op_id),
        vec![
            ("rental".into(), rental_id, paid * 55 / 100),
            ("activation".into(), act_id, price * 55 / 100),
            ("rental".into(), expiring, paid2 * 55 / 100),
        ]
    );
    assert_eq!(
        balance_of(&server, op_id),
        (paid + paid2) * 55 / 100 + price * 55 / 100
    );
    server.assert_books_balance();
}

#[test]
fn nothing_is_earned_when_an_order_is_cancelled_or_expires_without_a_code() {
    let server = server(&[]);
    let (_op, op_id, _) = operator_with_sims(
        &server,
        "op@example.com",
        &["628115550021", "628115550022", "628115550023"],
    );
    let mut api = server.customer("cus@example.com", "100.00");
    let start = api.balance();

    let canceled = id_of(&api.order_ok("tg"));
    let expiring = id_of(&api.order_ok("tg"));
    let r = api.post(
        "/api/v1/rentals",
        json!({"country": COUNTRY, "service": "tg", "hours": 4}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let rental = id_of(&r.json());
    let r = api.post(&format!("/api/v1/rentals/{rental}/cancel"), json!({}));
    assert_eq!(r.status, 200, "{}", r.text());

    server.advance_clock(121);
    let r = api.act(canceled, "cancel");
    assert_eq!(r.status, 200, "{}", r.text());
    server.advance_clock(20 * 60);
    server.run_jobs();
    assert_eq!(api.activation(expiring)["status"], "expired");

    assert_eq!(earnings_of(&server, op_id), vec![]);
    assert_eq!(balance_of(&server, op_id), 0);
    assert_eq!(api.balance(), start, "everything was refunded");
    server.assert_books_balance();
}

/// Id of the operator's newest payout request.
fn last_payout(server: &TestServer) -> i64 {
    server.count("SELECT MAX(id) FROM payouts")
}

fn payout_state(server: &TestServer, id: i64) -> String {
    server
        .db()
        .query_row("SELECT state FROM payouts WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap()
}

#[test]
fn payouts_stay_within_the_balance_and_the_admin_pays_or_rejects_them_with_audit_rows() {
    let server = server(&[]);
    let (mut op, op_id, _) = operator_with_sims(&server, "op@example.com", &["628115550031"]);
    let mut api = server.customer("cus@example.com", "10.00");
    let (_, price) = order_code_complete(&server, &mut api, "tg", "628115550031");
    let earned = price * 70 / 100;
    let amount = |minor: i64| format!("{}.{:02}", minor / 100, minor % 100);

    // Over the balance, junk amounts and no destination are refused and change nothing.
    for (amt, dest, why) in [
        (
            amount(earned + 1),
            "IBAN DE02 1203 0000 0000 2020 51",
            "You can ask for at most",
        ),
        ("abc".to_string(), "IBAN", "Enter the amount, e.g. 25.00."),
        ("0".to_string(), "IBAN", "Enter an amount above zero"),
        (amount(earned), "", "Say where to pay"),
    ] {
        let r = op.submit(
            "/operator/payouts",
            "/operator/payouts",
            &[("amount", &amt), ("destination", dest)],
        );
        assert_eq!(r.location(), Some("/operator/payouts"), "{}", r.text());
        let page = op.follow(&r).text();
        assert!(page.contains(why), "{amt} {dest}: {page}");
        assert!(page.contains(&format!("value=\"{amt}\"")), "kept: {page}");
    }
    assert_eq!(server.count("SELECT COUNT(*) FROM payouts"), 0);

    // A request, withdrawn; then the whole balance, and nothing more on top of it.
    let ask = |op: &mut Client, amt: &str| {
        op.submit(
            "/operator/payouts",
            "/operator/payouts",
            &[
                ("amount", amt),
                ("destination", "IBAN DE02 1203 0000 0000 2020 51"),
            ],
        )
    };
    let r = ask(&mut op, &amount(1));
    assert_eq!(r.status, 303, "{}", r.text());
    let first = last_payout(&server);
    let r = op.submit(
        "/operator/payouts",
        &format!("/operator/payouts/{first}/withdraw"),
        &[],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(payout_state(&server, first), "withdrawn");
    let r = ask(&mut op, &amount(earned));
    assert_eq!(r.status, 303, "{}", r.text());
    let paid = last_payout(&server);
    let r = ask(&mut op, "0.01");
    let page = op.follow(&r).text();
    assert!(page.contains("at most 0.00"), "{page}");

    // The admin sees it first and marks it paid: one payout ledger row, one audit row.
    let (mut admin, admin_id) = server.signed_in("root@example.com", "admin");
    let list = admin.get("/admin/payouts").text();
    assert!(list.contains("op@example.com"), "{list}");
    assert!(list.contains(&format!("/admin/payouts/{paid}/paid")));
    assert!(!list.contains(&format!("/admin/payouts/{first}/paid")));
    // Only with the admin's CSRF token, only by an admin.
    let r = admin.post_form(&format!("/admin/payouts/{paid}/paid"), &[]);
    assert_eq!(r.status, 403);
    let r = op.submit("/operator", &format!("/admin/payouts/{paid}/paid"), &[]);
    assert_eq!(r.status, 403);
    assert_eq!(payout_state(&server, paid), "requested");
    let r = admin.submit(
        "/admin/payouts",
        &format!("/admin/payouts/{paid}/paid"),
        &[],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(payout_state(&server, paid), "paid");
    assert_eq!(
        server.ledger_of("payout", paid),
        vec![("payout".to_string(), -earned)]
    );
    assert_eq!(balance_of(&server, op_id), 0);
    let audit: (i64, i64, String) = server
        .db()
        .query_row(
            "SELECT actor_id, target_id, detail FROM audit_log WHERE action = 'payout_paid'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        audit,
        (
            admin_id,
            op_id,
            format!("payout {paid}: {}", amount(earned))
        )
    );
    // Twice is refused.
    let r = admin.submit(
        "/admin/payouts",
        &format!("/admin/payouts/{paid}/paid"),
        &[],
    );
    let page = admin.follow(&r).text();
    assert!(page.contains("This payout is already paid."), "{page}");
    assert_eq!(server.ledger_of("payout", paid).len(), 1);
    let page = op.get("/operator/payouts").text();
    assert!(page.contains("paid"), "{page}");
    let earnings = op.get("/operator/earnings").text();
    assert_eq!(
        between(&earnings, "id=\"paid-out\">", "<"),
        Some(usd(earned).as_str())
    );

    // A rejected request: audited, the note shown to the operator, no money moves.
    server.cli_ok(&[
        "user",
        "credit",
        "--email",
        "op@example.com",
        "--amount",
        "1.00",
    ]);
    let r = ask(&mut op, "1.00");
    assert_eq!(r.status, 303, "{}", r.text());
    let rejected = last_payout(&server);
    let r = admin.submit(
        "/admin/payouts",
        &format!("/admin/payouts/{rejected}/reject"),
        &[("note", "The IBAN is closed")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(payout_state(&server, rejected), "rejected");
    assert_eq!(
        server.count("SELECT COUNT(*) FROM audit_log WHERE action = 'payout_rejected'"),
        1
    );
    assert!(op
        .get("/operator/payouts")
        .text()
        .contains("The IBAN is closed"));
    assert_eq!(balance_of(&server, op_id), 100);
    server.assert_books_balance();
}

#[test]
fn another_operators_device_is_not_found_and_plain_users_are_refused() {
    let server = server(&[]);
    let (mut a, _, device) = operator_with_sims(&server, "a@example.com", &["628115550041"]);
    let (mut b, _) = server.signed_in("b@example.com", "operator");
    let page = format!("/operator/devices/{device}");
    assert_eq!(b.get(&page).status, 404);
    for action in [
        format!("{page}/sims"),
        format!("{page}/revoke"),
        format!("{page}/sims/1/remove"),
    ] {
        let r = b.submit(
            "/operator/devices",
            &action,
            &[
                ("slot", "2"),
                ("phone", "628115550049"),
                ("country", "6"),
                ("confirm", "1"),
            ],
        );
        assert_eq!(
            r.location(),
            Some("/operator/devices"),
            "{action}: {}",
            r.text()
        );
        let list = b.follow(&r).text();
        assert!(list.contains("No such device."), "{action}: {list}");
    }
    assert!(!b
        .get("/operator/devices")
        .text()
        .contains(&format!("href=\"{page}\"")));
    assert!(a
        .get("/operator/devices")
        .text()
        .contains(&format!("href=\"{page}\"")));
    assert_eq!(server.count("SELECT COUNT(*) FROM numbers"), 1);

    // Plain users are refused; visitors are sent to the login form.
    let (mut user, _) = server.signed_in("u@example.com", "user");
    for p in [
        "/operator",
        "/operator/devices",
        "/operator/payouts",
        page.as_str(),
    ] {
        assert_eq!(user.get(p).status, 403, "{p}");
    }
    assert!(!user.get("/dashboard").text().contains("href=\"/operator\""));
    assert!(a.get("/dashboard").text().contains("href=\"/operator\""));
    let r = server.client().get("/operator");
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), Some("/login?next=%2Foperator"));

    // Revoking needs the confirmation; then the device and its SIM leave the stock.
    let r = a.submit(&page, &format!("{page}/revoke"), &[]);
    assert_eq!(r.location(), Some(page.as_str()), "{}", r.text());
    assert!(a
        .follow(&r)
        .text()
        .contains("Tick the box to confirm that the device is to be revoked."));
    let r = a.submit(&page, &format!("{page}/revoke"), &[("confirm", "1")]);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(a.get(&page).status, 404);
    let mut api = server.customer("cus@example.com", "10.00");
    let r = api.order("tg");
    assert_eq!(error_code(&r), "no_numbers", "{}", r.text());
}

#[test]
fn the_admin_adds_numbers_one_by_one_and_in_bulk_and_is_told_why_lines_were_refused() {
    let server = server(&[]);
    let (mut admin, admin_id) = server.signed_in("root@example.com", "admin");
    let op_id = server.create_user("op@example.com", "operator", common::PASSWORD);
    server.create_user("ann@example.com", "user", common::PASSWORD);

    // One number, owned by an operator.
    let r = admin.submit(
        "/admin/numbers",
        "/admin/numbers/add",
        &[
            ("phone", "+62 811 7770 001"),
            ("country", "6"),
            ("operator", ""),
            ("owner", "op@example.com"),
        ],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(r.text().contains("line 1: +628117770001"), "{}", r.text());

    // A paste: the good lines are added, each bad one says why.
    let paste = "628117770002\n\n# from the supplier\n628117770003,6,telkomsel\n\
                 628117770001\n447700900123\nabc123\n628117770004,6,nope\n628117770005,99999\n";
    let r = admin.submit(
        "/admin/numbers",
        "/admin/numbers/bulk",
        &[("lines", paste), ("country", "6"), ("owner", "")],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let html = r.text();
    assert!(
        html.contains("2 number(s) added and on sale; 5 refused."),
        "{html}"
    );
    let refused = between(&html, "<table id=\"refused\">", "</table>").expect("refused lines");
    for why in [
        "+628117770001 is already registered",
        "a number in Indonesia starts with +62",
        "not a phone number",
        "nope",
        "no country with id 99999",
    ] {
        assert!(refused.contains(why), "{why} not in {refused}");
    }
    assert_eq!(
        server.count("SELECT COUNT(*) FROM numbers WHERE source = 'manual'"),
        3
    );
    assert_eq!(
        server.count(&format!(
            "SELECT COUNT(*) FROM numbers WHERE owner_id = {op_id}"
        )),
        1
    );
    // One audit row per batch, with the count.
    let audits: Vec<(i64, String)> = {
        let db = server.db();
        let mut st = db
            .prepare(
                "SELECT actor_id, detail FROM audit_log WHERE action = 'numbers_added' ORDER BY id",
            )
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(
        audits,
        vec![
            (
                admin_id,
                "1 added, 0 refused, owner op@example.com".to_string()
            ),
            (admin_id, "2 added, 5 refused".to_string()),
        ]
    );

    // The same paste again: every line is a duplicate or bad; nothing added, nothing audited.
    let r = admin.submit(
        "/admin/numbers",
        "/admin/numbers/bulk",
        &[
            ("form", "bulk"),
            ("lines", paste),
            ("country", "6"),
            ("owner", ""),
        ],
    );
    assert_eq!(r.location(), Some("/admin/numbers"), "{}", r.text());
    let page = admin.follow(&r).text();
    assert!(page.contains("No number was added: line 1"), "{page}");
    assert!(
        page.contains("+628117770002 is already registered"),
        "{page}"
    );
    assert!(
        page.contains("# from the supplier"),
        "the paste is kept: {page}"
    );
    // An owner who is not an operator refuses the whole batch.
    let r = admin.submit(
        "/admin/numbers",
        "/admin/numbers/bulk",
        &[
            ("form", "bulk"),
            ("lines", "628117770009"),
            ("country", "6"),
            ("owner", "ann@example.com"),
        ],
    );
    let page = admin.follow(&r).text();
    assert!(page.contains("not an active operator"), "{page}");
    assert!(page.contains("value=\"ann@example.com\""), "{page}");
    assert_eq!(server.count("SELECT COUNT(*) FROM numbers"), 3);
    assert_eq!(
        server.count("SELECT COUNT(*) FROM audit_log WHERE action = 'numbers_added'"),
        2
    );

    // They are sold at once; the operator's number earns it its share.
    let mut api = server.customer("cus@example.com", "10.00");
    let sold: Vec<(i64, String)> = (0..3)
        .map(|_| {
            let a = api.order_ok("tg");
            (id_of(&a), a["phone"].as_str().unwrap().to_string())
        })
        .collect();
    let mut phones: Vec<&str> = sold.iter().map(|(_, p)| p.as_str()).collect();
    phones.sort();
    assert_eq!(phones, ["628117770001", "628117770002", "628117770003"]);
    let id = sold.iter().find(|(_, p)| p == "628117770001").unwrap().0;
    assert!(server.inject("628117770001", "Your code: 55555"));
    assert_eq!(api.act(id, "complete").status, 200);
    assert_eq!(earnings_of(&server, op_id).len(), 1);
    assert!(admin
        .get("/admin/numbers")
        .text()
        .contains("op@example.com"));
    server.assert_books_balance();
}
