//! Health, metrics, environment, `/init` and the snapshot prepare hook.
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::HttpError;
use crate::server::ConnectionHandle;
use crate::state::AppState;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/envs", get(envs))
        .route("/init", post(init))
        .route("/snapshot/prepare", post(prepare))
}

async fn health() -> Json<Value> {
    Json(json!({ "version": VERSION }))
}

async fn metrics(State(state): State<Arc<AppState>>) -> Json<crate::metrics::SystemMetrics> {
    Json(state.cpu.sample().await)
}

async fn envs(State(state): State<Arc<AppState>>) -> Json<BTreeMap<String, String>> {
    Json(state.capsule.defaults().env_vars)
}

/// `/init` body. Every field is optional; a present field replaces the previous value
/// (`env_vars` as a whole, `access_token: ""` clears the token).
#[derive(Debug, Deserialize)]
pub struct InitRequest {
    pub access_token: Option<String>,
    pub default_user: Option<String>,
    pub default_workdir: Option<String>,
    pub env_vars: Option<BTreeMap<String, String>>,
    pub sandbox_id: Option<String>,
    pub template_id: Option<String>,
    /// The host's clock, unix milliseconds; applied only with `--sync-clock`.
    pub timestamp_ms: Option<i64>,
    /// The capsule's machine id (32 lowercase hex digits), written to `/etc/machine-id`
    /// so that no two capsules share one (pooled and forked capsules boot from one image).
    pub machine_id: Option<String>,
}

/// Where the machine id lives (systemd's and D-Bus's convention).
const MACHINE_ID_FILE: &str = "/etc/machine-id";

/// Writes the machine id unless the file already holds it.
async fn set_machine_id(id: &str) -> Result<(), HttpError> {
    if id.len() != 32
        || !id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(HttpError::bad_request(
            "machine_id must be 32 lowercase hex digits",
        ));
    }
    let line = format!("{id}\n");
    if tokio::fs::read_to_string(MACHINE_ID_FILE)
        .await
        .ok()
        .as_deref()
        == Some(line.as_str())
    {
        return Ok(());
    }
    if let Err(e) = tokio::fs::write(MACHINE_ID_FILE, line).await {
        // A read-only or absent /etc is not a reason to refuse the capsule.
        tracing::warn!(error = %e, "Could not write {MACHINE_ID_FILE}.");
    }
    Ok(())
}

async fn init(
    State(state): State<Arc<AppState>>,
    Json(req): Json<InitRequest>,
) -> Result<StatusCode, HttpError> {
    if let Some(user) = req.default_user.as_deref().filter(|u| !u.is_empty()) {
        crate::users::lookup(user)?;
    }
    if let Some(id) = req.machine_id.as_deref().filter(|m| !m.is_empty()) {
        set_machine_id(id).await?;
    }
    state.capsule.update(|d| {
        if let Some(v) = req.default_user {
            d.default_user = Some(v).filter(|s| !s.is_empty());
        }
        if let Some(v) = req.default_workdir {
            d.default_workdir = Some(v).filter(|s| !s.is_empty());
        }
        if let Some(v) = req.env_vars {
            d.env_vars = v;
        }
        if let Some(v) = req.sandbox_id {
            d.sandbox_id = Some(v);
        }
        if let Some(v) = req.template_id {
            d.template_id = Some(v);
        }
    });
    if let Some(token) = &req.access_token {
        state.token.set(token);
    }
    if let (Some(ms), true) = (req.timestamp_ms, state.config.sync_clock) {
        set_clock(ms);
    }
    tracing::info!(sandbox_id = ?state.capsule.defaults().sandbox_id, "Initialised.");
    Ok(StatusCode::NO_CONTENT)
}

/// Sets the realtime clock when it is more than a second off (a restored snapshot wakes up
/// with the clock of the moment it was taken).
fn set_clock(unix_ms: i64) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    if (now_ms - unix_ms).abs() <= 1000 {
        return;
    }
    let ts = libc::timespec {
        tv_sec: unix_ms.div_euclid(1000),
        tv_nsec: unix_ms.rem_euclid(1000) * 1_000_000,
    };
    // SAFETY: clock_settime reads a timespec that lives for the duration of the call.
    if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "Could not set the clock.");
    } else {
        tracing::info!(skew_ms = now_ms - unix_ms, "Set the clock from /init.");
    }
}

/// Snapshot prepare: stop listening and close every other host-backed connection, answer,
/// then close this one too. Processes keep running; SIGUSR1 re-opens the listener.
async fn prepare(
    State(state): State<Arc<AppState>>,
    connection: Option<Extension<Arc<ConnectionHandle>>>,
) -> Json<Value> {
    let keep = connection.map(|Extension(c)| c.id);
    let closed = state.transport.close(keep).await;
    tracing::info!(
        closed,
        "Prepared for a snapshot: listener and connections closed."
    );
    Json(json!({ "closed_connections": closed }))
}
