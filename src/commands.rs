//! The subcommands: `serve`, `admin create`, `user create`, `provider add|list`, `check`.

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;

use crate::app::App;
use crate::cli::{
    AdminCommand, Command, DeviceAddArgs, DeviceCommand, KeyCommand, PartnerCommand,
    ProviderCommand, SmsCommand, UserCommand,
};
use crate::config::Config;
use crate::domain::accounts::passwords::Hasher;
use crate::domain::accounts::{self, NewUser, Role};
use crate::domain::base::crypto::Keys;
use crate::domain::base::money::{currency_digits, Money};
use crate::domain::{
    accounts::apikeys, accounts::tokens, base::audit, market::inbox, market::partners,
    market::simulator, market::wallet, supply::devices, supply::providers, Error,
};
use crate::{db, http, jobs};

pub fn run(command: Command, config: Config) -> Result<ExitCode, Error> {
    match command {
        Command::Serve(_) => serve(config),
        Command::Demo(_) => serve(config),
        Command::User(UserCommand::Credit(a)) => credit(&config, &a.email, &a.amount, &a.note),
        Command::Key(KeyCommand::Create(a)) => create_key(&config, &a.email, &a.name),
        Command::Sms(SmsCommand::Inject(a)) => inject(&config, &a.to, &a.from, &a.text, a.id),
        Command::Device(DeviceCommand::Add(a)) => add_device(&config, &a),
        Command::Admin(AdminCommand::Create(a)) => {
            create_account(&config, &a.email, Role::Admin, a.password_stdin)
        }
        Command::User(UserCommand::Create(a)) => {
            let role = Role::parse(&a.role)
                .ok_or_else(|| Error::invalid(format!("unknown role `{}`", a.role)))?;
            create_account(&config, &a.email, role, a.password_stdin)
        }
        Command::Provider(ProviderCommand::Add(a)) => provider_add(config, &a),
        Command::Provider(ProviderCommand::List) => provider_list(config),
        Command::Partner(PartnerCommand::Add(a)) => partner_add(config, &a),
        Command::Partner(PartnerCommand::List) => partner_list(config),
        Command::Check => check(&config),
        Command::Backup(a) => backup(&config, a.to.as_deref()),
        Command::Restore(a) => restore(&config, &a.from),
        Command::Healthcheck(a) => healthcheck(&config, a.url.as_deref()),
        Command::Bench(a) => crate::bench::run(&crate::bench::Options {
            seconds: a.seconds.max(1),
            connections: a.connections.max(1),
            workers: a.workers.unwrap_or(config.workers),
            history: a.history,
            only: a.only.clone(),
        }),
    }
}

/// What a long-running server's process needs before anything else runs: glibc's per-thread
/// caches off ([`crate::app::without_thread_caches`], which starts the process again).
pub fn prepare_process(command: &Command) {
    if let Command::Serve(_) | Command::Demo(_) = command {
        crate::app::without_thread_caches();
    }
}

/// Where the README says how to restore a backup (quoted in the advice on damaged databases).
pub const RESTORE_ADVICE: &str =
    "stop otpbox and restore a backup of the whole data directory (with its secret.key): \
     see README, section \"Backups and restore\"";

/// An error as the command line reports it. HTTP replies say only "internal error" for a
/// database failure (details stay in the log); the operator at the terminal gets SQLite's own
/// message and what to do about it.
pub fn describe(e: &Error) -> String {
    let Error::Db(db) = e else {
        return e.to_string();
    };
    use rusqlite::ErrorCode as C;
    match db.sqlite_error_code() {
        Some(C::NotADatabase | C::DatabaseCorrupt) => {
            format!("the database file is damaged (SQLite: {db}); {RESTORE_ADVICE}")
        }
        Some(C::CannotOpen) => format!(
            "cannot open the database (SQLite: {db}); check that the data directory (--data) \
             exists and that the user running otpbox may read and write it"
        ),
        Some(C::ReadOnly | C::PermissionDenied) => format!(
            "the database cannot be written (SQLite: {db}); the user running otpbox must own \
             the data directory and every file in it"
        ),
        Some(C::DiskFull) => format!("the disk is full (SQLite: {db}); free some space"),
        Some(C::DatabaseBusy | C::DatabaseLocked) => format!(
            "the database is locked (SQLite: {db}); another process holds it: retry, or stop it"
        ),
        Some(C::SystemIoFailure) => {
            format!(
                "the disk failed to read or write the database (SQLite: {db}); {RESTORE_ADVICE}"
            )
        }
        _ => format!("database error (SQLite: {db})"),
    }
}

