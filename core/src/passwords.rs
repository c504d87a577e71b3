//! Password hashing with argon2id, always off the async runtime (`spawn_blocking`).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use wrenn_extension_api::ApiError;

/// Minimum password length (API.md: ≥ 8).
pub const MIN_LENGTH: usize = 8;
/// Upper bound, so hashing cost cannot be driven by huge inputs.
pub const MAX_LENGTH: usize = 256;

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    /// A hash of a random password, verified against when the account does not exist so
    /// both paths cost the same.
    dummy_hash: String,
}

impl Passwords {
    /// Production parameters (argon2 crate defaults: m=19 MiB, t=2, p=1) unless `insecure_fast`,
    /// which exists only for test suites.
    pub fn new(insecure_fast: bool) -> Self {
        let params = if insecure_fast {
            Params::new(64, 1, 1, None).expect("valid argon2 params")
        } else {
            Params::default()
        };
        let mut this = Self {
            params,
            dummy_hash: String::new(),
        };
        this.dummy_hash = this
            .hash_blocking(&hex::encode(rand::random::<[u8; 16]>()))
            .expect("hashing a random password");
        this
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    fn hash_blocking(&self, password: &str) -> Result<String, argon2::password_hash::Error> {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Ok(self
            .argon2()
            .hash_password(password.as_bytes(), &salt)?
            .to_string())
    }

    /// Checks the length rules; 400 `invalid_password` otherwise.
    pub fn validate(password: &str) -> Result<(), ApiError> {
        let n = password.chars().count();
        if n < MIN_LENGTH {
            return Err(ApiError::bad_request(
                "invalid_password",
                "password must be at least 8 characters",
            ));
        }
        if password.len() > MAX_LENGTH {
            return Err(ApiError::bad_request(
                "invalid_password",
                "password must be at most 256 bytes",
            ));
        }
        Ok(())
    }

    /// Hashes a password on the blocking pool.
    pub async fn hash(&self, password: &str) -> Result<String, ApiError> {
        let this = self.clone();
        let password = password.to_string();
        tokio::task::spawn_blocking(move || this.hash_blocking(&password))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)
    }

    /// Verifies `password` against `hash`; with no hash, verifies against a dummy so the
    /// caller's timing does not reveal whether the account exists. Always false then.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool, ApiError> {
        let password = password.to_string();
        let (hash, real) = match hash {
            Some(h) => (h.to_string(), true),
            None => (self.dummy_hash.clone(), false),
        };
        let ok = tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&hash).map_err(ApiError::internal)?;
            // Verify with the parameters stored in the hash, whatever the current setting.
            Ok::<_, ApiError>(
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok(),
            )
        })
        .await
        .map_err(ApiError::internal)??;
        Ok(ok && real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_dummy_never_matches() {
        let p = Passwords::new(true);
        let h = p.hash("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(p.verify("correct horse", Some(&h)).await.unwrap());
        assert!(!p.verify("wrong horse", Some(&h)).await.unwrap());
        assert!(!p.verify("correct horse", None).await.unwrap());
        assert!(Passwords::validate("short").is_err());
        assert!(Passwords::validate("long enough").is_ok());
    }
}
