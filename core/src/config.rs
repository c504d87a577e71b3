//! Configuration from the environment (and `.env`), with `--help` text from doc comments.
//!
//! Everything is validated at start-up by [`Config::validate`], which reports every problem at
//! once; the server refuses to start with a missing or weak secret.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The Wrenn control plane.
#[derive(Debug, Clone, Parser)]
#[command(name = "wrenn-cp", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the API server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Development: create a regular host and print its one-time registration token (for
    /// `wrenn-agent --register`). Refused unless WRENN_DEV_MODE=1.
    DevHostToken,
}

/// Control-plane settings. Each flag can also be given through the environment variable named
/// in its help.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL", default_value = "")]
    pub database_url: String,

    /// Redis connection URL.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Address to listen on; ":8000" means every interface, port 8000.
    #[arg(long, env = "WRENN_CP_LISTEN_ADDR", default_value = ":8000")]
    pub listen_addr: String,

    /// Secret for signing JWTs and state cookies (at least 32 bytes).
    #[arg(long, env = "JWT_SECRET", default_value = "", hide_env_values = true)]
    pub jwt_secret: String,

    /// AES-256-GCM key for secrets at rest, 64 hex characters.
    #[arg(
        long,
        env = "WRENN_ENCRYPTION_KEY",
        default_value = "",
        hide_env_values = true
    )]
    pub encryption_key: String,

    /// Public base URL of the dashboard and API (links in mail, OAuth redirects).
    #[arg(
        long,
        env = "WRENN_PUBLIC_URL",
        default_value = "http://localhost:8000"
    )]
    pub public_url: String,

    /// Domain for capsule port-proxy hosts (`{port}-{capsule}.{domain}`).
    #[arg(long, env = "WRENN_DOMAIN", default_value = "localhost")]
    pub domain: String,

    #[command(flatten)]
    pub smtp: SmtpConfig,

    /// Directory receiving one file per mail when SMTP_HOST is unset (the local mail sink).
    #[arg(long, env = "WRENN_MAIL_DIR", default_value = "./.wrenn-dev/mail")]
    pub mail_dir: PathBuf,

    #[command(flatten)]
    pub github: GithubConfig,

    #[command(flatten)]
    pub events: EventsConfig,

    #[command(flatten)]
    pub formatters: FormattersConfig,

    #[command(flatten)]
    pub capsules: crate::capsules::settings::CapsuleSettings,

    #[command(flatten)]
    pub builds: crate::builds::BuildSettings,

    #[command(flatten)]
    pub hosts: crate::hosts::HostsArgs,

    #[command(flatten)]
    pub rate_limits: crate::ratelimit::RateLimits,

    /// Directory of the dashboard build; default: `web/dist` in the working directory or
    /// next to the binary, whichever holds an `index.html`.
    #[arg(long, env = "WRENN_WEB_DIR")]
    pub web_dir: Option<PathBuf>,

    /// Bearer token that `GET /metrics` (Prometheus, OpenMetrics text) requires; the
    /// endpoint answers 404 while this is unset.
    #[arg(long, env = "WRENN_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Seconds shutdown waits for background work (workers, in-flight agent calls) to finish.
    #[arg(long, env = "WRENN_SHUTDOWN_DRAIN_SECS", default_value_t = 30)]
    pub shutdown_drain_secs: u64,

    /// Seconds between runs of the account purge worker (hard-deletes accounts soft-deleted
    /// more than 15 days ago).
    #[arg(long, env = "WRENN_PURGE_INTERVAL_SECS", default_value_t = 3600)]
    pub purge_interval_secs: u64,

    /// TESTS ONLY: hash passwords with tiny argon2id parameters. Never enable in production.
    #[arg(
        long,
        env = "WRENN_INSECURE_TEST_PASSWORD_HASHING",
        default_value_t = false
    )]
    pub insecure_test_password_hashing: bool,
}

