//! Validated settings.
//!
//! One declarative table ([`SETTINGS`]) names every setting with its default and help text.
//! Values are layered: defaults < config file < `OTPBOX_*` environment < command-line flags.
//! Every value is parsed and checked here, at start-up, with an error that names the setting;
//! the rest of the program only ever sees a [`Config`]. Secrets are never printed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One row of the settings table.
pub struct Setting {
    pub key: &'static str,
    pub default: &'static str,
    /// Documentation kept beside the setting; README.md's table mirrors it.
    #[allow(dead_code)]
    pub help: &'static str,
    pub secret: bool,
}

const fn s(key: &'static str, default: &'static str, help: &'static str) -> Setting {
    Setting {
        key,
        default,
        help,
        secret: false,
    }
}

const fn secret(key: &'static str, help: &'static str) -> Setting {
    Setting {
        key,
        default: "",
        help,
        secret: true,
    }
}

/// Every setting otpbox knows. README.md documents the same table.
pub const SETTINGS: &[Setting] = &[
    s(
        "data",
        "./data",
        "Data directory (database and keys); created with mode 0700",
    ),
    s("listen", "127.0.0.1:8080", "Address and port to listen on"),
    s(
        "synchronous",
        "normal",
        "SQLite durability: normal (a power loss may undo the last commits) or full (fsync every commit)",
    ),
    s(
        "wal_autocheckpoint",
        "10000",
        "The WAL is checkpointed into the database (by a thread beside the writers) once it holds this many pages (4 KiB each); 0 leaves checkpoints to Litestream",
    ),
    s(
        "workers",
        "0",
        "HTTP worker threads; 0 = two per CPU core, at least 4. One per core takes requests at a time; the others stand in for one whose request waits for a commit, so more writes share each",
    ),
    s(
        "behind_proxy",
        "false",
        "Trust X-Forwarded-For / X-Forwarded-Proto from a reverse proxy",
    ),
    s(
        "base_url",
        "",
        "Public URL used in e-mailed links; default http://LISTEN",
    ),
    s(
        "read_timeout",
        "15s",
        "Idle / read timeout of a client connection",
    ),
    s(
        "max_connections_body",
        "64",
        "Uploads (bodies over 1 KiB) read at once, off the workers",
    ),
    s(
        "max_connections",
        "1000",
        "Client connections held at once; beyond it the longest idle ones are closed",
    ),
    s(
        "max_waiting",
        "512",
        "Long-poll requests that may wait at once (beyond it they are answered at once)",
    ),
    s(
        "site_name",
        "otpbox",
        "Name shown in the page header and mails",
    ),
    s(
        "operator_name",
        "The otpbox operator",
        "Who runs this install (public pages)",
    ),
    s(
        "operator_contact",
        "admin@localhost",
        "Contact address shown on public pages",
    ),
    s(
        "currency",
        "USD",
        "ISO 4217 code of the one currency of this install",
    ),
    s(
        "min_age",
        "18",
        "Minimum age a person must confirm at sign-up",
    ),
    s(
        "session_idle",
        "7d",
        "A session ends after this long without use",
    ),
    s(
        "session_max",
        "30d",
        "A session ends this long after login, used or not",
    ),
    s(
        "max_hashes",
        "0",
        "Password hashes computed at once; 0 = number of cores",
    ),
    s(
        "login_max_failures",
        "5",
        "Failed logins per account before it is throttled",
    ),
    s(
        "login_ip_max_failures",
        "20",
        "Failed logins per IP address before it is throttled",
    ),
    s(
        "login_window",
        "15m",
        "Window in which failed logins are counted",
    ),
    s(
        "smtp_host",
        "",
        "SMTP server; empty = mail goes to the admin outbox and the log",
    ),
    s(
        "smtp_port",
        "587",
        "SMTP port (465 = implicit TLS, else STARTTLS when offered)",
    ),
    s("smtp_user", "", "SMTP user name"),
    secret(
        "smtp_password",
        "SMTP password (or OTPBOX_SMTP_PASSWORD_FILE)",
    ),
    s(
        "smtp_from",
        "otpbox@localhost",
        "From address of outgoing mail",
    ),
    s("smtp_tls", "auto", "auto | starttls | tls | none"),
    s(
        "log",
        "info",
        "Log filter (error, warn, info, debug or env_logger syntax)",
    ),
    s(
        "demo",
        "false",
        "Demo mode: simulator on, demo customer seeded, and an administrator with a random password printed once when the install has none (no admin-setup link)",
    ),
    s(
        "sim_delay",
        "5s",
        "Simulator: delay before the SMS for an order arrives",
    ),
    s(
        "sim_no_code",
        "0",
        "Simulator: percent of orders that never get an SMS (until the admin page sets its own odds)",
    ),
    s(
        "sim_late_code",
        "0",
        "Simulator: percent of orders whose SMS comes a minute after the order ended (never delivered)",
    ),
    s(
        "sim_duplicate",
        "0",
        "Simulator: percent of orders whose SMS is delivered twice with the same message id",
    ),
    s(
        "sim_wrong_format",
        "0",
        "Simulator: percent of orders whose code is written in letters the code extraction cannot read",
    ),
    s(
        "sim_seed",
        "",
        "Simulator: a whole number makes each order's draw a function of it and the order id (repeatable QA runs); empty = random",
    ),
    s(
        "early_cancel",
        "2m",
        "Cancelling is refused this long after a number is issued",
    ),
    s("activation_ttl", "20m", "Lifetime of an activation"),
    s(
        "sms_retention",
        "5m",
        "SMS bodies and codes are deleted this long after an order ends",
    ),
    s(
        "order_retention",
        "24mo",
        "Orders and rentals older than this are anonymised (number and account removed, totals kept)",
    ),
    s(
        "ledger_retention",
        "7y",
        "Ledger and payment rows are deleted after this long (balances carried over)",
    ),
    s(
        "log_retention",
        "30d",
        "Operational logs (job runs, webhook attempts, provider calls, sent mail) are kept this long",
    ),
    s(
        "security_log_retention",
        "12mo",
        "Security logs (logins, failed logins, admin actions, key changes) are kept this long",
    ),
    secret(
        "metrics_token",
        "Serve GET /metrics on the main listener to requests with `Authorization: Bearer <token>`; empty = not there",
    ),
    s(
        "metrics_listen",
        "",
        "Also serve GET /metrics, without a token, on this separate address (e.g. 127.0.0.1:9464); empty = none",
    ),
    s(
        "goip_listen",
        "",
        "UDP address for GoIP gateways' SMS server protocol (e.g. 0.0.0.0:44444); empty = off",
    ),
    s(
        "backup_dir",
        "",
        "Where backup sets go (created with mode 0700); empty = DATA/backups",
    ),
    s(
        "backup_schedule",
        "0 30 2 * * *",
        "When the backup job runs: a cron expression with seconds (default: daily at 02:30 UTC)",
    ),
    s(
        "backup_keep",
        "7",
        "How many backup sets the job keeps (older ones are removed); 0 = keep all",
    ),
    s(
        "deletion_cooldown",
        "30d",
        "A deleted account's e-mail cannot sign up again for this long; then the account is purged",
    ),
    s(
        "max_active_activations",
        "20",
        "Live activations one account may hold",
    ),
    s(
        "reuse_cooldown",
        "0",
        "A number serves the same service again after this long; 0 = never",
    ),
    s(
        "operator_share",
        "70",
        "Percent of a completed activation or rental's price credited to the number's operator",
    ),
    s(
        "api_rate",
        "50",
        "Customer APIs: requests per second per API key; 0 = no limit",
    ),
    s(
        "api_burst",
        "100",
        "Customer APIs: requests one API key may send at once before the rate applies",
    ),
    s(
        "api_ip_rate",
        "100",
        "Customer APIs: requests per second per client IP (IPv6 per /64); 0 = no limit",
    ),
    s(
        "api_ip_burst",
        "200",
        "Customer APIs: requests one IP may send at once before the rate applies",
    ),
    s(
        "abuse_reports_per_hour",
        "5",
        "Abuse reports one address may send per hour (more get 429; nothing stored)",
    ),
    s(
        "flag_orders_per_minute",
        "10",
        "Anomaly flag: more orders than this in one minute; 0 = off",
    ),
    s(
        "flag_cancel_ratio",
        "70",
        "Anomaly flag: percent of orders cancelled in flag_window above which an account is flagged",
    ),
    s(
        "flag_success_rate",
        "20",
        "Anomaly flag: percent of finished orders that got a code below which an account is flagged",
    ),
    s(
        "flag_min_orders",
        "10",
        "Anomaly flag: orders in flag_window before the cancel ratio and success rate apply",
    ),
    s(
        "flag_accounts_per_ip",
        "5",
        "Anomaly flag: this many accounts signing in from one (hashed) address in flag_window; 0 = off",
    ),
    s(
        "flag_window",
        "24h",
        "Anomaly flags: how far back the ratios and the shared-address signal look",
    ),
    s(
        "webhook_allow_private",
        "false",
        "Let customer webhooks call private, loopback and link-local addresses",
    ),
    s(
        "upstream_timeout",
        "10s",
        "Connect and read timeout of every call to an upstream provider",
    ),
    s(
        "provider_failures",
        "5",
        "Failed calls in a row after which an upstream provider is paused",
    ),
    s(
        "provider_pause",
        "5m",
        "How long a failing upstream provider is paused (circuit breaker)",
    ),
    secret(
        "stripe_secret_key",
        "Stripe secret API key (sk_…) for top-ups by card through Stripe Checkout; empty = Stripe is off (or OTPBOX_STRIPE_SECRET_KEY_FILE)",
    ),
    secret(
        "stripe_webhook_secret",
        "Signing secret (whsec_…) of the Stripe webhook endpoint /payments/stripe/webhook (or OTPBOX_STRIPE_WEBHOOK_SECRET_FILE)",
    ),
    s(
        "stripe_api_base",
        "https://api.stripe.com",
        "Base URL of the Stripe API (tests point it at a local fake)",
    ),
    s(
        "btcpay_url",
        "",
        "Base URL of your BTCPay Server (e.g. https://btcpay.example.com) for crypto top-ups",
    ),
    secret(
        "btcpay_api_key",
        "BTCPay Greenfield API key with the invoice permissions of the store; empty = BTCPay is off (or OTPBOX_BTCPAY_API_KEY_FILE)",
    ),
    s(
        "btcpay_store_id",
        "",
        "Id of the BTCPay store that issues the invoices",
    ),
    secret(
        "btcpay_webhook_secret",
        "Secret of the store's webhook to /payments/btcpay/webhook (or OTPBOX_BTCPAY_WEBHOOK_SECRET_FILE)",
    ),
    s(
        "topup_min",
        "5",
        "Smallest top-up through a payment gateway, in the install's currency",
    ),
    s(
        "topup_max",
        "500",
        "Largest top-up through a payment gateway, in the install's currency",
    ),
    s(
        "device_offline_after",
        "30m",
        "An operator's device silent this long is offline and its SIMs are not sold",
    ),
    s(
        "oidc_issuer",
        "",
        "Sign-in with OpenID Connect: the provider's issuer URL (discovery at ISSUER/.well-known/openid-configuration); empty = off",
    ),
    s(
        "oidc_client_id",
        "",
        "The client id otpbox is registered under at the oidc_issuer provider",
    ),
    secret(
        "oidc_client_secret",
        "The client secret of that registration (or OTPBOX_OIDC_CLIENT_SECRET_FILE)",
    ),
    s(
        "oidc_label",
        "",
        "The name on the sign-in button (\"Sign in with …\"); empty = the issuer's host",
    ),
    s(
        "oidc_totp",
        "true",
        "Ask an account's TOTP code after a sign-in with the oidc_issuer provider when the account has one",
    ),
    s(
        "oidc_allow_insecure",
        "false",
        "TESTS AND LABS ONLY: allow http:// issuers and provider endpoints",
    ),
    secret(
        "telegram_bot_token",
        "The Telegram bot that sends notifications (from @BotFather; or OTPBOX_TELEGRAM_BOT_TOKEN_FILE); empty = no Telegram channels",
    ),
    s(
        "telegram_api",
        "https://api.telegram.org",
        "Base URL of the Telegram Bot API (a local Bot API server, or a fake in tests)",
    ),
    s(
        "telegram_webhook",
        "false",
        "Receive the bot's updates at BASE_URL/telegram/webhook (registered with setWebhook) instead of polling getUpdates; base_url must be an address Telegram reaches (https, port 443, 80, 88 or 8443)",
    ),
    s(
        "dev_clock",
        "false",
        "TESTS ONLY: allow moving the clock through /__dev endpoints",
    ),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpTls {
    Auto,
    StartTls,
    Tls,
    None,
}

#[derive(Debug, Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub from: String,
    pub tls: SmtpTls,
}

