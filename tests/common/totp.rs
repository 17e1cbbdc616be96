//! TOTP as an authenticator app computes it, for the tests that sign in with a second factor.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// RFC 6238 with HMAC-SHA-1 and six digits, written from the RFC for the test.
pub fn totp_at_step(secret: &[u8], step: i64) -> String {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret).unwrap();
    mac.update(&(step as u64).to_be_bytes());
    let h = mac.finalize().into_bytes();
    let o = (h[19] & 15) as usize;
    let n = u32::from_be_bytes([h[o] & 0x7f, h[o + 1], h[o + 2], h[o + 3]]) % 1_000_000;
    format!("{n:06}")
}

/// RFC 4648 base32 (the secret as the setup page shows it).
pub fn base32_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buf, mut bits, mut out) = (0u32, 0, Vec::new());
    for c in s.chars().filter(|c| !c.is_whitespace()) {
        buf = (buf << 5) | ALPHABET.find(c).expect("base32") as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}
