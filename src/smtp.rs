//! A small SMTP client for outgoing mail: plain, STARTTLS or implicit TLS (rustls with the
//! webpki roots), AUTH PLAIN, one message per connection, timeouts on every step.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Smtp, SmtpTls};

const TIMEOUT: Duration = Duration::from_secs(20);

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

struct Conn {
    reader: BufReader<Box<dyn Stream>>,
}

impl Conn {
    fn new(s: Box<dyn Stream>) -> Conn {
        Conn {
            reader: BufReader::new(s),
        }
    }

    /// Reads a (possibly multi-line) reply; returns code and text.
    fn reply(&mut self) -> Result<(u16, String), String> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .map_err(|e| format!("SMTP read: {e}"))?;
            if n == 0 {
                return Err("SMTP server closed the connection".into());
            }
            if line.len() < 4 {
                return Err(format!("SMTP reply malformed: {line:?}"));
            }
            let code: u16 = line[..3]
                .parse()
                .map_err(|_| format!("SMTP reply malformed: {line:?}"))?;
            text.push_str(line[4..].trim_end());
            text.push('\n');
            if line.as_bytes()[3] != b'-' {
                return Ok((code, text));
            }
        }
    }

    fn send(&mut self, line: &str) -> Result<(), String> {
        let w = self.reader.get_mut();
        w.write_all(line.as_bytes())
            .and_then(|_| w.write_all(b"\r\n"))
            .and_then(|_| w.flush())
            .map_err(|e| format!("SMTP write: {e}"))
    }

    fn expect(&mut self, line: &str, ok: &[u16]) -> Result<String, String> {
        self.send(line)?;
        let (code, text) = self.reply()?;
        if ok.contains(&code) {
            Ok(text)
        } else {
            let shown = if line.starts_with("AUTH") {
                "AUTH"
            } else {
                line
            };
            Err(format!("SMTP {shown} refused: {code} {}", text.trim()))
        }
    }
}

fn tls(host: &str, tcp: TcpStream) -> Result<Box<dyn Stream>, String> {
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| format!("TLS server name {host}: {e}"))?;
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| format!("TLS: {e}"))?;
    Ok(Box::new(rustls::StreamOwned::new(conn, tcp)))
}

/// Standard base64 with padding (RFC 4648 §4): SMTP AUTH and HTTP Basic credentials.
pub(crate) fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The message as sent: headers, blank line, dot-stuffed CRLF body.
fn message(from: &str, to: &str, subject: &str, body: &str, date: &str) -> String {
    let mut m = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {}\r\nDate: {date}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        subject.replace(['\r', '\n'], " ")
    );
    for line in body.lines() {
        if line.starts_with('.') {
            m.push('.');
        }
        m.push_str(line);
        m.push_str("\r\n");
    }
    m.push('.');
    m
}

pub fn send(cfg: &Smtp, to: &str, subject: &str, body: &str) -> Result<(), String> {
    if to.contains(['\r', '\n', '<', '>']) || cfg.from.contains(['\r', '\n', '<', '>']) {
        return Err("address contains forbidden characters".into());
    }
    let addr = (cfg.host.as_str(), cfg.port);
    let tcp = std::net::ToSocketAddrs::to_socket_addrs(&addr)
        .map_err(|e| format!("SMTP host {}: {e}", cfg.host))?
        .next()
        .ok_or_else(|| format!("SMTP host {} has no address", cfg.host))
        .and_then(|a| {
            TcpStream::connect_timeout(&a, TIMEOUT).map_err(|e| format!("SMTP connect: {e}"))
        })?;
    tcp.set_read_timeout(Some(TIMEOUT)).ok();
    tcp.set_write_timeout(Some(TIMEOUT)).ok();
    let implicit = cfg.tls == SmtpTls::Tls || (cfg.tls == SmtpTls::Auto && cfg.port == 465);
    let mut c = if implicit {
        Conn::new(tls(&cfg.host, tcp.try_clone().map_err(|e| e.to_string())?)?)
    } else {
        Conn::new(Box::new(tcp.try_clone().map_err(|e| e.to_string())?))
    };
    let (code, text) = c.reply()?;
    if code != 220 {
        return Err(format!("SMTP greeting: {code} {}", text.trim()));
    }
    let mut ehlo = c.expect("EHLO otpbox", &[250])?;
    let offers_starttls = ehlo.lines().any(|l| l.eq_ignore_ascii_case("STARTTLS"));
    let want_starttls = !implicit
        && match cfg.tls {
            SmtpTls::StartTls => true,
            SmtpTls::Auto => offers_starttls,
            _ => false,
        };
    if want_starttls {
        c.expect("STARTTLS", &[220])?;
        c = Conn::new(tls(&cfg.host, tcp)?);
        ehlo = c.expect("EHLO otpbox", &[250])?;
    }
    if !cfg.user.is_empty() {
        let _ = ehlo;
        let token = base64(format!("\0{}\0{}", cfg.user, cfg.password).as_bytes());
        c.expect(&format!("AUTH PLAIN {token}"), &[235])?;
    }
    c.expect(&format!("MAIL FROM:<{}>", cfg.from), &[250])?;
    c.expect(&format!("RCPT TO:<{to}>"), &[250, 251])?;
    c.expect("DATA", &[354])?;
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S +0000")
        .to_string();
    c.expect(&message(&cfg.from, to, subject, body, &date), &[250])?;
    let _ = c.send("QUIT");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn bodies_are_dot_stuffed() {
        let m = message("a@x", "b@y", "Hi", "line\n.hidden\nend", "D");
        assert!(m.contains("\r\n..hidden\r\n"));
        assert!(m.ends_with("end\r\n."));
    }

    /// A scripted SMTP server on loopback receives one plain message.
    #[test]
    fn sends_over_plain_smtp() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            let mut seen = Vec::new();
            w.write_all(b"220 hi\r\n").unwrap();
            let mut in_data = false;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                seen.push(line.clone());
                if in_data {
                    if line == ".\r\n" {
                        in_data = false;
                        w.write_all(b"250 queued\r\n").unwrap();
                    }
                    continue;
                }
                let reply: &[u8] = if line.starts_with("EHLO") {
                    b"250-hello\r\n250 AUTH PLAIN\r\n"
                } else if line.starts_with("AUTH") {
                    b"235 ok\r\n"
                } else if line.starts_with("DATA") {
                    in_data = true;
                    b"354 go\r\n"
                } else if line.starts_with("QUIT") {
                    w.write_all(b"221 bye\r\n").unwrap();
                    break;
                } else {
                    b"250 ok\r\n"
                };
                w.write_all(reply).unwrap();
            }
            seen
        });
        let cfg = Smtp {
            host: "127.0.0.1".into(),
            port,
            user: "u".into(),
            password: "p".into(),
            from: "otpbox@example.com".into(),
            tls: SmtpTls::None,
        };
        send(&cfg, "ann@example.com", "Verify", "Click here").unwrap();
        let seen = server.join().unwrap().concat();
        assert!(seen.contains("RCPT TO:<ann@example.com>"));
        assert!(seen.contains("AUTH PLAIN AHUAcA=="));
        assert!(seen.contains("Subject: Verify"));
        assert!(seen.contains("Click here"));
    }
}
