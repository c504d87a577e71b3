//! Applying the migrations extensions ship ([`wrenn_extension_api::migrations`] documents
//! the contract: own schema, ascending versions, once each, checksums, one lock).

use crate::db::extensions as db;
use crate::server::StartError;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use wrenn_extension_api::migrations::schema_of;
use wrenn_extension_api::Extension;

fn failed(extension: &str, version: i64, what: impl std::fmt::Display) -> StartError {
    StartError::Extension(format!(
        "migration {version} of extension {extension:?}: {what}"
    ))
}

/// Applies every pending migration of `extensions`, in their order.
pub async fn migrate(pool: &PgPool, extensions: &[Box<dyn Extension>]) -> Result<(), StartError> {
    let wanted: Vec<_> = extensions
        .iter()
        .map(|e| (e.name().to_string(), e.migrations()))
        .filter(|(_, m)| !m.is_empty())
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let mut lock = pool.acquire().await.map_err(StartError::Database)?;
    db::migration_lock(&mut lock, true)
        .await
        .map_err(StartError::Database)?;
    let result = apply(pool, &wanted).await;
    let _ = db::migration_lock(&mut lock, false).await;
    result
}

async fn apply(
    pool: &PgPool,
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
            let applied = db::applied_checksum(pool, extension, m.version)
                .await
                .map_err(StartError::Database)?;
            match applied {
                Some(sum) if sum == checksum => continue,
                Some(_) => return Err(failed(
                    extension,
                    m.version,
                    "it was applied with different SQL; ship a new version instead of editing one",
                )),
                None => {}
            }
            let mut tx = pool.begin().await.map_err(StartError::Database)?;
            db::apply_migration(&mut tx, &schema, extension, m, &checksum)
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
