//! The in-process scheduler: one thread runs registered jobs on cron expressions, in clock
//! time (so tests that move the clock also move the schedule). Every run's start, duration
//! and outcome is written to `job_runs` and shown on the admin's jobs page.

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use crate::app::App;
use crate::clock::Timestamp;
use crate::domain::{mail, sessions, Error, Result};

/// A job returns a short summary of what it did ("3 sessions removed").
pub type JobFn = fn(&App, &mut Connection) -> Result<String>;

pub struct Job {
    pub name: &'static str,
    pub schedule: &'static str,
    pub about: &'static str,
    pub run: JobFn,
    cron: cron::Schedule,
}

pub struct Jobs {
    pub list: Vec<Job>,
    /// Next due time per job (clock seconds); guarded so one run happens at a time.
    next_due: Mutex<Vec<Option<Timestamp>>>,
}

/// Parses a 6- or 7-field cron expression (seconds first), with a helpful error.
pub fn parse_schedule(expr: &str) -> std::result::Result<cron::Schedule, String> {
    cron::Schedule::from_str(expr).map_err(|e| {
        let fields = expr.split_whitespace().count();
        if fields == 5 {
            format!(
                "`{expr}` has 5 fields; otpbox schedules start with a seconds field, \
                 e.g. `0 {expr}`"
            )
        } else {
            format!("`{expr}` is not a valid schedule: {e}")
        }
    })
}

impl Jobs {
    pub fn new(defs: Vec<(&'static str, &'static str, &'static str, JobFn)>) -> Jobs {
        let list: Vec<Job> = defs
            .into_iter()
            .map(|(name, schedule, about, run)| Job {
                name,
                schedule,
                about,
                run,
                cron: parse_schedule(schedule)
                    .unwrap_or_else(|e| panic!("built-in job {name}: {e}")),
            })
            .collect();
        let n = list.len();
        Jobs {
            list,
            next_due: Mutex::new(vec![None; n]),
        }
    }

    /// The jobs every install runs.
    pub fn standard() -> Jobs {
        Jobs::new(vec![
            (
                "sessions",
                "0 */10 * * * *",
                "Delete expired sessions",
                job_sessions,
            ),
            (
                "mail",
                "*/15 * * * * *",
                "Send pending mail over SMTP",
                job_mail,
            ),
            (
                "job_runs",
                "0 17 3 * * *",
                "Forget job-run records older than 30 days",
                job_prune_runs,
            ),
        ])
    }

    fn next_after(job: &Job, t: Timestamp) -> Option<Timestamp> {
        let dt: DateTime<Utc> = DateTime::from_timestamp(t, 0)?;
        job.cron.after(&dt).next().map(|d| d.timestamp())
    }

    /// Runs every job whose time has come; returns how many ran.
    pub fn run_due(&self, app: &App, conn: &mut Connection) -> usize {
        let now = app.now();
        let mut due = self.next_due.lock().unwrap_or_else(|p| p.into_inner());
        let mut ran = 0;
        for (i, job) in self.list.iter().enumerate() {
            let next =
                *due[i].get_or_insert_with(|| Jobs::next_after(job, now).unwrap_or(i64::MAX));
            if next <= now {
                record(conn, job, app, now);
                due[i] = Jobs::next_after(job, now);
                ran += 1;
            }
        }
        ran
    }

    /// Runs every job now, whatever its schedule (dev mode and tests); returns summaries.
    pub fn run_all(&self, app: &App, conn: &mut Connection) -> Vec<(String, bool, String)> {
        let _guard = self.next_due.lock().unwrap_or_else(|p| p.into_inner());
        let now = app.now();
        self.list
            .iter()
            .map(|job| {
                let (ok, msg) = record(conn, job, app, now);
                (job.name.to_string(), ok, msg)
            })
            .collect()
    }
}

fn record(conn: &mut Connection, job: &Job, app: &App, now: Timestamp) -> (bool, String) {
    let started = Instant::now();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (job.run)(app, conn)));
    let (ok, msg) = match outcome {
        Ok(Ok(msg)) => (true, msg),
        Ok(Err(e)) => (false, format!("{e} ({e:?})")),
        Err(_) => (false, "the job panicked".to_string()),
    };
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    if !ok {
        log::error!("job {} failed: {msg}", job.name);
    } else {
        log::debug!("job {}: {msg}", job.name);
    }
    let ms = started.elapsed().as_millis() as i64;
    if let Err(e) = conn.execute(
        "INSERT INTO job_runs (job, started_at, duration_ms, ok, message) VALUES (?1,?2,?3,?4,?5)",
        params![job.name, now, ms, ok, msg],
    ) {
        log::error!("cannot record the run of job {}: {e}", job.name);
    }
    (ok, msg)
}

/// Starts the scheduler thread: checks once a second which jobs are due.
pub fn spawn(app: Arc<App>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("scheduler".into())
        .spawn(move || {
            let mut conn = loop {
                match app.connect() {
                    Ok(c) => break c,
                    Err(e) => {
                        log::error!("scheduler cannot open the database: {e}");
                        std::thread::sleep(Duration::from_secs(5));
                    }
                }
            };
            loop {
                app.jobs.run_due(&app, &mut conn);
                std::thread::sleep(Duration::from_secs(1));
            }
        })
        .map(|_| ())
}

#[derive(Debug, Clone)]
pub struct RunRow {
    pub job: String,
    pub started_at: Timestamp,
    pub duration_ms: i64,
    pub ok: bool,
    pub message: String,
}

pub fn recent_runs(conn: &Connection, limit: i64) -> Result<Vec<RunRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT job, started_at, duration_ms, ok, message FROM job_runs ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], |r| {
        Ok(RunRow {
            job: r.get(0)?,
            started_at: r.get(1)?,
            duration_ms: r.get(2)?,
            ok: r.get(3)?,
            message: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn job_sessions(app: &App, conn: &mut Connection) -> Result<String> {
    let n = sessions::purge_expired(conn, app.config.session_idle, app.now())?;
    Ok(format!("{n} expired sessions removed"))
}

fn job_prune_runs(app: &App, conn: &mut Connection) -> Result<String> {
    let n = conn.execute(
        "DELETE FROM job_runs WHERE started_at < ?1",
        [app.now() - 30 * 86_400],
    )?;
    Ok(format!("{n} old run records removed"))
}

fn job_mail(app: &App, conn: &mut Connection) -> Result<String> {
    let Some(smtp) = &app.config.smtp else {
        return Ok("no SMTP configured; mail stays in the outbox".into());
    };
    let pending = mail::pending(conn, 20)?;
    let (mut sent, mut failed) = (0, 0);
    for m in pending {
        match crate::smtp::send(smtp, &m.to_addr, &m.subject, &m.body) {
            Ok(()) => {
                mail::mark_sent(conn, m.id, app.now())?;
                sent += 1;
            }
            Err(e) => {
                mail::mark_failed(conn, m.id, &e)?;
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(Error::Internal(format!("{sent} sent, {failed} failed")));
    }
    Ok(format!("{sent} sent"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_field_cron_gets_a_helpful_error() {
        let err = parse_schedule("*/5 * * * *").unwrap_err();
        assert!(err.contains("seconds field"), "{err}");
        assert!(parse_schedule("0 */5 * * * *").is_ok());
        assert!(parse_schedule("@daily").is_ok());
    }

    #[test]
    fn standard_jobs_parse() {
        let jobs = Jobs::standard();
        assert!(jobs.list.iter().any(|j| j.name == "sessions"));
    }
}
