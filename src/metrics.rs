//! Prometheus metrics (`GET /metrics`, text format 0.0.4, prefix `otpbox_`).
//!
//! What happens in this process is counted here as it happens (HTTP requests and their
//! latency, SMS ingested, job runs); what the database holds is read at scrape time through
//! indexes that hold only live rows (live orders, pending webhooks, devices, providers), so a
//! scrape costs the same however long the history. Counters start at zero with the process,
//! as Prometheus expects.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    /// (route family, status class) → requests.
    requests: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    /// (source, outcome) → SMS.
    sms: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// (job, ok) → runs.
    jobs: Mutex<BTreeMap<(&'static str, bool), u64>>,
    long_polls: std::sync::atomic::AtomicUsize,
}

/// The family a path belongs to, for the request metrics (a few fixed values, never the
/// path itself, so the series stay few).
pub fn family(path: &str) -> &'static str {
    if path.starts_with("/api/") {
        "native_api"
    } else if path == "/stubs/handler_api.php" {
        "handler_api"
    } else if path.starts_with("/v1/") {
        "fivesim"
    } else if path.starts_with("/ingest/") || path.starts_with("/gateway/") {
        "ingest"
    } else if path.starts_with("/assets/") {
        "assets"
    } else if path == "/healthz" || path == "/metrics" {
        "ops"
    } else {
        "pages"
    }
}

