//! The register of law-enforcement and other authorities' requests for data (date received,
//! agency, scope, outcome, notes), kept by the admin, and the yearly counts per outcome that
//! the public transparency page publishes. Every change is audited.

use rusqlite::{params, Connection, OptionalExtension};

use crate::clock::Timestamp;
use crate::domain::base::audit::Actor;
use crate::domain::{base::audit, Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    Disclosed,
    Partially,
    Rejected,
    NoData,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Pending,
        Outcome::Disclosed,
        Outcome::Partially,
        Outcome::Rejected,
        Outcome::NoData,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Disclosed => "disclosed",
            Outcome::Partially => "partially",
            Outcome::Rejected => "rejected",
            Outcome::NoData => "no_data",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pending => "Still being answered",
            Outcome::Disclosed => "Data disclosed",
            Outcome::Partially => "Data partially disclosed",
            Outcome::Rejected => "Rejected",
            Outcome::NoData => "No data held",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub id: i64,
    /// `YYYY-MM-DD`.
    pub received_on: String,
    pub agency: String,
    pub scope: String,
    pub outcome: Outcome,
    pub notes: String,
    pub updated_at: Timestamp,
}

/// What the admin's form sends.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub received_on: String,
    pub agency: String,
    pub scope: String,
    pub outcome: Outcome,
    pub notes: String,
}

/// A calendar date `YYYY-MM-DD` that exists.
fn check_date(text: &str) -> Result<String> {
    let t = text.trim();
    chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .map(|d| d.format("%Y-%m-%d").to_string())
        .map_err(|_| Error::invalid("Enter the date received as YYYY-MM-DD."))
}

fn field(text: &str, what: &str, max: usize, required: bool) -> Result<String> {
    let t = text.trim();
    if required && t.is_empty() {
        return Err(Error::invalid(format!("Enter the {what}.")));
    }
    if t.chars().count() > max {
        return Err(Error::invalid(format!(
            "The {what} must be at most {max} characters."
        )));
    }
    Ok(t.to_string())
}

fn checked(r: &NewRequest) -> Result<NewRequest> {
    Ok(NewRequest {
        received_on: check_date(&r.received_on)?,
        agency: field(&r.agency, "agency", 200, true)?,
        scope: field(&r.scope, "scope", 2000, true)?,
        outcome: r.outcome,
        notes: field(&r.notes, "notes", 5000, false)?,
    })
}

const COLS: &str = "id, received_on, agency, scope, outcome, notes, updated_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Request> {
    let outcome: String = r.get(4)?;
    Ok(Request {
        id: r.get(0)?,
        received_on: r.get(1)?,
        agency: r.get(2)?,
        scope: r.get(3)?,
        outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Pending),
        notes: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

pub fn list(conn: &Connection) -> Result<Vec<Request>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM legal_requests ORDER BY received_on DESC, id DESC"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get(conn: &Connection, id: i64) -> Result<Request> {
    conn.prepare_cached(&format!("SELECT {COLS} FROM legal_requests WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?
        .ok_or(Error::NotFound("request"))
}

/// Registers a request; audited (the audit row names the agency and outcome, not the scope).
pub fn add(conn: &Connection, actor: Actor<'_>, r: &NewRequest, now: Timestamp) -> Result<Request> {
    let r = checked(r)?;
    conn.execute(
        "INSERT INTO legal_requests (received_on, agency, scope, outcome, notes, created_by, \
         created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        params![
            r.received_on,
            r.agency,
            r.scope,
            r.outcome.as_str(),
            r.notes,
            actor.id,
            now
        ],
    )?;
    let id = conn.last_insert_rowid();
    audit::audit(
        conn,
        Some(actor.id),
        None,
        "legal_request_added",
        &format!(
            "#{id} received {} from {}: {}",
            r.received_on,
            r.agency,
            r.outcome.as_str()
        ),
        actor.ip_hash,
        now,
    )?;
    get(conn, id)
}

/// Updates a request (its outcome as it is answered, notes); audited.
pub fn update(
    conn: &Connection,
    actor: Actor<'_>,
    id: i64,
    r: &NewRequest,
    now: Timestamp,
) -> Result<Request> {
    let before = get(conn, id)?;
    let r = checked(r)?;
    conn.execute(
        "UPDATE legal_requests SET received_on = ?2, agency = ?3, scope = ?4, outcome = ?5, \
         notes = ?6, updated_at = ?7 WHERE id = ?1",
        params![
            id,
            r.received_on,
            r.agency,
            r.scope,
            r.outcome.as_str(),
            r.notes,
            now
        ],
    )?;
    audit::audit(
        conn,
        Some(actor.id),
        None,
        "legal_request_updated",
        &format!(
            "#{id} from {}: {} → {}",
            r.agency,
            before.outcome.as_str(),
            r.outcome.as_str()
        ),
        actor.ip_hash,
        now,
    )?;
    get(conn, id)
}

/// One year of the transparency report: requests received that year per outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Year {
    pub year: i32,
    pub total: i64,
    /// In the order of [`Outcome::ALL`].
    pub by_outcome: Vec<(Outcome, i64)>,
}

