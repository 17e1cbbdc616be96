//! Templates of trust, privacy and administration (handlers: `http::web::trust`; the
//! admin's abuse queue is in [`abuse`] beside the public form).

pub mod abuse;
pub mod admin;
pub mod charts;
pub mod lifecycle;
