//! What an operator's device tells us, once `http/protocols/ingest.rs` has authenticated the request and
//! parsed the gateway's format: SMS to take in, the device's SIM list, heartbeats.
//!
//! [`take_in`] runs in the request's transaction. It marks the device seen (its SIMs go back
//! on sale if it was offline), resolves each SMS's receiving number ([`receiving_number`]: the
//! number the gateway names, else the SIM in the slot it names, else the device's only SIM;
//! textbee: the SIM in the lowest slot), and hands it to [`inbox::ingest`] scoped to the device, de-duplicated by
//! the gateway's message id under the source `gateway:<device id>`. A SIM list (capcom6's
//! `app:started`) registers the numbers the phone knows and drops the slots it no longer has.
//!
//! Every field is bounded before anything is written ([`check`]: ids, texts, numbers,
//! times, slots). A delivery without an id is de-duplicated by a hash of what it says
//! ([`dedup_id`]), so a gateway replaying it does not store it again.

use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::clock::Timestamp;
use crate::domain::base::crypto::hex;
use crate::domain::market::inbox::{self, Delivered, Inbound};
use crate::domain::supply::devices::{self, Device, NewSim};
use crate::domain::supply::parts;
use crate::domain::{market::catalogue, Error, Result};

/// One SMS as a gateway reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    /// The gateway's unique id of this message (de-duplication), when it sends one.
    pub id: Option<String>,
    /// The receiving number, when the gateway knows it.
    pub to: Option<String>,
    /// The receiving SIM's slot (1-based), when the gateway knows it.
    pub slot: Option<i64>,
    /// The gateway never names the receiving SIM (textbee): take the lowest slot's.
    pub lowest_slot: bool,
    pub sender: String,
    pub text: String,
    pub received_at: Option<Timestamp>,
}

/// A SIM card a phone reports; `phone` is `None` when Android does not know its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedSim {
    pub slot: i64,
    pub phone: Option<String>,
    /// The network's name as the phone shows it; used as the operator when the catalogue
    /// knows one of that code in the country.
    pub carrier: String,
}

/// What a multi-SIM gateway reports about the SIM in one slot (GoIP keep-alive, Ejoin
/// `dev-status`, Dinstar `register`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimReport {
    pub slot: i64,
    /// 0..31 (GSM CSQ), when reported.
    pub signal: Option<i64>,
    /// The network the SIM is registered on.
    pub network: String,
    /// The gateway's word for the port's state (`LOGIN`, a status code).
    pub state: String,
    pub imsi: String,
    pub iccid: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Sms(Sms),
    Sims(Vec<ReportedSim>),
    /// Per-slot status of a multi-SIM gateway.
    Status(Vec<SimReport>),
    /// A heartbeat: the device is alive.
    Ping,
    /// An event of the gateway we do not use (sent, delivered, ...): acknowledged.
    Ignored(String),
}

/// What became of a SIM list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimSync {
    /// Numbers now registered in their slots (new or confirmed).
    pub registered: Vec<String>,
    /// SIMs taken out because their slot is no longer reported.
    pub removed: Vec<String>,
    /// Cards that could not be registered, with the reason.
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sms {
        id: Option<String>,
        delivered: Delivered,
    },
    /// A part of a long SMS, held until the rest arrives ([`parts`]).
    Part {
        id: Option<String>,
    },
    /// Slot statuses recorded (how many slots had a registered SIM).
    Status(usize),
    Sims(SimSync),
    Ping,
    Ignored(String),
}

/// The `inbound_seen` source of a device's messages.
pub fn source(device: &Device) -> String {
    source_of(device.id)
}

fn source_of(device_id: i64) -> String {
    format!("gateway:{device_id}")
}

/// Longest gateway message id accepted, in bytes.
pub const MAX_ID: usize = 200;
/// Longest SMS text accepted: a concatenated SMS of 255 parts of 153 GSM characters.
pub const MAX_TEXT: usize = 255 * 153;
/// Longest sender or receiving number accepted (alphanumeric senders are at most 11).
pub const MAX_ADDRESS: usize = 64;
/// How far a reported receive time may lie from our clock: a phone that was offline for
/// months may still deliver what it queued; nothing comes from the future.
pub const MAX_AGE: Timestamp = 366 * 86_400;
pub const MAX_AHEAD: Timestamp = 86_400;
/// Highest SIM slot a device may name.
pub const MAX_SLOT: i64 = devices::MAX_SLOT;
/// An id-less delivery without a time is the same message when it repeats within this
/// window (checked against the current and the previous window).
pub const IDLESS_WINDOW: Timestamp = 600;

