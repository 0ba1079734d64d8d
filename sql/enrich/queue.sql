-- The athlete's enrichment queue, newest first: live activities with no state row yet (detail
-- and streams), with their detail due again (changed on Strava), or without streams yet (streams
-- never change: once loaded, or known to be absent, they are not fetched again). An activity
-- whose fetch failed :max_attempts times in a row waits for a change (detail_due) instead.
SELECT
    a.id,
    a.start_date,
    CASE WHEN e.activity_id IS NULL OR e.detail_at IS NULL OR e.detail_due = TRUE THEN 1 ELSE 0 END AS needs_detail,
    CASE WHEN e.activity_id IS NULL OR e.streams_at IS NULL THEN 1 ELSE 0 END AS needs_streams
FROM {target} AS a
LEFT JOIN {enrichment} AS e
    ON e.athlete_id = :athlete_id
   AND e.activity_id = a.id
WHERE a.athlete_id = :athlete_id
  AND a.deleted_at IS NULL
  AND (
      e.activity_id IS NULL
      OR e.detail_due = TRUE
      OR ((e.detail_at IS NULL OR e.streams_at IS NULL) AND COALESCE(e.attempts, 0) < :max_attempts)
  )
ORDER BY a.start_date DESC, a.id DESC
