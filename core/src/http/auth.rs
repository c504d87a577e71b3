//! `/v1/auth/*`: signup, activation, login, logout, team switch.

use crate::accounts;
use crate::app::App;
use crate::db;
use crate::http::me::{self, Profile};
use crate::passwords::Passwords;
use crate::ratelimit::{self, Rule};
use crate::tokens::{self, TokenKind};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use wrenn_extension_api::auth::{ClearSessionCookies, ClientInfo};
use wrenn_extension_api::{ids, ApiError, ApiJson, IssuedSession, RequireSession};

use super::views::Message;

/// Repeat signups of an inactive address are refused for this long.
pub const SIGNUP_COOLDOWN: Duration = Duration::minutes(30);

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/auth/signup", post(signup))
        .route("/v1/auth/activate", post(activate))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/auth/logout-all", post(logout_all))
        .route("/v1/auth/switch-team", post(switch_team))
}

#[derive(Deserialize, ToSchema)]
pub struct SignupRequest {
    pub email: String,
    /// At least 8 characters.
    pub password: String,
    /// At most 100 characters.
    pub name: String,
}

#[derive(Deserialize, ToSchema)]
pub struct TokenRequest {
    pub token: String,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct SwitchTeamRequest {
    pub team_id: String,
}

/// A session was issued: cookies `wrenn_sid` and `wrenn_csrf` are set.
#[derive(Serialize, ToSchema)]
pub struct SessionStarted {
    pub user: Profile,
    /// The team the session acts in.
    pub team_id: String,
    /// Same value as the `wrenn_csrf` cookie; send it as `X-CSRF-Token`.
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// Checks an email address's shape (the activation mail proves it is real).
pub fn validate_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.contains('@')
               && !domain.starts_with('.') && !domain.ends_with('.'));
    if valid {
        Ok(email.to_string())
    } else {
        Err(ApiError::bad_request(
            "invalid_email",
            "email address is not valid",
        ))
    }
}

/// Trims a display name and checks 1..=100 characters.
pub fn validate_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    let n = name.chars().count();
    if n == 0 || n > 100 {
        return Err(ApiError::bad_request(
            "invalid_name",
            "name must be 1 to 100 characters",
        ));
    }
    Ok(name.to_string())
}

/// Builds the login/activation response and its cookies.
pub async fn session_started(
    ctx: &App,
    session: IssuedSession,
    user_id: Uuid,
    team_id: Uuid,
) -> Result<impl IntoResponse, ApiError> {
    let user = me::profile(ctx, user_id).await?;
    let body = SessionStarted {
        user,
        team_id: ids::encode(ids::TEAM, team_id),
        csrf_token: session.csrf.clone(),
        expires_at: session.expires_at,
    };
    Ok((session, Json(body)))
}

/// Sign up with email and password.
#[utoipa::path(post, path = "/v1/auth/signup", tag = "auth", request_body = SignupRequest,
    responses((status = 201, body = Message),
              (status = 400, body = super::views::ErrorEnvelope, description = "invalid_email, invalid_password, invalid_name, invalid_request"),
              (status = 409, body = super::views::ErrorEnvelope, description = "email_taken or signup_cooldown"),
              (status = 429, body = super::views::ErrorEnvelope, description = "rate_limited (sign-ups per IP); Retry-After gives the seconds to wait")))]
