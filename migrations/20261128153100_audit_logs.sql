-- Audit log: every lifecycle outcome and administrative action.
-- `scope` = 'team' rows are visible to every member of the team, 'admin' rows only to the
-- team's owners and admins (and platform admins).
CREATE TABLE audit_logs (
    id            UUID PRIMARY KEY,
    team_id       UUID,
    scope         TEXT NOT NULL DEFAULT 'team' CHECK (scope IN ('team', 'admin')),
    actor_type    TEXT NOT NULL CHECK (actor_type IN ('user', 'api_key', 'system', 'host')),
    actor_id      TEXT NOT NULL DEFAULT '',
    actor_name    TEXT NOT NULL DEFAULT '',
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL DEFAULT '',
    outcome       TEXT CHECK (outcome IN ('success', 'failure')),
    metadata      JSONB NOT NULL DEFAULT '{}'::jsonb,
    error         TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX audit_logs_team_created_idx ON audit_logs (team_id, created_at DESC, id DESC);
CREATE INDEX audit_logs_created_idx ON audit_logs (created_at DESC, id DESC);
