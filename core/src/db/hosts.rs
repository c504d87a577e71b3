//! `hosts` rows: creation, registration, heartbeats, liveness, deletion, and the load the
//! scheduler reads. One data area per submodule: [`tags`] (`host_tags`), [`tokens`]
//! (`host_registration_tokens`, `host_refresh_tokens`), [`byoc`] (`byoc_teams`), [`ca`]
//! (`internal_ca`); their functions are re-exported here.

use crate::capsules::state::CapsuleStatus;
use crate::hosts::HostStatus;
use crate::http::paging::Page;
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

mod byoc;
mod ca;
mod tags;
mod tokens;

pub use byoc::*;
pub use ca::*;
pub use tags::*;
pub use tokens::*;

/// A host row (tags are read separately).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HostRow {
    pub id: Uuid,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub team_id: Option<Uuid>,
    pub provider: Option<String>,
    pub availability_zone: Option<String>,
    pub status: HostStatus,
    pub arch: Option<String>,
    pub cpu_cores: Option<i32>,
    pub memory_mb: Option<i64>,
    pub disk_gb: Option<i64>,
    pub address: Option<String>,
    pub capabilities: serde_json::Value,
    pub transport: String,
    pub agent_version: Option<String>,
    pub cert_fingerprint: Option<String>,
    pub cert_expires_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub registered_at: Option<DateTime<Utc>>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// The last heartbeat's `HostLoad`, and when it arrived.
    pub load: Option<serde_json::Value>,
    pub load_at: Option<DateTime<Utc>>,
}

/// A checked query (`sqlx::query_as!`) answering [`HostRow`]s: `$before` the row's columns,
/// `$after` them, then the binds (the query macros take only string literals).
macro_rules! host_rows {
    ($before:literal, $after:literal $($args:tt)*) => {
        sqlx::query_as!(
            HostRow,
            $before
                + r#" id, type AS kind, team_id, provider, availability_zone,
                status AS "status: HostStatus", arch, cpu_cores, memory_mb, disk_gb, address,
                capabilities, transport, agent_version, cert_fingerprint, cert_expires_at,
                created_by, created_at, registered_at, last_heartbeat_at, load, load_at "#
                + $after
            $($args)*
        )
    };
}

/// A host to create (status `pending`).
#[derive(Debug, Clone)]
pub struct NewHost {
    pub kind: String,
    pub team_id: Option<Uuid>,
    pub provider: Option<String>,
    pub availability_zone: Option<String>,
    pub created_by: Option<Uuid>,
}

pub async fn insert<'e, E: PgExecutor<'e>>(executor: E, host: &NewHost) -> sqlx::Result<HostRow> {
    host_rows!(
        "INSERT INTO hosts (id, type, team_id, provider, availability_zone, created_by)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING",
        "",
        Uuid::new_v4(),
        host.kind,
        host.team_id,
        host.provider,
        host.availability_zone,
        host.created_by,
    )
    .fetch_one(executor)
    .await
}

/// A host that is not deleted.
pub async fn get<'e, E: PgExecutor<'e>>(executor: E, id: Uuid) -> sqlx::Result<Option<HostRow>> {
    host_rows!(
        "SELECT",
        "FROM hosts WHERE id = $1 AND status <> $2",
        id,
        HostStatus::Deleted as HostStatus,
    )
    .fetch_optional(executor)
    .await
}

/// Ids of the hosts in one of `statuses`.
pub async fn ids_in<'e, E: PgExecutor<'e>>(
    executor: E,
    statuses: &[HostStatus],
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM hosts WHERE status = ANY($1) ORDER BY id",
        statuses as &[HostStatus],
    )
    .fetch_all(executor)
    .await
}

