//! `/v1/builds`: template builds (submit, list, get, cancel, logs as JSON or a live SSE
//! stream) and `/v1/admin/builds` (every team's). The team's members read its builds;
//! submitting needs the team's owner or admin (see [`crate::builds`]).

use crate::app::App;
use crate::builds::model::{Build, BuildStatus, LogEntry, StepState, StepStatus};
use crate::builds::{self, BuildFile, Submission};
use crate::db::builds::{self as db, BuildRow};
use crate::http::paging::{Page, Paged};
use crate::http::views::ErrorEnvelope;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use utoipa::{IntoParams, OpenApi, ToSchema};
use wrenn_extension_api::{
    ids, ApiError, ApiJson, ApiPath, ApiQuery, Principal, RequireAdmin, RequireSessionOrApiKey,
};

/// Request bodies carry the files base64-encoded: room for the files bound and the recipe.
const BODY_LIMIT: usize = 96 * 1024 * 1024;
/// How often a live log stream looks for new entries.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

pub fn router() -> Router<App> {
    Router::new()
        .route(
            "/v1/builds",
            post(create)
                .get(list)
                .layer(DefaultBodyLimit::max(BODY_LIMIT)),
        )
        .route("/v1/builds/{id}", get(show))
        .route("/v1/builds/{id}/cancel", post(cancel))
        .route("/v1/builds/{id}/logs", get(logs))
        .route("/v1/admin/builds", get(admin_list))
}

#[derive(OpenApi)]
#[openapi(
    paths(create, list, show, cancel, logs, admin_list),
    components(schemas(
        CreateBuild, BuildFile, Build, BuildStatus, StepState, StepStatus, LogEntry
    )),
    tags((name = "builds", description = "Template builds from recipes"))
)]
pub struct BuildsApi;

/// `POST /v1/builds`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBuild {
    /// The template's name (`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$`). A template an earlier build
    /// made under this name is replaced once the build succeeds.
    pub name: String,
    /// The recipe (`FROM`, `RUN`, `START`, `ENV`, `WORKDIR`, `USER`, `COPY`, `HEALTHCHECK`; see
    /// `core/README.md`).
    pub recipe: String,
    /// Files the recipe's `COPY` lines name (at most `WRENN_BUILD_MAX_FILES_BYTES` in all).
    #[serde(default)]
    pub files: Vec<BuildFile>,
    /// Build again even when an identical earlier build's template exists.
    #[serde(default)]
    pub rebuild: bool,
    /// `team` (default) or `platform` (platform admins, session only).
    #[serde(default)]
    pub scope: Option<String>,
    /// vCPUs of the build's capsule (and the template); default the `FROM` template's.
    #[serde(default)]
    pub vcpus: Option<u32>,
    /// Memory of the build's capsule (and the template), MiB; default the `FROM`
    /// template's, at least 512.
    #[serde(default)]
    pub memory_mb: Option<u32>,
}

/// Queues a build. An identical earlier build whose template still exists is answered
/// instead (200, `reused: true`) unless `rebuild` is set.
#[utoipa::path(post, path = "/v1/builds", tag = "builds", request_body = CreateBuild,
    responses(
        (status = 202, body = Build, description = "queued"),
        (status = 200, body = Build, description = "an identical earlier build, reused"),
        (status = 400, body = ErrorEnvelope, description = "`invalid_recipe` (the message names the line) or `invalid_request`"),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope, description = "not the team's owner or admin; `admin_required` for platform builds"),
        (status = 404, body = ErrorEnvelope, description = "`template_not_found`: the FROM template"),
        (status = 409, body = ErrorEnvelope, description = "`template_name_taken`, `name_reserved` or `build_in_progress`"),
        (status = 413, body = ErrorEnvelope, description = "`too_large`: the files"),
    ))]
pub async fn create(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiJson(req): ApiJson<CreateBuild>,
) -> Result<(StatusCode, Json<Build>), ApiError> {
    let platform = match req.scope.as_deref() {
        None | Some("") | Some("team") => false,
        Some("platform") => true,
        Some(_) => return Err(ApiError::invalid("scope must be team or platform")),
    };
    let (build, reused) = builds::submit(
        &ctx,
        &principal,
        Submission {
            name: req.name.trim().to_string(),
            recipe: req.recipe,
            files: req.files,
            rebuild: req.rebuild,
            platform,
            vcpus: req.vcpus,
            memory_mb: req.memory_mb,
        },
    )
    .await?;
    let status = if reused {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(build)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// 1–200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `X-Next-Cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only builds in this status.
    pub status: Option<String>,
}

fn status_filter(q: &ListQuery) -> Result<Option<BuildStatus>, ApiError> {
    match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => BuildStatus::parse(s)
            .map(Some)
            .ok_or_else(|| ApiError::invalid(format!("unknown status {s:?}"))),
    }
}

async fn page_of(
    ctx: &App,
    team: Option<uuid::Uuid>,
    q: &ListQuery,
) -> Result<Paged<Build>, ApiError> {
    let page = Page::parse(q.limit, q.cursor.as_deref())?;
    let rows = db::list(ctx.db(), team, status_filter(q)?, &page).await?;
    Ok(Paged::new(
        rows,
        page,
        |r| (r.created_at, r.id),
        |r| Build::from_row(r, false),
    ))
}

/// The team's builds, newest first.
#[utoipa::path(get, path = "/v1/builds", tag = "builds", params(ListQuery),
    responses((status = 200, body = [Build], headers(("X-Next-Cursor" = String, description = "present when another page follows"))),
              (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope)))]
