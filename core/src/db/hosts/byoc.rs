//! Teams allowed to bring their own hosts.

use sqlx::PgExecutor;
use uuid::Uuid;

pub async fn is_byoc_team<'e, E: PgExecutor<'e>>(executor: E, team_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM byoc_teams WHERE team_id = $1) AS "byoc!""#,
        team_id,
    )
    .fetch_one(executor)
    .await
}

/// Makes a team BYOC: `byoc_teams` (what the scheduler reads) and `teams.is_byoc` (what the
/// team views show), in one statement.
pub async fn mark_byoc_team<'e, E: PgExecutor<'e>>(executor: E, team_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "WITH marked AS (INSERT INTO byoc_teams (team_id) VALUES ($1) ON CONFLICT DO NOTHING) \
         UPDATE teams SET is_byoc = TRUE WHERE id = $1",
        team_id,
    )
    .execute(executor)
    .await?;
    Ok(())
}
