//! Delivery of stream events to channels: the `wrenn-channels-v1` consumer and the retry queue.
//!
//! For each batch the [`Dispatcher`] loads the enabled channels of the batch's teams in one
//! query, makes the first attempt to every subscribed channel (many in flight at once),
//! records every attempt in one insert, queues a retry for each failure and only then lets the
//! consumer ack. A redelivered entry (the previous handler died mid-way) skips the channels
//! that already have a `delivered` record for it.
//!
//! Retries live in the Redis sorted set [`RETRY_QUEUE`], scored by due time. A worker claims
//! due jobs by pushing their score a lease into the future (one Lua script, so two control
//! planes never take the same job), attempts, and then removes the job or re-queues the next
//! attempt, all in one `MULTI`. A worker killed mid-attempt leaves the job to reappear when
//! its lease runs out: at-least-once, like the stream.

use super::{ChannelSettings, Channels, OpenChannel, SUBSCRIBABLE};
use crate::db;
use crate::db::channels::DeliveryRecord;
use crate::events::consumer::{BatchHandler, Consumer, ConsumerSettings, Delivery, HandleError};
use crate::events::Event;
use futures::stream::{self, StreamExt};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wrenn_extension_api::BackgroundWorker;

/// The consumer group of notification channels.
pub const GROUP: &str = "wrenn-channels-v1";
/// Sorted set of queued retries (score: due time in ms since the epoch).
pub const RETRY_QUEUE: &str = "wrenn:channels:retries";
/// How long a claimed retry is held before another worker may take it.
const LEASE: Duration = Duration::from_secs(60);

/// One queued retry.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RetryJob {
    /// Makes every queued attempt a distinct set member.
    job: Uuid,
    channel_id: Uuid,
    event_id: String,
    payload: String,
    /// The attempt this job makes (2 for the first retry).
    attempt: u32,
}

/// What became of a claimed retry job (short-lived, one per claimed job: the size gap
/// between the variants does not matter).
#[allow(clippy::large_enum_variant)]
enum RetryOutcome {
    /// Attempted (its record and the next job, if any), or nothing to attempt.
    Done(Option<(DeliveryRecord, Option<(u64, RetryJob)>)>),
    /// Not attempted (the database was away): stays queued, due again shortly.
    Keep,
}

