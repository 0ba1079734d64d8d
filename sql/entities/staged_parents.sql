-- REPLACE_CHILDREN: the parents of the staged rows (their rows are replaced with those the parents list names).
SELECT DISTINCT {parent_column}
FROM {staging}
WHERE athlete_id = :athlete_id
