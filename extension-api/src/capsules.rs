//! [`CapsuleService`]: what extensions may do with a team's capsules, without touching core's
//! tables. Reached through [`ServerContext::capsules`](crate::ServerContext::capsules).

use crate::error::ApiError;
use crate::hooks::TeamUsage;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// One capsule, as an extension sees it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CapsuleSummary {
    pub id: Uuid,
    pub team_id: Uuid,
    /// The API's status name (`running`, `paused`, ...; API.md "Capsules").
    pub status: String,
    pub template: String,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub created_at: DateTime<Utc>,
}

impl CapsuleSummary {
    pub fn new(
        id: Uuid,
        team_id: Uuid,
        status: String,
        template: String,
        vcpus: u32,
        memory_mb: u64,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            team_id,
            status,
            template,
            vcpus,
            memory_mb,
            created_at,
        }
    }
}

/// Capsule operations on behalf of an extension. Each one is the same guarded operation as
/// the REST API's (same state machine, events and audit entries, with the extension named
/// as the actor); a capsule of another team is `404 not_found`, a state that does not allow
/// the operation `409 invalid_state`.
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
}
