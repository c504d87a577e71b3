//! `audit_logs` rows.

use crate::audit::AuditEntry;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A stored audit row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: Uuid,
    pub team_id: Option<Uuid>,
    pub scope: String,
    pub actor_type: String,
    pub actor_id: String,
    pub actor_name: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub outcome: Option<String>,
    pub metadata: serde_json::Value,
    pub error: String,
    pub created_at: DateTime<Utc>,
}

pub async fn insert<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    entry: &AuditEntry,
) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    let metadata = serde_json::to_value(&entry.metadata).unwrap_or_default();
    sqlx::query!(
        "INSERT INTO audit_logs (id, team_id, scope, actor_type, actor_id, actor_name, action,
                                 resource_type, resource_id, outcome, metadata, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        id,
        entry.team_id,
        entry.scope.as_str(),
        entry.actor.kind,
        entry.actor.id,
        entry.actor.name,
        entry.action,
        entry.resource.kind,
        entry.resource.id,
        entry.outcome.map(|o| o.as_str()),
        metadata,
        entry.error,
    )
    .execute(executor)
    .await?;
    Ok(id)
}

/// What to list: a team (or every team, for platform admins), newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// `None`: every team (platform-admin view).
    pub team_id: Option<Uuid>,
    /// Only `scope = 'team'` rows (plain members).
    pub team_scope_only: bool,
    pub resource_type: Option<String>,
    pub action: Option<String>,
    /// Keyset cursor: rows strictly older than (`before`, `before_id`).
    pub before: Option<(DateTime<Utc>, Option<Uuid>)>,
    pub limit: i64,
}

pub async fn list<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    filter: &AuditFilter,
) -> sqlx::Result<Vec<AuditRow>> {
    let (before, before_id) = match filter.before {
        Some((t, id)) => (Some(t), id),
        None => (None, None),
    };
    sqlx::query_as!(
        AuditRow,
        "SELECT id, team_id, scope, actor_type, actor_id, actor_name, action, resource_type,
                resource_id, outcome, metadata, error, created_at
         FROM audit_logs
         WHERE ($1::uuid IS NULL OR team_id = $1)
           AND (NOT $2 OR scope = 'team')
           AND ($3::text IS NULL OR resource_type = $3)
           AND ($4::text IS NULL OR action = $4)
           AND ($5::timestamptz IS NULL
                OR created_at < $5
                OR ($6::uuid IS NOT NULL AND created_at = $5 AND id < $6))
         ORDER BY created_at DESC, id DESC
         LIMIT $7",
        filter.team_id,
        filter.team_scope_only,
        filter.resource_type,
        filter.action,
        before,
        before_id,
        filter.limit,
    )
    .fetch_all(executor)
    .await
}
