//! Wire shapes shared by several resources (ids encoded as `prefix_` + base36).

use crate::db;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use wrenn_extension_api::ids;

/// A message-only response.
#[derive(Serialize, ToSchema)]
pub struct Message {
    pub message: String,
}

/// The error envelope every failure uses.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// snake_case machine-readable code.
    pub code: String,
    /// Human-readable text (never internal detail).
    pub message: String,
}

/// A team as seen by one of its members.
#[derive(Serialize, ToSchema)]
pub struct TeamView {
    #[schema(example = "tm_0a1b2c3d4e5f6g7h8i9j0k1l2")]
    pub id: String,
    pub name: String,
    pub is_byoc: bool,
    /// Whether the port proxy resumes a paused capsule instead of answering 409.
    pub auto_resume: bool,
    pub created_at: DateTime<Utc>,
    /// The caller's role (owner, admin or member); absent for API keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl TeamView {
    pub fn new(team: &db::teams::Team, role: Option<&str>) -> Self {
        Self {
            id: ids::encode(ids::TEAM, team.id),
            name: team.name.clone(),
            is_byoc: team.is_byoc,
            auto_resume: team.auto_resume,
            created_at: team.created_at,
            role: role.map(str::to_string),
        }
    }

    pub fn with_role(t: &db::teams::TeamWithRole) -> Self {
        Self {
            id: ids::encode(ids::TEAM, t.id),
            name: t.name.clone(),
            is_byoc: t.is_byoc,
            auto_resume: t.auto_resume,
            created_at: t.created_at,
            role: Some(t.role.clone()),
        }
    }
}

/// A member of a team.
#[derive(Serialize, ToSchema)]
pub struct MemberView {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

impl From<&db::teams::Member> for MemberView {
    fn from(m: &db::teams::Member) -> Self {
        Self {
            id: ids::encode(ids::USER, m.user_id),
            name: m.name.clone(),
            email: m.email.clone(),
            role: m.role.clone(),
            joined_at: m.joined_at,
        }
    }
}

/// A user found by search.
#[derive(Serialize, ToSchema)]
pub struct UserSummary {
    pub id: String,
    pub name: String,
    pub email: String,
}

impl From<&db::users::User> for UserSummary {
    fn from(u: &db::users::User) -> Self {
        Self {
            id: ids::encode(ids::USER, u.id),
            name: u.name.clone(),
            email: u.email.clone(),
        }
    }
}
