//! Long SMS that arrive in parts without part numbers: a GoIP sends each part of a
//! concatenated SMS as its own RECEIVE, sometimes seconds apart, and other gateways forward
//! parts too. A part that fills a whole segment (153 GSM 7-bit characters, 67 UCS-2 units) is
//! held per device, receiving number and sender; the next part from the same sender to the
//! same number within [`WINDOW`] is appended; a part shorter than a segment completes the
//! message, which is then taken in as one SMS. Whatever is still held when the window has
//! passed is taken in by the `devices` job ([`due`]), so a single SMS of exactly one full
//! segment arrives at most a window late. Every part's de-duplication id is kept with the
//! held text and remembered once the message is taken in, so a replayed part is a duplicate.

use rusqlite::{params, Connection, OptionalExtension};

use crate::clock::Timestamp;
use crate::domain::Result;

/// Seconds a held part waits for the next one.
pub const WINDOW: Timestamp = 60;

/// The GSM 03.38 basic character set (one septet each) and its extension (two septets).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                         ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXTENSION: &str = "^{}\\[~]|€\u{c}";

/// True when `text` is exactly what one part of a concatenated SMS holds: 153 septets (152
/// when an escaped character would have straddled the boundary) in GSM 7-bit, else 67 UTF-16
/// units (66 when a surrogate pair would have).
pub fn is_full_segment(text: &str) -> bool {
    let mut septets = 0;
    for c in text.chars() {
        if GSM_BASIC.contains(c) {
            septets += 1;
        } else if GSM_EXTENSION.contains(c) {
            septets += 2;
        } else {
            let units = text.encode_utf16().count();
            return (66..=67).contains(&units);
        }
    }
    (152..=153).contains(&septets)
}

/// A message put together from its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub device_id: i64,
    pub recipient: String,
    pub sender: String,
    pub text: String,
    pub received_at: Timestamp,
    /// The parts' de-duplication ids, in order.
    pub ids: Vec<String>,
}

impl Joined {
    /// The joined message's own de-duplication id.
    pub fn id(&self) -> String {
        format!("parts:{}", self.ids.join("+"))
    }
}

/// What became of one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Not part of a long SMS: take it in as it is.
    Alone,
    /// Held for the parts that follow.
    Held,
    /// This part is already held (a replay).
    Duplicate,
    /// The last part: take the whole message in.
    Complete(Joined),
}

/// One SMS as it arrived from a device.
#[derive(Debug, Clone, Copy)]
pub struct Part<'a> {
    pub device_id: i64,
    pub recipient: &'a str,
    pub sender: &'a str,
    pub text: &'a str,
    pub received_at: Timestamp,
    /// Its de-duplication id.
    pub id: &'a str,
}

/// One part arrives. Returns what to do with it, and a held message of the same key whose
/// window had already passed (to take in first).
pub fn offer(conn: &Connection, part: Part<'_>, now: Timestamp) -> Result<(Option<Joined>, Step)> {
    let Part {
        device_id,
        recipient,
        sender,
        text,
        received_at,
        id,
    } = part;
    let held = take_held(conn, device_id, recipient, sender)?;
    let (stale, held) = match held {
        Some(h) if now - h.1 > WINDOW => (Some(h.0), None),
        Some(h) => (None, Some(h.0)),
        None => (None, None),
    };
    let full = is_full_segment(text);
    let step = match held {
        Some(h) if h.ids.iter().any(|i| i == id) => {
            put_held(conn, &h, now)?;
            Step::Duplicate
        }
        Some(mut h) => {
            h.text.push_str(text);
            h.ids.push(id.to_string());
            if full && h.text.chars().count() < super::gateway::MAX_TEXT {
                put_held(conn, &h, now)?;
                Step::Held
            } else {
                Step::Complete(h)
            }
        }
        None if full => {
            let h = Joined {
                device_id,
                recipient: recipient.to_string(),
                sender: sender.to_string(),
                text: text.to_string(),
                received_at,
                ids: vec![id.to_string()],
            };
            put_held(conn, &h, now)?;
            Step::Held
        }
        None => Step::Alone,
    };
    Ok((stale, step))
}

