-- Migration (same transaction as the ALTER): earlier observations take their activity's athlete.
UPDATE {history}
SET athlete_id = t.athlete_id
FROM {target} AS t
WHERE t.id = {history}.activity_id
  AND {history}.athlete_id IS NULL
