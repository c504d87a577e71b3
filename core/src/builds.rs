//! Template builds: a recipe ([`recipe`]) run step by step in a capsule of its `FROM`
//! template, whose result becomes a template of the team (or of the platform, for admins).
//!
//! - [`submit`] checks the request, reuses an identical earlier build unless asked to
//!   rebuild, stores the build with its files and queues its id in Redis ([`queue`]).
//! - Workers ([`queue::workers`], `WRENN_BUILD_WORKERS` per control plane) take ids off the
//!   queue, claim the build in PostgreSQL and run it ([`runner`]): each step's output goes to
//!   `template_build_logs` as it comes. A recipe that `START`s a process becomes a snapshot
//!   template (memory kept); any other a flattened rootfs (a base template). The capsule is
//!   destroyed at the end whatever happened; a failed or cancelled build leaves no template.
//! - [`cancel`] cancels a queued build at once and flags a running one, whose worker notices
//!   on its next heartbeat, stops the step in flight and cleans up.
//! - A sweep re-queues builds whose queue entry was lost (Redis restarted) and fails builds
//!   whose worker stopped heartbeating (a control plane killed mid-build), cleaning up after
//!   them.

pub mod model;
pub mod queue;
pub mod recipe;
pub mod runner;

use crate::app::App;
use crate::db::builds::{self as db, BuildRow, NewBuild};
use base64::Engine;
use clap::Args;
use model::{Build, StepState};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use uuid::Uuid;
use wrenn_extension_api::{ApiError, ApiKeyPrincipal, Principal, Role, SessionPrincipal};

/// Settings of template builds, part of the clap [`Config`](crate::Config) tree.
#[derive(Debug, Clone, Args)]
pub struct BuildSettings {
    /// Builds one control plane runs at once (0: this control plane runs none).
    #[arg(
        long = "build-workers",
        env = "WRENN_BUILD_WORKERS",
        default_value_t = 2
    )]
    pub workers: usize,
    /// Longest a single RUN (or WORKDIR, USER, COPY) step may take, in seconds.
    #[arg(long = "build-step-timeout-secs", env = "WRENN_BUILD_STEP_TIMEOUT_SECS", default_value_t = 1800,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub step_timeout_secs: u32,
    /// Most log bytes kept per build; output beyond it is dropped (the build goes on).
    #[arg(long = "build-log-max-bytes", env = "WRENN_BUILD_LOG_MAX_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub log_max_bytes: i64,
    /// Largest total size of the files uploaded with one build, in bytes.
    #[arg(long = "build-max-files-bytes", env = "WRENN_BUILD_MAX_FILES_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_files_bytes: usize,
    /// Seconds without a heartbeat after which a running build's worker is taken for dead.
    #[arg(long = "build-stale-after-secs", env = "WRENN_BUILD_STALE_AFTER_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(5..))]
    pub stale_after_secs: u64,
}

impl Default for BuildSettings {
    fn default() -> Self {
        Self {
            workers: 2,
            step_timeout_secs: 1800,
            log_max_bytes: 8 * 1024 * 1024,
            max_files_bytes: 64 * 1024 * 1024,
            stale_after_secs: 60,
        }
    }
}

/// A file uploaded with a build.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
pub struct BuildFile {
    /// The name `COPY` uses: a relative path without `..`.
    pub path: String,
    /// The content, base64 (standard alphabet, padded).
    pub content_base64: String,
}

/// What [`submit`] needs.
#[derive(Debug, Clone)]
pub struct Submission {
    pub name: String,
    pub recipe: String,
    pub files: Vec<BuildFile>,
    pub rebuild: bool,
    pub platform: bool,
    pub vcpus: Option<u32>,
    pub memory_mb: Option<u32>,
}

