//! `/v1/channels`: a team's notification channels (session or API key of the team).
//!
//! Secrets (incoming-webhook URLs, bot and access tokens, the webhook signing secret) are
//! sealed at rest and never returned; the one exception is `signing_secret`, in the response
//! that creates a webhook channel (or rotates its secret).

use crate::app::App;
use crate::channels::provider::{self, Provider};
use crate::channels::{self, Channels, OpenChannel, MAX_CHANNELS_PER_TEAM, SUBSCRIBABLE};
use crate::db;
use crate::events::{Event, Outcome, Resource};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use wrenn_extension_api::{
    ids, ApiError, ApiJson, ApiPath, ApiQuery, Principal, RequireSessionOrApiKey,
};

use super::paging::{self, Limits, Paged};
use super::views::ErrorEnvelope;

/// The channel routes' part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(create, list, show, update, replace_config, remove, deliveries, test),
    components(schemas(ChannelView, ChannelWithSecret, CreateChannel, UpdateChannel,
        ReplaceConfig, TestChannel, TestResult, DeliveryView, Provider)),
    tags((name = "channels", description = "Notification channels: signed webhooks and chat providers")),
)]
pub struct ChannelsApi;

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/channels", get(list).post(create))
        .route("/v1/channels/test", post(test))
        .route("/v1/channels/{id}", get(show).patch(update).delete(remove))
        .route("/v1/channels/{id}/config", put(replace_config))
        .route("/v1/channels/{id}/deliveries", get(deliveries))
}

fn service(ctx: &App) -> Arc<Channels> {
    ctx.channels.clone()
}

/// A channel (never its secrets).
#[derive(Serialize, ToSchema)]
pub struct ChannelView {
    #[schema(example = "ch_0a1b2c3d4e5f6g7h8i9j0k1l2")]
    pub id: String,
    pub team_id: String,
    pub name: String,
    pub provider: Provider,
    /// Subscribed event types; success and error outcomes both arrive.
    pub events: Vec<String>,
    /// The provider's non-secret settings (`url_host`, `chat_id`, `room_id`, `formatter`, ...).
    #[schema(value_type = Object)]
    pub config: Value,
    pub enabled: bool,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&db::channels::Channel> for ChannelView {
    fn from(c: &db::channels::Channel) -> Self {
        Self {
            id: ids::encode(ids::CHANNEL, c.id),
            team_id: ids::encode(ids::TEAM, c.team_id),
            name: c.name.clone(),
            provider: Provider::parse(&c.provider).unwrap_or(Provider::Webhook),
            events: c.events.clone(),
            config: c.config.clone(),
            enabled: c.enabled,
            created_by: c.created_by.map(|u| ids::encode(ids::USER, u)),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A channel with its webhook signing secret: only in the response that creates it or
/// rotates it.
#[derive(Serialize, ToSchema)]
pub struct ChannelWithSecret {
    #[serde(flatten)]
    pub channel: ChannelView,
    /// Webhook channels only: the HMAC-SHA256 key of `X-WRENN-SIGNATURE`. Shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    /// 1–100 characters.
    pub name: String,
    /// `webhook`, `discord`, `slack`, `teams`, `googlechat`, `telegram` or `matrix`.
    pub provider: String,
    /// Per provider: webhook, discord, slack, teams, googlechat `{url}`; telegram
    /// `{bot_token, chat_id, api_url?}`; matrix `{homeserver_url, room_id, access_token}`;
    /// chat providers also take `formatter`.
    #[schema(value_type = Object)]
    pub config: Value,
    /// At least one of the subscribable event types.
    pub events: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateChannel {
    pub name: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceConfig {
    /// The whole new config, validated as on create.
    #[schema(value_type = Object)]
    pub config: Value,
    /// Webhook channels: issue a new signing secret (returned once). Default false: keep it.
    #[serde(default)]
    pub rotate_secret: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestChannel {
    pub provider: String,
    #[schema(value_type = Object)]
    pub config: Value,
    /// Display name used in the message (default "test").
    #[serde(default)]
    pub name: Option<String>,
}

/// The outcome of a test send.
#[derive(Serialize, ToSchema)]
pub struct TestResult {
    /// Whether the receiver answered 2xx.
    pub delivered: bool,
    /// The receiver's HTTP status, when it answered.
    pub http_status: Option<u16>,
    /// Why the send failed (empty when delivered).
    pub error: String,
    pub latency_ms: u64,
}

/// One delivery attempt.
#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: i64,
    /// The stream entry id of the event (the same for every attempt at it).
    pub event_id: String,
    pub event: String,
    pub attempt: i32,
    /// `X-Wrenn-Delivery` of this attempt.
    pub delivery_id: Uuid,
    /// `delivered`, `failed` (a retry follows) or `dropped` (the last attempt failed).
    pub status: String,
    pub http_status: Option<i32>,
    pub error: String,
    pub latency_ms: i32,
    pub created_at: DateTime<Utc>,
}

impl From<db::channels::Delivery> for DeliveryView {
    fn from(d: db::channels::Delivery) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            event: d.event,
            attempt: d.attempt,
            delivery_id: d.delivery_id,
            status: d.status,
            http_status: d.http_status,
            error: d.error,
            latency_ms: d.latency_ms,
            created_at: d.created_at,
        }
    }
}

#[derive(Deserialize, IntoParams)]
pub struct Page {
    /// 1–200, default 100.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `X-Next-Cursor` of the previous page.
    pub cursor: Option<String>,
    /// Rows to skip past the cursor (older paging by offset; prefer `cursor`).
    pub offset: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
pub struct DeliveryPage {
    /// 1–200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// Only attempts with an id below this one (the last id of the previous page).
    pub before: Option<i64>,
}

fn require_member(p: &Principal) -> Result<(), ApiError> {
    match p {
        Principal::Session(s) if s.role.is_none() => Err(ApiError::forbidden(
            "not_a_member",
            "you are no longer a member of this team",
        )),
        _ => Ok(()),
    }
}

fn parse_provider(s: &str) -> Result<Provider, ApiError> {
    Provider::parse(s).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_provider",
            format!(
                "unknown provider {s:?}; expected one of {}",
                Provider::ALL.map(|p| p.as_str()).join(", ")
            ),
        )
    })
}

fn valid_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request(
            "invalid_name",
            "name must be 1 to 100 characters",
        ));
    }
    Ok(name.to_string())
}

