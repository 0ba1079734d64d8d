-- One athlete's activities for a notebook (tasks.insight.read_activities): every column,
-- oldest first; the ones deleted on Strava only when asked for.
SELECT *
FROM {table}
WHERE athlete_id = CAST(:athlete_id AS BIGINT)
  AND (deleted_at IS NULL OR CAST(:include_deleted AS BOOLEAN))
ORDER BY start_date, id
