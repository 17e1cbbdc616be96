//! The simulator: a number source for demos and tests. It issues virtual numbers for any
//! seeded country and, after a configurable delay, "receives" a realistic SMS for the
//! ordered service through the same ingestion path as real gateways.
//!
//! Each order draws its fate once, when its SMS is scheduled, from the [`Odds`]: no code, a
//! late code (after the order ended, so never delivered), the same SMS twice, a code in a
//! format the customer's parser may not expect, or (the rest) one normal SMS. The odds come
//! from the admin page (runtime settings) or else from the settings `sim_no_code`,
//! `sim_late_code`, `sim_duplicate`, `sim_wrong_format`; with `sim_seed` the draws are a
//! function of the seed and the order's id, so a test or a QA run replays exactly. The old
//! all-or-nothing runtime setting `simulator_mode` still counts as 100 % of its failure
//! until the odds are saved.
//!
//! Off unless demo mode or the admin turns it on (runtime setting `simulator`).

use rusqlite::{params, Connection, OptionalExtension};

use crate::clock::Timestamp;
use crate::domain::market::activations::{self, Activation, Policy, Wanted};
use crate::domain::market::inbox::{self, Delivered, Inbound};
use crate::domain::{Error, Result};

pub const SOURCE: &str = "simulator";

/// The simulator's numbers per country, and so the stock it shows for every (country,
/// service) while it is on: as many orders of a country as it can serve at once.
pub const STOCK: i64 = 100;

/// What happens to one order's SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One SMS with a code after the delay.
    Normal,
    /// No SMS ever arrives (orders expire and are refunded).
    NoCode,
    /// The SMS arrives a minute after the order's end of life (must not be delivered).
    LateCode,
    /// The SMS arrives twice with the same message id (must be stored once).
    Duplicate,
    /// The SMS arrives with its code written in an unusual way (letters and dashes), which
    /// the code extraction cannot read: the customer gets the text and no code.
    WrongFormat,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::NoCode => "no_code",
            Mode::LateCode => "late_code",
            Mode::Duplicate => "duplicate",
            Mode::WrongFormat => "wrong_format",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "normal" => Mode::Normal,
            "no_code" => Mode::NoCode,
            "late_code" => Mode::LateCode,
            "duplicate" => Mode::Duplicate,
            "wrong_format" => Mode::WrongFormat,
            _ => return None,
        })
    }

    /// The failures, in the order their odds are laid out on one draw.
    pub const FAILURES: [Mode; 4] = [
        Mode::NoCode,
        Mode::LateCode,
        Mode::Duplicate,
        Mode::WrongFormat,
    ];
}

/// Per-order odds of each failure, in percent of orders; together at most 100. `seed`
/// makes the draws reproducible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Odds {
    pub no_code: u32,
    pub late_code: u32,
    pub duplicate: u32,
    pub wrong_format: u32,
    pub seed: Option<u64>,
}

impl Odds {
    /// Every order gets its code.
    pub const NONE: Odds = Odds {
        no_code: 0,
        late_code: 0,
        duplicate: 0,
        wrong_format: 0,
        seed: None,
    };

    /// 100 % of one failure (the old all-or-nothing modes).
    pub fn all(mode: Mode) -> Odds {
        let mut o = Odds::NONE;
        if let Some(slot) = o.slot(mode) {
            *slot = 100;
        }
        o
    }

    fn slot(&mut self, mode: Mode) -> Option<&mut u32> {
        match mode {
            Mode::Normal => None,
            Mode::NoCode => Some(&mut self.no_code),
            Mode::LateCode => Some(&mut self.late_code),
            Mode::Duplicate => Some(&mut self.duplicate),
            Mode::WrongFormat => Some(&mut self.wrong_format),
        }
    }

    /// The percent of orders that get `mode` (`Normal`: the rest).
    pub fn of(&self, mode: Mode) -> u32 {
        match mode {
            Mode::Normal => 100 - self.failing(),
            Mode::NoCode => self.no_code,
            Mode::LateCode => self.late_code,
            Mode::Duplicate => self.duplicate,
            Mode::WrongFormat => self.wrong_format,
        }
    }

    fn failing(&self) -> u32 {
        self.no_code + self.late_code + self.duplicate + self.wrong_format
    }

