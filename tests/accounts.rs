//! Accounts: sign-up and e-mail verification, login and logout, throttling, CSRF, the session
//! cookie, password change and reset, the first-admin setup link, idle sessions.

mod common;

use common::{Client, TestServer, PASSWORD};

const NEW_PASSWORD: &str = "a brand new passphrase";

/// Signed-in sessions in the database.
fn signed_in_sessions(server: &TestServer) -> i64 {
    server.count("SELECT COUNT(*) FROM sessions WHERE user_id IS NOT NULL")
}

/// The dashboard sends an anonymous visitor to the login form.
fn assert_signed_out(client: &mut Client) {
    let r = client.get("/dashboard");
    assert_eq!(
        r.status,
        303,
        "dashboard answered {}: {}",
        r.status,
        r.text()
    );
    assert_eq!(r.location(), Some("/login?next=%2Fdashboard"));
}

fn assert_signed_in_as(client: &mut Client, email: &str) {
    let r = client.get("/dashboard");
    assert_eq!(
        r.status,
        200,
        "dashboard answered {}: {}",
        r.status,
        r.text()
    );
    assert!(r.text().contains(email), "dashboard does not show {email}");
}

/// The `Set-Cookie` attributes after the `name=value` pair.
fn cookie_attributes(set_cookie: &str) -> Vec<&str> {
    set_cookie.split("; ").skip(1).collect()
}

#[test]
fn signup_verify_logout_login_and_logout_again() {
    let server = TestServer::start();
    let mut c = server.client();

    let r = c.signup("Ann@Example.com", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.location(), Some("/dashboard?m=welcome"));
    let dashboard = c.get("/dashboard?m=welcome").text();
    assert!(dashboard.contains("Welcome! Your account is ready."));
    assert!(dashboard.contains("Please confirm your e-mail address"));

    let mails = server.outbox();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, "ann@example.com");
    assert_eq!(mails[0].subject, "Confirm your e-mail address for otpbox");
    let verify = server.only_link("/verify/");
    let r = c.get(&verify);
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), Some("/dashboard?m=verified"));
    assert_eq!(
        server.count("SELECT COUNT(*) FROM users WHERE email_verified_at IS NOT NULL"),
        1
    );
    assert!(!c
        .get("/dashboard")
        .text()
        .contains("Please confirm your e-mail address"));

    let r = c.logout();
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), Some("/"));
    assert_eq!(c.session(), None);
    assert_signed_out(&mut c);

    let r = c.login("ann@example.com", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.location(), Some("/dashboard"));
    assert_signed_in_as(&mut c, "ann@example.com");

    c.logout();
    assert_signed_out(&mut c);
}

#[test]
fn verification_link_works_once() {
    let server = TestServer::start();
    server.client().signup("ann@example.com", PASSWORD);
    let link = server.only_link("/verify/");
    let r = server.client().get(&link);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("your e-mail address is confirmed"));
    let r = server.client().get(&link);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("This link has already been used."));
}

#[test]
fn signup_without_age_confirmation_is_refused() {
    let server = TestServer::start();
    let mut c = server.client();
    let r = c.submit(
        "/signup",
        "/signup",
        &[
            ("email", "ann@example.com"),
            ("password", PASSWORD),
            ("aup", "1"),
        ],
    );
    let r = c.back_to(&r, "/signup");
    assert!(r
        .text()
        .contains("You must confirm that you are at least 18 years old."));
    assert_eq!(server.count("SELECT COUNT(*) FROM users"), 0);
    assert!(server.outbox().is_empty());
}

#[test]
fn signup_without_accepting_the_aup_is_refused() {
    let server = TestServer::start();
    let mut c = server.client();
    let r = c.submit(
        "/signup",
        "/signup",
        &[
            ("email", "ann@example.com"),
            ("password", PASSWORD),
            ("age", "1"),
        ],
    );
    let r = c.back_to(&r, "/signup");
    assert!(r
        .text()
        .contains("You must accept the acceptable-use policy."));
    assert_eq!(server.count("SELECT COUNT(*) FROM users"), 0);
    assert!(server.outbox().is_empty());
}

#[test]
fn signup_with_a_password_under_10_characters_is_refused() {
    let server = TestServer::start();
    let mut c = server.client();
    let r = c.signup("ann@example.com", "123456789");
    let r = c.back_to(&r, "/signup");
    assert!(r
        .text()
        .contains("The password must have at least 10 characters."));
    assert_eq!(server.count("SELECT COUNT(*) FROM users"), 0);
    assert!(server.outbox().is_empty());
    assert_eq!(signed_in_sessions(&server), 0);
}

