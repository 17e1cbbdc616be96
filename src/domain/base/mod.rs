//! What every area of the domain uses and that uses no area: amounts of money, the install's
//! keys and hashing, the mail outbox and the audit log (with the [`audit::Actor`] that every
//! audited change names).
//!
//! May use: `crate::clock`, `crate::db`, [`crate::domain::Error`]. Nothing in `base` knows
//! about accounts, orders or numbers.

pub mod audit;
pub mod crypto;
pub mod mail;
pub mod money;
