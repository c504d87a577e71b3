//! `/v1/admin/*`: the platform admin's views across every team (a session whose user is a
//! platform admin, re-checked in the database on every request; API keys never pass).
//!
//! - `GET /v1/admin/teams` with usage; `PATCH /v1/admin/teams/{id}` `{is_byoc}`;
//!   `DELETE /v1/admin/teams/{id}` (soft delete, capsules destroyed).
//! - `GET /v1/admin/users`; `PATCH /v1/admin/users/{id}` `{disabled?, is_admin?}` (a disabled
//!   user loses every session and gets 403 `account_disabled` at login; the last active
//!   admin can be neither disabled nor demoted: 409 `last_admin`).
//! - `GET /v1/admin/templates`; `DELETE /v1/admin/templates/{id}` (platform base templates
//!   are reserved: 403 `template_reserved`).
//! - `GET /v1/admin/capsules`: every team's, with team and host.
//!
//! Every listing is a bare JSON array paged by `limit`/`cursor` (`X-Next-Cursor`), see
//! [`super::paging`]. Admin actions are written to the audit log with admin scope.

use crate::app::App;
use crate::audit::{self, AuditEntry, AuditScope};
use crate::capsules::model::Capsule;
use crate::capsules::outcome::actor_of;
use crate::capsules::state::CapsuleStatus;
use crate::db::admin::{self as db, CapsuleFilter};
use crate::events::{Actor, Outcome, Resource};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;
use wrenn_extension_api::{
    ids, ApiError, ApiJson, ApiPath, ApiQuery, Principal, RequireAdmin, SessionPrincipal,
};

use super::paging::{Page, Paged};
use super::views::ErrorEnvelope;

/// The admin routes' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        list_teams,
        update_team,
        delete_team,
        list_users,
        update_user,
        list_templates,
        delete_template,
        list_capsules
    ),
    components(schemas(
        AdminTeam,
        TeamUpdate,
        AdminUser,
        UserUpdate,
        AdminTemplate,
        AdminCapsule
    ))
)]
pub struct AdminApi;

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/admin/teams", get(list_teams))
        .route(
            "/v1/admin/teams/{id}",
            axum::routing::patch(update_team).delete(delete_team),
        )
        .route("/v1/admin/users", get(list_users))
        .route("/v1/admin/users/{id}", axum::routing::patch(update_user))
        .route("/v1/admin/templates", get(list_templates))
        .route("/v1/admin/templates/{id}", delete(delete_template))
        .route("/v1/admin/capsules", get(list_capsules))
}

/// Writes an admin action to the audit log (a failure to write is logged, not returned: the
/// action itself has happened).
async fn audit_admin(
    ctx: &App,
    actor: Actor,
    team_id: Option<Uuid>,
    action: &str,
    resource: Resource,
    meta: &[(&str, String)],
) {
    let mut entry = AuditEntry::new(team_id, actor, action, resource)
        .scope(AuditScope::Admin)
        .outcome(Outcome::Success);
    for (k, v) in meta {
        entry = entry.meta(*k, v.clone());
    }
    if let Err(e) = audit::record(ctx.db(), &entry).await {
        tracing::error!(error = %e, action, "Writing an admin audit entry failed.");
    }
}

async fn actor(ctx: &App, admin: &SessionPrincipal) -> Actor {
    actor_of(ctx, Some(&Principal::Session(admin.clone()))).await
}

// ------------------------------------------------------------------------------------ teams

/// A team with what it holds now.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminTeam {
    /// `tm_…`
    pub id: String,
    pub name: String,
    /// BYOC teams' capsules land only on their own hosts.
    pub is_byoc: bool,
    pub created_at: DateTime<Utc>,
    /// Set once the team is soft-deleted.
    pub deleted_at: Option<DateTime<Utc>>,
    pub member_count: i64,
    pub running_capsules: i64,
    pub paused_capsules: i64,
    /// vCPUs and memory reserved by the team's live capsules.
    pub vcpus_in_use: i64,
    pub memory_mb_in_use: i64,
    /// The team's BYOC hosts (not deleted).
    pub host_count: i64,
}

