-- Notification channels and their delivery log.
--
-- The event outcome is "success" or "error" (the contract's values); older rows said "failure".
ALTER TABLE audit_logs DROP CONSTRAINT IF EXISTS audit_logs_outcome_check;
UPDATE audit_logs SET outcome = 'error' WHERE outcome = 'failure';
ALTER TABLE audit_logs ADD CONSTRAINT audit_logs_outcome_check
    CHECK (outcome IN ('success', 'error'));

-- A team's notification channel. `config` holds the provider's non-secret settings (returned by
-- the API); `secret` the AES-256-GCM sealed JSON of its secret ones (never returned).
CREATE TABLE channels (
    id          UUID PRIMARY KEY,
    team_id     UUID NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    provider    TEXT NOT NULL CHECK (provider IN
                  ('webhook', 'discord', 'slack', 'teams', 'googlechat', 'telegram', 'matrix')),
    events      TEXT[] NOT NULL,
    config      JSONB NOT NULL DEFAULT '{}'::jsonb,
    secret      BYTEA NOT NULL,
    enabled     BOOLEAN NOT NULL DEFAULT TRUE,
    created_by  UUID REFERENCES users (id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX channels_team_idx ON channels (team_id, created_at DESC);

-- One row per delivery attempt (kept for a bounded time by the channels worker).
CREATE TABLE channel_deliveries (
    id           BIGSERIAL PRIMARY KEY,
    channel_id   UUID NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    event_id     TEXT NOT NULL,
    event        TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    delivery_id  UUID NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('delivered', 'failed', 'dropped')),
    http_status  INTEGER,
    error        TEXT NOT NULL DEFAULT '',
    latency_ms   INTEGER NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX channel_deliveries_channel_idx ON channel_deliveries (channel_id, id DESC);
CREATE INDEX channel_deliveries_event_idx ON channel_deliveries (event_id, channel_id)
    WHERE status = 'delivered';
CREATE INDEX channel_deliveries_created_idx ON channel_deliveries (created_at);
