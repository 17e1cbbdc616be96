//! Command-line definitions (raw arguments). Turned into a validated `Config` in main.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "otpbox",
    version,
    about = "Self-hosted SMS-verification and virtual-number platform"
)]
pub struct Cli {
    /// Data directory (database, keys)
    #[arg(long, global = true, env = "OTPBOX_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Config file with `key = value` lines (see README)
    #[arg(long, global = true, env = "OTPBOX_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server
    Serve(ServeArgs),
    /// A ready-to-try instance: simulator on, demo customer with a balance
    Demo(ServeArgs),
    /// Manage API keys
    #[command(subcommand)]
    Key(KeyCommand),
    /// SMS tools
    #[command(subcommand)]
    Sms(SmsCommand),
    /// Operators' devices (phones and modems running gateway software)
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Create an administrator (already verified)
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Manage user accounts
    #[command(subcommand)]
    User(UserCommand),
    /// Upstream providers otpbox resells (SMS-Activate compatible, 5sim)
    #[command(subcommand)]
    Provider(ProviderCommand),
    /// Partner hubs (SMSHub, SMSBower, Grizzly and clones) that buy our own SIMs' numbers
    #[command(subcommand)]
    Partner(PartnerCommand),
    /// Check the database's integrity; exits non-zero on any problem
    Check,
    /// Back up the database and secret.key (online, while a server runs) into a new verified set
    Backup(BackupArgs),
    /// Put a backup set in place of the data directory's database and key (server stopped)
    Restore(RestoreArgs),
    /// Measure request throughput of the hot paths against a fresh local server
    Bench(BenchArgs),
    /// Ask a running server's /healthz; exits 0 when healthy, 1 otherwise (Docker HEALTHCHECK)
    Healthcheck(HealthcheckArgs),
}

#[derive(Args, Debug)]
pub struct HealthcheckArgs {
    /// The health URL (default: /healthz on the configured listen address, 0.0.0.0 read as
    /// 127.0.0.1)
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Directory for the new set (default: backup_dir, or DATA/backups)
    #[arg(long, value_name = "DIR")]
    pub to: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup set: its directory, or its otpbox.sqlite3 with secret.key beside it
    #[arg(value_name = "FILE")]
    pub from: std::path::PathBuf,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Seconds of load per endpoint
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Concurrent keep-alive connections
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Worker threads of the server under test (default: the `workers` setting)
    #[arg(long)]
    pub workers: Option<usize>,
    /// Also run every workload on a database filled with this many past activations
    /// (half of them the ordering account's) and compare; 0 = only the empty database
    #[arg(long, default_value_t = 1_000_000)]
    pub history: u64,
    /// Run only the workloads whose name contains this text (`memory` for the memory check)
    #[arg(long, value_name = "TEXT")]
    pub only: Option<String>,
}

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, env = "OTPBOX_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// HTTP worker threads (default: two per core, at least 4; one per core takes requests at a time)
    #[arg(long, env = "OTPBOX_WORKERS")]
    pub workers: Option<usize>,
    /// Trust X-Forwarded-For and X-Forwarded-Proto from a reverse proxy
    #[arg(long, env = "OTPBOX_BEHIND_PROXY")]
    pub behind_proxy: bool,
    /// Public URL used in e-mailed links
    #[arg(long, env = "OTPBOX_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create an administrator; without --password-stdin a password is generated and printed
    Create(CreateArgs),
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create an account; without --password-stdin a password is generated and printed
    Create(UserCreateArgs),
    /// Credit (or with a negative amount, debit) an account's balance; audited
    Credit(CreditArgs),
}

#[derive(Args, Debug)]
pub struct CreditArgs {
    #[arg(long)]
    pub email: String,
    /// Amount in major units, e.g. 12.50 (negative to debit)
    #[arg(long, allow_hyphen_values = true)]
    pub amount: String,
    #[arg(long, default_value = "")]
    pub note: String,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Create an API key for an account and print it (shown once)
    Create(KeyCreateArgs),
}

#[derive(Args, Debug)]
pub struct KeyCreateArgs {
    #[arg(long)]
    pub email: String,
    #[arg(long, default_value = "command line")]
    pub name: String,
}

#[derive(Subcommand, Debug)]
pub enum SmsCommand {
    /// Deliver an SMS as if a gateway had received it
    Inject(InjectArgs),
}

