//! Who may open the admin pages, and what the admin can do to accounts: search, change
//! roles (audited), suspend; the last admin keeps the role.

mod common;

use common::{Client, TestServer, PASSWORD};

const ADMIN_PAGES: [&str; 6] = [
    "/admin",
    "/admin/users",
    "/admin/users/1",
    "/admin/jobs",
    "/admin/outbox",
    "/admin/audit",
];

fn assert_forbidden_everywhere(client: &mut Client) {
    for path in ADMIN_PAGES {
        let r = client.get(path);
        assert_eq!(r.status, 403, "{path}");
        assert!(
            r.text().contains("You do not have access to this page."),
            "{path}"
        );
    }
}

fn role_of(server: &TestServer, id: i64) -> String {
    server
        .db()
        .query_row("SELECT role FROM users WHERE id = ?1", [id], |r| r.get(0))
        .unwrap()
}

/// Posts the role form of the user page `/admin/users/{id}`.
fn set_role(admin: &mut Client, id: i64, role: &str) -> common::Response {
    let page = format!("/admin/users/{id}");
    admin.submit(&page, &format!("{page}/role"), &[("role", role)])
}

#[test]
fn user_gets_403_on_admin_pages() {
    let server = TestServer::start();
    let (mut user, _) = server.signed_in("ann@example.com", "user");
    assert_forbidden_everywhere(&mut user);
}

#[test]
fn operator_gets_403_on_admin_pages() {
    let server = TestServer::start();
    let (mut operator, _) = server.signed_in("olga@example.com", "operator");
    assert_forbidden_everywhere(&mut operator);
}

#[test]
fn anonymous_admin_request_redirects_to_login_and_back() {
    let server = TestServer::start();
    let r = server.client().get("/admin");
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), Some("/login?next=%2Fadmin"));
    let r = server.client().get("/admin/users");
    assert_eq!(r.location(), Some("/login?next=%2Fadmin%2Fusers"));

    server.create_user("root@example.com", "admin", PASSWORD);
    let mut c = server.client();
    let form = c.get("/login?next=%2Fadmin");
    let csrf = form.csrf();
    assert!(form.text().contains("name=\"next\" value=\"/admin\""));
    let r = c.post_form(
        "/login",
        &[
            ("email", "root@example.com"),
            ("password", PASSWORD),
            ("next", "/admin"),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), Some("/admin"));
}

#[test]
fn user_cannot_change_a_role_by_posting_the_form() {
    let server = TestServer::start();
    let (mut user, id) = server.signed_in("ann@example.com", "user");
    let csrf = user.get("/dashboard").csrf();
    let r = user.post_form(
        &format!("/admin/users/{id}/role"),
        &[("role", "admin"), ("csrf", &csrf)],
    );
    assert_eq!(r.status, 403);
    assert_eq!(role_of(&server, id), "user");
    assert_eq!(
        server.count("SELECT COUNT(*) FROM audit_log WHERE action = 'role_change'"),
        0
    );
}

#[test]
fn admin_search_finds_users_by_email_fragment() {
    let server = TestServer::start();
    let (mut admin, _) = server.signed_in("root@example.com", "admin");
    server.create_user("ann@example.com", "user", PASSWORD);
    server.create_user("bob@example.org", "user", PASSWORD);

    let r = admin.get("/admin/users?q=ann");
    assert_eq!(r.status, 200);
    assert!(r.text().contains(">ann@example.com</a>"));
    assert!(!r.text().contains("bob@example.org"));

    let r = admin.get("/admin/users?q=example.org");
    assert!(r.text().contains(">bob@example.org</a>"));
    assert!(!r.text().contains("ann@example.com"));

    let r = admin.get("/admin/users");
    for email in ["root@example.com", "ann@example.com", "bob@example.org"] {
        assert!(r.text().contains(&format!(">{email}</a>")), "{email}");
    }
}

#[test]
fn admin_role_change_takes_effect_and_is_audited() {
    let server = TestServer::start();
    let (mut admin, _) = server.signed_in("root@example.com", "admin");
    let (mut ann, ann_id) = server.signed_in("ann@example.com", "user");

    let r = set_role(&mut admin, ann_id, "operator");
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.location(),
        Some(format!("/admin/users/{ann_id}?m=role_changed").as_str())
    );
    assert_eq!(role_of(&server, ann_id), "operator");
    let page = admin
        .get(&format!("/admin/users/{ann_id}?m=role_changed"))
        .text();
    assert!(page.contains("Role changed."));
    assert!(page.contains("<dd id=\"role\">operator</dd>"));

    let audit = admin.get("/admin/audit").text();
    assert!(
        audit.contains(
            "<td>root@example.com</td><td>role_change</td><td>ann@example.com</td>\
         <td>user → operator</td>"
        ),
        "{audit}"
    );

    // Promoted to admin, her open session opens the admin pages at once.
    assert_eq!(ann.get("/admin").status, 403);
    assert_eq!(set_role(&mut admin, ann_id, "admin").status, 303);
    assert_eq!(ann.get("/admin").status, 200);
}

#[test]
fn suspended_user_loses_the_session_and_cannot_log_in() {
    let server = TestServer::start();
    let (mut admin, _) = server.signed_in("root@example.com", "admin");
    let (mut ann, ann_id) = server.signed_in("ann@example.com", "user");

    let page = format!("/admin/users/{ann_id}");
    let r = admin.submit(
        &page,
        &format!("{page}/state"),
        &[("state", "suspended"), ("reason", "chargeback")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(admin
        .get(&page)
        .text()
        .contains("<dd id=\"state\">suspended — chargeback</dd>"));

    let r = ann.get("/dashboard");
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), Some("/login?next=%2Fdashboard"));
    let r = ann.login_refused("ann@example.com", PASSWORD);
    assert!(r
        .text()
        .contains("This account is suspended. Contact the operator of this site."));
    assert_eq!(
        server.count("SELECT COUNT(*) FROM sessions WHERE user_id IS NOT NULL"),
        1,
        "only the admin's session is left"
    );
    assert!(admin
        .get("/admin/audit")
        .text()
        .contains("<td>active → suspended: chargeback</td>"));

    // Reactivated, she can log in again.
    let r = admin.submit(&page, &format!("{page}/state"), &[("state", "active")]);
    assert_eq!(r.status, 303);
    assert_eq!(
        ann.login("ann@example.com", PASSWORD).location(),
        Some("/dashboard")
    );
}

#[test]
fn last_admin_cannot_demote_themselves() {
    let server = TestServer::start();
    let (mut admin, admin_id) = server.signed_in("root@example.com", "admin");
    let r = set_role(&mut admin, admin_id, "user");
    assert_eq!(r.location(), Some(&*format!("/admin/users/{admin_id}")));
    assert!(admin
        .follow(&r)
        .text()
        .contains("The last administrator cannot lose the role."));
    assert_eq!(role_of(&server, admin_id), "admin");
    assert_eq!(admin.get("/admin").status, 200);
    assert_eq!(
        server.count("SELECT COUNT(*) FROM audit_log WHERE action = 'role_change'"),
        0
    );
}

#[test]
fn admin_can_step_down_while_another_admin_remains() {
    let server = TestServer::start();
    let (mut admin, admin_id) = server.signed_in("root@example.com", "admin");
    server.create_user("second@example.com", "admin", PASSWORD);
    let r = set_role(&mut admin, admin_id, "user");
    assert_eq!(r.status, 303);
    assert_eq!(role_of(&server, admin_id), "user");
    assert_eq!(admin.get("/admin").status, 403);
}