pub async fn signup(
    State(ctx): State<App>,
    client: ClientInfo,
    ApiJson(req): ApiJson<SignupRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let email = validate_email(&req.email)?;
    let name = validate_name(&req.name)?;
    Passwords::validate(&req.password)?;
    ratelimit::hit(&ctx, Rule::SignupPerIp, client.ip.as_deref()).await?;
    let core = &ctx;
    let created = (
        StatusCode::CREATED,
        Json(Message {
            message: "Check your email for an activation link (valid 30 minutes).".into(),
        }),
    );
    if let Some(existing) = db::users::find_by_email(ctx.db(), &email).await? {
        if existing.is_active || existing.deleted_at.is_some() {
            return Err(email_taken());
        }
        if Utc::now() - existing.created_at < SIGNUP_COOLDOWN {
            return Err(ApiError::conflict(
                "signup_cooldown",
                "an activation link was sent recently; check your email or retry in 30 minutes",
            ));
        }
        let hash = core.passwords.hash(&req.password).await?;
        db::users::refresh_pending(ctx.db(), existing.id, &name, &hash).await?;
        accounts::send_activation(&ctx, existing.id, &existing.email, &name).await?;
        return Ok(created);
    }
    let hash = core.passwords.hash(&req.password).await?;
    let user_id = Uuid::new_v4();
    let mut tx = ctx.db().begin().await?;
    db::users::insert(&mut *tx, user_id, &email, &name, Some(&hash), false)
        .await
        .map_err(|e| {
            ApiError::conflict_on_unique(e, "email_taken", "an account with this email exists")
        })?;
    // Mail before commit: if it cannot be sent the account is not created and the user may retry.
    accounts::send_activation(&ctx, user_id, &email, &name).await?;
    tx.commit().await?;
    Ok(created)
}

fn email_taken() -> ApiError {
    ApiError::conflict("email_taken", "an account with this email exists")
}

fn invalid_token() -> ApiError {
    ApiError::bad_request(
        "invalid_token",
        "the link is invalid, expired or already used",
    )
}

/// Activate an account with the token from the activation mail; issues a session.
#[utoipa::path(post, path = "/v1/auth/activate", tag = "auth", request_body = TokenRequest,
    responses((status = 200, body = SessionStarted),
              (status = 400, body = super::views::ErrorEnvelope, description = "invalid_token or already_activated"),
              (status = 500, body = super::views::ErrorEnvelope, description = "signup_hook_failed")))]
pub async fn activate(
    State(ctx): State<App>,
    client: ClientInfo,
    ApiJson(req): ApiJson<TokenRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let token = req.token.trim();
    let Some(subject) = tokens::consume(&ctx, TokenKind::Activation, token).await? else {
        return Err(invalid_token());
    };
    let user_id: Uuid = subject.parse().map_err(|_| invalid_token())?;
    let Some(user) = db::users::find_by_id(ctx.db(), user_id).await? else {
        return Err(invalid_token());
    };
    if user.deleted_at.is_some() {
        return Err(invalid_token());
    }
    if user.is_active {
        return Err(ApiError::bad_request(
            "already_activated",
            "this account is already active",
        ));
    }
    let mut tx = ctx.db().begin().await?;
    db::users::activate(&mut tx, user.id).await?;
    let team_id =
        match accounts::provision(&ctx, &mut tx, user.id, &user.email, &user.name, "email").await {
            Ok(t) => t,
            Err(e) => {
                tx.rollback().await?;
                // The account is untouched; let the same link be tried again.
                tokens::restore(
                    &ctx,
                    TokenKind::Activation,
                    token,
                    &subject,
                    tokens::ACTIVATION_TTL,
                )
                .await?;
                return Err(e);
            }
        };
    tx.commit().await?;
    tracing::info!(user_id = %user.id, %team_id, "Account activated.");
    let session = ctx.sessions().issue(user.id, team_id, client).await?;
    session_started(&ctx, session, user.id, team_id).await
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 400, body = crate::http::views::ErrorEnvelope, description = "`invalid_request`: a body that is not JSON of this shape (or not the form this route takes)"), (status = 200, body = SessionStarted),
              (status = 401, body = super::views::ErrorEnvelope, description = "invalid_credentials (unknown email, wrong password or deleted account alike)"),
              (status = 403, body = super::views::ErrorEnvelope, description = "account_not_activated or account_disabled"),
              (status = 429, body = super::views::ErrorEnvelope, description = "rate_limited (attempts per IP, or failures per account); Retry-After gives the seconds to wait")))]
