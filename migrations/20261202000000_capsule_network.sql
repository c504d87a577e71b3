-- Egress policy of each capsule ({"mode": "allow_all"|"deny_all"|"allow_list", "allow": [...]}),
-- enforced by its host agent; changed with PATCH /v1/capsules/{id}/network.
ALTER TABLE capsules ADD COLUMN network jsonb NOT NULL DEFAULT '{"mode": "allow_all", "allow": []}';