/// Outgoing mail over SMTP; without SMTP_HOST mail goes to WRENN_MAIL_DIR.
#[derive(Debug, Clone, Args)]
pub struct SmtpConfig {
    /// SMTP server host name.
    #[arg(long = "smtp-host", env = "SMTP_HOST")]
    pub host: Option<String>,
    /// SMTP port (587 STARTTLS, 465 implicit TLS, anything else plain).
    #[arg(long = "smtp-port", env = "SMTP_PORT", default_value_t = 587)]
    pub port: u16,
    /// SMTP user name.
    #[arg(long = "smtp-username", env = "SMTP_USERNAME")]
    pub username: Option<String>,
    /// SMTP password.
    #[arg(long = "smtp-password", env = "SMTP_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Sender address.
    #[arg(
        long = "smtp-from",
        env = "SMTP_FROM",
        default_value = "Wrenn <no-reply@localhost>"
    )]
    pub from: String,
}

/// GitHub OAuth; enabled when the client id is set.
#[derive(Debug, Clone, Args)]
pub struct GithubConfig {
    /// GitHub OAuth app client id.
    #[arg(long = "github-client-id", env = "OAUTH_GITHUB_CLIENT_ID")]
    pub client_id: Option<String>,
    /// GitHub OAuth app client secret.
    #[arg(
        long = "github-client-secret",
        env = "OAUTH_GITHUB_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub client_secret: Option<String>,
    /// Authorize endpoint (overridable for tests).
    #[arg(
        long = "github-authorize-url",
        env = "OAUTH_GITHUB_AUTHORIZE_URL",
        default_value = "https://github.com/login/oauth/authorize"
    )]
    pub authorize_url: String,
    /// Token endpoint (overridable for tests).
    #[arg(
        long = "github-token-url",
        env = "OAUTH_GITHUB_TOKEN_URL",
        default_value = "https://github.com/login/oauth/access_token"
    )]
    pub token_url: String,
    /// REST API base serving /user and /user/emails (overridable for tests).
    #[arg(
        long = "github-api-url",
        env = "OAUTH_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    pub api_url: String,
}

/// The event stream's consumers and notification channel delivery.
#[derive(Debug, Clone, Args)]
pub struct EventsConfig {
    /// A stream entry left pending this long (its consumer died, or its handler failed) is
    /// claimed and handled again, in milliseconds.
    #[arg(long, env = "WRENN_EVENTS_CLAIM_IDLE_MS", default_value_t = 30_000)]
    pub claim_idle_ms: u64,

    /// After this many failed attempts a stream entry is logged and dropped by a consumer
    /// (extension hooks; channels retry on their own schedule).
    #[arg(long, env = "WRENN_EVENTS_MAX_ATTEMPTS", default_value_t = 100)]
    pub max_attempts: u64,

    /// Seconds before each retry of a failed channel delivery, comma separated; after the
    /// last retry fails the event is dropped for that channel (and logged).
    #[arg(long, env = "WRENN_CHANNELS_RETRY_DELAYS", default_value = "10,30")]
    pub channel_retry_delays: String,

    /// Timeout of one channel delivery request, in milliseconds.
    #[arg(long, env = "WRENN_CHANNELS_TIMEOUT_MS", default_value_t = 10_000)]
    pub channel_timeout_ms: u64,

    /// Let channels deliver to loopback, private and link-local addresses (cloud metadata
    /// addresses stay refused). Off by default: receivers must be on the public internet.
    #[arg(long, env = "WRENN_CHANNELS_ALLOW_INTERNAL", default_value_t = false,
          value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub channel_allow_internal: bool,

    /// Channel delivery attempts in flight at once, per control plane.
    #[arg(long, env = "WRENN_CHANNELS_CONCURRENCY", default_value_t = 64)]
    pub channel_concurrency: usize,

    /// Days delivery attempts are kept for `GET /v1/channels/{id}/deliveries`.
    #[arg(
        long,
        env = "WRENN_CHANNELS_DELIVERY_RETENTION_DAYS",
        default_value_t = 7
    )]
    pub channel_retention_days: i64,
}

