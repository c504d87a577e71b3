//! The wire and stored shapes of a build: its status, its steps, the Build object.

use crate::db::builds::{BuildRow, LogRow};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wrenn_extension_api::ids;

/// Where a build is. `queued` → `running` → one of the three final states; a queued build
/// can also be cancelled directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl BuildStatus {
    pub const ALL: [BuildStatus; 5] = [
        BuildStatus::Queued,
        BuildStatus::Running,
        BuildStatus::Succeeded,
        BuildStatus::Failed,
        BuildStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Queued => "queued",
            BuildStatus::Running => "running",
            BuildStatus::Succeeded => "succeeded",
            BuildStatus::Failed => "failed",
            BuildStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Nothing more will happen to the build.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            BuildStatus::Succeeded | BuildStatus::Failed | BuildStatus::Cancelled
        )
    }
}

crate::sql_text_enum!(BuildStatus);

/// Where one step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// One step of a build as stored and shown: the recipe's instructions in order (`FROM`
/// first, `HEALTHCHECK` last), then `SAVE`, which writes the template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StepState {
    pub index: u32,
    /// The recipe line (1-based); 0 for `SAVE`.
    pub line: u32,
    pub instruction: String,
    pub args: String,
    pub status: StepStatus,
    /// Exit code of a `RUN` or of the healthcheck's last try.
    pub exit_code: Option<i32>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl StepState {
    pub fn new(index: usize, line: usize, instruction: &str, args: String) -> Self {
        Self {
            index: index as u32,
            line: line as u32,
            instruction: instruction.into(),
            args,
            status: StepStatus::Pending,
            exit_code: None,
            started_at: None,
            finished_at: None,
        }
    }
}

/// A template build.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Build {
    /// `bld_…`
    pub id: String,
    /// The team that asked for it (`tm_…`).
    pub team_id: String,
    /// The template's name.
    pub name: String,
    /// `team` (the template belongs to the team) or `platform` (visible to every team).
    pub scope: String,
    pub status: BuildStatus,
    /// True when this answer is an earlier identical build whose template was reused.
    pub reused: bool,
    /// SHA-256 (hex) over the recipe, its files and the resources.
    pub recipe_hash: String,
    pub recipe: String,
    /// The template named by `FROM`.
    pub from: String,
    pub vcpus: i32,
    pub memory_mb: i32,
    /// The template made (`tpl_…`), once the build has succeeded.
    pub template_id: Option<String>,
    /// `snapshot` (the recipe STARTs a process: memory kept) or `base` (a flattened rootfs).
    pub template_type: Option<String>,
    /// The capsule running the build (`sb_…`); destroyed once the build ends.
    pub capsule_id: Option<String>,
    pub steps: Vec<StepState>,
    /// Why the build failed or was cancelled; empty otherwise.
    pub error: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Build {
    pub fn from_row(row: &BuildRow, reused: bool) -> Self {
        Self {
            id: ids::encode(ids::BUILD, row.id),
            team_id: ids::encode(ids::TEAM, row.team_id),
            name: row.name.clone(),
            scope: if row.template_team_id.is_nil() {
                "platform".into()
            } else {
                "team".into()
            },
            status: row.status,
            reused,
            recipe_hash: row.recipe_hash.clone(),
            recipe: row.recipe.clone(),
            from: row.from_template.clone(),
            vcpus: row.vcpus,
            memory_mb: row.memory_mb,
            template_id: row
                .template_id
                .filter(|_| row.status == BuildStatus::Succeeded)
                .map(|t| ids::encode(ids::TEMPLATE, t)),
            template_type: row.template_type.clone(),
            capsule_id: row.capsule_id.map(|c| ids::encode(ids::CAPSULE, c)),
            steps: row.steps.0.clone(),
            error: row.error.clone(),
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
        }
    }
}

/// One log entry of a build.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogEntry {
    /// Increases through the build's log; pass the last one seen as `after`.
    pub seq: i64,
    /// The step's index; `null` for messages about the build as a whole.
    pub step: Option<i32>,
    /// `stdout`, `stderr` or `system` (the build's own messages).
    pub stream: String,
    pub data: String,
    pub time: DateTime<Utc>,
}

impl From<&LogRow> for LogEntry {
    fn from(r: &LogRow) -> Self {
        Self {
            seq: r.seq,
            step: r.step,
            stream: r.stream.clone(),
            data: r.data.clone(),
            time: r.created_at,
        }
    }
}
