//! The wire shapes of the host routes (API.md "Hosts"): a host, its last load reading, the
//! answers carrying a registration token or agent credentials, the delete preview and the
//! heartbeat reply. Timestamps are RFC 3339 UTC with whole seconds.

use crate::db::hosts::HostRow;
use crate::hosts::HostStatus;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use wrenn_extension_api::ids;

pub(super) fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A host: `pending` until its agent registers with the one-time token.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Host {
    /// `host_…`
    pub id: String,
    /// `regular` or `byoc`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `tm_…` of a BYOC host's team; null for regular hosts.
    pub team_id: Option<String>,
    pub provider: Option<String>,
    pub availability_zone: Option<String>,
    pub status: HostStatus,
    pub arch: Option<String>,
    pub cpu_cores: Option<i32>,
    pub memory_mb: Option<i64>,
    pub disk_gb: Option<i64>,
    /// The agent's advertised `ip:port`; null before it registers.
    pub address: Option<String>,
    /// `mtls`, or `insecure-dev` (development only).
    pub transport: String,
    /// What the agent reported (runtime probe): `runtime`, `runtime_version`, `platforms`,
    /// `network_modes`, `snapshots`, … every field may be absent.
    #[schema(value_type = Object)]
    pub capabilities: Value,
    pub agent_version: Option<String>,
    pub tags: Vec<String>,
    pub cert_expires_at: Option<String>,
    pub created_at: String,
    pub registered_at: Option<String>,
    pub last_heartbeat_at: Option<String>,
    /// The agent's last reading with the time it arrived; null before its first heartbeat
    /// with one.
    #[schema(value_type = Option<HostLoad>)]
    pub load: Option<Value>,
}

/// A host's load as its agent last reported it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HostLoad {
    /// Busy share of all CPUs since the previous beat, 0–100.
    pub cpu_pct: f64,
    /// The 1-minute load average.
    pub load_avg_1m: f64,
    pub mem_total_mb: u64,
    pub mem_available_mb: u64,
    /// The filesystem of the agent's `WRENN_DIR`.
    pub disk_total_mb: u64,
    pub disk_available_mb: u64,
    pub capsules_running: u32,
    pub capsules_paused: u32,
    /// What the host's warm pools hold at full size: capacity the scheduler counts as used.
    pub pool_vcpus: u32,
    pub pool_memory_mb: u64,
    /// Pooled capsules booted and waiting to be handed to a create.
    pub pool_ready: u32,
    /// Each warm pool of the host.
    pub pools: Vec<HostPool>,
    /// When the control plane received it.
    pub sampled_at: String,
}

/// One warm pool of a host: its capsules' template and resources, and how many are ready.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HostPool {
    /// The template's team (`tm_...`; the platform's for a base image).
    pub team_id: String,
    /// `tpl_...`.
    pub template_id: String,
    pub vcpus: u32,
    pub memory_mb: u32,
    pub disk_mb: u32,
    pub ready: u32,
}

/// The agent reports a pool's ids as its directory names (base36 without a prefix); the API
/// shows them with their prefixes, as everywhere else.
fn prefix_pool_ids(pools: &mut Value) {
    for pool in pools.as_array_mut().into_iter().flatten() {
        for (key, prefix) in [("team_id", ids::TEAM), ("template_id", ids::TEMPLATE)] {
            if let Some(Value::String(id)) = pool.get_mut(key) {
                if !id.contains('_') {
                    *id = format!("{prefix}_{id}");
                }
            }
        }
    }
}

impl Host {
    pub fn new(h: &HostRow, tags: &[String]) -> Self {
        Self {
            id: ids::encode(ids::HOST, h.id),
            kind: h.kind.clone(),
            team_id: h.team_id.map(|t| ids::encode(ids::TEAM, t)),
            provider: h.provider.clone(),
            availability_zone: h.availability_zone.clone(),
            status: h.status,
            arch: h.arch.clone(),
            cpu_cores: h.cpu_cores,
            memory_mb: h.memory_mb,
            disk_gb: h.disk_gb,
            address: h.address.clone(),
            transport: h.transport.clone(),
            capabilities: h.capabilities.clone(),
            agent_version: h.agent_version.clone(),
            tags: tags.to_vec(),
            cert_expires_at: h.cert_expires_at.as_ref().map(ts),
            created_at: ts(&h.created_at),
            registered_at: h.registered_at.as_ref().map(ts),
            last_heartbeat_at: h.last_heartbeat_at.as_ref().map(ts),
            load: match (&h.load, &h.load_at) {
                (Some(Value::Object(load)), Some(at)) => {
                    let mut load = load.clone();
                    load.insert("sampled_at".into(), ts(at).into());
                    // Agents from before warm pools report none of their fields.
                    for key in ["pool_vcpus", "pool_memory_mb", "pool_ready"] {
                        load.entry(key).or_insert(0.into());
                    }
                    prefix_pool_ids(load.entry("pools").or_insert_with(|| Value::Array(vec![])));
                    Some(Value::Object(load))
                }
                _ => None,
            },
        }
    }
}

/// `POST /v1/hosts` and `POST /v1/hosts/{id}/token`: the token is shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostToken {
    pub host: Host,
    /// One-time, valid 1 h: `wrenn-agent --register <token>`.
    pub registration_token: String,
}

/// What deleting a host would take with it.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostDeletePreview {
    pub host: Host,
    /// `sb_…` of the capsules still on the host (live, paused or missing).
    pub sandbox_ids: Vec<String>,
    pub sandbox_count: usize,
}

/// An agent's credentials (register and refresh).
#[derive(Debug, Serialize, ToSchema)]
pub struct HostCredentials {
    pub host: Host,
    /// Host JWT (`X-Host-Token`), 7 days.
    pub token: String,
    /// Rotated on every refresh, 60 days.
    pub refresh_token: String,
    /// The host's server certificate (SAN = its address) and key, PEM.
    pub cert_pem: String,
    pub key_pem: String,
    /// The control plane's internal CA, PEM.
    pub ca_cert_pem: String,
    pub cert_expires_at: String,
}

/// `POST /v1/hosts/{id}/heartbeat`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeartbeatReply {
    /// Always `ok`.
    pub status: String,
    /// `host_…`
    pub host_id: String,
    pub host_status: Option<HostStatus>,
    pub cert_expires_at: Option<String>,
}

/// `POST /v1/hosts/sandbox-events`: how many callbacks changed a capsule, and how many did
/// not apply (both final).
#[derive(Debug, Serialize, ToSchema)]
pub struct SandboxEventsApplied {
    pub applied: u32,
    pub ignored: u32,
}

/// 409 `host_has_sandboxes`: the error envelope with the capsules still on the host.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostHasSandboxes {
    pub error: HostHasSandboxesBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HostHasSandboxesBody {
    /// `host_has_sandboxes`
    pub code: String,
    pub message: String,
    /// `sb_…` of the capsules still on the host.
    pub sandbox_ids: Vec<String>,
}
