-- Activities marked deleted that Strava returns again: the merge un-marks them.
SELECT COUNT(*)
FROM {staging} AS s
JOIN {target} AS t ON t.id = s.id
WHERE t.deleted_at IS NOT NULL
