//! The authorization matrix is data: every route declares its access when it is registered
//! (a route cannot be registered without one: the router's registration functions each take
//! an access and a handler of the matching type). This test walks the router's own table
//! (`/__dev/routes`) and proves, for every route, that
//! - its declared access is the one its address family needs (an admin page is admin-only,
//!   an API route needs a key, only listed routes are public), and
//! - a caller below that access is refused: anonymous → login redirect or 401, a customer
//!   on operator or admin routes → 403, an operator on admin routes → 403, a customer's key
//!   on the admin API → 403, no key → the protocol's own refusal.

mod common;

use common::{Client, TestServer};
use serde_json::Value;

/// Routes anyone may open (public pages, health, assets, catalogues, sign-in flows).
const OPEN: [&str; 36] = [
    "/",
    "/healthz",
    // Its own bearer token (metrics_token), checked by the handler; 404 when unset.
    "/metrics",
    "/privacy",
    "/aup",
    "/terms",
    "/signup",
    "/verify/{token}",
    "/login",
    "/logout",
    "/login/2fa",
    // Sign-in with OpenID Connect: each step checks the flow bound to the browser's session.
    "/auth/oidc",
    "/auth/oidc/callback",
    "/auth/oidc/signup",
    "/auth/oidc/link",
    "/password/forgot",
    "/password/reset/{token}",
    "/setup/{token}",
    "/settings/email/confirm/{token}",
    "/abuse",
    "/abuse/sent",
    "/transparency",
    // The public price list.
    "/prices",
    "/appeal",
    "/appeal/{token}",
    "/assets/{*path}",
    "/favicon.ico",
    "/api/v1/openapi.json",
    "/api/v1/catalogue",
    "/v1/guest/countries",
    "/v1/guest/products/{country}/{operator}",
    "/v1/guest/prices",
    "/stubs/handler_api.php",
    // A partner hub: the shared key in the body, checked by the handler (401 otherwise).
    "/partner/{id}",
    // Payment gateways' notices: each proves itself by its gateway's signature, checked by
    // the handler (400 when it does not verify).
    "/payments/{gateway}/webhook",
    // The Telegram bot's updates in webhook mode: the secret token in a header, checked by
    // the handler (401 otherwise; 404 when the mode is off).
    "/telegram/webhook",
];

/// The access a route must declare, from its address.
fn expected_access(path: &str) -> &'static str {
    if path.starts_with("/__dev/") {
        "Dev"
    } else if path.ends_with("/stubs/handler_api.php") {
        "ActionKey"
    } else if path.starts_with("/ingest/") {
        "Gateway"
    } else if path.starts_with("/v1/user/") {
        "FiveSimKey"
    } else if path.starts_with("/api/v1/admin/") {
        "Api(Admin)"
    } else if OPEN.contains(&path) {
        "open"
    } else if path.starts_with("/api/v1/") {
        "Api(User)"
    } else if path == "/admin" || path.starts_with("/admin/") {
        "Page(Admin)"
    } else if path == "/operator" || path.starts_with("/operator/") {
        "Page(Operator)"
    } else {
        "Page(User)"
    }
}

struct Route {
    method: String,
    pattern: String,
    access: String,
}

fn routes(server: &TestServer) -> Vec<Route> {
    let r = server.client().get("/__dev/routes");
    assert_eq!(r.status, 200, "{}", r.text());
    let list: Vec<Value> = serde_json::from_str(&r.text()).unwrap();
    list.into_iter()
        .map(|v| Route {
            method: v["method"].as_str().unwrap().to_string(),
            pattern: v["path"].as_str().unwrap().to_string(),
            access: v["access"].as_str().unwrap().to_string(),
        })
        .collect()
}