#[test]
fn signup_with_an_existing_email_in_another_case_is_refused() {
    let server = TestServer::start();
    assert_eq!(
        server
            .client()
            .signup("ann@example.com", PASSWORD)
            .location(),
        Some("/dashboard?m=welcome")
    );
    let mut other = server.client();
    let r = other.signup("ANN@Example.COM", "someone else's password");
    let r = other.back_to(&r, "/signup");
    assert!(r
        .text()
        .contains("An account with this e-mail address already exists."));
    assert_eq!(server.count("SELECT COUNT(*) FROM users"), 1);
    assert_eq!(server.outbox().len(), 1);
    assert_signed_out(&mut other);
}

#[test]
fn wrong_password_sends_back_to_the_login_and_says_so() {
    let server = TestServer::start();
    server.create_user("ann@example.com", "user", PASSWORD);
    let mut c = server.client();
    let r = c.login_refused("ann@example.com", "not the password");
    assert!(r.text().contains("Wrong e-mail or password."));
    assert_eq!(signed_in_sessions(&server), 0);
    assert_signed_out(&mut c);
}

#[test]
fn unknown_email_answers_like_a_wrong_password() {
    let server = TestServer::start();
    let r = server
        .client()
        .login_refused("nobody@example.com", PASSWORD);
    assert!(r.text().contains("Wrong e-mail or password."));
}

#[test]
fn account_is_throttled_after_max_failures_even_for_the_right_password() {
    let server = TestServer::start_with(&[("OTPBOX_LOGIN_MAX_FAILURES", "3")]);
    server.create_user("ann@example.com", "user", PASSWORD);
    let mut c = server.client();
    for attempt in 1..=2 {
        let r = c.login_refused("ann@example.com", "not the password");
        assert!(
            r.text().contains("Wrong e-mail or password."),
            "attempt {attempt}"
        );
    }
    for password in ["not the password", PASSWORD] {
        let r = c.login("ann@example.com", password);
        // The default window is 15 minutes, counted from the oldest counted failure.
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((840..=900).contains(&retry), "Retry-After: {retry}");
        assert!(c
            .back_to(&r, "/login")
            .text()
            .contains("Too many failed attempts. Try again in 15 minutes."));
    }
    assert_eq!(signed_in_sessions(&server), 0);
    assert_signed_out(&mut c);
}

#[test]
fn account_throttle_lifts_when_the_window_has_passed() {
    let server = TestServer::start_with(&[
        ("OTPBOX_LOGIN_MAX_FAILURES", "3"),
        ("OTPBOX_LOGIN_WINDOW", "15m"),
        ("OTPBOX_DEV_CLOCK", "1"),
    ]);
    server.create_user("ann@example.com", "user", PASSWORD);
    let mut c = server.client();
    for _ in 0..3 {
        c.login("ann@example.com", "not the password");
    }
    assert!(c
        .login_refused("ann@example.com", PASSWORD)
        .text()
        .contains("Too many failed attempts."));
    server.advance_clock(15 * 60 + 1);
    let r = c.login("ann@example.com", PASSWORD);
    assert_eq!(r.location(), Some("/dashboard"), "{}", r.text());
    assert_signed_in_as(&mut c, "ann@example.com");
}

#[test]
fn address_is_throttled_after_max_failures_across_emails() {
    let server = TestServer::start_with(&[("OTPBOX_LOGIN_IP_MAX_FAILURES", "3")]);
    server.create_user("ann@example.com", "user", PASSWORD);
    server.create_user("bob@example.com", "user", PASSWORD);
    let mut c = server.client();
    for email in ["bob@example.com", "carol@example.com"] {
        let r = c.login_refused(email, "wrong password");
        assert!(r.text().contains("Wrong e-mail or password."), "{email}");
    }
    let third = c.login("dave@example.com", "wrong password");
    assert!(third.header("retry-after").is_some());
    assert!(c
        .back_to(&third, "/login")
        .text()
        .contains("Too many failed attempts."));
    // Ann never failed, but her login comes from the same address.
    let r = server.client().login_refused("ann@example.com", PASSWORD);
    assert!(r
        .text()
        .contains("Too many failed attempts. Try again in 15 minutes."));
    assert_eq!(signed_in_sessions(&server), 0);
}

