//! Capsule rows: creation, guarded state transitions, team listings, usage counts and the
//! statistics tables (metric points, team stats samples, daily usage).

use crate::capsules::state::CapsuleStatus;
use crate::hosts::HostStatus;
use crate::http::paging::Page;
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
    pub status: CapsuleStatus,
    pub status_reason: String,
    pub vcpus: i32,
    pub memory_mb: i32,
    pub disk_mb: i32,
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
    /// The row's status.
    pub fn status(&self) -> CapsuleStatus {
        self.status
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
    pub disk_mb: i32,
    pub timeout_sec: i32,
    pub access_token: String,
    pub created_by: Option<Uuid>,
    pub network: serde_json::Value,
}

/// The row's columns for SQL built at run time ([`columns_of`]); the same list as
/// `capsule_rows!` (a missing one fails `FromRow` in the admin listing's tests).
const COLUMNS: &str = "id, team_id, host_id, template_id, template_name, status, status_reason, \
    vcpus, memory_mb, disk_mb, timeout_sec, guest_ip, host_ip, access_token, metadata, \
    created_by, created_at, started_at, last_active_at, last_updated, stopped_at, network";

/// A checked query (`sqlx::query_as!`) answering [`CapsuleRow`]s: `$before` the row's
/// columns, `$after` them, then the binds. The query macros take only string literals, so the
/// column list (with its status type) is written once, here.
macro_rules! capsule_rows {
    ($before:literal, $after:literal $($args:tt)*) => {
        sqlx::query_as!(
            CapsuleRow,
            $before
                + " id, team_id, host_id, template_id, template_name, \
                status AS \"status: CapsuleStatus\", status_reason, vcpus, memory_mb, disk_mb, \
                timeout_sec, guest_ip, host_ip, access_token, metadata, created_by, created_at, \
                started_at, last_active_at, last_updated, stopped_at, network "
                + $after
            $($args)*
        )
    };
}

/// Statuses that hold resources (every count of what a team uses).
fn holding() -> Vec<CapsuleStatus> {
    CapsuleStatus::all_where(CapsuleStatus::holds_resources)
}

/// Inserts a capsule in `pending`.
pub async fn insert(db: impl PgExecutor<'_>, new: &NewCapsule) -> sqlx::Result<CapsuleRow> {
    capsule_rows!(
        "INSERT INTO capsules (id, team_id, template_id, template_name, status, vcpus, memory_mb, \
         timeout_sec, access_token, created_by, network, disk_mb) \
         VALUES ($1, $2, $3, $4, $11, $5, $6, $7, $8, $9, $10, $12) RETURNING",
        "",
        new.id,
        new.team_id,
        new.template_id,
        new.template_name,
        new.vcpus,
        new.memory_mb,
        new.timeout_sec,
        new.access_token,
        new.created_by,
        new.network,
        CapsuleStatus::Pending as CapsuleStatus,
        new.disk_mb,
    )
    .fetch_one(db)
    .await
}

/// Records a capsule's egress policy.
pub async fn set_network(
    db: impl PgExecutor<'_>,
    id: Uuid,
    network: &serde_json::Value,
) -> sqlx::Result<Option<CapsuleRow>> {
    capsule_rows!(
        "UPDATE capsules SET network = $2, last_updated = now() WHERE id = $1 RETURNING",
        "",
        id,
        network,
    )
    .fetch_optional(db)
    .await
}

/// A capsule by id, whatever its team.
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<CapsuleRow>> {
    capsule_rows!("SELECT", "FROM capsules WHERE id = $1", id)
        .fetch_optional(db)
        .await
}

/// A capsule by id, only if it belongs to `team_id`.
pub async fn get_for_team(
    db: impl PgExecutor<'_>,
    id: Uuid,
    team_id: Uuid,
) -> sqlx::Result<Option<CapsuleRow>> {
    capsule_rows!(
        "SELECT",
        "FROM capsules WHERE id = $1 AND team_id = $2",
        id,
        team_id,
    )
    .fetch_optional(db)
    .await
}

/// The team's capsules except stopped and errored ones, newest first.
pub async fn list_for_team(
    db: impl PgExecutor<'_>,
    team_id: Uuid,
) -> sqlx::Result<Vec<CapsuleRow>> {
    capsule_rows!(
        "SELECT",
        "FROM capsules WHERE team_id = $1 AND status = ANY($2) ORDER BY created_at DESC, id",
        team_id,
        holding() as Vec<CapsuleStatus>,
    )
    .fetch_all(db)
    .await
}

