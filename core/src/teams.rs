//! Team deletion, shared by the owner's `DELETE /v1/teams/{id}`, the platform admin's
//! `DELETE /v1/admin/teams/{id}` and account deletion: the team is soft-deleted with its API
//! keys and channels in one transaction, then every capsule it still has is destroyed.

use crate::app::App;
use crate::capsules::{lifecycle, state};
use crate::db;
use crate::events::Actor;
use std::time::Duration;
use uuid::Uuid;
use wrenn_extension_api::ApiError;

/// How long a deleted team's capsules that were mid-transition are waited for.
const SETTLE_FOR: Duration = Duration::from_secs(120);

/// Soft-deletes `team_id` (keys revoked, channels removed) and destroys its capsules.
/// Returns how many capsules were destroyed before answering; capsules caught in a
/// transition are destroyed in the background once they settle.
pub async fn delete(ctx: &App, team_id: Uuid, actor: &Actor) -> Result<usize, ApiError> {
    let mut tx = ctx.db().begin().await?;
    if !db::teams::soft_delete(&mut *tx, team_id).await? {
        return Err(ApiError::not_found("not_found", "team not found"));
    }
    db::api_keys::revoke_all_for_team(&mut *tx, team_id).await?;
    db::channels::delete_all_for_team(&mut *tx, team_id).await?;
    tx.commit().await?;
    ctx.sessions().api_keys_revoked(team_id).await;
    tracing::info!(%team_id, "Team deleted.");
    Ok(destroy_capsules(ctx, team_id, actor).await)
}

/// Destroys every capsule of a deleted team: the ones that can be destroyed now before
/// returning (their count), the rest in a tracked background task once their transition ends.
pub async fn destroy_capsules(ctx: &App, team_id: Uuid, actor: &Actor) -> usize {
    let (destroyed, unsettled) = destroy_settled(ctx, team_id, actor).await;
    if unsettled > 0 {
        let ctx2 = ctx.clone();
        let actor = actor.clone();
        ctx.spawn(async move {
            let deadline = tokio::time::Instant::now() + SETTLE_FOR;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let (_, left) = destroy_settled(&ctx2, team_id, &actor).await;
                if left == 0 {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    tracing::warn!(%team_id, left, "Capsules of a deleted team did not settle; the reconciler will find them.");
                    break;
                }
            }
        });
    }
    destroyed
}

/// One pass: destroys the team's capsules that are not mid-transition. Returns (destroyed,
/// still in transition).
async fn destroy_settled(ctx: &App, team_id: Uuid, actor: &Actor) -> (usize, usize) {
    let rows = match db::capsules::list_not_stopped(ctx.db(), team_id).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(%team_id, error = %e, "Listing a deleted team's capsules failed.");
            return (0, 1);
        }
    };
    let (now, later): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .partition(|r| state::DESTROY.from.contains(&r.status()));
    let results = futures::future::join_all(
        now.into_iter()
            .map(|row| lifecycle::destroy_reported(ctx, row, actor.clone())),
    )
    .await;
    let destroyed = results.iter().filter(|r| r.is_ok()).count();
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        tracing::warn!(%team_id, error = %e.message, "Destroying a deleted team's capsule failed.");
    }
    (destroyed, later.len())
}
