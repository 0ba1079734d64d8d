-- Kudos per athlete by the local weekday (1 = Monday ... 7 = Sunday) and hour an activity started.
-- Deleted activities excluded; activities without a kudos count are counted, not averaged.
WITH timed AS (
    SELECT
        athlete_id,
        CAST(EXTRACT(DOW FROM start_date_local) AS INTEGER) AS dow,
        CAST(EXTRACT(HOUR FROM start_date_local) AS INTEGER) AS start_hour,
        kudos_count
    FROM strava_activity_data
    WHERE deleted_at IS NULL
      AND start_date_local IS NOT NULL
)
SELECT
    athlete_id,
    CASE WHEN dow = 0 THEN 7 ELSE dow END AS iso_weekday,
    CASE dow
        WHEN 1 THEN 'Mon'
        WHEN 2 THEN 'Tue'
        WHEN 3 THEN 'Wed'
        WHEN 4 THEN 'Thu'
        WHEN 5 THEN 'Fri'
        WHEN 6 THEN 'Sat'
        ELSE 'Sun'
    END AS weekday,
    start_hour,
    COUNT(*) AS activity_count,
    COALESCE(SUM(kudos_count), 0) AS total_kudos,
    ROUND(CAST(AVG(CAST(kudos_count AS DOUBLE PRECISION)) AS NUMERIC(18, 4)), 2) AS avg_kudos
FROM timed
GROUP BY athlete_id, dow, start_hour
ORDER BY athlete_id, iso_weekday, start_hour
