-- 1 when a table of this name exists in the session's current schema, else 0.
SELECT COUNT(*) FROM information_schema.tables
WHERE table_schema = current_schema()
  AND table_name = :name
