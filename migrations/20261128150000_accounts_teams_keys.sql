-- Accounts, teams, memberships, sessions, API keys and OAuth links.

CREATE TABLE users (
    id             UUID PRIMARY KEY,
    email          TEXT NOT NULL,
    name           TEXT NOT NULL,
    password_hash  TEXT,
    is_active      BOOLEAN NOT NULL DEFAULT FALSE,
    is_admin       BOOLEAN NOT NULL DEFAULT FALSE,
    disabled_at    TIMESTAMPTZ,
    deleted_at     TIMESTAMPTZ,
    activated_at   TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One account per address, case-insensitively.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_deleted_at_idx ON users (deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE teams (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    is_byoc     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at  TIMESTAMPTZ
);

-- The platform team owns system templates and regular hosts: base36 all-zeros on the wire.
INSERT INTO teams (id, name) VALUES ('00000000-0000-0000-0000-000000000000', 'Platform');

CREATE TABLE users_teams (
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    team_id     UUID NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, team_id)
);
CREATE INDEX users_teams_team_idx ON users_teams (team_id);

CREATE TABLE sessions (
    id                   UUID PRIMARY KEY,
    sid_hash             BYTEA NOT NULL UNIQUE,
    csrf_hash            BYTEA NOT NULL,
    user_id              UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    team_id              UUID NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_agent           TEXT,
    ip                   TEXT,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    idle_expires_at      TIMESTAMPTZ NOT NULL,
    absolute_expires_at  TIMESTAMPTZ NOT NULL,
    revoked_at           TIMESTAMPTZ
);
CREATE INDEX sessions_user_idx ON sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE api_keys (
    id          UUID PRIMARY KEY,
    team_id     UUID NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    key_hash    BYTEA NOT NULL UNIQUE,
    key_prefix  TEXT NOT NULL,
    created_by  UUID REFERENCES users (id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used   TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX api_keys_team_idx ON api_keys (team_id) WHERE revoked_at IS NULL;

CREATE TABLE oauth_providers (
    user_id           UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider          TEXT NOT NULL,
    provider_user_id  TEXT NOT NULL,
    email             TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, provider),
    UNIQUE (provider, provider_user_id)
);
