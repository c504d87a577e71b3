//! The wasmtime host for formatter components.
//!
//! One [`Engine`] (fuel metering and epoch interruption on) serves every formatter; a thread
//! advances its epoch every [`EPOCH_TICK`], so a call's deadline is a number of ticks. A
//! component is compiled once when it is loaded and pre-instantiated against the binding of
//! its world version: a component built for another version (or exporting the wrong shape)
//! is refused at load, never at delivery time. Every call gets a fresh [`Store`] with a fuel
//! budget, an epoch deadline and a [`StoreLimits`] memory cap, and runs on a blocking thread,
//! so a formatter can neither stall the dispatcher nor keep state between events. The linker
//! is empty: the world imports nothing, and nothing else is granted.

use super::manifest::{Manifest, MAX_COMPONENT_BYTES};
use crate::channels::format::{FormatError, FormatInput, Formatter};
use crate::channels::provider::{Message, Provider};
use anyhow::{bail, Context};
use std::path::Path;
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};

/// World version 0.1.0 (`extension-api/wit/since_v0.1.0/`). Frozen.
mod v0_1_0 {
    wasmtime::component::bindgen!({
        path: "../extension-api/wit/since_v0.1.0",
        world: "formatter",
    });
}

/// The world versions this host can run.
pub const WORLD_VERSIONS: [&str; 1] = ["0.1.0"];
/// How often the engine's epoch advances.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);
/// The longest text a formatter may return (longer is an error → built-in text).
const MAX_TEXT_BYTES: usize = 64 * 1024;

/// Per-call budgets.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Fuel (roughly, wasm instructions) per call.
    pub fuel: u64,
    /// Wall-clock deadline per call.
    pub deadline: Duration,
    /// Linear memory cap per call.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 200_000_000,
            deadline: Duration::from_millis(100),
            memory_bytes: 32 * 1024 * 1024,
        }
    }
}

struct CallState {
    limits: StoreLimits,
}

/// The engine and the budgets every formatter shares.
pub struct Host {
    engine: Engine,
    limits: Limits,
}

impl Host {
    pub fn new(limits: Limits) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.consume_fuel(true);
        config.epoch_interruption(true);
        // A formatter needs little; keep reservations small so many can be loaded.
        config.memory_reservation(64 << 20);
        config.memory_guard_size(64 << 10);
        let engine = Engine::new(&config)?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("wrenn-formatter-epoch".into())
            .spawn(move || {
                // Stops once the last handle on the engine is gone.
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;
        Ok(Self { engine, limits })
    }

    /// Compiles and type-checks the component of `manifest` in `dir`.
    pub fn load(&self, dir: &Path, manifest: Manifest) -> anyhow::Result<LoadedFormatter> {
        if !WORLD_VERSIONS.contains(&manifest.world.as_str()) {
            bail!(
                "world version {:?} is not supported by this control plane (it runs {})",
                manifest.world,
                WORLD_VERSIONS.join(", ")
            );
        }
        let path = manifest.component_path(dir);
        let size = std::fs::metadata(&path)
            .with_context(|| format!("{}", path.display()))?
            .len();
        if size > MAX_COMPONENT_BYTES {
            bail!("{} is larger than 16 MiB", path.display());
        }
        let bytes = std::fs::read(&path).with_context(|| format!("{}", path.display()))?;
        let component = Component::new(&self.engine, &bytes)
            .with_context(|| format!("{} is not a valid component", path.display()))?;
        let linker: Linker<CallState> = Linker::new(&self.engine);
        let pre = linker
            .instantiate_pre(&component)
            .context("the component needs imports, but the formatter world grants none")?;
        let pre = v0_1_0::FormatterPre::new(pre).with_context(|| {
            format!(
                "the component does not export wrenn:formatter/format@{} as the world defines it",
                manifest.world
            )
        })?;
        Ok(LoadedFormatter {
            manifest,
            engine: self.engine.clone(),
            limits: self.limits,
            pre,
        })
    }
}

/// A compiled, type-checked formatter.
pub struct LoadedFormatter {
    manifest: Manifest,
    engine: Engine,
    limits: Limits,
    pre: v0_1_0::FormatterPre<CallState>,
}

impl Clone for LoadedFormatter {
    fn clone(&self) -> Self {
        Self {
            manifest: self.manifest.clone(),
            engine: self.engine.clone(),
            limits: self.limits,
            pre: self.pre.clone(),
        }
    }
}

impl LoadedFormatter {
    fn error(&self, reason: impl Into<String>) -> FormatError {
        FormatError {
            name: self.manifest.name.clone(),
            version: self.manifest.version.clone(),
            reason: reason.into(),
        }
    }

