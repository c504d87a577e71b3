//! Notification channels: where a team's lifecycle events go.
//!
//! # Layout
//!
//! - [`provider`]: the seven providers, per-provider config validation (public part vs. sealed
//!   secrets) and each chat provider's request body.
//! - [`format`]: the [`Formatter`](format::Formatter) interface chat messages go through, the
//!   built-in text, and the registry channels name in `config.formatter`.
//! - [`transport`]: outbound HTTP that refuses internal destinations (resolved once, checked,
//!   connected to), follows no redirects and bounds time and response size.
//! - [`dispatch`]: the `wrenn-channels-v1` consumer of `wrenn:events` (fan-out of each event to
//!   the subscribed channels, first attempt inline) and the retry queue worker (10 s, then 30 s,
//!   then dropped and logged).
//! - [`Channels`] (this file): the service routes and workers share: sealing secrets, and one
//!   delivery attempt to one channel ([`Channels::attempt`]), signed for webhooks.
//!
//! Data flows: audit + `events::publish` → stream → [`dispatch`] → [`Channels::attempt`] →
//! receiver; each attempt is a row in `channel_deliveries`, readable through
//! `GET /v1/channels/{id}/deliveries`.

pub mod dispatch;
pub mod format;
pub mod provider;
pub mod transport;

use crate::db;
use crate::events::Event;
use chrono::{SecondsFormat, Utc};
use format::{FormatInput, Formatters};
use hmac::{Hmac, Mac};
use provider::{Provider, Secrets};
use sha2::Sha256;
use std::time::Duration;
use transport::{Attempt, Transport};
use uuid::Uuid;

/// Header: a UUID per delivery attempt.
pub const DELIVERY_HEADER: &str = "X-Wrenn-Delivery";
/// Header: RFC 3339 UTC time the signature covers.
pub const TIMESTAMP_HEADER: &str = "X-Wrenn-Timestamp";
/// Header: `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
pub const SIGNATURE_HEADER: &str = "X-WRENN-SIGNATURE";
/// The event types a channel can subscribe to.
pub const SUBSCRIBABLE: [&str; 8] = [
    "capsule.create",
    "capsule.pause",
    "capsule.resume",
    "capsule.destroy",
    "template.snapshot.create",
    "template.snapshot.delete",
    "host.up",
    "host.down",
];
/// Channels per team.
pub const MAX_CHANNELS_PER_TEAM: i64 = 50;

/// Delivery tunables (from [`crate::config::EventsConfig`]).
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    /// Delay before each retry; after the last one fails the event is dropped for that channel.
    pub retry_delays: Vec<Duration>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Deliveries may reach loopback and private addresses (never cloud metadata).
    pub allow_internal: bool,
    /// Attempts in flight at once per control plane.
    pub concurrency: usize,
    /// How often the retry queue is polled.
    pub retry_poll: Duration,
    /// Delivery records are kept this many days.
    pub retention_days: i64,
}

impl ChannelSettings {
    pub fn with_retention(mut self, days: i64) -> Self {
        self.retention_days = days.max(1);
        self
    }
}

impl Default for ChannelSettings {
    fn default() -> Self {
        Self {
            retry_delays: vec![Duration::from_secs(10), Duration::from_secs(30)],
            timeout: Duration::from_secs(10),
            allow_internal: false,
            concurrency: 64,
            retry_poll: Duration::from_millis(250),
            retention_days: 7,
        }
    }
}

/// Why a stored channel cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("the channel's provider {0:?} is unknown")]
    Provider(String),
    #[error("the channel's secrets cannot be opened (was WRENN_ENCRYPTION_KEY changed?)")]
    Secrets,
}

/// A channel ready to deliver to: its row with the secrets opened.
#[derive(Clone)]
pub struct OpenChannel {
    pub id: Uuid,
    pub team_id: Uuid,
    pub name: String,
    pub provider: Provider,
    pub events: Vec<String>,
    pub config: serde_json::Value,
    pub secrets: Secrets,
}

impl OpenChannel {
    pub fn wants(&self, event: &str) -> bool {
        self.events.iter().any(|e| e == event)
    }

    fn formatter(&self) -> Option<&str> {
        self.config.get("formatter").and_then(|f| f.as_str())
    }
}

/// The channels service.
pub struct Channels {
    key: [u8; 32],
    transport: Transport,
    formatters: Formatters,
    pub settings: ChannelSettings,
}

