-- One of the athlete's activities, deleted on Strava (its webhook event confirmed by a 404 for
-- the athlete's own token): kept and marked, never dropped. Marked once; a mark stays as it was.
UPDATE {target}
SET deleted_at = :deleted_at
WHERE athlete_id = :athlete_id
  AND id = :activity_id
  AND deleted_at IS NULL
