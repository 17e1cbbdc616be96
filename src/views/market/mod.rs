//! Templates of the marketplace (handlers: `http::web::market`).

pub mod admin;
pub mod admin_catalogue;
pub mod admin_orders;
pub mod orders;
pub mod payments;
pub mod prices;
pub mod webhooks;
