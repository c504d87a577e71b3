//! Template rows: platform base templates (team = nil UUID) and teams' snapshot templates.

use crate::http::paging::Page;
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

/// A `templates` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TemplateRow {
    pub id: Uuid,
    pub team_id: Uuid,
    pub name: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub vcpus: i32,
    pub memory_mb: i32,
    pub size_bytes: i64,
    pub base_template_id: Option<Uuid>,
    pub source_capsule_id: Option<Uuid>,
    pub host_id: Option<Uuid>,
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl TemplateRow {
    pub fn is_platform(&self) -> bool {
        self.team_id.is_nil()
    }

    pub fn is_snapshot(&self) -> bool {
        self.kind == "snapshot"
    }
}

/// A checked query (`sqlx::query_as!`) answering [`TemplateRow`]s: `$before` the row's
/// columns, `$after` them, then the binds (the query macros take only string literals).
macro_rules! template_rows {
    ($before:literal, $after:literal $($args:tt)*) => {
        sqlx::query_as!(
            TemplateRow,
            $before
                + " id, team_id, name, type AS kind, vcpus, memory_mb, size_bytes, \
                base_template_id, source_capsule_id, host_id, metadata, created_at "
                + $after
            $($args)*
        )
    };
}

/// A template visible to `team_id` by name: the team's own first, then the platform's.
pub async fn find_visible(
    db: impl PgExecutor<'_>,
    team_id: Uuid,
    name: &str,
) -> sqlx::Result<Option<TemplateRow>> {
    template_rows!(
        "SELECT",
        "FROM templates WHERE name = $2 AND (team_id = $1 OR team_id = $3) \
         ORDER BY (team_id = $1) DESC LIMIT 1",
        team_id,
        name,
        Uuid::nil(),
    )
    .fetch_optional(db)
    .await
}

/// A template by id.
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<TemplateRow>> {
    template_rows!("SELECT", "FROM templates WHERE id = $1", id)
        .fetch_optional(db)
        .await
}

/// Whether a platform template has this name.
pub async fn is_platform_name(db: impl PgExecutor<'_>, name: &str) -> sqlx::Result<bool> {
    let id = sqlx::query_scalar!(
        "SELECT id FROM templates WHERE team_id = $1 AND name = $2",
        Uuid::nil(),
        name,
    )
    .fetch_optional(db)
    .await?;
    Ok(id.is_some())
}

/// The team's templates plus the platform's, optionally of one type, platform first then by
/// name.
pub async fn list_visible(
    db: impl PgExecutor<'_>,
    team_id: Uuid,
    kind: Option<&str>,
) -> sqlx::Result<Vec<TemplateRow>> {
    template_rows!(
        "SELECT",
        "FROM templates WHERE (team_id = $1 OR team_id = $2) \
         AND ($3::TEXT IS NULL OR type = $3) ORDER BY (team_id = $2) DESC, name",
        team_id,
        Uuid::nil(),
        kind,
    )
    .fetch_all(db)
    .await
}

/// One page of what `list_visible` lists, in its order: the platform's templates first, then
/// the team's, each by name (`(team's, name, id)` ascending).
pub async fn page_visible(
    db: impl PgExecutor<'_>,
    team_id: Uuid,
    kind: Option<&str>,
    page: &Page<(bool, String, Uuid)>,
) -> sqlx::Result<Vec<TemplateRow>> {
    let after = page.after.as_ref();
    template_rows!(
        "SELECT",
        "FROM templates WHERE (team_id = $1 OR team_id = $2) \
         AND ($3::TEXT IS NULL OR type = $3) \
         AND ($4::BOOL IS NULL OR (team_id <> $2, name, id) > ($4, $5, $6)) \
         ORDER BY team_id <> $2, name, id LIMIT $7",
        team_id,
        Uuid::nil(),
        kind,
        after.map(|k| k.0),
        after.map(|k| k.1.as_str()),
        after.map(|k| k.2).unwrap_or_default(),
        page.fetch(),
    )
    .fetch_all(db)
    .await
}

/// What `insert_snapshot` needs.
#[derive(Debug, Clone)]
pub struct NewSnapshot {
    pub id: Uuid,
    pub team_id: Uuid,
    pub name: String,
    pub vcpus: i32,
    pub memory_mb: i32,
    pub base_template_id: Uuid,
    pub source_capsule_id: Uuid,
    pub host_id: Uuid,
}

/// Inserts a snapshot template (unique per team and name: a violation means the name is
/// taken).
pub async fn insert_snapshot(
    db: impl PgExecutor<'_>,
    new: &NewSnapshot,
) -> sqlx::Result<TemplateRow> {
    template_rows!(
        "INSERT INTO templates (id, team_id, name, type, vcpus, memory_mb, base_template_id, \
         source_capsule_id, host_id) VALUES ($1, $2, $3, 'snapshot', $4, $5, $6, $7, $8) \
         RETURNING",
        "",
        new.id,
        new.team_id,
        new.name,
        new.vcpus,
        new.memory_mb,
        new.base_template_id,
        new.source_capsule_id,
        new.host_id,
    )
    .fetch_one(db)
    .await
}

