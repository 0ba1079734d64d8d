-- The athlete's gear to (re)fetch: gear the live activities name that was never read, or that an
-- activity started after its last read (its distance has grown since). Old activities loaded
-- later (a backfill) start before the read: they do not make it due again.
SELECT a.gear_id
FROM {target} AS a
LEFT JOIN {gear} AS g
    ON g.athlete_id = :athlete_id
   AND g.id = a.gear_id
WHERE a.athlete_id = :athlete_id
  AND a.deleted_at IS NULL
  AND a.gear_id IS NOT NULL
GROUP BY a.gear_id
HAVING MAX(g.extracted_at) IS NULL
    OR MAX(a.start_date) > MAX(g.extracted_at)
ORDER BY a.gear_id
