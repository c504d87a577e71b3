//! Capsule lifecycle operations. Each one is a guarded transition (see [`state`]): it claims
//! the capsule by moving it into a transitional state, calls the agent, then settles it in the
//! final state — or, on failure, in the state the agent reports (reverting) or `error` with a
//! reason. Every outcome is reported through [`outcome`].

use crate::app::App;
use crate::capsules::admission;
use crate::capsules::agent::{self, status_to_api, AgentClient};
use crate::capsules::model::{CapsuleMetadata, CreateCapsule, NetworkPolicy};
use crate::capsules::outcome::{self, Report};
use crate::capsules::state::{self, CapsuleStatus, Transition};
use crate::capsules::templates;
use crate::db::capsules::{self as db, CapsuleRow, NewCapsule, Started};
use crate::events::{Actor, Resource};
use crate::hosts::scheduler::{Requirements, WarmShape};
use uuid::Uuid;
use wrenn_extension_api::{ids, ApiError, Principal};
use wrenn_proto::hostagent::v1 as pb;

/// Largest request a capsule may make (a host may refuse less).
pub const MAX_VCPUS: u32 = 64;
pub const MAX_MEMORY_MB: u32 = 256 * 1024;
pub const MIN_MEMORY_MB: u32 = 64;
pub const MIN_DISK_MB: u32 = 64;
pub const MAX_DISK_MB: u32 = 1024 * 1024;

/// The caller's capsule by wire id; anything else (malformed, missing, another team's) is
/// the same 404.
pub async fn load(ctx: &App, principal: &Principal, wire_id: &str) -> Result<CapsuleRow, ApiError> {
    let not_found = || ApiError::not_found("not_found", "capsule not found");
    let id = ids::decode(ids::CAPSULE, wire_id).ok_or_else(not_found)?;
    db::get_for_team(ctx.db(), id, principal.team_id())
        .await?
        .ok_or_else(not_found)
}

/// 409 `invalid_state` for an operation the capsule's state does not allow.
/// A capsule in `error` says why (`out_of_memory`, `crashed`, ...).
pub fn invalid_state(row: &CapsuleRow, what: &str) -> ApiError {
    let why = if row.status == CapsuleStatus::Error && !row.status_reason.is_empty() {
        format!(" ({})", row.status_reason)
    } else {
        String::new()
    };
    ApiError::conflict(
        "invalid_state",
        format!("cannot {what} a capsule that is {}{why}", row.status),
    )
}

/// The caller's capsule, which must be running, and its agent (for exec, files, proxy...).
pub async fn usable(
    ctx: &App,
    principal: &Principal,
    wire_id: &str,
    what: &str,
) -> Result<(CapsuleRow, AgentClient), ApiError> {
    let row = load(ctx, principal, wire_id).await?;
    if !state::USABLE.contains(&row.status()) {
        return Err(invalid_state(&row, what));
    }
    let host = row
        .host_id
        .ok_or_else(|| ApiError::internal("a running capsule has no host"))?;
    let client = agent::client(ctx, host).await?;
    Ok((row, client))
}

/// Records activity: resets the agent's inactivity timer and `last_active_at`, in the
/// background so the request that caused it is not delayed.
pub fn touch(ctx: &App, row: &CapsuleRow, mut client: AgentClient) {
    let app = ctx.clone();
    let id = row.id;
    let wire = ids::encode(ids::CAPSULE, id);
    ctx.spawn(async move {
        let ctx = app;
        if let Err(e) = client
            .ping_sandbox(pb::PingSandboxRequest { sandbox_id: wire })
            .await
        {
            tracing::debug!(capsule_id = %id, error = %e, "Activity ping failed.");
        }
        if let Err(e) = db::touch(ctx.db(), id).await {
            tracing::debug!(capsule_id = %id, error = %e, "Recording activity failed.");
        }
    });
}

pub(crate) fn wire(id: Uuid) -> String {
    ids::encode(ids::CAPSULE, id)
}

pub(crate) fn template_ref(team_id: Uuid, template_id: Uuid) -> pb::TemplateRef {
    // Both base36 with 25 digits, without prefix: the directory names under images/teams/.
    let strip = |s: String| s.split_once('_').map(|(_, d)| d.to_string()).unwrap_or(s);
    pb::TemplateRef {
        team_id: strip(ids::encode(ids::TEAM, team_id)),
        template_id: strip(ids::encode(ids::TEMPLATE, template_id)),
    }
}