    /// One call, on the current (blocking) thread.
    fn call(
        &self,
        input: v0_1_0::exports::wrenn::formatter::format::FormatInput,
    ) -> Result<Message, String> {
        let mut store = Store::new(
            &self.engine,
            CallState {
                limits: StoreLimitsBuilder::new()
                    .memory_size(self.limits.memory_bytes)
                    .instances(4)
                    .tables(4)
                    .memories(2)
                    .trap_on_grow_failure(true)
                    .build(),
            },
        );
        store.limiter(|s| &mut s.limits);
        store
            .set_fuel(self.limits.fuel)
            .map_err(|e| format!("setting fuel: {e}"))?;
        let ticks = (self.limits.deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        let bindings = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| describe_trap(&e, "instantiating"))?;
        let out = bindings
            .wrenn_formatter_format()
            .call_format(&mut store, &input)
            .map_err(|e| describe_trap(&e, "calling format"))?;
        let message = out.map_err(|e| format!("the formatter returned an error: {e}"))?;
        if message.text.len() > MAX_TEXT_BYTES {
            return Err("the formatter returned more than 64 KiB of text".into());
        }
        let structured = match message.structured {
            None => None,
            Some(json) => match serde_json::from_str::<serde_json::Value>(&json) {
                Ok(serde_json::Value::Object(map)) => Some(map),
                _ => return Err("the formatter's structured body is not a JSON object".into()),
            },
        };
        Ok(Message {
            text: message.text,
            structured,
        })
    }
}

/// A trap or host error, named by what ran out when it was a budget.
fn describe_trap(e: &anyhow::Error, during: &str) -> String {
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => format!("{during}: it ran out of fuel"),
        Some(wasmtime::Trap::Interrupt) => format!("{during}: it passed its deadline"),
        Some(t) => format!("{during}: trap: {t}"),
        None => {
            let text = format!("{e:#}");
            if text.contains("memory") && (text.contains("limit") || text.contains("grow")) {
                format!("{during}: it exceeded its memory cap")
            } else {
                format!("{during}: {text}")
            }
        }
    }
}

fn to_wit(input: FormatInput<'_>) -> v0_1_0::exports::wrenn::formatter::format::FormatInput {
    use v0_1_0::exports::wrenn::formatter::format as w;
    let e = input.event;
    w::FormatInput {
        event: w::Event {
            event: e.event.clone(),
            outcome: e.outcome.map(|o| o.as_str().to_string()),
            timestamp: e
                .timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            team_id: e.team_id.clone(),
            actor: w::Actor {
                kind: e.actor.kind.clone(),
                id: e.actor.id.clone(),
                name: e.actor.name.clone(),
            },
            resource: w::Resource {
                id: e.resource.id.clone(),
                kind: e.resource.kind.clone(),
            },
            metadata: e
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            error: e.error.clone(),
        },
        provider: input.provider.as_str().to_string(),
        channel_name: input.channel_name.to_string(),
    }
}

#[async_trait::async_trait]
impl Formatter for LoadedFormatter {
    fn name(&self) -> &str {
        &self.manifest.name
    }

    fn version(&self) -> &str {
        &self.manifest.version
    }

    fn serves(&self, provider: Provider) -> bool {
        self.manifest.serves(provider)
    }

    async fn format(&self, input: FormatInput<'_>) -> Result<Message, FormatError> {
        let wit = to_wit(input);
        // The call owns what it needs: a formatter cannot hold the dispatcher's thread.
        let me = self.clone();
        let deadline = self.limits.deadline * 4 + Duration::from_millis(200);
        let task = tokio::task::spawn_blocking(move || me.call(wit));
        match tokio::time::timeout(deadline, task).await {
            Ok(Ok(Ok(m))) => Ok(m),
            Ok(Ok(Err(reason))) => Err(self.error(reason)),
            Ok(Err(join)) => Err(self.error(format!("the call panicked: {join}"))),
            Err(_) => Err(self.error("it did not return in time")),
        }
    }
}
