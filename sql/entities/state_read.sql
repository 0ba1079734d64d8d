-- The athlete's enrichment state rows of the batch's activities (a state row's omitted columns keep these values).
SELECT
    athlete_id, activity_id, detail_at, detail_due, streams_at, streams_outcome, streams_samples, attempts, last_error
FROM {state}
WHERE athlete_id = :athlete_id
  AND activity_id IN :activity_ids