/// Moves `row` through `from → to` and announces it; `None` when the guard failed.
pub(crate) async fn step(
    ctx: &App,
    row: &CapsuleRow,
    from: &[CapsuleStatus],
    to: CapsuleStatus,
    reason: &str,
    actor: &Actor,
) -> Result<Option<CapsuleRow>, ApiError> {
    let next = db::transition(ctx.db(), row.id, from, to, reason).await?;
    if let Some(n) = &next {
        outcome::state_changed(ctx, row.team_id, row.id, row.status(), n.status(), actor).await;
    }
    Ok(next)
}

/// After a failed agent call on a capsule in transitional state `via`: ask the agent what
/// the capsule really is and settle there (running / paused), or in `error` with `reason`.
pub(crate) async fn settle_after_failure(
    ctx: &App,
    row: &CapsuleRow,
    via: CapsuleStatus,
    reason: &str,
    actor: &Actor,
) -> CapsuleStatus {
    let observed = match row.host_id {
        Some(host) => match agent::client(ctx, host).await {
            Ok(mut client) => match client.list_sandboxes(pb::ListSandboxesRequest {}).await {
                Ok(list) => list
                    .into_inner()
                    .sandboxes
                    .into_iter()
                    .find(|s| s.sandbox_id == wire(row.id))
                    .map(|s| s.state()),
                Err(_) => None,
            },
            Err(_) => None,
        },
        None => None,
    };
    let (to, why) = match observed {
        Some(pb::SandboxState::Running) => (CapsuleStatus::Running, reason.to_string()),
        Some(pb::SandboxState::Paused) => (CapsuleStatus::Paused, reason.to_string()),
        _ => (CapsuleStatus::Error, reason.to_string()),
    };
    match step(ctx, row, &[via], to, &why, actor).await {
        Ok(Some(n)) => n.status(),
        Ok(None) => db::get(ctx.db(), row.id)
            .await
            .ok()
            .flatten()
            .map(|r| r.status())
            .unwrap_or(CapsuleStatus::Error),
        Err(e) => {
            tracing::error!(capsule_id = %row.id, error = %e, "Settling a capsule after a failure failed.");
            CapsuleStatus::Error
        }
    }
}

/// A message fit for clients describing an API error (never the internal cause).
pub(crate) fn public_message(e: &ApiError) -> String {
    e.message.to_string()
}

// ------------------------------------------------------------------------------ create

