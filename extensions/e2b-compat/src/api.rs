//! E2B's control-plane REST surface (E2B.md §1): the paths of both SDK generations, E2B's
//! shapes and status codes, and its error body `{"code":<int>,"message":str}`.
//!
//! Authentication: `X-API-KEY` (or `Authorization: Bearer`) carrying a Wrenn API key, either
//! as issued (`wrn_<hex>`) or in E2B's shape `e2b_<hex>` (the same hex digits), which the
//! SDKs that validate key shapes accept.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use wrenn_extension_api::axum::body::Bytes;
use wrenn_extension_api::axum::extract::{FromRequestParts, Path, Query, State};
use wrenn_extension_api::axum::http::request::Parts;
use wrenn_extension_api::axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use wrenn_extension_api::axum::response::{IntoResponse, Response};
use wrenn_extension_api::axum::routing::{get, post};
use wrenn_extension_api::axum::{Json, Router};
use wrenn_extension_api::chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use wrenn_extension_api::uuid::Uuid;
use wrenn_extension_api::{
    serde_json, sqlx, tracing, ApiError, CapsuleSpec, CapsuleState, CapsuleSummary, Principal,
    API_KEY_HEADER,
};

use crate::sandboxes::{self as records, SandboxRow};
use crate::{E2bState, ENVD_VERSION, MAX_TIMEOUT_SEC};

type AppState = Arc<E2bState>;

/// An E2B error: the status and `{"code": status, "message"}`.
#[derive(Debug)]
pub struct E2bError {
    pub status: StatusCode,
    pub message: String,
}

impl E2bError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(sandbox_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("sandbox \"{sandbox_id}\" doesn't exist or you don't have access to it"),
        )
    }
}

impl From<ApiError> for E2bError {
    fn from(e: ApiError) -> Self {
        if e.status.is_server_error() {
            tracing::warn!(status = %e.status, code = %e.code, message = %e.message,
                cause = e.cause().unwrap_or(""), "E2B request failed.");
        }
        // Core's limit refusals (402) are E2B's rate-limit-like 429 "too many sandboxes".
        let status = if e.status == StatusCode::PAYMENT_REQUIRED {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            e.status
        };
        Self::new(status, e.message.to_string())
    }
}

impl From<sqlx::Error> for E2bError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for E2bError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.status.as_u16(), "message": self.message });
        (self.status, Json(body)).into_response()
    }
}

type E2bResult<T> = Result<T, E2bError>;

/// The caller: a team API key.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = E2bError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> E2bResult<Self> {
        let key = api_key(&parts.headers).ok_or_else(|| {
            E2bError::new(StatusCode::UNAUTHORIZED, "missing API key (send X-API-KEY)")
        })?;
        let principal = state
            .ctx
            .sessions()
            .resolve_api_key(&key)
            .await?
            .ok_or_else(|| E2bError::new(StatusCode::UNAUTHORIZED, "Invalid API key"))?;
        Ok(Caller(Principal::ApiKey(principal)))
    }
}

/// The Wrenn key a request carries: `X-API-KEY` or a bearer token, with `e2b_` read as `wrn_`.
fn api_key(headers: &HeaderMap) -> Option<String> {
    let raw = headers
        .get(API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_string)
        })?;
    let raw = raw.trim();
    Some(match raw.strip_prefix("e2b_") {
        Some(hex) => format!("wrn_{hex}"),
        None => raw.to_string(),
    })
}

