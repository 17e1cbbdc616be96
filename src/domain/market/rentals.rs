//! Rentals (SPEC §4): a number for hours to weeks; every SMS to it during the rental reaches
//! the renter. Cancel with a full refund within the first 20 minutes if no SMS came; extend
//! while active; optional auto-renew while the balance lasts; expiry frees the number.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::clock::Timestamp;
use crate::domain::accounts::User;
use crate::domain::market::activations::{
    free_number, pick_or_simulate, take_number, Policy, Wanted,
};
use crate::domain::market::wallet::{self, Kind};
use crate::domain::{
    market::blocklist, market::catalogue, market::earnings, market::simulator, market::webhooks,
    Error, Result,
};

/// Rental lengths allowed, in hours (SMS-Activate: 4 to 1344 hours = 8 weeks).
pub const MIN_HOURS: i64 = 4;
pub const MAX_HOURS: i64 = 1344;
/// A rental without SMS can be cancelled with a refund this long after it began.
pub const CANCEL_WINDOW: i64 = 20 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Finished,
    Canceled,
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Finished => "finished",
            Status::Canceled => "canceled",
            Status::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "active" => Status::Active,
            "finished" => Status::Finished,
            "canceled" => Status::Canceled,
            _ => Status::Expired,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Rental {
    pub id: i64,
    pub user_id: i64,
    pub number_id: Option<i64>,
    pub phone: String,
    pub country_id: i64,
    pub service: String,
    pub hours: i64,
    pub hour_minor: i64,
    pub paid_minor: i64,
    pub status: Status,
    pub auto_renew: bool,
    pub webhook_url: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub ended_at: Option<Timestamp>,
}

const COLS: &str =
    "id, user_id, number_id, phone, country_id, service, hours, hour_minor, paid_minor, \
                    status, auto_renew, webhook_url, created_at, expires_at, ended_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Rental> {
    let status: String = r.get(9)?;
    Ok(Rental {
        id: r.get(0)?,
        user_id: r.get(1)?,
        number_id: r.get(2)?,
        phone: r.get(3)?,
        country_id: r.get(4)?,
        service: r.get(5)?,
        hours: r.get(6)?,
        hour_minor: r.get(7)?,
        paid_minor: r.get(8)?,
        status: Status::parse(&status),
        auto_renew: r.get(10)?,
        webhook_url: r.get(11)?,
        created_at: r.get(12)?,
        expires_at: r.get(13)?,
        ended_at: r.get(14)?,
    })
}

pub fn get(conn: &Connection, id: i64) -> Result<Option<Rental>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLS} FROM rentals WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}

pub fn get_for(conn: &Connection, user_id: i64, id: i64) -> Result<Rental> {
    match get(conn, id)? {
        Some(r) if r.user_id == user_id => Ok(r),
        _ => Err(Error::NotFound("rental")),
    }
}

