//! Two-factor sign-in (TOTP, RFC 6238) through the browser forms: enrolment with the QR code
//! and the typed secret, the code step of the login, ±1 step accepted and ±2 refused, no
//! replay, recovery codes once each, the waiting step's time and try limits, turning off,
//! new recovery codes, the security e-mails, and API keys unaffected.
//!
//! The codes are computed here from the secret the page shows, with a TOTP of the test's own
//! (HMAC-SHA-1 from the same crates, nothing of otpbox's), at steps the test chooses by
//! moving the server's clock.

mod common;

use common::totp::{base32_decode, totp_at_step};

use common::{Client, Response, TestServer, PASSWORD};

const STEP: i64 = 30;

fn server() -> TestServer {
    TestServer::start_with(&[("OTPBOX_DEV_CLOCK", "1")])
}

/// Moves the server's clock to one second into the next 30-second step and returns that
/// step, so a test has most of a step of real time before the server's step moves on.
fn fresh_step(s: &TestServer) -> i64 {
    let now = s.clock_now();
    s.advance_clock((STEP - now.rem_euclid(STEP) + 1) as u64);
    let now = s.clock_now();
    // A loaded machine may let a few real seconds pass; most of the step is still ahead.
    assert!(
        (1..=5).contains(&now.rem_euclid(STEP)),
        "the clock moved to a step start"
    );
    now / STEP
}

/// The text of the first element after `marker`, up to the next `<`.
fn text_after<'a>(html: &'a str, marker: &str) -> Option<&'a str> {
    let start = html.find(marker)? + marker.len();
    Some(&html[start..start + html[start..].find('<')?])
}

fn recovery_codes(page: &str) -> Vec<String> {
    page.split("<code class=\"recovery\">")
        .skip(1)
        .map(|p| p[..p.find('<').unwrap()].to_string())
        .collect()
}

/// An account with two-factor sign-in on: its secret and its recovery codes.
struct Enrolled {
    secret: Vec<u8>,
    codes: Vec<String>,
}

/// Starts set-up and returns the settings page that shows the QR code and the secret.
fn start_setup(c: &mut Client) -> Response {
    let r = c.submit("/settings/2fa", "/settings/2fa/start", &[]);
    assert_eq!(r.status, 303, "{}", r.text());
    let page = c.get("/settings/2fa");
    assert_eq!(page.status, 200);
    page
}

fn secret_of(page: &Response) -> Vec<u8> {
    let shown = text_after(&page.text(), "id=\"secret\">")
        .expect("the secret is shown")
        .to_string();
    base32_decode(&shown)
}

