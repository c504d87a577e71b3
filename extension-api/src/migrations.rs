//! [`Migration`]: schema changes an extension ships with itself.
//!
//! Core applies them at start-up, after its own migrations and before any route or worker of
//! the extension runs:
//! - each extension gets its own PostgreSQL schema, `ext_<name>` (the extension's name with
//!   every character outside `[a-z0-9_]` replaced by `_`); a migration runs with its
//!   `search_path` set to that schema first, so unqualified `CREATE TABLE`s land there, while
//!   core's tables stay readable (and must only be read through the facades);
//! - migrations run in ascending `version`, each in its own transaction, once: applied ones
//!   are recorded in `extension_migrations` with a checksum of their SQL, and a recorded
//!   migration whose SQL changed stops the server (ship a new version instead);
//! - extensions are migrated in the order they are applied (builder order, then `inventory`
//!   by name), under a database-wide advisory lock so two control planes starting at once do
//!   not race.
//!
//! At run time, name the tables with their schema (`ext_quotas.team_quotas`), or use
//! [`schema_of`] to build it.

/// One schema change.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Migration {
    /// Orders the migrations of one extension; unique within it (e.g. `20261202000000`).
    pub version: i64,
    pub description: &'static str,
    /// One or more SQL statements.
    pub sql: &'static str,
}

impl Migration {
    pub const fn new(version: i64, description: &'static str, sql: &'static str) -> Self {
        Self {
            version,
            description,
            sql,
        }
    }
}

/// The schema that holds the tables of extension `name`.
pub fn schema_of(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect();
    format!("ext_{cleaned}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn schema_names_are_safe_identifiers() {
        assert_eq!(super::schema_of("quotas"), "ext_quotas");
        assert_eq!(super::schema_of("Cloud-Billing v2"), "ext_cloud_billing_v2");
        assert_eq!(super::schema_of("x\"; DROP"), "ext_x___drop");
    }
}