pub fn list(conn: &Connection, user_id: i64, active_only: bool, limit: i64) -> Result<Vec<Rental>> {
    // Two spellings, so that the active ones come through their own partial index
    // (`rentals_live_user`) and never walk the account's past rentals.
    let filter = if active_only {
        "AND status = 'active'"
    } else {
        ""
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM rentals WHERE user_id = ?1 {filter} ORDER BY id DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![user_id, limit], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn check_hours(hours: i64) -> Result<()> {
    if !(MIN_HOURS..=MAX_HOURS).contains(&hours) {
        return Err(Error::invalid(format!(
            "A rental lasts from {MIN_HOURS} to {MAX_HOURS} hours."
        )));
    }
    Ok(())
}

pub struct RentRequest {
    pub country: i64,
    pub service: String,
    pub hours: i64,
    pub auto_renew: bool,
    pub webhook_url: String,
}

pub fn rent(
    conn: &Connection,
    user: &User,
    req: &RentRequest,
    policy: &Policy,
    now: Timestamp,
) -> Result<Rental> {
    if !user.is_active() || !user.is_verified() {
        return Err(Error::Forbidden(
            "Confirm your e-mail address before renting.".into(),
        ));
    }
    blocklist::check(conn, req.country, &req.service)?;
    catalogue::live_country(conn, req.country)?;
    let service = catalogue::live_service(conn, &req.service)?;
    check_hours(req.hours)?;
    if !req.webhook_url.is_empty() {
        // The same check as every other customer URL, at registration (sending checks again).
        webhooks::check_url(&req.webhook_url, policy.allow_private_urls)?;
    }
    // A pair without a rent (0: priced for activations only) is not for rent.
    let hour = catalogue::price(conn, req.country, &service.code, "")?
        .map(|p| p.rent_hour_minor)
        .filter(|h| *h > 0)
        .ok_or(Error::NoNumbers)?;
    let total = hour.checked_mul(req.hours).ok_or(Error::NoNumbers)?;
    if user.balance_minor < total {
        return Err(Error::NoBalance);
    }
    let wanted = Wanted {
        country: req.country,
        service: &service.code,
        also: &[],
        operator: "",
        exclude: &[],
        cooldown: policy.cooldown,
        now,
    };
    let picked = pick_or_simulate(conn, &wanted)?;
    let (number_id, phone, _, source) = picked.ok_or(Error::NoNumbers)?;
    take_number(conn, number_id, &service.code, now)?;
    conn.prepare_cached(
        "INSERT INTO rentals (user_id, number_id, phone, country_id, service, hours, hour_minor, \
         paid_minor, status, auto_renew, webhook_url, created_at, expires_at, owner_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'active', ?9, ?10, ?11, ?12, \
                 (SELECT owner_id FROM numbers WHERE id = ?2))",
    )?
    .execute(params![
        user.id,
        number_id,
        phone,
        req.country,
        service.code,
        req.hours,
        hour,
        total,
        req.auto_renew,
        req.webhook_url,
        now,
        now + req.hours * 3600
    ])?;
    let id = conn.last_insert_rowid();
    wallet::post(
        conn,
        user.id,
        -total,
        Kind::Charge,
        ("rental", Some(id)),
        &format!("{} h", req.hours),
        now,
    )?;
    if source == simulator::SOURCE {
        simulator::schedule_rental(conn, id, &service.code, policy, now + req.hours * 3600, now)?;
    }
    get_for(conn, user.id, id)
}

fn has_messages(conn: &Connection, id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM messages WHERE rental_id = ?1 LIMIT 1")?
        .query_row([id], |_| Ok(()))
        .optional()?
        .is_some())
}

fn end(conn: &Connection, r: &Rental, to: Status, now: Timestamp) -> Result<()> {
    let n = conn.execute(
        "UPDATE rentals SET status = ?2, ended_at = ?3 WHERE id = ?1 AND status = 'active'",
        params![r.id, to.as_str(), now],
    )?;
    if n != 1 {
        return Err(Error::BadStatus(
            "The rental changed meanwhile; reload it.".into(),
        ));
    }
    free_number(conn, r.number_id, now)?;
    simulator::forget(conn, None, Some(r.id))
}

fn ended(r: &Rental) -> Error {
    Error::BadStatus(format!("This rental is already {}.", r.status.as_str()))
}

/// Cancels with a full refund: only within 20 minutes of the start and before any SMS.
pub fn cancel(conn: &Connection, user_id: i64, id: i64, now: Timestamp) -> Result<Rental> {
    let r = get_for(conn, user_id, id)?;
    if r.status != Status::Active {
        return Err(ended(&r));
    }
    if now - r.created_at > CANCEL_WINDOW || has_messages(conn, id)? {
        return Err(Error::BadStatus(
            "A rental can be cancelled only in its first 20 minutes and before any SMS arrived."
                .into(),
        ));
    }
    end(conn, &r, Status::Canceled, now)?;
    wallet::post(
        conn,
        r.user_id,
        r.paid_minor,
        Kind::Refund,
        ("rental", Some(id)),
        "canceled",
        now,
    )?;
    get_for(conn, user_id, id)
}

/// Ends a rental early, without refund; the number's operator earns its share.
pub fn finish(
    conn: &Connection,
    user_id: i64,
    id: i64,
    policy: &Policy,
    now: Timestamp,
) -> Result<Rental> {
    let r = get_for(conn, user_id, id)?;
    if r.status != Status::Active {
        return Err(ended(&r));
    }
    end(conn, &r, Status::Finished, now)?;
    earnings::credit_rental(conn, &r, policy.operator_share, now)?;
    get_for(conn, user_id, id)
}

/// Adds `hours` to an active rental, charging them.
pub fn extend(
    conn: &Connection,
    user_id: i64,
    id: i64,
    hours: i64,
    now: Timestamp,
) -> Result<Rental> {
    let r = get_for(conn, user_id, id)?;
    if r.status != Status::Active {
        return Err(ended(&r));
    }
    // Its time is up even if the expiry job has not marked it yet.
    if r.expires_at <= now {
        return Err(Error::BadStatus("This rental has expired.".into()));
    }
    if !(1..=MAX_HOURS).contains(&hours) {
        return Err(Error::invalid(format!("Extend by 1 to {MAX_HOURS} hours.")));
    }
    if off_sale_for_good(conn, &r)? {
        return Err(Error::Conflict(
            "This country or service is no longer sold: the rental runs to its end but cannot \
             be extended."
                .into(),
        ));
    }
    // A valid extension this rental cannot take any more: its state, not the input, is in
    // the way (409).
    let left = MAX_HOURS * 4 - (r.expires_at - r.created_at) / 3600;
    if hours > left {
        return Err(Error::Conflict(format!(
            "A rental lasts at most {} hours in all; this one can be extended by {} more.",
            MAX_HOURS * 4,
            left.max(0)
        )));
    }
    // A rental taken at no rent (before rent 0 was refused) is not extended for free.
    let cost = match r.hour_minor.checked_mul(hours) {
        Some(c) if c > 0 => c,
        _ => {
            return Err(Error::Conflict(
                "This rental has no rent per hour; it cannot be extended.".into(),
            ))
        }
    };
    wallet::post(
        conn,
        r.user_id,
        -cost,
        Kind::Charge,
        ("rental", Some(id)),
        &format!("extend {hours} h"),
        now,
    )?;
    conn.execute(
        "UPDATE rentals SET expires_at = expires_at + ?2, paid_minor = paid_minor + ?3 WHERE id = ?1",
        params![id, hours * 3600, cost],
    )?;
    get_for(conn, user_id, id)
}

pub fn set_auto_renew(conn: &Connection, user_id: i64, id: i64, on: bool) -> Result<Rental> {
    let r = get_for(conn, user_id, id)?;
    if r.status != Status::Active {
        return Err(ended(&r));
    }
    conn.execute(
        "UPDATE rentals SET auto_renew = ?2 WHERE id = ?1",
        params![id, on],
    )?;
    get_for(conn, user_id, id)
}

/// Whether the rental's country or service was retired (off sale for good): it runs to its
/// end but is neither extended nor renewed.
fn off_sale_for_good(conn: &Connection, r: &Rental) -> Result<bool> {
    Ok(
        catalogue::country(conn, r.country_id)?.is_none_or(|c| c.retired)
            || catalogue::service(conn, &r.service)?.is_none_or(|s| s.retired),
    )
}

/// Renews due auto-renew rentals the balance can pay for, expires the rest (their numbers'
/// operators earn their share). Returns (renewed, expired) ids.
pub fn expire_due(
    conn: &Connection,
    policy: &Policy,
    now: Timestamp,
) -> Result<(Vec<i64>, Vec<i64>)> {
    let due: Vec<Rental> = {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLS} FROM rentals WHERE status = 'active' AND expires_at <= ?1 ORDER BY id LIMIT 500"
        ))?;
        let rows = stmt.query_map([now], from_row)?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let (mut renewed, mut expired) = (Vec::new(), Vec::new());
    for r in due {
        // A rental without a rent (taken before rent 0 was refused) is never renewed free.
        // Nor one whose country or service was retired meanwhile.
        let cost = r.hour_minor.checked_mul(r.hours).filter(|c| *c > 0);
        if let (true, Some(cost)) = (r.auto_renew, cost) {
            if off_sale_for_good(conn, &r)? {
                end(conn, &r, Status::Expired, now)?;
                earnings::credit_rental(conn, &r, policy.operator_share, now)?;
                expired.push(r.id);
                continue;
            }
            match wallet::post(
                conn,
                r.user_id,
                -cost,
                Kind::Charge,
                ("rental", Some(r.id)),
                "auto-renew",
                now,
            ) {
                Ok(_) => {
                    conn.execute(
                        "UPDATE rentals SET expires_at = expires_at + ?2, paid_minor = paid_minor + ?3 WHERE id = ?1",
                        params![r.id, r.hours * 3600, cost],
                    )?;
                    renewed.push(r.id);
                    continue;
                }
                Err(Error::NoBalance) => {}
                Err(e) => return Err(e),
            }
        }
        end(conn, &r, Status::Expired, now)?;
        earnings::credit_rental(conn, &r, policy.operator_share, now)?;
        expired.push(r.id);
    }
    Ok((renewed, expired))
}

