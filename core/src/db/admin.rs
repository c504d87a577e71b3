//! The platform admin's views across every team: teams with usage, users, templates and
//! capsules, each keyset-paged newest first (see `http::paging`), and the few writes only an
//! admin makes (BYOC on/off, disabling a user, granting admin).

use crate::capsules::state::CapsuleStatus;
use crate::db::capsules::CapsuleRow;
use crate::hosts::HostStatus;
use crate::http::paging::Page;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// A team with what it holds now.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TeamUsage {
    pub id: Uuid,
    pub name: String,
    pub is_byoc: bool,
    pub created_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub member_count: i64,
    pub running_capsules: i64,
    pub paused_capsules: i64,
    pub vcpus_in_use: i64,
    pub memory_mb_in_use: i64,
    pub host_count: i64,
}

/// A checked query (`sqlx::query_as!`) answering [`TeamUsage`]s: the teams with their usage
/// (binds `$1`..`$4`: running, paused, holding statuses, deleted host status), `$after` it,
/// then the further binds. The query macros take only string literals.
macro_rules! team_usage_rows {
    ($after:literal $($args:tt)*) => {
        sqlx::query_as!(
            TeamUsage,
            r#"SELECT t.id, t.name, t.created_at, t.deleted_at,
                EXISTS (SELECT 1 FROM byoc_teams b WHERE b.team_id = t.id) AS "is_byoc!",
                (SELECT count(*) FROM users_teams ut JOIN users u ON u.id = ut.user_id
                    AND u.deleted_at IS NULL WHERE ut.team_id = t.id) AS "member_count!",
                (SELECT count(*) FROM capsules c WHERE c.team_id = t.id AND c.status = $1)
                    AS "running_capsules!",
                (SELECT count(*) FROM capsules c WHERE c.team_id = t.id AND c.status = $2)
                    AS "paused_capsules!",
                (SELECT COALESCE(sum(c.vcpus), 0) FROM capsules c WHERE c.team_id = t.id
                    AND c.status = ANY($3))::BIGINT AS "vcpus_in_use!",
                (SELECT COALESCE(sum(c.memory_mb), 0) FROM capsules c WHERE c.team_id = t.id
                    AND c.status = ANY($3))::BIGINT AS "memory_mb_in_use!",
                (SELECT count(*) FROM hosts h WHERE h.team_id = t.id AND h.status <> $4)
                    AS "host_count!"
                FROM teams t "#
                + $after,
            CapsuleStatus::Running as CapsuleStatus,
            CapsuleStatus::Paused as CapsuleStatus,
            CapsuleStatus::all_where(CapsuleStatus::holds_resources) as Vec<CapsuleStatus>,
            HostStatus::Deleted as HostStatus
            $($args)*
        )
    };
}

/// Teams, newest first; soft-deleted ones only when asked.
pub async fn teams(
    db: impl PgExecutor<'_>,
    include_deleted: bool,
    page: Page,
) -> sqlx::Result<Vec<TeamUsage>> {
    team_usage_rows!(
        "WHERE ($5 OR t.deleted_at IS NULL) \
         AND ($6::timestamptz IS NULL OR (t.created_at, t.id) < ($6, $7)) \
         ORDER BY t.created_at DESC, t.id DESC LIMIT $8",
        include_deleted,
        page.after_time(),
        page.after_id(),
        page.fetch(),
    )
    .fetch_all(db)
    .await
}

/// One team (deleted or not).
pub async fn team(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<TeamUsage>> {
    team_usage_rows!("WHERE t.id = $5", id)
        .fetch_optional(db)
        .await
}

/// Live (not deleted) hosts of a BYOC team.
pub async fn byoc_hosts(db: impl PgExecutor<'_>, team_id: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM hosts WHERE team_id = $1 AND status <> $2 ORDER BY id",
        team_id,
        HostStatus::Deleted as HostStatus,
    )
    .fetch_all(db)
    .await
}

