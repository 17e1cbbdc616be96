//! Pages of number supply: the operator's overview, devices and SIMs, orders on its numbers,
//! earnings and payout requests ([`operator`]), and the admin's upstream providers with
//! their health and the routing table ([`providers`]), and the partner hubs that buy our
//! own SIMs' numbers ([`partners`]). Templates: `views::supply`.

pub mod operator;
pub mod partners;
pub mod providers;
