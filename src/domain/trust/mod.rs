//! Trust, privacy and the admin's hand: abuse reports and appeals ([`abuse`]), anomaly
//! flags ([`signals`]), termination ([`enforcement`]), the law-enforcement register
//! ([`legal`]), the account lifecycle (deletion, purge, e-mail change: [`lifecycle`]) and the
//! data export ([`export`]), retention of old rows ([`retention`]), and the admin's audited
//! actions on accounts and the catalogue ([`admin`]), the catalogue's entries ([`catalogue`]),
//! the price tools ([`pricing`]) and the list of every order ([`orders`]).
//!
//! May use every other area of the domain; no other area uses `trust`.

pub mod abuse;
pub mod admin;
pub mod catalogue;
pub mod enforcement;
pub mod export;
pub mod legal;
pub mod lifecycle;
pub mod orders;
pub mod pricing;
pub mod retention;
pub mod signals;
