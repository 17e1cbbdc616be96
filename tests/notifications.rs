//! Notifications to the phone against local fakes that follow the real services: an ntfy
//! server (`POST /{topic}` with the message as the body, `Title` and `Tags` headers,
//! `Authorization: Bearer` for a protected topic) and the Telegram Bot API
//! (`POST /bot<token>/sendMessage` and `getUpdates` with `offset`, answering
//! `{"ok": true, "result": …}` and 401 for a wrong token).
//!
//! Proven: a code reaches each chosen channel (ntfy, Telegram by typed chat id and by
//! `/start CODE`, read by polling or received by the bot's webhook, e-mail) exactly once, with the service and the code and nothing of another
//! account; a refund is told; failures are retried with back-off; the test button; a deleted
//! account's channels get nothing more.

mod common;

use std::sync::{Arc, Mutex};

use common::market::COUNTRY;
use common::{Client, TestServer, PASSWORD};
use serde_json::{json, Value};

const BOT_TOKEN: &str = "123456:TEST-token";

/// One request a fake received.
#[derive(Debug, Clone)]
struct Got {
    path: String,
    auth: String,
    title: String,
    body: String,
}

#[derive(Default)]
struct Shared {
    got: Vec<Got>,
    /// Answer this many requests with 500 first.
    fail_next: usize,
    /// Telegram updates waiting for getUpdates: (update_id, chat id, text).
    updates: Vec<(i64, i64, String)>,
    /// Every Bot API method called, in order, with its body.
    methods: Vec<(String, String)>,
}

struct Fake {
    base: String,
    shared: Arc<Mutex<Shared>>,
}

fn header(req: &tiny_http::Request, name: &'static str) -> String {
    req.headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str().to_string())
        .unwrap_or_default()
}

impl Fake {
    /// `telegram`: answer as the Bot API; else as an ntfy server.
    fn start(telegram: bool) -> Fake {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let base = format!("http://{}", server.server_addr().to_ip().unwrap());
        let shared = Arc::new(Mutex::new(Shared::default()));
        let s = shared.clone();
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let got = Got {
                    path: req.url().to_string(),
                    auth: header(&req, "Authorization"),
                    title: header(&req, "Title"),
                    body,
                };
                let mut st = s.lock().unwrap();
                let (status, answer) = if st.fail_next > 0 {
                    st.fail_next -= 1;
                    (500, json!({"ok": false, "description": "try later"}))
                } else if !telegram {
                    st.got.push(got.clone());
                    (200, json!({"id": "m1", "event": "message"}))
                } else if !got.path.starts_with(&format!("/bot{BOT_TOKEN}/")) {
                    (
                        401,
                        json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
                    )
                } else if let Some(method) = got
                    .path
                    .rsplit('/')
                    .next()
                    .filter(|m| *m == "setWebhook" || *m == "deleteWebhook")
                {
                    st.methods.push((method.to_string(), got.body.clone()));
                    (200, json!({"ok": true, "result": true}))
                } else if got.path.ends_with("/getUpdates") {
                    st.methods.push(("getUpdates".into(), got.body.clone()));
                    let offset = serde_json::from_str::<Value>(&got.body).unwrap()["offset"]
                        .as_i64()
                        .unwrap_or(0);
                    let result: Vec<Value> = st
                        .updates
                        .iter()
                        .filter(|u| u.0 >= offset)
                        .map(|(id, chat, text)| {
                            json!({"update_id": id, "message": {"message_id": id,
                                "chat": {"id": chat, "type": "private"}, "date": 0, "text": text}})
                        })
                        .collect();
                    (200, json!({"ok": true, "result": result}))
                } else if got.path.ends_with("/sendMessage") {
                    st.got.push(got.clone());
                    (
                        200,
                        json!({"ok": true, "result": {"message_id": st.got.len()}}),
                    )
                } else {
                    (404, json!({"ok": false, "description": "Not Found"}))
                };
                let r = tiny_http::Response::from_string(answer.to_string())
                    .with_status_code(status)
                    .with_header(
                        tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap(),
                    );
                drop(st);
                let _ = req.respond(r);
            }
        });
        Fake { base, shared }
    }

    fn got(&self) -> Vec<Got> {
        self.shared.lock().unwrap().got.clone()
    }

    fn set(&self, f: impl FnOnce(&mut Shared)) {
        f(&mut self.shared.lock().unwrap());
    }
}