/// One page of the hosts that are not deleted: all of them (`team = None`) or one team's
/// BYOC hosts; oldest first (`(created_at, id)` ascending, the order the listing always had).
pub async fn list<'e, E: PgExecutor<'e>>(
    executor: E,
    team: Option<Uuid>,
    page: Page,
) -> sqlx::Result<Vec<HostRow>> {
    host_rows!(
        "SELECT",
        "FROM hosts
         WHERE status <> $2 AND ($1::uuid IS NULL OR team_id = $1)
         AND ($3::timestamptz IS NULL OR (created_at, id) > ($3, $4))
         ORDER BY created_at, id LIMIT $5",
        team,
        HostStatus::Deleted as HostStatus,
        page.after_time(),
        page.after_id(),
        page.fetch(),
    )
    .fetch_all(executor)
    .await
}

/// What a registering agent reports.
#[derive(Debug, Clone)]
pub struct Registration {
    pub arch: String,
    pub cpu_cores: i32,
    pub memory_mb: i64,
    pub disk_gb: i64,
    pub address: String,
    pub capabilities: serde_json::Value,
    pub transport: String,
    pub agent_version: Option<String>,
}

/// Fills in a pending host and brings it online.
pub async fn mark_registered<'e, E: PgExecutor<'e>>(
    executor: E,
    id: Uuid,
    reg: &Registration,
) -> sqlx::Result<HostRow> {
    host_rows!(
        "UPDATE hosts SET arch = $2, cpu_cores = $3, memory_mb = $4, disk_gb = $5, address = $6,
                capabilities = $7, transport = $8, agent_version = $9, status = $10,
                registered_at = now(), last_heartbeat_at = now()
         WHERE id = $1 RETURNING",
        "",
        id,
        reg.arch,
        reg.cpu_cores,
        reg.memory_mb,
        reg.disk_gb,
        reg.address,
        reg.capabilities,
        reg.transport,
        reg.agent_version,
        HostStatus::Online as HostStatus,
    )
    .fetch_one(executor)
    .await
}

pub async fn set_cert<'e, E: PgExecutor<'e>>(
    executor: E,
    id: Uuid,
    fingerprint: &str,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE hosts SET cert_fingerprint = $2, cert_expires_at = $3 WHERE id = $1",
        id,
        fingerprint,
        expires_at,
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// Records a heartbeat. Returns the status the host had before (`None`: no such live host).
/// A heartbeat brings an `unreachable` host back `online`.
pub async fn heartbeat<'e, E: PgExecutor<'e>>(
    executor: E,
    id: Uuid,
    agent_version: Option<&str>,
    capabilities: Option<&serde_json::Value>,
    load: Option<&serde_json::Value>,
) -> sqlx::Result<Option<HostStatus>> {
    let gone = [HostStatus::Deleted, HostStatus::Pending];
    sqlx::query_scalar!(
        r#"UPDATE hosts h SET last_heartbeat_at = now(),
                status = CASE WHEN h.status = $4 THEN $5 ELSE h.status END,
                agent_version = COALESCE($2, h.agent_version),
                capabilities = COALESCE($3, h.capabilities),
                load = COALESCE($7, h.load),
                load_at = CASE WHEN $7::jsonb IS NULL THEN h.load_at ELSE now() END
         FROM (SELECT id, status FROM hosts WHERE id = $1 FOR UPDATE) old
         WHERE h.id = old.id AND NOT (h.status = ANY($6))
         RETURNING old.status AS "status!: HostStatus""#,
        id,
        agent_version,
        capabilities,
        HostStatus::Unreachable as HostStatus,
        HostStatus::Online as HostStatus,
        &gone[..] as &[HostStatus],
        load,
    )
    .fetch_optional(executor)
    .await
}

/// Marks `online` hosts silent for longer than `silence` as `unreachable`; returns them.
pub async fn mark_silent_unreachable<'e, E: PgExecutor<'e>>(
    executor: E,
    silence: std::time::Duration,
) -> sqlx::Result<Vec<HostRow>> {
    let silence = silence.as_secs_f64();
    host_rows!(
        "UPDATE hosts SET status = $2
         WHERE status = $3
           AND COALESCE(last_heartbeat_at, registered_at, created_at)
               < now() - make_interval(secs => $1)
         RETURNING",
        "",
        silence,
        HostStatus::Unreachable as HostStatus,
        HostStatus::Online as HostStatus,
    )
    .fetch_all(executor)
    .await
}

/// Soft-deletes a host and revokes its refresh and registration tokens.
pub async fn soft_delete(conn: &mut sqlx::PgConnection, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE hosts SET status = $2, deleted_at = now()
         WHERE id = $1 AND status <> $2",
        id,
        HostStatus::Deleted as HostStatus,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected()
        > 0;
    sqlx::query!(
        "UPDATE host_refresh_tokens SET revoked_at = now()
         WHERE host_id = $1 AND revoked_at IS NULL",
        id,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "DELETE FROM host_registration_tokens WHERE host_id = $1 AND used_at IS NULL",
        id,
    )
    .execute(&mut *conn)
    .await?;
    Ok(done)
}

/// The online hosts with their load, for the scheduler.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HostLoad {
    pub id: Uuid,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub team_id: Option<Uuid>,
    pub cpu_cores: Option<i32>,
    pub memory_mb: Option<i64>,
    pub capabilities: serde_json::Value,
    pub active_vcpus: i64,
    pub active_memory_mb: i64,
    pub paused_vcpus: i64,
    pub paused_memory_mb: i64,
    pub capsule_count: i64,
    /// What the host's warm pools hold at full size (from its last reported load).
    pub pool_vcpus: i64,
    pub pool_memory_mb: i64,
    /// Its warm pools as last reported (`wrenn_proto::host_http::PoolLoad`s; `[]` if none).
    pub pools: serde_json::Value,
}

