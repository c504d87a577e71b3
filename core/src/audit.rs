//! The audit log: who did what to which resource, with which outcome.
//!
//! [`record`] writes one `audit_logs` row through any executor (so it can join the caller's
//! transaction); [`record_and_publish`] is the one call for lifecycle outcomes: the audit row
//! plus the same facts published as an [`Event`] on `wrenn:events`. Rows are read back by
//! `GET /v1/audit-logs` ([`crate::http::audit`]).

use crate::app::App;
use crate::db;
use crate::events::{self, Actor, Event, Outcome, Resource};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Who may read a row: every team member, or only the team's owners and admins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditScope {
    Team,
    Admin,
}

impl AuditScope {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditScope::Team => "team",
            AuditScope::Admin => "admin",
        }
    }
}

/// One audit log entry to write.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// `None` for platform-wide actions (e.g. regular hosts).
    pub team_id: Option<Uuid>,
    pub scope: AuditScope,
    pub actor: Actor,
    /// e.g. `capsule.create`, `host.create`, `host.delete`.
    pub action: String,
    pub resource: Resource,
    pub outcome: Option<Outcome>,
    pub metadata: BTreeMap<String, String>,
    pub error: String,
}

impl AuditEntry {
    pub fn new(
        team_id: Option<Uuid>,
        actor: Actor,
        action: impl Into<String>,
        resource: Resource,
    ) -> Self {
        Self {
            team_id,
            scope: AuditScope::Team,
            actor,
            action: action.into(),
            resource,
            outcome: None,
            metadata: BTreeMap::new(),
            error: String::new(),
        }
    }

    pub fn scope(mut self, scope: AuditScope) -> Self {
        self.scope = scope;
        self
    }

    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = Some(outcome);
        self
    }

    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    pub fn error(mut self, error: impl Into<String>) -> Self {
        self.error = error.into();
        self
    }

    /// The audit entry describing a published event.
    pub fn from_event(event: &Event, scope: AuditScope) -> Self {
        Self {
            team_id: event.team_uuid(),
            scope,
            actor: event.actor.clone(),
            action: event.event.clone(),
            resource: event.resource.clone(),
            outcome: event.outcome,
            metadata: event.metadata.clone(),
            error: event.error.clone(),
        }
    }
}

/// Writes `entry`; returns the new row's id (`log_` on the wire).
pub async fn record<'e, E>(executor: E, entry: &AuditEntry) -> sqlx::Result<Uuid>
where
    E: sqlx::PgExecutor<'e>,
{
    db::audit::insert(executor, entry).await
}

/// Errors of [`record_and_publish`].
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("writing the audit log: {0}")]
    Db(#[from] sqlx::Error),
}

/// Writes the audit row for `event` and publishes it to the event stream. A Redis failure is
/// logged and does not fail the call: the audit row is the record of truth, and the outcome
/// it describes has already happened.
pub async fn record_and_publish(
    ctx: &App,
    event: &Event,
    scope: AuditScope,
) -> Result<Uuid, RecordError> {
    let id = record(ctx.db(), &AuditEntry::from_event(event, scope)).await?;
    let mut redis = ctx.redis();
    if let Err(e) = events::publish(&mut redis, event).await {
        tracing::error!(error = %e, event = %event.event, resource = %event.resource.id,
            "Publishing an event failed; it is in the audit log only.");
    }
    Ok(id)
}
