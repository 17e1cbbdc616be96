//! The entry points of the fuzz targets (`fuzz/`): each takes arbitrary bytes, feeds them to
//! the parsers that read what arrives from outside, and asserts what must hold for every
//! input (a parse that round-trips, a result within its bounds). A panic here is a crash the
//! fuzzer reports; the server itself must never panic on such input. One function per target,
//! named as the target.

use crate::domain::base::crypto::hmac_sha256;
use crate::domain::base::money::Money;
use crate::domain::market::inbox::codes;
use crate::domain::supply::devices::Kind;
use crate::domain::supply::{gateway, numbers};
use crate::http::protocols::{ingest, params};
use crate::http::request::{self, Method, Request};

/// A fixed "now" (2026-01-01) for parsers that bound times against it.
const NOW: i64 = 1_767_225_600;

/// The first byte picks a variant, the rest is the input proper.
fn split(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((first, rest)) => (*first, rest),
        None => (0, data),
    }
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// `code_extraction`: the one-time code of an SMS text, for each service profile.
pub fn code_extraction(data: &[u8]) {
    const SERVICES: [&str; 16] = [
        "tg", "wa", "go", "fb", "ig", "tw", "ds", "mm", "am", "ub", "vk", "ya", "ot", "ab", "",
        "zz",
    ];
    let (pick, rest) = split(data);
    let service = SERVICES[pick as usize % SERVICES.len()];
    let sms = text(rest);
    if let Some(code) = codes::extract(service, &sms) {
        assert!(
            !code.is_empty() && code.chars().count() <= 16,
            "code {code:?} from {sms:?}"
        );
        assert!(
            code.chars().all(|c| c.is_ascii_alphanumeric()),
            "code {code:?} from {sms:?}"
        );
    }
}