/// Makes a team BYOC (its capsules land only on its own hosts) or a regular one again. The
/// scheduler reads `byoc_teams`; `teams.is_byoc` mirrors it for the team views.
pub async fn set_byoc(conn: &mut PgConnection, team_id: Uuid, on: bool) -> sqlx::Result<()> {
    if on {
        sqlx::query!(
            "INSERT INTO byoc_teams (team_id) VALUES ($1) ON CONFLICT DO NOTHING",
            team_id,
        )
        .execute(&mut *conn)
        .await?;
    } else {
        sqlx::query!("DELETE FROM byoc_teams WHERE team_id = $1", team_id)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query!("UPDATE teams SET is_byoc = $2 WHERE id = $1", team_id, on)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A user as the admin sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserSummary {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub is_active: bool,
    pub is_admin: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub team_count: i64,
}

/// A checked query (`sqlx::query_as!`) answering [`UserSummary`]s of users not deleted,
/// `$after` it, then the binds (the query macros take only string literals).
macro_rules! user_summary_rows {
    ($after:literal $($args:tt)*) => {
        sqlx::query_as!(
            UserSummary,
            r#"SELECT u.id, u.email, u.name, u.is_active, u.is_admin, u.disabled_at, u.created_at,
                (SELECT count(*) FROM users_teams ut JOIN teams t ON t.id = ut.team_id
                    AND t.deleted_at IS NULL WHERE ut.user_id = u.id) AS "team_count!"
                FROM users u WHERE u.deleted_at IS NULL "#
                + $after
            $($args)*
        )
    };
}

/// Users not deleted, newest first; `email` keeps those whose address contains it.
pub async fn users(
    db: impl PgExecutor<'_>,
    email: Option<&str>,
    page: Page,
) -> sqlx::Result<Vec<UserSummary>> {
    user_summary_rows!(
        "AND ($1::text IS NULL OR strpos(lower(u.email), lower($1)) > 0) \
         AND ($2::timestamptz IS NULL OR (u.created_at, u.id) < ($2, $3)) \
         ORDER BY u.created_at DESC, u.id DESC LIMIT $4",
        email,
        page.after_time(),
        page.after_id(),
        page.fetch(),
    )
    .fetch_all(db)
    .await
}

/// One user not deleted.
pub async fn user(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<UserSummary>> {
    user_summary_rows!("AND u.id = $1", id)
        .fetch_optional(db)
        .await
}

/// Locks the rows of the active, enabled platform admins (so two admins demoting each other
/// at once cannot both succeed) and returns their ids.
pub async fn lock_active_admins(conn: &mut PgConnection) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM users WHERE is_admin AND is_active AND disabled_at IS NULL \
         AND deleted_at IS NULL ORDER BY id FOR UPDATE"
    )
    .fetch_all(conn)
    .await
}

/// Disables (keeping the first time) or enables a user.
pub async fn set_disabled(conn: &mut PgConnection, id: Uuid, disabled: bool) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET disabled_at = CASE WHEN $2 THEN COALESCE(disabled_at, now()) END \
         WHERE id = $1",
        id,
        disabled,
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Grants or revokes platform admin.
pub async fn set_admin(conn: &mut PgConnection, id: Uuid, admin: bool) -> sqlx::Result<()> {
    sqlx::query!("UPDATE users SET is_admin = $2 WHERE id = $1", id, admin)
        .execute(conn)
        .await
        .map(|_| ())
}

/// A template with its owning team's name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TemplateSummary {
    pub id: Uuid,
    pub team_id: Uuid,
    pub team_name: Option<String>,
    pub name: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub vcpus: i32,
    pub memory_mb: i32,
    pub size_bytes: i64,
    pub created_at: DateTime<Utc>,
    pub live_capsules: i64,
}

/// Every template (platform and teams'), newest first.
pub async fn templates(db: impl PgExecutor<'_>, page: Page) -> sqlx::Result<Vec<TemplateSummary>> {
    sqlx::query_as!(
        TemplateSummary,
        r#"SELECT t.id, t.team_id, tm.name AS "team_name?", t.name, t.type AS kind, t.vcpus,
         t.memory_mb, t.size_bytes, t.created_at,
         (SELECT count(*) FROM capsules c WHERE c.template_id = t.id AND c.status = ANY($1))
             AS "live_capsules!"
         FROM templates t LEFT JOIN teams tm ON tm.id = t.team_id
         WHERE ($2::timestamptz IS NULL OR (t.created_at, t.id) < ($2, $3))
         ORDER BY t.created_at DESC, t.id DESC LIMIT $4"#,
        CapsuleStatus::all_where(CapsuleStatus::holds_resources) as Vec<CapsuleStatus>,
        page.after_time(),
        page.after_id(),
        page.fetch(),
    )
    .fetch_all(db)
    .await
}

/// A capsule with where it runs and whose it is.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlacedCapsule {
    #[sqlx(flatten)]
    pub row: CapsuleRow,
    pub team_name: Option<String>,
    pub host_address: Option<String>,
}

/// What the admin's capsule listing keeps.
#[derive(Debug, Clone, Default)]
pub struct CapsuleFilter {
    pub status: Option<CapsuleStatus>,
    pub team_id: Option<Uuid>,
    pub host_id: Option<Uuid>,
}

/// Every team's capsules, newest first: one status, or every status but stopped.
pub async fn capsules(
    db: impl PgExecutor<'_>,
    filter: &CapsuleFilter,
    page: Page,
) -> sqlx::Result<Vec<PlacedCapsule>> {
    // Unchecked: the query macros cannot fill a flattened `CapsuleRow`, and its columns are
    // qualified by an alias at run time (`capsules::columns_of`).
    sqlx::query_as(&format!(
        "SELECT {}, tm.name AS team_name, h.address AS host_address \
         FROM capsules c LEFT JOIN teams tm ON tm.id = c.team_id \
         LEFT JOIN hosts h ON h.id = c.host_id \
         WHERE (CASE WHEN $1::text IS NULL THEN c.status <> $2 ELSE c.status = $1 END) \
         AND ($3::uuid IS NULL OR c.team_id = $3) AND ($4::uuid IS NULL OR c.host_id = $4) \
         AND ($5::timestamptz IS NULL OR (c.created_at, c.id) < ($5, $6)) \
         ORDER BY c.created_at DESC, c.id DESC LIMIT $7",
        crate::db::capsules::columns_of("c")
    ))
    .bind(filter.status)
    .bind(CapsuleStatus::Stopped)
    .bind(filter.team_id)
    .bind(filter.host_id)
    .bind(page.after_time())
    .bind(page.after_id())
    .bind(page.fetch())
    .fetch_all(db)
    .await
}
