-- Training load per athlete and ISO week (Monday start, local time): moving time, distance and
-- elevation, each with its 4-week rolling average (this week and the 3 before, empty
-- weeks counting as zero). A week appears when it or one of the 3 weeks before it has an
-- activity of the athlete, up to the athlete's newest week. Deleted activities excluded.
WITH weekly AS (
    SELECT
        athlete_id,
        CAST(DATE_TRUNC('week', start_date_local) AS DATE) AS week_start,
        COUNT(*) AS activity_count,
        COALESCE(SUM(moving_time), 0) AS moving_seconds,
        COALESCE(SUM(distance), 0) AS distance_m,
        COALESCE(SUM(total_elevation_gain), 0) AS elevation_m
    FROM strava_activity_data
    WHERE deleted_at IS NULL
      AND start_date_local IS NOT NULL
    GROUP BY athlete_id, CAST(DATE_TRUNC('week', start_date_local) AS DATE)
),
last_week AS (
    SELECT athlete_id, MAX(week_start) AS week_start
    FROM weekly
    GROUP BY athlete_id
),
offsets AS (
    SELECT 0 AS k
    UNION ALL SELECT 1
    UNION ALL SELECT 2
    UNION ALL SELECT 3
),
spine AS (
    SELECT DISTINCT w.athlete_id, w.week_start + 7 * o.k AS week_start
    FROM weekly AS w
    CROSS JOIN offsets AS o
    INNER JOIN last_week AS l ON l.athlete_id = w.athlete_id
    WHERE w.week_start + 7 * o.k <= l.week_start
)
SELECT
    s.athlete_id,
    s.week_start,
    COALESCE(SUM(CASE WHEN w.week_start = s.week_start THEN w.activity_count END), 0) AS activity_count,
    ROUND(CAST(COALESCE(SUM(CASE WHEN w.week_start = s.week_start THEN w.moving_seconds END), 0)
        / 3600.0 AS NUMERIC(18, 4)), 2) AS moving_hours,
    ROUND(CAST(COALESCE(SUM(CASE WHEN w.week_start = s.week_start THEN w.distance_m END), 0)
        / 1000.0 AS NUMERIC(18, 4)), 1) AS distance_km,
    ROUND(CAST(COALESCE(SUM(CASE WHEN w.week_start = s.week_start THEN w.elevation_m END), 0)
        AS NUMERIC(18, 4)), 0) AS elevation_m,
    ROUND(CAST(COALESCE(SUM(w.moving_seconds), 0) / 3600.0 / 4.0 AS NUMERIC(18, 4)), 2) AS moving_hours_4wk_avg,
    ROUND(CAST(COALESCE(SUM(w.distance_m), 0) / 1000.0 / 4.0 AS NUMERIC(18, 4)), 1) AS distance_km_4wk_avg,
    ROUND(CAST(COALESCE(SUM(w.elevation_m), 0) / 4.0 AS NUMERIC(18, 4)), 0) AS elevation_m_4wk_avg
FROM spine AS s
LEFT JOIN weekly AS w
    ON w.athlete_id = s.athlete_id
   AND w.week_start BETWEEN s.week_start - 21 AND s.week_start
GROUP BY s.athlete_id, s.week_start
ORDER BY s.athlete_id, s.week_start