/// Removes and returns the held message of a key, with the time its last part came.
fn take_held(
    conn: &Connection,
    device_id: i64,
    recipient: &str,
    sender: &str,
) -> Result<Option<(Joined, Timestamp)>> {
    let found = conn
        .prepare_cached(
            "DELETE FROM sms_parts WHERE device_id = ?1 AND recipient = ?2 AND sender = ?3 \
             RETURNING text, ids, received_at, last_at",
        )?
        .query_row(params![device_id, recipient, sender], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Timestamp>(2)?,
                r.get::<_, Timestamp>(3)?,
            ))
        })
        .optional()?;
    Ok(found.map(|(text, ids, received_at, last_at)| {
        (
            Joined {
                device_id,
                recipient: recipient.to_string(),
                sender: sender.to_string(),
                text,
                received_at,
                ids: ids.lines().map(str::to_string).collect(),
            },
            last_at,
        )
    }))
}

fn put_held(conn: &Connection, h: &Joined, now: Timestamp) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO sms_parts (device_id, recipient, sender, text, parts, ids, received_at, \
         last_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        h.device_id,
        h.recipient,
        h.sender,
        h.text,
        h.ids.len() as i64,
        h.ids.join("\n"),
        h.received_at,
        now
    ])?;
    Ok(())
}

/// Held messages whose window has passed, removed (at most 200): the `devices` job takes
/// them in.
pub fn due(conn: &Connection, now: Timestamp) -> Result<Vec<Joined>> {
    let keys: Vec<(i64, String, String)> = conn
        .prepare_cached(
            "SELECT device_id, recipient, sender FROM sms_parts WHERE last_at < ?1 \
             ORDER BY last_at LIMIT 200",
        )?
        .query_map([now - WINDOW], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(keys.len());
    for (device, recipient, sender) in keys {
        if let Some((j, _)) = take_held(conn, device, &recipient, &sender)? {
            out.push(j);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_segment_is_recognised_in_both_alphabets() {
        assert!(is_full_segment(&"a".repeat(153)));
        assert!(
            is_full_segment(&format!("{}€", "a".repeat(150))),
            "152 + 2 septets"
        );
        assert!(!is_full_segment(&"a".repeat(154)));
        assert!(!is_full_segment("Your code is 12345"));
        assert!(is_full_segment(
            &"код"
                .repeat(22)
                .chars()
                .chain("к".chars())
                .collect::<String>()
        ));
        assert!(!is_full_segment("Ваш код 12345"));
    }

    #[test]
    fn parts_are_held_joined_and_replays_are_duplicates() {
        let conn = crate::db::memory();
        conn.execute_batch(
            "INSERT INTO users (id, email, created_at) VALUES (1, 'o@example.com', 0);
             INSERT INTO devices (id, public_id, owner_id, name, kind, secret_salt, created_at,
                                  last_seen_at) VALUES (1, 'd', 1, 'g', 'goip', 's', 0, 0);",
        )
        .unwrap();
        let first = "x".repeat(153);
        let offer = |text: &str, id: &str, now| {
            let part = Part {
                device_id: 1,
                recipient: "628100",
                sender: "Bank",
                text,
                received_at: 100,
                id,
            };
            offer(&conn, part, now).unwrap()
        };
        assert_eq!(offer(&first, "a", 100), (None, Step::Held));
        assert_eq!(offer(&first, "a", 105), (None, Step::Duplicate));
        assert_eq!(offer(&first, "b", 110), (None, Step::Held));
        let (stale, step) = offer("code 777", "c", 150);
        assert_eq!(stale, None);
        let Step::Complete(j) = step else {
            panic!("complete: {step:?}")
        };
        assert_eq!(j.text, format!("{first}{first}code 777"));
        assert_eq!(j.ids, ["a", "b", "c"]);
        assert_eq!(j.received_at, 100);
        assert_eq!(offer("short", "d", 160), (None, Step::Alone));
        // A held part whose window passed comes out of `due`, or ahead of the next part.
        assert_eq!(offer(&first, "e", 200), (None, Step::Held));
        assert!(due(&conn, 200 + WINDOW).unwrap().is_empty());
        assert_eq!(due(&conn, 201 + WINDOW).unwrap().len(), 1);
        assert_eq!(offer(&first, "f", 300), (None, Step::Held));
        let (stale, step) = offer("next", "g", 300 + WINDOW + 1);
        assert_eq!(stale.map(|j| j.ids), Some(vec!["f".to_string()]));
        assert_eq!(step, Step::Alone);
    }
}
