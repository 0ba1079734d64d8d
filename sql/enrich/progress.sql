-- How much of the athlete's history is enriched: live activities, and those with their detail
-- current and their streams fetched (loaded, or known to be absent).
SELECT
    COUNT(*) AS total,
    SUM(
        CASE
            WHEN e.detail_at IS NOT NULL AND COALESCE(e.detail_due, FALSE) = FALSE AND e.streams_at IS NOT NULL
                THEN 1
            ELSE 0
        END
    ) AS enriched
FROM {target} AS a
LEFT JOIN {enrichment} AS e
    ON e.athlete_id = :athlete_id
   AND e.activity_id = a.id
WHERE a.athlete_id = :athlete_id
  AND a.deleted_at IS NULL