/// The routes of the REST surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(|| async { StatusCode::OK }))
        .route("/sandboxes", post(create).get(list_v1))
        .route("/v2/sandboxes", post(create).get(list_v2))
        .route("/sandboxes/{id}", get(show).delete(kill))
        .route("/sandboxes/{id}/timeout", post(set_timeout))
        .route("/sandboxes/{id}/refreshes", post(refresh))
        .route("/sandboxes/{id}/pause", post(pause))
        .route("/sandboxes/{id}/resume", post(resume))
        .route("/sandboxes/{id}/connect", post(connect))
        .route("/v2/sandboxes/{id}/connect", post(connect))
        .route("/sandboxes/{id}/metrics", get(metrics))
        .fallback(|| async { E2bError::new(StatusCode::NOT_FOUND, "no such route") })
        .method_not_allowed_fallback(|| async {
            E2bError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        .with_state(state)
}

/// A JSON body, with E2B's error on anything malformed; an empty body is `{}`.
fn body<T: for<'de> Deserialize<'de>>(bytes: &Bytes) -> E2bResult<T> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| E2bError::bad_request(format!("invalid body: {e}")))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn timeout_of(t: Option<i64>, default: u32) -> E2bResult<u32> {
    match t {
        None => Ok(default),
        Some(t) if (1..=i64::from(MAX_TIMEOUT_SEC)).contains(&t) => Ok(t as u32),
        Some(t) => Err(E2bError::bad_request(format!(
            "timeout {t} is out of range: 1 to {MAX_TIMEOUT_SEC} seconds"
        ))),
    }
}

