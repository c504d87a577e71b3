//! Abuse limits on the routes that take or make credentials: login, signup, password-reset
//! requests and API-key creation. Counters live in Redis (so every control plane behind one
//! Redis shares them), one fixed window per rule and subject; a request over the limit gets
//! 429 `rate_limited` with `Retry-After` and changes nothing.
//!
//! Subjects are the client's IP (the TCP peer, never a forgeable header) and the account
//! (an email, hashed before it is used in a key, or a user id). Logins count every attempt
//! per IP but only failures per account, so nobody can lock a user out by knowing the email
//! alone beyond the failure window; a successful login clears the account's failures. When
//! Redis cannot be reached the limits let requests through (logged): they guard against
//! abuse, and an outage of Redis must not lock everyone out.

use crate::app::App;
use redis::AsyncCommands;
use sha2::{Digest, Sha256};
use tracing::warn;
use wrenn_extension_api::ApiError;

/// Limits per window; 0 turns a rule off (e.g. per-IP rules behind a proxy that hides
/// clients' addresses).
#[derive(Debug, Clone, clap::Args)]
pub struct RateLimits {
    /// Length of every rule's window, in seconds.
    #[arg(long = "rate-window-secs", env = "WRENN_RATE_WINDOW_SECS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub window_secs: u64,
    /// Login attempts per client IP per window.
    #[arg(
        long = "rate-login-per-ip",
        env = "WRENN_RATE_LOGIN_PER_IP",
        default_value_t = 50
    )]
    pub login_per_ip: u32,
    /// Failed logins per account per window (then even the right password waits).
    #[arg(
        long = "rate-login-failures-per-account",
        env = "WRENN_RATE_LOGIN_FAILURES_PER_ACCOUNT",
        default_value_t = 10
    )]
    pub login_failures_per_account: u32,
    /// Sign-ups per client IP per window.
    #[arg(
        long = "rate-signup-per-ip",
        env = "WRENN_RATE_SIGNUP_PER_IP",
        default_value_t = 20
    )]
    pub signup_per_ip: u32,
    /// Password-reset requests per client IP per window.
    #[arg(
        long = "rate-reset-per-ip",
        env = "WRENN_RATE_RESET_PER_IP",
        default_value_t = 20
    )]
    pub reset_per_ip: u32,
    /// Password-reset requests per email address per window.
    #[arg(
        long = "rate-reset-per-email",
        env = "WRENN_RATE_RESET_PER_EMAIL",
        default_value_t = 5
    )]
    pub reset_per_email: u32,
    /// API keys created per user per window.
    #[arg(
        long = "rate-api-keys-per-user",
        env = "WRENN_RATE_API_KEYS_PER_USER",
        default_value_t = 30
    )]
    pub api_keys_per_user: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            window_secs: 900,
            login_per_ip: 50,
            login_failures_per_account: 10,
            signup_per_ip: 20,
            reset_per_ip: 20,
            reset_per_email: 5,
            api_keys_per_user: 30,
        }
    }
}

impl RateLimits {
    /// Limits no test run reaches (tests that exercise limits set their own).
    pub fn generous() -> Self {
        Self {
            login_per_ip: 100_000,
            login_failures_per_account: 100_000,
            signup_per_ip: 100_000,
            reset_per_ip: 100_000,
            reset_per_email: 100_000,
            api_keys_per_user: 100_000,
            ..Self::default()
        }
    }
}

/// What is being counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    LoginPerIp,
    LoginFailuresPerAccount,
    SignupPerIp,
    ResetPerIp,
    ResetPerEmail,
    ApiKeysPerUser,
}

impl Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::LoginPerIp => "login-ip",
            Rule::LoginFailuresPerAccount => "login-fail",
            Rule::SignupPerIp => "signup-ip",
            Rule::ResetPerIp => "reset-ip",
            Rule::ResetPerEmail => "reset-email",
            Rule::ApiKeysPerUser => "api-keys-user",
        }
    }

    fn limit(self, l: &RateLimits) -> u32 {
        match self {
            Rule::LoginPerIp => l.login_per_ip,
            Rule::LoginFailuresPerAccount => l.login_failures_per_account,
            Rule::SignupPerIp => l.signup_per_ip,
            Rule::ResetPerIp => l.reset_per_ip,
            Rule::ResetPerEmail => l.reset_per_email,
            Rule::ApiKeysPerUser => l.api_keys_per_user,
        }
    }
}

