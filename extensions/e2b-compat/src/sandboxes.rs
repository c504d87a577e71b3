//! Sandbox records in `ext_e2b.sandboxes`, E2B ids and tokens, and the expiry worker.
//!
//! A sandbox is a Wrenn capsule plus what E2B adds: the template id the client named, its
//! metadata, and `endAt`, when it ends. Core's state stays the truth for everything else.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wrenn_extension_api::chrono::{DateTime, Duration as Span, Utc};
use wrenn_extension_api::sqlx::postgres::PgRow;
use wrenn_extension_api::sqlx::{self, FromRow, PgExecutor, Row};
use wrenn_extension_api::uuid::Uuid;
use wrenn_extension_api::{ids, tracing, ApiError, BackgroundWorker, CapsuleState, HookError};

use crate::{E2bState, NAME};

/// One row of `ext_e2b.sandboxes`.
#[derive(Debug, Clone)]
pub struct SandboxRow {
    pub capsule_id: Uuid,
    pub team_id: Uuid,
    pub template_id: String,
    pub alias: Option<String>,
    pub metadata: sqlx::types::Json<BTreeMap<String, String>>,
    pub started_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub auto_pause: bool,
    pub public_traffic: bool,
}

impl<'r> FromRow<'r, PgRow> for SandboxRow {
    fn from_row(r: &'r PgRow) -> sqlx::Result<Self> {
        Ok(Self {
            capsule_id: r.try_get("capsule_id")?,
            team_id: r.try_get("team_id")?,
            template_id: r.try_get("template_id")?,
            alias: r.try_get("alias")?,
            metadata: r.try_get("metadata")?,
            started_at: r.try_get("started_at")?,
            end_at: r.try_get("end_at")?,
            auto_pause: r.try_get("auto_pause")?,
            public_traffic: r.try_get("public_traffic")?,
        })
    }
}

/// E2B's sandbox id of a capsule: its 25 base36 digits (E2B ids are `^[a-z0-9]+$`).
pub fn sandbox_id(capsule_id: Uuid) -> String {
    let wire = ids::encode(ids::CAPSULE, capsule_id);
    wire.split_once('_')
        .map(|(_, digits)| digits.to_string())
        .unwrap_or(wire)
}

/// The capsule an E2B sandbox id (or a Wrenn capsule id) names.
pub fn capsule_id(sandbox_id: &str) -> Option<Uuid> {
    ids::decode(ids::CAPSULE, sandbox_id)
        .or_else(|| ids::decode(ids::CAPSULE, &format!("{}_{sandbox_id}", ids::CAPSULE)))
}

fn mac(secret: &[u8], purpose: &str, capsule_id: Uuid) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(purpose.as_bytes());
    m.update(capsule_id.as_bytes());
    hex::encode(&m.finalize().into_bytes()[..24])
}

/// The sandbox's `envdAccessToken`: what the SDKs send as `X-Access-Token` to envd.
pub fn envd_token(secret: &[u8], capsule_id: Uuid) -> String {
    mac(secret, "e2b-envd-access-token:", capsule_id)
}

/// The sandbox's `trafficAccessToken` (other ports, when public traffic is off).
pub fn traffic_token(secret: &[u8], capsule_id: Uuid) -> String {
    mac(secret, "e2b-traffic-access-token:", capsule_id)
}

/// Checks a signed file URL's `signature` (E2B's v1: base64, unpadded, of the SHA-256 of
/// `path:operation:user:token[:expiration]`), and that it has not expired.
pub fn signature_valid(
    signature: &str,
    path: &str,
    operation: &str,
    user: &str,
    token: &str,
    expiration: Option<i64>,
    now_unix: i64,
) -> bool {
    if expiration.is_some_and(|e| e < now_unix) {
        return false;
    }
    let raw = match expiration {
        Some(e) => format!("{path}:{operation}:{user}:{token}:{e}"),
        None => format!("{path}:{operation}:{user}:{token}"),
    };
    let want = format!(
        "v1_{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(raw.as_bytes()))
    );
    same_secret(&want, signature)
}

/// Compares two secrets in constant time.
pub fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