fn serve(config: Config) -> Result<ExitCode, Error> {
    // Before any thread starts, so that only the stop thread receives them.
    crate::lifecycle::block_stop_signals();
    db::ensure_private_dir(&config.data)?;
    // Held for the life of the process: `otpbox restore` refuses while it is.
    let _data_lock = crate::backup::hold_data_dir(&config.data)?;
    let listener = http::server::bind(config.listen, config.read_timeout)
        .map_err(|e| Error::Internal(format!("cannot listen on {}: {e}", config.listen)))?;
    let app: Arc<App> = App::new(config)?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let mut conn = app.connect()?;
    if app.config.demo {
        demo_setup(&app, &mut conn, addr)?;
    } else if accounts::count(&conn)? == 0 {
        let token = tokens::issue(
            &conn,
            &app.keys,
            tokens::ADMIN_SETUP,
            None,
            "",
            24 * 3600,
            app.now(),
        )?;
        let base = if app.config.base_url.ends_with(&addr.port().to_string())
            || addr.port() == app.config.listen.port()
        {
            app.config.base_url.clone()
        } else {
            format!("http://{addr}")
        };
        println!("No accounts yet. Create the first administrator within 24 hours at:");
        println!("  {base}/setup/{token}");
        println!("(or run `otpbox admin create --email you@example.com`)");
    }
    drop(conn);
    // From here on every thread writes through one connection, with group commit.
    db::share_writes(
        app.connect()?,
        app.config.synchronous,
        app.config.wal_autocheckpoint,
    )?;
    let jobs = Arc::new(jobs::Jobs::standard(&app.config.backup_schedule));
    jobs::spawn(app.clone(), jobs.clone()).map_err(|e| Error::Internal(e.to_string()))?;
    if let Some(udp) = app.config.goip_listen {
        let bound = crate::goip::spawn(app.clone(), udp).map_err(|e| {
            Error::Internal(format!("cannot listen on udp://{udp} (goip_listen): {e}"))
        })?;
        println!("otpbox goip listening on udp://{bound}");
    }
    println!("otpbox listening on http://{addr}");
    log::info!(
        "listening on http://{addr} with {} workers, data in {}",
        app.config.workers,
        app.config.data.display()
    );
    http::server::run(app, jobs, listener).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}

use crate::config::{DEMO_ADMIN_EMAIL, DEMO_EMAIL, DEMO_PASSWORD};

/// What `demo_setup` did: which demo accounts it created, and whether the demo
/// administrator exists (it is made only when the install has no administrator).
struct DemoAccounts {
    customer_created: bool,
    admin_created: bool,
    admin_exists: bool,
}

