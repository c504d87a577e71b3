//! The Connect protocol (v1) with the JSON codec, as far as E2B's SDKs use it.
//!
//! - Unary: the request body is the JSON message (`application/json`); the answer is 200 with
//!   the JSON message, or an error status with `{"code","message"}`.
//! - Streams (`application/connect+json`): messages travel in envelopes, `[flags u8][length
//!   u32 BE][JSON]`. A server stream ends with an end-of-stream envelope (flags 0x02) holding
//!   `{}` or `{"error":{...}}`; its errors, even the early ones, are sent that way with
//!   HTTP 200, since the SDKs read a streaming non-200 answer only by its status.
//! - Proto3 JSON: handled by the serde types of [`super::process`] and [`super::filesystem`]
//!   with the helpers in [`json`].
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use http::{header, StatusCode};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tonic::{Code, Status};

pub const UNARY_JSON: &str = "application/json";
pub const STREAM_JSON: &str = "application/connect+json";
const END_STREAM: u8 = 0x02;
const COMPRESSED: u8 = 0x01;
/// Largest request message accepted.
const MAX_MESSAGE: usize = 64 << 20;

/// A Connect error: a code and a message.
#[derive(Debug, Clone)]
pub struct ConnectError {
    pub code: Code,
    pub message: String,
}

impl ConnectError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    pub fn code_name(&self) -> &'static str {
        match self.code {
            Code::Ok => "ok",
            Code::Cancelled => "canceled",
            Code::Unknown => "unknown",
            Code::InvalidArgument => "invalid_argument",
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::NotFound => "not_found",
            Code::AlreadyExists => "already_exists",
            Code::PermissionDenied => "permission_denied",
            Code::ResourceExhausted => "resource_exhausted",
            Code::FailedPrecondition => "failed_precondition",
            Code::Aborted => "aborted",
            Code::OutOfRange => "out_of_range",
            Code::Unimplemented => "unimplemented",
            Code::Internal => "internal",
            Code::Unavailable => "unavailable",
            Code::DataLoss => "data_loss",
            Code::Unauthenticated => "unauthenticated",
        }
    }

    /// The HTTP status of a unary error (the Connect specification's table).
    pub fn http_status(&self) -> StatusCode {
        let code = match self.code {
            Code::Ok => 200,
            Code::Cancelled => 499,
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
            Code::DeadlineExceeded => 504,
            Code::NotFound => 404,
            Code::AlreadyExists | Code::Aborted => 409,
            Code::PermissionDenied => 403,
            Code::ResourceExhausted => 429,
            Code::Unimplemented => 501,
            Code::Unavailable => 503,
            Code::Unauthenticated => 401,
            Code::Unknown | Code::Internal | Code::DataLoss => 500,
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn json(&self) -> Value {
        json!({ "code": self.code_name(), "message": self.message })
    }
}

impl From<Status> for ConnectError {
    fn from(s: Status) -> Self {
        Self::new(s.code(), s.message())
    }
}

impl IntoResponse for ConnectError {
    fn into_response(self) -> Response {
        if self.http_status().is_server_error() {
            tracing::warn!(code = self.code_name(), message = %self.message, "E2B call failed.");
        }
        let body = serde_json::to_vec(&self.json()).unwrap_or_default();
        Response::builder()
            .status(self.http_status())
            .header(header::CONTENT_TYPE, UNARY_JSON)
            .body(Body::from(body))
            .expect("static response parts")
    }
}

/// Honours `Connect-Timeout-Ms` until the answer starts (all of a unary call; the opening
/// of a stream).
pub async fn deadline(request: Request, next: axum::middleware::Next) -> Response {
    let timeout = request
        .headers()
        .get("connect-timeout-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let Some(ms) = timeout else {
        return next.run(request).await;
    };
    match tokio::time::timeout(Duration::from_millis(ms), next.run(request)).await {
        Ok(response) => response,
        Err(_) => ConnectError::new(Code::DeadlineExceeded, "the deadline passed").into_response(),
    }
}

/// A unary answer: 200 with the JSON message.
pub struct Unary<T>(pub T);

impl<T: Serialize> IntoResponse for Unary<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => Response::builder()
                .header(header::CONTENT_TYPE, UNARY_JSON)
                .body(Body::from(body))
                .expect("static response parts"),
            Err(e) => ConnectError::new(Code::Internal, e.to_string()).into_response(),
        }
    }
}

fn is_stream(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/connect+"))
}

