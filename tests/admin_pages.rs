//! The admin's pages of issue 15 over HTTP: the list of every order with its filters and
//! pages (and the account's orders on its page), the price tools (bulk markup, copy, CSV
//! export and import with a preview), the catalogue (add, rename, retire, lifetimes), each
//! change audited.

mod common;

use common::market::{id_of, COUNTRY};
use common::TestServer;

fn server() -> TestServer {
    TestServer::builder()
        .demo()
        .env("OTPBOX_DEV_CLOCK", "1")
        .env("OTPBOX_SIM_DELAY", "10s")
        .start()
}

/// The ids of the order rows on an admin orders page, in page order.
fn row_ids(html: &str) -> Vec<i64> {
    html.split("<tr data-id=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].parse().unwrap())
        .collect()
}

fn audit_count(server: &TestServer, action: &str) -> i64 {
    server.count(&format!(
        "SELECT COUNT(*) FROM audit_log WHERE action = '{action}'"
    ))
}

#[test]
fn the_orders_list_filters_pages_and_is_audited() {
    let server = server();
    let mut ann = server.customer("ann@example.com", "50.00");
    let mut bob = server.customer("bob@example.com", "50.00");
    let ann_ids: Vec<i64> = (0..3).map(|_| id_of(&ann.order_ok("tg"))).collect();
    let bob_id = id_of(&bob.order_ok("wa"));
    server.advance_clock(120);
    assert_eq!(ann.act(ann_ids[0], "cancel").status, 200);
    let (mut admin, _) = server.signed_in("root@example.com", "admin");

    let all = admin.get("/admin/orders");
    assert_eq!(all.status, 200);
    let html = all.text();
    assert_eq!(
        row_ids(&html),
        vec![bob_id, ann_ids[2], ann_ids[1], ann_ids[0]]
    );
    assert!(html.contains("ann@example.com") && html.contains("/admin/users/"));
    assert!(!html.contains("Telegram code"), "no SMS text on the list");

    let by_status = admin.get("/admin/orders?status=canceled").text();
    assert_eq!(row_ids(&by_status), vec![ann_ids[0]]);
    let by_service = admin.get("/admin/orders?service=wa").text();
    assert_eq!(row_ids(&by_service), vec![bob_id]);
    let by_account = admin
        .get("/admin/orders?account=ann%40example.com&status=waiting")
        .text();
    assert_eq!(row_ids(&by_account), vec![ann_ids[2], ann_ids[1]]);
    let by_country = admin
        .get(&format!("/admin/orders?country={COUNTRY}&source=simulator"))
        .text();
    assert_eq!(row_ids(&by_country).len(), 4);
    let none = admin
        .get("/admin/orders?from=2001-01-01&to=2001-01-02")
        .text();
    assert!(row_ids(&none).is_empty() && none.contains("No order matches"));
    let bad = admin.get("/admin/orders?from=yesterday").text();
    assert!(bad.contains("YYYY-MM-DD"), "{bad}");
    let unknown = admin
        .get("/admin/orders?account=nobody%40example.com")
        .text();
    assert!(unknown.contains("No account with the e-mail address"));
    // A page of one, by keyset.
    let page = admin
        .get(&format!("/admin/orders?before={}", ann_ids[1]))
        .text();
    assert_eq!(row_ids(&page), vec![ann_ids[0]]);
    let rentals = admin.get("/admin/orders?kind=rental").text();
    assert!(rentals.contains("No order matches"));

    let viewed = server.count(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'orders_viewed' \
         AND detail = 'activations status=canceled'",
    );
    assert_eq!(viewed, 1);
    assert!(audit_count(&server, "orders_viewed") >= 8);

    // The account's page shows its newest orders without their numbers.
    let ann_id = server.user_id("ann@example.com").unwrap();
    let user_page = admin.get(&format!("/admin/users/{ann_id}")).text();
    assert!(user_page.contains("id=\"user-orders\""), "{user_page}");
    assert_eq!(
        row_ids(&user_page),
        vec![ann_ids[2], ann_ids[1], ann_ids[0]]
    );
    let phone = ann.activation(ann_ids[0])["phone"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!user_page.contains(&phone));
    assert!(user_page.contains(&format!("/admin/orders?account={ann_id}")));
}
