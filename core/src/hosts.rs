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
use wrenn_extension_api::{ApiError, ServerContext};

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

impl HostsConfig {
    /// Defaults overridden by environment variables:
    /// `WRENN_HOST_MONITOR_INTERVAL_SECS`, `WRENN_HOST_UNREACHABLE_AFTER_SECS`,
    /// `WRENN_SCHED_CPU_OVERCOMMIT`, `WRENN_SCHED_RESERVE_CPUS`,
    /// `WRENN_SCHED_RESERVE_MEMORY_MB`, `WRENN_SCHED_PAUSED_WEIGHT`; `WRENN_DEV_MODE=1`
    /// allows insecure-dev agents on loopback. Unparsable values are reported together.
    pub fn from_env() -> Result<Self, String> {
        let mut c = Self::default();
        let mut problems = Vec::new();
        fn var<T: std::str::FromStr>(name: &str, problems: &mut Vec<String>) -> Option<T> {
            let v = std::env::var(name).ok()?;
            match v.trim().parse() {
                Ok(x) => Some(x),
                Err(_) => {
                    problems.push(format!("{name}={v:?} is not a valid value"));
                    None
                }
            }
        }
        if let Some(s) = var::<u64>("WRENN_HOST_MONITOR_INTERVAL_SECS", &mut problems) {
            c.monitor_interval = Duration::from_secs(s.max(1));
        }
        if let Some(s) = var::<u64>("WRENN_HOST_UNREACHABLE_AFTER_SECS", &mut problems) {
            c.unreachable_after = Duration::from_secs(s.max(1));
        }
        if let Some(v) = var::<f64>("WRENN_SCHED_CPU_OVERCOMMIT", &mut problems) {
            c.cpu_overcommit = v;
        }
        if let Some(v) = var::<f64>("WRENN_SCHED_RESERVE_CPUS", &mut problems) {
            c.reserve_cpus = v;
        }
        if let Some(v) = var::<u64>("WRENN_SCHED_RESERVE_MEMORY_MB", &mut problems) {
            c.reserve_memory_mb = v;
        }
        if let Some(v) = var::<f64>("WRENN_SCHED_PAUSED_WEIGHT", &mut problems) {
            c.paused_weight = v;
        }
        c.allow_insecure_dev = matches!(
            std::env::var("WRENN_DEV_MODE").as_deref(),
            Ok("1") | Ok("true") | Ok("yes")
        );
        if problems.is_empty() {
            Ok(c)
        } else {
            Err(problems.join("; "))
        }
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

    /// The service registered in `ctx` (a 500 if start-up did not register it).
    pub fn from_ctx(ctx: &ServerContext) -> Result<Arc<Self>, ApiError> {
        ctx.service::<Self>()
            .ok_or_else(|| ApiError::internal("the hosts service is not configured"))
    }
}

/// Host statuses (`hosts.status`).
pub mod status {
    pub const PENDING: &str = "pending";
    pub const ONLINE: &str = "online";
    pub const UNREACHABLE: &str = "unreachable";
    pub const DELETED: &str = "deleted";
}

/// Capsule statuses this module reads or writes (the capsules module owns the rest).
pub mod capsule_status {
    /// Statuses of capsules that occupy their host (all but paused, stopped, error, missing).
    pub const ACTIVE: &[&str] = &[
        "pending",
        "starting",
        "running",
        "pausing",
        "resuming",
        "snapshotting",
        "stopping",
    ];
    pub const PAUSED: &str = "paused";
    pub const MISSING: &str = "missing";
    pub const RUNNING: &str = "running";
    pub const STOPPED: &str = "stopped";
    /// Capsules that still exist on a host (live or paused): what blocks host deletion and
    /// becomes `missing` when the host goes silent.
    pub const LIVE: &[&str] = &[
        "pending",
        "starting",
        "running",
        "pausing",
        "paused",
        "resuming",
        "snapshotting",
        "stopping",
    ];
}
