//! The admin's price tools: many rows saved at once, a markup over the providers' cost for
//! one country or all, one country's prices copied to another, and the price list as CSV
//! out and in. Every bulk tool first computes its [`Change`]s (a preview that changes
//! nothing); applying them writes each changed price with its `price_change` audit row and
//! one `prices_bulk` row saying what the batch was, all in the caller's transaction.
//!
//! The CSV is `country,service,price,rent_hour` with a header line, amounts as decimals of
//! the install's currency (`0.35`); an import names only the pairs it changes.

use std::collections::HashMap;

use rusqlite::{params, Connection};

use crate::clock::Timestamp;
use crate::domain::base::audit::{self, Actor};
use crate::domain::base::money::Money;
use crate::domain::market::catalogue::{self, Price};
use crate::domain::trust::admin;
use crate::domain::{Error, Result};

/// The CSV's header line.
pub const CSV_HEADER: &str = "country,service,price,rent_hour";

/// Most lines an import may have (every pair of a large catalogue fits).
pub const MAX_LINES: usize = 20_000;

/// One price a tool would set, beside the one it replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub country: i64,
    pub service: String,
    /// `None`: the pair has no price yet (it is not sold).
    pub old: Option<Price>,
    pub new: Price,
}

/// The current prices (the pair's own, not an operator's) of one country or all.
fn current(conn: &Connection, country: Option<i64>) -> Result<HashMap<(i64, String), Price>> {
    Ok(catalogue::price_rows(conn, country, None)?
        .into_iter()
        .filter(|r| r.operator.is_empty())
        .map(|r| {
            (
                (r.country, r.service),
                Price {
                    price_minor: r.price_minor,
                    rent_hour_minor: r.rent_hour_minor,
                },
            )
        })
        .collect())
}

/// `amount × (100 + percent) / 100`, rounded up to a whole minor unit.
pub fn marked_up(cost_minor: i64, percent: u32) -> i64 {
    let n = cost_minor as i128 * (100 + percent as i128);
    ((n + 99) / 100) as i64
}

/// What a markup changes, and what it leaves alone.
#[derive(Debug)]
pub struct Markup {
    pub changes: Vec<Change>,
    /// Priced pairs no provider sells (no known cost): they keep their price.
    pub without_cost: usize,
    /// Pairs a provider sells that have no price yet: a markup gives no rent, so it does
    /// not start selling them; the admin prices them (with a rent) in the table.
    pub unpriced: usize,
}