/// The Redis key of a rule's counter for `subject` (hashed: no email or address is stored).
fn key(rule: Rule, subject: &str) -> String {
    let digest = Sha256::digest(subject.trim().to_lowercase().as_bytes());
    format!(
        "wrenn:ratelimit:{}:{}",
        rule.name(),
        hex::encode(&digest[..16])
    )
}

fn refused(retry_after_ms: i64) -> ApiError {
    // Whole seconds, rounded up, at least 1.
    let secs = (retry_after_ms.max(1) as u64).div_ceil(1000);
    ApiError::too_many_requests(
        "rate_limited",
        format!("too many requests; retry in {secs} s"),
        secs,
    )
}

/// Counts one request against `rule` for `subject`; 429 when it is over the limit. A
/// subject of `None` (no client address known) is not counted.
pub async fn hit(ctx: &App, rule: Rule, subject: Option<&str>) -> Result<(), ApiError> {
    let limits = &ctx.config.rate_limits;
    let (Some(subject), limit) = (subject, rule.limit(limits)) else {
        return Ok(());
    };
    if limit == 0 {
        return Ok(());
    }
    let key = key(rule, subject);
    let mut redis = ctx.redis();
    let counted: redis::RedisResult<(u64, i64)> = redis::pipe()
        .atomic()
        .incr(&key, 1u64)
        .cmd("EXPIRE")
        .arg(&key)
        .arg(limits.window_secs)
        .arg("NX")
        .ignore()
        .pttl(&key)
        .query_async(&mut redis)
        .await;
    match counted {
        Ok((n, ttl_ms)) if n > u64::from(limit) => Err(refused(ttl_ms)),
        Ok(_) => Ok(()),
        Err(e) => {
            warn!(error = %e, rule = rule.name(), "rate limit not checked: Redis failed");
            Ok(())
        }
    }
}

/// 429 when `subject` is already at `rule`'s limit, without counting this request (for
/// rules that count only failures).
pub async fn check(ctx: &App, rule: Rule, subject: &str) -> Result<(), ApiError> {
    let limit = rule.limit(&ctx.config.rate_limits);
    if limit == 0 {
        return Ok(());
    }
    let key = key(rule, subject);
    let mut redis = ctx.redis();
    let seen: redis::RedisResult<(Option<u64>, i64)> = redis::pipe()
        .get(&key)
        .pttl(&key)
        .query_async(&mut redis)
        .await;
    match seen {
        Ok((Some(n), ttl_ms)) if n >= u64::from(limit) => Err(refused(ttl_ms)),
        Ok(_) => Ok(()),
        Err(e) => {
            warn!(error = %e, rule = rule.name(), "rate limit not checked: Redis failed");
            Ok(())
        }
    }
}

/// Forgets `subject`'s count for `rule` (a successful login clears its failures).
pub async fn clear(ctx: &App, rule: Rule, subject: &str) {
    let mut redis = ctx.redis();
    if let Err(e) = redis.del::<_, ()>(key(rule, subject)).await {
        warn!(error = %e, rule = rule.name(), "rate limit counter not cleared");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_the_subject_case_and_space_insensitively() {
        let a = key(Rule::ResetPerEmail, "Ada@Example.com ");
        assert_eq!(a, key(Rule::ResetPerEmail, "ada@example.com"));
        assert!(!a.contains("example"), "{a}");
        assert_ne!(a, key(Rule::LoginFailuresPerAccount, "ada@example.com"));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(refused(1).retry_after(), Some(1));
        assert_eq!(refused(1000).retry_after(), Some(1));
        assert_eq!(refused(1001).retry_after(), Some(2));
        // No expiry known (-1) still says to wait a second.
        assert_eq!(refused(-1).retry_after(), Some(1));
        assert_eq!(refused(5).status.as_u16(), 429);
    }
}
