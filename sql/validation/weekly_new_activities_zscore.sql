-- |z| of this run's NEW activities (staged ids not yet in production) that started in the
-- run's week, against the athlete's weekly activity counts in production over the :history_weeks weeks
-- before the run's week (from the first week with an activity; weeks without any count as 0):
--   z = (new this week - weekly mean) / weekly sample standard deviation.
-- Only new activities count, not the lookback's re-fetch of known ones. NULL (the check is
-- skipped) with fewer than :min_history_weeks weeks of history or when every week had the
-- same count. Second column: the signed z and the numbers behind it.
WITH run_week AS (
    SELECT DATE_TRUNC('week', CAST(:run_started_at AS TIMESTAMP WITH TIME ZONE)) AS week_start
),
new_this_week AS (
    SELECT CAST(COUNT(DISTINCT s.id) AS DOUBLE PRECISION) AS n
    FROM {staging} AS s
    CROSS JOIN run_week AS w
    LEFT JOIN strava_activity_data AS p ON p.id = s.id AND p.athlete_id = CAST(:athlete_id AS BIGINT)
    WHERE p.id IS NULL
      AND DATE_TRUNC('week', s.start_date) = w.week_start
),
weekly AS (
    SELECT DATE_TRUNC('week', p.start_date) AS week_start, COUNT(*) AS n
    FROM strava_activity_data AS p
    CROSS JOIN run_week AS w
    WHERE p.athlete_id = CAST(:athlete_id AS BIGINT)
      AND p.deleted_at IS NULL
      AND p.start_date < w.week_start
      AND EXTRACT(EPOCH FROM p.start_date) >= EXTRACT(EPOCH FROM w.week_start) - :history_weeks * 604800
    GROUP BY DATE_TRUNC('week', p.start_date)
),
history AS (
    SELECT
        CAST(SUM(weekly.n) AS DOUBLE PRECISION) AS total,
        CAST(SUM(weekly.n * weekly.n) AS DOUBLE PRECISION) AS total_sq,
        -- weeks from the first week with an activity up to last week (rounded: DST shifts an hour)
        CAST(ROUND((EXTRACT(EPOCH FROM MAX(w.week_start)) - EXTRACT(EPOCH FROM MIN(weekly.week_start)))
            / 604800.0) AS DOUBLE PRECISION) AS weeks
    FROM weekly
    CROSS JOIN run_week AS w
),
stats AS (
    SELECT
        weeks,
        total / NULLIF(weeks, 0) AS mean,
        (total_sq - total * total / NULLIF(weeks, 0)) / NULLIF(weeks - 1, 0) AS variance
    FROM history
)
SELECT
    CASE
        WHEN st.weeks >= :min_history_weeks AND st.variance > 0.000001
            THEN ABS(n.n - st.mean) / SQRT(st.variance)
    END AS abs_z,
    CASE
        WHEN st.weeks IS NULL THEN 'no earlier week in production'
        WHEN st.weeks < :min_history_weeks
            THEN CAST(CAST(st.weeks AS INTEGER) AS VARCHAR) || ' week(s) of history, need '
                || CAST(:min_history_weeks AS VARCHAR)
        WHEN st.variance <= 0.000001 THEN 'every earlier week had the same count'
        ELSE 'z = ' || CAST(CAST((n.n - st.mean) / SQRT(st.variance) AS NUMERIC(12, 2)) AS VARCHAR)
            || ': ' || CAST(CAST(n.n AS INTEGER) AS VARCHAR) || ' new this week, weekly mean '
            || CAST(CAST(st.mean AS NUMERIC(12, 2)) AS VARCHAR) || ' sd '
            || CAST(CAST(SQRT(st.variance) AS NUMERIC(12, 2)) AS VARCHAR) || ' over '
            || CAST(CAST(st.weeks AS INTEGER) AS VARCHAR) || ' weeks'
    END AS detail
FROM new_this_week AS n
CROSS JOIN stats AS st
