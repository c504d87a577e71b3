//! `channels` and `channel_deliveries`.

use crate::http::paging::Page;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

/// A channel row (its secret still sealed).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Channel {
    pub id: Uuid,
    pub team_id: Uuid,
    pub name: String,
    pub provider: String,
    pub events: Vec<String>,
    pub config: Value,
    pub secret: Vec<u8>,
    pub enabled: bool,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A checked query (`sqlx::query_as!`) answering [`Channel`]s: `$before` the row's columns,
/// `$after` them, then the binds (the query macros take only string literals).
macro_rules! channel_rows {
    ($before:literal, $after:literal $($args:tt)*) => {
        sqlx::query_as!(
            Channel,
            $before
                + " id, team_id, name, provider, events, config, secret, enabled, created_by, \
                created_at, updated_at "
                + $after
            $($args)*
        )
    };
}

/// A new channel.
pub struct NewChannel<'a> {
    pub id: Uuid,
    pub team_id: Uuid,
    pub name: &'a str,
    pub provider: &'a str,
    pub events: &'a [String],
    pub config: &'a Value,
    pub secret: &'a [u8],
    pub created_by: Option<Uuid>,
}

pub async fn insert(e: impl PgExecutor<'_>, c: &NewChannel<'_>) -> sqlx::Result<Channel> {
    channel_rows!(
        "INSERT INTO channels (id, team_id, name, provider, events, config, secret, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING",
        "",
        c.id,
        c.team_id,
        c.name,
        c.provider,
        c.events,
        c.config,
        c.secret,
        c.created_by,
    )
    .fetch_one(e)
    .await
}

pub async fn count_for_team(e: impl PgExecutor<'_>, team_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM channels WHERE team_id = $1"#,
        team_id,
    )
    .fetch_one(e)
    .await
}

/// One page of the team's channels, newest first (`(created_at, id)` descending); `offset`
/// rows past the cursor are skipped (the older offset paging).
pub async fn page_for_team(
    e: impl PgExecutor<'_>,
    team_id: Uuid,
    page: Page,
    offset: i64,
) -> sqlx::Result<Vec<Channel>> {
    channel_rows!(
        "SELECT",
        "FROM channels WHERE team_id = $1 \
         AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3)) \
         ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5",
        team_id,
        page.after_time(),
        page.after_id(),
        page.fetch(),
        offset,
    )
    .fetch_all(e)
    .await
}

/// A channel of `team_id` (`None` for another team's).
pub async fn get(e: impl PgExecutor<'_>, team_id: Uuid, id: Uuid) -> sqlx::Result<Option<Channel>> {
    channel_rows!(
        "SELECT",
        "FROM channels WHERE team_id = $1 AND id = $2",
        team_id,
        id,
    )
    .fetch_optional(e)
    .await
}

/// A channel by id alone (the retry worker; teams were checked when it was queued).
pub async fn get_any(e: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<Channel>> {
    channel_rows!("SELECT", "FROM channels WHERE id = $1", id)
        .fetch_optional(e)
        .await
}

/// The enabled channels of these teams (the dispatcher's one query per batch).
pub async fn enabled_for_teams(
    e: impl PgExecutor<'_>,
    teams: &[Uuid],
) -> sqlx::Result<Vec<Channel>> {
    channel_rows!(
        "SELECT",
        "FROM channels WHERE team_id = ANY($1) AND enabled",
        teams,
    )
    .fetch_all(e)
    .await
}

/// Renames, resubscribes or enables/disables; `None` keeps a field.
pub async fn update(
    e: impl PgExecutor<'_>,
    team_id: Uuid,
    id: Uuid,
    name: Option<&str>,
    events: Option<&[String]>,
    enabled: Option<bool>,
) -> sqlx::Result<Option<Channel>> {
    channel_rows!(
        "UPDATE channels SET name = COALESCE($3, name), events = COALESCE($4, events), \
         enabled = COALESCE($5, enabled), updated_at = now() \
         WHERE team_id = $1 AND id = $2 RETURNING",
        "",
        team_id,
        id,
        name,
        events,
        enabled,
    )
    .fetch_optional(e)
    .await
}

/// Replaces the config and its sealed secret.
pub async fn replace_config(
    e: impl PgExecutor<'_>,
    team_id: Uuid,
    id: Uuid,
    config: &Value,
    secret: &[u8],
) -> sqlx::Result<Option<Channel>> {
    channel_rows!(
        "UPDATE channels SET config = $3, secret = $4, updated_at = now() \
         WHERE team_id = $1 AND id = $2 RETURNING",
        "",
        team_id,
        id,
        config,
        secret,
    )
    .fetch_optional(e)
    .await
}

pub async fn delete(e: impl PgExecutor<'_>, team_id: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "DELETE FROM channels WHERE team_id = $1 AND id = $2",
        team_id,
        id,
    )
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes every channel of a team (team deletion revokes its channels).
pub async fn delete_all_for_team(e: impl PgExecutor<'_>, team_id: Uuid) -> sqlx::Result<u64> {
    let done = sqlx::query!("DELETE FROM channels WHERE team_id = $1", team_id)
        .execute(e)
        .await?;
    Ok(done.rows_affected())
}

/// One delivery attempt to record.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub channel_id: Uuid,
    pub event_id: String,
    pub event: String,
    pub attempt: i32,
    pub delivery_id: Uuid,
    /// `delivered`, `failed` (a retry follows) or `dropped` (the last attempt failed).
    pub status: &'static str,
    pub http_status: Option<i32>,
    pub error: String,
    pub latency_ms: i32,
}

