//! `/v1/teams`: teams, members and roles.
//!
//! Sessions may act on any team they belong to (not only the session's current team). An API
//! key may only read its own team (`GET /v1/teams/{id}`); other teams are 404, as are teams the
//! caller is not a member of, so ids of other teams are never confirmed.

use crate::app::App;
use crate::db;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use wrenn_extension_api::{
    ids, ApiError, ApiJson, ApiPath, ApiQuery, Principal, RequireSession, RequireSessionOrApiKey,
    Role,
};

use super::paging::{ListQuery, Paged};
use super::views::{ErrorEnvelope, MemberView, TeamView};

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/teams", get(list).post(create))
        .route("/v1/teams/{id}", get(get_team).patch(rename).delete(remove))
        .route("/v1/teams/{id}/members", get(list_members).post(add_member))
        .route(
            "/v1/teams/{id}/members/{user_id}",
            patch(set_role).delete(remove_member),
        )
        .route("/v1/teams/{id}/leave", post(leave))
}

fn team_not_found() -> ApiError {
    ApiError::not_found("team_not_found", "team not found")
}

fn forbidden(action: &str) -> ApiError {
    ApiError::forbidden(
        "forbidden",
        format!("only team owners and admins can {action}"),
    )
}

/// Decodes a team id and returns the caller's role in it; 404 unless a member of a live team.
async fn membership(ctx: &App, user_id: Uuid, wire_id: &str) -> Result<(Uuid, Role), ApiError> {
    let team_id = ids::decode(ids::TEAM, wire_id).ok_or_else(team_not_found)?;
    let role = db::teams::role_of(ctx.db(), team_id, user_id)
        .await?
        .ok_or_else(team_not_found)?;
    Ok((team_id, role))
}

fn validate_team_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    let n = name.chars().count();
    if n == 0 || n > 100 {
        return Err(ApiError::bad_request(
            "invalid_name",
            "team name must be 1 to 100 characters",
        ));
    }
    Ok(name.to_string())
}

/// Teams you belong to, with your role, oldest first (`(created_at, id)` ascending, the
/// order it always had), paged by `limit`/`cursor` (`X-Next-Cursor`).
#[utoipa::path(get, path = "/v1/teams", tag = "teams", params(ListQuery),
    responses((status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 200, body = [TeamView], headers(("X-Next-Cursor" = String, description = "present when another page follows"))),
              (status = 400, body = ErrorEnvelope, description = "bad limit or cursor"),
              (status = 401, body = ErrorEnvelope)))]
pub async fn list(
    State(ctx): State<App>,
    RequireSession(s): RequireSession,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Paged<TeamView>, ApiError> {
    let page = q.page()?;
    let teams = db::teams::page_for_user(ctx.db(), s.user_id, page).await?;
    Ok(Paged::new(
        teams,
        page,
        |t| (t.created_at, t.id),
        TeamView::with_role,
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct TeamName {
    pub name: String,
}

/// Create a team; you become its owner.
#[utoipa::path(post, path = "/v1/teams", tag = "teams", request_body = TeamName,
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 201, body = TeamView), (status = 400, body = ErrorEnvelope)))]
pub async fn create(
    State(ctx): State<App>,
    RequireSession(s): RequireSession,
    ApiJson(req): ApiJson<TeamName>,
) -> Result<(StatusCode, Json<TeamView>), ApiError> {
    let name = validate_team_name(&req.name)?;
    let mut tx = ctx.db().begin().await?;
    let team = db::teams::insert(&mut *tx, Uuid::new_v4(), &name).await?;
    db::teams::add_member(&mut *tx, team.id, s.user_id, Role::Owner).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(TeamView::new(&team, Some("owner"))),
    ))
}

/// A team and its members.
#[derive(Serialize, ToSchema)]
pub struct TeamDetail {
    pub team: TeamView,
    pub members: Vec<MemberView>,
}