/// `POST /v1/capsules`.
#[tracing::instrument(name = "capsule.create", skip_all, fields(team_id = %principal.team_id(), capsule_id = tracing::field::Empty))]
pub async fn create(
    ctx: &App,
    principal: &Principal,
    mut req: CreateCapsule,
) -> Result<CapsuleRow, ApiError> {
    let started = std::time::Instant::now();
    let team_id = principal.team_id();
    let template = templates::resolve(ctx, team_id, req.template.as_deref()).await?;
    // A built template's recipe (ENV, WORKDIR, USER) sets what its capsules start with; the
    // request's own values win.
    let defaults = templates::defaults(&template);
    for (k, v) in defaults.env {
        req.env_vars.entry(k).or_insert(v);
    }
    if req.default_user.is_none() {
        req.default_user = defaults.user;
    }
    if req.default_workdir.is_none() {
        req.default_workdir = defaults.workdir;
    }
    let (vcpus, memory_mb) = if template.is_snapshot() {
        (template.vcpus as u32, template.memory_mb as u32)
    } else {
        (req.vcpus.unwrap_or(1), req.memory_mb.unwrap_or(512))
    };
    if vcpus == 0 || vcpus > MAX_VCPUS {
        return Err(ApiError::invalid(format!(
            "vcpus must be between 1 and {MAX_VCPUS}"
        )));
    }
    if !(MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(&memory_mb) {
        return Err(ApiError::invalid(format!(
            "memory_mb must be between {MIN_MEMORY_MB} and {MAX_MEMORY_MB}"
        )));
    }
    let disk_mb = req.disk_mb.unwrap_or(ctx.capsules.default_disk_mb);
    if !(MIN_DISK_MB..=MAX_DISK_MB).contains(&disk_mb) {
        return Err(ApiError::invalid(format!(
            "disk_mb must be between {MIN_DISK_MB} and {MAX_DISK_MB}"
        )));
    }
    let timeout_sec = req.timeout_sec.unwrap_or(0);
    if timeout_sec > i32::MAX as u32 {
        return Err(ApiError::invalid("timeout_sec is too large"));
    }
    let network = req.network.clone().unwrap_or_default();
    network.validate()?;
    validate_envs(&req.env_vars)?;

    // A fork continues the snapshot's memory, where envd still holds the source capsule's
    // access token: the fork keeps that token (envd refuses `/init` with another one).
    let inherited_token = match (template.is_snapshot(), template.source_capsule_id) {
        (true, Some(source)) => db::get(ctx.db(), source).await?.map(|s| s.access_token),
        _ => None,
    };
    let actor = outcome::actor_of(ctx, Some(principal)).await;
    // Admission and insert in one transaction, under the team's admission lock.
    let mut tx = ctx.db().begin().await?;
    admission::admit(
        ctx,
        &mut tx,
        &admission::Candidate {
            team_id,
            user_id: principal.user_id(),
            template: &template.name,
            vcpus,
            memory_mb,
        },
    )
    .await?;
    let row = db::insert(
        &mut *tx,
        &NewCapsule {
            id: Uuid::new_v4(),
            team_id,
            template_id: template.id,
            template_name: template.name.clone(),
            vcpus: vcpus as i32,
            memory_mb: memory_mb as i32,
            disk_mb: disk_mb as i32,
            timeout_sec: timeout_sec as i32,
            access_token: inherited_token
                .unwrap_or_else(|| hex::encode(rand::random::<[u8; 24]>())),
            created_by: principal.user_id(),
            network: serde_json::to_value(&network).unwrap_or_default(),
        },
    )
    .await?;
    tx.commit().await?;
    tracing::Span::current().record("capsule_id", tracing::field::display(row.id));
    tracing::info!(template = %template.name, "Creating a capsule.");

    let result = start(
        ctx,
        &row,
        &template,
        &req,
        (vcpus, memory_mb, timeout_sec),
        &actor,
    )
    .await;
    let resource = Resource::sandbox(row.id);
    match result {
        Ok(running) => {
            outcome::report(
                ctx,
                Report {
                    event: "capsule.create",
                    team_id,
                    actor: &actor,
                    resource,
                    result: Ok(()),
                    metadata: vec![("template", template.name.clone())],
                    started,
                },
            )
            .await;
            Ok(running)
        }
        Err(e) => {
            outcome::report(
                ctx,
                Report {
                    event: "capsule.create",
                    team_id,
                    actor: &actor,
                    resource,
                    result: Err(public_message(&e)),
                    metadata: vec![("template", template.name.clone())],
                    started,
                },
            )
            .await;
            Err(e)
        }
    }
}

/// The bounds of a create's `envs`.
fn validate_envs(envs: &std::collections::BTreeMap<String, String>) -> Result<(), ApiError> {
    if envs.len() > 256 {
        return Err(ApiError::invalid("envs has more than 256 variables"));
    }
    let mut total = 0;
    for (k, v) in envs {
        let mut chars = k.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(ApiError::invalid(format!(
                "envs: '{k}' is not a valid variable name"
            )));
        }
        if v.contains('\0') {
            return Err(ApiError::invalid(format!("envs: {k} has a NUL byte")));
        }
        total += k.len() + v.len();
    }
    if total > 64 * 1024 {
        return Err(ApiError::invalid("envs is larger than 64 KiB"));
    }
    Ok(())
}