/// The capsule a path's sandbox id names, with its record, for the caller's team; 404 for
/// anything else (never revealing another team's sandboxes).
async fn owned(
    state: &E2bState,
    caller: &Principal,
    sandbox_id: &str,
) -> E2bResult<(SandboxRow, CapsuleSummary)> {
    let not_found = || E2bError::not_found(sandbox_id);
    let id = records::capsule_id(sandbox_id).ok_or_else(not_found)?;
    let row = records::get(state.ctx.db(), caller.team_id(), id)
        .await?
        .ok_or_else(not_found)?;
    let capsule = match state.ctx.capsules().get(caller.team_id(), id).await {
        Ok(c) => c,
        Err(e) if e.status == StatusCode::NOT_FOUND => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    if matches!(capsule.state, CapsuleState::Stopped | CapsuleState::Error) {
        return Err(not_found());
    }
    Ok((row, capsule))
}

/// States a capsule passes through on its way to another.
fn in_transition(state: CapsuleState) -> bool {
    use CapsuleState::*;
    matches!(state, Pending | Starting | Pausing | Resuming)
}

/// How long a request waits for a capsule in transition to settle.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(60);

/// [`owned`], after waiting for a capsule in transition (pausing, resuming, ...) to settle,
/// so a state change in flight never turns into a misleading answer.
async fn settled(
    state: &E2bState,
    caller: &Principal,
    sandbox_id: &str,
) -> E2bResult<(SandboxRow, CapsuleSummary)> {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let (row, capsule) = owned(state, caller, sandbox_id).await?;
        if !in_transition(capsule.state) || tokio::time::Instant::now() >= deadline {
            return Ok((row, capsule));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// E2B's state name of a capsule state (`running` or `paused`).
fn state_of(state: CapsuleState) -> &'static str {
    match state {
        CapsuleState::Paused | CapsuleState::Pausing => "paused",
        _ => "running",
    }
}

// ---------------------------------------------------------------------------------- shapes

/// `Sandbox`: the answer to a create, connect or resume.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sandbox {
    #[serde(rename = "templateID")]
    pub template_id: String,
    #[serde(rename = "sandboxID")]
    pub sandbox_id: String,
    #[serde(rename = "clientID")]
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub envd_version: String,
    pub envd_access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_access_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// `SandboxDetail` and `ListedSandbox` (the detail has the tokens and domain too).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Detail {
    #[serde(rename = "templateID")]
    pub template_id: String,
    #[serde(rename = "sandboxID")]
    pub sandbox_id: String,
    #[serde(rename = "clientID")]
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    pub started_at: String,
    pub end_at: String,
    pub envd_version: String,
    pub cpu_count: u32,
    #[serde(rename = "memoryMB")]
    pub memory_mb: u64,
    #[serde(rename = "diskSizeMB")]
    pub disk_size_mb: u64,
    pub metadata: BTreeMap<String, String>,
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envd_access_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// The client id E2B reports (the node a sandbox runs on); one value for all of Wrenn.
const CLIENT_ID: &str = "wrenn";

fn sandbox_body(state: &E2bState, row: &SandboxRow) -> Sandbox {
    let secret = state.ctx.jwt_secret();
    Sandbox {
        template_id: row.template_id.clone(),
        sandbox_id: records::sandbox_id(row.capsule_id),
        client_id: CLIENT_ID.into(),
        alias: row.alias.clone(),
        envd_version: ENVD_VERSION.into(),
        envd_access_token: records::envd_token(secret, row.capsule_id),
        traffic_access_token: (!row.public_traffic)
            .then(|| records::traffic_token(secret, row.capsule_id)),
        domain: state.config.domain.clone(),
    }
}

fn detail(state: &E2bState, row: &SandboxRow, c: &CapsuleSummary, full: bool) -> Detail {
    let s = state_of(c.state);
    Detail {
        template_id: row.template_id.clone(),
        sandbox_id: records::sandbox_id(row.capsule_id),
        client_id: CLIENT_ID.into(),
        alias: row.alias.clone(),
        started_at: rfc3339(row.started_at),
        // A paused sandbox does not run out (its record's end is parked far ahead).
        end_at: rfc3339(if s == "paused" {
            Utc::now()
        } else {
            row.end_at
        }),
        envd_version: ENVD_VERSION.into(),
        cpu_count: c.vcpus,
        memory_mb: c.memory_mb,
        disk_size_mb: c.disk_mb,
        metadata: row.metadata.0.clone(),
        state: s,
        envd_access_token: full
            .then(|| records::envd_token(state.ctx.jwt_secret(), row.capsule_id)),
        domain: if full {
            state.config.domain.clone()
        } else {
            None
        },
    }
}

// ---------------------------------------------------------------------------------- create

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewSandbox {
    /// v1 bodies spell it this way.
    #[serde(
        default,
        rename = "allow_internet_access",
        alias = "allowInternetAccess"
    )]
    allow_internet_access: Option<bool>,
    #[serde(rename = "templateID")]
    template_id: Option<String>,
    timeout: Option<i64>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    env_vars: Option<BTreeMap<String, String>>,
    #[serde(default)]
    auto_pause: Option<bool>,
    #[serde(default)]
    network: Option<NetworkConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NetworkConfig {
    #[serde(default)]
    allow_public_traffic: Option<bool>,
    #[serde(default)]
    allow_out: Vec<String>,
    #[serde(default)]
    deny_out: Vec<String>,
    /// Options Wrenn does not implement: refused rather than silently ignored.
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

/// "All traffic" in E2B's `denyOut`.
const ALL_TRAFFIC: &str = "0.0.0.0/0";

/// Wrenn's egress policy for E2B's options: `allowOut` entries are exceptions to a `denyOut`
/// of all traffic (or to `allow_internet_access: false`); without a deny, everything is open.
fn egress_policy(
    allow_internet: Option<bool>,
    network: &NetworkConfig,
) -> E2bResult<Option<serde_json::Value>> {
    if let Some((name, _)) = network.other.iter().find(|(_, v)| !v.is_null()) {
        return Err(E2bError::bad_request(format!(
            "network.{name} is not supported by this server"
        )));
    }
    if let Some(partial) = network.deny_out.iter().find(|d| d.as_str() != ALL_TRAFFIC) {
        return Err(E2bError::bad_request(format!(
            "network.denyOut {partial:?}: only {ALL_TRAFFIC} (all traffic) can be denied, \
             with exceptions in allowOut"
        )));
    }
    let deny_all = allow_internet == Some(false) || !network.deny_out.is_empty();
    Ok(match (deny_all, network.allow_out.is_empty()) {
        (false, _) => None,
        (true, true) => Some(serde_json::json!({"mode": "deny_all"})),
        (true, false) => {
            Some(serde_json::json!({"mode": "allow_list", "allow": network.allow_out}))
        }
    })
}

/// The Wrenn template an E2B template id names: `base` is the configured base template.
fn wrenn_template<'a>(state: &'a E2bState, template_id: &'a str) -> &'a str {
    match template_id {
        "base" => &state.config.base_template,
        other => other,
    }
}

/// `POST /sandboxes` and `POST /v2/sandboxes` → 201 `Sandbox`.
async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    bytes: Bytes,
) -> E2bResult<Response> {
    let req: NewSandbox = body(&bytes)?;
    let template_id = req
        .template_id
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| E2bError::bad_request("templateID is required"))?;
    let timeout = timeout_of(req.timeout, state.config.default_timeout_sec)?;
    let metadata = req.metadata.unwrap_or_default();
    if metadata.len() > 64
        || metadata
            .iter()
            .any(|(k, v)| k.len() > 256 || v.len() > 4096)
    {
        return Err(E2bError::bad_request(
            "metadata takes at most 64 entries, keys up to 256 bytes, values up to 4096",
        ));
    }
    let network = req.network.unwrap_or_default();
    let mut spec = CapsuleSpec::default();
    spec.template = Some(wrenn_template(&state, &template_id).to_string());
    spec.env_vars = req.env_vars.unwrap_or_default();
    spec.network = egress_policy(req.allow_internet_access, &network)?;
    let capsule = state.ctx.capsules().create(&caller, spec).await?;
    let row = SandboxRow {
        capsule_id: capsule.id,
        team_id: caller.team_id(),
        alias: (template_id == "base").then(|| "base".to_string()),
        template_id,
        metadata: sqlx::types::Json(metadata),
        started_at: Utc::now(),
        end_at: records::after(timeout),
        auto_pause: req.auto_pause.unwrap_or(false),
        public_traffic: network.allow_public_traffic.unwrap_or(true),
    };
    if let Err(e) = records::insert(state.ctx.db(), &row).await {
        // Nothing may outlive a failed create: the capsule goes too.
        let _ = state.ctx.capsules().destroy_as(&caller, capsule.id).await;
        return Err(e.into());
    }
    Ok((StatusCode::CREATED, Json(sandbox_body(&state, &row))).into_response())
}

