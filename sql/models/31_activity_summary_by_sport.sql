-- Per athlete and sport type over the whole history; deleted activities excluded.
-- Activities without a sport type are grouped as 'Unknown'.
SELECT
    athlete_id,
    COALESCE(sport_type, 'Unknown') AS sport_type,
    COUNT(*) AS activity_count,
    CAST(MIN(start_date_local) AS DATE) AS first_activity_on,
    CAST(MAX(start_date_local) AS DATE) AS last_activity_on,
    ROUND(CAST(SUM(distance) / 1000.0 AS NUMERIC(18, 4)), 1) AS total_km,
    ROUND(CAST(SUM(moving_time) / 3600.0 AS NUMERIC(18, 4)), 1) AS total_moving_hours,
    ROUND(CAST(SUM(total_elevation_gain) AS NUMERIC(18, 4)), 0) AS total_elevation_m,
    ROUND(CAST(AVG(distance) / 1000.0 AS NUMERIC(18, 4)), 2) AS avg_km,
    ROUND(CAST(AVG(CAST(moving_time AS DOUBLE PRECISION)) / 60.0 AS NUMERIC(18, 4)), 1) AS avg_moving_minutes,
    SUM(kudos_count) AS total_kudos,
    ROUND(CAST(AVG(CAST(kudos_count AS DOUBLE PRECISION)) AS NUMERIC(18, 4)), 2) AS avg_kudos
FROM strava_activity_data
WHERE deleted_at IS NULL
GROUP BY athlete_id, COALESCE(sport_type, 'Unknown')
ORDER BY athlete_id, activity_count DESC, sport_type