/// Places the pending capsule and starts it; on failure leaves it in `error` with a reason.
#[tracing::instrument(name = "capsule.start", skip_all, fields(capsule_id = %row.id, team_id = %row.team_id, host_id = tracing::field::Empty))]
async fn start(
    ctx: &App,
    row: &CapsuleRow,
    template: &crate::db::templates::TemplateRow,
    req: &CreateCapsule,
    (vcpus, memory_mb, timeout_sec): (u32, u32, u32),
    actor: &Actor,
) -> Result<CapsuleRow, ApiError> {
    let fail = |reason: String| async move {
        let _ = step(
            ctx,
            row,
            &[CapsuleStatus::Pending, CapsuleStatus::Starting],
            CapsuleStatus::Error,
            &reason,
            actor,
        )
        .await;
    };
    // A snapshot template's state, and a team's built rootfs, live on the host that wrote
    // them: capsules of them go there.
    let host_id = match template.host_id {
        Some(host) => Ok(host),
        None => {
            let mut needs = Requirements::new(vcpus, u64::from(memory_mb));
            if !template.is_snapshot() {
                // A host with a booted capsule of this shape in its warm pool hands it over.
                let t = template_ref(template.team_id, template.id);
                needs = needs.warm(WarmShape {
                    team_id: t.team_id,
                    template_id: t.template_id,
                    vcpus,
                    memory_mb,
                    disk_mb: row.disk_mb.max(0) as u32,
                });
            }
            let picked = crate::hosts::scheduler::pick_host(ctx, row.team_id, &needs).await;
            ctx.metrics.scheduled(match &picked {
                Ok(_) => "placed",
                Err(crate::hosts::scheduler::SchedulerError::NoHostsAvailable) => {
                    "no_hosts_available"
                }
                Err(_) => "error",
            });
            picked.map_err(ApiError::from)
        }
    };
    let host_id = match host_id {
        Ok(h) => h,
        Err(e) => {
            fail("no host available".into()).await;
            return Err(e);
        }
    };
    tracing::Span::current().record("host_id", tracing::field::display(host_id));
    let Some(placed) = db::place(ctx.db(), row.id, host_id).await? else {
        return Err(invalid_state(row, "start"));
    };
    outcome::state_changed(
        ctx,
        row.team_id,
        row.id,
        CapsuleStatus::Pending,
        CapsuleStatus::Starting,
        actor,
    )
    .await;
    let mut client = match agent::client(ctx, host_id).await {
        Ok(c) => c,
        Err(e) => {
            fail("host unreachable".into()).await;
            return Err(e);
        }
    };
    let (base, snapshot) = if template.is_snapshot() {
        let base = template.base_template_id.unwrap_or(template.id);
        let base_row = crate::db::templates::get(ctx.db(), base).await?;
        let base_team = base_row.map(|b| b.team_id).unwrap_or(Uuid::nil());
        (
            template_ref(base_team, base),
            Some(template_ref(template.team_id, template.id)),
        )
    } else {
        (template_ref(template.team_id, template.id), None)
    };
    let request = pb::CreateSandboxRequest {
        sandbox_id: wire(row.id),
        template: Some(base),
        snapshot,
        vcpus,
        memory_mb,
        // A fork's disk is at least its snapshot's (the agent knows that size).
        disk_mb: row.disk_mb.max(0) as u32,
        timeout_sec,
        env_vars: req.env_vars.clone().into_iter().collect(),
        access_token: placed.access_token.clone(),
        default_user: req.default_user.clone().unwrap_or_default(),
        default_workdir: req.default_workdir.clone().unwrap_or_default(),
        network: Some(
            serde_json::from_value::<NetworkPolicy>(row.network.clone())
                .unwrap_or_default()
                .to_pb(),
        ),
    };
    match client.create_sandbox(request).await {
        Ok(resp) => {
            let resp = resp.into_inner();
            let metadata = CapsuleMetadata::from(resp.metadata.unwrap_or_default());
            let started = Started {
                guest_ip: resp.guest_ip,
                host_ip: resp.host_ip,
                metadata: serde_json::to_value(metadata).unwrap_or_default(),
            };
            match db::mark_started(ctx.db(), row.id, &started).await? {
                Some(running) => {
                    outcome::state_changed(
                        ctx,
                        row.team_id,
                        row.id,
                        CapsuleStatus::Starting,
                        CapsuleStatus::Running,
                        actor,
                    )
                    .await;
                    Ok(running)
                }
                // Someone moved it meanwhile (the reconciler, a host failure): report it as is.
                None => db::get(ctx.db(), row.id)
                    .await?
                    .ok_or_else(|| ApiError::internal("capsule vanished while starting")),
            }
        }
        Err(status) => {
            let err = status_to_api(status);
            // The agent may have half-created it: clean up, then land in error.
            let _ = client
                .destroy_sandbox(pb::DestroySandboxRequest {
                    sandbox_id: wire(row.id),
                })
                .await;
            fail(format!("create failed: {}", err.message)).await;
            Err(err)
        }
    }
}

// ------------------------------------------------------------------------------ network