/// What a markup of `percent` over cost would change in `country` (or all countries): the
/// activation price of every priced pair a provider sells becomes its cheapest cost plus
/// the markup; the rent stays.
pub fn markup(conn: &Connection, country: Option<i64>, percent: u32) -> Result<Markup> {
    if percent > 1000 {
        return Err(Error::invalid("A markup is a percentage from 0 to 1000."));
    }
    let now_prices = current(conn, country)?;
    let mut stmt = conn.prepare_cached(
        "SELECT o.country_id, o.service, MIN(o.cost_minor) FROM provider_offers o \
         JOIN providers p ON p.id = o.provider_id JOIN countries c ON c.id = o.country_id \
         JOIN services s ON s.code = o.service \
         WHERE p.enabled = 1 AND (?1 IS NULL OR o.country_id = ?1) \
         AND c.retired_at IS NULL AND s.retired_at IS NULL \
         GROUP BY o.country_id, o.service ORDER BY o.country_id, o.service",
    )?;
    let costs: Vec<(i64, String, i64)> = stmt
        .query_map(params![country], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut changes = Vec::new();
    let mut unpriced = 0;
    for (c, s, cost) in &costs {
        let Some(old) = now_prices.get(&(*c, s.clone())).copied() else {
            unpriced += 1;
            continue;
        };
        let new = Price {
            price_minor: marked_up(*cost, percent),
            rent_hour_minor: old.rent_hour_minor,
        };
        if old != new {
            changes.push(Change {
                country: *c,
                service: s.clone(),
                old: Some(old),
                new,
            });
        }
    }
    let without_cost = now_prices
        .keys()
        .filter(|(c, s)| !costs.iter().any(|(cc, ss, _)| cc == c && ss == s))
        .count();
    Ok(Markup {
        changes,
        without_cost,
        unpriced,
    })
}

/// What copying every price of `from` to `to` would change.
pub fn copy(conn: &Connection, from: i64, to: i64) -> Result<Vec<Change>> {
    if from == to {
        return Err(Error::invalid("Choose two different countries."));
    }
    for id in [from, to] {
        if catalogue::country(conn, id)?.is_none() {
            return Err(Error::BadCountry);
        }
    }
    if catalogue::country(conn, to)?.is_some_and(|c| c.retired) {
        return Err(Error::invalid(format!(
            "Country {to} is retired: it cannot be priced."
        )));
    }
    let source = current(conn, Some(from))?;
    let target = current(conn, Some(to))?;
    let mut changes: Vec<Change> = source
        .into_iter()
        .filter_map(|((_, service), new)| {
            let old = target.get(&(to, service.clone())).copied();
            (old != Some(new)).then_some(Change {
                country: to,
                service,
                old,
                new,
            })
        })
        .collect();
    changes.sort_by(|a, b| a.service.cmp(&b.service));
    Ok(changes)
}

/// The price list (pairs' own prices) of one country or all, as CSV.
pub fn export_csv(conn: &Connection, country: Option<i64>, digits: u32) -> Result<String> {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for r in catalogue::price_rows(conn, country, None)? {
        if r.operator.is_empty() {
            out.push_str(&format!(
                "{},{},{},{}\n",
                r.country,
                r.service,
                Money(r.price_minor).decimal(digits),
                Money(r.rent_hour_minor).decimal(digits)
            ));
        }
    }
    Ok(out)
}

/// The changes a CSV would make. Refused as a whole, naming the lines, when any line is
/// not a known pair with two amounts.
pub fn parse_csv(conn: &Connection, text: &str, digits: u32) -> Result<Vec<Change>> {
    let now_prices = current(conn, None)?;
    // Switched-off countries can be priced; retired ones cannot (their line is named).
    let all = catalogue::countries(conn)?;
    let countries: Vec<i64> = all.iter().filter(|c| !c.retired).map(|c| c.id).collect();
    let retired: Vec<i64> = all.iter().filter(|c| c.retired).map(|c| c.id).collect();
    let services: Vec<String> = catalogue::services(conn)?
        .into_iter()
        .map(|s| s.code)
        .collect();
    let mut changes = Vec::new();
    let mut wrong = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() > MAX_LINES {
        return Err(Error::invalid(format!(
            "At most {MAX_LINES} lines can be imported at once."
        )));
    }
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        let n = i + 1;
        if line.is_empty() || line.starts_with('#') || line.eq_ignore_ascii_case(CSV_HEADER) {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let [country, service, price, rent] = cells.as_slice() else {
            wrong.push(format!("line {n}: four values expected"));
            continue;
        };
        let Some(country) = country
            .parse::<i64>()
            .ok()
            .filter(|c| countries.contains(c))
        else {
            let why = match country.parse::<i64>() {
                Ok(c) if retired.contains(&c) => "retired",
                _ => "unknown",
            };
            wrong.push(format!("line {n}: {why} country {country}"));
            continue;
        };
        if !services.iter().any(|s| s == service) {
            wrong.push(format!("line {n}: unknown service {service}"));
            continue;
        }
        let (Some(price), Some(rent)) = (
            Money::parse(price, digits, false),
            Money::parse(rent, digits, false),
        ) else {
            wrong.push(format!("line {n}: amounts such as 0.35 expected"));
            continue;
        };
        if !seen.insert((country, service.to_string())) {
            wrong.push(format!("line {n}: {country},{service} named twice"));
            continue;
        }
        let new = Price {
            price_minor: price.0,
            rent_hour_minor: rent.0,
        };
        let old = now_prices.get(&(country, service.to_string())).copied();
        if old != Some(new) {
            changes.push(Change {
                country,
                service: service.to_string(),
                old,
                new,
            });
        }
    }
    if !wrong.is_empty() {
        let more = wrong.len().saturating_sub(10);
        let mut msg = format!(
            "Nothing was imported: {}",
            wrong[..wrong.len().min(10)].join("; ")
        );
        if more > 0 {
            msg.push_str(&format!(" (and {more} more)"));
        }
        return Err(Error::invalid(format!("{msg}.")));
    }
    Ok(changes)
}

/// Which bulk tool made a preview: the Apply form carries it back (`encode`), and the
/// `prices_bulk` audit row's text is built from it here, on the server, never taken from
/// the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Markup { percent: u32, country: Option<i64> },
    Copy { from: i64, to: i64 },
    Import,
}

