//! The marketplace under concurrent clients, over HTTP: double cancels, cancels racing
//! expiry and arriving SMS, idempotent order ids, many customers ordering and cancelling on
//! a small stock, vouchers redeemed at once. Money must move exactly once in every
//! interleaving, and `otpbox check` must pass afterwards.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Barrier;

use common::market::{error_code, id_of, Api, COUNTRY};
use common::{Response, TestServer, PASSWORD};
use serde_json::json;

/// Cancelling is allowed at once, so races need no clock moves; four workers so that
/// requests really run side by side (up to one per core computing, the others while their
/// writes wait to be combined); no per-IP rate limit.
fn race_server() -> TestServer {
    TestServer::start_with(&[
        ("OTPBOX_DEV_CLOCK", "1"),
        ("OTPBOX_EARLY_CANCEL", "0"),
        ("OTPBOX_WORKERS", "4"),
        ("OTPBOX_LOG", "warn"),
        // Every customer here calls from 127.0.0.1, far faster than a person would.
        ("OTPBOX_API_IP_RATE", "0"),
    ])
}

/// Runs `f(0..n)` on `n` threads released together; the results in index order.
fn race<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, f) = (&barrier, &f);
                s.spawn(move || {
                    barrier.wait();
                    f(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// `n` phone numbers in Indonesia, put on sale.
fn stock(server: &TestServer, n: usize) -> Vec<String> {
    let phones: Vec<String> = (0..n).map(|i| format!("628159{i:07}")).collect();
    let refs: Vec<&str> = phones.iter().map(String::as_str).collect();
    server.add_numbers(COUNTRY, &refs);
    phones
}

fn charge_and_refund(price: i64) -> Vec<(String, i64)> {
    vec![
        ("charge".to_string(), -price),
        ("refund".to_string(), price),
    ]
}

fn status_of(api: &mut Api, id: i64) -> String {
    api.activation(id)["status"].as_str().unwrap().to_string()
}

#[test]
fn a_double_cancel_refunds_exactly_once() {
    let server = race_server();
    stock(&server, 10);
    let api = server.customer("ann@example.com", "50.00");
    let start = api.clone().balance();
    let price = server.price("tg");
    let ids: Vec<i64> = (0..10)
        .map(|_| id_of(&api.clone().order_ok("tg")))
        .collect();

    // Two cancels of each activation, all twenty at once.
    let answers = race(20, |i| api.clone().act(ids[i / 2], "cancel"));

    for (k, &id) in ids.iter().enumerate() {
        let (a, b) = (&answers[2 * k], &answers[2 * k + 1]);
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "{} / {}", a.text(), b.text());
        let loser = if a.status == 409 { a } else { b };
        assert_eq!(error_code(loser), "bad_status");
        assert_eq!(status_of(&mut api.clone(), id), "canceled");
        assert_eq!(server.ledger_of("activation", id), charge_and_refund(price));
    }
    assert_eq!(
        server.count("SELECT COUNT(*) FROM ledger WHERE kind = 'refund'"),
        10
    );
    assert_eq!(api.clone().balance(), start);
    server.assert_books_balance();
}

#[test]
fn cancels_racing_expiry_refund_each_activation_once() {
    let server = race_server();
    stock(&server, 30);
    let customers: Vec<Api> = (0..3)
        .map(|c| server.customer(&format!("c{c}@example.com"), "50.00"))
        .collect();
    let start = customers[0].clone().balance();
    let price = server.price("tg");
    // Thirty activations ten clock seconds apart, dealt to the customers in turn, so they
    // expire one after another.
    let mut ids: Vec<Vec<i64>> = vec![Vec::new(); 3];
    for k in 0..30 {
        ids[k % 3].push(id_of(&customers[k % 3].clone().order_ok("tg")));
        server.advance_clock(10);
    }

    // Just before the first expiry: one thread moves the clock through all of them, running
    // the jobs after each step (the scheduler runs them too), while the customers cancel
    // theirs from the last to expire, so that cancels and expiry meet in the middle.
    server.advance_clock(20 * 60 - 300 - 5);
    let answers = race(4, |t| {
        if t == 3 {
            for _ in 0..11 {
                server.advance_clock(30);
                server.run_jobs();
            }
            return Vec::new();
        }
        let mut api = customers[t].clone();
        ids[t]
            .iter()
            .rev()
            .map(|&id| (id, api.act(id, "cancel")))
            .collect::<Vec<_>>()
    });

    let mut seen = HashSet::new();
    let won = answers.iter().flatten().filter(|(_, r)| r.status == 200);
    eprintln!("{} of 30 were canceled, the others expired", won.count());
    for (t, list) in answers.iter().enumerate().take(3) {
        let mut api = customers[t].clone();
        for (id, r) in list {
            seen.insert(*id);
            let status = status_of(&mut api, *id);
            match r.status {
                200 => assert_eq!(status, "canceled"),
                409 => {
                    assert_eq!(error_code(r), "bad_status");
                    assert_eq!(status, "expired", "a refused cancel lost to expiry");
                }
                other => panic!("cancel answered {other}: {}", r.text()),
            }
            assert_eq!(
                server.ledger_of("activation", *id),
                charge_and_refund(price)
            );
        }
        assert_eq!(api.balance(), start);
    }
    assert_eq!(seen.len(), 30);
    assert_eq!(
        server.count("SELECT COUNT(*) FROM ledger WHERE kind = 'refund'"),
        30
    );
    server.assert_books_balance();
}

#[test]
fn a_cancel_racing_an_sms_either_refunds_or_delivers_never_both() {
    let server = race_server();
    let phones = stock(&server, 12);
    let api = server.customer("ann@example.com", "50.00");
    let start = api.clone().balance();
    let price = server.price("tg");
    let ids: Vec<i64> = (0..12)
        .map(|_| id_of(&api.clone().order_ok("tg")))
        .collect();
    let phone_of: HashMap<i64, String> = ids
        .iter()
        .map(|&id| {
            let phone = api.clone().activation(id)["phone"]
                .as_str()
                .unwrap()
                .to_string();
            (id, phone)
        })
        .collect();
    assert!(phone_of.values().all(|p| phones.contains(p)));

    // For each activation a cancel over the API and an SMS through `otpbox sms inject`. The
    // cancels start a little later each, so that both orders of arrival happen.
    enum Move {
        Cancel(Response),
        Sms(bool),
    }
    let moves = race(24, |i| {
        let id = ids[i / 2];
        if i % 2 == 0 {
            std::thread::sleep(std::time::Duration::from_millis(5 * (i as u64 / 2)));
            Move::Cancel(api.clone().act(id, "cancel"))
        } else {
            Move::Sms(server.inject(&phone_of[&id], &format!("Telegram code: {}", 50_000 + id)))
        }
    });

    let mut received = 0;
    for (k, &id) in ids.iter().enumerate() {
        let (Move::Cancel(cancel), Move::Sms(delivered)) = (&moves[2 * k], &moves[2 * k + 1])
        else {
            unreachable!()
        };
        let a = api.clone().activation(id);
        let ledger = server.ledger_of("activation", id);
        match a["status"].as_str().unwrap() {
            "canceled" => {
                assert_eq!(cancel.status, 200, "{}", cancel.text());
                assert!(!delivered, "a canceled order got its SMS");
                assert_eq!(a["code"], serde_json::Value::Null);
                assert_eq!(server.stored_messages(id), 0);
                assert_eq!(ledger, charge_and_refund(price));
            }
            "received" => {
                received += 1;
                assert_eq!(cancel.status, 409, "{}", cancel.text());
                assert_eq!(error_code(cancel), "bad_status");
                assert!(delivered);
                assert_eq!(a["code"], (50_000 + id).to_string());
                assert_eq!(ledger, vec![("charge".to_string(), -price)]);
            }
            other => panic!("activation {id} ended {other}: {a}"),
        }
    }
    eprintln!("{received} of 12 got their SMS before the cancel");
    assert_eq!(api.clone().balance(), start - received * price);
    server.assert_books_balance();
}

#[test]
fn the_same_order_id_gives_the_same_activation_and_one_charge() {
    let server = race_server();
    stock(&server, 5);
    let mut api = server.customer("ann@example.com", "10.00");
    let start = api.balance();
    let price = server.price("tg");
    let body = |order_id: &str| json!({"country": COUNTRY, "service": "tg", "order_id": order_id});

    let first = api.post("/api/v1/activations", body("order-1"));
    assert_eq!(first.status, 201, "{}", first.text());
    let again = api.post("/api/v1/activations", body("order-1"));
    assert_eq!(again.status, 200, "{}", again.text());
    let (first, again) = (first.json(), again.json());
    assert_eq!(id_of(&again), id_of(&first));
    assert_eq!(again["phone"], first["phone"]);
    assert_eq!(again["order_id"], "order-1");
    assert_eq!(
        server.ledger_of("activation", id_of(&first)),
        vec![("charge".to_string(), -price)]
    );
    assert_eq!(api.balance(), start - price);

    // Eight clients send the same new order id at once.
    let answers = race(8, |_| {
        api.clone().post("/api/v1/activations", body("order-2"))
    });
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 201]);
    let ids: HashSet<i64> = answers.iter().map(|r| id_of(&r.json())).collect();
    assert_eq!(ids.len(), 1, "one activation for one order id");
    let id = *ids.iter().next().unwrap();
    assert_eq!(
        server.count("SELECT COUNT(*) FROM activations WHERE client_order_id = 'order-2'"),
        1
    );
    assert_eq!(
        server.ledger_of("activation", id),
        vec![("charge".to_string(), -price)]
    );
    assert_eq!(api.balance(), start - 2 * price);

    // Order ids belong to their account.
    let mut other = server.customer("bob@example.com", "10.00");
    let theirs = other.post("/api/v1/activations", body("order-2"));
    assert_eq!(theirs.status, 201, "{}", theirs.text());
    assert_ne!(id_of(&theirs.json()), id);
    server.assert_books_balance();
}

