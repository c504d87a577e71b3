//! `/v1/capsules`: create, list, get, destroy, pause, resume, ping, metrics, stats, usage and
//! the port-proxy access token. Every route takes a session or an API key; a capsule of
//! another team is a 404 like a missing one.

use crate::app::App;
use crate::capsules::lifecycle;
use crate::capsules::model::{Capsule, CreateCapsule};
use crate::capsules::proxy;
use crate::capsules::stats::{self, Metrics, Stats, Usage};
use crate::db::capsules as db;
use crate::http::paging::{ListQuery, Paged};
use crate::http::views::ErrorEnvelope;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use wrenn_extension_api::{ApiError, ApiPath, ApiQuery, RequireSessionOrApiKey};

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/capsules", post(create).get(list))
        .route("/v1/capsules/stats", get(team_stats))
        .route("/v1/capsules/usage", get(team_usage))
        .route("/v1/capsules/{id}", get(show).delete(destroy))
        .route("/v1/capsules/{id}/pause", post(pause))
        .route("/v1/capsules/{id}/resume", post(resume))
        .route("/v1/capsules/{id}/ping", post(ping))
        .route("/v1/capsules/{id}/network", patch(set_network))
        .route("/v1/capsules/{id}/metrics", get(metrics))
        .route("/v1/capsules/{id}/access-token", post(access_token))
}

/// The OpenAPI description of the capsule, exec, file, snapshot and proxy routes.
#[derive(OpenApi)]
#[openapi(
    paths(
        create, list, show, destroy, pause, resume, ping, set_network, metrics, team_stats,
        team_usage, access_token,
        super::exec::exec, super::exec::list_processes, super::exec::kill_process,
        super::exec::exec_stream, super::exec::process_stream, super::exec::pty,
        super::files::write, super::files::read, super::files::stream_write,
        super::files::stream_read, super::files::list, super::files::mkdir, super::files::remove,
        super::snapshots::create, super::snapshots::list, super::snapshots::delete,
    ),
    components(schemas(
        Capsule, CreateCapsule, Stats, Usage, Metrics, AccessToken,
        crate::capsules::state::CapsuleStatus, crate::capsules::model::CapsuleMetadata,
        crate::capsules::model::Template, crate::capsules::model::NetworkPolicy,
        crate::capsules::model::NetworkMode,
    )),
    tags(
        (name = "capsules", description = "Capsule lifecycle, metrics and usage"),
        (name = "processes", description = "Exec, background processes, streams and PTYs"),
        (name = "files", description = "Files inside a running capsule"),
        (name = "snapshots", description = "Snapshot templates"),
        (name = "proxy", description = "Port proxy: requests to `{port}-{capsule_id}.{WRENN_DOMAIN}` \
            are forwarded (HTTP and WebSocket) to that port inside the capsule. Authenticate with \
            the team's `X-API-Key` or session cookie, or with a per-capsule access token from \
            `POST /v1/capsules/{id}/access-token` sent as header `X-Wrenn-Access-Token` or as \
            query parameter `wrenn_token` (which then sets the `wrenn_proxy_token` cookie on \
            that host). A paused capsule answers 409 `invalid_state`."),
    )
)]
pub struct CapsulesApi;

/// Creates a capsule and waits until it runs.
#[utoipa::path(post, path = "/v1/capsules", tag = "capsules", request_body = CreateCapsule,
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 400, body = crate::http::views::ErrorEnvelope, description = "`invalid_request`: a body that is not JSON of this shape (or not the form this route takes)"),
        (status = 201, body = Capsule),
        (status = 402, description = "`concurrent_sandbox_limit`, `vcpu_limit`, `memory_limit` or `usage_unavailable`"),
        (status = 404, description = "`template_not_found`"),
        (status = 503, description = "`no_hosts_available`"),
    ))]
pub async fn create(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    body: Bytes,
) -> Result<(StatusCode, Json<Capsule>), ApiError> {
    // An empty body means every default (`curl -X POST .../v1/capsules`).
    let req: CreateCapsule = if body.iter().all(u8::is_ascii_whitespace) {
        CreateCapsule::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("invalid request body: {e}")))?
    };
    let row = lifecycle::create(&ctx, &principal, req).await?;
    Ok((StatusCode::CREATED, Json(Capsule::from(&row))))
}

