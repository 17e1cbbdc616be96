//! The business rules. No HTTP types and no HTML here: functions take a connection or a
//! transaction, a clock time and plain values, and return plain values or an [`Error`].

pub mod accounts;
pub mod base;
pub mod market;
pub mod supply;
pub mod trust;

#[cfg(test)]
mod query_plans;

use std::fmt;

/// The one domain error. Each protocol edge maps it to its own form via [`Error::code`].
#[derive(Debug)]
pub enum Error {
    /// Bad input from the caller; nothing changed.
    Invalid(String),
    NotFound(&'static str),
    Conflict(String),
    Forbidden(String),
    /// Too many attempts; try again after this many seconds.
    #[allow(dead_code)] // rate limits arrive with the customer APIs
    Throttled {
        retry_after: u64,
    },
    /// The server is at a configured limit (e.g. password hashes in flight).
    Busy,
    /// The balance does not cover the price.
    NoBalance,
    /// No free number for the request.
    NoNumbers,
    BadService,
    BadCountry,
    WrongOperator,
    /// The price is above the caller's maximum; the minimum that would work.
    WrongMaxPrice {
        min_minor: i64,
    },
    /// Cancelling is refused this early; seconds until it is allowed.
    EarlyCancel {
        seconds_left: u64,
    },
    /// The order is not in a state that allows this action.
    BadStatus(String),
    /// Too many live orders at once.
    Limit,
    /// The admin blocked orders for this service, this country or this pair
    /// ([`market::blocklist`]).
    Blocked(market::blocklist::Scope),
    Db(rusqlite::Error),
    Internal(String),
}

impl Error {
    /// Stable machine code used in JSON errors and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "invalid_request",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Forbidden(_) => "forbidden",
            Error::Throttled { .. } => "rate_limited",
            Error::Busy => "busy",
            Error::NoBalance => "no_balance",
            Error::NoNumbers => "no_numbers",
            Error::BadService => "bad_service",
            Error::BadCountry => "bad_country",
            Error::WrongOperator => "bad_operator",
            Error::WrongMaxPrice { .. } => "max_price_too_low",
            Error::EarlyCancel { .. } => "early_cancel_denied",
            Error::BadStatus(_) => "bad_status",
            Error::Limit => "too_many_orders",
            Error::Blocked(_) => "blocked",
            Error::Db(_) | Error::Internal(_) => "internal",
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            Error::Invalid(_) => 400,
            Error::NotFound(_) => 404,
            Error::Conflict(_) => 409,
            Error::Forbidden(_) => 403,
            Error::Throttled { .. } => 429,
            Error::Busy => 503,
            Error::NoBalance => 402,
            Error::NoNumbers => 409,
            // A service, country or operator that does not exist (or is not sold) is looked
            // for in vain: 404, whatever the protocol's own code says.
            Error::BadService | Error::BadCountry | Error::WrongOperator => 404,
            Error::WrongMaxPrice { .. } => 409,
            Error::EarlyCancel { .. } => 409,
            Error::BadStatus(_) => 409,
            Error::Limit => 429,
            Error::Blocked(_) => 403,
            Error::Db(_) | Error::Internal(_) => 500,
        }
    }

    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(m)
            | Error::Conflict(m)
            | Error::Forbidden(m)
            | Error::Internal(m) => f.write_str(m),
            Error::NotFound(what) => write!(f, "{what} not found"),
            Error::Throttled { retry_after: 1 } => {
                f.write_str("too many requests; try again in 1 second")
            }
            Error::Throttled { retry_after } => {
                write!(f, "too many requests; try again in {retry_after} seconds")
            }
            Error::Busy => f.write_str("the server is busy; try again shortly"),
            Error::NoBalance => f.write_str("Your balance is too low for this order."),
            Error::NoNumbers => f.write_str("No free number for this country and service now."),
            Error::BadService => f.write_str("Unknown or unavailable service."),
            Error::BadCountry => f.write_str("Unknown or unavailable country."),
            Error::WrongOperator => f.write_str("Unknown operator for this country."),
            Error::WrongMaxPrice { min_minor } => {
                write!(f, "The price is above your maximum; it is {min_minor} minor units.")
            }
            Error::EarlyCancel { seconds_left } => write!(
                f,
                "Cancelling is possible in {seconds_left} seconds (numbers cannot be cancelled right after they are issued)."
            ),
            Error::BadStatus(m) => f.write_str(m),
            Error::Limit => f.write_str("You have too many live orders; finish or cancel one first."),
            Error::Blocked(scope) => f.write_str(scope.message()),
            // Database details stay in the log, not in replies.
            Error::Db(_) => f.write_str("internal error"),
        }
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        Error::Db(e)
    }
}

pub type Result<T> = std::result::Result<T, Error>;
