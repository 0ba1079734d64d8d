-- Staged rows of an entity that belong to an activity (detail, laps, splits, efforts, streams) and are
-- not the run's athlete's: a staged athlete_id other than :athlete_id (or none), or an activity that
-- production holds under another athlete. 0 when every row is the athlete's; NULL (skipped) when
-- the run's athlete is not known.
SELECT
    CASE WHEN CAST(:athlete_id AS BIGINT) IS NOT NULL THEN COUNT(*) END AS foreign_rows,
    CAST(SUM(CASE WHEN s.athlete_id IS NULL OR s.athlete_id <> CAST(:athlete_id AS BIGINT) THEN 1 ELSE 0 END)
        AS VARCHAR) || ' staged for another athlete (or none), '
        || CAST(SUM(CASE WHEN p.id IS NOT NULL THEN 1 ELSE 0 END) AS VARCHAR)
        || ' of an activity another athlete holds in production; e.g. activity '
        || CAST(MIN(s.activity_id) AS VARCHAR) AS detail
FROM {staging} AS s
LEFT JOIN strava_activity_data AS p
    ON p.id = s.activity_id
   AND (p.athlete_id IS NULL OR p.athlete_id <> CAST(:athlete_id AS BIGINT))
WHERE s.athlete_id IS NULL
   OR s.athlete_id <> CAST(:athlete_id AS BIGINT)
   OR p.id IS NOT NULL
