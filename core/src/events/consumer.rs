//! The durable consumer runtime over [`STREAM`]: every reader of the event stream uses it.
//!
//! A [`Consumer`] belongs to a consumer group (created on start-up with `XGROUP CREATE ...
//! MKSTREAM`, idempotent) and has a name unique to this process, so several control planes on
//! one Redis share each group. Each round it
//! 1. claims entries that some consumer (a dead one, or itself after a handler error) left
//!    pending longer than [`ConsumerSettings::claim_idle`] (`XAUTOCLAIM`), then
//! 2. reads new entries (`XREADGROUP ... >`, in batches, blocking briefly),
//! 3. hands the batch to its [`BatchHandler`] and acks (`XACK`) exactly the entries whose
//!    handling finished. An entry whose handler failed stays pending and comes back through
//!    step 1, with its attempt count (Redis's delivery counter) one higher.
//!
//! So every entry is handled at least once, and one is lost only when it was handled
//! [`ConsumerSettings::max_attempts`] times without success (then it is logged and acked so a
//! poison entry cannot circulate forever). A malformed entry is logged and acked at once.
//!
//! On shutdown the consumer stops reading, lets the batch in hand finish and returns; what it
//! had not acked is claimed by another consumer (or itself, after a restart) later.

use super::{Event, PAYLOAD_FIELD, STREAM};
use redis::aio::ConnectionManager;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use wrenn_extension_api::BackgroundWorker;

/// Tunables of every consumer (configuration: [`crate::config::EventsConfig`]).
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Entries read per round.
    pub batch: usize,
    /// How long one `XREADGROUP` waits for new entries.
    pub block: Duration,
    /// A pending entry idle this long is claimed and handled again.
    pub claim_idle: Duration,
    /// After this many failed attempts an entry is logged and dropped (acked).
    pub max_attempts: u64,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            batch: 256,
            block: Duration::from_millis(500),
            claim_idle: Duration::from_secs(30),
            max_attempts: 100,
        }
    }
}

/// One stream entry handed to a handler.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The stream entry id (`1716128581000-0`): stable across redeliveries.
    pub id: String,
    /// 1 the first time this group sees the entry, then one more per redelivery.
    pub attempt: u64,
    pub event: Event,
    /// The payload exactly as published (webhooks send these bytes).
    pub payload: String,
}

/// Why a handler did not finish an entry (it stays pending and is redelivered).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HandleError(pub String);

/// Handles a batch of entries; returns one result per entry, in order. `Ok` entries are acked.
#[async_trait::async_trait]
pub trait BatchHandler: Send + Sync + 'static {
    async fn handle_batch(&self, batch: &[Delivery]) -> Vec<Result<(), HandleError>>;
}

/// A reader of [`STREAM`] in one consumer group.
pub struct Consumer {
    group: String,
    name: String,
    settings: ConsumerSettings,
    redis: redis::Client,
    handler: Arc<dyn BatchHandler>,
}