/// Refuses a delivery with a field out of range, saying which (a 400 for the gateway).
pub fn check(events: &[Event], now: Timestamp) -> std::result::Result<(), String> {
    for event in events {
        match event {
            Event::Sms(sms) => {
                if sms.id.as_ref().is_some_and(|id| id.len() > MAX_ID) {
                    return Err(format!("message id longer than {MAX_ID} bytes"));
                }
                if sms.text.chars().count() > MAX_TEXT {
                    return Err(format!("text longer than {MAX_TEXT} characters"));
                }
                if sms.sender.chars().count() > MAX_ADDRESS
                    || sms
                        .to
                        .as_ref()
                        .is_some_and(|t| t.chars().count() > MAX_ADDRESS)
                {
                    return Err(format!(
                        "sender or number longer than {MAX_ADDRESS} characters"
                    ));
                }
                if sms.slot.is_some_and(|s| !(0..=MAX_SLOT).contains(&s)) {
                    return Err(format!("SIM slot outside 0..{MAX_SLOT}"));
                }
                if let Some(t) = sms.received_at {
                    if t < now - MAX_AGE || t > now + MAX_AHEAD {
                        return Err(
                            "received time more than a year before or a day after now".into()
                        );
                    }
                }
            }
            Event::Sims(cards) => {
                for c in cards {
                    if !(0..=MAX_SLOT).contains(&c.slot)
                        || c.phone
                            .as_ref()
                            .is_some_and(|p| p.chars().count() > MAX_ADDRESS)
                        || c.carrier.chars().count() > MAX_ADDRESS
                    {
                        return Err("SIM entry out of range (slot, number or carrier)".into());
                    }
                }
            }
            Event::Status(slots) => {
                for s in slots {
                    if !(0..=MAX_SLOT).contains(&s.slot)
                        || s.signal.is_some_and(|g| !(0..=199).contains(&g))
                        || [&s.network, &s.state, &s.imsi, &s.iccid]
                            .iter()
                            .any(|f| f.chars().count() > MAX_ADDRESS)
                    {
                        return Err("SIM status out of range (slot, signal or a field)".into());
                    }
                }
            }
            Event::Ping | Event::Ignored(_) => {}
        }
    }
    Ok(())
}

/// The de-duplication id of an SMS: the gateway's own, else `h:` and a hash of the device,
/// receiving number, sender, text and reported time, or, without a time, the window of now
/// it arrived in (then `previous` is the id it would have had in the window before).
pub fn dedup_id(device_id: i64, to: &str, sms: &Sms, now: Timestamp) -> (String, Option<String>) {
    if let Some(id) = sms.id.as_ref().filter(|s| !s.is_empty()) {
        return (id.clone(), None);
    }
    let hash = |when: &str| {
        let mut h = Sha256::new();
        for part in [&device_id.to_string(), to, &sms.sender, &sms.text, when] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        format!("h:{}", hex(&h.finalize()[..16]))
    };
    match sms.received_at {
        Some(t) => (hash(&format!("at {t}")), None),
        None => {
            let window = now.div_euclid(IDLESS_WINDOW);
            (
                hash(&format!("window {window}")),
                Some(hash(&format!("window {}", window - 1))),
            )
        }
    }
}

