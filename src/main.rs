//! otpbox: parse the command line, build a validated configuration, run the subcommand, map
//! errors to exit codes (0 ok, 1 failure or problems found, 2 bad usage or configuration).
//! Errors are worded by [`commands::describe`], which names SQLite's message for database
//! failures (HTTP replies keep saying only "internal error").

use otpbox::{cli, commands, config};
use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // Before anything else: it may start this process again.
    commands::prepare_process(&cli.command);
    let mut flags = BTreeMap::new();
    if let Some(d) = &cli.data {
        flags.insert("data".to_string(), d.to_string_lossy().into_owned());
    }
    if let cli::Command::Demo(_) = &cli.command {
        flags.insert("demo".into(), "true".into());
    }
    if let cli::Command::Serve(a) | cli::Command::Demo(a) = &cli.command {
        if let Some(v) = &a.listen {
            flags.insert("listen".into(), v.clone());
        }
        if let Some(v) = a.workers {
            flags.insert("workers".into(), v.to_string());
        }
        if a.behind_proxy {
            flags.insert("behind_proxy".into(), "true".into());
        }
        if let Some(v) = &a.base_url {
            flags.insert("base_url".into(), v.clone());
        }
    }
    let mut warnings = Vec::new();
    let config = config::Layers::gather(flags, cli.config.as_deref()).and_then(|layers| {
        warnings = layers.warnings.clone();
        config::Config::from_layers(&layers)
    });
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("otpbox: {e}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::new()
        // tiny_http logs its accept-loop ends itself; we log (and handle) them in http::server.
        .parse_filters(&format!("{},tiny_http=off", config.log))
        .format_timestamp_secs()
        .init();
    for w in warnings {
        log::warn!("{w}");
    }
    match commands::run(cli.command, config) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("otpbox: {}", commands::describe(&e));
            ExitCode::from(1)
        }
    }
}
