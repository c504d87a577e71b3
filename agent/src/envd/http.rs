//! envd's plain HTTP endpoints, one HTTP/1.1 connection per call.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

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

pub async fn request(
    addr: &EnvdAddress,
    token: &str,
    method: &str,
    path_and_query: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<HttpResponse, EnvdError> {
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
    driver.abort();
    Ok(HttpResponse { status, body })
}
