//! Numbers the admin adds by hand (source `manual`): one at a time or pasted in bulk, one
//! number a line as `PHONE[,COUNTRY_ID[,OPERATOR]]`, optionally owned by an operator (who
//! then earns on them and may deliver their SMS from any of its devices). Every line is
//! checked on its own and the page reports each one; the good ones go on sale at once. One
//! audit row per batch. (An operator's SIMs are added through `devices::add_sim` instead.)

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::domain::accounts::{self, Role, State};
use crate::domain::base::audit::Actor;
use crate::domain::{base::audit, market::catalogue, Error, Result};

pub const MANUAL_SOURCE: &str = "manual";
/// Lines one paste may hold.
pub const MAX_LINES: usize = 1000;

/// A number to add, as read from a form or a pasted line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNumber {
    pub phone: String,
    pub country_id: i64,
    /// Mobile operator code, lower case; '' when unknown.
    pub operator: String,
}

/// One input line: its number (1-based), its text, and what it says or why it cannot be read.
#[derive(Debug, Clone)]
pub struct Entry {
    pub line: usize,
    pub text: String,
    pub parsed: std::result::Result<NewNumber, String>,
}

/// What happened to a batch: the numbers added and the lines refused, with the reason.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// (line, phone digits)
    pub added: Vec<(usize, String)>,
    /// (line, text, reason)
    pub refused: Vec<(usize, String, String)>,
}

/// Digits of a phone number written with an optional `+` and spaces, dashes, dots or
/// parentheses between the digits; 6 to 15 digits, country code first.
pub fn phone_digits(text: &str) -> std::result::Result<String, String> {
    let t = text.trim();
    let body = t.strip_prefix('+').unwrap_or(t);
    if body
        .chars()
        .any(|c| !(c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')')))
    {
        return Err("not a phone number (digits only, country code first)".into());
    }
    let digits: String = body.chars().filter(char::is_ascii_digit).collect();
    if !(6..=15).contains(&digits.len()) {
        return Err("a phone number has 6 to 15 digits, country code first".into());
    }
    Ok(digits)
}

/// Reads one line `PHONE[,COUNTRY_ID[,OPERATOR]]`; the country defaults to `default_country`.
pub fn parse_line(
    text: &str,
    default_country: Option<i64>,
) -> std::result::Result<NewNumber, String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    if parts.len() > 3 {
        return Err("too many fields (PHONE,COUNTRY_ID,OPERATOR)".into());
    }
    let phone = phone_digits(parts[0])?;
    let country_id = match parts.get(1).copied().unwrap_or("") {
        "" => default_country.ok_or("no country: add ,COUNTRY_ID or choose a default")?,
        c => c
            .parse::<i64>()
            .map_err(|_| format!("country '{c}' is not a numeric country id"))?,
    };
    Ok(NewNumber {
        phone,
        country_id,
        operator: parts.get(2).copied().unwrap_or("").to_ascii_lowercase(),
    })
}

/// Splits a pasted text into entries, skipping empty lines and `#` comments.
pub fn parse_paste(text: &str, default_country: Option<i64>) -> Result<Vec<Entry>> {
    let entries: Vec<Entry> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| Entry {
            line: i + 1,
            text: l.trim().to_string(),
            parsed: parse_line(l, default_country),
        })
        .collect();
    if entries.is_empty() {
        return Err(Error::invalid("Paste at least one number."));
    }
    if entries.len() > MAX_LINES {
        return Err(Error::invalid(format!(
            "At most {MAX_LINES} numbers at once, please."
        )));
    }
    Ok(entries)
}

/// Checks one number against the catalogue and the inventory and adds it.
fn add_one(
    conn: &Connection,
    n: &NewNumber,
    owner: Option<i64>,
    now: Timestamp,
) -> std::result::Result<i64, String> {
    let db = |e: Error| e.to_string();
    let country = catalogue::country(conn, n.country_id)
        .map_err(db)?
        .ok_or_else(|| format!("no country with id {}", n.country_id))?;
    if !n.phone.starts_with(&country.prefix) {
        return Err(format!(
            "a number in {} starts with +{}",
            country.name, country.prefix
        ));
    }
    if !n.operator.is_empty()
        && !catalogue::operator_exists(conn, n.country_id, &n.operator).map_err(db)?
    {
        return Err(format!("no operator '{}' in {}", n.operator, country.name));
    }
    let exists = conn
        .prepare_cached("SELECT 1 FROM numbers WHERE phone = ?1")
        .and_then(|mut s| s.query_row([&n.phone], |_| Ok(())).optional())
        .map_err(|e| db(e.into()))?
        .is_some();
    if exists {
        return Err(format!("+{} is already registered", n.phone));
    }
    conn.prepare_cached(
        "INSERT INTO numbers (phone, country_id, operator, source, owner_id, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut s| {
        s.execute(params![
            n.phone,
            n.country_id,
            n.operator,
            MANUAL_SOURCE,
            owner,
            now
        ])
    })
    .map_err(|e| db(e.into()))?;
    Ok(conn.last_insert_rowid())
}

/// The operator account that will own the numbers: '' = none; else an active operator (or
/// admin) with that e-mail.
fn owner_by_email(conn: &Connection, email: &str) -> Result<Option<(i64, String)>> {
    let email = email.trim();
    if email.is_empty() {
        return Ok(None);
    }
    match accounts::find_by_email(conn, email)? {
        Some(u) if matches!(u.role, Role::Operator | Role::Admin) && u.state == State::Active => {
            Ok(Some((u.id, u.email)))
        }
        Some(_) => Err(Error::invalid(format!(
            "{email} is not an active operator account; make it an operator first."
        ))),
        None => Err(Error::invalid(format!(
            "No account with the e-mail {email}."
        ))),
    }
}