/// Stripe Checkout (on when `stripe_secret_key` is set).
#[derive(Debug, Clone)]
pub struct StripeSettings {
    pub secret_key: String,
    pub webhook_secret: String,
    /// `https://api.stripe.com` unless a test points it elsewhere; no trailing slash.
    pub api_base: String,
}

/// BTCPay Server's Greenfield API (on when `btcpay_api_key` is set).
#[derive(Debug, Clone)]
pub struct BtcpaySettings {
    /// No trailing slash.
    pub url: String,
    pub api_key: String,
    pub store_id: String,
    pub webhook_secret: String,
}

/// Money in through payment gateways.
#[derive(Debug, Clone)]
pub struct Payments {
    pub stripe: Option<StripeSettings>,
    pub btcpay: Option<BtcpaySettings>,
    /// Top-up limits in minor units of the install's currency.
    pub topup_min: i64,
    pub topup_max: i64,
}

impl Payments {
    /// Reads the payment settings: a gateway with no key is off; one with a key needs the
    /// rest of its settings.
    fn from_layers(layers: &Layers, currency: &str) -> Result<Payments, String> {
        let get = |k: &str| layers.get(k).trim().to_string();
        let base = |k: &'static str| -> Result<String, String> {
            match get(k).trim_end_matches('/') {
                u if u.starts_with("http://") || u.starts_with("https://") => Ok(u.to_string()),
                u => Err(format!(
                    "setting `{k}`: `{u}` must be a URL starting with http(s)://"
                )),
            }
        };
        let needed = |k: &'static str, gateway: &str| -> Result<String, String> {
            match get(k) {
                v if v.is_empty() => Err(format!(
                    "setting `{k}`: needed when {gateway} is on (its API key is set)"
                )),
                v => Ok(v),
            }
        };
        let stripe = match get("stripe_secret_key") {
            key if key.is_empty() => None,
            key => Some(StripeSettings {
                secret_key: key,
                webhook_secret: needed("stripe_webhook_secret", "Stripe")?,
                api_base: base("stripe_api_base")?,
            }),
        };
        let btcpay = match get("btcpay_api_key") {
            key if key.is_empty() => None,
            key => Some(BtcpaySettings {
                url: {
                    needed("btcpay_url", "BTCPay")?;
                    base("btcpay_url")?
                },
                api_key: key,
                store_id: needed("btcpay_store_id", "BTCPay")?,
                webhook_secret: needed("btcpay_webhook_secret", "BTCPay")?,
            }),
        };
        let digits = crate::domain::base::money::currency_digits(currency);
        let amount = |k: &'static str| -> Result<i64, String> {
            crate::domain::base::money::Money::parse(&get(k), digits, false)
                .map(|m| m.0)
                .filter(|m| *m > 0)
                .ok_or_else(|| {
                    format!(
                        "setting `{k}`: `{}` is not a positive amount in {currency}",
                        get(k)
                    )
                })
        };
        let (topup_min, topup_max) = (amount("topup_min")?, amount("topup_max")?);
        if topup_min > topup_max {
            return Err("setting `topup_min` must not be above `topup_max`".into());
        }
        Ok(Payments {
            stripe,
            btcpay,
            topup_min,
            topup_max,
        })
    }
}

