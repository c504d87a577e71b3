//! Teams allowed to bring their own hosts.

use sqlx::PgExecutor;
use uuid::Uuid;

pub async fn is_byoc_team<'e, E: PgExecutor<'e>>(executor: E, team_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM byoc_teams WHERE team_id = $1)")
        .bind(team_id)
        .fetch_one(executor)
        .await
}

pub async fn mark_byoc_team<'e, E: PgExecutor<'e>>(executor: E, team_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO byoc_teams (team_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(team_id)
        .execute(executor)
        .await?;
    Ok(())
}
