-- The athlete's activities marked deleted that Strava returns again: the merge un-marks them.
SELECT COUNT(*)
FROM {staging} AS s
JOIN {target} AS t ON t.id = s.id AND t.athlete_id = :athlete_id
WHERE t.deleted_at IS NOT NULL
