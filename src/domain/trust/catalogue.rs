//! The admin's changes to the catalogue itself: countries, services and operators are
//! added, renamed and retired, and a service's activation lifetime is set. Each change is
//! audited (`catalogue_change`) in the caller's transaction.
//!
//! Ids and codes follow the SMS-Activate numbering (a country's numeric id, a service's
//! short code) and the 5sim names, which customers' software sends: they are given when an
//! entry is added and never change after. Retiring is not deleting: the entry stays, so
//! every order that used it keeps its name, but it is off sale for good and its id or code
//! is never given to another entry.

use rusqlite::{params, Connection, OptionalExtension};

use crate::clock::Timestamp;
use crate::domain::base::audit::{self, Actor};
use crate::domain::{Error, Result};

/// Shortest and longest activation lifetime a service may have, in seconds.
pub const LIFETIME_MIN: i64 = 60;
pub const LIFETIME_MAX: i64 = 24 * 3600;

/// A conflict saying `why` when `sql` (a `SELECT 1 …` over ids and codes) finds a row: ids
/// and codes are never given twice, retired entries keep theirs.
fn refuse_if_taken(
    conn: &Connection,
    sql: &str,
    keys: impl rusqlite::Params,
    why: impl Into<String>,
) -> Result<()> {
    if conn.prepare_cached(sql)?.exists(keys)? {
        return Err(Error::Conflict(why.into()));
    }
    Ok(())
}

fn audited(conn: &Connection, actor: Actor<'_>, detail: &str, now: Timestamp) -> Result<()> {
    audit::audit(
        conn,
        Some(actor.id),
        None,
        "catalogue_change",
        detail,
        actor.ip_hash,
        now,
    )
}

fn name_of(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 60 {
        return Err(Error::invalid("A name has 1 to 60 characters."));
    }
    Ok(name.to_string())
}

/// A 5sim name or a short code: lower-case letters, digits and `_`, 1 to `max` long.
fn slug(what: &str, text: &str, max: usize) -> Result<String> {
    let t = text.trim();
    if t.is_empty()
        || t.len() > max
        || !t
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(Error::invalid(format!(
            "{what}: lower-case letters, digits and _, at most {max}."
        )));
    }
    Ok(t.to_string())
}

/// An entry that exists and is not retired, or why not.
fn live(conn: &Connection, sql: &str, key: &dyn rusqlite::ToSql, what: &'static str) -> Result<()> {
    let retired: Option<Option<i64>> = conn
        .prepare_cached(sql)?
        .query_row([key], |r| r.get(0))
        .optional()?;
    match retired {
        None => Err(Error::NotFound(what)),
        Some(Some(_)) => Err(Error::Conflict(format!("This {what} is retired."))),
        Some(None) => Ok(()),
    }
}

pub struct NewCountry<'a> {
    pub id: i64,
    pub iso: &'a str,
    pub prefix: &'a str,
    pub name: &'a str,
    pub fivesim_name: &'a str,
}

/// Adds a country (on sale, no prices yet: nothing is sold until it is priced).
pub fn add_country(
    conn: &Connection,
    actor: Actor<'_>,
    c: &NewCountry<'_>,
    now: Timestamp,
) -> Result<()> {
    if !(0..=9999).contains(&c.id) {
        return Err(Error::invalid("A country id is a number from 0 to 9999."));
    }
    let iso = c.iso.trim().to_ascii_lowercase();
    if iso.len() != 2 || !iso.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(Error::invalid("The ISO code has two letters, e.g. id."));
    }
    let prefix = c.prefix.trim().trim_start_matches('+');
    if prefix.is_empty() || prefix.len() > 4 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid(
            "The dialing code has 1 to 4 digits, e.g. 62.",
        ));
    }
    let name = name_of(c.name)?;
    let fivesim = slug("The 5sim name", c.fivesim_name, 40)?;
    refuse_if_taken(
        conn,
        "SELECT 1 FROM countries WHERE id = ?1 OR fivesim_name = ?2",
        params![c.id, fivesim],
        "That id or 5sim name belongs to a country already (retired ones keep theirs).",
    )?;
    conn.execute(
        "INSERT INTO countries (id, iso, prefix, name, fivesim_name) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![c.id, iso, prefix, name, fivesim],
    )?;
    audited(
        conn,
        actor,
        &format!("country {} added: {name} (+{prefix}, {fivesim})", c.id),
        now,
    )
}

pub struct NewService<'a> {
    pub code: &'a str,
    pub name: &'a str,
    pub fivesim_name: &'a str,
    /// `None`: the install's `activation_ttl`.
    pub lifetime_secs: Option<i64>,
}

fn check_lifetime(secs: Option<i64>) -> Result<()> {
    match secs {
        Some(s) if !(LIFETIME_MIN..=LIFETIME_MAX).contains(&s) => Err(Error::invalid(
            "An activation lifetime is from 1 minute to 24 hours.",
        )),
        _ => Ok(()),
    }
}

