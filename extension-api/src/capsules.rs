//! [`CapsuleService`]: what extensions may do with a team's capsules, without touching core's
//! tables. Reached through [`ServerContext::capsules`](crate::ServerContext::capsules).

use crate::auth::Principal;
use crate::error::ApiError;
use crate::hooks::TeamUsage;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use tokio::io::{AsyncRead, AsyncWrite};
use uuid::Uuid;

/// Where a capsule is in its life: the states of core's capsule state machine, named as the
/// REST API names them (API.md "Capsules"). Serialized as those snake_case names.
///
/// New states may be added in a minor release, so a `match` needs a `_` arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CapsuleState {
    /// Admitted, waiting for its host.
    Pending,
    /// Being created on its host.
    Starting,
    Running,
    Pausing,
    /// Paused: its memory kept on the host; resumable.
    Paused,
    Resuming,
    /// Being saved as a template.
    Snapshotting,
    Stopping,
    /// Destroyed; nothing more happens to it.
    Stopped,
    /// Its host is unreachable.
    Missing,
    /// An operation failed; `reason` says which.
    Error,
}

impl CapsuleState {
    /// Every state, in the order of the state machine.
    pub const ALL: &'static [CapsuleState] = &[
        CapsuleState::Pending,
        CapsuleState::Starting,
        CapsuleState::Running,
        CapsuleState::Pausing,
        CapsuleState::Paused,
        CapsuleState::Resuming,
        CapsuleState::Snapshotting,
        CapsuleState::Stopping,
        CapsuleState::Stopped,
        CapsuleState::Missing,
        CapsuleState::Error,
    ];

    /// The API's name of the state (`running`, `paused`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CapsuleState::Pending => "pending",
            CapsuleState::Starting => "starting",
            CapsuleState::Running => "running",
            CapsuleState::Pausing => "pausing",
            CapsuleState::Paused => "paused",
            CapsuleState::Resuming => "resuming",
            CapsuleState::Snapshotting => "snapshotting",
            CapsuleState::Stopping => "stopping",
            CapsuleState::Stopped => "stopped",
            CapsuleState::Missing => "missing",
            CapsuleState::Error => "error",
        }
    }
}

impl fmt::Display for CapsuleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no [`CapsuleState`] (from [`CapsuleState::from_str`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCapsuleState(String);

impl UnknownCapsuleState {
    /// The name that was not recognised.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UnknownCapsuleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown capsule state {:?}", self.0)
    }
}

impl std::error::Error for UnknownCapsuleState {}

impl FromStr for CapsuleState {
    type Err = UnknownCapsuleState;

    /// Parses the API's name of a state (`"running"` → [`CapsuleState::Running`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CapsuleState::ALL
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownCapsuleState(s.to_string()))
    }
}

/// One capsule, as an extension sees it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CapsuleSummary {
    pub id: Uuid,
    pub team_id: Uuid,
    /// The API's status name (`running`, `paused`, ...; API.md "Capsules"). Kept for
    /// compatibility: prefer [`state`](Self::state), the same value typed.
    pub status: String,
    /// Where the capsule is in its life; `status` is its name. (Not serialized: `status`
    /// carries it in JSON.)
    #[serde(skip)]
    pub state: CapsuleState,
    pub template: String,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub created_at: DateTime<Utc>,
    /// Disk size in MiB.
    pub disk_mb: u64,
    /// Why the capsule is in its status (error text, `ttl_expired`, ...); may be empty.
    pub reason: String,
    /// When it last started running (create or resume), if it has.
    pub started_at: Option<DateTime<Utc>>,
    /// The version of envd inside, as the agent reported it (empty until it started).
    pub envd_version: String,
}

impl CapsuleSummary {
    /// A summary in `state`; `status` is set to its name. The other fields start empty.
    pub fn with_state(
        id: Uuid,
        team_id: Uuid,
        state: CapsuleState,
        template: String,
        vcpus: u32,
        memory_mb: u64,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            team_id,
            status: state.as_str().to_string(),
            state,
            template,
            vcpus,
            memory_mb,
            created_at,
            disk_mb: 0,
            reason: String::new(),
            started_at: None,
            envd_version: String::new(),
        }
    }

    /// A summary whose state is given by its API name. A name that is no [`CapsuleState`]
    /// becomes [`CapsuleState::Error`] (with `status` kept as given); prefer
    /// [`with_state`](Self::with_state).
    pub fn new(
        id: Uuid,
        team_id: Uuid,
        status: String,
        template: String,
        vcpus: u32,
        memory_mb: u64,
        created_at: DateTime<Utc>,
    ) -> Self {
        let state = status.parse().unwrap_or(CapsuleState::Error);
        Self {
            status,
            ..Self::with_state(id, team_id, state, template, vcpus, memory_mb, created_at)
        }
    }
}