/// The dispatcher: a [`BatchHandler`] for [`GROUP`] and the retry worker.
pub struct Dispatcher {
    channels: Arc<Channels>,
    db: PgPool,
    redis: ConnectionManager,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Dispatcher {
    /// `metrics` counts every delivery attempt.
    pub fn new(
        channels: Arc<Channels>,
        db: PgPool,
        redis: ConnectionManager,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            channels,
            db,
            redis,
            metrics,
        })
    }

    fn settings(&self) -> &ChannelSettings {
        &self.channels.settings
    }

    /// The stream consumer and the retry worker.
    pub fn workers(
        self: &Arc<Self>,
        client: redis::Client,
        consumer: ConsumerSettings,
    ) -> Vec<BackgroundWorker> {
        let retry = self.clone();
        vec![
            Consumer::new(client, GROUP, consumer, self.clone()).worker(),
            BackgroundWorker::new("channels:retries", move |token| retry.retry_loop(token)),
        ]
    }

    /// One attempt, turned into its record. `last` says whether a failure is final.
    async fn attempt_one(
        &self,
        channel: &OpenChannel,
        event: &Event,
        payload: &str,
        event_id: &str,
        attempt: u32,
    ) -> DeliveryRecord {
        let delivery_id = Uuid::new_v4();
        let a = self
            .channels
            .attempt(channel, event, payload, event_id, delivery_id)
            .await;
        let last = attempt as usize > self.settings().retry_delays.len();
        let status = match (a.ok(), last) {
            (true, _) => "delivered",
            (false, false) => "failed",
            (false, true) => "dropped",
        };
        if status == "dropped" {
            tracing::warn!(channel = %channel.id, event = %event.event, event_id, attempt,
                error = %a.error, "A delivery failed its last attempt; the event is dropped for this channel.");
        } else if status == "failed" {
            tracing::info!(channel = %channel.id, event = %event.event, event_id, attempt,
                error = %a.error, "A delivery failed; it will be retried.");
        }
        DeliveryRecord {
            channel_id: channel.id,
            event_id: event_id.to_string(),
            event: event.event.clone(),
            attempt: attempt as i32,
            delivery_id,
            status,
            http_status: a.status.map(i32::from),
            error: a.error,
            latency_ms: a.latency.as_millis().min(i32::MAX as u128) as i32,
        }
    }

    /// The retry job following a failed `record`, if one is left.
    fn next_retry(&self, record: &DeliveryRecord, payload: &str) -> Option<(u64, RetryJob)> {
        if record.status != "failed" {
            return None;
        }
        let delay = self
            .settings()
            .retry_delays
            .get(record.attempt as usize - 1)?;
        Some((
            now_ms() + delay.as_millis() as u64,
            RetryJob {
                job: Uuid::new_v4(),
                channel_id: record.channel_id,
                event_id: record.event_id.clone(),
                payload: payload.to_string(),
                attempt: record.attempt as u32 + 1,
            },
        ))
    }

    async fn record(&self, records: &[DeliveryRecord]) {
        for r in records {
            self.metrics.delivered(&r.event, r.status);
        }
        if let Err(e) = db::channels::record_deliveries(&self.db, records).await {
            tracing::warn!(error = %e, count = records.len(), "Recording delivery attempts failed.");
        }
    }

    async fn retry_loop(self: Arc<Self>, token: CancellationToken) {
        let mut last_prune = std::time::Instant::now() - Duration::from_secs(3600);
        while !token.is_cancelled() {
            match self.retry_round().await {
                Ok(0) => {}
                Ok(_) => continue,
                Err(e) => tracing::warn!(error = %e, "The channel retry queue is unavailable."),
            }
            if last_prune.elapsed() >= Duration::from_secs(3600) {
                last_prune = std::time::Instant::now();
                match db::channels::prune_deliveries(&self.db, self.settings().retention_days).await
                {
                    Ok(n) if n > 0 => tracing::debug!(count = n, "Old delivery records pruned."),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "Pruning delivery records failed."),
                }
            }
            tokio::select! {
                _ = token.cancelled() => {},
                _ = tokio::time::sleep(self.settings().retry_poll) => {},
            }
        }
    }

    /// Claims and runs the due retries; returns how many it ran.
    async fn retry_round(&self) -> redis::RedisResult<usize> {
        let mut redis = self.redis.clone();
        let now = now_ms();
        let claimed: Vec<String> = redis::Script::new(CLAIM_DUE)
            .key(RETRY_QUEUE)
            .arg(now)
            .arg(self.settings().concurrency)
            .arg(now + LEASE.as_millis() as u64)
            .invoke_async(&mut redis)
            .await?;
        let n = claimed.len();
        let results: Vec<(String, RetryOutcome)> = stream::iter(claimed)
            .map(|member| async move {
                let outcome = self.run_retry(&member).await;
                (member, outcome)
            })
            .buffer_unordered(self.settings().concurrency)
            .collect()
            .await;
        let records: Vec<DeliveryRecord> = results
            .iter()
            .filter_map(|(_, o)| match o {
                RetryOutcome::Done(Some((r, _))) => Some(r.clone()),
                _ => None,
            })
            .collect();
        self.record(&records).await;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (member, outcome) in &results {
            match outcome {
                RetryOutcome::Keep => {
                    let soon = now_ms() + 1000;
                    pipe.cmd("ZADD")
                        .arg(RETRY_QUEUE)
                        .arg("XX")
                        .arg(soon)
                        .arg(member)
                        .ignore();
                }
                RetryOutcome::Done(done) => {
                    pipe.cmd("ZREM").arg(RETRY_QUEUE).arg(member).ignore();
                    if let Some((_, Some((due, job)))) = done {
                        let json = serde_json::to_string(job).expect("retry jobs serialise");
                        pipe.cmd("ZADD")
                            .arg(RETRY_QUEUE)
                            .arg(*due)
                            .arg(json)
                            .ignore();
                    }
                }
            }
        }
        if n > 0 {
            let _: () = pipe.query_async(&mut redis).await?;
        }
        Ok(n)
    }

    /// Runs one claimed job.
    async fn run_retry(&self, member: &str) -> RetryOutcome {
        let Some((job, event)) = serde_json::from_str::<RetryJob>(member)
            .ok()
            .and_then(|job| Some((serde_json::from_str::<Event>(&job.payload).ok()?, job)))
            .map(|(event, job)| (job, event))
        else {
            tracing::error!("A malformed retry job is dropped.");
            return RetryOutcome::Done(None);
        };
        let row = match db::channels::get_any(&self.db, job.channel_id).await {
            Ok(Some(row)) if row.enabled => row,
            // Deleted or disabled since: nothing to deliver.
            Ok(_) => return RetryOutcome::Done(None),
            Err(e) => {
                tracing::warn!(error = %e, "Loading a channel for a retry failed; it stays queued.");
                return RetryOutcome::Keep;
            }
        };
        let channel = match self.channels.open(&row) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(channel = %row.id, error = %e, "A channel cannot be delivered to.");
                return RetryOutcome::Done(None);
            }
        };
        let record = self
            .attempt_one(&channel, &event, &job.payload, &job.event_id, job.attempt)
            .await;
        let next = self.next_retry(&record, &job.payload);
        RetryOutcome::Done(Some((record, next)))
    }
}

