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
    pub timeout_sec: u32,
    pub guest_ip: String,
    pub host_ip: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub last_active_at: Option<DateTime<Utc>>,
    pub last_updated: DateTime<Utc>,
    pub metadata: CapsuleMetadata,
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
            timeout_sec: row.timeout_sec.max(0) as u32,
            guest_ip: row.guest_ip.clone(),
            host_ip: row.host_ip.clone(),
            created_at: row.created_at,
            started_at: row.started_at,
            last_active_at: row.last_active_at,
            last_updated: row.last_updated,
            metadata: serde_json::from_value(row.metadata.clone()).unwrap_or_default(),
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
    /// Auto-pause after this many seconds without activity; 0 (default) disables.
    #[serde(default)]
    pub timeout_sec: Option<u32>,
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