fn valid_events(events: &[String]) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::new();
    for e in events {
        if !SUBSCRIBABLE.contains(&e.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_event",
                format!(
                    "unknown event type {e:?}; subscribable: {}",
                    SUBSCRIBABLE.join(", ")
                ),
            ));
        }
        if !out.contains(e) {
            out.push(e.clone());
        }
    }
    if out.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_event",
            "subscribe to at least one event type",
        ));
    }
    Ok(out)
}

fn valid_config(provider: Provider, config: &Value) -> Result<provider::SplitConfig, ApiError> {
    provider::validate(provider, config)
        .map_err(|e| ApiError::bad_request("invalid_config", e.to_string()))
}

async fn load(ctx: &App, p: &Principal, id: &str) -> Result<db::channels::Channel, ApiError> {
    require_member(p)?;
    let id = ids::parse(ids::CHANNEL, id, "channel")?;
    db::channels::get(ctx.db(), p.team_id(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("not_found", "channel not found"))
}

/// Create a channel. Webhook channels answer their `signing_secret`, once.
#[utoipa::path(post, path = "/v1/channels", tag = "channels", request_body = CreateChannel,
    responses((status = 201, body = ChannelWithSecret),
              (status = 400, body = ErrorEnvelope, description = "invalid_provider, invalid_config, invalid_event, invalid_name"),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 409, body = ErrorEnvelope, description = "channel_limit: 50 channels per team")))]
