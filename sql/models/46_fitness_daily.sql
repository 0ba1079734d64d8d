-- Fitness (CTL), fatigue (ATL) and form (TSB) per athlete and local day, from activity_load (45_):
-- every day from the athlete's first day with a load to their newest activity (not today: the
-- model depends only on the data). load: the day's summed load (0 on a rest day); formula: the
-- formula of the day's loads ('power', 'heart_rate', 'relative_effort', 'mixed' when several,
-- NULL on a rest day), with the count of activities per formula.
--   CTL(d) = CTL(d-1) + (load(d) - CTL(d-1)) / 42, ATL the same with 7, both 0 before the first
--   day; computed in closed form: CTL(d) = sum over days j <= d of load(j) / 42 * (41/42)^(d - j)
--   (loads more than 730 days old are left out: their weight is below 3e-8).
--   TSB(d) = CTL(d-1) - ATL(d-1): the form going into the day (0 on the first day).
WITH loads AS (
    SELECT
        athlete_id,
        activity_date,
        SUM(training_load) AS training_load,
        SUM(CASE WHEN formula = 'power' THEN 1 ELSE 0 END) AS power_activities,
        SUM(CASE WHEN formula = 'heart_rate' THEN 1 ELSE 0 END) AS heart_rate_activities,
        SUM(CASE WHEN formula = 'relative_effort' THEN 1 ELSE 0 END) AS relative_effort_activities,
        MIN(formula) AS first_formula,
        MAX(formula) AS last_formula
    FROM activity_load
    GROUP BY athlete_id, activity_date
),
newest AS (
    SELECT athlete_id, MAX(CAST(start_date_local AS DATE)) AS last_day
    FROM strava_activity_data
    WHERE deleted_at IS NULL
      AND start_date_local IS NOT NULL
    GROUP BY athlete_id
),
bounds AS (
    SELECT l.athlete_id, MIN(l.activity_date) AS first_day, MAX(n.last_day) AS last_day
    FROM loads AS l
    INNER JOIN newest AS n
        ON n.athlete_id = l.athlete_id
    GROUP BY l.athlete_id
),
digits AS (
    SELECT 0 AS d
    UNION ALL SELECT 1
    UNION ALL SELECT 2
    UNION ALL SELECT 3
    UNION ALL SELECT 4
    UNION ALL SELECT 5
    UNION ALL SELECT 6
    UNION ALL SELECT 7
    UNION ALL SELECT 8
    UNION ALL SELECT 9
),
numbers AS (
    SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d AS n
    FROM digits AS a
    CROSS JOIN digits AS b
    CROSS JOIN digits AS c
    CROSS JOIN digits AS e
),
spine AS (
    SELECT b.athlete_id, b.first_day + n.n AS fitness_date
    FROM bounds AS b
    INNER JOIN numbers AS n
        ON n.n <= b.last_day - b.first_day
),
decayed AS (
    SELECT
        s.athlete_id,
        s.fitness_date,
        COALESCE(
            SUM(l.training_load * POWER(CAST(41 AS DOUBLE PRECISION) / 42, CAST(s.fitness_date - l.activity_date AS DOUBLE PRECISION))),
            0
        ) / 42 AS ctl,
        COALESCE(
            SUM(l.training_load * POWER(CAST(6 AS DOUBLE PRECISION) / 7, CAST(s.fitness_date - l.activity_date AS DOUBLE PRECISION))),
            0
        ) / 7 AS atl
    FROM spine AS s
    LEFT JOIN loads AS l
        ON l.athlete_id = s.athlete_id
       AND l.activity_date <= s.fitness_date
       AND l.activity_date > s.fitness_date - 730
    GROUP BY s.athlete_id, s.fitness_date
)
SELECT
    d.athlete_id,
    d.fitness_date,
    ROUND(CAST(COALESCE(l.training_load, 0) AS NUMERIC(18, 4)), 2) AS training_load,
    CASE WHEN l.first_formula = l.last_formula THEN l.first_formula WHEN l.first_formula IS NOT NULL THEN 'mixed' END
        AS formula,
    COALESCE(l.power_activities, 0) AS power_activities,
    COALESCE(l.heart_rate_activities, 0) AS heart_rate_activities,
    COALESCE(l.relative_effort_activities, 0) AS relative_effort_activities,
    ROUND(CAST(d.ctl AS NUMERIC(18, 4)), 2) AS ctl,
    ROUND(CAST(d.atl AS NUMERIC(18, 4)), 2) AS atl,
    ROUND(
        CAST(
            COALESCE(LAG(d.ctl) OVER (PARTITION BY d.athlete_id ORDER BY d.fitness_date), 0)
            - COALESCE(LAG(d.atl) OVER (PARTITION BY d.athlete_id ORDER BY d.fitness_date), 0) AS NUMERIC(18, 4)
        ),
        2
    ) AS tsb
FROM decayed AS d
LEFT JOIN loads AS l
    ON l.athlete_id = d.athlete_id
   AND l.activity_date = d.fitness_date
ORDER BY d.athlete_id, d.fitness_date
