-- Staged activities already in production whose values changed (row_hash fingerprints them).
SELECT COUNT(*)
FROM {staging} AS s
JOIN {target} AS t ON t.id = s.id
WHERE t.row_hash <> s.row_hash
   OR t.row_hash IS NULL