pub async fn insert(db: impl PgExecutor<'_>, row: &SandboxRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO ext_e2b.sandboxes
            (capsule_id, team_id, template_id, alias, metadata, started_at, end_at, auto_pause,
             public_traffic)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(row.capsule_id)
    .bind(row.team_id)
    .bind(&row.template_id)
    .bind(&row.alias)
    .bind(&row.metadata)
    .bind(row.started_at)
    .bind(row.end_at)
    .bind(row.auto_pause)
    .bind(row.public_traffic)
    .execute(db)
    .await
    .map(|_| ())
}

const COLUMNS: &str = "capsule_id, team_id, template_id, alias, metadata, started_at, end_at, \
                       auto_pause, public_traffic";

/// The sandbox of a team (`None`: not an E2B sandbox of that team).
pub async fn get(
    db: impl PgExecutor<'_>,
    team_id: Uuid,
    capsule_id: Uuid,
) -> sqlx::Result<Option<SandboxRow>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM ext_e2b.sandboxes WHERE capsule_id = $1 AND team_id = $2"
    ))
    .bind(capsule_id)
    .bind(team_id)
    .fetch_optional(db)
    .await
}

/// A sandbox by id alone (the data plane, which authenticates by the sandbox's tokens).
pub async fn find(db: impl PgExecutor<'_>, capsule_id: Uuid) -> sqlx::Result<Option<SandboxRow>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM ext_e2b.sandboxes WHERE capsule_id = $1"
    ))
    .bind(capsule_id)
    .fetch_optional(db)
    .await
}

/// The team's sandboxes, newest first.
pub async fn list(db: impl PgExecutor<'_>, team_id: Uuid) -> sqlx::Result<Vec<SandboxRow>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM ext_e2b.sandboxes WHERE team_id = $1
         ORDER BY started_at DESC, capsule_id DESC"
    ))
    .bind(team_id)
    .fetch_all(db)
    .await
}

/// Sets `endAt` (and, when given, `autoPause`); `started_at` restarts on a resume.
pub async fn set_end(
    db: impl PgExecutor<'_>,
    capsule_id: Uuid,
    end_at: DateTime<Utc>,
    restarted: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE ext_e2b.sandboxes
            SET end_at = $2, started_at = CASE WHEN $3 THEN now() ELSE started_at END
          WHERE capsule_id = $1",
    )
    .bind(capsule_id)
    .bind(end_at)
    .bind(restarted)
    .execute(db)
    .await
    .map(|_| ())
}

/// Moves `endAt` later, never earlier (connect only ever extends).
pub async fn extend_end(
    db: impl PgExecutor<'_>,
    capsule_id: Uuid,
    end_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE ext_e2b.sandboxes SET end_at = GREATEST(end_at, $2) WHERE capsule_id = $1")
        .bind(capsule_id)
        .bind(end_at)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn delete(db: impl PgExecutor<'_>, capsule_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM ext_e2b.sandboxes WHERE capsule_id = $1")
        .bind(capsule_id)
        .execute(db)
        .await
        .map(|_| ())
}

/// Parks `endAt` of a sandbox whose end passed (it was just paused); a connect or resume that
/// set a new end meanwhile wins.
pub async fn park_if_due(db: impl PgExecutor<'_>, capsule_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE ext_e2b.sandboxes SET end_at = $2 WHERE capsule_id = $1 AND end_at <= now()",
    )
    .bind(capsule_id)
    .bind(parked())
    .execute(db)
    .await
    .map(|_| ())
}

/// Whether the sandbox's end has passed (checked again right before acting on it).
async fn still_due(db: impl PgExecutor<'_>, capsule_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM ext_e2b.sandboxes WHERE capsule_id = $1 AND end_at <= now())",
    )
    .bind(capsule_id)
    .fetch_one(db)
    .await
}

/// `now + secs`.
pub fn after(secs: u32) -> DateTime<Utc> {
    Utc::now() + Span::seconds(i64::from(secs))
}

/// A paused sandbox does not run out: its `endAt` is parked far ahead until a resume or a
/// connect sets a new one.
fn parked() -> DateTime<Utc> {
    Utc::now() + Span::days(3650)
}

