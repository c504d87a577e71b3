//! Client side of the control transport: the agent talking to one capsule's envd.
//!
//! envd serves gRPC (process and filesystem services, `wrenn_proto::envd::v1`) and plain
//! HTTP (`/health`, `/init`, `/snapshot/prepare`, `/files`, `/metrics`) on one listener.
//! [`connector`] opens a byte stream to that listener whatever the transport (Unix
//! socket, vsock handshake, TCP); gRPC rides a lazily connected tonic channel on it and
//! each HTTP call uses its own HTTP/1.1 connection.

pub mod connector;
mod http;

use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};
use wrenn_proto::envd::v1::filesystem_service_client::FilesystemServiceClient;
use wrenn_proto::envd::v1::process_service_client::ProcessServiceClient;

use crate::runtime::EnvdAddress;

pub use http::HttpResponse;

/// Header / metadata key carrying the capsule's access token.
pub const ACCESS_TOKEN_HEADER: &str = "x-access-token";

/// Failure talking to envd.
#[derive(Debug, thiserror::Error)]
pub enum EnvdError {
    #[error("envd unreachable: {0}")]
    Connect(String),
    #[error("envd answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("envd protocol error: {0}")]
    Protocol(String),
    #[error("envd did not become healthy within {0:?}: {1}")]
    Timeout(Duration, String),
}

/// What `/init` gets after a boot and after every resume.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct InitParams {
    pub access_token: String,
    pub default_user: String,
    pub default_workdir: String,
    pub env_vars: std::collections::BTreeMap<String, String>,
    pub sandbox_id: String,
    pub template_id: String,
    /// Written to the capsule's `/etc/machine-id`: every capsule, pooled or forked, gets
    /// its own (empty: left as it is, for records from before machine ids).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub machine_id: String,
}

/// A handle on one envd. Cheap to clone.
#[derive(Clone)]
pub struct Envd {
    address: EnvdAddress,
    token: String,
    channel: Channel,
}

impl Envd {
    pub fn new(address: EnvdAddress, token: String) -> Self {
        let connect_to = address.clone();
        let channel = Endpoint::from_static("http://envd")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector_lazy(tower::service_fn(move |_: ::http::Uri| {
                let addr = connect_to.clone();
                async move {
                    connector::connect(&addr)
                        .await
                        .map(hyper_util::rt::TokioIo::new)
                }
            }));
        Envd {
            address,
            token,
            channel,
        }
    }

    pub fn address(&self) -> &EnvdAddress {
        &self.address
    }

    /// The access token, when one is set.
    pub fn token(&self) -> Option<&str> {
        (!self.token.is_empty()).then_some(self.token.as_str())
    }

    /// gRPC request carrying the access token.
    pub fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        if !self.token.is_empty() {
            if let Ok(v) = self.token.parse() {
                req.metadata_mut().insert(ACCESS_TOKEN_HEADER, v);
            }
        }
        req
    }

    pub fn process(&self) -> ProcessServiceClient<Channel> {
        ProcessServiceClient::new(self.channel.clone())
    }

    pub fn filesystem(&self) -> FilesystemServiceClient<Channel> {
        FilesystemServiceClient::new(self.channel.clone())
    }

    /// One HTTP request to envd (the access token is added as a header).
    pub async fn http(
        &self,
        method: &str,
        path_and_query: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<HttpResponse, EnvdError> {
        http::request(
            &self.address,
            &self.token,
            method,
            path_and_query,
            content_type,
            body,
        )
        .await
    }

    /// One HTTP request to envd with a streaming body; returns at the response head, its
    /// body still to be read. A non-2xx answer is an [`EnvdError::Status`].
    pub async fn http_streaming<B>(
        &self,
        method: &str,
        path_and_query: &str,
        content_type: Option<&str>,
        body: B,
    ) -> Result<::http::Response<hyper::body::Incoming>, EnvdError>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let resp = http::request_streaming(
            &self.address,
            &self.token,
            method,
            path_and_query,
            content_type,
            body,
        )
        .await?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(http::status_error(resp).await)
        }
    }

    /// `GET /health` → envd's version.
    pub async fn health(&self) -> Result<String, EnvdError> {
        let resp = self.http("GET", "/health", None, Vec::new()).await?.ok()?;
        let v: serde_json::Value =
            serde_json::from_slice(&resp.body).map_err(|e| EnvdError::Protocol(e.to_string()))?;
        Ok(v["version"].as_str().unwrap_or_default().to_owned())
    }

    /// Polls `/health` until envd answers or `timeout` passes.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<String, EnvdError> {
        // A refused connection on a Unix socket costs microseconds: poll every 2 ms for the
        // first second (envd usually answers within a few hundred ms of the runtime's start),
        // then back off.
        let start = Instant::now();
        loop {
            match self.health().await {
                Ok(v) => return Ok(v),
                Err(e) if start.elapsed() >= timeout => {
                    return Err(EnvdError::Timeout(timeout, e.to_string()))
                }
                Err(_) if start.elapsed() < Duration::from_secs(1) => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// `POST /init`.
    pub async fn init(&self, params: &InitParams) -> Result<(), EnvdError> {
        let body = serde_json::to_vec(params).map_err(|e| EnvdError::Protocol(e.to_string()))?;
        self.http("POST", "/init", Some("application/json"), body)
            .await?
            .ok()?;
        Ok(())
    }

    /// `POST /snapshot/prepare`: envd stops background work and closes host-backed sockets.
    pub async fn prepare_snapshot(&self) -> Result<(), EnvdError> {
        // envd closes this connection once it has answered: wait for that, so the
        // checkpoint that follows does not catch envd half-way through the teardown.
        let (response, closed) = http::request_until_closed(
            &self.address,
            &self.token,
            "POST",
            "/snapshot/prepare",
            Duration::from_secs(2),
        )
        .await?;
        response.ok()?;
        if !closed {
            tracing::debug!("envd kept the prepare connection open past 2 s");
        }
        Ok(())
    }
}
