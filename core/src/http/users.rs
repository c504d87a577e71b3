//! `/v1/users/search`: find users by email prefix (to add them to a team).

use crate::app::App;
use crate::db;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use utoipa::IntoParams;
use wrenn_extension_api::{ApiError, ApiQuery, RequireSession};

use super::paging::{Limits, Page, Paged};
use super::views::{ErrorEnvelope, UserSummary};
use uuid::Uuid;

/// At most this many results per answer (so whole directories cannot be listed at once).
pub const SEARCH_LIMIT: i64 = 10;
const SEARCH_LIMITS: Limits = Limits {
    default: SEARCH_LIMIT,
    max: SEARCH_LIMIT,
};

pub fn router() -> Router<App> {
    Router::new().route("/v1/users/search", get(search))
}

#[derive(Deserialize, IntoParams)]
pub struct SearchQuery {
    /// An email prefix that contains "@" (so whole directories cannot be listed).
    pub email: String,
    /// 1–10, default 10.
    #[param(minimum = 1, maximum = 10)]
    pub limit: Option<i64>,
    /// `X-Next-Cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Users whose email starts with the prefix, by email (case-insensitive, the order it always
/// had), at most 10 per answer, paged by `limit`/`cursor` (`X-Next-Cursor`).
#[utoipa::path(get, path = "/v1/users/search", tag = "users", params(SearchQuery),
    responses((status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 200, body = [UserSummary], headers(("X-Next-Cursor" = String, description = "present when another page follows"))),
              (status = 400, body = ErrorEnvelope, description = "no \"@\" in the prefix, or a bad limit or cursor"),
              (status = 401, body = ErrorEnvelope)))]
pub async fn search(
    State(ctx): State<App>,
    _session: RequireSession,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Paged<UserSummary>, ApiError> {
    let prefix = q.email.trim();
    if !prefix.contains('@') || prefix.len() > 254 {
        return Err(ApiError::invalid("email must be a prefix containing \"@\""));
    }
    let page: Page<(String, Uuid)> = Page::parse_with(q.limit, q.cursor.as_deref(), SEARCH_LIMITS)?;
    let users = db::users::search_by_email_prefix(ctx.db(), prefix, &page).await?;
    Ok(Paged::new(
        users,
        page,
        |u| (u.email.clone(), u.id),
        |u| UserSummary::from(u),
    ))
}
