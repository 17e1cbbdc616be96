//! The simulator: a number source for demos and tests. It issues virtual numbers for any
//! seeded country and, after a configurable delay, "receives" a realistic SMS for the
//! ordered service through the same ingestion path as real gateways. Failure modes: no code,
//! a late code (after the order expired), or the same SMS delivered twice.
//!
//! Off unless demo mode or the admin turns it on (runtime setting `simulator`).

use rusqlite::{params, Connection, OptionalExtension};

use crate::clock::Timestamp;
use crate::domain::market::activations::Activation;
use crate::domain::market::inbox::{self, Delivered, Inbound};
use crate::domain::{Error, Result};

pub const SOURCE: &str = "simulator";

/// The simulator's numbers per country, and so the stock it shows for every (country,
/// service) while it is on: as many orders of a country as it can serve at once.
pub const STOCK: i64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One SMS with a code after the delay.
    Normal,
    /// No SMS ever arrives (orders expire and are refunded).
    NoCode,
    /// The SMS arrives a minute after the order expired (must not be delivered).
    LateCode,
    /// The SMS arrives twice with the same message id (must be stored once).
    Duplicate,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::NoCode => "no_code",
            Mode::LateCode => "late_code",
            Mode::Duplicate => "duplicate",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "normal" => Mode::Normal,
            "no_code" => Mode::NoCode,
            "late_code" => Mode::LateCode,
            "duplicate" => Mode::Duplicate,
            _ => return None,
        })
    }

    pub const ALL: [Mode; 4] = [Mode::Normal, Mode::NoCode, Mode::LateCode, Mode::Duplicate];
}

