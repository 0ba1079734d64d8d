-- Every merge rule's last step (same transaction): the staged rows of the athlete.
INSERT INTO {target} ({columns})
SELECT {columns}
FROM {staging}
WHERE athlete_id = :athlete_id
