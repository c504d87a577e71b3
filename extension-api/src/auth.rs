//! Who is calling: principals, the session service core implements, and route guards.
//!
//! Guards are axum extractors usable by core and extension routes alike:
//! [`RequireSession`], [`RequireSessionOrApiKey`], [`RequireAdmin`]. A session on a
//! non-GET/HEAD/OPTIONS request must carry `X-CSRF-Token` equal to the `wrenn_csrf` cookie (and
//! to the token issued with that session), else 403 `csrf_failed`.

use crate::context::ServerContext;
use crate::error::ApiError;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::{SET_COOKIE, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method};
use axum::response::{IntoResponseParts, ResponseParts};
use axum_extra::extract::CookieJar;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// Session id cookie (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "wrenn_sid";
/// CSRF cookie (readable by the dashboard's JavaScript, SameSite=Strict).
pub const CSRF_COOKIE: &str = "wrenn_csrf";
/// Header that must repeat the CSRF cookie on state-changing session requests.
pub const CSRF_HEADER: &str = "X-CSRF-Token";
/// API key header (`wrn_` + 32 hex).
pub const API_KEY_HEADER: &str = "X-API-Key";

/// A member's role in a team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }

    /// Owners and admins manage a team (rename, members, roles).
    pub fn can_manage(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

/// A signed-in user acting within their session's current team.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionPrincipal {
    /// Database id of the session row (`ses_` on the wire).
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub team_id: Uuid,
    /// The user's role in `team_id`, re-read on every request; `None` once they left the team.
    pub role: Option<Role>,
    /// Hex SHA-256 of the CSRF token issued with this session.
    pub csrf_digest: String,
    pub expires_at: DateTime<Utc>,
}

impl SessionPrincipal {
    pub fn new(
        session_id: Uuid,
        user_id: Uuid,
        team_id: Uuid,
        role: Option<Role>,
        csrf_digest: String,
        expires_at: DateTime<Utc>,
    ) -> Self {
        Self {
            session_id,
            user_id,
            team_id,
            role,
            csrf_digest,
            expires_at,
        }
    }
}

/// A request authenticated with an API key: team-scoped, no user.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ApiKeyPrincipal {
    pub key_id: Uuid,
    pub team_id: Uuid,
    /// The user who created the key (if still present).
    pub created_by: Option<Uuid>,
}

impl ApiKeyPrincipal {
    pub fn new(key_id: Uuid, team_id: Uuid, created_by: Option<Uuid>) -> Self {
        Self {
            key_id,
            team_id,
            created_by,
        }
    }
}

/// Either kind of caller.
#[derive(Debug, Clone)]
pub enum Principal {
    Session(SessionPrincipal),
    ApiKey(ApiKeyPrincipal),
}

impl Principal {
    pub fn team_id(&self) -> Uuid {
        match self {
            Principal::Session(s) => s.team_id,
            Principal::ApiKey(k) => k.team_id,
        }
    }

    /// The acting user, if a session.
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Principal::Session(s) => Some(s.user_id),
            Principal::ApiKey(_) => None,
        }
    }
}

/// Client details recorded with a new session. As an extractor it never fails: the user agent
/// comes from the header, the IP from the TCP peer (`ConnectInfo`), never from client-supplied
/// headers such as `X-Forwarded-For`, which anyone can forge.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

impl ClientInfo {
    pub fn from_parts(parts: &Parts) -> Self {
        let user_agent = parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(300).collect());
        let ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        Self { user_agent, ip }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(parts))
    }
}

/// A freshly issued session. As a response part it sets both cookies.
#[derive(Debug, Clone)]
pub struct IssuedSession {
    pub session_id: Uuid,
    /// Plaintext session id (only ever in the cookie; stored hashed).
    pub sid: String,
    /// Plaintext CSRF token (cookie, and the body of login responses).
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
    /// Adds `Secure` to the cookies (the public URL is https).
    pub secure: bool,
}

impl IssuedSession {
    fn cookies(&self) -> [String; 2] {
        let secure = if self.secure { "; Secure" } else { "" };
        let max_age = (self.expires_at - Utc::now()).num_seconds().max(0);
        [
            format!(
                "{SESSION_COOKIE}={}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}",
                self.sid
            ),
            format!(
                "{CSRF_COOKIE}={}; Path=/; Max-Age={max_age}; SameSite=Strict{secure}",
                self.csrf
            ),
        ]
    }
}

