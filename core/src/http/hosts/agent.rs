//! Agent-facing routes: register, refresh, heartbeat and sandbox-event callbacks.

use super::views::{HeartbeatReply, Host, HostCredentials, SandboxEventsApplied};
use crate::app::App;
use crate::audit::{record_and_publish, AuditScope};
use crate::capsules::state::CapsuleStatus;
use crate::db::hosts as db;
use crate::events::{self, Actor, Event, Outcome, Resource};
use crate::hosts::monitor;
use crate::hosts::registration::{self, Credentials, RegisterRequest};
use crate::hosts::token::HostAuth;
use crate::http::views::ErrorEnvelope;
use axum::extract::State;
use serde::Deserialize;
use serde_json::Value;
use wrenn_extension_api::{ids, ApiError, ApiJson, ApiPath};

fn credentials(c: Credentials) -> HostCredentials {
    HostCredentials {
        host: Host::new(&c.host, &[]),
        token: c.token,
        refresh_token: c.refresh_token,
        cert_expires_at: super::views::ts(&c.cert.not_after),
        cert_pem: c.cert.cert_pem,
        key_pem: c.cert.key_pem,
        ca_cert_pem: c.ca_cert_pem,
    }
}

#[utoipa::path(post, path = "/v1/hosts/register", tag = "host-agent",
    description = "Agent registration: `{token, arch, cpu_cores, memory_mb, disk_gb, address, capabilities, transport?: mtls|insecure-dev, agent_version?}` → `{host, token (host JWT, 7 d), refresh_token (60 d), cert_pem, key_pem, ca_cert_pem, cert_expires_at}`.",
    responses((status = 200, body = HostCredentials), (status = 401, body = ErrorEnvelope, description = "`invalid_token`: bad, expired or used"), (status = 400, body = ErrorEnvelope, description = "`invalid_request` / `insecure_transport_refused`")))]
pub async fn register(
    State(ctx): State<App>,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<ApiJson<HostCredentials>, ApiError> {
    let hosts = ctx.hosts.clone();
    let creds = registration::register(&ctx, &hosts, &body).await?;
    Ok(ApiJson(credentials(creds)))
}

#[derive(Debug, Deserialize)]
pub struct RefreshRequest {
    refresh_token: String,
}

#[utoipa::path(post, path = "/v1/hosts/auth/refresh", tag = "host-agent",
    description = "`{refresh_token}` → new credentials (same shape as register). The refresh token is rotated; presenting a rotated one again revokes all of the host's refresh tokens.",
    responses((status = 200, body = HostCredentials), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope, description = "`invalid_token`")))]
pub async fn refresh(
    State(ctx): State<App>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<ApiJson<HostCredentials>, ApiError> {
    let hosts = ctx.hosts.clone();
    let creds = registration::refresh(&ctx, &hosts, &body.refresh_token).await?;
    Ok(ApiJson(credentials(creds)))
}

#[utoipa::path(post, path = "/v1/hosts/{id}/heartbeat", tag = "host-agent", params(("id" = String, Path, description = "host_ id")),
    description = "Header `X-Host-Token`. Optional body `{agent_version?, capabilities?}`.",
    request_body(content = String, content_type = "application/json", description = "optional JSON object"),
    responses((status = 200, body = HeartbeatReply), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope, description = "`invalid_host_token`"), (status = 403, body = ErrorEnvelope, description = "token of another host"), (status = 404, body = ErrorEnvelope, description = "`host_not_found`: deleted host")))]
pub async fn heartbeat(
    State(ctx): State<App>,
    HostAuth(token_host): HostAuth,
    ApiPath(id): ApiPath<String>,
    body: axum::body::Bytes,
) -> Result<ApiJson<HeartbeatReply>, ApiError> {
    let hosts = ctx.hosts.clone();
    let host_id = ids::parse(ids::HOST, &id, "host")?;
    if host_id != token_host {
        return Err(ApiError::forbidden(
            "forbidden",
            "the host token belongs to another host",
        ));
    }
    let body: host_http::Heartbeat = if body.iter().all(u8::is_ascii_whitespace) {
        host_http::Heartbeat::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("invalid heartbeat body: {e}")))?
    };
    let capabilities = match body.capabilities {
        Some(Value::Object(mut m)) => {
            // The transport stays what registration decided.
            if let Some(h) = db::get(ctx.db(), host_id).await? {
                m.insert("transport".into(), h.transport.into());
            }
            Some(Value::Object(m))
        }
        _ => None,
    };
    let load = body
        .load
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| ApiError::invalid(format!("invalid heartbeat load: {e}")))?;
    let previous = db::heartbeat(
        ctx.db(),
        host_id,
        body.agent_version.as_deref(),
        capabilities.as_ref(),
        load.as_ref(),
    )
    .await?
    .ok_or_else(|| ApiError::not_found("host_not_found", "host not found or deleted"))?;
    if previous == crate::hosts::HostStatus::Unreachable {
        monitor::host_returned(&ctx, hosts.clone(), host_id).await;
    }
    let host = db::get(ctx.db(), host_id).await?;
    Ok(ApiJson(HeartbeatReply {
        status: "ok".into(),
        host_id: id,
        host_status: host.as_ref().map(|h| h.status),
        cert_expires_at: host
            .and_then(|h| h.cert_expires_at)
            .map(|t| super::views::ts(&t)),
    }))
}

