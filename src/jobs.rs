//! The in-process scheduler: one thread runs registered jobs on cron expressions, in clock
//! time (so tests that move the clock also move the schedule). Every run's start, duration
//! and outcome is written to `job_runs` and shown on the admin's jobs page.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use crate::app::App;
use crate::clock::Timestamp;
use crate::domain::trust::retention::Rule;
use crate::domain::{
    accounts::notifications, accounts::sessions, base::mail, market::activations,
    market::catalogue, market::partners, market::rentals, market::simulator, market::webhooks,
    supply::devices, supply::gateway, supply::parts, trust::abuse, trust::lifecycle,
    trust::retention, trust::signals, Error, Result,
};

/// A job returns a short summary of what it did ("3 sessions removed"), or "" when there was
/// nothing to do: idle runs of frequent jobs are recorded at most once an hour.
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
    /// When each job's last idle run was recorded.
    last_idle_record: Mutex<Vec<Timestamp>>,
}

pub use crate::config::parse_schedule;

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
            last_idle_record: Mutex::new(vec![i64::MIN; n]),
        }
    }

    /// The jobs every install runs; `backup_schedule` comes from the configuration (checked
    /// when it was read).
    pub fn standard(backup_schedule: &str) -> Jobs {
        // Once per process: the job table holds its schedules for the process's life.
        let backup_schedule: &'static str = Box::leak(backup_schedule.to_string().into_boxed_str());
        Jobs::new(vec![
            (
                "expiry",
                "*/5 * * * * *",
                "End activations and rentals whose time is up; refund those without a code",
                job_expiry,
            ),
            (
                "upstream",
                "*/5 * * * * *",
                "Poll live orders bought upstream, deliver their codes, tell providers our cancels and finishes",
                job_upstream,
            ),
            (
                "providers",
                "0 */5 * * * *",
                "Sync the upstream providers' prices, stock and balances; forget old call records",
                job_providers,
            ),
            (
                "simulator",
                "* * * * * *",
                "Deliver the simulator's SMS that are due",
                job_simulator,
            ),
            (
                "partners",
                "*/5 * * * * *",
                "Push SMS to partner hubs until they accept them; free numbers a hub held too long",
                job_partners,
            ),
            (
                "webhooks",
                "*/5 * * * * *",
                "Send due webhook deliveries, retrying failures with back-off; forget old ones",
                job_webhooks,
            ),
            (
                "notifications",
                "*/5 * * * * *",
                "Send due notifications (ntfy, Telegram, e-mail), retrying failures with back-off",
                job_notifications,
            ),
            (
                "telegram",
                "*/10 * * * * *",
                "Read the Telegram bot's updates and link the chats that sent /start CODE",
                job_telegram,
            ),
            (
                "devices",
                "*/10 * * * * *",
                "Take devices silent for longer than device_offline_after offline (their SIMs leave the stock); take in long SMS whose missing parts never came",
                job_devices,
            ),
            (
                "sms_retention",
                "0 * * * * *",
                "Delete SMS texts and codes once their retention after the order ended passed",
                job_sms_retention,
            ),
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
                "abuse",
                "0 */10 * * * *",
                "Compute the anomaly signals and raise flags for the admin (never acts on an \
                 account); forget week-old abuse reporters' address hashes",
                job_abuse,
            ),
            (
                "payments",
                "0 */5 * * * *",
                "Reconcile top-ups still open after 15 minutes: ask their gateway, credit the paid \
                 (a lost webhook), close the expired; close checkouts that were never opened",
                job_payments,
            ),
            (
                "stats",
                "30 * * * * *",
                "Fold ended orders and new ledger rows into the daily statistics; refresh the \
                 7-day success rates customers see before buying",
                job_stats,
            ),
            (
                "retention",
                "0 17 3 * * *",
                "Anonymise old orders; delete old ledger rows, operational logs and security logs \
                 (the periods on /privacy)",
                job_retention,
            ),
            (
                "accounts",
                "0 41 * * * *",
                "Purge deleted accounts whose deletion_cooldown has passed: e-mail replaced by a \
                 placeholder, password hash, name and sign-in secrets cleared",
                job_accounts,
            ),
            (
                "backup",
                backup_schedule,
                "Back up the database and secret.key into a new verified set under backup_dir; keep backup_keep sets",
                job_backup,
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
                self.record(i, conn, job, app, now);
                due[i] = Jobs::next_after(job, now);
                ran += 1;
            }
        }
        ran
    }

    /// Runs every job now, whatever its schedule (dev mode and tests); returns summaries.
    /// Each job is next due by its schedule after this run: a time the dev clock jumped over
    /// does not make the scheduler run it a second time just after (tests read what the run
    /// they asked for did).
    pub fn run_all(&self, app: &App, conn: &mut Connection) -> Vec<(String, bool, String)> {
        let mut due = self.next_due.lock().unwrap_or_else(|p| p.into_inner());
        let now = app.now();
        self.list
            .iter()
            .enumerate()
            .map(|(i, job)| {
                let (ok, msg) = self.record(i, conn, job, app, now);
                due[i] = Jobs::next_after(job, now);
                (job.name.to_string(), ok, msg)
            })
            .collect()
    }
}

