//! The security log a person sees of their own account (`/settings/security`: logins, failed
//! logins, keys, password and two-factor changes, newest first, paged, addresses only as
//! keyed hashes), and the admin's audit: every admin action that reads or changes someone
//! else's data writes a row with actor, target, action, time and hashed address, and
//! `/admin/audit` lists them, filtered by account and action, paged.

mod common;

use common::{Client, TestServer, PASSWORD};

/// The `data-kind` of every row of the events table on a page, top to bottom.
fn listed_kinds(html: &str) -> Vec<String> {
    html.split("data-kind=\"")
        .skip(1)
        .map(|p| p[..p.find('"').unwrap()].to_string())
        .collect()
}

/// Audit rows as (action, actor, target, detail, ip_hash), oldest first.
type Row = (String, Option<i64>, Option<i64>, String, String);

fn audit_rows(s: &TestServer) -> Vec<Row> {
    let db = s.db();
    let mut st = db
        .prepare(
            "SELECT action, actor_id, target_id, detail, ip_hash FROM audit_log \
             WHERE actor_id IS NOT NULL ORDER BY id",
        )
        .unwrap();
    st.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// The audit table's rows on a page: (who, action, on).
fn audit_table(html: &str) -> Vec<(String, String, String)> {
    let table = &html[html.find("<table id=\"audit\">").expect("audit table")..];
    let table = &table[..table.find("</table>").unwrap()];
    table
        .split("<tr>")
        .skip(2)
        .map(|row| {
            let cells: Vec<String> = row
                .split("<td>")
                .skip(1)
                .map(|c| c[..c.find("</td>").unwrap()].to_string())
                .collect();
            (cells[1].clone(), cells[2].clone(), cells[3].clone())
        })
        .collect()
}

#[test]
fn a_person_sees_their_own_security_events_newest_first() {
    let s = TestServer::start();
    let ann = s.create_user("ann@example.com", "user", PASSWORD);
    s.create_user("bob@example.com", "user", PASSWORD);
    let mut bob = s.client();
    bob.login_refused("bob@example.com", "wrong password");

    let mut c = s.client();
    c.login_refused("ann@example.com", "not the password");
    assert_eq!(
        c.login("ann@example.com", PASSWORD).location(),
        Some("/dashboard")
    );
    assert_eq!(c.submit("/keys", "/keys", &[("name", "ci")]).status, 201);
    let key_id: i64 = s
        .db()
        .query_row("SELECT id FROM api_keys WHERE user_id = ?1", [ann], |r| {
            r.get(0)
        })
        .unwrap();
    let r = c.submit("/keys", &format!("/keys/{key_id}/revoke"), &[]);
    assert_eq!(r.status, 303, "{}", r.text());
    let keys = c.follow(&r).text();
    assert!(keys.contains(&format!("Key #{key_id} revoked")), "{keys}");
    let r = c.submit(
        "/settings",
        "/settings/password",
        &[
            ("current_password", PASSWORD),
            ("password", "another long passphrase"),
        ],
    );
    assert_eq!(r.status, 303);
    assert_eq!(
        c.login("ann@example.com", "another long passphrase")
            .location(),
        Some("/dashboard")
    );

    let page = c.get("/settings/security");
    assert_eq!(page.status, 200);
    let html = page.text();
    assert_eq!(
        listed_kinds(&html),
        [
            "login",
            "password_changed",
            "api_key_revoked",
            "api_key_created",
            "login",
            "login_failed",
        ],
        "{html}"
    );
    assert!(html.contains("Wrong password"));
    assert!(html.contains("API key created (ci)"));
    // Addresses appear only as the keyed hash, never in clear.
    assert!(!html.contains("127.0.0.1"));
    let hash: String = s
        .db()
        .query_row(
            "SELECT ip_hash FROM security_events WHERE kind = 'api_key_created'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(hash.len(), 24);
    assert!(html.contains(&format!(">{}</code>", &hash[..8])));
    // Every event recorded from the web carries the hashed address.
    assert_eq!(
        s.count("SELECT COUNT(*) FROM security_events WHERE user_id IS NOT NULL AND ip_hash = ''"),
        0
    );
    // The settings page shows the latest few and links to the whole log.
    let settings = c.get("/settings").text();
    assert!(settings.contains("href=\"/settings/security\""));
    assert_eq!(listed_kinds(&settings)[0], "login");
}

#[test]
fn the_security_log_is_paged_fifty_at_a_time() {
    let s = TestServer::start();
    let (mut c, ann) = s.signed_in("ann@example.com", "user");
    let bob = s.create_user("bob@example.com", "user", PASSWORD);
    {
        let db = s.db();
        for i in 0..60 {
            db.execute(
                "INSERT INTO security_events (at, user_id, kind, ip_hash, detail) \
                 VALUES (?1, ?2, 'api_key_created', 'x', ?3)",
                rusqlite::params![1_000 + i, ann, format!("key {i}")],
            )
            .unwrap();
            db.execute(
                "INSERT INTO security_events (at, user_id, kind, ip_hash, detail) \
                 VALUES (?1, ?2, 'login', 'x', 'bob')",
                rusqlite::params![1_000 + i, bob],
            )
            .unwrap();
        }
    }
    // The login of the helper and 60 rows recorded after it: 61 events, 50 + 11, newest
    // recorded first, paged by keyset (`before` = the last event shown).
    let first = c.get("/settings/security").text();
    let kinds = listed_kinds(&first);
    assert_eq!(kinds.len(), 50);
    assert_eq!(kinds[0], "api_key_created");
    assert!(first.contains("(key 59)") && first.contains("(key 10)"));
    assert!(!first.contains("(key 9)"));
    let key10: i64 = s
        .db()
        .query_row(
            "SELECT id FROM security_events WHERE detail = 'key 10'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(first.contains(&format!("href=\"/settings/security?before={key10}\"")));
    assert!(!first.contains("rel=\"first\""));
    let second = c.get(&format!("/settings/security?before={key10}")).text();
    let kinds = listed_kinds(&second);
    assert_eq!(kinds.len(), 11);
    assert!(second.contains("(key 9)") && second.contains("(key 0)"));
    assert_eq!(kinds[10], "login", "oldest last");
    assert!(second.contains("href=\"/settings/security\""));
    assert!(!second.contains("rel=\"next\""));
    assert!(!first.contains("(bob)") && !second.contains("(bob)"));
    assert_eq!(
        listed_kinds(&c.get("/settings/security?before=1").text()).len(),
        0
    );
    assert_eq!(c.get("/settings/security?before=abc").status, 200);
}

