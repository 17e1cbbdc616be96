//! The abuse queue: public abuse reports (a number, the service it was used for, what
//! happened, an optional contact) and terminated people's appeals, each moving through
//! `new → investigating → actioned | dismissed` with the admin's append-only notes. Every
//! state change is audited, and so is looking up which orders used a reported number (that
//! reads other people's data). The reporter's IP address is only ever a keyed hash, used for
//! the hourly limit and cleared after a week ([`forget_reporter_addresses`]).

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::clock::{format_datetime, Timestamp};
use crate::domain::accounts::{self, State as AccountState, User};
use crate::domain::base::audit::Actor;
use crate::domain::base::crypto::Keys;
use crate::domain::{accounts::tokens, base::audit, base::mail, Error, Result};

/// A terminated person may appeal once, within this long of the termination.
pub const APPEAL_WINDOW: i64 = 30 * 86_400;
/// Purpose of the tokens behind appeal links.
pub const APPEAL_TOKEN: &str = "appeal";
/// Orders on a reported number are looked up this far back from the report.
pub const MATCH_WINDOW: i64 = 30 * 86_400;
/// Reporters' address hashes are cleared this long after the report.
pub const KEEP_REPORTER_HASH: i64 = 7 * 86_400;

const DESCRIPTION_MAX: usize = 5000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Report,
    Appeal,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Report => "report",
            Kind::Appeal => "appeal",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    New,
    Investigating,
    Actioned,
    Dismissed,
}

