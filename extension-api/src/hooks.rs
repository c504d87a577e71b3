//! Optional hook traits. Every method documents when it runs, what the default does and what
//! an error does (API.md "Extension hook semantics"). New hooks are only added as default
//! methods.

use crate::context::ServerContext;
use axum::http;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use uuid::Uuid;

/// An error returned by a hook; its message is logged, never shown to clients.
///
/// Any error type converts into it, so hooks use `?` on database, Redis and their own errors.
/// (It deliberately does not implement `std::error::Error` itself: that is what makes the
/// blanket `From` possible, as with `anyhow::Error`.)
#[derive(Debug)]
pub struct HookError(pub String);

impl HookError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl std::fmt::Display for HookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HookError {
    fn from(err: E) -> Self {
        Self(err.to_string())
    }
}

/// A newly provisioned account: its user, its default team, its email.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewAccount {
    pub user_id: Uuid,
    pub team_id: Uuid,
    pub email: String,
    pub name: String,
    /// `"email"` for activation links, or the OAuth provider name (`"github"`).
    pub via: String,
}

impl NewAccount {
    pub fn new(user_id: Uuid, team_id: Uuid, email: String, name: String, via: String) -> Self {
        Self {
            user_id,
            team_id,
            email,
            name,
            via,
        }
    }
}

/// An account being deleted.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AccountDeletion {
    pub user_id: Uuid,
    pub email: String,
    pub deleted_at: DateTime<Utc>,
}

impl AccountDeletion {
    pub fn new(user_id: Uuid, email: String, deleted_at: DateTime<Utc>) -> Self {
        Self {
            user_id,
            email,
            deleted_at,
        }
    }
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
#[non_exhaustive]
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

impl SandboxEvent {
    pub fn new(
        event: String,
        capsule_id: Uuid,
        team_id: Uuid,
        timestamp: DateTime<Utc>,
        delivery_id: String,
        metadata: serde_json::Value,
    ) -> Self {
        Self {
            event,
            capsule_id,
            team_id,
            timestamp,
            delivery_id,
            metadata,
        }
    }
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

/// Per-team ceilings; `None` means unlimited. Build with [`EffectiveLimits::unlimited`] and
/// the `with_*` methods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EffectiveLimits {
    pub max_concurrent_sandboxes: Option<u32>,
    pub max_vcpus: Option<u32>,
    pub max_memory_mb: Option<u64>,
}

/// What a team currently uses (every capsule that holds resources: all but `stopped` and
/// `error`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TeamUsage {
    pub concurrent_sandboxes: u32,
    pub vcpus: u32,
    pub memory_mb: u64,
}

impl TeamUsage {
    pub fn new(concurrent_sandboxes: u32, vcpus: u32, memory_mb: u64) -> Self {
        Self {
            concurrent_sandboxes,
            vcpus,
            memory_mb,
        }
    }

    /// The larger of each figure: two sources of usage combine to the stricter reading.
    pub fn max(self, other: TeamUsage) -> TeamUsage {
        TeamUsage {
            concurrent_sandboxes: self.concurrent_sandboxes.max(other.concurrent_sandboxes),
            vcpus: self.vcpus.max(other.vcpus),
            memory_mb: self.memory_mb.max(other.memory_mb),
        }
    }
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

fn stricter<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

impl EffectiveLimits {
    /// No ceiling at all.
    pub fn unlimited() -> Self {
        Self::default()
    }

    pub fn with_concurrent_sandboxes(mut self, max: u32) -> Self {
        self.max_concurrent_sandboxes = Some(max);
        self
    }

    pub fn with_vcpus(mut self, max: u32) -> Self {
        self.max_vcpus = Some(max);
        self
    }

    pub fn with_memory_mb(mut self, max: u64) -> Self {
        self.max_memory_mb = Some(max);
        self
    }

