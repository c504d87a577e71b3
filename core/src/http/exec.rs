//! Processes in a capsule: `POST /exec`, `GET /processes`, `DELETE /processes/{selector}`, and
//! the WebSocket routes `exec/stream`, `processes/{selector}/stream` and `pty`. The capsule
//! must be running (else 409 `invalid_state`); WebSocket upgrades authenticate (cookie or API
//! key) and check the capsule before upgrading.

use crate::app::App;
use crate::capsules::exec::{self, BackgroundStarted, ExecRequest, ExecResult, ProcessList};
use crate::capsules::{lifecycle, pty};
use crate::db::capsules as db;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::IntoParams;
use wrenn_extension_api::{ids, ApiError, ApiJson, ApiPath, ApiQuery, RequireSessionOrApiKey};

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/capsules/{id}/exec", post(exec))
        .route("/v1/capsules/{id}/exec/stream", get(exec_stream))
        .route("/v1/capsules/{id}/processes", get(list_processes))
        .route(
            "/v1/capsules/{id}/processes/{selector}",
            delete(kill_process),
        )
        .route(
            "/v1/capsules/{id}/processes/{selector}/stream",
            get(process_stream),
        )
        .route("/v1/capsules/{id}/pty", get(pty))
}

/// Records exec activity in the database without delaying the response (the agent counts
/// the exec itself as activity).
fn note_activity(ctx: &App, id: uuid::Uuid) {
    let app = ctx.clone();
    ctx.spawn(async move {
        let _ = db::touch(app.db(), id).await;
    });
}

/// The upgrade, checked only after the capsule was found (so a foreign id is a 404 whether or
/// not the request is a WebSocket handshake).
fn upgrade(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<WebSocketUpgrade, ApiError> {
    ws.map_err(|r| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_required",
            format!("this endpoint speaks WebSocket: {}", r.body_text()),
        )
    })
}

/// Runs a command: foreground → 200 with its output; `background: true` → 202 with pid and
/// tag (default `proc-` + 8 hex).
#[utoipa::path(post, path = "/v1/capsules/{id}/exec", tag = "processes",
    params(("id" = String, Path)), request_body = ExecRequest,
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 400, body = crate::http::views::ErrorEnvelope, description = "`invalid_request`: a body that is not JSON of this shape (or not the form this route takes)"), (status = 404, body = crate::http::views::ErrorEnvelope, description = "`not_found`: no such capsule of the caller's team"),
        (status = 200, body = ExecResult, description = "foreground"),
        (status = 202, body = BackgroundStarted, description = "background"),
        (status = 409, description = "`invalid_state`: the capsule is not running"),
    ))]
pub async fn exec(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ExecRequest>,
) -> Result<Response, ApiError> {
    if req.cmd.is_empty() {
        return Err(ApiError::invalid("cmd is required"));
    }
    let (row, mut client) = lifecycle::usable(&ctx, &principal, &id, "exec in").await?;
    let sandbox_id = ids::encode(ids::CAPSULE, row.id);
    note_activity(&ctx, row.id);
    if req.background {
        let started = exec::start_background(&mut client, &sandbox_id, &req).await?;
        Ok((StatusCode::ACCEPTED, Json(started)).into_response())
    } else {
        let result = exec::run(&mut client, &sandbox_id, &req).await?;
        Ok(Json(result).into_response())
    }
}

/// Processes started through the API that are still running.
#[utoipa::path(get, path = "/v1/capsules/{id}/processes", tag = "processes",
    params(("id" = String, Path)), responses((status = 409, body = crate::http::views::ErrorEnvelope, description = "`invalid_state`: the capsule is not running (a capsule in `error` names its reason)"), (status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 404, body = crate::http::views::ErrorEnvelope, description = "`not_found`: no such capsule of the caller's team"), (status = 200, body = ProcessList)))]