/// What to create: every field optional, with the REST API's defaults
/// (`POST /v1/capsules`). Build it with `CapsuleSpec::default()` and set fields.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CapsuleSpec {
    /// Template name; `None` → the configured default base template.
    pub template: Option<String>,
    pub vcpus: Option<u32>,
    pub memory_mb: Option<u32>,
    pub disk_mb: Option<u32>,
    /// Core's inactivity auto-pause in seconds; `None`/0 disables it.
    pub timeout_sec: Option<u32>,
    /// The capsule's default environment, seen by every process envd starts.
    pub env_vars: BTreeMap<String, String>,
    /// The user processes run as when a call names none (default root).
    pub default_user: Option<String>,
    /// The working directory processes start in when a call names none.
    pub default_workdir: Option<String>,
    /// The egress policy, as the REST API's `network` object
    /// (`{"mode":"allow_all"|"deny_all"|"allow_list","allow":[...]}`); `None` → allow all.
    /// Validated as `POST /v1/capsules` validates it (400 `invalid_request`).
    pub network: Option<serde_json::Value>,
}

/// One metrics sample of a capsule.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CapsuleMetric {
    pub timestamp_unix: i64,
    /// CPU use, percent of the capsule's vCPUs.
    pub cpu_pct: f64,
    pub mem_bytes: u64,
    pub disk_bytes: u64,
}

impl CapsuleMetric {
    pub fn new(timestamp_unix: i64, cpu_pct: f64, mem_bytes: u64, disk_bytes: u64) -> Self {
        Self {
            timestamp_unix,
            cpu_pct,
            mem_bytes,
            disk_bytes,
        }
    }
}

/// A byte stream to a TCP port inside a capsule ([`CapsuleService::open_port`]).
pub trait PortStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> PortStream for T {}

fn not_provided(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        format!("this control plane does not provide {what} to extensions"),
    )
}

/// Capsule operations on behalf of an extension. Each one is the same guarded operation as
/// the REST API's (same state machine, events and audit entries, with the extension named
/// as the actor); a capsule of another team is `404 not_found`, a state that does not allow
/// the operation `409 invalid_state`.
///
/// Core implements every method. Methods added after the first release have a default that
/// answers `501 not_implemented`, so implementations written against an older contract keep
/// compiling.
#[async_trait::async_trait]
pub trait CapsuleService: Send + Sync + 'static {
    /// What the team's capsules hold now (the figures the admission check uses).
    async fn usage(&self, team_id: Uuid) -> Result<TeamUsage, ApiError>;

    /// The team's capsules that still exist (all but `stopped`), newest first.
    async fn list(&self, team_id: Uuid) -> Result<Vec<CapsuleSummary>, ApiError>;

    /// Pauses a running capsule (memory kept). `extension` names the actor in the audit log.
    async fn pause(&self, extension: &str, team_id: Uuid, capsule_id: Uuid)
        -> Result<(), ApiError>;

    /// Destroys a capsule in any settled state.
    async fn destroy(
        &self,
        extension: &str,
        team_id: Uuid,
        capsule_id: Uuid,
    ) -> Result<(), ApiError>;

    /// One of the team's capsules, in any status (`stopped` ones too, while core keeps them).
    async fn get(&self, team_id: Uuid, capsule_id: Uuid) -> Result<CapsuleSummary, ApiError> {
        let _ = (team_id, capsule_id);
        Err(not_provided("capsule lookups"))
    }

    /// Creates a capsule for `by`'s team, as `POST /v1/capsules` does (limits, admission
    /// hooks, scheduling; `by` is the actor), and answers once it runs.
    async fn create(&self, by: &Principal, spec: CapsuleSpec) -> Result<CapsuleSummary, ApiError> {
        let _ = (by, spec);
        Err(not_provided("capsule creation"))
    }

    /// Pauses a running capsule of `by`'s team, with `by` as the actor.
    async fn pause_as(&self, by: &Principal, capsule_id: Uuid) -> Result<(), ApiError> {
        let _ = (by, capsule_id);
        Err(not_provided("pausing as a caller"))
    }

    /// Resumes a paused capsule of `by`'s team and answers once it runs.
    async fn resume(&self, by: &Principal, capsule_id: Uuid) -> Result<CapsuleSummary, ApiError> {
        let _ = (by, capsule_id);
        Err(not_provided("resuming"))
    }

    /// Destroys a capsule of `by`'s team, with `by` as the actor.
    async fn destroy_as(&self, by: &Principal, capsule_id: Uuid) -> Result<(), ApiError> {
        let _ = (by, capsule_id);
        Err(not_provided("destroying as a caller"))
    }

    /// The capsule's metrics over `range` (`5m`, `10m`, `1h`, `2h`, `6h`, `24h`), oldest first.
    async fn metrics(
        &self,
        team_id: Uuid,
        capsule_id: Uuid,
        range: &str,
    ) -> Result<Vec<CapsuleMetric>, ApiError> {
        let _ = (team_id, capsule_id, range);
        Err(not_provided("capsule metrics"))
    }

    /// A byte stream to `127.0.0.1:port` inside a running capsule of the team (the port
    /// proxy's tunnel); counts as activity. `409 invalid_state` unless it runs, `502` when
    /// nothing listens there.
    async fn open_port(
        &self,
        team_id: Uuid,
        capsule_id: Uuid,
        port: u16,
    ) -> Result<Box<dyn PortStream>, ApiError> {
        let _ = (team_id, capsule_id, port);
        Err(not_provided("port tunnels"))
    }
}

