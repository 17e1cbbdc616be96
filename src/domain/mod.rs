//! The business rules. No HTTP types and no HTML here: functions take a connection or a
//! transaction, a clock time and plain values, and return plain values or an [`Error`].

pub mod accounts;
pub mod audit;
pub mod crypto;
pub mod mail;
pub mod money;
pub mod passwords;
pub mod sessions;
pub mod tokens;

use std::fmt;

/// The one domain error. Each protocol edge maps it to its own form via [`Error::code`].
#[derive(Debug)]
pub enum Error {
    /// Bad input from the caller; nothing changed.
    Invalid(String),
    NotFound(&'static str),
    Conflict(String),
    Unauthorized(String),
    Forbidden(String),
    /// Too many attempts; try again after this many seconds.
    Throttled {
        retry_after: u64,
    },
    /// The server is at a configured limit (e.g. password hashes in flight).
    Busy,
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
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::Throttled { .. } => "rate_limited",
            Error::Busy => "busy",
            Error::Db(_) | Error::Internal(_) => "internal",
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            Error::Invalid(_) => 400,
            Error::NotFound(_) => 404,
            Error::Conflict(_) => 409,
            Error::Unauthorized(_) => 401,
            Error::Forbidden(_) => 403,
            Error::Throttled { .. } => 429,
            Error::Busy => 503,
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
            | Error::Unauthorized(m)
            | Error::Forbidden(m)
            | Error::Internal(m) => f.write_str(m),
            Error::NotFound(what) => write!(f, "{what} not found"),
            Error::Throttled { retry_after } => {
                write!(f, "too many attempts; try again in {retry_after} seconds")
            }
            Error::Busy => f.write_str("the server is busy; try again shortly"),
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
