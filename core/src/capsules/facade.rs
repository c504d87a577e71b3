//! [`CoreCapsules`]: core's implementation of the extension-facing
//! [`CapsuleService`](wrenn_extension_api::CapsuleService). Every operation is the REST API's
//! own (guarded transition, events, audit), scoped to one team, with the extension as actor.

use crate::app::{App, Services};
use crate::capsules::model::{CapsuleMetadata, CreateCapsule};
use crate::capsules::{agent, lifecycle, proxy, state, stats, CapsuleStatus};
use crate::db::capsules as db;
use crate::events::Actor;
use std::sync::{OnceLock, Weak};
use uuid::Uuid;
use wrenn_extension_api::capsules::{CapsuleMetric, CapsuleSpec, PortStream};
use wrenn_extension_api::{ids, ApiError, CapsuleService, CapsuleSummary, Principal, TeamUsage};

/// Filled once the [`App`] exists (the context it lives in is part of the app).
#[derive(Default)]
pub struct CoreCapsules {
    app: OnceLock<Weak<Services>>,
}

impl CoreCapsules {
    /// Points the facade at the running app (called once by the server at start-up).
    pub fn bind(&self, app: &App) {
        let _ = self.app.set(app.downgrade());
    }

    fn app(&self) -> Result<App, ApiError> {
        self.app
            .get()
            .and_then(App::upgrade)
            .ok_or_else(|| ApiError::internal("the capsule service is not running"))
    }

    async fn owned(app: &App, team_id: Uuid, capsule_id: Uuid) -> Result<db::CapsuleRow, ApiError> {
        db::get_for_team(app.db(), capsule_id, team_id)
            .await?
            .ok_or_else(|| ApiError::not_found("not_found", "capsule not found"))
    }
}

#[async_trait::async_trait]
impl CapsuleService for CoreCapsules {
    async fn usage(&self, team_id: Uuid) -> Result<TeamUsage, ApiError> {
        let app = self.app()?;
        Ok(crate::capsules::admission::core_usage(app.db(), team_id).await?)
    }

    async fn list(&self, team_id: Uuid) -> Result<Vec<CapsuleSummary>, ApiError> {
        let app = self.app()?;
        let rows = db::list_for_team(app.db(), team_id).await?;
        Ok(rows.iter().map(summary).collect())
    }

    async fn pause(
        &self,
        extension: &str,
        team_id: Uuid,
        capsule_id: Uuid,
    ) -> Result<(), ApiError> {
        let app = self.app()?;
        let row = Self::owned(&app, team_id, capsule_id).await?;
        lifecycle::pause_as(&app, row, Actor::extension(extension))
            .await
            .map(|_| ())
    }

    async fn destroy(
        &self,
        extension: &str,
        team_id: Uuid,
        capsule_id: Uuid,
    ) -> Result<(), ApiError> {
        let app = self.app()?;
        let row = Self::owned(&app, team_id, capsule_id).await?;
        lifecycle::destroy_reported(&app, row, Actor::extension(extension)).await
    }

    async fn get(&self, team_id: Uuid, capsule_id: Uuid) -> Result<CapsuleSummary, ApiError> {
        let app = self.app()?;
        Ok(summary(&Self::owned(&app, team_id, capsule_id).await?))
    }

    async fn create(&self, by: &Principal, spec: CapsuleSpec) -> Result<CapsuleSummary, ApiError> {
        let app = self.app()?;
        let network = match spec.network {
            None => None,
            Some(v) => Some(
                serde_json::from_value(v)
                    .map_err(|e| ApiError::invalid(format!("network: {e}")))?,
            ),
        };
        let req = CreateCapsule {
            template: spec.template,
            vcpus: spec.vcpus,
            memory_mb: spec.memory_mb,
            disk_mb: spec.disk_mb,
            timeout_sec: spec.timeout_sec,
            network,
            env_vars: spec.env_vars,
            default_user: spec.default_user,
            default_workdir: spec.default_workdir,
        };
        Ok(summary(&lifecycle::create(&app, by, req).await?))
    }

    async fn pause_as(&self, by: &Principal, capsule_id: Uuid) -> Result<(), ApiError> {
        let app = self.app()?;
        let row = Self::owned(&app, by.team_id(), capsule_id).await?;
        lifecycle::pause(&app, by, row).await.map(|_| ())
    }

    async fn resume(&self, by: &Principal, capsule_id: Uuid) -> Result<CapsuleSummary, ApiError> {
        let app = self.app()?;
        let row = Self::owned(&app, by.team_id(), capsule_id).await?;
        Ok(summary(&lifecycle::resume(&app, by, row).await?))
    }

    async fn destroy_as(&self, by: &Principal, capsule_id: Uuid) -> Result<(), ApiError> {
        let app = self.app()?;
        let row = Self::owned(&app, by.team_id(), capsule_id).await?;
        lifecycle::destroy(&app, by, row).await
    }

    async fn metrics(
        &self,
        team_id: Uuid,
        capsule_id: Uuid,
        range: &str,
    ) -> Result<Vec<CapsuleMetric>, ApiError> {
        let app = self.app()?;
        if stats::metrics_range(range).is_none() {
            return Err(ApiError::invalid(
                "range must be one of 5m, 10m, 1h, 2h, 6h, 24h",
            ));
        }
        let row = Self::owned(&app, team_id, capsule_id).await?;
        let metrics = stats::capsule_metrics(&app, &row, range).await?;
        Ok(metrics
            .points
            .into_iter()
            .map(|p| CapsuleMetric::new(p.timestamp_unix, p.cpu_pct, p.mem_bytes, p.disk_bytes))
            .collect())
    }

    async fn open_port(
        &self,
        team_id: Uuid,
        capsule_id: Uuid,
        port: u16,
    ) -> Result<Box<dyn PortStream>, ApiError> {
        let app = self.app()?;
        let row = Self::owned(&app, team_id, capsule_id).await?;
        if row.status() != CapsuleStatus::Running || !state::USABLE.contains(&row.status()) {
            return Err(lifecycle::invalid_state(&row, "reach"));
        }
        let host = row
            .host_id
            .ok_or_else(|| ApiError::internal("a running capsule has no host"))?;
        let mut client = agent::client(&app, host).await?;
        let tunnel = proxy::open_tunnel(
            &app.tasks,
            &mut client,
            ids::encode(ids::CAPSULE, capsule_id),
            port,
        )
        .await?;
        lifecycle::touch(&app, &row, client);
        Ok(Box::new(tunnel))
    }
}

/// The extension's view of a capsule row.
fn summary(r: &db::CapsuleRow) -> CapsuleSummary {
    let mut s = CapsuleSummary::with_state(
        r.id,
        r.team_id,
        r.status.into(),
        r.template_name.clone(),
        r.vcpus.max(0) as u32,
        r.memory_mb.max(0) as u64,
        r.created_at,
    );
    s.disk_mb = r.disk_mb.max(0) as u64;
    s.reason = r.status_reason.clone();
    s.started_at = r.started_at;
    s.envd_version = serde_json::from_value::<CapsuleMetadata>(r.metadata.clone())
        .unwrap_or_default()
        .envd_version;
    s
}
