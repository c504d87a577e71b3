//! Lifecycle events: the payload of API.md "Events and notification channels", the durable
//! stream `wrenn:events` and the transient live feed behind the SSE endpoints.
//!
//! - [`publish`] appends an [`Event`] to the capped stream (field `payload`, the JSON below)
//!   and also announces it on the live channel so dashboards see it at once.
//! - [`publish_transient`] only announces (used for `capsule.state.changed`, which never
//!   enters the stream).
//! - [`live::LiveEvents`] holds one Redis subscription per process and fans it out to SSE
//!   clients ([`crate::http::events`]).
//! - [`consumer`] is the one durable reader of the stream: consumer groups, batches, ack after
//!   handling, claiming a dead consumer's entries. Every reader uses it: the notification
//!   channels ([`crate::channels`]) and each extension's [`hooks`] group.

pub mod consumer;
pub mod hooks;
pub mod live;

use crate::capsules::state::CapsuleStatus;
use chrono::{DateTime, SecondsFormat, Utc};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use uuid::Uuid;
use wrenn_extension_api::ids;

/// The durable, capped event stream (consumer groups read it).
pub const STREAM: &str = "wrenn:events";
/// Approximate cap of [`STREAM`] (`XADD MAXLEN ~`).
pub const STREAM_MAXLEN: usize = 100_000;
/// Stream entry field holding the JSON payload.
pub const PAYLOAD_FIELD: &str = "payload";
/// Redis pub/sub channel of the live feed (every event, plus `capsule.state.changed`).
pub const LIVE_CHANNEL: &str = "wrenn:events:live";
/// The transient event type sent over SSE only.
pub const CAPSULE_STATE_CHANGED: &str = "capsule.state.changed";

/// `success` or `error` (exactly these strings); omitted for host events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
        }
    }
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `user`, `api_key`, `system` (or `host` for agent callbacks in the audit log).
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub name: String,
}

impl Actor {
    pub fn user(user_id: Uuid, email: impl Into<String>) -> Self {
        Self {
            kind: "user".into(),
            id: ids::encode(ids::USER, user_id),
            name: email.into(),
        }
    }

    pub fn api_key(key_id: Uuid, name: impl Into<String>) -> Self {
        Self {
            kind: "api_key".into(),
            id: ids::encode(ids::API_KEY, key_id),
            name: name.into(),
        }
    }

    /// An extension acting through the capsule facade.
    pub fn extension(name: &str) -> Self {
        Self {
            kind: "extension".into(),
            id: name.to_string(),
            name: name.to_string(),
        }
    }

    pub fn system() -> Self {
        Self {
            kind: "system".into(),
            id: String::new(),
            name: "system".into(),
        }
    }
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub id: String,
    /// `sandbox`, `snapshot` or `host` (and `team` or `user` for admin actions).
    #[serde(rename = "type")]
    pub kind: String,
}

impl Resource {
    pub fn sandbox(capsule_id: Uuid) -> Self {
        Self {
            id: ids::encode(ids::CAPSULE, capsule_id),
            kind: "sandbox".into(),
        }
    }

    pub fn snapshot(name: impl Into<String>) -> Self {
        Self {
            id: name.into(),
            kind: "snapshot".into(),
        }
    }

    pub fn team(team_id: Uuid) -> Self {
        Self {
            id: ids::encode(ids::TEAM, team_id),
            kind: "team".into(),
        }
    }

    pub fn user(user_id: Uuid) -> Self {
        Self {
            id: ids::encode(ids::USER, user_id),
            kind: "user".into(),
        }
    }

    pub fn host(host_id: Uuid) -> Self {
        Self {
            id: ids::encode(ids::HOST, host_id),
            kind: "host".into(),
        }
    }
}

fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// The payload every channel receives, field for field as API.md shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub outcome: Option<Outcome>,
    #[serde(serialize_with = "rfc3339")]
    pub timestamp: DateTime<Utc>,
    /// Wire team id (`tm_…`); the platform team for regular hosts.
    pub team_id: String,
    pub actor: Actor,
    pub resource: Resource,
    /// String values only (`reason`, `inferred`, `from`, `to`, ...).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub error: String,
}

