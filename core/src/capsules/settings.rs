//! Capsule settings from the environment. (The port-proxy domain is `WRENN_DOMAIN`, read by
//! core's configuration and exposed as `ctx.config().domain`.)

use std::sync::{Arc, OnceLock};
use wrenn_extension_api::ServerContext;

/// Settings of the capsule subsystem.
#[derive(Debug, Clone)]
pub struct CapsuleSettings {
    /// `WRENN_DEFAULT_TEMPLATE`: the base template used when a create request names none (and
    /// what `minimal` means). Default `minimal-ubuntu`, as in the seed.
    pub default_template: String,
    /// `WRENN_MAX_UPLOAD_BYTES`: cap of `POST /files/write` (default 100 MB).
    pub max_upload_bytes: u64,
    /// `WRENN_STATS_INTERVAL_SEC`: how often the stats sampler runs (default 60 s).
    pub stats_interval_sec: u64,
    /// `WRENN_PROXY_TOKEN_TTL_SEC`: lifetime of per-capsule access tokens (default 1 h).
    pub proxy_token_ttl_sec: u64,
}

impl Default for CapsuleSettings {
    fn default() -> Self {
        Self {
            default_template: "minimal-ubuntu".into(),
            max_upload_bytes: 100 * 1024 * 1024,
            stats_interval_sec: 60,
            proxy_token_ttl_sec: 3600,
        }
    }
}

impl CapsuleSettings {
    /// Reads the settings from the environment, defaults where unset or unparsable.
    pub fn from_env() -> Self {
        let d = Self::default();
        let num = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        let text = |name: &str, default: String| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .unwrap_or(default)
        };
        Self {
            default_template: text("WRENN_DEFAULT_TEMPLATE", d.default_template),
            max_upload_bytes: num("WRENN_MAX_UPLOAD_BYTES", d.max_upload_bytes),
            stats_interval_sec: num("WRENN_STATS_INTERVAL_SEC", d.stats_interval_sec).max(1),
            proxy_token_ttl_sec: num("WRENN_PROXY_TOKEN_TTL_SEC", d.proxy_token_ttl_sec),
        }
    }

    /// The settings registered on the context, or (once) the environment's.
    pub fn of(ctx: &ServerContext) -> Arc<CapsuleSettings> {
        static FROM_ENV: OnceLock<Arc<CapsuleSettings>> = OnceLock::new();
        ctx.service::<CapsuleSettings>().unwrap_or_else(|| {
            FROM_ENV
                .get_or_init(|| Arc::new(CapsuleSettings::from_env()))
                .clone()
        })
    }
}