/// Demo mode: the simulator on, a verified demo customer with a balance, and a demo
/// administrator when there is none. The administrator's password is random, made when the
/// account is, and printed that once (a demo reachable from elsewhere has no known admin
/// password). Passwords are hashed before the transaction.
fn demo_setup(
    app: &App,
    conn: &mut rusqlite::Connection,
    addr: std::net::SocketAddr,
) -> Result<(), Error> {
    let now = app.now();
    // Hashed only for an account about to be made: an argon2 hash costs tens of
    // milliseconds, and most starts make none.
    let admin_password = generate_password();
    let customer_phc = match accounts::find_by_email(conn, DEMO_EMAIL)? {
        None => Some(app.hasher.hash(DEMO_PASSWORD)?),
        Some(_) => None,
    };
    let admin_phc = match accounts::find_by_email(conn, DEMO_ADMIN_EMAIL)?.is_none()
        && accounts::count_admins(conn)? == 0
    {
        true => Some(app.hasher.hash(&admin_password)?),
        false => None,
    };
    let made = db::write(conn, |tx| {
        simulator::set_on(tx, true)?;
        let new = |email: &str, phc: &str, role: Role| {
            accounts::create(
                tx,
                &NewUser {
                    email,
                    password_hash: Some(phc),
                    role,
                    verified: true,
                    age_confirmed: true,
                    aup_accepted: true,
                },
                now,
            )
        };
        let admin_exists = accounts::find_by_email(tx, DEMO_ADMIN_EMAIL)?.is_some();
        let admin_created =
            admin_phc.is_some() && !admin_exists && accounts::count_admins(tx)? == 0;
        if let (true, Some(phc)) = (admin_created, &admin_phc) {
            new(DEMO_ADMIN_EMAIL, phc, Role::Admin)?;
        }
        let customer_created =
            customer_phc.is_some() && accounts::find_by_email(tx, DEMO_EMAIL)?.is_none();
        if let (true, Some(phc)) = (customer_created, &customer_phc) {
            let u = new(DEMO_EMAIL, phc, Role::User)?;
            wallet::post(
                tx,
                u.id,
                5000,
                wallet::Kind::Adjustment,
                ("", None),
                "demo balance",
                now,
            )?;
        }
        Ok(DemoAccounts {
            customer_created,
            admin_created,
            admin_exists: admin_exists || admin_created,
        })
    })?;
    println!("Demo mode: the simulator delivers an SMS a few seconds after each order.");
    println!("  Open http://{addr}/login");
    println!("  Customer: {DEMO_EMAIL} / {DEMO_PASSWORD}");
    if made.customer_created {
        println!(
            "  (demo customer created with a balance of 50.00 {})",
            app.config.currency
        );
    }
    if made.admin_created {
        println!("  Admin:    {DEMO_ADMIN_EMAIL} / {admin_password}");
        println!("  (demo administrator created: open /admin; this password is shown only now)");
    } else if made.admin_exists {
        println!("  Admin:    {DEMO_ADMIN_EMAIL} (the password printed when it was created)");
    } else {
        println!("  Admin:    sign in with this install's administrator account (/admin)");
    }
    Ok(())
}

fn open_existing(config: &Config) -> Result<(rusqlite::Connection, Keys), Error> {
    let conn = db::open(&config.data, config.synchronous)?;
    crate::domain::market::catalogue::seed_if_empty(&conn)?;
    let keys = Keys::load_or_create(&config.data).map_err(|e| Error::Internal(e.to_string()))?;
    Ok((conn, keys))
}

fn find_user(conn: &rusqlite::Connection, email: &str) -> Result<accounts::User, Error> {
    accounts::find_by_email(conn, email)?
        .ok_or_else(|| Error::invalid(format!("no account with e-mail {email}")))
}

fn credit(config: &Config, email: &str, amount: &str, note: &str) -> Result<ExitCode, Error> {
    let (conn, _) = open_existing(config)?;
    let digits = currency_digits(&config.currency);
    let Some(Money(minor)) = Money::parse(amount, digits, true).filter(|m| m.0 != 0) else {
        return Err(Error::invalid(format!(
            "`{amount}` is not an amount like 12.50"
        )));
    };
    let user = find_user(&conn, email)?;
    let now = crate::clock::Clock::system().now();
    let balance = db::write(&conn, |tx| {
        let b = wallet::post(
            tx,
            user.id,
            minor,
            wallet::Kind::Adjustment,
            ("admin", None),
            note,
            now,
        )?;
        audit::audit(
            tx,
            None,
            Some(user.id),
            "credit",
            &format!("{} {note}", Money(minor).decimal(digits)),
            "",
            now,
        )?;
        Ok(b)
    })?;
    println!(
        "{} balance: {} {}",
        user.email,
        Money(balance).decimal(digits),
        config.currency
    );
    Ok(ExitCode::SUCCESS)
}