impl Tool {
    pub fn encode(self) -> String {
        match self {
            Tool::Markup { percent, country } => format!(
                "markup:{percent}:{}",
                country.map_or(String::new(), |c| c.to_string())
            ),
            Tool::Copy { from, to } => format!("copy:{from}:{to}"),
            Tool::Import => "import".into(),
        }
    }

    /// What [`Tool::encode`] wrote; anything else is a CSV import (the changes are the
    /// CSV's either way).
    pub fn decode(text: &str) -> Tool {
        let parts: Vec<&str> = text.trim().split(':').collect();
        match parts.as_slice() {
            ["markup", p, c] => match (p.parse(), c) {
                (Ok(percent), &"") => Tool::Markup {
                    percent,
                    country: None,
                },
                (Ok(percent), c) => match c.parse() {
                    Ok(c) => Tool::Markup {
                        percent,
                        country: Some(c),
                    },
                    Err(_) => Tool::Import,
                },
                _ => Tool::Import,
            },
            ["copy", f, t] => match (f.parse(), t.parse()) {
                (Ok(from), Ok(to)) => Tool::Copy { from, to },
                _ => Tool::Import,
            },
            _ => Tool::Import,
        }
    }

    /// The tool in words, countries by name: the preview's title and the audit's text.
    pub fn describe(self, conn: &Connection) -> Result<String> {
        let name = |id: i64| -> Result<String> {
            Ok(catalogue::country(conn, id)?.map_or(id.to_string(), |c| c.name))
        };
        Ok(match self {
            Tool::Markup { percent, country } => {
                let place = match country {
                    Some(c) => name(c)?,
                    None => "all countries".into(),
                };
                format!("markup {percent}% over cost, {place}")
            }
            Tool::Copy { from, to } => {
                format!("prices of {} copied to {}", name(from)?, name(to)?)
            }
            Tool::Import => "CSV import".into(),
        })
    }
}

/// The changes as CSV lines, the form the preview's Apply button carries back.
pub fn to_csv(changes: &[Change], digits: u32) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for c in changes {
        out.push_str(&format!(
            "{},{},{},{}\n",
            c.country,
            c.service,
            Money(c.new.price_minor).decimal(digits),
            Money(c.new.rent_hour_minor).decimal(digits)
        ));
    }
    out
}

/// Applies `changes`: each price with its audit row, then one `prices_bulk` row naming the
/// batch (the `tool` that made them, described here). Returns how many prices changed.
pub fn apply(
    conn: &Connection,
    actor: Actor<'_>,
    changes: &[Change],
    tool: Tool,
    digits: u32,
    now: Timestamp,
) -> Result<usize> {
    if changes.is_empty() {
        return Err(Error::invalid("There is nothing to change."));
    }
    let what = tool.describe(conn)?;
    for c in changes {
        admin::set_price(conn, actor, c.country, &c.service, "", c.new, digits, now)?;
    }
    audit::audit(
        conn,
        Some(actor.id),
        None,
        "prices_bulk",
        &format!("{what}: {} prices", changes.len()),
        actor.ip_hash,
        now,
    )?;
    Ok(changes.len())
}

/// One row of a country's price table as posted.
#[derive(Debug, Clone)]
pub struct RowEdit {
    pub service: String,
    /// What the row showed when the page was loaded (`Some(None)`: unpriced); `None` when
    /// the form did not say (a client without the `was.` fields): then the stored price is
    /// taken as what it showed.
    pub was: Option<Option<Price>>,
    pub new: Price,
}