impl From<&db::TeamUsage> for AdminTeam {
    fn from(t: &db::TeamUsage) -> Self {
        Self {
            id: ids::encode(ids::TEAM, t.id),
            name: t.name.clone(),
            is_byoc: t.is_byoc,
            created_at: t.created_at,
            deleted_at: t.deleted_at,
            member_count: t.member_count,
            running_capsules: t.running_capsules,
            paused_capsules: t.paused_capsules,
            vcpus_in_use: t.vcpus_in_use,
            memory_mb_in_use: t.memory_mb_in_use,
            host_count: t.host_count,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct TeamsQuery {
    /// 1–200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `X-Next-Cursor` of the previous page.
    pub cursor: Option<String>,
    /// Soft-deleted teams too (default false).
    pub include_deleted: Option<bool>,
}

/// Every team with its usage, newest first.
#[utoipa::path(get, path = "/v1/admin/teams", tag = "admin", params(TeamsQuery),
    responses((status = 200, body = [AdminTeam], headers(("X-Next-Cursor" = String, description = "present when another page follows"))),
              (status = 400, body = ErrorEnvelope, description = "bad limit or cursor"),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope, description = "not a platform admin, or an API key")))]
pub async fn list_teams(
    State(ctx): State<App>,
    RequireAdmin(_admin): RequireAdmin,
    ApiQuery(q): ApiQuery<TeamsQuery>,
) -> Result<Paged<AdminTeam>, ApiError> {
    let page = Page::parse(q.limit, q.cursor.as_deref())?;
    let rows = db::teams(ctx.db(), q.include_deleted.unwrap_or(false), page).await?;
    Ok(Paged::new(
        rows,
        page,
        |t| (t.created_at, t.id),
        |t| AdminTeam::from(t),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamUpdate {
    /// Turn BYOC on or off. Off is refused while the team has BYOC hosts.
    pub is_byoc: bool,
}

fn team_id(id: &str) -> Result<Uuid, ApiError> {
    ids::parse(ids::TEAM, id, "team")
}

/// Set a team's BYOC flag.
#[utoipa::path(patch, path = "/v1/admin/teams/{id}", tag = "admin", params(("id" = String, Path, description = "tm_ id")),
    request_body = TeamUpdate,
    responses((status = 200, body = AdminTeam), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope, description = "not a platform admin, or the platform team"),
              (status = 404, body = ErrorEnvelope, description = "no such team, or deleted"),
              (status = 409, body = ErrorEnvelope, description = "`team_has_byoc_hosts`: delete its hosts first")))]
pub async fn update_team(
    State(ctx): State<App>,
    RequireAdmin(admin): RequireAdmin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<TeamUpdate>,
) -> Result<ApiJson<AdminTeam>, ApiError> {
    let team = team_id(&id)?;
    if team == ids::PLATFORM_TEAM {
        return Err(ApiError::forbidden(
            "forbidden",
            "the platform team runs on regular hosts",
        ));
    }
    let mut tx = ctx.db().begin().await?;
    // Locks the team row so a concurrent host creation cannot slip in between the check and
    // the write.
    let live: Option<(Uuid,)> =
        sqlx::query_as("SELECT id FROM teams WHERE id = $1 AND deleted_at IS NULL FOR UPDATE")
            .bind(team)
            .fetch_optional(&mut *tx)
            .await?;
    if live.is_none() {
        return Err(ApiError::not_found("not_found", "team not found"));
    }
    if !req.is_byoc {
        let hosts = db::byoc_hosts(&mut *tx, team).await?;
        if !hosts.is_empty() {
            let ids: Vec<String> = hosts.iter().map(|h| ids::encode(ids::HOST, *h)).collect();
            return Err(ApiError::conflict(
                "team_has_byoc_hosts",
                format!(
                    "the team still has BYOC hosts ({}); delete them first",
                    ids.join(", ")
                ),
            ));
        }
    }
    db::set_byoc(&mut tx, team, req.is_byoc).await?;
    tx.commit().await?;
    let actor = actor(&ctx, &admin).await;
    audit_admin(
        &ctx,
        actor,
        Some(team),
        "team.update",
        Resource::team(team),
        &[("is_byoc", req.is_byoc.to_string())],
    )
    .await;
    let row = db::team(ctx.db(), team)
        .await?
        .ok_or_else(|| ApiError::not_found("not_found", "team not found"))?;
    Ok(ApiJson(AdminTeam::from(&row)))
}

