//! Rate limits of the customer APIs against the real server, with small limits set through the
//! environment: a burst passes, the next request gets the protocol's own refusal with
//! `Retry-After`, keys and addresses have separate buckets, other paths are never limited, and
//! a bucket refills as the (dev) clock moves. The refill arithmetic itself is unit-tested in
//! src/http/ratelimit.rs with an injected time.

mod common;

use common::{Response, TestServer, PASSWORD};

/// Per key 1/s with a burst of 3, per address 1/s with a burst of `ip_burst`. Behind a
/// "proxy", so each test picks its client addresses with `X-Forwarded-For`.
fn server(ip_burst: u32) -> TestServer {
    TestServer::start_with(&[
        ("OTPBOX_DEV_CLOCK", "true"),
        ("OTPBOX_BEHIND_PROXY", "true"),
        ("OTPBOX_API_RATE", "1"),
        ("OTPBOX_API_BURST", "3"),
        ("OTPBOX_API_IP_RATE", "1"),
        ("OTPBOX_API_IP_BURST", &ip_burst.to_string()),
    ])
}

fn customer_key(s: &TestServer, email: &str) -> String {
    s.create_user(email, "user", PASSWORD);
    s.cli_ok(&["key", "create", "--email", email])
        .trim()
        .to_string()
}

/// GET `path` from address `ip`, with a Bearer key when given.
fn hit(s: &TestServer, ip: &str, key: Option<&str>, path: &str) -> Response {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("X-Forwarded-For", ip)];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    s.client().request("GET", path, &headers, b"")
}

fn is_refusal(r: &Response) -> bool {
    r.status == 429 || r.text() == "TOO_MANY_REQUESTS"
}

/// Sends `burst` requests (all must pass: a bucket starts full), then more until one is
/// refused (the first normally is; a slow machine may let a refilled token through).
fn exhaust(burst: usize, mut send: impl FnMut() -> Response) -> Response {
    for i in 0..burst {
        let r = send();
        assert!(!is_refusal(&r), "request {} of the burst refused", i + 1);
    }
    for _ in 0..4 {
        let r = send();
        if is_refusal(&r) {
            return r;
        }
    }
    panic!("no refusal after the burst");
}

fn retry_after(r: &Response) -> u64 {
    let v: u64 = r
        .header("retry-after")
        .expect("a Retry-After header")
        .parse()
        .expect("whole seconds");
    assert!(v >= 1, "{v}");
    v
}

#[test]
fn native_api_answers_429_json_with_retry_after_and_refills() {
    let s = server(100);
    let key = customer_key(&s, "native@example.com");
    let send = || hit(&s, "192.0.2.10", Some(&key), "/api/v1/balance");
    let r = exhaust(3, send);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["error"]["code"], "rate_limited");
    retry_after(&r);
    // The bucket refills with time: three more after a few seconds.
    s.advance_clock(5);
    for _ in 0..3 {
        let r = send();
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

#[test]
fn fivesim_answers_429_plain_text_with_retry_after() {
    let s = server(100);
    let key = customer_key(&s, "five@example.com");
    let r = exhaust(3, || hit(&s, "192.0.2.20", Some(&key), "/v1/user/profile"));
    assert_eq!(r.status, 429);
    assert_eq!(r.text(), "too many requests");
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain")));
    retry_after(&r);
    s.advance_clock(5);
    assert_eq!(
        hit(&s, "192.0.2.20", Some(&key), "/v1/user/profile").status,
        200
    );
}

#[test]
fn handler_api_answers_200_too_many_requests() {
    let s = server(100);
    let path = "/stubs/handler_api.php?api_key=KEY-A&action=getBalance";
    let r = exhaust(3, || hit(&s, "192.0.2.30", None, path));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "TOO_MANY_REQUESTS");
    retry_after(&r);
    // The key counts the same when it comes in a form body.
    let r = s.client().request(
        "POST",
        "/stubs/handler_api.php",
        &[
            ("X-Forwarded-For", "192.0.2.31"),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"action=getBalance&api_key=KEY-A",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "TOO_MANY_REQUESTS"));
    // Another key from the same address is not limited by the first one's bucket.
    let other = hit(
        &s,
        "192.0.2.30",
        None,
        "/stubs/handler_api.php?api_key=KEY-B&action=getBalance",
    );
    assert!(!is_refusal(&other), "{}", other.text());
}

