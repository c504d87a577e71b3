//! OAuth login, signup and account linking:
//! `GET /v1/auth/oauth/{provider}?intent=login|signup`, `GET /v1/auth/oauth/{provider}/callback`,
//! `GET /v1/me/providers/{provider}/connect`, `DELETE /v1/me/providers/{provider}`.
//!
//! The flow's state is a random value kept in Redis for 10 minutes (with the PKCE verifier,
//! the intent and, when linking, the user) and bound to the browser by an HMAC-signed cookie.
//! The cookie is SameSite=Lax: the callback arrives as a cross-site navigation from the
//! provider, which a Strict cookie would not survive. The callback always redirects to the
//! dashboard, with `?error=<code>` on failure.

use crate::accounts;
use crate::app::App;
use crate::db;
use crate::http::auth::landing_team;
use crate::oauth::ExternalIdentity;
use axum::extract::State;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::Router;
use axum_extra::extract::CookieJar;
use hmac::{Hmac, Mac};
use oauth2::{PkceCodeChallenge, PkceCodeVerifier};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::IntoParams;
use uuid::Uuid;
use wrenn_extension_api::auth::ClientInfo;
use wrenn_extension_api::{ApiError, ApiPath, ApiQuery, RequireSession};

use super::views::ErrorEnvelope;

/// Cookie binding an OAuth flow to the browser that started it.
pub const STATE_COOKIE: &str = "wrenn_oauth_state";
const FLOW_TTL_SECS: i64 = 600;

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/auth/oauth/{provider}", get(start))
        .route("/v1/auth/oauth/{provider}/callback", get(callback))
        .route("/v1/me/providers/{provider}/connect", get(connect))
        .route("/v1/me/providers/{provider}", delete(unlink))
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Intent {
    Login,
    Signup,
    Link,
}

#[derive(Deserialize, IntoParams)]
pub struct StartQuery {
    /// `login` (default; never creates an account) or `signup`.
    pub intent: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Flow {
    provider: String,
    intent: Intent,
    user_id: Option<Uuid>,
    verifier: String,
}

fn flow_key(state: &str) -> String {
    format!("wrenn:oauth:{state}")
}

fn sign(ctx: &App, state: &str, exp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(ctx.jwt_secret()).expect("HMAC takes any key");
    mac.update(format!("oauth-state|{state}|{exp}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn verify_cookie(ctx: &App, cookie: &str, state: &str) -> bool {
    let mut parts = cookie.splitn(3, '.');
    let (Some(s), Some(exp), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(exp) = exp.parse::<i64>() else {
        return false;
    };
    let Ok(sig) = hex::decode(sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(ctx.jwt_secret()).expect("HMAC takes any key");
    mac.update(format!("oauth-state|{s}|{exp}").as_bytes());
    mac.verify_slice(&sig).is_ok() && s == state && exp > chrono::Utc::now().timestamp()
}

fn redirect(location: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, v);
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            response.headers_mut().append(SET_COOKIE, v);
        }
    }
    response
}

fn clear_state_cookie() -> String {
    format!("{STATE_COOKIE}=; Path=/v1/; Max-Age=0; HttpOnly; SameSite=Lax")
}

fn fail(ctx: &App, code: &str) -> Response {
    tracing::info!(code, "OAuth flow failed.");
    redirect(
        &format!("{}/login?error={code}", ctx.config().public_url),
        &[clear_state_cookie()],
    )
}

async fn begin(
    ctx: &App,
    provider: &str,
    intent: Intent,
    user_id: Option<Uuid>,
) -> Result<Response, ApiError> {
    let p = ctx.oauth.get(provider).ok_or_else(|| {
        ApiError::not_found("unknown_provider", "this login provider is not configured")
    })?;
    let state = crate::sessions::random_token();
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let flow = Flow {
        provider: provider.to_string(),
        intent,
        user_id,
        verifier: verifier.secret().clone(),
    };
    let mut redis = ctx.redis();
    let json = serde_json::to_string(&flow).map_err(ApiError::internal)?;
    let _: () = redis
        .set_ex(flow_key(&state), json, FLOW_TTL_SECS as u64)
        .await?;
    let exp = chrono::Utc::now().timestamp() + FLOW_TTL_SECS;
    let secure = if ctx.config().public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{STATE_COOKIE}={state}.{exp}.{}; Path=/v1/; Max-Age={FLOW_TTL_SECS}; HttpOnly; SameSite=Lax{secure}",
        sign(ctx, &state, exp)
    );
    Ok(redirect(&p.authorize_url(&state, challenge), &[cookie]))
}

/// Start an OAuth login or signup: redirects to the provider.
#[utoipa::path(get, path = "/v1/auth/oauth/{provider}", tag = "auth",
    params(("provider" = String, Path, description = "e.g. github"), StartQuery),
    responses((status = 303, description = "to the provider's authorize page"), (status = 404, body = ErrorEnvelope, description = "unknown_provider")))]
