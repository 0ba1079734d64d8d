-- Kudos over time, from the append-only stats history (one row per activity each time a
-- run saw its counts new or changed). Per athlete and day of observation (the warehouse
-- session's time zone): how many activities were seen for the first time and with how many
-- kudos, how many changed and by how many kudos, and the athlete's running total of kudos
-- known at the end of the day. Deleted activities excluded.
WITH observations AS (
    SELECT
        a.athlete_id,
        CAST(h.observed_at AS DATE) AS observed_on,
        COALESCE(h.kudos_count, 0) AS kudos_count,
        ROW_NUMBER() OVER (PARTITION BY a.athlete_id, h.activity_id ORDER BY h.observed_at) AS nth,
        LAG(COALESCE(h.kudos_count, 0)) OVER (
            PARTITION BY a.athlete_id, h.activity_id ORDER BY h.observed_at
        ) AS previous_kudos
    FROM strava_activity_stats_history AS h
    INNER JOIN strava_activity_data AS a
        ON a.id = h.activity_id
       AND a.athlete_id = h.athlete_id
       AND a.deleted_at IS NULL
),
daily AS (
    SELECT
        athlete_id,
        observed_on,
        COUNT(*) AS observations,
        SUM(CASE WHEN nth = 1 THEN 1 ELSE 0 END) AS activities_first_seen,
        SUM(CASE WHEN nth > 1 THEN 1 ELSE 0 END) AS activities_changed,
        SUM(CASE WHEN nth = 1 THEN kudos_count ELSE 0 END) AS kudos_on_first_seen,
        SUM(CASE WHEN nth > 1 THEN kudos_count - previous_kudos ELSE 0 END) AS kudos_gained_later
    FROM observations
    GROUP BY athlete_id, observed_on
)
SELECT
    athlete_id,
    observed_on,
    observations,
    activities_first_seen,
    activities_changed,
    kudos_on_first_seen,
    kudos_gained_later,
    SUM(kudos_on_first_seen + kudos_gained_later) OVER (
        PARTITION BY athlete_id ORDER BY observed_on ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS kudos_total
FROM daily
ORDER BY athlete_id, observed_on
