//! `/v1/hosts`: the host registry (API.md "Hosts").
//!
//! Operator routes take a session only (API keys are refused by the guard): regular hosts are
//! managed by platform admins, BYOC hosts also by owners/admins of their (BYOC) team; a host
//! the caller may not manage is a 404. Agent routes: `register` (registration token),
//! `auth/refresh` (refresh token), `{id}/heartbeat` and `sandbox-events` (`X-Host-Token`).

mod agent;
mod tags;

use crate::app::App;
use crate::audit::{self, AuditEntry, AuditScope};
use crate::capsules::state::CapsuleStatus;
use crate::db::hosts::{self as db, HostRow, NewHost};
use crate::events::{Actor, Resource};
use crate::hosts::{registration, Hosts};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use uuid::Uuid;
use wrenn_extension_api::{
    ids, ApiError, ApiJson, ApiPath, ApiQuery, RequireSession, SessionPrincipal,
};
use wrenn_proto::hostagent::v1::DestroySandboxRequest;

/// The OpenAPI description of the host, audit and event routes (merged into the document
/// by `http::docs`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    create,
    list,
    show,
    delete_preview,
    remove,
    new_token,
    tags::list,
    tags::add,
    tags::remove,
    agent::register,
    agent::refresh,
    agent::heartbeat,
    agent::sandbox_events,
    super::audit::list,
    super::audit::admin_list,
    super::events::team_stream,
    super::events::admin_stream,
))]
pub struct HostsApi;

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/hosts", post(create).get(list))
        .route("/v1/hosts/register", post(agent::register))
        .route("/v1/hosts/auth/refresh", post(agent::refresh))
        .route("/v1/hosts/sandbox-events", post(agent::sandbox_events))
        .route("/v1/hosts/{id}", get(show).delete(remove))
        .route("/v1/hosts/{id}/delete-preview", get(delete_preview))
        .route("/v1/hosts/{id}/token", post(new_token))
        .route("/v1/hosts/{id}/heartbeat", post(agent::heartbeat))
        .route("/v1/hosts/{id}/tags", get(tags::list).post(tags::add))
        .route("/v1/hosts/{id}/tags/{tag}", delete(tags::remove))
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The wire shape of a host.
pub fn host_json(h: &HostRow, tags: &[String]) -> Value {
    json!({
        "id": ids::encode(ids::HOST, h.id),
        "type": h.kind,
        "team_id": h.team_id.map(|t| ids::encode(ids::TEAM, t)),
        "provider": h.provider,
        "availability_zone": h.availability_zone,
        "status": h.status,
        "arch": h.arch,
        "cpu_cores": h.cpu_cores,
        "memory_mb": h.memory_mb,
        "disk_gb": h.disk_gb,
        "address": h.address,
        "transport": h.transport,
        "capabilities": h.capabilities,
        "agent_version": h.agent_version,
        "tags": tags,
        "cert_expires_at": h.cert_expires_at.as_ref().map(ts),
        "created_at": ts(&h.created_at),
        "registered_at": h.registered_at.as_ref().map(ts),
        "last_heartbeat_at": h.last_heartbeat_at.as_ref().map(ts),
        // The agent's last reading (`HostLoad`) with the time it arrived; null before one.
        "load": match (&h.load, &h.load_at) {
            (Some(Value::Object(load)), Some(at)) => {
                let mut load = load.clone();
                load.insert("sampled_at".into(), ts(at).into());
                Value::Object(load)
            }
            _ => Value::Null,
        },
    })
}

/// The signed-in operator and what they may do.
pub(crate) struct Operator {
    pub session: SessionPrincipal,
    pub is_admin: bool,
}

impl Operator {
    async fn load(ctx: &App, session: SessionPrincipal) -> Result<Self, ApiError> {
        let is_admin = ctx.sessions().is_platform_admin(session.user_id).await?;
        Ok(Self { session, is_admin })
    }

    fn manages_team(&self, team: Uuid) -> bool {
        self.session.team_id == team && self.session.role.is_some_and(|r| r.can_manage())
    }

