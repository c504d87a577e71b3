//! Providers and their configuration: what each one needs, which parts are secret, and how a
//! request body looks on its wire.
//!
//! A channel's config is validated here on create and on `PUT .../config`, then split into a
//! public part (stored as JSON and returned by the API) and a secret part (sealed with
//! AES-256-GCM, never returned).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::fmt;
use utoipa::ToSchema;

/// A notification provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Webhook,
    Discord,
    Slack,
    Teams,
    Googlechat,
    Telegram,
    Matrix,
}

impl Provider {
    pub const ALL: [Provider; 7] = [
        Provider::Webhook,
        Provider::Discord,
        Provider::Slack,
        Provider::Teams,
        Provider::Googlechat,
        Provider::Telegram,
        Provider::Matrix,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Webhook => "webhook",
            Provider::Discord => "discord",
            Provider::Slack => "slack",
            Provider::Teams => "teams",
            Provider::Googlechat => "googlechat",
            Provider::Telegram => "telegram",
            Provider::Matrix => "matrix",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A config that failed validation: a client-facing message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

/// A validated config, split for storage.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitConfig {
    /// Returned by the API (`config`).
    pub public: Value,
    /// Sealed at rest; never returned.
    pub secret: Secrets,
}

/// The secret settings of a channel (only the ones its provider has are set).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secrets {
    /// Destination URL of URL-based providers (incoming-webhook URLs carry their token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Webhook signing secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
    /// Telegram bot token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_token: Option<String>,
    /// Matrix access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
}

/// The Telegram Bot API's default base.
pub const TELEGRAM_API: &str = "https://api.telegram.org";
/// Longest accepted config string (URLs, tokens, ids).
const MAX_VALUE_LEN: usize = 2048;

/// The keys each provider accepts (`formatter` is accepted by every chat provider).
fn allowed_keys(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::Webhook => &["url"],
        Provider::Discord | Provider::Slack | Provider::Teams | Provider::Googlechat => {
            &["url", "formatter"]
        }
        Provider::Telegram => &["bot_token", "chat_id", "api_url", "formatter"],
        Provider::Matrix => &["homeserver_url", "room_id", "access_token", "formatter"],
    }
}

/// Validates `config` for `provider` and splits it. A webhook's signing secret is not part
/// of the input; the caller adds it ([`Secrets::signing_secret`]).
pub fn validate(provider: Provider, config: &Value) -> Result<SplitConfig, ConfigError> {
    let Some(obj) = config.as_object() else {
        return Err(err("config must be a JSON object"));
    };
    let allowed = allowed_keys(provider);
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(err(format!(
            "config field {k:?} is not known for provider {provider} (expected: {})",
            allowed.join(", ")
        )));
    }
    let mut public = Map::new();
    let mut secret = Secrets::default();
    if let Some(f) = optional_string(obj, "formatter")? {
        if !f
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || f.len() > 64
        {
            return Err(err(
                "config.formatter must be a formatter name (letters, digits, - _ .)",
            ));
        }
        public.insert("formatter".into(), Value::String(f));
    }
    match provider {
        Provider::Webhook
        | Provider::Discord
        | Provider::Slack
        | Provider::Teams
        | Provider::Googlechat => {
            let url = required_url(obj, "url")?;
            public.insert("url_host".into(), Value::String(url_host(&url)));
            secret.url = Some(url);
        }
        Provider::Telegram => {
            let token = required_string(obj, "bot_token")?;
            // <bot id>:<secret>, as BotFather issues them.
            let well_formed = token.split_once(':').is_some_and(|(id, rest)| {
                !id.is_empty()
                    && id.bytes().all(|b| b.is_ascii_digit())
                    && !rest.is_empty()
                    && rest
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
            if !well_formed {
                return Err(err("config.bot_token must look like 123456:ABC-token"));
            }
            let chat_id = match obj.get("chat_id") {
                Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 128 => {
                    s.trim().to_string()
                }
                Some(Value::Number(n)) if n.is_i64() => n.to_string(),
                _ => {
                    return Err(err(
                        "config.chat_id is required (a chat id or @channel name)",
                    ))
                }
            };
            let api_url = match optional_string(obj, "api_url")? {
                Some(_) => required_url(obj, "api_url")?,
                None => TELEGRAM_API.to_string(),
            };
            public.insert("chat_id".into(), Value::String(chat_id));
            public.insert(
                "api_url".into(),
                Value::String(api_url.trim_end_matches('/').to_string()),
            );
            secret.bot_token = Some(token);
        }
        Provider::Matrix => {
            let homeserver = required_url(obj, "homeserver_url")?;
            let room = required_string(obj, "room_id")?;
            // Room ids (`!opaque:server`) or aliases (`#name:server`).
            if !(room.starts_with('!') || room.starts_with('#')) || !room.contains(':') {
                return Err(err(
                    "config.room_id must be a room id like !abc:example.org",
                ));
            }
            let token = required_string(obj, "access_token")?;
            public.insert(
                "homeserver_url".into(),
                Value::String(homeserver.trim_end_matches('/').to_string()),
            );
            public.insert("room_id".into(), Value::String(room));
            secret.access_token = Some(token);
        }
    }
    Ok(SplitConfig {
        public: Value::Object(public),
        secret,
    })
}

fn optional_string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, ConfigError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= MAX_VALUE_LEN => Ok(Some(s.trim().to_string())),
        Some(Value::String(_)) => Err(err(format!("config.{key} is too long"))),
        Some(_) => Err(err(format!("config.{key} must be a string"))),
    }
}

fn required_string(obj: &Map<String, Value>, key: &str) -> Result<String, ConfigError> {
    match optional_string(obj, key)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(err(format!("config.{key} is required"))),
    }
}