/// A team you belong to (or the API key's own team) with its members.
#[utoipa::path(get, path = "/v1/teams/{id}", tag = "teams", params(("id" = String, Path)),
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 200, body = TeamDetail), (status = 404, body = ErrorEnvelope)))]
pub async fn get_team(
    State(ctx): State<App>,
    RequireSessionOrApiKey(p): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TeamDetail>, ApiError> {
    let (team_id, role) = match &p {
        Principal::Session(s) => {
            let (t, r) = membership(&ctx, s.user_id, &id).await?;
            (t, Some(r))
        }
        Principal::ApiKey(k) => {
            let t = ids::decode(ids::TEAM, &id).ok_or_else(team_not_found)?;
            if t != k.team_id {
                return Err(team_not_found());
            }
            (t, None)
        }
    };
    let team = db::teams::get(ctx.db(), team_id)
        .await?
        .ok_or_else(team_not_found)?;
    let members = db::teams::members(ctx.db(), team_id).await?;
    Ok(Json(TeamDetail {
        team: TeamView::new(&team, role.map(Role::as_str)),
        members: members.iter().map(MemberView::from).collect(),
    }))
}

/// `PATCH /v1/teams/{id}`: a new name and/or settings; absent fields are kept.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamUpdate {
    pub name: Option<String>,
    /// Let the port proxy resume a paused capsule instead of answering 409.
    pub auto_resume: Option<bool>,
}

/// Rename a team or change its settings (owner or admin).
#[utoipa::path(patch, path = "/v1/teams/{id}", tag = "teams", params(("id" = String, Path)), request_body = TeamUpdate,
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 200, body = TeamView), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn rename(
    State(ctx): State<App>,
    RequireSession(s): RequireSession,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<TeamUpdate>,
) -> Result<Json<TeamView>, ApiError> {
    let (team_id, role) = membership(&ctx, s.user_id, &id).await?;
    if !role.can_manage() {
        return Err(forbidden("change a team"));
    }
    let name = req.name.as_deref().map(validate_team_name).transpose()?;
    if name.is_none() && req.auto_resume.is_none() {
        return Err(ApiError::invalid(
            "nothing to change: give name or auto_resume",
        ));
    }
    let team = db::teams::update(ctx.db(), team_id, name.as_deref(), req.auto_resume)
        .await?
        .ok_or_else(team_not_found)?;
    Ok(Json(TeamView::new(&team, Some(role.as_str()))))
}

