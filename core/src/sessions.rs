//! Sessions on PostgreSQL (source of truth, ids stored hashed) with a Redis cache, and API-key
//! resolution: core's implementation of [`SessionService`].
//!
//! Windows: 6 h idle (sliding), 24 h absolute. The cache entry's TTL is the idle window, so an
//! idle session also disappears from Redis; the database row is touched at most once a minute.
//!
//! Verified API keys are kept a few seconds in process ([`api_keys`]), revocations being
//! broadcast to every control plane over Redis.

pub mod api_keys;

use crate::db;
use api_keys::ApiKeyCache;
use chrono::{DateTime, Duration, Utc};
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;
use wrenn_extension_api::auth::ClientInfo;
use wrenn_extension_api::{
    ApiError, ApiKeyPrincipal, IssuedSession, SessionPrincipal, SessionService,
};

pub const IDLE_WINDOW: Duration = Duration::hours(6);
pub const ABSOLUTE_WINDOW: Duration = Duration::hours(24);
const TOUCH_EVERY: Duration = Duration::seconds(60);

/// Redis key of a cached session.
pub fn cache_key(sid_hash: &[u8]) -> String {
    format!("wrenn:session:{}", hex::encode(sid_hash))
}

pub fn sha256(s: &str) -> Vec<u8> {
    Sha256::digest(s.as_bytes()).to_vec()
}

/// 32 random bytes, hex-encoded.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

#[derive(Serialize, Deserialize)]
struct Cached {
    id: Uuid,
    user_id: Uuid,
    team_id: Uuid,
    csrf_digest: String,
    absolute_expires_at: DateTime<Utc>,
    touched_at: DateTime<Utc>,
}

/// Core's [`SessionService`].
pub struct Sessions {
    db: PgPool,
    redis: ConnectionManager,
    secure_cookies: bool,
    api_keys: Arc<ApiKeyCache>,
    /// The app's task tracker (revocation announcements outlive their request).
    tasks: tokio_util::task::TaskTracker,
}

impl Sessions {
    /// `api_keys` caches verified keys (give [`ApiKeyCache::disabled`] for none).
    pub fn new(
        db: PgPool,
        redis: ConnectionManager,
        secure_cookies: bool,
        api_keys: Arc<ApiKeyCache>,
        tasks: tokio_util::task::TaskTracker,
    ) -> Self {
        Self {
            db,
            redis,
            secure_cookies,
            api_keys,
            tasks,
        }
    }

    async fn cache(&self, sid_hash: &[u8], c: &Cached) -> Result<(), ApiError> {
        let ttl = (c.absolute_expires_at - Utc::now())
            .min(IDLE_WINDOW)
            .num_seconds();
        if ttl <= 0 {
            return Ok(());
        }
        let json = serde_json::to_string(c).map_err(ApiError::internal)?;
        let mut redis = self.redis.clone();
        let _: () = redis.set_ex(cache_key(sid_hash), json, ttl as u64).await?;
        Ok(())
    }

    async fn evict(&self, hashes: &[Vec<u8>]) -> Result<(), ApiError> {
        if hashes.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = hashes.iter().map(|h| cache_key(h)).collect();
        let mut redis = self.redis.clone();
        let _: () = redis.del(keys).await?;
        Ok(())
    }

    async fn load(&self, sid_hash: &[u8]) -> Result<Option<Cached>, ApiError> {
        let mut redis = self.redis.clone();
        let cached: Option<String> = redis.get(cache_key(sid_hash)).await?;
        if let Some(c) = cached.and_then(|s| serde_json::from_str::<Cached>(&s).ok()) {
            return Ok(Some(c));
        }
        let Some(row) = db::sessions::find_live(&self.db, sid_hash).await? else {
            return Ok(None);
        };
        let c = Cached {
            id: row.id,
            user_id: row.user_id,
            team_id: row.team_id,
            csrf_digest: hex::encode(&row.csrf_hash),
            absolute_expires_at: row.absolute_expires_at,
            touched_at: row.last_seen_at,
        };
        Ok(Some(c))
    }
}

