//! Pages of one's own account: sign-up, e-mail confirmation, login and logout, password
//! reset, the first administrator's setup, settings and the security log ([`account`]),
//! the second factor ([`second_factor`]) and sign-in with OpenID Connect ([`oidc`]). Templates: `views::accounts`.

pub mod account;
pub mod oidc;
pub mod second_factor;
