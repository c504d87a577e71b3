//! The `users` aggregate.

use crate::http::paging::Page;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: Option<String>,
    pub is_active: bool,
    pub is_admin: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub activated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A checked query (`sqlx::query_as!`) answering [`User`]s: `$before` the row's columns,
/// `$after` them, then the binds (the query macros take only string literals).
macro_rules! user_rows {
    ($before:literal, $after:literal $($args:tt)*) => {
        sqlx::query_as!(
            User,
            $before
                + " id, email, name, password_hash, is_active, is_admin, disabled_at, \
                deleted_at, activated_at, created_at "
                + $after
            $($args)*
        )
    };
}

pub async fn find_by_email(e: impl PgExecutor<'_>, email: &str) -> sqlx::Result<Option<User>> {
    user_rows!("SELECT", "FROM users WHERE lower(email) = lower($1)", email)
        .fetch_optional(e)
        .await
}

/// A user's email, if the user exists.
pub async fn email_of(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!("SELECT email FROM users WHERE id = $1", id)
        .fetch_optional(e)
        .await
}

pub async fn find_by_id(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<User>> {
    user_rows!("SELECT", "FROM users WHERE id = $1", id)
        .fetch_optional(e)
        .await
}

/// A live (active, not deleted) user.
pub async fn find_live(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<User>> {
    user_rows!(
        "SELECT",
        "FROM users WHERE id = $1 AND is_active AND deleted_at IS NULL",
        id,
    )
    .fetch_optional(e)
    .await
}

pub async fn insert(
    e: impl PgExecutor<'_>,
    id: Uuid,
    email: &str,
    name: &str,
    password_hash: Option<&str>,
    active: bool,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO users (id, email, name, password_hash, is_active, activated_at) \
         VALUES ($1, $2, $3, $4, $5, CASE WHEN $5 THEN now() END)",
        id,
        email,
        name,
        password_hash,
        active,
    )
    .execute(e)
    .await
    .map(|_| ())
}

/// A repeated signup of a still-inactive account: new name/password, cooldown restarts.
pub async fn refresh_pending(
    e: impl PgExecutor<'_>,
    id: Uuid,
    name: &str,
    password_hash: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET name = $2, password_hash = $3, created_at = now(), updated_at = now() \
         WHERE id = $1 AND NOT is_active",
        id,
        name,
        password_hash,
    )
    .execute(e)
    .await
    .map(|_| ())
}

/// Activates an account; the first account ever activated becomes platform admin. Returns
/// whether it became admin. A transaction-scoped advisory lock serialises the "first" check.
pub async fn activate(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    // Unchecked: the lock function returns `void`, which the query macros cannot type.
    sqlx::query("SELECT pg_advisory_xact_lock(727001)")
        .execute(&mut *conn)
        .await?;
    sqlx::query_scalar!(
        "UPDATE users SET is_active = TRUE, activated_at = now(), updated_at = now(), \
         is_admin = is_admin OR NOT EXISTS (SELECT 1 FROM users WHERE is_active) \
         WHERE id = $1 RETURNING is_admin",
        id,
    )
    .fetch_one(&mut *conn)
    .await
}

pub async fn set_name(e: impl PgExecutor<'_>, id: Uuid, name: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET name = $2, updated_at = now() WHERE id = $1",
        id,
        name,
    )
    .execute(e)
    .await
    .map(|_| ())
}

pub async fn set_password(e: impl PgExecutor<'_>, id: Uuid, hash: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
        id,
        hash,
    )
    .execute(e)
    .await
    .map(|_| ())
}

pub async fn soft_delete(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<DateTime<Utc>> {
    sqlx::query_scalar!(
        r#"UPDATE users SET deleted_at = now(), updated_at = now() WHERE id = $1
           RETURNING deleted_at AS "deleted_at!""#,
        id,
    )
    .fetch_one(e)
    .await
}

/// Accounts soft-deleted before `cutoff`, oldest first.
pub async fn purgeable(
    e: impl PgExecutor<'_>,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<User>> {
    user_rows!(
        "SELECT",
        "FROM users WHERE deleted_at IS NOT NULL AND deleted_at < $1 \
         ORDER BY deleted_at LIMIT $2",
        cutoff,
        limit,
    )
    .fetch_all(e)
    .await
}

pub async fn hard_delete(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM users WHERE id = $1", id)
        .execute(e)
        .await
        .map(|_| ())
}

/// One page of the live users whose email starts with `prefix` (case-insensitive), by
/// `(lower(email), id)`; the cursor carries the last email as stored.
pub async fn search_by_email_prefix(
    e: impl PgExecutor<'_>,
    prefix: &str,
    page: &Page<(String, Uuid)>,
) -> sqlx::Result<Vec<User>> {
    let escaped = prefix
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    user_rows!(
        "SELECT",
        "FROM users WHERE lower(email) LIKE lower($1) || '%' ESCAPE '\\' \
         AND is_active AND deleted_at IS NULL \
         AND ($2::text IS NULL OR (lower(email), id) > (lower($2), $3)) \
         ORDER BY lower(email), id LIMIT $4",
        escaped,
        page.after.as_ref().map(|(email, _)| email.as_str()),
        page.after.as_ref().map(|(_, id)| *id).unwrap_or_default(),
        page.fetch(),
    )
    .fetch_all(e)
    .await
}
