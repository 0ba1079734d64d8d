-- Per athlete, calendar month (local time) and sport type: distance, time and kudos.
-- Deleted activities excluded; activities without a sport type grouped as 'Unknown'.
SELECT
    athlete_id,
    CAST(DATE_TRUNC('month', start_date_local) AS DATE) AS month,
    COALESCE(sport_type, 'Unknown') AS sport_type,
    COUNT(*) AS activity_count,
    ROUND(CAST(COALESCE(SUM(distance), 0) / 1000.0 AS NUMERIC(18, 4)), 1) AS total_km,
    ROUND(CAST(COALESCE(SUM(moving_time), 0) / 3600.0 AS NUMERIC(18, 4)), 2) AS total_moving_hours,
    COALESCE(SUM(kudos_count), 0) AS total_kudos
FROM strava_activity_data
WHERE deleted_at IS NULL
  AND start_date_local IS NOT NULL
GROUP BY athlete_id, CAST(DATE_TRUNC('month', start_date_local) AS DATE), COALESCE(sport_type, 'Unknown')
ORDER BY athlete_id, month, sport_type