/// Soft-delete a team: its capsules are destroyed, its keys revoked, its channels removed.
#[utoipa::path(delete, path = "/v1/admin/teams/{id}", tag = "admin", params(("id" = String, Path, description = "tm_ id")),
    responses((status = 204), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope, description = "not a platform admin, or the platform team"),
              (status = 404, body = ErrorEnvelope, description = "no such team, or already deleted")))]
pub async fn delete_team(
    State(ctx): State<App>,
    RequireAdmin(admin): RequireAdmin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let team = team_id(&id)?;
    if team == ids::PLATFORM_TEAM {
        return Err(ApiError::forbidden(
            "forbidden",
            "the platform team cannot be deleted",
        ));
    }
    let actor = actor(&ctx, &admin).await;
    let destroyed = crate::teams::delete(&ctx, team, &actor).await?;
    audit_admin(
        &ctx,
        actor,
        Some(team),
        "team.delete",
        Resource::team(team),
        &[("capsules_destroyed", destroyed.to_string())],
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------------------------------ users

/// A user as the platform admin sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUser {
    /// `usr_…`
    pub id: String,
    pub email: String,
    pub name: String,
    /// Email activation done.
    pub is_active: bool,
    pub is_admin: bool,
    /// Disabled by an admin: cannot log in, has no sessions.
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    /// Teams it belongs to (not deleted).
    pub team_count: i64,
}

impl From<&db::UserSummary> for AdminUser {
    fn from(u: &db::UserSummary) -> Self {
        Self {
            id: ids::encode(ids::USER, u.id),
            email: u.email.clone(),
            name: u.name.clone(),
            is_active: u.is_active,
            is_admin: u.is_admin,
            disabled: u.disabled_at.is_some(),
            created_at: u.created_at,
            team_count: u.team_count,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UsersQuery {
    /// 1–200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `X-Next-Cursor` of the previous page.
    pub cursor: Option<String>,
    /// Users whose email contains this (case-insensitive).
    pub email: Option<String>,
}

/// Every user (not deleted), newest first.
#[utoipa::path(get, path = "/v1/admin/users", tag = "admin", params(UsersQuery),
    responses((status = 200, body = [AdminUser], headers(("X-Next-Cursor" = String, description = "present when another page follows"))),
              (status = 400, body = ErrorEnvelope, description = "bad limit or cursor"),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope, description = "not a platform admin, or an API key")))]
pub async fn list_users(
    State(ctx): State<App>,
    RequireAdmin(_admin): RequireAdmin,
    ApiQuery(q): ApiQuery<UsersQuery>,
) -> Result<Paged<AdminUser>, ApiError> {
    let page = Page::parse(q.limit, q.cursor.as_deref())?;
    let email = q.email.as_deref().filter(|e| !e.is_empty());
    if email.is_some_and(|e| e.chars().count() > 254) {
        return Err(ApiError::invalid("email is at most 254 characters"));
    }
    let rows = db::users(ctx.db(), email, page).await?;
    Ok(Paged::new(
        rows,
        page,
        |u| (u.created_at, u.id),
        |u| AdminUser::from(u),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// Disable (the user's sessions end at once; login answers 403 `account_disabled`) or
    /// enable again.
    pub disabled: Option<bool>,
    /// Grant or revoke platform admin.
    pub is_admin: Option<bool>,
}

/// Disable or enable a user, grant or revoke platform admin.
#[utoipa::path(patch, path = "/v1/admin/users/{id}", tag = "admin", params(("id" = String, Path, description = "usr_ id")),
    request_body = UserUpdate,
    responses((status = 200, body = AdminUser), (status = 400, body = ErrorEnvelope, description = "nothing to change"),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope, description = "not a platform admin"),
              (status = 404, body = ErrorEnvelope, description = "no such user, or deleted"),
              (status = 409, body = ErrorEnvelope, description = "`last_admin`: no active platform admin would be left")))]