#[test]
fn concurrent_orders_never_overdraw_nor_pass_the_live_cap() {
    let server = TestServer::start_with(&[
        ("OTPBOX_DEV_CLOCK", "1"),
        ("OTPBOX_MAX_ACTIVE_ACTIVATIONS", "3"),
        ("OTPBOX_WORKERS", "4"),
        ("OTPBOX_LOG", "warn"),
        // Every customer here calls from 127.0.0.1, far faster than a person would.
        ("OTPBOX_API_IP_RATE", "0"),
    ]);
    stock(&server, 20);
    let price = server.price("tg");
    let tally = |answers: &[Response]| {
        let mut t: HashMap<(u16, String), usize> = HashMap::new();
        for r in answers {
            let code = if r.status == 201 {
                String::new()
            } else {
                error_code(r)
            };
            *t.entry((r.status, code)).or_default() += 1;
        }
        t
    };

    // Money for exactly two orders, eight at once: two charged, six refused, never below 0.
    let cents = 2 * price;
    let poor = server.customer(
        "poor@example.com",
        &format!("{}.{:02}", cents / 100, cents % 100),
    );
    let answers = race(8, |_| poor.clone().order("tg"));
    let t = tally(&answers);
    assert_eq!(t.get(&(201, String::new())), Some(&2), "{t:?}");
    assert_eq!(t.get(&(402, "no_balance".into())), Some(&6), "{t:?}");
    assert_eq!(poor.clone().balance(), 0);

    // Three live orders at most, eight at once: three placed, five refused.
    let rich = server.customer("rich@example.com", "50.00");
    let answers = race(8, |_| rich.clone().order("tg"));
    let t = tally(&answers);
    assert_eq!(t.get(&(201, String::new())), Some(&3), "{t:?}");
    assert_eq!(t.get(&(429, "too_many_orders".into())), Some(&5), "{t:?}");
    assert_eq!(rich.clone().balance(), 5000 - 3 * price);
    assert_eq!(
        server.count("SELECT COUNT(*) FROM numbers WHERE state = 'busy'"),
        5,
        "refused orders hold no number"
    );
    server.assert_books_balance();
}

