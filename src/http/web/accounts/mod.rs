//! Pages of one's own account: sign-up, e-mail confirmation, login and logout, password
//! reset, the first administrator's setup, settings and the security log ([`account`]),
//! and the second factor ([`second_factor`]). Templates: `views::accounts`.

pub mod account;
pub mod second_factor;
