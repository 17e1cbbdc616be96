//! ID tokens as a relying party reads them (OpenID Connect Core 1.0 §3.1.3.7): the compact
//! JWS (RFC 7515) split and decoded, its signature checked with `ring` against a key of the
//! provider's JWK set (RFC 7517: RSA `n`/`e` for RS256, P-256 `x`/`y` for ES256), and the
//! claims checked: `iss` exactly the issuer, `aud` holding the client id (and `azp` naming
//! it when there are several audiences), `exp` and `iat` with a small leeway, `nonce` the one
//! sent, and an `email` the provider marks `email_verified`. Pure functions, no network.

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::Value;

/// Clock difference tolerated between the provider and us, in seconds.
pub const LEEWAY: i64 = 60;

/// The signature algorithms accepted. `none` and the HMAC family never are: a token must be
/// signed by the provider's own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
}

impl Alg {
    fn parse(s: &str) -> Option<Alg> {
        match s {
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            _ => None,
        }
    }
}

/// A public key of the provider's JWK set that can check one of the accepted algorithms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: Option<String>,
    key: Key,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed P-256 point `04 || x || y`.
    P256(Vec<u8>),
}

impl Jwk {
    fn fits(&self, alg: Alg) -> bool {
        matches!(
            (&self.key, alg),
            (Key::Rsa { .. }, Alg::Rs256) | (Key::P256(_), Alg::Es256)
        )
    }

    fn verifies(&self, alg: Alg, message: &[u8], sig: &[u8]) -> bool {
        match (&self.key, alg) {
            (Key::Rsa { n, e }, Alg::Rs256) => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
                .is_ok(),
            (Key::P256(point), Alg::Es256) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            _ => false,
        }
    }
}

/// The usable keys of a JWK set document (`{"keys": [...]}`); keys of other types, curves
/// or for encryption (`"use": "enc"`) are left out.
pub fn parse_jwks(doc: &Value) -> Result<Vec<Jwk>, String> {
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("the JWK set has no `keys` array")?;
    let text = |k: &Value, name: &str| k.get(name).and_then(Value::as_str).map(str::to_string);
    let mut out = Vec::new();
    for k in keys {
        if text(k, "use").is_some_and(|u| u != "sig") {
            continue;
        }
        let b64 = |name: &str| text(k, name).and_then(|v| b64url_decode(&v));
        let key = match text(k, "kty").as_deref() {
            Some("RSA") => match (b64("n"), b64("e")) {
                (Some(n), Some(e)) => Key::Rsa { n, e },
                _ => continue,
            },
            Some("EC") if text(k, "crv").as_deref() == Some("P-256") => {
                match (b64("x"), b64("y")) {
                    (Some(x), Some(y)) if x.len() == 32 && y.len() == 32 => {
                        let mut point = vec![4];
                        point.extend(x);
                        point.extend(y);
                        Key::P256(point)
                    }
                    _ => continue,
                }
            }
            _ => continue,
        };
        out.push(Jwk {
            kid: text(k, "kid"),
            key,
        });
    }
    Ok(out)
}

/// A compact JWS taken apart (nothing checked yet).
#[derive(Debug)]
pub struct Token {
    pub alg: Alg,
    pub kid: Option<String>,
    signing_input: String,
    payload: Value,
    signature: Vec<u8>,
}

/// Splits and decodes a compact JWS whose header names an accepted algorithm.
pub fn parse(token: &str) -> Result<Token, String> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    let [h, p, s] = parts[..] else {
        return Err("the ID token is not a signed JWT".into());
    };
    let json = |part: &str, what: &str| -> Result<Value, String> {
        let bytes = b64url_decode(part).ok_or(format!("the ID token's {what} is not base64url"))?;
        serde_json::from_slice(&bytes).map_err(|_| format!("the ID token's {what} is not JSON"))
    };
    let header = json(h, "header")?;
    let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let alg = Alg::parse(alg_name).ok_or(format!(
        "the ID token is signed with `{alg_name}`; only RS256 and ES256 are accepted"
    ))?;
    if header.get("crit").is_some() {
        return Err("the ID token has critical header parameters otpbox does not know".into());
    }
    Ok(Token {
        alg,
        kid: header
            .get("kid")
            .and_then(Value::as_str)
            .map(str::to_string),
        signing_input: format!("{h}.{p}"),
        payload: json(p, "payload")?,
        signature: b64url_decode(s).ok_or("the ID token's signature is not base64url")?,
    })
}

