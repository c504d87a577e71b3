//! Registration and refresh tokens of hosts.

use crate::hosts::HostStatus;
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

/// Stores a registration token, first removing the host's unused ones (only the newest
/// works).
pub async fn replace_registration_token(
    conn: &mut sqlx::PgConnection,
    host_id: Uuid,
    token_hash: &str,
    created_by: Option<Uuid>,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM host_registration_tokens WHERE host_id = $1 AND used_at IS NULL",
        host_id,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO host_registration_tokens (token_hash, host_id, created_by, expires_at)
         VALUES ($1, $2, $3, $4)",
        token_hash,
        host_id,
        created_by,
        expires_at,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Consumes a registration token: marks it used and returns its host, if the token is
/// unused, unexpired and its host still pending.
pub async fn consume_registration_token<'e, E: PgExecutor<'e>>(
    executor: E,
    token_hash: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "UPDATE host_registration_tokens t SET used_at = now()
         FROM hosts h
         WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.expires_at > now()
           AND h.id = t.host_id AND h.status = $2
         RETURNING t.host_id",
        token_hash,
        HostStatus::Pending as HostStatus,
    )
    .fetch_optional(executor)
    .await
}

pub async fn insert_refresh_token<'e, E: PgExecutor<'e>>(
    executor: E,
    host_id: Uuid,
    token_hash: &str,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO host_refresh_tokens (token_hash, host_id, expires_at) VALUES ($1, $2, $3)",
        token_hash,
        host_id,
        expires_at,
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Outcome of presenting a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshUse {
    /// Valid: now revoked (rotated); the host may get new credentials.
    Rotated(Uuid),
    /// Already used: a replay. Every refresh token of the host has been revoked.
    Replayed(Uuid),
    /// Unknown, expired or the host is deleted.
    Invalid,
}

/// Revokes the refresh token `token_hash` if valid. A second use of a rotated token revokes
/// the whole family (the host must register again), since one of the two users is a thief.
pub async fn use_refresh_token(
    conn: &mut sqlx::PgConnection,
    token_hash: &str,
) -> sqlx::Result<RefreshUse> {
    let row = sqlx::query!(
        r#"SELECT t.host_id, t.revoked_at, t.expires_at, h.status AS "status: HostStatus"
         FROM host_refresh_tokens t JOIN hosts h ON h.id = t.host_id
         WHERE t.token_hash = $1 FOR UPDATE OF t"#,
        token_hash,
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some((host_id, revoked_at, expires_at, status)) =
        row.map(|r| (r.host_id, r.revoked_at, r.expires_at, r.status))
    else {
        return Ok(RefreshUse::Invalid);
    };
    if matches!(status, HostStatus::Deleted | HostStatus::Pending) || expires_at <= Utc::now() {
        return Ok(RefreshUse::Invalid);
    }
    if revoked_at.is_some() {
        sqlx::query!(
            "UPDATE host_refresh_tokens SET revoked_at = now()
             WHERE host_id = $1 AND revoked_at IS NULL",
            host_id,
        )
        .execute(&mut *conn)
        .await?;
        return Ok(RefreshUse::Replayed(host_id));
    }
    sqlx::query!(
        "UPDATE host_refresh_tokens SET revoked_at = now() WHERE token_hash = $1",
        token_hash,
    )
    .execute(&mut *conn)
    .await?;
    Ok(RefreshUse::Rotated(host_id))
}