pub async fn login(
    State(ctx): State<App>,
    client: ClientInfo,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let core = &ctx;
    let email = req.email.trim();
    ratelimit::hit(&ctx, Rule::LoginPerIp, client.ip.as_deref()).await?;
    // Checked before the password, so guessing stops once the account's failures are used up.
    ratelimit::check(&ctx, Rule::LoginFailuresPerAccount, email).await?;
    let user = db::users::find_by_email(ctx.db(), email).await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.as_deref());
    let ok = core.passwords.verify(&req.password, hash).await?;
    let user = match user {
        Some(u) if ok && u.deleted_at.is_none() => u,
        _ => {
            // Unknown emails count too: the answer must not tell them apart.
            let _ = ratelimit::hit(&ctx, Rule::LoginFailuresPerAccount, Some(email)).await;
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "invalid email or password",
            ));
        }
    };
    ratelimit::clear(&ctx, Rule::LoginFailuresPerAccount, email).await;
    if !user.is_active {
        return Err(ApiError::forbidden(
            "account_not_activated",
            "activate your account with the link sent by email",
        ));
    }
    if user.disabled_at.is_some() {
        return Err(ApiError::forbidden(
            "account_disabled",
            "this account is disabled",
        ));
    }
    let team_id = landing_team(&ctx, user.id, &user.name).await?;
    let session = ctx.sessions().issue(user.id, team_id, client).await?;
    accounts::after_login(&ctx, user.id).await;
    session_started(&ctx, session, user.id, team_id).await
}

/// The team a new session acts in; a user left without any team gets a fresh one.
pub async fn landing_team(ctx: &App, user_id: Uuid, name: &str) -> Result<Uuid, ApiError> {
    if let Some(team) = db::teams::default_for_user(ctx.db(), user_id).await? {
        return Ok(team);
    }
    let mut tx = ctx.db().begin().await?;
    let team_id = Uuid::new_v4();
    db::teams::insert(&mut *tx, team_id, &format!("{name}'s Team")).await?;
    db::teams::add_member(&mut *tx, team_id, user_id, wrenn_extension_api::Role::Owner).await?;
    tx.commit().await?;
    Ok(team_id)
}

/// End this session.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = super::views::ErrorEnvelope), (status = 403, body = super::views::ErrorEnvelope, description = "csrf_failed")))]
pub async fn logout(
    State(ctx): State<App>,
    RequireSession(session): RequireSession,
) -> Result<impl IntoResponse, ApiError> {
    ctx.sessions().revoke(session.session_id).await?;
    Ok((StatusCode::NO_CONTENT, ClearSessionCookies, ()))
}

/// End every session of the caller.
#[utoipa::path(post, path = "/v1/auth/logout-all", tag = "auth",
    responses((status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 204), (status = 401, body = super::views::ErrorEnvelope)))]
pub async fn logout_all(
    State(ctx): State<App>,
    RequireSession(session): RequireSession,
) -> Result<impl IntoResponse, ApiError> {
    ctx.sessions().revoke_all(session.user_id).await?;
    Ok((StatusCode::NO_CONTENT, ClearSessionCookies, ()))
}

/// Move the session to another team the caller belongs to (the session id is rotated).
#[utoipa::path(post, path = "/v1/auth/switch-team", tag = "auth", request_body = SwitchTeamRequest,
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 400, body = crate::http::views::ErrorEnvelope, description = "`invalid_request`: a body that is not JSON of this shape (or not the form this route takes)"), (status = 200, body = SessionStarted),
              (status = 403, body = super::views::ErrorEnvelope, description = "not_a_member"),
              (status = 404, body = super::views::ErrorEnvelope, description = "team_not_found")))]
pub async fn switch_team(
    State(ctx): State<App>,
    client: ClientInfo,
    RequireSession(session): RequireSession,
    ApiJson(req): ApiJson<SwitchTeamRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let not_found = || ApiError::not_found("team_not_found", "team not found");
    let team_id = ids::decode(ids::TEAM, &req.team_id).ok_or_else(not_found)?;
    db::teams::get(ctx.db(), team_id)
        .await?
        .ok_or_else(not_found)?;
    if db::teams::role_of(ctx.db(), team_id, session.user_id)
        .await?
        .is_none()
    {
        return Err(ApiError::forbidden(
            "not_a_member",
            "you are not a member of this team",
        ));
    }
    ctx.sessions().revoke(session.session_id).await?;
    let fresh = ctx
        .sessions()
        .issue(session.user_id, team_id, client)
        .await?;
    session_started(&ctx, fresh, session.user_id, team_id).await
}
