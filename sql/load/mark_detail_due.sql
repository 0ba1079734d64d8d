-- In the summary merge's transaction, before the merge replaces the rows: the athlete's enriched
-- activities whose summary changed (a webhook update, the lookback's re-read) get their detail
-- due again. Activities never enriched are in the queue already; streams never change.
UPDATE {enrichment}
SET detail_due = TRUE
WHERE athlete_id = :athlete_id
  AND activity_id IN (
      SELECT s.id
      FROM {staging} AS s
      JOIN {target} AS t ON t.id = s.id AND t.athlete_id = :athlete_id
      WHERE t.row_hash <> s.row_hash
         OR t.row_hash IS NULL
  )
