//! `/v1/me`: the caller's profile, password, sessions.
//!
//! With an API key (team-scoped, no user) `GET /v1/me` answers the profile of the user who
//! created the key, with `auth.type = "api_key"` plus the key and team ids, so an SDK can tell
//! whose key it holds; if that user is gone it is 404 `user_not_found`. Everything else here
//! needs a session.

use crate::accounts;
use crate::app::App;
use crate::db;
use crate::passwords::Passwords;
use crate::ratelimit::{self, Rule};
use crate::tokens::{self, TokenKind};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use wrenn_extension_api::auth::{ClearSessionCookies, ClientInfo};
use wrenn_extension_api::{
    ids, AccountDeletion, ApiError, ApiJson, ApiPath, ApiQuery, Email, Principal, RequireSession,
    RequireSessionOrApiKey,
};

use super::paging::{ListQuery, Paged};
use super::views::ErrorEnvelope;

pub fn router() -> Router<App> {
    Router::new()
        .route("/v1/me", get(get_me).patch(update_me).delete(delete_me))
        .route("/v1/me/password", post(change_password))
        .route("/v1/me/password/reset", post(request_reset))
        .route("/v1/me/password/reset/confirm", post(confirm_reset))
        .route("/v1/me/sessions", get(list_sessions))
        .route("/v1/me/sessions/{id}", delete(revoke_session))
}

/// A user's profile.
#[derive(Serialize, ToSchema)]
pub struct Profile {
    pub id: String,
    pub name: String,
    pub email: String,
    pub has_password: bool,
    /// Linked OAuth providers, e.g. `["github"]`.
    pub providers: Vec<String>,
    pub is_admin: bool,
    /// How this request authenticated (only on `GET /v1/me`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthInfo>,
}

/// The credentials behind a request.
#[derive(Serialize, ToSchema)]
pub struct AuthInfo {
    /// `session` or `api_key`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub team_id: String,
    /// The session's role in `team_id` (sessions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The API key's id (API keys only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// Loads a live user's profile.
pub async fn profile(ctx: &App, user_id: Uuid) -> Result<Profile, ApiError> {
    let user = db::users::find_by_id(ctx.db(), user_id)
        .await?
        .filter(|u| u.deleted_at.is_none())
        .ok_or_else(|| ApiError::not_found("user_not_found", "user not found"))?;
    let providers = db::oauth::providers_of(ctx.db(), user_id).await?;
    Ok(Profile {
        id: ids::encode(ids::USER, user.id),
        name: user.name,
        email: user.email,
        has_password: user.password_hash.is_some(),
        providers,
        is_admin: user.is_admin,
        auth: None,
    })
}

/// The caller's profile (session), or the key creator's profile (API key).
#[utoipa::path(get, path = "/v1/me", tag = "me",
    responses((status = 200, body = Profile), (status = 401, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope, description = "user_not_found: the API key's creator was deleted")),
    security(("session" = []), ("api_key" = [])))]
pub async fn get_me(
    State(ctx): State<App>,
    RequireSessionOrApiKey(principal): RequireSessionOrApiKey,
) -> Result<Json<Profile>, ApiError> {
    let (user_id, auth) = match &principal {
        Principal::Session(s) => (
            s.user_id,
            AuthInfo {
                kind: "session",
                team_id: ids::encode(ids::TEAM, s.team_id),
                role: s.role.map(|r| r.as_str().to_string()),
                key_id: None,
            },
        ),
        Principal::ApiKey(k) => (
            k.created_by.ok_or_else(|| {
                ApiError::not_found("user_not_found", "the key's creator no longer exists")
            })?,
            AuthInfo {
                kind: "api_key",
                team_id: ids::encode(ids::TEAM, k.team_id),
                role: None,
                key_id: Some(ids::encode(ids::API_KEY, k.key_id)),
            },
        ),
    };
    let mut p = profile(&ctx, user_id).await?;
    p.auth = Some(auth);
    Ok(Json(p))
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateMe {
    /// New display name (1–100 characters).
    pub name: String,
}

/// Rename yourself.
#[utoipa::path(patch, path = "/v1/me", tag = "me", request_body = UpdateMe,
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 200, body = Profile), (status = 400, body = ErrorEnvelope)))]
pub async fn update_me(
    State(ctx): State<App>,
    RequireSession(s): RequireSession,
    ApiJson(req): ApiJson<UpdateMe>,
) -> Result<Json<Profile>, ApiError> {
    let name = super::auth::validate_name(&req.name)?;
    db::users::set_name(ctx.db(), s.user_id, &name).await?;
    Ok(Json(profile(&ctx, s.user_id).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct DeleteMe {
    /// Must equal the account's email.
    pub confirmation: String,
}

/// Delete your account (soft delete; purged after 15 days). Teams you own alone are deleted.
#[utoipa::path(delete, path = "/v1/me", tag = "me", request_body = DeleteMe,
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 204),
              (status = 400, body = ErrorEnvelope, description = "confirmation_mismatch"),
              (status = 409, body = ErrorEnvelope, description = "owns_team_with_members")))]