impl Jobs {
    fn record(
        &self,
        i: usize,
        conn: &mut Connection,
        job: &Job,
        app: &App,
        now: Timestamp,
    ) -> (bool, String) {
        let (ok, msg, ms) = execute(conn, job, app);
        app.metrics.job(job.name, ok);
        let idle = ok && msg.is_empty();
        if idle {
            let mut last = self
                .last_idle_record
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if now.saturating_sub(last[i]) < 3600 {
                return (ok, msg);
            }
            last[i] = now;
        }
        let shown = if idle { "nothing to do" } else { msg.as_str() };
        if let Err(e) = conn.execute(
            "INSERT INTO job_runs (job, started_at, duration_ms, ok, message) VALUES (?1,?2,?3,?4,?5)",
            params![job.name, now, ms, ok, shown],
        ) {
            log::error!("cannot record the run of job {}: {e}", job.name);
        }
        (ok, msg)
    }
}

fn execute(conn: &mut Connection, job: &Job, app: &App) -> (bool, String, i64) {
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
    (ok, msg, started.elapsed().as_millis() as i64)
}

/// Starts the scheduler thread: checks once a second which jobs are due.
pub fn spawn(app: Arc<App>, jobs: Arc<Jobs>) -> std::io::Result<()> {
    app.life.scheduler_started(app.now());
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
                // A stop waits for the tick in progress, and no tick starts after it.
                app.life.set_ticking(true);
                if app.life.stopping() {
                    app.life.set_ticking(false);
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
                if !app.life.scheduler_paused() {
                    app.life.probe(&conn);
                    // The scheduler must outlive any bug in one tick.
                    let tick = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        jobs.run_due(&app, &mut conn);
                    }));
                    if tick.is_err() {
                        log::error!("scheduler tick panicked; continuing");
                        if !conn.is_autocommit() {
                            let _ = conn.execute_batch("ROLLBACK");
                        }
                    }
                    app.life.beat(app.now());
                }
                app.life.set_ticking(false);
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

fn job_expiry(app: &App, conn: &mut Connection) -> Result<String> {
    let now = app.now();
    let policy = app.policy();
    let (a, (renewed, expired)) = crate::db::write(conn, |tx| {
        let ended = (
            activations::expire_due(tx, &policy, now)?,
            rentals::expire_due(tx, &policy, now)?,
        );
        catalogue::advance_stock_mark(tx, policy.cooldown, now)?;
        Ok(ended)
    })?;
    if !a.is_empty() {
        app.notify();
    }
    if a.is_empty() && renewed.is_empty() && expired.is_empty() {
        return Ok(String::new());
    }
    Ok(format!(
        "{} activations ended, {} rentals renewed, {} rentals expired",
        a.len(),
        renewed.len(),
        expired.len()
    ))
}

fn job_upstream(app: &App, conn: &mut Connection) -> Result<String> {
    crate::upstream::job_orders(app, conn)
}

fn job_providers(app: &App, conn: &mut Connection) -> Result<String> {
    crate::upstream::job_sync(app, conn)
}

fn job_payments(app: &App, conn: &mut Connection) -> Result<String> {
    let gateways = crate::payments::Gateways::from_config(&app.config);
    let (seen, changed) = crate::payments::reconcile(conn, &app.config, &gateways, || app.now())?;
    Ok(match (seen, changed) {
        (0, _) => String::new(),
        (s, c) => format!("{s} open top-ups looked up, {c} changed"),
    })
}