/// An admin signed in on the web, ann with some money.
fn admin_and_ann(s: &TestServer) -> (Client, i64, i64) {
    let (admin, root) = s.signed_in("root@example.com", "admin");
    let ann = s.create_user("ann@example.com", "user", PASSWORD);
    (admin, root, ann)
}

#[test]
fn every_admin_read_or_change_of_someone_elses_data_writes_an_audit_row() {
    let s = TestServer::start();
    let (mut admin, root, ann) = admin_and_ann(&s);
    let page = format!("/admin/users/{ann}");

    let r = admin.submit(
        &page,
        &format!("{page}/credit"),
        &[("amount", "12.50"), ("note", "welcome")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let r = admin.get(&format!("{page}/ledger"));
    assert_eq!(r.status, 200);
    assert!(r.text().contains("12.50"), "the ledger shows the credit");
    assert!(r.text().contains("recorded in the audit log"));
    let r = admin.submit(&page, &format!("{page}/role"), &[("role", "operator")]);
    assert_eq!(r.status, 303);
    let r = admin.submit(
        &page,
        &format!("{page}/state"),
        &[("state", "suspended"), ("reason", "chargeback")],
    );
    assert_eq!(r.status, 303);
    assert_eq!(admin.get("/admin/outbox").status, 200);
    // The admin API's view of an account includes its ledger: audited the same way.
    let r = admin.get(&format!("/api/v1/admin/users/{ann}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["ledger"].as_array().unwrap().len(), 1);

    let rows = audit_rows(&s);
    let got: Vec<(&str, Option<i64>, Option<i64>, &str)> = rows
        .iter()
        .map(|r| (r.0.as_str(), r.1, r.2, r.3.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("credit", Some(root), Some(ann), "12.50 welcome"),
            ("ledger_viewed", Some(root), Some(ann), "1 latest entries"),
            ("role_change", Some(root), Some(ann), "user → operator"),
            (
                "state_change",
                Some(root),
                Some(ann),
                "active → suspended: chargeback"
            ),
            ("outbox_viewed", Some(root), None, "0 latest mails"),
            ("ledger_viewed", Some(root), Some(ann), "1 latest entries"),
        ]
    );
    // Each with the time and the keyed hash of the admin's address, never the address.
    for r in &rows {
        assert_eq!(r.4.len(), 24, "{r:?}");
        assert_ne!(r.4, "127.0.0.1");
    }
    assert_eq!(
        s.count("SELECT COUNT(*) FROM audit_log WHERE at IS NULL OR at = 0"),
        0
    );
    // Looking at the account's own page, which shows no private data, is not audited;
    // an unknown account writes nothing.
    let before = audit_rows(&s).len();
    assert_eq!(admin.get(&page).status, 200);
    assert_eq!(admin.get("/admin/users/999/ledger").status, 404);
    assert_eq!(audit_rows(&s).len(), before);
}

#[test]
fn refused_admin_reads_write_nothing() {
    let s = TestServer::start();
    let (_, _, ann) = admin_and_ann(&s);
    let (mut bob, _) = s.signed_in("bob@example.com", "user");
    assert_eq!(bob.get(&format!("/admin/users/{ann}/ledger")).status, 403);
    assert_eq!(bob.get("/admin/outbox").status, 403);
    assert_eq!(bob.get("/admin/audit").status, 403);
    assert_eq!(bob.get(&format!("/api/v1/admin/users/{ann}")).status, 403);
    assert!(audit_rows(&s).is_empty());
}

#[test]
fn the_audit_page_lists_filters_by_account_and_action_and_pages() {
    let s = TestServer::start();
    let (mut admin, _, ann) = admin_and_ann(&s);
    let bob = s.create_user("bob@example.com", "user", PASSWORD);
    for (who, amount) in [(ann, "1.00"), (bob, "2.00"), (ann, "3.00")] {
        let page = format!("/admin/users/{who}");
        let r = admin.submit(&page, &format!("{page}/credit"), &[("amount", amount)]);
        assert_eq!(r.status, 303);
    }
    assert_eq!(admin.get(&format!("/admin/users/{bob}/ledger")).status, 200);

    let all = admin.get("/admin/audit").text();
    assert!(
        all.contains("href=\"/admin/audit\""),
        "linked from the admin nav"
    );
    let rows = audit_table(&all);
    // Newest first; `otpbox user create` rows are the command line's.
    assert_eq!(
        rows[..4],
        [
            (
                "root@example.com".into(),
                "ledger_viewed".into(),
                "bob@example.com".into()
            ),
            (
                "root@example.com".into(),
                "credit".into(),
                "ann@example.com".into()
            ),
            (
                "root@example.com".into(),
                "credit".into(),
                "bob@example.com".into()
            ),
            (
                "root@example.com".into(),
                "credit".into(),
                "ann@example.com".into()
            ),
        ]
    );
    assert!(rows[4..]
        .iter()
        .all(|r| r.0 == "command line" && r.1 == "account_created"));

    let by_email = audit_table(&admin.get("/admin/audit?target=ann%40example").text());
    assert_eq!(
        by_email.len(),
        3,
        "two credits and her creation: {by_email:?}"
    );
    assert!(by_email.iter().all(|r| r.2 == "ann@example.com"));
    let by_id = audit_table(&admin.get(&format!("/admin/audit?target={bob}")).text());
    assert_eq!(by_id.len(), 3);
    assert!(by_id.iter().all(|r| r.2 == "bob@example.com"));
    let credits = audit_table(&admin.get("/admin/audit?action=credit").text());
    assert_eq!(credits.len(), 3);
    let both = audit_table(
        &admin
            .get(&format!("/admin/audit?target={bob}&action=ledger_viewed"))
            .text(),
    );
    assert_eq!(both.len(), 1);
    // The filter's wildcard characters match literally.
    assert!(audit_table(&admin.get("/admin/audit?target=%25").text()).is_empty());
    // The action list offers the actions present.
    let page = admin.get("/admin/audit").text();
    assert!(page.contains("<option value=\"ledger_viewed\">"));

    // Paging: 100 per page.
    {
        let db = s.db();
        for i in 0..120 {
            db.execute(
                "INSERT INTO audit_log (at, actor_id, target_id, action, detail) \
                 VALUES (?1, NULL, ?2, 'bulk', ?3)",
                rusqlite::params![1_000 + i, bob, format!("n{i}")],
            )
            .unwrap();
        }
    }
    let first = admin.get("/admin/audit?action=bulk").text();
    assert_eq!(audit_table(&first).len(), 100);
    let n20: i64 = s
        .db()
        .query_row("SELECT id FROM audit_log WHERE detail = 'n20'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(first.contains(&format!(
        "href=\"/admin/audit?target=&amp;action=bulk&amp;before={n20}\""
    )));
    let second = admin
        .get(&format!("/admin/audit?action=bulk&before={n20}"))
        .text();
    assert_eq!(audit_table(&second).len(), 20);
    assert!(second.contains("<td>n0</td>"));
    assert!(!second.contains("rel=\"next\""));
}