impl Event {
    /// A new event at the current time with empty metadata and error.
    pub fn new(event: impl Into<String>, team_id: Uuid, actor: Actor, resource: Resource) -> Self {
        Self {
            event: event.into(),
            outcome: None,
            timestamp: Utc::now(),
            team_id: ids::encode(ids::TEAM, team_id),
            actor,
            resource,
            metadata: BTreeMap::new(),
            error: String::new(),
        }
    }

    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = Some(outcome);
        self
    }

    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    pub fn error(mut self, error: impl Into<String>) -> Self {
        self.error = error.into();
        self
    }

    /// The team as a UUID (`None` if the wire id is malformed).
    pub fn team_uuid(&self) -> Option<Uuid> {
        ids::decode(ids::TEAM, &self.team_id)
    }

    /// A `capsule.state.changed` event (SSE only): `metadata.from` / `metadata.to`.
    pub fn capsule_state_changed(
        team_id: Uuid,
        capsule_id: Uuid,
        from: Option<CapsuleStatus>,
        to: CapsuleStatus,
        actor: Actor,
    ) -> Self {
        Self::new(
            CAPSULE_STATE_CHANGED,
            team_id,
            actor,
            Resource::sandbox(capsule_id),
        )
        .meta("from", from.map(CapsuleStatus::as_str).unwrap_or(""))
        .meta("to", to.as_str())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events serialise")
    }
}

/// Appends `event` to [`STREAM`] (capped at ~[`STREAM_MAXLEN`]) and announces it on the live
/// channel. Returns the stream entry id. `capsule.state.changed` is refused here: it is
/// transient by definition and goes through [`publish_transient`].
pub async fn publish(redis: &mut ConnectionManager, event: &Event) -> redis::RedisResult<String> {
    debug_assert_ne!(event.event, CAPSULE_STATE_CHANGED);
    if event.event == CAPSULE_STATE_CHANGED {
        publish_transient(redis, event).await?;
        return Ok(String::new());
    }
    let payload = event.to_json();
    let (id, _): (String, i64) = redis::pipe()
        .atomic()
        .cmd("XADD")
        .arg(STREAM)
        .arg("MAXLEN")
        .arg("~")
        .arg(STREAM_MAXLEN)
        .arg("*")
        .arg(PAYLOAD_FIELD)
        .arg(&payload)
        .cmd("PUBLISH")
        .arg(LIVE_CHANNEL)
        .arg(&payload)
        .query_async(redis)
        .await?;
    tracing::debug!(event = %event.event, stream_id = %id, "Event published.");
    Ok(id)
}

/// Announces `event` on the live channel only (never the stream).
pub async fn publish_transient(
    redis: &mut ConnectionManager,
    event: &Event,
) -> redis::RedisResult<()> {
    let _: i64 = redis::cmd("PUBLISH")
        .arg(LIVE_CHANNEL)
        .arg(event.to_json())
        .query_async(redis)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_matches_the_contract() {
        let team = Uuid::from_u128(7);
        let capsule = Uuid::from_u128(9);
        let mut e = Event::new(
            "capsule.pause",
            team,
            Actor::system(),
            Resource::sandbox(capsule),
        )
        .outcome(Outcome::Success)
        .meta("reason", "ttl_expired");
        e.timestamp = "2026-05-19T14:23:01.123Z".parse().unwrap();
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["event"], "capsule.pause");
        assert_eq!(v["outcome"], "success");
        assert_eq!(v["timestamp"], "2026-05-19T14:23:01Z");
        assert_eq!(v["team_id"], ids::encode(ids::TEAM, team));
        assert_eq!(v["actor"]["type"], "system");
        assert_eq!(v["resource"]["type"], "sandbox");
        assert_eq!(v["resource"]["id"], ids::encode(ids::CAPSULE, capsule));
        assert_eq!(v["metadata"]["reason"], "ttl_expired");
        assert_eq!(v["error"], "");
        let host = Event::new("host.down", team, Actor::system(), Resource::host(capsule));
        let v: serde_json::Value = serde_json::from_str(&host.to_json()).unwrap();
        assert!(v.get("outcome").is_none(), "host events carry no outcome");
    }
}
