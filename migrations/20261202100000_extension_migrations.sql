-- Schema changes shipped by extensions (wrenn_extension_api::Migration), one row per applied
-- migration; each extension's tables live in its own schema ext_<name>.
CREATE TABLE extension_migrations (
    extension   TEXT        NOT NULL,
    version     BIGINT      NOT NULL,
    description TEXT        NOT NULL,
    checksum    BYTEA       NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (extension, version)
);

-- Extensions act on capsules through the capsule facade, recorded as actor 'extension'.
ALTER TABLE audit_logs DROP CONSTRAINT audit_logs_actor_type_check;
ALTER TABLE audit_logs ADD CONSTRAINT audit_logs_actor_type_check
    CHECK (actor_type IN ('user', 'api_key', 'system', 'host', 'extension'));
