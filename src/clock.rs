//! The one source of "now" for all domain code.
//!
//! Production uses the system clock. Tests (the `dev_clock` setting) can move time
//! forward, so expiry, refunds and retention are proven without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in seconds (UTC). Every timestamp stored in the database uses this unit.
pub type Timestamp = i64;

#[derive(Debug)]
pub struct Clock {
    /// Added to the base time; only ever moved by tests and dev mode.
    offset_ms: AtomicI64,
    /// When set, time does not pass by itself (unit tests).
    frozen_at_ms: Option<i64>,
    movable: bool,
}

impl Clock {
    /// The wall clock; `advance` is refused.
    pub fn system() -> Clock {
        Clock {
            offset_ms: AtomicI64::new(0),
            frozen_at_ms: None,
            movable: false,
        }
    }

    /// The wall clock plus an offset that `advance` moves (dev and integration tests).
    pub fn movable() -> Clock {
        Clock {
            movable: true,
            ..Clock::system()
        }
    }

    /// A clock standing still at `t` seconds until advanced (unit tests).
    #[cfg(test)]
    pub fn fixed(t: Timestamp) -> Clock {
        Clock {
            offset_ms: AtomicI64::new(0),
            frozen_at_ms: Some(t * 1000),
            movable: true,
        }
    }

    pub fn now_ms(&self) -> i64 {
        let base = self.frozen_at_ms.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0)
        });
        base + self.offset_ms.load(Ordering::SeqCst)
    }

    pub fn now(&self) -> Timestamp {
        self.now_ms().div_euclid(1000)
    }

    /// Moves time forward. Returns false (and does nothing) on the system clock.
    pub fn advance(&self, seconds: i64) -> bool {
        if !self.movable || seconds < 0 {
            return false;
        }
        self.offset_ms.fetch_add(seconds * 1000, Ordering::SeqCst);
        true
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, the format the SMS-Activate protocol and our views use.
pub fn format_datetime(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// RFC 3339 in UTC (`2026-01-02T03:04:05Z`).
pub fn format_rfc3339(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// Human duration such as `5 minutes`, `24 months`, `30 days` for policy pages.
pub fn describe_seconds(secs: u64) -> String {
    let plural = |n: u64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    const DAY: u64 = 86_400;
    if secs == 0 {
        "0 seconds".into()
    } else if secs.is_multiple_of(365 * DAY) {
        plural(secs / (365 * DAY), "year")
    } else if secs.is_multiple_of(30 * DAY) {
        plural(secs / (30 * DAY), "month")
    } else if secs.is_multiple_of(7 * DAY) && secs >= 7 * DAY {
        plural(secs / (7 * DAY), "week")
    } else if secs.is_multiple_of(DAY) {
        plural(secs / DAY, "day")
    } else if secs.is_multiple_of(3600) {
        plural(secs / 3600, "hour")
    } else if secs.is_multiple_of(60) {
        plural(secs / 60, "minute")
    } else {
        plural(secs, "second")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_clock_moves_only_when_advanced() {
        let c = Clock::fixed(1_000);
        assert_eq!(c.now(), 1_000);
        assert!(c.advance(90));
        assert_eq!(c.now(), 1_090);
    }

    #[test]
    fn system_clock_refuses_to_move() {
        let c = Clock::system();
        assert!(!c.advance(10));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(describe_seconds(300), "5 minutes");
        assert_eq!(describe_seconds(420), "7 minutes");
        assert_eq!(describe_seconds(30 * 86_400), "1 month");
        assert_eq!(describe_seconds(720 * 86_400), "24 months");
        assert_eq!(describe_seconds(7 * 365 * 86_400), "7 years");
        assert_eq!(describe_seconds(86_400), "1 day");
        assert_eq!(describe_seconds(61), "61 seconds");
    }

    #[test]
    fn datetime_formats() {
        assert_eq!(format_datetime(0), "1970-01-01 00:00:00");
        assert_eq!(format_rfc3339(86_400), "1970-01-02T00:00:00Z");
    }
}