/// One page of what `list_for_team` lists, newest first (`(created_at, id)` descending).
pub async fn page_for_team(
    db: impl PgExecutor<'_>,
    team_id: Uuid,
    page: Page,
) -> sqlx::Result<Vec<CapsuleRow>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM capsules WHERE team_id = $1 AND status = ANY($2) \
         AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4)) \
         ORDER BY created_at DESC, id DESC LIMIT $5"
    ))
    .bind(team_id)
    .bind(holding())
    .bind(page.after_time())
    .bind(page.after_id())
    .bind(page.fetch())
    .fetch_all(db)
    .await
}

/// Moves a capsule to `to` only if it currently is in one of `from`; `None` when it was not
/// (someone else changed it first). `reason` replaces the status reason.
///
/// This and [`transition_on_host`] are the one guarded status write every state change goes
/// through (the other writers, `place`, `mark_started`, `mark_resumed` and
/// `mark_missing_on_host`, are guarded the same way and also set the columns their step
/// fills in).
pub async fn transition(
    db: impl PgExecutor<'_>,
    id: Uuid,
    from: &[CapsuleStatus],
    to: CapsuleStatus,
    reason: &str,
) -> sqlx::Result<Option<CapsuleRow>> {
    guarded_write(db, id, None, from, to, reason).await
}

async fn guarded_write(
    db: impl PgExecutor<'_>,
    id: Uuid,
    host_id: Option<Uuid>,
    from: &[CapsuleStatus],
    to: CapsuleStatus,
    reason: &str,
) -> sqlx::Result<Option<CapsuleRow>> {
    capsule_rows!(
        "UPDATE capsules SET status = $3, status_reason = $4, last_updated = now(), \
         stopped_at = CASE WHEN $3 = $5 THEN now() ELSE stopped_at END \
         WHERE id = $1 AND status = ANY($2) AND ($6::uuid IS NULL OR host_id = $6) \
         RETURNING",
        "",
        id,
        from as &[CapsuleStatus],
        to as CapsuleStatus,
        reason,
        CapsuleStatus::Stopped as CapsuleStatus,
        host_id,
    )
    .fetch_optional(db)
    .await
}

/// Records the host a `pending` capsule was placed on and moves it to `starting`.
pub async fn place(
    db: impl PgExecutor<'_>,
    id: Uuid,
    host_id: Uuid,
) -> sqlx::Result<Option<CapsuleRow>> {
    capsule_rows!(
        "UPDATE capsules SET host_id = $2, status = $4, last_updated = now() \
         WHERE id = $1 AND status = $3 RETURNING",
        "",
        id,
        host_id,
        CapsuleStatus::Pending as CapsuleStatus,
        CapsuleStatus::Starting as CapsuleStatus,
    )
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
    capsule_rows!(
        "UPDATE capsules SET status = $6, status_reason = '', guest_ip = $2, host_ip = $3, \
         metadata = $4, started_at = now(), last_active_at = now(), last_updated = now() \
         WHERE id = $1 AND status = $5 RETURNING",
        "",
        id,
        started.guest_ip,
        started.host_ip,
        started.metadata,
        CapsuleStatus::Starting as CapsuleStatus,
        CapsuleStatus::Running as CapsuleStatus,
    )
    .fetch_optional(db)
    .await
}

/// `resuming` → `running`, refreshing the metadata the agent reported.
pub async fn mark_resumed(
    db: impl PgExecutor<'_>,
    id: Uuid,
    metadata: Option<&serde_json::Value>,
) -> sqlx::Result<Option<CapsuleRow>> {
    capsule_rows!(
        "UPDATE capsules SET status = $4, status_reason = '', \
         metadata = COALESCE($2, metadata), last_active_at = now(), last_updated = now() \
         WHERE id = $1 AND status = $3 RETURNING",
        "",
        id,
        metadata,
        CapsuleStatus::Resuming as CapsuleStatus,
        CapsuleStatus::Running as CapsuleStatus,
    )
    .fetch_optional(db)
    .await
}

