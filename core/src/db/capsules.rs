//! Capsule rows: creation, guarded state transitions, team listings, usage counts and the
//! statistics tables (metric points, team stats samples, daily usage).

use crate::capsules::state::CapsuleStatus;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

/// A `capsules` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CapsuleRow {
    pub id: Uuid,
    pub team_id: Uuid,
    pub host_id: Option<Uuid>,
    pub template_id: Uuid,
    pub template_name: String,
    pub status: String,
    pub status_reason: String,
    pub vcpus: i32,
    pub memory_mb: i32,
    pub timeout_sec: i32,
    pub guest_ip: String,
    pub host_ip: String,
    pub access_token: String,
    pub metadata: serde_json::Value,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub last_active_at: Option<DateTime<Utc>>,
    pub last_updated: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    /// Egress policy (`capsules::model::NetworkPolicy` as JSON).
    pub network: serde_json::Value,
}

impl CapsuleRow {
    /// The row's status (an unknown value reads as `error`: the CHECK constraint forbids it).
    pub fn status(&self) -> CapsuleStatus {
        CapsuleStatus::parse(&self.status).unwrap_or(CapsuleStatus::Error)
    }
}

/// What `insert` needs.
#[derive(Debug, Clone)]
pub struct NewCapsule {
    pub id: Uuid,
    pub team_id: Uuid,
    pub template_id: Uuid,
    pub template_name: String,
    pub vcpus: i32,
    pub memory_mb: i32,
    pub timeout_sec: i32,
    pub access_token: String,
    pub created_by: Option<Uuid>,
    pub network: serde_json::Value,
}

const COLUMNS: &str = "id, team_id, host_id, template_id, template_name, status, status_reason, \
    vcpus, memory_mb, timeout_sec, guest_ip, host_ip, access_token, metadata, created_by, \
    created_at, started_at, last_active_at, last_updated, stopped_at, network";

fn statuses(list: &[CapsuleStatus]) -> Vec<String> {
    list.iter().map(|s| s.as_str().to_string()).collect()
}

/// Inserts a capsule in `pending`.
pub async fn insert(db: impl PgExecutor<'_>, new: &NewCapsule) -> sqlx::Result<CapsuleRow> {
    sqlx::query_as(&format!(
        "INSERT INTO capsules (id, team_id, template_id, template_name, status, vcpus, memory_mb, \
         timeout_sec, access_token, created_by, network) \
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
    ))
    .bind(new.id)
    .bind(new.team_id)
    .bind(new.template_id)
    .bind(&new.template_name)
    .bind(new.vcpus)
    .bind(new.memory_mb)
    .bind(new.timeout_sec)
    .bind(&new.access_token)
    .bind(new.created_by)
    .bind(&new.network)
    .fetch_one(db)
    .await
}

/// Records a capsule's egress policy.
pub async fn set_network(
    db: impl PgExecutor<'_>,
    id: Uuid,
    network: &serde_json::Value,
) -> sqlx::Result<Option<CapsuleRow>> {
    sqlx::query_as(&format!(
        "UPDATE capsules SET network = $2, last_updated = now() WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(network)
    .fetch_optional(db)
    .await
}

/// A capsule by id, whatever its team.
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<CapsuleRow>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM capsules WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// A capsule by id, only if it belongs to `team_id`.
pub async fn get_for_team(
    db: impl PgExecutor<'_>,
    id: Uuid,
    team_id: Uuid,
) -> sqlx::Result<Option<CapsuleRow>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM capsules WHERE id = $1 AND team_id = $2"
    ))
    .bind(id)
    .bind(team_id)
    .fetch_optional(db)
    .await
}

/// The team's capsules except stopped and errored ones, newest first.
pub async fn list_for_team(
    db: impl PgExecutor<'_>,
    team_id: Uuid,
) -> sqlx::Result<Vec<CapsuleRow>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM capsules WHERE team_id = $1 \
         AND status NOT IN ('stopped', 'error') ORDER BY created_at DESC, id"
    ))
    .bind(team_id)
    .fetch_all(db)
    .await
}

