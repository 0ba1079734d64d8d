-- requires: strava_activity_streams, strava_athlete_zones
-- Training load per athlete and activity, by the first formula that applies (formula column):
--   'power': TSS = seconds * NP^2 / (FTP^2 * 36) (= seconds * NP * IF / (FTP * 3600) * 100), with
--     NP (normalized power) = the 4th root of the mean of the 4th power of the 30-sample rolling
--     mean of watts (streams at 1 sample a second: 30 s), seconds = the moving time (the samples
--     with watts when the summary has none), FTP = the top of the athlete's power zone 4 / 1.05
--     (Strava's power zones are shares of the FTP; zone 4 ends at 105 %). Needs 30 samples with
--     watts, a positive NP, and power zones.
--   'heart_rate': Banister's TRIMP = sum over samples of minutes * r * 0.64 * e^(1.92 r), with
--     r = (HR - 60) / (HRmax - 60) clamped to [0, 1]; 60 bpm is the assumed resting heart rate,
--     HRmax the highest heart rate in the athlete's streams (over 100 bpm); a sample lasts until
--     the next one (gaps over 30 s count nothing). Needs 30 timed samples with a heart rate.
--   'relative_effort': Strava's suffer_score (Relative Effort) from the summary.
-- Activities none applies to are left out. Deleted activities excluded.
WITH live AS (
    SELECT
        athlete_id,
        id AS activity_id,
        CAST(start_date_local AS DATE) AS activity_date,
        sport_type,
        moving_time,
        suffer_score
    FROM strava_activity_data
    WHERE deleted_at IS NULL
      AND start_date_local IS NOT NULL
),
ftp AS (
    SELECT athlete_id, MAX("max") / 1.05 AS ftp_w
    FROM strava_athlete_zones
    WHERE kind = 'power'
      AND zone = 4
      AND "max" > 0
    GROUP BY athlete_id
),
samples AS (
    SELECT
        s.athlete_id,
        s.activity_id,
        s.heartrate,
        s.watts,
        LEAD(s.time) OVER (PARTITION BY s.athlete_id, s.activity_id ORDER BY s.sample_index) - s.time AS dt,
        AVG(CAST(s.watts AS DOUBLE PRECISION)) OVER (
            PARTITION BY s.athlete_id, s.activity_id ORDER BY s.sample_index
            ROWS BETWEEN 29 PRECEDING AND CURRENT ROW
        ) AS watts_30s
    FROM strava_activity_streams AS s
    INNER JOIN live AS l
        ON l.activity_id = s.activity_id
       AND l.athlete_id = s.athlete_id
),
hr_max AS (
    SELECT athlete_id, MAX(heartrate) AS hr_max
    FROM samples
    GROUP BY athlete_id
),
weighted AS (
    SELECT
        s.athlete_id,
        s.activity_id,
        s.watts,
        s.watts_30s,
        CASE WHEN s.heartrate > 0 AND s.dt > 0 AND s.dt <= 30 AND h.hr_max > 100 THEN s.dt END AS hr_dt,
        GREATEST(
            CAST(0.0 AS DOUBLE PRECISION),
            LEAST(CAST(1.0 AS DOUBLE PRECISION), (s.heartrate - 60.0) / (h.hr_max - 60.0))
        ) AS hr_reserve
    FROM samples AS s
    INNER JOIN hr_max AS h
        ON h.athlete_id = s.athlete_id
),
per_activity AS (
    SELECT
        athlete_id,
        activity_id,
        SUM(CASE WHEN watts IS NOT NULL THEN 1 ELSE 0 END) AS watt_samples,
        POWER(AVG(CASE WHEN watts IS NOT NULL THEN POWER(watts_30s, 4) END), 0.25) AS normalized_power,
        SUM(CASE WHEN hr_dt IS NOT NULL THEN 1 ELSE 0 END) AS hr_samples,
        SUM(CASE WHEN hr_dt IS NOT NULL THEN hr_dt / 60.0 * hr_reserve * 0.64 * EXP(1.92 * hr_reserve) END) AS trimp
    FROM weighted
    GROUP BY athlete_id, activity_id
),
scored AS (
    SELECT
        l.athlete_id,
        l.activity_id,
        l.activity_date,
        l.sport_type,
        l.moving_time,
        l.suffer_score,
        f.ftp_w,
        p.normalized_power,
        p.trimp,
        CASE
            WHEN p.watt_samples >= 30 AND p.normalized_power > 0 AND f.ftp_w > 0 THEN 'power'
            WHEN p.hr_samples >= 30 THEN 'heart_rate'
            WHEN l.suffer_score IS NOT NULL THEN 'relative_effort'
        END AS formula,
        COALESCE(NULLIF(l.moving_time, 0), p.watt_samples) AS power_seconds
    FROM live AS l
    LEFT JOIN per_activity AS p
        ON p.athlete_id = l.athlete_id
       AND p.activity_id = l.activity_id
    LEFT JOIN ftp AS f
        ON f.athlete_id = l.athlete_id
)
SELECT
    athlete_id,
    activity_id,
    activity_date,
    sport_type,
    formula,
    ROUND(
        CAST(
            CASE formula
                WHEN 'power' THEN power_seconds * normalized_power * normalized_power / (ftp_w * ftp_w * 36.0)
                WHEN 'heart_rate' THEN trimp
                ELSE suffer_score
            END AS NUMERIC(18, 4)
        ),
        2
    ) AS training_load,
    ROUND(CAST(CASE WHEN formula = 'power' THEN normalized_power END AS NUMERIC(18, 4)), 1) AS normalized_power,
    ROUND(CAST(CASE WHEN formula = 'power' THEN normalized_power / ftp_w END AS NUMERIC(18, 4)), 3) AS intensity_factor,
    ROUND(CAST(ftp_w AS NUMERIC(18, 4)), 1) AS ftp_w,
    ROUND(CAST(trimp AS NUMERIC(18, 4)), 2) AS trimp,
    suffer_score
FROM scored
WHERE formula IS NOT NULL
ORDER BY athlete_id, activity_date, activity_id
