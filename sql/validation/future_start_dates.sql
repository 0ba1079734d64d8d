-- Staged activities that start after this run read them from Strava.
SELECT
    COUNT(*) AS future_rows,
    'e.g. id ' || CAST(MIN(id) AS VARCHAR) AS detail
FROM {staging}
WHERE start_date > CAST(:run_started_at AS TIMESTAMP WITH TIME ZONE)