pub async fn create(
    State(ctx): State<App>,
    RequireSessionOrApiKey(p): RequireSessionOrApiKey,
    ApiJson(req): ApiJson<CreateChannel>,
) -> Result<(StatusCode, Json<ChannelWithSecret>), ApiError> {
    require_member(&p)?;
    let name = valid_name(&req.name)?;
    let provider = parse_provider(&req.provider)?;
    let events = valid_events(&req.events)?;
    let mut split = valid_config(provider, &req.config)?;
    let signing_secret = (provider == Provider::Webhook).then(channels::new_signing_secret);
    split.secret.signing_secret = signing_secret.clone();
    if db::channels::count_for_team(ctx.db(), p.team_id()).await? >= MAX_CHANNELS_PER_TEAM {
        return Err(ApiError::conflict(
            "channel_limit",
            "a team can have at most 50 channels; delete unused ones first",
        ));
    }
    let sealed = service(&ctx).seal(&split.secret);
    let created_by = match &p {
        Principal::Session(s) => Some(s.user_id),
        Principal::ApiKey(_) => None,
    };
    let row = db::channels::insert(
        ctx.db(),
        &db::channels::NewChannel {
            id: Uuid::new_v4(),
            team_id: p.team_id(),
            name: &name,
            provider: provider.as_str(),
            events: &events,
            config: &split.public,
            secret: &sealed,
            created_by,
        },
    )
    .await?;
    tracing::info!(channel = %row.id, team_id = %row.team_id, provider = %provider, "Channel created.");
    Ok((
        StatusCode::CREATED,
        Json(ChannelWithSecret {
            channel: (&row).into(),
            signing_secret,
        }),
    ))
}

/// The team's channels, newest first (`(created_at, id)` descending), as a bare array paged
/// by `limit`/`cursor` (`X-Next-Cursor`); `X-Total-Count` gives the team's total.
#[utoipa::path(get, path = "/v1/channels", tag = "channels", params(Page),
    responses((status = 200, body = [ChannelView], headers(("X-Next-Cursor" = String, description = "present when another page follows"), ("X-Total-Count" = i64, description = "the team's channel count"))),
              (status = 400, body = ErrorEnvelope, description = "bad limit, cursor or offset"),
              (status = 401, body = ErrorEnvelope)))]
pub async fn list(
    State(ctx): State<App>,
    RequireSessionOrApiKey(p): RequireSessionOrApiKey,
    ApiQuery(q): ApiQuery<Page>,
) -> Result<(HeaderMap, Paged<ChannelView>), ApiError> {
    require_member(&p)?;
    let page = paging::Page::parse_with(q.limit, q.cursor.as_deref(), Limits::OLDER_LISTS)?;
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::invalid("offset must not be negative"));
    }
    let rows = db::channels::page_for_team(ctx.db(), p.team_id(), page, offset).await?;
    let total = db::channels::count_for_team(ctx.db(), p.team_id()).await?;
    let mut headers = HeaderMap::new();
    headers.insert("x-total-count", HeaderValue::from(total));
    Ok((
        headers,
        Paged::new(rows, page, |c| (c.created_at, c.id), |c| c.into()),
    ))
}

/// One channel.
#[utoipa::path(get, path = "/v1/channels/{id}", tag = "channels",
    params(("id" = String, Path, description = "Channel id (`ch_…`)")),
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 200, body = ChannelView), (status = 400, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope, description = "not the caller's team's")))]
pub async fn show(
    State(ctx): State<App>,
    RequireSessionOrApiKey(p): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ChannelView>, ApiError> {
    Ok(Json((&load(&ctx, &p, &id).await?).into()))
}

/// Rename, change subscriptions, enable or disable.
#[utoipa::path(patch, path = "/v1/channels/{id}", tag = "channels", request_body = UpdateChannel,
    params(("id" = String, Path)),
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 200, body = ChannelView), (status = 400, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)))]
pub async fn update(
    State(ctx): State<App>,
    RequireSessionOrApiKey(p): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateChannel>,
) -> Result<Json<ChannelView>, ApiError> {
    let row = load(&ctx, &p, &id).await?;
    let name = req.name.as_deref().map(valid_name).transpose()?;
    let events = req.events.as_deref().map(valid_events).transpose()?;
    let row = db::channels::update(
        ctx.db(),
        p.team_id(),
        row.id,
        name.as_deref(),
        events.as_deref(),
        req.enabled,
    )
    .await?
    .ok_or_else(|| ApiError::not_found("not_found", "channel not found"))?;
    Ok(Json((&row).into()))
}

