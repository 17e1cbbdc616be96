//! Templates of number supply (handlers: `http::web::supply`).

pub mod operator;
pub mod providers;
