//! Our own request type: owned, complete (body already read), independent of tiny_http, so
//! handlers are plain functions that unit tests can call with [`Request::fake`].

use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other,
}

impl Method {
    pub fn parse(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }

    /// Methods that may change state (CSRF applies to these on web forms).
    pub fn is_unsafe(self) -> bool {
        !matches!(self, Method::Get | Method::Head | Method::Options)
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Path without the query string, canonical ([`canonical_path`]): the one spelling the
    /// router, the rate limiter and the handlers see.
    pub path: String,
    pub query: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub remote_ip: IpAddr,
    /// The client connection's address as the server saw it (before any proxy header), for
    /// the connection supervisor's accounting; `None` in unit tests.
    pub peer: Option<std::net::SocketAddr>,
    /// True when the client reached us over TLS (directly or, with --behind-proxy, per
    /// X-Forwarded-Proto).
    pub secure: bool,
    /// Route parameters (`{id}` segments) filled in by the router.
    pub params: Vec<(String, String)>,
    /// The protocol parameters, parsed once ([`Request::api_params`]).
    api_params: std::sync::OnceLock<Vec<(String, String)>>,
}

impl Request {
    /// A request as it arrives: `path` is made canonical ([`canonical_path`]); the body
    /// follows when it is read.
    pub fn new(
        method: Method,
        path: &str,
        query: &str,
        headers: Vec<(String, String)>,
        remote_ip: IpAddr,
        secure: bool,
    ) -> Request {
        Request {
            method,
            path: canonical_path(path),
            query: query.to_string(),
            headers,
            body: Vec::new(),
            remote_ip,
            peer: None,
            secure,
            params: Vec::new(),
            api_params: Default::default(),
        }
    }

    /// A request for unit tests: no socket involved.
    #[cfg(test)]
    pub fn fake(method: Method, url: &str, body: &[u8]) -> Request {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        Request {
            method,
            path: path.to_string(),
            query: query.to_string(),
            headers: Vec::new(),
            body: body.to_vec(),
            remote_ip: IpAddr::from([127, 0, 0, 1]),
            peer: None,
            secure: false,
            params: Vec::new(),
            api_params: Default::default(),
        }
    }

    #[cfg(test)]
    pub fn with_header(mut self, name: &str, value: &str) -> Request {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The credential of an `Authorization: Bearer <credential>` header (scheme in any case).
    pub fn bearer(&self) -> Option<&str> {
        let (scheme, rest) = self.header("authorization")?.trim().split_once(' ')?;
        let cred = rest.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !cred.is_empty()).then_some(cred)
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Route parameter parsed as an id.
    pub fn id_param(&self, name: &str) -> Option<i64> {
        self.param(name)?.parse().ok()
    }

    /// The request's parameters as the customer protocols read them: the query string, then
    /// a form body, names and values trimmed. Parsed once; the rate limiter and the
    /// protocol handlers read the same list, so a spelling one accepts the other sees.
    pub fn api_params(&self) -> &[(String, String)] {
        self.api_params.get_or_init(|| {
            let mut pairs = self.query_pairs();
            pairs.extend(self.form().0);
            pairs
                .into_iter()
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect()
        })
    }

    /// The first non-empty [`Request::api_params`] value named `name`.
    pub fn api_param(&self, name: &str) -> Option<&str> {
        self.api_params()
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub fn query_pairs(&self) -> Vec<(String, String)> {
        parse_urlencoded(&self.query)
    }

    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn is_form(&self) -> bool {
        self.header("content-type")
            .map(|c| c.starts_with("application/x-www-form-urlencoded"))
            .unwrap_or(false)
    }

    /// Fields of an `application/x-www-form-urlencoded` body.
    pub fn form(&self) -> Form {
        Form(if self.is_form() || self.header("content-type").is_none() {
            parse_urlencoded(&String::from_utf8_lossy(&self.body))
        } else {
            Vec::new()
        })
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim_matches('"').to_string())
    }

    pub fn wants_json(&self) -> bool {
        self.header("accept")
            .map(|a| a.contains("application/json"))
            .unwrap_or(false)
    }

    pub fn user_agent(&self) -> &str {
        self.header("user-agent").unwrap_or("")
    }
}

/// Decoded form fields, in order.
#[derive(Debug, Default, Clone)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The field, trimmed, or "" when absent.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or("").trim().to_string()
    }

    /// A checkbox: present with any value other than "", "0", "off", "false".
    pub fn checked(&self, name: &str) -> bool {
        matches!(self.get(name), Some(v) if !matches!(v, "" | "0" | "off" | "false"))
    }
}

pub fn parse_urlencoded(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` as space when `plus` is set); invalid escapes stay as-is.
pub fn percent_decode(s: &str, plus: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The one spelling of a request path that the router, the rate limiter and the handlers
/// all see: empty segments (`//`, a trailing `/`) and `.` segments dropped, `..` resolved.
/// Other spellings of a route are served as this one, and limited as it.
pub fn canonical_path(raw: &str) -> String {
    let mut segs: Vec<&str> = Vec::new();
    for seg in raw.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    format!("/{}", segs.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_path_has_one_canonical_form() {
        for raw in [
            "/stubs/handler_api.php",
            "//stubs//handler_api.php",
            "/stubs/handler_api.php/",
            "/stubs/./handler_api.php",
            "/x/../stubs/handler_api.php",
        ] {
            assert_eq!(canonical_path(raw), "/stubs/handler_api.php", "{raw}");
        }
        assert_eq!(canonical_path("//api/v1/balance"), "/api/v1/balance");
        assert_eq!(canonical_path("/"), "/");
        assert_eq!(canonical_path(""), "/");
        assert_eq!(canonical_path("/../.."), "/");
    }

    #[test]
    fn protocol_parameters_are_trimmed_and_parsed_once() {
        let req = Request::fake(
            Method::Post,
            "/stubs/handler_api.php?%20api_key%20=%20k1%20&action=getBalance",
            b"api_key=k2",
        );
        assert_eq!(req.api_param("api_key"), Some("k1"));
        assert_eq!(req.api_param("action"), Some("getBalance"));
        assert_eq!(req.api_params().len(), 3);
    }
    use crate::url::percent_encode;

    #[test]
    fn urlencoded_decoding() {
        let p = parse_urlencoded("a=1&b=hello+world&c=%41%42&d&e=%zz&f=%4");
        assert_eq!(p[0], ("a".into(), "1".into()));
        assert_eq!(p[1], ("b".into(), "hello world".into()));
        assert_eq!(p[2], ("c".into(), "AB".into()));
        assert_eq!(p[3], ("d".into(), "".into()));
        assert_eq!(p[4], ("e".into(), "%zz".into()));
        assert_eq!(p[5], ("f".into(), "%4".into()));
    }

    #[test]
    fn encode_round_trips() {
        let s = "a b&c=d/é";
        assert_eq!(percent_decode(&percent_encode(s), false), s);
    }

    #[test]
    fn cookies_and_headers() {
        let r = Request::fake(Method::Get, "/x?q=1", b"")
            .with_header("Cookie", "a=1; __session=abc; b=2");
        assert_eq!(r.cookie("__session").as_deref(), Some("abc"));
        assert_eq!(r.cookie("missing"), None);
        assert_eq!(r.query_param("q").as_deref(), Some("1"));
        assert!(r.header("COOKIE").is_some());
    }
}
