-- UPSERT and APPEND, first half: the athlete's production rows whose key is staged make way for the staged values.
DELETE FROM {target}
WHERE athlete_id = :athlete_id
  AND EXISTS (
      SELECT 1
      FROM {staging} AS s
      WHERE {key_match}
  )