/// Telegram messages as (chat id, text).
fn telegram_messages(t: &Fake) -> Vec<(String, String)> {
    t.got()
        .iter()
        .map(|g| {
            let v: Value = serde_json::from_str(&g.body).unwrap();
            let chat = match &v["chat_id"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (chat, v["text"].as_str().unwrap_or("").to_string())
        })
        .collect()
}

fn server(telegram: &Fake) -> TestServer {
    let s = TestServer::start_with(&[
        ("OTPBOX_DEV_CLOCK", "1"),
        ("OTPBOX_WEBHOOK_ALLOW_PRIVATE", "1"),
        ("OTPBOX_TELEGRAM_BOT_TOKEN", BOT_TOKEN),
        ("OTPBOX_TELEGRAM_API", &telegram.base),
    ]);
    paused(s)
}

/// `s` with its scheduler paused: the test runs the jobs.
fn paused(s: TestServer) -> TestServer {
    let r = s.client().post("/__dev/scheduler?paused=1", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    s
}

fn browser(s: &TestServer, email: &str) -> Client {
    let mut c = s.client();
    assert_eq!(c.login(email, PASSWORD).location(), Some("/dashboard"));
    c
}

fn add_channel(c: &mut Client, fields: &[(&str, &str)]) -> common::Response {
    c.submit("/settings/notifications", "/settings/notifications", fields)
}

fn ntfy_channel(c: &mut Client, url: &str, token: &str, events: &[&str]) {
    let mut fields = vec![("kind", "ntfy"), ("url", url), ("token", token)];
    fields.extend(events.iter().map(|e| ("events", *e)));
    let r = add_channel(c, &fields);
    assert_eq!(
        r.location(),
        Some("/settings/notifications?m=saved"),
        "{}",
        r.text()
    );
}

#[test]
fn a_code_reaches_each_channel_once_with_nothing_of_anyone_else() {
    let ntfy = Fake::start(false);
    let tg = Fake::start(true);
    let s = server(&tg);
    s.add_numbers(COUNTRY, &["6281100000001", "6281100000002"]);
    let mut ann = s.customer("ann@example.com", "10.00");
    let mut bob = s.customer("bob@example.com", "10.00");
    let mut ann_web = browser(&s, "ann@example.com");
    let mut bob_web = browser(&s, "bob@example.com");

    ntfy_channel(
        &mut ann_web,
        &format!("{}/ann-topic", ntfy.base),
        "tk_ann",
        &["code"],
    );
    let r = add_channel(
        &mut ann_web,
        &[
            ("kind", "telegram"),
            ("chat_id", "1001"),
            ("events", "code"),
        ],
    );
    assert_eq!(r.location(), Some("/settings/notifications?m=saved"));
    let r = add_channel(&mut ann_web, &[("kind", "email"), ("events", "code")]);
    assert_eq!(r.location(), Some("/settings/notifications?m=saved"));
    // A Telegram chat linked with /start: the code is shown once.
    let r = add_channel(&mut ann_web, &[("kind", "telegram"), ("events", "code")]);
    assert_eq!(r.status, 201, "{}", r.text());
    let page = r.text();
    let start = page.find("/start ").expect("the /start code is shown") + "/start ".len();
    let code = &page[start..start + page[start..].find('<').unwrap()];
    tg.set(|st| st.updates.push((7, 2002, format!("/start {code}"))));
    s.run_jobs();
    assert_eq!(
        telegram_messages(&tg),
        [(
            "2002".to_string(),
            "Linked: this chat now gets the notifications you chose.".to_string()
        )]
    );
    // Bob: his own topic, for codes and refunds.
    ntfy_channel(
        &mut bob_web,
        &format!("{}/bob-topic", ntfy.base),
        "",
        &["code", "refunded"],
    );

    let a = ann.order_ok("tg");
    let b = bob.order_ok("wa");
    let ann_phone = a["phone"].as_str().unwrap().to_string();
    let bob_phone = b["phone"].as_str().unwrap().to_string();
    assert!(s.inject(&ann_phone, "Telegram code: 424242. Do not share it."));
    s.run_jobs();
    s.run_jobs();

    let to_ann: Vec<Got> = ntfy.got();
    assert_eq!(to_ann.len(), 1, "{to_ann:?}");
    assert_eq!(to_ann[0].path, "/ann-topic");
    assert_eq!(to_ann[0].auth, "Bearer tk_ann");
    assert_eq!(to_ann[0].title, "Code for tg");
    assert!(to_ann[0].body.contains("424242"), "{}", to_ann[0].body);
    let tele = telegram_messages(&tg);
    let coded: Vec<&(String, String)> = tele.iter().filter(|m| m.1.contains("424242")).collect();
    let chats: Vec<&str> = coded.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(chats, ["1001", "2002"], "{tele:?}");
    // The e-mail says a code came, not the code: a mail's body outlives the SMS retention.
    assert!(!s.outbox().iter().any(|m| m.body.contains("424242")));
    let mails: Vec<_> = s
        .outbox()
        .into_iter()
        .filter(|m| m.subject == "Code for tg")
        .collect();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, "ann@example.com");
    assert_eq!(
        mails[0].body,
        format!(
            "A code arrived for your tg order #{}: it is on your dashboard.",
            a["id"]
        )
    );
    assert!(!s.output().contains("424242"), "no code in the log");
    // Nothing of Bob (nor Ann's own number) in Ann's texts.
    let texts: Vec<String> = to_ann
        .iter()
        .map(|g| format!("{} {}", g.title, g.body))
        .chain(coded.iter().map(|m| m.1.clone()))
        .chain(mails.iter().map(|m| format!("{} {}", m.subject, m.body)))
        .collect();
    for t in &texts {
        for other in ["bob", bob_phone.as_str(), ann_phone.as_str()] {
            assert!(!t.contains(other), "{t:?} holds {other}");
        }
    }

    // Bob's order expires without a code: his topic hears of the refund, Ann's does not.
    s.advance_clock(21 * 60);
    s.run_jobs();
    s.run_jobs();
    let bob_got: Vec<Got> = ntfy
        .got()
        .into_iter()
        .filter(|g| g.path == "/bob-topic")
        .collect();
    assert_eq!(bob_got.len(), 1, "{bob_got:?}");
    assert!(
        bob_got[0].body.contains("without a code") && bob_got[0].body.contains("wa"),
        "{}",
        bob_got[0].body
    );
    assert_eq!(ntfy.got().len(), 2);
    // The delivery log shows what went out, and no body is kept.
    let log = ann_web.get("/settings/notifications").text();
    assert!(log.contains("Code for tg"), "{log}");
    assert_eq!(
        s.count("SELECT COUNT(*) FROM notifications WHERE body IS NOT NULL"),
        0
    );
}

#[test]
fn failures_are_retried_with_back_off_and_the_test_button_works() {
    let ntfy = Fake::start(false);
    let tg = Fake::start(true);
    let s = server(&tg);
    s.create_user("ann@example.com", "user", PASSWORD);
    let mut c = browser(&s, "ann@example.com");
    ntfy_channel(&mut c, &format!("{}/t", ntfy.base), "", &["code"]);
    let id: i64 = s
        .db()
        .query_row("SELECT id FROM notify_channels", [], |r| r.get(0))
        .unwrap();
    ntfy.set(|st| st.fail_next = 2);
    let r = c.submit(
        "/settings/notifications",
        &format!("/settings/notifications/{id}/test"),
        &[],
    );
    assert_eq!(r.location(), Some("/settings/notifications?m=test_queued"));
    s.run_jobs();
    assert!(ntfy.got().is_empty());
    // Not before its back-off (30 s after the first failure, then 60 s).
    s.run_jobs();
    assert_eq!(
        s.count("SELECT attempts FROM notifications"),
        1,
        "waits for its back-off"
    );
    s.advance_clock(31);
    s.run_jobs();
    assert!(ntfy.got().is_empty());
    s.advance_clock(61);
    s.run_jobs();
    let got = ntfy.got();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].title, "Test notification");
    let (state, attempts): (String, i64) = s
        .db()
        .query_row("SELECT state, attempts FROM notifications", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((state.as_str(), attempts), ("sent", 3));
    s.advance_clock(3600);
    s.run_jobs();
    assert_eq!(ntfy.got().len(), 1, "sent once");
}

