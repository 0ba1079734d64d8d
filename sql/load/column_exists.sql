-- 1 when the table in the session's current schema has the column, else 0 (migrations).
SELECT COUNT(*)
FROM information_schema.columns
WHERE table_schema = current_schema()
  AND table_name = :table_name
  AND column_name = :column_name
