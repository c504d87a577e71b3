//! A billing-style extension for a hosted edition, through `wrenn-extension-api` only: plans in
//! its own table (assigned at signup), `GET /v1/cloud/plan`, a refusal of its own when a plan's
//! capsules are used up, and a worker metering every team's capsules into its table.
use axum::{extract::State, routing::get, Json, Router};
use serde_json::{json, Value};
use std::{sync::Arc, time::Duration};
use wrenn_extension_api::{self as api, async_trait, sqlx, uuid::Uuid, ServerContext as Ctx};
use wrenn_extension_api::{Admission, AdmissionRequest, ApiError, HookError, NewAccount};

const SCHEMA: &str = "CREATE TABLE plans (team_id UUID PRIMARY KEY, plan TEXT NOT NULL);
CREATE TABLE meter (team_id UUID NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now(), capsules INT NOT NULL);";

/// The cloud edition's extension; the metering worker runs every `meter_every`.
#[derive(Clone)]
pub struct Cloud {
    pub meter_every: Duration,
}

const PLANS: &[(&str, u32)] = &[("free", 2), ("pro", 50)];
type Conn = sqlx::PgConnection;

/// Concurrent capsules a plan allows (none for an unknown or suspended plan).
pub fn capsules_allowed(plan: &str) -> u32 {
    PLANS.iter().find(|(p, _)| *p == plan).map_or(0, |(_, n)| *n)
}

async fn plan_of(db: impl sqlx::PgExecutor<'_>, team: Uuid) -> Result<String, sqlx::Error> {
    let sql = "SELECT plan FROM ext_cloud.plans WHERE team_id = $1";
    let plan: Option<String> = sqlx::query_scalar(sql).bind(team).fetch_optional(db).await?;
    Ok(plan.unwrap_or_else(|| "free".into()))
}

async fn plan(State(ctx): State<Ctx>, caller: api::RequireSessionOrApiKey) -> Result<Json<Value>, ApiError> {
    let team = caller.0.team_id();
    let plan = plan_of(ctx.db(), team).await?;
    let max = capsules_allowed(&plan);
    Ok(Json(json!({"team_id": api::ids::encode(api::ids::TEAM, team), "plan": plan, "max_capsules": max})))
}

/// One metering pass: a sample of live capsules for every team with a plan.
pub async fn meter(ctx: &Ctx) -> Result<(), HookError> {
    let teams: Vec<(Uuid,)> =
        sqlx::query_as("SELECT team_id FROM ext_cloud.plans").fetch_all(ctx.db()).await?;
    for (team,) in teams {
        let used = ctx.capsules().usage(team).await?.concurrent_sandboxes as i32;
        let insert = "INSERT INTO ext_cloud.meter (team_id, capsules) VALUES ($1, $2)";
        sqlx::query(insert).bind(team).bind(used).execute(ctx.db()).await?;
    }
    Ok(())
}

#[async_trait]
impl api::AuthHook for Cloud {
    async fn on_signup(&self, _: &Ctx, db: &mut Conn, a: &NewAccount) -> Result<(), HookError> {
        sqlx::query("INSERT INTO ext_cloud.plans VALUES ($1, 'free')").bind(a.team_id).execute(db).await?;
        Ok(())
    }
}

#[async_trait]
impl api::AdmissionHook for Cloud {
    async fn admit(&self, _: &Ctx, db: &mut Conn, r: &AdmissionRequest) -> Result<Admission, HookError> {
        let (plan, used) = (plan_of(db, r.team_id).await?, r.usage.concurrent_sandboxes);
        let max = capsules_allowed(&plan);
        let refusal = format!("the {plan} plan allows {max} capsules at once");
        Ok(if used < max { Admission::Allow } else { Admission::over_limit("plan_limit", refusal) })
    }
}

impl api::Extension for Cloud {
    fn name(&self) -> &str {
        "cloud"
    }
    fn migrations(&self) -> Vec<api::Migration> {
        vec![api::Migration::new(1, "plans and meter", SCHEMA)]
    }
    fn register_routes(&self, router: Router<Ctx>, _: &Ctx) -> Router<Ctx> {
        router.route("/v1/cloud/plan", get(plan))
    }
    fn auth_hook(&self) -> Option<Arc<dyn api::AuthHook>> {
        Some(Arc::new(self.clone()))
    }
    fn admission_hook(&self) -> Option<Arc<dyn api::AdmissionHook>> {
        Some(Arc::new(self.clone()))
    }
    fn background_workers(&self, ctx: &Ctx) -> Vec<api::BackgroundWorker> {
        let ctx = ctx.clone();
        vec![api::BackgroundWorker::every("cloud-meter", self.meter_every, move || {
            let ctx = ctx.clone();
            async move { meter(&ctx).await }
        })]
    }
}