/// One Save for the rows of a country's price table: a row whose typed price is what it
/// showed is left alone (the admin did not change it, even if someone else did meanwhile);
/// a changed row is written (and audited) only if the stored price is still what the page
/// showed. When any changed row was changed meanwhile (another tab, a bulk tool, another
/// admin), nothing is written and the conflict names them. Returns how many changed.
pub fn save_rows(
    conn: &Connection,
    actor: Actor<'_>,
    country: i64,
    rows: &[RowEdit],
    digits: u32,
    now: Timestamp,
) -> Result<usize> {
    let now_prices = current(conn, Some(country))?;
    let mut writes = Vec::new();
    let mut stale = Vec::new();
    for row in rows {
        let stored = now_prices.get(&(country, row.service.clone())).copied();
        let was = row.was.unwrap_or(stored);
        if was == Some(row.new) {
            continue; // not changed on this page
        }
        if stored != was {
            stale.push(row.service.as_str());
        } else {
            writes.push(row);
        }
    }
    if !stale.is_empty() {
        return Err(Error::Conflict(format!(
            "Nothing was saved: the prices of {} changed since this page was loaded (in \
             another tab, by a bulk change or by another administrator). Check them and \
             enter your changes again.",
            stale.join(", ")
        )));
    }
    for row in &writes {
        admin::set_price(conn, actor, country, &row.service, "", row.new, digits, now)?;
    }
    Ok(writes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::testing::account;
    use crate::domain::accounts::Role;

    fn world() -> (Connection, i64) {
        let conn = db::memory();
        catalogue::seed_if_empty(&conn).unwrap();
        let root = account(&conn, "root@example.com", Role::Admin);
        (conn, root)
    }

    #[test]
    fn markup_rounds_up_to_a_whole_minor_unit() {
        assert_eq!(marked_up(100, 20), 120);
        assert_eq!(marked_up(33, 10), 37);
        assert_eq!(marked_up(0, 50), 0);
    }

    #[test]
    fn markup_prices_what_providers_sell_and_leaves_the_rest() {
        let (conn, root) = world();
        conn.execute_batch(
            "INSERT INTO providers (id, name, kind, base_url, key_sealed, created_at) \
             VALUES (1, 'up', 'sms-activate', 'http://x', 'k', 1);
             INSERT INTO provider_offers VALUES (1, 6, 'tg', 50, 60, 10, 1);
             INSERT INTO provider_offers VALUES (1, 22, 'wa', 80, 96, 10, 1);",
        )
        .unwrap();
        let Markup {
            changes,
            without_cost: without,
            unpriced,
        } = markup(&conn, Some(6), 30).unwrap();
        assert_eq!(unpriced, 0);
        assert_eq!(changes.len(), 1);
        assert_eq!((changes[0].country, changes[0].service.as_str()), (6, "tg"));
        assert_eq!(changes[0].new.price_minor, 65);
        assert_eq!(
            changes[0].new.rent_hour_minor,
            changes[0].old.unwrap().rent_hour_minor
        );
        assert!(without > 10);
        assert_eq!(markup(&conn, None, 30).unwrap().changes.len(), 2);
        let me = Actor {
            id: root,
            ip_hash: "ip",
        };
        assert_eq!(apply(&conn, me, &changes, Tool::Import, 2, 5).unwrap(), 1);
        assert_eq!(
            catalogue::price(&conn, 6, "tg", "")
                .unwrap()
                .unwrap()
                .price_minor,
            65
        );
        assert!(
            markup(&conn, Some(6), 30).unwrap().changes.is_empty(),
            "nothing left"
        );
        let rows: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM audit_log WHERE action IN ('price_change', 'prices_bulk')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(rows, 2);
    }

    #[test]
    fn csv_round_trips_and_a_bad_line_refuses_the_whole_import() {
        let (conn, _) = world();
        let csv = export_csv(&conn, Some(6), 2).unwrap();
        assert!(csv.starts_with("country,service,price,rent_hour\n6,"));
        assert!(parse_csv(&conn, &csv, 2).unwrap().is_empty(), "no change");
        let edited = csv.replacen("6,tg,", "6,tg,9.99,1.00\n#", 1);
        let changes = parse_csv(&conn, &edited, 2).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].new.price_minor, 999);
        let e = parse_csv(&conn, "6,tg,1.00,0.50\n999,tg,1,1\n6,zz,1,1\n6,tg", 2).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("line 2: unknown country 999"), "{msg}");
        assert!(msg.contains("line 3: unknown service zz"), "{msg}");
        assert!(msg.contains("line 4: four values"), "{msg}");
        let copied = copy(&conn, 6, 22).unwrap();
        assert!(copied.iter().all(|c| c.country == 22));
        assert!(matches!(copy(&conn, 6, 6), Err(Error::Invalid(_))));
    }

    #[test]
    fn markup_leaves_unpriced_pairs_unsold_and_counts_them() {
        let (conn, _) = world();
        conn.execute_batch(
            "INSERT INTO providers (id, name, kind, base_url, key_sealed, created_at) \
             VALUES (1, 'up', 'sms-activate', 'http://x', 'k', 1);
             DELETE FROM prices WHERE country_id = 6 AND service = 'tg';
             INSERT INTO provider_offers VALUES (1, 6, 'tg', 50, 60, 10, 1);",
        )
        .unwrap();
        let m = markup(&conn, Some(6), 30).unwrap();
        assert!(m.changes.is_empty(), "{:?}", m.changes);
        assert_eq!(m.unpriced, 1);
        assert!(catalogue::price(&conn, 6, "tg", "").unwrap().is_none());
    }

    #[test]
    fn a_switched_off_country_can_be_priced_and_a_retired_one_is_named() {
        let (conn, root) = world();
        let me = Actor {
            id: root,
            ip_hash: "ip",
        };
        catalogue::set_enabled(&conn, "countries", "22", false).unwrap();
        // Copy, CSV import and the table's Save all reach a switched-off country.
        let copied = copy(&conn, 6, 22).unwrap();
        assert!(!copied.is_empty());
        assert_eq!(
            apply(&conn, me, &copied, Tool::Copy { from: 6, to: 22 }, 2, 5).unwrap(),
            copied.len()
        );
        let csv = parse_csv(&conn, "22,tg,7.77,0.50", 2).unwrap();
        assert_eq!(apply(&conn, me, &csv, Tool::Import, 2, 6).unwrap(), 1);
        let row = Price {
            price_minor: 888,
            rent_hour_minor: 60,
        };
        let edit = RowEdit {
            service: "tg".into(),
            was: None,
            new: row,
        };
        assert_eq!(save_rows(&conn, me, 22, &[edit], 2, 7).unwrap(), 1);
        assert_eq!(catalogue::price(&conn, 22, "tg", "").unwrap(), Some(row));
        // A retired country is refused before anything changes, and named.
        conn.execute(
            "UPDATE countries SET retired_at = 1, enabled = 0 WHERE id = 22",
            [],
        )
        .unwrap();
        let msg = parse_csv(&conn, "6,tg,1.00,0.50\n22,tg,1,1", 2)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("line 2: retired country 22"), "{msg}");
        assert!(copy(&conn, 6, 22).unwrap_err().to_string().contains("22"));
    }

    #[test]
    fn the_batch_is_described_on_the_server_and_prices_are_capped() {
        let (conn, root) = world();
        for tool in [
            Tool::Markup {
                percent: 20,
                country: Some(6),
            },
            Tool::Markup {
                percent: 5,
                country: None,
            },
            Tool::Copy { from: 6, to: 22 },
            Tool::Import,
        ] {
            assert_eq!(Tool::decode(&tool.encode()), tool);
        }
        assert_eq!(Tool::decode("Prices fixed by the boss"), Tool::Import);
        let tool = Tool::Copy { from: 6, to: 22 };
        assert_eq!(
            tool.describe(&conn).unwrap(),
            "prices of Indonesia copied to India"
        );
        // An absurd price is refused: a rent × the longest rental must stay an integer.
        let huge = parse_csv(&conn, "6,tg,1.00,99999999999999.00", 2).unwrap();
        let me = Actor {
            id: root,
            ip_hash: "ip",
        };
        assert!(matches!(
            apply(&conn, me, &huge, Tool::Import, 2, 5),
            Err(Error::Invalid(_))
        ));
        let most = Price {
            price_minor: catalogue::MAX_PRICE_MINOR,
            rent_hour_minor: catalogue::MAX_PRICE_MINOR,
        };
        catalogue::set_price(&conn, 6, "tg", "", most).unwrap();
        assert!(catalogue::MAX_PRICE_MINOR
            .checked_mul(crate::domain::market::rentals::MAX_HOURS * 4)
            .is_some());
    }
}
