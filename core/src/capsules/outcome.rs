//! Reporting capsule and snapshot operations: an audit row plus the `wrenn:events` entry for
//! every outcome (success and failure), and `capsule.state.changed` on the live feed (SSE
//! only) for every state change.

use crate::app::App;
use crate::audit::{self, AuditScope};
use crate::capsules::state::CapsuleStatus;
use crate::events::{self, Actor, Event, Outcome, Resource};
use uuid::Uuid;
use wrenn_extension_api::Principal;

/// Who asked: the event actor of a principal (`user` with the email, `api_key` with the
/// key's name), or the system.
pub async fn actor_of(ctx: &App, principal: Option<&Principal>) -> Actor {
    match principal {
        None => Actor::system(),
        Some(Principal::Session(s)) => {
            let email = crate::db::users::email_of(ctx.db(), s.user_id).await;
            Actor::user(s.user_id, email.ok().flatten().unwrap_or_default())
        }
        Some(Principal::ApiKey(k)) => {
            let name = crate::db::api_keys::name_of(ctx.db(), k.key_id).await;
            Actor::api_key(k.key_id, name.ok().flatten().unwrap_or_default())
        }
    }
}

/// One operation's result to report.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    /// `capsule.create`, `capsule.pause`, ..., `template.snapshot.create`, ...
    pub event: &'static str,
    pub team_id: Uuid,
    pub actor: &'a Actor,
    pub resource: Resource,
    /// `Err(message)` for a failure; the message is a client-safe description.
    pub result: Result<(), String>,
    pub metadata: Vec<(&'static str, String)>,
    /// When the operation began (for its duration metric).
    pub started: std::time::Instant,
}

/// Writes the audit row and publishes the event. Never fails the caller: the operation has
/// already happened; a reporting failure is logged.
pub async fn report(ctx: &App, r: Report<'_>) {
    ctx.metrics
        .operation(r.event, r.result.is_ok(), r.started.elapsed());
    let outcome = if r.result.is_ok() {
        Outcome::Success
    } else {
        Outcome::Error
    };
    let mut event =
        Event::new(r.event, r.team_id, r.actor.clone(), r.resource.clone()).outcome(outcome);
    for (k, v) in r.metadata {
        event = event.meta(k, v);
    }
    if let Err(message) = r.result {
        event = event.error(message);
    }
    if let Err(e) = audit::record_and_publish(ctx, &event, AuditScope::Team).await {
        tracing::error!(error = %e, event = %event.event, resource = %event.resource.id,
            "Recording an operation's outcome failed.");
    }
}

/// Announces a capsule's state change to dashboards (SSE only, never the stream).
pub async fn state_changed(
    ctx: &App,
    team_id: Uuid,
    capsule_id: Uuid,
    from: CapsuleStatus,
    to: CapsuleStatus,
    actor: &Actor,
) {
    if from == to {
        return;
    }
    let event = Event::capsule_state_changed(team_id, capsule_id, Some(from), to, actor.clone());
    let mut redis = ctx.redis();
    if let Err(e) = events::publish_transient(&mut redis, &event).await {
        tracing::warn!(error = %e, "Announcing a capsule state change failed.");
    }
}
