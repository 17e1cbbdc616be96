//! The subcommands: `serve`, `admin create`, `user create`, `check`.

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;

use crate::app::App;
use crate::cli::{AdminCommand, Command, UserCommand};
use crate::config::Config;
use crate::domain::accounts::{self, NewUser, Role};
use crate::domain::crypto::Keys;
use crate::domain::passwords::Hasher;
use crate::domain::{audit, tokens, Error};
use crate::{db, http, jobs};

pub fn run(command: Command, config: Config) -> Result<ExitCode, Error> {
    match command {
        Command::Serve(_) => serve(config),
        Command::Admin(AdminCommand::Create(a)) => {
            create_account(&config, &a.email, Role::Admin, a.password_stdin)
        }
        Command::User(UserCommand::Create(a)) => {
            let role = Role::parse(&a.role)
                .ok_or_else(|| Error::invalid(format!("unknown role `{}`", a.role)))?;
            create_account(&config, &a.email, role, a.password_stdin)
        }
        Command::Check => check(&config),
    }
}

fn serve(config: Config) -> Result<ExitCode, Error> {
    let listener = http::server::bind(config.listen, config.read_timeout)
        .map_err(|e| Error::Internal(format!("cannot listen on {}: {e}", config.listen)))?;
    let app: Arc<App> = App::new(config)?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let conn = app.connect()?;
    if accounts::count(&conn)? == 0 {
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
    jobs::spawn(app.clone()).map_err(|e| Error::Internal(e.to_string()))?;
    println!("otpbox listening on http://{addr}");
    log::info!(
        "listening on http://{addr} with {} workers, data in {}",
        app.config.workers,
        app.config.data.display()
    );
    http::server::run(app, listener).map_err(|e| Error::Internal(e.to_string()))?;
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
    let bytes: [u8; 20] = crate::domain::crypto::random_bytes();
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
    let mut conn = db::open(&config.data)?;
    Keys::load_or_create(&config.data).map_err(|e| Error::Internal(e.to_string()))?;
    let (password, generated) = read_password(stdin)?;
    let phc = Hasher::new(1).hash(&password)?;
    let now = crate::clock::Clock::system().now();
    let user = db::write(&mut conn, |tx| {
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

fn check(config: &Config) -> Result<ExitCode, Error> {
    let conn = db::open(&config.data)?;
    let problems = db::integrity_problems(&conn)?;
    if problems.is_empty() {
        println!("ok: database integrity checks passed");
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            println!("PROBLEM: {p}");
        }
        println!("{} problem(s) found", problems.len());
        Ok(ExitCode::from(1))
    }
}