pub async fn delete_me(
    State(ctx): State<App>,
    RequireSession(s): RequireSession,
    ApiJson(req): ApiJson<DeleteMe>,
) -> Result<impl IntoResponse, ApiError> {
    let user = db::users::find_live(ctx.db(), s.user_id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    if !req.confirmation.trim().eq_ignore_ascii_case(&user.email) {
        return Err(ApiError::bad_request(
            "confirmation_mismatch",
            "confirmation must be your account's email",
        ));
    }
    let mut tx = ctx.db().begin().await?;
    if db::teams::owned_with_other_members(&mut *tx, user.id).await? > 0 {
        return Err(ApiError::conflict(
            "owns_team_with_members",
            "transfer or delete the teams you own that have other members first",
        ));
    }
    let deleted_teams = db::teams::soft_delete_owned(&mut *tx, user.id).await?;
    for &team in &deleted_teams {
        db::api_keys::revoke_all_for_team(&mut *tx, team).await?;
    }
    let deleted_at = db::users::soft_delete(&mut *tx, user.id).await?;
    tx.commit().await?;
    let actor = crate::events::Actor::user(user.id, user.email.clone());
    for team in deleted_teams {
        ctx.sessions().api_keys_revoked(team).await;
        crate::teams::destroy_capsules(&ctx, team, &actor).await;
    }
    ctx.sessions().revoke_all(user.id).await?;
    tracing::info!(user_id = %user.id, "Account soft-deleted.");
    let deletion = AccountDeletion::new(user.id, user.email, deleted_at);
    for named in &ctx.hooks.auth {
        if let Err(e) = named.hook.on_account_soft_delete(&ctx, &deletion).await {
            tracing::warn!(extension = %named.extension, error = %e, "Soft-delete hook failed.");
        }
    }
    Ok((StatusCode::NO_CONTENT, ClearSessionCookies, ()))
}

#[derive(Deserialize, ToSchema)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

/// Change your password: every session is revoked and this one replaced by a fresh session.
#[utoipa::path(post, path = "/v1/me/password", tag = "me", request_body = ChangePassword,
    responses((status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 400, body = crate::http::views::ErrorEnvelope, description = "`invalid_request`: a body that is not JSON of this shape (or not the form this route takes)"), (status = 204, description = "new session cookies are set"),
              (status = 401, body = ErrorEnvelope, description = "wrong_password")))]
pub async fn change_password(
    State(ctx): State<App>,
    client: ClientInfo,
    RequireSession(s): RequireSession,
    ApiJson(req): ApiJson<ChangePassword>,
) -> Result<impl IntoResponse, ApiError> {
    let core = &ctx;
    let user = db::users::find_live(ctx.db(), s.user_id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    if !core
        .passwords
        .verify(&req.current_password, user.password_hash.as_deref())
        .await?
    {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong_password",
            "current password is wrong",
        ));
    }
    Passwords::validate(&req.new_password)?;
    let hash = core.passwords.hash(&req.new_password).await?;
    db::users::set_password(ctx.db(), user.id, &hash).await?;
    ctx.sessions().revoke_all(user.id).await?;
    let fresh = ctx.sessions().issue(user.id, s.team_id, client).await?;
    notify(
        &ctx,
        &user.email,
        "Your Wrenn password was changed",
        "Your password was changed and every other session was signed out.\n\
         If this was not you, reset your password now.",
    )
    .await;
    Ok((StatusCode::NO_CONTENT, fresh, ()))
}

async fn notify(ctx: &App, to: &str, subject: &str, text: &str) {
    let email = Email {
        to: to.to_string(),
        subject: subject.to_string(),
        text: text.to_string(),
    };
    if let Err(e) = ctx.mailer().send(email).await {
        tracing::warn!(error = %e, "Notification mail failed.");
    }
}

#[derive(Deserialize, ToSchema)]
pub struct ResetRequest {
    pub email: String,
}

/// Ask for a password-reset link. Always 204, whether or not the account exists (the
/// limits count addresses alike, existing or not).
#[utoipa::path(post, path = "/v1/me/password/reset", tag = "me", request_body = ResetRequest,
    responses((status = 400, body = crate::http::views::ErrorEnvelope, description = "`invalid_request`: a body that is not JSON of this shape (or not the form this route takes)"), (status = 204),
              (status = 429, body = ErrorEnvelope, description = "rate_limited (requests per IP or per email); Retry-After gives the seconds to wait")))]