fn parse<T: DeserializeOwned>(data: &[u8]) -> Result<T, ConnectError> {
    let data = if data.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        data
    };
    serde_json::from_slice(data)
        .map_err(|e| ConnectError::invalid_argument(format!("malformed request message: {e}")))
}

/// Reads the one request message of a unary call or a server stream (enveloped for the
/// latter; the whole body is read, however it was chunked).
pub async fn message<T: DeserializeOwned>(request: Request) -> Result<T, ConnectError> {
    let enveloped = is_stream(&request);
    let body = http_body_util::Limited::new(request.into_body(), MAX_MESSAGE + 5)
        .collect()
        .await
        .map_err(|e| ConnectError::invalid_argument(format!("reading the request: {e}")))?
        .to_bytes();
    if !enveloped {
        return parse(&body);
    }
    let mut frames = Frames::default();
    frames.buf.extend_from_slice(&body);
    match frames.next_frame()? {
        Some((_, data)) => parse(&data),
        None => Err(ConnectError::invalid_argument(
            "the request holds no complete envelope",
        )),
    }
}

/// Splits a byte stream into envelopes.
#[derive(Default)]
struct Frames {
    buf: BytesMut,
}

impl Frames {
    fn next_frame(&mut self) -> Result<Option<(u8, Bytes)>, ConnectError> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let flags = self.buf[0];
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_MESSAGE {
            return Err(ConnectError::new(
                Code::ResourceExhausted,
                format!("message of {len} bytes is too large"),
            ));
        }
        if flags & COMPRESSED != 0 {
            return Err(ConnectError::new(
                Code::Unimplemented,
                "compressed messages are not supported",
            ));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        self.buf.advance(5);
        Ok(Some((flags, self.buf.split_to(len).freeze())))
    }
}

/// The messages of a client stream, as they arrive.
pub fn client_stream<T: DeserializeOwned + Send + 'static>(
    request: Request,
) -> impl Stream<Item = Result<T, ConnectError>> + Send {
    let body = request.into_body().into_data_stream();
    futures::stream::unfold(
        (body, Frames::default(), false),
        |(mut body, mut frames, done)| async move {
            if done {
                return None;
            }
            loop {
                match frames.next_frame() {
                    Err(e) => return Some((Err(e), (body, frames, true))),
                    Ok(Some((flags, _))) if flags & END_STREAM != 0 => return None,
                    Ok(Some((_, data))) => {
                        return Some((parse(&data), (body, frames, false)));
                    }
                    Ok(None) => {}
                }
                match body.next().await {
                    Some(Ok(chunk)) => frames.buf.extend_from_slice(&chunk),
                    Some(Err(e)) => {
                        let e = ConnectError::new(Code::Cancelled, e.to_string());
                        return Some((Err(e), (body, frames, true)));
                    }
                    None if frames.buf.is_empty() => return None,
                    None => {
                        let e = ConnectError::invalid_argument("the stream ended mid-envelope");
                        return Some((Err(e), (body, frames, true)));
                    }
                }
            }
        },
    )
}

fn envelope(flags: u8, message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(flags);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

fn end_of_stream(error: Option<&ConnectError>) -> Bytes {
    let end = match error {
        Some(e) => json!({ "error": e.json() }),
        None => json!({}),
    };
    envelope(END_STREAM, &serde_json::to_vec(&end).unwrap_or_default())
}

fn stream_response(body: Body) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, STREAM_JSON)
        .body(body)
        .expect("static response parts")
}

/// The answer of a client stream: one message, then the end of the stream.
pub fn single<T: Serialize>(result: Result<T, ConnectError>) -> Response {
    let frames = match result.and_then(|m| {
        serde_json::to_vec(&m).map_err(|e| ConnectError::new(Code::Internal, e.to_string()))
    }) {
        Ok(message) => [envelope(0, &message), end_of_stream(None)].concat(),
        Err(e) => end_of_stream(Some(&e)).to_vec(),
    };
    stream_response(Body::from(frames))
}

