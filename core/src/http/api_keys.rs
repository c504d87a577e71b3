//! `/v1/api-keys`: team API keys (`wrn_` + 32 hex, SHA-256 at rest, first 10 chars shown).

use crate::app::App;
use crate::db;
use crate::ratelimit::{self, Rule};
use crate::sessions::sha256;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use wrenn_extension_api::{
    ids, ApiError, ApiJson, ApiPath, ApiQuery, Principal, RequireSession, RequireSessionOrApiKey,
    Role,
};

use super::paging::{ListQuery, Paged};
use super::views::ErrorEnvelope;

pub const KEY_PREFIX: &str = "wrn_";
const SHOWN_PREFIX_LEN: usize = 10;
/// Live keys per team (so `GET /v1/api-keys` fits its default page of 100).
pub const MAX_KEYS_PER_TEAM: i64 = 100;

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/api-keys", get(list).post(create))
        .route("/v1/api-keys/{id}", delete(remove))
}

/// True for `wrn_` + 32 lowercase hex digits.
pub fn is_well_formed(key: &str) -> bool {
    key.strip_prefix(KEY_PREFIX).is_some_and(|hex| {
        hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// A new random key.
pub fn generate() -> String {
    format!("{KEY_PREFIX}{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// An API key (never its secret, except `key` once at creation).
#[derive(Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub team_id: String,
    pub name: String,
    /// The first 10 characters of the key, e.g. `wrn_1a2b3c`.
    pub key_prefix: String,
    /// `usr_` id of the creator (null once that user is purged).
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used: Option<DateTime<Utc>>,
}

impl From<db::api_keys::ApiKey> for ApiKeyView {
    fn from(k: db::api_keys::ApiKey) -> Self {
        Self {
            id: ids::encode(ids::API_KEY, k.id),
            team_id: ids::encode(ids::TEAM, k.team_id),
            name: k.name,
            key_prefix: k.key_prefix,
            created_by: k.created_by.map(|u| ids::encode(ids::USER, u)),
            created_at: k.created_at,
            last_used: k.last_used,
        }
    }
}

/// A created key: the only response that ever contains the plaintext `key`.
#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    pub key: String,
    #[serde(flatten)]
    pub api_key: ApiKeyView,
}

#[derive(Deserialize, ToSchema)]
pub struct CreateApiKey {
    /// 1–100 characters.
    pub name: String,
}

fn require_role(role: Option<Role>) -> Result<Role, ApiError> {
    role.ok_or_else(|| {
        ApiError::forbidden("not_a_member", "you are no longer a member of this team")
    })
}

/// Create a key for the session's team (any member).
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = CreateApiKey,
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 201, body = CreatedApiKey), (status = 400, body = ErrorEnvelope),
              (status = 409, body = ErrorEnvelope, description = "api_key_limit: 100 live keys per team"),
              (status = 429, body = ErrorEnvelope, description = "rate_limited (keys created per user); Retry-After gives the seconds to wait")))]
pub async fn create(
    State(ctx): State<App>,
    RequireSession(s): RequireSession,
    ApiJson(req): ApiJson<CreateApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    require_role(s.role)?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request(
            "invalid_name",
            "name must be 1 to 100 characters",
        ));
    }
    ratelimit::hit(&ctx, Rule::ApiKeysPerUser, Some(&s.user_id.to_string())).await?;
    if db::api_keys::count_for_team(ctx.db(), s.team_id).await? >= MAX_KEYS_PER_TEAM {
        return Err(ApiError::conflict(
            "api_key_limit",
            "a team can have at most 100 API keys; revoke unused ones first",
        ));
    }
    let key = generate();
    let row = db::api_keys::insert(
        ctx.db(),
        Uuid::new_v4(),
        s.team_id,
        name,
        &sha256(&key),
        &key[..SHOWN_PREFIX_LEN],
        Some(s.user_id),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            key,
            api_key: row.into(),
        }),
    ))
}

/// The team's live keys, newest first (`(created_at, id)` descending; session or API key of
/// that team), paged by `limit`/`cursor` (`X-Next-Cursor`).
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", params(ListQuery),
    responses((status = 200, body = [ApiKeyView], headers(("X-Next-Cursor" = String, description = "present when another page follows"))),
              (status = 400, body = ErrorEnvelope, description = "bad limit or cursor"),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
pub async fn list(
    State(ctx): State<App>,
    RequireSessionOrApiKey(p): RequireSessionOrApiKey,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Paged<ApiKeyView>, ApiError> {
    if let Principal::Session(s) = &p {
        require_role(s.role)?;
    }
    let page = q.page()?;
    let keys = db::api_keys::page_for_team(ctx.db(), p.team_id(), page).await?;
    Ok(Paged::new(
        keys,
        page,
        |k| (k.created_at, k.id),
        |k| k.clone().into(),
    ))
}

/// Revoke a key: owners and admins any key of the team, members their own keys.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path, description = "key_ id")),
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn remove(
    State(ctx): State<App>,
    RequireSessionOrApiKey(p): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = ids::parse(ids::API_KEY, &id, "API key")?;
    let not_found = || ApiError::not_found("not_found", "API key not found");
    let key = db::api_keys::get(ctx.db(), p.team_id(), id)
        .await?
        .ok_or_else(not_found)?;
    match &p {
        Principal::Session(s) => {
            let role = require_role(s.role)?;
            if !role.can_manage() && key.created_by != Some(s.user_id) {
                return Err(ApiError::forbidden(
                    "forbidden",
                    "only owners, admins or the key's creator can revoke it",
                ));
            }
        }
        // A key may revoke keys of its own team (e.g. to rotate itself); never other teams'.
        Principal::ApiKey(_) => {}
    }
    if db::api_keys::revoke(ctx.db(), p.team_id(), id).await? {
        ctx.sessions().api_keys_revoked(p.team_id()).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}
