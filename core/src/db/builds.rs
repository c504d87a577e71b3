//! Template build rows, their uploaded files and their logs.

use crate::builds::model::{BuildStatus, StepState};
use crate::capsules::CapsuleStatus;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::PgExecutor;
use uuid::Uuid;

/// A `template_builds` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BuildRow {
    pub id: Uuid,
    pub team_id: Uuid,
    pub template_team_id: Uuid,
    pub name: String,
    pub recipe: String,
    pub recipe_hash: String,
    pub from_template: String,
    pub vcpus: i32,
    pub memory_mb: i32,
    pub status: BuildStatus,
    pub steps: Json<Vec<StepState>>,
    pub error: String,
    pub template_id: Option<Uuid>,
    pub template_type: Option<String>,
    pub capsule_id: Option<Uuid>,
    pub host_id: Option<Uuid>,
    pub created_by_user: Option<Uuid>,
    pub created_by_key: Option<Uuid>,
    pub cancel_requested: bool,
    pub log_bytes: i64,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A checked query (`sqlx::query_as!`) answering [`BuildRow`]s: `$before` the row's
/// columns, `$after` them, then the binds (the query macros take only string literals).
macro_rules! build_rows {
    ($before:literal, $after:literal $($args:tt)*) => {
        sqlx::query_as!(
            BuildRow,
            $before
                + r#" id, team_id, template_team_id, name, recipe, recipe_hash, from_template,
                vcpus, memory_mb, status AS "status: BuildStatus",
                steps AS "steps: Json<Vec<StepState>>", error, template_id, template_type,
                capsule_id, host_id, created_by_user, created_by_key, cancel_requested,
                log_bytes, heartbeat_at, created_at, started_at, finished_at "#
                + $after
            $($args)*
        )
    };
}

/// What `insert` needs.
#[derive(Debug, Clone)]
pub struct NewBuild {
    pub id: Uuid,
    pub team_id: Uuid,
    pub template_team_id: Uuid,
    pub name: String,
    pub recipe: String,
    pub recipe_hash: String,
    pub from_template: String,
    pub vcpus: i32,
    pub memory_mb: i32,
    pub steps: Vec<StepState>,
    pub created_by_user: Option<Uuid>,
    pub created_by_key: Option<Uuid>,
}

