//! Capsule statistics: the sampler worker and the stats, usage and metrics queries.
//!
//! The sampler runs every `WRENN_STATS_INTERVAL_SEC`: for each team with running capsules it
//! writes a team stats sample (running count, reserved vCPUs and memory) and adds the
//! interval's reservation to the team's day (`cpu_minutes` = vCPU-minutes, `ram_mb_minutes` =
//! MiB-minutes). Metrics of running capsules come from the agent's rings; once a capsule
//! stopped running, from the points stored in the database.

use crate::app::App;
use crate::capsules::agent::{self, status_to_api};
use crate::capsules::state::CapsuleStatus;
use crate::db::capsules::{self as db, CapsuleRow};
use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;
use uuid::Uuid;
use wrenn_extension_api::{ids, ApiError, BackgroundWorker};
use wrenn_proto::hostagent::v1 as pb;

/// The stats sampler as a background worker.
pub fn sampler_worker(ctx: &App) -> BackgroundWorker {
    let ctx = ctx.clone();
    BackgroundWorker::new("capsule-stats-sampler", move |token| async move {
        let interval = Duration::from_secs(ctx.capsules.stats_interval_sec);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = ticker.tick() => {
                    if let Err(e) = sample(&ctx, interval).await {
                        tracing::warn!(error = %e, "Capsule stats sampling failed.");
                    }
                }
            }
        }
    })
}

/// Takes one sample of every team with running capsules, accounting `interval` of usage.
pub async fn sample(ctx: &App, interval: Duration) -> sqlx::Result<()> {
    let now = Utc::now();
    let minutes = interval.as_secs_f64() / 60.0;
    let mut tx = ctx.db().begin().await?;
    for r in db::running_reservations(&mut *tx).await? {
        db::insert_team_sample(
            &mut *tx,
            r.team_id,
            now,
            r.running_count,
            r.vcpus,
            r.memory_mb,
        )
        .await?;
        db::add_daily_usage(
            &mut *tx,
            r.team_id,
            now.date_naive(),
            r.vcpus as f64 * minutes,
            r.memory_mb as f64 * minutes,
        )
        .await?;
    }
    tx.commit().await
}

/// `range` of the stats endpoint.
pub fn stats_range(range: &str) -> Option<ChronoDuration> {
    Some(match range {
        "5m" => ChronoDuration::minutes(5),
        "1h" => ChronoDuration::hours(1),
        "6h" => ChronoDuration::hours(6),
        "24h" => ChronoDuration::hours(24),
        "30d" => ChronoDuration::days(30),
        _ => return None,
    })
}

/// What a team holds right now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatsCurrent {
    pub running_count: i64,
    pub vcpus_reserved: i64,
    pub memory_mb_reserved: i64,
    pub sampled_at: DateTime<Utc>,
}

/// Highest values over the range.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatsPeaks {
    pub running_count: i64,
    pub vcpus_reserved: i64,
    pub memory_mb_reserved: i64,
}

/// Time series over the range (at most [`MAX_POINTS`] buckets, each its maximum).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatsSeries {
    /// RFC 3339 bucket start times.
    pub labels: Vec<String>,
    pub running: Vec<i64>,
    pub vcpus: Vec<i64>,
    pub memory_mb: Vec<i64>,
}

/// `GET /v1/capsules/stats`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    pub range: String,
    pub current: StatsCurrent,
    pub peaks: StatsPeaks,
    pub series: StatsSeries,
}

/// Most buckets a stats series has.
pub const MAX_POINTS: usize = 120;

/// The team's stats over `range` (already validated).
pub async fn team_stats(
    ctx: &App,
    team_id: Uuid,
    range: &str,
    span: ChronoDuration,
) -> Result<Stats, ApiError> {
    let now = Utc::now();
    let (running, vcpus, memory) = db::team_running(ctx.db(), team_id).await?;
    let since = now - span;
    let samples = db::team_samples(ctx.db(), team_id, since).await?;
    let mut peaks = StatsPeaks {
        running_count: running,
        vcpus_reserved: vcpus,
        memory_mb_reserved: memory,
    };
    let bucket_ms = (span.num_milliseconds() / MAX_POINTS as i64).max(1);
    let mut series = StatsSeries {
        labels: vec![],
        running: vec![],
        vcpus: vec![],
        memory_mb: vec![],
    };
    let mut current_bucket: Option<i64> = None;
    for s in &samples {
        peaks.running_count = peaks.running_count.max(i64::from(s.running_count));
        peaks.vcpus_reserved = peaks.vcpus_reserved.max(i64::from(s.vcpus_reserved));
        peaks.memory_mb_reserved = peaks.memory_mb_reserved.max(s.memory_mb_reserved);
        let b = (s.sampled_at - since).num_milliseconds() / bucket_ms;
        if current_bucket != Some(b) {
            current_bucket = Some(b);
            let start = since + ChronoDuration::milliseconds(b * bucket_ms);
            series
                .labels
                .push(start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            series.running.push(0);
            series.vcpus.push(0);
            series.memory_mb.push(0);
        }
        let last = series.labels.len() - 1;
        series.running[last] = series.running[last].max(i64::from(s.running_count));
        series.vcpus[last] = series.vcpus[last].max(i64::from(s.vcpus_reserved));
        series.memory_mb[last] = series.memory_mb[last].max(s.memory_mb_reserved);
    }
    Ok(Stats {
        range: range.to_string(),
        current: StatsCurrent {
            running_count: running,
            vcpus_reserved: vcpus,
            memory_mb_reserved: memory,
            sampled_at: now,
        },
        peaks,
        series,
    })
}

/// One day of `GET /v1/capsules/usage`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UsagePoint {
    /// `YYYY-MM-DD` (UTC).
    pub date: NaiveDate,
    pub cpu_minutes: f64,
    pub ram_mb_minutes: f64,
}

