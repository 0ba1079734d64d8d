-- One live activity's stream samples of the dashboard athlete, in sample order: its summary
-- (bests and thinned track) when it is new since the kept ones (tasks/insight/curves.py).
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
  AND s.activity_id = CAST(:activity_id AS BIGINT)
  AND a.athlete_id = CAST(:athlete_id AS BIGINT)
  AND a.id = CAST(:activity_id AS BIGINT)
  AND a.deleted_at IS NULL
  AND a.start_date_local IS NOT NULL
  AND s.time IS NOT NULL
ORDER BY a.start_date_local DESC, s.activity_id, s.sample_index
