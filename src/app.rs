//! The application's shared, read-mostly state: settings, clock, keys, password hasher,
//! router and the job registry. One `Arc<App>` is shared by every thread; each thread owns
//! its own database connection.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::crypto::Keys;
use crate::domain::passwords::Hasher;
use crate::domain::{sessions, Error};
use crate::http::router::Router;
use crate::jobs::Jobs;

pub struct App {
    pub config: Config,
    pub clock: Clock,
    pub keys: Keys,
    pub hasher: Hasher,
    pub router: Router,
    pub jobs: Jobs,
}

impl App {
    /// Opens (and migrates) the database, loads the keys and builds the router.
    pub fn new(config: Config) -> Result<Arc<App>, Error> {
        let clock = if config.dev_clock {
            Clock::movable()
        } else {
            Clock::system()
        };
        crate::db::open(&config.data)?;
        let keys = Keys::load_or_create(&config.data)
            .map_err(|e| Error::Internal(format!("secret key: {e}")))?;
        let hasher = Hasher::new(config.max_hashes);
        let router = crate::http::build_router(&config);
        let jobs = Jobs::standard();
        Ok(Arc::new(App {
            config,
            clock,
            keys,
            hasher,
            router,
            jobs,
        }))
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub fn session_limits(&self) -> sessions::Limits {
        sessions::Limits {
            idle: self.config.session_idle,
            max: self.config.session_max,
        }
    }

    /// A fresh connection for a thread that has none (CLI commands, jobs).
    pub fn connect(&self) -> Result<rusqlite::Connection, Error> {
        crate::db::connect(&self.config.db_path())
    }
}
