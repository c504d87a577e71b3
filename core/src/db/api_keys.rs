//! The `api_keys` aggregate. Keys are stored as SHA-256 only.

use crate::http::paging::Page;
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    pub team_id: Uuid,
    pub name: String,
    pub key_prefix: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub last_used: Option<DateTime<Utc>>,
}

/// A checked query (`sqlx::query_as!`) answering [`ApiKey`]s: `$before` the row's columns,
/// `$after` them, then the binds (the query macros take only string literals).
macro_rules! key_rows {
    ($before:literal, $after:literal $($args:tt)*) => {
        sqlx::query_as!(
            ApiKey,
            $before + " id, team_id, name, key_prefix, created_by, created_at, last_used " + $after
            $($args)*
        )
    };
}

pub async fn insert(
    e: impl PgExecutor<'_>,
    id: Uuid,
    team_id: Uuid,
    name: &str,
    key_hash: &[u8],
    key_prefix: &str,
    created_by: Option<Uuid>,
) -> sqlx::Result<ApiKey> {
    key_rows!(
        "INSERT INTO api_keys (id, team_id, name, key_hash, key_prefix, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING",
        "",
        id,
        team_id,
        name,
        key_hash,
        key_prefix,
        created_by,
    )
    .fetch_one(e)
    .await
}

pub async fn list_for_team(e: impl PgExecutor<'_>, team_id: Uuid) -> sqlx::Result<Vec<ApiKey>> {
    key_rows!(
        "SELECT",
        "FROM api_keys WHERE team_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC, id",
        team_id,
    )
    .fetch_all(e)
    .await
}

/// One page of the team's live keys, newest first (`(created_at, id)` descending).
pub async fn page_for_team(
    e: impl PgExecutor<'_>,
    team_id: Uuid,
    page: Page,
) -> sqlx::Result<Vec<ApiKey>> {
    key_rows!(
        "SELECT",
        "FROM api_keys WHERE team_id = $1 AND revoked_at IS NULL \
         AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) \
         ORDER BY created_at DESC, id DESC LIMIT $4",
        team_id,
        page.after_time(),
        page.after_id(),
        page.fetch(),
    )
    .fetch_all(e)
    .await
}

pub async fn get(e: impl PgExecutor<'_>, team_id: Uuid, id: Uuid) -> sqlx::Result<Option<ApiKey>> {
    key_rows!(
        "SELECT",
        "FROM api_keys WHERE id = $1 AND team_id = $2 AND revoked_at IS NULL",
        id,
        team_id,
    )
    .fetch_optional(e)
    .await
}

/// Revokes a key of `team_id`; false if there is no such live key in that team.
pub async fn revoke(e: impl PgExecutor<'_>, team_id: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND team_id = $2 \
         AND revoked_at IS NULL",
        id,
        team_id,
    )
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn revoke_all_for_team(e: impl PgExecutor<'_>, team_id: Uuid) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "UPDATE api_keys SET revoked_at = now() WHERE team_id = $1 AND revoked_at IS NULL",
        team_id,
    )
    .execute(e)
    .await?;
    Ok(done.rows_affected())
}

/// Resolves a key hash to its live key in a live team, recording `last_used`.
pub async fn use_by_hash(e: impl PgExecutor<'_>, key_hash: &[u8]) -> sqlx::Result<Option<ApiKey>> {
    // `last_used` is written at most once a minute per key: writing it on every request made
    // all concurrent requests of one key queue on that row's lock (B7 in BENCHMARKS.md).
    sqlx::query_as!(
        ApiKey,
        "WITH k AS ( \
           SELECT k.id, k.team_id, k.name, k.key_prefix, k.created_by, k.created_at, k.last_used \
           FROM api_keys k JOIN teams t ON t.id = k.team_id \
           WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND t.deleted_at IS NULL), \
         touched AS ( \
           UPDATE api_keys SET last_used = now() \
           WHERE id IN (SELECT id FROM k \
                        WHERE last_used IS NULL OR last_used < now() - interval '60 seconds') \
           RETURNING id, last_used) \
         SELECT k.id, k.team_id, k.name, k.key_prefix, k.created_by, k.created_at, \
                COALESCE(touched.last_used, k.last_used) AS last_used \
         FROM k LEFT JOIN touched ON touched.id = k.id",
        key_hash,
    )
    .fetch_optional(e)
    .await
}

/// Live keys of a team.
pub async fn count_for_team(e: impl PgExecutor<'_>, team_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM api_keys WHERE team_id = $1 AND revoked_at IS NULL"#,
        team_id,
    )
    .fetch_one(e)
    .await
}

/// A key's name, if the key exists.
pub async fn name_of(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!("SELECT name FROM api_keys WHERE id = $1", id)
        .fetch_optional(e)
        .await
}
