-- The athletes with live activities in production.
SELECT DISTINCT athlete_id
FROM strava_activity_data
WHERE deleted_at IS NULL
  AND athlete_id IS NOT NULL