pub async fn list(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Paged<Build>, ApiError> {
    page_of(&ctx, Some(principal.team_id()), &q).await
}

/// Every team's builds (platform admins).
#[utoipa::path(get, path = "/v1/admin/builds", tag = "admin", params(ListQuery),
    responses((status = 200, body = [Build], headers(("X-Next-Cursor" = String, description = "present when another page follows"))),
              (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope, description = "not a platform admin, or an API key")))]
pub async fn admin_list(
    State(ctx): State<App>,
    RequireAdmin(_admin): RequireAdmin,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Paged<Build>, ApiError> {
    page_of(&ctx, None, &q).await
}

async fn load(ctx: &App, principal: &Principal, wire: &str) -> Result<BuildRow, ApiError> {
    let not_found = || ApiError::not_found("not_found", "build not found");
    let id = ids::decode(ids::BUILD, wire).ok_or_else(not_found)?;
    db::get_for_team(ctx.db(), id, principal.team_id())
        .await?
        .ok_or_else(not_found)
}

/// One build of the team.
#[utoipa::path(get, path = "/v1/builds/{id}", tag = "builds", params(("id" = String, Path, description = "`bld_…`")),
    responses((status = 200, body = Build), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn show(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Build>, ApiError> {
    let row = load(&ctx, &principal, &id).await?;
    Ok(Json(Build::from_row(&row, false)))
}

/// Cancels a build: a queued one at once, a running one within about a second (the step in
/// flight is stopped and its capsule destroyed; nothing is left behind).
#[utoipa::path(post, path = "/v1/builds/{id}/cancel", tag = "builds", params(("id" = String, Path, description = "`bld_…`")),
    responses((status = 200, body = Build), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope, description = "`invalid_state`: the build has ended")))]
pub async fn cancel(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Build>, ApiError> {
    let row = load(&ctx, &principal, &id).await?;
    let row = builds::cancel(&ctx, &row).await?;
    Ok(Json(Build::from_row(&row, false)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct LogsQuery {
    /// Entries after this `seq` (default: from the start).
    pub after: Option<i64>,
    /// Follow the build live as Server-Sent Events (also when the request accepts
    /// `text/event-stream`).
    pub follow: Option<bool>,
    /// JSON answers: at most this many entries (1–10000, default 1000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
}

/// The build's log. As JSON: the entries after `after`. Followed (SSE): every entry as
/// `event: log` (`id` = seq), `event: status` with the Build whenever it or a step changes
/// status, and `event: end` with the final Build, after which the stream closes.
#[utoipa::path(get, path = "/v1/builds/{id}/logs", tag = "builds",
    params(("id" = String, Path, description = "`bld_…`"), LogsQuery),
    responses((status = 200, body = [LogEntry], description = "JSON, or text/event-stream when followed"),
              (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn logs(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<LogsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let row = load(&ctx, &principal, &id).await?;
    let after = q.after.unwrap_or(0).max(0);
    let wants_stream = q.follow.unwrap_or(false)
        || headers
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"));
    if !wants_stream {
        let limit = q.limit.unwrap_or(1000);
        if !(1..=10_000).contains(&limit) {
            return Err(ApiError::invalid("limit must be between 1 and 10000"));
        }
        let rows = db::logs(ctx.db(), row.id, after, limit).await?;
        let entries: Vec<LogEntry> = rows.iter().map(LogEntry::from).collect();
        return Ok(Json(entries).into_response());
    }
    Ok(follow(ctx, row, after).into_response())
}

/// The live stream: the log from the database every [`FOLLOW_EVERY`], the build's status
/// whenever it changes, until the build ends (or the server shuts down).
fn follow(
    ctx: App,
    row: BuildRow,
    after: i64,
) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    struct Follow {
        ctx: App,
        id: uuid::Uuid,
        after: i64,
        last: Option<String>,
        queue: std::collections::VecDeque<Event>,
        ended: bool,
        first: bool,
    }
    let state = Follow {
        ctx,
        id: row.id,
        after,
        last: None,
        queue: Default::default(),
        ended: false,
        first: true,
    };
    let events = futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(e) = s.queue.pop_front() {
                return Some((Ok(e), s));
            }
            if s.ended {
                return None;
            }
            if !s.first {
                let shutdown = s.ctx.shutdown_token().clone();
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(FOLLOW_EVERY) => {}
                }
            }
            s.first = false;
            // The build first, then the log: an entry written before the build ended is
            // read before `end` is sent.
            let build = match db::get(s.ctx.db(), s.id).await {
                Ok(Some(b)) => b,
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "Following a build failed.");
                    continue;
                }
            };
            loop {
                match db::logs(s.ctx.db(), s.id, s.after, 500).await {
                    Ok(rows) => {
                        let more = rows.len() == 500;
                        for r in &rows {
                            s.after = r.seq;
                            let entry = LogEntry::from(r);
                            s.queue.push_back(
                                Event::default()
                                    .event("log")
                                    .id(r.seq.to_string())
                                    .data(serde_json::to_string(&entry).unwrap_or_default()),
                            );
                        }
                        if !more {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Reading a build's log failed.");
                        break;
                    }
                }
            }
            let view = serde_json::to_string(&Build::from_row(&build, false)).unwrap_or_default();
            let signature = format!(
                "{}:{}",
                build.status.as_str(),
                serde_json::to_string(&build.steps.0).unwrap_or_default()
            );
            if build.status.is_final() {
                s.queue.push_back(Event::default().event("end").data(view));
                s.ended = true;
            } else if s.last.as_deref() != Some(signature.as_str()) {
                s.queue
                    .push_back(Event::default().event("status").data(view));
                s.last = Some(signature);
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