/// A concrete address for a pattern: every parameter becomes `1`.
fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|seg| if seg.starts_with('{') { "1" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// Sends `method` to `path` from `client`, with the session's CSRF token for unsafe methods
/// (so the router's CSRF check passes and the access check is what answers).
fn send(client: &mut Client, csrf: &str, method: &str, path: &str, json: bool) -> common::Response {
    let mut headers = vec![("X-CSRF-Token", csrf)];
    if json {
        headers.push(("Content-Type", "application/json"));
    }
    let body: &[u8] = if method == "GET" { b"" } else { b"{}" };
    client.request(method, path, &headers, body)
}

#[test]
fn every_route_declares_the_access_its_address_needs() {
    let server = TestServer::start_with(&[("OTPBOX_DEV_CLOCK", "1")]);
    let routes = routes(&server);
    assert!(routes.len() > 150, "only {} routes", routes.len());
    let mut wrong = Vec::new();
    for r in &routes {
        let want = expected_access(&r.pattern);
        let ok = match want {
            "open" => r.access == "Public" || r.access == "Visitor" || r.access == "ActionKey",
            w => r.access == w,
        };
        if !ok {
            wrong.push(format!(
                "{} {}: declares {}, its address needs {want}",
                r.method, r.pattern, r.access
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "routes with the wrong access:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_route_refuses_a_caller_below_its_access() {
    let server = TestServer::start_with(&[
        ("OTPBOX_DEV_CLOCK", "1"),
        ("OTPBOX_API_RATE", "0"),
        ("OTPBOX_API_IP_RATE", "0"),
    ]);
    // An anonymous browser with a session (and so a CSRF token) from the login page.
    let mut anon = server.client();
    let anon_csrf = anon.get("/login").csrf();
    let (mut customer, _) = server.signed_in("customer@example.com", "user");
    let customer_csrf = customer.get("/dashboard").csrf();
    let (mut operator, _) = server.signed_in("operator@example.com", "operator");
    let operator_csrf = operator.get("/operator").csrf();
    let customer_key = server.api_key("customer@example.com");
    let mut keyed = server.client();
    keyed.always_send("Authorization", &format!("Bearer {customer_key}"));
    let mut nobody = server.client();

    let mut checked = 0;
    for r in routes(&server) {
        let path = concrete(&r.pattern);
        let m = r.method.as_str();
        let what = format!("{m} {}", r.pattern);
        match r.access.as_str() {
            "Page(User)" | "Page(Operator)" | "Page(Admin)" => {
                let a = send(&mut anon, &anon_csrf, m, &path, false);
                if m == "GET" {
                    assert_eq!(a.status, 303, "{what} anonymous");
                    assert!(
                        a.location().unwrap_or("").starts_with("/login?next="),
                        "{what} anonymous goes to the login form"
                    );
                } else {
                    assert_eq!(a.status, 401, "{what} anonymous: {}", a.text());
                }
                if r.access != "Page(User)" {
                    let c = send(&mut customer, &customer_csrf, m, &path, false);
                    assert_eq!(c.status, 403, "{what} as a customer: {}", c.text());
                }
                if r.access == "Page(Admin)" {
                    let o = send(&mut operator, &operator_csrf, m, &path, false);
                    assert_eq!(o.status, 403, "{what} as an operator: {}", o.text());
                }
            }
            "Api(User)" | "Api(Admin)" => {
                let a = send(&mut nobody, "", m, &path, true);
                assert_eq!(a.status, 401, "{what} without a key: {}", a.text());
                assert_eq!(a.json()["error"]["code"], "unauthorized", "{what}");
                if r.access == "Api(Admin)" {
                    let k = send(&mut keyed, "", m, &path, true);
                    assert_eq!(k.status, 403, "{what} with a customer's key: {}", k.text());
                }
            }
            "FiveSimKey" => {
                let a = send(&mut nobody, "", m, &path, false);
                assert_eq!(a.status, 401, "{what} without a key");
                assert_eq!(a.text(), "unauthorized", "{what}");
            }
            "ActionKey" => {
                let sep = if path.contains('?') { '&' } else { '?' };
                let a = send(
                    &mut nobody,
                    "",
                    m,
                    &format!("{path}{sep}action=getBalance"),
                    false,
                );
                if path.starts_with("/herosms/") {
                    // The HeroSMS flavour: errors as HTTP 4xx JSON.
                    assert_eq!(a.status, 401, "{what} without api_key");
                    assert_eq!(a.json()["title"], "NO_KEY", "{what} without api_key");
                } else {
                    assert_eq!(a.text(), "NO_KEY", "{what} without api_key");
                }
            }
            "Gateway" => {
                let a = send(&mut nobody, "", m, &path, true);
                assert_eq!(a.status, 404, "{what} for no device: {}", a.text());
            }
            "Public" | "Visitor" | "Dev" => continue,
            other => panic!("{what}: unknown access {other}"),
        }
        checked += 1;
    }
    assert!(checked > 120, "only {checked} guarded routes checked");
}

#[test]
fn test_hooks_exist_only_with_the_dev_clock() {
    let server = TestServer::start();
    assert_eq!(server.client().get("/__dev/routes").status, 404);
    assert_eq!(server.client().post("/__dev/jobs", b"").status, 404);
}
