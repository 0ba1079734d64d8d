-- The athletes with live activities in production, in id order.
SELECT DISTINCT athlete_id
FROM {target}
WHERE deleted_at IS NULL
  AND athlete_id IS NOT NULL
ORDER BY athlete_id
