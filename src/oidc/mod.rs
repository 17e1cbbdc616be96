//! The relying party of OpenID Connect sign-in (protocols.md §7.7): for each configured
//! provider, its discovery document (`{issuer}/.well-known/openid-configuration`, cached for
//! an hour), the authorization URL of the code flow with PKCE (S256), the token exchange, and
//! the ID token's verification against the provider's JWK set ([`jws`]), cached and fetched
//! again when a token names a key it does not hold (at most once a minute).
//!
//! Every call goes through one ureq agent with timeouts and no redirects or proxies; it runs
//! on the request thread of the person signing in (they wait for it), never inside a
//! database transaction. What the sign-in means for accounts is in
//! `domain::accounts::identities` and `http::web::accounts::oidc`.

pub mod jws;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::config::{Config, OidcProvider};
use crate::url::percent_encode;

/// Connect and read timeout of each call to a provider.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest document read from a provider.
const MAX_BODY: u64 = 1 << 20;
/// How long a discovery document is used before it is fetched again (seconds).
const METADATA_TTL: i64 = 3600;
/// A JWK set is fetched again for an unknown `kid` at most this often (seconds).
const JWKS_REFRESH_MIN: i64 = 60;
/// After a failed discovery, sign-ins with that provider are refused at once for this long
/// (seconds) instead of each waiting for the provider's timeout on a request thread.
const DOWN_FOR: i64 = 30;

/// Why a sign-in with a provider did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The provider could not be reached or answered something unusable.
    Provider(String),
    /// The provider's answer was refused (a check of the ID token failed).
    Refused(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Provider(m) => write!(f, "the provider could not be used: {m}"),
            Failure::Refused(m) => write!(f, "the sign-in was refused: {m}"),
        }
    }
}

/// What discovery tells about a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    /// The client authenticates with HTTP Basic (`client_secret_basic`, the default), else
    /// in the form body (`client_secret_post`).
    pub basic_auth: bool,
}

struct Cached {
    meta: Metadata,
    meta_at: i64,
    keys: Vec<jws::Jwk>,
    keys_at: Option<i64>,
}

/// The configured providers and what was learned about them.
pub struct Oidc {
    providers: Vec<OidcProvider>,
    insecure: bool,
    agent: ureq::Agent,
    cache: Mutex<HashMap<String, Cached>>,
    /// Provider name → when its discovery last failed, and why.
    down: Mutex<HashMap<String, (i64, Failure)>>,
}

/// The PKCE challenge of a verifier (RFC 7636 §4.2, S256).
pub fn pkce_challenge(verifier: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    jws::b64url_encode(digest.as_ref())
}

/// Where a provider sends the browser back.
pub fn redirect_uri(base_url: &str) -> String {
    format!("{base_url}/auth/oidc/callback")
}

