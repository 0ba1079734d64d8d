-- Staged rows whose id another staged row already has (0 when every id is unique).
SELECT
    COUNT(id) - COUNT(DISTINCT id) AS duplicates,
    'e.g. id ' || CAST(MIN(CASE WHEN dup.n > 1 THEN dup.id END) AS VARCHAR) AS detail
FROM (
    SELECT id, COUNT(*) OVER (PARTITION BY id) AS n
    FROM {staging}
) AS dup