fn enrol(s: &TestServer, c: &mut Client) -> Enrolled {
    let page = start_setup(c);
    let secret = secret_of(&page);
    let step = fresh_step(s);
    let r = c.submit(
        "/settings/2fa",
        "/settings/2fa/enable",
        &[
            ("code", &totp_at_step(&secret, step)),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let codes = recovery_codes(&r.text());
    assert_eq!(codes.len(), 10, "{}", r.text());
    Enrolled { secret, codes }
}

/// The password step: for an enrolled account it leads to the code form.
fn password_step(c: &mut Client, email: &str) {
    let r = c.login(email, PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.location(), Some("/login/2fa"));
}

fn code_step(c: &mut Client, code: &str) -> Response {
    c.submit("/login/2fa", "/login/2fa", &[("code", code)])
}

/// What the code form says after a wrong or spent code.
const NOT_VALID: &str = "That code is not valid (or was already used).";

/// The code step with a code that is refused: the browser goes back to the code form, whose
/// page (with the message) is returned.
fn code_refused(c: &mut Client, code: &str) -> String {
    let r = code_step(c, code);
    c.back_to(&r, "/login/2fa").text()
}

fn signed_in(c: &mut Client) -> bool {
    c.get("/dashboard").status == 200
}

/// Security event kinds of an account, oldest first.
fn events(s: &TestServer, user: i64) -> Vec<(String, String)> {
    let db = s.db();
    let mut st = db
        .prepare("SELECT kind, detail FROM security_events WHERE user_id = ?1 ORDER BY id")
        .unwrap();
    st.query_map([user], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn kinds(s: &TestServer, user: i64) -> Vec<String> {
    events(s, user).into_iter().map(|e| e.0).collect()
}

fn subjects(s: &TestServer) -> Vec<String> {
    s.outbox().into_iter().map(|m| m.subject).collect()
}

#[test]
fn setup_shows_a_qr_code_and_the_secret_and_needs_a_current_code_and_the_password() {
    let s = server();
    let (mut c, ann) = s.signed_in("ann@example.com", "user");
    let r = c.get("/settings");
    assert!(r
        .text()
        .contains("Off: signing in asks for the password only."));

    let page = start_setup(&mut c);
    let html = page.text();
    // The QR code is an inline SVG drawn by the server: no image request, no script.
    let svg = &html[html.find("<svg").expect("an inline svg")..];
    let svg = &svg[..svg.find("</svg>").unwrap()];
    assert!(svg.contains("viewBox=\"0 0 "), "{svg}");
    assert!(
        svg.contains("<path d=\"M4 4h7v1h-7z"),
        "a finder pattern: {svg}"
    );
    assert!(!html.contains("<img"), "no image service");
    let secret = secret_of(&page);
    assert_eq!(secret.len(), 20, "160-bit secret");
    let link = text_after(&html, "<code class=\"key\">otpauth://")
        .expect("the otpauth link is shown")
        .replace("&amp;", "&");
    let shown = text_after(&html, "id=\"secret\">")
        .unwrap()
        .replace(' ', "");
    assert_eq!(
        link,
        format!(
            "totp/otpbox:ann%40example.com?secret={shown}&issuer=otpbox&algorithm=SHA1&digits=6&period=30"
        )
    );

    let step = fresh_step(&s);
    // A wrong code, or the right code with a wrong password: still off, nothing mailed.
    let r = c.submit(
        "/settings/2fa",
        "/settings/2fa/enable",
        &[
            ("code", &totp_at_step(&secret, step + 3)),
            ("password", PASSWORD),
        ],
    );
    let r = c.back_to(&r, "/settings/2fa");
    assert!(r.text().contains("That code does not match."));
    let r = c.submit(
        "/settings/2fa",
        "/settings/2fa/enable",
        &[
            ("code", &totp_at_step(&secret, step)),
            ("password", "not my password"),
        ],
    );
    let r = c.back_to(&r, "/settings/2fa");
    assert!(r.text().contains("The password is wrong."));
    assert_eq!(
        s.count("SELECT COUNT(*) FROM totp WHERE enabled_at IS NOT NULL"),
        0
    );
    assert!(s.outbox().is_empty());

    let r = c.submit(
        "/settings/2fa",
        "/settings/2fa/enable",
        &[
            ("code", &totp_at_step(&secret, step)),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Two-factor sign-in is on."));
    let codes = recovery_codes(&r.text());
    assert_eq!(codes.len(), 10);
    assert!(codes
        .iter()
        .all(|c| c.len() == 11 && c.as_bytes()[5] == b'-'));
    // Shown once: the settings page does not show them again, nor the secret.
    let again = c.get("/settings/2fa").text();
    assert!(recovery_codes(&again).is_empty());
    assert!(!again.contains("id=\"secret\""));
    assert!(again.contains("10 unused recovery codes."));
    assert!(c
        .get("/settings")
        .text()
        .contains("On: signing in asks for a code"));
    // Only keyed hashes are stored; the secret is not stored at all.
    let db = s.db();
    let stored: Vec<Vec<u8>> = db
        .prepare("SELECT code_hash FROM recovery_codes")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(stored.len(), 10);
    assert!(stored
        .iter()
        .all(|h| !codes.iter().any(|c| h.as_slice() == c.as_bytes())));
    let salt: String = db
        .query_row("SELECT secret_salt FROM totp", [], |r| r.get(0))
        .unwrap();
    assert!(!salt.contains(&shown) && salt.as_bytes() != secret.as_slice());

    let mails = s.outbox();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, "ann@example.com");
    assert_eq!(
        mails[0].subject,
        "Two-factor sign-in is on for your otpbox account"
    );
    assert_eq!(
        kinds(&s, ann),
        [
            "login",
            "second_factor_failed",
            "login_failed",
            "totp_enabled"
        ],
        "the wrong code and the wrong password are logged"
    );
}

#[test]
fn login_asks_for_the_code_after_the_password() {
    let s = server();
    let (mut c, ann) = s.signed_in("ann@example.com", "user");
    let e = enrol(&s, &mut c);
    c.logout();

    password_step(&mut c, "ann@example.com");
    assert!(!signed_in(&mut c), "the password alone signs nobody in");
    assert_eq!(c.get("/settings").status, 303);
    let form = c.get("/login/2fa");
    assert_eq!(form.status, 200);
    assert!(form.text().contains("Enter your code"));

    let step = fresh_step(&s);
    let good = totp_at_step(&e.secret, step);
    let wrong = if good == "000000" { "111111" } else { "000000" };
    assert!(code_refused(&mut c, wrong).contains(NOT_VALID));
    assert!(!signed_in(&mut c));

    let r = code_step(&mut c, &good);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.location(), Some("/dashboard"));
    assert!(signed_in(&mut c));
    let ev = events(&s, ann);
    let tail: Vec<(&str, &str)> = ev[ev.len() - 4..]
        .iter()
        .map(|(k, d)| (k.as_str(), d.as_str()))
        .collect();
    assert_eq!(
        tail,
        [
            ("logout", ""),
            ("second_factor_asked", ""),
            ("second_factor_failed", "login"),
            ("login", "with an app code"),
        ]
    );
}

#[test]
fn the_page_asked_for_before_login_is_kept_through_the_code_step() {
    let s = server();
    let (mut c, _) = s.signed_in("ann@example.com", "user");
    let e = enrol(&s, &mut c);
    c.logout();
    let r = c.get("/settings/security");
    assert_eq!(r.location(), Some("/login?next=%2Fsettings%2Fsecurity"));
    let r = c.submit(
        "/login?next=%2Fsettings%2Fsecurity",
        "/login",
        &[
            ("email", "ann@example.com"),
            ("password", PASSWORD),
            ("next", "/settings/security"),
        ],
    );
    assert_eq!(r.location(), Some("/login/2fa?next=%2Fsettings%2Fsecurity"));
    let step = fresh_step(&s);
    let r = c.submit(
        "/login/2fa?next=%2Fsettings%2Fsecurity",
        "/login/2fa",
        &[
            ("code", &totp_at_step(&e.secret, step)),
            ("next", "/settings/security"),
        ],
    );
    assert_eq!(r.location(), Some("/settings/security"));
}

#[test]
fn a_code_cannot_be_replayed_nor_an_older_one_used() {
    let s = server();
    let (mut c, _) = s.signed_in("ann@example.com", "user");
    let e = enrol(&s, &mut c);
    c.logout();

    let step = fresh_step(&s);
    password_step(&mut c, "ann@example.com");
    let code = totp_at_step(&e.secret, step);
    assert_eq!(code_step(&mut c, &code).location(), Some("/dashboard"));
    c.logout();

    // The same code again, on another browser, within its step: refused.
    let mut other = s.client();
    password_step(&mut other, "ann@example.com");
    assert!(
        code_refused(&mut other, &code).contains(NOT_VALID),
        "replay"
    );
    // The previous step's code is within ±1 but older than the one used: refused.
    let older = totp_at_step(&e.secret, step - 1);
    assert!(
        code_refused(&mut other, &older).contains(NOT_VALID),
        "older than the last used"
    );
    assert!(!signed_in(&mut other));

    // The next step's code works once.
    s.advance_clock(STEP as u64);
    let r = code_step(&mut other, &totp_at_step(&e.secret, step + 1));
    assert_eq!(r.location(), Some("/dashboard"), "{}", r.text());
    assert!(signed_in(&mut other));
}

#[test]
fn one_step_either_side_is_accepted_two_are_not() {
    let s = server();
    let (mut c, _) = s.signed_in("ann@example.com", "user");
    let e = enrol(&s, &mut c);
    c.logout();

    let step = fresh_step(&s);
    password_step(&mut c, "ann@example.com");
    assert!(code_refused(&mut c, &totp_at_step(&e.secret, step + 2)).contains(NOT_VALID));
    assert!(code_refused(&mut c, &totp_at_step(&e.secret, step - 2)).contains(NOT_VALID));
    assert_eq!(
        code_step(&mut c, &totp_at_step(&e.secret, step + 1)).location(),
        Some("/dashboard")
    );
    c.logout();

    // Three steps later, the code of the step before is accepted (it is newer than the last
    // one used).
    s.advance_clock(3 * STEP as u64);
    password_step(&mut c, "ann@example.com");
    assert_eq!(
        code_step(&mut c, &totp_at_step(&e.secret, step + 2)).location(),
        Some("/dashboard")
    );
    c.logout();
    s.advance_clock(STEP as u64);
    password_step(&mut c, "ann@example.com");
    assert_eq!(
        code_step(&mut c, &totp_at_step(&e.secret, step + 4)).location(),
        Some("/dashboard"),
        "current"
    );
}

#[test]
fn a_recovery_code_signs_in_once_and_mails_a_notice() {
    let s = server();
    let (mut c, ann) = s.signed_in("ann@example.com", "user");
    let e = enrol(&s, &mut c);
    c.logout();

    password_step(&mut c, "ann@example.com");
    // Typed in capitals with a space instead of the dash: still the code.
    let typed = e.codes[0].to_uppercase().replace('-', " ");
    let r = code_step(&mut c, &typed);
    assert_eq!(r.location(), Some("/dashboard"), "{}", r.text());
    assert!(signed_in(&mut c));
    assert!(c
        .get("/settings/2fa")
        .text()
        .contains("9 unused recovery codes."));
    c.logout();

    password_step(&mut c, "ann@example.com");
    assert!(
        code_refused(&mut c, &e.codes[0]).contains(NOT_VALID),
        "used once"
    );
    assert_eq!(
        code_step(&mut c, &e.codes[1]).location(),
        Some("/dashboard"),
        "another one works"
    );
    assert_eq!(
        subjects(&s),
        [
            "Two-factor sign-in is on for your otpbox account",
            "A recovery code was used on your otpbox account",
            "A recovery code was used on your otpbox account",
        ]
    );
    assert!(s.outbox()[1].body.contains("9 unused codes left"));
    let used: Vec<String> = events(&s, ann)
        .into_iter()
        .filter(|e| e.0 == "recovery_code_used" || e.1 == "with a recovery code")
        .map(|e| format!("{} {}", e.0, e.1))
        .collect();
    assert_eq!(
        used,
        [
            "recovery_code_used 9 left",
            "login with a recovery code",
            "recovery_code_used 8 left",
            "login with a recovery code"
        ]
    );
}

#[test]
fn the_code_step_ends_after_five_minutes() {
    let s = server();
    let (mut c, _) = s.signed_in("ann@example.com", "user");
    let e = enrol(&s, &mut c);
    c.logout();

    password_step(&mut c, "ann@example.com");
    let csrf = c.get("/login/2fa").csrf();
    s.advance_clock(301);
    let step = s.clock_now() / STEP;
    let r = c.post_form(
        "/login/2fa",
        &[("code", &totp_at_step(&e.secret, step)), ("csrf", &csrf)],
    );
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), Some("/login?m=second_factor_expired"));
    assert!(!signed_in(&mut c));
    assert_eq!(
        c.get("/login/2fa").location(),
        Some("/login?m=second_factor_expired")
    );
    assert!(c
        .get("/login?m=second_factor_expired")
        .text()
        .contains("The sign-in took too long"));
}

#[test]
fn wrong_codes_end_the_code_step_and_throttle_the_account_like_wrong_passwords() {
    let s = server();
    let (mut c, _) = s.signed_in("ann@example.com", "user");
    let e = enrol(&s, &mut c);
    c.logout();

    password_step(&mut c, "ann@example.com");
    let step = fresh_step(&s);
    let good = totp_at_step(&e.secret, step);
    let bad = if good == "123456" { "654321" } else { "123456" };
    for _ in 0..4 {
        assert!(code_refused(&mut c, bad).contains(NOT_VALID));
    }
    // The fifth wrong code ends the waiting session: back to the password.
    let csrf = c.get("/login/2fa").csrf();
    let r = c.post_form("/login/2fa", &[("code", bad), ("csrf", &csrf)]);
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), Some("/login?m=second_factor_attempts"));
    assert_eq!(c.session(), None);
    // Five failures within the window throttle the account, even with the right password.
    let r = c.login("ann@example.com", PASSWORD);
    assert!(r.header("retry-after").is_some());
    assert!(c
        .back_to(&r, "/login")
        .text()
        .contains("Too many failed attempts."));
    assert_eq!(
        s.count("SELECT COUNT(*) FROM security_events WHERE kind = 'second_factor_failed'"),
        5
    );
    s.advance_clock(16 * 60);
    password_step(&mut c, "ann@example.com");
    let step = fresh_step(&s);
    assert_eq!(
        code_step(&mut c, &totp_at_step(&e.secret, step)).location(),
        Some("/dashboard")
    );
}