fn required_url(obj: &Map<String, Value>, key: &str) -> Result<String, ConfigError> {
    let s = required_string(obj, key)?;
    let url = reqwest::Url::parse(&s).map_err(|_| err(format!("config.{key} is not a URL")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(err(format!(
            "config.{key} must be an http:// or https:// URL"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err(format!("config.{key} must not carry credentials")));
    }
    Ok(s)
}

/// The host of a URL, to tell channels apart without revealing the URL's secret path.
fn url_host(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}

/// A chat message ready for a provider: the text and, where the provider has one, a
/// structured body whose top-level fields are merged into the request body (Slack `blocks`,
/// Discord `embeds`, Matrix `formatted_body`, ...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    pub text: String,
    pub structured: Option<Map<String, Value>>,
}

/// The JSON body a chat provider receives for `message`.
pub fn chat_body(provider: Provider, message: &Message, public: &Value) -> Value {
    let mut body = match provider {
        // Webhooks get the raw event, never a chat body.
        Provider::Webhook => Value::Null,
        // No pings from names in the text (`@everyone` in a capsule name, say).
        Provider::Discord => json!({
            "content": truncate(&message.text, 2000),
            "allowed_mentions": {"parse": []},
        }),
        Provider::Slack => json!({"text": slack_escape(&message.text)}),
        Provider::Googlechat => json!({"text": truncate(&message.text, 4096)}),
        Provider::Teams => {
            let (title, rest) = message
                .text
                .split_once('\n')
                .unwrap_or((message.text.as_str(), ""));
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {"type": "TextBlock", "text": title, "weight": "Bolder", "wrap": true},
                            {"type": "TextBlock", "text": rest, "wrap": true},
                        ],
                    },
                }],
            })
        }
        Provider::Telegram => json!({
            "chat_id": public.get("chat_id").cloned().unwrap_or(Value::Null),
            "text": truncate(&message.text, 4096),
            "disable_web_page_preview": true,
        }),
        Provider::Matrix => json!({"msgtype": "m.text", "body": message.text}),
    };
    if let (Some(structured), Some(obj)) = (&message.structured, body.as_object_mut()) {
        for (k, v) in structured {
            obj.insert(k.clone(), v.clone());
        }
    }
    body
}

/// Slack mrkdwn control characters, escaped so names cannot inject `<!channel>` or links.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max_chars.saturating_sub(1)).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_validates_its_fields() {
        let ok = |p, v: Value| validate(p, &v).unwrap();
        let bad = |p, v: Value| validate(p, &v).unwrap_err().0;
        let w = ok(
            Provider::Webhook,
            json!({"url": "https://example.org/hook"}),
        );
        assert_eq!(w.public, json!({"url_host": "example.org"}));
        assert_eq!(w.secret.url.as_deref(), Some("https://example.org/hook"));
        assert!(bad(Provider::Webhook, json!({})).contains("url"));
        assert!(bad(Provider::Webhook, json!({"url": "ftp://x"})).contains("http"));
        assert!(bad(Provider::Webhook, json!({"url": "https://u:p@x/"})).contains("credentials"));
        assert!(bad(Provider::Slack, json!({"url": "https://x/", "x": 1})).contains("\"x\""));
        assert!(bad(Provider::Webhook, json!([1])).contains("object"));
        let t = ok(
            Provider::Telegram,
            json!({"bot_token": "123:abc-DEF_g", "chat_id": -100}),
        );
        assert_eq!(t.public["chat_id"], "-100");
        assert_eq!(t.public["api_url"], TELEGRAM_API);
        assert!(bad(
            Provider::Telegram,
            json!({"bot_token": "nope", "chat_id": 1})
        )
        .contains("bot_token"));
        assert!(bad(Provider::Telegram, json!({"bot_token": "1:a"})).contains("chat_id"));
        let m = ok(
            Provider::Matrix,
            json!({"homeserver_url": "https://m.org/", "room_id": "!r:m.org", "access_token": "t"}),
        );
        assert_eq!(m.public["homeserver_url"], "https://m.org");
        assert!(m.public.get("access_token").is_none());
        assert!(bad(
            Provider::Matrix,
            json!({"homeserver_url": "https://m.org", "room_id": "room", "access_token": "t"})
        )
        .contains("room_id"));
        assert!(bad(
            Provider::Discord,
            json!({"url": "https://d/", "formatter": "../x"})
        )
        .contains("formatter"));
    }

    #[test]
    fn chat_bodies_speak_each_wire_format() {
        let msg = Message {
            text: "Capsule paused <!channel>\nsecond line".into(),
            structured: None,
        };
        let slack = chat_body(Provider::Slack, &msg, &Value::Null);
        assert_eq!(
            slack["text"],
            "Capsule paused &lt;!channel&gt;\nsecond line"
        );
        let discord = chat_body(Provider::Discord, &msg, &Value::Null);
        assert_eq!(discord["allowed_mentions"]["parse"], json!([]));
        let teams = chat_body(Provider::Teams, &msg, &Value::Null);
        assert_eq!(
            teams["attachments"][0]["content"]["body"][0]["text"],
            "Capsule paused <!channel>"
        );
        let tg = chat_body(Provider::Telegram, &msg, &json!({"chat_id": "42"}));
        assert_eq!(tg["chat_id"], "42");
        let mut structured = Map::new();
        structured.insert("blocks".into(), json!([{"type": "section"}]));
        let with = Message {
            text: "t".into(),
            structured: Some(structured),
        };
        assert_eq!(
            chat_body(Provider::Slack, &with, &Value::Null)["blocks"][0]["type"],
            "section"
        );
        let long = Message {
            text: "x".repeat(3000),
            structured: None,
        };
        assert_eq!(
            chat_body(Provider::Discord, &long, &Value::Null)["content"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            2000
        );
    }
}