#[test]
fn many_customers_ordering_and_cancelling_on_a_small_stock_keep_the_books() {
    const THREADS: usize = 8;
    const ORDERS: usize = 15;
    const SERVICES: [&str; 12] = [
        "tg", "wa", "go", "fb", "tw", "ds", "mm", "am", "ub", "vk", "dr", "vi",
    ];
    let server = TestServer::start_with(&[
        ("OTPBOX_DEV_CLOCK", "1"),
        ("OTPBOX_EARLY_CANCEL", "0"),
        ("OTPBOX_REUSE_COOLDOWN", "1s"),
        ("OTPBOX_WORKERS", "4"),
        ("OTPBOX_LOG", "warn"),
        // Every customer here calls from 127.0.0.1, far faster than a person would.
        ("OTPBOX_API_IP_RATE", "0"),
    ]);
    stock(&server, 6);
    let customers: Vec<Api> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let server = &server;
                s.spawn(move || server.customer(&format!("c{t}@example.com"), "20.00"))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    // Each customer orders fifteen times, holding at most two numbers and cancelling the
    // older one as it goes; refused orders ("no numbers") are part of the game.
    let runs = race(THREADS, |t| {
        let mut api = customers[t].clone();
        let (mut held, mut placed, mut canceled, mut refused) =
            (Vec::new(), Vec::new(), HashSet::new(), 0);
        for i in 0..ORDERS {
            let r = api.order(SERVICES[(t + i) % SERVICES.len()]);
            match r.status {
                201 => {
                    let id = id_of(&r.json());
                    held.push(id);
                    placed.push(id);
                }
                409 => {
                    assert_eq!(error_code(&r), "no_numbers", "{}", r.text());
                    refused += 1;
                }
                other => panic!("order answered {other}: {}", r.text()),
            }
            if held.len() > 1 || (i % 3 == 2 && !held.is_empty()) {
                let id = held.remove(0);
                let c = api.act(id, "cancel");
                assert_eq!(c.status, 200, "cancel {id}: {}", c.text());
                canceled.insert(id);
            }
        }
        (placed, canceled, refused)
    });

    let refused: usize = runs.iter().map(|r| r.2).sum();
    let placed: usize = runs.iter().map(|r| r.0.len()).sum();
    eprintln!("{placed} orders placed, {refused} refused for lack of numbers");
    assert!(placed > 0 && refused > 0, "the stock was contended");
    assert_eq!(placed + refused, THREADS * ORDERS);

    server.assert_books_balance();
    for (t, (placed, canceled, _)) in runs.iter().enumerate() {
        let mut api = customers[t].clone();
        let mut live_cost = 0;
        for &id in placed {
            let a = api.activation(id);
            let price = a["price_minor"].as_i64().unwrap();
            let ledger = server.ledger_of("activation", id);
            if canceled.contains(&id) {
                assert_eq!(a["status"], "canceled");
                assert_eq!(ledger, charge_and_refund(price));
            } else {
                assert_eq!(a["status"], "waiting");
                assert_eq!(ledger, vec![("charge".to_string(), -price)]);
                live_cost += price;
            }
        }
        assert_eq!(api.balance(), 2000 - live_cost, "customer {t}");
    }

    // No number was held by two live orders at once: on each number, every activation
    // ended (its refund row) before the next one was charged, and ledger ids are in
    // commit order. Only the last one on a number may still be live.
    let db = server.db();
    let mut stmt = db
        .prepare(
            "SELECT a.number_id, a.id, \
             (SELECT id FROM ledger WHERE ref_type = 'activation' AND ref_id = a.id AND kind = 'charge'), \
             (SELECT id FROM ledger WHERE ref_type = 'activation' AND ref_id = a.id AND kind = 'refund') \
             FROM activations a ORDER BY a.number_id, a.id",
        )
        .unwrap();
    let rows: Vec<(i64, i64, i64, Option<i64>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), placed);
    for pair in rows.windows(2) {
        let (prev, next) = (pair[0], pair[1]);
        if prev.0 != next.0 {
            continue;
        }
        let ended = prev
            .3
            .unwrap_or_else(|| panic!("activation {} is live under {}", prev.1, next.1));
        assert!(
            ended < next.2,
            "number {}: activation {} was charged before {} ended",
            prev.0,
            next.1,
            prev.1
        );
    }
    // And a number is busy exactly when a live order holds it.
    assert_eq!(
        server.count(
            "SELECT COUNT(*) FROM numbers n WHERE (n.state = 'busy') != EXISTS \
             (SELECT 1 FROM activations a WHERE a.number_id = n.id \
              AND a.status IN ('waiting', 'received', 'retry'))"
        ),
        0
    );
}

