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

const COLUMNS: &str = "id, email, name, password_hash, is_active, is_admin, disabled_at, \
                       deleted_at, activated_at, created_at";

pub async fn find_by_email(e: impl PgExecutor<'_>, email: &str) -> sqlx::Result<Option<User>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE lower(email) = lower($1)"
    ))
    .bind(email)
    .fetch_optional(e)
    .await
}

/// A user's email, if the user exists.
pub async fn email_of(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(e)
        .await
}

pub async fn find_by_id(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<User>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(e)
        .await
}

/// A live (active, not deleted) user.
pub async fn find_live(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<User>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE id = $1 AND is_active AND deleted_at IS NULL"
    ))
    .bind(id)
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
    sqlx::query(
        "INSERT INTO users (id, email, name, password_hash, is_active, activated_at) \
         VALUES ($1, $2, $3, $4, $5, CASE WHEN $5 THEN now() END)",
    )
    .bind(id)
    .bind(email)
    .bind(name)
    .bind(password_hash)
    .bind(active)
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
    sqlx::query(
        "UPDATE users SET name = $2, password_hash = $3, created_at = now(), updated_at = now() \
         WHERE id = $1 AND NOT is_active",
    )
    .bind(id)
    .bind(name)
    .bind(password_hash)
    .execute(e)
    .await
    .map(|_| ())
}

/// Activates an account; the first account ever activated becomes platform admin. Returns
/// whether it became admin. A transaction-scoped advisory lock serialises the "first" check.
pub async fn activate(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query("SELECT pg_advisory_xact_lock(727001)")
        .execute(&mut *conn)
        .await?;
    let (is_admin,): (bool,) = sqlx::query_as(
        "UPDATE users SET is_active = TRUE, activated_at = now(), updated_at = now(), \
         is_admin = is_admin OR NOT EXISTS (SELECT 1 FROM users WHERE is_active) \
         WHERE id = $1 RETURNING is_admin",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(is_admin)
}

pub async fn set_name(e: impl PgExecutor<'_>, id: Uuid, name: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET name = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(name)
        .execute(e)
        .await
        .map(|_| ())
}

pub async fn set_password(e: impl PgExecutor<'_>, id: Uuid, hash: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute(e)
        .await
        .map(|_| ())
}

pub async fn soft_delete(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<DateTime<Utc>> {
    let (at,): (DateTime<Utc>,) = sqlx::query_as(
        "UPDATE users SET deleted_at = now(), updated_at = now() WHERE id = $1 RETURNING deleted_at",
    )
    .bind(id)
    .fetch_one(e)
    .await?;
    Ok(at)
}

/// Accounts soft-deleted before `cutoff`, oldest first.
pub async fn purgeable(
    e: impl PgExecutor<'_>,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<User>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE deleted_at IS NOT NULL AND deleted_at < $1 \
         ORDER BY deleted_at LIMIT $2"
    ))
    .bind(cutoff)
    .bind(limit)
    .fetch_all(e)
    .await
}

pub async fn hard_delete(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
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
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE lower(email) LIKE lower($1) || '%' ESCAPE '\\' \
         AND is_active AND deleted_at IS NULL \
         AND ($2::text IS NULL OR (lower(email), id) > (lower($2), $3)) \
         ORDER BY lower(email), id LIMIT $4"
    ))
    .bind(escaped)
    .bind(page.after.as_ref().map(|(email, _)| email.as_str()))
    .bind(page.after.as_ref().map(|(_, id)| *id).unwrap_or_default())
    .bind(page.fetch())
    .fetch_all(e)
    .await
}
