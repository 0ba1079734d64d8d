-- Staged rows whose key the athlete's production rows hold with other values (row_hash fingerprints them).
SELECT COUNT(*)
FROM {staging} AS s
WHERE s.athlete_id = :athlete_id
  AND EXISTS (
      SELECT 1
      FROM {target}
      WHERE {target}.athlete_id = :athlete_id
        AND {key_match}
        AND ({target}.row_hash <> s.row_hash OR {target}.row_hash IS NULL OR s.row_hash IS NULL)
  )