/// Ends every active rental of an account at once, because the account is being closed: one
/// that received no SMS is `canceled` and refunded in full whatever its age, one that did is
/// `finished`. Returns (refunded, finished) ids.
pub fn close_all_for(
    conn: &Connection,
    user_id: i64,
    operator_share: u32,
    now: Timestamp,
) -> Result<(Vec<i64>, Vec<i64>)> {
    let live: Vec<Rental> = {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLS} FROM rentals WHERE user_id = ?1 AND status = 'active' ORDER BY id"
        ))?;
        let rows = stmt.query_map([user_id], from_row)?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let (mut refunded, mut finished) = (Vec::new(), Vec::new());
    for r in live {
        if has_messages(conn, r.id)? {
            end(conn, &r, Status::Finished, now)?;
            earnings::credit_rental(conn, &r, operator_share, now)?;
            finished.push(r.id);
        } else {
            end(conn, &r, Status::Canceled, now)?;
            wallet::post(
                conn,
                r.user_id,
                r.paid_minor,
                Kind::Refund,
                ("rental", Some(r.id)),
                crate::domain::market::activations::CLOSED_NOTE,
                now,
            )?;
            refunded.push(r.id);
        }
    }
    Ok((refunded, finished))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::testing::account_at;
    use crate::domain::accounts::{self, Role};
    use crate::domain::market::catalogue::Price;

    const T0: i64 = 1_000_000;
    const POLICY: Policy = Policy {
        early_cancel: 120,
        default_ttl: 1200,
        max_live: 5,
        cooldown: 0,
        sim_delay: 5,
        sim_odds: crate::domain::market::simulator::Odds::NONE,
        operator_share: 70,
        allow_private_urls: false,
    };

    /// A customer with 100.00 and two free numbers in Indonesia.
    fn world() -> (Connection, User) {
        let conn = db::memory();
        catalogue::seed_if_empty(&conn).unwrap();
        let id = account_at(&conn, "c@example.com", Role::User, T0);
        wallet::post(&conn, id, 10_000, Kind::Adjustment, ("", None), "", T0).unwrap();
        for phone in ["62811000001", "62811000002"] {
            conn.execute(
                "INSERT INTO numbers (phone, country_id, source, created_at) \
                 VALUES (?1, 6, 'manual', ?2)",
                params![phone, T0],
            )
            .unwrap();
        }
        let user = accounts::get(&conn, id).unwrap();
        (conn, user)
    }

    fn req(auto_renew: bool) -> RentRequest {
        RentRequest {
            country: 6,
            service: "tg".into(),
            hours: 4,
            auto_renew,
            webhook_url: String::new(),
        }
    }

    fn set_rent(conn: &Connection, hour: i64) {
        let price = Price {
            price_minor: 50,
            rent_hour_minor: hour,
        };
        catalogue::set_price(conn, 6, "tg", "", price).unwrap();
    }

    #[test]
    fn a_pair_without_a_rent_is_not_for_rent_and_is_never_extended_or_renewed_free() {
        let (conn, user) = world();
        set_rent(&conn, 0);
        assert!(matches!(
            rent(&conn, &user, &req(true), &POLICY, T0),
            Err(Error::NoNumbers)
        ));
        assert_eq!(wallet::balance(&conn, user.id).unwrap(), 10_000);
        // One taken at rent 0 before the refusal (inserted as it was then): neither
        // extended nor auto-renewed for nothing; it expires.
        set_rent(&conn, 10);
        let r = rent(&conn, &user, &req(true), &POLICY, T0).unwrap();
        assert_eq!(r.paid_minor, 40);
        conn.execute(
            "UPDATE rentals SET hour_minor = 0, paid_minor = 0 WHERE id = ?1",
            [r.id],
        )
        .unwrap();
        assert!(matches!(
            extend(&conn, user.id, r.id, 4, T0 + 60),
            Err(Error::Conflict(_))
        ));
        let (renewed, expired) = expire_due(&conn, &POLICY, r.expires_at).unwrap();
        assert!(renewed.is_empty());
        assert_eq!(expired, [r.id]);
    }

    #[test]
    fn a_retired_country_or_service_stops_renewal_and_extension() {
        let (conn, user) = world();
        set_rent(&conn, 10);
        let r = rent(&conn, &user, &req(true), &POLICY, T0).unwrap();
        let paid = wallet::balance(&conn, user.id).unwrap();
        conn.execute(
            "UPDATE services SET retired_at = ?1, enabled = 0 WHERE code = 'tg'",
            [T0 + 60],
        )
        .unwrap();
        assert!(matches!(
            extend(&conn, user.id, r.id, 4, T0 + 120),
            Err(Error::Conflict(_))
        ));
        let (renewed, expired) = expire_due(&conn, &POLICY, r.expires_at).unwrap();
        assert!(renewed.is_empty());
        assert_eq!(expired, [r.id]);
        assert_eq!(
            wallet::balance(&conn, user.id).unwrap(),
            paid,
            "never charged"
        );
        // A rental that could renew still does (the country, not retired, is the control).
        conn.execute("UPDATE services SET retired_at = NULL, enabled = 1", [])
            .unwrap();
        let r = rent(&conn, &user, &req(true), &POLICY, T0 + 20_000).unwrap();
        let (renewed, _) = expire_due(&conn, &POLICY, r.expires_at).unwrap();
        assert_eq!(renewed, [r.id]);
        conn.execute(
            "UPDATE countries SET retired_at = 1, enabled = 0 WHERE id = 6",
            [],
        )
        .unwrap();
        let (renewed, expired) = expire_due(&conn, &POLICY, r.expires_at + 4 * 3600).unwrap();
        assert!(renewed.is_empty());
        assert_eq!(expired, [r.id]);
    }
}
