//! The `sessions` aggregate. Session ids and CSRF tokens are stored as SHA-256 only.

use crate::http::paging::Page;
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Session {
    pub id: Uuid,
    pub sid_hash: Vec<u8>,
    pub csrf_hash: Vec<u8>,
    pub user_id: Uuid,
    pub team_id: Uuid,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub idle_expires_at: DateTime<Utc>,
    pub absolute_expires_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, sid_hash, csrf_hash, user_id, team_id, user_agent, ip, created_at, \
                       last_seen_at, idle_expires_at, absolute_expires_at";

#[allow(clippy::too_many_arguments)]
pub async fn insert(
    e: impl PgExecutor<'_>,
    id: Uuid,
    sid_hash: &[u8],
    csrf_hash: &[u8],
    user_id: Uuid,
    team_id: Uuid,
    user_agent: Option<&str>,
    ip: Option<&str>,
    idle_expires_at: DateTime<Utc>,
    absolute_expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sessions (id, sid_hash, csrf_hash, user_id, team_id, user_agent, ip, \
         idle_expires_at, absolute_expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(sid_hash)
    .bind(csrf_hash)
    .bind(user_id)
    .bind(team_id)
    .bind(user_agent)
    .bind(ip)
    .bind(idle_expires_at)
    .bind(absolute_expires_at)
    .execute(e)
    .await
    .map(|_| ())
}

/// A live session (not revoked, inside both windows) of a live user.
pub async fn find_live(e: impl PgExecutor<'_>, sid_hash: &[u8]) -> sqlx::Result<Option<Session>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM sessions s WHERE sid_hash = $1 AND revoked_at IS NULL \
         AND idle_expires_at > now() AND absolute_expires_at > now() \
         AND EXISTS (SELECT 1 FROM users u WHERE u.id = s.user_id AND u.deleted_at IS NULL \
                     AND u.disabled_at IS NULL)"
    ))
    .bind(sid_hash)
    .fetch_optional(e)
    .await
}

/// Slides the idle window (never past the absolute cap).
pub async fn touch(
    e: impl PgExecutor<'_>,
    id: Uuid,
    idle_expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE sessions SET last_seen_at = now(), \
         idle_expires_at = LEAST($2, absolute_expires_at) WHERE id = $1",
    )
    .bind(id)
    .bind(idle_expires_at)
    .execute(e)
    .await
    .map(|_| ())
}

/// Revokes one session; returns its id hash (to evict the cache) if it was live.
pub async fn revoke(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Vec<u8>>> {
    let row: Option<(Vec<u8>,)> = sqlx::query_as(
        "UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING sid_hash",
    )
    .bind(id)
    .fetch_optional(e)
    .await?;
    Ok(row.map(|(h,)| h))
}

/// Revokes every live session of a user; returns their id hashes.
pub async fn revoke_all_for_user(
    e: impl PgExecutor<'_>,
    user_id: Uuid,
) -> sqlx::Result<Vec<Vec<u8>>> {
    let rows: Vec<(Vec<u8>,)> = sqlx::query_as(
        "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL RETURNING sid_hash",
    )
    .bind(user_id)
    .fetch_all(e)
    .await?;
    Ok(rows.into_iter().map(|(h,)| h).collect())
}

/// Live sessions of a user, newest first.
pub async fn list_for_user(e: impl PgExecutor<'_>, user_id: Uuid) -> sqlx::Result<Vec<Session>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL \
         AND idle_expires_at > now() AND absolute_expires_at > now() ORDER BY created_at DESC"
    ))
    .bind(user_id)
    .fetch_all(e)
    .await
}

/// One page of the user's live sessions, newest first (`(created_at, id)` descending).
pub async fn page_for_user(
    e: impl PgExecutor<'_>,
    user_id: Uuid,
    page: Page,
) -> sqlx::Result<Vec<Session>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL \
         AND idle_expires_at > now() AND absolute_expires_at > now() \
         AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    ))
    .bind(user_id)
    .bind(page.after_time())
    .bind(page.after_id())
    .bind(page.fetch())
    .fetch_all(e)
    .await
}

/// Owner of a live session.
pub async fn owner_of(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Uuid>> {
    let row: Option<(Uuid,)> =
        sqlx::query_as("SELECT user_id FROM sessions WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .fetch_optional(e)
            .await?;
    Ok(row.map(|(u,)| u))
}
