//! The account lifecycle the privacy page promises, driven as a browser and API clients would:
//! deletion (live orders refunded before the forfeit, every access dead at once), the
//! sign-up cooldown and the purge after it (by moving the server's clock), the export (every
//! section, nobody else's data), the e-mail change, and the processing restriction.

mod common;

use common::market::{id_of, Api, COUNTRY};
use common::{Client, TestServer, PASSWORD};
use serde_json::{json, Value};

const DAY: u64 = 86_400;

fn dev_server() -> TestServer {
    TestServer::start_with(&[("OTPBOX_DEV_CLOCK", "1"), ("OTPBOX_API_RATE", "0")])
}

/// Submits the deletion form with the page's CSRF token.
fn delete_account(c: &mut Client, password: &str) -> common::Response {
    c.submit(
        "/settings/delete",
        "/settings/delete",
        &[("password", password)],
    )
}

/// A verified customer with `amount` credited, signed in on the web, with its API key.
fn customer(server: &TestServer, email: &str, amount: &str) -> (Client, Api, String) {
    let id = server.create_user(email, "user", PASSWORD);
    server.cli_ok(&["user", "credit", "--email", email, "--amount", amount]);
    let key = server.api_key(email);
    let mut web = server.client();
    assert_eq!(web.login(email, PASSWORD).location(), Some("/dashboard"));
    (web, Api::new(server, &key, id, email), key)
}

/// Registers a device with one SIM for the account, as the gateway registration would.
fn add_device(server: &TestServer, owner: i64, phone: &str) {
    let db = server.db();
    db.execute(
        "INSERT INTO devices (public_id, owner_id, name, kind, secret_salt, created_at, last_seen_at) \
         VALUES (?1, ?2, 'Kitchen phone', 'generic', 'salt', strftime('%s','now'), strftime('%s','now'))",
        rusqlite::params![format!("dev{owner}"), owner],
    )
    .unwrap();
    let device = db.last_insert_rowid();
    db.execute(
        "INSERT INTO numbers (phone, country_id, operator, source, owner_id, device_id, slot, created_at) \
         VALUES (?1, ?2, '', 'sim', ?3, ?4, 1, strftime('%s','now'))",
        rusqlite::params![phone, COUNTRY, owner, device],
    )
    .unwrap();
}

