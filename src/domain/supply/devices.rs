//! Operators' devices (phones and modems running gateway software) and the SIMs in them.
//!
//! A device belongs to an operator account and has a gateway kind, a public id (the
//! `{device_id}` of `/ingest/{kind}/{device_id}`) and a secret: the signing key the operator
//! types into the gateway app. Only a salt is stored; the secret is derived from it with the
//! install key. Each SIM is a row of `numbers` (source `sim`) with the device and its slot; it
//! is on sale as soon as it is registered, while its device is online. A device is online while
//! it has been seen (registered, or any authenticated request) within `offline_after`; the
//! `devices` job takes silent devices' numbers off sale, and the next request puts them back.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::domain::base::crypto::{hex, random_token, Keys};
use crate::domain::{market::catalogue, market::inbox, Error, Result};

/// The `numbers.source` of an operator's SIM.
pub const SIM_SOURCE: &str = "sim";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// SMS Gateway for Android (capcom6 / SMSGate).
    Capcom6,
    Httpsms,
    Textbee,
    /// Our own JSON format (also used by the gammu-smsd and smstools3 bridges).
    Generic,
    /// GoIP GSM gateways: the UDP "SMS server" protocol (`crate::goip`).
    Goip,
    /// Dinstar UC2000 gateways: HTTP push ("API new version").
    Dinstar,
    /// Skyline / Ejoin multi-SIM gateways: HTTP push (API v2.4).
    Ejoin,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Capcom6,
        Kind::Httpsms,
        Kind::Textbee,
        Kind::Generic,
        Kind::Goip,
        Kind::Dinstar,
        Kind::Ejoin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Capcom6 => "capcom6",
            Kind::Httpsms => "httpsms",
            Kind::Textbee => "textbee",
            Kind::Generic => "generic",
            Kind::Goip => "goip",
            Kind::Dinstar => "dinstar",
            Kind::Ejoin => "ejoin",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// What the operator installs, for pages and help texts.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Capcom6 => "SMS Gateway for Android",
            Kind::Httpsms => "httpSMS",
            Kind::Textbee => "textbee",
            Kind::Generic => "Generic JSON (gammu-smsd, smstools3, scripts)",
            Kind::Goip => "GoIP GSM gateway (UDP SMS server)",
            Kind::Dinstar => "Dinstar gateway (HTTP push)",
            Kind::Ejoin => "Skyline / Ejoin multi-SIM gateway",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Device {
    pub id: i64,
    pub public_id: String,
    pub owner_id: i64,
    pub name: String,
    pub kind: Kind,
    #[serde(skip)]
    pub secret_salt: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub last_message_at: Option<Timestamp>,
    pub online: bool,
    pub revoked_at: Option<Timestamp>,
    /// `None` until the device's first authenticated contact ("never seen").
    pub first_seen_at: Option<Timestamp>,
}

const COLS: &str = "id, public_id, owner_id, name, kind, secret_salt, created_at, last_seen_at, \
                    last_message_at, online, revoked_at, first_seen_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Device> {
    let kind: String = r.get(4)?;
    Ok(Device {
        id: r.get(0)?,
        public_id: r.get(1)?,
        owner_id: r.get(2)?,
        name: r.get(3)?,
        kind: Kind::parse(&kind).unwrap_or(Kind::Generic),
        secret_salt: r.get(5)?,
        created_at: r.get(6)?,
        last_seen_at: r.get(7)?,
        last_message_at: r.get(8)?,
        online: r.get(9)?,
        revoked_at: r.get(10)?,
        first_seen_at: r.get(11)?,
    })
}

/// The most SIM slots a device may have: 256 ports of 16 cards (a SIM bank).
pub const MAX_SLOT: i64 = 4096;

