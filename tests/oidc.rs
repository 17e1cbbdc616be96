//! Sign-in with OpenID Connect against a local fake provider that follows OpenID Connect
//! Core 1.0 and RFC 7636 as a real one does: discovery, the authorization endpoint (which
//! checks the client, the redirect URI and the S256 challenge), the token endpoint (HTTP
//! Basic client authentication, single-use codes, the PKCE verifier checked against the
//! challenge) and a JWK set, with ID tokens signed for real: RS256 with the key in
//! `tests/keys/oidc-rsa.pk8` (a 2048-bit RSA key made for these tests) and ES256 with a P-256
//! key made when the provider starts.
//!
//! Proven: a first sign-in creates an account only after age and policy are confirmed; a
//! known identity signs in; an existing password account is linked only after its password;
//! linking from the settings and the unlinking rule; TOTP still asked afterwards; keys
//! fetched again for an unknown `kid`; each broken rule (audience, issuer, expiry,
//! signature, nonce, unverified e-mail, replayed or foreign state) refused with nothing
//! created; export, deletion and purge of the identity.

mod common;

use common::totp::{base32_decode, totp_at_step};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::{Client, Response, TestServer, PASSWORD};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use serde_json::{json, Value};

const CLIENT_ID: &str = "otpbox-test";
const CLIENT_SECRET: &str = "s3cret:with/odd&chars";
const LABEL: &str = "Fake ID";

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let mut n = [0u8; 3];
        n[..chunk.len()].copy_from_slice(chunk);
        let v = u32::from_be_bytes([0, n[0], n[1], n[2]]);
        for i in 0..=chunk.len() {
            out.push(A[(v >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn b64_std_decode(s: &str) -> Vec<u8> {
    const A: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut acc, mut bits, mut out) = (0u32, 0, Vec::new());
    for c in s.trim_end_matches('=').chars() {
        acc = acc << 6 | A.find(c).expect("base64") as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

fn query_of(url: &str) -> HashMap<String, String> {
    url.split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}

/// What the fake provider puts into its next ID tokens, to break one rule at a time.
#[derive(Clone, Default)]
struct Tamper {
    aud: Option<Value>,
    iss: Option<String>,
    /// Added to `exp` (negative: expired).
    exp_shift: i64,
    nonce: Option<String>,
    bad_signature: bool,
    email_verified: Option<Value>,
    /// The `kid` the header names instead of the signing key's.
    kid: Option<String>,
}

struct Grant {
    redirect_uri: String,
    challenge: String,
    nonce: String,
}

struct State {
    issuer: String,
    /// The provider's clock (the test keeps it on the server's).
    now: i64,
    sub: String,
    email: String,
    /// Sign with the ES256 key (else RS256).
    es256: bool,
    /// Publish the ES256 key in the JWK set.
    publish_ec: bool,
    tamper: Tamper,
    codes: HashMap<String, Grant>,
    jwks_fetches: usize,
}

struct Fake {
    base: String,
    state: Arc<Mutex<State>>,
}

struct Keys {
    rsa: RsaKeyPair,
    ec: EcdsaKeyPair,
}

impl Keys {
    fn jwks(&self, with_ec: bool) -> Value {
        let c = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(self.rsa.public());
        let mut keys = vec![
            json!({"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256",
            "n": b64url(&c.n), "e": b64url(&c.e)}),
        ];
        if with_ec {
            let p = self.ec.public_key().as_ref();
            keys.push(
                json!({"kty": "EC", "crv": "P-256", "kid": "ec-1", "use": "sig",
                "alg": "ES256", "x": b64url(&p[1..33]), "y": b64url(&p[33..])}),
            );
        }
        json!({ "keys": keys })
    }

    fn sign(&self, es256: bool, claims: &Value, t: &Tamper) -> String {
        let (alg, kid) = if es256 {
            ("ES256", "ec-1")
        } else {
            ("RS256", "rsa-1")
        };
        let kid = t.kid.as_deref().unwrap_or(kid);
        let header = json!({"alg": alg, "kid": kid, "typ": "JWT"});
        let bad_signature = t.bad_signature;
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let mut sig = if es256 {
            self.ec
                .sign(&rng, input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec()
        } else {
            let mut sig = vec![0; self.rsa.public().modulus_len()];
            self.rsa
                .sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
                .unwrap();
            sig
        };
        if bad_signature {
            sig[10] ^= 1;
        }
        format!("{input}.{}", b64url(&sig))
    }
}

fn respond(req: tiny_http::Request, status: u16, body: String, location: Option<&str>) {
    let mut r = tiny_http::Response::from_string(body).with_status_code(status);
    r.add_header(tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap());
    if let Some(l) = location {
        r.add_header(tiny_http::Header::from_bytes("Location", l).unwrap());
    }
    let _ = req.respond(r);
}

impl Fake {
    fn start() -> Fake {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let base = format!("http://{}", server.server_addr().to_ip().unwrap());
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let keys = Keys {
            rsa: RsaKeyPair::from_pkcs8(include_bytes!("keys/oidc-rsa.pk8")).unwrap(),
            ec: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        };
        let state = Arc::new(Mutex::new(State {
            issuer: base.clone(),
            now: 0,
            sub: "sub-ann".into(),
            email: "ann@example.com".into(),
            es256: false,
            publish_ec: true,
            tamper: Tamper::default(),
            codes: HashMap::new(),
            jwks_fetches: 0,
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let url = req.url().to_string();
                let path = url.split('?').next().unwrap_or("").to_string();
                let mut st = shared.lock().unwrap();
                match path.as_str() {
                    "/.well-known/openid-configuration" => {
                        let i = st.issuer.clone();
                        let doc = json!({
                            "issuer": i,
                            "authorization_endpoint": format!("{i}/authorize"),
                            "token_endpoint": format!("{i}/token"),
                            "jwks_uri": format!("{i}/jwks"),
                            "response_types_supported": ["code"],
                            "subject_types_supported": ["public"],
                            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                            "code_challenge_methods_supported": ["S256"],
                            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                        });
                        respond(req, 200, doc.to_string(), None);
                    }
                    "/jwks" => {
                        st.jwks_fetches += 1;
                        respond(req, 200, keys.jwks(st.publish_ec).to_string(), None);
                    }
                    "/authorize" => {
                        let q = query_of(&url);
                        let ok = q.get("response_type").map(String::as_str) == Some("code")
                            && q.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                            && q.get("scope").map(String::as_str) == Some("openid email")
                            && q.get("code_challenge_method").map(String::as_str) == Some("S256")
                            && q.get("redirect_uri")
                                .is_some_and(|u| u.ends_with("/auth/oidc/callback"))
                            && q.get("state").is_some_and(|s| s.len() >= 32)
                            && q.get("nonce").is_some_and(|n| !n.is_empty());
                        if !ok {
                            respond(req, 400, format!("bad authorization request {q:?}"), None);
                            continue;
                        }
                        let code = format!("code-{}", st.codes.len() + 1);
                        st.codes.insert(
                            code.clone(),
                            Grant {
                                redirect_uri: q["redirect_uri"].clone(),
                                challenge: q["code_challenge"].clone(),
                                nonce: q["nonce"].clone(),
                            },
                        );
                        let to = format!(
                            "{}?code={code}&state={}",
                            q["redirect_uri"],
                            common::url_encode(&q["state"])
                        );
                        respond(req, 302, String::new(), Some(&to));
                    }
                    "/token" => {
                        let mut body = String::new();
                        req.as_reader().read_to_string(&mut body).unwrap();
                        let form = query_of(&format!("?{body}"));
                        let auth = req
                            .headers()
                            .iter()
                            .find(|h| h.field.equiv("Authorization"))
                            .map(|h| h.value.as_str().to_string())
                            .unwrap_or_default();
                        let creds = auth
                            .strip_prefix("Basic ")
                            .map(|b| String::from_utf8(b64_std_decode(b)).unwrap())
                            .unwrap_or_default();
                        let (id, secret) = creds.split_once(':').unwrap_or(("", ""));
                        if percent_decode(id) != CLIENT_ID
                            || percent_decode(secret) != CLIENT_SECRET
                        {
                            respond(
                                req,
                                401,
                                json!({"error": "invalid_client"}).to_string(),
                                None,
                            );
                            continue;
                        }
                        let grant = form.get("code").and_then(|c| st.codes.remove(c));
                        let Some(grant) = grant else {
                            respond(
                                req,
                                400,
                                json!({"error": "invalid_grant"}).to_string(),
                                None,
                            );
                            continue;
                        };
                        let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                        let digest =
                            ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
                        let pkce_ok = b64url(digest.as_ref()) == grant.challenge;
                        let redirect_ok = form.get("redirect_uri") == Some(&grant.redirect_uri);
                        let grant_ok = form.get("grant_type").map(String::as_str)
                            == Some("authorization_code");
                        if !(pkce_ok && redirect_ok && grant_ok) {
                            respond(
                                req,
                                400,
                                json!({"error": "invalid_grant"}).to_string(),
                                None,
                            );
                            continue;
                        }
                        let t = st.tamper.clone();
                        let signed_with = t.clone();
                        let claims = json!({
                            "iss": t.iss.unwrap_or_else(|| st.issuer.clone()),
                            "sub": st.sub,
                            "aud": t.aud.unwrap_or(json!(CLIENT_ID)),
                            "exp": st.now + 300 + t.exp_shift,
                            "iat": st.now,
                            "auth_time": st.now,
                            "nonce": t.nonce.unwrap_or(grant.nonce),
                            "email": st.email,
                            "email_verified": t.email_verified.unwrap_or(json!(true)),
                        });
                        let id_token = keys.sign(st.es256, &claims, &signed_with);
                        let answer = json!({"access_token": "at", "token_type": "Bearer",
                            "expires_in": 300, "id_token": id_token});
                        respond(req, 200, answer.to_string(), None);
                    }
                    _ => respond(req, 404, String::new(), None),
                }
            }
        });
        Fake { base, state }
    }

    fn set(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap());
    }

    fn jwks_fetches(&self) -> usize {
        self.state.lock().unwrap().jwks_fetches
    }

    /// The browser at the provider: the authorization URL answers a redirect to our
    /// callback, returned as a path.
    fn authorize(&self, url: &str) -> String {
        assert!(url.starts_with(&self.base), "sent to {url}");
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .max_redirects(0)
                .http_status_as_error(false)
                .build(),
        );
        let resp = agent.get(url).call().unwrap();
        assert_eq!(resp.status().as_u16(), 302, "authorize {url}");
        let to = resp.headers().get("Location").unwrap().to_str().unwrap();
        let rest = to.split_once("://").unwrap().1;
        rest[rest.find('/').unwrap()..].to_string()
    }
}

fn server(fake: &Fake, extra: &[(&str, &str)]) -> TestServer {
    let mut envs = vec![
        ("OTPBOX_DEV_CLOCK", "1"),
        ("OTPBOX_OIDC_ISSUER", fake.base.as_str()),
        ("OTPBOX_OIDC_CLIENT_ID", CLIENT_ID),
        ("OTPBOX_OIDC_CLIENT_SECRET", CLIENT_SECRET),
        ("OTPBOX_OIDC_LABEL", LABEL),
        ("OTPBOX_OIDC_ALLOW_INSECURE", "true"),
    ];
    envs.extend_from_slice(extra);
    let s = TestServer::start_with(&envs);
    // The scheduler stays out of the way; the tests run jobs themselves.
    let r = s.client().post("/__dev/scheduler?paused=1", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let now = s.clock_now();
    fake.set(|st| st.now = now);
    s
}

/// From a start (`GET /auth/oidc` or the settings' link form answer) through the provider
/// to our callback; returns the callback's answer.
fn through_provider(c: &mut Client, fake: &Fake, start: Response) -> Response {
    assert_eq!(start.status, 303, "start: {}", start.text());
    let callback = fake.authorize(start.location().unwrap());
    c.get(&callback)
}

fn sign_in(c: &mut Client, fake: &Fake) -> Response {
    let start = c.get("/auth/oidc");
    through_provider(c, fake, start)
}

fn users(s: &TestServer) -> i64 {
    s.count("SELECT COUNT(*) FROM users")
}

fn identities_of(s: &TestServer, user: i64) -> Vec<String> {
    let db = s.db();
    let mut stmt = db
        .prepare("SELECT subject FROM identities WHERE user_id = ?1 ORDER BY id")
        .unwrap();
    let rows = stmt.query_map([user], |r| r.get(0)).unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

fn events(s: &TestServer, user: i64) -> Vec<(String, String)> {
    let db = s.db();
    let mut stmt = db
        .prepare("SELECT kind, detail FROM security_events WHERE user_id = ?1 ORDER BY id")
        .unwrap();
    let rows = stmt
        .query_map([user], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

/// Signs up with the fake's person through the confirmation page; returns the account id.
fn sign_up(s: &TestServer, c: &mut Client, fake: &Fake) -> i64 {
    let r = sign_in(c, fake);
    assert_eq!(r.location(), Some("/auth/oidc/signup"), "{}", r.text());
    let r = c.submit(
        "/auth/oidc/signup",
        "/auth/oidc/signup",
        &[("age", "1"), ("aup", "1")],
    );
    assert_eq!(r.location(), Some("/dashboard?m=welcome"), "{}", r.text());
    let email = fake.state.lock().unwrap().email.clone();
    s.user_id(&email).unwrap()
}

#[test]
fn a_first_sign_in_creates_a_verified_account_only_after_age_and_policy() {
    let fake = Fake::start();
    let s = server(&fake, &[]);
    let mut c = s.client();
    let login = c.get("/login");
    assert!(
        login.text().contains("Sign in with Fake ID"),
        "{}",
        login.text()
    );

    let r = sign_in(&mut c, &fake);
    assert_eq!(r.location(), Some("/auth/oidc/signup"));
    assert_eq!(users(&s), 0, "nothing is created before the confirmation");
    let page = c.get("/auth/oidc/signup");
    assert!(page.text().contains("ann@example.com"), "{}", page.text());
    // The policy is not accepted: still nothing.
    let r = c.submit("/auth/oidc/signup", "/auth/oidc/signup", &[("age", "1")]);
    let back = c.back_to(&r, "/auth/oidc/signup");
    assert!(
        back.text().contains("acceptable-use policy"),
        "{}",
        back.text()
    );
    assert_eq!(users(&s), 0);

    let r = c.submit(
        "/auth/oidc/signup",
        "/auth/oidc/signup",
        &[("age", "1"), ("aup", "1")],
    );
    assert_eq!(r.location(), Some("/dashboard?m=welcome"), "{}", r.text());
    assert_eq!(c.get("/dashboard").status, 200);
    let uid = s.user_id("ann@example.com").unwrap();
    let (verified, hash, age, aup): (Option<i64>, Option<String>, Option<i64>, Option<i64>) = s
        .db()
        .query_row(
            "SELECT email_verified_at, password_hash, age_confirmed_at, aup_accepted_at \
             FROM users WHERE id = ?1",
            [uid],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert!(verified.is_some() && age.is_some() && aup.is_some());
    assert_eq!(hash, None, "no password");
    assert_eq!(identities_of(&s, uid), ["sub-ann"]);
    assert_eq!(
        events(&s, uid),
        [
            (
                "identity_linked".to_string(),
                "Fake ID (ann@example.com), at sign-up".to_string()
            ),
            ("login".to_string(), "with Fake ID".to_string()),
        ]
    );
    // The confirmation cannot be sent twice.
    let r = c.submit(
        "/dashboard",
        "/auth/oidc/signup",
        &[("age", "1"), ("aup", "1")],
    );
    assert_eq!(r.location(), Some("/login?m=oidc_expired"));
    assert_eq!(users(&s), 1);

    // Another browser: the known identity signs straight in, to where it was going.
    let mut other = s.client();
    let start = other.get("/auth/oidc?next=%2Fwallet");
    let r = through_provider(&mut other, &fake, start);
    assert_eq!(r.location(), Some("/wallet"), "{}", r.text());
    assert_eq!(other.get("/dashboard").status, 200);
    assert_eq!(users(&s), 1);
    // The administrator sees how the account signs in (the provider, not its subject).
    let (mut admin, _) = s.signed_in("root@example.com", "admin");
    let page = admin.get(&format!("/admin/users/{uid}")).text();
    assert!(page.contains("<dd id=\"sign-in\">Fake ID</dd>"), "{page}");
    assert!(!page.contains("sub-ann"));
    // The password login does not open an account without a password.
    let r = s.client().login_refused("ann@example.com", "x");
    assert!(r.text().contains("Wrong e-mail or password"));
}

#[test]
fn es256_tokens_verify_and_keys_are_fetched_again_for_an_unknown_kid() {
    let fake = Fake::start();
    fake.set(|st| st.publish_ec = false);
    let s = server(&fake, &[]);
    let mut c = s.client();
    sign_up(&s, &mut c, &fake);
    assert_eq!(fake.jwks_fetches(), 1);
    let mut again = s.client();
    assert_eq!(sign_in(&mut again, &fake).location(), Some("/dashboard"));
    assert_eq!(fake.jwks_fetches(), 1, "the keys are cached");

    // The provider rotates to a new ES256 key: the first token naming it makes otpbox fetch
    // the set again, but not more than once a minute.
    fake.set(|st| {
        st.es256 = true;
        st.publish_ec = true;
    });
    s.advance_clock(61);
    fake.set(|st| st.now += 61);
    let mut third = s.client();
    assert_eq!(sign_in(&mut third, &fake).location(), Some("/dashboard"));
    assert_eq!(fake.jwks_fetches(), 2);

    // A token naming a key the provider does not publish is refused, and the set is not
    // fetched again within the minute.
    fake.set(|st| {
        st.tamper = Tamper {
            kid: Some("ec-2".into()),
            ..Tamper::default()
        }
    });
    s.advance_clock(61);
    fake.set(|st| st.now += 61);
    let mut c5 = s.client();
    let r = sign_in(&mut c5, &fake);
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("a key the provider does not publish"),
        "{}",
        r.text()
    );
    assert_eq!(fake.jwks_fetches(), 3);
    let mut c6 = s.client();
    let r = sign_in(&mut c6, &fake);
    assert_eq!(r.status, 400);
    assert_eq!(fake.jwks_fetches(), 3, "at most once a minute");
}

#[test]
fn every_broken_rule_is_refused_and_nothing_is_created() {
    let fake = Fake::start();
    let s = server(&fake, &[]);
    let issuer = fake.base.clone();
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "wrong audience",
            Tamper {
                aud: Some(json!("someone-else")),
                ..Tamper::default()
            },
            "meant for another client",
        ),
        (
            "wrong issuer",
            Tamper {
                iss: Some(format!("{issuer}/other")),
                ..Tamper::default()
            },
            "issued by another issuer",
        ),
        (
            "expired",
            Tamper {
                exp_shift: -600,
                ..Tamper::default()
            },
            "has expired",
        ),
        (
            "bad signature",
            Tamper {
                bad_signature: true,
                ..Tamper::default()
            },
            "signature is not valid",
        ),
        (
            "wrong nonce",
            Tamper {
                nonce: Some("not-the-one-sent".into()),
                ..Tamper::default()
            },
            "nonce is not the one of this sign-in",
        ),
        (
            "unverified e-mail",
            Tamper {
                email_verified: Some(json!(false)),
                ..Tamper::default()
            },
            "has not verified this e-mail address",
        ),
    ];
    for es256 in [false, true] {
        for (name, tamper, says) in &cases {
            fake.set(|st| {
                st.tamper = tamper.clone();
                st.es256 = es256;
            });
            let mut c = s.client();
            let r = sign_in(&mut c, &fake);
            assert_eq!(r.status, 400, "{name} (es256 {es256}): {}", r.text());
            assert!(r.text().contains(says), "{name}: {}", r.text());
            assert_eq!(users(&s), 0, "{name}");
            assert_eq!(s.count("SELECT COUNT(*) FROM identities"), 0, "{name}");
            assert_eq!(s.count("SELECT COUNT(*) FROM oidc_flows"), 0, "{name}");
            assert_eq!(
                c.get("/auth/oidc/signup").location(),
                Some("/login?m=oidc_expired")
            );
        }
    }
    fake.set(|st| st.tamper = Tamper::default());

    // A replayed answer (the same state twice) and an answer brought to another browser.
    let mut c = s.client();
    let start = c.get("/auth/oidc");
    let callback = fake.authorize(start.location().unwrap());
    let mut stranger = s.client();
    stranger.get("/login");
    let r = stranger.get(&callback);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("not valid any more"), "{}", r.text());
    // A HEAD (a link checker) does not use the answer up.
    assert_eq!(c.head(&callback).status, 200);
    let r = c.get(&callback);
    assert_eq!(r.location(), Some("/auth/oidc/signup"), "{}", r.text());
    let r = c.get(&callback);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("not valid any more"), "{}", r.text());
    assert_eq!(users(&s), 0);
    // A made-up state, and no session at all.
    let r = c.get("/auth/oidc/callback?code=code-1&state=made-up");
    assert_eq!(r.status, 400);
    let mut bare = s.client();
    let r = bare.get(&callback);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("session was lost"), "{}", r.text());
    // The provider says no.
    let mut d = s.client();
    let start = d.get("/auth/oidc");
    let state = query_of(start.location().unwrap())["state"].clone();
    let r = d.get(&format!(
        "/auth/oidc/callback?error=access_denied&state={}",
        common::url_encode(&state)
    ));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("access_denied"), "{}", r.text());
    assert_eq!(users(&s), 0);
    // An unknown provider.
    assert_eq!(d.get("/auth/oidc?provider=nope").status, 404);
}

#[test]
fn an_existing_password_account_is_linked_only_after_its_password() {
    let fake = Fake::start();
    let s = server(&fake, &[]);
    let ann = s.create_user("ann@example.com", "user", PASSWORD);
    let mut c = s.client();
    let r = sign_in(&mut c, &fake);
    assert_eq!(r.location(), Some("/auth/oidc/link"), "{}", r.text());
    assert!(identities_of(&s, ann).is_empty(), "no silent takeover");
    assert_eq!(c.get("/dashboard").status, 303, "not signed in");

    let r = c.submit(
        "/auth/oidc/link",
        "/auth/oidc/link",
        &[("password", "wrong password")],
    );
    let back = c.back_to(&r, "/auth/oidc/link");
    assert!(
        back.text().contains("The password is wrong."),
        "{}",
        back.text()
    );
    assert!(identities_of(&s, ann).is_empty());
    assert_eq!(
        events(&s, ann),
        [("login_failed".to_string(), "linking Fake ID".to_string())]
    );

    let r = c.submit(
        "/auth/oidc/link",
        "/auth/oidc/link",
        &[("password", PASSWORD)],
    );
    assert_eq!(r.location(), Some("/dashboard"), "{}", r.text());
    assert_eq!(c.get("/dashboard").status, 200);
    assert_eq!(identities_of(&s, ann), ["sub-ann"]);
    assert!(s
        .outbox()
        .iter()
        .any(|m| m.to == "ann@example.com" && m.subject.contains("A sign-in was linked")));
    // From now on the provider alone signs in.
    let mut other = s.client();
    assert_eq!(sign_in(&mut other, &fake).location(), Some("/dashboard"));
    assert_eq!(users(&s), 1);
}

#[test]
fn linking_from_the_settings_and_the_unlinking_rule() {
    let fake = Fake::start();
    let s = server(&fake, &[]);
    let (mut bob, bob_id) = s.signed_in("bob@example.com", "user");
    fake.set(|st| {
        st.sub = "sub-bob".into();
        st.email = "bob.elsewhere@example.org".into();
    });
    let settings = bob.get("/settings");
    assert!(
        settings.text().contains("Link Fake ID"),
        "{}",
        settings.text()
    );
    let start = bob.post_form(
        "/settings/identities/link",
        &[("provider", "default"), ("csrf", &settings.csrf())],
    );
    let r = through_provider(&mut bob, &fake, start);
    assert_eq!(
        r.location(),
        Some("/settings?m=identity_linked#identities"),
        "{}",
        r.text()
    );
    assert_eq!(identities_of(&s, bob_id), ["sub-bob"]);
    let page = bob.get("/settings").text();
    assert!(page.contains("bob.elsewhere@example.org"), "{page}");
    // The same identity cannot be linked to a second account.
    let (mut carol, carol_id) = s.signed_in("carol@example.com", "user");
    let settings = carol.get("/settings");
    let start = carol.post_form(
        "/settings/identities/link",
        &[("provider", "default"), ("csrf", &settings.csrf())],
    );
    let r = through_provider(&mut carol, &fake, start);
    let back = carol.back_to(&r, "/settings");
    assert!(
        back.text().contains("linked to another account"),
        "{}",
        back.text()
    );
    assert!(identities_of(&s, carol_id).is_empty());

    // Bob has a password, so the identity may go.
    let id: i64 = s
        .db()
        .query_row(
            "SELECT id FROM identities WHERE user_id = ?1",
            [bob_id],
            |r| r.get(0),
        )
        .unwrap();
    let r = bob.submit(
        "/settings",
        &format!("/settings/identities/{id}/unlink"),
        &[],
    );
    assert_eq!(
        r.location(),
        Some("/settings?m=identity_unlinked#identities")
    );
    assert!(identities_of(&s, bob_id).is_empty());
    let kinds: Vec<String> = events(&s, bob_id).into_iter().map(|e| e.0).collect();
    assert!(kinds.contains(&"identity_linked".to_string()), "{kinds:?}");
    assert!(
        kinds.contains(&"identity_unlinked".to_string()),
        "{kinds:?}"
    );

    // An account whose only way in is its identity keeps it.
    fake.set(|st| {
        st.sub = "sub-dan".into();
        st.email = "dan@example.com".into();
    });
    let mut dan = s.client();
    let dan_id = sign_up(&s, &mut dan, &fake);
    let id: i64 = s
        .db()
        .query_row(
            "SELECT id FROM identities WHERE user_id = ?1",
            [dan_id],
            |r| r.get(0),
        )
        .unwrap();
    let r = dan.submit(
        "/settings",
        &format!("/settings/identities/{id}/unlink"),
        &[],
    );
    let back = dan.back_to(&r, "/settings");
    assert!(
        back.text().contains("only way to sign in"),
        "{}",
        back.text()
    );
    assert_eq!(identities_of(&s, dan_id), ["sub-dan"]);
    // Someone else's identity is not found.
    let r = bob.submit(
        "/settings",
        &format!("/settings/identities/{id}/unlink"),
        &[],
    );
    let back = bob.back_to(&r, "/settings");
    assert!(back.status == 200);
    assert_eq!(identities_of(&s, dan_id), ["sub-dan"]);
}

/// Turns two-factor sign-in on for the signed-in account (giving `password` when it has one);
/// returns its recovery codes.
fn enrol_totp(s: &TestServer, c: &mut Client, password: Option<&str>) -> Vec<String> {
    let r = c.submit("/settings/2fa", "/settings/2fa/start", &[]);
    assert_eq!(r.status, 303, "{}", r.text());
    let page = c.get("/settings/2fa").text();
    let marker = "id=\"secret\">";
    let start = page.find(marker).unwrap() + marker.len();
    let secret = base32_decode(&page[start..start + page[start..].find('<').unwrap()]);
    // One second into a fresh 30-second step, so the code stays current.
    let now = s.clock_now();
    s.advance_clock((30 - now.rem_euclid(30) + 1) as u64);
    let step = s.clock_now() / 30;
    let code = totp_at_step(&secret, step);
    let mut fields = vec![("code", code.as_str())];
    if let Some(p) = password {
        fields.push(("password", p));
    }
    let r = c.submit("/settings/2fa", "/settings/2fa/enable", &fields);
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
        .split("<code class=\"recovery\">")
        .skip(1)
        .map(|p| p[..p.find('<').unwrap()].to_string())
        .collect()
}

#[test]
fn totp_is_still_asked_after_the_provider_unless_the_provider_is_trusted_for_it() {
    for trusted in [false, true] {
        let fake = Fake::start();
        let extra: &[(&str, &str)] = if trusted {
            &[("OTPBOX_OIDC_TOTP", "false")]
        } else {
            &[]
        };
        let s = server(&fake, extra);
        let (mut ann, ann_id) = s.signed_in("ann@example.com", "user");
        let codes = enrol_totp(&s, &mut ann, Some(PASSWORD));
        fake.set(|st| st.now = s.clock_now());
        let mut c = s.client();
        let r = sign_in(&mut c, &fake);
        assert_eq!(r.location(), Some("/auth/oidc/link"));
        let r = c.submit(
            "/auth/oidc/link",
            "/auth/oidc/link",
            &[("password", PASSWORD)],
        );
        if trusted {
            assert_eq!(r.location(), Some("/dashboard"), "{}", r.text());
            continue;
        }
        assert_eq!(r.location(), Some("/login/2fa"), "{}", r.text());
        assert_eq!(
            c.get("/dashboard").status,
            303,
            "not signed in before the code"
        );
        // Next time too: the provider alone does not sign in.
        let mut d = s.client();
        let r = sign_in(&mut d, &fake);
        assert_eq!(r.location(), Some("/login/2fa"), "{}", r.text());
        let r = d.submit("/login/2fa", "/login/2fa", &[("code", &codes[0])]);
        assert_eq!(r.location(), Some("/dashboard"), "{}", r.text());
        assert_eq!(d.get("/dashboard").status, 200);
        assert_eq!(identities_of(&s, ann_id), ["sub-ann"]);
    }
}

#[test]
fn export_deletion_and_purge_cover_the_identity() {
    let fake = Fake::start();
    let s = server(&fake, &[]);
    let mut c = s.client();
    let uid = sign_up(&s, &mut c, &fake);
    let export = c.get("/settings/export").json();
    assert_eq!(export["identities"][0]["subject"], "sub-ann");
    assert_eq!(export["identities"][0]["email"], "ann@example.com");
    assert_eq!(export["identities"][0]["issuer"], fake.base.as_str());

    // No password: the deletion is confirmed with the address.
    let r = c.submit(
        "/settings/delete",
        "/settings/delete",
        &[("confirm_email", "someone@example.com")],
    );
    c.back_to(&r, "/settings/delete");
    let r = c.submit(
        "/settings/delete",
        "/settings/delete",
        &[("confirm_email", "Ann@Example.com")],
    );
    assert_eq!(
        r.location(),
        Some("/login?m=account_deleted"),
        "{}",
        r.text()
    );
    // The identity no longer opens the account.
    let mut d = s.client();
    let r = sign_in(&mut d, &fake);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("closed"), "{}", r.text());

    // After the cooldown the purge clears the identity; the address may sign up anew.
    s.advance_clock(31 * 86_400);
    fake.set(|st| st.now = s.clock_now());
    s.run_jobs();
    assert!(identities_of(&s, uid).is_empty());
    assert_eq!(
        s.count("SELECT COUNT(*) FROM users WHERE email = 'ann@example.com'"),
        0
    );
    let mut e = s.client();
    let new_id = sign_up(&s, &mut e, &fake);
    assert_ne!(new_id, uid);
}

#[test]
fn an_account_without_a_password_is_managed_by_its_session() {
    let fake = Fake::start();
    let s = server(&fake, &[]);
    let mut c = s.client();
    let uid = sign_up(&s, &mut c, &fake);
    // Two-factor sign-in without a password to give; the provider's sign-in then asks the code.
    let page = c.get("/settings/2fa").text();
    assert!(!page.contains("name=\"password\""), "{page}");
    let codes = enrol_totp(&s, &mut c, None);
    fake.set(|st| st.now = s.clock_now());
    let mut d = s.client();
    let r = sign_in(&mut d, &fake);
    assert_eq!(r.location(), Some("/login/2fa"), "{}", r.text());
    let r = d.submit("/login/2fa", "/login/2fa", &[("code", &codes[0])]);
    assert_eq!(r.location(), Some("/dashboard"), "{}", r.text());

    // A password can be set without a current one; then both ways sign in.
    let settings = d.get("/settings").text();
    assert!(settings.contains("Set a password"), "{settings}");
    let r = d.submit("/settings", "/settings/password", &[("password", PASSWORD)]);
    assert_eq!(
        r.location(),
        Some("/login?m=password_changed"),
        "{}",
        r.text()
    );
    let hash: Option<String> = s
        .db()
        .query_row(
            "SELECT password_hash FROM users WHERE id = ?1",
            [uid],
            |r| r.get(0),
        )
        .unwrap();
    assert!(hash.is_some());
    // Now that it has a password, changing it needs the current one.
    let r = d.login("ann@example.com", PASSWORD);
    assert_eq!(r.location(), Some("/login/2fa"), "{}", r.text());
    let r = d.submit("/login/2fa", "/login/2fa", &[("code", &codes[1])]);
    assert_eq!(r.location(), Some("/dashboard"));
    let r = d.submit(
        "/settings",
        "/settings/password",
        &[("password", "another long password")],
    );
    let back = d.back_to(&r, "/settings");
    assert!(
        back.text().contains("current password is wrong"),
        "{}",
        back.text()
    );
}
