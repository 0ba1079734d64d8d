-- REPLACE_CHILDREN: every row of the parents this run fetched (also those that now have none) goes;
-- the staged rows are then inserted. :parents is the batch's list of parent keys.
DELETE FROM {target}
WHERE athlete_id = :athlete_id
  AND {parent_column} IN :parents
