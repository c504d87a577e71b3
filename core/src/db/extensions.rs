//! The `extension_migrations` ledger and applying one extension migration.

use sqlx::{PgConnection, PgExecutor};

/// Key of the advisory lock held while extension migrations are applied.
const LOCK_KEY: i64 = 0x7772_656e_6e5f_6578; // "wrenn_ex"

/// Takes (`true`) or releases (`false`) the database-wide extension-migration lock on `conn`.
pub async fn migration_lock(conn: &mut PgConnection, take: bool) -> sqlx::Result<()> {
    let sql = if take {
        "SELECT pg_advisory_lock($1)"
    } else {
        "SELECT pg_advisory_unlock($1)"
    };
    sqlx::query(sql).bind(LOCK_KEY).execute(conn).await?;
    Ok(())
}

/// The checksum an applied migration was recorded with.
pub async fn applied_checksum(
    db: impl PgExecutor<'_>,
    extension: &str,
    version: i64,
) -> sqlx::Result<Option<Vec<u8>>> {
    sqlx::query_scalar!(
        "SELECT checksum FROM extension_migrations WHERE extension = $1 AND version = $2",
        extension,
        version,
    )
    .fetch_optional(db)
    .await
}

/// Runs `sql` in `tx` with the `search_path` set to `schema` (created if missing) and records
/// it. `schema` must be a safe identifier (`migrations::schema_of` makes one).
pub async fn apply_migration(
    tx: &mut PgConnection,
    schema: &str,
    extension: &str,
    migration: &wrenn_extension_api::Migration,
    checksum: &[u8],
) -> sqlx::Result<()> {
    debug_assert!(schema
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("SET LOCAL search_path TO {schema}, public"))
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(migration.sql).execute(&mut *tx).await?;
    sqlx::query!(
        "INSERT INTO public.extension_migrations (extension, version, description, checksum) \
         VALUES ($1, $2, $3, $4)",
        extension,
        migration.version,
        migration.description,
        checksum,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}
