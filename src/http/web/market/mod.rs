//! Pages of the marketplace: the dashboard with the order form, order history, wallet,
//! rentals and API keys ([`orders`]), the public price list ([`prices`]), top-ups through
//! payment gateways ([`payments`]), the customer's webhooks ([`webhooks`]), and the admin's
//! vouchers, numbers, simulator and payouts ([`admin`]), prices and catalogue
//! ([`admin_catalogue`]) and the list of every order ([`admin_orders`]).
//! Templates: `views::market`.

pub mod admin;
pub mod admin_catalogue;
pub mod admin_orders;
pub mod orders;
pub mod payments;
pub mod prices;
pub mod webhooks;