impl Oidc {
    pub fn new(config: &Config) -> Oidc {
        let agent_config = ureq::Agent::config_builder()
            .proxy(None)
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(TIMEOUT))
            .timeout_per_read(Some(TIMEOUT))
            .timeout_global(Some(TIMEOUT * 2))
            .user_agent(concat!("otpbox/", env!("CARGO_PKG_VERSION")))
            .middleware(crate::cpu::calling_out)
            .build();
        Oidc {
            providers: config.oidc.clone(),
            insecure: config.oidc_allow_insecure,
            agent: ureq::Agent::new_with_config(agent_config),
            cache: Mutex::new(HashMap::new()),
            down: Mutex::new(HashMap::new()),
        }
    }

    pub fn providers(&self) -> &[OidcProvider] {
        &self.providers
    }

    pub fn provider(&self, name: &str) -> Option<&OidcProvider> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// An endpoint URL the provider gave: https, or http when allowed.
    fn endpoint(&self, doc: &Value, name: &str) -> Result<String, Failure> {
        let url = doc.get(name).and_then(Value::as_str).unwrap_or("");
        let ok = url.starts_with("https://") || (self.insecure && url.starts_with("http://"));
        if !ok {
            return Err(Failure::Provider(format!(
                "its discovery document has no usable `{name}` (https:// needed)"
            )));
        }
        Ok(url.to_string())
    }

    fn get_json(&self, url: &str) -> Result<Value, Failure> {
        let mut resp = self
            .agent
            .get(url)
            .header("Accept", "application/json")
            .call()
            .map_err(|e| Failure::Provider(format!("{url}: {e}")))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|e| Failure::Provider(format!("{url}: {e}")))?;
        if status != 200 {
            return Err(Failure::Provider(format!("{url} answered HTTP {status}")));
        }
        serde_json::from_str(&body).map_err(|_| Failure::Provider(format!("{url}: not JSON")))
    }

    /// The provider's metadata, from the cache or discovery.
    pub fn metadata(&self, p: &OidcProvider, now: i64) -> Result<Metadata, Failure> {
        if let Some(c) = self.lock().get(&p.name) {
            if now - c.meta_at < METADATA_TTL {
                return Ok(c.meta.clone());
            }
        }
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, failure)) = down.get(&p.name) {
            if now - at < DOWN_FOR {
                return Err(failure.clone());
            }
        }
        drop(down);
        let found = self.discover(p, now);
        down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        match &found {
            Ok(_) => down.remove(&p.name),
            Err(f) => down.insert(p.name.clone(), (now, f.clone())),
        };
        found
    }

    /// Fetches and checks the discovery document, and caches what it says.
    fn discover(&self, p: &OidcProvider, now: i64) -> Result<Metadata, Failure> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            p.issuer.trim_end_matches('/')
        );
        let doc = self.get_json(&url)?;
        // OpenID Connect Discovery §4.3: the document's issuer is exactly the configured one.
        if doc.get("issuer").and_then(Value::as_str) != Some(p.issuer.as_str()) {
            return Err(Failure::Provider(format!(
                "its discovery document names another issuer than `{}`",
                p.issuer
            )));
        }
        let methods: Vec<&str> = doc
            .get("token_endpoint_auth_methods_supported")
            .and_then(Value::as_array)
            .map(|m| m.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let meta = Metadata {
            authorization_endpoint: self.endpoint(&doc, "authorization_endpoint")?,
            token_endpoint: self.endpoint(&doc, "token_endpoint")?,
            jwks_uri: self.endpoint(&doc, "jwks_uri")?,
            basic_auth: methods.is_empty()
                || methods.contains(&"client_secret_basic")
                || !methods.contains(&"client_secret_post"),
        };
        let mut cache = self.lock();
        let entry = cache.entry(p.name.clone()).or_insert_with(|| Cached {
            meta: meta.clone(),
            meta_at: now,
            keys: Vec::new(),
            keys_at: None,
        });
        if entry.meta.jwks_uri != meta.jwks_uri {
            entry.keys.clear();
            entry.keys_at = None;
        }
        entry.meta = meta.clone();
        entry.meta_at = now;
        Ok(meta)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The URL the browser is sent to: the code flow with PKCE, asking for `openid email`.
    pub fn authorize_url(
        &self,
        p: &OidcProvider,
        meta: &Metadata,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        verifier: &str,
    ) -> String {
        let sep = if meta.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        let params = [
            ("response_type", "code"),
            ("client_id", p.client_id.as_str()),
            ("redirect_uri", redirect_uri),
            ("scope", "openid email"),
            ("state", state),
            ("nonce", nonce),
            ("code_challenge", &pkce_challenge(verifier)),
            ("code_challenge_method", "S256"),
        ];
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        format!("{}{sep}{}", meta.authorization_endpoint, query.join("&"))
    }

    /// Trades the authorization code for tokens; returns the ID token.
    pub fn exchange(
        &self,
        p: &OidcProvider,
        meta: &Metadata,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<String, Failure> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ];
        let public = p.client_secret.is_empty();
        if public || !meta.basic_auth {
            form.push(("client_id", &p.client_id));
        }
        if !public && !meta.basic_auth {
            form.push(("client_secret", &p.client_secret));
        }
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        let mut req = self
            .agent
            .post(&meta.token_endpoint)
            .header("Accept", "application/json")
            .header("Content-Type", "application/x-www-form-urlencoded");
        if !public && meta.basic_auth {
            // RFC 6749 §2.3.1: both parts form-encoded before Basic.
            let pair = format!(
                "{}:{}",
                percent_encode(&p.client_id),
                percent_encode(&p.client_secret)
            );
            req = req.header(
                "Authorization",
                &format!("Basic {}", base64_std(pair.as_bytes())),
            );
        }
        let mut resp = req
            .send(body.join("&"))
            .map_err(|e| Failure::Provider(format!("token endpoint: {e}")))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|e| Failure::Provider(format!("token endpoint: {e}")))?;
        let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status != 200 {
            let error = doc.get("error").and_then(Value::as_str).unwrap_or("");
            return Err(Failure::Provider(format!(
                "the token endpoint answered HTTP {status} {error}"
            )));
        }
        doc.get("id_token")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Failure::Provider("the token endpoint gave no ID token".into()))
    }

    /// The provider's signing keys, fetched when there are none yet or, at most once a
    /// minute, when `token` names a key the cached set lacks (the provider rotated its keys).
    fn keys_for(
        &self,
        p: &OidcProvider,
        meta: &Metadata,
        token: &jws::Token,
        now: i64,
    ) -> Result<Vec<jws::Jwk>, Failure> {
        let (keys, fetched_at) = match self.lock().get(&p.name) {
            Some(c) => (c.keys.clone(), c.keys_at),
            None => (Vec::new(), None),
        };
        let stale = match fetched_at {
            None => true,
            Some(at) => !jws::has_key(token, &keys) && now - at >= JWKS_REFRESH_MIN,
        };
        if !stale {
            return Ok(keys);
        }
        let doc = self.get_json(&meta.jwks_uri)?;
        let keys = jws::parse_jwks(&doc).map_err(Failure::Provider)?;
        if let Some(c) = self.lock().get_mut(&p.name) {
            c.keys = keys.clone();
            c.keys_at = Some(now);
        }
        Ok(keys)
    }

    /// Verifies an ID token: signature, issuer, audience, times, nonce, verified e-mail.
    pub fn verify(
        &self,
        p: &OidcProvider,
        meta: &Metadata,
        id_token: &str,
        nonce: &str,
        now: i64,
    ) -> Result<jws::Claims, Failure> {
        let token = jws::parse(id_token).map_err(Failure::Refused)?;
        let keys = self.keys_for(p, meta, &token, now)?;
        jws::verify_signature(&token, &keys).map_err(Failure::Refused)?;
        let want = jws::Expect {
            issuer: &p.issuer,
            client_id: &p.client_id,
            nonce,
            now,
        };
        jws::check_claims(&token, &want).map_err(Failure::Refused)
    }
}