fn job_stats(app: &App, conn: &mut Connection) -> Result<String> {
    let now = app.now();
    let f = crate::db::write(conn, |tx| crate::domain::supply::stats::roll_up(tx, now))?;
    Ok(match f.activations + f.rentals + f.ledger {
        0 => String::new(),
        _ => format!(
            "{} activations, {} rentals and {} ledger rows folded",
            f.activations, f.rentals, f.ledger
        ),
    })
}

fn job_abuse(app: &App, conn: &mut Connection) -> Result<String> {
    let now = app.now();
    let (raised, forgotten) = crate::db::write(conn, |tx| {
        Ok((
            signals::scan(tx, &app.config.flags, now)?,
            abuse::forget_reporter_addresses(tx, now)?,
        ))
    })?;
    Ok(match (raised, forgotten) {
        (0, 0) => String::new(),
        (r, 0) => format!("{r} flags raised"),
        (r, f) => format!("{r} flags raised, {f} reporters' address hashes cleared"),
    })
}

fn job_simulator(app: &App, conn: &mut Connection) -> Result<String> {
    let now = app.now();
    let delivered = crate::db::write(conn, |tx| simulator::deliver_due(tx, now))?;
    if delivered.is_empty() {
        return Ok(String::new());
    }
    app.notify();
    let late = delivered
        .iter()
        .filter(|d| matches!(d, crate::domain::market::inbox::Delivered::NoLiveOrder))
        .count();
    Ok(match late {
        0 => format!("{} simulated SMS delivered", delivered.len()),
        n => format!(
            "{} simulated SMS delivered, {n} of them to no live order (late)",
            delivered.len()
        ),
    })
}

fn job_devices(app: &App, conn: &mut Connection) -> Result<String> {
    let now = app.now();
    let (n, joined) = crate::db::write(conn, |tx| {
        let n = devices::mark_silent_offline(tx, app.config.device_offline_after, now)?;
        let held = parts::due(tx, now)?;
        for j in &held {
            gateway::take_joined(tx, j, now)?;
        }
        Ok((n, held.len()))
    })?;
    if joined > 0 {
        app.notify();
    }
    let mut said = Vec::new();
    match n {
        0 => {}
        1 => said.push("1 silent device went offline".to_string()),
        n => said.push(format!("{n} silent devices went offline")),
    }
    if joined > 0 {
        said.push(format!(
            "{joined} long SMS taken in without their last part"
        ));
    }
    Ok(said.join(", "))
}

fn job_sms_retention(app: &App, conn: &mut Connection) -> Result<String> {
    let now = app.now();
    let (n, hooks) = crate::db::write(conn, |tx| {
        Ok((
            retention::purge_messages(tx, app.config.sms_retention, now)?,
            webhooks::forget_sms(tx, app.config.sms_retention, now)?
                + notifications::forget_pending(tx, app.config.sms_retention, now)?
                + crate::domain::base::mail::forget_private(tx, now)?,
        ))
        .and_then(|(n, h)| {
            retention::record(tx, Rule::Sms, n, now)?;
            Ok((n, h))
        })
    })?;
    Ok(match (n, hooks) {
        (0, 0) => String::new(),
        (n, 0) => format!("{n} messages deleted"),
        (n, h) => format!(
            "{n} messages deleted, {h} pending webhook deliveries and notifications given up"
        ),
    })
}

/// Notifications sent per run, and how long a run keeps starting new sends (the scheduler
/// thread is shared; what is left stays due for the next run).
const NOTIFY_BATCH: i64 = 40;
const NOTIFY_BUDGET: Duration = Duration::from_secs(12);