impl IntoResponseParts for IssuedSession {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        for cookie in self.cookies() {
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                res.headers_mut().append(SET_COOKIE, v);
            }
        }
        Ok(res)
    }
}

/// Response part that removes both session cookies (logout).
#[derive(Debug, Clone, Copy)]
pub struct ClearSessionCookies;

impl IntoResponseParts for ClearSessionCookies {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        for name in [SESSION_COOKIE, CSRF_COOKIE] {
            let v = format!("{name}=; Path=/; Max-Age=0; SameSite=Strict");
            if let Ok(v) = HeaderValue::from_str(&v) {
                res.headers_mut().append(SET_COOKIE, v);
            }
        }
        Ok(res)
    }
}

/// Sessions and API keys, implemented by core on PostgreSQL + Redis.
#[async_trait::async_trait]
pub trait SessionService: Send + Sync + 'static {
    /// Looks up a session by its plaintext id and slides its idle window. `None` when unknown,
    /// revoked or expired (idle 6 h or absolute 24 h).
    async fn resolve_session(&self, sid: &str) -> Result<Option<SessionPrincipal>, ApiError>;

    /// Looks up an API key by its plaintext value and records `last_used` (core: at most once
    /// a minute per key, and verified keys are trusted for a few seconds without asking the
    /// database again; see [`SessionService::api_keys_revoked`]).
    async fn resolve_api_key(&self, key: &str) -> Result<Option<ApiKeyPrincipal>, ApiError>;

    /// Call once a transaction that revoked API keys of `team_id` (or deleted the team) has
    /// committed: resolved keys cached by any control plane sharing this Redis are forgotten,
    /// so a revoked key is refused from the next request on. Extensions that revoke keys in
    /// their own SQL must call it too. Default: nothing (an implementation without a cache).
    async fn api_keys_revoked(&self, team_id: Uuid) {
        let _ = team_id;
    }

    /// Issues a session for `user_id` acting in `team_id`.
    async fn issue(
        &self,
        user_id: Uuid,
        team_id: Uuid,
        client: ClientInfo,
    ) -> Result<IssuedSession, ApiError>;

    /// Revokes one session.
    async fn revoke(&self, session_id: Uuid) -> Result<(), ApiError>;

    /// Revokes every session of a user; returns how many.
    async fn revoke_all(&self, user_id: Uuid) -> Result<u64, ApiError>;

    /// Whether the user is a platform admin, read from the database (never cached).
    async fn is_platform_admin(&self, user_id: Uuid) -> Result<bool, ApiError>;
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn is_safe_method(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

async fn session_from_parts(
    parts: &Parts,
    ctx: &ServerContext,
) -> Result<Option<SessionPrincipal>, ApiError> {
    let jar = CookieJar::from_headers(&parts.headers);
    let Some(sid) = jar.get(SESSION_COOKIE).map(|c| c.value().to_string()) else {
        return Ok(None);
    };
    let Some(session) = ctx.sessions().resolve_session(&sid).await? else {
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "session_expired",
            "session expired or revoked; sign in again",
        ));
    };
    if !is_safe_method(&parts.method) {
        let header = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let cookie = jar.get(CSRF_COOKIE).map(|c| c.value()).unwrap_or("");
        let matches_cookie =
            !header.is_empty() && bool::from(header.as_bytes().ct_eq(cookie.as_bytes()));
        let matches_session = bool::from(
            sha256_hex(header)
                .as_bytes()
                .ct_eq(session.csrf_digest.as_bytes()),
        );
        if !(matches_cookie && matches_session) {
            return Err(ApiError::forbidden(
                "csrf_failed",
                "missing or invalid X-CSRF-Token header",
            ));
        }
    }
    Ok(Some(session))
}

async fn principal_from_parts(parts: &Parts, ctx: &ServerContext) -> Result<Principal, ApiError> {
    if let Some(key) = parts.headers.get(API_KEY_HEADER) {
        let key = key.to_str().unwrap_or("");
        return match ctx.sessions().resolve_api_key(key).await? {
            Some(k) => Ok(Principal::ApiKey(k)),
            None => Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "API key is invalid or revoked",
            )),
        };
    }
    match session_from_parts(parts, ctx).await? {
        Some(s) => Ok(Principal::Session(s)),
        None => Err(ApiError::unauthorized()),
    }
}

