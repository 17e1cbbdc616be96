//! Templates of number supply (handlers: `http::web::supply`).

pub mod operator;
pub mod partners;
pub mod providers;
