-- Staged activities that production has never seen.
SELECT COUNT(*)
FROM {staging} AS s
LEFT JOIN {target} AS t ON t.id = s.id
WHERE t.id IS NULL
