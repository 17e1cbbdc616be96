//! The simulator's failures, per order, as a QA team rehearses them: each mode at 100 %
//! (set on the admin page, or by the settings), a seed that makes a mix repeat, and the
//! demo's administrator. The clock is moved, never slept on; the scheduler is paused and
//! the jobs run by hand.

mod common;

use common::market::{id_of, Api};
use common::TestServer;

/// A demo server on the dev clock with the scheduler paused, and `extra` settings.
fn server(extra: &[(&str, &str)]) -> TestServer {
    let s = TestServer::builder()
        .demo()
        .env("OTPBOX_DEV_CLOCK", "1")
        .env("OTPBOX_SIM_DELAY", "10s")
        .envs(extra)
        .start();
    let r = s.client().post("/__dev/scheduler?paused=1", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    s
}

/// The admin sets the simulator's odds on the Numbers page.
fn set_odds(server: &TestServer, fields: &[(&str, &str)]) {
    let (mut admin, _) = server.signed_in("qa-admin@example.com", "admin");
    let mut all = vec![("on", "1")];
    all.extend_from_slice(fields);
    let r = admin.submit("/admin/numbers", "/admin/simulator", &all);
    assert_eq!(r.location(), Some("/admin/numbers?m=saved"), "{}", r.text());
}

/// The status, code and message texts of an activation.
fn seen(api: &mut Api, id: i64) -> (String, Option<String>, Vec<String>) {
    let a = api.activation(id);
    let texts = a["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|x| x["text"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    (
        a["status"].as_str().unwrap().to_string(),
        a["code"].as_str().map(str::to_string),
        texts,
    )
}

/// Orders one Telegram number and lets the simulator's delay pass.
fn order_and_wait(server: &TestServer, api: &mut Api) -> i64 {
    let id = id_of(&api.order_ok("tg"));
    server.advance_clock(11);
    server.run_jobs();
    id
}

#[test]
fn normal_odds_deliver_one_sms_with_its_code() {
    let server = server(&[]);
    let mut api = server.customer("eve@example.com", "10.00");
    let id = order_and_wait(&server, &mut api);
    let (status, code, texts) = seen(&mut api, id);
    assert_eq!(status, "received");
    assert_eq!(texts.len(), 1);
    assert!(texts[0].contains(code.as_deref().unwrap()), "{texts:?}");
}

#[test]
fn no_code_at_100_percent_expires_the_order_and_refunds_it() {
    let server = server(&[]);
    set_odds(&server, &[("no_code", "100")]);
    let mut api = server.customer("eve@example.com", "10.00");
    let id = order_and_wait(&server, &mut api);
    assert_eq!(server.count("SELECT COUNT(*) FROM sim_outbox"), 0);
    server.advance_clock(20 * 60);
    server.run_jobs();
    assert_eq!(seen(&mut api, id), ("expired".into(), None, vec![]));
    assert_eq!(api.balance(), 1000);
    server.assert_books_balance();
}

#[test]
fn late_code_at_100_percent_comes_after_the_end_and_reaches_no_one() {
    let server = server(&[]);
    set_odds(&server, &[("late_code", "100")]);
    let mut api = server.customer("eve@example.com", "10.00");
    let id = order_and_wait(&server, &mut api);
    assert_eq!(seen(&mut api, id).0, "waiting");
    assert_eq!(server.count("SELECT COUNT(*) FROM sim_outbox"), 1);
    server.advance_clock(20 * 60 + 60);
    server.run_jobs();
    assert_eq!(server.count("SELECT COUNT(*) FROM sim_outbox"), 0, "sent");
    assert_eq!(seen(&mut api, id), ("expired".into(), None, vec![]));
    assert_eq!(server.stored_messages(id), 0);
    assert_eq!(api.balance(), 1000);
}

#[test]
fn a_late_code_never_reaches_the_next_order_on_its_number() {
    let server = server(&[]);
    let (mut admin, _) = server.signed_in("qa-admin@example.com", "admin");
    let odds = |admin: &mut common::Client, mode: &str| {
        let r = admin.submit(
            "/admin/numbers",
            "/admin/simulator",
            &[("on", "1"), (mode, "100")],
        );
        assert_eq!(r.location(), Some("/admin/numbers?m=saved"), "{}", r.text());
    };
    odds(&mut admin, "late_code");
    let mut api = server.customer("eve@example.com", "10.00");
    let late = api.order_ok("tg");
    // The Telegram order ends without its code; its late SMS is still queued.
    server.advance_clock(20 * 60 + 1);
    server.run_jobs();
    assert_eq!(seen(&mut api, id_of(&late)).0, "expired");
    assert_eq!(server.count("SELECT COUNT(*) FROM sim_outbox"), 1);
    // A WhatsApp order (drawing no code of its own) gets the same number, free again.
    odds(&mut admin, "no_code");
    let next = api.order_ok("wa");
    assert_eq!(next["phone"], late["phone"], "the number is reused");
    // The late Telegram code comes due while the WhatsApp order is live: it reaches no one.
    server.advance_clock(60);
    server.run_jobs();
    assert_eq!(server.count("SELECT COUNT(*) FROM sim_outbox"), 0, "sent");
    assert_eq!(
        seen(&mut api, id_of(&next)),
        ("waiting".into(), None, vec![])
    );
    assert_eq!(server.stored_messages(id_of(&next)), 0);
    assert_eq!(server.stored_messages(id_of(&late)), 0);
}

#[test]
fn duplicate_at_100_percent_is_stored_once() {
    let server = server(&[]);
    set_odds(&server, &[("duplicate", "100")]);
    let mut api = server.customer("eve@example.com", "10.00");
    let id = id_of(&api.order_ok("tg"));
    assert_eq!(server.count("SELECT COUNT(*) FROM sim_outbox"), 2);
    server.advance_clock(11);
    server.run_jobs();
    let (status, code, texts) = seen(&mut api, id);
    assert_eq!((status.as_str(), texts.len()), ("received", 1));
    assert!(code.is_some());
    assert_eq!(server.stored_messages(id), 1);
}

#[test]
fn wrong_format_at_100_percent_delivers_the_text_without_a_code() {
    let server = server(&[]);
    set_odds(&server, &[("wrong_format", "100")]);
    let mut api = server.customer("eve@example.com", "10.00");
    let id = order_and_wait(&server, &mut api);
    let (_, code, texts) = seen(&mut api, id);
    assert_eq!(code, None, "{texts:?}");
    assert_eq!(texts.len(), 1);
    assert!(texts[0].contains("one-time key is"), "{texts:?}");
    // The customer ends it without a code: cancelled and refunded after the window.
    server.advance_clock(120);
    assert_eq!(api.act(id, "cancel").status, 200);
    assert_eq!(api.balance(), 1000);
}

#[test]
fn the_settings_give_the_odds_until_the_admin_sets_others() {
    let server = server(&[("OTPBOX_SIM_NO_CODE", "100")]);
    let mut api = server.customer("eve@example.com", "10.00");
    let id = order_and_wait(&server, &mut api);
    assert_eq!(seen(&mut api, id).2.len(), 0, "no SMS by the settings");
    let (mut admin, _) = server.signed_in("qa-admin@example.com", "admin");
    let page = admin.get("/admin/numbers").text();
    assert!(page.contains("come from the settings"), "{page}");
    let r = admin.submit(
        "/admin/numbers",
        "/admin/simulator",
        &[("on", "1"), ("no_code", "0")],
    );
    assert_eq!(r.status, 303);
    let id = order_and_wait(&server, &mut api);
    assert_eq!(seen(&mut api, id).0, "received", "the admin's odds win");
    let audit = server.count(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'simulator' \
         AND detail = 'on (no_code 0%, late_code 0%, duplicate 0%, wrong_format 0%)'",
    );
    assert_eq!(audit, 1);
}

#[test]
fn the_old_forms_mode_field_still_sets_one_fate_for_every_order() {
    let server = server(&[]);
    let (mut admin, _) = server.signed_in("qa-admin@example.com", "admin");
    let r = admin.submit(
        "/admin/numbers",
        "/admin/simulator",
        &[("on", "1"), ("mode", "no_code")],
    );
    assert_eq!(r.location(), Some("/admin/numbers?m=saved"), "{}", r.text());
    let audit = server.count(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'simulator' \
         AND detail = 'on (no_code 100%, late_code 0%, duplicate 0%, wrong_format 0%)'",
    );
    assert_eq!(audit, 1);
    let mut api = server.customer("eve@example.com", "10.00");
    let id = order_and_wait(&server, &mut api);
    assert_eq!(server.count("SELECT COUNT(*) FROM sim_outbox"), 0);
    assert_eq!(seen(&mut api, id), ("waiting".into(), None, vec![]));
}

#[test]
fn a_seed_makes_a_mix_of_fates_repeat_order_by_order() {
    let fates = || {
        let server = server(&[("OTPBOX_SIM_SEED", "42"), ("OTPBOX_SIM_NO_CODE", "50")]);
        let mut api = server.customer("eve@example.com", "20.00");
        let ids: Vec<i64> = (0..12).map(|_| id_of(&api.order_ok("tg"))).collect();
        server.advance_clock(11);
        server.run_jobs();
        ids.iter()
            .map(|id| seen(&mut api, *id).1.is_some())
            .collect::<Vec<bool>>()
    };
    let first = fates();
    assert!(first.contains(&true) && first.contains(&false), "{first:?}");
    assert_eq!(fates(), first);
}

#[test]
fn odds_over_100_percent_are_refused_and_change_nothing() {
    let server = server(&[]);
    let (mut admin, _) = server.signed_in("qa-admin@example.com", "admin");
    let r = admin.submit(
        "/admin/numbers",
        "/admin/simulator",
        &[("on", "1"), ("no_code", "60"), ("duplicate", "50")],
    );
    let page = admin.back_to(&r, "/admin/numbers").text();
    assert!(page.contains("add up to at most 100"), "{page}");
    assert_eq!(
        server.count("SELECT COUNT(*) FROM runtime_settings WHERE key = 'simulator_odds'"),
        0
    );
}

/// The demo administrator's password as `otpbox demo` printed it when it made the account.
fn printed_admin_password(out: &str) -> String {
    let at = out
        .find("Admin:    admin@demo.example / ")
        .unwrap_or_else(|| panic!("no admin password printed: {out}"));
    out[at + 31..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn the_demo_makes_an_administrator_with_a_random_password_printed_once() {
    let server = server(&[]);
    let out = server.output();
    let password = printed_admin_password(&out);
    assert_eq!(password.len(), 20, "{out}");
    assert!(out.contains("shown only now"), "{out}");
    let mut web = server.client();
    // No fixed, published password opens it.
    let r = web.login("admin@demo.example", "demo-admin-password");
    assert_ne!(r.location(), Some("/dashboard"));
    let r = web.login("admin@demo.example", &password);
    assert_eq!(r.location(), Some("/dashboard"), "{}", r.text());
    assert_eq!(web.get("/admin").status, 200);
    // Started again on the same data: the account is kept, its password never printed again.
    let data = server.kill9();
    let again = TestServer::builder()
        .demo()
        .env("OTPBOX_DEV_CLOCK", "1")
        .data_dir(data)
        .start();
    let out = again.output();
    assert!(!out.contains(&password), "{out}");
    assert!(
        out.contains("Admin:    admin@demo.example (the password printed when it was created)"),
        "{out}"
    );
    let mut web = again.client();
    let r = web.login("admin@demo.example", &password);
    assert_eq!(r.location(), Some("/dashboard"), "{}", r.text());
}
