//! Gateway helpers: operators' devices made with `otpbox device add`, the server's clock,
//! stock as the catalogue shows it, and the HMAC the gateways sign with.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::market::COUNTRY;
use super::{Response, TestServer, PASSWORD};

/// A device as `otpbox device add` printed it.
#[derive(Debug, Clone)]
pub struct Device {
    /// The public id (`device_id=`).
    pub id: String,
    pub secret: String,
    /// `webhook_url=` (its host comes from `base_url`, not the test server's port).
    pub webhook_url: String,
    /// `/ingest/KIND/ID`.
    pub path: String,
}

impl TestServer {
    /// An operator account made with `otpbox user create --role operator`.
    pub fn operator(&self, email: &str) -> i64 {
        self.create_user(email, "operator", PASSWORD)
    }

    /// `otpbox device add --operator EMAIL --kind KIND [--sim SPEC]...`, asserting success.
    pub fn add_device(&self, operator: &str, kind: &str, sims: &[&str]) -> Device {
        let mut args = vec!["device", "add", "--operator", operator, "--kind", kind];
        for s in sims {
            args.push("--sim");
            args.push(s);
        }
        let out = self.cli_ok(&args);
        let field = |name: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name}= in {out:?}"))
                .to_string()
        };
        let webhook_url = field("webhook_url");
        let id = field("device_id");
        let path = format!("/ingest/{kind}/{id}");
        assert!(webhook_url.ends_with(&path), "{webhook_url}");
        Device {
            id,
            secret: field("secret"),
            webhook_url,
            path,
        }
    }

    /// The server's clock (it may have been moved), in Unix seconds.
    pub fn now(&self) -> i64 {
        let r = self.client().post("/__dev/clock?advance=0", b"");
        assert_eq!(r.status, 200, "read the clock: {}", r.text());
        r.json()["now"].as_i64().expect("now")
    }

    /// Numbers on sale for `service` in [`COUNTRY`], as the public catalogue counts them.
    pub fn stock(&self, service: &str) -> i64 {
        let r = self.client().get(&format!(
            "/api/v1/catalogue?country={COUNTRY}&service={service}"
        ));
        assert_eq!(r.status, 200, "catalogue: {}", r.text());
        r.json()["offers"]
            .as_array()
            .and_then(|o| o.first())
            .and_then(|o| o["stock"].as_i64())
            .unwrap_or(0)
    }

    /// POSTs `body` to a device's ingestion URL with extra headers.
    pub fn ingest(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        let mut h = vec![("Content-Type", "application/json")];
        h.extend_from_slice(headers);
        self.client().request("POST", path, &h, body)
    }
}

/// Lowercase hex of HMAC-SHA256(key, data).
pub fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    hmac_raw(key, data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn hmac_raw(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Unpadded base64url (JWT parts).
pub fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
        }
    }
    out
}

/// An HS256 JWT over `claims`, as httpSMS signs its webhooks.
pub fn jwt(claims: &serde_json::Value, key: &str) -> String {
    let h = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let p = b64url(claims.to_string().as_bytes());
    let s = b64url(&hmac_raw(key.as_bytes(), format!("{h}.{p}").as_bytes()));
    format!("{h}.{p}.{s}")
}
