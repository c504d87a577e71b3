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
use serde_json::json;
use wrenn_extension_api::{
    ids, ApiError, ApiJson, ApiQuery, Principal, RequireAdmin, RequireSessionOrApiKey,
};

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

/// One page of the audit log.
#[derive(Debug, Serialize)]
pub struct AuditPage {
    pub audit_logs: Vec<serde_json::Value>,
    /// Pass as `before` / `before_id` for the next page; `null` on the last page.
    pub next_before: Option<String>,
    pub next_before_id: Option<String>,
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

/// The wire shape of one row.
pub fn row_json(row: &AuditRow) -> serde_json::Value {
    json!({
        "id": ids::encode(ids::AUDIT_LOG, row.id),
        "team_id": row.team_id.map(|t| ids::encode(ids::TEAM, t)),
        "scope": row.scope,
        "actor": {"type": row.actor_type, "id": row.actor_id, "name": row.actor_name},
        "action": row.action,
        "resource": {"type": row.resource_type, "id": row.resource_id},
        "outcome": row.outcome,
        "metadata": row.metadata,
        "error": row.error,
        "created_at": row.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
    })
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
        audit_logs: rows.iter().map(row_json).collect(),
        next_before,
        next_before_id,
    }
}

#[utoipa::path(get, path = "/v1/audit-logs", tag = "audit",
    params(("before" = Option<String>, Query, description = "RFC 3339 cursor"), ("before_id" = Option<String>, Query, description = "log_ id cursor"),
        ("limit" = Option<i64>, Query, description = "1-200, default 50"), ("resource_type" = Option<String>, Query, description = "sandbox|snapshot|host|..."), ("action" = Option<String>, Query, description = "e.g. capsule.create")),
    description = "Newest first. Members and API keys see team-scope rows; owners and admins every row of the team.",
    responses((status = 200, description = "`{audit_logs, next_before, next_before_id}`")))]
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
        ("limit" = Option<i64>, Query, description = "1-200, default 50"), ("resource_type" = Option<String>, Query), ("action" = Option<String>, Query)),
    description = "Platform admins: every audit row (platform-wide host actions included).",
    responses((status = 200, description = "`{audit_logs, next_before, next_before_id}`")))]
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
