-- Per athlete and calendar month (local time), runs only, deleted activities excluded.
-- Pace is minutes per mile over the month's total moving time and distance.
-- NUMERIC(18, 4) and DOUBLE PRECISION averages: Redshift's bare NUMERIC has scale 0 and its
-- AVG of an integer is an integer.
SELECT
    athlete_id,
    CAST(DATE_TRUNC('month', start_date_local) AS DATE) AS month,
    COUNT(*) AS activity_count,
    ROUND(CAST(SUM(distance) / 1609.344 AS NUMERIC(18, 4)), 2) AS total_miles,
    ROUND(CAST(SUM(moving_time) / 60.0 AS NUMERIC(18, 4)), 1) AS total_moving_minutes,
    ROUND(CAST(AVG(CAST(moving_time AS DOUBLE PRECISION)) / 60.0 AS NUMERIC(18, 4)), 1) AS avg_moving_minutes,
    ROUND(
        CAST((SUM(moving_time) / 60.0) / NULLIF(SUM(distance) / 1609.344, 0) AS NUMERIC(18, 4)), 2
    ) AS avg_pace_min_per_mile,
    ROUND(CAST(AVG(CAST(kudos_count AS DOUBLE PRECISION)) AS NUMERIC(18, 4)), 2) AS avg_kudos,
    ROUND(CAST(STDDEV_SAMP(CAST(kudos_count AS DOUBLE PRECISION)) AS NUMERIC(18, 4)), 2) AS stddev_kudos
FROM strava_activity_data
WHERE deleted_at IS NULL
  AND start_date_local IS NOT NULL
  AND sport_type IN ('Run', 'TrailRun', 'VirtualRun')
GROUP BY athlete_id, CAST(DATE_TRUNC('month', start_date_local) AS DATE)
ORDER BY athlete_id, month
