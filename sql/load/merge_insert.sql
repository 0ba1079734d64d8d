-- Second half of the merge (same transaction): the staged rows, with deleted_at cleared.
INSERT INTO {target} ({columns})
SELECT {columns}
FROM {staging}