/// `PATCH /v1/capsules/{id}/network`: replaces the egress policy of a running or paused
/// capsule on its host, then records it.
#[tracing::instrument(name = "capsule.network", skip_all, fields(capsule_id = %row.id, team_id = %row.team_id, host_id = ?row.host_id))]
pub async fn set_network(
    ctx: &App,
    row: CapsuleRow,
    policy: NetworkPolicy,
) -> Result<CapsuleRow, ApiError> {
    policy.validate()?;
    if !matches!(row.status(), CapsuleStatus::Running | CapsuleStatus::Paused) {
        return Err(invalid_state(&row, "change the network of"));
    }
    let host = row
        .host_id
        .ok_or_else(|| ApiError::internal("a placed capsule has no host"))?;
    let mut client = agent::client(ctx, host).await?;
    client
        .set_sandbox_network(pb::SetSandboxNetworkRequest {
            sandbox_id: wire(row.id),
            network: Some(policy.to_pb()),
        })
        .await
        .map_err(status_to_api)?;
    let value = serde_json::to_value(&policy).unwrap_or_default();
    db::set_network(ctx.db(), row.id, &value)
        .await?
        .ok_or_else(|| ApiError::not_found("not_found", "capsule not found"))
}

// ------------------------------------------------------------------------------ destroy

/// `DELETE /v1/capsules/{id}`: → `stopped`.
pub async fn destroy(ctx: &App, principal: &Principal, row: CapsuleRow) -> Result<(), ApiError> {
    let actor = outcome::actor_of(ctx, Some(principal)).await;
    destroy_reported(ctx, row, actor).await
}

/// Destroys `row` on behalf of `actor` and reports the outcome (event + audit).
pub async fn destroy_reported(ctx: &App, row: CapsuleRow, actor: Actor) -> Result<(), ApiError> {
    let started = std::time::Instant::now();
    let result = destroy_as(ctx, &row, &actor, None).await;
    outcome::report(
        ctx,
        Report {
            event: "capsule.destroy",
            team_id: row.team_id,
            actor: &actor,
            resource: Resource::sandbox(row.id),
            result: result.as_ref().map(|_| ()).map_err(public_message),
            metadata: vec![],
            started,
        },
    )
    .await;
    result
}

/// Destroys a capsule on behalf of `actor` (also used by team deletion and cleanup).
#[tracing::instrument(name = "capsule.destroy", skip_all, fields(capsule_id = %row.id, team_id = %row.team_id, host_id = ?row.host_id))]
pub async fn destroy_as(
    ctx: &App,
    row: &CapsuleRow,
    actor: &Actor,
    reason: Option<&str>,
) -> Result<(), ApiError> {
    if row.status() == CapsuleStatus::Stopped {
        return Ok(());
    }
    let t = state::DESTROY;
    let Some(claimed) = step(ctx, row, t.from, t.via, reason.unwrap_or(""), actor).await? else {
        let now = db::get(ctx.db(), row.id).await?;
        return match now {
            Some(r) if r.status() == CapsuleStatus::Stopped => Ok(()),
            Some(r) => Err(invalid_state(&r, "destroy")),
            None => Err(ApiError::not_found("not_found", "capsule not found")),
        };
    };
    if let Some(host) = claimed.host_id {
        crate::capsules::metrics::flush_capsule(ctx, host, row.id).await;
        let call = async {
            let mut client = agent::client(ctx, host).await?;
            match client
                .destroy_sandbox(pb::DestroySandboxRequest {
                    sandbox_id: wire(row.id),
                })
                .await
            {
                Ok(_) => Ok(()),
                Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
                Err(s) => Err(status_to_api(s)),
            }
        };
        if let Err(e) = call.await {
            let _ = step(
                ctx,
                &claimed,
                &[t.via],
                CapsuleStatus::Error,
                &format!("destroy failed: {}", e.message),
                actor,
            )
            .await;
            return Err(e);
        }
    }
    step(ctx, &claimed, &[t.via], t.to, reason.unwrap_or(""), actor).await?;
    Ok(())
}

// ------------------------------------------------------------------------------ pause / resume

