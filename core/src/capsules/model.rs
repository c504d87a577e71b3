//! The API shapes of capsules and templates (API.md "Capsules", "Snapshots").

use crate::capsules::state::CapsuleStatus;
use crate::db::capsules::CapsuleRow;
use crate::db::templates::TemplateRow;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wrenn_extension_api::ids;

/// Runtime details reported by the agent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CapsuleMetadata {
    #[serde(default)]
    pub envd_version: String,
    #[serde(default)]
    pub kernel_version: String,
    #[serde(default)]
    pub runtime: String,
    #[serde(default)]
    pub runtime_version: String,
    #[serde(default)]
    pub agent_version: String,
}

impl From<wrenn_proto::hostagent::v1::SandboxMetadata> for CapsuleMetadata {
    fn from(m: wrenn_proto::hostagent::v1::SandboxMetadata) -> Self {
        Self {
            envd_version: m.envd_version,
            kernel_version: m.kernel_version,
            runtime: m.runtime,
            runtime_version: m.runtime_version,
            agent_version: m.agent_version,
        }
    }
}

/// A capsule.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Capsule {
    /// `sb_` + 25 base36 digits.
    #[schema(example = "sb_0k3m2x9q1v7c8b5n4z6y0w1p2")]
    pub id: String,
    pub status: CapsuleStatus,
    /// Why the capsule is in its status (error text, `ttl_expired`, ...); empty when nothing
    /// to say.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Template name.
    pub template: String,
    pub vcpus: u32,
    pub memory_mb: u32,
    /// Disk size in MiB: what the capsule can write (a full disk is ENOSPC inside).
    pub disk_mb: u32,
    pub timeout_sec: u32,
    pub guest_ip: String,
    pub host_ip: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub last_active_at: Option<DateTime<Utc>>,
    pub last_updated: DateTime<Utc>,
    pub metadata: CapsuleMetadata,
    /// Egress policy.
    pub network: NetworkPolicy,
}

impl From<&CapsuleRow> for Capsule {
    fn from(row: &CapsuleRow) -> Self {
        Self {
            id: ids::encode(ids::CAPSULE, row.id),
            status: row.status(),
            reason: row.status_reason.clone(),
            template: row.template_name.clone(),
            vcpus: row.vcpus.max(0) as u32,
            memory_mb: row.memory_mb.max(0) as u32,
            disk_mb: row.disk_mb.max(0) as u32,
            timeout_sec: row.timeout_sec.max(0) as u32,
            guest_ip: row.guest_ip.clone(),
            host_ip: row.host_ip.clone(),
            created_at: row.created_at,
            started_at: row.started_at,
            last_active_at: row.last_active_at,
            last_updated: row.last_updated,
            metadata: serde_json::from_value(row.metadata.clone()).unwrap_or_default(),
            network: serde_json::from_value(row.network.clone()).unwrap_or_default(),
        }
    }
}

/// `POST /v1/capsules`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCapsule {
    /// Template name; omitted → the configured default base template. `minimal` is an alias of
    /// the default. Snapshot templates force their own vcpus and memory.
    #[serde(default)]
    pub template: Option<String>,
    /// Default 1.
    #[serde(default)]
    pub vcpus: Option<u32>,
    /// Default 512.
    #[serde(default)]
    pub memory_mb: Option<u32>,
    /// Disk size in MiB, 64 to 1048576; default the control plane's `WRENN_DEFAULT_DISK_MB`
    /// (2048). Filling it gives the writer ENOSPC; the capsule lives on.
    #[serde(default)]
    pub disk_mb: Option<u32>,
    /// Auto-pause after this many seconds without activity; 0 (default) disables.
    #[serde(default)]
    pub timeout_sec: Option<u32>,
    /// Egress policy; default `allow_all`.
    #[serde(default)]
    pub network: Option<NetworkPolicy>,
    /// Environment variables every process of the capsule starts with (names
    /// `[A-Za-z_][A-Za-z0-9_]*`, at most 256 of them and 64 KiB in all).
    #[serde(default, rename = "envs")]
    pub env_vars: std::collections::BTreeMap<String, String>,
    /// The default user of processes (extensions only).
    #[serde(skip)]
    pub default_user: Option<String>,
    /// The default working directory of processes (extensions only).
    #[serde(skip)]
    pub default_workdir: Option<String>,
}

/// Egress mode of a capsule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// Anywhere except the always-blocked destinations (default).
    #[default]
    AllowAll,
    /// Nothing.
    DenyAll,
    /// Only the destinations in `allow` (and the host's DNS resolvers).
    AllowList,
}