/// Records activity (exec, streams, ping, proxy traffic).
pub async fn touch(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE capsules SET last_active_at = now() WHERE id = $1",
        id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Takes the team's admission lock for the rest of the transaction `conn` is in: creates of
/// one team are admitted one at a time (`capsules::admission`).
pub async fn lock_team_admission(conn: &mut sqlx::PgConnection, team_id: Uuid) -> sqlx::Result<()> {
    // Unchecked: the lock function returns `void`, which the query macros cannot type.
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('wrenn.admission:' || $1::text, 0))",
    )
    .bind(team_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Capsules, vCPUs and memory a team holds (everything but stopped and error).
pub async fn team_usage(db: impl PgExecutor<'_>, team_id: Uuid) -> sqlx::Result<(i64, i64, i64)> {
    let r = sqlx::query!(
        r#"SELECT count(*) AS "n!", COALESCE(sum(vcpus), 0)::BIGINT AS "vcpus!",
                  COALESCE(sum(memory_mb), 0)::BIGINT AS "memory_mb!"
           FROM capsules WHERE team_id = $1 AND status = ANY($2)"#,
        team_id,
        holding() as Vec<CapsuleStatus>,
    )
    .fetch_one(db)
    .await?;
    Ok((r.n, r.vcpus, r.memory_mb))
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
    sqlx::query_as!(
        TeamReservation,
        r#"SELECT team_id, count(*) AS "running_count!",
                  COALESCE(sum(vcpus), 0)::BIGINT AS "vcpus!",
                  COALESCE(sum(memory_mb), 0)::BIGINT AS "memory_mb!"
           FROM capsules WHERE status = $1 GROUP BY team_id"#,
        CapsuleStatus::Running as CapsuleStatus,
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
    capsule_rows!(
        "SELECT",
        "FROM capsules WHERE host_id = $1 AND status = ANY($2)",
        host_id,
        states as &[CapsuleStatus],
    )
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
    // The sample's columns are INT4; a team never holds 2^31 capsules or vCPUs.
    let (running, vcpus) = (running as i32, vcpus as i32);
    sqlx::query!(
        "INSERT INTO team_stats_samples (team_id, sampled_at, running_count, vcpus_reserved, \
         memory_mb_reserved) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        team_id,
        at,
        running,
        vcpus,
        memory_mb,
    )
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
    sqlx::query_as!(
        TeamSample,
        "SELECT sampled_at, running_count, vcpus_reserved, memory_mb_reserved \
         FROM team_stats_samples WHERE team_id = $1 AND sampled_at >= $2 ORDER BY sampled_at",
        team_id,
        since,
    )
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
    sqlx::query!(
        "INSERT INTO daily_usage (team_id, date, cpu_minutes, ram_mb_minutes) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (team_id, date) DO UPDATE SET \
         cpu_minutes = daily_usage.cpu_minutes + EXCLUDED.cpu_minutes, \
         ram_mb_minutes = daily_usage.ram_mb_minutes + EXCLUDED.ram_mb_minutes",
        team_id,
        date,
        cpu_minutes,
        ram_mb_minutes,
    )
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
    sqlx::query_as!(
        DailyUsage,
        "SELECT date, cpu_minutes, ram_mb_minutes FROM daily_usage \
         WHERE team_id = $1 AND date BETWEEN $2 AND $3 ORDER BY date",
        team_id,
        from,
        to,
    )
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
    sqlx::query_as!(
        MetricPoint,
        "SELECT ts, cpu_pct, mem_bytes, disk_bytes FROM capsule_metric_points \
         WHERE capsule_id = $1 AND tier = $2 AND ts >= $3 ORDER BY ts",
        capsule_id,
        tier,
        since,
    )
    .fetch_all(db)
    .await
}

// ------------------------------------------------------------------ capsules on hosts

/// Statuses of capsules that still exist on a host (live or paused).
fn on_host() -> Vec<CapsuleStatus> {
    CapsuleStatus::all_where(CapsuleStatus::on_host)
}

/// Ids of the capsules that still exist on a host (live or paused).
pub async fn live_on_host(db: impl PgExecutor<'_>, host_id: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM capsules WHERE host_id = $1 AND status = ANY($2) ORDER BY id",
        host_id,
        on_host() as Vec<CapsuleStatus>,
    )
    .fetch_all(db)
    .await
}

/// A capsule the host side changed: id, team and previous status.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CapsuleChange {
    pub id: Uuid,
    pub team_id: Uuid,
    pub previous: CapsuleStatus,
}