fn create_key(config: &Config, email: &str, name: &str) -> Result<ExitCode, Error> {
    let (conn, keys) = open_existing(config)?;
    let user = find_user(&conn, email)?;
    let now = crate::clock::Clock::system().now();
    let (_, secret) = db::write(&conn, |tx| {
        let k = apikeys::create(tx, &keys, user.id, name, now)?;
        audit::security(tx, Some(user.id), audit::API_KEY_CREATED, "", name, now)?;
        Ok(k)
    })?;
    println!("{secret}");
    Ok(ExitCode::SUCCESS)
}

fn inject(
    config: &Config,
    to: &str,
    from: &str,
    text: &str,
    id: Option<String>,
) -> Result<ExitCode, Error> {
    let (conn, _) = open_existing(config)?;
    let now = crate::clock::Clock::system().now();
    let msg = inbox::Inbound {
        to: to.to_string(),
        sender: from.to_string(),
        text: text.to_string(),
        received_at: now,
        source: "cli".into(),
        source_msg_id: id,
        device_id: None,
    };
    let outcome = db::write(&conn, |tx| inbox::ingest(tx, &msg, now))?;
    let (line, code) = match outcome {
        inbox::Delivered::Activation { id, .. } => (format!("delivered to activation {id}"), 0),
        inbox::Delivered::Rental { id, .. } => (format!("delivered to rental {id}"), 0),
        inbox::Delivered::Partner { order_id, push_id } => (
            format!(
                "queued for the partner hub holding the number (order {order_id}, smsId {push_id})"
            ),
            0,
        ),
        inbox::Delivered::Duplicate => ("duplicate: already received".to_string(), 0),
        inbox::Delivered::NoLiveOrder => {
            ("not delivered: no live order on that number".to_string(), 1)
        }
        inbox::Delivered::UnknownNumber => ("not delivered: unknown number".to_string(), 1),
    };
    println!("{line}");
    Ok(ExitCode::from(code))
}

/// `device add`: the device and its SIMs in one transaction; prints its id, its secret (the
/// only time it is shown) and the URL to give the gateway.
fn add_device(config: &Config, a: &DeviceAddArgs) -> Result<ExitCode, Error> {
    let kind = devices::Kind::parse(a.kind.trim()).ok_or_else(|| {
        Error::invalid(format!(
            "unknown gateway kind `{}`: use capcom6, httpsms, textbee or generic",
            a.kind
        ))
    })?;
    let sims = a
        .sims
        .iter()
        .map(|s| devices::NewSim::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let (conn, keys) = open_existing(config)?;
    let user = find_user(&conn, &a.operator)?;
    if !matches!(user.role, Role::Operator | Role::Admin) {
        return Err(Error::invalid(format!(
            "{} is a {} account; devices belong to operators (give it the operator role first)",
            user.email,
            user.role.as_str()
        )));
    }
    if !user.is_active() {
        return Err(Error::invalid(format!("{} is not active", user.email)));
    }
    let now = crate::clock::Clock::system().now();
    let (device, secret) = db::write(&conn, |tx| {
        let (device, secret) = devices::create(tx, &keys, user.id, &a.name, kind, now)?;
        for sim in &sims {
            devices::add_sim(tx, &device, sim, now).map_err(|e| match e {
                Error::Invalid(m) | Error::Conflict(m) => {
                    Error::invalid(format!("SIM {}: {m}", sim.phone))
                }
                Error::BadCountry => {
                    Error::invalid(format!("SIM {}: no country {}", sim.phone, sim.country_id))
                }
                Error::WrongOperator => Error::invalid(format!(
                    "SIM {}: no operator `{}` in country {}",
                    sim.phone, sim.operator, sim.country_id
                )),
                e => e,
            })?;
        }
        audit::audit(
            tx,
            None,
            Some(user.id),
            "device_created",
            &format!(
                "{} {} ({} SIMs)",
                kind.as_str(),
                device.public_id,
                sims.len()
            ),
            "",
            now,
        )?;
        Ok((device, secret))
    })?;
    println!("device_id={}", device.public_id);
    println!("secret={secret}");
    println!(
        "webhook_url={}/ingest/{}/{}",
        config.base_url,
        kind.as_str(),
        device.public_id
    );
    Ok(ExitCode::SUCCESS)
}

fn read_password(from_stdin: bool) -> Result<(String, bool), Error> {
    if from_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Error::Internal(format!("reading the password: {e}")))?;
        let pw = s.trim_end_matches(['\r', '\n']).to_string();
        Hasher::check_strength(&pw)?;
        Ok((pw, false))
    } else {
        Ok((generate_password(), true))
    }
}

