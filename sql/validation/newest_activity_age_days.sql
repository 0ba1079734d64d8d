-- Days between this run and the athlete's newest activity start, in production or staging
-- (NULL, so skipped, before there is any activity).
SELECT
    (EXTRACT(EPOCH FROM CAST(:run_started_at AS TIMESTAMP WITH TIME ZONE))
        - EXTRACT(EPOCH FROM MAX(newest.start_date))) / 86400.0 AS age_days
FROM (
    SELECT MAX(start_date) AS start_date
    FROM strava_activity_data
    WHERE deleted_at IS NULL AND athlete_id = CAST(:athlete_id AS BIGINT)
    UNION ALL
    SELECT MAX(start_date) AS start_date FROM {staging}
) AS newest