/// Whether `keys` holds the key the token names (by `kid`, or any fitting key when the token
/// names none).
pub fn has_key(token: &Token, keys: &[Jwk]) -> bool {
    candidates(token, keys).next().is_some()
}

fn candidates<'k>(token: &'k Token, keys: &'k [Jwk]) -> impl Iterator<Item = &'k Jwk> {
    keys.iter().filter(move |k| {
        k.fits(token.alg)
            && match (&token.kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                (Some(_), None) => true,
                (None, _) => true,
            }
    })
}

/// Checks the signature with the matching keys of the set.
pub fn verify_signature(token: &Token, keys: &[Jwk]) -> Result<(), String> {
    let message = token.signing_input.as_bytes();
    if candidates(token, keys).any(|k| k.verifies(token.alg, message, &token.signature)) {
        Ok(())
    } else if has_key(token, keys) {
        Err("the ID token's signature is not valid".into())
    } else {
        Err("the ID token is signed by a key the provider does not publish".into())
    }
}

/// What the ID token must say.
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    /// Unix seconds.
    pub now: i64,
}

/// What a verified ID token vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub subject: String,
    /// Verified by the provider; lower-cased.
    pub email: String,
}

/// Checks the claims of a token whose signature was verified.
pub fn check_claims(token: &Token, want: &Expect<'_>) -> Result<Claims, String> {
    let c = &token.payload;
    let text = |name: &str| c.get(name).and_then(Value::as_str);
    let int = |name: &str| c.get(name).and_then(Value::as_i64);
    if text("iss") != Some(want.issuer) {
        return Err("the ID token was issued by another issuer".into());
    }
    let audiences: Vec<&str> = match c.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&want.client_id) {
        return Err("the ID token is meant for another client".into());
    }
    let azp = text("azp");
    if (audiences.len() > 1 || azp.is_some()) && azp != Some(want.client_id) {
        return Err("the ID token was issued to another party (azp)".into());
    }
    let exp = int("exp").ok_or("the ID token has no expiry")?;
    if want.now > exp + LEEWAY {
        return Err("the ID token has expired".into());
    }
    let iat = int("iat").ok_or("the ID token has no issue time")?;
    if iat > want.now + LEEWAY {
        return Err("the ID token was issued in the future".into());
    }
    if text("nonce") != Some(want.nonce) {
        return Err("the ID token's nonce is not the one of this sign-in".into());
    }
    let subject = text("sub").filter(|s| !s.is_empty() && s.len() <= 255);
    let subject = subject.ok_or("the ID token names no subject")?.to_string();
    let email = text("email")
        .ok_or("the provider gave no e-mail address (otpbox asks for the `email` scope)")?;
    // Some providers send the flag as a string.
    let verified = match c.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    if !verified {
        return Err("the provider has not verified this e-mail address".into());
    }
    Ok(Claims {
        subject,
        email: email.trim().to_lowercase(),
    })
}

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding (RFC 4648 §5), as JWS and PKCE use it.
pub fn b64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(B64URL[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Decodes base64url, with or without padding; `None` on any other character.
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = B64URL.iter().position(|b| *b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use serde_json::json;

    #[test]
    fn base64url_round_trips_and_refuses_other_alphabets() {
        for n in 0..40 {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 250) as u8).collect();
            let enc = b64url_encode(&bytes);
            assert!(!enc.contains(['+', '/', '=']), "{enc}");
            assert_eq!(b64url_decode(&enc).unwrap(), bytes);
        }
        assert_eq!(b64url_encode(b"hello"), "aGVsbG8");
        assert_eq!(b64url_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(b64url_decode("a+b/"), None);
        assert_eq!(b64url_decode("abcde"), None);
    }

    /// An ES256 key made here, its JWK and a signer.
    fn es256() -> (EcdsaKeyPair, Value) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": "ec1", "use": "sig",
            "x": b64url_encode(&point[1..33]), "y": b64url_encode(&point[33..])});
        (pair, jwk)
    }

    fn sign(pair: &EcdsaKeyPair, kid: &str, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "kid": kid, "typ": "JWT"});
        let input = format!(
            "{}.{}",
            b64url_encode(header.to_string().as_bytes()),
            b64url_encode(claims.to_string().as_bytes())
        );
        let sig = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", b64url_encode(sig.as_ref()))
    }

    fn claims() -> Value {
        json!({"iss": "https://id.example", "aud": "box", "sub": "u-1", "exp": 2_000,
            "iat": 1_000, "nonce": "n0", "email": "Ann@Example.com", "email_verified": true})
    }

    const WANT: Expect<'static> = Expect {
        issuer: "https://id.example",
        client_id: "box",
        nonce: "n0",
        now: 1_500,
    };

    fn check(token: &str, keys: &[Jwk], want: &Expect<'_>) -> Result<Claims, String> {
        let t = parse(token)?;
        verify_signature(&t, keys)?;
        check_claims(&t, want)
    }

    #[test]
    fn a_good_es256_token_is_accepted() {
        let (pair, jwk) = es256();
        let keys = parse_jwks(&json!({"keys": [jwk]})).unwrap();
        let got = check(&sign(&pair, "ec1", &claims()), &keys, &WANT).unwrap();
        assert_eq!(
            got,
            Claims {
                subject: "u-1".into(),
                email: "ann@example.com".into()
            }
        );
    }

    #[test]
    fn each_broken_rule_is_refused() {
        let (pair, jwk) = es256();
        let keys = parse_jwks(&json!({"keys": [jwk]})).unwrap();
        let with = |k: &str, v: Value| {
            let mut c = claims();
            c[k] = v;
            sign(&pair, "ec1", &c)
        };
        let refused = |token: String, why: &str| {
            let err = check(&token, &keys, &WANT).unwrap_err();
            assert!(err.contains(why), "{err} (wanted {why})");
        };
        refused(with("iss", json!("https://evil.example")), "another issuer");
        refused(with("aud", json!("other")), "another client");
        refused(with("aud", json!(["box", "other"])), "azp");
        refused(with("exp", json!(1_500 - LEEWAY - 1)), "expired");
        refused(with("iat", json!(1_500 + LEEWAY + 1)), "future");
        refused(with("nonce", json!("n1")), "nonce");
        refused(with("email_verified", json!(false)), "not verified");
        refused(with("email_verified", Value::Null), "not verified");
        refused(sign(&pair, "other-kid", &claims()), "does not publish");
        // Within the leeway, and a list of audiences with azp naming us, are fine.
        assert!(check(&with("exp", json!(1_500 - LEEWAY)), &keys, &WANT).is_ok());
        let mut c = claims();
        c["aud"] = json!(["box", "other"]);
        c["azp"] = json!("box");
        assert!(check(&sign(&pair, "ec1", &c), &keys, &WANT).is_ok());
    }

    #[test]
    fn a_tampered_token_or_a_foreign_key_is_refused() {
        let (pair, jwk) = es256();
        let keys = parse_jwks(&json!({"keys": [jwk]})).unwrap();
        let token = sign(&pair, "ec1", &claims());
        let (input, sig) = token.rsplit_once('.').unwrap();
        let (head, _) = input.split_once('.').unwrap();
        let mut c = claims();
        c["sub"] = json!("admin");
        let forged = format!("{head}.{}.{sig}", b64url_encode(c.to_string().as_bytes()));
        let err = check(&forged, &keys, &WANT).unwrap_err();
        assert!(err.contains("signature is not valid"), "{err}");
        // Same kid, another key.
        let (other, _) = es256();
        let err = check(&sign(&other, "ec1", &claims()), &keys, &WANT).unwrap_err();
        assert!(err.contains("signature is not valid"), "{err}");
    }

    #[test]
    fn unsigned_and_hmac_tokens_are_refused() {
        for alg in ["none", "HS256", "RS512"] {
            let header = b64url_encode(json!({"alg": alg}).to_string().as_bytes());
            let body = b64url_encode(claims().to_string().as_bytes());
            let err = parse(&format!("{header}.{body}.")).unwrap_err();
            assert!(err.contains("only RS256 and ES256"), "{err}");
        }
        assert!(parse("a.b").is_err());
    }

    #[test]
    fn jwks_keeps_only_usable_signing_keys() {
        let (_, ec) = es256();
        let doc = json!({"keys": [
            ec,
            {"kty": "RSA", "kid": "r1", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "AA"}
        ]});
        let kids: Vec<_> = parse_jwks(&doc)
            .unwrap()
            .into_iter()
            .map(|k| k.kid.unwrap())
            .collect();
        assert_eq!(kids, ["ec1", "r1"]);
        assert!(parse_jwks(&json!({})).is_err());
    }
}
