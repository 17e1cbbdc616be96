//! Outbound HTTP to addresses that customers choose (webhooks): the URL rules, the address
//! classifier that keeps the server away from private networks, name resolution with that
//! check, and one POST through a ureq agent pinned to the checked addresses.
//!
//! Why pinned: checking a host name and then letting the HTTP client resolve it again would
//! let a DNS server answer "public" to the check and "127.0.0.1" to the connection (DNS
//! rebinding). Here the name is resolved once, every address is checked, and the agent's
//! resolver hands exactly those addresses to the connector; TLS still verifies the certificate
//! against the host name. Proxies from the environment and redirects are switched off, so the
//! connection goes nowhere else.
//!
//! Called only from the scheduler's jobs (`webhooks`, `notifications`, and `partners` for
//! PUSH_SMS to the hubs), never on a request thread.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// Longest URL a customer may register.
pub const MAX_URL: usize = 2000;
/// Name resolution, connecting, and the whole exchange give up after these.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a checked URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Lower case, without brackets or a trailing dot.
    pub host: String,
    pub port: u16,
}

/// True for an address a customer's URL may reach: not private, loopback, link-local,
/// multicast, unspecified, unique-local, shared (CGNAT), documentation, benchmarking or
/// reserved. IPv6 addresses that embed an IPv4 address (mapped, compatible, NAT64, 6to4) are
/// judged by that IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_public(v4),
        IpAddr::V6(v6) => v6_public(v6),
    }
}

fn v4_public(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    let internal = o[0] == 0 // "this network", includes 0.0.0.0
        || ip.is_private() // 10/8, 172.16/12, 192.168/16
        || ip.is_loopback() // 127/8
        || ip.is_link_local() // 169.254/16
        || ip.is_multicast() // 224/4
        || ip.is_documentation() // 192.0.2/24, 198.51.100/24, 203.0.113/24
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10 shared address space
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0/24 protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18/15 benchmarking
        || o[0] >= 240; // 240/4 reserved and 255.255.255.255
    !internal
}

/// The IPv4 address inside an IPv6 one that carries it, by prefix.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        return Some(tail()); // ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible), ::, ::1
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return Some(tail()); // 64:ff9b::/96 NAT64
    }
    if s[0] == 0x2002 {
        // 2002::/16 6to4: the IPv4 address follows the prefix.
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

fn v6_public(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return v4_public(v4);
    }
    let s = ip.segments();
    let internal = ip.is_multicast() // ff00::/8
        || (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
        || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
        || (s[0] & 0xffc0) == 0xfec0 // fec0::/10 site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1..4] == [0; 3]) // 100::/64 discard-only
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1); // 64:ff9b:1::/48 local NAT64
    !internal
}

