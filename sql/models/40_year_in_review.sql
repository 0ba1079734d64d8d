-- The year in review, per athlete and calendar year (local time), all sports; deleted activities
-- excluded. Totals: activities, active days, km, climb, moving hours, kudos, and PRs (the sum of
-- the summaries' pr_count). longest_streak_days: the most consecutive local days with an activity
-- inside the year (the earliest such run on a tie; a run across New Year counts in each year for
-- its own days). biggest_day: the local day with the most distance, all sports (earliest on a tie).
-- most_kudos_*: the activity with the most kudos (earliest on a tie; none without a kudos count).
WITH live AS (
    SELECT
        athlete_id,
        id,
        name,
        kudos_count,
        pr_count,
        distance,
        moving_time,
        total_elevation_gain,
        start_date_local,
        CAST(start_date_local AS DATE) AS activity_date,
        CAST(EXTRACT(YEAR FROM start_date_local) AS INTEGER) AS activity_year
    FROM strava_activity_data
    WHERE deleted_at IS NULL
      AND start_date_local IS NOT NULL
),
totals AS (
    SELECT
        athlete_id,
        activity_year,
        COUNT(*) AS activity_count,
        COUNT(DISTINCT activity_date) AS active_days,
        ROUND(CAST(COALESCE(SUM(distance), 0) / 1000.0 AS NUMERIC(18, 4)), 1) AS total_km,
        ROUND(CAST(COALESCE(SUM(total_elevation_gain), 0) AS NUMERIC(18, 4)), 0) AS total_elevation_m,
        ROUND(CAST(COALESCE(SUM(moving_time), 0) / 3600.0 AS NUMERIC(18, 4)), 1) AS total_moving_hours,
        COALESCE(SUM(kudos_count), 0) AS total_kudos,
        COALESCE(SUM(pr_count), 0) AS pr_count
    FROM live
    GROUP BY athlete_id, activity_year
),
days AS (
    SELECT
        athlete_id,
        activity_year,
        activity_date,
        COUNT(*) AS activity_count,
        COALESCE(SUM(distance), 0) AS distance_m
    FROM live
    GROUP BY athlete_id, activity_year, activity_date
),
islands AS (
    SELECT
        athlete_id,
        activity_year,
        activity_date,
        activity_date - CAST(
            ROW_NUMBER() OVER (PARTITION BY athlete_id, activity_year ORDER BY activity_date) AS INTEGER
        ) AS island
    FROM days
),
streaks AS (
    SELECT
        athlete_id,
        activity_year,
        COUNT(*) AS streak_days,
        MIN(activity_date) AS streak_start,
        MAX(activity_date) AS streak_end
    FROM islands
    GROUP BY athlete_id, activity_year, island
),
best_streak AS (
    SELECT
        athlete_id,
        activity_year,
        streak_days,
        streak_start,
        streak_end,
        ROW_NUMBER() OVER (PARTITION BY athlete_id, activity_year ORDER BY streak_days DESC, streak_start) AS nth
    FROM streaks
),
best_day AS (
    SELECT
        athlete_id,
        activity_year,
        activity_date,
        activity_count,
        distance_m,
        ROW_NUMBER() OVER (PARTITION BY athlete_id, activity_year ORDER BY distance_m DESC, activity_date) AS nth
    FROM days
),
most_kudos AS (
    SELECT
        athlete_id,
        activity_year,
        id,
        name,
        kudos_count,
        activity_date,
        ROW_NUMBER() OVER (
            PARTITION BY athlete_id, activity_year ORDER BY kudos_count DESC, start_date_local, id
        ) AS nth
    FROM live
    WHERE kudos_count IS NOT NULL
)
SELECT
    t.athlete_id,
    t.activity_year,
    t.activity_count,
    t.active_days,
    t.total_km,
    t.total_elevation_m,
    t.total_moving_hours,
    t.total_kudos,
    t.pr_count,
    s.streak_days AS longest_streak_days,
    s.streak_start,
    s.streak_end,
    b.activity_date AS biggest_day,
    ROUND(CAST(b.distance_m / 1000.0 AS NUMERIC(18, 4)), 1) AS biggest_day_km,
    b.activity_count AS biggest_day_activities,
    k.id AS most_kudos_activity_id,
    k.name AS most_kudos_name,
    k.activity_date AS most_kudos_date,
    k.kudos_count AS most_kudos
FROM totals AS t
LEFT JOIN best_streak AS s
    ON s.athlete_id = t.athlete_id
   AND s.activity_year = t.activity_year
   AND s.nth = 1
LEFT JOIN best_day AS b
    ON b.athlete_id = t.athlete_id
   AND b.activity_year = t.activity_year
   AND b.nth = 1
LEFT JOIN most_kudos AS k
    ON k.athlete_id = t.athlete_id
   AND k.activity_year = t.activity_year
   AND k.nth = 1
ORDER BY t.athlete_id, t.activity_year
