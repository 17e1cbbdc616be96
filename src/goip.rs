//! GoIP GSM gateways' UDP "SMS server" protocol (protocols.md §7.1), on `goip_listen`.
//!
//! Each GoIP line is configured with this server's address, a line id and a password. The
//! line id is the device's public id, optionally followed by `-N` (or `.N`) for line N
//! (default 1): line N is the device's SIM slot N. The password is the device's secret.
//! Packets:
//! - keep-alive `req:SEQ;id:LINE;pass:PASS;num:…;signal:…;gsm_status:…;…;imsi:…;iccid:…;pro:…;`
//!   is answered `reg:SEQ;status:200;` (`status:400` for an unknown line or wrong password)
//!   and marks the device seen, with the line's signal, network and state recorded;
//! - an SMS `RECEIVE:RECVID;id:LINE;password:PASS;srcnum:SENDER;msg:TEXT` (also seen without
//!   RECVID) is taken in like any gateway's (`gateway::take_in`: parts of a long SMS are
//!   joined) and acknowledged `RECEIVE RECVID OK` so the gateway stops resending; a resend
//!   with the same line and RECVID is a duplicate. A refused SMS gets no answer.
//! - anything else (`DELIVER:`, `USSD`, `RECORD:`, `HANGUP:`, …) is ignored.
//!
//! One thread, one database connection; a panic while handling a packet is caught and the
//! packet dropped.

use std::net::{SocketAddr, UdpSocket};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use rusqlite::Connection;

use crate::app::App;
use crate::domain::base::crypto::constant_time_eq;
use crate::domain::supply::devices::{self, Device, Kind};
use crate::domain::supply::gateway::{self, Event, Outcome, SimReport, Sms};
use crate::domain::Result;

/// The largest packet read; longer ones are cut (a GoIP SMS packet is far smaller).
const MAX_PACKET: usize = 8192;

/// Binds `addr` and serves it on its own thread; returns the bound address.
pub fn spawn(app: Arc<App>, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let socket = UdpSocket::bind(addr)?;
    let local = socket.local_addr()?;
    std::thread::Builder::new()
        .name("goip".into())
        .spawn(move || serve(&app, &socket))?;
    Ok(local)
}

fn serve(app: &App, socket: &UdpSocket) {
    let mut conn = loop {
        match app.connect() {
            Ok(c) => break c,
            Err(e) => {
                log::error!("goip: cannot open the database: {e}");
                std::thread::sleep(std::time::Duration::from_secs(5));
            }
        }
    };
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) => {
                log::warn!("goip: receiving: {e}");
                continue;
            }
        };
        let packet = String::from_utf8_lossy(&buf[..n]).into_owned();
        let reply = catch_unwind(AssertUnwindSafe(|| handle(app, &mut conn, &packet)));
        match reply {
            Ok(Some(r)) => {
                if let Err(e) = socket.send_to(r.as_bytes(), peer) {
                    log::info!("goip: answering {peer}: {e}");
                }
            }
            Ok(None) => {}
            Err(_) => log::error!("goip: a packet from {peer} made the handler panic; dropped"),
        }
    }
}

/// A packet the gateway sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    KeepAlive {
        seq: String,
        line: String,
        password: String,
        report: SimReport,
    },
    Receive {
        recv_id: Option<String>,
        line: String,
        password: String,
        sender: String,
        text: String,
    },
    Other,
}

/// `key:value;` fields of a packet (the first holds the packet's kind).
fn fields(s: &str) -> Vec<(&str, &str)> {
    s.split(';')
        .filter_map(|f| f.split_once(':'))
        .map(|(k, v)| (k.trim(), v))
        .collect()
}

fn field<'a>(fields: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

pub fn parse(packet: &str) -> Packet {
    let packet = packet.trim_end_matches(['\0', '\r', '\n']);
    if let Some(rest) = packet.strip_prefix("RECEIVE:") {
        // The text runs to the end of the packet and may hold `;` itself.
        let Some((head, text)) = rest.split_once(";msg:") else {
            return Packet::Other;
        };
        let f = fields(head);
        let recv_id = match head.split(';').next() {
            Some(first) if !first.contains(':') && !first.trim().is_empty() => {
                Some(first.trim().to_string())
            }
            _ => None,
        };
        let (Some(line), Some(sender)) = (field(&f, "id"), field(&f, "srcnum")) else {
            return Packet::Other;
        };
        return Packet::Receive {
            recv_id,
            line: line.trim().to_string(),
            password: field(&f, "password").unwrap_or("").to_string(),
            sender: sender.trim().to_string(),
            text: text.to_string(),
        };
    }
    if packet.starts_with("req:") {
        let f = fields(packet);
        let (Some(seq), Some(line)) = (field(&f, "req"), field(&f, "id")) else {
            return Packet::Other;
        };
        let text = |k: &str| field(&f, k).unwrap_or("").trim().to_string();
        return Packet::KeepAlive {
            seq: seq.trim().to_string(),
            line: line.trim().to_string(),
            password: field(&f, "pass").unwrap_or("").to_string(),
            report: SimReport {
                slot: 0,
                signal: field(&f, "signal").and_then(|s| s.trim().parse().ok()),
                network: text("pro"),
                state: text("gsm_status"),
                imsi: text("imsi"),
                iccid: text("iccid"),
            },
        };
    }
    Packet::Other
}

