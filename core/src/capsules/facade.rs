//! [`CoreCapsules`]: core's implementation of the extension-facing
//! [`CapsuleService`](wrenn_extension_api::CapsuleService). Every operation is the REST API's
//! own (guarded transition, events, audit), scoped to one team, with the extension as actor.

use crate::app::{App, Services};
use crate::capsules::lifecycle;
use crate::db::capsules as db;
use crate::events::Actor;
use std::sync::{OnceLock, Weak};
use uuid::Uuid;
use wrenn_extension_api::{ApiError, CapsuleService, CapsuleSummary, TeamUsage};

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
        Ok(rows
            .into_iter()
            .map(|r| {
                CapsuleSummary::new(
                    r.id,
                    r.team_id,
                    r.status.as_str().to_string(),
                    r.template_name.clone(),
                    r.vcpus.max(0) as u32,
                    r.memory_mb.max(0) as u64,
                    r.created_at,
                )
            })
            .collect())
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
}
