//! Small cryptographic helpers: random tokens, keyed hashes, constant-time comparison, and the
//! install's secret key (created in the data directory on first start).

use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The install's secret: signs links and CSRF tokens, keys the hashes of tokens and IPs.
#[derive(Clone)]
pub struct Keys {
    secret: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    #[cfg(test)]
    pub fn from_bytes(secret: [u8; 32]) -> Keys {
        Keys { secret }
    }

    /// Loads `secret.key` from the data directory, creating it (mode 0600) on first start.
    pub fn load_or_create(data: &Path) -> std::io::Result<Keys> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = data.join("secret.key");
        match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut secret = [0u8; 32];
                secret.copy_from_slice(&bytes);
                Ok(Keys { secret })
            }
            Ok(_) => Err(std::io::Error::other(format!(
                "{} is damaged (expected 32 bytes)",
                path.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret: [u8; 32] = random_bytes();
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)?;
                f.write_all(&secret)?;
                f.sync_all()?;
                Ok(Keys { secret })
            }
            Err(e) => Err(e),
        }
    }

    /// Keyed hash for storing a secret token (session, API key, link) so the database alone
    /// cannot be used to log in.
    pub fn token_hash(&self, token: &str) -> Vec<u8> {
        self.mac(b"token", token.as_bytes()).to_vec()
    }

    /// Keyed hash of an IP address, as stored in logs (privacy promise: no raw IPs).
    pub fn ip_hash(&self, ip: &str) -> String {
        hex(&self.mac(b"ip", ip.as_bytes())[..12])
    }

    /// Seals a small secret that the server must be able to read back (an upstream
    /// provider's API key): a random 16-byte nonce, the text XORed with an HMAC-SHA256
    /// counter keystream, and a 32-byte tag over nonce and ciphertext; hex-encoded. Keys for
    /// the stream and the tag are derived from the install key with their own purposes.
    pub fn seal(&self, purpose: &str, plain: &str) -> String {
        let nonce: [u8; 16] = random_bytes();
        let mut out = nonce.to_vec();
        out.extend(self.keystream_xor(purpose, &nonce, plain.as_bytes()));
        let tag = self.seal_tag(purpose, &out);
        out.extend_from_slice(&tag);
        hex(&out)
    }

    /// Opens what [`Keys::seal`] sealed with the same purpose; None when it was altered, was
    /// sealed for another purpose or with another install key.
    pub fn open(&self, purpose: &str, sealed: &str) -> Option<String> {
        let bytes = unhex(sealed)?;
        if bytes.len() < 16 + 32 {
            return None;
        }
        let (body, tag) = bytes.split_at(bytes.len() - 32);
        if !constant_time_eq(&self.seal_tag(purpose, body), tag) {
            return None;
        }
        let (nonce, cipher) = body.split_at(16);
        String::from_utf8(self.keystream_xor(purpose, nonce, cipher)).ok()
    }

    fn seal_tag(&self, purpose: &str, body: &[u8]) -> [u8; 32] {
        let key = self.mac(b"seal-tag", purpose.as_bytes());
        hmac_sha256(&key, body)
    }

    fn keystream_xor(&self, purpose: &str, nonce: &[u8], data: &[u8]) -> Vec<u8> {
        let key = self.mac(b"seal-stream", purpose.as_bytes());
        let mut out = Vec::with_capacity(data.len());
        for (i, chunk) in data.chunks(32).enumerate() {
            let mut block = nonce.to_vec();
            block.extend_from_slice(&(i as u64).to_be_bytes());
            let stream = hmac_sha256(&key, &block);
            out.extend(chunk.iter().zip(stream.iter()).map(|(d, k)| d ^ k));
        }
        out
    }

    /// MAC for a purpose-separated message.
    pub fn mac(&self, purpose: &[u8], msg: &[u8]) -> [u8; 32] {
        let mut m = <HmacSha256 as KeyInit>::new_from_slice(&self.secret).expect("any key size");
        m.update(purpose);
        m.update(b"\0");
        m.update(msg);
        m.finalize().into_bytes().into()
    }
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the operating system's random source works");
    b
}

/// A random token of `bytes` bytes, as lowercase hex.
pub fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("the operating system's random source works");
    hex(&b)
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Lowercase or uppercase hex to bytes; `None` when it is not hex.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key).expect("any key size");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(unhex("000fff"), Some(vec![0, 15, 255]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn tokens_are_random_and_hashes_keyed() {
        let a = random_token(16);
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_token(16));
        let k1 = Keys::from_bytes([1; 32]);
        let k2 = Keys::from_bytes([2; 32]);
        assert_ne!(k1.token_hash("x"), k2.token_hash("x"));
        assert_eq!(k1.ip_hash("1.2.3.4"), k1.ip_hash("1.2.3.4"));
        assert_ne!(k1.ip_hash("1.2.3.4"), k1.ip_hash("1.2.3.5"));
    }

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_purpose() {
        let k = Keys::from_bytes([7; 32]);
        let long = "k".repeat(100);
        for plain in ["", "abc123", long.as_str(), "ключ"] {
            let s = k.seal("provider", plain);
            assert!(!s.contains(plain) || plain.is_empty());
            assert_eq!(k.open("provider", &s).as_deref(), Some(plain));
        }
        let a = k.seal("provider", "secret-key");
        let b = k.seal("provider", "secret-key");
        assert_ne!(a, b, "a fresh nonce every time");
        assert_eq!(k.open("other", &a), None);
        assert_eq!(Keys::from_bytes([8; 32]).open("provider", &a), None);
        // Any flipped byte is refused.
        let mut bytes = unhex(&a).unwrap();
        for i in [0, 17, bytes.len() - 1] {
            bytes[i] ^= 1;
            assert_eq!(k.open("provider", &hex(&bytes)), None);
            bytes[i] ^= 1;
        }
        assert_eq!(k.open("provider", "zz"), None);
        assert_eq!(k.open("provider", &a[..40]), None);
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