/// The customer account `otpbox demo` creates (and the benchmark signs in as).
pub const DEMO_EMAIL: &str = "demo@example.com";
pub const DEMO_PASSWORD: &str = "demo-password";
/// The administrator `otpbox demo` creates when the install has none (with a random
/// password, printed once).
pub const DEMO_ADMIN_EMAIL: &str = "admin@demo.example";

/// A rate and a burst. `rate` whole requests per second refill the bucket, which holds at
/// most `burst` requests. Either 0 turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub rate: u64,
    pub burst: u64,
}

impl Limit {
    pub fn is_off(self) -> bool {
        self.rate == 0 || self.burst == 0
    }
}

/// Settings after validation. Cloned freely; read-only after start-up.
#[derive(Debug, Clone)]
pub struct Config {
    pub data: PathBuf,
    pub listen: SocketAddr,
    /// SQLite's `synchronous` on every connection (see README "Durability").
    pub synchronous: crate::db::Synchronous,
    pub workers: usize,
    pub behind_proxy: bool,
    pub base_url: String,
    pub read_timeout: Duration,
    pub max_body_readers: usize,
    pub max_waiting: usize,
    pub max_connections: usize,
    pub site_name: String,
    pub operator_name: String,
    pub operator_contact: String,
    pub currency: String,
    pub min_age: u32,
    pub session_idle: u64,
    pub session_max: u64,
    pub max_hashes: usize,
    pub login_max_failures: u32,
    pub login_ip_max_failures: u32,
    pub login_window: u64,
    pub smtp: Option<Smtp>,
    pub log: String,
    pub demo: bool,
    pub sim_delay: u64,
    /// The simulator's failure odds per order (the settings' defaults).
    pub sim_odds: crate::domain::market::simulator::Odds,
    pub early_cancel: u64,
    pub activation_ttl: u64,
    pub sms_retention: u64,
    pub order_retention: u64,
    pub ledger_retention: u64,
    pub log_retention: u64,
    pub security_log_retention: u64,
    pub deletion_cooldown: u64,
    pub wal_autocheckpoint: u32,
    pub metrics_token: String,
    pub metrics_listen: Option<SocketAddr>,
    pub goip_listen: Option<SocketAddr>,
    pub backup_dir: PathBuf,
    pub backup_schedule: String,
    pub backup_keep: usize,
    pub max_active_activations: u32,
    pub reuse_cooldown: u64,
    /// Percent (0–100) of a completed order's price that the number's operator earns.
    pub operator_share: u32,
    /// Rate limit of the customer APIs per API key.
    pub api_key_limit: Limit,
    /// Rate limit of the customer APIs per client IP.
    pub api_ip_limit: Limit,
    pub webhook_allow_private: bool,
    /// Connect and read timeout of calls to upstream providers (seconds, at least 1).
    pub upstream_timeout: u64,
    /// Consecutive failed calls that pause a provider.
    pub provider_failures: u32,
    /// How long a paused provider rests (seconds).
    pub provider_pause: u64,
    /// A device silent this long (seconds) goes offline; its SIMs leave the stock.
    pub device_offline_after: u64,
    /// The payment gateways that are on, and the top-up limits.
    pub payments: Payments,
    pub abuse_reports_per_hour: u32,
    /// Thresholds of the anomaly signals (`flag_*`).
    pub flags: crate::domain::trust::signals::Thresholds,
    /// OpenID Connect providers people may sign in with: the one of the `oidc_*` settings
    /// first (named `default`), then those of the config file, in name order.
    pub oidc: Vec<OidcProvider>,
    /// `http://` issuers and endpoints allowed (tests and labs).
    pub oidc_allow_insecure: bool,
    /// The Telegram bot of notifications; empty = none.
    pub telegram_bot_token: String,
    pub telegram_api: String,
    pub telegram_webhook: bool,
    pub dev_clock: bool,
}

