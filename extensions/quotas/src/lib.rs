//! Per-team capsule quotas, as a first-party extension built on `wrenn-extension-api` alone.
//!
//! # Layout
//!
//! Everything is in this file:
//! - the table `ext_quotas.team_quotas` (shipped as a migration), one row per team that has a
//!   quota: the most capsules it may hold at once (running, paused or starting);
//! - routes: `GET /v1/quotas` (any member or API key of the team: the quota and what the team
//!   uses) and `PUT /v1/quotas` (team owners and admins: `{"max_capsules": n}` sets the quota,
//!   `null` removes it); errors in the standard envelope;
//! - an [`AdmissionHook`]: a create that would pass the quota is refused with 402
//!   `quota_exceeded`, decided under core's per-team admission lock so concurrent creates
//!   cannot overshoot;
//! - a worker, `quota-enforcer`: a team running more capsules than its quota (the quota was
//!   lowered) has its newest running capsules paused, through the capsule facade, until at most
//!   the quota run.

use std::sync::Arc;
use std::time::Duration;
use wrenn_extension_api::axum::extract::State;
use wrenn_extension_api::axum::routing::get;
use wrenn_extension_api::axum::{Json, Router};
use wrenn_extension_api::sqlx::{self, PgConnection, PgExecutor};
use wrenn_extension_api::uuid::Uuid;
use wrenn_extension_api::{
    async_trait, ids, tracing, Admission, AdmissionHook, AdmissionRequest, ApiError, ApiJson,
    BackgroundWorker, CapsuleState, CapsuleSummary, Extension, HookError, Migration,
    RequireSessionOrApiKey, RequireTeamAdmin, RequireTeamRole, ServerContext,
};

/// The extension's name (and so its schema, `ext_quotas`).
pub const NAME: &str = "quotas";

const MIGRATIONS: &[Migration] = &[Migration::new(
    20261202000000,
    "team quotas",
    "CREATE TABLE team_quotas (
        team_id      UUID PRIMARY KEY,
        max_capsules INTEGER NOT NULL CHECK (max_capsules >= 0),
        updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
    );",
)];

/// Largest quota a team may set.
pub const MAX_QUOTA: u32 = 10_000;

/// The quotas extension; the enforcer runs every `enforce_every`.
#[derive(Debug, Clone)]
pub struct Quotas {
    pub enforce_every: Duration,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            enforce_every: Duration::from_secs(30),
        }
    }
}

/// A team's quota, if it has one.
pub async fn quota_of(db: impl PgExecutor<'_>, team_id: Uuid) -> sqlx::Result<Option<u32>> {
    let row: Option<(i32,)> =
        sqlx::query_as("SELECT max_capsules FROM ext_quotas.team_quotas WHERE team_id = $1")
            .bind(team_id)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|r| r.0.max(0) as u32))
}

#[derive(serde::Serialize)]
struct QuotaView {
    team_id: String,
    max_capsules: Option<u32>,
    capsules: u32,
}

async fn view(ctx: &ServerContext, team_id: Uuid) -> Result<Json<QuotaView>, ApiError> {
    let usage = ctx.capsules().usage(team_id).await?;
    Ok(Json(QuotaView {
        team_id: ids::encode(ids::TEAM, team_id),
        max_capsules: quota_of(ctx.db(), team_id).await?,
        capsules: usage.concurrent_sandboxes,
    }))
}

async fn get_quota(
    State(ctx): State<ServerContext>,
    RequireSessionOrApiKey(caller): RequireSessionOrApiKey,
) -> Result<Json<QuotaView>, ApiError> {
    view(&ctx, caller.team_id()).await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SetQuota {
    max_capsules: Option<u32>,
}

async fn put_quota(
    State(ctx): State<ServerContext>,
    RequireTeamRole(session, ..): RequireTeamAdmin,
    ApiJson(body): ApiJson<SetQuota>,
) -> Result<Json<QuotaView>, ApiError> {
    match body.max_capsules {
        Some(n) if n > MAX_QUOTA => {
            return Err(ApiError::invalid(format!(
                "max_capsules must be at most {MAX_QUOTA}"
            )))
        }
        Some(n) => {
            sqlx::query(
                "INSERT INTO ext_quotas.team_quotas (team_id, max_capsules) VALUES ($1, $2) \
                 ON CONFLICT (team_id) DO UPDATE SET max_capsules = $2, updated_at = now()",
            )
            .bind(session.team_id)
            .bind(n as i32)
            .execute(ctx.db())
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM ext_quotas.team_quotas WHERE team_id = $1")
                .bind(session.team_id)
                .execute(ctx.db())
                .await?;
        }
    }
    view(&ctx, session.team_id).await
}

struct Gate;

#[async_trait]
impl AdmissionHook for Gate {
    async fn admit(
        &self,
        _ctx: &ServerContext,
        conn: &mut PgConnection,
        request: &AdmissionRequest,
    ) -> Result<Admission, HookError> {
        Ok(match quota_of(conn, request.team_id).await? {
            Some(max) if request.usage.concurrent_sandboxes >= max => Admission::over_limit(
                "quota_exceeded",
                format!("the team's quota allows {max} capsules at once"),
            ),
            _ => Admission::Allow,
        })
    }
}

/// Which of a team's capsules to pause so that at most `max` run: the newest running ones.
/// (Pausing frees the host but a paused capsule still counts against admission, so the
/// enforcer caps what runs; it never destroys anything.)
pub fn to_pause(capsules: &[CapsuleSummary], max: u32) -> Vec<Uuid> {
    let mut running: Vec<&CapsuleSummary> = capsules
        .iter()
        .filter(|c| c.state == CapsuleState::Running)
        .collect();
    let excess = running.len().saturating_sub(max as usize);
    running.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    running.into_iter().take(excess).map(|c| c.id).collect()
}

/// One enforcement pass over every team with a quota.
pub async fn enforce(ctx: &ServerContext) -> Result<(), HookError> {
    let quotas: Vec<(Uuid, i32)> =
        sqlx::query_as("SELECT team_id, max_capsules FROM ext_quotas.team_quotas")
            .fetch_all(ctx.db())
            .await?;
    for (team_id, max) in quotas {
        let capsules = ctx.capsules().list(team_id).await?;
        for id in to_pause(&capsules, max.max(0) as u32) {
            match ctx.capsules().pause(NAME, team_id, id).await {
                Ok(()) => {
                    tracing::info!(%team_id, capsule_id = %id, "Paused a capsule over its team's quota.")
                }
                // Someone else changed it first (destroyed, paused): the next pass re-reads.
                Err(e) if e.code == "invalid_state" || e.code == "not_found" => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

impl Extension for Quotas {
    fn name(&self) -> &str {
        NAME
    }

    fn migrations(&self) -> Vec<Migration> {
        MIGRATIONS.to_vec()
    }

    fn register_routes(
        &self,
        router: Router<ServerContext>,
        _ctx: &ServerContext,
    ) -> Router<ServerContext> {
        router.route("/v1/quotas", get(get_quota).put(put_quota))
    }

    fn admission_hook(&self) -> Option<Arc<dyn AdmissionHook>> {
        Some(Arc::new(Gate))
    }

    fn background_workers(&self, ctx: &ServerContext) -> Vec<BackgroundWorker> {
        let ctx = ctx.clone();
        vec![BackgroundWorker::every(
            "quota-enforcer",
            self.enforce_every,
            move || {
                let ctx = ctx.clone();
                async move { enforce(&ctx).await }
            },
        )]
    }
}