fn setting(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT value FROM runtime_settings WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

fn set_setting(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO runtime_settings (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

pub fn enabled(conn: &Connection) -> Result<bool> {
    Ok(setting(conn, "simulator")?.as_deref() == Some("on"))
}

pub fn mode(conn: &Connection) -> Result<Mode> {
    Ok(setting(conn, "simulator_mode")?
        .and_then(|m| Mode::parse(&m))
        .unwrap_or(Mode::Normal))
}

/// Turns the simulator on or off; its idle numbers are withdrawn from sale while it is off.
pub fn configure(conn: &Connection, on: bool, mode: Mode) -> Result<()> {
    set_setting(conn, "simulator", if on { "on" } else { "off" })?;
    let (from, to) = if on {
        ("disabled", "free")
    } else {
        ("free", "disabled")
    };
    conn.execute(
        "UPDATE numbers SET state = ?2 WHERE source = ?3 AND state = ?1",
        params![from, to, SOURCE],
    )?;
    set_setting(conn, "simulator_mode", mode.as_str())
}

fn random_digits(n: usize) -> String {
    let bytes = vec![0u8; n];
    let mut bytes = bytes;
    getrandom::fill(&mut bytes).expect("random source");
    bytes.iter().map(|b| char::from(b'0' + b % 10)).collect()
}

/// A number of the simulator for an order `pick_number` found no number for. The simulator
/// keeps a bounded pool of [`STOCK`] numbers per country: below it, a new one is made; at
/// it, the least recently used free one is recycled with a new random phone and forgets
/// the services it served (past orders keep the phone they had), so the numbers table never
/// grows with the orders. `None` when every number of the pool is busy.
pub fn new_number(
    conn: &Connection,
    country: i64,
    operator: &str,
    exclude: &[String],
    now: Timestamp,
) -> Result<Option<(i64, String, String, String)>> {
    let prefix: String = conn
        .prepare_cached("SELECT prefix FROM countries WHERE id = ?1")?
        .query_row([country], |r| r.get(0))
        .optional()?
        .ok_or(Error::BadCountry)?;
    let pool: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM numbers WHERE source = ?1 AND country_id = ?2")?
        .query_row(params![SOURCE, country], |r| r.get(0))?;
    let recycled: Option<i64> = if pool < STOCK {
        None
    } else {
        let oldest = conn
            .prepare_cached(
                "SELECT id FROM numbers WHERE source = ?1 AND country_id = ?2 AND state = 'free' \
                 ORDER BY last_used_at LIMIT 1",
            )?
            .query_row(params![SOURCE, country], |r| r.get(0))
            .optional()?;
        match oldest {
            Some(id) => Some(id),
            None => return Ok(None),
        }
    };
    for _ in 0..20 {
        // Subscriber numbers never start with 0 after the country code.
        let mut rest = random_digits(10);
        if rest.starts_with('0') {
            rest.replace_range(0..1, "9");
        }
        let phone = format!("{prefix}{rest}");
        if exclude
            .iter()
            .any(|p| !p.is_empty() && phone.starts_with(p.as_str()))
        {
            continue;
        }
        let id = match recycled {
            Some(id) => {
                let changed = conn
                    .prepare_cached(
                        "UPDATE OR IGNORE numbers SET phone = ?2, operator = ?3 WHERE id = ?1",
                    )?
                    .execute(params![id, phone, operator])?;
                if changed != 1 {
                    continue; // the phone exists already
                }
                conn.prepare_cached("DELETE FROM number_usage WHERE number_id = ?1")?
                    .execute([id])?;
                id
            }
            None => {
                let inserted = conn
                    .prepare_cached(
                        "INSERT OR IGNORE INTO numbers (phone, country_id, operator, source, \
                         created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![phone, country, operator, SOURCE, now])?;
                if inserted != 1 {
                    continue;
                }
                conn.last_insert_rowid()
            }
        };
        return Ok(Some((id, phone, operator.to_string(), SOURCE.to_string())));
    }
    Ok(None)
}

/// A realistic SMS for a service, with a fresh code.
pub fn message_for(service: &str) -> (String, String) {
    let d = random_digits(6);
    let five = &d[..5];
    let (sender, text) = match service {
        "tg" => ("Telegram", format!("Telegram code: {five}\n\nYou can also tap on this link to log in:\nhttps://t.me/login/{five}")),
        "wa" => ("WhatsApp", format!("<#> Your WhatsApp code: {}-{}\nDon't share this code with others", &d[..3], &d[3..])),
        "go" => ("Google", format!("G-{d} is your Google verification code.")),
        "fb" => ("Facebook", format!("{five} is your Facebook confirmation code")),
        "ig" => ("Instagram", format!("{} {} is your Instagram code. Don't share it.", &d[..3], &d[3..])),
        "tw" => ("X", format!("Your X confirmation code is {d}.")),
        "ds" => ("Discord", format!("Your Discord verification code is: {d}")),
        "mm" => ("Microsoft", format!("Use {d} as Microsoft account security code")),
        "am" => ("Amazon", format!("{d} is your Amazon OTP. Do not share it with anyone.")),
        "ub" => ("Uber", format!("Your Uber code: {}. Never share this code.", &d[..4])),
        "vk" => ("VK", format!("VK: {five} — код для регистрации")),
        "dr" => ("OpenAI", format!("Your OpenAI verification code is: {d}")),
        "wx" => ("Apple", format!("Your Apple Account code is: {d}. Don't share it with anyone.")),
        _ => ("Verify", format!("Your verification code is {d}. It expires in 10 minutes.")),
    };
    (sender.to_string(), text)
}

/// Queues the simulated SMS for an activation according to the current mode.
pub fn schedule_activation(
    conn: &Connection,
    a: &Activation,
    delay: u64,
    now: Timestamp,
) -> Result<()> {
    let (sender, text) = message_for(&a.service);
    let key = format!("sim-{}-{}", a.id, random_digits(8));
    let at = match mode(conn)? {
        Mode::NoCode => return Ok(()),
        Mode::LateCode => a.expires_at + 60,
        Mode::Normal | Mode::Duplicate => now + delay as i64,
    };
    let copies = if mode(conn)? == Mode::Duplicate { 2 } else { 1 };
    for _ in 0..copies {
        conn.prepare_cached(
            "INSERT INTO sim_outbox (activation_id, deliver_at, sender, text, dedup_key) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![a.id, at, sender, text, key])?;
    }
    Ok(())
}

/// Queues one SMS for a new rental.
pub fn schedule_rental(
    conn: &Connection,
    rental_id: i64,
    service: &str,
    delay: u64,
    now: Timestamp,
) -> Result<()> {
    if mode(conn)? == Mode::NoCode {
        return Ok(());
    }
    let (sender, text) = message_for(service);
    conn.prepare_cached(
        "INSERT INTO sim_outbox (rental_id, deliver_at, sender, text, dedup_key) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![rental_id, now + delay as i64, sender, text, format!("sim-r{rental_id}-{}", random_digits(8))])?;
    Ok(())
}

/// Drops queued SMS of an order that ended (except late-code ones, which test exactly that).
pub fn forget(conn: &Connection, activation: Option<i64>, rental: Option<i64>) -> Result<()> {
    if mode(conn)? == Mode::LateCode {
        return Ok(());
    }
    conn.prepare_cached("DELETE FROM sim_outbox WHERE activation_id IS ?1 AND rental_id IS ?2")?
        .execute(params![activation, rental])?;
    Ok(())
}

/// Delivers every queued SMS that is due, through the normal ingestion path.
pub fn deliver_due(conn: &Connection, now: Timestamp) -> Result<Vec<Delivered>> {
    let due: Vec<(i64, String, String, String, String)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT s.id, COALESCE(a.phone, r.phone), s.sender, s.text, s.dedup_key FROM sim_outbox s \
             LEFT JOIN activations a ON a.id = s.activation_id LEFT JOIN rentals r ON r.id = s.rental_id \
             WHERE s.deliver_at <= ?1 ORDER BY s.id LIMIT 200",
        )?;
        let rows = stmt.query_map([now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut out = Vec::with_capacity(due.len());
    for (id, phone, sender, text, key) in due {
        conn.execute("DELETE FROM sim_outbox WHERE id = ?1", [id])?;
        out.push(inbox::ingest(
            conn,
            &Inbound {
                to: phone,
                sender,
                text,
                received_at: now,
                source: SOURCE.into(),
                source_msg_id: Some(key),
                device_id: None,
            },
            now,
        )?);
    }
    Ok(out)
}
