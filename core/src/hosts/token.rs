//! Host credentials: the host JWT carried in `X-Host-Token`, and the opaque one-time
//! registration and rotating refresh tokens (stored as SHA-256 only).
//!
//! A host JWT has `typ = "host"` and `aud = "wrenn-host"` and is checked for both, so no
//! other token signed with the same secret passes as one; conversely sessions are opaque
//! cookies resolved by hash, so a host JWT never resolves as a session.

use crate::app::App;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::StatusCode;
use chrono::{Duration as ChronoDuration, Utc};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use wrenn_extension_api::{ids, ApiError};

/// Header carrying the host JWT on agent routes.
pub const HOST_TOKEN_HEADER: &str = "X-Host-Token";
const TYP: &str = "host";
const AUDIENCE: &str = "wrenn-host";
/// Prefix of registration tokens.
pub const REGISTRATION_PREFIX: &str = "whr_";
/// Prefix of refresh tokens.
pub const REFRESH_PREFIX: &str = "whf_";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    typ: String,
    aud: String,
    iat: i64,
    exp: i64,
    jti: String,
}

/// Signs a host JWT for `host_id`, valid for `ttl`.
pub fn issue_host_jwt(secret: &[u8], host_id: Uuid, ttl: ChronoDuration) -> String {
    let now = Utc::now();
    let claims = Claims {
        sub: ids::encode(ids::HOST, host_id),
        typ: TYP.into(),
        aud: AUDIENCE.into(),
        iat: now.timestamp(),
        exp: (now + ttl).timestamp(),
        jti: random_hex(16),
    };
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing does not fail")
}

/// The host id of a valid host JWT, `None` for anything else (expired, wrong type or
/// audience, bad signature, not a JWT at all).
pub fn verify_host_jwt(secret: &[u8], token: &str) -> Option<Uuid> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "sub", "aud"]);
    validation.leeway = 30;
    let data = decode::<Claims>(token, &DecodingKey::from_secret(secret), &validation).ok()?;
    if data.claims.typ != TYP {
        return None;
    }
    ids::decode(ids::HOST, &data.claims.sub)
}

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A new opaque token with `prefix` (32 random bytes).
pub fn new_opaque(prefix: &str) -> String {
    format!("{prefix}{}", random_hex(32))
}

/// How opaque tokens are stored.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Guard for agent routes: a valid `X-Host-Token`. Gives the authenticated host's id; it
/// does not check that the host still exists (handlers answer 404 for deleted hosts).
#[derive(Debug, Clone, Copy)]
pub struct HostAuth(pub Uuid);

pub fn invalid_host_token() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_host_token",
        "missing, invalid or expired host token",
    )
}

impl<S> FromRequestParts<S> for HostAuth
where
    App: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ctx = App::from_ref(state);
        let token = parts
            .headers
            .get(HOST_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(invalid_host_token)?;
        verify_host_jwt(ctx.jwt_secret(), token)
            .map(Self)
            .ok_or_else(invalid_host_token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_jwt_round_trips_and_rejects_other_tokens() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let id = Uuid::new_v4();
        let jwt = issue_host_jwt(secret, id, ChronoDuration::days(7));
        assert_eq!(verify_host_jwt(secret, &jwt), Some(id));
        assert_eq!(
            verify_host_jwt(b"another secret, another server!!", &jwt),
            None
        );
        let expired = issue_host_jwt(secret, id, ChronoDuration::minutes(-5));
        assert_eq!(verify_host_jwt(secret, &expired), None);
        // Same secret, same shape, but typ=user: refused.
        let user = Claims {
            sub: ids::encode(ids::HOST, id),
            typ: "user".into(),
            aud: AUDIENCE.into(),
            iat: 0,
            exp: Utc::now().timestamp() + 600,
            jti: String::new(),
        };
        let user = encode(&Header::default(), &user, &EncodingKey::from_secret(secret)).unwrap();
        assert_eq!(verify_host_jwt(secret, &user), None);
        assert_eq!(verify_host_jwt(secret, &random_hex(32)), None);
    }
}
