-- The load a host's agent reports with each heartbeat (wrenn_proto::host_http::HostLoad), and
-- when it arrived: shown on the host object, never used for scheduling decisions.
ALTER TABLE hosts ADD COLUMN load JSONB, ADD COLUMN load_at TIMESTAMPTZ;
