//! Pages of one's own account: sign-up, e-mail confirmation, login and logout, password
//! reset, the first administrator's setup, settings and the security log ([`account`]),
//! the second factor ([`second_factor`]), sign-in with OpenID Connect ([`oidc`]) and the
//! notification channels ([`notifications`]). Templates: `views::accounts`.

pub mod account;
pub mod notifications;
pub mod oidc;
pub mod second_factor;
