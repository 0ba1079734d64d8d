-- Share of the athlete's live activities whose streams were fetched (0..1), whatever came back (an
-- activity without streams, a manual one, counts once asked: the enrichment state says so); NULL
-- (skipped) with no activities. Second column: how many, and how many had samples.
SELECT
    CASE
        WHEN COUNT(*) > 0
            THEN CAST(SUM(CASE WHEN e.streams_at IS NOT NULL THEN 1 ELSE 0 END) AS DOUBLE PRECISION) / COUNT(*)
    END AS share,
    CAST(SUM(CASE WHEN e.streams_at IS NOT NULL THEN 1 ELSE 0 END) AS VARCHAR) || ' of '
        || CAST(COUNT(*) AS VARCHAR) || ' live activities have their streams fetched ('
        || CAST(SUM(CASE WHEN e.streams_samples > 0 THEN 1 ELSE 0 END) AS VARCHAR) || ' with samples)' AS detail
FROM strava_activity_data AS a
LEFT JOIN strava_enrichment_state AS e
    ON e.activity_id = a.id
   AND e.athlete_id = CAST(:athlete_id AS BIGINT)
WHERE a.athlete_id = CAST(:athlete_id AS BIGINT)
  AND a.deleted_at IS NULL