/// One OpenID Connect provider (README "Sign-in with OpenID Connect").
#[derive(Clone)]
pub struct OidcProvider {
    /// `default` for the provider of the `oidc_*` settings; the config file's name otherwise.
    pub name: String,
    /// Exactly as the provider writes it in `iss` (no trailing slash added or removed).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub label: String,
    /// Whether an account's TOTP code is still asked after this provider's sign-in.
    pub totp: bool,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is never printed.
        f.debug_struct("OidcProvider")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("label", &self.label)
            .field("totp", &self.totp)
            .finish_non_exhaustive()
    }
}

/// The keys a provider of the config file may have (`oidc.NAME.KEY = value`).
const OIDC_KEYS: &[&str] = &[
    "issuer",
    "client_id",
    "client_secret",
    "client_secret_file",
    "label",
    "totp",
];

/// Splits `oidc.NAME.KEY` into a valid name and key.
pub(crate) fn oidc_file_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("oidc.")?;
    let (name, field) = rest.split_once('.')?;
    let name_ok = !name.is_empty()
        && name.len() <= 32
        && name != "default"
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    (name_ok && OIDC_KEYS.contains(&field)).then_some((name, field))
}

/// Checks an issuer URL: `https://`, or `http://` when `insecure` is allowed; no query or
/// fragment.
fn check_issuer(issuer: &str, insecure: bool) -> Result<(), String> {
    let scheme_ok = issuer.starts_with("https://") || (insecure && issuer.starts_with("http://"));
    if !scheme_ok {
        return Err(format!(
            "`{issuer}` must start with https:// (http:// only with oidc_allow_insecure)"
        ));
    }
    if issuer.contains(['?', '#', ' ']) || issuer.split("://").nth(1).is_none_or(str::is_empty) {
        return Err(format!("`{issuer}` is not an issuer URL"));
    }
    Ok(())
}

