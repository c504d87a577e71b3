//! Admission: whether a team may have one more capsule. Runs inside the transaction that
//! inserts the capsule, under a per-team advisory lock, so concurrent creates of one team are
//! decided one at a time against a count that includes every capsule admitted before.
//!
//! Order: core's usage count (combined with every [`UsageProvider`]'s, the larger wins) →
//! the strictest of every [`LimitsProvider`]'s ceilings → every [`AdmissionHook`] in
//! registration order until one denies.
//!
//! [`UsageProvider`]: wrenn_extension_api::UsageProvider
//! [`LimitsProvider`]: wrenn_extension_api::LimitsProvider
//! [`AdmissionHook`]: wrenn_extension_api::AdmissionHook

use crate::app::App;
use crate::db::capsules as db;
use axum::http::StatusCode;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;
use wrenn_extension_api::{Admission, AdmissionRequest, ApiError, EffectiveLimits, TeamUsage};

/// What core counts for a team: every capsule that holds resources.
pub async fn core_usage(db: impl PgExecutor<'_>, team_id: Uuid) -> sqlx::Result<TeamUsage> {
    let (count, vcpus, memory) = db::team_usage(db, team_id).await?;
    Ok(TeamUsage::new(
        count.max(0) as u32,
        vcpus.max(0) as u32,
        memory.max(0) as u64,
    ))
}

fn unavailable(e: &dyn std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::PAYMENT_REQUIRED,
        "usage_unavailable",
        "usage limits cannot be established right now",
    )
    .with_cause(e.to_string())
}

fn over_limit(code: &'static str) -> ApiError {
    let message = match code {
        "concurrent_sandbox_limit" => "the team's concurrent capsule limit is reached",
        "vcpu_limit" => "the team's vCPU limit would be exceeded",
        _ => "the team's memory limit would be exceeded",
    };
    ApiError::new(StatusCode::PAYMENT_REQUIRED, code, message)
}

/// A capsule to admit.
pub struct Candidate<'a> {
    pub team_id: Uuid,
    pub user_id: Option<Uuid>,
    pub template: &'a str,
    pub vcpus: u32,
    pub memory_mb: u32,
}

/// Takes the team's admission lock in `conn` (a transaction: the lock is released when it
/// ends) and decides. `Ok` means the caller may insert the capsule in the same transaction.
pub async fn admit(app: &App, conn: &mut PgConnection, c: &Candidate<'_>) -> Result<(), ApiError> {
    db::lock_team_admission(&mut *conn, c.team_id).await?;
    let mut usage = core_usage(&mut *conn, c.team_id)
        .await
        .map_err(|e| unavailable(&e))?;
    for p in &app.hooks.usage {
        let theirs = p
            .hook
            .current_usage(app, c.team_id)
            .await
            .map_err(|e| unavailable(&format!("{}: {e}", p.extension)))?;
        usage = usage.max(theirs);
    }
    if !app.hooks.limits.is_empty() {
        let mut limits = EffectiveLimits::unlimited();
        for p in &app.hooks.limits {
            let theirs = p
                .hook
                .effective_limits(app, c.team_id)
                .await
                .map_err(|e| unavailable(&format!("{}: {e}", p.extension)))?;
            limits = limits.stricter(theirs);
        }
        if let Some(code) = limits
            .check(&usage, c.vcpus, u64::from(c.memory_mb))
            .error_code()
        {
            return Err(over_limit(code));
        }
    }
    let request = AdmissionRequest::new(
        c.team_id,
        c.user_id,
        c.template.to_string(),
        c.vcpus,
        u64::from(c.memory_mb),
        usage,
    );
    for h in &app.hooks.admission {
        match h.hook.admit(app, &mut *conn, &request).await {
            Ok(Admission::Allow) => {}
            Ok(Admission::Deny(refusal)) => {
                tracing::info!(extension = %h.extension, team_id = %c.team_id, code = %refusal.code, "Capsule refused by an admission hook.");
                return Err(ApiError::new(refusal.status, refusal.code, refusal.message));
            }
            Ok(other) => {
                return Err(ApiError::internal(format!(
                    "{}: unknown admission verdict {other:?}",
                    h.extension
                )))
            }
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "admission_unavailable",
                    "capsule admission cannot be decided right now",
                )
                .with_cause(format!("{}: {e}", h.extension)))
            }
        }
    }
    Ok(())
}