fn user_field(server: &TestServer, id: i64, column: &str) -> Option<String> {
    server
        .db()
        .query_row(
            &format!("SELECT CAST({column} AS TEXT) FROM users WHERE id = ?1"),
            [id],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn deletion_refunds_live_orders_forfeits_the_rest_and_cuts_every_access_at_once() {
    let server = dev_server();
    server.add_numbers(
        COUNTRY,
        &["6281100000001", "6281100000002", "6281100000003"],
    );
    let email = "gone@example.com";
    let (mut web, mut api, key) = customer(&server, email, "20.00");
    let uid = api.user_id;
    let mut other_session = server.client();
    assert_eq!(
        other_session.login(email, PASSWORD).location(),
        Some("/dashboard")
    );
    let r = web.submit(
        "/settings/webhooks",
        "/settings/webhooks",
        &[
            ("url", "https://hooks.example.com/otp"),
            ("events", "rental.sms"),
        ],
    );
    assert_eq!(r.status, 201, "{}", r.text());

    // Order A gets no code (and is still inside the early-cancel window), order B gets one,
    // rental C gets no SMS.
    let a = id_of(&api.order_ok("tg"));
    let b = api.order_ok("wa");
    assert!(server.inject(b["phone"].as_str().unwrap(), "Your WhatsApp code 123-456"));
    let b = id_of(&b);
    let r = api.post(
        "/api/v1/rentals",
        json!({"country": COUNTRY, "service": "tg", "hours": 4}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let rental = id_of(&r.json());
    let rental_paid = r.json()["paid_minor"].as_i64().unwrap();
    assert_eq!(
        api.act(a, "cancel").status,
        409,
        "the early-cancel window holds"
    );
    let price_a = server.ledger_of("activation", a)[0].1.abs();
    add_device(&server, uid, "6281199990000");
    let balance = api.balance();

    // A wrong password and a missing CSRF token are refused and change nothing.
    let r = delete_account(&mut web, "not my password");
    let r = web.back_to(&r, "/settings/delete");
    assert!(r.text().contains("The password is wrong."));
    let r = web.post_form("/settings/delete", &[("password", PASSWORD)]);
    assert_eq!(r.status, 403);
    assert_eq!(user_field(&server, uid, "state").as_deref(), Some("active"));
    assert_eq!(api.balance(), balance);
    assert_eq!(
        server.count("SELECT COUNT(*) FROM ledger WHERE kind IN ('forfeit', 'refund')"),
        0
    );
    assert_eq!(api.activation(a)["status"], "waiting");

    let r = delete_account(&mut web, PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.location(), Some("/login?m=account_deleted"));
    assert_eq!(web.session(), None, "the cookie is cleared");

    // Orders: refunded without a code, completed with one, before the forfeit.
    assert_eq!(
        server.ledger_of("activation", a),
        vec![("charge".into(), -price_a), ("refund".into(), price_a)]
    );
    assert_eq!(
        server.ledger_of("activation", b).len(),
        1,
        "no refund after a code"
    );
    assert_eq!(
        server.ledger_of("rental", rental),
        vec![
            ("charge".into(), -rental_paid),
            ("refund".into(), rental_paid)
        ]
    );
    let statuses: Vec<String> = {
        let db = server.db();
        let mut stmt = db
            .prepare("SELECT status FROM activations WHERE user_id = ?1 ORDER BY id")
            .unwrap();
        let rows = stmt.query_map([uid], |r| r.get(0)).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    };
    assert_eq!(statuses, ["canceled", "completed"]);
    assert_eq!(
        server.count(&format!(
            "SELECT COUNT(*) FROM rentals WHERE user_id = {uid} AND status = 'canceled'"
        )),
        1
    );
    assert_eq!(
        server.count("SELECT COUNT(*) FROM numbers WHERE state = 'busy'"),
        0,
        "the numbers are free again"
    );
    let (last_kind, last_amount): (String, i64) = server
        .db()
        .query_row(
            "SELECT kind, amount_minor FROM ledger WHERE user_id = ?1 ORDER BY id DESC LIMIT 1",
            [uid],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(last_kind, "forfeit");
    assert_eq!(last_amount, -(balance + price_a + rental_paid));
    assert_eq!(
        user_field(&server, uid, "balance_minor").as_deref(),
        Some("0")
    );
    server.assert_books_balance();

    // Every way in is dead at once.
    assert_eq!(
        user_field(&server, uid, "state").as_deref(),
        Some("deleted")
    );
    assert_eq!(
        server.count(&format!(
            "SELECT COUNT(*) FROM sessions WHERE user_id = {uid}"
        )),
        0
    );
    let r = other_session.get("/dashboard");
    assert_eq!(r.status, 303, "the other session is signed out");
    let r = api.get("/api/v1/balance");
    assert_eq!(r.status, 401);
    let r = server.client().get(&format!(
        "/stubs/handler_api.php?api_key={key}&action=getBalance"
    ));
    assert_eq!(r.text(), "BAD_KEY");
    assert_eq!(
        server.count(&format!(
            "SELECT COUNT(*) FROM api_keys WHERE user_id = {uid} AND revoked_at IS NULL"
        )),
        0
    );
    assert_eq!(
        server.count(&format!(
            "SELECT COUNT(*) FROM webhooks WHERE user_id = {uid}"
        )),
        0
    );
    assert_eq!(
        server.count(&format!(
            "SELECT COUNT(*) FROM devices WHERE owner_id = {uid} AND revoked_at IS NOT NULL"
        )),
        1
    );
    assert_eq!(
        server.count("SELECT on_sale FROM numbers WHERE phone = '6281199990000'"),
        0,
        "the device's SIM left the stock"
    );
    let r = server.client().login_refused(email, PASSWORD);
    assert!(
        r.text().contains("Wrong e-mail or password."),
        "login refused"
    );
    assert_eq!(
        server.count(&format!(
            "SELECT COUNT(*) FROM security_events WHERE user_id = {uid} AND kind = 'account_deleted'"
        )),
        1
    );
    let mail = server.outbox();
    let confirmation = mail
        .iter()
        .find(|m| m.to == email && m.subject == "Your otpbox account was deleted")
        .expect("a confirmation mail");
    // The default cooldown, 30 days, worded as the privacy page words it.
    assert!(
        confirmation.body.contains("for a new account for 1 month"),
        "{}",
        confirmation.body
    );
}

#[test]
fn the_address_waits_out_the_cooldown_then_the_purge_makes_the_deletion_final() {
    let server = dev_server();
    let email = "again@example.com";
    let (mut web, id) = server.signed_in(email, "user");
    server.cli_ok(&["user", "credit", "--email", email, "--amount", "3.00"]);
    assert_eq!(
        web.submit(
            "/settings",
            "/settings/profile",
            &[("display_name", "Ann Again")]
        )
        .location(),
        Some("/settings?m=saved")
    );
    assert_eq!(delete_account(&mut web, PASSWORD).status, 303);

    let refused = |server: &TestServer| {
        let mut c = server.client();
        let r = c.signup(email, PASSWORD);
        let r = c.back_to(&r, "/signup");
        assert!(
            r.text()
                .contains("the address can be used for a new account from"),
            "{}",
            r.text()
        );
    };
    refused(&server);
    server.advance_clock(29 * DAY);
    server.run_jobs();
    refused(&server);
    assert_eq!(user_field(&server, id, "email").as_deref(), Some(email));

    server.advance_clock(DAY + 3600);
    let jobs = server.run_jobs();
    assert!(jobs.contains("1 deleted accounts purged"), "{jobs}");
    assert_eq!(
        user_field(&server, id, "email"),
        Some(format!("deleted-{id}@invalid"))
    );
    assert_eq!(user_field(&server, id, "password_hash"), None);
    assert_eq!(user_field(&server, id, "display_name").as_deref(), Some(""));
    assert_eq!(user_field(&server, id, "state").as_deref(), Some("deleted"));
    assert!(user_field(&server, id, "purged_at").is_some());
    assert_eq!(
        server.count(&format!(
            "SELECT COUNT(*) FROM outbox WHERE to_addr = '{email}'"
        )),
        0,
        "mail to the old address is gone too"
    );
    // The ledger stays, and the books still balance.
    assert_eq!(
        server.count(&format!("SELECT COUNT(*) FROM ledger WHERE user_id = {id}")),
        2
    );
    server.assert_books_balance();

    // The address is free: a new, separate account.
    let mut again = server.client();
    let r = again.signup(email, PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_ne!(server.user_id(email), Some(id));
    server.assert_books_balance();
}

#[test]
fn export_holds_every_section_of_the_account_and_nothing_of_anyone_else() {
    let server = dev_server();
    server.add_numbers(COUNTRY, &["6281100000011", "6281100000012"]);
    let (mut web, mut api, key) = customer(&server, "mine@example.com", "10.00");
    let (_, mut other, other_key) = customer(&server, "other@example.com", "10.00");
    let mine = api.order_ok("tg");
    let mine_phone = mine["phone"].as_str().unwrap().to_string();
    assert!(server.inject(&mine_phone, "Telegram code 11111"));
    let theirs = other.order_ok("tg");
    let their_phone = theirs["phone"].as_str().unwrap().to_string();
    assert!(server.inject(&their_phone, "Telegram code 22222"));
    add_device(&server, api.user_id, "6281177770000");
    assert_eq!(
        web.submit(
            "/settings/webhooks",
            "/settings/webhooks",
            &[
                ("url", "https://hooks.example.com/mine"),
                ("events", "rental.sms")
            ],
        )
        .status,
        201
    );
    assert_eq!(
        web.submit("/settings", "/settings/restrict", &[("restrict", "1")])
            .status,
        303
    );

    let settings = web.get("/settings").text();
    assert!(settings.contains("href=\"/settings/export\""));
    let r = web.get("/settings/export");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let disposition = r.header("content-disposition").unwrap_or_default();
    assert!(
        disposition.starts_with("attachment; filename=\"otpbox-export-"),
        "{disposition}"
    );
    let text = r.text();
    let doc: Value = r.json();
    for section in [
        "format",
        "exported_at",
        "profile",
        "activations",
        "rentals",
        "messages",
        "ledger",
        "payments",
        "api_keys",
        "webhooks",
        "webhook_deliveries",
        "devices",
        "payouts",
        "security_events",
        "sessions",
        "requests",
        "mail",
    ] {
        assert!(doc.get(section).is_some(), "no {section} in the export");
    }
    assert_eq!(doc["format"], "otpbox-export/1");
    assert_eq!(doc["profile"]["email"], "mine@example.com");
    assert!(doc["profile"]["processing_restricted_at"].is_string());
    let orders = doc["activations"].as_array().unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["id"], mine["id"]);
    assert_eq!(orders[0]["phone"], mine_phone.as_str());
    assert_eq!(doc["messages"][0]["code"], "11111");
    let kinds: Vec<&str> = doc["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["adjustment", "charge"]);
    assert_eq!(doc["api_keys"][0]["prefix"], &key[..10]);
    assert_eq!(doc["webhooks"][0]["url"], "https://hooks.example.com/mine");
    assert_eq!(doc["webhooks"][0]["events"], json!(["rental.sms"]));
    assert_eq!(doc["devices"][0]["name"], "Kitchen phone");
    assert_eq!(doc["devices"][0]["sims"][0]["phone"], "6281177770000");
    assert!(!doc["sessions"].as_array().unwrap().is_empty());
    assert!(doc["security_events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "login"));
    assert_eq!(doc["requests"][0]["kind"], "restrict");
    // Secrets never, and nothing of the other account.
    for absent in [
        key.as_str(),
        other_key.as_str(),
        "$argon2",
        "key_hash",
        "secret_salt",
        "other@example.com",
        their_phone.as_str(),
        "22222",
    ] {
        assert!(!text.contains(absent), "the export contains {absent:?}");
    }

    // The admin's export of someone else's data is audited.
    let (mut admin, admin_id) = server.signed_in("boss@example.com", "admin");
    let r = admin.get(&format!("/admin/users/{}/export", other.user_id));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["profile"]["email"], "other@example.com");
    assert!(!r.text().contains("11111"));
    assert_eq!(
        server.count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'export' AND actor_id = {admin_id} \
             AND target_id = {}",
            other.user_id
        )),
        1
    );
    // A visitor gets nothing.
    let r = server.client().get("/settings/export");
    assert_eq!(r.status, 303);
}

#[test]
fn an_email_change_needs_the_link_sent_to_the_new_address_and_is_told_to_the_old() {
    let server = TestServer::start();
    let (mut web, id) = server.signed_in("old@example.com", "user");
    server.create_user("taken@example.com", "user", PASSWORD);
    let change = |web: &mut Client, email: &str, password: &str| {
        web.submit(
            "/settings",
            "/settings/email",
            &[("email", email), ("password", password)],
        )
    };

    let r = change(&mut web, "Taken@example.com", PASSWORD);
    let r = web.back_to(&r, "/settings");
    assert!(r
        .text()
        .contains("An account with this e-mail address already exists."));
    let r = change(&mut web, "new@example.com", "wrong password");
    let page = web.back_to(&r, "/settings").text();
    assert!(page.contains("The current password is wrong."));
    assert!(
        page.contains(r#"value="new@example.com""#),
        "the new address is filled in again"
    );
    assert!(
        server.outbox().is_empty(),
        "nothing sent for refused changes"
    );

    let r = change(&mut web, "New@Example.com", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.location(), Some("/settings?m=email_sent"));
    assert_eq!(
        user_field(&server, id, "email").as_deref(),
        Some("old@example.com")
    );
    let mail = server.outbox();
    assert!(mail
        .iter()
        .any(|m| m.to == "old@example.com" && m.body.contains("new@example.com")));
    let link = server.only_link("/settings/email/confirm/");
    assert!(mail
        .iter()
        .any(|m| m.to == "new@example.com" && m.body.contains(&link)));

    let r = web.get(&link);
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), Some("/settings?m=email_changed"));
    assert_eq!(
        user_field(&server, id, "email").as_deref(),
        Some("new@example.com")
    );
    assert!(server.outbox().iter().any(
        |m| m.to == "old@example.com" && m.subject == "Your otpbox e-mail address was changed"
    ));
    assert_eq!(
        server.client().get(&link).status,
        400,
        "the link works once"
    );
    assert_eq!(
        server.count(&format!(
            "SELECT COUNT(*) FROM security_events WHERE user_id = {id} AND kind = 'email_changed'"
        )),
        1
    );
    assert!(server
        .client()
        .login_refused("old@example.com", PASSWORD)
        .text()
        .contains("Wrong e-mail or password."));
    assert_eq!(
        server
            .client()
            .login("new@example.com", PASSWORD)
            .location(),
        Some("/dashboard")
    );

    // The display name is corrected in place.
    assert_eq!(
        web.submit(
            "/settings",
            "/settings/profile",
            &[("display_name", "Ann N.")]
        )
        .status,
        303
    );
    assert_eq!(
        user_field(&server, id, "display_name").as_deref(),
        Some("Ann N.")
    );
}

#[test]
fn the_processing_restriction_is_recorded_and_shown_to_the_admin() {
    let server = TestServer::start();
    let (mut web, id) = server.signed_in("quiet@example.com", "user");
    let r = web.submit("/settings", "/settings/restrict", &[("restrict", "1")]);
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), Some("/settings?m=restricted"));
    assert!(web
        .get("/settings")
        .text()
        .contains("Processing of your data is restricted"));
    assert!(user_field(&server, id, "processing_restricted_at").is_some());
    assert_eq!(
        server.count(&format!(
            "SELECT COUNT(*) FROM security_events WHERE user_id = {id} AND kind = 'processing_restricted'"
        )),
        1
    );

    let (mut admin, _) = server.signed_in("boss@example.com", "admin");
    let page = admin.get("/admin/requests").text();
    assert!(page.contains("quiet@example.com") && page.contains("restrict processing"));
    assert!(admin
        .get(&format!("/admin/users/{id}"))
        .text()
        .contains("Processing restricted"));
    assert!(admin.get("/admin/users").text().contains("restricted"));
    let r = admin.submit("/admin/requests", "/admin/requests/1/handled", &[]);
    assert_eq!(r.status, 303);
    assert_eq!(
        server.count("SELECT COUNT(*) FROM account_requests WHERE handled_at IS NOT NULL"),
        1
    );

    let r = web.submit("/settings", "/settings/restrict", &[("restrict", "0")]);
    assert_eq!(r.location(), Some("/settings?m=unrestricted"));
    assert_eq!(user_field(&server, id, "processing_restricted_at"), None);
    assert_eq!(
        server.count(&format!(
            "SELECT COUNT(*) FROM account_requests WHERE user_id = {id} AND kind = 'unrestrict'"
        )),
        1
    );
}

#[test]
fn the_last_admin_cannot_delete_their_account_and_an_admin_deletion_is_audited() {
    let server = TestServer::start();
    let (mut boss, boss_id) = server.signed_in("boss@example.com", "admin");
    let r = delete_account(&mut boss, PASSWORD);
    let r = boss.back_to(&r, "/settings/delete");
    assert!(r.text().contains("only administrator"), "{}", r.text());
    assert_eq!(
        user_field(&server, boss_id, "state").as_deref(),
        Some("active")
    );

    let (_, victim) = server.signed_in("victim@example.com", "user");
    let page = format!("/admin/users/{victim}");
    let action = format!("/admin/users/{victim}/delete");
    let r = boss.submit(&page, &action, &[("confirm", "someone@else.com")]);
    assert!(boss
        .back_to(&r, &page)
        .text()
        .contains("e-mail address to confirm the deletion."));
    assert_eq!(
        user_field(&server, victim, "state").as_deref(),
        Some("active")
    );
    let r = boss.submit(&page, &action, &[("confirm", "victim@example.com")]);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        user_field(&server, victim, "state").as_deref(),
        Some("deleted")
    );
    assert_eq!(
        server.count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'account_delete' AND actor_id = {boss_id} \
             AND target_id = {victim}"
        )),
        1
    );
    assert!(server
        .outbox()
        .iter()
        .any(|m| m.to == "victim@example.com" && m.body.contains("An administrator deleted")));
}

#[test]
fn the_privacy_page_states_the_live_deletion_cooldown() {
    let server = TestServer::start_with(&[("OTPBOX_DELETION_COOLDOWN", "45d")]);
    let page = server.client().get("/privacy").text();
    assert!(
        page.contains("<span class=\"cooldown\">45 days</span>"),
        "{page}"
    );
    assert!(page.contains("Deletion is immediate"));
    let row = page
        .split("<tr>")
        .find(|r| r.contains("A deleted account"))
        .expect("a retention row for deleted accounts");
    assert!(row.contains("class=\"period\">45 days<"), "{row}");
}