#[test]
fn login_without_or_with_a_wrong_csrf_token_is_refused() {
    let server = TestServer::start();
    server.create_user("ann@example.com", "user", PASSWORD);
    let mut c = server.client();
    assert_eq!(c.get("/login").status, 200);
    let anonymous = c.session().unwrap().to_string();
    let credentials = [("email", "ann@example.com"), ("password", PASSWORD)];
    let without = c.post_form("/login", &credentials);
    let wrong = c.post_form(
        "/login",
        &[
            credentials[0],
            credentials[1],
            ("csrf", "00000000000000000000000000000000"),
        ],
    );
    let mut fresh = server.client();
    let no_session = fresh.post_form("/login", &credentials);
    for r in [&without, &wrong, &no_session] {
        assert_eq!(r.status, 403);
        assert!(r
            .text()
            .contains("This form has expired or did not come from this site."));
        assert_eq!(r.session_cookie(), None);
    }
    assert_eq!(c.session(), Some(anonymous.as_str()));
    assert_eq!(signed_in_sessions(&server), 0);
    assert_eq!(
        server.count("SELECT COUNT(*) FROM security_events WHERE kind = 'login'"),
        0
    );
    assert_signed_out(&mut c);
}

#[test]
fn signup_without_or_with_a_wrong_csrf_token_creates_no_account() {
    let server = TestServer::start();
    let mut c = server.client();
    assert_eq!(c.get("/signup").status, 200);
    let fields = [
        ("email", "ann@example.com"),
        ("password", PASSWORD),
        ("age", "1"),
        ("aup", "1"),
    ];
    let without = c.post_form("/signup", &fields);
    let mut with_wrong = fields.to_vec();
    with_wrong.push(("csrf", "00000000000000000000000000000000"));
    let wrong = c.post_form("/signup", &with_wrong);
    for r in [&without, &wrong] {
        assert_eq!(r.status, 403);
        assert!(r
            .text()
            .contains("This form has expired or did not come from this site."));
    }
    assert_eq!(server.count("SELECT COUNT(*) FROM users"), 0);
    assert!(server.outbox().is_empty());
}

#[test]
fn session_cookie_is_httponly_lax_for_the_whole_site_and_not_secure_over_http() {
    let server = TestServer::start();
    server.create_user("ann@example.com", "user", PASSWORD);
    let mut c = server.client();
    // Without --behind-proxy a forwarded protocol header is not believed.
    c.always_send("X-Forwarded-Proto", "https");
    let r = c.login("ann@example.com", PASSWORD);
    assert_eq!(r.status, 303);
    let cookie = r.session_cookie().expect("a session cookie");
    let token = c.session().unwrap();
    assert_eq!(token.len(), 64);
    assert!(cookie.starts_with(&format!("__session={token}; ")));
    assert_eq!(
        cookie_attributes(cookie),
        ["Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=2592000"]
    );
}

#[test]
fn session_cookie_is_secure_behind_a_tls_proxy() {
    let server = TestServer::start_with(&[("OTPBOX_BEHIND_PROXY", "true")]);
    server.create_user("ann@example.com", "user", PASSWORD);
    let mut c = server.client();
    c.always_send("X-Forwarded-Proto", "https");
    let r = c.login("ann@example.com", PASSWORD);
    assert_eq!(r.status, 303);
    assert_eq!(
        cookie_attributes(r.session_cookie().unwrap()),
        [
            "Path=/",
            "HttpOnly",
            "SameSite=Lax",
            "Max-Age=2592000",
            "Secure"
        ]
    );
    let mut plain = server.client();
    plain.always_send("X-Forwarded-Proto", "http");
    let r = plain.login("ann@example.com", PASSWORD);
    assert!(!r.session_cookie().unwrap().contains("Secure"));
}