/// The team's capsules except stopped and errored ones, newest first (`(created_at, id)`
/// descending), as a bare JSON array (the contract existing clients parse), paged by
/// `limit`/`cursor` (`X-Next-Cursor`).
#[utoipa::path(get, path = "/v1/capsules", tag = "capsules", params(ListQuery),
    responses((status = 200, body = [Capsule], headers(("X-Next-Cursor" = String, description = "present when another page follows"))),
              (status = 400, body = ErrorEnvelope, description = "bad limit or cursor"),
              (status = 401, body = ErrorEnvelope)))]
pub async fn list(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Paged<Capsule>, ApiError> {
    let page = q.page()?;
    let rows = db::page_for_team(ctx.db(), principal.team_id(), page).await?;
    Ok(Paged::new(
        rows,
        page,
        |r| (r.created_at, r.id),
        |r| Capsule::from(r),
    ))
}

/// One capsule.
#[utoipa::path(get, path = "/v1/capsules/{id}", tag = "capsules",
    params(("id" = String, Path, description = "Capsule id (`sb_…`)")),
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 200, body = Capsule), (status = 404, description = "not the caller's")))]
pub async fn show(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Capsule>, ApiError> {
    let row = lifecycle::load(&ctx, &principal, &id).await?;
    Ok(Json(Capsule::from(&row)))
}

/// Destroys a capsule (→ `stopped`).
#[utoipa::path(delete, path = "/v1/capsules/{id}", tag = "capsules",
    params(("id" = String, Path)),
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 204), (status = 404), (status = 409, description = "`invalid_state` while another operation runs")))]
pub async fn destroy(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let row = lifecycle::load(&ctx, &principal, &id).await?;
    lifecycle::destroy(&ctx, &principal, row).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pauses a running capsule (memory kept).
#[utoipa::path(post, path = "/v1/capsules/{id}/pause", tag = "capsules",
    params(("id" = String, Path)),
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 404, body = crate::http::views::ErrorEnvelope, description = "`not_found`: no such capsule of the caller's team"), (status = 200, body = Capsule), (status = 409, description = "`invalid_state`")))]
pub async fn pause(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Capsule>, ApiError> {
    let row = lifecycle::load(&ctx, &principal, &id).await?;
    let row = lifecycle::pause(&ctx, &principal, row).await?;
    Ok(Json(Capsule::from(&row)))
}

/// Resumes a paused capsule.
#[utoipa::path(post, path = "/v1/capsules/{id}/resume", tag = "capsules",
    params(("id" = String, Path)),
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 404, body = crate::http::views::ErrorEnvelope, description = "`not_found`: no such capsule of the caller's team"), (status = 200, body = Capsule), (status = 409, description = "`invalid_state`")))]
pub async fn resume(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Capsule>, ApiError> {
    let row = lifecycle::load(&ctx, &principal, &id).await?;
    let row = lifecycle::resume(&ctx, &principal, row).await?;
    Ok(Json(Capsule::from(&row)))
}

/// Resets the inactivity timer.
#[utoipa::path(post, path = "/v1/capsules/{id}/ping", tag = "capsules",
    params(("id" = String, Path)),
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 404, body = crate::http::views::ErrorEnvelope, description = "`not_found`: no such capsule of the caller's team"), (status = 204), (status = 409, description = "`invalid_state`")))]
pub async fn ping(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    lifecycle::ping(&ctx, &principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the capsule's egress policy (running or paused capsules). Enforced on the
/// capsule's host at once; open connections the new policy forbids stop passing.
#[utoipa::path(patch, path = "/v1/capsules/{id}/network", tag = "capsules",
    params(("id" = String, Path)), request_body = crate::capsules::model::NetworkPolicy,
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"),
        (status = 200, body = Capsule),
        (status = 400, description = "`invalid_request`: unknown mode, bad CIDR or host name, a name that does not resolve"),
        (status = 404, description = "not the caller's"),
        (status = 409, description = "`invalid_state`: the capsule is not running or paused; `conflict`: its host runs capsules without a network"),
    ))]