/// Checks a URL a customer gives, without any network access: `http` or `https`, a host, no
/// user name or password. Unless `allow_private`, an IP address must be public and the
/// `localhost` names are refused; host names are checked again, resolved, at send time.
pub fn check_url(url: &str, allow_private: bool) -> Result<Target, String> {
    let url = url.trim();
    if url.is_empty() {
        return Err("Enter a URL.".into());
    }
    if url.len() > MAX_URL {
        return Err(format!("The URL must be at most {MAX_URL} characters."));
    }
    let lower = url.to_ascii_lowercase();
    let https = if lower.starts_with("https://") {
        true
    } else if lower.starts_with("http://") {
        false
    } else {
        return Err("The URL must start with http:// or https://.".into());
    };
    let uri: Uri = url
        .parse()
        .map_err(|_| "This is not a valid URL.".to_string())?;
    let authority = uri
        .authority()
        .ok_or_else(|| "The URL has no host.".to_string())?;
    if authority.as_str().contains('@') {
        return Err("The URL must not contain a user name or password.".into());
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if host.is_empty() {
        return Err("The URL has no host.".into());
    }
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    if port == 0 {
        return Err("The URL has no valid port.".into());
    }
    let internal = || {
        Err::<Target, String>(
            "The URL points to a private, loopback or otherwise internal address; this server \
             only calls public addresses."
                .into(),
        )
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        if !allow_private && !is_public(ip) {
            return internal();
        }
        return Ok(Target { host, port });
    }
    let valid_name = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    // An all-numeric last label is an IPv4 address in a form the system resolver accepts
    // (`127.1`, `2130706433`, `0x7f.1`) but a reader would not recognise: refused outright.
    let last = host.rsplit('.').next().unwrap_or("");
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || (last.starts_with("0x") && last[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    if !valid_name || numeric || host.len() > 253 {
        return Err("The URL's host is not a valid host name or IP address.".into());
    }
    if !allow_private && (host == "localhost" || host.ends_with(".localhost")) {
        return internal();
    }
    Ok(Target { host, port })
}

/// Resolves the target (an IP address needs no lookup) and checks every address: one
/// internal address refuses the whole host unless `allow_private`.
pub fn resolve_checked(t: &Target, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = match t.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, t.port)],
        Err(_) => {
            let (tx, rx) = mpsc::sync_channel(1);
            let name = (t.host.clone(), t.port);
            // getaddrinfo has no timeout of its own; a stuck lookup ends its own thread later.
            std::thread::Builder::new()
                .name("webhook-dns".into())
                .spawn(move || {
                    let _ = tx.send(name.to_socket_addrs().map(|a| a.collect::<Vec<_>>()));
                })
                .map_err(|e| format!("cannot start a lookup: {e}"))?;
            match rx.recv_timeout(RESOLVE_TIMEOUT) {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => return Err(format!("cannot resolve {}: {e}", t.host)),
                Err(_) => return Err(format!("resolving {} timed out", t.host)),
            }
        }
    };
    if addrs.is_empty() {
        return Err(format!("{} has no address", t.host));
    }
    if !allow_private {
        if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
            return Err(format!(
                "{} resolves to {}, an internal address; not called",
                t.host,
                bad.ip()
            ));
        }
    }
    Ok(addrs)
}

/// Hands ureq the addresses that were checked, whatever a name server says now.
#[derive(Debug)]
struct Pinned {
    host: String,
    addrs: Vec<SocketAddr>,
}

impl Resolver for Pinned {
    fn resolve(
        &self,
        uri: &Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.');
        if !host.eq_ignore_ascii_case(&self.host) {
            // Redirects are off, so this is not expected; refuse rather than resolve.
            return Err(ureq::Error::HostNotFound);
        }
        let mut out = self.empty();
        for a in self.addrs.iter().take(16) {
            out.push(*a);
        }
        Ok(out)
    }
}

const JSON: &str = "application/json";

/// What one POST came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Why there was no (2xx) response; empty on success.
    pub error: String,
    pub duration_ms: i64,
    /// The response body (its first [`MAX_REPLY`] bytes), inflated if it was gzip.
    pub reply: Vec<u8>,
}

/// How much of a response body is read.
pub const MAX_REPLY: u64 = 64 * 1024;

/// POSTs `body` as JSON to `url` with `headers`, after checking the URL and every address it
/// resolves to. Never follows redirects. At most about 16 seconds (lookup plus exchange).
pub fn post_json(
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
    allow_private: bool,
) -> Outcome {
    post(url, JSON, headers, body, allow_private)
}

/// [`post_json`] with another content type (an ntfy message is plain text).
pub fn post(
    url: &str,
    content_type: &str,
    headers: &[(&str, String)],
    body: &[u8],
    allow_private: bool,
) -> Outcome {
    let started = Instant::now();
    let done = |status: Option<u16>, error: String, reply: Vec<u8>| Outcome {
        status,
        error,
        duration_ms: started.elapsed().as_millis() as i64,
        reply,
    };
    let target = match check_url(url, allow_private) {
        Ok(t) => t,
        Err(e) => return done(None, e, Vec::new()),
    };
    let addrs = match resolve_checked(&target, allow_private) {
        Ok(a) => a,
        Err(e) => return done(None, e, Vec::new()),
    };
    let (status, error, reply) = send_pinned(url, target.host, addrs, content_type, headers, body);
    done(status, error, reply)
}

/// `bytes` compressed with gzip (the partner protocol's bodies, both ways).
pub fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes)?;
    enc.finish()
}