pub async fn request_reset(
    State(ctx): State<App>,
    client: ClientInfo,
    ApiJson(req): ApiJson<ResetRequest>,
) -> Result<StatusCode, ApiError> {
    let email = req.email.trim().to_string();
    ratelimit::hit(&ctx, Rule::ResetPerIp, client.ip.as_deref()).await?;
    ratelimit::hit(&ctx, Rule::ResetPerEmail, Some(&email)).await?;
    // The lookup and the mail happen after the response, so timing reveals nothing either.
    let app = ctx.clone();
    ctx.spawn(async move {
        if let Err(e) = send_reset(&app, &email).await {
            tracing::warn!(error = %e, cause = e.cause().unwrap_or("-"), "Password reset mail failed.");
        }
    });
    Ok(StatusCode::NO_CONTENT)
}

async fn send_reset(ctx: &App, email: &str) -> Result<(), ApiError> {
    let Some(user) = db::users::find_by_email(ctx.db(), email).await? else {
        return Ok(());
    };
    if !user.is_active || user.deleted_at.is_some() || user.disabled_at.is_some() {
        return Ok(());
    }
    let token = tokens::issue(
        ctx,
        TokenKind::PasswordReset,
        &user.id.to_string(),
        tokens::RESET_TTL,
    )
    .await?;
    let link = format!("{}/reset-password?token={token}", ctx.config().public_url);
    accounts::send(
        ctx,
        Email {
            to: user.email.clone(),
            subject: "Reset your Wrenn password".into(),
            text: format!(
                "Hi {},\n\nSet a new password within 15 minutes:\n{link}\n\n\
                 If you did not ask for this, ignore this message.",
                user.name
            ),
        },
    )
    .await
}

#[derive(Deserialize, ToSchema)]
pub struct ConfirmReset {
    pub token: String,
    pub new_password: String,
}

/// Set a new password with a reset token; every session is revoked.
#[utoipa::path(post, path = "/v1/me/password/reset/confirm", tag = "me", request_body = ConfirmReset,
    responses((status = 204), (status = 400, body = ErrorEnvelope, description = "invalid_token or invalid_password")))]
pub async fn confirm_reset(
    State(ctx): State<App>,
    ApiJson(req): ApiJson<ConfirmReset>,
) -> Result<StatusCode, ApiError> {
    Passwords::validate(&req.new_password)?;
    let invalid = || {
        ApiError::bad_request(
            "invalid_token",
            "the link is invalid, expired or already used",
        )
    };
    let subject = tokens::consume(&ctx, TokenKind::PasswordReset, req.token.trim())
        .await?
        .ok_or_else(invalid)?;
    let user_id: Uuid = subject.parse().map_err(|_| invalid())?;
    let user = db::users::find_live(ctx.db(), user_id)
        .await?
        .ok_or_else(invalid)?;
    let hash = ctx.passwords.hash(&req.new_password).await?;
    db::users::set_password(ctx.db(), user.id, &hash).await?;
    ctx.sessions().revoke_all(user.id).await?;
    notify(
        &ctx,
        &user.email,
        "Your Wrenn password was reset",
        "Your password was reset and every session was signed out.",
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// One of your sessions.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub team_id: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// True for the session making this request.
    pub current: bool,
}

/// Your live sessions, newest first (`(created_at, id)` descending), paged by
/// `limit`/`cursor` (`X-Next-Cursor`).
#[utoipa::path(get, path = "/v1/me/sessions", tag = "me", params(ListQuery),
    responses((status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 200, body = [SessionView], headers(("X-Next-Cursor" = String, description = "present when another page follows"))),
              (status = 400, body = ErrorEnvelope, description = "bad limit or cursor"),
              (status = 401, body = ErrorEnvelope)))]
pub async fn list_sessions(
    State(ctx): State<App>,
    RequireSession(s): RequireSession,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Paged<SessionView>, ApiError> {
    let page = q.page()?;
    let rows = db::sessions::page_for_user(ctx.db(), s.user_id, page).await?;
    Ok(Paged::new(
        rows,
        page,
        |r| (r.created_at, r.id),
        |r| SessionView {
            id: ids::encode(ids::SESSION, r.id),
            team_id: ids::encode(ids::TEAM, r.team_id),
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            expires_at: r.idle_expires_at.min(r.absolute_expires_at),
            user_agent: r.user_agent.clone(),
            ip: r.ip.clone(),
            current: r.id == s.session_id,
        },
    ))
}

/// Revoke one of your sessions.
#[utoipa::path(delete, path = "/v1/me/sessions/{id}", tag = "me",
    params(("id" = String, Path, description = "ses_ id")),
    responses((status = 401, body = crate::http::views::ErrorEnvelope, description = "no valid session or API key"), (status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn revoke_session(
    State(ctx): State<App>,
    RequireSession(s): RequireSession,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = ids::parse(ids::SESSION, &id, "session")?;
    match db::sessions::owner_of(ctx.db(), id).await? {
        Some(owner) if owner == s.user_id => {
            ctx.sessions().revoke(id).await?;
            Ok(StatusCode::NO_CONTENT)
        }
        _ => Err(ApiError::not_found("not_found", "session not found")),
    }
}
