-- Per athlete and calendar year (local time), all sports together; deleted activities excluded.
-- Averages cast integers to DOUBLE PRECISION first (Redshift's AVG of an integer is an
-- integer) and round through NUMERIC(18, 4) (Redshift's bare NUMERIC has scale 0).
SELECT
    athlete_id,
    CAST(EXTRACT(YEAR FROM start_date_local) AS INTEGER) AS activity_year,
    COUNT(*) AS activity_count,
    COUNT(DISTINCT sport_type) AS sport_count,
    ROUND(CAST(SUM(distance) / 1000.0 AS NUMERIC(18, 4)), 1) AS total_km,
    ROUND(CAST(SUM(moving_time) / 3600.0 AS NUMERIC(18, 4)), 1) AS total_moving_hours,
    ROUND(CAST(SUM(total_elevation_gain) AS NUMERIC(18, 4)), 0) AS total_elevation_m,
    SUM(kudos_count) AS total_kudos,
    ROUND(CAST(AVG(CAST(kudos_count AS DOUBLE PRECISION)) AS NUMERIC(18, 4)), 2) AS avg_kudos,
    MAX(kudos_count) AS max_kudos
FROM strava_activity_data
WHERE deleted_at IS NULL
  AND start_date_local IS NOT NULL
GROUP BY athlete_id, CAST(EXTRACT(YEAR FROM start_date_local) AS INTEGER)
ORDER BY athlete_id, activity_year