#[test]
fn a_voucher_redeemed_concurrently_pays_exactly_once() {
    let server = race_server();
    let (mut admin, _) = server.signed_in("admin@example.com", "admin");
    let r = admin.submit(
        "/admin/vouchers",
        "/admin/vouchers",
        &[("count", "2"), ("amount", "5.00"), ("days", "30")],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let page = r.text();
    let from = page.find("<pre>").expect("the new codes") + "<pre>".len();
    let codes: Vec<String> = page[from..page[from..].find("</pre>").unwrap() + from]
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(codes.len(), 2, "{codes:?}");

    // Four customers, two attempts each, at once (half of them typed loosely).
    let customers: Vec<Api> = (0..4)
        .map(|c| server.customer(&format!("c{c}@example.com"), "1.00"))
        .collect();
    let answers = race(8, |i| {
        let code = if i % 2 == 0 {
            codes[0].clone()
        } else {
            codes[0].to_lowercase().replace('-', " ")
        };
        customers[i % 4]
            .clone()
            .post("/api/v1/vouchers/redeem", json!({"code": code}))
    });
    let winners: Vec<&Response> = answers.iter().filter(|r| r.status == 200).collect();
    assert_eq!(winners.len(), 1, "one redemption");
    assert_eq!(winners[0].json()["credited_minor"], 500);
    for r in answers.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 409, "{}", r.text());
        assert_eq!(error_code(r), "conflict");
    }
    let total: i64 = customers.iter().map(|c| c.clone().balance()).sum();
    assert_eq!(total, 4 * 100 + 500);
    assert_eq!(
        server.count("SELECT COUNT(*) FROM ledger WHERE kind = 'voucher'"),
        1
    );

    // One customer, three API clients and the wallet form at once.
    let customer = &customers[1];
    let mut web = server.client();
    assert_eq!(
        web.login(&customer.email, PASSWORD).location(),
        Some("/dashboard")
    );
    let before = customer.clone().balance();
    // The form answers with a redirect either way; its page says which it was.
    let statuses: Vec<u16> = race(4, |i| {
        if i == 0 {
            let mut web = web.clone();
            let r = web.submit("/wallet", "/wallet/redeem", &[("code", &codes[1])]);
            if web.follow(&r).text().contains("added to your balance") {
                200
            } else {
                409
            }
        } else {
            customer
                .clone()
                .post("/api/v1/vouchers/redeem", json!({"code": codes[1]}))
                .status
        }
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );
    assert_eq!(customer.clone().balance(), before + 500);
    assert_eq!(
        server.count("SELECT COUNT(*) FROM ledger WHERE kind = 'voucher'"),
        2
    );
    server.assert_books_balance();
}