/// The providers of the `oidc_*` settings and of the config file, checked.
fn oidc_providers(layers: &Layers, insecure: bool) -> Result<Vec<OidcProvider>, String> {
    let host_of = |issuer: &str| {
        issuer
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or(issuer)
            .to_string()
    };
    let mut out = Vec::new();
    let issuer = layers.get("oidc_issuer").trim().to_string();
    if !issuer.is_empty() {
        check_issuer(&issuer, insecure).map_err(|e| format!("setting `oidc_issuer`: {e}"))?;
        let client_id = layers.get("oidc_client_id").trim().to_string();
        if client_id.is_empty() {
            return Err("setting `oidc_client_id`: needed when `oidc_issuer` is set".into());
        }
        let label = match layers.get("oidc_label").trim() {
            "" => host_of(&issuer),
            l => l.to_string(),
        };
        out.push(OidcProvider {
            name: "default".into(),
            client_id,
            client_secret: layers.get("oidc_client_secret").trim().to_string(),
            label,
            totp: parse_bool(&layers.get("oidc_totp"))
                .map_err(|e| format!("setting `oidc_totp`: {e}"))?,
            issuer,
        });
    }
    let mut named: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for (key, value) in &layers.file {
        if let Some((name, field)) = oidc_file_key(key) {
            named.entry(name).or_default().insert(field, value.as_str());
        }
    }
    for (name, fields) in named {
        let field = |k: &str| {
            fields
                .get(k)
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let bad = |e: String| format!("config file, provider `oidc.{name}`: {e}");
        let issuer = field("issuer");
        if issuer.is_empty() {
            return Err(bad("`issuer` is missing".into()));
        }
        check_issuer(&issuer, insecure).map_err(bad)?;
        let client_id = field("client_id");
        if client_id.is_empty() {
            return Err(bad("`client_id` is missing".into()));
        }
        let client_secret = match (
            fields.get("client_secret"),
            fields.get("client_secret_file"),
        ) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "give `client_secret` or `client_secret_file`, not both".into(),
                ))
            }
            (_, Some(path)) => std::fs::read_to_string(path.trim())
                .map_err(|e| bad(format!("cannot read {}: {e}", path.trim())))?
                .trim_end()
                .to_string(),
            (Some(s), None) => s.trim().to_string(),
            (None, None) => String::new(),
        };
        let label = match field("label") {
            l if l.is_empty() => host_of(&issuer),
            l => l,
        };
        let totp = match fields.get("totp") {
            Some(v) => parse_bool(v).map_err(bad)?,
            None => true,
        };
        out.push(OidcProvider {
            name: name.to_string(),
            issuer,
            client_id,
            client_secret,
            label,
            totp,
        });
    }
    Ok(out)
}

/// Raw values before parsing: setting key → text.
#[derive(Default, Debug)]
pub struct Layers {
    pub file: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    pub flags: BTreeMap<String, String>,
    /// Things to warn about once logging is up (unknown variables).
    pub warnings: Vec<String>,
}

impl Layers {
    /// Reads the environment (`OTPBOX_KEY` and `OTPBOX_KEY_FILE` for secrets) and the config
    /// file (from the `config` flag or `OTPBOX_CONFIG`).
    pub fn gather(
        flags: BTreeMap<String, String>,
        config_file: Option<&Path>,
    ) -> Result<Layers, String> {
        let mut layers = Layers {
            flags,
            ..Layers::default()
        };
        for (name, value) in std::env::vars() {
            let Some(rest) = name.strip_prefix("OTPBOX_") else {
                continue;
            };
            let key = rest.to_ascii_lowercase();
            if key == "config" {
                continue;
            }
            if let Some(base) = key.strip_suffix("_file") {
                if let Some(setting) = SETTINGS.iter().find(|s| s.key == base && s.secret) {
                    let text = std::fs::read_to_string(&value)
                        .map_err(|e| format!("OTPBOX_{}: cannot read {value}: {e}", name))?;
                    layers
                        .env
                        .insert(setting.key.to_string(), text.trim_end().to_string());
                    continue;
                }
            }
            if SETTINGS.iter().any(|s| s.key == key) {
                layers.env.insert(key, value);
            } else {
                layers
                    .warnings
                    .push(format!("ignoring unknown environment variable {name}"));
            }
        }
        if let Some(path) = config_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("config file {}: {e}", path.display()))?;
            layers.file = parse_config_file(&text)
                .map_err(|e| format!("config file {}: {e}", path.display()))?;
        }
        Ok(layers)
    }

    fn get(&self, key: &str) -> String {
        self.flags
            .get(key)
            .or_else(|| self.env.get(key))
            .or_else(|| self.file.get(key))
            .cloned()
            .unwrap_or_else(|| {
                SETTINGS
                    .iter()
                    .find(|s| s.key == key)
                    .map(|s| s.default.to_string())
                    .unwrap_or_default()
            })
    }
}