#[async_trait::async_trait]
impl SessionService for Sessions {
    async fn resolve_session(&self, sid: &str) -> Result<Option<SessionPrincipal>, ApiError> {
        if sid.len() != 64 || !sid.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let sid_hash = sha256(sid);
        let Some(mut c) = self.load(&sid_hash).await? else {
            return Ok(None);
        };
        let now = Utc::now();
        if c.absolute_expires_at <= now {
            self.evict(&[sid_hash]).await?;
            return Ok(None);
        }
        if now - c.touched_at >= TOUCH_EVERY {
            db::sessions::touch(&self.db, c.id, now + IDLE_WINDOW).await?;
            c.touched_at = now;
        }
        // Re-cache on every hit: this slides the Redis idle TTL.
        self.cache(&sid_hash, &c).await?;
        let role = db::teams::role_of(&self.db, c.team_id, c.user_id).await?;
        Ok(Some(SessionPrincipal::new(
            c.id,
            c.user_id,
            c.team_id,
            role,
            c.csrf_digest,
            (now + IDLE_WINDOW).min(c.absolute_expires_at),
        )))
    }

    async fn resolve_api_key(&self, key: &str) -> Result<Option<ApiKeyPrincipal>, ApiError> {
        if !crate::http::api_keys::is_well_formed(key) {
            return Ok(None);
        }
        let hash: api_keys::KeyHash = Sha256::digest(key.as_bytes()).into();
        if let Some(principal) = self.api_keys.get(&hash) {
            return Ok(Some(principal));
        }
        let ticket = self.api_keys.ticket();
        let found = db::api_keys::use_by_hash(&self.db, &hash).await?;
        Ok(found.map(|k| {
            let principal = ApiKeyPrincipal::new(k.id, k.team_id, k.created_by);
            self.api_keys.store(ticket, hash, principal.clone());
            principal
        }))
    }

    async fn api_keys_revoked(&self, team_id: Uuid) {
        self.api_keys.forget_team(team_id);
        // Its own task: the announcement goes out even if the revoking request is dropped now.
        let mut redis = self.redis.clone();
        self.tasks.spawn(async move {
            if let Err(e) = api_keys::publish_revoked(&mut redis, team_id).await {
                tracing::warn!(%team_id, error = %e, "Could not announce revoked API keys; other control planes may accept them until their cache expires.");
            }
        });
    }

    async fn issue(
        &self,
        user_id: Uuid,
        team_id: Uuid,
        client: ClientInfo,
    ) -> Result<IssuedSession, ApiError> {
        let sid = random_token();
        let csrf = random_token();
        let id = Uuid::new_v4();
        let now = Utc::now();
        let absolute = now + ABSOLUTE_WINDOW;
        let sid_hash = sha256(&sid);
        let csrf_hash = sha256(&csrf);
        db::sessions::insert(
            &self.db,
            id,
            &sid_hash,
            &csrf_hash,
            user_id,
            team_id,
            client.user_agent.as_deref(),
            client.ip.as_deref(),
            now + IDLE_WINDOW,
            absolute,
        )
        .await?;
        self.cache(
            &sid_hash,
            &Cached {
                id,
                user_id,
                team_id,
                csrf_digest: hex::encode(&csrf_hash),
                absolute_expires_at: absolute,
                touched_at: now,
            },
        )
        .await?;
        Ok(IssuedSession {
            session_id: id,
            sid,
            csrf,
            expires_at: absolute,
            secure: self.secure_cookies,
        })
    }

    async fn revoke(&self, session_id: Uuid) -> Result<(), ApiError> {
        if let Some(hash) = db::sessions::revoke(&self.db, session_id).await? {
            self.evict(&[hash]).await?;
        }
        Ok(())
    }

    async fn revoke_all(&self, user_id: Uuid) -> Result<u64, ApiError> {
        let hashes = db::sessions::revoke_all_for_user(&self.db, user_id).await?;
        self.evict(&hashes).await?;
        Ok(hashes.len() as u64)
    }

    async fn is_platform_admin(&self, user_id: Uuid) -> Result<bool, ApiError> {
        let user = db::users::find_live(&self.db, user_id).await?;
        Ok(user.is_some_and(|u| u.is_admin && u.disabled_at.is_none()))
    }
}
