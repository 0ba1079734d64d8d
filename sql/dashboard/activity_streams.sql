-- The dashboard athlete's stream samples of live activities, activity by activity in sample
-- order: the mean-maximal curves and the heatmap's tracks (tasks/insight/curves.py).
SELECT
    s.activity_id,
    CAST(a.start_date_local AS DATE) AS activity_date,
    a.sport_type,
    s.time,
    s.lat,
    s.lng,
    s.heartrate,
    s.watts,
    s.velocity_smooth
FROM strava_activity_streams AS s
INNER JOIN strava_activity_data AS a
    ON a.id = s.activity_id
   AND a.athlete_id = s.athlete_id
WHERE s.athlete_id = CAST(:athlete_id AS BIGINT)
  AND a.athlete_id = CAST(:athlete_id AS BIGINT)
  AND a.deleted_at IS NULL
  AND a.start_date_local IS NOT NULL
  AND s.time IS NOT NULL
ORDER BY a.start_date_local DESC, s.activity_id, s.sample_index
