-- One athlete's rows of one model table, for the dashboard and the run report.
SELECT * FROM {model} WHERE athlete_id = CAST(:athlete_id AS BIGINT)
