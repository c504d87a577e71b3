//! E2B's envd protocol, so the official `e2b` SDKs can drive a capsule.
//!
//! # Layout
//! - The control plane reaches the capsule through the port tunnel ([`crate::http::tunnel`]).
//!   A tunnel to `--e2b-port` (49983, E2B's envd port) is not connected to anything inside
//!   the capsule: [`E2b::serve`] speaks HTTP/1.1 on the upgraded stream itself with
//!   [`router`].
//! - [`connect`]: the Connect protocol (v1, JSON codec): request decoding, envelopes,
//!   unary answers, server streams with keepalives, errors.
//! - [`process`]: `process.Process`, translated onto [`ProcessRpc`]; [`filesystem`]:
//!   `filesystem.Filesystem`, onto [`FilesystemRpc`], plus E2B's polled watchers.
//! - [`files`]: the plain HTTP part: `/health`, `/envs`, `GET`/`POST /files`.
//!
//! Every call runs as the user named by `Authorization: Basic base64("name:")`, else
//! [`E2b::default_user`]. There is no other authentication here: opening the tunnel already
//! took envd's access token, and the control plane checked the E2B token before that.
pub mod connect;
pub mod files;
pub mod filesystem;
pub mod process;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::Router;
use base64::Engine;
use http::request::Parts;
use http::{header, HeaderMap};
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;

use crate::capsule::Capsule;
use crate::filesystem::service::FilesystemRpc;
use crate::processes::service::ProcessRpc;

/// What the E2B handlers share.
pub struct E2b {
    pub processes: ProcessRpc,
    pub filesystem: FilesystemRpc,
    pub capsule: Arc<Capsule>,
    /// `--e2b-default-user`.
    pub default_user_name: String,
    pub watchers: filesystem::Watchers,
}

impl E2b {
    /// The user of calls that name none: `--e2b-default-user` when that account exists,
    /// otherwise envd's own default (/init's default user, else root).
    pub fn default_user(&self) -> String {
        let configured = &self.default_user_name;
        let exists = !configured.is_empty()
            && std::fs::read_to_string("/etc/passwd")
                .unwrap_or_default()
                .lines()
                .any(|l| l.split(':').next() == Some(configured.as_str()));
        if exists {
            configured.clone()
        } else {
            self.capsule.user_or_default(None)
        }
    }

    /// Serves one tunnelled connection until the client closes it or `closed` fires.
    pub async fn serve(self: Arc<Self>, io: hyper::upgrade::Upgraded, closed: CancellationToken) {
        let service = TowerToHyperService::new(router().with_state(self));
        let conn = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(io, service);
        tokio::select! {
            result = conn => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "E2B connection ended with an error.");
                }
            }
            _ = closed.cancelled() => {}
        }
    }
}

pub fn router() -> Router<Arc<E2b>> {
    Router::new()
        .merge(process::router())
        .merge(filesystem::router())
        .layer(axum::middleware::from_fn(connect::deadline))
        .merge(files::router())
}

/// The Linux user a call runs as (by name; resolved by the services it reaches).
#[derive(Debug, Clone)]
pub struct Caller(pub String);

impl FromRequestParts<Arc<E2b>> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        e2b: &Arc<E2b>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Caller(
            basic_user(&parts.headers).unwrap_or_else(|| e2b.default_user()),
        ))
    }
}

/// The user name of `Authorization: Basic base64("name:")`; the password is not read.
fn basic_user(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let name = text.split(':').next().unwrap_or_default();
    (!name.is_empty()).then(|| name.to_owned())
}

/// `Keepalive-Ping-Interval: N` (seconds): how often an idle stream sends a keepalive.
pub fn keepalive_interval(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get("keepalive-ping-interval")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs > 0).then(|| Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_authorization_names_the_user() {
        let mut headers = HeaderMap::new();
        assert_eq!(basic_user(&headers), None);
        // base64("root:")
        headers.insert(header::AUTHORIZATION, "Basic cm9vdDo=".parse().unwrap());
        assert_eq!(basic_user(&headers).as_deref(), Some("root"));
        headers.insert(header::AUTHORIZATION, "Bearer cm9vdDo=".parse().unwrap());
        assert_eq!(basic_user(&headers), None);
    }
}