/// Checks and queues a build. Answers the build and whether it is an earlier identical one
/// whose template is reused.
pub async fn submit(
    ctx: &App,
    principal: &Principal,
    sub: Submission,
) -> Result<(Build, bool), ApiError> {
    require_builder(ctx, principal, sub.platform).await?;
    if !crate::capsules::templates::valid_name(&sub.name) {
        return Err(ApiError::invalid(
            "name must match ^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$",
        ));
    }
    let recipe = recipe::parse(&sub.recipe)
        .map_err(|e| ApiError::bad_request("invalid_recipe", e.to_string()))?;
    // Files: decoded, unique, within the size bound, and every COPY source present.
    let mut files = BTreeMap::new();
    let mut total = 0usize;
    for f in &sub.files {
        if !recipe::valid_source(&f.path) {
            return Err(ApiError::invalid(format!(
                "file path '{}' must be a relative path without '..'",
                f.path
            )));
        }
        let content = base64::engine::general_purpose::STANDARD
            .decode(f.content_base64.as_bytes())
            .map_err(|_| ApiError::invalid(format!("file '{}' is not valid base64", f.path)))?;
        total += content.len();
        if total > ctx.config.builds.max_files_bytes {
            return Err(ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "the build's files are larger than {} bytes",
                    ctx.config.builds.max_files_bytes
                ),
            ));
        }
        if files.insert(f.path.clone(), content).is_some() {
            return Err(ApiError::invalid(format!(
                "file '{}' is given twice",
                f.path
            )));
        }
    }
    for step in &recipe.steps {
        if let recipe::Op::Copy { src, .. } = &step.op {
            if !files.contains_key(src) {
                return Err(ApiError::bad_request(
                    "invalid_recipe",
                    format!(
                        "line {}: COPY names '{src}', which is not among the uploaded files",
                        step.line
                    ),
                ));
            }
        }
    }
    let team_id = principal.team_id();
    let template_team_id = if sub.platform {
        wrenn_extension_api::ids::PLATFORM_TEAM
    } else {
        team_id
    };

    // The FROM template must exist for the one who builds (platform builds: the platform's).
    let from = crate::db::templates::find_visible(ctx.db(), template_team_id, &recipe.from)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "template_not_found",
                format!(
                    "line {}: template '{}' not found",
                    recipe.from_line, recipe.from
                ),
            )
        })?;
    let (vcpus, memory_mb) = if from.is_snapshot() {
        (from.vcpus as u32, from.memory_mb as u32)
    } else {
        (
            sub.vcpus.unwrap_or(from.vcpus.max(1) as u32),
            sub.memory_mb.unwrap_or(from.memory_mb.max(512) as u32),
        )
    };
    if vcpus == 0 || vcpus > crate::capsules::lifecycle::MAX_VCPUS {
        return Err(ApiError::invalid("vcpus is out of range"));
    }
    if !(crate::capsules::lifecycle::MIN_MEMORY_MB..=crate::capsules::lifecycle::MAX_MEMORY_MB)
        .contains(&memory_mb)
    {
        return Err(ApiError::invalid("memory_mb is out of range"));
    }

    // The name: free, or a template an earlier build made (which this one replaces).
    if let Some(existing) =
        crate::db::templates::find_owned(ctx.db(), template_team_id, &sub.name).await?
    {
        if existing.metadata.get("build_id").is_none() {
            return Err(ApiError::conflict(
                "template_name_taken",
                format!(
                    "a template named '{}' exists and was not made by a build",
                    sub.name
                ),
            ));
        }
    }
    if !sub.platform && crate::db::templates::is_platform_name(ctx.db(), &sub.name).await? {
        return Err(ApiError::conflict(
            "name_reserved",
            "a platform template has this name",
        ));
    }

    let hash = recipe_hash(&sub.recipe, &files, vcpus, memory_mb);
    if !sub.rebuild {
        if let Some(earlier) = db::reusable(ctx.db(), template_team_id, &sub.name, &hash).await? {
            return Ok((Build::from_row(&earlier, true), true));
        }
    }

    let mut steps = vec![StepState::new(
        0,
        recipe.from_line,
        "FROM",
        recipe.from.clone(),
    )];
    for s in &recipe.steps {
        steps.push(StepState::new(
            steps.len(),
            s.line,
            s.op.keyword(),
            step_args(&s.op),
        ));
    }
    if let Some(hc) = &recipe.healthcheck {
        steps.push(StepState::new(
            steps.len(),
            hc.line,
            "HEALTHCHECK",
            hc.command.clone(),
        ));
    }
    steps.push(StepState::new(steps.len(), 0, "SAVE", sub.name.clone()));

    let (created_by_user, created_by_key) = match principal {
        Principal::Session(s) => (Some(s.user_id), None),
        Principal::ApiKey(k) => (k.created_by, Some(k.key_id)),
    };
    let files: Vec<(String, Vec<u8>)> = files.into_iter().collect();
    let row = db::insert(
        ctx.db(),
        &NewBuild {
            id: Uuid::new_v4(),
            team_id,
            template_team_id,
            name: sub.name.clone(),
            recipe: sub.recipe.clone(),
            recipe_hash: hash,
            from_template: recipe.from.clone(),
            vcpus: vcpus as i32,
            memory_mb: memory_mb as i32,
            steps,
            created_by_user,
            created_by_key,
        },
        &files,
    )
    .await
    .map_err(|e| {
        ApiError::conflict_on_unique(
            e,
            "build_in_progress",
            "a build of this template name is already queued or running",
        )
    })?;
    queue::enqueue(ctx, row.id).await;
    tracing::info!(build_id = %row.id, team_id = %team_id, name = %row.name, "Build queued.");
    Ok((Build::from_row(&row, false), false))
}

