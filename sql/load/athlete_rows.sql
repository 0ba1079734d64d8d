-- The athlete in production: every row (those marked deleted too), the live ones, the newest start_date.
-- The watermark is checked against it before a run reads from it.
SELECT
    COUNT(*) AS total_rows,
    COUNT(deleted_at) AS deleted_rows,
    MAX(start_date) AS newest_start_date
FROM {target}
WHERE athlete_id = :athlete_id