    fn can_manage(&self, host: &HostRow) -> bool {
        self.is_admin || (host.kind == "byoc" && host.team_id.is_some_and(|t| self.manages_team(t)))
    }

    /// The audit actor (the user's email when it can be read).
    async fn actor(&self, ctx: &App) -> Actor {
        let email = crate::db::users::email_of(ctx.db(), self.session.user_id)
            .await
            .ok()
            .flatten();
        Actor::user(self.session.user_id, email.unwrap_or_default())
    }
}

fn host_not_found() -> ApiError {
    ApiError::not_found("not_found", "host not found")
}

/// Loads a host the operator may manage (404 otherwise, never revealing other teams' hosts).
pub(crate) async fn managed_host(
    ctx: &App,
    session: SessionPrincipal,
    wire_id: &str,
) -> Result<(Operator, HostRow), ApiError> {
    let id = ids::parse(ids::HOST, wire_id, "host")?;
    let op = Operator::load(ctx, session).await?;
    let host = db::get(ctx.db(), id).await?.ok_or_else(host_not_found)?;
    if !op.can_manage(&host) {
        return Err(host_not_found());
    }
    Ok((op, host))
}

async fn audit_host(ctx: &App, op: &Operator, host: &HostRow, action: &str) {
    let entry = AuditEntry::new(
        host.team_id,
        op.actor(ctx).await,
        action,
        Resource::host(host.id),
    )
    .scope(AuditScope::Admin)
    .outcome(crate::events::Outcome::Success);
    if let Err(e) = audit::record(ctx.db(), &entry).await {
        tracing::error!(error = %e, action, "Writing a host audit entry failed.");
    }
}

#[derive(Debug, Deserialize)]
struct CreateHost {
    #[serde(rename = "type")]
    kind: String,
    team_id: Option<String>,
    provider: Option<String>,
    availability_zone: Option<String>,
}

fn optional_text(v: Option<String>, field: &str) -> Result<Option<String>, ApiError> {
    match v {
        Some(s) if s.chars().count() > 100 => Err(ApiError::invalid(format!(
            "{field} must be at most 100 characters"
        ))),
        Some(s) if s.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

#[utoipa::path(post, path = "/v1/hosts", tag = "hosts",
    description = "Create a host (`{type: regular|byoc, team_id?, provider?, availability_zone?}`); regular hosts: platform admins; BYOC: owners/admins of a BYOC team. Returns `{host, registration_token}` (one-time, 1 h). Session only.",
    responses((status = 201, description = "`{host, registration_token}`"), (status = 403, description = "`admin_required` / `forbidden`")))]
async fn create(
    State(ctx): State<App>,
    RequireSession(session): RequireSession,
    ApiJson(body): ApiJson<CreateHost>,
) -> Result<Response, ApiError> {
    let hosts = ctx.hosts.clone();
    let op = Operator::load(&ctx, session).await?;
    let team_id = match body.kind.as_str() {
        "regular" => {
            if !op.is_admin {
                return Err(ApiError::forbidden(
                    "admin_required",
                    "only platform administrators add regular hosts",
                ));
            }
            if body.team_id.is_some() {
                return Err(ApiError::invalid("regular hosts belong to no team"));
            }
            None
        }
        "byoc" => {
            let team = match &body.team_id {
                Some(t) => ids::decode(ids::TEAM, t)
                    .ok_or_else(|| ApiError::invalid("team_id must be a tm_ id"))?,
                None => op.session.team_id,
            };
            if !op.is_admin {
                let allowed = op.manages_team(team) && db::is_byoc_team(ctx.db(), team).await?;
                if !allowed {
                    return Err(ApiError::forbidden(
                        "forbidden",
                        "BYOC hosts are added by owners or admins of a BYOC team",
                    ));
                }
            }
            Some(team)
        }
        _ => return Err(ApiError::invalid("type must be regular or byoc")),
    };
    let new = NewHost {
        kind: body.kind.clone(),
        team_id,
        provider: optional_text(body.provider, "provider")?,
        availability_zone: optional_text(body.availability_zone, "availability_zone")?,
        created_by: Some(op.session.user_id),
    };
    if let Some(team) = team_id {
        // A platform admin giving a team its first BYOC host makes it a BYOC team.
        db::mark_byoc_team(ctx.db(), team).await?;
    }
    let (host, token) = registration::create_host(ctx.db(), &hosts, &new).await?;
    audit_host(&ctx, &op, &host, "host.create").await;
    Ok((
        StatusCode::CREATED,
        ApiJson(json!({"host": host_json(&host, &[]), "registration_token": token})),
    )
        .into_response())
}