/// Adds a service (on sale, no prices yet).
pub fn add_service(
    conn: &Connection,
    actor: Actor<'_>,
    s: &NewService<'_>,
    now: Timestamp,
) -> Result<()> {
    let code = slug("The short code", s.code, 12)?;
    let name = name_of(s.name)?;
    let fivesim = slug("The 5sim name", s.fivesim_name, 40)?;
    check_lifetime(s.lifetime_secs)?;
    refuse_if_taken(
        conn,
        "SELECT 1 FROM services WHERE code = ?1 OR fivesim_name = ?2",
        params![code, fivesim],
        "That code or 5sim name belongs to a service already (retired ones keep theirs).",
    )?;
    conn.execute(
        "INSERT INTO services (code, name, fivesim_name, lifetime_secs) VALUES (?1, ?2, ?3, ?4)",
        params![code, name, fivesim, s.lifetime_secs],
    )?;
    audited(
        conn,
        actor,
        &format!("service {code} added: {name} ({fivesim})"),
        now,
    )
}

/// Renames a country (its id and 5sim name stay).
pub fn rename_country(
    conn: &Connection,
    actor: Actor<'_>,
    id: i64,
    name: &str,
    now: Timestamp,
) -> Result<()> {
    let name = name_of(name)?;
    live(
        conn,
        "SELECT retired_at FROM countries WHERE id = ?1",
        &id,
        "country",
    )?;
    let old: String = conn.query_row("SELECT name FROM countries WHERE id = ?1", [id], |r| {
        r.get(0)
    })?;
    conn.execute(
        "UPDATE countries SET name = ?2 WHERE id = ?1",
        params![id, name],
    )?;
    audited(
        conn,
        actor,
        &format!("country {id} renamed: {old} → {name}"),
        now,
    )
}

/// Renames a service (its code and 5sim name stay).
pub fn rename_service(
    conn: &Connection,
    actor: Actor<'_>,
    code: &str,
    name: &str,
    now: Timestamp,
) -> Result<()> {
    let name = name_of(name)?;
    live(
        conn,
        "SELECT retired_at FROM services WHERE code = ?1",
        &code,
        "service",
    )?;
    let old: String = conn.query_row("SELECT name FROM services WHERE code = ?1", [code], |r| {
        r.get(0)
    })?;
    conn.execute(
        "UPDATE services SET name = ?2 WHERE code = ?1",
        params![code, name],
    )?;
    audited(
        conn,
        actor,
        &format!("service {code} renamed: {old} → {name}"),
        now,
    )
}

/// Sets how long a service's activations live (`None`: the install's `activation_ttl`).
/// Orders placed afterwards use it; live ones keep the end they were given.
pub fn set_lifetime(
    conn: &Connection,
    actor: Actor<'_>,
    code: &str,
    secs: Option<i64>,
    now: Timestamp,
) -> Result<()> {
    check_lifetime(secs)?;
    live(
        conn,
        "SELECT retired_at FROM services WHERE code = ?1",
        &code,
        "service",
    )?;
    conn.execute(
        "UPDATE services SET lifetime_secs = ?2 WHERE code = ?1",
        params![code, secs],
    )?;
    let said = secs.map_or("the default".to_string(), |s| format!("{} min", s / 60));
    audited(
        conn,
        actor,
        &format!("service {code} lifetime: {said}"),
        now,
    )
}

/// Retires a country: off sale for good; its orders keep its name.
pub fn retire_country(conn: &Connection, actor: Actor<'_>, id: i64, now: Timestamp) -> Result<()> {
    live(
        conn,
        "SELECT retired_at FROM countries WHERE id = ?1",
        &id,
        "country",
    )?;
    conn.execute(
        "UPDATE countries SET retired_at = ?2, enabled = 0 WHERE id = ?1",
        params![id, now],
    )?;
    audited(conn, actor, &format!("country {id} retired"), now)
}

/// Retires a service: off sale for good; its orders keep its name.
pub fn retire_service(
    conn: &Connection,
    actor: Actor<'_>,
    code: &str,
    now: Timestamp,
) -> Result<()> {
    live(
        conn,
        "SELECT retired_at FROM services WHERE code = ?1",
        &code,
        "service",
    )?;
    conn.execute(
        "UPDATE services SET retired_at = ?2, enabled = 0 WHERE code = ?1",
        params![code, now],
    )?;
    audited(conn, actor, &format!("service {code} retired"), now)
}

/// One mobile operator of a country, retired ones included, for the admin.
#[derive(Debug, Clone)]
pub struct OperatorRow {
    pub country_id: i64,
    pub code: String,
    pub name: String,
    pub retired: bool,
}

/// Every operator (retired ones last within their country).
pub fn operators(conn: &Connection) -> Result<Vec<OperatorRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT country_id, code, name, retired_at IS NOT NULL FROM operators \
         ORDER BY country_id, retired_at IS NOT NULL, code",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(OperatorRow {
            country_id: r.get(0)?,
            code: r.get(1)?,
            name: r.get(2)?,
            retired: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Adds a mobile operator to a country.