/// 20 characters from an alphabet without look-alikes (about 115 bits).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes: [u8; 20] = crate::domain::base::crypto::random_bytes();
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn create_account(
    config: &Config,
    email: &str,
    role: Role,
    stdin: bool,
) -> Result<ExitCode, Error> {
    let conn = db::open(&config.data, config.synchronous)?;
    Keys::load_or_create(&config.data).map_err(|e| Error::Internal(e.to_string()))?;
    let (password, generated) = read_password(stdin)?;
    let phc = Hasher::new(1).hash(&password)?;
    let now = crate::clock::Clock::system().now();
    let user = db::write(&conn, |tx| {
        let u = accounts::create(
            tx,
            &NewUser {
                email,
                password_hash: Some(&phc),
                role,
                verified: true,
                age_confirmed: true,
                aup_accepted: true,
            },
            now,
        )?;
        audit::audit(
            tx,
            None,
            Some(u.id),
            "account_created",
            role.as_str(),
            "",
            now,
        )?;
        Ok(u)
    })?;
    println!("created {} account {}", role.as_str(), user.email);
    if generated {
        println!("password: {password}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `otpbox provider add`: adds the provider and syncs it at once; prints its id and the
/// offers synced (a failed first sync leaves it added, and says why).
fn provider_add(config: Config, a: &crate::cli::ProviderAddArgs) -> Result<ExitCode, Error> {
    let kind = providers::Kind::parse(&a.kind).ok_or_else(|| {
        Error::invalid(format!("unknown kind `{}` (sms-activate or 5sim)", a.kind))
    })?;
    let key = key_arg(&a.key, a.key_stdin)?;
    let markup_bp = providers::parse_markup(&a.markup)?;
    let app = App::new(config)?;
    let mut conn = app.connect()?;
    let new = providers::NewProvider {
        kind,
        name: &a.name,
        base_url: &a.url,
        key: &key,
        markup_bp,
        priority: a.priority,
        unit_minor: a.unit,
    };
    let (id, report) = crate::upstream::add_and_sync(&app, &mut conn, &new, None)?;
    let p = providers::get(&conn, id)?.ok_or(Error::NotFound("provider"))?;
    println!("provider_id={id}");
    println!(
        "added {} ({}, markup {}, priority {})",
        p.name,
        p.kind.as_str(),
        providers::markup_text(p.markup_bp),
        p.priority
    );
    match report.offers {
        Some(n) => println!("offers={n}"),
        None => println!("offers=0"),
    }
    if let Some(b) = report.balance_minor {
        let digits = currency_digits(&app.config.currency);
        println!(
            "balance={} {}",
            Money(b).decimal(digits),
            app.config.currency
        );
    }
    if !report.errors.is_empty() {
        println!(
            "first sync failed: {}; the provider is added and the scheduler syncs it again",
            report.errors.join("; ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A secret from `--key` or, with `--key-stdin`, from standard input.
fn key_arg(key: &Option<String>, stdin: bool) -> Result<String, Error> {
    match (key, stdin) {
        (_, true) => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Error::Internal(format!("reading the key: {e}")))?;
            Ok(s.trim().to_string())
        }
        (Some(k), false) => Ok(k.clone()),
        (None, false) => Err(Error::invalid("give --key KEY or --key-stdin")),
    }
}

/// `otpbox partner add`: prints `partner_id=N` and `endpoint=URL` (what the hub calls).
fn partner_add(config: Config, a: &crate::cli::PartnerAddArgs) -> Result<ExitCode, Error> {
    let currency = partners::parse_currency(&a.currency)
        .ok_or_else(|| Error::invalid("--currency must be 643 (RUB) or 840 (USD)"))?;
    let ours = crate::domain::base::money::currency_numeric(&config.currency);
    let rate = match (&a.rate, ours == Some(currency)) {
        (Some(r), _) => partners::parse_micro(r)
            .ok_or_else(|| Error::invalid("--rate must be a number such as 100 or 1.1"))?,
        (None, true) => 10i64.pow(currency_digits(&config.currency)) * partners::MICRO,
        (None, false) => {
            return Err(Error::invalid(format!(
                "the hub's currency is {} and ours is {}: give --rate, our minor units per one {}",
                partners::currency_code(currency),
                config.currency,
                partners::currency_code(currency)
            )))
        }
    };
    let floor_micro = partners::parse_micro(&a.floor)
        .ok_or_else(|| Error::invalid("--floor must be a price such as 5 or 5.50"))?;
    let key = key_arg(&a.key, a.key_stdin)?;
    let app = App::new(config)?;
    let conn = app.connect()?;
    let now = app.now();
    let new = partners::NewPartner {
        name: &a.name,
        push_url: &a.push_url,
        key: &key,
        currency,
        rate_micro: rate,
        floor_micro,
    };
    let allow_private = app.config.webhook_allow_private;
    let id = db::write(&conn, |tx| {
        let id = partners::add(tx, &app.keys, &new, allow_private, now)?;
        audit::audit(
            tx,
            None,
            None,
            "partner_added",
            &format!("partner {id}: {} (command line)", a.name.trim()),
            "",
            now,
        )?;
        Ok(id)
    })?;
    println!("partner_id={id}");
    println!("endpoint={}/partner/{id}", app.config.base_url);
    Ok(ExitCode::SUCCESS)
}

/// `otpbox partner list`: one line per partner hub, never its key.
fn partner_list(config: Config) -> Result<ExitCode, Error> {
    let (conn, _) = open_existing(&config)?;
    let digits = currency_digits(&config.currency);
    let list = partners::list(&conn)?;
    if list.is_empty() {
        println!("no partner hubs (add one with `otpbox partner add`)");
    }
    for p in list {
        let h = partners::health(&conn, &p)?;
        println!(
            "{}\t{}\t{}\t{}\t{} in progress\t{} pushes waiting\towes {} {}",
            p.id,
            p.name,
            if p.enabled { "enabled" } else { "disabled" },
            p.push_url,
            h.held,
            h.pushes_waiting,
            Money(h.owed_minor).decimal(digits),
            config.currency
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `otpbox provider list`: one line per provider, never its key.
fn provider_list(config: Config) -> Result<ExitCode, Error> {
    let (conn, _) = open_existing(&config)?;
    let digits = currency_digits(&config.currency);
    let now = crate::clock::Clock::system().now();
    let list = providers::list(&conn)?;
    if list.is_empty() {
        println!("no providers (add one with `otpbox provider add`)");
    }
    for p in list {
        let h = providers::health(&conn, p.id)?;
        let state = if !p.enabled {
            "disabled".to_string()
        } else if p.is_paused(now) {
            "paused".to_string()
        } else if p.failures > 0 {
            format!("failing ({} in a row)", p.failures)
        } else {
            "ok".to_string()
        };
        println!(
            "{}\t{}\t{}\t{}\tmarkup {}\tpriority {}\t{}\t{} offers\tbalance {}",
            p.id,
            p.name,
            p.kind.as_str(),
            p.base_url,
            providers::markup_text(p.markup_bp),
            p.priority,
            state,
            h.offers,
            p.balance_minor
                .map(|b| Money(b).decimal(digits))
                .unwrap_or_else(|| "?".into()),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `otpbox healthcheck`: GET the health URL; 0 for a 200, 1 otherwise, with the server's
/// one-line reason.
fn healthcheck(config: &Config, url: Option<&str>) -> Result<ExitCode, Error> {
    let url = url.map(str::to_string).unwrap_or_else(|| {
        let mut addr = config.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        format!("http://{addr}/healthz")
    });
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .proxy(None)
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .build(),
    );
    match agent.get(&url).call() {
        Ok(mut r) => {
            let status = r.status().as_u16();
            let body = r.body_mut().read_to_string().unwrap_or_default();
            println!("{status} {}", body.trim());
            Ok(if status == 200 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Err(e) => {
            println!("unreachable: {url}: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `otpbox backup [--to DIR]`: a verified set, recorded as a run of the `backup` job.
fn backup(config: &Config, to: Option<&std::path::Path>) -> Result<ExitCode, Error> {
    let dir = to.map_or_else(|| crate::backup::dir_of(config), |d| d.to_path_buf());
    let now = crate::clock::Clock::system().now();
    let started = std::time::Instant::now();
    // Keeping backup_keep sets applies to the job's directory only.
    let keep = if to.is_some() { 0 } else { config.backup_keep };
    let made = crate::backup::make(config, &dir, keep, now);
    let (ok, message) = match &made {
        Ok(m) => (true, format!("otpbox backup: {}", m.summary())),
        Err(e) => (false, format!("otpbox backup: {}", describe(e))),
    };
    if let Ok(conn) = db::connect(&config.db_path(), config.synchronous) {
        let _ = conn.execute(
            "INSERT INTO job_runs (job, started_at, duration_ms, ok, message) \
             VALUES ('backup', ?1, ?2, ?3, ?4)",
            rusqlite::params![
                now,
                started.elapsed().as_millis() as i64,
                ok as i64,
                message
            ],
        );
    }
    let made = made?;
    println!("{}", made.summary());
    Ok(ExitCode::SUCCESS)
}

/// `otpbox restore FILE`: see [`crate::backup::restore`].
fn restore(config: &Config, from: &std::path::Path) -> Result<ExitCode, Error> {
    let now = crate::clock::Clock::system().now();
    let done = crate::backup::restore(from, &config.data, config.reuse_cooldown, now)?;
    println!("restored {} into {}", from.display(), config.data.display());
    for p in &done.kept_aside {
        println!("kept aside: {}", p.display());
    }
    println!("start the server to use it; the files kept aside can be removed once you are sure");
    Ok(ExitCode::SUCCESS)
}

fn check(config: &Config) -> Result<ExitCode, Error> {
    if !config.db_path().exists() {
        return Err(Error::invalid(format!(
            "no database in {} (wrong --data?)",
            config.data.display()
        )));
    }
    let conn = db::open(&config.data, config.synchronous)?;
    let problems = crate::backup::problems(&conn, config.reuse_cooldown)?;
    if problems.is_empty() {
        println!("ok: database integrity and ledger checks passed");
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            println!("PROBLEM: {p}");
        }
        println!("{} problem(s) found", problems.len());
        if problems.iter().any(|p| p.starts_with("integrity: ")) {
            println!("the database file is damaged; {RESTORE_ADVICE}");
        }
        Ok(ExitCode::from(1))
    }
}
