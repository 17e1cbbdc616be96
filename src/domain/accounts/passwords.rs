//! Password hashing with argon2id under a bound on concurrent hashes.
//!
//! Parameters: m = 12 MiB, t = 3, p = 1 (OWASP-equivalent to the 19 MiB default with less
//! memory, so a Raspberry Pi can afford several at once). The PHC string carries its
//! parameters, so they can change later without breaking stored hashes. At most
//! `max_hashes` run at once; a login flood waits in line for a bounded time and then gets
//! [`Error::Busy`] instead of starving the workers. A request gives its CPU slot up
//! (`crate::cpu`) before it hashes or waits for its turn: another worker takes requests
//! meanwhile, and the hashes share the cores with them by time slices.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::domain::{Error, Result};

pub const MIN_PASSWORD_LEN: usize = 10;
const MAX_PASSWORD_LEN: usize = 1024;
const WAIT_FOR_SLOT: Duration = Duration::from_secs(5);

pub struct Hasher {
    argon: Argon2<'static>,
    in_flight: Mutex<usize>,
    freed: Condvar,
    limit: usize,
    /// A hash of a random password, verified against when the account does not exist so a
    /// missing account costs the same time as a wrong password.
    dummy: String,
}

impl Hasher {
    pub fn new(limit: usize) -> Hasher {
        let params = Params::new(12 * 1024, 3, 1, None).expect("valid argon2 parameters");
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = argon
            .hash_password(crate::domain::base::crypto::random_token(16).as_bytes())
            .expect("hashing works")
            .to_string();
        Hasher {
            argon,
            in_flight: Mutex::new(0),
            freed: Condvar::new(),
            limit: limit.max(1),
            dummy,
        }
    }

    /// Checks the length rule every new password must meet.
    pub fn check_strength(password: &str) -> Result<()> {
        let n = password.chars().count();
        if n < MIN_PASSWORD_LEN {
            return Err(Error::invalid(format!(
                "The password must have at least {MIN_PASSWORD_LEN} characters."
            )));
        }
        if password.len() > MAX_PASSWORD_LEN {
            return Err(Error::invalid("The password is too long."));
        }
        Ok(())
    }

    pub fn hash(&self, password: &str) -> Result<String> {
        crate::cpu::give_up();
        let _slot = self.slot()?;
        self.argon
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
    }

    /// True when `password` matches `phc`. With `phc == None` burns the same time and fails.
    pub fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool> {
        if password.len() > MAX_PASSWORD_LEN {
            return Ok(false);
        }
        let target = phc.unwrap_or(&self.dummy);
        let parsed = PasswordHash::new(target)
            .map_err(|e| Error::Internal(format!("stored password hash unreadable: {e}")))?;
        crate::cpu::give_up();
        let _slot = self.slot()?;
        let ok = self
            .argon
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(ok && phc.is_some())
    }

    fn slot(&self) -> Result<Slot<'_>> {
        let deadline = Instant::now() + WAIT_FOR_SLOT;
        let mut n = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        while *n >= self.limit {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Busy);
            }
            n = self
                .freed
                .wait_timeout(n, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *n += 1;
        Ok(Slot { hasher: self })
    }
}

struct Slot<'a> {
    hasher: &'a Hasher,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut n = self
            .hasher
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *n -= 1;
        self.hasher.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let h = Hasher::new(2);
        let phc = h.hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=12288,t=3,p=1$"));
        assert!(h.verify("correct horse battery", Some(&phc)).unwrap());
        assert!(!h.verify("wrong horse battery", Some(&phc)).unwrap());
        assert!(!h.verify("correct horse battery", None).unwrap());
    }

    #[test]
    fn two_hashes_of_one_password_differ() {
        let h = Hasher::new(1);
        assert_ne!(
            h.hash("same password!").unwrap(),
            h.hash("same password!").unwrap()
        );
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(Hasher::check_strength("short").is_err());
        assert!(Hasher::check_strength("long enough!").is_ok());
    }

    #[test]
    fn concurrency_is_bounded() {
        use std::sync::Arc;
        let h = Arc::new(Hasher::new(1));
        let peak = Arc::new(Mutex::new(0usize));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let h = h.clone();
                let peak = peak.clone();
                std::thread::spawn(move || {
                    let _s = h.slot().unwrap();
                    let now = *h.in_flight.lock().unwrap();
                    let mut p = peak.lock().unwrap();
                    *p = (*p).max(now);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*peak.lock().unwrap(), 1);
    }
}