/// A server stream: each message is sent as soon as it is produced; when `keepalive` is set,
/// an idle stream sends its message every interval; an error item ends the stream with it.
pub fn server_stream<S>(
    opened: Result<S, ConnectError>,
    keepalive: Option<(Duration, Value)>,
) -> Response
where
    S: Stream<Item = Result<Value, ConnectError>> + Send + Unpin + 'static,
{
    let messages = match opened {
        Ok(s) => s,
        Err(e) => return stream_response(Body::from(end_of_stream(Some(&e)))),
    };
    let frames = futures::stream::unfold(Some(messages), move |state| {
        let keepalive = keepalive.clone();
        async move {
            let mut messages = state?;
            let next = match &keepalive {
                Some((every, ping)) => match tokio::time::timeout(*every, messages.next()).await {
                    Ok(next) => next,
                    Err(_idle) => Some(Ok(ping.clone())),
                },
                None => messages.next().await,
            };
            let frame = match next {
                Some(Ok(message)) => match serde_json::to_vec(&message) {
                    Ok(bytes) => return Some((envelope(0, &bytes), Some(messages))),
                    Err(e) => {
                        end_of_stream(Some(&ConnectError::new(Code::Internal, e.to_string())))
                    }
                },
                Some(Err(e)) => end_of_stream(Some(&e)),
                None => end_of_stream(None),
            };
            Some((frame, None))
        }
    })
    .map(Ok::<_, std::convert::Infallible>);
    stream_response(Body::from_stream(frames))
}

/// Proto3 JSON field helpers.
pub mod json {
    use base64::Engine;
    use serde::de::{self, Deserializer};
    use serde::Deserialize;

    /// Standard base64 (what proto3 JSON writes for `bytes`).
    pub fn encode(data: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(data)
    }

    /// `bytes` input: standard or URL-safe base64, padded or not.
    pub fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        use base64::engine::{general_purpose, DecodePaddingMode, GeneralPurpose};
        let text = String::deserialize(d)?;
        let config = general_purpose::GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent);
        let standard = GeneralPurpose::new(&base64::alphabet::STANDARD, config);
        let url_safe = GeneralPurpose::new(&base64::alphabet::URL_SAFE, config);
        standard
            .decode(&text)
            .or_else(|_| url_safe.decode(&text))
            .map_err(|e| de::Error::custom(format!("invalid base64: {e}")))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Number(i64),
        Text(String),
    }

    /// An integer given as a JSON number or a string (proto3 JSON accepts both).
    pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        match NumberOrText::deserialize(d)? {
            NumberOrText::Number(n) => Ok(n),
            NumberOrText::Text(t) => t
                .trim()
                .parse()
                .map_err(|_| de::Error::custom(format!("`{t}` is not an integer"))),
        }
    }

    pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let n = int(d)?;
        u32::try_from(n).map_err(|_| de::Error::custom(format!("{n} is out of range")))
    }

    pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        Option::<NumberOrText>::deserialize(d)?
            .map(|v| match v {
                NumberOrText::Number(n) => u32::try_from(n).ok(),
                NumberOrText::Text(t) => t.trim().parse().ok(),
            })
            .map(|v| v.ok_or_else(|| de::Error::custom("not a uint32")))
            .transpose()
    }

    /// An enum given by name (from `names`, value pairs) or by number.
    pub fn enum_value<'de, D: Deserializer<'de>>(
        d: D,
        names: &[(&str, i32)],
    ) -> Result<i32, D::Error> {
        match NumberOrText::deserialize(d)? {
            NumberOrText::Number(n) => {
                i32::try_from(n).map_err(|_| de::Error::custom("enum value out of range"))
            }
            NumberOrText::Text(t) => names
                .iter()
                .find(|(name, _)| *name == t)
                .map(|(_, v)| *v)
                .ok_or_else(|| de::Error::custom(format!("unknown enum value `{t}`"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_split_across_chunks() {
        let mut frames = Frames::default();
        let one = envelope(0, br#"{"a":1}"#);
        frames.buf.extend_from_slice(&one[..3]);
        assert!(frames.next_frame().unwrap().is_none());
        frames.buf.extend_from_slice(&one[3..]);
        frames.buf.extend_from_slice(&end_of_stream(None));
        let (flags, data) = frames.next_frame().unwrap().unwrap();
        assert_eq!((flags, &data[..]), (0, &br#"{"a":1}"#[..]));
        let (flags, data) = frames.next_frame().unwrap().unwrap();
        assert_eq!((flags, &data[..]), (END_STREAM, &b"{}"[..]));
    }

    #[test]
    fn codes_map_to_the_connect_statuses() {
        let status = |code| ConnectError::new(code, "").http_status().as_u16();
        assert_eq!(status(Code::NotFound), 404);
        assert_eq!(status(Code::AlreadyExists), 409);
        assert_eq!(status(Code::Unimplemented), 501);
        assert_eq!(status(Code::Cancelled), 499);
        assert_eq!(
            ConnectError::new(Code::InvalidArgument, "").code_name(),
            "invalid_argument"
        );
    }
}
