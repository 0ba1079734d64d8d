-- The rows of the athlete's activities marked deleted, in one table of an activity's rows (detail,
-- laps, splits, efforts, streams, enrichment state): they go with the activity, in the transaction
-- that marks it. A reappearing activity is enriched again.
DELETE FROM {child}
WHERE athlete_id = :athlete_id
  AND activity_id IN (
      SELECT id
      FROM {target}
      WHERE athlete_id = :athlete_id
        AND deleted_at IS NOT NULL
  )