// ------------------------------------------------------------------------------------ list

/// Query of `GET /v2/sandboxes` (and `GET /sandboxes`).
#[derive(Debug, Default)]
struct ListQuery {
    metadata: Vec<(String, String)>,
    states: Vec<String>,
    limit: usize,
    next_token: Option<String>,
}

const MAX_PAGE: usize = 1000;

fn list_query(raw: Option<&str>, default_states: &[&str]) -> E2bResult<ListQuery> {
    let mut q = ListQuery {
        limit: 100,
        ..Default::default()
    };
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            // `metadata` is itself a query string: `k=v&k2=v2`, each part percent-encoded.
            "metadata" | "query" => {
                for (mk, mv) in form_urlencoded::parse(v.as_bytes()) {
                    q.metadata.push((mk.into_owned(), mv.into_owned()));
                }
            }
            "state" => {
                for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if !matches!(s, "running" | "paused") {
                        return Err(E2bError::bad_request(format!(
                            "state {s:?}: expected running or paused"
                        )));
                    }
                    q.states.push(s.to_string());
                }
            }
            "limit" => {
                q.limit = v
                    .parse()
                    .ok()
                    .filter(|l| (1..=MAX_PAGE).contains(l))
                    .ok_or_else(|| {
                        E2bError::bad_request(format!("limit must be 1 to {MAX_PAGE}"))
                    })?;
            }
            "nextToken" => q.next_token = Some(v.into_owned()).filter(|t| !t.is_empty()),
            _ => {}
        }
    }
    if q.states.is_empty() {
        q.states = default_states.iter().map(|s| s.to_string()).collect();
    }
    Ok(q)
}

async fn list_v1(
    State(state): State<AppState>,
    Caller(caller): Caller,
    uri: wrenn_extension_api::axum::http::Uri,
) -> E2bResult<Response> {
    list(&state, &caller, list_query(uri.query(), &["running"])?).await
}

async fn list_v2(
    State(state): State<AppState>,
    Caller(caller): Caller,
    uri: wrenn_extension_api::axum::http::Uri,
) -> E2bResult<Response> {
    list(
        &state,
        &caller,
        list_query(uri.query(), &["running", "paused"])?,
    )
    .await
}