/// `key = value` lines; `#` starts a comment; keys are the setting names of [`SETTINGS`].
pub fn parse_config_file(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected `key = value`", n + 1))?;
        let key = k.trim().to_ascii_lowercase();
        if key.starts_with("oidc.") {
            if oidc_file_key(&key).is_none() {
                return Err(format!(
                    "line {}: `{}` is not `oidc.NAME.KEY` (NAME: a-z, 0-9, - and _, not \
                     `default`; KEY: {})",
                    n + 1,
                    k.trim(),
                    OIDC_KEYS.join(", ")
                ));
            }
            out.insert(key, v.trim().trim_matches('"').to_string());
            continue;
        }
        let key = key.replace('-', "_");
        if !SETTINGS.iter().any(|s| s.key == key) {
            return Err(format!("line {}: unknown setting `{}`", n + 1, k.trim()));
        }
        let v = v.trim().trim_matches('"').to_string();
        out.insert(key, v);
    }
    Ok(out)
}

/// `90`, `90s`, `2m`, `1h`, `7d` → seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    const DAY: u64 = 86_400;
    if let Some(n) = t.strip_suffix("mo") {
        return parse_duration(n.trim())
            .ok()
            .and_then(|n| n.checked_mul(30 * DAY))
            .ok_or_else(|| {
                format!("`{text}` is not a duration (examples: 90, 90s, 2m, 1h, 7d, 12mo, 7y)")
            });
    }
    let (num, mult) = match t.char_indices().last() {
        Some((i, 's')) => (&t[..i], 1),
        Some((i, 'm')) => (&t[..i], 60),
        Some((i, 'h')) => (&t[..i], 3600),
        Some((i, 'd')) => (&t[..i], 86_400),
        Some((i, 'w')) => (&t[..i], 7 * 86_400),
        Some((i, 'y')) => (&t[..i], 365 * DAY),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| {
            format!("`{text}` is not a duration (examples: 90, 90s, 2m, 1h, 7d, 12mo, 7y)")
        })
}

/// A whole percentage from 0 to 100, with or without `%`.
fn parse_percent(text: &str) -> Result<u32, String> {
    let t = text.trim();
    t.strip_suffix('%')
        .unwrap_or(t)
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|p| *p <= 100)
        .ok_or_else(|| format!("`{text}` is not a percentage from 0 to 100"))
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("`{text}` is not true or false")),
    }
}

