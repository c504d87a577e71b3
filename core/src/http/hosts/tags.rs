//! `/v1/hosts/{id}/tags`: free-form labels on hosts (`^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$`).

use super::managed_host;
use crate::app::App;
use crate::db::hosts as db;
use crate::http::views::ErrorEnvelope;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use wrenn_extension_api::{ApiError, ApiJson, ApiPath, RequireSession};

pub fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    tag.len() <= 63
        && first.is_ascii_alphanumeric()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

#[utoipa::path(get, path = "/v1/hosts/{id}/tags", tag = "hosts", params(("id" = String, Path, description = "host_ id")),
    responses((status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 200, body = [String], description = "A bare JSON array of the host's tags, by name"),
              (status = 400, body = ErrorEnvelope, description = "not a host_ id"),
              (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope, description = "`not_found`")))]
pub async fn list(
    State(ctx): State<App>,
    RequireSession(session): RequireSession,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<Vec<String>>, ApiError> {
    let (_, host) = managed_host(&ctx, session, &id).await?;
    Ok(ApiJson(db::tags(ctx.db(), host.id).await?))
}

/// `{"tag": "gpu"}` or `{"tags": ["gpu", "eu"]}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AddTags {
    /// One tag.
    tag: Option<String>,
    /// Several tags (with `tag`, 1 to 50 in all).
    #[serde(default)]
    tags: Vec<String>,
}

#[utoipa::path(post, path = "/v1/hosts/{id}/tags", tag = "hosts", params(("id" = String, Path, description = "host_ id")),
    request_body = AddTags,
    description = "Body `{tag}` or `{tags: [..]}`; tags match `^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$`.",
    responses((status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 200, body = [String], description = "The host's tags after the change, a bare JSON array"),
              (status = 400, body = ErrorEnvelope, description = "`invalid_request`"),
              (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope, description = "`not_found`")))]
pub async fn add(
    State(ctx): State<App>,
    RequireSession(session): RequireSession,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AddTags>,
) -> Result<ApiJson<Vec<String>>, ApiError> {
    let (_, host) = managed_host(&ctx, session, &id).await?;
    let mut tags = body.tags;
    tags.extend(body.tag);
    if tags.is_empty() || tags.len() > 50 {
        return Err(ApiError::invalid("give between 1 and 50 tags"));
    }
    if let Some(bad) = tags.iter().find(|t| !valid_tag(t)) {
        return Err(ApiError::invalid(format!(
            "invalid tag {bad:?}: letters, digits, '.', '_', ':' and '-', at most 63"
        )));
    }
    db::add_tags(ctx.db(), host.id, &tags).await?;
    Ok(ApiJson(db::tags(ctx.db(), host.id).await?))
}

#[utoipa::path(delete, path = "/v1/hosts/{id}/tags/{tag}", tag = "hosts",
    params(("id" = String, Path, description = "host_ id"), ("tag" = String, Path, description = "tag")),
    responses((status = 403, body = crate::http::views::ErrorEnvelope, description = "`session_required`: an API key, where a signed-in session is needed"), (status = 204, description = "removed"), (status = 400, body = ErrorEnvelope, description = "not a host_ id"),
              (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope, description = "`not_found`")))]
pub async fn remove(
    State(ctx): State<App>,
    RequireSession(session): RequireSession,
    ApiPath((id, tag)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (_, host) = managed_host(&ctx, session, &id).await?;
    if db::remove_tag(ctx.db(), host.id, &tag).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("not_found", "tag not found"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tag_syntax() {
        assert!(super::valid_tag("gpu"));
        assert!(super::valid_tag("zone:eu-1.a_b"));
        assert!(!super::valid_tag(""));
        assert!(!super::valid_tag("-x"));
        assert!(!super::valid_tag("a b"));
        assert!(!super::valid_tag(&"a".repeat(64)));
    }
}