/// Moves a capsule to `to` only if it currently is in one of `from`; `None` when it was not
/// (someone else changed it first). `reason` replaces the status reason.
pub async fn transition(
    db: impl PgExecutor<'_>,
    id: Uuid,
    from: &[CapsuleStatus],
    to: CapsuleStatus,
    reason: &str,
) -> sqlx::Result<Option<CapsuleRow>> {
    sqlx::query_as(&format!(
        "UPDATE capsules SET status = $3, status_reason = $4, last_updated = now(), \
         stopped_at = CASE WHEN $3 = 'stopped' THEN now() ELSE stopped_at END \
         WHERE id = $1 AND status = ANY($2) RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(statuses(from))
    .bind(to.as_str())
    .bind(reason)
    .fetch_optional(db)
    .await
}

/// Records the host a `pending` capsule was placed on and moves it to `starting`.
pub async fn place(
    db: impl PgExecutor<'_>,
    id: Uuid,
    host_id: Uuid,
) -> sqlx::Result<Option<CapsuleRow>> {
    sqlx::query_as(&format!(
        "UPDATE capsules SET host_id = $2, status = 'starting', last_updated = now() \
         WHERE id = $1 AND status = 'pending' RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(host_id)
    .fetch_optional(db)
    .await
}

/// What the agent reported when a capsule started.
#[derive(Debug, Clone, Default)]
pub struct Started {
    pub guest_ip: String,
    pub host_ip: String,
    pub metadata: serde_json::Value,
}

/// `starting` → `running` with the agent's report.
pub async fn mark_started(
    db: impl PgExecutor<'_>,
    id: Uuid,
    started: &Started,
) -> sqlx::Result<Option<CapsuleRow>> {
    sqlx::query_as(&format!(
        "UPDATE capsules SET status = 'running', status_reason = '', guest_ip = $2, host_ip = $3, \
         metadata = $4, started_at = now(), last_active_at = now(), last_updated = now() \
         WHERE id = $1 AND status = 'starting' RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(&started.guest_ip)
    .bind(&started.host_ip)
    .bind(&started.metadata)
    .fetch_optional(db)
    .await
}

/// `resuming` → `running`, refreshing the metadata the agent reported.
pub async fn mark_resumed(
    db: impl PgExecutor<'_>,
    id: Uuid,
    metadata: Option<&serde_json::Value>,
) -> sqlx::Result<Option<CapsuleRow>> {
    sqlx::query_as(&format!(
        "UPDATE capsules SET status = 'running', status_reason = '', \
         metadata = COALESCE($2, metadata), last_active_at = now(), last_updated = now() \
         WHERE id = $1 AND status = 'resuming' RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(metadata)
    .fetch_optional(db)
    .await
}

/// Records activity (exec, streams, ping, proxy traffic).
pub async fn touch(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE capsules SET last_active_at = now() WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Capsules, vCPUs and memory a team holds (everything but stopped and error).
pub async fn team_usage(db: impl PgExecutor<'_>, team_id: Uuid) -> sqlx::Result<(i64, i64, i64)> {
    sqlx::query_as(
        "SELECT count(*), COALESCE(sum(vcpus), 0)::BIGINT, COALESCE(sum(memory_mb), 0)::BIGINT \
         FROM capsules WHERE team_id = $1 AND status NOT IN ('stopped', 'error')",
    )
    .bind(team_id)
    .fetch_one(db)
    .await
}

/// Per team: running capsules and the vCPUs / memory they reserve.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TeamReservation {
    pub team_id: Uuid,
    pub running_count: i64,
    pub vcpus: i64,
    pub memory_mb: i64,
}

/// Reservations of every team with running capsules.
pub async fn running_reservations(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<TeamReservation>> {
    sqlx::query_as(
        "SELECT team_id, count(*) AS running_count, COALESCE(sum(vcpus), 0)::BIGINT AS vcpus, \
         COALESCE(sum(memory_mb), 0)::BIGINT AS memory_mb FROM capsules \
         WHERE status = 'running' GROUP BY team_id",
    )
    .fetch_all(db)
    .await
}

/// Capsules of a host in one of `states` (for reconcilers and host deletion).
pub async fn list_on_host(
    db: impl PgExecutor<'_>,
    host_id: Uuid,
    states: &[CapsuleStatus],
) -> sqlx::Result<Vec<CapsuleRow>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM capsules WHERE host_id = $1 AND status = ANY($2)"
    ))
    .bind(host_id)
    .bind(statuses(states))
    .fetch_all(db)
    .await
}

// ------------------------------------------------------------------ statistics

/// Writes one team stats sample.
pub async fn insert_team_sample(
    db: impl PgExecutor<'_>,
    team_id: Uuid,
    at: DateTime<Utc>,
    running: i64,
    vcpus: i64,
    memory_mb: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO team_stats_samples (team_id, sampled_at, running_count, vcpus_reserved, \
         memory_mb_reserved) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(team_id)
    .bind(at)
    .bind(running as i32)
    .bind(vcpus as i32)
    .bind(memory_mb)
    .execute(db)
    .await?;
    Ok(())
}

/// A team stats sample.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TeamSample {
    pub sampled_at: DateTime<Utc>,
    pub running_count: i32,
    pub vcpus_reserved: i32,
    pub memory_mb_reserved: i64,
}

/// A team's samples since `since`, oldest first.
pub async fn team_samples(
    db: impl PgExecutor<'_>,
    team_id: Uuid,
    since: DateTime<Utc>,
) -> sqlx::Result<Vec<TeamSample>> {
    sqlx::query_as(
        "SELECT sampled_at, running_count, vcpus_reserved, memory_mb_reserved \
         FROM team_stats_samples WHERE team_id = $1 AND sampled_at >= $2 ORDER BY sampled_at",
    )
    .bind(team_id)
    .bind(since)
    .fetch_all(db)
    .await
}

/// Adds usage to a team's day.
pub async fn add_daily_usage(
    db: impl PgExecutor<'_>,
    team_id: Uuid,
    date: NaiveDate,
    cpu_minutes: f64,
    ram_mb_minutes: f64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO daily_usage (team_id, date, cpu_minutes, ram_mb_minutes) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (team_id, date) DO UPDATE SET \
         cpu_minutes = daily_usage.cpu_minutes + EXCLUDED.cpu_minutes, \
         ram_mb_minutes = daily_usage.ram_mb_minutes + EXCLUDED.ram_mb_minutes",
    )
    .bind(team_id)
    .bind(date)
    .bind(cpu_minutes)
    .bind(ram_mb_minutes)
    .execute(db)
    .await?;
    Ok(())
}

/// One day of usage.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DailyUsage {
    pub date: NaiveDate,
    pub cpu_minutes: f64,
    pub ram_mb_minutes: f64,
}

/// A team's days in `[from, to]`, oldest first.
pub async fn daily_usage(
    db: impl PgExecutor<'_>,
    team_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> sqlx::Result<Vec<DailyUsage>> {
    sqlx::query_as(
        "SELECT date, cpu_minutes, ram_mb_minutes FROM daily_usage \
         WHERE team_id = $1 AND date BETWEEN $2 AND $3 ORDER BY date",
    )
    .bind(team_id)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await
}

/// A stored metric point.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MetricPoint {
    pub ts: DateTime<Utc>,
    pub cpu_pct: f64,
    pub mem_bytes: i64,
    pub disk_bytes: i64,
}

/// Stored points of a capsule since `since`, oldest first.
pub async fn metric_points(
    db: impl PgExecutor<'_>,
    capsule_id: Uuid,
    tier: &str,
    since: DateTime<Utc>,
) -> sqlx::Result<Vec<MetricPoint>> {
    sqlx::query_as(
        "SELECT ts, cpu_pct, mem_bytes, disk_bytes FROM capsule_metric_points \
         WHERE capsule_id = $1 AND tier = $2 AND ts >= $3 ORDER BY ts",
    )
    .bind(capsule_id)
    .bind(tier)
    .bind(since)
    .fetch_all(db)
    .await
}
