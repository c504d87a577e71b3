//! `/v1/snapshots`: snapshot templates of capsules (create, list with the platform's base
//! templates, delete).

use crate::app::App;
use crate::capsules::lifecycle;
use crate::capsules::model::Template;
use crate::capsules::templates;
use crate::db::templates as db;
use crate::http::paging::{Limits, Page, Paged};
use crate::http::views::ErrorEnvelope;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete as delete_route, get};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use wrenn_extension_api::{ApiError, ApiJson, ApiPath, ApiQuery, RequireSessionOrApiKey};

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/snapshots", get(list).post(create))
        .route("/v1/snapshots/{name}", delete_route(delete))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateSnapshot {
    /// The capsule (`sb_…`), running or paused.
    pub sandbox_id: String,
    /// Default `template-` + 8 hex; must match `^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$`.
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct TypeQuery {
    /// `base` or `snapshot`; omitted → both.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// 1–200, default 100.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `X-Next-Cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Writes a snapshot template of a capsule; the capsule is paused afterwards. Creating a
/// capsule from it forks the capsule's state (its vcpus and memory are forced).
#[utoipa::path(post, path = "/v1/snapshots", tag = "snapshots", request_body = CreateSnapshot,
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 400, body = crate::http::views::ErrorEnvelope, description = "`invalid_request`: a body that is not JSON of this shape (or not the form this route takes)"),
        (status = 201, body = Template),
        (status = 404, body = crate::http::views::ErrorEnvelope, description = "`not_found`: no such capsule of the caller's team"),
        (status = 409, description = "`name_reserved`, `template_name_taken` or `invalid_state`"),
    ))]
pub async fn create(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiJson(req): ApiJson<CreateSnapshot>,
) -> Result<(StatusCode, Json<Template>), ApiError> {
    let name = req
        .name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(templates::default_name);
    if !templates::valid_name(&name) {
        return Err(ApiError::invalid(
            "name must match ^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$",
        ));
    }
    let row = lifecycle::load(&ctx, &principal, &req.sandbox_id).await?;
    let template = crate::capsules::snapshots::snapshot(&ctx, &principal, row, name).await?;
    Ok((StatusCode::CREATED, Json(Template::from(&template))))
}

/// The team's templates and the platform's, as a bare JSON array: the platform's first,
/// then the team's, each by name (the order it always had), paged by `limit`/`cursor`
/// (`X-Next-Cursor`).
#[utoipa::path(get, path = "/v1/snapshots", tag = "snapshots", params(TypeQuery),
    responses((status = 200, body = [Template], headers(("X-Next-Cursor" = String, description = "present when another page follows"))),
              (status = 400, body = ErrorEnvelope, description = "bad type, limit or cursor"),
              (status = 401, body = ErrorEnvelope)))]
pub async fn list(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiQuery(q): ApiQuery<TypeQuery>,
) -> Result<Paged<Template>, ApiError> {
    let kind = match q.kind.as_deref() {
        None | Some("") => None,
        Some(k @ ("base" | "snapshot")) => Some(k),
        Some(_) => return Err(ApiError::invalid("type must be base or snapshot")),
    };
    let page = Page::parse_with(q.limit, q.cursor.as_deref(), Limits::OLDER_LISTS)?;
    let team = principal.team_id();
    let rows = db::page_visible(ctx.db(), team, kind, &page).await?;
    Ok(Paged::new(
        rows,
        page,
        |r| (r.team_id != uuid::Uuid::nil(), r.name.clone(), r.id),
        |r| Template::from(r),
    ))
}

/// Deletes one of the team's snapshot templates from every host (403 for platform
/// templates).
#[utoipa::path(delete, path = "/v1/snapshots/{name}", tag = "snapshots",
    params(("name" = String, Path)),
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 204), (status = 403, description = "platform template"), (status = 404),
              (status = 409, description = "`template_in_use`: a base template with capsules not yet destroyed, or snapshot templates based on it")))]
pub async fn delete(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let template = db::find_visible(ctx.db(), principal.team_id(), &name)
        .await?
        .ok_or_else(|| ApiError::not_found("not_found", "template not found"))?;
    if template.is_platform() {
        return Err(ApiError::forbidden(
            "forbidden",
            "platform templates cannot be deleted",
        ));
    }
    // A base template's rootfs is the lower layer of every capsule made from it.
    if !template.is_snapshot() {
        let live = crate::db::builds::live_capsules_of(ctx.db(), template.id).await?;
        if live > 0 {
            return Err(ApiError::conflict(
                "template_in_use",
                format!("{live} capsule(s) of this template are not destroyed yet"),
            ));
        }
        let based = db::dependents(ctx.db(), template.id).await?;
        if based > 0 {
            return Err(ApiError::conflict(
                "template_in_use",
                format!("{based} snapshot template(s) are based on this template"),
            ));
        }
    }
    crate::capsules::snapshots::delete_snapshot(&ctx, &principal, template).await?;
    Ok(StatusCode::NO_CONTENT)
}