impl Consumer {
    /// A consumer of `group` with a process-unique name.
    pub fn new(
        redis: redis::Client,
        group: impl Into<String>,
        settings: ConsumerSettings,
        handler: Arc<dyn BatchHandler>,
    ) -> Self {
        let group = group.into();
        let name = format!(
            "{}-{}-{}",
            hostname(),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Self {
            group,
            name,
            settings,
            redis,
            handler,
        }
    }

    /// This consumer as a background worker named after its group.
    pub fn worker(self) -> BackgroundWorker {
        let name = format!("events:{}", self.group);
        BackgroundWorker::new(name, move |token| self.run(token))
    }

    /// Creates the group if it does not exist yet (new groups start at the stream's end).
    pub async fn ensure_group(
        redis: &mut ConnectionManager,
        group: &str,
    ) -> redis::RedisResult<()> {
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(STREAM)
            .arg(group)
            .arg("$")
            .arg("MKSTREAM")
            .query_async(redis)
            .await;
        match created {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") || e.to_string().contains("BUSYGROUP") => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Runs until `token` is cancelled. Redis errors are logged and retried with a back-off.
    pub async fn run(self, token: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut conn: Option<ConnectionManager> = None;
        while !token.is_cancelled() {
            let c = match &mut conn {
                Some(c) => c,
                None => match self.connect().await {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        tracing::warn!(group = %self.group, error = %e, "Event consumer cannot reach Redis; retrying.");
                        sleep_or_cancel(&token, backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                },
            };
            match self.round(c, &token).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(group = %self.group, error = %e, "Event consumer round failed; retrying.");
                    sleep_or_cancel(&token, backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        tracing::debug!(group = %self.group, consumer = %self.name, "Event consumer stopped.");
    }

    async fn connect(&self) -> redis::RedisResult<ConnectionManager> {
        // Its own connection: a blocking XREADGROUP must not hold up other commands.
        let mut c = ConnectionManager::new(self.redis.clone()).await?;
        Self::ensure_group(&mut c, &self.group).await?;
        Ok(c)
    }

    /// One claim + read + handle + ack round.
    async fn round(
        &self,
        conn: &mut ConnectionManager,
        token: &CancellationToken,
    ) -> redis::RedisResult<()> {
        let claimed = self.claim(conn).await?;
        self.process(conn, claimed).await?;
        let read = tokio::select! {
            _ = token.cancelled() => return Ok(()),
            r = self.read_new(conn) => r?,
        };
        self.process(conn, read).await
    }

    /// Entries pending longer than the idle threshold, with their attempt counts.
    async fn claim(&self, conn: &mut ConnectionManager) -> redis::RedisResult<Batch> {
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(STREAM)
            .arg(&self.group)
            .arg(&self.name)
            .arg(self.settings.claim_idle.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(self.settings.batch)
            .query_async(conn)
            .await?;
        if !reply.deleted_ids.is_empty() {
            // Trimmed out of the capped stream while pending: nothing left to handle.
            let mut ack = redis::cmd("XACK");
            ack.arg(STREAM).arg(&self.group).arg(&reply.deleted_ids);
            let _: i64 = ack.query_async(conn).await?;
            tracing::warn!(group = %self.group, count = reply.deleted_ids.len(),
                "Pending events were trimmed from the stream before they were handled.");
        }
        if reply.claimed.is_empty() {
            return Ok(Batch::default());
        }
        let counts = self.delivery_counts(conn, &reply.claimed).await?;
        let mut batch = Batch::default();
        for e in &reply.claimed {
            batch.push(self, e, counts.get(&e.id).copied().unwrap_or(2));
        }
        Ok(batch)
    }

    /// Redis's delivery counter of each claimed entry (its attempt number now).
    async fn delivery_counts(
        &self,
        conn: &mut ConnectionManager,
        entries: &[StreamId],
    ) -> redis::RedisResult<HashMap<String, u64>> {
        let first = &entries[0].id;
        let last = &entries[entries.len() - 1].id;
        let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
            .arg(STREAM)
            .arg(&self.group)
            .arg(first)
            .arg(last)
            .arg(entries.len())
            .arg(&self.name)
            .query_async(conn)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, _, _, count)| (id, count))
            .collect())
    }

    async fn read_new(&self, conn: &mut ConnectionManager) -> redis::RedisResult<Batch> {
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.group)
            .arg(&self.name)
            .arg("COUNT")
            .arg(self.settings.batch)
            .arg("BLOCK")
            .arg(self.settings.block.as_millis() as u64)
            .arg("STREAMS")
            .arg(STREAM)
            .arg(">")
            .query_async(conn)
            .await?;
        let mut batch = Batch::default();
        for e in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            batch.push(self, &e, 1);
        }
        Ok(batch)
    }

    /// Handles `batch`, acks what finished (and what exhausted its attempts, and what was
    /// malformed).
    async fn process(&self, conn: &mut ConnectionManager, batch: Batch) -> redis::RedisResult<()> {
        let Batch {
            deliveries,
            malformed,
        } = batch;
        let results = if deliveries.is_empty() {
            Vec::new()
        } else {
            self.handler.handle_batch(&deliveries).await
        };
        let mut ack: Vec<&str> = malformed.iter().map(String::as_str).collect();
        for (d, result) in deliveries.iter().zip(results) {
            match result {
                Ok(()) => ack.push(&d.id),
                Err(e) if d.attempt >= self.settings.max_attempts => {
                    tracing::error!(group = %self.group, id = %d.id, event = %d.event.event,
                        attempts = d.attempt, error = %e,
                        "An event failed every attempt and is dropped.");
                    ack.push(&d.id);
                }
                Err(e) => {
                    tracing::warn!(group = %self.group, id = %d.id, event = %d.event.event,
                        attempt = d.attempt, error = %e,
                        "Handling an event failed; it will be redelivered.");
                }
            }
        }
        if ack.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("XACK");
        cmd.arg(STREAM).arg(&self.group).arg(&ack);
        let _: i64 = cmd.query_async(conn).await?;
        Ok(())
    }
}

/// Entries read in one go: the well-formed ones, and the ids of malformed ones (acked unread).
#[derive(Default)]
struct Batch {
    deliveries: Vec<Delivery>,
    malformed: Vec<String>,
}

impl Batch {
    fn push(&mut self, consumer: &Consumer, entry: &StreamId, attempt: u64) {
        let payload = match entry.map.get(PAYLOAD_FIELD) {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            _ => String::new(),
        };
        match serde_json::from_str::<Event>(&payload) {
            Ok(event) => self.deliveries.push(Delivery {
                id: entry.id.clone(),
                attempt,
                event,
                payload,
            }),
            Err(e) => {
                tracing::error!(group = %consumer.group, id = %entry.id, error = %e,
                    "A malformed event entry is skipped.");
                self.malformed.push(entry.id.clone());
            }
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "wrenn-cp".into())
}

async fn sleep_or_cancel(token: &CancellationToken, d: Duration) {
    tokio::select! {
        _ = token.cancelled() => {},
        _ = tokio::time::sleep(d) => {},
    }
}