#[test]
fn keys_and_addresses_are_limited_separately() {
    // Key burst 3, address burst 5.
    let s = server(5);
    let k1 = customer_key(&s, "k1@example.com");
    let k2 = customer_key(&s, "k2@example.com");
    let k3 = customer_key(&s, "k3@example.com");
    let profile = "/v1/user/profile";
    // Key 1 from address A: its own burst, then refused (address A has spent 4 of 5).
    let r = exhaust(3, || hit(&s, "198.51.100.1", Some(&k1), profile));
    assert_eq!(r.status, 429);
    // Key 2 from address A: its bucket is full, but address A's runs out.
    assert_eq!(hit(&s, "198.51.100.1", Some(&k2), profile).status, 200);
    let r = hit(&s, "198.51.100.1", Some(&k2), profile);
    assert_eq!(r.status, 429, "address A is spent");
    assert_eq!(
        hit(&s, "198.51.100.1", None, "/v1/guest/countries").status,
        429,
        "also for guest requests"
    );
    // From address B: key 1 is still spent, key 2 and key 3 pass.
    assert_eq!(hit(&s, "198.51.100.2", Some(&k1), profile).status, 429);
    assert_eq!(hit(&s, "198.51.100.2", Some(&k2), profile).status, 200);
    assert_eq!(hit(&s, "198.51.100.2", Some(&k3), profile).status, 200);
    // IPv6 clients are counted per /64.
    let r = exhaust(5, || {
        hit(&s, "2001:db8:7:7::1", None, "/v1/guest/countries")
    });
    assert_eq!(r.status, 429);
    assert_eq!(
        hit(&s, "2001:db8:7:7:abcd::2", None, "/v1/guest/countries").status,
        429,
        "same /64"
    );
    assert_eq!(
        hit(&s, "2001:db8:7:8::1", None, "/v1/guest/countries").status,
        200,
        "another /64"
    );
}

#[test]
fn other_paths_are_not_limited_and_zero_turns_limits_off() {
    let s = server(2);
    for _ in 0..10 {
        assert_eq!(hit(&s, "203.0.113.5", None, "/healthz").status, 200);
    }
    assert_eq!(hit(&s, "203.0.113.5", None, "/").status, 200);

    let open = TestServer::start_with(&[("OTPBOX_API_RATE", "0"), ("OTPBOX_API_IP_RATE", "0")]);
    for _ in 0..250 {
        let r = open.client().get("/v1/guest/countries");
        assert_eq!(r.status, 200);
    }
}

/// Another spelling of a limited path is the same route and the same bucket: doubled and
/// trailing slashes are served as the canonical path and counted with it, and a key sent
/// as ` api_key ` (which the protocol trims) is the key's bucket, not the address's.
#[test]
fn every_spelling_of_a_limited_path_takes_from_the_same_bucket() {
    let s = server(100);
    let key = customer_key(&s, "spelling@example.com");
    let spellings = [
        "//stubs//handler_api.php?action=getBalance&api_key=KEY".to_string(),
        "/stubs/handler_api.php/?action=getBalance&api_key=KEY".to_string(),
        "/stubs/./handler_api.php?action=getBalance&%20api_key%20=KEY".to_string(),
        // The clones' flavours of the protocol share the key's bucket.
        "/grizzly/stubs/handler_api.php?action=getBalance&api_key=KEY".to_string(),
    ];
    let mut served = 0;
    for i in 0..40 {
        let path = spellings[i % spellings.len()].replace("KEY", &key);
        let r = hit(&s, "198.51.100.7", None, &path);
        assert_eq!(r.status, 200, "{path}");
        if r.text().starts_with("ACCESS_BALANCE") {
            served += 1;
        } else {
            assert_eq!(r.text(), "TOO_MANY_REQUESTS", "{path}");
        }
    }
    // The key's burst is 3; a slow machine may refill one or two tokens meanwhile.
    assert!((3..=5).contains(&served), "{served} of 40 served");
    for path in ["//api/v1/balance", "/api/v1/balance/", "//v1/user/profile"] {
        let mut refused = false;
        for _ in 0..8 {
            if is_refusal(&hit(&s, "198.51.100.8", Some(&key), path)) {
                refused = true;
                break;
            }
        }
        assert!(refused, "{path} is limited");
    }
}
