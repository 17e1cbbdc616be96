//! Abuse and enforcement over HTTP against the real server: the public abuse report form (its
//! hourly limit and CSRF), the admin's queue with states, notes and audited number look-ups;
//! termination (refund, forfeit, revoked access) and the one appeal within 30 days; anomaly
//! flags that never act on an account; chargebacks; blocked services and countries refused
//! on all three APIs and the web form; the law-enforcement register and the transparency page.

mod common;

use common::market::{error_code, id_of, Api, COUNTRY};
use common::{Client, Response, TestServer, PASSWORD};
use serde_json::json;

const DAY: u64 = 86_400;
const ADMIN: &str = "root@example.com";

fn server(extra: &[(&str, &str)]) -> TestServer {
    let mut b = TestServer::builder().envs(&[
        ("OTPBOX_DEV_CLOCK", "1"),
        ("OTPBOX_API_RATE", "0"),
        ("OTPBOX_API_IP_RATE", "0"),
    ]);
    for (k, v) in extra {
        b = b.env(k, v);
    }
    b.start()
}

fn report_fields<'a>(number: &'a str, description: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("number", number),
        ("service", "Telegram"),
        ("description", description),
        ("contact", "victim@example.org"),
    ]
}

/// Sends the public abuse form as an anonymous visitor.
fn report(server: &TestServer, number: &str, description: &str) -> Response {
    server
        .client()
        .submit("/abuse", "/abuse", &report_fields(number, description))
}

/// Sends the report form and follows its refusal back to the form: the page shown then.
fn refused_report(server: &TestServer, number: &str, description: &str) -> Response {
    let mut c = server.client();
    let r = c.submit("/abuse", "/abuse", &report_fields(number, description));
    assert_eq!(r.location(), Some("/abuse"), "{}", r.text());
    c.follow(&r)
}

fn audit_count(server: &TestServer, action: &str) -> i64 {
    server
        .db()
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE action = ?1",
            [action],
            |r| r.get(0),
        )
        .unwrap()
}

/// POSTs an admin form found on `page`, asserting the 303 of success.
fn admin_post(admin: &mut Client, page: &str, action: &str, fields: &[(&str, &str)]) {
    let r = admin.submit(page, action, fields);
    assert_eq!(r.status, 303, "POST {action}: {}", r.text());
}