/// A SIM's slot from its label as gateways print it: a bare number is the slot itself (a
/// phone's SIM slot, a GoIP line, a Dinstar port + 1); `2B` or `2.02` (Skyline/Ejoin: port 2,
/// card B or 02) is slot (port - 1) × 16 + card, so `1A` is 1 and `2A` is 17.
pub fn parse_slot(label: &str) -> Option<i64> {
    let t = label.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let port: i64 = t[..digits_end].parse().ok()?;
    let rest = &t[digits_end..];
    if rest.is_empty() {
        return (1..=MAX_SLOT).contains(&port).then_some(port);
    }
    let card: i64 = if let Some(n) = rest.strip_prefix('.') {
        n.parse().ok()?
    } else if rest.len() == 1 && rest.as_bytes()[0].is_ascii_alphabetic() {
        i64::from(rest.to_ascii_uppercase().as_bytes()[0] - b'A') + 1
    } else {
        return None;
    };
    if !(1..=256).contains(&port) || !(1..=16).contains(&card) {
        return None;
    }
    Some((port - 1) * 16 + card)
}

/// The device's secret: the signing key (capcom6, textbee), the JWT signing key (httpSMS) or
/// the bearer token (generic). 32 hex digits, easy to paste into a phone.
pub fn secret(keys: &Keys, salt: &str) -> String {
    hex(&keys.mac(b"device-secret", salt.as_bytes())[..16])
}

/// A SIM to register: slot in the device (1-based, as the gateways number them), the number
/// with its country code, the catalogue's numeric country id, and the mobile operator code
/// ('' when unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSim {
    pub slot: i64,
    pub phone: String,
    pub country_id: i64,
    pub operator: String,
}

impl NewSim {
    /// Parses the command line's `SLOT:PHONE:COUNTRY[:OPERATOR]`.
    pub fn parse(spec: &str) -> Result<NewSim> {
        let parts: Vec<&str> = spec.split(':').map(str::trim).collect();
        let bad = || {
            Error::invalid(format!(
                "SIM '{spec}' must be SLOT:PHONE:COUNTRY (e.g. 1:+447700900123:16)"
            ))
        };
        if !(3..=4).contains(&parts.len()) {
            return Err(bad());
        }
        Ok(NewSim {
            slot: parse_slot(parts[0]).ok_or_else(bad)?,
            phone: parts[1].to_string(),
            country_id: parts[2].parse().map_err(|_| bad())?,
            operator: parts.get(3).copied().unwrap_or("").to_ascii_lowercase(),
        })
    }
}

/// A SIM as the operator's pages show it.
#[derive(Debug, Clone, Serialize)]
pub struct Sim {
    pub number_id: i64,
    pub slot: Option<i64>,
    pub phone: String,
    pub country_id: i64,
    pub operator: String,
    pub state: String,
    pub on_sale: bool,
}

pub fn get(conn: &Connection, id: i64) -> Result<Option<Device>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLS} FROM devices WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}

/// The device an ingestion URL names, if it exists and is not revoked.
pub fn by_public_id(conn: &Connection, public_id: &str) -> Result<Option<Device>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLS} FROM devices WHERE public_id = ?1 AND revoked_at IS NULL"
        ))?
        .query_row([public_id], from_row)
        .optional()?)
}

/// The device if it belongs to `owner_id` (someone else's is "not found").
pub fn get_for(conn: &Connection, owner_id: i64, id: i64) -> Result<Device> {
    match get(conn, id)? {
        Some(d) if d.owner_id == owner_id && d.revoked_at.is_none() => Ok(d),
        _ => Err(Error::NotFound("device")),
    }
}

