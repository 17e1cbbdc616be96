//! Pages of trust, privacy and administration: the public abuse form, appeals and the
//! transparency report ([`abuse`]), the admin's abuse queue, flags, blocklist and legal
//! register ([`abuse_queue`]), the account lifecycle for holders and admins
//! ([`lifecycle`]), and the admin overview, users, jobs, retention, outbox and audit log
//! ([`admin`]). Templates: `views::trust`.

pub mod abuse;
pub mod abuse_queue;
pub mod admin;
pub mod lifecycle;