impl Channels {
    pub fn new(key: [u8; 32], settings: ChannelSettings, formatters: Formatters) -> Self {
        Self {
            key,
            transport: Transport::new(settings.timeout, settings.allow_internal),
            formatters,
            settings,
        }
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Seals a channel's secrets for storage.
    pub fn seal(&self, secrets: &Secrets) -> Vec<u8> {
        let json = serde_json::to_vec(secrets).expect("secrets serialise");
        crate::hosts::ca::seal(&self.key, &json)
    }

    /// Opens a stored channel.
    pub fn open(&self, row: &db::channels::Channel) -> Result<OpenChannel, ChannelError> {
        let provider = Provider::parse(&row.provider)
            .ok_or_else(|| ChannelError::Provider(row.provider.clone()))?;
        let plain = crate::hosts::ca::open(&self.key, &row.secret).ok_or(ChannelError::Secrets)?;
        let secrets = serde_json::from_slice(&plain).map_err(|_| ChannelError::Secrets)?;
        Ok(OpenChannel {
            id: row.id,
            team_id: row.team_id,
            name: row.name.clone(),
            provider,
            events: row.events.clone(),
            config: row.config.clone(),
            secrets,
        })
    }

    /// One delivery attempt of `event` (`payload` is its JSON as published) to `channel`.
    /// `event_id` is the stream entry id: Matrix uses it in the transaction id so a retry of
    /// the same event is deduplicated by the homeserver.
    pub async fn attempt(
        &self,
        channel: &OpenChannel,
        event: &Event,
        payload: &str,
        event_id: &str,
        delivery_id: Uuid,
    ) -> Attempt {
        let request = match self
            .request(channel, event, payload, event_id, delivery_id)
            .await
        {
            Ok(r) => r,
            Err(message) => {
                return Attempt {
                    status: None,
                    error: message,
                    latency: Duration::ZERO,
                }
            }
        };
        self.transport.send(request).await
    }

    async fn request(
        &self,
        channel: &OpenChannel,
        event: &Event,
        payload: &str,
        event_id: &str,
        delivery_id: Uuid,
    ) -> Result<reqwest::RequestBuilder, String> {
        let http = self.transport.client();
        let missing = || "the channel's configuration is incomplete".to_string();
        if channel.provider == Provider::Webhook {
            let url = channel.secrets.url.as_deref().ok_or_else(missing)?;
            let secret = channel
                .secrets
                .signing_secret
                .as_deref()
                .ok_or_else(missing)?;
            let timestamp = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
            return Ok(http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(DELIVERY_HEADER, delivery_id.to_string())
                .header(TIMESTAMP_HEADER, &timestamp)
                .header(
                    SIGNATURE_HEADER,
                    sign(secret, &timestamp, payload.as_bytes()),
                )
                .body(payload.to_string()));
        }
        let message = self
            .formatters
            .render(
                channel.formatter(),
                FormatInput {
                    event,
                    provider: channel.provider,
                    channel_name: &channel.name,
                },
            )
            .await;
        let body = provider::chat_body(channel.provider, &message, &channel.config);
        let public = |k: &str| {
            channel
                .config
                .get(k)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let request = match channel.provider {
            Provider::Webhook => unreachable!("handled above"),
            Provider::Discord | Provider::Slack | Provider::Teams | Provider::Googlechat => {
                http.post(channel.secrets.url.as_deref().ok_or_else(missing)?)
            }
            Provider::Telegram => {
                let base = public("api_url").ok_or_else(missing)?;
                let token = channel.secrets.bot_token.as_deref().ok_or_else(missing)?;
                http.post(format!("{base}/bot{token}/sendMessage"))
            }
            Provider::Matrix => {
                let base = public("homeserver_url").ok_or_else(missing)?;
                let room = public("room_id").ok_or_else(missing)?;
                let token = channel
                    .secrets
                    .access_token
                    .as_deref()
                    .ok_or_else(missing)?;
                let mut url = reqwest::Url::parse(&base).map_err(|_| missing())?;
                let txn = format!("wrenn.{}.{}", channel.id.simple(), event_id);
                url.path_segments_mut()
                    .map_err(|_| missing())?
                    .pop_if_empty()
                    .extend([
                        "_matrix",
                        "client",
                        "v3",
                        "rooms",
                        &room,
                        "send",
                        "m.room.message",
                        &txn,
                    ]);
                http.put(url).bearer_auth(token)
            }
        };
        Ok(request
            .header(DELIVERY_HEADER, delivery_id.to_string())
            .json(&body))
    }
}

/// `sha256=` + hex HMAC-SHA256 of `timestamp + "." + body` under `secret`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A new webhook signing secret (`whsec_` + 64 hex), shown once at creation.
pub fn new_signing_secret() -> String {
    format!("whsec_{}", hex::encode(rand::random::<[u8; 32]>()))
}
