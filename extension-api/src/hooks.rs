//! Optional hook traits. Every method documents when it runs, what the default does and what
//! an error does (API.md "Extension hook semantics"). New hooks are only added as default
//! methods.

use crate::context::ServerContext;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An error returned by a hook; its message is logged, never shown to clients.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HookError(pub String);

impl HookError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// A newly provisioned account: its user, its default team, its email.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub user_id: Uuid,
    pub team_id: Uuid,
    pub email: String,
    pub name: String,
    /// `"email"` for activation links, or the OAuth provider name (`"github"`).
    pub via: String,
}

/// An account being deleted.
#[derive(Debug, Clone)]
pub struct AccountDeletion {
    pub user_id: Uuid,
    pub email: String,
    pub deleted_at: DateTime<Utc>,
}

/// Account lifecycle hooks.
#[async_trait::async_trait]
pub trait AuthHook: Send + Sync + 'static {
    /// Runs after the default team is provisioned (email activation or OAuth signup), inside
    /// the signup transaction: `conn` lets the hook write its own rows atomically with the
    /// account. Default: nothing. Error: the signup aborts and rolls back, the client gets
    /// 500 `signup_hook_failed`.
    async fn on_signup(
        &self,
        _ctx: &ServerContext,
        _conn: &mut sqlx::PgConnection,
        _account: &NewAccount,
    ) -> Result<(), HookError> {
        Ok(())
    }

    /// Runs after a password login or an OAuth login. Default: nothing. Error: logged; the
    /// login succeeds.
    async fn on_login(&self, _ctx: &ServerContext, _user_id: Uuid) -> Result<(), HookError> {
        Ok(())
    }

    /// Runs after `DELETE /v1/me` commits. Default: nothing. Error: logged, deletion stands.
    async fn on_account_soft_delete(
        &self,
        _ctx: &ServerContext,
        _account: &AccountDeletion,
    ) -> Result<(), HookError> {
        Ok(())
    }

    /// Runs after the 15-day purge removed the account. Default: nothing. Error: logged, the
    /// purge continues.
    async fn on_account_hard_delete(
        &self,
        _ctx: &ServerContext,
        _account: &AccountDeletion,
    ) -> Result<(), HookError> {
        Ok(())
    }
}

/// A capsule lifecycle success, as read from the `wrenn:events` stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxEvent {
    /// `capsule.create`, `capsule.pause`, `capsule.resume` or `capsule.destroy`.
    pub event: String,
    pub capsule_id: Uuid,
    pub team_id: Uuid,
    pub timestamp: DateTime<Utc>,
    /// Stream entry id; stable across redeliveries, so hooks can deduplicate on it.
    pub delivery_id: String,
    #[serde(default)]
    pub metadata: serde_json::Value,
}

/// Receives capsule lifecycle successes from its own consumer group (wired by the events issue).
#[async_trait::async_trait]
pub trait SandboxEventHook: Send + Sync + 'static {
    /// Runs once per delivered event. Error: the entry stays un-acked and is redelivered, so
    /// implementations must be idempotent (use `delivery_id`).
    async fn on_sandbox_event(
        &self,
        ctx: &ServerContext,
        event: &SandboxEvent,
    ) -> Result<(), HookError>;
}

/// Per-team ceilings; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectiveLimits {
    pub max_concurrent_sandboxes: Option<u32>,
    pub max_vcpus: Option<u32>,
    pub max_memory_mb: Option<u64>,
}

/// What a team currently uses (running + paused-but-reserved capsules).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamUsage {
    pub concurrent_sandboxes: u32,
    pub vcpus: u32,
    pub memory_mb: u64,
}

/// The result of checking a request against limits: an enum, not a bool, so the reason and
/// the API error code travel with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitVerdict {
    Allowed,
    /// 402 `concurrent_sandbox_limit`.
    ConcurrentSandboxes,
    /// 402 `vcpu_limit`.
    Vcpus,
    /// 402 `memory_limit`.
    Memory,
}

impl LimitVerdict {
    /// The API error code of a refusal (`None` when allowed).
    pub fn error_code(self) -> Option<&'static str> {
        match self {
            LimitVerdict::Allowed => None,
            LimitVerdict::ConcurrentSandboxes => Some("concurrent_sandbox_limit"),
            LimitVerdict::Vcpus => Some("vcpu_limit"),
            LimitVerdict::Memory => Some("memory_limit"),
        }
    }
}

impl EffectiveLimits {
    /// Checks adding one capsule of `vcpus`/`memory_mb` to `usage`.
    pub fn check(&self, usage: &TeamUsage, vcpus: u32, memory_mb: u64) -> LimitVerdict {
        if let Some(max) = self.max_concurrent_sandboxes {
            if usage.concurrent_sandboxes.saturating_add(1) > max {
                return LimitVerdict::ConcurrentSandboxes;
            }
        }
        if let Some(max) = self.max_vcpus {
            if usage.vcpus.saturating_add(vcpus) > max {
                return LimitVerdict::Vcpus;
            }
        }
        if let Some(max) = self.max_memory_mb {
            if usage.memory_mb.saturating_add(memory_mb) > max {
                return LimitVerdict::Memory;
            }
        }
        LimitVerdict::Allowed
    }
}

/// Supplies a team's limits, consulted by `POST /v1/capsules` before scheduling.
#[async_trait::async_trait]
pub trait LimitsProvider: Send + Sync + 'static {
    /// Error: the request fails with 402 `usage_unavailable` (limits cannot be established).
    async fn effective_limits(
        &self,
        ctx: &ServerContext,
        team_id: Uuid,
    ) -> Result<EffectiveLimits, HookError>;
}

/// Supplies a team's current usage for the limits check; the default is a database count.
#[async_trait::async_trait]
pub trait UsageProvider: Send + Sync + 'static {
    /// Error: 402 `usage_unavailable`.
    async fn current_usage(
        &self,
        ctx: &ServerContext,
        team_id: Uuid,
    ) -> Result<TeamUsage, HookError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_check_reports_the_first_exceeded_ceiling() {
        let limits = EffectiveLimits {
            max_concurrent_sandboxes: Some(2),
            max_vcpus: Some(4),
            max_memory_mb: Some(2048),
        };
        let usage = TeamUsage {
            concurrent_sandboxes: 1,
            vcpus: 3,
            memory_mb: 1024,
        };
        assert_eq!(limits.check(&usage, 1, 1024), LimitVerdict::Allowed);
        assert_eq!(limits.check(&usage, 2, 512), LimitVerdict::Vcpus);
        assert_eq!(limits.check(&usage, 1, 1025), LimitVerdict::Memory);
        let full = TeamUsage {
            concurrent_sandboxes: 2,
            ..usage
        };
        assert_eq!(
            limits.check(&full, 1, 1).error_code(),
            Some("concurrent_sandbox_limit")
        );
        assert_eq!(
            EffectiveLimits::default().check(&full, 64, 1 << 20),
            LimitVerdict::Allowed
        );
    }
}
