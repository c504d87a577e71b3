//! The `oauth_providers` aggregate: external identities linked to users.

use sqlx::PgExecutor;
use uuid::Uuid;

/// The user linked to `provider_user_id` at `provider`.
pub async fn user_for(
    e: impl PgExecutor<'_>,
    provider: &str,
    provider_user_id: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT user_id FROM oauth_providers WHERE provider = $1 AND provider_user_id = $2",
        provider,
        provider_user_id,
    )
    .fetch_optional(e)
    .await
}

pub async fn link(
    e: impl PgExecutor<'_>,
    user_id: Uuid,
    provider: &str,
    provider_user_id: &str,
    email: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO oauth_providers (user_id, provider, provider_user_id, email) \
         VALUES ($1, $2, $3, $4)",
        user_id,
        provider,
        provider_user_id,
        email,
    )
    .execute(e)
    .await
    .map(|_| ())
}

pub async fn unlink(e: impl PgExecutor<'_>, user_id: Uuid, provider: &str) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "DELETE FROM oauth_providers WHERE user_id = $1 AND provider = $2",
        user_id,
        provider,
    )
    .execute(e)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Provider names linked to a user, sorted.
pub async fn providers_of(e: impl PgExecutor<'_>, user_id: Uuid) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "SELECT provider FROM oauth_providers WHERE user_id = $1 ORDER BY provider",
        user_id,
    )
    .fetch_all(e)
    .await
}
