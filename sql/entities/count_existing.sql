-- Staged rows whose key the athlete's production rows already hold ({key_match}: every key column equal).
SELECT COUNT(*)
FROM {staging} AS s
WHERE s.athlete_id = :athlete_id
  AND EXISTS (
      SELECT 1
      FROM {target}
      WHERE {target}.athlete_id = :athlete_id
        AND {key_match}
  )
