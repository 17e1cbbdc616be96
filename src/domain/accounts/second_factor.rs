//! The TOTP second factor of an account: enrolment (a new secret, confirmed with a code),
//! checking a code at login or before a sensitive change (with the last accepted step
//! remembered, so no code works twice), and the ten single-use recovery codes. Owns the
//! `totp` and `recovery_codes` tables.
//!
//! The secret is never stored: it is derived from the row's random salt and the install key,
//! like webhook secrets, so a copy of the database alone cannot produce codes. Recovery codes
//! are stored as keyed hashes, like tokens.

use rusqlite::{params, Connection, OptionalExtension};

use crate::clock::Timestamp;
use crate::domain::accounts::totp::{self, SECRET_LEN};
use crate::domain::base::crypto::{random_bytes, random_token, Keys};
use crate::domain::{Error, Result};

/// Recovery codes made at enrolment and on each regeneration.
pub const RECOVERY_CODES: usize = 10;

/// Where an account stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// `None` while enrolment waits for its first code.
    pub enabled_at: Option<Timestamp>,
    /// Unused recovery codes.
    pub recovery_left: i64,
}

/// What proved the second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// A code from the authenticator app.
    Totp,
    /// A recovery code (now spent); how many are left.
    Recovery { left: i64 },
}

fn secret(keys: &Keys, salt: &str) -> Vec<u8> {
    keys.mac(b"totp-secret", salt.as_bytes())[..SECRET_LEN].to_vec()
}

fn recovery_hash(keys: &Keys, user_id: i64, code: &str) -> Vec<u8> {
    keys.mac(b"recovery-code", format!("{user_id}:{code}").as_bytes())
        .to_vec()
}

/// The account's second factor, or `None` when it never started enrolment.
pub fn status(conn: &Connection, user_id: i64) -> Result<Option<Status>> {
    Ok(conn
        .prepare_cached(
            "SELECT enabled_at, (SELECT COUNT(*) FROM recovery_codes \
             WHERE user_id = ?1 AND used_at IS NULL) FROM totp WHERE user_id = ?1",
        )?
        .query_row([user_id], |r| {
            Ok(Status {
                enabled_at: r.get(0)?,
                recovery_left: r.get(1)?,
            })
        })
        .optional()?)
}

/// True when login must ask for a code.
pub fn enabled(conn: &Connection, user_id: i64) -> Result<bool> {
    Ok(status(conn, user_id)?.is_some_and(|s| s.enabled_at.is_some()))
}

/// Starts enrolment with a new secret, replacing one that was never confirmed. Refused when
/// the second factor is already on (turn it off first). Returns the secret.
pub fn start(conn: &Connection, keys: &Keys, user_id: i64, now: Timestamp) -> Result<Vec<u8>> {
    if enabled(conn, user_id)? {
        return Err(Error::Conflict("Two-factor sign-in is already on.".into()));
    }
    let salt = random_token(16);
    conn.execute(
        "INSERT INTO totp (user_id, secret_salt, created_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (user_id) DO UPDATE SET secret_salt = ?2, created_at = ?3, \
         enabled_at = NULL, last_step = -1",
        params![user_id, salt, now],
    )?;
    Ok(secret(keys, &salt))
}

