-- Host registry: hosts, their tags, one-time registration tokens, rotating refresh tokens,
-- BYOC teams and the internal CA that signs host and control-plane certificates.
--
-- Team and user columns carry no foreign keys on purpose: hosts and audit rows must outlive
-- team soft-deletes, and this migration must not depend on the order of the account tables.

CREATE TABLE hosts (
    id                 UUID PRIMARY KEY,
    type               TEXT NOT NULL CHECK (type IN ('regular', 'byoc')),
    -- Owning team of a BYOC host; NULL for regular hosts.
    team_id            UUID,
    provider           TEXT,
    availability_zone  TEXT,
    status             TEXT NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'online', 'unreachable', 'deleted')),
    arch               TEXT,
    cpu_cores          INTEGER,
    memory_mb          BIGINT,
    disk_gb            BIGINT,
    -- Advertised gRPC address, ip:port or name:port.
    address            TEXT,
    capabilities       JSONB NOT NULL DEFAULT '{}'::jsonb,
    -- How the control plane reaches the agent: mutual TLS, or plaintext for agents started
    -- with --insecure-dev on a loopback address (development only, never implicit).
    transport          TEXT NOT NULL DEFAULT 'mtls' CHECK (transport IN ('mtls', 'insecure-dev')),
    agent_version      TEXT,
    cert_fingerprint   TEXT,
    cert_expires_at    TIMESTAMPTZ,
    created_by         UUID,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    registered_at      TIMESTAMPTZ,
    last_heartbeat_at  TIMESTAMPTZ,
    deleted_at         TIMESTAMPTZ,
    CHECK ((type = 'byoc') = (team_id IS NOT NULL))
);

CREATE INDEX hosts_status_idx ON hosts (status) WHERE status <> 'deleted';
CREATE INDEX hosts_team_idx ON hosts (team_id) WHERE team_id IS NOT NULL;

CREATE TABLE host_tags (
    host_id    UUID NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    tag        TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (host_id, tag)
);

-- One-time registration tokens (1 h), stored as SHA-256 hex.
CREATE TABLE host_registration_tokens (
    token_hash TEXT PRIMARY KEY,
    host_id    UUID NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    created_by UUID,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);

CREATE INDEX host_registration_tokens_host_idx ON host_registration_tokens (host_id);

-- Host refresh tokens (60 d), rotated on every use, stored as SHA-256 hex.
CREATE TABLE host_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    host_id    UUID NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);

CREATE INDEX host_refresh_tokens_host_idx ON host_refresh_tokens (host_id);

-- Teams that run their capsules on their own (BYOC) hosts only.
CREATE TABLE byoc_teams (
    team_id    UUID PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The internal CA: one row. The private key is AES-256-GCM encrypted with
-- WRENN_ENCRYPTION_KEY (nonce || ciphertext), so every control-plane replica shares it.
CREATE TABLE internal_ca (
    id             SMALLINT PRIMARY KEY CHECK (id = 1),
    cert_pem       TEXT NOT NULL,
    key_ciphertext BYTEA NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
