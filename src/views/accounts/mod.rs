//! Templates of one's own account (handlers: `http::web::accounts`).

pub mod account;
pub mod notifications;
pub mod oidc;
pub mod second_factor;
