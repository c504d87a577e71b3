//! Metric history: the flush worker.
//!
//! Every `WRENN_METRICS_FLUSH_SEC` (60 s) the worker calls `FlushSandboxMetrics` on each online
//! host with capsules and stores what the agents gathered since the previous flush, so a
//! capsule's history outlives the capsule and the agent's rings. Points are kept at three
//! resolutions, the tiers of `GET /v1/capsules/{id}/metrics`: `10m` (one point per second),
//! `2h` (30 s buckets) and `24h` (5 min buckets). A bucket flushed in two pieces merges into
//! the exact average (each stored point counts its samples). Old points are pruned: `10m`
//! after 1 h, `2h` after 1 day, `24h` after 7 days. Destroying a capsule flushes its last
//! points first ([`flush_capsule`]).

use crate::app::App;
use crate::capsules::agent;
use crate::db::capsules::MetricPoint;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;
use wrenn_extension_api::{ids, BackgroundWorker};
use wrenn_proto::hostagent::v1 as pb;

/// The tiers: name, bucket width in seconds, retention.
const TIERS: [(&str, i64, Duration); 3] = [
    ("10m", 1, Duration::from_secs(3600)),
    ("2h", 30, Duration::from_secs(86_400)),
    ("24h", 300, Duration::from_secs(7 * 86_400)),
];

/// The flush worker.
pub fn flush_worker(ctx: &App) -> BackgroundWorker {
    let ctx = ctx.clone();
    BackgroundWorker::new("capsule-metrics-flush", move |token| async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(ctx.capsules.metrics_flush_sec));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await; // Nothing to flush at start-up.
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = ticker.tick() => {
                    if let Err(e) = flush_all(&ctx).await {
                        tracing::warn!(error = %e, "Flushing capsule metrics failed.");
                    }
                }
            }
        }
    })
}

/// One pass: flushes every online host with capsules on it and prunes old points. Returns how
/// many points (of the finest tier) were stored.
pub async fn flush_all(ctx: &App) -> sqlx::Result<usize> {
    let hosts = crate::db::capsules::online_hosts_with_metrics(ctx.db()).await?;
    let mut stored = 0;
    for host in hosts {
        match flush_host(ctx, host, "").await {
            Ok(n) => stored += n,
            Err(e) => tracing::debug!(host_id = %host, error = %e, "Metrics flush skipped a host."),
        }
    }
    crate::db::capsules::prune_points(&TIERS, ctx.db(), Utc::now()).await?;
    Ok(stored)
}

/// Flushes one capsule's points (best effort, before it is destroyed).
pub async fn flush_capsule(ctx: &App, host_id: Uuid, capsule_id: Uuid) {
    let wire = ids::encode(ids::CAPSULE, capsule_id);
    match tokio::time::timeout(Duration::from_secs(2), flush_host(ctx, host_id, &wire)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::debug!(capsule_id = %capsule_id, error = %e, "Final metrics flush failed.")
        }
        Err(_) => tracing::debug!(capsule_id = %capsule_id, "Final metrics flush timed out."),
    }
}

async fn flush_host(ctx: &App, host_id: Uuid, sandbox_id: &str) -> anyhow::Result<usize> {
    let mut client = agent::client(ctx, host_id)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let resp = client
        .flush_sandbox_metrics(pb::FlushSandboxMetricsRequest {
            sandbox_id: sandbox_id.to_string(),
        })
        .await?
        .into_inner();
    let mut stored = 0;
    for sandbox in resp.sandboxes {
        let Some(capsule_id) = ids::decode(ids::CAPSULE, &sandbox.sandbox_id) else {
            continue;
        };
        // Only capsules this host is known to run (an agent cannot write another's history).
        let ours = crate::db::capsules::is_on_host(ctx.db(), capsule_id, host_id).await?;
        if !ours || sandbox.points.is_empty() {
            continue;
        }
        let mut tx = ctx.db().begin().await?;
        for (tier, width, _) in TIERS {
            let buckets = bucket(&sandbox.points, width);
            if tier == "10m" {
                stored += buckets.len();
            }
            crate::db::capsules::merge_points(&mut *tx, capsule_id, tier, &buckets).await?;
        }
        tx.commit().await?;
    }
    Ok(stored)
}

/// Averages `points` into buckets `width` seconds wide, each stamped with its start and
/// carrying its sample count.
fn bucket(points: &[pb::MetricPoint], width: i64) -> Vec<(MetricPoint, i32)> {
    let mut sums: BTreeMap<i64, (f64, f64, f64, i32)> = BTreeMap::new();
    for p in points {
        let start = p.timestamp_unix.div_euclid(width) * width;
        let e = sums.entry(start).or_default();
        e.0 += p.cpu_pct;
        e.1 += p.mem_bytes as f64;
        e.2 += p.disk_bytes as f64;
        e.3 += 1;
    }
    sums.into_iter()
        .filter_map(|(start, (cpu, mem, disk, n))| {
            let d = f64::from(n);
            Some((
                MetricPoint {
                    ts: DateTime::from_timestamp(start, 0)?,
                    cpu_pct: cpu / d,
                    mem_bytes: (mem / d) as i64,
                    disk_bytes: (disk / d) as i64,
                },
                n,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(t: i64, cpu: f64, mem: u64) -> pb::MetricPoint {
        pb::MetricPoint {
            timestamp_unix: t,
            cpu_pct: cpu,
            mem_bytes: mem,
            disk_bytes: 0,
        }
    }

    #[test]
    fn buckets_average_and_count_their_samples() {
        let points = [
            pt(60, 10.0, 100),
            pt(60, 30.0, 300),
            pt(89, 20.0, 200),
            pt(90, 50.0, 0),
        ];
        let b = bucket(&points, 30);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].0.ts.timestamp(), 60);
        assert_eq!(b[0].1, 3);
        assert!((b[0].0.cpu_pct - 20.0).abs() < 1e-9);
        assert_eq!(b[0].0.mem_bytes, 200);
        assert_eq!(b[1].0.ts.timestamp(), 90);
        assert_eq!(b[1].1, 1);
        let per_second = bucket(&points, 1);
        assert_eq!(
            per_second.len(),
            3,
            "two samples in one second are one point"
        );
    }
}