/// Takes in what an authenticated request of `device` carried. Call inside `db::write`.
pub fn take_in(
    conn: &Connection,
    device: &Device,
    events: &[Event],
    now: Timestamp,
) -> Result<Vec<Outcome>> {
    devices::seen(conn, device, now)?;
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        out.push(match event {
            Event::Sms(sms) => {
                let to = receiving_number(conn, device, sms)?.unwrap_or_default();
                let (id, previous) = dedup_id(device.id, &to, sms, now);
                let src = source(device);
                let replayed = inbox::seen(conn, &src, &id)?
                    || match &previous {
                        Some(p) => inbox::seen(conn, &src, p)?,
                        None => false,
                    };
                let at = sms.received_at.unwrap_or(now);
                let step = if replayed {
                    parts::Step::Duplicate
                } else {
                    let part = parts::Part {
                        device_id: device.id,
                        recipient: &to,
                        sender: &sms.sender,
                        text: &sms.text,
                        received_at: at,
                        id: &id,
                    };
                    let (stale, step) = parts::offer(conn, part, now)?;
                    if let Some(j) = stale {
                        take_joined(conn, &j, now)?;
                    }
                    step
                };
                let delivered = match step {
                    parts::Step::Duplicate => Delivered::Duplicate,
                    parts::Step::Held => {
                        out.push(Outcome::Part { id: sms.id.clone() });
                        continue;
                    }
                    parts::Step::Complete(j) => take_joined(conn, &j, now)?,
                    parts::Step::Alone => {
                        let d = inbox::ingest(
                            conn,
                            &Inbound {
                                to,
                                sender: sms.sender.clone(),
                                text: sms.text.clone(),
                                received_at: at,
                                source: src,
                                source_msg_id: Some(id),
                                device_id: Some(device.id),
                            },
                            now,
                        )?;
                        if d != Delivered::Duplicate {
                            devices::message_taken(conn, device.id, now)?;
                        }
                        d
                    }
                };
                Outcome::Sms {
                    id: sms.id.clone(),
                    delivered,
                }
            }
            Event::Status(slots) => {
                Outcome::Status(devices::record_status(conn, device, slots, now)?)
            }
            Event::Sims(cards) => Outcome::Sims(sync_sims(conn, device, cards, now)?),
            Event::Ping => Outcome::Ping,
            Event::Ignored(what) => Outcome::Ignored(what.clone()),
        });
    }
    Ok(out)
}

/// Takes in a long SMS put together from its parts, remembering every part's id so that a
/// replayed part is a duplicate. Call inside `db::write`.
pub fn take_joined(conn: &Connection, j: &parts::Joined, now: Timestamp) -> Result<Delivered> {
    let src = source_of(j.device_id);
    for id in &j.ids {
        inbox::remember(conn, &src, id, now)?;
    }
    let d = inbox::ingest(
        conn,
        &Inbound {
            to: j.recipient.clone(),
            sender: j.sender.clone(),
            text: j.text.chars().take(MAX_TEXT).collect(),
            received_at: j.received_at,
            source: src,
            source_msg_id: Some(j.id()),
            device_id: Some(j.device_id),
        },
        now,
    )?;
    if d != Delivered::Duplicate {
        devices::message_taken(conn, j.device_id, now)?;
    }
    Ok(d)
}

/// The number an SMS reached. A named number is taken as it is (scope is checked by
/// `ingest`), except that a national form of one of the device's SIMs (`0812…` for
/// `62812…`) means that SIM. Else the SIM in the named slot: a slot with no SIM registered
/// means an unknown number (the SMS reached a SIM nobody sells). Else, with no slot named,
/// the device's only SIM (textbee: the lowest slot's). `None` when it cannot tell.
pub fn receiving_number(conn: &Connection, device: &Device, sms: &Sms) -> Result<Option<String>> {
    let sims = devices::sims(conn, device.id)?;
    if let Some(to) = sms.to.as_deref() {
        let digits = inbox::digits(to);
        if !digits.is_empty() {
            let national = digits.trim_start_matches('0');
            let own = sims.iter().find(|s| {
                s.phone == digits
                    || (digits.starts_with('0')
                        && national.len() >= 7
                        && s.phone.ends_with(national))
            });
            return Ok(Some(own.map_or(digits, |s| s.phone.clone())));
        }
    }
    if let Some(slot) = sms.slot {
        return devices::sim_in_slot(conn, device.id, slot);
    }
    if sms.lowest_slot {
        // `sims` is ordered by slot.
        return Ok(sims.into_iter().next().map(|s| s.phone));
    }
    Ok(match sims.as_slice() {
        [only] => Some(only.phone.clone()),
        _ => None,
    })
}

