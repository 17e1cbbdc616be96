//! Pages of the marketplace: the dashboard with the order form, order history, wallet,
//! rentals and API keys ([`orders`]), top-ups through payment gateways ([`payments`]), the customer's webhooks ([`webhooks`]), and the
//! admin's prices, catalogue switches, vouchers, numbers and payouts ([`admin`]).
//! Templates: `views::market`.

pub mod admin;
pub mod admin_orders;
pub mod orders;
pub mod payments;
pub mod webhooks;
