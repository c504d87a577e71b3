//! envd's plain HTTP endpoints, one HTTP/1.1 connection per call.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};

use super::{connector, EnvdError, ACCESS_TOKEN_HEADER};
use crate::runtime::EnvdAddress;

pub struct HttpResponse {
    pub status: u16,
    pub body: Bytes,
}

impl HttpResponse {
    /// The response when 2xx, else an [`EnvdError::Status`].
    pub fn ok(self) -> Result<HttpResponse, EnvdError> {
        if (200..300).contains(&self.status) {
            Ok(self)
        } else {
            Err(EnvdError::Status {
                status: self.status,
                body: String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(300)
                    .collect(),
            })
        }
    }
}

/// Sends one request with a (possibly streaming) body and returns as soon as the
/// response head arrives; the response body is read by the caller, frame by frame.
/// The connection is driven by its own task until the body is done or dropped.
pub async fn request_streaming<B>(
    addr: &EnvdAddress,
    token: &str,
    method: &str,
    path_and_query: &str,
    content_type: Option<&str>,
    body: B,
) -> Result<http::Response<Incoming>, EnvdError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = connector::connect(addr)
        .await
        .map_err(|e| EnvdError::Connect(e.to_string()))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| EnvdError::Connect(e.to_string()))?;
    // Ends when the request is complete and the response body is read or dropped.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(http::header::HOST, "envd");
    if !token.is_empty() {
        builder = builder.header(ACCESS_TOKEN_HEADER, token);
    }
    if let Some(ct) = content_type {
        builder = builder.header(http::header::CONTENT_TYPE, ct);
    }
    let req = builder
        .body(body)
        .map_err(|e| EnvdError::Protocol(e.to_string()))?;
    sender
        .send_request(req)
        .await
        .map_err(|e| EnvdError::Connect(e.to_string()))
}

/// A non-2xx streamed response as an [`EnvdError::Status`], reading at most a few KiB
/// of its body for the message.
pub async fn status_error(resp: http::Response<Incoming>) -> EnvdError {
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut text = Vec::new();
    while text.len() < 4096 {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    text.extend_from_slice(d);
                }
            }
            _ => break,
        }
    }
    EnvdError::Status {
        status,
        body: String::from_utf8_lossy(&text).chars().take(300).collect(),
    }
}

/// One HTTP request to envd on its own connection; returns status and the whole body.
pub async fn request(
    addr: &EnvdAddress,
    token: &str,
    method: &str,
    path_and_query: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<HttpResponse, EnvdError> {
    let (response, _sender, driver) =
        exchange(addr, token, method, path_and_query, content_type, body).await?;
    driver.abort();
    Ok(response)
}

/// Like [`request`], for an endpoint after which envd closes the connection itself (the
/// snapshot prepare): also waits, up to `wait`, for that close, so envd is no longer busy with
/// the exchange when this returns. Whether it closed in time is the second value.
pub async fn request_until_closed(
    addr: &EnvdAddress,
    token: &str,
    method: &str,
    path_and_query: &str,
    wait: std::time::Duration,
) -> Result<(HttpResponse, bool), EnvdError> {
    let (response, sender, driver) =
        exchange(addr, token, method, path_and_query, None, Vec::new()).await?;
    // Holding the sender keeps hyper from closing first: the driver ends at envd's close.
    let closed = tokio::time::timeout(wait, driver).await.is_ok();
    drop(sender);
    Ok((response, closed))
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Sends one request on a new connection and reads the whole answer; the connection's sender
/// and driver task are handed back to end as the caller needs.
async fn exchange(
    addr: &EnvdAddress,
    token: &str,
    method: &str,
    path_and_query: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<(HttpResponse, Sender, tokio::task::JoinHandle<()>), EnvdError> {
    let stream = connector::connect(addr)
        .await
        .map_err(|e| EnvdError::Connect(e.to_string()))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| EnvdError::Connect(e.to_string()))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(http::header::HOST, "envd");
    if !token.is_empty() {
        builder = builder.header(ACCESS_TOKEN_HEADER, token);
    }
    if let Some(ct) = content_type {
        builder = builder.header(http::header::CONTENT_TYPE, ct);
    }
    let req = builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| EnvdError::Protocol(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| EnvdError::Connect(e.to_string()))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| EnvdError::Protocol(e.to_string()))?
        .to_bytes();
    Ok((HttpResponse { status, body }, sender, driver))
}
