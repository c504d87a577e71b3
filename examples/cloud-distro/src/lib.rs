//! Example extension for a hosted "cloud" edition of Wrenn.
//!
//! # Layout
//!
//! Everything is in this file: [`CloudExtension`] implements
//! [`Extension`](wrenn_extension_api::Extension) and contributes
//! - routes: `GET /v1/cloud/plan` (session or API key: the caller's team plan and limits) and
//!   `GET /v1/cloud/stats` (platform admins: figures gathered by the worker);
//! - a background worker, `cloud-stats`, that counts users and teams every interval into Redis;
//! - an [`AuthHook`]: new teams start on the `free` plan; signups from blocked domains are
//!   refused (the hook fails, so core aborts the signup with 500 `signup_hook_failed`);
//! - a [`LimitsProvider`] mapping plans to capsule limits (consulted once capsules exist).
//!
//! It depends only on `wrenn-extension-api` for its types; `cpserver` is used by `main.rs`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use wrenn_extension_api::redis::AsyncCommands;
use wrenn_extension_api::uuid::Uuid;
use wrenn_extension_api::{
    ids, ApiError, AuthHook, BackgroundWorker, EffectiveLimits, Extension, HookError,
    LimitsProvider, NewAccount, RequireAdmin, RequireSessionOrApiKey, ServerContext,
};

/// Redis key of a team's plan.
pub fn plan_key(team_id: Uuid) -> String {
    format!("cloud:plan:{team_id}")
}

/// Redis key where the worker stores its figures.
pub const STATS_KEY: &str = "cloud:stats";

/// The cloud edition's extension.
#[derive(Clone)]
pub struct CloudExtension {
    /// Email domains whose signups are refused.
    pub blocked_domains: Vec<String>,
    /// How often the stats worker runs.
    pub stats_every: Duration,
}

impl CloudExtension {
    /// `CLOUD_BLOCKED_DOMAINS` (comma separated) and `CLOUD_STATS_INTERVAL_SECS` (default 60).
    pub fn from_env() -> Self {
        let blocked_domains = std::env::var("CLOUD_BLOCKED_DOMAINS")
            .unwrap_or_default()
            .split(',')
            .map(|d| d.trim().to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        let secs = std::env::var("CLOUD_STATS_INTERVAL_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60);
        Self {
            blocked_domains,
            stats_every: Duration::from_secs(secs),
        }
    }
}

/// Capsule limits per plan.
pub fn limits_for(plan: &str) -> EffectiveLimits {
    match plan {
        "pro" => EffectiveLimits {
            max_concurrent_sandboxes: Some(50),
            max_vcpus: Some(200),
            max_memory_mb: Some(400 * 1024),
        },
        _ => EffectiveLimits {
            max_concurrent_sandboxes: Some(2),
            max_vcpus: Some(4),
            max_memory_mb: Some(4096),
        },
    }
}

async fn team_plan(ctx: &ServerContext, team_id: Uuid) -> Result<String, ApiError> {
    let mut redis = ctx.redis();
    let plan: Option<String> = redis.get(plan_key(team_id)).await?;
    Ok(plan.unwrap_or_else(|| "free".into()))
}

async fn plan(
    State(ctx): State<ServerContext>,
    RequireSessionOrApiKey(p): RequireSessionOrApiKey,
) -> Result<Json<Value>, ApiError> {
    let plan = team_plan(&ctx, p.team_id()).await?;
    let limits = limits_for(&plan);
    Ok(Json(json!({
        "team_id": ids::encode(ids::TEAM, p.team_id()),
        "plan": plan,
        "limits": {
            "max_concurrent_sandboxes": limits.max_concurrent_sandboxes,
            "max_vcpus": limits.max_vcpus,
            "max_memory_mb": limits.max_memory_mb,
        },
    })))
}

async fn stats(
    State(ctx): State<ServerContext>,
    RequireAdmin(_): RequireAdmin,
) -> Result<Json<Value>, ApiError> {
    let mut redis = ctx.redis();
    let raw: Option<String> = redis.get(STATS_KEY).await?;
    let value = raw
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    Ok(Json(json!({ "stats": value })))
}

async fn collect_stats(ctx: &ServerContext) -> Result<(), ApiError> {
    let (users, teams): (i64, i64) = wrenn_extension_api::sqlx::query_as(
        "SELECT (SELECT count(*) FROM users WHERE is_active AND deleted_at IS NULL), \
                (SELECT count(*) FROM teams WHERE deleted_at IS NULL)",
    )
    .fetch_one(ctx.db())
    .await?;
    let mut redis = ctx.redis();
    let value = json!({"users": users, "teams": teams, "at": unix_now()}).to_string();
    let _: () = redis.set(STATS_KEY, value).await?;
    Ok(())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

struct CloudAuth {
    blocked_domains: Vec<String>,
}

#[async_trait::async_trait]
impl AuthHook for CloudAuth {
    async fn on_signup(
        &self,
        ctx: &ServerContext,
        _conn: &mut wrenn_extension_api::sqlx::PgConnection,
        account: &NewAccount,
    ) -> Result<(), HookError> {
        let domain = account
            .email
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        if self.blocked_domains.contains(&domain) {
            return Err(HookError::new(format!("signups from {domain} are blocked")));
        }
        let mut redis = ctx.redis();
        // NX: idempotent if signup is retried after a later rollback.
        let _: bool = redis
            .set_nx(plan_key(account.team_id), "free")
            .await
            .map_err(|e| HookError::new(e.to_string()))?;
        tracing::info!(team_id = %account.team_id, "Cloud plan assigned.");
        Ok(())
    }
}

struct CloudLimits;

#[async_trait::async_trait]
impl LimitsProvider for CloudLimits {
    async fn effective_limits(
        &self,
        ctx: &ServerContext,
        team_id: Uuid,
    ) -> Result<EffectiveLimits, HookError> {
        let plan = team_plan(ctx, team_id)
            .await
            .map_err(|e| HookError::new(e.to_string()))?;
        Ok(limits_for(&plan))
    }
}

impl Extension for CloudExtension {
    fn name(&self) -> &str {
        "cloud"
    }

    fn register_routes(
        &self,
        router: Router<ServerContext>,
        _ctx: &ServerContext,
    ) -> Router<ServerContext> {
        router
            .route("/v1/cloud/plan", get(plan))
            .route("/v1/cloud/stats", get(stats))
    }

    fn background_workers(&self, ctx: &ServerContext) -> Vec<BackgroundWorker> {
        let ctx = ctx.clone();
        let every = self.stats_every;
        vec![BackgroundWorker::new(
            "cloud-stats",
            move |token| async move {
                let mut interval = tokio::time::interval(every);
                loop {
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = interval.tick() => {
                            if let Err(e) = collect_stats(&ctx).await {
                                tracing::warn!(error = %e, "Cloud stats failed.");
                            }
                        }
                    }
                }
            },
        )]
    }

    fn auth_hook(&self) -> Option<Arc<dyn AuthHook>> {
        Some(Arc::new(CloudAuth {
            blocked_domains: self.blocked_domains.clone(),
        }))
    }

    fn limits_provider(&self) -> Option<Arc<dyn LimitsProvider>> {
        Some(Arc::new(CloudLimits))
    }
}
