//! Host liveness and capsule reconciliation.
//!
//! Every `monitor_interval` (15 s) [`tick`] marks `online` hosts silent for longer than
//! `unreachable_after` (90 s) as `unreachable`, turns their live capsules `missing` and
//! publishes `host.down`. A heartbeat from an unreachable host brings it back `online`
//! (publishing `host.up`, see [`host_returned`]); its `missing` capsules are then reconciled
//! against the agent's `ListSandboxes`: alive → `running`, paused or auto-paused → `paused`,
//! gone → `stopped`. Each tick also retries reconciliation for online hosts that still have
//! `missing` capsules (e.g. the agent was not reachable over gRPC yet), and destroys what
//! online hosts run that the control plane no longer owns ([`sweep_orphans`]).

use super::registration::publish_host_event;
use super::Hosts;
use crate::app::App;
use crate::audit::{record_and_publish, AuditScope};
use crate::capsules::state::CapsuleStatus;
use crate::db::hosts::{self as db, HostRow};
use crate::events::{self, Actor, Event, Outcome, Resource};
use std::collections::HashSet;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wrenn_extension_api::ids;
use wrenn_proto::hostagent::v1::{DestroySandboxRequest, ListSandboxesRequest, SandboxState};

/// What one [`tick`] did.
#[derive(Debug, Default, Clone)]
pub struct TickReport {
    pub hosts_down: Vec<Uuid>,
    pub capsules_missing: usize,
    pub reconciled: Vec<(Uuid, ReconcileReport)>,
    /// Capsules destroyed on their hosts because the control plane no longer owns them.
    pub orphans_destroyed: Vec<String>,
}

/// What a reconciliation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    pub running: Vec<Uuid>,
    pub paused: Vec<Uuid>,
    pub stopped: Vec<Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("agent unreachable: {0}")]
    Agent(String),
    #[error(transparent)]
    Pool(#[from] super::pool::PoolError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Runs the monitor until `shutdown`.
pub async fn run(ctx: App, hosts: Arc<Hosts>, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(hosts.config.monitor_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = interval.tick() => {}
        }
        if let Err(e) = tick(&ctx, &hosts).await {
            tracing::warn!(error = %e, "Host monitor pass failed.");
        }
    }
    tracing::debug!("Host monitor stopped.");
}

/// One monitor pass.
pub async fn tick(ctx: &App, hosts: &Hosts) -> Result<TickReport, sqlx::Error> {
    let mut report = TickReport::default();
    let silent = db::mark_silent_unreachable(ctx.db(), hosts.config.unreachable_after).await?;
    for host in silent {
        report.capsules_missing += host_went_down(ctx, &host).await?;
        report.hosts_down.push(host.id);
    }
    let pending = crate::db::capsules::online_hosts_with_missing(ctx.db()).await?;
    for host_id in pending {
        match reconcile(ctx, hosts, host_id).await {
            Ok(r) => report.reconciled.push((host_id, r)),
            Err(e) => tracing::info!(host_id = %ids::encode(ids::HOST, host_id), error = %e,
                "Reconciliation postponed."),
        }
    }
    let online = db::ids_in(ctx.db(), &[super::HostStatus::Online]).await?;
    for host_id in online {
        match sweep_orphans(ctx, hosts, host_id).await {
            Ok(destroyed) => report.orphans_destroyed.extend(destroyed),
            Err(e) => tracing::debug!(host_id = %ids::encode(ids::HOST, host_id), error = %e,
                "Orphan sweep skipped a host."),
        }
    }
    Ok(report)
}

/// Destroys the capsules an agent runs that the control plane no longer owns there: unknown
/// ids, capsules `stopped` or placed on another host, and capsules in `error` that never
/// started (a create that failed half-way, e.g. the agent died mid-create and adopted the
/// capsule when it came back) or whose destroy failed. Capsules in every other state,
/// including ones being created right now, are left alone. Returns the ids destroyed.
pub async fn sweep_orphans(
    ctx: &App,
    hosts: &Hosts,
    host_id: Uuid,
) -> Result<Vec<String>, ReconcileError> {
    let mut client = hosts.pool.client(host_id).await?;
    let mut request = tonic::Request::new(ListSandboxesRequest {});
    request.set_timeout(hosts.config.rpc_timeout);
    let listing = client
        .list_sandboxes(request)
        .await
        .map_err(|s| ReconcileError::Agent(s.message().to_string()))?
        .into_inner();
    let listed: Vec<Uuid> = listing
        .sandboxes
        .iter()
        .filter_map(|s| ids::decode(ids::CAPSULE, &s.sandbox_id))
        .collect();
    let owned: HashSet<Uuid> = crate::db::capsules::owned_on_host(ctx.db(), &listed, host_id)
        .await?
        .into_iter()
        .collect();
    let mut destroyed = Vec::new();
    for sandbox in listing.sandboxes {
        let id = ids::decode(ids::CAPSULE, &sandbox.sandbox_id);
        if id.is_some_and(|id| owned.contains(&id)) {
            continue;
        }
        let mut request = tonic::Request::new(DestroySandboxRequest {
            sandbox_id: sandbox.sandbox_id.clone(),
        });
        request.set_timeout(hosts.config.rpc_timeout);
        match client.destroy_sandbox(request).await {
            Ok(_) => {
                tracing::warn!(host_id = %ids::encode(ids::HOST, host_id),
                    sandbox_id = %sandbox.sandbox_id, "Destroyed an orphaned capsule.");
                destroyed.push(sandbox.sandbox_id);
            }
            Err(s) => tracing::warn!(sandbox_id = %sandbox.sandbox_id, error = %s.message(),
                "Destroying an orphaned capsule failed."),
        }
    }
    Ok(destroyed)
}

