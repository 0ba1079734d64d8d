-- Staged activities already in the athlete's production rows whose values changed (row_hash fingerprints them).
SELECT COUNT(*)
FROM {staging} AS s
JOIN {target} AS t ON t.id = s.id AND t.athlete_id = :athlete_id
WHERE t.row_hash <> s.row_hash
   OR t.row_hash IS NULL