pub async fn start(
    State(ctx): State<App>,
    ApiPath(provider): ApiPath<String>,
    ApiQuery(q): ApiQuery<StartQuery>,
) -> Result<Response, ApiError> {
    let intent = match q.intent.as_deref() {
        None | Some("login") => Intent::Login,
        Some("signup") => Intent::Signup,
        Some(_) => return Err(ApiError::invalid("intent must be login or signup")),
    };
    begin(&ctx, &provider, intent, None).await
}

/// Link a provider to your account: redirects to the provider.
#[utoipa::path(get, path = "/v1/me/providers/{provider}/connect", tag = "me",
    params(("provider" = String, Path)),
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 303), (status = 404, body = ErrorEnvelope)))]
pub async fn connect(
    State(ctx): State<App>,
    RequireSession(s): RequireSession,
    ApiPath(provider): ApiPath<String>,
) -> Result<Response, ApiError> {
    begin(&ctx, &provider, Intent::Link, Some(s.user_id)).await
}

#[derive(Deserialize, IntoParams)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

/// The provider's redirect target; finishes login, signup or linking and redirects to the
/// dashboard (`?error=` on failure: `oauth_denied`, `invalid_state`, `oauth_failed`,
/// `no_account`, `email_unverified`, `email_taken`, `provider_already_linked`,
/// `account_disabled`, `signup_hook_failed`).
#[utoipa::path(get, path = "/v1/auth/oauth/{provider}/callback", tag = "auth",
    params(("provider" = String, Path), CallbackQuery),
    responses((status = 303, description = "to the dashboard; session cookies set on success")))]
pub async fn callback(
    State(ctx): State<App>,
    headers: HeaderMap,
    client: ClientInfo,
    ApiPath(provider): ApiPath<String>,
    ApiQuery(q): ApiQuery<CallbackQuery>,
) -> Response {
    match finish(&ctx, &headers, client, &provider, q).await {
        Ok(r) => r,
        Err(Failure::Code(code)) => fail(&ctx, code),
        Err(Failure::Internal(e)) => {
            tracing::error!(error = %e, cause = e.cause().unwrap_or("-"), "OAuth callback failed.");
            fail(&ctx, "server_error")
        }
    }
}

enum Failure {
    Code(&'static str),
    Internal(ApiError),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Internal(e)
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Internal(e.into())
    }
}