/// Adds the entries' numbers (source `manual`, on sale at once), owned by the operator with
/// `owner_email` when one is given; writes one audit row when anything was added. A bad
/// owner refuses the whole batch; a bad line refuses only that line.
pub fn add_batch(
    conn: &Connection,
    actor: Actor<'_>,
    entries: &[Entry],
    owner_email: &str,
    now: Timestamp,
) -> Result<Report> {
    let owner = owner_by_email(conn, owner_email)?;
    let mut report = Report::default();
    for e in entries {
        let added = e
            .parsed
            .clone()
            .and_then(|n| add_one(conn, &n, owner.as_ref().map(|o| o.0), now).map(|_| n.phone));
        match added {
            Ok(phone) => report.added.push((e.line, phone)),
            Err(why) => report.refused.push((e.line, e.text.clone(), why)),
        }
    }
    if !report.added.is_empty() {
        let mut detail = format!(
            "{} added, {} refused",
            report.added.len(),
            report.refused.len()
        );
        if let Some((_, email)) = &owner {
            detail.push_str(&format!(", owner {email}"));
        }
        audit::audit(
            conn,
            Some(actor.id),
            owner.as_ref().map(|o| o.0),
            "numbers_added",
            &detail,
            actor.ip_hash,
            now,
        )?;
    }
    Ok(report)
}

/// A number an operator owns that is not a SIM in one of its devices (added by the admin).
#[derive(Debug, Clone, Serialize)]
pub struct Owned {
    pub id: i64,
    pub phone: String,
    pub country_id: i64,
    pub operator: String,
    pub state: String,
    pub on_sale: bool,
}

pub fn owned_without_device(conn: &Connection, owner_id: i64) -> Result<Vec<Owned>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, phone, country_id, operator, state, on_sale FROM numbers \
         WHERE owner_id = ?1 AND device_id IS NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([owner_id], |r| {
        Ok(Owned {
            id: r.get(0)?,
            phone: r.get(1)?,
            country_id: r.get(2)?,
            operator: r.get(3)?,
            state: r.get(4)?,
            on_sale: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::testing::account;

    #[test]
    fn lines_parse_with_a_default_country() {
        assert_eq!(
            parse_line("+62 811-000-0001", Some(6)).unwrap(),
            NewNumber {
                phone: "628110000001".into(),
                country_id: 6,
                operator: String::new()
            }
        );
        assert_eq!(
            parse_line("447700900123, 16", Some(6)).unwrap().country_id,
            16
        );
        assert_eq!(
            parse_line("628110000001,6,Telkomsel", None)
                .unwrap()
                .operator,
            "telkomsel"
        );
        for (bad, why) in [
            ("62811abc0001", "not a phone number"),
            ("12345", "6 to 15 digits"),
            ("628110000001", "no country"),
            ("628110000001,x", "not a numeric country id"),
            ("628110000001,6,a,b", "too many fields"),
        ] {
            let err = parse_line(bad, None).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn a_batch_adds_the_good_lines_and_says_why_the_others_failed() {
        let conn = db::memory();
        catalogue::seed_if_empty(&conn).unwrap();
        let admin = account(&conn, "root@example.com", Role::Admin);
        let op = account(&conn, "op@example.com", Role::Operator);
        account(&conn, "ann@example.com", Role::User);
        let me = Actor {
            id: admin,
            ip_hash: "ip",
        };
        let paste = "# stock\n628110000001\n\n628110000002,6,telkomsel\n628110000001\n\
                     447700900123,6\n628110000003,6,nope\nhello\n628110000004,99999\n";
        let entries = parse_paste(paste, Some(6)).unwrap();
        assert!(add_batch(&conn, me, &entries, "ann@example.com", 5).is_err());
        assert!(add_batch(&conn, me, &entries, "nobody@example.com", 5).is_err());
        let r = add_batch(&conn, me, &entries, "op@example.com", 5).unwrap();
        let added: Vec<usize> = r.added.iter().map(|a| a.0).collect();
        assert_eq!(added, [2, 4]);
        let refused: Vec<(usize, &str)> = r
            .refused
            .iter()
            .map(|(l, _, why)| (*l, why.as_str()))
            .collect();
        assert_eq!(refused.len(), 5, "{refused:?}");
        assert!(refused[0].1.contains("already registered"));
        assert!(refused[1].1.contains("starts with +62"));
        assert!(refused[2].1.contains("no operator 'nope'"));
        assert!(refused[3].1.contains("not a phone number"));
        assert!(refused[4].1.contains("no country with id 99999"));
        let on_sale: i64 = conn
            .query_row(
                &format!(
                    "SELECT COUNT(*) FROM numbers n WHERE n.owner_id = ?1 AND n.source = 'manual' \
                     AND {}",
                    catalogue::NUMBER_USABLE
                ),
                [op],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(on_sale, 2);
        assert_eq!(owned_without_device(&conn, op).unwrap().len(), 2);
        let audits: Vec<String> = conn
            .prepare("SELECT detail FROM audit_log WHERE action = 'numbers_added'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(audits, ["2 added, 5 refused, owner op@example.com"]);
        assert!(parse_paste("\n# only a comment\n", Some(6)).is_err());
    }
}
