-- The Eddington number per athlete, sport group and unit as it stood at the end of each year:
-- computed as in eddington (38_) over the days up to 31 December of that year. Years run from
-- the group's first year to the athlete's newest year with any activity (a year without any
-- activity of the athlete is left out; the number cannot change in it). gained: the rise over
-- the previous listed year. days_needed_for_next: as in eddington, at that year's end.
-- Groups as in eddington. Deleted activities excluded.
WITH days AS (
    SELECT
        athlete_id,
        CASE WHEN sport_type IN ('Run', 'TrailRun', 'VirtualRun') THEN 'run' ELSE 'ride' END AS sport_group,
        CAST(start_date_local AS DATE) AS activity_date,
        CAST(EXTRACT(YEAR FROM start_date_local) AS INTEGER) AS activity_year,
        SUM(distance) AS distance_m
    FROM strava_activity_data
    WHERE deleted_at IS NULL
      AND start_date_local IS NOT NULL
      AND distance > 0
      AND sport_type IN (
          'Ride', 'MountainBikeRide', 'GravelRide', 'VirtualRide', 'Velomobile', 'Handcycle',
          'Run', 'TrailRun', 'VirtualRun'
      )
    GROUP BY 1, 2, 3, 4
),
athlete_years AS (
    SELECT DISTINCT athlete_id, CAST(EXTRACT(YEAR FROM start_date_local) AS INTEGER) AS activity_year
    FROM strava_activity_data
    WHERE deleted_at IS NULL
      AND start_date_local IS NOT NULL
),
group_start AS (
    SELECT athlete_id, sport_group, MIN(activity_year) AS first_year
    FROM days
    GROUP BY athlete_id, sport_group
),
spine AS (
    SELECT g.athlete_id, g.sport_group, y.activity_year
    FROM group_start AS g
    INNER JOIN athlete_years AS y
        ON y.athlete_id = g.athlete_id
       AND y.activity_year >= g.first_year
),
units AS (
    SELECT 'km' AS unit, CAST(1000.0 AS DOUBLE PRECISION) AS metres
    UNION ALL
    SELECT 'mi', CAST(1609.344 AS DOUBLE PRECISION)
),
ranked AS (
    SELECT
        s.athlete_id,
        s.sport_group,
        u.unit,
        s.activity_year,
        u.metres,
        d.distance_m,
        ROW_NUMBER() OVER (
            PARTITION BY s.athlete_id, s.sport_group, u.unit, s.activity_year
            ORDER BY d.distance_m DESC, d.activity_date
        ) AS day_rank
    FROM spine AS s
    INNER JOIN days AS d
        ON d.athlete_id = s.athlete_id
       AND d.sport_group = s.sport_group
       AND d.activity_year <= s.activity_year
    CROSS JOIN units AS u
),
numbers AS (
    SELECT
        athlete_id,
        sport_group,
        unit,
        activity_year,
        SUM(CASE WHEN distance_m >= day_rank * metres THEN 1 ELSE 0 END) AS eddington_number,
        COUNT(*) AS days_total
    FROM ranked
    GROUP BY athlete_id, sport_group, unit, activity_year
),
with_next AS (
    SELECT
        n.athlete_id,
        n.sport_group,
        n.unit,
        n.activity_year,
        n.eddington_number,
        n.days_total,
        SUM(CASE WHEN r.distance_m >= (n.eddington_number + 1) * r.metres THEN 1 ELSE 0 END) AS days_at_next
    FROM numbers AS n
    INNER JOIN ranked AS r
        ON r.athlete_id = n.athlete_id
       AND r.sport_group = n.sport_group
       AND r.unit = n.unit
       AND r.activity_year = n.activity_year
    GROUP BY n.athlete_id, n.sport_group, n.unit, n.activity_year, n.eddington_number, n.days_total
)
SELECT
    athlete_id,
    sport_group,
    unit,
    activity_year,
    eddington_number,
    eddington_number - COALESCE(
        LAG(eddington_number) OVER (PARTITION BY athlete_id, sport_group, unit ORDER BY activity_year), 0
    ) AS gained,
    days_at_next,
    eddington_number + 1 - days_at_next AS days_needed_for_next,
    days_total
FROM with_next
ORDER BY athlete_id, sport_group, unit, activity_year