pub async fn update_user(
    State(ctx): State<App>,
    RequireAdmin(admin): RequireAdmin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UserUpdate>,
) -> Result<ApiJson<AdminUser>, ApiError> {
    let user = ids::parse(ids::USER, &id, "user")?;
    if req.disabled.is_none() && req.is_admin.is_none() {
        return Err(ApiError::invalid("give disabled and/or is_admin"));
    }
    let mut tx = ctx.db().begin().await?;
    let admins = db::lock_active_admins(&mut tx).await?;
    let target = db::user(&mut *tx, user)
        .await?
        .ok_or_else(|| ApiError::not_found("not_found", "user not found"))?;
    let loses_admin = req.disabled == Some(true) || req.is_admin == Some(false);
    if loses_admin && admins == [user] {
        return Err(ApiError::conflict(
            "last_admin",
            "this is the only active platform admin; make another admin first",
        ));
    }
    if let Some(disabled) = req.disabled {
        db::set_disabled(&mut tx, user, disabled).await?;
    }
    if let Some(is_admin) = req.is_admin {
        db::set_admin(&mut tx, user, is_admin).await?;
    }
    tx.commit().await?;
    if req.disabled == Some(true) {
        // After the commit: a session resolved from now on finds the user disabled, and the
        // cached ones are evicted here.
        ctx.sessions().revoke_all(user).await?;
    }
    let mut meta = vec![("email", target.email.clone())];
    if let Some(d) = req.disabled {
        meta.push(("disabled", d.to_string()));
    }
    if let Some(a) = req.is_admin {
        meta.push(("is_admin", a.to_string()));
    }
    let actor = actor(&ctx, &admin).await;
    audit_admin(
        &ctx,
        actor,
        None,
        "user.update",
        Resource::user(user),
        &meta,
    )
    .await;
    let row = db::user(ctx.db(), user)
        .await?
        .ok_or_else(|| ApiError::not_found("not_found", "user not found"))?;
    Ok(ApiJson(AdminUser::from(&row)))
}

// -------------------------------------------------------------------------------- templates

/// A template of any team, or of the platform.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminTemplate {
    /// `tpl_…`
    pub id: String,
    pub name: String,
    /// `base` or `snapshot`.
    #[serde(rename = "type")]
    pub kind: String,
    pub vcpus: i32,
    pub memory_mb: i32,
    pub size_bytes: i64,
    pub created_at: DateTime<Utc>,
    /// Owned by the platform (visible to every team).
    pub platform: bool,
    /// A platform base template: it cannot be deleted.
    pub reserved: bool,
    /// `tm_…` of the owner (the platform team's id for platform templates).
    pub team_id: String,
    pub team_name: Option<String>,
    /// Capsules created from it that are not stopped.
    pub live_capsules: i64,
}

impl From<&db::TemplateSummary> for AdminTemplate {
    fn from(t: &db::TemplateSummary) -> Self {
        let platform = t.team_id == ids::PLATFORM_TEAM;
        Self {
            id: ids::encode(ids::TEMPLATE, t.id),
            name: t.name.clone(),
            kind: t.kind.clone(),
            vcpus: t.vcpus,
            memory_mb: t.memory_mb,
            size_bytes: t.size_bytes,
            created_at: t.created_at,
            platform,
            reserved: platform && t.kind == "base",
            team_id: ids::encode(ids::TEAM, t.team_id),
            team_name: t.team_name.clone(),
            live_capsules: t.live_capsules,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// 1–200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `X-Next-Cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Every template, newest first.
#[utoipa::path(get, path = "/v1/admin/templates", tag = "admin", params(PageQuery),
    responses((status = 200, body = [AdminTemplate], headers(("X-Next-Cursor" = String, description = "present when another page follows"))),
              (status = 400, body = ErrorEnvelope, description = "bad limit or cursor"),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope, description = "not a platform admin, or an API key")))]
