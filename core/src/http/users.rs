//! `/v1/users/search`: find users by email prefix (to add them to a team).

use crate::app::App;
use crate::db;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::IntoParams;
use wrenn_extension_api::{ApiError, ApiQuery, RequireSession};

use super::views::{ErrorEnvelope, UserSummary};

/// At most this many results.
pub const SEARCH_LIMIT: i64 = 10;

pub fn router() -> Router<App> {
    Router::new().route("/v1/users/search", get(search))
}

#[derive(Deserialize, IntoParams)]
pub struct SearchQuery {
    /// An email prefix that contains "@" (so whole directories cannot be listed).
    pub email: String,
}

/// Users whose email starts with the prefix, at most 10.
#[utoipa::path(get, path = "/v1/users/search", tag = "users", params(SearchQuery),
    responses((status = 200, body = [UserSummary]), (status = 400, body = ErrorEnvelope)))]
pub async fn search(
    State(ctx): State<App>,
    _session: RequireSession,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<Vec<UserSummary>>, ApiError> {
    let prefix = q.email.trim();
    if !prefix.contains('@') || prefix.len() > 254 {
        return Err(ApiError::invalid("email must be a prefix containing \"@\""));
    }
    let users = db::users::search_by_email_prefix(ctx.db(), prefix, SEARCH_LIMIT).await?;
    Ok(Json(users.iter().map(UserSummary::from).collect()))
}
