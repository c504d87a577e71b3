//! `/v1/hosts`: the host registry (API.md "Hosts").
//!
//! Operator routes take a session only (API keys are refused by the guard): regular hosts are
//! managed by platform admins, BYOC hosts also by owners/admins of their (BYOC) team; a host
//! the caller may not manage is a 404. Agent routes: `register` (registration token),
//! `auth/refresh` (refresh token), `{id}/heartbeat` and `sandbox-events` (`X-Host-Token`).

mod agent;
mod tags;
pub mod views;

use crate::app::App;
use crate::audit::{self, AuditEntry, AuditScope};
use crate::capsules::state::CapsuleStatus;
use crate::db::hosts::{self as db, HostRow, NewHost};
use crate::events::{Actor, Resource};
use crate::hosts::{registration, Hosts};
use crate::http::paging::{ListQuery, Paged};
use crate::http::views::ErrorEnvelope;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde::Deserialize;
use std::collections::HashMap;
use uuid::Uuid;
use views::{Host, HostDeletePreview, HostHasSandboxes, HostHasSandboxesBody, HostToken};
use wrenn_extension_api::{
    ids, ApiError, ApiJson, ApiPath, ApiQuery, RequireSession, SessionPrincipal,
};
use wrenn_proto::hostagent::v1::DestroySandboxRequest;

/// The OpenAPI description of the host, audit and event routes (merged into the document
/// by `http::docs`).
#[derive(utoipa::OpenApi)]
#[openapi(
    components(schemas(
        views::Host,
        views::HostLoad,
        views::HostToken,
        views::HostDeletePreview,
        views::HostCredentials,
        views::HeartbeatReply,
        views::SandboxEventsApplied,
        views::HostHasSandboxes,
        crate::hosts::HostStatus,
        CreateHost,
        tags::AddTags,
        super::audit::AuditPage,
        super::audit::AuditLog
    )),
    paths(
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
    )
)]
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateHost {
    /// `regular` (platform admins) or `byoc` (owners/admins of a BYOC team).
    #[serde(rename = "type")]
    kind: String,
    /// BYOC: the team (`tm_…`); default the session's team. Regular hosts take none.
    team_id: Option<String>,
    /// Free text, at most 100 characters.
    provider: Option<String>,
    /// Free text, at most 100 characters.
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

#[utoipa::path(post, path = "/v1/hosts", tag = "hosts", request_body = CreateHost,
    description = "Create a host; regular hosts: platform admins; BYOC: owners/admins of a BYOC team. Returns the host and its registration token (one-time, 1 h). Session only.",
    responses((status = 201, body = HostToken), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope, description = "`admin_required` / `forbidden`")))]
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
        ApiJson(HostToken {
            host: Host::new(&host, &[]),
            registration_token: token,
        }),
    )
        .into_response())
}

/// Each host with its wire shape (tags read in one query).
async fn with_tags(ctx: &App, hosts: Vec<HostRow>) -> Result<Vec<(HostRow, Host)>, ApiError> {
    let ids: Vec<Uuid> = hosts.iter().map(|h| h.id).collect();
    let mut tags: HashMap<Uuid, Vec<String>> = HashMap::new();
    for (id, tag) in db::tags_of(ctx.db(), &ids).await? {
        tags.entry(id).or_default().push(tag);
    }
    Ok(hosts
        .into_iter()
        .map(|h| {
            let view = Host::new(&h, tags.get(&h.id).map(Vec::as_slice).unwrap_or(&[]));
            (h, view)
        })
        .collect())
}

/// Hosts the caller manages: every host for platform admins, the team's BYOC hosts for its
/// owners/admins; oldest first (`(created_at, id)` ascending, the order it always had), paged
/// by `limit`/`cursor` (`X-Next-Cursor`).
#[utoipa::path(get, path = "/v1/hosts", tag = "hosts", params(ListQuery),
    responses((status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 200, body = [Host], description = "A bare JSON array of hosts (API.md: lists are arrays)",
               headers(("X-Next-Cursor" = String, description = "present when another page follows"))),
              (status = 400, body = ErrorEnvelope, description = "bad limit or cursor"),
              (status = 401, body = ErrorEnvelope)))]
async fn list(
    State(ctx): State<App>,
    RequireSession(session): RequireSession,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Paged<Host>, ApiError> {
    let page = q.page()?;
    let op = Operator::load(&ctx, session).await?;
    let rows = if op.is_admin {
        db::list(ctx.db(), None, page).await?
    } else if op.session.role.is_some_and(|r| r.can_manage()) {
        db::list(ctx.db(), Some(op.session.team_id), page).await?
    } else {
        Vec::new()
    };
    let views = with_tags(&ctx, rows).await?;
    Ok(Paged::new(
        views,
        page,
        |(h, _)| (h.created_at, h.id),
        |(_, v)| v.clone(),
    ))
}

#[utoipa::path(get, path = "/v1/hosts/{id}", tag = "hosts", params(("id" = String, Path, description = "host_ id")),
    responses((status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 200, body = Host), (status = 400, body = ErrorEnvelope, description = "not a host_ id"),
              (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope, description = "`not_found`")))]
async fn show(
    State(ctx): State<App>,
    RequireSession(session): RequireSession,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<Host>, ApiError> {
    let (_, host) = managed_host(&ctx, session, &id).await?;
    let tags = db::tags(ctx.db(), host.id).await?;
    Ok(ApiJson(Host::new(&host, &tags)))
}

#[utoipa::path(get, path = "/v1/hosts/{id}/delete-preview", tag = "hosts", params(("id" = String, Path, description = "host_ id")),
    responses((status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 200, body = HostDeletePreview), (status = 400, body = ErrorEnvelope, description = "not a host_ id"),
              (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope, description = "`not_found`")))]
async fn delete_preview(
    State(ctx): State<App>,
    RequireSession(session): RequireSession,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<HostDeletePreview>, ApiError> {
    let (_, host) = managed_host(&ctx, session, &id).await?;
    let capsules = capsule_ids(&ctx, host.id).await?;
    Ok(ApiJson(HostDeletePreview {
        host: Host::new(&host, &db::tags(ctx.db(), host.id).await?),
        sandbox_count: capsules.len(),
        sandbox_ids: capsules,
    }))
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
    responses((status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 204, description = "deleted"), (status = 400, body = ErrorEnvelope, description = "not a host_ id"),
              (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope, description = "`not_found`"),
              (status = 409, body = HostHasSandboxes, description = "`host_has_sandboxes` with `error.sandbox_ids`")))]
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
        let body = HostHasSandboxes {
            error: HostHasSandboxesBody {
                code: "host_has_sandboxes".into(),
                message: format!(
                    "the host still has {} capsule(s); delete them first or pass force=true",
                    capsules.len()
                ),
                sandbox_ids: capsules,
            },
        };
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
    responses((status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 201, body = HostToken), (status = 400, body = ErrorEnvelope, description = "not a host_ id"),
              (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope, description = "`not_found`"),
              (status = 409, body = ErrorEnvelope, description = "`invalid_state`: host is not pending")))]
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
        ApiJson(HostToken {
            host: Host::new(&host, &tags),
            registration_token: token,
        }),
    )
        .into_response())
}