pub async fn list_processes(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ProcessList>, ApiError> {
    let (row, mut client) = lifecycle::usable(&ctx, &principal, &id, "list processes of").await?;
    Ok(Json(
        exec::list(&mut client, &ids::encode(ids::CAPSULE, row.id)).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct SignalQuery {
    /// Signal name (`SIGTERM`, `TERM`) or number; default `SIGKILL`.
    pub signal: Option<String>,
}

/// Signals a process chosen by pid (digits) or tag.
#[utoipa::path(delete, path = "/v1/capsules/{id}/processes/{selector}", tag = "processes",
    params(("id" = String, Path), ("selector" = String, Path, description = "pid or tag"), SignalQuery),
    responses((status = 409, body = crate::http::views::ErrorEnvelope, description = "`invalid_state`: the capsule is not running (a capsule in `error` names its reason)"), (status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 204), (status = 404)))]
pub async fn kill_process(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath((id, selector)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<SignalQuery>,
) -> Result<StatusCode, ApiError> {
    let signal = match q.signal.as_deref() {
        None | Some("") => 9,
        Some(name) => exec::signal_number(name)
            .ok_or_else(|| ApiError::invalid(format!("unknown signal '{name}'")))?,
    };
    let (row, mut client) = lifecycle::usable(&ctx, &principal, &id, "signal processes of").await?;
    exec::kill(
        &mut client,
        &ids::encode(ids::CAPSULE, row.id),
        &selector,
        signal,
    )
    .await?;
    note_activity(&ctx, row.id);
    Ok(StatusCode::NO_CONTENT)
}

/// WebSocket: runs a command and streams it. Client frames: `{"type":"start","cmd","args",
/// "envs","cwd","timeout_sec"}` first, later `{"type":"stop"}`. Server frames:
/// `{"type":"start","pid"}`, `{"type":"stdout","data"}`, `{"type":"stderr","data"}`,
/// `{"type":"exit","exit_code"}`, `{"type":"error","data"}`; closes after exit.
#[utoipa::path(get, path = "/v1/capsules/{id}/exec/stream", tag = "processes",
    params(("id" = String, Path)), responses((status = 409, body = crate::http::views::ErrorEnvelope, description = "`invalid_state`: the capsule is not running (a capsule in `error` names its reason)"), (status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 404, body = crate::http::views::ErrorEnvelope, description = "`not_found`: no such capsule of the caller's team"), (status = 101, description = "WebSocket")))]
pub async fn exec_stream(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let (row, client) = lifecycle::usable(&ctx, &principal, &id, "exec in").await?;
    Ok(upgrade(ws)?.on_upgrade(move |socket| pty::exec_stream(ctx, row, client, socket)))
}

/// WebSocket: re-attaches to a running process (pid or tag); same server frames as
/// `exec/stream`.
#[utoipa::path(get, path = "/v1/capsules/{id}/processes/{selector}/stream", tag = "processes",
    params(("id" = String, Path), ("selector" = String, Path)),
    responses((status = 409, body = crate::http::views::ErrorEnvelope, description = "`invalid_state`: the capsule is not running (a capsule in `error` names its reason)"), (status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 404, body = crate::http::views::ErrorEnvelope, description = "`not_found`: no such capsule of the caller's team"), (status = 101, description = "WebSocket")))]
pub async fn process_stream(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath((id, selector)): ApiPath<(String, String)>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let (row, client) = lifecycle::usable(&ctx, &principal, &id, "attach to").await?;
    Ok(upgrade(ws)?
        .on_upgrade(move |socket| pty::process_stream(ctx, row, client, selector, socket)))
}

/// WebSocket: a pseudo-terminal. First client frame `{"type":"start","cmd":"/bin/bash","args",
/// "cols":80,"rows":24,"envs","cwd","user"}` or `{"type":"connect","tag"}`; then
/// `input{data(base64)}`, `resize{cols,rows}`, `kill`. Server frames: `started{tag,pid}`,
/// `output{data(base64)}`, `exit{exit_code}`, `error{data,fatal}`, `ping` every 30 s. The
/// PTY survives a disconnect and is re-attached by tag.
#[utoipa::path(get, path = "/v1/capsules/{id}/pty", tag = "processes",
    params(("id" = String, Path)), responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 404, body = crate::http::views::ErrorEnvelope, description = "`not_found`: no such capsule of the caller's team"), (status = 101, description = "WebSocket")))]
pub async fn pty(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let (row, client) = lifecycle::usable(&ctx, &principal, &id, "open a terminal in").await?;
    Ok(upgrade(ws)?.on_upgrade(move |socket| pty::pty(ctx, row, client, socket)))
}