/// The paging token of a listed sandbox: where the next page starts after it.
fn token_of(row: &SandboxRow) -> String {
    format!(
        "{}.{}",
        row.started_at.timestamp_micros(),
        records::sandbox_id(row.capsule_id)
    )
}

async fn list(state: &E2bState, caller: &Principal, q: ListQuery) -> E2bResult<Response> {
    let team = caller.team_id();
    let rows = records::list(state.ctx.db(), team).await?;
    let capsules: BTreeMap<Uuid, CapsuleSummary> = state
        .ctx
        .capsules()
        .list(team)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    // Rows are newest first; a token names the last one of the previous page.
    let mut started = q.next_token.is_none();
    let mut page = Vec::new();
    let mut more = None;
    for row in &rows {
        if !started {
            started = q.next_token.as_deref() == Some(token_of(row).as_str());
            continue;
        }
        let Some(c) = capsules.get(&row.capsule_id) else {
            continue;
        };
        if matches!(c.state, CapsuleState::Stopped | CapsuleState::Error)
            || !q.states.iter().any(|s| s == state_of(c.state))
            || !q
                .metadata
                .iter()
                .all(|(k, v)| row.metadata.0.get(k) == Some(v))
        {
            continue;
        }
        if page.len() == q.limit {
            more = page.last().map(|(r, _): &(&SandboxRow, _)| token_of(r));
            break;
        }
        page.push((row, c));
    }
    if q.next_token.is_some() && !started {
        return Err(E2bError::bad_request("nextToken is not valid"));
    }
    let body: Vec<Detail> = page
        .iter()
        .map(|(r, c)| detail(state, r, c, false))
        .collect();
    let mut resp = Json(body).into_response();
    if let Some(token) = more.and_then(|t| HeaderValue::from_str(&t).ok()) {
        resp.headers_mut().insert("x-next-token", token);
    }
    Ok(resp)
}

// ----------------------------------------------------------------------------- one sandbox

