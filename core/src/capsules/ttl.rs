//! Inactivity timeouts: the agents auto-pause capsules idle for `timeout_sec` (and destroy
//! those whose auto-pause failed). [`sync`] brings the database in line: `running` capsules
//! the agent reports auto-paused become `paused` with reason `ttl_expired`, auto-destroyed
//! ones `stopped`, each reported as a system `capsule.pause` / `capsule.destroy` event with
//! `metadata.reason = ttl_expired`. The stats sampler runs it on every tick.

use crate::app::App;
use crate::capsules::agent;
use crate::capsules::outcome::{self, Report};
use crate::capsules::state::CapsuleStatus;
use crate::db::capsules as db;
use crate::events::{Actor, Resource};
use uuid::Uuid;
use wrenn_extension_api::ids;
use wrenn_proto::hostagent::v1 as pb;

/// Reason recorded for auto-paused capsules (API.md `metadata.reason`).
pub const TTL_EXPIRED: &str = "ttl_expired";

/// Syncs every host that has running capsules with a timeout; returns how many capsules
/// changed.
pub async fn sync(ctx: &App) -> sqlx::Result<usize> {
    let hosts = crate::db::capsules::hosts_with_timed_capsules(ctx.db()).await?;
    let mut changed = 0;
    for host in hosts {
        let Ok(mut client) = agent::client(ctx, host).await else {
            continue;
        };
        let mut request = tonic::Request::new(pb::ListSandboxesRequest {});
        request.set_timeout(std::time::Duration::from_secs(5));
        let Ok(listing) = client.list_sandboxes(request).await else {
            continue; // the host monitor deals with unreachable hosts
        };
        let listing = listing.into_inner();
        let paused = listing
            .sandboxes
            .iter()
            .filter(|s| s.auto_paused && s.state() == pb::SandboxState::Paused);
        let paused_ids = paused
            .map(|s| s.sandbox_id.clone())
            .chain(listing.auto_paused_ids.iter().cloned());
        for wire in paused_ids.collect::<std::collections::BTreeSet<_>>() {
            changed += settle(ctx, host, &wire, CapsuleStatus::Paused, "capsule.pause").await?;
        }
        for wire in &listing.auto_destroyed_ids {
            changed += settle(ctx, host, wire, CapsuleStatus::Stopped, "capsule.destroy").await?;
        }
    }
    Ok(changed)
}

async fn settle(
    ctx: &App,
    host: Uuid,
    wire: &str,
    to: CapsuleStatus,
    event: &'static str,
) -> sqlx::Result<usize> {
    let Some(id) = ids::decode(ids::CAPSULE, wire) else {
        return Ok(0);
    };
    let Some(row) = db::get(ctx.db(), id).await? else {
        return Ok(0);
    };
    if row.host_id != Some(host) {
        return Ok(0);
    }
    let Some(moved) =
        db::transition(ctx.db(), id, &[CapsuleStatus::Running], to, TTL_EXPIRED).await?
    else {
        return Ok(0); // not running in the database (a request or the reconciler has it)
    };
    let actor = Actor::system();
    outcome::state_changed(
        ctx,
        row.team_id,
        id,
        CapsuleStatus::Running,
        moved.status(),
        &actor,
    )
    .await;
    outcome::report(
        ctx,
        Report {
            event,
            team_id: row.team_id,
            actor: &actor,
            resource: Resource::sandbox(id),
            result: Ok(()),
            metadata: vec![("reason", TTL_EXPIRED.to_string())],
        },
    )
    .await;
    tracing::info!(capsule_id = %id, to = %moved.status, "Capsule idle timeout applied.");
    Ok(1)
}
