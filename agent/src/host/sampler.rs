//! Metrics sampler: every 0.5 s, one point per running capsule into its rings.
//!
//! envd's `/metrics` (measured inside the capsule) is the source; the runtime's stats
//! are the fallback. A capsule under a lifecycle operation is skipped, so a sample never
//! holds a host-backed connection open across a checkpoint.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Host;
use crate::capsules::{Capsule, State};
use crate::metrics::{Point, SAMPLE_MS};

pub async fn run(host: Arc<Host>) {
    let mut tick = tokio::time::interval(Duration::from_millis(SAMPLE_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = host.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let capsules = host.capsules.all();
        let samples = capsules.into_iter().map(|c| {
            let host = host.clone();
            async move { sample(&host, &c).await }
        });
        futures::future::join_all(samples).await;
    }
}

async fn sample(host: &Host, capsule: &Arc<Capsule>) {
    let Ok(_op) = capsule.op.try_lock() else {
        return;
    };
    if capsule.state() != State::Running {
        return;
    }
    let now = chrono::Utc::now().timestamp();
    let envd = capsule.envd();
    let point = match tokio::time::timeout(
        Duration::from_millis(400),
        envd.http("GET", "/metrics", None, Vec::new()),
    )
    .await
    {
        Ok(Ok(resp)) if resp.status == 200 => {
            let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
            Some(Point {
                timestamp_unix: now,
                cpu_pct: v["cpu_used_pct"].as_f64().unwrap_or(0.0),
                mem_bytes: v["mem_used"].as_u64().unwrap_or(0),
                disk_bytes: v["disk_used"].as_u64().unwrap_or(0),
            })
        }
        _ => None,
    };
    let point = match point {
        Some(p) => p,
        None => {
            let Ok(stats) = host.runtime.stats(&capsule.rid).await else {
                return;
            };
            let vcpus = capsule.lock().record.spec.vcpus.max(1) as f64;
            let mut prev = capsule.cpu_prev.lock().unwrap_or_else(|e| e.into_inner());
            let pct = match *prev {
                Some((ns, at)) if stats.cpu_ns >= ns => {
                    let wall = at.elapsed().as_nanos() as f64;
                    if wall > 0.0 {
                        (stats.cpu_ns - ns) as f64 / wall / vcpus * 100.0
                    } else {
                        0.0
                    }
                }
                _ => 0.0,
            };
            *prev = Some((stats.cpu_ns, Instant::now()));
            Point {
                timestamp_unix: now,
                cpu_pct: pct,
                mem_bytes: stats.mem_bytes,
                disk_bytes: stats.disk_bytes,
            }
        }
    };
    capsule
        .rings
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .record(point);
}
