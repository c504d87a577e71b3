//! A loopback HTTP receiver for delivery tests: records every request (method, path, headers,
//! body, arrival time) and answers from a script of statuses (200 once the script is empty;
//! a 3xx answer carries `Location: /elsewhere`; [`HANG`] holds the request unanswered).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A scripted "status" that never answers (the request is held for ten minutes).
pub const HANG: u16 = 0;

/// One received request.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    /// A header's value ("" when absent).
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    /// The body as JSON (`Null` if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct ReceiverState {
    got: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<u16>>,
}

/// A running receiver on 127.0.0.1.
pub struct Receiver {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    state: Arc<ReceiverState>,
}

impl Receiver {
    pub async fn start() -> Self {
        let state = Arc::new(ReceiverState::default());
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a receiver on loopback");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    /// Answers the next requests with these statuses, in order.
    pub fn answer(&self, statuses: &[u16]) {
        self.state.script.lock().expect("lock").extend(statuses);
    }

    /// Every request so far.
    pub fn got(&self) -> Vec<Received> {
        self.state.got.lock().expect("lock").clone()
    }

    /// Waits up to `secs` for at least `n` requests; returns what arrived.
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.got();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    state.got.lock().expect("lock").push(Received {
        method,
        path: uri.path().to_string(),
        headers,
        body,
        at: Instant::now(),
    });
    let status = state
        .script
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or(200);
    if status == HANG {
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if status.is_redirection() {
        return (status, [("location", "/elsewhere")], "moved").into_response();
    }
    (status, "ok").into_response()
}
