-- Distance and time per athlete and gear (the summaries' gear_id: "b..." bikes, "g..." shoes),
-- over the whole history; activities without gear left out, deleted activities excluded.
-- main_sport_type: the sport the gear was used for most (alphabetically first on a tie).
-- The maintenance thresholds are not here: they are compared when the dashboard is drawn
-- (Prefect Variable strava_gear_thresholds, docs/insight.md), so a changed threshold shows
-- without a rebuild.
WITH used AS (
    SELECT
        athlete_id,
        gear_id,
        COALESCE(sport_type, 'Unknown') AS sport_type,
        distance,
        moving_time,
        start_date_local
    FROM strava_activity_data
    WHERE deleted_at IS NULL
      AND gear_id IS NOT NULL
      AND gear_id <> ''
),
sports AS (
    SELECT
        athlete_id,
        gear_id,
        sport_type,
        ROW_NUMBER() OVER (PARTITION BY athlete_id, gear_id ORDER BY COUNT(*) DESC, sport_type) AS nth
    FROM used
    GROUP BY athlete_id, gear_id, sport_type
)
SELECT
    u.athlete_id,
    u.gear_id,
    s.sport_type AS main_sport_type,
    COUNT(*) AS activity_count,
    ROUND(CAST(COALESCE(SUM(u.distance), 0) / 1000.0 AS NUMERIC(18, 4)), 1) AS total_km,
    ROUND(CAST(COALESCE(SUM(u.moving_time), 0) / 3600.0 AS NUMERIC(18, 4)), 1) AS total_moving_hours,
    CAST(MIN(u.start_date_local) AS DATE) AS first_used_on,
    CAST(MAX(u.start_date_local) AS DATE) AS last_used_on
FROM used AS u
INNER JOIN sports AS s
    ON s.athlete_id = u.athlete_id
   AND s.gear_id = u.gear_id
   AND s.nth = 1
GROUP BY u.athlete_id, u.gear_id, s.sport_type
ORDER BY u.athlete_id, total_km DESC, u.gear_id
