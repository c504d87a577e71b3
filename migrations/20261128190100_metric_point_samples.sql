-- How many agent samples a stored point averages, so points flushed in pieces merge exactly.
ALTER TABLE capsule_metric_points ADD COLUMN samples INTEGER NOT NULL DEFAULT 1;
CREATE INDEX capsule_metric_points_tier_ts ON capsule_metric_points (tier, ts);