/// `phone_prefix`: phone numbers as operators type them, a line of a pasted number list, and
/// the prefix lists customers exclude (`phoneException`, `exclude_prefixes`).
pub fn phone_prefix(data: &[u8]) {
    let (pick, rest) = split(data);
    let t = text(rest);
    if let Ok(digits) = numbers::phone_digits(&t) {
        assert!((6..=15).contains(&digits.len()), "{t:?} → {digits:?}");
        assert!(
            digits.bytes().all(|b| b.is_ascii_digit()),
            "{t:?} → {digits:?}"
        );
        assert_eq!(
            numbers::phone_digits(&digits).as_deref(),
            Ok(digits.as_str())
        );
    }
    let default_country = (pick & 1 == 1).then_some(i64::from(pick >> 1));
    if let Ok(n) = numbers::parse_line(&t, default_country) {
        assert!(numbers::phone_digits(&n.phone).is_ok(), "{t:?}");
    }
    if let Some(list) = params::prefixes(&t) {
        for p in list {
            assert!(!p.is_empty() && p.len() <= 15 && p.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}

fn gateway(kind: Kind, data: &[u8]) {
    if let Ok(events) = ingest::parse(kind, data) {
        // What the endpoint does next with a parsed delivery: the bounds check, then the
        // de-duplication key of each message.
        if gateway::check(&events, NOW).is_ok() {
            for e in &events {
                if let gateway::Event::Sms(sms) = e {
                    let (key, _) = gateway::dedup_id(1, "79001234567", sms, NOW);
                    assert!(!key.is_empty());
                }
            }
        }
    }
}

/// `gateway_capcom6`: a delivery of SMS Gateway for Android (capcom6).
pub fn gateway_capcom6(data: &[u8]) {
    gateway(Kind::Capcom6, data);
}

/// `gateway_textbee`: a delivery of textbee.
pub fn gateway_textbee(data: &[u8]) {
    gateway(Kind::Textbee, data);
}

/// `gateway_generic`: a delivery in otpbox's generic JSON (and the SIM-bank bridges).
pub fn gateway_generic(data: &[u8]) {
    gateway(Kind::Generic, data);
}

/// `gateway_simbank`: what multi-SIM gateways send: a Dinstar push (variant 0), a
/// Skyline/Ejoin push (1), a GoIP UDP packet (2), and the part-of-a-long-SMS test on a text.
pub fn gateway_simbank(data: &[u8]) {
    let (pick, rest) = split(data);
    match pick % 3 {
        0 => gateway(Kind::Dinstar, rest),
        1 => gateway(Kind::Ejoin, rest),
        _ => {
            let t = text(rest);
            if let crate::goip::Packet::Receive { text, line, .. } = crate::goip::parse(&t) {
                assert!(t.contains(&text) && t.contains(&line), "{t:?}");
            }
            let _ = crate::domain::supply::parts::is_full_segment(&t);
            let _ = crate::domain::supply::devices::parse_slot(&t);
        }
    }
}

/// `gateway_httpsms`: an httpSMS delivery body, and the JWT it is signed with. Variant 0 reads
/// the input as a token; otherwise the input is `header\npayload`, signed here with the
/// device key so the fuzzer reaches the claims (expiry, not-before, audience).
pub fn gateway_httpsms(data: &[u8]) {
    let (pick, rest) = split(data);
    const KEY: &[u8] = b"device-secret";
    const AUDIENCE: &str = "/ingest/httpsms/7";
    match pick % 3 {
        0 => {
            let _ = ingest::verify_jwt(&text(rest), KEY, NOW, AUDIENCE);
        }
        1 => {
            let (header, payload) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (&br#"{"alg":"HS256","typ":"JWT"}"#[..], rest),
            };
            let signed = format!("{}.{}", base64url(header), base64url(payload));
            let sig = hmac_sha256(KEY, signed.as_bytes());
            let token = format!("{signed}.{}", base64url(&sig));
            let _ = ingest::verify_jwt(&token, KEY, NOW, AUDIENCE);
        }
        _ => gateway(Kind::Httpsms, rest),
    }
}

fn base64url(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len() * 4 / 3 + 3);
    for chunk in data.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// `protocol_params`: the parameters of handler_api.php and the 5sim API, as a query string
/// and a form body (the input, split at the first `\n`), read the way both protocols read
/// them.
pub fn protocol_params(data: &[u8]) {
    let (pick, rest) = split(data);
    let t = text(rest);
    let (query, body) = t.split_once('\n').unwrap_or((&t, ""));
    let mut req = Request::new(
        Method::Post,
        "/stubs/handler_api.php",
        query,
        vec![(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        std::net::IpAddr::from([127, 0, 0, 1]),
        false,
    );
    req.body = body.as_bytes().to_vec();
    let digits = u32::from(pick % 4);
    for (k, v) in req.api_params() {
        assert_eq!(k.trim(), k);
        assert_eq!(v.trim(), v);
        if let Some(n) = params::int(v) {
            assert_eq!(params::int(&n.to_string()), Some(n));
        }
        let _ = params::flag(v);
        if let Some(m) = params::max_price(v, digits) {
            assert!(m >= 0, "{v:?} → {m}");
            // A ceiling written back exactly reads as itself.
            assert_eq!(
                params::max_price(&Money(m).decimal(digits), digits),
                Some(m)
            );
        }
        let _ = params::prefixes(v);
    }
    assert_eq!(req.api_param("action"), req.api_param("action"));
}

/// `form_query_cookie`: the request parsers every route shares: the canonical path, query
/// strings and form bodies, percent-decoding and the cookie header.
pub fn form_query_cookie(data: &[u8]) {
    let (pick, rest) = split(data);
    let t = text(rest);
    let canonical = request::canonical_path(&t);
    assert!(canonical.starts_with('/'), "{t:?} → {canonical:?}");
    assert!(!canonical.contains("//"), "{t:?} → {canonical:?}");
    assert_eq!(request::canonical_path(&canonical), canonical, "{t:?}");
    let pairs = request::parse_urlencoded(&t);
    assert!(pairs.len() <= t.split('&').count());
    let _ = request::percent_decode(&t, pick & 1 == 1);
    let req = Request::new(
        Method::Get,
        &t,
        &t,
        vec![("cookie".into(), t.clone())],
        std::net::IpAddr::from([127, 0, 0, 1]),
        false,
    );
    let _ = req.cookie("__session");
    let _ = req.query_pairs();
    let _ = req.form();
}

/// `money`: amounts as people type them, and the decimal text of any amount, which must read
/// back as the same amount.
pub fn money(data: &[u8]) {
    let (pick, rest) = split(data);
    let digits = u32::from(pick % 4);
    let allow_negative = pick & 4 == 4;
    if let Some(m) = Money::parse(&text(rest), digits, allow_negative) {
        assert!(allow_negative || m.0 >= 0);
        assert_eq!(Money::parse(&m.decimal(digits), digits, true), Some(m));
    }
    if rest.len() >= 8 {
        let raw = i64::from_le_bytes(rest[..8].try_into().unwrap_or([0; 8]));
        let shown = Money(raw).decimal(digits);
        assert_eq!(
            Money::parse(&shown, digits, true),
            Some(Money(raw)),
            "{shown}"
        );
    }
}

/// `settings`: the config file, durations and the cron schedules of jobs.
pub fn settings(data: &[u8]) {
    let t = text(data);
    if let Ok(secs) = crate::config::parse_duration(&t) {
        assert_eq!(crate::config::parse_duration(&format!("{secs}s")), Ok(secs));
    }
    if let Ok(map) = crate::config::parse_config_file(&t) {
        // Keys come out as the settings table spells them, or as a valid identity provider's
        // `oidc.NAME.KEY`; a value keeps what stood between its quotes (`"a "` is `a `).
        for k in map.keys() {
            assert!(
                crate::config::SETTINGS.iter().any(|s| s.key == k)
                    || crate::config::oidc_file_key(k).is_some(),
                "{k:?}"
            );
        }
    }
    let _ = crate::jobs::parse_schedule(&t);
}

/// `payment_notice`: what payment gateways send to `/payments/{gateway}/webhook`. Variant 0:
/// the input is a `Stripe-Signature` header (it must never verify for a fixed body); 1: the
/// input is a Stripe event body, signed here as Stripe signs it so the fuzzer reaches the event
/// parser; 2: the input is a `BTCPay-Sig` header; 3: the input is a decimal amount as BTCPay
/// writes it.
pub fn payment_notice(data: &[u8]) {
    use crate::payments::{btcpay, parse_decimal, stripe, Notice};
    const SECRET: &str = "whsec_fuzz";
    let (pick, rest) = split(data);
    match pick % 4 {
        0 => {
            let body = br#"{"id":"evt_1"}"#;
            assert!(stripe::verify(SECRET, &text(rest), body, NOW).is_err());
        }
        1 => {
            let header = format!("t={NOW},v1={}", stripe::sign(SECRET, NOW, rest));
            assert_eq!(stripe::verify(SECRET, &header, rest, NOW), Ok(()));
            let Ok(event) = serde_json::from_slice::<serde_json::Value>(rest) else {
                return;
            };
            match stripe::event_notice(&event) {
                Ok(Notice::Paid(c)) => assert!(c.gateway_ref.len() <= rest.len(), "{c:?}"),
                Ok(Notice::Reversed(r)) => assert!(!r.reference.is_empty(), "{r:?}"),
                _ => {}
            }
        }
        2 => assert!(btcpay::verify(SECRET, &text(rest), br#"{"type":"InvoiceSettled"}"#).is_err()),
        _ => {
            if let Some(minor) = parse_decimal(&text(rest), 2) {
                assert!(minor >= 0, "{:?} → {minor}", text(rest));
            }
        }
    }
}

/// `id_token`: what a provider's token endpoint and JWK set send during an OpenID Connect
/// sign-in (first byte even: an ID token, checked against a key set of its own; odd: a JWK set
/// document). Nothing panics; a token that parses names RS256 or ES256; no token verifies
/// against an empty key set, nor against keys that are not the signer's.
pub fn id_token(data: &[u8]) {
    use crate::oidc::jws;
    let (pick, rest) = split(data);
    let t = text(rest);
    if pick % 2 == 0 {
        let Ok(token) = jws::parse(&t) else { return };
        assert!(matches!(token.alg, jws::Alg::Rs256 | jws::Alg::Es256));
        assert!(jws::verify_signature(&token, &[]).is_err(), "{t:?}");
        // A real key that signed nothing here.
        let keys = jws::parse_jwks(&serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}))
        .expect("a key set");
        assert!(jws::verify_signature(&token, &keys).is_err(), "{t:?}");
        let want = jws::Expect {
            issuer: "https://id.example",
            client_id: "otpbox",
            nonce: "n",
            now: NOW,
        };
        let _ = jws::check_claims(&token, &want);
    } else if let Ok(doc) = serde_json::from_str::<serde_json::Value>(&t) {
        let _ = jws::parse_jwks(&doc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every target runs over its seed corpus (`fuzz/corpus/<target>/`) in the unit tests, so
    /// a regression on a saved input fails `cargo test` even where no fuzzer runs.
    #[test]
    fn every_target_accepts_its_seed_corpus() {
        type Target = fn(&[u8]);
        let targets: [(&str, Target); 13] = [
            ("code_extraction", code_extraction),
            ("phone_prefix", phone_prefix),
            ("gateway_capcom6", gateway_capcom6),
            ("gateway_httpsms", gateway_httpsms),
            ("gateway_textbee", gateway_textbee),
            ("gateway_generic", gateway_generic),
            ("gateway_simbank", gateway_simbank),
            ("protocol_params", protocol_params),
            ("form_query_cookie", form_query_cookie),
            ("money", money),
            ("settings", settings),
            ("payment_notice", payment_notice),
            ("id_token", id_token),
        ];
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        for (name, target) in targets {
            let dir = root.join(name);
            let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}"));
            let mut n = 0;
            for entry in entries {
                target(&std::fs::read(entry.unwrap().path()).unwrap());
                n += 1;
            }
            assert!(n > 0, "{name} has no seed inputs");
        }
    }

    #[test]
    fn base64url_encodes_without_padding() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }
}
