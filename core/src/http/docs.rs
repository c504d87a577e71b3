//! `GET /openapi.json` (generated from the handlers' annotations) and `GET /docs`, a
//! self-contained HTML page that renders the spec in the browser (no assets fetched).

use super::{api_keys, auth, health, me, oauth, teams, users, views};
use crate::app::App;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[cfg(test)]
mod typescript;

#[derive(OpenApi)]
#[openapi(
    info(title = "Wrenn control plane API", description = "Secure sandboxes for AI. Errors are `{\"error\":{\"code\",\"message\"}}`. Session requests that change state must send `X-CSRF-Token` equal to the `wrenn_csrf` cookie."),
    paths(
        health::health,
        auth::signup, auth::activate, auth::login, auth::logout, auth::logout_all, auth::switch_team,
        oauth::start, oauth::callback, oauth::connect, oauth::unlink,
        me::get_me, me::update_me, me::delete_me, me::change_password, me::request_reset,
        me::confirm_reset, me::list_sessions, me::revoke_session,
        teams::list, teams::create, teams::get_team, teams::rename, teams::remove,
        teams::list_members, teams::add_member, teams::set_role, teams::remove_member, teams::leave,
        api_keys::create, api_keys::list, api_keys::remove,
        users::search,
    ),
    components(schemas(views::ErrorEnvelope, views::ErrorBody, views::Message)),
    modifiers(&Security),
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("wrenn_sid"))),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

pub fn router() -> Router<App> {
    Router::new()
        .route("/openapi.json", get(spec))
        .route("/docs", get(page))
}

/// The OpenAPI document, with the running server's version.
pub fn document(version: &str) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(super::capsules::CapsulesApi::openapi());
    doc.merge(super::hosts::HostsApi::openapi());
    doc.merge(super::channels::ChannelsApi::openapi());
    doc.merge(super::formatters::FormattersApi::openapi());
    doc.merge(super::admin::AdminApi::openapi());
    doc.merge(super::builds::BuildsApi::openapi());
    doc.info.version = version.to_string();
    doc
}

async fn spec(State(ctx): State<App>) -> Json<utoipa::openapi::OpenApi> {
    Json(document(&ctx.config().version))
}

async fn page() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn dashboard_api_types_match_the_document() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/src/generated/api.ts");
        let doc = serde_json::to_value(super::document("0")).unwrap();
        let want = super::typescript::module(&doc);
        if std::env::var_os("WRENN_REGENERATE").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(have, want, "{} is stale: regenerate it", path.display());
    }
}
