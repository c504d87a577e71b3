-- Template builds: a recipe run step by step in a capsule of its base template, whose result
-- becomes a template (a snapshot when the recipe STARTs a process, else a flattened rootfs).
-- Queued in Redis (wrenn:builds:queue); this table is the truth the queue points into.

CREATE TABLE template_builds (
    id                UUID PRIMARY KEY,
    -- The team that asked (its capsule runs the build, its members read the logs).
    team_id           UUID NOT NULL,
    -- The team owning the result: team_id, or the nil UUID for a platform template.
    template_team_id  UUID NOT NULL,
    name              TEXT NOT NULL,
    recipe            TEXT NOT NULL,
    -- SHA-256 over the recipe, the files and the resources: equal hashes reuse the template.
    recipe_hash       TEXT NOT NULL,
    from_template     TEXT NOT NULL,
    vcpus             INTEGER NOT NULL CHECK (vcpus > 0),
    memory_mb         INTEGER NOT NULL CHECK (memory_mb > 0),
    status            TEXT NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    -- One object per step: index, line, instruction, args, status, exit_code, times.
    steps             JSONB NOT NULL DEFAULT '[]'::jsonb,
    error             TEXT NOT NULL DEFAULT '',
    template_id       UUID,
    template_type     TEXT,
    capsule_id        UUID,
    host_id           UUID,
    created_by_user   UUID,
    created_by_key    UUID,
    cancel_requested  BOOLEAN NOT NULL DEFAULT false,
    log_bytes         BIGINT NOT NULL DEFAULT 0,
    -- Refreshed by the worker running the build; a stale one means the worker is gone.
    heartbeat_at      TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at        TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ
);

CREATE INDEX template_builds_team ON template_builds (team_id, created_at DESC, id DESC);
CREATE INDEX template_builds_all ON template_builds (created_at DESC, id DESC);
CREATE INDEX template_builds_reuse ON template_builds (template_team_id, name, recipe_hash)
    WHERE status = 'succeeded';
-- At most one build of a template name in flight.
CREATE UNIQUE INDEX template_builds_in_flight ON template_builds (template_team_id, name)
    WHERE status IN ('queued', 'running');

-- Files uploaded with a build, which its COPY lines name.
CREATE TABLE template_build_files (
    build_id  UUID NOT NULL REFERENCES template_builds (id) ON DELETE CASCADE,
    path      TEXT NOT NULL,
    content   BYTEA NOT NULL,
    PRIMARY KEY (build_id, path)
);

-- Output of every step, in order of seq.
CREATE TABLE template_build_logs (
    seq       BIGSERIAL PRIMARY KEY,
    build_id  UUID NOT NULL REFERENCES template_builds (id) ON DELETE CASCADE,
    step      INTEGER,
    stream    TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr', 'system')),
    data      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX template_build_logs_build ON template_build_logs (build_id, seq);
