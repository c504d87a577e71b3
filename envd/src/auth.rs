//! The access token every call but `/health` must present.
use std::sync::RwLock;

use subtle::ConstantTimeEq;

/// Header (HTTP) and metadata key (gRPC) carrying the token.
pub const HEADER: &str = "x-access-token";

/// The current token. `None` means none was configured yet: calls are allowed until `/init`
/// (or `--access-token`) sets one, because the host agent is the only party that can reach a
/// fresh capsule's envd.
#[derive(Debug, Default)]
pub struct AccessToken(RwLock<Option<Vec<u8>>>);

impl AccessToken {
    pub fn new(initial: Option<String>) -> Self {
        Self(RwLock::new(
            initial.filter(|t| !t.is_empty()).map(String::into_bytes),
        ))
    }

    /// Replaces the token (an empty string clears it).
    pub fn set(&self, token: &str) {
        let token = (!token.is_empty()).then(|| token.as_bytes().to_vec());
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = token;
    }

    /// Whether `presented` matches, compared in constant time (only the length may leak).
    pub fn allows(&self, presented: Option<&[u8]>) -> bool {
        let current = self.0.read().unwrap_or_else(|e| e.into_inner());
        match (current.as_deref(), presented) {
            (None, _) => true,
            (Some(expected), Some(given)) => expected.ct_eq(given).into(),
            (Some(_), None) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_until_set_then_exact_match() {
        let t = AccessToken::new(None);
        assert!(t.allows(None));
        t.set("s3cret");
        assert!(!t.allows(None));
        assert!(!t.allows(Some(b"s3cre")));
        assert!(!t.allows(Some(b"s3cret!")));
        assert!(t.allows(Some(b"s3cret")));
        t.set("");
        assert!(t.allows(None));
    }
}
