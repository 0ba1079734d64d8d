-- The athlete's activities inside the window this run read in full that Strava no longer returns.
-- They are kept and marked, never dropped; a later reappearance clears the mark.
UPDATE {target}
SET deleted_at = :deleted_at
WHERE athlete_id = :athlete_id
  AND deleted_at IS NULL
  AND start_date > :after
  AND start_date <= :until
  AND id NOT IN (SELECT id FROM {staging})