pub async fn set_network(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> Result<Json<Capsule>, ApiError> {
    let row = lifecycle::load(&ctx, &principal, &id).await?;
    let policy: crate::capsules::model::NetworkPolicy = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid(format!("invalid request body: {e}")))?;
    let row = lifecycle::set_network(&ctx, row, policy).await?;
    Ok(Json(Capsule::from(&row)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct RangeQuery {
    /// Metrics: 5m, 10m, 1h, 2h, 6h or 24h (default 10m). Stats: 5m, 1h, 6h, 24h or 30d
    /// (default 1h).
    pub range: Option<String>,
}

/// Resource samples of one capsule.
#[utoipa::path(get, path = "/v1/capsules/{id}/metrics", tag = "capsules",
    params(("id" = String, Path), RangeQuery),
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 404, body = crate::http::views::ErrorEnvelope, description = "`not_found`: no such capsule of the caller's team"), (status = 200, body = Metrics)))]
pub async fn metrics(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Json<Metrics>, ApiError> {
    let row = lifecycle::load(&ctx, &principal, &id).await?;
    let range = q.range.unwrap_or_else(|| "10m".into());
    if stats::metrics_range(&range).is_none() {
        return Err(ApiError::invalid(
            "range must be one of 5m, 10m, 1h, 2h, 6h, 24h",
        ));
    }
    Ok(Json(stats::capsule_metrics(&ctx, &row, &range).await?))
}

/// The team's running capsules and reservations now, peaks and a series over the range.
#[utoipa::path(get, path = "/v1/capsules/stats", tag = "capsules",
    params(RangeQuery), responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 200, body = Stats)))]
pub async fn team_stats(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Json<Stats>, ApiError> {
    let range = q.range.unwrap_or_else(|| "1h".into());
    let span = stats::stats_range(&range)
        .ok_or_else(|| ApiError::invalid("range must be one of 5m, 1h, 6h, 24h, 30d"))?;
    Ok(Json(
        stats::team_stats(&ctx, principal.team_id(), &range, span).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UsageQuery {
    /// First day (`YYYY-MM-DD`, UTC); default 30 days before `to`.
    pub from: Option<NaiveDate>,
    /// Last day (`YYYY-MM-DD`, UTC); default today. At most 366 days after `from`.
    pub to: Option<NaiveDate>,
}

/// vCPU-minutes and MiB-minutes reserved per day.
#[utoipa::path(get, path = "/v1/capsules/usage", tag = "capsules",
    params(UsageQuery), responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 200, body = Usage)))]
pub async fn team_usage(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Json<Usage>, ApiError> {
    let to = q.to.unwrap_or_else(|| Utc::now().date_naive());
    let from = q.from.unwrap_or(to - Duration::days(30));
    if from > to || (to - from).num_days() > 366 {
        return Err(ApiError::invalid(
            "from must not be after to, and the span is at most 366 days",
        ));
    }
    Ok(Json(
        stats::team_usage(&ctx, principal.team_id(), from, to).await?,
    ))
}

/// A per-capsule access token for the port proxy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccessToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    /// Header to send it in (`X-Wrenn-Access-Token`); or use the `wrenn_token` query parameter.
    pub header: String,
}

/// Issues a token that opens this capsule's port proxy (and nothing else) until it expires
/// (`WRENN_PROXY_TOKEN_TTL_SEC`, default 1 h). Share it with whoever should reach the
/// capsule's ports without the team's credentials.
#[utoipa::path(post, path = "/v1/capsules/{id}/access-token", tag = "proxy",
    params(("id" = String, Path)), responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 404, body = crate::http::views::ErrorEnvelope, description = "`not_found`: no such capsule of the caller's team"), (status = 201, body = AccessToken)))]
pub async fn access_token(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<AccessToken>), ApiError> {
    let row = lifecycle::load(&ctx, &principal, &id).await?;
    if row.status().is_terminal() {
        return Err(lifecycle::invalid_state(&row, "issue a token for"));
    }
    let ttl = ctx.capsules.proxy_token_ttl_sec as i64;
    let expires_at = Utc::now() + Duration::seconds(ttl);
    let token = proxy::issue_token(ctx.jwt_secret(), row.id, expires_at.timestamp());
    Ok((
        StatusCode::CREATED,
        Json(AccessToken {
            token,
            expires_at,
            header: proxy::TOKEN_HEADER.to_string(),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_documents_every_capsule_route() {
        let doc = crate::http::docs::document("test");
        let json = serde_json::to_value(&doc).unwrap();
        for path in [
            "/v1/capsules",
            "/v1/capsules/{id}",
            "/v1/capsules/{id}/exec",
            "/v1/capsules/{id}/pty",
            "/v1/capsules/{id}/files/stream/write",
            "/v1/capsules/{id}/access-token",
            "/v1/capsules/stats",
            "/v1/snapshots/{name}",
        ] {
            assert!(json["paths"].get(path).is_some(), "{path} undocumented");
        }
        let tags = json["tags"].to_string();
        assert!(
            tags.contains("wrenn_token"),
            "the proxy's access is documented"
        );
        assert!(CapsulesApi::openapi().components.is_some());
    }
}
