-- The dashboard athlete's live activities with streams, newest first as activity_streams.sql
-- orders them, with their sample counts: what decides whether an activity's kept summary (its
-- bests and thinned track, tasks/insight/curves.py) still holds. Reads the key columns only.
SELECT
    c.activity_id,
    CAST(a.start_date_local AS DATE) AS activity_date,
    a.sport_type,
    c.samples
FROM (
    SELECT s.activity_id, COUNT(*) AS samples
    FROM strava_activity_streams AS s
    WHERE s.athlete_id = CAST(:athlete_id AS BIGINT)
    GROUP BY s.activity_id
) AS c
INNER JOIN strava_activity_data AS a
    ON a.id = c.activity_id
WHERE a.athlete_id = CAST(:athlete_id AS BIGINT)
  AND a.deleted_at IS NULL
  AND a.start_date_local IS NOT NULL
ORDER BY a.start_date_local DESC, c.activity_id