pub async fn list_templates(
    State(ctx): State<App>,
    RequireAdmin(_admin): RequireAdmin,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Paged<AdminTemplate>, ApiError> {
    let page = Page::parse(q.limit, q.cursor.as_deref())?;
    let rows = db::templates(ctx.db(), page).await?;
    Ok(Paged::new(
        rows,
        page,
        |t| (t.created_at, t.id),
        |t| AdminTemplate::from(t),
    ))
}

/// Delete a template of any team (from every host); platform base templates are reserved.
#[utoipa::path(delete, path = "/v1/admin/templates/{id}", tag = "admin", params(("id" = String, Path, description = "tpl_ id")),
    responses((status = 204), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope, description = "not a platform admin, or `template_reserved`"),
              (status = 404, body = ErrorEnvelope, description = "no such template"),
              (status = 502, body = ErrorEnvelope, description = "a host failed to delete it"),
              (status = 503, body = ErrorEnvelope, description = "a host was not reachable")))]
pub async fn delete_template(
    State(ctx): State<App>,
    RequireAdmin(admin): RequireAdmin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let template_id = ids::parse(ids::TEMPLATE, &id, "template")?;
    let template = crate::db::templates::get(ctx.db(), template_id)
        .await?
        .ok_or_else(|| ApiError::not_found("not_found", "template not found"))?;
    if template.is_platform() && !template.is_snapshot() {
        return Err(ApiError::forbidden(
            "template_reserved",
            "platform base templates cannot be deleted",
        ));
    }
    let principal = Principal::Session(admin);
    crate::capsules::snapshots::delete_snapshot(&ctx, &principal, template).await?;
    Ok(StatusCode::NO_CONTENT)
}

// --------------------------------------------------------------------------------- capsules

/// A capsule of any team, with where it runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminCapsule {
    #[serde(flatten)]
    pub capsule: Capsule,
    /// `tm_…`
    pub team_id: String,
    pub team_name: Option<String>,
    /// `host_…`; null before placement.
    pub host_id: Option<String>,
    pub host_address: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CapsulesQuery {
    /// 1–200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `X-Next-Cursor` of the previous page.
    pub cursor: Option<String>,
    /// One status (stopped included when asked for); by default every status but stopped.
    pub status: Option<String>,
    /// `tm_…`
    pub team_id: Option<String>,
    /// `host_…`
    pub host_id: Option<String>,
}

/// Every team's capsules, newest first.
#[utoipa::path(get, path = "/v1/admin/capsules", tag = "admin", params(CapsulesQuery),
    responses((status = 200, body = [AdminCapsule], headers(("X-Next-Cursor" = String, description = "present when another page follows"))),
              (status = 400, body = ErrorEnvelope, description = "bad limit, cursor, status or id"),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope, description = "not a platform admin, or an API key")))]
pub async fn list_capsules(
    State(ctx): State<App>,
    RequireAdmin(_admin): RequireAdmin,
    ApiQuery(q): ApiQuery<CapsulesQuery>,
) -> Result<Paged<AdminCapsule>, ApiError> {
    let page = Page::parse(q.limit, q.cursor.as_deref())?;
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            CapsuleStatus::parse(s)
                .ok_or_else(|| ApiError::invalid(format!("unknown status {s:?}")))?,
        ),
    };
    let id_of =
        |prefix: &str, v: &Option<String>, what: &str| match v.as_deref().filter(|v| !v.is_empty())
        {
            None => Ok(None),
            Some(v) => ids::decode(prefix, v)
                .map(Some)
                .ok_or_else(|| ApiError::invalid(format!("{what} must be a {prefix}_ id"))),
        };
    let filter = CapsuleFilter {
        status,
        team_id: id_of(ids::TEAM, &q.team_id, "team_id")?,
        host_id: id_of(ids::HOST, &q.host_id, "host_id")?,
    };
    let rows = db::capsules(ctx.db(), &filter, page).await?;
    Ok(Paged::new(
        rows,
        page,
        |c| (c.row.created_at, c.row.id),
        |c| AdminCapsule {
            capsule: Capsule::from(&c.row),
            team_id: ids::encode(ids::TEAM, c.row.team_id),
            team_name: c.team_name.clone(),
            host_id: c.row.host_id.map(|h| ids::encode(ids::HOST, h)),
            host_address: c.host_address.clone(),
        },
    ))
}
