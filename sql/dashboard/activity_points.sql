-- One row per live activity of the dashboard's athlete, newest first: the scatter plots and start points.
SELECT
    start_date_local,
    sport_type,
    distance,
    moving_time,
    kudos_count,
    start_lat,
    start_lng,
    name
FROM strava_activity_data
WHERE athlete_id = CAST(:athlete_id AS BIGINT)
  AND deleted_at IS NULL
  AND start_date_local IS NOT NULL
ORDER BY start_date_local DESC