/// Delete a team (owner only): soft delete; its capsules are destroyed, its API keys revoked
/// and its channels removed.
#[utoipa::path(delete, path = "/v1/teams/{id}", tag = "teams", params(("id" = String, Path)),
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn remove(
    State(ctx): State<App>,
    RequireSession(s): RequireSession,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let (team_id, role) = membership(&ctx, s.user_id, &id).await?;
    if role != Role::Owner {
        return Err(ApiError::forbidden(
            "forbidden",
            "only the team owner can delete it",
        ));
    }
    if team_id == ids::PLATFORM_TEAM {
        return Err(ApiError::forbidden(
            "forbidden",
            "the platform team cannot be deleted",
        ));
    }
    let actor = crate::capsules::outcome::actor_of(&ctx, Some(&Principal::Session(s))).await;
    crate::teams::delete(&ctx, team_id, &actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Members of a team you belong to, in the order they joined (`(joined_at, user id)`
/// ascending, the order it always had), paged by `limit`/`cursor` (`X-Next-Cursor`).
#[utoipa::path(get, path = "/v1/teams/{id}/members", tag = "teams", params(("id" = String, Path), ListQuery),
    responses((status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 200, body = [MemberView], headers(("X-Next-Cursor" = String, description = "present when another page follows"))),
              (status = 400, body = ErrorEnvelope, description = "bad limit or cursor"),
              (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn list_members(
    State(ctx): State<App>,
    RequireSession(s): RequireSession,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Paged<MemberView>, ApiError> {
    let (team_id, _) = membership(&ctx, s.user_id, &id).await?;
    let page = q.page()?;
    let members = db::teams::members_page(ctx.db(), team_id, page).await?;
    Ok(Paged::new(
        members,
        page,
        |m| (m.joined_at, m.user_id),
        |m| MemberView::from(m),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct AddMember {
    /// Email of an existing, active user.
    pub email: String,
}

/// Add an existing user as a member (owner or admin).
#[utoipa::path(post, path = "/v1/teams/{id}/members", tag = "teams", params(("id" = String, Path)), request_body = AddMember,
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 400, body = crate::http::views::ErrorEnvelope, description = "`invalid_request`: a body that is not JSON of this shape (or not the form this route takes)"), (status = 201, body = MemberView), (status = 403, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope, description = "team_not_found or user_not_found"),
              (status = 409, body = ErrorEnvelope, description = "already_member")))]
pub async fn add_member(
    State(ctx): State<App>,
    RequireSession(s): RequireSession,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<AddMember>,
) -> Result<(StatusCode, Json<MemberView>), ApiError> {
    let (team_id, role) = membership(&ctx, s.user_id, &id).await?;
    if !role.can_manage() {
        return Err(forbidden("add members"));
    }
    let user = db::users::find_by_email(ctx.db(), req.email.trim())
        .await?
        .filter(|u| u.is_active && u.deleted_at.is_none())
        .ok_or_else(|| ApiError::not_found("user_not_found", "no active user with this email"))?;
    db::teams::add_member(ctx.db(), team_id, user.id, Role::Member)
        .await
        .map_err(|e| {
            ApiError::conflict_on_unique(e, "already_member", "this user is already a member")
        })?;
    let members = db::teams::members(ctx.db(), team_id).await?;
    let member = members
        .iter()
        .find(|m| m.user_id == user.id)
        .ok_or_else(|| ApiError::internal("added member not listed"))?;
    Ok((StatusCode::CREATED, Json(MemberView::from(member))))
}

#[derive(Deserialize, ToSchema)]
pub struct SetRole {
    /// `admin` or `member` (ownership cannot be granted or taken here).
    pub role: String,
}

/// Change a member's role (owner or admin); the owner's role is immutable.
#[utoipa::path(patch, path = "/v1/teams/{id}/members/{user_id}", tag = "teams",
    params(("id" = String, Path), ("user_id" = String, Path)), request_body = SetRole,
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 204), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope, description = "forbidden or owner_immutable"), (status = 404, body = ErrorEnvelope)))]
pub async fn set_role(
    State(ctx): State<App>,
    RequireSession(s): RequireSession,
    ApiPath((id, user_id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<SetRole>,
) -> Result<StatusCode, ApiError> {
    let (team_id, role) = membership(&ctx, s.user_id, &id).await?;
    let target = ids::parse(ids::USER, &user_id, "member")?;
    if !role.can_manage() {
        return Err(forbidden("change roles"));
    }
    let new_role = match Role::parse(&req.role) {
        Some(r @ (Role::Admin | Role::Member)) => r,
        _ => return Err(ApiError::invalid("role must be \"admin\" or \"member\"")),
    };
    match db::teams::role_of(ctx.db(), team_id, target).await? {
        None => Err(ApiError::not_found("not_found", "member not found")),
        Some(Role::Owner) => Err(ApiError::forbidden(
            "owner_immutable",
            "the owner's role cannot change",
        )),
        Some(_) => {
            db::teams::set_role(ctx.db(), team_id, target, new_role).await?;
            Ok(StatusCode::NO_CONTENT)
        }
    }
}

/// Remove a member (owner or admin); the owner cannot be removed.
#[utoipa::path(delete, path = "/v1/teams/{id}/members/{user_id}", tag = "teams",
    params(("id" = String, Path), ("user_id" = String, Path)),
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn remove_member(
    State(ctx): State<App>,
    RequireSession(s): RequireSession,
    ApiPath((id, user_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (team_id, role) = membership(&ctx, s.user_id, &id).await?;
    let target = ids::parse(ids::USER, &user_id, "member")?;
    if !role.can_manage() {
        return Err(forbidden("remove members"));
    }
    match db::teams::role_of(ctx.db(), team_id, target).await? {
        None => Err(ApiError::not_found("not_found", "member not found")),
        Some(Role::Owner) => Err(ApiError::forbidden(
            "owner_immutable",
            "the team owner cannot be removed",
        )),
        Some(_) => {
            db::teams::remove_member(ctx.db(), team_id, target).await?;
            Ok(StatusCode::NO_CONTENT)
        }
    }
}

/// Leave a team (the owner cannot).
#[utoipa::path(post, path = "/v1/teams/{id}/leave", tag = "teams", params(("id" = String, Path)),
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 204), (status = 400, body = ErrorEnvelope, description = "owner_cannot_leave"), (status = 404, body = ErrorEnvelope)))]
pub async fn leave(
    State(ctx): State<App>,
    RequireSession(s): RequireSession,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let (team_id, role) = membership(&ctx, s.user_id, &id).await?;
    if role == Role::Owner {
        return Err(ApiError::bad_request(
            "owner_cannot_leave",
            "the owner cannot leave the team; delete it instead",
        ));
    }
    db::teams::remove_member(ctx.db(), team_id, s.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