/// Team builds need the team's owner or admin (for an API key: the user who made it);
/// platform builds a platform admin's session.
async fn require_builder(ctx: &App, principal: &Principal, platform: bool) -> Result<(), ApiError> {
    if platform {
        let admin = match principal {
            Principal::Session(s) => ctx.sessions().is_platform_admin(s.user_id).await?,
            Principal::ApiKey(_) => false,
        };
        return if admin {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "admin_required",
                "platform templates are built by platform administrators (session)",
            ))
        };
    }
    let role = match principal {
        Principal::Session(s) => s.role,
        Principal::ApiKey(k) => match k.created_by {
            Some(user) => crate::db::teams::role_of(ctx.db(), k.team_id, user).await?,
            None => None,
        },
    };
    if role.is_some_and(|r| r.can_manage()) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "forbidden",
            "building templates needs the team's owner or admin role",
        ))
    }
}

/// The caller a build acts as once it runs (its capsule's creator in the audit log).
pub(crate) fn principal_of(row: &BuildRow) -> Principal {
    match row.created_by_key {
        Some(key) => Principal::ApiKey(ApiKeyPrincipal::new(key, row.team_id, row.created_by_user)),
        None => Principal::Session(SessionPrincipal::new(
            Uuid::nil(),
            row.created_by_user.unwrap_or_default(),
            row.team_id,
            Some(Role::Admin),
            String::new(),
            chrono::Utc::now() + chrono::Duration::hours(24),
        )),
    }
}

/// SHA-256 over everything that decides the result.
fn recipe_hash(
    recipe: &str,
    files: &BTreeMap<String, Vec<u8>>,
    vcpus: u32,
    memory_mb: u32,
) -> String {
    let mut h = Sha256::new();
    h.update(b"wrenn-build-v1\0");
    h.update(format!("{vcpus}:{memory_mb}\0").as_bytes());
    h.update((recipe.len() as u64).to_le_bytes());
    h.update(recipe.as_bytes());
    for (path, content) in files {
        h.update((path.len() as u64).to_le_bytes());
        h.update(path.as_bytes());
        h.update(Sha256::digest(content));
    }
    hex::encode(h.finalize())
}

fn step_args(op: &recipe::Op) -> String {
    use recipe::Op;
    match op {
        Op::Run(c) | Op::Start(c) => c.clone(),
        Op::Env(pairs) => pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        Op::Workdir(d) => d.clone(),
        Op::User(u) => u.clone(),
        Op::Copy { src, dest } => format!("{src} {dest}"),
    }
}

/// Cancels a build: at once when queued, through its worker when running. 409
/// `invalid_state` when it has already ended.
pub async fn cancel(ctx: &App, row: &BuildRow) -> Result<BuildRow, ApiError> {
    match db::request_cancel(ctx.db(), row.id).await? {
        None => Err(ApiError::conflict(
            "invalid_state",
            format!("the build has already {}", row.status.as_str()),
        )),
        Some(_) => Ok(db::get(ctx.db(), row.id)
            .await?
            .unwrap_or_else(|| row.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_recipe_files_and_resources() {
        let mut files = BTreeMap::new();
        files.insert("a".to_string(), b"1".to_vec());
        let base = recipe_hash("FROM x\n", &files, 1, 512);
        assert_eq!(base, recipe_hash("FROM x\n", &files.clone(), 1, 512));
        assert_ne!(base, recipe_hash("FROM y\n", &files, 1, 512));
        assert_ne!(base, recipe_hash("FROM x\n", &files, 2, 512));
        assert_ne!(base, recipe_hash("FROM x\n", &files, 1, 1024));
        let mut other = files.clone();
        other.insert("a".to_string(), b"2".to_vec());
        assert_ne!(base, recipe_hash("FROM x\n", &other, 1, 512));
        let mut renamed = BTreeMap::new();
        renamed.insert("b".to_string(), b"1".to_vec());
        assert_ne!(base, recipe_hash("FROM x\n", &renamed, 1, 512));
    }
}