async fn finish(
    ctx: &App,
    headers: &HeaderMap,
    client: ClientInfo,
    provider: &str,
    q: CallbackQuery,
) -> Result<Response, Failure> {
    if q.error.is_some() {
        return Err(Failure::Code("oauth_denied"));
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return Err(Failure::Code("invalid_state"));
    };
    let jar = CookieJar::from_headers(headers);
    let cookie_ok = jar
        .get(STATE_COOKIE)
        .is_some_and(|c| verify_cookie(ctx, c.value(), &state));
    if !cookie_ok {
        return Err(Failure::Code("invalid_state"));
    }
    let mut redis = ctx.redis();
    let flow: Option<String> = redis
        .get_del(flow_key(&state))
        .await
        .map_err(ApiError::from)?;
    let flow: Flow = flow
        .and_then(|s| serde_json::from_str(&s).ok())
        .ok_or(Failure::Code("invalid_state"))?;
    if flow.provider != provider {
        return Err(Failure::Code("invalid_state"));
    }
    let p = ctx
        .oauth
        .get(provider)
        .ok_or(Failure::Code("invalid_state"))?;
    let identity = p
        .identify(&code, PkceCodeVerifier::new(flow.verifier))
        .await
        .map_err(|e| {
            tracing::warn!(provider, error = %e, "OAuth identification failed.");
            Failure::Code("oauth_failed")
        })?;
    let linked = db::oauth::user_for(ctx.db(), provider, &identity.provider_user_id).await?;
    let base = &ctx.config().public_url;

    if flow.intent == Intent::Link {
        let user_id = flow.user_id.ok_or(Failure::Code("invalid_state"))?;
        match linked {
            Some(u) if u == user_id => {}
            Some(_) => return Err(Failure::Code("provider_already_linked")),
            None => {
                db::oauth::link(
                    ctx.db(),
                    user_id,
                    provider,
                    &identity.provider_user_id,
                    identity.email.as_deref(),
                )
                .await
                .map_err(|e| {
                    if wrenn_extension_api::error::is_unique_violation(&e) {
                        Failure::Code("provider_already_linked")
                    } else {
                        Failure::Internal(e.into())
                    }
                })?;
            }
        }
        return Ok(redirect(
            &format!("{base}/settings?connected={provider}"),
            &[clear_state_cookie()],
        ));
    }

    let user_id = match linked {
        Some(user_id) => {
            let user = db::users::find_by_id(ctx.db(), user_id)
                .await?
                .filter(|u| u.deleted_at.is_none() && u.is_active)
                .ok_or(Failure::Code("no_account"))?;
            if user.disabled_at.is_some() {
                return Err(Failure::Code("account_disabled"));
            }
            user.id
        }
        None if flow.intent == Intent::Login => return Err(Failure::Code("no_account")),
        None => signup(ctx, provider, &identity).await?,
    };
    let user = db::users::find_live(ctx.db(), user_id)
        .await?
        .ok_or(Failure::Code("no_account"))?;
    let team_id = landing_team(ctx, user.id, &user.name).await?;
    let session = ctx.sessions().issue(user.id, team_id, client).await?;
    accounts::after_login(ctx, user.id).await;
    let response = redirect(&format!("{base}/dashboard"), &[clear_state_cookie()]);
    Ok((session, response).into_response())
}

/// Creates an active account from a provider identity, with its default team and hooks.
async fn signup(ctx: &App, provider: &str, identity: &ExternalIdentity) -> Result<Uuid, Failure> {
    let email = identity
        .email
        .as_deref()
        .ok_or(Failure::Code("email_unverified"))?;
    if db::users::find_by_email(ctx.db(), email).await?.is_some() {
        return Err(Failure::Code("email_taken"));
    }
    let name: String = identity.name.chars().take(100).collect();
    let user_id = Uuid::new_v4();
    let mut tx = ctx.db().begin().await?;
    db::users::insert(&mut *tx, user_id, email, &name, None, false)
        .await
        .map_err(|e| {
            if wrenn_extension_api::error::is_unique_violation(&e) {
                Failure::Code("email_taken")
            } else {
                Failure::Internal(e.into())
            }
        })?;
    db::users::activate(&mut tx, user_id).await?;
    db::oauth::link(
        &mut *tx,
        user_id,
        provider,
        &identity.provider_user_id,
        Some(email),
    )
    .await?;
    match accounts::provision(ctx, &mut tx, user_id, email, &name, provider).await {
        Ok(_) => {}
        Err(e) if e.code == "signup_hook_failed" => {
            tx.rollback().await?;
            return Err(Failure::Code("signup_hook_failed"));
        }
        Err(e) => return Err(Failure::Internal(e)),
    }
    tx.commit().await?;
    tracing::info!(%user_id, provider, "Account created through OAuth.");
    Ok(user_id)
}

/// Unlink a provider; refused when it is your only way to sign in.
#[utoipa::path(delete, path = "/v1/me/providers/{provider}", tag = "me",
    params(("provider" = String, Path)),
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 204), (status = 400, body = ErrorEnvelope, description = "last_login_method"), (status = 404, body = ErrorEnvelope)))]
pub async fn unlink(
    State(ctx): State<App>,
    RequireSession(s): RequireSession,
    ApiPath(provider): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let mut tx = ctx.db().begin().await?;
    let user = db::users::find_live(&mut *tx, s.user_id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let providers = db::oauth::providers_of(&mut *tx, user.id).await?;
    if !providers.iter().any(|p| p == &provider) {
        return Err(ApiError::not_found(
            "not_found",
            "this provider is not linked",
        ));
    }
    if user.password_hash.is_none() && providers.len() == 1 {
        return Err(ApiError::bad_request(
            "last_login_method",
            "set a password or link another provider before unlinking this one",
        ));
    }
    db::oauth::unlink(&mut *tx, user.id, &provider).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
