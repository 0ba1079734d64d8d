-- Per athlete, ISO week (Monday start, local time) and workout type: total kudos, the same
-- athlete's previous calendar week's total for the same workout type (NULL when it had none),
-- and the % change. Deleted activities excluded.
WITH weekly AS (
    SELECT
        athlete_id,
        CAST(DATE_TRUNC('week', start_date_local) AS DATE) AS week_start,
        CASE
            WHEN workout_type IN (1, 11) THEN 'race'
            WHEN workout_type = 2 THEN 'long run'
            WHEN workout_type IN (3, 12) THEN 'workout'
            ELSE 'default'
        END AS workout,
        SUM(kudos_count) AS total_kudos
    FROM strava_activity_data
    WHERE deleted_at IS NULL
      AND start_date_local IS NOT NULL
    GROUP BY 1, 2, 3
)
SELECT
    w.athlete_id,
    w.week_start,
    w.workout,
    w.total_kudos,
    p.total_kudos AS previous_week_kudos,
    ROUND(
        CAST(100.0 * (w.total_kudos - p.total_kudos) / NULLIF(p.total_kudos, 0) AS NUMERIC(18, 4)), 1
    ) AS pct_change
FROM weekly AS w
LEFT JOIN weekly AS p
    ON p.athlete_id = w.athlete_id
   AND p.workout = w.workout
   AND p.week_start = w.week_start - 7
ORDER BY w.athlete_id, w.week_start, w.workout
