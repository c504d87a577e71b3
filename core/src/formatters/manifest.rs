//! A formatter's directory: `manifest.json` and the component it names.
//!
//! ```json
//! {"name": "slack-blocks", "version": "1.2.0", "world": "0.1.0",
//!  "providers": ["slack"], "component": "formatter.wasm"}
//! ```
//! `component` defaults to `formatter.wasm`; `world` is the version of the WIT world the
//! component was built against (`extension-api/wit/since_v<world>/`).

use crate::channels::provider::Provider;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The largest component accepted.
pub const MAX_COMPONENT_BYTES: u64 = 16 * 1024 * 1024;
const MAX_MANIFEST_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub world: String,
    pub providers: Vec<String>,
    #[serde(default = "default_component")]
    pub component: String,
}

fn default_component() -> String {
    "formatter.wasm".into()
}

impl Manifest {
    /// Reads and checks `dir/manifest.json`.
    pub fn read(dir: &Path) -> Result<Self, String> {
        let path = dir.join("manifest.json");
        let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.len() > MAX_MANIFEST_BYTES {
            return Err(format!("{} is larger than 64 KiB", path.display()));
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let m: Manifest =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<(), String> {
        let named = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if !named(&self.name) {
            return Err("manifest name must be 1-64 letters, digits, '-', '_' or '.'".into());
        }
        if !named(&self.version) {
            return Err("manifest version must be a version like 1.0.0".into());
        }
        if self.providers.is_empty() {
            return Err("manifest providers must name at least one chat provider".into());
        }
        for p in &self.providers {
            match Provider::parse(p) {
                Some(Provider::Webhook) => {
                    return Err(
                        "webhooks carry the raw event; a formatter cannot serve them".into(),
                    )
                }
                Some(_) => {}
                None => return Err(format!("manifest provider {p:?} is not a chat provider")),
            }
        }
        if self.component.contains('/')
            || self.component.contains("..")
            || self.component.is_empty()
        {
            return Err(
                "manifest component must be a file name inside the formatter's directory".into(),
            );
        }
        Ok(())
    }

    /// The component's path inside `dir`.
    pub fn component_path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.component)
    }

    pub fn serves(&self, provider: Provider) -> bool {
        self.providers.iter().any(|p| p == provider.as_str())
    }
}