async fn with_tags(ctx: &App, hosts: Vec<HostRow>) -> Result<Vec<Value>, ApiError> {
    let ids: Vec<Uuid> = hosts.iter().map(|h| h.id).collect();
    let mut tags: HashMap<Uuid, Vec<String>> = HashMap::new();
    for (id, tag) in db::tags_of(ctx.db(), &ids).await? {
        tags.entry(id).or_default().push(tag);
    }
    Ok(hosts
        .iter()
        .map(|h| host_json(h, tags.get(&h.id).map(Vec::as_slice).unwrap_or(&[])))
        .collect())
}

#[utoipa::path(get, path = "/v1/hosts", tag = "hosts",
    description = "Hosts the caller manages: every host for platform admins, the team's BYOC hosts for its owners/admins.",
    responses((status = 200, description = "A bare JSON array of hosts (API.md: lists are arrays)")))]
async fn list(
    State(ctx): State<App>,
    RequireSession(session): RequireSession,
) -> Result<ApiJson<Value>, ApiError> {
    let op = Operator::load(&ctx, session).await?;
    let rows = if op.is_admin {
        db::list(ctx.db(), None).await?
    } else if op.session.role.is_some_and(|r| r.can_manage()) {
        db::list(ctx.db(), Some(op.session.team_id)).await?
    } else {
        Vec::new()
    };
    Ok(ApiJson(json!(with_tags(&ctx, rows).await?)))
}

#[utoipa::path(get, path = "/v1/hosts/{id}", tag = "hosts", params(("id" = String, Path, description = "host_ id")),
    responses((status = 200, description = "Host"), (status = 404, description = "`not_found`")))]
async fn show(
    State(ctx): State<App>,
    RequireSession(session): RequireSession,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<Value>, ApiError> {
    let (_, host) = managed_host(&ctx, session, &id).await?;
    let tags = db::tags(ctx.db(), host.id).await?;
    Ok(ApiJson(host_json(&host, &tags)))
}

#[utoipa::path(get, path = "/v1/hosts/{id}/delete-preview", tag = "hosts", params(("id" = String, Path, description = "host_ id")),
    responses((status = 200, description = "`{host, sandbox_ids, sandbox_count}`")))]
async fn delete_preview(
    State(ctx): State<App>,
    RequireSession(session): RequireSession,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<Value>, ApiError> {
    let (_, host) = managed_host(&ctx, session, &id).await?;
    let capsules = capsule_ids(&ctx, host.id).await?;
    Ok(ApiJson(json!({
        "host": host_json(&host, &db::tags(ctx.db(), host.id).await?),
        "sandbox_ids": capsules,
        "sandbox_count": capsules.len(),
    })))
}

/// Wire ids of the capsules still on a host (live, paused or missing).
async fn capsule_ids(ctx: &App, host_id: Uuid) -> Result<Vec<String>, ApiError> {
    let mut ids_: Vec<Uuid> = crate::db::capsules::live_on_host(ctx.db(), host_id).await?;
    ids_.extend(
        crate::db::capsules::missing_on_host(ctx.db(), host_id)
            .await?
            .into_iter()
            .map(|(id, _)| id),
    );
    ids_.sort();
    Ok(ids_
        .into_iter()
        .map(|id| ids::encode(ids::CAPSULE, id))
        .collect())
}

#[derive(Debug, Deserialize)]
struct DeleteQuery {
    #[serde(default)]
    force: bool,
}

#[utoipa::path(delete, path = "/v1/hosts/{id}", tag = "hosts",
    params(("id" = String, Path, description = "host_ id"), ("force" = Option<bool>, Query, description = "destroy the host's capsules first")),
    responses((status = 204, description = "deleted"), (status = 409, description = "`host_has_sandboxes` with `error.sandbox_ids`")))]