#[async_trait::async_trait]
impl BatchHandler for Dispatcher {
    async fn handle_batch(&self, batch: &[Delivery]) -> Vec<Result<(), HandleError>> {
        let wanted: Vec<usize> = (0..batch.len())
            .filter(|&i| SUBSCRIBABLE.contains(&batch[i].event.event.as_str()))
            .collect();
        let teams: Vec<Uuid> = wanted
            .iter()
            .filter_map(|&i| batch[i].event.team_uuid())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if teams.is_empty() {
            return batch.iter().map(|_| Ok(())).collect();
        }
        let rows = match db::channels::enabled_for_teams(&self.db, &teams).await {
            Ok(rows) => rows,
            Err(e) => {
                let e = format!("loading channels: {e}");
                return batch.iter().map(|_| Err(HandleError(e.clone()))).collect();
            }
        };
        let mut by_team: HashMap<Uuid, Vec<OpenChannel>> = HashMap::new();
        for row in &rows {
            match self.channels.open(row) {
                Ok(c) => by_team.entry(c.team_id).or_default().push(c),
                Err(e) => {
                    tracing::error!(channel = %row.id, error = %e, "A channel cannot be delivered to.")
                }
            }
        }
        // Channels a redelivered entry already reached.
        let redelivered: Vec<String> = wanted
            .iter()
            .filter(|&&i| batch[i].attempt > 1)
            .map(|&i| batch[i].id.clone())
            .collect();
        let done: HashSet<(String, Uuid)> = if redelivered.is_empty() {
            HashSet::new()
        } else {
            match db::channels::delivered(&self.db, &redelivered).await {
                Ok(pairs) => pairs.into_iter().collect(),
                Err(e) => {
                    let e = format!("loading earlier deliveries: {e}");
                    return batch.iter().map(|_| Err(HandleError(e.clone()))).collect();
                }
            }
        };
        let mut jobs: Vec<(usize, &OpenChannel)> = Vec::new();
        for &i in &wanted {
            let d = &batch[i];
            let Some(team) = d.event.team_uuid() else {
                continue;
            };
            for c in by_team.get(&team).into_iter().flatten() {
                if c.wants(&d.event.event) && !done.contains(&(d.id.clone(), c.id)) {
                    jobs.push((i, c));
                }
            }
        }
        // Futures built up front: a closure inside the stream combinator would have to be
        // general over the borrow's lifetime, which async-trait's boxed future cannot prove.
        let attempts: Vec<_> = jobs
            .into_iter()
            .map(|(i, c)| {
                let d = &batch[i];
                async move { (i, self.attempt_one(c, &d.event, &d.payload, &d.id, 1).await) }
            })
            .collect();
        let records: Vec<(usize, DeliveryRecord)> = stream::iter(attempts)
            .buffer_unordered(self.settings().concurrency)
            .collect()
            .await;
        let mut pipe = redis::pipe();
        let mut queued_for: HashSet<usize> = HashSet::new();
        for (i, r) in &records {
            if let Some((due, job)) = self.next_retry(r, &batch[*i].payload) {
                let json = serde_json::to_string(&job).expect("retry jobs serialise");
                pipe.cmd("ZADD")
                    .arg(RETRY_QUEUE)
                    .arg(due)
                    .arg(json)
                    .ignore();
                queued_for.insert(*i);
            }
        }
        let flat: Vec<DeliveryRecord> = records.into_iter().map(|(_, r)| r).collect();
        self.record(&flat).await;
        let queue_error = if queued_for.is_empty() {
            None
        } else {
            let mut redis = self.redis.clone();
            pipe.query_async::<()>(&mut redis)
                .await
                .err()
                .map(|e| format!("queueing retries: {e}"))
        };
        (0..batch.len())
            .map(|i| match &queue_error {
                Some(e) if queued_for.contains(&i) => Err(HandleError(e.clone())),
                _ => Ok(()),
            })
            .collect()
    }
}

/// Takes up to ARGV[2] jobs due by ARGV[1] and leases them until ARGV[3].
const CLAIM_DUE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[3], member)
end
return due
";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
