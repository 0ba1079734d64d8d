-- A batch loaded again under its run key: its earlier check results make way (executed per check).
DELETE FROM {results}
WHERE athlete_id = CAST(:athlete_id AS BIGINT)
  AND run_key = :run_key
  AND name = :name