impl NetworkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::AllowAll => "allow_all",
            NetworkMode::DenyAll => "deny_all",
            NetworkMode::AllowList => "allow_list",
        }
    }
}

/// Egress policy of a capsule, enforced on its host (never inside the capsule). The
/// link-local range 169.254.0.0/16 (cloud metadata), the host's own addresses and other
/// capsules are unreachable whatever the mode. Body of `PATCH /v1/capsules/{id}/network`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkPolicy {
    #[serde(default)]
    pub mode: NetworkMode,
    /// `allow_list` only: IPv4 CIDRs (`10.0.0.0/8`), addresses or host names; names are
    /// resolved on the capsule's host when the policy is set.
    #[serde(default)]
    #[schema(example = json!(["203.0.113.0/24", "pypi.org"]))]
    pub allow: Vec<String>,
}

/// Most entries an allow-list may hold.
pub const MAX_ALLOW_ENTRIES: usize = 256;

fn valid_cidr(s: &str) -> bool {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, p.parse::<u8>().ok().filter(|p| *p <= 32)),
        None => (s, Some(32)),
    };
    prefix.is_some() && addr.parse::<std::net::Ipv4Addr>().is_ok()
}

fn valid_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && s.bytes().any(|b| b.is_ascii_alphabetic())
}

impl NetworkPolicy {
    /// 400 `invalid_request` for an entry that is neither an IPv4 CIDR nor a host name,
    /// entries outside `allow_list`, or too many entries.
    pub fn validate(&self) -> Result<(), wrenn_extension_api::ApiError> {
        use wrenn_extension_api::ApiError;
        if self.mode != NetworkMode::AllowList && !self.allow.is_empty() {
            return Err(ApiError::invalid(
                "network.allow is only valid with mode allow_list",
            ));
        }
        if self.allow.len() > MAX_ALLOW_ENTRIES {
            return Err(ApiError::invalid(format!(
                "network.allow holds at most {MAX_ALLOW_ENTRIES} entries"
            )));
        }
        for entry in &self.allow {
            let looks_numeric = entry
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'/');
            let ok = if looks_numeric || entry.contains('/') {
                valid_cidr(entry)
            } else {
                valid_host_name(entry)
            };
            if !ok {
                return Err(ApiError::invalid(format!(
                    "network.allow entry {entry:?} is neither an IPv4 CIDR nor a host name"
                )));
            }
        }
        Ok(())
    }

    /// The wire form for the host agent.
    pub fn to_pb(&self) -> wrenn_proto::hostagent::v1::NetworkPolicy {
        wrenn_proto::hostagent::v1::NetworkPolicy {
            mode: self.mode.as_str().into(),
            allow: self.allow.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mode: NetworkMode, allow: &[&str]) -> NetworkPolicy {
        NetworkPolicy {
            mode,
            allow: allow.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn network_policy_validation() {
        assert!(policy(NetworkMode::AllowAll, &[]).validate().is_ok());
        assert!(policy(
            NetworkMode::AllowList,
            &["10.0.0.0/8", "1.2.3.4", "pypi.org"]
        )
        .validate()
        .is_ok());
        for bad in ["10.0.0.0/33", "300.1.1.1", "a b", "-x.org", "10.0.0/8", ""] {
            assert!(
                policy(NetworkMode::AllowList, &[bad]).validate().is_err(),
                "{bad:?} accepted"
            );
        }
        assert!(policy(NetworkMode::DenyAll, &["10.0.0.1"])
            .validate()
            .is_err());
        let parsed: Result<NetworkPolicy, _> = serde_json::from_str(r#"{"mode": "sometimes"}"#);
        assert!(parsed.is_err());
    }
}

/// A template (base or snapshot).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Template {
    /// `tpl_` + 25 base36 digits.
    pub id: String,
    pub name: String,
    /// `base` or `snapshot`.
    #[serde(rename = "type")]
    pub kind: String,
    pub vcpus: u32,
    pub memory_mb: u32,
    pub size_bytes: u64,
    pub created_at: DateTime<Utc>,
    /// Owned by the platform (visible to every team, undeletable).
    pub platform: bool,
    pub metadata: serde_json::Value,
}

impl From<&TemplateRow> for Template {
    fn from(row: &TemplateRow) -> Self {
        Self {
            id: ids::encode(ids::TEMPLATE, row.id),
            name: row.name.clone(),
            kind: row.kind.clone(),
            vcpus: row.vcpus.max(0) as u32,
            memory_mb: row.memory_mb.max(0) as u32,
            size_bytes: row.size_bytes.max(0) as u64,
            created_at: row.created_at,
            platform: row.is_platform(),
            metadata: row.metadata.clone(),
        }
    }
}
