-- Enrichment state upsert, first half: the athlete's row of one activity makes way (executed per row).
DELETE FROM {state}
WHERE athlete_id = :athlete_id
  AND activity_id = :activity_id