pub fn add_operator(
    conn: &Connection,
    actor: Actor<'_>,
    country: i64,
    code: &str,
    name: &str,
    now: Timestamp,
) -> Result<()> {
    let code = slug("The operator code", code, 40)?;
    let name = name_of(name)?;
    live(
        conn,
        "SELECT retired_at FROM countries WHERE id = ?1",
        &country,
        "country",
    )?;
    refuse_if_taken(
        conn,
        "SELECT 1 FROM operators WHERE country_id = ?1 AND code = ?2",
        params![country, code],
        "That code belongs to an operator of this country already.",
    )?;
    conn.execute(
        "INSERT INTO operators (country_id, code, name) VALUES (?1, ?2, ?3)",
        params![country, code, name],
    )?;
    audited(
        conn,
        actor,
        &format!("operator {country}/{code} added: {name}"),
        now,
    )
}

fn live_operator(conn: &Connection, country: i64, code: &str) -> Result<String> {
    let row: Option<(String, Option<i64>)> = conn
        .prepare_cached(
            "SELECT name, retired_at FROM operators WHERE country_id = ?1 AND code = ?2",
        )?
        .query_row(params![country, code], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match row {
        None => Err(Error::NotFound("operator")),
        Some((_, Some(_))) => Err(Error::Conflict("This operator is retired.".into())),
        Some((name, None)) => Ok(name),
    }
}

pub fn rename_operator(
    conn: &Connection,
    actor: Actor<'_>,
    country: i64,
    code: &str,
    name: &str,
    now: Timestamp,
) -> Result<()> {
    let name = name_of(name)?;
    let old = live_operator(conn, country, code)?;
    conn.execute(
        "UPDATE operators SET name = ?3 WHERE country_id = ?1 AND code = ?2",
        params![country, code, name],
    )?;
    audited(
        conn,
        actor,
        &format!("operator {country}/{code} renamed: {old} → {name}"),
        now,
    )
}

/// Retires an operator: no longer offered or accepted in orders.
pub fn retire_operator(
    conn: &Connection,
    actor: Actor<'_>,
    country: i64,
    code: &str,
    now: Timestamp,
) -> Result<()> {
    live_operator(conn, country, code)?;
    conn.execute(
        "UPDATE operators SET retired_at = ?3 WHERE country_id = ?1 AND code = ?2",
        params![country, code, now],
    )?;
    audited(
        conn,
        actor,
        &format!("operator {country}/{code} retired"),
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::testing::account;
    use crate::domain::accounts::Role;
    use crate::domain::market::catalogue;

    #[test]
    fn entries_are_added_renamed_and_retired_never_reused() {
        let conn = db::memory();
        catalogue::seed_if_empty(&conn).unwrap();
        let root = account(&conn, "root@example.com", Role::Admin);
        let me = Actor {
            id: root,
            ip_hash: "ip",
        };
        let nc = NewCountry {
            id: 4242,
            iso: "XA",
            prefix: "+999",
            name: "Atlantis",
            fivesim_name: "atlantis",
        };
        add_country(&conn, me, &nc, 1).unwrap();
        assert!(matches!(
            add_country(&conn, me, &nc, 1),
            Err(Error::Conflict(_))
        ));
        rename_country(&conn, me, 4242, "New Atlantis", 2).unwrap();
        assert_eq!(
            catalogue::country(&conn, 4242).unwrap().unwrap().name,
            "New Atlantis"
        );
        retire_country(&conn, me, 4242, 3).unwrap();
        assert!(catalogue::live_country(&conn, 4242).is_err());
        assert!(matches!(
            rename_country(&conn, me, 4242, "X", 4),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            catalogue::set_enabled(&conn, "countries", "4242", true),
            Err(Error::Conflict(_))
        ));

        let ns = NewService {
            code: "zq",
            name: "Zequ",
            fivesim_name: "zequ",
            lifetime_secs: Some(600),
        };
        add_service(&conn, me, &ns, 5).unwrap();
        assert_eq!(
            catalogue::service(&conn, "zq")
                .unwrap()
                .unwrap()
                .lifetime_secs,
            Some(600)
        );
        set_lifetime(&conn, me, "zq", Some(1800), 6).unwrap();
        assert!(set_lifetime(&conn, me, "zq", Some(5), 6).is_err());
        set_lifetime(&conn, me, "zq", None, 7).unwrap();
        assert_eq!(
            catalogue::service(&conn, "zq")
                .unwrap()
                .unwrap()
                .lifetime_secs,
            None
        );
        retire_service(&conn, me, "zq", 8).unwrap();
        assert!(catalogue::live_service(&conn, "zq").is_err());
        assert!(add_service(&conn, me, &ns, 9).is_err(), "code never reused");

        add_operator(&conn, me, 6, "tri", "Tri", 10).unwrap();
        assert!(catalogue::operator_exists(&conn, 6, "tri").unwrap());
        rename_operator(&conn, me, 6, "tri", "3 (Tri)", 11).unwrap();
        retire_operator(&conn, me, 6, "tri", 12).unwrap();
        assert!(!catalogue::operator_exists(&conn, 6, "tri").unwrap());
        assert!(operators(&conn)
            .unwrap()
            .iter()
            .any(|o| o.code == "tri" && o.retired));
        let audits: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'catalogue_change'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(audits, 10);
    }
}
