-- First half of the merge: the athlete's production rows that this run re-fetched make way for the new values.
DELETE FROM {target}
WHERE athlete_id = :athlete_id
  AND id IN (SELECT id FROM {staging})
