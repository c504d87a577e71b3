//! Host tags.

use sqlx::PgExecutor;
use uuid::Uuid;

pub async fn tags<'e, E: PgExecutor<'e>>(executor: E, host_id: Uuid) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "SELECT tag FROM host_tags WHERE host_id = $1 ORDER BY tag",
        host_id,
    )
    .fetch_all(executor)
    .await
}

/// Tags of many hosts at once: `(host_id, tag)` pairs.
pub async fn tags_of<'e, E: PgExecutor<'e>>(
    executor: E,
    host_ids: &[Uuid],
) -> sqlx::Result<Vec<(Uuid, String)>> {
    let rows = sqlx::query!(
        "SELECT host_id, tag FROM host_tags WHERE host_id = ANY($1) ORDER BY tag",
        host_ids,
    )
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().map(|r| (r.host_id, r.tag)).collect())
}

pub async fn add_tags<'e, E: PgExecutor<'e>>(
    executor: E,
    host_id: Uuid,
    tags: &[String],
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO host_tags (host_id, tag) SELECT $1, unnest($2::text[])
         ON CONFLICT DO NOTHING",
        host_id,
        tags,
    )
    .execute(executor)
    .await?;
    Ok(())
}

pub async fn remove_tag<'e, E: PgExecutor<'e>>(
    executor: E,
    host_id: Uuid,
    tag: &str,
) -> sqlx::Result<bool> {
    Ok(sqlx::query!(
        "DELETE FROM host_tags WHERE host_id = $1 AND tag = $2",
        host_id,
        tag,
    )
    .execute(executor)
    .await?
    .rows_affected()
        > 0)
}
