-- The run's check results, one row per check, inside the merge's transaction: a run that the
-- gate halted never merges, so it records nothing here (its results are in the artifact and Slack).
INSERT INTO {results} (
    athlete_id, run_key, checked_at, check_order, name, severity, operator, value_1, value_2, outcome, detail
)
VALUES (
    CAST(:athlete_id AS BIGINT), :run_key, :checked_at, :check_order, :name, :severity, :operator,
    :value_1, :value_2, :outcome, :detail
)