#[test]
fn a_deleted_accounts_channels_get_nothing_more() {
    let ntfy = Fake::start(false);
    let tg = Fake::start(true);
    let s = server(&tg);
    s.add_numbers(COUNTRY, &["6281100000003"]);
    let mut ann = s.customer("ann@example.com", "10.00");
    let mut c = browser(&s, "ann@example.com");
    ntfy_channel(&mut c, &format!("{}/t", ntfy.base), "", &["code"]);
    let a = ann.order_ok("tg");
    assert!(s.inject(a["phone"].as_str().unwrap(), "Your code is 777111"));
    // Queued, not yet sent, when the account goes.
    assert_eq!(
        s.count("SELECT COUNT(*) FROM notifications WHERE state = 'pending'"),
        1
    );
    let r = c.submit(
        "/settings/delete",
        "/settings/delete",
        &[("password", PASSWORD)],
    );
    assert_eq!(
        r.location(),
        Some("/login?m=account_deleted"),
        "{}",
        r.text()
    );
    s.run_jobs();
    s.advance_clock(3600);
    s.run_jobs();
    assert!(ntfy.got().is_empty(), "{:?}", ntfy.got());
    assert_eq!(s.count("SELECT COUNT(*) FROM notify_channels"), 0);
    assert_eq!(
        s.count("SELECT COUNT(*) FROM notifications WHERE body IS NOT NULL"),
        0
    );
}