/// Replace the config (and with it the secrets), validated as on create.
#[utoipa::path(put, path = "/v1/channels/{id}/config", tag = "channels", request_body = ReplaceConfig,
    params(("id" = String, Path)),
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 200, body = ChannelWithSecret), (status = 400, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)))]
pub async fn replace_config(
    State(ctx): State<App>,
    RequireSessionOrApiKey(p): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ReplaceConfig>,
) -> Result<Json<ChannelWithSecret>, ApiError> {
    let row = load(&ctx, &p, &id).await?;
    let channels = service(&ctx);
    let provider = parse_provider(&row.provider)?;
    let mut split = valid_config(provider, &req.config)?;
    let mut shown = None;
    if provider == Provider::Webhook {
        let current = channels.open(&row).map_err(ApiError::internal)?;
        split.secret.signing_secret = if req.rotate_secret {
            shown = Some(channels::new_signing_secret());
            shown.clone()
        } else {
            current.secrets.signing_secret
        };
    }
    let sealed = channels.seal(&split.secret);
    let row = db::channels::replace_config(ctx.db(), p.team_id(), row.id, &split.public, &sealed)
        .await?
        .ok_or_else(|| ApiError::not_found("not_found", "channel not found"))?;
    Ok(Json(ChannelWithSecret {
        channel: (&row).into(),
        signing_secret: shown,
    }))
}

/// Delete a channel (its delivery records go with it; queued retries are dropped).
#[utoipa::path(delete, path = "/v1/channels/{id}", tag = "channels",
    params(("id" = String, Path)),
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 204), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn remove(
    State(ctx): State<App>,
    RequireSessionOrApiKey(p): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let row = load(&ctx, &p, &id).await?;
    if db::channels::delete(ctx.db(), p.team_id(), row.id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("not_found", "channel not found"))
    }
}

/// A channel's recent delivery attempts, newest first (a bare array).
#[utoipa::path(get, path = "/v1/channels/{id}/deliveries", tag = "channels",
    params(("id" = String, Path), DeliveryPage),
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 200, body = [DeliveryView]), (status = 400, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)))]
pub async fn deliveries(
    State(ctx): State<App>,
    RequireSessionOrApiKey(p): RequireSessionOrApiKey,
    ApiPath(id): ApiPath<String>,
    ApiQuery(page): ApiQuery<DeliveryPage>,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    let row = load(&ctx, &p, &id).await?;
    let limit = page.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_request",
            "limit must be 1 to 200",
        ));
    }
    let rows = db::channels::deliveries(ctx.db(), row.id, page.before, limit).await?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}

/// Send a test message to a provider config; nothing is stored. Webhooks get a signed
/// `channel.test` event; the signature uses a throw-away secret, since none exists yet.
#[utoipa::path(post, path = "/v1/channels/test", tag = "channels", request_body = TestChannel,
    responses((status = 200, body = TestResult), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope)))]
pub async fn test(
    State(ctx): State<App>,
    RequireSessionOrApiKey(p): RequireSessionOrApiKey,
    ApiJson(req): ApiJson<TestChannel>,
) -> Result<Json<TestResult>, ApiError> {
    require_member(&p)?;
    let provider = parse_provider(&req.provider)?;
    let mut split = valid_config(provider, &req.config)?;
    if provider == Provider::Webhook {
        split.secret.signing_secret = Some(channels::new_signing_secret());
    }
    let actor = crate::capsules::outcome::actor_of(&ctx, Some(&p)).await;
    let event = Event::new(
        "channel.test",
        p.team_id(),
        actor,
        Resource {
            id: String::new(),
            kind: "channel".into(),
        },
    )
    .outcome(Outcome::Success)
    .meta("message", "This is a test message from Wrenn.");
    let channel = OpenChannel {
        id: Uuid::new_v4(),
        team_id: p.team_id(),
        name: req.name.unwrap_or_else(|| "test".into()),
        provider,
        events: Vec::new(),
        config: split.public,
        secrets: split.secret,
    };
    let test_id = format!("test-{}", Uuid::new_v4().simple());
    let a = service(&ctx)
        .attempt(&channel, &event, &event.to_json(), &test_id, Uuid::new_v4())
        .await;
    Ok(Json(TestResult {
        delivered: a.ok(),
        http_status: a.status,
        error: a.error,
        latency_ms: a.latency.as_millis() as u64,
    }))
}
