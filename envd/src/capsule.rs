//! What `/init` tells envd about the capsule it runs in.
use std::collections::BTreeMap;
use std::sync::RwLock;

use serde::Serialize;

/// Defaults applied to processes and file operations, replaced by every `/init`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CapsuleDefaults {
    pub sandbox_id: Option<String>,
    pub template_id: Option<String>,
    pub default_user: Option<String>,
    pub default_workdir: Option<String>,
    pub env_vars: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
pub struct Capsule(RwLock<CapsuleDefaults>);

impl Capsule {
    pub fn defaults(&self) -> CapsuleDefaults {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn update(&self, f: impl FnOnce(&mut CapsuleDefaults)) {
        f(&mut self.0.write().unwrap_or_else(|e| e.into_inner()));
    }

    /// The user name to use when a request names none.
    pub fn user_or_default(&self, requested: Option<&str>) -> String {
        match requested.filter(|u| !u.is_empty()) {
            Some(u) => u.to_owned(),
            None => self
                .defaults()
                .default_user
                .unwrap_or_else(|| "root".into()),
        }
    }
}
