-- requires: strava_activity_streams, strava_athlete_zones
-- Time in zones per athlete, ISO week (Monday start, the activity's local start), kind
-- ('heartrate', 'power') and zone, from the streams and the athlete's zones. A sample lasts until
-- the next one (time of the next sample minus its own); a gap of more than 30 s (a pause) and the
-- last sample count nothing. A sample is in the zone with min <= value < max (the top zone has no
-- max); a heart rate of 0 (no reading) counts nowhere. Zones: the athlete's current ones (Strava
-- keeps no history of them), kind 'heart_rate' (or 'heartrate') and 'power'. share_pct: the
-- zone's share of the week's time with that kind of reading. Deleted activities excluded.
WITH samples AS (
    SELECT
        s.athlete_id,
        s.activity_id,
        s.heartrate,
        s.watts,
        LEAD(s.time) OVER (PARTITION BY s.athlete_id, s.activity_id ORDER BY s.sample_index) - s.time AS dt
    FROM strava_activity_streams AS s
    WHERE s.time IS NOT NULL
),
timed AS (
    SELECT
        m.athlete_id,
        CAST(DATE_TRUNC('week', a.start_date_local) AS DATE) AS week_start,
        m.heartrate,
        m.watts,
        m.dt
    FROM samples AS m
    INNER JOIN strava_activity_data AS a
        ON a.id = m.activity_id
       AND a.athlete_id = m.athlete_id
       AND a.deleted_at IS NULL
       AND a.start_date_local IS NOT NULL
    WHERE m.dt > 0
      AND m.dt <= 30
),
measured AS (
    SELECT athlete_id, week_start, 'heartrate' AS kind, heartrate AS reading, dt
    FROM timed
    WHERE heartrate > 0
    UNION ALL
    SELECT athlete_id, week_start, 'power' AS kind, watts AS reading, dt
    FROM timed
    WHERE watts IS NOT NULL
),
zones AS (
    SELECT
        athlete_id,
        CASE WHEN kind IN ('heart_rate', 'heartrate') THEN 'heartrate' ELSE kind END AS kind,
        zone,
        "min" AS zone_min,
        "max" AS zone_max
    FROM strava_athlete_zones
    WHERE kind IN ('heart_rate', 'heartrate', 'power')
      AND "min" IS NOT NULL
),
binned AS (
    SELECT
        m.athlete_id,
        m.week_start,
        m.kind,
        z.zone,
        z.zone_min,
        z.zone_max,
        SUM(m.dt) AS seconds
    FROM measured AS m
    INNER JOIN zones AS z
        ON z.athlete_id = m.athlete_id
       AND z.kind = m.kind
       AND m.reading >= z.zone_min
       AND (z.zone_max IS NULL OR m.reading < z.zone_max)
    GROUP BY m.athlete_id, m.week_start, m.kind, z.zone, z.zone_min, z.zone_max
)
SELECT
    athlete_id,
    week_start,
    kind,
    zone,
    zone_min,
    zone_max,
    seconds,
    ROUND(CAST(seconds / 60.0 AS NUMERIC(18, 4)), 1) AS minutes,
    ROUND(
        CAST(100.0 * seconds / SUM(seconds) OVER (PARTITION BY athlete_id, week_start, kind) AS NUMERIC(18, 4)), 1
    ) AS share_pct
FROM binned
ORDER BY athlete_id, week_start, kind, zone