/// Runs one agent call under a guarded transition and reports it.
#[tracing::instrument(name = "capsule.transition", skip_all, fields(capsule_id = %row.id, team_id = %row.team_id, host_id = ?row.host_id, op = %event))]
async fn guarded<F, Fut>(
    ctx: &App,
    actor: Actor,
    row: CapsuleRow,
    t: Transition,
    event: &'static str,
    what: &str,
    call: F,
) -> Result<CapsuleRow, ApiError>
where
    F: FnOnce(AgentClient, CapsuleRow) -> Fut,
    Fut: std::future::Future<Output = Result<Option<serde_json::Value>, ApiError>>,
{
    let started = std::time::Instant::now();
    let result = async {
        let Some(claimed) = step(ctx, &row, t.from, t.via, "", &actor).await? else {
            let now = db::get(ctx.db(), row.id).await?.unwrap_or(row.clone());
            return Err(invalid_state(&now, what));
        };
        let host = claimed
            .host_id
            .ok_or_else(|| ApiError::internal("capsule without host"))?;
        let outcome = match agent::client(ctx, host).await {
            Ok(client) => call(client, claimed.clone()).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(metadata) => {
                let done = if t.to == CapsuleStatus::Running && t.via == CapsuleStatus::Resuming {
                    db::mark_resumed(ctx.db(), row.id, metadata.as_ref()).await?
                } else {
                    db::transition(ctx.db(), row.id, &[t.via], t.to, "").await?
                };
                match done {
                    Some(d) => {
                        outcome::state_changed(ctx, row.team_id, row.id, t.via, t.to, &actor).await;
                        Ok(d)
                    }
                    None => db::get(ctx.db(), row.id)
                        .await?
                        .ok_or_else(|| ApiError::internal("capsule vanished")),
                }
            }
            Err(e) => {
                settle_after_failure(
                    ctx,
                    &claimed,
                    t.via,
                    &format!("{what} failed: {}", e.message),
                    &actor,
                )
                .await;
                Err(e)
            }
        }
    }
    .await;
    outcome::report(
        ctx,
        Report {
            event,
            team_id: row.team_id,
            actor: &actor,
            resource: Resource::sandbox(row.id),
            result: result.as_ref().map(|_| ()).map_err(public_message),
            metadata: vec![],
            started,
        },
    )
    .await;
    result
}

/// `POST /v1/capsules/{id}/pause`.
pub async fn pause(
    ctx: &App,
    principal: &Principal,
    row: CapsuleRow,
) -> Result<CapsuleRow, ApiError> {
    let actor = outcome::actor_of(ctx, Some(principal)).await;
    pause_as(ctx, row, actor).await
}

/// Pauses `row` on behalf of `actor`.
pub async fn pause_as(ctx: &App, row: CapsuleRow, actor: Actor) -> Result<CapsuleRow, ApiError> {
    guarded(
        ctx,
        actor,
        row,
        state::PAUSE,
        "capsule.pause",
        "pause",
        |mut client, row| async move {
            client
                .pause_sandbox(pb::PauseSandboxRequest {
                    sandbox_id: wire(row.id),
                })
                .await
                .map_err(status_to_api)?;
            Ok(None)
        },
    )
    .await
}

/// `POST /v1/capsules/{id}/resume`.
pub async fn resume(
    ctx: &App,
    principal: &Principal,
    row: CapsuleRow,
) -> Result<CapsuleRow, ApiError> {
    let actor = outcome::actor_of(ctx, Some(principal)).await;
    resume_as(ctx, row, actor).await
}

/// Resumes `row` on behalf of `actor` (the port proxy's auto-resume acts as the system).
pub async fn resume_as(ctx: &App, row: CapsuleRow, actor: Actor) -> Result<CapsuleRow, ApiError> {
    guarded(
        ctx,
        actor,
        row,
        state::RESUME,
        "capsule.resume",
        "resume",
        |mut client, row| async move {
            let resp = client
                .resume_sandbox(pb::ResumeSandboxRequest {
                    sandbox_id: wire(row.id),
                    timeout_sec: row.timeout_sec.max(0) as u32,
                })
                .await
                .map_err(status_to_api)?
                .into_inner();
            Ok(resp
                .metadata
                .map(|m| serde_json::to_value(CapsuleMetadata::from(m)).unwrap_or_default()))
        },
    )
    .await
}

/// `POST /v1/capsules/{id}/ping`: resets the inactivity timer.
#[tracing::instrument(name = "capsule.ping", skip_all, fields(team_id = %principal.team_id()))]
pub async fn ping(ctx: &App, principal: &Principal, wire_id: &str) -> Result<(), ApiError> {
    let (row, mut client) = usable(ctx, principal, wire_id, "ping").await?;
    client
        .ping_sandbox(pb::PingSandboxRequest {
            sandbox_id: wire(row.id),
        })
        .await
        .map_err(status_to_api)?;
    db::touch(ctx.db(), row.id).await?;
    Ok(())
}
