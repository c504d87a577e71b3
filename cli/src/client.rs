//! The control plane over HTTP and WebSocket, authenticated with `X-API-Key`.
//!
//! Every failure becomes a [`CliError`]: an answer that is not 2xx carries the API's error
//! envelope `{"error":{"code","message"}}` (its message is what the user sees); a request
//! that got no answer names the URL it was for.

use crate::config::Credentials;
use crate::error::{CliError, Result};
use futures::StreamExt;
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const API_KEY_HEADER: &str = "X-API-Key";
/// The header of a paged list's answer naming the next page's cursor (absent on the last).
const NEXT_CURSOR_HEADER: &str = "X-Next-Cursor";
/// Rows per page when reading a whole list (the API's maximum).
const PAGE_LIMIT: &str = "200";

/// A successful answer with a body: the text as received (what `--json` prints) and its
/// parsed form.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub raw: String,
    pub value: Value,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    api_key: String,
}

impl Client {
    pub fn new(credentials: &Credentials) -> Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("wrenn-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| crate::error::fail(format!("cannot set up HTTP: {e}")))?;
        Ok(Self {
            http,
            base: credentials.url.clone(),
            api_key: credentials.api_key.clone(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the API key.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header(API_KEY_HEADER, &self.api_key)
    }

    /// Sends a request; an answer that is not 2xx becomes [`CliError::Api`].
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let request = request
            .build()
            .map_err(|e| crate::error::fail(format!("cannot build the request: {e}")))?;
        let url = request.url().to_string();
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| network_error(&url, &e))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(api_error(response).await)
        }
    }

    /// Sends a request and reads its (JSON) body.
    pub async fn call(&self, request: reqwest::RequestBuilder) -> Result<Answer> {
        let response = self.send(request).await?;
        let status = response.status().as_u16();
        let url = response.url().to_string();
        let raw = response.text().await.map_err(|e| network_error(&url, &e))?;
        let value = if raw.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&raw).map_err(|e| {
                crate::error::fail(format!("{url} answered something that is not JSON: {e}"))
            })?
        };
        Ok(Answer { status, raw, value })
    }

    pub async fn get(&self, path: &str) -> Result<Answer> {
        self.call(self.request(Method::GET, path)).await
    }

    /// Every row of a paged list (a bare JSON array per page, `X-Next-Cursor` naming the
    /// next): pages of 200 are read until one names no next cursor. The answer is the whole
    /// array, as if one page had held it.
    pub async fn get_all(&self, path: &str) -> Result<Answer> {
        let mut rows: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut status = 200;
        loop {
            let mut request = self
                .request(Method::GET, path)
                .query(&[("limit", PAGE_LIMIT)]);
            if let Some(c) = &cursor {
                request = request.query(&[("cursor", c)]);
            }
            let response = self.send(request).await?;
            status = response.status().as_u16().max(status);
            let next = response
                .headers()
                .get(NEXT_CURSOR_HEADER)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_string);
            let url = response.url().to_string();
            let raw = response.text().await.map_err(|e| network_error(&url, &e))?;
            let page: Value = serde_json::from_str(&raw)
                .map_err(|e| crate::error::fail(format!("{url} answered no JSON list: {e}")))?;
            match page {
                Value::Array(page) => rows.extend(page),
                _ => return Err(crate::error::fail(format!("{url} answered no JSON list"))),
            }
            // A cursor given back unchanged would loop for ever.
            if next.is_none() || next == cursor {
                break;
            }
            cursor = next;
        }
        let value = Value::Array(rows);
        Ok(Answer {
            status,
            raw: value.to_string(),
            value,
        })
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Answer> {
        self.call(self.request(Method::POST, path).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Answer> {
        self.call(self.request(Method::DELETE, path)).await
    }

    /// Opens a WebSocket on `path` (`http` → `ws`, `https` → `wss`). A refused upgrade is
    /// reported with the API's error message.
    pub async fn websocket(&self, path: &str) -> Result<WebSocket> {
        let url = self.url(path);
        let ws_url = if let Some(rest) = url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            url.clone()
        };
        let mut request = ws_url
            .as_str()
            .into_client_request()
            .map_err(|e| crate::error::fail(format!("invalid WebSocket URL {ws_url}: {e}")))?;
        let key = self.api_key.parse().map_err(|_| {
            CliError::Config("the API key contains characters a header cannot carry".into())
        })?;
        request.headers_mut().insert(API_KEY_HEADER, key);
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Err(error_from_body(status, &url, body))
            }
            Err(e) => Err(CliError::Network {
                url,
                detail: e.to_string(),
            }),
        }
    }
}

/// A request that got no answer: the innermost cause says why (connection refused, name
/// not resolved, timed out, ...).
pub fn network_error(url: &str, error: &reqwest::Error) -> CliError {
    let mut detail = if error.is_timeout() {
        "timed out".to_string()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    CliError::Network {
        url: url.to_string(),
        detail,
    }
}

async fn api_error(response: reqwest::Response) -> CliError {
    let status = response.status().as_u16();
    let url = response.url().to_string();
    // Error bodies are small; cap what is read anyway.
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        body.extend_from_slice(&chunk);
        if body.len() > 64 * 1024 {
            break;
        }
    }
    error_from_body(status, &url, String::from_utf8_lossy(&body).into_owned())
}

/// The API's error envelope, or a description of the status when the body is not one.
fn error_from_body(status: u16, url: &str, body: String) -> CliError {
    let envelope: Option<(String, String)> =
        serde_json::from_str::<Value>(&body).ok().and_then(|v| {
            let e = v.get("error")?;
            Some((
                e.get("code")?.as_str()?.to_string(),
                e.get("message")?.as_str()?.to_string(),
            ))
        });
    match envelope {
        Some((code, message)) => CliError::Api {
            status,
            code,
            message,
            raw: Some(body),
        },
        None => {
            let snippet: String = body.trim().chars().take(200).collect();
            let reason = reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            let mut message = format!("{url} answered HTTP {status} {reason}");
            if !snippet.is_empty() {
                message.push_str(&format!(": {snippet}"));
            }
            CliError::Api {
                status,
                code: format!("http_{status}"),
                message,
                raw: None,
            }
        }
    }
}

/// Percent-encodes one path segment (ids and names typed by the user).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_and_other_bodies() {
        let e = error_from_body(
            404,
            "http://x/v1/capsules/sb_1",
            r#"{"error":{"code":"not_found","message":"capsule not found"}}"#.into(),
        );
        assert!(matches!(&e, CliError::Api { code, message, .. }
            if code == "not_found" && message == "capsule not found"));
        let e = error_from_body(502, "http://x/y", "<html>bad gateway</html>".into());
        assert_eq!(
            e.to_string(),
            "http://x/y answered HTTP 502 Bad Gateway: <html>bad gateway</html>"
        );
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("sb_abc-1.2"), "sb_abc-1.2");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