pub async fn online_hosts_with_load<'e, E: PgExecutor<'e>>(
    executor: E,
) -> sqlx::Result<Vec<HostLoad>> {
    let occupying = CapsuleStatus::all_where(CapsuleStatus::occupies_host);
    sqlx::query_as!(
        HostLoad,
        r#"SELECT h.id, h.type AS kind, h.team_id, h.cpu_cores, h.memory_mb, h.capabilities,
                COALESCE(SUM(c.vcpus) FILTER (WHERE c.status = ANY($1)), 0)::bigint
                    AS "active_vcpus!",
                COALESCE(SUM(c.memory_mb) FILTER (WHERE c.status = ANY($1)), 0)::bigint
                    AS "active_memory_mb!",
                COALESCE(SUM(c.vcpus) FILTER (WHERE c.status = $2), 0)::bigint
                    AS "paused_vcpus!",
                COALESCE(SUM(c.memory_mb) FILTER (WHERE c.status = $2), 0)::bigint
                    AS "paused_memory_mb!",
                COUNT(c.host_id) FILTER (WHERE c.status = ANY($1) OR c.status = $2)
                    AS "capsule_count!",
                COALESCE((h.load->>'pool_vcpus')::bigint, 0) AS "pool_vcpus!",
                COALESCE((h.load->>'pool_memory_mb')::bigint, 0) AS "pool_memory_mb!",
                COALESCE(h.load->'pools', '[]'::jsonb) AS "pools!"
         FROM hosts h LEFT JOIN capsules c ON c.host_id = h.id
         WHERE h.status = $3
         GROUP BY h.id
         ORDER BY h.id"#,
        occupying as Vec<CapsuleStatus>,
        CapsuleStatus::Paused as CapsuleStatus,
        HostStatus::Online as HostStatus,
    )
    .fetch_all(executor)
    .await
}

/// How many hosts are in each status (statuses without any are absent).
pub async fn count_by_status(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(HostStatus, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT status AS "status: HostStatus", count(*) AS "n!" FROM hosts GROUP BY status"#
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.status, r.n)).collect())
}
