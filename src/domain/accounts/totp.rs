//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP): HMAC-SHA-1, six digits,
//! 30-second steps, the form every authenticator app reads from an `otpauth://` link. Also
//! the RFC 4648 base32 the secret is shown in. Pure functions; the stored state (secrets,
//! the last step used, recovery codes) is in `second_factor`.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

use crate::clock::Timestamp;

/// Seconds per step.
pub const STEP: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Bytes of a secret (160 bits, the size RFC 4226 recommends for HMAC-SHA-1).
pub const SECRET_LEN: usize = 20;

/// The step that contains `now`.
pub fn step_at(now: Timestamp) -> i64 {
    now.div_euclid(STEP)
}

/// RFC 4226 HOTP: HMAC-SHA-1 of the counter, dynamic truncation, `digits` decimal digits.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret).expect("any key size");
    mac.update(&counter.to_be_bytes());
    let h: [u8; 20] = mac.finalize().into_bytes().into();
    let offset = (h[19] & 0x0f) as usize;
    let bin = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    bin % 10u32.pow(digits)
}

/// The code of a step, zero-padded to [`DIGITS`].
pub fn code_at_step(secret: &[u8], step: i64) -> String {
    format!(
        "{:0width$}",
        hotp(secret, step.max(0) as u64, DIGITS),
        width = DIGITS as usize
    )
}

/// The step among `now`'s step and its neighbours (±1, for clocks a little off and codes
/// typed just as they change) whose code is `code`, if it is later than `after`. Codes of
/// `after` or earlier are refused, so a code cannot be used twice, nor an older one after a
/// newer.
pub fn matching_step(secret: &[u8], code: &str, now: Timestamp, after: i64) -> Option<i64> {
    let code = normalise(code)?;
    let current = step_at(now);
    (current - 1..=current + 1)
        .rev()
        .filter(|s| *s > after)
        .find(|s| {
            crate::domain::base::crypto::constant_time_eq(
                code_at_step(secret, *s).as_bytes(),
                code.as_bytes(),
            )
        })
}

/// The digits of a code as typed (spaces allowed, as apps show `123 456`), or `None` when it
/// is not a six-digit code.
pub fn normalise(code: &str) -> Option<String> {
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    (digits.len() == DIGITS as usize && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(digits)
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, upper case, without padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decodes base32 as people type it (the tests read back what the page shows): any case, spaces and dashes ignored, padding optional.
#[cfg(test)]
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').chars() {
        if c.is_whitespace() || c == '-' {
            continue;
        }
        let v = BASE32
            .iter()
            .position(|&a| a as char == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// The `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=ISSUER…` link that authenticator apps
/// read from the QR code.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        uri_encode(issuer),
        uri_encode(account),
        base32_encode(secret),
        uri_encode(issuer)
    )
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B: the SHA-1 rows (seed "12345678901234567890", 8 digits).
    const RFC6238_SHA1: &[(i64, &str)] = &[
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];
    const SEED: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_sha1_vectors_with_eight_digits() {
        for (t, expect) in RFC6238_SHA1 {
            let got = format!("{:08}", hotp(SEED, step_at(*t) as u64, 8));
            assert_eq!(&got, expect, "T = {t}");
        }
    }

    #[test]
    fn rfc6238_sha1_vectors_truncated_to_six_digits() {
        for (t, expect) in RFC6238_SHA1 {
            assert_eq!(code_at_step(SEED, step_at(*t)), expect[2..], "T = {t}");
        }
    }

    #[test]
    fn rfc4226_hotp_vectors() {
        // RFC 4226 appendix D, counters 0..9.
        let expect = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (c, e) in expect.iter().enumerate() {
            assert_eq!(hotp(SEED, c as u64, 6), *e, "counter {c}");
        }
    }

    #[test]
    fn one_step_either_side_is_accepted_two_are_not() {
        let now = 1_111_111_111;
        let s = step_at(now);
        for d in -1..=1 {
            let code = code_at_step(SEED, s + d);
            assert_eq!(matching_step(SEED, &code, now, -1), Some(s + d), "{d}");
        }
        for d in [-2, 2] {
            let code = code_at_step(SEED, s + d);
            assert_eq!(matching_step(SEED, &code, now, -1), None, "{d}");
        }
    }

    #[test]
    fn a_used_step_or_an_older_one_is_refused() {
        let now = 1_234_567_890;
        let s = step_at(now);
        let code = code_at_step(SEED, s);
        assert_eq!(matching_step(SEED, &code, now, s), None);
        assert_eq!(matching_step(SEED, &code, now, s + 1), None);
        assert_eq!(matching_step(SEED, &code, now, s - 1), Some(s));
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(matching_step(SEED, &spaced, now, -1), Some(s));
        assert_eq!(matching_step(SEED, "12345", now, -1), None);
        assert_eq!(matching_step(SEED, "12345a", now, -1), None);
    }

    #[test]
    fn base32_matches_rfc4648_and_round_trips() {
        for (plain, enc) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(plain.as_bytes()), enc);
            assert_eq!(base32_decode(enc).unwrap(), plain.as_bytes());
        }
        assert_eq!(base32_decode("mzxw 6ytb-oi======").unwrap(), b"foobar");
        assert_eq!(base32_decode("MZ1"), None);
        let secret: Vec<u8> = (0..20).collect();
        assert_eq!(base32_encode(&secret).len(), 32);
        assert_eq!(base32_decode(&base32_encode(&secret)).unwrap(), secret);
    }

    #[test]
    fn otpauth_uri_names_issuer_and_account() {
        let uri = otpauth_uri("My Box", "ann+x@example.com", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/My%20Box:ann%2Bx%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=My%20Box&algorithm=SHA1&digits=6&period=30"
        );
    }
}