#[test]
fn turning_off_needs_the_password_and_a_code_and_sends_a_mail() {
    let s = server();
    let (mut c, ann) = s.signed_in("ann@example.com", "user");
    let e = enrol(&s, &mut c);
    s.advance_clock(STEP as u64);
    let step = fresh_step(&s);
    let code = totp_at_step(&e.secret, step);

    let r = c.submit(
        "/settings/2fa",
        "/settings/2fa/disable",
        &[("code", &code), ("password", "wrong password!")],
    );
    let r = c.back_to(&r, "/settings/2fa");
    assert!(r.text().contains("The password is wrong."));
    let r = c.submit(
        "/settings/2fa",
        "/settings/2fa/disable",
        &[("code", "999999x"), ("password", PASSWORD)],
    );
    let r = c.back_to(&r, "/settings/2fa");
    assert!(r.text().contains(NOT_VALID));
    assert_eq!(s.count("SELECT COUNT(*) FROM totp"), 1, "still on");

    let r = c.submit(
        "/settings/2fa",
        "/settings/2fa/disable",
        &[("code", &code), ("password", PASSWORD)],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.location(), Some("/settings/2fa?m=second_factor_off"));
    assert_eq!(s.count("SELECT COUNT(*) FROM totp"), 0);
    assert_eq!(s.count("SELECT COUNT(*) FROM recovery_codes"), 0);
    assert_eq!(
        subjects(&s).last().unwrap(),
        "Two-factor sign-in is off for your otpbox account"
    );
    let k = kinds(&s, ann);
    assert_eq!(
        k[k.len() - 3..],
        ["login_failed", "second_factor_failed", "totp_disabled"]
    );

    // The password alone signs in again.
    c.logout();
    let r = c.login("ann@example.com", PASSWORD);
    assert_eq!(r.location(), Some("/dashboard"));
}

