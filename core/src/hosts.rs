//! The host side of the control plane: registry, registration, mutual TLS, liveness and
//! placement.
//!
//! # Layout
//!
//! - [`ca`]: the internal CA (stored sealed in PostgreSQL) issuing host server certificates
//!   and the control plane's client certificate.
//! - [`token`]: host JWTs (`typ=host`, 7 d), registration and refresh token generation, and
//!   the [`token::HostAuth`] extractor for agent routes (`X-Host-Token`).
//! - [`registration`]: one-time registration tokens → credentials; refresh rotation.
//! - [`pool`]: [`pool::HostPool`], cached gRPC channels to agents over mTLS (or plaintext for
//!   explicit `insecure-dev` loopback agents).
//! - [`scheduler`]: [`scheduler::pick_host`], least-loaded placement with admission control.
//! - [`monitor`]: marks silent hosts unreachable (their capsules `missing`) and reconciles
//!   capsules when a host returns.
//!
//! Data lives in [`crate::db::hosts`]; routes in [`crate::http::hosts`]. Start-up builds one
//! [`Hosts`] service (config + CA + pool), registers it in the `ServerContext` with
//! `insert_service`, and spawns [`monitor::run`].

pub mod ca;
pub mod monitor;
pub mod pool;
pub mod registration;
pub mod scheduler;
pub mod token;

use chrono::Duration as ChronoDuration;
use std::sync::Arc;
use std::time::Duration;

/// Tunables of the host side. Defaults are production values; tests shorten the intervals.
#[derive(Debug, Clone)]
pub struct HostsConfig {
    /// How often the monitor looks for silent hosts (15 s).
    pub monitor_interval: Duration,
    /// Silence after which a host is `unreachable` (90 s).
    pub unreachable_after: Duration,
    pub registration_token_ttl: ChronoDuration,
    pub host_token_ttl: ChronoDuration,
    pub refresh_token_ttl: ChronoDuration,
    pub host_cert_ttl: ChronoDuration,
    /// Lifetime of the control plane's client certificate; renewed after two thirds.
    pub client_cert_ttl: ChronoDuration,
    /// vCPUs a host may promise per physical core.
    pub cpu_overcommit: f64,
    /// Cores kept for the host itself (agent, runtime, OS).
    pub reserve_cpus: f64,
    /// Memory kept for the host itself.
    pub reserve_memory_mb: u64,
    /// Share of a paused capsule's vCPUs/memory counted against its host (it must fit again
    /// when resumed, but holds nothing while paused).
    pub paused_weight: f64,
    /// Accept agents registering with `transport = "insecure-dev"` (plaintext gRPC) — only
    /// ever for loopback addresses, and only when this is on (development mode).
    pub allow_insecure_dev: bool,
    /// Deadline of control-plane → agent calls made by the host side (reconciliation,
    /// forced deletion).
    pub rpc_timeout: Duration,
}

impl Default for HostsConfig {
    fn default() -> Self {
        Self {
            monitor_interval: Duration::from_secs(15),
            unreachable_after: Duration::from_secs(90),
            registration_token_ttl: ChronoDuration::hours(1),
            host_token_ttl: ChronoDuration::days(7),
            refresh_token_ttl: ChronoDuration::days(60),
            host_cert_ttl: ChronoDuration::days(7),
            client_cert_ttl: ChronoDuration::hours(24),
            cpu_overcommit: 4.0,
            reserve_cpus: 0.5,
            reserve_memory_mb: 1024,
            paused_weight: 0.25,
            allow_insecure_dev: false,
            rpc_timeout: Duration::from_secs(10),
        }
    }
}