    /// The smaller of each ceiling: several providers combine to the strictest.
    pub fn stricter(self, other: EffectiveLimits) -> EffectiveLimits {
        EffectiveLimits {
            max_concurrent_sandboxes: stricter(
                self.max_concurrent_sandboxes,
                other.max_concurrent_sandboxes,
            ),
            max_vcpus: stricter(self.max_vcpus, other.max_vcpus),
            max_memory_mb: stricter(self.max_memory_mb, other.max_memory_mb),
        }
    }

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
///
/// When: inside the create's admission transaction, after the team's admission lock is held.
/// Several providers: every one is consulted and the strictest ceiling of each kind wins.
/// Default (no provider): no limits.
#[async_trait::async_trait]
pub trait LimitsProvider: Send + Sync + 'static {
    /// Error: the request fails with 402 `usage_unavailable` (limits cannot be established).
    async fn effective_limits(
        &self,
        ctx: &ServerContext,
        team_id: Uuid,
    ) -> Result<EffectiveLimits, HookError>;
}

/// Supplies a team's current usage for the limits check.
///
/// When: with [`LimitsProvider`], under the team's admission lock. Core's own count of the
/// team's capsules (every capsule admitted before, committed) is always taken; each provider's
/// figures combine with it to the larger ([`TeamUsage::max`]), so a provider can only make
/// the check stricter.
#[async_trait::async_trait]
pub trait UsageProvider: Send + Sync + 'static {
    /// Error: 402 `usage_unavailable`.
    async fn current_usage(
        &self,
        ctx: &ServerContext,
        team_id: Uuid,
    ) -> Result<TeamUsage, HookError>;
}

/// A capsule about to be admitted (`POST /v1/capsules`, or a fork of a snapshot).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AdmissionRequest {
    pub team_id: Uuid,
    /// The acting user (`None` for API keys).
    pub user_id: Option<Uuid>,
    /// Template name as resolved (`minimal-debian`, or a snapshot's name).
    pub template: String,
    pub vcpus: u32,
    pub memory_mb: u64,
    /// The team's usage before this capsule, counted under the admission lock.
    pub usage: TeamUsage,
}

impl AdmissionRequest {
    pub fn new(
        team_id: Uuid,
        user_id: Option<Uuid>,
        template: String,
        vcpus: u32,
        memory_mb: u64,
        usage: TeamUsage,
    ) -> Self {
        Self {
            team_id,
            user_id,
            template,
            vcpus,
            memory_mb,
            usage,
        }
    }
}

/// Why a capsule was refused: the HTTP status, error code and message the client receives
/// (in the standard envelope).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusal {
    pub status: http::StatusCode,
    pub code: Cow<'static, str>,
    pub message: Cow<'static, str>,
}

/// The answer of an [`AdmissionHook`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admission {
    Allow,
    Deny(Refusal),
}

impl Admission {
    /// Refuses with `status`, `code` and a client-facing `message`.
    pub fn deny(
        status: http::StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Admission::Deny(Refusal {
            status,
            code: code.into(),
            message: message.into(),
        })
    }

    /// Refuses with 402 Payment Required (a plan or quota), the usual status of a limit.
    pub fn over_limit(
        code: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::deny(http::StatusCode::PAYMENT_REQUIRED, code, message)
    }
}

/// Decides whether a capsule may be created.
///
/// When: for every `POST /v1/capsules` that passed validation and the limits check, inside
/// the transaction that inserts the capsule, while core holds the team's admission lock
/// (`pg_advisory_xact_lock`): creates of one team are admitted one at a time, and
/// [`AdmissionRequest::usage`] counts every capsule admitted before this one, so a quota
/// checked here holds under concurrent creates. `conn` is that transaction: rows the hook
/// writes (a reservation, a meter) commit with the capsule or not at all.
/// Several hooks: all run in registration order until one denies; that refusal is answered.
/// Default (no hook): allowed.
#[async_trait::async_trait]
pub trait AdmissionHook: Send + Sync + 'static {
    /// Error: the create fails with 503 `admission_unavailable` and nothing is inserted.
    async fn admit(
        &self,
        ctx: &ServerContext,
        conn: &mut sqlx::PgConnection,
        request: &AdmissionRequest,
    ) -> Result<Admission, HookError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_providers_combine_to_the_strictest() {
        let a = EffectiveLimits::unlimited()
            .with_concurrent_sandboxes(5)
            .with_vcpus(8);
        let b = EffectiveLimits::unlimited().with_concurrent_sandboxes(3);
        let both = a.stricter(b);
        assert_eq!(both.max_concurrent_sandboxes, Some(3));
        assert_eq!(both.max_vcpus, Some(8));
        assert_eq!(both.max_memory_mb, None);
        let usage = TeamUsage::new(1, 4, 10).max(TeamUsage::new(2, 1, 0));
        assert_eq!(usage, TeamUsage::new(2, 4, 10));
    }

    #[test]
    fn any_error_converts_into_a_hook_error() {
        fn parse(s: &str) -> Result<u32, HookError> {
            Ok(s.parse::<u32>()?)
        }
        assert_eq!(parse("7").unwrap(), 7);
        assert!(parse("x")
            .unwrap_err()
            .to_string()
            .contains("invalid digit"));
    }

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
