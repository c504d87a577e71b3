//! Applying the migrations extensions ship ([`wrenn_extension_api::migrations`] documents
//! the contract: own schema, ascending versions, once each, checksums, one lock).

use crate::server::StartError;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use wrenn_extension_api::migrations::schema_of;
use wrenn_extension_api::Extension;

/// Advisory lock key held while any control plane applies extension migrations.
const LOCK_KEY: i64 = 0x7772_656e_6e5f_6578; // "wrenn_ex"

fn failed(extension: &str, version: i64, what: impl std::fmt::Display) -> StartError {
    StartError::Extension(format!(
        "migration {version} of extension {extension:?}: {what}"
    ))
}

/// Applies every pending migration of `extensions`, in their order.
pub async fn migrate(db: &PgPool, extensions: &[Box<dyn Extension>]) -> Result<(), StartError> {
    let wanted: Vec<_> = extensions
        .iter()
        .map(|e| (e.name().to_string(), e.migrations()))
        .filter(|(_, m)| !m.is_empty())
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let mut lock = db.acquire().await.map_err(StartError::Database)?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *lock)
        .await
        .map_err(StartError::Database)?;
    let result = apply(db, &wanted).await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *lock)
        .await;
    result
}

async fn apply(
    db: &PgPool,
    wanted: &[(String, Vec<wrenn_extension_api::Migration>)],
) -> Result<(), StartError> {
    for (extension, migrations) in wanted {
        let mut migrations = migrations.clone();
        migrations.sort_by_key(|m| m.version);
        if let Some(w) = migrations.windows(2).find(|w| w[0].version == w[1].version) {
            return Err(failed(extension, w[0].version, "the version is used twice"));
        }
        let schema = schema_of(extension);
        for m in &migrations {
            let checksum = Sha256::digest(m.sql.as_bytes()).to_vec();
            let applied: Option<(Vec<u8>,)> = sqlx::query_as(
                "SELECT checksum FROM extension_migrations WHERE extension = $1 AND version = $2",
            )
            .bind(extension)
            .bind(m.version)
            .fetch_optional(db)
            .await
            .map_err(StartError::Database)?;
            match applied {
                Some((sum,)) if sum == checksum => continue,
                Some(_) => return Err(failed(
                    extension,
                    m.version,
                    "it was applied with different SQL; ship a new version instead of editing one",
                )),
                None => {}
            }
            let mut tx = db.begin().await.map_err(StartError::Database)?;
            // The schema name is derived from the extension name and only holds [a-z0-9_].
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .execute(&mut *tx)
                .await
                .map_err(|e| failed(extension, m.version, e))?;
            sqlx::query(&format!("SET LOCAL search_path TO {schema}, public"))
                .execute(&mut *tx)
                .await
                .map_err(|e| failed(extension, m.version, e))?;
            sqlx::raw_sql(m.sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| failed(extension, m.version, e))?;
            sqlx::query(
                "INSERT INTO public.extension_migrations (extension, version, description, checksum) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(extension)
            .bind(m.version)
            .bind(m.description)
            .bind(&checksum)
            .execute(&mut *tx)
            .await
            .map_err(|e| failed(extension, m.version, e))?;
            tx.commit()
                .await
                .map_err(|e| failed(extension, m.version, e))?;
            tracing::info!(extension = %extension, version = m.version, description = m.description, "Applied an extension migration.");
        }
    }
    Ok(())
}
