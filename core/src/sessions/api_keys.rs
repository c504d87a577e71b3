//! A short-lived, bounded, in-process cache of verified API keys, so that an API-key request
//! does not spend a PostgreSQL query on authentication (B7 in BENCHMARKS.md).
//!
//! Revocation stays immediate on this control plane and near-immediate on the others:
//!
//! - A revoking handler calls [`SessionService::api_keys_revoked`] once its transaction has
//!   committed. Core's implementation forgets the team's keys here, then publishes the team id
//!   on [`REVOKED_CHANNEL`]; every control plane sharing the Redis server forgets them when the
//!   message arrives (a few milliseconds).
//! - The cache is only consulted while this process holds that subscription
//!   ([`revocation_worker`]); it is emptied each time the subscription is (re)established, since
//!   messages sent while it was down are lost.
//! - Each entry lives [`TTL`] at most. That bounds the window left by the failures
//!   pub/sub cannot see: a message lost on a connection that broke without the subscriber
//!   noticing yet, or a publish that failed because Redis was unreachable. Then another
//!   control plane may still accept a revoked key for up to [`TTL`]. The same bound holds,
//!   on every control plane, if a revoking request is dropped (client gone) after its
//!   transaction committed but before it announced the revocation.
//! - A lookup that read the database before a revocation cannot put its stale answer in the
//!   cache afterwards: every revocation advances a generation, and a lookup only stores its
//!   result if the generation it started under is still current.
//!
//! Unknown and revoked keys are never cached: they go to the database every time, as before.
//! `last_used` is written by the database lookup (at most once a minute per key), so with the
//! cache it lags by up to a minute plus [`TTL`].
//!
//! [`SessionService::api_keys_revoked`]: wrenn_extension_api::SessionService::api_keys_revoked

use crate::app::App;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use wrenn_extension_api::{ApiKeyPrincipal, BackgroundWorker};

/// How long a verified key is trusted without asking the database again.
pub const TTL: Duration = Duration::from_secs(5);
/// At most this many keys are cached; past it, new keys are simply not cached.
pub const CAPACITY: usize = 10_000;
/// Redis pub/sub channel carrying the id of a team whose keys were revoked.
pub const REVOKED_CHANNEL: &str = "wrenn:api-keys:revoked";

/// SHA-256 of a key.
pub type KeyHash = [u8; 32];

struct Entry {
    principal: ApiKeyPrincipal,
    expires_at: Instant,
}

#[derive(Default)]
struct Entries {
    by_hash: HashMap<KeyHash, Entry>,
    /// Advanced by every revocation and every (re)subscription.
    generation: u64,
}

/// The cache. Core keeps one per process, shared by [`super::Sessions`] and the
/// [`revocation_worker`].
pub struct ApiKeyCache {
    entries: Mutex<Entries>,
    /// Whether the revocation subscription is up (the cache is bypassed otherwise).
    subscribed: AtomicBool,
    client: Option<redis::Client>,
}