#[test]
fn the_form_stores_a_report_and_the_admin_moves_it_through_states_with_notes() {
    let server = server(&[]);
    server.add_numbers(COUNTRY, &["6281100000001"]);
    let mut bad = server.customer("bad@example.com", "10.00");
    let order = bad.order_ok("tg");
    assert_eq!(order["phone"], "6281100000001");

    // Linked from every page's footer and from the acceptable-use policy.
    let home = server.client().get("/").text();
    assert!(home.contains("href=\"/abuse\"") && home.contains("href=\"/transparency\""));
    assert!(server
        .client()
        .get("/aup")
        .text()
        .contains("href=\"/abuse\""));

    let r = report(
        &server,
        "+62 811-0000-0001",
        "This number was used to phish my bank login.",
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.location(), Some("/abuse/sent"));
    let (id, phone, ip_hash, state): (i64, String, String, String) = server
        .db()
        .query_row(
            "SELECT id, phone, ip_hash, state FROM abuse_reports",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!((phone.as_str(), state.as_str()), ("6281100000001", "new"));
    assert!(!ip_hash.is_empty() && !ip_hash.contains("127.0.0.1"));

    let (mut admin, _) = server.signed_in(ADMIN, "admin");
    let queue = admin.get("/admin/abuse?state=new").text();
    assert!(queue.contains(&format!("data-id=\"{id}\"")), "{queue}");
    let page = format!("/admin/abuse/{id}");
    assert!(admin.get(&page).text().contains("phish my bank"));

    admin_post(
        &mut admin,
        &page,
        &format!("/admin/abuse/{id}/state"),
        &[("state", "investigating"), ("note", "Checking the orders.")],
    );
    admin_post(
        &mut admin,
        &page,
        &format!("/admin/abuse/{id}/note"),
        &[("text", "The customer was warned.")],
    );
    admin_post(
        &mut admin,
        &page,
        &format!("/admin/abuse/{id}/state"),
        &[("state", "actioned"), ("note", "")],
    );
    // Actioned can only be reopened, never sent back to new.
    let r = admin.submit(
        &page,
        &format!("/admin/abuse/{id}/state"),
        &[("state", "new"), ("note", "Back to the start.")],
    );
    assert_eq!(r.location(), Some(page.as_str()), "{}", r.text());
    let back = admin.follow(&r).text();
    assert!(
        back.contains("A report that is actioned cannot become new."),
        "{back}"
    );
    assert!(
        back.contains(">Back to the start.</textarea>"),
        "the note is kept: {back}"
    );

    let db = server.db();
    let state: String = db
        .query_row("SELECT state FROM abuse_reports WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(state, "actioned");
    let notes: Vec<(String, String)> = db
        .prepare(
            "SELECT u.email, n.text FROM abuse_notes n JOIN users u ON u.id = n.author_id \
             WHERE n.report_id = ?1 ORDER BY n.id",
        )
        .unwrap()
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        notes,
        vec![
            (ADMIN.to_string(), "Checking the orders.".to_string()),
            (ADMIN.to_string(), "The customer was warned.".to_string()),
        ]
    );
    assert_eq!(audit_count(&server, "abuse_state"), 2);
    assert!(admin
        .get("/admin/abuse?state=actioned")
        .text()
        .contains(&format!("data-id=\"{id}\"")));
    assert!(!admin
        .get("/admin/abuse?state=new")
        .text()
        .contains(&format!("data-id=\"{id}\"")));

    // Which orders used the number: shown to the admin, audited against the account read.
    assert_eq!(audit_count(&server, "abuse_number_lookup"), 0);
    let lookup = admin.get(&format!("/admin/abuse/{id}/orders")).text();
    assert!(lookup.contains("This is one of our numbers."), "{lookup}");
    assert!(lookup.contains("bad@example.com"));
    assert!(lookup.contains(&format!("activation #{}", id_of(&order))));
    let target: i64 = db
        .query_row(
            "SELECT target_id FROM audit_log WHERE action = 'abuse_number_lookup'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(target, bad.user_id);
}

#[test]
fn the_form_refuses_floods_missing_csrf_and_bad_input_storing_nothing() {
    let server = server(&[("OTPBOX_ABUSE_REPORTS_PER_HOUR", "3")]);
    let stored = || server.count("SELECT COUNT(*) FROM abuse_reports");
    for i in 0..3 {
        let r = report(
            &server,
            "6281234567890",
            &format!("Spam wave number {i} today."),
        );
        assert_eq!(r.status, 303, "{}", r.text());
    }
    let r = refused_report(&server, "6281234567890", "One report too many.");
    assert!(r.is_html());
    let text = r.text();
    assert!(text.contains("Nothing was stored"), "{text}");
    let mins: u64 = text
        .split("try again in ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("when to try again");
    assert!((1..=60).contains(&mins), "{mins}");
    assert!(text.contains(">One report too many.</textarea>"), "{text}");
    assert_eq!(stored(), 3);

    // Without the form's CSRF token: refused before anything is looked at.
    let mut c = server.client();
    c.get("/abuse");
    let r = c.post_form(
        "/abuse",
        &report_fields("6281234567890", "No token in this post."),
    );
    assert_eq!(r.status, 403);
    assert_eq!(stored(), 3);

    // An hour later the address may report again; a malformed one is refused all the same.
    server.advance_clock(3601);
    let r = refused_report(&server, "call me maybe", "Not a phone number at all.");
    assert!(r.text().contains("digits"), "{}", r.text());
    assert!(r.text().contains("value=\"call me maybe\""), "{}", r.text());
    assert_eq!(stored(), 3);
    assert_eq!(
        report(&server, "6281234567890", "A new hour, a new report.").status,
        303
    );
    assert_eq!(stored(), 4);
}

/// Terminates `user_id` through the admin's user page.
fn terminate(admin: &mut Client, user_id: i64, reason: &str) {
    admin_post(
        admin,
        &format!("/admin/users/{user_id}"),
        &format!("/admin/users/{user_id}/terminate"),
        &[("reason", reason)],
    );
}

/// The path of the appeal link in the termination mail to `email`.
fn mailed_appeal_link(server: &TestServer, email: &str) -> String {
    let mail = server
        .outbox()
        .into_iter()
        .find(|m| m.to == email && m.subject.contains("terminated"))
        .expect("a termination mail");
    mail.links()
        .into_iter()
        .find(|l| l.starts_with("/appeal/"))
        .expect("an appeal link")
}

#[test]
fn termination_refunds_live_orders_forfeits_exactly_the_rest_and_revokes_access() {
    let server = server(&[]);
    server.add_numbers(COUNTRY, &["6281100000002"]);
    let mut bad = server.customer("bad@example.com", "10.00");
    let key = server
        .db()
        .query_row("SELECT COUNT(*) FROM api_keys", [], |r| r.get::<_, i64>(0))
        .unwrap();
    assert_eq!(key, 1);
    let live = bad.order_ok("tg");
    let price = live["price_minor"].as_i64().unwrap();
    assert_eq!(bad.balance(), 1000 - price);
    let mut web = server.client();
    assert_eq!(
        web.login("bad@example.com", PASSWORD).location(),
        Some("/dashboard")
    );
    let handler_key = server.api_key("bad@example.com");

    let (mut admin, _) = server.signed_in(ADMIN, "admin");
    // A reason is required.
    let r = admin.submit(
        &format!("/admin/users/{}", bad.user_id),
        &format!("/admin/users/{}/terminate", bad.user_id),
        &[("reason", " ")],
    );
    let page = admin.follow(&r).text();
    assert!(
        page.contains("Give the reason: it is recorded and sent to the person."),
        "{page}"
    );
    let active = format!(
        "SELECT COUNT(*) FROM users WHERE id = {} AND state = 'active'",
        bad.user_id
    );
    assert_eq!(server.count(&active), 1, "nothing changed");
    terminate(&mut admin, bad.user_id, "Phishing with our numbers");

    // The live order was cancelled and refunded first; the forfeit is the whole 10.00 left.
    assert_eq!(
        server.ledger_of("activation", id_of(&live)),
        vec![
            ("charge".to_string(), -price),
            ("refund".to_string(), price)
        ]
    );
    let forfeits: Vec<(i64, i64)> = server
        .db()
        .prepare("SELECT amount_minor, balance_after FROM ledger WHERE kind = 'forfeit'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(forfeits, vec![(-1000, 0)]);
    let (state, reason, balance): (String, String, i64) = server
        .db()
        .query_row(
            "SELECT state, state_reason, balance_minor FROM users WHERE id = ?1",
            [bad.user_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (state.as_str(), reason.as_str(), balance),
        ("terminated", "Phishing with our numbers", 0)
    );
    let status: String = server
        .db()
        .query_row(
            "SELECT status FROM activations WHERE id = ?1",
            [id_of(&live)],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(status, "canceled");
    server.assert_books_balance();
    assert_eq!(audit_count(&server, "terminate"), 1);

    // Every way in is shut: API keys on all three APIs, the web session.
    let r = bad.get("/api/v1/balance");
    assert_eq!((r.status, error_code(&r).as_str()), (401, "unauthorized"));
    let r = server.client().get(&format!(
        "/stubs/handler_api.php?action=getBalance&api_key={handler_key}"
    ));
    assert_eq!(r.text(), "BAD_KEY");
    let r = server.client().request(
        "GET",
        "/v1/user/profile",
        &[("Authorization", &format!("Bearer {handler_key}"))],
        b"",
    );
    assert_eq!(r.status, 401);
    let r = web.get("/dashboard");
    assert_eq!(r.status, 303);
    assert!(r.location().unwrap().starts_with("/login"));
    assert_eq!(
        server.count("SELECT COUNT(*) FROM sessions WHERE user_id IS NOT NULL AND user_id = (SELECT id FROM users WHERE email = 'bad@example.com')"),
        0
    );

    // The person is told why and how to appeal, by mail and when they try to log in.
    let mail = server
        .outbox()
        .into_iter()
        .find(|m| m.to == "bad@example.com" && m.subject.contains("terminated"))
        .expect("a termination mail");
    assert!(mail.body.contains("Phishing with our numbers"));
    assert!(mail.body.contains("appeal once"));
    let r = server.client().login("bad@example.com", PASSWORD);
    assert_eq!(r.status, 403);
    let page = r.text();
    assert!(page.contains("This account is terminated"), "{page}");
    assert!(page.contains("Phishing with our numbers"));
    assert!(page.contains("href=\"/appeal/"), "{page}");
    // A wrong password learns nothing about the account.
    let r = server
        .client()
        .login_refused("bad@example.com", "wrong password here");
    assert!(r.text().contains("Wrong e-mail or password."));
    assert!(!r.text().contains("terminated"));
}

#[test]
fn a_terminated_person_appeals_once_within_thirty_days() {
    let server = server(&[]);
    let ann = server.create_user("ann@example.com", "user", PASSWORD);
    let bob = server.create_user("bob@example.com", "user", PASSWORD);
    let (mut admin, _) = server.signed_in(ADMIN, "admin");
    terminate(&mut admin, ann, "Resold numbers against the terms");
    terminate(&mut admin, bob, "Ban evasion");

    // Two ways to the form: the mailed link, and the link shown after logging in.
    let mailed = mailed_appeal_link(&server, "ann@example.com");
    let page = server.client().login("ann@example.com", PASSWORD).text();
    let from = page.find("href=\"/appeal/").expect("an appeal link") + 6;
    let shown = page[from..from + page[from..].find('"').unwrap()].to_string();
    assert_ne!(mailed, shown);

    let mut c = server.client();
    let r = c.submit(
        &mailed,
        &mailed,
        &[("appeal", "I rent numbers for my own QA team only.")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.location(), Some("/appeal?sent=1"));
    let appeals = |uid: i64| {
        server
            .db()
            .query_row(
                "SELECT COUNT(*) FROM abuse_reports WHERE kind = 'appeal' AND user_id = ?1",
                [uid],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
    };
    assert_eq!(appeals(ann), 1);
    let queue = admin.get("/admin/abuse?state=new").text();
    assert!(queue.contains("ann@example.com"), "{queue}");

    // A second appeal is refused, through the other link too; the link that was used is spent.
    // (The form is not shown any more; the session's token comes from another page.)
    let csrf = c.get("/abuse").csrf();
    let r = c.post_form(
        &shown,
        &[("appeal", "Please, a second look."), ("csrf", &csrf)],
    );
    assert_eq!(r.location(), Some(shown.as_str()), "{}", r.text());
    let back = c.follow(&r).text();
    assert!(
        back.contains("role=\"alert\">You appealed on ")
            && back.contains("an account can appeal once."),
        "{back}"
    );
    assert_eq!(c.get(&mailed).status, 400);
    assert_eq!(appeals(ann), 1);
    let page = server.client().login("ann@example.com", PASSWORD).text();
    assert!(page.contains("id=\"appealed\""), "{page}");
    assert!(!page.contains("href=\"/appeal/"));

    // After 30 days the window is closed.
    let late = mailed_appeal_link(&server, "bob@example.com");
    server.advance_clock(31 * DAY);
    server.run_jobs();
    let r = server
        .client()
        .post_form(&late, &[("appeal", "I only just read your mail.")]);
    assert_eq!(r.status, 403, "no CSRF token: {}", r.text());
    let mut c = server.client();
    assert_eq!(c.get(&late).status, 400, "the link expired with the window");
    let page = server.client().login("bob@example.com", PASSWORD).text();
    assert!(page.contains("id=\"expired\""), "{page}");
    assert!(!page.contains("href=\"/appeal/"));
    assert_eq!(appeals(bob), 0);
    server.assert_books_balance();
}

#[test]
fn the_anomaly_job_raises_flags_with_evidence_and_never_terminates() {
    let server = server(&[
        ("OTPBOX_EARLY_CANCEL", "0"),
        // Six orders land in at most two clock minutes: one of them holds more than two.
        ("OTPBOX_FLAG_ORDERS_PER_MINUTE", "2"),
        ("OTPBOX_FLAG_MIN_ORDERS", "5"),
        ("OTPBOX_FLAG_ACCOUNTS_PER_IP", "0"),
    ]);
    let phones: Vec<String> = (0..7).map(|i| format!("62811000001{i:02}")).collect();
    server.add_numbers(
        COUNTRY,
        &phones.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let mut quick = server.customer("quick@example.com", "20.00");
    let mut calm = server.customer("calm@example.com", "20.00");
    calm.order_ok("wa");
    for _ in 0..6 {
        let a = quick.order_ok("tg");
        assert_eq!(quick.act(id_of(&a), "cancel").status, 200);
    }
    server.run_jobs();

    let flags = |email: &str| -> Vec<(String, String, String)> {
        server
            .db()
            .prepare(
                "SELECT f.kind, f.state, f.evidence FROM flags f JOIN users u ON u.id = f.user_id \
                 WHERE u.email = ?1 ORDER BY f.kind",
            )
            .unwrap()
            .query_map([email], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let raised = flags("quick@example.com");
    let kinds: Vec<&str> = raised.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(kinds, vec!["cancel_ratio", "low_success", "velocity"]);
    let evidence = |kind: &str| -> serde_json::Value {
        serde_json::from_str(&raised.iter().find(|f| f.0 == kind).unwrap().2).unwrap()
    };
    assert_eq!(evidence("cancel_ratio")["canceled"], 6);
    assert_eq!(evidence("cancel_ratio")["orders"], 6);
    assert!(evidence("velocity")["orders"].as_i64().unwrap() >= 3);
    assert!(evidence("cancel_ratio")["summary"]
        .as_str()
        .unwrap()
        .starts_with("6 of 6 orders"));
    assert!(flags("calm@example.com").is_empty());

    // One open flag per account and kind, however often the job runs; the account is untouched.
    server.advance_clock(600);
    server.run_jobs();
    assert_eq!(flags("quick@example.com").len(), 3);
    let state: String = server
        .db()
        .query_row(
            "SELECT state FROM users WHERE email = 'quick@example.com'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(state, "active");
    assert_eq!(quick.balance(), 2000);
    assert_eq!(quick.order("wa").status, 201);

    // The admin sees them, with the evidence, and marks one reviewed (audited).
    let (mut admin, _) = server.signed_in(ADMIN, "admin");
    let page = admin.get("/admin/flags?state=open").text();
    assert!(
        page.contains("6 of 6 orders in the last 1 day were cancelled"),
        "{page}"
    );
    let user_page = admin.get(&format!("/admin/users/{}", quick.user_id)).text();
    assert!(user_page.contains("data-kind=\"velocity\""), "{user_page}");
    let flag_id: i64 = server
        .db()
        .query_row("SELECT id FROM flags WHERE kind = 'velocity'", [], |r| {
            r.get(0)
        })
        .unwrap();
    admin_post(
        &mut admin,
        "/admin/flags",
        &format!("/admin/flags/{flag_id}/review"),
        &[("back", "/admin/flags")],
    );
    assert_eq!(audit_count(&server, "flag_reviewed"), 1);
    assert!(flags("quick@example.com")
        .iter()
        .any(|f| f.0 == "velocity" && f.1 == "reviewed"));

    // A chargeback the admin records is stored and flagged; the balance moves only if asked.
    let page = format!("/admin/users/{}", calm.user_id);
    let action = format!("/admin/users/{}/chargeback", calm.user_id);
    let before = calm.balance();
    admin_post(
        &mut admin,
        &page,
        &action,
        &[("amount", "5.00"), ("reference", "ch_3Px")],
    );
    assert_eq!(calm.balance(), before);
    admin_post(
        &mut admin,
        &page,
        &action,
        &[("amount", "2.50"), ("reference", "ch_3Py"), ("debit", "1")],
    );
    assert_eq!(calm.balance(), before - 250);
    assert_eq!(server.count("SELECT COUNT(*) FROM chargebacks"), 2);
    assert_eq!(audit_count(&server, "chargeback"), 2);
    let calm_flags = flags("calm@example.com");
    assert_eq!(calm_flags.len(), 1);
    assert_eq!(calm_flags[0].0, "chargeback");
    let state: String = server
        .db()
        .query_row(
            "SELECT state FROM users WHERE email = 'calm@example.com'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(state, "active");
    server.assert_books_balance();
}

#[test]
fn many_accounts_from_one_address_are_flagged() {
    let server = server(&[("OTPBOX_FLAG_ACCOUNTS_PER_IP", "3")]);
    for i in 0..3 {
        server.signed_in(&format!("sock{i}@example.com"), "user");
    }
    server.run_jobs();
    let n =
        server.count("SELECT COUNT(*) FROM flags WHERE kind = 'shared_address' AND state = 'open'");
    assert_eq!(n, 3);
    assert_eq!(
        server.count("SELECT COUNT(*) FROM users WHERE state != 'active'"),
        0
    );
}

/// handler_api getNumber for `service` in Indonesia: the text reply.
fn get_number(server: &TestServer, key: &str, service: &str) -> String {
    let r = server.client().get(&format!(
        "/stubs/handler_api.php?action=getNumber&api_key={key}&service={service}&country={COUNTRY}"
    ));
    assert_eq!(r.status, 200);
    r.text()
}

/// 5sim buy for `product` in Indonesia.
fn fivesim_buy(server: &TestServer, key: &str, product: &str) -> Response {
    server.client().request(
        "GET",
        &format!("/v1/user/buy/activation/indonesia/any/{product}"),
        &[
            ("Authorization", &format!("Bearer {key}")),
            ("Accept", "application/json"),
        ],
        b"",
    )
}

#[test]
fn a_blocked_service_is_refused_on_every_api_and_the_web_form_until_removed() {
    let server = server(&[("OTPBOX_DEMO", "true"), ("OTPBOX_SIM_DELAY", "10m")]);
    let mut api: Api = server.customer("buyer@example.com", "20.00");
    let key = server.api_key("buyer@example.com");
    let mut web = server.client();
    assert_eq!(
        web.login("buyer@example.com", PASSWORD).location(),
        Some("/dashboard")
    );
    let (mut admin, _) = server.signed_in(ADMIN, "admin");

    admin_post(
        &mut admin,
        "/admin/blocked",
        "/admin/blocked",
        &[("service", "tg"), ("country", ""), ("reason", "fraud wave")],
    );
    assert_eq!(audit_count(&server, "block_added"), 1);
    let orders = || server.count("SELECT COUNT(*) FROM activations");

    // Each API in its own words, and the web form.
    assert_eq!(get_number(&server, &key, "tg"), "BAD_SERVICE");
    let r = fivesim_buy(&server, &key, "telegram");
    assert_eq!((r.status, r.text().as_str()), (400, "no product"));
    let r = api.order("tg");
    assert_eq!((r.status, error_code(&r).as_str()), (403, "blocked"));
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("blocked"));
    let r = web.submit(
        "/dashboard",
        "/orders",
        &[("country", &COUNTRY.to_string()), ("service", "tg")],
    );
    let r = web.follow(&r);
    assert!(r.text().contains("Orders for this service are blocked"));
    let r = api.post(
        "/api/v1/rentals",
        json!({"country": COUNTRY, "service": "tg", "hours": 4}),
    );
    assert_eq!((r.status, error_code(&r).as_str()), (403, "blocked"));
    assert_eq!(orders(), 0);
    assert_eq!(api.balance(), 2000);
    // Gone from the catalogue; other services still sell.
    let cat = server
        .client()
        .get(&format!("/api/v1/catalogue?country={COUNTRY}&service=tg"))
        .json();
    assert_eq!(cat["offers"], json!([]));
    assert_eq!(api.order("wa").status, 201);

    // A country block reads like a country this site does not sell.
    admin_post(
        &mut admin,
        "/admin/blocked",
        "/admin/blocked",
        &[("service", ""), ("country", &COUNTRY.to_string())],
    );
    assert_eq!(get_number(&server, &key, "vi"), "BAD_COUNTRY");
    let r = fivesim_buy(&server, &key, "viber");
    assert_eq!((r.status, r.text().as_str()), (400, "bad country"));
    assert_eq!(orders(), 1);

    // Removed, and it sells again.
    let ids: Vec<i64> = server
        .db()
        .prepare("SELECT id FROM blocked")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for id in ids {
        admin_post(
            &mut admin,
            "/admin/blocked",
            &format!("/admin/blocked/{id}/remove"),
            &[],
        );
    }
    assert_eq!(audit_count(&server, "block_removed"), 2);
    assert!(get_number(&server, &key, "tg").starts_with("ACCESS_NUMBER:"));
    assert_eq!(fivesim_buy(&server, &key, "viber").status, 200);
    assert_eq!(api.order("vi").status, 201);
    assert_eq!(orders(), 4);
    server.assert_books_balance();
}

#[test]
fn the_transparency_page_counts_requests_per_year_and_outcome() {
    let server = server(&[]);
    let empty = server.client().get("/transparency");
    assert_eq!(empty.status, 200);
    assert!(empty.text().contains("id=\"none\""));

    let (mut admin, _) = server.signed_in(ADMIN, "admin");
    for (date, outcome) in [
        ("2025-02-10", "rejected"),
        ("2025-11-03", "no_data"),
        ("2026-01-15", "pending"),
    ] {
        admin_post(
            &mut admin,
            "/admin/legal",
            "/admin/legal",
            &[
                ("received_on", date),
                ("agency", "Regional police"),
                ("scope", "Subscriber behind a number"),
                ("outcome", outcome),
                ("notes", ""),
            ],
        );
    }
    let bad = admin.submit(
        "/admin/legal",
        "/admin/legal",
        &[
            ("form", "legal-new"),
            ("received_on", "2026-02-30"),
            ("agency", "X"),
            ("scope", "Y"),
            ("outcome", "pending"),
        ],
    );
    let page = admin.follow(&bad).text();
    assert!(
        page.contains("Enter the date received as YYYY-MM-DD."),
        "{page}"
    );
    assert!(page.contains("value=\"2026-02-30\""), "{page}");
    // The pending one is answered.
    let id: i64 = server
        .db()
        .query_row(
            "SELECT id FROM legal_requests WHERE outcome = 'pending'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    admin_post(
        &mut admin,
        "/admin/legal",
        &format!("/admin/legal/{id}"),
        &[
            ("received_on", "2026-01-15"),
            ("agency", "Regional police"),
            ("scope", "Subscriber behind a number"),
            ("outcome", "partially"),
            ("notes", "Only the order dates."),
        ],
    );
    assert_eq!(audit_count(&server, "legal_request_added"), 3);
    assert_eq!(audit_count(&server, "legal_request_updated"), 1);

    let page = server.client().get("/transparency").text();
    let cell = |year: i32, class: &str| -> i64 {
        let row = page
            .split("<tr data-year=\"")
            .find(|r| r.starts_with(&format!("{year}\"")))
            .unwrap_or_else(|| panic!("no {year} row:\n{page}"));
        let from = row.find(&format!("class=\"{class}\">")).unwrap() + class.len() + 9;
        row[from..from + row[from..].find('<').unwrap()]
            .parse()
            .unwrap()
    };
    assert_eq!(cell(2025, "total"), 2);
    assert_eq!(cell(2025, "rejected"), 1);
    assert_eq!(cell(2025, "no_data"), 1);
    assert_eq!(cell(2025, "disclosed"), 0);
    assert_eq!(cell(2026, "total"), 1);
    assert_eq!(cell(2026, "partially"), 1);
    assert_eq!(cell(2026, "pending"), 0);
    // The public page shows counts only.
    assert!(!page.contains("Regional police") && !page.contains("Subscriber"));
}