/// Marks a host's live capsules `missing` (its host went silent).
pub async fn mark_missing_on_host(
    db: impl PgExecutor<'_>,
    host_id: Uuid,
) -> sqlx::Result<Vec<CapsuleChange>> {
    sqlx::query_as!(
        CapsuleChange,
        r#"UPDATE capsules c SET status = $3, status_reason = 'host_unreachable',
                last_updated = now()
         FROM (SELECT id, status FROM capsules
               WHERE host_id = $1 AND status = ANY($2) FOR UPDATE) old
         WHERE c.id = old.id
         RETURNING c.id, c.team_id, old.status AS "previous!: CapsuleStatus""#,
        host_id,
        on_host() as Vec<CapsuleStatus>,
        CapsuleStatus::Missing as CapsuleStatus,
    )
    .fetch_all(db)
    .await
}

/// `missing` capsules of a host (candidates for reconciliation): id and team.
pub async fn missing_on_host(
    db: impl PgExecutor<'_>,
    host_id: Uuid,
) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
    let rows = sqlx::query!(
        "SELECT id, team_id FROM capsules WHERE host_id = $1 AND status = $2",
        host_id,
        CapsuleStatus::Missing as CapsuleStatus,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.team_id)).collect())
}

/// [`transition`] for the host side: only a capsule placed on `host_id` moves. Returns the
/// capsule's team when it changed.
pub async fn transition_on_host(
    db: impl PgExecutor<'_>,
    capsule_id: Uuid,
    host_id: Uuid,
    from: &[CapsuleStatus],
    to: CapsuleStatus,
    reason: &str,
) -> sqlx::Result<Option<Uuid>> {
    Ok(
        guarded_write(db, capsule_id, Some(host_id), from, to, reason)
            .await?
            .map(|row| row.team_id),
    )
}

/// Online hosts with at least one capsule in `missing` (to reconcile).
pub async fn online_hosts_with_missing(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT DISTINCT h.id FROM hosts h JOIN capsules c ON c.host_id = h.id
         WHERE h.status = $2 AND c.status = $1",
        CapsuleStatus::Missing as CapsuleStatus,
        HostStatus::Online as HostStatus,
    )
    .fetch_all(db)
    .await
}

/// Online hosts with capsules whose metrics are worth reading (started and not gone).
pub async fn online_hosts_with_metrics(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<Uuid>> {
    let started = CapsuleStatus::all_where(|s| {
        s.holds_resources() && !matches!(s, CapsuleStatus::Missing | CapsuleStatus::Pending)
    });
    // The join on `h.id` makes `c.host_id` non-null.
    sqlx::query_scalar!(
        r#"SELECT DISTINCT c.host_id AS "host_id!" FROM capsules c JOIN hosts h ON h.id = c.host_id
         WHERE h.status = $2 AND c.status = ANY($1)"#,
        started as Vec<CapsuleStatus>,
        HostStatus::Online as HostStatus,
    )
    .fetch_all(db)
    .await
}

/// Of `listed` (ids an agent runs), the capsules the control plane owns on `host_id`: not
/// stopped, and not in `error` after a create that never started or a failed destroy.
pub async fn owned_on_host(
    db: impl PgExecutor<'_>,
    listed: &[Uuid],
    host_id: Uuid,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM capsules WHERE id = ANY($1) AND host_id = $2 AND status <> $3 \
           AND NOT (status = $4 AND \
                    (started_at IS NULL OR status_reason LIKE 'destroy failed%'))",
        listed,
        host_id,
        CapsuleStatus::Stopped as CapsuleStatus,
        CapsuleStatus::Error as CapsuleStatus,
    )
    .fetch_all(db)
    .await
}

/// A team's running capsules and the vCPUs / memory they hold.
pub async fn team_running(db: impl PgExecutor<'_>, team_id: Uuid) -> sqlx::Result<(i64, i64, i64)> {
    let r = sqlx::query!(
        r#"SELECT count(*) AS "n!", COALESCE(sum(vcpus), 0)::BIGINT AS "vcpus!",
                  COALESCE(sum(memory_mb), 0)::BIGINT AS "memory_mb!"
           FROM capsules WHERE team_id = $1 AND status = $2"#,
        team_id,
        CapsuleStatus::Running as CapsuleStatus,
    )
    .fetch_one(db)
    .await?;
    Ok((r.n, r.vcpus, r.memory_mb))
}