#[test]
fn every_login_issues_a_new_session_token_and_ends_the_old_one() {
    let server = TestServer::start();
    server.create_user("ann@example.com", "user", PASSWORD);
    let mut c = server.client();
    c.get("/login");
    let before_login = c.session().unwrap().to_string();
    assert_eq!(
        c.login("ann@example.com", PASSWORD).location(),
        Some("/dashboard")
    );
    let first = c.session().unwrap().to_string();
    assert_ne!(first, before_login);

    // Logging in again from a signed-in session (form posted with its token).
    let csrf = c.get("/dashboard").csrf();
    let r = c.post_form(
        "/login",
        &[
            ("email", "ann@example.com"),
            ("password", PASSWORD),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(r.status, 303);
    let second = c.session().unwrap().to_string();
    assert_ne!(second, first);
    assert_signed_in_as(&mut c, "ann@example.com");

    for old in [before_login, first] {
        let mut replay = server.client();
        replay.set_session(Some(&old));
        assert_signed_out(&mut replay);
    }
    assert_eq!(signed_in_sessions(&server), 1);
}

#[test]
fn logout_ends_the_session_on_the_server() {
    let server = TestServer::start();
    let (mut c, _) = server.signed_in("ann@example.com", "user");
    let token = c.session().unwrap().to_string();
    let r = c.logout();
    assert_eq!(r.status, 303);
    assert!(cookie_attributes(r.session_cookie().unwrap()).contains(&"Max-Age=0"));
    let mut replay = server.client();
    replay.set_session(Some(&token));
    assert_signed_out(&mut replay);
    assert_eq!(signed_in_sessions(&server), 0);
}

#[test]
fn password_change_ends_every_session() {
    let server = TestServer::start();
    let (mut here, _) = server.signed_in("ann@example.com", "user");
    let mut elsewhere = server.client();
    assert_eq!(
        elsewhere.login("ann@example.com", PASSWORD).location(),
        Some("/dashboard")
    );

    let r = here.submit(
        "/settings",
        "/settings/password",
        &[("current_password", PASSWORD), ("password", NEW_PASSWORD)],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.location(), Some("/login?m=password_changed"));
    assert_signed_out(&mut here);
    assert_signed_out(&mut elsewhere);
    assert_eq!(signed_in_sessions(&server), 0);
    let mail = server.outbox().pop().unwrap();
    assert_eq!(mail.subject, "Your otpbox password was changed");

    let mut c = server.client();
    assert!(c
        .login_refused("ann@example.com", PASSWORD)
        .text()
        .contains("Wrong e-mail or password."));
    assert_eq!(
        c.login("ann@example.com", NEW_PASSWORD).location(),
        Some("/dashboard")
    );
}

#[test]
fn password_change_needs_the_current_password() {
    let server = TestServer::start();
    let (mut c, _) = server.signed_in("ann@example.com", "user");
    let r = c.submit(
        "/settings",
        "/settings/password",
        &[
            ("current_password", "a wrong guess"),
            ("password", NEW_PASSWORD),
        ],
    );
    let r = c.back_to(&r, "/settings");
    assert!(r.text().contains("The current password is wrong."));
    assert_signed_in_as(&mut c, "ann@example.com");
    assert_eq!(
        server
            .client()
            .login("ann@example.com", PASSWORD)
            .location(),
        Some("/dashboard")
    );
}

#[test]
fn password_reset_link_sets_a_new_password_once() {
    let server = TestServer::start();
    server.create_user("ann@example.com", "user", PASSWORD);
    let mut signed_in = server.client();
    assert_eq!(
        signed_in.login("ann@example.com", PASSWORD).location(),
        Some("/dashboard")
    );

    let mut c = server.client();
    let r = c.submit(
        "/password/forgot",
        "/password/forgot",
        &[("email", "ann@example.com")],
    );
    let r = c.follow(&r);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("If an account exists for that address"));
    let mail = server.outbox().pop().unwrap();
    assert_eq!(mail.to, "ann@example.com");
    assert_eq!(mail.subject, "Reset your otpbox password");
    let link = server.only_link("/password/reset/");

    let r = c.submit(&link, &link, &[("password", NEW_PASSWORD)]);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.location(), Some("/login?m=password_changed"));
    // The reset ends the sessions that were open.
    assert_signed_out(&mut signed_in);

    // The link is used up: the form is gone and a replayed POST changes nothing.
    let r = server.client().get(&link);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("This link has already been used."));
    let mut replay = server.client();
    let csrf = replay.get("/login").csrf();
    let r = replay.post_form(
        &link,
        &[("password", "yet another password"), ("csrf", &csrf)],
    );
    let r = replay.back_to(&r, &link);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("This link has already been used."));

    let mut c = server.client();
    for refused in [PASSWORD, "yet another password"] {
        assert!(c
            .login_refused("ann@example.com", refused)
            .text()
            .contains("Wrong e-mail or password."));
    }
    assert_eq!(
        c.login("ann@example.com", NEW_PASSWORD).location(),
        Some("/dashboard")
    );
}

#[test]
fn password_reset_for_an_unknown_address_sends_nothing_and_says_the_same() {
    let server = TestServer::start();
    let mut c = server.client();
    let r = c.submit(
        "/password/forgot",
        "/password/forgot",
        &[("email", "nobody@example.com")],
    );
    let r = c.follow(&r);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("If an account exists for that address"));
    assert!(server.outbox().is_empty());
}

