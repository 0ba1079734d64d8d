-- Append an observation of the social counts when they are new or changed for the athlete,
-- so kudos over time can be analysed instead of overwritten.
INSERT INTO {history} (activity_id, observed_at, kudos_count, comment_count, achievement_count, athlete_id)
SELECT s.id, :observed_at, s.kudos_count, s.comment_count, s.achievement_count, CAST(:athlete_id AS BIGINT)
FROM {staging} AS s
LEFT JOIN {target} AS t ON t.id = s.id AND t.athlete_id = :athlete_id
WHERE t.id IS NULL
   OR COALESCE(t.kudos_count, -1) <> COALESCE(s.kudos_count, -1)
   OR COALESCE(t.comment_count, -1) <> COALESCE(s.comment_count, -1)
   OR COALESCE(t.achievement_count, -1) <> COALESCE(s.achievement_count, -1)
