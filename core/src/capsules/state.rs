//! The capsule state machine: states, and which states each operation may start from.
//!
//! Every change of state is a guarded update (`UPDATE ... WHERE status = ANY(from)`), so two
//! concurrent requests (or a request and the reconciler) cannot both win: the loser sees that
//! the row no longer is in an allowed state and answers 409 `invalid_state`. Each operation
//! moves into a transitional state first (`starting`, `pausing`, ...) and then into its final
//! state, or reverts / lands in `error` with a reason, so nothing stays transitional.

use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// Where a capsule is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CapsuleStatus {
    Pending,
    Starting,
    Running,
    Pausing,
    Paused,
    Resuming,
    Snapshotting,
    Stopping,
    /// Terminal.
    Stopped,
    /// The capsule's host is unreachable.
    Missing,
    Error,
}

impl CapsuleStatus {
    pub const ALL: [CapsuleStatus; 11] = [
        CapsuleStatus::Pending,
        CapsuleStatus::Starting,
        CapsuleStatus::Running,
        CapsuleStatus::Pausing,
        CapsuleStatus::Paused,
        CapsuleStatus::Resuming,
        CapsuleStatus::Snapshotting,
        CapsuleStatus::Stopping,
        CapsuleStatus::Stopped,
        CapsuleStatus::Missing,
        CapsuleStatus::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CapsuleStatus::Pending => "pending",
            CapsuleStatus::Starting => "starting",
            CapsuleStatus::Running => "running",
            CapsuleStatus::Pausing => "pausing",
            CapsuleStatus::Paused => "paused",
            CapsuleStatus::Resuming => "resuming",
            CapsuleStatus::Snapshotting => "snapshotting",
            CapsuleStatus::Stopping => "stopping",
            CapsuleStatus::Stopped => "stopped",
            CapsuleStatus::Missing => "missing",
            CapsuleStatus::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// States from which nothing more happens on the host.
    pub fn is_terminal(self) -> bool {
        matches!(self, CapsuleStatus::Stopped)
    }

    /// States that hold resources on a host (counted against limits and in stats).
    pub fn holds_resources(self) -> bool {
        !matches!(self, CapsuleStatus::Stopped | CapsuleStatus::Error)
    }

    /// States of a capsule that occupies its host right now (all but paused, stopped, error
    /// and missing): what the scheduler counts in full.
    pub fn occupies_host(self) -> bool {
        use CapsuleStatus::*;
        matches!(
            self,
            Pending | Starting | Running | Pausing | Resuming | Snapshotting | Stopping
        )
    }

    /// States of a capsule that still exists on its host (occupying it, or paused): what
    /// blocks host deletion and becomes `missing` when the host goes silent.
    pub fn on_host(self) -> bool {
        self.occupies_host() || self == CapsuleStatus::Paused
    }

    /// States an operation passes through; no capsule may be left in one.
    pub fn is_transitional(self) -> bool {
        use CapsuleStatus::*;
        matches!(
            self,
            Starting | Pausing | Resuming | Snapshotting | Stopping
        )
    }

    /// A status the capsule waits in or passes through before it settles (pending, or a
    /// transitional one): clients keep watching it.
    pub fn is_unsettled(self) -> bool {
        self == CapsuleStatus::Pending || self.is_transitional()
    }

    /// Every status for which `test` holds, in declaration order: the one way status sets
    /// are made (for SQL `status = ANY($n)` binds and the API's documentation).
    pub fn all_where(test: fn(CapsuleStatus) -> bool) -> Vec<CapsuleStatus> {
        Self::ALL.into_iter().filter(|s| test(*s)).collect()
    }
}

crate::sql_text_enum!(CapsuleStatus);

/// The dashboard's copy of the statuses, `web/src/generated/statuses.ts`, generated from this
/// enum (a unit test checks the committed file; `WRENN_REGENERATE=1` rewrites it).
pub fn dashboard_module() -> String {
    let list = |set: Vec<CapsuleStatus>| {
        set.iter()
            .map(|s| format!("\"{}\"", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "// Generated from core/src/capsules/state.rs (CapsuleStatus); do not edit. Regenerate with\n\
         // `WRENN_REGENERATE=1 cargo test -p wrenn-core --lib dashboard_statuses`.\n\n\
         /** Every capsule status, in the order of the state machine. */\n\
         export const CAPSULE_STATUSES = [{}] as const;\n\
         export type CapsuleStatus = (typeof CAPSULE_STATUSES)[number];\n\n\
         /** Statuses a capsule waits in or passes through before it settles: keep watching. */\n\
         export const UNSETTLED: ReadonlySet<string> = new Set([{}]);\n",
        list(CapsuleStatus::ALL.to_vec()),
        list(CapsuleStatus::all_where(CapsuleStatus::is_unsettled)),
    )
}

impl fmt::Display for CapsuleStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state extensions see ([`wrenn_extension_api::CapsuleState`]): the one conversion, an
/// exhaustive match, so a status added here does not compile until it is mapped there.
impl From<CapsuleStatus> for wrenn_extension_api::CapsuleState {
    fn from(status: CapsuleStatus) -> Self {
        use wrenn_extension_api::CapsuleState as S;
        match status {
            CapsuleStatus::Pending => S::Pending,
            CapsuleStatus::Starting => S::Starting,
            CapsuleStatus::Running => S::Running,
            CapsuleStatus::Pausing => S::Pausing,
            CapsuleStatus::Paused => S::Paused,
            CapsuleStatus::Resuming => S::Resuming,
            CapsuleStatus::Snapshotting => S::Snapshotting,
            CapsuleStatus::Stopping => S::Stopping,
            CapsuleStatus::Stopped => S::Stopped,
            CapsuleStatus::Missing => S::Missing,
            CapsuleStatus::Error => S::Error,
        }
    }
}

/// A guarded transition: from any of `from`, through `via` (transitional), to `to` on success.
#[derive(Debug, Clone, Copy)]
pub struct Transition {
    pub from: &'static [CapsuleStatus],
    pub via: CapsuleStatus,
    pub to: CapsuleStatus,
}

use CapsuleStatus::*;

/// `POST /v1/capsules`: a new row starts `pending`, becomes `starting` once placed.
pub const CREATE: Transition = Transition {
    from: &[Pending],
    via: Starting,
    to: Running,
};

/// `POST /pause`.
pub const PAUSE: Transition = Transition {
    from: &[Running],
    via: Pausing,
    to: Paused,
};

/// `POST /resume`.
pub const RESUME: Transition = Transition {
    from: &[Paused],
    via: Resuming,
    to: Running,
};

/// `POST /v1/snapshots`: the capsule stays paused afterwards.
pub const SNAPSHOT: Transition = Transition {
    from: &[Running, Paused],
    via: Snapshotting,
    to: Paused,
};

/// `DELETE /v1/capsules/{id}`: from any settled state (transitional states belong to the
/// request that is running them; `missing` and `error` capsules can always be cleaned up).
pub const DESTROY: Transition = Transition {
    from: &[Pending, Running, Paused, Missing, Error],
    via: Stopping,
    to: Stopped,
};

/// States in which processes, files and the port proxy work.
pub const USABLE: &[CapsuleStatus] = &[Running];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for st in CapsuleStatus::ALL {
            assert_eq!(CapsuleStatus::parse(st.as_str()), Some(st));
            let json = serde_json::to_string(&st).unwrap();
            assert_eq!(json, format!("\"{}\"", st.as_str()));
        }
        assert_eq!(CapsuleStatus::parse("bogus"), None);
    }

    #[test]
    fn every_status_maps_to_the_extension_state_of_the_same_name() {
        use wrenn_extension_api::CapsuleState;
        let mapped: Vec<CapsuleState> = CapsuleStatus::ALL.into_iter().map(Into::into).collect();
        for (status, state) in CapsuleStatus::ALL.into_iter().zip(&mapped) {
            assert_eq!(state.as_str(), status.as_str());
            assert_eq!(status.as_str().parse::<CapsuleState>(), Ok(*state));
            assert_eq!(CapsuleStatus::parse(state.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::to_value(status).unwrap()
            );
        }
        // One to one, in the same order: no extension state without a core status.
        assert_eq!(mapped, CapsuleState::ALL);
    }

    #[test]
    fn dashboard_statuses_match_the_enum() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../web/src/generated/statuses.ts");
        let want = dashboard_module();
        if std::env::var_os("WRENN_REGENERATE").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(have, want, "{} is stale: regenerate it", path.display());
    }

    #[test]
    fn status_sets_are_derived_from_one_enum() {
        let on_host = CapsuleStatus::all_where(CapsuleStatus::on_host);
        assert!(on_host.contains(&Paused) && !on_host.contains(&Missing));
        assert!(!on_host.contains(&Stopped) && !on_host.contains(&Error));
        for t in [CREATE, PAUSE, RESUME, SNAPSHOT, DESTROY] {
            assert!(t.via.is_transitional(), "{t:?}");
            assert!(!t.to.is_transitional(), "{t:?}");
            assert!(t.via.occupies_host(), "{t:?}");
        }
    }

    #[test]
    fn transitions_never_start_from_their_own_transitional_state() {
        for t in [CREATE, PAUSE, RESUME, SNAPSHOT, DESTROY] {
            assert!(!t.from.contains(&t.via), "{t:?}");
            assert!(!t.from.contains(&Stopped), "{t:?}");
        }
    }
}
