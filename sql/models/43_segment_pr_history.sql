-- requires: strava_activity_segment_efforts
-- PR history per segment: one row per athlete, segment and effort that beat every earlier
-- effort of the athlete on that segment (a new PR when it was ridden or run), oldest first.
-- pr_number counts the PRs (1 = the first effort); is_current marks the standing PR;
-- previous_best_s the PR it beat (NULL for the first), improvement_s by how much;
-- effort_count: every effort on the segment. Efforts hidden by Strava are left out; efforts
-- are ordered by their start (then id); an equal time is no new PR. Deleted activities excluded.
WITH efforts AS (
    SELECT
        e.athlete_id,
        e.segment_id,
        e.segment_name,
        e.segment_activity_type,
        e.segment_distance,
        e.segment_average_grade,
        e.id AS effort_id,
        e.activity_id,
        COALESCE(e.start_date, a.start_date) AS start_date,
        CAST(COALESCE(e.start_date_local, a.start_date_local) AS DATE) AS effort_date,
        e.elapsed_time,
        e.average_watts,
        e.average_heartrate
    FROM strava_activity_segment_efforts AS e
    INNER JOIN strava_activity_data AS a
        ON a.id = e.activity_id
       AND a.athlete_id = e.athlete_id
       AND a.deleted_at IS NULL
    WHERE e.elapsed_time > 0
      AND e.segment_id IS NOT NULL
      AND (e.hidden IS NULL OR e.hidden = FALSE)
),
ranked AS (
    SELECT
        athlete_id,
        segment_id,
        segment_name,
        segment_activity_type,
        segment_distance,
        segment_average_grade,
        effort_id,
        activity_id,
        start_date,
        effort_date,
        elapsed_time,
        average_watts,
        average_heartrate,
        MIN(elapsed_time) OVER (
            PARTITION BY athlete_id, segment_id ORDER BY start_date, effort_id
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS previous_best_s,
        COUNT(*) OVER (PARTITION BY athlete_id, segment_id) AS effort_count
    FROM efforts
),
prs AS (
    SELECT
        athlete_id,
        segment_id,
        segment_name,
        segment_activity_type,
        segment_distance,
        segment_average_grade,
        effort_id,
        activity_id,
        start_date,
        effort_date,
        elapsed_time,
        average_watts,
        average_heartrate,
        previous_best_s,
        effort_count,
        ROW_NUMBER() OVER (PARTITION BY athlete_id, segment_id ORDER BY start_date, effort_id) AS pr_number,
        ROW_NUMBER() OVER (PARTITION BY athlete_id, segment_id ORDER BY start_date DESC, effort_id DESC) AS newest
    FROM ranked
    WHERE previous_best_s IS NULL
       OR elapsed_time < previous_best_s
)
SELECT
    athlete_id,
    segment_id,
    segment_name,
    segment_activity_type,
    ROUND(CAST(segment_distance AS NUMERIC(18, 4)), 1) AS segment_distance_m,
    ROUND(CAST(segment_average_grade AS NUMERIC(18, 4)), 1) AS segment_average_grade,
    pr_number,
    effort_date,
    activity_id,
    effort_id,
    elapsed_time AS elapsed_s,
    previous_best_s,
    previous_best_s - elapsed_time AS improvement_s,
    ROUND(CAST(average_watts AS NUMERIC(18, 4)), 0) AS average_watts,
    ROUND(CAST(average_heartrate AS NUMERIC(18, 4)), 0) AS average_heartrate,
    effort_count,
    CASE WHEN newest = 1 THEN TRUE ELSE FALSE END AS is_current
FROM prs
ORDER BY athlete_id, segment_id, pr_number
