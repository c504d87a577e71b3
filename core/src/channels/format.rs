//! Turning an event into a chat message: the [`Formatter`] interface, the built-in text
//! formatter, and the [`Formatters`] registry that channels name in `config.formatter`.
//!
//! A formatter that fails (an error, a trap, a deadline) never blocks a delivery: the
//! dispatcher falls back to [`BuiltinText`] and logs why. Run-time loaded formatters (the
//! WebAssembly host) register through [`FormatterSource`], which needs no change here.

use super::provider::{Message, Provider};
use crate::events::{Event, Outcome};
use std::sync::Arc;

/// What a formatter is given.
#[derive(Debug, Clone, Copy)]
pub struct FormatInput<'a> {
    pub event: &'a Event,
    pub provider: Provider,
    /// The channel's display name.
    pub channel_name: &'a str,
}

/// Why a formatter produced no message (the delivery falls back to the built-in text).
#[derive(Debug, Clone, thiserror::Error)]
#[error("formatter {name} {version}: {reason}")]
pub struct FormatError {
    pub name: String,
    pub version: String,
    pub reason: String,
}

/// Renders events for chat providers.
#[async_trait::async_trait]
pub trait Formatter: Send + Sync + 'static {
    /// The name channels use in `config.formatter`.
    fn name(&self) -> &str;
    /// Its version, for logs.
    fn version(&self) -> &str;
    /// Whether it renders for `provider`.
    fn serves(&self, provider: Provider) -> bool;
    async fn format(&self, input: FormatInput<'_>) -> Result<Message, FormatError>;
}

/// Where named formatters come from (e.g. a directory of WebAssembly components, reloaded
/// when files change).
pub trait FormatterSource: Send + Sync + 'static {
    fn get(&self, name: &str) -> Option<Arc<dyn Formatter>>;
}

/// The formatters of this control plane: the built-in text plus any sources.
#[derive(Clone, Default)]
pub struct Formatters {
    sources: Vec<Arc<dyn FormatterSource>>,
}

impl Formatters {
    pub fn with_source(mut self, source: Arc<dyn FormatterSource>) -> Self {
        self.sources.push(source);
        self
    }

    /// The message for a delivery: the named formatter's when it exists, serves the
    /// provider and succeeds; otherwise the built-in text (with the reason logged).
    pub async fn render(&self, formatter: Option<&str>, input: FormatInput<'_>) -> Message {
        if let Some(name) = formatter {
            match self.sources.iter().find_map(|s| s.get(name)) {
                Some(f) if f.serves(input.provider) => match f.format(input).await {
                    Ok(m) => return m,
                    Err(e) => tracing::warn!(error = %e, event = %input.event.event,
                        "A formatter failed; the built-in text is sent instead."),
                },
                Some(f) => tracing::warn!(formatter = name, version = f.version(),
                    provider = %input.provider,
                    "The channel's formatter does not serve its provider; the built-in text is sent."),
                None => tracing::warn!(
                    formatter = name,
                    "The channel's formatter is not loaded; the built-in text is sent."
                ),
            }
        }
        BuiltinText::render(input)
    }
}

/// The built-in rendering: every payload field, as readable text. The first line is a title.
pub struct BuiltinText;

impl BuiltinText {
    pub fn render(input: FormatInput<'_>) -> Message {
        let e = input.event;
        let what = match e.outcome {
            Some(Outcome::Success) => format!("✅ {} succeeded", e.event),
            Some(Outcome::Error) => format!("❌ {} failed", e.event),
            None if e.event == "host.down" => format!("🔴 {}", e.event),
            None => format!("🟢 {}", e.event),
        };
        let mut text = format!("{what}: {} {}", e.resource.kind, e.resource.id);
        text.push_str(&format!("\nTeam: {}", e.team_id));
        let actor = if e.actor.name.is_empty() || e.actor.name == e.actor.kind {
            e.actor.kind.clone()
        } else {
            format!("{} {}", e.actor.kind, e.actor.name)
        };
        text.push_str(&format!("\nBy: {actor}"));
        for (k, v) in &e.metadata {
            text.push_str(&format!("\n{k}: {v}"));
        }
        if !e.error.is_empty() {
            text.push_str(&format!("\nError: {}", e.error));
        }
        text.push_str(&format!(
            "\nAt: {}",
            e.timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
        if !input.channel_name.is_empty() {
            text.push_str(&format!("\nChannel: {}", input.channel_name));
        }
        Message {
            text,
            structured: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Actor, Resource};
    use uuid::Uuid;

    struct Failing;

    #[async_trait::async_trait]
    impl Formatter for Failing {
        fn name(&self) -> &str {
            "failing"
        }
        fn version(&self) -> &str {
            "1.0.0"
        }
        fn serves(&self, _: Provider) -> bool {
            true
        }
        async fn format(&self, _: FormatInput<'_>) -> Result<Message, FormatError> {
            Err(FormatError {
                name: "failing".into(),
                version: "1.0.0".into(),
                reason: "trap".into(),
            })
        }
    }

    impl FormatterSource for Failing {
        fn get(&self, name: &str) -> Option<Arc<dyn Formatter>> {
            (name == "failing").then(|| Arc::new(Failing) as Arc<dyn Formatter>)
        }
    }

    #[tokio::test]
    async fn a_failing_formatter_falls_back_to_the_builtin_text() {
        let event = Event::new(
            "capsule.pause",
            Uuid::from_u128(1),
            Actor::user(Uuid::from_u128(2), "alice@example.com"),
            Resource::sandbox(Uuid::from_u128(3)),
        )
        .outcome(Outcome::Error)
        .meta("reason", "ttl_expired")
        .error("agent unreachable");
        let input = FormatInput {
            event: &event,
            provider: Provider::Slack,
            channel_name: "ops",
        };
        let formatters = Formatters::default().with_source(Arc::new(Failing));
        let m = formatters.render(Some("failing"), input).await;
        assert_eq!(m, BuiltinText::render(input));
        assert!(
            m.text.starts_with("❌ capsule.pause failed: sandbox sb_"),
            "{}",
            m.text
        );
        assert!(m.text.contains("By: user alice@example.com"));
        assert!(m.text.contains("reason: ttl_expired"));
        assert!(m.text.contains("Error: agent unreachable"));
        assert_eq!(formatters.render(Some("missing"), input).await, m);
    }
}
