//! A loopback stand-in for GitHub's OAuth2 endpoints and REST API, enough for the login flow:
//! `GET /login/oauth/authorize` (auto-approves as the configured user and redirects back),
//! `POST /login/oauth/access_token` (checks code, client and PKCE verifier),
//! `GET /user` and `GET /user/emails` (bearer token).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// The GitHub account the stand-in signs in as.
#[derive(Debug, Clone)]
pub struct GithubUser {
    pub id: i64,
    pub login: String,
    pub name: String,
    pub email: String,
    pub verified: bool,
}

#[derive(Default)]
struct Inner {
    user: Option<GithubUser>,
    /// code → (user, PKCE challenge)
    codes: HashMap<String, (GithubUser, String)>,
    tokens: HashMap<String, GithubUser>,
}

/// The running stand-in; shut down on drop.
pub struct GithubStandin {
    pub base: String,
    pub client_id: String,
    pub client_secret: String,
    inner: Arc<Mutex<Inner>>,
    stop: CancellationToken,
}

#[derive(Clone)]
struct StandinState {
    inner: Arc<Mutex<Inner>>,
    client_id: String,
    client_secret: String,
}

impl GithubStandin {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let state = StandinState {
            inner: inner.clone(),
            client_id: "standin-client".into(),
            client_secret: "standin-secret".into(),
        };
        let app = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(access_token))
            .route("/user", get(user))
            .route("/user/emails", get(emails))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { token.cancelled().await })
                .await;
        });
        Self {
            base,
            client_id: state.client_id,
            client_secret: state.client_secret,
            inner,
            stop,
        }
    }

    /// Who approves the next authorization.
    pub fn sign_in_as(&self, user: GithubUser) {
        self.inner.lock().expect("lock").user = Some(user);
    }

    /// Points a control-plane configuration at this stand-in.
    pub fn configure(&self, config: &mut crate::Config) {
        config.github.client_id = Some(self.client_id.clone());
        config.github.client_secret = Some(self.client_secret.clone());
        config.github.authorize_url = format!("{}/login/oauth/authorize", self.base);
        config.github.token_url = format!("{}/login/oauth/access_token", self.base);
        config.github.api_url = self.base.clone();
    }
}

impl Drop for GithubStandin {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    client_id: String,
    redirect_uri: String,
    state: String,
    code_challenge: Option<String>,
}

async fn authorize(State(s): State<StandinState>, Query(q): Query<AuthorizeQuery>) -> Response {
    if q.client_id != s.client_id {
        return (StatusCode::BAD_REQUEST, "unknown client").into_response();
    }
    let mut inner = s.inner.lock().expect("lock");
    let Some(user) = inner.user.clone() else {
        return Redirect::to(&format!(
            "{}?error=access_denied&state={}",
            q.redirect_uri, q.state
        ))
        .into_response();
    };
    let code = hex::encode(rand::random::<[u8; 12]>());
    inner
        .codes
        .insert(code.clone(), (user, q.code_challenge.unwrap_or_default()));
    Redirect::to(&format!("{}?code={code}&state={}", q.redirect_uri, q.state)).into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    code: String,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(v).ok()?;
    let s = String::from_utf8(decoded).ok()?;
    let (id, secret) = s.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

async fn access_token(
    State(s): State<StandinState>,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Response {
    let (id, secret) = basic_credentials(&headers)
        .or_else(|| Some((f.client_id.clone()?, f.client_secret.clone()?)))
        .unwrap_or_default();
    if id != s.client_id || secret != s.client_secret {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let mut inner = s.inner.lock().expect("lock");
    let Some((user, challenge)) = inner.codes.remove(&f.code) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "bad_verification_code"})),
        )
            .into_response();
    };
    let verifier = f.code_verifier.unwrap_or_default();
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    if computed != challenge {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    let token = format!("gho_{}", hex::encode(rand::random::<[u8; 16]>()));
    inner.tokens.insert(token.clone(), user);
    Json(json!({"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"}))
        .into_response()
}

fn bearer_user(s: &StandinState, headers: &HeaderMap) -> Option<GithubUser> {
    let token = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    s.inner.lock().ok()?.tokens.get(token).cloned()
}

async fn user(State(s): State<StandinState>, headers: HeaderMap) -> Response {
    match bearer_user(&s, &headers) {
        Some(u) => Json(json!({"id": u.id, "login": u.login, "name": u.name})).into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn emails(State(s): State<StandinState>, headers: HeaderMap) -> Response {
    match bearer_user(&s, &headers) {
        Some(u) => Json(json!([
            {"email": format!("{}@users.noreply.example", u.login), "primary": false, "verified": true},
            {"email": u.email, "primary": true, "verified": u.verified},
        ]))
        .into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}