/// Standard base64 with padding (HTTP Basic).
fn base64_std(bytes: &[u8]) -> String {
    let url = jws::b64url_encode(bytes)
        .replace('-', "+")
        .replace('_', "/");
    let pad = (4 - url.len() % 4) % 4;
    format!("{url}{}", "=".repeat(pad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_base64url_of_sha256_without_padding() {
        // Python: urlsafe_b64encode(sha256(verifier).digest()).rstrip(b"=")
        assert_eq!(
            pkce_challenge("dBjftJeZ4CK-1Ss8jrAo5bvXPVJ8Q2DYzHyv3Z7JmYo"),
            "1iv7TWyBCFe8puiqS0tPbhiGntsLM8RD0oG2xgvdsLE"
        );
    }

    #[test]
    fn a_provider_that_cannot_be_reached_is_refused_at_once_for_a_while() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let mut layers = crate::config::Layers::default();
        layers.env.insert("oidc_issuer".into(), issuer);
        layers.env.insert("oidc_client_id".into(), "c".into());
        layers
            .env
            .insert("oidc_allow_insecure".into(), "true".into());
        let oidc = Oidc::new(&Config::from_layers(&layers).unwrap());
        let p = oidc.provider("default").unwrap().clone();
        let first = oidc.metadata(&p, 1000).unwrap_err();
        assert!(matches!(first, Failure::Provider(_)), "{first}");
        // Within the window the same answer comes back without a call (the port may even
        // be taken by now: nothing connects to it).
        assert_eq!(oidc.metadata(&p, 1000 + DOWN_FOR - 1).unwrap_err(), first);
        assert!(oidc.down.lock().unwrap().contains_key("default"));
        // After it, the provider is asked again.
        let again = oidc.metadata(&p, 1000 + DOWN_FOR).unwrap_err();
        assert!(matches!(again, Failure::Provider(_)));
    }

    #[test]
    fn basic_credentials_are_standard_base64() {
        assert_eq!(
            base64_std(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(base64_std(b"a"), "YQ==");
    }

    #[test]
    fn the_authorization_url_asks_for_the_code_flow_with_pkce() {
        let mut layers = crate::config::Layers::default();
        layers
            .env
            .insert("oidc_issuer".into(), "https://id.example".into());
        layers.env.insert("oidc_client_id".into(), "my box".into());
        let config = Config::from_layers(&layers).unwrap();
        let oidc = Oidc::new(&config);
        let p = oidc.provider("default").unwrap();
        let meta = Metadata {
            authorization_endpoint: "https://id.example/auth?x=1".into(),
            token_endpoint: String::new(),
            jwks_uri: String::new(),
            basic_auth: true,
        };
        let url = oidc.authorize_url(p, &meta, "https://box/cb", "st", "no", "ver");
        assert_eq!(
            url,
            format!(
                "https://id.example/auth?x=1&response_type=code&client_id=my%20box&\
                 redirect_uri=https%3A%2F%2Fbox%2Fcb&scope=openid%20email&state=st&nonce=no&\
                 code_challenge={}&code_challenge_method=S256",
                pkce_challenge("ver")
            )
        );
    }
}
