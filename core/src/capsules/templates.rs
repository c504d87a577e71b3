//! Template resolution and naming rules.

use crate::app::App;
use crate::db::templates::{self as db, TemplateRow};
use uuid::Uuid;
use wrenn_extension_api::ApiError;

/// What older clients send for "the default base template".
pub const DEFAULT_ALIAS: &str = "minimal";

/// The template a create request names: omitted or `minimal` → the configured default; the
/// team's own templates shadow the platform's. Unknown → 404 `template_not_found`.
pub async fn resolve(
    ctx: &App,
    team_id: Uuid,
    requested: Option<&str>,
) -> Result<TemplateRow, ApiError> {
    let settings = &ctx.capsules;
    let name = match requested.map(str::trim) {
        None | Some("") | Some(DEFAULT_ALIAS) => settings.default_template.as_str(),
        Some(n) => n,
    };
    db::find_visible(ctx.db(), team_id, name)
        .await?
        .ok_or_else(|| {
            ApiError::not_found("template_not_found", format!("template '{name}' not found"))
        })
}

/// What a capsule of `template` starts with: a built template's recipe defaults (`ENV`,
/// `WORKDIR`, `USER`), none for other templates.
pub fn defaults(template: &TemplateRow) -> crate::builds::recipe::Defaults {
    template
        .metadata
        .get("defaults")
        .and_then(|d| serde_json::from_value(d.clone()).ok())
        .unwrap_or_default()
}

/// Whether `name` is a valid template name: `^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$`.
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A default snapshot name: `template-` + 8 hex digits.
pub fn default_name() -> String {
    format!("template-{:08x}", rand::random::<u32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules() {
        assert!(valid_name("a"));
        assert!(valid_name("my-snap_1.2"));
        assert!(valid_name(&"x".repeat(64)));
        assert!(!valid_name(&"x".repeat(65)));
        assert!(!valid_name(""));
        assert!(!valid_name("-lead"));
        assert!(!valid_name(".hidden"));
        assert!(!valid_name("sp ace"));
        assert!(!valid_name("slash/y"));
        let d = default_name();
        assert!(valid_name(&d) && d.len() == "template-".len() + 8, "{d}");
    }
}