/// Guard: a valid session (with CSRF on unsafe methods). API keys are refused.
#[derive(Debug, Clone)]
pub struct RequireSession(pub SessionPrincipal);

impl<S> FromRequestParts<S> for RequireSession
where
    ServerContext: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ctx = ServerContext::from_ref(state);
        if parts.headers.contains_key(API_KEY_HEADER) {
            return Err(ApiError::forbidden(
                "session_required",
                "this endpoint needs a signed-in session, not an API key",
            ));
        }
        match session_from_parts(parts, &ctx).await? {
            Some(s) => Ok(Self(s)),
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// Guard: a session or an `X-API-Key` (a key takes precedence when both are sent).
#[derive(Debug, Clone)]
pub struct RequireSessionOrApiKey(pub Principal);

impl<S> FromRequestParts<S> for RequireSessionOrApiKey
where
    ServerContext: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ctx = ServerContext::from_ref(state);
        principal_from_parts(parts, &ctx).await.map(Self)
    }
}

/// Guard: a session whose user is a platform admin, re-checked in the database per request.
#[derive(Debug, Clone)]
pub struct RequireAdmin(pub SessionPrincipal);

impl<S> FromRequestParts<S> for RequireAdmin
where
    ServerContext: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ctx = ServerContext::from_ref(state);
        let RequireSession(session) = RequireSession::from_request_parts(parts, state).await?;
        if ctx.sessions().is_platform_admin(session.user_id).await? {
            Ok(Self(session))
        } else {
            Err(ApiError::forbidden(
                "admin_required",
                "platform administrator rights required",
            ))
        }
    }
}

/// Minimum team roles for [`RequireTeamRole`].
pub mod roles {
    use super::Role;

    /// A role threshold: the guard admits `Role`s that satisfy [`MinimumRole::admits`].
    pub trait MinimumRole: Send + Sync + 'static {
        /// Named in the 403 message.
        const NAME: &'static str;
        fn admits(role: Role) -> bool;
    }

    /// Any member of the team.
    #[derive(Debug)]
    pub enum Member {}
    /// Owners and admins (those who manage the team).
    #[derive(Debug)]
    pub enum Admin {}
    /// The team's owner only.
    #[derive(Debug)]
    pub enum Owner {}

    impl MinimumRole for Member {
        const NAME: &'static str = "member";
        fn admits(_: Role) -> bool {
            true
        }
    }
    impl MinimumRole for Admin {
        const NAME: &'static str = "admin";
        fn admits(role: Role) -> bool {
            role.can_manage()
        }
    }
    impl MinimumRole for Owner {
        const NAME: &'static str = "owner";
        fn admits(role: Role) -> bool {
            role == Role::Owner
        }
    }
}

/// Guard: a session whose user holds at least role `R` in the session's current team,
/// re-read from the database on every request. API keys are refused (403
/// `session_required`); a lower role, or a user who left the team, is 403
/// `team_role_required`. Use the aliases [`RequireTeamAdmin`] and [`RequireTeamOwner`].
#[derive(Debug, Clone)]
pub struct RequireTeamRole<R: roles::MinimumRole>(
    pub SessionPrincipal,
    pub std::marker::PhantomData<fn() -> R>,
);

/// Owners and admins of the current team.
pub type RequireTeamAdmin = RequireTeamRole<roles::Admin>;
/// The owner of the current team.
pub type RequireTeamOwner = RequireTeamRole<roles::Owner>;

impl<S, R> FromRequestParts<S> for RequireTeamRole<R>
where
    ServerContext: FromRef<S>,
    S: Send + Sync,
    R: roles::MinimumRole,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let RequireSession(session) = RequireSession::from_request_parts(parts, state).await?;
        match session.role {
            Some(role) if R::admits(role) => Ok(Self(session, std::marker::PhantomData)),
            _ => Err(ApiError::forbidden(
                "team_role_required",
                format!("this needs the {} role in the current team", R::NAME),
            )),
        }
    }
}
