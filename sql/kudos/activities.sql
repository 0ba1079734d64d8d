-- The kudos model's raw features: live activities of one athlete, oldest first. Activities
-- without a kudos count are kept: they still count as recent activity for the ones after them.
SELECT
    id,
    athlete_id,
    start_date,
    start_date_local,
    distance,
    moving_time,
    total_elevation_gain,
    sport_type,
    workout_type,
    total_photo_count,
    achievement_count,
    athlete_count,
    commute,
    trainer,
    visibility,
    kudos_count
FROM strava_activity_data
WHERE deleted_at IS NULL
  AND start_date IS NOT NULL
  AND athlete_id = CAST(:athlete_id AS BIGINT)
ORDER BY start_date, id
