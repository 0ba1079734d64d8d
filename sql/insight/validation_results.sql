-- One athlete's validation results for a notebook (tasks.insight.read_validation_results):
-- one row per check of each merged run, oldest run first, checks in the manifest's order.
SELECT *
FROM {table}
WHERE athlete_id = CAST(:athlete_id AS BIGINT)
ORDER BY checked_at, run_key, check_order