/// WebAssembly notification formatters loaded at run time.
#[derive(Debug, Clone, Args, Default)]
pub struct FormattersConfig {
    /// Directory of formatters, one subdirectory each (`manifest.json` + component); watched
    /// for changes. Unset: only the built-in text.
    #[arg(long = "formatters-dir", env = "WRENN_FORMATTERS_DIR")]
    pub dir: Option<PathBuf>,

    /// How often the formatters directory is checked for changes, in milliseconds.
    #[arg(
        long = "formatters-poll-ms",
        env = "WRENN_FORMATTERS_POLL_MS",
        default_value_t = 2000
    )]
    pub poll_ms: u64,

    /// Fuel (about one unit per wasm instruction) one formatter call may use.
    #[arg(
        long = "formatter-fuel",
        env = "WRENN_FORMATTER_FUEL",
        default_value_t = 200_000_000
    )]
    pub fuel: u64,

    /// Wall-clock deadline of one formatter call, in milliseconds.
    #[arg(
        long = "formatter-deadline-ms",
        env = "WRENN_FORMATTER_DEADLINE_MS",
        default_value_t = 100
    )]
    pub deadline_ms: u64,

    /// Linear memory one formatter call may use, in MiB.
    #[arg(
        long = "formatter-memory-mb",
        env = "WRENN_FORMATTER_MEMORY_MB",
        default_value_t = 32
    )]
    pub memory_mb: usize,
}

impl FormattersConfig {
    pub fn limits(&self) -> crate::formatters::host::Limits {
        crate::formatters::host::Limits {
            fuel: self.fuel,
            deadline: std::time::Duration::from_millis(self.deadline_ms),
            memory_bytes: self.memory_mb << 20,
        }
    }
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            claim_idle_ms: 30_000,
            max_attempts: 100,
            channel_retry_delays: "10,30".into(),
            channel_timeout_ms: 10_000,
            channel_allow_internal: false,
            channel_concurrency: 64,
            channel_retention_days: 7,
        }
    }
}

impl EventsConfig {
    /// The retry delays, or what is wrong with them.
    pub fn retry_delays(&self) -> Result<Vec<std::time::Duration>, String> {
        let bad = || {
            format!(
                "WRENN_CHANNELS_RETRY_DELAYS {:?} must be comma-separated seconds, e.g. 10,30",
                self.channel_retry_delays
            )
        };
        if self.channel_retry_delays.trim().is_empty() {
            return Ok(Vec::new());
        }
        self.channel_retry_delays
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0 && *v <= 86_400.0)
                    .map(std::time::Duration::from_secs_f64)
                    .ok_or_else(bad)
            })
            .collect()
    }

    /// The consumer settings every stream consumer uses.
    pub fn consumer(&self) -> crate::events::consumer::ConsumerSettings {
        crate::events::consumer::ConsumerSettings {
            claim_idle: std::time::Duration::from_millis(self.claim_idle_ms),
            max_attempts: self.max_attempts,
            ..Default::default()
        }
    }

    /// The channel delivery settings (call after [`Config::validate`]).
    pub fn channels(&self) -> crate::channels::ChannelSettings {
        crate::channels::ChannelSettings {
            retry_delays: self.retry_delays().unwrap_or_default(),
            timeout: std::time::Duration::from_millis(self.channel_timeout_ms),
            allow_internal: self.channel_allow_internal,
            concurrency: self.channel_concurrency,
            ..Default::default()
        }
        .with_retention(self.channel_retention_days)
    }
}

impl Config {
    /// Parses configuration from the environment only (no command-line), e.g. for embedders.
    pub fn from_env() -> Self {
        Cli::parse_from(["wrenn-cp"]).config
    }