/// Whether an HTTP header is hop-by-hop (RFC 9110 §7.6.1) and so must not be forwarded by a
/// proxy to a capsule port ([`CapsuleService::open_port`]). On an upgrade (WebSocket)
/// `connection` and `upgrade` are forwarded. Proxies also drop their own credential headers.
pub fn is_hop_by_hop(name: &str, upgrade: bool) -> bool {
    match name {
        "connection" | "upgrade" => !upgrade,
        "keep-alive" | "proxy-connection" | "te" | "trailer" | "transfer-encoding" => true,
        _ => false,
    }
}

#[cfg(test)]
mod state_tests {
    use super::{CapsuleState, CapsuleSummary};
    use chrono::Utc;
    use uuid::Uuid;

    #[test]
    fn every_state_round_trips_through_its_name_and_serde() {
        for &st in CapsuleState::ALL {
            assert_eq!(st.as_str().parse::<CapsuleState>(), Ok(st));
            assert_eq!(st.to_string(), st.as_str());
            let json = serde_json::to_string(&st).unwrap();
            assert_eq!(json, format!("\"{}\"", st.as_str()));
            assert_eq!(serde_json::from_str::<CapsuleState>(&json).unwrap(), st);
        }
        let err = "hibernating".parse::<CapsuleState>().unwrap_err();
        assert_eq!(err.name(), "hibernating");
        assert!(serde_json::from_str::<CapsuleState>("\"Running\"").is_err());
    }

    #[test]
    fn a_summary_keeps_status_and_state_together() {
        let at = Utc::now();
        let s = CapsuleSummary::with_state(
            Uuid::nil(),
            Uuid::nil(),
            CapsuleState::Paused,
            "t".into(),
            1,
            256,
            at,
        );
        assert_eq!(
            (s.status.as_str(), s.state),
            ("paused", CapsuleState::Paused)
        );
        let s = CapsuleSummary::new(
            Uuid::nil(),
            Uuid::nil(),
            "running".into(),
            "t".into(),
            1,
            256,
            at,
        );
        assert_eq!(s.state, CapsuleState::Running);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["status"], "running");
        assert!(json.get("state").is_none());
    }
}

#[cfg(test)]
mod hop_by_hop_tests {
    use super::is_hop_by_hop;

    #[test]
    fn hop_by_hop_headers_and_the_upgrade_exception() {
        assert!(is_hop_by_hop("transfer-encoding", false));
        assert!(is_hop_by_hop("connection", false));
        assert!(!is_hop_by_hop("connection", true));
        assert!(!is_hop_by_hop("upgrade", true));
        assert!(is_hop_by_hop("te", true));
        assert!(!is_hop_by_hop("content-type", false));
    }
}