#[test]
fn telegram_needs_the_admins_bot_and_ntfy_urls_follow_the_webhook_rules() {
    let s = TestServer::start_with(&[("OTPBOX_DEV_CLOCK", "1")]);
    s.create_user("ann@example.com", "user", PASSWORD);
    let mut c = browser(&s, "ann@example.com");
    let page = c.get("/settings/notifications").text();
    assert!(!page.contains("value=\"telegram\""), "no bot, no Telegram");
    let r = add_channel(&mut c, &[("kind", "telegram"), ("events", "code")]);
    let back = c.back_to(&r, "/settings/notifications");
    assert!(back.text().contains("no Telegram bot"), "{}", back.text());
    let r = add_channel(
        &mut c,
        &[
            ("kind", "ntfy"),
            ("url", "http://127.0.0.1:9/topic"),
            ("events", "code"),
        ],
    );
    c.back_to(&r, "/settings/notifications");
    assert_eq!(s.count("SELECT COUNT(*) FROM notify_channels"), 0);
}

#[test]
fn a_low_balance_and_a_failed_backup_are_told() {
    let tg = Fake::start(true);
    // A backup directory under a regular file cannot be made: the backup job fails.
    let s = TestServer::start_with(&[
        ("OTPBOX_DEV_CLOCK", "1"),
        ("OTPBOX_TELEGRAM_BOT_TOKEN", BOT_TOKEN),
        ("OTPBOX_TELEGRAM_API", &tg.base),
        ("OTPBOX_BACKUP_DIR", "/dev/null/backups"),
    ]);
    let r = s.client().post("/__dev/scheduler?paused=1", b"");
    assert_eq!(r.status, 200);
    s.add_numbers(COUNTRY, &["6281100000004"]);
    let mut ann = s.customer("ann@example.com", "10.00");
    let price = s.price("tg");
    let threshold = 1000 - price / 2;
    let mut c = browser(&s, "ann@example.com");
    // A customer cannot choose the administrators' event.
    let r = add_channel(&mut c, &[("kind", "email"), ("events", "admin_alert")]);
    let back = c.back_to(&r, "/settings/notifications");
    assert!(
        back.text().contains("is for admin accounts"),
        "{}",
        back.text()
    );
    let amount = format!("{}.{:02}", threshold / 100, threshold % 100);
    let r = add_channel(
        &mut c,
        &[
            ("kind", "telegram"),
            ("chat_id", "5005"),
            ("events", "low_balance"),
            ("low_balance", &amount),
        ],
    );
    assert_eq!(
        r.location(),
        Some("/settings/notifications?m=saved"),
        "{}",
        r.text()
    );
    s.create_user("root@example.com", "admin", PASSWORD);
    let mut root = browser(&s, "root@example.com");
    let r = add_channel(&mut root, &[("kind", "email"), ("events", "admin_alert")]);
    assert_eq!(
        r.location(),
        Some("/settings/notifications?m=saved"),
        "{}",
        r.text()
    );

    ann.order_ok("tg");
    s.run_jobs();
    s.run_jobs();
    let low: Vec<(String, String)> = telegram_messages(&tg);
    assert_eq!(low.len(), 1, "{low:?}");
    assert_eq!(low[0].0, "5005");
    assert!(low[0].1.starts_with("Low balance"), "{}", low[0].1);
    let alerts: Vec<_> = s
        .outbox()
        .into_iter()
        .filter(|m| m.subject == "Backup failed")
        .collect();
    assert!(!alerts.is_empty());
    assert!(alerts.iter().all(|m| m.to == "root@example.com"));
    assert!(
        alerts[0].body.starts_with("The backup job failed"),
        "{}",
        alerts[0].body
    );
}

