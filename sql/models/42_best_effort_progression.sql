-- requires: strava_activity_best_efforts
-- Best efforts (Strava's standard distances of a run: 400m, 1/2 mile, 1K, 1 mile, 2 mile, 5K,
-- 10K, 15K, 10 mile, 20K, Half-Marathon, 30K, Marathon, 50K) and their progression: one row per
-- athlete, distance and effort that beat every earlier effort at that distance (a new personal
-- record when it was run), oldest first. pr_number counts the records (1 = the first effort at
-- the distance); is_current marks the standing record. previous_best_s: the record it beat
-- (NULL for the first); improvement_s: by how much. Efforts are ordered by the activity's start
-- (then the effort id); an equal time is no new record. Deleted activities excluded.
WITH efforts AS (
    SELECT
        e.athlete_id,
        e.name AS effort_name,
        e.distance,
        e.id AS effort_id,
        e.activity_id,
        a.start_date,
        CAST(a.start_date_local AS DATE) AS activity_date,
        e.elapsed_time,
        e.pr_rank
    FROM strava_activity_best_efforts AS e
    INNER JOIN strava_activity_data AS a
        ON a.id = e.activity_id
       AND a.athlete_id = e.athlete_id
       AND a.deleted_at IS NULL
    WHERE e.elapsed_time > 0
      AND e.name IS NOT NULL
),
ranked AS (
    SELECT
        athlete_id,
        effort_name,
        distance,
        effort_id,
        activity_id,
        start_date,
        activity_date,
        elapsed_time,
        pr_rank,
        MIN(elapsed_time) OVER (
            PARTITION BY athlete_id, effort_name ORDER BY start_date, effort_id
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS previous_best_s,
        COUNT(*) OVER (PARTITION BY athlete_id, effort_name) AS effort_count
    FROM efforts
),
records AS (
    SELECT
        athlete_id,
        effort_name,
        distance,
        effort_id,
        activity_id,
        start_date,
        activity_date,
        elapsed_time,
        pr_rank,
        previous_best_s,
        effort_count,
        ROW_NUMBER() OVER (PARTITION BY athlete_id, effort_name ORDER BY start_date, effort_id) AS pr_number,
        ROW_NUMBER() OVER (PARTITION BY athlete_id, effort_name ORDER BY start_date DESC, effort_id DESC) AS newest
    FROM ranked
    WHERE previous_best_s IS NULL
       OR elapsed_time < previous_best_s
)
SELECT
    athlete_id,
    effort_name,
    ROUND(CAST(distance AS NUMERIC(18, 4)), 1) AS distance_m,
    pr_number,
    activity_date,
    activity_id,
    effort_id,
    elapsed_time AS elapsed_s,
    previous_best_s,
    previous_best_s - elapsed_time AS improvement_s,
    ROUND(CAST(elapsed_time / NULLIF(distance, 0) * 1000.0 / 60.0 AS NUMERIC(18, 4)), 2) AS pace_min_per_km,
    pr_rank,
    effort_count,
    CASE WHEN newest = 1 THEN TRUE ELSE FALSE END AS is_current
FROM records
ORDER BY athlete_id, distance_m, effort_name, pr_number
