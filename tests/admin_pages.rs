//! The admin's pages of issue 15 over HTTP: the list of every order with its filters and
//! pages (and the account's orders on its page), the price tools (bulk markup, copy, CSV
//! export and import with a preview), the catalogue (add, rename, retire, lifetimes), each
//! change audited.

mod common;

use common::market::{id_of, COUNTRY};
use common::TestServer;

/// A demo server on the dev clock with its scheduler paused: jobs run only when a test asks
/// (the simulator would otherwise answer the orders while a test reads their states).
fn server() -> TestServer {
    let server = TestServer::builder()
        .demo()
        .env("OTPBOX_DEV_CLOCK", "1")
        .env("OTPBOX_SIM_DELAY", "10s")
        .start();
    let r = server.client().post("/__dev/scheduler?paused=1", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    server
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

/// The admin's session and the price of a pair as stored.
fn stored_price(server: &TestServer, country: i64, service: &str) -> (i64, i64) {
    server
        .db()
        .query_row(
            "SELECT price_minor, rent_hour_minor FROM prices WHERE country_id = ?1 \
             AND service = ?2 AND operator = ''",
            rusqlite::params![country, service],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

/// The value of the hidden CSV an Apply form carries.
fn apply_csv(html: &str) -> String {
    let start = html.find("<textarea name=\"csv\" hidden>").unwrap() + 28;
    let end = html[start..].find("</textarea>").unwrap();
    html[start..start + end].replace("&amp;", "&")
}

#[test]
fn one_save_writes_only_the_changed_rows_and_audits_each() {
    let server = server();
    let (mut admin, _) = server.signed_in("root@example.com", "admin");
    let page = admin.get("/admin/prices?country=6&q=tele").text();
    assert!(
        page.contains("data-service=\"tg\""),
        "search finds Telegram"
    );
    assert!(!page.contains("data-service=\"wa\""), "and not WhatsApp");
    // The country's switch sits with the country, above its table.
    let head = page.find("id=\"country-head\"").unwrap();
    assert!(
        page[head..].find("Stop selling in Indonesia").unwrap()
            < page[head..].find("id=\"prices\"").unwrap()
    );
    let (tg_price, tg_rent) = stored_price(&server, 6, "tg");
    let (wa_price, wa_rent) = stored_price(&server, 6, "wa");
    let money = |m: i64| format!("{}.{:02}", m / 100, m % 100);
    let r = admin.submit(
        "/admin/prices?country=6",
        "/admin/prices",
        &[
            ("country", "6"),
            ("q", ""),
            ("price.tg", "1.23"),
            ("rent.tg", &money(tg_rent)),
            ("price.wa", &money(wa_price)),
            ("rent.wa", &money(wa_rent)),
        ],
    );
    let back = admin.follow(&r).text();
    assert!(back.contains("1 price saved."), "{back}");
    assert_eq!(stored_price(&server, 6, "tg"), (123, tg_rent));
    assert_ne!(tg_price, 123);
    assert_eq!(audit_count(&server, "price_change"), 1);
    // A bad amount changes nothing and keeps what was typed.
    let r = admin.submit(
        "/admin/prices?country=6",
        "/admin/prices",
        &[("country", "6"), ("price.tg", "two"), ("rent.tg", "0.10")],
    );
    let back = admin.follow(&r).text();
    assert!(back.contains("Enter both prices of tg"), "{back}");
    assert!(back.contains("value=\"two\""));
    assert_eq!(stored_price(&server, 6, "tg"), (123, tg_rent));
}

/// The value of the hidden field `name` of a preview's Apply form.
fn apply_field(html: &str, name: &str) -> String {
    let form = &html[html.find("id=\"apply-form\"").unwrap()..];
    input_value(form, name)
}

/// The value of the input named `name` on a page.
fn input_value(html: &str, name: &str) -> String {
    let at = html.find(&format!("name=\"{name}\"")).unwrap();
    let start = at + html[at..].find("value=\"").unwrap() + 7;
    let end = html[start..].find('"').unwrap();
    html[start..start + end].to_string()
}

#[test]
fn a_stale_price_table_never_reverts_a_change_made_meanwhile() {
    let server = server();
    let (mut admin, _) = server.signed_in("root@example.com", "admin");
    // Tab 1 loads Indonesia's table; every row is posted back with what it showed.
    let page = admin.get("/admin/prices?country=6").text();
    let fields = ["price.tg", "rent.tg", "price.wa", "rent.wa"];
    let mut stale: Vec<(String, String)> = fields
        .iter()
        .flat_map(|f| {
            let v = input_value(&page, f);
            [(f.to_string(), v.clone()), (format!("was.{f}"), v)]
        })
        .collect();
    assert_eq!(
        input_value(&page, "was.price.tg"),
        input_value(&page, "price.tg")
    );
    // Meanwhile Telegram's price changes (a CSV import applied in another tab).
    let r = admin.submit(
        "/admin/prices",
        "/admin/prices/apply",
        &[
            ("tool", "import"),
            ("csv", "country,service,price,rent_hour\n6,tg,7.77,0.11\n"),
        ],
    );
    assert!(admin.follow(&r).text().contains("1 prices changed."));
    // Tab 1 changes only WhatsApp and saves: Telegram keeps the newer price.
    let (wa_price, wa_rent) = stored_price(&server, 6, "wa");
    stale.retain(|(k, _)| k != "price.wa");
    stale.push(("price.wa".into(), "3.21".into()));
    let mut post: Vec<(&str, &str)> = stale
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    post.push(("country", "6"));
    let r = admin.submit("/admin/prices?country=6", "/admin/prices", &post);
    let back = admin.follow(&r).text();
    assert!(back.contains("1 price saved."), "{back}");
    assert_eq!(stored_price(&server, 6, "tg"), (777, 11), "not reverted");
    assert_eq!(stored_price(&server, 6, "wa"), (321, wa_rent));
    assert_ne!(wa_price, 321);
    // Tab 1, still stale, now types a Telegram price: a conflict, nothing saved, named.
    let audits = audit_count(&server, "price_change");
    let was = |f: &str| stale.iter().find(|(k, _)| k == f).unwrap().1.clone();
    let (was_price, was_rent) = (was("was.price.tg"), was("was.rent.tg"));
    let post = [
        ("country", "6"),
        ("price.tg", "1.00"),
        ("rent.tg", was_rent.as_str()),
        ("was.price.tg", was_price.as_str()),
        ("was.rent.tg", was_rent.as_str()),
    ];
    let r = admin.submit("/admin/prices?country=6", "/admin/prices", &post);
    let back = admin.follow(&r).text();
    assert!(back.contains("the prices of tg changed since"), "{back}");
    assert_eq!(stored_price(&server, 6, "tg"), (777, 11));
    assert_eq!(audit_count(&server, "price_change"), audits);
    // The page shows what is stored now, ready for a fresh edit.
    assert_eq!(input_value(&back, "price.tg"), "7.77");
    assert_eq!(input_value(&back, "was.price.tg"), "7.77");
}

#[test]
fn bulk_tools_preview_then_apply_and_csv_goes_out_and_back_in() {
    let server = server();
    let (mut admin, _) = server.signed_in("root@example.com", "admin");
    // Copy Indonesia's prices to India: the preview changes nothing.
    let preview = admin.get("/admin/prices/bulk?action=copy&from=6&to=22");
    assert_eq!(preview.status, 200);
    let html = preview.text();
    let before_audit = audit_count(&server, "price_change");
    assert_eq!(before_audit, 0);
    assert!(
        !html.contains("id=\"preview-empty\""),
        "the two countries differ"
    );
    let csv = apply_csv(&html);
    let n = csv.lines().count() - 1;
    assert!(n > 0);
    let r = admin.submit(
        "/admin/prices/bulk?action=copy&from=6&to=22",
        "/admin/prices/apply",
        &[
            ("tool", &apply_field(&html, "tool")),
            ("csv", &csv),
            // An old form's free text is never what the audit says.
            ("what", "prices fixed by the boss"),
        ],
    );
    let done = admin.follow(&r).text();
    assert!(done.contains(&format!("{n} prices changed.")), "{done}");
    assert_eq!(
        server.count(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'prices_bulk' \
             AND detail LIKE 'prices of Indonesia copied to India: % prices'"
        ),
        1
    );
    assert_eq!(
        stored_price(&server, 22, "tg"),
        stored_price(&server, 6, "tg")
    );
    assert_eq!(audit_count(&server, "prices_bulk"), 1);
    assert_eq!(audit_count(&server, "price_change") as usize, n);
    // The markup needs a provider cost: none here, so the preview says so.
    let markup = admin
        .get("/admin/prices/bulk?action=markup&country=6&percent=20")
        .text();
    assert!(markup.contains("have no provider cost"), "{markup}");
    assert!(markup.contains("Nothing would change"));
    // CSV out, edited, back in with a preview, then applied.
    let export = admin.get("/admin/prices/export?country=6");
    assert_eq!(
        export.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    let csv = export.text();
    assert!(csv.starts_with("country,service,price,rent_hour\n"));
    let tg_line = csv
        .lines()
        .find(|l| l.starts_with("6,tg,"))
        .unwrap()
        .to_string();
    let edited = "country,service,price,rent_hour\n6,tg,4.56,0.77\n";
    // POST/redirect/GET: the preview is a page of its own, shown once.
    let r = admin.submit("/admin/prices", "/admin/prices/import", &[("csv", edited)]);
    assert_eq!(r.location(), Some("/admin/prices/import"), "{}", r.text());
    let html = admin.follow(&r).text();
    assert!(html.contains("id=\"preview-count\""), "{html}");
    assert!(html.contains("4.56"));
    assert_ne!(
        stored_price(&server, 6, "tg"),
        (456, 77),
        "nothing before Apply"
    );
    let again = admin.get("/admin/prices/import");
    assert_eq!(
        again.location(),
        Some("/admin/prices"),
        "a reload shows it no more"
    );
    assert!(admin.follow(&again).text().contains("paste the CSV again"));
    let r = admin.submit(
        "/admin/prices",
        "/admin/prices/apply",
        &[("tool", "import"), ("csv", &apply_csv(&html))],
    );
    assert!(admin.follow(&r).text().contains("1 prices changed."));
    assert_eq!(stored_price(&server, 6, "tg"), (456, 77));
    assert!(tg_line.starts_with("6,tg,"));
    // A CSV with a bad line is refused whole, the lines named.
    let r = admin.submit(
        "/admin/prices",
        "/admin/prices/import",
        &[("csv", "6,tg,1.00,1.00\n6,nope,1,1")],
    );
    let back = admin.back_to(&r, "/admin/prices").text();
    assert!(back.contains("line 2: unknown service nope"), "{back}");
    assert_eq!(stored_price(&server, 6, "tg"), (456, 77));
}

#[test]
fn the_catalogue_adds_renames_retires_and_sets_lifetimes() {
    let server = server();
    let (mut admin, _) = server.signed_in("root@example.com", "admin");
    let mut api = server.customer("eve@example.com", "10.00");
    let order = id_of(&api.order_ok("tg"));
    let lifetime = |id: i64| {
        server.count(&format!(
            "SELECT expires_at - created_at FROM activations WHERE id = {id}"
        ))
    };
    let before = lifetime(order);
    assert_ne!(before, 7 * 60);
    // A live WhatsApp order, placed before WhatsApp is retired below.
    let live_wa = id_of(&api.order_ok("wa"));
    let page = admin.get("/admin/catalogue");
    assert_eq!(page.status, 200);

    let add = |admin: &mut common::Client, fields: &[(&str, &str)]| {
        let r = admin.submit("/admin/catalogue", "/admin/catalogue/country", fields);
        admin.follow(&r).text()
    };
    let done = add(
        &mut admin,
        &[
            ("op", "add"),
            ("id", "4242"),
            ("iso", "xa"),
            ("prefix", "999"),
            ("name", "Atlantis"),
            ("fivesim", "atlantis"),
        ],
    );
    assert!(done.contains("Country Atlantis added"), "{done}");
    let again = add(
        &mut admin,
        &[
            ("op", "add"),
            ("id", "4242"),
            ("iso", "xa"),
            ("prefix", "999"),
            ("name", "Other"),
            ("fivesim", "other"),
        ],
    );
    assert!(again.contains("belongs to a country already"), "{again}");

    // Renaming Telegram keeps its code; the order placed before shows the new name.
    let r = admin.submit(
        "/admin/catalogue",
        "/admin/catalogue/service",
        &[
            ("op", "rename"),
            ("code", "tg"),
            ("name", "Telegram Messenger"),
        ],
    );
    assert!(admin
        .follow(&r)
        .text()
        .contains("Service tg renamed to Telegram Messenger."));
    let list = admin.get("/admin/orders").text();
    assert!(list.contains("Telegram Messenger"));

    // A lifetime of 7 minutes: the next order lives 7 minutes.
    let r = admin.submit(
        "/admin/catalogue",
        "/admin/catalogue/service",
        &[("op", "lifetime"), ("code", "tg"), ("lifetime", "7")],
    );
    assert!(admin.follow(&r).text().contains("now live 7 minutes"));
    let next = id_of(&api.order_ok("tg"));
    assert_eq!(lifetime(next), 7 * 60);
    // The live order placed before keeps its own lifetime.
    assert_eq!(lifetime(order), before);

    // Retiring WhatsApp: off sale for good, cannot be switched back on; old orders keep it.
    let r = admin.submit(
        "/admin/catalogue",
        "/admin/catalogue/service",
        &[("op", "retire"), ("code", "wa")],
    );
    assert!(admin.follow(&r).text().contains("Service wa retired"));
    assert_eq!(api.order("wa").status / 100, 4);
    // The WhatsApp order live at retirement still gets its code and completes.
    server.advance_clock(11);
    server.run_jobs();
    let a = api.activation(live_wa);
    assert_eq!(a["status"], "received", "{a}");
    assert!(a["code"].is_string(), "{a}");
    assert_eq!(api.act(live_wa, "complete").status, 200);
    let r = admin.submit(
        "/admin/prices",
        "/admin/catalogue/toggle",
        &[("table", "services"), ("key", "wa"), ("enabled", "1")],
    );
    assert_eq!(r.status, 303);
    assert_eq!(
        server.count("SELECT enabled FROM services WHERE code = 'wa'"),
        0
    );
    assert_eq!(
        server.count("SELECT COUNT(*) FROM services WHERE code = 'wa'"),
        1
    );

    // Operators.
    let r = admin.submit(
        "/admin/catalogue",
        "/admin/catalogue/operator",
        &[
            ("op", "add"),
            ("country", "6"),
            ("code", "tri"),
            ("name", "Tri"),
        ],
    );
    assert!(admin.follow(&r).text().contains("Operator Tri added."));
    assert_eq!(audit_count(&server, "catalogue_change"), 5);
}

#[test]
fn the_overview_counts_periods_draws_its_charts_and_links_its_queues() {
    // The simulator's SMS would come after the orders' end: this test sends the one it needs.
    let server = TestServer::builder()
        .demo()
        .env("OTPBOX_DEV_CLOCK", "1")
        .env("OTPBOX_SIM_DELAY", "30m")
        .start();
    let mut ann = server.customer("ann@example.com", "50.00");
    let price = server.price("tg");
    let done = ann.order_ok("tg");
    let canceled = id_of(&ann.order_ok("tg"));
    server.inject_sms(
        done["phone"].as_str().unwrap(),
        "Telegram",
        "Telegram code: 24680",
    );
    server.advance_clock(130);
    assert_eq!(ann.act(id_of(&done), "complete").status, 200);
    assert_eq!(ann.act(canceled, "cancel").status, 200);
    let operator = server.create_user("op@example.com", "operator", common::PASSWORD);
    server
        .db()
        .execute(
            "INSERT INTO payouts (user_id, amount_minor, destination, created_at) \
             VALUES (?1, 500, 'iban', 1)",
            [operator],
        )
        .unwrap();
    // The stats job folds what ended more than two minutes ago (`stats::LAG`).
    server.advance_clock(125);
    server.run_jobs();
    let (mut admin, _) = server.signed_in("root@example.com", "admin");
    let html = admin.get("/admin").text();
    // The three periods; today holds both orders.
    let periods = &html[html.find("id=\"periods\"").unwrap()..];
    assert!(
        periods.contains("<th>Today</th><th>7 days</th><th>30 days</th>"),
        "{periods}"
    );
    let row = |name: &str| {
        let at = periods.find(&format!("<th>{name}")).unwrap();
        let end = periods[at..].find("</tr>").unwrap();
        periods[at..at + end].to_string()
    };
    assert!(
        row("Completed").contains("<td>1</td><td>1</td><td>1</td>"),
        "{}",
        row("Completed")
    );
    let revenue = format!("{}.{:02}", price / 100, price % 100);
    assert!(
        row("Revenue").contains(&format!("<td>{revenue}</td>")),
        "{}",
        row("Revenue")
    );
    // The charts: inline SVG with a title, a description of the numbers, and bars.
    for id in ["chart-orders", "chart-sources", "chart-revenue"] {
        let at = html
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("{id}"));
        let fig = &html[at..at + html[at..].find("</figure>").unwrap()];
        assert!(
            fig.contains("<svg") && fig.contains(&format!("<title id=\"{id}-t\">")),
            "{fig}"
        );
        assert!(fig.contains("<details><summary>The numbers</summary>"));
    }
    assert!(
        html.contains("<rect class=\"completed\""),
        "a completed bar"
    );
    assert!(html.contains("<rect class=\"revenue\""), "a revenue bar");
    let sources = &html[html.find("id=\"chart-sources\"").unwrap()..];
    assert!(
        sources.contains("<td>simulator</td>"),
        "the simulator's success rate"
    );
    assert!(!html.contains("<script src=\"http"), "no external asset");
    // The queues link where the work is.
    assert!(
        html.contains(
            "<li id=\"q-payouts\" class=\"waiting\"><a href=\"/admin/payouts\"><strong>1</strong>"
        ),
        "{html}"
    );
    assert!(html.contains(
        "<li id=\"q-abuse\" class=\"clear\"><a href=\"/admin/abuse\"><strong>0</strong>"
    ));
}