async fn remove(
    State(ctx): State<App>,
    RequireSession(session): RequireSession,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<Response, ApiError> {
    let hosts = ctx.hosts.clone();
    let (op, host) = managed_host(&ctx, session, &id).await?;
    let capsules = capsule_ids(&ctx, host.id).await?;
    if !capsules.is_empty() && !q.force {
        let body = json!({"error": {
            "code": "host_has_sandboxes",
            "message": format!("the host still has {} capsule(s); delete them first or pass force=true", capsules.len()),
            "sandbox_ids": capsules,
        }});
        return Ok((StatusCode::CONFLICT, ApiJson(body)).into_response());
    }
    if !capsules.is_empty() {
        destroy_capsules(&ctx, &hosts, &op, &host, &capsules).await;
    }
    let mut tx = ctx.db().begin().await?;
    db::soft_delete(&mut tx, host.id).await?;
    tx.commit().await?;
    hosts.pool.evict(host.id);
    audit_host(&ctx, &op, &host, "host.delete").await;
    tracing::info!(host_id = %ids::encode(ids::HOST, host.id), forced = q.force, "Host deleted.");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Forced deletion: asks the agent to destroy each capsule (best effort: the host may be
/// gone) and records them `stopped`.
async fn destroy_capsules(
    ctx: &App,
    hosts: &Hosts,
    op: &Operator,
    host: &HostRow,
    capsules: &[String],
) {
    let mut client = hosts.pool.client(host.id).await.ok();
    let actor = op.actor(ctx).await;
    let from = CapsuleStatus::all_where(|s| s.on_host() || s == CapsuleStatus::Missing);
    for wire in capsules {
        if let Some(c) = client.as_mut() {
            let mut req = tonic::Request::new(DestroySandboxRequest {
                sandbox_id: wire.clone(),
            });
            req.set_timeout(hosts.config.rpc_timeout);
            if let Err(status) = c.destroy_sandbox(req).await {
                tracing::info!(capsule = %wire, error = %status.message(),
                    "Agent did not destroy a capsule of a force-deleted host.");
            }
        }
        let Some(capsule_id) = ids::decode(ids::CAPSULE, wire) else {
            continue;
        };
        match crate::db::capsules::transition_on_host(
            ctx.db(),
            capsule_id,
            host.id,
            &from,
            CapsuleStatus::Stopped,
            "orphaned",
        )
        .await
        {
            Ok(Some(team)) => {
                let e = crate::events::Event::new(
                    "capsule.destroy",
                    team,
                    actor.clone(),
                    Resource::sandbox(capsule_id),
                )
                .outcome(crate::events::Outcome::Success)
                .meta("reason", "orphaned");
                if let Err(err) = audit::record_and_publish(ctx, &e, AuditScope::Team).await {
                    tracing::error!(error = %err, "Recording a capsule destroy failed.");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "Stopping a capsule of a deleted host failed."),
        }
    }
}

#[utoipa::path(post, path = "/v1/hosts/{id}/token", tag = "hosts", params(("id" = String, Path, description = "host_ id")),
    responses((status = 201, description = "`{host, registration_token}`"), (status = 409, description = "`invalid_state`: host is not pending")))]
async fn new_token(
    State(ctx): State<App>,
    RequireSession(session): RequireSession,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let hosts = ctx.hosts.clone();
    let (op, host) = managed_host(&ctx, session, &id).await?;
    if host.status != crate::hosts::HostStatus::Pending {
        return Err(ApiError::conflict(
            "invalid_state",
            "registration tokens are only issued for pending hosts",
        ));
    }
    let token =
        registration::issue_registration_token(ctx.db(), &hosts, host.id, Some(op.session.user_id))
            .await?;
    audit_host(&ctx, &op, &host, "host.token").await;
    let tags = db::tags(ctx.db(), host.id).await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(json!({"host": host_json(&host, &tags), "registration_token": token})),
    )
        .into_response())
}
