//! The wire protocols other software speaks to us, each in its own words: the SMS-Activate
//! protocol ([`handler_api`], one path, an action table), the 5sim API ([`fivesim`]),
//! SMS gateways delivering messages ([`ingest`]: capcom6, httpSMS, textbee, generic JSON),
//! partner hubs buying our own SIMs' numbers ([`partner`], the SMSHub agent protocol),
//! payment gateways' signed notices ([`payments`]: Stripe, BTCPay Server); the HTTP formats
//! of multi-SIM gateways are in [`simbank`] (GoIP speaks UDP: `crate::goip`); the Telegram
//! bot's updates in webhook mode arrive at [`telegram`].
//! Each maps the domain's errors to its own replies; none holds business rules. [`params`]
//! parses the values of the two customer protocols' parameters, strictly, for both.

pub mod fivesim;
pub mod handler_api;
pub mod ingest;
pub mod params;
pub mod partner;
pub mod payments;
pub mod simbank;
pub mod telegram;
