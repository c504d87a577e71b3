-- Capsules, templates and the capsule statistics tables.
--
-- Team and host ids are plain UUID columns (no foreign keys) so that this migration does not
-- depend on the order in which the team and host migrations were written; the platform team is
-- the nil UUID and owns the platform base templates.

CREATE TABLE templates (
    id               UUID PRIMARY KEY,
    -- Owner; the nil UUID is the platform team (templates visible to every team, undeletable).
    team_id          UUID NOT NULL,
    name             TEXT NOT NULL,
    type             TEXT NOT NULL CHECK (type IN ('base', 'snapshot')),
    vcpus            INTEGER NOT NULL DEFAULT 1 CHECK (vcpus > 0),
    memory_mb        INTEGER NOT NULL DEFAULT 512 CHECK (memory_mb > 0),
    size_bytes       BIGINT NOT NULL DEFAULT 0,
    -- Snapshot templates: the base template whose rootfs they continue from.
    base_template_id UUID REFERENCES templates (id),
    -- Snapshot templates: the capsule they were taken from and the host holding the state.
    source_capsule_id UUID,
    host_id          UUID,
    metadata         JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX templates_team_name ON templates (team_id, name);
CREATE INDEX templates_type ON templates (type);

-- Platform base templates; ids 0-1024 are reserved for them (DESIGN.md).
INSERT INTO templates (id, team_id, name, type, vcpus, memory_mb, metadata) VALUES
    ('00000000-0000-0000-0000-000000000000', '00000000-0000-0000-0000-000000000000', 'minimal-ubuntu',  'base', 1, 512, '{"distro":"ubuntu"}'),
    ('00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000000', 'minimal-alpine',  'base', 1, 512, '{"distro":"alpine"}'),
    ('00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-000000000000', 'minimal-arch',    'base', 1, 512, '{"distro":"arch"}'),
    ('00000000-0000-0000-0000-000000000003', '00000000-0000-0000-0000-000000000000', 'minimal-fedora',  'base', 1, 512, '{"distro":"fedora"}'),
    ('00000000-0000-0000-0000-000000000004', '00000000-0000-0000-0000-000000000000', 'minimal-debian',  'base', 1, 512, '{"distro":"debian"}'),
    ('00000000-0000-0000-0000-000000000005', '00000000-0000-0000-0000-000000000000', 'minimal-busybox', 'base', 1, 512, '{"distro":"busybox"}');

CREATE TABLE capsules (
    id             UUID PRIMARY KEY,
    team_id        UUID NOT NULL,
    host_id        UUID,
    template_id    UUID NOT NULL REFERENCES templates (id),
    -- The template's name at creation (kept when a snapshot template is deleted later).
    template_name  TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'starting', 'running', 'pausing',
                       'paused', 'resuming', 'snapshotting', 'stopping', 'stopped', 'missing',
                       'error')),
    -- Why the capsule is in its state (error text, `ttl_expired`, ...).
    status_reason  TEXT NOT NULL DEFAULT '',
    vcpus          INTEGER NOT NULL,
    memory_mb      INTEGER NOT NULL,
    timeout_sec    INTEGER NOT NULL DEFAULT 0,
    guest_ip       TEXT NOT NULL DEFAULT '',
    host_ip        TEXT NOT NULL DEFAULT '',
    -- envd's access token (given to envd's /init); never returned by the API.
    access_token   TEXT NOT NULL,
    metadata       JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_by     UUID,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at     TIMESTAMPTZ,
    last_active_at TIMESTAMPTZ,
    last_updated   TIMESTAMPTZ NOT NULL DEFAULT now(),
    stopped_at     TIMESTAMPTZ
);

CREATE INDEX capsules_team_status ON capsules (team_id, status);
CREATE INDEX capsules_host_status ON capsules (host_id, status);

-- Per-capsule resource samples flushed from the agents' rings.
-- tier: '10m' (0.5 s resolution), '2h' (30 s), '24h' (5 min).
CREATE TABLE capsule_metric_points (
    capsule_id UUID NOT NULL REFERENCES capsules (id) ON DELETE CASCADE,
    tier       TEXT NOT NULL CHECK (tier IN ('10m', '2h', '24h')),
    ts         TIMESTAMPTZ NOT NULL,
    cpu_pct    DOUBLE PRECISION NOT NULL,
    mem_bytes  BIGINT NOT NULL,
    disk_bytes BIGINT NOT NULL,
    PRIMARY KEY (capsule_id, tier, ts)
);

-- What each team had reserved at a point in time (written by the stats sampler).
CREATE TABLE team_stats_samples (
    team_id            UUID NOT NULL,
    sampled_at         TIMESTAMPTZ NOT NULL,
    running_count      INTEGER NOT NULL,
    vcpus_reserved     INTEGER NOT NULL,
    memory_mb_reserved BIGINT NOT NULL,
    PRIMARY KEY (team_id, sampled_at)
);

-- Per-team, per-day (UTC) usage rolled up by the stats sampler.
CREATE TABLE daily_usage (
    team_id        UUID NOT NULL,
    date           DATE NOT NULL,
    cpu_minutes    DOUBLE PRECISION NOT NULL DEFAULT 0,
    ram_mb_minutes DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (team_id, date)
);
