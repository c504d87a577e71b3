//! Snapshots: `POST /v1/snapshots` (a running or paused capsule becomes a snapshot template
//! and is left paused) and deleting a snapshot template from every host that may hold it.
//! Both are guarded transitions reported like the other lifecycle operations.

use crate::app::App;
use crate::capsules::agent::{self, status_to_api};
use crate::capsules::outcome::{self, Report};
use crate::capsules::state::{self};
use crate::db::capsules::{self as db, CapsuleRow};
use crate::events::Resource;
use crate::hosts::HostStatus;
use uuid::Uuid;
use wrenn_extension_api::{ApiError, Principal};
use wrenn_proto::hostagent::v1 as pb;

use crate::capsules::lifecycle::{
    invalid_state, public_message, settle_after_failure, step, template_ref, wire,
};

/// `POST /v1/snapshots`: writes a snapshot template of a running or paused capsule, which is
/// paused afterwards.
#[tracing::instrument(name = "capsule.snapshot", skip_all, fields(capsule_id = %row.id, team_id = %row.team_id, host_id = ?row.host_id))]
pub async fn snapshot(
    ctx: &App,
    principal: &Principal,
    row: CapsuleRow,
    name: String,
) -> Result<crate::db::templates::TemplateRow, ApiError> {
    use crate::db::templates as tdb;
    let started = std::time::Instant::now();
    let actor = outcome::actor_of(ctx, Some(principal)).await;
    let team_id = row.team_id;
    let result = async {
        if tdb::is_platform_name(ctx.db(), &name).await? {
            return Err(ApiError::conflict(
                "name_reserved",
                "a platform template has this name",
            ));
        }
        let t = state::SNAPSHOT;
        let Some(claimed) = step(ctx, &row, t.from, t.via, "", &actor).await? else {
            let now = db::get(ctx.db(), row.id).await?.unwrap_or(row.clone());
            return Err(invalid_state(&now, "snapshot"));
        };
        let host = claimed
            .host_id
            .ok_or_else(|| ApiError::internal("capsule without host"))?;
        // The base rootfs the snapshot continues from (a fork of a fork keeps the same base).
        let source = tdb::get(ctx.db(), row.template_id).await?;
        let base_template_id = match &source {
            Some(s) if s.is_snapshot() => s.base_template_id.unwrap_or(s.id),
            Some(s) => s.id,
            None => row.template_id,
        };
        let cap = i64::from(ctx.capsules.max_snapshots_per_team);
        let inserted = tdb::insert_snapshot_capped(
            ctx.db(),
            &tdb::NewSnapshot {
                id: Uuid::new_v4(),
                team_id,
                name: name.clone(),
                vcpus: row.vcpus,
                memory_mb: row.memory_mb,
                base_template_id,
                source_capsule_id: row.id,
                host_id: host,
            },
            cap,
        )
        .await;
        let template = match inserted {
            Ok(Some(t)) => t,
            Ok(None) => {
                let _ = step(ctx, &claimed, &[t.via], row.status(), "", &actor).await;
                return Err(ApiError::conflict(
                    "snapshot_limit",
                    format!("a team can keep at most {cap} snapshots; delete unused ones first"),
                ));
            }
            Err(e) => {
                // Nothing happened on the host: put the capsule back where it was.
                let _ = step(ctx, &claimed, &[t.via], row.status(), "", &actor).await;
                return Err(ApiError::conflict_on_unique(
                    e,
                    "template_name_taken",
                    "the team already has a template with this name",
                ));
            }
        };
        let call = async {
            let mut client = agent::client(ctx, host).await?;
            client
                .create_snapshot(pb::CreateSnapshotRequest {
                    sandbox_id: wire(row.id),
                    template: Some(template_ref(team_id, template.id)),
                })
                .await
                .map_err(status_to_api)
                .map(|r| r.into_inner())
        };
        match call.await {
            Ok(resp) => {
                tdb::set_size(ctx.db(), template.id, resp.size_bytes as i64).await?;
                if db::transition(ctx.db(), row.id, &[t.via], t.to, "")
                    .await?
                    .is_some()
                {
                    outcome::state_changed(ctx, team_id, row.id, t.via, t.to, &actor).await;
                }
                Ok(tdb::get(ctx.db(), template.id).await?.unwrap_or(template))
            }
            Err(e) => {
                let _ = tdb::delete(ctx.db(), &template).await;
                settle_after_failure(
                    ctx,
                    &claimed,
                    t.via,
                    &format!("snapshot failed: {}", e.message),
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
            event: "template.snapshot.create",
            team_id,
            actor: &actor,
            resource: Resource::snapshot(name.clone()),
            result: result.as_ref().map(|_| ()).map_err(public_message),
            metadata: vec![("sandbox_id", wire(row.id))],
            started,
        },
    )
    .await;
    result
}

/// `DELETE /v1/snapshots/{name}`: removes the snapshot from every host that may hold it,
/// then the row.
#[tracing::instrument(name = "snapshot.delete", skip_all, fields(team_id = %template.team_id, template_id = %template.id))]
pub async fn delete_snapshot(
    ctx: &App,
    principal: &Principal,
    template: crate::db::templates::TemplateRow,
) -> Result<(), ApiError> {
    let started = std::time::Instant::now();
    let actor = outcome::actor_of(ctx, Some(principal)).await;
    let result = async {
        let tref = template_ref(template.team_id, template.id);
        // Every registered host: a snapshot lives where it was taken, but forks may have been
        // restored elsewhere by an operator, and deleting a missing one is harmless.
        let hosts =
            crate::db::hosts::ids_in(ctx.db(), &[HostStatus::Online, HostStatus::Unreachable])
                .await?;
        for host in hosts {
            let Ok(mut client) = agent::client(ctx, host).await else {
                tracing::warn!(host_id = %host, "Host unreachable while deleting a snapshot.");
                continue;
            };
            match client
                .delete_snapshot(pb::DeleteSnapshotRequest {
                    template: Some(tref.clone()),
                })
                .await
            {
                Ok(_) => {}
                Err(s) if s.code() == tonic::Code::NotFound => {}
                Err(s) => return Err(status_to_api(s)),
            }
        }
        crate::db::templates::delete(ctx.db(), &template).await?;
        Ok(())
    }
    .await;
    outcome::report(
        ctx,
        Report {
            event: "template.snapshot.delete",
            team_id: template.team_id,
            actor: &actor,
            resource: Resource::snapshot(template.name.clone()),
            result: result.as_ref().map(|_| ()).map_err(public_message),
            metadata: vec![],
            started,
        },
    )
    .await;
    result
}