/// What a lookup started under; hand it back to [`ApiKeyCache::store`].
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl ApiKeyCache {
    /// A cache listening for revocations through `client` (once [`revocation_worker`] runs).
    pub fn new(client: redis::Client) -> Arc<Self> {
        Arc::new(Self {
            entries: Mutex::default(),
            subscribed: AtomicBool::new(false),
            client: Some(client),
        })
    }

    /// A cache that is never consulted (no revocation subscription can ever be held).
    pub fn disabled() -> Arc<Self> {
        Arc::new(Self {
            entries: Mutex::default(),
            subscribed: AtomicBool::new(false),
            client: None,
        })
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The map holds no invariant a panicking holder could break half-way.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether lookups use the cache right now.
    pub fn is_active(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// The cached principal of a key, if fresh.
    pub fn get(&self, hash: &KeyHash) -> Option<ApiKeyPrincipal> {
        self.get_at(hash, Instant::now())
    }

    fn get_at(&self, hash: &KeyHash, now: Instant) -> Option<ApiKeyPrincipal> {
        if !self.is_active() {
            return None;
        }
        let entries = self.entries();
        let entry = entries.by_hash.get(hash)?;
        (entry.expires_at > now).then(|| entry.principal.clone())
    }

    /// Call before reading the database; pass the ticket to [`ApiKeyCache::store`].
    pub fn ticket(&self) -> Ticket {
        Ticket(self.entries().generation)
    }

    /// Caches a key verified in the database, unless a revocation happened since `ticket`.
    pub fn store(&self, ticket: Ticket, hash: KeyHash, principal: ApiKeyPrincipal) {
        self.store_at(ticket, hash, principal, Instant::now());
    }

    fn store_at(&self, ticket: Ticket, hash: KeyHash, principal: ApiKeyPrincipal, now: Instant) {
        if !self.is_active() {
            return;
        }
        let mut entries = self.entries();
        if entries.generation != ticket.0 {
            return;
        }
        if entries.by_hash.len() >= CAPACITY && !entries.by_hash.contains_key(&hash) {
            entries.by_hash.retain(|_, e| e.expires_at > now);
            if entries.by_hash.len() >= CAPACITY {
                return;
            }
        }
        entries.by_hash.insert(
            hash,
            Entry {
                principal,
                expires_at: now + TTL,
            },
        );
    }

    /// Forgets every cached key of `team_id` and voids lookups in flight.
    pub fn forget_team(&self, team_id: Uuid) {
        let mut entries = self.entries();
        entries.generation += 1;
        entries
            .by_hash
            .retain(|_, e| e.principal.team_id != team_id);
    }

    /// Forgets everything and voids lookups in flight.
    pub fn forget_all(&self) {
        let mut entries = self.entries();
        entries.generation += 1;
        entries.by_hash.clear();
    }

    /// Number of cached keys (expired ones included until they are swept).
    pub fn len(&self) -> usize {
        self.entries().by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Marks the subscription up (emptying the cache first) or down.
    fn set_subscribed(&self, up: bool) {
        if up {
            self.forget_all();
        }
        self.subscribed.store(up, Ordering::Release);
        if !up {
            self.forget_all();
        }
    }

    /// Holds the revocation subscription until `shutdown`, reconnecting after errors.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(client) = self.client.clone() else {
            return;
        };
        loop {
            let result = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.listen(&client) => r,
            };
            self.set_subscribed(false);
            if let Err(e) = result {
                tracing::warn!(error = %e, "API-key revocation subscription lost; caching off until it is back.");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        self.set_subscribed(false);
    }

    async fn listen(&self, client: &redis::Client) -> redis::RedisResult<()> {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(REVOKED_CHANNEL).await?;
        self.set_subscribed(true);
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            let team = msg
                .get_payload::<String>()
                .ok()
                .and_then(|p| p.parse::<Uuid>().ok());
            match team {
                Some(team_id) => self.forget_team(team_id),
                // Unreadable: forgetting everything is always safe.
                None => self.forget_all(),
            }
        }
        Err(redis::RedisError::from((
            redis::ErrorKind::IoError,
            "API-key revocation subscription ended",
        )))
    }
}

/// Announces to every control plane that keys of `team_id` were revoked.
pub async fn publish_revoked(
    redis: &mut redis::aio::ConnectionManager,
    team_id: Uuid,
) -> redis::RedisResult<()> {
    redis::cmd("PUBLISH")
        .arg(REVOKED_CHANNEL)
        .arg(team_id.to_string())
        .query_async(redis)
        .await
}

/// The revocation subscription as a server background worker (needs an [`ApiKeyCache`] in
/// the context).
pub fn revocation_worker(ctx: &App) -> BackgroundWorker {
    let cache = ctx.api_keys.clone();
    BackgroundWorker::new("api-key-revocations", move |token| async move {
        cache.run(token).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(team_id: Uuid) -> ApiKeyPrincipal {
        ApiKeyPrincipal::new(Uuid::new_v4(), team_id, None)
    }

    fn active() -> Arc<ApiKeyCache> {
        let cache = ApiKeyCache::disabled();
        cache.set_subscribed(true);
        cache
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = active();
        let p = principal(Uuid::new_v4());
        let t0 = Instant::now();
        cache.store_at(cache.ticket(), [1; 32], p.clone(), t0);
        assert_eq!(cache.get_at(&[1; 32], t0).map(|k| k.key_id), Some(p.key_id));
        let almost = t0 + TTL - Duration::from_millis(1);
        assert!(cache.get_at(&[1; 32], almost).is_some());
        assert!(cache.get_at(&[1; 32], t0 + TTL).is_none());
    }

    #[test]
    fn nothing_is_served_without_the_subscription() {
        let cache = ApiKeyCache::disabled();
        cache.store(cache.ticket(), [1; 32], principal(Uuid::new_v4()));
        assert!(cache.get(&[1; 32]).is_none());
        assert!(cache.is_empty());

        let cache = active();
        cache.store(cache.ticket(), [1; 32], principal(Uuid::new_v4()));
        cache.set_subscribed(false);
        assert!(cache.get(&[1; 32]).is_none());
        // Coming back starts empty: revocations may have been missed meanwhile.
        cache.set_subscribed(true);
        assert!(cache.get(&[1; 32]).is_none());
    }

    #[test]
    fn forgetting_a_team_keeps_other_teams() {
        let cache = active();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        cache.store(cache.ticket(), [1; 32], principal(a));
        cache.store(cache.ticket(), [2; 32], principal(b));
        cache.forget_team(a);
        assert!(cache.get(&[1; 32]).is_none());
        assert_eq!(cache.get(&[2; 32]).map(|k| k.team_id), Some(b));
    }

    #[test]
    fn a_lookup_older_than_a_revocation_is_not_stored() {
        let cache = active();
        let team = Uuid::new_v4();
        let ticket = cache.ticket();
        // The key is revoked while the lookup reads the database.
        cache.forget_team(team);
        cache.store(ticket, [1; 32], principal(team));
        assert!(cache.get(&[1; 32]).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = active();
        let team = Uuid::new_v4();
        let t0 = Instant::now();
        for i in 0..CAPACITY as u32 {
            let mut hash = [0; 32];
            hash[..4].copy_from_slice(&i.to_be_bytes());
            cache.store_at(cache.ticket(), hash, principal(team), t0);
        }
        assert_eq!(cache.len(), CAPACITY);
        cache.store_at(cache.ticket(), [0xff; 32], principal(team), t0);
        assert_eq!(cache.len(), CAPACITY);
        assert!(cache.get_at(&[0xff; 32], t0).is_none());
        // Once the old entries expired they make room.
        let later = t0 + TTL;
        cache.store_at(cache.ticket(), [0xff; 32], principal(team), later);
        assert_eq!(cache.len(), 1);
        assert!(cache.get_at(&[0xff; 32], later).is_some());
    }
}