fn job_notifications(app: &App, conn: &mut Connection) -> Result<String> {
    let now = app.now();
    let due = notifications::due(conn, &app.keys, now, NOTIFY_BATCH)?;
    if due.is_empty() {
        return Ok(String::new());
    }
    // The network first, with no transaction open; e-mail goes to the mail outbox below.
    // Outer None: not started within the budget; inner None: an e-mail.
    let started = Instant::now();
    let results: Vec<Option<Option<String>>> = due
        .iter()
        .map(|d| match d.kind {
            notifications::Kind::Email => Some(None),
            _ if started.elapsed() > NOTIFY_BUDGET => None,
            _ => Some(Some(crate::notify::send(app, d).err().unwrap_or_default())),
        })
        .collect();
    let (mut sent, mut retrying, mut failed) = (0, 0, 0);
    let smtp = app.config.smtp.is_some();
    crate::db::write(conn, |tx| {
        let now = app.now();
        for (d, result) in due.iter().zip(results) {
            let Some(result) = result else { continue };
            let error = match result {
                None => {
                    use crate::domain::base::mail;
                    match (&d.public_body, smtp) {
                        // The code or SMS text leaves only through SMTP, and is forgotten
                        // once sent or after the SMS retention.
                        (Some(public), true) => mail::enqueue_private(
                            tx,
                            &d.email,
                            &d.title,
                            &d.body,
                            public,
                            now + app.config.sms_retention as i64,
                            now,
                        )?,
                        (Some(public), false) => {
                            mail::enqueue(tx, &d.email, &d.title, public, false, now)?
                        }
                        (None, _) => mail::enqueue(tx, &d.email, &d.title, &d.body, smtp, now)?,
                    };
                    None
                }
                Some(e) if e.is_empty() => None,
                Some(e) => Some(e),
            };
            match notifications::record(tx, d, error.as_deref(), now)? {
                "sent" => sent += 1,
                "pending" => retrying += 1,
                _ => failed += 1,
            }
        }
        Ok(())
    })?;
    Ok(format!(
        "{sent} sent, {retrying} to retry, {failed} given up"
    ))
}

fn job_telegram(app: &App, conn: &mut Connection) -> Result<String> {
    if app.config.telegram_bot_token.is_empty() {
        return Ok(String::new());
    }
    // Webhook mode: Telegram posts the updates to /telegram/webhook; the job only keeps the
    // registration true to the settings (and removes it when the mode is turned off).
    let registered = notifications::telegram_webhook(conn)?;
    let now_registered = crate::notify::sync_telegram_webhook(app, &registered)
        .map_err(crate::domain::Error::Internal)?;
    if now_registered != registered {
        crate::db::write(conn, |tx| {
            notifications::set_telegram_webhook(tx, &now_registered)
        })?;
        if !now_registered.is_empty() {
            let url = now_registered.split(' ').next().unwrap_or_default();
            return Ok(format!("webhook registered at {url}"));
        }
    }
    if !now_registered.is_empty() {
        return Ok(String::new());
    }
    let offset = notifications::telegram_offset(conn)?;
    let (starts, next) = match crate::notify::telegram_updates(app, offset) {
        Ok(u) => u,
        Err(e) => return Err(crate::domain::Error::Internal(e)),
    };
    let keys = &app.keys;
    let linked = crate::db::write(conn, |tx| {
        notifications::set_telegram_offset(tx, next)?;
        let mut linked = Vec::new();
        for s in &starts {
            let user = notifications::link_telegram(tx, keys, &s.code, s.chat_id)?;
            linked.push((s.chat_id, user.is_some()));
        }
        Ok(linked)
    })?;
    // The chats hear back after the commit; a lost answer changes nothing.
    for (chat_id, ok) in &linked {
        let text = if *ok {
            crate::notify::LINKED
        } else {
            crate::notify::UNKNOWN_CODE
        };
        let body = serde_json::json!({"chat_id": chat_id, "text": text});
        if let Err(e) = crate::notify::telegram(app, "sendMessage", &body) {
            log::warn!("telegram: {e}");
        }
    }
    Ok(match linked.iter().filter(|l| l.1).count() {
        0 => String::new(),
        n => format!("{n} chats linked"),
    })
}

/// Webhook deliveries sent per run, how many at once, and how long a run keeps starting new
/// ones: the scheduler thread is shared, so a run of slow receivers must end soon.
const WEBHOOK_BATCH: i64 = 40;
const WEBHOOK_SENDERS: usize = 4;
const WEBHOOK_BUDGET: Duration = Duration::from_secs(12);