/// The device and slot a line id names: `PUBLICID`, `PUBLICID-N` or `PUBLICID.N`.
fn line_of(conn: &Connection, line: &str) -> Result<Option<(Device, i64)>> {
    let (public_id, slot) = match line.rsplit_once(['-', '.']) {
        Some((id, n)) if n.parse::<i64>().is_ok() => (id, n.parse().unwrap_or(1)),
        _ => (line, 1),
    };
    if !(1..=devices::MAX_SLOT).contains(&slot) {
        return Ok(None);
    }
    Ok(devices::by_public_id(conn, public_id)?
        .filter(|d| d.kind == Kind::Goip && d.revoked_at.is_none())
        .map(|d| (d, slot)))
}

/// The device of a line whose password is the device's secret.
fn authenticated(
    app: &App,
    conn: &Connection,
    line: &str,
    password: &str,
) -> Option<(Device, i64)> {
    match line_of(conn, line) {
        Ok(Some((d, slot))) => {
            let secret = devices::secret(&app.keys, &d.secret_salt);
            if constant_time_eq(password.trim().as_bytes(), secret.as_bytes()) {
                Some((d, slot))
            } else {
                log::info!("goip: line {line}: wrong password");
                None
            }
        }
        Ok(None) => {
            log::info!("goip: unknown line {line}");
            None
        }
        Err(e) => {
            log::error!("goip: looking up line {line}: {e}");
            None
        }
    }
}

/// Handles one packet; the answer to send back, if any.
pub fn handle(app: &App, conn: &mut Connection, packet: &str) -> Option<String> {
    let now = app.now();
    match parse(packet) {
        Packet::KeepAlive {
            seq,
            line,
            password,
            mut report,
        } => {
            let Some((device, slot)) = authenticated(app, conn, &line, &password) else {
                return Some(format!("reg:{seq};status:400;"));
            };
            report.slot = slot;
            let events = [Event::Ping, Event::Status(vec![report])];
            if gateway::check(&events, now).is_err() {
                return Some(format!("reg:{seq};status:400;"));
            }
            match crate::db::write(conn, |tx| gateway::take_in(tx, &device, &events, now)) {
                Ok(_) => Some(format!("reg:{seq};status:200;")),
                Err(e) => {
                    log::error!("goip: keep-alive of line {line}: {e}");
                    None
                }
            }
        }
        Packet::Receive {
            recv_id,
            line,
            password,
            sender,
            text,
        } => {
            let (device, slot) = authenticated(app, conn, &line, &password)?;
            let sms = Sms {
                id: recv_id.as_ref().map(|r| format!("goip:{slot}:{r}")),
                to: None,
                slot: Some(slot),
                lowest_slot: false,
                sender,
                text,
                received_at: None,
            };
            let events = [Event::Sms(sms)];
            if let Err(why) = gateway::check(&events, now) {
                log::info!("goip: line {line}: SMS refused: {why}");
                return None;
            }
            match crate::db::write(conn, |tx| gateway::take_in(tx, &device, &events, now)) {
                Ok(outcomes) => {
                    if outcomes.iter().any(|o| matches!(o, Outcome::Sms { .. })) {
                        app.notify();
                    }
                    Some(match recv_id {
                        Some(r) => format!("RECEIVE {r} OK"),
                        None => "RECEIVE OK".to_string(),
                    })
                }
                Err(e) => {
                    log::error!("goip: SMS of line {line}: {e}");
                    None
                }
            }
        }
        Packet::Other => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_parse_as_the_vendor_document_and_the_wild_send_them() {
        let ka = parse("req:12;id:abc-2;pass:s3;num:;signal:23;gsm_status:LOGIN;voip_status:LOGOUT;voip_state:IDLE;remain_time:-1;imei:86;imsi:51010;iccid:8962;pro:TELKOMSEL;");
        let Packet::KeepAlive {
            seq,
            line,
            password,
            report,
        } = ka
        else {
            panic!("{ka:?}")
        };
        assert_eq!(
            (seq.as_str(), line.as_str(), password.as_str()),
            ("12", "abc-2", "s3")
        );
        assert_eq!(report.signal, Some(23));
        assert_eq!(
            (report.network.as_str(), report.state.as_str()),
            ("TELKOMSEL", "LOGIN")
        );
        assert_eq!(report.imsi, "51010");
        let rx = parse(
            "RECEIVE:1734804704;id:abc;password:s3;srcnum:+6281;msg:Code: 1234; do not share",
        );
        assert_eq!(
            rx,
            Packet::Receive {
                recv_id: Some("1734804704".into()),
                line: "abc".into(),
                password: "s3".into(),
                sender: "+6281".into(),
                text: "Code: 1234; do not share".into(),
            }
        );
        let Packet::Receive { recv_id, line, .. } =
            parse("RECEIVE:id:1;password:secret;srcnum:+1234567890;msg:Hello, World!")
        else {
            panic!()
        };
        assert_eq!((recv_id, line.as_str()), (None, "1"));
        assert_eq!(
            parse("DELIVER:5;id:abc;password:x;sms_no:1;state:2;num:+1"),
            Packet::Other
        );
        assert_eq!(parse("garbage"), Packet::Other);
        assert_eq!(parse("RECEIVE:1;id:a;password:b"), Packet::Other);
    }
}
