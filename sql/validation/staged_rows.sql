-- Rows in the run's staging table.
SELECT COUNT(*) AS staged_rows
FROM {staging}
