//! Pages of number supply: the operator's overview, devices and SIMs, orders on its numbers,
//! earnings and payout requests ([`operator`]), and the admin's upstream providers with
//! their health and the routing table ([`providers`]). Templates: `views::supply`.

pub mod operator;
pub mod providers;