/// An operator's devices, newest first (revoked ones left out).
pub fn list_for(conn: &Connection, owner_id: i64) -> Result<Vec<Device>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM devices WHERE owner_id = ?1 AND revoked_at IS NULL ORDER BY id DESC"
    ))?;
    let rows = stmt.query_map([owner_id], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Registers a device for an operator; returns it and its secret (shown once).
pub fn create(
    conn: &Connection,
    keys: &Keys,
    owner_id: i64,
    name: &str,
    kind: Kind,
    now: Timestamp,
) -> Result<(Device, String)> {
    let name = name.trim();
    if name.chars().count() > 60 {
        return Err(Error::invalid(
            "The device name must be at most 60 characters.",
        ));
    }
    let name = if name.is_empty() { kind.label() } else { name };
    let salt = random_token(16);
    let public_id = random_token(8);
    conn.prepare_cached(
        "INSERT INTO devices (public_id, owner_id, name, kind, secret_salt, created_at, last_seen_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?
    .execute(params![public_id, owner_id, name, kind.as_str(), salt, now])?;
    let device = get(conn, conn.last_insert_rowid())?.ok_or(Error::NotFound("device"))?;
    Ok((device, secret(keys, &salt)))
}

/// Adds a SIM to a device, or moves a number the device already has to another slot. The
/// number is on sale at once (while the device is online) at its pair's catalogue price.
pub fn add_sim(conn: &Connection, device: &Device, sim: &NewSim, now: Timestamp) -> Result<i64> {
    if !(1..=MAX_SLOT).contains(&sim.slot) {
        return Err(Error::invalid(format!(
            "The SIM slot must be between 1 and {MAX_SLOT} (or a port label such as 2B)."
        )));
    }
    let country = catalogue::country(conn, sim.country_id)?.ok_or(Error::BadCountry)?;
    let phone = inbox::digits(&sim.phone);
    if !(6..=15).contains(&phone.len()) {
        return Err(Error::invalid(
            "The phone number must have 6 to 15 digits, country code first.",
        ));
    }
    if !phone.starts_with(&country.prefix) {
        return Err(Error::invalid(format!(
            "A number in {} starts with +{}.",
            country.name, country.prefix
        )));
    }
    if !sim.operator.is_empty() && !catalogue::operator_exists(conn, sim.country_id, &sim.operator)?
    {
        return Err(Error::WrongOperator);
    }
    let existing: Option<(i64, Option<i64>)> = conn
        .prepare_cached("SELECT id, device_id FROM numbers WHERE phone = ?1")?
        .query_row([&phone], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    // The slot is taken over by the new number: the old one leaves the device.
    conn.prepare_cached(
        "UPDATE numbers SET slot = NULL, state = CASE state WHEN 'busy' THEN 'busy' ELSE 'disabled' END, \
         on_sale = 0 WHERE device_id = ?1 AND slot = ?2 AND phone <> ?3",
    )?
    .execute(params![device.id, sim.slot, phone])?;
    match existing {
        Some((id, Some(d))) if d == device.id => {
            conn.prepare_cached(
                "UPDATE numbers SET slot = ?2, country_id = ?3, operator = ?4, on_sale = ?5, \
                 state = CASE state WHEN 'disabled' THEN 'free' ELSE state END WHERE id = ?1",
            )?
            .execute(params![
                id,
                sim.slot,
                sim.country_id,
                sim.operator,
                device.online
            ])?;
            Ok(id)
        }
        Some(_) => Err(Error::Conflict(format!(
            "+{phone} is already registered here."
        ))),
        None => {
            conn.prepare_cached(
                "INSERT INTO numbers (phone, country_id, operator, source, owner_id, created_at, \
                 device_id, slot, on_sale) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                phone,
                sim.country_id,
                sim.operator,
                SIM_SOURCE,
                device.owner_id,
                now,
                device.id,
                sim.slot,
                device.online
            ])?;
            Ok(conn.last_insert_rowid())
        }
    }
}

/// The SIMs of a device, by slot.
pub fn sims(conn: &Connection, device_id: i64) -> Result<Vec<Sim>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, slot, phone, country_id, operator, state, on_sale FROM numbers \
         WHERE device_id = ?1 AND slot IS NOT NULL ORDER BY slot, id",
    )?;
    let rows = stmt.query_map([device_id], |r| {
        Ok(Sim {
            number_id: r.get(0)?,
            slot: r.get(1)?,
            phone: r.get(2)?,
            country_id: r.get(3)?,
            operator: r.get(4)?,
            state: r.get(5)?,
            on_sale: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The number in a device's slot, if one is registered there.
pub fn sim_in_slot(conn: &Connection, device_id: i64, slot: i64) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT phone FROM numbers WHERE device_id = ?1 AND slot = ?2")?
        .query_row(params![device_id, slot], |r| r.get(0))
        .optional()?)
}

/// Takes a SIM out of its device: no longer sold (an order running on it ends normally).
pub fn remove_sim(conn: &Connection, device: &Device, number_id: i64) -> Result<()> {
    let n = conn
        .prepare_cached(
            "UPDATE numbers SET slot = NULL, on_sale = 0, \
             state = CASE state WHEN 'busy' THEN 'busy' ELSE 'disabled' END \
             WHERE id = ?1 AND device_id = ?2",
        )?
        .execute(params![number_id, device.id])?;
    if n == 0 {
        return Err(Error::NotFound("SIM"));
    }
    Ok(())
}

/// An authenticated request from the device: it is online, its SIMs are on sale again.
pub fn seen(conn: &Connection, device: &Device, now: Timestamp) -> Result<()> {
    // Read with the request's authentication: a device posting many SMS a second would
    // otherwise rewrite its row (a page of the WAL) for every one of them.
    if device.online && device.first_seen_at.is_some() && device.last_seen_at >= now {
        return Ok(());
    }
    conn.prepare_cached(
        "UPDATE devices SET last_seen_at = MAX(last_seen_at, ?2), online = 1, \
         first_seen_at = COALESCE(first_seen_at, ?2) WHERE id = ?1",
    )?
    .execute(params![device.id, now])?;
    if !device.online {
        set_on_sale(conn, device.id, true)?;
    }
    Ok(())
}

/// Records what a multi-SIM gateway reports about its slots; returns how many slots hold a
/// registered SIM (reports about empty or unregistered slots are dropped).
pub fn record_status(
    conn: &Connection,
    device: &Device,
    slots: &[crate::domain::supply::gateway::SimReport],
    now: Timestamp,
) -> Result<usize> {
    let mut n = 0;
    for s in slots {
        let number: Option<i64> = conn
            .prepare_cached("SELECT id FROM numbers WHERE device_id = ?1 AND slot = ?2")?
            .query_row(params![device.id, s.slot], |r| r.get(0))
            .optional()?;
        let Some(number_id) = number else { continue };
        conn.prepare_cached(
            "INSERT INTO sim_status (number_id, signal, network, state, imsi, iccid, reported_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (number_id) DO UPDATE SET \
             signal = excluded.signal, network = excluded.network, state = excluded.state, \
             imsi = excluded.imsi, iccid = excluded.iccid, reported_at = excluded.reported_at",
        )?
        .execute(params![
            number_id, s.signal, s.network, s.state, s.imsi, s.iccid, now
        ])?;
        n += 1;
    }
    Ok(n)
}

/// What a gateway last reported about one SIM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimState {
    pub signal: Option<i64>,
    pub network: String,
    pub state: String,
    pub reported_at: Timestamp,
}

/// The last status of each of a device's SIMs, by number id.
pub fn statuses(
    conn: &Connection,
    device_id: i64,
) -> Result<std::collections::HashMap<i64, SimState>> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.number_id, s.signal, s.network, s.state, s.reported_at FROM sim_status s \
         JOIN numbers n ON n.id = s.number_id WHERE n.device_id = ?1 AND n.slot IS NOT NULL",
    )?;
    let rows = stmt.query_map([device_id], |r| {
        Ok((
            r.get(0)?,
            SimState {
                signal: r.get(1)?,
                network: r.get(2)?,
                state: r.get(3)?,
                reported_at: r.get(4)?,
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A message from the device was taken in (for "last message" and "messages today").
pub fn message_taken(conn: &Connection, device_id: i64, now: Timestamp) -> Result<()> {
    conn.prepare_cached("UPDATE devices SET last_message_at = ?2 WHERE id = ?1")?
        .execute(params![device_id, now])?;
    conn.prepare_cached(
        "INSERT INTO device_days (device_id, day, messages) VALUES (?1, ?2, 1) \
         ON CONFLICT (device_id, day) DO UPDATE SET messages = messages + 1",
    )?
    .execute(params![device_id, now.div_euclid(86_400)])?;
    Ok(())
}

/// Messages a device delivered on the (UTC) day of `now`.
pub fn messages_today(conn: &Connection, device_id: i64, now: Timestamp) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT messages FROM device_days WHERE device_id = ?1 AND day = ?2")?
        .query_row(params![device_id, now.div_euclid(86_400)], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

fn set_on_sale(conn: &Connection, device_id: i64, on: bool) -> Result<()> {
    conn.prepare_cached(
        "UPDATE numbers SET on_sale = ?2 WHERE device_id = ?1 AND slot IS NOT NULL",
    )?
    .execute(params![device_id, on])?;
    Ok(())
}

/// The `devices` job: devices silent for longer than `offline_after` seconds go offline and
/// their SIMs off sale. Returns how many went offline.
pub fn mark_silent_offline(conn: &Connection, offline_after: u64, now: Timestamp) -> Result<usize> {
    let cutoff = now - offline_after as i64;
    let silent: Vec<i64> = {
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM devices WHERE online = 1 AND revoked_at IS NULL AND last_seen_at < ?1",
        )?;
        let rows = stmt.query_map([cutoff], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for id in &silent {
        let (owner, name): (i64, String) = conn
            .prepare_cached("UPDATE devices SET online = 0 WHERE id = ?1 RETURNING owner_id, name")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        set_on_sale(conn, *id, false)?;
        crate::domain::accounts::notifications::notify(
            conn,
            owner,
            crate::domain::accounts::notifications::DEVICE_OFFLINE,
            "Device offline",
            &format!(
                "Your device \"{name}\" has sent nothing for {} minutes; its SIMs are not sold \
                 until it reports again.",
                offline_after / 60
            ),
            now,
        )?;
    }
    Ok(silent.len())
}

/// Revokes a device: its URL stops working and its SIMs leave the stock at once.
pub fn revoke(conn: &Connection, device: &Device, now: Timestamp) -> Result<()> {
    conn.prepare_cached("UPDATE devices SET revoked_at = ?2, online = 0 WHERE id = ?1")?
        .execute(params![device.id, now])?;
    set_on_sale(conn, device.id, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_numbers_or_port_labels() {
        assert_eq!(parse_slot("3"), Some(3));
        assert_eq!(parse_slot("1A"), Some(1));
        assert_eq!(parse_slot("2b"), Some(18));
        assert_eq!(parse_slot("2.02"), Some(18));
        assert_eq!(parse_slot("32.16"), Some(512));
        for bad in ["0", "", "A", "1Q", "1.17", "2.", "1AB", "5000", "-1"] {
            assert_eq!(parse_slot(bad), None, "{bad}");
        }
    }
    use crate::db;
    use crate::domain::accounts::{self, NewUser, Role};

    fn world() -> (Connection, Keys, i64) {
        let conn = db::memory();
        catalogue::seed_if_empty(&conn).unwrap();
        let u = accounts::create(
            &conn,
            &NewUser {
                email: "op@example.com",
                password_hash: None,
                role: Role::Operator,
                verified: true,
                age_confirmed: true,
                aup_accepted: true,
            },
            1000,
        )
        .unwrap();
        (conn, Keys::from_bytes([7; 32]), u.id)
    }

    fn on_sale(conn: &Connection, phone: &str) -> bool {
        conn.query_row(
            &format!(
                "SELECT COUNT(*) FROM numbers n WHERE phone = ?1 AND {}",
                catalogue::NUMBER_USABLE
            ),
            [phone],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            == 1
    }

    #[test]
    fn sim_spec_parses_and_rejects() {
        assert_eq!(
            NewSim::parse("1:+44 7700 900123:16").unwrap(),
            NewSim {
                slot: 1,
                phone: "+44 7700 900123".into(),
                country_id: 16,
                operator: String::new()
            }
        );
        assert_eq!(
            NewSim::parse("2:79001234567:0:MTS").unwrap().operator,
            "mts"
        );
        for bad in ["", "1", "x:1:2", "1:2", "1:2:y", "1:2:3:4:5"] {
            assert!(NewSim::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_is_derived_and_stable() {
        let (conn, keys, op) = world();
        let (d, s) = create(&conn, &keys, op, "Pixel", Kind::Capcom6, 1000).unwrap();
        assert_eq!(s.len(), 32);
        assert_eq!(secret(&keys, &d.secret_salt), s);
        let (d2, s2) = create(&conn, &keys, op, "", Kind::Generic, 1000).unwrap();
        assert_ne!(s, s2);
        assert_ne!(d.public_id, d2.public_id);
        assert_eq!(d2.name, Kind::Generic.label());
        let stored: String = conn
            .query_row("SELECT group_concat(secret_salt) FROM devices", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(!stored.contains(&s));
    }

    #[test]
    fn sims_are_on_sale_while_the_device_is_online() {
        let (conn, keys, op) = world();
        let (d, _) = create(&conn, &keys, op, "Pixel", Kind::Capcom6, 1000).unwrap();
        let sim = NewSim::parse("1:+447700900123:16").unwrap();
        add_sim(&conn, &d, &sim, 1000).unwrap();
        assert!(on_sale(&conn, "447700900123"));
        assert_eq!(
            sim_in_slot(&conn, d.id, 1).unwrap().as_deref(),
            Some("447700900123")
        );
        assert_eq!(mark_silent_offline(&conn, 600, 1500).unwrap(), 0);
        assert_eq!(mark_silent_offline(&conn, 600, 1601).unwrap(), 1);
        assert!(!on_sale(&conn, "447700900123"));
        let d = get(&conn, d.id).unwrap().unwrap();
        assert!(!d.online);
        seen(&conn, &d, 1700).unwrap();
        assert!(on_sale(&conn, "447700900123"));
        message_taken(&conn, d.id, 1700).unwrap();
        message_taken(&conn, d.id, 1701).unwrap();
        assert_eq!(messages_today(&conn, d.id, 1702).unwrap(), 2);
        assert_eq!(messages_today(&conn, d.id, 1702 + 86_400).unwrap(), 0);
    }

    #[test]
    fn the_owner_is_told_when_a_device_goes_offline() {
        use crate::domain::accounts::notifications::{self as n, NewChannel};
        let (conn, keys, op) = world();
        let channel = NewChannel {
            kind: "email",
            events: vec![n::DEVICE_OFFLINE],
            ..NewChannel::default()
        };
        n::create(&conn, &keys, op, Role::Operator, &channel, false, 1000).unwrap();
        create(&conn, &keys, op, "Pixel", Kind::Capcom6, 1000).unwrap();
        assert_eq!(mark_silent_offline(&conn, 600, 1601).unwrap(), 1);
        let due = n::due(&conn, &keys, 1601, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].title, "Device offline");
        assert!(due[0]
            .body
            .contains("\"Pixel\" has sent nothing for 10 minutes"));
        // Once: it is offline now.
        assert_eq!(mark_silent_offline(&conn, 600, 1700).unwrap(), 0);
    }

    #[test]
    fn a_number_belongs_to_one_device_and_a_slot_to_one_number() {
        let (conn, keys, op) = world();
        let (a, _) = create(&conn, &keys, op, "A", Kind::Generic, 1000).unwrap();
        let (b, _) = create(&conn, &keys, op, "B", Kind::Generic, 1000).unwrap();
        add_sim(
            &conn,
            &a,
            &NewSim::parse("1:447700900123:16").unwrap(),
            1000,
        )
        .unwrap();
        let err = add_sim(
            &conn,
            &b,
            &NewSim::parse("1:447700900123:16").unwrap(),
            1000,
        );
        assert!(matches!(err, Err(Error::Conflict(_))));
        // Same number again: kept, slot moved.
        let id = add_sim(
            &conn,
            &a,
            &NewSim::parse("2:447700900123:16").unwrap(),
            1000,
        )
        .unwrap();
        assert_eq!(sims(&conn, a.id).unwrap()[0].slot, Some(2));
        // A new SIM in slot 2 replaces it.
        add_sim(
            &conn,
            &a,
            &NewSim::parse("2:447700900999:16").unwrap(),
            1000,
        )
        .unwrap();
        let list = sims(&conn, a.id).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].phone, "447700900999");
        assert!(!on_sale(&conn, "447700900123"));
        // Bad input changes nothing.
        for bad in [
            "0:447700900555:16",
            "1:12:16",
            "1:337700900555:16",
            "1:447700900555:99999",
        ] {
            assert!(
                NewSim::parse(bad)
                    .and_then(|s| add_sim(&conn, &a, &s, 1000))
                    .is_err(),
                "{bad}"
            );
        }
        remove_sim(&conn, &a, list[0].number_id).unwrap();
        assert!(sims(&conn, a.id).unwrap().is_empty());
        assert!(remove_sim(&conn, &b, id).is_err());
        revoke(&conn, &a, 2000).unwrap();
        assert!(by_public_id(&conn, &a.public_id).unwrap().is_none());
        assert!(get_for(&conn, op, a.id).is_err());
    }
}