    /// Odds from percentages per failure; refused when one is above 100 or they add up to
    /// more than 100.
    pub fn new(percents: [u32; 4], seed: Option<u64>) -> Result<Odds> {
        let [no_code, late_code, duplicate, wrong_format] = percents;
        let o = Odds {
            no_code,
            late_code,
            duplicate,
            wrong_format,
            seed,
        };
        if percents.iter().any(|p| *p > 100) || o.failing() > 100 {
            return Err(Error::invalid(
                "The failure odds are percentages that add up to at most 100.",
            ));
        }
        Ok(o)
    }

    /// The fate of one order: a draw in 0..100 laid over the failures in [`Mode::FAILURES`]
    /// order. With a seed the draw depends only on the seed and `order`.
    pub fn draw(&self, order: i64) -> Mode {
        let roll = match self.seed {
            Some(seed) => splitmix(seed ^ (order as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            None => {
                let mut b = [0u8; 8];
                getrandom::fill(&mut b).expect("random source");
                u64::from_le_bytes(b)
            }
        } % 100;
        let mut edge = 0u64;
        for mode in Mode::FAILURES {
            edge += u64::from(self.of(mode));
            if roll < edge {
                return mode;
            }
        }
        Mode::Normal
    }

    /// As stored in the runtime setting `simulator_odds`: `no_code,late_code,duplicate,
    /// wrong_format[,seed]`.
    fn encode(&self) -> String {
        let mut s = format!(
            "{},{},{},{}",
            self.no_code, self.late_code, self.duplicate, self.wrong_format
        );
        if let Some(seed) = self.seed {
            s.push_str(&format!(",{seed}"));
        }
        s
    }

    fn decode(s: &str) -> Option<Odds> {
        let parts: Vec<&str> = s.split(',').collect();
        if !(4..=5).contains(&parts.len()) {
            return None;
        }
        let p = |i: usize| parts[i].parse::<u32>().ok();
        let seed = match parts.get(4) {
            Some(s) => Some(s.parse().ok()?),
            None => None,
        };
        Odds::new([p(0)?, p(1)?, p(2)?, p(3)?], seed).ok()
    }
}

/// SplitMix64's finaliser: a well-mixed 64-bit value from any input.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
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

/// The odds in force: the admin's (`simulator_odds`), else the old all-or-nothing
/// `simulator_mode`, else the settings' `defaults`. The second value says whether the
/// admin's own odds are in force.
pub fn odds(conn: &Connection, defaults: Odds) -> Result<(Odds, bool)> {
    if let Some(o) = setting(conn, "simulator_odds")?.and_then(|s| Odds::decode(&s)) {
        return Ok((o, true));
    }
    match setting(conn, "simulator_mode")?.and_then(|m| Mode::parse(&m)) {
        Some(m) if m != Mode::Normal => Ok((Odds::all(m), true)),
        _ => Ok((defaults, false)),
    }
}

/// Sets the admin's odds (`None`: back to the settings' defaults).
pub fn set_odds(conn: &Connection, odds: Option<Odds>) -> Result<()> {
    conn.execute(
        "DELETE FROM runtime_settings WHERE key IN ('simulator_odds', 'simulator_mode')",
        [],
    )?;
    match odds {
        Some(o) => set_setting(conn, "simulator_odds", &o.encode()),
        None => Ok(()),
    }
}

/// Turns the simulator on or off; its idle numbers are withdrawn from sale while it is off.
pub fn set_on(conn: &Connection, on: bool) -> Result<()> {
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
    Ok(())
}

fn random_digits(n: usize) -> String {
    let bytes = vec![0u8; n];
    let mut bytes = bytes;
    getrandom::fill(&mut bytes).expect("random source");
    bytes.iter().map(|b| char::from(b'0' + b % 10)).collect()
}

/// How many of its least recently used free numbers the simulator looks at for an order
/// before it recycles one.
const WALK: i64 = 8;

/// A number of the simulator for an order our own numbers cannot serve, as `w` wants it
/// (the rules of [`activations::pick_number`]). The simulator keeps a bounded pool of
/// [`STOCK`] numbers per country. It looks at its [`WALK`] least recently used free numbers
/// and hands out the first that fits; when none does, it makes a new number while the pool
/// is below [`STOCK`], and otherwise recycles the least recently used free one with a new
/// random phone, which forgets the services it served (past orders keep the phone they
/// had). So the numbers table never grows with the orders, and an order never reads the
/// whole pool (it did whenever every number was in the service's cooldown). `None` when
/// every number of a full pool is busy.
pub fn pick(conn: &Connection, w: &Wanted) -> Result<Option<(i64, String, String, String)>> {
    let services: Vec<String> = std::iter::once(w.service.to_string())
        .chain(w.also.iter().cloned())
        .collect();
    let mut oldest = None;
    let mut stmt = conn.prepare_cached(
        "SELECT id, phone, operator FROM numbers INDEXED BY numbers_source \
         WHERE source = ?1 AND country_id = ?2 AND state = 'free' AND on_sale = 1 \
         ORDER BY last_used_at LIMIT ?3",
    )?;
    let mut rows = stmt.query(params![SOURCE, w.country, WALK])?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        oldest.get_or_insert(id);
        let phone: String = r.get(1)?;
        let op: String = r.get(2)?;
        if (!w.operator.is_empty() && op != w.operator)
            || w.excluded(&phone)
            || activations::used_for_any(conn, id, &services, w.cooldown, w.now)?
        {
            continue;
        }
        return Ok(Some((id, phone, op, SOURCE.to_string())));
    }
    let pool: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM numbers WHERE source = ?1 AND country_id = ?2")?
        .query_row(params![SOURCE, w.country], |r| r.get(0))?;
    if pool < STOCK {
        fresh(conn, w, None)
    } else if let Some(id) = oldest {
        fresh(conn, w, Some(id))
    } else {
        Ok(None)
    }
}

/// A new number of the pool, or number `recycled` with a new phone and no past usage.
fn fresh(
    conn: &Connection,
    w: &Wanted,
    recycled: Option<i64>,
) -> Result<Option<(i64, String, String, String)>> {
    let (country, operator, now) = (w.country, w.operator, w.now);
    let prefix: String = conn
        .prepare_cached("SELECT prefix FROM countries WHERE id = ?1")?
        .query_row([country], |r| r.get(0))
        .optional()?
        .ok_or(Error::BadCountry)?;
    for _ in 0..20 {
        // Subscriber numbers never start with 0 after the country code.
        let mut rest = random_digits(10);
        if rest.starts_with('0') {
            rest.replace_range(0..1, "9");
        }
        let phone = format!("{prefix}{rest}");
        if w.excluded(&phone) {
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

/// The text of a code in a format extraction cannot read: letters between dashes.
fn wrong_format_message(service: &str) -> (String, String) {
    let (sender, _) = message_for(service);
    let d = random_digits(6);
    let letters: String = d.bytes().map(|b| char::from(b'A' + (b - b'0'))).collect();
    let text = format!(
        "{sender}: your one-time key is {}-{}. It works once.",
        &letters[..3],
        &letters[3..]
    );
    (sender, text)
}

/// Marks the queued SMS of a late-code order, which outlive their order on purpose.
const LATE: &str = "sim-late-";

/// Queues the simulated SMS of an order by the fate it draws: `order` is `a<id>` or
/// `r<id>` (the key the draw depends on), `ends` its end of life.
#[allow(clippy::too_many_arguments)]
fn schedule(
    conn: &Connection,
    column: &str,
    id: i64,
    service: &str,
    policy: &Policy,
    ends: Timestamp,
    now: Timestamp,
) -> Result<Mode> {
    let (odds, _) = odds(conn, policy.sim_odds)?;
    // Rentals draw from the other end of the seed's sequence, so a rental and an
    // activation with the same id need not share their fate.
    let key = if column == "rental_id" { -id } else { id };
    let fate = odds.draw(key);
    let (sender, text) = match fate {
        Mode::NoCode => return Ok(fate),
        Mode::WrongFormat => wrong_format_message(service),
        _ => message_for(service),
    };
    let (at, prefix) = match fate {
        Mode::LateCode => (ends + 60, LATE),
        _ => (now + policy.sim_delay as i64, "sim-"),
    };
    let dedup = format!("{prefix}{}{id}-{}", &column[..1], random_digits(8));
    let copies = if fate == Mode::Duplicate { 2 } else { 1 };
    let sql = format!(
        "INSERT INTO sim_outbox ({column}, deliver_at, sender, text, dedup_key) \
         VALUES (?1, ?2, ?3, ?4, ?5)"
    );
    for _ in 0..copies {
        conn.prepare_cached(&sql)?
            .execute(params![id, at, sender, text, dedup])?;
    }
    Ok(fate)
}

/// Queues the simulated SMS for an activation; returns the fate it drew.
pub fn schedule_activation(
    conn: &Connection,
    a: &Activation,
    policy: &Policy,
    now: Timestamp,
) -> Result<Mode> {
    schedule(
        conn,
        "activation_id",
        a.id,
        &a.service,
        policy,
        a.expires_at,
        now,
    )
}

/// Queues the SMS of a new rental that ends at `ends`; returns the fate it drew.
pub fn schedule_rental(
    conn: &Connection,
    rental_id: i64,
    service: &str,
    policy: &Policy,
    ends: Timestamp,
    now: Timestamp,
) -> Result<Mode> {
    schedule(conn, "rental_id", rental_id, service, policy, ends, now)
}

/// Drops queued SMS of an order that ended, except a late code's, which tests exactly that.
pub fn forget(conn: &Connection, activation: Option<i64>, rental: Option<i64>) -> Result<()> {
    conn.prepare_cached(
        "DELETE FROM sim_outbox WHERE activation_id IS ?1 AND rental_id IS ?2 \
         AND dedup_key NOT LIKE 'sim-late-%'",
    )?
    .execute(params![activation, rental])?;
    Ok(())
}

/// Delivers every queued SMS that is due, through the normal ingestion path. An SMS whose
/// own order is no longer live (a late code, by design) reaches no one: its number may serve
/// another order by then, of another service, which must not receive it.
pub fn deliver_due(conn: &Connection, now: Timestamp) -> Result<Vec<Delivered>> {
    type Due = (i64, Option<String>, String, String, String, bool);
    let due: Vec<Due> = {
        let mut stmt = conn.prepare_cached(
            "SELECT s.id, COALESCE(a.phone, r.phone), s.sender, s.text, s.dedup_key, \
             CASE WHEN s.activation_id IS NOT NULL \
                  THEN a.status IN ('waiting','received','retry') AND a.expires_at > ?1 \
                  ELSE r.status = 'active' AND r.expires_at > ?1 END \
             FROM sim_outbox s \
             LEFT JOIN activations a ON a.id = s.activation_id LEFT JOIN rentals r ON r.id = s.rental_id \
             WHERE s.deliver_at <= ?1 ORDER BY s.id LIMIT 200",
        )?;
        let rows = stmt.query_map([now], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get::<_, Option<bool>>(5)?.unwrap_or(false),
            ))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut out = Vec::with_capacity(due.len());
    for (id, phone, sender, text, key, live) in due {
        conn.execute("DELETE FROM sim_outbox WHERE id = ?1", [id])?;
        let Some(phone) = phone.filter(|_| live) else {
            out.push(Delivered::NoLiveOrder);
            continue;
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeded_draw_depends_only_on_the_seed_and_the_order() {
        let odds = Odds::new([25, 25, 25, 0], Some(7)).unwrap();
        let fates: Vec<Mode> = (1..=400).map(|id| odds.draw(id)).collect();
        assert_eq!(fates, (1..=400).map(|id| odds.draw(id)).collect::<Vec<_>>());
        for mode in [Mode::Normal, Mode::NoCode, Mode::LateCode, Mode::Duplicate] {
            let n = fates.iter().filter(|m| **m == mode).count();
            assert!((60..=140).contains(&n), "{mode:?}: {n} of 400");
        }
        assert!(!fates.contains(&Mode::WrongFormat));
    }

    #[test]
    fn odds_at_the_edges_are_certain_and_over_100_refused() {
        assert!((0..50).all(|id| Odds::all(Mode::Duplicate).draw(id) == Mode::Duplicate));
        assert!((0..50).all(|id| Odds::NONE.draw(id) == Mode::Normal));
        assert!(Odds::new([60, 0, 41, 0], None).is_err());
        assert!(Odds::new([101, 0, 0, 0], None).is_err());
        let o = Odds::new([1, 2, 3, 4], Some(9)).unwrap();
        assert_eq!(Odds::decode(&o.encode()), Some(o));
        assert_eq!(o.of(Mode::Normal), 90);
    }

    #[test]
    fn the_old_all_or_nothing_mode_still_counts_until_odds_are_saved() {
        let conn = crate::db::memory();
        set_setting(&conn, "simulator_mode", "late_code").unwrap();
        assert_eq!(
            odds(&conn, Odds::NONE).unwrap(),
            (Odds::all(Mode::LateCode), true)
        );
        set_odds(&conn, None).unwrap();
        let defaults = Odds::all(Mode::NoCode);
        assert_eq!(odds(&conn, defaults).unwrap(), (defaults, false));
    }
}