impl State {
    pub const ALL: [State; 4] = [
        State::New,
        State::Investigating,
        State::Actioned,
        State::Dismissed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::New => "new",
            State::Investigating => "investigating",
            State::Actioned => "actioned",
            State::Dismissed => "dismissed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The states a report in this state may move to: forward from `new` and
    /// `investigating`; a closed one can only be reopened for investigation.
    pub fn next(self) -> &'static [State] {
        match self {
            State::New => &[State::Investigating, State::Actioned, State::Dismissed],
            State::Investigating => &[State::Actioned, State::Dismissed],
            State::Actioned | State::Dismissed => &[State::Investigating],
        }
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    pub id: i64,
    pub kind: Kind,
    pub phone: String,
    pub service: String,
    pub description: String,
    pub contact: String,
    /// The appealing account.
    pub user_id: Option<i64>,
    pub user_email: Option<String>,
    pub state: State,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

const COLS: &str = "r.id, r.kind, r.phone, r.service, r.description, r.contact, r.user_id, \
                    u.email, r.state, r.created_at, r.updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Report> {
    let kind: String = r.get(1)?;
    let state: String = r.get(8)?;
    Ok(Report {
        id: r.get(0)?,
        kind: if kind == "appeal" {
            Kind::Appeal
        } else {
            Kind::Report
        },
        phone: r.get(2)?,
        service: r.get(3)?,
        description: r.get(4)?,
        contact: r.get(5)?,
        user_id: r.get(6)?,
        user_email: r.get(7)?,
        state: State::parse(&state).unwrap_or(State::New),
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

/// What the public form sends.
#[derive(Debug, Clone, Default)]
pub struct NewReport {
    pub phone: String,
    pub service: String,
    pub description: String,
    pub contact: String,
}

/// A phone number as stored in `numbers.phone`: digits with the country code, no `+`.
/// Spaces, dashes, dots and brackets are dropped; anything else is refused.
pub fn normalise_phone(raw: &str) -> Result<String> {
    let mut digits = String::new();
    for c in raw.trim().trim_start_matches('+').chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => {
                return Err(Error::invalid(
                    "Enter the number with digits only, such as +62 812 3456 7890.",
                ))
            }
        }
    }
    if !(6..=15).contains(&digits.len()) {
        return Err(Error::invalid(
            "Enter the full number with its country code (6 to 15 digits).",
        ));
    }
    Ok(digits)
}

fn text_field(value: &str, what: &str, min: usize, max: usize) -> Result<String> {
    let v = value.trim();
    let n = v.chars().count();
    if n < min {
        return Err(Error::invalid(if min <= 1 {
            format!("Enter the {what}.")
        } else {
            format!("The {what} must be at least {min} characters.")
        }));
    }
    if n > max {
        return Err(Error::invalid(format!(
            "The {what} must be at most {max} characters."
        )));
    }
    Ok(v.to_string())
}

/// Seconds until this address may report again, when it has sent `per_hour` reports in the
/// last hour.
pub fn report_retry_after(
    conn: &Connection,
    ip_hash: &str,
    per_hour: u32,
    now: Timestamp,
) -> Result<Option<u64>> {
    let oldest: Option<Timestamp> = conn
        .prepare_cached(
            "SELECT created_at FROM abuse_reports WHERE ip_hash = ?1 AND kind = 'report' \
             AND created_at > ?2 ORDER BY created_at DESC LIMIT 1 OFFSET ?3",
        )?
        .query_row(
            params![ip_hash, now - 3600, per_hour.max(1) as i64 - 1],
            |r| r.get(0),
        )
        .optional()?;
    Ok(oldest.map(|t| (t + 3600 - now).max(1) as u64))
}

/// Stores a public report; refused (nothing stored) when the address has sent `per_hour`
/// reports within the last hour, or when a field is missing or malformed.
pub fn submit_report(
    conn: &Connection,
    r: &NewReport,
    ip_hash: &str,
    per_hour: u32,
    now: Timestamp,
) -> Result<i64> {
    if let Some(retry_after) = report_retry_after(conn, ip_hash, per_hour, now)? {
        return Err(Error::Throttled { retry_after });
    }
    let phone = normalise_phone(&r.phone)?;
    let service = text_field(&r.service, "service the number was used for", 1, 100)?;
    let description = text_field(&r.description, "description", 10, DESCRIPTION_MAX)?;
    let contact = match r.contact.trim() {
        "" => String::new(),
        c => accounts::normalise_email(c)?,
    };
    conn.prepare_cached(
        "INSERT INTO abuse_reports (kind, phone, service, description, contact, ip_hash, \
         created_at, updated_at) VALUES ('report', ?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?
    .execute(params![phone, service, description, contact, ip_hash, now])?;
    Ok(conn.last_insert_rowid())
}

/// The queue, newest first, optionally of one state.
pub fn list(conn: &Connection, state: Option<State>, limit: i64) -> Result<Vec<Report>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM abuse_reports r LEFT JOIN users u ON u.id = r.user_id \
         WHERE ?1 IS NULL OR r.state = ?1 ORDER BY r.id DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![state.map(State::as_str), limit], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Reports per state (for the queue's filter).
pub fn counts(conn: &Connection) -> Result<Vec<(State, i64)>> {
    let mut out = Vec::new();
    for st in State::ALL {
        let n: i64 = conn
            .prepare_cached("SELECT COUNT(*) FROM abuse_reports WHERE state = ?1")?
            .query_row([st.as_str()], |r| r.get(0))?;
        out.push((st, n));
    }
    Ok(out)
}

pub fn get(conn: &Connection, id: i64) -> Result<Report> {
    conn.prepare_cached(&format!(
        "SELECT {COLS} FROM abuse_reports r LEFT JOIN users u ON u.id = r.user_id WHERE r.id = ?1"
    ))?
    .query_row([id], from_row)
    .optional()?
    .ok_or(Error::NotFound("report"))
}

#[derive(Debug, Clone)]
pub struct Note {
    pub at: Timestamp,
    pub author: Option<String>,
    pub text: String,
}

pub fn notes(conn: &Connection, report_id: i64) -> Result<Vec<Note>> {
    let mut stmt = conn.prepare_cached(
        "SELECT n.at, u.email, n.text FROM abuse_notes n LEFT JOIN users u ON u.id = n.author_id \
         WHERE n.report_id = ?1 ORDER BY n.id",
    )?;
    let rows = stmt.query_map([report_id], |r| {
        Ok(Note {
            at: r.get(0)?,
            author: r.get(1)?,
            text: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Appends the admin's note to a report (notes are never edited or removed).
pub fn add_note(
    conn: &Connection,
    actor: Actor<'_>,
    report_id: i64,
    text: &str,
    now: Timestamp,
) -> Result<()> {
    get(conn, report_id)?;
    let text = text_field(text, "note", 1, DESCRIPTION_MAX)?;
    conn.prepare_cached(
        "INSERT INTO abuse_notes (report_id, author_id, at, text) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![report_id, actor.id, now, text])?;
    conn.execute(
        "UPDATE abuse_reports SET updated_at = ?2 WHERE id = ?1",
        params![report_id, now],
    )?;
    Ok(())
}

/// Moves a report to another state (see [`State::next`]), with an optional note; audited.
pub fn set_state(
    conn: &Connection,
    actor: Actor<'_>,
    report_id: i64,
    to: State,
    note: &str,
    now: Timestamp,
) -> Result<Report> {
    let r = get(conn, report_id)?;
    if !r.state.next().contains(&to) {
        return Err(Error::Conflict(format!(
            "A report that is {} cannot become {}.",
            r.state.as_str(),
            to.as_str()
        )));
    }
    let changed = conn.execute(
        "UPDATE abuse_reports SET state = ?3, updated_at = ?4 WHERE id = ?1 AND state = ?2",
        params![report_id, r.state.as_str(), to.as_str(), now],
    )?;
    if changed != 1 {
        return Err(Error::Conflict(
            "The report changed meanwhile; reload it.".into(),
        ));
    }
    if !note.trim().is_empty() {
        add_note(conn, actor, report_id, note, now)?;
    }
    audit::audit(
        conn,
        Some(actor.id),
        r.user_id,
        "abuse_state",
        &format!(
            "{} #{}: {} → {}",
            r.kind.as_str(),
            r.id,
            r.state.as_str(),
            to.as_str()
        ),
        actor.ip_hash,
        now,
    )?;
    get(conn, report_id)
}

/// An order that used a reported number.
#[derive(Debug, Clone)]
pub struct OrderOnNumber {
    /// `activation` or `rental`.
    pub kind: &'static str,
    pub id: i64,
    pub user_id: i64,
    pub email: String,
    pub service: String,
    pub status: String,
    pub created_at: Timestamp,
    pub ended_at: Option<Timestamp>,
}

/// What we know about a reported number: whether it is one of ours, and which orders used it
/// from [`MATCH_WINDOW`] before the report until now.
#[derive(Debug, Clone)]
pub struct NumberLookup {
    pub held: bool,
    pub orders: Vec<OrderOnNumber>,
}

/// Looks up the orders on a report's number. This reads other accounts' data, so every
/// account shown gets an audit row (and the lookup one even when nothing is found).
pub fn orders_on_number(
    conn: &Connection,
    actor: Actor<'_>,
    report_id: i64,
    now: Timestamp,
) -> Result<NumberLookup> {
    let r = get(conn, report_id)?;
    if r.phone.is_empty() {
        return Ok(NumberLookup {
            held: false,
            orders: Vec::new(),
        });
    }
    let held = conn
        .prepare_cached("SELECT 1 FROM numbers WHERE phone = ?1")?
        .query_row([&r.phone], |_| Ok(()))
        .optional()?
        .is_some();
    let mut stmt = conn.prepare_cached(
        "SELECT 'activation', a.id, a.user_id, u.email, a.service, a.status, a.created_at, a.ended_at \
         FROM activations a JOIN users u ON u.id = a.user_id \
         WHERE a.phone = ?1 AND a.created_at >= ?2 AND a.created_at <= ?3 \
         UNION ALL \
         SELECT 'rental', r.id, r.user_id, u.email, r.service, r.status, r.created_at, r.ended_at \
         FROM rentals r JOIN users u ON u.id = r.user_id \
         WHERE r.phone = ?1 AND r.created_at >= ?2 AND r.created_at <= ?3 \
         ORDER BY 7 DESC LIMIT 200",
    )?;
    let rows = stmt.query_map(params![r.phone, r.created_at - MATCH_WINDOW, now], |row| {
        let kind: String = row.get(0)?;
        Ok(OrderOnNumber {
            kind: if kind == "rental" {
                "rental"
            } else {
                "activation"
            },
            id: row.get(1)?,
            user_id: row.get(2)?,
            email: row.get(3)?,
            service: row.get(4)?,
            status: row.get(5)?,
            created_at: row.get(6)?,
            ended_at: row.get(7)?,
        })
    })?;
    let orders: Vec<OrderOnNumber> = rows.collect::<rusqlite::Result<_>>()?;
    let mut accounts: Vec<i64> = orders.iter().map(|o| o.user_id).collect();
    accounts.sort_unstable();
    accounts.dedup();
    let detail = |n: usize| format!("report #{}: orders on {} ({n})", r.id, r.phone);
    if accounts.is_empty() {
        audit::audit(
            conn,
            Some(actor.id),
            None,
            "abuse_number_lookup",
            &detail(0),
            actor.ip_hash,
            now,
        )?;
    }
    for uid in accounts {
        let n = orders.iter().filter(|o| o.user_id == uid).count();
        audit::audit(
            conn,
            Some(actor.id),
            Some(uid),
            "abuse_number_lookup",
            &detail(n),
            actor.ip_hash,
            now,
        )?;
    }
    Ok(NumberLookup { held, orders })
}

/// Clears the address hashes of reports older than [`KEEP_REPORTER_HASH`] (they only serve
/// the hourly limit); returns how many.
pub fn forget_reporter_addresses(conn: &Connection, now: Timestamp) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE abuse_reports SET ip_hash = '' WHERE ip_hash != '' AND created_at < ?1",
        [now - KEEP_REPORTER_HASH],
    )?)
}

// ---------------------------------------------------------------------------------------
// Appeals

/// Where a terminated person stands with their one appeal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appeal {
    /// They may appeal until `deadline`.
    Open {
        terminated_at: Timestamp,
        deadline: Timestamp,
    },
    /// They did, at `at` (the report `id`).
    Made {
        id: i64,
        at: Timestamp,
        state: String,
    },
    /// The window closed at `deadline` without an appeal.
    Expired {
        terminated_at: Timestamp,
        deadline: Timestamp,
    },
    /// The account is not terminated.
    NotTerminated,
}

/// The appeal situation of an account.
pub fn appeal_status(conn: &Connection, user_id: i64, now: Timestamp) -> Result<Appeal> {
    let (state, changed_at): (String, Option<Timestamp>) = conn
        .prepare_cached("SELECT state, state_changed_at FROM users WHERE id = ?1")?
        .query_row([user_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or(Error::NotFound("account"))?;
    if state != AccountState::Terminated.as_str() {
        return Ok(Appeal::NotTerminated);
    }
    let terminated_at = changed_at.unwrap_or(0);
    let made: Option<(i64, Timestamp, String)> = conn
        .prepare_cached(
            "SELECT id, created_at, state FROM abuse_reports WHERE user_id = ?1 AND kind = 'appeal' \
             AND created_at >= ?2 ORDER BY id LIMIT 1",
        )?
        .query_row(params![user_id, terminated_at], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let deadline = terminated_at + APPEAL_WINDOW;
    Ok(match made {
        Some((id, at, state)) => Appeal::Made { id, at, state },
        None if now <= deadline => Appeal::Open {
            terminated_at,
            deadline,
        },
        None => Appeal::Expired {
            terminated_at,
            deadline,
        },
    })
}

/// Files the one appeal of a terminated account; it lands in the queue as kind `appeal`.
/// A second appeal, or one after [`APPEAL_WINDOW`], is refused and nothing is stored.
pub fn submit_appeal(conn: &Connection, user_id: i64, text: &str, now: Timestamp) -> Result<i64> {
    match appeal_status(conn, user_id, now)? {
        Appeal::Open { .. } => {}
        Appeal::Made { at, .. } => {
            return Err(Error::Conflict(format!(
                "You appealed on {} UTC already; an account can appeal once.",
                format_datetime(at)
            )))
        }
        Appeal::Expired { deadline, .. } => {
            return Err(Error::Forbidden(format!(
                "The 30 days to appeal ended on {} UTC.",
                format_datetime(deadline)
            )))
        }
        Appeal::NotTerminated => {
            return Err(Error::Conflict("This account is not terminated.".into()))
        }
    }
    let description = text_field(text, "appeal", 10, DESCRIPTION_MAX)?;
    let user = accounts::get(conn, user_id)?;
    conn.prepare_cached(
        "INSERT INTO abuse_reports (kind, description, contact, user_id, created_at, updated_at) \
         VALUES ('appeal', ?1, ?2, ?3, ?4, ?4)",
    )?
    .execute(params![description, user.email, user_id, now])?;
    Ok(conn.last_insert_rowid())
}

/// A link token for the account's appeal, valid until its deadline (or `None` when the
/// account cannot appeal any more).
pub fn appeal_token(
    conn: &Connection,
    keys: &Keys,
    user_id: i64,
    now: Timestamp,
) -> Result<Option<String>> {
    match appeal_status(conn, user_id, now)? {
        Appeal::Open { deadline, .. } => Ok(Some(tokens::issue(
            conn,
            keys,
            APPEAL_TOKEN,
            Some(user_id),
            "",
            (deadline - now).max(1) as u64,
            now,
        )?)),
        _ => Ok(None),
    }
}

/// Where mail links point and whether SMTP sends them.
pub struct MailSite<'a> {
    pub base_url: &'a str,
    pub site_name: &'a str,
    pub smtp: bool,
}

/// Queues the mail telling a terminated person why, and how to appeal (with a link that
/// works until the deadline).
pub fn queue_termination_mail(
    conn: &Connection,
    keys: &Keys,
    user: &User,
    reason: &str,
    site: &MailSite<'_>,
    now: Timestamp,
) -> Result<()> {
    let Some(token) = appeal_token(conn, keys, user.id, now)? else {
        return Err(Error::Internal("a terminated account cannot appeal".into()));
    };
    let deadline = format_datetime(now + APPEAL_WINDOW);
    let body = format!(
        "Hello,\n\nyour {site} account ({email}) has been terminated for this reason:\n\n  \
         {reason}\n\nYou can no longer sign in or use its API keys, and the remaining balance \
         has been forfeited.\n\nIf you believe this is a mistake, you can appeal once, until \
         {deadline} UTC, by opening this link:\n\n{base}/appeal/{token}\n\nYou can also get \
         there by trying to log in with your e-mail address and password.\n",
        site = site.site_name,
        email = user.email,
        base = site.base_url,
    );
    mail::enqueue(
        conn,
        &user.email,
        &format!("Your {} account has been terminated", site.site_name),
        &body,
        site.smtp,
        now,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::testing::account;
    use crate::domain::accounts::Role;

    fn report() -> NewReport {
        NewReport {
            phone: "+62 812-3456-7890".into(),
            service: "Telegram".into(),
            description: "Used to phish my mother.".into(),
            contact: String::new(),
        }
    }

    #[test]
    fn reports_are_checked_and_limited_per_address() {
        let conn = db::memory();
        assert!(matches!(
            submit_report(
                &conn,
                &NewReport {
                    phone: "12ab".into(),
                    ..report()
                },
                "ip",
                2,
                100
            ),
            Err(Error::Invalid(_))
        ));
        let id = submit_report(&conn, &report(), "ip", 2, 100).unwrap();
        assert_eq!(get(&conn, id).unwrap().phone, "6281234567890");
        submit_report(&conn, &report(), "ip", 2, 200).unwrap();
        assert!(matches!(
            submit_report(&conn, &report(), "ip", 2, 300),
            Err(Error::Throttled { retry_after: 3400 })
        ));
        submit_report(&conn, &report(), "other", 2, 300).unwrap();
        submit_report(&conn, &report(), "ip", 2, 3701).unwrap();
        assert_eq!(list(&conn, None, 10).unwrap().len(), 4);
    }

    #[test]
    fn states_move_forward_with_notes_and_audit() {
        let conn = db::memory();
        let admin = account(&conn, "root@example.com", Role::Admin);
        let me = Actor {
            id: admin,
            ip_hash: "h",
        };
        let id = submit_report(&conn, &report(), "ip", 5, 100).unwrap();
        set_state(&conn, me, id, State::Investigating, "looking", 110).unwrap();
        assert!(matches!(
            set_state(&conn, me, id, State::New, "", 120),
            Err(Error::Conflict(_))
        ));
        set_state(&conn, me, id, State::Actioned, "", 130).unwrap();
        add_note(&conn, me, id, "account terminated", 140).unwrap();
        let n = notes(&conn, id).unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].author.as_deref(), Some("root@example.com"));
        assert!(conn
            .execute("UPDATE abuse_notes SET text = 'x'", [])
            .is_err());
        let audited: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'abuse_state'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(audited, 2);
    }

    #[test]
    fn one_appeal_within_thirty_days() {
        let conn = db::memory();
        let u = account(&conn, "x@example.com", Role::User);
        assert_eq!(appeal_status(&conn, u, 10).unwrap(), Appeal::NotTerminated);
        accounts::set_state(&conn, u, AccountState::Terminated, "spam", 1000).unwrap();
        let id = submit_appeal(&conn, u, "It was not me, honestly.", 2000).unwrap();
        assert_eq!(get(&conn, id).unwrap().kind, Kind::Appeal);
        assert!(matches!(
            submit_appeal(&conn, u, "Second try, please.", 3000),
            Err(Error::Conflict(_))
        ));
        let late = account(&conn, "y@example.com", Role::User);
        accounts::set_state(&conn, late, AccountState::Terminated, "spam", 1000).unwrap();
        assert!(matches!(
            submit_appeal(&conn, late, "Too late, I know.", 1000 + APPEAL_WINDOW + 1),
            Err(Error::Forbidden(_))
        ));
    }
}
