-- Staged rows without an id or without a start_date.
SELECT
    COUNT(*) AS missing,
    CAST(SUM(CASE WHEN id IS NULL THEN 1 ELSE 0 END) AS VARCHAR) || ' without id, '
        || CAST(SUM(CASE WHEN start_date IS NULL THEN 1 ELSE 0 END) AS VARCHAR) || ' without start_date' AS detail
FROM {staging}
WHERE id IS NULL OR start_date IS NULL