/// Records many attempts in one statement.
pub async fn record_deliveries(
    e: impl PgExecutor<'_>,
    records: &[DeliveryRecord],
) -> sqlx::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&DeliveryRecord) -> String| records.iter().map(f).collect::<Vec<_>>();
    let channel_ids: Vec<Uuid> = records.iter().map(|r| r.channel_id).collect();
    let attempts: Vec<i32> = records.iter().map(|r| r.attempt).collect();
    let delivery_ids: Vec<Uuid> = records.iter().map(|r| r.delivery_id).collect();
    // NULL elements: an attempt without an HTTP answer.
    let http_statuses: Vec<Option<i32>> = records.iter().map(|r| r.http_status).collect();
    let latencies: Vec<i32> = records.iter().map(|r| r.latency_ms).collect();
    sqlx::query!(
        "INSERT INTO channel_deliveries \
         (channel_id, event_id, event, attempt, delivery_id, status, http_status, error, latency_ms) \
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::int[], $5::uuid[], \
                              $6::text[], $7::int[], $8::text[], $9::int[])",
        &channel_ids,
        &col(|r| r.event_id.clone()),
        &col(|r| r.event.clone()),
        &attempts,
        &delivery_ids,
        &col(|r| r.status.to_string()),
        http_statuses as Vec<Option<i32>>,
        &col(|r| r.error.clone()),
        &latencies,
    )
    .execute(e)
    .await?;
    Ok(())
}

/// `(event_id, channel_id)` pairs already delivered, among these events (a redelivered
/// stream entry skips the channels it reached before).
pub async fn delivered(
    e: impl PgExecutor<'_>,
    event_ids: &[String],
) -> sqlx::Result<Vec<(String, Uuid)>> {
    let rows = sqlx::query!(
        "SELECT event_id, channel_id FROM channel_deliveries \
         WHERE status = 'delivered' AND event_id = ANY($1)",
        event_ids,
    )
    .fetch_all(e)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.event_id, r.channel_id))
        .collect())
}

/// A recorded attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub id: i64,
    pub channel_id: Uuid,
    pub event_id: String,
    pub event: String,
    pub attempt: i32,
    pub delivery_id: Uuid,
    pub status: String,
    pub http_status: Option<i32>,
    pub error: String,
    pub latency_ms: i32,
    pub created_at: DateTime<Utc>,
}

/// A channel's attempts, newest first; `before` pages by id.
pub async fn deliveries(
    e: impl PgExecutor<'_>,
    channel_id: Uuid,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<Delivery>> {
    sqlx::query_as!(
        Delivery,
        "SELECT id, channel_id, event_id, event, attempt, delivery_id, status, http_status, \
                error, latency_ms, created_at \
         FROM channel_deliveries WHERE channel_id = $1 AND ($2::bigint IS NULL OR id < $2) \
         ORDER BY id DESC LIMIT $3",
        channel_id,
        before,
        limit,
    )
    .fetch_all(e)
    .await
}

/// Forgets attempts older than `days`.
pub async fn prune_deliveries(e: impl PgExecutor<'_>, days: i64) -> sqlx::Result<u64> {
    let days = days as i32;
    let done = sqlx::query!(
        "DELETE FROM channel_deliveries WHERE created_at < now() - make_interval(days => $1::int)",
        days,
    )
    .execute(e)
    .await?;
    Ok(done.rows_affected())
}
