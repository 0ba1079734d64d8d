-- Share of the athlete's live activities whose detail is in production (0..1); NULL (skipped) with
-- no activities. Second column: how many of how many.
SELECT
    CASE
        WHEN COUNT(*) > 0
            THEN CAST(SUM(CASE WHEN d.activity_id IS NOT NULL THEN 1 ELSE 0 END) AS DOUBLE PRECISION) / COUNT(*)
    END AS share,
    CAST(SUM(CASE WHEN d.activity_id IS NOT NULL THEN 1 ELSE 0 END) AS VARCHAR) || ' of '
        || CAST(COUNT(*) AS VARCHAR) || ' live activities have their detail' AS detail
FROM strava_activity_data AS a
LEFT JOIN strava_activity_detail AS d
    ON d.activity_id = a.id
   AND d.athlete_id = CAST(:athlete_id AS BIGINT)
WHERE a.athlete_id = CAST(:athlete_id AS BIGINT)
  AND a.deleted_at IS NULL