impl Config {
    pub fn from_layers(layers: &Layers) -> Result<Config, String> {
        let get = |k: &str| layers.get(k);
        let named = |k: &'static str| move |e: String| format!("setting `{k}`: {e}");
        let num = |k: &'static str| -> Result<u64, String> {
            get(k)
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("setting `{k}`: `{}` is not a whole number", get(k)))
        };
        let dur = |k: &'static str| parse_duration(&get(k)).map_err(named(k));
        let percent = |k: &'static str| -> Result<u32, String> {
            match num(k)? {
                n @ 0..=100 => Ok(n as u32),
                _ => Err(format!("setting `{k}`: a percentage from 0 to 100")),
            }
        };
        let listen: SocketAddr = get("listen").trim().parse().map_err(|_| {
            format!(
                "setting `listen`: `{}` is not an address like 127.0.0.1:8080",
                get("listen")
            )
        })?;
        let workers = match num("workers")? {
            // Only one per core takes requests at a time (`crate::cpu`); the others stand in
            // for those waiting for a commit, so more writes share each one.
            0 => (crate::cpu::cores() * 2).max(4),
            n => n as usize,
        };
        let max_hashes = match num("max_hashes")? {
            0 => crate::cpu::cores(),
            n => n as usize,
        };
        let base_url = match get("base_url").trim().trim_end_matches('/') {
            "" => format!("http://{listen}"),
            u if u.starts_with("http://") || u.starts_with("https://") => u.to_string(),
            u => {
                return Err(format!(
                    "setting `base_url`: `{u}` must start with http(s)://"
                ))
            }
        };
        let currency = get("currency").trim().to_ascii_uppercase();
        if crate::domain::base::money::currency_numeric(&currency).is_none() {
            return Err(format!(
                "setting `currency`: `{currency}` is not a supported ISO 4217 code"
            ));
        }
        let smtp = match get("smtp_host").trim() {
            "" => None,
            host => Some(Smtp {
                host: host.to_string(),
                port: get("smtp_port")
                    .trim()
                    .parse()
                    .map_err(|_| "setting `smtp_port`: not a port number".to_string())?,
                user: get("smtp_user"),
                password: get("smtp_password"),
                from: get("smtp_from"),
                tls: match get("smtp_tls").trim() {
                    "auto" => SmtpTls::Auto,
                    "starttls" => SmtpTls::StartTls,
                    "tls" => SmtpTls::Tls,
                    "none" => SmtpTls::None,
                    other => {
                        return Err(format!(
                            "setting `smtp_tls`: `{other}` is not auto, starttls, tls or none"
                        ))
                    }
                },
            }),
        };
        let synchronous = crate::db::Synchronous::parse(&get("synchronous")).ok_or_else(|| {
            format!(
                "setting `synchronous`: `{}` is not normal or full",
                get("synchronous").trim()
            )
        })?;
        let oidc_allow_insecure =
            parse_bool(&get("oidc_allow_insecure")).map_err(named("oidc_allow_insecure"))?;
        let read_timeout = dur("read_timeout")?;
        if read_timeout == 0 {
            return Err("setting `read_timeout`: must be at least 1s".into());
        }
        let payments = Payments::from_layers(layers, &currency)?;
        let cfg = Config {
            data: PathBuf::from(get("data")),
            listen,
            synchronous,
            workers,
            behind_proxy: parse_bool(&get("behind_proxy")).map_err(named("behind_proxy"))?,
            base_url,
            read_timeout: Duration::from_secs(read_timeout),
            max_body_readers: num("max_connections_body")?.max(1) as usize,
            max_waiting: num("max_waiting")? as usize,
            max_connections: num("max_connections")?.max(1) as usize,
            site_name: get("site_name"),
            operator_name: get("operator_name"),
            operator_contact: get("operator_contact"),
            currency,
            min_age: num("min_age")? as u32,
            session_idle: dur("session_idle")?,
            session_max: dur("session_max")?,
            max_hashes: max_hashes.max(1),
            login_max_failures: num("login_max_failures")?.max(1) as u32,
            login_ip_max_failures: num("login_ip_max_failures")?.max(1) as u32,
            login_window: dur("login_window")?,
            smtp,
            log: get("log"),
            demo: parse_bool(&get("demo")).map_err(named("demo"))?,
            sim_delay: dur("sim_delay")?,
            sim_odds: crate::domain::market::simulator::Odds::new(
                [
                    percent("sim_no_code")?,
                    percent("sim_late_code")?,
                    percent("sim_duplicate")?,
                    percent("sim_wrong_format")?,
                ],
                match get("sim_seed").trim() {
                    "" => None,
                    t => {
                        Some(t.parse::<u64>().map_err(|_| {
                            format!("setting `sim_seed`: `{t}` is not a whole number")
                        })?)
                    }
                },
            )
            .map_err(|e| format!("settings `sim_*`: {e}"))?,
            early_cancel: dur("early_cancel")?,
            activation_ttl: dur("activation_ttl")?,
            sms_retention: dur("sms_retention")?,
            order_retention: dur("order_retention")?,
            ledger_retention: dur("ledger_retention")?,
            log_retention: dur("log_retention")?,
            security_log_retention: dur("security_log_retention")?,
            deletion_cooldown: dur("deletion_cooldown")?,
            wal_autocheckpoint: num("wal_autocheckpoint")? as u32,
            metrics_token: get("metrics_token").trim().to_string(),
            metrics_listen: match get("metrics_listen").trim() {
                "" => None,
                a => Some(a.parse().map_err(|_| {
                    format!("setting `metrics_listen`: `{a}` is not an address like 127.0.0.1:9464")
                })?),
            },
            goip_listen: match get("goip_listen").trim() {
                "" => None,
                a => Some(a.parse().map_err(|_| {
                    format!("setting `goip_listen`: `{a}` is not an address like 0.0.0.0:44444")
                })?),
            },
            backup_dir: PathBuf::from(get("backup_dir").trim()),
            backup_schedule: {
                let expr = get("backup_schedule").trim().to_string();
                parse_schedule(&expr).map_err(named("backup_schedule"))?;
                expr
            },
            backup_keep: num("backup_keep")? as usize,
            max_active_activations: num("max_active_activations")? as u32,
            reuse_cooldown: dur("reuse_cooldown")?,
            operator_share: parse_percent(&get("operator_share"))
                .map_err(named("operator_share"))?,
            api_key_limit: Limit {
                rate: num("api_rate")?,
                burst: num("api_burst")?,
            },
            api_ip_limit: Limit {
                rate: num("api_ip_rate")?,
                burst: num("api_ip_burst")?,
            },
            webhook_allow_private: parse_bool(&get("webhook_allow_private"))
                .map_err(named("webhook_allow_private"))?,
            upstream_timeout: match dur("upstream_timeout")? {
                0 => return Err("setting `upstream_timeout`: must be at least 1s".into()),
                t => t,
            },
            provider_failures: num("provider_failures")?.max(1) as u32,
            provider_pause: dur("provider_pause")?,
            device_offline_after: dur("device_offline_after")?,
            payments,
            abuse_reports_per_hour: num("abuse_reports_per_hour")?.max(1) as u32,
            flags: crate::domain::trust::signals::Thresholds {
                orders_per_minute: num("flag_orders_per_minute")? as u32,
                cancel_ratio: percent("flag_cancel_ratio")?,
                success_rate: percent("flag_success_rate")?,
                min_orders: num("flag_min_orders")?.max(1) as u32,
                accounts_per_address: num("flag_accounts_per_ip")? as u32,
                window: dur("flag_window")?.max(60),
            },
            oidc: oidc_providers(layers, oidc_allow_insecure)?,
            oidc_allow_insecure,
            telegram_bot_token: get("telegram_bot_token").trim().to_string(),
            telegram_api: match get("telegram_api").trim().trim_end_matches('/') {
                u if u.starts_with("https://") || u.starts_with("http://") => u.to_string(),
                u => {
                    return Err(format!(
                        "setting `telegram_api`: `{u}` must start with http(s)://"
                    ))
                }
            },
            telegram_webhook: parse_bool(&get("telegram_webhook"))
                .map_err(named("telegram_webhook"))?,
            dev_clock: parse_bool(&get("dev_clock")).map_err(named("dev_clock"))?,
        };
        if cfg.telegram_webhook && cfg.telegram_bot_token.is_empty() {
            return Err("setting `telegram_webhook` needs `telegram_bot_token`".into());
        }
        if cfg.device_offline_after < 60 {
            return Err("setting `device_offline_after` must be at least 1m".into());
        }
        if cfg.early_cancel >= cfg.activation_ttl {
            return Err("setting `early_cancel` must be shorter than `activation_ttl`".into());
        }
        Ok(cfg)
    }

    pub fn db_path(&self) -> PathBuf {
        self.data.join("otpbox.sqlite3")
    }
}

