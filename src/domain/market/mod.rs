//! The marketplace: what is on sale ([`catalogue`], its [`seed`] and the admin's
//! [`blocklist`]; customers' price [`caps`]), orders for one code ([`activations`]) and for a number over days
//! ([`rentals`]), the money they move ([`wallet`] is the ledger; [`vouchers`], [`payments`]
//! (top-ups through gateways) and [`earnings`] write through it), SMS reaching orders
//! ([`inbox`], with code extraction in [`inbox::codes`]), the built-in [`simulator`], the
//! customers' outbound [`webhooks`], and the numbers partner hubs buy through the agent
//! protocol ([`partners`]).
//!
//! May use: [`crate::domain::accounts`], [`crate::domain::base`], `crate::clock`, `crate::db`,
//! `crate::outbound` (webhook signing). It never calls a provider, a device or a page: where
//! an order is served from is decided above it, in [`crate::domain::supply::routing`].
//!
//! Architecture invariant: every balance change is a ledger row written by [`wallet`] in the
//! same transaction as the order change that caused it.

pub mod activations;
pub mod blocklist;
pub mod caps;
pub mod catalogue;
pub mod earnings;
pub mod inbox;
pub mod partners;
pub mod payments;
pub mod rentals;
pub mod seed;
pub mod simulator;
pub mod vouchers;
pub mod wallet;
pub mod webhooks;
