-- Append an observation of the social counts when they are new or changed,
-- so kudos over time can be analysed instead of overwritten.
INSERT INTO {history} (activity_id, observed_at, kudos_count, comment_count, achievement_count)
SELECT s.id, :observed_at, s.kudos_count, s.comment_count, s.achievement_count
FROM {staging} AS s
LEFT JOIN {target} AS t ON t.id = s.id
WHERE t.id IS NULL
   OR COALESCE(t.kudos_count, -1) <> COALESCE(s.kudos_count, -1)
   OR COALESCE(t.comment_count, -1) <> COALESCE(s.comment_count, -1)
   OR COALESCE(t.achievement_count, -1) <> COALESCE(s.achievement_count, -1)
