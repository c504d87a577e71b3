// Generated from core/src/capsules/state.rs (CapsuleStatus); do not edit. Regenerate with
// `WRENN_REGENERATE=1 cargo test -p wrenn-core --lib dashboard_statuses`.

/** Every capsule status, in the order of the state machine. */
export const CAPSULE_STATUSES = ["pending", "starting", "running", "pausing", "paused", "resuming", "snapshotting", "stopping", "stopped", "missing", "error"] as const;
export type CapsuleStatus = (typeof CAPSULE_STATUSES)[number];

/** Statuses a capsule waits in or passes through before it settles: keep watching. */
export const UNSETTLED: ReadonlySet<string> = new Set(["pending", "starting", "pausing", "resuming", "snapshotting", "stopping"]);
