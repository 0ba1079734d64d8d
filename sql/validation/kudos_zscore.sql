-- |z| of this run's mean kudos per staged activity against the kudos of the athlete's other
-- activities in production that started in the :history_days days before the run:
--   z = (run mean - historical mean) / (historical sample sd / sqrt(staged activities)),
-- the two-sided z-test of a mean of n draws from the historical distribution. NULL (the check
-- is skipped) with fewer than :min_history_activities historical activities, no staged kudos or
-- no variance. Second column: the signed z and the numbers behind it.
WITH run_kudos AS (
    SELECT
        CAST(COUNT(kudos_count) AS DOUBLE PRECISION) AS n,
        AVG(CAST(kudos_count AS DOUBLE PRECISION)) AS mean
    FROM {staging}
),
history AS (
    SELECT
        COUNT(p.kudos_count) AS n,
        AVG(CAST(p.kudos_count AS DOUBLE PRECISION)) AS mean,
        STDDEV_SAMP(CAST(p.kudos_count AS DOUBLE PRECISION)) AS sd
    FROM strava_activity_data AS p
    LEFT JOIN {staging} AS s ON s.id = p.id
    WHERE s.id IS NULL
      AND p.athlete_id = CAST(:athlete_id AS BIGINT)
      AND p.deleted_at IS NULL
      AND EXTRACT(EPOCH FROM p.start_date)
          >= EXTRACT(EPOCH FROM CAST(:run_started_at AS TIMESTAMP WITH TIME ZONE)) - :history_days * 86400
)
SELECT
    CASE
        WHEN h.n >= :min_history_activities AND r.n > 0 AND h.sd > 0.000001
            THEN ABS(r.mean - h.mean) / (h.sd / SQRT(r.n))
    END AS abs_z,
    CASE
        WHEN h.n < :min_history_activities
            THEN CAST(h.n AS VARCHAR) || ' earlier activities with kudos, need '
                || CAST(:min_history_activities AS VARCHAR)
        WHEN r.n = 0 THEN 'no staged activity has a kudos count'
        WHEN NOT h.sd > 0.000001 THEN 'every earlier activity had the same kudos'
        ELSE 'z = ' || CAST(CAST((r.mean - h.mean) / (h.sd / SQRT(r.n)) AS NUMERIC(12, 2)) AS VARCHAR)
            || ': mean ' || CAST(CAST(r.mean AS NUMERIC(12, 2)) AS VARCHAR) || ' over '
            || CAST(CAST(r.n AS INTEGER) AS VARCHAR) || ' staged activities, history mean '
            || CAST(CAST(h.mean AS NUMERIC(12, 2)) AS VARCHAR) || ' sd '
            || CAST(CAST(h.sd AS NUMERIC(12, 2)) AS VARCHAR) || ' over '
            || CAST(h.n AS VARCHAR) || ' activities'
    END AS detail
FROM run_kudos AS r
CROSS JOIN history AS h