/// [`insert_snapshot`] unless the team already has `cap` snapshot templates (`None` then). The
/// count and the insert run under a per-team transaction lock, so concurrent snapshots of one
/// team never pass the cap together.
pub async fn insert_snapshot_capped(
    db: &sqlx::PgPool,
    new: &NewSnapshot,
    cap: i64,
) -> sqlx::Result<Option<TemplateRow>> {
    let mut tx = db.begin().await?;
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('wrenn.snapshots:' || $1::uuid::text, 0))",
        new.team_id,
    )
    .fetch_one(&mut *tx)
    .await?;
    let held = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM templates WHERE team_id = $1 AND type = 'snapshot'"#,
        new.team_id,
    )
    .fetch_one(&mut *tx)
    .await?;
    if held >= cap {
        return Ok(None);
    }
    let row = insert_snapshot(&mut *tx, new).await?;
    tx.commit().await?;
    Ok(Some(row))
}

/// Records the size the agent reported once the snapshot is written.
pub async fn set_size(db: impl PgExecutor<'_>, id: Uuid, size_bytes: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE templates SET size_bytes = $2 WHERE id = $1",
        id,
        size_bytes,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Deletes a template row; capsules created from it keep their `template_name`, so the row is
/// only unlinked from them (their template id points at the base template instead).
pub async fn delete(db: &sqlx::PgPool, template: &TemplateRow) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    if let Some(base) = template.base_template_id {
        sqlx::query!(
            "UPDATE capsules SET template_id = $2 WHERE template_id = $1",
            template.id,
            base,
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query!(
        "UPDATE templates SET base_template_id = NULL WHERE base_template_id = $1",
        template.id,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("DELETE FROM templates WHERE id = $1", template.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// The template `team_id` owns under `name` (platform: the nil team).
pub async fn find_owned(
    db: impl PgExecutor<'_>,
    team_id: Uuid,
    name: &str,
) -> sqlx::Result<Option<TemplateRow>> {
    template_rows!(
        "SELECT",
        "FROM templates WHERE team_id = $1 AND name = $2",
        team_id,
        name,
    )
    .fetch_optional(db)
    .await
}

/// A template a build made (already written on `host_id`).
#[derive(Debug, Clone)]
pub struct NewBuilt {
    pub id: Uuid,
    pub team_id: Uuid,
    pub name: String,
    /// `base` (a flattened rootfs) or `snapshot`.
    pub kind: &'static str,
    pub vcpus: i32,
    pub memory_mb: i32,
    pub size_bytes: i64,
    pub base_template_id: Option<Uuid>,
    pub source_capsule_id: Option<Uuid>,
    pub host_id: Uuid,
    pub metadata: serde_json::Value,
}

/// Why [`insert_built`] did not take the name.
#[derive(Debug)]
pub enum ReplaceError {
    /// The template under that name still has live capsules or snapshots based on it.
    InUse(String),
    /// A template not made by a build took the name meanwhile.
    Taken,
    Db(sqlx::Error),
}

impl From<sqlx::Error> for ReplaceError {
    fn from(e: sqlx::Error) -> Self {
        ReplaceError::Db(e)
    }
}

/// Enters a built template under its name, replacing the template an earlier build of the
/// name made (unless capsules of it are still live). Answers the replaced row, whose files
/// the caller removes from its host.
pub async fn insert_built(
    db: &sqlx::PgPool,
    new: &NewBuilt,
) -> Result<(TemplateRow, Option<TemplateRow>), ReplaceError> {
    let mut tx = db.begin().await?;
    let old = template_rows!(
        "SELECT",
        "FROM templates WHERE team_id = $1 AND name = $2 FOR UPDATE",
        new.team_id,
        new.name,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(old) = &old {
        if old.metadata.get("build_id").is_none() {
            return Err(ReplaceError::Taken);
        }
        let live = crate::db::builds::live_capsules_of(&mut *tx, old.id).await?;
        if live > 0 {
            return Err(ReplaceError::InUse(format!("{live} live capsule(s)")));
        }
        let based = dependents(&mut *tx, old.id).await?;
        if based > 0 {
            return Err(ReplaceError::InUse(format!(
                "{based} snapshot template(s) based on it"
            )));
        }
        // Out of the name's way until it is gone (no valid name contains '/').
        sqlx::query!(
            "UPDATE templates SET name = name || '/replaced/' || id::text WHERE id = $1",
            old.id,
        )
        .execute(&mut *tx)
        .await?;
    }
    let row = template_rows!(
        "INSERT INTO templates (id, team_id, name, type, vcpus, memory_mb, size_bytes, \
         base_template_id, source_capsule_id, host_id, metadata) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING",
        "",
        new.id,
        new.team_id,
        new.name,
        new.kind,
        new.vcpus,
        new.memory_mb,
        new.size_bytes,
        new.base_template_id,
        new.source_capsule_id,
        new.host_id,
        new.metadata,
    )
    .fetch_one(&mut *tx)
    .await?;
    if let Some(old) = &old {
        // Stopped capsules keep their template name; the link moves to the old template's
        // base, or to its successor.
        sqlx::query!(
            "UPDATE capsules SET template_id = $2 WHERE template_id = $1",
            old.id,
            old.base_template_id.unwrap_or(new.id),
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!("DELETE FROM templates WHERE id = $1", old.id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok((row, old))
}

/// Snapshot templates whose rootfs is `template_id`'s.
pub async fn dependents(db: impl PgExecutor<'_>, template_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM templates WHERE base_template_id = $1"#,
        template_id,
    )
    .fetch_one(db)
    .await
}
