-- One row per athlete and local calendar day with at least one activity: the calendar heatmap's data.
-- Deleted activities excluded.
SELECT
    athlete_id,
    CAST(start_date_local AS DATE) AS activity_date,
    COUNT(*) AS activity_count,
    ROUND(CAST(COALESCE(SUM(moving_time), 0) / 60.0 AS NUMERIC(18, 4)), 1) AS moving_minutes,
    ROUND(CAST(COALESCE(SUM(distance), 0) / 1000.0 AS NUMERIC(18, 4)), 1) AS distance_km,
    COALESCE(SUM(kudos_count), 0) AS total_kudos
FROM strava_activity_data
WHERE deleted_at IS NULL
  AND start_date_local IS NOT NULL
GROUP BY athlete_id, CAST(start_date_local AS DATE)
ORDER BY athlete_id, activity_date
