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

/// A checked query (`sqlx::query_as!`) answering [`Session`]s: `$before` the row's columns,
/// `$after` them, then the binds (the query macros take only string literals).
macro_rules! session_rows {
    ($before:literal, $after:literal $($args:tt)*) => {
        sqlx::query_as!(
            Session,
            $before
                + " id, sid_hash, csrf_hash, user_id, team_id, user_agent, ip, created_at, \
                last_seen_at, idle_expires_at, absolute_expires_at "
                + $after
            $($args)*
        )
    };
}

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
    sqlx::query!(
        "INSERT INTO sessions (id, sid_hash, csrf_hash, user_id, team_id, user_agent, ip, \
         idle_expires_at, absolute_expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        id,
        sid_hash,
        csrf_hash,
        user_id,
        team_id,
        user_agent,
        ip,
        idle_expires_at,
        absolute_expires_at,
    )
    .execute(e)
    .await
    .map(|_| ())
}

/// A live session (not revoked, inside both windows) of a live user.
pub async fn find_live(e: impl PgExecutor<'_>, sid_hash: &[u8]) -> sqlx::Result<Option<Session>> {
    session_rows!(
        "SELECT",
        "FROM sessions s WHERE sid_hash = $1 AND revoked_at IS NULL \
         AND idle_expires_at > now() AND absolute_expires_at > now() \
         AND EXISTS (SELECT 1 FROM users u WHERE u.id = s.user_id AND u.deleted_at IS NULL \
                     AND u.disabled_at IS NULL)",
        sid_hash,
    )
    .fetch_optional(e)
    .await
}

/// Slides the idle window (never past the absolute cap).
pub async fn touch(
    e: impl PgExecutor<'_>,
    id: Uuid,
    idle_expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE sessions SET last_seen_at = now(), \
         idle_expires_at = LEAST($2, absolute_expires_at) WHERE id = $1",
        id,
        idle_expires_at,
    )
    .execute(e)
    .await
    .map(|_| ())
}

/// Revokes one session; returns its id hash (to evict the cache) if it was live.
pub async fn revoke(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar!(
        "UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL \
         RETURNING sid_hash",
        id,
    )
    .fetch_optional(e)
    .await
}

/// Revokes every live session of a user; returns their id hashes.
pub async fn revoke_all_for_user(
    e: impl PgExecutor<'_>,
    user_id: Uuid,
) -> sqlx::Result<Vec<Vec<u8>>> {
    sqlx::query_scalar!(
        "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL \
         RETURNING sid_hash",
        user_id,
    )
    .fetch_all(e)
    .await
}

/// Live sessions of a user, newest first.
pub async fn list_for_user(e: impl PgExecutor<'_>, user_id: Uuid) -> sqlx::Result<Vec<Session>> {
    session_rows!(
        "SELECT",
        "FROM sessions WHERE user_id = $1 AND revoked_at IS NULL \
         AND idle_expires_at > now() AND absolute_expires_at > now() ORDER BY created_at DESC",
        user_id,
    )
    .fetch_all(e)
    .await
}

/// One page of the user's live sessions, newest first (`(created_at, id)` descending).
pub async fn page_for_user(
    e: impl PgExecutor<'_>,
    user_id: Uuid,
    page: Page,
) -> sqlx::Result<Vec<Session>> {
    session_rows!(
        "SELECT",
        "FROM sessions WHERE user_id = $1 AND revoked_at IS NULL \
         AND idle_expires_at > now() AND absolute_expires_at > now() \
         AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) \
         ORDER BY created_at DESC, id DESC LIMIT $4",
        user_id,
        page.after_time(),
        page.after_id(),
        page.fetch(),
    )
    .fetch_all(e)
    .await
}

/// Owner of a live session.
pub async fn owner_of(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT user_id FROM sessions WHERE id = $1 AND revoked_at IS NULL",
        id,
    )
    .fetch_optional(e)
    .await
}