fn job_webhooks(app: &App, conn: &mut Connection) -> Result<String> {
    let now = app.now();
    let pruned = crate::db::write(conn, |tx| webhooks::prune(tx, now))?;
    let due = webhooks::due(conn, now, WEBHOOK_BATCH)?;
    if due.is_empty() {
        return Ok(if pruned == 0 {
            String::new()
        } else {
            format!("{pruned} old deliveries removed")
        });
    }
    let results = send_webhooks(app, &due);
    let (mut delivered, mut retrying, mut failed) = (0, 0, 0);
    crate::db::write(conn, |tx| {
        for (d, result) in due.iter().zip(results) {
            // None: not started within the budget; it stays due for the next run.
            let Some((attempt, at)) = result else {
                continue;
            };
            match webhooks::record(tx, d, &attempt, at)? {
                Some(webhooks::State::Delivered) => delivered += 1,
                Some(webhooks::State::Pending) => retrying += 1,
                Some(webhooks::State::Failed) => failed += 1,
                None => {}
            }
        }
        Ok(())
    })?;
    Ok(format!(
        "{delivered} delivered, {retrying} to retry, {failed} given up, {pruned} old removed"
    ))
}

/// POSTs each due delivery on up to [`WEBHOOK_SENDERS`] threads; each result with the clock
/// time it ended.
fn send_webhooks(app: &App, due: &[webhooks::Due]) -> Vec<Option<(webhooks::Attempt, Timestamp)>> {
    in_parallel(app, due, |d| {
        let headers = d.headers(&app.keys, app.now());
        let out = crate::outbound::post_json(
            &d.url,
            &headers,
            d.payload.as_bytes(),
            app.config.webhook_allow_private,
        );
        if !out.error.is_empty() {
            // Not the URL: its query string may hold the customer's own token.
            log::info!("webhook delivery {}: {}", d.uuid, out.error);
        }
        webhooks::Attempt {
            status: out.status,
            error: out.error,
            duration_ms: out.duration_ms,
        }
    })
}