#[derive(Subcommand, Debug)]
pub enum DeviceCommand {
    /// Register a device for an operator; prints device_id=, secret= (shown once) and
    /// webhook_url= lines
    Add(DeviceAddArgs),
}

#[derive(Args, Debug)]
pub struct DeviceAddArgs {
    /// E-mail of the operator (or admin) account the device belongs to
    #[arg(long)]
    pub operator: String,
    /// Gateway software: capcom6 (SMS Gateway for Android), httpsms, textbee or generic
    #[arg(long)]
    pub kind: String,
    /// A name to tell devices apart (default: the gateway's name)
    #[arg(long, default_value = "")]
    pub name: String,
    /// A SIM in the device: SLOT:PHONE:COUNTRY[:OPERATOR], COUNTRY the numeric country id
    /// (e.g. 1:+6281234567890:6); repeat for more SIMs
    #[arg(long = "sim", value_name = "SLOT:PHONE:COUNTRY")]
    pub sims: Vec<String>,
}

#[derive(Args, Debug)]
pub struct InjectArgs {
    /// Receiving number (digits with country code)
    #[arg(long)]
    pub to: String,
    #[arg(long)]
    pub from: String,
    #[arg(long)]
    pub text: String,
    /// Source message id for de-duplication
    #[arg(long)]
    pub id: Option<String>,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[arg(long)]
    pub email: String,
    /// Read the password from standard input instead of generating one
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Args, Debug)]
pub struct UserCreateArgs {
    #[arg(long)]
    pub email: String,
    /// user, operator or admin
    #[arg(long, default_value = "user")]
    pub role: String,
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Subcommand, Debug)]
pub enum ProviderCommand {
    /// Add a provider and sync its prices and stock at once
    Add(ProviderAddArgs),
    /// List the providers with their health (never their keys)
    List,
}

#[derive(Subcommand, Debug)]
pub enum PartnerCommand {
    /// Add a partner hub; prints its id and the agent URL to give the hub
    Add(PartnerAddArgs),
    /// List the partner hubs with their orders in progress, pushes waiting and what they owe
    List,
}

#[derive(Args, Debug)]
pub struct PartnerAddArgs {
    /// A name for the admin pages, e.g. SMSHub
    #[arg(long)]
    pub name: String,
    /// Where SMS are pushed (PUSH_SMS), e.g. https://agent.unerio.com/agent/api/sms
    #[arg(long)]
    pub push_url: String,
    /// The key the hub gave (sent in both directions); see also --key-stdin
    #[arg(long, required_unless_present = "key_stdin")]
    pub key: Option<String>,
    /// Read the key from standard input (keeps it out of the process list)
    #[arg(long)]
    pub key_stdin: bool,
    /// The hub's currency: 643 (RUB) or 840 (USD)
    #[arg(long, default_value = "643")]
    pub currency: String,
    /// Our minor units per one unit of the hub's currency, e.g. 1.1 (cents per ruble);
    /// default: 100 when the hub pays in our currency
    #[arg(long)]
    pub rate: Option<String>,
    /// The lowest price (`sum`) accepted for a number, in the hub's currency, e.g. 5.50
    #[arg(long, default_value = "0")]
    pub floor: String,
}

#[derive(Args, Debug)]
pub struct ProviderAddArgs {
    /// sms-activate (any handler_api.php clone) or 5sim
    #[arg(long)]
    pub kind: String,
    /// The handler_api.php URL (SMS-Activate) or the API root such as https://5sim.net/v1
    #[arg(long)]
    pub url: String,
    /// The API key (or token); see also --key-stdin
    #[arg(long, required_unless_present = "key_stdin")]
    pub key: Option<String>,
    /// Read the API key from standard input (keeps it out of the process list)
    #[arg(long)]
    pub key_stdin: bool,
    /// Added to the provider's cost, e.g. 20% or 12.5%
    #[arg(long, default_value = "20%")]
    pub markup: String,
    /// Higher is tried first
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub priority: i64,
    /// A name for the admin pages (default: the URL's host)
    #[arg(long, default_value = "")]
    pub name: String,
    /// Our minor units per one unit of the provider's currency
    #[arg(long, default_value_t = 100)]
    pub unit: i64,
}