/// `GET /sandboxes/{id}` → 200 `SandboxDetail`.
async fn show(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> E2bResult<Json<Detail>> {
    let (row, capsule) = owned(&state, &caller, &id).await?;
    Ok(Json(detail(&state, &row, &capsule, true)))
}

/// `DELETE /sandboxes/{id}` → 204 (404: the SDK's `kill` reads `False`).
async fn kill(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> E2bResult<StatusCode> {
    let (row, _) = settled(&state, &caller, &id).await?;
    state
        .ctx
        .capsules()
        .destroy_as(&caller, row.capsule_id)
        .await?;
    records::delete(state.ctx.db(), row.capsule_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct Timeout {
    timeout: Option<i64>,
}

/// `POST /sandboxes/{id}/timeout {timeout}` → 204: the sandbox now ends `timeout` s from now
/// (earlier or later than before).
async fn set_timeout(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> E2bResult<StatusCode> {
    let req: Timeout = body(&bytes)?;
    let timeout = req
        .timeout
        .ok_or_else(|| E2bError::bad_request("timeout is required"))?;
    let timeout = timeout_of(Some(timeout), 0)?;
    let (row, _) = owned(&state, &caller, &id).await?;
    records::set_end(
        state.ctx.db(),
        row.capsule_id,
        records::after(timeout),
        false,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct Refresh {
    duration: Option<i64>,
}

/// `POST /sandboxes/{id}/refreshes {duration}` (older SDKs' keep-alive) → 204: extends only.
async fn refresh(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> E2bResult<StatusCode> {
    let req: Refresh = body(&bytes)?;
    let secs = timeout_of(req.duration, state.config.default_timeout_sec)?;
    let (row, _) = owned(&state, &caller, &id).await?;
    records::extend_end(state.ctx.db(), row.capsule_id, records::after(secs)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /sandboxes/{id}/pause` → 204; 409 when it is paused already.
async fn pause(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> E2bResult<StatusCode> {
    let (row, capsule) = settled(&state, &caller, &id).await?;
    if state_of(capsule.state) == "paused" {
        return Err(E2bError::new(
            StatusCode::CONFLICT,
            format!("sandbox {id} is already paused"),
        ));
    }
    state
        .ctx
        .capsules()
        .pause_as(&caller, row.capsule_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Resume {
    timeout: Option<i64>,
    auto_pause: Option<bool>,
}

/// `POST /sandboxes/{id}/resume {timeout?, autoPause?}` → 201 `Sandbox`; 409 when running.
async fn resume(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> E2bResult<Response> {
    let req: Resume = body(&bytes)?;
    let timeout = timeout_of(req.timeout, state.config.default_timeout_sec)?;
    let (mut row, capsule) = settled(&state, &caller, &id).await?;
    if state_of(capsule.state) == "running" {
        return Err(E2bError::new(
            StatusCode::CONFLICT,
            format!("sandbox {id} is already running"),
        ));
    }
    state.ctx.capsules().resume(&caller, row.capsule_id).await?;
    records::set_end(
        state.ctx.db(),
        row.capsule_id,
        records::after(timeout),
        true,
    )
    .await?;
    if let Some(auto_pause) = req.auto_pause {
        sqlx::query("UPDATE ext_e2b.sandboxes SET auto_pause = $2 WHERE capsule_id = $1")
            .bind(row.capsule_id)
            .bind(auto_pause)
            .execute(state.ctx.db())
            .await?;
        row.auto_pause = auto_pause;
    }
    Ok((StatusCode::CREATED, Json(sandbox_body(&state, &row))).into_response())
}

/// `POST /sandboxes/{id}/connect` and `/v2/...` `{timeout}` → 200 `Sandbox` when it runs
/// (the timeout only ever extended), 201 when it was paused and is resumed.
async fn connect(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> E2bResult<Response> {
    let req: Timeout = body(&bytes)?;
    let timeout = timeout_of(req.timeout, state.config.default_timeout_sec)?;
    let (row, capsule) = settled(&state, &caller, &id).await?;
    let db = state.ctx.db();
    let status = if state_of(capsule.state) == "paused" {
        match state.ctx.capsules().resume(&caller, row.capsule_id).await {
            Ok(_) => {}
            // A concurrent connect resumed it first.
            Err(e) if e.status == StatusCode::CONFLICT => {}
            Err(e) => return Err(e.into()),
        }
        records::set_end(db, row.capsule_id, records::after(timeout), true).await?;
        StatusCode::CREATED
    } else {
        records::extend_end(db, row.capsule_id, records::after(timeout)).await?;
        StatusCode::OK
    };
    Ok((status, Json(sandbox_body(&state, &row))).into_response())
}

// --------------------------------------------------------------------------------- metrics

#[derive(Debug, Deserialize)]
struct MetricsQuery {
    start: Option<i64>,
    end: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Metric {
    timestamp: String,
    timestamp_unix: i64,
    cpu_count: u32,
    cpu_used_pct: f64,
    mem_used: u64,
    mem_total: u64,
    mem_cache: u64,
    disk_used: u64,
    disk_total: u64,
}

/// The smallest of core's ranges that reaches back to `start`.
fn range_for(start: Option<i64>, now: i64) -> &'static str {
    let back = start.map(|s| now - s).unwrap_or(300);
    [
        (300, "5m"),
        (600, "10m"),
        (3600, "1h"),
        (7200, "2h"),
        (21600, "6h"),
    ]
    .into_iter()
    .find(|(span, _)| back <= *span)
    .map_or("24h", |(_, range)| range)
}

/// `GET /sandboxes/{id}/metrics?start&end` (unix seconds) → 200 `[SandboxMetric]`.
async fn metrics(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    query: Result<
        Query<MetricsQuery>,
        wrenn_extension_api::axum::extract::rejection::QueryRejection,
    >,
) -> E2bResult<Json<Vec<Metric>>> {
    let Query(q) = query.map_err(|e| E2bError::bad_request(e.body_text()))?;
    let (row, capsule) = owned(&state, &caller, &id).await?;
    let now = Utc::now().timestamp();
    let points = state
        .ctx
        .capsules()
        .metrics(caller.team_id(), row.capsule_id, range_for(q.start, now))
        .await?;
    const MIB: u64 = 1024 * 1024;
    Ok(Json(
        points
            .into_iter()
            .filter(|p| q.start.is_none_or(|s| p.timestamp_unix >= s))
            .filter(|p| q.end.is_none_or(|e| p.timestamp_unix <= e))
            .map(|p| Metric {
                timestamp: Utc
                    .timestamp_opt(p.timestamp_unix, 0)
                    .single()
                    .map(rfc3339)
                    .unwrap_or_default(),
                timestamp_unix: p.timestamp_unix,
                cpu_count: capsule.vcpus,
                cpu_used_pct: p.cpu_pct,
                mem_used: p.mem_bytes,
                mem_total: capsule.memory_mb * MIB,
                mem_cache: 0,
                disk_used: p.disk_bytes,
                disk_total: capsule.disk_mb * MIB,
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e2b_shaped_keys_are_wrenn_keys() {
        let mut h = HeaderMap::new();
        h.insert(API_KEY_HEADER, HeaderValue::from_static("e2b_00ff"));
        assert_eq!(api_key(&h).as_deref(), Some("wrn_00ff"));
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer wrn_01"),
        );
        assert_eq!(api_key(&h).as_deref(), Some("wrn_01"));
        assert_eq!(api_key(&HeaderMap::new()), None);
    }

    #[test]
    fn list_queries_read_nested_metadata_states_and_limits() {
        // What the Python SDK sends for metadata={"a b": "c&d", "k": "v"}.
        let q = list_query(
            Some("metadata=a%2520b%3Dc%2526d%26k%3Dv&state=running,paused&limit=5"),
            &["running"],
        )
        .unwrap();
        assert_eq!(
            q.metadata,
            vec![("a b".into(), "c&d".into()), ("k".into(), "v".into())]
        );
        assert_eq!(q.states, vec!["running", "paused"]);
        assert_eq!(q.limit, 5);
        let q = list_query(Some("state=paused&state=running"), &["running"]).unwrap();
        assert_eq!(q.states, vec!["paused", "running"]);
        assert_eq!(
            list_query(None, &["running"]).unwrap().states,
            vec!["running"]
        );
        assert!(list_query(Some("state=dead"), &[]).is_err());
        assert!(list_query(Some("limit=0"), &[]).is_err());
    }

    #[test]
    fn egress_options_map_to_wrenn_policies_or_are_refused() {
        let net = |v: serde_json::Value| serde_json::from_value::<NetworkConfig>(v).unwrap();
        assert_eq!(
            egress_policy(None, &net(serde_json::json!({}))).unwrap(),
            None
        );
        assert_eq!(
            egress_policy(Some(false), &net(serde_json::json!({}))).unwrap(),
            Some(serde_json::json!({"mode": "deny_all"}))
        );
        assert_eq!(
            egress_policy(
                None,
                &net(serde_json::json!({"denyOut": ["0.0.0.0/0"], "allowOut": ["pypi.org"]}))
            )
            .unwrap(),
            Some(serde_json::json!({"mode": "allow_list", "allow": ["pypi.org"]}))
        );
        assert_eq!(
            egress_policy(None, &net(serde_json::json!({"allowOut": ["x.org"]}))).unwrap(),
            None,
            "allowOut alone lifts nothing"
        );
        assert!(egress_policy(None, &net(serde_json::json!({"denyOut": ["10.0.0.0/8"]}))).is_err());
        assert!(egress_policy(None, &net(serde_json::json!({"rules": {"a": []}}))).is_err());
        assert!(egress_policy(
            None,
            &net(serde_json::json!({"egressProxy": {"address": "x"}}))
        )
        .is_err());
    }

    #[test]
    fn metric_ranges_cover_the_start() {
        assert_eq!(range_for(None, 1000), "5m");
        assert_eq!(range_for(Some(1000 - 900), 1000), "1h");
        assert_eq!(range_for(Some(0), 100_000), "24h");
    }
}