/// Runs `send` for each item on up to [`WEBHOOK_SENDERS`] threads, starting new ones only
/// within [`WEBHOOK_BUDGET`]; each result with the clock time it ended (`None`: not started).
fn in_parallel<T: Sync, R: Send>(
    app: &App,
    items: &[T],
    send: impl Fn(&T) -> R + Sync,
) -> Vec<Option<(R, Timestamp)>> {
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<(R, Timestamp)>>> =
        items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..WEBHOOK_SENDERS.min(items.len()) {
            s.spawn(|| {
                while started.elapsed() < WEBHOOK_BUDGET {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { break };
                    let r = send(item);
                    *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some((r, app.now()));
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect()
}

/// PUSH_SMS sent per run of the `partners` job.
const PUSH_BATCH: i64 = 40;

/// Pushes due SMS to the partner hubs (each until the hub answers SUCCESS, every
/// [`partners::PUSH_RETRY`] seconds), frees numbers a hub held longer than
/// [`partners::HOLD_MAX`] and deletes old push rows.
fn job_partners(app: &App, conn: &mut Connection) -> Result<String> {
    let now = app.now();
    let (released, pruned) = crate::db::write(conn, |tx| {
        Ok((
            partners::release_stale(tx, now)?,
            partners::prune_pushes(tx, now)?,
        ))
    })?;
    let due = partners::due_pushes(conn, now, PUSH_BATCH)?;
    let results = in_parallel(app, &due, |p| push_one(app, p));
    let (mut delivered, mut retrying, mut given_up) = (0, 0, 0);
    if !due.is_empty() {
        crate::db::write(conn, |tx| {
            for (p, result) in due.iter().zip(results) {
                let Some((error, at)) = result else { continue };
                match partners::record_push(tx, p, &error, at)? {
                    partners::PushState::Delivered => delivered += 1,
                    partners::PushState::Retrying => retrying += 1,
                    partners::PushState::GivenUp => given_up += 1,
                }
            }
            Ok(())
        })?;
    }
    if due.is_empty() && released == 0 && pruned == 0 {
        return Ok(String::new());
    }
    Ok(format!(
        "{delivered} SMS pushed, {retrying} to retry, {given_up} given up, \
         {released} numbers released, {pruned} old pushes removed"
    ))
}

/// One PUSH_SMS (gzip, as the hubs ask); "" when the hub answered `SUCCESS`, else why not.
fn push_one(app: &App, p: &partners::Push) -> String {
    let Some(key) = partners::unseal_key(&app.keys, &p.key_sealed) else {
        return "the partner's key cannot be unsealed".into();
    };
    let body = p.body(&key);
    let (body, headers) = match crate::outbound::gzip(body.as_bytes()) {
        Ok(z) => (z, vec![("Content-Encoding", "gzip".to_string())]),
        Err(_) => (body.into_bytes(), Vec::new()),
    };
    let out = crate::outbound::post_json(
        &p.push_url,
        &headers,
        &body,
        app.config.webhook_allow_private,
    );
    let said: Option<String> = serde_json::from_slice::<serde_json::Value>(&out.reply)
        .ok()
        .and_then(|v| v.get("status").and_then(|s| s.as_str()).map(str::to_string));
    let error = match (out.error.is_empty(), said.as_deref()) {
        (true, Some("SUCCESS")) => String::new(),
        (true, Some(other)) => format!("the hub answered {other}"),
        (true, None) => "the hub's answer has no status".into(),
        (false, _) => out.error,
    };
    if !error.is_empty() {
        log::info!("partner {} push {}: {error}", p.partner_id, p.id);
    }
    error
}

fn job_sessions(app: &App, conn: &mut Connection) -> Result<String> {
    let n = sessions::purge_expired(conn, app.config.session_idle, app.now())?;
    crate::domain::accounts::identities::purge_expired(conn, app.now())?;
    Ok(if n == 0 {
        String::new()
    } else {
        format!("{n} expired sessions removed")
    })
}

/// The daily retention rules (the SMS rule runs every minute in `sms_retention`). Orders are
/// anonymised in batches, one transaction each, so the writer lock is never held long.
fn job_backup(app: &App, conn: &mut Connection) -> Result<String> {
    let c = &app.config;
    match crate::backup::make(c, &crate::backup::dir_of(c), c.backup_keep, app.now()) {
        Ok(made) => Ok(made.summary()),
        Err(e) => {
            // The administrators hear of it on their phones; the run is still a failure.
            let text = format!("The backup job failed: {e}");
            let told = crate::db::write(conn, |tx| {
                notifications::notify_admins(tx, "Backup failed", &text, app.now())
            });
            if let Err(t) = told {
                log::error!("cannot queue the backup alert: {t:?}");
            }
            Err(e)
        }
    }
}

fn job_retention(app: &App, conn: &mut Connection) -> Result<String> {
    let now = app.now();
    let c = &app.config;
    let mut orders = 0;
    loop {
        let n = crate::db::write(conn, |tx| {
            retention::anonymise_orders(tx, c.order_retention, now)
        })?;
        orders += n;
        if n < retention::BATCH {
            break;
        }
    }
    let (ledger, logs, security) = crate::db::write(conn, |tx| {
        let ledger = retention::purge_ledger(tx, c.ledger_retention, now)?;
        let logs = retention::purge_logs(tx, c.log_retention, now)?
            + notifications::prune(tx, c.log_retention, now)?;
        let security = retention::purge_security(tx, c.security_log_retention, now)?;
        retention::record(tx, Rule::Orders, orders, now)?;
        retention::record(tx, Rule::Ledger, ledger, now)?;
        retention::record(tx, Rule::Logs, logs, now)?;
        retention::record(tx, Rule::Security, security, now)?;
        Ok((ledger, logs, security))
    })?;
    Ok(format!(
        "{orders} orders anonymised; {ledger} ledger, {logs} log and {security} security rows deleted"
    ))
}

/// Hourly, so an account is final no later than an hour after its cooldown ends (sign-up with
/// the address purges it on the spot anyway).
fn job_accounts(app: &App, conn: &mut Connection) -> Result<String> {
    let now = app.now();
    let n = crate::db::write(conn, |tx| {
        let n = lifecycle::purge_deleted(tx, app.config.deletion_cooldown, now)?;
        retention::record(tx, Rule::Accounts, n, now)?;
        Ok(n)
    })?;
    Ok(if n == 0 {
        String::new()
    } else {
        format!("{n} deleted accounts purged")
    })
}

fn job_mail(app: &App, conn: &mut Connection) -> Result<String> {
    let Some(smtp) = &app.config.smtp else {
        return Ok(String::new()); // no SMTP: mail stays in the outbox
    };
    let pending = mail::pending(conn, 20)?;
    if pending.is_empty() {
        return Ok(String::new());
    }
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
        let jobs = Jobs::standard("0 30 2 * * *");
        assert!(jobs.list.iter().any(|j| j.name == "sessions"));
    }
}
