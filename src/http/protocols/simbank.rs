//! Multi-SIM gateways that push SMS over HTTP to `/ingest/{kind}/{device_id}`
//! (protocols.md §7.2, §7.3): Dinstar UC2000 ("API new version": `{"sn", "sms": [...]}`,
//! ports numbered from 0, so port P is slot P + 1) and Skyline / Ejoin (API v2.4:
//! `{"type": "recv-sms", "sms": [[flag, port, time, sender, recipient, base64 text]]}` and
//! `{"type": "dev-status", "status": [...]}`, ports labelled `1A` or `1.01`, see
//! `devices::parse_slot`). Neither signs its pushes, so the device's secret is the credential
//! either as the password of HTTP Basic authentication (any user name) or as `?token=` in the
//! URL configured on the gateway; both compared in constant time.

use serde_json::{Map, Value};

use crate::domain::base::crypto::constant_time_eq;
use crate::domain::supply::devices::parse_slot;
use crate::domain::supply::gateway::{Event, SimReport, Sms};
use crate::http::Request;

type Obj = Map<String, Value>;

/// The device secret as Basic password or `token` query parameter.
pub fn authenticate(req: &Request, secret: &str) -> Result<(), String> {
    let key = secret.as_bytes();
    if let Some(token) = req.query_param("token") {
        return if constant_time_eq(token.as_bytes(), key) {
            Ok(())
        } else {
            Err("The token in the URL is not this device's secret.".into())
        };
    }
    let basic = req
        .header("authorization")
        .and_then(|h| h.trim().strip_prefix("Basic "))
        .and_then(|b| super::ingest::base64_decode(b.trim()))
        .and_then(|b| String::from_utf8(b).ok());
    match basic.as_deref().and_then(|s| s.split_once(':')) {
        Some((_, password)) if constant_time_eq(password.as_bytes(), key) => Ok(()),
        Some(_) => Err("The Basic password is not this device's secret.".into()),
        None => Err(
            "Credentials are required: HTTP Basic with the device secret as password, or \
             ?token=SECRET in the push URL."
                .into(),
        ),
    }
}

fn object(body: &[u8]) -> Result<Obj, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err("The body must be a JSON object.".into()),
        Err(e) => Err(format!("The body is not valid JSON: {e}")),
    }
}

/// A JSON string, or a number as text.
fn text_of(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn int_of(v: Option<&Value>) -> Option<i64> {
    text_of(v).and_then(|t| t.trim().parse().ok())
}

/// Dinstar: `sms` (received messages), `register` (which SIM is in which port); anything
/// else (`sms_result`, `sms_deliver_status`, `ussd`) is acknowledged and ignored.
pub fn dinstar(body: &[u8]) -> Result<Vec<Event>, String> {
    let o = object(body)?;
    let sn = text_of(o.get("sn")).unwrap_or_default();
    if let Some(list) = o.get("sms") {
        let list = list.as_array().ok_or("sms must be an array.")?;
        return list
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let at = format!("sms[{i}].");
                let m = m
                    .as_object()
                    .ok_or_else(|| format!("{at} must be an object."))?;
                let port = int_of(m.get("port"))
                    .filter(|p| (0..4096).contains(p))
                    .ok_or_else(|| format!("{at}port must be a port number."))?;
                let id = int_of(m.get("incoming_sms_id")).map(|id| format!("dinstar:{sn}:{id}"));
                Ok(Event::Sms(Sms {
                    id,
                    to: None,
                    slot: Some(port + 1),
                    lowest_slot: false,
                    sender: text_of(m.get("number"))
                        .ok_or_else(|| format!("{at}number (the sender) is missing."))?,
                    text: text_of(m.get("text")).ok_or_else(|| format!("{at}text is missing."))?,
                    // The gateway's local time without a zone: our clock is used instead.
                    received_at: None,
                }))
            })
            .collect();
    }
    if let Some(list) = o.get("register") {
        let list = list.as_array().ok_or("register must be an array.")?;
        let slots = list
            .iter()
            .filter_map(Value::as_object)
            .filter_map(|r| {
                let port = int_of(r.get("port")).filter(|p| (0..4096).contains(p))?;
                Some(SimReport {
                    slot: port + 1,
                    signal: None,
                    network: text_of(r.get("operator")).unwrap_or_default(),
                    state: text_of(r.get("status")).unwrap_or_default(),
                    imsi: text_of(r.get("imsi")).unwrap_or_default(),
                    iccid: text_of(r.get("iccid")).unwrap_or_default(),
                })
            })
            .collect();
        return Ok(vec![Event::Status(slots)]);
    }
    let kind = o.keys().find(|k| *k != "sn").cloned().unwrap_or_default();
    Ok(vec![Event::Ignored(kind)])
}

