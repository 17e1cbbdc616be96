//! Where numbers come from and who is paid for them: operators' [`devices`] and the
//! [`gateway`] formats they deliver SMS in (long SMS put together from their [`parts`]),
//! numbers added by hand ([`numbers`]), upstream
//! [`providers`] we resell, operators' [`payouts`], and [`routing`]: choosing where each
//! order is served from (own SIMs, the simulator, an upstream provider) and keeping the
//! upstream orders' books; order [`stats`] (daily rollups, success rates).
//!
//! May use: [`crate::domain::market`], [`crate::domain::accounts`], [`crate::domain::base`],
//! `crate::clock`, `crate::db`. No network here: `crate::upstream` speaks to providers and
//! hands [`routing`] what they answered through the [`routing::Upstream`] trait
//! ([`routing::place_order`] runs an order's purchase).

pub mod devices;
pub mod gateway;
pub mod numbers;
pub mod parts;
pub mod payouts;
pub mod providers;
pub mod routing;
pub mod stats;
