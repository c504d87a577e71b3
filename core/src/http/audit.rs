//! `GET /v1/audit-logs`: the caller's team's audit log, newest first, keyset-paginated
//! (`before` = RFC 3339 time and `before_id` = `log_` id of the last row seen; `limit` 1–200,
//! default 50; filters `resource_type` and `action`). Plain members and API keys see
//! team-scope rows; owners and admins see all of the team's rows.

use crate::app::App;
use crate::db::audit::{AuditFilter, AuditRow};
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wrenn_extension_api::{
    ids, ApiError, ApiJson, ApiQuery, Principal, RequireAdmin, RequireSessionOrApiKey,
};

use super::views::ErrorEnvelope;

pub const MAX_LIMIT: i64 = 200;
pub const DEFAULT_LIMIT: i64 = 50;

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/audit-logs", get(list))
        .route("/v1/admin/audit-logs", get(admin_list))
}

/// Query string of the audit log listings.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// Admin listing only: one team (`tm_…`); every team when absent.
    pub team_id: Option<String>,
    pub before: Option<String>,
    pub before_id: Option<String>,
    pub limit: Option<i64>,
    pub resource_type: Option<String>,
    pub action: Option<String>,
}

/// One page of the audit log (an object, unlike the bare-array listings: API.md keeps it).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub audit_logs: Vec<AuditLog>,
    /// Pass as `before` / `before_id` for the next page; `null` on the last page.
    pub next_before: Option<String>,
    pub next_before_id: Option<String>,
}

/// One audit log row.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLog {
    /// `log_…`
    pub id: String,
    /// `tm_…`; null for platform-wide rows (regular hosts).
    pub team_id: Option<String>,
    /// `team` (every member sees it) or `admin` (owners, admins and platform admins).
    pub scope: String,
    pub actor: AuditActor,
    /// e.g. `capsule.create`, `host.delete`.
    pub action: String,
    pub resource: AuditResource,
    /// `success` or `error`; null for actions without an outcome.
    pub outcome: Option<String>,
    /// String values (`reason`, …).
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// Empty unless the outcome is `error`.
    pub error: String,
    /// RFC 3339 UTC with microseconds.
    pub created_at: String,
}

/// Who acted.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditActor {
    /// `user`, `api_key` or `system`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub name: String,
}

/// What was acted on.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditResource {
    /// `sandbox`, `snapshot`, `host`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// Turns the query into a filter (shared with the admin listing).
pub fn filter_from_query(q: &AuditQuery) -> Result<AuditFilter, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let before = match &q.before {
        Some(b) => {
            let t = DateTime::parse_from_rfc3339(b)
                .map_err(|_| ApiError::invalid("before must be an RFC 3339 timestamp"))?
                .with_timezone(&Utc);
            let id = match &q.before_id {
                Some(id) => Some(
                    ids::decode(ids::AUDIT_LOG, id)
                        .ok_or_else(|| ApiError::invalid("before_id must be a log_ id"))?,
                ),
                None => None,
            };
            Some((t, id))
        }
        None if q.before_id.is_some() => {
            return Err(ApiError::invalid("before_id needs before"));
        }
        None => None,
    };
    Ok(AuditFilter {
        team_id: None,
        team_scope_only: false,
        resource_type: q.resource_type.clone().filter(|s| !s.is_empty()),
        action: q.action.clone().filter(|s| !s.is_empty()),
        before,
        limit,
    })
}

impl From<&AuditRow> for AuditLog {
    fn from(row: &AuditRow) -> Self {
        Self {
            id: ids::encode(ids::AUDIT_LOG, row.id),
            team_id: row.team_id.map(|t| ids::encode(ids::TEAM, t)),
            scope: row.scope.clone(),
            actor: AuditActor {
                kind: row.actor_type.clone(),
                id: row.actor_id.clone(),
                name: row.actor_name.clone(),
            },
            action: row.action.clone(),
            resource: AuditResource {
                kind: row.resource_type.clone(),
                id: row.resource_id.clone(),
            },
            outcome: row.outcome.clone(),
            metadata: row.metadata.clone(),
            error: row.error.clone(),
            created_at: row.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        }
    }
}

/// Builds a page (and its cursor) from the rows of `filter`.
pub fn page(rows: Vec<AuditRow>, limit: i64) -> AuditPage {
    let (next_before, next_before_id) = match rows.last() {
        Some(last) if rows.len() as i64 == limit => (
            Some(last.created_at.to_rfc3339_opts(SecondsFormat::Micros, true)),
            Some(ids::encode(ids::AUDIT_LOG, last.id)),
        ),
        _ => (None, None),
    };
    AuditPage {
        audit_logs: rows.iter().map(AuditLog::from).collect(),
        next_before,
        next_before_id,
    }
}

#[utoipa::path(get, path = "/v1/audit-logs", tag = "audit",
    params(("before" = Option<String>, Query, description = "RFC 3339 cursor"), ("before_id" = Option<String>, Query, description = "log_ id cursor"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "1-200, default 50"), ("resource_type" = Option<String>, Query, description = "sandbox|snapshot|host|..."), ("action" = Option<String>, Query, description = "e.g. capsule.create")),
    description = "Newest first. Members and API keys see team-scope rows; owners and admins every row of the team.",
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorEnvelope, description = "bad limit or cursor"),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope, description = "no longer a member of the team")))]
pub(crate) async fn list(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<ApiJson<AuditPage>, ApiError> {
    let mut filter = filter_from_query(&q)?;
    filter.team_id = Some(principal.team_id());
    filter.team_scope_only = match &principal {
        Principal::Session(s) => match s.role {
            Some(role) => !role.can_manage(),
            None => {
                return Err(ApiError::forbidden(
                    "forbidden",
                    "not a member of this team",
                ))
            }
        },
        Principal::ApiKey(_) => true,
    };
    let rows = crate::db::audit::list(ctx.db(), &filter).await?;
    Ok(ApiJson(page(rows, filter.limit)))
}

#[utoipa::path(get, path = "/v1/admin/audit-logs", tag = "audit",
    params(("team_id" = Option<String>, Query, description = "tm_ id; every team when absent"),
        ("before" = Option<String>, Query, description = "RFC 3339 cursor"), ("before_id" = Option<String>, Query, description = "log_ id cursor"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "1-200, default 50"), ("resource_type" = Option<String>, Query), ("action" = Option<String>, Query)),
    description = "Platform admins: every audit row (platform-wide host actions included).",
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorEnvelope, description = "bad limit, cursor or team_id"),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope, description = "not a platform admin, or an API key")))]
pub(crate) async fn admin_list(
    State(ctx): State<App>,
    RequireAdmin(_admin): RequireAdmin,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<ApiJson<AuditPage>, ApiError> {
    let mut filter = filter_from_query(&q)?;
    if let Some(team) = &q.team_id {
        filter.team_id = Some(
            ids::decode(ids::TEAM, team)
                .ok_or_else(|| ApiError::invalid("team_id must be a tm_ id"))?,
        );
    }
    let rows = crate::db::audit::list(ctx.db(), &filter).await?;
    Ok(ApiJson(page(rows, filter.limit)))
}
