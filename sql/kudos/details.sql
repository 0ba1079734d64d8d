-- The kudos model's features from the activity detail (strava_activity_detail, loaded by the
-- enrichment): one athlete's live activities that have one. description_chars: the
-- description's length (0 without one).
SELECT
    d.activity_id,
    COALESCE(LENGTH(d.description), 0) AS description_chars,
    COALESCE(d.photo_count, d.total_photo_count) AS photo_count,
    d.pr_count,
    d.best_effort_count,
    d.segment_effort_count,
    d.device_name,
    d.gear_id
FROM strava_activity_detail AS d
INNER JOIN strava_activity_data AS a
    ON a.id = d.activity_id
   AND a.athlete_id = d.athlete_id
   AND a.deleted_at IS NULL
WHERE d.athlete_id = CAST(:athlete_id AS BIGINT)
  AND a.athlete_id = CAST(:athlete_id AS BIGINT)