/// `GET /v1/capsules/usage`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub points: Vec<UsagePoint>,
}

/// The team's usage per day in `[from, to]`; days without usage are included as zeros.
pub async fn team_usage(
    ctx: &App,
    team_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Usage, ApiError> {
    let rows = db::daily_usage(ctx.db(), team_id, from, to).await?;
    let mut points = Vec::new();
    let mut day = from;
    let mut it = rows.into_iter().peekable();
    while day <= to {
        let (cpu, ram) = match it.peek() {
            Some(r) if r.date == day => {
                let r = it.next().expect("peeked");
                (r.cpu_minutes, r.ram_mb_minutes)
            }
            _ => (0.0, 0.0),
        };
        points.push(UsagePoint {
            date: day,
            cpu_minutes: cpu,
            ram_mb_minutes: ram,
        });
        day = match day.succ_opt() {
            Some(d) => d,
            None => break,
        };
    }
    Ok(Usage { from, to, points })
}

/// `range` of the metrics endpoint and the stored tier that covers it.
pub fn metrics_range(range: &str) -> Option<(ChronoDuration, &'static str)> {
    Some(match range {
        "5m" => (ChronoDuration::minutes(5), "10m"),
        "10m" => (ChronoDuration::minutes(10), "10m"),
        "1h" => (ChronoDuration::hours(1), "2h"),
        "2h" => (ChronoDuration::hours(2), "2h"),
        "6h" => (ChronoDuration::hours(6), "24h"),
        "24h" => (ChronoDuration::hours(24), "24h"),
        _ => return None,
    })
}

/// A metric point as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MetricPoint {
    pub timestamp_unix: i64,
    pub cpu_pct: f64,
    pub mem_bytes: u64,
    pub disk_bytes: u64,
}

/// `GET /v1/capsules/{id}/metrics`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Metrics {
    pub sandbox_id: String,
    pub range: String,
    pub points: Vec<MetricPoint>,
}

/// A capsule's metrics over `range` (already validated): live from the agent while the
/// capsule is on a host, else the points the flush worker stored ([`super::metrics`]).
pub async fn capsule_metrics(
    ctx: &App,
    row: &CapsuleRow,
    range: &str,
) -> Result<Metrics, ApiError> {
    let (span, tier) = metrics_range(range).ok_or_else(|| ApiError::invalid("bad range"))?;
    let sandbox_id = ids::encode(ids::CAPSULE, row.id);
    let on_host = matches!(
        row.status(),
        CapsuleStatus::Running | CapsuleStatus::Paused | CapsuleStatus::Pausing
    );
    if let (true, Some(host)) = (on_host, row.host_id) {
        let mut client = agent::client(ctx, host).await?;
        let resp = client
            .get_sandbox_metrics(pb::GetSandboxMetricsRequest {
                sandbox_id: sandbox_id.clone(),
                range: range.to_string(),
            })
            .await
            .map_err(status_to_api)?
            .into_inner();
        return Ok(Metrics {
            sandbox_id,
            range: range.to_string(),
            points: resp
                .points
                .into_iter()
                .map(|p| MetricPoint {
                    timestamp_unix: p.timestamp_unix,
                    cpu_pct: p.cpu_pct,
                    mem_bytes: p.mem_bytes,
                    disk_bytes: p.disk_bytes,
                })
                .collect(),
        });
    }
    let points = db::metric_points(ctx.db(), row.id, tier, Utc::now() - span).await?;
    Ok(Metrics {
        sandbox_id,
        range: range.to_string(),
        points: points
            .into_iter()
            .map(|p| MetricPoint {
                timestamp_unix: p.ts.timestamp(),
                cpu_pct: p.cpu_pct,
                mem_bytes: p.mem_bytes.max(0) as u64,
                disk_bytes: p.disk_bytes.max(0) as u64,
            })
            .collect(),
    })
}