#[test]
fn turning_off_with_a_recovery_code() {
    let s = server();
    let (mut c, ann) = s.signed_in("ann@example.com", "user");
    let e = enrol(&s, &mut c);
    let r = c.submit(
        "/settings/2fa",
        "/settings/2fa/disable",
        &[("code", &e.codes[4]), ("password", PASSWORD)],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let k = kinds(&s, ann);
    assert_eq!(k[k.len() - 2..], ["recovery_code_used", "totp_disabled"]);
}

#[test]
fn new_recovery_codes_replace_the_old_ones() {
    let s = server();
    let (mut c, ann) = s.signed_in("ann@example.com", "user");
    let e = enrol(&s, &mut c);
    s.advance_clock(STEP as u64);
    let step = fresh_step(&s);
    let r = c.submit(
        "/settings/2fa",
        "/settings/2fa/recovery",
        &[
            ("code", &totp_at_step(&e.secret, step)),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let fresh = recovery_codes(&r.text());
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|f| !e.codes.contains(f)));
    assert_eq!(
        subjects(&s).last().unwrap(),
        "New recovery codes for your otpbox account"
    );
    assert_eq!(kinds(&s, ann).last().unwrap(), "recovery_codes_regenerated");

    c.logout();
    password_step(&mut c, "ann@example.com");
    assert!(
        code_refused(&mut c, &e.codes[0]).contains(NOT_VALID),
        "old codes are gone"
    );
    assert_eq!(code_step(&mut c, &fresh[0]).location(), Some("/dashboard"));
}

#[test]
fn api_keys_are_unaffected_by_the_second_factor() {
    let s = server();
    let (mut c, _) = s.signed_in("ann@example.com", "user");
    enrol(&s, &mut c);
    let key = s.api_key("ann@example.com");
    let r = s.client().request(
        "GET",
        "/api/v1/balance",
        &[("Authorization", &format!("Bearer {key}"))],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s.client().get(&format!(
        "/stubs/handler_api.php?api_key={key}&action=getBalance"
    ));
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("ACCESS_BALANCE:"), "{}", r.text());
}

#[test]
fn the_settings_forms_need_a_signed_in_session_and_its_csrf_token() {
    let s = server();
    let mut anon = s.client();
    for path in ["/settings/2fa", "/settings/security"] {
        let r = anon.get(path);
        assert_eq!(r.status, 303, "{path}");
    }
    // A form without a session (and so without its CSRF token) is refused.
    let r = anon.post_form("/settings/2fa/start", &[]);
    assert_eq!(r.status, 403);
    assert_eq!(s.count("SELECT COUNT(*) FROM totp"), 0);
}

#[test]
fn an_admin_can_turn_off_a_lost_second_factor_audited_and_mailed() {
    let s = server();
    let (mut admin, root) = s.signed_in("root@example.com", "admin");
    let (mut ann, ann_id) = s.signed_in("ann@example.com", "user");
    enrol(&s, &mut ann);
    ann.logout();

    let page = format!("/admin/users/{ann_id}");
    assert!(admin
        .get(&page)
        .text()
        .contains("<dd id=\"two-factor\">on</dd>"));
    let r = admin.submit(&page, &format!("{page}/2fa/reset"), &[]);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.location(),
        Some(format!("{page}?m=second_factor_reset").as_str())
    );
    assert!(admin
        .get(&page)
        .text()
        .contains("<dd id=\"two-factor\">off</dd>"));
    assert_eq!(s.count("SELECT COUNT(*) FROM totp"), 0);
    let (actor, target): (i64, i64) = s
        .db()
        .query_row(
            "SELECT actor_id, target_id FROM audit_log WHERE action = 'second_factor_reset'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((actor, target), (root, ann_id));
    assert_eq!(
        events(&s, ann_id).last().unwrap(),
        &(
            "totp_disabled".to_string(),
            "by an administrator".to_string()
        )
    );
    let last = s.outbox().pop().unwrap();
    assert_eq!(
        (last.to.as_str(), last.subject.as_str()),
        (
            "ann@example.com",
            "Two-factor sign-in is off for your otpbox account"
        )
    );
    assert_eq!(
        ann.login("ann@example.com", PASSWORD).location(),
        Some("/dashboard")
    );

    // Again: nothing to turn off, nothing written.
    let r = admin.submit(&page, &format!("{page}/2fa/reset"), &[]);
    assert!(admin
        .follow(&r)
        .text()
        .contains("Two-factor sign-in is not on for this account."));
    assert_eq!(
        s.count("SELECT COUNT(*) FROM audit_log WHERE action = 'second_factor_reset'"),
        1
    );
    // Only admins.
    let (mut bob, _) = s.signed_in("bob@example.com", "user");
    let csrf = bob.get("/dashboard").csrf();
    let r = bob.post_form(&format!("{page}/2fa/reset"), &[("csrf", &csrf)]);
    assert_eq!(r.status, 403);
}

#[test]
fn deleting_an_account_with_a_second_factor_needs_a_current_code() {
    let s = server();
    let (mut c, id) = s.signed_in("gone@example.com", "user");
    let enrolled = enrol(&s, &mut c);
    let state = |s: &TestServer| -> String {
        s.db()
            .query_row("SELECT state FROM users WHERE id = ?1", [id], |r| r.get(0))
            .unwrap()
    };
    // The form asks for the code; without it, or with a wrong one, nothing happens.
    assert!(c.get("/settings/delete").text().contains("name=\"code\""));
    let step = fresh_step(&s);
    // The code of the step that turned the factor on was used then: refused like a wrong one.
    let used = totp_at_step(&enrolled.secret, step - 1);
    for code in ["", "000000", used.as_str()] {
        let r = c.submit(
            "/settings/delete",
            "/settings/delete",
            &[("password", PASSWORD), ("code", code)],
        );
        let page = c.back_to(&r, "/settings/delete").text();
        assert!(
            page.contains("role=\"alert\""),
            "deleted with code {code:?}"
        );
        assert_eq!(state(&s), "active");
    }
    // A current code deletes the account.
    let r = c.submit(
        "/settings/delete",
        "/settings/delete",
        &[
            ("password", PASSWORD),
            ("code", &totp_at_step(&enrolled.secret, step)),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(state(&s), "deleted");
    assert_eq!(
        s.count(&format!(
            "SELECT COUNT(*) FROM sessions WHERE user_id = {id} OR pending_user_id = {id}"
        )),
        0
    );
}
