-- `teams.is_byoc` mirrors `byoc_teams` (the scheduler's source): teams made BYOC by their first
-- BYOC host before the two were kept in step get the flag now.
UPDATE teams SET is_byoc = EXISTS (SELECT 1 FROM byoc_teams b WHERE b.team_id = teams.id);
