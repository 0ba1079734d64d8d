-- Staged rows of an athlete's entity (gear, stats, zones) whose athlete_id is not :athlete_id (or
-- none). 0 when every row is the athlete's; NULL (skipped) when the run's athlete is not known.
SELECT
    CASE WHEN CAST(:athlete_id AS BIGINT) IS NOT NULL THEN COUNT(*) END AS foreign_rows,
    'e.g. athlete ' || CAST(MIN(s.athlete_id) AS VARCHAR) AS detail
FROM {staging} AS s
WHERE s.athlete_id IS NULL
   OR s.athlete_id <> CAST(:athlete_id AS BIGINT)
