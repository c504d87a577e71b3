//! The `teams` aggregate: teams and their memberships (`users_teams`).

use crate::http::paging::Page;
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;
use wrenn_extension_api::Role;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Team {
    pub id: Uuid,
    pub name: String,
    pub is_byoc: bool,
    pub auto_resume: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TeamWithRole {
    pub id: Uuid,
    pub name: String,
    pub is_byoc: bool,
    pub auto_resume: bool,
    pub created_at: DateTime<Utc>,
    pub role: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    pub user_id: Uuid,
    pub name: String,
    pub email: String,
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

pub async fn insert(e: impl PgExecutor<'_>, id: Uuid, name: &str) -> sqlx::Result<Team> {
    sqlx::query_as!(
        Team,
        "INSERT INTO teams (id, name) VALUES ($1, $2) \
         RETURNING id, name, is_byoc, auto_resume, created_at",
        id,
        name,
    )
    .fetch_one(e)
    .await
}

/// A live (not deleted) team.
pub async fn get(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Team>> {
    sqlx::query_as!(
        Team,
        "SELECT id, name, is_byoc, auto_resume, created_at FROM teams \
         WHERE id = $1 AND deleted_at IS NULL",
        id,
    )
    .fetch_optional(e)
    .await
}

pub async fn add_member(
    e: impl PgExecutor<'_>,
    team_id: Uuid,
    user_id: Uuid,
    role: Role,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO users_teams (user_id, team_id, role) VALUES ($1, $2, $3)",
        user_id,
        team_id,
        role.as_str(),
    )
    .execute(e)
    .await
    .map(|_| ())
}

/// The user's role in a live team.
pub async fn role_of(
    e: impl PgExecutor<'_>,
    team_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<Option<Role>> {
    let role = sqlx::query_scalar!(
        "SELECT ut.role FROM users_teams ut JOIN teams t ON t.id = ut.team_id \
         WHERE ut.team_id = $1 AND ut.user_id = $2 AND t.deleted_at IS NULL",
        team_id,
        user_id,
    )
    .fetch_optional(e)
    .await?;
    Ok(role.and_then(|r| Role::parse(&r)))
}

pub async fn list_for_user(
    e: impl PgExecutor<'_>,
    user_id: Uuid,
) -> sqlx::Result<Vec<TeamWithRole>> {
    sqlx::query_as!(
        TeamWithRole,
        "SELECT t.id, t.name, t.is_byoc, t.auto_resume, t.created_at, ut.role FROM teams t \
         JOIN users_teams ut ON ut.team_id = t.id \
         WHERE ut.user_id = $1 AND t.deleted_at IS NULL ORDER BY t.created_at, t.id",
        user_id,
    )
    .fetch_all(e)
    .await
}

/// One page of the user's teams, oldest first (`(created_at, id)` ascending: the order the
/// listing always had).
pub async fn page_for_user(
    e: impl PgExecutor<'_>,
    user_id: Uuid,
    page: Page,
) -> sqlx::Result<Vec<TeamWithRole>> {
    sqlx::query_as(
        "SELECT t.id, t.name, t.is_byoc, t.auto_resume, t.created_at, ut.role FROM teams t \
         JOIN users_teams ut ON ut.team_id = t.id \
         WHERE ut.user_id = $1 AND t.deleted_at IS NULL \
         AND ($2::timestamptz IS NULL OR (t.created_at, t.id) > ($2, $3)) \
         ORDER BY t.created_at, t.id LIMIT $4",
    )
    .bind(user_id)
    .bind(page.after_time())
    .bind(page.after_id())
    .bind(page.fetch())
    .fetch_all(e)
    .await
}

/// The team a fresh login lands in: the oldest team the user owns, else the oldest membership.
pub async fn default_for_user(e: impl PgExecutor<'_>, user_id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT t.id FROM teams t JOIN users_teams ut ON ut.team_id = t.id \
         WHERE ut.user_id = $1 AND t.deleted_at IS NULL \
         ORDER BY (ut.role = 'owner') DESC, ut.created_at, t.id LIMIT 1",
        user_id,
    )
    .fetch_optional(e)
    .await
}

pub async fn members(e: impl PgExecutor<'_>, team_id: Uuid) -> sqlx::Result<Vec<Member>> {
    sqlx::query_as!(
        Member,
        "SELECT u.id AS user_id, u.name, u.email, ut.role, ut.created_at AS joined_at \
         FROM users_teams ut JOIN users u ON u.id = ut.user_id \
         WHERE ut.team_id = $1 AND u.deleted_at IS NULL \
         ORDER BY ut.created_at, u.id",
        team_id,
    )
    .fetch_all(e)
    .await
}

/// One page of a team's members in the order they joined (`(joined_at, user id)`
/// ascending: the order the listing always had).
pub async fn members_page(
    e: impl PgExecutor<'_>,
    team_id: Uuid,
    page: Page,
) -> sqlx::Result<Vec<Member>> {
    sqlx::query_as(
        "SELECT u.id AS user_id, u.name, u.email, ut.role, ut.created_at AS joined_at \
         FROM users_teams ut JOIN users u ON u.id = ut.user_id \
         WHERE ut.team_id = $1 AND u.deleted_at IS NULL \
         AND ($2::timestamptz IS NULL OR (ut.created_at, u.id) > ($2, $3)) \
         ORDER BY ut.created_at, u.id LIMIT $4",
    )
    .bind(team_id)
    .bind(page.after_time())
    .bind(page.after_id())
    .bind(page.fetch())
    .fetch_all(e)
    .await
}

/// Changes a team's name and/or settings (`None` keeps the current value).
pub async fn update(
    e: impl PgExecutor<'_>,
    team_id: Uuid,
    name: Option<&str>,
    auto_resume: Option<bool>,
) -> sqlx::Result<Option<Team>> {
    sqlx::query_as!(
        Team,
        "UPDATE teams SET name = COALESCE($2, name), auto_resume = COALESCE($3, auto_resume) \
         WHERE id = $1 AND deleted_at IS NULL \
         RETURNING id, name, is_byoc, auto_resume, created_at",
        team_id,
        name,
        auto_resume,
    )
    .fetch_optional(e)
    .await
}

/// Whether the port proxy resumes the team's paused capsules.
pub async fn auto_resume(e: impl PgExecutor<'_>, team_id: Uuid) -> sqlx::Result<bool> {
    let on = sqlx::query_scalar!(
        "SELECT auto_resume FROM teams WHERE id = $1 AND deleted_at IS NULL",
        team_id,
    )
    .fetch_optional(e)
    .await?;
    Ok(on.unwrap_or(false))
}

pub async fn soft_delete(e: impl PgExecutor<'_>, team_id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE teams SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL",
        team_id,
    )
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn set_role(
    e: impl PgExecutor<'_>,
    team_id: Uuid,
    user_id: Uuid,
    role: Role,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE users_teams SET role = $3 WHERE team_id = $1 AND user_id = $2",
        team_id,
        user_id,
        role.as_str(),
    )
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn remove_member(
    e: impl PgExecutor<'_>,
    team_id: Uuid,
    user_id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "DELETE FROM users_teams WHERE team_id = $1 AND user_id = $2",
        team_id,
        user_id,
    )
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Live teams the user owns that have other (non-deleted) members.
pub async fn owned_with_other_members(e: impl PgExecutor<'_>, user_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(DISTINCT t.id) AS "n!" FROM teams t
         JOIN users_teams mine ON mine.team_id = t.id AND mine.user_id = $1 AND mine.role = 'owner'
         JOIN users_teams other ON other.team_id = t.id AND other.user_id <> $1
         JOIN users u ON u.id = other.user_id AND u.deleted_at IS NULL
         WHERE t.deleted_at IS NULL"#,
        user_id,
    )
    .fetch_one(e)
    .await
}

/// Soft-deletes every live team the user owns; returns their ids.
pub async fn soft_delete_owned(e: impl PgExecutor<'_>, user_id: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "UPDATE teams SET deleted_at = now() WHERE deleted_at IS NULL AND id IN \
         (SELECT team_id FROM users_teams WHERE user_id = $1 AND role = 'owner') RETURNING id",
        user_id,
    )
    .fetch_all(e)
    .await
}