/// Inserts a queued build and its files in one transaction. A unique violation means a
/// build of the same template name is already queued or running.
pub async fn insert(
    db: &sqlx::PgPool,
    new: &NewBuild,
    files: &[(String, Vec<u8>)],
) -> sqlx::Result<BuildRow> {
    let mut tx = db.begin().await?;
    let row = build_rows!(
        "INSERT INTO template_builds (id, team_id, template_team_id, name, recipe, recipe_hash, \
         from_template, vcpus, memory_mb, steps, created_by_user, created_by_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING",
        "",
        new.id,
        new.team_id,
        new.template_team_id,
        new.name,
        new.recipe,
        new.recipe_hash,
        new.from_template,
        new.vcpus,
        new.memory_mb,
        Json(&new.steps) as _,
        new.created_by_user,
        new.created_by_key,
    )
    .fetch_one(&mut *tx)
    .await?;
    for (path, content) in files {
        sqlx::query!(
            "INSERT INTO template_build_files (build_id, path, content) VALUES ($1, $2, $3)",
            new.id,
            path,
            content,
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(row)
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<BuildRow>> {
    build_rows!("SELECT", "FROM template_builds WHERE id = $1", id)
        .fetch_optional(db)
        .await
}

/// A build the team asked for.
pub async fn get_for_team(
    db: impl PgExecutor<'_>,
    id: Uuid,
    team_id: Uuid,
) -> sqlx::Result<Option<BuildRow>> {
    build_rows!(
        "SELECT",
        "FROM template_builds WHERE id = $1 AND team_id = $2",
        id,
        team_id,
    )
    .fetch_optional(db)
    .await
}

/// One page of builds, newest first: the team's, or every team's when `team_id` is `None`.
pub async fn list(
    db: impl PgExecutor<'_>,
    team_id: Option<Uuid>,
    status: Option<BuildStatus>,
    page: &crate::http::paging::Page,
) -> sqlx::Result<Vec<BuildRow>> {
    build_rows!(
        "SELECT",
        "FROM template_builds \
         WHERE ($1::UUID IS NULL OR team_id = $1) AND ($2::TEXT IS NULL OR status = $2) \
         AND ($3::TIMESTAMPTZ IS NULL OR (created_at, id) < ($3, $4)) \
         ORDER BY created_at DESC, id DESC LIMIT $5",
        team_id,
        status as Option<BuildStatus>,
        page.after_time(),
        page.after_id(),
        page.fetch(),
    )
    .fetch_all(db)
    .await
}

/// The newest succeeded build of `name` with this hash whose template still exists.
pub async fn reusable(
    db: impl PgExecutor<'_>,
    template_team_id: Uuid,
    name: &str,
    recipe_hash: &str,
) -> sqlx::Result<Option<BuildRow>> {
    build_rows!(
        "SELECT",
        "FROM template_builds b WHERE template_team_id = $1 AND name = $2 \
         AND recipe_hash = $3 AND status = 'succeeded' \
         AND EXISTS (SELECT 1 FROM templates t WHERE t.id = b.template_id AND t.name = b.name \
                     AND t.team_id = b.template_team_id) \
         ORDER BY created_at DESC LIMIT 1",
        template_team_id,
        name,
        recipe_hash,
    )
    .fetch_optional(db)
    .await
}

/// Moves a queued build to `running` for this worker; `None` if another worker (or a
/// cancel) got there first.
pub async fn claim(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<BuildRow>> {
    build_rows!(
        "UPDATE template_builds SET status = 'running', started_at = now(), heartbeat_at = now() \
         WHERE id = $1 AND status = 'queued' AND NOT cancel_requested RETURNING",
        "",
        id,
    )
    .fetch_optional(db)
    .await
}

/// Refreshes a running build's heartbeat; answers whether a cancel was asked for (and `None`
/// when the build is no longer running).
pub async fn heartbeat(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar!(
        "UPDATE template_builds SET heartbeat_at = now() WHERE id = $1 AND status = 'running' \
         RETURNING cancel_requested",
        id,
    )
    .fetch_optional(db)
    .await
}

/// Records the build's capsule and host while it runs.
pub async fn set_capsule(
    db: impl PgExecutor<'_>,
    id: Uuid,
    capsule_id: Uuid,
    host_id: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE template_builds SET capsule_id = $2, host_id = $3 WHERE id = $1",
        id,
        capsule_id,
        host_id,
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn set_steps(db: impl PgExecutor<'_>, id: Uuid, steps: &[StepState]) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE template_builds SET steps = $2 WHERE id = $1",
        id,
        Json(steps) as _,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Ends a running build.
pub async fn finish(
    db: impl PgExecutor<'_>,
    id: Uuid,
    status: BuildStatus,
    error: &str,
    steps: &[StepState],
    template: Option<(Uuid, &str)>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE template_builds SET status = $2, error = $3, steps = $4, template_id = $5, \
         template_type = $6, finished_at = now() WHERE id = $1 AND status = 'running'",
        id,
        status as BuildStatus,
        error,
        Json(steps) as _,
        template.map(|t| t.0),
        template.map(|t| t.1),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Asks for a cancel: a queued build is cancelled at once (`true`), a running one is flagged
/// for its worker. `None` when the build has already finished.
pub async fn request_cancel(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<bool>> {
    let status = sqlx::query_scalar!(
        r#"UPDATE template_builds SET cancel_requested = true,
         status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
         error = CASE WHEN status = 'queued' THEN 'cancelled before it started' ELSE error END,
         finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END
         WHERE id = $1 AND status IN ('queued', 'running') RETURNING status AS "status: BuildStatus""#,
        id,
    )
    .fetch_optional(db)
    .await?;
    Ok(status.map(|s| s == BuildStatus::Cancelled))
}

/// Queued builds waiting longer than `secs` (their queue entry may have been lost).
pub async fn queued_since(db: impl PgExecutor<'_>, secs: i64) -> sqlx::Result<Vec<Uuid>> {
    let secs = secs as f64;
    sqlx::query_scalar!(
        "SELECT id FROM template_builds WHERE status = 'queued' \
         AND created_at < now() - make_interval(secs => $1) ORDER BY created_at LIMIT 100",
        secs,
    )
    .fetch_all(db)
    .await
}

/// Running builds whose worker has not been heard from in `secs`.
pub async fn stale(db: impl PgExecutor<'_>, secs: i64) -> sqlx::Result<Vec<BuildRow>> {
    let secs = secs as f64;
    build_rows!(
        "SELECT",
        "FROM template_builds WHERE status = 'running' \
         AND heartbeat_at < now() - make_interval(secs => $1)",
        secs,
    )
    .fetch_all(db)
    .await
}

/// One of the build's uploaded files.
pub async fn file(db: impl PgExecutor<'_>, id: Uuid, path: &str) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar!(
        "SELECT content FROM template_build_files WHERE build_id = $1 AND path = $2",
        id,
        path,
    )
    .fetch_optional(db)
    .await
}

/// A `template_build_logs` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LogRow {
    pub seq: i64,
    pub step: Option<i32>,
    pub stream: String,
    pub data: String,
    pub created_at: DateTime<Utc>,
}

/// Appends a log entry unless the build's log is already `max_bytes` long; answers whether
/// it was stored.
pub async fn append_log(
    db: &sqlx::PgPool,
    id: Uuid,
    step: Option<i32>,
    stream: &str,
    data: &str,
    max_bytes: i64,
) -> sqlx::Result<bool> {
    let mut tx = db.begin().await?;
    let len = data.len() as i64;
    let grown = sqlx::query_scalar!(
        "UPDATE template_builds SET log_bytes = log_bytes + $2 \
         WHERE id = $1 AND log_bytes + $2 <= $3 RETURNING log_bytes",
        id,
        len,
        max_bytes,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if grown.is_none() {
        return Ok(false);
    }
    sqlx::query!(
        "INSERT INTO template_build_logs (build_id, step, stream, data) VALUES ($1, $2, $3, $4)",
        id,
        step,
        stream,
        data,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Log entries after `after`, in order, at most `limit`.
pub async fn logs(
    db: impl PgExecutor<'_>,
    id: Uuid,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<LogRow>> {
    sqlx::query_as!(
        LogRow,
        "SELECT seq, step, stream, data, created_at FROM template_build_logs \
         WHERE build_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        id,
        after,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Capsules not yet stopped that were created from `template_id`.
pub async fn live_capsules_of(db: impl PgExecutor<'_>, template_id: Uuid) -> sqlx::Result<i64> {
    let released = CapsuleStatus::all_where(|s| !s.holds_resources());
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM capsules WHERE template_id = $1 AND status <> ALL($2)"#,
        template_id,
        released as Vec<CapsuleStatus>,
    )
    .fetch_one(db)
    .await
}

/// Records the id the build's template is about to be written under (so a sweep after a
/// lost worker can remove its files); shown only once the build has succeeded.
pub async fn set_planned_template(
    db: impl PgExecutor<'_>,
    id: Uuid,
    template_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE template_builds SET template_id = $2 WHERE id = $1",
        id,
        template_id,
    )
    .execute(db)
    .await?;
    Ok(())
}