/// The host-side settings of the clap [`Config`](crate::Config) tree; turned into a
/// [`HostsConfig`] by [`HostsArgs::to_config`].
#[derive(Debug, Clone, clap::Args)]
pub struct HostsArgs {
    /// How often the monitor looks for silent hosts, in seconds.
    #[arg(long = "host-monitor-interval-secs", env = "WRENN_HOST_MONITOR_INTERVAL_SECS",
          default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    pub monitor_interval_secs: u64,
    /// Silence after which a host is `unreachable`, in seconds.
    #[arg(long = "host-unreachable-after-secs", env = "WRENN_HOST_UNREACHABLE_AFTER_SECS",
          default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..))]
    pub unreachable_after_secs: u64,
    /// vCPUs a host may promise per physical core.
    #[arg(
        long = "sched-cpu-overcommit",
        env = "WRENN_SCHED_CPU_OVERCOMMIT",
        default_value_t = 4.0
    )]
    pub cpu_overcommit: f64,
    /// Cores kept for the host itself (agent, runtime, OS).
    #[arg(
        long = "sched-reserve-cpus",
        env = "WRENN_SCHED_RESERVE_CPUS",
        default_value_t = 0.5
    )]
    pub reserve_cpus: f64,
    /// Memory kept for the host itself, in MiB.
    #[arg(
        long = "sched-reserve-memory-mb",
        env = "WRENN_SCHED_RESERVE_MEMORY_MB",
        default_value_t = 1024
    )]
    pub reserve_memory_mb: u64,
    /// Share of a paused capsule's vCPUs and memory counted against its host.
    #[arg(
        long = "sched-paused-weight",
        env = "WRENN_SCHED_PAUSED_WEIGHT",
        default_value_t = 0.25
    )]
    pub paused_weight: f64,
    /// Development mode: accept plaintext (`insecure-dev`) agents on loopback addresses.
    #[arg(long = "dev-mode", env = "WRENN_DEV_MODE", default_value = "false",
          value_parser = clap::builder::FalseyValueParser::new())]
    pub dev_mode: bool,
}

impl Default for HostsArgs {
    fn default() -> Self {
        let d = HostsConfig::default();
        Self {
            monitor_interval_secs: d.monitor_interval.as_secs(),
            unreachable_after_secs: d.unreachable_after.as_secs(),
            cpu_overcommit: d.cpu_overcommit,
            reserve_cpus: d.reserve_cpus,
            reserve_memory_mb: d.reserve_memory_mb,
            paused_weight: d.paused_weight,
            dev_mode: d.allow_insecure_dev,
        }
    }
}

impl HostsArgs {
    /// The settings with the fixed production lifetimes of tokens and certificates.
    pub fn to_config(&self) -> HostsConfig {
        HostsConfig {
            monitor_interval: Duration::from_secs(self.monitor_interval_secs),
            unreachable_after: Duration::from_secs(self.unreachable_after_secs),
            cpu_overcommit: self.cpu_overcommit,
            reserve_cpus: self.reserve_cpus,
            reserve_memory_mb: self.reserve_memory_mb,
            paused_weight: self.paused_weight,
            allow_insecure_dev: self.dev_mode,
            ..HostsConfig::default()
        }
    }

    /// Problems a type cannot express (reported with the rest of [`crate::Config::validate`]).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.cpu_overcommit.is_nan() || self.cpu_overcommit <= 0.0 {
            problems.push("WRENN_SCHED_CPU_OVERCOMMIT must be greater than 0".into());
        }
        if self.reserve_cpus.is_nan() || self.reserve_cpus < 0.0 {
            problems.push("WRENN_SCHED_RESERVE_CPUS must not be negative".into());
        }
        if !(0.0..=1.0).contains(&self.paused_weight) {
            problems.push("WRENN_SCHED_PAUSED_WEIGHT must be between 0 and 1".into());
        }
        problems
    }
}

/// The host-side services, registered once in the `ServerContext`.
#[derive(Debug)]
pub struct Hosts {
    pub config: HostsConfig,
    pub ca: Arc<ca::InternalCa>,
    pub pool: Arc<pool::HostPool>,
}

impl Hosts {
    /// Loads (or creates) the CA and builds the pool.
    pub async fn init(
        db: &sqlx::PgPool,
        encryption_key: &[u8; 32],
        config: HostsConfig,
    ) -> Result<Arc<Self>, ca::CaError> {
        let ca = Arc::new(ca::InternalCa::load_or_create(db, encryption_key).await?);
        let pool = Arc::new(pool::HostPool::new(db.clone(), ca.clone(), &config)?);
        Ok(Arc::new(Self { config, ca, pool }))
    }
}

/// Where a host is in its life (`hosts.status`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    /// Created, waiting for its agent to register with the one-time token.
    Pending,
    /// Registered and heartbeating.
    Online,
    /// Silent for longer than the unreachable threshold; its capsules are `missing`.
    Unreachable,
    /// Soft-deleted.
    Deleted,
}

impl HostStatus {
    pub const ALL: [HostStatus; 4] = [
        HostStatus::Pending,
        HostStatus::Online,
        HostStatus::Unreachable,
        HostStatus::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HostStatus::Pending => "pending",
            HostStatus::Online => "online",
            HostStatus::Unreachable => "unreachable",
            HostStatus::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for HostStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

crate::sql_text_enum!(HostStatus);