/// Ends sandboxes whose `endAt` passed: a running one is destroyed, or paused when it was
/// created with `autoPause`; records of capsules that are gone are dropped.
pub fn expiry_worker(state: Arc<E2bState>) -> BackgroundWorker {
    let every = state.config.sweep_every;
    BackgroundWorker::every("e2b-expiry", every, move || {
        let state = state.clone();
        async move { sweep(&state).await.map_err(HookError::new) }
    })
}

async fn sweep(state: &E2bState) -> Result<(), String> {
    let db = state.ctx.db();
    let due: Vec<SandboxRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM ext_e2b.sandboxes WHERE end_at <= now() LIMIT 256"
    ))
    .fetch_all(db)
    .await
    .map_err(|e| e.to_string())?;
    for row in due {
        // A connect or set_timeout may have moved the end since the query.
        if !still_due(db, row.capsule_id).await.unwrap_or(false) {
            continue;
        }
        let capsules = state.ctx.capsules();
        let state = match capsules.get(row.team_id, row.capsule_id).await {
            Ok(c) => c.state,
            Err(e) if e.status.as_u16() == 404 => CapsuleState::Stopped,
            Err(e) => {
                tracing::warn!(capsule_id = %row.capsule_id, error = %e.message, "E2B expiry: lookup failed.");
                continue;
            }
        };
        let result: Result<(), ApiError> = match state {
            CapsuleState::Running if row.auto_pause => {
                tracing::info!(capsule_id = %row.capsule_id, "E2B sandbox timed out: pausing.");
                let paused = capsules.pause(NAME, row.team_id, row.capsule_id).await;
                if paused.is_ok() {
                    let _ = park_if_due(db, row.capsule_id).await;
                }
                paused
            }
            CapsuleState::Running => {
                tracing::info!(capsule_id = %row.capsule_id, "E2B sandbox timed out: killing.");
                let destroyed = capsules.destroy(NAME, row.team_id, row.capsule_id).await;
                if destroyed.is_ok() {
                    let _ = delete(db, row.capsule_id).await;
                }
                destroyed
            }
            CapsuleState::Paused => park_if_due(db, row.capsule_id)
                .await
                .map_err(ApiError::from),
            CapsuleState::Stopped | CapsuleState::Error => {
                delete(db, row.capsule_id).await.map_err(ApiError::from)
            }
            // In a transition: the next sweep sees where it settled.
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(capsule_id = %row.capsule_id, error = %e.message, "E2B expiry failed; retrying.");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_ids_are_lowercase_alphanumeric_and_round_trip() {
        let id = Uuid::new_v4();
        let sid = sandbox_id(id);
        assert!(sid
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_eq!(capsule_id(&sid), Some(id));
        assert_eq!(capsule_id(&ids::encode(ids::CAPSULE, id)), Some(id));
        assert_eq!(capsule_id("not-an-id"), None);
    }

    #[test]
    fn signatures_follow_e2b_v1_and_expire() {
        // Computed independently: sha256("/f:read:user:tok:100"), base64 without padding.
        let raw = "/f:read:user:tok:100";
        let sig = format!(
            "v1_{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(raw))
        );
        assert!(signature_valid(
            &sig,
            "/f",
            "read",
            "user",
            "tok",
            Some(100),
            50
        ));
        assert!(!signature_valid(
            &sig,
            "/f",
            "read",
            "user",
            "tok",
            Some(100),
            101
        ));
        assert!(!signature_valid(
            &sig,
            "/f",
            "write",
            "user",
            "tok",
            Some(100),
            50
        ));
        assert!(!signature_valid(
            &sig,
            "/g",
            "read",
            "user",
            "tok",
            Some(100),
            50
        ));
    }

    #[test]
    fn tokens_differ_per_capsule_and_purpose() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert_ne!(envd_token(b"k", a), envd_token(b"k", b));
        assert_ne!(envd_token(b"k", a), traffic_token(b"k", a));
        assert_eq!(envd_token(b"k", a), envd_token(b"k", a));
    }
}