use wrenn_proto::host_http::{self, SandboxEvent, SandboxEventKind, SandboxEvents};

#[utoipa::path(post, path = "/v1/hosts/sandbox-events", tag = "host-agent",
    description = "Header `X-Host-Token`. `{events: [{sandbox_id, event: auto_paused|paused|auto_destroyed|destroyed|stopped|error, reason?, error?}]}` or one such object. Applied as guarded transitions on the host's own capsules.",
    responses((status = 200, body = SandboxEventsApplied), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope, description = "`invalid_host_token`"), (status = 404, body = ErrorEnvelope, description = "`host_not_found`: deleted host")))]
pub async fn sandbox_events(
    State(ctx): State<App>,
    HostAuth(host_id): HostAuth,
    ApiJson(body): ApiJson<SandboxEvents>,
) -> Result<ApiJson<SandboxEventsApplied>, ApiError> {
    if db::get(ctx.db(), host_id).await?.is_none() {
        return Err(ApiError::not_found(
            "host_not_found",
            "host not found or deleted",
        ));
    }
    let events_in = body.into_vec();
    if events_in.len() > host_http::MAX_EVENTS_PER_CALL {
        return Err(ApiError::invalid(format!(
            "at most {} events per call",
            host_http::MAX_EVENTS_PER_CALL
        )));
    }
    let (mut applied, mut ignored) = (0u32, 0u32);
    for e in &events_in {
        if apply(&ctx, host_id, e).await? {
            applied += 1;
        } else {
            ignored += 1;
        }
    }
    Ok(ApiJson(SandboxEventsApplied { applied, ignored }))
}

/// Applies one callback with a guarded transition; `false` when it does not apply (unknown
/// capsule, another host's capsule, or already in another state).
async fn apply(ctx: &App, host_id: uuid::Uuid, e: &SandboxEvent) -> Result<bool, ApiError> {
    let Some(capsule_id) = ids::decode(ids::CAPSULE, &e.sandbox_id) else {
        return Ok(false);
    };
    use CapsuleStatus::{Error, Paused, Running, Stopped};
    let anywhere = || CapsuleStatus::all_where(|s| s.on_host() || s == CapsuleStatus::Missing);
    // Where the capsule may come from, where it goes, its lifecycle event and default reason.
    let (from, to, lifecycle, default_reason) = match e.event {
        SandboxEventKind::AutoPaused => {
            (vec![Running], Paused, Some("capsule.pause"), "ttl_expired")
        }
        SandboxEventKind::Paused => (
            vec![Running],
            Paused,
            Some("capsule.pause"),
            "host_state_sync",
        ),
        SandboxEventKind::AutoDestroyed => {
            (anywhere(), Stopped, Some("capsule.destroy"), "ttl_expired")
        }
        SandboxEventKind::Destroyed | SandboxEventKind::Stopped => (
            anywhere(),
            Stopped,
            Some("capsule.destroy"),
            "host_state_sync",
        ),
        // The sandbox died on its own (out of memory, crashed): the agent has cleaned up.
        SandboxEventKind::Error => (
            CapsuleStatus::all_where(CapsuleStatus::occupies_host),
            Error,
            Some("capsule.destroy"),
            "crashed",
        ),
        SandboxEventKind::Unknown => return Ok(false),
    };
    let reason = e
        .reason
        .clone()
        .unwrap_or_else(|| default_reason.to_string());
    let Some(team) =
        crate::db::capsules::transition_on_host(ctx.db(), capsule_id, host_id, &from, to, &reason)
            .await?
    else {
        return Ok(false);
    };
    if let Some(kind) = lifecycle {
        let outcome = if to == Error {
            Outcome::Error
        } else {
            Outcome::Success
        };
        let mut event = Event::new(kind, team, Actor::system(), Resource::sandbox(capsule_id))
            .outcome(outcome)
            .meta("reason", reason.clone());
        if to == Error {
            event = event.error(e.error.clone().unwrap_or_else(|| reason.clone()));
        }
        if e.event == SandboxEventKind::AutoDestroyed {
            event = event.meta("auto_pause_failed", "true");
        }
        if let Err(err) = record_and_publish(ctx, &event, AuditScope::Team).await {
            tracing::error!(error = %err, "Recording a host callback failed.");
        }
    }
    let mut live = Event::capsule_state_changed(team, capsule_id, None, to, Actor::system())
        .meta("reason", reason);
    live.metadata.remove("from");
    if let Some(err) = &e.error {
        live = live.error(err.clone());
    }
    let _ = events::publish_transient(&mut ctx.redis(), &live).await;
    Ok(true)
}