/// Registers the SIMs a phone reports (capcom6 `app:started`). A card with a number is put in
/// its slot: a number the device already has keeps its country and operator; a new one gets
/// the country of the longest matching dialing prefix (see [`country_for`]). Cards without a
/// number are left as the operator registered them. Registered SIMs in slots the phone no
/// longer reports are taken out. An empty list changes nothing (the app may lack permission
/// to read the SIMs).
pub fn sync_sims(
    conn: &Connection,
    device: &Device,
    cards: &[ReportedSim],
    now: Timestamp,
) -> Result<SimSync> {
    let mut sync = SimSync::default();
    if cards.is_empty() {
        return Ok(sync);
    }
    for card in cards {
        let Some(phone) = card.phone.as_deref().map(inbox::digits) else {
            continue;
        };
        if phone.is_empty() {
            continue;
        }
        let known: Option<(Option<i64>, i64, String)> = {
            use rusqlite::OptionalExtension;
            conn.prepare_cached(
                "SELECT device_id, country_id, operator FROM numbers WHERE phone = ?1",
            )?
            .query_row([&phone], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?
        };
        let (country_id, operator) = match known {
            Some((Some(d), country, op)) if d == device.id => (country, op),
            Some(_) => {
                sync.skipped
                    .push(format!("+{phone}: already registered elsewhere"));
                continue;
            }
            None => {
                let Some(country) = country_for(conn, device.id, &phone)? else {
                    sync.skipped
                        .push(format!("+{phone}: no country with that dialing code"));
                    continue;
                };
                let carrier = card.carrier.trim().to_ascii_lowercase();
                let op = if !carrier.is_empty()
                    && catalogue::operator_exists(conn, country, &carrier)?
                {
                    carrier
                } else {
                    String::new()
                };
                (country, op)
            }
        };
        let sim = NewSim {
            slot: card.slot,
            phone: phone.clone(),
            country_id,
            operator,
        };
        // A card refused halfway must not leave half its changes behind.
        conn.execute_batch("SAVEPOINT sim_card")?;
        match devices::add_sim(conn, device, &sim, now) {
            Ok(_) => {
                conn.execute_batch("RELEASE sim_card")?;
                sync.registered.push(phone);
            }
            Err(Error::Db(e)) => {
                conn.execute_batch("ROLLBACK TO sim_card; RELEASE sim_card")?;
                return Err(Error::Db(e));
            }
            Err(e) => {
                conn.execute_batch("ROLLBACK TO sim_card; RELEASE sim_card")?;
                sync.skipped.push(format!("+{phone}: {e}"));
            }
        }
    }
    for sim in devices::sims(conn, device.id)? {
        let Some(slot) = sim.slot else { continue };
        if !cards.iter().any(|c| c.slot == slot) {
            devices::remove_sim(conn, device, sim.number_id)?;
            sync.removed.push(sim.phone);
        }
    }
    Ok(sync)
}

/// The catalogue country of a number by its longest matching dialing prefix. Several countries
/// share some prefixes (+1, +7): then one the device's SIMs are already in wins, else the
/// lowest catalogue id. `None` when no prefix matches.
pub fn country_for(conn: &Connection, device_id: i64, phone: &str) -> Result<Option<i64>> {
    let countries = catalogue::countries(conn)?;
    let best = countries
        .iter()
        .filter(|c| !c.prefix.is_empty() && phone.starts_with(&c.prefix))
        .map(|c| c.prefix.len())
        .max();
    let Some(len) = best else {
        return Ok(None);
    };
    let mut candidates: Vec<i64> = countries
        .iter()
        .filter(|c| c.prefix.len() == len && phone.starts_with(&c.prefix))
        .map(|c| c.id)
        .collect();
    candidates.sort_unstable();
    let used: Vec<i64> = devices::sims(conn, device_id)?
        .into_iter()
        .map(|s| s.country_id)
        .collect();
    Ok(candidates
        .iter()
        .copied()
        .find(|c| used.contains(c))
        .or(candidates.first().copied()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::testing::account_at;
    use crate::domain::accounts::Role;
    use crate::domain::base::crypto::Keys;
    use crate::domain::supply::devices::Kind;

    fn world() -> (Connection, Keys, i64) {
        let conn = db::memory();
        catalogue::seed_if_empty(&conn).unwrap();
        let op = account_at(&conn, "op@example.com", Role::Operator, 1000);
        (conn, Keys::from_bytes([7; 32]), op)
    }

    fn sms(to: Option<&str>, slot: Option<i64>) -> Sms {
        Sms {
            id: None,
            to: to.map(str::to_string),
            slot,
            lowest_slot: false,
            sender: "Telegram".into(),
            text: "Telegram code: 12345".into(),
            received_at: None,
        }
    }

    fn card(slot: i64, phone: Option<&str>) -> ReportedSim {
        ReportedSim {
            slot,
            phone: phone.map(str::to_string),
            carrier: String::new(),
        }
    }

    #[test]
    fn the_receiving_number_is_named_or_found_by_slot_or_is_the_only_sim() {
        let (conn, keys, op) = world();
        let (d, _) = devices::create(&conn, &keys, op, "Pixel", Kind::Capcom6, 1000).unwrap();
        assert_eq!(
            receiving_number(&conn, &d, &sms(None, Some(1))).unwrap(),
            None
        );
        devices::add_sim(
            &conn,
            &d,
            &NewSim::parse("2:447700900222:16").unwrap(),
            1000,
        )
        .unwrap();
        let only = Some("447700900222".to_string());
        assert_eq!(receiving_number(&conn, &d, &sms(None, None)).unwrap(), only);
        assert_eq!(
            receiving_number(&conn, &d, &sms(None, Some(2))).unwrap(),
            only
        );
        // An SMS to a slot nobody registered is not the only SIM's.
        assert_eq!(
            receiving_number(&conn, &d, &sms(None, Some(1))).unwrap(),
            None
        );
        // A named number wins over the slot; the national form of an own SIM is that SIM.
        assert_eq!(
            receiving_number(&conn, &d, &sms(Some("+1 555"), Some(2))).unwrap(),
            Some("1555".to_string())
        );
        assert_eq!(
            receiving_number(&conn, &d, &sms(Some("07700 900222"), None)).unwrap(),
            only
        );
        assert_eq!(
            receiving_number(&conn, &d, &sms(Some("0222"), None)).unwrap(),
            Some("0222".to_string())
        );
        devices::add_sim(
            &conn,
            &d,
            &NewSim::parse("3:447700900333:16").unwrap(),
            1000,
        )
        .unwrap();
        assert_eq!(receiving_number(&conn, &d, &sms(None, None)).unwrap(), None);
        assert_eq!(
            receiving_number(&conn, &d, &sms(None, Some(3)))
                .unwrap()
                .as_deref(),
            Some("447700900333")
        );
        let mut lowest = sms(None, None);
        lowest.lowest_slot = true;
        assert_eq!(receiving_number(&conn, &d, &lowest).unwrap(), only);
    }

    #[test]
    fn a_device_delivers_only_within_its_scope() {
        let (conn, keys, op) = world();
        let other = account_at(&conn, "other@example.com", Role::Operator, 1000);
        let (d, _) = devices::create(&conn, &keys, op, "A", Kind::Generic, 1000).unwrap();
        let (d2, _) = devices::create(&conn, &keys, op, "B", Kind::Generic, 1000).unwrap();
        devices::add_sim(
            &conn,
            &d2,
            &NewSim::parse("1:447700900222:16").unwrap(),
            1000,
        )
        .unwrap();
        for (phone, owner) in [
            ("447700900555", Some(op)),
            ("447700900666", Some(other)),
            ("447700900777", None),
        ] {
            conn.execute(
                "INSERT INTO numbers (phone, country_id, source, owner_id, created_at) VALUES (?1, 16, 'manual', ?2, 1000)",
                rusqlite::params![phone, owner],
            )
            .unwrap();
        }
        let events: Vec<Event> = [
            "447700900222",
            "447700900555",
            "447700900666",
            "447700900777",
        ]
        .iter()
        .map(|p| Event::Sms(sms(Some(p), None)))
        .collect();
        let out = take_in(&conn, &d, &events, 2000).unwrap();
        let results: Vec<Delivered> = out
            .into_iter()
            .map(|o| match o {
                Outcome::Sms { delivered, .. } => delivered,
                o => panic!("{o:?}"),
            })
            .collect();
        // Another device's SIM, another operator's number and an ownerless one are unknown;
        // the operator's own device-less number is known (no order on it here).
        assert_eq!(
            results,
            vec![
                Delivered::UnknownNumber,
                Delivered::NoLiveOrder,
                Delivered::UnknownNumber,
                Delivered::UnknownNumber
            ]
        );
        assert_eq!(devices::messages_today(&conn, d.id, 2000).unwrap(), 4);
    }

    #[test]
    fn redelivered_messages_count_once_and_seen_puts_sims_back_on_sale() {
        let (conn, keys, op) = world();
        let (d, _) = devices::create(&conn, &keys, op, "A", Kind::Generic, 1000).unwrap();
        devices::add_sim(
            &conn,
            &d,
            &NewSim::parse("1:447700900222:16").unwrap(),
            1000,
        )
        .unwrap();
        devices::mark_silent_offline(&conn, 60, 2000).unwrap();
        let d = devices::get(&conn, d.id).unwrap().unwrap();
        assert!(!d.online);
        let mut m = sms(None, None);
        m.id = Some("abc".into());
        let first = take_in(&conn, &d, &[Event::Sms(m.clone())], 2000).unwrap();
        let again = take_in(&conn, &d, &[Event::Sms(m)], 2001).unwrap();
        assert!(matches!(
            first[0],
            Outcome::Sms {
                delivered: Delivered::NoLiveOrder,
                ..
            }
        ));
        assert!(matches!(
            again[0],
            Outcome::Sms {
                delivered: Delivered::Duplicate,
                ..
            }
        ));
        assert_eq!(devices::messages_today(&conn, d.id, 2001).unwrap(), 1);
        let d = devices::get(&conn, d.id).unwrap().unwrap();
        assert!(d.online);
        assert!(devices::sims(&conn, d.id).unwrap()[0].on_sale);
    }

    #[test]
    fn countries_by_longest_prefix_preferring_the_devices_own() {
        let (conn, keys, op) = world();
        let (d, _) = devices::create(&conn, &keys, op, "A", Kind::Capcom6, 1000).unwrap();
        assert_eq!(country_for(&conn, d.id, "447700900123").unwrap(), Some(16));
        assert_eq!(country_for(&conn, d.id, "6281234567890").unwrap(), Some(6));
        // +853 (Macau) is longer than any other match.
        assert_eq!(country_for(&conn, d.id, "85312345678").unwrap(), Some(20));
        // +7: Russia (0) and Kazakhstan (2); the lowest id without a hint...
        assert_eq!(country_for(&conn, d.id, "79001234567").unwrap(), Some(0));
        // ...and Kazakhstan once the device has a SIM there.
        devices::add_sim(&conn, &d, &NewSim::parse("1:77011234567:2").unwrap(), 1000).unwrap();
        assert_eq!(country_for(&conn, d.id, "79001234567").unwrap(), Some(2));
        assert_eq!(country_for(&conn, d.id, "0").unwrap(), None);
    }

    #[test]
    fn a_reported_sim_list_registers_known_numbers_and_drops_missing_slots() {
        let (conn, keys, op) = world();
        let (d, _) = devices::create(&conn, &keys, op, "A", Kind::Capcom6, 1000).unwrap();
        let (other, _) = devices::create(&conn, &keys, op, "B", Kind::Capcom6, 1000).unwrap();
        devices::add_sim(
            &conn,
            &other,
            &NewSim::parse("1:447700900999:16").unwrap(),
            1000,
        )
        .unwrap();
        devices::add_sim(
            &conn,
            &d,
            &NewSim::parse("3:447700900333:16").unwrap(),
            1000,
        )
        .unwrap();
        devices::add_sim(
            &conn,
            &d,
            &NewSim::parse("4:447700900444:16").unwrap(),
            1000,
        )
        .unwrap();
        // Nothing reported: nothing changes.
        assert_eq!(sync_sims(&conn, &d, &[], 1000).unwrap(), SimSync::default());
        let sync = sync_sims(
            &conn,
            &d,
            &[
                card(1, Some("+44 7700 900111")),
                card(2, Some("+447700900999")),
                card(3, None),
                card(5, Some("12")),
            ],
            1000,
        )
        .unwrap();
        assert_eq!(sync.registered, vec!["447700900111".to_string()]);
        assert_eq!(sync.removed, vec!["447700900444".to_string()]);
        assert_eq!(sync.skipped.len(), 2, "{:?}", sync.skipped);
        let sims: Vec<(Option<i64>, String, i64)> = devices::sims(&conn, d.id)
            .unwrap()
            .into_iter()
            .map(|s| (s.slot, s.phone, s.country_id))
            .collect();
        assert_eq!(
            sims,
            vec![
                (Some(1), "447700900111".to_string(), 16),
                (Some(3), "447700900333".to_string(), 16)
            ]
        );
        // The other device's SIM was not touched by the refused card.
        assert_eq!(devices::sims(&conn, other.id).unwrap().len(), 1);
    }
}
