//! One-time tokens (activation, password reset): random, stored hashed in Redis with a TTL,
//! consumed atomically with `GETDEL` so each works once.

use crate::app::App;
use crate::sessions::{random_token, sha256};
use redis::AsyncCommands;
use std::time::Duration;
use wrenn_extension_api::ApiError;

/// What a token is for; part of the Redis key so kinds never cross.
#[derive(Debug, Clone, Copy)]
pub enum TokenKind {
    Activation,
    PasswordReset,
}

impl TokenKind {
    fn key(self, token: &str) -> String {
        let kind = match self {
            TokenKind::Activation => "activation",
            TokenKind::PasswordReset => "password-reset",
        };
        format!("wrenn:token:{kind}:{}", hex::encode(sha256(token)))
    }
}

/// Activation links are valid 30 minutes.
pub const ACTIVATION_TTL: Duration = Duration::from_secs(30 * 60);
/// Password-reset links are valid 15 minutes.
pub const RESET_TTL: Duration = Duration::from_secs(15 * 60);

/// Issues a token bound to `subject`; returns the plaintext (only ever sent by mail).
pub async fn issue(
    ctx: &App,
    kind: TokenKind,
    subject: &str,
    ttl: Duration,
) -> Result<String, ApiError> {
    let token = random_token();
    let mut redis = ctx.redis();
    let _: () = redis
        .set_ex(kind.key(&token), subject, ttl.as_secs())
        .await?;
    Ok(token)
}

/// Consumes a token; its subject if it was valid and unused.
pub async fn consume(ctx: &App, kind: TokenKind, token: &str) -> Result<Option<String>, ApiError> {
    if token.len() != 64 {
        return Ok(None);
    }
    let mut redis = ctx.redis();
    let subject: Option<String> = redis.get_del(kind.key(token)).await?;
    Ok(subject)
}

/// Puts a consumed token back (when the operation it started was rolled back).
pub async fn restore(
    ctx: &App,
    kind: TokenKind,
    token: &str,
    subject: &str,
    ttl: Duration,
) -> Result<(), ApiError> {
    let mut redis = ctx.redis();
    let _: () = redis
        .set_ex(kind.key(token), subject, ttl.as_secs())
        .await?;
    Ok(())
}