/// Skyline / Ejoin: `recv-sms` (flag 0 an SMS, 1 a delivery report, ignored) and
/// `dev-status`; other types are acknowledged and ignored.
pub fn ejoin(body: &[u8]) -> Result<Vec<Event>, String> {
    let o = object(body)?;
    let kind = text_of(o.get("type")).unwrap_or_default();
    match kind.as_str() {
        "recv-sms" => {
            let list = o
                .get("sms")
                .and_then(Value::as_array)
                .ok_or("sms must be an array.")?;
            let mut out = Vec::new();
            for (i, row) in list.iter().enumerate() {
                let bad = |what: &str| format!("sms[{i}]: {what}");
                let row = row
                    .as_array()
                    .filter(|r| r.len() >= 6)
                    .ok_or_else(|| bad("must be [flag, port, time, sender, recipient, text]"))?;
                if int_of(row.first()) == Some(1) {
                    continue; // a delivery report
                }
                let port = text_of(row.get(1)).unwrap_or_default();
                let slot = parse_slot(&port).ok_or_else(|| bad("port is not a port label"))?;
                let text = text_of(row.get(5))
                    .and_then(|t| super::ingest::base64_decode(t.trim()))
                    .ok_or_else(|| bad("text must be base64"))?;
                let recipient = text_of(row.get(4)).filter(|r| !r.trim().is_empty());
                out.push(Event::Sms(Sms {
                    id: None,
                    to: recipient,
                    slot: Some(slot),
                    lowest_slot: false,
                    sender: text_of(row.get(3)).ok_or_else(|| bad("sender is missing"))?,
                    text: String::from_utf8_lossy(&text).into_owned(),
                    received_at: int_of(row.get(2)),
                }));
            }
            Ok(out)
        }
        "dev-status" => {
            let list = o
                .get("status")
                .and_then(Value::as_array)
                .ok_or("status must be an array.")?;
            let slots = list
                .iter()
                .filter_map(Value::as_object)
                .filter_map(|p| {
                    Some(SimReport {
                        slot: parse_slot(&text_of(p.get("port"))?)?,
                        signal: int_of(p.get("sig")),
                        network: text_of(p.get("opr")).unwrap_or_default(),
                        state: text_of(p.get("st")).unwrap_or_default(),
                        imsi: text_of(p.get("imsi")).unwrap_or_default(),
                        iccid: text_of(p.get("iccid")).unwrap_or_default(),
                    })
                })
                .collect();
            Ok(vec![Event::Status(slots)])
        }
        other => Ok(vec![Event::Ignored(other.to_string())]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    #[test]
    fn dinstar_pushes_messages_by_port_and_the_sims_it_registered() {
        let body = br#"{"sn":"dbd2-0325-0044-0088","sms":[{"incoming_sms_id":7,"port":2,
            "number":"+6281100","smsc":"+6281","timestamp":"2016-07-12 15:46:18","text":"code 4711"}]}"#;
        let events = dinstar(body).unwrap();
        let Event::Sms(s) = &events[0] else { panic!() };
        assert_eq!(s.slot, Some(3));
        assert_eq!(s.id.as_deref(), Some("dinstar:dbd2-0325-0044-0088:7"));
        assert_eq!(
            (s.sender.as_str(), s.text.as_str()),
            ("+6281100", "code 4711")
        );
        let reg = dinstar(br#"{"sn":"x","register":[{"port":0,"imsi":"510101234"}]}"#).unwrap();
        assert!(matches!(&reg[0], Event::Status(s) if s[0].slot == 1 && s[0].imsi == "510101234"));
        assert_eq!(
            dinstar(br#"{"sn":"x","sms_result":[]}"#).unwrap(),
            vec![Event::Ignored("sms_result".into())]
        );
        assert!(dinstar(br#"{"sms":[{"port":1,"text":"x"}]}"#).is_err());
    }

    #[test]
    fn ejoin_decodes_base64_and_skips_delivery_reports() {
        // "Kode: 990011" in base64.
        let body = br#"{"type":"recv-sms","sms_num":2,"sms":[
            [0,"2B",1700000000,"Bank","6281200","S29kZTogOTkwMDEx"],
            [1,"2B",1700000001,"Bank","6281200","b2s="]]}"#;
        let events = ejoin(body).unwrap();
        assert_eq!(events.len(), 1);
        let Event::Sms(s) = &events[0] else { panic!() };
        assert_eq!(s.text, "Kode: 990011");
        assert_eq!(s.slot, Some(18));
        assert_eq!(s.to.as_deref(), Some("6281200"));
        assert_eq!(s.received_at, Some(1_700_000_000));
        let st = ejoin(br#"{"type":"dev-status","mac":"m","status":[{"port":"1.01","st":3,"imsi":"i","iccid":"c","opr":"Telkomsel","sig":21}]}"#).unwrap();
        assert!(
            matches!(&st[0], Event::Status(s) if s[0].slot == 1 && s[0].signal == Some(21) && s[0].network == "Telkomsel")
        );
        assert!(ejoin(br#"{"type":"recv-sms","sms":[[0,"zz",1,"a","b","!!"]]}"#).is_err());
    }

    #[test]
    fn the_secret_is_the_basic_password_or_the_url_token() {
        let basic = |v: &str| {
            Request::fake(Method::Post, "/ingest/ejoin/d", b"").with_header("Authorization", v)
        };
        // "admin:s3cret" and "admin:wrong".
        assert!(authenticate(&basic("Basic YWRtaW46czNjcmV0"), "s3cret").is_ok());
        assert!(authenticate(&basic("Basic YWRtaW46d3Jvbmc="), "s3cret").is_err());
        let url = |q: &str| Request::fake(Method::Post, &format!("/ingest/ejoin/d?{q}"), b"");
        assert!(authenticate(&url("token=s3cret"), "s3cret").is_ok());
        assert!(authenticate(&url("token=nope"), "s3cret").is_err());
        assert!(authenticate(&url(""), "s3cret").is_err());
    }
}