// ------------------------------------------------------------------ metric points

/// Whether `capsule_id` is placed on `host_id` (an agent only writes its own capsules' data).
pub async fn is_on_host(
    db: impl PgExecutor<'_>,
    capsule_id: Uuid,
    host_id: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM capsules WHERE id = $1 AND host_id = $2) AS "on_host!""#,
        capsule_id,
        host_id,
    )
    .fetch_one(db)
    .await
}

/// Upserts bucket averages, merging with a stored piece of the same bucket by sample count.
pub async fn merge_points(
    e: impl PgExecutor<'_>,
    capsule_id: Uuid,
    tier: &str,
    points: &[(MetricPoint, i32)],
) -> sqlx::Result<()> {
    if points.is_empty() {
        return Ok(());
    }
    let ts: Vec<DateTime<Utc>> = points.iter().map(|(p, _)| p.ts).collect();
    let cpu: Vec<f64> = points.iter().map(|(p, _)| p.cpu_pct).collect();
    let mem: Vec<i64> = points.iter().map(|(p, _)| p.mem_bytes).collect();
    let disk: Vec<i64> = points.iter().map(|(p, _)| p.disk_bytes).collect();
    let n: Vec<i32> = points.iter().map(|(_, n)| *n).collect();
    sqlx::query!(
        "INSERT INTO capsule_metric_points AS p \
           (capsule_id, tier, ts, cpu_pct, mem_bytes, disk_bytes, samples) \
         SELECT $1, $2, * FROM UNNEST($3::timestamptz[], $4::float8[], $5::int8[], $6::int8[], \
                                      $7::int4[]) \
         ON CONFLICT (capsule_id, tier, ts) DO UPDATE SET \
           cpu_pct = (p.cpu_pct * p.samples + EXCLUDED.cpu_pct * EXCLUDED.samples) \
                     / (p.samples + EXCLUDED.samples), \
           mem_bytes = ((p.mem_bytes::float8 * p.samples + EXCLUDED.mem_bytes::float8 * EXCLUDED.samples) \
                     / (p.samples + EXCLUDED.samples))::int8, \
           disk_bytes = ((p.disk_bytes::float8 * p.samples + EXCLUDED.disk_bytes::float8 * EXCLUDED.samples) \
                     / (p.samples + EXCLUDED.samples))::int8, \
           samples = p.samples + EXCLUDED.samples",
        capsule_id,
        tier,
        &ts,
        &cpu,
        &mem,
        &disk,
        &n,
    )
    .execute(e)
    .await?;
    Ok(())
}

/// Deletes points past their tier's retention.
pub async fn prune_points(
    tiers: &[(&str, i64, std::time::Duration)],
    e: impl PgExecutor<'_> + Copy,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let mut deleted = 0;
    for &(tier, _, keep) in tiers {
        let cutoff = now - chrono::Duration::from_std(keep).unwrap_or_default();
        deleted += sqlx::query!(
            "DELETE FROM capsule_metric_points WHERE tier = $1 AND ts < $2",
            tier,
            cutoff,
        )
        .execute(e)
        .await?
        .rows_affected();
    }
    Ok(deleted)
}

/// The row's columns qualified by a table alias, for joins that read a [`CapsuleRow`].
pub fn columns_of(alias: &str) -> String {
    COLUMNS
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every capsule of the team that is not stopped (errored and transitional ones included).
pub async fn list_not_stopped(
    db: impl PgExecutor<'_>,
    team_id: Uuid,
) -> sqlx::Result<Vec<CapsuleRow>> {
    capsule_rows!(
        "SELECT",
        "FROM capsules WHERE team_id = $1 AND status <> $2 ORDER BY created_at",
        team_id,
        CapsuleStatus::Stopped as CapsuleStatus,
    )
    .fetch_all(db)
    .await
}

/// How many capsules are in each status (statuses without any are absent).
pub async fn count_by_status(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(CapsuleStatus, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT status AS "status: CapsuleStatus", count(*) AS "n!"
           FROM capsules GROUP BY status"#
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.status, r.n)).collect())
}
