//! Account lifecycle: provisioning a new account's default team (and the signup hooks),
//! activation mail, and the purge worker that hard-deletes accounts 15 days after deletion.

use crate::app::App;
use crate::db;
use crate::tokens::{self, TokenKind};
use chrono::{DateTime, Duration, Utc};
use sqlx::PgConnection;
use std::time::Duration as StdDuration;
use uuid::Uuid;
use wrenn_extension_api::{AccountDeletion, ApiError, BackgroundWorker, Email, NewAccount, Role};

/// Soft-deleted accounts are purged after this long.
pub const PURGE_AFTER: Duration = Duration::days(15);

/// Creates the default team "{name}'s Team" with the user as owner, then runs every
/// `AuthHook::on_signup` inside the caller's transaction. A hook error becomes 500
/// `signup_hook_failed`; the caller must then roll back.
pub async fn provision(
    ctx: &App,
    conn: &mut PgConnection,
    user_id: Uuid,
    email: &str,
    name: &str,
    via: &str,
) -> Result<Uuid, ApiError> {
    let team_id = Uuid::new_v4();
    db::teams::insert(&mut *conn, team_id, &format!("{name}'s Team")).await?;
    db::teams::add_member(&mut *conn, team_id, user_id, Role::Owner).await?;
    let account = NewAccount::new(
        user_id,
        team_id,
        email.to_string(),
        name.to_string(),
        via.to_string(),
    );
    for named in &ctx.hooks.auth {
        if let Err(e) = named.hook.on_signup(ctx, &mut *conn, &account).await {
            tracing::warn!(extension = %named.extension, error = %e, "Signup hook failed; signup aborted.");
            return Err(ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "signup_hook_failed",
                "account setup failed; please try again later",
            )
            .with_cause(format!("extension {}: {e}", named.extension)));
        }
    }
    Ok(team_id)
}

/// Runs every `on_login` hook; errors are logged, never returned.
pub async fn after_login(ctx: &App, user_id: Uuid) {
    for named in &ctx.hooks.auth {
        if let Err(e) = named.hook.on_login(ctx, user_id).await {
            tracing::warn!(extension = %named.extension, error = %e, "Login hook failed.");
        }
    }
}

/// Issues an activation token and mails the link.
pub async fn send_activation(
    ctx: &App,
    user_id: Uuid,
    email: &str,
    name: &str,
) -> Result<(), ApiError> {
    let token = tokens::issue(
        ctx,
        TokenKind::Activation,
        &user_id.to_string(),
        tokens::ACTIVATION_TTL,
    )
    .await?;
    let link = format!("{}/activate?token={token}", ctx.config().public_url);
    send(
        ctx,
        Email {
            to: email.to_string(),
            subject: "Activate your Wrenn account".into(),
            text: format!(
                "Hi {name},\n\nActivate your account within 30 minutes:\n{link}\n\n\
                 If you did not sign up, ignore this message."
            ),
        },
    )
    .await
}

/// Sends mail; a transport failure is a 503 `mail_unavailable`.
pub async fn send(ctx: &App, email: Email) -> Result<(), ApiError> {
    ctx.mailer().send(email).await.map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "mail_unavailable",
            "could not send mail; try again later",
        )
        .with_cause(e)
    })
}

/// Hard-deletes accounts soft-deleted before `now - 15 days`; runs `on_account_hard_delete`
/// for each. Returns how many were purged.
pub async fn purge_deleted(ctx: &App, now: DateTime<Utc>) -> Result<usize, ApiError> {
    let mut purged = 0;
    loop {
        let batch = db::users::purgeable(ctx.db(), now - PURGE_AFTER, 100).await?;
        if batch.is_empty() {
            return Ok(purged);
        }
        for user in batch {
            db::users::hard_delete(ctx.db(), user.id).await?;
            purged += 1;
            tracing::info!(user_id = %user.id, "Purged deleted account.");
            let deletion =
                AccountDeletion::new(user.id, user.email.clone(), user.deleted_at.unwrap_or(now));
            for named in &ctx.hooks.auth {
                if let Err(e) = named.hook.on_account_hard_delete(ctx, &deletion).await {
                    tracing::warn!(extension = %named.extension, error = %e, "Hard-delete hook failed.");
                }
            }
        }
    }
}

/// The purge worker: runs [`purge_deleted`] every `WRENN_PURGE_INTERVAL_SECS`.
pub fn purge_worker(ctx: &App, config: &crate::Config) -> BackgroundWorker {
    let ctx = ctx.clone();
    let every = StdDuration::from_secs(config.purge_interval_secs.max(1));
    BackgroundWorker::new("account-purge", move |token| async move {
        let mut interval = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = interval.tick() => {
                    if let Err(e) = purge_deleted(&ctx, Utc::now()).await {
                        tracing::warn!(error = %e, cause = e.cause().unwrap_or("-"), "Account purge failed.");
                    }
                }
            }
        }
    })
}