/// Counts per year received (newest first) and outcome: all the transparency page shows.
pub fn yearly_counts(conn: &Connection) -> Result<Vec<Year>> {
    let mut stmt = conn.prepare_cached(
        "SELECT CAST(substr(received_on, 1, 4) AS INTEGER), outcome, COUNT(*) FROM legal_requests \
         GROUP BY 1, 2 ORDER BY 1 DESC",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i32>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let mut years: Vec<Year> = Vec::new();
    for row in rows {
        let (year, outcome, n) = row?;
        if years.last().map(|y| y.year) != Some(year) {
            years.push(Year {
                year,
                total: 0,
                by_outcome: Outcome::ALL.into_iter().map(|o| (o, 0)).collect(),
            });
        }
        let y = years.last_mut().expect("pushed above");
        y.total += n;
        if let Some(slot) = y.by_outcome.iter_mut().find(|(o, _)| o.as_str() == outcome) {
            slot.1 += n;
        }
    }
    Ok(years)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    fn req(date: &str, outcome: Outcome) -> NewRequest {
        NewRequest {
            received_on: date.into(),
            agency: "Police".into(),
            scope: "Subscriber of +62812".into(),
            outcome,
            notes: String::new(),
        }
    }

    #[test]
    fn yearly_counts_per_outcome() {
        let conn = db::memory();
        let me = Actor { id: 0, ip_hash: "" };
        conn.execute(
            "INSERT INTO users (id, email, created_at) VALUES (0, 'root@example.com', 1)",
            [],
        )
        .unwrap();
        add(&conn, me, &req("2025-03-01", Outcome::Rejected), 1).unwrap();
        add(&conn, me, &req("2025-07-09", Outcome::NoData), 1).unwrap();
        let r = add(&conn, me, &req("2026-01-02", Outcome::Pending), 1).unwrap();
        update(&conn, me, r.id, &req("2026-01-02", Outcome::Disclosed), 2).unwrap();
        assert!(matches!(
            add(&conn, me, &req("2026-02-30", Outcome::Pending), 3),
            Err(Error::Invalid(_))
        ));
        let years = yearly_counts(&conn).unwrap();
        assert_eq!(years.len(), 2);
        assert_eq!((years[0].year, years[0].total), (2026, 1));
        let get = |y: &Year, o: Outcome| y.by_outcome.iter().find(|x| x.0 == o).unwrap().1;
        assert_eq!(get(&years[0], Outcome::Disclosed), 1);
        assert_eq!(get(&years[1], Outcome::Rejected), 1);
        assert_eq!(get(&years[1], Outcome::NoData), 1);
        assert_eq!(years[1].total, 2);
    }
}