#[test]
fn setup_link_creates_the_first_admin_once() {
    let server = TestServer::start();
    let link = server
        .setup_link()
        .expect("a setup link on first start")
        .to_string();
    let mut c = server.client();
    let r = c.submit(
        &link,
        &link,
        &[("email", "root@example.com"), ("password", PASSWORD)],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.location(), Some("/admin"));
    let admin = c.get("/admin");
    assert_eq!(admin.status, 200);
    assert!(admin.text().contains("root@example.com"));
    assert_eq!(
        server.count("SELECT COUNT(*) FROM users WHERE role = 'admin'"),
        1
    );

    let r = server.client().get(&link);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("This link has already been used."));
    let mut second = server.client();
    let csrf = second.get("/login").csrf();
    let r = second.post_form(
        &link,
        &[
            ("email", "intruder@example.com"),
            ("password", PASSWORD),
            ("csrf", &csrf),
        ],
    );
    let r = second.back_to(&r, &link);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("This link has already been used."));
    assert_eq!(server.count("SELECT COUNT(*) FROM users"), 1);
}

#[test]
fn session_ends_after_the_idle_timeout() {
    let server =
        TestServer::start_with(&[("OTPBOX_DEV_CLOCK", "1"), ("OTPBOX_SESSION_IDLE", "10m")]);
    let (mut c, _) = server.signed_in("ann@example.com", "user");
    // Used every 9 minutes, it stays alive past the idle timeout in total.
    for _ in 0..2 {
        server.advance_clock(9 * 60);
        assert_signed_in_as(&mut c, "ann@example.com");
    }
    server.advance_clock(11 * 60);
    assert_signed_out(&mut c);
}

#[test]
fn idle_sessions_are_deleted_by_the_sessions_job() {
    let server =
        TestServer::start_with(&[("OTPBOX_DEV_CLOCK", "1"), ("OTPBOX_SESSION_IDLE", "10m")]);
    let (_c, _) = server.signed_in("ann@example.com", "user");
    assert_eq!(signed_in_sessions(&server), 1);
    server.advance_clock(11 * 60);
    let report = server.run_jobs();
    assert!(report.contains("\"job\":\"sessions\""), "{report}");
    assert!(!report.contains("\"ok\":false"), "{report}");
    assert_eq!(signed_in_sessions(&server), 0);
}

#[test]
fn a_failed_form_keeps_the_email_never_the_password_and_says_so_once() {
    let server = TestServer::start();
    server.create_user("ann@example.com", "user", PASSWORD);

    let mut c = server.client();
    let r = c.signup("new@example.com", "short-pw");
    // No error page at the POST address: the browser goes back to the form.
    let page = c.back_to(&r, "/signup");
    let html = page.text();
    assert!(html.contains("The password must have at least 10 characters."));
    assert!(html.contains(r#"value="new@example.com""#), "{html}");
    assert!(!html.contains("short-pw"), "the password is never echoed");
    let again = c.get("/signup").text();
    assert!(
        !again.contains("The password must have at least 10 characters."),
        "a refresh shows the form without the message"
    );
    assert!(!again.contains("new@example.com"), "nor the typed values");

    let secret = "not the password at all";
    let r = c.login("ann@example.com", secret);
    let page = c.back_to(&r, "/login");
    let html = page.text();
    assert!(html.contains("Wrong e-mail or password."));
    assert!(html.contains(r#"value="ann@example.com""#), "{html}");
    assert!(!html.contains(secret), "the password is never echoed");
    let again = c.get("/login").text();
    assert!(!again.contains("Wrong e-mail or password."), "shown once");
    assert!(!again.contains("ann@example.com"));

    // Where to go after the login survives the failed attempt.
    let form = c.get("/login?next=%2Fwallet");
    let csrf = form.csrf();
    let r = c.post_form(
        "/login",
        &[
            ("email", "ann@example.com"),
            ("password", secret),
            ("next", "/wallet"),
            ("csrf", &csrf),
        ],
    );
    let page = c.back_to(&r, "/login?next=%2Fwallet");
    assert!(page.text().contains(r#"name="next" value="/wallet""#));
    let r = c.submit(
        "/login?next=%2Fwallet",
        "/login",
        &[
            ("email", "ann@example.com"),
            ("password", PASSWORD),
            ("next", "/wallet"),
        ],
    );
    assert_eq!(r.location(), Some("/wallet"));
}