    /// How long shutdown waits for background work.
    pub fn drain_deadline(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.shutdown_drain_secs)
    }

    /// Checks every setting; returns all problems at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.database_url.is_empty() {
            problems.push("DATABASE_URL is not set".to_string());
        }
        if self.redis_url.is_empty() {
            problems.push("REDIS_URL is not set".to_string());
        }
        if let Err(e) = self.listen_socket_addr() {
            problems.push(e);
        }
        if self.jwt_secret.len() < 32 {
            problems.push("JWT_SECRET must be set and at least 32 bytes long".to_string());
        }
        if self.encryption_key_bytes().is_none() {
            problems.push("WRENN_ENCRYPTION_KEY must be 64 hex characters (32 bytes)".to_string());
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            problems.push("WRENN_PUBLIC_URL must start with http:// or https://".to_string());
        }
        if self.domain.is_empty() {
            problems.push("WRENN_DOMAIN must not be empty".to_string());
        }
        if self.github.client_id.is_some() && self.github.client_secret.is_none() {
            problems.push(
                "OAUTH_GITHUB_CLIENT_SECRET is required when OAUTH_GITHUB_CLIENT_ID is set"
                    .to_string(),
            );
        }
        if let Err(e) = self.events.retry_delays() {
            problems.push(e);
        }
        if self.events.claim_idle_ms < 100 {
            problems.push("WRENN_EVENTS_CLAIM_IDLE_MS must be at least 100".to_string());
        }
        if self.events.max_attempts == 0 {
            problems.push("WRENN_EVENTS_MAX_ATTEMPTS must be at least 1".to_string());
        }
        if self.events.channel_concurrency == 0 || self.events.channel_timeout_ms == 0 {
            problems.push(
                "WRENN_CHANNELS_CONCURRENCY and WRENN_CHANNELS_TIMEOUT_MS must be positive"
                    .to_string(),
            );
        }
        if self.formatters.fuel == 0
            || self.formatters.deadline_ms == 0
            || self.formatters.memory_mb == 0
            || self.formatters.poll_ms < 100
        {
            problems.push(
                "WRENN_FORMATTER_FUEL, _DEADLINE_MS and _MEMORY_MB must be positive and \
                 WRENN_FORMATTERS_POLL_MS at least 100"
                    .to_string(),
            );
        }
        if let Some(dir) = &self.formatters.dir {
            if !dir.is_dir() {
                problems.push(format!(
                    "WRENN_FORMATTERS_DIR {} is not a directory",
                    dir.display()
                ));
            }
        }
        problems.extend(self.hosts.problems());
        if self.smtp.host.is_some() && self.smtp.from.parse::<lettre::message::Mailbox>().is_err() {
            problems.push("SMTP_FROM is not a valid mailbox".to_string());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The listen address; a bare ":port" listens on every interface.
    pub fn listen_socket_addr(&self) -> Result<SocketAddr, String> {
        let addr = if self.listen_addr.starts_with(':') {
            format!("0.0.0.0{}", self.listen_addr)
        } else {
            self.listen_addr.clone()
        };
        addr.parse().map_err(|_| {
            format!(
                "WRENN_CP_LISTEN_ADDR {:?} is not host:port",
                self.listen_addr
            )
        })
    }

    pub fn encryption_key_bytes(&self) -> Option<[u8; 32]> {
        let bytes = hex::decode(&self.encryption_key).ok()?;
        bytes.try_into().ok()
    }

    /// Public URL without a trailing slash.
    pub fn public_base(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_problem_at_once() {
        let mut config = Config::from_env();
        config.database_url = String::new();
        config.jwt_secret = "short".into();
        config.encryption_key = "zz".into();
        config.listen_addr = "nonsense".into();
        let problems = config.validate().unwrap_err();
        assert!(problems.len() >= 4, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("JWT_SECRET")));
        assert!(problems.iter().any(|p| p.contains("WRENN_ENCRYPTION_KEY")));
    }

    #[test]
    fn bare_port_listens_everywhere() {
        let mut config = Config::from_env();
        config.listen_addr = ":8000".into();
        assert_eq!(
            config.listen_socket_addr().unwrap().to_string(),
            "0.0.0.0:8000"
        );
    }
}