fn class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    /// One request answered.
    pub fn request(&self, path: &str, status: u16, took: Duration) {
        let fam = family(path);
        *lock(&self.requests)
            .entry((fam, class(status)))
            .or_default() += 1;
        let secs = took.as_secs_f64();
        let mut lat = lock(&self.latency);
        let h = lat.entry(fam).or_default();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// One SMS reached the ingest path from `source` (a gateway kind, `modem`, `cli`…):
    /// `outcome` is `delivered`, `unknown_number` or `duplicate`.
    pub fn sms(&self, source: &str, outcome: &'static str) {
        *lock(&self.sms)
            .entry((source.to_string(), outcome))
            .or_default() += 1;
    }

    /// How many long-poll requests wait now.
    pub fn set_long_polls(&self, n: usize) {
        self.long_polls
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// One run of a scheduled job.
    pub fn job(&self, name: &'static str, ok: bool) {
        *lock(&self.jobs).entry((name, ok)).or_default() += 1;
    }

    /// The whole exposition: this process's counters, then what the database holds now.
    pub fn render(&self, db: &Connection, now: i64) -> String {
        let long_polls = self.long_polls.load(std::sync::atomic::Ordering::Relaxed);
        let mut out = String::new();
        head(
            &mut out,
            "otpbox_http_requests_total",
            "counter",
            "HTTP requests answered, by route family and status class",
        );
        for ((fam, cls), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "otpbox_http_requests_total{{family=\"{fam}\",status=\"{cls}\"}} {n}"
            );
        }
        head(
            &mut out,
            "otpbox_http_request_duration_seconds",
            "histogram",
            "Time from taking a request to writing its answer, by route family",
        );
        for (fam, h) in lock(&self.latency).iter() {
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "otpbox_http_request_duration_seconds_bucket{{family=\"{fam}\",le=\"{le}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "otpbox_http_request_duration_seconds_bucket{{family=\"{fam}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "otpbox_http_request_duration_seconds_sum{{family=\"{fam}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "otpbox_http_request_duration_seconds_count{{family=\"{fam}\"}} {}",
                h.count
            );
        }
        head(
            &mut out,
            "otpbox_sms_ingested_total",
            "counter",
            "SMS received from gateways, modems and the command line, by source and outcome",
        );
        for ((source, outcome), n) in lock(&self.sms).iter() {
            let _ = writeln!(
                out,
                "otpbox_sms_ingested_total{{source=\"{}\",outcome=\"{outcome}\"}} {n}",
                label(source)
            );
        }
        head(
            &mut out,
            "otpbox_job_runs_total",
            "counter",
            "Runs of scheduled jobs, by job and result",
        );
        for ((job, ok), n) in lock(&self.jobs).iter() {
            let result = if *ok { "ok" } else { "failed" };
            let _ = writeln!(
                out,
                "otpbox_job_runs_total{{job=\"{job}\",result=\"{result}\"}} {n}"
            );
        }
        head(
            &mut out,
            "otpbox_long_polls_waiting",
            "gauge",
            "Long-poll requests waiting for a change",
        );
        let _ = writeln!(out, "otpbox_long_polls_waiting {long_polls}");
        if let Some(g) = crate::db::group_commits(db) {
            for (name, help, n) in [
                (
                    "otpbox_db_commits_total",
                    "Transactions committed through the shared write connection",
                    g.commits,
                ),
                (
                    "otpbox_db_writes_total",
                    "Writes those transactions held (more than commits: writes shared a commit)",
                    g.writes,
                ),
                (
                    "otpbox_db_checkpoints_total",
                    "WAL checkpoints run beside the writers",
                    g.checkpoints,
                ),
            ] {
                head(&mut out, name, "counter", help);
                let _ = writeln!(out, "{name} {n}");
            }
            for (name, help, seconds) in [
                (
                    "otpbox_db_write_busy_seconds_total",
                    "Time a writer held the shared write connection (near the time elapsed: writes queue)",
                    g.busy_seconds,
                ),
                (
                    "otpbox_db_write_busy_cpu_seconds_total",
                    "CPU time of the threads that held the shared write connection (below the time held: they waited for a core)",
                    g.busy_cpu_seconds,
                ),
            ] {
                head(&mut out, name, "counter", help);
                let _ = writeln!(out, "{name} {seconds:.6}");
            }
        }
        if let Err(e) = database_gauges(&mut out, db, now) {
            log::error!("metrics: cannot read the database: {e}");
            head(
                &mut out,
                "otpbox_database_up",
                "gauge",
                "1 when the database answered the scrape's reads",
            );
            out.push_str("otpbox_database_up 0\n");
        }
        out
    }
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn database_gauges(out: &mut String, db: &Connection, now: i64) -> rusqlite::Result<()> {
    let mut body = String::new();
    head(
        &mut body,
        "otpbox_orders_live",
        "gauge",
        "Live activations by state and number source",
    );
    let mut stmt = db.prepare_cached(
        "SELECT status, source, count(*) FROM activations \
         WHERE status IN ('waiting', 'received', 'retry') GROUP BY status, source",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (state, source, n) = row?;
        let _ = writeln!(
            body,
            "otpbox_orders_live{{state=\"{}\",source=\"{}\"}} {n}",
            label(&state),
            label(&source)
        );
    }
    head(
        &mut body,
        "otpbox_rentals_live",
        "gauge",
        "Rentals not yet ended",
    );
    let rentals: i64 = db
        .prepare_cached("SELECT count(*) FROM rentals WHERE status = 'active'")?
        .query_row([], |r| r.get(0))?;
    let _ = writeln!(body, "otpbox_rentals_live {rentals}");
    head(
        &mut body,
        "otpbox_webhook_queue",
        "gauge",
        "Webhook deliveries waiting to be sent or retried",
    );
    let pending: i64 = db
        .prepare_cached("SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'")?
        .query_row([], |r| r.get(0))?;
    let _ = writeln!(body, "otpbox_webhook_queue {pending}");
    head(
        &mut body,
        "otpbox_webhook_failed_24h",
        "gauge",
        "Webhook deliveries given up in the last 24 hours",
    );
    let failed: i64 = db
        .prepare_cached(
            "SELECT count(*) FROM webhook_deliveries \
             WHERE state <> 'pending' AND finished_at > ?1 AND state = 'failed'",
        )?
        .query_row([now - 86_400], |r| r.get(0))?;
    let _ = writeln!(body, "otpbox_webhook_failed_24h {failed}");
    head(
        &mut body,
        "otpbox_devices",
        "gauge",
        "Operators' gateway devices (not revoked), by state",
    );
    for (state, online) in [("online", 1), ("offline", 0)] {
        let n: i64 = db
            .prepare_cached(
                "SELECT count(*) FROM devices WHERE online = ?1 AND revoked_at IS NULL",
            )?
            .query_row([online], |r| r.get(0))?;
        let _ = writeln!(body, "otpbox_devices{{state=\"{state}\"}} {n}");
    }
    head(
        &mut body,
        "otpbox_provider_up",
        "gauge",
        "1 when an upstream provider is enabled and its circuit breaker closed",
    );
    let mut providers = String::new();
    head(
        &mut providers,
        "otpbox_provider_balance_minor",
        "gauge",
        "Last balance seen at an upstream provider, in minor units of the install's currency",
    );
    let mut stmt = db.prepare_cached(
        "SELECT name, enabled, paused_until, balance_minor FROM providers ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, bool>(1)?,
            r.get::<_, Option<i64>>(2)?,
            r.get::<_, Option<i64>>(3)?,
        ))
    })?;
    for row in rows {
        let (name, enabled, paused, balance) = row?;
        let up = enabled && paused.is_none_or(|p| p <= now);
        let _ = writeln!(
            body,
            "otpbox_provider_up{{provider=\"{}\"}} {}",
            label(&name),
            up as u8
        );
        if let Some(b) = balance {
            let _ = writeln!(
                providers,
                "otpbox_provider_balance_minor{{provider=\"{}\"}} {b}",
                label(&name)
            );
        }
    }
    body.push_str(&providers);
    head(
        &mut body,
        "otpbox_database_bytes",
        "gauge",
        "Size of the database file (pages times page size)",
    );
    let bytes: i64 = db.query_row(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        [],
        |r| r.get(0),
    )?;
    let _ = writeln!(body, "otpbox_database_bytes {bytes}");
    head(
        &mut body,
        "otpbox_last_backup_age_seconds",
        "gauge",
        "Seconds since the last verified backup (absent before the first)",
    );
    let last: Option<i64> = db
        .prepare_cached("SELECT max(started_at) FROM job_runs WHERE job = 'backup' AND ok = 1")?
        .query_row([], |r| r.get(0))?;
    if let Some(t) = last {
        let _ = writeln!(body, "otpbox_last_backup_age_seconds {}", now - t);
    }
    // The latest attempt, verified or not: its verdict and the size of its set.
    let latest: Option<(bool, String)> = db
        .prepare_cached(
            "SELECT ok, message FROM job_runs WHERE job = 'backup' \
             ORDER BY started_at DESC LIMIT 1",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((ok, message)) = latest {
        head(
            &mut body,
            "otpbox_last_backup_success",
            "gauge",
            "1 when the latest backup attempt produced a verified set, else 0",
        );
        let _ = writeln!(body, "otpbox_last_backup_success {}", ok as u8);
        if let Some(bytes) = backup_bytes(&message).filter(|_| ok) {
            head(
                &mut body,
                "otpbox_last_backup_bytes",
                "gauge",
                "Size of the latest verified backup set (database and key)",
            );
            let _ = writeln!(body, "otpbox_last_backup_bytes {bytes}");
        }
    }
    head(
        &mut body,
        "otpbox_database_up",
        "gauge",
        "1 when the database answered the scrape's reads",
    );
    body.push_str("otpbox_database_up 1\n");
    out.push_str(&body);
    Ok(())
}

/// The size in a backup run's summary, `… (N bytes), verified …`.
fn backup_bytes(message: &str) -> Option<u64> {
    let end = message.find(" bytes)")?;
    let start = message[..end].rfind('(')? + 1;
    message[start..end].parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_backup_size_is_read_from_its_summary() {
        assert_eq!(
            super::backup_bytes("otpbox backup: /b/otpbox-x (81920 bytes), verified: ok"),
            Some(81920)
        );
        assert_eq!(super::backup_bytes("failed: locked"), None);
    }

    use super::*;

    #[test]
    fn families_are_few_and_fixed() {
        assert_eq!(family("/api/v1/balance"), "native_api");
        assert_eq!(family("/stubs/handler_api.php"), "handler_api");
        assert_eq!(family("/v1/user/profile"), "fivesim");
        assert_eq!(family("/ingest/generic/abc"), "ingest");
        assert_eq!(family("/dashboard"), "pages");
        assert_eq!(family("/anything/else?x"), "pages");
    }

    #[test]
    fn a_request_counts_in_every_bucket_at_or_above_its_time() {
        let m = Metrics::default();
        m.request("/healthz", 200, Duration::from_millis(3));
        m.request("/healthz", 503, Duration::from_millis(300));
        let lat = lock(&m.latency);
        let h = &lat["ops"];
        assert_eq!(h.count, 2);
        // 0.0025 < 0.003 ≤ 0.005
        assert_eq!(h.counts[2], 0);
        assert_eq!(h.counts[3], 1);
        assert_eq!(h.counts[BUCKETS.len() - 1], 2);
        drop(lat);
        let req = lock(&m.requests);
        assert_eq!(req[&("ops", "2xx")], 1);
        assert_eq!(req[&("ops", "5xx")], 1);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