#[test]
fn the_native_api_adds_lists_tests_and_deletes_channels() {
    let ntfy = Fake::start(false);
    let tg = Fake::start(true);
    let s = server(&tg);
    let mut api = s.customer("ann@example.com", "1.00");
    let r = api.post(
        "/api/v1/notifications/ntfy",
        json!({"url": format!("{}/api-topic", ntfy.base), "token": "tk_api", "events": ["code"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let ntfy_id = r.json()["id"].as_i64().unwrap();
    assert_eq!(r.json()["has_token"], true);
    assert!(!r.text().contains("tk_api"), "the token is never shown");
    let r = api.post(
        "/api/v1/notifications/telegram",
        json!({"events": ["code"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["waiting_for_chat"], true);
    assert!(r.json()["link_code"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
    // A threshold alone chooses low_balance; the administrators' event is not a customer's.
    let r = api.post(
        "/api/v1/notifications/email",
        json!({"low_balance_minor": 50}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["events"], json!(["low_balance"]));
    let r = api.post(
        "/api/v1/notifications/email",
        json!({"events": ["admin_alert"]}),
    );
    assert_eq!(r.status, 403, "{}", r.text());

    let list = api.get("/api/v1/notifications").json();
    assert_eq!(list["channels"].as_array().unwrap().len(), 3);
    assert_eq!(
        list["events"],
        json!(["code", "refunded", "rental_sms", "low_balance"])
    );
    let r = api.post(
        &format!("/api/v1/notifications/channels/{ntfy_id}/test"),
        json!({}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    s.run_jobs();
    let got = ntfy.got();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].auth, "Bearer tk_api");
    let log = api.get("/api/v1/notifications").json();
    assert_eq!(log["log"][0]["state"], "sent");
    let r = api.client.request(
        "DELETE",
        &format!("/api/v1/notifications/channels/{ntfy_id}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let list = api.get("/api/v1/notifications").json();
    assert_eq!(list["channels"].as_array().unwrap().len(), 2);
}

#[test]
fn in_webhook_mode_the_bot_is_registered_and_a_start_links_the_chat_at_once() {
    let tg = Fake::start(true);
    let webhook_env = [
        ("OTPBOX_DEV_CLOCK", "1"),
        ("OTPBOX_TELEGRAM_BOT_TOKEN", BOT_TOKEN),
        ("OTPBOX_TELEGRAM_API", tg.base.as_str()),
        ("OTPBOX_BASE_URL", "https://otp.example"),
        ("OTPBOX_TELEGRAM_WEBHOOK", "1"),
    ];
    let s = paused(TestServer::start_with(&webhook_env));
    s.add_numbers(COUNTRY, &["6281100000009"]);
    let mut cy = s.customer("cy@example.com", "10.00");
    let mut web = browser(&s, "cy@example.com");
    let r = add_channel(&mut web, &[("kind", "telegram"), ("events", "code")]);
    assert_eq!(r.status, 201, "{}", r.text());
    let page = r.text();
    let start = page.find("/start ").expect("the /start code is shown") + "/start ".len();
    let code = page[start..start + page[start..].find('<').unwrap()].to_string();

    // The job registers the webhook once, with a secret token, and never polls.
    s.run_jobs();
    s.run_jobs();
    let methods = tg.shared.lock().unwrap().methods.clone();
    assert_eq!(methods.len(), 1, "{methods:?}");
    assert_eq!(methods[0].0, "setWebhook");
    let set: Value = serde_json::from_str(&methods[0].1).unwrap();
    assert_eq!(set["url"], "https://otp.example/telegram/webhook");
    let secret = set["secret_token"].as_str().unwrap().to_string();
    assert!(
        secret.len() >= 32 && secret.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{secret}"
    );

    let update = |chat: i64, text: &str| {
        json!({"update_id": 10, "message": {"message_id": 1, "date": 0,
            "chat": {"id": chat, "type": "private"}, "text": text}})
        .to_string()
    };
    // Without the secret, or with another one: refused, nothing linked.
    let mut telegram = s.client();
    let r = telegram.post(
        "/telegram/webhook",
        update(3003, &format!("/start {code}")).as_bytes(),
    );
    assert_eq!(r.status, 401, "{}", r.text());
    telegram.always_send(
        "X-Telegram-Bot-Api-Secret-Token",
        "0123456789abcdef0123456789abcdef",
    );
    let r = telegram.post(
        "/telegram/webhook",
        update(3003, &format!("/start {code}")).as_bytes(),
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        s.count("SELECT COUNT(*) FROM notify_channels WHERE chat_id = '3003'"),
        0
    );

    let mut telegram = s.client();
    telegram.always_send("X-Telegram-Bot-Api-Secret-Token", &secret);
    // An update that is not a /start is taken and left alone; a body that is no update is 400.
    let r = telegram.post("/telegram/webhook", update(3003, "hello").as_bytes());
    assert_eq!((r.status, r.json()), (200, json!({})));
    assert_eq!(telegram.post("/telegram/webhook", b"{not json").status, 400);
    // A wrong code: the chat is told so in the answer itself.
    let r = telegram.post("/telegram/webhook", update(3003, "/start nope").as_bytes());
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"method": "sendMessage", "chat_id": 3003,
               "text": "That code is not known. Copy it again from your notification settings."})
    );
    let r = telegram.post(
        "/telegram/webhook",
        update(3003, &format!("/start {code}")).as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"method": "sendMessage", "chat_id": 3003,
               "text": "Linked: this chat now gets the notifications you chose."})
    );
    // The answer was the reply: nothing was sent through the API for it.
    assert!(telegram_messages(&tg).is_empty());

    // The linked chat gets the code.
    let a = cy.order_ok("tg");
    assert!(s.inject(a["phone"].as_str().unwrap(), "Telegram code: 515151"));
    s.run_jobs();
    let tele = telegram_messages(&tg);
    assert_eq!(tele.len(), 1, "{tele:?}");
    assert_eq!(tele[0].0, "3003");
    assert!(tele[0].1.contains("515151"), "{tele:?}");

    // Every start registers the webhook again (repairing a registration changed elsewhere).
    let data = s.kill9();
    let s = paused(
        TestServer::builder()
            .data_dir(data)
            .envs(&webhook_env)
            .start(),
    );
    s.run_jobs();
    s.run_jobs();
    let methods = tg.shared.lock().unwrap().methods.clone();
    assert_eq!(methods.len(), 2, "{methods:?}");
    assert_eq!(
        (methods[1].0.as_str(), &methods[1].1),
        ("setWebhook", &methods[0].1)
    );

    // Webhook mode turned off: the registration is removed, then updates are polled again,
    // and the route is gone.
    let data = s.kill9();
    let mut polling_env = webhook_env.to_vec();
    polling_env.pop();
    let s = paused(
        TestServer::builder()
            .data_dir(data)
            .envs(&polling_env)
            .start(),
    );
    s.run_jobs();
    s.run_jobs();
    let methods: Vec<String> = tg
        .shared
        .lock()
        .unwrap()
        .methods
        .iter()
        .map(|m| m.0.clone())
        .collect();
    assert_eq!(
        methods,
        [
            "setWebhook",
            "setWebhook",
            "deleteWebhook",
            "getUpdates",
            "getUpdates"
        ]
    );
    let mut telegram = s.client();
    telegram.always_send("X-Telegram-Bot-Api-Secret-Token", &secret);
    let r = telegram.post("/telegram/webhook", update(3003, "hi").as_bytes());
    assert_eq!(r.status, 404);
}

/// A fake SMTP server (RFC 5321, no TLS, no AUTH): the messages it took, or, while `reject`
/// is set, a 554 to every MAIL FROM.
struct FakeSmtp {
    port: u16,
    got: Arc<Mutex<Vec<String>>>,
    reject: Arc<Mutex<bool>>,
}

impl FakeSmtp {
    fn start() -> FakeSmtp {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let reject = Arc::new(Mutex::new(false));
        let (g, rj) = (got.clone(), reject.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut out) = stream else { continue };
                let mut lines = BufReader::new(out.try_clone().unwrap());
                let _ = out.write_all(b"220 fake ESMTP\r\n");
                let mut data: Option<String> = None;
                loop {
                    let mut line = String::new();
                    if lines.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if let Some(d) = data.as_mut() {
                        if line == ".\r\n" {
                            g.lock().unwrap().push(std::mem::take(d));
                            data = None;
                            let _ = out.write_all(b"250 queued\r\n");
                        } else {
                            d.push_str(&line);
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-fake\r\n250 8BITMIME\r\n",
                        "MAIL" if *rj.lock().unwrap() => b"554 no thanks\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go on\r\n"
                        }
                        "QUIT" => {
                            let _ = out.write_all(b"221 bye\r\n");
                            break;
                        }
                        _ => b"250 ok\r\n",
                    };
                    let _ = out.write_all(reply);
                }
            }
        });
        FakeSmtp { port, got, reject }
    }
}

#[test]
fn an_email_carries_the_code_only_through_smtp_and_the_outbox_forgets_it() {
    let smtp = FakeSmtp::start();
    let port = smtp.port.to_string();
    let s = TestServer::start_with(&[
        ("OTPBOX_DEV_CLOCK", "1"),
        ("OTPBOX_SMTP_HOST", "127.0.0.1"),
        ("OTPBOX_SMTP_PORT", &port),
        ("OTPBOX_SMTP_TLS", "none"),
        ("OTPBOX_SMTP_FROM", "otpbox@example.com"),
        ("OTPBOX_SMS_RETENTION", "5m"),
    ]);
    assert_eq!(
        s.client().post("/__dev/scheduler?paused=1", b"").status,
        200
    );
    s.add_numbers(COUNTRY, &["6281100000021", "6281100000022"]);
    let mut dee = s.customer("dee@example.com", "10.00");
    let mut web = browser(&s, "dee@example.com");
    let r = add_channel(&mut web, &[("kind", "email"), ("events", "code")]);
    assert_eq!(r.location(), Some("/settings/notifications?m=saved"));
    let (mut admin, _) = s.signed_in("root@example.com", "admin");
    s.run_jobs();
    smtp.got.lock().unwrap().clear();

    // Sent through SMTP with the code; the outbox keeps only the news.
    let a = dee.order_ok("tg");
    assert!(s.inject(a["phone"].as_str().unwrap(), "Telegram code: 616161"));
    s.run_jobs();
    let mails = smtp.got.lock().unwrap().clone();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].contains("616161 is your tg code"), "{}", mails[0]);
    assert!(mails[0].contains("To: <dee@example.com>") || mails[0].contains("dee@example.com"));
    let public = format!(
        "A code arrived for your tg order #{}: it is on your dashboard.",
        a["id"]
    );
    let kept: Vec<String> = s
        .outbox()
        .into_iter()
        .filter(|m| m.subject == "Code for tg")
        .map(|m| m.body)
        .collect();
    assert_eq!(kept, [public]);

    // The server cannot send: the code waits in the outbox, which the admin sees without it,
    // and it is forgotten once the SMS retention has passed, sent or not.
    *smtp.reject.lock().unwrap() = true;
    let b = dee.order_ok("tg");
    assert!(s.inject(b["phone"].as_str().unwrap(), "Telegram code: 727272"));
    s.run_jobs();
    assert_eq!(smtp.got.lock().unwrap().len(), 1);
    assert_eq!(
        s.count("SELECT COUNT(*) FROM outbox WHERE body LIKE '%727272%' AND sent_at IS NULL"),
        1
    );
    let page = admin.get("/admin/outbox").text();
    assert!(
        !page.contains("727272") && !page.contains("616161"),
        "{page}"
    );
    assert!(page.contains("A code arrived for your tg order"), "{page}");
    assert!(!s.output().contains("727272"), "no code in the log");
    // The dev clock also runs with real time: ten seconds either side of the retention.
    s.advance_clock(290);
    s.run_jobs();
    assert_eq!(
        s.count("SELECT COUNT(*) FROM outbox WHERE body LIKE '%727272%'"),
        1
    );
    s.advance_clock(20);
    s.run_jobs();
    assert_eq!(
        s.count("SELECT COUNT(*) FROM outbox WHERE body LIKE '%727272%'"),
        0
    );
    assert_eq!(
        s.count("SELECT COUNT(*) FROM outbox WHERE public_body IS NOT NULL"),
        0
    );
    // Sent later, it carries only the news.
    *smtp.reject.lock().unwrap() = false;
    s.run_jobs();
    let mails = smtp.got.lock().unwrap().clone();
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert!(
        !mails[1].contains("727272") && mails[1].contains("A code arrived"),
        "{}",
        mails[1]
    );
}