/// The POST itself, connecting only to `addrs` whatever `host` resolves to.
fn send_pinned(
    url: &str,
    host: String,
    addrs: Vec<SocketAddr>,
    content_type: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (Option<u16>, String, Vec<u8>) {
    let config = ureq::Agent::config_builder()
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(Some(TOTAL_TIMEOUT))
        .user_agent(concat!("otpbox-webhooks/", env!("CARGO_PKG_VERSION")))
        .build();
    let agent = ureq::Agent::with_parts(config, DefaultConnector::new(), Pinned { host, addrs });
    let mut request = agent.post(url.trim()).header("Content-Type", content_type);
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    match request.send(body) {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let reply = resp
                .body_mut()
                .with_config()
                .limit(MAX_REPLY)
                .read_to_vec()
                .unwrap_or_default();
            if (200..300).contains(&status) {
                (Some(status), String::new(), reply)
            } else {
                (Some(status), format!("HTTP {status}"), reply)
            }
        }
        Err(e) => {
            let mut msg = e.to_string();
            msg.truncate(300);
            (None, msg, Vec::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap())
    }

    #[test]
    fn ipv4_internal_ranges_are_refused() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.1",
            "127.0.0.1",
            "127.255.0.9",
            "169.254.169.254",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "198.19.255.255",
        ] {
            assert!(!public(ip), "{ip} must be internal");
        }
    }

    #[test]
    fn ipv4_public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.254",
        ] {
            assert!(public(ip), "{ip} must be public");
        }
    }

    #[test]
    fn ipv6_internal_ranges_are_refused() {
        for ip in [
            "::",
            "::1",
            "fc00::1",
            "fd12:3456:789a::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "2001:db8::1",
            "100::1",
            "64:ff9b:1::1",
        ] {
            assert!(!public(ip), "{ip} must be internal");
        }
    }

    #[test]
    fn ipv6_that_embeds_an_internal_ipv4_is_refused() {
        for ip in [
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "::192.168.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:c0a8:101::",
        ] {
            assert!(!public(ip), "{ip} must be internal");
        }
        for ip in [
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
        ] {
            assert!(public(ip), "{ip} must be public");
        }
    }

    #[test]
    fn urls_need_http_or_https_and_a_host_without_credentials() {
        assert_eq!(
            check_url("https://hooks.example.com/x?y=1", false),
            Ok(Target {
                host: "hooks.example.com".into(),
                port: 443
            })
        );
        assert_eq!(
            check_url("http://Example.COM.:8080/", false).unwrap().port,
            8080
        );
        assert_eq!(check_url("http://example.com/", false).unwrap().port, 80);
        for bad in [
            "",
            "ftp://example.com/",
            "file:///etc/passwd",
            "gopher://example.com/",
            "javascript:alert(1)",
            "https://user:pw@example.com/",
            "https://user@example.com/",
            "http:///nohost",
            "https://exa mple.com/",
            "https://ex!ample.com/",
        ] {
            assert!(check_url(bad, true).is_err(), "{bad:?} must be refused");
        }
        assert!(check_url(&format!("https://e.com/{}", "a".repeat(MAX_URL)), true).is_err());
    }

    #[test]
    fn internal_hosts_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://10.1.2.3/",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]/",
            "http://[fd00::5]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://0.0.0.0/",
            "http://localhost:8080/",
            "http://LOCALHOST./",
            "http://api.localhost/",
        ] {
            let err = check_url(url, false).unwrap_err();
            assert!(err.contains("internal"), "{url}: {err}");
            assert!(check_url(url, true).is_ok(), "{url} is fine when allowed");
        }
        assert_eq!(
            check_url("http://[::1]:8080/", true).unwrap().host,
            "::1".to_string()
        );
    }

    #[test]
    fn numeric_hosts_in_odd_forms_are_refused() {
        for url in [
            "http://2130706433/",
            "http://127.1/",
            "http://0x7f.1/",
            "http://0x7f000001/",
            "http://1.2.3/",
        ] {
            assert!(check_url(url, true).is_err(), "{url} must be refused");
        }
    }

    #[test]
    fn resolution_checks_every_address() {
        let t = check_url("http://127.0.0.1:9/", true).unwrap();
        assert!(resolve_checked(&t, false).unwrap_err().contains("internal"));
        assert_eq!(
            resolve_checked(&t, true).unwrap(),
            vec!["127.0.0.1:9".parse().unwrap()]
        );
        // `localhost` resolves through the system to loopback addresses only.
        let t = Target {
            host: "localhost".into(),
            port: 80,
        };
        if let Ok(addrs) = resolve_checked(&t, true) {
            assert!(addrs.iter().all(|a| !is_public(a.ip())));
            assert!(resolve_checked(&t, false).is_err());
        }
    }

    /// Answers one request with `status_line` and returns what it received.
    fn answer_once(
        listener: std::net::TcpListener,
        status_line: &'static str,
    ) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&got).contains("\r\n\r\n{}") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            let reply = format!(
                "{status_line}\r\nLocation: http://127.0.0.1:9/\r\nContent-Length: 0\r\n\r\n"
            );
            s.write_all(reply.as_bytes()).unwrap();
            String::from_utf8_lossy(&got).into_owned()
        })
    }

    #[test]
    fn posts_to_the_checked_address_with_the_headers() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook?x=1", listener.local_addr().unwrap());
        let seen = answer_once(listener, "HTTP/1.1 204 No Content");
        let out = post_json(&url, &[("X-Otpbox-Event", "ping".into())], b"{}", true);
        assert_eq!(out.status, Some(204), "{}", out.error);
        assert_eq!(out.error, "");
        let req = seen.join().unwrap();
        assert!(req.starts_with("POST /hook?x=1 HTTP/1.1\r\n"), "{req}");
        let lower = req.to_ascii_lowercase();
        assert!(lower.contains("\r\nx-otpbox-event: ping\r\n"), "{req}");
        assert!(
            lower.contains("\r\ncontent-type: application/json\r\n"),
            "{req}"
        );
    }

    #[test]
    fn the_connection_goes_to_the_pinned_address_not_to_what_the_name_resolves_to() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = answer_once(listener, "HTTP/1.1 200 OK");
        // `.invalid` never resolves (RFC 6761): only the pinned address can be reached.
        let url = format!("http://hooks.example.invalid:{}/p", addr.port());
        let (status, error, _) = send_pinned(
            &url,
            "hooks.example.invalid".into(),
            vec![addr],
            JSON,
            &[],
            b"{}",
        );
        assert_eq!(status, Some(200), "{error}");
        let req = seen.join().unwrap();
        assert!(
            req.to_ascii_lowercase()
                .contains("\r\nhost: hooks.example.invalid"),
            "{req}"
        );
        // A URL for another host than the one checked is refused, not resolved.
        let other = format!("http://elsewhere.invalid:{}/p", addr.port());
        let (status, error, _) = send_pinned(
            &other,
            "hooks.example.invalid".into(),
            vec![addr],
            JSON,
            &[],
            b"{}",
        );
        assert_eq!(status, None);
        assert!(error.contains("host not found"), "{error}");
    }

    #[test]
    fn redirects_are_not_followed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let seen = answer_once(listener, "HTTP/1.1 302 Found");
        let out = post_json(&url, &[], b"{}", true);
        assert_eq!(out.status, Some(302));
        assert_eq!(out.error, "HTTP 302");
        seen.join().unwrap();
    }

    #[test]
    fn ipv6_literals_are_pinned_too() {
        let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
            return; // no IPv6 on this machine
        };
        let url = format!("http://[::1]:{}/v6", listener.local_addr().unwrap().port());
        let seen = answer_once(listener, "HTTP/1.1 200 OK");
        let out = post_json(&url, &[], b"{}", true);
        assert_eq!(out.status, Some(200), "{}", out.error);
        assert!(seen.join().unwrap().starts_with("POST /v6 "));
    }

    #[test]
    fn refused_urls_are_never_called() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let out = post_json(&url, &[], b"{}", false);
        assert_eq!(out.status, None);
        assert!(out.error.contains("internal"), "{}", out.error);
        assert!(listener.accept().is_err(), "nothing connected");
    }
}
