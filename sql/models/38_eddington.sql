-- Eddington number per athlete, sport group and unit, over the whole history: the largest E
-- such that the athlete covered at least E units (km or miles) on at least E days. A day is a
-- local calendar day (start_date_local); its distance is the sum of the group's activities
-- that day. Groups: 'ride' = Ride, MountainBikeRide, GravelRide, VirtualRide, Velomobile,
-- Handcycle (e-bikes left out: motor assisted); 'run' = Run, TrailRun, VirtualRun.
-- With the days ranked by distance (longest first), E is the number of days whose distance is
-- at least their rank: that holds for a prefix of the ranking and fails after it.
-- days_needed_for_next: E + 1 minus the days already at E + 1 units or more.
-- Deleted activities excluded. Distances compare as metres >= n * metres per unit, in DOUBLE PRECISION.
WITH days AS (
    SELECT
        athlete_id,
        CASE WHEN sport_type IN ('Run', 'TrailRun', 'VirtualRun') THEN 'run' ELSE 'ride' END AS sport_group,
        CAST(start_date_local AS DATE) AS activity_date,
        SUM(distance) AS distance_m
    FROM strava_activity_data
    WHERE deleted_at IS NULL
      AND start_date_local IS NOT NULL
      AND distance > 0
      AND sport_type IN (
          'Ride', 'MountainBikeRide', 'GravelRide', 'VirtualRide', 'Velomobile', 'Handcycle',
          'Run', 'TrailRun', 'VirtualRun'
      )
    GROUP BY 1, 2, 3
),
units AS (
    SELECT 'km' AS unit, CAST(1000.0 AS DOUBLE PRECISION) AS metres
    UNION ALL
    SELECT 'mi', CAST(1609.344 AS DOUBLE PRECISION)
),
ranked AS (
    SELECT
        d.athlete_id,
        d.sport_group,
        u.unit,
        u.metres,
        d.distance_m,
        ROW_NUMBER() OVER (
            PARTITION BY d.athlete_id, d.sport_group, u.unit ORDER BY d.distance_m DESC, d.activity_date
        ) AS day_rank
    FROM days AS d
    CROSS JOIN units AS u
),
numbers AS (
    SELECT
        athlete_id,
        sport_group,
        unit,
        SUM(CASE WHEN distance_m >= day_rank * metres THEN 1 ELSE 0 END) AS eddington_number,
        COUNT(*) AS days_total,
        MAX(distance_m / metres) AS longest_day
    FROM ranked
    GROUP BY athlete_id, sport_group, unit
)
SELECT
    n.athlete_id,
    n.sport_group,
    n.unit,
    n.eddington_number,
    n.eddington_number + 1 AS next_number,
    SUM(CASE WHEN r.distance_m >= (n.eddington_number + 1) * r.metres THEN 1 ELSE 0 END) AS days_at_next,
    n.eddington_number + 1
        - SUM(CASE WHEN r.distance_m >= (n.eddington_number + 1) * r.metres THEN 1 ELSE 0 END) AS days_needed_for_next,
    n.days_total,
    ROUND(CAST(n.longest_day AS NUMERIC(18, 4)), 1) AS longest_day
FROM numbers AS n
INNER JOIN ranked AS r
    ON r.athlete_id = n.athlete_id
   AND r.sport_group = n.sport_group
   AND r.unit = n.unit
GROUP BY n.athlete_id, n.sport_group, n.unit, n.eddington_number, n.days_total, n.longest_day
ORDER BY n.athlete_id, n.sport_group, n.unit