/// Parses a 6- or 7-field cron expression (seconds first), with a helpful error.
pub fn parse_schedule(expr: &str) -> std::result::Result<cron::Schedule, String> {
    <cron::Schedule as std::str::FromStr>::from_str(expr).map_err(|e| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_plain_seconds_and_units() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("2m"), Ok(120));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert_eq!(parse_duration("24mo"), Ok(720 * 86_400));
        assert_eq!(parse_duration("7y"), Ok(7 * 365 * 86_400));
        assert!(parse_duration("mo").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-5s").is_err());
    }

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let mut l = Layers::default();
        l.file.insert("listen".into(), "127.0.0.1:1".into());
        l.file.insert("site_name".into(), "file".into());
        l.env.insert("listen".into(), "127.0.0.1:2".into());
        l.flags.insert("listen".into(), "127.0.0.1:3".into());
        let c = Config::from_layers(&l).unwrap();
        assert_eq!(c.listen.port(), 3);
        assert_eq!(c.site_name, "file");
        assert_eq!(c.sms_retention, 300);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let mut l = Layers::default();
        l.flags.insert("sms_retention".into(), "forever".into());
        let err = Config::from_layers(&l).unwrap_err();
        assert!(err.contains("sms_retention"), "{err}");
    }

    #[test]
    fn operator_share_is_a_percentage() {
        assert_eq!(parse_percent("70"), Ok(70));
        assert_eq!(parse_percent(" 55% "), Ok(55));
        assert_eq!(parse_percent("0"), Ok(0));
        assert_eq!(parse_percent("100"), Ok(100));
        for bad in ["101", "-1", "12.5", "half", ""] {
            assert!(parse_percent(bad).is_err(), "{bad}");
        }
        let mut l = Layers::default();
        assert_eq!(Config::from_layers(&l).unwrap().operator_share, 70);
        l.env.insert("operator_share".into(), "150".into());
        let err = Config::from_layers(&l).unwrap_err();
        assert!(err.contains("operator_share"), "{err}");
    }

    #[test]
    fn synchronous_is_normal_or_full() {
        let mut l = Layers::default();
        let c = Config::from_layers(&l).unwrap();
        assert_eq!(c.synchronous, crate::db::Synchronous::Normal);
        l.env.insert("synchronous".into(), " FULL ".into());
        let c = Config::from_layers(&l).unwrap();
        assert_eq!(c.synchronous, crate::db::Synchronous::Full);
        l.env.insert("synchronous".into(), "off".into());
        let err = Config::from_layers(&l).unwrap_err();
        assert!(err.contains("synchronous"), "{err}");
    }

    #[test]
    fn oidc_providers_come_from_the_settings_and_the_config_file() {
        let file = parse_config_file(
            "oidc.keycloak.issuer = https://id.example.org/realms/main\n\
             oidc.keycloak.client_id = otpbox\n\
             oidc.keycloak.client_secret = s3cret\n\
             oidc.keycloak.totp = false\n\
             oidc.authelia.issuer = \"https://auth.example.net\"\n\
             oidc.authelia.client_id = box\n\
             oidc.authelia.label = Home\n",
        )
        .unwrap();
        let mut l = Layers {
            file,
            ..Layers::default()
        };
        l.env
            .insert("oidc_issuer".into(), "https://accounts.google.com".into());
        l.env.insert("oidc_client_id".into(), "g".into());
        let c = Config::from_layers(&l).unwrap();
        let names: Vec<&str> = c.oidc.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["default", "authelia", "keycloak"]);
        assert_eq!(c.oidc[0].label, "accounts.google.com");
        assert!(c.oidc[0].totp);
        assert_eq!(c.oidc[1].label, "Home");
        assert_eq!(c.oidc[1].issuer, "https://auth.example.net");
        assert_eq!(c.oidc[2].client_secret, "s3cret");
        assert!(!c.oidc[2].totp);
        assert!(
            !format!("{:?}", c.oidc[2]).contains("s3cret"),
            "secret printed"
        );
    }

    #[test]
    fn oidc_issuers_must_be_https_unless_insecure_is_allowed() {
        let mut l = Layers::default();
        l.env
            .insert("oidc_issuer".into(), "http://127.0.0.1:9000".into());
        l.env.insert("oidc_client_id".into(), "c".into());
        let err = Config::from_layers(&l).unwrap_err();
        assert!(err.contains("oidc_issuer"), "{err}");
        l.env.insert("oidc_allow_insecure".into(), "true".into());
        assert_eq!(Config::from_layers(&l).unwrap().oidc.len(), 1);
        l.env.remove("oidc_client_id");
        let err = Config::from_layers(&l).unwrap_err();
        assert!(err.contains("oidc_client_id"), "{err}");
        for bad in [
            "oidc.default.issuer = https://x",
            "oidc.a b.issuer = https://x",
            "oidc.a.secret = x",
            "oidc.issuer = https://x",
        ] {
            assert!(parse_config_file(bad).is_err(), "{bad}");
        }
        let file = parse_config_file("oidc.lab.client_id = c").unwrap();
        let l = Layers {
            file,
            ..Layers::default()
        };
        let err = Config::from_layers(&l).unwrap_err();
        assert!(err.contains("oidc.lab") && err.contains("issuer"), "{err}");
    }

    #[test]
    fn config_file_rejects_unknown_keys() {
        assert!(parse_config_file("listen = 127.0.0.1:9\n# c\n").is_ok());
        let err = parse_config_file("nonsense = 1").unwrap_err();
        assert!(err.contains("unknown setting"));
    }
}