/// The secret of an enrolment that waits for its first code.
pub fn pending_secret(conn: &Connection, keys: &Keys, user_id: i64) -> Result<Option<Vec<u8>>> {
    let salt: Option<String> = conn
        .query_row(
            "SELECT secret_salt FROM totp WHERE user_id = ?1 AND enabled_at IS NULL",
            [user_id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(salt.map(|s| secret(keys, &s)))
}

/// Finishes enrolment when `code` is a current code of the new secret: the second factor is
/// on from now, and the account gets fresh recovery codes, returned in clear (shown once).
pub fn confirm(
    conn: &Connection,
    keys: &Keys,
    user_id: i64,
    code: &str,
    now: Timestamp,
) -> Result<Vec<String>> {
    let Some(secret) = pending_secret(conn, keys, user_id)? else {
        return Err(Error::Conflict(
            "Start the set-up again: there is no code waiting to be confirmed.".into(),
        ));
    };
    let Some(step) = totp::matching_step(&secret, code, now, -1) else {
        return Err(Error::invalid(
            "That code does not match. Check the time on your phone and type the current code.",
        ));
    };
    conn.execute(
        "UPDATE totp SET enabled_at = ?2, last_step = ?3 WHERE user_id = ?1",
        params![user_id, now, step],
    )?;
    new_recovery_codes(conn, keys, user_id, now)
}

/// Checks a code of an account whose second factor is on, and spends it: an app code moves
/// the last used step forward (so it, and every older one, is refused from then on); a
/// recovery code is marked used. `None` when the code is wrong, already used or the second
/// factor is off. Call it inside the write transaction of what the code unlocks.
pub fn verify(
    conn: &Connection,
    keys: &Keys,
    user_id: i64,
    code: &str,
    now: Timestamp,
) -> Result<Option<Proof>> {
    let row: Option<(String, i64)> = conn
        .query_row(
            "SELECT secret_salt, last_step FROM totp WHERE user_id = ?1 AND enabled_at IS NOT NULL",
            [user_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((salt, last_step)) = row else {
        return Ok(None);
    };
    if totp::normalise(code).is_some() {
        let Some(step) = totp::matching_step(&secret(keys, &salt), code, now, last_step) else {
            return Ok(None);
        };
        let moved = conn.execute(
            "UPDATE totp SET last_step = ?2 WHERE user_id = ?1 AND last_step < ?2",
            params![user_id, step],
        )?;
        return Ok((moved == 1).then_some(Proof::Totp));
    }
    let Some(normal) = normalise_recovery(code) else {
        return Ok(None);
    };
    let spent = conn.execute(
        "UPDATE recovery_codes SET used_at = ?3 \
         WHERE user_id = ?1 AND code_hash = ?2 AND used_at IS NULL",
        params![user_id, recovery_hash(keys, user_id, &normal), now],
    )?;
    if spent != 1 {
        return Ok(None);
    }
    let left = status(conn, user_id)?.map_or(0, |s| s.recovery_left);
    Ok(Some(Proof::Recovery { left }))
}

/// Turns the second factor off: the secret and every recovery code are gone.
pub fn disable(conn: &Connection, user_id: i64) -> Result<()> {
    conn.execute("DELETE FROM recovery_codes WHERE user_id = ?1", [user_id])?;
    conn.execute("DELETE FROM totp WHERE user_id = ?1", [user_id])?;
    Ok(())
}

/// Replaces every recovery code of an enrolled account; the new ones in clear (shown once).
pub fn regenerate(
    conn: &Connection,
    keys: &Keys,
    user_id: i64,
    now: Timestamp,
) -> Result<Vec<String>> {
    if !enabled(conn, user_id)? {
        return Err(Error::Conflict("Two-factor sign-in is off.".into()));
    }
    new_recovery_codes(conn, keys, user_id, now)
}

fn new_recovery_codes(
    conn: &Connection,
    keys: &Keys,
    user_id: i64,
    now: Timestamp,
) -> Result<Vec<String>> {
    conn.execute("DELETE FROM recovery_codes WHERE user_id = ?1", [user_id])?;
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    while codes.len() < RECOVERY_CODES {
        let code = new_recovery_code();
        let hash = recovery_hash(
            keys,
            user_id,
            &normalise_recovery(&code).expect("well formed"),
        );
        // A repeat within one account (2⁻⁵⁰) would hit the unique index: draw again.
        let added = conn.execute(
            "INSERT OR IGNORE INTO recovery_codes (user_id, code_hash, created_at) \
             VALUES (?1, ?2, ?3)",
            params![user_id, hash, now],
        )?;
        if added == 1 {
            codes.push(code);
        }
    }
    Ok(codes)
}

/// Lower-case letters and digits without look-alikes (no o, 1, l, i): 32 symbols, 5 bits
/// each. A typed `o` is read as `0`.
const RECOVERY_ALPHABET: &[u8; 32] = b"abcdefghjkmnpqrstuvwxyz023456789";
const RECOVERY_LEN: usize = 10;

/// `abcde-23456`: 50 random bits.
fn new_recovery_code() -> String {
    let bytes: [u8; RECOVERY_LEN] = random_bytes();
    let chars: String = bytes
        .iter()
        .map(|b| RECOVERY_ALPHABET[(*b & 31) as usize] as char)
        .collect();
    format!("{}-{}", &chars[..5], &chars[5..])
}

/// A recovery code as typed (any case, spaces and dashes ignored), or `None` when it cannot be
/// one.
fn normalise_recovery(code: &str) -> Option<String> {
    let s: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_lowercase() {
            'o' => '0',
            c => c,
        })
        .collect();
    (s.len() == RECOVERY_LEN && s.bytes().all(|b| RECOVERY_ALPHABET.contains(&b))).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;
    use crate::domain::accounts::totp::{code_at_step, step_at};
    use crate::domain::accounts::{self, NewUser, Role};

    fn setup() -> (Connection, Keys, i64) {
        let conn = db::memory();
        let id = accounts::create(
            &conn,
            &NewUser {
                email: "ann@example.com",
                password_hash: None,
                role: Role::User,
                verified: true,
                age_confirmed: true,
                aup_accepted: true,
            },
            1,
        )
        .unwrap()
        .id;
        (conn, Keys::from_bytes([7; 32]), id)
    }

    const T0: Timestamp = 1_700_000_000;

    #[test]
    fn enrolment_needs_a_current_code_of_the_new_secret() {
        let (conn, keys, ann) = setup();
        assert_eq!(status(&conn, ann).unwrap(), None);
        let first = start(&conn, &keys, ann, T0).unwrap();
        assert_eq!(first.len(), 20);
        // Starting again replaces the secret that was never confirmed.
        let secret = start(&conn, &keys, ann, T0).unwrap();
        assert_ne!(first, secret);
        assert!(!enabled(&conn, ann).unwrap());
        let wrong = code_at_step(&secret, step_at(T0) + 5);
        assert!(matches!(
            confirm(&conn, &keys, ann, &wrong, T0),
            Err(Error::Invalid(_))
        ));
        let codes = confirm(&conn, &keys, ann, &code_at_step(&secret, step_at(T0)), T0).unwrap();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert!(enabled(&conn, ann).unwrap());
        assert_eq!(status(&conn, ann).unwrap().unwrap().recovery_left, 10);
        assert!(matches!(
            start(&conn, &keys, ann, T0),
            Err(Error::Conflict(_))
        ));
        // The code that confirmed enrolment cannot sign in too.
        let code = code_at_step(&secret, step_at(T0));
        assert_eq!(verify(&conn, &keys, ann, &code, T0 + 1).unwrap(), None);
        // Nothing secret is stored: the salt alone does not give the secret without the key.
        let salt: String = conn
            .query_row("SELECT secret_salt FROM totp", [], |r| r.get(0))
            .unwrap();
        assert_ne!(salt.as_bytes(), &secret[..]);
        assert_ne!(super::secret(&Keys::from_bytes([8; 32]), &salt), secret);
    }

    #[test]
    fn app_codes_work_once_and_never_go_back() {
        let (conn, keys, ann) = setup();
        let secret = start(&conn, &keys, ann, T0).unwrap();
        confirm(&conn, &keys, ann, &code_at_step(&secret, step_at(T0)), T0).unwrap();
        let now = T0 + 300;
        let s = step_at(now);
        let next = code_at_step(&secret, s + 1);
        assert_eq!(
            verify(&conn, &keys, ann, &next, now).unwrap(),
            Some(Proof::Totp)
        );
        assert_eq!(
            verify(&conn, &keys, ann, &next, now).unwrap(),
            None,
            "replay"
        );
        let current = code_at_step(&secret, s);
        assert_eq!(
            verify(&conn, &keys, ann, &current, now).unwrap(),
            None,
            "older"
        );
        let later = T0 + 600;
        let two_ahead = code_at_step(&secret, step_at(later) + 2);
        assert_eq!(verify(&conn, &keys, ann, &two_ahead, later).unwrap(), None);
        let code = code_at_step(&secret, step_at(later) - 1);
        assert_eq!(
            verify(&conn, &keys, ann, &code, later).unwrap(),
            Some(Proof::Totp)
        );
    }

    #[test]
    fn recovery_codes_work_once_each_and_regenerate_replaces_them() {
        let (conn, keys, ann) = setup();
        let secret = start(&conn, &keys, ann, T0).unwrap();
        let codes = confirm(&conn, &keys, ann, &code_at_step(&secret, step_at(T0)), T0).unwrap();
        assert!(codes
            .iter()
            .all(|c| c.len() == 11 && c.as_bytes()[5] == b'-'));
        let typed = codes[3].to_uppercase().replace('-', " ");
        assert_eq!(
            verify(&conn, &keys, ann, &typed, T0).unwrap(),
            Some(Proof::Recovery { left: 9 })
        );
        assert_eq!(verify(&conn, &keys, ann, &codes[3], T0).unwrap(), None);
        assert_eq!(verify(&conn, &keys, ann, "abcde-fghij", T0).unwrap(), None);
        let fresh = regenerate(&conn, &keys, ann, T0).unwrap();
        assert_eq!(verify(&conn, &keys, ann, &codes[0], T0).unwrap(), None);
        assert_eq!(
            verify(&conn, &keys, ann, &fresh[0], T0).unwrap(),
            Some(Proof::Recovery { left: 9 })
        );
        // Only hashes are stored.
        let stored: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM recovery_codes WHERE code_hash = ?1",
                [fresh[1].as_bytes()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stored, 0);
        disable(&conn, ann).unwrap();
        assert_eq!(status(&conn, ann).unwrap(), None);
        assert_eq!(verify(&conn, &keys, ann, &fresh[1], T0).unwrap(), None);
        assert!(matches!(
            regenerate(&conn, &keys, ann, T0),
            Err(Error::Conflict(_))
        ));
    }
}
