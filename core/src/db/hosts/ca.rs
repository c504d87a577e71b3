//! The internal CA's stored certificate and sealed key.

use sqlx::PgExecutor;

/// Stores the internal CA (certificate and sealed key) unless one exists already.
pub async fn store_ca<'e, E: PgExecutor<'e>>(
    executor: E,
    cert_pem: &str,
    sealed_key: &[u8],
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO internal_ca (id, cert_pem, key_ciphertext) VALUES (1, $1, $2)
         ON CONFLICT (id) DO NOTHING",
        cert_pem,
        sealed_key,
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// The stored internal CA: certificate PEM and sealed key.
pub async fn load_ca<'e, E: PgExecutor<'e>>(
    executor: E,
) -> sqlx::Result<Option<(String, Vec<u8>)>> {
    let row = sqlx::query!("SELECT cert_pem, key_ciphertext FROM internal_ca WHERE id = 1")
        .fetch_optional(executor)
        .await?;
    Ok(row.map(|r| (r.cert_pem, r.key_ciphertext)))
}
