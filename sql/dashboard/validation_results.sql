-- One athlete's recorded check results: newest run first (run keys start with the run's UTC
-- time), each run's checks in the manifest's order. The caller keeps the first few runs.
SELECT run_key, checked_at, name, severity, operator, value_1, value_2, outcome, detail
FROM {results}
WHERE athlete_id = CAST(:athlete_id AS BIGINT)
ORDER BY run_key DESC, check_order