async fn host_went_down(ctx: &App, host: &HostRow) -> Result<usize, sqlx::Error> {
    let changed = crate::db::capsules::mark_missing_on_host(ctx.db(), host.id).await?;
    tracing::warn!(host_id = %ids::encode(ids::HOST, host.id), capsules = changed.len(),
        "Host stopped heartbeating; marked unreachable.");
    publish_host_event(ctx, host, "host.down").await;
    let mut redis = ctx.redis();
    for c in &changed {
        let e = Event::capsule_state_changed(
            c.team_id,
            c.id,
            Some(c.previous),
            CapsuleStatus::Missing,
            Actor::system(),
        )
        .meta("reason", "host_state_sync");
        if let Err(err) = events::publish_transient(&mut redis, &e).await {
            tracing::debug!(error = %err, "Live state change not announced.");
        }
    }
    Ok(changed.len())
}

/// Called when a heartbeat brought `host` back from `unreachable`: publishes `host.up` and
/// reconciles its capsules in the background.
pub async fn host_returned(ctx: &App, hosts: Arc<Hosts>, host_id: Uuid) {
    let Ok(Some(host)) = db::get(ctx.db(), host_id).await else {
        return;
    };
    tracing::info!(host_id = %ids::encode(ids::HOST, host_id), "Host is back online.");
    publish_host_event(ctx, &host, "host.up").await;
    let app = ctx.clone();
    ctx.spawn(async move {
        if let Err(e) = reconcile(&app, &hosts, host_id).await {
            tracing::info!(host_id = %ids::encode(ids::HOST, host_id), error = %e,
                "Reconciliation postponed to the next monitor pass.");
        }
    });
}

/// Reconciles a host's `missing` capsules against what its agent reports.
pub async fn reconcile(
    ctx: &App,
    hosts: &Hosts,
    host_id: Uuid,
) -> Result<ReconcileReport, ReconcileError> {
    let missing = crate::db::capsules::missing_on_host(ctx.db(), host_id).await?;
    let mut report = ReconcileReport::default();
    if missing.is_empty() {
        return Ok(report);
    }
    let mut client = hosts.pool.client(host_id).await?;
    let mut request = tonic::Request::new(ListSandboxesRequest {});
    request.set_timeout(hosts.config.rpc_timeout);
    let listing = client
        .list_sandboxes(request)
        .await
        .map_err(|s| ReconcileError::Agent(s.message().to_string()))?
        .into_inner();
    let auto_paused: HashSet<&str> = listing.auto_paused_ids.iter().map(String::as_str).collect();
    for (capsule_id, _team) in missing {
        let wire = ids::encode(ids::CAPSULE, capsule_id);
        let seen = listing.sandboxes.iter().find(|s| s.sandbox_id == wire);
        let state = seen.map(|s| s.state());
        let was_auto_paused =
            auto_paused.contains(wire.as_str()) || seen.is_some_and(|s| s.auto_paused);
        let (to, event, reason) = match state {
            Some(SandboxState::Running) => (
                CapsuleStatus::Running,
                "capsule.resume",
                "restored_after_host_recovery",
            ),
            Some(SandboxState::Paused) if was_auto_paused => {
                (CapsuleStatus::Paused, "capsule.pause", "ttl_expired")
            }
            Some(SandboxState::Paused) => {
                (CapsuleStatus::Paused, "capsule.pause", "host_state_sync")
            }
            // It died on its own while the host was away (the agent cleaned it up).
            Some(SandboxState::Error) => (CapsuleStatus::Error, "capsule.destroy", "crashed"),
            _ if was_auto_paused => (CapsuleStatus::Paused, "capsule.pause", "ttl_expired"),
            _ => (CapsuleStatus::Stopped, "capsule.destroy", "host_state_sync"),
        };
        let Some(team) = crate::db::capsules::transition_on_host(
            ctx.db(),
            capsule_id,
            host_id,
            &[CapsuleStatus::Missing],
            to,
            reason,
        )
        .await?
        else {
            continue; // someone else moved it meanwhile
        };
        match to {
            CapsuleStatus::Running => report.running.push(capsule_id),
            CapsuleStatus::Paused => report.paused.push(capsule_id),
            _ => report.stopped.push(capsule_id),
        }
        let outcome = if to == CapsuleStatus::Error {
            Outcome::Error
        } else {
            Outcome::Success
        };
        let lifecycle = Event::new(event, team, Actor::system(), Resource::sandbox(capsule_id))
            .outcome(outcome)
            .meta("reason", reason)
            .meta("inferred", "true");
        if let Err(e) = record_and_publish(ctx, &lifecycle, AuditScope::Team).await {
            tracing::error!(error = %e, "Recording a reconciled capsule event failed.");
        }
        let live = Event::capsule_state_changed(
            team,
            capsule_id,
            Some(CapsuleStatus::Missing),
            to,
            Actor::system(),
        )
        .meta("reason", reason);
        let _ = events::publish_transient(&mut ctx.redis(), &live).await;
    }
    tracing::info!(host_id = %ids::encode(ids::HOST, host_id), running = report.running.len(),
        paused = report.paused.len(), stopped = report.stopped.len(), "Host capsules reconciled.");
    Ok(report)
}

/// The monitor as a server background worker (stops on the server's cancellation token).
/// Does nothing if the context carries no [`Hosts`] service.
pub fn worker(ctx: &App) -> wrenn_extension_api::BackgroundWorker {
    let ctx = ctx.clone();
    wrenn_extension_api::BackgroundWorker::new("host-monitor", move |token| async move {
        let hosts = ctx.hosts.clone();
        run(ctx, hosts, token).await
    })
}
